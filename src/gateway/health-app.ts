// The fastify application of the health server: /readiness, /liveness,
// /metrics and 404. The server (./server.ts) answers the two polled routes
// itself and hands every other request to this app; tests inject into it.
// Loaded only after the health port listens: fastify takes ~110 ms to load.
import type { Server } from "node:http";
import { createRequire } from "node:module";
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import { LIVENESS, readinessAnswers, TEXT, type ReadinessAnswers } from "./health-answers.js";
import type { ReadinessView } from "../readiness/readiness.js";

export interface HealthAppOptions {
  readonly readiness: () => ReadinessView;
  readonly metrics: () => string;
}

export interface AttachTo {
  /**
   * The server that already listens, with its timeouts and client-error
   * handling set: fastify adopts it instead of creating one, and the caller
   * routes requests to `app.routing`.
   */
  readonly server: Server;
  /** The answers the server's fast path gives, so that both share one cache. */
  readonly readinessAnswers: ReadinessAnswers;
}

type CompilersFactory = NonNullable<
  NonNullable<FastifyServerOptions["schemaController"]>["compilersFactory"]
>;
type ValidatorFactory = NonNullable<CompilersFactory["buildValidator"]>;
type SerializerFactory = NonNullable<CompilersFactory["buildSerializer"]>;

/**
 * Fastify's schema compilers, loaded on first use. The health routes declare
 * no schemas, yet fastify loads ajv and fast-json-stringify when it is
 * constructed: ~55 ms of a start that should reach "listening" within 300 ms.
 * They come from fastify's own dependencies, as fastify would load them.
 */
function lazySchemaCompilers(): CompilersFactory {
  const fromFastify = createRequire(createRequire(import.meta.url).resolve("fastify"));
  let validator: ValidatorFactory | undefined;
  let serializer: SerializerFactory | undefined;
  return {
    buildValidator: (...args) => {
      validator ??= (fromFastify("@fastify/ajv-compiler") as () => ValidatorFactory)();
      return validator(...args);
    },
    buildSerializer: (...args) => {
      serializer ??= (fromFastify("@fastify/fast-json-stringify-compiler") as () => SerializerFactory)();
      return serializer(...args);
    },
  };
}

export function buildHealthApp(options: HealthAppOptions, attachTo?: AttachTo): FastifyInstance {
  const readiness = attachTo?.readinessAnswers ?? readinessAnswers(options.readiness);
  const app = Fastify({
    logger: false,
    bodyLimit: 1024,
    return503OnClosing: true,
    schemaController: { compilersFactory: lazySchemaCompilers() },
    ...(attachTo ? { serverFactory: () => attachTo.server, clientErrorHandler: () => undefined } : {}),
  });

  app.get("/readiness", (request, reply) => {
    const { status, headers, body } = readiness(request.headers.accept);
    void reply.code(status).headers(headers).send(body);
  });

  // Liveness says the process is serving; it stays 200 while draining so that
  // kubelet does not restart a gateway that is shutting down on purpose.
  app.get("/liveness", (_request, reply) => {
    void reply.code(LIVENESS.status).headers(LIVENESS.headers).send(LIVENESS.body);
  });

  app.get("/metrics", (_request, reply) => {
    void reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8").send(options.metrics());
  });

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).header("content-type", TEXT).send(`not found: ${request.method} ${request.url}\n`);
  });

  return app;
}

// The health server kubelet and every client node's agent poll. It answers from
// cached state only; nothing here waits on a probe or on the kernel.
import Fastify, { type FastifyInstance } from "fastify";
import { cachedRenderer } from "./render.js";
import type { ReadinessView } from "./readiness.js";

export interface HealthServerOptions {
  readonly host: string;
  readonly port: number;
  readonly readiness: () => ReadinessView;
  readonly metrics: () => string;
}

export interface HealthServer {
  readonly address: { readonly host: string; readonly port: number };
  /** Stops accepting, ends idle keep-alive sockets, and waits at most `boundMs` for the rest. */
  close(boundMs?: number): Promise<void>;
}

const KEEP_ALIVE_TIMEOUT_MS = 5_000; // 5 s: pollers come every few seconds; fastify's 72 s would stall shutdown
const CONNECTION_TIMEOUT_MS = 10_000; // 10 s: a stuck client cannot hold a socket for long
const CLOSE_BOUND_MS = 2_000; // 2 s

const TEXT = "text/plain; charset=utf-8";
const JSON_TYPE = "application/json; charset=utf-8";

export function buildHealthApp(options: Omit<HealthServerOptions, "host" | "port">): FastifyInstance {
  const app = Fastify({
    logger: false,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    forceCloseConnections: true,
    bodyLimit: 1024,
    return503OnClosing: true,
  });
  const render = cachedRenderer();

  app.get("/readiness", (request, reply) => {
    const rendered = render(options.readiness());
    const wantsJson = request.headers.accept?.includes("application/json") === true;
    void reply
      .code(rendered.status)
      .header("content-type", wantsJson ? JSON_TYPE : TEXT)
      .header("cache-control", "no-store")
      .send(wantsJson ? rendered.json : rendered.text);
  });

  // Liveness says the process is serving; it stays 200 while draining so that
  // kubelet does not restart a gateway that is shutting down on purpose.
  app.get("/liveness", (_request, reply) => {
    void reply.header("content-type", TEXT).send("ok\n");
  });

  app.get("/metrics", (_request, reply) => {
    void reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8").send(options.metrics());
  });

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).header("content-type", TEXT).send(`not found: ${request.method} ${request.url}\n`);
  });

  return app;
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const app = buildHealthApp(options);
  await app.listen({ host: options.host, port: options.port });
  const bound = app.server.address();
  const port = typeof bound === "object" && bound ? bound.port : options.port;
  return {
    address: { host: options.host, port },
    async close(boundMs = CLOSE_BOUND_MS) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          app.server.closeAllConnections();
          resolve();
        }, boundMs);
      });
      await Promise.race([app.close(), bound]);
      clearTimeout(timer);
    },
  };
}

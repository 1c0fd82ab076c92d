// The health server kubelet and every client node's agent poll. It answers from
// cached state only; nothing here waits on a probe or on the kernel.
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import Fastify, { type FastifyInstance } from "fastify";
import { cachedRenderer, type RenderedReadiness } from "./render.js";
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
const REQUEST_TIMEOUT_MS = 0; // none, as fastify sets it; the connection timeout bounds a request
const CLOSE_BOUND_MS = 2_000; // 2 s

const TEXT = "text/plain; charset=utf-8";
const JSON_TYPE = "application/json; charset=utf-8";
const LIVENESS_BODY = "ok\n";

/** A complete answer: status, headers (content-length included) and body. */
interface Answer {
  readonly status: number;
  readonly headers: Readonly<OutgoingHttpHeaders>;
  readonly body: string;
}

const answer = (
  status: number,
  contentType: string,
  body: string,
  extra: OutgoingHttpHeaders = {},
): Answer => ({
  status,
  headers: Object.freeze({
    "content-type": contentType,
    ...extra,
    "content-length": Buffer.byteLength(body),
  }),
  body,
});

const LIVENESS = answer(200, TEXT, LIVENESS_BODY);

/**
 * The readiness answers for the current rendering, text and JSON, with their
 * headers computed once per rendering rather than once per request.
 */
function readinessAnswers(readiness: () => ReadinessView): (accept: string | undefined) => Answer {
  const render = cachedRenderer();
  let answers: { rendered: RenderedReadiness; text: Answer; json: Answer } | undefined;
  return (accept) => {
    const rendered = render(readiness());
    if (answers?.rendered !== rendered) {
      const noStore = { "cache-control": "no-store" };
      answers = {
        rendered,
        text: answer(rendered.status, TEXT, rendered.text, noStore),
        json: answer(rendered.status, JSON_TYPE, rendered.json, noStore),
      };
    }
    return accept?.includes("application/json") === true ? answers.json : answers.text;
  };
}

/** Path of a request URL without its query, as fastify routes it. */
function isPath(url: string | undefined, path: string): boolean {
  return url === path || (url !== undefined && url.startsWith(path) && url.charCodeAt(path.length) === 63); // "?"
}

/**
 * The answers kubelet and the node agents poll for, written straight to the
 * socket before fastify's router: GET and HEAD of /readiness and /liveness,
 * nothing else. Through fastify, /readiness took 1.36 times the CPU of a bare
 * node:http server answering the same body (82 vs 60 us a request) and served
 * 0.67-0.70 of its requests a second with 64 connections on these 2-core
 * machines; fastify still serves every other route, and these two when the
 * app is injected (tests) or the URL is anything but the plain path.
 */
function probeFastPath(
  readiness: (accept: string | undefined) => Answer,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const { method } = req;
    if (method !== "GET" && method !== "HEAD") return false;
    let reply: Answer;
    if (isPath(req.url, "/readiness")) reply = readiness(req.headers.accept);
    else if (isPath(req.url, "/liveness")) reply = LIVENESS;
    else return false;
    res.writeHead(reply.status, reply.headers);
    if (method === "HEAD") res.end();
    else res.end(reply.body);
    return true;
  };
}

export function buildHealthApp(options: Omit<HealthServerOptions, "host" | "port">): FastifyInstance {
  const readiness = readinessAnswers(options.readiness);
  const fastPath = probeFastPath(readiness);
  const app = Fastify({
    logger: false,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    forceCloseConnections: true,
    bodyLimit: 1024,
    return503OnClosing: true,
    // What fastify does for its own server, plus the fast path in front.
    serverFactory: (handler) => {
      const server = createServer((req, res) => {
        if (!fastPath(req, res)) handler(req, res);
      });
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
      server.requestTimeout = REQUEST_TIMEOUT_MS;
      server.setTimeout(CONNECTION_TIMEOUT_MS);
      return server;
    },
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

// The health server kubelet and every client node's agent poll. It answers from
// cached state only; nothing here waits on a probe or on the kernel.
//
// A plain node:http server listens first and answers the two polled routes
// itself (the fast path); fastify, which serves everything else, loads once
// the port listens (~110 ms of module loading that would otherwise delay the
// first accepted connection). Requests for fastify that arrive before it is
// ready wait for it, in order.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { FastifyInstance } from "fastify";
import { LIVENESS, readinessAnswers, type Answer, type ReadinessAnswers } from "./health-answers.js";
import type { ReadinessView } from "../readiness/readiness.js";

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
function probeFastPath(readiness: ReadinessAnswers): (req: IncomingMessage, res: ServerResponse) => boolean {
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

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (error: Error): void => reject(error);
    server.once("error", failed);
    server.listen({ host, port }, () => {
      server.off("error", failed);
      resolve();
    });
  });
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const readiness = readinessAnswers(options.readiness);
  const fastPath = probeFastPath(readiness);
  const toFastify: { route?: (req: IncomingMessage, res: ServerResponse) => void } = {};
  const waiting: [IncomingMessage, ServerResponse][] = [];
  const server = createServer((req, res) => {
    if (fastPath(req, res)) return;
    if (toFastify.route) toFastify.route(req, res);
    else waiting.push([req, res]);
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.setTimeout(CONNECTION_TIMEOUT_MS);
  await listen(server, options.host, options.port);

  let app: FastifyInstance;
  try {
    const { buildHealthApp } = await import("./health-app.js");
    app = buildHealthApp(options, { server, readinessAnswers: readiness });
    await app.ready();
  } catch (error) {
    server.close();
    server.closeAllConnections();
    throw error;
  }
  toFastify.route = (req, res) => app.routing(req, res);
  for (const [req, res] of waiting.splice(0)) toFastify.route(req, res);

  const bound = server.address();
  const port = typeof bound === "object" && bound ? bound.port : options.port;
  return {
    address: { host: options.host, port },
    async close(boundMs = CLOSE_BOUND_MS) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // fastify answers 503 from here on (return503OnClosing); it does not
      // close a server it did not start listening, so that is done here.
      await app.close();
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, boundMs);
      });
      await Promise.race([closed, late]);
      clearTimeout(timer);
    },
  };
}

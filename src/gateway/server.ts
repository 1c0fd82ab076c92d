// The health server kubelet and every client node's agent poll. It answers from
// cached state only; nothing here waits on a probe or on the kernel.
//
// A plain node:http server listens first and answers the two polled routes
// itself (the fast path); fastify, which serves everything else, loads once
// the port listens (~110 ms of module loading that would otherwise delay the
// first accepted connection). Requests for fastify that arrive before it is
// ready wait for it, in order.
//
// Any pod can reach the port, so the server is hardened against abuse: a
// bounded connection table below the fd limit (./health-connections.ts),
// short header and keep-alive timeouts, a small header limit, no request
// bodies, and neither a failed accept nor a client error can end the process.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { ReadinessView } from "../readiness/readiness.js";
import { connectionBound, FD_RESERVE, openFilesLimit } from "./fd-limit.js";
import { LIVENESS, readinessAnswers, TEXT, type Answer, type ReadinessAnswers } from "./health-answers.js";
import { HealthConnections, type ConnectionStats, type ShedReason } from "./health-connections.js";
import { disarmParser } from "./parser-disarm.js";

/** What an operator tunes (HEALTH_MAX_CONNECTIONS, HEALTH_HEADER_TIMEOUT, HEALTH_KEEPALIVE_TIMEOUT). */
export interface HealthLimits {
  /** Most connections held at once; lowered to fit under the open files limit. */
  readonly maxConnections: number;
  /** A complete request head must arrive within this time of connecting or of its first byte. */
  readonly headerTimeoutMs: number;
  /** Idle keep-alive connections are closed after this time. */
  readonly keepAliveTimeoutMs: number;
}

export const DEFAULT_HEALTH_LIMITS: HealthLimits = Object.freeze({
  maxConnections: 4096,
  headerTimeoutMs: 3_000, // 3 s
  keepAliveTimeoutMs: 5_000, // 5 s: pollers come every few seconds; fastify's 72 s would stall shutdown
});

export interface HealthServerOptions {
  readonly host: string;
  readonly port: number;
  readonly readiness: () => ReadinessView;
  readonly metrics: () => string;
  readonly limits?: HealthLimits;
  /** Descriptors kept free for the rest of the process; default FD_RESERVE. */
  readonly fdReserve?: number;
  /** A connection the kernel queued could not be accepted (EMFILE, ENFILE); the server goes on. */
  readonly onAcceptError?: (error: NodeJS.ErrnoException) => void;
}

export interface HealthServerStats extends ConnectionStats {
  /** The open files limit the bound was derived from. */
  readonly fdLimit: number;
}

export interface HealthServer {
  readonly address: { readonly host: string; readonly port: number };
  stats(): HealthServerStats;
  /** Stops accepting, ends idle keep-alive sockets, and waits at most `boundMs` for the rest. */
  close(boundMs?: number): Promise<void>;
}

const MAX_HEADER_BYTES = 4_096; // 4 KiB: request line and headers; kubelet sends ~150 bytes
const MAX_REQUESTS_PER_CONNECTION = 100; // a keep-alive poller reconnects after that; a pipelined flood is cut off
const CONNECTION_TIMEOUT_MS = 10_000; // 10 s without a byte either way, e.g. a client that does not read its answer
const TIMEOUT_CHECK_MS = 500; // 0.5 s: how often header timeouts are checked (Node's default is 30 s)
const CLOSE_BOUND_MS = 2_000; // 2 s
// The kernel's accept queue (capped by net.core.somaxconn, 4096 by default
// since Linux 5.4): Node's 511 overflows when a flood's connections time out
// together and come back at once, and an overflow drops kubelet's SYN too,
// whose retransmit comes only after its 1 s timeout.
const LISTEN_BACKLOG = 4_096;

/** Whether a request carries a body: the health server reads none. */
function hasBody(req: IncomingMessage): boolean {
  const { headers } = req;
  const length = headers["content-length"];
  return (length !== undefined && length !== "0") || headers["transfer-encoding"] !== undefined;
}

const BODY_REFUSED = `request bodies are not accepted here\n`;

/** 413 and close: the body is never parsed, and the connection ends once the answer is written. */
function refuseBody(res: ServerResponse): void {
  res.writeHead(413, {
    "content-type": TEXT,
    "content-length": Buffer.byteLength(BODY_REFUSED),
    connection: "close",
  });
  res.end(BODY_REFUSED);
}

/** A request is being answered on this connection (Node keeps the response in flight there). */
const answering = (socket: Socket): boolean =>
  (socket as unknown as { _httpMessage?: unknown })._httpMessage != null;

/** How a parser or timeout error on a connection is counted and answered; undefined: just close it. */
function clientErrorAnswer(code: string | undefined): { reason: ShedReason; status: string } | undefined {
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") return { reason: "timeout", status: "408 Request Timeout" };
  if (code === "HPE_HEADER_OVERFLOW") {
    return { reason: "headers_too_large", status: "431 Request Header Fields Too Large" };
  }
  if (code?.startsWith("HPE_") === true) return { reason: "malformed", status: "400 Bad Request" };
  return undefined;
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
    server.listen({ host, port, backlog: LISTEN_BACKLOG }, () => {
      server.off("error", failed);
      resolve();
    });
  });
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const limits = options.limits ?? DEFAULT_HEALTH_LIMITS;
  const fdLimit = openFilesLimit();
  const connections = new HealthConnections<Socket>(
    connectionBound(limits.maxConnections, fdLimit, options.fdReserve ?? FD_RESERVE),
    answering,
  );
  const readiness = readinessAnswers(options.readiness);
  const fastPath = probeFastPath(readiness);
  const toFastify: { route?: (req: IncomingMessage, res: ServerResponse) => void } = {};
  const waiting: [IncomingMessage, ServerResponse][] = [];
  const server = createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: limits.headerTimeoutMs,
      // No bodies are read, so a request is complete with its head.
      requestTimeout: limits.headerTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: TIMEOUT_CHECK_MS,
    },
    (req, res) => {
      if (hasBody(req)) {
        connections.countShed("request_body");
        refuseBody(res);
        return;
      }
      if (fastPath(req, res)) return;
      if (toFastify.route) toFastify.route(req, res);
      else waiting.push([req, res]);
    },
  );
  server.maxRequestsPerSocket = MAX_REQUESTS_PER_CONNECTION;
  server.setTimeout(CONNECTION_TIMEOUT_MS);
  // Past the limit Node answers each further pipelined request 503, which
  // costs as much as answering it; the connection is closed instead, and the
  // rest of what it sent is not parsed (./parser-disarm.ts).
  server.on("dropRequest", (_req: IncomingMessage, socket: Socket) => {
    if (socket.destroyed) return;
    connections.countShed("requests_per_connection");
    disarmParser(socket);
    socket.destroy();
  });
  server.on("connection", (socket: Socket) => {
    const held = connections.admit(socket, socket.remoteAddress ?? "");
    socket.once("close", () => connections.closed(held));
  });
  // Replaces Node's default, which answers the same but counts nothing.
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    const answer = clientErrorAnswer(error.code);
    if (answer) {
      connections.countShed(answer.reason);
      if (socket.writable && !answering(socket as Socket)) {
        socket.write(`HTTP/1.1 ${answer.status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      }
    }
    socket.destroy();
  });
  await listen(server, options.host, options.port);
  // After listening, the server's only errors are failed accepts: with no
  // listener, one EMFILE would be an uncaught exception.
  server.on("error", (error: NodeJS.ErrnoException) => {
    connections.countShed("accept_error");
    options.onAcceptError?.(error);
  });

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
    stats: () => ({ ...connections.stats(), fdLimit }),
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

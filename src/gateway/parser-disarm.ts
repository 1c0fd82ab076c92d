// Stops the work an HTTP connection's parser does for the rest of a read.
//
// When a client pipelines past the per-connection request limit, Node emits
// 'dropRequest' and the server closes the connection, but the parser still
// runs through the rest of the 64 KiB it read: for a flood of small pipelined
// requests that is ~1,600 more request and response objects per connection,
// each answered 503 into a socket that is already gone. Under the health
// port's abuse test that garbage was half of the gateway's CPU (GC 290 ms a
// second against 144 with no pipelined flood) and most of kubelet's p99.
//
// Node offers no public way to stop a parser mid-read, so the parser's
// JavaScript callbacks (node:http internals: the slots named by the parser
// class's kOn* constants, as in Node 20) are swapped for no-ops and put back
// when the socket closes. Node's own close handler returns the parser to its pool first, and
// ours runs right after it in the same 'close' emit, before anything can take
// the parser out again. Where the parser is not there (a future Node), nothing
// is swapped and the connection is just closed, as before.
import type { Socket } from "node:net";

const CALLBACKS = ["kOnHeaders", "kOnHeadersComplete", "kOnBody", "kOnMessageComplete"] as const;

type Parser = Record<number, unknown> & { constructor: Partial<Record<string, unknown>> };

const noop = (): number => 0; // 0: parse on as usual (kOnHeadersComplete's "no body to skip")

/** Makes the connection's parser inert until the socket closes; returns whether it could. */
export function disarmParser(socket: Socket): boolean {
  const parser = (socket as unknown as { parser?: Parser | null }).parser;
  if (!parser) return false;
  const slots = CALLBACKS.map((name) => parser.constructor[name]);
  if (!slots.every((slot): slot is number => typeof slot === "number")) return false;
  const saved = slots.map((slot) => parser[slot]);
  if (saved.some((callback) => typeof callback !== "function")) return false;
  for (const slot of slots) parser[slot] = noop;
  socket.once("close", () => slots.forEach((slot, i) => (parser[slot] = saved[i])));
  return true;
}

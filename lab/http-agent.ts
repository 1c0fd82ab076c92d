// Makes HTTP requests from inside a lab namespace on behalf of the process that
// started it (sockets belong to the namespace of the process that opens them).
// Requests come as JSON lines on stdin, answers go as JSON lines to stdout:
//
//   in:  {"id":1,"url":"http://203.0.113.10:8000/","timeoutMs":2000,"headers":{}}
//   out: {"id":1,"status":200,"body":"198.51.100.10\n","ms":1.2}  or  {"id":1,"error":"ECONNREFUSED ..."}
//
// Each request uses a fresh connection, closed after the answer: a pooled one
// would keep the path it was opened on after a route change. The first line
// out is {"ready":true}; the agent ends when stdin closes.
import { request } from "node:http";
import { createInterface } from "node:readline";

export interface AgentRequest {
  readonly id: number;
  readonly url: string;
  readonly timeoutMs: number;
  readonly headers?: Readonly<Record<string, string>>;
}

export type AgentAnswer =
  | { readonly id: number; readonly status: number; readonly body: string; readonly ms: number }
  | { readonly id: number; readonly error: string };

const BODY_LIMIT = 64 * 1024;

function answer(ask: AgentRequest): Promise<AgentAnswer> {
  const start = performance.now();
  return new Promise((resolve) => {
    const req = request(ask.url, {
      agent: false,
      headers: { connection: "close", ...ask.headers },
      signal: AbortSignal.timeout(ask.timeoutMs),
    });
    const fail = (error: NodeJS.ErrnoException): void => {
      const code = error.name === "AbortError" ? "TIMEOUT" : (error.code ?? error.name);
      resolve({ id: ask.id, error: `${code}: ${error.message}` });
    };
    req.once("error", fail);
    req.once("response", (res) => {
      let body = "";
      res.once("error", fail);
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (body.length < BODY_LIMIT) body += chunk;
      });
      res.once("end", () =>
        resolve({ id: ask.id, status: res.statusCode ?? 0, body, ms: performance.now() - start }),
      );
    });
    req.end();
  });
}

console.log(JSON.stringify({ ready: true }));
createInterface({ input: process.stdin }).on("line", (line) => {
  const ask = JSON.parse(line) as AgentRequest;
  void answer(ask).then((reply) => process.stdout.write(`${JSON.stringify(reply)}\n`));
});

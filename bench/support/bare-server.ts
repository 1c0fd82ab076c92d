// The baseline for /readiness: a bare node:http server in its own process
// (plain node, no loader, like the gateway's dist/) that answers one fixed
// body, status and content-type. Loopback only.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface FixedAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

// CommonJS for `node -e`.
const SOURCE = `
const http = require("node:http");
const body = Buffer.from(process.env.BENCH_BODY, "base64");
const status = Number(process.env.BENCH_STATUS);
const headers = {
  "content-type": process.env.BENCH_CONTENT_TYPE,
  "cache-control": "no-store",
  "content-length": body.length,
};
const server = http.createServer((req, res) => {
  if (req.url === "/readiness") {
    res.writeHead(status, headers);
    res.end(body);
  } else {
    res.writeHead(404);
    res.end();
  }
});
server.keepAliveTimeout = 5000;
server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: server.address().port })));
`;

/** Starts the server; resolves once it listens, with its port on 127.0.0.1. */
export async function startBareServer(answer: FixedAnswer): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["-e", SOURCE], {
    env: {
      BENCH_BODY: Buffer.from(answer.body).toString("base64"),
      BENCH_STATUS: String(answer.status),
      BENCH_CONTENT_TYPE: answer.contentType,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  try {
    const first = await new Promise<string>((resolve, reject) => {
      lines.once("line", resolve);
      child.once("exit", (code) => reject(new Error(`bare server exited with ${code} before listening`)));
    });
    return { child, port: (JSON.parse(first) as { port: number }).port };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  } finally {
    lines.close();
  }
}

// The parser of a connection cut for pipelining too much stops at once, and
// the parser goes back to Node's pool whole: later connections are parsed as
// usual. Real node:http servers and sockets on loopback.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { disarmParser } from "../src/gateway/parser-disarm.js";

const LIMIT = 10;
const FLOOD = Buffer.from("GET /flood HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5000));

interface Counts {
  requests: number;
  drops: number;
}

async function serve(disarm: boolean): Promise<{ server: Server; port: number; counts: Counts }> {
  const counts: Counts = { requests: 0, drops: 0 };
  const server = createServer((req, res) => {
    counts.requests++;
    res.end(`${req.method} ${req.url}`);
  });
  server.maxRequestsPerSocket = LIMIT;
  server.on("dropRequest", (_req: IncomingMessage, socket: Socket) => {
    counts.drops++;
    if (socket.destroyed) return;
    if (disarm) assert.equal(disarmParser(socket), true);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  return { server, port: address.port, counts };
}

/** Sends `payload` on a fresh connection and returns everything answered until the server closes it (at most 5 s). */
function exchange(port: number, payload: Buffer | string, end = false): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(5_000, () => socket.destroy());
    let answer = "";
    socket.setEncoding("latin1");
    socket.on("data", (text: string) => (answer += text));
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(answer));
    if (end) socket.end(payload);
    else socket.write(payload);
  });
}

describe("disarmParser", () => {
  let plain: Awaited<ReturnType<typeof serve>>;
  let disarmed: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    [plain, disarmed] = await Promise.all([serve(false), serve(true)]);
  });
  after(() => {
    for (const { server } of [plain, disarmed]) server.close();
  });

  it("stops a pipelined flood at the first dropped request; without it Node parses the whole read", async () => {
    await exchange(plain.port, FLOOD);
    await exchange(disarmed.port, FLOOD);
    assert.equal(disarmed.counts.drops, 1);
    assert.equal(disarmed.counts.requests, LIMIT);
    // The baseline that shows the test can fail: Node went on through the rest of its read.
    assert.ok(plain.counts.drops > 100, `${plain.counts.drops} drops without disarming`);
  });

  it("leaves the pooled parsers whole: later connections are answered in full", async () => {
    for (let i = 0; i < 20; i++) await exchange(disarmed.port, FLOOD);
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        exchange(
          disarmed.port,
          `GET /a${i} HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
          true,
        ),
      ),
    );
    answers.forEach((answer, i) => {
      assert.match(
        answer,
        new RegExp(`^HTTP/1\\.1 200 OK\\r\\n[^]*\\r\\n\\r\\nGET /a${i}HTTP/1\\.1 200 OK\\r\\n`),
      );
    });
    // Each flood cut after LIMIT requests, then 50 x 2 answered.
    assert.equal(disarmed.counts.requests, 21 * LIMIT + 100);
  });
});

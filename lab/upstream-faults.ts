// HTTP upstreams that fail the way real ones do, for a lab's external host: one
// port per behaviour on each --host address. "answer" replies 200 at once,
// "trickle" sends its headers and then one body byte every 50 ms, "reset"
// resets every connection as it is accepted, "hang" accepts and never answers.
//
//   ip netns exec <ns> node --import tsx lab/upstream-faults.ts --host 203.0.113.10 [--host ...]
//
// Prints one JSON line, {"ports":{"answer":N,"trickle":N,"reset":N,"hang":N}}, once every
// server listens (ports chosen by the kernel, the same on every host); ends on SIGTERM/SIGINT.
import { createServer, type Server, type Socket } from "node:net";
import { parseArgs } from "node:util";

const UPSTREAM_FAULTS = ["answer", "trickle", "reset", "hang"] as const;
type UpstreamFault = (typeof UPSTREAM_FAULTS)[number];

const TRICKLE_EVERY_MS = 50;
/** A peer that never closes is dropped after this long, so that nothing here grows without bound. */
const IDLE_LIMIT_MS = 30_000;

function handle(fault: UpstreamFault, socket: Socket): void {
  socket.on("error", () => undefined); // peers abort at their deadline
  socket.setTimeout(IDLE_LIMIT_MS, () => socket.destroy());
  switch (fault) {
    case "answer":
      socket.once("data", () =>
        socket.end("HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n"),
      );
      return;
    case "trickle": {
      socket.once("data", () => {
        socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\nconnection: close\r\n\r\n");
        const drip = setInterval(() => socket.write("."), TRICKLE_EVERY_MS);
        socket.once("close", () => clearInterval(drip));
      });
      return;
    }
    case "reset":
      socket.resetAndDestroy();
      return;
    case "hang":
      return;
  }
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : port);
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { host: { type: "string", multiple: true } }, strict: true });
  const hosts = values.host ?? [];
  if (hosts.length === 0) {
    console.error("usage: upstream-faults.ts --host ADDRESS [--host ADDRESS...]");
    process.exit(2);
  }
  const servers: Server[] = [];
  const ports: Partial<Record<UpstreamFault, number>> = {};
  for (const fault of UPSTREAM_FAULTS) {
    for (const host of hosts) {
      const server = createServer((socket) => handle(fault, socket));
      servers.push(server);
      ports[fault] = await listen(server, host, ports[fault] ?? 0);
    }
  }
  console.log(JSON.stringify({ ports }));
  const stop = (): void => {
    for (const server of servers) server.close();
    process.exit(0);
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

await main();

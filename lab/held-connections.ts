// Long-lived TCP connections through the gateway, for the telemetry tests:
// each stays open (and in conntrack's ESTABLISHED state) until the program ends.
//
//   server: node --import tsx lab/held-connections.ts server --host 203.0.113.10 --host 2001:db8:113::10 --port 7100
//           prints {"listening":["203.0.113.10:7100","[2001:db8:113::10]:7100"]}; echoes what it gets, never closes.
//   client: node --import tsx lab/held-connections.ts client --host 203.0.113.10 --port 7100 --count 40 --bytes 10000
//           opens `count` connections, sends `bytes` bytes on each and waits for the echo, then prints
//           {"open":40,"echoed":400000} and holds them until SIGTERM.
import { connect, createServer, type Socket } from "node:net";
import { parseArgs } from "node:util";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: "string", multiple: true },
    port: { type: "string", default: "7100" },
    count: { type: "string", default: "10" },
    bytes: { type: "string", default: "1000" },
  },
});
const [mode] = positionals;
const hosts = values.host ?? [];
const port = Number(values.port);
if ((mode !== "server" && mode !== "client") || hosts.length === 0 || !Number.isInteger(port)) {
  console.error("usage: held-connections.ts server|client --host ADDRESS --port N [--count C --bytes B]");
  process.exit(2);
}

const CONNECT_TIMEOUT_MS = 5_000;

function openEchoed(host: string, bytes: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let echoed = 0;
    const timer = setTimeout(
      () => socket.destroy(new Error(`no echo from ${host}:${port}`)),
      CONNECT_TIMEOUT_MS,
    );
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("data", (chunk: Buffer) => {
      echoed += chunk.length;
      if (echoed >= bytes) {
        clearTimeout(timer);
        socket.on("error", () => undefined);
        resolve(socket);
      }
    });
    socket.once("connect", () => socket.write(Buffer.alloc(bytes, 0x61)));
  });
}

if (mode === "server") {
  const listening: string[] = [];
  for (const host of hosts) {
    const server = createServer((socket) => {
      socket.on("error", () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => server.listen({ host, port }, resolve));
    listening.push(host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);
  }
  console.log(JSON.stringify({ listening }));
} else {
  const count = Number(values.count);
  const bytes = Number(values.bytes);
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) sockets.push(await openEchoed(hosts[0]!, bytes));
  console.log(JSON.stringify({ open: sockets.length, echoed: sockets.length * bytes }));
  process.once("SIGTERM", () => {
    for (const socket of sockets) socket.destroy();
    process.exit(0);
  });
}

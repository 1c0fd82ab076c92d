// Both ends of the connections that flow-log and drain tests generate, with
// known ports and byte counts.
//
//   server: node --import tsx lab/flow-peer.ts server --host H --port P --reply-bytes M
//           TCP and UDP on P; answers the first data of a TCP connection, and each
//           datagram, with M bytes (a datagram at most 1200); prints {"listening":P}.
//   tcp:    ... tcp --host H --port P [--local-port L] --send-bytes N --hold-ms T [--count C]
//           C connections one after another: send N bytes, read M, hold T ms, close
//           (FIN); prints one {"localPort","openedAt","closedAt","received"} line each.
//   udp:    ... udp --host H --port P --local-port L --send-bytes N
//           one datagram out, one back; prints the same line.
import { createSocket } from "node:dgram";
import { connect, createServer } from "node:net";
import { parseArgs } from "node:util";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: "string" },
    port: { type: "string" },
    "local-port": { type: "string", default: "0" },
    "send-bytes": { type: "string", default: "100" },
    "reply-bytes": { type: "string", default: "100" },
    "hold-ms": { type: "string", default: "0" },
    count: { type: "string", default: "1" },
  },
});
const [mode] = positionals;
const host = values.host ?? "";
const port = Number(values.port);
const localPort = Number(values["local-port"]);
const sendBytes = Number(values["send-bytes"]);
if (!["server", "tcp", "udp"].includes(mode ?? "") || host === "" || !Number.isInteger(port)) {
  console.error("usage: flow-peer.ts server|tcp|udp --host H --port P [options]");
  process.exit(2);
}

function server(replyBytes: number): void {
  const tcp = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.once("data", () => socket.write(Buffer.alloc(replyBytes, 0x61)));
    socket.on("end", () => socket.end());
  });
  const udp = createSocket(host.includes(":") ? "udp6" : "udp4");
  udp.on("message", (_msg, peer) =>
    udp.send(Buffer.alloc(Math.min(replyBytes, 1200), 0x62), peer.port, peer.address),
  );
  let listening = 0;
  const ready = (): void => {
    if (++listening === 2) console.log(JSON.stringify({ listening: port }));
  };
  tcp.listen({ host, port }, ready);
  udp.bind({ address: host, port }, ready);
}

function tcpExchange(holdMs: number, localPortNow: number): Promise<object> {
  return new Promise((resolve, reject) => {
    const openedAt = Date.now();
    let received = 0;
    const socket = connect({ host, port, ...(localPortNow > 0 ? { localPort: localPortNow } : {}) });
    socket.setTimeout(10_000, () => socket.destroy(new Error("timed out")));
    socket.once("error", reject);
    socket.once("connect", () => socket.write(Buffer.alloc(sendBytes, 0x63)));
    let ending = false;
    socket.on("data", (chunk) => {
      received += chunk.length;
      if (ending) return;
      ending = true;
      setTimeout(() => socket.end(), holdMs);
    });
    const local = (): number => socket.localPort ?? localPortNow;
    let usedPort = 0;
    socket.once("connect", () => (usedPort = local()));
    socket.once("close", () => resolve({ localPort: usedPort, openedAt, closedAt: Date.now(), received }));
  });
}

function udpExchange(): Promise<object> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
    const openedAt = Date.now();
    const timer = setTimeout(() => reject(new Error("no UDP answer")), 5_000);
    socket.once("message", (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve({ localPort, openedAt, closedAt: Date.now(), received: msg.length });
    });
    socket.bind(localPort, () => socket.send(Buffer.alloc(sendBytes, 0x64), port, host));
  });
}

if (mode === "server") {
  server(Number(values["reply-bytes"]));
} else if (mode === "udp") {
  console.log(JSON.stringify(await udpExchange()));
} else {
  for (let i = 0; i < Number(values.count); i++) {
    const fixed = localPort > 0 ? localPort + i : 0;
    console.log(JSON.stringify(await tcpExchange(Number(values["hold-ms"]), fixed)));
  }
}

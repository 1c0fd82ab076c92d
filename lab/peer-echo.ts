// The external host's peer echo: an HTTP server that answers every request with
// the address the request came from, so a client can see whether its source
// address was translated on the way (by the gateway) or not (direct).
//
//   ip netns exec <ns> node --import tsx lab/peer-echo.ts --port 8000 --host 203.0.113.10 --host 2001:db8:113::10
//
// Prints one JSON line, {"listening":["203.0.113.10:8000","[2001:db8:113::10]:8000"]}, once every
// address is bound; ends on SIGTERM/SIGINT. Every answer closes its connection.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { port: { type: "string", default: "8000" }, host: { type: "string", multiple: true } },
  strict: true,
});
const port = Number(values.port);
const hosts = values.host ?? [];
if (!Number.isInteger(port) || port < 0 || port > 65535 || hosts.length === 0) {
  console.error("usage: peer-echo.ts --port N --host ADDRESS [--host ADDRESS...]");
  process.exit(2);
}

/** The address as the peer wrote it: an IPv4 peer on an IPv6 socket shows as ::ffff:a.b.c.d. */
const peerAddress = (raw: string | undefined): string => (raw ?? "").replace(/^::ffff:(?=\d+\.)/, "");

function listen(server: Server, host: string, onPort: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(onPort, host, () => resolve(server.address() as AddressInfo));
  });
}

const servers: Server[] = [];
const listening: string[] = [];
for (const host of hosts) {
  const server = createServer((req, res) => {
    const seen = `${peerAddress(req.socket.remoteAddress)}\n`;
    res.writeHead(200, {
      "content-type": "text/plain",
      "content-length": Buffer.byteLength(seen),
      connection: "close",
    });
    res.end(seen);
  });
  servers.push(server);
  // With --port 0 the first address picks the port and the others share it.
  const bound = await listen(
    server,
    host,
    listening.length === 0 ? port : Number(/\d+$/.exec(listening[0]!)![0]),
  );
  listening.push(
    bound.family === "IPv6" ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`,
  );
}
console.log(JSON.stringify({ listening }));

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    for (const server of servers) server.close();
    for (const server of servers) server.closeAllConnections();
  });
}

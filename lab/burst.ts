// A burst of new TCP connections from many source addresses to one
// destination, for bench/snat-burst.ts. Every source opens its connections
// from the same source ports at the same moment: the case where SNAT has to
// pick new ports for many flows at once.
//
//   node --import tsx lab/burst.ts --host H --port P --sources A,B,... --first-port 40000 --ports 20
//   prints {"attempts","failed","slow","firstError"}: failed = no connection within 3 s
//   (reset, timeout), slow = connected only after a SYN retransmit (> 900 ms).
import { connect } from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string" },
    sources: { type: "string" },
    "first-port": { type: "string", default: "40000" },
    ports: { type: "string", default: "10" },
  },
});
const host = values.host ?? "";
const port = Number(values.port);
const sources = (values.sources ?? "").split(",").filter((s) => s !== "");
const firstPort = Number(values["first-port"]);

/** "ok", "slow", or why it failed. */
function attempt(localAddress: string, localPort: number): Promise<string> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect({ host, port, localAddress, localPort });
    socket.setTimeout(3_000, () => socket.destroy(new Error("timed out")));
    let outcome: string | undefined;
    socket.once("connect", () => {
      outcome = performance.now() - started > 900 ? "slow" : "ok";
    });
    socket.on("data", () => undefined);
    socket.once("error", (error) => {
      outcome ??= error.message;
    });
    socket.once("close", () => resolve(outcome ?? "closed before connecting"));
  });
}

let failed = 0;
let slow = 0;
let attempts = 0;
let firstError: string | undefined;
for (let i = 0; i < Number(values.ports); i++) {
  const results = await Promise.all(sources.map((source) => attempt(source, firstPort + i)));
  for (const result of results) {
    attempts++;
    if (result === "slow") slow++;
    else if (result !== "ok") {
      failed++;
      firstError ??= result;
    }
  }
}
console.log(JSON.stringify({ attempts, failed, slow, firstError }));

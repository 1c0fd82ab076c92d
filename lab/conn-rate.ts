// New TCP connections per second, both ends, for bench/forwarding.ts.
//
//   server: node --import tsx lab/conn-rate.ts server --host 203.0.113.10 --port 7000
//           prints {"listening":"203.0.113.10:7000"}; every connection gets one byte, then FIN.
//   client: node --import tsx lab/conn-rate.ts client --host 203.0.113.10 --port 7000 --seconds 3 --concurrency 4
//           prints {"connections":…,"errors":…,"seconds":…,"perSecond":…,"firstError":…} at the end.
//           With --rate N (bench/flow-logs.ts), paced: a connection starts every 1/N s, at most
//           --concurrency at a time; a start that finds them all busy is skipped and counted in
//           "behind", so the offered rate is known.
//
// One client connection is a whole exchange: connect, read the server's byte and
// its FIN, close. The server closes first, so TIME_WAIT sits on the server and
// the client's ephemeral ports do not run out. The client is one process, one
// thread: `concurrency` connections are in flight at a time on its event loop.
import { connect, createServer } from "node:net";
import { parseArgs } from "node:util";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: "string" },
    port: { type: "string", default: "7000" },
    seconds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "4" },
    rate: { type: "string", default: "0" },
  },
});
const [mode] = positionals;
const host = values.host;
const port = Number(values.port);
if ((mode !== "server" && mode !== "client") || !host || !Number.isInteger(port)) {
  console.error(
    "usage: conn-rate.ts server|client --host ADDRESS --port N [--seconds S --concurrency C --rate N]",
  );
  process.exit(2);
}

const CONNECTION_TIMEOUT_MS = 2_000;

function exchange(): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: host!, port });
    socket.setTimeout(CONNECTION_TIMEOUT_MS, () => socket.destroy(new Error("timed out")));
    socket.once("error", reject);
    socket.on("data", () => undefined);
    socket.once("close", (hadError) => {
      if (!hadError) resolve();
    });
  });
}

async function client(seconds: number, concurrency: number): Promise<void> {
  let connections = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const until = start + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      try {
        await exchange();
        connections += 1;
      } catch (error) {
        errors += 1;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  console.log(
    JSON.stringify({ connections, errors, seconds: elapsed, perSecond: connections / elapsed, firstError }),
  );
}

/** Open loop: starts are due at a fixed rate whatever the earlier ones do; in flight at most `concurrency`. */
async function pacedClient(seconds: number, concurrency: number, rate: number): Promise<void> {
  let connections = 0;
  let errors = 0;
  let behind = 0;
  let started = 0;
  let inFlight = 0;
  let firstError: string | undefined;
  const pending = new Set<Promise<void>>();
  const start = performance.now();
  const due = Math.floor(seconds * rate);
  while (started + behind < due) {
    const dueNow = Math.min(due, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
    for (; started + behind < dueNow;) {
      if (inFlight >= concurrency) {
        behind += 1;
        continue;
      }
      started += 1;
      inFlight += 1;
      const done = exchange()
        .then(
          () => void (connections += 1),
          (error: unknown) => {
            errors += 1;
            firstError ??= error instanceof Error ? error.message : String(error);
          },
        )
        .finally(() => {
          inFlight -= 1;
          pending.delete(done);
        });
      pending.add(done);
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  // The rate is over the time starts were due; the last exchanges finish after it.
  const elapsed = (performance.now() - start) / 1000;
  await Promise.all(pending);
  console.log(
    JSON.stringify({
      connections,
      errors,
      behind,
      seconds: elapsed,
      perSecond: connections / elapsed,
      firstError,
    }),
  );
}

if (mode === "server") {
  const server = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.end("x");
  });
  server.listen({ host, port, backlog: 4096 }, () =>
    console.log(JSON.stringify({ listening: `${host}:${port}` })),
  );
  process.once("SIGTERM", () => server.close());
} else if (Number(values.rate) > 0) {
  await pacedClient(Number(values.seconds), Number(values.concurrency), Number(values.rate));
} else {
  await client(Number(values.seconds), Number(values.concurrency));
}

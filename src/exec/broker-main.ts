// The spawn broker (a child of the gateway, started by spawn-broker.ts): runs
// the tools the gateway asks for, so that the gateway's own large heap is never
// forked at run time. It talks only over the IPC channel to its parent (a pipe
// pair no other process can open) and ends when that channel closes: it never
// outlives the gateway. SIGINT and SIGTERM are ignored: a Ctrl-C reaches the
// whole process group, and the gateway keeps running its tools while it drains.
import { parseRequest, type BrokerMessage } from "./broker-protocol.js";
import { errorMessage } from "../errors.js";
import { spawnCommand } from "./spawn-command.js";

const send = process.send?.bind(process);
if (send === undefined) {
  process.stderr.write("broker-main.js is the gateway's spawn broker: the gateway starts it, not a user\n");
  process.exit(2);
}
const reply = (message: BrokerMessage): void => {
  if (process.connected) send(message);
};

process.title = "egress-gateway-broker";
process.on("SIGINT", () => undefined);
process.on("SIGTERM", () => undefined);
process.on("disconnect", () => process.exit(0));
process.on("message", (message) => {
  const request = parseRequest(message);
  if (request === undefined) return;
  // spawn() throws for an argv it refuses (an empty file name): a failed result, as everything else.
  spawnCommand(request.argv, request.input)
    .catch((error: unknown) => ({
      ok: false,
      stdout: "",
      stderr: `${request.argv[0] ?? ""}: ${errorMessage(error)}`,
    }))
    .then(
      (result) => reply({ type: "reply", id: request.id, ...result }),
      () => undefined,
    );
});
reply({ type: "ready" });

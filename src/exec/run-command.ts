// The one way the gateway and init run a tool. In the gateway, through its
// spawn broker once one is installed (useSpawnBroker): a fork from the
// gateway's large heap blocks its event loop for 10-15 ms; otherwise (init,
// tests, labs, the broker down) in this process.
import { spawnCommand, type CommandResult } from "./spawn-command.js";

export type { CommandResult, CommandRunner } from "./spawn-command.js";

/** What runCommand hands a command to instead of spawning it here. */
export interface CommandBroker {
  run(argv: readonly string[], input?: string): Promise<CommandResult>;
}

let broker: CommandBroker | undefined;

/** Installs (or, with undefined, removes) the broker that runCommand goes through. */
export function useSpawnBroker(next: CommandBroker | undefined): void {
  broker = next;
}

export function runCommand(argv: readonly string[], input?: string): Promise<CommandResult> {
  return broker === undefined ? spawnCommand(argv, input) : broker.run(argv, input);
}

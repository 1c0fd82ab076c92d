// Runs one command with optional stdin and collects its output. Never throws for
// what the command does: a missing binary or a non-zero exit is a result to report.
// The gateway runs this inside its spawn broker (broker-main.ts); init, and the
// gateway while its broker is down, run it in their own process.
import { spawn } from "node:child_process";

export interface CommandResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** How callers that take an injectable runner (tests, labs) type it: runCommand's shape. */
export type CommandRunner = (argv: readonly string[], input?: string) => Promise<CommandResult>;

export function spawnCommand(argv: readonly string[], input?: string): Promise<CommandResult> {
  const [file = "", ...args] = argv;
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, LC_ALL: "C" },
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    // A command that exits before reading its input closes the pipe; its exit status says why.
    child.stdin.on("error", () => undefined);
    child.on("error", (error: NodeJS.ErrnoException) => {
      const why = error.code === "ENOENT" ? `${file} is not installed` : `${file}: ${error.message}`;
      resolve({ ok: false, stdout: "", stderr: why });
    });
    child.on("close", (code, signal) => {
      const err = Buffer.concat(stderr).toString("utf8");
      resolve({
        ok: code === 0,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: code === 0 || err.trim() !== "" ? err : `${file} exited with ${code ?? signal}`,
      });
    });
    child.stdin.end(input ?? "");
  });
}

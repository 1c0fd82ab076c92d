// Reads the pod's conntrack table through `conntrack -L` (the same line format
// as the events, so the same parser), for what events cannot tell: the
// connections still in the table when the gateway stops (flow logs' last
// records). The live count of the drain is the kernel telemetry's.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { parseConntrackLine, type ConntrackEvent } from "./conntrack-event.js";
import { isForwarded } from "./record.js";

/** TCP states of a connection that is over but still in the table. */
export const FINISHED_TCP_STATES: ReadonlySet<string> = new Set(["TIME_WAIT", "CLOSE"]);

/** A forwarded connection that still carries traffic: every state but TCP's TIME_WAIT and CLOSE. */
export function isLive(event: ConntrackEvent): boolean {
  return event.protocol !== "tcp" || !FINISHED_TCP_STATES.has(event.state ?? "");
}

/** Every translated entry of the table, parsed; rejects when conntrack cannot run or fails. */
export function listTranslated(
  podAddresses: ReadonlySet<string>,
  command = "conntrack",
  timeoutMs = 10_000,
): Promise<ConntrackEvent[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, ["-L", "--src-nat", "-o", "extended,id,ktimestamp"], {
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", TZ: "UTC" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const entries: ConntrackEvent[] = [];
    createInterface({ input: child.stdout }).on("line", (line) => {
      const event = parseConntrackLine(line);
      if (event !== undefined && isForwarded(event, podAddresses)) entries.push(event);
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(entries);
      else
        reject(new Error(`conntrack -L exited (${signal ?? code}): ${stderr.trim().split("\n")[0] ?? ""}`));
    });
  });
}

// Runs HTTP probes in a process of its own and prints one JSON line: for probes
// that must run inside a test namespace (`ip netns exec`) or with another trust
// store (NODE_EXTRA_CA_CERTS). A process that holds no server also makes leaks
// plain: any socket handle left after a probe resolved is the prober's.
//
// Usage: node --import tsx http-probe-runner.ts '{"targets":["http://…"],"deadlineMs":500}'
import { createHttpProber, type HttpProbeResult } from "../../src/probes/http.js";

export interface RunnerSpec {
  readonly targets: readonly string[];
  readonly deadlineMs: number;
  readonly requireSuccessStatus?: boolean;
}

export interface RunnerReport {
  readonly result: HttpProbeResult;
  /** Socket-related handles still active right after the probe resolved. */
  readonly openHandles: readonly string[];
}

// Not PipeWrap: stdout and stderr are pipes when the parent reads them.
const SOCKET_HANDLES = /TCP|TLS|ConnectWrap|GetAddrInfo/;

function openSocketHandles(): string[] {
  return process.getActiveResourcesInfo().filter((name) => SOCKET_HANDLES.test(name));
}

const spec = JSON.parse(process.argv[2] ?? "{}") as RunnerSpec;
const probe = createHttpProber({ requireSuccessStatus: spec.requireSuccessStatus ?? false });
const reports: RunnerReport[] = [];
for (const target of spec.targets) {
  // The signal is the probe's deadline, as the scheduler hands it.
  const result = await probe(target, AbortSignal.timeout(spec.deadlineMs));
  reports.push({ result, openHandles: openSocketHandles() });
}
process.stdout.write(JSON.stringify(reports) + "\n");

// tcpdump inside a lab namespace, started and stopped from this process: how
// a test or the demo shows which way packets really went (for example the
// gateway's answers inside vxlan0). UDP to the lab's VXLAN port is decoded as
// VXLAN (`-T vxlan`), since 4790 is not the port tcpdump knows for it.
import { NsProcess } from "./ns-process.js";
import type { Namespace } from "./netns.js";
import type { RunLab } from "./run-lab.js";

/** Resolves once tcpdump listens on `dev`; `stop()` ends it and returns the lines it printed. */
export async function capture(lab: RunLab, ns: Namespace, dev: string, filter: string): Promise<NsProcess> {
  const child = lab.spawn(
    ns,
    "tcpdump",
    ["-i", dev, "-n", "-l", "--immediate-mode", "-T", "vxlan", ...filter.split(" ")],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const tcpdump = new NsProcess(child);
  await tcpdump.waitFor((_out, err) => err.includes("listening on"));
  return tcpdump;
}

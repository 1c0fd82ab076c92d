// Sysctls through /proc/sys directly: one write per key, no `sysctl` process.
import { access, constants, readFile, writeFile } from "node:fs/promises";

/** net.ipv4.conf.all.rp_filter -> /proc/sys/net/ipv4/conf/all/rp_filter (device names here have no dots). */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key.replaceAll(".", "/")}`;
}

export async function readSysctl(key: string): Promise<string> {
  return (await readFile(sysctlPath(key), "utf8")).trim();
}

export async function writeSysctl(key: string, value: string): Promise<void> {
  await writeFile(sysctlPath(key), `${value}\n`);
}

/** Why /proc/sys cannot be written ("EROFS: read-only file system"), or undefined when it can. */
export async function procSysProblem(probeKey = "net.ipv4.ip_forward"): Promise<string | undefined> {
  try {
    await access(sysctlPath(probeKey), constants.W_OK);
    return undefined;
  } catch (error) {
    return describeFsError(error);
  }
}

export function describeFsError(error: unknown): string {
  if (error instanceof Error && "code" in error && typeof error.code === "string") {
    const text = error.message.replace(/^[A-Z]+: /, "").replace(/, \w+ '.*'$/, "");
    return `${error.code}: ${text}`;
  }
  return String(error);
}

// The two MACs of the VXLAN return path: the gateway's vxlan0 (init creates the
// device with it) and each node's egress.calico (the return path points
// neighbours and FDB entries at it). Client nodes derive both the same way, so
// they must match byte for byte.
import { createHash } from "node:crypto";

/** The gateway's vxlan0 MAC: `a2:2a:` and the four IPv4 bytes in hex (10.10.10.1 gives a2:2a:0a:0a:0a:01). */
export function vxlanMac(ipv4: string): string {
  const bytes = ipv4.split(".").map((part) => Number(part).toString(16).padStart(2, "0"));
  return ["a2", "2a", ...bytes].join(":");
}

/** First byte of every node MAC; with the locally administered bit set, so no vendor MAC starts with it. */
export const NODE_MAC_PREFIX = "66";

const hex = (bytes: Uint8Array): string => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");

// Every pass derives the MAC of every node (1,000 SHA-1s, ~8 ms); node names change rarely.
const known = new Map<string, string>();
const KNOWN_LIMIT = 65_536;

/** `66:` followed by the first five bytes of SHA-1 of the node name: the MAC of the node's `egress.calico`. */
export function nodeMac(nodeName: string): string {
  let mac = known.get(nodeName);
  if (mac === undefined) {
    const digest = createHash("sha1").update(nodeName, "utf8").digest();
    mac = `${NODE_MAC_PREFIX}:${hex(digest.subarray(0, 5))}`;
    if (known.size >= KNOWN_LIMIT) known.clear();
    known.set(nodeName, mac);
  }
  return mac;
}

/** True for a MAC that `nodeMac` could have produced: how FDB and neighbour entries are recognised as ours. */
export function isNodeMac(mac: string): boolean {
  return /^66(:[0-9a-f]{2}){5}$/.test(mac.toLowerCase());
}

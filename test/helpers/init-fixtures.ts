// Plain-data inputs for the init planner: a detected namespace as a pod would
// have it, with overrides, and the configuration subset the planner reads.
import { parseIptablesSave } from "../../src/init/iptables-save.js";
import type { InitConfig } from "../../src/init/plan.js";
import type { Detected, Family, IptablesState, LinkInfo, SavedTables } from "../../src/init/types.js";

export const POD_V4 = "198.51.100.2";
export const POD_V6 = "2001:db8:100::2";

export function initConfig(overrides: Partial<InitConfig> = {}): InitConfig {
  return {
    podIPv4: POD_V4,
    podIPv6: POD_V6,
    vxlan: { vni: 4097, port: 4790 },
    dataplane: "auto",
    iptablesBackend: "auto",
    snatPorts: { first: 1024, last: 65_535 },
    ...overrides,
  };
}

export function eth0(overrides: Partial<LinkInfo> = {}): LinkInfo {
  return {
    name: "eth0",
    ifindex: 2,
    mtu: 1500,
    mac: "26:cd:f1:a4:99:13",
    up: true,
    kind: "veth",
    vxlan: undefined,
    addresses: [
      { family: 4, address: POD_V4, scope: "global" },
      { family: 6, address: POD_V6, scope: "global" },
      { family: 6, address: "fe80::24cd:f1ff:fea4:9913", scope: "link" },
    ],
    ...overrides,
  };
}

export function vxlan0(overrides: Partial<LinkInfo> = {}): LinkInfo {
  return {
    name: "vxlan0",
    ifindex: 7,
    mtu: 1450,
    mac: "a2:2a:c6:33:64:02",
    up: true,
    kind: "vxlan",
    vxlan: { vni: 4097, port: 4790, dev: "eth0" },
    addresses: [{ family: 6, address: "fe80::a02a:c6ff:fe33:6402", scope: "link" }],
    ...overrides,
  };
}

const LO: LinkInfo = {
  name: "lo",
  ifindex: 1,
  mtu: 65536,
  mac: "00:00:00:00:00:00",
  up: true,
  kind: undefined,
  vxlan: undefined,
  addresses: [{ family: 4, address: "127.0.0.1", scope: "host" }],
};

/** An empty iptables dump per family: the flavour works and holds no rules. */
export function emptyIptables(): IptablesState {
  return { tool: { state: "works" }, saved: { 4: new Map(), 6: new Map() } };
}

export function iptablesWith(saved: Partial<Record<Family, string>>): IptablesState {
  const parsed: Partial<Record<Family, SavedTables>> = { 4: new Map(), 6: new Map() };
  for (const family of [4, 6] as const) {
    const text = saved[family];
    if (text !== undefined) parsed[family] = parseIptablesSave(text);
  }
  return { tool: { state: "works" }, saved: parsed };
}

export function detected(overrides: Partial<Detected> = {}): Detected {
  return {
    privilege: { netAdmin: true, procSysProblem: undefined },
    links: [LO, eth0()],
    nft: { tool: { state: "works" }, hasOurTable: false },
    iptables: { nft: emptyIptables(), legacy: emptyIptables() },
    ...overrides,
  };
}

/** What an unprivileged process sees: links, but no rule tool could be asked. */
export function unprivileged(links: readonly LinkInfo[] = [LO, eth0()]): Detected {
  const unknown = { state: "unknown", reason: "needs CAP_NET_ADMIN" } as const;
  return {
    privilege: { netAdmin: false, procSysProblem: "EACCES: permission denied" },
    links,
    nft: { tool: unknown, hasOurTable: false },
    iptables: { nft: { tool: unknown, saved: {} }, legacy: { tool: unknown, saved: {} } },
  };
}

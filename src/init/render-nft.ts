// Native nftables: one table we own, replaced in one `nft -f` transaction.
// Declaring the table first makes the delete succeed on the first run too.
import { describePorts, PORTED_PROTOCOLS, type RuleIntent } from "./rules.js";
import type { ChainExpectation } from "./types.js";

export const NFT_TABLE = "egress_gateway";
const TABLE = `inet ${NFT_TABLE}`;

interface NftChain {
  readonly name: string;
  readonly hook: string;
  readonly rules: readonly { readonly text: string; readonly marker: string }[];
}

export interface RenderedRules {
  readonly input: string;
  readonly chains: readonly ChainExpectation[];
}

export function renderNft(intent: RuleIntent): RenderedRules {
  const dev = JSON.stringify(intent.egress);
  const ports = describePorts(intent.snatPorts);
  const snat = (["ip", "ip6"] as const).flatMap((proto) => {
    const address = intent.snat[proto === "ip" ? 4 : 6];
    if (address === undefined) return [];
    const match = `oifname ${dev} ${proto} saddr != ${address}`;
    const host = proto === "ip" ? address : `[${address}]`;
    const ported = `snat ${proto} to ${host}:${ports} fully-random`;
    const rest = `snat ${proto} to ${address} fully-random`;
    return [
      { text: `${match} meta l4proto { ${PORTED_PROTOCOLS.join(", ")} } ${ported}`, marker: ported },
      { text: `${match} ${rest}`, marker: rest },
    ];
  });
  const mss = (["ipv4", "ipv6"] as const).flatMap((proto) => {
    const value = intent.mss[proto === "ipv4" ? 4 : 6];
    if (value === undefined) return [];
    const text =
      `oifname ${dev} meta nfproto ${proto} tcp flags & (syn | rst) == syn ` +
      `tcp option maxseg size > ${value} tcp option maxseg size set ${value}`;
    return [{ text, marker: `maxseg size set ${value}` }];
  });
  const redirects = intent.dropIcmpv6Redirects
    ? [{ text: "icmpv6 type nd-redirect drop", marker: "nd-redirect" }]
    : [];
  const chains: NftChain[] = [
    { name: "postrouting", hook: "type nat hook postrouting priority srcnat; policy accept;", rules: snat },
    { name: "forward", hook: "type filter hook forward priority mangle; policy accept;", rules: mss },
    { name: "output", hook: "type filter hook output priority filter; policy accept;", rules: redirects },
  ].filter((chain) => chain.rules.length > 0);

  const body = chains.map((chain) =>
    [`\tchain ${chain.name} {`, `\t\t${chain.hook}`, ...chain.rules.map((r) => `\t\t${r.text}`), "\t}"].join(
      "\n",
    ),
  );
  return {
    input: `${removeNftTable()}table ${TABLE} {\n${body.join("\n\n")}\n}\n`,
    chains: chains.map((chain) => ({
      family: "inet",
      table: NFT_TABLE,
      chain: chain.name,
      markers: chain.rules.map((r) => r.marker),
      jumpFrom: undefined,
    })),
  };
}

/** Deletes our table; the empty declaration before it makes this succeed when it is absent. */
export function removeNftTable(): string {
  return `table ${TABLE}\ndelete table ${TABLE}\n`;
}

// Native nftables: one table we own, replaced in one `nft -f` transaction.
// Declaring the table first makes the delete succeed on the first run too.
import {
  COUNTER_COMMENTS,
  describePorts,
  FAMILIES,
  nfFamily,
  PORTED_PROTOCOLS,
  type RuleIntent,
} from "./rules.js";
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
  // Both SNAT rules of a family carry its counter comment: together they see
  // the first packet of every SNATed connection.
  const snat = FAMILIES.flatMap((family) => {
    const address = intent.snat[family];
    if (address === undefined) return [];
    const proto = family === 4 ? "ip" : "ip6";
    const match = `oifname ${dev} ${proto} saddr != ${address}`;
    const host = proto === "ip" ? address : `[${address}]`;
    const ported = `snat ${proto} to ${host}:${ports} fully-random`;
    const rest = `snat ${proto} to ${address} fully-random`;
    const comment = `comment "${COUNTER_COMMENTS.snat(family)}"`;
    return [
      {
        text: `${match} meta l4proto { ${PORTED_PROTOCOLS.join(", ")} } counter ${ported} ${comment}`,
        marker: ported,
      },
      { text: `${match} counter ${rest} ${comment}`, marker: rest },
    ];
  });
  // Counting rules first in the forward chain: they only count, and the MSS
  // clamp after them sees every packet as before.
  const accounting = FAMILIES.flatMap((family) => {
    if (intent.snat[family] === undefined) return [];
    const forwarded = COUNTER_COMMENTS.forwarded(family);
    const established = COUNTER_COMMENTS.snatEstablished(family);
    return [
      { text: `meta nfproto ${nfFamily(family)} counter comment "${forwarded}"`, marker: forwarded },
      {
        text: `meta nfproto ${nfFamily(family)} ct status snat counter comment "${established}"`,
        marker: established,
      },
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
    {
      name: "forward",
      hook: "type filter hook forward priority mangle; policy accept;",
      rules: [...accounting, ...mss],
    },
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

// `ip -d -j addr show` in, LinkInfo out. Pure, so that detection can be tested
// with recorded output; anything unexpected in the JSON becomes "absent", not a crash.
import type { Family, LinkInfo, VxlanSettings } from "./types.js";

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function whole(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) ? value : undefined;
}

export function parseLinks(json: string): LinkInfo[] {
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed)) throw new Error("ip -j did not print a JSON array");
  return parsed.filter(isObject).flatMap((entry) => {
    const name = text(entry.ifname);
    const ifindex = whole(entry.ifindex);
    if (name === undefined || ifindex === undefined) return [];
    const flags = Array.isArray(entry.flags) ? entry.flags : [];
    const linkinfo = isObject(entry.linkinfo) ? entry.linkinfo : {};
    const kind = text(linkinfo.info_kind);
    return [
      {
        name,
        ifindex,
        mtu: whole(entry.mtu) ?? 0,
        mac: (text(entry.address) ?? "").toLowerCase(),
        up: flags.includes("UP"),
        kind,
        vxlan: kind === "vxlan" ? vxlanSettings(linkinfo.info_data) : undefined,
        addresses: addresses(entry.addr_info),
      },
    ];
  });
}

function vxlanSettings(data: unknown): VxlanSettings {
  const info = isObject(data) ? data : {};
  return { vni: whole(info.id) ?? -1, port: whole(info.port) ?? -1, dev: text(info.link) };
}

function addresses(list: unknown): LinkInfo["addresses"] {
  if (!Array.isArray(list)) return [];
  return list.filter(isObject).flatMap((a) => {
    const family: Family | undefined = a.family === "inet" ? 4 : a.family === "inet6" ? 6 : undefined;
    const address = text(a.local);
    if (family === undefined || address === undefined) return [];
    return [{ family, address, scope: text(a.scope) ?? "global" }];
  });
}

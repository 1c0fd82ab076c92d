import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { routeUpdateMessage } from "../lab/fake-agent.js";
import { decodeRoute, decodeToDataplane, routeTypes } from "../src/sync/codec.js";
import { syncRequestType, toDataplaneType, type ToDataplaneMessage } from "../src/sync/proto.js";
import type { RouteTypes } from "../src/sync/types.js";

const NONE: RouteTypes = {
  remoteWorkload: false,
  remoteHost: false,
  localWorkload: false,
  localHost: false,
  remoteTunnel: false,
  localTunnel: false,
};

/** Through real protobuf bytes, as the client receives them. */
const viaWire = (message: ToDataplaneMessage) =>
  decodeToDataplane(toDataplaneType.deserialize(toDataplaneType.serialize(message)));

describe("route types", () => {
  it("reads the older enum (field 1), one type per route", () => {
    const names: [number, keyof RouteTypes][] = [
      [1, "remoteWorkload"],
      [2, "remoteHost"],
      [3, "localWorkload"],
      [4, "localHost"],
      [5, "remoteTunnel"],
      [6, "localTunnel"],
    ];
    for (const [value, name] of names) {
      assert.deepEqual(routeTypes({ type: value }), { ...NONE, [name]: true }, `enum ${value}`);
    }
    assert.deepEqual(routeTypes({ type: 0 }), NONE, "CIDR_INFO carries no type");
    assert.deepEqual(routeTypes({ type: "REMOTE_TUNNEL" }), { ...NONE, remoteTunnel: true }, "enum by name");
  });

  it("reads the newer bitmap (field 12), several types per route", () => {
    const bits: [number, keyof RouteTypes][] = [
      [1, "remoteWorkload"],
      [2, "remoteHost"],
      [4, "localWorkload"],
      [8, "localHost"],
      [16, "remoteTunnel"],
      [32, "localTunnel"],
    ];
    for (const [value, name] of bits)
      assert.deepEqual(routeTypes({ types: value }), { ...NONE, [name]: true });
    assert.deepEqual(routeTypes({ types: 2 | 16 }), { ...NONE, remoteHost: true, remoteTunnel: true });
  });

  it("uses the bitmap when it is non-zero and the enum otherwise", () => {
    assert.deepEqual(routeTypes({ type: 3, types: 16 }), { ...NONE, remoteTunnel: true });
    assert.deepEqual(routeTypes({ type: 3, types: 0 }), { ...NONE, localWorkload: true });
  });
});

describe("decoding plain message objects", () => {
  it("decodes a full RouteUpdate", () => {
    const event = decodeToDataplane({
      sequenceNumber: "7",
      routeUpdate: {
        types: 1,
        ipPoolType: 2,
        dst: "10.65.1.0/26",
        dstNodeName: "node-b",
        dstNodeIp: "192.0.2.11",
        sameSubnet: true,
        natOutgoing: true,
        localWorkload: false,
        borrowed: true,
      },
    });
    assert.deepEqual(event, {
      kind: "routeUpdate",
      sequence: 7n,
      route: {
        dst: "10.65.1.0/26",
        types: { ...NONE, remoteWorkload: true },
        poolType: "VXLAN",
        dstNodeName: "node-b",
        dstNodeIp: "192.0.2.11",
        sameSubnet: true,
        natOutgoing: true,
        localWorkload: false,
        tunnelType: undefined,
        borrowed: true,
      },
    });
  });

  it("fills absent fields with proto3 defaults and keeps an incomplete route's empty node IP", () => {
    const route = decodeRoute({ dst: "10.65.2.0/26", type: 1 });
    assert.equal(route?.poolType, "NONE");
    assert.equal(route?.dstNodeIp, "");
    assert.equal(route?.dstNodeName, "");
    assert.equal(route?.tunnelType, undefined);
  });

  it("keeps a tunnel type only when one of its flags is set", () => {
    assert.deepEqual(
      decodeRoute({ dst: "192.0.2.5/32", types: 16, tunnelType: { vxlan: true } })?.tunnelType,
      {
        ipip: false,
        vxlan: true,
        wireguard: false,
      },
    );
    assert.equal(decodeRoute({ dst: "192.0.2.5/32", types: 16, tunnelType: {} })?.tunnelType, undefined);
  });

  it("decodes InSync and RouteRemove", () => {
    assert.deepEqual(decodeToDataplane({ sequenceNumber: "3", inSync: {} }), {
      kind: "inSync",
      sequence: 3n,
    });
    assert.deepEqual(decodeToDataplane({ routeRemove: { dst: "10.65.1.0/26" } }), {
      kind: "routeRemove",
      sequence: 0n,
      dst: "10.65.1.0/26",
    });
  });

  it("ignores messages without a payload it uses, and route messages without a dst", () => {
    assert.equal(decodeToDataplane({ sequenceNumber: "9" }), undefined);
    assert.equal(decodeToDataplane({ routeUpdate: { types: 1 } }), undefined);
    assert.equal(decodeToDataplane({ routeRemove: {} }), undefined);
  });
});

describe("decoding wire bytes", () => {
  it("decodes both route type encodings from protobuf bytes", () => {
    const bitmap = viaWire({
      routeUpdate: routeUpdateMessage({
        dst: "192.0.2.20/32",
        types: ["remoteHost", "remoteTunnel"],
        tunnelType: { wireguard: true },
        dstNodeName: "node-c",
      }),
    });
    assert.equal(bitmap?.kind, "routeUpdate");
    assert.deepEqual(bitmap.kind === "routeUpdate" && bitmap.route.types, {
      ...NONE,
      remoteHost: true,
      remoteTunnel: true,
    });
    assert.deepEqual(bitmap.kind === "routeUpdate" && bitmap.route.tunnelType, {
      ipip: false,
      vxlan: false,
      wireguard: true,
    });
    const enumerated = viaWire({
      routeUpdate: routeUpdateMessage({ dst: "10.65.0.0/26", types: ["localWorkload"], encoding: "enum" }),
    });
    assert.deepEqual(enumerated?.kind === "routeUpdate" && enumerated.route.types, {
      ...NONE,
      localWorkload: true,
    });
  });

  it("decodes the full uint64 range of sequence numbers", () => {
    assert.deepEqual(viaWire({ sequenceNumber: "18446744073709551615", inSync: {} }), {
      kind: "inSync",
      sequence: 18446744073709551615n,
    });
  });

  it("ignores unknown payloads in real bytes", () => {
    // sequence_number 5, then field 2 (a payload we do not declare) as an empty message.
    const unknown = Buffer.from([0x78, 0x05, 0x12, 0x00]);
    assert.equal(decodeToDataplane(toDataplaneType.deserialize(unknown)), undefined);
    // An unknown field next to a known payload does not hide the payload.
    const inSyncPlus = Buffer.concat([unknown, Buffer.from([0x0a, 0x00])]);
    assert.deepEqual(decodeToDataplane(toDataplaneType.deserialize(inSyncPlus)), {
      kind: "inSync",
      sequence: 5n,
    });
  });

  it("encodes the subscription request with the SPEC field numbers", () => {
    const bytes = syncRequestType.serialize({
      subscriptionType: "l3-routes",
      supportsIPv6RouteUpdates: true,
    });
    // field 3 (string "l3-routes"), field 100 (varint true): tags 0x1a and 0xa0 0x06.
    assert.equal(bytes.toString("hex"), "1a09" + Buffer.from("l3-routes").toString("hex") + "a00601");
  });

  it("reads RouteUpdate fields at the SPEC field numbers", () => {
    // Hand-encoded: 3 dst, 4 node name, 5 node IP, 2 pool type IPIP, 7/8/9/11 bools, 10 tunnel {1 ipip}, 1 enum 5.
    const field = (tag: number, value: Buffer) => Buffer.concat([Buffer.from([tag, value.length]), value]);
    const update = Buffer.concat([
      field(0x1a, Buffer.from("192.0.2.7/32")),
      field(0x22, Buffer.from("node-d")),
      field(0x2a, Buffer.from("192.0.2.7")),
      Buffer.from([0x10, 0x03, 0x38, 0x01, 0x40, 0x01, 0x48, 0x01, 0x58, 0x01, 0x08, 0x05]),
      field(0x52, Buffer.from([0x08, 0x01])),
    ]);
    // ToDataplane field 23 (length-delimited, tag 0xba 0x01).
    const message = Buffer.concat([Buffer.from([0xba, 0x01, update.length]), update]);
    assert.deepEqual(decodeToDataplane(toDataplaneType.deserialize(message)), {
      kind: "routeUpdate",
      sequence: 0n,
      route: {
        dst: "192.0.2.7/32",
        types: { ...NONE, remoteTunnel: true },
        poolType: "IPIP",
        dstNodeName: "node-d",
        dstNodeIp: "192.0.2.7",
        sameSubnet: true,
        natOutgoing: true,
        localWorkload: true,
        tunnelType: { ipip: true, vxlan: false, wireguard: false },
        borrowed: true,
      },
    });
    // RouteRemove: ToDataplane field 24 (tag 0xc2 0x01), dst in its field 2.
    const remove = field(0x12, Buffer.from("192.0.2.7/32"));
    assert.deepEqual(
      decodeToDataplane(
        toDataplaneType.deserialize(Buffer.concat([Buffer.from([0xc2, 0x01, remove.length]), remove])),
      ),
      { kind: "routeRemove", sequence: 0n, dst: "192.0.2.7/32" },
    );
  });
});

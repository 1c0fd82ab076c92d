// The pod's network facts that client nodes derive too, so they must match byte
// for byte: the gateway's vxlan0 MAC and each node's egress.calico MAC.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isNodeMac, nodeMac, vxlanMac } from "../src/pod-network/mac.js";
import { NODE_MAC } from "./helpers/node-macs.js";

describe("node and gateway MACs", () => {
  it("node MAC is 0x66 and the first five bytes of SHA-1 of the node name", () => {
    for (const [name, mac] of Object.entries(NODE_MAC)) assert.equal(nodeMac(name), mac);
    assert.ok(isNodeMac(NODE_MAC.node1));
    assert.ok(!isNodeMac("a2:2a:c6:33:64:42"));
  });

  it("gateway (vxlan0) MAC is a2:2a: and the four bytes of the pod IPv4 in hex", () => {
    assert.equal(vxlanMac("10.10.10.1"), "a2:2a:0a:0a:0a:01");
    assert.equal(vxlanMac("198.51.100.2"), "a2:2a:c6:33:64:02");
    assert.equal(vxlanMac("198.51.100.66"), "a2:2a:c6:33:64:42");
    assert.equal(vxlanMac("255.0.1.16"), "a2:2a:ff:00:01:10");
  });
});

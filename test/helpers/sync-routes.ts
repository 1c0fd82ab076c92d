// The policy-sync routes the sync tests share, as the fake agent sends them:
// our own block on node-a, and node-b's tunnel address and workload block.
import type { FakeRoute } from "../../lab/fake-agent.js";

export const ourBlock: FakeRoute = {
  dst: "10.65.0.0/26",
  types: ["localWorkload"],
  poolType: "VXLAN",
  dstNodeName: "node-a",
  dstNodeIp: "192.0.2.10",
};

export const tunnelB: FakeRoute = {
  dst: "10.65.1.1/32",
  types: ["remoteHost", "remoteTunnel"],
  tunnelType: { vxlan: true },
  dstNodeName: "node-b",
  dstNodeIp: "192.0.2.11",
};

export const workloadsB: FakeRoute = {
  dst: "10.65.1.0/26",
  types: ["remoteWorkload"],
  poolType: "VXLAN",
  dstNodeName: "node-b",
  dstNodeIp: "192.0.2.11",
};

// The return path end to end through the two-node VXLAN lab, with a static
// snapshot standing in for the node agent: the client pod reaches the external
// host only once the return path is programmed, the host sees the gateway's
// address, and the answers travel back inside vxlan0 to the client node, first
// to the client node's VXLAN tunnel address (through the exit route, which a
// resync restores when it is deleted), then, after the client node switches to
// sending from its node IP and the snapshot follows, to its node IP.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { systemClock } from "../src/clock.js";
import { createReturnPath, type ReturnPath } from "../src/dataplane/return-path.js";
import { Readiness } from "../src/readiness/readiness.js";
import { capture as captureIn } from "../lab/capture.js";
import { wholeView } from "../lab/routes.js";
import { buildTwoNodeLab, TWO_NODE, VNI, type TwoNodeLab } from "../lab/two-node-lab.js";
import type { NamespaceHttpClient } from "../lab/namespace-http.js";
import { ensureInitBuilt } from "./helpers/init-lab.js";
import type { NsProcess } from "../lab/ns-process.js";
import type { Namespace } from "../lab/netns.js";

const quiet = { warn: () => {}, info: () => {}, debug: () => {} };

async function waitFor(what: string, pred: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("return path through the two-node VXLAN lab", () => {
  let lab: TwoNodeLab;
  let path: ReturnPath;
  let client: NamespaceHttpClient;
  let url: string;

  before(async () => {
    ensureInitBuilt();
    lab = buildTwoNodeLab("dpe", { teardownOnExit: false });
    await lab.initGateway("script");
    url = await lab.startPeerEcho();
    client = await lab.httpClient(lab.clientPod);
    path = createReturnPath({
      readiness: new Readiness(systemClock),
      log: quiet,
      clock: systemClock,
      ourIPv4: TWO_NODE.gatewayPod.ip,
      vni: VNI,
      netns: lab.gatewayPod.name,
      resyncIntervalMs: 0,
    });
  });

  after(async () => {
    await path?.stop();
    lab?.destroy();
  });

  const capture = (ns: Namespace, dev: string, filter: string): Promise<NsProcess> =>
    captureIn(lab.lab, ns, dev, filter);

  it("without a return path the client gets no answer", async () => {
    await assert.rejects(client.text(url, 1_000));
  });

  it("programmed: the host sees the gateway's address; answers go back in vxlan0 to the tunnel address", async () => {
    path.update(wholeView(lab.snapshot({ tunnel: true })));
    await waitFor("return path ready", () => path.state().ready);
    assert.equal(path.state().exitRoutes, 1);
    const inner = await capture(lab.gatewayPod, "vxlan0", `tcp and src host ${TWO_NODE.external.ip}`);
    const outer = await capture(
      lab.gatewayNode,
      "ul0",
      `udp port 4790 and src host ${TWO_NODE.gatewayPod.ip}`,
    );

    assert.equal(await client.text(url, 3_000), TWO_NODE.gatewayPod.ip);

    const answers = await inner.stop();
    const tunnelled = await outer.stop();
    assert.match(answers, new RegExp(`${TWO_NODE.external.ip}\\.\\d+ > ${TWO_NODE.clientPod.ip}\\.\\d+`));
    assert.match(
      tunnelled,
      new RegExp(`${TWO_NODE.gatewayPod.ip}\\.\\d+ > ${TWO_NODE.clientNode.tunnel}\\.4790: VXLAN`),
    );
  });

  it("the exit route matters: deleted by hand, answers loop into vxlan0; a resync puts it back", async () => {
    lab.gatewayPod.ip("route", "del", `${TWO_NODE.clientNode.tunnel}/32`, "proto", "0x45");
    await assert.rejects(client.text(url, 1_000));
    const before = path.state().passes;
    path.resync();
    await waitFor("resync pass", () => path.state().passes > before && !path.state().pending);
    assert.equal(path.state().lastChanges, 1);
    assert.equal(await client.text(url, 3_000), TWO_NODE.gatewayPod.ip);
  });

  it("the node sends from its node IP: the tunnel FDB entry loses its packets until the snapshot follows", async () => {
    lab.clientSendsFrom("node");
    // With learning on, the kernel drops packets whose source disagrees with a permanent FDB entry.
    await assert.rejects(client.text(url, 1_000));

    const before = path.state().passes;
    path.update(wholeView(lab.snapshot({ tunnel: false })));
    await waitFor("second pass", () => path.state().passes > before && !path.state().pending);
    assert.equal(path.state().exitRoutes, 0);
    assert.equal(lab.gatewayPod.ip("route", "show", "dev", "eth0", "proto", "0x45").trim(), "");
    const outer = await capture(
      lab.gatewayNode,
      "ul0",
      `udp port 4790 and src host ${TWO_NODE.gatewayPod.ip}`,
    );

    assert.equal(await client.text(url, 3_000), TWO_NODE.gatewayPod.ip);

    const tunnelled = await outer.stop();
    assert.match(tunnelled, new RegExp(`> ${TWO_NODE.clientNode.underlay}\\.4790: VXLAN`));
    assert.doesNotMatch(tunnelled, new RegExp(`> ${TWO_NODE.clientNode.tunnel}\\.4790`));
  });
});

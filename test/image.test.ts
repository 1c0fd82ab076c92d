// The container image, built from the Dockerfile with podman and run the way
// kubelet runs deploy/: the init container privileged, then the gateway with
// NET_ADMIN + NET_RAW only and a read-only root, both in the lab's gateway pod
// namespace with the manifests' environment. The first run on a machine makes
// the base images and runs npm ci in the build (minutes); later runs reuse
// both (seconds). scripts/image-build.sh says how.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { teardownOnExit } from "../lab/exit-hooks.js";
import { FakeAgent, type FakeRoute } from "../lab/fake-agent.js";
import type { NamespaceHttpClient } from "../lab/namespace-http.js";
import { sendRoutes } from "../lab/two-node-agent.js";
import { ADDR, buildPodLab, type PeerEcho, type PodLab } from "../lab/pod-lab.js";
import { ROOT } from "../lab/gateway-process.js";
import { containerEnv, workloadOf, type PodStatus } from "./helpers/image-manifests.js";
import {
  buildImage,
  envArgs,
  podman,
  podmanOk,
  removeContainers,
  sweepCrashedContainers,
} from "./helpers/image-podman.js";

const MAX_IMAGE_BYTES = 250e6;
/** The gateway container's capabilities; node and the network tools carry file capabilities that need both. */
const GATEWAY_CAPS = ["--cap-drop=all", "--cap-add=NET_ADMIN,NET_RAW"];
/** Where the image keeps its SBOM (Dockerfile; label io.github.egress-gateway.sbom). */
const SBOM_PATH = "/usr/share/egress-gateway/sbom.cdx.json";

interface CycloneDx {
  readonly bomFormat: string;
  readonly components?: readonly {
    readonly group?: string;
    readonly name: string;
    readonly version: string;
    readonly components?: CycloneDx["components"];
  }[];
}
/** `podman stop -t`: stands for terminationGracePeriodSeconds. */
const GRACE_S = 10;
const DRAIN_S = 3;
/**
 * Over the manual Deployment's own values: the lab's external host as probe
 * target, and times scaled down so that a failure shows in seconds, not in
 * the manifest's 15 to 35 s.
 */
const labSettings = (echo: PeerEcho): Record<string, string> => ({
  ICMP_PROBE_IPS: ADDR.external.v4,
  ICMP_PROBE_INTERVAL: "500ms",
  ICMP_PROBE_TIMEOUT: "2s",
  HTTP_PROBE_URLS: echo.url(4),
  HTTP_PROBE_INTERVAL: "500ms",
  HTTP_PROBE_TIMEOUT: "2s",
  DRAIN_TIMEOUT: `${DRAIN_S}s`,
});

/** deploy/components/non-root's runAsUser and runAsGroup. */
const NON_ROOT_UID = 65532;
const CAP_NET_ADMIN = 1n << 12n;
const CAP_NET_RAW = 1n << 13n;
/** A remote node's workload block, as the fake node agent announces it to the non-root gateway. */
const REMOTE_BLOCK = "10.244.7.0/26";
const REMOTE_NODE_IP = "198.51.100.77";

/** What a node agent sends this pod: its own local-workload block, and one remote node's workload block. */
const labRoutes = (): FakeRoute[] => [
  {
    dst: `${ADDR.gateway.v4}/32`,
    types: ["localWorkload"],
    poolType: "VXLAN",
    dstNodeName: "gateway-node",
    dstNodeIp: ADDR.node.v4,
    localWorkload: true,
  },
  {
    dst: REMOTE_BLOCK,
    types: ["remoteWorkload"],
    poolType: "VXLAN",
    dstNodeName: "remote-node",
    dstNodeIp: REMOTE_NODE_IP,
  },
];

const STATUS: PodStatus = { podIP: ADDR.gateway.v4, podIPs: `${ADDR.gateway.v4},${ADDR.gateway.v6}` };
const manual = workloadOf("egress-gateway.yaml").pod;
const operator = workloadOf("operator-layout.yaml").pod;
const READINESS = `http://${ADDR.gateway.v4}:8080/readiness`;

interface Readiness {
  readonly ready: boolean;
  readonly components: readonly { readonly name: string; readonly ready: boolean }[];
}

describe("container image", { timeout: 30 * 60_000 }, () => {
  let image: string;
  let buildMs: number;
  let pod: PodLab;
  let echo: PeerEcho;
  let fromClient: NamespaceHttpClient;
  let fromNode: NamespaceHttpClient;
  const containers: string[] = [];
  // Also on SIGINT/SIGTERM of the test run, like the lab's namespaces.
  const removeOurContainers = teardownOnExit(() => removeContainers(containers));
  const containerName = (role: string): string => {
    const name = `${pod.lab.prefix}-${role}`;
    containers.push(name);
    return name;
  };
  const netns = (): string => `ns:/run/netns/${pod.gateway.name}`;

  /** Runs an init container (privileged, `command` as its entrypoint) to completion in the gateway pod. */
  const runInitContainer = async (env: Record<string, string>, command: readonly string[]) => {
    const name = containerName(`init${containers.length}`);
    const args = ["run", "--rm", "--name", name, "--privileged", "--network", netns()];
    return podman([...args, "--entrypoint", JSON.stringify(command), ...envArgs(env), image], 60_000);
  };

  /** Polls /readiness from the node until `want`; the error carries the gateway's log. */
  const waitForReadiness = async (name: string, want: number, limitMs: number): Promise<number> => {
    const start = performance.now();
    let last = "no answer";
    while (performance.now() - start < limitMs) {
      const answer = await fromNode.get(READINESS, { timeoutMs: 500 }).catch((e: Error) => e);
      if (!(answer instanceof Error) && answer.status === want) return performance.now() - start;
      last = answer instanceof Error ? answer.message : `${answer.status} ${answer.body}`;
      await sleep(50);
    }
    const logs = await podman(["logs", "--tail", "20", name]);
    throw new Error(
      `/readiness not ${want} within ${limitMs} ms (last: ${last})\n${logs.stdout}${logs.stderr}`,
    );
  };

  const readiness = async (): Promise<Readiness> =>
    JSON.parse(
      (await fromNode.get(READINESS, { headers: { accept: "application/json" } })).body,
    ) as Readiness;

  before(async () => {
    await sweepCrashedContainers();
    ({ id: image, ms: buildMs } = await buildImage());
    pod = buildPodLab("img");
    [echo, fromClient, fromNode] = await Promise.all([
      pod.startPeerEcho(0),
      pod.httpClient(pod.client),
      pod.httpClient(pod.node),
    ]);
  });

  after(() => {
    removeOurContainers();
    pod?.destroy();
  });

  it("is under 250 MB with the entry scripts, the program and the network tools, without npm or compilers", async (t) => {
    const size = Number(await podmanOk(["image", "inspect", "--format", "{{.Size}}", image]));
    t.diagnostic(
      `image ${(size / 1e6).toFixed(0)} MB; scripts/image-build.sh took ${(buildMs / 1e3).toFixed(1)} s`,
    );
    assert.ok(size < MAX_IMAGE_BYTES, `image is ${size} bytes`);
    const probe = [
      "for p in /init-gateway.sh /start-gateway.sh; do test -x $p && echo exec:$p; done",
      "for p in /app/package.json /app/dist/init/main.js /app/dist/gateway/main.js" +
        " /app/node_modules/raw-socket/build/Release/raw.node /app/src /app/node_modules/typescript" +
        " /app/node_modules/tsx /app/node_modules/.bin/tsc /root/.npm /usr/local/lib/node_modules" +
        ` ${SBOM_PATH}; do` +
        " test -e $p && echo path:$p; done",
      "for c in node ip bridge nft iptables-nft iptables-legacy ip6tables-nft ip6tables-legacy conntrack" +
        " npm npx yarn corepack gcc cc g++ make python3; do command -v $c >/dev/null && echo cmd:$c; done",
      "node -p process.versions.node",
    ].join("\n");
    const found = (
      await podmanOk(["run", "--rm", "--network", "none", ...GATEWAY_CAPS, image, "sh", "-c", probe])
    ).split("\n");
    assert.deepEqual(found.filter((line) => !/^\d/.test(line)).sort(), [
      "cmd:bridge",
      "cmd:conntrack",
      "cmd:ip",
      "cmd:ip6tables-legacy",
      "cmd:ip6tables-nft",
      "cmd:iptables-legacy",
      "cmd:iptables-nft",
      "cmd:nft",
      "cmd:node",
      "exec:/init-gateway.sh",
      "exec:/start-gateway.sh",
      "path:/app/dist/gateway/main.js",
      "path:/app/dist/init/main.js",
      "path:/app/node_modules/raw-socket/build/Release/raw.node",
      "path:/app/package.json",
      `path:${SBOM_PATH}`,
    ]);
    assert.ok(Number(found.at(-1)?.split(".")[0]) >= 20, `node ${found.at(-1)}`);
  });

  it("carries OCI labels and runs as root by default", async () => {
    const config = JSON.parse(
      await podmanOk(["image", "inspect", "--format", "{{json .Config}}", image]),
    ) as {
      User: string;
      Labels: Record<string, string>;
    };
    const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string })
      .version;
    const label = (key: string): string | undefined => config.Labels[`org.opencontainers.image.${key}`];
    assert.equal(label("title"), "egress-gateway");
    assert.equal(label("version"), version);
    assert.equal(label("licenses"), "Apache-2.0");
    for (const key of ["description", "source", "revision", "created", "base.name"])
      assert.ok(label(key), `label org.opencontainers.image.${key}`);
    assert.equal(config.User, "root");
    assert.equal(config.Labels["io.github.egress-gateway.sbom"], SBOM_PATH);
  });

  it("ships a CycloneDX SBOM that lists every production package of the lockfile, and no dev package", async () => {
    const sbom = JSON.parse(
      await podmanOk(["run", "--rm", "--network", "none", image, "cat", SBOM_PATH]),
    ) as CycloneDx;
    assert.equal(sbom.bomFormat, "CycloneDX");
    const listed = new Set<string>();
    const walk = (components: CycloneDx["components"]): void => {
      for (const c of components ?? []) {
        listed.add(`${c.group ? `${c.group}/` : ""}${c.name}@${c.version}`);
        walk(c.components);
      }
    };
    walk(sbom.components);
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
      packages: Record<string, { version?: string; dev?: boolean; link?: boolean }>;
    };
    const packages = Object.entries(lock.packages).filter(([path]) => path !== "");
    const id = ([path, p]: [string, { version?: string }]): string =>
      `${path.replace(/^.*node_modules\//, "")}@${p.version}`;
    const production = packages.filter(([, p]) => !p.dev && !p.link).map(id);
    const dev = packages.filter(([, p]) => p.dev).map(id);
    assert.ok(production.length > 50, `${production.length} production packages`);
    assert.deepEqual(
      production.filter((p) => !listed.has(p)),
      [],
      "production packages missing from the SBOM",
    );
    assert.deepEqual(
      dev.filter((p) => listed.has(p) && !production.includes(p)),
      [],
      "dev packages in the SBOM",
    );
  });

  it("says in one line which capabilities a container lacks, instead of failing to run node", async () => {
    const run = (entry: string) =>
      podman([
        "run",
        "--rm",
        "--network",
        "none",
        "--cap-drop=all",
        "--cap-add=NET_RAW",
        "--entrypoint",
        entry,
        image,
      ]);
    const gateway = await run("/start-gateway.sh");
    assert.equal(gateway.code, 1);
    assert.match(
      gateway.stderr,
      /^start-gateway\.sh: the container's capabilities lack NET_ADMIN or NET_RAW; add both/,
    );
    const init = await run("/init-gateway.sh");
    assert.equal(init.code, 4);
    assert.match(init.stderr, /^init-gateway\.sh: missing privilege: .* run the init container privileged/);
  });

  it("init container (privileged, manual Deployment's env) prepares the gateway pod", async () => {
    const init = manual.initContainers![0]!;
    const ran = await runInitContainer(containerEnv(init, STATUS), init.command!);
    assert.equal(ran.code, 0, ran.stderr + ran.stdout);
    assert.match(ran.stdout, new RegExp(`ready in \\d+ ms: .*SNAT to ${ADDR.gateway.v4} out of eth0`));
    assert.match(
      pod.gateway.ip("-d", "link", "show", "vxlan0"),
      /link\/ether a2:2a:c6:33:64:02 .*vxlan id 4097/s,
    );
  });

  it("init container with the operator layout's env (dual-stack) runs again over it", async () => {
    const init = operator.initContainers![0]!;
    const ran = await runInitContainer(containerEnv(init, STATUS), init.command!);
    assert.equal(ran.code, 0, ran.stderr + ran.stdout);
    assert.match(ran.stdout, new RegExp(`SNAT to ${ADDR.gateway.v4}, ${ADDR.gateway.v6} out of eth0`));
  });

  /**
   * How the gateway container runs: the manifests' two security variants
   * (deploy/components). `nonRoot` also mounts a fake node agent's socket, so
   * that the return path is programmed by `ip`/`bridge` running as UID 65532.
   */
  const gatewayContainer = (variant: "root" | "non-root"): void => {
    const nonRoot = variant === "non-root";
    const title = nonRoot
      ? "gateway container as UID 65532 with file capabilities, read-only root, a node agent's socket mounted"
      : "gateway container as root with no_new_privs, NET_ADMIN + NET_RAW only, read-only root";
    describe(title, () => {
      let name: string;
      let agent: FakeAgent | undefined;
      let socketDir: string | undefined;
      // The init container ran in this pod: its work, watched, stays ready.
      const expectedComponents = nonRoot
        ? {
            ICMPProbes: false,
            HTTPProbes: false,
            DatastoreConnection: true,
            Dataplane: true,
            DataplaneIntegrity: true,
          }
        : { ICMPProbes: false, HTTPProbes: false, PolicySync: true, DataplaneIntegrity: true };

      before(async () => {
        const main = manual.containers[0]!;
        const env = containerEnv(main, STATUS);
        const settings = labSettings(echo);
        for (const key of Object.keys(settings)) assert.ok(key in env, `the manifest sets ${key}`);
        const mountPath = main.volumeMounts![0]!.mountPath;
        let volume: string[];
        if (nonRoot) {
          // The CSI volume's stand-in: <dir>/nodeagent/socket appears at
          // /var/run/nodeagent/socket, the manual layout's path. The gateway's
          // UID must be able to reach and connect to it (deploy/README.md).
          socketDir = mkdtempSync(join(tmpdir(), "egt-img-agent-"));
          mkdirSync(join(socketDir, "nodeagent"));
          chmodSync(socketDir, 0o755);
          const socket = join(socketDir, "nodeagent", "socket");
          agent = await FakeAgent.start(socket, (stream) => sendRoutes(stream, labRoutes()));
          chmodSync(socket, 0o666);
          volume = ["--volume", `${socketDir}:${mountPath}`];
        } else {
          // The policy-sync volume's mount point; empty: no node agent.
          volume = ["--tmpfs", mountPath];
        }
        const security = nonRoot
          ? ["--user", `${NON_ROOT_UID}:${NON_ROOT_UID}`, "--security-opt", "no-new-privileges=false"]
          : ["--security-opt", "no-new-privileges"];
        name = containerName(nonRoot ? "nonroot" : "root");
        await podmanOk([
          "run",
          "--detach",
          "--name",
          name,
          "--network",
          netns(),
          ...security,
          ...GATEWAY_CAPS,
          "--read-only",
          "--read-only-tmpfs=false",
          ...volume,
          "--entrypoint",
          JSON.stringify(main.command),
          // A refresh a second, so that the telemetry test below sees its traffic at once.
          ...envArgs({ ...env, ...settings, TELEMETRY_INTERVAL: "1s" }),
          image,
        ]);
      });

      after(async () => {
        await agent?.stop();
        if (socketDir) rmSync(socketDir, { recursive: true, force: true });
      });

      it("has exactly NET_ADMIN and NET_RAW, and turns ready when ICMP and HTTP probes reach the external host", async () => {
        const caps = await podmanOk(["inspect", "--format", "{{.EffectiveCaps}}", name]);
        assert.equal(caps, "[CAP_NET_ADMIN CAP_NET_RAW]");
        await waitForReadiness(name, 200, 10_000);
        const ready = Object.fromEntries((await readiness()).components.map((c) => [c.name, c.ready]));
        assert.equal(ready.ICMPProbes, true, "raw ICMP socket works with NET_RAW");
        assert.equal(ready.HTTPProbes, true);
      });

      if (nonRoot) {
        it("the gateway process is UID 65532 whose capabilities come from the node binary's file capabilities", async () => {
          const pid = await podmanOk(["inspect", "--format", "{{.State.Pid}}", name]);
          const status = readFileSync(`/proc/${pid}/status`, "utf8");
          const field = (key: string): string => new RegExp(`^${key}:\\s+(.+)$`, "m").exec(status)?.[1] ?? "";
          assert.equal(field("Name"), "node");
          assert.deepEqual(field("Uid").split(/\s+/), Array(4).fill(String(NON_ROOT_UID)));
          assert.deepEqual(field("Gid").split(/\s+/), Array(4).fill(String(NON_ROOT_UID)));
          // Ambient capabilities (which podman may hand a non-root user) are
          // cleared on exec of a file with file capabilities: none here.
          assert.equal(BigInt(`0x${field("CapAmb")}`), 0n, "CapAmb");
          assert.equal(BigInt(`0x${field("CapEff")}`), CAP_NET_ADMIN | CAP_NET_RAW, "CapEff");
          assert.equal(BigInt(`0x${field("CapPrm")}`), CAP_NET_ADMIN | CAP_NET_RAW, "CapPrm");
          assert.equal(field("NoNewPrivs"), "0");
        });

        it("programs the return path from the node agent's routes with ip and bridge as UID 65532", async () => {
          await waitForReadiness(name, 200, 10_000);
          const routes = pod.gateway.ip("route", "show", "proto", "0x45");
          assert.match(
            routes,
            new RegExp(`^${REMOTE_BLOCK.replace(/\./g, "\\.")} via ${REMOTE_NODE_IP} dev vxlan0 onlink`, "m"),
          );
          const neighbours = pod.gateway.ip("neigh", "show", "dev", "vxlan0", "nud", "permanent");
          assert.match(neighbours, new RegExp(`^${REMOTE_NODE_IP.replace(/\./g, "\\.")} lladdr 66:`, "m"));
          const fdb = pod.gateway.exec("bridge", ["fdb", "show", "dev", "vxlan0"]);
          assert.match(fdb, new RegExp(`^66:[0-9a-f:]+ dst ${REMOTE_NODE_IP.replace(/\./g, "\\.")} `, "m"));
        });
      }

      it("forwards the client's traffic: the external host sees the gateway's address", async () => {
        assert.equal(await fromClient.text(echo.url(4)), ADDR.client.v4, "direct, before");
        pod.routeClientViaGateway(true);
        assert.equal(await fromClient.text(echo.url(4)), ADDR.gateway.v4);
        assert.equal(await fromClient.text(echo.url(6)), ADDR.gateway.v6);
        pod.routeClientViaGateway(false);
      });

      it(`reads the conntrack table for /metrics as ${nonRoot ? "UID 65532 (conntrack -L)" : "root (/proc)"}`, async () => {
        // The exchanges of the test above left SNATed entries (TIME_WAIT) toward the echo server.
        const port = new URL(echo.url(4)).port;
        const inUse = `egress_gateway_snat_ports_in_use{destination="${ADDR.external.v4}",port="${port}",protocol="tcp"}`;
        const allUp = (text: string): boolean =>
          ["rules", "usage", "stats", "table"].every((source) =>
            text.includes(`egress_gateway_telemetry_source_up{source="${source}"} 1\n`),
          );
        let text = "";
        // A refresh cut off by its 1 s deadline on a loaded machine misses sources: wait for a whole one.
        for (const until = performance.now() + 20_000; performance.now() < until; await sleep(200)) {
          text = (await fromNode.get(`http://${ADDR.gateway.v4}:8080/metrics`)).body;
          if (text.includes(`${inUse} `) && allUp(text)) break;
        }
        assert.match(text, new RegExp(`^${inUse.replace(/[{}.]/g, "\\$&")} [1-9]`, "m"), text);
        assert.ok(allUp(text), text);
        const logs = await podmanOk(["logs", name]);
        const fallback =
          /is not readable as uid 65532 \(EACCES[^"]*reading the table with `conntrack -L -o extended`/;
        if (nonRoot) assert.match(logs, fallback);
        else assert.doesNotMatch(logs, /is not readable as uid/);
      });

      it("answers 503 when the probe target stops answering, 200 when it is back", async () => {
        const block = [
          "table inet egt_block {",
          "  chain inbound {",
          "    type filter hook input priority 0;",
          `    ip saddr ${ADDR.gateway.v4} drop`,
          "  }",
          "}",
        ];
        pod.external.exec("nft", ["-f", "-"], `${block.join("\n")}\n`);
        try {
          await waitForReadiness(name, 503, 2_000 + 2_000);
          // Each group turns within its own window after its last success.
          let ready: Record<string, boolean> = {};
          for (const until = performance.now() + 3_000; performance.now() < until; await sleep(100)) {
            ready = Object.fromEntries((await readiness()).components.map((c) => [c.name, c.ready]));
            if (!ready.ICMPProbes && !ready.HTTPProbes) break;
          }
          assert.deepEqual(ready, expectedComponents);
        } finally {
          pod.external.exec("nft", ["delete", "table", "inet", "egt_block"]);
        }
        await waitForReadiness(name, 200, 3_000);
      });

      it(`on podman stop -t ${GRACE_S}: 503 at once, drains, exits 0 within the grace period (no SIGKILL)`, async () => {
        const start = performance.now();
        const stop = spawn("podman", ["stop", "--time", String(GRACE_S), name], { stdio: "ignore" });
        const stopped = once(stop, "close") as Promise<[number | null]>;
        await waitForReadiness(name, 503, 1_500);
        const [stopCode] = await stopped;
        const tookS = (performance.now() - start) / 1e3;
        assert.equal(stopCode, 0);
        const state = await podmanOk([
          "inspect",
          "--format",
          "{{.State.ExitCode}} {{.State.OOMKilled}}",
          name,
        ]);
        assert.equal(state, "0 false", "exit code 0, not 137 (SIGKILL)");
        assert.ok(tookS >= DRAIN_S - 0.2 && tookS < GRACE_S, `stopped after ${tookS.toFixed(2)} s`);
        const logs = await podmanOk(["logs", name]);
        assert.match(logs, /drain complete, exiting/);
      });
    });
  };

  gatewayContainer("root");
  gatewayContainer("non-root");
});

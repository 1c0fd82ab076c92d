// The manifests in deploy/ cannot drift from the program: every variable they
// set is one the configuration accepts, read by that container, with a value
// that parses; the commands, the health port, the capabilities, the socket
// mount and the grace period fit what the image does; and the manual
// Deployment is the published one with only the documented changes.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { parseConfig, variables, type Config } from "../src/config/index.js";
import { DEFAULT_SOCKET_CANDIDATES } from "../src/sync/socket.js";
import { ROOT } from "../lab/gateway-process.js";
import {
  containerEnv,
  loadManifests,
  workloads,
  type Container,
  type Manifest,
  type PodSpec,
  type PodStatus,
} from "./helpers/image-manifests.js";

const IMAGE = "ghcr.io/egress-gateway/egress-gateway:0.1.0";
const SAMPLE: PodStatus = { podIP: "10.10.10.1", podIPs: "10.10.10.1,fd00:10::1" };
/** Node agents poll /readiness every 10 s and act on 3 failures (SPEC §4.3). */
const NODE_AGENTS_NOTICE_MS = 30_000;
const GRACE_MARGIN_S = 5;

const manifests = loadManifests();
const all = workloads(manifests);
const reader = new Map<string, string>(variables.map((v) => [v.name, v.who]));

function configOf(container: Container, role: "init" | "gateway"): Config {
  return parseConfig(containerEnv(container, SAMPLE), { requirePodIp: role === "init" });
}

function containersOf(pod: PodSpec): [Container, "init" | "gateway"][] {
  return [
    ...(pod.initContainers ?? []).map((c) => [c, "init"] as [Container, "init"]),
    ...pod.containers.map((c) => [c, "gateway"] as [Container, "gateway"]),
  ];
}

describe("deploy/ manifests", () => {
  it("parse, and each document names its apiVersion and kind", () => {
    assert.ok(all.length >= 2, "the manual and the operator-layout Deployments");
    for (const m of manifests) assert.ok(m.apiVersion && m.kind, `${m.file}: apiVersion and kind`);
  });

  it("each kustomization lists existing files and the image every container uses", () => {
    const kustomizations = manifests.filter((m) => m.kind === "Kustomization" || m.kind === "Component");
    assert.ok(kustomizations.length >= 5, "deploy/, deploy/daemonset/ and three components");
    for (const k of kustomizations) {
      const dir = dirname(join(ROOT, k.file));
      for (const resource of [
        ...((k.resources as string[] | undefined) ?? []),
        ...((k.components as string[] | undefined) ?? []),
      ])
        assert.ok(existsSync(join(dir, resource)), `${k.file}: ${resource}`);
      for (const image of (k.images as { name: string; newTag: string }[] | undefined) ?? [])
        assert.equal(`${image.name}:${image.newTag}`, IMAGE, k.file);
    }
    for (const w of all)
      for (const [c] of containersOf(w.pod)) assert.equal(c.image, IMAGE, `${w.file} ${c.name}`);
  });

  for (const w of all) {
    describe(`${w.file} ${w.name}`, () => {
      it("runs the init container privileged and the gateway with NET_ADMIN + NET_RAW only", () => {
        assert.deepEqual(
          w.pod.initContainers?.map((c) => [c.command, c.securityContext?.privileged]),
          [[["/init-gateway.sh"], true]],
        );
        assert.equal(w.pod.containers.length, 1);
        const main = w.pod.containers[0]!;
        assert.deepEqual(main.command, ["/start-gateway.sh"]);
        assert.notEqual(main.securityContext?.privileged, true);
        assert.deepEqual(main.securityContext?.capabilities?.drop, ["ALL"]);
        assert.deepEqual([...(main.securityContext?.capabilities?.add ?? [])].sort(), [
          "NET_ADMIN",
          "NET_RAW",
        ]);
        assert.equal(main.securityContext?.allowPrivilegeEscalation, false);
        assert.equal(main.securityContext?.readOnlyRootFilesystem, true);
      });

      for (const [container, role] of containersOf(w.pod)) {
        it(`${container.name}: sets only variables its program reads, with values that parse`, () => {
          for (const variable of container.env ?? []) {
            const who = reader.get(variable.name);
            assert.ok(who, `${variable.name} is not a variable the configuration accepts`);
            assert.ok(who === "both" || who === role, `${variable.name} is read by ${who}, not ${role}`);
          }
          assert.doesNotThrow(() => configOf(container, role));
        });
      }

      it("names the gateway's HEALTH_PORT `health` and probes /readiness on it", () => {
        const main = w.pod.containers[0]!;
        const port = configOf(main, "gateway").health.port;
        assert.deepEqual(
          main.ports?.filter((p) => p.name === "health").map((p) => p.containerPort),
          [port],
        );
        assert.equal(main.readinessProbe?.httpGet?.path, "/readiness");
        assert.ok([port, "health"].includes(main.readinessProbe?.httpGet?.port ?? ""), "probe port");
      });

      it("mounts the policy-sync volume where the gateway looks for the socket", () => {
        const main = w.pod.containers[0]!;
        const csi = w.pod.volumes?.find((v) => v.csi?.driver === "csi.tigera.io");
        const mount = main.volumeMounts?.find((m) => m.name === csi?.name);
        assert.ok(mount, "the csi.tigera.io volume is mounted in the gateway");
        assert.ok(DEFAULT_SOCKET_CANDIDATES.includes(`${mount.mountPath}/nodeagent/socket`), mount.mountPath);
      });

      it("drains long enough for node agents to notice, and within the grace period", () => {
        const drainMs = configOf(w.pod.containers[0]!, "gateway").drainMs;
        const grace = w.pod.terminationGracePeriodSeconds ?? 30;
        assert.ok(drainMs >= NODE_AGENTS_NOTICE_MS, `DRAIN_TIMEOUT ${drainMs} ms`);
        assert.ok(drainMs / 1000 + GRACE_MARGIN_S <= grace, `grace ${grace} s for a ${drainMs} ms drain`);
      });
    });
  }

  it("cover both layouts: status.podIP with the volume at /var/run, status.podIPs at /var/run/calico", () => {
    const layout = (w: (typeof all)[number]) => ({
      mount: w.pod.containers[0]!.volumeMounts?.map((m) => m.mountPath),
      env: containersOf(w.pod).map(([c]) =>
        (c.env ?? []).map((v) => `${v.name}${v.valueFrom ? `<-${v.valueFrom.fieldRef?.fieldPath}` : ""}`),
      ),
    });
    const layouts = all.map(layout);
    assert.ok(
      layouts.some(
        (l) => l.mount?.[0] === "/var/run" && l.env.every((e) => e.includes("EGRESS_POD_IP<-status.podIP")),
      ),
      "manual layout",
    );
    const operator = layouts.find((l) => l.mount?.[0] === "/var/run/calico");
    assert.ok(operator, "operator layout");
    assert.ok(
      operator.env.every((e) => e.includes("EGRESS_POD_IPS<-status.podIPs") && e.includes("LOG_SEVERITY")),
    );
    assert.ok(
      operator.env[0]!.includes("EGRESS_VXLAN_VNI") && operator.env[0]!.includes("EGRESS_VXLAN_PORT"),
    );
  });
});

// The published manual Deployment, kept as a fixture (test/fixtures/README.md says where it comes from).
const REFERENCE = join(ROOT, "test", "fixtures", "reference-deployment.yaml");

/** The parts of the published Deployment that ours changes. */
interface PublishedDeployment {
  spec: {
    template: {
      spec: {
        imagePullSecrets?: unknown;
        initContainers: { image: string }[];
        containers: { image: string; env: { name: string; value: string }[]; securityContext: unknown }[];
        terminationGracePeriodSeconds: number;
      };
    };
  };
}

describe("deploy/egress-gateway.yaml against the published manual Deployment", () => {
  it("is the published one with only the documented changes", () => {
    const [reference, pool] = parseAllDocuments(readFileSync(REFERENCE, "utf8")).map(
      (d) => d.toJS() as unknown,
    );
    const expected = structuredClone(reference) as PublishedDeployment;
    const pod = expected.spec.template.spec;
    delete pod.imagePullSecrets; // the image is public
    const main = pod.containers[0]!;
    for (const c of [...pod.initContainers, main]) c.image = IMAGE;
    main.env.push({ name: "DRAIN_TIMEOUT", value: "35s" });
    main.securityContext = {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"], add: ["NET_ADMIN", "NET_RAW"] },
    };
    pod.terminationGracePeriodSeconds = 45;
    // High availability (deploy/README.md): two replicas spread over nodes
    // and zones, a surge-first rolling update, and a pool with the surge pod's address.
    const spec = expected.spec as PublishedDeployment["spec"] & Record<string, unknown>;
    spec.replicas = 2;
    spec.strategy = { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } };
    const spreadBy = (topologyKey: string, whenUnsatisfiable: string) => ({
      maxSkew: 1,
      topologyKey,
      whenUnsatisfiable,
      labelSelector: { matchLabels: { "egress-code": "red" } },
    });
    (pod as Record<string, unknown>).topologySpreadConstraints = [
      spreadBy("kubernetes.io/hostname", "DoNotSchedule"),
      spreadBy("topology.kubernetes.io/zone", "ScheduleAnyway"),
    ];

    const ours = manifests.filter((m) => m.file === join("deploy", "egress-gateway.yaml"));
    const strip = ({ file: _file, ...doc }: Manifest) => doc;
    const sortEnv = (doc: unknown): unknown =>
      JSON.parse(JSON.stringify(doc), (key, value: unknown) =>
        key === "env" && Array.isArray(value)
          ? [...(value as { name: string }[])].sort((a, b) => a.name.localeCompare(b.name))
          : value,
      );
    assert.deepEqual(sortEnv(ours.map(strip)), sortEnv([expected]));
    const ourPool = manifests.find((m) => m.file === join("deploy", "ippool.yaml"))!;
    const expectedPool = structuredClone(pool) as { spec: { cidr: string; blockSize: number } };
    expectedPool.spec.cidr = expectedPool.spec.cidr.replace(/\/31$/, "/30");
    expectedPool.spec.blockSize = 30;
    assert.deepEqual(strip(ourPool), expectedPool);
  });
});

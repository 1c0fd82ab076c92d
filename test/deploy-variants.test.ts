// deploy/ as kustomize renders it (`kubectl kustomize`, the kustomize that
// `kubectl apply -k` runs): the two ways the gateway container runs, the
// high-availability objects, and the DaemonSet variant, whose pod template may
// differ from the Deployment's only where the README says.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { parseConfig } from "../src/config/index.js";
import { ROOT } from "../lab/run-lab.js";
import { containerEnv, type Container } from "./helpers/image-manifests.js";

/** deploy/components/non-root's runAsUser and runAsGroup. */
const NON_ROOT_UID = 65532;
/** Node agents poll /readiness every 10 s and act on 3 failures (SPEC §4.3). */
const NODE_AGENTS_NOTICE_S = 30;

interface Doc {
  readonly kind: string;
  readonly metadata: { readonly name: string };
  readonly spec?: unknown;
  readonly globalDefault?: boolean;
}

interface Spread {
  readonly topologyKey: string;
  readonly maxSkew: number;
  readonly whenUnsatisfiable: string;
  readonly labelSelector: { readonly matchLabels: Record<string, string> };
}

interface PodTemplate {
  metadata: { labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    initContainers: Container[];
    containers: Container[];
    nodeSelector?: Record<string, string>;
    topologySpreadConstraints?: Spread[];
    priorityClassName?: string;
    terminationGracePeriodSeconds: number;
  };
}

interface Workload {
  readonly kind: string;
  readonly spec: {
    readonly replicas?: number;
    readonly strategy?: { readonly rollingUpdate: { readonly maxSurge: number } };
    readonly updateStrategy?: unknown;
    readonly selector: { readonly matchLabels: Record<string, string> };
    readonly template: PodTemplate;
  };
}

const copies: string[] = [];
after(() => {
  for (const dir of copies) rmSync(dir, { recursive: true, force: true });
});

/** Renders a copy of deploy/ (or its `dir`) with `components` in place of those its kustomization lists. */
function render(dir = "", components?: readonly string[]): Doc[] {
  const copy = mkdtempSync(join(tmpdir(), "egt-kustomize-"));
  copies.push(copy);
  cpSync(join(ROOT, "deploy"), join(copy, "deploy"), { recursive: true });
  const base = join(copy, "deploy", dir);
  if (components) {
    const file = join(base, "kustomization.yaml");
    const text = readFileSync(file, "utf8");
    const list = /^components:\n(?: {2}- .+\n)+/m;
    assert.match(text, list, `${file} lists components`);
    const prefix = dir ? "../" : "";
    writeFileSync(
      file,
      text.replace(list, `components:\n${components.map((c) => `  - ${prefix}components/${c}\n`).join("")}`),
    );
  }
  const out = execFileSync("kubectl", ["kustomize", base], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return parseAllDocuments(out).map((d) => d.toJS() as Doc);
}

function one(docs: readonly Doc[], kind: string): Doc {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0]!;
}
const specOf = <T>(doc: Doc): T => doc.spec as T;
const workload = (docs: readonly Doc[], kind: "Deployment" | "DaemonSet"): Workload => ({
  kind,
  spec: specOf<Workload["spec"]>(one(docs, kind)),
});
const gatewayOf = (w: Workload): Container => w.spec.template.spec.containers[0]!;
const initOf = (w: Workload): Container => w.spec.template.spec.initContainers[0]!;

/** Addresses in a pool's CIDR (IPv4). */
const poolSize = (pool: Doc): number => 2 ** (32 - Number(specOf<{ cidr: string }>(pool).cidr.split("/")[1]));

describe("deploy/ rendered by kustomize", () => {
  const docs = render();
  const deployment = workload(docs, "Deployment");
  const pod = deployment.spec.template.spec;

  it("holds the Deployment, its IP pool and its disruption budget", () => {
    assert.deepEqual(docs.map((d) => d.kind).sort(), ["Deployment", "IPPool", "PodDisruptionBudget"]);
  });

  it("runs 2 replicas and a rolling update that never has fewer ready replicas than asked", () => {
    assert.equal(deployment.spec.replicas, 2);
    assert.deepEqual(deployment.spec.strategy, {
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
  });

  it("has an IP pool with an address for each replica and the surge pod", () => {
    const pool = one(docs, "IPPool");
    const annotations = deployment.spec.template.metadata.annotations;
    const ipv4pools = JSON.parse(annotations["cni.projectcalico.org/ipv4pools"] ?? "") as unknown;
    assert.deepEqual(ipv4pools, [pool.metadata.name]);
    const { replicas = 1, strategy } = deployment.spec;
    assert.ok(poolSize(pool) >= replicas + (strategy?.rollingUpdate.maxSurge ?? 0));
  });

  it("spreads replicas over nodes (required) and zones (preferred)", () => {
    const labels = deployment.spec.template.metadata.labels;
    const spread = Object.fromEntries((pod.topologySpreadConstraints ?? []).map((c) => [c.topologyKey, c]));
    assert.equal(spread["kubernetes.io/hostname"]?.whenUnsatisfiable, "DoNotSchedule");
    assert.equal(spread["topology.kubernetes.io/zone"]?.whenUnsatisfiable, "ScheduleAnyway");
    for (const c of Object.values(spread)) {
      assert.equal(c.maxSkew, 1);
      assert.deepEqual(c.labelSelector.matchLabels, labels);
    }
  });

  it("has a disruption budget of one replica, for the Deployment's pods", () => {
    const pdb = specOf<{ maxUnavailable: number; selector: unknown }>(one(docs, "PodDisruptionBudget"));
    assert.equal(pdb.maxUnavailable, 1);
    assert.deepEqual(pdb.selector, deployment.spec.selector);
  });

  it("by default runs the gateway as root with no_new_privs, seccomp RuntimeDefault, NET_ADMIN + NET_RAW only", () => {
    const sc = gatewayOf(deployment).securityContext;
    assert.deepEqual(sc, {
      runAsUser: 0,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      seccompProfile: { type: "RuntimeDefault" },
      capabilities: { drop: ["ALL"], add: ["NET_ADMIN", "NET_RAW"] },
    });
    assert.deepEqual(initOf(deployment).securityContext, { privileged: true });
  });
});

describe("deploy/components/non-root", () => {
  for (const dir of ["", "daemonset"]) {
    it(`runs the gateway as UID 65532 with file capabilities; the init container stays privileged (${dir || "Deployment"})`, () => {
      const rendered = workload(render(dir, ["non-root"]), dir ? "DaemonSet" : "Deployment");
      assert.deepEqual(gatewayOf(rendered).securityContext, {
        runAsUser: NON_ROOT_UID,
        runAsGroup: NON_ROOT_UID,
        runAsNonRoot: true,
        // File capabilities are granted only without no_new_privs.
        allowPrivilegeEscalation: true,
        readOnlyRootFilesystem: true,
        seccompProfile: { type: "RuntimeDefault" },
        capabilities: { drop: ["ALL"], add: ["NET_ADMIN", "NET_RAW"] },
      });
      assert.deepEqual(initOf(rendered).securityContext, { privileged: true });
    });
  }
});

describe("deploy/components/priority-class", () => {
  it("adds a priority class and gives it to the gateway pods", () => {
    const docs = render("", ["root", "priority-class"]);
    const priority = one(docs, "PriorityClass");
    assert.equal(priority.metadata.name, "egress-gateway");
    assert.equal(priority.globalDefault, false);
    assert.equal(workload(docs, "Deployment").spec.template.spec.priorityClassName, "egress-gateway");
  });
});

describe("deploy/daemonset", () => {
  const docs = render("daemonset");
  const daemonSet = workload(docs, "DaemonSet");
  const deployment = workload(render(), "Deployment");

  it("replaces one gateway at a time", () => {
    assert.deepEqual(daemonSet.spec.updateStrategy, {
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 1 },
    });
  });

  it("has the Deployment's pod template but for the node selector, the IP pool and the spread", () => {
    const ours = structuredClone(daemonSet.spec.template);
    const theirs = structuredClone(deployment.spec.template);
    assert.deepEqual(ours.spec.nodeSelector, {
      ...theirs.spec.nodeSelector,
      "egress-gateway.io/egress-node": "true",
    });
    const pool = one(docs, "IPPool");
    const ipv4pools = JSON.parse(
      ours.metadata.annotations["cni.projectcalico.org/ipv4pools"] ?? "",
    ) as unknown;
    assert.deepEqual(ipv4pools, [pool.metadata.name]);
    for (const template of [ours, theirs]) {
      delete template.spec.nodeSelector;
      delete template.metadata.annotations["cni.projectcalico.org/ipv4pools"];
    }
    delete theirs.spec.topologySpreadConstraints; // one pod per node by construction
    assert.deepEqual(ours, theirs);
  });

  it("drains long enough for node agents to notice, and within the grace period", () => {
    const pod = daemonSet.spec.template.spec;
    const env = containerEnv(pod.containers[0]!, { podIP: "10.10.11.1", podIPs: "10.10.11.1" });
    const drainS = parseConfig(env, { requirePodIp: false }).drainMs / 1000;
    assert.ok(drainS >= NODE_AGENTS_NOTICE_S, `DRAIN_TIMEOUT ${drainS} s`);
    assert.ok(
      drainS + 5 <= pod.terminationGracePeriodSeconds,
      `grace ${pod.terminationGracePeriodSeconds} s`,
    );
  });
});

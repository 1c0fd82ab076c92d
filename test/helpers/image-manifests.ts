// The manifests in deploy/, parsed: every workload's pod template, its
// containers, and each container's environment as the pod would see it (the
// downward-API fields filled in with given addresses).
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseAllDocuments } from "yaml";
import { ROOT } from "../../lab/gateway-process.js";

export const DEPLOY_DIR = join(ROOT, "deploy");
/** Prometheus's own configuration and rule files, not Kubernetes objects (test/monitoring-rules.test.ts reads them). */
const PROMETHEUS_FILES = join("monitoring", "prometheus") + "/";

export interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: { readonly fieldRef?: { readonly fieldPath?: string } };
}

export interface Container {
  readonly name: string;
  readonly image?: string;
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly env?: readonly EnvVar[];
  readonly securityContext?: {
    readonly privileged?: boolean;
    readonly allowPrivilegeEscalation?: boolean;
    readonly readOnlyRootFilesystem?: boolean;
    readonly capabilities?: { readonly add?: readonly string[]; readonly drop?: readonly string[] };
  };
  readonly ports?: readonly { readonly name?: string; readonly containerPort: number }[];
  readonly readinessProbe?: {
    readonly httpGet?: { readonly path?: string; readonly port?: number | string };
  };
  readonly volumeMounts?: readonly { readonly name: string; readonly mountPath: string }[];
}

export interface PodSpec {
  readonly initContainers?: readonly Container[];
  readonly containers: readonly Container[];
  readonly terminationGracePeriodSeconds?: number;
  readonly volumes?: readonly { readonly name: string; readonly csi?: { readonly driver?: string } }[];
}

export interface Manifest {
  /** Path relative to the repository root. */
  readonly file: string;
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: { readonly name?: string };
  readonly spec?: { readonly template?: { readonly spec?: PodSpec } };
  readonly [field: string]: unknown;
}

export interface Workload {
  readonly file: string;
  readonly name: string;
  readonly pod: PodSpec;
}

/** Every `*.yaml`/`*.yml` file under deploy/, sorted. */
export function manifestFiles(dir = DEPLOY_DIR): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((name) => /\.ya?ml$/.test(name) && !name.startsWith(PROMETHEUS_FILES))
    .map((name) => join(dir, name))
    .sort();
}

/** Every document of every file; a YAML error fails with the file named. */
export function loadManifests(dir = DEPLOY_DIR): Manifest[] {
  return manifestFiles(dir).flatMap((path) => {
    const file = relative(ROOT, path);
    return parseAllDocuments(readFileSync(path, "utf8")).map((doc): Manifest => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      return { ...(doc.toJS() as object), file };
    });
  });
}

/** The documents that carry a pod template (Deployments and the like). */
export function workloads(manifests: readonly Manifest[] = loadManifests()): Workload[] {
  return manifests.flatMap((m) => {
    const pod = m.spec?.template?.spec;
    return pod ? [{ file: m.file, name: `${m.kind}/${m.metadata?.name}`, pod }] : [];
  });
}

/** What the downward API gives the pod: `status.podIP` and `status.podIPs` (comma list). */
export interface PodStatus {
  readonly podIP: string;
  readonly podIPs: string;
}

/** The container's environment as the pod sees it; a `valueFrom` other than the pod's addresses throws. */
export function containerEnv(container: Container, status: PodStatus): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    if (variable.valueFrom === undefined) {
      env[variable.name] = variable.value ?? "";
      continue;
    }
    const path = variable.valueFrom.fieldRef?.fieldPath;
    if (path === "status.podIP") env[variable.name] = status.podIP;
    else if (path === "status.podIPs") env[variable.name] = status.podIPs;
    else
      throw new Error(`${container.name}: ${variable.name} comes from ${JSON.stringify(variable.valueFrom)}`);
  }
  return env;
}

/** The one workload of `file` (relative to deploy/). */
export function workloadOf(file: string): Workload {
  const found = workloads().filter((w) => w.file === join("deploy", file));
  if (found.length !== 1) throw new Error(`deploy/${file}: expected one workload, found ${found.length}`);
  return found[0]!;
}

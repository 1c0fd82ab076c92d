// Wiring of the gateway process: readiness components, probe groups, the
// health server and termination. Side effects come in through `deps`, so tests
// can run a whole gateway in-process with a fake clock or fake probers.
import type { Clock } from "../clock.js";
import type { Config } from "../config/types.js";
import { createReturnPath, type ReturnPath } from "../dataplane/return-path.js";
import { FlowLog, type FlowRecord } from "../flows/index.js";
import {
  preparePolicySync,
  startPreparedPolicySync,
  type PolicySyncOptions,
  type PreparedPolicySync,
} from "../sync/policy-sync.js";
import { errorMessage } from "../errors.js";
import { ProbeGroup, type Protocol, type TargetTransition } from "../probes/group.js";
import type { HttpExchange } from "../probes/http-phases.js";
import type { Prober } from "../probes/types.js";
import { startIntegrityWatch, type IntegrityWatch } from "../integrity/watch.js";
import { useSpawnBroker } from "../exec/run-command.js";
import { SpawnBroker } from "../exec/spawn-broker.js";
import { telemetryFamilies } from "../telemetry/index.js";
import type { Logger } from "./log.js";
import { renderMetrics } from "./metrics.js";
import { formatDuration } from "../config/duration.js";
import { COMPONENT } from "../readiness/components.js";
import { Readiness, type Component } from "../readiness/readiness.js";
import { FD_RESERVE } from "./fd-limit.js";
import { prepareTelemetry } from "./kernel-telemetry.js";
import { RuntimeMonitor } from "./runtime.js";
import { startHealthServer, type HealthServer } from "./server.js";

export interface OwnedProber<Detail = unknown> {
  readonly probe: Prober<Detail>;
  close(): void;
}

export interface GatewayDeps {
  readonly clock: Clock;
  readonly log: Logger;
  /**
   * Loads the ICMP prober and opens its raw sockets; rejects with an Error with
   * a `code` when it cannot. Called once the health server listens.
   */
  readonly createIcmpProber: () => Promise<OwnedProber>;
  /** Loads the HTTP prober (undici); called once the health server listens. Rejects as createIcmpProber does. */
  readonly createHttpProber: (options: {
    requireSuccessStatus: boolean;
  }) => Promise<OwnedProber<HttpExchange>>;
  /** Where flow-log records go (FLOW_LOGS): the flows logger. */
  readonly writeFlow?: (record: FlowRecord) => void;
  /** Policy-sync socket paths to look for instead of the two standard layouts (tests, labs). */
  readonly socketCandidates?: readonly string[];
}

export interface Gateway {
  readonly readiness: Readiness;
  readonly server: HealthServer | undefined;
  /** SIGTERM: readiness 503 at once; keeps serving and probing until stop(). */
  terminate(): void;
  /** Forwarded connections live now, read from conntrack by the kernel telemetry; undefined when unreadable. */
  liveConnections(): Promise<number | undefined>;
  /** Stops probes and the server; resolves when nothing is left running. */
  stop(): Promise<void>;
}

/** Where the health server listens: explicit address, else the pod's IPv4, else its IPv6, else loopback. */
export function healthHost(config: Config): string {
  return config.health.listenAddress ?? config.podIPv4 ?? config.podIPv6 ?? "127.0.0.1";
}

// What the gateway keeps of a group whatever its protocol detail.
interface RunningGroup {
  readonly protocol: Protocol;
  readonly group: Pick<ProbeGroup, "statuses" | "start" | "stop">;
  readonly prober: Pick<OwnedProber, "close">;
}

const PROTOCOL_NAMES: Readonly<Record<Protocol, string>> = { icmp: "ICMP", http: "HTTP" };

export async function startGateway(config: Config, deps: GatewayDeps): Promise<Gateway> {
  const { clock, log } = deps;
  const readiness = new Readiness(clock);
  const transitions = new Map<string, number>();
  readiness.onTransition((t) => {
    transitions.set(t.component, (transitions.get(t.component) ?? 0) + 1);
    log[t.ready ? "info" : "warn"](
      { component: t.component, ready: t.ready, detail: t.detail },
      "readiness changed",
    );
  });

  // Before listening, every readiness component is registered: /readiness
  // answers 503 "starting" until the probes and policy sync report, never 200
  // for a list that is still incomplete. What loads slowly (gRPC ~130 ms,
  // undici ~110 ms) loads after the health server listens.
  const sync = prepareReturnPath(config, deps, readiness);
  const { icmpProbe, httpProbe } = config;
  const probeComponent = (name: string, targets: number, timeoutMs: number): Component | undefined =>
    targets > 0
      ? readiness.register(name, {
          timeoutMs,
          staleDetail: `no target answered within ${formatDuration(timeoutMs)}`,
        })
      : undefined;
  const icmpComponent = probeComponent(COMPONENT.icmpProbes, icmpProbe.targets.length, icmpProbe.timeoutMs);
  const httpComponent = probeComponent(COMPONENT.httpProbes, httpProbe.urls.length, httpProbe.timeoutMs);
  const telemetry = prepareTelemetry(config, deps, readiness);
  const telemetryOn = config.telemetry.intervalMs > 0;

  let policySync = sync.prepared.pending;
  const { returnPath } = sync;
  const integrity = watchIntegrity(config, deps, readiness, returnPath);
  const groups: RunningGroup[] = [];
  let httpGroup: ProbeGroup<HttpExchange> | undefined;
  const startTimeSeconds = Date.now() / 1000;
  const podAddresses = [config.podIPv4, config.podIPv6].filter((a): a is string => a !== undefined);
  const flowLog = config.flowLogs.enabled
    ? new FlowLog({
        podAddresses,
        ratePerSecond: config.flowLogs.ratePerSecond,
        burst: 2 * config.flowLogs.ratePerSecond,
        clock,
        wallClock: Date.now,
        write: deps.writeFlow ?? ((record) => log.info(record, "flow")),
        log,
      })
    : undefined;
  let server: HealthServer | undefined;
  const spawnBroker = new SpawnBroker({ log });
  const runtime = config.health.port !== 0 ? new RuntimeMonitor() : undefined;
  if (runtime) {
    const { maxConnections, headerTimeoutMs, keepAliveTimeoutMs } = config.health;
    server = await startHealthServer({
      host: healthHost(config),
      port: config.health.port,
      limits: { maxConnections, headerTimeoutMs, keepAliveTimeoutMs },
      // One descriptor per HTTP probe URL on top of the fixed reserve.
      fdReserve: FD_RESERVE + config.httpProbe.urls.length,
      onAcceptError: acceptErrorLog(log, clock),
      readiness: () => readiness.evaluate(),
      metrics: () =>
        renderMetrics({
          groups,
          httpGroup,
          readiness: () => readiness.evaluate(),
          transitions,
          startTimeSeconds,
          policySync: policySync.state(),
          returnPath: returnPath?.state(),
          runtime: () => runtime.sample(),
          health: server?.stats(),
          flowLogs: flowLog?.counters(),
          integrity: integrity?.state(),
          spawnBroker: spawnBroker.state(),
          telemetry: telemetryOn ? telemetryFamilies(telemetry.snapshot(), telemetry.record()) : undefined,
        }),
    });
    const { bound, fdLimit } = server.stats();
    log.info({ address: server.address, maxConnections: bound, fdLimit }, "health server listening");
  } else {
    log.info("health server disabled (HEALTH_PORT=0)");
  }
  // Forked now, while the heap is small and after listening (start-up is not
  // held up); until it is ready, commands wait for it. From here on the
  // gateway itself never forks a tool (src/exec/spawn-broker.ts says why).
  spawnBroker.start();
  useSpawnBroker(spawnBroker);

  policySync = await startPreparedPolicySync(sync.options, sync.prepared);

  const onTargetTransition = (t: TargetTransition): void => {
    const fields = { protocol: t.protocol, target: t.target, up: t.up, code: t.result.failure?.code };
    if (t.up) log[t.first ? "debug" : "info"](fields, "probe target up");
    else log.warn({ ...fields, detail: t.result.failure?.message }, "probe target down");
  };
  // One path for both protocols: a prober that cannot start (no NET_RAW for
  // ICMP, undici failing to load for HTTP) leaves its component not ready with
  // the reason, and the gateway keeps serving: a crash loop would hide the
  // reason and take /readiness away.
  const startGroup = async <Detail>(
    protocol: Protocol,
    component: Component,
    targets: readonly string[],
    timing: { intervalMs: number; timeoutMs: number },
    createProber: () => Promise<OwnedProber<Detail>>,
  ): Promise<{ protocol: Protocol; group: ProbeGroup<Detail>; prober: OwnedProber<Detail> } | undefined> => {
    try {
      const prober = await createProber();
      const group = new ProbeGroup<Detail>({
        protocol,
        targets,
        intervalMs: timing.intervalMs,
        timeoutMs: timing.timeoutMs,
        prober: prober.probe,
        component,
        clock,
        onTargetTransition,
      });
      return { protocol, group, prober };
    } catch (error) {
      const message = errorMessage(error);
      const code = (error as { code?: unknown } | undefined)?.code;
      log.error(
        { component: component.name, code },
        `${PROTOCOL_NAMES[protocol]} probes cannot run: ${message}`,
      );
      component.report(false, `cannot probe: ${message}`);
      return undefined;
    }
  };
  const icmp = icmpComponent
    ? await startGroup("icmp", icmpComponent, icmpProbe.targets, icmpProbe, deps.createIcmpProber)
    : undefined;
  const http = httpComponent
    ? await startGroup("http", httpComponent, httpProbe.urls, httpProbe, () =>
        deps.createHttpProber({ requireSuccessStatus: httpProbe.requireSuccessStatus }),
      )
    : undefined;
  if (icmp) groups.push(icmp);
  if (http) {
    groups.push(http);
    httpGroup = http.group;
  }
  for (const { group } of groups) group.start();
  if (flowLog !== undefined) {
    flowLog.start();
    log.info(
      { rate: config.flowLogs.ratePerSecond, burst: 2 * config.flowLogs.ratePerSecond },
      "flow logs on: one line per finished forwarded connection",
    );
  }
  if (telemetryOn) telemetry.start();

  return {
    readiness,
    server,
    terminate: () => readiness.terminate(),
    // The one reader of the table: the telemetry's worker, read now rather
    // than from the last refresh, so that the drain ends on a fresh count.
    liveConnections: () => telemetry.readLiveForwarded(),
    async stop() {
      // The kernel state stays as it is: traffic keeps flowing through the
      // gateway until the pod's network namespace goes away.
      await Promise.all([
        ...groups.map(({ group }) => group.stop()),
        policySync.stop(),
        returnPath?.stop(),
        flowLog?.stop(),
        integrity?.stop(),
        telemetry.stop(),
      ]);
      useSpawnBroker(undefined);
      await spawnBroker.stop();
      for (const { prober } of groups) prober.close();
      readiness.close();
      await server?.close();
      runtime?.close();
    },
  };
}

/**
 * Policy sync (SPEC §5): the node agent's routes feed the return path on
 * vxlan0. Without a mounted agent socket the gateway is a plain SNAT gateway
 * with probes (§5.2), shown as an always-ready PolicySync row so that the mode
 * is visible in /readiness, not only in a log line. Registers the components;
 * startPreparedPolicySync dials later.
 */
function prepareReturnPath(
  config: Config,
  deps: GatewayDeps,
  readiness: Readiness,
): { options: PolicySyncOptions; prepared: PreparedPolicySync; returnPath: ReturnPath | undefined } {
  const { clock, log } = deps;
  let returnPath: ReturnPath | undefined;
  const options: PolicySyncOptions = {
    config,
    readiness,
    log,
    clock,
    socketCandidates: deps.socketCandidates,
    onRoutes: (feed) => returnPath?.update(feed),
  };
  const prepared = preparePolicySync(options);
  if (prepared.mode === "none") {
    readiness
      .register(COMPONENT.policySync)
      .report(true, "no node agent socket mounted: plain SNAT gateway, no return-path programming");
  } else if (config.podIPv4 === undefined) {
    // vxlan0 and the node MACs are IPv4 constructs; an IPv6-only gateway
    // cannot take traffic from the node agent's clients.
    const component = readiness.register(COMPONENT.dataplane);
    component.report(false, "no pod IPv4 address: the VXLAN return path needs EGRESS_POD_IP(S) with an IPv4");
    log.error("policy sync needs the pod's IPv4 address (EGRESS_POD_IP or EGRESS_POD_IPS)");
  } else {
    returnPath = createReturnPath({ readiness, log, clock, ourIPv4: config.podIPv4, vni: config.vxlan.vni });
  }
  return { options, prepared, returnPath };
}

const ACCEPT_ERROR_LOG_MS = 10_000; // 10 s

/**
 * Failed accepts come in storms (every queued connection fails while the fd
 * table is full): one warning, then at most one per 10 s with the count.
 */
function acceptErrorLog(log: Logger, clock: Clock): (error: NodeJS.ErrnoException) => void {
  let lastAt: number | undefined;
  let suppressed = 0;
  return (error) => {
    const now = clock.now();
    if (lastAt !== undefined && now - lastAt < ACCEPT_ERROR_LOG_MS) {
      suppressed++;
      return;
    }
    log.warn(
      { code: error.code, suppressed },
      `health server could not accept a connection: ${error.message} (the connection was dropped; serving goes on)`,
    );
    lastAt = now;
    suppressed = 0;
  };
}

/**
 * Fail closed at run time: the DataplaneIntegrity component watches what init
 * set up. Off without a pod address (a local run: no pod network to watch) or
 * with DATAPLANE_CHECK_INTERVAL=0s.
 */
function watchIntegrity(
  config: Config,
  deps: GatewayDeps,
  readiness: Readiness,
  returnPath: ReturnPath | undefined,
): IntegrityWatch | undefined {
  if (config.dataplaneCheckMs === 0) {
    deps.log.info("data plane integrity not checked (DATAPLANE_CHECK_INTERVAL=0s)");
    return undefined;
  }
  if (config.podIPv4 === undefined && config.podIPv6 === undefined) {
    deps.log.info("data plane integrity not checked: no EGRESS_POD_IP(S), so no pod network to watch");
    return undefined;
  }
  return startIntegrityWatch({
    config,
    intervalMs: config.dataplaneCheckMs,
    readiness,
    log: deps.log,
    clock: deps.clock,
    // A recreated vxlan0 has lost its FDB, neighbour and route entries.
    onVxlanRepaired: () => returnPath?.resync(),
  });
}

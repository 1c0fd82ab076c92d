// Entry point of the gateway container (/start-gateway.sh execs this file).
import { systemClock } from "../clock.js";
import { loadConfigOrExit } from "../config/index.js";
import { errorMessage } from "../errors.js";
import pino from "pino";
import { drain } from "./drain.js";
import { startGateway, type Gateway } from "./gateway.js";
import { createFlowLogger, createLogger, type Logger } from "./log.js";

const config = loadConfigOrExit(process.env, { requirePodIp: false });
const stdout = pino.destination({ sync: true });
const log = createLogger(config.logLevel, stdout);
const flowLogger = config.flowLogs.enabled ? createFlowLogger(stdout) : undefined;
// What the operator renders must run (SPEC §2): a value honoured only after an
// adjustment is one warning line, not an exit.
for (const { variable, given, used, message } of config.adjustments) {
  log.warn({ variable, given, used }, message);
}

if (
  config.podIPv4 === undefined &&
  config.podIPv6 === undefined &&
  config.health.listenAddress === undefined
) {
  log.warn(
    "no EGRESS_POD_IP/EGRESS_POD_IPS: health server bound to loopback (fine for a local run, not in a pod)",
  );
}

let gateway: Gateway;
try {
  gateway = await startGateway(config, {
    clock: systemClock,
    log,
    writeFlow: flowLogger === undefined ? undefined : (record) => flowLogger.info(record, "flow"),
    // Probers load only when configured, and after the health server listens:
    // undici alone is ~8 MB of RSS and ~110 ms of start-up, wasted on an
    // ICMP-only gateway.
    createIcmpProber: async () => {
      const icmp = await import("../probes/icmp.js");
      return icmp.createIcmpProber({ timeoutMs: config.icmpProbe.intervalMs });
    },
    createHttpProber: async (options) => {
      const http = await import("../probes/http.js");
      return { probe: http.createHttpProber(options), close: () => undefined };
    },
  });
} catch (error) {
  exitOnStartFailure(log, error);
}
let terminating = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (terminating) {
      log.warn({ signal }, "second termination signal: exiting without finishing the drain");
      process.exit(signal === "SIGTERM" ? 143 : 130);
    }
    terminating = true;
    gateway.terminate();
    const minMs = Math.min(config.drainMinMs, config.drainMs);
    log.info(
      { signal, drainMs: config.drainMs, drainMinMs: minMs },
      "termination signal: readiness is 503, draining",
    );
    void drain({
      clock: systemClock,
      log,
      minMs,
      maxMs: config.drainMs,
      count: () => gateway.liveConnections(),
    })
      .then(async (outcome) => {
        await gateway.stop();
        log.info(
          { reason: outcome.reason, elapsedMs: Math.round(outcome.elapsedMs), liveConnections: outcome.live },
          "drain complete, exiting",
        );
        process.exit(0);
      })
      .catch((error: unknown) => {
        log.error({ err: error }, "error while stopping");
        process.exit(1);
      });
  });
}
// Announced once the handlers above are in place: a SIGTERM sent on seeing
// this line (a test, a supervisor) must drain, not find the default action
// and end the process without a word (CI hit that window under load).
log.info({ drainMs: config.drainMs }, "gateway started");

function exitOnStartFailure(log: Logger, error: unknown): never {
  const code = (error as { code?: unknown }).code;
  const message = errorMessage(error);
  const hint =
    code === "EADDRINUSE"
      ? "another process holds the port; choose another HEALTH_PORT"
      : code === "EADDRNOTAVAIL"
        ? "that address is not on this host; check EGRESS_POD_IP(S) or set HEALTH_LISTEN_ADDRESS"
        : code === "EACCES"
          ? "binding a port below 1024 needs CAP_NET_BIND_SERVICE; choose a HEALTH_PORT >= 1024"
          : "see the message";
  log.fatal({ code }, `cannot start: ${message} (${hint})`);
  process.exit(1);
}

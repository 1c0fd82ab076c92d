// The gateway's kernel telemetry: made from the configuration, with the
// SNATPortUtilization readiness component it may feed.
import type { Clock } from "../clock.js";
import type { Config } from "../config/types.js";
import { COMPONENT } from "../readiness/components.js";
import type { Readiness } from "../readiness/readiness.js";
import { kernelTelemetry, portUtilizationVerdict, type Telemetry } from "../telemetry/index.js";
import type { Logger } from "./log.js";

/**
 * Kernel telemetry, and the optional SNATPortUtilization component fed by it.
 * The component is off by default: replicas behind one egress IP pool saturate
 * together, so with it on they would all turn not ready at once and the
 * clients would lose every gateway instead of some ports. With
 * TELEMETRY_INTERVAL=0s it is made but never started (no refresh, nothing in
 * /metrics): the drain still reads the live forwarded connections through it.
 */
export function prepareTelemetry(
  config: Config,
  deps: { readonly clock: Clock; readonly log: Logger },
  readiness: Readiness,
): Telemetry {
  const { intervalMs, topN, maxPortUtilization } = config.telemetry;
  const telemetry = kernelTelemetry({ intervalMs, topN, clock: deps.clock, log: deps.log });
  if (intervalMs === 0) {
    if (maxPortUtilization !== undefined) {
      deps.log.warn(
        "READINESS_MAX_PORT_UTILIZATION is ignored: it needs kernel telemetry, which TELEMETRY_INTERVAL=0s turns off",
      );
    }
  } else if (maxPortUtilization !== undefined) {
    const component = readiness.register(COMPONENT.snatPortUtilization);
    telemetry.onRefresh((snapshot) => {
      const verdict = portUtilizationVerdict(snapshot, maxPortUtilization);
      component.report(verdict.ready, verdict.detail);
    });
  }
  return telemetry;
}

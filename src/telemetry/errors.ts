// Errors of the kernel telemetry: one class per failure with a stable code, as
// elsewhere in the project (src/errors.ts).
import { EgressGatewayError } from "../errors.js";

export abstract class TelemetryError extends EgressGatewayError {}

/** A kernel source could not be read or parsed. */
export class TelemetryReadError extends TelemetryError {
  readonly code = "EGW_ERR_TELEMETRY_READ";

  constructor(
    message: string,
    /** The system error's code (EACCES, ENOENT) when a system call failed. */
    readonly errno?: string,
  ) {
    super(message);
  }
}

/** A refresh took longer than its deadline; its unfinished reads were cut off. */
export class TelemetryDeadlineError extends TelemetryError {
  readonly code = "EGW_ERR_TELEMETRY_DEADLINE";
}

/** None of the backends holds the counting rules of init-gateway.sh. */
export class TelemetryNoRulesError extends TelemetryError {
  readonly code = "EGW_ERR_TELEMETRY_NO_RULES";
}

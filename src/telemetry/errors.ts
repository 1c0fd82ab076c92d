// Errors of the kernel telemetry, values with a stable code, as elsewhere in the project.

export type TelemetryErrorCode =
  | "EGW_ERR_TELEMETRY_READ" // a kernel source could not be read or parsed
  | "EGW_ERR_TELEMETRY_DEADLINE" // a refresh took longer than its deadline
  | "EGW_ERR_TELEMETRY_NO_RULES"; // none of the backends holds our counting rules

export class TelemetryError extends Error {
  override readonly name = "TelemetryError";
  constructor(
    readonly code: TelemetryErrorCode,
    message: string,
  ) {
    super(message);
  }
}

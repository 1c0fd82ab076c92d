// The one error pattern of the project, after undici's lib/core/errors.js: one
// class per failure, each with a stable `code` (`EGW_ERR_<WHAT>`) that callers
// and tests match on instead of the message, and a `name` that is the class's.

/** Base of every error the project throws on purpose. */
export abstract class EgressGatewayError extends Error {
  /** Stable, machine-readable: `EGW_ERR_<WHAT>`. */
  abstract readonly code: `EGW_ERR_${string}`;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An option given to a constructor or factory that it cannot work with: a programming error. */
export class InvalidOptionError extends EgressGatewayError {
  readonly code = "EGW_ERR_INVALID_OPTION";
}

/** The message of anything thrown: an Error's message, anything else as a string. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

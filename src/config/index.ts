// The public face of src/config: parse the environment once, at the edge, and
// turn bad input into one line and exit code 2 instead of a stack trace.

import { ConfigError } from "./errors.js";
import { parseConfig, type Environment, type ParseOptions } from "./parse.js";
import type { Config } from "./types.js";

export { formatDuration, parseDuration, type ParsedDuration } from "./duration.js";
export { ConfigError, quote, type ConfigProblem } from "./errors.js";
export { parseConfig, type Environment, type ParseOptions } from "./parse.js";
export type * from "./types.js";
export { defaultOf, variables, type Reader, type Variable, type VariableName } from "./variables.js";

/** Exit status for a configuration error, distinct from 1 (a failure while running). */
export const CONFIG_ERROR_EXIT_CODE = 2;

/**
 * parseConfig for an entrypoint: on a configuration error, writes exactly one line
 * to `stderr` and exits with status 2 before anything has been changed. Any other
 * error is a bug and propagates with its stack.
 */
export function loadConfigOrExit(
  env: Environment,
  options: ParseOptions,
  stderr: { write(line: string): unknown } = process.stderr,
): Config {
  try {
    return parseConfig(env, options);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    stderr.write(`egress-gateway: configuration error: ${error.message}\n`);
    return process.exit(CONFIG_ERROR_EXIT_CODE);
  }
}

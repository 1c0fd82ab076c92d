// The one error configuration parsing throws. Its message is a single line an
// operator can act on: which variable, the value it got, what is wrong, what to write.
import { EgressGatewayError } from "../errors.js";

/** Longest part of a value shown in a message; env values can be whole files by mistake. */
const MAX_SHOWN_CHARS = 200;

// After JSON.stringify only these can still break or disguise a line: DEL and C1
// controls (NEL), Unicode line/paragraph separators, and invisible format characters
// such as bidi overrides.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

export interface ConfigProblem {
  readonly variable: string;
  /** The value exactly as found in the environment ("" when unset). */
  readonly value: string;
  /** A predicate phrase that follows the value: `is not a duration`, `is shorter than …`. */
  readonly problem: string;
  /** What would have been accepted, without the word "expected". */
  readonly expected: string;
}

export class ConfigError extends EgressGatewayError {
  readonly code = "EGW_ERR_CONFIG_INVALID";
  readonly variable: string;
  readonly value: string;
  readonly expected: string;

  constructor({ variable, value, problem, expected }: ConfigProblem) {
    super(`${variable}=${quote(value)} ${problem}; expected ${expected}`);
    this.variable = variable;
    this.value = value;
    this.expected = expected;
  }
}

/**
 * Quotes text for a one-line message: JSON string syntax, so that empty values and
 * whitespace are visible, invisible characters escaped, and long text cut short.
 */
export function quote(text: string): string {
  const shown = text.length > MAX_SHOWN_CHARS ? text.slice(0, MAX_SHOWN_CHARS) : text;
  const quoted = JSON.stringify(shown).replace(INVISIBLE, escapeUtf16);
  return shown === text ? quoted : `${quoted}… (${text.length} characters)`;
}

function escapeUtf16(char: string): string {
  let escaped = "";
  for (let i = 0; i < char.length; i++) escaped += `\\u${char.charCodeAt(i).toString(16).padStart(4, "0")}`;
  return escaped;
}

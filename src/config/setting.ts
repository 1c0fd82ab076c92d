// One variable as read from the environment, and the two ways the parser talks
// about it: a ConfigError (exit 2) or, for a value it can honour only after an
// adjustment, the subject of a warning.

import { ConfigError, quote } from "./errors.js";
import { defaultOf, type VariableName } from "./variables.js";

export type Environment = Readonly<Record<string, string | undefined>>;

/** One variable as found: `raw` is shown in messages, `text` (trimmed, or the default) is parsed. */
export interface Setting {
  readonly name: VariableName;
  readonly raw: string;
  readonly text: string;
  readonly isDefault: boolean;
}

// Blank means default: Kubernetes manifests write `value: ""` for "not set", and stray
// spaces around a value in YAML are a typo nobody should lose a rollout to.
export function read(env: Environment, name: VariableName): Setting {
  const raw = env[name] ?? "";
  const text = raw.trim();
  return text === ""
    ? { name, raw, text: defaultOf(name), isDefault: true }
    : { name, raw, text, isDefault: false };
}

export function invalid(setting: Setting, problem: string, expected: string): ConfigError {
  return new ConfigError({ variable: setting.name, value: setting.raw, problem, expected });
}

/** The variable and its value for a message: `X="5s"`, or `X (default 15s)` when unset. */
export function describe(setting: Setting): string {
  return setting.isDefault
    ? `${setting.name} (default ${setting.text})`
    : `${setting.name}=${quote(setting.raw)}`;
}

// What the gateway and its spawn broker say to each other over the broker's
// IPC channel (Node's, JSON), and the book-keeping of requests in flight: pure,
// so that both sides and the tests share one definition.
import type { CommandResult } from "./spawn-command.js";

/** Gateway to broker: run `argv` with `input` on stdin. */
export interface CommandRequest {
  readonly id: number;
  readonly argv: readonly string[];
  readonly input?: string;
}

/** Broker to gateway: booted and listening; then one reply per request, by id. */
export type BrokerMessage =
  { readonly type: "ready" } | ({ readonly type: "reply"; readonly id: number } & CommandResult);

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === "string");

export function parseRequest(message: unknown): CommandRequest | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  const { id, argv, input } = message as Record<string, unknown>;
  if (!Number.isSafeInteger(id) || !isStringArray(argv)) return undefined;
  if (input !== undefined && typeof input !== "string") return undefined;
  return { id: id as number, argv, input };
}

export function parseBrokerMessage(message: unknown): BrokerMessage | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  const fields = message as Record<string, unknown>;
  if (fields.type === "ready") return { type: "ready" };
  const { id, ok, stdout, stderr } = fields;
  if (fields.type !== "reply" || !Number.isSafeInteger(id) || typeof ok !== "boolean") return undefined;
  if (typeof stdout !== "string" || typeof stderr !== "string") return undefined;
  return { type: "reply", id: id as number, ok, stdout, stderr };
}

interface Waiting {
  readonly file: string;
  readonly resolve: (result: CommandResult) => void;
}

/** Requests sent to the broker and not answered yet, by id; each one settles exactly once. */
export class InFlight {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();

  get size(): number {
    return this.waiting.size;
  }

  /** Registers a request; returns its id and the promise that its reply (or failAll) settles. */
  add(argv: readonly string[]): { id: number; result: Promise<CommandResult> } {
    const id = this.nextId++;
    const result = new Promise<CommandResult>((resolve) => {
      this.waiting.set(id, { file: argv[0] ?? "", resolve });
    });
    return { id, result };
  }

  /** Settles the request a reply answers; false for an id that is not waiting. */
  settle(id: number, result: CommandResult): boolean {
    const waiting = this.waiting.get(id);
    if (waiting === undefined) return false;
    this.waiting.delete(id);
    waiting.resolve(result);
    return true;
  }

  /** Fails every waiting request with `<file>: <why>` (the broker is gone: no reply will come). */
  failAll(why: string): void {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const { file, resolve } of all) resolve({ ok: false, stdout: "", stderr: `${file}: ${why}` });
  }
}

const RESTART_MAX_MS = 60_000; // 60 s
/** A broker that ran this long without dying counts as healthy: its next death restarts it at once. */
export const BROKER_HEALTHY_MS = 60_000; // 60 s

/**
 * How long to wait before starting the broker again after `deaths` deaths in a
 * row (1 is the first): at once, then 1 s doubling to 60 s, so that a broker
 * that cannot start is not forked in a loop from the gateway's large heap.
 */
export function restartDelayMs(deaths: number): number {
  if (deaths <= 1) return 0;
  return Math.min(RESTART_MAX_MS, 1000 * 2 ** (deaths - 2));
}

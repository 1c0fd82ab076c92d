// Reading a lab gateway's health server from inside a namespace that can reach
// it (lab/namespace-http.ts): /readiness as JSON, polled until it says what a
// test or the demo waits for, and /metrics as name{labels} -> value.
import { setTimeout as sleep } from "node:timers/promises";
import type { NamespaceHttpClient } from "./namespace-http.js";

export interface ComponentRow {
  readonly name: string;
  readonly timeoutSeconds: number | null;
  readonly ready: boolean;
  readonly detail: string;
}

export interface ReadinessAnswer {
  /** HTTP status; 0 when the server did not answer. */
  readonly status: number;
  readonly components: readonly ComponentRow[];
  /** The JSON body, or why there was no answer. */
  readonly body: string;
  /** performance.now() when the answer arrived. */
  readonly at: number;
}

const POLL_MS = 50;

export async function readinessOf(client: NamespaceHttpClient, url: string): Promise<ReadinessAnswer> {
  try {
    const answer = await client.get(url, { timeoutMs: 1_000, headers: { accept: "application/json" } });
    const parsed = JSON.parse(answer.body) as { components?: ComponentRow[] };
    return {
      status: answer.status,
      components: parsed.components ?? [],
      body: answer.body,
      at: performance.now(),
    };
  } catch (error) {
    const body = error instanceof Error ? error.message : String(error);
    return { status: 0, components: [], body, at: performance.now() };
  }
}

/** The named component's row, undefined when the gateway has no such component. */
export const componentOf = (answer: ReadinessAnswer, name: string): ComponentRow | undefined =>
  answer.components.find((c) => c.name === name);

/**
 * Polls /readiness until `want` holds; resolves with the first answer that
 * satisfies it and `matched: true`, or with the last answer and `matched:
 * false` after `timeoutMs`.
 */
export async function awaitReadiness(
  client: NamespaceHttpClient,
  url: string,
  want: (answer: ReadinessAnswer) => boolean,
  timeoutMs: number,
): Promise<{ readonly answer: ReadinessAnswer; readonly matched: boolean }> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const answer = await readinessOf(client, url);
    if (want(answer)) return { answer, matched: true };
    if (answer.at > until) return { answer, matched: false };
    await sleep(POLL_MS);
  }
}

/** The /readiness text table, as a person reading it with curl sees it. */
export async function readinessTable(client: NamespaceHttpClient, url: string): Promise<string> {
  try {
    return (await client.get(url, { timeoutMs: 1_000 })).body;
  } catch (error) {
    return `no answer: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** Prometheus text format to `name{labels}` -> value, keys exactly as exposed (`name` alone without labels). */
export function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

export async function metricsOf(client: NamespaceHttpClient, url: string): Promise<Map<string, number>> {
  const answer = await client.get(url, { timeoutMs: 1_000 });
  if (answer.status !== 200) throw new Error(`GET ${url}: status ${answer.status}`);
  return parseMetrics(answer.body);
}

/** Polls /metrics until the sample `key` satisfies `want`; resolves with whether it did within `timeoutMs`. */
export async function awaitMetric(
  client: NamespaceHttpClient,
  url: string,
  key: string,
  want: (value: number | undefined) => boolean,
  timeoutMs = 5_000,
): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (want((await metricsOf(client, url)).get(key))) return true;
    if (performance.now() > until) return false;
    await sleep(POLL_MS);
  }
}

/** The sample that counts the policy-sync messages a gateway handled, across streams. */
export const HANDLED_MESSAGES = 'egress_gateway_policy_sync_messages_total{handled="true"}';

// The answers to the two polled routes, /readiness and /liveness, shared by the
// server's fast path and by the fastify routes so that both give the same bytes.
import type { OutgoingHttpHeaders } from "node:http";
import { cachedRenderer, type RenderedReadiness } from "./render.js";
import type { ReadinessView } from "../readiness/readiness.js";

export const TEXT = "text/plain; charset=utf-8";
const JSON_TYPE = "application/json; charset=utf-8";
const LIVENESS_BODY = "ok\n";

/** A complete answer: status, headers (content-length included) and body. */
export interface Answer {
  readonly status: number;
  readonly headers: Readonly<OutgoingHttpHeaders>;
  readonly body: string;
}

const answer = (
  status: number,
  contentType: string,
  body: string,
  extra: OutgoingHttpHeaders = {},
): Answer => ({
  status,
  headers: Object.freeze({
    "content-type": contentType,
    ...extra,
    "content-length": Buffer.byteLength(body),
  }),
  body,
});

export const LIVENESS = answer(200, TEXT, LIVENESS_BODY);

/** The readiness answer for a request's Accept header. */
export type ReadinessAnswers = (accept: string | undefined) => Answer;

/**
 * The readiness answers for the current rendering, text and JSON, with their
 * headers computed once per rendering rather than once per request.
 */
export function readinessAnswers(readiness: () => ReadinessView): ReadinessAnswers {
  const render = cachedRenderer();
  let answers: { rendered: RenderedReadiness; text: Answer; json: Answer } | undefined;
  return (accept) => {
    const rendered = render(readiness());
    if (answers?.rendered !== rendered) {
      const noStore = { "cache-control": "no-store" };
      answers = {
        rendered,
        text: answer(rendered.status, TEXT, rendered.text, noStore),
        json: answer(rendered.status, JSON_TYPE, rendered.json, noStore),
      };
    }
    return accept?.includes("application/json") === true ? answers.json : answers.text;
  };
}

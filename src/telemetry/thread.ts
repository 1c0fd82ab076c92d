// Starts one of the telemetry's threads from the same tree as this file:
// dist/ in production; the sources under tsx in tests and benchmarks, where a
// thread must register tsx itself (loader hooks do not reach worker threads
// in Node 20).
import { Worker, type WorkerOptions } from "node:worker_threads";

/** `name` without extension, beside this file: "conntrack-worker". */
export function startThread(name: string, options: WorkerOptions = {}): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL(`./${name}.js`, import.meta.url), options);
  const source = JSON.stringify(new URL(`./${name}.ts`, import.meta.url).href);
  return new Worker(`import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${source}); })`, {
    ...options,
    eval: true,
  });
}

// Teardown that also runs when a script is interrupted: on normal exit, on an
// uncaught error (Node still emits "exit") and on SIGINT/SIGTERM/SIGHUP, which
// would otherwise end the process without running any `finally`.
const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

/**
 * Calls `teardown` (synchronous: an exit handler cannot wait) once, whichever
 * comes first. Returns a function that runs it now and removes the hooks.
 */
export function teardownOnExit(teardown: () => void): () => void {
  let done = false;
  const once = (): void => {
    if (done) return;
    done = true;
    process.off("exit", once);
    for (const [signal, handler] of handlers) process.off(signal, handler);
    teardown();
  };
  const handlers = Object.entries(SIGNAL_EXIT_CODES).map(([signal, code]) => {
    const handler = (): void => {
      process.stderr.write(`\n${signal}: removing the lab\n`);
      once();
      process.exit(code);
    };
    process.on(signal, handler);
    return [signal as keyof typeof SIGNAL_EXIT_CODES, handler] as const;
  });
  process.on("exit", once);
  return once;
}

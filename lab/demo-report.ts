// What the demo (scripts/demo.ts) prints, for a person to follow: numbered
// steps, one ✓ or ✗ line per check, command output indented below. It counts
// the checks, so that a run where anything shown was wrong exits non-zero.
export const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

export const indent = (block: string): string =>
  block
    .trimEnd()
    .split("\n")
    .map((line) => `     ${line}`)
    .join("\n");

export class DemoReport {
  readonly started = performance.now();
  private step = 0;
  private checks = 0;
  private failures = 0;

  /** A numbered step; numbers run on across the demo's parts. */
  readonly title = (text: string): void => {
    this.step += 1;
    console.log(`\n${this.step}. ${text}`);
  };

  readonly say = (text: string): void => console.log(`   ${text}`);

  /** Output of a command or a server, indented under the step. */
  readonly show = (block: string): void => console.log(indent(block || "(empty)"));

  readonly check = (ok: boolean, text: string): boolean => {
    this.checks += 1;
    if (!ok) this.failures += 1;
    this.say(`${ok ? "✓" : "✗"} ${text}`);
    return ok;
  };

  /** A part that stopped early: one failed check with the reason. */
  readonly stopped = (error: unknown): void => {
    this.check(false, `stopped: ${error instanceof Error ? error.message : String(error)}`);
  };

  get ok(): boolean {
    return this.failures === 0;
  }

  summary(): string {
    const total = seconds(performance.now() - this.started);
    return this.ok
      ? `✓ all ${this.checks} checks passed in ${total}`
      : `✗ ${this.failures} of ${this.checks} checks failed (${total})`;
  }
}

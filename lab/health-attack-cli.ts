// The health-port attacker (lab/health-attack.ts) as a process of its own:
//   node --import tsx lab/health-attack-cli.ts '<AttackPlan as JSON>'
// Prints one JSON line of counts every 250 ms ({"held": n, "opened": ...}) and
// a last one when SIGTERM or SIGINT stops it.
import { HealthAttack, type AttackPlan } from "./health-attack.js";

const REPORT_MS = 250;

let plan: AttackPlan;
try {
  plan = JSON.parse(process.argv[2] ?? "") as AttackPlan;
} catch {
  process.stderr.write("usage: health-attack-cli.ts '<AttackPlan as JSON>'\n");
  process.exit(2);
}
const attack = new HealthAttack(plan);
const report = (): void => {
  process.stdout.write(`${JSON.stringify({ held: attack.held, ...attack.counts })}\n`);
};
attack.start();
const timer = setInterval(report, REPORT_MS);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    clearInterval(timer);
    attack.stop();
    report();
    process.exit(0);
  });
}

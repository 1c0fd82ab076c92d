// Entry point of the init container (/init-gateway.sh execs this file). The only
// module with side effects at import: it reads the environment and exits.
import { loadConfigOrExit } from "../config/index.js";
import { parseArgs, USAGE } from "./cli.js";
import { InitError } from "./errors.js";
import { PROGRAM } from "./render-plan.js";
import { runInit } from "./run.js";

try {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(USAGE);
  } else {
    const config = loadConfigOrExit(process.env, { requirePodIp: true });
    process.stdout.write(await runInit(config, { dryRun: args.dryRun }));
  }
} catch (error) {
  if (!(error instanceof InitError)) throw error;
  process.stderr.write(`${PROGRAM}: ${error.code}: ${error.message}\n`);
  process.exitCode = error.exitCode;
}

#!/usr/bin/env bash
# The one test command: set-up, format, lint, typecheck, build, then every test
# file in its own child process (raw-socket cannot run in worker threads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== format"; npx prettier --check --log-level warn .
echo "== lint"; npx eslint --max-warnings 0 .
echo "== typecheck"; npx tsc -p tsconfig.json --noEmit
echo "== build"; npm run --silent build

mapfile -t files < <(find test -name '*.test.ts' | sort)
if (($# > 0)); then files=("$@"); fi
echo "== test (${#files[@]} files)"
exec node --import tsx --test --test-reporter=spec "${files[@]}"

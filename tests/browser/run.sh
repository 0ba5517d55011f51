#!/usr/bin/env bash
# Runs the browser journeys of the web UI (docs/ui.md): installs playwright-core from the
# lock file when needed, then runs node's test runner and prints a summary line.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "browser: chromium is missing (CI=true): run scripts/install-test-deps.sh" >&2
    echo "browser: 0 passed, 1 failed, 0 skipped"
    exit 1
  fi
  echo "browser: chromium is not installed; skipping (install it with scripts/install-test-deps.sh)"
  echo "browser: 0 passed, 0 failed, 1 skipped"
  exit 0
fi
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --loglevel=error

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$log" journeys.test.mjs || status=$?

passed=$(grep -E '^# pass ' "$log" | awk '{print $3}' || true)
failed=$(grep -E '^# fail ' "$log" | awk '{print $3}' || true)
skipped=$(grep -E '^# skipped ' "$log" | awk '{print $3}' || true)
echo "browser: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped (screenshots in tests/browser/artifacts/)"
exit "$status"

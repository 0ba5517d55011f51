#!/usr/bin/env bash
# Runs every test of ESP Admin on a Debian 12 machine: installs what the tests need, then
# vets and runs the Go tests with the race detector against real services.
#
#   scripts/test.sh            everything
#   scripts/test.sh ./store/... only some packages (dependencies are still installed)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

pkgs=("$@")
[ "${#pkgs[@]}" -gt 0 ] || pkgs=(./...)

# go.mod lists what the code imports, directly or not, and nothing else.
echo "== go mod tidy"
tidy_status=0
go mod tidy -diff || { tidy_status=1; echo "go.mod or go.sum is not tidy: run 'go mod tidy'"; }

echo "== go vet"
go vet "${pkgs[@]}"

echo "== go test -race"
log=$(mktemp)
report=$(mktemp)
trap 'rm -f "$log" "$report"' EXIT
go test -race -count=1 -timeout 25m -json "${pkgs[@]}" >"$log" 2>&1 || true
# One line per package, the backends the conformance suites ran on, the counts, and the whole
# output of each failed test (tests/testreport).
go_status=0
go run ./tests/testreport <"$log" >"$report" || go_status=$?
cat "$report"
status=$go_status
[ "$tidy_status" -eq 0 ] || status=$tidy_status

# The firmware's portable core and Linux port: warnings-as-errors build, cmocka unit tests
# against the shared protocol vectors (with ASan/UBSan), and bounded fuzzing of the decoders.
# Skipped when only some Go packages were asked for.
if [ "$#" -eq 0 ]; then
  echo "== firmware"
  fw_status=0
  make -C firmware check FUZZ_SECONDS="${FUZZ_SECONDS:-20}" || fw_status=$?
  [ "$fw_status" -eq 0 ] || status=$fw_status

  # The web UI's journeys in Debian's chromium against a real `espadmin serve` and a
  # simulated device; the runner prints its own summary line.
  echo "== browser"
  br_status=0
  tests/browser/run.sh || br_status=$?
  [ "$br_status" -eq 0 ] || status=$br_status

  # The Node-RED nodes in a real Node-RED runtime against a real `espadmin serve` and a
  # simulated device (integrations/node-red).
  echo "== node-red"
  nr_status=0
  (cd integrations/node-red && npm ci --no-audit --no-fund --loglevel=error && npm test) || nr_status=$?
  [ "$nr_status" -eq 0 ] || status=$nr_status

  echo "== summary"
  echo "go mod tidy: $([ "$tidy_status" -eq 0 ] && echo ok || echo FAILED)"
  echo "firmware: $([ "$fw_status" -eq 0 ] && echo ok || echo "FAILED (exit $fw_status)")"
  echo "browser: $([ "$br_status" -eq 0 ] && echo ok || echo "FAILED (exit $br_status)")"
  echo "node-red: $([ "$nr_status" -eq 0 ] && echo ok || echo "FAILED (exit $nr_status)")"
  # Repeated last, so that the end of a long log names what failed.
  if [ "$go_status" -ne 0 ]; then
    sed -n '/^go: [0-9]* passed/,$p' "$report"
  else
    grep '^go: [0-9]* passed' "$report"
  fi
fi
exit "$status"

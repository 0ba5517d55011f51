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

echo "== go vet"
go vet "${pkgs[@]}"

echo "== go test -race"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
go test -race -count=1 -timeout 25m -v "${pkgs[@]}" >"$log" 2>&1 || status=$?

# The full verbose log is long; show package results, failures, and which store and blob
# backends the conformance suites ran on. On failure, show everything.
if [ "$status" -ne 0 ]; then
  cat "$log"
else
  grep -E '^(ok|FAIL|PASS$|panic:)|^\s+[a-z_]+\.go:[0-9]+: (conformance|backend)' "$log" || true
fi
passed=$(grep -cE '^--- PASS' "$log" || true)
failed=$(grep -cE '^--- FAIL' "$log" || true)
skipped=$(grep -cE '^--- SKIP' "$log" || true)
echo "go: ${passed} passed, ${failed} failed, ${skipped} skipped"

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
fi
exit "$status"

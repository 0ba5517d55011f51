#!/bin/sh
# Reports the firmware core's footprint on the ESP8266's lx106 (Xtensa) and fails when its code
# exceeds the budget. Called by `make lx106`:
#   footprint.sh PREFIX BUDGET PROBE_OBJ LONGCALLS_DIR OBJ...
# Code is size(1)'s "text" (instructions, literal pools and read-only data) of each object.
set -eu
prefix=$1 budget=$2 probe=$3 longcalls=$4
shift 4

echo "== firmware footprint: core compiled for lx106 ($("${prefix}gcc" -dumpversion), picolibc, -Os)"
"${prefix}size" "$@"
total=0
for o in "$@"; do
  t=$("${prefix}size" "$o" | awk 'NR == 2 {print $1}')
  total=$((total + t))
done
lc=0
for o in "$longcalls"/*.o; do
  t=$("${prefix}size" "$o" | awk 'NR == 2 {print $1}')
  lc=$((lc + t))
done
echo "core code: $total B (budget $budget B); with -mlongcalls, as ESP-IDF builds it: $lc B"

size_of() {
  hex=$("${prefix}nm" -S "$probe" | awk -v s="espadmin_size_of_$1" '$4 == s {print $2}')
  echo $((0x$hex))
}
agent=$(size_of agent)
slot=$(size_of inbox_slot)
echo "heap on lx106 (sizeof): agent $agent B + inbox 2 x $slot B = $((agent + 2 * slot)) B at init" \
  "(plus the provisioned CA); while needed: command $(size_of command) B + its payload's length + 64 B, JSON value $(size_of json_value) B each," \
  "log ring $(size_of log_ring) B"

if [ "$total" -gt "$budget" ]; then
  echo "FAIL: the core's code ($total B) exceeds the budget ($budget B)" >&2
  exit 1
fi

#!/bin/sh
# Reports the firmware core's footprint on the ESP8266's lx106 (Xtensa) and fails when its code
# or the agent's heap at init exceed their budgets. Called by `make lx106`:
#   footprint.sh PREFIX BUDGET HEAP_BUDGET PROFILE PROBE_OBJ LONGCALLS_DIR OBJ...
# Code is size(1)'s "text" (instructions, literal pools and read-only data) of each object. The
# heap at init on the target (the agent's struct and its inbox slot headers, by sizeof) must
# stay within HEAP_BUDGET; the host heap tests (make heap) count the same with an allocator.
set -eu
prefix=$1 budget=$2 heap_budget=$3 profile=$4 probe=$5 longcalls=$6
shift 6

echo "== firmware footprint, profile $profile: core compiled for lx106 ($("${prefix}gcc" -dumpversion), picolibc, -Os)"
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
slots=$(size_of inbox_slots)
init=$((agent + slots * slot))
echo "heap on lx106 (sizeof): agent $agent B + inbox $slots x $slot B = $init B at init (budget $heap_budget B)" \
  "(plus the provisioned CA); while needed: a command up to $(size_of max_command) B, its decoded form $(size_of command) B" \
  "(+ room for a config's values in the default profile: the payload's length + 64 B), JSON value $(size_of json_value) B each," \
  "log ring $(size_of log_ring) B"

if [ "$total" -gt "$budget" ]; then
  echo "FAIL: the core's code ($total B) exceeds the budget ($budget B)" >&2
  exit 1
fi
if [ "$init" -gt "$heap_budget" ]; then
  echo "FAIL: the agent's heap at init on lx106 ($init B) exceeds the budget ($heap_budget B)" >&2
  exit 1
fi

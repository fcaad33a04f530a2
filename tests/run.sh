#!/usr/bin/env bash
# Runs every test folder's run.sh and the unit tests; closes with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD NESTOR="$(realpath -m "$BUILD/nestor")"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run_part() { # name, command...
  local name=$1; shift
  echo "== $name"
  "$@" 2>&1 | tee -a "$log" | grep -E '^(FAIL|PASS)' | grep -v '^PASS' || true
}

if [ -x "$BUILD/tests/unit/unit_tests" ]; then
  run_part unit bash -c "'$BUILD/tests/unit/unit_tests' --tap -j2 2>&1 | sed -n -e 's/^ok [0-9]* - \(.*\)/PASS unit:\1/p' -e 's/^not ok [0-9]* - \(.*\)/FAIL unit:\1/p'"
fi
for r in tests/*/run.sh; do
  [ -x "$r" ] || continue
  run_part "$(basename "$(dirname "$r")")" "$r"
done

pass=$(grep -c '^PASS' "$log")
fail=$(grep -c '^FAIL' "$log")
echo
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]

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

# Criterion's TAP lines: "ok - name" (2.4 numbers none) or "ok 12 - name"; a runner that
# dies or exits non-zero is a failure of its own.
unit_tests() {
  local out st
  out=$("$BUILD/tests/unit/unit_tests" --tap -j2 2>&1); st=$?
  printf '%s\n' "$out" | sed -E -n -e 's/^ok ([0-9]+ )?- (.*)/PASS unit:\2/p' \
                                  -e 's/^not ok ([0-9]+ )?- (.*)/FAIL unit:\2/p'
  [ "$st" -eq 0 ] || echo "FAIL unit: the unit test runner exited with status $st"
}

if [ -x "$BUILD/tests/unit/unit_tests" ]; then
  run_part unit unit_tests
else
  echo "FAIL unit: $BUILD/tests/unit/unit_tests not built" | tee -a "$log"
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

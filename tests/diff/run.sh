#!/usr/bin/env bash
# Runs the differential tests: one "PASS diff:<form>" / "FAIL diff:<form>: why" line per
# instruction form. DIFF_CASES sets the cases per form (fewer under the sanitizers).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
bin="$BUILD/tests/diff/diff_test"
if [ ! -x "$bin" ]; then
  echo "FAIL diff:build: $bin not built"
  exit 0
fi
case "$BUILD" in
  *san*) : "${DIFF_CASES:=150}" ;;
  *) : "${DIFF_CASES:=1000}" ;;
esac
export DIFF_CASES
"$bin"
status=$?
if [ $status -gt 1 ]; then
  echo "FAIL diff:run: diff_test exited with status $status"
fi
exit 0

#!/usr/bin/env bash
# The gdb stub (tests/gdb/gdb_test.py): PASS/FAIL lines for tests/run.sh.
cd "$(dirname "$0")/../.."
exec python3 tests/gdb/gdb_test.py "$@"

#!/usr/bin/env bash
# QMP and migration tests (tests/qmp/qmp_test.py): PASS/FAIL lines for tests/run.sh.
cd "$(dirname "$0")/../.."
exec python3 tests/qmp/qmp_test.py "$@"

#!/usr/bin/env bash
# Save/restore exactness (tests/state/determinism.py): PASS/FAIL lines for tests/run.sh.
cd "$(dirname "$0")/../.."
exec python3 tests/state/determinism.py "$@"

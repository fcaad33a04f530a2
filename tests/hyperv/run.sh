#!/usr/bin/env bash
# The Hyper-V tests that need more than a guest kernel (those are in tests/guest: hv_*):
# the synthetic debugger against a UDP peer on the loopback (syndbg.sh).
set -u
cd "$(dirname "$0")"
./syndbg.sh "$@"

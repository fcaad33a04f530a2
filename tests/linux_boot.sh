# What the suites that boot Debian's kernel share (sourced by tests/linux, tests/xendisk
# and tests/xennet after they set SUITE, the prefix of their check names): the build's
# paths, the boots asked for on the command line, one PASS/FAIL line per check.
BUILD=${BUILD:-build}
NESTOR=${NESTOR:-$(realpath -m "$BUILD/nestor")}
TIMEOUT=${LINUX_TIMEOUT:-600}
KDIR=$BUILD/linux

# selected NAME: the boot was asked for (no names: every boot)
selected() {
  [ ${#WANT[@]} -eq 0 ] && return 0
  local w
  for w in "${WANT[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

# check NAME STATUS WHY: PASS when STATUS is 0, else FAIL with WHY
check() {
  if [ "$2" -eq 0 ]; then echo "PASS $SUITE:$1"; else echo "FAIL $SUITE:$1: $3"; fi
}

#!/usr/bin/env bash
# Runs the guest test kernels ($BUILD/guest/NAME.elf) and prints one line per test:
#   PASS guest:NAME
#   FAIL guest:NAME: <why> | <last lines of the serial output>
#
#   tests/guest/run.sh [NAME...]      all tests (bench only when named), or the named ones
#   GUEST_RUNNER=qemu tests/guest/run.sh    run them on QEMU TCG instead, for reference
#   GUEST_TIMEOUT=N                   seconds per test (default 60; a test may ask more)
#   GUEST_VERBOSE=1                   also print each test's serial output
#
# Per-test options come from a comment line in the test's source:
#   /* guest: smp=4 timeout=120 expect=triple-fault mem=256 icount=yes */
# Several "guest:" lines (each with its own name=) run the same kernel several times:
#   /* guest: cpu=max name=cpufeat */
#   /* guest: cpu=max,-bmi1,-smep name=cpufeat-off */
# name=RUN names the run (logs RUN.log; `run.sh RUN` runs only it, `run.sh NAME` all runs
# of NAME.c). cpu=SPEC is passed as -cpu SPEC (QEMU: instead of "max"), and as the
# kernel command line "cpu=SPEC" so that the test knows what it must find.
# device=SPEC (may repeat) is passed as -device SPEC to nestor and QEMU; a run that names
# an isa-debug-exit replaces QEMU's default one (iobase=0xf4,iosize=4) and nestor's.
# append=WORD (may repeat) adds WORD to the kernel command line.
# icount=yes runs nestor with -icount and adds "icount=1" to the command line (QEMU: ignored).
# xen=yes runs nestor with -xen, xen=SPEC with -xen SPEC (e.g. xen=domid=7,version=4.13);
#   the command line gets "xen=yes" or "xen=SPEC" (QEMU: ignored; the kernel finds no Xen).
# epc=SIZE gives the machine an SGX EPC section of SIZE bytes (e.g. 8M): nestor gets
#   -object memory-backend-epc,id=epc0,size=SIZE -M sgx-epc.0.memdev=epc0 (with -cpu max the
#   model then has SGX); QEMU gets the same when its build has memory-backend-epc (TCG has
#   no SGX either way: the kernel finds none in CPUID and skips).
# output=WORD (nestor only): the serial/console output must contain WORD (a backend's
#   output that shares nestor's console, e.g. Xen's PV console).
# expect=pass (default): the VM must end with debug-exit status 0 (process status 1) and
#   print no line starting with FAIL.
# expect=unsupported (nestor only): the last line printed must be "UNSUPPORTED-NEXT", nestor
# must exit with status 4 and say on stderr which feature it does not support.
# expect=triple-fault: the last line printed must be "TRIPLE-FAULT-NEXT" and the VM must
#   then stop without a debug-exit: QEMU (-no-reboot) exits 0; nestor must exit non-zero
#   (the guest cannot reach a debug-exit after the marker except through a FAIL line).
# expect=exit-N (nestor only): the last line printed must be "SHUTDOWN-NEXT" and nestor
#   must then exit with status N on the guest's own request (a Xen SCHEDOP_shutdown, a
#   watchdog), with no FAIL line.
# Logs go to $BUILD/guest/logs/NAME.log (serial output) and NAME.err (the VMM's stderr).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
RUNNER=${GUEST_RUNNER:-nestor}
NESTOR=${NESTOR:-$PWD/$BUILD/nestor}
DEFAULT_TIMEOUT=${GUEST_TIMEOUT:-60}
LOGDIR=$BUILD/guest/logs
mkdir -p "$LOGDIR"

# the options of each "guest:" comment line of a source, one run per line (none: one run)
runs_of() { # file
  local lines
  lines=$(sed -n 's/.*guest:\(.*\)\*\/.*/\1/p' "$1")
  if [ -z "$lines" ]; then echo " "; else echo "$lines"; fi
}

# value of key in one run's options, or a default
opt() { # options key default
  local v
  v=$(echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1)
  echo "${v:-$3}"
}

# every value of key in one run's options, one per line
opts() { # options key
  echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

tail_of() { # log: last lines, on one line
  tail -n 4 "$1" | tr -d '\r' | tr '\n' '|' | sed 's/|$//; s/|/ | /g' | cut -c1-400
}

run_one() { # name kernel options
  local name=$1 elf=$BUILD/guest/$2.elf log=$LOGDIR/$1.log err=$LOGDIR/$1.err
  local smp mem timeout expect cpu icount xen output epc status why=""
  smp=$(opt "$3" smp 1)
  mem=$(opt "$3" mem 128)
  timeout=$(opt "$3" timeout "$DEFAULT_TIMEOUT")
  expect=$(opt "$3" expect pass)
  cpu=$(opt "$3" cpu "")
  icount=$(opt "$3" icount no)
  xen=$(opt "$3" xen "")
  output=$(opt "$3" output "")
  epc=$(opt "$3" epc "")
  local cpu_args=() dev_args=() cmdline=() nestor_args=() own_exit=0 d a
  while IFS= read -r d; do
    [ -n "$d" ] || continue
    dev_args+=(-device "$d")
    [[ $d == isa-debug-exit* ]] && own_exit=1
  done < <(opts "$3" device)
  [ -n "$cpu" ] && cmdline+=("cpu=$cpu")
  # icount=yes: nestor runs with -icount and tells the kernel (QEMU runs as usual)
  if [ "$icount" = yes ] && [ "$RUNNER" = nestor ]; then
    nestor_args+=(-icount)
    cmdline+=(icount=1)
  fi
  if [ -n "$xen" ] && [ "$RUNNER" = nestor ]; then
    nestor_args+=(-xen)
    [ "$xen" != yes ] && nestor_args+=("$xen")
    cmdline+=("xen=$xen")
  fi
  while IFS= read -r a; do [ -n "$a" ] && cmdline+=("$a"); done < <(opts "$3" append)
  if [ -n "$epc" ]; then
    if [ "$RUNNER" = nestor ]; then
      nestor_args+=(-object "memory-backend-epc,id=epc0,size=$epc" -M sgx-epc.0.memdev=epc0)
    elif qemu-system-x86_64 -object help 2>/dev/null | grep -q memory-backend-epc; then
      dev_args+=(-object "memory-backend-epc,id=epc0,size=$epc"
        -M sgx-epc.0.memdev=epc0,sgx-epc.0.node=0)
    fi
  fi
  [ -n "$cpu" ] && cpu_args=(-cpu "$cpu")
  [ ${#cmdline[@]} -gt 0 ] && cpu_args+=(-append "${cmdline[*]}")
  if [ ! -f "$elf" ]; then
    echo "FAIL guest:$name: $elf not built (make guests)"
    return
  fi
  case $RUNNER in
    qemu)
      if [ -z "$cpu" ]; then
        cpu_args=(-cpu max "${cpu_args[@]}")
      else
        # nestor-only -cpu properties (fep) are not QEMU's: the kernel still sees them in
        # its command line and skips what QEMU lacks
        cpu_args[1]=$(echo "$cpu" | sed 's/,fep\(=on\)*//g')
      fi
      [ "$own_exit" = 0 ] && dev_args+=(-device isa-debug-exit,iobase=0xf4,iosize=0x04)
      timeout "$timeout" qemu-system-x86_64 -accel tcg -M q35 "${cpu_args[@]}" -m "$mem" \
        -smp "$smp" -nographic -no-reboot -monitor none -serial stdio -nic none \
        "${dev_args[@]}" -kernel "$elf" </dev/null >"$log" 2>"$err"
      status=$? ;;
    nestor)
      if [ ! -x "$NESTOR" ]; then
        echo "FAIL guest:$name: $NESTOR not built"
        return
      fi
      local args=(-m "${mem}M")
      [ "$smp" != 1 ] && args+=(-smp "$smp")
      timeout -k 10 "$timeout" "$NESTOR" run "${args[@]}" "${nestor_args[@]}" "${cpu_args[@]}" "${dev_args[@]}" "$elf" \
        </dev/null >"$log" 2>"$err"
      status=$? ;;
    *)
      echo "FAIL guest:$name: unknown GUEST_RUNNER=$RUNNER"
      return ;;
  esac
  [ "${GUEST_VERBOSE:-0}" = 1 ] && sed "s/^/  [$name] /" "$log" "$err"
  local fails
  fails=$(tr -d '\r' <"$log" | grep -c '^FAIL')
  if [ "$status" -eq 124 ]; then
    why="timed out after ${timeout}s"
  elif [ -n "$output" ] && [ "$RUNNER" = nestor ] && ! grep -qF -- "$output" "$log"; then
    why="the output lacks \"$output\""
  elif [ "$expect" = triple-fault ]; then
    local last
    last=$(tr -d '\r' <"$log" | grep -v '^$' | tail -n 1)
    if [[ $last != *TRIPLE-FAULT-NEXT ]]; then
      why="did not stop right after TRIPLE-FAULT-NEXT (status $status)"
    elif [ "$RUNNER" = qemu ] && [ "$status" -ne 0 ]; then
      why="QEMU exit status $status, want 0 (shutdown)"
    elif [ "$RUNNER" = nestor ] && [ "$status" -ne 4 ]; then
      why="nestor exit status $status, want 4 (guest error: triple fault)"
    fi
  elif [[ $expect == exit-* ]]; then
    local last
    last=$(tr -d '\r' <"$log" | grep -v '^$' | tail -n 1)
    if [ "$RUNNER" = qemu ]; then
      why="expect=$expect is a nestor-only test"
    elif [ "$fails" -ne 0 ]; then
      why="$fails FAIL line(s): $(tr -d '\r' <"$log" | grep '^FAIL' | head -n 3 | tr '\n' ';')"
    elif [[ $last != *SHUTDOWN-NEXT ]]; then
      why="did not stop right after SHUTDOWN-NEXT (status $status)"
    elif [ "$status" -ne "${expect#exit-}" ]; then
      why="nestor exit status $status, want ${expect#exit-}"
    fi
  elif [ "$expect" = unsupported ]; then
    # nestor stops the guest with status 4 and names the feature on stderr
    local last
    last=$(tr -d '\r' <"$log" | grep -v '^$' | tail -n 1)
    if [ "$RUNNER" = qemu ]; then
      why="expect=unsupported is a nestor-only test"
    elif [[ $last != *UNSUPPORTED-NEXT ]]; then
      why="did not stop right after UNSUPPORTED-NEXT (status $status)"
    elif [ "$status" -ne 4 ]; then
      why="nestor exit status $status, want 4 (unsupported feature)"
    elif ! grep -q "does not support" "$err"; then
      why="no 'does not support' message on stderr"
    fi
  elif [ "$status" -ne 1 ]; then
    if [ $((status & 1)) -eq 1 ] && [ "$status" -lt 256 ]; then
      why="debug-exit code $((status >> 1)) (status $status)"
    else
      why="exit status $status, not a debug-exit"
    fi
  elif [ "$fails" -ne 0 ]; then
    why="$fails FAIL line(s): $(tr -d '\r' <"$log" | grep '^FAIL' | head -n 3 | tr '\n' ';')"
  fi
  if [ -z "$why" ]; then
    echo "PASS guest:$name"
  else
    local errline
    errline=$(grep -v '^$' "$err" | head -n 1 | cut -c1-200)
    echo "FAIL guest:$name: $why | $(tail_of "$log")${errline:+ | stderr: $errline}"
  fi
}

want=" $* "
for src in tests/guest/t32/*.c tests/guest/t64/*.c; do
  [ -f "$src" ] || continue
  kernel=$(basename "$src" .c)
  while IFS= read -r options; do
    name=$(opt "$options" name "$kernel")
    if [ $# -gt 0 ]; then
      [[ $want == *" $kernel "* || $want == *" $name "* ]] || continue
    else
      [ "$(opt "$options" default yes)" = no ] && continue
    fi
    run_one "$name" "$kernel" "$options"
  done < <(runs_of "$src")
done

#!/usr/bin/env bash
# Command-line tests: options, exit statuses, tracing, and the console on a pipe and on a
# terminal. Prints one line per test: "PASS cli:NAME" or "FAIL cli:NAME: why".
#   tests/cli/run.sh        (needs $BUILD/nestor and $BUILD/guest/{echo,demo}.elf: make guests)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
NESTOR=${NESTOR:-$PWD/$BUILD/nestor}
ECHO_ELF=$BUILD/guest/echo.elf
DEMO_ELF=$BUILD/guest/demo.elf
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

pass() { echo "PASS cli:$1"; }
fail() { echo "FAIL cli:$1: $2"; }

# run NAME [nestor args...]: runs nestor with stdin from $TMP/in (empty unless written),
# leaves stdout/stderr in $TMP/out, $TMP/err and the status in $status
run() {
  local name=$1
  shift
  [ -f "$TMP/in" ] || : >"$TMP/in"
  timeout -k 5 30 "$NESTOR" "$@" <"$TMP/in" >"$TMP/out" 2>"$TMP/err"
  status=$?
  rm -f "$TMP/in"
}
first_err() { head -n 1 "$TMP/err" | cut -c1-160; }

# expect NAME STATUS REGEX FILE: the status and a line matching REGEX in FILE (out or err)
expect() {
  local name=$1 want=$2 re=$3 file=$4
  if [ "$status" -ne "$want" ]; then
    fail "$name" "exit status $status, want $want ($(first_err))"
  elif ! grep -Eq -- "$re" "$TMP/$file"; then
    fail "$name" "no line matching '$re' on std$file ($(head -n 2 "$TMP/$file" | tr '\n' '|' | cut -c1-160))"
  else
    pass "$name"
  fi
}

for f in "$NESTOR" "$ECHO_ELF" "$DEMO_ELF"; do
  if [ ! -e "$f" ]; then
    fail setup "$f not built (make && make guests)"
    exit 0
  fi
done

# ---- informational options
run help --help;                       expect help 0 '^usage: nestor run' out
grep -q -- '-cpu MODEL' "$TMP/out" || fail help-options "--help does not describe -cpu"
grep -q -- '-device NAME' "$TMP/out" || fail help-device "--help does not describe -device"
grep -q -- '-xen \[version' "$TMP/out" || fail help-xen "--help does not describe -xen"
run version --version;                 expect version 0 '^nestor [0-9]+\.[0-9]+' out

# ---- usage errors: status 2 and a message naming the problem
run unknown-option run -bogus "$ECHO_ELF";            expect unknown-option 2 'unknown option -bogus' err
run unknown-command frobnicate;                       expect unknown-command 2 "unknown command 'frobnicate'" err
run missing-kernel run;                               expect missing-kernel 2 'no kernel' err
run nonexistent-kernel run "$TMP/nope.elf";           expect nonexistent-kernel 2 'nope\.elf' err
: >"$TMP/empty.elf"
run bad-kernel-format run "$TMP/empty.elf";           expect bad-kernel-format 2 'empty\.elf' err
run option-needs-value run "$ECHO_ELF" -m;            expect option-needs-value 2 '-m needs a value' err
run bad-memory run -m 12Q "$ECHO_ELF";                expect bad-memory 2 '-m 12Q' err
run zero-memory run -m 0 "$ECHO_ELF";                 expect zero-memory 2 'RAM|memory|-m' err
# machine control options (tests/qmp, tests/gdb and tests/state run them for real)
run stopped-alone run -S "$ECHO_ELF";                 expect stopped-alone 2 '-S needs -gdb' err
run incoming-scheme run -incoming ftp:x "$ECHO_ELF";  expect incoming-scheme 2 '-incoming ftp:x: expected file:PATH' err
run incoming-missing run -incoming file:"$TMP/none" "$ECHO_ELF"; expect incoming-missing 2 'none: No such file' err
run defer-without-qmp run -incoming defer "$ECHO_ELF"; expect defer-without-qmp 2 'defer needs -qmp' err
run qmp-client-mode run -qmp unix:"$TMP/q.sock" "$ECHO_ELF"; expect qmp-client-mode 2 'server=on' err
run qmp-bad-address run -qmp udp:1,server=on,wait=off "$ECHO_ELF"; expect qmp-bad-address 2 'expected tcp:HOST:PORT or unix:PATH' err
run gdb-bad-address run -gdb 1234 "$ECHO_ELF";        expect gdb-bad-address 2 'expected tcp::PORT' err
run save-at-bad run -save-at nope "$ECHO_ELF";        expect save-at-bad 2 'expected N:PATH' err
run rtc-bad run -rtc base=yesterday "$ECHO_ELF";      expect rtc-bad 2 '-rtc base=yesterday' err
run bad-smp run -smp abc "$ECHO_ELF";                 expect bad-smp 2 '-smp abc' err
run zero-smp run -smp 0 "$ECHO_ELF";                  expect zero-smp 2 '-smp 0' err
run huge-smp run -smp 100000 "$ECHO_ELF";             expect huge-smp 2 '-smp 100000' err
run bad-cpu-model run -cpu pentium9 "$ECHO_ELF";      expect bad-cpu-model 2 "unknown CPU model 'pentium9'" err
run bad-cpu-feature run -cpu max,+notafeature "$ECHO_ELF"; expect bad-cpu-feature 2 "unknown CPU feature 'notafeature'" err
run bad-cpu-minus run -cpu max,-notafeature "$ECHO_ELF";   expect bad-cpu-minus 2 "notafeature" err
run bad-cpu-vendor run -cpu max,vendor=Foo "$ECHO_ELF";    expect bad-cpu-vendor 2 "vendor 'Foo'" err
run unimplemented-feature run -cpu max,+xsaves "$ECHO_ELF"; expect unimplemented-feature 2 "'xsaves'.*not implemented" err
run bad-phys-bits run -cpu max,phys-bits=31 "$ECHO_ELF";  expect bad-phys-bits 2 "phys-bits=31.*32 to 52" err
run bad-phys-bits-hi run -cpu max,phys-bits=53 "$ECHO_ELF"; expect bad-phys-bits-hi 2 "phys-bits=53.*32 to 52" err
run ram-beyond-phys-bits run -m 4G -cpu max,phys-bits=32 "$ECHO_ELF"; expect ram-beyond-phys-bits 2 "beyond the 32-bit physical address space" err
run bad-xen-version run -xen version=4 "$ECHO_ELF";  expect bad-xen-version 2 "-xen version=4: the version is MAJOR.MINOR" err
run bad-xen-domid run -xen domid=0 "$ECHO_ELF";      expect bad-xen-domid 2 "-xen domid=0: the domain id is a number from 1 to 32751" err
run bad-xen-property run -xen foo=1 "$ECHO_ELF";     expect bad-xen-property 2 "-xen foo=1: unknown property" err
run bad-trace-item run -d bogus "$ECHO_ELF";          expect bad-trace-item 2 "-d bogus" err
run bad-max-insns run -max-insns lots "$ECHO_ELF";    expect bad-max-insns 2 "-max-insns lots" err
run unknown-device run -device frob "$ECHO_ELF";      expect unknown-device 2 "-device frob: unknown device" err
run unknown-device-prop run -device pc-testdev,size=4 "$ECHO_ELF"; expect unknown-device-prop 2 "unknown property 'size'" err
run device-prop-syntax run -device pci-testdev,addr "$ECHO_ELF";  expect device-prop-syntax 2 "'addr' is not a property=value" err
run device-bad-number run -device isa-debug-exit,iobase=0x1ffff "$ECHO_ELF"; expect device-bad-number 2 "iobase=0x1ffff is not a number" err
run device-port-taken run -device isa-debug-exit,iobase=0x3f8 "$ECHO_ELF"; expect device-port-taken 2 "port 0x3f8 belongs to uart" err
run device-slot-bad run -device pci-testdev,addr=0 "$ECHO_ELF"; expect device-slot-bad 2 "addr=0" err
run device-twice run -device pc-testdev -device pc-testdev "$ECHO_ELF"; expect device-twice 2 "only one" err

# ---- running guests: exit statuses
printf 'Q' >"$TMP/in"
run debug-exit run "$ECHO_ELF";                       expect debug-exit $(((0x42 << 1) | 1)) '^BYE' out
run max-insns run -max-insns 100000 "$ECHO_ELF";      expect max-insns 4 'stopping after [0-9]+ instructions' err
# the count is exact: the guest does not run past N (it waits for input forever)
run max-insns-exact run -max-insns 5000 "$ECHO_ELF";  expect max-insns-exact 4 'stopping after 5000 instructions' err
run demo-runs run "$DEMO_ELF";                        expect demo-runs 1 '\(correct\)' out
printf 'Q' >"$TMP/in"
run kernel-option run -kernel "$ECHO_ELF" -m 64M -smp 2 -cpu qemu64; expect kernel-option 133 '^BYE' out

# ---- tracing
run trace-insn run -d insn -max-insns 200 "$ECHO_ELF"
expect trace-insn 4 '^cpu0 [0-9a-f]{4}:[0-9a-f]{16} +(cli|cld|mov|lgdt|xor|lea|jmp|call)\b' err
printf 'Q' >"$TMP/in"
run trace-exit run -d exit "$ECHO_ELF"
expect trace-exit 133 '^cpu0 event io port=0x3f8 size=1 out' err
grep -q '^cpu0 event io port=0x3fd size=1 in' "$TMP/err" || fail trace-exit-in "-d exit shows no read of the UART status port 0x3fd"
printf 'Q' >"$TMP/in"
run trace-file run -d insn,exit -D "$TMP/trace.txt" "$ECHO_ELF"
if [ "$status" -ne 133 ]; then
  fail trace-file "exit status $status, want 133 ($(first_err))"
elif grep -q '^cpu0 ' "$TMP/err"; then
  fail trace-file "-D given but the trace went to stderr"
elif ! grep -q '^cpu0 .*  mov' "$TMP/trace.txt" || ! grep -q '^cpu0 event io' "$TMP/trace.txt"; then
  fail trace-file "$TMP/trace.txt lacks instructions or events"
else
  pass trace-file
fi
run trace-file-unwritable run -d insn -D "$TMP/no/such/dir/t.txt" "$ECHO_ELF"
expect trace-file-unwritable 2 'no/such/dir' err
# -d xenstore: the store's tree at exit, with values and permissions
run trace-xenstore run -xen -d xenstore -append xen=yes "$BUILD/guest/xen_hcall.elf"
expect trace-xenstore 1 '^/local/domain/1/control/shutdown = ""   \(n1\)$' err
# -d state with -state-digest: a digest per component, the TLBs marked as caches
run trace-state run -icount -state-digest -d state "$DEMO_ELF"
expect trace-state 1 '^state digest cpu\.tlb\.0 [0-9a-f]{64} \(a cache' err
run trace-unknown run -d bogus "$ECHO_ELF"
expect trace-unknown 2 'unknown trace item \(insn, exit, state, xenstore\)' err

# ---- an unimplemented instruction: #UD in the guest each time, reported once
run unimplemented-once run "$BUILD/guest/unimpl.elf"
if [ "$status" -ne 1 ]; then
  fail unimplemented-once "exit status $status, want 1 (the guest saw #UD three times)"
elif [ "$(grep -c 'does not implement' "$TMP/err")" -ne 1 ]; then
  fail unimplemented-once "want exactly one 'does not implement' report on stderr, got: $(tr '\n' '|' <"$TMP/err" | cut -c1-160)"
else
  pass unimplemented-once
fi

# ---- the console on a pipe: bytes reach the guest unchanged, Ctrl-A is not an escape
printf 'hello\003\001xQ' >"$TMP/in"
run stdin-pipe run "$ECHO_ELF"
expect stdin-pipe 133 '^hello\^03\^01x$' out
# input ends without 'Q': nestor keeps running the guest (it is not stopped by EOF)
run stdin-eof run -max-insns 20000000 "$ECHO_ELF"
expect stdin-eof 4 '^READY' out

# ---- the console on a terminal
if python3 -c 'import pty, termios' 2>/dev/null; then
  python3 tests/cli/console_pty.py "$NESTOR" "$ECHO_ELF"
  python3 tests/cli/shutdown.py "$NESTOR" "$BUILD/guest/spin.elf" "$ECHO_ELF"
else
  fail console-tty "python3 with the pty module is needed"
fi

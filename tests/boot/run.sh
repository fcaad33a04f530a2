#!/usr/bin/env bash
# Kernel loaders through the command line: malformed, truncated and garbage images must
# end nestor with status 2 and one clear message on stderr; tiny kernels of every format
# (tests/boot/mkimages.py) must be entered as their protocol says and report success
# through the debug-exit port (status 33 = checks passed, 35 = failed, 37 = wrong entry).
set -u
cd "$(dirname "$0")/../.."
NESTOR=${NESTOR:-$PWD/build/nestor}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$NESTOR" ]; then
  echo "FAIL boot:setup: $NESTOR is not built"
  exit 0
fi
if ! python3 tests/boot/mkimages.py "$tmp" 2>"$tmp/py.err"; then
  echo "FAIL boot:setup: mkimages.py failed: $(head -c 300 "$tmp/py.err")"
  exit 0
fi

# name, expected status, stderr pattern ('' for none), nestor arguments...
check() {
  local name=$1 want=$2 pattern=$3
  shift 3
  timeout -k 5 30 "$NESTOR" run -max-insns 1000000 "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL boot:$name: exit status $rc, expected $want; stderr: $(head -c 300 "$tmp/err" | tr '\n' ' ')"
  elif [ -n "$pattern" ] && ! grep -q -- "$pattern" "$tmp/err"; then
    echo "FAIL boot:$name: stderr lacks '$pattern': $(head -c 300 "$tmp/err" | tr '\n' ' ')"
  elif [ "$want" -eq 2 ] && [ "$(grep -c . "$tmp/err")" -ne 1 ]; then
    echo "FAIL boot:$name: expected one message on stderr, got: $(head -c 300 "$tmp/err" | tr '\n' ' ')"
  else
    echo "PASS boot:$name"
  fi
}

t=$tmp
: >"$t/empty"
printf 'this is not a kernel\n' >"$t/garbage"
head -c 30 "$t/plain64.elf" >"$t/elf_cut_header"
head -c $(( $(stat -c %s "$t/pvh.elf") - 8 )) "$t/pvh.elf" >"$t/pvh_cut"
head -c 150 "$t/plain64.elf" >"$t/elf_cut_segment"
head -c $((0x240)) "$t/bzImage" >"$t/bz_cut_header"
head -c 2560 "$t/bzImage" >"$t/bz_setup_only"
head -c $((3 * 1024 * 1024)) /dev/zero >"$t/three_mib"

# refused images: status 2 and a message naming the problem
check missing-file       2 "cannot open kernel"          "$t/does-not-exist"
check empty-file         2 "unrecognised kernel image"   "$t/empty"
check garbage            2 "unrecognised kernel image"   "$t/garbage"
check zeros              2 "unrecognised kernel image"   "$t/three_mib"
check larger-than-ram    2 "larger than guest RAM"       -m 2M "$t/three_mib"
check elf-cut-header     2 "malformed ELF image"         "$t/elf_cut_header"
check elf-cut-segment    2 "truncated ELF image"         "$t/elf_cut_segment"
check pvh-cut            2 "truncated ELF image"         "$t/pvh_cut"
check elf-filesz         2 "p_filesz"                    "$t/filesz.elf"
check elf-outside-ram    2 "not in guest RAM"            "$t/outside.elf"
check pvh-outside-ram    2 "not in guest RAM"            -m 16M "$t/pvh.elf"
check bz-cut-header      2 "truncated Linux bzImage"     "$t/bz_cut_header"
check bz-setup-only      2 "truncated Linux bzImage"     "$t/bz_setup_only"
check bz-old-protocol    2 "not supported"               "$t/bzImage_old"
check bz-long-cmdline    2 "command line"                -append "$(head -c 3000 /dev/zero | tr '\0' x)" "$t/bzImage"
check mb-bad-checksum    2 "bad checksum"                "$t/mb_badsum.bin"
check mb-truncated       2 "truncated multiboot image"   "$t/mb_truncated.bin"
check mb-missing-module  2 "cannot open multiboot module" -initrd "$t/does-not-exist" "$t/mb_aout.bin"
check elf-with-append    2 "cannot receive"              -append "x" "$t/plain64.elf"
check mb-over-bios-area  2 "in the BIOS area (ACPI tables)" "$t/mb_bios.bin"
check mb-over-ebda       2 "in the extended BIOS data area" "$t/mb_ebda.bin"
check mb-over-vga        2 "in the VGA window"           "$t/mb_vga.elf"
check pvh-beyond-ram     2 "beyond the end of guest RAM" -m 16M "$t/pvh.elf"
check mb-module-no-room  2 "no room in guest RAM for multiboot module" -m 16M -initrd "$t/three_mib,$t/three_mib,$t/three_mib,$t/three_mib,$t/three_mib,$t/three_mib" "$t/mb_low_8000.bin"
check initrd-missing     2 "cannot open initrd"          -initrd "$t/does-not-exist" "$t/bzImage"

# kernels of every format, entered per their protocol
check run-multiboot-aout  33 "" -append "a b" -initrd "$t/garbage arg,$t/empty" "$t/mb_aout.bin"
check run-multiboot-elf32 33 "" "$t/mb_elf32.elf"
check run-pvh             33 "" -initrd "$t/garbage" -append "console=ttyS0" "$t/pvh.elf"
check run-bzimage-64      33 "" -initrd "$t/garbage" -append "console=ttyS0" "$t/bzImage"
check run-plain-elf64     33 "" "$t/plain64.elf"
check run-plain-elf32     33 "" "$t/plain32.elf"
# kernels in low memory: the loader's structures move out of their way
check run-multiboot-low-8000 33 "" -initrd "$t/garbage" "$t/mb_low_8000.bin"
check run-multiboot-low-1000 33 "" "$t/mb_low_1000.elf"
check run-plain-elf64-low    33 "" "$t/plain64_low.elf"

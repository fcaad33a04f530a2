#!/usr/bin/env bash
# Checks nestor's ACPI tables with ACPICA's iasl: each table must disassemble without
# errors or warnings, compile back without errors or warnings, and (data tables) compile
# to the same contents. Prints nothing when iasl is not installed (package acpica-tools).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
command -v iasl >/dev/null 2>&1 || exit 0
dump=$BUILD/tests/dev/acpi_dump
if [ ! -x "$dump" ]; then
  echo "FAIL dev:acpi-dump: $dump is not built"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$dump" "$tmp" 2>"$tmp/dump.err"; then
  echo "FAIL dev:acpi-dump: $(head -c 300 "$tmp/dump.err" | tr '\n' ' ')"
  exit 0
fi
echo "PASS dev:acpi-dump"

# iasl exits 0 even when it reports firmware errors, so its messages are checked too.
problems() { grep -iE 'error|warning' | grep -vE '(^| )0 Errors, 0 Warnings' | head -3 | tr '\n' ' '; }

# same_after_header OURS IASL SIG: the bodies are equal, but for end-tag checksums (DSDT).
same_after_header() {
  why=$(cmp -l <(tail -c +37 "$1") <(tail -c +37 "$2") 2>&1 | head -c 2000)
  [ -z "$why" ] && return 0
  [ "$3" = DSDT ] || return 1
  grep -q EOF <<<"$why" && return 1
  local -a ours
  mapfile -t ours < <(tail -c +37 "$1" | od -An -v -tu1 -w1)
  local off a b
  while read -r off a b; do
    # cmp -l: 1-based offset, octal bytes; the byte before a checksum is the 0x79 tag
    if [ "$b" != 0 ] || [ "${ours[off - 2]// /}" != 121 ]; then
      why="byte $off: $a vs $b (octal)"
      return 1
    fi
  done <<<"$why"
  return 0
}

for t in APIC DSDT FACP FACS HPET MCFG RSDT XSDT; do
  name=dev:iasl-$t
  if [ ! -f "$tmp/$t.dat" ]; then
    echo "FAIL $name: table not written"
    continue
  fi
  out=$(cd "$tmp" && iasl -d "$t.dat" 2>&1)
  rc=$?
  bad=$(problems <<<"$out")
  if [ $rc -ne 0 ] || [ -n "$bad" ] || [ ! -f "$tmp/$t.dsl" ]; then
    echo "FAIL $name: disassembly (rc $rc): $bad"
    continue
  fi
  # -oa: no optimizations, so the DSDT's AML can be compared too
  out=$(cd "$tmp" && iasl -oa -p "re_$t" "$t.dsl" 2>&1)
  rc=$?
  bad=$(problems <<<"$out")
  if [ $rc -ne 0 ] || [ -n "$bad" ] || [ ! -f "$tmp/re_$t.aml" ]; then
    echo "FAIL $name: recompilation (rc $rc): $bad"
    continue
  fi
  # Tables compile back to the same bytes after the header (iasl writes its own creator
  # ID and checksum). In the DSDT, iasl also writes 0 as every resource template's
  # end-tag checksum (0 means "valid" to OSes), where nestor writes the real checksum.
  if ! same_after_header "$tmp/$t.dat" "$tmp/re_$t.aml" "$t"; then
    echo "FAIL $name: recompiled table differs from nestor's: $why"
    continue
  fi
  echo "PASS $name"
done

# ACPICA's interpreter runs the DSDT's PCI interrupt links (tests/dev/pci_links.asl):
# what iasl cannot check, that _SRS, _CRS, _DIS and _STA agree through the router
# register.
if command -v acpiexec >/dev/null 2>&1; then
  name=dev:acpiexec-pci-links
  cp tests/dev/pci_links.asl "$tmp/"
  out=$(cd "$tmp" && iasl pci_links.asl 2>&1)
  if [ ! -f "$tmp/pci_links.aml" ]; then
    echo "FAIL $name: pci_links.asl does not compile: $(problems <<<"$out")"
  else
    out=$(cd "$tmp" && acpiexec -b 'evaluate \TRTE' DSDT.dat pci_links.aml 2>&1)
    got=$(sed -n 's/^ *\[Integer\] = \([0-9A-F]*\)$/\1/p' <<<"$out")
    if [ "$got" = 0000000000000000 ] && ! grep -qiE 'error|exception' <<<"$out"; then
      echo "PASS $name"
    else
      echo "FAIL $name: \\TRTE = ${got:-none} (bits: failed checks) | $(grep -iE 'error|exception' <<<"$out" | head -2 | tr '\n' ' ')"
    fi
  fi
fi

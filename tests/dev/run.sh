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

for t in APIC DSDT FACP FACS RSDT XSDT; do
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
  out=$(cd "$tmp" && iasl -p "re_$t" "$t.dsl" 2>&1)
  rc=$?
  bad=$(problems <<<"$out")
  if [ $rc -ne 0 ] || [ -n "$bad" ] || [ ! -f "$tmp/re_$t.aml" ]; then
    echo "FAIL $name: recompilation (rc $rc): $bad"
    continue
  fi
  # Data tables compile back to the same bytes after the header (iasl writes its own
  # creator ID and checksum); the DSDT's AML may be re-encoded by the optimizer.
  if [ "$t" != DSDT ] && ! cmp -s <(tail -c +37 "$tmp/$t.dat") <(tail -c +37 "$tmp/re_$t.aml"); then
    echo "FAIL $name: recompiled table differs from nestor's"
    continue
  fi
  echo "PASS $name"
done

#!/usr/bin/env bash
# nestor benchmarks: guest instructions retired per second on a CPU-bound guest.
# Prints one line per benchmark; docs/PERFORMANCE.md records the figures.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NESTOR="$BUILD/nestor"
RUNS=${BENCH_RUNS:-3}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

mips=()
for r in $(seq "$RUNS"); do
  out=$("$NESTOR" run -stats "$BUILD/guest/bench.elf" 2>&1 >/dev/null)
  st=$?
  if [ "$st" -ne 1 ]; then
    echo "bench: guest failed (exit status $st)"; echo "$out" | tail -5; exit 1
  fi
  m=$(echo "$out" | sed -n 's/.*: \([0-9.]*\) MIPS$/\1/p')
  mips+=("$m")
done
med=$(printf '%s\n' "${mips[@]}" | median)
echo "cpu-bound guest (bench.elf): median of $RUNS runs: $med MIPS (runs: ${mips[*]})"

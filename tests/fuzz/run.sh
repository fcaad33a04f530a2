#!/usr/bin/env bash
# Bounded, seeded runs of every libFuzzer target (built by `make`, see fuzz.mk): one
# "PASS fuzz:NAME" or "FAIL fuzz:NAME: why" line each. `make fuzz` runs them longer.
set -u
cd "$(dirname "$0")/../.."
FUZZ_BUILD=build-fuzz
RUNS=${FUZZ_RUNS:-20000}
# Targets whose inputs run the CPU for thousands of instructions take fewer runs, so that
# each bounded run stays a few seconds: the divisor per target.
declare -A SLOW=([vmentry]=4 [vmrun]=20 [state]=8 [blkif]=10 [netif]=10 [hyperv]=3 [sgx]=5)
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  short=${name#fuzz_}
  bin=$FUZZ_BUILD/fuzz/$name
  if [ ! -x "$bin" ]; then
    echo "FAIL fuzz:$short: $bin not built"
    continue
  fi
  log=$FUZZ_BUILD/fuzz/$name.log
  runs=$((RUNS / ${SLOW[$short]:-1}))
  # a target may come with a script that writes seed inputs (scenarios a short run would
  # not find on its own): they are run first
  seeds=()
  if [ -f "tests/fuzz/${name}_seeds.py" ]; then
    rm -rf "$FUZZ_BUILD/fuzz/$name.seeds"
    if ! python3 "tests/fuzz/${name}_seeds.py" "$FUZZ_BUILD/fuzz/$name.seeds" >"$FUZZ_BUILD/fuzz/$name.seeds.list"; then
      echo "FAIL fuzz:$short: tests/fuzz/${name}_seeds.py failed"
      continue
    fi
    tr '\n' ',' <"$FUZZ_BUILD/fuzz/$name.seeds.list" | sed 's/,$//' >"$FUZZ_BUILD/fuzz/$name.seeds.csv"
    seeds=("-seed_inputs=@$FUZZ_BUILD/fuzz/$name.seeds.csv")
  fi
  # a crashing input goes next to the log (not into the source tree)
  if "$bin" -runs="$runs" -seed=1 -max_len=4096 -artifact_prefix="$FUZZ_BUILD/fuzz/$name-" "${seeds[@]}" >"$log" 2>&1; then
    echo "PASS fuzz:$short ($runs runs, seed 1)"
  else
    echo "FAIL fuzz:$short: $(grep -m1 -E 'ERROR|runtime error|deadly|invariant broken' "$log" | cut -c1-200) (see $log)"
  fi
done

#!/usr/bin/env bash
# The Hyper-V synthetic debugger (-device hv-syndbg) against a UDP peer on the host's
# loopback: a small Python 3 peer binds 127.0.0.1 at a free port, nestor runs
# build/guest/hv_syndbg.elf with host_ip=127.0.0.1,host_port=PORT, and the two exchange
# three rounds (the guest sends a payload, the peer checks it and answers, the guest
# checks the answer: both sides compute the payloads with the same formula, below and in
# tests/guest/t64/hv_syndbg.c). Two runs:
#   msr    SYNDBG_OPTIONS 0: SEND/RECV/PENDING buffer MSRs, CONTROL and STATUS
#   hcall  use_hcalls=on: HvPostDebugData/HvRetrieveDebugData frames, HvResetDebugSession
# One line per run:
#   PASS hyperv:syndbg-RUN
#   FAIL hyperv:syndbg-RUN: why
#   tests/hyperv/syndbg.sh [msr|hcall...]   SYNDBG_TIMEOUT=N: seconds per run (default 60)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
NESTOR=${NESTOR:-$PWD/$BUILD/nestor}
ELF=$BUILD/guest/hv_syndbg.elf
TIMEOUT=${SYNDBG_TIMEOUT:-60}
DIR=$BUILD/tests/hyperv
mkdir -p "$DIR"
RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=(msr hcall)

# The peer: binds 127.0.0.1:0, writes its port to argv[2], then for each round receives
# one datagram, checks it and answers to its sender; nothing more may come. Exit 0 only
# if every round matched.
PEER=$(cat <<'PY'
import socket, sys
mode, portfile = int(sys.argv[1]), sys.argv[2]
SEND = [[1, 333, 4000], [1, 333, 4000]]
REPLY = [[7, 1000, 4096], [7, 1000, 4000]]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % s.getsockname()[1])
import os
os.rename(portfile + ".tmp", portfile)
ok = True
s.settimeout(float(sys.argv[3]))
for r in range(3):
    try:
        data, addr = s.recvfrom(65536)
    except socket.timeout:
        print("peer: FAIL round %d: nothing received" % r)
        sys.exit(1)
    want = bytes((j * 31 + r * 7 + mode * 3 + 1) & 0xff for j in range(SEND[mode][r]))
    if data == want:
        print("peer: PASS round %d: %d bytes from %s:%d" % (r, len(data), addr[0], addr[1]))
    else:
        ok = False
        print("peer: FAIL round %d: %d bytes from %s:%d, want %d (first bytes %s)"
              % (r, len(data), addr[0], addr[1], len(want), data[:8].hex()))
    s.sendto(bytes((j * 13 + r * 5 + mode * 11 + 2) & 0xff for j in range(REPLY[mode][r])), addr)
s.settimeout(1.0)
try:
    data, addr = s.recvfrom(65536)
    ok = False
    print("peer: FAIL an unexpected datagram of %d bytes" % len(data))
except socket.timeout:
    pass
print("peer: done" if ok else "peer: FAILED")
sys.exit(0 if ok else 1)
PY
)

peer_pid=
trap '[ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null' EXIT

run_one() { # run mode-index device-extra
  local run=$1 idx=$2 extra=$3 name=syndbg-$1
  local log=$DIR/$name.log err=$DIR/$name.err peerlog=$DIR/$name.peer portfile=$DIR/$name.port
  local port status peer_status why=""
  rm -f "$portfile" "$portfile.tmp"
  python3 -u -c "$PEER" "$idx" "$portfile" "$TIMEOUT" >"$peerlog" 2>&1 &
  peer_pid=$!
  for _ in $(seq 1 100); do
    [ -s "$portfile" ] && break
    sleep 0.05
  done
  port=$(cat "$portfile" 2>/dev/null)
  if [ -z "$port" ]; then
    echo "FAIL hyperv:$name: the UDP peer did not start | $(head -c 200 "$peerlog")"
    kill "$peer_pid" 2>/dev/null
    peer_pid=
    return
  fi
  timeout -k 10 "$TIMEOUT" "$NESTOR" run -m 64M -cpu max,hv-vpindex,hv-synic,hv-relaxed,hv-syndbg \
    -device "hv-syndbg,host_ip=127.0.0.1,host_port=$port$extra" -append "mode=$run port=$port" \
    "$ELF" </dev/null >"$log" 2>"$err"
  status=$?
  # the peer ends by itself a second after its last round (or at its timeout)
  for _ in $(seq 1 100); do
    kill -0 "$peer_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$peer_pid" 2>/dev/null
  wait "$peer_pid"
  peer_status=$?
  peer_pid=
  [ "${SYNDBG_VERBOSE:-0}" = 1 ] && sed "s/^/  [$name] /" "$log" "$err" "$peerlog"
  local fails
  fails=$(tr -d '\r' <"$log" | grep -c '^FAIL')
  if [ "$status" -eq 124 ]; then
    why="timed out after ${TIMEOUT}s"
  elif [ "$fails" -ne 0 ]; then
    why="$fails FAIL line(s): $(tr -d '\r' <"$log" | grep '^FAIL' | head -n 3 | tr '\n' ';')"
  elif [ "$status" -ne 1 ]; then
    if [ $((status & 1)) -eq 1 ] && [ "$status" -lt 256 ]; then
      why="debug-exit code $((status >> 1)) (status $status)"
    else
      why="exit status $status, not a debug-exit"
    fi
  elif ! grep -q '^SUMMARY: .* 0 skipped' "$log"; then
    why="the guest did not run its checks: $(tail -n 1 "$log")"
  fi
  if [ "$peer_status" -ne 0 ]; then
    why="${why:+$why; }the peer: $(grep -v '^peer: PASS' "$peerlog" | head -n 3 | tr '\n' ';')"
  fi
  if [ -z "$why" ]; then
    echo "PASS hyperv:$name"
  else
    echo "FAIL hyperv:$name: $why | $(grep -v '^$' "$err" | head -n 1 | cut -c1-200)"
  fi
}

if [ ! -x "$NESTOR" ] || [ ! -f "$ELF" ] || ! command -v python3 >/dev/null; then
  for r in "${RUNS[@]}"; do
    echo "FAIL hyperv:syndbg-$r: needs $NESTOR, $ELF (make guests) and python3"
  done
  exit 0
fi
for r in "${RUNS[@]}"; do
  case $r in
    msr) run_one msr 0 "" ;;
    hcall) run_one hcall 1 ",use_hcalls=on" ;;
    *) echo "FAIL hyperv:syndbg-$r: unknown run (msr, hcall)" ;;
  esac
done

#!/usr/bin/env bash
# Debian's kernel as a Xen guest with a PV NIC (xen-netfront from the same package) on
# nestor's user networking (-netdev user, libslirp): the guest gets its DHCP lease,
# downloads a file from an HTTP server this script runs on the host's loopback (through
# the gateway 10.0.2.2), then serves a file that the host fetches through a hostfwd port,
# and ends when the host says bye through a second one. One line per check:
#   PASS xennet:BOOT:CHECK
#   FAIL xennet:BOOT:CHECK: why
# Boots: pvh-smp2 (PVH, 2 vCPUs: 2 queues, the vector callback) and hvm-intx (the
# bzImage, 1 vCPU, xen_no_vector_callback), run one after the other; and tap (PVH on a
# host TAP interface this script creates, 192.168.77.1 for the host and .2 for the guest:
# the same exchange without NAT; left out, with a note, where the host refuses to make a
# TAP interface).
#   tests/xennet/run.sh [BOOT...]   LINUX_TIMEOUT=N: seconds per boot (default 600)
set -u
cd "$(dirname "$0")/../.."
SUITE=xennet
WANT=("$@")
. tests/linux_boot.sh
DIR=$BUILD/tests/xennet
mkdir -p "$DIR/www"

for f in "$NESTOR" "$KDIR/vmlinux" "$KDIR/vmlinuz" "$KDIR/initramfs.cpio.gz"; do
  [ -e "$f" ] || { echo "FAIL xennet:setup: $f is missing"; exit 0; }
done

# a free TCP port on the host's loopback
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 2 MiB of fixed bytes for the guest to download
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7919 + i // 4096) % 251 for i in range(2 << 20)))' \
  >"$DIR/www/data.bin"
DATA=$(sha256sum <"$DIR/www/data.bin" | cut -d' ' -f1)
GUEST=$(seq 1 50000 | sha256sum | cut -d' ' -f1)
http_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$DIR/www" "$http_port" >"$DIR/http.log" 2>&1 &
http_pid=$!
trap 'kill $http_pid 2>/dev/null' EXIT

net_value() { # boot key
  tr -d '\r' <"$DIR/$1.log" | sed -n "s/^net: $2 //p" | sed -E 's/\[ *[0-9]+\.[0-9]+\] .*$//' | head -n 1
}

FORBIDDEN='Oops|\bBUG\b|WARNING|Call Trace|Kernel panic|detected stall|soft lockup|netfront.*(fail|error)|xennet.*(fail|error)'

run_boot() { # name kernel ncpus append [tap]
  local name=$1 kernel=$2 ncpus=$3 append=$4 tap=${5:-} log=$DIR/$1.log
  local fwd_port bye_port guest_host=127.0.0.1 netdev
  fwd_port=$(free_port)
  bye_port=$(free_port)
  netdev="user,id=n0,hostfwd=tcp:127.0.0.1:$fwd_port-:8080,hostfwd=tcp:127.0.0.1:$bye_port-:8081"
  if [ -n "$tap" ]; then
    netdev="tap,id=n0,ifname=$tap"
    guest_host=192.168.77.2 fwd_port=8080 bye_port=8081
  fi
  timeout -k 10 "$TIMEOUT" "$NESTOR" run -m 256M -smp "$ncpus" -xen -kernel "$KDIR/$kernel" \
    -initrd "$KDIR/initramfs.cpio.gz" -append "console=ttyS0 nestor.script=1 nestor.net=$http_port $append" \
    -netdev "$netdev" -device xen-net-device,netdev=n0,mac=52:54:00:12:34:56 </dev/null >"$log" 2>"$DIR/$name.err" &
  local pid=$! n=0
  # the guest serves: fetch its file through the forwarded port, then say bye
  while ! grep -q '^net: serving' "$log" 2>/dev/null && kill -0 $pid 2>/dev/null && [ $n -lt "$TIMEOUT" ]; do
    sleep 1
    n=$((n + 1))
  done
  local got
  got=$(python3 - "$guest_host" "$fwd_port" <<'PY'
import hashlib, sys, urllib.request
try:
    data = urllib.request.urlopen("http://%s:%s/guest.txt" % (sys.argv[1], sys.argv[2]), timeout=30).read()
    print(hashlib.sha256(data).hexdigest())
except Exception as e:
    print("error: %s" % e)
PY
)
  python3 - "$guest_host" "$bye_port" <<'PY'
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
    s.sendall(b"bye\n")
    s.close()
except Exception as e:
    print("bye: %s" % e, file=sys.stderr)
PY
  wait $pid
  local st=$?
  check "$name:exit-status" "$([ $st -eq 0 ]; echo $?)" "nestor exited with $st ($(tail -n 2 "$DIR/$name.err" | tr '\n' ' '))"
  check "$name:mac" "$([ "$(net_value "$name" mac)" = "52:54:00:12:34:56" ]; echo $?)" "'$(net_value "$name" mac)'"
  if [ -z "$tap" ]; then
    check "$name:dhcp-lease" "$([[ "$(net_value "$name" lease)" == 10.0.2.15/24 ]]; echo $?)" "'$(net_value "$name" lease)'"
    check "$name:default-route" "$([ "$(net_value "$name" route)" = "default via 10.0.2.2" ]; echo $?)" "'$(net_value "$name" route)'"
  fi
  check "$name:download" "$([ "$(net_value "$name" downloaded)" = "$DATA" ]; echo $?)" "'$(net_value "$name" downloaded)'"
  local queues=1
  [ "$ncpus" -gt 1 ] && queues=2
  check "$name:queues" "$([ "$(net_value "$name" queues)" = "$queues" ]; echo $?)" "'$(net_value "$name" queues)' queues"
  local via=hostfwd
  [ -n "$tap" ] && via=tap
  check "$name:$via-fetch" "$([ "$got" = "$GUEST" ]; echo $?)" "'$got'"
  check "$name:$via-message" "$([ "$(net_value "$name" "host says")" = "bye" ]; echo $?)" "'$(net_value "$name" "host says")'"
  local bad
  bad=$(sed -n '/^== dmesg/,/^== done/p' "$log" | grep -E "$FORBIDDEN" | head -n 3 | tr -d '\r' | tr '\n' '|')
  check "$name:kernel-log" "$([ -z "$bad" ] && grep -q '^== done' "$log"; echo $?)" "${bad:-the script did not finish}"
}

selected pvh-smp2 && run_boot pvh-smp2 vmlinux 2 ""
selected hvm-intx && run_boot hvm-intx vmlinuz 1 "xen_no_vector_callback"
if selected tap; then
  tap=nestortap$$
  if ip tuntap add dev "$tap" mode tap 2>"$DIR/tap.err" && ip addr add 192.168.77.1/24 dev "$tap" &&
     ip link set "$tap" up; then
    kill $http_pid 2>/dev/null
    wait $http_pid 2>/dev/null
    python3 -m http.server --bind 192.168.77.1 --directory "$DIR/www" "$http_port" >"$DIR/http.log" 2>&1 &
    http_pid=$!
    trap 'kill $http_pid 2>/dev/null; ip link del '"$tap"' 2>/dev/null' EXIT
    sleep 1
    run_boot tap vmlinux 1 "nestor.netaddr=192.168.77.2/24 nestor.nethost=192.168.77.1" "$tap"
  else
    echo "note xennet:tap: left out: the host refuses a TAP interface ($(head -n 1 "$DIR/tap.err"))"
  fi
fi

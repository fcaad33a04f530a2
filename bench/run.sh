#!/usr/bin/env bash
# nestor benchmarks (docs/PERFORMANCE.md records the figures and how they were taken):
#  1. guest instructions retired per second on a CPU-bound guest (bench.elf), median of
#     BENCH_RUNS (default 3) runs;
#  2. Debian's kernel booted to its initramfs script and powered off, process start to
#     exit, median of BENCH_LINUX_RUNS (default 5): the bzImage through the Linux boot
#     protocol (decompressor in the guest) and the vmlinux through PVH;
#  3. the same bzImage and initramfs on QEMU's software emulator (qemu-system-x86_64
#     -accel tcg -M pc, firmware included), when it is installed, and the ratio;
#  4. handshakes between two vCPUs (ipibench.elf, -smp 2): an IPI answered by an IPI with
#     the sender waiting in HLT or in a PAUSE loop, and a shared flag with both sides in
#     PAUSE loops; guest time per round trip, median of BENCH_RUNS runs, and the same
#     once with -icount (guest time = instructions: the same figures on every machine).
#  5. the Xen interface (xenbench.elf, -xen): a hypercall round trip (raw VMCALL and
#     through the hypercall page) and an event-channel send to its upcall handler, guest
#     time per operation, median of BENCH_RUNS runs.
#  5b. the Hyper-V interface (hvbench.elf, -cpu max,hv-passthrough): a fast hypercall
#     round trip through the hypercall page (HvNotifyLongSpinWait; HvFlushVirtualAddressSpace
#     for this vCPU), a reference time read from the reference TSC page, a TIME_REF_COUNT
#     RDMSR and a bare RDTSC; guest time per operation (least of 5 runs in the guest),
#     median of BENCH_RUNS runs, and once with -icount.
#  5c. SGX (sgxbench.elf, -sgx-epc 64M): an EENTER + EEXIT round trip from ring 3 (the
#     enclave's entry point is EEXIT), guest time per round trip and round trips per
#     second; EADD of 8192 pages (32 MiB) into an enclave, with and without the 16
#     EEXTENDs that measure each page, and their EREMOVE, pages per second and MB/s (least
#     of the runs in the guest), median of BENCH_RUNS runs.
#  6. nested VMX (vmxbench.elf) and nested SVM (svmbench.elf, -cpu max,vendor=AuthenticAMD):
#     an L2 -> L1 -> L2 exit round trip (CPUID exiting or the CPUID intercept, L1 skipping
#     the instruction and resuming), and the same integer loop's MIPS in L1 and in L2 on
#     an identity EPT or NPT; median of BENCH_RUNS runs each.
#  7. save, restore and live migration of a 1 GiB Debian guest while it writes memory
#     (bench/migrate_bench.py): save time and file size, restore time, migration total
#     time and downtime.
#  8. Xen PV devices (Debian's kernel as a Xen PVH guest, tests/linux/iobench.c): the PV
#     disk's sequential write and read (1 MiB O_DIRECT requests on a 256 MiB raw image)
#     and 4 KiB random reads at queue depth 1; guest-to-host TCP through -netdev user
#     (256 MiB to a sink on the host's loopback); the same on QEMU's TCG with virtio-blk
#     and virtio-net when qemu-system-x86_64 is installed. One run each.
# BENCH_LINUX=0 skips 2, 3, 7 and 8.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NESTOR="$BUILD/nestor"
RUNS=${BENCH_RUNS:-3}
LRUNS=${BENCH_LINUX_RUNS:-5}
KDIR="$BUILD/linux"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# ---- 1. MIPS ----
mips=()
for _ in $(seq "$RUNS"); do
  out=$("$NESTOR" run -stats "$BUILD/guest/bench.elf" 2>&1 >/dev/null)
  st=$?
  if [ "$st" -ne 1 ]; then
    echo "bench: bench.elf failed (exit status $st)"; echo "$out" | tail -5; exit 1
  fi
  mips+=("$(echo "$out" | sed -n 's/.*: \([0-9.]*\) MIPS$/\1/p')")
done
echo "cpu-bound guest (bench.elf): $(printf '%s\n' "${mips[@]}" | median) MIPS (median of $RUNS: ${mips[*]})"

# ---- 4. handshakes between two vCPUs ----
ipi_runs=()
for _ in $(seq "$RUNS"); do
  out=$("$NESTOR" run -smp 2 "$BUILD/guest/ipibench.elf" 2>&1)
  st=$?
  if [ "$st" -ne 1 ]; then
    echo "bench: ipibench.elf failed (exit status $st)"; echo "$out" | tail -5; exit 1
  fi
  ipi_runs+=("$out")
done
icount_out=$("$NESTOR" run -icount -smp 2 "$BUILD/guest/ipibench.elf" 2>&1)
for mode in ipi-hlt ipi-pause flag-pause; do
  # "ipibench: MODE N round trips in T us: NS ns per round trip, R per second"
  ns=$(for o in "${ipi_runs[@]}"; do echo "$o"; done |
       sed -n "s/^ipibench: $mode .*: \([0-9]*\) ns per round trip.*/\1/p" | median)
  ins=$(echo "$icount_out" | sed -n "s/^ipibench: $mode .*: \([0-9]*\) ns per round trip.*/\1/p")
  printf 'two vCPUs, %-10s round trip: %s ns (median of %s); -icount: %s ns of guest time\n' \
    "$mode" "$ns" "$RUNS" "$ins"
done

# ---- 5. the Xen interface ----
xen_runs=()
for _ in $(seq "$RUNS"); do
  out=$("$NESTOR" run -xen "$BUILD/guest/xenbench.elf" 2>&1)
  st=$?
  if [ "$st" -ne 1 ]; then
    echo "bench: xenbench.elf failed (exit status $st)"; echo "$out" | tail -5; exit 1
  fi
  xen_runs+=("$out")
done
for what in hypercall page "evtchn send-to-upcall"; do
  # "xenbench: WHAT N in T us: NS ns each"
  ns=$(for o in "${xen_runs[@]}"; do echo "$o"; done |
       sed -n "s/^xenbench: $what [0-9]* in .*: \([0-9]*\) ns each.*/\1/p" | median)
  printf 'Xen %-22s %s ns (median of %s)\n' "$what:" "$ns" "$RUNS"
done

# ---- 5b. the Hyper-V interface ----
hv_runs=()
for _ in $(seq "$RUNS"); do
  out=$("$NESTOR" run -cpu max,hv-passthrough "$BUILD/guest/hvbench.elf" 2>&1)
  st=$?
  if [ "$st" -ne 1 ]; then
    echo "bench: hvbench.elf failed (exit status $st)"; echo "$out" | tail -5; exit 1
  fi
  hv_runs+=("$out")
done
hv_icount=$("$NESTOR" run -icount -cpu max,hv-passthrough "$BUILD/guest/hvbench.elf" 2>&1)
for what in spinwait flush tscpage refcount rdtsc; do
  # "hvbench: WHAT N in T us: NS ns each (least of R runs)"
  ns=$(for o in "${hv_runs[@]}"; do echo "$o"; done |
       sed -n "s/^hvbench: $what [0-9]* in .*: \([0-9.]*\) ns each.*/\1/p" | median)
  ins=$(echo "$hv_icount" | sed -n "s/^hvbench: $what [0-9]* in .*: \([0-9.]*\) ns each.*/\1/p")
  printf 'Hyper-V %-9s %s ns (median of %s); -icount: %s ns of guest time\n' "$what:" "$ns" "$RUNS" "$ins"
done

# ---- 5c. SGX ----
sgx_runs=()
for _ in $(seq "$RUNS"); do
  out=$("$NESTOR" run -sgx-epc 64M "$BUILD/guest/sgxbench.elf" 2>&1)
  st=$?
  if [ "$st" -ne 1 ]; then
    echo "bench: sgxbench.elf failed (exit status $st)"; echo "$out" | tail -5; exit 1
  fi
  sgx_runs+=("$out")
done
sgx_field() { # sed expression picking one number per run
  for o in "${sgx_runs[@]}"; do echo "$o"; done | sed -n "$1" | median
}
# "sgxbench: eenter-eexit N in T us: NS ns each, R round trips per second (least of K runs)"
echo "SGX EENTER+EEXIT round trip: $(sgx_field 's/^sgxbench: eenter-eexit .*: \([0-9.]*\) ns each.*/\1/p') ns, $(sgx_field 's/^sgxbench: eenter-eexit .* \([0-9]*\) round trips per second.*/\1/p') per second (median of $RUNS)"
# "sgxbench: WHAT N pages in T us: P pages per second, M MB/s (least of K runs)"
for what in eadd eadd+eextend eremove; do
  printf 'SGX %-13s %s pages/s, %s MB/s (median of %s)\n' "$what:" \
    "$(sgx_field "s/^sgxbench: $what [0-9]* pages in .*: \([0-9]*\) pages per second.*/\1/p")" \
    "$(sgx_field "s/^sgxbench: $what [0-9]* pages in .*, \([0-9.]*\) MB\/s.*/\1/p")" "$RUNS"
done

# ---- 6. nested VMX and SVM ----
nested_runs=()
# nested_bench KERNEL NESTOR-OPTION...: RUNS runs of KERNEL.elf, their outputs in nested_runs
nested_bench() {
  local kernel=$1 out st
  shift
  nested_runs=()
  for _ in $(seq "$RUNS"); do
    out=$("$NESTOR" run "$@" "$BUILD/guest/$kernel.elf" 2>&1)
    st=$?
    if [ "$st" -ne 1 ]; then
      echo "bench: $kernel.elf failed (exit status $st)"; echo "$out" | tail -5; exit 1
    fi
    nested_runs+=("$out")
  done
}
nested_field() { # sed expression picking one number per run
  for o in "${nested_runs[@]}"; do echo "$o"; done | sed -n "$1" | median
}
nested_bench vmxbench
echo "VMX L2->L1->L2 exit round trip: $(nested_field 's/^vmxbench: exit .*: \([0-9]*\) ns each.*/\1/p') ns (median of $RUNS)"
echo "VMX compute loop: L1 $(nested_field 's/^vmxbench: compute L1 \([0-9]*\) MIPS.*/\1/p') MIPS, L2 on EPT $(nested_field 's/^vmxbench: compute .*L2 on EPT \([0-9]*\) MIPS.*/\1/p') MIPS (median of $RUNS)"
nested_bench svmbench -cpu max,vendor=AuthenticAMD
echo "SVM L2->L1->L2 exit round trip: $(nested_field 's/^svmbench: exit .*: \([0-9]*\) ns each.*/\1/p') ns (median of $RUNS)"
echo "SVM compute loop: L1 $(nested_field 's/^svmbench: compute L1 \([0-9]*\) MIPS.*/\1/p') MIPS, L2 on NPT $(nested_field 's/^svmbench: compute .*L2 on NPT \([0-9]*\) MIPS.*/\1/p') MIPS (median of $RUNS)"

[ "${BENCH_LINUX:-1}" = 0 ] && exit 0

# ---- 2./3. Linux boot ----
# with the KVM client, as make check packs it, so the tests find the same initramfs
scripts/linux.sh "$KDIR" "$BUILD/tests/linux/kvm_client" "$BUILD/tests/linux/sgx" >/dev/null ||
  { echo "bench: cannot fetch Debian's kernel"; exit 1; }
APPEND="console=ttyS0 nestor.script=1"

# time_boot NAME CMD...: prints the median wall seconds of LRUNS boots that print the
# script's end marker
time_boot() {
  local name=$1; shift
  local t=() s e
  for _ in $(seq "$LRUNS"); do
    s=$(date +%s.%N)
    timeout 1200 "$@" </dev/null >"/tmp/nestor-bench-$name.log" 2>&1
    e=$(date +%s.%N)
    if ! grep -q '^== done' "/tmp/nestor-bench-$name.log"; then
      echo "bench: $name did not finish its boot script (log: /tmp/nestor-bench-$name.log)" >&2
      echo "failed"; return
    fi
    t+=("$(echo "$e - $s" | bc)")
  done
  printf '%s\n' "${t[@]}" | median | xargs printf '%.1f'
}

nb=$(time_boot nestor-bzimage "$NESTOR" run -m 512M -kernel "$KDIR/vmlinuz" -initrd "$KDIR/initramfs.cpio.gz" -append "$APPEND")
echo "linux boot, nestor, bzImage:          $nb s (median of $LRUNS)"
np=$(time_boot nestor-pvh "$NESTOR" run -m 512M -kernel "$KDIR/vmlinux" -initrd "$KDIR/initramfs.cpio.gz" -append "$APPEND")
echo "linux boot, nestor, vmlinux via PVH:  $np s (median of $LRUNS)"

if command -v qemu-system-x86_64 >/dev/null; then
  qp=$(time_boot qemu-pc qemu-system-x86_64 -accel tcg -M pc -m 512M -nographic -no-reboot \
        -kernel "$KDIR/vmlinuz" -initrd "$KDIR/initramfs.cpio.gz" -append "$APPEND")
  echo "linux boot, QEMU TCG -M pc (bzImage): $qp s (median of $LRUNS)"
  if [ "$nb" != failed ] && [ "$qp" != failed ]; then
    echo "ratio nestor bzImage / QEMU TCG pc:   $(echo "scale=2; $nb / $qp" | bc)"
  fi
else
  echo "QEMU (qemu-system-x86) is not installed: no comparison"
fi

# ---- 7. save, restore, live migration ----
python3 bench/migrate_bench.py || echo "bench: migrate_bench.py failed"

# ---- 8. Xen PV disk and network ----
pv() { tr -d '\r' <"$1" | sed -n "s/^iobench: $2 //p" | head -n 1; }
# disk_bench LABEL LOG DISK-OPTION-FORMAT CMD...: the disk figures of one emulator; the
# format's %s is a fresh 256 MiB raw image
disk_bench() {
  local label=$1 log=$2 fmt=$3 img
  shift 3
  img=$(mktemp /var/tmp/nestor-bench-disk.XXXXXX)
  truncate -s 256M "$img"
  # shellcheck disable=SC2059
  "$@" -append "$APPEND nestor.iobench=disk" -drive "$(printf "$fmt" "$img")" </dev/null >"$log" 2>&1
  rm -f "$img"
  echo "$label, sequential write: $(pv "$log" seq-write)"
  echo "$label, sequential read:  $(pv "$log" seq-read)"
  echo "$label, 4 KiB random QD1: $(pv "$log" rand-read-4k)"
}
# net_bench LABEL LOG CMD...: 256 MiB from the guest to a sink on the host's loopback
net_bench() {
  local label=$1 log=$2 port sink
  shift 2
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 - "$port" <<'PY' &
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(1)
srv.settimeout(600)
c, _ = srv.accept()
while c.recv(1 << 16):
    pass
c.close()
PY
  sink=$!
  "$@" -append "$APPEND nestor.iobench=tcp:$port" </dev/null >"$log" 2>&1
  kill $sink 2>/dev/null
  echo "$label, guest to host TCP (slirp): $(pv "$log" tcp-send)"
}
NESTOR_XEN=("$NESTOR" run -m 512M -xen -kernel "$KDIR/vmlinux" -initrd "$KDIR/initramfs.cpio.gz")
disk_bench "Xen PV disk" /tmp/nestor-bench-pvdisk.log "file=%s,if=xen" "${NESTOR_XEN[@]}"
net_bench "Xen PV NIC" /tmp/nestor-bench-pvnet.log "${NESTOR_XEN[@]}" \
  -netdev user,id=n0 -device xen-net-device,netdev=n0
# the same on QEMU's software emulator with virtio-blk and virtio-net, when installed
if command -v qemu-system-x86_64 >/dev/null; then
  QEMU=(qemu-system-x86_64 -accel tcg -M pc -m 512M -nographic -no-reboot -kernel "$KDIR/vmlinuz"
        -initrd "$KDIR/initramfs.cpio.gz")
  disk_bench "QEMU TCG virtio-blk" /tmp/nestor-bench-qemu-disk.log "file=%s,if=virtio,format=raw" "${QEMU[@]}"
  net_bench "QEMU TCG virtio-net" /tmp/nestor-bench-qemu-net.log "${QEMU[@]}" \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0
else
  echo "QEMU (qemu-system-x86) is not installed: no virtio-blk/virtio-net comparison"
fi

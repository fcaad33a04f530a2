#!/usr/bin/env bash
# Fetches Debian's own kernel (linux-image-amd64) and busybox-static with apt — download
# and extract only, nothing is installed into the host — and builds an initramfs.
#   scripts/linux.sh OUTDIR [KVM_CLIENT [SGX_DIR [SGX_SELFTESTS_DIR]]]
# Produces OUTDIR/vmlinuz, OUTDIR/vmlinux (its uncompressed ELF, for PVH boot) and
# OUTDIR/initramfs.cpio.gz. The initramfs's /init mounts the
# usual file systems and starts a shell on the console; with "nestor.script=1" on the
# kernel command line it instead runs /script (the boot test) and powers off (or reboots,
# with "nestor.reboot=1" too); "nestor.s3=1" adds a suspend to RAM woken by the RTC.
# The initramfs holds the kernel package's KVM modules (kvm-intel and what it depends on)
# and the static KVM_CLIENT binary (tests/linux/kvm_client.c, built by tests/linux/linux.mk)
# as /kvm_client: "nestor.kvm=1" makes /script load the modules and run the client.
# SGX_DIR (tests/linux/linux.mk's build of tests/linux/sgx_test.c and its enclave; by
# default OUTDIR/../tests/linux/sgx when it is there) gives /sgx_test and the enclave's
# files in /sgx: "nestor.sgx=1" makes /script show the SGX devices and run the program.
# SGX_SELFTESTS_DIR (tests/linux/sgx_selftests.sh's build of Linux's own SGX selftests; by
# default OUTDIR/../tests/linux/sgx-selftests when it is there) gives /sgx-selftests with
# test_sgx and test_encl.elf: "nestor.sgx_selftests=1" makes /script run test_sgx there.
set -euo pipefail
out=${1:-build/linux}
kvm_client=${2:-}
sgx_dir=${3:-$(dirname "$out")/tests/linux/sgx}
sgx_selftests_dir=${4:-$(dirname "$out")/tests/linux/sgx-selftests}
mkdir -p "$out/debs"
out=$(cd "$out" && pwd)

fetch() { # package
  local pkg=$1
  if ! ls "$out/debs/${pkg}"_*.deb >/dev/null 2>&1; then
    (cd "$out/debs" && apt-get download "$pkg" 2>/dev/null) ||
      { apt-get update -qq && (cd "$out/debs" && apt-get download "$pkg"); }
  fi
}

kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then
  apt-get update -qq
  kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$kpkg" ] || { echo "linux.sh: cannot resolve linux-image-amd64" >&2; exit 1; }
fetch "$kpkg"
fetch busybox-static

if [ ! -f "$out/vmlinuz" ] || [ "$out/debs" -nt "$out/vmlinuz" ]; then
  rm -rf "$out/kernel"
  dpkg-deb --fsys-tarfile "$out/debs/${kpkg}"_*.deb | tar -x -C "$out" --wildcards './boot/vmlinuz-*' --transform 's,.*/,kernel/,'
  cp "$out"/kernel/vmlinuz-* "$out/vmlinuz"
fi

# The uncompressed kernel (an ELF with the PVH entry note): booted through PVH it skips
# the bzImage's own decompressor. The boot protocol header (2.08+) says where the
# compressed payload lies: payload_offset (0x248) and payload_length (0x24c), counted
# from the protected-mode code, which follows the (setup_sects + 1) * 512 setup bytes.
header_field() { # offset size
  od -An -t "u$2" --endian=little -j "$1" -N "$2" "$out/vmlinuz" | tr -d ' '
}
if [ ! -f "$out/vmlinux" ] || [ "$out/vmlinuz" -nt "$out/vmlinux" ]; then
  setup_sects=$(header_field $((0x1f1)) 1)
  [ "$setup_sects" -eq 0 ] && setup_sects=4
  payload_offset=$(header_field $((0x248)) 4)
  payload_length=$(header_field $((0x24c)) 4)
  start=$(( (setup_sects + 1) * 512 + payload_offset ))
  # the build appends the uncompressed size after the xz stream: --single-stream stops
  # at the stream's end
  dd if="$out/vmlinuz" iflag=skip_bytes,count_bytes skip="$start" count="$payload_length" \
     bs=64K status=none | xz -dc --single-stream > "$out/vmlinux.tmp" ||
    { echo "linux.sh: the kernel payload is not xz data (needs xz-utils)" >&2; rm -f "$out/vmlinux.tmp"; exit 1; }
  mv "$out/vmlinux.tmp" "$out/vmlinux"
fi

# Modules, extracted from the kernel package into OUTDIR/modules once per package, each
# after the modules its .modinfo "depends=" names, recursively (Debian's package has no
# modules.dep: depmod makes it at install), in groups whose files list the order to
# load them: kvm.order (kvm_intel), kvm_amd.order (kvm_amd), xen.order (the Xen guest's PV disk and network
# frontends, ext4 for the disk's file system and the crc32c its checksums ask the crypto
# API for) and virtio.order (virtio-blk and virtio-net, for make bench's comparison with
# QEMU). Modules compressed by the package (.ko.xz) are decompressed: busybox insmod
# reads plain ELF.
moddir="$out/modules"
if [ ! -f "$moddir/kvm_amd.order" ] || [ "$out/debs" -nt "$moddir/kvm_amd.order" ]; then
  rm -rf "$moddir"
  mkdir -p "$moddir"
  kdeb=$(ls "$out/debs/${kpkg}"_*.deb)
  ko_paths=$(dpkg-deb -c "$kdeb" | awk '{ print $NF }' | grep -E '/kernel/.*\.ko(\.xz)?$')
  add_module() { # name (either of - and _): appended to $order after its dependencies
    local name=${1//-/_} path dep
    grep -qx "$name" "$order" && return 0
    # a module file's name has - or _ where the module's name has _
    path=$(grep -E "/${name//_/[-_]}\.ko(\.xz)?$" <<<"$ko_paths" | head -n 1) ||
      { echo "linux.sh: module $name is not in $kpkg" >&2; exit 1; }
    case $path in
      *.xz) dpkg-deb --fsys-tarfile "$kdeb" | tar -x -O "$path" | xz -dc >"$moddir/$name.ko" ;;
      *) dpkg-deb --fsys-tarfile "$kdeb" | tar -x -O "$path" >"$moddir/$name.ko" ;;
    esac
    for dep in $(tr '\0' '\n' <"$moddir/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
      add_module "$dep"
    done
    echo "$name" >>"$order"
  }
  for group in "kvm:kvm_intel" "kvm_amd:kvm_amd" "xen:crc32c_generic xen_blkfront xen_netfront ext4" \
               "virtio:virtio_pci virtio_blk virtio_net"; do
    order="$moddir/${group%%:*}.order.tmp"
    : >"$order"
    for m in ${group#*:}; do add_module "$m"; done
  done
  mv "$moddir/kvm.order.tmp" "$moddir/kvm.order"
  mv "$moddir/xen.order.tmp" "$moddir/xen.order"
  mv "$moddir/virtio.order.tmp" "$moddir/virtio.order"
  mv "$moddir/kvm_amd.order.tmp" "$moddir/kvm_amd.order"
fi

root="$out/initramfs-root"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,etc,tmp,root}
dpkg-deb --fsys-tarfile "$out"/debs/busybox-static_*.deb | tar -x -O ./bin/busybox > "$root/bin/busybox"
chmod 755 "$root/bin/busybox"
for tool in sh mount umount cat echo uname date poweroff reboot sleep ls dmesg grep awk expr seq \
            setsid cttyhack mkdir ps head tail wc sync insmod switch_root sha256sum dd \
            ip ifconfig route udhcpc wget httpd nc timeout cut sed; do
  ln -sf busybox "$root/bin/$tool"
done

# The PMU check's program (tests/linux/perfcount.c), a static binary from the host's gcc.
repo=$(cd "$(dirname "$0")/.." && pwd)
gcc -static -O2 -o "$root/bin/perfcount" "$repo/tests/linux/perfcount.c" ||
  { echo "linux.sh: cannot build tests/linux/perfcount.c (gcc -static, libc6-dev)" >&2; exit 1; }
# The PV device benchmark (tests/linux/iobench.c): nestor.iobench=disk or tcp:PORT
gcc -static -O2 -o "$root/bin/iobench" "$repo/tests/linux/iobench.c" ||
  { echo "linux.sh: cannot build tests/linux/iobench.c" >&2; exit 1; }
# The live-migration workload (tests/linux/memstress.c): nestor.memstress=SECONDS
gcc -static -O2 -o "$root/bin/memstress" "$repo/tests/linux/memstress.c" ||
  { echo "linux.sh: cannot build tests/linux/memstress.c" >&2; exit 1; }

# The kernel's orderly poweroff (a Xen guest asked through xenstore's control/shutdown,
# the ACPI button with a handler) runs /sbin/poweroff: it says so, then powers off.
cat > "$root/sbin/poweroff" <<'POWEROFF'
#!/bin/sh
echo "nestor initramfs: orderly poweroff requested" > /dev/console
sync
/bin/poweroff -f
POWEROFF
chmod 755 "$root/sbin/poweroff"

# udhcpc's lease, applied (the nestor.net test)
cat > "$root/bin/udhcpc.script" <<'DHCP'
#!/bin/sh
case "$1" in
  bound|renew)
    ifconfig "$interface" "$ip" netmask "$subnet" up
    [ -n "$router" ] && route add default gw "${router%% *}" dev "$interface"
    ;;
esac
exit 0
DHCP
chmod 755 "$root/bin/udhcpc.script"

mkdir -p "$root/lib/modules"
cp "$moddir"/*.ko "$moddir"/*.order "$root/lib/modules/"
if [ -n "$kvm_client" ]; then
  cp "$kvm_client" "$root/kvm_client"
else
  echo "linux.sh: no KVM client given: the initramfs has none (nestor.kvm=1 will say so)" >&2
fi
if [ -x "$sgx_dir/sgx_test" ] && [ -f "$sgx_dir/encl.sig" ]; then
  cp "$sgx_dir/sgx_test" "$root/sgx_test"
  mkdir -p "$root/sgx"
  cp "$sgx_dir"/encl.bin "$sgx_dir"/encl.layout "$sgx_dir"/encl.sig "$sgx_dir"/encl.expect "$root/sgx/"
else
  echo "linux.sh: no SGX test in $sgx_dir: the initramfs has none (nestor.sgx=1 will say so)" >&2
fi

if [ -x "$sgx_selftests_dir/test_sgx" ] && [ -f "$sgx_selftests_dir/test_encl.elf" ]; then
  mkdir -p "$root/sgx-selftests"
  cp "$sgx_selftests_dir/test_sgx" "$sgx_selftests_dir/test_encl.elf" "$root/sgx-selftests/"
else
  echo "linux.sh: no SGX selftests in $sgx_selftests_dir: the initramfs has none (nestor.sgx_selftests=1 will say so)" >&2
fi

cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "nestor initramfs: $(uname -sr), $(grep -c ^processor /proc/cpuinfo) CPU(s)"
# nestor.root=DISK (a Xen guest's PV disk, xvda): the frontend and ext4 modules, then the
# disk's file system becomes the root and its /sbin/init runs (nestor.rootro=1: read
# only; nestor.ringorder=N: the frontend's max_ring_page_order)
root=$(sed -n 's/.*nestor\.root=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$root" ]; then
  order=$(sed -n 's/.*nestor\.ringorder=\([0-9]*\).*/\1/p' /proc/cmdline)
  for m in $(cat /lib/modules/xen.order); do
    arg=
    [ "$m" = xen_blkfront ] && [ -n "$order" ] && arg="max_ring_page_order=$order"
    insmod /lib/modules/$m.ko $arg || echo "nestor initramfs: insmod $m failed"
  done
  n=0
  while [ ! -b /dev/$root ] && [ $n -lt 30 ]; do sleep 1; n=$((n + 1)); done
  mkdir -p /newroot
  opt=rw
  grep -q 'nestor.rootro=1' /proc/cmdline && opt=ro
  if mount -t ext4 -o $opt /dev/$root /newroot; then
    umount /proc /sys
    mount --move /dev /newroot/dev 2>/dev/null || umount /dev
    exec switch_root /newroot /sbin/init
  fi
  echo "nestor initramfs: cannot mount /dev/$root"
  poweroff -f
fi
if grep -q 'nestor.script=1' /proc/cmdline; then
  sh /script
  if grep -q 'nestor.reboot=1' /proc/cmdline; then
    reboot -f
  fi
  poweroff -f
fi
exec setsid cttyhack sh
INIT
chmod 755 "$root/init"

cat > "$root/script" <<'SCRIPT'
echo "== uname"
uname -a
echo "== cpuinfo"
grep -E '^(processor|vendor_id|model name|flags)' /proc/cpuinfo
echo "== interrupts"
cat /proc/interrupts
echo "== compute"
i=0; s=0
while [ $i -lt 1000 ]; do s=$((s + i * i)); i=$((i + 1)); done
echo "sum of squares below 1000: $s"
# the gdb stub's test (nestor.gdbtest=1, with nokaslr): the address of a function the
# debugger breaks at (the package has no symbols), then writes that reach it
if grep -q 'nestor.gdbtest=1' /proc/cmdline; then
  echo "== gdbtest"
  echo "gdbtest: $(grep ' T ksys_write$' /proc/kallsyms)"
  i=0; while [ $i -lt 15 ]; do echo "gdbtest: tick $i"; sleep 1; i=$((i + 1)); done
  echo "gdbtest: done"
fi
# a workload that keeps writing memory and checks it at the end (live migration tests)
ms=$(sed -n 's/.*nestor\.memstress=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$ms" ]; then
  echo "== memstress"
  /bin/memstress "$ms"
  echo "memstress: exit status $?"
fi
echo "== perf"
/bin/perfcount 4000
# nestor.wait=SECONDS: the guest waits there (for the host to shut it down, e.g. QMP's
# system_powerdown), then goes on
wait=$(sed -n 's/.*nestor\.wait=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$wait" ]; then
  echo "== waiting ${wait} s"
  sleep "$wait"
  echo "waiting: over"
fi
echo "== date"
date
# ACPI S3 with nestor.s3=1: suspend to RAM, woken 2 s later by the RTC alarm
if grep -q 'nestor.s3=1' /proc/cmdline; then
  echo "== suspend"
  cat /sys/power/mem_sleep
  echo 0 > /sys/class/rtc/rtc0/wakealarm
  echo +2 > /sys/class/rtc/rtc0/wakealarm
  before=$(date +%s)
  if echo mem > /sys/power/state; then echo "suspend: resumed"; else echo "suspend: failed"; fi
  echo "suspend: slept $(($(date +%s) - before)) s"
fi
# Xen's balloon driver (a Xen guest): 16 MiB given back to the hypervisor
# (decrease_reservation) and taken again (populate_physmap)
xb=/sys/devices/system/xen_memory/xen_memory0
if [ -d $xb ]; then
  echo "== balloon"
  full=$(cat $xb/info/current_kb)
  balloon_to() { # kB: the target, then up to 30 s for the driver to reach it
    echo "$1" > $xb/target_kb
    n=0
    while [ "$(cat $xb/info/current_kb)" != "$1" ] && [ $n -lt 30 ]; do sleep 1; n=$((n + 1)); done
    echo "balloon: target $1 kB, current $(cat $xb/info/current_kb) kB"
  }
  balloon_to $((full - 16384))
  balloon_to "$full"
fi
# A Xen guest's PV NIC (nestor.net=PORT): xen-netfront, a DHCP lease from the host's
# side, a download from an HTTP server on the host (port PORT of the gateway, which is the
# host's loopback with -netdev user), then a server for the host (port 8080, reached
# through hostfwd) until the host says bye on port 8081. nestor.netaddr=IP/PREFIX and
# nestor.nethost=IP: a fixed address instead of DHCP and the host's address (a TAP).
net=$(sed -n 's/.*nestor\.net=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$net" ]; then
  echo "== net"
  for m in $(cat /lib/modules/xen.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
  n=0
  while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 20 ]; do sleep 1; n=$((n + 1)); done
  echo "net: mac $(cat /sys/class/net/eth0/address)"
  ip link set lo up
  ip link set eth0 up
  addr=$(sed -n 's/.*nestor\.netaddr=\([0-9./]*\).*/\1/p' /proc/cmdline)
  hostip=$(sed -n 's/.*nestor\.nethost=\([0-9.]*\).*/\1/p' /proc/cmdline)
  if [ -n "$addr" ]; then
    ip addr add "$addr" dev eth0
  elif ! udhcpc -i eth0 -n -q -t 10 -T 1 -s /bin/udhcpc.script >/dev/null 2>&1; then
    echo "net: no lease"
  fi
  echo "net: lease $(ip -4 addr show eth0 | sed -n 's/.*inet \([0-9.]*\/[0-9]*\).*/\1/p')"
  echo "net: route $(ip route | grep default | cut -d' ' -f1-3)"
  echo "net: queues $(ls /sys/class/net/eth0/queues | grep -c '^tx-')"
  if wget -q -O /tmp/data.bin "http://${hostip:-10.0.2.2}:$net/data.bin"; then
    echo "net: downloaded $(sha256sum < /tmp/data.bin | cut -d' ' -f1)"
  else
    echo "net: download failed"
  fi
  mkdir -p /www
  seq 1 50000 > /www/guest.txt
  httpd -p 8080 -h /www
  echo "net: serving"
  msg=$(timeout 120 nc -l -p 8081)
  echo "net: host says $msg"
fi
# make bench's PV device figures (nestor.iobench=disk: the raw /dev/xvda, or QEMU's
# /dev/vda; nestor.iobench=tcp:PORT: 256 MiB to the host's port through user networking)
iob=$(sed -n 's/.*nestor\.iobench=\([a-z0-9:]*\).*/\1/p' /proc/cmdline)
if [ -n "$iob" ]; then
  echo "== iobench"
  for m in $(cat /lib/modules/xen.order /lib/modules/virtio.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
  n=0
  while [ ! -b /dev/xvda ] && [ ! -b /dev/vda ] && [ ! -e /sys/class/net/eth0 ] && [ $n -lt 20 ]; do
    sleep 1
    n=$((n + 1))
  done
  dev=/dev/xvda
  [ -b /dev/vda ] && dev=/dev/vda
  case $iob in
    disk) /bin/iobench disk $dev 128 ;;
    tcp:*)
      ip link set eth0 up
      udhcpc -i eth0 -n -q -t 10 -T 1 -s /bin/udhcpc.script >/dev/null 2>&1
      /bin/iobench tcp 10.0.2.2 "${iob#tcp:}" 256 ;;
  esac
fi
# KVM (nestor.kvm=1): the KVM modules, /dev/kvm, and the client's checks on an L2 guest
if grep -q 'nestor.kvm=1' /proc/cmdline; then
  echo "== kvm"
  order=/lib/modules/kvm.order
  grep -q '^vendor_id.*AuthenticAMD' /proc/cpuinfo && order=/lib/modules/kvm_amd.order
  for m in $(cat $order); do
    if insmod /lib/modules/$m.ko; then echo "kvm: insmod $m: ok"; else echo "kvm: insmod $m: failed"; fi
  done
  ls -l /dev/kvm
  if [ -x /kvm_client ]; then
    /kvm_client
    echo "kvm: client exit status $?"
  else
    echo "kvm: no /kvm_client in the initramfs"
  fi
fi
# SGX (nestor.sgx=1): the driver's devices, then the test's enclave built and run
if grep -q 'nestor.sgx=1' /proc/cmdline; then
  echo "== sgx"
  ls -l /dev/sgx_enclave /dev/sgx_provision /dev/sgx_vepc 2>&1
  if [ -x /sgx_test ]; then
    /sgx_test /sgx
    echo "sgx: test exit status $?"
  else
    echo "sgx: no /sgx_test in the initramfs"
  fi
fi
# Linux's own SGX selftests (nestor.sgx_selftests=1): test_sgx, from its directory (it
# loads test_encl.elf from there), prints TAP
if grep -q 'nestor.sgx_selftests=1' /proc/cmdline; then
  echo "== sgx-selftests"
  if [ -x /sgx-selftests/test_sgx ]; then
    (cd /sgx-selftests && ./test_sgx)
    echo "sgx-selftests: exit status $?"
  else
    echo "sgx-selftests: no /sgx-selftests/test_sgx in the initramfs"
  fi
fi
echo "== dmesg"
dmesg
echo "== done"
SCRIPT

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -9) > "$out/initramfs.cpio.gz"
echo "linux.sh: $out/vmlinuz and vmlinux ($kpkg) and $out/initramfs.cpio.gz ready"

#!/usr/bin/env bash
# Debian's kernel as a Xen guest with its root file system on a PV disk (/dev/xvda):
# the initramfs of scripts/linux.sh loads xen-blkfront and ext4 (from the same kernel
# package), mounts xvda and switches to it; the disk's own /sbin/init (written here) does
# what the boot's mode asks and powers off. The images are ext4 file systems built
# without privileges by mke2fs -d. One line per check:
#   PASS xendisk:BOOT:CHECK
#   FAIL xendisk:BOOT:CHECK: why
# Boots (two at a time; "read" after "write", on the same image):
#   write     PVH, 2 vCPUs, -drive if=none + -device xen-disk with 2 queues and the
#             frontend's multi-page ring: writes a file, syncs, trims a freed 8 MiB; the
#             host then reads the file out of the image (debugfs)
#   read      HVM (bzImage), 1 vCPU, xen_no_vector_callback (the platform device's INTx
#             upcall), -drive if=xen: reads the file back
#   readonly  HVM, noapic (the upcall through the 8259), readonly=on: the disk is
#             read-only to the guest, writes fail, the image is unchanged
#   snapshot  PVH, snapshot=on: the guest writes, the image is unchanged
#   sector4k  PVH, logical_block_size=4096
# and, while "write" runs, a second nestor on its image is refused (the image lock).
#
#   tests/xendisk/run.sh [BOOT...]   LINUX_TIMEOUT=N: seconds per boot (default 600)
set -u
cd "$(dirname "$0")/../.."
SUITE=xendisk
WANT=("$@")
. tests/linux_boot.sh
DIR=$BUILD/tests/xendisk
mkdir -p "$DIR"
fail() { echo "FAIL xendisk:$1: $2"; }

for f in "$NESTOR" "$KDIR/vmlinux" "$KDIR/vmlinuz" "$KDIR/initramfs.cpio.gz" "$KDIR/initramfs-root/bin/busybox"; do
  [ -e "$f" ] || { fail setup "$f is missing (scripts/linux.sh makes the kernel files)"; exit 0; }
done
command -v mke2fs >/dev/null && command -v debugfs >/dev/null ||
  { fail setup "mke2fs/debugfs missing (e2fsprogs)"; exit 0; }

# ---- the disk's root file system ----
rootfs=$DIR/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"/{bin,sbin,proc,sys,dev,data,tmp,mnt}
cp "$KDIR/initramfs-root/bin/busybox" "$rootfs/bin/"
for t in sh mount umount cat echo ls dmesg grep sed sha256sum seq sync poweroff dd rm cut wc fstrim; do
  ln -sf busybox "$rootfs/bin/$t"
done
cat > "$rootfs/sbin/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mode=$(sed -n 's/.*nestor\.disk=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
b=/sys/block/xvda
echo "== disk"
echo "disk: root $(grep ' / ' /proc/mounts | cut -d' ' -f1-3)"
echo "disk: sectors $(cat $b/size) lbs $(cat $b/queue/logical_block_size) ro $(cat $b/ro) queues $(ls $b/mq | wc -l)"
echo "disk: hello $(sha256sum < /data/hello.bin | cut -d' ' -f1)"
case $mode in
write)
  seq 1 200000 > /data/written.txt
  sync
  echo "disk: wrote $(sha256sum < /data/written.txt | cut -d' ' -f1)"
  # 8 MiB written, freed and trimmed: the backend punches them out of the image
  dd if=/dev/zero of=/data/big bs=1M count=8 2>/dev/null
  sync
  rm /data/big
  sync
  if fstrim / >/dev/null; then echo "disk: fstrim ok"; else echo "disk: fstrim failed"; fi
  ;;
read)
  echo "disk: read $(sha256sum < /data/written.txt | cut -d' ' -f1)"
  ;;
readonly)
  if echo x 2>/dev/null > /data/x; then echo "disk: file write allowed"; else echo "disk: file write refused"; fi
  if dd if=/dev/zero of=/dev/xvda bs=4096 count=1 seek=1000 2>/dev/null; then
    echo "disk: device write allowed"
  else
    echo "disk: device write refused"
  fi
  ;;
esac
echo "== dmesg"
dmesg
# the file system clean on the disk (no journal to replay) before the power goes
mount -o remount,ro / 2>/dev/null
echo "== done"
poweroff -f
INIT
chmod 755 "$rootfs/sbin/init"
# 300 KiB of fixed bytes the guest checksums
awk 'BEGIN { for (i = 0; i < 38400; i++) printf "%07d\n", i * 7919 % 10000000 }' >"$rootfs/data/hello.bin"
HELLO=$(sha256sum <"$rootfs/data/hello.bin" | cut -d' ' -f1)
WRITTEN=$(seq 1 200000 | sha256sum | cut -d' ' -f1)

make_image() { # path, block size
  rm -f "$1"
  mke2fs -q -F -t ext4 -b "$2" -d "$rootfs" "$1" 64M >"$1.mke2fs" 2>&1 ||
    { fail setup "mke2fs: $(head -c 200 "$1.mke2fs")"; exit 0; }
}

# boot NAME KERNEL NCPUS "APPEND" NESTOR-ARGS...: in the background, status to NAME.status
boot() {
  local name=$1 kernel=$2 ncpus=$3 append=$4
  shift 4
  (
    timeout -k 10 "$TIMEOUT" "$NESTOR" run -m 256M -smp "$ncpus" -xen -kernel "$KDIR/$kernel" \
      -initrd "$KDIR/initramfs.cpio.gz" -append "console=ttyS0 nestor.root=xvda $append" "$@" \
      </dev/null >"$DIR/$name.log" 2>"$DIR/$name.err"
    echo $? >"$DIR/$name.status"
  ) &
}

# line PATTERN < log: the value after "disk: PATTERN " on the console (a kernel message
# that the console put right after it, before its newline, is left out)
disk_value() { # name key
  tr -d '\r' <"$DIR/$1.log" | sed -n "s/^disk: $2 //p" | sed -E 's/\[ *[0-9]+\.[0-9]+\] .*$//' | head -n 1
}

FORBIDDEN='Oops|\bBUG\b|WARNING|Call Trace|Kernel panic|detected stall|soft lockup|blkfront.*(fail|error|wrong)|xvda.*(disabled|error)|I/O error|EXT4-fs error'

common_checks() { # name, expected lbs
  local name=$1 log=$DIR/$1.log st
  st=$(cat "$DIR/$name.status" 2>/dev/null || echo none)
  check "$name:exit-status" "$([ "$st" = 0 ]; echo $?)" "nestor exited with $st ($(tail -n 2 "$DIR/$name.err" | tr '\n' ' '))"
  check "$name:init-ran" "$(grep -q '^== done' "$log"; echo $?)" "the disk's /sbin/init did not finish"
  local root
  root=$(disk_value "$name" root)
  check "$name:root-on-xvda" "$([ "$root" = "/dev/xvda / ext4" ]; echo $?)" "root is '$root'"
  local geo
  geo=$(disk_value "$name" sectors)
  check "$name:geometry" "$([[ "$geo" == "131072 lbs $2 "* ]]; echo $?)" "'$geo'"
  check "$name:hello-read" "$([ "$(disk_value "$name" hello)" = "$HELLO" ]; echo $?)" "checksum differs"
  check "$name:blkfront-features" \
    "$(grep -q 'blkfront: xvda: flush diskcache: enabled; persistent grants: enabled; indirect descriptors: enabled' "$log"; echo $?)" \
    "$(grep -m1 'blkfront: xvda' "$log" | tr -d '\r')"
  local bad
  bad=$(sed -n '/^== dmesg/,/^== done/p' "$log" | grep -E "$FORBIDDEN" | head -n 3 | tr -d '\r' | tr '\n' '|')
  check "$name:kernel-log" "$([ -z "$bad" ]; echo $?)" "$bad"
}

image_sum() { sha256sum <"$1" | cut -d' ' -f1; }

# ---- write, then read (same image), with the lock check during write ----
if selected write || selected read; then
  img=$DIR/rw.img
  make_image "$img" 4096
  before_kb=$(du -k "$img" | cut -f1)
  rm -f "$DIR/write.status"
  boot write vmlinux 2 "nestor.disk=write nestor.ringorder=2" \
    -drive "file=$img,if=none,id=root,format=raw" -device "xen-disk,drive=root,vdev=xvda,num-queues=2"
  # the image is locked while the first nestor has it
  sleep 1
  "$NESTOR" run -xen -kernel "$KDIR/vmlinux" -drive "file=$img,if=xen" </dev/null >/dev/null 2>"$DIR/lock.err"
  lock_st=$?
  check lock:second-writer-refused "$([ $lock_st -eq 2 ] && grep -q 'in use by another program' "$DIR/lock.err"; echo $?)" \
    "status $lock_st: $(head -n 1 "$DIR/lock.err")"
  # meanwhile: the snapshot boot (its own image)
  if selected snapshot || [ ${#WANT[@]} -eq 0 ]; then
    simg=$DIR/snapshot.img
    make_image "$simg" 4096
    snap_before=$(image_sum "$simg")
    boot snapshot vmlinux 1 "nestor.disk=write" -drive "file=$simg,if=xen,snapshot=on"
  fi
  wait
  common_checks write 512
  check write:queues "$([[ "$(disk_value write sectors)" == *" queues 2" ]]; echo $?)" "$(disk_value write sectors)"
  check write:guest-checksum "$([ "$(disk_value write wrote)" = "$WRITTEN" ]; echo $?)" "'$(disk_value write wrote)'"
  host=$(debugfs -R "cat /data/written.txt" "$img" 2>/dev/null | sha256sum | cut -d' ' -f1)
  check write:host-reads-file "$([ "$host" = "$WRITTEN" ]; echo $?)" "the image's file has checksum $host"
  check write:fstrim "$(grep -q '^disk: fstrim ok' "$DIR/write.log"; echo $?)" "fstrim failed"
  after_kb=$(du -k "$img" | cut -f1)
  check write:discard-punched "$([ $((after_kb - before_kb)) -lt 6144 ]; echo $?)" \
    "the image grew by $((after_kb - before_kb)) KiB: the trimmed 8 MiB stayed allocated"
  check write:fsck-clean "$(e2fsck -fn "$img" >"$DIR/write.fsck" 2>&1; echo $?)" "$(tail -n 2 "$DIR/write.fsck" | tr '\n' ' ')"
  if [ -f "$DIR/snapshot.status" ]; then
    common_checks snapshot 512
    check snapshot:guest-wrote "$([ "$(disk_value snapshot wrote)" = "$WRITTEN" ]; echo $?)" "'$(disk_value snapshot wrote)'"
    check snapshot:image-unchanged "$([ "$(image_sum "$simg")" = "$snap_before" ]; echo $?)" "the image changed"
  fi
  boot read vmlinuz 1 "nestor.disk=read xen_no_vector_callback" -drive "file=$img,if=xen"
  if selected readonly || [ ${#WANT[@]} -eq 0 ]; then
    rimg=$DIR/readonly.img
    make_image "$rimg" 4096
    ro_before=$(image_sum "$rimg")
    boot readonly vmlinuz 1 "nestor.disk=readonly nestor.rootro=1 xen_no_vector_callback noapic" \
      -drive "file=$rimg,if=none,id=d,readonly=on" -device "xen-disk,drive=d,vdev=xvda"
  fi
  wait
  common_checks read 512
  # an HVM guest unplugs the emulated disks and NICs (none here) before it uses PV ones
  check read:unplug "$(grep -q 'the guest unplugs emulated IDE disks, NICs' "$DIR/read.err"; echo $?)" \
    "no unplug request through the platform device's port"
  check read:file-read-back "$([ "$(disk_value read read)" = "$WRITTEN" ]; echo $?)" "'$(disk_value read read)'"
  if [ -f "$DIR/readonly.status" ]; then
    common_checks readonly 512
    check readonly:disk-ro "$([[ "$(disk_value readonly sectors)" == *" ro 1 "* ]]; echo $?)" "$(disk_value readonly sectors)"
    check readonly:file-write-refused "$(grep -q '^disk: file write refused' "$DIR/readonly.log"; echo $?)" "a write succeeded"
    check readonly:device-write-refused "$(grep -q '^disk: device write refused' "$DIR/readonly.log"; echo $?)" "a write succeeded"
    check readonly:image-unchanged "$([ "$(image_sum "$rimg")" = "$ro_before" ]; echo $?)" "the image changed"
  fi
fi

# ---- 4096-byte logical sectors ----
if selected sector4k; then
  kimg=$DIR/sector4k.img
  make_image "$kimg" 4096
  boot sector4k vmlinux 1 "nestor.disk=write" \
    -drive "file=$kimg,if=none,id=d" -device "xen-disk,drive=d,vdev=xvda,logical_block_size=4096"
  wait
  common_checks sector4k 4096
  host=$(debugfs -R "cat /data/written.txt" "$kimg" 2>/dev/null | sha256sum | cut -d' ' -f1)
  check sector4k:host-reads-file "$([ "$host" = "$WRITTEN" ]; echo $?)" "the image's file has checksum $host"
fi

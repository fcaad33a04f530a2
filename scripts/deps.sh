#!/usr/bin/env bash
# Installs the Debian packages nestor's build and tests need.
#   scripts/deps.sh            install what is missing (as root)
#   scripts/deps.sh --ensure   same, but when not root only print the apt-get line
#   scripts/deps.sh --list     print the package list
set -euo pipefail

PKGS=(
  make gcc clang            # compilers: the tree builds warning-free with both
  libzydis-dev              # x86 instruction decoder used by the CPU engine
  libcriterion-dev          # host-side unit tests
  libxen-dev                # Xen's public ABI headers (PVH start_info, ELF notes, hypercalls)
  libzstd-dev               # zstd: saved machines and migration streams are compressed with it
  libssl-dev                # OpenSSL libcrypto: SHA-256 checksums of saved machines, state digests
  libjson-c-dev             # json-c: the QMP machine protocol's JSON
  liburing-dev              # io_uring: the PV disk backend's asynchronous I/O
  libslirp-dev              # libslirp: user networking (-netdev user) for the PV NIC
  e2fsprogs                 # mke2fs -d: the PV disk tests build their ext4 images unprivileged
  gdb                       # the gdb stub's tests drive a real gdb against guests
  libclang-rt-14-dev        # libFuzzer and clang's ASan/UBSan runtimes: the fuzz targets
  acpica-tools              # iasl: the ACPI table tests disassemble nestor's tables
  cpio                      # make linux: packs the initramfs
  xz-utils                  # make linux: unpacks the kernel's vmlinux for PVH boot
  linux-libc-dev            # <linux/kvm.h>: the Linux test's KVM client (tests/linux/kvm_client.c)
  binutils                  # objcopy for guest test kernels
  python3                   # test result collection scripts
  iproute2                  # ip: the PV network test makes a TAP interface
)

# keep only package names (strip the comments above)
mapfile -t PKGS < <(printf '%s\n' "${PKGS[@]}" | awk '{print $1}')

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

case "${1:-}" in
  --list) printf '%s\n' "${PKGS[@]}"; exit 0 ;;
esac

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "nestor: missing packages: ${missing[*]}" >&2
  echo "nestor: run as root: apt-get install -y ${missing[*]}" >&2
  [ "${1:-}" = "--ensure" ] && exit 1
  exit 1
fi

echo "nestor: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

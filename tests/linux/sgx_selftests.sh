#!/usr/bin/env bash
# Linux's own SGX selftests (tools/testing/selftests/sgx) for the sgx-selftests boot of
# tests/linux/run.sh: fetches Debian's kernel source package (linux-source-X.Y, the
# version of the kernel the Linux tests boot) with apt — download and extract only —,
# keeps of its tarball only the selftest, the harness and the headers it includes, and
# builds them with the host's gcc as the selftest's Makefile does (see below for the one
# fix applied):
#   tests/linux/sgx_selftests.sh SRCDIR OUTDIR
# SRCDIR (tests/linux/linux.mk: $(BUILD)/linux/sgx-selftests-src) caches the extracted
# sources: once they are there nothing is fetched again (the 139 MB package is dropped
# after the extraction). OUTDIR gets test_sgx (static, OpenSSL's libcrypto linked in: it
# signs its enclave at run time with its own sign_key) and test_encl.elf, which test_sgx
# loads from its working directory.
set -euo pipefail
src=$1
out=$2
mkdir -p "$src" "$out"
src=$(cd "$src" && pwd)
out=$(cd "$out" && pwd)

if [ ! -f "$src/.extracted" ]; then
  # the source package of the kernel scripts/linux.sh boots: linux-image-6.1.0-N-amd64
  # is built from linux-source-6.1
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  series=$(sed -n 's/^linux-image-\([0-9]*\.[0-9]*\)\..*/\1/p' <<<"$kpkg")
  [ -n "$series" ] || { echo "sgx_selftests.sh: cannot resolve linux-image-amd64 ($kpkg)" >&2; exit 1; }
  pkg=linux-source-$series
  rm -rf "$src/debs" "$src/linux-source-$series"
  mkdir -p "$src/debs"
  (cd "$src/debs" && apt-get download "$pkg" 2>/dev/null) ||
    { apt-get update -qq && (cd "$src/debs" && apt-get download "$pkg"); }
  top=linux-source-$series
  dpkg-deb --fsys-tarfile "$src"/debs/"$pkg"_*.deb | tar -x -O "./usr/src/$top.tar.xz" |
    tar -xJ -C "$src" --wildcards "$top/tools/testing/selftests/sgx/*" \
        "$top/tools/testing/selftests/kselftest.h" "$top/tools/testing/selftests/kselftest_harness.h" \
        "$top/arch/x86/include/asm/sgx.h" "$top/arch/x86/include/asm/enclu.h" \
        "$top/arch/x86/include/uapi/asm/sgx.h" "$top/tools/include/*"
  ls "$src"/debs/"$pkg"_*.deb | sed 's,.*/,,' >"$src/package"
  rm -rf "$src/debs"
  ln -sfn "$top" "$src/linux"
  touch "$src/.extracted"
fi

# Built from a copy of the sources (OUTDIR/src), with one fix of upstream's applied when
# the version lacks it: Linux's "selftests/sgx: Retry the ioctls returned with EAGAIN"
# (v6.2; 6.1's stable releases never took it). SGX_IOC_ENCLAVE_MODIFY_TYPES and
# SGX_IOC_ENCLAVE_REMOVE_PAGES answer EAGAIN, with the count done so far, for a page the
# reclaimer (ksgxd, on another CPU) is writing back at that moment; 6.1's
# unclobbered_vdso_oversubscribed_remove, whose enclave is as big as the EPC so that
# ksgxd runs, takes that for a failure. The fix retries from where the ioctl stopped.
rm -rf "$out/src"
cp -a "$src/linux/." "$out/src"
if ! grep -q 'remove_ioc.length -= remove_ioc.count' "$out/src/tools/testing/selftests/sgx/main.c"; then
  patch -s -p1 -d "$out/src" <<'PATCH'
--- a/tools/testing/selftests/sgx/main.c
+++ b/tools/testing/selftests/sgx/main.c
@@ -392,6 +392,7 @@
 	int ret, errno_save;
 	unsigned long addr;
 	unsigned long i;
+	unsigned long count;
 
 	/*
 	 * Create enclave with additional heap that is as big as all
@@ -454,15 +455,30 @@
 	modt_ioc.length = heap->size;
 	modt_ioc.page_type = SGX_PAGE_TYPE_TRIM;
 
+	count = 0;
 	TH_LOG("Changing type of %zd bytes to trimmed may take a while ...",
 	       heap->size);
-	ret = ioctl(self->encl.fd, SGX_IOC_ENCLAVE_MODIFY_TYPES, &modt_ioc);
-	errno_save = ret == -1 ? errno : 0;
+	do {
+		ret = ioctl(self->encl.fd, SGX_IOC_ENCLAVE_MODIFY_TYPES, &modt_ioc);
+
+		errno_save = ret == -1 ? errno : 0;
+		if (errno_save != EAGAIN)
+			break;
+
+		EXPECT_EQ(modt_ioc.result, 0);
+
+		count += modt_ioc.count;
+		modt_ioc.offset += modt_ioc.count;
+		modt_ioc.length -= modt_ioc.count;
+		modt_ioc.result = 0;
+		modt_ioc.count = 0;
+	} while (modt_ioc.length != 0);
 
 	EXPECT_EQ(ret, 0);
 	EXPECT_EQ(errno_save, 0);
 	EXPECT_EQ(modt_ioc.result, 0);
-	EXPECT_EQ(modt_ioc.count, heap->size);
+	count += modt_ioc.count;
+	EXPECT_EQ(count, heap->size);
 
 	/* EACCEPT all removed pages. */
 	addr = self->encl.encl_base + heap->offset;
@@ -490,15 +506,26 @@
 
 	remove_ioc.offset = heap->offset;
 	remove_ioc.length = heap->size;
-
+	count = 0;
 	TH_LOG("Removing %zd bytes from enclave may take a while ...",
 	       heap->size);
-	ret = ioctl(self->encl.fd, SGX_IOC_ENCLAVE_REMOVE_PAGES, &remove_ioc);
-	errno_save = ret == -1 ? errno : 0;
+	do {
+		ret = ioctl(self->encl.fd, SGX_IOC_ENCLAVE_REMOVE_PAGES, &remove_ioc);
+
+		errno_save = ret == -1 ? errno : 0;
+		if (errno_save != EAGAIN)
+			break;
+
+		count += remove_ioc.count;
+		remove_ioc.offset += remove_ioc.count;
+		remove_ioc.length -= remove_ioc.count;
+		remove_ioc.count = 0;
+	} while (remove_ioc.length != 0);
 
 	EXPECT_EQ(ret, 0);
 	EXPECT_EQ(errno_save, 0);
-	EXPECT_EQ(remove_ioc.count, heap->size);
+	count += remove_ioc.count;
+	EXPECT_EQ(count, heap->size);
 }
 
 TEST_F(enclave, clobbered_vdso)
PATCH
fi

# The selftest's Makefile's commands (HOST_CFLAGS, ENCL_CFLAGS), test_sgx made static.
# (Static libcrypto warns that its dlopen and name lookups would want glibc's shared
# libraries at run time: the selftest uses neither.)
sgx=$out/src/tools/testing/selftests/sgx
inc=$out/src/tools/include
# (from the selftest's directory, as make runs there: sign_key.S includes sign_key.pem)
cd "$sgx"
gcc -Wall -Werror -g -I"$inc" -fPIC -z noexecstack -static -o "$out/test_sgx.tmp" \
    main.c load.c sigstruct.c call.S sign_key.S -lcrypto 2>"$out/build.log" ||
  { cat "$out/build.log" >&2; echo "sgx_selftests.sh: cannot build test_sgx (gcc, libssl-dev)" >&2; exit 1; }
gcc -Wall -Werror -static -nostdlib -nostartfiles -fPIC -fno-stack-protector -mrdrnd -I"$inc" \
    -T test_encl.lds test_encl.c test_encl_bootstrap.S \
    -o "$out/test_encl.elf" -Wl,--build-id=none 2>>"$out/build.log" ||
  { cat "$out/build.log" >&2; echo "sgx_selftests.sh: cannot build test_encl.elf" >&2; exit 1; }
mv "$out/test_sgx.tmp" "$out/test_sgx"
echo "sgx_selftests.sh: $out/test_sgx and test_encl.elf ($(cat "$src/package")) ready"

# Linux boot tests (tests/linux/run.sh) boot Debian's own kernel and busybox-static,
# which scripts/linux.sh fetches from Debian's package registry with apt (download and
# extract only) into $(BUILD)/linux, with the kernel's uncompressed vmlinux for PVH boot
# and the test initramfs. It runs once; again only when the script changes. When the
# registry cannot be reached, make goes on and run.sh reports the Linux tests as failed.
LINUX_DIR := $(BUILD)/linux

# The KVM client the vmx-smp1 boot runs in the guest (tests/linux/kvm_client.c): static,
# from the host's gcc whatever CC is (it runs in Debian's userland, not against nestor).
KVM_CLIENT := $(BUILD)/tests/linux/kvm_client
$(KVM_CLIENT): tests/linux/kvm_client.c
	@mkdir -p $(dir $@)
	gcc -static -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o $@ $<

# The SGX test of boot sgx-smp2 (tests/linux/sgx_test.c, in $(SGX_TEST_DIR) with its
# enclave): the enclave (tests/linux/sgx_encl.S and sgx_encl.c, freestanding and position
# independent) linked at 0 by sgx_encl.lds into a flat image, whose pages
# tests/linux/sgx_encl.layout lists (and ENCL_BIG's, appended here); tests/sgx/sgx_sign
# measures it and signs it, as a debug
# 64-bit enclave with EXINFO and the size, ISVPRODID and ISVSVN of sgx_encl.h, with a key
# made for the build dir, and prints the MRENCLAVE and MRSIGNER the program expects in the
# enclave's reports.
SGX_TEST_DIR := $(BUILD)/tests/linux/sgx
SGX_ENCL_CFLAGS := -std=c11 -O2 -Wall -Wextra -Werror -ffreestanding -fPIE -fvisibility=hidden \
    -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none -mgeneral-regs-only
SGX_TEST := $(SGX_TEST_DIR)/sgx_test $(SGX_TEST_DIR)/encl.sig

$(SGX_TEST_DIR)/sgx_test: tests/linux/sgx_test.c tests/linux/sgx_encl.h
	@mkdir -p $(dir $@)
	gcc -static -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Itests/linux -pthread -o $@ $<

# (the link keeps its relocations, -q, to show that only the TCS's entry offsets are
# absolute: anything else would be wrong wherever the enclave is loaded)
$(SGX_TEST_DIR)/encl.elf: tests/linux/sgx_encl.S tests/linux/sgx_encl.c tests/linux/sgx_encl.h tests/linux/sgx_encl.lds
	@mkdir -p $(dir $@)
	gcc -c -Itests/linux -o $(SGX_TEST_DIR)/sgx_encl_s.o tests/linux/sgx_encl.S
	gcc $(SGX_ENCL_CFLAGS) -c -o $(SGX_TEST_DIR)/sgx_encl_c.o tests/linux/sgx_encl.c
	ld -T tests/linux/sgx_encl.lds -nostdlib -static -q --build-id=none -z noexecstack \
	    --no-warn-rwx-segments -o $@ $(SGX_TEST_DIR)/sgx_encl_s.o $(SGX_TEST_DIR)/sgx_encl_c.o
	@if readelf -rW $@ | awk '/^Relocation section/ { s = $$3 } \
	      / R_X86_64_(64|32|32S) / && s !~ /rela\.tcs/ { bad = 1 } END { exit !bad }'; then \
	   echo "$@: absolute relocations outside the TCS" >&2; rm -f $@; exit 1; fi

$(SGX_TEST_DIR)/encl.bin: $(SGX_TEST_DIR)/encl.elf
	objcopy -O binary $< $@

# (sgx_encl.h's numbers for the signature: a value of #define NAME)
sgx_encl_define = $(shell sed -n 's/^\#define $(1) \([0-9a-fx]*\).*/\1/p' tests/linux/sgx_encl.h)
$(SGX_TEST_DIR)/encl.sig: $(SGX_TEST_DIR)/encl.bin tests/linux/sgx_encl.layout tests/linux/sgx_encl.h \
                          $(BUILD)/tests/sgx/sgx_sign
	{ cat tests/linux/sgx_encl.layout; \
	  awk -v base=$$(($(call sgx_encl_define,ENCL_BIG))) -v n=$(call sgx_encl_define,ENCL_BIG_PAGES) \
	      'BEGIN { print "# ENCL_BIG"; for (i = 0; i < n; i++) printf "0x%x reg rw 0\n", base + 4096 * i }'; \
	} >$(SGX_TEST_DIR)/encl.layout
	$(BUILD)/tests/sgx/sgx_sign -key $(SGX_TEST_DIR)/key.pem -image $< \
	    -layout $(SGX_TEST_DIR)/encl.layout -out $@.tmp -size $(call sgx_encl_define,ENCL_SIZE) \
	    -attributes 6 -attributemask 6 -xfrm 3 -xfrmmask 3 -miscselect 1 -miscmask 1 \
	    -isvprodid $(call sgx_encl_define,ENCL_ISVPRODID) -isvsvn $(call sgx_encl_define,ENCL_ISVSVN) \
	    -print-mrenclave -print-mrsigner >$(SGX_TEST_DIR)/encl.expect
	mv $@.tmp $@

# Linux's own SGX selftests for boot sgx-selftests-smp2 (tools/testing/selftests/sgx):
# tests/linux/sgx_selftests.sh fetches Debian's kernel source package once (its
# extracted selftest and headers stay in $(SGX_SELFTESTS_SRC)) and builds test_sgx
# (static, with OpenSSL's libcrypto) and test_encl.elf into $(SGX_SELFTESTS_DIR). When the
# registry cannot be reached, make goes on and run.sh reports the selftests as failed.
SGX_SELFTESTS_SRC := $(LINUX_DIR)/sgx-selftests-src
SGX_SELFTESTS_DIR := $(BUILD)/tests/linux/sgx-selftests
$(SGX_SELFTESTS_DIR)/.built: tests/linux/sgx_selftests.sh
	@mkdir -p $(dir $@)
	@if tests/linux/sgx_selftests.sh $(SGX_SELFTESTS_SRC) $(SGX_SELFTESTS_DIR); then touch $@; \
	 else echo "linux.mk: fetching or building Linux's SGX selftests failed: they will fail" >&2; fi

$(LINUX_DIR)/.fetched: scripts/linux.sh tests/linux/perfcount.c tests/linux/memstress.c $(KVM_CLIENT) \
                       $(SGX_TEST) $(SGX_SELFTESTS_DIR)/.built
	@mkdir -p $(LINUX_DIR)
	@if scripts/linux.sh $(LINUX_DIR) $(KVM_CLIENT) $(SGX_TEST_DIR) $(SGX_SELFTESTS_DIR); then touch $@; \
	 else echo "linux.mk: fetching Debian's kernel failed: the Linux tests will fail" >&2; fi

TEST_PROGRAMS += $(LINUX_DIR)/.fetched

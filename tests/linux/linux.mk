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

$(LINUX_DIR)/.fetched: scripts/linux.sh tests/linux/perfcount.c tests/linux/memstress.c $(KVM_CLIENT)
	@mkdir -p $(LINUX_DIR)
	@if scripts/linux.sh $(LINUX_DIR) $(KVM_CLIENT); then touch $@; \
	 else echo "linux.mk: fetching Debian's kernel failed: the Linux tests will fail" >&2; fi

TEST_PROGRAMS += $(LINUX_DIR)/.fetched

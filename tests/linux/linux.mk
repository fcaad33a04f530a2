# Linux boot tests (tests/linux/run.sh) boot Debian's own kernel and busybox-static,
# which scripts/linux.sh fetches from Debian's package registry with apt (download and
# extract only) into $(BUILD)/linux, with the kernel's uncompressed vmlinux for PVH boot
# and the test initramfs. It runs once; again only when the script changes. When the
# registry cannot be reached, make goes on and run.sh reports the Linux tests as failed.
LINUX_DIR := $(BUILD)/linux

$(LINUX_DIR)/.fetched: scripts/linux.sh tests/linux/perfcount.c
	@mkdir -p $(LINUX_DIR)
	@if scripts/linux.sh $(LINUX_DIR); then touch $@; \
	 else echo "linux.mk: fetching Debian's kernel failed: the Linux tests will fail" >&2; fi

TEST_PROGRAMS += $(LINUX_DIR)/.fetched

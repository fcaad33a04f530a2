# nestor build. `make` builds build/nestor; `make check` runs every test; `make sanitize`
# runs the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.

CC      ?= gcc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror -Isrc $(SAN) $(EXTRA_CFLAGS)
LDLIBS  := -lZydis -lZycore -lzstd -lcrypto -ljson-c -luring -lslirp -lm
LDFLAGS := $(SAN)

SRCS    := $(shell find src -name '*.c' | sort)
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
LIBOBJS := $(filter-out $(BUILD)/src/cli/%,$(OBJS))
DEPS_OK := $(BUILD)/.deps-ok

.PHONY: all check sanitize bench run linux clean deps guests
all: $(BUILD)/nestor

# Installs missing Debian packages when root, else says which apt-get line to run.
$(DEPS_OK): scripts/deps.sh
	@mkdir -p $(BUILD)
	@scripts/deps.sh --ensure
	@touch $@

$(BUILD)/%.o: %.c $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# Xen's domctl interface (<xen/domctl.h>, read by src/hv/xen/control.c) pulls in
# <xen/hvm/save.h>, whose structures use anonymous unions, a GNU extension before C11's
# own; its guard refuses strict ISO mode. That one file is built in GNU C11.
$(BUILD)/src/hv/xen/control.o: CFLAGS += -std=gnu11

$(BUILD)/libnestor.a: $(LIBOBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/nestor: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(OBJS:.o=.d)

# ---- tests ----
include tests/tests.mk

check: $(BUILD)/nestor test-programs
	@BUILD=$(BUILD) tests/run.sh

# Same suite; the Linux boots run several times slower under the sanitizers.
sanitize:
	LINUX_TIMEOUT=$${LINUX_TIMEOUT:-3000} $(MAKE) BUILD=build-san SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" OPT=-O1 check

bench: $(BUILD)/nestor guests $(KVM_CLIENT)
	@BUILD=$(BUILD) bench/run.sh

# The demo ends by writing 0 to the debug-exit port: nestor's status 1 is its success.
run: $(BUILD)/nestor guests
	@$(BUILD)/nestor run $(BUILD)/guest/demo.elf; st=$$?; [ $$st -eq 1 ] || exit $$st

# Debian's own kernel and busybox-static, fetched with apt (download and extract only),
# booted to a shell on the serial console. LINUX_KERNEL=vmlinuz boots the bzImage through
# the Linux boot protocol (its decompressor runs in the guest: slower) instead of the
# uncompressed vmlinux through PVH.
LINUX_KERNEL ?= vmlinux
LINUX_SMP ?= 2
linux: $(BUILD)/nestor $(KVM_CLIENT) $(SGX_TEST)
	scripts/linux.sh $(BUILD)/linux $(KVM_CLIENT) $(SGX_TEST_DIR)
	$(BUILD)/nestor run -m 512M -smp $(LINUX_SMP) -kernel $(BUILD)/linux/$(LINUX_KERNEL) \
	    -initrd $(BUILD)/linux/initramfs.cpio.gz -append "console=ttyS0"

deps:
	scripts/deps.sh --ensure

clean:
	rm -rf build build-san

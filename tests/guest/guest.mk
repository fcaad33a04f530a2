# Guest test kernels: multiboot v1 images built with the host gcc.
#   tests/guest/lib/   the runtime, built once per flavour (32-bit and 64-bit)
#   tests/guest/t32/   tests that run in 32-bit protected mode  -> $(BUILD)/guest/NAME.elf
#   tests/guest/t64/   tests that run in 64-bit long mode       -> $(BUILD)/guest/NAME.elf
# 64-bit kernels are linked as ELF64 and converted to ELF32 (objcopy), because multiboot
# loaders (QEMU's -kernel included) take ELF32 only; the runtime's 32-bit entry stub
# switches to long mode itself.

GUEST_DIR := tests/guest
GUEST_OUT := $(BUILD)/guest
GUEST_CC ?= gcc
GUEST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding -nostdlib -fno-pic \
    -fno-pie -fno-stack-protector -mno-red-zone -fno-asynchronous-unwind-tables \
    -fno-tree-loop-distribute-patterns -mgeneral-regs-only -I$(GUEST_DIR)/lib
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=0x1000 \
    -Wl,--no-warn-rwx-segments -Wl,-z,noexecstack

GUEST_LIB_SRCS := $(wildcard $(GUEST_DIR)/lib/*.c) $(GUEST_DIR)/lib/entry.S
GUEST_LIB32 := $(patsubst $(GUEST_DIR)/lib/%,$(GUEST_OUT)/lib32/%.o,$(GUEST_LIB_SRCS))
GUEST_LIB64 := $(patsubst $(GUEST_DIR)/lib/%,$(GUEST_OUT)/lib64/%.o,$(GUEST_LIB_SRCS))

GUEST_T32 := $(patsubst $(GUEST_DIR)/t32/%.c,%,$(wildcard $(GUEST_DIR)/t32/*.c))
GUEST_T64 := $(patsubst $(GUEST_DIR)/t64/%.c,%,$(wildcard $(GUEST_DIR)/t64/*.c))
GUEST_ELFS := $(addprefix $(GUEST_OUT)/,$(addsuffix .elf,$(GUEST_T32) $(GUEST_T64)))

$(GUEST_OUT)/lib32/%.o: $(GUEST_DIR)/lib/%
	@mkdir -p $(dir $@)
	$(GUEST_CC) -m32 $(GUEST_CFLAGS) -MMD -MP -c $< -o $@
$(GUEST_OUT)/lib64/%.o: $(GUEST_DIR)/lib/%
	@mkdir -p $(dir $@)
	$(GUEST_CC) -m64 $(GUEST_CFLAGS) -MMD -MP -c $< -o $@
$(GUEST_OUT)/t32/%.o: $(GUEST_DIR)/t32/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) -m32 $(GUEST_CFLAGS) -MMD -MP -c $< -o $@
$(GUEST_OUT)/t64/%.o: $(GUEST_DIR)/t64/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) -m64 $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

# A test may bring its own linker script next to it (t32/NAME.ld, t64/NAME.ld), e.g. to
# load somewhere else than 1 MiB; else lib/link32.ld or lib/link64.ld.
guest_ld = $(firstword $(wildcard $(GUEST_DIR)/$(1)/$(2).ld) $(GUEST_DIR)/lib/link$(3).ld)

$(addprefix $(GUEST_OUT)/,$(addsuffix .elf,$(GUEST_T32))): $(GUEST_OUT)/%.elf: $(GUEST_OUT)/t32/%.o $(GUEST_LIB32) $(GUEST_DIR)/lib/link32.ld $(wildcard $(GUEST_DIR)/t32/*.ld)
	$(GUEST_CC) -m32 $(GUEST_LDFLAGS) -T $(call guest_ld,t32,$*,32) -o $@ $< $(GUEST_LIB32)

$(GUEST_OUT)/%.elf64: $(GUEST_OUT)/t64/%.o $(GUEST_LIB64) $(GUEST_DIR)/lib/link64.ld $(wildcard $(GUEST_DIR)/t64/*.ld)
	$(GUEST_CC) -m64 $(GUEST_LDFLAGS) -T $(call guest_ld,t64,$*,64) -o $@ $< $(GUEST_LIB64)
$(addprefix $(GUEST_OUT)/,$(addsuffix .elf,$(GUEST_T64))): $(GUEST_OUT)/%.elf: $(GUEST_OUT)/%.elf64
	objcopy -O elf32-i386 $< $@

.PRECIOUS: $(GUEST_OUT)/%.elf64
.SECONDARY: $(GUEST_LIB32) $(GUEST_LIB64) $(GUEST_T32:%=$(GUEST_OUT)/t32/%.o) \
    $(GUEST_T64:%=$(GUEST_OUT)/t64/%.o)
guests: $(GUEST_ELFS)
TEST_PROGRAMS += $(GUEST_ELFS)

-include $(GUEST_LIB32:.o=.d) $(GUEST_LIB64:.o=.d) \
    $(wildcard $(GUEST_OUT)/t32/*.d) $(wildcard $(GUEST_OUT)/t64/*.d)

# The SGX tests' enclave (t64/sgx_encl.S): a flat image measured and signed at build time
# by tests/sgx/sgx_sign with the page list in the source's "layout" lines; the tests
# embed the image, the list, the SIGSTRUCTs and the MRENCLAVE/MRSIGNER the tool printed.
#   encl.sig       key 1, MODE64BIT required, MISCSELECT.EXINFO required, ISVPRODID 0x1234, ISVSVN 7
#   encl_prod.sig  the same, but DEBUG must be 0 (ATTRIBUTEMASK)
#   encl_key2.sig  key 2 (another MRSIGNER)
SGX_GUEST_OUT := $(GUEST_OUT)/sgx
SGX_SIGN := $(BUILD)/tests/sgx/sgx_sign
SGX_SIGN_ARGS = -image $(SGX_GUEST_OUT)/encl.bin -layout $(SGX_GUEST_OUT)/encl.layout -size 0x10000 \
    -attributes 4 -xfrm 3 -xfrmmask 3 -miscselect 1 -miscmask 1 -isvprodid 0x1234 -isvsvn 7 \
    -date 20240229 -print-mrenclave -print-mrsigner
SGX_GUEST_BLOBS := $(addprefix $(SGX_GUEST_OUT)/,encl.bin encl.layout encl.sig encl_prod.sig encl_key2.sig)
$(SGX_GUEST_OUT)/encl.o: $(GUEST_DIR)/t64/sgx_encl.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) -m64 -c $< -o $@
$(SGX_GUEST_OUT)/encl.bin: $(SGX_GUEST_OUT)/encl.o
	objcopy -O binary -j .text $< $@
$(SGX_GUEST_OUT)/encl.layout: $(GUEST_DIR)/t64/sgx_encl.S
	@mkdir -p $(dir $@)
	sed -n 's/^ \* layout //p' $< > $@
# each signature also writes NAME.meas: MRENCLAVE and MRSIGNER in hex, one a line
$(SGX_GUEST_OUT)/encl.sig: $(SGX_GUEST_OUT)/encl.bin $(SGX_GUEST_OUT)/encl.layout $(SGX_SIGN)
	$(SGX_SIGN) -key $(SGX_GUEST_OUT)/key1.pem $(SGX_SIGN_ARGS) -attributemask 4 -out $@ > $(@:.sig=.meas)
$(SGX_GUEST_OUT)/encl_prod.sig: $(SGX_GUEST_OUT)/encl.bin $(SGX_GUEST_OUT)/encl.layout $(SGX_SIGN) $(SGX_GUEST_OUT)/encl.sig
	$(SGX_SIGN) -key $(SGX_GUEST_OUT)/key1.pem $(SGX_SIGN_ARGS) -attributemask 6 -out $@ > $(@:.sig=.meas)
$(SGX_GUEST_OUT)/encl_key2.sig: $(SGX_GUEST_OUT)/encl.bin $(SGX_GUEST_OUT)/encl.layout $(SGX_SIGN)
	$(SGX_SIGN) -key $(SGX_GUEST_OUT)/key2.pem $(SGX_SIGN_ARGS) -attributemask 4 -out $@ > $(@:.sig=.meas)
SGX_GUEST_TESTS := $(patsubst $(GUEST_DIR)/t64/%.c,$(GUEST_OUT)/t64/%.o,$(wildcard $(GUEST_DIR)/t64/sgx_*.c))
$(SGX_GUEST_TESTS): $(SGX_GUEST_BLOBS)
$(SGX_GUEST_TESTS): GUEST_CFLAGS += -DSGX_BLOBS='"$(SGX_GUEST_OUT)"'
# t64/vmx_sgx (VMX with SGX) embeds the enclave too
$(GUEST_OUT)/t64/vmx_sgx.o: $(SGX_GUEST_BLOBS)
$(GUEST_OUT)/t64/vmx_sgx.o: GUEST_CFLAGS += -DSGX_BLOBS='"$(SGX_GUEST_OUT)"'

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

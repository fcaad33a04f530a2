/* PVH boot (Xen's docs/misc/pvh.pandoc): an ELF kernel announces a 32-bit physical entry
 * point in the note XEN_ELFNOTE_PHYS32_ENTRY (owner "Xen") and receives an hvm_start_info
 * (xen/arch-x86/hvm/start_info.h, from libxen-dev) whose address is in EBX.
 *
 * Placement: the kernel's segments where its ELF says; the boot GDT, then start_info, the
 * memory map, the module list and the command line (one block) at the lowest free RAM
 * from BOOT_DATA_LOW; the initrd (module 0) as high as possible below 4 GiB, page-aligned.
 * All addresses are below 4 GiB, as Xen does.
 *
 * Entry state, as the ABI lists it: 32-bit protected mode, paging off, CR0 = PE (ET is
 * read-only 1), CR4 = 0, CS flat 32-bit code, DS/ES/SS flat data, TR a busy 32-bit TSS
 * with base 0 and limit 0x67, EFLAGS.VM = IF = TF = 0, EBX = start_info (other registers
 * zero). See BOOT_ENTRY_PROT32. */
#include <stdlib.h>
#include <string.h>

#include "boot/boot_internal.h"
#include "machine/machine.h"

/* Xen's public headers use the <stdint.h> types without including it (common.h does). */
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/elfnote.h>

int boot_pvh(struct machine *m, const struct boot_image *k, const struct boot_image *initrd,
             const char *cmdline)
{
    if (!elf_is_elf(k))
        return 1;
    u32 desc_len;
    const u8 *desc = elf_find_note(k, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, &desc_len);
    if (!desc)
        return 1;
    u64 entry;
    if (desc_len == 4)
        entry = boot_rd32(desc);
    else if (desc_len == 8)
        entry = boot_rd64(desc);
    else {
        nestor_log("%s: malformed PVH entry note: %u bytes of entry address (4 or 8 expected)",
                   k->path, desc_len);
        return NESTOR_EXIT_USAGE;
    }
    if (entry == 0 || entry >= MEM_4G) {
        nestor_log("%s: PVH entry point 0x%llx is not a 32-bit physical address", k->path,
                   (unsigned long long)entry);
        return NESTOR_EXIT_USAGE;
    }

    struct boot_layout layout;
    boot_layout_init(&layout, m, k->path);
    struct elf_info info;
    struct boot_entry boot;
    if (elf_load_into(&layout, k, &info) || boot_entry_place(&layout, BOOT_ENTRY_PROT32, &boot))
        return NESTOR_EXIT_USAGE;

    u64 initrd_addr = 0;
    if (initrd && boot_layout_alloc(&layout, initrd->size ? initrd->size : 1, BOOT_PAGE,
                                    BOOT_DATA_LOW, MEM_4G, true, "the initrd", &initrd_addr))
        return NESTOR_EXIT_USAGE;

    int nmap = m->mem.ne820, nmods = initrd ? 1 : 0;
    u64 memmap_off = sizeof(struct hvm_start_info);
    u64 modlist_off = memmap_off + (u64)nmap * sizeof(struct hvm_memmap_table_entry);
    u64 cmdline_off = modlist_off + (u64)nmods * sizeof(struct hvm_modlist_entry);
    u64 block_size = cmdline_off + (cmdline ? strlen(cmdline) + 1 : 0);
    u64 block_addr;
    if (boot_layout_alloc(&layout, block_size, 8, BOOT_DATA_LOW, MEM_4G, false,
                          "the PVH start_info", &block_addr))
        return NESTOR_EXIT_USAGE;
    u8 *block = calloc(1, block_size);
    if (!block) {
        nestor_log("%s: out of host memory", k->path);
        return NESTOR_EXIT_USAGE;
    }

#define SI(field) (block + offsetof(struct hvm_start_info, field))
    boot_wr32(SI(magic), XEN_HVM_START_MAGIC_VALUE);
    boot_wr32(SI(version), 1);
    boot_wr32(SI(nr_modules), (u32)nmods);
    boot_wr64(SI(modlist_paddr), nmods ? block_addr + modlist_off : 0);
    boot_wr64(SI(cmdline_paddr), cmdline ? block_addr + cmdline_off : 0);
    boot_wr64(SI(rsdp_paddr), m->acpi_rsdp);
    boot_wr64(SI(memmap_paddr), nmap ? block_addr + memmap_off : 0);
    boot_wr32(SI(memmap_entries), (u32)nmap);
#undef SI
    /* e820 types are the ACPI address range types, as XEN_HVM_MEMMAP_TYPE_* are */
    for (int i = 0; i < nmap; i++) {
        u8 *e = block + memmap_off + (u64)i * sizeof(struct hvm_memmap_table_entry);
        boot_wr64(e + offsetof(struct hvm_memmap_table_entry, addr), m->mem.e820[i].addr);
        boot_wr64(e + offsetof(struct hvm_memmap_table_entry, size), m->mem.e820[i].size);
        boot_wr32(e + offsetof(struct hvm_memmap_table_entry, type), m->mem.e820[i].type);
    }
    if (initrd) {
        if (mem_write(&m->mem, initrd_addr, initrd->data, initrd->size))
            nestor_panic("boot: allocated initrd area not writable");
        u8 *e = block + modlist_off;
        boot_wr64(e + offsetof(struct hvm_modlist_entry, paddr), initrd_addr);
        boot_wr64(e + offsetof(struct hvm_modlist_entry, size), initrd->size);
    }
    if (cmdline)
        memcpy(block + cmdline_off, cmdline, strlen(cmdline) + 1);
    int rc = mem_write(&m->mem, block_addr, block, block_size);
    free(block);
    if (rc)
        nestor_panic("boot: allocated start_info area not writable");

    boot_enter(m, &boot, entry);
    m->cpu[0]->gpr[R_RBX] = block_addr;
    m->booted_pvh = true;
    return 0;
}

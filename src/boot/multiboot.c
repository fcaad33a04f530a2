/* Multiboot v1 (Multiboot Specification 0.6.96).
 *
 * The image is an ELF (ELF32, or ELF64 loaded by the physical addresses of its PT_LOAD
 * segments, a common extension) or anything with the a.out kludge (header flag 16), at
 * any address in RAM (low memory included: kvm-unit-tests' realmode test loads at 0x8000).
 * The information structure, its strings and memory map, and the modules are placed above
 * the kernel image, page-aligned, in e820 RAM below 4 GiB; where there is no room above
 * it, below it in RAM the image does not use. The boot GDT goes to the lowest free page.
 *
 * Machine state on entry (spec section 3.2): EAX = 0x2BADB002, EBX = physical address of
 * the information structure, 32-bit protected mode with paging off, CS a flat 32-bit code
 * segment, DS/ES/FS/GS/SS flat data, EFLAGS.IF = EFLAGS.VM = 0 (see BOOT_ENTRY_PROT32;
 * GDTR is left pointing at the loader's valid boot GDT although the spec leaves it
 * undefined). A20 is always enabled on this machine.
 *
 * As in QEMU, the kernel's command line is "<kernel file> <-append text>" and each
 * module's string is its -initrd element ("file args"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot_internal.h"
#include "machine/machine.h"

#define MB_HEADER_MAGIC 0x1BADB002u
#define MB_BOOTLOADER_MAGIC 0x2BADB002u
#define MB_SEARCH_BYTES 8192

/* Header flags. Bits 0-15 are requirements: a loader that does not know one must fail. */
#define MBH_PAGE_ALIGN BIT(0)   /* modules page-aligned (always done here) */
#define MBH_MEMORY_INFO BIT(1)  /* mem_* fields (always given, with the mmap) */
#define MBH_VIDEO_MODE BIT(2)   /* video mode table: no display, so ignored */
#define MBH_AOUT_KLUDGE BIT(16)
#define MBH_REQUIRED_MASK 0xffffu
#define MBH_KNOWN_REQUIRED (MBH_PAGE_ALIGN | MBH_MEMORY_INFO | MBH_VIDEO_MODE)

/* Header field offsets. */
enum {
    MBH_MAGIC = 0, MBH_FLAGS = 4, MBH_CHECKSUM = 8,
    MBH_HEADER_ADDR = 12, MBH_LOAD_ADDR = 16, MBH_LOAD_END_ADDR = 20, MBH_BSS_END_ADDR = 24,
    MBH_ENTRY_ADDR = 28,
    MBH_SIZE_BASIC = 12, MBH_SIZE_AOUT = 32,
};

/* Information structure offsets and flags. */
enum {
    MBI_FLAGS = 0, MBI_MEM_LOWER = 4, MBI_MEM_UPPER = 8, MBI_CMDLINE = 16,
    MBI_MODS_COUNT = 20, MBI_MODS_ADDR = 24, MBI_MMAP_LENGTH = 44, MBI_MMAP_ADDR = 48,
    MBI_BOOT_LOADER_NAME = 64,
    MBI_SIZE = 116, /* through the framebuffer fields, all zero */
};
#define MBI_HAS_MEM BIT(0)
#define MBI_HAS_CMDLINE BIT(2)
#define MBI_HAS_MODS BIT(3)
#define MBI_HAS_MMAP BIT(6)
#define MBI_HAS_LOADER_NAME BIT(9)

#define MB_MOD_ENTRY_SIZE 16  /* mod_start, mod_end, string, reserved */
#define MB_MMAP_ENTRY_SIZE 24 /* size (=20, not counting itself), base, length, type */
#define MB_LOADER_NAME "nestor"

void multiboot_scan(const struct boot_image *k, struct multiboot_scan *out)
{
    memset(out, 0, sizeof *out);
    size_t window = k->size < MB_SEARCH_BYTES ? k->size : MB_SEARCH_BYTES;
    for (size_t off = 0; off + MBH_SIZE_BASIC <= window; off += 4) {
        const u8 *h = k->data + off;
        if (boot_rd32(h + MBH_MAGIC) != MB_HEADER_MAGIC)
            continue;
        if ((u32)(MB_HEADER_MAGIC + boot_rd32(h + MBH_FLAGS) + boot_rd32(h + MBH_CHECKSUM)) == 0) {
            out->found = true;
            out->offset = off;
            return;
        }
        if (!out->bad_checksum) {
            out->bad_checksum = true;
            out->bad_offset = off;
        }
    }
}

/* Loads the a.out-kludge image described by the header's address fields. */
static int load_aout(struct boot_layout *layout, const struct boot_image *k, const u8 *hdr,
                     size_t hdr_off, u64 *entry, u64 *kernel_end)
{
    u32 header_addr = boot_rd32(hdr + MBH_HEADER_ADDR);
    u32 load_addr = boot_rd32(hdr + MBH_LOAD_ADDR);
    u32 load_end_addr = boot_rd32(hdr + MBH_LOAD_END_ADDR);
    u32 bss_end_addr = boot_rd32(hdr + MBH_BSS_END_ADDR);
    u32 entry_addr = boot_rd32(hdr + MBH_ENTRY_ADDR);
    const char *why = NULL;

    /* The header's file offset and header_addr tie file offsets to physical addresses. */
    if (load_addr > header_addr)
        why = "load_addr is above header_addr";
    else if (header_addr - load_addr > hdr_off)
        why = "load_addr lies before the start of the file";
    if (why)
        goto bad;
    u64 file_off = hdr_off - (header_addr - load_addr);
    u64 load_size;
    if (load_end_addr == 0) {
        load_size = k->size - file_off; /* text and data are the rest of the file */
    } else if (load_end_addr < load_addr) {
        why = "load_end_addr is below load_addr";
        goto bad;
    } else {
        load_size = (u64)load_end_addr - load_addr;
        if (load_size > k->size - file_off) {
            nestor_log("%s: truncated multiboot image: load_end_addr 0x%x needs 0x%llx bytes "
                       "from file offset 0x%llx, the file has 0x%zx", k->path, load_end_addr,
                       (unsigned long long)load_size, (unsigned long long)file_off, k->size);
            return -1;
        }
    }
    u64 load_end = load_addr + load_size, image_end = load_end;
    if (bss_end_addr != 0) {
        if (bss_end_addr < load_end) {
            why = "bss_end_addr is below the end of the loaded data";
            goto bad;
        }
        image_end = bss_end_addr;
    }
    if (image_end == load_addr) {
        why = "the image is empty";
        goto bad;
    }
    if (entry_addr < load_addr || entry_addr >= image_end) {
        why = "entry_addr lies outside the loaded image";
        goto bad;
    }
    if (boot_layout_claim(layout, load_addr, image_end, "multiboot kernel image"))
        return -1;
    struct guest_mem *mem = &layout->m->mem;
    if (mem_write(mem, load_addr, k->data + file_off, load_size) ||
        mem_fill(mem, load_end, 0, image_end - load_end))
        nestor_panic("boot: checked multiboot image not writable");
    *entry = entry_addr;
    *kernel_end = image_end;
    return 0;
bad:
    nestor_log("%s: malformed multiboot a.out kludge header at offset 0x%zx: %s", k->path,
               hdr_off, why);
    return -1;
}

static int load_elf_kernel(struct boot_layout *layout, const struct boot_image *k, u64 *entry,
                           u64 *kernel_end)
{
    if (!elf_is_elf(k)) {
        nestor_log("%s: multiboot image is neither ELF nor marked with the a.out kludge "
                   "(header flag 16)", k->path);
        return -1;
    }
    struct elf_info info;
    if (elf_load_into(layout, k, &info))
        return -1;
    if (info.highest > MEM_4G || info.entry >= MEM_4G) {
        nestor_log("%s: multiboot kernel lies above 4 GiB (entry 0x%llx, end 0x%llx)", k->path,
                   (unsigned long long)info.entry, (unsigned long long)info.highest);
        return -1;
    }
    *entry = info.entry;
    *kernel_end = info.highest;
    return 0;
}

/* Appends a string to the information block, returning its physical address. */
static u32 put_string(u8 *block, u64 block_addr, size_t *pos, const char *a, const char *b)
{
    u32 addr = (u32)(block_addr + *pos);
    size_t la = strlen(a), lb = b ? strlen(b) : 0;
    memcpy(block + *pos, a, la);
    *pos += la;
    if (lb) {
        block[(*pos)++] = ' ';
        memcpy(block + *pos, b, lb);
        *pos += lb;
    }
    block[(*pos)++] = 0;
    return addr;
}

int multiboot_load(struct machine *m, const struct boot_image *k,
                   const struct boot_module *mods, int nmods, const char *cmdline)
{
    struct multiboot_scan scan;
    multiboot_scan(k, &scan);
    if (!scan.found)
        return 1;
    const u8 *hdr = k->data + scan.offset;
    u32 flags = boot_rd32(hdr + MBH_FLAGS);
    u32 unknown = flags & MBH_REQUIRED_MASK & ~MBH_KNOWN_REQUIRED;
    if (unknown) {
        nestor_log("%s: multiboot header requires features nestor does not know (flags 0x%x)",
                   k->path, unknown);
        return NESTOR_EXIT_USAGE;
    }
    bool aout = flags & MBH_AOUT_KLUDGE;
    if (aout && (scan.offset + MBH_SIZE_AOUT > MB_SEARCH_BYTES ||
                 scan.offset + MBH_SIZE_AOUT > k->size)) {
        nestor_log("%s: truncated multiboot header at offset 0x%zx: the a.out kludge fields "
                   "are missing", k->path, scan.offset);
        return NESTOR_EXIT_USAGE;
    }

    struct boot_layout layout;
    boot_layout_init(&layout, m, k->path);
    u64 entry, kernel_end;
    struct boot_entry boot;
    if (aout ? load_aout(&layout, k, hdr, scan.offset, &entry, &kernel_end)
             : load_elf_kernel(&layout, k, &entry, &kernel_end))
        return NESTOR_EXIT_USAGE;
    if (boot_entry_place(&layout, BOOT_ENTRY_PROT32, &boot))
        return NESTOR_EXIT_USAGE;
    u64 lo = boot_align_up(kernel_end, BOOT_PAGE), hi = MEM_4G;

    /* The information block: MBI, memory map, module list, then the strings. */
    int nmmap = m->mem.ne820;
    u64 mmap_off = boot_align_up(MBI_SIZE, 8);
    u64 mods_off = mmap_off + (u64)nmmap * MB_MMAP_ENTRY_SIZE;
    u64 strings_off = mods_off + (u64)nmods * MB_MOD_ENTRY_SIZE;
    const char *kpath = k->path ? k->path : "";
    u64 block_size = strings_off + strlen(kpath) + 1 + sizeof MB_LOADER_NAME;
    if (cmdline)
        block_size += strlen(cmdline) + 1;
    for (int i = 0; i < nmods; i++)
        block_size += strlen(mods[i].string) + 1;
    u64 block_addr;
    if (boot_layout_alloc_prefer(&layout, block_size, BOOT_PAGE, lo, hi,
                                 "the multiboot information", &block_addr))
        return NESTOR_EXIT_USAGE;
    u8 *block = calloc(1, block_size);
    if (!block) {
        nestor_log("%s: out of host memory", k->path);
        return NESTOR_EXIT_USAGE;
    }

    u8 *mbi = block;
    for (int i = 0; i < nmods; i++) {
        const struct boot_image *img = &mods[i].image;
        u64 addr;
        char what[48];
        snprintf(what, sizeof what, "multiboot module %d", i);
        /* an empty module still gets a distinct page: mod_start == mod_end */
        if (boot_layout_alloc_prefer(&layout, img->size ? img->size : 1, BOOT_PAGE, lo, hi,
                                     what, &addr)) {
            free(block);
            return NESTOR_EXIT_USAGE;
        }
        if (mem_write(&m->mem, addr, img->data, img->size))
            nestor_panic("boot: allocated module area not writable");
        u8 *e = block + mods_off + (u64)i * MB_MOD_ENTRY_SIZE;
        boot_wr32(e, (u32)addr);
        boot_wr32(e + 4, (u32)(addr + img->size));
    }

    size_t pos = strings_off;
    boot_wr32(mbi + MBI_CMDLINE,
              put_string(block, block_addr, &pos, kpath, cmdline && *cmdline ? cmdline : NULL));
    boot_wr32(mbi + MBI_BOOT_LOADER_NAME, put_string(block, block_addr, &pos, MB_LOADER_NAME, NULL));
    for (int i = 0; i < nmods; i++)
        boot_wr32(block + mods_off + (u64)i * MB_MOD_ENTRY_SIZE + 8,
                  put_string(block, block_addr, &pos, mods[i].string, NULL));

    for (int i = 0; i < nmmap; i++) {
        u8 *e = block + mmap_off + (u64)i * MB_MMAP_ENTRY_SIZE;
        boot_wr32(e, MB_MMAP_ENTRY_SIZE - 4);
        boot_wr64(e + 4, m->mem.e820[i].addr);
        boot_wr64(e + 12, m->mem.e820[i].size);
        boot_wr32(e + 20, m->mem.e820[i].type);
    }
    boot_wr32(mbi + MBI_MMAP_LENGTH, (u32)nmmap * MB_MMAP_ENTRY_SIZE);
    boot_wr32(mbi + MBI_MMAP_ADDR, (u32)(block_addr + mmap_off));

    /* mem_lower: conventional RAM from 0; mem_upper: RAM from 1 MiB to the first hole. */
    u64 low_end = boot_ram_run_end(m, 0), high_end = boot_ram_run_end(m, MEM_HIGH_START);
    if (low_end > MEM_LOW_END)
        low_end = MEM_LOW_END;
    boot_wr32(mbi + MBI_MEM_LOWER, (u32)(low_end / KiB));
    boot_wr32(mbi + MBI_MEM_UPPER, (u32)((high_end - MEM_HIGH_START) / KiB));

    boot_wr32(mbi + MBI_MODS_COUNT, (u32)nmods);
    boot_wr32(mbi + MBI_MODS_ADDR, (u32)(block_addr + mods_off));
    boot_wr32(mbi + MBI_FLAGS, MBI_HAS_MEM | MBI_HAS_CMDLINE | MBI_HAS_MODS | MBI_HAS_MMAP |
                                   MBI_HAS_LOADER_NAME);

    int rc = mem_write(&m->mem, block_addr, block, block_size);
    free(block);
    if (rc)
        nestor_panic("boot: allocated multiboot information not writable");
    boot_enter(m, &boot, entry);
    m->cpu[0]->gpr[R_RAX] = MB_BOOTLOADER_MAGIC;
    m->cpu[0]->gpr[R_RBX] = block_addr;
    return 0;
}

int boot_multiboot(struct machine *m, const struct boot_image *k, const struct boot_image *initrd,
                   const char *cmdline)
{
    struct boot_module mod = { .string = "" };
    if (initrd)
        mod = (struct boot_module){ .image = *initrd, .string = initrd->path ? initrd->path : "" };
    return multiboot_load(m, k, &mod, initrd ? 1 : 0, cmdline);
}

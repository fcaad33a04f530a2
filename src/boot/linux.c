/* Linux bzImage (x86 boot protocol 2.x, Documentation/arch/x86/boot.rst), entered
 * directly in 32- or 64-bit mode; the real-mode setup code is not run.
 *
 * Which entry:
 *   protocol >= 2.12 with XLF_KERNEL_64: the 64-bit entry at load address + 0x200, in
 *     long mode with [0, 4 GiB) identity-mapped (BOOT_ENTRY_LONG64), RSI = boot_params;
 *   otherwise, protocol >= 2.02: the 32-bit entry (code32_start = load address) in flat
 *     protected mode (BOOT_ENTRY_PROT32), ESI = boot_params, EBX = EBP = EDI = 0;
 *   protocol < 2.02, or a zImage (LOADED_HIGH clear): refused as unsupported.
 * Both entries want a GDT with __BOOT_CS = 0x10 and __BOOT_DS = 0x18, which is the boot
 * GDT, and interrupts off.
 *
 * Placement:
 *   protected-mode kernel    pref_address (0x100000 before 2.10); a relocatable kernel
 *                            that does not fit there goes to the lowest kernel_alignment-
 *                            aligned free RAM from 1 MiB; init_size bytes are reserved
 *   boot GDT, page tables    lowest free RAM from BOOT_DATA_LOW (0x1000-0x7fff usually)
 *   boot_params (zero page)  the next free page (0x8000 usually)
 *   command line             lowest free RAM in [BOOT_DATA_LOW, 0xA0000)
 *   initrd                   highest page-aligned free RAM below initrd_addr_max + 1 */
#include <string.h>

#include "boot/boot_internal.h"
#include "machine/machine.h"

/* Setup header fields: file offsets, and the same offsets in boot_params. */
enum {
    HDR_START = 0x1f1,
    HDR_SETUP_SECTS = 0x1f1,
    HDR_JUMP_LEN = 0x201,     /* the header ends at 0x202 + this byte */
    HDR_MAGIC = 0x202,        /* "HdrS" */
    HDR_VERSION = 0x206,
    HDR_TYPE_OF_LOADER = 0x210,
    HDR_LOADFLAGS = 0x211,
    HDR_CODE32_START = 0x214,
    HDR_RAMDISK_IMAGE = 0x218,
    HDR_RAMDISK_SIZE = 0x21c,
    HDR_HEAP_END_PTR = 0x224,
    HDR_CMD_LINE_PTR = 0x228,
    HDR_INITRD_ADDR_MAX = 0x22c,
    HDR_KERNEL_ALIGNMENT = 0x230,
    HDR_RELOCATABLE = 0x234,
    HDR_XLOADFLAGS = 0x236,
    HDR_CMDLINE_SIZE = 0x238,
    HDR_PREF_ADDRESS = 0x258,
    HDR_INIT_SIZE = 0x260,
};
/* boot_params fields outside the setup header. */
enum {
    BP_ACPI_RSDP_ADDR = 0x070,
    BP_EXT_RAMDISK_IMAGE = 0x0c0,
    BP_EXT_RAMDISK_SIZE = 0x0c4,
    BP_EXT_CMD_LINE_PTR = 0x0c8,
    BP_E820_ENTRIES = 0x1e8,
    BP_E820_TABLE = 0x2d0,
    BP_E820_MAX = 128,
    BP_E820_ENTRY_SIZE = 20,
    BP_SIZE = 0x1000,
};

#define LOADED_HIGH BIT(0)
#define CAN_USE_HEAP BIT(7)
#define XLF_KERNEL_64 BIT(0)
#define LOADER_UNDEFINED 0xff
#define HEAP_END_PTR 0xfe00       /* as QEMU: heap up to the end of the setup segment */
#define OLD_INITRD_ADDR_MAX 0x37ffffff
#define OLD_CMDLINE_SIZE 255
#define OLD_KERNEL_ADDR 0x100000
#define KERNEL_ENTRY64_OFFSET 0x200

#define PROTO(major, minor) ((major) << 8 | (minor))

/* The header must reach the last field this loader reads for the version it claims. */
static const struct {
    u16 version;
    u16 end;
} header_ends[] = {
    { PROTO(2, 2), HDR_CMD_LINE_PTR + 4 },
    { PROTO(2, 3), HDR_INITRD_ADDR_MAX + 4 },
    { PROTO(2, 5), HDR_RELOCATABLE + 1 },
    { PROTO(2, 6), HDR_CMDLINE_SIZE + 4 },
    { PROTO(2, 10), HDR_INIT_SIZE + 4 },
};

int boot_linux(struct machine *m, const struct boot_image *k, const struct boot_image *initrd,
               const char *cmdline)
{
    const u8 *d = k->data;
    if (k->size < HDR_MAGIC + 4 || memcmp(d + HDR_MAGIC, "HdrS", 4) != 0)
        return 1;
    const char *path = k->path;
    size_t hdr_end = HDR_MAGIC + d[HDR_JUMP_LEN];
    if (k->size < HDR_VERSION + 2 || k->size < hdr_end) {
        nestor_log("%s: truncated Linux bzImage: the setup header ends at 0x%zx, the file has "
                   "0x%zx bytes", path, hdr_end, k->size);
        return NESTOR_EXIT_USAGE;
    }
    u16 version = boot_rd16(d + HDR_VERSION);
    if (version < PROTO(2, 2)) {
        nestor_log("%s: Linux boot protocol %u.%02u is not supported (2.02 or later needed)",
                   path, version >> 8, version & 0xff);
        return NESTOR_EXIT_USAGE;
    }
    for (size_t i = 0; i < ARRAY_SIZE(header_ends); i++) {
        if (version >= header_ends[i].version && hdr_end < header_ends[i].end) {
            nestor_log("%s: malformed Linux bzImage: protocol %u.%02u header is only 0x%zx bytes "
                       "long", path, version >> 8, version & 0xff, hdr_end - HDR_START);
            return NESTOR_EXIT_USAGE;
        }
    }
    u8 loadflags = d[HDR_LOADFLAGS];
    if (!(loadflags & LOADED_HIGH)) {
        nestor_log("%s: zImage kernels (loaded below 1 MiB) are not supported", path);
        return NESTOR_EXIT_USAGE;
    }
    unsigned setup_sects = d[HDR_SETUP_SECTS] ? d[HDR_SETUP_SECTS] : 4;
    size_t setup_size = (setup_sects + 1) * 512;
    if (setup_size < hdr_end || setup_size >= k->size) {
        nestor_log("%s: truncated Linux bzImage: %u setup sectors leave no protected-mode "
                   "kernel in 0x%zx bytes", path, setup_sects, k->size);
        return NESTOR_EXIT_USAGE;
    }
    bool long64 = version >= PROTO(2, 12) && (boot_rd16(d + HDR_XLOADFLAGS) & XLF_KERNEL_64);

    /* command line */
    const char *cmd = cmdline ? cmdline : "";
    u64 cmd_max = version >= PROTO(2, 6) ? boot_rd32(d + HDR_CMDLINE_SIZE) : OLD_CMDLINE_SIZE;
    if (strlen(cmd) > cmd_max) {
        nestor_log("%s: the command line is %zu bytes, the kernel accepts at most %llu", path,
                   strlen(cmd), (unsigned long long)cmd_max);
        return NESTOR_EXIT_USAGE;
    }

    /* protected-mode kernel */
    struct boot_layout layout;
    boot_layout_init(&layout, m, path);
    u64 kernel_size = k->size - setup_size, need = kernel_size;
    if (version >= PROTO(2, 10) && boot_rd32(d + HDR_INIT_SIZE) > need)
        need = boot_rd32(d + HDR_INIT_SIZE);
    u64 load = version >= PROTO(2, 10) ? boot_rd64(d + HDR_PREF_ADDRESS) : OLD_KERNEL_ADDR;
    bool relocatable = version >= PROTO(2, 5) && d[HDR_RELOCATABLE];
    if (relocatable) {
        u64 align = boot_rd32(d + HDR_KERNEL_ALIGNMENT);
        if (align < BOOT_PAGE || (align & (align - 1))) {
            nestor_log("%s: malformed Linux bzImage: kernel_alignment 0x%llx is not a power of "
                       "two of at least 4 KiB", path, (unsigned long long)align);
            return NESTOR_EXIT_USAGE;
        }
        u64 at;
        if (!boot_layout_find(&layout, need, align, load, MEM_4G, false, &at) || at != load)
            load = OLD_KERNEL_ADDR;
        if (boot_layout_alloc(&layout, need, align, load, MEM_4G, false, "the Linux kernel", &load))
            return NESTOR_EXIT_USAGE;
    } else {
        u64 end;
        if (!boot_add(load, need, &end) || end > MEM_4G) {
            nestor_log("%s: the Linux kernel (0x%llx bytes at 0x%llx) does not fit below 4 GiB",
                       path, (unsigned long long)need, (unsigned long long)load);
            return NESTOR_EXIT_USAGE;
        }
        if (boot_layout_claim(&layout, load, end, "the Linux kernel"))
            return NESTOR_EXIT_USAGE;
    }

    struct boot_entry boot;
    u64 bp_addr, cmd_addr, initrd_addr = 0;
    if (boot_entry_place(&layout, long64 ? BOOT_ENTRY_LONG64 : BOOT_ENTRY_PROT32, &boot) ||
        boot_layout_alloc(&layout, BP_SIZE, BOOT_PAGE, BOOT_DATA_LOW, MEM_4G, false,
                          "the boot_params", &bp_addr) ||
        boot_layout_alloc(&layout, strlen(cmd) + 1, 16, BOOT_DATA_LOW, MEM_LOW_END, false,
                          "the command line", &cmd_addr))
        return NESTOR_EXIT_USAGE;
    if (initrd) {
        u64 max = version >= PROTO(2, 3) ? boot_rd32(d + HDR_INITRD_ADDR_MAX) : OLD_INITRD_ADDR_MAX;
        u64 hi = max + 1 < MEM_4G ? max + 1 : MEM_4G;
        if (boot_layout_alloc(&layout, initrd->size ? initrd->size : 1, BOOT_PAGE, BOOT_DATA_LOW,
                              hi, true, "the initrd", &initrd_addr))
            return NESTOR_EXIT_USAGE;
    }

    /* boot_params: zero, then the kernel's own setup header, then what the loader fills */
    u8 bp[BP_SIZE];
    memset(bp, 0, sizeof bp);
    memcpy(bp + HDR_START, d + HDR_START, hdr_end - HDR_START);
    bp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;
    bp[HDR_LOADFLAGS] = loadflags | CAN_USE_HEAP;
    boot_wr16(bp + HDR_HEAP_END_PTR, HEAP_END_PTR);
    boot_wr32(bp + HDR_CODE32_START, (u32)load);
    boot_wr32(bp + HDR_CMD_LINE_PTR, (u32)cmd_addr);
    boot_wr32(bp + BP_EXT_CMD_LINE_PTR, (u32)(cmd_addr >> 32));
    if (initrd) {
        boot_wr32(bp + HDR_RAMDISK_IMAGE, (u32)initrd_addr);
        boot_wr32(bp + BP_EXT_RAMDISK_IMAGE, (u32)(initrd_addr >> 32));
        boot_wr32(bp + HDR_RAMDISK_SIZE, (u32)initrd->size);
        boot_wr32(bp + BP_EXT_RAMDISK_SIZE, (u32)((u64)initrd->size >> 32));
    }
    int ne820 = m->mem.ne820 < BP_E820_MAX ? m->mem.ne820 : BP_E820_MAX;
    bp[BP_E820_ENTRIES] = (u8)ne820;
    for (int i = 0; i < ne820; i++) {
        u8 *e = bp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;
        boot_wr64(e, m->mem.e820[i].addr);
        boot_wr64(e + 8, m->mem.e820[i].size);
        boot_wr32(e + 16, m->mem.e820[i].type);
    }
    if (version >= PROTO(2, 14))
        boot_wr64(bp + BP_ACPI_RSDP_ADDR, m->acpi_rsdp);

    struct guest_mem *mem = &m->mem;
    if (mem_write(mem, load, d + setup_size, kernel_size) ||
        mem_write(mem, cmd_addr, cmd, strlen(cmd) + 1) ||
        (initrd && mem_write(mem, initrd_addr, initrd->data, initrd->size)))
        nestor_panic("boot: allocated Linux boot areas not writable");
    if (mem_write(mem, bp_addr, bp, sizeof bp))
        nestor_panic("boot: allocated boot_params not writable");
    boot_enter(m, &boot, long64 ? load + KERNEL_ENTRY64_OFFSET : load);
    m->cpu[0]->gpr[R_RSI] = bp_addr;
    return 0;
}

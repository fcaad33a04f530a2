/* Internals shared by the loaders of src/boot/: the placement of the kernel and of the
 * loader's own boot data in guest RAM, and the entry state of the boot vCPU.
 *
 * Nothing in low memory is fixed. A kernel may load anywhere in RAM (as QEMU's loaders
 * allow, test kernels load at 0x8000 and below); the loader first claims what the image
 * needs (segments, bss, modules the protocol places at given addresses), then puts its own
 * structures (boot GDT, identity page tables, information blocks, command lines) in RAM
 * that is still free: from BOOT_DATA_LOW up where the protocol has no other preference,
 * so that with a kernel at 1 MiB they sit where they always did (GDT 0x1000, page tables
 * 0x2000-0x7fff, Linux boot_params 0x8000). Page 0 is never used for boot data: it holds
 * the real-mode IVT and BDA, and the boot protocols read address 0 as "absent".
 * An image that needs what is not RAM (the EBDA, the VGA window, the BIOS area with the
 * ACPI tables, the PCI hole, beyond -m) or overlaps itself is refused with a message. */
#ifndef NESTOR_BOOT_BOOT_INTERNAL_H
#define NESTOR_BOOT_BOOT_INTERNAL_H

#include "boot/boot.h"

#define BOOT_DATA_LOW 0x1000ull

#define BOOT_PAGE 0x1000ull

/* Selectors of the boot GDT; 0x10/0x18 are Linux's __BOOT_CS/__BOOT_DS (and QEMU's). */
#define BOOT_SEL_CODE 0x10
#define BOOT_SEL_DATA 0x18
#define BOOT_SEL_TSS 0x20

/* How the boot vCPU enters the kernel. */
enum boot_entry_mode {
    /* 32-bit protected mode, paging off: CR0 = PE|ET, CR4 = 0, EFER = 0, CS = 0x10 flat
     * 32-bit code, DS/ES/FS/GS/SS = 0x18 flat data, TR = 0x20 busy 32-bit TSS (base 0,
     * limit 0x67), GDTR = boot GDT, EFLAGS = 0x2 (IF, TF, VM clear), all GPRs zero. */
    BOOT_ENTRY_PROT32,
    /* 64-bit long mode with [0, 4 GiB) identity-mapped by 2 MiB pages: CR0 = PE|ET|PG,
     * CR4 = PAE, EFER = LME|LMA, CR3 = BOOT_PML4_ADDR, CS = 0x10 64-bit code, the rest
     * as for BOOT_ENTRY_PROT32. */
    BOOT_ENTRY_LONG64,
};

struct boot_layout;

/* Where the entry structures of a mode live: the boot GDT (one page) and, for long mode,
 * six pages of identity-map tables (PML4, PDPT, four page directories). */
struct boot_entry {
    enum boot_entry_mode mode;
    u64 gdt;
    u64 tables;
};
#define BOOT_TABLE_PAGES 6

/* Reserves the entry structures of `mode` in free RAM below 4 GiB, lowest first from
 * BOOT_DATA_LOW. Loaders call it right after claiming the image. 0, or -1 with a message. */
int boot_entry_place(struct boot_layout *l, enum boot_entry_mode mode, struct boot_entry *e);
/* Writes the boot GDT (and, for long mode, the identity page tables) placed by
 * boot_entry_place() and puts the BSP (m->cpu[0]) in the entry state above with
 * RIP = rip. The caller then sets the registers its protocol passes values in. */
void boot_enter(struct machine *m, const struct boot_entry *e, u64 rip);

/* ---- placement of boot data ---- */
struct boot_range {
    u64 start, end; /* [start, end) */
    char what[40];  /* named in overlap messages */
};

#define BOOT_LAYOUT_MAX 64

/* Physical ranges already taken (RSDP, kernel, modules, boot data...). New data is
 * placed in e820 RAM that is not taken. */
struct boot_layout {
    struct machine *m;
    const char *path; /* image named in messages */
    struct boot_range used[BOOT_LAYOUT_MAX];
    int nused;
};

/* Starts a layout with the RSDP taken. */
void boot_layout_init(struct boot_layout *l, struct machine *m, const char *path);
/* Marks [start, end) taken (start < end). Returns 0, or -1 with a message naming `what`
 * when the range is not usable RAM or overlaps something already taken. */
int boot_layout_claim(struct boot_layout *l, u64 start, u64 end, const char *what);
/* Like boot_layout_alloc() but only looks: true and *out if there is room; no message. */
bool boot_layout_find(const struct boot_layout *l, u64 size, u64 align, u64 lo, u64 hi,
                      bool highest, u64 *out);
/* Finds `size` bytes aligned to `align` (a power of two) inside [lo, hi), the lowest or
 * the highest such place, claims it and returns its address in *out. Returns 0, or -1
 * with a message naming `what`. */
int boot_layout_alloc(struct boot_layout *l, u64 size, u64 align, u64 lo, u64 hi,
                      bool highest, const char *what, u64 *out);
/* Lowest place in [prefer_lo, hi), else lowest in [BOOT_DATA_LOW, hi): for data a protocol
 * would rather see above the kernel, but which may go below it when there is no room. */
int boot_layout_alloc_prefer(struct boot_layout *l, u64 size, u64 align, u64 prefer_lo, u64 hi,
                             const char *what, u64 *out);

/* True if [start, start+size) is covered by e820 RAM entries and is guest RAM. */
bool boot_is_usable_ram(struct machine *m, u64 start, u64 size);
/* End of the run of e820 RAM that contains `start` (start itself if none). */
u64 boot_ram_run_end(struct machine *m, u64 start);

/* Checked arithmetic: false on overflow. */
static inline bool boot_add(u64 a, u64 b, u64 *sum) { return !__builtin_add_overflow(a, b, sum); }
static inline u64 boot_align_up(u64 v, u64 align) { return (v + align - 1) & ~(align - 1); }
static inline u64 boot_align_down(u64 v, u64 align) { return v & ~(align - 1); }

/* Little-endian fields of an image (callers bounds-check first). */
static inline u16 boot_rd16(const u8 *p) { return (u16)(p[0] | p[1] << 8); }
static inline u32 boot_rd32(const u8 *p) { return (u32)boot_rd16(p) | (u32)boot_rd16(p + 2) << 16; }
static inline u64 boot_rd64(const u8 *p) { return (u64)boot_rd32(p) | (u64)boot_rd32(p + 4) << 32; }
static inline void boot_wr16(u8 *p, u16 v) { p[0] = (u8)v; p[1] = (u8)(v >> 8); }
static inline void boot_wr32(u8 *p, u32 v) { boot_wr16(p, (u16)v); boot_wr16(p + 2, (u16)(v >> 16)); }
static inline void boot_wr64(u8 *p, u64 v) { boot_wr32(p, (u32)v); boot_wr32(p + 4, (u32)(v >> 32)); }

/* elf_load() that claims the segments in `layout` (so that later boot data avoids them
 * and they avoid what the layout already holds). 0, or -1 with a message. */
int elf_load_into(struct boot_layout *layout, const struct boot_image *k, struct elf_info *out);

/* ---- multiboot ---- */
/* One multiboot module: its contents and the string the kernel sees for it. */
struct boot_module {
    struct boot_image image;
    const char *string;
};

/* Result of scanning the first 8 KiB of an image for a multiboot v1 header. */
struct multiboot_scan {
    bool found;            /* magic with a valid checksum */
    size_t offset;         /* of the valid header */
    bool bad_checksum;     /* a magic was seen, but no valid checksum anywhere */
    size_t bad_offset;     /* of the first such magic */
};
void multiboot_scan(const struct boot_image *k, struct multiboot_scan *out);

/* Loads a multiboot kernel with any number of modules. Returns like boot_multiboot(). */
int multiboot_load(struct machine *m, const struct boot_image *k,
                   const struct boot_module *mods, int nmods, const char *cmdline);

#endif

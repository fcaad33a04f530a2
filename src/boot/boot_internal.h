/* Internals shared by the loaders of src/boot/: the loader's fixed low-memory area, the
 * placement of boot data in guest RAM, and the entry state of the boot vCPU.
 *
 * Low-memory layout owned by the loader (identical for every format):
 *   [0x0000, 0x1000)  left alone (real-mode IVT and BIOS data area); keeping it free also
 *                     means no boot structure ever sits at physical address 0, which the
 *                     boot protocols use to mean "absent"
 *   0x1000            boot GDT: 0x10 code (32- or 64-bit), 0x18 flat data, 0x20 32-bit TSS
 *   0x2000            PML4 of the identity map (64-bit entries only)
 *   0x3000            PDPT
 *   0x4000-0x7fff     four page directories of 2 MiB pages: identity map of [0, 4 GiB)
 *   0x8000            Linux boot_params ("zero page")
 *   0x9000            end of the loader's area; boot data that floats (command lines,
 *                     information structures) is placed from here or above the kernel.
 * An image that wants to load into [0, BOOT_AREA_END) is refused with a message. */
#ifndef NESTOR_BOOT_BOOT_INTERNAL_H
#define NESTOR_BOOT_BOOT_INTERNAL_H

#include "boot/boot.h"

#define BOOT_GDT_ADDR 0x1000ull
#define BOOT_PML4_ADDR 0x2000ull
#define BOOT_PDPT_ADDR 0x3000ull
#define BOOT_PD_ADDR 0x4000ull
#define BOOT_ZERO_PAGE_ADDR 0x8000ull
#define BOOT_AREA_END 0x9000ull

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

/* Writes the boot GDT (and, for long mode, the identity page tables) and puts the BSP
 * (m->cpu[0]) in the entry state above with RIP = entry. The caller then sets the
 * registers its protocol passes values in. Returns 0, or -1 with a message. */
int boot_enter(struct machine *m, enum boot_entry_mode mode, u64 entry, const char *path);

/* ---- placement of boot data ---- */
struct boot_range {
    u64 start, end; /* [start, end) */
    char what[40];  /* named in overlap messages */
};

#define BOOT_LAYOUT_MAX 64

/* Physical ranges already taken (loader area, RSDP, kernel, modules...). New data is
 * placed in e820 RAM that is not taken. */
struct boot_layout {
    struct machine *m;
    const char *path; /* image named in messages */
    struct boot_range used[BOOT_LAYOUT_MAX];
    int nused;
};

/* Starts a layout with the loader's low area and the RSDP taken. */
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

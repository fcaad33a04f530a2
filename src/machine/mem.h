/* Guest physical memory: RAM laid out as a PC, reached only through bounds-checked
 * accessors. A guest physical address that is not RAM never reaches host memory. */
#ifndef NESTOR_MACHINE_MEM_H
#define NESTOR_MACHINE_MEM_H

#include "common.h"

/* PC layout constants. */
#define MEM_LOW_END 0xA0000ull        /* conventional RAM: [0, 640K) */
#define MEM_BIOS_START 0xE0000ull     /* BIOS area (ROM-like RAM holding ACPI RSDP etc.) */
#define MEM_HIGH_START 0x100000ull    /* RAM from 1M */
#define MEM_PCI_HOLE_START 0xC0000000ull /* PCI hole [3G, 4G) */
#define MEM_4G 0x100000000ull

enum mem_region_kind { MEM_RAM, MEM_ROM };

struct mem_region {
    u64 gpa;
    u64 size;
    u8 *host;
    enum mem_region_kind kind;
    u32 *page_gen; /* one code generation word per 4K page, see mem_page_gen() */
};

/* E820 types, as in the ACPI specification. */
enum { E820_RAM = 1, E820_RESERVED = 2, E820_ACPI = 3, E820_NVS = 4 };

struct e820_entry {
    u64 addr;
    u64 size;
    u32 type;
};

#define MEM_MAX_REGIONS 8
#define MEM_MAX_OVERLAYS 160
#define MEM_MAX_E820 16
#define MEM_MAX_WATCHERS 64

struct guest_mem {
    u64 ram_size;                 /* bytes of RAM the user asked for (-m) */
    struct mem_region region[MEM_MAX_REGIONS];
    int nregions;
    /* Pages a hypervisor interface maps into the guest-physical space (Xen's grant
     * frames): each a 4 KiB region of its own memory, found before RAM (it replaces what
     * was there) and wherever it is placed, RAM or not; [overlay_lo, overlay_hi] bounds
     * them so that other lookups skip the list. */
    struct mem_region overlay[MEM_MAX_OVERLAYS];
    int noverlay;
    u64 overlay_lo, overlay_hi;
    struct e820_entry e820[MEM_MAX_E820];
    int ne820;
    /* Who must hear when a page starts holding decoded code (vCPU TLBs drop their
     * write permission for it so the next write is seen). */
    void (*code_watch[MEM_MAX_WATCHERS])(void *opaque, u64 gpa_page);
    void *code_watch_opaque[MEM_MAX_WATCHERS];
    int ncode_watch;
};

/* Code generations. Every RAM page has a word: bit 0 set = some decoder cached code from
 * the page; the rest counts writes that happened while code was cached. A decoded
 * instruction stays valid while its page's word is unchanged. Writers that bypass the
 * vCPU TLB (mem_write, mem_fill) bump it themselves; the TLB withholds direct write
 * access from pages with bit 0 set, so the first guest write goes through
 * mem_code_write(). */
#define PAGE_GEN_CODE 1u
u32 *mem_page_gen(struct guest_mem *m, u64 gpa);
/* A write hit the page: invalidate the code decoded from it. */
static inline void mem_code_write(u32 *gen)
{
    if (*gen & PAGE_GEN_CODE)
        *gen = (*gen + 2) & ~PAGE_GEN_CODE;
}
/* A decoder caches code from the page: mark it and tell the watchers. */
void mem_code_mark(struct guest_mem *m, u64 gpa);
void mem_add_code_watcher(struct guest_mem *m, void (*fn)(void *opaque, u64 gpa_page), void *opaque);

/* Lays out ram_size bytes of RAM as a PC and builds the e820 map. Returns 0 or -1 with
 * a message on stderr (size too small or too large for the host). */
int mem_init(struct guest_mem *m, u64 ram_size);
/* The end of the RAM mem_init lays out for ram_size bytes: RAM beyond the PCI hole
 * continues at 4G. */
u64 mem_ram_end(u64 ram_size);
void mem_destroy(struct guest_mem *m);

/* Host pointer for [gpa, gpa+len) if the whole range lies in one RAM/ROM region, else NULL. */
u8 *mem_ptr(struct guest_mem *m, u64 gpa, u64 len);
/* True if [gpa, gpa+len) is entirely RAM. */
bool mem_is_ram(const struct guest_mem *m, u64 gpa, u64 len);

/* Bounds-checked copies. Return 0, or -1 if any byte is not RAM (nothing is copied then). */
int mem_read(struct guest_mem *m, u64 gpa, void *buf, u64 len);
int mem_write(struct guest_mem *m, u64 gpa, const void *buf, u64 len);
int mem_fill(struct guest_mem *m, u64 gpa, u8 byte, u64 len);

/* Little-endian scalar helpers; they return 0/-1 like mem_read/mem_write. */
int mem_read_u8(struct guest_mem *m, u64 gpa, u8 *v);
int mem_read_u16(struct guest_mem *m, u64 gpa, u16 *v);
int mem_read_u32(struct guest_mem *m, u64 gpa, u32 *v);
int mem_read_u64(struct guest_mem *m, u64 gpa, u64 *v);
int mem_write_u8(struct guest_mem *m, u64 gpa, u8 v);
int mem_write_u16(struct guest_mem *m, u64 gpa, u16 v);
int mem_write_u32(struct guest_mem *m, u64 gpa, u32 v);
int mem_write_u64(struct guest_mem *m, u64 gpa, u64 v);

/* Maps the 4 KiB page host (with its code-generation word *gen) at gpa, replacing what
 * was there (RAM or nothing), or moves it there if host is mapped already; unmap takes it
 * away. The caller flushes the vCPUs' TLBs. 0, or -1 when gpa is not page-aligned or the
 * list is full. */
int mem_overlay_map(struct guest_mem *m, u64 gpa, u8 *host, u32 *gen);
void mem_overlay_unmap(struct guest_mem *m, u8 *host);

/* Marks [addr, addr+size) with an e820 type (used for ACPI tables, reserved areas). */
void mem_e820_mark(struct guest_mem *m, u64 addr, u64 size, u32 type);

#endif

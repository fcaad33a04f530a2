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
#define MEM_MAX_E820 16
#define MEM_MAX_WATCHERS 64

/* The guest-physical map where it differs from the RAM layout, page by page (Xen's p2m
 * for an HVM domain, whose guest gives pages back and moves them): a frame of a region
 * that holds nothing (absent: its accesses go to the MMIO path, where nothing answers),
 * or any frame holding a page other than the region's own (a RAM page moved there or
 * populated outside the regions, or a page of a hypervisor interface, e.g. Xen's
 * shared_info and grant frames). A sparse open-addressed table by frame number. */
enum mem_frame_kind { MEM_FRAME_NONE, MEM_FRAME_RAM, MEM_FRAME_FOREIGN };
struct mem_frame {
    u64 gfn;          /* MEM_NO_GFN: a free slot */
    u8 *host;         /* the page, or NULL: absent */
    u32 *gen;         /* its code-generation word */
    u64 from;         /* a region page moved here: the frame it belongs to, else MEM_NO_GFN */
    u8 kind;          /* enum mem_frame_kind of the page (NONE when absent) */
    bool own;         /* a RAM page guest_mem allocated (not a region's) */
    bool lent;        /* this frame's own region page is in use at another frame */
    bool readonly;    /* a read-only frame (a foreign page placed so: Xen's
                       * p2m_grant_map_ro): reads reach the page, writes do not */
    bool no_hv_copy;  /* the hypervisor interface's own copies of guest memory do not
                       * reach it (Xen's grant mappings: __hvm_copy refuses them) */
};
#define MEM_NO_GFN (~0ull)

struct guest_mem {
    u64 ram_size;                 /* bytes of RAM the user asked for (-m) */
    struct mem_region region[MEM_MAX_REGIONS];
    int nregions;
    struct mem_frame *frame;      /* the frame table: nframe_slots slots, a power of 2 */
    u32 nframe_slots, nframes;
    u64 frame_lo, frame_hi;       /* every entry's gpa lies in [frame_lo, frame_hi] */
    u64 ram_frames;               /* frames holding RAM (Xen's tot_pages, less pages not mapped) */
    u64 max_gfn;                  /* the highest frame that ever held a page */
    /* generation words of pages guest_mem allocated, reused (never freed while the
     * machine lives: a stale decoded block may still compare its pointer) */
    u32 **gen_free;
    u32 ngen_free, gen_free_cap;
    u32 **gen_all;
    u32 ngen_all, gen_all_cap;
    /* pages guest_mem allocated that left the map kept (mem_frame_detach): unmapped
     * when the machine goes */
    u8 **kept;
    u32 **kept_gen;               /* their generation words */
    u32 nkept, kept_cap;
    /* told after every change of the map (the machine flushes every vCPU's TLB) */
    void (*map_changed)(void *opaque);
    void *map_changed_opaque;
    struct e820_entry e820[MEM_MAX_E820];
    int ne820;
    /* Who must hear when a page starts holding decoded code (vCPU TLBs drop their
     * write permission for it so the next write is seen). */
    void (*code_watch[MEM_MAX_WATCHERS])(void *opaque, u64 gpa_page);
    void *code_watch_opaque[MEM_MAX_WATCHERS];
    int ncode_watch;
    /* Dirty logging (live migration): one bit per page of the regions, in order; NULL
     * when off. Every write path marks the pages it writes (mem_write, mem_fill,
     * mem_ptr_write, and the vCPU TLB when it grants a page for writing). */
    u8 *dirty;
    u64 dirty_pages;
    /* the owner of the foreign pages the map holds, which names them for a state file
     * (mem_set_foreign_pages) */
    u64 (*foreign_id)(void *opaque, const u8 *host);
    u8 *(*foreign_page)(void *opaque, u64 id, u32 **gen);
    void *foreign_opaque;
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
/* The same for a page outside RAM with its own generation word (SGX's EPC pages). */
void mem_code_mark_gen(struct guest_mem *m, u64 gpa, u32 *gen);
void mem_add_code_watcher(struct guest_mem *m, void (*fn)(void *opaque, u64 gpa_page), void *opaque);

/* Lays out ram_size bytes of RAM as a PC and builds the e820 map. Returns 0 or -1 with
 * a message on stderr (size too small or too large for the host). */
int mem_init(struct guest_mem *m, u64 ram_size);
/* The end of the RAM mem_init lays out for ram_size bytes: RAM beyond the PCI hole
 * continues at 4G. */
u64 mem_ram_end(u64 ram_size);
void mem_destroy(struct guest_mem *m);

/* The pages of the regions, numbered in region order (0 .. mem_region_pages - 1): the
 * index space of dirty bitmaps and of a saved machine's RAM. mem_region_page gives page
 * idx's host bytes and guest-physical address (NULL past the end). */
u64 mem_region_pages(const struct guest_mem *m);
u8 *mem_region_page(struct guest_mem *m, u64 idx, u64 *gpa);
/* Dirty logging: start (every page clean), stop, and take the pages written since the
 * last take (copied into out, one bit per region page) while clearing them. The caller
 * also makes the vCPUs' TLBs forget write permissions on a take, so that the next write
 * to each page is seen. */
int mem_dirty_log_start(struct guest_mem *m);
void mem_dirty_log_stop(struct guest_mem *m);
void mem_dirty_log_take(struct guest_mem *m, u8 *out);
void mem_mark_dirty_slow(struct guest_mem *m, u64 gpa, u64 len);
static inline void mem_mark_dirty(struct guest_mem *m, u64 gpa, u64 len)
{
    if (unlikely(m->dirty != NULL))
        mem_mark_dirty_slow(m, gpa, len);
}

/* Host pointer for [gpa, gpa+len) if the whole range lies in one RAM/ROM region, else
 * NULL. For reading: a read-only frame's page is returned too. */
u8 *mem_ptr(struct guest_mem *m, u64 gpa, u64 len);
/* The same for writing: NULL also when the page is a read-only frame. */
u8 *mem_ptr_write(struct guest_mem *m, u64 gpa, u64 len);
/* The page holding gpa: host pointer (NULL: not RAM), its code-generation word and
 * whether it is a read-only frame, in one look-up (the vCPU's TLB fill). */
u8 *mem_page(struct guest_mem *m, u64 gpa, u32 **gen, bool *readonly);
/* True if [gpa, gpa+len) is entirely RAM. */
bool mem_is_ram(const struct guest_mem *m, u64 gpa, u64 len);

/* Bounds-checked copies. Return 0, or -1 if any byte is not RAM, or for a write (and
 * fill) lies in a read-only frame (nothing is copied then). */
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

/* ---- the frame map (Xen's physmap operations for a guest that balloons) ---- */
/* What frame gfn holds: MEM_FRAME_RAM (a RAM page), MEM_FRAME_FOREIGN (a hypervisor
 * page: *host says which), or MEM_FRAME_NONE (absent, or outside RAM). */
enum mem_frame_kind mem_frame_at(const struct guest_mem *m, u64 gfn, u8 **host);
/* Frame gfn holds nothing from now on: a RAM page there is given back to the host, a
 * foreign page is only unhooked. Returns what was there (host: a foreign page's). */
enum mem_frame_kind mem_frame_remove(struct guest_mem *m, u64 gfn, u8 **host);
/* The RAM page at frame gfn leaves it (a hole from then on) but is not given back: its
 * bytes stay where they are for whoever holds them (a hypervisor interface that places
 * the page elsewhere as a foreign page: Xen's grant mappings) until mem_destroy, and its
 * region's frame never uses it again. *host and *gen: the page. 0, or -1 (no RAM page
 * there, no host memory for the bookkeeping). */
int mem_frame_detach(struct guest_mem *m, u64 gfn, u8 **host, u32 **gen);
/* Frame gfn (holding nothing: the caller removed it) gets a zeroed RAM page. 0, or -1
 * when something is there or the host has no memory for it. */
int mem_frame_populate(struct guest_mem *m, u64 gfn);
/* The RAM page at from moves to frame to (holding nothing), from then holds nothing.
 * 0, or -1 (nothing at from, something at to, no memory for the table). */
int mem_frame_move(struct guest_mem *m, u64 from, u64 to);
/* The foreign page host (with its code-generation word) is placed at frame gfn (holding
 * nothing). 0 or -1 (something is there, no host memory for the table). */
int mem_frame_place(struct guest_mem *m, u64 gfn, u8 *host, u32 *gen);
/* The same, with protections (MEM_PROT_*): MEM_PROT_READONLY: mem_write, mem_fill and
 * mem_ptr_write refuse the frame, the vCPU's TLB fill refuses a write to it (#GP(0), as
 * Xen answers a write to a read-only grant mapping), reads work. MEM_PROT_NO_HV_COPY:
 * the vCPU reaches it, the hypercall argument copies (cpu_copy_guest) do not. */
#define MEM_PROT_READONLY 1u
#define MEM_PROT_NO_HV_COPY 2u
int mem_frame_place_prot(struct guest_mem *m, u64 gfn, u8 *host, u32 *gen, unsigned prot);
/* Whether frame gfn holds a page read-only */
bool mem_frame_readonly(const struct guest_mem *m, u64 gfn);
/* Whether a hypercall's copy may reach frame gfn (false: MEM_PROT_NO_HV_COPY) */
bool mem_frame_hv_copy_ok(const struct guest_mem *m, u64 gfn);
/* Where the foreign page host is, or MEM_NO_GFN. */
u64 mem_frame_of(const struct guest_mem *m, const u8 *host);
/* Who hears of every change of the map (the machine: every vCPU's TLB is flushed). */
void mem_set_map_listener(struct guest_mem *m, void (*fn)(void *opaque), void *opaque);

/* A hypervisor page placed at gpa the simple way (Xen's grant frames): it leaves the
 * frame where it was (a hole now), and whatever gpa held goes (RAM is freed). unmap takes
 * it out of the map. 0, or -1 when gpa is not page-aligned or out of memory. */
int mem_overlay_map(struct guest_mem *m, u64 gpa, u8 *host, u32 *gen);
void mem_overlay_unmap(struct guest_mem *m, u8 *host);

/* ---- the frame map across save and restore ----
 * A state file names a page the map holds (or a hypervisor interface keeps a pointer
 * to) by an identity that means the same page in another process: MEM_PAGE_REGION |
 * index (a region's page, by mem_region_page's index), MEM_PAGE_OWN | n (the n-th page
 * guest_mem allocated, in a fixed order: those at frames by frame number, then those
 * detached, in the order they left), MEM_PAGE_FOREIGN | id (a page of the hypervisor
 * interface, numbered by its owner). MEM_PAGE_NONE: no page; MEM_PAGE_UNKNOWN: a page
 * nobody can name (a bug: a loader refuses it). */
#define MEM_PAGE_NONE 0ull
#define MEM_PAGE_REGION (1ull << 60)
#define MEM_PAGE_OWN (2ull << 60)
#define MEM_PAGE_FOREIGN (3ull << 60)
#define MEM_PAGE_KIND_MASK (0xfull << 60)
#define MEM_PAGE_UNKNOWN (~0ull)
/* The foreign pages' owner: id_of names a page of its own (MEM_PAGE_UNKNOWN if it is
 * not), page_of finds a page by that name with its generation word (NULL: none). */
void mem_set_foreign_pages(struct guest_mem *m, u64 (*id_of)(void *opaque, const u8 *host),
                           u8 *(*page_of)(void *opaque, u64 id, u32 **gen), void *opaque);
u64 mem_page_id(const struct guest_mem *m, const u8 *host);
/* The page an identity names in this process, with its generation word; NULL for
 * MEM_PAGE_NONE and for a name that names nothing here. */
u8 *mem_page_by_id(struct guest_mem *m, u64 id, u32 **gen);
/* The frame map's description (the frames that differ from the regions' layout, the
 * pages guest_mem allocated with their contents). Registered after the hypervisor
 * interface's sections: its loader rebuilds the map with their pages, and their
 * post_load functions then find the pages by identity. */
struct state_registry;
void mem_state_register(struct guest_mem *m, struct state_registry *r);
/* A saved region page comes back (data NULL: zeroes) into the region's own page at gpa,
 * wherever the map has it now. 0, or -1 when gpa is no region page. */
int mem_region_write_page(struct guest_mem *m, u64 gpa, const u8 *data);
/* A page of the map written through a host pointer behind the accessors (a grant
 * copy): its decoded code is stale and dirty logging sees it. */
void mem_page_written(struct guest_mem *m, const u8 *host, u32 *gen);

/* Marks [addr, addr+size) with an e820 type (used for ACPI tables, reserved areas). */
void mem_e820_mark(struct guest_mem *m, u64 addr, u64 size, u32 type);

#endif

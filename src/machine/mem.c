/* Guest RAM as a PC lays it out, and the only code that turns a guest physical address
 * into a host pointer. */
#include "machine/mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"
#include "machine/state.h"

static int add_region(struct guest_mem *m, u64 gpa, u64 size, enum mem_region_kind kind)
{
    if (m->nregions >= MEM_MAX_REGIONS)
        nestor_panic("too many memory regions");
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        nestor_log("cannot reserve %llu MiB of host memory for the guest",
                   (unsigned long long)(size / MiB));
        return -1;
    }
    void *g = mmap(NULL, size / 4096 * sizeof(u32), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (g == MAP_FAILED) {
        munmap(p, size);
        nestor_log("cannot reserve host memory for the guest's page table");
        return -1;
    }
    m->region[m->nregions++] = (struct mem_region){ gpa, size, p, kind, g };
    return 0;
}

static void add_e820(struct guest_mem *m, u64 addr, u64 size, u32 type)
{
    if (size == 0)
        return;
    if (m->ne820 >= MEM_MAX_E820)
        nestor_panic("e820 map full");
    m->e820[m->ne820++] = (struct e820_entry){ addr, size, type };
}

u64 mem_ram_end(u64 ram_size)
{
    return ram_size > MEM_PCI_HOLE_START ? MEM_4G + (ram_size - MEM_PCI_HOLE_START) : ram_size;
}

int mem_init(struct guest_mem *m, u64 ram_size)
{
    memset(m, 0, sizeof(*m));
    if (ram_size < 2 * MiB) {
        nestor_log("guest RAM of %llu bytes is too small (at least 2M)", (unsigned long long)ram_size);
        return -1;
    }
    if (ram_size > 1024 * GiB) {
        nestor_log("guest RAM of %llu GiB is too large (at most 1T)", (unsigned long long)(ram_size / GiB));
        return -1;
    }
    m->ram_size = ram_size;
    /* Low memory: conventional RAM, then the VGA hole (0xA0000-0xBFFFF, unbacked), then
     * the BIOS area 0xE0000-0xFFFFF (RAM holding ACPI/RSDP, reserved in e820). One host
     * mapping covers [0, 1M) so low-memory pointers are simple; the VGA hole is left out
     * of the region list so it is not RAM for the guest. */
    u64 below4g = ram_size < MEM_PCI_HOLE_START ? ram_size : MEM_PCI_HOLE_START;
    if (add_region(m, 0, MEM_LOW_END, MEM_RAM) < 0)
        return -1;
    if (add_region(m, MEM_BIOS_START, MEM_HIGH_START - MEM_BIOS_START, MEM_RAM) < 0)
        goto fail;
    if (add_region(m, MEM_HIGH_START, below4g - MEM_HIGH_START, MEM_RAM) < 0)
        goto fail;
    if (ram_size > MEM_PCI_HOLE_START &&
        add_region(m, MEM_4G, ram_size - MEM_PCI_HOLE_START, MEM_RAM) < 0)
        goto fail;

    for (int i = 0; i < m->nregions; i++)
        m->ram_frames += m->region[i].size >> 12;
    m->max_gfn = (mem_ram_end(ram_size) >> 12) - 1;
    add_e820(m, 0, 0x9fc00, E820_RAM);
    add_e820(m, 0x9fc00, MEM_LOW_END - 0x9fc00, E820_RESERVED); /* EBDA */
    add_e820(m, MEM_BIOS_START, MEM_HIGH_START - MEM_BIOS_START, E820_RESERVED);
    add_e820(m, MEM_HIGH_START, below4g - MEM_HIGH_START, E820_RAM);
    if (ram_size > MEM_PCI_HOLE_START)
        add_e820(m, MEM_4G, ram_size - MEM_PCI_HOLE_START, E820_RAM);
    return 0;
fail:
    mem_destroy(m);
    return -1;
}

void mem_destroy(struct guest_mem *m)
{
    mem_dirty_log_stop(m);
    for (int i = 0; i < m->nregions; i++) {
        munmap(m->region[i].host, m->region[i].size);
        munmap(m->region[i].page_gen, m->region[i].size / 4096 * sizeof(u32));
    }
    m->nregions = 0;
    for (u32 i = 0; i < m->nframe_slots; i++)
        if (m->frame[i].gfn != MEM_NO_GFN && m->frame[i].own)
            munmap(m->frame[i].host, 4096);
    free(m->frame);
    m->frame = NULL;
    m->nframe_slots = m->nframes = 0;
    for (u32 i = 0; i < m->nkept; i++)
        munmap(m->kept[i], 4096);
    free(m->kept);
    free(m->kept_gen);
    m->kept = NULL;
    m->kept_gen = NULL;
    m->nkept = m->kept_cap = 0;
    for (u32 i = 0; i < m->ngen_all; i++)
        free(m->gen_all[i]);
    free(m->gen_all);
    free(m->gen_free);
    m->gen_all = m->gen_free = NULL;
    m->ngen_all = m->ngen_free = m->gen_all_cap = m->gen_free_cap = 0;
}

/* ---- the frame table ---- */
static u32 slot_of(u64 gfn, u32 nslots)
{
    return (u32)((gfn * 0x9e3779b97f4a7c15ull) >> 32) & (nslots - 1);
}

static struct mem_frame *frame_find(const struct guest_mem *m, u64 gfn)
{
    /* MEM_NO_GFN marks the free slots: a guest's frame number of all-ones (a hypercall
     * argument) must not find one of them */
    if (!m->nframes || gfn > MASK(52 - 12))
        return NULL;
    for (u32 i = slot_of(gfn, m->nframe_slots);; i = (i + 1) & (m->nframe_slots - 1)) {
        struct mem_frame *f = &m->frame[i];
        if (f->gfn == gfn)
            return f;
        if (f->gfn == MEM_NO_GFN)
            return NULL;
    }
}

static int frame_table_grow(struct guest_mem *m)
{
    u32 n = m->nframe_slots ? m->nframe_slots * 2 : 64;
    struct mem_frame *t = malloc(sizeof(*t) * n);
    if (!t)
        return -1;
    for (u32 i = 0; i < n; i++)
        t[i].gfn = MEM_NO_GFN;
    for (u32 i = 0; i < m->nframe_slots; i++) {
        const struct mem_frame *f = &m->frame[i];
        if (f->gfn == MEM_NO_GFN)
            continue;
        u32 j = slot_of(f->gfn, n);
        while (t[j].gfn != MEM_NO_GFN)
            j = (j + 1) & (n - 1);
        t[j] = *f;
    }
    free(m->frame);
    m->frame = t;
    m->nframe_slots = n;
    return 0;
}

/* The entry of gfn, made (absent, not lent) if there is none; NULL when out of memory */
static struct mem_frame *frame_get(struct guest_mem *m, u64 gfn)
{
    struct mem_frame *f = frame_find(m, gfn);
    if (f)
        return f;
    if ((m->nframes + 1) * 2 > m->nframe_slots && frame_table_grow(m) < 0)
        return NULL;
    u32 i = slot_of(gfn, m->nframe_slots);
    while (m->frame[i].gfn != MEM_NO_GFN)
        i = (i + 1) & (m->nframe_slots - 1);
    m->frame[i] = (struct mem_frame){ .gfn = gfn, .from = MEM_NO_GFN, .kind = MEM_FRAME_NONE };
    m->nframes++;
    u64 gpa = gfn << 12;
    if (m->nframes == 1 || gpa < m->frame_lo)
        m->frame_lo = gpa;
    if (m->nframes == 1 || gpa + 4095 > m->frame_hi)
        m->frame_hi = gpa + 4095;
    return &m->frame[i];
}

/* Deletes an entry (backward-shift deletion keeps every probe chain whole) */
static void frame_delete(struct guest_mem *m, struct mem_frame *f)
{
    u32 mask = m->nframe_slots - 1, i = (u32)(f - m->frame), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->frame[j].gfn == MEM_NO_GFN)
            break;
        u32 home = slot_of(m->frame[j].gfn, m->nframe_slots);
        /* the entry at j may move to i if its home is not cyclically in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            m->frame[i] = m->frame[j];
            i = j;
        }
    }
    m->frame[i].gfn = MEM_NO_GFN;
    m->nframes--;
}

static const struct mem_region *region_of(const struct guest_mem *m, u64 gpa)
{
    for (int i = 0; i < m->nregions; i++) {
        const struct mem_region *r = &m->region[i];
        if (gpa - r->gpa < r->size)
            return r;
    }
    return NULL;
}

/* What the guest-physical address gpa reaches: a host pointer, its page's generation
 * word, and how many bytes from gpa on are reached the same way (contiguously). False:
 * nothing (MMIO, a hole). */
struct span {
    u8 *host;
    u32 *gen;
    u64 len;
    bool readonly; /* a read-only frame: writes must not reach host */
};

static bool lookup(const struct guest_mem *m, u64 gpa, struct span *s)
{
    bool near_frames = m->nframes && gpa - m->frame_lo <= m->frame_hi - m->frame_lo;
    if (near_frames) {
        const struct mem_frame *f = frame_find(m, gpa >> 12);
        if (f) {
            if (!f->host)
                return false;
            s->host = f->host + (gpa & 0xfff);
            s->gen = f->gen;
            s->len = 4096 - (gpa & 0xfff);
            s->readonly = f->readonly;
            return true;
        }
    }
    const struct mem_region *r = region_of(m, gpa);
    if (!r)
        return false;
    u64 off = gpa - r->gpa;
    s->host = r->host + off;
    s->gen = &r->page_gen[off >> 12];
    s->len = r->size - off;
    s->readonly = false;
    /* a run of region pages stops where the frame table may have an entry */
    if (near_frames)
        s->len = 4096 - (gpa & 0xfff);
    else if (m->nframes && gpa < m->frame_lo && s->len > m->frame_lo - gpa)
        s->len = m->frame_lo - gpa;
    return true;
}

/* ---- generation words of pages guest_mem allocates ---- */
static u32 *gen_alloc(struct guest_mem *m)
{
    if (m->ngen_free)
        return m->gen_free[--m->ngen_free];
    if (m->ngen_all == m->gen_all_cap) {
        u32 cap = m->gen_all_cap ? m->gen_all_cap * 2 : 64;
        u32 **a = realloc(m->gen_all, sizeof(*a) * cap);
        if (!a)
            return NULL;
        m->gen_all = a;
        m->gen_all_cap = cap;
        /* the free list never holds more than all of them */
        u32 **f = realloc(m->gen_free, sizeof(*f) * cap);
        if (!f)
            return NULL;
        m->gen_free = f;
        m->gen_free_cap = cap;
    }
    u32 *g = calloc(1, sizeof(*g));
    if (g)
        m->gen_all[m->ngen_all++] = g;
    return g;
}

/* A page leaves a frame: code decoded from it there is stale. The word only grows, so a
 * reused one never matches an old block's generation. */
static void gen_retire(u32 *gen)
{
    *gen = (*gen + 2) & ~PAGE_GEN_CODE;
}

static void map_changed(struct guest_mem *m)
{
    if (m->map_changed)
        m->map_changed(m->map_changed_opaque);
}

void mem_set_map_listener(struct guest_mem *m, void (*fn)(void *opaque), void *opaque)
{
    m->map_changed = fn;
    m->map_changed_opaque = opaque;
}

/* A page as the map holds it: a region's own page (region: the frame it belongs to) or
 * another (region MEM_NO_GFN), with its generation word */
struct page_ref {
    u8 *host;
    u32 *gen;
    u64 region;
    u8 kind;
    bool own;
};

static struct page_ref page_at(const struct guest_mem *m, u64 gfn)
{
    const struct mem_frame *f = frame_find(m, gfn);
    if (f)
        return (struct page_ref){ f->host, f->gen, f->from, f->kind, f->own };
    const struct mem_region *r = gfn <= MASK(52 - 12) ? region_of(m, gfn << 12) : NULL;
    if (!r)
        return (struct page_ref){ NULL, NULL, MEM_NO_GFN, MEM_FRAME_NONE, false };
    u64 off = (gfn << 12) - r->gpa;
    return (struct page_ref){ r->host + off, &r->page_gen[off >> 12], gfn, MEM_FRAME_RAM, false };
}

/* Frame gfn holds page p from now on (its own region page: the entry goes). 0 or -1. */
static int set_page(struct guest_mem *m, u64 gfn, struct page_ref p)
{
    struct mem_frame *f;
    if (p.host && p.region == gfn) {
        if ((f = frame_find(m, gfn)))
            frame_delete(m, f);
        return 0;
    }
    if (p.host && p.region != MEM_NO_GFN) {
        if (!(f = frame_get(m, p.region)))
            return -1;
        f->lent = true;
    }
    if (!(f = frame_get(m, gfn)))
        return -1;
    f->host = p.host;
    f->gen = p.gen;
    f->from = p.host ? p.region : MEM_NO_GFN;
    f->kind = p.host ? p.kind : MEM_FRAME_NONE;
    f->own = p.host && p.own;
    f->readonly = false;
    f->no_hv_copy = false;
    /* outside the regions, holding nothing is having no entry */
    if (!p.host && !f->lent && !region_of(m, gfn << 12))
        frame_delete(m, f);
    if (p.host && gfn > m->max_gfn)
        m->max_gfn = gfn;
    return 0;
}

static const struct page_ref NO_PAGE = { NULL, NULL, MEM_NO_GFN, MEM_FRAME_NONE, false };

/* A RAM page goes back to the host: its contents are gone (a region page reads as zero
 * when it is used again) */
static void page_release(struct guest_mem *m, struct page_ref p)
{
    gen_retire(p.gen);
    if (p.own) {
        munmap(p.host, 4096);
        m->gen_free[m->ngen_free++] = p.gen;
        return;
    }
    madvise(p.host, 4096, MADV_DONTNEED);
    struct mem_frame *home = frame_find(m, p.region);
    if (home) {
        home->lent = false;
        if (!home->host && !region_of(m, p.region << 12))
            frame_delete(m, home);
    }
}

enum mem_frame_kind mem_frame_at(const struct guest_mem *m, u64 gfn, u8 **host)
{
    struct page_ref p = page_at(m, gfn);
    if (host)
        *host = p.host;
    return p.host ? (enum mem_frame_kind)p.kind : MEM_FRAME_NONE;
}

enum mem_frame_kind mem_frame_remove(struct guest_mem *m, u64 gfn, u8 **host)
{
    struct page_ref p = page_at(m, gfn);
    if (host)
        *host = p.host;
    if (!p.host)
        return MEM_FRAME_NONE;
    /* the map first (it may need memory for the hole's entry), then the page */
    if (set_page(m, gfn, NO_PAGE) < 0)
        return MEM_FRAME_NONE;
    if (p.kind == MEM_FRAME_RAM) {
        page_release(m, p);
        m->ram_frames--;
    } else {
        gen_retire(p.gen);
    }
    map_changed(m);
    return (enum mem_frame_kind)p.kind;
}

/* Room for one more detached page in the kept list (false: no host memory) */
static bool kept_room(struct guest_mem *m)
{
    if (m->nkept < m->kept_cap)
        return true;
    u32 cap = m->kept_cap ? m->kept_cap * 2 : 16;
    u8 **k = realloc(m->kept, sizeof(*k) * cap);
    if (!k)
        return false;
    m->kept = k;
    u32 **kg = realloc(m->kept_gen, sizeof(*kg) * cap);
    if (!kg)
        return false;
    m->kept_gen = kg;
    m->kept_cap = cap;
    return true;
}

int mem_frame_detach(struct guest_mem *m, u64 gfn, u8 **host, u32 **gen)
{
    struct page_ref p = page_at(m, gfn);
    if (!p.host || p.kind != MEM_FRAME_RAM)
        return -1;
    if (p.own && !kept_room(m))
        return -1;
    /* a region page stays lent for good: its frame gets another page when populated */
    if (p.region != MEM_NO_GFN) {
        struct mem_frame *home = frame_get(m, p.region);
        if (!home)
            return -1;
        home->lent = true;
    }
    if (set_page(m, gfn, NO_PAGE) < 0)
        return -1;
    if (p.own) {
        m->kept[m->nkept] = p.host;
        m->kept_gen[m->nkept++] = p.gen;
    }
    m->ram_frames--;
    gen_retire(p.gen); /* code decoded from it at gfn is stale */
    *host = p.host;
    *gen = p.gen;
    map_changed(m);
    return 0;
}

int mem_frame_populate(struct guest_mem *m, u64 gfn)
{
    const struct mem_frame *f = frame_find(m, gfn);
    struct page_ref p = page_at(m, gfn);
    if (p.host)
        return -1; /* the caller removes what is there first */
    if (region_of(m, gfn << 12) && !(f && f->lent)) {
        /* the region's own page comes back (released: zero) */
        const struct mem_region *r = region_of(m, gfn << 12);
        u64 off = (gfn << 12) - r->gpa;
        p = (struct page_ref){ r->host + off, &r->page_gen[off >> 12], gfn, MEM_FRAME_RAM, false };
    } else {
        u8 *h = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (h == MAP_FAILED)
            return -1;
        u32 *g = gen_alloc(m);
        if (!g) {
            munmap(h, 4096);
            return -1;
        }
        p = (struct page_ref){ h, g, MEM_NO_GFN, MEM_FRAME_RAM, true };
    }
    if (set_page(m, gfn, p) < 0) {
        if (p.own) {
            munmap(p.host, 4096);
            m->gen_free[m->ngen_free++] = p.gen;
        }
        return -1;
    }
    m->ram_frames++;
    map_changed(m);
    return 0;
}

int mem_frame_move(struct guest_mem *m, u64 from, u64 to)
{
    struct page_ref p = page_at(m, from);
    if (!p.host || page_at(m, to).host)
        return -1;
    /* the page keeps its generation word: code decoded from it stays valid */
    if (set_page(m, to, p) < 0)
        return -1;
    if (set_page(m, from, NO_PAGE) < 0) {
        set_page(m, to, NO_PAGE);
        return -1;
    }
    map_changed(m);
    return 0;
}

int mem_frame_place(struct guest_mem *m, u64 gfn, u8 *host, u32 *gen)
{
    return mem_frame_place_prot(m, gfn, host, gen, 0);
}

int mem_frame_place_prot(struct guest_mem *m, u64 gfn, u8 *host, u32 *gen, unsigned prot)
{
    if (page_at(m, gfn).host)
        return -1;
    if (set_page(m, gfn, (struct page_ref){ host, gen, MEM_NO_GFN, MEM_FRAME_FOREIGN, false }) < 0)
        return -1;
    /* set_page made the entry: a foreign page always has one */
    struct mem_frame *f = frame_find(m, gfn);
    f->readonly = prot & MEM_PROT_READONLY;
    f->no_hv_copy = prot & MEM_PROT_NO_HV_COPY;
    map_changed(m);
    return 0;
}

bool mem_frame_readonly(const struct guest_mem *m, u64 gfn)
{
    const struct mem_frame *f = frame_find(m, gfn);
    return f && f->host && f->readonly;
}

bool mem_frame_hv_copy_ok(const struct guest_mem *m, u64 gfn)
{
    if (!m->nframes)
        return true;
    const struct mem_frame *f = frame_find(m, gfn);
    return !f || !f->host || !f->no_hv_copy;
}

u64 mem_frame_of(const struct guest_mem *m, const u8 *host)
{
    for (u32 i = 0; m->nframes && i < m->nframe_slots; i++)
        if (m->frame[i].gfn != MEM_NO_GFN && m->frame[i].host == host &&
            m->frame[i].kind == MEM_FRAME_FOREIGN)
            return m->frame[i].gfn;
    return MEM_NO_GFN;
}

void mem_overlay_unmap(struct guest_mem *m, u8 *host)
{
    u64 gfn = mem_frame_of(m, host);
    if (gfn != MEM_NO_GFN)
        mem_frame_remove(m, gfn, NULL);
}

int mem_overlay_map(struct guest_mem *m, u64 gpa, u8 *host, u32 *gen)
{
    if ((gpa & 0xfff) || (gpa >> 12) > MASK(52 - 12))
        return -1;
    u64 gfn = gpa >> 12;
    if (mem_frame_of(m, host) == gfn)
        return 0;
    mem_overlay_unmap(m, host);
    mem_frame_remove(m, gfn, NULL);
    return mem_frame_place(m, gfn, host, gen);
}

u8 *mem_ptr(struct guest_mem *m, u64 gpa, u64 len)
{
    struct span s;
    if (!lookup(m, gpa, &s) || len > s.len)
        return NULL;
    return s.host;
}

u8 *mem_ptr_write(struct guest_mem *m, u64 gpa, u64 len)
{
    struct span s;
    if (!lookup(m, gpa, &s) || len > s.len || s.readonly)
        return NULL;
    mem_mark_dirty(m, gpa, len); /* the caller writes through it at once */
    return s.host;
}

/* ---- dirty logging ---- */
u64 mem_region_pages(const struct guest_mem *m)
{
    u64 n = 0;
    for (int i = 0; i < m->nregions; i++)
        n += m->region[i].size / 4096;
    return n;
}

u8 *mem_region_page(struct guest_mem *m, u64 idx, u64 *gpa)
{
    for (int i = 0; i < m->nregions; i++) {
        u64 n = m->region[i].size / 4096;
        if (idx < n) {
            *gpa = m->region[i].gpa + idx * 4096;
            return m->region[i].host + idx * 4096;
        }
        idx -= n;
    }
    return NULL;
}

int mem_dirty_log_start(struct guest_mem *m)
{
    if (m->dirty)
        return 0;
    m->dirty_pages = mem_region_pages(m);
    m->dirty = calloc((m->dirty_pages + 7) / 8, 1);
    return m->dirty ? 0 : -1;
}

void mem_dirty_log_stop(struct guest_mem *m)
{
    free(m->dirty);
    m->dirty = NULL;
}

void mem_dirty_log_take(struct guest_mem *m, u8 *out)
{
    size_t n = (m->dirty_pages + 7) / 8;
    memcpy(out, m->dirty, n);
    memset(m->dirty, 0, n);
}

/* The index of the region page at host, or -1 (a page guest_mem allocated, or one of
 * the hypervisor interface's: those travel with the state, not with the RAM) */
static s64 region_index_of_host(const struct guest_mem *m, const u8 *host)
{
    u64 idx = 0;
    for (int i = 0; i < m->nregions; i++) {
        const struct mem_region *r = &m->region[i];
        if (host >= r->host && host < r->host + r->size)
            return (s64)(idx + (u64)(host - r->host) / 4096);
        idx += r->size / 4096;
    }
    return -1;
}

static void mark_page_dirty(struct guest_mem *m, const u8 *host)
{
    s64 k = region_index_of_host(m, host);
    if (k >= 0)
        m->dirty[k / 8] |= (u8)(1u << (k % 8));
}

/* The pages [gpa, gpa+len) reaches through the map, wherever they belong (a moved
 * region page is dirty as the page it is, not as the frame it is at) */
void mem_mark_dirty_slow(struct guest_mem *m, u64 gpa, u64 len)
{
    if (!len)
        return;
    for (u64 a = gpa & ~0xfffull; a < gpa + len; a += 4096) {
        struct span s;
        if (lookup(m, a, &s))
            mark_page_dirty(m, s.host);
    }
}

void mem_page_written(struct guest_mem *m, const u8 *host, u32 *gen)
{
    if (gen)
        mem_code_write(gen);
    if (m->dirty && host)
        mark_page_dirty(m, (const u8 *)((uintptr_t)host & ~(uintptr_t)0xfff));
}

u8 *mem_page(struct guest_mem *m, u64 gpa, u32 **gen, bool *readonly)
{
    struct span s;
    if (!lookup(m, gpa & ~0xfffull, &s) || s.len < 4096)
        return NULL;
    *gen = s.gen;
    *readonly = s.readonly;
    return s.host;
}

/* Whether [gpa, gpa+len) is all RAM (and, for a write, none of it a read-only frame) */
static bool reachable(const struct guest_mem *m, u64 gpa, u64 len, bool write)
{
    /* A range may span adjacent regions (e.g. 0xFFFFF..0x100000). */
    while (len) {
        struct span s;
        if (!lookup(m, gpa, &s) || (write && s.readonly))
            return false;
        if (s.len >= len)
            return true;
        gpa += s.len;
        len -= s.len;
    }
    return true;
}

bool mem_is_ram(const struct guest_mem *m, u64 gpa, u64 len)
{
    return reachable(m, gpa, len, false);
}

u32 *mem_page_gen(struct guest_mem *m, u64 gpa)
{
    struct span s;
    return lookup(m, gpa, &s) ? s.gen : NULL;
}

void mem_code_mark(struct guest_mem *m, u64 gpa)
{
    mem_code_mark_gen(m, gpa, mem_page_gen(m, gpa));
}

void mem_code_mark_gen(struct guest_mem *m, u64 gpa, u32 *g)
{
    if (!g || (*g & PAGE_GEN_CODE))
        return;
    *g |= PAGE_GEN_CODE;
    for (int i = 0; i < m->ncode_watch; i++)
        m->code_watch[i](m->code_watch_opaque[i], gpa & ~0xfffull);
}

void mem_add_code_watcher(struct guest_mem *m, void (*fn)(void *opaque, u64 gpa_page), void *opaque)
{
    if (m->ncode_watch >= MEM_MAX_WATCHERS)
        nestor_panic("too many code watchers");
    m->code_watch[m->ncode_watch] = fn;
    m->code_watch_opaque[m->ncode_watch++] = opaque;
}

/* Invalidates decoded code in [gpa, gpa+len) (all of it RAM). */
static void code_written(struct guest_mem *m, u64 gpa, u64 len)
{
    for (u64 a = gpa & ~0xfffull; a < gpa + len; a += 4096) {
        u32 *g = mem_page_gen(m, a);
        if (g)
            mem_code_write(g);
    }
}

static int copy(struct guest_mem *m, u64 gpa, void *buf, const void *src, u64 len)
{
    if (!reachable(m, gpa, len, !buf))
        return -1;
    while (len) {
        struct span s;
        lookup(m, gpa, &s);
        u64 n = s.len < len ? s.len : len;
        if (buf)
            memcpy(buf, s.host, n), buf = (u8 *)buf + n;
        else
            memcpy(s.host, src, n), src = (const u8 *)src + n;
        gpa += n;
        len -= n;
    }
    return 0;
}

int mem_read(struct guest_mem *m, u64 gpa, void *buf, u64 len)
{
    return len ? copy(m, gpa, buf, NULL, len) : 0;
}

int mem_write(struct guest_mem *m, u64 gpa, const void *buf, u64 len)
{
    if (!len)
        return 0;
    if (copy(m, gpa, NULL, buf, len) < 0)
        return -1;
    code_written(m, gpa, len);
    mem_mark_dirty(m, gpa, len);
    return 0;
}

int mem_fill(struct guest_mem *m, u64 gpa, u8 byte, u64 len)
{
    if (!reachable(m, gpa, len, true))
        return -1;
    code_written(m, gpa, len);
    mem_mark_dirty(m, gpa, len);
    while (len) {
        struct span s;
        lookup(m, gpa, &s);
        u64 n = s.len < len ? s.len : len;
        memset(s.host, byte, n);
        gpa += n;
        len -= n;
    }
    return 0;
}

#define SCALAR(bits)                                                             \
    int mem_read_u##bits(struct guest_mem *m, u64 gpa, u##bits *v)               \
    {                                                                            \
        return mem_read(m, gpa, v, sizeof(*v));                                  \
    }                                                                            \
    int mem_write_u##bits(struct guest_mem *m, u64 gpa, u##bits v)               \
    {                                                                            \
        return mem_write(m, gpa, &v, sizeof(v));                                 \
    }
SCALAR(8)
SCALAR(16)
SCALAR(32)
SCALAR(64)

void mem_e820_mark(struct guest_mem *m, u64 addr, u64 size, u32 type)
{
    /* Split the entries that overlap [addr, addr+size) and insert the new range. */
    struct e820_entry out[MEM_MAX_E820];
    int n = 0;
    u64 end = addr + size;
    for (int i = 0; i < m->ne820; i++) {
        struct e820_entry e = m->e820[i];
        u64 eend = e.addr + e.size;
        if (eend <= addr || e.addr >= end) {
            if (n >= MEM_MAX_E820) nestor_panic("e820 map full");
            out[n++] = e;
            continue;
        }
        if (e.addr < addr) {
            if (n >= MEM_MAX_E820) nestor_panic("e820 map full");
            out[n++] = (struct e820_entry){ e.addr, addr - e.addr, e.type };
        }
        if (eend > end) {
            if (n >= MEM_MAX_E820) nestor_panic("e820 map full");
            out[n++] = (struct e820_entry){ end, eend - end, e.type };
        }
    }
    if (n >= MEM_MAX_E820)
        nestor_panic("e820 map full");
    out[n++] = (struct e820_entry){ addr, size, type };
    /* keep sorted by address */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && out[j].addr < out[j - 1].addr; j--) {
            struct e820_entry t = out[j]; out[j] = out[j - 1]; out[j - 1] = t;
        }
    memcpy(m->e820, out, sizeof(out[0]) * n);
    m->ne820 = n;
}

/* ---- the frame map across save and restore ---- */
void mem_set_foreign_pages(struct guest_mem *m, u64 (*id_of)(void *opaque, const u8 *host),
                           u8 *(*page_of)(void *opaque, u64 id, u32 **gen), void *opaque)
{
    m->foreign_id = id_of;
    m->foreign_page = page_of;
    m->foreign_opaque = opaque;
}

static int frame_gfn_order(const void *a, const void *b)
{
    const struct mem_frame *x = *(const struct mem_frame *const *)a, *y = *(const struct mem_frame *const *)b;
    return x->gfn < y->gfn ? -1 : x->gfn > y->gfn;
}

/* The frame table's entries by frame number (NULL when there are none or no memory) */
static const struct mem_frame **frames_sorted(const struct guest_mem *m)
{
    if (!m->nframes)
        return NULL;
    const struct mem_frame **v = malloc(sizeof(*v) * m->nframes);
    if (!v)
        return NULL;
    u32 n = 0;
    for (u32 i = 0; i < m->nframe_slots; i++)
        if (m->frame[i].gfn != MEM_NO_GFN)
            v[n++] = &m->frame[i];
    qsort(v, n, sizeof(*v), frame_gfn_order);
    return v;
}

/* The pages guest_mem allocated, in the order of their MEM_PAGE_OWN numbers: those at
 * frames by frame number, then the detached ones. Calls fn for each until it returns
 * true; returns that page's number, or -1. */
static s64 own_pages_each(const struct guest_mem *m, bool (*fn)(void *arg, u8 *host, u32 *gen, u64 n),
                          void *arg)
{
    u64 n = 0;
    const struct mem_frame **v = frames_sorted(m);
    for (u32 i = 0; v && i < m->nframes; i++)
        if (v[i]->host && v[i]->own) {
            if (fn(arg, v[i]->host, v[i]->gen, n)) {
                free(v);
                return (s64)n;
            }
            n++;
        }
    free(v);
    for (u32 i = 0; i < m->nkept; i++, n++)
        if (fn(arg, m->kept[i], m->kept_gen[i], n))
            return (s64)n;
    return -1;
}

static bool own_is_host(void *arg, u8 *host, u32 *gen, u64 n)
{
    (void)gen, (void)n;
    return host == arg;
}

u64 mem_page_id(const struct guest_mem *m, const u8 *host)
{
    if (!host)
        return MEM_PAGE_NONE;
    s64 k = region_index_of_host(m, host);
    if (k >= 0)
        return MEM_PAGE_REGION | (u64)k;
    k = own_pages_each(m, own_is_host, (void *)(uintptr_t)host);
    if (k >= 0)
        return MEM_PAGE_OWN | (u64)k;
    if (m->foreign_id) {
        u64 id = m->foreign_id(m->foreign_opaque, host);
        if (id != MEM_PAGE_UNKNOWN && id < (1ull << 60))
            return MEM_PAGE_FOREIGN | id;
    }
    return MEM_PAGE_UNKNOWN;
}

struct own_find {
    u64 want;
    u8 *host;
    u32 *gen;
};

static bool own_is_number(void *arg, u8 *host, u32 *gen, u64 n)
{
    struct own_find *f = arg;
    if (n != f->want)
        return false;
    f->host = host;
    f->gen = gen;
    return true;
}

u8 *mem_page_by_id(struct guest_mem *m, u64 id, u32 **gen)
{
    u64 n = id & ~MEM_PAGE_KIND_MASK;
    switch (id & MEM_PAGE_KIND_MASK) {
    case MEM_PAGE_REGION:
        for (int i = 0; i < m->nregions; i++) {
            u64 pages = m->region[i].size / 4096;
            if (n < pages) {
                *gen = &m->region[i].page_gen[n];
                return m->region[i].host + n * 4096;
            }
            n -= pages;
        }
        return NULL;
    case MEM_PAGE_OWN: {
        struct own_find f = { n, NULL, NULL };
        if (own_pages_each(m, own_is_number, &f) < 0)
            return NULL;
        *gen = f.gen;
        return f.host;
    }
    case MEM_PAGE_FOREIGN:
        return m->foreign_page ? m->foreign_page(m->foreign_opaque, n, gen) : NULL;
    default:
        return NULL;
    }
}

int mem_region_write_page(struct guest_mem *m, u64 gpa, const u8 *data)
{
    const struct mem_region *r = (gpa & 0xfff) ? NULL : region_of(m, gpa);
    if (!r)
        return -1;
    u64 off = gpa - r->gpa;
    if (data)
        memcpy(r->host + off, data, 4096);
    else
        memset(r->host + off, 0, 4096);
    mem_code_write(&r->page_gen[off >> 12]);
    return 0;
}

/* The state file: the frame-table counters, then the pages guest_mem allocated (their
 * bytes; the last nkept of them detached), then every entry by frame number with the
 * identity of its page. A region page's home frame follows from its identity. */
#define F(x) STATE_FIELD(struct guest_mem, x)
#define N(x) STATE_NOT_STATE(struct guest_mem, x)
static const struct state_field mem_fields[] = {
    N(ram_size), N(region), N(nregions), N(frame), N(nframe_slots), N(nframes), N(frame_lo),
    N(frame_hi), F(ram_frames), F(max_gfn), N(gen_free), N(ngen_free), N(gen_free_cap),
    N(gen_all), N(ngen_all), N(gen_all_cap), N(kept), N(kept_gen), N(nkept), N(kept_cap),
    N(map_changed), N(map_changed_opaque), N(e820), N(ne820), N(code_watch),
    N(code_watch_opaque), N(ncode_watch), N(dirty), N(dirty_pages), N(foreign_id),
    N(foreign_page), N(foreign_opaque),
};
#undef F
#undef N

enum { FRAME_LENT = 1, FRAME_READONLY = 2, FRAME_NO_HV_COPY = 4 };

static bool own_put(void *arg, u8 *host, u32 *gen, u64 n)
{
    (void)gen, (void)n;
    state_put(arg, host, 4096);
    return false;
}

static void mem_save(void *obj, struct state_buf *b)
{
    struct guest_mem *m = obj;
    u32 nown = 0;
    for (u32 i = 0; i < m->nframe_slots; i++)
        nown += m->frame[i].gfn != MEM_NO_GFN && m->frame[i].host && m->frame[i].own;
    state_put_u32(b, nown + m->nkept);
    state_put_u32(b, m->nkept);
    own_pages_each(m, own_put, b);
    const struct mem_frame **v = frames_sorted(m);
    if (m->nframes && !v) {
        b->oom = true;
        return;
    }
    state_put_u32(b, m->nframes);
    for (u32 i = 0; i < m->nframes; i++) {
        const struct mem_frame *f = v[i];
        state_put_u64(b, f->gfn);
        state_put_u64(b, mem_page_id(m, f->host));
        state_put_u8(b, f->kind);
        state_put_u8(b, (u8)((f->lent ? FRAME_LENT : 0) | (f->readonly ? FRAME_READONLY : 0) |
                             (f->no_hv_copy ? FRAME_NO_HV_COPY : 0)));
    }
    free(v);
}

/* Every page guest_mem allocated goes, and the map is the regions' layout again */
static void frames_clear(struct guest_mem *m)
{
    for (u32 i = 0; i < m->nframe_slots; i++)
        if (m->frame[i].gfn != MEM_NO_GFN && m->frame[i].host && m->frame[i].own) {
            munmap(m->frame[i].host, 4096);
            m->gen_free[m->ngen_free++] = m->frame[i].gen;
        }
    for (u32 i = 0; i < m->nkept; i++) {
        munmap(m->kept[i], 4096);
        m->gen_free[m->ngen_free++] = m->kept_gen[i];
    }
    m->nkept = 0;
    for (u32 i = 0; i < m->nframe_slots; i++)
        m->frame[i].gfn = MEM_NO_GFN;
    m->nframes = 0;
}

static int mem_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct guest_mem *m = obj;
    frames_clear(m);
    u32 nown = state_get_u32(c), nkept = state_get_u32(c);
    if (c->bad || nkept > nown || (u64)nown * 4096 > c->len - c->pos)
        return nestor_err(err, errlen, "a truncated or impossible frame map");
    /* the pages first, all of them kept for now: each entry below takes its own */
    u8 **own = calloc(nown ? nown : 1, sizeof(*own));
    u32 **own_gen = calloc(nown ? nown : 1, sizeof(*own_gen));
    u8 *used = calloc(nown ? nown : 1, 1);
    int r = -1;
    if (!own || !own_gen || !used) {
        nestor_err(err, errlen, "out of host memory");
        goto out;
    }
    for (u32 i = 0; i < nown; i++) {
        u8 *h = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        u32 *g = h == MAP_FAILED ? NULL : gen_alloc(m);
        if (!g) {
            if (h != MAP_FAILED)
                munmap(h, 4096);
            nestor_err(err, errlen, "out of host memory");
            goto out;
        }
        own[i] = h;
        own_gen[i] = g;
        state_get(c, h, 4096);
    }
    u32 n = state_get_u32(c);
    if (c->bad || (u64)n * 18 > c->len - c->pos) {
        nestor_err(err, errlen, "a truncated frame map");
        goto out;
    }
    u64 prev = 0;
    for (u32 i = 0; i < n; i++) {
        u64 gfn = state_get_u64(c), id = state_get_u64(c);
        u8 kind = state_get_u8(c), flags = state_get_u8(c);
        u64 k = id & ~MEM_PAGE_KIND_MASK;
        if (c->bad || gfn > MASK(52 - 12) || (i && gfn <= prev) || kind > MEM_FRAME_FOREIGN ||
            (flags & ~7u) || (!id) != (kind == MEM_FRAME_NONE)) {
            nestor_err(err, errlen, "an impossible entry in the frame map");
            goto out;
        }
        prev = gfn;
        struct mem_frame *f = frame_get(m, gfn);
        if (!f) {
            nestor_err(err, errlen, "out of host memory");
            goto out;
        }
        f->lent = flags & FRAME_LENT;
        f->readonly = flags & FRAME_READONLY;
        f->no_hv_copy = flags & FRAME_NO_HV_COPY;
        f->kind = kind;
        if (!id)
            continue;
        u64 idkind = id & MEM_PAGE_KIND_MASK;
        if (idkind == MEM_PAGE_OWN && kind == MEM_FRAME_RAM) {
            /* a page of guest_mem's at a frame as RAM: at this one only */
            if (k >= nown - nkept || used[k]) {
                nestor_err(err, errlen, "the frame map names an allocated page twice or one it does not hold");
                goto out;
            }
            used[k] = 1;
            f->host = own[k];
            f->gen = own_gen[k];
            f->own = true;
        } else if (idkind == MEM_PAGE_OWN) {
            /* a detached page placed as a foreign page (a grant mapping of it) */
            if (k < nown - nkept || k >= nown) {
                nestor_err(err, errlen, "the frame map places an allocated page it does not hold");
                goto out;
            }
            f->host = own[k];
            f->gen = own_gen[k];
        } else if (idkind == MEM_PAGE_FOREIGN && kind != MEM_FRAME_FOREIGN) {
            /* the hypervisor's pages are never given back as RAM */
            nestor_err(err, errlen, "the frame map has a hypervisor page as RAM");
            goto out;
        } else if (!(f->host = mem_page_by_id(m, id, &f->gen))) {
            nestor_err(err, errlen, "the frame map names a page (%#llx) this machine does not have",
                       (unsigned long long)id);
            goto out;
        }
        if ((id & MEM_PAGE_KIND_MASK) == MEM_PAGE_REGION) {
            u64 gpa = 0;
            mem_region_page(m, k, &gpa);
            f->from = gpa >> 12;
        }
        if (gfn > m->max_gfn)
            m->max_gfn = gfn;
    }
    /* the detached pages, in their order */
    for (u32 i = nown - nkept; i < nown; i++) {
        if (!kept_room(m)) {
            nestor_err(err, errlen, "out of host memory");
            goto out;
        }
        m->kept[m->nkept] = own[i];
        m->kept_gen[m->nkept++] = own_gen[i];
        used[i] = 1;
    }
    for (u32 i = 0; i < nown - nkept; i++)
        if (!used[i]) {
            nestor_err(err, errlen, "an allocated page in the frame map that no frame holds");
            goto out;
        }
    r = 0;
out:
    /* pages no entry took are given back (on failure, the caller discards the machine) */
    for (u32 i = 0; own && i < nown; i++)
        if (own[i] && (!used || !used[i])) {
            munmap(own[i], 4096);
            m->gen_free[m->ngen_free++] = own_gen[i];
        }
    free(own);
    free(own_gen);
    free(used);
    map_changed(m);
    return r;
}

static int mem_post_load(void *obj, char *err, size_t errlen)
{
    struct guest_mem *m = obj;
    if (m->max_gfn > MASK(52 - 12))
        return nestor_err(err, errlen, "an impossible highest frame");
    return 0;
}

static const struct state_desc mem_state_desc = STATE_DESC("mem.frames", 1, struct guest_mem, mem_fields,
                                                           .save = mem_save, .load = mem_load,
                                                           .post_load = mem_post_load);

void mem_state_register(struct guest_mem *m, struct state_registry *r)
{
    state_register(r, &mem_state_desc, 0, m);
}

/* Guest RAM as a PC lays it out, and the only code that turns a guest physical address
 * into a host pointer. */
#include "machine/mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"

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
    m->kept = NULL;
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
    if (!m->nframes)
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

int mem_frame_detach(struct guest_mem *m, u64 gfn, u8 **host, u32 **gen)
{
    struct page_ref p = page_at(m, gfn);
    if (!p.host || p.kind != MEM_FRAME_RAM)
        return -1;
    if (p.own && m->nkept == m->kept_cap) {
        u32 cap = m->kept_cap ? m->kept_cap * 2 : 16;
        u8 **k = realloc(m->kept, sizeof(*k) * cap);
        if (!k)
            return -1;
        m->kept = k;
        m->kept_cap = cap;
    }
    /* a region page stays lent for good: its frame gets another page when populated */
    if (p.region != MEM_NO_GFN) {
        struct mem_frame *home = frame_get(m, p.region);
        if (!home)
            return -1;
        home->lent = true;
    }
    if (set_page(m, gfn, NO_PAGE) < 0)
        return -1;
    if (p.own)
        m->kept[m->nkept++] = p.host;
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

void mem_mark_dirty_slow(struct guest_mem *m, u64 gpa, u64 len)
{
    if (!len)
        return;
    u64 idx = 0;
    for (int i = 0; i < m->nregions; i++) {
        const struct mem_region *r = &m->region[i];
        u64 lo = gpa > r->gpa ? gpa : r->gpa;
        u64 hi = gpa + len < r->gpa + r->size ? gpa + len : r->gpa + r->size;
        for (u64 a = lo & ~0xfffull; a < hi; a += 4096) {
            u64 k = idx + (a - r->gpa) / 4096;
            m->dirty[k / 8] |= (u8)(1u << (k % 8));
        }
        idx += r->size / 4096;
    }
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
    u32 *g = mem_page_gen(m, gpa);
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

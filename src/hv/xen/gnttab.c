/* Grant tables (xen/common/grant_table.c), as Xen 4.17 keeps them for an HVM domU: the
 * table is Xen's memory, frames that the guest places in its physical space with
 * XENMEM_add_to_physmap (XENMAPSPACE_grant_table; status frames with
 * XENMAPIDX_grant_table_status in version 2), where they replace whatever was at that
 * frame. The table starts with one frame and grows, up to the toolstack's default of 64,
 * as frames are placed or asked for.
 * Implemented: query_size, setup_table, set_version (busy entries, the reserved entries
 * kept across a change), get_version, get_status_frames, copy (every flag, v1 and v2
 * entries, sub-page and transitive grants, the busy bits), swap_grant_ref, transfer and
 * cache_flush as Xen answers an HVM domU; the host's access to granted pages for nestor's
 * backends, which are domain 0 (xen_gnttab_host_*, with dom0's own small grant table
 * for pages it grants to the guest); map_grant_ref of the guest's own grants and of
 * dom0's with GNTMAP_host_map (writable or read-only, a page at several frames),
 * unmap_grant_ref and unmap_and_replace. dump_table is -ENOSYS as in Xen 4.17. */
#include <stdlib.h>
#include <string.h>

#include "hv/xen/xen_internal.h"
#include "cpu/exec.h"

#include <xen/grant_table.h>
#include <xen/memory.h>

#define MAX_GRANT_FRAMES 64u  /* xl's default max_grant_frames */
#define INITIAL_FRAMES 1u
/* v2 status frames: one 16-bit status per grant entry of 16 bytes: a status frame for
 * every 8 shared frames (Xen's grant_to_status_frames) */
#define MAX_STATUS_FRAMES ((MAX_GRANT_FRAMES * (4096 / 16) * 2 + 4095) / 4096)

struct gframe {
    u8 *page;   /* Xen's page, 4 KiB */
    u32 gen;    /* its code-generation word while mapped */
    bool mapped;
    u64 gfn;
};

/* Entries per frame: 8-byte v1 entries, 16-byte v2 entries, 2-byte v2 status words */
#define V1_PER_FRAME (4096u / sizeof(grant_entry_v1_t))
#define V2_PER_FRAME (4096u / sizeof(grant_entry_v2_t))
#define STATUS_PER_FRAME (4096u / sizeof(grant_status_t))
#define MAX_ENTRIES (MAX_GRANT_FRAMES * V1_PER_FRAME)

/* Xen's active entry pin counts (struct active_grant_entry, not public): writable and
 * read-only host mappings, writable and read-only device mappings, 8 bits each */
#define PIN_HSTW 0x1u
#define PIN_HSTR 0x100u
#define PIN_DEVW 0x10000u
#define PIN_WMASK 0x00ff00ffu /* the writable counts (host, device) */
#define PIN_OVERFLOW 0x80808080u

/* Xen's active entry: while an entry is pinned (a copy in progress, a host mapping), what
 * it granted is fixed here; the guest's entry is not looked at again but for its flags. */
struct active {
    u32 pin;
    u16 domid;      /* the domain the pins are for */
    u16 start, length; /* the granted bytes of the page */
    bool sub_page;  /* a v2 sub-page or transitive grant: never mapped */
    bool trans;     /* a v2 transitive grant: the bytes are dom0's grant trans_gref */
    u32 trans_gref;
    u8 *page;       /* the host bytes of the granted page */
    u64 gpa;        /* its guest-physical address, or NO_GPA (a page of dom0's) */
    u32 *gen;       /* the page's code-generation word (a guest page keeps it where it goes) */
};
#define NO_GPA (~0ull)

/* dom0's grant table: nestor's backends are domain 0, and the pages they grant to the
 * guest (xen_gnttab_host_grant) are the host's own. A v1-style header (flags, domid) and
 * the page; the guest reaches them by GNTTABOP_copy with domid 0 and through transitive
 * grants. */
#define DOM0_GRANTS 512u
struct dom0_grant {
    u16 flags, domid;
    u8 *page;
    u32 gen;        /* the page's code-generation word while the guest maps it */
    struct active act;
};

/* The host's mappings of guest grants (xen_gnttab_host_map), by handle */
#define MAX_HOST_MAPS 1024u
struct host_map {
    bool used, writable;
    u32 gref;
    u8 *page;       /* the mapped page and its word (not state: found again) */
    u32 *gen;
};

/* The guest's own mappings of grants (map_grant_ref with GNTMAP_host_map), by handle:
 * Xen's maptrack. Each is a page overlay in the guest-physical space, of which the
 * machine has a bounded number; 64 handles, then GNTST_no_device_space. */
#define MAX_GUEST_MAPS 64u
struct guest_map {
    u32 flags;      /* GNTMAP_*; 0: the handle is free */
    u16 dom;
    u32 ref;
    u64 gpa;        /* where it is mapped */
    u64 maddr;      /* the dev_bus_addr map_grant_ref returned */
    u8 *page;
};

struct xen_gnttab {
    u32 version;
    u32 nr_frames;
    struct gframe frame[MAX_GRANT_FRAMES];
    struct gframe status[MAX_STATUS_FRAMES];
    struct active active[MAX_ENTRIES];
    struct dom0_grant dom0[DOM0_GRANTS];
    struct host_map host_map[MAX_HOST_MAPS];
    struct guest_map guest_map[MAX_GUEST_MAPS];
    /* while a state file loads: the pages of pinned entries and mappings by identity,
     * found once the frame map is back (post_load) */
    u64 *load_ids;
    struct xen *x;
};

static u32 status_frames(u32 nr_frames)
{
    return (nr_frames * (4096 / 16) * 2 + 4095) / 4096;
}

static void guest_map_remove(struct xen *x, const struct guest_map *m);

int xen_gnttab_create(struct xen *x)
{
    x->gnttab = calloc(1, sizeof(*x->gnttab));
    if (!x->gnttab)
        return -ENOMEM;
    x->gnttab->x = x;
    x->gnttab->version = 1;
    x->gnttab->nr_frames = INITIAL_FRAMES;
    return 0;
}

void xen_gnttab_destroy(struct xen *x)
{
    struct xen_gnttab *g = x->gnttab;
    if (!g)
        return;
    /* the guest-physical space lets go of the pages before they are freed, and of the
     * grants the guest mapped */
    for (u32 i = 0; i < MAX_GUEST_MAPS && x->host.ncpus; i++)
        if (g->guest_map[i].flags)
            guest_map_remove(x, &g->guest_map[i]);
    for (u32 i = 0; i < MAX_GRANT_FRAMES + MAX_STATUS_FRAMES; i++) {
        struct gframe *f = i < MAX_GRANT_FRAMES ? &g->frame[i] : &g->status[i - MAX_GRANT_FRAMES];
        if (f->mapped && x->host.ops->unmap_page)
            x->host.ops->unmap_page(x->host.opaque, f->page);
        free(f->page);
    }
    free(g->load_ids);
    free(g);
    x->gnttab = NULL;
}

/* A frame's page, made on first use (zeroed, as Xen's new frames are) */
static u8 *frame_page(struct gframe *f)
{
    if (!f->page)
        f->page = calloc(1, 4096);
    return f->page;
}

static bool grow(struct xen_gnttab *g, u32 nr)
{
    if (nr > MAX_GRANT_FRAMES)
        return false;
    if (nr > g->nr_frames)
        g->nr_frames = nr;
    return true;
}

/* XENMEM_add_to_physmap, XENMAPSPACE_grant_table (memory.c): frame idx (a status frame
 * with XENMAPIDX_grant_table_status, version 2 only) to gfn. 0 or -EINVAL (a frame beyond
 * the maximum, a status frame in version 1, nowhere to map it). */
long xen_gnttab_map_frame(struct xen *x, u64 idx, u64 gfn)
{
    struct xen_gnttab *g = x->gnttab;
    struct gframe *f;
    if (idx & XENMAPIDX_grant_table_status) {
        idx &= ~(u64)XENMAPIDX_grant_table_status;
        if (g->version != 2 || idx >= MAX_STATUS_FRAMES)
            return -EINVAL;
        if (idx >= status_frames(g->nr_frames) && !grow(g, (u32)(idx + 1) * 8))
            return -EINVAL;
        f = &g->status[idx];
    } else {
        if (idx >= MAX_GRANT_FRAMES || !grow(g, (u32)idx + 1))
            return -EINVAL;
        f = &g->frame[idx];
    }
    if (gfn > MASK(52 - 12) || !x->host.ops->map_page)
        return -EINVAL;
    u8 *page = frame_page(f);
    if (!page || x->host.ops->map_page(x->host.opaque, gfn << 12, page, &f->gen))
        return -EINVAL;
    f->mapped = true;
    f->gfn = gfn;
    return 0;
}

/* the gfn where a frame is, or INVALID_GFN (all ones) */
static u64 frame_gfn(const struct gframe *f)
{
    return f->mapped ? f->gfn : ~0ull;
}

/* Each sub-op's structure: domid first in the query ones; a domain other than this one
 * is GNTST_bad_domain (none such) or GNTST_permission_denied (dom0). */
static s16 domain_status(const struct xen *x, u16 dom)
{
    long rc = xen_own_domain(x, dom);
    return rc == 0 ? GNTST_okay : rc == -EPERM ? GNTST_permission_denied : GNTST_bad_domain;
}

/* A list of frame numbers: 64-bit entries, or 32-bit ones (setup_table's xen_pfn_t in
 * the x86_32 ABI) with narrow */
static bool write_gfns(struct xcall *k, u64 list, const struct gframe *frames, u32 n, bool narrow)
{
    for (u32 i = 0; i < n; i++) {
        u64 gfn = frame_gfn(&frames[i]);
        if (narrow) {
            u32 g32 = (u32)gfn;
            if (xen_copy_to(k, list + 4ull * i, &g32, 4))
                return false;
        } else if (xen_copy_to(k, list + 8ull * i, &gfn, 8)) {
            return false;
        }
    }
    return true;
}

static long setup_table(struct xcall *k, u64 arg)
{
    struct xen_gnttab *g = k->x->gnttab;
    /* dom (0), nr_frames (4), status (8), frame_list: a 64-bit handle at 16, or a 32-bit
     * one at 12 in the x86_32 layout */
    u8 b[24];
    size_t len = k->compat ? 16 : 24;
    if (xen_copy_from(k, arg, b, len))
        return -EFAULT;
    u16 dom;
    u32 nr;
    u64 list = 0;
    memcpy(&dom, b, 2);
    memcpy(&nr, b + 4, 4);
    memcpy(&list, b + (k->compat ? 12 : 16), k->compat ? 4 : 8);
    s16 status = domain_status(k->x, dom);
    if (status == GNTST_okay && (nr > MAX_GRANT_FRAMES || !grow(g, nr)))
        status = GNTST_general_error;
    if (status == GNTST_okay && !write_gfns(k, list, g->frame, nr, k->compat))
        status = GNTST_bad_virt_addr;
    return xen_copy_to(k, arg + 8, &status, 2);
}

static long get_status_frames(struct xcall *k, u64 arg)
{
    struct xen_gnttab *g = k->x->gnttab;
    /* nr_frames (0), dom (4), status (6), frame_list: a handle to uint64_t entries at 8,
     * 64 bits wide natively and 32 in the x86_32 layout */
    u8 b[16] = { 0 };
    if (xen_copy_from(k, arg, b, k->compat ? 12 : 16))
        return -EFAULT;
    u32 nr;
    u16 dom;
    u64 list = 0;
    memcpy(&nr, b, 4);
    memcpy(&dom, b + 4, 2);
    memcpy(&list, b + 8, k->compat ? 4 : 8);
    s16 status = domain_status(k->x, dom);
    if (status == GNTST_okay && (g->version != 2 || nr > status_frames(g->nr_frames)))
        status = GNTST_general_error;
    if (status == GNTST_okay && !write_gfns(k, list, g->status, nr, false))
        status = GNTST_bad_virt_addr;
    return xen_copy_to(k, arg + 6, &status, 2);
}

/* ---- entries, busy bits, pins ----
 * The guest may change its entries at any time (another vCPU): a header is read once as
 * one 32-bit word (flags and domid), validated, and updated with compare-and-exchange,
 * retried a few times and then refused as Xen does (a guest that keeps changing its entry
 * cannot hold Xen in a loop). */
#define CMPXCHG_RETRIES 4

static u32 nr_entries(const struct xen_gnttab *g)
{
    return g->nr_frames * (g->version == 1 ? V1_PER_FRAME : V2_PER_FRAME);
}

static struct guest_mem *guest_mem(const struct xen *x)
{
    return x->host.cpus[0]->mem;
}

/* The shared entry of ref (below nr_entries) and the frame that holds it; NULL when
 * there is no memory for the frame */
static u8 *entry(struct xen_gnttab *g, u32 ref, struct gframe **fr)
{
    u32 per = g->version == 1 ? V1_PER_FRAME : V2_PER_FRAME;
    struct gframe *f = &g->frame[ref / per];
    u8 *page = frame_page(f);
    *fr = f;
    return page ? page + (ref % per) * (4096 / per) : NULL;
}

/* Where ref's GTF_reading/GTF_writing live: the header's flags in v1, the status word
 * in v2 */
static u16 *status_word(struct xen_gnttab *g, u32 ref, struct gframe **fr)
{
    if (g->version == 1)
        return (u16 *)entry(g, ref, fr);
    struct gframe *f = &g->status[ref / STATUS_PER_FRAME];
    u8 *page = frame_page(f);
    *fr = f;
    return page ? (u16 *)page + ref % STATUS_PER_FRAME : NULL;
}

static u32 load32(const u8 *p)
{
    return __atomic_load_n((const u32 *)p, __ATOMIC_ACQUIRE);
}

static void clear_flags(struct gframe *f, u16 *status, u16 flags)
{
    __atomic_fetch_and(status, (u16)~flags, __ATOMIC_SEQ_CST);
    mem_code_write(&f->gen);
}

static void set_flags(struct gframe *f, u16 *status, u16 flags)
{
    __atomic_fetch_or(status, flags, __ATOMIC_SEQ_CST);
    mem_code_write(&f->gen);
}

#define HDR_FLAGS(h) ((u16)(h))
#define HDR_DOMID(h) ((u16)((h) >> 16))

/* Xen's _set_status_v1: check the entry grants ldom access (permit_access; with mapflag
 * not sub-page) unless already pinned, and set GTF_reading (and GTF_writing unless
 * readonly, refused for a GTF_readonly grant) in the same compare-and-exchange. */
static s16 set_status_v1(struct gframe *f, u8 *e, const struct active *act, bool readonly,
                         bool mapflag, u16 ldom)
{
    u16 mask = GTF_type_mask | (mapflag ? GTF_sub_page : 0);
    u32 cur = load32(e);
    for (int retries = 0;; retries++) {
        if (!act->pin && ((HDR_FLAGS(cur) & mask) != GTF_permit_access || HDR_DOMID(cur) != ldom))
            return GNTST_general_error;
        u32 want = cur | GTF_reading;
        if (!readonly) {
            want |= GTF_writing;
            if (HDR_FLAGS(cur) & GTF_readonly)
                return GNTST_general_error;
        }
        if (__atomic_compare_exchange_n((u32 *)e, &cur, want, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            mem_code_write(&f->gen);
            return GNTST_okay;
        }
        if (retries == CMPXCHG_RETRIES)
            return GNTST_general_error; /* the entry is unstable */
    }
}

/* Xen's _set_status_v2: the busy bits are in the status word, which the guest cannot
 * lock with the header: set them, then read the header again and back out if it changed
 * under us. Transitive grants pass (copies only, not mapflag). */
static s16 set_status_v2(u8 *e, struct gframe *sf, u16 *status,
                         const struct active *act, bool readonly, bool mapflag, u16 ldom)
{
    u16 mask = GTF_type_mask | (mapflag ? GTF_sub_page : 0);
    u32 h = load32(e);
#define V2_GRANTS(h)                                                                        \
    ((HDR_FLAGS(h) & mask) == GTF_permit_access ||                                         \
     (!mapflag && (HDR_FLAGS(h) & mask) == GTF_transitive))
    if (!act->pin && (!V2_GRANTS(h) || HDR_DOMID(h) != ldom))
        return GNTST_general_error;
    if (!readonly && (HDR_FLAGS(h) & GTF_readonly))
        return GNTST_general_error;
    set_flags(sf, status, readonly ? GTF_reading : GTF_reading | GTF_writing);
    h = load32(e);
    if (!act->pin) {
        if (!V2_GRANTS(h) || HDR_DOMID(h) != ldom || (!readonly && (HDR_FLAGS(h) & GTF_readonly))) {
            clear_flags(sf, status, GTF_reading | GTF_writing);
            return GNTST_general_error;
        }
    } else if (HDR_FLAGS(h) & GTF_readonly) {
        clear_flags(sf, status, GTF_writing);
        return GNTST_general_error;
    }
#undef V2_GRANTS
    return GNTST_okay;
}

/* A frame of the guest's own (get_paged_frame): its bytes, GNTST_bad_page if it is not
 * memory the guest has */
static s16 guest_frame(struct xen *x, u64 gfn, u8 **page, u64 *gpa)
{
    if (gfn > MASK(52 - 12))
        return GNTST_bad_page;
    *gpa = gfn << 12;
    *page = mem_ptr(guest_mem(x), *gpa, 4096);
    return *page ? GNTST_okay : GNTST_bad_page;
}

/* A page was written behind the vCPUs' TLBs: code decoded from it is stale (the page's
 * own word, wherever the page is now: a mapping of its grant moves it), and dirty
 * logging sees the page. */
static void page_written(struct xen *x, const u8 *page, u32 *gen)
{
    mem_page_written(guest_mem(x), page, gen);
}

/* The bytes a pin gives access to */
struct grant_bytes {
    u8 *page;
    u64 gpa;
    u32 *gen; /* the page's code-generation word */
    u16 off, len;
};

static void pin_result(const struct active *act, struct grant_bytes *b)
{
    *b = (struct grant_bytes){ .page = act->page, .gpa = act->gpa, .gen = act->gen,
                               .off = act->start, .len = act->length };
}

/* dom0's grants (acquire_grant_for_copy on domain 0's table): ref for ldom */
static s16 acquire_dom0(struct xen_gnttab *g, u32 ref, u16 ldom, bool readonly, struct grant_bytes *b)
{
    if (ref >= DOM0_GRANTS)
        return GNTST_bad_gntref;
    struct dom0_grant *d = &g->dom0[ref];
    struct active *act = &d->act;
    if (act->pin && (act->domid != ldom || (act->pin & PIN_OVERFLOW)))
        return GNTST_general_error;
    if (!act->pin || (!readonly && !(act->pin & PIN_WMASK))) {
        if (!act->pin && ((d->flags & GTF_type_mask) != GTF_permit_access || d->domid != ldom))
            return GNTST_general_error;
        if (!readonly && (d->flags & GTF_readonly))
            return GNTST_general_error;
        d->flags |= readonly ? GTF_reading : GTF_reading | GTF_writing;
        if (!act->pin)
            *act = (struct active){ .domid = ldom, .start = 0, .length = 4096, .page = d->page,
                                    .gpa = NO_GPA, .gen = &d->gen };
    }
    act->pin += readonly ? PIN_HSTR : PIN_HSTW;
    pin_result(act, b);
    return GNTST_okay;
}

static void release_dom0(struct xen_gnttab *g, u32 ref, bool readonly)
{
    struct dom0_grant *d = &g->dom0[ref];
    struct active *act = &d->act;
    act->pin -= readonly ? PIN_HSTR : PIN_HSTW;
    if (!readonly && !(act->pin & PIN_WMASK))
        d->flags &= (u16)~GTF_writing;
    if (!act->pin)
        d->flags &= (u16)~GTF_reading;
}

/* The busy bits a failed or dropped pin leaves behind: GTF_writing without a writable
 * pin, GTF_reading without any (Xen's unlock_out_clear / fixup_status_for_copy_pin) */
static void fixup_status(struct gframe *sf, u16 *status, const struct active *act, bool readonly)
{
    u16 clear = 0;
    if (!readonly && !(act->pin & PIN_WMASK))
        clear |= GTF_writing;
    if (!act->pin)
        clear |= GTF_reading;
    if (clear)
        clear_flags(sf, status, clear);
}

/* Xen's acquire_grant_for_copy on the guest's table: ldom (the guest itself, or 0 for
 * nestor's backends) pins ref for reading or writing. A v2 transitive grant names a
 * grant of another domain, which can only be dom0's here (the guest's own id is
 * self-referential, other domains do not exist); it is followed one level only
 * (allow_transitive is false for the referent, as Xen does). */
static s16 acquire_guest(struct xen *x, u32 ref, u16 ldom, bool readonly, bool allow_transitive,
                         bool mapflag, struct grant_bytes *b)
{
    struct xen_gnttab *g = x->gnttab;
    if (ref >= nr_entries(g))
        return GNTST_bad_gntref;
    struct active *act = &g->active[ref];
    struct gframe *f, *sf;
    u8 *e = entry(g, ref, &f);
    u16 *status = status_word(g, ref, &sf);
    if (!e || !status)
        return GNTST_general_error;
    if (act->pin && (act->domid != ldom || (act->pin & PIN_OVERFLOW) || (mapflag && act->sub_page)))
        return GNTST_general_error;
    u32 old_pin = act->pin;
    bool v2 = g->version == 2;
    bool need_status = !old_pin || (!readonly && !(old_pin & PIN_WMASK));
    s16 rc;
    /* a pinned entry stays what it was when pinned, whatever the guest wrote since */
    bool transitive = old_pin ? act->trans
                              : !mapflag && v2 && (HDR_FLAGS(load32(e)) & GTF_type_mask) == GTF_transitive;
    if (transitive) {
        if (need_status && (rc = set_status_v2(e, sf, status, act, readonly, false, ldom)) != GNTST_okay)
            return rc;
        const grant_entry_v2_t *e2 = (const grant_entry_v2_t *)e;
        u16 trans_domid = 0;
        u32 trans_gref = act->trans_gref;
        if (!old_pin) {
            trans_domid = __atomic_load_n(&e2->transitive.trans_domid, __ATOMIC_ACQUIRE);
            trans_gref = __atomic_load_n(&e2->transitive.gref, __ATOMIC_ACQUIRE);
        }
        struct grant_bytes tb;
        if (!allow_transitive || trans_domid != 0)
            rc = GNTST_general_error; /* no further level; self-referential or no such domain */
        else
            rc = acquire_dom0(g, trans_gref, x->cfg.domid, readonly, &tb);
        if (rc != GNTST_okay) {
            fixup_status(sf, status, act, readonly);
            return rc;
        }
        if (!old_pin) {
            *act = (struct active){ .domid = ldom, .start = tb.off, .length = tb.len,
                                    .sub_page = true, .trans = true, .trans_gref = trans_gref, .page = tb.page,
                                    .gpa = tb.gpa, .gen = tb.gen };
        }
    } else if (need_status) {
        rc = v2 ? set_status_v2(e, sf, status, act, readonly, mapflag, ldom)
                : set_status_v1(f, e, act, readonly, mapflag, ldom);
        if (rc != GNTST_okay)
            return rc;
        u64 gfn;
        u16 start = 0, length = 4096;
        bool sub_page = false;
        if (!v2) {
            gfn = ((const grant_entry_v1_t *)e)->frame;
        } else {
            const grant_entry_v2_t *e2 = (const grant_entry_v2_t *)e;
            if (HDR_FLAGS(load32(e)) & GTF_sub_page) {
                gfn = e2->sub_page.frame;
                /* Xen keeps the offset in a 15-bit field */
                start = e2->sub_page.page_off & 0x7fff;
                length = e2->sub_page.length;
                sub_page = true;
            } else {
                gfn = e2->full_page.frame;
            }
        }
        /* a pinned entry keeps its page (Xen's act->mfn), even if the frame it was
         * found at holds something else now (a mapping of the grant took it away) */
        u8 *page = NULL;
        u64 gpa = NO_GPA;
        if (!old_pin && (rc = guest_frame(x, gfn, &page, &gpa)) != GNTST_okay) {
            fixup_status(sf, status, act, readonly);
            return rc;
        }
        if (!old_pin)
            *act = (struct active){ .domid = ldom, .start = start, .length = length,
                                    .sub_page = sub_page, .page = page, .gpa = gpa,
                                    .gen = mem_page_gen(guest_mem(x), gpa) };
    }
    act->pin += readonly ? PIN_HSTR : PIN_HSTW;
    pin_result(act, b);
    return GNTST_okay;
}

/* Xen's release_grant_for_copy */
static void release_guest(struct xen *x, u32 ref, bool readonly)
{
    struct xen_gnttab *g = x->gnttab;
    struct active *act = &g->active[ref];
    struct gframe *sf;
    u16 *status = status_word(g, ref, &sf);
    act->pin -= readonly ? PIN_HSTR : PIN_HSTW;
    if (status)
        fixup_status(sf, status, act, readonly);
    if (!readonly)
        page_written(x, act->page, act->gen); /* it may hold new code */
    if (act->trans)
        release_dom0(g, act->trans_gref, readonly);
    if (!act->pin)
        act->trans = false;
}

/* ---- GNTTABOP_copy ---- */
/* One side of a copy: the guest's frame (gmfn), or a grant of the guest's table or of
 * dom0's, pinned for the copy */
enum copy_side { SIDE_NONE, SIDE_FRAME, SIDE_GUEST_GRANT, SIDE_DOM0_GRANT };
struct copy_buf {
    enum copy_side side;
    bool readonly;
    u32 ref;
    struct grant_bytes b;
};

/* Xen's gnttab_copy_lock_domain: a frame only of DOMID_SELF (not even by the guest's
 * own id), a grant of any domain that exists (the guest, dom0) */
static s16 copy_domain(const struct xen *x, u16 domid, bool is_gref)
{
    if (!is_gref && domid != DOMID_SELF)
        return GNTST_permission_denied;
    bool self = domid == DOMID_SELF || domid == x->cfg.domid;
    return self || domid == 0 ? GNTST_okay : GNTST_bad_domain;
}

static s16 pin_side(struct xen *x, u64 u, u16 domid, bool is_gref, bool readonly, struct copy_buf *cb)
{
    s16 rc;
    cb->readonly = readonly;
    if (!is_gref) {
        rc = guest_frame(x, u, &cb->b.page, &cb->b.gpa);
        cb->b.gen = rc == GNTST_okay ? mem_page_gen(guest_mem(x), cb->b.gpa) : NULL;
        cb->b.off = 0;
        cb->b.len = 4096;
        if (rc == GNTST_okay)
            cb->side = SIDE_FRAME;
        return rc;
    }
    cb->ref = (u32)u;
    if (domid == 0) {
        rc = acquire_dom0(x->gnttab, cb->ref, x->cfg.domid, readonly, &cb->b);
        if (rc == GNTST_okay)
            cb->side = SIDE_DOM0_GRANT;
    } else {
        rc = acquire_guest(x, cb->ref, x->cfg.domid, readonly, true, false, &cb->b);
        if (rc == GNTST_okay)
            cb->side = SIDE_GUEST_GRANT;
    }
    return rc;
}

static void unpin_side(struct xen *x, struct copy_buf *cb)
{
    if (cb->side == SIDE_GUEST_GRANT)
        release_guest(x, cb->ref, cb->readonly);
    else if (cb->side == SIDE_DOM0_GRANT)
        release_dom0(x->gnttab, cb->ref, cb->readonly);
    cb->side = SIDE_NONE;
}

/* One copy operation, decoded from either layout */
struct copy_op {
    u64 src, dst;          /* ref or gmfn */
    u16 src_dom, src_off, dst_dom, dst_off;
    u16 len, flags;
};

/* Xen's gnttab_copy_one: the domains, then the source and the destination pinned, then
 * the bounds: within the page (GNTST_bad_copy_arg), within what each grant gives
 * (GNTST_general_error: a sub-page grant's range). Xen keeps the pins from one operation
 * to the next while they name the same buffers; pinning each time is the same to the
 * guest, whose entries cannot change during the hypercall. */
static s16 copy_one(struct xen *x, const struct copy_op *op)
{
    bool src_gref = op->flags & GNTCOPY_source_gref, dst_gref = op->flags & GNTCOPY_dest_gref;
    s16 rc = copy_domain(x, op->src_dom, src_gref);
    if (rc == GNTST_okay)
        rc = copy_domain(x, op->dst_dom, dst_gref);
    if (rc != GNTST_okay)
        return rc;
    struct copy_buf src = { 0 }, dst = { 0 };
    rc = pin_side(x, op->src, op->src_dom, src_gref, true, &src);
    if (rc == GNTST_okay)
        rc = pin_side(x, op->dst, op->dst_dom, dst_gref, false, &dst);
    if (rc == GNTST_okay) {
        if (op->src_off + op->len > 4096 || op->dst_off + op->len > 4096)
            rc = GNTST_bad_copy_arg;
        else if (op->src_off < src.b.off || op->src_off + op->len > src.b.off + src.b.len ||
                 op->dst_off < dst.b.off || op->dst_off + op->len > dst.b.off + dst.b.len)
            rc = GNTST_general_error;
    }
    if (rc == GNTST_okay) {
        memmove(dst.b.page + op->dst_off, src.b.page + op->src_off, op->len);
        page_written(x, dst.b.page, dst.b.gen);
    }
    unpin_side(x, &src);
    unpin_side(x, &dst);
    return rc;
}

/* The x86_32 layout: Xen's compat gnttab_copy, with a 32-bit xen_pfn_t in the union */
struct gnttab_copy_x86_32 {
    struct {
        uint32_t u;
        domid_t domid;
        uint16_t offset;
    } source, dest;
    uint16_t len, flags;
    int16_t status;
};
_Static_assert(sizeof(struct gnttab_copy_x86_32) == 24, "x86_32 gnttab_copy");

static bool read_copy_op(struct xcall *k, u64 addr, struct copy_op *op)
{
    if (k->compat) {
        struct gnttab_copy_x86_32 c;
        if (xen_copy_from(k, addr, &c, sizeof(c)))
            return false;
        *op = (struct copy_op){ c.source.u, c.dest.u, c.source.domid, c.source.offset,
                                c.dest.domid, c.dest.offset, c.len, c.flags };
        return true;
    }
    struct gnttab_copy c;
    if (xen_copy_from(k, addr, &c, sizeof(c)))
        return false;
    *op = (struct copy_op){ c.source.u.gmfn, c.dest.u.gmfn, c.source.domid, c.source.offset,
                            c.dest.domid, c.dest.offset, c.len, c.flags };
    return true;
}

/* ---- batches ---- */
/* Operations done before a batch yields to the machine's loop (Xen's
 * hypercall_preempt_check): the vCPU then executes the VMCALL/VMMCALL again with the
 * argument registers moved past what was done, as Xen's continuation does, so a batch of
 * any length stalls neither timers nor other vCPUs. Within a multicall the batch runs to
 * its end (nestor's multicall has no continuation for its entries). */
#define GNTTAB_BATCH 128u

/* Whether the batch yields after i operations; then the continuation is set up */
static bool preempt(struct xcall *k, u32 cmd, u64 uop, u32 i, u32 count, size_t size)
{
    struct cpu *c = k->c;
    if (i == 0 || i % GNTTAB_BATCH || i == count || k->x->vcpu[c->id].in_multicall)
        return false;
    u64 rest = uop + (u64)i * size;
    c->gpr[k->compat ? R_RBX : R_RDI] = cmd;
    c->gpr[k->compat ? R_RCX : R_RSI] = k->compat ? (u32)rest : rest;
    c->gpr[R_RDX] = count - i;
    cpu_branch(c, c->rip);
    return true;
}

static u64 op_addr(const struct xcall *k, u64 uop, u32 i, size_t size)
{
    u64 a = uop + (u64)i * size;
    return k->compat ? (u32)a : a;
}

/* One operation of a batch: reads its structure at guest address a, does it, writes back
 * what Xen writes back. 0, or a negative errno that ends the batch (-EFAULT for a
 * structure that cannot be read or written). */
typedef long (*batch_op_fn)(struct xcall *k, u64 a, bool flag);

/* Xen's loop over a batch of count structures of size bytes at uop, preempted as Xen's
 * are (the call continues where it stopped) and ended by the first error. flag is passed
 * to each operation (unmap: the unmap_and_replace layout). */
static long run_batch(struct xcall *k, u32 cmd, u64 uop, u32 count, size_t size, batch_op_fn one,
                      bool flag)
{
    for (u32 i = 0; i < count; i++) {
        if (preempt(k, cmd, uop, i, count, size))
            return __HYPERVISOR_grant_table_op;
        long rc = one(k, op_addr(k, uop, i, size), flag);
        if (rc)
            return rc;
    }
    return 0;
}

static long copy_op(struct xcall *k, u64 a, bool flag)
{
    (void)flag;
    size_t status_off = k->compat ? offsetof(struct gnttab_copy_x86_32, status)
                                  : offsetof(struct gnttab_copy, status);
    struct copy_op op;
    if (!read_copy_op(k, a, &op))
        return -EFAULT;
    s16 status = copy_one(k->x, &op);
    return xen_copy_to(k, a + status_off, &status, sizeof(status)) ? -EFAULT : 0;
}

/* ---- swap_grant_ref, transfer, cache_flush ---- */
/* Xen's swap_grant_ref: two entries of the guest's table (and their v2 status words)
 * change places; refused while either is pinned (GNTST_eagain) */
static s16 swap_grant_ref(struct xen *x, u32 a, u32 b)
{
    struct xen_gnttab *g = x->gnttab;
    if (a >= nr_entries(g) || b >= nr_entries(g))
        return GNTST_bad_gntref;
    if (a == b)
        return GNTST_okay;
    if (g->active[a].pin || g->active[b].pin)
        return GNTST_eagain;
    struct gframe *fa, *fb, *sa, *sb;
    u8 *ea = entry(g, a, &fa), *eb = entry(g, b, &fb);
    u16 *ta = status_word(g, a, &sa), *tb = status_word(g, b, &sb);
    if (!ea || !eb || !ta || !tb)
        return GNTST_general_error;
    size_t size = g->version == 1 ? sizeof(grant_entry_v1_t) : sizeof(grant_entry_v2_t);
    u8 tmp[sizeof(grant_entry_v2_t)];
    memcpy(tmp, ea, size);
    memcpy(ea, eb, size);
    memcpy(eb, tmp, size);
    if (g->version == 2) {
        u16 t = *ta;
        *ta = *tb;
        *tb = t;
        mem_code_write(&sa->gen);
        mem_code_write(&sb->gen);
    }
    mem_code_write(&fa->gen);
    mem_code_write(&fb->gen);
    return GNTST_okay;
}

/* Xen's gnttab_transfer for an HVM domain: a frame that is not the guest's is
 * GNTST_bad_page; any other fails in steal_page(), which refuses a translated
 * (paging_mode_external) domain's pages: GNTST_general_error. ("only PV guests can use
 * this operation", grant_table.h.) */
static s16 transfer_one(struct xen *x, u64 gfn)
{
    u8 *page;
    u64 gpa;
    return guest_frame(x, gfn, &page, &gpa) == GNTST_okay ? GNTST_general_error : GNTST_bad_page;
}

/* Xen's cache_flush for x86: the range within a page, known op bits; nothing to do for
 * an empty range or no op (GNTTAB_CACHE_SOURCE_GREF is among the unknown bits Xen's
 * first check refuses). The address is a machine
 * address: nestor's machine frames are the guest's physical ones. A page the guest owns
 * is flushed (a software CPU has no cache to write back, so nothing is done); x86 cannot
 * invalidate without writing back: INVAL alone is -EOPNOTSUPP. */
static long cache_flush_one(struct xen *x, const struct gnttab_cache_flush *cf)
{
    if (cf->offset >= 4096 || cf->length > 4096 || cf->offset + cf->length > 4096 ||
        (cf->op & ~(GNTTAB_CACHE_INVAL | GNTTAB_CACHE_CLEAN)))
        return -EINVAL;
    if (cf->length == 0 || cf->op == 0)
        return 0;
    u8 *page;
    u64 gpa;
    if (guest_frame(x, cf->a.dev_bus_addr >> 12, &page, &gpa) != GNTST_okay)
        return -EINVAL; /* not a valid machine frame */
    return cf->op == GNTTAB_CACHE_INVAL ? -EOPNOTSUPP : 0;
}

/* ---- the host's side: nestor's backends are domain 0 ---- */
int xen_gnttab_host_map(struct xen *x, u32 gref, bool writable, u32 *handle, struct xen_grant_mapping *m)
{
    struct xen_gnttab *g = x->gnttab;
    u32 h;
    for (h = 0; h < MAX_HOST_MAPS && g->host_map[h].used; h++)
        ;
    if (h == MAX_HOST_MAPS)
        return GNTST_no_device_space;
    struct grant_bytes b;
    s16 rc = acquire_guest(x, gref, 0, !writable, true, false, &b);
    if (rc != GNTST_okay)
        return rc;
    /* a sub-page grant beyond its page (Xen keeps the range as given) is not handed out */
    if (b.off + b.len > 4096) {
        release_guest(x, gref, !writable);
        return GNTST_general_error;
    }
    g->host_map[h] = (struct host_map){ .used = true, .writable = writable, .gref = gref,
                                        .page = b.page, .gen = b.gen };
    *handle = h;
    *m = (struct xen_grant_mapping){ .page = b.page, .offset = b.off, .length = b.len };
    return GNTST_okay;
}

int xen_gnttab_host_unmap(struct xen *x, u32 handle)
{
    struct xen_gnttab *g = x->gnttab;
    if (handle >= MAX_HOST_MAPS || !g->host_map[handle].used)
        return GNTST_bad_handle;
    struct host_map *hm = &g->host_map[handle];
    release_guest(x, hm->gref, !hm->writable);
    hm->used = false;
    return GNTST_okay;
}

int xen_gnttab_host_mapping(struct xen *x, u32 handle, u32 gref, bool writable, struct xen_grant_mapping *m)
{
    struct xen_gnttab *g = x->gnttab;
    if (handle >= MAX_HOST_MAPS || !g->host_map[handle].used || g->host_map[handle].gref != gref ||
        g->host_map[handle].writable != writable || !g->host_map[handle].page)
        return GNTST_bad_handle;
    const struct active *a = &g->active[gref];
    *m = (struct xen_grant_mapping){ .page = g->host_map[handle].page, .offset = a->start, .length = a->length };
    return GNTST_okay;
}

void xen_gnttab_host_written(struct xen *x, u32 handle)
{
    struct xen_gnttab *g = x->gnttab;
    if (handle < MAX_HOST_MAPS && g->host_map[handle].used && g->host_map[handle].writable)
        page_written(x, g->host_map[handle].page, g->host_map[handle].gen);
}

/* A copy between the host and a grant: the grant pinned for the copy only, the range
 * within what it grants */
static int host_copy(struct xen *x, u32 gref, u32 off, u8 *buf, u32 len, bool to_guest)
{
    struct grant_bytes b;
    s16 rc = acquire_guest(x, gref, 0, !to_guest, true, false, &b);
    if (rc != GNTST_okay)
        return rc;
    u64 end = (u64)off + len;
    if (off < b.off || end > (u64)b.off + b.len || end > 4096) {
        rc = GNTST_bad_copy_arg;
    } else if (to_guest) {
        memmove(b.page + off, buf, len);
        page_written(x, b.page, b.gen);
    } else {
        memmove(buf, b.page + off, len);
    }
    release_guest(x, gref, !to_guest);
    return rc;
}

int xen_gnttab_host_copy_from(struct xen *x, u32 gref, u32 off, void *buf, u32 len)
{
    return host_copy(x, gref, off, buf, len, false);
}

int xen_gnttab_host_copy_to(struct xen *x, u32 gref, u32 off, const void *buf, u32 len)
{
    return host_copy(x, gref, off, (u8 *)buf, len, true);
}

int xen_gnttab_host_grant(struct xen *x, u8 *page, bool readonly)
{
    struct xen_gnttab *g = x->gnttab;
    if (!page)
        return -EINVAL;
    for (u32 r = 0; r < DOM0_GRANTS; r++) {
        struct dom0_grant *d = &g->dom0[r];
        if ((d->flags & GTF_type_mask) == GTF_invalid && !d->act.pin) {
            *d = (struct dom0_grant){ .flags = GTF_permit_access | (readonly ? GTF_readonly : 0),
                                      .domid = x->cfg.domid, .page = page };
            return (int)r;
        }
    }
    return -ENOSPC;
}

int xen_gnttab_host_end_grant(struct xen *x, u32 gref)
{
    struct xen_gnttab *g = x->gnttab;
    if (gref >= DOM0_GRANTS || (g->dom0[gref].flags & GTF_type_mask) == GTF_invalid)
        return -EINVAL;
    struct dom0_grant *d = &g->dom0[gref];
    if (d->act.pin || (d->flags & (GTF_reading | GTF_writing)))
        return -EBUSY;
    *d = (struct dom0_grant){ 0 };
    return 0;
}

/* ---- set_version ---- */
/* Xen's gnttab_set_version: the same version is nothing to do; entries in use (pinned)
 * beyond the 8 reserved ones make it -EBUSY; v2 entries the v1 layout cannot hold among
 * the reserved ones (a frame above 32 bits, a transitive grant) are -ERANGE; the table is
 * cleared but for the reserved entries, which are converted (the toolstack's grants for
 * xenstore and the console). */
static long set_version(struct xen *x, u32 version)
{
    struct xen_gnttab *g = x->gnttab;
    if (version != 1 && version != 2)
        return -EINVAL;
    if (version == g->version)
        return 0;
    for (u32 i = GNTTAB_NR_RESERVED_ENTRIES; i < nr_entries(g); i++)
        if (g->active[i].pin)
            return -EBUSY;
    grant_entry_v1_t keep[GNTTAB_NR_RESERVED_ENTRIES] = { 0 };
    for (u32 i = 0; i < GNTTAB_NR_RESERVED_ENTRIES; i++) {
        struct gframe *f, *sf;
        u8 *e = entry(g, i, &f);
        if (!e)
            return -ENOMEM;
        if (g->version == 1) {
            memcpy(&keep[i], e, sizeof(keep[i]));
            continue;
        }
        grant_entry_v2_t e2;
        memcpy(&e2, e, sizeof(e2));
        u16 type = e2.hdr.flags & GTF_type_mask;
        if ((type == GTF_permit_access && (e2.full_page.frame >> 32)) || type == GTF_transitive)
            return -ERANGE;
        if (type == GTF_permit_access) {
            u16 *st = status_word(g, i, &sf);
            keep[i] = (grant_entry_v1_t){ .flags = (u16)(e2.hdr.flags | (st ? *st : 0)),
                                          .domid = e2.hdr.domid, .frame = (u32)e2.full_page.frame };
        }
    }
    for (u32 i = 0; i < g->nr_frames; i++)
        if (g->frame[i].page) {
            memset(g->frame[i].page, 0, 4096);
            mem_code_write(&g->frame[i].gen);
        }
    /* status frames: cleared for version 2; version 1 has none, and Xen takes them out
     * of the guest-physical space (gnttab_unpopulate_status_frames) */
    for (u32 i = 0; i < MAX_STATUS_FRAMES; i++) {
        struct gframe *sf = &g->status[i];
        if (!sf->page)
            continue;
        memset(sf->page, 0, 4096);
        mem_code_write(&sf->gen);
        if (version == 1 && sf->mapped && x->host.ops->unmap_page) {
            x->host.ops->unmap_page(x->host.opaque, sf->page);
            sf->mapped = false;
        }
    }
    g->version = version;
    for (u32 i = 0; i < GNTTAB_NR_RESERVED_ENTRIES; i++) {
        struct gframe *f, *sf;
        u8 *e = entry(g, i, &f);
        if (version == 1) {
            memcpy(e, &keep[i], sizeof(keep[i]));
            continue;
        }
        grant_entry_v2_t e2 = { 0 };
        e2.hdr.flags = keep[i].flags & (u16)~(GTF_reading | GTF_writing);
        e2.hdr.domid = keep[i].domid;
        e2.full_page.frame = keep[i].frame;
        memcpy(e, &e2, sizeof(e2));
        u16 *st = status_word(g, i, &sf);
        if (st)
            *st = keep[i].flags & (GTF_reading | GTF_writing);
    }
    return 0;
}

/* ---- map_grant_ref, unmap_grant_ref, unmap_and_replace ---- */
/* The guest's mapping at frame gfn that is still there, or NULL */
static const struct guest_map *mapping_at(struct xen *x, u64 gfn)
{
    const struct xen_gnttab *g = x->gnttab;
    u8 *page;
    if (mem_frame_at(guest_mem(x), gfn, &page) != MEM_FRAME_FOREIGN)
        return NULL;
    for (u32 i = 0; i < MAX_GUEST_MAPS; i++)
        if (g->guest_map[i].flags && g->guest_map[i].gpa >> 12 == gfn && g->guest_map[i].page == page)
            return &g->guest_map[i];
    return NULL;
}

/* A mapping leaves the physical space: its frame holds nothing (Xen's
 * replace_grant_p2m_mapping: p2m invalid, whatever was there before is not back). The
 * frame is checked to hold the mapping still: a memory_op may have replaced it. */
static void guest_map_remove(struct xen *x, const struct guest_map *m)
{
    if (mapping_at(x, m->gpa >> 12) == m)
        mem_frame_remove(guest_mem(x), m->gpa >> 12, NULL);
}

/* guest_physmap_add_entry's first step at a frame: what it holds leaves it. A RAM page
 * stays the domain's (tot_pages counts it: x->mem_unmapped) in no frame; a page of
 * Xen's is unhooked. 0, or -1 (no host memory for it). */
static int frame_vacate(struct xen *x, u64 gfn)
{
    struct guest_mem *mem = guest_mem(x);
    u8 *page;
    u32 *gen;
    switch (mem_frame_at(mem, gfn, &page)) {
    case MEM_FRAME_RAM:
        if (mem_frame_detach(mem, gfn, &page, &gen))
            return -1;
        x->mem_unmapped++;
        return 0;
    case MEM_FRAME_FOREIGN:
        mem_frame_remove(mem, gfn, NULL);
        xen_page_gone(x, gfn, page);
        return 0;
    default:
        return 0;
    }
}

/* Xen's map_grant_ref for an HVM domU, in its order: no mapping asked for
 * (GNTST_bad_gntref); device, application or PTE mappings, which an HVM domain cannot
 * have (GNTST_general_error); the domain by its id (DOMID_SELF is no id here:
 * GNTST_bad_domain); a handle (GNTST_no_device_space); the entry (as for a copy, but
 * neither sub-page nor transitive grants); then create_grant_p2m_mapping: only
 * GNTMAP_host_map with GNTMAP_readonly, at the frame host_addr names.
 * GNTMAP_readonly places the page as a read-only frame (p2m_grant_map_ro): the guest
 * reads it, a write is #GP(0) (see tlb_fill), a hypercall's copy into it fails (-EFAULT).
 * guest_physmap_add_entry: a RAM page at the frame leaves it but stays the domain's
 * (tot_pages keeps counting it: x->mem_unmapped); a page of Xen's there is unhooked; a
 * grant mapping there is Xen's domain_crash (GNTST_general_error, and the run ends
 * with the guest-error status). A page of the guest's own (RAM or a page of Xen's it placed: its grant
 * frames, shared_info) leaves the frame it is at (Xen removes the page's old p2m entry,
 * the one its m2p names), staying the domain's; a page already mapped (a second mapping
 * of a grant) or dom0's is at every frame it is mapped at. The machine address
 * (dev_bus_addr) of the guest's page is its guest-physical address; dom0's pages have
 * none (0). */
static s16 map_one(struct xen *x, const struct gnttab_map_grant_ref *op, u32 *handle, u64 *maddr)
{
    struct xen_gnttab *g = x->gnttab;
    if (!(op->flags & (GNTMAP_device_map | GNTMAP_host_map)))
        return GNTST_bad_gntref;
    if (op->flags & (GNTMAP_device_map | GNTMAP_application_map | GNTMAP_contains_pte))
        return GNTST_general_error;
    bool self = op->dom == x->cfg.domid;
    if (!self && op->dom != 0)
        return GNTST_bad_domain;
    u32 h;
    for (h = 0; h < MAX_GUEST_MAPS && g->guest_map[h].flags; h++)
        ;
    if (h == MAX_GUEST_MAPS)
        return GNTST_no_device_space;
    bool readonly = op->flags & GNTMAP_readonly;
    struct grant_bytes b;
    s16 rc = self ? acquire_guest(x, op->ref, x->cfg.domid, readonly, false, true, &b)
                  : acquire_dom0(g, op->ref, x->cfg.domid, readonly, &b);
    if (rc != GNTST_okay)
        return rc;
    struct guest_mem *mem = guest_mem(x);
    u64 gpa = op->host_addr & ~0xfffull, gfn = gpa >> 12;
    u32 *gen = self ? g->active[op->ref].gen : &g->dom0[op->ref].gen;
    u8 *there;
    /* the page at the frame the guest has it at (Xen's m2p), unless that is a mapping */
    bool at_own = b.gpa != NO_GPA && mem_frame_at(mem, b.gpa >> 12, &there) != MEM_FRAME_NONE &&
                  there == b.page && !mapping_at(x, b.gpa >> 12);
    bool bad = (op->flags & ~(u32)GNTMAP_readonly) != GNTMAP_host_map || b.off || b.len != 4096 ||
               gpa > MASK(52) || !gen;
    bool over_mapping = !bad && mapping_at(x, gfn);
    if (bad || over_mapping || (at_own && frame_vacate(x, b.gpa >> 12)) || frame_vacate(x, gfn) ||
        mem_frame_place_prot(mem, gfn, b.page, gen,
                             (readonly ? MEM_PROT_READONLY : 0) | MEM_PROT_NO_HV_COPY)) {
        if (self)
            release_guest(x, op->ref, readonly);
        else
            release_dom0(g, op->ref, readonly);
        if (over_mapping)
            xen_domain_crash(x, "a grant mapped over a grant mapping (guest_physmap_add_entry)");
        return GNTST_general_error;
    }
    *maddr = b.gpa != NO_GPA ? b.gpa : 0;
    g->guest_map[h] = (struct guest_map){ .flags = op->flags, .dom = op->dom, .ref = op->ref,
                                          .gpa = gpa, .maddr = *maddr, .page = b.page };
    *handle = h;
    return GNTST_okay;
}

/* Xen's unmap_common + unmap_common_complete for an HVM domU: the handle; a
 * dev_bus_addr that is not the mapping's (GNTST_general_error); a host_addr of 0 leaves
 * the mapping as it is (Xen unmaps only what is named); replace_grant_p2m_mapping refuses
 * a new_addr (unmap_and_replace is for PV) and a frame that is not this mapping's. */
static s16 unmap_one(struct xen *x, u64 host_addr, u64 dev_bus_addr, u32 handle, u64 new_addr)
{
    struct xen_gnttab *g = x->gnttab;
    if (handle >= MAX_GUEST_MAPS || !g->guest_map[handle].flags)
        return GNTST_bad_handle;
    struct guest_map *m = &g->guest_map[handle];
    if (dev_bus_addr && dev_bus_addr != m->maddr)
        return GNTST_general_error;
    if (!host_addr || !(m->flags & GNTMAP_host_map))
        return GNTST_okay;
    if (new_addr || host_addr >> 12 != m->gpa >> 12)
        return GNTST_general_error;
    guest_map_remove(x, m);
    bool readonly = m->flags & GNTMAP_readonly;
    if (m->dom == 0)
        release_dom0(g, m->ref, readonly);
    else
        release_guest(x, m->ref, readonly);
    *m = (struct guest_map){ 0 };
    return GNTST_okay;
}

/* map_grant_ref and the two unmaps: the same 32- and 24-byte layouts in both ABIs */
static long map_op(struct xcall *k, u64 a, bool flag)
{
    (void)flag;
    struct gnttab_map_grant_ref op;
    if (xen_copy_from(k, a, &op, sizeof(op)))
        return -EFAULT;
    u32 handle = op.handle;
    u64 maddr = op.dev_bus_addr;
    op.status = map_one(k->x, &op, &handle, &maddr);
    op.handle = handle;
    op.dev_bus_addr = maddr;
    return xen_copy_to(k, a, &op, sizeof(op)) ? -EFAULT : 0;
}

/* unmap_grant_ref, or with replace unmap_and_replace (the same size, new_addr where
 * dev_bus_addr is) */
static long unmap_op(struct xcall *k, u64 a, bool replace)
{
    _Static_assert(sizeof(struct gnttab_unmap_grant_ref) == sizeof(struct gnttab_unmap_and_replace),
                   "the two unmaps' layouts");
    s16 status;
    if (replace) {
        struct gnttab_unmap_and_replace op;
        if (xen_copy_from(k, a, &op, sizeof(op)))
            return -EFAULT;
        status = unmap_one(k->x, op.host_addr, 0, op.handle, op.new_addr);
    } else {
        struct gnttab_unmap_grant_ref op;
        if (xen_copy_from(k, a, &op, sizeof(op)))
            return -EFAULT;
        status = unmap_one(k->x, op.host_addr, op.dev_bus_addr, op.handle, 0);
    }
    return xen_copy_to(k, a + offsetof(struct gnttab_unmap_grant_ref, status), &status, 2) ? -EFAULT : 0;
}

static long swap_op(struct xcall *k, u64 a, bool flag)
{
    (void)flag;
    struct gnttab_swap_grant_ref op;
    if (xen_copy_from(k, a, &op, sizeof(op)))
        return -EFAULT;
    op.status = swap_grant_ref(k->x, op.ref_a, op.ref_b);
    return xen_copy_to(k, a + offsetof(struct gnttab_swap_grant_ref, status), &op.status, 2) ? -EFAULT : 0;
}

/* transfer: xen_pfn_t mfn, domid, ref, status; in the x86_32 layout the frame is 32 bits
 * (mfn 0, domid 4, ref 8, status 12: 16 bytes) */
#define TRANSFER_SIZE32 16u
static long transfer_op(struct xcall *k, u64 a, bool flag)
{
    (void)flag;
    size_t size = k->compat ? TRANSFER_SIZE32 : sizeof(struct gnttab_transfer);
    size_t status_off = k->compat ? 12 : offsetof(struct gnttab_transfer, status);
    u8 raw[sizeof(struct gnttab_transfer)];
    if (xen_copy_from(k, a, raw, size))
        return -EFAULT;
    u64 gfn = 0;
    memcpy(&gfn, raw, k->compat ? 4 : 8);
    s16 status = transfer_one(k->x, gfn);
    return xen_copy_to(k, a + status_off, &status, 2) ? -EFAULT : 0;
}

/* cache_flush: the same 16-byte layout in both ABIs. Xen carries a grant-reference
 * cursor in the command's upper bits for a search nestor never needs (the page is the
 * guest's own), so no continuation of that kind is made. */
static long cache_flush_op(struct xcall *k, u64 a, bool flag)
{
    (void)flag;
    struct gnttab_cache_flush cf;
    if (xen_copy_from(k, a, &cf, sizeof(cf)))
        return -EFAULT;
    return cache_flush_one(k->x, &cf);
}

/* Xen's GNTTABOP_CONTINUATION_ARG_SHIFT: the command's bits above 11 carry a
 * continuation's state, for cache_flush only */
#define GNTTABOP_CMD_MASK 0xfffu

/* grant_table_op(cmd, uop, count), as Xen's do_grant_table_op: a negative count (as an
 * int) is -EINVAL, as are upper command bits but for cache_flush; the query sub-ops take
 * exactly one structure (count 1, else -EINVAL); set_version and get_version ignore the
 * count. dump_table is no longer in Xen 4.17 (-ENOSYS). */
long xen_do_grant_table_op(struct xcall *k)
{
    struct xen *x = k->x;
    struct xen_gnttab *g = x->gnttab;
    u32 cmd = (u32)k->arg[0];
    u64 arg = k->arg[1];
    u32 count = (u32)k->arg[2];
    if ((s32)count < 0)
        return -EINVAL;
    if ((cmd & GNTTABOP_CMD_MASK) != GNTTABOP_cache_flush && (cmd & ~GNTTABOP_CMD_MASK))
        return -EINVAL;
    switch (cmd & GNTTABOP_CMD_MASK) {
    case GNTTABOP_query_size:
    case GNTTABOP_setup_table:
    case GNTTABOP_get_status_frames:
        if (count != 1)
            return -EINVAL;
        break;
    }
    switch (cmd & GNTTABOP_CMD_MASK) {
    case GNTTABOP_map_grant_ref:
        return run_batch(k, cmd, arg, count, sizeof(struct gnttab_map_grant_ref), map_op, false);
    case GNTTABOP_unmap_grant_ref:
        return run_batch(k, cmd, arg, count, sizeof(struct gnttab_unmap_grant_ref), unmap_op, false);
    case GNTTABOP_unmap_and_replace:
        return run_batch(k, cmd, arg, count, sizeof(struct gnttab_unmap_and_replace), unmap_op, true);
    case GNTTABOP_copy:
        return run_batch(k, cmd, arg, count,
                         k->compat ? sizeof(struct gnttab_copy_x86_32) : sizeof(struct gnttab_copy),
                         copy_op, false);
    case GNTTABOP_swap_grant_ref:
        return run_batch(k, cmd, arg, count, sizeof(struct gnttab_swap_grant_ref), swap_op, false);
    case GNTTABOP_transfer:
        return run_batch(k, cmd, arg, count, k->compat ? TRANSFER_SIZE32 : sizeof(struct gnttab_transfer),
                         transfer_op, false);
    case GNTTABOP_cache_flush:
        return run_batch(k, cmd, arg, count, sizeof(struct gnttab_cache_flush), cache_flush_op, false);
    case GNTTABOP_query_size: {
        struct gnttab_query_size q;
        if (xen_copy_from(k, arg, &q, sizeof(q)))
            return -EFAULT;
        q.status = domain_status(x, q.dom);
        if (q.status == GNTST_okay) {
            q.nr_frames = g->nr_frames;
            q.max_nr_frames = MAX_GRANT_FRAMES;
        }
        return xen_copy_to(k, arg, &q, sizeof(q));
    }
    case GNTTABOP_setup_table:
        return setup_table(k, arg);
    case GNTTABOP_set_version: {
        struct gnttab_set_version v;
        if (xen_copy_from(k, arg, &v, sizeof(v)))
            return -EFAULT;
        long rc = set_version(x, v.version);
        v.version = g->version;
        if (xen_copy_to(k, arg, &v, sizeof(v)))
            return -EFAULT;
        return rc;
    }
    case GNTTABOP_get_version: {
        struct gnttab_get_version v;
        if (xen_copy_from(k, arg, &v, sizeof(v)))
            return -EFAULT;
        long rc = xen_own_domain(x, v.dom);
        if (rc)
            return rc;
        v.version = g->version;
        return xen_copy_to(k, arg, &v, sizeof(v));
    }
    case GNTTABOP_get_status_frames:
        return get_status_frames(k, arg);
    }
    return -ENOSYS;
}

/* A frame that memory_op took out of the physical space (removed, or another page put at
 * its gfn): whichever of the table's frames was placed at gfn and is not there now is
 * placed nowhere. */
void xen_gnttab_frame_gone(struct xen *x, u64 gfn)
{
    struct xen_gnttab *g = x->gnttab;
    struct guest_mem *mem = x->host.ncpus ? x->host.cpus[0]->mem : NULL;
    for (u32 i = 0; g && i < MAX_GRANT_FRAMES + MAX_STATUS_FRAMES; i++) {
        struct gframe *f = i < MAX_GRANT_FRAMES ? &g->frame[i] : &g->status[i - MAX_GRANT_FRAMES];
        if (f->mapped && f->gfn == gfn && (!mem || mem_ptr(mem, gfn << 12, 4096) != f->page))
            f->mapped = false;
    }
}

/* ---- state ----
 * The table's frames (their bytes, where they are), the pinned active entries, the
 * guest's own mappings and the host's. The pages pinned entries and mappings hold are
 * named by their identity in the frame map (mem_page_id). dom0's grants are its
 * backends' pages, which the backends would have to describe: a machine whose backends
 * granted pages cannot be saved yet (xen_state_savable), and a file with such grants is
 * refused. */
#define F(x) STATE_FIELD(struct gframe, x)
#define N(x) STATE_NOT_STATE(struct gframe, x)
static const struct state_field gframe_fields[] = { N(page), N(gen), F(mapped), F(gfn) };
#undef F
#undef N
static const struct state_desc gframe_desc = STATE_DESC("xen.gframe", 1, struct gframe, gframe_fields);
#define F(x) STATE_FIELD(struct active, x)
#define N(x) STATE_NOT_STATE(struct active, x)
static const struct state_field active_fields[] = {
    F(pin), F(domid), F(start), F(length), F(sub_page), F(trans), F(trans_gref), N(page), F(gpa), N(gen),
};
#undef F
#undef N
static const struct state_desc active_desc = STATE_DESC("xen.active", 1, struct active, active_fields);
#define F(x) STATE_FIELD(struct dom0_grant, x)
#define N(x) STATE_NOT_STATE(struct dom0_grant, x)
static const struct state_field dom0_grant_fields[] = {
    F(flags), F(domid), N(page), N(gen), STATE_STRUCT(struct dom0_grant, act, active_desc),
};
#undef F
#undef N
static const struct state_desc dom0_grant_desc = STATE_DESC("xen.dom0_grant", 1, struct dom0_grant, dom0_grant_fields);
#define F(x) STATE_FIELD(struct host_map, x)
static const struct state_field host_map_fields[] = {
    F(used), F(writable), F(gref), STATE_NOT_STATE(struct host_map, page), STATE_NOT_STATE(struct host_map, gen),
};
#undef F
static const struct state_desc host_map_desc = STATE_DESC("xen.host_map", 1, struct host_map, host_map_fields);
#define F(x) STATE_FIELD(struct guest_map, x)
#define N(x) STATE_NOT_STATE(struct guest_map, x)
static const struct state_field guest_map_fields[] = { F(flags), F(dom), F(ref), F(gpa), F(maddr), N(page) };
#undef F
#undef N
static const struct state_desc guest_map_desc = STATE_DESC("xen.guest_map", 1, struct guest_map, guest_map_fields);

#define F(x) STATE_FIELD(struct xen_gnttab, x)
#define N(x) STATE_NOT_STATE(struct xen_gnttab, x)
static const struct state_field gnttab_fields[] = {
    F(version), F(nr_frames), STATE_STRUCT(struct xen_gnttab, frame, gframe_desc),
    STATE_STRUCT(struct xen_gnttab, status, gframe_desc), N(active),
    STATE_STRUCT(struct xen_gnttab, dom0, dom0_grant_desc),
    STATE_STRUCT(struct xen_gnttab, host_map, host_map_desc),
    STATE_STRUCT(struct xen_gnttab, guest_map, guest_map_desc), N(load_ids), N(x),
};
#undef F
#undef N

static struct gframe *any_frame(struct xen_gnttab *g, u32 i)
{
    return i < MAX_GRANT_FRAMES ? &g->frame[i] : &g->status[i - MAX_GRANT_FRAMES];
}

static void gnttab_save(void *obj, struct state_buf *b)
{
    struct xen_gnttab *g = obj;
    struct xen *x = g->x;
    struct guest_mem *mem = guest_mem(x);
    for (u32 i = 0; i < MAX_GRANT_FRAMES + MAX_STATUS_FRAMES; i++) {
        const struct gframe *f = any_frame(g, i);
        state_put_u8(b, f->page != NULL);
        if (f->page)
            state_put(b, f->page, 4096);
    }
    u32 pinned = 0;
    for (u32 i = 0; i < MAX_ENTRIES; i++)
        pinned += g->active[i].pin != 0;
    state_put_u32(b, pinned);
    for (u32 i = 0; i < MAX_ENTRIES; i++)
        if (g->active[i].pin) {
            state_put_u32(b, i);
            state_put_struct(b, &active_desc, &g->active[i]);
            state_put_u64(b, mem_page_id(mem, g->active[i].page));
        }
    for (u32 i = 0; i < MAX_GUEST_MAPS; i++)
        state_put_u64(b, g->guest_map[i].flags ? mem_page_id(mem, g->guest_map[i].page) : MEM_PAGE_NONE);
}

/* ids: MAX_ENTRIES for the active entries, then MAX_GUEST_MAPS */
static int gnttab_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct xen_gnttab *g = obj;
    free(g->load_ids);
    g->load_ids = calloc(MAX_ENTRIES + MAX_GUEST_MAPS, sizeof(*g->load_ids));
    if (!g->load_ids)
        return nestor_err(err, errlen, "out of host memory");
    for (u32 i = 0; i < MAX_GRANT_FRAMES + MAX_STATUS_FRAMES; i++) {
        struct gframe *f = any_frame(g, i);
        if (state_get_u8(c)) {
            if (!frame_page(f))
                return nestor_err(err, errlen, "out of host memory");
            state_get(c, f->page, 4096);
        } else {
            /* made on first use from here on, as it had not been (the map that may still
             * hold it goes with the frame map's load) */
            free(f->page);
            f->page = NULL;
        }
    }
    memset(g->active, 0, sizeof(g->active));
    u32 pinned = state_get_u32(c);
    if (pinned > MAX_ENTRIES)
        return nestor_err(err, errlen, "an impossible number of grants in use");
    for (u32 k = 0; k < pinned && !c->bad; k++) {
        u32 i = state_get_u32(c);
        if (i >= MAX_ENTRIES)
            return nestor_err(err, errlen, "a grant in use beyond the table");
        state_get_struct(c, &active_desc, &g->active[i]);
        g->load_ids[i] = state_get_u64(c);
        if (!g->active[i].pin || !g->load_ids[i])
            return nestor_err(err, errlen, "a grant in use without a page");
    }
    for (u32 i = 0; i < MAX_GUEST_MAPS; i++)
        g->load_ids[MAX_ENTRIES + i] = state_get_u64(c);
    return 0;
}

static int gnttab_post_load(void *obj, char *err, size_t errlen)
{
    struct xen_gnttab *g = obj;
    struct xen *x = g->x;
    struct guest_mem *mem = guest_mem(x);
    bool ok = (g->version == 1 || g->version == 2) && g->nr_frames >= 1 && g->nr_frames <= MAX_GRANT_FRAMES;
    for (u32 i = 0; ok && i < MAX_GRANT_FRAMES + MAX_STATUS_FRAMES; i++) {
        struct gframe *f = any_frame(g, i);
        ok = !f->mapped || (f->page && f->gfn <= MASK(52 - 12) && mem_frame_of(mem, f->page) == f->gfn);
    }
    for (u32 i = 0; ok && i < MAX_ENTRIES; i++) {
        struct active *a = &g->active[i];
        if (!a->pin)
            continue;
        u32 *gen = NULL;
        a->page = mem_page_by_id(mem, g->load_ids[i], &gen);
        a->gen = gen;
        ok = a->page && (u32)a->start + a->length <= 4096 && a->trans_gref < DOM0_GRANTS &&
             (a->gpa == NO_GPA || a->gpa <= MASK(52));
    }
    /* dom0's grants hold its backends' pages: none on a machine being restored */
    for (u32 i = 0; ok && i < DOM0_GRANTS; i++) {
        struct dom0_grant *d = &g->dom0[i];
        ok = (!d->flags && !d->act.pin) || d->page;
        d->act.page = d->page;
        d->act.gen = &d->gen;
    }
    /* the backends' mappings: each holds a pin of its entry (a writable one if it is
     * writable), whose page it maps */
    for (u32 i = 0; ok && i < MAX_HOST_MAPS; i++) {
        struct host_map *hm = &g->host_map[i];
        hm->page = NULL;
        hm->gen = NULL;
        if (!hm->used)
            continue;
        ok = hm->gref < MAX_ENTRIES && g->active[hm->gref].pin && g->active[hm->gref].page &&
             !g->active[hm->gref].sub_page && (!hm->writable || (g->active[hm->gref].pin & PIN_WMASK));
        if (ok) {
            hm->page = g->active[hm->gref].page;
            hm->gen = g->active[hm->gref].gen;
        }
    }
    for (u32 i = 0; ok && i < MAX_GUEST_MAPS; i++) {
        struct guest_map *m = &g->guest_map[i];
        u32 *gen;
        m->page = m->flags ? mem_page_by_id(mem, g->load_ids[MAX_ENTRIES + i], &gen) : NULL;
        ok = !m->flags || (m->page && m->gpa <= MASK(52) &&
                           m->ref < (m->dom == 0 ? DOM0_GRANTS : MAX_ENTRIES));
    }
    free(g->load_ids);
    g->load_ids = NULL;
    if (!ok)
        return nestor_err(err, errlen, "impossible grant-table state");
    return 0;
}

static const struct state_desc gnttab_state_desc =
    STATE_DESC("xen.gnttab", 1, struct xen_gnttab, gnttab_fields, .save = gnttab_save,
               .load = gnttab_load, .post_load = gnttab_post_load);

void xen_gnttab_state_register(struct xen *x, struct state_registry *r)
{
    state_register(r, &gnttab_state_desc, 0, x->gnttab);
}

bool xen_gnttab_savable(const struct xen *x, char *err, size_t errlen)
{
    const struct xen_gnttab *g = x->gnttab;
    for (u32 i = 0; i < DOM0_GRANTS; i++)
        if (g->dom0[i].page) {
            nestor_err(err, errlen, "domain 0 has granted pages to the guest: saving backends' grants is not supported yet");
            return false;
        }
    return true;
}

/* The table's pages as the frame map names them: MEM_PAGE_UNKNOWN if page is none */
u64 xen_gnttab_page_id(const struct xen *x, const u8 *page)
{
    const struct xen_gnttab *g = x->gnttab;
    for (u32 i = 0; i < MAX_GRANT_FRAMES; i++)
        if (g->frame[i].page == page)
            return XEN_PAGE_GRANT_FRAME + i;
    for (u32 i = 0; i < MAX_STATUS_FRAMES; i++)
        if (g->status[i].page == page)
            return XEN_PAGE_STATUS_FRAME + i;
    for (u32 i = 0; i < DOM0_GRANTS; i++)
        if (g->dom0[i].page == page)
            return XEN_PAGE_DOM0_GRANT + i;
    return MEM_PAGE_UNKNOWN;
}

u8 *xen_gnttab_page(struct xen *x, u64 id, u32 **gen)
{
    struct xen_gnttab *g = x->gnttab;
    struct gframe *f = NULL;
    if (id - XEN_PAGE_GRANT_FRAME < MAX_GRANT_FRAMES)
        f = &g->frame[id - XEN_PAGE_GRANT_FRAME];
    else if (id - XEN_PAGE_STATUS_FRAME < MAX_STATUS_FRAMES)
        f = &g->status[id - XEN_PAGE_STATUS_FRAME];
    else if (id - XEN_PAGE_DOM0_GRANT < DOM0_GRANTS && g->dom0[id - XEN_PAGE_DOM0_GRANT].page) {
        *gen = &g->dom0[id - XEN_PAGE_DOM0_GRANT].gen;
        return g->dom0[id - XEN_PAGE_DOM0_GRANT].page;
    }
    if (!f || !f->page)
        return NULL;
    *gen = &f->gen;
    return f->page;
}

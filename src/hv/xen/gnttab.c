/* Grant tables (xen/common/grant_table.c), as Xen 4.17 keeps them for an HVM domU: the
 * table is Xen's memory, frames that the guest places in its physical space with
 * XENMEM_add_to_physmap (XENMAPSPACE_grant_table; status frames with
 * XENMAPIDX_grant_table_status in version 2), where they replace whatever was at that
 * frame. The table starts with one frame and grows, up to the toolstack's default of 64,
 * as frames are placed or asked for. Implemented: query_size, setup_table, set_version,
 * get_version, get_status_frames. Not yet (-ENOSYS): copy, map/unmap, transfer and the
 * host's access to granted pages. */
#include <stdlib.h>
#include <string.h>

#include "hv/xen/xen_internal.h"

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

struct xen_gnttab {
    u32 version;
    u32 nr_frames;
    struct gframe frame[MAX_GRANT_FRAMES];
    struct gframe status[MAX_STATUS_FRAMES];
};

static u32 status_frames(u32 nr_frames)
{
    return (nr_frames * (4096 / 16) * 2 + 4095) / 4096;
}

int xen_gnttab_create(struct xen *x)
{
    x->gnttab = calloc(1, sizeof(*x->gnttab));
    if (!x->gnttab)
        return -ENOMEM;
    x->gnttab->version = 1;
    x->gnttab->nr_frames = INITIAL_FRAMES;
    return 0;
}

void xen_gnttab_destroy(struct xen *x)
{
    struct xen_gnttab *g = x->gnttab;
    if (!g)
        return;
    /* the guest-physical space lets go of the pages before they are freed */
    for (u32 i = 0; i < MAX_GRANT_FRAMES + MAX_STATUS_FRAMES; i++) {
        struct gframe *f = i < MAX_GRANT_FRAMES ? &g->frame[i] : &g->status[i - MAX_GRANT_FRAMES];
        if (f->mapped && x->host.ops->unmap_page)
            x->host.ops->unmap_page(x->host.opaque, f->page);
        free(f->page);
    }
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

/* grant_table_op(cmd, uop, count): the sub-ops below take exactly one structure
 * (count 1, else -EINVAL, as Xen's) */
long xen_do_grant_table_op(struct xcall *k)
{
    struct xen *x = k->x;
    struct xen_gnttab *g = x->gnttab;
    u32 cmd = (u32)k->arg[0];
    u64 arg = k->arg[1];
    u32 count = (u32)k->arg[2];
    switch (cmd) {
    case GNTTABOP_query_size:
    case GNTTABOP_setup_table:
    case GNTTABOP_set_version:
    case GNTTABOP_get_version:
    case GNTTABOP_get_status_frames:
        if (count != 1)
            return -EINVAL;
        break;
    default:
        return -ENOSYS;
    }
    switch (cmd) {
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
        long rc = 0;
        if (v.version != 1 && v.version != 2)
            rc = -EINVAL;
        else
            g->version = v.version;
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

/* memory_op: the guest's physical memory as Xen describes and changes it for an HVM
 * domU (xen/common/memory.c, xen/arch/x86/mm.c, xen/common/compat/memory.c). The
 * physical map itself is guest_mem's frame map (machine/mem.h): a frame holds RAM,
 * nothing (ballooned out or moved away: its accesses take the MMIO path, where nothing
 * answers: all-ones, writes dropped, as Xen's device model answers p2m_invalid), or a
 * page of Xen's (shared_info, grant and status frames). */
#include <stdlib.h>
#include <string.h>

#include "hv/xen/xen_internal.h"
#include "cpu/exec.h"

#include <xen/memory.h>

/* memory_op's command: the op in bits 5:0, a continuation's start extent above (Xen's
 * MEMOP_CMD_MASK / MEMOP_EXTENT_SHIFT, which the public header keeps to Xen itself) */
#define MEMOP_EXTENT_SHIFT 6
#define MEMOP_CMD_MASK ((1u << MEMOP_EXTENT_SHIFT) - 1)
/* An e820 entry as XENMEM_memory_map returns it: the BIOS INT 15h E820 layout (packed:
 * u64 address, u64 size, u32 type), which the public header names but does not define */
#define E820_ENTRY_SIZE 20u
/* Xen's CONFIG_DOMU_MAX_ORDER on x86: the largest extent a domU may ask for */
#define DOMU_MAX_ORDER 9u
/* Pages a reservation call handles before it yields to the machine's loop (Xen's
 * hypercall_preempt_check) and continues with its start extent in the command */
#define MEMOP_PAGE_BUDGET 4096u
/* Xen's DOMID_FIRST_RESERVED (DOMID_SELF and the other special ids lie at or above it) */
#define DOMID_RESERVED_FIRST 0x7ff0u

static struct guest_mem *gmem(struct xcall *k)
{
    return k->c->mem;
}

/* The domain a domid_t names: this guest (DOMID_SELF or its own id), dom0 (where
 * nestor's backends are: it exists, and a domU may not look at it), or none. */
long xen_own_domain(const struct xen *x, u16 domid)
{
    if (domid == DOMID_SELF || domid == x->cfg.domid)
        return 0;
    return domid == 0 ? -EPERM : -ESRCH;
}

/* Xen's max_pages: the RAM the domain was built with (the frames of the RAM layout) */
static u64 max_pages(const struct guest_mem *m)
{
    u64 n = 0;
    for (int i = 0; i < m->nregions; i++)
        n += m->region[i].size >> 12;
    return n;
}

/* Xen's tot_pages: RAM in frames and the pages the domain owns that no frame holds */
static u64 tot_pages(const struct xen *x, const struct guest_mem *m)
{
    return m->ram_frames + x->mem_unmapped;
}

/* A frame the guest's p2m can hold: within its physical address width */
static bool gfn_ok(struct xcall *k, u64 gfn)
{
    return gfn <= MASK(k->c->model->phys_bits - 12);
}

/* ---- Xen's pages in the map ---- */
/* A page of Xen's that was at gfn is gone from there (removed, or replaced): its owner
 * learns it. */
static void xen_page_gone(struct xen *x, u64 gfn, const u8 *page)
{
    if (page == x->shinfo_page)
        x->shinfo_placed = false;
    else
        xen_gnttab_frame_gone(x, gfn);
}

/* Whatever frame gfn holds leaves it, as Xen's add_to_physmap and populate do with the
 * previous page: domain RAM is freed (or, with keep, stays the domain's in no frame:
 * Xen's populate over RAM), a page of Xen's is unhooked. */
static void clear_frame(struct xen *x, struct guest_mem *m, u64 gfn, bool keep)
{
    u8 *page;
    enum mem_frame_kind k = mem_frame_remove(m, gfn, &page);
    if (k == MEM_FRAME_RAM && keep)
        x->mem_unmapped++;
    else if (k == MEM_FRAME_FOREIGN)
        xen_page_gone(x, gfn, page);
}

void xen_memory_destroy(struct xen *x)
{
    if (!x->shinfo_page)
        return;
    struct guest_mem *m = x->host.ncpus ? x->host.cpus[0]->mem : NULL;
    if (m) {
        u64 gfn = mem_frame_of(m, x->shinfo_page);
        if (gfn != MEM_NO_GFN)
            mem_frame_remove(m, gfn, NULL);
    }
    free(x->shinfo_page);
    x->shinfo_page = NULL;
    x->shinfo_placed = false;
}

/* XENMAPSPACE_shared_info: Xen's page goes to frame gfn: what was there leaves (RAM is
 * freed), the frame it was at holds nothing. The first placement writes the wall clock
 * and the vCPUs' time into the fresh page. */
static long place_shared_info(struct xcall *k, u64 gfn)
{
    struct xen *x = k->x;
    struct guest_mem *m = gmem(k);
    if (!gfn_ok(k, gfn))
        return -EINVAL;
    if (x->shinfo_placed && x->shinfo_gpa == gfn << 12)
        return 0;
    bool first = !x->shinfo_page;
    if (first && !(x->shinfo_page = calloc(1, 4096)))
        return -ENOMEM;
    clear_frame(x, m, gfn, false);
    u64 old = mem_frame_of(m, x->shinfo_page);
    if (old != MEM_NO_GFN)
        mem_frame_remove(m, old, NULL);
    x->shinfo_placed = false;
    if (mem_frame_place(m, gfn, x->shinfo_page, &x->shinfo_gen))
        return -ENOMEM;
    x->shinfo_placed = true;
    x->shinfo_gpa = gfn << 12;
    if (first)
        xen_write_wallclock(x, m);
    for (int i = 0; i < x->host.ncpus; i++)
        if (!x->vcpu[i].info_registered)
            xen_update_time(x, x->host.cpus[i]);
    return 0;
}

/* XENMAPSPACE_gmfn: the page at frame idx moves to gpfn (what was there leaves; idx then
 * holds nothing). Domain RAM and shared_info move; a frame holding nothing, or a grant
 * frame (nestor keeps those where the grant table placed them), is -EINVAL. */
static long move_gmfn(struct xcall *k, u64 idx, u64 gpfn)
{
    struct xen *x = k->x;
    struct guest_mem *m = gmem(k);
    u8 *page;
    enum mem_frame_kind kind = mem_frame_at(m, idx, &page);
    if (kind == MEM_FRAME_FOREIGN && page == x->shinfo_page)
        return place_shared_info(k, gpfn);
    if (kind != MEM_FRAME_RAM || !gfn_ok(k, gpfn))
        return -EINVAL;
    if (idx == gpfn)
        return 0;
    clear_frame(x, m, gpfn, false);
    return mem_frame_move(m, idx, gpfn) ? -ENOMEM : 0;
}

/* A grant frame through gnttab.c, which places it (guest_mem frees RAM it replaces);
 * a page of Xen's it replaced is gone for its owner. */
static long place_grant_frame(struct xcall *k, u64 idx, u64 gpfn)
{
    u8 *prev, *now;
    struct guest_mem *m = gmem(k);
    enum mem_frame_kind kind = mem_frame_at(m, gpfn, &prev);
    long rc = xen_gnttab_map_frame(k->x, idx, gpfn);
    if (!rc && kind == MEM_FRAME_FOREIGN && (mem_frame_at(m, gpfn, &now), now != prev))
        xen_page_gone(k->x, gpfn, prev);
    return rc;
}

/* Xen's xenmem_add_to_physmap_one for an HVM domU, one page of a space */
static long add_one(struct xcall *k, unsigned space, u64 idx, u64 gpfn)
{
    switch (space) {
    case XENMAPSPACE_shared_info:
        return idx == 0 ? place_shared_info(k, gpfn) : -EINVAL;
    case XENMAPSPACE_grant_table:
        return place_grant_frame(k, idx, gpfn);
    case XENMAPSPACE_gmfn:
        return move_gmfn(k, idx, gpfn);
    case XENMAPSPACE_gmfn_foreign:
        return -EPERM; /* foreign pages are the hardware and control domains' */
    default:
        return -EINVAL;
    }
}

/* Xen's xatp_permission_check after the domain lookup: dev_mmio is the hardware domain's
 * for itself (-EACCES), another domain's map is not ours (-EPERM / -ESRCH). */
static long physmap_permission(const struct xen *x, u16 domid, unsigned space)
{
    long rc = xen_own_domain(x, domid);
    if (rc == -ESRCH)
        return rc;
    if (space == XENMAPSPACE_dev_mmio)
        return -EACCES;
    return rc;
}

/* XENMEM_add_to_physmap: struct xen_add_to_physmap natively; in the 32-bit layout idx
 * (xen_ulong_t) and gpfn (xen_pfn_t) are 32-bit words at 8 and 12 (16 bytes). gmfn_range
 * moves size pages from idx on to gpfn on; a continuation's start (the command's upper
 * bits) skips that many, as Xen's own continuation does (the guest's struct is left as
 * it is). */
static long add_to_physmap(struct xcall *k, u64 arg, u32 start)
{
    struct xen_add_to_physmap a = { 0 };
    if (k->compat) {
        u8 b[16];
        if (xen_copy_from(k, arg, b, sizeof(b)))
            return -EFAULT;
        u32 idx, gpfn;
        memcpy(&a.domid, b, 2);
        memcpy(&a.size, b + 2, 2);
        memcpy(&a.space, b + 4, 4);
        memcpy(&idx, b + 8, 4);
        memcpy(&gpfn, b + 12, 4);
        a.idx = idx;
        a.gpfn = gpfn;
    } else if (xen_copy_from(k, arg, &a, sizeof(a))) {
        return -EFAULT;
    }
    if (a.space == XENMAPSPACE_gmfn_foreign)
        return -ENOSYS; /* only through add_to_physmap_batch, as in Xen */
    long rc = physmap_permission(k->x, a.domid, a.space);
    if (rc)
        return rc;
    if (a.space != XENMAPSPACE_gmfn_range)
        return add_one(k, a.space, a.idx, a.gpfn);
    if (a.size < start)
        return -EILSEQ;
    for (u32 i = start; i < a.size; i++)
        if ((rc = move_gmfn(k, a.idx + i, a.gpfn + i)) < 0)
            return rc;
    return 0;
}

/* XENMEM_add_to_physmap_batch: domid, space, size, the foreign domid / res0 (8 bytes),
 * then the handles idxs (xen_ulong_t), gpfns (xen_pfn_t) and errs (int): 64-bit handles
 * and entries natively, 32-bit ones in the x86_32 layout. Each page's result goes to
 * errs; the call itself fails only for the batch as a whole. */
static long add_to_physmap_batch(struct xcall *k, u64 arg, u32 start)
{
    unsigned w = k->compat ? 4 : 8;
    u8 b[sizeof(struct xen_add_to_physmap_batch)];
    if (xen_copy_from(k, arg, b, 8 + 3 * w))
        return -EFAULT;
    u16 domid, space, size, res0;
    u64 idxs = 0, gpfns = 0, errs = 0;
    memcpy(&domid, b, 2);
    memcpy(&space, b + 2, 2);
    memcpy(&size, b + 4, 2);
    memcpy(&res0, b + 6, 2);
    memcpy(&idxs, b + 8, w);
    memcpy(&gpfns, b + 8 + w, w);
    memcpy(&errs, b + 8 + 2 * w, w);
    if (space == XENMAPSPACE_gmfn_range)
        return -EOPNOTSUPP;
    long rc = physmap_permission(k->x, domid, space);
    if (rc)
        return rc;
    if (size < start)
        return -EILSEQ;
    if (size == start)
        return start ? -EILSEQ : 0;
    for (u32 i = start; i < size; i++) {
        u64 idx = 0, gpfn = 0;
        if (xen_copy_from(k, idxs + (u64)i * w, &idx, w) || xen_copy_from(k, gpfns + (u64)i * w, &gpfn, w))
            return -EFAULT;
        s32 err = (s32)add_one(k, space, idx, gpfn);
        if (xen_copy_to(k, errs + 4ull * i, &err, 4))
            return -EFAULT;
    }
    return 0;
}

/* XENMEM_remove_from_physmap: domid at 0, gpfn at 8 (at 4, 32 bits wide, in the x86_32
 * layout). The page leaves the frame: a page of Xen's is unhooked, domain RAM stays the
 * domain's (Xen only drops the mapping; nestor gives the memory back, the count keeps
 * it). Nothing there: -ENOENT. */
static long remove_from_physmap(struct xcall *k, u64 arg)
{
    u8 b[16];
    if (xen_copy_from(k, arg, b, k->compat ? 8 : 16))
        return -EFAULT;
    u16 domid;
    u64 gpfn = 0;
    memcpy(&domid, b, 2);
    memcpy(&gpfn, b + (k->compat ? 4 : 8), k->compat ? 4 : 8);
    long rc = xen_own_domain(k->x, domid);
    if (rc)
        return rc;
    struct guest_mem *m = gmem(k);
    if (mem_frame_at(m, gpfn, NULL) == MEM_FRAME_NONE)
        return -ENOENT;
    clear_frame(k->x, m, gpfn, true);
    return 0;
}

/* ---- reservations: increase, decrease, populate ---- */
struct reservation {
    u64 list;        /* extent_start: frame numbers of the ABI's width */
    u64 nr_extents;
    u32 order;
    u32 flags;       /* XENMEMF_* */
    u16 domid;
};

/* struct xen_memory_reservation natively; in the x86_32 layout extent_start and
 * nr_extents are 32-bit words (handle at 0, nr at 4, order at 8, flags at 12, domid at
 * 16) */
static int read_reservation(struct xcall *k, u64 arg, struct reservation *r)
{
    if (k->compat) {
        u8 b[20]; /* 18 bytes and the struct's padding, as Xen copies it */
        if (xen_copy_from(k, arg, b, sizeof(b)))
            return -EFAULT;
        u32 list, nr;
        memcpy(&list, b, 4);
        memcpy(&nr, b + 4, 4);
        memcpy(&r->order, b + 8, 4);
        memcpy(&r->flags, b + 12, 4);
        memcpy(&r->domid, b + 16, 2);
        r->list = list;
        r->nr_extents = nr;
        return 0;
    }
    struct xen_memory_reservation n;
    if (xen_copy_from(k, arg, &n, sizeof(n)))
        return -EFAULT;
    r->list = (u64)(uintptr_t)n.extent_start.p;
    r->nr_extents = n.nr_extents;
    r->order = n.extent_order;
    r->flags = n.mem_flags;
    r->domid = n.domid;
    return 0;
}

/* Xen's construct_memop_from_reservation for a domU: an address width of at most a page
 * cannot be met, an exact NUMA node is the control domain's to ask (a vnode request with
 * no vNUMA is no request) */
static bool memflags_ok(u32 flags)
{
    u32 bits = XENMEMF_get_address_bits(flags);
    if (bits && bits <= 12)
        return false;
    if (flags & XENMEMF_vnode)
        return true;
    return XENMEMF_get_node(flags) == 0xff || !(flags & XENMEMF_exact_node_request);
}

static bool read_extent(struct xcall *k, u64 list, u64 i, u64 *gfn)
{
    unsigned w = k->compat ? 4 : 8;
    *gfn = 0;
    return !xen_copy_from(k, list + i * w, gfn, w);
}

/* Xen's decrease_reservation: each page of each extent leaves its frame (domain RAM is
 * freed, a page of Xen's unhooked); a frame holding nothing ends the call there. */
static bool decrease_one(struct xcall *k, u64 gfn, u32 order)
{
    struct guest_mem *m = gmem(k);
    for (u64 j = 0; j < (1ull << order); j++) {
        if (mem_frame_at(m, gfn + j, NULL) == MEM_FRAME_NONE)
            return false;
        clear_frame(k->x, m, gfn + j, false);
    }
    return true;
}

/* Xen's populate_physmap for an HVM domU: 2^order fresh, zeroed pages from gfn on (Xen's
 * p2m maps an unaligned extent page by page), within max_pages; what the frames held
 * leaves them (domain RAM stays the domain's, in no frame, as in Xen). An extent beyond
 * the guest's physical width ends the call (Xen's p2m refuses it; nestor allocates
 * nothing for it). */
static bool populate_one(struct xcall *k, u64 gfn, u32 order, u32 flags)
{
    struct guest_mem *m = gmem(k);
    u64 n = 1ull << order;
    if (flags & XENMEMF_populate_on_demand)
        return false; /* PoD on oneself: refused */
    if (tot_pages(k->x, m) + n > max_pages(m))
        return false;
    if (!gfn_ok(k, gfn + n - 1) || gfn + n - 1 < gfn)
        return false;
    for (u64 j = 0; j < n; j++) {
        clear_frame(k->x, m, gfn + j, true);
        if (mem_frame_populate(m, gfn + j))
            return false;
    }
    return true;
}

/* XENMEM_increase_reservation for a translated guest: the pages are the domain's but in
 * no frame (the list is neither read nor written), within max_pages */
static bool increase_one(struct xcall *k, u32 order)
{
    u64 n = 1ull << order;
    if (tot_pages(k->x, gmem(k)) + n > max_pages(gmem(k)))
        return false;
    k->x->mem_unmapped += n;
    return true;
}

/* The three reservation ops as Xen's do_memory_op runs them: any failure before the
 * first extent answers the start extent; the result is the number of extents done. A
 * long call yields to the machine's loop after MEMOP_PAGE_BUDGET pages and runs again
 * with its progress in the command, as Xen's continuation (not inside a multicall). */
static long reservation_op(struct xcall *k, u32 op, u32 start)
{
    struct reservation r;
    if (read_reservation(k, k->arg[1], &r))
        return start;
    if (r.nr_extents > (0xffffffffu >> MEMOP_EXTENT_SHIFT) || start >= r.nr_extents)
        return start;
    if (xen_own_domain(k->x, r.domid))
        return start;
    if (!memflags_ok(r.flags))
        return start;
    u32 max_order = op == XENMEM_populate_physmap && (r.flags & XENMEMF_populate_on_demand)
                        ? 18u /* Xen's MAX_ORDER for PoD */ : DOMU_MAX_ORDER;
    if (r.order > max_order)
        return start;
    u64 pages = 0;
    u64 i;
    for (i = start; i < r.nr_extents; i++) {
        if (i != start && pages >= MEMOP_PAGE_BUDGET && !k->x->vcpu[k->c->id].in_multicall) {
            struct cpu *c = k->c;
            c->gpr[k->compat ? R_RBX : R_RDI] = op | (i << MEMOP_EXTENT_SHIFT);
            cpu_branch(c, c->rip);
            return __HYPERVISOR_memory_op;
        }
        u64 gfn;
        bool ok;
        if (op == XENMEM_increase_reservation) {
            ok = increase_one(k, r.order);
        } else if (!read_extent(k, r.list, i, &gfn)) {
            ok = false;
        } else {
            ok = op == XENMEM_decrease_reservation ? decrease_one(k, gfn, r.order)
                                                   : populate_one(k, gfn, r.order, r.flags);
        }
        if (!ok)
            break;
        pages += 1ull << r.order;
    }
    return (long)i;
}

static long memory_map(struct xcall *k, u64 arg)
{
    /* struct xen_memory_map: nr_entries, then the buffer handle (a 32-bit pointer right
     * after it in the compat layout, an aligned 64-bit one natively) */
    u32 nr;
    u64 buffer;
    size_t handle_off = k->compat ? 4 : offsetof(struct xen_memory_map, buffer);
    if (xen_copy_from(k, arg, &nr, sizeof(nr)))
        return -EFAULT;
    if (k->compat) {
        u32 b;
        if (xen_copy_from(k, arg + handle_off, &b, sizeof(b)))
            return -EFAULT;
        buffer = b;
    } else if (xen_copy_from(k, arg + handle_off, &buffer, sizeof(buffer))) {
        return -EFAULT;
    }
    const struct guest_mem *mem = gmem(k);
    if (nr > (u32)mem->ne820)
        nr = (u32)mem->ne820;
    for (u32 i = 0; i < nr; i++) {
        u8 e[E820_ENTRY_SIZE];
        memcpy(e, &mem->e820[i].addr, 8);
        memcpy(e + 8, &mem->e820[i].size, 8);
        memcpy(e + 16, &mem->e820[i].type, 4);
        if (xen_copy_to(k, buffer + i * E820_ENTRY_SIZE, e, sizeof(e)))
            return -EFAULT;
    }
    return xen_copy_to(k, arg, &nr, sizeof(nr));
}

/* XENMEM_get_pod_target / set_pod_target (x86's arch_memory_op): the toolstack's; a
 * domU's own id is -EPERM, DOMID_SELF is not accepted (-EINVAL). The fields lie alike in
 * both ABIs (domid at 32); the x86_32 struct ends 4 bytes earlier (36 bytes). */
static long pod_target(struct xcall *k, u64 arg)
{
    struct xen_pod_target t;
    if (xen_copy_from(k, arg, &t, k->compat ? 36 : sizeof(t)))
        return -EFAULT;
    if (t.domid >= DOMID_RESERVED_FIRST)
        return -EINVAL;
    long rc = xen_own_domain(k->x, t.domid);
    return rc == -ESRCH ? rc : -EPERM;
}

/* The sub-ops of an HVM domU. Not implemented: exchange, claim_pages, acquire_resource,
 * maximum_ram_page and the toolstack's and PV guests' ops (-ENOSYS). */
long xen_do_memory_op(struct xcall *k)
{
    u32 cmd = (u32)k->arg[0], op = cmd & MEMOP_CMD_MASK, start = cmd >> MEMOP_EXTENT_SHIFT;
    u64 arg = k->arg[1];
    switch (op) {
    case XENMEM_increase_reservation:
    case XENMEM_decrease_reservation:
    case XENMEM_populate_physmap:
        return reservation_op(k, op, start);
    case XENMEM_current_reservation:
    case XENMEM_maximum_reservation:
    case XENMEM_maximum_gpfn: {
        if (start)
            return -EINVAL;
        domid_t domid;
        if (xen_copy_from(k, arg, &domid, sizeof(domid)))
            return -EFAULT;
        long rc = xen_own_domain(k->x, domid);
        if (rc)
            return rc;
        struct guest_mem *m = gmem(k);
        if (op == XENMEM_current_reservation)
            return (long)tot_pages(k->x, m);
        return (long)(op == XENMEM_maximum_reservation ? max_pages(m) : m->max_gfn);
    }
    case XENMEM_add_to_physmap:
    case XENMEM_add_to_physmap_batch:
        /* a continuation's start extent must fit the 16-bit size field */
        if (start > 0xffff)
            return -EDOM;
        return op == XENMEM_add_to_physmap ? add_to_physmap(k, arg, start)
                                           : add_to_physmap_batch(k, arg, start);
    case XENMEM_remove_from_physmap:
        return start ? -EINVAL : remove_from_physmap(k, arg);
    }
    /* x86's own ops take the command whole */
    switch (cmd) {
    case XENMEM_memory_map:
        return memory_map(k, arg);
    case XENMEM_get_pod_target:
    case XENMEM_set_pod_target:
        return pod_target(k, arg);
    default:
        return -ENOSYS;
    }
}

/* memory_op: the guest's physical memory as Xen describes and changes it for an HVM
 * domU (xen/common/memory.c, xen/arch/x86/mm.c, xen/common/compat/memory.c). The
 * physical map itself is guest_mem's frame map (machine/mem.h): a frame holds RAM,
 * nothing (ballooned out or moved away: its accesses take the MMIO path, where nothing
 * answers: all-ones, writes dropped, as Xen's device model answers p2m_invalid), or a
 * page of Xen's (shared_info, grant and status frames). */
#include <stdlib.h>
#include <string.h>

/* the sub-ops a domU is refused (access_op, claim_pages, the reserved device memory
 * map...) are declared for Xen and the tools only: their guard asks for this */
#define __XEN_TOOLS__ 1
#include "hv/xen/xen_internal.h"
#include "cpu/exec.h"

#include <xen/memory.h>

/* memory_op's command: the op in bits 5:0, a continuation's start extent above (Xen's
 * MEMOP_CMD_MASK / MEMOP_EXTENT_SHIFT, which the public header keeps to Xen itself) */
#define MEMOP_EXTENT_SHIFT 6
#define MEMOP_CMD_MASK ((1u << MEMOP_EXTENT_SHIFT) - 1)
/* An e820 entry as XENMEM_memory_map returns it: the BIOS INT 15h E820 layout (packed:
 * u64 address, u64 size, u32 type), which the public header names but does not define */
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

/* Xen's max_page, the host's highest RAM frame + 1 (XENMEM_maximum_ram_page, and the
 * address width an allocation can be held to). nestor's machine has no memory of its
 * own beyond the guest's: the pages Xen would allocate from are the RAM layout's, so the
 * end of the RAM layout is the machine's max_page (a populated frame above it holds a
 * page that has a guest frame but no machine address). */
static u64 host_max_page(const struct guest_mem *m)
{
    return mem_ram_end(m->ram_size) >> 12;
}

/* Xen's allocator given XENMEMF_address_bits(bits) (MEMF_bits): nestor's pages have no
 * machine address below max_page that it could choose, so a width that does not cover
 * max_page (Xen's get_order_from_pages(max_page) + PAGE_SHIFT, the width
 * construct_memop_from_reservation takes for no restriction) cannot be met: the
 * allocation fails (-ENOMEM, or the extent is not done). 0: no restriction. */
static bool alloc_width_ok(const struct guest_mem *m, u32 flags)
{
    u32 bits = XENMEMF_get_address_bits(flags);
    u32 order = 0;
    while ((1ull << order) < host_max_page(m))
        order++;
    return bits == 0 || bits >= order + 12;
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
void xen_page_gone(struct xen *x, u64 gfn, const u8 *page)
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
    free(x->memmap);
    x->memmap = NULL;
    x->memmap_set = false;
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
 * 16; 18 bytes and the struct's padding, as Xen copies it) */
#define RESERVATION_SIZE_32 20u
static unsigned reservation_size(const struct xcall *k)
{
    return k->compat ? RESERVATION_SIZE_32 : (unsigned)sizeof(struct xen_memory_reservation);
}

static void parse_reservation(const struct xcall *k, const u8 *b, struct reservation *r)
{
    if (k->compat) {
        u32 list, nr;
        memcpy(&list, b, 4);
        memcpy(&nr, b + 4, 4);
        memcpy(&r->order, b + 8, 4);
        memcpy(&r->flags, b + 12, 4);
        memcpy(&r->domid, b + 16, 2);
        r->list = list;
        r->nr_extents = nr;
        return;
    }
    struct xen_memory_reservation n;
    memcpy(&n, b, sizeof(n));
    r->list = (u64)(uintptr_t)n.extent_start.p;
    r->nr_extents = n.nr_extents;
    r->order = n.extent_order;
    r->flags = n.mem_flags;
    r->domid = n.domid;
}

static int read_reservation(struct xcall *k, u64 arg, struct reservation *r)
{
    u8 b[sizeof(struct xen_memory_reservation)];
    if (xen_copy_from(k, arg, b, reservation_size(k)))
        return -EFAULT;
    parse_reservation(k, b, r);
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
    if (tot_pages(k->x, m) + n > max_pages(m) || !alloc_width_ok(m, flags))
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
static bool increase_one(struct xcall *k, u32 order, u32 flags)
{
    u64 n = 1ull << order;
    if (tot_pages(k->x, gmem(k)) + n > max_pages(gmem(k)) || !alloc_width_ok(gmem(k), flags))
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
            ok = increase_one(k, r.order, r.flags);
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
    struct xen *x = k->x;
    u32 have = x->memmap_set ? x->memmap_nr : (u32)mem->ne820;
    if (have == 0)
        return -ENOSYS; /* Xen: a domain without a map (here: one that set an empty one) */
    if (nr > have)
        nr = have;
    for (u32 i = 0; i < nr; i++) {
        u8 e[XEN_E820_ENTRY_SIZE];
        if (x->memmap_set) {
            memcpy(e, x->memmap + i * XEN_E820_ENTRY_SIZE, XEN_E820_ENTRY_SIZE);
        } else {
            memcpy(e, &mem->e820[i].addr, 8);
            memcpy(e + 8, &mem->e820[i].size, 8);
            memcpy(e + 16, &mem->e820[i].type, 4);
        }
        if (xen_copy_to(k, buffer + i * XEN_E820_ENTRY_SIZE, e, sizeof(e)))
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

/* ---- exchange ---- */
/* struct xen_memory_exchange: in, out, nr_exchanged (x86_32: two 20-byte reservations,
 * nr_exchanged a 32-bit word at 40) */
#define EXCHANGE_DONE_32 40u
struct exchange {
    struct reservation in, out;
    u64 nr_exchanged;
};

static int read_exchange(struct xcall *k, u64 arg, struct exchange *e)
{
    u8 b[sizeof(struct xen_memory_exchange)];
    unsigned rs = reservation_size(k);
    unsigned done_at = k->compat ? EXCHANGE_DONE_32 : (unsigned)offsetof(struct xen_memory_exchange, nr_exchanged);
    unsigned w = k->compat ? 4 : 8;
    if (xen_copy_from(k, arg, b, done_at + w))
        return -EFAULT;
    parse_reservation(k, b, &e->in);
    parse_reservation(k, b + rs, &e->out);
    e->nr_exchanged = 0;
    memcpy(&e->nr_exchanged, b + done_at, w);
    return 0;
}

static long write_exchanged(struct xcall *k, u64 arg, u64 done)
{
    unsigned w = k->compat ? 4 : 8;
    unsigned at = k->compat ? EXCHANGE_DONE_32 : (unsigned)offsetof(struct xen_memory_exchange, nr_exchanged);
    return xen_copy_to(k, arg + at, &done, w) ? -EFAULT : 0;
}

/* Xen's memory_exchange for a translated guest, over the input extents [nr_exchanged,
 * in.nr_extents) of e (the x86_32 layout passes its pieces here): chunk by chunk (the
 * larger of the two extents), every input page is taken from its frame and fresh zeroed
 * output pages are placed at the output list's frames (nothing is written to the list: a
 * translated guest names its frames). A chunk is taken whole or not at all: an input
 * frame that holds no RAM page of the domain (nothing, a page of Xen's, a page already
 * taken in the chunk: Xen's steal_page) is -EINVAL, an unreadable list -EFAULT, an
 * address width that cannot be met -ENOMEM. Only an unreadable output entry fails after
 * the inputs are gone (as in Xen): its pages stay the domain's in no frame, and so does
 * an output extent beyond the guest's physical width (Xen's p2m refuses it silently).
 * tot_pages never changes. e->nr_exchanged tells how far it came; *preempt: it stopped
 * after MEMOP_PAGE_BUDGET pages to continue. */
static long exchange_run(struct xcall *k, struct exchange *e, bool *preempt)
{
    struct xen *x = k->x;
    struct guest_mem *m = gmem(k);
    struct reservation *in = &e->in, *out = &e->out;
    *preempt = false;
    if ((in->order > out->order ? in->order : out->order) > DOMU_MAX_ORDER)
        return -EPERM;
    if (e->nr_exchanged > in->nr_extents || in->domid != out->domid ||
        (~0ull >> in->order) < in->nr_extents || (~0ull >> out->order) < out->nr_extents ||
        in->nr_extents << in->order != out->nr_extents << out->order)
        return -EINVAL;
    long rc = xen_own_domain(x, in->domid);
    if (rc)
        return rc;
    u32 in_chunk = in->order <= out->order ? out->order - in->order : 0;
    u32 out_chunk = in->order <= out->order ? 0 : in->order - out->order;
    u64 chunk_pages = 1ull << (in_chunk + in->order);
    u64 *gfns = malloc(chunk_pages * sizeof(*gfns)); /* at most 2^9 */
    if (!gfns)
        return -ENOMEM;
    u64 first = e->nr_exchanged >> in_chunk, pages = 0, i;
    for (i = first; i < in->nr_extents >> in_chunk; i++) {
        if (i != first && pages >= MEMOP_PAGE_BUDGET && !x->vcpu[k->c->id].in_multicall) {
            *preempt = true;
            break;
        }
        /* the chunk's input pages: each a RAM page, each once */
        u64 n = 0;
        for (u64 j = 0; j < (1ull << in_chunk) && !rc; j++) {
            u64 gmfn;
            if (!read_extent(k, in->list, (i << in_chunk) + j, &gmfn)) {
                rc = -EFAULT;
                break;
            }
            for (u64 p = 0; p < (1ull << in->order) && !rc; p++) {
                u64 gfn = gmfn + p;
                if (gfn < gmfn || mem_frame_at(m, gfn, NULL) != MEM_FRAME_RAM)
                    rc = -EINVAL;
                for (u64 q = 0; q < n && !rc; q++)
                    if (gfns[q] == gfn)
                        rc = -EINVAL;
                gfns[n++] = gfn;
            }
        }
        if (!rc && !alloc_width_ok(m, out->flags))
            rc = -ENOMEM;
        if (rc)
            break;
        for (u64 q = 0; q < n; q++)
            mem_frame_remove(m, gfns[q], NULL);
        for (u64 j = 0; j < (1ull << out_chunk); j++) {
            u64 gpfn, np = 1ull << out->order;
            if (!read_extent(k, out->list, (i << out_chunk) + j, &gpfn)) {
                rc = -EFAULT;
                x->mem_unmapped += np;
                continue;
            }
            if (!gfn_ok(k, gpfn + np - 1) || gpfn + np - 1 < gpfn) {
                x->mem_unmapped += np;
                continue;
            }
            for (u64 p = 0; p < np; p++) {
                clear_frame(x, m, gpfn + p, true);
                if (mem_frame_populate(m, gpfn + p))
                    x->mem_unmapped++; /* no host memory: the page is the domain's, in no frame */
            }
        }
        if (rc)
            break;
        pages += chunk_pages;
    }
    free(gfns);
    e->nr_exchanged = *preempt || rc ? i << in_chunk : in->nr_extents;
    return rc;
}

/* XENMEM_exchange. Natively Xen's memory_exchange, which writes nr_exchanged back on
 * every answer but the first copy's -EFAULT. The x86_32 layout is translated first
 * (Xen's compat_memory_op): its own checks (-EINVAL; an nr_exchanged within an output
 * chunk; sizes that overflow 32 bits; -E2BIG for an order difference no translation
 * buffer holds), then pieces of as many extents as Xen's buffer holds, each reading its
 * input list first (-EFAULT) and giving nr_exchanged back only when it succeeds. A
 * preempted call continues as XENMEM_exchange with its progress in nr_exchanged. */
#define COMPAT_XLAT_SIZE 8192u   /* Xen's COMPAT_ARG_XLAT_SIZE: two pages */
static long exchange(struct xcall *k, u64 arg, u32 start)
{
    if (start)
        return -EINVAL;
    struct exchange e;
    if (read_exchange(k, arg, &e))
        return -EFAULT;
    bool preempt = false;
    long rc;
    if (!k->compat) {
        rc = exchange_run(k, &e, &preempt);
        if (write_exchanged(k, arg, e.nr_exchanged))
            return -EFAULT;
    } else {
        int delta = (int)e.out.order - (int)e.in.order;
        if (e.nr_exchanged > e.in.nr_extents ||
            (delta > 0 && (delta >= 32 || (e.nr_exchanged & ((1u << delta) - 1)))) ||
            e.in.order >= 32 || e.out.order >= 32 ||
            (0xffffffffu >> e.in.order) < e.in.nr_extents ||
            (0xffffffffu >> e.out.order) < e.out.nr_extents ||
            (u32)(e.in.nr_extents << e.in.order) != (u32)(e.out.nr_extents << e.out.order))
            return -EINVAL;
        u32 ad = (u32)(delta < 0 ? -delta : delta);
        /* the native struct (72 bytes) and both lists, as xen_pfn_t, in the buffer */
        u64 piece = ad >= 32 ? 0
                             : (COMPAT_XLAT_SIZE - sizeof(struct xen_memory_exchange)) /
                                   (((1ull << ad) + 1) * sizeof(xen_pfn_t));
        if (piece == 0)
            return -E2BIG;
        if (delta > 0)
            piece <<= delta;
        struct exchange all = e;
        u64 from = e.nr_exchanged;
        do { /* at least one piece: an empty exchange is checked too */
            u64 end = e.nr_exchanged + piece < all.in.nr_extents ? e.nr_exchanged + piece
                                                                  : all.in.nr_extents;
            for (u64 i = e.nr_exchanged; i < end; i++) {
                u64 gmfn;
                if (!read_extent(k, all.in.list, i, &gmfn))
                    return -EFAULT;
            }
            e.in.nr_extents = end;
            e.out.nr_extents = delta >= 0 ? end >> delta : end << -delta;
            rc = exchange_run(k, &e, &preempt);
            if (rc < 0)
                return rc;
            if (write_exchanged(k, arg, e.nr_exchanged))
                return -EFAULT;
            /* between pieces too (Xen's compat loop checks for preemption there) */
            if (((e.nr_exchanged - from) << all.in.order) >= MEMOP_PAGE_BUDGET &&
                e.nr_exchanged < all.in.nr_extents && !k->x->vcpu[k->c->id].in_multicall)
                preempt = true;
        } while (!preempt && e.nr_exchanged < all.in.nr_extents);
    }
    if (rc || !preempt)
        return rc;
    struct cpu *c = k->c;
    c->gpr[k->compat ? R_RBX : R_RDI] = XENMEM_exchange;
    cpu_branch(c, c->rip);
    return __HYPERVISOR_memory_op;
}

/* ---- the other sub-ops ---- */
/* XENMEM_claim_pages: the reservation's shape (a NULL list, order 0, no flags: else
 * -EINVAL), the domain by its id only (DOMID_SELF and unknown ids: -EINVAL), then XSM's
 * XSM_PRIV: a domU may not claim, -EPERM. Xen's compat_memory_op does not translate it:
 * the x86_32 layout gets compat_arch_memory_op's -ENOSYS. */
static long claim_pages(struct xcall *k, u64 arg, u32 start)
{
    if (k->compat)
        return -ENOSYS;
    if (start)
        return -EINVAL;
    struct reservation r;
    if (read_reservation(k, arg, &r))
        return -EFAULT;
    if (r.list || r.order || r.flags)
        return -EINVAL;
    if (r.domid != k->x->cfg.domid && r.domid != 0)
        return -EINVAL;
    return -EPERM;
}

/* XENMEM_get_vnumainfo: struct xen_vnuma_topology_info (40 bytes in both layouts):
 * domid, pad (non-zero: -EINVAL), then the domain (-ESRCH; dom0: XSM's -EPERM). nestor
 * gives the domain no vNUMA topology: -EOPNOTSUPP, as Xen answers a domain without one.
 * The x86_32 layout is copied in before the start extent is looked at. */
#define VNUMA_TOPOLOGY_SIZE 40u
static long get_vnumainfo(struct xcall *k, u64 arg, u32 start)
{
    if (start && !k->compat)
        return -EINVAL;
    u8 b[VNUMA_TOPOLOGY_SIZE];
    if (xen_copy_from(k, arg, b, sizeof(b)))
        return -EFAULT;
    if (start)
        return -EINVAL;
    u16 domid, pad;
    memcpy(&domid, b, 2);
    memcpy(&pad, b + 2, 2);
    if (pad)
        return -EINVAL;
    long rc = xen_own_domain(k->x, domid);
    return rc ? rc : -EOPNOTSUPP;
}

/* XENMEM_reserved_device_memory_map: flags, nr_entries, buffer, dev (24 bytes; x86_32:
 * 16). Flags beyond XENMEM_RDM_ALL: -EINVAL. nestor's machine has no IOMMU and so no
 * reserved regions (Xen's iommu_get_reserved_device_memory without one): nr_entries
 * becomes 0 and the call succeeds. */
static long reserved_device_memory_map(struct xcall *k, u64 arg, u32 start)
{
    if (start)
        return -EINVAL;
    u8 b[24];
    if (xen_copy_from(k, arg, b, k->compat ? 16 : 24))
        return -EFAULT;
    u32 flags, none = 0;
    memcpy(&flags, b, 4);
    if (flags & ~(u32)XENMEM_RDM_ALL)
        return -EINVAL;
    return xen_copy_to(k, arg + 4, &none, 4) ? -EFAULT : 0;
}

/* XENMEM_acquire_resource: Xen's arch_acquire_resource_check lets a translated domain
 * map resource pages only if it is the hardware domain: an HVM domU gets -EACCES before
 * the native code reads its argument. The x86_32 layout (frame_list a 32-bit handle at
 * 24) is translated first: the struct (-EFAULT), then, with a frame list and frames, a
 * start extent not below nr_frames (-EINVAL) and the list itself, as much of it as Xen's
 * translation buffer holds (-EFAULT), as a translated guest's list is input. */
#define ACQUIRE_FRAME_LIST_32 24u
static long acquire_resource(struct xcall *k, u64 arg, u32 start)
{
    if (!k->compat)
        return -EACCES;
    u8 b[ACQUIRE_FRAME_LIST_32 + 4];
    if (xen_copy_from(k, arg, b, sizeof(b)))
        return -EFAULT;
    u32 nr, list;
    memcpy(&nr, b + offsetof(struct xen_mem_acquire_resource, nr_frames), 4);
    memcpy(&list, b + ACQUIRE_FRAME_LIST_32, 4);
    if (list && nr) {
        if (start >= nr)
            return -EINVAL;
        u64 max = (COMPAT_XLAT_SIZE - sizeof(struct xen_mem_acquire_resource)) / sizeof(xen_pfn_t);
        u64 n = nr - start < max ? nr - start : max;
        for (u64 i = 0; i < n; i++) {
            u64 f;
            if (!read_extent(k, list, i, &f))
                return -EFAULT;
        }
    }
    return -EACCES;
}

/* XENMEM_access_op (Xen's mem_access_memop): struct xen_mem_access_op (32 bytes; x86_32:
 * the two lists 32-bit handles, 24), then the live remote domain by id: DOMID_SELF is
 * no id (-ESRCH), the domain itself is not remote (-EPERM); dom0, a PV domain, fails
 * p2m_mem_access_sanity_check (-EINVAL) before XSM is asked. */
#define MEM_ACCESS_OP_SIZE_32 24u
static long access_op(struct xcall *k, u64 arg, u32 start)
{
    (void)start;
    struct xen_mem_access_op a;
    if (xen_copy_from(k, arg, &a, k->compat ? MEM_ACCESS_OP_SIZE_32 : sizeof(a)))
        return -EFAULT;
    if (a.domid == k->x->cfg.domid)
        return -EPERM;
    return a.domid == 0 ? -EINVAL : -ESRCH;
}

/* XENMEM_set_memory_map: struct xen_foreign_memory_map (domid, nr_entries at 8 and the
 * buffer at 16; x86_32: nr at 4, buffer at 8). More than Xen's E820MAX entries is
 * -EINVAL, then the domain (-ESRCH; dom0: -EPERM); XSM_TARGET lets a domain set its own
 * map, which XENMEM_memory_map reports from then on (an empty one: -ENOSYS there). */
static long set_memory_map(struct xcall *k, u64 arg)
{
    u8 b[24];
    if (xen_copy_from(k, arg, b, k->compat ? 12 : 24))
        return -EFAULT;
    u16 domid;
    u32 nr;
    u64 buffer = 0;
    memcpy(&domid, b, 2);
    memcpy(&nr, b + (k->compat ? 4 : 8), 4);
    memcpy(&buffer, b + (k->compat ? 8 : 16), k->compat ? 4 : 8);
    if (nr > XEN_E820_MAX)
        return -EINVAL;
    long rc = xen_own_domain(k->x, domid);
    if (rc)
        return rc;
    u8 *map = malloc(nr ? (size_t)nr * XEN_E820_ENTRY_SIZE : 1);
    if (!map)
        return -ENOMEM;
    if (nr && xen_copy_from(k, buffer, map, (size_t)nr * XEN_E820_ENTRY_SIZE)) {
        free(map);
        return -EFAULT;
    }
    free(k->x->memmap);
    k->x->memmap = map;
    k->x->memmap_nr = nr;
    k->x->memmap_set = true;
    return 0;
}

/* XENMEM_machphys_mfn_list / machphys_compat_mfn_list: struct xen_machphys_mfn_list
 * (max_extents, the list, nr_extents: 24 bytes; x86_32: 12). Xen lists the machine
 * frames of its machine-to-phys table; nestor's machine keeps no such table (the guest's
 * frames are the machine's): the list is empty, nr_extents 0. */
static long machphys_mfn_list(struct xcall *k, u64 arg)
{
    u8 b[24];
    if (xen_copy_from(k, arg, b, k->compat ? 12 : 24))
        return -EFAULT;
    u32 none = 0;
    return xen_copy_to(k, arg + (k->compat ? 8 : 16), &none, 4) ? -EFAULT : 0;
}

/* The sub-ops of an HVM domU, in Xen 4.17's order: do_memory_op's common ops (by the
 * op, the command's upper bits their start extent), then x86's arch_memory_op (by the
 * whole command). -ENOSYS, as Xen's default build answers: the numbers without an op (8,
 * translate_gpfn_list, is gone), the sharing and paging ops and their counts
 * (CONFIG_MEM_SHARING and CONFIG_MEM_PAGING are off in 4.17 unless UNSUPPORTED is on),
 * machphys_mapping and machine_memory_map (hvm_memory_op refuses them before anything:
 * an HVM guest has no machine-to-phys window and no machine map). */
long xen_do_memory_op(struct xcall *k)
{
    u32 cmd = (u32)k->arg[0], op = cmd & MEMOP_CMD_MASK, start = cmd >> MEMOP_EXTENT_SHIFT;
    u64 arg = k->arg[1];
    switch (op) {
    case XENMEM_increase_reservation:
    case XENMEM_decrease_reservation:
    case XENMEM_populate_physmap:
        return reservation_op(k, op, start);
    case XENMEM_exchange:
        return exchange(k, arg, start);
    case XENMEM_maximum_ram_page:
        return start ? -EINVAL : (long)host_max_page(gmem(k));
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
    case XENMEM_access_op:
        return access_op(k, arg, start);
    case XENMEM_claim_pages:
        return claim_pages(k, arg, start);
    case XENMEM_get_vnumainfo:
        return get_vnumainfo(k, arg, start);
    case XENMEM_reserved_device_memory_map:
        return reserved_device_memory_map(k, arg, start);
    case XENMEM_acquire_resource:
        return acquire_resource(k, arg, start);
    }
    /* x86's own ops take the command whole */
    switch (cmd) {
    case XENMEM_memory_map:
        return memory_map(k, arg);
    case XENMEM_set_memory_map:
        return set_memory_map(k, arg);
    case XENMEM_machphys_mfn_list:
    case XENMEM_machphys_compat_mfn_list:
        return machphys_mfn_list(k, arg);
    case XENMEM_get_pod_target:
    case XENMEM_set_pod_target:
        return pod_target(k, arg);
    default: /* machine_memory_map, machphys_mapping, sharing_op, paging_op,
              * get_sharing_*; unknown numbers */
        return -ENOSYS;
    }
}

/* memory_op: the guest's physical memory as Xen describes and changes it for an HVM
 * domU (xen/common/memory.c, xen/arch/x86/mm.c). */
#include <string.h>

#include "hv/xen/xen_internal.h"

#include <xen/memory.h>

/* ---- memory_op ---- */
/* memory_op's command: the op in bits 5:0, a continuation's start extent above (Xen's
 * MEMOP_CMD_MASK / MEMOP_EXTENT_SHIFT, which the public header keeps to Xen itself) */
#define MEMOP_CMD_MASK 0x3fu
/* An e820 entry as XENMEM_memory_map returns it: the BIOS INT 15h E820 layout (packed:
 * u64 address, u64 size, u32 type), which the public header names but does not define */
#define E820_ENTRY_SIZE 20u
#define E820_RAM 1u

static u64 ram_pages(const struct cpu *c)
{
    u64 n = 0;
    for (int i = 0; i < c->mem->ne820; i++)
        if (c->mem->e820[i].type == E820_RAM)
            n += c->mem->e820[i].size >> 12;
    return n;
}

/* The domain a domid_t names: this guest (DOMID_SELF or its own id), dom0 (where
 * nestor's backends are: it exists, and a domU may not look at it), or none. */
long xen_own_domain(const struct xen *x, u16 domid)
{
    if (domid == DOMID_SELF || domid == x->cfg.domid)
        return 0;
    return domid == 0 ? -EPERM : -ESRCH;
}

/* XENMEM_add_to_physmap: struct xen_add_to_physmap natively; in the 32-bit layout idx
 * (xen_ulong_t) and gpfn (xen_pfn_t) are 32-bit words at 8 and 12 (16 bytes). Only the
 * shared_info space so far: the page moves to the frame gpfn, taking its contents along.
 * nestor keeps it in guest RAM, so gpfn must be a RAM frame (-EINVAL otherwise; Xen
 * would map it anywhere) and a frame it leaves stays RAM (Xen leaves a hole). */
static long add_to_physmap(struct xcall *k, u64 arg)
{
    struct xen *x = k->x;
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
    long rc = xen_own_domain(x, a.domid);
    if (rc)
        return rc;
    if (a.space == XENMAPSPACE_grant_table)
        return xen_gnttab_map_frame(x, a.idx, a.gpfn);
    if (a.space != XENMAPSPACE_shared_info)
        return -ENOSYS; /* gmfn moves, device MMIO: not yet */
    if (a.idx != 0)
        return -EINVAL;
    struct guest_mem *mem = k->c->mem;
    if (a.gpfn > MASK(52 - 12) || !mem_ptr(mem, a.gpfn << 12, 4096))
        return -EINVAL;
    u64 gpa = a.gpfn << 12;
    if (x->shinfo_placed && x->shinfo_gpa == gpa)
        return 0;
    u8 page[4096] = { 0 };
    if (x->shinfo_placed && mem_read(mem, x->shinfo_gpa, page, sizeof(page)))
        return -EINVAL;
    bool first = !x->shinfo_placed;
    if (mem_write(mem, gpa, page, sizeof(page)))
        return -EINVAL;
    x->shinfo_placed = true;
    x->shinfo_gpa = gpa;
    if (first)
        xen_write_wallclock(x, mem);
    for (int i = 0; i < x->host.ncpus; i++)
        if (!x->vcpu[i].info_registered)
            xen_update_time(x, x->host.cpus[i]);
    return 0;
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
    const struct guest_mem *mem = k->c->mem;
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

/* The sub-ops of an HVM domU. Reservations: every RAM page is the domain's, and
 * without ballooning (not yet) the maximum is what it has, less the frame shared_info
 * covers (Xen frees the RAM page there; nestor's frames left behind stay RAM). Not yet: add_to_physmap for other spaces,
 * add_to_physmap_batch, remove_from_physmap, decrease_reservation, populate_physmap:
 * -ENOSYS. */
long xen_do_memory_op(struct xcall *k)
{
    u64 arg = k->arg[1];
    switch ((u32)k->arg[0] & MEMOP_CMD_MASK) {
    case XENMEM_current_reservation:
    case XENMEM_maximum_reservation: {
        domid_t domid;
        if (xen_copy_from(k, arg, &domid, sizeof(domid)))
            return -EFAULT;
        long rc = xen_own_domain(k->x, domid);
        return rc ? rc : (long)(ram_pages(k->c) - k->x->shinfo_placed);
    }
    case XENMEM_memory_map:
        return memory_map(k, arg);
    case XENMEM_add_to_physmap:
        /* a continuation's start extent must fit the 16-bit size field */
        if ((u32)k->arg[0] >> 6 > 0xffff)
            return -EDOM;
        return add_to_physmap(k, arg);
    default:
        return -ENOSYS;
    }
}


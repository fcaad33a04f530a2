/* -xen: GNTTABOP_copy as Xen 4.17 does it for an HVM domU: frames (only DOMID_SELF may
 * name one) and grants of its own table (v1 entries; v2 full-page, sub-page and
 * transitive entries) or of dom0's, the checks on the entry (GTF_permit_access, the
 * domain granted, GTF_readonly for a destination, the frame being memory), the busy
 * bits left clear afterwards, the bounds (GNTST_bad_copy_arg across the page, a sub-page
 * grant's range), per-operation status in a batch, -EFAULT, -EINVAL for a negative count
 * or upper command bits, a batch of 300 through continuations; map_grant_ref of the
 * guest's own grants into its physical space with unmap_grant_ref and unmap_and_replace
 * (HVM: host mappings only; read-only ones readable, a write #GP(0); hypercall copies
 * to or from any mapping -EFAULT), swap_grant_ref, transfer, cache_flush and
 * set_version's busy/reserved-entry rules; dump_table is -ENOSYS. A grant mapped over a
 * grant mapping crashes the domain, as Xen's guest_physmap_add_entry does (the -crash
 * run: nestor ends with status 4).
 * Built for 64-bit here and for the x86_32 ABI (32-bit xen_pfn_t in the structures) by
 * t32/xen_gntcopy32.c. QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes name=xen_gntcopy */
/* guest: xen=yes cpu=max,vendor=AuthenticAMD name=xen_gntcopy-amd */
/* guest: xen=yes append=crash=map-over-map expect=exit-4 name=xen_gntcopy-crash */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/grant_table.h>
#include <xen/version.h>

#define EINVAL 22
#define EFAULT 14
#define ENOSYS 38
#define EOPNOTSUPP 95
#define EBUSY 16
#define ERANGE 34

static bool amd;
static u16 self_id;

static long hc(ulong nr, ulong a1, ulong a2, ulong a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static long gnttab(u32 cmd, void *arg, u32 count)
{
    return hc(__HYPERVISOR_grant_table_op, cmd, (ulong)arg, count);
}

static long map_frame(xen_ulong_t idx, xen_pfn_t gfn)
{
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_grant_table,
                                    .idx = idx, .gpfn = gfn };
    return hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (ulong)&a, 0);
}

/* frames in the PCI hole that nothing decodes: the grant frame, a v2 status frame, and
 * one left empty */
#define TABLE_GFN 0xd0000u
#define STATUS_GFN 0xd0001u
#define EMPTY_GFN 0xd0002u
#define MAP_GFN 0xd0003u   /* where grants are mapped */
#define MAP2_GFN 0xd0004u

static volatile grant_entry_v1_t *v1 = (volatile grant_entry_v1_t *)(ulong)(TABLE_GFN << 12);
static volatile grant_entry_v2_t *v2 = (volatile grant_entry_v2_t *)(ulong)(TABLE_GFN << 12);
static volatile grant_status_t *st2 = (volatile grant_status_t *)(ulong)(STATUS_GFN << 12);

static u8 *src, *dst;

static xen_pfn_t gfn_of(const void *p)
{
    return (xen_pfn_t)((ulong)p >> 12);
}

static struct gnttab_copy op(u64 s, u16 sdom, u16 soff, u64 d, u16 ddom, u16 doff, u16 len, u16 flags)
{
    struct gnttab_copy c = { 0 };
    if (flags & GNTCOPY_source_gref)
        c.source.u.ref = (grant_ref_t)s;
    else
        c.source.u.gmfn = (xen_pfn_t)s;
    if (flags & GNTCOPY_dest_gref)
        c.dest.u.ref = (grant_ref_t)d;
    else
        c.dest.u.gmfn = (xen_pfn_t)d;
    c.source.domid = sdom;
    c.source.offset = soff;
    c.dest.domid = ddom;
    c.dest.offset = doff;
    c.len = len;
    c.flags = flags;
    c.status = 99;
    return c;
}

/* one copy: its status (the hypercall itself must succeed) */
static int copy1(struct gnttab_copy c)
{
    long rc = gnttab(GNTTABOP_copy, &c, 1);
    TEST_EQ(rc, 0, "copy returns 0");
    return c.status;
}

static void fill(void)
{
    for (int i = 0; i < 4096; i++)
        src[i] = (u8)(i * 7 + 1);
    memset(dst, 0, 4096);
}

static bool copied(u16 soff, u16 doff, u16 len)
{
    for (int i = 0; i < len; i++)
        if (dst[doff + i] != src[soff + i])
            return false;
    return (doff == 0 || dst[doff - 1] == 0) && (doff + len == 4096 || dst[doff + len] == 0);
}

static void grant_v1(u32 ref, u16 flags, u16 domid, const void *page)
{
    v1[ref].domid = domid;
    v1[ref].frame = (u32)gfn_of(page);
    v1[ref].flags = flags;
}

static void test_frames(void)
{
    fill();
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 100, gfn_of(dst), DOMID_SELF, 200, 300, 0)), GNTST_okay,
            "frame to frame");
    TEST_ASSERT(copied(100, 200, 300), "the bytes are there, nothing around them");
    fill();
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 4096, 0)), GNTST_okay,
            "a whole page");
    TEST_ASSERT(copied(0, 0, 4096), "all of it");
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 0, 0)), GNTST_okay,
            "length 0");
    TEST_EQ(copy1(op(gfn_of(src), self_id, 0, gfn_of(dst), DOMID_SELF, 0, 8, 0)), GNTST_permission_denied,
            "a frame named by the guest's own id: permission denied (DOMID_SELF only)");
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, gfn_of(dst), 0, 0, 8, 0)), GNTST_permission_denied,
            "a frame of dom0: permission denied");
    TEST_EQ(copy1(op(0, 5, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_bad_domain,
            "a grant of a domain that does not exist: bad domain");
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 4000, gfn_of(dst), DOMID_SELF, 0, 97, 0)), GNTST_bad_copy_arg,
            "source crossing the page: bad copy arg");
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 4095, 2, 0)), GNTST_bad_copy_arg,
            "destination crossing the page: bad copy arg");
    TEST_EQ(copy1(op(EMPTY_GFN, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, 0)), GNTST_bad_page,
            "a source frame that is not memory: bad page");
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, EMPTY_GFN, DOMID_SELF, 0, 8, 0)), GNTST_bad_page,
            "a destination frame that is not memory: bad page");
    TEST_EQ(copy1(op(EMPTY_GFN, DOMID_SELF, 4000, gfn_of(dst), DOMID_SELF, 0, 200, 0)), GNTST_bad_page,
            "the frame is checked before the bounds");
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, TABLE_GFN, DOMID_SELF, 4088, 8, 0)), GNTST_okay,
            "the grant frame is the guest's memory too");
    TEST_EQ(v1[511].flags, (u16)src[0] | (u16)src[1] << 8, "written there");
    v1[511] = (grant_entry_v1_t){ 0 };
}

static void test_grants_v1(void)
{
    fill();
    grant_v1(10, GTF_permit_access, self_id, src);
    TEST_EQ(copy1(op(10, DOMID_SELF, 8, gfn_of(dst), DOMID_SELF, 16, 64, GNTCOPY_source_gref)), GNTST_okay,
            "from a grant to the guest itself (DOMID_SELF)");
    TEST_ASSERT(copied(8, 16, 64), "copied");
    TEST_EQ(v1[10].flags, GTF_permit_access, "GTF_reading is clear again");
    fill();
    TEST_EQ(copy1(op(10, self_id, 8, gfn_of(dst), DOMID_SELF, 16, 64, GNTCOPY_source_gref)), GNTST_okay,
            "the guest's table named by its own id");
    TEST_ASSERT(copied(8, 16, 64), "copied");

    grant_v1(11, GTF_permit_access, 0, src);
    TEST_EQ(copy1(op(11, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_general_error,
            "a grant to dom0 is not the guest's: general error");
    TEST_EQ(v1[11].flags, GTF_permit_access, "and its flags untouched");
    grant_v1(11, GTF_invalid, self_id, src);
    TEST_EQ(copy1(op(11, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_general_error,
            "an invalid entry: general error");
    grant_v1(11, GTF_accept_transfer, self_id, src);
    TEST_EQ(copy1(op(11, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_general_error,
            "an accept-transfer entry: general error");
    grant_v1(11, GTF_transitive, self_id, src);
    TEST_EQ(copy1(op(11, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_general_error,
            "a transitive entry in version 1: general error");
    TEST_EQ(copy1(op(512, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_bad_gntref,
            "ref 512 with one frame of 512 entries: bad gntref");
    TEST_EQ(copy1(op(0xffffffffu, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_bad_gntref,
            "ref ~0: bad gntref");

    /* destination grants: writable unless GTF_readonly */
    fill();
    grant_v1(12, GTF_permit_access, self_id, dst);
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 40, 12, DOMID_SELF, 80, 100, GNTCOPY_dest_gref)), GNTST_okay,
            "to a writable grant");
    TEST_ASSERT(copied(40, 80, 100), "copied");
    TEST_EQ(v1[12].flags, GTF_permit_access, "GTF_reading and GTF_writing clear again");
    grant_v1(12, GTF_permit_access | GTF_readonly, self_id, dst);
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, 12, DOMID_SELF, 0, 8, GNTCOPY_dest_gref)), GNTST_general_error,
            "to a read-only grant: general error");
    TEST_EQ(v1[12].flags, GTF_permit_access | GTF_readonly, "no busy bit left");
    fill();
    grant_v1(13, GTF_permit_access | GTF_readonly, self_id, src);
    TEST_EQ(copy1(op(13, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 32, GNTCOPY_source_gref)), GNTST_okay,
            "from a read-only grant");
    TEST_ASSERT(copied(0, 0, 32), "copied");
    /* both sides grants, the same entry for both: read and write pins on one entry */
    fill();
    grant_v1(12, GTF_permit_access, self_id, dst);
    memcpy(dst, src, 64);
    TEST_EQ(copy1(op(12, DOMID_SELF, 0, 12, DOMID_SELF, 64, 64, GNTCOPY_source_gref | GNTCOPY_dest_gref)),
            GNTST_okay, "within one grant (both sides the same entry)");
    TEST_ASSERT(!memcmp(dst + 64, src, 64), "copied within the page");
    TEST_EQ(v1[12].flags, GTF_permit_access, "both pins gone");

    grant_v1(14, GTF_permit_access, self_id, (void *)(ulong)(EMPTY_GFN << 12));
    TEST_EQ(copy1(op(14, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_bad_page,
            "a grant of a frame that is not memory: bad page");
    TEST_EQ(v1[14].flags, GTF_permit_access, "the busy bit set for it is cleared");
    TEST_EQ(copy1(op(10, DOMID_SELF, 4000, gfn_of(dst), DOMID_SELF, 0, 200, GNTCOPY_source_gref)), GNTST_bad_copy_arg,
            "a grant, crossing the page: bad copy arg");
    TEST_EQ(v1[10].flags, GTF_permit_access, "released after the error");

    /* dom0's grants: nestor's dom0 has granted the guest nothing */
    TEST_EQ(copy1(op(0, 0, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_general_error,
            "dom0's grant 0 (not granted to us): general error");
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, 600, 0, 0, 8, GNTCOPY_dest_gref)), GNTST_bad_gntref,
            "dom0's grant 600 (beyond its table): bad gntref");
}

static void test_batches(void)
{
    fill();
    grant_v1(10, GTF_permit_access, self_id, src);
    static struct gnttab_copy ops[300];
    ops[0] = op(10, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 16, GNTCOPY_source_gref);
    ops[1] = op(9999, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 16, 16, GNTCOPY_source_gref);
    ops[2] = op(gfn_of(src), DOMID_SELF, 32, gfn_of(dst), DOMID_SELF, 32, 16, 0);
    TEST_EQ(gnttab(GNTTABOP_copy, ops, 3), 0, "a batch of 3 returns 0");
    TEST_ASSERT(ops[0].status == GNTST_okay && ops[1].status == GNTST_bad_gntref && ops[2].status == GNTST_okay,
                "each operation its status (%d %d %d)", ops[0].status, ops[1].status, ops[2].status);
    TEST_ASSERT(!memcmp(dst, src, 16) && dst[16] == 0 && !memcmp(dst + 32, src + 32, 16), "the good ones copied");

    /* 300 operations, each 13 bytes further: the batch continues past its rounds */
    fill();
    for (int i = 0; i < 300; i++)
        ops[i] = op(10, DOMID_SELF, (u16)(i * 13), gfn_of(dst), DOMID_SELF, (u16)(i * 13), 13,
                    GNTCOPY_source_gref);
    TEST_EQ(gnttab(GNTTABOP_copy, ops, 300), 0, "a batch of 300");
    int ok = 0;
    for (int i = 0; i < 300; i++)
        ok += ops[i].status == GNTST_okay;
    TEST_EQ(ok, 300, "all 300 done");
    TEST_ASSERT(copied(0, 0, 3900), "all their bytes");
    TEST_EQ(v1[10].flags, GTF_permit_access, "no busy bit left");

    /* inside a multicall the batch runs to its end (no continuation of its own) */
    fill();
    for (int i = 0; i < 200; i++)
        ops[i] = op(10, DOMID_SELF, (u16)(i * 20), gfn_of(dst), DOMID_SELF, (u16)(i * 20), 20,
                    GNTCOPY_source_gref);
    static struct multicall_entry mc[2];
    mc[0] = (struct multicall_entry){ .op = __HYPERVISOR_grant_table_op,
                                      .args = { GNTTABOP_copy, (ulong)ops, 200 } };
    mc[1] = (struct multicall_entry){ .op = __HYPERVISOR_grant_table_op,
                                      .args = { GNTTABOP_copy, (ulong)ops, 0x80000000u } };
    TEST_EQ(hc(__HYPERVISOR_multicall, (ulong)mc, 2, 0), 0, "a multicall of two copies");
    TEST_ASSERT(mc[0].result == 0 && (long)mc[1].result == -EINVAL, "results 0 and -EINVAL (%ld, %ld)",
                (long)mc[0].result, (long)mc[1].result);
    ok = 0;
    for (int i = 0; i < 200; i++)
        ok += ops[i].status == GNTST_okay;
    TEST_EQ(ok, 200, "all 200 done in the multicall");
    TEST_ASSERT(copied(0, 0, 4000), "all their bytes");

    TEST_EQ(gnttab(GNTTABOP_copy, ops, 0), 0, "count 0");
    TEST_EQ(gnttab(GNTTABOP_copy, ops, 0x80000000u), -EINVAL, "a negative count: -EINVAL");
    TEST_EQ(gnttab(GNTTABOP_copy | 1u << 12, ops, 1), -EINVAL, "upper command bits: -EINVAL");
    TEST_EQ(gnttab(GNTTABOP_copy, (void *)(ulong)(EMPTY_GFN << 12), 1), -EFAULT, "operations not in memory: -EFAULT");
    /* the last operation's structure straddles into the hole: the first is done */
    struct gnttab_copy *edge = (struct gnttab_copy *)(ulong)((TABLE_GFN << 12) + 4096 - sizeof(*edge));
    *edge = op(gfn_of(src), DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, 0);
    TEST_EQ(gnttab(GNTTABOP_copy, edge, 2), -EFAULT, "the second operation not in memory: -EFAULT");
    TEST_EQ(edge->status, GNTST_okay, "after the first was done");
    memset(edge, 0, sizeof(*edge));
}

static void test_other_ops(void)
{
    /* swap_grant_ref */
    grant_v1(20, GTF_permit_access, self_id, src);
    grant_v1(21, GTF_permit_access | GTF_readonly, 0, dst);
    struct gnttab_swap_grant_ref sw[3] = { { 20, 21, 99 }, { 20, 512, 99 }, { 7, 7, 99 } };
    TEST_EQ(gnttab(GNTTABOP_swap_grant_ref, sw, 3), 0, "swap_grant_ref");
    TEST_ASSERT(sw[0].status == GNTST_okay && sw[1].status == GNTST_bad_gntref && sw[2].status == GNTST_okay,
                "statuses: okay, bad gntref, okay for the same ref (%d %d %d)", sw[0].status, sw[1].status, sw[2].status);
    TEST_ASSERT(v1[20].flags == (GTF_permit_access | GTF_readonly) && v1[20].domid == 0 &&
                    v1[20].frame == gfn_of(dst) && v1[21].domid == self_id && v1[21].frame == gfn_of(src),
                "the entries changed places");

    /* transfer: only PV guests; a frame that is not memory is bad_page */
    struct gnttab_transfer tr[2] = { { .mfn = gfn_of(src), .domid = 0, .ref = 0, .status = 99 },
                                     { .mfn = EMPTY_GFN, .domid = 0, .ref = 0, .status = 99 } };
    TEST_EQ(gnttab(GNTTABOP_transfer, tr, 2), 0, "transfer");
    TEST_EQ(tr[0].status, GNTST_general_error, "a page of an HVM domain cannot be transferred");
    TEST_EQ(tr[1].status, GNTST_bad_page, "a frame that is not memory: bad page");

    /* cache_flush: x86 writes back and invalidates together */
    struct gnttab_cache_flush cf = { .a.dev_bus_addr = (ulong)src, .offset = 0, .length = 64,
                                     .op = GNTTAB_CACHE_CLEAN };
    TEST_EQ(gnttab(GNTTABOP_cache_flush, &cf, 1), 0, "cache_flush clean");
    cf.op = GNTTAB_CACHE_CLEAN | GNTTAB_CACHE_INVAL;
    TEST_EQ(gnttab(GNTTABOP_cache_flush, &cf, 1), 0, "clean and invalidate");
    cf.op = GNTTAB_CACHE_INVAL;
    TEST_EQ(gnttab(GNTTABOP_cache_flush, &cf, 1), -EOPNOTSUPP, "invalidate alone: -EOPNOTSUPP on x86");
    cf.op = GNTTAB_CACHE_SOURCE_GREF | GNTTAB_CACHE_CLEAN;
    TEST_EQ(gnttab(GNTTABOP_cache_flush, &cf, 1), -EINVAL, "the source-gref bit: -EINVAL");
    cf = (struct gnttab_cache_flush){ .a.dev_bus_addr = (ulong)src, .offset = 4000, .length = 97,
                                      .op = GNTTAB_CACHE_CLEAN };
    TEST_EQ(gnttab(GNTTABOP_cache_flush, &cf, 1), -EINVAL, "beyond the page: -EINVAL");
    cf.length = 0;
    TEST_EQ(gnttab(GNTTABOP_cache_flush, &cf, 1), 0, "length 0: nothing to do");
    cf = (struct gnttab_cache_flush){ .a.dev_bus_addr = (u64)EMPTY_GFN << 12, .length = 8,
                                      .op = GNTTAB_CACHE_CLEAN };
    TEST_EQ(gnttab(GNTTABOP_cache_flush, &cf, 1), -EINVAL, "not a machine frame: -EINVAL");

    TEST_EQ(gnttab(GNTTABOP_dump_table, &cf, 1), -ENOSYS, "dump_table: -ENOSYS as in Xen 4.17");
}

static struct gnttab_map_grant_ref mop(u32 ref, u16 dom, u32 flags, u32 gfn)
{
    return (struct gnttab_map_grant_ref){ .host_addr = (u64)gfn << 12, .flags = flags, .ref = ref,
                                          .dom = dom, .status = 99, .handle = 0xdead };
}

static int map1(struct gnttab_map_grant_ref *m)
{
    TEST_EQ(gnttab(GNTTABOP_map_grant_ref, m, 1), 0, "map_grant_ref returns 0");
    return m->status;
}

static int unmap1(u64 host_addr, u64 dev_bus_addr, u32 handle)
{
    struct gnttab_unmap_grant_ref u = { .host_addr = host_addr, .dev_bus_addr = dev_bus_addr,
                                        .handle = handle, .status = 99 };
    TEST_EQ(gnttab(GNTTABOP_unmap_grant_ref, &u, 1), 0, "unmap_grant_ref returns 0");
    return u.status;
}

static long tot_pages(void)
{
    domid_t self = DOMID_SELF;
    return hc(__HYPERVISOR_memory_op, XENMEM_current_reservation, (ulong)&self, 0);
}

/* A page the guest gave up (its frame a hole) comes back: populate_physmap */
static void repopulate(const void *p)
{
    xen_pfn_t gfn = gfn_of(p);
    struct xen_memory_reservation r = { .nr_extents = 1, .extent_order = 0, .domid = DOMID_SELF };
    set_xen_guest_handle(r.extent_start, &gfn);
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_populate_physmap, (ulong)&r, 0), 1, "its frame populated again");
}

/* Pages given back at the start, so that there is room (max_pages) for the pages the
 * mapping tests populate again: the pages they lose stay counted, as in Xen */
static void make_room(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        xen_pfn_t gfn = gfn_of(page_alloc());
        struct xen_memory_reservation r = { .nr_extents = 1, .extent_order = 0, .domid = DOMID_SELF };
        set_xen_guest_handle(r.extent_start, &gfn);
        TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_decrease_reservation, (ulong)&r, 0), 1, "a page given back");
    }
}

static u8 *mp; /* the page the mapping tests grant */

static void fill_mp(void)
{
    for (int i = 0; i < 4096; i++)
        mp[i] = (u8)(i * 5 + 3);
}

/* map_grant_ref as create_grant_p2m_mapping and guest_physmap_add_entry do it: the
 * guest's own page leaves the frame it was at (its old p2m entry is removed) and is the
 * domain's still (tot_pages unchanged); a second mapping of the grant puts the same page
 * at a second frame; an unmap leaves a hole (replace_grant_p2m_mapping), and neither the
 * page nor what was under the mapping comes back. */
static void test_map(void)
{
    volatile u8 *at = (volatile u8 *)(ulong)(MAP_GFN << 12), *at2 = (volatile u8 *)(ulong)(MAP2_GFN << 12);
    volatile u8 *own = mp;
    fill_mp();
    grant_v1(50, GTF_permit_access, self_id, mp);
    long tot = tot_pages();
    TEST_EQ(at[0], 0xff, "nothing at the mapping's place before");
    struct gnttab_map_grant_ref m = mop(50, self_id, GNTMAP_host_map, MAP_GFN);
    TEST_EQ(map1(&m), GNTST_okay, "map the guest's own grant");
    u32 h = m.handle;
    TEST_EQ(m.dev_bus_addr, (ulong)mp, "its machine address: the page's physical one");
    TEST_ASSERT(at[0] == 3 && at[4095] == (u8)(4095 * 5 + 3), "the granted page is there");
    TEST_EQ(own[0], 0xff, "and no longer at its own frame (Xen removes its old p2m entry)");
    TEST_EQ(tot_pages(), tot, "the domain's still: tot_pages unchanged");
    TEST_EQ(v1[50].flags, GTF_permit_access | GTF_reading | GTF_writing, "busy while mapped");
    fill();
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, 50, DOMID_SELF, 0, 8, GNTCOPY_dest_gref)), GNTST_okay,
            "a copy to it while mapped (the pinned page)");
    TEST_EQ(at[7], src[7], "arrives in the mapping");
    TEST_EQ(v1[50].flags, GTF_permit_access | GTF_reading | GTF_writing, "the mapping's pin stays");
    /* Xen's own copies of guest memory refuse grant frames, writable ones too
     * (__hvm_copy: hvm_translate_get_page gives HVMTRANS_unhandleable for p2m_is_grant) */
    u8 before = at[64];
    TEST_EQ(hc(__HYPERVISOR_xen_version, XENVER_extraversion, (ulong)(at + 64), 0), -EFAULT,
            "a hypercall writing into a writable grant mapping: -EFAULT");
    TEST_EQ(at[64], before, "nothing written");
    TEST_EQ(hc(__HYPERVISOR_xen_version, XENVER_get_features, (ulong)(at + 128), 0), -EFAULT,
            "a hypercall reading its argument from it: -EFAULT");
    at[64] = 0x5a;
    TEST_EQ(at[64], 0x5a, "the guest itself writes it");

    /* the refusals, in Xen's order */
    m = mop(50, self_id, 0, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_bad_gntref, "no mapping kind: bad gntref");
    m = mop(50, self_id, GNTMAP_host_map | GNTMAP_device_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "a device mapping in an HVM domain: general error");
    m = mop(50, 9, GNTMAP_host_map | GNTMAP_device_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "checked before the domain");
    m = mop(50, self_id, GNTMAP_host_map | GNTMAP_application_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "an application mapping: general error");
    m = mop(50, self_id, GNTMAP_host_map | GNTMAP_contains_pte, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "a PTE address: general error");
    m = mop(50, DOMID_SELF, GNTMAP_host_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_bad_domain, "DOMID_SELF is not a domain id here: bad domain");
    m = mop(50, 9, GNTMAP_host_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_bad_domain, "no such domain");
    m = mop(512, self_id, GNTMAP_host_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_bad_gntref, "ref 512: bad gntref");
    m = mop(0, 0, GNTMAP_host_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "dom0's grant 0, not granted to us");
    grant_v1(51, GTF_permit_access, 0, dst);
    m = mop(51, self_id, GNTMAP_host_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "a grant to dom0: general error");
    grant_v1(51, GTF_permit_access | GTF_sub_page, self_id, dst);
    m = mop(51, self_id, GNTMAP_host_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "GTF_sub_page set: not mappable");
    grant_v1(51, GTF_permit_access, self_id, (void *)(ulong)(EMPTY_GFN << 12));
    m = mop(51, self_id, GNTMAP_host_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_bad_page, "a frame that is not memory: bad page");
    TEST_EQ(v1[51].flags, GTF_permit_access, "no busy bit left");
    grant_v1(51, GTF_permit_access, self_id, dst);
    m = mop(51, self_id, GNTMAP_host_map | (1u << 16), MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "other flag bits: not a plain host mapping");
    TEST_EQ(v1[51].flags, GTF_permit_access, "and the pin undone");
    TEST_EQ(at2[0], 0xff, "nothing placed");

    /* a second mapping of the grant: the same page at two frames */
    m = mop(50, self_id, GNTMAP_host_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_okay, "the grant mapped a second time");
    u32 h2 = m.handle;
    TEST_EQ(at2[4095], (u8)(4095 * 5 + 3), "the same page there");
    at[100] = 0x99;
    TEST_EQ(at2[100], 0x99, "the same memory");
    TEST_EQ(tot_pages(), tot, "nothing counted twice");
    /* code run from the mapping, then replaced by a grant copy into the (moved) page */
    emit_mov_ret(at + 256, 0x1111);
    TEST_EQ(((u32(*)(void))(ulong)(at + 256))(), 0x1111, "code in the mapping runs");
    emit_mov_ret(src + 256, 0x2222);
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 256, 50, DOMID_SELF, 256, 6, GNTCOPY_dest_gref)), GNTST_okay,
            "new code copied into the grant");
    TEST_EQ(((u32(*)(void))(ulong)(at2 + 256))(), 0x2222, "runs at the other mapping");
    TEST_EQ(((u32(*)(void))(ulong)(at + 256))(), 0x2222, "and the old code decoded at the first is stale");

    /* while mapped, the entry is in use */
    struct gnttab_swap_grant_ref sw = { 50, 51, 99 };
    gnttab(GNTTABOP_swap_grant_ref, &sw, 1);
    TEST_EQ(sw.status, GNTST_eagain, "swap of a mapped entry: eagain");
    struct gnttab_set_version sv = { .version = 2 };
    TEST_EQ(gnttab(GNTTABOP_set_version, &sv, 1), -EBUSY, "set_version while mapped: -EBUSY");

    /* unmaps */
    TEST_EQ(unmap1((u64)MAP_GFN << 12, 0, 63), GNTST_bad_handle, "a free handle");
    TEST_EQ(unmap1((u64)MAP_GFN << 12, 0, 9999), GNTST_bad_handle, "a handle beyond the table");
    TEST_EQ(unmap1((u64)MAP_GFN << 12, 0x1000, h), GNTST_general_error, "another dev_bus_addr");
    TEST_EQ(unmap1((u64)MAP2_GFN << 12, 0, h), GNTST_general_error, "another frame");
    TEST_EQ(unmap1(0, 0, h), GNTST_okay, "host_addr 0: nothing unmapped");
    TEST_EQ(at[100], 0x99, "still mapped");
    struct gnttab_unmap_and_replace ur = { .host_addr = (u64)MAP_GFN << 12, .new_addr = (u64)MAP2_GFN << 12,
                                           .handle = h, .status = 99 };
    TEST_EQ(gnttab(GNTTABOP_unmap_and_replace, &ur, 1), 0, "unmap_and_replace");
    TEST_EQ(ur.status, GNTST_general_error, "with a new address: for PV only");
    TEST_EQ(unmap1((u64)MAP_GFN << 12 | 0x123, (ulong)mp, h), GNTST_okay, "unmapped");
    TEST_EQ(at[0], 0xff, "a hole where it was");
    TEST_EQ(at2[100], 0x99, "the other mapping stays");
    TEST_EQ(v1[50].flags, GTF_permit_access | GTF_reading | GTF_writing, "busy while that one is");
    TEST_EQ(unmap1((u64)MAP_GFN << 12, 0, h), GNTST_bad_handle, "unmapped twice");
    TEST_EQ(unmap1((u64)MAP2_GFN << 12, 0, h2), GNTST_okay, "the second unmapped");
    TEST_EQ(at2[0], 0xff, "a hole there too");
    TEST_EQ(own[0], 0xff, "the page is not back at its own frame");
    TEST_EQ(v1[50].flags, GTF_permit_access, "not busy any more");
    TEST_EQ(tot_pages(), tot, "and still the domain's: tot_pages unchanged");
    m = mop(50, self_id, GNTMAP_host_map, MAP_GFN);
    TEST_EQ(map1(&m), GNTST_bad_page, "the grant's frame is a hole now: bad page");
    repopulate(mp);
    TEST_EQ(tot_pages(), tot + 1, "a new page: one more");
    tot++;

    /* over RAM: the page there leaves, stays counted, and does not come back */
    u8 *ram = page_alloc();
    volatile u8 *r = ram;
    r[0] = 0x5a;
    fill_mp();
    m = mop(50, self_id, GNTMAP_host_map, gfn_of(ram));
    TEST_EQ(map1(&m), GNTST_okay, "mapped over a RAM page");
    TEST_EQ(r[0], 3, "the granted page there");
    TEST_EQ(tot_pages(), tot, "the RAM page under it still counted");
    ur = (struct gnttab_unmap_and_replace){ .host_addr = (u64)gfn_of(ram) << 12, .handle = m.handle, .status = 99 };
    TEST_EQ(gnttab(GNTTABOP_unmap_and_replace, &ur, 1), 0, "unmap_and_replace without a new address");
    TEST_EQ(ur.status, GNTST_okay, "is an unmap");
    TEST_EQ(r[0], 0xff, "a hole: the RAM is not back");
    TEST_EQ(v1[50].flags, GTF_permit_access, "not busy");
    TEST_EQ(tot_pages(), tot, "tot_pages unchanged");
    repopulate(ram);
    TEST_EQ(r[0], 0, "populated: a zeroed page");
    repopulate(mp);
    TEST_EQ(tot_pages(), tot + 2, "two pages more");
}

/* GNTMAP_readonly: Xen places the page as p2m_grant_map_ro. Reads see it; a write
 * faults in the nested page table, and Xen 4.17's emulator refuses a grant frame
 * (hvm_translate_get_page: HVMTRANS_unhandleable), so the guest gets #GP(0) and the page
 * is unchanged; a hypercall's copy_to_guest into it fails the same way (-EFAULT). */
static void test_map_ro(void)
{
    volatile u8 *at = (volatile u8 *)(ulong)(MAP2_GFN << 12);
    fill_mp();
    grant_v1(52, GTF_permit_access, self_id, mp);
    struct gnttab_map_grant_ref m = mop(52, self_id, GNTMAP_host_map | GNTMAP_readonly, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_okay, "a read-only mapping of the guest's own grant");
    TEST_EQ(v1[52].flags, GTF_permit_access | GTF_reading, "read-pinned only");
    TEST_ASSERT(at[0] == 3 && at[4095] == (u8)(4095 * 5 + 3), "readable: the granted page");
    TEST_EQ(try_write((ulong)(at + 8), 0x55), 13, "a write to it: #GP");
    TEST_EQ(exc_last.error, 0, "#GP(0)");
    TEST_EQ(at[8], (u8)(8 * 5 + 3), "the page unchanged");
    TEST_EQ(try_write((ulong)(at + 8), 0x55), 13, "again: no write translation was kept");
    TEST_EQ(hc(__HYPERVISOR_xen_version, XENVER_extraversion, (ulong)(at + 64), 0), -EFAULT,
            "a hypercall writing its result into it: -EFAULT");
    TEST_EQ(at[64], (u8)(64 * 5 + 3), "nothing written");
    xen_extraversion_t ev;
    TEST_EQ(hc(__HYPERVISOR_xen_version, XENVER_extraversion, (ulong)ev, 0), 0, "the same into RAM works");
    /* a writable pin of the same grant (a copy into it) reaches the page: Xen's grant
     * copy writes through the grant, not the read-only frame */
    fill();
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, 52, DOMID_SELF, 0, 8, GNTCOPY_dest_gref)), GNTST_okay,
            "a grant copy into the read-only-mapped grant");
    TEST_EQ(at[7], src[7], "seen through the mapping");
    TEST_EQ(unmap1((u64)MAP2_GFN << 12, 0, m.handle), GNTST_okay, "unmapped");
    TEST_EQ(v1[52].flags, GTF_permit_access, "not busy");
    TEST_EQ(at[0], 0xff, "gone");
    repopulate(mp);

    fill_mp();
    grant_v1(52, GTF_permit_access | GTF_readonly, self_id, mp);
    m = mop(52, self_id, GNTMAP_host_map, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "a read-only grant mapped writable: general error");
    m = mop(52, self_id, GNTMAP_host_map | GNTMAP_readonly, MAP2_GFN);
    TEST_EQ(map1(&m), GNTST_okay, "a read-only grant mapped read-only");
    TEST_EQ(at[1], 8, "readable");
    TEST_EQ(try_write((ulong)(at + 1), 0), 13, "not writable: #GP");
    TEST_EQ(unmap1((u64)MAP2_GFN << 12, 0, m.handle), GNTST_okay, "unmapped");
    TEST_EQ(v1[52].flags, GTF_permit_access | GTF_readonly, "not busy");
    v1[52].flags = 0;
    repopulate(mp);
}

static void test_v2(void)
{
    /* entries survive a version change only among the 8 reserved ones */
    grant_v1(3, GTF_permit_access, self_id, src);
    grant_v1(10, GTF_permit_access, self_id, src);
    struct gnttab_set_version sv = { .version = 2 };
    TEST_EQ(gnttab(GNTTABOP_set_version, &sv, 0), 0, "set_version 2 (the count is ignored)");
    TEST_EQ(map_frame(XENMAPIDX_grant_table_status | 0, STATUS_GFN), 0, "status frame 0 placed");
    TEST_ASSERT(v2[3].hdr.flags == GTF_permit_access && v2[3].hdr.domid == self_id &&
                    v2[3].full_page.frame == gfn_of(src),
                "reserved entry 3 converted to version 2");
    TEST_EQ(v2[10].hdr.flags, 0, "entry 10 cleared");

    fill();
    v2[30].full_page.frame = gfn_of(src);
    v2[30].hdr.domid = self_id;
    v2[30].hdr.flags = GTF_permit_access;
    TEST_EQ(copy1(op(30, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 128, GNTCOPY_source_gref)), GNTST_okay,
            "v2: from a full-page grant");
    TEST_ASSERT(copied(0, 0, 128), "copied");
    TEST_EQ(st2[30], 0, "the status word is clear again");
    TEST_EQ(v2[30].hdr.flags, GTF_permit_access, "and the flags unchanged");

    fill();
    v2[31].sub_page.frame = gfn_of(dst);
    v2[31].sub_page.page_off = 256;
    v2[31].sub_page.length = 64;
    v2[31].hdr.domid = self_id;
    v2[31].hdr.flags = GTF_permit_access | GTF_sub_page;
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, 31, DOMID_SELF, 256, 64, GNTCOPY_dest_gref)), GNTST_okay,
            "v2: to all of a sub-page grant");
    TEST_ASSERT(copied(0, 256, 64), "copied");
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, 31, DOMID_SELF, 288, 32, GNTCOPY_dest_gref)), GNTST_okay,
            "v2: to its second half");
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, 31, DOMID_SELF, 255, 8, GNTCOPY_dest_gref)), GNTST_general_error,
            "v2: starting before the sub-page: general error");
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, 31, DOMID_SELF, 300, 21, GNTCOPY_dest_gref)), GNTST_general_error,
            "v2: ending after it: general error");
    TEST_EQ(st2[31], 0, "no busy bit left");
    v2[31].hdr.flags = GTF_permit_access | GTF_sub_page | GTF_readonly;
    TEST_EQ(copy1(op(gfn_of(src), DOMID_SELF, 0, 31, DOMID_SELF, 256, 8, GNTCOPY_dest_gref)), GNTST_general_error,
            "v2: to a read-only grant: general error");
    TEST_EQ(copy1(op(31, DOMID_SELF, 256, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_okay,
            "v2: from it");
    TEST_EQ(st2[31], 0, "no busy bit left");

    /* transitive grants name another domain's grant: never the guest itself */
    v2[32].transitive.trans_domid = self_id;
    v2[32].transitive.gref = 30;
    v2[32].hdr.domid = self_id;
    v2[32].hdr.flags = GTF_transitive;
    TEST_EQ(copy1(op(32, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_general_error,
            "v2: a transitive grant of the guest's own grant: general error");
    TEST_EQ(st2[32], 0, "its busy bit cleared again");
    v2[32].transitive.trans_domid = 7;
    TEST_EQ(copy1(op(32, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_general_error,
            "v2: of a domain that does not exist: general error");
    v2[32].transitive.trans_domid = 0;
    v2[32].transitive.gref = 600;
    TEST_EQ(copy1(op(32, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_bad_gntref,
            "v2: of dom0's grant 600: dom0's answer, bad gntref");
    v2[32].transitive.gref = 1;
    TEST_EQ(copy1(op(32, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_general_error,
            "v2: of dom0's grant 1, not granted: general error");
    TEST_EQ(st2[32], 0, "no busy bit left");
    v2[33].hdr.domid = self_id;
    v2[33].hdr.flags = GTF_accept_transfer;
    TEST_EQ(copy1(op(33, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_general_error,
            "v2: an accept-transfer entry: general error");
    TEST_EQ(copy1(op(256, DOMID_SELF, 0, gfn_of(dst), DOMID_SELF, 0, 8, GNTCOPY_source_gref)), GNTST_bad_gntref,
            "v2: ref 256, one frame of 256 entries: bad gntref");

    /* maps in version 2: full-page grants only */
    struct gnttab_map_grant_ref m = mop(30, self_id, GNTMAP_host_map, MAP_GFN);
    TEST_EQ(map1(&m), GNTST_okay, "v2: map a full-page grant");
    TEST_EQ(st2[30], GTF_reading | GTF_writing, "v2: busy in the status word");
    TEST_EQ(unmap1((u64)MAP_GFN << 12, 0, m.handle), GNTST_okay, "v2: unmapped");
    TEST_EQ(st2[30], 0, "v2: not busy");
    repopulate(src);
    m = mop(31, self_id, GNTMAP_host_map, MAP_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "v2: a sub-page grant cannot be mapped");
    m = mop(32, self_id, GNTMAP_host_map, MAP_GFN);
    TEST_EQ(map1(&m), GNTST_general_error, "v2: nor a transitive one");
    TEST_EQ(st2[31] | st2[32], 0, "no busy bit left");
    m = mop(30, self_id, GNTMAP_host_map | GNTMAP_readonly, MAP_GFN);
    TEST_EQ(map1(&m), GNTST_okay, "v2: a read-only mapping");
    TEST_EQ(st2[30], GTF_reading, "v2: read-busy in the status word");
    TEST_EQ(try_write((ulong)(MAP_GFN << 12), 0), 13, "v2: a write to it: #GP");
    TEST_EQ(unmap1((u64)MAP_GFN << 12, 0, m.handle), GNTST_okay, "v2: unmapped");
    TEST_EQ(st2[30], 0, "v2: not busy");
    repopulate(src);

    /* swap in version 2 moves the status words along */
    st2[40] = GTF_reading;
    v2[40].hdr.flags = GTF_permit_access;
    v2[41].hdr.flags = 0;
    struct gnttab_swap_grant_ref sw = { 40, 41, 99 };
    TEST_EQ(gnttab(GNTTABOP_swap_grant_ref, &sw, 1), 0, "v2 swap");
    TEST_ASSERT(sw.status == GNTST_okay && st2[41] == GTF_reading && st2[40] == 0 &&
                    v2[41].hdr.flags == GTF_permit_access,
                "the status word moved with its entry");
    st2[41] = 0;

    /* a transitive reserved entry cannot become a v1 one */
    v2[5].hdr.flags = GTF_transitive;
    sv.version = 1;
    TEST_EQ(gnttab(GNTTABOP_set_version, &sv, 1), -ERANGE, "back to 1 with a transitive reserved entry: -ERANGE");
    TEST_EQ(sv.version, 2, "still 2");
    v2[5].hdr.flags = 0;
    sv.version = 1;
    TEST_EQ(gnttab(GNTTABOP_set_version, &sv, 1), 0, "back to version 1");
    TEST_ASSERT(v1[3].flags == GTF_permit_access && v1[3].frame == gfn_of(src), "reserved entry 3 kept");
    TEST_EQ(v1[30].flags, 0, "entry 30 cleared");
    TEST_EQ(*(volatile u16 *)(ulong)(STATUS_GFN << 12), 0xffff, "the status frame left the physical space");
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    self_id = (u16)cpuid(0x40000004).c;
    src = page_alloc();
    dst = page_alloc();
    mp = page_alloc();
    make_room(8);
    TEST_EQ(map_frame(0, TABLE_GFN), 0, "grant frame 0 placed");
    char how[32];
    if (rt_cmdline_value("crash", how, sizeof(how))) {
        TEST_ASSERT(!strcmp(how, "map-over-map"), "unknown crash=%s", how);
        fill_mp();
        grant_v1(50, GTF_permit_access, self_id, mp);
        struct gnttab_map_grant_ref m = mop(50, self_id, GNTMAP_host_map, MAP_GFN);
        TEST_EQ(map1(&m), GNTST_okay, "a grant mapped");
        m = mop(50, self_id, GNTMAP_host_map, MAP_GFN);
        printf("SHUTDOWN-NEXT\n");
        map1(&m);
        TEST_ASSERT(false, "still running after a grant mapped over a grant mapping");
        return;
    }
    test_frames();
    test_grants_v1();
    test_batches();
    test_other_ops();
    test_map();
    test_map_ro();
    test_v2();
}

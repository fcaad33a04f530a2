/* -xen: the rest of memory_op as Xen 4.17 answers an HVM domU. exchange on the frame map
 * (the inputs' frames hold nothing afterwards, the outputs are fresh zeroed pages, the
 * reservation does not change; a chunk is taken whole or not at all; its order,
 * domain, size, nr_exchanged, input-frame and address-width checks; its continuation),
 * maximum_ram_page, claim_pages (-EPERM after its argument checks), acquire_resource
 * (-EACCES), get_vnumainfo (no vNUMA: -EOPNOTSUPP), reserved_device_memory_map (no
 * IOMMU: no entries), set_memory_map (the domain's own map, which memory_map then
 * reports), access_op, the machphys list, and the ops an HVM domU of a default Xen build
 * does not have (-ENOSYS). QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes name=xen_memop2 */
/* guest: xen=yes cpu=max,vendor=AuthenticAMD name=xen_memop2-amd */
#include "rt.h"
#include "xen_frames.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>

#define EPERM 1
#define ESRCH 3
#define ENOMEM 12
#define EACCES 13
#define EFAULT 14
#define EINVAL 22
#define ENOSYS 38
#define EOPNOTSUPP 95

/* numbers <xen/memory.h> keeps to Xen and the tools */
#define MEM_SHARING_FREED 18
#define MEM_SHARING_SHARED 19
#define MEM_PAGING_OP 20
#define MEM_ACCESS_OP 21
#define MEM_SHARING_OP 22
#define MEM_CLAIM_PAGES 24
#define MEM_RDM_MAP 27

#define OWN_DOMID 1
#define BAD_PTR ((void *)0x8000000000000000ull)

static bool amd;

static long memop(u32 cmd, const void *arg)
{
    return xen_hypercall3(amd, __HYPERVISOR_memory_op, cmd, (u64)arg, 0);
}

static long count(u32 cmd)
{
    domid_t self = DOMID_SELF;
    return memop(cmd, &self);
}

static long resv(u32 cmd, u64 *list, u64 n, u32 order, u32 flags)
{
    struct xen_memory_reservation r = { .nr_extents = n, .extent_order = order,
                                        .mem_flags = flags, .domid = DOMID_SELF };
    set_xen_guest_handle(r.extent_start, list);
    return memop(cmd, &r);
}

static struct xen_memory_exchange xch(u64 *in, u64 nin, u32 oin, u64 *out, u64 nout, u32 oout)
{
    struct xen_memory_exchange e = { 0 };
    set_xen_guest_handle(e.in.extent_start, in);
    e.in.nr_extents = nin;
    e.in.extent_order = oin;
    e.in.domid = DOMID_SELF;
    set_xen_guest_handle(e.out.extent_start, out);
    e.out.nr_extents = nout;
    e.out.extent_order = oout;
    e.out.domid = DOMID_SELF;
    return e;
}

/* A: 4K frames well inside RAM, away from the test's own pages; H: 2M-aligned, below */
static u64 A, H;

static void test_exchange(void)
{
    long tot = count(XENMEM_current_reservation);
    /* one page for one page, in place: the contents do not survive */
    frame_fill(A, 0x11111111u);
    u64 in[4] = { A }, out[4] = { A };
    struct xen_memory_exchange e = xch(in, 1, 0, out, 1, 0);
    TEST_EQ(memop(XENMEM_exchange, &e), 0, "exchange one page in place");
    TEST_EQ(e.nr_exchanged, 1, "nr_exchanged 1");
    TEST_ASSERT(frame_is(A, 0), "a fresh zeroed page at A");
    TEST_EQ(count(XENMEM_current_reservation), tot, "reservation unchanged");

    /* two pages for one extent of order 1 at ballooned frames: the inputs become holes */
    frame_fill(A + 1, 0x21212121u);
    frame_fill(A + 2, 0x22222222u);
    u64 hole[2] = { A + 16, A + 17 };
    frame_fill(A + 16, 0x16);
    frame_fill(A + 17, 0x17);
    TEST_EQ(resv(XENMEM_decrease_reservation, hole, 2, 0, 0), 2, "A+16, A+17 ballooned");
    in[0] = A + 1, in[1] = A + 2, out[0] = A + 16;
    e = xch(in, 2, 0, out, 1, 1);
    TEST_EQ(memop(XENMEM_exchange, &e), 0, "2 pages of order 0 for 1 extent of order 1");
    TEST_EQ(e.nr_exchanged, 2, "nr_exchanged counts input extents: 2");
    TEST_ASSERT(frame_is(A + 1, 0xffffffffu) && frame_is(A + 2, 0xffffffffu), "A+1, A+2 hold nothing");
    TEST_ASSERT(frame_is(A + 16, 0) && frame_is(A + 17, 0), "A+16, A+17: zeroed pages");
    TEST_EQ(count(XENMEM_current_reservation), tot - 2, "the balloon's 2 pages, no more");

    /* one extent of order 1 for two of order 0 */
    frame_fill(A + 16, 0x1616);
    in[0] = A + 16, out[0] = A + 1, out[1] = A + 2;
    e = xch(in, 1, 1, out, 2, 0);
    TEST_EQ(memop(XENMEM_exchange, &e), 0, "order 1 for 2 of order 0");
    TEST_ASSERT(frame_is(A + 16, 0xffffffffu) && frame_is(A + 17, 0xffffffffu) && frame_is(A + 1, 0) &&
                frame_is(A + 2, 0), "back at A+1, A+2");
    TEST_EQ(count(XENMEM_current_reservation), tot - 2, "still 2 fewer");

    /* over a RAM page: that page stays the domain's, in no frame (Xen's p2m add) */
    frame_fill(A + 3, 0x33);
    frame_fill(A + 4, 0x44);
    in[0] = A + 3, out[0] = A + 4;
    e = xch(in, 1, 0, out, 1, 0);
    TEST_EQ(memop(XENMEM_exchange, &e), 0, "exchange onto a RAM frame");
    TEST_ASSERT(frame_is(A + 3, 0xffffffffu) && frame_is(A + 4, 0), "A+3 a hole, A+4 fresh");
    TEST_EQ(count(XENMEM_current_reservation), tot - 2, "reservation unchanged");
    in[0] = A + 3;
    TEST_EQ(resv(XENMEM_populate_physmap, in, 1, 0, 0), 1, "A+3 populated again");
    hole[0] = A + 16;
    TEST_EQ(resv(XENMEM_populate_physmap, hole, 1, 0, 0), 1, "A+16 too");
    TEST_EQ(count(XENMEM_current_reservation), tot, "back to the start");

    /* the checks, in Xen's order */
    frame_fill(A + 5, 0x55);
    frame_fill(A + 6, 0x66);
    in[0] = A + 5, in[1] = A + 6, out[0] = A + 5, out[1] = A + 6;
    e = xch(in, 2, 0, out, 2, 0);
    TEST_EQ(memop(XENMEM_exchange | (1u << 6), &e), -EINVAL, "a start extent: -EINVAL");
    TEST_EQ(memop(XENMEM_exchange, BAD_PTR), -EFAULT, "a bad pointer: -EFAULT");
    e = xch(in, 1, 10, out, 1, 10);
    TEST_EQ(memop(XENMEM_exchange, &e), -EPERM, "order 10: -EPERM");
    e = xch(in, 2, 0, out, 2, 0);
    e.nr_exchanged = 3;
    TEST_EQ(memop(XENMEM_exchange, &e), -EINVAL, "nr_exchanged beyond the input: -EINVAL");
    e = xch(in, 2, 0, out, 2, 0);
    e.out.domid = OWN_DOMID;
    TEST_EQ(memop(XENMEM_exchange, &e), -EINVAL, "in and out domains differ: -EINVAL");
    e = xch(in, 2, 0, out, 1, 0);
    TEST_EQ(memop(XENMEM_exchange, &e), -EINVAL, "2 pages for 1: -EINVAL");
    e = xch(BAD_PTR, 1ull << 63, 1, BAD_PTR, 0, 1); /* both 2^64 pages: 0 */
    TEST_EQ(memop(XENMEM_exchange, &e), -EINVAL, "a size that overflows: -EINVAL");
    e = xch(in, 2, 0, out, 2, 0);
    e.in.domid = e.out.domid = 9;
    TEST_EQ(memop(XENMEM_exchange, &e), -ESRCH, "domain 9: -ESRCH");
    e.in.domid = e.out.domid = 0;
    TEST_EQ(memop(XENMEM_exchange, &e), -EPERM, "dom0: -EPERM");
    e = xch(in, 2, 0, out, 2, 0);
    e.in.domid = e.out.domid = OWN_DOMID;
    TEST_EQ(memop(XENMEM_exchange, &e), 0, "its own id: fine");
    TEST_ASSERT(frame_is(A + 5, 0) && frame_is(A + 6, 0), "both exchanged");

    /* the second extent's frame holds nothing: the first is done, nr_exchanged says so */
    frame_fill(A + 5, 0x55);
    in[0] = A + 5, in[1] = A + 16, out[0] = A + 5, out[1] = A + 20;
    hole[0] = A + 16;
    TEST_EQ(resv(XENMEM_decrease_reservation, hole, 1, 0, 0), 1, "A+16 ballooned");
    e = xch(in, 2, 0, out, 2, 0);
    TEST_EQ(memop(XENMEM_exchange, &e), -EINVAL, "an input frame holding nothing: -EINVAL");
    TEST_EQ(e.nr_exchanged, 1, "nr_exchanged 1");
    TEST_ASSERT(frame_is(A + 5, 0), "the first extent was exchanged");
    TEST_EQ(resv(XENMEM_populate_physmap, hole, 1, 0, 0), 1, "A+16 back");

    /* a chunk is taken whole or not at all: a page twice in it, shared_info in it */
    frame_fill(A + 7, 0x77);
    in[0] = A + 7, in[1] = A + 7, out[0] = A + 16;
    e = xch(in, 2, 0, out, 1, 1);
    TEST_EQ(memop(XENMEM_exchange, &e), -EINVAL, "the same page twice in a chunk: -EINVAL");
    TEST_EQ(e.nr_exchanged, 0, "nothing exchanged");
    TEST_ASSERT(frame_is(A + 7, 0x77) && frame_is(A + 16, 0), "A+7 untouched, A+16 too");
    struct xen_add_to_physmap sh = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                     .idx = 0, .gpfn = A + 8 };
    TEST_EQ(memop(XENMEM_add_to_physmap, &sh), 0, "shared_info at A+8");
    tot = count(XENMEM_current_reservation); /* A+8's page was freed */
    in[0] = A + 7, in[1] = A + 8;
    e = xch(in, 2, 0, out, 1, 1);
    TEST_EQ(memop(XENMEM_exchange, &e), -EINVAL, "shared_info's frame in the chunk: -EINVAL");
    TEST_ASSERT(frame_is(A + 7, 0x77), "A+7 untouched");

    /* the address width: nestor's pages lie anywhere below max_page */
    long maxp = memop(XENMEM_maximum_ram_page, NULL);
    u32 bits = 12;
    while ((1l << (bits - 12)) < maxp)
        bits++;
    in[0] = A + 7, out[0] = A + 7;
    e = xch(in, 1, 0, out, 1, 0);
    e.out.mem_flags = XENMEMF_address_bits(bits - 1);
    TEST_EQ(memop(XENMEM_exchange, &e), -ENOMEM, "a width below max_page's: -ENOMEM");
    TEST_ASSERT(frame_is(A + 7, 0x77), "A+7 untouched");
    in[0] = A + 9;
    TEST_EQ(resv(XENMEM_populate_physmap, in, 1, 0, XENMEMF_address_bits(bits - 1)), 0,
            "populate_physmap at that width: not done");
    in[0] = A + 7;
    e.out.mem_flags = XENMEMF_address_bits(bits);
    TEST_EQ(memop(XENMEM_exchange, &e), 0, "max_page's width: fine");
    TEST_ASSERT(frame_is(A + 7, 0), "A+7 exchanged");

    /* an output list it cannot read: the inputs are gone, their pages in no frame */
    frame_fill(A + 10, 0xaa);
    in[0] = A + 10;
    e = xch(in, 1, 0, BAD_PTR, 1, 0);
    TEST_EQ(memop(XENMEM_exchange, &e), -EFAULT, "an unreadable output list: -EFAULT");
    TEST_EQ(e.nr_exchanged, 0, "nr_exchanged 0");
    TEST_ASSERT(frame_is(A + 10, 0xffffffffu), "the input's frame holds nothing");
    TEST_EQ(count(XENMEM_current_reservation), tot, "the page is still the domain's");
    e = xch(BAD_PTR, 1, 0, out, 1, 0);
    TEST_EQ(memop(XENMEM_exchange, &e), -EFAULT, "an unreadable input list: -EFAULT");

    /* a start in nr_exchanged: only the rest is done */
    frame_fill(A + 11, 0xb1);
    frame_fill(A + 12, 0xb2);
    in[0] = A + 11, in[1] = A + 12, out[0] = A + 11, out[1] = A + 12;
    e = xch(in, 2, 0, out, 2, 0);
    e.nr_exchanged = 1;
    TEST_EQ(memop(XENMEM_exchange, &e), 0, "nr_exchanged 1 of 2");
    TEST_ASSERT(frame_is(A + 11, 0xb1) && frame_is(A + 12, 0), "only the second");

    /* 9 extents of 2M in place: more than a call does at once, it continues */
    u64 big[9];
    for (int i = 0; i < 9; i++) {
        big[i] = H + 512ull * i;
        frame_at(big[i])[0] = 0xc0 + i;
        frame_at(big[i] + 511)[1023] = 0xd0 + i;
    }
    e = xch(big, 9, 9, big, 9, 9);
    TEST_EQ(memop(XENMEM_exchange, &e), 0, "9 extents of order 9");
    TEST_EQ(e.nr_exchanged, 9, "all 9");
    bool zero = true;
    for (int i = 0; i < 9; i++)
        zero = zero && frame_at(big[i])[0] == 0 && frame_at(big[i] + 511)[1023] == 0;
    TEST_ASSERT(zero, "every one zeroed");
    TEST_EQ(count(XENMEM_current_reservation), tot, "reservation unchanged");
}

static void test_others(void)
{
    u64 ram = fwcfg_ram_size();
    long maxp = memop(XENMEM_maximum_ram_page, NULL);
    TEST_EQ(maxp, (long)(ram >> 12), "maximum_ram_page: the end of the RAM layout");
    TEST_EQ(memop(XENMEM_maximum_ram_page | (1u << 6), NULL), -EINVAL, "with a start extent: -EINVAL");

    /* claim_pages: struct xen_memory_reservation */
    struct xen_memory_reservation r = { .nr_extents = 16, .domid = OWN_DOMID };
    TEST_EQ(memop(MEM_CLAIM_PAGES | (1u << 6), &r), -EINVAL, "claim: a start extent: -EINVAL");
    TEST_EQ(memop(MEM_CLAIM_PAGES, BAD_PTR), -EFAULT, "claim: a bad pointer: -EFAULT");
    u64 l[1];
    set_xen_guest_handle(r.extent_start, l);
    TEST_EQ(memop(MEM_CLAIM_PAGES, &r), -EINVAL, "claim: a list: -EINVAL");
    set_xen_guest_handle(r.extent_start, NULL);
    r.extent_order = 1;
    TEST_EQ(memop(MEM_CLAIM_PAGES, &r), -EINVAL, "claim: order 1: -EINVAL");
    r.extent_order = 0;
    r.mem_flags = XENMEMF_node(0);
    TEST_EQ(memop(MEM_CLAIM_PAGES, &r), -EINVAL, "claim: flags: -EINVAL");
    r.mem_flags = 0;
    r.domid = DOMID_SELF;
    TEST_EQ(memop(MEM_CLAIM_PAGES, &r), -EINVAL, "claim: DOMID_SELF is no id: -EINVAL");
    r.domid = 9;
    TEST_EQ(memop(MEM_CLAIM_PAGES, &r), -EINVAL, "claim: domain 9: -EINVAL");
    r.domid = 0;
    TEST_EQ(memop(MEM_CLAIM_PAGES, &r), -EPERM, "claim: dom0: -EPERM");
    r.domid = OWN_DOMID;
    TEST_EQ(memop(MEM_CLAIM_PAGES, &r), -EPERM, "claim: itself: -EPERM (XSM)");

    /* acquire_resource: refused before its argument is read */
    TEST_EQ(memop(XENMEM_acquire_resource, BAD_PTR), -EACCES, "acquire_resource: -EACCES");
    struct xen_mem_acquire_resource ar = { .domid = OWN_DOMID, .type = XENMEM_resource_grant_table };
    TEST_EQ(memop(XENMEM_acquire_resource | (5u << 6), &ar), -EACCES, "of itself too");

    /* get_vnumainfo */
    struct xen_vnuma_topology_info v = { .domid = DOMID_SELF, .nr_vnodes = 1 };
    TEST_EQ(memop(XENMEM_get_vnumainfo | (1u << 6), &v), -EINVAL, "vnumainfo: a start extent: -EINVAL");
    TEST_EQ(memop(XENMEM_get_vnumainfo, BAD_PTR), -EFAULT, "vnumainfo: a bad pointer: -EFAULT");
    v.pad = 1;
    TEST_EQ(memop(XENMEM_get_vnumainfo, &v), -EINVAL, "vnumainfo: pad: -EINVAL");
    v.pad = 0;
    v.domid = 9;
    TEST_EQ(memop(XENMEM_get_vnumainfo, &v), -ESRCH, "vnumainfo: domain 9: -ESRCH");
    v.domid = 0;
    TEST_EQ(memop(XENMEM_get_vnumainfo, &v), -EPERM, "vnumainfo: dom0: -EPERM");
    v.domid = DOMID_SELF;
    TEST_EQ(memop(XENMEM_get_vnumainfo, &v), -EOPNOTSUPP, "vnumainfo: no vNUMA: -EOPNOTSUPP");

    /* reserved_device_memory_map: flags, nr_entries, buffer, dev (24 bytes) */
    u32 rdm[6] = { 0, 5, 0, 0, 0, 0 };
    TEST_EQ(memop(MEM_RDM_MAP | (1u << 6), rdm), -EINVAL, "rdm: a start extent: -EINVAL");
    TEST_EQ(memop(MEM_RDM_MAP, BAD_PTR), -EFAULT, "rdm: a bad pointer: -EFAULT");
    rdm[0] = 2;
    TEST_EQ(memop(MEM_RDM_MAP, rdm), -EINVAL, "rdm: unknown flags: -EINVAL");
    rdm[0] = 1;
    TEST_EQ(memop(MEM_RDM_MAP, rdm), 0, "rdm: all regions: none");
    TEST_EQ(rdm[1], 0, "nr_entries 0");

    /* access_op: struct xen_mem_access_op (32 bytes), domid at 2 */
    u16 ao[16] = { 0 };
    TEST_EQ(memop(MEM_ACCESS_OP, BAD_PTR), -EFAULT, "access_op: a bad pointer: -EFAULT");
    ao[1] = DOMID_SELF;
    TEST_EQ(memop(MEM_ACCESS_OP, ao), -ESRCH, "access_op: DOMID_SELF is no id: -ESRCH");
    ao[1] = OWN_DOMID;
    TEST_EQ(memop(MEM_ACCESS_OP, ao), -EPERM, "access_op: itself is not remote: -EPERM");
    ao[1] = 0;
    TEST_EQ(memop(MEM_ACCESS_OP, ao), -EINVAL, "access_op: dom0 (PV): -EINVAL");
    ao[1] = 9;
    TEST_EQ(memop(MEM_ACCESS_OP, ao), -ESRCH, "access_op: domain 9: -ESRCH");

    /* the machine-to-phys table and the machine map */
    struct xen_machphys_mfn_list ml = { .max_extents = 4, .nr_extents = 7 };
    set_xen_guest_handle(ml.extent_start, l);
    TEST_EQ(memop(XENMEM_machphys_mfn_list, &ml), 0, "machphys_mfn_list");
    TEST_EQ(ml.nr_extents, 0, "no frames");
    TEST_EQ(memop(XENMEM_machphys_compat_mfn_list, BAD_PTR), -EFAULT, "a bad pointer: -EFAULT");
    struct xen_machphys_mapping mm;
    TEST_EQ(memop(XENMEM_machphys_mapping, &mm), -ENOSYS, "machphys_mapping: -ENOSYS (HVM)");
    struct xen_memory_map mmap = { .nr_entries = 1 };
    TEST_EQ(memop(XENMEM_machine_memory_map, &mmap), -ENOSYS, "machine_memory_map: -ENOSYS (HVM)");

    /* not built into Xen 4.17 by default, and the numbers without an op */
    static const u32 none[] = { 8, MEM_SHARING_FREED, MEM_SHARING_SHARED, MEM_PAGING_OP,
                                MEM_SHARING_OP, 29, 63, XENMEM_memory_map | (1u << 6),
                                XENMEM_set_memory_map | (1u << 6) };
    for (unsigned i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        TEST_ASSERT(memop(none[i], &mmap) == -ENOSYS, "op %#x: -ENOSYS", none[i]);

    /* set_memory_map: the domain's own map, which memory_map reports from then on */
    struct { u64 addr, size; u32 type; } __attribute__((packed)) set[2] = {
        { 0, 0x9f000, 1 }, { 0x100000, 0x7f00000, 1 } }, got[3];
    struct xen_foreign_memory_map fm = { .domid = DOMID_SELF, .map.nr_entries = 2 };
    set_xen_guest_handle(fm.map.buffer, set);
    fm.map.nr_entries = 1025;
    TEST_EQ(memop(XENMEM_set_memory_map, &fm), -EINVAL, "set_memory_map: 1025 entries: -EINVAL");
    fm.map.nr_entries = 2;
    fm.domid = 9;
    TEST_EQ(memop(XENMEM_set_memory_map, &fm), -ESRCH, "set_memory_map: domain 9: -ESRCH");
    fm.domid = 0;
    TEST_EQ(memop(XENMEM_set_memory_map, &fm), -EPERM, "set_memory_map: dom0: -EPERM");
    fm.domid = DOMID_SELF;
    set_xen_guest_handle(fm.map.buffer, BAD_PTR);
    TEST_EQ(memop(XENMEM_set_memory_map, &fm), -EFAULT, "set_memory_map: a bad buffer: -EFAULT");
    struct xen_memory_map q = { .nr_entries = 3 };
    set_xen_guest_handle(q.buffer, got);
    TEST_EQ(memop(XENMEM_memory_map, &q), 0, "memory_map");
    TEST_ASSERT(q.nr_entries == 3 && got[0].addr == 0 && got[0].type == 1, "nestor's map still");
    set_xen_guest_handle(fm.map.buffer, set);
    TEST_EQ(memop(XENMEM_set_memory_map, &fm), 0, "set_memory_map of itself");
    q.nr_entries = 3;
    TEST_EQ(memop(XENMEM_memory_map, &q), 0, "memory_map");
    TEST_ASSERT(q.nr_entries == 2 && got[1].addr == 0x100000 && got[1].size == 0x7f00000 &&
                got[0].size == 0x9f000, "the map it set: %u entries", q.nr_entries);
    fm.map.nr_entries = 0;
    TEST_EQ(memop(XENMEM_set_memory_map, &fm), 0, "an empty map");
    TEST_EQ(memop(XENMEM_memory_map, &q), -ENOSYS, "memory_map: none: -ENOSYS");
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    u64 ram = fwcfg_ram_size();
    A = (ram - 0x1000000ull) >> 12;
    H = ((ram - 0x2800000ull) >> 12) & ~511ull;
    test_exchange();
    test_others();
}

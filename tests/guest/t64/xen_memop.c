/* -xen: memory_op as Xen 4.17 answers an HVM domU that balloons and moves its pages:
 * decrease_reservation (the frame then holds nothing: reads all-ones, writes dropped),
 * populate_physmap (a fresh zeroed page; within max_pages, extents of order <= 9),
 * increase_reservation (pages in no frame), the counts current/maximum_reservation and
 * maximum_gpfn report, the extent list, mem_flags, continuations in the command's upper
 * bits; add_to_physmap of RAM pages (gmfn, gmfn_range), add_to_physmap_batch with its
 * errs array, remove_from_physmap of RAM, shared_info and grant frames; the pod targets;
 * code in a page that moves is the code of the page now there.
 * QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes name=xen_memop */
/* guest: xen=yes cpu=max,vendor=AuthenticAMD name=xen_memop-amd */
#include "rt.h"
#include "xen_frames.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/grant_table.h>

#define EPERM 1
#define ENOENT 2
#define ESRCH 3
#define EFAULT 14
#define EACCES 13
#define EINVAL 22
#define EDOM 33
#define ENOSYS 38
#define EILSEQ 84
#define EOPNOTSUPP 95

static bool amd;

static long memop(u32 cmd, const void *arg)
{
    return xen_hypercall3(amd, __HYPERVISOR_memory_op, cmd, (u64)arg, 0);
}

static long resv(u32 cmd, u64 *list, u64 n, u32 order, u32 flags, domid_t dom)
{
    struct xen_memory_reservation r = { .nr_extents = n, .extent_order = order,
                                        .mem_flags = flags, .domid = dom };
    set_xen_guest_handle(r.extent_start, list);
    return memop(cmd, &r);
}

static long count(u32 cmd)
{
    domid_t self = DOMID_SELF;
    return memop(cmd, &self);
}

static long add(unsigned space, u64 idx, u64 gpfn, u16 size, u32 start)
{
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .size = size, .space = space,
                                    .idx = idx, .gpfn = gpfn };
    return memop(XENMEM_add_to_physmap | (start << 6), &a);
}

static long remove_frame(u64 gpfn)
{
    struct xen_remove_from_physmap r = { .domid = DOMID_SELF, .gpfn = gpfn };
    return memop(XENMEM_remove_from_physmap, &r);
}

/* a page of code: mov eax, v; ret */
static void put_code(u64 gfn, u32 v)
{
    volatile u8 *p = (volatile u8 *)(gfn << 12);
    p[0] = 0xb8;
    p[1] = (u8)v, p[2] = (u8)(v >> 8), p[3] = (u8)(v >> 16), p[4] = (u8)(v >> 24);
    p[5] = 0xc3;
}

static u32 call_code(u64 gfn)
{
    return ((u32(*)(void))(gfn << 12))();
}

static long max_pages;

static void test_counts(void)
{
    long tot = count(XENMEM_current_reservation);
    max_pages = count(XENMEM_maximum_reservation);
    TEST_EQ(tot, max_pages, "current = maximum reservation before ballooning");
    u64 ram = fwcfg_ram_size();
    TEST_ASSERT(max_pages > 0 && (u64)max_pages <= ram >> 12 && (u64)max_pages > (ram >> 12) - 0x100,
                "maximum_reservation: the RAM the domain was built with (%ld pages)", max_pages);
    long gpfn = count(XENMEM_maximum_gpfn);
    TEST_ASSERT(gpfn >= (long)(ram >> 12) - 1, "maximum_gpfn: at least the end of RAM (%#lx)", gpfn);
    domid_t dom0 = 0, other = 9;
    TEST_EQ(memop(XENMEM_maximum_gpfn, &dom0), -EPERM, "maximum_gpfn of dom0: -EPERM");
    TEST_EQ(memop(XENMEM_maximum_gpfn, &other), -ESRCH, "maximum_gpfn of domain 9: -ESRCH");
    domid_t self = DOMID_SELF;
    TEST_EQ(memop(XENMEM_current_reservation | (1u << 6), &self), -EINVAL,
            "current_reservation with a start extent: -EINVAL");
    TEST_EQ(memop(XENMEM_maximum_gpfn, (void *)0x8000000000000000ull), -EFAULT,
            "maximum_gpfn with a non-canonical pointer: -EFAULT");
}

/* A and its neighbours: 4K frames well inside RAM, far from the test's own pages */
static u64 A, B;

static void test_balloon(void)
{
    long tot = count(XENMEM_current_reservation);
    for (int i = 0; i < 4; i++)
        frame_fill(A + i, 0x5a5a0000u + i);
    u64 list[4] = { A, A + 1, A + 2, A + 3 };
    TEST_EQ(resv(XENMEM_decrease_reservation, list, 4, 0, 0, DOMID_SELF), 4, "decrease 4 frames");
    TEST_EQ(count(XENMEM_current_reservation), tot - 4, "current_reservation: 4 pages fewer");
    TEST_EQ(count(XENMEM_maximum_reservation), max_pages, "maximum_reservation unchanged");
    TEST_ASSERT(frame_is(A, 0xffffffffu) && frame_is(A + 3, 0xffffffffu),
                "a ballooned frame reads all-ones");
    frame_at(A)[5] = 0x1234;
    TEST_EQ(frame_at(A)[5], 0xffffffffu, "a write to it is dropped");
    TEST_EQ(resv(XENMEM_decrease_reservation, list, 1, 0, 0, DOMID_SELF), 0,
            "decrease of a frame holding nothing: 0 extents done");
    TEST_EQ(count(XENMEM_current_reservation), tot - 4, "and nothing counted");
    u64 mixed[2] = { A + 4, A };
    frame_fill(A + 4, 0x77);
    TEST_EQ(resv(XENMEM_decrease_reservation, mixed, 2, 0, 0, DOMID_SELF), 1,
            "decrease of a RAM frame then an empty one: 1 extent done");
    TEST_EQ(count(XENMEM_current_reservation), tot - 5, "5 pages fewer");

    /* populate: fresh zeroed pages */
    TEST_EQ(resv(XENMEM_populate_physmap, list, 2, 0, 0, DOMID_SELF), 2, "populate 2 frames");
    TEST_ASSERT(frame_is(A, 0) && frame_is(A + 1, 0), "a populated frame is zeroed (Xen scrubs)");
    frame_at(A)[7] = 0xabcd;
    TEST_EQ(frame_at(A)[7], 0xabcd, "and is RAM again");
    TEST_EQ(count(XENMEM_current_reservation), tot - 3, "current_reservation: 2 pages back");
    /* a continuation: the command's upper bits say where to start */
    u64 rest[4] = { A + 2, A + 3, A + 4, 0 };
    TEST_EQ(resv(XENMEM_populate_physmap | (1u << 6), rest, 3, 0, 0, DOMID_SELF), 3,
            "populate continued at extent 1: the result counts from 0");
    TEST_ASSERT(frame_is(A + 2, 0xffffffffu) && frame_is(A + 3, 0) && frame_is(A + 4, 0),
                "extent 0 was skipped, 1 and 2 populated");
    TEST_EQ(resv(XENMEM_populate_physmap | (3u << 6), rest, 3, 0, 0, DOMID_SELF), 3,
            "a start at nr_extents: the start back");
    TEST_EQ(resv(XENMEM_populate_physmap | (7u << 6), rest, 3, 0, 0, DOMID_SELF), 7,
            "a start beyond nr_extents: the start back");
    TEST_EQ(resv(XENMEM_populate_physmap, rest, 0, 0, 0, DOMID_SELF), 0, "no extents: 0");
    TEST_EQ(resv(XENMEM_populate_physmap, rest, 1, 0, 0, 0), 0, "for dom0: 0 extents");
    TEST_EQ(resv(XENMEM_populate_physmap, rest, 1, 0, 0, 9), 0, "for domain 9: 0 extents");
    TEST_EQ(resv(XENMEM_populate_physmap, rest, (1ull << 26), 0, 0, DOMID_SELF), 0,
            "2^26 extents (no room for a continuation): 0");
    TEST_EQ(resv(XENMEM_populate_physmap, (u64 *)0x8000000000000000ull, 1, 0, 0, DOMID_SELF), 0,
            "an extent list at a non-canonical address: 0");
    TEST_EQ(memop(XENMEM_populate_physmap, (void *)0x8000000000000000ull), 0,
            "the reservation at a non-canonical address: 0");
    /* mem_flags */
    TEST_EQ(resv(XENMEM_populate_physmap, rest, 1, 0, XENMEMF_address_bits(12), DOMID_SELF), 0,
            "address_bits 12: refused");
    TEST_EQ(resv(XENMEM_populate_physmap, rest, 1, 0, XENMEMF_exact_node(0), DOMID_SELF), 0,
            "an exact node: the control domain's");
    TEST_EQ(resv(XENMEM_populate_physmap, rest, 1, 0, XENMEMF_populate_on_demand, DOMID_SELF), 0,
            "populate-on-demand on oneself: refused");
    TEST_EQ(resv(XENMEM_populate_physmap, rest, 1, 0,
                 XENMEMF_address_bits(32) | XENMEMF_node(0) | XENMEMF_vnode | XENMEMF_exact_node_request,
                 DOMID_SELF), 1, "address_bits 32, a node, a vnode: fine");
    TEST_EQ(count(XENMEM_current_reservation), tot, "all 5 back");

    /* max_pages: nothing beyond it */
    u64 hole[1] = { 0xd0000 };
    TEST_EQ(resv(XENMEM_populate_physmap, hole, 1, 0, 0, DOMID_SELF), 0,
            "populate beyond max_pages: 0 extents");
    TEST_EQ(hole[0], 0xd0000, "the list is not written (a translated guest)");
    TEST_EQ(resv(XENMEM_increase_reservation, NULL, 1, 0, 0, DOMID_SELF), 0,
            "increase_reservation beyond max_pages: 0 extents");

    /* extent orders: 9 at most */
    u64 big[1] = { B };
    frame_fill(B + 100, 0x42);
    TEST_EQ(resv(XENMEM_decrease_reservation, big, 1, 10, 0, DOMID_SELF), 0, "decrease of order 10: 0");
    TEST_EQ(resv(XENMEM_decrease_reservation, big, 1, 9, 0, DOMID_SELF), 1, "decrease of order 9");
    TEST_EQ(count(XENMEM_current_reservation), tot - 512, "512 pages fewer");
    TEST_ASSERT(frame_is(B, 0xffffffffu) && frame_is(B + 511, 0xffffffffu), "2 MiB of nothing");
    u64 odd[1] = { B + 1 };
    TEST_EQ(resv(XENMEM_populate_physmap, odd, 1, 1, 0, DOMID_SELF), 1,
            "populate of order 1 at an odd frame (Xen maps it page by page)");
    TEST_ASSERT(frame_is(B, 0xffffffffu) && frame_is(B + 1, 0) && frame_is(B + 2, 0) &&
                frame_is(B + 3, 0xffffffffu), "frames B+1 and B+2");
    TEST_EQ(resv(XENMEM_decrease_reservation, odd, 1, 1, 0, DOMID_SELF), 1, "and back");
    TEST_EQ(resv(XENMEM_populate_physmap, big, 1, 10, 0, DOMID_SELF), 0, "populate of order 10: 0");
    u64 far[1] = { 1ull << 40 };
    TEST_EQ(resv(XENMEM_populate_physmap, far, 1, 0, 0, DOMID_SELF), 0,
            "populate beyond the physical address width: 0");
    TEST_EQ(resv(XENMEM_populate_physmap, big, 1, 9, 0, DOMID_SELF), 1, "populate of order 9");
    TEST_ASSERT(frame_is(B + 100, 0) && frame_is(B + 511, 0), "2 MiB of zeroes");
    TEST_EQ(count(XENMEM_current_reservation), tot, "all back");

    /* a long call (24 MiB, more than one round of work) continues until it is done */
    u64 many[12];
    u64 C = ((fwcfg_ram_size() - 0x3000000ull) >> 12) & ~511ull;
    for (int i = 0; i < 12; i++)
        many[i] = C + 512 * i;
    frame_at(C + 12 * 512 - 1)[0] = 0x99;
    TEST_EQ(resv(XENMEM_decrease_reservation, many, 12, 9, 0, DOMID_SELF), 12, "decrease 12 extents of 2 MiB");
    TEST_EQ(count(XENMEM_current_reservation), tot - 6144, "6144 pages fewer");
    TEST_ASSERT(frame_is(C, 0xffffffffu) && frame_is(C + 12 * 512 - 1, 0xffffffffu), "24 MiB of nothing");
    TEST_EQ(resv(XENMEM_populate_physmap, many, 12, 9, 0, DOMID_SELF), 12, "populate them");
    TEST_ASSERT(frame_is(C + 12 * 512 - 1, 0), "zeroed");
    TEST_EQ(count(XENMEM_current_reservation), tot, "all back");

    /* increase_reservation: pages of the domain in no frame */
    TEST_EQ(resv(XENMEM_decrease_reservation, list, 1, 0, 0, DOMID_SELF), 1, "decrease 1");
    TEST_EQ(resv(XENMEM_increase_reservation, NULL, 1, 0, 0, DOMID_SELF), 1, "increase 1");
    TEST_EQ(count(XENMEM_current_reservation), tot, "counted");
    TEST_ASSERT(frame_is(A, 0xffffffffu), "but in no frame");
    TEST_EQ(resv(XENMEM_populate_physmap, list, 1, 0, 0, DOMID_SELF), 0,
            "so populating it is beyond max_pages");
    /* bad frames */
    u64 bad[3] = { ~0ull, 0xfee00, 1ull << 45 };
    TEST_EQ(resv(XENMEM_decrease_reservation, bad, 3, 0, 0, DOMID_SELF), 0,
            "decrease of frame ~0: 0");
    TEST_EQ(resv(XENMEM_decrease_reservation, bad + 1, 2, 0, 0, DOMID_SELF), 0,
            "decrease of the LAPIC frame: 0");
    TEST_EQ(resv(XENMEM_decrease_reservation, bad + 2, 1, 0, 0, DOMID_SELF), 0,
            "decrease of a frame beyond the address width: 0");
    /* room again for what follows */
    TEST_EQ(resv(XENMEM_decrease_reservation, list + 1, 1, 0, 0, DOMID_SELF), 1, "decrease 1");
    TEST_EQ(resv(XENMEM_populate_physmap, list, 1, 0, 0, DOMID_SELF), 1, "and populate A");
}

static void test_moves(void)
{
    long tot = count(XENMEM_current_reservation);
    /* A+1 holds nothing (decreased above) */
    frame_fill(A, 0x11111111u);
    TEST_EQ(add(XENMAPSPACE_gmfn, A, A + 1, 0, 0), 0, "gmfn: RAM page A moves to the empty A+1");
    TEST_ASSERT(frame_is(A + 1, 0x11111111u), "its contents are there");
    TEST_ASSERT(frame_is(A, 0xffffffffu), "and A holds nothing");
    TEST_EQ(count(XENMEM_current_reservation), tot, "a move counts nothing");
    TEST_EQ(add(XENMAPSPACE_gmfn, A, A + 2, 0, 0), -EINVAL, "gmfn from an empty frame: -EINVAL");
    TEST_EQ(add(XENMAPSPACE_gmfn, 0xfee00, A, 0, 0), -EINVAL, "gmfn from the LAPIC frame: -EINVAL");
    TEST_EQ(add(XENMAPSPACE_gmfn, A + 1, A + 1, 0, 0), 0, "gmfn onto itself: 0");
    TEST_EQ(add(XENMAPSPACE_gmfn, A + 1, A, 0, 0), 0, "moved back");
    TEST_ASSERT(frame_is(A, 0x11111111u) && frame_is(A + 1, 0xffffffffu), "home again");
    frame_fill(A + 2, 0x22222222u);
    TEST_EQ(add(XENMAPSPACE_gmfn, A, A + 2, 0, 0), 0, "gmfn onto a RAM page");
    TEST_ASSERT(frame_is(A + 2, 0x11111111u), "it replaces the page there");
    TEST_EQ(count(XENMEM_current_reservation), tot - 1, "which is freed");
    /* the page keeps moving; its own frame takes a fresh page meanwhile */
    u64 l[1] = { A };
    TEST_EQ(resv(XENMEM_populate_physmap, l, 1, 0, 0, DOMID_SELF), 1, "A populated again");
    TEST_ASSERT(frame_is(A, 0) && frame_is(A + 2, 0x11111111u), "a fresh page at A, A's old page at A+2");
    TEST_EQ(add(XENMAPSPACE_gmfn, A + 2, A + 1, 0, 0), 0, "A's old page to A+1");
    TEST_ASSERT(frame_is(A + 1, 0x11111111u) && frame_is(A + 2, 0xffffffffu), "moved on");
    l[0] = A + 1;
    TEST_EQ(resv(XENMEM_decrease_reservation, l, 1, 0, 0, DOMID_SELF), 1, "and given back");
    TEST_EQ(count(XENMEM_current_reservation), tot - 1, "counted");

    /* gmfn_range: size pages from idx and gpfn on; a continuation skips its start */
    for (int i = 0; i < 3; i++)
        frame_fill(A + 8 + i, 0x80 + i);
    TEST_EQ(add(XENMAPSPACE_gmfn_range, A + 8, A + 1, 3, 0), 0, "gmfn_range of 3 pages");
    TEST_ASSERT(frame_is(A + 1, 0x80) && frame_is(A + 2, 0x81) && frame_is(A + 3, 0x82) &&
                frame_is(A + 8, 0xffffffffu) && frame_is(A + 10, 0xffffffffu), "3 pages moved");
    TEST_EQ(add(XENMAPSPACE_gmfn_range, A + 1, A + 8, 3, 1), 0, "gmfn_range continued at 1");
    TEST_ASSERT(frame_is(A + 1, 0x80) && frame_is(A + 9, 0x81) && frame_is(A + 10, 0x82) &&
                frame_is(A + 8, 0xffffffffu), "the first page stayed, the others moved");
    TEST_EQ(add(XENMAPSPACE_gmfn_range, A + 1, A + 8, 3, 4), -EILSEQ, "a start beyond size: -EILSEQ");
    TEST_EQ(add(XENMAPSPACE_gmfn_range, A + 1, A + 8, 0, 0), 0, "size 0: 0");
    TEST_EQ(add(XENMAPSPACE_gmfn_range, A + 1, A + 8, 2, 0), -EINVAL,
            "a range running into an empty frame: -EINVAL");
    TEST_ASSERT(frame_is(A + 8, 0x80) && frame_is(A + 1, 0xffffffffu), "after the first page");
    TEST_EQ(add(XENMAPSPACE_dev_mmio, 0, A + 1, 0, 0), -EACCES, "dev_mmio: -EACCES");
    TEST_EQ(add(77, 0, A + 1, 0, 0), -EINVAL, "an unknown space: -EINVAL");
    TEST_EQ(add(XENMAPSPACE_gmfn, A + 8, 1ull << 45, 0, 0), -EINVAL,
            "gmfn beyond the address width: -EINVAL");
}

static void test_batch(void)
{
    u64 idxs[4] = { A + 8, A + 20, A + 9, 0 };
    u64 gpfns[4] = { A + 1, A + 21, A + 11, 0 };
    int errs[4] = { 7, 7, 7, 7 };
    struct xen_add_to_physmap_batch b = { .domid = DOMID_SELF, .space = XENMAPSPACE_gmfn, .size = 3 };
    set_xen_guest_handle(b.idxs, idxs);
    set_xen_guest_handle(b.gpfns, gpfns);
    set_xen_guest_handle(b.errs, errs);
    frame_fill(A + 20, 0x20);
    TEST_EQ(resv(XENMEM_decrease_reservation, idxs + 1, 1, 0, 0, DOMID_SELF), 1, "A+20 ballooned");
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, &b), 0, "batch of 3 gmfn moves");
    TEST_ASSERT(errs[0] == 0 && errs[1] == -EINVAL && errs[2] == 0 && errs[3] == 7,
                "errs: 0, -EINVAL for the empty frame, 0 (%d %d %d %d)", errs[0], errs[1], errs[2], errs[3]);
    TEST_ASSERT(frame_is(A + 1, 0x80) && frame_is(A + 11, 0x81), "the two pages moved");
    errs[0] = errs[1] = 7;
    TEST_EQ(memop(XENMEM_add_to_physmap_batch | (1u << 6), &b), 0, "continued at 1");
    TEST_ASSERT(errs[0] == 7 && errs[1] == -EINVAL && errs[2] == -EINVAL, "entries 1 and 2 only");
    TEST_EQ(memop(XENMEM_add_to_physmap_batch | (3u << 6), &b), -EILSEQ, "start = size: -EILSEQ");
    TEST_EQ(memop(XENMEM_add_to_physmap_batch | (0x10000u << 6), &b), -EDOM,
            "a start beyond 16 bits: -EDOM");
    b.space = XENMAPSPACE_gmfn_foreign;
    b.u.foreign_domid = 0;
    b.size = 1;
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, &b), 0, "gmfn_foreign");
    TEST_EQ(errs[0], -EPERM, "errs: -EPERM (the hardware and control domains' only)");
    b.space = XENMAPSPACE_gmfn_range;
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, &b), -EOPNOTSUPP, "gmfn_range: -EOPNOTSUPP");
    b.space = XENMAPSPACE_dev_mmio;
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, &b), -EACCES, "dev_mmio: -EACCES");
    b.space = 9;
    errs[0] = 7;
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, &b), 0, "an unknown space");
    TEST_EQ(errs[0], -EINVAL, "errs: -EINVAL");
    b.space = XENMAPSPACE_gmfn;
    b.size = 0;
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, &b), 0, "size 0: 0");
    b.size = 1;
    b.domid = 0;
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, &b), -EPERM, "for dom0: -EPERM");
    b.domid = 9;
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, &b), -ESRCH, "for domain 9: -ESRCH");
    b.domid = DOMID_SELF;
    set_xen_guest_handle(b.errs, (int *)0x8000000000000000ull);
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, &b), -EFAULT, "errs at a bad address: -EFAULT");
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, (void *)0x8000000000000000ull), -EFAULT,
            "the struct at a bad address: -EFAULT");
    /* shared_info and a grant frame through the batch */
    set_xen_guest_handle(b.errs, errs);
    b.space = XENMAPSPACE_shared_info;
    idxs[0] = 0;
    gpfns[0] = A + 30;
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, &b), 0, "shared_info through the batch");
    TEST_EQ(errs[0], 0, "errs: 0");
    TEST_EQ(((volatile struct shared_info *)(frame_at(A + 30)))->wc_version, 2, "shared_info is there");
}

static void test_remove(void)
{
    long tot = count(XENMEM_current_reservation);
    frame_fill(A + 40, 0x40);
    TEST_EQ(remove_frame(A + 40), 0, "remove_from_physmap of a RAM frame");
    TEST_ASSERT(frame_is(A + 40, 0xffffffffu), "the frame holds nothing");
    TEST_EQ(count(XENMEM_current_reservation), tot, "the page is still the domain's (Xen keeps it)");
    TEST_EQ(remove_frame(A + 40), -ENOENT, "again: -ENOENT");
    TEST_EQ(remove_frame(0xfee00), -ENOENT, "the LAPIC frame: -ENOENT");
    struct xen_remove_from_physmap r = { .domid = DOMID_SELF, .gpfn = A + 41 };
    TEST_EQ(memop(XENMEM_remove_from_physmap | (1u << 6), &r), -EINVAL, "with a start extent: -EINVAL");
    r.domid = 0;
    TEST_EQ(memop(XENMEM_remove_from_physmap, &r), -EPERM, "for dom0: -EPERM");
    r.domid = 9;
    TEST_EQ(memop(XENMEM_remove_from_physmap, &r), -ESRCH, "for domain 9: -ESRCH");
    TEST_EQ(memop(XENMEM_remove_from_physmap, (void *)0x8000000000000000ull), -EFAULT,
            "the struct at a bad address: -EFAULT");

    /* shared_info (placed at A+30 by the batch) */
    TEST_EQ(remove_frame(A + 30), 0, "remove shared_info");
    TEST_ASSERT(frame_is(A + 30, 0xffffffffu), "its frame holds nothing");
    TEST_EQ(count(XENMEM_current_reservation), tot, "nothing counted");
    TEST_EQ(add(XENMAPSPACE_shared_info, 0, A + 40, 0, 0), 0, "placed again, in the hole left");
    TEST_EQ(((volatile struct shared_info *)(frame_at(A + 40)))->wc_version, 2, "the same page, its contents kept");
    u64 l[1] = { A + 40 };
    TEST_EQ(resv(XENMEM_decrease_reservation, l, 1, 0, 0, DOMID_SELF), 1,
            "decrease_reservation of the shared_info frame");
    TEST_ASSERT(frame_is(A + 40, 0xffffffffu), "unhooked");
    TEST_EQ(count(XENMEM_current_reservation), tot, "not the domain's page: nothing counted");

    /* a grant frame */
    TEST_EQ(add(XENMAPSPACE_grant_table, 0, A + 41, 0, 0), 0, "grant frame 0 onto a RAM frame");
    TEST_EQ(count(XENMEM_current_reservation), tot - 1, "the RAM page there is freed");
    u64 gfns[1] = { 0 };
    struct gnttab_setup_table st = { .dom = DOMID_SELF, .nr_frames = 1 };
    set_xen_guest_handle(st.frame_list, gfns);
    xen_hypercall3(amd, __HYPERVISOR_grant_table_op, GNTTABOP_setup_table, (u64)&st, 1);
    TEST_EQ(gfns[0], A + 41, "setup_table: frame 0 at A+41");
    TEST_EQ(remove_frame(A + 41), 0, "remove the grant frame");
    TEST_ASSERT(frame_is(A + 41, 0xffffffffu), "its frame holds nothing");
    xen_hypercall3(amd, __HYPERVISOR_grant_table_op, GNTTABOP_setup_table, (u64)&st, 1);
    TEST_EQ(gfns[0], ~0ull, "setup_table: frame 0 is nowhere now");
    TEST_EQ(add(XENMAPSPACE_grant_table, 0, A + 42, 0, 0), 0, "grant frame 0 placed again");
    TEST_EQ(add(XENMAPSPACE_shared_info, 0, A + 42, 0, 0), 0, "shared_info placed over it");
    xen_hypercall3(amd, __HYPERVISOR_grant_table_op, GNTTABOP_setup_table, (u64)&st, 1);
    TEST_EQ(gfns[0], ~0ull, "the grant frame it replaced is nowhere");
    TEST_EQ(add(XENMAPSPACE_grant_table, 0, A + 42, 0, 0), 0, "the grant frame over shared_info");
    long before = count(XENMEM_current_reservation);
    u64 m[1] = { A + 43 };
    frame_fill(A + 43, 0x43);
    TEST_EQ(resv(XENMEM_populate_physmap, m, 1, 0, 0, DOMID_SELF), 1, "populate over a RAM page");
    TEST_ASSERT(frame_is(A + 43, 0), "a fresh zeroed page there");
    TEST_EQ(count(XENMEM_current_reservation), before + 1,
            "the old page is still counted (Xen keeps it, in no frame)");
    m[0] = A + 42;
    TEST_EQ(resv(XENMEM_populate_physmap, m, 1, 0, 0, DOMID_SELF), 1, "populate over the grant frame");
    TEST_ASSERT(frame_is(A + 42, 0), "a zeroed RAM page there");
    xen_hypercall3(amd, __HYPERVISOR_grant_table_op, GNTTABOP_setup_table, (u64)&st, 1);
    TEST_EQ(gfns[0], ~0ull, "the grant frame is nowhere");
    TEST_EQ(count(XENMEM_current_reservation), before + 2, "one page more");

    /* the pod targets are the toolstack's */
    struct xen_pod_target t = { .domid = DOMID_SELF };
    TEST_EQ(memop(XENMEM_get_pod_target, &t), -EINVAL, "get_pod_target of DOMID_SELF: -EINVAL");
    t.domid = 1;
    TEST_EQ(memop(XENMEM_get_pod_target, &t), -EPERM, "get_pod_target of itself: -EPERM");
    TEST_EQ(memop(XENMEM_set_pod_target, &t), -EPERM, "set_pod_target of itself: -EPERM");
    t.domid = 9;
    TEST_EQ(memop(XENMEM_get_pod_target, &t), -ESRCH, "of domain 9: -ESRCH");
}

/* Code in a frame is the code of the page there now: every vCPU's translations and the
 * code decoded from the page that left are dropped. */
static void test_code(void)
{
    u64 x = A + 50, y = A + 51;
    put_code(x, 1);
    TEST_EQ(call_code(x), 1, "code at X");
    put_code(y, 2);
    TEST_EQ(call_code(y), 2, "code at Y");
    u64 l[1] = { x };
    TEST_EQ(resv(XENMEM_decrease_reservation, l, 1, 0, 0, DOMID_SELF), 1, "X ballooned");
    TEST_EQ(add(XENMAPSPACE_gmfn, y, x, 0, 0), 0, "Y's page moved to X");
    TEST_EQ(call_code(x), 2, "X runs Y's code");
    TEST_EQ(add(XENMAPSPACE_gmfn, x, y, 0, 0), 0, "and back to Y");
    l[0] = x;
    TEST_EQ(resv(XENMEM_populate_physmap, l, 1, 0, 0, DOMID_SELF), 1, "X populated");
    put_code(x, 3);
    TEST_EQ(call_code(x), 3, "X's fresh page runs its own code");
    TEST_EQ(call_code(y), 2, "Y still 2");
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    u64 ram = fwcfg_ram_size();
    A = (ram - 0x1000000ull) >> 12;
    B = ((ram - 0x800000ull) >> 12) & ~511ull;
    test_counts();
    test_balloon();
    test_moves();
    test_batch();
    test_remove();
    test_code();
}

/* -xen from 32-bit code: memory_op's x86_32 (compat) layouts. xen_memory_reservation
 * (a 32-bit extent_start handle and nr_extents: 20 bytes, 32-bit frame numbers in the
 * list), xen_add_to_physmap (16 bytes), add_to_physmap_batch (three 32-bit handles after
 * 8 bytes; 32-bit idxs and gpfns), remove_from_physmap (gpfn at 4), and the command's
 * continuation bits in EBX. Words where the native layout would have its fields hold
 * garbage, so a native reading fails. QEMU TCG has no Xen interface: skipped there.
 * guest: xen=yes name=xen_memop32 */
/* guest: xen=yes cpu=max,vendor=AuthenticAMD name=xen_memop32-amd */
#include "rt.h"
#include "xen_frames.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>

#define EPERM 1
#define ENOENT 2
#define EINVAL 22
#define EILSEQ 84

static bool amd;

static long memop(u32 cmd, const void *arg)
{
    return xen_hypercall3(amd, __HYPERVISOR_memory_op, cmd, (u32)arg, 0);
}

static long count(u32 cmd)
{
    u16 self = DOMID_SELF;
    return memop(cmd, &self);
}

/* struct compat_memory_reservation: extent_start (0), nr_extents (4), extent_order (8),
 * mem_flags (12), domid (16); garbage beyond */
static long resv(u32 cmd, u32 *list, u32 n, u32 order, u32 flags)
{
    u32 r[8] = { (u32)list, n, order, flags, DOMID_SELF | 0xdead0000u, 0xdeadbeef, 0xdeadbeef, 0xdeadbeef };
    return memop(cmd, r);
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    u32 A = (u32)((fwcfg_ram_size() - 0x1000000ull) >> 12);
    long tot = count(XENMEM_current_reservation);
    TEST_EQ(count(XENMEM_maximum_reservation), tot, "current = maximum reservation");
    TEST_ASSERT(count(XENMEM_maximum_gpfn) >= (long)(fwcfg_ram_size() >> 12) - 1, "maximum_gpfn");

    /* 32-bit frame numbers in the list; a native reading would see A | (A+1) << 32 */
    u32 list[4] = { A, A + 1, A + 2, 0xffffffffu };
    frame_fill(A, 0x5a);
    frame_fill(A + 1, 0x5b);
    TEST_EQ(resv(XENMEM_decrease_reservation, list, 2, 0, 0), 2, "decrease 2 frames (compat)");
    TEST_EQ(count(XENMEM_current_reservation), tot - 2, "2 pages fewer");
    TEST_ASSERT(frame_is(A, 0xffffffffu) && frame_is(A + 1, 0xffffffffu) && frame_is(A + 2, 0),
                "those two hold nothing, the third is RAM");
    TEST_EQ(resv(XENMEM_populate_physmap | (1u << 6), list, 2, 0, 0), 2, "populate continued at 1");
    TEST_ASSERT(frame_is(A, 0xffffffffu) && frame_is(A + 1, 0), "extent 1 only: zeroed");
    TEST_EQ(resv(XENMEM_populate_physmap, list, 1, 0, XENMEMF_address_bits(8)), 0,
            "address_bits 8: refused");
    TEST_EQ(resv(XENMEM_populate_physmap, list, 1, 10, 0), 0, "order 10: refused");
    TEST_EQ(resv(XENMEM_populate_physmap, list, 1, 0, 0), 1, "populate A");
    TEST_EQ(count(XENMEM_current_reservation), tot, "all back");
    TEST_EQ(resv(XENMEM_decrease_reservation, list + 3, 1, 0, 0), 0, "frame 0xffffffff: 0");

    /* add_to_physmap, 16 bytes: domid, size, space, idx (8), gpfn (12) */
    frame_fill(A + 2, 0x22);
    TEST_EQ(resv(XENMEM_decrease_reservation, list + 1, 1, 0, 0), 1, "A+1 ballooned");
    u32 a[6] = { DOMID_SELF, XENMAPSPACE_gmfn, A + 2, A + 1, 0xdeadbeef, 0xdeadbeef };
    TEST_EQ(memop(XENMEM_add_to_physmap, a), 0, "gmfn move (compat)");
    TEST_ASSERT(frame_is(A + 1, 0x22) && frame_is(A + 2, 0xffffffffu), "the page moved");
    for (int i = 0; i < 3; i++)
        frame_fill(A + 4 + i, 0x40 + i);
    u32 r[6] = { DOMID_SELF | (3u << 16), XENMAPSPACE_gmfn_range, A + 4, A + 8, 0xdeadbeef, 0xdeadbeef };
    TEST_EQ(memop(XENMEM_add_to_physmap | (1u << 6), r), 0, "gmfn_range of 3 continued at 1 (compat)");
    TEST_ASSERT(frame_is(A + 4, 0x40) && frame_is(A + 9, 0x41) && frame_is(A + 10, 0x42) &&
                frame_is(A + 8, 0) && frame_is(A + 5, 0xffffffffu), "pages 1 and 2 moved");
    TEST_EQ(memop(XENMEM_add_to_physmap | (4u << 6), r), -EILSEQ, "start beyond size: -EILSEQ");

    /* add_to_physmap_batch, 20 bytes: domid, space, size, res0, idxs, gpfns, errs */
    u32 idxs[2] = { A + 9, A + 2 }, gpfns[2] = { A + 5, A + 6 };
    s32 errs[3] = { 7, 7, 7 };
    u32 b[8] = { DOMID_SELF | (XENMAPSPACE_gmfn << 16), 2, (u32)idxs, (u32)gpfns, (u32)errs,
                 0xdeadbeef, 0xdeadbeef, 0xdeadbeef };
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, b), 0, "batch of 2 (compat)");
    TEST_ASSERT(errs[0] == 0 && errs[1] == -EINVAL && errs[2] == 7,
                "errs: 0 and -EINVAL (A+2 holds nothing): %d %d %d", errs[0], errs[1], errs[2]);
    TEST_ASSERT(frame_is(A + 5, 0x41) && frame_is(A + 9, 0xffffffffu), "the first moved");
    b[0] = DOMID_SELF | (XENMAPSPACE_gmfn_foreign << 16);
    errs[0] = 7;
    TEST_EQ(memop(XENMEM_add_to_physmap_batch, b), 0, "gmfn_foreign batch (compat)");
    TEST_EQ(errs[0], -EPERM, "errs: -EPERM");

    /* remove_from_physmap, 8 bytes: domid, gpfn at 4 */
    u32 rm[4] = { DOMID_SELF, A + 5, 0xdeadbeef, 0xdeadbeef };
    TEST_EQ(memop(XENMEM_remove_from_physmap, rm), 0, "remove_from_physmap (compat)");
    TEST_ASSERT(frame_is(A + 5, 0xffffffffu), "the frame holds nothing");
    TEST_EQ(memop(XENMEM_remove_from_physmap, rm), -ENOENT, "again: -ENOENT");

    /* the pod target: four 64-bit words, then domid at 32 (a 36-byte struct) */
    u32 pt[9] = { 0, 0, 0, 0, 0, 0, 0, 0, 1 };
    TEST_EQ(memop(XENMEM_get_pod_target, pt), -EPERM, "get_pod_target of itself: -EPERM");
    pt[8] = DOMID_SELF;
    TEST_EQ(memop(XENMEM_get_pod_target, pt), -EINVAL, "of DOMID_SELF: -EINVAL");
}

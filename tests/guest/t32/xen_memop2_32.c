/* -xen from 32-bit code: the rest of memory_op in the x86_32 (compat) layouts, and what
 * Xen's compat_memory_op does differently: exchange (44 bytes: two 20-byte reservations,
 * nr_exchanged at 40; 32-bit frame numbers) with the translation's own checks (an
 * nr_exchanged inside an output chunk, sizes that overflow 32 bits, -E2BIG for an order
 * difference its buffer cannot hold), its pieces (5000 pages: ten), and nr_exchanged
 * given back only for a piece that succeeded; claim_pages (not translated: -ENOSYS); acquire_resource (its frame list read
 * before the -EACCES); get_vnumainfo (copied before the start extent is looked at);
 * reserved_device_memory_map, the machphys list, set_memory_map and memory_map with their
 * 32-bit handles. Words where the native layout would have its fields hold garbage.
 * QEMU TCG has no Xen interface: skipped there.
 * guest: xen=yes name=xen_memop2_32 */
/* guest: xen=yes cpu=max,vendor=AuthenticAMD name=xen_memop2_32-amd */
#include "rt.h"
#include "xen_frames.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>

#define EPERM 1
#define EACCES 13
#define EFAULT 14
#define EINVAL 22
#define E2BIG 7
#define ENOSYS 38
#define EOPNOTSUPP 95

#define MEM_CLAIM_PAGES 24
#define MEM_RDM_MAP 27
#define BAD 0x40000000u /* beyond RAM */
#define G 0xdead0000u   /* garbage in a domid word's upper half */

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

/* struct compat_memory_exchange: in (list, nr, order, flags, domid), out (the same),
 * nr_exchanged; garbage beyond */
static void xch(u32 *e, u32 *in, u32 nin, u32 oin, u32 *out, u32 nout, u32 oout, u32 done)
{
    u32 v[12] = { (u32)in, nin, oin, 0, DOMID_SELF | G, (u32)out, nout, oout, 0, DOMID_SELF | G,
                  done, 0xdeadbeef };
    for (int i = 0; i < 12; i++)
        e[i] = v[i];
}

static void test_exchange(u32 A)
{
    long tot = count(XENMEM_current_reservation);
    u32 e[12];
    frame_fill(A, 0x11);
    frame_fill(A + 1, 0x22);
    u32 hole[2] = { A + 16, A + 17 };
    u32 r[6] = { (u32)hole, 2, 0, 0, DOMID_SELF | G, 0xdeadbeef };
    TEST_EQ(memop(XENMEM_decrease_reservation, r), 2, "A+16, A+17 ballooned");
    u32 in[4] = { A, A + 1, 0xdeadbeef, 0xdeadbeef }, out[4] = { A + 16, 0xdeadbeef };
    xch(e, in, 2, 0, out, 1, 1, 0);
    TEST_EQ(memop(XENMEM_exchange, e), 0, "2 pages for one of order 1 (compat)");
    TEST_EQ(e[10], 2, "nr_exchanged 2 at 40");
    TEST_EQ(e[11], 0xdeadbeef, "nothing written beyond");
    TEST_ASSERT(frame_is(A, 0xffffffffu) && frame_is(A + 1, 0xffffffffu) && frame_is(A + 16, 0) &&
                frame_is(A + 17, 0), "the inputs hold nothing, the outputs are zeroed");
    TEST_EQ(count(XENMEM_current_reservation), tot - 2, "reservation unchanged");

    /* the translation's checks come first */
    in[0] = A + 16;
    out[0] = A, out[1] = A + 1;
    xch(e, (u32 *)BAD, 2, 0, out, 1, 1, 1);
    TEST_EQ(memop(XENMEM_exchange, e), -EINVAL, "nr_exchanged inside an output chunk: -EINVAL");
    xch(e, in, 1024, 0, out, 1, 10, 0);
    TEST_EQ(memop(XENMEM_exchange, e), -E2BIG, "orders 0 and 10: -E2BIG (before -EPERM)");
    xch(e, in, 1, 10, out, 1, 10, 0);
    TEST_EQ(memop(XENMEM_exchange, e), -EPERM, "orders 10 and 10: -EPERM");
    xch(e, (u32 *)BAD, 0x10000000u, 4, out, 0, 4, 0); /* both 2^32 pages: 0 */
    TEST_EQ(memop(XENMEM_exchange, e), -EINVAL, "a size that overflows 32 bits: -EINVAL");
    xch(e, (u32 *)BAD, 1, 0, out, 1, 0, 0);
    TEST_EQ(memop(XENMEM_exchange, e), -EFAULT, "an unreadable input list: -EFAULT");
    xch(e, (u32 *)BAD, 1, 10, out, 1, 10, 0);
    TEST_EQ(memop(XENMEM_exchange, e), -EFAULT, "the translation reads it before -EPERM");
    TEST_EQ(memop(XENMEM_exchange, (void *)BAD), -EFAULT, "a bad pointer: -EFAULT");

    /* order 1 for two of order 0, back; the second of two extents a hole: -EINVAL, and
     * the piece's nr_exchanged is not given back */
    xch(e, in, 1, 1, out, 2, 0, 0);
    TEST_EQ(memop(XENMEM_exchange, e), 0, "order 1 for 2 of order 0 (compat)");
    TEST_ASSERT(frame_is(A, 0) && frame_is(A + 1, 0) && frame_is(A + 16, 0xffffffffu), "back at A, A+1");
    frame_fill(A, 0x11);
    in[0] = A, in[1] = A + 16, out[0] = A, out[1] = A + 20;
    xch(e, in, 2, 0, out, 2, 0, 0);
    TEST_EQ(memop(XENMEM_exchange, e), -EINVAL, "an input frame holding nothing: -EINVAL");
    TEST_EQ(e[10], 0, "nr_exchanged not written back");
    TEST_ASSERT(frame_is(A, 0), "though the first extent was exchanged");
    TEST_EQ(count(XENMEM_current_reservation), tot - 2, "reservation unchanged");
}

/* 5000 pages of order 0 in place: ten pieces of Xen's translation (507 extents each),
 * the call continuing between them */
static u32 many[5000];

static void test_pieces(u32 base)
{
    long tot = count(XENMEM_current_reservation);
    for (u32 i = 0; i < 5000; i++) {
        many[i] = base + i;
        frame_at(base + i)[i & 1023] = 0x600d0000u | i;
    }
    u32 e[12];
    xch(e, many, 5000, 0, many, 5000, 0, 0);
    TEST_EQ(memop(XENMEM_exchange, e), 0, "5000 pages in place (compat)");
    TEST_EQ(e[10], 5000, "nr_exchanged 5000");
    bool zero = true;
    for (u32 i = 0; i < 5000; i++)
        zero = zero && frame_at(base + i)[i & 1023] == 0;
    TEST_ASSERT(zero, "every page zeroed");
    TEST_EQ(count(XENMEM_current_reservation), tot, "reservation unchanged");
    e[10] = 4990;
    frame_at(base + 4989)[4989 & 1023] = 1;
    frame_at(base + 4990)[4990 & 1023] = 1;
    TEST_EQ(memop(XENMEM_exchange, e), 0, "from nr_exchanged 4990 (the last piece)");
    TEST_ASSERT(frame_at(base + 4989)[4989 & 1023] == 1 && frame_at(base + 4990)[4990 & 1023] == 0,
                "only the last 10");
}

static void test_others(void)
{
    TEST_EQ(memop(XENMEM_maximum_ram_page, 0), (long)(fwcfg_ram_size() >> 12), "maximum_ram_page");
    u32 rs[6] = { 0, 16, 0, 0, 1 | G, 0xdeadbeef };
    TEST_EQ(memop(MEM_CLAIM_PAGES, rs), -ENOSYS, "claim_pages: not translated, -ENOSYS");

    /* acquire_resource: domid, type, id, nr_frames, pad, frame (16), frame_list (24) */
    u32 fl[2] = { 0, 0 };
    u32 ar[8] = { 1 | (XENMEM_resource_grant_table << 16), 0, 2, 0, 0, 0, (u32)fl, 0xdeadbeef };
    TEST_EQ(memop(XENMEM_acquire_resource, (void *)BAD), -EFAULT, "acquire_resource: a bad pointer: -EFAULT");
    TEST_EQ(memop(XENMEM_acquire_resource | (2u << 6), ar), -EINVAL, "a start at nr_frames: -EINVAL");
    ar[6] = BAD;
    TEST_EQ(memop(XENMEM_acquire_resource, ar), -EFAULT, "an unreadable frame list: -EFAULT");
    ar[6] = (u32)fl;
    TEST_EQ(memop(XENMEM_acquire_resource, ar), -EACCES, "then -EACCES");

    /* get_vnumainfo: copied first */
    u32 v[10] = { DOMID_SELF, 1, 1, 1, 0, 0, 0, 0, 0, 0 };
    TEST_EQ(memop(XENMEM_get_vnumainfo | (1u << 6), (void *)BAD), -EFAULT,
            "vnumainfo with a start extent and a bad pointer: -EFAULT");
    TEST_EQ(memop(XENMEM_get_vnumainfo | (1u << 6), v), -EINVAL, "with a start extent: -EINVAL");
    TEST_EQ(memop(XENMEM_get_vnumainfo, v), -EOPNOTSUPP, "no vNUMA: -EOPNOTSUPP");

    /* reserved_device_memory_map: flags, nr_entries (4), buffer (8), dev (12) */
    u32 rdm[6] = { 1, 5, 0, 0, 0xdeadbeef, 0xdeadbeef };
    TEST_EQ(memop(MEM_RDM_MAP, rdm), 0, "rdm (compat)");
    TEST_ASSERT(rdm[1] == 0 && rdm[4] == 0xdeadbeef, "nr_entries 0 at 4");

    /* machphys_mfn_list: max_extents, list (4), nr_extents (8) */
    u32 ml[4] = { 4, (u32)fl, 7, 0xdeadbeef };
    TEST_EQ(memop(XENMEM_machphys_mfn_list, ml), 0, "machphys_mfn_list (compat)");
    TEST_ASSERT(ml[2] == 0 && ml[3] == 0xdeadbeef, "nr_extents 0 at 8");

    /* set_memory_map: domid, nr_entries (4), buffer (8); memory_map: nr, buffer (4) */
    u32 set[5] = { 0, 0, 0x9f000, 0, 1 };
    u32 fm[4] = { DOMID_SELF | G, 1, (u32)set, 0xdeadbeef };
    TEST_EQ(memop(XENMEM_set_memory_map, fm), 0, "set_memory_map (compat)");
    u32 got[10] = { 0 };
    u32 mm[3] = { 2, (u32)got, 0xdeadbeef };
    TEST_EQ(memop(XENMEM_memory_map, mm), 0, "memory_map (compat)");
    TEST_ASSERT(mm[0] == 1 && got[2] == 0x9f000 && got[4] == 1 && got[5] == 0, "the map it set");
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    test_exchange((u32)((fwcfg_ram_size() - 0x1000000ull) >> 12));
    test_pieces((u32)((fwcfg_ram_size() - 0x3000000ull) >> 12));
    test_others();
}

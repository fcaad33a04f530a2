/* -xen: grant tables as Xen 4.17 keeps them for an HVM domU: the table is Xen's, one
 * frame at first, at most 64; query_size, get_version, set_version (1 and 2),
 * setup_table and get_status_frames with their errors (count, domains, frames beyond the
 * maximum, status frames in version 1); XENMEM_add_to_physmap of grant frames anywhere in
 * the physical space, RAM or not, replacing what was there and moving with their
 * contents (copy, map and the other batch operations: xen_gntcopy).
 * QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes name=xen_gnttab */
/* guest: xen=yes cpu=max,vendor=AuthenticAMD name=xen_gnttab-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/grant_table.h>

#define EPERM 1
#define EINVAL 22
#define ENOSYS 38

static bool amd;

static long hc(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static long gnttab(u32 cmd, void *arg, u32 count)
{
    return hc(__HYPERVISOR_grant_table_op, cmd, (u64)arg, count);
}

static long map_frame(u64 idx, u64 gfn)
{
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_grant_table,
                                    .idx = idx, .gpfn = gfn };
    return hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0);
}

/* a frame in the PCI hole that nothing decodes */
#define HOLE_GFN 0xd0000ull

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    struct gnttab_query_size q = { .dom = DOMID_SELF };
    TEST_EQ(gnttab(GNTTABOP_query_size, &q, 2), -EINVAL, "query_size with count 2: -EINVAL");
    TEST_EQ(gnttab(GNTTABOP_query_size, &q, 1), 0, "query_size");
    TEST_ASSERT(q.status == GNTST_okay && q.nr_frames == 1 && q.max_nr_frames == 64,
                "one frame of 64 at first (status %d, %u of %u)", q.status, q.nr_frames, q.max_nr_frames);
    q = (struct gnttab_query_size){ .dom = 0 };
    gnttab(GNTTABOP_query_size, &q, 1);
    TEST_EQ(q.status, GNTST_permission_denied, "dom0's table: permission denied");
    q = (struct gnttab_query_size){ .dom = 9 };
    gnttab(GNTTABOP_query_size, &q, 1);
    TEST_EQ(q.status, GNTST_bad_domain, "a domain that does not exist: bad domain");

    struct gnttab_get_version gv = { .dom = DOMID_SELF };
    TEST_EQ(gnttab(GNTTABOP_get_version, &gv, 1), 0, "get_version");
    TEST_EQ(gv.version, 1, "version 1 at first");
    struct gnttab_set_version sv = { .version = 3 };
    TEST_EQ(gnttab(GNTTABOP_set_version, &sv, 1), -EINVAL, "set_version 3: -EINVAL");
    TEST_EQ(sv.version, 1, "and the current version comes back");

    /* frame 0 outside RAM: it is memory there now */
    volatile grant_entry_v1_t *hole = (volatile grant_entry_v1_t *)(HOLE_GFN << 12);
    TEST_EQ(hole[0].flags, 0xffff, "nothing in the hole before");
    TEST_EQ(map_frame(0, HOLE_GFN), 0, "grant frame 0 into the PCI hole");
    TEST_EQ(hole[8].flags, 0, "a new frame is zero");
    hole[8] = (grant_entry_v1_t){ .flags = GTF_permit_access, .domid = 0, .frame = 0x1234 };
    TEST_EQ(hole[8].frame, 0x1234, "an entry written there reads back");

    /* moved over a RAM page: it replaces the page and takes the entries along */
    u8 *ram = page_alloc();
    memset(ram, 0x5a, 4096);
    TEST_EQ(map_frame(0, (u64)ram >> 12), 0, "grant frame 0 onto a RAM page");
    volatile grant_entry_v1_t *e = (volatile grant_entry_v1_t *)ram;
    TEST_ASSERT(e[8].frame == 0x1234 && e[8].flags == GTF_permit_access, "the entries moved with it");
    TEST_EQ(hole[0].flags, 0xffff, "the hole is empty again");

    /* setup_table: the frames' places */
    u64 gfns[3] = { 1, 2, 3 };
    struct gnttab_setup_table st = { .dom = DOMID_SELF, .nr_frames = 3 };
    set_xen_guest_handle(st.frame_list, gfns);
    TEST_EQ(gnttab(GNTTABOP_setup_table, &st, 1), 0, "setup_table of 3 frames");
    TEST_EQ(st.status, GNTST_okay, "status okay");
    TEST_ASSERT(gfns[0] == (u64)ram >> 12 && gfns[1] == ~0ull && gfns[2] == ~0ull,
                "frame 0 where it is, the new ones nowhere yet");
    q = (struct gnttab_query_size){ .dom = DOMID_SELF };
    gnttab(GNTTABOP_query_size, &q, 1);
    TEST_EQ(q.nr_frames, 3, "the table grew to 3 frames");
    st.nr_frames = 65;
    gnttab(GNTTABOP_setup_table, &st, 1);
    TEST_EQ(st.status, GNTST_general_error, "65 frames: general error");
    TEST_EQ(map_frame(64, HOLE_GFN), -EINVAL, "frame 64: -EINVAL");
    TEST_EQ(map_frame(XENMAPIDX_grant_table_status | 0, HOLE_GFN), -EINVAL, "a status frame in version 1: -EINVAL");
    TEST_EQ(map_frame(5, HOLE_GFN + 1), 0, "frame 5 grows the table");
    gnttab(GNTTABOP_query_size, &q, 1);
    TEST_EQ(q.nr_frames, 6, "to 6 frames");

    /* version 2: status frames */
    sv.version = 2;
    TEST_EQ(gnttab(GNTTABOP_set_version, &sv, 1), 0, "set_version 2");
    TEST_EQ(sv.version, 2, "version 2");
    u64 sgfn[1] = { 7 };
    struct gnttab_get_status_frames gs = { .nr_frames = 1, .dom = DOMID_SELF };
    set_xen_guest_handle(gs.frame_list, sgfn);
    TEST_EQ(map_frame(XENMAPIDX_grant_table_status | 0, HOLE_GFN + 2), 0, "status frame 0 into the hole");
    TEST_EQ(gnttab(GNTTABOP_get_status_frames, &gs, 1), 0, "get_status_frames");
    TEST_ASSERT(gs.status == GNTST_okay && sgfn[0] == HOLE_GFN + 2, "status frame 0 is there");
    sv.version = 1;
    gnttab(GNTTABOP_set_version, &sv, 1);
    gnttab(GNTTABOP_get_status_frames, &gs, 1);
    TEST_EQ(gs.status, GNTST_general_error, "version 1 has no status frames");

    TEST_EQ(gnttab(99, 0, 1), -ENOSYS, "unknown sub-op: -ENOSYS");
}

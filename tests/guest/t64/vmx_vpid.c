/* Translations across VM entries and exits (SDM 29.4.3): without VPID every entry and
 * exit invalidates, so an L2 sees a remapped page at once; with VPID the L2's
 * translations may survive, and INVVPID (single context, individual address) or a
 * different VPID makes the new mapping visible; L1's own translations are right after
 * every exit.
 * guest: cpu=max name=vmx-vpid */
#include "vmx.h"

static u8 page_a[4096] __attribute__((aligned(4096)));
static u8 page_b[4096] __attribute__((aligned(4096)));
#define VA 0x40000000000ull

VMX_L2_CODE(l2_read, "mov (%rbx), %rax");

static struct page_table pt;
static u64 *leaf;

static void map(u8 *page)
{
    *leaf = (*leaf & 0xfff) | (u64)(ulong)page;
}

static u64 run(u32 proc2, u16 vpid)
{
    vmx_setup_l2(l2_read, 0, proc2);
    if (proc2 & PROC2_VPID)
        vmwrite(F_VPID, vpid);
    vmwrite(F_GUEST_CR3, pt.root);
    vmx_gregs[3] = VA;
    long r = vmx_run();
    TEST_EQ(r, R_VMCALL, "L2 read its page");
    return vmx_gregs[0];
}

void test_main(void)
{
    TEST_ASSERT(vmx_on(), "VMXON");
    *(u64 *)page_a = 0xaaaa;
    *(u64 *)page_b = 0xbbbb;
    pt_init(&pt, rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL);
    pt_map_identity(&pt, PTE_W);
    pt_map(&pt, VA, (u64)(ulong)page_a, 4096, 4096, PTE_W);
    int lvl;
    leaf = pt_leaf(&pt, VA, &lvl);

    TEST_EQ(run(0, 0), 0xaaaa, "no VPID: page A");
    map(page_b);
    TEST_EQ(run(0, 0), 0xbbbb, "no VPID: remapped, the next entry sees page B");

    map(page_a);
    TEST_EQ(run(PROC2_VPID, 1), 0xaaaa, "VPID 1: page A");
    map(page_b);
    TEST_EQ(invvpid(1, 1, 0), 0, "INVVPID single context");
    TEST_EQ(run(PROC2_VPID, 1), 0xbbbb, "after INVVPID, page B");
    map(page_a);
    TEST_EQ(invvpid(0, 1, VA), 0, "INVVPID individual address");
    TEST_EQ(run(PROC2_VPID, 1), 0xaaaa, "after INVVPID of the address, page A");
    map(page_b);
    TEST_EQ(run(PROC2_VPID, 2), 0xbbbb, "another VPID: page B");

    /* L1's own view after exits: it reads both pages through its own map */
    TEST_EQ(*(volatile u64 *)page_a, 0xaaaa, "L1 reads page A");
    *(volatile u64 *)page_a = 0xcccc;
    map(page_a);
    TEST_EQ(invvpid(2, 0, 0), 0, "INVVPID all contexts");
    TEST_EQ(run(PROC2_VPID, 1), 0xcccc, "L2 sees L1's write");
    vmxoff();
}

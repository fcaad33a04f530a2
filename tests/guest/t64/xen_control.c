/* -xen: the toolstack's and dom0's hypercalls that Xen 4.17's HVM table still takes from a
 * domU, refused as Xen refuses them, check by check, in the ABI of the build (this file is
 * also built 32-bit by t32/xen_control32.c):
 *  - platform_op, sysctl: the structure is read whole (-EFAULT), its interface version
 *    checked (-EACCES), then the policy says -EPERM;
 *  - domctl (and paging_domctl_cont): the same, with the domain looked up before the
 *    policy: -ESRCH for one that does not exist (DOMID_SELF is no domain id here), except
 *    for the commands that name none (createdomain);
 *  - dm_op: more than two buffers -E2BIG, unreadable descriptors -EFAULT, then the target
 *    domain: unknown -ESRCH, the guest itself -EPERM, dom0 (not an HVM domain) -EINVAL;
 *  - hypfs_op -EPERM whatever its arguments; xenpmu_op -EOPNOTSUPP for a guest with a
 *    local APIC; mmuext_op: the page owner first (DOMID_SELF: not a PV domain, -EINVAL; its
 *    own id or an unknown one -ESRCH; dom0, DOMID_IO, DOMID_XEN -EPERM);
 *  - calls of no HVM guest (xsm_op with the dummy policy, kexec_op, argo_op, a PV-only call
 *    such as mmu_update): -ENOSYS.
 * QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes name=xen_control */
/* guest: xen=domid=5 cpu=max,vendor=AuthenticAMD name=xen_control-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#define __XEN_TOOLS__ 1
#include <xen/xen.h>
#include <xen/domctl.h>
#include <xen/sysctl.h>
#include <xen/platform.h>
#include <xen/hvm/dm_op.h>
#include <xen/arch-x86/cpuid.h>

#define EPERM 1
#define ESRCH 3
#define E2BIG 7
#define EACCES 13
#define EFAULT 14
#define EINVAL 22
#define ENOSYS 38
#define EOPNOTSUPP 95

#ifdef __x86_64__
#define BAD 0xffff800000000000ul /* canonical, not mapped */
#else
#define BAD 0x40000000ul /* beyond RAM, no paging */
#endif
#define PAGING_DOMCTL_CONT 49 /* __HYPERVISOR_arch_1 on x86 */

static bool amd;
static u16 my_domid;

static long hc(unsigned long nr, unsigned long a1, unsigned long a2, unsigned long a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static long hc5(unsigned long nr, unsigned long a1, unsigned long a2, unsigned long a3,
                unsigned long a4, unsigned long a5)
{
    return xen_hypercall5(amd, nr, a1, a2, a3, a4, a5);
}

static void test_platform_sysctl(void)
{
    static struct xen_platform_op pf;
    pf.cmd = XENPF_settime64;
    pf.interface_version = XENPF_INTERFACE_VERSION;
    TEST_EQ(hc(__HYPERVISOR_platform_op, (ulong)&pf, 0, 0), -EPERM, "platform_op settime64: -EPERM");
    pf.cmd = XENPF_get_cpuinfo;
    TEST_EQ(hc(__HYPERVISOR_platform_op, (ulong)&pf, 0, 0), -EPERM, "platform_op get_cpuinfo: -EPERM");
    pf.interface_version = XENPF_INTERFACE_VERSION + 1;
    TEST_EQ(hc(__HYPERVISOR_platform_op, (ulong)&pf, 0, 0), -EACCES,
            "platform_op with another interface version: -EACCES");
    TEST_EQ(hc(__HYPERVISOR_platform_op, BAD, 0, 0), -EFAULT, "platform_op unreadable: -EFAULT");

    static struct xen_sysctl sc;
    sc.cmd = XEN_SYSCTL_physinfo;
    sc.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
    TEST_EQ(hc(__HYPERVISOR_sysctl, (ulong)&sc, 0, 0), -EPERM, "sysctl physinfo: -EPERM");
    sc.interface_version = 0x14;
    TEST_EQ(hc(__HYPERVISOR_sysctl, (ulong)&sc, 0, 0), -EACCES, "sysctl of interface 0x14: -EACCES");
    TEST_EQ(hc(__HYPERVISOR_sysctl, BAD, 0, 0), -EFAULT, "sysctl unreadable: -EFAULT");
}

static long domctl(unsigned long nr, u32 cmd, u32 version, u16 domain)
{
    static struct xen_domctl dc;
    dc.cmd = cmd;
    dc.interface_version = version;
    dc.domain = domain;
    return hc(nr, (ulong)&dc, 0, 0);
}

static void test_domctl(void)
{
    const u32 v = XEN_DOMCTL_INTERFACE_VERSION;
    TEST_EQ(domctl(__HYPERVISOR_domctl, XEN_DOMCTL_getdomaininfo, v, my_domid), -EPERM,
            "domctl getdomaininfo of itself: -EPERM");
    TEST_EQ(domctl(__HYPERVISOR_domctl, XEN_DOMCTL_getdomaininfo, v, 0), -EPERM,
            "domctl getdomaininfo of dom0: -EPERM");
    TEST_EQ(domctl(__HYPERVISOR_domctl, XEN_DOMCTL_pausedomain, v, 0x3210), -ESRCH,
            "domctl of a domain that does not exist: -ESRCH");
    TEST_EQ(domctl(__HYPERVISOR_domctl, XEN_DOMCTL_getdomaininfo, v, DOMID_SELF), -ESRCH,
            "domctl of DOMID_SELF, no domain id: -ESRCH");
    TEST_EQ(domctl(__HYPERVISOR_domctl, XEN_DOMCTL_createdomain, v, 0x3210), -EPERM,
            "domctl createdomain names no domain: -EPERM");
    TEST_EQ(domctl(__HYPERVISOR_domctl, XEN_DOMCTL_test_assign_device, v, DOMID_INVALID), -EPERM,
            "domctl test_assign_device for no domain: -EPERM");
    TEST_EQ(domctl(__HYPERVISOR_domctl, XEN_DOMCTL_test_assign_device, v, 0x3210), -ESRCH,
            "domctl test_assign_device for an unknown domain: -ESRCH");
    TEST_EQ(domctl(__HYPERVISOR_domctl, XEN_DOMCTL_pausedomain, v - 1, 0x3210), -EACCES,
            "domctl of an older interface: -EACCES before the lookup");
    TEST_EQ(hc(__HYPERVISOR_domctl, BAD, 0, 0), -EFAULT, "domctl unreadable: -EFAULT");
    TEST_EQ(domctl(PAGING_DOMCTL_CONT, XEN_DOMCTL_shadow_op, v, my_domid), -EPERM,
            "paging_domctl_cont of itself: -EPERM");
    TEST_EQ(domctl(PAGING_DOMCTL_CONT, XEN_DOMCTL_createdomain, v, 0x3210), -ESRCH,
            "paging_domctl_cont always looks the domain up: -ESRCH");
    TEST_EQ(domctl(PAGING_DOMCTL_CONT, XEN_DOMCTL_shadow_op, 0, 0), -EACCES,
            "paging_domctl_cont of interface 0: -EACCES");
}

static void test_dm_op(void)
{
    static xen_dm_op_buf_t bufs[3];
    static u8 op[64];
    set_xen_guest_handle(bufs[0].h, op);
    bufs[0].size = sizeof(op);
    TEST_EQ(hc(__HYPERVISOR_dm_op, my_domid, 1, (ulong)bufs), -EPERM,
            "dm_op on the guest itself: -EPERM");
    TEST_EQ(hc(__HYPERVISOR_dm_op, 0, 1, (ulong)bufs), -EINVAL, "dm_op on dom0, not HVM: -EINVAL");
    TEST_EQ(hc(__HYPERVISOR_dm_op, 0x3210, 2, (ulong)bufs), -ESRCH,
            "dm_op on an unknown domain: -ESRCH");
    TEST_EQ(hc(__HYPERVISOR_dm_op, DOMID_SELF, 0, 0), -ESRCH,
            "dm_op on DOMID_SELF (no domain id), no buffers: -ESRCH");
    TEST_EQ(hc(__HYPERVISOR_dm_op, my_domid, 3, (ulong)bufs), -E2BIG, "dm_op with 3 buffers: -E2BIG");
    TEST_EQ(hc(__HYPERVISOR_dm_op, 0x3210, 3, BAD), -E2BIG, "-E2BIG before anything is read");
    TEST_EQ(hc(__HYPERVISOR_dm_op, 0x3210, 1, BAD), -EFAULT,
            "dm_op with unreadable descriptors: -EFAULT before the lookup");
    TEST_EQ(hc(__HYPERVISOR_dm_op, 0x3210, 0, BAD), -ESRCH,
            "no buffers: the descriptor pointer is not read");
}

static void test_others(void)
{
    TEST_EQ(hc5(__HYPERVISOR_hypfs_op, 0 /* XEN_HYPFS_OP_get_version */, 0, 0, 0, 0), -EPERM,
            "hypfs_op get_version: -EPERM");
    TEST_EQ(hc5(__HYPERVISOR_hypfs_op, 99, BAD, 1, BAD, 1), -EPERM, "hypfs_op of anything: -EPERM");
    TEST_EQ(hc(__HYPERVISOR_xenpmu_op, 0 /* XENPMU_mode_get */, BAD, 0), -EOPNOTSUPP,
            "xenpmu_op with a local APIC: -EOPNOTSUPP");

    static u8 ops[64];
    TEST_EQ(hc5(__HYPERVISOR_mmuext_op, (ulong)ops, 1, 0, DOMID_SELF, 0), -EINVAL,
            "mmuext_op on itself: not a PV domain, -EINVAL");
    TEST_EQ(hc5(__HYPERVISOR_mmuext_op, BAD, 1, BAD, DOMID_SELF, 0), -EINVAL,
            "mmuext_op: the owner is checked before the ops are read");
    TEST_EQ(hc5(__HYPERVISOR_mmuext_op, (ulong)ops, 1, 0, my_domid, 0), -ESRCH,
            "mmuext_op naming its own id: -ESRCH");
    TEST_EQ(hc5(__HYPERVISOR_mmuext_op, (ulong)ops, 1, 0, 0, 0), -EPERM, "mmuext_op on dom0: -EPERM");
    TEST_EQ(hc5(__HYPERVISOR_mmuext_op, (ulong)ops, 1, 0, DOMID_IO, 0), -EPERM,
            "mmuext_op on DOMID_IO: -EPERM");
    TEST_EQ(hc5(__HYPERVISOR_mmuext_op, (ulong)ops, 1, 0, 0x3210, 0), -ESRCH,
            "mmuext_op on an unknown domain: -ESRCH");

    TEST_EQ(hc(__HYPERVISOR_xsm_op, BAD, 0, 0), -ENOSYS, "xsm_op, dummy policy: -ENOSYS");
    TEST_EQ(hc(__HYPERVISOR_kexec_op, 0, BAD, 0), -ENOSYS, "kexec_op: -ENOSYS");
    TEST_EQ(hc(__HYPERVISOR_argo_op, 0, 0, 0), -ENOSYS, "argo_op (not built): -ENOSYS");
    TEST_EQ(hc(__HYPERVISOR_mmu_update, 0, 0, 0), -ENOSYS, "mmu_update (PV only): -ENOSYS");
}

#ifdef __x86_64__
/* The tools structures are read whole: one that runs into an unmapped page is -EFAULT
 * even though its first words are readable. */
#define EDGE_VA 0x200000000ull
static void test_partial_structures(void)
{
    struct page_table pt = { .format = PT_4LEVEL, .root = read_cr3() & ~0xfffull };
    u8 *page = page_alloc();
    pt_map(&pt, EDGE_VA, (u64)page, 4096, 4096, PTE_W);
    write_cr3(read_cr3());
    struct xen_domctl *dc = (void *)(page + 4096 - 16);
    dc->cmd = XEN_DOMCTL_getdomaininfo;
    dc->interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    dc->domain = my_domid;
    TEST_EQ(hc(__HYPERVISOR_domctl, EDGE_VA + 4096 - 16, 0, 0), -EFAULT,
            "domctl running into an unmapped page: -EFAULT");
    struct xen_platform_op *pf = (void *)(page + 4096 - 8);
    pf->cmd = XENPF_settime64;
    pf->interface_version = 0;
    TEST_EQ(hc(__HYPERVISOR_platform_op, EDGE_VA + 4096 - 8, 0, 0), -EFAULT,
            "platform_op running into an unmapped page: -EFAULT, not -EACCES");
    dc = (void *)(page + 4096 - sizeof(*dc));
    dc->cmd = XEN_DOMCTL_getdomaininfo;
    dc->interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    dc->domain = my_domid;
    TEST_EQ(hc(__HYPERVISOR_domctl, EDGE_VA + 4096 - sizeof(*dc), 0, 0), -EPERM,
            "the same domctl ending at the page's end: -EPERM");
}
#endif

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    struct cpuid_regs r = cpuid(0x40000004);
    TEST_ASSERT(r.a & XEN_HVM_CPUID_DOMID_PRESENT, "the HVM leaf has the domain id");
    my_domid = (u16)r.c;
    test_platform_sysctl();
    test_domctl();
    test_dm_op();
    test_others();
#ifdef __x86_64__
    test_partial_structures();
#endif
    TEST_EQ(hc(__HYPERVISOR_xen_version, 0, 0, 0), (4l << 16) | 17, "the hypervisor still answers");
}

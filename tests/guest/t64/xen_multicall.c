/* -xen: multicall, vm_assist and vcpu_op is_up as Xen answers an HVM domU, in the ABI of
 * the build (this file is also built 32-bit by t32/xen_multicall32.c: struct
 * multicall_entry then has 32-bit fields, Xen's compat layout). A multicall runs each
 * entry as the hypercall it names and writes its result back: a nested multicall is
 * -EINVAL, an unknown op -ENOSYS, a bad pointer inside an entry that entry's -EFAULT; an
 * unreadable list is -EFAULT for the multicall itself; nr_calls 0 does nothing; a batch
 * of 1000 runs whole (through nestor's continuations).
 * vm_assist: only runstate_update_flag is valid for HVM (others -EINVAL, checked before
 * the command), enable/disable 0, another command -ENOSYS. is_up is not among the vcpu_op
 * sub-ops Xen's hvm_vcpu_op() passes on: -ENOSYS, before the vCPU is looked at.
 * QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes smp=2 name=xen_multicall */
/* guest: xen=yes smp=2 cpu=max,vendor=AuthenticAMD name=xen_multicall-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/version.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/arch-x86/cpuid.h>

#define EFAULT 14
#define EINVAL 22
#define ENOENT 2
#define ENOSYS 38

#ifdef __x86_64__
#define BAD 0xffff800000000000ul /* canonical, not mapped */
#else
#define BAD 0x40000000ul /* beyond RAM, no paging */
#endif

static bool amd;

static long hc(unsigned long nr, unsigned long a1, unsigned long a2, unsigned long a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static struct multicall_entry entry(unsigned long op, unsigned long a0, unsigned long a1)
{
    return (struct multicall_entry){ .op = op, .result = 0x5a5a5a5a, .args = { a0, a1 } };
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;

    /* vm_assist */
    TEST_EQ(hc(__HYPERVISOR_vm_assist, VMASST_CMD_enable, VMASST_TYPE_runstate_update_flag, 0), 0,
            "vm_assist enable runstate_update_flag");
    TEST_EQ(hc(__HYPERVISOR_vm_assist, VMASST_CMD_disable, VMASST_TYPE_runstate_update_flag, 0), 0,
            "vm_assist disable runstate_update_flag");
    TEST_EQ(hc(__HYPERVISOR_vm_assist, 7, VMASST_TYPE_runstate_update_flag, 0), -ENOSYS,
            "vm_assist command 7: -ENOSYS");
    TEST_EQ(hc(__HYPERVISOR_vm_assist, 7, VMASST_TYPE_writable_pagetables, 0), -EINVAL,
            "vm_assist a PV type (the type is checked first): -EINVAL");
    TEST_EQ(hc(__HYPERVISOR_vm_assist, VMASST_CMD_enable, VMASST_TYPE_4gb_segments, 0), -EINVAL,
            "vm_assist 4gb_segments: -EINVAL");
    TEST_EQ(hc(__HYPERVISOR_vm_assist, VMASST_CMD_enable, 64, 0), -EINVAL, "vm_assist type 64: -EINVAL");

    /* is_up */
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 0, 0), -ENOSYS, "is_up vCPU 0: not for HVM, -ENOSYS");
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 2, 0), -ENOSYS, "is_up vCPU 2: the sub-op first, -ENOSYS");

    /* multicall */
    static struct multicall_entry inner[1], calls[7];
    inner[0] = entry(__HYPERVISOR_xen_version, XENVER_version, 0);
    calls[0] = entry(__HYPERVISOR_xen_version, XENVER_version, 0);
    calls[1] = entry(__HYPERVISOR_vm_assist, VMASST_CMD_enable, VMASST_TYPE_runstate_update_flag);
    calls[2] = entry(__HYPERVISOR_vm_assist, VMASST_CMD_enable, VMASST_TYPE_4gb_segments);
    calls[3] = entry(99, 0, 0);
    calls[4] = entry(__HYPERVISOR_multicall, (unsigned long)inner, 1);
    calls[5] = entry(__HYPERVISOR_sched_op, SCHEDOP_watchdog, BAD);
    calls[6] = entry(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 0);
    TEST_EQ(hc(__HYPERVISOR_multicall, (unsigned long)calls, 7, 0), 0, "multicall of 7");
    TEST_EQ(calls[0].result, (4ul << 16) | 17, "entry 0: xen_version 4.17");
    TEST_EQ(calls[1].result, 0, "entry 1: vm_assist enable");
    TEST_EQ(calls[2].result, (unsigned long)-EINVAL, "entry 2: vm_assist bad type -EINVAL");
    TEST_EQ(calls[3].result, (unsigned long)-ENOSYS, "entry 3: op 99 -ENOSYS");
    TEST_EQ(calls[4].result, (unsigned long)-EINVAL, "entry 4: nested multicall -EINVAL");
    TEST_EQ(inner[0].result, 0x5a5a5a5a, "the nested list is not run");
    TEST_EQ(calls[5].result, (unsigned long)-EFAULT, "entry 5: bad pointer -EFAULT");
    TEST_EQ(calls[6].result, (unsigned long)-ENOSYS, "entry 6: is_up, -ENOSYS for HVM");
    TEST_EQ(calls[0].op, __HYPERVISOR_xen_version, "op left as it was");

    calls[0] = entry(__HYPERVISOR_xen_version, XENVER_version, 0);
    TEST_EQ(hc(__HYPERVISOR_multicall, (unsigned long)calls, 0, 0), 0, "multicall of 0");
    TEST_EQ(calls[0].result, 0x5a5a5a5a, "nr_calls 0: nothing run");
    TEST_EQ(hc(__HYPERVISOR_multicall, BAD, 1, 0), -EFAULT, "multicall of an unreadable list");
    /* a second multicall works: the first one's nesting mark is gone */
    TEST_EQ(hc(__HYPERVISOR_multicall, (unsigned long)inner, 1, 0), 0, "a multicall after");
    TEST_EQ(inner[0].result, (4ul << 16) | 17, "its entry ran");

    /* a long batch (nestor continues it in rounds, as Xen preempts): every entry runs
     * once, the last result is written, the multicall returns 0 */
    static struct multicall_entry many[1000];
    for (int i = 0; i < 1000; i++)
        many[i] = entry(__HYPERVISOR_vm_assist, i == 999 ? 7 : VMASST_CMD_enable,
                        i == 999 ? 1 : VMASST_TYPE_runstate_update_flag);
    TEST_EQ(hc(__HYPERVISOR_multicall, (unsigned long)many, 1000, 0), 0, "multicall of 1000");
    int done = 0;
    for (int i = 0; i < 999; i++)
        done += many[i].result == 0;
    TEST_EQ(done, 999, "1000 entries: the first 999 ran");
    TEST_EQ(many[999].result, (unsigned long)-EINVAL, "1000 entries: the last ran");
}

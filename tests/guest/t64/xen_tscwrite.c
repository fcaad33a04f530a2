/* -xen: a guest that sets its TSC (WRMSR IA32_TSC, IA32_TSC_ADJUST) finds its pvclock
 * re-based before it reads the TSC again, as Xen re-computes vcpu_time_info when a guest
 * writes its TSC: the pvclock's system time goes on from where it was, it does not jump
 * by the amount the TSC moved. This is what makes the pvclock "safe" for an HVM guest
 * (XENFEAT_hvm_safe_pvclock, which Linux requires before it uses the Xen clocksource).
 * QEMU TCG has no Xen interface: the test skips there.
 * Runs with -icount: guest time then follows instructions alone, so a host that
 * preempts nestor between two reads cannot make a step look like a jump.
 * guest: xen=yes icount=yes name=xen_tscwrite */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/version.h>
#include <xen/features.h>
#include <xen/memory.h>
#include <xen/arch-x86/cpuid.h>

#include "xen_pvclock.h"

#define MSR_TSC 0x10
#define MSR_TSC_ADJUST 0x3b

static bool amd;

static long hc(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static u64 pvclock_read(volatile struct vcpu_time_info *t)
{
    u64 tsc;
    return pvclock_read_tsc(t, &tsc);
}

/* The pvclock across a TSC change made by write(): the system time read right after it
 * must follow the one read right before (a few microseconds of guest time at most),
 * whether the TSC moved forward or back by about a second. */
static void check_across(volatile struct vcpu_time_info *t, const char *what, void (*write)(s64),
                         s64 delta)
{
    u64 before = pvclock_read(t);
    write(delta);
    u64 after = pvclock_read(t);
    s64 step = (s64)(after - before);
    TEST_ASSERT(step >= 0 && step < 100000, "%s by %lld ticks: pvclock went on by %lld ns",
                what, (long long)delta, (long long)step);
}

static void write_tsc(s64 delta) { wrmsr(MSR_TSC, rdtsc() + (u64)delta); }
static void write_tsc_adjust(s64 delta) { wrmsr(MSR_TSC_ADJUST, rdmsr(MSR_TSC_ADJUST) + (u64)delta); }

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    xen_feature_info_t fi = { .submap_idx = 0 };
    TEST_EQ(hc(__HYPERVISOR_xen_version, XENVER_get_features, (u64)&fi, 0), 0, "get_features");
    TEST_ASSERT(fi.submap & BIT(XENFEAT_hvm_safe_pvclock), "XENFEAT_hvm_safe_pvclock advertised");

    struct shared_info *shinfo = page_alloc();
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)shinfo >> 12 };
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0), 0, "shared_info placed");
    volatile struct vcpu_time_info *t = &shinfo->vcpu_info[0].time;
    TEST_ASSERT(t->version >= 2 && !(t->version & 1), "pvclock written (version %u)", t->version);

    bool adjust = cpu_has(7, 0, 1 /* ebx */, 1);
    for (int i = 0; i < 3; i++) {
        check_across(t, "WRMSR TSC forward", write_tsc, 2000000000ll);
        check_across(t, "WRMSR TSC back", write_tsc, -1000000000ll);
        if (adjust) {
            check_across(t, "WRMSR TSC_ADJUST forward", write_tsc_adjust, 3000000000ll);
            check_across(t, "WRMSR TSC_ADJUST back", write_tsc_adjust, -500000000ll);
        }
    }
    /* and afterwards it still gives the time the TSC gives: over a few milliseconds (and
     * the re-basings at each return to the guest) pvclock time and TSC time advance
     * alike, to the rounding of the scale */
    u32 khz = cpuid(XEN_CPUID_FIRST_LEAF + 3).c;
    s64 worst = 0;
    for (int k = 0; k < 8; k++) {
        u64 tsc0, tsc1;
        u64 ns0 = pvclock_read_tsc(t, &tsc0);
        udelay(500);
        u64 ns1 = pvclock_read_tsc(t, &tsc1);
        s64 d = (s64)(ns1 - ns0) - (s64)((tsc1 - tsc0) * 1000000u / khz);
        if (d < 0)
            d = -d;
        if (d > worst)
            worst = d;
    }
    TEST_ASSERT(worst <= 2, "pvclock advances with the TSC after the writes (worst %lld ns off)",
                (long long)worst);
}

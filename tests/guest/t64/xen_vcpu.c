/* -xen: vcpu_op VCPUOP_register_vcpu_info as Xen's map_vcpu_info() has it for an HVM
 * domU. A vCPU the domain does not have is -ENOENT; a bad pointer -EFAULT; an area that
 * would cross its page, a frame that is not RAM, a second registration, and one for
 * another vCPU that is running are -EINVAL, nothing written. A registered area gets the
 * contents of the vCPU's shared_info slot, with every event marked pending (upcall
 * pending, all selector bits); a vCPU beyond shared_info's 32 slots gets a fresh one with
 * the upcall masked. A vCPU that waits for its SIPI is down: another may register for it.
 * Runs: 3 vCPUs (APs started after the BSP registered for vCPU 1, each registers its own
 * or tries again), and 33 vCPUs (vCPU 32 has no shared_info slot). QEMU TCG has no Xen
 * interface: the test skips there.
 * guest: xen=yes smp=3 name=xen_vcpu */
/* guest: xen=yes smp=33 append=run=many name=xen_vcpu-33 */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/vcpu.h>
#include <xen/arch-x86/cpuid.h>

#include "xen_pvclock.h"

#define EFAULT 14
#define EINVAL 22
#define ENOENT 2
#define ENOSYS 38

static bool amd;

static long hc(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static long reg_info(u32 vcpu, u64 mfn, u32 offset)
{
    struct vcpu_register_vcpu_info info = { .mfn = mfn, .offset = offset };
    return hc(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, vcpu, (u64)&info);
}

static bool all(const u8 *p, size_t n, u8 v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static struct shared_info *shinfo;

/* The vcpu_info registered for vCPU id must be its shared_info slot (marked with cr2 =
 * 0xc0de0000 + id, upcall mask 0), every event pending. */
static void check_copied(const struct vcpu_info *vi, u32 id)
{
    TEST_ASSERT(vi->arch.cr2 == 0xc0de0000u + id && vi->evtchn_upcall_mask == 0,
                "vCPU %u: the shared_info slot's contents moved to the new area", id);
    TEST_ASSERT(vi->evtchn_upcall_pending == 1 && vi->evtchn_pending_sel == ~0ul,
                "vCPU %u: upcall pending, every selector bit set (rescan)", id);
}

/* ---- pvclock ---- */
static u32 tsc_khz;


/* The time area of a vcpu_info: current, scaled for the TSC, monotonic, and the same
 * time the TSC gives (the TSC counts from virtual time 0 at tsc_khz). */
static void check_pvclock(volatile struct vcpu_time_info *t, const char *where)
{
    bool stable = cpuid(0x80000007).d & BIT(8);
    TEST_ASSERT(!(t->version & 1) && t->version >= 2, "%s: version even, updated (%u)", where,
                t->version);
    TEST_ASSERT(t->flags == (stable ? XEN_PVCLOCK_TSC_STABLE_BIT : 0),
                "%s: flags %x: TSC_STABLE as the invariant TSC says", where, t->flags);
    /* Xen's scale for 2 GHz: exactly one half */
    if (tsc_khz == 2000000)
        TEST_ASSERT(t->tsc_to_system_mul == 0x80000000u && t->tsc_shift == 0,
                    "%s: 2 GHz scale: mul 2^31, shift 0", where);
    u64 stamp = t->tsc_timestamp, prev = 0, tsc;
    bool mono = true, close = true;
    s64 worst = 0;
    for (int i = 0; i < 20000; i++) {
        u64 ns = pvclock_read_tsc(t, &tsc);
        u64 want = tsc / tsc_khz * 1000000u + tsc % tsc_khz * 1000000u / tsc_khz;
        s64 d = (s64)(ns - want);
        if (d < 0)
            d = -d;
        if (d > worst)
            worst = d;
        close &= d <= 2;
        mono &= ns >= prev;
        prev = ns;
        if (i % 1000 == 0)
            udelay(500);
    }
    TEST_ASSERT(mono, "%s: pvclock monotonic over 20000 reads", where);
    TEST_ASSERT(close, "%s: pvclock time = TSC time within 2 ns (worst %lld ns)", where,
                (long long)worst);
    TEST_ASSERT(t->tsc_timestamp != stamp, "%s: brought up to date while the guest runs", where);
}

static u8 *area[3];
static volatile long ap_again[3], ap_own[3];
static volatile int ap_done, ap_go;

static void ap_main(int index)
{
    (void)index;
    u32 id = cpuid(XEN_CPUID_FIRST_LEAF + 4).b; /* the HVM leaf's vCPU id */
    while (!__atomic_load_n(&ap_go, __ATOMIC_SEQ_CST))
        asm volatile("pause");
    if (id < 3) {
        /* vCPU 1 was registered while down; vCPU 2 registers its own area */
        ap_again[id] = reg_info(id, (u64)area[1] >> 12, 0x200);
        ap_own[id] = reg_info(id, (u64)area[2] >> 12, 0x40);
    }
    __atomic_fetch_add(&ap_done, 1, __ATOMIC_SEQ_CST);
    for (;;)
        asm volatile("cli; hlt");
}

static void test_three(void)
{
    TEST_EQ(reg_info(3, (u64)area[0] >> 12, 0), -ENOENT, "vCPU 3 of 3: -ENOENT");
    TEST_EQ(reg_info(0xffffffffu, (u64)area[0] >> 12, 0), -ENOENT, "vCPU ~0: -ENOENT");

    /* vCPU 1 is down (waits for its SIPI): the BSP may place its vcpu_info */
    TEST_EQ(reg_info(1, (u64)area[1] >> 12, 0x100), 0, "register for vCPU 1 while it is down");
    check_copied((void *)(area[1] + 0x100), 1);
    TEST_ASSERT(all(area[1], 0x100, 0xaa) && all(area[1] + 0x140, 4096 - 0x140, 0xaa),
                "vCPU 1: 64 bytes written, no more");

    int up = smp_start(ap_main, 2, 2000000);
    TEST_EQ(up, 2, "both APs up");
    TEST_EQ(reg_info(2, (u64)area[2] >> 12, 0), -EINVAL,
            "for vCPU 2, running and not the caller: -EINVAL");
    __atomic_store_n(&ap_go, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&ap_done, __ATOMIC_SEQ_CST) < 2)
        asm volatile("pause");
    TEST_EQ(ap_again[1], -EINVAL, "vCPU 1 registering again: -EINVAL");
    TEST_EQ(ap_own[1], -EINVAL, "vCPU 1 registering elsewhere: -EINVAL");
    TEST_EQ(ap_again[2], 0, "vCPU 2 registers its own vcpu_info");
    TEST_EQ(ap_own[2], -EINVAL, "vCPU 2 a second time: -EINVAL");
    check_copied((void *)(area[1] + 0x200), 2);
    TEST_ASSERT(all(area[1] + 0x140, 0xc0, 0xaa) && all(area[1] + 0x240, 4096 - 0x240, 0xaa),
                "vCPU 2's second area untouched");
    TEST_ASSERT(all(area[2], 4096, 0xaa), "the refused areas untouched");
}

static void test_many(void)
{
    TEST_EQ(reg_info(33, (u64)area[1] >> 12, 0), -ENOENT, "vCPU 33 of 33: -ENOENT");
    TEST_EQ(reg_info(32, (u64)area[1] >> 12, 0x80), 0, "register for vCPU 32 (no shared_info slot)");
    const struct vcpu_info *vi = (void *)(area[1] + 0x80);
    TEST_ASSERT(vi->evtchn_upcall_mask == 1 && vi->evtchn_upcall_pending == 1 &&
                    vi->evtchn_pending_sel == ~0ul && vi->arch.cr2 == 0,
                "vCPU 32: a fresh vcpu_info, upcall masked, every event pending");
    TEST_EQ(reg_info(31, (u64)area[1] >> 12, 0xc0), 0, "register for vCPU 31 (the last slot)");
    check_copied((void *)(area[1] + 0xc0), 31);
}

void test_main(void)
{
    char run[16] = "";
    if (!xen_test_start(&amd))
        return;
    tsc_khz = cpuid(XEN_CPUID_FIRST_LEAF + 3).c; /* the time leaf, subleaf 0 */
    TEST_ASSERT(tsc_khz != 0, "TSC kHz from the time leaf: %u", tsc_khz);
    rt_cmdline_value("run", run, sizeof(run));
    for (int i = 0; i < 3; i++) {
        area[i] = page_alloc();
        memset(area[i], 0xaa, 4096);
    }

    /* shared_info first, its vCPU slots marked */
    u8 *page = page_alloc();
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)page >> 12 };
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0), 0, "shared_info placed");
    shinfo = (void *)page;
    for (u32 i = 0; i < XEN_LEGACY_MAX_VCPUS; i++) {
        shinfo->vcpu_info[i].arch.cr2 = 0xc0de0000u + i;
        shinfo->vcpu_info[i].evtchn_pending_sel = 0x5;
    }

    check_pvclock(&shinfo->vcpu_info[0].time, "shared_info slot of vCPU 0");
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, 99, 0, 0), -ENOSYS, "unknown vcpu_op: -ENOSYS");
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 0, 0x8000000000000000ull), -EFAULT,
            "a non-canonical argument: -EFAULT");
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 0, 0xfee00000ull), -EFAULT,
            "an argument in MMIO: -EFAULT");
    u64 mfn = (u64)area[0] >> 12;
    TEST_EQ(reg_info(0, mfn, 4096 - 64 + 1), -EINVAL, "crossing the page by one byte: -EINVAL");
    TEST_EQ(reg_info(0, mfn, 0xffffffffu), -EINVAL, "offset ~0: -EINVAL");
    TEST_EQ(reg_info(0, 0xfee00, 0), -EINVAL, "the LAPIC frame: -EINVAL");
    TEST_EQ(reg_info(0, ~0ull, 0), -EINVAL, "mfn ~0: -EINVAL");
    TEST_ASSERT(all(area[0], 4096, 0xaa), "refused registrations wrote nothing");

    TEST_EQ(reg_info(0, mfn, 4096 - 64), 0, "vCPU 0: the last 64 bytes of a page");
    check_copied((void *)(area[0] + 4096 - 64), 0);
    struct vcpu_info *vi0 = (void *)(area[0] + 4096 - 64);
    u32 slot_version = shinfo->vcpu_info[0].time.version;
    check_pvclock(&vi0->time, "registered vcpu_info of vCPU 0");
    TEST_EQ(shinfo->vcpu_info[0].time.version, slot_version, "the old slot is no longer updated");
    TEST_ASSERT(all(area[0], 4096 - 64, 0xaa), "vCPU 0: nothing before its area written");
    TEST_EQ(reg_info(0, mfn, 0), -EINVAL, "vCPU 0 a second time: -EINVAL");
    TEST_ASSERT(all(area[0], 4096 - 64, 0xaa), "and nothing written");

    if (!strcmp(run, "many"))
        test_many();
    else
        test_three();
}

/* The local APIC's global enable and modes, and the timer's mode switches:
 *  - LVT timer one-shot -> periodic after the one-shot count reached 0 leaves the count at
 *    0 (no interrupts) until the initial count is written; periodic -> one-shot after a
 *    reload counts the current period down to 0, fires once and stops;
 *  - on an AP (so that the BSP's APIC, which the runtime uses, stays as it is):
 *    in x2APIC mode the xAPIC page is not the APIC's (reads all-ones, writes go nowhere),
 *    while the BSP's page still is its APIC: the page is per CPU;
 *    with IA32_APIC_BASE[11] clear, CPUID.1:EDX.APIC (and AMD's 80000001h copy) reads 0 on
 *    that CPU only, the page is unclaimed, the x2APIC MSRs #GP, fixed and NMI IPIs (also
 *    by shorthand) do not reach it, and the illegal transitions #GP (SDM 10.12.5);
 *    re-enabling brings the APIC back in its power-up state (LVTs masked, SVR 0xff);
 *    x2APIC -> xAPIC directly #GPs.
 * QEMU TCG recomputes the timer count from the last initial-count write on a mode switch,
 * and a QEMU APIC once globally disabled cannot be enabled again: those checks are
 * skipped there.
 * guest: smp=2 name=apic */
/* guest: smp=2 cpu=max,vendor=AuthenticAMD name=apic-amd */
#include "rt.h"

#define TIMER_VECTOR 0x60
#define AP_VECTOR 0x52

#define BASE_EXTD BIT(10)
#define BASE_EN BIT(11)

static volatile int timer_hits, ap_hits, ap_nmis;

static void timer_handler(struct exc_frame *f)
{
    (void)f;
    timer_hits++;
    apic_eoi();
}

/* Runs on the AP only; it is in xAPIC mode whenever it can take this interrupt. */
static void ap_ipi_handler(struct exc_frame *f)
{
    (void)f;
    ap_hits++;
    *(volatile u32 *)(ulong)(APIC_DEFAULT_BASE + APIC_EOI) = 0;
}

static void ap_nmi_handler(struct exc_frame *f)
{
    (void)f;
    ap_nmis++;
}

static bool wait_for(volatile int *counter, int want, u64 us)
{
    u64 end = rdtsc() + us * tsc_per_us();
    while (*counter < want && (s64)(rdtsc() - end) < 0)
        asm volatile("sti; nop; cli");
    return *counter >= want;
}

/* Interrupts on for us microseconds. */
static void open_window(u64 us)
{
    u64 end = rdtsc() + us * tsc_per_us();
    while ((s64)(rdtsc() - end) < 0)
        asm volatile("sti; nop; cli");
}

static void check_timer_modes(void)
{
    if (on_qemu_tcg()) {
        test_skip("timer mode switches: QEMU TCG recomputes the count from the initial count");
        return;
    }
    apic_write(APIC_TDCR, 0xb); /* divide by 1 */
    apic_write(APIC_LVTT, TIMER_VECTOR);
    timer_hits = 0;
    apic_write(APIC_TMICT, 1000);
    TEST_ASSERT(wait_for(&timer_hits, 1, 2000000), "one-shot: fired");
    TEST_EQ(apic_read(APIC_TMCCT), 0, "one-shot: count 0 after expiry");
    apic_write(APIC_LVTT, TIMER_VECTOR | APIC_TIMER_PERIODIC);
    TEST_EQ(apic_read(APIC_TMCCT), 0, "one-shot at 0 -> periodic: the count stays 0");
    open_window(2000);
    TEST_EQ(timer_hits, 1, "one-shot at 0 -> periodic: no interrupt");
    TEST_EQ(apic_read(APIC_TMCCT), 0, "one-shot at 0 -> periodic: still 0 later");
    TEST_EQ(apic_read(APIC_TMICT), 1000, "the initial count is kept");
    apic_write(APIC_TMICT, 1000);
    bool restarted = wait_for(&timer_hits, 4, 2000000);
    TEST_ASSERT(restarted, "writing the initial count starts it (%d)", timer_hits);
    TEST_ASSERT(apic_read(APIC_TMCCT) != 0, "periodic: counting");

    /* periodic -> one-shot after reloads: the current period runs out, once */
    apic_write(APIC_TMICT, 25000);
    timer_hits = 0;
    TEST_ASSERT(wait_for(&timer_hits, 2, 2000000), "periodic: reloaded");
    apic_write(APIC_LVTT, TIMER_VECTOR);
    asm volatile("sti; nop; cli"); /* one that was due at the switch */
    int before = timer_hits;
    u32 cur = apic_read(APIC_TMCCT);
    TEST_ASSERT(cur > 0 && cur <= 25000, "periodic -> one-shot: counts the current period (%u)",
                cur);
    TEST_ASSERT(wait_for(&timer_hits, before + 1, 2000000), "periodic -> one-shot: fires at 0");
    open_window(3000);
    TEST_EQ(timer_hits, before + 1, "periodic -> one-shot: fires once");
    TEST_EQ(apic_read(APIC_TMCCT), 0, "periodic -> one-shot: stops at 0");
    apic_write(APIC_LVTT, APIC_LVT_MASKED);
    apic_write(APIC_TMICT, 0);
}

/* ---- the AP's part: it records, the BSP checks ---- */
static volatile int step; /* BSP and AP take turns: the AP moves it to odd values */
static volatile u32 ap_id;
static struct {
    bool x2;                      /* x2APIC mode was entered */
    u32 x2_mmio_lvr, x2_msr_tpr;  /* after an MMIO write of 0x20 to the TPR */
    u32 cpuid_on, cpuid_off, cpuid_ext_on, cpuid_ext_off, cpuid_back;
    u32 off_mmio_lvr, off_mmio_svr;
    int off_x2_msr, off_to_x2, off_extd_only;
    u32 re_svr, re_lvt[4], re_tpr, re_tmict, re_id, re_ver;
    int x2_to_xapic;
    u64 base_after;
} ap;

static u32 mmio(u32 reg) { return *(volatile u32 *)(ulong)(APIC_DEFAULT_BASE + reg); }
static void mmio_w(u32 reg, u32 v) { *(volatile u32 *)(ulong)(APIC_DEFAULT_BASE + reg) = v; }
static u32 apic_flag(u32 leaf) { return (cpuid(leaf).d >> 9) & 1; }

static void wait_step(int s)
{
    while (step != s)
        asm volatile("sti; pause; cli");
}

static void ap_main(int index)
{
    (void)index;
    u64 base = rdmsr(MSR_APIC_BASE) & ~(BASE_EN | BASE_EXTD);
    ap_id = mmio(APIC_ID) >> 24;
    ap.cpuid_on = apic_flag(1);
    ap.cpuid_ext_on = apic_flag(0x80000001);

    /* x2APIC mode: the page is no longer the APIC's */
    if (HAS_X2APIC()) {
        wrmsr(MSR_APIC_BASE, base | BASE_EN | BASE_EXTD);
        ap.x2 = true;
        ap.x2_mmio_lvr = mmio(APIC_LVR);
        mmio_w(APIC_TPR, 0x20);
        ap.x2_msr_tpr = (u32)rdmsr(0x808);
    }
    step = 1;
    wait_step(2);

    /* globally disabled */
    wrmsr(MSR_APIC_BASE, base);
    ap.cpuid_off = apic_flag(1);
    ap.cpuid_ext_off = apic_flag(0x80000001);
    ap.off_mmio_lvr = mmio(APIC_LVR);
    mmio_w(APIC_SVR, 0x1ff);
    ap.off_mmio_svr = mmio(APIC_SVR);
    u64 v;
    ap.off_x2_msr = rdmsr_safe(0x803, &v);
    ap.off_to_x2 = wrmsr_safe(MSR_APIC_BASE, base | BASE_EN | BASE_EXTD);
    ap.off_extd_only = wrmsr_safe(MSR_APIC_BASE, base | BASE_EXTD);
    step = 3;
    wait_step(4); /* meanwhile the BSP sends IPIs and NMIs that must not arrive */

    if (on_qemu_tcg()) { /* its APIC stays disabled: nothing more to do here */
        step = 5;
        wait_step(6);
        step = 7;
        return;
    }
    /* enabled again: the power-up state */
    wrmsr(MSR_APIC_BASE, base | BASE_EN);
    ap.cpuid_back = apic_flag(1);
    ap.re_svr = mmio(APIC_SVR);
    ap.re_lvt[0] = mmio(APIC_LVTT);
    ap.re_lvt[1] = mmio(APIC_LVT0);
    ap.re_lvt[2] = mmio(APIC_LVT1);
    ap.re_lvt[3] = mmio(APIC_LVTERR);
    ap.re_tpr = mmio(APIC_TPR);
    ap.re_tmict = mmio(APIC_TMICT);
    ap.re_id = mmio(APIC_ID) >> 24;
    ap.re_ver = mmio(APIC_LVR);
    if (ap.x2) {
        wrmsr(MSR_APIC_BASE, base | BASE_EN | BASE_EXTD);
        ap.x2_to_xapic = wrmsr_safe(MSR_APIC_BASE, base | BASE_EN);
        wrmsr(MSR_APIC_BASE, base); /* the legal way back: through disabled */
        wrmsr(MSR_APIC_BASE, base | BASE_EN);
    }
    ap.base_after = rdmsr(MSR_APIC_BASE);
    mmio_w(APIC_SVR, 0x1ff);
    step = 5;
    wait_step(6); /* the BSP sent an IPI before moving to 6 */
    asm volatile("sti; nop; cli");
    step = 7;
}

static void check_ap(void)
{
    bool amd = cpuid(0).b == 0x68747541; /* "Auth" */
    exc_set_handler(AP_VECTOR, ap_ipi_handler);
    exc_set_handler(NMI_VECTOR, ap_nmi_handler);
    /* no IST: the AP has no TSS stacks of its own */
    idt_set_gate(NMI_VECTOR, SEL_KCODE, (ulong)idt_stub_table[NMI_VECTOR], 0xe, 0, 0);
    if (smp_start(ap_main, 1, 2000000) != 1) {
        TEST_ASSERT(false, "the AP started");
        return;
    }
    while (step != 1)
        pause();
    TEST_EQ(ap.cpuid_on, 1, "CPUID.1:EDX.APIC set with the APIC enabled");
    if (amd)
        TEST_EQ(ap.cpuid_ext_on, 1, "AMD: CPUID.80000001h:EDX.APIC set with the APIC enabled");
    if (!ap.x2) {
        test_skip("x2APIC: not in CPUID");
    } else if (on_qemu_tcg()) {
        test_skip("x2APIC: the xAPIC page in x2APIC mode is not checked on QEMU TCG");
    } else {
        TEST_EQ(ap.x2_mmio_lvr, 0xffffffffu, "x2APIC mode: the xAPIC page reads all-ones");
        TEST_EQ(ap.x2_msr_tpr, 0, "x2APIC mode: a write to the xAPIC page reaches no register");
    }
    TEST_EQ(apic_read(APIC_LVR) & 0xff, 0x14, "meanwhile the BSP's page is its APIC");
    step = 2;
    while (step != 3)
        pause();

    TEST_EQ(ap.cpuid_off, 0, "APIC disabled: CPUID.1:EDX.APIC reads 0");
    if (amd)
        TEST_EQ(ap.cpuid_ext_off, 0, "APIC disabled: CPUID.80000001h:EDX.APIC reads 0 (AMD)");
    TEST_EQ(apic_flag(1), 1, "the BSP's CPUID.1:EDX.APIC is still set");
    TEST_EQ(ap.off_mmio_lvr, 0xffffffffu, "APIC disabled: the xAPIC page reads all-ones");
    TEST_EQ(ap.off_mmio_svr, 0xffffffffu, "APIC disabled: writes to the page go nowhere");
    TEST_EQ(ap.off_x2_msr, GP_VECTOR, "APIC disabled: x2APIC MSRs #GP");
    TEST_EQ(ap.off_to_x2, GP_VECTOR, "disabled -> x2APIC directly #GPs");
    TEST_EQ(ap.off_extd_only, GP_VECTOR, "EXTD without EN #GPs");
    apic_icr(ap_id, AP_VECTOR);
    apic_icr(ap_id, APIC_ICR_NMI);
    apic_icr(0, APIC_DEST_OTHERS | AP_VECTOR);
    apic_icr(0, APIC_DEST_OTHERS | APIC_ICR_NMI);
    udelay(5000);
    TEST_EQ(ap_hits, 0, "APIC disabled: fixed IPIs do not arrive");
    TEST_EQ(ap_nmis, 0, "APIC disabled: NMI IPIs do not arrive");
    step = 4;
    while (step != 5)
        pause();

    if (on_qemu_tcg()) {
        test_skip("re-enabling the APIC: QEMU keeps a disabled APIC disabled");
        step = 6;
        while (step != 7)
            pause();
        return;
    }
    TEST_EQ(ap.cpuid_back, 1, "enabled again: CPUID.1:EDX.APIC set");
    TEST_EQ(ap.re_svr, 0xff, "enabled again: SVR in its power-up state (software-disabled)");
    TEST_EQ(ap.re_lvt[0], APIC_LVT_MASKED, "enabled again: LVT timer masked");
    TEST_EQ(ap.re_lvt[1], APIC_LVT_MASKED, "enabled again: LVT LINT0 masked");
    TEST_EQ(ap.re_lvt[2], APIC_LVT_MASKED, "enabled again: LVT LINT1 masked");
    TEST_EQ(ap.re_lvt[3], APIC_LVT_MASKED, "enabled again: LVT error masked");
    TEST_EQ(ap.re_tpr, 0, "enabled again: TPR 0");
    TEST_EQ(ap.re_tmict, 0, "enabled again: timer stopped");
    TEST_EQ(ap.re_id, ap_id, "enabled again: the APIC ID is the CPU's");
    TEST_EQ(ap.re_ver & 0xff, 0x14, "enabled again: the page is the APIC's");
    if (ap.x2)
        TEST_EQ(ap.x2_to_xapic, GP_VECTOR, "x2APIC -> xAPIC directly #GPs");
    TEST_EQ(ap.base_after & (BASE_EN | BASE_EXTD), BASE_EN, "back in xAPIC mode");
    apic_icr(ap_id, AP_VECTOR);
    step = 6;
    while (step != 7)
        pause();
    TEST_EQ(ap_hits, 1, "enabled again: a fixed IPI arrives");
}

void test_main(void)
{
    apic_enable();
    exc_set_handler(TIMER_VECTOR, timer_handler);
    check_timer_modes();
    check_ap();
}

/* Interrupts through the local APIC: timer one-shot, periodic and TSC-deadline; fixed
 * self-IPIs with IRR/ISR/EOI and TPR masking; the STI interrupt shadow; HLT wake-up;
 * NMI by IPI with NMI blocking until IRET; and the same through x2APIC MSRs. */
#include "rt.h"

#define TIMER_VECTOR 0x60
#define IPI_VECTOR 0x61
#define IPI_VECTOR2 0x71

static volatile int timer_hits, ipi_hits, nmi_hits, nmi_depth, nmi_max_depth;
static volatile ulong ipi_rip;
static volatile u32 isr_in_handler;

static void timer_handler(struct exc_frame *f)
{
    (void)f;
    timer_hits++;
    apic_eoi();
}

static bool apic_bit(u32 base, int vector)
{
    return (apic_read(base + (vector / 32) * 0x10) >> (vector % 32)) & 1;
}

static void ipi_handler(struct exc_frame *f)
{
    ipi_hits++;
    ipi_rip = f->ip;
    isr_in_handler = apic_bit(APIC_ISR, (int)f->vector);
    apic_eoi();
}

static void nmi_handler(struct exc_frame *f)
{
    (void)f;
    nmi_hits++;
    if (++nmi_depth > nmi_max_depth)
        nmi_max_depth = nmi_depth;
    if (nmi_hits == 1) {
        /* a second NMI now must wait for this handler's IRET */
        apic_icr(apic_id(), APIC_ICR_NMI);
        for (int i = 0; i < 100000; i++)
            pause();
    }
    nmi_depth--;
}

static bool wait_for(volatile int *counter, int want, u64 us)
{
    u64 end = rdtsc() + us * tsc_per_us();
    while (*counter < want && (s64)(rdtsc() - end) < 0)
        asm volatile("sti; nop; cli");
    return *counter >= want;
}

static void check_timer(void)
{
    apic_write(APIC_TDCR, 0xb); /* divide by 1 */
    apic_write(APIC_LVTT, TIMER_VECTOR);
    apic_write(APIC_TMICT, 20000000);
    u32 cur = apic_read(APIC_TMCCT);
    TEST_ASSERT(cur > 0 && cur < 20000000, "timer one-shot: current count counting down (%u)", cur);
    TEST_ASSERT(wait_for(&timer_hits, 1, 2000000), "timer one-shot: interrupt delivered");
    udelay(5000);
    asm volatile("sti; nop; cli");
    TEST_EQ(timer_hits, 1, "timer one-shot: fired once");
    TEST_EQ(apic_read(APIC_TMCCT), 0, "timer one-shot: current count 0 after expiry");

    timer_hits = 0;
    apic_write(APIC_LVTT, TIMER_VECTOR | APIC_TIMER_PERIODIC);
    apic_write(APIC_TMICT, 100000);
    TEST_ASSERT(wait_for(&timer_hits, 5, 5000000), "timer periodic: 5 interrupts (%d)", timer_hits);
    TEST_ASSERT(apic_read(APIC_TMCCT) != 0, "timer periodic: reloads the count");
    apic_write(APIC_LVTT, TIMER_VECTOR | APIC_LVT_MASKED | APIC_TIMER_PERIODIC);
    asm volatile("sti; nop; cli"); /* one may have been pending already */
    int before = timer_hits;
    u64 end = rdtsc() + 20000 * tsc_per_us();
    while ((s64)(rdtsc() - end) < 0)
        asm volatile("sti; nop; cli");
    TEST_EQ(timer_hits, before, "timer periodic: masked LVT delivers nothing");
    apic_write(APIC_TMICT, 0);

    if (!HAS_TSC_DEADLINE()) {
        test_skip("TSC-deadline timer: not in CPUID");
        return;
    }
    timer_hits = 0;
    apic_write(APIC_LVTT, TIMER_VECTOR | APIC_TIMER_DEADLINE);
    wrmsr(MSR_TSC_DEADLINE, rdtsc() + 100 * tsc_per_us());
    TEST_ASSERT(wait_for(&timer_hits, 1, 2000000), "TSC-deadline: interrupt delivered");
    TEST_EQ(rdmsr(MSR_TSC_DEADLINE), 0, "TSC-deadline: MSR reads 0 after firing");
    timer_hits = 0;
    wrmsr(MSR_TSC_DEADLINE, rdtsc() + 100 * tsc_per_us());
    wrmsr(MSR_TSC_DEADLINE, 0); /* disarm */
    udelay(2000);
    asm volatile("sti; nop; cli");
    TEST_EQ(timer_hits, 0, "TSC-deadline: writing 0 disarms");
    apic_write(APIC_LVTT, APIC_LVT_MASKED);
}

static void check_ipis(void)
{
    /* IF = 0: the self-IPI stays pending in IRR */
    apic_icr(0, APIC_DEST_SELF | IPI_VECTOR);
    TEST_ASSERT(apic_bit(APIC_IRR, IPI_VECTOR), "self-IPI with IF=0: pending in IRR");
    TEST_EQ(ipi_hits, 0, "self-IPI with IF=0: not delivered");
    /* STI shadow: delivered after the instruction following STI */
    ulong after_nop;
    asm volatile(ASM_LABEL_ADDR("1f", "%0") "sti\n\tnop\n1:\tcli" : "=&r"(after_nop) :: "memory");
    TEST_EQ(ipi_hits, 1, "pending interrupt delivered after STI");
    TEST_EQ(ipi_rip, after_nop, "STI shadow: taken after the next instruction");
    TEST_ASSERT(isr_in_handler, "ISR bit set while the handler runs");
    TEST_ASSERT(!apic_bit(APIC_ISR, IPI_VECTOR) && !apic_bit(APIC_IRR, IPI_VECTOR),
                "EOI cleared ISR; IRR empty");

    /* TPR masks the priority class */
    apic_write(APIC_TPR, 0x60);
    apic_icr(0, APIC_DEST_SELF | IPI_VECTOR);
    asm volatile("sti; nop; nop; cli");
    TEST_EQ(ipi_hits, 1, "TPR 0x60 blocks vector 0x61 (same priority class)");
    apic_icr(0, APIC_DEST_SELF | IPI_VECTOR2);
    asm volatile("sti; nop; nop; cli");
    TEST_EQ(ipi_hits, 2, "TPR 0x60 lets vector 0x71 through");
    apic_write(APIC_TPR, 0);
    asm volatile("sti; nop; nop; cli");
    TEST_EQ(ipi_hits, 3, "lowering TPR delivers the held vector");
    u64 cr8;
    apic_write(APIC_TPR, 0x50);
    asm volatile("mov %%cr8, %0" : "=r"(cr8));
    TEST_EQ(cr8, 5, "CR8 mirrors TPR[7:4]");
    asm volatile("mov %0, %%cr8" ::"r"(0ull));
    TEST_EQ(apic_read(APIC_TPR), 0, "writing CR8 sets TPR");

    /* HLT wakes up on an interrupt and resumes after it */
    apic_write(APIC_TDCR, 0xb);
    apic_write(APIC_LVTT, TIMER_VECTOR);
    timer_hits = 0;
    apic_write(APIC_TMICT, 500000);
    asm volatile("sti; hlt; cli");
    TEST_EQ(timer_hits, 1, "HLT: woken by the timer interrupt");
    /* an interrupt already pending when HLT runs in the STI shadow wakes it at once */
    int hits = ipi_hits;
    apic_icr(0, APIC_DEST_SELF | IPI_VECTOR);
    ulong after_hlt;
    asm volatile(ASM_LABEL_ADDR("1f", "%0") "sti\n\thlt\n1:\tcli" : "=&r"(after_hlt) :: "memory");
    TEST_EQ(ipi_hits, hits + 1, "HLT in the STI shadow with a pending interrupt: woken");
    TEST_EQ(ipi_rip, after_hlt, "HLT in the STI shadow: interrupt taken after the HLT");
}

static void check_nmi(void)
{
    apic_icr(apic_id(), APIC_ICR_NMI);
    for (int i = 0; i < 1000000 && nmi_hits < 2; i++)
        pause();
    TEST_EQ(nmi_hits, 2, "NMI by IPI: both NMIs delivered (IF=0 does not block NMI)");
    TEST_EQ(nmi_max_depth, 1, "NMI blocked while in the NMI handler, until IRET");
}

static void check_x2apic(void)
{
    u32 xid = apic_id();
    if (!apic_enable_x2()) {
        test_skip("x2APIC: not in CPUID");
        return;
    }
    TEST_ASSERT(rdmsr(MSR_APIC_BASE) & BIT(10), "x2APIC: APIC_BASE.EXTD set");
    TEST_EQ(apic_id(), xid, "x2APIC: ID MSR equals the xAPIC ID");
    int hits = ipi_hits;
    wrmsr(0x83f, IPI_VECTOR); /* SELF IPI register */
    asm volatile("sti; nop; nop; cli");
    TEST_EQ(ipi_hits, hits + 1, "x2APIC: SELF_IPI MSR delivers");
    apic_icr(xid, IPI_VECTOR);
    asm volatile("sti; nop; nop; cli");
    TEST_EQ(ipi_hits, hits + 2, "x2APIC: ICR MSR fixed IPI to own ID");
    u64 v;
    TEST_EQ(rdmsr_safe(0x800 + (APIC_ICR2 >> 4), &v), GP_VECTOR, "x2APIC: no ICR2 MSR (#GP)");
    timer_hits = 0;
    apic_write(APIC_TDCR, 0xb);
    apic_write(APIC_LVTT, TIMER_VECTOR);
    apic_write(APIC_TMICT, 100000);
    TEST_ASSERT(wait_for(&timer_hits, 1, 2000000), "x2APIC: timer through MSRs");
    apic_disable_x2();
    TEST_ASSERT(!(rdmsr(MSR_APIC_BASE) & BIT(10)), "back to xAPIC mode");
    TEST_EQ(apic_id(), xid, "xAPIC ID after the round trip");
}

void test_main(void)
{
    apic_enable();
    exc_set_handler(TIMER_VECTOR, timer_handler);
    exc_set_handler(IPI_VECTOR, ipi_handler);
    exc_set_handler(IPI_VECTOR2, ipi_handler);
    exc_set_handler(NMI_VECTOR, nmi_handler);
    TEST_EQ(apic_read(APIC_SVR) & 0x1ff, 0x1ff, "APIC software-enabled, spurious vector 0xff");
    TEST_ASSERT((apic_read(APIC_LVR) & 0xff) >= 0x10, "APIC version is an integrated APIC (%#x)",
                apic_read(APIC_LVR) & 0xff);
    check_timer();
    check_ipis();
    check_nmi();
    check_x2apic();
}

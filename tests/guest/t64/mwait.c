/* MONITOR/MWAIT: CPUID.1:ECX.MONITOR and leaf 5; MWAIT returns at once without an armed
 * monitor or when the line was written after MONITOR; it waits until another vCPU writes
 * the line (the waiter resumes after the write, once); an interrupt ends the wait and is
 * delivered with IF=1; with ECX[0]=1 a masked interrupt ends it too (IF=0, not delivered).
 * Faults: #UD at CPL 3 and without the feature, #GP for reserved ECX bits, the address
 * checked like a load (#GP non-canonical, #PF not present).
 * QEMU TCG does not wait in MWAIT with more than one vCPU (a wake-up the SDM allows): the
 * timing checks are skipped there.
 * guest: cpu=max smp=2 name=mwait */
/* guest: cpu=max,vendor=AuthenticAMD smp=2 name=mwait-amd */
/* guest: cpu=max,-monitor name=mwait-off */
#include "rt.h"

#define TIMER_VECTOR 0x62

static volatile u64 line[512] __attribute__((aligned(4096))); /* the page holds only it */
static volatile u64 t_write, t_wake;
static volatile int mwait_returns, ap_ready, timer_hits;

static inline void monitor(const volatile void *p, ulong ext)
{
    asm volatile("monitor" ::"a"(p), "c"(ext), "d"(0ul) : "memory");
}
static inline void mwait(ulong hints, ulong ext)
{
    asm volatile("mwait" ::"a"(hints), "c"(ext) : "memory");
}

static void timer_handler(struct exc_frame *f)
{
    (void)f;
    timer_hits++;
    apic_eoi();
}

static void ap_main(int index)
{
    (void)index;
    ap_ready = 1;
    while (!line[0]) {
        monitor(&line[0], 0);
        if (!line[0]) {
            mwait(0, 0);
            mwait_returns++;
        }
    }
    t_wake = rdtsc();
    for (;;)
        asm volatile("cli; hlt");
}

static ulong user_monitor(ulong p)
{
    monitor((void *)p, 0);
    return 0;
}
static ulong user_mwait(ulong x)
{
    mwait(0, x);
    return 0;
}

static void monitor_in_user(void *arg) { run_user(user_monitor, (ulong)arg, 0); }
static void mwait_in_user(void *arg) { (void)arg; run_user(user_mwait, 0, 0); }

static void check_faults(void)
{
    TEST_EQ(exc_catch(monitor_in_user, (void *)line), UD_VECTOR, "MONITOR at CPL 3: #UD");
    TEST_EQ(exc_catch(mwait_in_user, NULL), UD_VECTOR, "MWAIT at CPL 3: #UD");
    asm volatile(ASM_TRY("1f") "monitor\n1:" ::"a"(line), "c"(1ul), "d"(0ul) : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "MONITOR with ECX=1: #GP");
    asm volatile(ASM_TRY("1f") "mwait\n1:" ::"a"(0ul), "c"(2ul) : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "MWAIT with ECX[1] set: #GP");
    asm volatile(ASM_TRY("1f") "monitor\n1:" ::"a"(0x0100000000000000ul), "c"(0ul), "d"(0ul)
                 : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "MONITOR of a non-canonical address: #GP");
    /* PML4 slot 1 is not mapped by the runtime */
    asm volatile(ASM_TRY("1f") "monitor\n1:" ::"a"(0x8000000000ul), "c"(0ul), "d"(0ul)
                 : "memory");
    TEST_EQ(exc_vector(), PF_VECTOR, "MONITOR of a not-present page: #PF");
    TEST_EQ(exc_last.error, 0, "#PF error code of a read (not present, supervisor)");
}

static void check_one_cpu(void)
{
    /* Each of these would halt the only running vCPU for good if MWAIT waited: the test
     * would then stop with "every vCPU is halted" instead of passing. */
    mwait(0, 0);
    TEST_ASSERT(true, "MWAIT without MONITOR returns at once");
    monitor(&line[8], 0);
    line[9] = 1; /* the same 64-byte line */
    mwait(0, 0);
    TEST_ASSERT(true, "MWAIT after a write to the monitored line returns at once");

    /* an interrupt ends the wait and is delivered (IF=1) */
    apic_write(APIC_TDCR, 0xb);
    apic_write(APIC_LVTT, TIMER_VECTOR);
    timer_hits = 0;
    monitor(&line[16], 0);
    apic_write(APIC_TMICT, 200000);
    asm volatile("sti; mwait; cli" ::"a"(0ul), "c"(0ul) : "memory");
    TEST_EQ(timer_hits, 1, "MWAIT with IF=1: woken by the timer interrupt, delivered");

    /* ECX[0]=1: a masked interrupt ends the wait without being delivered */
    timer_hits = 0;
    monitor(&line[16], 0);
    apic_write(APIC_TMICT, 200000);
    mwait(0, 1);
    TEST_EQ(timer_hits, 0, "MWAIT ECX[0]=1 with IF=0: woken, interrupt still pending");
    asm volatile("sti; nop; cli");
    TEST_EQ(timer_hits, 1, "the interrupt is delivered after STI");
}

static void check_two_cpus(void)
{
    line[0] = 0;
    int up = smp_start(ap_main, 1, 2000000);
    TEST_EQ(up, 1, "the AP is up");
    while (!ap_ready)
        asm volatile("pause");
    udelay(20000); /* the AP is in MWAIT by now */
    t_write = rdtsc();
    line[0] = 1;
    u64 end = rdtsc() + 2000000ull * tsc_per_us();
    while (!t_wake && (s64)(rdtsc() - end) < 0)
        asm volatile("pause");
    TEST_ASSERT(t_wake != 0, "the AP left its MWAIT loop after the write");
    if (on_qemu_tcg()) {
        test_skip("QEMU TCG: MWAIT does not wait with several vCPUs");
        return;
    }
    TEST_ASSERT(t_wake > t_write, "the AP woke after the write, not before");
    TEST_EQ(mwait_returns, 1, "one MWAIT, ended by the write");
}

void test_main(void)
{
    char spec[128] = "max";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    bool want = true;
    for (const char *s = spec; *s; s++)
        if (!strncmp(s, "-monitor", 8))
            want = false;
    bool has = cpu_has(1, 0, 2, 3);
    TEST_EQ(has, want, "CPUID.1:ECX.MONITOR follows -cpu");
    if (!has) {
        asm volatile(ASM_TRY("1f") "monitor\n1:" ::"a"(line), "c"(0ul), "d"(0ul) : "memory");
        TEST_EQ(exc_vector(), UD_VECTOR, "MONITOR without the feature: #UD");
        asm volatile(ASM_TRY("1f") "mwait\n1:" ::"a"(0ul), "c"(0ul) : "memory");
        TEST_EQ(exc_vector(), UD_VECTOR, "MWAIT without the feature: #UD");
        struct cpuid_regs r5 = cpuid(5);
        TEST_ASSERT(r5.a == 0 && r5.b == 0 && r5.c == 0, "leaf 5 empty without MONITOR");
        return;
    }
    struct cpuid_regs r5 = cpuid(5);
    TEST_ASSERT(r5.a >= 1 && (r5.a & 0xffff) <= (r5.b & 0xffff),
                "leaf 5: monitor line sizes (%u..%u)", r5.a & 0xffff, r5.b & 0xffff);
    TEST_ASSERT((r5.c & 3) == 3, "leaf 5: extensions enumerated, interrupt break-event");
    exc_set_handler(TIMER_VECTOR, timer_handler);
    apic_enable();
    check_faults();
    check_one_cpu();
    check_two_cpus();
}

/* IA32_MISC_ENABLE (1A0h, Intel; SDM Vol. 4 table 2-2). At power-on: fast strings (0),
 * automatic thermal control (3), MONITOR/MWAIT enable (18, with MONITOR in the model),
 * BTS and PEBS unavailable (11, 12), performance monitoring available (7) exactly when
 * CPUID leaf 0Ah reports a PMU version. Bits 0, 3, 16, 18, 22, 23 and 34 store and read
 * back; 7 ignores writes; changing 11 or 12, or setting a reserved bit, is #GP. Side
 * effects: bit 18 clear hides CPUID.1:ECX.MONITOR and makes MONITOR/MWAIT #UD; bit 22
 * limits CPUID.0:EAX to 2, basic leaves above 2 then answering as leaf 2; bit 34 hides
 * CPUID.80000001h:EDX.NX and makes EFER.NXE reserved. Setting 18 without MONITOR, or 34
 * without NX, is #GP; so is setting 34 while EFER.NXE is 1 (the SDM leaves that undefined).
 * On AMD the MSR does not exist (#GP).
 * QEMU TCG stores the MSR without these rules: only the power-on checks run there.
 * guest: cpu=max name=miscenable */
/* guest: cpu=max,-monitor,-nx name=miscenable-off */
/* guest: cpu=max,vendor=AuthenticAMD name=miscenable-amd */
#include "rt.h"

#define MSR_MISC_ENABLE 0x1a0
#define ME(n) BIT(n)

static u64 misc(void) { return rdmsr(MSR_MISC_ENABLE); }

static bool cpuid_same(struct cpuid_regs a, struct cpuid_regs b)
{
    return a.a == b.a && a.b == b.b && a.c == b.c && a.d == b.d;
}

static void check_rw(u64 base)
{
    static const int rw[] = { 0, 3, 16, 23 };
    for (unsigned k = 0; k < ARRAY_SIZE(rw); k++) {
        u64 v = base ^ ME(rw[k]);
        TEST_EQ(wrmsr_safe(MSR_MISC_ENABLE, v), NO_EXCEPTION, "toggling a read/write bit");
        TEST_EQ(misc(), v, "the toggled bit reads back");
        wrmsr(MSR_MISC_ENABLE, base);
        TEST_EQ(misc(), base, "restored");
    }
    TEST_EQ(wrmsr_safe(MSR_MISC_ENABLE, base ^ ME(7)), NO_EXCEPTION, "a write of bit 7 is ignored");
    TEST_EQ(misc(), base, "bit 7 keeps saying what the PMU does");
    TEST_EQ(wrmsr_safe(MSR_MISC_ENABLE, base & ~ME(11)), GP_VECTOR, "clearing BTS unavailable: #GP");
    TEST_EQ(wrmsr_safe(MSR_MISC_ENABLE, base & ~ME(12)), GP_VECTOR, "clearing PEBS unavailable: #GP");
    static const int reserved[] = { 1, 2, 8, 17, 19, 24, 33, 35, 63 };
    for (unsigned k = 0; k < ARRAY_SIZE(reserved); k++)
        TEST_ASSERT(wrmsr_safe(MSR_MISC_ENABLE, base | ME(reserved[k])) == GP_VECTOR,
                    "reserved bit %d: #GP", reserved[k]);
    TEST_EQ(misc(), base, "unchanged by the refused writes");
}

static void check_monitor(u64 base, bool model_has_monitor)
{
    if (!model_has_monitor) {
        TEST_EQ(base & ME(18), 0, "no MONITOR in the model: bit 18 clear");
        TEST_EQ(wrmsr_safe(MSR_MISC_ENABLE, base | ME(18)), GP_VECTOR,
                "enabling MONITOR/MWAIT the model lacks: #GP");
        return;
    }
    TEST_ASSERT(base & ME(18), "MONITOR/MWAIT enabled at power-on");
    wrmsr(MSR_MISC_ENABLE, base & ~ME(18));
    TEST_ASSERT(!cpu_has(1, 0, 2, 3), "bit 18 clear: CPUID.1:ECX.MONITOR is 0");
    static volatile u64 line;
    asm volatile(ASM_TRY("1f") "monitor\n1:" ::"a"(&line), "c"(0ul), "d"(0ul) : "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "bit 18 clear: MONITOR #UD");
    asm volatile(ASM_TRY("1f") "mwait\n1:" ::"a"(0ul), "c"(0ul) : "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "bit 18 clear: MWAIT #UD");
    wrmsr(MSR_MISC_ENABLE, base);
    TEST_ASSERT(cpu_has(1, 0, 2, 3), "bit 18 set again: MONITOR is back");
    asm volatile(ASM_TRY("1f") "monitor\n1:" ::"a"(&line), "c"(0ul), "d"(0ul) : "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "bit 18 set: MONITOR runs");
}

static void check_limit(u64 base)
{
    struct cpuid_regs l0 = cpuid(0), l1 = cpuid(1), l2 = cpuid(2), ext = cpuid(0x80000000);
    TEST_ASSERT(l0.a > 2, "more basic leaves than 2 (%u)", l0.a);
    wrmsr(MSR_MISC_ENABLE, base | ME(22));
    TEST_EQ(misc(), base | ME(22), "limit CPUID maxval reads back");
    struct cpuid_regs lim = cpuid(0);
    TEST_EQ(lim.a, 2, "bit 22: CPUID.0:EAX is 2");
    TEST_ASSERT(lim.b == l0.b && lim.c == l0.c && lim.d == l0.d, "the vendor string stays");
    TEST_ASSERT(cpuid_same(cpuid(4), l2) && cpuid_same(cpuid2(7, 0), l2) &&
                    cpuid_same(cpuid(l0.a), l2),
                "bit 22: basic leaves above 2 answer as leaf 2");
    struct cpuid_regs l1_lim = cpuid(1);
    l1_lim.b &= 0x00ffffff, l1.b &= 0x00ffffff; /* the APIC id is the same CPU's anyway */
    TEST_ASSERT(cpuid_same(l1_lim, l1), "leaf 1 is unaffected");
    TEST_EQ(cpuid(0x80000000).a, ext.a, "the extended leaves are unaffected");
    wrmsr(MSR_MISC_ENABLE, base);
    TEST_EQ(cpuid(0).a, l0.a, "bit 22 clear: the highest basic leaf is back");
}

static void check_xd(u64 base, bool model_has_nx)
{
    u64 efer = rdmsr(MSR_EFER);
    if (!model_has_nx) {
        TEST_EQ(wrmsr_safe(MSR_MISC_ENABLE, base | ME(34)), GP_VECTOR, "XD disable without NX: #GP");
        return;
    }
    TEST_ASSERT(efer & EFER_NXE, "the runtime runs with EFER.NXE");
    TEST_EQ(wrmsr_safe(MSR_MISC_ENABLE, base | ME(34)), GP_VECTOR,
            "XD disable while EFER.NXE is 1: #GP");
    /* the runtime's page tables use no NX bit: NXE can go off for a while */
    wrmsr(MSR_EFER, efer & ~EFER_NXE);
    TEST_EQ(wrmsr_safe(MSR_MISC_ENABLE, base | ME(34)), NO_EXCEPTION, "XD disable with NXE 0");
    TEST_EQ(misc(), base | ME(34), "XD disable reads back");
    TEST_ASSERT(!cpu_has(0x80000001, 0, 3, 20), "XD disabled: CPUID.80000001h:EDX.NX is 0");
    TEST_EQ(wrmsr_safe(MSR_EFER, efer), GP_VECTOR, "XD disabled: EFER.NXE is reserved");
    wrmsr(MSR_MISC_ENABLE, base);
    TEST_ASSERT(cpu_has(0x80000001, 0, 3, 20), "XD enabled again: NX is back");
    TEST_EQ(wrmsr_safe(MSR_EFER, efer), NO_EXCEPTION, "and EFER.NXE can be set");
}

void test_main(void)
{
    char spec[128] = "max";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    struct cpuid_regs l0 = cpuid(0);
    bool amd = !memcmp(&l0.b, "Auth", 4);
    u64 base;
    int v = rdmsr_safe(MSR_MISC_ENABLE, &base);
    if (amd) {
        if (on_qemu_tcg())
            test_skip("QEMU TCG has IA32_MISC_ENABLE on AMD models too");
        else
            TEST_EQ(v, GP_VECTOR, "AMD: no IA32_MISC_ENABLE");
        return;
    }
    TEST_EQ(v, NO_EXCEPTION, "IA32_MISC_ENABLE exists on Intel");
    bool pmu = l0.a >= 0xa && (cpuid(0xa).a & 0xff) != 0;
    TEST_ASSERT((base & ME(0)) && (base & ME(11)) && (base & ME(12)),
                "power-on: fast strings, BTS and PEBS unavailable (%#llx)", (unsigned long long)base);
    if (on_qemu_tcg()) {
        test_skip("QEMU TCG stores IA32_MISC_ENABLE without the SDM's rules");
        return;
    }
    TEST_ASSERT(base & ME(3), "power-on: automatic thermal control");
    TEST_EQ(!!(base & ME(7)), pmu, "bit 7 says whether CPUID leaf 0Ah reports a PMU");
    TEST_EQ(base & (ME(16) | ME(22) | ME(23) | ME(34)), 0, "power-on: 16, 22, 23, 34 clear");
    bool model_has_monitor = true, model_has_nx = true;
    for (const char *s = spec; *s; s++) {
        if (!strncmp(s, "-monitor", 8))
            model_has_monitor = false;
        if (!strncmp(s, "-nx", 3))
            model_has_nx = false;
    }
    TEST_EQ(cpu_has(1, 0, 2, 3), model_has_monitor, "CPUID.1:ECX.MONITOR follows the model");
    check_rw(base);
    check_monitor(base, model_has_monitor);
    check_limit(base);
    check_xd(base, model_has_nx);
}

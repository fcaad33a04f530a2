/* TSC scaling and pause-loop exiting (SDM 26.3, 26.1.3): with "use TSC scaling" L2's
 * RDTSC is L1's TSC times the multiplier (48 fractional bits) plus the offset; PAUSEs less
 * than PLE_Gap ticks apart form a loop that exits after PLE_Window ticks, while spaced
 * PAUSEs never exit. L1's TSC-deadline timer counts against L1's TSC while L2 runs.
 * guest: cpu=max name=vmx-tsc */
#include "vmx.h"

#define PROC2_PLE BIT(10)
#define PROC2_TSC_SCALING BIT(25)
#define F_TSC_MULTIPLIER 0x2032
#define F_PLE_GAP 0x4020
#define F_PLE_WINDOW 0x4022

VMX_L2_CODE(l2_rdtsc, "rdtsc");
VMX_L2_CODE(l2_spin, "1: jmp 1b");
VMX_L2_CODE(l2_pause_loop, "1: pause\n jmp 1b");
/* 200 PAUSEs with a delay loop of 2000 iterations between them */
VMX_L2_CODE(l2_spaced_pauses, "mov $200, %ecx\n"
                              "1: pause\n mov $2000, %eax\n 2: dec %eax\n jnz 2b\n dec %ecx\n jnz 1b");

static u64 edx_eax(void)
{
    return (vmx_gregs[2] & 0xffffffffull) << 32 | (vmx_gregs[0] & 0xffffffffull);
}

void test_main(void)
{
    u64 p2 = rdmsr(MSR_VMX_PROCBASED2) >> 32;
    TEST_ASSERT(p2 & PROC2_TSC_SCALING, "TSC scaling may be 1");
    TEST_ASSERT(p2 & PROC2_PLE, "pause-loop exiting may be 1");
    TEST_ASSERT(vmx_on(), "VMXON");

    struct { u64 mult, offset; const char *what; } runs[] = {
        { 2ull << 48, 0, "multiplier 2.0" },
        { 1ull << 47, 1000000, "multiplier 0.5, offset 1000000" },
    };
    for (unsigned k = 0; k < 2; k++) {
        vmx_setup_l2(l2_rdtsc, PROC_TSC_OFFSET, PROC2_TSC_SCALING);
        vmwrite(F_TSC_MULTIPLIER, runs[k].mult);
        vmwrite(F_TSC_OFFSET, runs[k].offset);
        u64 t0 = rdtsc();
        TEST_EQ(vmx_run(), R_VMCALL, "L2 ran");
        u64 t1 = rdtsc();
        u64 v = edx_eax();
        u64 lo = (u64)(((unsigned __int128)t0 * runs[k].mult) >> 48) + runs[k].offset;
        u64 hi = (u64)(((unsigned __int128)t1 * runs[k].mult) >> 48) + runs[k].offset;
        TEST_ASSERT(v >= lo && v <= hi, "RDTSC with %s: %llx in [%llx, %llx]", runs[k].what,
                    (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
    }
    /* scaling without TSC offsetting does nothing */
    vmx_setup_l2(l2_rdtsc, 0, PROC2_TSC_SCALING);
    vmwrite(F_TSC_MULTIPLIER, 2ull << 48);
    u64 t0 = rdtsc();
    vmx_run();
    u64 t1 = rdtsc();
    TEST_ASSERT(edx_eax() >= t0 && edx_eax() <= t1, "no offsetting: the multiplier is ignored");
    TEST_ASSERT(rdtsc() < t1 * 2, "L1's TSC is not scaled after the exit");

    /* L1's TSC-deadline timer counts against L1's TSC while L2 runs with a TSC far
     * behind (starting from 0, as KVM gives a new guest): it expires on time, as an
     * external-interrupt exit */
    if (HAS_TSC_DEADLINE()) {
        apic_enable();
        outb(0x21, 0xff); /* the 8259's lines masked, LINT0 too: the timer is the only */
        outb(0xa1, 0xff); /* source of external interrupts */
        apic_write(APIC_LVT0, APIC_LVT_MASKED);
        apic_write(APIC_LVTT, 0x40000 | 0xec); /* TSC-deadline mode, vector 0xec */
        vmx_setup_l2(l2_spin, PROC_TSC_OFFSET, 0);
        vmwrite(F_PIN, vmread(F_PIN) | PIN_EXTINT);
        wrmsr(0x10, 1ull << 40); /* L1's TSC 9 minutes on: L2's from 0 is that far behind */
        t0 = rdtsc();
        vmwrite(F_TSC_OFFSET, -t0);
        wrmsr(MSR_TSC_DEADLINE, t0 + 2000000); /* 1 ms at 2 GHz */
        /* other interrupt sources may exit first: go back into L2 until the deadline
         * has fired (the MSR reads 0 then) */
        long r = R_EXTINT;
        while (r == R_EXTINT && rdmsr(MSR_TSC_DEADLINE) && rdtsc() - t0 < 200000000ull)
            r = vmx_run();
        TEST_EQ(r, R_EXTINT, "L2 leaves through external-interrupt exits");
        TEST_EQ(rdmsr(MSR_TSC_DEADLINE), 0,
                "L1's deadline timer fired while an L2 whose TSC starts at 0 ran");
        TEST_ASSERT(rdtsc() - t0 < 200000000ull, "within 100 ms, not when L2's TSC gets there");
        apic_write(APIC_LVTT, APIC_LVT_MASKED);
    }

    vmx_setup_l2(l2_pause_loop, 0, PROC2_PLE);
    vmwrite(F_PLE_GAP, 100000);
    vmwrite(F_PLE_WINDOW, 2000000);
    t0 = rdtsc();
    TEST_EQ(vmx_run(), R_PAUSE, "a tight PAUSE loop exits");
    TEST_ASSERT(rdtsc() - t0 >= 2000000, "after the window");
    vmx_setup_l2(l2_spaced_pauses, 0, PROC2_PLE);
    vmwrite(F_PLE_GAP, 10);
    vmwrite(F_PLE_WINDOW, 100);
    TEST_EQ(vmx_run(), R_VMCALL, "PAUSEs further apart than the gap never exit");
    vmxoff();
}

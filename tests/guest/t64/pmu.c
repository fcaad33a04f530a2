/* Performance monitoring: Intel architectural performance monitoring (CPUID leaf 0Ah,
 * IA32_PMCx/PERFEVTSELx, the fixed counters, the global control/status/overflow MSRs)
 * and AMD's legacy (C001_0000h-C001_0007h) and core-extension (C001_0200h-C001_020Bh)
 * counters: the MSRs and their reserved bits, exact counts of instructions and branch
 * instructions retired for known instruction sequences (REP string = one instruction, a
 * faulting instruction does not retire, the enabling WRMSR is not counted and the
 * disabling one is; AMD counts each exception as an instruction and a branch), USR/OS
 * filtering, unhalted cycles, RDPMC and CR4.PCE, and the
 * overflow interrupt through the LVT performance-counter entry at the exact instruction
 * (fixed and NMI delivery). QEMU's TCG has no PMU: the test skips where CPUID shows none.
 * guest: cpu=max name=pmu-intel */
/* guest: cpu=max,vendor=AuthenticAMD name=pmu-amd */
/* guest: cpu=max,vendor=AuthenticAMD,-perfctr_core name=pmu-amd-legacy */
/* guest: cpu=max,pmu=off name=pmu-off */
#include "rt.h"

#define SEL_USR BIT(16)
#define SEL_OS BIT(17)
#define SEL_INT BIT(20)
#define SEL_EN BIT(22)
#define CTR_MASK ((1ull << 48) - 1)

enum { MSR_PMC0 = 0xc1, MSR_PERFEVTSEL0 = 0x186, MSR_FIXED_CTR0 = 0x309,
       MSR_FIXED_CTR_CTRL = 0x38d, MSR_GLOBAL_STATUS = 0x38e, MSR_GLOBAL_CTRL = 0x38f,
       MSR_GLOBAL_OVF_CTRL = 0x390, MSR_DEBUGCTL = 0x1d9 };
#define MSR_K7_EVNTSEL0 0xc0010000u
#define MSR_K7_PERFCTR0 0xc0010004u
#define MSR_F15H_PERF_CTL0 0xc0010200u

/* What the CPU has, and how to reach counter k. */
static struct {
    bool intel, amd_ext;
    unsigned ngp;
    u64 ev_insns, ev_branches, ev_cycles;
} pmu;

static u32 sel_msr(unsigned k)
{
    if (pmu.intel)
        return MSR_PERFEVTSEL0 + k;
    return pmu.amd_ext ? MSR_F15H_PERF_CTL0 + 2 * k : MSR_K7_EVNTSEL0 + k;
}
static u32 ctr_msr(unsigned k)
{
    if (pmu.intel)
        return MSR_PMC0 + k;
    return pmu.amd_ext ? MSR_F15H_PERF_CTL0 + 2 * k + 1 : MSR_K7_PERFCTR0 + k;
}

/* Turns every counter off and clears them. */
static void pmu_clear(void)
{
    if (pmu.intel) {
        wrmsr(MSR_GLOBAL_CTRL, 0);
        wrmsr(MSR_FIXED_CTR_CTRL, 0);
        for (unsigned k = 0; k < 3; k++)
            wrmsr(MSR_FIXED_CTR0 + k, 0);
        wrmsr(MSR_GLOBAL_OVF_CTRL, rdmsr(MSR_GLOBAL_STATUS));
    }
    for (unsigned k = 0; k < pmu.ngp; k++) {
        wrmsr(sel_msr(k), 0);
        wrmsr(ctr_msr(k), 0);
    }
    if (pmu.intel)
        wrmsr(MSR_GLOBAL_CTRL, (1u << pmu.ngp) - 1);
}

/* ---- known instruction sequences ----
 * Each starts with the WRMSR that enables counting (not counted) and ends with the
 * WRMSR of 0 that stops it (counted): msr is the enabling MSR and v its value. */

/* mov; n x (dec; jnz); xor; xor; wrmsr: 2n + 4 instructions, n branches. */
static NOINLINE void seq_loop(u32 msr, u64 v, u64 n)
{
    u32 lo = (u32)v, hi = (u32)(v >> 32);
    asm volatile("wrmsr\n\t"
                 "mov %[n], %%r8\n"
                 "1:\tdec %%r8\n\t"
                 "jnz 1b\n\t"
                 "xor %%eax, %%eax\n\t"
                 "xor %%edx, %%edx\n\t"
                 "wrmsr"
                 : "+a"(lo), "+d"(hi) : "c"(msr), [n] "r"(n) : "r8", "memory", "cc");
}
#define LOOP_INSNS(n) (2 * (n) + 4)

/* Every kind of near branch: lea, call, ret, jmp, xor, jnz (not taken), jmp *reg, then
 * xor; xor; wrmsr: 10 instructions, 5 branches. */
static NOINLINE void seq_branches(u32 msr, u64 v)
{
    u32 lo = (u32)v, hi = (u32)(v >> 32);
    asm volatile("wrmsr\n\t"
                 "lea 3f(%%rip), %%r10\n\t"
                 "call 4f\n\t"
                 "jmp 5f\n"
                 "4:\tret\n"
                 "5:\txor %%r11d, %%r11d\n\t"
                 "jnz 6f\n\t"
                 "jmp *%%r10\n"
                 "6:\tud2\n"
                 "3:\txor %%eax, %%eax\n\t"
                 "xor %%edx, %%edx\n\t"
                 "wrmsr"
                 : "+a"(lo), "+d"(hi) : "c"(msr) : "r10", "r11", "memory", "cc");
}

/* Far transfers at CPL 0: a far RET and an IRETQ to the next instruction, with what sets
 * them up: 18 instructions, 2 branches. */
static NOINLINE void seq_far(u32 msr, u64 v)
{
    u32 lo = (u32)v, hi = (u32)(v >> 32);
    asm volatile("wrmsr\n\t"
                 "lea 1f(%%rip), %%r10\n\t"
                 "mov %%cs, %%r11d\n\t"
                 "push %%r11\n\t"
                 "push %%r10\n\t"
                 "lretq\n"
                 "1:\tmov %%rsp, %%r10\n\t"
                 "mov %%ss, %%r11d\n\t"
                 "push %%r11\n\t"
                 "push %%r10\n\t"
                 "pushfq\n\t"
                 "mov %%cs, %%r11d\n\t"
                 "push %%r11\n\t"
                 "lea 2f(%%rip), %%r10\n\t"
                 "push %%r10\n\t"
                 "iretq\n"
                 "2:\txor %%eax, %%eax\n\t"
                 "xor %%edx, %%edx\n\t"
                 "wrmsr"
                 : "+a"(lo), "+d"(hi) : "c"(msr) : "r10", "r11", "memory", "cc");
}

/* A REP LODSB over 10000 bytes (several resumptions inside the engine) is one
 * instruction: mov, mov, mov, rep lodsb, mov, xor, xor, wrmsr: 8 instructions. */
static NOINLINE void seq_rep(u32 msr, u64 v)
{
    u32 lo = (u32)v, hi = (u32)(v >> 32);
    asm volatile("wrmsr\n\t"
                 "mov %%ecx, %%r9d\n\t"
                 "mov $10000, %%ecx\n\t"
                 "mov %[buf], %%rsi\n\t"
                 "rep lodsb\n\t"
                 "mov %%r9d, %%ecx\n\t"
                 "xor %%eax, %%eax\n\t"
                 "xor %%edx, %%edx\n\t"
                 "wrmsr"
                 : "+a"(lo), "+d"(hi) : "c"(msr), [buf] "r"(__image_start)
                 : "r9", "rsi", "memory", "cc");
}

/* User code for run_user_raw: n x (dec; jnz), then INT 0x7f back to the kernel:
 * 2n + 2 instructions and n + 1 branches at CPL 3 (INT n is a branch). */
extern char user_loop[], user_fault[];
asm(".pushsection .text\n"
    "user_loop:\n\t"
    "mov %rdi, %rcx\n"
    "1:\tdec %rcx\n\t"
    "jnz 1b\n\t"
    "int $0x7f\n"
    /* the same loop, then UD2: 2n + 1 instructions retire, the UD2 does not */
    "user_fault:\n\t"
    "mov %rdi, %rcx\n"
    "1:\tdec %rcx\n\t"
    "jnz 1b\n\t"
    "ud2\n"
    /* one or two SYSCALLs (the kernel side is one SYSRETQ), then INT 0x7f */
    "user_syscall2:\n\t"
    "syscall\n"
    "user_syscall1:\n\t"
    "syscall\n\t"
    "int $0x7f\n"
    "pmu_sysret:\n\t"
    "sysretq\n"
    ".popsection");
extern char user_syscall1[], user_syscall2[], pmu_sysret[];

static ulong run_user_code(char *code, u64 n)
{
    return run_user_raw((ulong)code, n, 0, SEL_UCODE64, SEL_UDATA,
                        (ulong)user_stack + sizeof(user_stack));
}
static void user_fault_fn(void *arg) { run_user_code(user_fault, (u64)(ulong)arg); }

/* ---- CPUID and MSRs ---- */
static void check_cpuid(void)
{
    struct cpuid_regs a = cpuid(0xa);
    if (pmu.intel) {
        TEST_EQ(a.a & 0xff, 2, "CPUID.0AH:EAX version 2");
        TEST_EQ((a.a >> 8) & 0xff, 4, "CPUID.0AH:EAX four general-purpose counters");
        TEST_EQ((a.a >> 16) & 0xff, 48, "CPUID.0AH:EAX counters 48 bits wide");
        TEST_EQ(a.a >> 24, 7, "CPUID.0AH:EAX seven architectural events in EBX");
        TEST_EQ(a.b & 0x7f, 0x58, "CPUID.0AH:EBX cycles, instructions, ref cycles, branches available; LLC and mispredicts not");
        TEST_EQ(a.d & 0x1fff, 3 | 48 << 5, "CPUID.0AH:EDX three fixed counters of 48 bits");
        TEST_EQ(cpuid(1).c & BIT(15), 0, "CPUID.1:ECX.PDCM clear (no IA32_PERF_CAPABILITIES)");
    } else {
        TEST_EQ(a.a | a.b | a.d, 0, "AMD: leaf 0AH reserved (zero)");
        TEST_EQ(!!(cpuid(0x80000001).c & BIT(23)), pmu.amd_ext,
                "CPUID 80000001H:ECX.PerfCtrExtCore as the model says");
    }
}

static void check_msrs(void)
{
    u64 v;
    if (pmu.intel) {
        TEST_EQ(rdmsr(MSR_GLOBAL_CTRL), 0xf, "GLOBAL_CTRL at reset: general-purpose counters enabled");
        TEST_EQ(wrmsr_safe(MSR_PERFEVTSEL0, BIT(21)), GP_VECTOR, "PERFEVTSEL AnyThread (v3) reserved: #GP");
        TEST_EQ(wrmsr_safe(MSR_PERFEVTSEL0, BIT(32)), GP_VECTOR, "PERFEVTSEL bit 32 reserved: #GP");
        TEST_EQ(wrmsr_safe(MSR_PERFEVTSEL0, 0xffdfffffull), NO_EXCEPTION, "PERFEVTSEL every defined field writable");
        TEST_EQ(rdmsr(MSR_PERFEVTSEL0), 0xffdfffffull, "PERFEVTSEL reads back");
        wrmsr(MSR_PERFEVTSEL0, 0);
        TEST_EQ(wrmsr_safe(MSR_PERFEVTSEL0 + 4, 0), GP_VECTOR, "PERFEVTSEL4 does not exist");
        TEST_EQ(rdmsr_safe(MSR_PMC0 + 4, &v), GP_VECTOR, "IA32_PMC4 does not exist");
        TEST_EQ(rdmsr_safe(MSR_FIXED_CTR0 + 3, &v), GP_VECTOR, "FIXED_CTR3 does not exist");
        TEST_EQ(rdmsr_safe(0x4c1, &v), GP_VECTOR, "IA32_A_PMC0 absent (no full-width writes)");
        TEST_EQ(rdmsr_safe(0x345, &v), GP_VECTOR, "IA32_PERF_CAPABILITIES absent");
        wrmsr(MSR_PMC0, 0x80000000u);
        TEST_EQ(rdmsr(MSR_PMC0), 0xffff80000000ull, "IA32_PMC0 write: bits 31:0 sign-extended to 48");
        wrmsr(MSR_PMC0, 0x100000005ull);
        TEST_EQ(rdmsr(MSR_PMC0), 5, "IA32_PMC0 write: bits 63:32 ignored");
        wrmsr(MSR_PMC0, 0);
        wrmsr(MSR_FIXED_CTR0 + 1, 0xfedcba987654ull);
        TEST_EQ(rdmsr(MSR_FIXED_CTR0 + 1), 0xfedcba987654ull, "FIXED_CTR1 written with its full width");
        wrmsr(MSR_FIXED_CTR0 + 1, 0);
        TEST_EQ(wrmsr_safe(MSR_FIXED_CTR_CTRL, BIT(2)), GP_VECTOR, "FIXED_CTR_CTRL AnyThread (v3) reserved");
        TEST_EQ(wrmsr_safe(MSR_FIXED_CTR_CTRL, BIT(12)), GP_VECTOR, "FIXED_CTR_CTRL bit 12 reserved");
        TEST_EQ(wrmsr_safe(MSR_FIXED_CTR_CTRL, 0xbbb), NO_EXCEPTION, "FIXED_CTR_CTRL OS/USR/PMI writable");
        TEST_EQ(rdmsr(MSR_FIXED_CTR_CTRL), 0xbbb, "FIXED_CTR_CTRL reads back");
        wrmsr(MSR_FIXED_CTR_CTRL, 0);
        TEST_EQ(wrmsr_safe(MSR_GLOBAL_CTRL, BIT(4)), GP_VECTOR, "GLOBAL_CTRL bit 4 (no PMC4) reserved");
        TEST_EQ(wrmsr_safe(MSR_GLOBAL_CTRL, BIT(35)), GP_VECTOR, "GLOBAL_CTRL bit 35 (no FIXED_CTR3) reserved");
        TEST_EQ(wrmsr_safe(MSR_GLOBAL_STATUS, 0), GP_VECTOR, "GLOBAL_STATUS is read-only");
        TEST_EQ(wrmsr_safe(MSR_GLOBAL_OVF_CTRL, BIT(4)), GP_VECTOR, "GLOBAL_OVF_CTRL bit 4 reserved");
        TEST_EQ(wrmsr_safe(MSR_GLOBAL_OVF_CTRL, 0xc00000070000000full), NO_EXCEPTION,
                "GLOBAL_OVF_CTRL counter, OvfBuffer and CondChgd bits writable");
        TEST_EQ(wrmsr_safe(MSR_DEBUGCTL, BIT(12)), NO_EXCEPTION, "DEBUGCTL.Freeze_PerfMon_On_PMI writable");
        wrmsr(MSR_DEBUGCTL, 0);
        TEST_EQ(rdmsr_safe(MSR_K7_EVNTSEL0, &v), GP_VECTOR, "Intel: AMD's PERF_CTL0 does not exist");
    } else {
        TEST_EQ(wrmsr_safe(sel_msr(0), BIT(21)), GP_VECTOR, "PerfEvtSel bit 21 reserved: #GP");
        TEST_EQ(wrmsr_safe(sel_msr(0), BIT(36)), GP_VECTOR, "PerfEvtSel bit 36 reserved: #GP");
        TEST_EQ(wrmsr_safe(sel_msr(0), BIT(19)), GP_VECTOR, "PerfEvtSel bit 19 reserved: #GP");
        TEST_EQ(wrmsr_safe(sel_msr(0), 0x30fffd7ffffull), NO_EXCEPTION,
                "PerfEvtSel: event[11:0], unit mask, USR, OS, edge, INT, EN, INV, CntMask, HG_ONLY writable");
        TEST_EQ(rdmsr(sel_msr(0)), 0x30fffd7ffffull, "PerfEvtSel reads back");
        wrmsr(sel_msr(0), 0);
        wrmsr(ctr_msr(1), 0xfedcba987654ull);
        TEST_EQ(rdmsr(ctr_msr(1)), 0xfedcba987654ull, "PerfCtr written with its full 48 bits");
        TEST_EQ(rdmsr_safe(MSR_PERFEVTSEL0, &v), GP_VECTOR, "AMD: Intel's PERFEVTSEL0 does not exist");
        TEST_EQ(rdmsr_safe(MSR_GLOBAL_CTRL, &v), GP_VECTOR, "AMD: no IA32_PERF_GLOBAL_CTRL");
        /* the legacy MSRs are the first four counters of the extension */
        if (pmu.amd_ext) {
            wrmsr(MSR_K7_EVNTSEL0 + 2, 0x4300c0);
            TEST_EQ(rdmsr(MSR_F15H_PERF_CTL0 + 4), 0x4300c0, "PERF_CTL2 (C001_0002h) is CTL2 at C001_0204h");
            wrmsr(MSR_F15H_PERF_CTL0 + 7, 0x123456789abull);
            TEST_EQ(rdmsr(MSR_K7_PERFCTR0 + 3), 0x123456789abull, "CTR3 at C001_0207h is PERF_CTR3 (C001_0007h)");
            TEST_EQ(wrmsr_safe(MSR_F15H_PERF_CTL0 + 10, 0x4300c0), NO_EXCEPTION, "CTL5 (C001_020Ah) exists");
            TEST_EQ(rdmsr_safe(MSR_F15H_PERF_CTL0 + 12, &v), GP_VECTOR, "C001_020Ch (CTL6) does not exist");
        } else {
            TEST_EQ(rdmsr_safe(MSR_F15H_PERF_CTL0, &v), GP_VECTOR, "without perfctr_core: no C001_0200h");
        }
    }
    pmu_clear();
}

/* ---- counting ---- */
static u64 count(unsigned k) { return rdmsr(ctr_msr(k)); }

static void check_counts(void)
{
    u64 ins = SEL_EN | SEL_OS | SEL_USR | pmu.ev_insns;
    u64 br = SEL_EN | SEL_OS | SEL_USR | pmu.ev_branches;
    for (u64 n = 1; n <= 1000; n *= 10) {
        pmu_clear();
        seq_loop(sel_msr(0), ins, n);
        TEST_EQ(count(0), LOOP_INSNS(n), "instructions retired: a loop of n = 1, 10, 100, 1000");
        pmu_clear();
        seq_loop(sel_msr(1), br, n);
        TEST_EQ(count(1), n, "branches retired: the loop's JNZ, taken or not");
    }
    pmu_clear();
    seq_branches(sel_msr(0), ins);
    TEST_EQ(count(0), 10, "instructions retired: call, ret, jmp, jnz, jmp *reg");
    pmu_clear();
    seq_branches(sel_msr(2), br);
    TEST_EQ(count(2), 5, "branches retired: call, ret, jmp, not-taken jnz, jmp *reg");
    pmu_clear();
    seq_far(sel_msr(0), ins);
    TEST_EQ(count(0), 18, "instructions retired: far RET, IRETQ and their set-up");
    pmu_clear();
    seq_far(sel_msr(1), br);
    TEST_EQ(count(1), 2, "branches retired: far RET and IRETQ are branches");
    pmu_clear();
    seq_rep(sel_msr(0), ins);
    TEST_EQ(count(0), 8, "REP LODSB of 10000 bytes is one instruction");
    pmu_clear();
    seq_rep(sel_msr(1), br);
    TEST_EQ(count(1), 0, "REP LODSB is not a branch");

    /* a counter of an event nestor does not count counts nothing */
    pmu_clear();
    seq_loop(sel_msr(0), SEL_EN | SEL_OS | SEL_USR | (pmu.intel ? 0x4f2e : 0x40), 100);
    TEST_EQ(count(0), 0, "an unavailable event (LLC references / data cache accesses) counts 0");
    /* counter mask 2: never two instructions in one cycle */
    pmu_clear();
    seq_loop(sel_msr(0), ins | (2u << 24), 100);
    TEST_EQ(count(0), 0, "instructions with CMASK=2: no cycle retires two");
    pmu_clear();
    seq_loop(sel_msr(0), ins | (1u << 24), 100);
    TEST_EQ(count(0), LOOP_INSNS(100), "instructions with CMASK=1: as many as instructions");

    /* the counters carry on from what software wrote, and wrap at 48 bits */
    pmu_clear();
    wrmsr(ctr_msr(3), pmu.intel ? (u32)-5 : CTR_MASK - 4);
    seq_loop(sel_msr(3), ins, 10);
    TEST_EQ(count(3), LOOP_INSNS(10) - 5, "a counter preset to -5 wraps to 2n + 4 - 5");
    if (pmu.intel)
        TEST_EQ(rdmsr(MSR_GLOBAL_STATUS), BIT(3), "GLOBAL_STATUS: PMC3 overflowed");
    if (pmu.intel) {
        wrmsr(MSR_GLOBAL_OVF_CTRL, BIT(3));
        TEST_EQ(rdmsr(MSR_GLOBAL_STATUS), 0, "GLOBAL_OVF_CTRL clears the overflow bit");

        /* the global enable gates the counter */
        pmu_clear();
        wrmsr(MSR_GLOBAL_CTRL, 0xe);
        seq_loop(sel_msr(0), ins, 100);
        TEST_EQ(count(0), 0, "EN set but GLOBAL_CTRL bit 0 clear: PMC0 counts nothing");
        /* fixed counters, enabled by GLOBAL_CTRL */
        pmu_clear();
        wrmsr(MSR_GLOBAL_CTRL, 0);
        wrmsr(MSR_FIXED_CTR_CTRL, 0x333);
        seq_loop(MSR_GLOBAL_CTRL, 7ull << 32, 100);
        TEST_EQ(rdmsr(MSR_FIXED_CTR0), LOOP_INSNS(100), "FIXED_CTR0 (INST_RETIRED.ANY) counts the loop exactly");
        u64 cyc = rdmsr(MSR_FIXED_CTR0 + 1), ref = rdmsr(MSR_FIXED_CTR0 + 2);
        TEST_ASSERT(cyc > 0 && ref > 0, "FIXED_CTR1/2 (core/reference cycles) advance: %llu %llu",
                    (unsigned long long)cyc, (unsigned long long)ref);
        pmu_clear();
        wrmsr(MSR_GLOBAL_CTRL, 0);
        wrmsr(MSR_FIXED_CTR_CTRL, 0x1);
        seq_loop(MSR_GLOBAL_CTRL, BIT(32), 100);
        TEST_EQ(rdmsr(MSR_FIXED_CTR0), LOOP_INSNS(100), "FIXED_CTR0 with OS only, at CPL 0");
        pmu_clear();
        wrmsr(MSR_GLOBAL_CTRL, 0);
        wrmsr(MSR_FIXED_CTR_CTRL, 0x2);
        seq_loop(MSR_GLOBAL_CTRL, BIT(32), 100);
        TEST_EQ(rdmsr(MSR_FIXED_CTR0), 0, "FIXED_CTR0 with USR only counts nothing at CPL 0");
    }
    pmu_clear();
}

/* Counters 0/1: instructions/branches at CPL 3; counter 2: instructions at CPL 0. */
static void user_counts(u64 n, u64 out[3], bool fault)
{
    pmu_clear();
    wrmsr(sel_msr(0), SEL_EN | SEL_USR | pmu.ev_insns);
    wrmsr(sel_msr(1), SEL_EN | SEL_USR | pmu.ev_branches);
    wrmsr(sel_msr(2), SEL_EN | SEL_OS | pmu.ev_insns);
    if (fault)
        exc_catch(user_fault_fn, (void *)(ulong)n);
    else
        run_user_code(user_loop, n);
    wrmsr(sel_msr(2), 0);
    wrmsr(sel_msr(1), 0);
    wrmsr(sel_msr(0), 0);
    for (int k = 0; k < 3; k++)
        out[k] = count((unsigned)k);
}

/* Counters 0/1: instructions/branches at CPL 3; counter 2: instructions at CPL 0; the user
 * code makes SYSCALLs that the kernel answers with SYSRETQ. */
static void syscall_counts(char *code, u64 out[3])
{
    pmu_clear();
    wrmsr(sel_msr(0), SEL_EN | SEL_USR | pmu.ev_insns);
    wrmsr(sel_msr(1), SEL_EN | SEL_USR | pmu.ev_branches);
    wrmsr(sel_msr(2), SEL_EN | SEL_OS | pmu.ev_insns);
    run_user_code(code, 0);
    wrmsr(sel_msr(2), 0);
    wrmsr(sel_msr(1), 0);
    wrmsr(sel_msr(0), 0);
    for (int k = 0; k < 3; k++)
        out[k] = count((unsigned)k);
}

static void check_rings(void)
{
    u64 a[3], b[3];
    user_counts(10, a, false);
    user_counts(20, b, false);
    TEST_EQ(a[0], 2 * 10 + 2, "USR: the user loop's instructions and its INT 0x7f");
    TEST_EQ(b[0], 2 * 20 + 2, "USR: twice the loop, 2n + 2 again");
    TEST_EQ(a[1], 10 + 1, "USR: the loop's branches and INT n");
    TEST_EQ(b[1], 20 + 1, "USR: branches for n = 20");
    TEST_ASSERT(a[2] > 0 && a[2] == b[2], "OS: the kernel's part is the same whatever the user loop (%llu, %llu)",
                (unsigned long long)a[2], (unsigned long long)b[2]);
    /* SYSCALL counts at the caller's CPL and SYSRET at the kernel's: each instruction
     * under the privilege level it starts at */
    u64 efer = rdmsr(MSR_EFER);
    wrmsr(MSR_EFER, efer | EFER_SCE);
    wrmsr(MSR_STAR, ((u64)(SEL_UCODE32 & ~3) << 48) | ((u64)SEL_KCODE64 << 32));
    wrmsr(MSR_LSTAR, (ulong)pmu_sysret);
    wrmsr(MSR_FMASK, 0);
    syscall_counts(user_syscall1, a);
    syscall_counts(user_syscall2, b);
    wrmsr(MSR_EFER, efer);
    TEST_EQ(a[0], 2, "USR: SYSCALL and INT 0x7f");
    TEST_EQ(b[0], 3, "USR: two SYSCALLs and INT 0x7f");
    TEST_EQ(b[1], 3, "USR: SYSCALL and INT n are branches");
    TEST_EQ(b[2] - a[2], 1, "OS: one more SYSRETQ, counted at CPL 0");
    user_counts(10, a, true);
    TEST_EQ(exc_last.vector, UD_VECTOR, "the user code ended in #UD");
    if (pmu.intel)
        TEST_EQ(a[0], 2 * 10 + 1, "USR: the faulting UD2 does not retire");
    else /* AMD's PMCx0C0 counts each exception as one instruction */
        TEST_EQ(a[0], 2 * 10 + 2, "USR: the faulting UD2 does not retire, its #UD counts as one");
    if (!pmu.intel)
        TEST_EQ(a[1], 10 + 1, "USR: AMD's PMCx0C2 counts the #UD as a branch");
}

/* ---- RDPMC ---- */
static u64 rdpmc(u32 ecx)
{
    u32 lo, hi;
    asm volatile("rdpmc" : "=a"(lo), "=d"(hi) : "c"(ecx));
    return lo | ((u64)hi << 32);
}
static int rdpmc_safe(u32 ecx, u64 *v)
{
    u32 lo = 0, hi = 0;
    asm volatile(ASM_TRY("1f") "rdpmc\n1:" : "+a"(lo), "+d"(hi) : "c"(ecx) : "memory");
    *v = lo | ((u64)hi << 32);
    return exc_vector();
}
static ulong user_rdpmc(ulong ecx) { return (ulong)rdpmc((u32)ecx); }
static void rdpmc_in_user(void *arg) { *(u64 *)arg = run_user(user_rdpmc, 1, 0); }

static void check_rdpmc(void)
{
    u64 v;
    pmu_clear();
    /* (Intel's IA32_PMCx take 32 bits, sign-extended) */
    u64 val = pmu.intel ? 0xffff9abcdef0ull : 0x123456789abcull;
    wrmsr(ctr_msr(1), val);
    TEST_EQ(rdpmc(1), val, "RDPMC 1 reads counter 1 (all 48 bits)");
    TEST_EQ(rdpmc_safe(pmu.ngp, &v), GP_VECTOR, "RDPMC of a counter past the last: #GP");
    if (pmu.intel) {
        wrmsr(MSR_FIXED_CTR0 + 2, 0xabcdef012345ull);
        TEST_EQ(rdpmc(BIT(30) | 2), 0xabcdef012345ull, "RDPMC with ECX[30] reads fixed counter 2");
        TEST_EQ(rdpmc_safe(BIT(30) | 3, &v), GP_VECTOR, "RDPMC of fixed counter 3: #GP");
        TEST_EQ(rdpmc_safe(BIT(31), &v), GP_VECTOR, "RDPMC with ECX[31]: #GP");
    } else {
        TEST_EQ(rdpmc_safe(6, &v), GP_VECTOR, "RDPMC 6 (a northbridge counter, absent): #GP");
    }
    write_cr4(read_cr4() & ~BIT(8));
    u64 got = 0;
    int e = exc_catch(rdpmc_in_user, &got);
    TEST_ASSERT(e == GP_VECTOR && exc_last.error == 0, "RDPMC at CPL 3 with CR4.PCE=0: #GP(0)");
    write_cr4(read_cr4() | BIT(8));
    e = exc_catch(rdpmc_in_user, &got);
    TEST_EQ(e, NO_EXCEPTION, "RDPMC at CPL 3 with CR4.PCE=1 runs");
    TEST_EQ(got, val, "... and reads the counter");
    write_cr4(read_cr4() & ~BIT(8));
    pmu_clear();
}

/* ---- overflow interrupt ---- */
#define PMI_VECTOR 0xe0
static volatile ulong pmi_ip;
static volatile int pmi_count;
static void pmi_handler(struct exc_frame *f)
{
    pmi_ip = f->ip;
    pmi_count++;
    if (f->vector != NMI_VECTOR)
        apic_eoi();
}

/* Enables counting with a WRMSR; the counter is 3 short of wrapping: the PMI comes right
 * after the third NOP. */
extern char pmi_expected_ip[];
static NOINLINE void seq_pmi(u32 msr, u64 v)
{
    u32 lo = (u32)v, hi = (u32)(v >> 32);
    asm volatile("sti\n\t"
                 "wrmsr\n\t"
                 "nop\n\tnop\n\tnop\n"
                 "pmi_expected_ip:\n\t"
                 "nop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop\n\t"
                 "cli"
                 : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
}

static void pmi_case(const char *what, bool fixed, bool nmi)
{
    pmu_clear();
    pmi_count = 0;
    pmi_ip = 0;
    apic_write(APIC_LVT_PMC, nmi ? 0x400 : PMI_VECTOR);
    u32 msr;
    u64 v;
    if (fixed) {
        wrmsr(MSR_GLOBAL_CTRL, 0);
        wrmsr(MSR_FIXED_CTR0, CTR_MASK - 2);
        wrmsr(MSR_FIXED_CTR_CTRL, 0xb); /* OS, USR, PMI */
        msr = MSR_GLOBAL_CTRL;
        v = BIT(32);
    } else {
        wrmsr(ctr_msr(0), pmu.intel ? (u32)-3 : CTR_MASK - 2);
        msr = sel_msr(0);
        v = SEL_EN | SEL_INT | SEL_OS | SEL_USR | pmu.ev_insns;
    }
    seq_pmi(msr, v);
    if (pmu.intel) {
        wrmsr(MSR_GLOBAL_CTRL, 0);
        u64 st = rdmsr(MSR_GLOBAL_STATUS);
        TEST_EQ(st, fixed ? BIT(32) : BIT(0), "PMI: GLOBAL_STATUS shows the overflowed counter");
    }
    wrmsr(sel_msr(0), 0);
    TEST_EQ(pmi_count, 1, what);
    TEST_EQ(pmi_ip, (ulong)pmi_expected_ip, "... right after the instruction that wrapped the counter");
    u32 lvt = apic_read(APIC_LVT_PMC);
    if (pmu.intel)
        TEST_ASSERT(lvt & APIC_LVT_MASKED, "Intel: the PMI set the LVTPC mask bit");
    else
        TEST_ASSERT(!(lvt & APIC_LVT_MASKED), "AMD: the LVTPC stays unmasked");
    apic_write(APIC_LVT_PMC, APIC_LVT_MASKED);
}

static void check_pmi(void)
{
    apic_enable();
    exc_set_handler(PMI_VECTOR, pmi_handler);
    exc_set_handler(NMI_VECTOR, pmi_handler);
    pmi_case("PMI (fixed delivery) from a general-purpose counter", false, false);
    pmi_case("PMI as an NMI from a general-purpose counter", false, true);
    if (pmu.intel) {
        pmi_case("PMI (fixed delivery) from FIXED_CTR0", true, false);
        pmi_case("PMI as an NMI from FIXED_CTR0", true, true);
        /* a masked LVTPC delivers nothing, the overflow is still recorded */
        pmu_clear();
        pmi_count = 0;
        apic_write(APIC_LVT_PMC, APIC_LVT_MASKED | PMI_VECTOR);
        wrmsr(ctr_msr(0), (u32)-3);
        seq_pmi(sel_msr(0), SEL_EN | SEL_INT | SEL_OS | pmu.ev_insns);
        wrmsr(sel_msr(0), 0);
        TEST_EQ(pmi_count, 0, "masked LVTPC: no interrupt");
        TEST_EQ(rdmsr(MSR_GLOBAL_STATUS), BIT(0), "masked LVTPC: the overflow is in GLOBAL_STATUS");
        /* Freeze_PerfMon_On_PMI clears GLOBAL_CTRL when the PMI happens */
        pmu_clear();
        apic_write(APIC_LVT_PMC, PMI_VECTOR);
        wrmsr(MSR_DEBUGCTL, BIT(12));
        wrmsr(ctr_msr(0), (u32)-3);
        seq_pmi(sel_msr(0), SEL_EN | SEL_INT | SEL_OS | pmu.ev_insns);
        wrmsr(MSR_DEBUGCTL, 0);
        TEST_EQ(rdmsr(MSR_GLOBAL_CTRL), 0, "Freeze_PerfMon_On_PMI: the PMI cleared GLOBAL_CTRL");
        TEST_EQ(count(0), 0, "... so the counter stopped at 0 after wrapping");
        wrmsr(sel_msr(0), 0);
    }
    exc_set_handler(PMI_VECTOR, NULL);
    exc_set_handler(NMI_VECTOR, NULL);
    apic_write(APIC_LVT_PMC, APIC_LVT_MASKED);
    pmu_clear();
}

/* ---- cycles stop in HLT ----
 * Guest time follows the host's clock, so a loaded host stretches any stretch of guest
 * code: the HLT case gets a few tries (counting through HLT fails them all), and the busy
 * case reads the TSC outside the counting window. */
static void timer_handler(struct exc_frame *f) { (void)f; apic_eoi(); }
static void check_halt_cycles(void)
{
    pmu_clear();
    exc_set_handler(0xe1, timer_handler);
    apic_write(APIC_TDCR, 0xb); /* divide by 1 */
    apic_write(APIC_LVTT, 0xe1);
    u64 t0 = 0, t1 = 0, cyc = 0;
    for (int tries = 0; tries < 5; tries++) {
        wrmsr(ctr_msr(0), 0);
        t0 = rdtsc();
        wrmsr(sel_msr(0), SEL_EN | SEL_OS | pmu.ev_cycles);
        apic_write(APIC_TMICT, 250000); /* 10 ms at the 25 MHz bus clock */
        asm volatile("sti; hlt; cli" ::: "memory");
        wrmsr(sel_msr(0), 0);
        t1 = rdtsc();
        cyc = count(0);
        if (cyc < (t1 - t0) / 4)
            break;
    }
    TEST_ASSERT(cyc > 0 && cyc < (t1 - t0) / 4,
                "unhalted cycles leave out the HLT (%llu cycles in %llu TSC ticks)",
                (unsigned long long)cyc, (unsigned long long)(t1 - t0));
    wrmsr(ctr_msr(0), 0);
    t0 = rdtsc();
    wrmsr(sel_msr(0), SEL_EN | SEL_OS | pmu.ev_cycles);
    udelay(2000);
    wrmsr(sel_msr(0), 0);
    t1 = rdtsc();
    cyc = count(0);
    TEST_ASSERT(cyc + 2 >= 2000 * tsc_per_us() && cyc <= t1 - t0 + 2,
                "busy, cycles run at the TSC rate (%llu cycles for a 2 ms delay, %llu TSC ticks around it)",
                (unsigned long long)cyc, (unsigned long long)(t1 - t0));
    apic_write(APIC_LVTT, APIC_LVT_MASKED);
    exc_set_handler(0xe1, NULL);
    pmu_clear();
}

static void check_absent(void)
{
    u64 v;
    struct cpuid_regs a = cpuid(0xa);
    TEST_EQ(a.a | a.b | a.d, 0, "pmu=off: CPUID leaf 0AH is zero");
    if (on_qemu_tcg()) {
        test_skip("QEMU TCG ignores unknown MSRs and RDPMC indexes");
        return;
    }
    TEST_EQ(rdmsr_safe(MSR_PMC0, &v), GP_VECTOR, "pmu=off: IA32_PMC0 #GP");
    TEST_EQ(rdmsr_safe(MSR_GLOBAL_CTRL, &v), GP_VECTOR, "pmu=off: GLOBAL_CTRL #GP");
    TEST_EQ(rdpmc_safe(0, &v), GP_VECTOR, "pmu=off: RDPMC 0 #GP");
}

void test_main(void)
{
    char spec[128] = "";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    size_t len = 0;
    while (spec[len])
        len++;
    bool pmu_off = len >= 7 && !strcmp(spec + len - 7, "pmu=off");
    struct cpuid_regs v0 = cpuid(0);
    pmu.intel = v0.b == 0x756e6547; /* "Genu" */
    if (pmu.intel) {
        struct cpuid_regs a = v0.a >= 0xa ? cpuid(0xa) : (struct cpuid_regs){ 0 };
        if ((a.a & 0xff) < 2) {
            if (pmu_off)
                check_absent();
            else if (on_qemu_tcg())
                test_skip("QEMU TCG has no architectural performance monitoring");
            else
                TEST_ASSERT(false, "CPUID.0AH: architectural performance monitoring version 2");
            return;
        }
        pmu.ngp = (a.a >> 8) & 0xff;
        pmu.ev_insns = 0xc0;
        pmu.ev_branches = 0xc4;
        pmu.ev_cycles = 0x3c;
    } else {
        if (on_qemu_tcg()) {
            test_skip("QEMU TCG has no AMD performance counters");
            return;
        }
        pmu.amd_ext = cpuid(0x80000001).c & BIT(23);
        pmu.ngp = pmu.amd_ext ? 6 : 4;
        pmu.ev_insns = 0xc0;
        pmu.ev_branches = 0xc2;
        pmu.ev_cycles = 0x76;
    }
    check_cpuid();
    check_msrs();
    check_counts();
    check_rings();
    check_rdpmc();
    check_pmi();
    check_halt_cycles();
}

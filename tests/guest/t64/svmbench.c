/* Benchmark of nested SVM, the counterpart of vmxbench (bench/run.sh runs it with
 * -cpu max,vendor=AuthenticAMD; docs/PERFORMANCE.md has the figures):
 *   exit     an L2 (ASID 1, TLB_CONTROL 0) executing CPUID in a loop, the CPUID intercept
 *            exiting to L1, which moves RIP to nRIP (by the 2-byte length without NRIP
 *            save) and VMRUNs again: the cost of one L2 -> L1 -> L2 round trip. L2 counts
 *            the CPUIDs it got past, and gives up with VMMCALL after a bound: L1 checks
 *            that every round trip was a CPUID #VMEXIT and that L2 saw as many;
 *   compute  the same integer loop as vmxbench (about 10 instructions per iteration) run
 *            in L1 and in L2 on an identity nested page table (2 MiB pages): instructions
 *            per second in each, and the ratio.
 * Guest time (TSC, 2 GHz) follows the host clock. An AMD CPU names its TSC frequency in
 * no CPUID leaf (nestor's AMD model stops at leaf 0Dh, where rt's tsc_per_us() falls back
 * to 1 GHz), so the TSC rate is measured against the HPET's counter first.
 * guest: cpu=max,vendor=AuthenticAMD default=no timeout=600 */
#include "svm.h"

#define EXITS 100000
#define ITERS 20000000ul
#define INSNS_PER_ITER 10u

static struct vmcb *const v = &svm_vmcb;
static struct page_table npt;
static u64 table[256];

/* 10 instructions per iteration: mov, shl, xor, mov, shr, xor, and, add, dec, jnz */
static void __attribute__((noinline)) compute(ulong n)
{
    asm volatile("mov $0x12345, %%rax\n"
                 "1: mov %%rax, %%rdx\n"
                 "  shl $13, %%rdx\n"
                 "  xor %%rdx, %%rax\n"
                 "  mov %%rax, %%rdx\n"
                 "  shr $7, %%rdx\n"
                 "  xor %%rdx, %%rax\n"
                 "  and $0xff, %%edx\n"
                 "  add %%rax, (%1,%%rdx,8)\n"
                 "  dec %0\n"
                 "  jnz 1b\n"
                 : "+r"(n) : "r"(table) : "rax", "rdx", "memory", "cc");
}

/* L2: CPUID leaf 0 in a loop; R12 counts the CPUIDs L1 skipped over (the increment runs
 * at nRIP), and once it reaches R13 L2 stops with VMMCALL (so a CPUID that did not exit
 * ends the benchmark instead of spinning in L2 forever). The CPUID is 2 bytes long. */
SVM_L2_CODE(l2_cpuid_loop,
            "xor %r12d, %r12d\n"
            "1: xor %eax, %eax\n"
            "  xor %ecx, %ecx\n"
            ".globl l2_cpuid_insn\n"
            "l2_cpuid_insn:\n"
            "  cpuid\n"
            "  inc %r12\n"
            "  cmp %r13, %r12\n"
            "  jb 1b\n");
extern char l2_cpuid_insn[];
#define CPUID_AT PA(l2_cpuid_insn)

static void l2_compute(void)
{
    compute(ITERS);
    for (;;)
        asm volatile("vmmcall");
}

/* the identity NPT: 2 MiB user+write leaves over the low 4 GiB (the image, its stacks and
 * tables, the local APIC) */
static u64 npt_identity(void)
{
    pt_init(&npt, PT_4LEVEL);
    pt_map(&npt, 0, 0, 4ull << 30, 2 << 20, PTE_W | PTE_U);
    return npt.root;
}

/* TSC ticks per microsecond, measured over 20 ms of the HPET's main counter (the ACPI
 * HPET table's base; the period in femtoseconds is in its capabilities register), or
 * rt's tsc_per_us() without an HPET. */
static u64 tsc_rate(void)
{
    const struct acpi_header *h = acpi_find_table("HPET");
    if (!h || h->length < 56)
        return tsc_per_us();
    u64 base = *(const u64 *)((const u8 *)h + 44); /* base address: GAS at 40, address at 44 */
    volatile u64 *hpet = (volatile u64 *)(ulong)base;
    u64 period_fs = hpet[0] >> 32;
    if (!period_fs || period_fs > 100000000ull)
        return tsc_per_us();
    hpet[0x10 / 8] |= 1; /* ENABLE_CNF: the main counter runs */
    u64 ticks = 20000000000000ull / period_fs; /* 20 ms */
    u64 c0 = hpet[0xf0 / 8], c1;
    u64 t0 = rdtsc();
    do
        c1 = hpet[0xf0 / 8];
    while (c1 - c0 < ticks);
    u64 t1 = rdtsc();
    u64 fs = (c1 - c0) * period_fs;
    return ((t1 - t0) * 1000000000ull + fs / 2) / fs;
}

void test_main(void)
{
    if (!svm_supported()) {
        TEST_ASSERT(false, "SVM (CPUID 8000_0001h ECX[2]): run with -cpu max,vendor=AuthenticAMD");
        return;
    }
    if (!svm_has(SVMF_NP)) {
        TEST_ASSERT(false, "nested paging (CPUID 8000_000Ah EDX[0])");
        return;
    }
    bool nrips = svm_has(SVMF_NRIPS);
    svm_enable();
    u64 per_us = tsc_rate();
    printf("svmbench: TSC %lu MHz (measured against the HPET)\n", (ulong)per_us);

    /* ---- exit round trips ---- */
    svm_vmcb_init(v, l2_cpuid_loop);
    svm_intercept(v, I_CPUID);
    svm_gregs[13] = EXITS + 1; /* one CPUID more than L1 will skip: L2 never reaches it */
    u64 r = svm_run(v);        /* the first CPUID: not timed */
    TEST_EQF(r, VMEXIT_CPUID, "the first exit is the CPUID intercept");
    TEST_EQ(v->s.rip, CPUID_AT, "at L2's CPUID");
    if (nrips)
        TEST_EQ(v->c.nrip, CPUID_AT + 2, "nRIP: after the 2-byte CPUID");
    if (r != VMEXIT_CPUID)
        return;
    int exits = 0;
    u64 t0 = rdtsc();
    for (int k = 0; k < EXITS; k++) {
        v->s.rip = nrips ? v->c.nrip : v->s.rip + 2;
        r = svm_run(v);
        if (r != VMEXIT_CPUID)
            break;
        exits++;
    }
    u64 t1 = rdtsc();
    TEST_EQF(r, VMEXIT_CPUID, "every round trip was a CPUID #VMEXIT");
    TEST_EQ(exits, EXITS, "CPUID #VMEXITs counted by L1");
    TEST_EQ(v->s.rip, CPUID_AT, "the last exit: at L2's CPUID");
    TEST_EQ(svm_gregs[12], EXITS, "L2 got past as many CPUIDs as L1 saw exits");
    if (exits != EXITS || svm_gregs[12] != EXITS)
        return;
    u64 us = (t1 - t0) / per_us;
    printf("svmbench: exit %u round trips in %lu us: %lu ns each\n", EXITS, (ulong)us,
           (ulong)(us * 1000 / EXITS));

    /* ---- compute: L1, then L2 on the identity NPT ---- */
    t0 = rdtsc();
    compute(ITERS);
    t1 = rdtsc();
    u64 l1_us = (t1 - t0) / per_us;
    u64 ncr3 = npt_identity();
    svm_vmcb_init(v, l2_compute);
    v->c.np_enable = 1;
    v->c.ncr3 = ncr3;
    v->c.tlb_control = 1; /* a new NPT */
    t0 = rdtsc();
    r = svm_run(v);
    t1 = rdtsc();
    TEST_EQF(r, VMEXIT_VMMCALL, "the L2 loop ran to its end");
    u64 l2_us = (t1 - t0) / per_us;
    u64 insns = ITERS * INSNS_PER_ITER;
    printf("svmbench: compute L1 %lu MIPS, L2 on NPT %lu MIPS, ratio %lu%%\n",
           (ulong)(insns / (l1_us ? l1_us : 1)), (ulong)(insns / (l2_us ? l2_us : 1)),
           (ulong)(l1_us * 100 / (l2_us ? l2_us : 1)));
}

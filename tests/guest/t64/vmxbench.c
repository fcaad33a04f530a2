/* Benchmark of nested VMX (bench/run.sh runs it; docs/PERFORMANCE.md has the figures):
 *   exit     an L2 (with a VPID) executing CPUID in a loop, CPUID exiting to L1, which
 *            skips it and resumes: the cost of one L2 -> L1 -> L2 round trip;
 *   compute  the same integer loop (a xorshift and a table update, about 10 instructions
 *            per iteration) run in L1 and in L2 on an identity EPT: instructions per
 *            second in each, and the ratio.
 * Guest time (TSC, 2 GHz) follows the host clock.
 * guest: default=no timeout=600 */
#include "vmx.h"

#define EXITS 100000
#define ITERS 20000000ul
#define INSNS_PER_ITER 10u

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

static void l2_cpuid_loop(void)
{
    for (;;)
        asm volatile("cpuid" ::"a"(0), "c"(0) : "rbx", "rdx");
}

static void l2_compute(void)
{
    compute(ITERS);
    for (;;)
        asm volatile("vmcall");
}

void test_main(void)
{
    TEST_ASSERT(vmx_on(), "VMXON");
    u64 per_us = tsc_per_us();

    vmx_vmcs_setup(&vmx_region_pa[1], l2_cpuid_loop);
    vmx_set_proc2(PROC2_VPID); /* as KVM runs its guests: translations survive exits */
    vmwrite(F_VPID, 1);
    long r = vmx_run(); /* the first exit launches */
    TEST_EQ(r, R_CPUID, "CPUID exits");
    u64 t0 = rdtsc();
    for (int k = 0; k < EXITS; k++) {
        vmx_skip();
        r = vmx_run();
        if (r != R_CPUID)
            break;
    }
    u64 t1 = rdtsc();
    TEST_EQ(r, R_CPUID, "every round trip was a CPUID exit");
    u64 us = (t1 - t0) / per_us;
    printf("vmxbench: exit %u round trips in %lu us: %lu ns each\n", EXITS, (ulong)us,
           (ulong)(us * 1000 / EXITS));

    t0 = rdtsc();
    compute(ITERS);
    t1 = rdtsc();
    u64 l1_us = (t1 - t0) / per_us;
    vmx_vmcs_setup(&vmx_region_pa[1], l2_compute);
    vmx_set_proc2(PROC2_EPT | PROC2_VPID);
    vmwrite(F_VPID, 1);
    vmwrite(F_EPT_POINTER, vmx_ept_identity(4));
    t0 = rdtsc();
    r = vmx_run();
    t1 = rdtsc();
    TEST_EQ(r, R_VMCALL, "the L2 loop ran to its end");
    u64 l2_us = (t1 - t0) / per_us;
    u64 insns = ITERS * INSNS_PER_ITER;
    printf("vmxbench: compute L1 %lu MIPS, L2 on EPT %lu MIPS, ratio %lu%%\n",
           (ulong)(insns / (l1_us ? l1_us : 1)), (ulong)(insns / (l2_us ? l2_us : 1)),
           (ulong)(l1_us * 100 / (l2_us ? l2_us : 1)));
    vmxoff();
}

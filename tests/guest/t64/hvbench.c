/* Benchmark of the Hyper-V interface (-cpu max,hv-passthrough; bench/run.sh runs it,
 * docs/PERFORMANCE.md has the figures). Each operation ROUNDS times in a loop, the loop
 * timed with RDTSC, RUNS times; the least of the runs is reported, in ns through the TSC
 * frequency the guest reads from HV_X64_MSR_TSC_FREQUENCY (40000022h):
 *   spinwait  HvNotifyLongSpinWait (0008h), fast, through the hypercall page (CALL to the
 *             stub, VMCALL/VMMCALL, RET): the cheapest hypercall round trip;
 *   flush     HvFlushVirtualAddressSpace (0002h), fast (RDX address space, R8 flags, the
 *             processor mask in XMM0 by XMM fast input), this vCPU only, all address
 *             spaces: a round trip that does work (the whole TLB goes);
 *   tscpage   a read of the reference time from the reference TSC page (sequence, scale
 *             and offset, RDTSC, the 64x64->128 multiply, the sequence again);
 *   refcount  RDMSR of HV_X64_MSR_TIME_REF_COUNT (40000020h);
 *   rdtsc     a bare RDTSC, for reference (the TSC page's read holds one).
 * Guest time follows the host clock (less the time the host did not run nestor); with
 * -icount it is the instruction count.
 * guest: default=no cpu=max,hv-passthrough timeout=600 */
#include "rt.h"

#define ROUNDS 100000
#define RUNS 5

#define MSR_GUEST_OS_ID 0x40000000
#define MSR_HYPERCALL 0x40000001
#define MSR_TIME_REF_COUNT 0x40000020
#define MSR_REFERENCE_TSC 0x40000021
#define MSR_TSC_FREQUENCY 0x40000022
#define HC_FAST (1ull << 16)
#define HC_FLUSH_SPACE 0x0002
#define HC_SPIN_WAIT 0x0008
#define FLUSH_ALL_ADDRESS_SPACES 2

static u8 *hcpage;
static u64 tsc_hz;

struct tsc_page {
    volatile u32 seq, rsvd;
    volatile u64 scale;
    volatile s64 offset;
};
static struct tsc_page *tscp;

/* a 64-bit hypercall through the page: RCX control, RDX and R8 input, RAX the result */
static inline u64 hcall(u64 ctl, u64 in, u64 out)
{
    u64 r;
    register u64 r8 asm("r8") = out;
    asm volatile("call *%[page]" : "=a"(r), "+c"(ctl), "+d"(in), "+r"(r8) : [page] "r"(hcpage)
                 : "memory", "cc");
    return r;
}

static inline u64 page_time(void)
{
    u32 s;
    u64 scale, tsc;
    s64 off;
    do {
        s = tscp->seq;
        asm volatile("" ::: "memory");
        scale = tscp->scale;
        off = tscp->offset;
        tsc = rdtsc();
        asm volatile("" ::: "memory");
    } while (tscp->seq != s);
    return (u64)(((unsigned __int128)tsc * scale) >> 64) + (u64)off;
}

static volatile u64 sink;
static u64 failed_calls;

/* one run of the operation: TSC cycles for ROUNDS of it */
static u64 run_once(int what)
{
    u64 acc = 0, t0 = rdtsc();
    switch (what) {
    case 0:
        for (int i = 0; i < ROUNDS; i++)
            acc |= hcall(HC_SPIN_WAIT | HC_FAST, 0, 0);
        break;
    case 1:
        for (int i = 0; i < ROUNDS; i++)
            acc |= hcall(HC_FLUSH_SPACE | HC_FAST, 0, FLUSH_ALL_ADDRESS_SPACES);
        break;
    case 2:
        for (int i = 0; i < ROUNDS; i++)
            acc += page_time();
        break;
    case 3:
        for (int i = 0; i < ROUNDS; i++)
            acc += rdmsr(MSR_TIME_REF_COUNT);
        break;
    default:
        for (int i = 0; i < ROUNDS; i++)
            acc += rdtsc();
        break;
    }
    u64 t = rdtsc() - t0;
    if (what < 2 && acc)
        failed_calls++;
    sink = acc;
    return t;
}

static void bench(int what, const char *name)
{
    u64 least = ~0ull;
    for (int r = 0; r < RUNS; r++) {
        u64 t = run_once(what);
        if (t < least)
            least = t;
    }
    /* tenths of a ns per operation, and the run's length in us */
    u64 tenths = least * 10000000000ull / tsc_hz / ROUNDS;
    printf("hvbench: %s %u in %llu us: %llu.%llu ns each (least of %u runs)\n", name, ROUNDS,
           (unsigned long long)(least * 1000000ull / tsc_hz), (unsigned long long)(tenths / 10),
           (unsigned long long)(tenths % 10), RUNS);
}

void test_main(void)
{
    struct cpuid_regs id = cpuid(0x40000000);
    if (id.b != 0x7263694d || id.c != 0x666f736f || id.d != 0x76482074) {
        test_skip("no Hyper-V interface (run with -cpu max,hv-passthrough)");
        return;
    }
    tsc_hz = rdmsr(MSR_TSC_FREQUENCY);
    TEST_ASSERT(tsc_hz >= 1000000, "TSC frequency %llu Hz", (unsigned long long)tsc_hz);
    if (tsc_hz < 1000000)
        return;
    hcpage = page_alloc();
    wrmsr(MSR_GUEST_OS_ID, 0x8f00ull << 48);
    wrmsr(MSR_HYPERCALL, (u64)hcpage | 1);
    /* XMM fast input: the processor mask (the third input word) is XMM0's low half: this
     * vCPU (VP 0) */
    u64 mask = 1;
    asm volatile("movq %0, %%xmm0" ::"r"(mask));
    TEST_EQ(hcall(HC_FLUSH_SPACE | HC_FAST, 0, FLUSH_ALL_ADDRESS_SPACES), 0, "flush: success");
    tscp = page_alloc();
    wrmsr(MSR_REFERENCE_TSC, (u64)tscp | 1);
    TEST_ASSERT(tscp->seq != 0, "the reference TSC page is valid");
    u64 a = page_time(), b = rdmsr(MSR_TIME_REF_COUNT), c = page_time();
    TEST_ASSERT(a <= b + 1 && b <= c + 1, "the page and TIME_REF_COUNT agree: %llu %llu %llu",
                (unsigned long long)a, (unsigned long long)b, (unsigned long long)c);

    bench(0, "spinwait");
    bench(1, "flush");
    bench(2, "tscpage");
    bench(3, "refcount");
    bench(4, "rdtsc");
    TEST_EQ(failed_calls, 0, "every hypercall succeeded");
}

/* Cross-modifying code (SDM 8.1.3): one CPU writes code, signals through a flag in
 * memory, and the other executes a serializing instruction (CPUID) and then the new code.
 * Both directions, with plain stores and with REP MOVSB; the executing CPU has run (and
 * so decoded) the old code every round. Finally CPU 0 spins (CPUID, call) on a function
 * until CPU 1 rewrites it at a moment CPU 0 does not know: it must see the change.
 * guest: smp=2 */
#include "rt.h"

#define ROUNDS 300

static u8 code[2][4096] ALIGNED(4096); /* code[0]: BSP runs it, code[1]: the AP runs it */
static volatile u32 posted, taken;     /* round numbers: writer -> executor, executor -> writer */
static volatile u32 ap_seen[ROUNDS + 1];
static volatile int ap_done, spin_patch;


static void copy_mov_ret(u8 *dst, u32 v)
{
    u8 fn[6];
    emit_mov_ret(fn, v);
    void *d = dst, *s = fn;
    ulong n = sizeof(fn);
    asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
}

static u32 value(u32 r, u32 who) { return r * 0x9e3779b1u ^ who; }

static ulong run(u8 *p)
{
    asm volatile("" ::: "memory");
    return ((ulong(*)(ulong))p)(0);
}

static void serialize(void) { cpuid(0); }

static void wait_for(volatile u32 *flag, u32 v)
{
    u64 end = rdtsc() + 2000000 * tsc_per_us();
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != v && (s64)(rdtsc() - end) < 0)
        pause();
}

static void ap_main(int index)
{
    (void)index;
    /* AP writes code[0] for the BSP */
    for (u32 r = 1; r <= ROUNDS; r++) {
        wait_for(&taken, r - 1);
        if (r % 2)
            emit_mov_ret(code[0], value(r, 0));
        else
            copy_mov_ret(code[0], value(r, 0));
        __atomic_store_n(&posted, r, __ATOMIC_RELEASE);
    }
    /* the BSP writes code[1] for the AP */
    run(code[1]);
    for (u32 r = 1; r <= ROUNDS; r++) {
        wait_for(&posted, ROUNDS + r);
        serialize();
        ap_seen[r] = (u32)run(code[1]);
        __atomic_store_n(&taken, ROUNDS + r, __ATOMIC_RELEASE);
    }
    /* rewrite code[0] while the BSP keeps calling it */
    while (!spin_patch)
        pause();
    udelay(2000);
    emit_mov_ret(code[0], 0x5708);
    ap_done = 1;
}

void test_main(void)
{
    emit_mov_ret(code[0], 0);
    emit_mov_ret(code[1], 0);
    run(code[0]);
    int up = smp_start(ap_main, 1, 2000000);
    TEST_EQ(up, 1, "the AP started");
    if (up != 1)
        return;

    int bad = -1;
    ulong got = 0;
    for (u32 r = 1; r <= ROUNDS; r++) {
        wait_for(&posted, r);
        serialize();
        got = run(code[0]);
        if (got != value(r, 0) && bad < 0)
            bad = (int)r;
        __atomic_store_n(&taken, r, __ATOMIC_RELEASE);
    }
    TEST_ASSERT(bad < 0, "CPU 0 runs the code CPU 1 wrote, %d rounds (stores, REP MOVSB): round %d got %#lx",
                ROUNDS, bad, got);

    bad = -1;
    for (u32 r = 1; r <= ROUNDS; r++) {
        wait_for(&taken, ROUNDS + r - 1);
        if (r % 2)
            emit_mov_ret(code[1], value(r, 1));
        else
            copy_mov_ret(code[1], value(r, 1));
        __atomic_store_n(&posted, ROUNDS + r, __ATOMIC_RELEASE);
    }
    wait_for(&taken, 2 * ROUNDS);
    for (u32 r = 1; r <= ROUNDS; r++)
        if (ap_seen[r] != value(r, 1) && bad < 0)
            bad = (int)r;
    TEST_ASSERT(bad < 0, "CPU 1 runs the code CPU 0 wrote, %d rounds: round %d got %#x", ROUNDS, bad,
                bad > 0 ? ap_seen[bad] : 0);

    emit_mov_ret(code[0], 0);
    spin_patch = 1;
    u64 end = rdtsc() + 1000000 * tsc_per_us();
    unsigned long calls = 0;
    /* CPUID each time: the SDM guarantees cross-modified code only after the executing
     * CPU serializes (8.1.3) */
    while ((got = run(code[0])) == 0 && (s64)(rdtsc() - end) < 0) {
        serialize();
        calls++;
    }
    TEST_ASSERT(got == 0x5708, "CPU 0 calling a function in a loop sees CPU 1's rewrite (got %#lx after %lu calls)",
                got, calls);
    TEST_ASSERT(calls > 0, "... and ran the old code before it (%lu calls)", calls);
    while (!ap_done)
        pause();
}

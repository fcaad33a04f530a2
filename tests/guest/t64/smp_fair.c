/* Spin-wait handshakes between two vCPUs cost each side a few iterations of its wait
 * loop, not a time slice: a vCPU spinning in a PAUSE loop gives way to the vCPU it waits
 * for, and a vCPU that receives an interrupt runs soon. Each part does ROUNDS round trips
 * and counts the PAUSE-loop iterations the waiting sides spent:
 *   flag     a shared counter advanced in turn, both sides waiting in PAUSE loops;
 *   ipi      a fixed IPI answered by one, the BSP waiting in a PAUSE loop with IF=1;
 *   nmi      an NMI IPI whose handler raises a flag the BSP waits for;
 *   lock     a turn variable written under a spinlock, each side waiting for its turn
 *            in a PAUSE loop;
 *   ipi-hlt  IPIs answered by IPIs, both sides waiting in HLT: must simply complete
 *            (both vCPUs halted with an interrupt pending is not "idle").
 * The -icount run also bounds the guest time per round trip, deterministically.
 * A scheduler that lets a spinning vCPU run out its slice needs thousands of iterations
 * per wait. On QEMU TCG the vCPUs are host threads whose timing depends on the host: the
 * bounds are not checked there.
 * guest: smp=2 name=smp_fair */
/* guest: smp=2 icount=yes name=smp_fair-icount */
#include "rt.h"

#define ROUNDS 500
/* PAUSE-loop iterations per round trip, on average: where both sides spin, each gives
 * way after a short PAUSE loop (nestor: 16 PAUSEs); where an interrupt answers, the
 * receiver runs right after the message and the sender hardly spins at all. */
#define MAX_SPINS_BOTH 64
#define MAX_SPINS_MESSAGE 8
#define MAX_ICOUNT_NS 2000    /* -icount: guest ns per round trip */
#define BSP_VECTOR 0x50
#define AP_VECTOR 0x51

enum { PART_FLAG = 1, PART_IPI, PART_NMI, PART_LOCK, PART_HLT, PART_DONE };

static volatile int part, ap_ready;
static volatile u32 flag, bsp_id, ap_id;
static volatile int bsp_got, nmi_flag;
static volatile u64 ap_spins;
static spinlock_t lock;
static volatile u32 turn;

static void bsp_handler(struct exc_frame *f)
{
    (void)f;
    bsp_got++;
    apic_eoi();
}

static void ap_handler(struct exc_frame *f)
{
    (void)f;
    apic_eoi();
    apic_icr(bsp_id, BSP_VECTOR);
}

static void nmi_handler(struct exc_frame *f)
{
    (void)f;
    nmi_flag++;
}

static void ap_main(int index)
{
    (void)index;
    ap_id = apic_id();
    ap_ready = 1;
    while (part != PART_FLAG)
        pause();
    for (u32 i = 0; i < ROUNDS; i++) {
        while (flag != 2 * i + 1) {
            pause();
            ap_spins++;
        }
        flag = 2 * i + 2;
    }
    while (part != PART_LOCK)
        asm volatile("sti; pause; cli"); /* answers IPIs meanwhile */
    for (u32 i = 0; i < ROUNDS; i++) {
        while (turn != 2 * i + 1) {
            pause();
            ap_spins++;
        }
        spin_lock(&lock);
        turn = 2 * i + 2;
        spin_unlock(&lock);
    }
    while (part != PART_DONE)
        asm volatile("sti; hlt; cli"); /* answers IPIs meanwhile */
}

static u64 per_round_ns(u64 ticks) { return ticks * 1000 / tsc_per_us() / ROUNDS; }

static void check(const char *what, u64 spins, u64 ticks, u64 max_spins)
{
    u64 avg = spins / ROUNDS, ns = per_round_ns(ticks);
    printf("%s: %d round trips, %llu PAUSE-loop iterations and %llu ns per round trip\n",
           what, ROUNDS, (unsigned long long)avg, (unsigned long long)ns);
    if (on_qemu_tcg()) {
        test_skip("%s: bounds not checked on QEMU TCG (host threads)", what);
        return;
    }
    TEST_ASSERT(avg <= max_spins, "%s: at most %llu PAUSE-loop iterations per round trip (%llu)",
                what, (unsigned long long)max_spins, (unsigned long long)avg);
    char mode[8];
    if (rt_cmdline_value("icount", mode, sizeof(mode)))
        TEST_ASSERT(ns <= MAX_ICOUNT_NS, "%s: -icount: at most %d ns per round trip (%llu)",
                    what, MAX_ICOUNT_NS, (unsigned long long)ns);
}

void test_main(void)
{
    exc_set_handler(BSP_VECTOR, bsp_handler);
    exc_set_handler(AP_VECTOR, ap_handler);
    exc_set_handler(NMI_VECTOR, nmi_handler);
    /* no IST: the AP has no TSS stacks of its own */
    idt_set_gate(NMI_VECTOR, SEL_KCODE, (ulong)idt_stub_table[NMI_VECTOR], 0xe, 0, 0);
    bsp_id = apic_id();
    if (smp_start(ap_main, 1, 2000000) != 1) {
        TEST_ASSERT(false, "the AP started");
        return;
    }
    while (!ap_ready)
        pause();

    u64 spins = 0, t0 = rdtsc();
    part = PART_FLAG;
    for (u32 i = 0; i < ROUNDS; i++) {
        flag = 2 * i + 1;
        while (flag != 2 * i + 2) {
            pause();
            spins++;
        }
    }
    u64 t = rdtsc() - t0;
    check("flag", spins + ap_spins, t, MAX_SPINS_BOTH);
    part = PART_IPI;

    spins = 0;
    t0 = rdtsc();
    for (int i = 0; i < ROUNDS; i++) {
        int got = bsp_got;
        apic_icr(ap_id, AP_VECTOR);
        sti();
        while (bsp_got == got) {
            pause();
            spins++;
        }
        cli();
    }
    check("ipi", spins, rdtsc() - t0, MAX_SPINS_MESSAGE);
    part = PART_NMI;

    spins = 0;
    t0 = rdtsc();
    for (int i = 0; i < ROUNDS; i++) {
        apic_icr(ap_id, APIC_ICR_NMI);
        while (nmi_flag == 0) {
            pause();
            spins++;
        }
        nmi_flag = 0;
    }
    check("nmi", spins, rdtsc() - t0, MAX_SPINS_MESSAGE);

    spins = 0;
    ap_spins = 0;
    t0 = rdtsc();
    part = PART_LOCK;
    for (u32 i = 0; i < ROUNDS; i++) {
        spin_lock(&lock);
        turn = 2 * i + 1;
        spin_unlock(&lock);
        while (turn != 2 * i + 2) {
            pause();
            spins++;
        }
    }
    check("lock", spins + ap_spins, rdtsc() - t0, MAX_SPINS_BOTH);

    part = PART_HLT;
    t0 = rdtsc();
    int start = bsp_got;
    for (int i = 0; i < ROUNDS; i++) {
        int got = bsp_got;
        apic_icr(ap_id, AP_VECTOR);
        while (bsp_got == got)
            asm volatile("sti; hlt; cli");
    }
    TEST_EQ(bsp_got - start, ROUNDS, "ipi-hlt: every IPI answered");
    check("ipi-hlt", 0, rdtsc() - t0, 0);
    part = PART_DONE;
}

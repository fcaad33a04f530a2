/* Benchmark of handshakes between two vCPUs (bench/run.sh runs it; docs/PERFORMANCE.md
 * has the figures): ROUNDS round trips each of
 *   ipi-hlt    the BSP sends a fixed IPI, the AP's handler answers with one, the BSP
 *              waits for the answer in HLT (and the AP for the next one);
 *   ipi-pause  the same, the BSP waiting in a PAUSE loop with interrupts enabled;
 *   flag-pause no interrupts: a shared counter that each side advances in turn, the
 *              other waiting in a PAUSE loop.
 * Prints the guest time (TSC) per round trip and the round trips per second. With
 * -icount the guest time is the instruction count, so the figures repeat exactly.
 * guest: default=no smp=2 timeout=600 */
#include "rt.h"

#define ROUNDS 5000
#define BSP_VECTOR 0x50
#define AP_VECTOR 0x51

static volatile int bsp_got;
static volatile u32 bsp_id, ap_id;
static volatile u32 flag;
static volatile int ap_mode; /* 0: HLT loop (answers IPIs), 1: flag handshake, 2: done */

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

static void ap_main(int index)
{
    (void)index;
    ap_id = apic_id();
    while (ap_mode == 0)
        asm volatile("sti; hlt; cli");
    for (u32 i = 0; i < ROUNDS; i++) {
        while (flag != 2 * i + 1)
            pause();
        flag = 2 * i + 2;
    }
}

static void report_rounds(const char *what, u64 ticks)
{
    u64 ns = ticks * 1000 / tsc_per_us();
    u64 per = ns / ROUNDS;
    printf("ipibench: %-10s %d round trips in %llu us: %llu ns per round trip, %llu per second\n",
           what, ROUNDS, (unsigned long long)(ns / 1000), (unsigned long long)per,
           (unsigned long long)(ns ? (u64)ROUNDS * 1000000000ull / ns : 0));
}

void test_main(void)
{
    exc_set_handler(BSP_VECTOR, bsp_handler);
    exc_set_handler(AP_VECTOR, ap_handler);
    bsp_id = apic_id();
    if (smp_start(ap_main, 1, 2000000) != 1)
        panic("the AP did not start");
    while (!ap_id)
        pause();
    udelay(1000); /* the AP reaches its HLT loop */

    u64 t0 = rdtsc();
    for (int i = 0; i < ROUNDS; i++) {
        int got = bsp_got;
        apic_icr(ap_id, AP_VECTOR);
        while (bsp_got == got)
            asm volatile("sti; hlt; cli");
    }
    report_rounds("ipi-hlt", rdtsc() - t0);

    t0 = rdtsc();
    for (int i = 0; i < ROUNDS; i++) {
        int got = bsp_got;
        apic_icr(ap_id, AP_VECTOR);
        sti();
        while (bsp_got == got)
            pause();
        cli();
    }
    report_rounds("ipi-pause", rdtsc() - t0);

    ap_mode = 1;
    int got = bsp_got;
    apic_icr(ap_id, AP_VECTOR); /* out of its HLT loop */
    sti();
    while (bsp_got == got)
        pause();
    cli();
    t0 = rdtsc();
    for (u32 i = 0; i < ROUNDS; i++) {
        flag = 2 * i + 1;
        while (flag != 2 * i + 2)
            pause();
    }
    report_rounds("flag-pause", rdtsc() - t0);
    TEST_EQ(bsp_got, 2 * ROUNDS + 1, "every IPI answered once");
}

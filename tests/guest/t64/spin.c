/* A guest for the control-plane tests (tests/qmp): it counts in a loop, reporting
 * "spin N" every 2^22 iterations, until the ACPI power button is pressed
 * (PM1_STS.PWRBTN_STS, which it polls); then it says so and powers off through ACPI S5.
 * It first fills 24 MiB with pseudo-random bytes, so that a migration has RAM to send.
 * Not run by the guest-test runner.
 * guest: default=no */
#include "rt.h"

#define PM1_STS 0x600
#define PM1_CNT 0x604
#define STS_PWRBTN (1u << 8)
#define CNT_SLP_EN (1u << 13)
#define S5_SLP_TYP 0

volatile u64 spin_counter;
/* memory with contents that do not compress, for migrations to take a while */
#define NOISE_BYTES (24u << 20)
static volatile u64 noise[NOISE_BYTES / 8];

void test_main(void)
{
    u64 x = 0x9e3779b97f4a7c15ull;
    for (u32 i = 0; i < NOISE_BYTES / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise[i] = x;
    }
    printf("spin: started\n");
    for (u64 n = 1;; n++) {
        spin_counter = n;
        if (!(n & ((1u << 22) - 1)))
            printf("spin %llu\n", (unsigned long long)(n >> 22));
        if (!(n & 0xfff) && (inw(PM1_STS) & STS_PWRBTN)) {
            outw(PM1_STS, STS_PWRBTN); /* write 1 to clear */
            printf("spin: power button\n");
            outw(PM1_CNT, (u16)(S5_SLP_TYP << 10 | CNT_SLP_EN));
            panic("still running after S5");
        }
    }
}

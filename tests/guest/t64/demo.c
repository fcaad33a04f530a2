/* The demo guest `make run` boots: a banner, what CPU and memory the guest sees, and a
 * small computation, then a clean exit through the debug-exit port. */
#include "rt.h"

static void cpu_strings(char vendor[13], char brand[49])
{
    struct cpuid_regs r = cpuid(0);
    memcpy(vendor, &r.b, 4);
    memcpy(vendor + 4, &r.d, 4);
    memcpy(vendor + 8, &r.c, 4);
    vendor[12] = 0;
    brand[0] = 0;
    if (cpuid(0x80000000).a >= 0x80000004) {
        for (u32 i = 0; i < 3; i++) {
            r = cpuid(0x80000002 + i);
            memcpy(brand + 16 * i, &r, 16);
        }
        brand[48] = 0;
    }
}

/* Primes below 100000 by a sieve: 9592 of them, the largest 99991. */
static u8 sieve[100000];

void test_main(void)
{
    char vendor[13], brand[49];
    cpu_strings(vendor, brand);
    struct cpuid_regs sig = cpuid(1);
    u32 family = (sig.a >> 8) & 0xf, model = (sig.a >> 4) & 0xf;
    if (family == 0xf)
        family += (sig.a >> 20) & 0xff;
    if (family == 6 || family >= 0xf)
        model |= ((sig.a >> 16) & 0xf) << 4;

    printf("\n");
    printf("  +------------------------------------------+\n");
    printf("  |  Hello from a nestor guest!              |\n");
    printf("  |  64-bit long mode, %d-level paging        |\n", (int)rt_paging_levels);
    printf("  +------------------------------------------+\n\n");
    printf("CPU vendor : %s\n", vendor);
    printf("CPU model  : %s\n", brand[0] ? brand : "(no brand string)");
    printf("family %u, model %u, stepping %u\n", family, model, sig.a & 0xf);
    u64 ram = fwcfg_ram_size();
    if (ram)
        printf("Memory     : %llu MiB (from fw_cfg)\n", (unsigned long long)(ram >> 20));
    else
        printf("Memory     : unknown (no fw_cfg)\n");

    unsigned count = 0, largest = 0;
    for (unsigned i = 2; i < sizeof(sieve); i++) {
        if (sieve[i])
            continue;
        count++;
        largest = i;
        for (unsigned j = i * 2; j < sizeof(sieve); j += i)
            sieve[j] = 1;
    }
    printf("Primes below 100000: %u, the largest %u (%s)\n", count, largest,
           count == 9592 && largest == 99991 ? "correct" : "WRONG");
    printf("Goodbye.\n");
    guest_exit(count == 9592 && largest == 99991 ? 0 : 1);
}

/* Local APIC access (xAPIC MMIO or x2APIC MSRs), TSC delays and AP start-up. */
#include "rt.h"

bool apic_x2;

static void spurious(struct exc_frame *f) { (void)f; }

u32 apic_read(u32 reg)
{
    if (apic_x2)
        return (u32)rdmsr(0x800 + (reg >> 4));
    return *(volatile u32 *)(ulong)(APIC_DEFAULT_BASE + reg);
}

void apic_write(u32 reg, u32 v)
{
    if (apic_x2)
        wrmsr(0x800 + (reg >> 4), v);
    else
        *(volatile u32 *)(ulong)(APIC_DEFAULT_BASE + reg) = v;
}

void apic_icr(u32 dest, u32 lo)
{
    if (apic_x2) {
        wrmsr(0x830, ((u64)dest << 32) | lo);
        return;
    }
    apic_write(APIC_ICR2, dest << 24);
    apic_write(APIC_ICR, lo);
    for (int i = 0; i < 1000000 && (apic_read(APIC_ICR) & APIC_ICR_BUSY); i++)
        pause();
}

u32 apic_id(void)
{
    u32 id = apic_read(APIC_ID);
    return apic_x2 ? id : id >> 24;
}

void apic_eoi(void) { apic_write(APIC_EOI, 0); }

void apic_enable(void)
{
    u64 base = rdmsr(MSR_APIC_BASE);
    if (!(base & BIT(11)))
        wrmsr(MSR_APIC_BASE, base | BIT(11));
    exc_set_handler(0xff, spurious);
    apic_write(APIC_SVR, 0x1ff);
}

bool apic_enable_x2(void)
{
    if (!HAS_X2APIC())
        return false;
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | BIT(11) | BIT(10));
    apic_x2 = true;
    apic_write(APIC_SVR, 0x1ff);
    return true;
}

void apic_disable_x2(void)
{
    /* x2APIC -> xAPIC is only allowed through the disabled state (SDM 10.12.5) */
    u64 base = rdmsr(MSR_APIC_BASE) & ~(BIT(10) | BIT(11));
    wrmsr(MSR_APIC_BASE, base);
    wrmsr(MSR_APIC_BASE, base | BIT(11));
    apic_x2 = false;
    apic_write(APIC_SVR, 0x1ff);
}

/* ---------------------------------------------------------------- time */
u64 tsc_per_us(void)
{
    static u64 cached;
    if (cached)
        return cached;
    u32 hv_max = cpu_has(1, 0, 2, 31) ? cpuid(0x40000000).a : 0;
    if (hv_max >= 0x40000010 && hv_max < 0x40010000 && cpuid(0x40000010).a)
        cached = cpuid(0x40000010).a / 1000;
    if (!cached && cpuid(0).a >= 0x15) {
        struct cpuid_regs r = cpuid(0x15);
        if (r.a && r.b && r.c)
            cached = udiv64(udiv64((u64)r.c * r.b, r.a, NULL), 1000000, NULL);
    }
    if (!cached && cpuid(0).a >= 0x16)
        cached = cpuid(0x16).a & 0xffff;
    if (!cached)
        cached = 1000;
    return cached;
}

void udelay(u64 us)
{
    u64 end = rdtsc() + us * tsc_per_us();
    while ((s64)(rdtsc() - end) < 0)
        pause();
}

/* ---------------------------------------------------------------- SMP */
#define AP_TRAMPOLINE 0x8000
u8 ap_stacks[MAX_CPUS][8192] ALIGNED(16); /* entry.S: AP_STACK_SHIFT */
volatile int smp_cpus_up;
static void (*volatile ap_main_fn)(int);
extern u8 ap_trampoline_start[], ap_trampoline_end[];
void smp_ap_init_cpu(void);
void ap_start_c(int index);

void ap_start_c(int index)
{
    smp_ap_init_cpu();
    apic_enable();
    __atomic_fetch_add(&smp_cpus_up, 1, __ATOMIC_SEQ_CST);
    ap_main_fn(index);
    for (;;)
        asm volatile("cli; hlt");
}

int smp_start(void (*ap_main)(int index), int expected_aps, u64 timeout_us)
{
    ap_main_fn = ap_main;
    memcpy((void *)AP_TRAMPOLINE, ap_trampoline_start,
           (size_t)(ap_trampoline_end - ap_trampoline_start));
    apic_enable();
    apic_icr(0, APIC_DEST_OTHERS | APIC_ICR_LEVEL | APIC_ICR_ASSERT | APIC_ICR_INIT);
    udelay(10000);
    for (int i = 0; i < 2; i++) {
        apic_icr(0, APIC_DEST_OTHERS | APIC_ICR_STARTUP | (AP_TRAMPOLINE >> 12));
        udelay(200);
    }
    u64 end = rdtsc() + timeout_us * tsc_per_us();
    while (smp_cpus_up < expected_aps && (s64)(rdtsc() - end) < 0)
        pause();
    return smp_cpus_up;
}

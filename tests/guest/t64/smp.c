/* SMP bring-up: INIT-SIPI-SIPI starts the APs through a real-mode trampoline; each AP
 * reaches long mode, reports its APIC ID and state, then sleeps in HLT until the BSP
 * wakes it with a fixed IPI; it answers each IPI, and finally all APs contend on a lock.
 * guest: smp=4 */
#include "rt.h"

#define NAPS 3
#define IPI_VECTOR 0x50
#define ROUNDS 3
#define LOCK_ITERS 10000

static volatile u32 ap_apic_id[MAX_CPUS];
static volatile ulong ap_cr0[MAX_CPUS], ap_cr4[MAX_CPUS];
static volatile u64 ap_efer[MAX_CPUS];
static volatile int ipi_count[MAX_CPUS];
static volatile int ap_index_of_apic[256];
static volatile int go_lock_test, lock_done;
static spinlock_t counter_lock;
static volatile u64 shared_counter;

static void ipi_handler(struct exc_frame *f)
{
    (void)f;
    int idx = ap_index_of_apic[apic_id() & 0xff];
    __atomic_fetch_add(&ipi_count[idx], 1, __ATOMIC_SEQ_CST);
    apic_eoi();
}

static void ap_main(int index)
{
    ap_apic_id[index] = apic_id();
    ap_index_of_apic[apic_id() & 0xff] = index;
    ap_cr0[index] = read_cr0();
    ap_cr4[index] = read_cr4();
    ap_efer[index] = rdmsr(MSR_EFER);
    printf("AP %d: APIC ID %u, in long mode, reporting in\n", index, apic_id());
    /* sleep until IPIs arrive; the BSP decides when we are done */
    sti();
    while (!go_lock_test)
        asm volatile("hlt");
    cli();
    for (int i = 0; i < LOCK_ITERS; i++) {
        spin_lock(&counter_lock);
        shared_counter++;
        spin_unlock(&counter_lock);
    }
    __atomic_fetch_add(&lock_done, 1, __ATOMIC_SEQ_CST);
}

void test_main(void)
{
    exc_set_handler(IPI_VECTOR, ipi_handler);
    u32 bsp = apic_id();
    ap_index_of_apic[bsp & 0xff] = 0;
    int up = smp_start(ap_main, NAPS, 2000000);
    TEST_EQ(up, NAPS, "all APs reported in after INIT-SIPI-SIPI");
    udelay(10000); /* let them reach HLT */
    bool unique = true;
    for (int i = 1; i <= up; i++) {
        unique &= ap_apic_id[i] != bsp;
        for (int j = 1; j < i; j++)
            unique &= ap_apic_id[i] != ap_apic_id[j];
        TEST_ASSERT((ap_cr0[i] & (CR0_PG | CR0_PE)) == (CR0_PG | CR0_PE) &&
                        (ap_cr4[i] & CR4_PAE) && (ap_efer[i] & EFER_LMA),
                    "AP %d: paging, PAE and EFER.LMA set (cr0 %#lx cr4 %#lx efer %#llx)", i,
                    (ulong)ap_cr0[i], (ulong)ap_cr4[i], (unsigned long long)ap_efer[i]);
    }
    TEST_ASSERT(unique, "APIC IDs are unique");
    TEST_ASSERT(rdmsr(MSR_APIC_BASE) & BIT(8), "BSP flag set on the BSP");

    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 1; i <= up; i++)
            apic_icr(ap_apic_id[i], IPI_VECTOR);
        u64 end = rdtsc() + 1000000 * tsc_per_us();
        bool all;
        do {
            all = true;
            for (int i = 1; i <= up; i++)
                all &= ipi_count[i] >= r + 1;
        } while (!all && (s64)(rdtsc() - end) < 0);
        TEST_ASSERT(all, "IPI round %d: every AP woke from HLT and handled the IPI", r + 1);
    }
    for (int i = 1; i <= up; i++)
        TEST_EQ(ipi_count[i], ROUNDS, "AP handled exactly one interrupt per IPI");

    go_lock_test = 1;
    for (int i = 1; i <= up; i++) /* wake them: they are in HLT */
        apic_icr(ap_apic_id[i], IPI_VECTOR);
    for (int i = 0; i < LOCK_ITERS; i++) {
        spin_lock(&counter_lock);
        shared_counter++;
        spin_unlock(&counter_lock);
    }
    u64 end = rdtsc() + 5000000 * tsc_per_us();
    while (lock_done < up && (s64)(rdtsc() - end) < 0)
        pause();
    TEST_EQ(lock_done, up, "all APs finished the lock test");
    TEST_EQ(shared_counter, (u64)(up + 1) * LOCK_ITERS, "lock-protected counter: no lost updates");
}

/* -cpu phys-bits=N: the guest's MAXPHYADDR. CPUID 80000008h:EAX[7:0] reports N (40
 * without the option), and every check of physical-address bits follows it: address
 * bits N..51 of paging entries at every level are reserved (#PF with RSVD), bit N-1 is
 * not; MOV CR3 with a bit at or above N is #GP; so are MTRR PHYSBASE/PHYSMASK and
 * IA32_APIC_BASE values with such bits.
 * QEMU TCG does not check IA32_APIC_BASE against MAXPHYADDR: that check is skipped there.
 * guest: cpu=max name=physbits */
/* guest: cpu=max,phys-bits=36 name=physbits-36 */
/* guest: cpu=max,phys-bits=46 name=physbits-46 */
/* guest: cpu=max,phys-bits=52 name=physbits-52 */
#include "rt.h"

#define TVA 0x8000000000ull /* PML4 slot 1: the test's mappings */
#define MSR_MTRR_PHYSBASE0 0x200
#define MSR_MTRR_PHYSMASK0 0x201

static struct page_table pt;
static u8 *frame;
static unsigned maxphy;

static unsigned parse_bits(const char *spec)
{
    static const char key[] = "phys-bits=";
    for (const char *s = spec; *s; s++) {
        if (strncmp(s, key, sizeof(key) - 1) == 0) {
            unsigned n = 0;
            for (s += sizeof(key) - 1; *s >= '0' && *s <= '9'; s++)
                n = n * 10 + (unsigned)(*s - '0');
            return n;
        }
    }
    return 40; /* nestor's and QEMU TCG's default */
}

static void expect_rsvd(u64 va, const char *what)
{
    invlpg(va);
    int v = try_read(va, NULL);
    u64 pfec = PFEC_P | PFEC_RSVD;
    if (on_qemu_tcg()) /* QEMU TCG reports RSVD without P (see t64/paging) */
        pfec &= ~PFEC_P;
    TEST_ASSERT(v == PF_VECTOR && exc_last.error == pfec && exc_last.cr2 == va,
                "%s: vector %d pfec %#lx (want #PF %#llx)", what, v, (ulong)exc_last.error,
                (unsigned long long)pfec);
}

/* Sets bit in the entry of va at level (1 = PTE) and expects a reserved-bit fault. */
static void reserved_at(u64 va, int level, unsigned bit)
{
    u64 *e = pt_entry(&pt, va, level);
    u64 old = *e;
    *e = old | BIT(bit);
    char what[64];
    snprintf(what, sizeof(what), "bit %u in a level-%d entry", bit, level);
    expect_rsvd(va, what);
    *e = old;
    invlpg(va);
}

static void check_paging(void)
{
    pt_init(&pt, PT_4LEVEL);
    pt_map_identity(&pt, PTE_W);
    pt_map(&pt, TVA, (ulong)frame, 4096, 4096, PTE_W);
    pt_map(&pt, TVA + (2u << 20), 0, 2u << 20, 2u << 20, PTE_W); /* a 2M page */
    pt_activate(&pt, 0);
    *(volatile u64 *)frame = 0x5a5a;
    u64 v = 0;
    TEST_ASSERT(try_read(TVA, &v) == NO_EXCEPTION && v == 0x5a5a, "the test page is mapped");
    if (maxphy < 52) {
        for (int level = 1; level <= 4; level++)
            reserved_at(TVA, level, maxphy);
        reserved_at(TVA, 1, 51);
        reserved_at(TVA + (2u << 20), 2, maxphy);
    }
    /* bit MAXPHYADDR-1 of a leaf is an address bit: no fault, whatever is there */
    u64 *pte = pt_entry(&pt, TVA, 1);
    u64 old = *pte;
    *pte = old | BIT(maxphy - 1);
    invlpg(TVA);
    TEST_EQ(try_read(TVA, NULL), NO_EXCEPTION, "PTE address bit MAXPHYADDR-1 is not reserved");
    *pte = old;
    invlpg(TVA);
}

static void check_cr3(void)
{
    ulong cr3 = read_cr3();
    if (maxphy < 52) {
        asm volatile(ASM_TRY("1f") "mov %0, %%cr3\n1:" ::"r"(cr3 | BIT(maxphy)) : "memory");
        TEST_EQ(exc_vector(), GP_VECTOR, "MOV CR3 with the bit at MAXPHYADDR");
    }
    TEST_EQ(read_cr3(), cr3, "CR3 unchanged");
}

static void check_msrs(void)
{
    u64 base = rdmsr(MSR_MTRR_PHYSBASE0), mask = rdmsr(MSR_MTRR_PHYSMASK0);
    u64 addr = BIT(maxphy - 1) | 6; /* write-back */
    TEST_EQ(wrmsr_safe(MSR_MTRR_PHYSBASE0, addr), NO_EXCEPTION, "PHYSBASE bit MAXPHYADDR-1");
    TEST_EQ(rdmsr(MSR_MTRR_PHYSBASE0), addr, "PHYSBASE keeps it");
    TEST_EQ(wrmsr_safe(MSR_MTRR_PHYSMASK0, (BIT(maxphy) - 1) & ~0xfffull), NO_EXCEPTION,
            "PHYSMASK with every address bit below MAXPHYADDR");
    if (maxphy < 52) {
        TEST_EQ(wrmsr_safe(MSR_MTRR_PHYSBASE0, BIT(maxphy) | 6), GP_VECTOR,
                "PHYSBASE bit MAXPHYADDR is #GP");
        TEST_EQ(wrmsr_safe(MSR_MTRR_PHYSMASK0, BIT(maxphy)), GP_VECTOR,
                "PHYSMASK bit MAXPHYADDR is #GP");
        u64 apic = rdmsr(MSR_APIC_BASE);
        if (on_qemu_tcg())
            test_skip("IA32_APIC_BASE: QEMU TCG ignores MAXPHYADDR");
        else
            TEST_EQ(wrmsr_safe(MSR_APIC_BASE, apic | BIT(maxphy)), GP_VECTOR,
                    "IA32_APIC_BASE bit MAXPHYADDR is #GP");
        TEST_EQ(rdmsr(MSR_APIC_BASE), apic, "IA32_APIC_BASE unchanged");
    }
    wrmsr(MSR_MTRR_PHYSMASK0, mask);
    wrmsr(MSR_MTRR_PHYSBASE0, base);
}

void test_main(void)
{
    char spec[128] = "";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    struct cpuid_regs r = cpuid(0x80000008);
    maxphy = r.a & 0xff;
    TEST_EQ(maxphy, parse_bits(spec), "CPUID 80000008h:EAX[7:0] is phys-bits");
    TEST_EQ((r.a >> 8) & 0xff, HAS_LA57() ? 57 : 48, "CPUID 80000008h:EAX[15:8]: linear width");
    frame = page_alloc();
    check_paging();
    check_cr3();
    check_msrs();
}

/* Paging from 32-bit protected mode: 32-bit paging with 4K and 4M (PSE) pages, then
 * PAE with 4K and 2M pages and NX: not-present, R/W with CR0.WP, U/S, reserved bits
 * (exact error codes and CR2), accessed/dirty bits, INVLPG, and PDPTE checks at CR3 load.
 * The reserved address bits follow MAXPHYADDR: a second run has -cpu phys-bits=36.
 * guest: name=paging32 */
/* guest: cpu=max,phys-bits=36 name=paging32-36 */
#include "rt.h"

#define TVA 0xc0000000u
static u8 *frames[4];

static ulong user_write(ulong va) { return (ulong)try_write(va, 1) | ((ulong)exc_last.error << 8); }
static ulong user_read(ulong va) { return (ulong)try_read(va, NULL) | ((ulong)exc_last.error << 8); }

static void expect_pf(struct page_table *pt, int v, u32 pfec, ulong cr2, const char *what)
{
    if ((pfec & PFEC_RSVD) && on_qemu_tcg()) /* QEMU 7.2 TCG omits P with RSVD (SDM 4.7) */
        pfec &= ~PFEC_P;
    TEST_ASSERT(v == PF_VECTOR && exc_last.error == pfec && exc_last.cr2 == cr2,
                "%s %s: vector %d pfec %#lx cr2 %#lx (want %#x %#lx)",
                pt->format == PT_PAE ? "PAE" : "32-bit", what, v, (ulong)exc_last.error,
                (ulong)exc_last.cr2, pfec, cr2);
}

static void common_checks(struct page_table *pt)
{
    const char *name = pt->format == PT_PAE ? "PAE" : "32-bit";
    ulong v;
    ulong va = TVA;
    /* TVA lies in the identity map's large pages: mapping a 4K page there splits it
     * into a page table; then clear the PTE */
    pt_map(pt, va, (ulong)frames[0], 4096, 4096, 0);
    pte_set(pt, pt_entry(pt, va, 1), 0);
    invlpg(va);
    expect_pf(pt, try_read(va, NULL), 0, va, "not-present read");
    expect_pf(pt, try_write(va + 4, 1), PFEC_W, va + 4, "not-present write");
    *(u32 *)frames[0] = 0xabcd0123;
    pt_map(pt, va, (ulong)frames[0], 4096, 4096, PTE_W | PTE_U);
    invlpg(va);
    TEST_ASSERT(try_read(va, &v) == NO_EXCEPTION && v == 0xabcd0123, "%s: 4K mapping reads its frame", name);

    /* accessed / dirty */
    void *pte = pt_leaf(pt, va, NULL);
    pte_set(pt, pte, pte_get(pt, pte) & ~(PTE_A | PTE_D));
    invlpg(va);
    try_read(va, NULL);
    TEST_ASSERT((pte_get(pt, pte) & (PTE_A | PTE_D)) == PTE_A, "%s: read sets A only", name);
    try_write(va, 5);
    TEST_ASSERT(pte_get(pt, pte) & PTE_D, "%s: write sets D", name);

    /* R/W and WP */
    pt_map(pt, va + 4096, (ulong)frames[1], 4096, 4096, PTE_U);
    invlpg(va + 4096);
    write_cr0(read_cr0() & ~CR0_WP);
    TEST_EQ(try_write(va + 4096, 1), NO_EXCEPTION, "supervisor write to read-only, WP=0");
    write_cr0(read_cr0() | CR0_WP);
    expect_pf(pt, try_write(va + 4096, 1), PFEC_P | PFEC_W, va + 4096, "supervisor write to read-only, WP=1");
    write_cr0(read_cr0() & ~CR0_WP);
    ulong r = run_user(user_write, va + 4096, 0);
    TEST_ASSERT((r & 0xff) == PF_VECTOR && (r >> 8) == (PFEC_P | PFEC_W | PFEC_U),
                "%s: user write to read-only: P|W|U (%#lx)", name, r >> 8);
    /* U/S */
    pt_map(pt, va + 8192, (ulong)frames[2], 4096, 4096, PTE_W);
    invlpg(va + 8192);
    r = run_user(user_read, va + 8192, 0);
    TEST_ASSERT((r & 0xff) == PF_VECTOR && (r >> 8) == (PFEC_P | PFEC_U),
                "%s: user read of a supervisor page: P|U (%#lx)", name, r >> 8);

    /* INVLPG picks up a changed translation */
    *(u32 *)frames[1] = 0x11111111;
    pte_set(pt, pte, (pte_get(pt, pte) & 0xfff) | (ulong)frames[1]);
    invlpg(va);
    try_read(va, &v);
    TEST_EQ(v, 0x11111111, "INVLPG: new translation used");

    /* a large page (4M in 32-bit paging, 2M in PAE) mapping low memory */
    u64 big = pt->format == PT_PAE ? 2u << 20 : 4u << 20;
    ulong bva = TVA + 0x08000000u;
    pt_map(pt, bva, 0, big, big, PTE_W | PTE_U);
    invlpg(bva);
    TEST_ASSERT(try_read(bva + 0x100000, &v) == NO_EXCEPTION && v == *(u32 *)0x100000,
                "%s: %lluM page maps its frame", name, (unsigned long long)(big >> 20));
    int level;
    void *pde = pt_leaf(pt, bva, &level);
    TEST_EQ(level, 2, "large page is a level-2 leaf");
    pte_set(pt, pde, pte_get(pt, pde) & ~PTE_D);
    invlpg(bva);
    try_write(bva + 0x400000 - 8 - (pt->format == PT_PAE ? 0x200000 : 0), 0);
    TEST_ASSERT(pte_get(pt, pde) & PTE_D, "%s: write sets D in the large-page PDE", name);
}

static void check_32bit(void)
{
    struct page_table pt;
    pt_init(&pt, PT_32BIT);
    pt_map_identity(&pt, PTE_W | PTE_U);
    pt_activate(&pt, 0);
    TEST_ASSERT((read_cr0() & CR0_PG) && (read_cr4() & CR4_PSE) && !(read_cr4() & CR4_PAE),
                "32-bit paging with PSE on");
    common_checks(&pt);
    u32 maxphy = cpuid(0x80000000).a >= 0x80000008 ? cpuid(0x80000008).a & 0xff : 36;
    if (maxphy <= 40) {
        ulong bva = TVA + 0x08000000u;
        void *pde = pt_leaf(&pt, bva, NULL);
        pte_set(&pt, pde, pte_get(&pt, pde) | BIT(21));
        invlpg(bva);
        expect_pf(&pt, try_read(bva, NULL), PFEC_P | PFEC_RSVD, bva, "4M PDE bit 21 (reserved, MAXPHYADDR <= 40)");
        pte_set(&pt, pde, pte_get(&pt, pde) & ~BIT(21));
        invlpg(bva);
    }
    /* without CR4.PSE the PS bit is ignored: the PDE points to a page table */
    paging_off();
}

static void check_pae(void)
{
    struct page_table pt;
    pt_init(&pt, PT_PAE);
    pt_map_identity(&pt, PTE_W | PTE_U);
    if (HAS_NX())
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    pt_activate(&pt, 0);
    TEST_ASSERT((read_cr0() & CR0_PG) && (read_cr4() & CR4_PAE), "PAE paging on");
    common_checks(&pt);

    u32 maxphy = cpuid(0x80000000).a >= 0x80000008 ? cpuid(0x80000008).a & 0xff : 36;
    ulong va = TVA + 3 * 4096;
    pt_map(&pt, va, (ulong)frames[3], 4096, 4096, PTE_W | PTE_U);
    void *pte = pt_leaf(&pt, va, NULL);
    pte_set(&pt, pte, pte_get(&pt, pte) | BIT(maxphy));
    invlpg(va);
    expect_pf(&pt, try_read(va, NULL), PFEC_P | PFEC_RSVD, va, "PTE address bit at MAXPHYADDR");
    pte_set(&pt, pte, pte_get(&pt, pte) & ~BIT(maxphy));
    invlpg(va);
    if (HAS_NX()) {
        frames[3][0] = 0xc3;
        TEST_EQ(try_exec(va), NO_EXCEPTION, "PAE: fetch from an executable page");
        pte_set(&pt, pte, pte_get(&pt, pte) | PTE_NX);
        invlpg(va);
        expect_pf(&pt, try_exec(va), PFEC_P | PFEC_I, va, "fetch from an NX page");
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~EFER_NXE);
        invlpg(va);
        expect_pf(&pt, try_read(va, NULL), PFEC_P | PFEC_RSVD, va, "NX with EFER.NXE=0 is reserved");
    } else {
        test_skip("PAE NX: not in CPUID");
    }
    /* PDPTEs are loaded with CR3: a reserved bit there faults the MOV CR3 */
    u64 *pdpt = (u64 *)(ulong)pt.root;
    pdpt[3] |= PTE_W;
    asm volatile(ASM_TRY("1f") "mov %0, %%cr3\n1:" ::"r"((ulong)pt.root) : "memory");
    int v = exc_vector();
    pdpt[3] &= ~PTE_W;
    if (on_qemu_tcg())
        test_skip("PDPTE reserved bits at MOV CR3: QEMU TCG does not check them");
    else
        TEST_ASSERT(v == GP_VECTOR && exc_last.error == 0, "PAE: MOV CR3 with a reserved PDPTE bit: #GP(0)");
    write_cr3((ulong)pt.root);
    paging_off();
}

void test_main(void)
{
    for (unsigned i = 0; i < ARRAY_SIZE(frames); i++)
        frames[i] = page_alloc();
    check_32bit();
    check_pae();
    TEST_ASSERT(!(read_cr0() & CR0_PG), "paging off again");
}

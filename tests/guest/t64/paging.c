/* Paging in long mode (4-level, or 5-level in paging_la57): not-present, R/W with
 * CR0.WP, U/S, NX, SMEP, SMAP with STAC/CLAC, reserved-bit faults with exact error codes
 * and CR2, accessed/dirty updates at every level, 2M and 1G pages, INVLPG, MOV CR3 and
 * CR4.PGE flushes, PCID and INVPCID. */
#include "rt.h"

#define TVA 0x8000000000ull   /* test mappings live here (PML4 slot 1) */
#define PAGE(i) (TVA + (u64)(i) * 4096)

static struct page_table pt;  /* identity map, U=1: the tests run on it */
static struct page_table spt; /* identity map, U=0: for SMEP/SMAP */
static u8 *frames[8];


static void expect_pf(int v, u64 pfec, u64 cr2, const char *what)
{
    /* QEMU 7.2 TCG reports reserved-bit faults without the P bit, although the SDM
     * (4.7) says RSVD can only be set together with P */
    if ((pfec & PFEC_RSVD) && on_qemu_tcg())
        pfec &= ~PFEC_P;
    TEST_ASSERT(v == PF_VECTOR && exc_last.error == pfec && exc_last.cr2 == cr2,
                "%s: vector %d pfec %#lx cr2 %#lx (want #PF %#llx %#llx)", what, v,
                (ulong)exc_last.error, (ulong)exc_last.cr2, (unsigned long long)pfec,
                (unsigned long long)cr2);
}

static u64 *leaf(struct page_table *t, u64 va)
{
    int level;
    return pt_leaf(t, va, &level);
}

static void map4k(struct page_table *t, int i, int frame, u64 flags)
{
    pt_map(t, PAGE(i), (ulong)frames[frame], 4096, 4096, flags);
    invlpg(PAGE(i));
}

/* user-mode probes (run on pt, whose identity map is user-accessible) */
static ulong user_read(ulong va) { return (ulong)try_read(va, NULL) | ((ulong)exc_last.error << 8); }
static ulong user_write(ulong va) { return (ulong)try_write(va, 1) | ((ulong)exc_last.error << 8); }

static void check_basic(void)
{
    u64 v;
    /* not present */
    expect_pf(try_read(PAGE(0), NULL), 0, PAGE(0), "read of a not-present page");
    expect_pf(try_write(PAGE(0) + 8, 1), PFEC_W, PAGE(0) + 8, "write of a not-present page");
    expect_pf(try_exec(PAGE(0)), HAS_NX() ? PFEC_I : 0, PAGE(0), "fetch of a not-present page");
    /* a present page */
    *(u64 *)frames[0] = 0x1122334455667788ull;
    map4k(&pt, 0, 0, PTE_W | PTE_U);
    TEST_ASSERT(try_read(PAGE(0), &v) == NO_EXCEPTION && v == 0x1122334455667788ull,
                "read through a 4K mapping");
    TEST_EQ(try_write(PAGE(0) + 8, 42), NO_EXCEPTION, "write through a writable mapping");
    TEST_EQ(((u64 *)frames[0])[1], 42, "the write reached the frame");

    /* R/W and CR0.WP */
    map4k(&pt, 1, 1, PTE_U);
    write_cr0(read_cr0() & ~CR0_WP);
    TEST_EQ(try_write(PAGE(1), 7), NO_EXCEPTION, "supervisor write to read-only with WP=0");
    write_cr0(read_cr0() | CR0_WP);
    expect_pf(try_write(PAGE(1), 7), PFEC_P | PFEC_W, PAGE(1), "supervisor write to read-only with WP=1");
    ulong r = run_user(user_write, PAGE(1), 0);
    TEST_ASSERT((r & 0xff) == PF_VECTOR && (r >> 8) == (PFEC_P | PFEC_W | PFEC_U),
                "user write to read-only: #PF P|W|U (%#lx)", r >> 8);
    write_cr0(read_cr0() & ~CR0_WP);

    /* U/S */
    map4k(&pt, 2, 2, PTE_W);
    r = run_user(user_read, PAGE(2), 0);
    TEST_ASSERT((r & 0xff) == PF_VECTOR && (r >> 8) == (PFEC_P | PFEC_U),
                "user read of a supervisor page: #PF P|U (%#lx)", r >> 8);
    r = run_user(user_read, PAGE(0), 0);
    TEST_EQ(r & 0xff, (u8)NO_EXCEPTION, "user read of a user page");
    /* U/S at a higher level: PDE with U=0 over a U=1 PTE */
    map4k(&pt, 3, 3, PTE_W | PTE_U);
    u64 *pde = pt_entry(&pt, PAGE(3), 2);
    *pde &= ~PTE_U;
    invlpg(PAGE(3));
    r = run_user(user_read, PAGE(3), 0);
    TEST_ASSERT((r & 0xff) == PF_VECTOR && (r >> 8) == (PFEC_P | PFEC_U),
                "U=0 in the PDE denies user access (%#lx)", r >> 8);
    *pde |= PTE_U;
    invlpg(PAGE(3));
}

static void check_nx(void)
{
    if (!HAS_NX()) {
        test_skip("NX: not in CPUID");
        return;
    }
    frames[4][0] = 0xc3; /* ret */
    map4k(&pt, 4, 4, PTE_U);
    TEST_EQ(try_exec(PAGE(4)), NO_EXCEPTION, "fetch from an executable page");
    map4k(&pt, 4, 4, PTE_U | PTE_NX);
    expect_pf(try_exec(PAGE(4)), PFEC_P | PFEC_I, PAGE(4), "fetch from an NX page");
    TEST_EQ(try_read(PAGE(4), NULL), NO_EXCEPTION, "read from an NX page");
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~EFER_NXE);
    invlpg(PAGE(4));
    expect_pf(try_read(PAGE(4), NULL), PFEC_P | PFEC_RSVD, PAGE(4), "NX bit with EFER.NXE=0 is reserved");
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    invlpg(PAGE(4));
}

static void check_reserved(void)
{
    u32 maxphy = cpuid(0x80000000).a >= 0x80000008 ? cpuid(0x80000008).a & 0xff : 36;
    map4k(&pt, 5, 5, PTE_W | PTE_U);
    u64 *pte = leaf(&pt, PAGE(5));
    if (maxphy < 52) {
        *pte |= BIT(maxphy);
        invlpg(PAGE(5));
        expect_pf(try_read(PAGE(5), NULL), PFEC_P | PFEC_RSVD, PAGE(5), "PTE address bit above MAXPHYADDR");
        expect_pf(try_write(PAGE(5) + 16, 1), PFEC_P | PFEC_W | PFEC_RSVD, PAGE(5) + 16,
                  "write: reserved bit fault keeps W");
        *pte &= ~BIT(maxphy);
        invlpg(PAGE(5));
    }
    /* PS in a PML4E is reserved */
    u64 *pml4e = pt_entry(&pt, PAGE(5), pt_levels(pt.format) == 5 ? 4 : 4);
    *pml4e |= PTE_PS;
    invlpg(PAGE(5));
    expect_pf(try_read(PAGE(5), NULL), PFEC_P | PFEC_RSVD, PAGE(5), "PS=1 in a PML4E");
    *pml4e &= ~PTE_PS;
    invlpg(PAGE(5));
    /* a 2M page with address bits 20:13 set */
    u64 big = TVA + (64ull << 20);
    pt_map(&pt, big, 0, 2 << 20, 2 << 20, PTE_W | PTE_U);
    u64 *pde = pt_entry(&pt, big, 2);
    *pde |= BIT(13);
    invlpg(big);
    expect_pf(try_read(big + 0x123, NULL), PFEC_P | PFEC_RSVD, big + 0x123, "2M PDE with bit 13 set");
    *pde &= ~BIT(13);
    invlpg(big);
    u64 v;
    TEST_ASSERT(try_read(big + 0x100000, &v) == NO_EXCEPTION && v == *(u64 *)0x100000,
                "2M page maps its 2M frame");
    if (HAS_1G()) {
        u64 huge = TVA + (1ull << 30);
        pt_map(&pt, huge, 0, 1ull << 30, 1ull << 30, PTE_W | PTE_U);
        invlpg(huge + 0x100000);
        TEST_ASSERT(try_read(huge + 0x100000, &v) == NO_EXCEPTION && v == *(u64 *)0x100000,
                    "1G page maps its 1G frame");
        u64 *pdpte = pt_entry(&pt, huge, 3);
        *pdpte |= BIT(13);
        invlpg(huge + 0x100000);
        expect_pf(try_read(huge + 0x100000, NULL), PFEC_P | PFEC_RSVD, huge + 0x100000,
                  "1G PDPTE with bit 13 set");
        *pdpte &= ~BIT(13);
        invlpg(huge + 0x100000);
    } else {
        test_skip("1G pages: not in CPUID");
    }
}

static void check_accessed_dirty(void)
{
    map4k(&pt, 6, 6, PTE_W | PTE_U);
    u64 *pte = leaf(&pt, PAGE(6));
    u64 *pde = pt_entry(&pt, PAGE(6), 2);
    *pte &= ~(PTE_A | PTE_D);
    *pde &= ~PTE_A;
    invlpg(PAGE(6));
    try_read(PAGE(6), NULL);
    TEST_ASSERT((*pte & PTE_A) && !(*pte & PTE_D), "read sets A, not D (pte %#llx)", (unsigned long long)*pte);
    TEST_ASSERT(*pde & PTE_A, "the walk sets A in the PDE");
    try_write(PAGE(6), 1);
    TEST_ASSERT(*pte & PTE_D, "write sets D");
    /* a write through a TLB entry created by a read must still set D */
    *pte &= ~(PTE_A | PTE_D);
    invlpg(PAGE(6));
    try_read(PAGE(6), NULL);
    try_write(PAGE(6), 2);
    TEST_ASSERT((*pte & (PTE_A | PTE_D)) == (PTE_A | PTE_D), "write after read sets D");
    /* faulting accesses set nothing */
    map4k(&pt, 7, 7, PTE_U);
    pte = leaf(&pt, PAGE(7));
    *pte &= ~(PTE_A | PTE_D);
    invlpg(PAGE(7));
    write_cr0(read_cr0() | CR0_WP);
    try_write(PAGE(7), 1);
    write_cr0(read_cr0() & ~CR0_WP);
    TEST_ASSERT(!(*pte & PTE_D), "a faulting write does not set D");
}

static void check_tlb(void)
{
    u64 v;
    *(u64 *)frames[0] = 100;
    *(u64 *)frames[1] = 200;
    map4k(&pt, 8, 0, PTE_W | PTE_U);
    try_read(PAGE(8), &v);
    TEST_EQ(v, 100, "mapping to frame 0");
    u64 *pte = leaf(&pt, PAGE(8));
    *pte = (*pte & ~0x000ffffffffff000ull) | (ulong)frames[1];
    invlpg(PAGE(8));
    try_read(PAGE(8), &v);
    TEST_EQ(v, 200, "INVLPG: the new translation is used");
    *pte = (*pte & ~0x000ffffffffff000ull) | (ulong)frames[0];
    write_cr3(read_cr3());
    try_read(PAGE(8), &v);
    TEST_EQ(v, 100, "MOV CR3: non-global translations flushed");
    if (HAS_PGE()) {
        write_cr4(read_cr4() | CR4_PGE);
        *pte |= PTE_G;
        invlpg(PAGE(8));
        try_read(PAGE(8), &v);
        *pte = (*pte & ~0x000ffffffffff000ull) | (ulong)frames[1];
        write_cr4(read_cr4() & ~CR4_PGE);
        try_read(PAGE(8), &v);
        TEST_EQ(v, 200, "clearing CR4.PGE flushes global translations");
        *pte &= ~PTE_G;
    }
    /* INVLPG of a non-canonical address is a no-op, not a fault */
    asm volatile(ASM_TRY("1f") "invlpg (%0)\n1:" ::"r"(0x8000000000000000ull) : "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "INVLPG of a non-canonical address: no fault");
}

static void check_pcid(void)
{
    if (!HAS_PCID()) {
        test_skip("PCID: not in CPUID");
        return;
    }
    ulong cr3 = read_cr3();
    write_cr3(cr3 | 1);
    asm volatile(ASM_TRY("1f") "mov %0, %%cr4\n1:" ::"r"(read_cr4() | CR4_PCIDE) : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "#GP: setting CR4.PCIDE with CR3[11:0] != 0");
    write_cr3(cr3 & ~0xfffull);
    write_cr4(read_cr4() | CR4_PCIDE);
    TEST_ASSERT(read_cr4() & CR4_PCIDE, "CR4.PCIDE set");
    u64 v;
    *(u64 *)frames[0] = 100;
    *(u64 *)frames[1] = 200;
    map4k(&pt, 9, 0, PTE_W | PTE_U);
    write_cr3((cr3 & ~0xfffull) | 5); /* PCID 5 */
    TEST_EQ(read_cr3() & 0xfff, 5, "CR3 holds PCID 5");
    try_read(PAGE(9), &v);
    TEST_EQ(v, 100, "read under PCID 5");
    u64 *pte = leaf(&pt, PAGE(9));
    *pte = (*pte & ~0x000ffffffffff000ull) | (ulong)frames[1];
    if (HAS_INVPCID()) {
        struct { u64 pcid, addr; } desc = {5, PAGE(9)};
        asm volatile("invpcid %0, %1" ::"m"(desc), "r"(0ull) : "memory");
        try_read(PAGE(9), &v);
        TEST_EQ(v, 200, "INVPCID type 0 (address): new translation used");
        asm volatile(ASM_TRY("1f") "invpcid %0, %1\n1:" ::"m"(desc), "r"(4ull) : "memory");
        TEST_EQ(exc_vector(), GP_VECTOR, "INVPCID type 4: #GP");
        desc.pcid = 4096;
        asm volatile(ASM_TRY("1f") "invpcid %0, %1\n1:" ::"m"(desc), "r"(1ull) : "memory");
        TEST_EQ(exc_vector(), GP_VECTOR, "INVPCID with PCID > 4095: #GP");
        /* types 1 (one PCID), 2 (all, with globals) and 3 (all but globals) */
        static const struct { u64 type; int frame; u64 want; } steps[] = {
            {1, 0, 100}, {2, 1, 200}, {3, 0, 100},
        };
        desc.pcid = 5;
        for (unsigned i = 0; i < ARRAY_SIZE(steps); i++) {
            *pte = (*pte & ~0x000ffffffffff000ull) | (ulong)frames[steps[i].frame];
            asm volatile("invpcid %0, %1" ::"m"(desc), "r"(steps[i].type) : "memory");
            try_read(PAGE(9), &v);
            TEST_EQ(v, steps[i].want, "INVPCID type 1/2/3: new translation used");
        }
    } else {
        test_skip("INVPCID: not in CPUID");
    }
    *pte = (*pte & ~0x000ffffffffff000ull) | (ulong)frames[0];
    write_cr3((cr3 & ~0xfffull) | 5); /* no bit 63: flushes PCID 5 */
    try_read(PAGE(9), &v);
    TEST_EQ(v, 100, "MOV CR3 without bit 63 flushes the PCID");
    write_cr3(cr3 & ~0xfffull);
    write_cr4(read_cr4() & ~CR4_PCIDE);
    write_cr3(cr3);
}

/* SMEP/SMAP run on spt (identity map supervisor-only) with user pages at TVA */
static void check_smep_smap(void)
{
    bool smep = HAS_SMEP(), smap = HAS_SMAP();
    if (!smep && !smap) {
        test_skip("SMEP/SMAP: not in CPUID");
        return;
    }
    frames[4][0] = 0xc3;
    pt_map(&spt, PAGE(10), (ulong)frames[4], 4096, 4096, PTE_W | PTE_U);
    pt_activate(&spt, 0);
    if (smep) {
        TEST_EQ(try_exec(PAGE(10)), NO_EXCEPTION, "supervisor fetch from a user page without SMEP");
        write_cr4(read_cr4() | CR4_SMEP);
        expect_pf(try_exec(PAGE(10)), PFEC_P | PFEC_I, PAGE(10), "SMEP: supervisor fetch from a user page");
        write_cr4(read_cr4() & ~CR4_SMEP);
    } else {
        test_skip("SMEP: not in CPUID");
    }
    if (smap) {
        write_cr4(read_cr4() | CR4_SMAP);
        asm volatile("clac");
        expect_pf(try_read(PAGE(10), NULL), PFEC_P, PAGE(10), "SMAP: supervisor read of a user page");
        expect_pf(try_write(PAGE(10), 1), PFEC_P | PFEC_W, PAGE(10), "SMAP: supervisor write of a user page");
        asm volatile("stac");
        TEST_EQ(try_read(PAGE(10), NULL), NO_EXCEPTION, "SMAP: STAC (EFLAGS.AC) allows the access");
        asm volatile("clac");
        TEST_ASSERT(!(read_flags() & FL_AC), "CLAC clears EFLAGS.AC");
        write_cr4(read_cr4() & ~CR4_SMAP);
        TEST_EQ(try_read(PAGE(10), NULL), NO_EXCEPTION, "no SMAP: supervisor read of a user page");
    } else {
        test_skip("SMAP: not in CPUID");
    }
    pt_activate(&pt, 0);
}

void test_main(void)
{
    enum pt_format fmt = rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL;
    printf("%u-level paging\n", rt_paging_levels);
    if (rt_want_la57 && HAS_LA57())
        TEST_ASSERT(read_cr4() & CR4_LA57, "booted with CR4.LA57");
    for (unsigned i = 0; i < ARRAY_SIZE(frames); i++)
        frames[i] = page_alloc();
    pt_init(&pt, fmt);
    pt_map_identity(&pt, PTE_W | PTE_U);
    pt_init(&spt, fmt);
    pt_map_identity(&spt, PTE_W);
    pt_activate(&pt, 0);
    TEST_EQ(read_cr3(), pt.root, "CR3 loaded with the test's table");
    if (rt_paging_levels == 5) {
        /* an address that needs the fifth level: bits 56:48 not a sign extension of 47 */
        u64 va = 0x00ff800000000000ull;
        pt_map(&pt, va, (ulong)frames[0], 4096, 4096, PTE_W);
        *(u64 *)frames[0] = 0x57;
        u64 v;
        TEST_ASSERT(try_read(va, &v) == NO_EXCEPTION && v == 0x57, "LA57: 57-bit address mapped");
        asm volatile(ASM_TRY("1f") "movq (%0), %%rax\n1:" ::"r"(0x0100000000000000ull) : "rax", "memory");
        TEST_EQ(exc_vector(), GP_VECTOR, "LA57: bit 56 set without 63:57 is non-canonical");
    }
    check_basic();
    check_nx();
    check_reserved();
    check_accessed_dirty();
    check_tlb();
    check_pcid();
    check_smep_smap();
    pt_activate(&rt_boot_pt, 0);
}

/* AMD SVM nested paging in the paging modes t64/svm_npt does not cover (APM vol. 2 15.25).
 * The nested tables are walked in the paging mode L1 has at VMRUN (15.25.3: 4-level here,
 * 5-level in t64/svm_npt_la57, which includes this file with CR4.LA57 in L1), every nested
 * access a user access (15.25.5); #VMEXIT(NPF) has EXITINFO2 = the guest-physical address
 * and EXITINFO1 = a #PF error code with bit 32 (the final guest-physical address) or bit 33
 * (an access to L2's own page tables) (15.25.6).
 *  - L2 in 64-bit mode on L1's page tables and on 4-level tables of its own (with LA57 clear
 *    in its CR4 when L1 has it): a guest-physical page of its own entries at every NPT level
 *    (2^39: PML4E 1; with MAXPHYADDR 52 and 5 levels, 2^48: PML5E 1) remapped to another
 *    page; a not-present NPT entry at each of those levels (bit 32), at the top entry all
 *    addresses share (bit 33 on L2's first table read), L2's table pages not present in the
 *    NPT (bit 33, EXITINFO2 the entry's address).
 *  - L2 in 32-bit protected mode (its own GDT and a flat 32-bit code segment, EFER.LME
 *    clear) with legacy 2-level paging (CR4.PSE: 4 MiB and 4 KiB pages) and with PAE
 *    paging (2 MiB and 4 KiB pages), tables below 4 GiB: reads through the NPT, a remapped
 *    nested page, NPF on the final address (bit 32) through both page sizes, NPF on L2's
 *    page table, page directory and (PAE) PDPT pages (bit 33), L2's own #PF intercepted with
 *    its error code and linear address.
 *  - L2 in real mode (CR0.PE clear): reads through a remapped nested page, NPF on data and
 *    on the instruction fetch (bit 32: no guest tables), the top NPT entry not present.
 * PAE PDPTEs: the APM (15.25) does not say whether L2's four PDPTEs are loaded at VMRUN
 * (nestor: at VMRUN and at MOV CR3, through the nested tables) or read at each walk (as the
 * nested tables' own PDPEs are); a PDPT page not present in the NPT gives the same
 * #VMEXIT(NPF) either way: RIP at L2's first instruction, bit 33, EXITINFO2 = the PDPT's
 * address (PDPTE 0 maps L2's code). The RW bit of a guest-table NPF is not checked
 * (walks may set A/D bits: nestor reports writes).
 * guest: cpu=max,vendor=AuthenticAMD name=svm-npt-modes */
#include "svm.h"

static struct vmcb *const v = &svm_vmcb;
static struct page_table npt;
static u64 gpa_hi; /* a guest-physical page with NPT entries of its own at every level */
#define LA_HI 0x0000008000000000ull /* L2's linear address of gpa_hi (64-bit L2) */
#define LA_4K 0x40001000u           /* 32-bit L2: a 4 KiB page of data32 */
#define LA_BIG 0x80000000u          /* 32-bit L2: the large page holding data32 */
#define RM_CODE 0x6000u             /* real-mode L2's code (copied there) */
#define RM_DATA 0x7000u             /* real-mode L2's data: remapped to rm_page */
#define ADDR_MASK 0x000ffffffffff000ull
#define CR0_ET BIT(4)
#define WALK_MASK (NPF_P | NPF_U | NPF_RSV | NPF_ID | NPF_FINAL | NPF_WALK) /* not RW */

static u64 hi_page[512] __attribute__((aligned(4096)));
static u32 data32[1024] __attribute__((aligned(4096)));
static u32 data32b[1024] __attribute__((aligned(4096)));
static u32 rm_page[1024] __attribute__((aligned(4096)));
static u64 l2_gdt[4] __attribute__((aligned(16))) = {
    0,
    0x00cf9a000000ffffull, /* 0x08: flat 32-bit code, DPL 0 */
    0x00cf93000000ffffull, /* 0x10: flat 32-bit data, DPL 0 */
    0,
};

/* 64-bit L2 */
#define L2_INSN(name, insn)                                                                   \
    extern char name[], name##_e[];                                                           \
    asm(".pushsection .text\n" #name ":\n" insn "\n" #name "_e:\n"                            \
        "98: vmmcall\n jmp 98b\n.popsection")
L2_INSN(l2_read64, "mov (%rax), %rbx");
L2_INSN(l2_write64, "movq $0x77, (%rax)");
/* 32-bit L2 (legacy protected mode) */
#define L2_INSN32(name, insn)                                                                 \
    extern char name[], name##_e[];                                                           \
    asm(".pushsection .text\n.code32\n" #name ":\n" insn "\n" #name "_e:\n"                   \
        "98: vmmcall\n jmp 98b\n.code64\n.popsection")
L2_INSN32(l2_read32, "mov (%eax), %ebx");
L2_INSN32(l2_write32, "movl $0x77, (%eax)");
/* real-mode L2: copied to RM_CODE (position-independent) */
extern char l2_rm[], l2_rm_end[];
asm(".pushsection .text\n.code16\nl2_rm:\n movl (%eax), %ebx\n"
    "98: vmmcall\n jmp 98b\nl2_rm_end:\n.code64\n.popsection");

static int npt_levels(void) { return pt_levels(npt.format); }

static u64 *npt_leaf4k(u64 gpa)
{
    int level;
    u64 *e = pt_leaf(&npt, gpa, &level);
    if (!e || level != 1)
        panic("no 4 KiB NPT leaf for %#llx", (unsigned long long)gpa);
    return e;
}

static u64 *npt_entry(u64 gpa, int level)
{
    u64 *e = pt_entry(&npt, gpa, level);
    if (!e)
        panic("no NPT entry at level %d for %#llx", level, (unsigned long long)gpa);
    return e;
}

/* NPT: identity, user+write; 4 KiB pages below the image's end (real-mode pages, the image
 * and its page-table pool), 2 MiB pages to 4 GiB; gpa_hi -> hi_page */
static void build_npt(void)
{
    pt_init(&npt, rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL);
    u64 hi = (PA(__image_end) + 0x1fffff) & ~0x1fffffull;
    pt_map(&npt, 0, 0, hi, 4096, PTE_W | PTE_U);
    pt_map(&npt, hi, hi, (4ull << 30) - hi, 2 << 20, PTE_W | PTE_U);
    pt_map(&npt, gpa_hi, PA(hi_page), 4096, 4096, PTE_W | PTE_U);
}

static void setup_common(const void *code, u64 rax)
{
    svm_vmcb_init(v, code);
    v->c.np_enable = 1;
    v->c.ncr3 = npt.root;
    v->c.tlb_control = 1;
    v->c.intercept_exc = ~0u; /* any exception of L2 exits: no IDT is needed */
    v->s.rax = rax;
}

static void expect_npf(u64 info1, u64 mask, u64 gpa, u64 rip, const char *what)
{
    TEST_EQF(v->c.exit_code, VMEXIT_NPF, "%s: NPF exit", what);
    TEST_EQF(v->c.exit_info1 & mask, info1, "%s: EXITINFO1", what);
    TEST_EQF(v->c.exit_info2, gpa, "%s: EXITINFO2", what);
    TEST_EQF(v->s.rip, rip, "%s: RIP", what);
    TEST_EQF(v->c.exit_int_info, 0, "%s: EXITINTINFO", what);
}

/* ---------------------------------------------------------------- 64-bit L2 */
static u64 g64_cr3, g64_cr4;

static u64 run64(const void *code, u64 rax)
{
    setup_common(code, rax);
    v->s.cr3 = g64_cr3;
    v->s.cr4 = g64_cr4;
    return svm_run(v);
}

static void l2_64(struct page_table *g, u64 cr4, const char *w)
{
    char what[160];
    int nl = npt_levels();
    int top_shift = 12 + 9 * (nl - 1);
    g64_cr3 = g->root;
    g64_cr4 = cr4;
    u64 la = LA_HI + 8, gpa = gpa_hi + 8;

    hi_page[1] = 0x1234567887654321ull;
    TEST_EQF(run64(l2_read64, la), VMEXIT_VMMCALL, "%s: L2 reads %#llx", w, (unsigned long long)gpa_hi);
    TEST_EQF(svm_gregs[3], hi_page[1], "%s: guest-physical %#llx is the remapped page", w,
             (unsigned long long)gpa_hi);
    TEST_EQF(v->s.cr4 & CR4_LA57, cr4 & CR4_LA57, "%s: L2's CR4.LA57 at #VMEXIT", w);
    TEST_EQF(run64(l2_write64, la), VMEXIT_VMMCALL, "%s: L2 writes", w);
    TEST_EQF(hi_page[1], 0x77, "%s: the write landed in the remapped page", w);

    /* a not-present NPT entry on gpa_hi's own path, level by level */
    for (int level = nl; level >= 1; level--) {
        if (level == nl && !(gpa_hi >> top_shift)) {
            test_skip("%s: %#llx shares the top NPT entry (MAXPHYADDR %d)", w,
                      (unsigned long long)gpa_hi, svm_maxphyaddr());
            continue;
        }
        static const char *const names[] = { "", "PTE", "PDE", "PDPTE", "PML4E", "PML5E" };
        u64 *e = npt_entry(gpa_hi, level), good = *e;
        *e = 0;
        snprintf(what, sizeof(what), "%s: read, NPT %s not present", w, names[level]);
        run64(l2_read64, la);
        expect_npf(NPF_U | NPF_FINAL, ~0ull, gpa, PA(l2_read64), what);
        if (level == 1) {
            snprintf(what, sizeof(what), "%s: write, NPT PTE not present", w);
            run64(l2_write64, la);
            expect_npf(NPF_U | NPF_W | NPF_FINAL, ~0ull, gpa, PA(l2_write64), what);
        }
        *e = good;
    }

    /* L2's page-table page for LA_HI not present in the NPT: bit 33 on the data read */
    u64 ptp = pte_get(g, pt_entry(g, LA_HI, 2)) & ADDR_MASK;
    u64 *n = npt_leaf4k(ptp), good = *n;
    *n = 0;
    snprintf(what, sizeof(what), "%s: L2's page table not present in the NPT", w);
    run64(l2_read64, la);
    expect_npf(NPF_U | NPF_WALK, WALK_MASK, PA(pt_entry(g, LA_HI, 1)), PA(l2_read64), what);
    *n = good;

    /* L2's top-level table page: the first instruction's fetch walk */
    int gl = pt_levels(g->format), gshift = 12 + 9 * (gl - 1);
    u64 top_e = g->root + 8 * ((PA(l2_read64) >> gshift) & 511);
    n = npt_leaf4k(g->root);
    good = *n;
    *n = 0;
    snprintf(what, sizeof(what), "%s: L2's %s table not present in the NPT", w, gl == 5 ? "PML5" : "PML4");
    run64(l2_read64, la);
    expect_npf(NPF_U | NPF_WALK, WALK_MASK, top_e, PA(l2_read64), what);
    *n = good;

    /* the top NPT entry that every guest-physical address below 2^39 (4 levels) or 2^48
     * (5 levels) shares: L2's first access is its fetch's read of its top-level entry */
    u64 *t = npt_entry(0, nl), tgood = *t;
    *t = 0;
    snprintf(what, sizeof(what), "%s: NPT %s 0 not present", w, nl == 5 ? "PML5E" : "PML4E");
    run64(l2_read64, la);
    expect_npf(NPF_U | NPF_WALK, WALK_MASK, top_e, PA(l2_read64), what);
    *t = tgood;

    hi_page[1] = 0x4242;
    TEST_EQF(run64(l2_read64, la), VMEXIT_VMMCALL, "%s: L2 runs again", w);
    TEST_EQF(svm_gregs[3], 0x4242, "%s: and reads the page", w);
}

static void tests_64(void)
{
    /* L1's own tables (L2 inherits CR4.LA57 with them), with LA_HI -> gpa_hi added */
    struct page_table l1 = { rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL, read_cr3() & ADDR_MASK };
    pt_map(&l1, LA_HI, gpa_hi, 4096, 4096, PTE_W | PTE_U);
    char w[64];
    snprintf(w, sizeof(w), "64-bit L2 on L1's %u-level tables", rt_paging_levels);
    l2_64(&l1, read_cr4(), w);

    /* L2's own 4-level tables, CR4.LA57 clear */
    struct page_table g4;
    pt_init(&g4, PT_4LEVEL);
    pt_map(&g4, 0, 0, 1ull << 30, 2 << 20, PTE_W | PTE_U);
    pt_map(&g4, LA_HI, gpa_hi, 4096, 4096, PTE_W | PTE_U);
    l2_64(&g4, read_cr4() & ~CR4_LA57, "64-bit L2 on its own 4-level tables (LA57 clear)");
}

/* ---------------------------------------------------------------- 32-bit L2 */
static struct page_table *g32;

static void setup32(const void *code, u64 rax)
{
    setup_common(code, rax);
    v->s.efer = EFER_SVME; /* LME and LMA clear */
    v->s.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
    v->s.cr4 = g32->format == PT_PAE ? CR4_PAE : CR4_PSE;
    v->s.cr3 = g32->root;
    v->s.cs = (struct vmcb_seg){ 0x08, svm_attrib_of(l2_gdt[1]), 0xffffffff, 0 };
    struct vmcb_seg ds = { 0x10, svm_attrib_of(l2_gdt[2]), 0xffffffff, 0 };
    v->s.ss = v->s.ds = v->s.es = ds;
    v->s.gdtr = (struct vmcb_seg){ 0, 0, sizeof(l2_gdt) - 1, PA(l2_gdt) };
    v->s.idtr = (struct vmcb_seg){ 0, 0, 0, 0 };
    v->s.cpl = 0;
    v->s.rsp = (u32)v->s.rsp;
}

static u64 run32(const void *code, u64 rax)
{
    setup32(code, rax);
    return svm_run(v);
}

static void l2_32(enum pt_format fmt)
{
    const char *w = fmt == PT_PAE ? "32-bit L2, PAE paging" : "32-bit L2, 2-level paging";
    char what[160];
    u64 big = fmt == PT_PAE ? 2 << 20 : 4 << 20;
    struct page_table g;
    pt_init(&g, fmt);
    g32 = &g;
    if (g.root >= (4ull << 30))
        panic("L2's CR3 above 4 GiB");
    pt_map(&g, 0, 0, 1ull << 30, big, PTE_W | PTE_U); /* code, stack: large pages */
    pt_map(&g, LA_4K, PA(data32), 4096, 4096, PTE_W | PTE_U);
    pt_map(&g, LA_BIG, PA(data32) & ~(big - 1), big, big, PTE_W | PTE_U);
    u64 la4k = LA_4K + 8, labig = LA_BIG + (PA(data32) & (big - 1)) + 8, gpa = PA(data32) + 8;
    const char *bigname = fmt == PT_PAE ? "2 MiB" : "4 MiB";

    data32[2] = 0xa1b2c3d4;
    data32b[2] = 0x5e6f7081;
    TEST_EQF(run32(l2_read32, la4k), VMEXIT_VMMCALL, "%s: L2 reads through a 4 KiB page", w);
    TEST_EQF(v->s.efer & (EFER_LME | EFER_LMA), 0, "%s: EFER.LME/LMA at #VMEXIT", w);
    TEST_EQF((u32)svm_gregs[3], 0xa1b2c3d4, "%s: 4 KiB page, identity NPT", w);
    TEST_EQF(run32(l2_read32, labig), VMEXIT_VMMCALL, "%s: L2 reads through a %s page", w, bigname);
    TEST_EQF((u32)svm_gregs[3], 0xa1b2c3d4, "%s: %s page, identity NPT", w, bigname);
    TEST_EQF(run32(l2_write32, la4k), VMEXIT_VMMCALL, "%s: L2 writes", w);
    TEST_EQF(data32[2], 0x77, "%s: the write landed", w);
    data32[2] = 0xa1b2c3d4;

    /* the NPT moves data32's guest-physical page onto data32b */
    u64 *n = npt_leaf4k(PA(data32)), good = *n;
    *n = PA(data32b) | (good & ~ADDR_MASK);
    run32(l2_read32, la4k);
    TEST_EQF((u32)svm_gregs[3], 0x5e6f7081, "%s: 4 KiB page, remapped nested page", w);
    run32(l2_read32, labig);
    TEST_EQF((u32)svm_gregs[3], 0x5e6f7081, "%s: %s page, remapped nested page", w, bigname);

    /* data32's nested page not present: bit 32, the guest-physical address */
    *n = 0;
    snprintf(what, sizeof(what), "%s: read via 4 KiB page, NPT page not present", w);
    run32(l2_read32, la4k);
    expect_npf(NPF_U | NPF_FINAL, ~0ull, gpa, PA(l2_read32), what);
    snprintf(what, sizeof(what), "%s: read via %s page, NPT page not present", w, bigname);
    run32(l2_read32, labig);
    expect_npf(NPF_U | NPF_FINAL, ~0ull, gpa, PA(l2_read32), what);
    snprintf(what, sizeof(what), "%s: write, NPT page not present", w);
    run32(l2_write32, la4k);
    expect_npf(NPF_U | NPF_W | NPF_FINAL, ~0ull, gpa, PA(l2_write32), what);
    *n = good & ~PTE_W;
    snprintf(what, sizeof(what), "%s: write via %s page, NPT page read-only", w, bigname);
    run32(l2_write32, labig);
    expect_npf(NPF_P | NPF_U | NPF_W | NPF_FINAL, ~0ull, gpa, PA(l2_write32), what);
    TEST_EQF(data32[2], 0xa1b2c3d4, "%s: the write did not happen", w);
    *n = good;

    /* L2's page table (4 KiB page of LA_4K) not present in the NPT: bit 33 */
    u64 pt = pte_get(&g, pt_entry(&g, LA_4K, 2)) & ADDR_MASK;
    u64 *p = npt_leaf4k(pt), pgood = *p;
    *p = 0;
    snprintf(what, sizeof(what), "%s: L2's page table not present in the NPT", w);
    run32(l2_read32, la4k);
    expect_npf(NPF_U | NPF_WALK, WALK_MASK, PA(pt_entry(&g, LA_4K, 1)), PA(l2_read32), what);
    *p = pgood;

    if (fmt == PT_PAE) {
        /* the page directory of LA_4K (PDPTE 1; the code is under PDPTE 0) */
        u64 pd = pte_get(&g, pt_entry(&g, LA_4K, 3)) & ADDR_MASK;
        p = npt_leaf4k(pd);
        pgood = *p;
        *p = 0;
        snprintf(what, sizeof(what), "%s: L2's page directory not present in the NPT", w);
        run32(l2_read32, la4k);
        expect_npf(NPF_U | NPF_WALK, WALK_MASK, PA(pt_entry(&g, LA_4K, 2)), PA(l2_read32), what);
        *p = pgood;
        /* the PDPT: NPF before L2's first instruction completes (loaded at VMRUN or read by
         * the fetch's walk: the same exit), at PDPTE 0, which maps the code */
        p = npt_leaf4k(g.root);
        pgood = *p;
        *p = 0;
        snprintf(what, sizeof(what), "%s: L2's PDPT not present in the NPT", w);
        run32(l2_read32, la4k);
        expect_npf(NPF_U | NPF_WALK, WALK_MASK, g.root, PA(l2_read32), what);
        *p = pgood;
    } else {
        /* the page directory (CR3) of 32-bit paging: the first fetch's walk */
        p = npt_leaf4k(g.root);
        pgood = *p;
        *p = 0;
        snprintf(what, sizeof(what), "%s: L2's page directory not present in the NPT", w);
        run32(l2_read32, la4k);
        expect_npf(NPF_U | NPF_WALK, WALK_MASK, g.root + 4 * (PA(l2_read32) >> 22), PA(l2_read32), what);
        *p = pgood;
    }

    /* L2's own #PF (its PTE not present) is not an NPF: the #PF intercept, error code 0,
     * the linear address (APM 15.12) */
    void *pte = pt_entry(&g, LA_4K, 1);
    u64 pteg = pte_get(&g, pte);
    pte_set(&g, pte, 0);
    TEST_EQF(run32(l2_read32, la4k), VMEXIT_EXCP(14), "%s: L2's PTE not present: #PF intercept", w);
    TEST_EQF(v->c.exit_info1, 0, "%s: #PF error code", w);
    TEST_EQF(v->c.exit_info2, la4k, "%s: #PF linear address", w);
    pte_set(&g, pte, pteg);

    data32[2] = 0x31415926;
    TEST_EQF(run32(l2_read32, la4k), VMEXIT_VMMCALL, "%s: L2 runs again", w);
    TEST_EQF((u32)svm_gregs[3], 0x31415926, "%s: and reads the page", w);
}

/* ---------------------------------------------------------------- real-mode L2 */
static u64 run_rm(u64 rax)
{
    setup_common(l2_rm, rax);
    v->s.efer = EFER_SVME;
    v->s.cr0 = CR0_ET;
    v->s.cr4 = 0;
    v->s.cr3 = 0;
    v->s.cs = (struct vmcb_seg){ RM_CODE >> 4, 0x9b, 0xffff, RM_CODE };
    struct vmcb_seg ds = { 0, 0x93, 0xffff, 0 };
    v->s.ss = v->s.ds = v->s.es = v->s.fs = v->s.gs = ds;
    v->s.gdtr = (struct vmcb_seg){ 0, 0, 0xffff, 0 };
    v->s.idtr = (struct vmcb_seg){ 0, 0, 0x3ff, 0 };
    v->s.ldtr = (struct vmcb_seg){ 0, 0x82, 0xffff, 0 };
    v->s.tr = (struct vmcb_seg){ 0, 0x8b, 0xffff, 0 };
    v->s.rip = 0;
    v->s.rsp = 0x5ff0;
    return svm_run(v);
}

static void l2_real(void)
{
    const char *w = "real-mode L2";
    char what[160];
    memcpy((void *)(ulong)RM_CODE, l2_rm, l2_rm_end - l2_rm);
    volatile u32 *ident = (volatile u32 *)(ulong)RM_DATA;
    ident[2] = 0xdeadbeef;
    rm_page[2] = 0x600d600d;
    u64 *n = npt_leaf4k(RM_DATA), good = *n;
    *n = PA(rm_page) | (good & ~ADDR_MASK);
    TEST_EQF(run_rm(RM_DATA + 8), VMEXIT_VMMCALL, "%s: runs", w);
    TEST_EQF((u32)svm_gregs[3], 0x600d600d, "%s: reads through a remapped nested page", w);

    *n = 0;
    snprintf(what, sizeof(what), "%s: read, NPT page not present", w);
    run_rm(RM_DATA + 8);
    expect_npf(NPF_U | NPF_FINAL, ~0ull, RM_DATA + 8, 0, what);
    *n = good;
    TEST_EQF(run_rm(RM_DATA + 8), VMEXIT_VMMCALL, "%s: identity nested page again", w);
    TEST_EQF((u32)svm_gregs[3], 0xdeadbeef, "%s: reads the identity page", w);

    /* the fetch: the I/D bit with L1's EFER.NXE (the nested walk's) */
    u64 id = (rdmsr(MSR_EFER) & EFER_NXE) ? NPF_ID : 0;
    u64 *c = npt_leaf4k(RM_CODE), cgood = *c;
    *c = 0;
    snprintf(what, sizeof(what), "%s: fetch, NPT page not present", w);
    run_rm(RM_DATA + 8);
    expect_npf(NPF_U | NPF_FINAL | id, ~0ull, RM_CODE, 0, what);
    *c = cgood;

    u64 *t = npt_entry(0, npt_levels()), tgood = *t;
    *t = 0;
    snprintf(what, sizeof(what), "%s: fetch, NPT %s 0 not present", w, npt_levels() == 5 ? "PML5E" : "PML4E");
    run_rm(RM_DATA + 8);
    expect_npf(NPF_U | NPF_FINAL | id, ~0ull, RM_CODE, 0, what);
    *t = tgood;
}

#ifndef SVM_NPT_WANT_LEVELS
#define SVM_NPT_WANT_LEVELS 4
#endif

void test_main(void)
{
    if (!svm_has(SVMF_NP)) {
        TEST_ASSERT(false, "nested paging (CPUID 8000_000Ah EDX[0]) with cpu=max,vendor=AuthenticAMD");
        return;
    }
    TEST_EQ(rt_paging_levels, SVM_NPT_WANT_LEVELS, "L1's paging levels (the NPT's)");
    svm_enable();
    gpa_hi = svm_maxphyaddr() > 48 && rt_paging_levels == 5 ? 1ull << 48 : 1ull << 39;
    if (svm_maxphyaddr() <= 39)
        panic("MAXPHYADDR %d: no room for guest-physical 2^39", svm_maxphyaddr());
    build_npt();
    tests_64();
    l2_32(PT_32BIT);
    l2_32(PT_PAE);
    l2_real();
}

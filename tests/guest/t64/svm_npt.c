/* AMD SVM nested paging (APM vol. 2 15.25): a 4-level identity NPT (2 MiB pages, 4 KiB
 * over the test image), L2 on L1's page tables and on its own; #VMEXIT NPF (0x400) with
 * EXITINFO2 = the guest-physical address and EXITINFO1 = the #PF-style error code (P, RW,
 * US always 1, ID) with bit 32 (final guest-physical address) or bit 33 (guest page-table
 * access): not present, read-only written, NX fetched; A/D bits in the NPT and in L2's
 * own tables; TLB_CONTROL 1 and 3 and INVLPGA after L1 changes an NPT entry.
 * guest: cpu=max,vendor=AuthenticAMD name=svm-npt */
#include "svm.h"

static struct vmcb *const v = &svm_vmcb;
static struct page_table npt, gpt;
static u64 npt_page[512] __attribute__((aligned(4096)));
static u64 npt_page2[512] __attribute__((aligned(4096)));
static u8 npt_code[4096] __attribute__((aligned(4096)));

#define L2_INSN(name, pre, insn)                                                              \
    extern char name[], name##_i[], name##_e[];                                               \
    asm(".pushsection .text\n" #name ":\n" pre "\n" #name "_i:\n" insn "\n" #name "_e:\n"     \
        "98: vmmcall\n jmp 98b\n.popsection")
L2_INSN(l2_read, "", "mov (%rax), %rbx");
L2_INSN(l2_write, "", "movq $0x77, (%rax)");
L2_INSN(l2_jump, "", "jmp *%rax");
L2_INSN(l2_vmsave, "", "vmsave");
static u8 vls_g[4096] __attribute__((aligned(4096)));
static u8 vls_h[4096] __attribute__((aligned(4096)));

/* NPT: identity, user+write leaves, 4 KiB pages over the 2 MiB regions of the image */
static void build_identity(struct page_table *pt)
{
    pt_init(pt, PT_4LEVEL);
    u64 lo = PA(__image_start) & ~0x1fffffull, hi = (PA(__image_end) + 0x1fffff) & ~0x1fffffull;
    if (lo)
        pt_map(pt, 0, 0, lo, 2 << 20, PTE_W | PTE_U);
    pt_map(pt, lo, lo, hi - lo, 4096, PTE_W | PTE_U);
    pt_map(pt, hi, hi, (4ull << 30) - hi, 2 << 20, PTE_W | PTE_U);
}

static u64 *leaf(struct page_table *pt, u64 addr)
{
    int level;
    u64 *e = pt_leaf(pt, addr, &level);
    if (!e || level != 1)
        panic("no 4 KiB leaf for %#llx", (unsigned long long)addr);
    return e;
}

static void setup(const void *code, bool own_pt, u64 rax)
{
    svm_vmcb_init(v, code);
    v->c.np_enable = 1;
    v->c.ncr3 = npt.root;
    v->c.tlb_control = 1;
    if (own_pt)
        v->s.cr3 = gpt.root;
    v->s.rax = rax;
}

static void expect_npf(u64 info1, u64 gpa, const char *what)
{
    TEST_EQF(v->c.exit_code, VMEXIT_NPF, "%s: NPF exit", what);
    TEST_EQF(v->c.exit_info1, info1, "%s: EXITINFO1", what);
    TEST_EQF(v->c.exit_info2, gpa, "%s: EXITINFO2 (guest-physical address)", what);
    TEST_EQF(v->c.exit_int_info, 0, "%s: EXITINTINFO", what);
}

static void basics(bool own)
{
    const char *w = own ? "L2's own page tables" : "L1's page tables";
    u64 *e = leaf(&npt, PA(npt_page));
    u64 good = *e;
    npt_page[1] = 0x1111;

    setup(l2_read, own, PA(&npt_page[1]));
    TEST_EQF(svm_run(v), VMEXIT_VMMCALL, "NPT identity, %s: L2 runs", w);
    TEST_EQF(svm_gregs[3], 0x1111, "%s: L2 reads through the NPT", w);

    *e = 0;
    setup(l2_read, own, PA(&npt_page[1]));
    svm_run(v);
    expect_npf(NPF_U | NPF_FINAL, PA(&npt_page[1]), "read of a not-present NPT page");
    TEST_EQ(v->s.rip, PA(l2_read_i), "NPF: RIP of the read");
    if (svm_has(SVMF_DECODE_ASSISTS)) {
        unsigned n = l2_read_e - l2_read_i;
        TEST_ASSERT(v->c.insn_len >= n && v->c.insn_len <= 15, "NPF: %u instruction bytes", v->c.insn_len);
        TEST_ASSERT(!memcmp(v->c.insn_bytes, l2_read_i, n), "NPF: the instruction bytes (decode assists)");
    }
    setup(l2_write, own, PA(&npt_page[1]));
    svm_run(v);
    expect_npf(NPF_U | NPF_W | NPF_FINAL, PA(&npt_page[1]), "write to a not-present NPT page");

    *e = (good & ~PTE_W);
    setup(l2_read, own, PA(&npt_page[1]));
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "read of a read-only NPT page: no exit");
    setup(l2_write, own, PA(&npt_page[1]));
    svm_run(v);
    expect_npf(NPF_P | NPF_U | NPF_W | NPF_FINAL, PA(&npt_page[1]), "write to a read-only NPT page");
    TEST_EQ(npt_page[1], 0x1111, "the write did not happen");

    *e = good & ~PTE_U;
    setup(l2_read, own, PA(&npt_page[1]));
    svm_run(v);
    expect_npf(NPF_P | NPF_U | NPF_FINAL, PA(&npt_page[1]), "read of a supervisor NPT page (NPT accesses are user accesses)");
    *e = good;

    /* NX in the NPT (L1 has EFER.NXE) */
    u64 *c = leaf(&npt, PA(npt_code));
    u64 cgood = *c;
    static const u8 code[] = { 0x0f, 0x01, 0xd9, 0xeb, 0xfb }; /* vmmcall; jmp back */
    memcpy(npt_code, code, sizeof(code));
    setup(l2_jump, own, PA(npt_code));
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "fetch from an executable NPT page");
    TEST_EQ(v->s.rip, PA(npt_code), "at its VMMCALL");
    if (rdmsr(MSR_EFER) & EFER_NXE) {
        *c = cgood | PTE_NX;
        setup(l2_jump, own, PA(npt_code));
        svm_run(v);
        expect_npf(NPF_P | NPF_U | NPF_ID | NPF_FINAL, PA(npt_code), "fetch from an NX NPT page");
        TEST_EQ(v->s.rip, PA(npt_code), "NPF on the fetch: RIP is the target");
        *c = cgood;
    } else {
        test_skip("no EFER.NXE");
    }
}

/* a guest page-table page not present in the NPT: bit 33 */
static void walk_fault(void)
{
    u64 pdpt = pte_get(&gpt, pt_entry(&gpt, 0, 4)) & 0x000ffffffffff000ull;
    u64 *e = leaf(&npt, pdpt);
    u64 good = *e;
    *e = 0;
    setup(l2_read, true, PA(&npt_page[1]));
    svm_run(v);
    TEST_EQ(v->c.exit_code, VMEXIT_NPF, "guest PDPT not present in the NPT: NPF");
    TEST_EQ(v->c.exit_info1 & (NPF_P | NPF_U | NPF_FINAL | NPF_WALK), NPF_U | NPF_WALK,
            "EXITINFO1: not present, user, bit 33 (guest page-table access), not bit 32");
    TEST_EQ(v->c.exit_info2, pdpt, "EXITINFO2: the guest PDPT entry's address");
    TEST_EQ(v->s.rip, PA(l2_read), "at L2's first instruction (its fetch walks the PDPT)");
    *e = good;
    setup(l2_read, true, PA(&npt_page[1]));
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "L2 runs again with the PDPT mapped");
}

/* accessed and dirty bits */
static void accessed_dirty(void)
{
    u64 *n = leaf(&npt, PA(npt_page)), *g = leaf(&gpt, PA(npt_page));
    *n &= ~(PTE_A | PTE_D);
    *g &= ~(PTE_A | PTE_D);
    setup(l2_read, true, PA(&npt_page[1]));
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "A/D: L2 reads");
    TEST_EQ(*n & (PTE_A | PTE_D), PTE_A, "NPT leaf: A set by the read, D clear");
    TEST_EQ(*g & (PTE_A | PTE_D), PTE_A, "L2's PTE: A set by the read, D clear");
    setup(l2_write, true, PA(&npt_page[2]));
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "A/D: L2 writes");
    TEST_EQ(*n & (PTE_A | PTE_D), PTE_A | PTE_D, "NPT leaf: D set by the write");
    TEST_EQ(*g & (PTE_A | PTE_D), PTE_A | PTE_D, "L2's PTE: D set by the write");
    TEST_EQ(npt_page[2], 0x77, "the write landed");
}

/* TLB_CONTROL and INVLPGA after an NPT change */
static void tlb(void)
{
    u64 *e = leaf(&npt, PA(npt_page));
    u64 good = *e, other = (good & ~0x000ffffffffff000ull) | PA(npt_page2);
    npt_page[1] = 0x1111;
    npt_page2[1] = 0x2222;
    setup(l2_read, true, PA(&npt_page[1]));
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "TLB: L2 reads the first page");
    TEST_EQ(svm_gregs[3], 0x1111, "through the old mapping");

    *e = other;
    v->s.rip = PA(l2_read);
    v->c.tlb_control = 1;
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "TLB_CONTROL 1 (flush all) after the NPT change");
    TEST_EQ(svm_gregs[3], 0x2222, "TLB_CONTROL 1: L2 sees the new mapping");

    if (svm_has(SVMF_FLUSH_ASID)) {
        *e = good;
        v->s.rip = PA(l2_read);
        v->c.tlb_control = 3;
        TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "TLB_CONTROL 3 (flush this ASID)");
        TEST_EQ(svm_gregs[3], 0x1111, "TLB_CONTROL 3: L2 sees the new mapping");
    } else {
        *e = good;
        v->s.rip = PA(l2_read);
        v->c.tlb_control = 1;
        svm_run(v);
        test_skip("no FlushByAsid: TLB_CONTROL 3");
    }

    /* INVLPGA of L2's linear page in its ASID */
    *e = other;
    invlpga(PA(&npt_page[1]), v->c.asid);
    v->s.rip = PA(l2_read);
    v->c.tlb_control = 0;
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "INVLPGA, then TLB_CONTROL 0");
    TEST_EQ(svm_gregs[3], 0x2222, "INVLPGA: L2 sees the new mapping");

    /* a new ASID has no stale translations either */
    *e = good;
    v->s.rip = PA(l2_read);
    v->c.asid = 2;
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "ASID 2, TLB_CONTROL 0");
    TEST_EQ(svm_gregs[3], 0x1111, "a fresh ASID sees the new mapping");
}

/* VMSAVE/VMLOAD virtualization (APM 15.33.1): with it, an L2's VMSAVE that L1 does not
 * intercept writes to the guest-physical address in rAX as the nested tables map it;
 * without it, rAX is taken as a physical address of the processor's own */
static u64 star_at(const u8 *page)
{
    u64 v;
    memcpy(&v, page + 0x600, 8);
    return v;
}

static void vmsave_virtualization(void)
{
    if (!svm_has(SVMF_VLS)) {
        test_skip("no VMSAVE/VMLOAD virtualization");
        return;
    }
    u64 star = rdmsr(MSR_STAR), mine = 0x0023001000000000ull;
    wrmsr(MSR_STAR, mine);
    u64 *e = leaf(&npt, PA(vls_g)), good = *e;
    *e = PA(vls_h) | (good & 0xfff); /* guest-physical G is host-physical H */
    memset(vls_g, 0, sizeof(vls_g));
    memset(vls_h, 0, sizeof(vls_h));
    setup(l2_vmsave, false, PA(vls_g));
    v->c.lbr_virt = 2; /* VMSAVE/VMLOAD virtualization */
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "virtualized VMSAVE in L2: no exit");
    TEST_EQ(star_at(vls_h), mine, "virtualized VMSAVE wrote through the nested tables");
    TEST_EQ(star_at(vls_g), 0, "... not at rAX as a host-physical address");
    memset(vls_h, 0, sizeof(vls_h));
    setup(l2_vmsave, false, PA(vls_g));
    v->c.lbr_virt = 0;
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "VMSAVE in L2 without virtualization: no exit");
    TEST_EQ(star_at(vls_g), mine, "VMSAVE without virtualization: rAX is physical");
    TEST_EQ(star_at(vls_h), 0, "... the nested tables are not used");
    /* a not-present nested page: #VMEXIT(NPF) for the virtualized VMSAVE */
    *e = 0;
    setup(l2_vmsave, false, PA(vls_g));
    v->c.lbr_virt = 2;
    svm_run(v);
    TEST_EQ(v->c.exit_code, VMEXIT_NPF, "virtualized VMSAVE to a not-present nested page: NPF");
    TEST_EQ(v->c.exit_info2, PA(vls_g), "NPF: its guest-physical address");
    *e = good;
    wrmsr(MSR_STAR, star);
}

void test_main(void)
{
    if (!svm_has(SVMF_NP)) {
        TEST_ASSERT(false, "nested paging (CPUID 8000_000Ah EDX[0]) with cpu=max,vendor=AuthenticAMD");
        return;
    }
    svm_enable();
    build_identity(&npt);
    build_identity(&gpt);
    basics(false);
    basics(true);
    walk_fault();
    accessed_dirty();
    tlb();
    vmsave_virtualization();
}

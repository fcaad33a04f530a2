/* Nested paging (APM 15.25): L2's guest-physical addresses translated through L1's nested
 * page tables by the one page walker, in the paging mode L1 had at VMRUN (15.25.3), every
 * access a user access (15.25.5), with #VMEXIT(NPF) on a fault; and the software TLB
 * across VMRUN and #VMEXIT, tagged by ASID (15.16). */
#include <string.h>

#include "cpu/svm/svm_internal.h"

void svm_npt_setup(struct cpu *c)
{
    struct paging_ctx *n = &c->svm->npt;
    memset(n, 0, sizeof(*n));
    if (c->efer & EFER_LMA)
        n->fmt = (c->cr4 & CR4_LA57) ? PG_LONG5 : PG_LONG4;
    else
        n->fmt = (c->cr4 & CR4_PAE) ? PG_PAE : PG_32;
    n->root = c->svm->ctl[VMCB_NCR3];
    n->maxphyaddr = c->model->phys_bits;
    n->pse = c->cr4 & CR4_PSE;
    n->nxe = c->efer & EFER_NXE;
    n->pdpe1gb = cpu_has(c, CF_PDPE1GB);
    n->ops = (struct paging_ops){ phys_entry_read, phys_entry_cmpxchg, c };
}

static bool npt_on(const struct cpu *c)
{
    return c->svm_guest && (c->svm->ctl[VMCB_NP_CONTROL] & 1);
}

static void npt_walk(struct cpu *c, u64 gpa, unsigned access, struct paging_result *r)
{
    struct paging_ctx n = c->svm->npt;
    /* legacy PAE nested tables: the four PDPEs are read from nCR3 at each walk (they
     * are not registers of the nested walk); one with reserved bits set faults */
    if (n.fmt == PG_PAE && !paging_load_pdptes(&n, n.root, n.pdpte)) {
        memset(r, 0, sizeof(*r));
        r->fault = PAGING_PF;
        r->pfec = PFEC_P | PFEC_RSVD | PFEC_U | (access & ACC_WRITE ? PFEC_W : 0);
        return;
    }
    paging_walk(&n, gpa, (access & (ACC_WRITE | ACC_EXEC | ACC_NO_AD)) | ACC_USER, r);
}

u64 svm_npt_translate(struct cpu *c, u64 gpa, unsigned access, u64 linear, bool table)
{
    (void)linear;
    if (!npt_on(c))
        return gpa;
    /* the guest's own page-table accesses are user writes to the nested tables (they
     * may set accessed and dirty bits) */
    if (table)
        access = (access & ACC_NO_AD) | ACC_WRITE;
    struct paging_result r;
    npt_walk(c, gpa, access, &r);
    if (r.fault == PAGING_OK)
        return r.pa;
    /* EXITINFO1: the #PF error code of the nested walk, and whether the fault was in
     * the final translation or in a walk of the guest's tables (APM 15.25.6) */
    struct svm_exit_info x = {
        .code = SVM_EXIT_NPF, .info1 = r.pfec | (table ? NPF_GUEST_TABLE : NPF_FINAL_GPA),
        .info2 = gpa, .insn_bytes = true,
    };
    svm_vmexit(c, &x);
}

bool svm_npt_peek(struct cpu *c, u64 gpa, unsigned access, u64 *hpa)
{
    if (!npt_on(c)) {
        *hpa = gpa;
        return true;
    }
    struct paging_result r;
    npt_walk(c, gpa, access | ACC_NO_AD, &r);
    *hpa = r.pa;
    return r.fault == PAGING_OK;
}

/* ---- the TLB across VMRUN and #VMEXIT: L2's translations are kept while its ASID,
 * its nested tables and its paging regime stay and TLB_CONTROL does not flush them ---- */
void svm_tlb_leaving_l1(struct cpu *c)
{
    c->svm->l1_regime = c->in->pg;
}

void svm_tlb_enter(struct cpu *c)
{
    struct svm *s = c->svm;
    u32 asid = (u32)s->ctl[VMCB_ASID];
    u64 ncr3 = (s->ctl[VMCB_NP_CONTROL] & 1) ? s->npt.root | (u64)s->npt.fmt << 60 : ~0ull;
    u8 control = (u8)s->ctl[VMCB_TLB_CONTROL];
    if (control == TLB_CONTROL_ALL) { /* every ASID's, the host's too (APM 15.16.1) */
        tlb_flush_all(&c->tlb);
        s->l2_tlb_valid = false;
    }
    bool keep = s->l2_tlb_valid && control == TLB_CONTROL_NOTHING && s->l2_tlb_asid == asid &&
                s->l2_tlb_ncr3 == ncr3 && paging_same_regime(&s->l2_regime, &c->in->pg);
    if (!keep)
        tlb_flush_context(&c->tlb, TLB_CTX_L2);
    s->l2_tlb_valid = true;
    s->l2_tlb_asid = asid;
    s->l2_tlb_ncr3 = ncr3;
    s->in_l2_ctx = true;
    tlb_switch_context(&c->tlb, TLB_CTX_L2);
    c->in->large_pages_cached = true; /* either context may hold large pages */
    c->in->exits |= EXIT_BLOCK_END;
}

void svm_tlb_leaving_l2(struct cpu *c)
{
    c->svm->l2_regime = c->in->pg;
}

void svm_tlb_exit(struct cpu *c)
{
    struct svm *s = c->svm;
    if (!paging_same_regime(&s->l1_regime, &c->in->pg))
        tlb_flush_context(&c->tlb, TLB_CTX_L1);
    s->in_l2_ctx = false;
    tlb_switch_context(&c->tlb, TLB_CTX_L1);
    c->in->large_pages_cached = true;
    c->in->exits |= EXIT_BLOCK_END;
}

/* EPT (SDM Vol. 3C 29.3): L2's guest-physical addresses translated through L1's EPT
 * paging structures by the one page walker (formats PG_EPT4 / PG_EPT5), with the
 * EPT-violation and misconfiguration exits. */
#include <string.h>

#include "cpu/vmx/vmx_internal.h"
#include "machine/mem.h"

/* EPTP (SDM 25.6.11): memory type (2:0: UC 0 or WB 6, as EPT_VPID_CAP offers), page-walk
 * length minus 1 (5:3: 3, or 4 with 5-level EPT), A/D enable (6: with the capability),
 * reserved 11:7 and the bits beyond MAXPHYADDR. */
bool vmx_eptp_valid(const struct vmx *v, u64 eptp, u8 maxphyaddr)
{
    u64 cap = v->caps.msr[VMX_EPT_VPID_CAP];
    unsigned type = eptp & 7, pwl = (eptp >> 3) & 7;
    if (!((type == 0 && (cap & EPT_CAP_UC)) || (type == 6 && (cap & EPT_CAP_WB))))
        return false;
    if (!((pwl == 3 && (cap & EPT_CAP_PWL4)) || (pwl == 4 && (cap & EPT_CAP_PWL5))))
        return false;
    if ((eptp & BIT(6)) && !(cap & EPT_CAP_AD))
        return false;
    if ((eptp >> 7) & 0x1f)
        return false;
    return (eptp >> maxphyaddr) == 0;
}

bool vmx_ept_active(const struct cpu *c)
{
    return c->vmx_non_root && (vmx_proc2(c->vmx) & PROC2_EPT);
}

static void ept_walk(struct cpu *c, u64 gpa, unsigned access, struct paging_result *r)
{
    u64 eptp = c->vmx->vmcs.f[VMCS_EPT_POINTER];
    struct paging_ctx ctx = {
        .fmt = ((eptp >> 3) & 7) == 4 ? PG_EPT5 : PG_EPT4,
        .root = eptp,
        .maxphyaddr = c->model->phys_bits,
        .pdpe1gb = c->vmx->caps.msr[VMX_EPT_VPID_CAP] & EPT_CAP_1G,
        .ept_ad = eptp & BIT(6),
        /* EPT paging structures live in L1's physical memory: RAM only */
        .ops = { phys_entry_read, phys_entry_cmpxchg, c },
    };
    paging_walk(&ctx, gpa, access & (ACC_WRITE | ACC_EXEC | ACC_NO_AD), r);
}

u64 vmx_ept_translate(struct cpu *c, u64 gpa, unsigned access, u64 linear, bool linear_valid,
                      bool table)
{
    if (!vmx_ept_active(c))
        return gpa;
    struct paging_result r;
    /* with EPT A/D, the processor's accesses to guest paging structures count as writes
     * (SDM 29.3.5) */
    if (table && (c->vmx->vmcs.f[VMCS_EPT_POINTER] & BIT(6)))
        access |= ACC_WRITE;
    ept_walk(c, gpa, access, &r);
    if (r.fault == PAGING_OK)
        return r.pa;
    struct vmx_exit_info x = { .guest_phys = gpa, .has_phys = true, .in_insn = true };
    /* the length of the instruction whose access it was, as processors report it (the
     * SDM leaves the field undefined here); none for a fetch */
    if (!(access & ACC_EXEC))
        x.insn_len = vmx_insn_length(c);
    if (r.fault == PAGING_EPT_MISCONFIG) {
        x.reason = EXIT_REASON_EPT_MISCONFIG;
    } else {
        x.reason = EXIT_REASON_EPT_VIOLATION;
        x.qual = r.ept_qual;
        if (linear_valid) {
            x.qual |= BIT(7) | (table ? 0 : BIT(8));
            x.guest_linear = linear;
            x.has_linear = true;
        }
        /* NMI unblocking due to IRET (bit 12) is not tracked: IRET's unblocking is
         * undone by the rollback of the faulting instruction */
    }
    vmx_exit(c, &x);
}

bool vmx_ept_peek(struct cpu *c, u64 gpa, unsigned access, u64 *hpa)
{
    if (!vmx_ept_active(c)) {
        *hpa = gpa;
        return true;
    }
    struct paging_result r;
    ept_walk(c, gpa, access | ACC_NO_AD, &r);
    *hpa = r.pa;
    return r.fault == PAGING_OK;
}

void vmx_ept_flush(struct cpu *c)
{
    tlb_flush_all(&c->tlb);
    c->vmx->l2_tlb_valid = false;
    c->in->large_pages_cached = false;
    c->in->exits |= EXIT_BLOCK_END;
}

/* ---- the TLB across transitions (SDM 29.4.3: with VPID, VM entries and exits need not
 * invalidate; without it, the mappings of VPID 0 go at both) ---- */

static bool vpid_on(const struct vmx *v)
{
    return vmx_proc2(v) & PROC2_VPID;
}

void vmx_tlb_leaving_l1(struct cpu *c)
{
    c->vmx->l1_regime = c->in->pg;
}

void vmx_tlb_enter(struct cpu *c)
{
    struct vmx *v = c->vmx;
    u16 vpid = (u16)v->vmcs.f[VMCS_VPID];
    u64 eptp = (vmx_proc2(v) & PROC2_EPT) ? v->vmcs.f[VMCS_EPT_POINTER] : 0;
    bool keep = vpid_on(v) && v->l2_tlb_valid && v->l2_tlb_vpid == vpid &&
                v->l2_tlb_eptp == eptp && paging_same_regime(&v->l2_regime, &c->in->pg);
    if (!keep)
        tlb_flush_context(&c->tlb, TLB_CTX_L2);
    v->l2_tlb_valid = vpid_on(v);
    v->l2_tlb_vpid = vpid;
    v->l2_tlb_eptp = eptp;
    v->in_l2_ctx = true;
    tlb_switch_context(&c->tlb, TLB_CTX_L2);
    c->in->large_pages_cached = true; /* either context may hold large pages */
    c->in->exits |= EXIT_BLOCK_END;
}

void vmx_tlb_leaving_l2(struct cpu *c)
{
    c->vmx->l2_regime = c->in->pg;
}

void vmx_tlb_exit(struct cpu *c)
{
    struct vmx *v = c->vmx;
    if (v->in_l2_ctx && !vpid_on(v)) {
        tlb_flush_context(&c->tlb, TLB_CTX_L2);
        v->l2_tlb_valid = false;
    }
    if (!paging_same_regime(&v->l1_regime, &c->in->pg))
        tlb_flush_context(&c->tlb, TLB_CTX_L1);
    v->in_l2_ctx = false;
    tlb_switch_context(&c->tlb, TLB_CTX_L1);
    c->in->large_pages_cached = true;
    c->in->exits |= EXIT_BLOCK_END;
}

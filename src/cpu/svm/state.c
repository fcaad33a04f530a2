/* SVM's state description: the MSRs and GIF's companions, guest mode (the VMCB address
 * and its cached control area, saved field by field under the names of the one VMCB
 * table), L1's values kept while L2 runs, the nested-paging mode, the TLB contexts, the
 * pause filter, a held INIT and the event being delivered. VMCBs and the host-save area
 * live in guest memory and travel with RAM. GIF itself is the vCPU's (cpu.c's section). */
#include <stdio.h>
#include <string.h>

#include "cpu/svm/svm_internal.h"
#include "machine/state.h"

#define F(m) STATE_FIELD(struct paging_ctx, m)
#define N(m) STATE_NOT_STATE(struct paging_ctx, m)
static const struct state_field regime_fields[] = {
    F(fmt), F(root), F(pdpte), F(maxphyaddr), F(wp), F(pse), F(nxe), F(smep), F(smap),
    F(ac), F(pdpe1gb), F(ept_ad), N(ops),
};
#undef F
#undef N
static const struct state_desc regime_desc =
    STATE_DESC("paging-regime", 1, struct paging_ctx, regime_fields);

#define F(m) STATE_FIELD(struct svm, m)
#define S(m) STATE_STRUCT(struct svm, m, regime_desc)
#define N(m) STATE_NOT_STATE(struct svm, m)
static const struct state_field svm_fields[] = {
    F(vm_cr), F(hsave_pa), F(tsc_ratio), F(vmcb_pa),
    N(ctl), /* by name, in the variable part */
    F(host_if), F(l1_tsc_offset), F(l1_pat), S(npt),
    F(in_l2_ctx), F(l2_tlb_valid), F(l2_tlb_asid), F(l2_tlb_ncr3), S(l1_regime), S(l2_regime),
    F(pause_left), F(pause_last), F(init_pending), F(init_bsp), F(delivering), F(exiting),
};
#undef F
#undef S
#undef N

static void svm_save(void *obj, struct state_buf *b)
{
    const struct svm *s = obj;
    state_put_u32(b, VMCB_CTL_COUNT);
    for (int f = 0; f < VMCB_CTL_COUNT; f++) {
        state_put_str(b, vmcb_fields[f].name);
        state_put_u64(b, s->ctl[f]);
    }
}

static int svm_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct svm *s = obj;
    u32 n = state_get_u32(c);
    if (n != VMCB_CTL_COUNT)
        return nestor_err(err, errlen, "the VMCB control area has %u fields in the file, %d here",
                          n, VMCB_CTL_COUNT);
    for (int f = 0; f < VMCB_CTL_COUNT && !c->bad; f++) {
        char name[64];
        if (!state_get_str(c, name, sizeof(name)) || strcmp(name, vmcb_fields[f].name) != 0)
            return nestor_err(err, errlen, "VMCB field '%s' in the file where this nestor has %s",
                              c->bad ? "?" : name, vmcb_fields[f].name);
        u64 v = state_get_u64(c);
        unsigned w = vmcb_fields[f].width;
        s->ctl[f] = w == 8 ? v : v & ((1ull << (8 * w)) - 1);
    }
    return 0;
}

static const struct state_desc svm_state_desc =
    STATE_DESC("svm", 1, struct svm, svm_fields, .save = svm_save, .load = svm_load);

int svm_state_post_load(struct cpu *c, char *err, size_t errlen)
{
    struct svm *s = c->svm;
    const struct paging_ctx *rg[3] = { &s->npt, &s->l1_regime, &s->l2_regime };
    for (int k = 0; k < 3; k++)
        if (rg[k]->fmt > PG_LONG5 || rg[k]->maxphyaddr > 52)
            return nestor_err(err, errlen, "impossible SVM paging regime");
    if (c->svm_guest && !svm_pa_ok(c, s->vmcb_pa))
        return nestor_err(err, errlen, "SVM guest mode with an impossible VMCB address");
    s->l1_regime.ops = s->l2_regime.ops = c->in->pg.ops;
    s->npt.ops = (struct paging_ops){ phys_entry_read, phys_entry_cmpxchg, c };
    return 0;
}

void svm_state_register(struct cpu *c, struct state_registry *r)
{
    state_register(r, &svm_state_desc, (u32)c->id, c->svm);
}

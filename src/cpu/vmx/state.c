/* VMX's state description. The current VMCS's contents are saved field by field under
 * their architectural encodings, through the one field table (vmcs.c) that VMREAD,
 * VMWRITE and shadowing use; other VMCSs (cached, shadow, the VMXON region) live in
 * guest memory and travel with RAM. The rest is what VMX keeps between instructions:
 * VMX operation, the current-VMCS pointer and its launch state, L1's NMI blocking and
 * TSC offset while L2 runs, the TLB contexts, and every event due at a coming
 * instruction boundary (MTF, a trap-like APIC-virtualization exit, a latched INIT or
 * SIPI, the preemption timer, the pause loop). */
#include <stdio.h>

#include "cpu/exec.h"
#include "cpu/vmx/vmx_internal.h"
#include "machine/state.h"

#define F(m) STATE_FIELD(struct vmx, m)
#define N(m) STATE_NOT_STATE(struct vmx, m)
static const struct state_field vmx_fields[] = {
    N(caps), /* derived from the CPU model, which must match */
    F(on), F(vmxon_ptr), F(current),
    N(vmcs), /* by encoding, in the variable part */
    F(launched), F(current_is_shadow), F(l1_nmi_blocked), F(l1_tsc_offset),
    F(in_l2_ctx), F(l2_tlb_valid), F(l2_tlb_vpid), F(l2_tlb_eptp),
    F(l1_regime.fmt), F(l1_regime.root), F(l1_regime.pdpte), F(l1_regime.maxphyaddr),
    F(l1_regime.wp), F(l1_regime.pse), F(l1_regime.nxe), F(l1_regime.smep),
    F(l1_regime.smap), F(l1_regime.ac), F(l1_regime.pdpe1gb), F(l1_regime.ept_ad),
    N(l1_regime.ops),
    F(l2_regime.fmt), F(l2_regime.root), F(l2_regime.pdpte), F(l2_regime.maxphyaddr),
    F(l2_regime.wp), F(l2_regime.pse), F(l2_regime.nxe), F(l2_regime.smep),
    F(l2_regime.smap), F(l2_regime.ac), F(l2_regime.pdpe1gb), F(l2_regime.ept_ad),
    N(l2_regime.ops),
    F(ple_active), F(ple_start), F(ple_last), F(mtf_pending), F(preempt_deadline_tsc),
    F(preempt_active), F(init_pending), F(init_bsp), F(sipi_pending), F(sipi_vector),
    F(trap_pending), F(trap_reason), F(trap_qual),
    F(delivering), F(deliver_info), F(deliver_error), F(deliver_insn_len),
    F(exiting), F(evmcs_assist), F(evmcs),
};
#undef F
#undef N

static void vmx_save(void *obj, struct state_buf *b)
{
    const struct vmx *v = obj;
    int n;
    const struct vmcs_field_desc *t = vmcs_field_table(&n);
    state_put_u32(b, (u32)n);
    for (int i = 0; i < n; i++) {
        state_put_u32(b, t[i].encoding);
        state_put_u64(b, v->vmcs.f[t[i].field]);
    }
}

static int vmx_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct vmx *v = obj;
    int n;
    const struct vmcs_field_desc *t = vmcs_field_table(&n);
    u32 count = state_get_u32(c);
    if (count != (u32)n) {
        return nestor_err(err, errlen, "the VMCS has %u fields in the file, %d here", count, n);
    }
    /* the table is in encoding order, and so is the file */
    for (int i = 0; i < n && !c->bad; i++) {
        u32 enc = state_get_u32(c);
        u64 val = state_get_u64(c);
        if (enc != t[i].encoding) {
            return nestor_err(err, errlen, "VMCS field %#x in the file where this nestor has %#x (%s)",
                     enc, t[i].encoding, t[i].name);
        }
        vmcs_write(&v->vmcs, &t[i], false, val); /* truncated to the field's width */
    }
    return 0;
}

static const struct state_desc vmx_state_desc =
    STATE_DESC("vmx", 1, struct vmx, vmx_fields, .save = vmx_save, .load = vmx_load);

int vmx_state_post_load(struct cpu *c, char *err, size_t errlen)
{
    struct vmx *v = c->vmx;
    const struct paging_ctx *rg[2] = { &v->l1_regime, &v->l2_regime };
    for (int k = 0; k < 2; k++)
        if (rg[k]->fmt > PG_EPT5 || rg[k]->maxphyaddr > 52) {
            return nestor_err(err, errlen, "impossible VMX paging regime");
        }
    if (c->vmx_non_root && (!v->on || (v->current == ~0ull && v->evmcs == ~0ull))) {
        return nestor_err(err, errlen, "non-root operation without a current VMCS");
    }
    v->l1_regime.ops = v->l2_regime.ops = c->in->pg.ops;
    return 0;
}

void vmx_state_register(struct cpu *c, struct state_registry *r)
{
    state_register(r, &vmx_state_desc, (u32)c->id, c->vmx);
}

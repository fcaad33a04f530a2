/* The SVM state of a vCPU: creation, RESET and INIT, the SVM MSRs (APM 15.30), EFER.SVME,
 * and the record of the event being delivered (EXITINTINFO). */
#include <stdlib.h>
#include <string.h>

#include "cpu/svm/svm_internal.h"

int svm_init(struct cpu *c)
{
    c->svm = NULL;
    c->svm_guest = false;
    c->gif = true;
    if (!cpuid_has(c->model, "svm") || c->model->vendor != VENDOR_AMD)
        return 0;
    struct svm *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    c->svm = s;
    svm_reset(c);
    return 0;
}

void svm_destroy(struct cpu *c)
{
    free(c->svm);
    c->svm = NULL;
    c->svm_guest = false;
}

/* RESET (and the INIT that reaches the processor): guest mode ends, GIF is set, the MSRs
 * return to 0 (APM 15.30: VM_CR and VM_HSAVE_PA reset to 0). */
void svm_reset(struct cpu *c)
{
    c->svm_guest = false;
    c->gif = true;
    struct svm *s = c->svm;
    if (!s)
        return;
    memset(s, 0, sizeof(*s));
    s->tsc_ratio = TSC_RATIO_ONE;
    tlb_switch_context(&c->tlb, TLB_CTX_L1);
}

void svm_init_reset(struct cpu *c)
{
    struct svm *s = c->svm;
    c->svm_guest = false;
    c->gif = true;
    if (!s)
        return;
    s->init_pending = false;
    s->delivering = 0;
    s->in_l2_ctx = false;
    tlb_switch_context(&c->tlb, TLB_CTX_L1);
}

bool svm_init_signal(struct cpu *c, bool is_bsp)
{
    struct svm *s = c->svm;
    if (!s)
        return false;
    /* APM 15.18: INIT is held while GIF is 0 (taken at STGI), and with the INIT intercept
     * in guest mode becomes a #VMEXIT; otherwise it happens (and ends guest mode). */
    if (!c->gif || (c->svm_guest && svm_intercepted1(s, I1_INIT))) {
        s->init_pending = true;
        s->init_bsp = is_bsp;
        if (c->svm_guest && c->state == CPU_HALTED)
            c->state = CPU_RUNNING;
        cpu_check_events(c);
        return true;
    }
    return false;
}

bool svm_efer_svme_allowed(const struct cpu *c)
{
    return c->svm && !(c->svm->vm_cr & VM_CR_SVMDIS);
}

bool svm_msr_read(struct cpu *c, u32 index, u64 *value)
{
    struct svm *s = c->svm;
    if (!s)
        return false;
    switch (index) {
    case MSR_VM_CR: *value = s->vm_cr; return true;
    case MSR_VM_HSAVE_PA: *value = s->hsave_pa; return true;
    case MSR_SVM_TSC_RATIO: *value = s->tsc_ratio; return true;
    default: return false;
    }
}

bool svm_msr_write(struct cpu *c, u32 index, u64 value)
{
    struct svm *s = c->svm;
    if (!s)
        return false;
    switch (index) {
    case MSR_VM_CR: {
        const u64 known = VM_CR_DPD | VM_CR_R_INIT | VM_CR_DIS_A20M | VM_CR_LOCK | VM_CR_SVMDIS;
        if (value & ~known)
            return false;
        /* with LOCK set, LOCK and SVMDIS are read-only (APM 15.30.1; without the SVM-lock
         * feature no key can unlock them) */
        if ((s->vm_cr & VM_CR_LOCK) && ((value ^ s->vm_cr) & (VM_CR_LOCK | VM_CR_SVMDIS)))
            return false;
        /* SVMDIS cannot be set while SVM is on */
        if ((value & VM_CR_SVMDIS) && (c->efer & EFER_SVME))
            return false;
        s->vm_cr = value;
        return true;
    }
    case MSR_VM_HSAVE_PA:
        /* the host-save area is a page below MAXPHYADDR (APM 15.30.4) */
        if (!svm_pa_ok(c, value))
            return false;
        s->hsave_pa = value;
        return true;
    case MSR_SVM_TSC_RATIO:
        if (value & TSC_RATIO_RESERVED)
            return false;
        s->tsc_ratio = value;
        return true;
    default:
        return false;
    }
}

void svm_note_delivery(struct cpu *c, u8 vector, int type, bool has_error, u32 error)
{
    static const u32 type_of_evt[] = {
        [EVT_EXT_INTR] = EVTINJ_TYPE_INTR, [EVT_NMI] = EVTINJ_TYPE_NMI,
        [EVT_HW_EXC] = EVTINJ_TYPE_EXC,    [EVT_SW_INT] = EVTINJ_TYPE_SOFT,
        [EVT_PRIV_SW_EXC] = EVTINJ_TYPE_EXC, [EVT_SW_EXC] = EVTINJ_TYPE_EXC,
    };
    /* EXITINTINFO names the event being delivered when an intercept cut it short (APM
     * 15.7.2): a fault raised while delivering an event replaces it (its own delivery
     * begins), so the last one noted is the one */
    c->svm->delivering = vector | (u64)type_of_evt[type] << 8 | (has_error ? EVTINJ_EV : 0) |
                         EVTINJ_VALID | (has_error ? (u64)error << 32 : 0);
}

void svm_delivery_done(struct cpu *c)
{
    c->svm->delivering = 0;
}

/* #VMEXIT (APM 15.6): L2's state and the exit information go to the VMCB, L1's state
 * comes back from the host-save area, GIF is cleared, and the loop continues in L1. */
#include <string.h>

#include "cpu/nested.h"
#include "cpu/svm/svm_internal.h"

s64 svm_l1_tsc_offset(const struct cpu *c)
{
    return c->svm_guest ? c->svm->l1_tsc_offset : c->tsc_offset;
}

u64 svm_l1_tsc(const struct cpu *c)
{
    /* L1's TSC: neither L2's offset nor its ratio */
    return cpu_l1_tsc_at(c, c->ops->now_ns((struct cpu *)c, c->ops_opaque));
}

static void store_guest_state(struct cpu *c, u64 vmcb)
{
    struct svm *s = c->svm;
    vmcb_put_world(c, vmcb, c->rip);
    vmcb_put(c, vmcb, VMCB_CR2, c->cr2);
    vmcb_put(c, vmcb, VMCB_DR6, c->dr[6]);
    vmcb_put(c, vmcb, VMCB_DR7, c->dr[7]);
    vmcb_put(c, vmcb, VMCB_CPL, c->cpl);
    if (s->ctl[VMCB_NP_CONTROL] & 1)
        vmcb_put(c, vmcb, VMCB_G_PAT, c->msr_pat);
    /* the virtual interrupt state (V_TPR, V_IRQ) and the interrupt shadow with L2's IF */
    vmcb_put(c, vmcb, VMCB_VINTR, s->ctl[VMCB_VINTR]);
    vmcb_put(c, vmcb, VMCB_INTR_SHADOW,
             (c->intr_shadow ? 1u : 0u) | ((c->rflags & FL_IF) ? 2u : 0u));
}

/* L1's state from the host-save area (APM 15.6): CR0.PE is set whatever was saved, DR7
 * disables every breakpoint, CPL is 0; the rest is what VMRUN saved. */
static void load_host_state(struct cpu *c)
{
    struct svm *s = c->svm;
    u64 h = s->hsave_pa;
    vmcb_get_world(c, h);
    c->efer = vmcb_get(c, h, VMCB_EFER);
    c->cr0 = vmcb_get(c, h, VMCB_CR0) | CR0_PE;
    c->cr3 = vmcb_get(c, h, VMCB_CR3);
    c->cr4 = vmcb_get(c, h, VMCB_CR4);
    c->dr[7] = 0x400;
    if (s->ctl[VMCB_NP_CONTROL] & 1)
        c->msr_pat = s->l1_pat;
}

_Noreturn void svm_vmexit(struct cpu *c, const struct svm_exit_info *x)
{
    struct svm *s = c->svm;
    u64 vmcb = s->vmcb_pa;
    svm_tlb_leaving_l2(c);
    store_guest_state(c, vmcb);
    vmcb_put(c, vmcb, VMCB_EXITCODE, x->code);
    vmcb_put(c, vmcb, VMCB_EXITINFO1, x->info1);
    vmcb_put(c, vmcb, VMCB_EXITINFO2, x->info2);
    /* an exit that cut the delivery of an event short names it (APM 15.7.2) */
    vmcb_put(c, vmcb, VMCB_EXITINTINFO, s->delivering);
    s->delivering = 0;
    /* the injected event was taken (or is in EXITINTINFO): EVENTINJ's valid bit clears */
    vmcb_put(c, vmcb, VMCB_EVENTINJ, s->ctl[VMCB_EVENTINJ] & ~(u64)EVTINJ_VALID);
    vmcb_put(c, vmcb, VMCB_NRIP, x->nrip);
    /* decode assists: the bytes of the instruction at RIP, for #NPF and intercepted #PF
     * (APM 15.33.5); 0 when none could be fetched */
    u8 bytes[15];
    unsigned n = 0;
    if (x->insn_bytes) {
        u64 lin = cpu_is_long64(c) ? c->rip : (c->seg[SEG_CS].base + c->rip) & 0xffffffffull;
        u64 wrap = cpu_is_long64(c) ? ~0ull : 0xffffffffull;
        while (n < 15 && lin_peek(c, (lin + n) & wrap, bytes + n, 1))
            n++;
    }
    vmcb_put(c, vmcb, VMCB_INSN_LEN, n);
    if (n)
        nested_phys_write(c, vmcb + VMCB_INSN_BYTES, bytes, n);
    if (c->in->trace_events)
        fprintf(c->in->trace, "cpu%d #vmexit %#llx info1 %#llx info2 %#llx rip %#llx\n", c->id,
                (unsigned long long)x->code, (unsigned long long)x->info1,
                (unsigned long long)x->info2, (unsigned long long)c->rip);
    if (c->pmu.enabled) /* what L2 ran counted as guest mode's */
        pmu_sync(c);
    c->svm_guest = false;
    c->gif = false;
    c->tsc_offset = s->l1_tsc_offset;
    c->tsc_multiplier = 0;
    c->tsc_scaled_offset = 0;
    load_host_state(c);
    /* an illegal host state (the host-save area is ordinary memory) shuts down */
    bool legal = svm_host_state_legal(c);
    c->intr_shadow = SHADOW_NONE;
    c->state = CPU_RUNNING;
    c->mwait = false;
    c->monitor_armed = false;
    c->in->held_db_bits = 0;
    debug_update(c);
    cpu_update_mode(c);
    cpu_set_cpl(c, 0);
    if (c->pmu.enabled)
        pmu_refresh(c);
    mmu_params_update(c);
    /* L1 in legacy PAE paging: its PDPTEs from its CR3 again */
    if ((c->cr0 & CR0_PG) && (c->cr4 & CR4_PAE) && !(c->efer & EFER_LMA))
        paging_load_pdptes(&c->in->pg, c->cr3, c->in->pg.pdpte);
    svm_tlb_exit(c);
    c->in->exits |= EXIT_RIP_WRITTEN | EXIT_RF_WRITTEN | EXIT_BLOCK_END | EXIT_CHECK_EVENTS;
    if (!legal) {
        struct cpu_event ev = { .kind = EV_SHUTDOWN };
        cpu_intercept(c, &ev);
        c->state = CPU_SHUTDOWN;
    }
    exec_context_switched(c);
}

_Noreturn void svm_exit_insn(struct cpu *c, u64 code, u64 info1, u64 info2)
{
    struct nested_decoded dd;
    nested_decode_at_rip(c, &dd);
    u64 nrip = (c->rip + (dd.ok ? dd.d.length : 0)) & cpu_rip_mask(c);
    struct svm_exit_info x = { .code = code, .info1 = info1, .info2 = info2, .nrip = nrip };
    svm_vmexit(c, &x);
}

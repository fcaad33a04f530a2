/* VM entry (SDM Vol. 3C chapter 27): the checks (entry_checks.c), loading L2's state from
 * the VMCS, the VM-entry MSR-load area, and event injection. */
#include <string.h>

#include "cpu/vmx/vmx_internal.h"
#include "cpu/vmx/entry_checks.h"

static void load_seg(struct cpu *c, struct seg *s, int k)
{
    const struct vmcs *f = &c->vmx->vmcs;
    const struct vmx_seg_fields *g = &vmx_guest_seg[k];
    s->sel = (u16)f->f[g->sel];
    s->base = f->f[g->base];
    s->limit = (u32)f->f[g->limit];
    s->attr = (u32)f->f[g->ar] & 0x1f0ffu;
}

/* A failed entry after the controls and host state were found valid: the VM exit with
 * the entry-failure bit (SDM 27.8), L1's host state loaded. */
static _Noreturn void entry_failure(struct cpu *c, u32 reason, u64 qual)
{
    struct vmx_exit_info x = { .reason = reason | EXIT_REASON_ENTRY_FAILURE, .qual = qual };
    vmx_exit(c, &x);
}

/* Loading guest state (SDM 27.3.2). */
static void load_guest_state(struct cpu *c)
{
    struct vmx *v = c->vmx;
    const struct vmcs *f = &v->vmcs;
    u32 entry = (u32)f->f[VMCS_ENTRY_CONTROLS];
    c->cr0 = f->f[VMCS_GUEST_CR0] & 0xffffffffull;
    c->cr4 = f->f[VMCS_GUEST_CR4];
    c->cr3 = f->f[VMCS_GUEST_CR3];
    if (entry & ENTRY_LOAD_DEBUG) {
        c->dr[7] = f->f[VMCS_GUEST_DR7];
        c->msr_debugctl = f->f[VMCS_GUEST_DEBUGCTL];
    }
    c->msr_sysenter_cs = (u32)f->f[VMCS_GUEST_SYSENTER_CS];
    c->msr_sysenter_esp = f->f[VMCS_GUEST_SYSENTER_ESP];
    c->msr_sysenter_eip = f->f[VMCS_GUEST_SYSENTER_EIP];
    if (entry & ENTRY_LOAD_PAT)
        c->msr_pat = f->f[VMCS_GUEST_PAT];
    if (entry & ENTRY_LOAD_EFER) {
        c->efer = f->f[VMCS_GUEST_EFER];
    }
    /* LMA follows "IA-32e mode guest"; so does LME when paging is on (SDM 27.3.2.1) */
    if (entry & ENTRY_IA32E_GUEST) {
        c->efer |= EFER_LMA;
        if (c->cr0 & CR0_PG)
            c->efer |= EFER_LME;
    } else {
        c->efer &= ~(u64)EFER_LMA;
        if (c->cr0 & CR0_PG)
            c->efer &= ~(u64)EFER_LME;
    }
    for (int s = 0; s < 6; s++)
        load_seg(c, &c->seg[s], s);
    load_seg(c, &c->ldtr, VMX_SEG_LDTR);
    load_seg(c, &c->tr, VMX_SEG_TR);
    c->gdtr = (struct dtr){ f->f[VMCS_GUEST_GDTR_BASE], (u16)f->f[VMCS_GUEST_GDTR_LIMIT] };
    c->idtr = (struct dtr){ f->f[VMCS_GUEST_IDTR_BASE], (u16)f->f[VMCS_GUEST_IDTR_LIMIT] };
    c->gpr[R_RSP] = f->f[VMCS_GUEST_RSP];
    c->rip = f->f[VMCS_GUEST_RIP];
    c->in->lz.op = LZ_NONE;
    c->rflags = f->f[VMCS_GUEST_RFLAGS];
}

/* The guest's interruptibility, activity and pending debug exceptions (27.3.2.5, 27.7). */
static void load_nonregister_state(struct cpu *c)
{
    struct vmx *v = c->vmx;
    const struct vmcs *f = &v->vmcs;
    u32 intr = (u32)f->f[VMCS_GUEST_INTERRUPTIBILITY];
    c->intr_shadow = (intr & INTERRUPTIBILITY_MOV_SS) ? SHADOW_MOV_SS :
                     (intr & INTERRUPTIBILITY_STI) ? SHADOW_STI : SHADOW_NONE;
    v->l1_nmi_blocked = c->nmi_blocked;
    if ((vmx_pin(v) & PIN_VIRTUAL_NMIS) || (intr & INTERRUPTIBILITY_NMI))
        c->nmi_blocked = intr & INTERRUPTIBILITY_NMI;
    switch (f->f[VMCS_GUEST_ACTIVITY_STATE]) {
    case ACTIVITY_HLT: c->state = CPU_HALTED; break;
    case ACTIVITY_SHUTDOWN: c->state = CPU_SHUTDOWN; break;
    case ACTIVITY_WAIT_SIPI: c->state = CPU_WAIT_FOR_SIPI; break;
    default: c->state = CPU_RUNNING; break;
    }
    c->mwait = false;
    /* pending debug exceptions are delivered after entry as if held by MOV SS (B0-B3,
     * BS: a #DB at the first boundary that allows it) */
    c->in->held_db_bits = (u32)(f->f[VMCS_GUEST_PENDING_DBG] & (0xfu | DR6_BS));
}

/* Event injection (SDM 27.6): delivered through L2's IDT as the first thing L2 does. */
static void inject_event(struct cpu *c)
{
    struct vmx *v = c->vmx;
    struct vmcs *f = &v->vmcs;
    u32 info = (u32)f->f[VMCS_ENTRY_INTR_INFO];
    /* the valid bit is cleared on every VM exit; an entry consumes it */
    f->f[VMCS_ENTRY_INTR_INFO] = info & ~INTR_INFO_VALID;
    if (!(info & INTR_INFO_VALID))
        return;
    u8 vector = (u8)INTR_INFO_VECTOR(info);
    unsigned type = INTR_INFO_TYPE(info);
    bool has_error = info & INTR_INFO_ERROR;
    u32 error = (u32)f->f[VMCS_ENTRY_EXCEPTION_ERROR];
    u32 len = (u32)f->f[VMCS_ENTRY_INSN_LEN];
    static const int evt_of_type[8] = {
        [INTR_TYPE_EXT] = EVT_EXT_INTR, [INTR_TYPE_NMI] = EVT_NMI,
        [INTR_TYPE_HW_EXC] = EVT_HW_EXC, [INTR_TYPE_SW_INT] = EVT_SW_INT,
        [INTR_TYPE_PRIV_SW_EXC] = EVT_PRIV_SW_EXC, [INTR_TYPE_SW_EXC] = EVT_SW_EXC,
    };
    if (type == INTR_TYPE_OTHER) {
        /* "other event": vector 0 is a pending MTF VM exit (SDM 27.6.2) */
        v->mtf_pending = true;
        return;
    }
    bool soft = type == INTR_TYPE_SW_INT || type == INTR_TYPE_PRIV_SW_EXC ||
                type == INTR_TYPE_SW_EXC;
    u64 ret = soft ? (c->rip + len) & cpu_rip_mask(c) : c->rip;
    vmx_note_delivery(c, vector, evt_of_type[type], has_error, error, len);
    c->in->delivering = type == INTR_TYPE_HW_EXC ? vector : -1;
    /* the injected event is not subject to the exception bitmap; faults while it is
     * delivered are (they go through the ordinary path, with this event's IDT-vectoring
     * information). In real mode an error code is not pushed. */
    cpu_deliver(c, vector, evt_of_type[type], has_error && cpu_is_prot(c), error, ret);
    if (type == INTR_TYPE_NMI)
        c->nmi_blocked = true;
    c->in->delivering = -1;
    /* with MTF, an exit is pending before the handler's first instruction (26.5.2) */
    if (vmx_proc(v) & PROC_MTF)
        v->mtf_pending = true;
    vmx_delivery_done(c);
}

void vmx_vmentry(struct cpu *c, bool launch)
{
    struct vmx *v = c->vmx;
    struct vmcs *f = &v->vmcs;
    struct vmx_check_failure fail;
    /* 27.2: controls (VMfail 7) and host state (VMfail 8) */
    if (!vmx_entry_check_controls_host(c, &fail)) {
        vmx_fail(c, fail.insn_error);
        return;
    }
    /* From here on, a failure is a VM exit to L1's host state. The current state of
     * the vCPU is L1's at VMLAUNCH/VMRESUME, i.e. what the host-state area will load. */
    v->l1_tsc_offset = c->tsc_offset;
    if (!vmx_entry_check_guest(c, &fail))
        entry_failure(c, EXIT_REASON_INVALID_GUEST_STATE, fail.qual);
    c->monitor_armed = false;
    vmx_tlb_leaving_l1(c);
    load_guest_state(c);
    c->vmx_non_root = true;
    /* RDTSC in L2: L1's TSC + the TSC offset, or scaled by the TSC multiplier first
     * (SDM 26.3, "use TSC scaling" with "use TSC offsetting") */
    bool offsetting = vmx_proc(v) & PROC_TSC_OFFSETTING;
    if (offsetting && (vmx_proc2(v) & PROC2_TSC_SCALING)) {
        c->tsc_multiplier = f->f[VMCS_TSC_MULTIPLIER];
        c->tsc_scaled_offset = (s64)f->f[VMCS_TSC_OFFSET];
    } else {
        c->tsc_offset = (s64)((u64)v->l1_tsc_offset + (offsetting ? f->f[VMCS_TSC_OFFSET] : 0));
    }
    v->ple_active = false; /* the first PAUSE after VM entry starts a loop */
    load_nonregister_state(c);
    debug_update(c);
    cpu_update_mode(c);
    mmu_params_update(c); /* the TLB: vmx_tlb_enter below */
    /* PDPTEs for PAE paging: from the VMCS with EPT, else from CR3 (SDM 27.3.2.4) */
    if ((c->cr0 & CR0_PG) && (c->cr4 & CR4_PAE) && !(c->efer & EFER_LMA)) {
        if (vmx_proc2(v) & PROC2_EPT) {
            for (int k = 0; k < 4; k++)
                c->in->pg.pdpte[k] = f->f[VMCS_GUEST_PDPTE0 + k];
        } else if (!paging_load_pdptes(&c->in->pg, c->cr3, c->in->pg.pdpte)) {
            entry_failure(c, EXIT_REASON_INVALID_GUEST_STATE, 2);
        }
    }
    /* 27.4: the VM-entry MSR-load area */
    u32 bad = vmx_load_msrs(c, f->f[VMCS_ENTRY_MSR_LOAD_ADDR],
                            (u32)f->f[VMCS_ENTRY_MSR_LOAD_COUNT]);
    if (bad)
        entry_failure(c, EXIT_REASON_MSR_LOADING, bad);
    if (launch)
        v->launched = true;
    vmx_preempt_start(c);
    vmx_apicv_entry(c);
    vmx_tlb_enter(c);
    /* Exit information of the last exit stays readable; the IDT-vectoring field is
     * cleared by the next exit. The VMLAUNCH/VMRESUME instruction retires here: the
     * loop's snapshot becomes L2's state, so that a fault delivering the injected event
     * is L2's (no single-step trap or RF clearing from L1's instruction). */
    exec_enter_context(c);
    c->in->exits |= EXIT_RIP_WRITTEN | EXIT_RF_WRITTEN | EXIT_EVENT_DELIVERED |
                    EXIT_BLOCK_END | EXIT_CHECK_EVENTS;
    if (c->in->trace_events)
        fprintf(c->in->trace, "cpu%d vmentry rip %#llx\n", c->id, (unsigned long long)c->rip);
    inject_event(c);
}

/* VM exits (SDM Vol. 3C chapter 28): which events exit (26.1, 26.2: decided here, at the
 * one interception point, from L1's controls), the exit information, saving L2's state,
 * the MSR-store and MSR-load areas, and loading L1's host state. */
#include <string.h>

#include "cpu/sgx/sgx.h"
#include "cpu/vmx/vmx_internal.h"

/* ---- saving guest state (SDM 28.3) ---- */
static void save_seg(struct vmcs *v, int k, const struct seg *s)
{
    const struct vmx_seg_fields *g = &vmx_guest_seg[k];
    v->f[g->sel] = s->sel;
    v->f[g->base] = s->base;
    v->f[g->limit] = s->limit;
    /* the unusable bit, and for an unusable segment the other attributes as they are */
    v->f[g->ar] = s->attr & 0x1f0ffu;
}

static u32 activity_of(const struct cpu *c)
{
    switch (c->state) {
    case CPU_HALTED: return ACTIVITY_HLT;
    case CPU_WAIT_FOR_SIPI: return ACTIVITY_WAIT_SIPI;
    case CPU_SHUTDOWN: return ACTIVITY_SHUTDOWN;
    default: return ACTIVITY_ACTIVE;
    }
}

static void save_guest_state(struct cpu *c, bool in_insn)
{
    struct vmx *v = c->vmx;
    struct vmcs *f = &v->vmcs;
    u32 exitc = (u32)f->f[VMCS_EXIT_CONTROLS];
    /* CR0/CR4: the bits L1 owns (guest/host mask) keep their real values: the read
     * shadow is only what L2 reads */
    f->f[VMCS_GUEST_CR0] = c->cr0;
    f->f[VMCS_GUEST_CR3] = c->cr3;
    f->f[VMCS_GUEST_CR4] = c->cr4;
    if (exitc & EXIT_SAVE_DEBUG) {
        f->f[VMCS_GUEST_DR7] = c->dr[7];
        f->f[VMCS_GUEST_DEBUGCTL] = c->msr_debugctl;
    }
    f->f[VMCS_GUEST_RSP] = c->gpr[R_RSP];
    f->f[VMCS_GUEST_RIP] = c->rip;
    f->f[VMCS_GUEST_RFLAGS] = cpu_flags(c);
    for (int s = 0; s < 6; s++)
        save_seg(f, s, &c->seg[s]);
    save_seg(f, VMX_SEG_LDTR, &c->ldtr);
    save_seg(f, VMX_SEG_TR, &c->tr);
    f->f[VMCS_GUEST_GDTR_BASE] = c->gdtr.base;
    f->f[VMCS_GUEST_GDTR_LIMIT] = c->gdtr.limit;
    f->f[VMCS_GUEST_IDTR_BASE] = c->idtr.base;
    f->f[VMCS_GUEST_IDTR_LIMIT] = c->idtr.limit;
    f->f[VMCS_GUEST_SYSENTER_CS] = (u32)c->msr_sysenter_cs;
    f->f[VMCS_GUEST_SYSENTER_ESP] = c->msr_sysenter_esp;
    f->f[VMCS_GUEST_SYSENTER_EIP] = c->msr_sysenter_eip;
    if (exitc & EXIT_SAVE_PAT)
        f->f[VMCS_GUEST_PAT] = c->msr_pat;
    if (exitc & EXIT_SAVE_EFER)
        f->f[VMCS_GUEST_EFER] = c->efer;
    /* the PDPTEs with EPT and PAE paging (SDM 28.3.4) */
    if ((vmx_proc2(v) & PROC2_EPT) && (c->cr0 & CR0_PG) && (c->cr4 & CR4_PAE) &&
        !(c->efer & EFER_LMA))
        for (int k = 0; k < 4; k++)
            f->f[VMCS_GUEST_PDPTE0 + k] = c->in->pg.pdpte[k];
    /* IA-32e mode guest follows EFER.LMA (IA32_VMX_MISC[5]) */
    if (c->efer & EFER_LMA)
        f->f[VMCS_ENTRY_CONTROLS] |= ENTRY_IA32E_GUEST;
    else
        f->f[VMCS_ENTRY_CONTROLS] &= ~(u64)ENTRY_IA32E_GUEST;
    /* interruptibility: for an exit caused by an instruction, the blocking in effect
     * before it */
    u8 shadow = in_insn ? c->in->shadow_before : c->intr_shadow;
    u32 intr = 0;
    if (shadow == SHADOW_STI)
        intr |= INTERRUPTIBILITY_STI;
    else if (shadow == SHADOW_MOV_SS)
        intr |= INTERRUPTIBILITY_MOV_SS;
    if (c->nmi_blocked) /* L2's: virtual-NMI blocking with virtual NMIs */
        intr |= INTERRUPTIBILITY_NMI;
    f->f[VMCS_GUEST_INTERRUPTIBILITY] = intr;
    f->f[VMCS_GUEST_ACTIVITY_STATE] = activity_of(c);
    /* debug traps held back by MOV SS are pending debug exceptions (B0-B3, BS) */
    f->f[VMCS_GUEST_PENDING_DBG] = c->in->held_db_bits & (0xfu | DR6_BS);
    if ((vmx_pin(v) & PIN_PREEMPTION_TIMER) && (exitc & EXIT_SAVE_PREEMPT_TIMER))
        f->f[VMCS_PREEMPT_TIMER_VALUE] = vmx_preempt_remaining(c);
}

/* ---- the MSR areas (SDM 28.4, 28.6) ---- */
/* An MSR-area entry: index, reserved, value (SDM 25.7.2). */
struct msr_entry {
    u32 index, reserved;
    u64 value;
};

/* Stores the guest's MSRs listed in the MSR-store area; false if one cannot be (a VMX
 * abort condition). */
static bool store_msrs(struct cpu *c)
{
    struct vmcs *f = &c->vmx->vmcs;
    u32 n = (u32)f->f[VMCS_EXIT_MSR_STORE_COUNT];
    u64 area = f->f[VMCS_EXIT_MSR_STORE_ADDR];
    for (u32 k = 0; k < n; k++) {
        struct msr_entry e;
        u64 pa = area + 16 * (u64)k;
        if (!nested_phys_read(c, pa, &e, 8))
            return false;
        /* IA32_SMBASE and the x2APIC MSRs may not be stored; reserved bits must be 0 */
        if (e.reserved || e.index == 0x9e || (e.index >> 8) == 8)
            return false;
        u64 val;
        if (!vmx_msr_access(c, e.index, &val, false))
            return false;
        if (!nested_phys_write(c, pa + 8, &val, 8))
            return false;
    }
    return true;
}

/* Loads MSRs from an area (VM-exit MSR-load, VM-entry MSR-load): 0, or the 1-based number
 * of the entry that failed (SDM 27.4, 28.6). */
u32 vmx_load_msrs(struct cpu *c, u64 area, u32 n)
{
    if (n > 512) /* IA32_VMX_MISC[27:25] = 0: 512 entries at most */
        return 1;
    for (u32 k = 0; k < n; k++) {
        struct msr_entry e;
        if (!nested_phys_read(c, area + 16 * (u64)k, &e, 16))
            return k + 1;
        /* FS/GS base, IA32_SMM_MONITOR_CTL, x2APIC MSRs and reserved bits are refused;
         * so is microcode update (0x79) and SMBASE */
        if (e.reserved || e.index == 0xc0000100u || e.index == 0xc0000101u ||
            e.index == 0x9b || e.index == 0x79 || e.index == 0x9e || (e.index >> 8) == 8)
            return k + 1;
        u64 val = e.value;
        if (!vmx_msr_access(c, e.index, &val, true))
            return k + 1;
    }
    return 0;
}

/* ---- loading host state (SDM 28.5) ---- */
static void load_host_seg(struct cpu *c, int s, u16 sel, u64 base, bool l)
{
    struct seg *g = &c->seg[s];
    g->sel = sel;
    g->base = base;
    g->limit = 0xffffffffu;
    if (s == SEG_CS) {
        g->attr = 0xb | SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_G | (l ? SEG_ATTR_L : SEG_ATTR_DB);
        return;
    }
    g->attr = 3 | SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G;
    /* a null selector makes the register unusable (SS keeps its DPL of 0) */
    if (!sel)
        g->attr |= SEG_ATTR_UNUSABLE;
}

/* CR0 bits a VM exit leaves as they are (SDM 28.5.1). */
#define CR0_EXIT_KEEPS (CR0_ET | CR0_CD | CR0_NW | (0x1ffull << 19) | BIT(17) | (0x3ffull << 6) | \
                        0xffffffff00000000ull)

void vmx_load_host_state(struct cpu *c)
{
    struct vmx *v = c->vmx;
    struct vmcs *f = &v->vmcs;
    u32 exitc = (u32)f->f[VMCS_EXIT_CONTROLS];
    bool l = exitc & EXIT_HOST_ADDR_SPACE;
    u64 fixed0 = v->caps.msr[VMX_CR0_FIXED0];
    c->cr0 = ((c->cr0 & CR0_EXIT_KEEPS) | (f->f[VMCS_HOST_CR0] & ~CR0_EXIT_KEEPS) | fixed0) &
             0xffffffffull;
    c->cr3 = f->f[VMCS_HOST_CR3];
    c->cr4 = f->f[VMCS_HOST_CR4] | v->caps.msr[VMX_CR4_FIXED0];
    if (!l)
        c->cr4 &= ~(u64)CR4_PCIDE;
    else
        c->cr4 |= CR4_PAE;
    c->dr[7] = 0x400;
    c->msr_debugctl = 0;
    c->msr_sysenter_cs = (u32)f->f[VMCS_HOST_SYSENTER_CS];
    c->msr_sysenter_esp = f->f[VMCS_HOST_SYSENTER_ESP];
    c->msr_sysenter_eip = f->f[VMCS_HOST_SYSENTER_EIP];
    if (exitc & EXIT_LOAD_PAT)
        c->msr_pat = f->f[VMCS_HOST_PAT];
    if (exitc & EXIT_LOAD_EFER)
        c->efer = f->f[VMCS_HOST_EFER];
    /* LMA and LME follow "host address-space size" in either case */
    if (l)
        c->efer |= EFER_LMA | EFER_LME;
    else
        c->efer &= ~(u64)(EFER_LMA | EFER_LME);
    load_host_seg(c, SEG_CS, (u16)f->f[VMCS_HOST_CS_SEL], 0, l);
    load_host_seg(c, SEG_SS, (u16)f->f[VMCS_HOST_SS_SEL], 0, l);
    load_host_seg(c, SEG_DS, (u16)f->f[VMCS_HOST_DS_SEL], 0, l);
    load_host_seg(c, SEG_ES, (u16)f->f[VMCS_HOST_ES_SEL], 0, l);
    load_host_seg(c, SEG_FS, (u16)f->f[VMCS_HOST_FS_SEL], f->f[VMCS_HOST_FS_BASE], l);
    load_host_seg(c, SEG_GS, (u16)f->f[VMCS_HOST_GS_SEL], f->f[VMCS_HOST_GS_BASE], l);
    c->tr = (struct seg){ (u16)f->f[VMCS_HOST_TR_SEL], f->f[VMCS_HOST_TR_BASE], 0x67,
                          0xb | SEG_ATTR_P };
    c->ldtr = (struct seg){ 0, 0, 0, SEG_ATTR_UNUSABLE };
    c->gdtr = (struct dtr){ f->f[VMCS_HOST_GDTR_BASE], 0xffff };
    c->idtr = (struct dtr){ f->f[VMCS_HOST_IDTR_BASE], 0xffff };
    c->gpr[R_RSP] = f->f[VMCS_HOST_RSP];
    c->rip = f->f[VMCS_HOST_RIP];
    c->in->lz.op = LZ_NONE;
    c->rflags = FL_FIXED1;
    c->intr_shadow = SHADOW_NONE;
    c->in->held_db_bits = 0;
    c->state = CPU_RUNNING;
    c->mwait = false;
    c->vmx_non_root = false;
    c->tsc_offset = v->l1_tsc_offset;
    c->tsc_multiplier = 0;
    debug_update(c);
    cpu_update_mode(c);
    mmu_params_update(c); /* the TLB: vmx_tlb_exit */
    /* PAE paging without long mode: the PDPTEs come from the host CR3 (a failure is a
     * VMX abort; the walker then sees them as loaded) */
    if ((c->cr0 & CR0_PG) && (c->cr4 & CR4_PAE) && !(c->efer & EFER_LMA))
        paging_load_pdptes(&c->in->pg, c->cr3, c->in->pg.pdpte);
    c->in->exits |= EXIT_BLOCK_END | EXIT_CHECK_EVENTS | EXIT_RIP_WRITTEN;
}

/* A failure while exiting: the VMX abort (SDM 28.7). The logical processor writes the
 * indicator and enters the shutdown state. */
static _Noreturn void vmx_abort(struct cpu *c, u32 indicator)
{
    struct vmx *v = c->vmx;
    /* an enlightened VMCS has its abort field at offset 4, as the SDM's region does */
    u64 at = v->evmcs != ~0ull ? v->evmcs + 4 : v->current + VMCS_REGION_ABORT;
    nested_phys_write(c, at, &indicator, 4);
    c->vmx_non_root = false;
    v->in_l2_ctx = false;
    tlb_flush_all(&c->tlb);
    tlb_switch_context(&c->tlb, TLB_CTX_L1);
    c->state = CPU_SHUTDOWN;
    struct cpu_event ev = { .kind = EV_SHUTDOWN };
    cpu_intercept(c, &ev);
    vmx_longjmp_exit(c);
}

/* ---- the exit itself ---- */
void vmx_exit(struct cpu *c, const struct vmx_exit_info *x)
{
    struct vmx *v = c->vmx;
    struct vmcs *f = &v->vmcs;
    struct cpu_internal *in = c->in;
    bool entry_failure = x->reason & EXIT_REASON_ENTRY_FAILURE;
    u32 reason = x->reason;
    /* An exit from inside an enclave is an asynchronous enclave exit first (SDM 39.4):
     * L1 sees the AEP and the synthetic state, and bit 27 says so (SDM 28.2.1) */
    if (unlikely(c->enclave_mode) && !entry_failure) {
        bool exc = (reason & 0xffff) == EXIT_REASON_EXCEPTION_NMI &&
                   INTR_INFO_TYPE(x->intr_info) == INTR_TYPE_HW_EXC;
        sgx_aex(c, exc ? (u8)x->intr_info : 0, exc ? EVT_HW_EXC : EVT_EXT_INTR,
                exc && (x->intr_info & INTR_INFO_ERROR), x->intr_error, c->rip);
        reason |= EXIT_REASON_ENCLAVE_INTERRUPTION;
    }
    f->f[VMCS_EXIT_REASON] = reason;
    f->f[VMCS_EXIT_QUALIFICATION] = x->qual;
    f->f[VMCS_GUEST_LINEAR_ADDR] = x->has_linear ? x->guest_linear : 0;
    if (x->has_phys)
        f->f[VMCS_GUEST_PHYSICAL_ADDR] = x->guest_phys;
    f->f[VMCS_EXIT_INTR_INFO] = x->intr_info;
    f->f[VMCS_EXIT_INTR_ERROR] = x->intr_error;
    f->f[VMCS_EXIT_INSN_LEN] = x->insn_len;
    f->f[VMCS_EXIT_INSN_INFO] = x->insn_info;
    /* an event whose delivery the exit cut short (SDM 28.2.4) */
    if (v->delivering && !entry_failure) {
        f->f[VMCS_IDT_VECTORING_INFO] = v->deliver_info;
        f->f[VMCS_IDT_VECTORING_ERROR] = v->deliver_error;
        if (INTR_INFO_TYPE(v->deliver_info) >= INTR_TYPE_SW_INT &&
            INTR_INFO_TYPE(v->deliver_info) != INTR_TYPE_OTHER)
            f->f[VMCS_EXIT_INSN_LEN] = v->deliver_insn_len;
        /* an NMI whose delivery was cut short leaves NMIs unblocked */
        if (INTR_INFO_TYPE(v->deliver_info) == INTR_TYPE_NMI)
            c->nmi_blocked = false;
    } else {
        f->f[VMCS_IDT_VECTORING_INFO] = 0;
    }
    v->delivering = false;
    in->delivering = -1;
    /* entry failures (SDM 27.8) leave the guest state untouched */
    if (!entry_failure) {
        save_guest_state(c, x->in_insn);
        if (!store_msrs(c))
            vmx_abort(c, 2);
    }
    v->mtf_pending = false;
    /* L2's blocking by NMI was saved above; L1's is its own again with virtual NMIs,
     * and an exit caused by an NMI leaves NMIs blocked (SDM 28.1, 28.3.4) */
    if (vmx_pin(v) & PIN_VIRTUAL_NMIS)
        c->nmi_blocked = v->l1_nmi_blocked;
    if ((x->reason & 0xffff) == EXIT_REASON_EXCEPTION_NMI &&
        INTR_INFO_TYPE(x->intr_info) == INTR_TYPE_NMI)
        c->nmi_blocked = true;
    if (v->in_l2_ctx)
        vmx_tlb_leaving_l2(c);
    vmx_load_host_state(c);
    if (vmx_load_msrs(c, f->f[VMCS_EXIT_MSR_LOAD_ADDR], (u32)f->f[VMCS_EXIT_MSR_LOAD_COUNT]))
        vmx_abort(c, 4);
    v->launched = v->launched || !entry_failure;
    vmx_evmcs_write_back(c);
    vmx_tlb_exit(c);
    if (in->trace_events)
        fprintf(in->trace, "cpu%d vmexit reason %u qual %#llx\n", c->id, x->reason,
                (unsigned long long)x->qual);
    vmx_longjmp_exit(c);
}

_Noreturn void vmx_exit_insn(struct cpu *c, u32 reason, u64 qual, u32 insn_info)
{
    struct vmx_exit_info x = { .reason = reason, .qual = qual, .insn_info = insn_info,
                               .insn_len = vmx_insn_length(c), .in_insn = true };
    vmx_exit(c, &x);
}

/* VMRUN (APM 15.5): the consistency checks (15.5.1), saving L1's state to the host-save
 * area, loading L2's from the VMCB, the TSC offset, nested paging, the TLB control, and
 * event injection (15.20). */
#include <string.h>

#include "cpu/svm/svm_internal.h"

/* What the checks look at: the VMCB's guest state and controls, read once. */
struct vmrun_state {
    u64 efer, cr0, cr3, cr4, dr6, dr7;
    struct seg cs;
};

/* ---- the consistency checks (APM 15.5.1 "Canonicalization and Consistency Checks"):
 * each names the illegal combination it finds; any one makes VMRUN exit with
 * VMEXIT_INVALID through the one failure path of svm_vmrun ---- */
typedef bool vmrun_check_fn(const struct cpu *c, const struct vmrun_state *g);

static bool check_efer_svme(const struct cpu *c, const struct vmrun_state *g)
{
    (void)c;
    return g->efer & EFER_SVME; /* EFER.SVME is zero */
}

static bool check_cr0_cd_nw(const struct cpu *c, const struct vmrun_state *g)
{
    (void)c;
    return !(!(g->cr0 & CR0_CD) && (g->cr0 & CR0_NW)); /* CR0.CD zero and CR0.NW set */
}

static bool check_cr0_high(const struct cpu *c, const struct vmrun_state *g)
{
    (void)c;
    return (g->cr0 >> 32) == 0; /* CR0[63:32] not zero */
}

static bool long_mode_paging(const struct vmrun_state *g)
{
    return (g->efer & EFER_LME) && (g->cr0 & CR0_PG);
}

static bool check_cr3_mbz(const struct cpu *c, const struct vmrun_state *g)
{
    /* in long mode CR3 holds a physical address below MAXPHYADDR (bits 63:52 and those
     * above MAXPHYADDR are MBZ); in legacy modes the upper half is MBZ */
    if (long_mode_paging(g))
        return (g->cr3 >> c->model->phys_bits) == 0;
    return (g->cr3 >> 32) == 0;
}

static bool check_cr4_mbz(const struct cpu *c, const struct vmrun_state *g)
{
    return !(g->cr4 & ~cpu_cr4_allowed(c));
}

static bool check_dr6_high(const struct cpu *c, const struct vmrun_state *g)
{
    (void)c;
    return (g->dr6 >> 32) == 0;
}

static bool check_dr7_high(const struct cpu *c, const struct vmrun_state *g)
{
    (void)c;
    return (g->dr7 >> 32) == 0;
}

static bool check_efer_mbz(const struct cpu *c, const struct vmrun_state *g)
{
    /* also: LMA or LME set on a processor without long mode */
    return !(g->efer & ~(cpu_efer_allowed(c) | EFER_SVME));
}

static bool check_long_mode_pae(const struct cpu *c, const struct vmrun_state *g)
{
    (void)c;
    return !(long_mode_paging(g) && !(g->cr4 & CR4_PAE));
}

static bool check_long_mode_pe(const struct cpu *c, const struct vmrun_state *g)
{
    (void)c;
    return !(long_mode_paging(g) && !(g->cr0 & CR0_PE));
}

static bool check_long_mode_cs(const struct cpu *c, const struct vmrun_state *g)
{
    (void)c;
    return !(long_mode_paging(g) && (g->cr4 & CR4_PAE) && (g->cs.attr & SEG_ATTR_L) &&
             (g->cs.attr & SEG_ATTR_DB));
}

static bool check_vmrun_intercept(const struct cpu *c, const struct vmrun_state *g)
{
    (void)g;
    return svm_intercepted2(c->svm, I2_VMRUN);
}

static bool check_asid(const struct cpu *c, const struct vmrun_state *g)
{
    (void)g;
    return (u32)c->svm->ctl[VMCB_ASID] != 0;
}

/* The permission maps (IOPM 12 KiB, MSRPM 8 KiB) must end below MAXPHYADDR. */
static bool map_ok(const struct cpu *c, u64 base, u64 size)
{
    u64 end = (base & ~0xfffull) + size - 1;
    return (end >> c->model->phys_bits) == 0;
}

static bool check_permission_maps(const struct cpu *c, const struct vmrun_state *g)
{
    (void)g;
    /* whether or not the IOIO and MSR intercepts use them */
    const struct svm *s = c->svm;
    return map_ok(c, s->ctl[VMCB_IOPM_BASE], 3 * 4096) &&
           map_ok(c, s->ctl[VMCB_MSRPM_BASE], 2 * 4096);
}

/* APM 15.20: a reserved TYPE, or TYPE 3 (exception) with a vector that is not an
 * exception's (2 is the NMI's; 32 and up are interrupts') */
static bool check_event_injection(const struct cpu *c, const struct vmrun_state *g)
{
    (void)g;
    u64 inj = c->svm->ctl[VMCB_EVENTINJ];
    if (!(inj & EVTINJ_VALID))
        return true;
    unsigned type = EVTINJ_TYPE(inj);
    u8 vec = EVTINJ_VECTOR(inj);
    if (type != EVTINJ_TYPE_INTR && type != EVTINJ_TYPE_NMI && type != EVTINJ_TYPE_EXC &&
        type != EVTINJ_TYPE_SOFT)
        return false;
    return !(type == EVTINJ_TYPE_EXC && (vec == EXC_NMI || vec >= 32));
}

/* TLB_CONTROL: 0 and 1, and with flush-by-ASID 3 and 7 (APM 15.16.1) */
static bool check_tlb_control(const struct cpu *c, const struct vmrun_state *g)
{
    (void)g;
    switch ((u8)c->svm->ctl[VMCB_TLB_CONTROL]) {
    case TLB_CONTROL_NOTHING: case TLB_CONTROL_ALL:
    case TLB_CONTROL_ASID: case TLB_CONTROL_ASID_NONGLOBAL:
        return true;
    default:
        return false;
    }
}

/* host: the check applies to the host state #VMEXIT loads too (APM 15.5.1: "#VMEXIT
 * performs the appropriate subset of these consistency checks on host state") */
static const struct {
    const char *name;
    vmrun_check_fn *ok;
    bool host;
} vmrun_checks[] = {
    { "EFER.SVME is zero", check_efer_svme, true },
    { "CR0.CD is zero and CR0.NW is set", check_cr0_cd_nw, true },
    { "CR0[63:32] are not zero", check_cr0_high, true },
    { "an MBZ bit of CR3 is set", check_cr3_mbz, true },
    { "an MBZ bit of CR4 is set", check_cr4_mbz, true },
    { "DR6[63:32] are not zero", check_dr6_high, false },
    { "DR7[63:32] are not zero", check_dr7_high, false },
    { "an MBZ bit of EFER is set", check_efer_mbz, true },
    { "EFER.LME and CR0.PG are set and CR4.PAE is zero", check_long_mode_pae, true },
    { "EFER.LME and CR0.PG are set and CR0.PE is zero", check_long_mode_pe, true },
    { "EFER.LME, CR0.PG, CR4.PAE, CS.L and CS.D are all set", check_long_mode_cs, true },
    { "the VMRUN intercept bit is clear", check_vmrun_intercept, false },
    { "the ASID is zero", check_asid, false },
    { "the MSR or IOIO permission map extends beyond MAXPHYADDR", check_permission_maps, false },
    { "illegal event injection", check_event_injection, false },
    { "TLB_CONTROL holds a reserved value", check_tlb_control, false },
};

bool svm_host_state_legal(struct cpu *c)
{
    struct vmrun_state h = { .efer = c->efer, .cr0 = c->cr0, .cr3 = c->cr3, .cr4 = c->cr4,
                             .cs = c->seg[SEG_CS] };
    for (size_t k = 0; k < ARRAY_SIZE(vmrun_checks); k++) {
        if (vmrun_checks[k].host && !vmrun_checks[k].ok(c, &h)) {
            if (c->in->trace_events)
                fprintf(c->in->trace, "cpu%d #vmexit host state: %s\n", c->id, vmrun_checks[k].name);
            return false;
        }
    }
    return true;
}

/* ---- host state (APM 15.5.1: what VMRUN saves; nestor uses the VMCB's own save-area
 * layout in the host-save page, as the APM allows any layout) ---- */
static void save_host_state(struct cpu *c, u64 next_rip)
{
    vmcb_put_world(c, c->svm->hsave_pa, next_rip);
}

/* ---- loading L2 ---- */
static void load_guest_state(struct cpu *c, u64 vmcb, const struct vmrun_state *g)
{
    vmcb_get_world(c, vmcb);
    c->efer = g->efer;
    /* EFER.LMA follows LME and CR0.PG (the VMCB's LMA is not checked by the APM's list;
     * the processor's long-mode state is what LME and paging make it) */
    if ((g->efer & EFER_LME) && (g->cr0 & CR0_PG))
        c->efer |= EFER_LMA;
    else
        c->efer &= ~(u64)EFER_LMA;
    c->cr0 = g->cr0;
    c->cr3 = g->cr3;
    c->cr4 = g->cr4;
    c->dr[6] = g->dr6;
    c->dr[7] = g->dr7;
    c->cr2 = vmcb_get(c, vmcb, VMCB_CR2);
    /* with nested paging L2 has a PAT of its own (G_PAT); L1's returns at #VMEXIT */
    if (c->svm->ctl[VMCB_NP_CONTROL] & 1)
        c->msr_pat = vmcb_get(c, vmcb, VMCB_G_PAT);
    c->intr_shadow = (c->svm->ctl[VMCB_INTR_SHADOW] & 1) ? SHADOW_STI : SHADOW_NONE;
}

/* The CPL comes from the VMCB (APM 15.5.1), except that real mode is CPL 0 and
 * virtual-8086 mode CPL 3. */
static void load_cpl(struct cpu *c, u64 vmcb)
{
    u8 cpl = (u8)(vmcb_get(c, vmcb, VMCB_CPL) & 3);
    if (!(c->cr0 & CR0_PE))
        cpl = 0;
    else if (c->rflags & FL_VM)
        cpl = 3;
    cpu_set_cpl(c, cpl);
}

/* Event injection (APM 15.20): delivered through L2's IDT before its first instruction;
 * the injected event is not subject to the exception intercepts, faults during its
 * delivery are (with EXITINTINFO naming it). */
static void inject_event(struct cpu *c)
{
    struct svm *s = c->svm;
    u64 inj = s->ctl[VMCB_EVENTINJ];
    if (!(inj & EVTINJ_VALID))
        return;
    u8 vec = EVTINJ_VECTOR(inj);
    unsigned type = EVTINJ_TYPE(inj);
    bool has_error = (inj & EVTINJ_EV) && cpu_is_prot(c);
    u32 error = (u32)(inj >> 32);
    int evt;
    switch (type) {
    case EVTINJ_TYPE_NMI: evt = EVT_NMI; vec = EXC_NMI; break; /* VECTOR is ignored */
    case EVTINJ_TYPE_SOFT: evt = EVT_SW_INT; break;
    /* exceptions 3 and 4 behave as INT3 and INTO would (APM 15.20): traps with a DPL
     * check-free delivery of a software exception */
    case EVTINJ_TYPE_EXC: evt = (vec == EXC_BP || vec == EXC_OF) ? EVT_SW_EXC : EVT_HW_EXC; break;
    default: evt = EVT_EXT_INTR; break;
    }
    /* a software interrupt returns to the instruction after it: nRIP when L1 provided
     * one (NRIP save), else RIP itself */
    u64 ret = c->rip;
    if (type == EVTINJ_TYPE_SOFT || evt == EVT_SW_EXC) {
        u64 nrip = s->ctl[VMCB_NRIP];
        if (nrip)
            ret = nrip & cpu_rip_mask(c);
    }
    svm_note_delivery(c, vec, evt, has_error, error);
    c->in->delivering = type == EVTINJ_TYPE_EXC ? vec : -1;
    cpu_deliver(c, vec, evt, has_error, error, ret);
    c->in->delivering = -1;
    svm_delivery_done(c);
}

/* An illegal VMCB: VMRUN "exits" with VMEXIT_INVALID before L2 ran; L1 continues after
 * its VMRUN with GIF clear, as after any #VMEXIT. */
static void vmrun_invalid(struct cpu *c, u64 vmcb, u64 next_rip)
{
    vmcb_put(c, vmcb, VMCB_EXITCODE, SVM_EXIT_INVALID);
    vmcb_put(c, vmcb, VMCB_EXITINFO1, 0);
    vmcb_put(c, vmcb, VMCB_EXITINFO2, 0);
    vmcb_put(c, vmcb, VMCB_EXITINTINFO, 0);
    c->gif = false;
    if (c->in->trace_events)
        fprintf(c->in->trace, "cpu%d vmrun invalid\n", c->id);
    c->rip = next_rip;
    c->in->exits |= EXIT_RIP_WRITTEN;
}

void svm_vmrun(struct cpu *c, u64 vmcb, u64 next_rip)
{
    struct svm *s = c->svm;
    vmcb_load_controls(c, vmcb);
    struct vmrun_state g = {
        .efer = vmcb_get(c, vmcb, VMCB_EFER), .cr0 = vmcb_get(c, vmcb, VMCB_CR0),
        .cr3 = vmcb_get(c, vmcb, VMCB_CR3), .cr4 = vmcb_get(c, vmcb, VMCB_CR4),
        .dr6 = vmcb_get(c, vmcb, VMCB_DR6), .dr7 = vmcb_get(c, vmcb, VMCB_DR7),
    };
    vmcb_get_seg(c, vmcb, VMCB_SEG_CS, &g.cs);
    for (size_t k = 0; k < ARRAY_SIZE(vmrun_checks); k++) {
        if (!vmrun_checks[k].ok(c, &g)) {
            if (c->in->trace_events)
                fprintf(c->in->trace, "cpu%d vmrun check failed: %s\n", c->id, vmrun_checks[k].name);
            vmrun_invalid(c, vmcb, next_rip);
            return;
        }
    }
    save_host_state(c, next_rip);
    s->vmcb_pa = vmcb;
    s->host_if = c->rflags & FL_IF;
    s->l1_tsc_offset = c->tsc_offset;
    s->l1_pat = c->msr_pat;
    svm_npt_setup(c); /* nested paging takes L1's paging mode before L2's is loaded */
    svm_tlb_leaving_l1(c);
    c->monitor_armed = false;
    if (c->pmu.enabled) /* what L1 ran so far counted as host mode's */
        pmu_sync(c);
    load_guest_state(c, vmcb, &g);
    c->svm_guest = true;
    /* L2's TSC: L1's scaled by TSC_RATIO, plus the VMCB's offset (APM 15.30.5) */
    if (s->tsc_ratio != TSC_RATIO_ONE) {
        c->tsc_multiplier = s->tsc_ratio << 16; /* the engine's 16.48 fixed point */
        c->tsc_scaled_offset = (s64)s->ctl[VMCB_TSC_OFFSET];
    } else {
        c->tsc_offset = (s64)((u64)s->l1_tsc_offset + s->ctl[VMCB_TSC_OFFSET]); /* mod 2^64 */
    }
    c->state = CPU_RUNNING;
    c->mwait = false;
    s->pause_left = (u16)s->ctl[VMCB_PAUSE_COUNT];
    s->pause_last = svm_l1_tsc(c);
    debug_update(c);
    cpu_update_mode(c);
    load_cpl(c, vmcb);
    if (c->pmu.enabled)
        pmu_refresh(c); /* HostOnly/GuestOnly counters */
    mmu_params_update(c);
    svm_tlb_enter(c);
    /* legacy PAE paging: the PDPTEs load from CR3 as at MOV CR3 (through the nested
     * tables with nested paging: a fault there is a #VMEXIT(NPF) before L2 runs); one
     * with reserved bits set makes the state illegal */
    if ((c->cr0 & CR0_PG) && (c->cr4 & CR4_PAE) && !(c->efer & EFER_LMA) &&
        !paging_load_pdptes(&c->in->pg, c->cr3, c->in->pg.pdpte)) {
        struct svm_exit_info x = { .code = SVM_EXIT_INVALID };
        svm_vmexit(c, &x);
    }
    /* GIF is set by VMRUN (APM 15.17) */
    c->gif = true;
    exec_enter_context(c);
    c->in->exits |= EXIT_RIP_WRITTEN | EXIT_RF_WRITTEN | EXIT_EVENT_DELIVERED |
                    EXIT_BLOCK_END | EXIT_CHECK_EVENTS;
    if (c->in->trace_events)
        fprintf(c->in->trace, "cpu%d vmrun rip %#llx\n", c->id, (unsigned long long)c->rip);
    inject_event(c);
}

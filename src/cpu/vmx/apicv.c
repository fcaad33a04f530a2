/* APIC virtualization (SDM Vol. 3C chapter 30): the TPR shadow and the virtual-APIC page,
 * the APIC-access page, virtualized x2APIC MSRs, APIC-register virtualization,
 * virtual-interrupt delivery (RVI/SVI, EOI virtualization with the EOI-exit bitmap,
 * self-IPI virtualization) and posted-interrupt processing. The virtual-APIC page lives
 * in L1's memory; every virtual register is read and written there, as the processor
 * does. */
#include <string.h>

#include "cpu/vmx/vmx_internal.h"

/* Virtual-APIC page offsets */
enum {
    VAPIC_ID = 0x20, VAPIC_VERSION = 0x30, VAPIC_TPR = 0x80, VAPIC_PPR = 0xa0,
    VAPIC_EOI = 0xb0, VAPIC_LDR = 0xd0, VAPIC_DFR = 0xe0, VAPIC_SVR = 0xf0, VAPIC_ISR = 0x100,
    VAPIC_TMR = 0x180, VAPIC_IRR = 0x200, VAPIC_ESR = 0x280, VAPIC_CMCI = 0x2f0,
    VAPIC_ICR_LO = 0x300, VAPIC_ICR_HI = 0x310, VAPIC_LVT_FIRST = 0x320, VAPIC_LVT_LAST = 0x370,
    VAPIC_TIMER_ICR = 0x380, VAPIC_TIMER_CCR = 0x390, VAPIC_TIMER_DCR = 0x3e0,
    VAPIC_SELF_IPI = 0x3f0,
};

static u32 vapic_read(struct cpu *c, unsigned off)
{
    u32 v = 0;
    nested_phys_read(c, c->vmx->vmcs.f[VMCS_VIRTUAL_APIC_ADDR] + off, &v, 4);
    return v;
}

static void vapic_write(struct cpu *c, unsigned off, u32 v)
{
    nested_phys_write(c, c->vmx->vmcs.f[VMCS_VIRTUAL_APIC_ADDR] + off, &v, 4);
}

static void vapic_set_bit(struct cpu *c, unsigned base, unsigned vec, bool on)
{
    unsigned off = base + 0x10 * (vec / 32);
    u32 w = vapic_read(c, off);
    w = on ? (w | (1u << (vec % 32))) : (w & ~(1u << (vec % 32)));
    vapic_write(c, off, w);
}

/* The highest vector set in VIRR or VISR, or 0. */
static unsigned vapic_highest(struct cpu *c, unsigned base)
{
    for (int k = 7; k >= 0; k--) {
        u32 w = vapic_read(c, base + 0x10 * (unsigned)k);
        if (w)
            return (unsigned)k * 32 + 31 - (unsigned)__builtin_clz(w);
    }
    return 0;
}

static unsigned rvi(const struct vmx *v) { return (u8)v->vmcs.f[VMCS_GUEST_INTR_STATUS]; }
static unsigned svi(const struct vmx *v) { return (u8)(v->vmcs.f[VMCS_GUEST_INTR_STATUS] >> 8); }
static void set_rvi(struct vmx *v, unsigned x)
{
    v->vmcs.f[VMCS_GUEST_INTR_STATUS] = (v->vmcs.f[VMCS_GUEST_INTR_STATUS] & 0xff00) | (u8)x;
}
static void set_svi(struct vmx *v, unsigned x)
{
    v->vmcs.f[VMCS_GUEST_INTR_STATUS] = (v->vmcs.f[VMCS_GUEST_INTR_STATUS] & 0xff) | (u16)(x << 8);
}

static bool vid(const struct vmx *v) { return vmx_proc2(v) & PROC2_VIRT_INTR_DELIVERY; }
bool vmx_tpr_shadow(const struct cpu *c)
{
    return c->vmx_non_root && (vmx_proc(c->vmx) & PROC_TPR_SHADOW);
}

/* A trap-like exit (TPR below threshold, APIC write, virtualized EOI) is due after the
 * instruction that caused it: at the next boundary, before anything else. */
static void trap_exit(struct cpu *c, u32 reason, u64 qual)
{
    struct vmx *v = c->vmx;
    v->trap_reason = reason;
    v->trap_qual = qual;
    v->trap_pending = true;
    c->in->exits |= EXIT_CHECK_EVENTS;
}

/* ---- 30.1.2 PPR virtualization, 30.2.1 evaluation of pending virtual interrupts ---- */
static void ppr_virtualize(struct cpu *c)
{
    struct vmx *v = c->vmx;
    u32 vtpr = vapic_read(c, VAPIC_TPR) & 0xff;
    unsigned s = svi(v);
    u32 vppr = (vtpr >> 4) >= (s >> 4) ? vtpr : (s & 0xf0);
    vapic_write(c, VAPIC_PPR, vppr);
}

/* Is a virtual interrupt ready for delivery (RVI[7:4] > VPPR[7:4])? It is delivered at a
 * boundary where L2 takes interrupts (vmx_apicv_boundary). */
static bool virtual_intr_pending(struct cpu *c)
{
    return (rvi(c->vmx) >> 4) > ((vapic_read(c, VAPIC_PPR) & 0xff) >> 4);
}

static void evaluate_pending(struct cpu *c)
{
    if (virtual_intr_pending(c))
        c->in->exits |= EXIT_CHECK_EVENTS;
}

/* ---- 30.1.2 TPR virtualization ---- */
static void tpr_virtualize(struct cpu *c)
{
    struct vmx *v = c->vmx;
    if (vid(v)) {
        ppr_virtualize(c);
        evaluate_pending(c);
        return;
    }
    u32 threshold = (u32)v->vmcs.f[VMCS_TPR_THRESHOLD] & 0xf;
    if (((vapic_read(c, VAPIC_TPR) >> 4) & 0xf) < threshold)
        trap_exit(c, EXIT_REASON_TPR_BELOW_THRESHOLD, 0);
}

/* ---- 30.1.3 EOI virtualization, 30.1.4 self-IPI virtualization ---- */
static void eoi_virtualize(struct cpu *c)
{
    struct vmx *v = c->vmx;
    unsigned vector = svi(v);
    vapic_set_bit(c, VAPIC_ISR, vector, false);
    set_svi(v, vapic_highest(c, VAPIC_ISR));
    ppr_virtualize(c);
    u64 bitmap = v->vmcs.f[VMCS_EOI_EXIT_BITMAP0 + vector / 64];
    if ((bitmap >> (vector % 64)) & 1)
        trap_exit(c, EXIT_REASON_VIRTUALIZED_EOI, vector);
    else
        evaluate_pending(c);
}

static void self_ipi_virtualize(struct cpu *c, unsigned vector)
{
    struct vmx *v = c->vmx;
    vapic_set_bit(c, VAPIC_IRR, vector, true);
    if (vector > rvi(v))
        set_rvi(v, vector);
    evaluate_pending(c);
}

/* ---- CR8 with the TPR shadow (30.1.1, 30.1.2) ---- */
u64 vmx_cr8_read(struct cpu *c)
{
    return (vapic_read(c, VAPIC_TPR) >> 4) & 0xf;
}

void vmx_cr8_write(struct cpu *c, u64 value)
{
    /* bits 7:4 of VTPR get CR8[3:0], bits 31:8 and 3:0 are cleared */
    vapic_write(c, VAPIC_TPR, (u32)(value & 0xf) << 4);
    tpr_virtualize(c);
}

/* ---- x2APIC MSRs (30.5) ---- */
bool vmx_x2apic_msr(struct cpu *c, u32 index, bool write, u64 *value)
{
    struct vmx *v = c->vmx;
    u32 p2 = vmx_proc2(v);
    if (!(p2 & PROC2_VIRT_X2APIC) || index < 0x800 || index > 0x8ff)
        return false;
    unsigned off = (index & 0xff) << 4;
    if (!write) {
        if (index == 0x808 || ((p2 & PROC2_APIC_REG_VIRT) && vmx_apic_reg_readable(off))) {
            u64 lo = vapic_read(c, off);
            /* the ICR is one 64-bit register in x2APIC mode */
            u64 hi = index == 0x830 ? vapic_read(c, VAPIC_ICR_HI) : 0;
            *value = lo | hi << 32;
            return true;
        }
        return false;
    }
    if (index == 0x808) {
        if (*value >> 8)
            cpu_fault(c, EXC_GP, 0); /* reserved bits of the TPR */
        vapic_write(c, VAPIC_TPR, (u32)*value & 0xff);
        tpr_virtualize(c);
        return true;
    }
    if (vid(v) && index == 0x80b) {
        if (*value)
            cpu_fault(c, EXC_GP, 0);
        eoi_virtualize(c);
        return true;
    }
    if (vid(v) && index == 0x83f) {
        if (*value >> 8)
            cpu_fault(c, EXC_GP, 0);
        vapic_write(c, VAPIC_SELF_IPI, (u32)*value & 0xff);
        self_ipi_virtualize(c, (u8)*value);
        return true;
    }
    return false;
}

/* Registers APIC-register virtualization reads from the virtual-APIC page (30.4.1). */
bool vmx_apic_reg_readable(unsigned off)
{
    switch (off) {
    case VAPIC_ID: case VAPIC_VERSION: case VAPIC_TPR: case VAPIC_EOI: case VAPIC_LDR:
    case VAPIC_DFR: case VAPIC_SVR: case VAPIC_ESR: case VAPIC_CMCI: case VAPIC_ICR_LO:
    case VAPIC_ICR_HI: case VAPIC_TIMER_ICR: case VAPIC_TIMER_DCR:
        return true;
    default:
        return (off >= VAPIC_ISR && off < VAPIC_ISR + 0x80) ||
               (off >= VAPIC_TMR && off < VAPIC_TMR + 0x80) ||
               (off >= VAPIC_IRR && off < VAPIC_IRR + 0x80) ||
               (off >= VAPIC_LVT_FIRST && off <= VAPIC_LVT_LAST);
    }
}

/* ---- the APIC-access page (30.4) ---- */
bool vmx_apic_access_page(const struct cpu *c, u64 pa)
{
    const struct vmx *v = c->vmx;
    return c->vmx_non_root && (vmx_proc2(v) & PROC2_VIRT_APIC_ACCESS) &&
           (pa & ~0xfffull) == v->vmcs.f[VMCS_APIC_ACCESS_ADDR];
}

/* An APIC-access VM exit (fault-like): qualification offset (11:0) and access type
 * (15:12): 0 linear read, 1 linear write, 2 linear fetch, 3 linear access during event
 * delivery. */
static _Noreturn void apic_access_exit(struct cpu *c, unsigned off, unsigned type)
{
    if (c->vmx->delivering)
        type = 3;
    struct vmx_exit_info x = { .reason = EXIT_REASON_APIC_ACCESS,
                               .qual = off | (u64)type << 12, .in_insn = true,
                               .insn_len = 0 };
    vmx_exit(c, &x);
}

_Noreturn void vmx_apic_access_fetch(struct cpu *c, u64 pa)
{
    apic_access_exit(c, (unsigned)(pa & 0xfff), 2);
}

u64 vmx_apic_access_read(struct cpu *c, u64 pa, unsigned size)
{
    struct vmx *v = c->vmx;
    unsigned off = (unsigned)(pa & 0xfff);
    bool tpr = vmx_proc(v) & PROC_TPR_SHADOW;
    bool regs = vmx_proc2(v) & PROC2_APIC_REG_VIRT;
    /* virtualized: a read of at most 32 bits within one register of those the
     * processor virtualizes (only the TPR without APIC-register virtualization) */
    bool aligned = (off & 0xf) + size <= 4;
    if (tpr && aligned && !(vmx_proc2(v) & PROC2_VIRT_X2APIC) &&
        ((off & ~0xfu) == VAPIC_TPR || (regs && vmx_apic_reg_readable(off & ~0xfu)))) {
        u32 w = vapic_read(c, off & ~0x3u);
        return (w >> (8 * (off & 3))) & size_mask(size);
    }
    apic_access_exit(c, off, 0);
}

void vmx_apic_access_write(struct cpu *c, u64 pa, unsigned size, u64 value)
{
    struct vmx *v = c->vmx;
    unsigned off = (unsigned)(pa & 0xfff);
    bool tpr = vmx_proc(v) & PROC_TPR_SHADOW;
    bool regs = vmx_proc2(v) & PROC2_APIC_REG_VIRT;
    bool whole = (off & 0xf) == 0 && size == 4;
    if (!tpr || (vmx_proc2(v) & PROC2_VIRT_X2APIC) || !whole)
        apic_access_exit(c, off, 1);
    /* 30.4.3: the write goes to the virtual-APIC page, then is virtualized */
    if (off == VAPIC_TPR) {
        vapic_write(c, off, (u32)value);
        tpr_virtualize(c);
        return;
    }
    if (off == VAPIC_EOI && vid(v)) {
        vapic_write(c, off, (u32)value);
        eoi_virtualize(c);
        return;
    }
    if (off == VAPIC_ICR_LO && vid(v)) {
        /* a fixed self-IPI (no shorthand... destination self shorthand or own ID) is
         * virtualized; anything else is an APIC-write exit */
        vapic_write(c, off, (u32)value);
        u32 icr = (u32)value;
        bool fixed_self = ((icr >> 8) & 7) == 0 && !((icr >> 15) & 1) &&
                          ((icr >> 18) & 3) == 1 && (icr & 0xff) >= 16;
        if (fixed_self)
            self_ipi_virtualize(c, icr & 0xff);
        else
            trap_exit(c, EXIT_REASON_APIC_WRITE, off);
        return;
    }
    if (regs && (off == VAPIC_ID || off == VAPIC_LDR || off == VAPIC_DFR || off == VAPIC_SVR ||
                 off == VAPIC_ESR || off == VAPIC_CMCI || off == VAPIC_ICR_HI ||
                 off == VAPIC_ICR_LO || off == VAPIC_EOI ||
                 (off >= VAPIC_LVT_FIRST && off <= VAPIC_LVT_LAST) || off == VAPIC_TIMER_ICR ||
                 off == VAPIC_TIMER_DCR)) {
        /* APIC-write emulation by L1: data on the page, then a trap-like exit */
        vapic_write(c, off, (u32)value);
        trap_exit(c, EXIT_REASON_APIC_WRITE, off);
        return;
    }
    apic_access_exit(c, off, 1);
}

/* ---- 30.2 virtual-interrupt delivery and 30.6 posted interrupts ---- */

/* At VM entry (27.3.2.5): PPR virtualization and evaluation with virtual-interrupt
 * delivery. */
void vmx_apicv_entry(struct cpu *c)
{
    struct vmx *v = c->vmx;
    v->trap_pending = false;
    if (c->vmx_non_root && vid(v)) {
        ppr_virtualize(c);
        evaluate_pending(c);
    }
}

/* At a boundary (after the exits vmx_boundary takes first): a virtual interrupt L2 can take now (RFLAGS.IF, no STI/MOV SS blocking, no interrupt-window
 * exiting) is delivered: VISR, SVI, VPPR, VIRR, RVI, then through L2's IDT. */
void vmx_apicv_boundary(struct cpu *c)
{
    struct vmx *v = c->vmx;
    if (!vid(v) || !(c->rflags & FL_IF) || c->intr_shadow ||
        (vmx_proc(v) & PROC_INTR_WINDOW) || !virtual_intr_pending(c))
        return;
    unsigned vector = rvi(v);
    vapic_set_bit(c, VAPIC_ISR, vector, true);
    set_svi(v, vector);
    vapic_write(c, VAPIC_PPR, vector & 0xf0);
    vapic_set_bit(c, VAPIC_IRR, vector, false);
    set_rvi(v, vapic_highest(c, VAPIC_IRR));
    c->state = CPU_RUNNING; /* a virtual interrupt ends HLT */
    c->mwait = false;
    exec_deliver_interrupt(c, (u8)vector);
}

/* Would L2 take a virtual interrupt now (for a halted vCPU: is it runnable)? */
bool vmx_apicv_wakeup(const struct cpu *c)
{
    const struct vmx *v = c->vmx;
    return c->vmx_non_root && vid(v) && (c->rflags & FL_IF) &&
           virtual_intr_pending((struct cpu *)c);
}

/* An external interrupt in L2 with "process posted interrupts" (30.6): the notification
 * vector is acknowledged, L1's local APIC gets an EOI, the descriptor's PIR moves into
 * VIRR and RVI, and L2 goes on; any other vector exits as usual. Returns true when
 * processed. */
bool vmx_posted_interrupt(struct cpu *c, u8 vector)
{
    struct vmx *v = c->vmx;
    if (!(vmx_pin(v) & PIN_POSTED_INTR) || vector != (u8)v->vmcs.f[VMCS_POSTED_INTR_NV])
        return false;
    c->ops->intr_ack(c, c->ops_opaque);
    u64 desc = v->vmcs.f[VMCS_POSTED_INTR_DESC_ADDR];
    /* clear the outstanding-notification bit (bit 256), then EOI to L1's APIC */
    u8 on = 0;
    nested_phys_read(c, desc + 32, &on, 1);
    on &= (u8)~1u;
    nested_phys_write(c, desc + 32, &on, 1);
    vmx_l1_apic_eoi(c);
    u32 pir[8];
    if (!nested_phys_read(c, desc, pir, sizeof(pir)))
        memset(pir, 0, sizeof(pir));
    u32 zero[8] = { 0 };
    nested_phys_write(c, desc, zero, sizeof(zero));
    unsigned high = 0;
    for (unsigned k = 0; k < 8; k++) {
        if (!pir[k])
            continue;
        vapic_write(c, VAPIC_IRR + 0x10 * k, vapic_read(c, VAPIC_IRR + 0x10 * k) | pir[k]);
        high = k * 32 + 31 - (unsigned)__builtin_clz(pir[k]);
    }
    if (high > rvi(v))
        set_rvi(v, high);
    evaluate_pending(c);
    return true;
}

void vmx_l1_apic_eoi(struct cpu *c)
{
    bool nr = c->vmx_non_root;
    c->vmx_non_root = false; /* L1's APIC, not L2's view of it */
    u64 base = 0;
    if (cpu_rdmsr(c, 0x1b, &base)) {
        if (base & BIT(10))
            cpu_wrmsr(c, 0x80b, 0);
        else
            phys_write(c, (base & ~0xfffull) + 0xb0, 4, 0);
    }
    c->vmx_non_root = nr;
}

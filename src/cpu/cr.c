/* Control and debug registers: MOV to/from CRn and DRn with the checks of the SDM
 * (Vol. 2 "MOV—Move to/from Control Registers", "MOV—Move to/from Debug Registers";
 * Vol. 3A 2.5, 4.1.1, 4.4.1, 4.10.4, 17.2), long-mode activation, PAE PDPTE loading and
 * the TLB flushes that each change requires.
 *
 * The instruction paths (cpu_write_cr/cpu_read_cr/cpu_write_dr/cpu_read_dr) check
 * privilege (for DRn: after the intercept, see cpu_write_dr), then offer the access to
 * cpu_intercept(EV_CR_ACCESS / EV_DR_ACCESS), then apply it. cpu_load_cr is the part
 * after the intercept, shared with LMSW, CLTS and anything else that loads a control
 * register with the architectural checks. */
#include "cpu/exec.h"
#include "cpu/svm/svm.h"
#include "cpu/vmx/vmx.h"

#define CR0_WRITABLE (CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | CR0_WP | CR0_AM | \
                      CR0_NW | CR0_CD | CR0_PG)
/* Changes of these CR0 bits reload the PDPTEs when PAE paging results (SDM 4.4.1). */
#define CR0_PDPTE_BITS (CR0_PG | CR0_CD | CR0_NW)
/* ... and of these CR4 bits. */
#define CR4_PDPTE_BITS (CR4_PGE | CR4_PSE | CR4_PAE | CR4_SMEP)
/* Changes of these bits change how linear addresses translate: flush everything. */
#define CR0_MMU_BITS (CR0_PE | CR0_PG | CR0_WP | CR0_CD | CR0_NW)
#define CR4_MMU_BITS (CR4_PGE | CR4_PAE | CR4_PSE | CR4_SMEP | CR4_SMAP | CR4_LA57 | CR4_PCIDE | \
                      CR4_PKE)

/* The CR4 bits the model allows to be set, each with the feature that backs it
 * (CF_COUNT = always present). VMXE, SMXE and PKE have no implemented feature. */
static const struct { u64 bit; enum cpuid_fast feature; } cr4_bits[] = {
    { CR4_VME, CF_VME },        { CR4_PVI, CF_VME },         { CR4_TSD, CF_TSC },
    { CR4_DE, CF_DE },          { CR4_PSE, CF_PSE },         { CR4_PAE, CF_PAE },
    { CR4_MCE, CF_MCE },        { CR4_PGE, CF_PGE },         { CR4_PCE, CF_COUNT },
    { CR4_OSFXSR, CF_FXSR },    { CR4_OSXMMEXCPT, CF_SSE },  { CR4_UMIP, CF_UMIP },
    { CR4_LA57, CF_LA57 },      { CR4_FSGSBASE, CF_FSGSBASE }, { CR4_PCIDE, CF_PCID },
    { CR4_OSXSAVE, CF_XSAVE },  { CR4_SMEP, CF_SMEP },       { CR4_SMAP, CF_SMAP },
};

static _Noreturn void gp0(struct cpu *c)
{
    cpu_fault(c, EXC_GP, 0);
}

u64 cpu_cr4_allowed(const struct cpu *c)
{
    u64 allowed = c->vmx ? CR4_VMXE : 0;
    for (size_t k = 0; k < ARRAY_SIZE(cr4_bits); k++)
        if (cr4_bits[k].feature == CF_COUNT || cpu_has(c, cr4_bits[k].feature))
            allowed |= cr4_bits[k].bit;
    return allowed;
}

static bool pae_paging(u64 cr0, u64 cr4, u64 efer)
{
    return (cr0 & CR0_PG) && (cr4 & CR4_PAE) && !(efer & EFER_LMA);
}

/* Loads the PDPTEs for cr3 (#GP(0) if one has reserved bits set). */
static void load_pdptes(struct cpu *c, u64 cr3, u64 efer, u64 pdpte[4])
{
    struct paging_ctx ctx = c->in->pg;
    ctx.fmt = PG_PAE;
    ctx.nxe = efer & EFER_NXE;
    if (!paging_load_pdptes(&ctx, cr3, pdpte))
        gp0(c);
}

/* After CR0/CR4/EFER changed paging: recompute the walker's parameters (flushing the
 * TLB) and install the PDPTEs loaded by the instruction, if any. */
static void mmu_changed(struct cpu *c, const u64 *pdpte)
{
    mmu_update(c);
    c->in->large_pages_cached = false;
    if (pdpte)
        for (int k = 0; k < 4; k++)
            c->in->pg.pdpte[k] = pdpte[k];
}

static void load_cr0(struct cpu *c, u64 v)
{
    if (v >> 32)
        gp0(c);
    u64 old = c->cr0;
    /* Reserved bits of CR0[31:0] are ignored; ET is hardwired to 1. */
    v = (v & CR0_WRITABLE) | CR0_ET;
    if ((v & CR0_PG) && !(v & CR0_PE))
        gp0(c);
    if (c->vmx && !vmx_cr0_allowed(c, v)) /* bits VMX operation fixes */
        gp0(c);
    if ((v & CR0_NW) && !(v & CR0_CD))
        gp0(c);
    if (!(v & CR0_PG) && (old & CR0_PG)) {
        if (cpu_is_long64(c) || (c->cr4 & CR4_PCIDE))
            gp0(c);
    }
    u64 efer = c->efer;
    if ((v & CR0_PG) && !(old & CR0_PG) && (efer & EFER_LME)) {
        /* activating IA-32e mode: needs PAE, and not from a code segment with L set */
        if (!(c->cr4 & CR4_PAE) || (c->seg[SEG_CS].attr & SEG_ATTR_L))
            gp0(c);
        efer |= EFER_LMA;
    }
    if (!(v & CR0_PG))
        efer &= ~EFER_LMA;

    u64 pdpte[4];
    bool new_pdptes = pae_paging(v, c->cr4, efer) && ((v ^ old) & CR0_PDPTE_BITS);
    if (new_pdptes)
        load_pdptes(c, c->cr3, efer, pdpte);

    c->cr0 = v;
    c->efer = efer;
    if ((v ^ old) & CR0_MMU_BITS || new_pdptes)
        mmu_changed(c, new_pdptes ? pdpte : NULL);
    if ((v ^ old) & (CR0_PE | CR0_PG))
        cpu_update_mode(c);
}

static void load_cr3(struct cpu *c, u64 v)
{
    if (c->efer & EFER_LMA) {
        /* Bit 63 with PCIDE: do not invalidate the new PCID's entries; never stored. */
        if (c->cr4 & CR4_PCIDE)
            v &= ~BIT(63);
        if (v >> c->model->phys_bits)
            gp0(c);
    } else {
        v &= 0xffffffffull;
    }
    u64 pdpte[4];
    bool pae = pae_paging(c->cr0, c->cr4, c->efer);
    if (pae)
        load_pdptes(c, v, c->efer, pdpte);

    c->cr3 = v;
    c->in->pg.root = v;
    if (pae)
        for (int k = 0; k < 4; k++)
            c->in->pg.pdpte[k] = pdpte[k];
    /* MOV CR3 invalidates the non-global translations. The software TLB does not match
     * PCIDs on lookup, so it drops them for every PCID (even with the no-flush hint),
     * which a TLB is always allowed to do. */
    tlb_flush_nonglobal(&c->tlb);
}

static void load_cr4(struct cpu *c, u64 v)
{
    u64 old = c->cr4;
    bool lma = c->efer & EFER_LMA;
    if ((v & ~cpu_cr4_allowed(c)) || (c->vmx && !vmx_cr4_allowed(c, v)))
        gp0(c);
    if (lma && !(v & CR4_PAE))
        gp0(c);
    if (lma && ((v ^ old) & CR4_LA57))
        gp0(c);
    if ((v & CR4_PCIDE) && !(old & CR4_PCIDE) && (!lma || (c->cr3 & 0xfff)))
        gp0(c);

    u64 pdpte[4];
    bool new_pdptes = pae_paging(c->cr0, v, c->efer) && ((v ^ old) & CR4_PDPTE_BITS);
    if (new_pdptes)
        load_pdptes(c, c->cr3, c->efer, pdpte);

    c->cr4 = v;
    if ((v ^ old) & CR4_MMU_BITS || new_pdptes)
        mmu_changed(c, new_pdptes ? pdpte : NULL);
    if ((v ^ old) & CR4_DE)
        debug_update(c);
}

void cpu_load_cr(struct cpu *c, int cr, u64 value)
{
    switch (cr) {
    case 0: load_cr0(c, value); break;
    case 2: c->cr2 = cpu_is_long64(c) ? value : (value & 0xffffffffull); break;
    case 3: load_cr3(c, value); break;
    case 4: load_cr4(c, value); break;
    case 8:
        if (value & ~0xfull)
            gp0(c);
        c->cr8 = value;
        break;
    default: cpu_fault_noerr(c, EXC_UD);
    }
}

u64 cpu_efer_allowed(const struct cpu *c)
{
    u64 allowed = EFER_LMA;
    if (cpu_has(c, CF_SYSCALL))
        allowed |= EFER_SCE;
    if (cpu_has(c, CF_LM))
        allowed |= EFER_LME;
    /* IA32_MISC_ENABLE.XD_DISABLE takes NX away (and CPUID's NX bit with it) */
    if (cpu_has(c, CF_NX) && !(c->msr_misc_enable & MISC_ENABLE_XD_DISABLE))
        allowed |= EFER_NXE;
    /* SVM: unless VM_CR.SVMDIS forbids it (APM 15.4) */
    if (svm_efer_svme_allowed(c))
        allowed |= EFER_SVME;
    return allowed;
}

bool cpu_efer_valid(const struct cpu *c, u64 value)
{
    if (value & ~cpu_efer_allowed(c))
        return false;
    /* LME cannot change while paging is on */
    if ((c->cr0 & CR0_PG) && ((value ^ c->efer) & EFER_LME))
        return false;
    return true;
}

void cpu_load_efer(struct cpu *c, u64 value)
{
    if (!cpu_efer_valid(c, value))
        gp0(c);
    /* LMA is the processor's: the written value is ignored */
    value = (value & ~EFER_LMA) | (c->efer & EFER_LMA);
    u64 old = c->efer;
    bool pmu_svme = c->pmu.enabled && ((value ^ old) & EFER_SVME); /* AMD's HostOnly */
    if (unlikely(pmu_svme))
        pmu_sync(c);
    c->efer = value;
    if (unlikely(pmu_svme))
        pmu_refresh(c);
    if ((value ^ old) & EFER_NXE)
        mmu_changed(c, NULL);
}

/* Privilege and encoding checks shared by reads and writes of control registers. */
static void cr_access_check(struct cpu *c, int cr)
{
    if (cr != 0 && cr != 2 && cr != 3 && cr != 4 && cr != 8)
        cpu_fault_noerr(c, EXC_UD);
    if (c->cpl != 0)
        gp0(c);
}

void cpu_write_cr(struct cpu *c, int cr, u64 value)
{
    cr_access_check(c, cr);
    struct cpu_event ev = { .kind = EV_CR_ACCESS,
                            .u.cr = { .cr = (u8)cr, .write = true, .value = value } };
    if (cr == 8 && (value & ~0xfull)) {
        /* a CR8-load VM exit comes before this #GP (SDM 26.1.1); nobody else sees it */
        if (unlikely(c->vmx_non_root))
            vmx_intercept(c, &ev);
        gp0(c);
    }
    enum intercept_result r = cpu_intercept(c, &ev);
    if (r == INTERCEPT_FAULT)
        gp0(c);
    if (r != INTERCEPT_DEFAULT)
        return;
    /* (in VMX non-root operation the bits L1 owns keep their values: ev says) */
    cpu_load_cr(c, cr, ev.u.cr.value);
}

u64 cpu_read_cr(struct cpu *c, int cr)
{
    cr_access_check(c, cr);
    u64 v = cr == 0 ? c->cr0 : cr == 2 ? c->cr2 : cr == 3 ? c->cr3 : cr == 4 ? c->cr4 : c->cr8;
    struct cpu_event ev = { .kind = EV_CR_ACCESS,
                            .u.cr = { .cr = (u8)cr, .write = false, .value = v } };
    enum intercept_result r = cpu_intercept(c, &ev);
    if (r == INTERCEPT_FAULT)
        gp0(c);
    /* an owner's answer, or L2's view of CR0/CR4 (read shadows) */
    return ev.u.cr.value;
}

/* ---- debug registers ---- */

/* DR6: B0-B3, BD, BS, BT are the writable bits; bits 4-11 and 16-31 read as 1 (no RTM,
 * no bus-lock detection), bit 12 as 0. DR7: bit 10 reads as 1, bits 11, 12, 14, 15 as 0. */
#define DR6_WRITABLE 0x0000e00full
#define DR6_FIXED1 0xffff0ff0ull
#define DR7_WRITABLE 0xffff23ffull
#define DR7_FIXED1 0x400ull
#define DR7_GD BIT(13)
#define DR6_BD BIT(13)

/* MOV DR: an encoding beyond DR7 is #UD; then the access is offered to the intercept
 * with the register number the instruction names (a VM exit reports DR4/DR5 as such).
 * A MOV-DR VM exit comes before the other faults: the #GP above CPL 0 and the #UD of
 * DR4/DR5 with CR4.DE (SDM 26.1.3, MOV DR, an exception to 26.1.1), the general-detect
 * #DB, and the #GP of a reserved DR6/DR7 value (26.1.1: fault-like VM exits have
 * priority over other exceptions). */
static void dr_number_check(struct cpu *c, int dr)
{
    if (dr > 7) {
        if (c->cpl != 0) /* privilege first, as for the other registers */
            gp0(c);
        cpu_fault_noerr(c, EXC_UD);
    }
}

/* After the intercept: privilege, the DR4/DR5 aliases of DR6/DR7 unless CR4.DE makes
 * them #UD, and general detect (a fault with DR6.BD, before the access). */
static int dr_resolve(struct cpu *c, int dr)
{
    if (c->cpl != 0)
        gp0(c);
    if (dr == 4 || dr == 5) {
        if (c->cr4 & CR4_DE)
            cpu_fault_noerr(c, EXC_UD);
        dr += 2;
    }
    if (c->dr[7] & DR7_GD) {
        debug_set_dr6(c, DR6_BD);
        cpu_fault_noerr(c, EXC_DB);
    }
    return dr;
}

void cpu_write_dr(struct cpu *c, int dr, u64 value)
{
    dr_number_check(c, dr);
    if (!cpu_is_long64(c))
        value &= 0xffffffffull;
    struct cpu_event ev = { .kind = EV_DR_ACCESS, .u.dr = { (u8)dr, true, value } };
    enum intercept_result r = cpu_intercept(c, &ev);
    if (r == INTERCEPT_FAULT)
        gp0(c);
    if (r != INTERCEPT_DEFAULT)
        return;
    dr = dr_resolve(c, dr);
    if ((dr == 6 || dr == 7) && (value >> 32))
        gp0(c);
    if (dr == 6)
        value = (value & DR6_WRITABLE) | DR6_FIXED1;
    else if (dr == 7)
        value = (value & DR7_WRITABLE) | DR7_FIXED1;
    c->dr[dr] = value;
    debug_update(c);
}

u64 cpu_read_dr(struct cpu *c, int dr)
{
    dr_number_check(c, dr);
    struct cpu_event ev = { .kind = EV_DR_ACCESS, .u.dr = { (u8)dr, false, 0 } };
    enum intercept_result r = cpu_intercept(c, &ev);
    if (r == INTERCEPT_FAULT)
        gp0(c);
    if (r != INTERCEPT_DEFAULT)
        return ev.u.dr.value;
    return c->dr[dr_resolve(c, dr)];
}

/* System instructions: descriptor-table registers, LDTR/TR, segment inspection
 * (LAR/LSL/VERR/VERW/ARPL), CR0 shortcuts (LMSW/SMSW/CLTS), caches and TLB (INVD,
 * WBINVD, INVLPG, INVPCID), MSRs, time stamp, CPUID, HLT/PAUSE, interrupt flag and
 * RFLAGS (CLI/STI/PUSHF/POPF/CLAC/STAC), fast system calls (SYSCALL/SYSRET,
 * SYSENTER/SYSEXIT, SWAPGS), FS/GS base access, XCR0, port I/O, hypercalls and the
 * undefined opcodes. MOV to/from CRn/DRn reach cr.c through the operand layer.
 *
 * Where Intel and AMD differ (SYSCALL/SYSRET outside 64-bit mode, SYSENTER/SYSEXIT in
 * IA-32e mode) the behaviour follows the vendor of the CPU model. */
#include <string.h>

#include "cpu/exec.h"
#include "cpu/svm/svm.h"
#include "cpu/vmx/vmx.h"
#include "machine/mem.h"

static _Noreturn void gp0(struct cpu *c) { cpu_fault(c, EXC_GP, 0); }
static _Noreturn void ud(struct cpu *c) { cpu_fault_noerr(c, EXC_UD); }

static inline unsigned iopl(const struct cpu *c) { return (unsigned)((c->rflags & FL_IOPL) >> 12); }
static inline bool is_amd(const struct cpu *c) { return c->model->vendor == VENDOR_AMD; }

static void require_cpl0(struct cpu *c)
{
    if (c->cpl != 0)
        gp0(c);
}

/* Not recognized in real-address and virtual-8086 mode. */
static void require_prot(struct cpu *c)
{
    if (!cpu_is_prot(c))
        ud(c);
}

/* CR4.UMIP: SGDT, SIDT, SLDT, SMSW and STR are privileged. */
static void umip_check(struct cpu *c)
{
    if ((c->cr4 & CR4_UMIP) && c->cpl > 0)
        gp0(c);
}

static void set_zf(struct cpu *c, bool z)
{
    flags_set(c, FL_ZF, z ? FL_ZF : 0);
}

static void write_edx_eax(struct cpu *c, u64 v)
{
    gpr_write(c, R_RAX, 4, v & 0xffffffffull);
    gpr_write(c, R_RDX, 4, v >> 32);
}

static u64 read_edx_eax(const struct cpu *c)
{
    return (gpr_read(c, R_RDX, 4) << 32) | gpr_read(c, R_RAX, 4);
}

/* Sets RIP to a target already validated by the instruction. */
static void jump_to(struct cpu *c, u64 rip)
{
    c->rip = rip;
    c->in->exits |= EXIT_RIP_WRITTEN;
}

/* ---- descriptor-table registers ---- */

static void insn_lgdt_lidt(struct cpu *c, const struct insn *i)
{
    require_cpl0(c);
    cpu_insn_event(c, INSN_EV_DESC_TABLE, 0);
    int seg = opr_seg(i, 0);
    u64 ea = opr_ea(c, i, 0);
    u64 amask = size_mask(i->asize);
    u16 limit = (u16)vmem_read(c, seg, ea, 2);
    u64 base;
    if (cpu_is_long64(c)) {
        base = vmem_read(c, seg, (ea + 2) & amask, 8);
        if (!cpu_canonical_max(c, base))
            gp0(c);
    } else {
        base = vmem_read(c, seg, (ea + 2) & amask, 4);
        if (i->osize == 2)
            base &= 0xffffff; /* 16-bit operand size loads a 24-bit base */
    }
    struct dtr *d = i->d.mnemonic == ZYDIS_MNEMONIC_LGDT ? &c->gdtr : &c->idtr;
    d->base = base;
    d->limit = limit;
}

static void insn_sgdt_sidt(struct cpu *c, const struct insn *i)
{
    umip_check(c);
    cpu_insn_event(c, INSN_EV_DESC_TABLE, 0);
    const struct dtr *d = i->d.mnemonic == ZYDIS_MNEMONIC_SGDT ? &c->gdtr : &c->idtr;
    u8 buf[10];
    unsigned n = cpu_is_long64(c) ? 10 : 6; /* the full 32-bit base in every legacy form */
    u64 base = d->base;
    buf[0] = (u8)d->limit;
    buf[1] = (u8)(d->limit >> 8);
    for (unsigned k = 0; k < n - 2; k++)
        buf[2 + k] = (u8)(base >> (8 * k));
    vmem_write_bytes(c, opr_seg(i, 0), opr_ea(c, i, 0), buf, n);
}

/* ---- LDTR and TR ---- */

/* Reads the GDT descriptor of a system segment for LLDT/LTR: 16 bytes in IA-32e mode.
 * Faults: TI set or beyond the GDT limit #GP(sel). */
static void read_system_descriptor(struct cpu *c, u16 sel, u64 desc[2], u64 *addr)
{
    bool wide = c->efer & EFER_LMA;
    if ((sel & 4) || !seg_fetch_descriptor(c, sel, wide ? 16 : 8, desc, addr))
        cpu_fault(c, EXC_GP, sel & 0xfffc);
    if (!wide)
        desc[1] = 0;
}

/* Decodes a system descriptor, with the upper half of the base in IA-32e mode, after
 * the checks common to LDT and TSS descriptors. */
static struct seg system_segment(struct cpu *c, u16 sel, const u64 desc[2])
{
    struct seg s;
    seg_from_descriptor(&s, sel, desc[0]);
    if (c->efer & EFER_LMA) {
        /* the type field of the upper half must be 0, the base canonical */
        if ((desc[1] >> 40) & 0x1f)
            cpu_fault(c, EXC_GP, sel & 0xfffc);
        s.base |= (desc[1] & 0xffffffffull) << 32;
        if (!cpu_canonical_max(c, s.base))
            cpu_fault(c, EXC_GP, sel & 0xfffc);
    }
    return s;
}

static void insn_lldt(struct cpu *c, const struct insn *i)
{
    require_prot(c);
    require_cpl0(c);
    cpu_insn_event(c, INSN_EV_DESC_TABLE, 0);
    u16 sel = (u16)opr_read(c, i, 0);
    if ((sel & 0xfffc) == 0) {
        c->ldtr = (struct seg){ sel, 0, 0, SEG_ATTR_UNUSABLE };
        return;
    }
    u64 desc[2], addr;
    read_system_descriptor(c, sel, desc, &addr);
    u32 attr = (u32)(desc[0] >> 40) & 0xf0ff;
    if ((attr & SEG_ATTR_S) || SEG_ATTR_TYPE(attr) != 2)
        cpu_fault(c, EXC_GP, sel & 0xfffc);
    if (!(attr & SEG_ATTR_P))
        cpu_fault(c, EXC_NP, sel & 0xfffc);
    c->ldtr = system_segment(c, sel, desc);
}

static void insn_ltr(struct cpu *c, const struct insn *i)
{
    require_prot(c);
    require_cpl0(c);
    cpu_insn_event(c, INSN_EV_DESC_TABLE, 0);
    u16 sel = (u16)opr_read(c, i, 0);
    if ((sel & 0xfffc) == 0)
        gp0(c);
    u64 desc[2], addr;
    read_system_descriptor(c, sel, desc, &addr);
    u32 attr = (u32)(desc[0] >> 40) & 0xf0ff;
    unsigned type = SEG_ATTR_TYPE(attr);
    /* an available TSS: 32/64-bit (9), or 16-bit (1) outside IA-32e mode */
    bool ok = !(attr & SEG_ATTR_S) && (type == 9 || (type == 1 && !(c->efer & EFER_LMA)));
    if (!ok)
        cpu_fault(c, EXC_GP, sel & 0xfffc);
    if (!(attr & SEG_ATTR_P))
        cpu_fault(c, EXC_NP, sel & 0xfffc);
    struct seg tr = system_segment(c, sel, desc);
    /* mark the descriptor busy (a locked write of its type byte) */
    u8 type_byte = (u8)(desc[0] >> 40) | 2;
    lin_write(c, addr + 5, 1, type_byte, ACC_IMPLICIT);
    tr.attr |= 2;
    c->tr = tr;
}

static void insn_sldt_str(struct cpu *c, const struct insn *i)
{
    require_prot(c);
    umip_check(c);
    cpu_insn_event(c, INSN_EV_DESC_TABLE, 0);
    u16 sel = i->d.mnemonic == ZYDIS_MNEMONIC_SLDT ? c->ldtr.sel : c->tr.sel;
    opr_write(c, i, 0, sel);
}

/* ---- segment inspection ---- */

/* System descriptor types LAR / LSL accept (SDM LAR and LSL tables). */
static bool system_type_ok(const struct cpu *c, unsigned type, bool lar)
{
    if (c->efer & EFER_LMA) /* LDT, 64-bit TSS (available, busy), 64-bit call gate */
        return type == 2 || type == 9 || type == 0xb || (lar && type == 0xc);
    switch (type) {
    case 1: case 2: case 3: case 9: case 0xb: return true;
    case 4: case 5: case 0xc: return lar; /* gates have no limit */
    default: return false;
    }
}

/* The descriptor LAR/LSL/VERR/VERW look at, or false (ZF = 0) if the selector is null,
 * beyond its table, or fails the privilege check (conforming code is exempt). */
static bool inspect_descriptor(struct cpu *c, u16 sel, u64 *desc)
{
    if ((sel & 0xfffc) == 0)
        return false;
    u64 d[2], addr;
    if (!seg_fetch_descriptor(c, sel, 8, d, &addr))
        return false;
    u32 attr = (u32)(d[0] >> 40) & 0xf0ff;
    bool conforming_code = (attr & SEG_ATTR_S) && (attr & 0xc) == 0xc;
    unsigned dpl = SEG_ATTR_DPL(attr);
    if (!conforming_code && (dpl < c->cpl || dpl < (sel & 3u)))
        return false;
    if (!(attr & SEG_ATTR_S) && (c->efer & EFER_LMA)) {
        /* 16-byte system descriptor: its upper type field must be 0 */
        if (!seg_fetch_descriptor(c, sel, 16, d, &addr) || ((d[1] >> 40) & 0x1f))
            return false;
    }
    *desc = d[0];
    return true;
}

static void insn_lar_lsl(struct cpu *c, const struct insn *i)
{
    require_prot(c);
    bool lar = i->d.mnemonic == ZYDIS_MNEMONIC_LAR;
    u16 sel = (u16)opr_read(c, i, 1);
    u64 d;
    bool ok = inspect_descriptor(c, sel, &d);
    if (ok) {
        u32 attr = (u32)(d >> 40) & 0xf0ff;
        if (!(attr & SEG_ATTR_S))
            ok = system_type_ok(c, SEG_ATTR_TYPE(attr), lar);
    }
    set_zf(c, ok);
    if (!ok)
        return;
    if (lar) {
        u32 rights = (u32)(d >> 32) & 0x00ffff00u;
        opr_write(c, i, 0, i->osize == 2 ? (rights & 0xff00u) : rights);
    } else {
        struct seg s;
        seg_from_descriptor(&s, sel, d);
        opr_write(c, i, 0, s.limit);
    }
}

static void insn_verr_verw(struct cpu *c, const struct insn *i)
{
    require_prot(c);
    bool write = i->d.mnemonic == ZYDIS_MNEMONIC_VERW;
    u16 sel = (u16)opr_read(c, i, 0);
    u64 d;
    bool ok = inspect_descriptor(c, sel, &d);
    if (ok) {
        u32 attr = (u32)(d >> 40) & 0xf0ff;
        unsigned type = SEG_ATTR_TYPE(attr);
        bool code = type & 8;
        if (!(attr & SEG_ATTR_S))
            ok = false;
        else if (write)
            ok = !code && (type & 2);
        else
            ok = !code || (type & 2);
    }
    set_zf(c, ok);
}

static void insn_arpl(struct cpu *c, const struct insn *i)
{
    require_prot(c);
    u64 dest = opr_read(c, i, 0);
    u64 src = opr_read(c, i, 1);
    if ((dest & 3) < (src & 3)) {
        opr_write(c, i, 0, (dest & ~3ull) | (src & 3));
        set_zf(c, true);
    } else {
        set_zf(c, false);
    }
}

/* ---- CR0 shortcuts ---- */

/* Writes CR0 as LMSW/CLTS do: through the intercept, then with the checks. */
static void cr0_shortcut(struct cpu *c, struct cpu_event *ev)
{
    enum intercept_result r = cpu_intercept(c, ev);
    if (r == INTERCEPT_FAULT)
        gp0(c);
    if (r == INTERCEPT_DEFAULT)
        cpu_load_cr(c, 0, ev->u.cr.value);
}

static void insn_lmsw(struct cpu *c, const struct insn *i)
{
    require_cpl0(c);
    u16 src = (u16)opr_read(c, i, 0);
    bool mem = i->opd[0].kind == OPD_MEM;
    /* loads PE, MP, EM, TS; can set PE but never clear it */
    struct cpu_event ev = {
        .kind = EV_CR_ACCESS,
        .u.cr = { .cr = 0, .write = true,
                  .value = (c->cr0 & ~0xfull) | (src & 0xf) | (c->cr0 & CR0_PE),
                  .lmsw_source = src, .lmsw_memory = mem,
                  .lmsw_linear =
                      mem ? seg_linear(c, opr_seg(i, 0), opr_ea(c, i, 0), 2, false) : 0 },
    };
    cr0_shortcut(c, &ev);
}

static void insn_clts(struct cpu *c, const struct insn *i)
{
    (void)i;
    require_cpl0(c);
    struct cpu_event ev = { .kind = EV_CR_ACCESS,
                            .u.cr = { .cr = 0, .write = true, .value = c->cr0 & ~CR0_TS } };
    cr0_shortcut(c, &ev);
}

static void insn_smsw(struct cpu *c, const struct insn *i)
{
    umip_check(c);
    u64 cr0 = c->cr0;
    cpu_insn_event(c, INSN_EV_SMSW, 0); /* SVM: the CR0 read intercept */
    if (unlikely(c->vmx_non_root)) /* L2 sees CR0's read shadow in the bits L1 owns */
        cr0 = vmx_cr0_visible(c);
    opr_write(c, i, 0, cr0);
}

/* ---- caches and TLB ---- */

static void insn_invd_wbinvd(struct cpu *c, const struct insn *i)
{
    /* Caches are not modelled: memory is always coherent. WBNOINVD (F3 0F 09) decodes as
     * WBINVD with a REP prefix and behaves the same here. */
    require_cpl0(c);
    cpu_insn_event(c, i->d.mnemonic == ZYDIS_MNEMONIC_INVD ? INSN_EV_INVD : INSN_EV_WBINVD, 0);
}

static void flush_all_translations(struct cpu *c)
{
    tlb_flush_all(&c->tlb);
    c->in->large_pages_cached = false;
}

/* Invalidates the translation of one linear address; a large page is cached as 4K
 * pieces, so when one may exist everything goes. */
static void flush_linear(struct cpu *c, u64 linear)
{
    if (c->in->large_pages_cached)
        flush_all_translations(c);
    else
        tlb_flush_page(&c->tlb, linear);
}

static void insn_invlpg(struct cpu *c, const struct insn *i)
{
    require_cpl0(c);
    int seg = opr_seg(i, 0);
    u64 ea = opr_ea(c, i, 0);
    u64 linear;
    if (cpu_is_long64(c))
        linear = ea + ((seg == SEG_FS || seg == SEG_GS) ? c->seg[seg].base : 0);
    else
        linear = (c->seg[seg].base + ea) & 0xffffffffull;
    struct cpu_event ev = { .kind = EV_INVLPG, .u.invlpg = { linear } };
    if (cpu_intercept(c, &ev) != INTERCEPT_DEFAULT)
        return;
    flush_linear(c, linear);
}

static void insn_invpcid(struct cpu *c, const struct insn *i)
{
    if (!cpu_has(c, CF_INVPCID) || cpu_is_v86(c) || (c->vmx_non_root && !vmx_l2_has_invpcid(c)))
        ud(c);
    require_cpl0(c);
    cpu_insn_event(c, INSN_EV_INVPCID, 0);
    u64 type = opr_read(c, i, 0);
    if (type > 3)
        gp0(c);
    int seg = opr_seg(i, 1);
    u64 ea = opr_ea(c, i, 1);
    u64 d0 = vmem_read(c, seg, ea, 8);
    u64 addr = vmem_read(c, seg, (ea + 8) & size_mask(i->asize), 8);
    u16 pcid = (u16)(d0 & 0xfff);
    bool pcide = c->cr4 & CR4_PCIDE;
    if (type <= 1) {
        if (d0 >> 12)
            gp0(c);
        if (!pcide && pcid != 0)
            gp0(c);
    }
    switch (type) {
    case 0: /* one address in one PCID */
        if (!cpu_canonical_max(c, addr))
            gp0(c);
        flush_linear(c, addr);
        break;
    case 1: /* one PCID, global translations kept */
        tlb_flush_pcid(&c->tlb, pcid, true);
        break;
    case 2: /* everything, globals included */
        flush_all_translations(c);
        break;
    default: /* everything but globals */
        tlb_flush_nonglobal(&c->tlb);
        break;
    }
}

/* ---- MSRs, time stamp, performance counters ---- */

static void insn_rdmsr(struct cpu *c, const struct insn *i)
{
    (void)i;
    if (!cpu_has(c, CF_MSR))
        ud(c);
    require_cpl0(c);
    u64 v = 0;
    if (cpu_msr_event(c, (u32)c->gpr[R_RCX], false, &v)) {
        write_edx_eax(c, v);
        return;
    }
    if (!cpu_rdmsr(c, (u32)gpr_read(c, R_RCX, 4), &v))
        gp0(c);
    write_edx_eax(c, v);
}

static void insn_wrmsr(struct cpu *c, const struct insn *i)
{
    (void)i;
    if (!cpu_has(c, CF_MSR))
        ud(c);
    require_cpl0(c);
    u64 wv = read_edx_eax(c);
    if (cpu_msr_event(c, (u32)c->gpr[R_RCX], true, &wv))
        return;
    if (!cpu_wrmsr(c, (u32)gpr_read(c, R_RCX, 4), read_edx_eax(c)))
        gp0(c);
}

static u64 read_tsc(struct cpu *c, bool rdtscp)
{
    if ((c->cr4 & CR4_TSD) && c->cpl > 0)
        gp0(c);
    struct cpu_event ev = { .kind = EV_RDTSC, .u.rdtsc = { cpu_tsc(c), rdtscp } };
    if (cpu_intercept(c, &ev) == INTERCEPT_FAULT)
        gp0(c);
    return ev.u.rdtsc.tsc;
}

static void insn_rdtsc(struct cpu *c, const struct insn *i)
{
    (void)i;
    if (!cpu_has(c, CF_TSC))
        ud(c);
    write_edx_eax(c, read_tsc(c, false));
}

static void insn_rdtscp(struct cpu *c, const struct insn *i)
{
    (void)i;
    if (!cpu_has(c, CF_RDTSCP) || (c->vmx_non_root && !vmx_l2_has_rdtscp(c)))
        ud(c);
    write_edx_eax(c, read_tsc(c, true));
    gpr_write(c, R_RCX, 4, c->msr_tsc_aux & 0xffffffffull);
}

static void insn_rdpid(struct cpu *c, const struct insn *i)
{
    if (!cpu_has(c, CF_RDPID))
        ud(c);
    opr_write(c, i, 0, c->msr_tsc_aux & 0xffffffffull);
}

static void insn_rdpmc(struct cpu *c, const struct insn *i)
{
    (void)i;
    /* CPL > 0 (virtual-8086 mode included) needs CR4.PCE; an invalid index is #GP too */
    if (c->cpl > 0 && !(c->cr4 & CR4_PCE))
        gp0(c);
    cpu_insn_event(c, INSN_EV_RDPMC, 0);
    u64 v;
    if (!pmu_rdpmc(c, (u32)gpr_read(c, R_RCX, 4), &v))
        gp0(c);
    gpr_write(c, R_RAX, 4, (u32)v);
    gpr_write(c, R_RDX, 4, (u32)(v >> 32));
}

/* ---- CPUID, HLT, PAUSE ---- */

static void insn_cpuid(struct cpu *c, const struct insn *i)
{
    (void)i;
    u32 leaf = (u32)gpr_read(c, R_RAX, 4), sub = (u32)gpr_read(c, R_RCX, 4);
    /* The model's answer, as IA32_MISC_ENABLE shapes it, is offered to the intercept,
     * which may replace it (hypervisor leaves, the APIC enable bit that the LAPIC owns). */
    u32 asked = cpuid_misc_enable_leaf(c->model, leaf, c->msr_misc_enable);
    struct cpuid_result r = cpuid_query(c->model, asked, sub, (u32)c->id,
                                        c->cr4 & CR4_OSXSAVE, true, c->xcr0);
    cpuid_misc_enable_adjust(c->model, asked, c->msr_misc_enable, &r);
    /* Intel enumerates SYSCALL/SYSRET (80000001h:EDX[11]) only in 64-bit mode, the only
     * mode where it executes them. */
    if (leaf == 0x80000001u && !is_amd(c) && !cpu_is_long64(c))
        r.edx &= ~(u32)BIT(11);
    struct cpu_event ev = { .kind = EV_CPUID,
                            .u.cpuid = { leaf, sub, r.eax, r.ebx, r.ecx, r.edx } };
    enum intercept_result res = cpu_intercept(c, &ev);
    if (res == INTERCEPT_FAULT)
        gp0(c);
    if (res == INTERCEPT_HANDLED)
        r = (struct cpuid_result){ ev.u.cpuid.eax, ev.u.cpuid.ebx, ev.u.cpuid.ecx, ev.u.cpuid.edx };
    gpr_write(c, R_RAX, 4, r.eax);
    gpr_write(c, R_RBX, 4, r.ebx);
    gpr_write(c, R_RCX, 4, r.ecx);
    gpr_write(c, R_RDX, 4, r.edx);
}

static void insn_hlt(struct cpu *c, const struct insn *i)
{
    (void)i;
    require_cpl0(c);
    struct cpu_event ev = { .kind = EV_HLT };
    if (cpu_intercept(c, &ev) == INTERCEPT_DEFAULT) {
        c->state = CPU_HALTED;
        c->mwait = false; /* an HLT, whatever ended the last MWAIT */
        pmu_run_state_changed(c); /* unhalted cycles stop */
    }
}

/* ---- MONITOR / MWAIT ----
 * MONITOR arms a write monitor on the line at DS:rAX; MWAIT then waits like HLT until
 * the line is written (by any vCPU or device), an interrupt or NMI arrives (with ECX[0]
 * a masked interrupt too), or INIT; it returns at once when the monitor is not armed or
 * already triggered. A write anywhere in the line's 4K page ends the wait: the monitor
 * watches the page's write generation (the one that keeps decoded code coherent), and a
 * wake-up without a write to the line itself is one the SDM allows (software re-checks
 * its condition). MWAIT's hints (EAX) name C-states; every one waits the same way. */
#define MONITOR_LINE 64u

/* #UD unless MONITOR/MWAIT exist and are enabled (CPUID.1:ECX.MONITOR as the guest
 * sees it, IA32_MISC_ENABLE[18] on Intel), at CPL 0 and outside virtual-8086 mode. */
static void monitor_checks(struct cpu *c)
{
    if (!cpuid_has(c->model, "monitor") || cpu_is_v86(c) || c->cpl != 0 ||
        (!is_amd(c) && !(c->msr_misc_enable & MISC_ENABLE_MWAIT)))
        ud(c);
}

static u32 *monitor_page_gen(struct cpu *c)
{
    return mem_page_gen(c->mem, c->monitor_gpa);
}

static bool monitor_triggered(struct cpu *c)
{
    u32 *gen = monitor_page_gen(c);
    return gen && *gen != c->monitor_gen;
}

static void insn_monitor(struct cpu *c, const struct insn *i)
{
    monitor_checks(c);
    cpu_insn_event(c, INSN_EV_MONITOR, 0);
    u64 ext = cpu_is_long64(c) ? c->gpr[R_RCX] : (c->gpr[R_RCX] & 0xffffffffull);
    u64 ea = gpr_read(c, R_RAX, i->asize);
    u64 lin = seg_linear(c, insn_ds_segment(i), ea, 1, false);
    u64 gpa = lin_translate(c, lin, ACC_READ);
    if (ext != 0) /* no MONITOR extensions exist */
        gp0(c);
    c->monitor_gpa = gpa & ~(u64)(MONITOR_LINE - 1);
    c->monitor_armed = true;
    /* every write to the page now goes where the generation is kept */
    mem_code_mark(c->mem, c->monitor_gpa);
    u32 *gen = monitor_page_gen(c);
    c->monitor_gen = gen ? *gen : 0; /* not RAM: no write can trigger it */
}

static void insn_mwait(struct cpu *c, const struct insn *i)
{
    (void)i;
    monitor_checks(c);
    cpu_insn_event(c, INSN_EV_MWAIT, c->monitor_armed && !monitor_triggered(c));
    u64 ext = cpu_is_long64(c) ? c->gpr[R_RCX] : (c->gpr[R_RCX] & 0xffffffffull);
    if (ext >> 1) /* only ECX[0], interrupts as break events, is defined (CPUID.5:ECX) */
        gp0(c);
    bool armed = c->monitor_armed && !monitor_triggered(c);
    c->monitor_armed = false;
    if (!armed)
        return;
    c->mwait = true;
    c->mwait_break_on_intr = ext & 1;
    c->state = CPU_HALTED;
    c->in->exits |= EXIT_BLOCK_END;
}

void cpu_block(struct cpu *c, bool any_interrupt)
{
    c->mwait = any_interrupt;
    c->mwait_break_on_intr = any_interrupt;
    c->state = CPU_HALTED;
    if (c->in)
        c->in->exits |= EXIT_BLOCK_END;
}

void cpu_unblock(struct cpu *c)
{
    if (c->state == CPU_HALTED) {
        c->state = CPU_RUNNING;
        c->mwait = false;
    }
}

bool cpu_mwait_ends(struct cpu *c)
{
    bool masked_intr = c->mwait_break_on_intr && c->ops->intr_pending &&
                       c->ops->intr_pending(c, c->ops_opaque) >= 0;
    if (!monitor_triggered(c) && !masked_intr)
        return false;
    c->state = CPU_RUNNING;
    return true;
}

static void insn_pause(struct cpu *c, const struct insn *i)
{
    (void)i;
    struct cpu_event ev = { .kind = EV_PAUSE };
    cpu_intercept(c, &ev);
}

/* ---- interrupt flag and RFLAGS ---- */

/* May CLI/STI change IF? (No VME/PVI: those are not in any model.) */
static bool if_changeable(const struct cpu *c)
{
    if (cpu_is_real(c))
        return true;
    if (cpu_is_v86(c))
        return iopl(c) == 3;
    return c->cpl <= iopl(c);
}

static void insn_cli(struct cpu *c, const struct insn *i)
{
    (void)i;
    if (!if_changeable(c))
        gp0(c);
    cpu_set_rflags(c, 0, FL_IF);
}

static void insn_sti(struct cpu *c, const struct insn *i)
{
    (void)i;
    if (!if_changeable(c))
        gp0(c);
    if (!(c->rflags & FL_IF)) {
        cpu_set_rflags(c, FL_IF, FL_IF);
        c->intr_shadow = SHADOW_STI; /* interrupts wait until after the next instruction */
    }
}

static void insn_pushf(struct cpu *c, const struct insn *i)
{
    if (cpu_is_v86(c) && iopl(c) < 3)
        gp0(c);
    cpu_insn_event(c, INSN_EV_PUSHF, 0);
    /* the image never shows VM or RF */
    u64 v = cpu_flags(c) & ~(FL_VM | FL_RF);
    cpu_push(c, v & size_mask(i->osize), i->osize);
}

static void insn_popf(struct cpu *c, const struct insn *i)
{
    if (cpu_is_v86(c) && iopl(c) < 3)
        gp0(c);
    cpu_insn_event(c, INSN_EV_POPF, 0);
    u64 mask = FL_ARITH | FL_TF | FL_DF | FL_NT | FL_AC | FL_ID;
    if (cpu_is_v86(c))
        mask |= FL_IF;           /* IOPL is 3 here and stays */
    else if (c->cpl == 0)
        mask |= FL_IF | FL_IOPL;
    else if (c->cpl <= iopl(c))
        mask |= FL_IF;
    /* VM, VIF, VIP are never changed by POPF; RF is cleared by the loop */
    mask &= size_mask(i->osize);
    u64 v = cpu_pop(c, i->osize);
    cpu_set_rflags(c, v, mask);
}

static void insn_clac_stac(struct cpu *c, const struct insn *i)
{
    if (!cpu_has(c, CF_SMAP) || c->cpl > 0)
        ud(c);
    cpu_set_rflags(c, i->d.mnemonic == ZYDIS_MNEMONIC_STAC ? FL_AC : 0, FL_AC);
}

/* ---- fast system calls ---- */

/* Flat 4G segments with the given attributes: type, S, DPL, P plus L/D/G. */
#define ATTR_CODE64(dpl) (0xa09bu | (dpl) << 5)
#define ATTR_CODE32(dpl) (0xc09bu | (dpl) << 5)
#define ATTR_DATA32(dpl) (0xc093u | (dpl) << 5)

static void set_flat(struct cpu *c, int seg, u16 sel, u32 attr)
{
    cpu_set_seg(c, seg, sel, 0, 0xffffffffu, attr);
}

/* SYSCALL and SYSRET load RFLAGS (through SFMASK, from R11): a single-step trap follows
 * them if TF is 1 at their end, whatever it was at their start (kernel entry with TF
 * masked does not trap; a SYSRET that sets TF traps in the user's code). */
static void insn_syscall(struct cpu *c, const struct insn *i)
{
    if (!(c->efer & EFER_SCE) || !cpu_has(c, CF_SYSCALL))
        ud(c);
    /* Intel: 64-bit mode only. AMD: also compatibility and legacy mode. */
    if (!cpu_is_long64(c) && !is_amd(c))
        ud(c);
    c->in->exits |= EXIT_TF_AT_END;
    u16 cs = (u16)(c->msr_star >> 32) & 0xfffc;
    if (c->efer & EFER_LMA) {
        u64 target = cpu_is_long64(c) ? c->msr_lstar : c->msr_cstar;
        gpr_write(c, R_RCX, 8, i->next_rip);
        gpr_write(c, R_R11, 8, cpu_flags(c) & ~FL_RF);
        cpu_set_rflags(c, 0, c->msr_sfmask | FL_RF);
        set_flat(c, SEG_CS, cs, ATTR_CODE64(0));
        set_flat(c, SEG_SS, (u16)(cs + 8), ATTR_DATA32(0));
        jump_to(c, target);
    } else {
        gpr_write(c, R_RCX, 4, i->next_rip & 0xffffffffull);
        cpu_set_rflags(c, 0, FL_VM | FL_IF | FL_RF);
        set_flat(c, SEG_CS, cs, ATTR_CODE32(0));
        set_flat(c, SEG_SS, (u16)(cs + 8), ATTR_DATA32(0));
        jump_to(c, c->msr_star & 0xffffffffull);
    }
}

static void insn_sysret(struct cpu *c, const struct insn *i)
{
    if (!(c->efer & EFER_SCE) || !cpu_has(c, CF_SYSCALL))
        ud(c);
    if (!cpu_is_long64(c) && !(is_amd(c) && cpu_is_prot(c)))
        ud(c);
    require_cpl0(c);
    c->in->exits |= EXIT_TF_AT_END;
    u16 base = (u16)(c->msr_star >> 48);
    if (c->efer & EFER_LMA) {
        bool to64 = i->osize == 8;
        u64 target = to64 ? c->gpr[R_RCX] : (c->gpr[R_RCX] & 0xffffffffull);
        /* Intel raises #GP(0) here, still at CPL 0, for a non-canonical RIP */
        if (to64 && !cpu_canonical(c, target))
            gp0(c);
        u64 fl = (c->gpr[R_R11] & 0x3c7fd7ull) | FL_FIXED1;
        cpu_set_rflags(c, fl, ~FL_RF);
        if (to64)
            set_flat(c, SEG_CS, (u16)((base + 16) | 3), ATTR_CODE64(3));
        else
            set_flat(c, SEG_CS, (u16)(base | 3), ATTR_CODE32(3));
        set_flat(c, SEG_SS, (u16)((base + 8) | 3), ATTR_DATA32(3));
        jump_to(c, target);
    } else {
        /* AMD legacy mode: back to 32-bit CPL 3 with interrupts on */
        cpu_set_rflags(c, FL_IF, FL_IF);
        set_flat(c, SEG_CS, (u16)(base | 3), ATTR_CODE32(3));
        set_flat(c, SEG_SS, (u16)((base + 8) | 3), ATTR_DATA32(3));
        jump_to(c, c->gpr[R_RCX] & 0xffffffffull);
    }
}

static void sysenter_checks(struct cpu *c)
{
    if (!cpu_has(c, CF_SEP))
        ud(c);
    /* AMD does not implement SYSENTER/SYSEXIT in IA-32e mode */
    if (is_amd(c) && (c->efer & EFER_LMA))
        ud(c);
    if (!(c->cr0 & CR0_PE) || (c->msr_sysenter_cs & 0xfffc) == 0)
        gp0(c);
}

static void insn_sysenter(struct cpu *c, const struct insn *i)
{
    (void)i;
    sysenter_checks(c);
    u16 cs = (u16)c->msr_sysenter_cs & 0xfffc;
    bool lma = c->efer & EFER_LMA;
    cpu_set_rflags(c, 0, FL_VM | FL_IF | FL_RF);
    set_flat(c, SEG_CS, cs, lma ? ATTR_CODE64(0) : ATTR_CODE32(0));
    set_flat(c, SEG_SS, (u16)(cs + 8), ATTR_DATA32(0));
    if (lma) {
        gpr_write(c, R_RSP, 8, c->msr_sysenter_esp);
        jump_to(c, c->msr_sysenter_eip);
    } else {
        gpr_write(c, R_RSP, 4, c->msr_sysenter_esp & 0xffffffffull);
        jump_to(c, c->msr_sysenter_eip & 0xffffffffull);
    }
}

static void insn_sysexit(struct cpu *c, const struct insn *i)
{
    sysenter_checks(c);
    require_cpl0(c);
    u16 cs = (u16)c->msr_sysenter_cs & 0xfffc;
    if (i->osize == 8) {
        u64 rsp = c->gpr[R_RCX], rip = c->gpr[R_RDX];
        if (!cpu_canonical(c, rsp) || !cpu_canonical(c, rip))
            gp0(c);
        set_flat(c, SEG_CS, (u16)((cs + 32) | 3), ATTR_CODE64(3));
        set_flat(c, SEG_SS, (u16)((cs + 40) | 3), ATTR_DATA32(3));
        gpr_write(c, R_RSP, 8, rsp);
        jump_to(c, rip);
    } else {
        u64 rsp = c->gpr[R_RCX] & 0xffffffffull, rip = c->gpr[R_RDX] & 0xffffffffull;
        set_flat(c, SEG_CS, (u16)((cs + 16) | 3), ATTR_CODE32(3));
        set_flat(c, SEG_SS, (u16)((cs + 24) | 3), ATTR_DATA32(3));
        gpr_write(c, R_RSP, 8, rsp);
        jump_to(c, rip);
    }
}

static void insn_swapgs(struct cpu *c, const struct insn *i)
{
    (void)i;
    if (!cpu_is_long64(c))
        ud(c);
    require_cpl0(c);
    u64 t = c->seg[SEG_GS].base;
    c->seg[SEG_GS].base = c->msr_kernel_gs_base;
    c->msr_kernel_gs_base = t;
}

/* ---- FS/GS base ---- */

static void fsgsbase_checks(struct cpu *c)
{
    if (!cpu_is_long64(c) || !(c->cr4 & CR4_FSGSBASE))
        ud(c);
}

static void insn_rdfsgsbase(struct cpu *c, const struct insn *i)
{
    fsgsbase_checks(c);
    int seg = i->d.mnemonic == ZYDIS_MNEMONIC_RDFSBASE ? SEG_FS : SEG_GS;
    opr_write(c, i, 0, c->seg[seg].base);
}

static void insn_wrfsgsbase(struct cpu *c, const struct insn *i)
{
    fsgsbase_checks(c);
    int seg = i->d.mnemonic == ZYDIS_MNEMONIC_WRFSBASE ? SEG_FS : SEG_GS;
    u64 v = opr_read(c, i, 0);
    if (!cpu_canonical_max(c, v))
        gp0(c);
    c->seg[seg].base = v;
}

/* ---- extended control register ---- */

static void insn_xgetbv(struct cpu *c, const struct insn *i)
{
    (void)i;
    if (!(c->cr4 & CR4_OSXSAVE))
        ud(c);
    /* XCR1 (XINUSE) exists only with XGETBV1, which is not implemented */
    if (gpr_read(c, R_RCX, 4) != 0)
        gp0(c);
    write_edx_eax(c, c->xcr0);
}

static void insn_xsetbv(struct cpu *c, const struct insn *i)
{
    (void)i;
    if (!(c->cr4 & CR4_OSXSAVE))
        ud(c);
    require_cpl0(c);
    cpu_insn_event(c, INSN_EV_XSETBV, 0);
    if (gpr_read(c, R_RCX, 4) != 0)
        gp0(c);
    u64 v = read_edx_eax(c);
    struct cpuid_result r = cpuid_query(c->model, 0xd, 0, (u32)c->id, true, true, c->xcr0);
    u64 supported = ((u64)r.edx << 32) | r.eax;
    /* x87 state is always enabled; AVX state needs SSE state */
    if ((v & ~supported) || !(v & 1) || ((v & 4) && !(v & 2)))
        gp0(c);
    c->xcr0 = v;
}

/* ---- port I/O ---- */

/* The port operand: an unsigned 8-bit immediate or DX. */
static u16 port_operand(struct cpu *c, const struct insn *i, int n)
{
    u64 v = opr_read(c, i, n);
    return (u16)(opr_is_imm(i, n) ? (v & 0xff) : v);
}

static void insn_in(struct cpu *c, const struct insn *i)
{
    unsigned size = opr_bytes(i, 0);
    u16 port = port_operand(c, i, 1);
    cpu_check_io(c, port, size);
    opr_write(c, i, 0, cpu_io_in(c, port, size));
}

static void insn_out(struct cpu *c, const struct insn *i)
{
    unsigned size = opr_bytes(i, 1);
    u16 port = port_operand(c, i, 0);
    cpu_check_io(c, port, size);
    cpu_io_out(c, port, size, (u32)opr_read(c, i, 1));
}

/* ---- hypercalls and undefined opcodes ---- */

static void insn_hypercall(struct cpu *c, const struct insn *i)
{
    /* Outside VMX non-root operation / an SVM guest, VMCALL and VMMCALL are #UD unless a
     * hypervisor interface (Xen, Hyper-V) takes them. In L2 the other vendor's
     * instruction is #UD (an exception L1 may intercept), never a hypercall of this
     * machine: VMMCALL under VMX, VMCALL under SVM. */
    if (unlikely(c->vmx_non_root) && i->d.mnemonic != ZYDIS_MNEMONIC_VMCALL)
        ud(c);
    if (unlikely(c->svm_guest) && i->d.mnemonic != ZYDIS_MNEMONIC_VMMCALL)
        ud(c);
    struct cpu_event ev = { .kind = EV_HYPERCALL };
    enum intercept_result r = cpu_intercept(c, &ev);
    if (r == INTERCEPT_FAULT)
        gp0(c);
    if (r == INTERCEPT_DEFAULT) {
        if (vmx_in_operation(c) && i->d.mnemonic == ZYDIS_MNEMONIC_VMCALL)
            vmx_vmcall_root(c); /* VMfail, or #UD/#GP as VMCALL's pseudocode orders */
        else
            ud(c);
    }
}

/* Undefined on purpose (UD0/UD1/UD2), or absent from every model (AMD's MONITORX/MWAITX). */
static void insn_ud(struct cpu *c, const struct insn *i)
{
    (void)i;
    ud(c);
}

/* RSM is only defined in system-management mode, which nestor never enters: #UD, after
 * SVM's RSM intercept (APM 15.14.2: intercepted whatever the mode). */
static void insn_rsm(struct cpu *c, const struct insn *i)
{
    (void)i;
    cpu_insn_event(c, INSN_EV_RSM, 0);
    ud(c);
}

/* KVM's and Xen's forced-emulation prefixes (-cpu ...,fep): UD2 followed by the bytes
 * "kvm" or "xen". Those hypervisors check for them when UD2 raises #UD and then emulate
 * the instruction after them; nestor emulates every instruction, so the prefix only has
 * to be skipped: RIP moves past its 5 bytes and the instruction there runs at once, at
 * the same instruction boundary (the loop, exec.c, treats a UD2 whose handler returns
 * that way: no events or traps in between, no instruction retired for the prefix, a
 * fault reporting the instruction's own address, instruction breakpoints checked on
 * it). As in KVM, the bytes are read like data at the current CPL, a signature that
 * cannot be read is no prefix, and a prefix right after a prefix is an ordinary #UD. */
static void insn_ud2(struct cpu *c, const struct insn *i)
{
    static const char kvm[3] = { 'k', 'v', 'm' }, xen[3] = { 'x', 'e', 'n' };
    struct cpu_internal *in = c->in;
    if (!c->model->fep || (c->rip == in->fep_rip && c->icount == in->fep_icount))
        ud(c);
    u64 mask = cpu_rip_mask(c);
    u8 sig[3];
    for (unsigned k = 0; k < 3; k++) {
        u64 ip = (i->next_rip + k) & mask;
        u64 lin = cpu_is_long64(c) ? ip : (c->seg[SEG_CS].base + ip) & 0xffffffffull;
        if (!lin_peek(c, lin, &sig[k], 1))
            ud(c);
    }
    if (memcmp(sig, kvm, 3) != 0 && memcmp(sig, xen, 3) != 0)
        ud(c);
    c->icount--; /* the loop counts every handler; the prefix retires nothing */
    c->rip = (i->next_rip + 3) & mask;
    in->exits |= EXIT_RIP_WRITTEN;
    in->fep_rip = c->rip;
    in->fep_icount = c->icount + 1;
}

void insn_register_system(insn_fn *t)
{
    static const struct { ZydisMnemonic m; insn_fn fn; } table[] = {
        { ZYDIS_MNEMONIC_LGDT, insn_lgdt_lidt },     { ZYDIS_MNEMONIC_LIDT, insn_lgdt_lidt },
        { ZYDIS_MNEMONIC_SGDT, insn_sgdt_sidt },     { ZYDIS_MNEMONIC_SIDT, insn_sgdt_sidt },
        { ZYDIS_MNEMONIC_LLDT, insn_lldt },          { ZYDIS_MNEMONIC_LTR, insn_ltr },
        { ZYDIS_MNEMONIC_SLDT, insn_sldt_str },      { ZYDIS_MNEMONIC_STR, insn_sldt_str },
        { ZYDIS_MNEMONIC_LAR, insn_lar_lsl },        { ZYDIS_MNEMONIC_LSL, insn_lar_lsl },
        { ZYDIS_MNEMONIC_VERR, insn_verr_verw },     { ZYDIS_MNEMONIC_VERW, insn_verr_verw },
        { ZYDIS_MNEMONIC_ARPL, insn_arpl },
        { ZYDIS_MNEMONIC_LMSW, insn_lmsw },          { ZYDIS_MNEMONIC_SMSW, insn_smsw },
        { ZYDIS_MNEMONIC_CLTS, insn_clts },
        { ZYDIS_MNEMONIC_INVD, insn_invd_wbinvd },   { ZYDIS_MNEMONIC_WBINVD, insn_invd_wbinvd },
        { ZYDIS_MNEMONIC_INVLPG, insn_invlpg },      { ZYDIS_MNEMONIC_INVPCID, insn_invpcid },
        { ZYDIS_MNEMONIC_RDMSR, insn_rdmsr },        { ZYDIS_MNEMONIC_WRMSR, insn_wrmsr },
        { ZYDIS_MNEMONIC_RDTSC, insn_rdtsc },        { ZYDIS_MNEMONIC_RDTSCP, insn_rdtscp },
        { ZYDIS_MNEMONIC_RDPID, insn_rdpid },        { ZYDIS_MNEMONIC_RDPMC, insn_rdpmc },
        { ZYDIS_MNEMONIC_CPUID, insn_cpuid },
        { ZYDIS_MNEMONIC_HLT, insn_hlt },            { ZYDIS_MNEMONIC_PAUSE, insn_pause },
        { ZYDIS_MNEMONIC_MONITOR, insn_monitor },    { ZYDIS_MNEMONIC_MWAIT, insn_mwait },
        { ZYDIS_MNEMONIC_CLI, insn_cli },            { ZYDIS_MNEMONIC_STI, insn_sti },
        { ZYDIS_MNEMONIC_PUSHF, insn_pushf },        { ZYDIS_MNEMONIC_PUSHFD, insn_pushf },
        { ZYDIS_MNEMONIC_PUSHFQ, insn_pushf },
        { ZYDIS_MNEMONIC_POPF, insn_popf },          { ZYDIS_MNEMONIC_POPFD, insn_popf },
        { ZYDIS_MNEMONIC_POPFQ, insn_popf },
        { ZYDIS_MNEMONIC_CLAC, insn_clac_stac },     { ZYDIS_MNEMONIC_STAC, insn_clac_stac },
        { ZYDIS_MNEMONIC_SYSCALL, insn_syscall },    { ZYDIS_MNEMONIC_SYSRET, insn_sysret },
        { ZYDIS_MNEMONIC_SYSENTER, insn_sysenter },  { ZYDIS_MNEMONIC_SYSEXIT, insn_sysexit },
        { ZYDIS_MNEMONIC_SWAPGS, insn_swapgs },
        { ZYDIS_MNEMONIC_RDFSBASE, insn_rdfsgsbase }, { ZYDIS_MNEMONIC_RDGSBASE, insn_rdfsgsbase },
        { ZYDIS_MNEMONIC_WRFSBASE, insn_wrfsgsbase }, { ZYDIS_MNEMONIC_WRGSBASE, insn_wrfsgsbase },
        { ZYDIS_MNEMONIC_XGETBV, insn_xgetbv },      { ZYDIS_MNEMONIC_XSETBV, insn_xsetbv },
        { ZYDIS_MNEMONIC_IN, insn_in },              { ZYDIS_MNEMONIC_OUT, insn_out },
        { ZYDIS_MNEMONIC_VMXON, vmx_insn_vmxon },    { ZYDIS_MNEMONIC_VMXOFF, vmx_insn_vmxoff },
        { ZYDIS_MNEMONIC_VMCLEAR, vmx_insn_vmclear },{ ZYDIS_MNEMONIC_VMPTRLD, vmx_insn_vmptrld },
        { ZYDIS_MNEMONIC_VMPTRST, vmx_insn_vmptrst },{ ZYDIS_MNEMONIC_VMREAD, vmx_insn_vmread },
        { ZYDIS_MNEMONIC_VMWRITE, vmx_insn_vmwrite },{ ZYDIS_MNEMONIC_VMLAUNCH, vmx_insn_vmlaunch },
        { ZYDIS_MNEMONIC_VMRESUME, vmx_insn_vmresume },{ ZYDIS_MNEMONIC_INVEPT, vmx_insn_invept },
        { ZYDIS_MNEMONIC_INVVPID, vmx_insn_invvpid },{ ZYDIS_MNEMONIC_VMFUNC, vmx_insn_vmfunc },
        { ZYDIS_MNEMONIC_VMCALL, insn_hypercall },   { ZYDIS_MNEMONIC_VMMCALL, insn_hypercall },
        { ZYDIS_MNEMONIC_UD0, insn_ud },             { ZYDIS_MNEMONIC_UD1, insn_ud },
        { ZYDIS_MNEMONIC_UD2, insn_ud2 },
        { ZYDIS_MNEMONIC_MONITORX, insn_ud },        { ZYDIS_MNEMONIC_MWAITX, insn_ud },
        { ZYDIS_MNEMONIC_RSM, insn_rsm },
        { ZYDIS_MNEMONIC_VMRUN, svm_insn_vmrun },    { ZYDIS_MNEMONIC_VMLOAD, svm_insn_vmload },
        { ZYDIS_MNEMONIC_VMSAVE, svm_insn_vmsave },  { ZYDIS_MNEMONIC_STGI, svm_insn_stgi },
        { ZYDIS_MNEMONIC_CLGI, svm_insn_clgi },      { ZYDIS_MNEMONIC_INVLPGA, svm_insn_invlpga },
        { ZYDIS_MNEMONIC_SKINIT, svm_insn_skinit },
    };
    for (size_t k = 0; k < ARRAY_SIZE(table); k++)
        t[table[k].m] = table[k].fn;
}

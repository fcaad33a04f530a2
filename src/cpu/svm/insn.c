/* The SVM instructions (APM vol. 3 and 15.5, 15.17, 15.29): VMRUN, VMLOAD, VMSAVE, STGI,
 * CLGI, INVLPGA, SKINIT. Each starts with the same checks in the APM's order: #UD
 * without EFER.SVME or outside protected mode, #GP(0) above CPL 0, then the intercept in
 * guest mode, then the checks of the operand (rAX). */
#include <string.h>

#include "cpu/svm/svm_internal.h"

static _Noreturn void ud(struct cpu *c) { cpu_fault_noerr(c, EXC_UD); }
static _Noreturn void gp0(struct cpu *c) { cpu_fault(c, EXC_GP, 0); }

static void svm_insn_begin(struct cpu *c, int intercept2_bit, int intercept1_bit, u64 code)
{
    if (!c->svm || !(c->efer & EFER_SVME) || !(c->cr0 & CR0_PE))
        ud(c);
    if (c->cpl > 0)
        gp0(c);
    if (c->svm_guest) {
        bool hit = intercept2_bit >= 0 ? svm_intercepted2(c->svm, intercept2_bit)
                                       : svm_intercepted1(c->svm, intercept1_bit);
        if (hit)
            svm_exit_insn(c, code, 0, 0);
    }
}

/* rAX: the physical address of a VMCB, by the address size; page-aligned and below
 * MAXPHYADDR or #GP(0). */
static u64 vmcb_operand(struct cpu *c, const struct insn *i)
{
    u64 pa = c->gpr[R_RAX] & i->amask;
    if (!svm_pa_ok(c, pa))
        gp0(c);
    return pa;
}

/* VMLOAD and VMSAVE run by an L2 that L1 lets through: with VMSAVE/VMLOAD virtualization
 * (and nested paging) rAX is L2's guest-physical address, translated through the nested
 * tables (a fault is a #VMEXIT(NPF)); without it, the processor takes rAX as a physical
 * address of its own, as hardware does (APM 15.33.1). */
static u64 loadsave_address(struct cpu *c, u64 pa, bool write)
{
    const struct svm *s = c->svm;
    if (c->svm_guest && (s->ctl[VMCB_VIRT_EXT] & VIRT_EXT_VLS) && (s->ctl[VMCB_NP_CONTROL] & 1))
        return svm_npt_translate(c, pa, write ? ACC_WRITE : ACC_READ, 0, false);
    return pa;
}

void svm_insn_vmrun(struct cpu *c, const struct insn *i)
{
    svm_insn_begin(c, I2_VMRUN, -1, SVM_EXIT_VMRUN);
    u64 vmcb = vmcb_operand(c, i);
    /* the host-save area must be valid when VMRUN saves to it (VM_HSAVE_PA's write
     * checked it; zero is a page like any other) */
    svm_vmrun(c, vmcb, i->next_rip);
}

/* VMLOAD and VMSAVE move the state VMRUN and #VMEXIT leave alone (APM 15.5.2): FS, GS, TR
 * and LDTR with their hidden parts, KernelGsBase, the SYSCALL and SYSENTER MSRs. */
static const struct { int engine_seg; int vmcb_seg; } loadsave_segs[] = {
    { SEG_FS, VMCB_SEG_FS }, { SEG_GS, VMCB_SEG_GS }, { -1, VMCB_SEG_TR }, { -2, VMCB_SEG_LDTR },
};

static struct seg *loadsave_seg(struct cpu *c, int k)
{
    int e = loadsave_segs[k].engine_seg;
    return e == -1 ? &c->tr : e == -2 ? &c->ldtr : &c->seg[e];
}

#define LOADSAVE_MSRS(X) \
    X(VMCB_KERNEL_GS_BASE, msr_kernel_gs_base) X(VMCB_STAR, msr_star) \
    X(VMCB_LSTAR, msr_lstar) X(VMCB_CSTAR, msr_cstar) X(VMCB_SFMASK, msr_sfmask) \
    X(VMCB_SYSENTER_CS, msr_sysenter_cs) X(VMCB_SYSENTER_ESP, msr_sysenter_esp) \
    X(VMCB_SYSENTER_EIP, msr_sysenter_eip)

void svm_insn_vmload(struct cpu *c, const struct insn *i)
{
    svm_insn_begin(c, I2_VMLOAD, -1, SVM_EXIT_VMLOAD);
    u64 vmcb = loadsave_address(c, vmcb_operand(c, i), false);
    for (size_t k = 0; k < ARRAY_SIZE(loadsave_segs); k++)
        vmcb_get_seg(c, vmcb, loadsave_segs[k].vmcb_seg, loadsave_seg(c, (int)k));
#define LOAD(f, m) c->m = vmcb_get(c, vmcb, f);
    LOADSAVE_MSRS(LOAD)
#undef LOAD
    c->msr_sysenter_cs &= 0xffffffffull;
}

void svm_insn_vmsave(struct cpu *c, const struct insn *i)
{
    svm_insn_begin(c, I2_VMSAVE, -1, SVM_EXIT_VMSAVE);
    u64 vmcb = loadsave_address(c, vmcb_operand(c, i), true);
    for (size_t k = 0; k < ARRAY_SIZE(loadsave_segs); k++)
        vmcb_put_seg(c, vmcb, loadsave_segs[k].vmcb_seg, loadsave_seg(c, (int)k));
#define SAVE(f, m) vmcb_put(c, vmcb, f, c->m);
    LOADSAVE_MSRS(SAVE)
#undef SAVE
}

/* STGI and CLGI (APM 15.17): set and clear GIF. Setting it lets the interrupts, NMIs and
 * INIT that were held be taken at the next boundary. An L2 with the virtual GIF sets and
 * clears V_GIF instead (APM 15.33.6). */
void svm_insn_stgi(struct cpu *c, const struct insn *i)
{
    (void)i;
    svm_insn_begin(c, I2_STGI, -1, SVM_EXIT_STGI);
    c->in->exits |= EXIT_CHECK_EVENTS;
    if (svm_vgif_on(c)) {
        c->svm->ctl[VMCB_VINTR] |= VINTR_VGIF;
        return;
    }
    c->gif = true;
    struct svm *s = c->svm;
    if (s->init_pending && !c->svm_guest) { /* an INIT GIF held happens now */
        s->init_pending = false;
        cpu_init_signal(c, s->init_bsp);
        c->in->exits |= EXIT_RIP_WRITTEN | EXIT_BLOCK_END;
    }
}

void svm_insn_clgi(struct cpu *c, const struct insn *i)
{
    (void)i;
    svm_insn_begin(c, I2_CLGI, -1, SVM_EXIT_CLGI);
    if (svm_vgif_on(c)) {
        c->svm->ctl[VMCB_VINTR] &= ~VINTR_VGIF;
        return;
    }
    c->gif = false;
}

/* INVLPGA (APM 15.16.3): the translation of rAX in the ASID in ECX. nestor's TLB keeps
 * one guest ASID at a time beside the host's, so it drops the page everywhere. */
void svm_insn_invlpga(struct cpu *c, const struct insn *i)
{
    (void)i;
    svm_insn_begin(c, -1, I1_INVLPGA, SVM_EXIT_INVLPGA);
    tlb_flush_all(&c->tlb);
    c->in->exits |= EXIT_BLOCK_END;
}

/* SKINIT (secure init) is not implemented and CPUID does not advertise it: #UD, as on a
 * processor without it. */
void svm_insn_skinit(struct cpu *c, const struct insn *i)
{
    (void)i;
    ud(c);
}

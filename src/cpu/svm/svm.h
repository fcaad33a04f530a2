/* SVM (AMD-V) in the software CPU: what the engine calls. A guest that sets EFER.SVME
 * becomes a hypervisor (L1); VMRUN saves its state to the host-save area, loads its
 * guest's (L2's) state from a VMCB into the same struct cpu, and #VMEXIT stores L2's
 * state back into the VMCB and reloads L1's. While L2 runs, every event the engine
 * offers to cpu_intercept() is first examined here against the intercept vectors of the
 * VMCB that VMRUN cached: the one interception point decides whether it exits to L1, as
 * it does for VMX.
 *
 * AMD64 Architecture Programmer's Manual vol. 2, chapter 15 ("Secure Virtual Machine")
 * and appendix B (the VMCB layout) are the reference throughout ("APM 15.x"). */
#ifndef NESTOR_CPU_SVM_SVM_H
#define NESTOR_CPU_SVM_SVM_H

#include "cpu/cpu.h"

struct insn;
struct state_registry;

/* SVM's MSRs (APM 15.30). */
#define MSR_VM_CR 0xc0010114u
#define MSR_VM_HSAVE_PA 0xc0010117u
#define MSR_SVM_TSC_RATIO 0xc0000104u
#define VM_CR_DPD BIT(0)
#define VM_CR_R_INIT BIT(1)
#define VM_CR_DIS_A20M BIT(2)
#define VM_CR_LOCK BIT(3)
#define VM_CR_SVMDIS BIT(4)

/* CPUID 8000_000Ah: what nestor implements (EDX) and the ASID count (EBX). */
#define SVM_REVISION 1u
#define SVM_NASID 0x8000u
#define SVM_FEAT_NP BIT(0)
#define SVM_FEAT_NRIPS BIT(3)
#define SVM_FEAT_TSC_RATE BIT(4)
#define SVM_FEAT_VMCB_CLEAN BIT(5)
#define SVM_FEAT_FLUSH_BY_ASID BIT(6)
#define SVM_FEAT_DECODE_ASSISTS BIT(7)
#define SVM_FEAT_PAUSE_FILTER BIT(10)
#define SVM_FEAT_PAUSE_THRESHOLD BIT(12)
#define SVM_FEAT_VLS BIT(15)
#define SVM_FEAT_VGIF BIT(16)
#define SVM_FEATURES (SVM_FEAT_NP | SVM_FEAT_NRIPS | SVM_FEAT_TSC_RATE | SVM_FEAT_VMCB_CLEAN | \
                      SVM_FEAT_FLUSH_BY_ASID | SVM_FEAT_DECODE_ASSISTS | \
                      SVM_FEAT_PAUSE_FILTER | SVM_FEAT_PAUSE_THRESHOLD | SVM_FEAT_VLS | \
                      SVM_FEAT_VGIF)

/* Is SVM in this vCPU's model (CPUID 8000_0001h:ECX.SVM, AMD vendor)? Creates the
 * per-vCPU SVM state then. */
int svm_init(struct cpu *c);
void svm_destroy(struct cpu *c);
/* RESET and INIT: both leave guest mode and set GIF (APM 15.18: INIT with GIF = 1 in
 * host mode resets the processor; in guest mode it is intercepted or reaches L2). */
void svm_reset(struct cpu *c);
/* INIT in guest mode with the INIT intercept: a #VMEXIT at the next boundary (true,
 * consumed); GIF = 0 holds INIT pending (true). Else false: the INIT happens. */
bool svm_init_signal(struct cpu *c, bool is_bsp);
/* The INIT that happens: guest mode ends and GIF is set; the MSRs keep their values. */
void svm_init_reset(struct cpu *c);

/* The MSRs (false = #GP(0)). TSC_RATIO is present with the TSC-rate feature. */
bool svm_msr_read(struct cpu *c, u32 index, u64 *value);
bool svm_msr_write(struct cpu *c, u32 index, u64 value);
/* May EFER.SVME be set (SVM in the model and VM_CR.SVMDIS clear)? */
bool svm_efer_svme_allowed(const struct cpu *c);

/* The instructions (registered by insn_system.c). */
void svm_insn_vmrun(struct cpu *c, const struct insn *i);
void svm_insn_vmload(struct cpu *c, const struct insn *i);
void svm_insn_vmsave(struct cpu *c, const struct insn *i);
void svm_insn_stgi(struct cpu *c, const struct insn *i);
void svm_insn_clgi(struct cpu *c, const struct insn *i);
void svm_insn_invlpga(struct cpu *c, const struct insn *i);
void svm_insn_skinit(struct cpu *c, const struct insn *i);

/* The interception point in guest mode (cpu_intercept calls it first): performs a
 * #VMEXIT (does not return) when L1's intercepts say so; true when SVM handled the event
 * itself (the virtual TPR of V_INTR_MASKING), else false: the event goes on as in host
 * mode. */
bool svm_intercept(struct cpu *c, struct cpu_event *ev);
/* Instruction-boundary work in guest mode: pending INIT, virtual interrupts (V_IRQ) and
 * the VINTR intercept. May exit. */
void svm_boundary(struct cpu *c);
/* Is an external interrupt blocked for L2 by RFLAGS.IF? With V_INTR_MASKING the host's
 * IF (at VMRUN) masks physical interrupts instead (APM 15.21.1). */
bool svm_intr_masked_by_if(const struct cpu *c);
/* Would a virtual interrupt (V_IRQ) wake a halted L2? */
bool svm_virq_wakeup(const struct cpu *c);

/* Nested paging: translates L2's guest-physical address for an access (ACC_*), as the
 * final translation of linear address `linear` or (table) for an entry of L2's own page
 * tables. Returns L1's physical address, or performs #VMEXIT(NPF). With nested paging
 * off, gpa itself. The peek form never exits. */
u64 svm_npt_translate(struct cpu *c, u64 gpa, unsigned access, u64 linear, bool table);
bool svm_npt_peek(struct cpu *c, u64 gpa, unsigned access, u64 *hpa);

/* The event being delivered (EXITINTINFO of an exit that cuts its delivery short). */
void svm_note_delivery(struct cpu *c, u8 vector, int type, bool has_error, u32 error);
void svm_delivery_done(struct cpu *c);

/* The state description (svm/state.c) and its check after a load. */
void svm_state_register(struct cpu *c, struct state_registry *r);
int svm_state_post_load(struct cpu *c, char *err, size_t errlen);

/* #VMEXIT codes (APM appendix C). */
enum svm_exit_code {
    SVM_EXIT_CR0_READ = 0x00, SVM_EXIT_CR0_WRITE = 0x10, SVM_EXIT_DR0_READ = 0x20,
    SVM_EXIT_DR0_WRITE = 0x30, SVM_EXIT_EXCP_BASE = 0x40,
    SVM_EXIT_INTR = 0x60, SVM_EXIT_NMI = 0x61, SVM_EXIT_SMI = 0x62, SVM_EXIT_INIT = 0x63,
    SVM_EXIT_VINTR = 0x64, SVM_EXIT_CR0_SEL_WRITE = 0x65, SVM_EXIT_IDTR_READ = 0x66,
    SVM_EXIT_GDTR_READ = 0x67, SVM_EXIT_LDTR_READ = 0x68, SVM_EXIT_TR_READ = 0x69,
    SVM_EXIT_IDTR_WRITE = 0x6a, SVM_EXIT_GDTR_WRITE = 0x6b, SVM_EXIT_LDTR_WRITE = 0x6c,
    SVM_EXIT_TR_WRITE = 0x6d, SVM_EXIT_RDTSC = 0x6e, SVM_EXIT_RDPMC = 0x6f,
    SVM_EXIT_PUSHF = 0x70, SVM_EXIT_POPF = 0x71, SVM_EXIT_CPUID = 0x72, SVM_EXIT_RSM = 0x73,
    SVM_EXIT_IRET = 0x74, SVM_EXIT_SWINT = 0x75, SVM_EXIT_INVD = 0x76, SVM_EXIT_PAUSE = 0x77,
    SVM_EXIT_HLT = 0x78, SVM_EXIT_INVLPG = 0x79, SVM_EXIT_INVLPGA = 0x7a, SVM_EXIT_IOIO = 0x7b,
    SVM_EXIT_MSR = 0x7c, SVM_EXIT_TASK_SWITCH = 0x7d, SVM_EXIT_FERR_FREEZE = 0x7e,
    SVM_EXIT_SHUTDOWN = 0x7f, SVM_EXIT_VMRUN = 0x80, SVM_EXIT_VMMCALL = 0x81,
    SVM_EXIT_VMLOAD = 0x82, SVM_EXIT_VMSAVE = 0x83, SVM_EXIT_STGI = 0x84, SVM_EXIT_CLGI = 0x85,
    SVM_EXIT_SKINIT = 0x86, SVM_EXIT_RDTSCP = 0x87, SVM_EXIT_ICEBP = 0x88,
    SVM_EXIT_WBINVD = 0x89, SVM_EXIT_MONITOR = 0x8a, SVM_EXIT_MWAIT = 0x8b,
    SVM_EXIT_MWAIT_COND = 0x8c, SVM_EXIT_XSETBV = 0x8d, SVM_EXIT_RDPRU = 0x8e,
    SVM_EXIT_NPF = 0x400,
};
#define SVM_EXIT_INVALID (~0ull)

/* L1's TSC offset (c->tsc_offset outside guest mode; in it, L2 runs with its own) */
s64 svm_l1_tsc_offset(const struct cpu *c);

#endif

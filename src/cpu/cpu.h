/* The vCPU: architectural state of one x86-64 logical processor and the interface the
 * machine drives it through.
 *
 * Everything a hypervisor could intercept (I/O, MMIO, MSRs, CPUID, HLT, INVLPG, MOV CR/DR,
 * RDTSC, VMCALL/VMMCALL, exceptions, interrupts, task switches, shutdown) leaves the engine
 * through one function, cpu_intercept(), described by a struct cpu_event. The machine
 * installs one handler (struct cpu_ops.intercept) that routes each event to exactly one
 * owner; nested VMX/SVM attach at the same point. */
#ifndef NESTOR_CPU_CPU_H
#define NESTOR_CPU_CPU_H

#include "common.h"
#include "cpu/cpuid.h"
#include "cpu/pmu.h"
#include "cpu/tlb.h"

struct guest_mem;

/* ---- register names ---- */
enum { R_RAX, R_RCX, R_RDX, R_RBX, R_RSP, R_RBP, R_RSI, R_RDI,
       R_R8, R_R9, R_R10, R_R11, R_R12, R_R13, R_R14, R_R15 };
enum { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_NONE = 7 };

/* RFLAGS bits */
#define FL_CF BIT(0)
#define FL_FIXED1 BIT(1)
#define FL_PF BIT(2)
#define FL_AF BIT(4)
#define FL_ZF BIT(6)
#define FL_SF BIT(7)
#define FL_TF BIT(8)
#define FL_IF BIT(9)
#define FL_DF BIT(10)
#define FL_OF BIT(11)
#define FL_IOPL (3ull << 12)
#define FL_NT BIT(14)
#define FL_RF BIT(16)
#define FL_VM BIT(17)
#define FL_AC BIT(18)
#define FL_VIF BIT(19)
#define FL_VIP BIT(20)
#define FL_ID BIT(21)
#define FL_ARITH (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF)

/* CR0 */
#define CR0_PE BIT(0)
#define CR0_MP BIT(1)
#define CR0_EM BIT(2)
#define CR0_TS BIT(3)
#define CR0_ET BIT(4)
#define CR0_NE BIT(5)
#define CR0_WP BIT(16)
#define CR0_AM BIT(18)
#define CR0_NW BIT(29)
#define CR0_CD BIT(30)
#define CR0_PG BIT(31)
/* CR4 */
#define CR4_VME BIT(0)
#define CR4_PVI BIT(1)
#define CR4_TSD BIT(2)
#define CR4_DE BIT(3)
#define CR4_PSE BIT(4)
#define CR4_PAE BIT(5)
#define CR4_MCE BIT(6)
#define CR4_PGE BIT(7)
#define CR4_PCE BIT(8)
#define CR4_OSFXSR BIT(9)
#define CR4_OSXMMEXCPT BIT(10)
#define CR4_UMIP BIT(11)
#define CR4_LA57 BIT(12)
#define CR4_VMXE BIT(13)
#define CR4_SMXE BIT(14)
#define CR4_FSGSBASE BIT(16)
#define CR4_PCIDE BIT(17)
#define CR4_OSXSAVE BIT(18)
#define CR4_SMEP BIT(20)
#define CR4_SMAP BIT(21)
#define CR4_PKE BIT(22)
/* EFER */
#define EFER_SCE BIT(0)
#define EFER_LME BIT(8)
#define EFER_LMA BIT(10)
#define EFER_NXE BIT(11)
#define EFER_SVME BIT(12)

/* Exception vectors */
enum {
    EXC_DE = 0, EXC_DB = 1, EXC_NMI = 2, EXC_BP = 3, EXC_OF = 4, EXC_BR = 5, EXC_UD = 6,
    EXC_NM = 7, EXC_DF = 8, EXC_TS = 10, EXC_NP = 11, EXC_SS = 12, EXC_GP = 13,
    EXC_PF = 14, EXC_MF = 16, EXC_AC = 17, EXC_MC = 18, EXC_XM = 19, EXC_VE = 20,
    EXC_CP = 21,
};

/* #PF error code bits */
#define PFEC_P BIT(0)
#define PFEC_W BIT(1)
#define PFEC_U BIT(2)
#define PFEC_RSVD BIT(3)
#define PFEC_I BIT(4)
#define PFEC_PK BIT(5)

/* A segment register's hidden part. attr uses the VMX access-rights layout:
 * bits 3:0 type, 4 S, 6:5 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G, 16 unusable. */
struct seg {
    u16 sel;
    u64 base;
    u32 limit; /* byte granular, already scaled by G */
    u32 attr;
};
#define SEG_ATTR_TYPE(a) ((a) & 0xf)
#define SEG_ATTR_S BIT(4)
#define SEG_ATTR_DPL(a) (((a) >> 5) & 3)
#define SEG_ATTR_P BIT(7)
#define SEG_ATTR_AVL BIT(12)
#define SEG_ATTR_L BIT(13)
#define SEG_ATTR_DB BIT(14)
#define SEG_ATTR_G BIT(15)
#define SEG_ATTR_UNUSABLE BIT(16)

struct dtr {
    u64 base;
    u16 limit;
};

/* x87/SSE state, laid out so FXSAVE/XSAVE images are easy to produce. */
struct fpu_state {
    u16 fcw, fsw;
    u8 ftw;    /* abridged tag word as FXSAVE stores it: bit i set = ST register i valid */
    u16 fop;
    u64 fip, fdp;
    u16 fcs, fds;
    u8 st[8][16]; /* physical registers R0..R7, 80-bit values in the low 10 bytes */
    u32 mxcsr;
    u8 xmm[16][16];
};

/* Execution mode, derived from CR0.PE, EFLAGS.VM, EFER.LMA and CS.L/CS.D. */
enum cpu_mode {
    MODE_REAL,
    MODE_V86,
    MODE_PROT16,
    MODE_PROT32,
    MODE_COMPAT16,
    MODE_COMPAT32,
    MODE_LONG64,
};

/* Run state of the logical processor. */
enum cpu_run_state {
    CPU_RUNNING,
    CPU_HALTED,          /* HLT: wakes on an unmasked interrupt, NMI, INIT */
    CPU_WAIT_FOR_SIPI,   /* application processor after INIT */
    CPU_SHUTDOWN,        /* triple fault: the machine stops */
};

/* Kinds of interrupt shadow (struct cpu.intr_shadow). */
enum { SHADOW_NONE, SHADOW_STI, SHADOW_MOV_SS };

/* ---- the interception interface ---- */
enum cpu_event_kind {
    EV_IO,           /* IN/OUT/INS/OUTS, one element */
    EV_MMIO,         /* access to a physical address that is not RAM */
    EV_MSR_READ,     /* RDMSR of an MSR the engine does not own */
    EV_MSR_WRITE,    /* WRMSR of an MSR the engine does not own */
    EV_CPUID,        /* CPUID, before the engine answers from its model */
    EV_HLT,
    EV_INVLPG,
    EV_CR_ACCESS,    /* MOV to/from CRn, CLTS, LMSW */
    EV_DR_ACCESS,
    EV_RDTSC,        /* RDTSC/RDTSCP */
    EV_HYPERCALL,    /* VMCALL / VMMCALL */
    EV_EXCEPTION,    /* an exception about to be delivered */
    EV_INTERRUPT,    /* an external interrupt about to be delivered */
    EV_TASK_SWITCH,
    EV_SHUTDOWN,     /* triple fault */
    EV_PAUSE,
    EV_UNSUPPORTED,  /* guest used something the engine does not implement */
    EV_PMI,          /* a performance counter overflowed with its interrupt enabled */
    EV_TSC_WRITTEN,  /* WRMSR changed the TSC (IA32_TSC, IA32_TSC_ADJUST): after the write */
    /* Raised only while a guest hypervisor's L2 runs (VMX non-root operation, SVM guest
     * mode), for nested VMX/SVM to decide on (the machine leaves them alone): */
    EV_INSN,         /* an instruction that may exit (INSN_EV_*), after its #UD/#GP checks */
    EV_SOFT_EXCEPTION, /* INT3/INTO (software exceptions) and INT1, before delivery */
    EV_NMI,          /* an NMI about to be delivered */
    EV_KIND_COUNT
};

/* The instructions EV_INSN reports (arg: the MSR index, MWAIT's ECX). */
enum cpu_insn_event {
    INSN_EV_RDMSR, INSN_EV_WRMSR, INSN_EV_INVD, INSN_EV_WBINVD, INSN_EV_RDPMC,
    INSN_EV_MONITOR, INSN_EV_MWAIT, INSN_EV_XSETBV, INSN_EV_DESC_TABLE, INSN_EV_INVPCID,
    INSN_EV_STRING_IO, /* INS/OUTS before count and memory: port | size << 16 | out << 24 */
    /* SVM's intercepts only (VMX has none for them): before the instruction does
     * anything but its simple #GP/#UD checks (arg: INT n's vector) */
    INSN_EV_PUSHF, INSN_EV_POPF, INSN_EV_IRET, INSN_EV_INTN, INSN_EV_SMSW, INSN_EV_RSM,
    /* VMX's only: ENCLS after its #UD checks, before the others (arg: the leaf, EAX) */
    INSN_EV_ENCLS,
};

struct cpu_event {
    enum cpu_event_kind kind;
    union {
        struct { u16 port; u8 size; bool write; u32 value; } io;
        struct { u64 gpa; u8 size; bool write; u64 value; } mmio;
        struct { u32 index; u64 value; } msr;
        struct { u32 leaf, subleaf; u32 eax, ebx, ecx, edx; } cpuid;
        struct { u64 linear; } invlpg;
        /* LMSW also reports its 16-bit source and, for a memory operand, its linear
         * address (a VM exit's qualification and guest-linear address) */
        struct {
            u8 cr;
            bool write;
            u64 value;
            u16 lmsw_source;
            bool lmsw_memory;
            u64 lmsw_linear;
        } cr;
        struct { u8 dr; bool write; u64 value; } dr;
        struct { u8 vector; bool has_error; u32 error; u64 cr2; } exc;
        struct { u8 vector; } intr;
        struct { u16 selector; u8 reason; } task;
        struct { u64 tsc; bool rdtscp; } rdtsc;
        struct { const char *what; bool stop; } unsupported;
        struct { enum cpu_insn_event which; u64 arg; u64 value; } insn;
        struct { u8 vector; bool privileged; u32 length; } soft;
    } u;
};

enum intercept_result {
    INTERCEPT_DEFAULT, /* nobody took it: the engine does what the architecture says */
    INTERCEPT_HANDLED, /* the owner did it (and filled in results); the instruction completes */
    INTERCEPT_FAULT,   /* the owner asks for #GP(0) (e.g. an MSR nobody implements) */
    INTERCEPT_STOP,    /* handled; leave cpu_run() after this instruction */
};

struct cpu;
struct cpu_ops {
    enum intercept_result (*intercept)(struct cpu *cpu, struct cpu_event *ev, void *opaque);
    /* Highest-priority pending external interrupt the CPU may take, or -1. Must not
     * change state: the engine calls intr_ack() only when it delivers. */
    int (*intr_pending)(struct cpu *cpu, void *opaque);
    int (*intr_ack)(struct cpu *cpu, void *opaque);
    /* Virtual time in nanoseconds (the machine's clock). */
    u64 (*now_ns)(struct cpu *cpu, void *opaque);
};

/* Why cpu_run() returned. */
enum cpu_stop_reason {
    STOP_BUDGET,   /* instruction budget used up */
    STOP_HALTED,   /* HLT with nothing to wake it, or waiting for SIPI */
    STOP_REQUEST,  /* an intercept handler returned INTERCEPT_STOP */
    STOP_SHUTDOWN, /* triple fault */
};

struct cpu {
    /* architectural registers */
    u64 gpr[16];
    u64 rip;
    u64 rflags;
    struct seg seg[6];
    struct seg ldtr, tr;
    struct dtr gdtr, idtr;
    u64 cr0, cr2, cr3, cr4, cr8, xcr0;
    u64 efer;
    u64 dr[8]; /* dr[4], dr[5] unused (aliases); dr[6], dr[7] */
    struct fpu_state fpu;

    /* MSRs the engine owns */
    u64 msr_star, msr_lstar, msr_cstar, msr_sfmask, msr_kernel_gs_base;
    u64 msr_sysenter_cs, msr_sysenter_esp, msr_sysenter_eip;
    u64 msr_tsc_aux, msr_pat, msr_misc_enable, msr_tsc_adjust, msr_debugctl;
    u64 msr_mtrr_def_type, msr_mtrr_fixed[11], msr_mtrr_var[16];
    s64 tsc_offset; /* TSC = now * freq + tsc_offset */
    /* VMX TSC scaling while L2 runs (0: none): then TSC = ((now * freq + tsc_offset) *
     * tsc_multiplier >> 48) + tsc_scaled_offset */
    u64 tsc_multiplier;
    s64 tsc_scaled_offset;
    u64 msr_feature_control; /* IA32_FEATURE_CONTROL (VMX models; else reads locked, 0) */

    /* derived and run state */
    enum cpu_mode mode;
    u8 cpl;
    enum cpu_run_state state;
    bool nmi_pending, nmi_blocked;
    /* Interrupt shadow after STI / MOV SS / POP SS: holds for one instruction
     * (SHADOW_*); delivering an event ends it. */
    u8 intr_shadow;
    /* MONITOR/MWAIT: the armed line's physical address and the write generation of its
     * page when MONITOR armed it (a write to the page moves the generation on); mwait:
     * the vCPU is CPU_HALTED in MWAIT rather than HLT, mwait_break_on_intr: ECX[0] of
     * that MWAIT, a masked interrupt ends the wait too. */
    bool monitor_armed, mwait, mwait_break_on_intr;
    u64 monitor_gpa;
    u32 monitor_gen;
    u64 icount; /* instructions retired */
    int id;     /* APIC id / index */

    struct cpuid_model *model;
    struct guest_mem *mem;
    const struct cpu_ops *ops;
    void *ops_opaque;
    struct tlb tlb;
    struct cpu_internal *in; /* engine-private state (block cache, per-insn state) */
    struct pmu pmu;          /* performance counters (pmu.h), after what the loop uses */
    struct vmx *vmx;         /* VMX state (cpu/vmx/vmx.h), NULL without VMX in the model */
    bool vmx_non_root;       /* running L2 in VMX non-root operation */
    struct svm *svm;         /* SVM state (cpu/svm/svm.h), NULL without SVM in the model */
    struct sgx_cpu *sgx;     /* SGX state (cpu/sgx/sgx.h), NULL without an EPC */
    bool enclave_mode;       /* running inside an enclave (SGX) */
    bool svm_guest;          /* running L2 in SVM guest mode */
    /* SVM's global interrupt flag (APM 15.17): while clear, interrupts, NMIs and INIT
     * are held. Always set without SVM. */
    bool gif;
    /* the host debugger (cpu_set_host_debug): its breakpoints, what stopped the vCPU
     * (HOST_STOP_*, the watched address), and a breakpoint address to run through once
     * (resuming at a breakpoint executes it) */
    const struct cpu_host_debug *host_debug;
    u8 host_stop;
    u8 host_stop_watch_kind;
    u64 host_stop_addr;
    u64 host_resume_rip;
    bool host_resume_armed;
};

/* Creation and reset. cpu_init allocates internals and applies the power-on reset. */
int cpu_init(struct cpu *c, int id, struct guest_mem *mem, struct cpuid_model *model,
             const struct cpu_ops *ops, void *opaque);
void cpu_destroy(struct cpu *c);
/* Power-on / RESET state as in the SDM (Vol. 3A, 10.1.1). */
void cpu_reset(struct cpu *c);
/* INIT: like reset but keeps x87/SSE state, MTRRs, some MSRs; an AP then waits for SIPI.
 * false when VMX blocked the INIT (root operation: pending until VM entry or VMXOFF) or
 * turned it into a VM exit: the processor, its local APIC included, is not reset. */
bool cpu_init_signal(struct cpu *c, bool is_bsp);
/* Startup IPI with the given vector: CS=vector<<8, IP=0, real mode. */
void cpu_sipi(struct cpu *c, u8 vector);
void cpu_nmi(struct cpu *c);
/* An interrupt source outside the LAPIC (a hypervisor interface's upcall) may have
 * become pending: the vCPU looks before its next instruction. */
void cpu_check_events(struct cpu *c);

/* Runs until the budget is used or something stops it. */
enum cpu_stop_reason cpu_run(struct cpu *c, u64 budget);
/* Would cpu_run() execute anything now: running, or halted with an NMI or an unmasked
 * interrupt to wake it? For the scheduler, outside cpu_run() of this vCPU. */
bool cpu_runnable(struct cpu *c);
/* A hypervisor interface blocks the vCPU after the current instruction (Xen's
 * SCHEDOP_block and SCHEDOP_poll): it halts as HLT does, waking on an unmasked
 * interrupt or NMI, or with any_interrupt on a masked one too (as MWAIT with ECX[0]),
 * or when cpu_unblock() says so. */
void cpu_block(struct cpu *c, bool any_interrupt);
void cpu_unblock(struct cpu *c);

/* Recomputes c->mode and c->cpl and flushes what depends on them. Call after changing
 * CR0/CR4/EFER/CS/EFLAGS.VM from outside the engine (loaders). */
void cpu_update_mode(struct cpu *c);
/* Sets a segment register for loaders: flat, present, given attributes. */
void cpu_set_seg(struct cpu *c, int seg, u16 sel, u64 base, u32 limit, u32 attr);

/* The one interception path; see above. Inside the engine only. */
enum intercept_result cpu_intercept(struct cpu *c, struct cpu_event *ev);

/* Copies len bytes between buf and the guest's linear address space as the guest's own
 * page tables map it (the one page walker, current mode and CPL, A/D bits set), for a
 * hypervisor interface's hypercall arguments. Returns 0, or -1 if any byte is not
 * reachable (non-canonical, not mapped, not writable for a copy to the guest, not RAM):
 * then part of a copy to the guest may have been done. Never raises a guest fault. */
int cpu_copy_guest(struct cpu *c, u64 linear, void *buf, size_t len, bool to_guest);

/* Registers the vCPU's state description (machine/state.h): the registers and run
 * state, what the engine carries between instructions, the TLB, VMX. */
struct state_registry;
void cpu_state_register(struct cpu *c, struct state_registry *r);

/* A debugger's access to the guest's linear address space (the gdb stub): through the
 * guest's page tables as the kernel sees them (supervisor, whatever the CPL), without
 * setting accessed/dirty bits, never faulting into the guest. 0, or -1 if some byte does
 * not translate, is not RAM or (write) is not writable. */
int cpu_debug_access(struct cpu *c, u64 linear, void *buf, size_t len, bool write);

/* Breakpoints and watchpoints of a debugger on the host (the gdb stub), invisible to the
 * guest: its own DR0-DR7 work as before. Shared by every vCPU of the machine; a vCPU
 * looks at them while c->host_debug points to them (cpu_set_host_debug). */
#define CPU_HOST_BREAKPOINTS 64
enum { HOST_WATCH_WRITE = 1, HOST_WATCH_READ = 2, HOST_WATCH_ACCESS = 3 };
struct cpu_host_debug {
    u64 bp[CPU_HOST_BREAKPOINTS];   /* instruction breakpoints: linear addresses */
    int nbp;
    struct { u64 addr; u32 len; u8 kind; } wp[CPU_HOST_BREAKPOINTS];
    int nwp;
};
/* What stopped a vCPU for the host debugger (cpu_run returned STOP_REQUEST). */
enum { HOST_STOP_NONE, HOST_STOP_BREAKPOINT, HOST_STOP_WATCH };
/* Arms (or with NULL, disarms) the host debugger's breakpoints on this vCPU; call again
 * after changing them. */
void cpu_set_host_debug(struct cpu *c, const struct cpu_host_debug *d);

/* Prints the register state (used on triple fault and for traces). */
void cpu_dump(const struct cpu *c, void *file /* FILE* */);

/* Trace of executed instructions and exits; NULL file disables. */
void cpu_set_trace(struct cpu *c, void *file /* FILE* */, bool insns, bool events);

/* Virtual time (ns) at which a timer of the vCPU itself needs it to run though it is
 * halted (the VMX-preemption timer of a halted L2), or ~0: the machine's idle wait and
 * slice budget honour it as they do the machine's timers. */
u64 cpu_wake_deadline_ns(const struct cpu *c);

/* The current TSC value of this vCPU. */
u64 cpu_tsc(struct cpu *c);
/* The TSC value at virtual time ns (pairs a TSC with the time it was read at). */
u64 cpu_tsc_at(const struct cpu *c, u64 ns);
/* The vCPU's own TSC at virtual time ns, L1's, whatever offset or scaling an L2 runs
 * with: what IA32_TSC_DEADLINE counts against and what a hypervisor interface's clock
 * pages describe (both belong to L1). */
u64 cpu_l1_tsc_at(const struct cpu *c, u64 ns);

/* Decode-cache figures for -stats: blocks decoded, and times the block arena filled up
 * and every block was dropped. */
struct cpu_block_stats {
    u64 decoded, flushes;
};
struct cpu_block_stats cpu_block_stats(const struct cpu *c);

#endif

/* Between the parts of src/cpu/svm/: the VMCB layout (one table of fields), the
 * intercept bits, the per-vCPU SVM state, and the functions the instruction, VMRUN,
 * #VMEXIT and nested-paging parts call in each other. */
#ifndef NESTOR_CPU_SVM_SVM_INTERNAL_H
#define NESTOR_CPU_SVM_SVM_INTERNAL_H

#include "cpu/exec.h"
#include "cpu/nested.h"
#include "cpu/paging.h"
#include "cpu/svm/svm.h"

/* ---- the VMCB (APM appendix B) ----
 * One table names every field nestor reads or writes: its byte offset in the 4 KiB VMCB,
 * its width, and whether it belongs to the control area, which VMRUN caches for the
 * whole run of L2 (L1 changing the VMCB meanwhile changes nothing, as on hardware). The
 * cached copy, the state file and #VMEXIT's write-back all go through the table. */
enum vmcb_field {
    /* control area */
    VMCB_INTERCEPT_CR,       /* 0x000: CR reads 15:0, writes 31:16 */
    VMCB_INTERCEPT_DR,       /* 0x004: DR reads 15:0, writes 31:16 */
    VMCB_INTERCEPT_EXC,      /* 0x008: exceptions by vector */
    VMCB_INTERCEPT_MISC1,    /* 0x00c: INTR .. shutdown (INTERCEPT1_*) */
    VMCB_INTERCEPT_MISC2,    /* 0x010: VMRUN .. (INTERCEPT2_*) */
    VMCB_INTERCEPT_MISC3,    /* 0x014: INVLPGB, INVPCID, ... (none implemented) */
    VMCB_PAUSE_THRESHOLD,    /* 0x03c */
    VMCB_PAUSE_COUNT,        /* 0x03e */
    VMCB_IOPM_BASE,          /* 0x040 */
    VMCB_MSRPM_BASE,         /* 0x048 */
    VMCB_TSC_OFFSET,         /* 0x050 */
    VMCB_ASID,               /* 0x058 */
    VMCB_TLB_CONTROL,        /* 0x05c */
    VMCB_VINTR,              /* 0x060: V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, masking, vector */
    VMCB_INTR_SHADOW,        /* 0x068: bit 0 shadow, bit 1 guest IF (written at #VMEXIT) */
    VMCB_EXITCODE,           /* 0x070 */
    VMCB_EXITINFO1,          /* 0x078 */
    VMCB_EXITINFO2,          /* 0x080 */
    VMCB_EXITINTINFO,        /* 0x088 */
    VMCB_NP_CONTROL,         /* 0x090: bit 0 nested paging */
    VMCB_EVENTINJ,           /* 0x0a8 */
    VMCB_NCR3,               /* 0x0b0 */
    VMCB_VIRT_EXT,           /* 0x0b8: LBR virtualization, VMSAVE/VMLOAD virtualization */
    VMCB_CLEAN,              /* 0x0c0 */
    VMCB_NRIP,               /* 0x0c8 */
    VMCB_INSN_LEN,           /* 0x0d0: bytes fetched (decode assists) */
    VMCB_CTL_COUNT,
    /* state-save area (0x400..): the scalars; segments by vmcb_seg_offset() */
    VMCB_CPL = VMCB_CTL_COUNT, /* 0x4cb */
    VMCB_EFER, VMCB_CR4, VMCB_CR3, VMCB_CR0, VMCB_DR7, VMCB_DR6, VMCB_RFLAGS, VMCB_RIP,
    VMCB_RSP, VMCB_RAX, VMCB_STAR, VMCB_LSTAR, VMCB_CSTAR, VMCB_SFMASK, VMCB_KERNEL_GS_BASE,
    VMCB_SYSENTER_CS, VMCB_SYSENTER_ESP, VMCB_SYSENTER_EIP, VMCB_CR2, VMCB_G_PAT,
    VMCB_DBGCTL,
    VMCB_FIELD_COUNT
};
struct vmcb_field_desc {
    const char *name;
    u16 offset;
    u8 width; /* bytes: 1, 2, 4 or 8 */
};
extern const struct vmcb_field_desc vmcb_fields[VMCB_FIELD_COUNT];
#define VMCB_INSN_BYTES 0x0d1 /* 15 bytes of the guest instruction (decode assists) */
/* Segment registers in the save area: 16 bytes each (selector, attributes, limit, base),
 * in this order from 0x400. */
enum { VMCB_SEG_ES, VMCB_SEG_CS, VMCB_SEG_SS, VMCB_SEG_DS, VMCB_SEG_FS, VMCB_SEG_GS,
       VMCB_SEG_GDTR, VMCB_SEG_LDTR, VMCB_SEG_IDTR, VMCB_SEG_TR };
static inline u16 vmcb_seg_offset(int k) { return (u16)(0x400 + 16 * k); }

/* INTERCEPT_MISC1 (VMCB 0x00c) and MISC2 (0x010) bits */
enum {
    I1_INTR = 0, I1_NMI, I1_SMI, I1_INIT, I1_VINTR, I1_CR0_SEL_WRITE, I1_IDTR_READ,
    I1_GDTR_READ, I1_LDTR_READ, I1_TR_READ, I1_IDTR_WRITE, I1_GDTR_WRITE, I1_LDTR_WRITE,
    I1_TR_WRITE, I1_RDTSC, I1_RDPMC, I1_PUSHF, I1_POPF, I1_CPUID, I1_RSM, I1_IRET, I1_INTN,
    I1_INVD, I1_PAUSE, I1_HLT, I1_INVLPG, I1_INVLPGA, I1_IOIO, I1_MSR, I1_TASK_SWITCH,
    I1_FERR_FREEZE, I1_SHUTDOWN,
};
enum {
    I2_VMRUN = 0, I2_VMMCALL, I2_VMLOAD, I2_VMSAVE, I2_STGI, I2_CLGI, I2_SKINIT, I2_RDTSCP,
    I2_ICEBP, I2_WBINVD, I2_MONITOR, I2_MWAIT, I2_MWAIT_COND, I2_XSETBV, I2_RDPRU,
    I2_EFER_WRITE,
};

/* VMCB 0x060 (VINTR) */
#define VINTR_TPR_MASK 0xffull
#define VINTR_IRQ BIT(8)
#define VINTR_VGIF BIT(9)          /* the virtual GIF's value */
#define VINTR_PRIO_SHIFT 16
#define VINTR_IGN_TPR BIT(20)
#define VINTR_MASKING BIT(24)
#define VINTR_VGIF_ENABLE BIT(25)  /* STGI/CLGI in L2 set and clear V_GIF (APM 15.33.6) */
#define VINTR_VECTOR_SHIFT 32
/* VMCB 0x0b8 (VIRT_EXT): bit 1 virtualizes VMSAVE/VMLOAD in L2 (APM 15.33.1) */
#define VIRT_EXT_VLS BIT(1)
/* EVENTINJ and EXITINTINFO (APM 15.20) */
#define EVTINJ_VECTOR(x) ((u8)(x))
#define EVTINJ_TYPE(x) (((x) >> 8) & 7u)
#define EVTINJ_EV BIT(11)
#define EVTINJ_VALID BIT(31)
enum { EVTINJ_TYPE_INTR = 0, EVTINJ_TYPE_NMI = 2, EVTINJ_TYPE_EXC = 3, EVTINJ_TYPE_SOFT = 4 };
/* TLB_CONTROL values (APM 15.16.1) */
enum { TLB_CONTROL_NOTHING = 0, TLB_CONTROL_ALL = 1, TLB_CONTROL_ASID = 3,
       TLB_CONTROL_ASID_NONGLOBAL = 7 };
/* #NPF EXITINFO1 bits beyond the #PF error code (APM 15.25.6) */
#define NPF_FINAL_GPA BIT(32)
#define NPF_GUEST_TABLE BIT(33)

/* TSC_RATIO (APM 15.30.5): 8.32 fixed point, bits 63:40 reserved; 1.0 after RESET */
#define TSC_RATIO_ONE (1ull << 32)
#define TSC_RATIO_RESERVED (~0ull << 40)

struct svm {
    /* MSRs */
    u64 vm_cr, hsave_pa, tsc_ratio;
    /* guest mode (c->svm_guest): the VMCB VMRUN took and its cached control area */
    u64 vmcb_pa;
    u64 ctl[VMCB_CTL_COUNT];
    bool host_if;          /* L1's RFLAGS.IF at VMRUN (physical interrupts with masking) */
    s64 l1_tsc_offset;     /* L1's TSC offset: L2's adds the VMCB's */
    u64 l1_pat;            /* L1's PAT while L2 runs with its own (nested paging) */
    struct paging_ctx npt; /* nested paging: L1's paging mode at VMRUN, nCR3 (APM 15.25.3) */
    /* The software TLB across VMRUN and #VMEXIT: L1's translations in context
     * TLB_CTX_L1, L2's in TLB_CTX_L2, the latter kept while the ASID, nCR3 and L2's paging
     * regime stay the same and TLB_CONTROL does not flush them (APM 15.16). */
    bool in_l2_ctx, l2_tlb_valid;
    u32 l2_tlb_asid;
    u64 l2_tlb_ncr3;
    struct paging_ctx l1_regime, l2_regime;
    /* the pause filter (APM 15.14.4): PAUSEs left before an exit, and the last one's TSC */
    u16 pause_left;
    u64 pause_last;
    bool init_pending;     /* an INIT held by GIF or due as an intercept */
    bool init_bsp;         /* ... to the bootstrap processor */
    /* the event whose delivery is in progress, in EXITINTINFO's format (0: none) */
    u64 delivering;
    bool exiting;          /* a #VMEXIT is being performed */
};

/* vmcb.c: the table-driven field access to VMCBs and the host-save area in guest memory
 * (through nested_phys_read/nested_phys_write). */
u64 vmcb_get(struct cpu *c, u64 vmcb, enum vmcb_field f);
void vmcb_put(struct cpu *c, u64 vmcb, enum vmcb_field f, u64 value);
/* Segments: the VMCB's 12-bit attribute form from and to the engine's layout. */
void vmcb_get_seg(struct cpu *c, u64 vmcb, int k, struct seg *s);
void vmcb_put_seg(struct cpu *c, u64 vmcb, int k, const struct seg *s);
/* What VMRUN saves of L1 and #VMEXIT saves of L2 alike (APM 15.5.1, 15.6): ES, CS, SS,
 * DS, GDTR, IDTR, EFER, CR0, CR3, CR4, RFLAGS, RSP, RAX, and rip as RIP; and what both
 * load back the same way: the segments, descriptor tables, RFLAGS (reserved bits as the
 * architecture fixes them), RIP, RSP and RAX. The control registers and EFER each
 * side loads with its own rules. */
void vmcb_put_world(struct cpu *c, u64 vmcb, u64 rip);
void vmcb_get_world(struct cpu *c, u64 vmcb);
/* The control area, cached by VMRUN. */
void vmcb_load_controls(struct cpu *c, u64 vmcb);
static inline bool svm_intercepted1(const struct svm *s, int bit) { return (s->ctl[VMCB_INTERCEPT_MISC1] >> bit) & 1; }
static inline bool svm_intercepted2(const struct svm *s, int bit) { return (s->ctl[VMCB_INTERCEPT_MISC2] >> bit) & 1; }
/* Is the virtual GIF on for the running L2, and its value? */
static inline bool svm_vgif_on(const struct cpu *c) { return c->svm_guest && (c->svm->ctl[VMCB_VINTR] & VINTR_VGIF_ENABLE); }
static inline bool svm_l2_gif(const struct cpu *c) { return !svm_vgif_on(c) || (c->svm->ctl[VMCB_VINTR] & VINTR_VGIF); }
/* Is physical address pa page-aligned and below MAXPHYADDR (VMRUN, VMLOAD, VMSAVE's rAX,
 * VM_HSAVE_PA)? */
bool svm_pa_ok(const struct cpu *c, u64 pa);

/* exit.c: #VMEXIT with exit code and information (APM 15.6); does not return: the loop
 * continues in L1. nrip: the next instruction's RIP for an instruction intercept (0 for
 * others). */
struct svm_exit_info {
    u64 code, info1, info2;
    u64 nrip;
    /* decode assists: the instruction bytes at RIP are stored (#NPF, #PF intercept) */
    bool insn_bytes;
};
_Noreturn void svm_vmexit(struct cpu *c, const struct svm_exit_info *x);
/* An instruction intercept: nRIP from the instruction's length, decoded at RIP. */
_Noreturn void svm_exit_insn(struct cpu *c, u64 code, u64 info1, u64 info2);
/* L1's TSC (without L2's offset). */
u64 svm_l1_tsc(const struct cpu *c);

/* vmrun.c */
/* After VMRUN's own checks: the VMCB's checks, then L2 runs (or L1 continues at
 * next_rip with VMEXIT_INVALID). */
void svm_vmrun(struct cpu *c, u64 vmcb, u64 next_rip);
/* The consistency checks that apply to the host state #VMEXIT loaded (APM 15.5.1). */
bool svm_host_state_legal(struct cpu *c);

/* npt.c: the TLB across VMRUN and #VMEXIT */
void svm_tlb_leaving_l1(struct cpu *c);
void svm_tlb_enter(struct cpu *c);
void svm_tlb_leaving_l2(struct cpu *c);
void svm_tlb_exit(struct cpu *c);
/* The nested paging mode VMRUN takes from L1's state (APM 15.25.3). */
void svm_npt_setup(struct cpu *c);

#endif

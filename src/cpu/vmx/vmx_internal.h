/* Between the parts of src/cpu/vmx/: the per-vCPU VMX state, the control bits, and the
 * functions the instruction, entry, exit and EPT parts call in each other. */
#ifndef NESTOR_CPU_VMX_VMX_INTERNAL_H
#define NESTOR_CPU_VMX_VMX_INTERNAL_H

#include "cpu/exec.h"
#include "cpu/nested.h"
#include "cpu/vmx/vmcs.h"
#include "cpu/vmx/vmx.h"

/* ---- control bits (SDM 25.6, 25.7, 25.8) ---- */
/* pin-based */
#define PIN_EXT_INTR_EXITING BIT(0)
#define PIN_NMI_EXITING BIT(3)
#define PIN_VIRTUAL_NMIS BIT(5)
#define PIN_PREEMPTION_TIMER BIT(6)
#define PIN_POSTED_INTR BIT(7)
/* primary processor-based */
#define PROC_INTR_WINDOW BIT(2)
#define PROC_TSC_OFFSETTING BIT(3)
#define PROC_HLT_EXITING BIT(7)
#define PROC_INVLPG_EXITING BIT(9)
#define PROC_MWAIT_EXITING BIT(10)
#define PROC_RDPMC_EXITING BIT(11)
#define PROC_RDTSC_EXITING BIT(12)
#define PROC_CR3_LOAD_EXITING BIT(15)
#define PROC_CR3_STORE_EXITING BIT(16)
#define PROC_CR8_LOAD_EXITING BIT(19)
#define PROC_CR8_STORE_EXITING BIT(20)
#define PROC_TPR_SHADOW BIT(21)
#define PROC_NMI_WINDOW BIT(22)
#define PROC_MOV_DR_EXITING BIT(23)
#define PROC_UNCOND_IO_EXITING BIT(24)
#define PROC_IO_BITMAPS BIT(25)
#define PROC_MTF BIT(27)
#define PROC_MSR_BITMAPS BIT(28)
#define PROC_MONITOR_EXITING BIT(29)
#define PROC_PAUSE_EXITING BIT(30)
#define PROC_SECONDARY BIT(31)
/* secondary processor-based */
#define PROC2_VIRT_APIC_ACCESS BIT(0)
#define PROC2_EPT BIT(1)
#define PROC2_DESC_TABLE_EXITING BIT(2)
#define PROC2_RDTSCP BIT(3)
#define PROC2_VIRT_X2APIC BIT(4)
#define PROC2_VPID BIT(5)
#define PROC2_WBINVD_EXITING BIT(6)
#define PROC2_UNRESTRICTED_GUEST BIT(7)
#define PROC2_APIC_REG_VIRT BIT(8)
#define PROC2_VIRT_INTR_DELIVERY BIT(9)
#define PROC2_PAUSE_LOOP_EXITING BIT(10)
#define PROC2_RDRAND_EXITING BIT(11)
#define PROC2_INVPCID BIT(12)
#define PROC2_VMFUNC BIT(13)
#define PROC2_SHADOW_VMCS BIT(14)
#define PROC2_ENCLS_EXITING BIT(15)
#define PROC2_RDSEED_EXITING BIT(16)
#define PROC2_EPT_VE BIT(18)
#define PROC2_XSAVES BIT(20)
#define PROC2_TSC_SCALING BIT(25)
/* VM-exit */
#define EXIT_SAVE_DEBUG BIT(2)
#define EXIT_HOST_ADDR_SPACE BIT(9)
#define EXIT_LOAD_PERF_GLOBAL BIT(12)
#define EXIT_ACK_INTR BIT(15)
#define EXIT_SAVE_PAT BIT(18)
#define EXIT_LOAD_PAT BIT(19)
#define EXIT_SAVE_EFER BIT(20)
#define EXIT_LOAD_EFER BIT(21)
#define EXIT_SAVE_PREEMPT_TIMER BIT(22)
/* VM-entry */
#define ENTRY_LOAD_DEBUG BIT(2)
#define ENTRY_IA32E_GUEST BIT(9)
#define ENTRY_SMM BIT(10)
#define ENTRY_DEACT_DUAL_MONITOR BIT(11)
#define ENTRY_LOAD_PERF_GLOBAL BIT(13)
#define ENTRY_LOAD_PAT BIT(14)
#define ENTRY_LOAD_EFER BIT(15)

/* Interruption-information fields (entry, exit, IDT-vectoring): SDM 25.8.3, 26.9.2. */
#define INTR_INFO_VECTOR(x) ((x) & 0xffu)
#define INTR_INFO_TYPE(x) (((x) >> 8) & 7u)
#define INTR_INFO_ERROR BIT(11)
#define INTR_INFO_NMI_UNBLOCKED BIT(12) /* exit info: NMI unblocking due to IRET */
#define INTR_INFO_VALID BIT(31)
enum { INTR_TYPE_EXT = 0, INTR_TYPE_NMI = 2, INTR_TYPE_HW_EXC = 3, INTR_TYPE_SW_INT = 4,
       INTR_TYPE_PRIV_SW_EXC = 5, INTR_TYPE_SW_EXC = 6, INTR_TYPE_OTHER = 7 };

/* Guest interruptibility state (SDM 25.4.2). */
#define INTERRUPTIBILITY_STI BIT(0)
#define INTERRUPTIBILITY_MOV_SS BIT(1)
#define INTERRUPTIBILITY_SMI BIT(2)
#define INTERRUPTIBILITY_NMI BIT(3)
#define INTERRUPTIBILITY_ENCLAVE BIT(4)
/* Activity states */
enum { ACTIVITY_ACTIVE = 0, ACTIVITY_HLT = 1, ACTIVITY_SHUTDOWN = 2, ACTIVITY_WAIT_SIPI = 3 };

/* VM-instruction error numbers (SDM 31.4). */
enum vmx_insn_error {
    VMXERR_VMCALL_IN_ROOT = 1, VMXERR_VMCLEAR_INVALID_ADDR = 2, VMXERR_VMCLEAR_VMXON_PTR = 3,
    VMXERR_VMLAUNCH_NOT_CLEAR = 4, VMXERR_VMRESUME_NOT_LAUNCHED = 5,
    VMXERR_VMRESUME_AFTER_VMXOFF = 6, VMXERR_ENTRY_INVALID_CONTROLS = 7,
    VMXERR_ENTRY_INVALID_HOST_STATE = 8, VMXERR_VMPTRLD_INVALID_ADDR = 9,
    VMXERR_VMPTRLD_VMXON_PTR = 10, VMXERR_VMPTRLD_BAD_REVISION = 11,
    VMXERR_UNSUPPORTED_FIELD = 12, VMXERR_VMWRITE_READONLY = 13, VMXERR_VMXON_IN_ROOT = 15,
    VMXERR_ENTRY_BAD_EXECUTIVE_VMCS = 16, VMXERR_ENTRY_NONLAUNCHED_EXECUTIVE = 17,
    VMXERR_ENTRY_EXECUTIVE_NOT_VMXON = 18, VMXERR_VMCALL_NONCLEAR_VMCS = 19,
    VMXERR_VMCALL_INVALID_EXIT_CONTROLS = 20, VMXERR_VMCALL_BAD_MSEG = 22,
    VMXERR_VMXOFF_DUAL_MONITOR = 23, VMXERR_VMCALL_BAD_SMM_FEATURES = 24,
    VMXERR_ENTRY_INVALID_EXEC_CONTROLS_EXECUTIVE = 25, VMXERR_ENTRY_EVENTS_BLOCKED_MOV_SS = 26,
    VMXERR_INVEPT_INVVPID_INVALID = 28,
};

/* The capability MSRs, by index - MSR_VMX_FIRST. */
enum {
    VMX_BASIC, VMX_PINBASED, VMX_PROCBASED, VMX_EXIT, VMX_ENTRY, VMX_MISC, VMX_CR0_FIXED0,
    VMX_CR0_FIXED1, VMX_CR4_FIXED0, VMX_CR4_FIXED1, VMX_VMCS_ENUM, VMX_PROCBASED2,
    VMX_EPT_VPID_CAP, VMX_TRUE_PINBASED, VMX_TRUE_PROCBASED, VMX_TRUE_EXIT, VMX_TRUE_ENTRY,
    VMX_VMFUNC, VMX_NCAPS
};
/* The VMCS revision identifier nestor's VMCS format has (IA32_VMX_BASIC[30:0]). */
#define VMX_REVISION 0x4e56u /* "VN" */
/* Bits of IA32_VMX_EPT_VPID_CAP */
#define EPT_CAP_EXEC_ONLY BIT(0)
#define EPT_CAP_PWL4 BIT(6)
#define EPT_CAP_PWL5 BIT(7)
#define EPT_CAP_UC BIT(8)
#define EPT_CAP_WB BIT(14)
#define EPT_CAP_2M BIT(16)
#define EPT_CAP_1G BIT(17)
#define EPT_CAP_INVEPT BIT(20)
#define EPT_CAP_AD BIT(21)
#define EPT_CAP_ADV_EXIT_INFO BIT(22)
#define EPT_CAP_INVEPT_SINGLE BIT(25)
#define EPT_CAP_INVEPT_ALL BIT(26)
#define VPID_CAP_INVVPID BIT(32)
#define VPID_CAP_ADDR BIT(40)
#define VPID_CAP_SINGLE BIT(41)
#define VPID_CAP_ALL BIT(42)
#define VPID_CAP_SINGLE_NONGLOBAL BIT(43)

/* What the vCPU's model offers: the capability MSR values and the features (VMXF_MASK)
 * that decide which VMCS fields exist. Derived once from the CPU model (caps.c). */
struct vmx_caps {
    u64 msr[VMX_NCAPS];
    u32 features;
};

/* In-memory VMCS region layout (private to nestor, SDM 25.2): revision identifier with
 * the shadow-VMCS indicator (bit 31), VMX-abort indicator, nestor's launch-state word,
 * then the field slots. */
#define VMCS_REGION_REVISION 0
#define VMCS_REGION_ABORT 4
#define VMCS_REGION_LAUNCH 8
#define VMCS_REGION_FIELDS 16
#define VMCS_LAUNCHED_MAGIC 0x4c4e5648u /* launch state "launched" */

struct vmx {
    struct vmx_caps caps;
    bool on;                /* VMX operation: after VMXON, until VMXOFF */
    u64 vmxon_ptr;
    u64 current;            /* current-VMCS pointer, ~0 when none */
    struct vmcs vmcs;       /* the current VMCS's contents while current */
    bool launched;          /* its launch state */
    bool current_is_shadow; /* its revision word has the shadow-VMCS indicator */
    /* Non-root operation. c->nmi_blocked is L2's blocking by NMI (virtual-NMI blocking
     * with virtual NMIs); L1's own is kept here meanwhile. */
    bool l1_nmi_blocked;
    s64 l1_tsc_offset;      /* L1's TSC offset: L2's adds the VMCS TSC offset to it */
    /* The software TLB across VM entries and exits: L1's translations are context
     * TLB_CTX_L1, the running L2's TLB_CTX_L2. With VPID both survive transitions, the
     * L2 context while its VPID and EPTP stay the same; either side's are dropped when
     * its paging regime differs from the one they were filled under. */
    bool in_l2_ctx;            /* the TLB is in the L2 context */
    bool l2_tlb_valid;         /* L2-context entries belong to l2_tlb_vpid/eptp */
    u16 l2_tlb_vpid;
    u64 l2_tlb_eptp;
    struct paging_ctx l1_regime, l2_regime;
    /* pause-loop exiting: the L1 TSC of the first and the last PAUSE of the loop */
    bool ple_active;
    u64 ple_start, ple_last;
    bool mtf_pending;       /* an MTF exit is due at the next boundary */
    u64 preempt_deadline_tsc;/* the preemption timer reaches 0 at this TSC value */
    bool preempt_active;
    bool init_pending;      /* INIT arrived in VMX operation: an exit, or after VMXOFF */
    bool init_bsp;          /* ... to the bootstrap processor */
    bool sipi_pending;      /* SIPI arrived in wait-for-SIPI: an exit */
    u8 sipi_vector;
    /* APIC virtualization: a trap-like exit due at the next boundary (apicv.c) */
    bool trap_pending;
    u32 trap_reason;
    u64 trap_qual;
    /* The event whose delivery is in progress (for IDT-vectoring information). */
    bool delivering;
    u32 deliver_info, deliver_error, deliver_insn_len;
    /* A VM exit is being performed (an exit during exit: VMX abort). */
    bool exiting;
    /* The enlightened VMCS (evmcs.c): the Hyper-V VP assist page that may name one (0:
     * the guest was not offered it), and the one in use (~0: none; then `current` is
     * ~0 too) */
    u64 evmcs_assist;
    u64 evmcs;
};

/* The guest-state fields of a segment register: ES..GS in the engine's SEG_* order, then
 * LDTR (VMX_SEG_LDTR) and TR (VMX_SEG_TR). One table for entry, exit and the checks. */
struct vmx_seg_fields {
    enum vmcs_field sel, base, limit, ar;
};
enum { VMX_SEG_LDTR = 6, VMX_SEG_TR = 7 };
extern const struct vmx_seg_fields vmx_guest_seg[8];

/* caps.c */
void vmx_caps_build(struct cpu *c, struct vmx_caps *caps);
/* May control word `value` be used with capability MSR `cap` (allowed-0 bits set,
 * allowed-1 bits respected)? */
bool vmx_ctl_ok(const struct vmx *v, int cap, u32 value);
/* The current controls */
static inline u32 vmx_pin(const struct vmx *v) { return (u32)v->vmcs.f[VMCS_PIN_CONTROLS]; }
static inline u32 vmx_proc(const struct vmx *v) { return (u32)v->vmcs.f[VMCS_PROC_CONTROLS]; }
static inline u32 vmx_proc2(const struct vmx *v)
{
    return (vmx_proc(v) & PROC_SECONDARY) ? (u32)v->vmcs.f[VMCS_PROC_CONTROLS2] : 0;
}

/* insn.c: succeed/fail conventions (SDM 31.2) */
void vmx_succeed(struct cpu *c);
void vmx_fail(struct cpu *c, enum vmx_insn_error err);
/* Reads/writes the current VMCS region's slot copy in guest memory (vmcs flush/load). */
void vmx_vmcs_flush(struct cpu *c);
/* evmcs.c: at VMLAUNCH/VMRESUME, the VMCS the VP assist page names is taken (its dirty
 * groups read in); at an exit or VMfailValid, written back; VMCLEAR of it, VMPTRLD,
 * VMXOFF: released. */
enum vmx_evmcs_result { EVMCS_NOT_USED, EVMCS_USED, EVMCS_UD, EVMCS_VMFAIL_INVALID, EVMCS_BAD_CONTROLS };
enum vmx_evmcs_result vmx_evmcs_enter(struct cpu *c, bool launch);
void vmx_evmcs_write_back(struct cpu *c);
void vmx_evmcs_release(struct cpu *c);
/* the VP assist page names an enlightened VMCS (VMCLEAR then takes its operand for one) */
bool vmx_evmcs_in_use(struct cpu *c);

/* entry.c: VMLAUNCH (launch = true) / VMRESUME after the instruction's own checks. */
void vmx_vmentry(struct cpu *c, bool launch);

/* exit.c */
/* Performs a VM exit with the given basic reason (and EXIT_REASON_ENTRY_FAILURE for a
 * failed entry) and exit qualification; the other exit-information fields are set by the
 * caller beforehand through the fields below. Does not return: the loop continues in L1. */
struct vmx_exit_info {
    u32 reason;
    u64 qual;
    u64 guest_linear, guest_phys;
    u32 intr_info, intr_error;
    u32 insn_len, insn_info;
    bool has_linear, has_phys;
    /* caused by the instruction running (its blocking state is the one before it);
     * else at an instruction boundary or during event delivery */
    bool in_insn;
};
_Noreturn void vmx_exit(struct cpu *c, const struct vmx_exit_info *x);
/* An exit for an instruction, with its length and the exit qualification. */
_Noreturn void vmx_exit_insn(struct cpu *c, u32 reason, u64 qual, u32 insn_info);
/* Loads L1's host state (SDM 28.5). */
void vmx_load_host_state(struct cpu *c);
/* Loads an MSR-load area: 0, or the 1-based number of the entry that failed. */
u32 vmx_load_msrs(struct cpu *c, u64 area, u32 n);
/* RDMSR/WRMSR as the MSR areas do them (no intercept of L1's own, no bitmaps):
 * false if the access would #GP. */
bool vmx_msr_access(struct cpu *c, u32 index, u64 *value, bool write);
/* Leaves the instruction or event that caused the exit and continues the loop in the
 * new context (exec.c's EXC_VMEXIT path). */
_Noreturn void vmx_longjmp_exit(struct cpu *c);
/* L1's TSC now (the TSC without L2's offset and scaling: the preemption timer's and
 * pause-loop exiting's clock). */
u64 vmx_l1_tsc(const struct cpu *c);
/* The VMX-preemption timer: armed by VM entry; its value now (timer ticks left). */
void vmx_preempt_start(struct cpu *c);
u32 vmx_preempt_remaining(struct cpu *c);
/* VM-exit instruction-information field for an instruction with a memory or register
 * operand (SDM 28.2.5, tables 28-8 to 28-13). */
u32 vmx_insn_info_of(struct cpu *c, const struct insn *i);
/* The exit qualification of an instruction with a memory operand (VMX instructions,
 * INVEPT, INVVPID, INVPCID, LGDT...): its displacement, 0 without one (SDM 28.2.1). */
u64 vmx_insn_displacement(const struct insn *i);
/* In VMX root operation, CR0 must keep the FIXED0 bits. */
bool vmx_cr0_allowed_root(const struct cpu *c, u64 cr0);

/* ept.c */
void vmx_ept_flush(struct cpu *c);
/* The TLB at VM entry (after guest state is loaded) and VM exit (after host state is
 * loaded); vmx_tlb_leaving_* record the regime of the side being left first. */
void vmx_tlb_leaving_l1(struct cpu *c);
void vmx_tlb_enter(struct cpu *c);
void vmx_tlb_leaving_l2(struct cpu *c);
void vmx_tlb_exit(struct cpu *c);
/* Is an EPTP value valid with these capabilities (SDM 26.2.1.1)? */
bool vmx_eptp_valid(const struct vmx *v, u64 eptp, u8 maxphyaddr);

/* apicv.c: APIC virtualization */
bool vmx_tpr_shadow(const struct cpu *c);
u64 vmx_cr8_read(struct cpu *c);
void vmx_cr8_write(struct cpu *c, u64 value);
bool vmx_x2apic_msr(struct cpu *c, u32 index, bool write, u64 *value);
bool vmx_apic_reg_readable(unsigned off);
u64 vmx_apic_access_read(struct cpu *c, u64 pa, unsigned size);
void vmx_apic_access_write(struct cpu *c, u64 pa, unsigned size, u64 value);
void vmx_apicv_entry(struct cpu *c);
void vmx_apicv_boundary(struct cpu *c);
bool vmx_posted_interrupt(struct cpu *c, u8 vector);
/* An EOI to L1's own local APIC (posted-interrupt processing). */
void vmx_l1_apic_eoi(struct cpu *c);

/* The length of the instruction that is running (for exit information). */
u32 vmx_insn_length(const struct cpu *c);

/* VMX structures in guest memory: nested_phys_read/nested_phys_write (cpu/nested.h). */

#endif

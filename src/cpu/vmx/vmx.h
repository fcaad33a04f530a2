/* VMX (Intel VT-x) in the software CPU: what the engine calls. A guest that turns VMX on
 * (VMXON) becomes a hypervisor (L1); VMLAUNCH/VMRESUME load its guest's (L2's) state from
 * the current VMCS into the same struct cpu, and a VM exit stores it back and loads L1's
 * host state. While L2 runs, every event the engine offers to cpu_intercept() is first
 * examined here against L1's controls (bitmaps, exception bitmap, execution controls):
 * the one interception point decides whether it exits to L1.
 *
 * The engine keeps no VMX decision across instructions: each is made from the VMCS when
 * the event happens. SDM Vol. 3C chapters 24-30 are the reference throughout. */
#ifndef NESTOR_CPU_VMX_VMX_H
#define NESTOR_CPU_VMX_VMX_H

#include "cpu/cpu.h"

struct insn;
struct vmx;

/* Capability MSRs IA32_VMX_BASIC (0x480) to IA32_VMX_VMFUNC (0x491), and
 * IA32_FEATURE_CONTROL (0x3a) bits that VMX uses. */
#define MSR_VMX_FIRST 0x480u
#define MSR_VMX_LAST 0x491u
#define FEATURE_CONTROL_LOCK BIT(0)
#define FEATURE_CONTROL_VMX_OUTSIDE_SMX BIT(2)

/* Is VMX in this vCPU's model (CPUID.1:ECX.VMX)? Creates the per-vCPU VMX state then. */
int vmx_init(struct cpu *c);
void vmx_destroy(struct cpu *c);
/* RESET and INIT: VMX operation ends on RESET; INIT is blocked in VMX root operation and
 * causes a VM exit in non-root operation (the machine asks vmx_init_blocked first). */
void vmx_reset(struct cpu *c);
/* In VMX root operation INIT is blocked (SDM 24.8); in non-root operation it exits. Returns
 * true when the INIT was consumed (blocked, or turned into an exit): the caller does nothing
 * more. Called by the machine's INIT path, outside cpu_run(). */
bool vmx_init_signal(struct cpu *c, bool is_bsp);
/* A SIPI to a vCPU whose L2 is in wait-for-SIPI: a VM exit (true), else false. */
bool vmx_sipi(struct cpu *c, u8 vector);

/* Registers VMX's state description (vmx/state.c). */
struct state_registry;
void vmx_state_register(struct cpu *c, struct state_registry *r);
/* After a load, once the vCPU's own paging parameters are rebuilt: checks VMX's loaded
 * state and rebuilds what is derived. 0, or -1 with a message. */
int vmx_state_post_load(struct cpu *c, char *err, size_t errlen);

/* RDMSR of the capability MSRs (read-only: a write is #GP; IA32_FEATURE_CONTROL is
 * msr.c's). false = #GP(0). */
bool vmx_msr_read(struct cpu *c, u32 index, u64 *value);

/* Is the vCPU in VMX operation / in VMX non-root operation (running L2)? */
bool vmx_in_operation(const struct cpu *c);
/* L1's TSC offset (c->tsc_offset outside non-root operation; in it, L2 runs with its own) */
s64 vmx_l1_tsc_offset(const struct cpu *c);
/* The Hyper-V interface offers the enlightened VMCS (hv-evmcs): vCPU c's VP assist page
 * is at gpa (0: none), where VMLAUNCH/VMRESUME look for the one to use. */
void vmx_evmcs_set_assist(struct cpu *c, u64 gpa);
/* ... and the capability MSRs leave out the controls its version 1 cannot express. */
void vmx_evmcs_offered(struct cpu *c);
static inline bool vmx_non_root(const struct cpu *c) { return c->vmx_non_root; }

/* The CR0/CR4 bits VMX operation fixes (IA32_VMX_CR0/CR4_FIXED0/1): a MOV to CR0/CR4 in
 * VMX operation that would give them another value is #GP(0). For L2 with unrestricted
 * guest, CR0.PE and CR0.PG are free. Returns true if the value is allowed. */
bool vmx_cr0_allowed(const struct cpu *c, u64 cr0);
bool vmx_cr4_allowed(const struct cpu *c, u64 cr4);

/* L2's view: CR0 with the read shadow in the bits L1 owns (SMSW); RDTSCP and INVPCID
 * exist for L2 only with their secondary controls ("enable RDTSCP/INVPCID"). */
u64 vmx_cr0_visible(const struct cpu *c);
bool vmx_l2_has_rdtscp(const struct cpu *c);
bool vmx_l2_has_invpcid(const struct cpu *c);

/* The instructions (decode: registered by insn_system.c). */
void vmx_insn_vmxon(struct cpu *c, const struct insn *i);
void vmx_insn_vmxoff(struct cpu *c, const struct insn *i);
void vmx_insn_vmclear(struct cpu *c, const struct insn *i);
void vmx_insn_vmptrld(struct cpu *c, const struct insn *i);
void vmx_insn_vmptrst(struct cpu *c, const struct insn *i);
void vmx_insn_vmread(struct cpu *c, const struct insn *i);
void vmx_insn_vmwrite(struct cpu *c, const struct insn *i);
void vmx_insn_vmlaunch(struct cpu *c, const struct insn *i);
void vmx_insn_vmresume(struct cpu *c, const struct insn *i);
void vmx_insn_invept(struct cpu *c, const struct insn *i);
void vmx_insn_invvpid(struct cpu *c, const struct insn *i);
void vmx_insn_vmfunc(struct cpu *c, const struct insn *i);
/* VMCALL in VMX root operation that no hypervisor interface took (SDM 31.3 VMCALL). */
void vmx_vmcall_root(struct cpu *c);

/* The interception point in non-root operation (cpu_intercept calls it first): exits to
 * L1 (does not return: the loop continues in L1) when L1's controls say so; returns true
 * when VMX itself handled the event (APIC virtualization: the virtual-APIC page answers
 * instead of L1's APIC), else false and the event goes on as in root operation (with ev
 * possibly adjusted, e.g. CR0/CR4 read shadows). */
bool vmx_intercept(struct cpu *c, struct cpu_event *ev);

/* Instruction-boundary work in non-root operation, before events are taken: pending MTF,
 * the preemption timer, interrupt and NMI windows, virtual interrupts. May exit. */
void vmx_boundary(struct cpu *c);
/* The monitor trap flag (SDM 26.5.2): with MTF on, L2 runs one instruction per loop
 * iteration, and an MTF VM exit is due at the boundary after it (or after the delivery
 * of an event it raised), unless it exited itself. */
bool vmx_mtf_step(struct cpu *c);
/* The VMX-preemption timer of a halted L2: the virtual time (ns) it expires at, or ~0;
 * and whether it has (the vCPU must run to take the exit). */
u64 vmx_wake_deadline_ns(const struct cpu *c);
bool vmx_wake_due(const struct cpu *c);
/* Is an external interrupt blocked for L2 by RFLAGS.IF? Not with external-interrupt exiting
 * (SDM 25.3: IF then does not block interrupts, which exit instead). */
bool vmx_intr_masked_by_if(const struct cpu *c);

/* EPT: translates L2's guest-physical address for an access (ACC_*), as part of the walk
 * of linear address `linear` when linear_valid (bit 7 of the qualification) and for a
 * guest paging-structure entry when table (bit 8 clear). Returns the L1-physical address,
 * or exits with an EPT violation or misconfiguration. With EPT off, gpa itself. */
u64 vmx_ept_translate(struct cpu *c, u64 gpa, unsigned access, u64 linear, bool linear_valid,
                      bool table);
/* The same for a copy that must not exit (hypervisor-interface copies, debugger peeks):
 * false if it does not translate. */
bool vmx_ept_peek(struct cpu *c, u64 gpa, unsigned access, u64 *hpa);
/* Is EPT on for the running L2? (The engine's TLB fill and page-table reads ask.) */
bool vmx_ept_active(const struct cpu *c);
/* The APIC-access page (APIC virtualization): is physical address pa on it (in non-root
 * operation with "virtualize APIC accesses")? The TLB maps it as MMIO so that every
 * access reaches vmx_intercept; an instruction fetch from it exits. */
bool vmx_apic_access_page(const struct cpu *c, u64 pa);
_Noreturn void vmx_apic_access_fetch(struct cpu *c, u64 pa);
/* Would a virtual interrupt wake a halted L2? */
bool vmx_apicv_wakeup(const struct cpu *c);

/* The event being delivered when an exit interrupted its delivery (IDT-vectoring
 * information): exception delivery and event injection record it here. */
void vmx_note_delivery(struct cpu *c, u8 vector, int type, bool has_error, u32 error,
                       u32 insn_len);
void vmx_delivery_done(struct cpu *c);

/* Basic exit reasons (SDM Appendix C). */
enum vmx_exit_reason {
    EXIT_REASON_EXCEPTION_NMI = 0, EXIT_REASON_EXTERNAL_INTERRUPT = 1,
    EXIT_REASON_TRIPLE_FAULT = 2, EXIT_REASON_INIT = 3, EXIT_REASON_SIPI = 4,
    EXIT_REASON_IO_SMI = 5, EXIT_REASON_OTHER_SMI = 6, EXIT_REASON_INTERRUPT_WINDOW = 7,
    EXIT_REASON_NMI_WINDOW = 8, EXIT_REASON_TASK_SWITCH = 9, EXIT_REASON_CPUID = 10,
    EXIT_REASON_GETSEC = 11, EXIT_REASON_HLT = 12, EXIT_REASON_INVD = 13,
    EXIT_REASON_INVLPG = 14, EXIT_REASON_RDPMC = 15, EXIT_REASON_RDTSC = 16,
    EXIT_REASON_RSM = 17, EXIT_REASON_VMCALL = 18, EXIT_REASON_VMCLEAR = 19,
    EXIT_REASON_VMLAUNCH = 20, EXIT_REASON_VMPTRLD = 21, EXIT_REASON_VMPTRST = 22,
    EXIT_REASON_VMREAD = 23, EXIT_REASON_VMRESUME = 24, EXIT_REASON_VMWRITE = 25,
    EXIT_REASON_VMXOFF = 26, EXIT_REASON_VMXON = 27, EXIT_REASON_CR_ACCESS = 28,
    EXIT_REASON_DR_ACCESS = 29, EXIT_REASON_IO = 30, EXIT_REASON_RDMSR = 31,
    EXIT_REASON_WRMSR = 32, EXIT_REASON_INVALID_GUEST_STATE = 33,
    EXIT_REASON_MSR_LOADING = 34, EXIT_REASON_MWAIT = 36, EXIT_REASON_MTF = 37,
    EXIT_REASON_MONITOR = 39, EXIT_REASON_PAUSE = 40, EXIT_REASON_MACHINE_CHECK = 41,
    EXIT_REASON_TPR_BELOW_THRESHOLD = 43, EXIT_REASON_APIC_ACCESS = 44,
    EXIT_REASON_VIRTUALIZED_EOI = 45, EXIT_REASON_GDTR_IDTR = 46, EXIT_REASON_LDTR_TR = 47,
    EXIT_REASON_EPT_VIOLATION = 48, EXIT_REASON_EPT_MISCONFIG = 49,
    EXIT_REASON_INVEPT = 50, EXIT_REASON_RDTSCP = 51, EXIT_REASON_PREEMPTION_TIMER = 52,
    EXIT_REASON_INVVPID = 53, EXIT_REASON_WBINVD = 54, EXIT_REASON_XSETBV = 55,
    EXIT_REASON_APIC_WRITE = 56, EXIT_REASON_RDRAND = 57, EXIT_REASON_INVPCID = 58,
    EXIT_REASON_VMFUNC = 59, EXIT_REASON_ENCLS = 60, EXIT_REASON_RDSEED = 61,
    EXIT_REASON_PML_FULL = 62, EXIT_REASON_XSAVES = 63, EXIT_REASON_XRSTORS = 64,
};
#define EXIT_REASON_ENTRY_FAILURE BIT(31)
#define EXIT_REASON_ENCLAVE_INTERRUPTION BIT(27) /* the exit came from inside an enclave */

#endif

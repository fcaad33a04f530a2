/* The running L2 of a guest hypervisor, whichever architecture L1 uses (VMX non-root
 * operation or SVM guest mode): the engine asks here, and each question goes to the one
 * that runs L2. Shared by both: the instruction at RIP decoded again for exit
 * information (exits are rare enough for that; the hot path carries nothing). */
#ifndef NESTOR_CPU_NESTED_H
#define NESTOR_CPU_NESTED_H

#include "cpu/exec.h"

static inline bool cpu_in_l2(const struct cpu *c) { return c->vmx_non_root | c->svm_guest; }

/* The interception point (cpu_intercept): true when VMX/SVM handled the event itself. */
bool nested_intercept(struct cpu *c, struct cpu_event *ev);
/* Instruction-boundary work while L2 runs (pending exits, windows, virtual interrupts). */
void nested_boundary(struct cpu *c);
/* Is an external interrupt blocked by RFLAGS.IF (the L1's controls may say otherwise)? */
bool nested_intr_masked_by_if(const struct cpu *c);
/* Would something of the nested state wake a halted L2 (timer, virtual interrupt)? */
bool nested_wakeup(const struct cpu *c);
/* L2's guest-physical address through EPT or nested paging (may exit), and the form
 * that never exits. Outside L2, gpa itself. */
u64 nested_translate(struct cpu *c, u64 gpa, unsigned access, u64 linear, bool table);
bool nested_peek(struct cpu *c, u64 gpa, unsigned access, u64 *hpa);
/* The event whose delivery is in progress (for the exit information of an exit that cuts
 * it short), and its end. len: the length of a software interrupt or exception. */
void nested_note_delivery(struct cpu *c, u8 vector, int type, bool has_error, u32 error,
                          u32 len);
void nested_delivery_done(struct cpu *c);

/* Physical memory access for a guest hypervisor's structures (VMCS regions, VMCBs, the
 * host-save area, bitmaps, MSR areas): RAM only; false when the address is not RAM. */
bool nested_phys_read(struct cpu *c, u64 pa, void *buf, size_t len);
bool nested_phys_write(struct cpu *c, u64 pa, const void *buf, size_t len);

/* The instruction at RIP, decoded as the engine decodes in the current mode. */
struct nested_decoded {
    ZydisDecodedInstruction d;
    ZydisDecodedOperand op[ZYDIS_MAX_OPERAND_COUNT];
    bool ok;
};
void nested_decode_at_rip(struct cpu *c, struct nested_decoded *out);
/* The general register number (0-15) of a Zydis register of any width, or -1. */
int nested_gpr_number(ZydisRegister r);

/* The I/O instruction at RIP as both architectures' exit information describes it:
 * string (INS/OUTS) with or without REP, an immediate port, its length and address size,
 * and the segment of its memory operand (OUTS: DS or the override; INS: ES). */
struct nested_io_insn {
    bool string, rep, imm;
    unsigned length, address_width;
    int seg;
};
void nested_io_insn(struct cpu *c, bool out, struct nested_io_insn *io);

#endif

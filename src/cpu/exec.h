/* Engine-internal interface of src/cpu/: what instruction handlers, exception delivery
 * and the memory path share. Nothing outside src/cpu/ includes this.
 *
 * Execution model. Instructions are decoded (Zydis) into compact struct insn records,
 * a straight line of them per block, each with its handler (chosen by mnemonic, or a
 * variant specialised for its operand form) and precomputed operand descriptors. The
 * loop calls the handlers one after the other; a handler reads operands, computes, and
 * writes results. After each one the loop tests one word, in->exits (EXIT_*): a handler
 * that branches, delivers an event, changes what the block was decoded for (mode, CPL,
 * SS, TF, breakpoints), writes to decoded code or flushes the TLB sets a bit there, and
 * the loop leaves the block. Any fault (cpu_fault) longjmps back to the loop, which
 * restores the general registers, RIP and RFLAGS saved at the start of the instruction
 * and delivers the exception: handlers never need to undo anything they did to GPRs/RIP/
 * RFLAGS. Memory writes and segment/control register loads must do all their checks
 * before changing state (vmem_write checks every page of an access before storing).
 *
 * RIP: before the handler runs, c->rip still points at the instruction; i->next_rip is
 * the address of the next one. The loop sets c->rip = i->next_rip after a handler returns
 * unless the handler set EXIT_RIP_WRITTEN (branches call cpu_branch()). */
#ifndef NESTOR_CPU_EXEC_H
#define NESTOR_CPU_EXEC_H

#include <setjmp.h>
#include <stdio.h>
#include <Zydis/Zydis.h>

#include "cpu/cpu.h"
#include "cpu/paging.h"

/* ---- decoded instruction ---- */
/* Operand descriptors precomputed at decode time so the common operand kinds (GPR,
 * immediate, memory) are read and written without going back to Zydis' structures. */
enum { OPD_OTHER, OPD_GPR, OPD_IMM, OPD_MEM };
#define OPD_BASE_NONE (-1)
#define OPD_BASE_RIP 16
struct opd {
    u8 kind;
    u8 reg;        /* OPD_GPR: register index */
    u8 seg;        /* OPD_MEM: segment after overrides */
    u8 shift;      /* OPD_MEM: log2(scale) */
    s8 base;       /* OPD_MEM: base GPR, OPD_BASE_RIP or OPD_BASE_NONE */
    s8 index;      /* OPD_MEM: index GPR or OPD_BASE_NONE */
    u8 bytes;      /* operand size (a GPR's mask and write rule come from it); modulo 256:
                      FXSAVE's 512-byte area reads 0, its handler knows its own length */
    u64 val;       /* OPD_IMM: value; OPD_MEM: displacement */
};
/* size_mask() of an operand size, and the bits of a GPR a write of that size keeps
 * (8/16-bit writes merge, 32-bit writes zero-extend): tables, so an operand descriptor
 * stays 16 bytes and two of them share a cache line with the instruction's header. */
extern u64 opd_mask[256], opd_keep[256];

/* The parts of Zydis' decoded instruction and operands that handlers use, under Zydis'
 * own member names: a cached instruction keeps these instead of Zydis' ~730 bytes. */
struct insn_info {
    ZydisInstructionAttributes attributes;
    u16 mnemonic;          /* ZydisMnemonic */
    u8 length, operand_count_visible, opcode, opcode_map, operand_width, address_width;
    struct { u8 branch_type; } meta;
    struct { struct insn_modrm { u8 mod, reg, rm; } modrm; } raw;
};
struct insn_operand {
    u8 type;               /* ZydisOperandType */
    u16 size;              /* bits */
    struct { u16 value; } reg;                 /* ZydisRegister */
    struct { u16 segment; } mem;               /* ZydisRegister after overrides */
    struct { u16 segment; u32 offset; } ptr;   /* far pointer immediate */
    struct { union { u64 u; s64 s; } value; } imm;
};

struct insn;
typedef void (*insn_fn)(struct cpu *c, const struct insn *i);

/* Visible operands an implemented instruction has at most (the legacy and BMI forms;
 * Zydis' limit of 5 is for AVX forms nestor does not implement). */
#define INSN_MAX_OPERANDS 3

/* What a fault in an instruction has to undo, so what the loop saves before it. */
enum {
    SNAP_NONE,   /* it cannot fault: nothing */
    SNAP_MARK,   /* it changes nothing before its last possible fault: nothing to undo,
                    the loop only notes that (in->restore_none) */
    SNAP_LIGHT,  /* RIP, RFLAGS and RSP */
    SNAP_FULL,   /* every GPR too */
};

struct insn {
    /* what the block loop and the common operands touch first, in one cache line */
    insn_fn fn;        /* handler (an #UD reporter for unimplemented mnemonics) */
    u64 next_rip;      /* rip + length, truncated to the code size */
    u64 amask;         /* address-size mask */
    u8 osize;          /* operand size in bytes (d.operand_width / 8) */
    u8 asize;          /* address size in bytes */
    bool rep, repne, lock;
    u8 snap;           /* what the loop saves before it runs (SNAP_*, exec.c) */
    u8 cc;             /* Jcc/SETcc/CMOVcc: the condition, the opcode's low nibble */
    u8 br_prefix;      /* branch instructions in its block up to and including it */
    struct opd opd[INSN_MAX_OPERANDS];
    struct insn_info d;
    struct insn_operand op[INSN_MAX_OPERANDS];
};
/* Fills i->d, i->op[], i->opd[], sizes and prefixes from Zydis' decoding (operand.c);
 * fn, snap and next_rip are the caller's. Operands beyond INSN_MAX_OPERANDS are not
 * kept: the caller makes such an instruction #UD as unimplemented. */
void insn_from_zydis(struct insn *i, const ZydisDecodedInstruction *d, const ZydisDecodedOperand *op);

/* ---- lazy arithmetic flags ----
 * Most arithmetic results' flags are overwritten before anything reads them, so the
 * common ALU instructions record their operands and result instead of computing
 * CF/PF/AF/ZF/SF/OF. While op != LZ_NONE the arithmetic bits of c->rflags are stale;
 * cpu_flags() computes and stores them, and every reader of those bits goes through it
 * (or cpu_flags_peek / cpu_cf). Outside the engine (cpu_run returned, an intercept is
 * being handled) c->rflags is always exact. A lazy record is the last thing an
 * instruction does, after its last possible fault, so a fault never leaves one from the
 * faulting instruction; the snapshot keeps op so that a rollback restores the record
 * together with the stale bits it goes with. */
enum { LZ_NONE, LZ_ADD /* and ADC */, LZ_SUB /* and SBB, CMP */, LZ_LOGIC, LZ_INC, LZ_DEC };
struct lazy_flags {
    u64 a, b, res;  /* operands and result, masked to the size */
    u8 op;          /* LZ_* */
    u8 bytes;       /* operand size */
    u8 cf;          /* LZ_INC/LZ_DEC: the CF they preserve */
};

/* ---- engine-private per-vCPU state ---- */
enum {
    EXIT_RIP_WRITTEN = 1u << 0,     /* the instruction set RIP itself (branch, REP restart) */
    EXIT_RF_WRITTEN = 1u << 1,      /* it set RFLAGS.RF itself (IRET) */
    EXIT_EVENT_DELIVERED = 1u << 2, /* it delivered an event (INT n): no single-step trap */
    EXIT_CHECK_EVENTS = 1u << 3,    /* interrupts/NMI may have become deliverable: look now */
    EXIT_STOP = 1u << 4,            /* the machine asked the vCPU to stop */
    EXIT_BLOCK_END = 1u << 5,       /* state a decoded block depends on changed (SS, mode,
                                       CPL, TF, breakpoints): leave the block */
    EXIT_TF_AT_END = 1u << 6,       /* a single-step trap follows this instruction if TF is
                                       1 at its end, not at its start (SYSCALL, SYSRET) */
};
/* DR6.BS: the single-step bit of a debug trap */
#define DR6_BS BIT(14)
struct block_cache;
struct block;
struct cpu_internal {
    jmp_buf fault_jmp;
    /* saved at instruction start, restored on fault */
    u64 saved_gpr[16], saved_rip, saved_rsp, saved_rflags;
    u8 saved_lz_op;     /* lz.op at instruction start */
    bool snapshot_full; /* saved_gpr holds every GPR (else only saved_rsp) */
    bool restore_none;  /* the instruction running changes nothing before it may fault
                           (SNAP_MARK): a fault restores nothing, saved_* are older */
    struct lazy_flags lz;
    /* Things an instruction did that the loop must act on after it (EXIT_*): one word,
     * so the block loop tests them all with one compare, and always written whole, so
     * that test never waits on a partial store. */
    u32 exits;
    /* exception delivery in progress (for double/triple fault), -1 if none */
    int delivering;
    /* debug: set by handlers/memory path when a data breakpoint matched (DR6 B0..B3) */
    u32 pending_db_bits;
    ZydisDecoder dec[7][3]; /* [cpu_mode][stack width] */
    struct block_cache *blocks;  /* decoded basic blocks (exec.c) */
    struct block *last_block;    /* the block that just ran to its end, or NULL */
    struct paging_ctx pg;   /* paging parameters derived from CR0/CR3/CR4/EFER */
    bool large_pages_cached;/* a TLB entry came from a large page (INVLPG must flush all) */
    bool dr_data_active;    /* DR7 enables a data breakpoint: memory accesses check it */
    bool dr_exec_active;    /* DR7 enables an instruction breakpoint */
    /* Data breakpoints hit by a MOV SS / POP SS (DR6 B0-B3): held until the boundary
     * after the next instruction, or folded into a #DB delivered before then (debug.c) */
    u32 held_db_bits;
    /* The instruction right after a forced-emulation prefix (insn_system.c) starts at
     * this RIP with this icount: a second prefix there is an ordinary #UD */
    u64 fep_rip, fep_icount;
    u64 run_end;            /* icount at which the loop stops: budget_end or pmu_end */
    /* exception raised by cpu_fault, delivered by the loop */
    u8 exc_vector;
    bool exc_has_error;
    u32 exc_error;
    u64 exc_cr2;
    const struct cpuid_fastbits *fb;
    FILE *trace;
    bool trace_insns, trace_events;
    /* block cache statistics (-stats) */
    u64 blocks_decoded, block_flushes;
    u64 budget_end;         /* icount at which cpu_run() returns */
    u64 pmu_end;            /* icount at which the PMU wants a look (~0: never) */
    /* Retired-event counts the PMU derives its counters from (pmu.h): branch
     * instructions of the blocks left so far; executions of REP string instructions
     * that stopped to be resumed (icount counts each, the instruction retires once);
     * hardware events delivered through the IDT (exceptions, NMIs, interrupts); the block
     * running and icount at its start (NULL between instructions). */
    u64 branches, rep_restarts, events_delivered;
    const struct block *blk;
    u64 blk_icount0;
    /* The interrupt shadow in effect before the instruction running (VMLAUNCH checks
     * it; a VM exit caused by an instruction saves it) */
    u8 shadow_before;
    /* EPT: the linear address whose walk is running (exit information), and whether
     * the walk is a copy's that must not exit */
    u64 run_faults_left; /* faults cpu_run() may still deliver before it returns */
    u64 walk_linear;
    bool walk_no_exit;
    /* The last debug exception's DR6 bits and DR6 before it (debug_set_dr6): a #DB that
     * exits to L1 leaves DR6 alone and reports them as its qualification (SDM 28.1) */
    u64 dr6_before_db;
    u32 db_qual;
};

/* One-time table setup of the operand layer (register classes). */
void operand_init(void);
/* Decoders, block cache and handler table of a vCPU (exec.c). */
int exec_init(struct cpu *c);
void exec_destroy(struct cpu *c);
/* Sets up a Zydis decoder the way the engine decodes for a CPU of this vendor (exec.c). */
void exec_decoder_init(ZydisDecoder *dec, ZydisMachineMode mode, ZydisStackWidth width,
                       enum cpuid_vendor vendor);
/* The handler the engine runs for an instruction Zydis decoded as d, or NULL when it
 * does not implement it (the instruction then raises #UD through cpu_unimplemented).
 * Decode time only; tests/unit/test_opcode_audit.c checks it against the CPU model. */
insn_fn exec_handler(const ZydisDecodedInstruction *d);
/* Vectors with an error code among the exceptions (SDM Vol. 3A, Table 6-1). */
bool exc_has_error_code(int vector);
/* Exception class for double-fault escalation: 0 benign, 1 contributory, 2 page fault. */
int exc_class(int vector);
/* Sets DR6 for the given trap bits (B0-B3, BS, BD) and raises #DB (debug.c). */
_Noreturn void debug_raise_trap(struct cpu *c, u32 dr6_bits);
/* Recomputes in->dr_exec_active / dr_data_active from DR7 (debug.c). */
void debug_update(struct cpu *c);
/* Updates DR6 for a debug exception with the given bits (B0-B3 replaced, BD/BS/BT set);
 * the caller raises the #DB, whose delivery clears DR7.GD (debug.c). */
void debug_set_dr6(struct cpu *c, u32 dr6_bits);
/* A #DB exception (not INT 1) was delivered: debug traps held back by MOV SS / POP SS
 * are reported in its DR6 instead of later, and DR7.GD is cleared (debug.c). */
void debug_db_delivered(struct cpu *c);
/* The mask RIP wraps with in the current mode. */
static inline u64 cpu_rip_mask(const struct cpu *c)
{
    switch (c->mode) {
    case MODE_LONG64: return ~0ull;
    case MODE_PROT32: case MODE_COMPAT32: return 0xffffffffull;
    default: return 0xffffull;
    }
}
/* I/O breakpoints (DR7 RW = 10 with CR4.DE): adds matches to in->pending_db_bits. */
void debug_check_io(struct cpu *c, u16 port, unsigned size);

/* ---- the handler table ---- */
/* Each instruction group registers its handlers by mnemonic. */
void insn_register_alu(insn_fn *t);      /* insn_alu.c: arithmetic, logic, shifts, MOV, LEA, ... */
void insn_register_bits(insn_fn *t);     /* insn_bits.c: BT*, BSF/BSR, POPCNT, LZCNT, TZCNT, BMI1/2, MOVBE, SETcc, CMOVcc */
void insn_register_string(insn_fn *t);   /* insn_string.c: MOVS/CMPS/SCAS/LODS/STOS/INS/OUTS with REP */
void insn_register_control(insn_fn *t);  /* insn_control.c: JMP/Jcc/CALL/RET/LOOP/JCXZ, far forms, INT/IRET, ENTER/LEAVE */
void insn_register_system(insn_fn *t);   /* insn_system.c: MOV CR/DR, descriptor tables, MSRs, CPUID, HLT, SYSCALL, ... */
void insn_register_x87(insn_fn *t);      /* insn_x87.c */
void insn_register_sse(insn_fn *t);      /* insn_sse.c: MMX, SSE, SSE2, FXSAVE/XSAVE family */
/* A handler specialised for this instruction's operand form (insn_alu.c), or NULL. */
insn_fn insn_alu_specialise(const struct insn *i);
/* The string forms of MOVSD/CMPSD (A5, A7), which share their mnemonic with SSE2 scalar
 * MOVSD/CMPSD; insn_string.c registers these and forwards the SSE2 forms (other opcode
 * map) to the handler registered before it. A later registrant must do the reverse. */
void insn_string_movsd(struct cpu *c, const struct insn *i);
void insn_string_cmpsd(struct cpu *c, const struct insn *i);

/* Retired instructions and branch instructions so far, and exceptions, NMIs and
 * interrupts delivered (pmu.c); with_current: the caller runs inside an instruction,
 * count it as retired too. Branches are tracked while a counter is enabled (and in
 * single-instruction mode). */
void exec_retired(const struct cpu *c, bool with_current, u64 *insns, u64 *branches,
                  u64 *events);
/* Inside an instruction? Known while branches are tracked (else false). */
bool exec_in_insn(const struct cpu *c);
/* Stop the loop when icount reaches this (0: no stop) and call pmu_poll(). */
void exec_set_pmu_deadline(struct cpu *c, u64 icount);
/* Leave the running block after this instruction. */
static inline void exec_block_end(struct cpu *c) { c->in->exits |= EXIT_BLOCK_END; }

/* VMX: the vCPU now runs another context (VM entry loaded L2's state): the snapshot a
 * fault restores becomes the current state, RIP included. */
void exec_enter_context(struct cpu *c);
/* Delivers external interrupt `vector` through the IDT at an instruction boundary, as
 * the loop delivers one it takes (VMX virtual-interrupt delivery). */
void exec_deliver_interrupt(struct cpu *c, u8 vector);
/* VMX: a VM exit replaced the whole state: leave the instruction or event being
 * processed, restore nothing, and continue the loop in L1. */
_Noreturn void exec_context_switched(struct cpu *c);
/* RDMSR/WRMSR while L2 runs: the exit decision, then x2APIC virtualization, which may
 * answer the access itself (true: *value read or written). */
static inline bool cpu_msr_event(struct cpu *c, u32 index, bool write, u64 *value)
{
    if (likely(!(c->vmx_non_root | c->svm_guest)))
        return false;
    struct cpu_event ev = { .kind = EV_INSN,
                            .u.insn = { write ? INSN_EV_WRMSR : INSN_EV_RDMSR, index, *value } };
    if (cpu_intercept(c, &ev) != INTERCEPT_HANDLED)
        return false;
    *value = ev.u.insn.value;
    return true;
}
/* Offers an instruction that may exit to L1 to the interception point (EV_INSN), while
 * L2 runs only. */
static inline void cpu_insn_event(struct cpu *c, enum cpu_insn_event which, u64 arg)
{
    if (unlikely(c->vmx_non_root | c->svm_guest)) {
        struct cpu_event ev = { .kind = EV_INSN, .u.insn = { which, arg, 0 } };
        cpu_intercept(c, &ev);
    }
}

/* Makes the current register state the one a later fault in this instruction restores
 * (REP string instructions: progress of completed iterations survives a fault). */
void insn_commit(struct cpu *c);


/* ---- faults ---- */
_Noreturn void cpu_fault(struct cpu *c, int vector, u32 error_code);  /* with error code */
_Noreturn void cpu_fault_noerr(struct cpu *c, int vector);           /* without */
/* #PF: sets CR2 at delivery */
_Noreturn void cpu_page_fault(struct cpu *c, u64 linear, u32 pfec);
/* Guest used something nestor does not implement: reported once on stderr, #UD to guest. */
_Noreturn void cpu_unimplemented(struct cpu *c, const char *what);
/* Guest needs an architectural feature nestor does not support (hardware task switch,
 * virtual-8086 mode): the instruction is abandoned without effect and the machine stops
 * with a clear message (EV_UNSUPPORTED with stop set). */
_Noreturn void cpu_unsupported_stop(struct cpu *c, const char *what);

/* Delivers an event through the IDT in the current mode (interrupt/exception/software
 * interrupt). type: EVT_* below. Used by the loop, INT n/INT3/INTO/INT1 and IRET paths. */
enum { EVT_EXT_INTR, EVT_NMI, EVT_HW_EXC, EVT_SW_INT, EVT_PRIV_SW_EXC /* INT1 */, EVT_SW_EXC /* INT3, INTO */ };
void cpu_deliver(struct cpu *c, u8 vector, int type, bool has_error, u32 error, u64 return_rip);

/* ---- registers ---- */
static inline u64 size_mask(unsigned bytes) { return bytes >= 8 ? ~0ull : (1ull << (bytes * 8)) - 1; }
u64 gpr_read(const struct cpu *c, int reg, unsigned bytes);          /* low bytes of a GPR */
void gpr_write(struct cpu *c, int reg, unsigned bytes, u64 v);       /* 4-byte writes zero-extend */
u64 gpr_read8h(const struct cpu *c, int reg);                        /* AH/CH/DH/BH: reg 0..3 */

/* Sets the CPL (the performance counters filter by it: pmu.h). */
void cpu_set_cpl(struct cpu *c, u8 cpl);

/* Changes RFLAGS with the architectural rules for which bits are writable at this CPL and
 * IOPL (POPF/IRET semantics differ: pass the mask of bits the instruction may change). */
void cpu_set_rflags(struct cpu *c, u64 value, u64 changeable);

/* Flag computations for add/sub/logic results of `bytes` size (SDM semantics). Without
 * branches: carries and overflows are read from the operands' and result's top bits
 * (which also makes them independent of the carry-in), since a data-dependent branch
 * per flag mispredicts on real data. Operands and result already masked to the size. */
static inline bool parity8(u8 v) { return !__builtin_parity(v); }
static inline u64 flags_szp(u64 res, unsigned bytes)         /* SF, ZF, PF of res */
{
    res &= size_mask(bytes);
    return (u64)(res == 0) << 6 | ((res >> (bytes * 8 - 1)) & 1) << 7 | (u64)parity8((u8)res) << 2;
}
static inline u64 carry_add(u64 a, u64 b, u64 res, unsigned bytes)  /* CF of a + b (+ cin) */
{
    return (((a & b) | ((a ^ b) & ~res)) >> (bytes * 8 - 1)) & 1;
}
static inline u64 borrow_sub(u64 a, u64 b, u64 res, unsigned bytes) /* CF of a - b (- bin) */
{
    return (((~a & b) | (~(a ^ b) & res)) >> (bytes * 8 - 1)) & 1;
}
static inline u64 flags_add_res(u64 a, u64 b, u64 res, unsigned bytes)
{
    u64 ovf = (a ^ res) & (b ^ res);
    return carry_add(a, b, res, bytes) | ((ovf >> (bytes * 8 - 1)) & 1) << 11 |
           ((a ^ b ^ res) & FL_AF) | flags_szp(res, bytes);
}
static inline u64 flags_sub_res(u64 a, u64 b, u64 res, unsigned bytes)
{
    u64 ovf = (a ^ b) & (a ^ res);
    return borrow_sub(a, b, res, bytes) | ((ovf >> (bytes * 8 - 1)) & 1) << 11 |
           ((a ^ b ^ res) & FL_AF) | flags_szp(res, bytes);
}
static inline u64 flags_add(u64 a, u64 b, u64 cin, unsigned bytes) /* a + b + cin */
{
    u64 m = size_mask(bytes);
    a &= m; b &= m;
    return flags_add_res(a, b, (a + b + cin) & m, bytes);
}
static inline u64 flags_sub(u64 a, u64 b, u64 bin, unsigned bytes) /* a - b - bin */
{
    u64 m = size_mask(bytes);
    a &= m; b &= m;
    return flags_sub_res(a, b, (a - b - bin) & m, bytes);
}
static inline u64 flags_logic(u64 res, unsigned bytes) { return flags_szp(res, bytes); } /* CF=OF=AF=0 */

/* The arithmetic flags a lazy record stands for. */
static inline u64 lazy_arith(const struct lazy_flags *lz)
{
    switch (lz->op) {
    case LZ_ADD: return flags_add_res(lz->a, lz->b, lz->res, lz->bytes);
    case LZ_SUB: return flags_sub_res(lz->a, lz->b, lz->res, lz->bytes);
    case LZ_INC: return (flags_add_res(lz->a, 1, lz->res, lz->bytes) & ~FL_CF) | lz->cf;
    case LZ_DEC: return (flags_sub_res(lz->a, 1, lz->res, lz->bytes) & ~FL_CF) | lz->cf;
    default: return flags_szp(lz->res, lz->bytes);
    }
}
/* RFLAGS with exact arithmetic flags, computed but not stored. */
static inline u64 cpu_flags_peek(const struct cpu *c)
{
    const struct lazy_flags *lz = &c->in->lz;
    return lz->op ? (c->rflags & ~FL_ARITH) | lazy_arith(lz) : c->rflags;
}
/* RFLAGS with exact arithmetic flags, stored there (the lazy record is consumed). */
static inline u64 cpu_flags(struct cpu *c)
{
    struct lazy_flags *lz = &c->in->lz;
    if (lz->op) {
        c->rflags = (c->rflags & ~FL_ARITH) | lazy_arith(lz);
        lz->op = LZ_NONE;
    }
    return c->rflags;
}
/* CF alone (ADC, SBB, RCL, INC/DEC's preserved CF), without computing the rest. */
static inline u64 cpu_cf(const struct cpu *c)
{
    const struct lazy_flags *lz = &c->in->lz;
    switch (lz->op) {
    case LZ_NONE: return c->rflags & FL_CF;
    case LZ_ADD: return carry_add(lz->a, lz->b, lz->res, lz->bytes);
    case LZ_SUB: return borrow_sub(lz->a, lz->b, lz->res, lz->bytes);
    case LZ_INC: case LZ_DEC: return lz->cf;
    default: return 0;
    }
}
/* Records an instruction's arithmetic flags lazily: the last thing it does. */
static inline void flags_lazy(struct cpu *c, u8 op, u64 a, u64 b, u64 res, unsigned bytes)
{
    struct lazy_flags *lz = &c->in->lz;
    lz->a = a;
    lz->b = b;
    lz->res = res;
    lz->bytes = (u8)bytes;
    lz->op = op;
}
/* Sets the arithmetic flags: the bits in `mask` become those of `value`. */
static inline void flags_set(struct cpu *c, u64 mask, u64 value)
{
    if ((mask & FL_ARITH) == FL_ARITH)
        c->in->lz.op = LZ_NONE; /* all of them replaced */
    else if (mask & FL_ARITH)
        cpu_flags(c);           /* some kept: make them exact first */
    c->rflags = (c->rflags & ~mask) | (value & mask);
}

/* ---- operands (decoded by Zydis) ---- */
/* Size of operand n in bytes (read from the instruction's first cache line; see
 * struct opd for operands over 255 bytes). */
static inline unsigned opr_bytes(const struct insn *i, int n) { return i->opd[n].bytes; }
/* Reads operand n (register of any class, memory, immediate), zero-extended.
 * Immediates come sign-extended to the operand size as the instruction defines. */
u64 opr_read_slow(struct cpu *c, const struct insn *i, int n);
/* Writes operand n. GPR writes follow x86 width rules; segment registers are loaded with
 * all checks (seg_load); control and debug registers go through cpu_write_cr/dr. */
void opr_write_slow(struct cpu *c, const struct insn *i, int n, u64 v);
/* For operands wider than 64 bits (x87 80-bit, XMM, m128, m512): copy size bytes. */
void opr_read_bytes(struct cpu *c, const struct insn *i, int n, void *buf, unsigned bytes);
void opr_write_bytes(struct cpu *c, const struct insn *i, int n, const void *buf, unsigned bytes);
/* Effective address (offset within segment, wrapped to the address size) of memory op n. */
static inline u64 opr_ea(struct cpu *c, const struct insn *i, int n)
{
    const struct opd *o = &i->opd[n];
    u64 ea = o->val;
    if (o->base >= 0)
        ea += o->base == OPD_BASE_RIP ? i->next_rip : c->gpr[o->base];
    if (o->index >= 0)
        ea += c->gpr[o->index] << o->shift;
    return ea & i->amask;
}
/* Segment of memory operand n (SEG_*), after override prefixes. */
static inline int opr_seg(const struct insn *i, int n) { return i->opd[n].seg; }
/* Segment of an implicit DS-relative address (string sources, XLAT, MASKMOV, MONITOR):
 * DS unless an override prefix names another (Zydis reports no override for the
 * prefixes 64-bit mode ignores). */
int insn_ds_segment(const struct insn *i);
static inline bool opr_is_mem(const struct insn *i, int n) { return i->op[n].type == ZYDIS_OPERAND_TYPE_MEMORY; }
static inline bool opr_is_reg(const struct insn *i, int n) { return i->op[n].type == ZYDIS_OPERAND_TYPE_REGISTER; }
static inline bool opr_is_imm(const struct insn *i, int n) { return i->opd[n].kind == OPD_IMM; }
/* Register operand n as a GPR index (R_*), or -1 if not a GPR; *hi8 set for AH..BH. */
int opr_gpr(const struct insn *i, int n, bool *hi8);
/* A memory operand's segment register as SEG_*: DS when Zydis names none. */
int zseg(ZydisRegister s);
/* Zydis register -> index within its class (XMM3 -> 3, ST2 -> 2, CR4 -> 4, ES -> SEG_ES). */
int zreg_index(ZydisRegister r);


/* ---- virtual memory (segmentation + paging) ---- */
/* Access through a segment: limit/type/privilege checks (#GP/#SS), canonical checks in
 * 64-bit mode, alignment check (#AC), then paging (#PF). size 1..8 for scalars. */
u64 vmem_read_slow(struct cpu *c, int seg, u64 offset, unsigned size);
void vmem_write_slow(struct cpu *c, int seg, u64 offset, unsigned size, u64 value);
void vmem_read_bytes(struct cpu *c, int seg, u64 offset, void *buf, unsigned size);
void vmem_write_bytes(struct cpu *c, int seg, u64 offset, const void *buf, unsigned size);
/* For bulk string operations: the host address of [offset, offset + *len) through seg,
 * after every check an access of that range would make, with *len reduced to stay in
 * one page. NULL when the bulk path cannot be used (MMIO, #AC or data breakpoints
 * armed): the caller then goes element by element. Faults like an access would. */
u8 *vmem_span(struct cpu *c, int seg, u64 offset, u64 *len, bool write);
/* Checks that a write of size bytes would succeed (segment + paging) without writing;
 * for instructions that must not partially commit (e.g. read-modify-write, far stores). */
void vmem_check_write(struct cpu *c, int seg, u64 offset, unsigned size);
/* Linear-address access (after segmentation). access: ACC_* flags; ACC_USER is added
 * automatically at CPL 3 unless ACC_IMPLICIT is given. */
u64 lin_read(struct cpu *c, u64 linear, unsigned size, unsigned access);
void lin_write(struct cpu *c, u64 linear, unsigned size, u64 value, unsigned access);
void lin_read_bytes(struct cpu *c, u64 linear, void *buf, unsigned size, unsigned access);
void lin_write_bytes(struct cpu *c, u64 linear, const void *buf, unsigned size, unsigned access);
/* Reads size bytes at a linear address as a data read at the current CPL would, without
 * faulting and without setting accessed/dirty bits: false if some byte does not
 * translate or is not RAM (vmem.c). For probes, not for instruction semantics. */
bool lin_peek(struct cpu *c, u64 linear, void *buf, unsigned size);
/* The TLB entry for fetching code at a linear address (fetch permission checked, faults
 * raised). Its page_gen is NULL if the code is not in RAM. */
const struct tlb_entry *lin_code_entry(struct cpu *c, u64 linear);
/* Translate a linear address (fault -> cpu_page_fault). Returns the guest physical address. */
u64 lin_translate(struct cpu *c, u64 linear, unsigned access);
/* Physical access: RAM directly, anything else through the MMIO intercept. */
u64 phys_read(struct cpu *c, u64 gpa, unsigned size);
void phys_write(struct cpu *c, u64 gpa, unsigned size, u64 value);
/* Segment base + offset with the checks vmem_* do, returning the linear address. */
u64 seg_linear(struct cpu *c, int seg, u64 offset, unsigned size, bool write);
/* A paging-structure entry at a physical address (struct paging_ops for a struct cpu):
 * RAM only (-1 otherwise); an update of one holding decoded code invalidates it. */
int phys_entry_read(void *opaque, u64 pa, unsigned size, u64 *val);
int phys_entry_cmpxchg(void *opaque, u64 pa, unsigned size, u64 old, u64 newv);
/* Recomputes paging parameters and flushes the TLB (after CR0/CR3/CR4/EFER changes). */
void mmu_update(struct cpu *c);
/* The paging parameters alone, the TLB left as it is (VMX transitions decide). */
void mmu_params_update(struct cpu *c);

/* ---- segmentation and system state (seg.c, insn_system.c) ---- */
/* Loads a data/stack segment register with full protected-mode checks (#GP/#SS/#NP with
 * selector error codes); real/V86 mode: base = sel << 4. */
void seg_load(struct cpu *c, int seg, u16 sel);
/* Reads the 8-byte descriptor for sel from the GDT/LDT (#GP(sel) if beyond the limit). */
u64 seg_read_descriptor(struct cpu *c, u16 sel, bool *ok);
/* Decodes an 8-byte descriptor into a struct seg (base/limit/attr). */
void seg_from_descriptor(struct seg *s, u16 sel, u64 desc);
/* Far transfers (JMP/CALL far, RET far, IRET) live in insn_control.c / seg.c. */
/* Far transfers (seg.c), called by the handlers of insn_control.c. osize: operand size in
 * bytes. ret_rip: the return address a far CALL pushes. */
void far_jmp_call(struct cpu *c, bool call, u16 sel, u64 offset, unsigned osize, u64 ret_rip);
void far_ret(struct cpu *c, unsigned osize, u16 release);
void far_iret(struct cpu *c, unsigned osize);
/* What far transfers and event delivery (except.c) share. Error codes of selector faults
 * are sel & 0xfffc, with `ext` (EXT bit, 0 or 1) for events the program did not cause. */
/* Reads the descriptor of sel (8 bytes, or 16 for long-mode system descriptors) and its
 * linear address; false if sel is beyond the GDT/LDT limit or names an unusable LDT. */
bool seg_fetch_descriptor(struct cpu *c, u16 sel, unsigned bytes, u64 desc[], u64 *addr);
/* Sets the accessed bit of a code/data descriptor in memory (implicit supervisor write). */
void seg_mark_accessed(struct cpu *c, u64 addr, u64 *desc);
/* Checks sel as the code segment an interrupt/trap gate points to: null, limit, type,
 * DPL > CPL (#GP(sel|ext)), long mode needs a 64-bit segment, present (#NP(sel|ext)). */
void seg_gate_target(struct cpu *c, u16 sel, u32 ext, struct seg *cs, u64 *addr, u64 *desc);
/* Inner stack of privilege level dpl from the 16/32-bit TSS, with its SS checked as a
 * privilege change requires (#TS/#SS with ext). */
void seg_inner_stack(struct cpu *c, unsigned dpl, u32 ext, struct seg *ss, u64 *sp);
/* 64-bit TSS stack pointer: RSPn (ist == 0, n = dpl) or ISTn; #TS(TR|ext) beyond its limit. */
u64 tss64_stack(struct cpu *c, unsigned dpl, unsigned ist, u32 ext);
/* The hidden part of a null SS at privilege level cpl (64-bit mode). */
void seg_null_ss(struct seg *s, unsigned cpl);
/* A segment register loaded with a null selector: unusable. */
void seg_load_null(struct cpu *c, int seg, u16 sel);
/* Is offset..offset+size-1 inside segment s (expand-up or expand-down)? */
bool seg_offset_ok(const struct seg *s, u64 offset, unsigned size);
/* Is a sign-extended from bit bits-1 (canonical for a bits-wide linear address)? */
static inline bool canonical_bits(u64 a, int bits)
{
    return (u64)((s64)(a << (64 - bits)) >> (64 - bits)) == a;
}
/* Is linear address a canonical for the current paging mode (48 bits, or 57 with
 * CR4.LA57)? This is the check of addresses about to be used: memory operands, RIP, RSP. */
static inline bool cpu_canonical(const struct cpu *c, u64 a)
{
    return canonical_bits(a, (c->cr4 & CR4_LA57) ? 57 : 48);
}
/* A stack frames are pushed onto before the registers are committed: the current stack
 * (stk_current) or an inner one being switched to. */
struct stack_ptr {
    struct seg ss;   /* the segment the accesses go through */
    u64 sp;          /* stack pointer; only the bits in mask change */
    u64 mask;        /* 0xffff, 0xffffffff, or ~0 in 64-bit mode */
    bool flat;       /* 64-bit: no segment checks, canonical checks */
    bool real;       /* real/V86 mode: the limit is all that is checked */
    unsigned access; /* ACC_IMPLICIT for an inner stack, else 0 */
    u32 err;         /* #SS error code for a limit/canonical violation */
};
void stk_current(struct cpu *c, struct stack_ptr *s);
void stk_push(struct cpu *c, struct stack_ptr *s, u64 v, unsigned bytes);
u64 stk_pop(struct cpu *c, struct stack_ptr *s, unsigned bytes);
void cpu_write_cr(struct cpu *c, int cr, u64 value);   /* MOV to CRn with all checks */
/* The CR4 bits the model allows to be set (cr.c). */
u64 cpu_cr4_allowed(const struct cpu *c);
u64 cpu_read_cr(struct cpu *c, int cr);
void cpu_write_dr(struct cpu *c, int dr, u64 value);
u64 cpu_read_dr(struct cpu *c, int dr);
/* Loads CRn (0, 2, 3, 4, 8) with the architectural validity checks, long-mode activation,
 * PDPTE loading and TLB flushes, but without the CPL check and the intercept (for LMSW,
 * CLTS, task switches); #GP(0) on an invalid value (cr.c). */
void cpu_load_cr(struct cpu *c, int cr, u64 value);
/* EFER: may value be written now (reserved bits, features, LME while paging)? And the
 * write itself (#GP(0) if invalid), with the flushes it needs (cr.c). */
bool cpu_efer_valid(const struct cpu *c, u64 value);
/* The EFER bits the model allows to be set (reserved bits are the rest). */
u64 cpu_efer_allowed(const struct cpu *c);
/* A vCPU halted in MWAIT: has the monitored page been written, or (with MWAIT's ECX[0])
 * a masked interrupt arrived? If so it runs again (insn_system.c). */
bool cpu_mwait_ends(struct cpu *c);
/* IA32_MISC_ENABLE at power-on (msr.c): fast strings, thermal control, and MONITOR/MWAIT
 * enabled where the model has them. */
u64 cpu_misc_enable_reset(const struct cpu *c);
void cpu_load_efer(struct cpu *c, u64 value);
/* MSR access with the engine's own MSRs; others go to the intercept. false = #GP. */
bool cpu_rdmsr(struct cpu *c, u32 index, u64 *value);
bool cpu_wrmsr(struct cpu *c, u32 index, u64 value);
/* I/O permission: CPL <= IOPL, else the TSS I/O bitmap (#GP(0) when denied). */
void cpu_check_io(struct cpu *c, u16 port, unsigned size);
/* Port I/O through the intercept. */
u32 cpu_io_in(struct cpu *c, u16 port, unsigned size);
void cpu_io_out(struct cpu *c, u16 port, unsigned size, u32 value);

/* Little-endian loads/stores of 1, 2, 4 or 8 bytes with one access of that width (a
 * variable-length memcpy into a u64 would store bytes and reload 8: a store-forwarding
 * stall on every guest memory access). */
static inline u64 load_le(const u8 *p, unsigned size)
{
    switch (size) {
    case 1: return *p;
    case 2: { u16 v; __builtin_memcpy(&v, p, 2); return v; }
    case 4: { u32 v; __builtin_memcpy(&v, p, 4); return v; }
    case 8: { u64 v; __builtin_memcpy(&v, p, 8); return v; }
    default: { u64 v = 0; __builtin_memcpy(&v, p, size > 8 ? 8 : size); return v; }
    }
}

static inline void store_le(u8 *p, unsigned size, u64 v)
{
    switch (size) {
    case 1: *p = (u8)v; break;
    case 2: { u16 t = (u16)v; __builtin_memcpy(p, &t, 2); break; }
    case 4: { u32 t = (u32)v; __builtin_memcpy(p, &t, 4); break; }
    case 8: __builtin_memcpy(p, &v, 8); break;
    default: __builtin_memcpy(p, &v, size > 8 ? 8 : size); break;
    }
}

/* The fast path of a data access: 64-bit mode, canonical in 48 bits, within one page, a
 * TLB hit on RAM, no alignment check or data breakpoint armed. Else NULL. */
static inline u8 *vmem_fast(struct cpu *c, int seg, u64 off, unsigned size, bool write)
{
    if (unlikely(c->mode != MODE_LONG64 || (c->rflags & FL_AC) || c->in->dr_data_active))
        return NULL;
    u64 lin = off + ((seg == SEG_FS || seg == SEG_GS) ? c->seg[seg].base : 0);
    /* 48-bit canonical is canonical under LA57 too; anything else takes the slow path */
    if (unlikely(!canonical_bits(lin, 48) || (lin & 0xfff) + size > 4096))
        return NULL;
    u64 vpn = lin >> 12;
    const struct tlb_entry *e = &c->tlb.e[c->cpl == 3][vpn & (TLB_SIZE - 1)];
    if ((write ? e->tag_write : e->tag_read) != (vpn | c->tlb.ctx) || !e->host)
        return NULL;
    return e->host + (lin & 0xfff);
}

static inline u64 vmem_read(struct cpu *c, int seg, u64 offset, unsigned size)
{
    const u8 *p = vmem_fast(c, seg, offset, size, false);
    if (likely(p != NULL))
        return load_le(p, size);
    return vmem_read_slow(c, seg, offset, size);
}

static inline void vmem_write(struct cpu *c, int seg, u64 offset, unsigned size, u64 value)
{
    u8 *p = vmem_fast(c, seg, offset, size, true);
    if (likely(p != NULL))
        store_le(p, size, value);
    else
        vmem_write_slow(c, seg, offset, size, value);
}

/* The kinds of operand descriptor, for handlers that know an operand's kind from
 * decode time (the specialised forms): a GPR write with x86's width rules (8/16-bit
 * writes merge, 32-bit ones zero-extend) and a memory read of the operand's size. */
static inline void opd_gpr_write(struct cpu *c, const struct opd *o, u64 v)
{
    c->gpr[o->reg] = (c->gpr[o->reg] & opd_keep[o->bytes]) | (v & opd_mask[o->bytes]);
}
static inline u64 opr_mem_read(struct cpu *c, const struct insn *i, int n)
{
    const struct opd *o = &i->opd[n];
    return vmem_read(c, o->seg, opr_ea(c, i, n), o->bytes);
}

/* Operand access: inline for GPRs, immediates and memory; everything else (segment,
 * control, debug, MMX, XMM, x87 registers, high-byte registers) in operand.c. */
static inline u64 opr_read(struct cpu *c, const struct insn *i, int n)
{
    const struct opd *o = &i->opd[n];
    switch (o->kind) {
    case OPD_GPR: return c->gpr[o->reg] & opd_mask[o->bytes];
    case OPD_IMM: return o->val;
    case OPD_MEM: return opr_mem_read(c, i, n);
    default: return opr_read_slow(c, i, n);
    }
}

static inline void opr_write(struct cpu *c, const struct insn *i, int n, u64 v)
{
    const struct opd *o = &i->opd[n];
    switch (o->kind) {
    case OPD_GPR: opd_gpr_write(c, o, v); break;
    case OPD_MEM: vmem_write(c, o->seg, opr_ea(c, i, n), o->bytes, v); break;
    default: opr_write_slow(c, i, n, v); break;
    }
}

/* The five flags conditions test. From a CMP/SUB/SBB or logic record (the usual
 * producers before a Jcc/SETcc/CMOVcc) they come straight from its operands and result,
 * without materialising RFLAGS. */
struct cond_flags {
    bool of, cf, zf, sf, pf;
};
static inline struct cond_flags cond_flags_of(const struct cpu *c)
{
    const struct lazy_flags *lz = &c->in->lz;
    if (lz->op == LZ_SUB || lz->op == LZ_LOGIC) {
        unsigned sh = lz->bytes * 8 - 1;
        bool sub = lz->op == LZ_SUB;
        return (struct cond_flags){
            .of = sub && ((((lz->a ^ lz->b) & (lz->a ^ lz->res)) >> sh) & 1),
            .cf = sub && borrow_sub(lz->a, lz->b, lz->res, lz->bytes),
            .zf = lz->res == 0,
            .sf = (lz->res >> sh) & 1,
            .pf = parity8((u8)lz->res),
        };
    }
    u64 f = cpu_flags_peek(c);
    return (struct cond_flags){ f & FL_OF, f & FL_CF, f & FL_ZF, f & FL_SF, f & FL_PF };
}
/* Condition codes 0..15 as in Jcc/SETcc/CMOVcc encodings (inline: every Jcc asks). */
static inline bool cond_eval(const struct cpu *c, unsigned cc)
{
    struct cond_flags f = cond_flags_of(c);
    bool r;
    switch (cc >> 1) {
    case 0: r = f.of; break;                    /* O */
    case 1: r = f.cf; break;                    /* B */
    case 2: r = f.zf; break;                    /* Z */
    case 3: r = f.cf || f.zf; break;            /* BE */
    case 4: r = f.sf; break;                    /* S */
    case 5: r = f.pf; break;                    /* P */
    case 6: r = f.sf != f.of; break;            /* L */
    default: r = f.zf || f.sf != f.of; break;   /* LE */
    }
    return (cc & 1) ? !r : r;
}

/* Mode predicates */
static inline bool cpu_is_long64(const struct cpu *c) { return c->mode == MODE_LONG64; }
static inline bool cpu_is_real(const struct cpu *c) { return c->mode == MODE_REAL; }
static inline bool cpu_is_v86(const struct cpu *c) { return c->mode == MODE_V86; }
static inline bool cpu_is_prot(const struct cpu *c) { return c->mode != MODE_REAL && c->mode != MODE_V86; }
static inline bool cpu_has(const struct cpu *c, enum cpuid_fast f) { return c->in->fb->has[f]; }

/* The processor's linear-address width: 57 bits when the model has LA57, else 48. */
static inline int cpu_linear_width(const struct cpu *c) { return cpu_has(c, CF_LA57) ? 57 : 48; }
/* Is a canonical in the processor's linear-address width, whatever CR4.LA57 says? The
 * check of addresses stored for later use rather than used now: the MSRs that hold
 * linear addresses, FS/GS bases written by WRFSBASE/WRGSBASE, the GDTR/IDTR bases of
 * LGDT/LIDT, the LDTR/TR bases of LLDT/LTR, and INVPCID's address (SDM Vol. 3A 4.1.1 on
 * processors with 5-level paging). */
static inline bool cpu_canonical_max(const struct cpu *c, u64 a)
{
    return canonical_bits(a, cpu_linear_width(c));
}

/* Branch target helper: sets RIP (checking CS limit / canonical form) and marks it written. */
static inline void cpu_branch(struct cpu *c, u64 target)
{
    if (cpu_is_long64(c)) {
        if (!cpu_canonical(c, target))
            cpu_fault(c, EXC_GP, 0);
    } else {
        target &= 0xffffffffull;
        if (target > c->seg[SEG_CS].limit)
            cpu_fault(c, EXC_GP, 0);
    }
    c->rip = target;
    c->in->exits |= EXIT_RIP_WRITTEN;
}

/* Stack address-size mask: 0xffff, 0xffffffff or all-ones. */
static inline u64 stack_mask(const struct cpu *c)
{
    if (cpu_is_long64(c))
        return ~0ull;
    return (c->seg[SEG_SS].attr & SEG_ATTR_DB) ? 0xffffffffull : 0xffffull;
}
/* Stack helpers using SS, the stack address size (SS.B / 64-bit) and operand size; RSP
 * changes only after the access succeeded. */
static inline void cpu_push(struct cpu *c, u64 v, unsigned bytes)
{
    u64 sm = stack_mask(c);
    u64 rsp = c->gpr[R_RSP];
    u64 nsp = (rsp - bytes) & sm;
    vmem_write(c, SEG_SS, nsp, bytes, v);
    c->gpr[R_RSP] = (rsp & ~sm) | nsp;
}
static inline u64 cpu_pop(struct cpu *c, unsigned bytes)
{
    u64 sm = stack_mask(c);
    u64 rsp = c->gpr[R_RSP];
    u64 v = vmem_read(c, SEG_SS, rsp & sm, bytes);
    c->gpr[R_RSP] = (rsp & ~sm) | ((rsp + bytes) & sm);
    return v;
}

/* x87/SSE helpers needed by the control path (device-not-available checks). */
void fpu_reset(struct cpu *c);   /* FNINIT state */
void fpu_power_on(struct cpu *c);/* power-on x87/SSE state */

/* ---- debug facilities ---- */
/* Called by the memory path for data breakpoints (DR7 RW=01/11) on each access. */
void debug_check_data(struct cpu *c, u64 linear, unsigned size, bool write);
/* Called before executing an instruction at linear address for instruction breakpoints. */
bool debug_check_exec(struct cpu *c, u64 linear);

/* ---- tracing ---- */
void cpu_trace_event(struct cpu *c, const struct cpu_event *ev);

#endif

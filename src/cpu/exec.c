/* The execution loop: take pending events, then run the decoded block at RIP (Zydis
 * decodes a straight line of instructions once; the block stays valid while its page's
 * bytes and fetch translation do, so self-modifying code and remapping are always seen),
 * or, while anything watches single instructions (TF, RF, breakpoints, interrupt
 * shadows, tracing), one instruction with every per-instruction rule. A fault rolls back
 * to the instruction start and is delivered, escalating to double fault and shutdown as
 * the SDM's exception classes say. */
#include <stdlib.h>
#include <string.h>

#include "cpu/exec.h"
#include "cpu/sgx/sgx.h"
#include "cpu/nested.h"
#include "cpu/vmx/vmx.h"
#include "machine/mem.h"

/* ---- handler table (shared by all vCPUs, built once) ---- */
static insn_fn handlers[ZYDIS_MNEMONIC_MAX_VALUE + 1];

/* What the loop needs to save before an instruction, by mnemonic:
 * L: its handler changes no GPR other than RSP before its last possible fault (it reads,
 *    checks, then writes one destination; stack operations move RSP only after the
 *    access), so a fault needs only RIP, RFLAGS and RSP restored, not every GPR;
 * M: with GPR, immediate and memory operands only, it changes nothing at all before its
 *    last possible fault (memory is read and checked first, registers and the lazy flag
 *    record written last), so a fault has nothing to undo;
 * N: it cannot fault at all when every operand is a GPR of its natural size or an
 *    immediate (LEA: its address operand is only computed) and there is no LOCK prefix,
 *    so no snapshot is taken for such a form. */
enum { L = 1, N = 2, M = 4 };
static u8 snapshot_rule[ZYDIS_MNEMONIC_MAX_VALUE + 1];
#define R(mn, rule) { ZYDIS_MNEMONIC_##mn, rule }
static const struct { ZydisMnemonic mn; u8 rule; } snapshot_rules[] = {
    R(MOV, L|M|N), R(MOVZX, L|M|N), R(MOVSX, L|M|N), R(MOVSXD, L|M|N),
    R(LEA, L|N), R(ADD, L|M|N), R(OR, L|M|N), R(ADC, L|M|N), R(SBB, L|M|N), R(AND, L|M|N),
    R(SUB, L|M|N), R(XOR, L|M|N), R(CMP, L|M|N), R(TEST, L|M|N), R(INC, L|M|N), R(DEC, L|M|N),
    R(NEG, L|M|N), R(NOT, L|M|N), R(SHL, L|N), R(SHR, L|N), R(SAR, L|N), R(ROL, L|N),
    R(ROR, L|N), R(IMUL, L|N), R(MUL, L), R(DIV, L), R(IDIV, L), R(PUSH, L), R(POP, L),
    R(CALL, L), R(RET, L), R(JMP, L), R(JB, L), R(JBE, L), R(JL, L), R(JLE, L), R(JNB, L),
    R(JNBE, L), R(JNL, L), R(JNLE, L), R(JNO, L), R(JNP, L), R(JNS, L), R(JNZ, L),
    R(JO, L), R(JP, L), R(JS, L), R(JZ, L), R(SETB, L|N), R(SETBE, L|N), R(SETL, L|N),
    R(SETLE, L|N), R(SETNB, L|N), R(SETNBE, L|N), R(SETNL, L|N), R(SETNLE, L|N),
    R(SETNO, L|N), R(SETNP, L|N), R(SETNS, L|N), R(SETNZ, L|N), R(SETO, L|N), R(SETP, L|N),
    R(SETS, L|N), R(SETZ, L|N), R(CMOVB, L|N), R(CMOVBE, L|N), R(CMOVL, L|N),
    R(CMOVLE, L|N), R(CMOVNB, L|N), R(CMOVNBE, L|N), R(CMOVNL, L|N), R(CMOVNLE, L|N),
    R(CMOVNO, L|N), R(CMOVNP, L|N), R(CMOVNS, L|N), R(CMOVNZ, L|N), R(CMOVO, L|N),
    R(CMOVP, L|N), R(CMOVS, L|N), R(CMOVZ, L|N), R(BT, L), R(BTS, L), R(BTR, L), R(BTC, L),
    R(BSF, L), R(BSR, L), R(NOP, L|N), R(CDQE, L|N), R(CWDE, L|N), R(CBW, L|N),
    R(CDQ, L|N), R(CQO, L|N), R(CWD, L|N), R(POPCNT, L), R(LZCNT, L), R(TZCNT, L),
    R(LEAVE, L), R(BSWAP, N), R(SALC, L|N),
};
#undef R

static void handlers_init(void)
{
    static bool done;
    if (done)
        return;
    for (size_t k = 0; k < ARRAY_SIZE(snapshot_rules); k++)
        snapshot_rule[snapshot_rules[k].mn] = snapshot_rules[k].rule;
    insn_register_alu(handlers);
    insn_register_bits(handlers);
    insn_register_string(handlers);
    insn_register_control(handlers);
    insn_register_system(handlers);
    insn_register_x87(handlers);
    insn_register_sse(handlers);
    handlers[ZYDIS_MNEMONIC_ENCLS] = sgx_insn_encls;
    handlers[ZYDIS_MNEMONIC_ENCLU] = sgx_insn_enclu;
    operand_init();
    done = true;
}

/* ---- decoded basic blocks ----
 * A block is the straight-line run of instructions decoded from one start address, on
 * one page, up to the first jump, call, return or system instruction (at most
 * BLOCK_MAX_INSNS). Conditional branches do not end it: not taken, they fall through to
 * the next instruction of the block; taken, they leave it like any RIP write. It
 * is found by a direct-mapped table keyed by linear address, RIP and decoder key, and is
 * valid while its page's code generation is unchanged (pages holding decoded code lose
 * direct write access, so the first write to them bumps the generation) and the fetch
 * translation still holds: rechecked through the TLB whenever the TLB epoch or the CPL
 * differ from the last check. An instruction that crosses a page boundary, or code
 * outside RAM, makes a block of its own that is validated by comparing its bytes.
 * Blocks live in a per-vCPU arena; when it is full, every block is dropped at once. */
#define BLOCK_MAX_INSNS 32
#define BLOCK_TABLE_BITS 15
#define BLOCK_TABLE_SIZE (1u << BLOCK_TABLE_BITS)
#define BLOCK_ARENA_BYTES (32u << 20)

struct block {
    u64 lin, rip;
    u32 *page_gen; /* generation word of the code page; NULL: validate bytes[] */
    u32 gen;       /* its value when decoded */
    u8 key;        /* decoder key (mode, stack width) */
    u8 n;          /* instructions */
    u8 cpl;        /* fetch permission last checked at this CPL ... */
    u64 epoch;     /* ... and this TLB epoch */
    u8 bytes[15];  /* the first instruction's bytes (page_gen NULL) */
    /* blocks that ran next, most recent first: candidates checked before the table */
    struct block *succ[2];
    struct insn ins[];
};

struct block_cache {
    struct block *table[BLOCK_TABLE_SIZE];
    size_t used;
    u8 arena[BLOCK_ARENA_BYTES];
};

static inline unsigned block_index(u64 lin)
{
    return (unsigned)((lin ^ (lin >> BLOCK_TABLE_BITS)) & (BLOCK_TABLE_SIZE - 1));
}

/* Space for the largest block at the arena's free end, dropping every block if needed. */
static struct block *block_alloc(struct cpu *c)
{
    struct block_cache *bc = c->in->blocks;
    size_t max = sizeof(struct block) + BLOCK_MAX_INSNS * sizeof(struct insn);
    if (bc->used + max > BLOCK_ARENA_BYTES) {
        memset(bc->table, 0, sizeof(bc->table));
        bc->used = 0;
        c->in->block_flushes++;
        c->in->last_block = NULL;
    }
    return (struct block *)(bc->arena + bc->used);
}

static void block_commit(struct cpu *c, struct block *b)
{
    struct block_cache *bc = c->in->blocks;
    size_t size = sizeof(struct block) + b->n * sizeof(struct insn);
    bc->used += (size + 15) & ~(size_t)15;
    bc->table[block_index(b->lin)] = b;
    c->in->blocks_decoded++;
}

static const ZydisMachineMode zmode[] = {
    [MODE_REAL] = ZYDIS_MACHINE_MODE_REAL_16,
    [MODE_V86] = ZYDIS_MACHINE_MODE_REAL_16,
    [MODE_PROT16] = ZYDIS_MACHINE_MODE_LEGACY_16,
    [MODE_PROT32] = ZYDIS_MACHINE_MODE_LEGACY_32,
    [MODE_COMPAT16] = ZYDIS_MACHINE_MODE_LONG_COMPAT_16,
    [MODE_COMPAT32] = ZYDIS_MACHINE_MODE_LONG_COMPAT_32,
    [MODE_LONG64] = ZYDIS_MACHINE_MODE_LONG_64,
};

/* A page started holding decoded code: its next write must reach mem_code_write(). */
static void code_page_marked(void *opaque, u64 gpa_page)
{
    struct cpu *c = opaque;
    tlb_drop_write(&c->tlb, gpa_page);
}

void exec_decoder_init(ZydisDecoder *dec, ZydisMachineMode mode, ZydisStackWidth width,
                       enum cpuid_vendor vendor)
{
    /* MPX, CET and CLDEMOTE reuse encodings of the hint-NOP space (0F 1A, 0F 1B, 0F 1C,
     * 0F 1E): without those features, which the model never has, a processor executes
     * them as NOP, which is what Zydis decodes them as with its modes for them off. */
    static const ZydisDecoderMode nop_space_modes[] = {
        ZYDIS_DECODER_MODE_MPX, ZYDIS_DECODER_MODE_CET, ZYDIS_DECODER_MODE_CLDEMOTE,
    };
    if (ZYAN_FAILED(ZydisDecoderInit(dec, mode, width)))
        nestor_panic("Zydis decoder init failed");
    for (size_t k = 0; k < ARRAY_SIZE(nop_space_modes); k++)
        if (ZYAN_FAILED(ZydisDecoderEnableMode(dec, nop_space_modes[k], ZYAN_FALSE)))
            nestor_panic("Zydis decoder mode setup failed");
    /* AMD honours 66h on near branches in 64-bit mode: E8, E9 and 0F 8x take a rel16
     * (see amd_near_branch for the rest) */
    if (ZYAN_FAILED(ZydisDecoderEnableMode(dec, ZYDIS_DECODER_MODE_AMD_BRANCHES,
                                           vendor == VENDOR_AMD)))
        nestor_panic("Zydis decoder mode setup failed");
}

int exec_init(struct cpu *c)
{
    handlers_init();
    struct cpu_internal *in = c->in;
    for (int m = 0; m < 7; m++)
        for (int s = 0; s < 3; s++) {
            /* a 64-bit stack exists only in 64-bit mode */
            ZydisStackWidth sw = m == MODE_LONG64 ? ZYDIS_STACK_WIDTH_64
                                 : s == 0         ? ZYDIS_STACK_WIDTH_16
                                                  : ZYDIS_STACK_WIDTH_32;
            exec_decoder_init(&in->dec[m][s], zmode[m], sw, c->model->vendor);
        }
    mem_add_code_watcher(c->mem, code_page_marked, c);
    /* calloc: the arena's pages are only touched as blocks fill them */
    in->blocks = calloc(1, sizeof(*in->blocks));
    if (!in->blocks)
        return -1;
    c->tlb.notify = &in->exits;
    c->tlb.notify_bits = EXIT_BLOCK_END;
    in->delivering = -1;
    in->fep_icount = ~0ull;
    return 0;
}

struct cpu_block_stats cpu_block_stats(const struct cpu *c)
{
    return (struct cpu_block_stats){ c->in->blocks_decoded, c->in->block_flushes };
}

void exec_destroy(struct cpu *c)
{
    free(c->in->blocks);
    c->in->blocks = NULL;
}

/* ---- faults ---- */
_Noreturn void cpu_fault(struct cpu *c, int vector, u32 error_code)
{
    struct cpu_internal *in = c->in;
    in->exc_vector = (u8)vector;
    in->exc_has_error = true;
    in->exc_error = error_code;
    longjmp(in->fault_jmp, 1);
}

_Noreturn void cpu_fault_noerr(struct cpu *c, int vector)
{
    struct cpu_internal *in = c->in;
    in->exc_vector = (u8)vector;
    in->exc_has_error = false;
    in->exc_error = 0;
    longjmp(in->fault_jmp, 1);
}

_Noreturn void cpu_page_fault(struct cpu *c, u64 linear, u32 pfec)
{
    c->in->exc_cr2 = linear;
    cpu_fault(c, EXC_PF, pfec);
}

/* Reports "what" on stderr the first time it is seen (by text), then raises #UD. */
_Noreturn void cpu_unimplemented(struct cpu *c, const char *what)
{
    static const char *reported[128];
    static unsigned nreported;
    bool seen = false;
    for (unsigned k = 0; k < nreported && !seen; k++)
        seen = !strcmp(reported[k], what);
    if (!seen) {
        if (nreported < ARRAY_SIZE(reported))
            reported[nreported++] = what;
        nestor_log("vCPU %d: the guest used %s at %#llx, which nestor does not implement: #UD",
                   c->id, what, (unsigned long long)c->rip);
    }
    struct cpu_event ev = { .kind = EV_UNSUPPORTED, .u.unsupported = { what, false } };
    cpu_intercept(c, &ev);
    cpu_fault_noerr(c, EXC_UD);
}

/* exc_vector value meaning "abandon the instruction, deliver nothing" */
#define EXC_ABANDON 0xff
#define EXC_VMEXIT 0xfe /* exec_context_switched: a VM exit replaced the state */

_Noreturn void cpu_unsupported_stop(struct cpu *c, const char *what)
{
    struct cpu_event ev = { .kind = EV_UNSUPPORTED, .u.unsupported = { what, true } };
    cpu_intercept(c, &ev);
    c->in->exits |= EXIT_STOP;
    c->in->exc_vector = EXC_ABANDON;
    longjmp(c->in->fault_jmp, 1);
}

/* ---- instruction boundary ---- */
/* The full snapshot: every GPR, RFLAGS and the lazy flag record (see exec.h). */
static inline void event_counted(struct cpu *c);
static inline void insn_begin(struct cpu *c);

void exec_deliver_interrupt(struct cpu *c, u8 vector)
{
    struct cpu_internal *in = c->in;
    insn_begin(c);
    in->delivering = vector;
    in->events_delivered++;
    cpu_deliver(c, vector, EVT_EXT_INTR, false, 0, c->rip);
    event_counted(c);
    in->delivering = -1;
}

void exec_enter_context(struct cpu *c)
{
    insn_commit(c);
    c->in->saved_rip = c->rip;
    c->in->saved_rsp = c->gpr[R_RSP];
}

_Noreturn void exec_context_switched(struct cpu *c)
{
    struct cpu_internal *in = c->in;
    in->exc_vector = EXC_VMEXIT;
    longjmp(in->fault_jmp, 1);
}

void insn_commit(struct cpu *c)
{
    struct cpu_internal *in = c->in;
    memcpy(in->saved_gpr, c->gpr, sizeof(c->gpr));
    in->saved_rflags = c->rflags;
    in->saved_lz_op = in->lz.op;
    in->snapshot_full = true;
    in->restore_none = false;
}

/* A full snapshot at an event or trap boundary: RIP too. */
static inline void insn_begin(struct cpu *c)
{
    c->in->saved_rip = c->rip;
    insn_commit(c);
}

bool exc_has_error_code(int v)
{
    return v == EXC_DF || v == EXC_TS || v == EXC_NP || v == EXC_SS || v == EXC_GP ||
           v == EXC_PF || v == EXC_AC || v == EXC_CP;
}

/* An exception or interrupt was delivered: AMD's instruction and branch counters count it
 * (pmu.c), and may overflow here. */
static inline void event_counted(struct cpu *c)
{
    if (unlikely(c->pmu.enabled))
        pmu_poll(c);
}

/* Delivers a hardware exception, escalating per the double-fault rules. Faults raised
 * while delivering come back here through the loop's setjmp with in->delivering set. */
static void raise_exception(struct cpu *c, u8 vector, bool has_error, u32 error)
{
    struct cpu_internal *in = c->in;
    if (in->delivering >= 0) {
        int prev = in->delivering;
        if (prev == EXC_DF) {
            in->delivering = -1;
            struct cpu_event ev = { .kind = EV_SHUTDOWN };
            cpu_intercept(c, &ev);
            c->state = CPU_SHUTDOWN;
            return;
        }
        int cp = exc_class(prev), cn = exc_class(vector);
        if ((cp == 1 && cn == 1) || (cp == 2 && cn != 0)) {
            vector = EXC_DF;
            has_error = true;
            error = 0;
        }
    }
    struct cpu_event ev = { .kind = EV_EXCEPTION,
                            .u.exc = { vector, has_error, error, in->exc_cr2 } };
    if (cpu_intercept(c, &ev) != INTERCEPT_DEFAULT) {
        in->delivering = -1;
        return;
    }
    if (vector == EXC_PF)
        c->cr2 = in->exc_cr2;
    in->delivering = vector;
    in->events_delivered++;
    cpu_deliver(c, vector, EVT_HW_EXC, has_error && exc_has_error_code(vector), error, c->rip);
    event_counted(c);
    in->delivering = -1;
}

/* Takes a pending NMI or external interrupt if the CPU can accept it now. */
static void take_events(struct cpu *c)
{
    struct cpu_internal *in = c->in;
    in->exits &= ~EXIT_CHECK_EVENTS;
    in->last_block = NULL; /* what runs next need not follow the last block */
    /* Nothing is taken in an interrupt shadow, nor while a debug trap that MOV SS held
     * back is due (step() raises it first: traps of the previous instruction come
     * before NMIs and interrupts) */
    if (c->intr_shadow || in->held_db_bits) {
        in->exits |= EXIT_CHECK_EVENTS; /* look again after the shadowed instruction */
        return;
    }
    /* SVM's GIF holds NMIs and interrupts alike */
    if (unlikely(!c->gif))
        return;
    if (c->nmi_pending && !c->nmi_blocked) {
        if (unlikely(cpu_in_l2(c))) {
            /* an exit to L1, or held by L2's virtual GIF (SVM) */
            struct cpu_event nev = { .kind = EV_NMI };
            if (cpu_intercept(c, &nev) != INTERCEPT_DEFAULT)
                return;
        }
        c->nmi_pending = false;
        c->state = CPU_RUNNING;
        insn_begin(c);
        in->delivering = EXC_NMI;
        in->events_delivered++;
        cpu_deliver(c, EXC_NMI, EVT_NMI, false, 0, c->rip);
        event_counted(c);
        in->delivering = -1;
        c->nmi_blocked = true;
        return;
    }
    if (likely(!cpu_in_l2(c)) ? !(c->rflags & FL_IF) : nested_intr_masked_by_if(c))
        return;
    if (!c->ops->intr_pending)
        return;
    int v = c->ops->intr_pending(c, c->ops_opaque);
    if (v < 0)
        return;
    struct cpu_event ev = { .kind = EV_INTERRUPT, .u.intr = { (u8)v } };
    if (cpu_intercept(c, &ev) != INTERCEPT_DEFAULT)
        return;
    v = c->ops->intr_ack(c, c->ops_opaque);
    c->state = CPU_RUNNING;
    insn_begin(c);
    in->delivering = v; /* external interrupts are benign for double-fault purposes */
    in->events_delivered++;
    cpu_deliver(c, (u8)v, EVT_EXT_INTR, false, 0, c->rip);
    event_counted(c);
    in->delivering = -1;
    in->exits |= EXIT_CHECK_EVENTS; /* another one may be pending at higher priority */
}

/* ---- fetch and decode ---- */
static inline unsigned decoder_key(const struct cpu *c)
{
    unsigned sw = c->mode == MODE_LONG64 ? 2 : (c->seg[SEG_SS].attr & SEG_ATTR_DB) ? 1 : 0;
    /* enclave mode decodes some instructions as #UD: its blocks are its own (a multiple
     * of 3, so that key % 3 stays the stack width) */
    return (unsigned)c->mode * 3 + sw + (c->enclave_mode ? 63 : 0);
}

/* Copies up to n instruction bytes at linear into buf; the first page must be readable
 * as code, later ones are only touched if needed (want > bytes on the first page). */
static void fetch(struct cpu *c, u64 lin, u8 *buf, unsigned want)
{
    unsigned first = 4096 - (lin & 0xfff);
    if (first > want)
        first = want;
    lin_read_bytes(c, lin, buf, first, ACC_EXEC);
    if (first < want)
        lin_read_bytes(c, lin + first, buf + first, want - first, ACC_EXEC);
}

static void check_cs_limit(struct cpu *c, u64 rip, unsigned len)
{
    if (!cpu_is_long64(c) && rip + len - 1 > c->seg[SEG_CS].limit)
        cpu_fault(c, EXC_GP, 0);
}

insn_fn exec_handler(const ZydisDecodedInstruction *d)
{
    handlers_init();
    return d->operand_count_visible <= INSN_MAX_OPERANDS ? handlers[d->mnemonic] : NULL;
}

/* SDM 39.6.1: #UD, whatever the instruction would otherwise do first */
static void insn_illegal_in_enclave(struct cpu *c, const struct insn *i)
{
    (void)i;
    cpu_fault_noerr(c, EXC_UD);
}

static void insn_unimplemented(struct cpu *c, const struct insn *i)
{
    cpu_unimplemented(c, ZydisMnemonicGetString((ZydisMnemonic)i->d.mnemonic));
}

/* Near branches in 64-bit mode: Intel forces a 64-bit operand size and ignores 66h
 * (SDM Vol. 1, "Branching in 64-bit mode"); AMD takes 66h (without REX.W) as a 16-bit
 * operand size (APM Vol. 1, "Branching in 64-Bit Mode"): RIP is truncated to 16 bits,
 * CALL/RET push/pop 2 bytes, an indirect target is a word. Zydis' AMD mode gives the
 * rel16 forms that; the other near branches get it here. */
static void amd_near_branch(const struct cpu *c, struct insn *i, const ZydisDecodedInstruction *d)
{
    if (c->model->vendor != VENDOR_AMD || d->machine_mode != ZYDIS_MACHINE_MODE_LONG_64 ||
        !(d->attributes & ZYDIS_ATTRIB_HAS_OPERANDSIZE) || d->raw.rex.W ||
        (d->meta.branch_type != ZYDIS_BRANCH_TYPE_SHORT &&
         d->meta.branch_type != ZYDIS_BRANCH_TYPE_NEAR))
        return;
    switch (d->meta.category) {
    case ZYDIS_CATEGORY_COND_BR: case ZYDIS_CATEGORY_UNCOND_BR:
    case ZYDIS_CATEGORY_CALL: case ZYDIS_CATEGORY_RET:
        break;
    default:
        return;
    }
    i->osize = 2;
    if (d->operand_count_visible && i->op[0].type != ZYDIS_OPERAND_TYPE_IMMEDIATE) {
        i->op[0].size = 16; /* FF /2, FF /4: a word target */
        i->opd[0].bytes = 2;
    }
}

static void insn_setup(struct cpu *c, struct insn *i, const ZydisDecodedInstruction *d,
                       const ZydisDecodedOperand *op, u64 rip)
{
    insn_from_zydis(i, d, op);
    amd_near_branch(c, i, d);
    i->next_rip = (rip + d->length) & cpu_rip_mask(c);
    insn_fn fn = exec_handler(d);
    i->fn = fn ? fn : insn_unimplemented;
    insn_fn special = insn_alu_specialise(i);
    if (special)
        i->fn = special;
    u8 rule = snapshot_rule[d->mnemonic];
    bool reg_imm = true, reg_imm_mem = true; /* the operand kinds N and M require */
    for (int n = 0; n < d->operand_count_visible && n < INSN_MAX_OPERANDS; n++) {
        u8 k = i->opd[n].kind;
        reg_imm &= k == OPD_GPR || k == OPD_IMM ||
                   (d->mnemonic == ZYDIS_MNEMONIC_LEA && k == OPD_MEM);
        reg_imm_mem &= k == OPD_GPR || k == OPD_IMM || k == OPD_MEM;
    }
    i->snap = (rule & N) && reg_imm && !i->lock ? SNAP_NONE
              : (rule & M) && reg_imm_mem       ? SNAP_MARK
              : (rule & L)                      ? SNAP_LIGHT
                                                : SNAP_FULL;
    /* decoded in enclave mode (such a block runs there only: the decoder key says so) */
    if (unlikely(c->enclave_mode) && sgx_insn_illegal_in_enclave(d, op, c)) {
        i->fn = insn_illegal_in_enclave;
        i->snap = SNAP_MARK;
    }
}

/* Branch instructions as the PMU counts them (pmu.c): every instruction that may
 * transfer control, conditional or not, near or far, software interrupts, the fast
 * system calls and their returns. */
static bool is_branch(const ZydisDecodedInstruction *d)
{
    switch (d->meta.category) {
    case ZYDIS_CATEGORY_COND_BR: case ZYDIS_CATEGORY_UNCOND_BR: case ZYDIS_CATEGORY_CALL:
    case ZYDIS_CATEGORY_RET: case ZYDIS_CATEGORY_INTERRUPT: case ZYDIS_CATEGORY_SYSCALL:
    case ZYDIS_CATEGORY_SYSRET:
        return true;
    default:
        return false;
    }
}

/* Control leaves the straight line after these (or may: system instructions change
 * modes, flush the TLB, halt): a block ends with them. */
static bool ends_block(const ZydisDecodedInstruction *d)
{
    switch (d->meta.category) {
    case ZYDIS_CATEGORY_UNCOND_BR: case ZYDIS_CATEGORY_CALL:
    case ZYDIS_CATEGORY_RET: case ZYDIS_CATEGORY_INTERRUPT: case ZYDIS_CATEGORY_SYSCALL:
    case ZYDIS_CATEGORY_SYSRET: case ZYDIS_CATEGORY_SYSTEM: case ZYDIS_CATEGORY_IO:
    case ZYDIS_CATEGORY_IOSTRINGOP:
        return true;
    default:
        return false;
    }
}

/* Decodes the block at rip. The first instruction is fetched with all checks and may
 * fault; the following ones are read from the same page's host memory and simply end
 * the block where they would not decode, cross the page or leave the CS limit, so
 * their faults are raised only if execution reaches them. */
static struct block *block_decode(struct cpu *c, u64 lin, u64 rip, unsigned key)
{
    struct cpu_internal *in = c->in;
    struct block *b = block_alloc(c);
    ZydisDecoder *dec = &in->dec[c->mode][key % 3];
    ZydisDecodedInstruction zd;
    ZydisDecodedOperand zop[ZYDIS_MAX_OPERAND_COUNT_VISIBLE];
    ZydisDecoderContext zctx;
    u8 buf[15];
    unsigned on_page = 4096 - (lin & 0xfff);
    bool long64 = cpu_is_long64(c);
    u64 limit = c->seg[SEG_CS].limit;

    /* First instruction: fetch what is on this page (up to 15), decode, and only if the
     * decoder needs more, touch the next page (which may #PF there). */
    if (!long64 && rip > limit)
        cpu_fault(c, EXC_GP, 0);
    unsigned avail = on_page < 15 ? on_page : 15;
    if (!long64 && limit - rip + 1 < avail)
        avail = (unsigned)(limit - rip + 1);
    fetch(c, lin, buf, avail);
    ZyanStatus st = ZydisDecoderDecodeInstruction(dec, &zctx, buf, avail, &zd);
    if (st == ZYDIS_STATUS_NO_MORE_DATA && avail < 15) {
        if (avail == on_page) {
            fetch(c, lin, buf, 15);
            avail = 15;
            st = ZydisDecoderDecodeInstruction(dec, &zctx, buf, avail, &zd);
        } else {
            cpu_fault(c, EXC_GP, 0); /* runs past the CS limit */
        }
    }
    if (st == ZYDIS_STATUS_INSTRUCTION_TOO_LONG)
        cpu_fault(c, EXC_GP, 0);
    if (ZYAN_FAILED(st))
        cpu_fault_noerr(c, EXC_UD);
    if (ZYAN_FAILED(ZydisDecoderDecodeOperands(dec, &zctx, &zd, zop, zd.operand_count_visible)))
        cpu_fault_noerr(c, EXC_UD);
    check_cs_limit(c, rip, zd.length);
    insn_setup(c, &b->ins[0], &zd, zop, rip);
    b->ins[0].br_prefix = is_branch(&zd);
    b->lin = lin;
    b->rip = rip;
    b->key = (u8)key;
    b->n = 1;
    b->page_gen = NULL;
    b->succ[0] = b->succ[1] = NULL;
    memcpy(b->bytes, buf, zd.length);

    const struct tlb_entry *t = zd.length <= on_page ? lin_code_entry(c, lin) : NULL;
    if (t && t->page_gen && t->host) {
        mem_code_mark_gen(c->mem, t->gpa, t->page_gen);
        b->page_gen = t->page_gen;
        b->gen = *t->page_gen;
        b->epoch = c->tlb.epoch;
        b->cpl = c->cpl;
        /* the rest of the straight line on this page */
        const u8 *page = t->host;
        unsigned off = (unsigned)(lin & 0xfff) + zd.length;
        u64 r = rip + zd.length;
        bool more = !ends_block(&zd);
        while (more && b->n < BLOCK_MAX_INSNS && off < 4096 && (r & cpu_rip_mask(c)) == r) {
            avail = 4096 - off < 15 ? 4096 - off : 15;
            if (!long64) {
                if (r > limit)
                    break;
                if (limit - r + 1 < avail)
                    avail = (unsigned)(limit - r + 1);
            }
            if (ZYAN_FAILED(ZydisDecoderDecodeInstruction(dec, &zctx, page + off, avail, &zd)) ||
                ZYAN_FAILED(ZydisDecoderDecodeOperands(dec, &zctx, &zd, zop, zd.operand_count_visible)))
                break;
            insn_setup(c, &b->ins[b->n], &zd, zop, r);
            b->ins[b->n].br_prefix = (u8)(b->ins[b->n - 1].br_prefix + is_branch(&zd));
            b->n++;
            more = !ends_block(&zd);
            off += zd.length;
            r += zd.length;
        }
    }
    block_commit(c, b);
    return b;
}

/* The block at the current RIP, validated (decoded if needed); *runnable: how many of
 * its instructions lie inside the CS limit (outside 64-bit mode the limit may have
 * changed since the decode). Faults as fetching the first instruction would. */
static struct block *block_lookup(struct cpu *c, unsigned *runnable)
{
    struct cpu_internal *in = c->in;
    u64 rip = c->rip;
    bool long64 = cpu_is_long64(c);
    u64 lin = long64 ? rip : (c->seg[SEG_CS].base + rip) & 0xffffffffull;
    if (long64 && !cpu_canonical(c, rip))
        cpu_fault(c, EXC_GP, 0);
    unsigned key = decoder_key(c);
    struct block *prev = in->last_block, *b;
#define BLOCK_IS(x) ((x) && (x)->lin == lin && (x)->rip == rip && (x)->key == key)
    if (prev && BLOCK_IS(prev->succ[0]))
        b = prev->succ[0];
    else if (prev && BLOCK_IS(prev->succ[1]))
        b = prev->succ[1];
    else
        b = in->blocks->table[block_index(lin)];
    if (!BLOCK_IS(b)) {
        b = block_decode(c, lin, rip, key);
    } else if (likely(b->page_gen != NULL)) {
        /* same physical page, fetch still allowed, and no write to it since the decode
         * (a fresh decode needs neither check, and may not be on one RAM page at all) */
        bool valid = true;
        if (b->epoch != c->tlb.epoch || b->cpl != c->cpl) {
            const struct tlb_entry *t = lin_code_entry(c, lin);
            valid = t->page_gen == b->page_gen;
            if (valid) {
                b->epoch = c->tlb.epoch;
                b->cpl = c->cpl;
            }
        }
        if (!valid || *b->page_gen != b->gen)
            b = block_decode(c, lin, rip, key);
    } else {
        /* Crosses a page or runs from MMIO: compare the bytes. Those on this page first:
         * the cached instruction's length says nothing about what is there now, so the
         * next page is touched only if this page still matches. */
        unsigned len = b->ins[0].d.length, on_page = 4096 - (lin & 0xfff);
        unsigned first = len < on_page ? len : on_page;
        u8 buf[15];
        fetch(c, lin, buf, first);
        if (memcmp(buf, b->bytes, first) != 0 ||
            (first < len && (fetch(c, lin + first, buf + first, len - first),
                             memcmp(buf + first, b->bytes + first, len - first) != 0)))
            b = block_decode(c, lin, rip, key);
    }

#undef BLOCK_IS
    /* link it as the previous block's most recent successor (prev is NULL again if
     * decoding dropped every block) */
    prev = in->last_block;
    if (prev && prev->succ[0] != b) {
        prev->succ[1] = prev->succ[0];
        prev->succ[0] = b;
    }
    *runnable = b->n;
    if (!long64) {
        u64 r = rip, limit = c->seg[SEG_CS].limit;
        for (unsigned k = 0; k < b->n; k++) {
            if (r + b->ins[k].d.length - 1 > limit) {
                if (k == 0)
                    cpu_fault(c, EXC_GP, 0);
                *runnable = k;
                break;
            }
            r += b->ins[k].d.length;
        }
    }
    return b;
}

static void trace_insn(struct cpu *c, const struct block *b)
{
    static ZydisFormatter fmt;
    static bool fmt_ready;
    if (!fmt_ready) {
        ZydisFormatterInit(&fmt, ZYDIS_FORMATTER_STYLE_INTEL);
        fmt_ready = true;
    }
    /* the first instruction of a block: its bytes are in b->bytes */
    ZydisDecodedInstruction zd;
    ZydisDecodedOperand zop[ZYDIS_MAX_OPERAND_COUNT];
    char text[128] = "(undecodable)";
    if (ZYAN_SUCCESS(ZydisDecoderDecodeFull(&c->in->dec[c->mode][b->key % 3], b->bytes,
                                            b->ins[0].d.length, &zd, zop)))
        ZydisFormatterFormatInstruction(&fmt, &zd, zop, zd.operand_count_visible, text,
                                        sizeof(text), c->rip, NULL);
    /* the vCPU's instruction count before it: -save-at points can be picked from this */
    fprintf(c->in->trace, "cpu%d %04x:%016llx  %s  #%llu\n", c->id, c->seg[SEG_CS].sel,
            (unsigned long long)c->rip, text, (unsigned long long)c->icount);
}

/* Saves what a fault at the start of the next instruction restores. Scalar loads on
 * purpose: a merged 16-byte load of the just stored RIP and RFLAGS stalls on store
 * forwarding. */
static inline void snapshot_light(struct cpu *c, struct cpu_internal *in)
{
    in->saved_rip = __atomic_load_n(&c->rip, __ATOMIC_RELAXED);
    in->saved_rflags = __atomic_load_n(&c->rflags, __ATOMIC_RELAXED);
    in->saved_rsp = __atomic_load_n(&c->gpr[R_RSP], __ATOMIC_RELAXED);
    in->saved_lz_op = in->lz.op;
    in->snapshot_full = false;
    in->restore_none = false;
}

/* Executes one instruction with every per-instruction rule (single-step, breakpoints,
 * interrupt shadows, RF, tracing); the caller has taken events.
 *
 * MOV SS / POP SS (SDM Vol. 3A 6.8.3): the single-step trap that would follow it is
 * suppressed; data breakpoints it hit are held until the boundary after the next
 * instruction (with that instruction's own traps, in one #DB), or until an event the
 * next instruction raises has been delivered: a #DB takes them into its DR6
 * (debug_db_delivered), after any other event they are delivered at the handler's
 * first instruction. Intel also suppresses an instruction breakpoint on the next
 * instruction, as if RF were 1; AMD does not. */
static void step(struct cpu *c)
{
    struct cpu_internal *in = c->in;
    snapshot_light(c, in);
    in->last_block = NULL;
    u8 shadow_before = c->intr_shadow;
    in->shadow_before = shadow_before;
    c->intr_shadow = SHADOW_NONE;
    in->exits &= EXIT_CHECK_EVENTS | EXIT_STOP; /* those two persist until the loop acts */
    in->pending_db_bits = 0;

    if (unlikely(in->held_db_bits) && shadow_before != SHADOW_MOV_SS) {
        /* an event delivered by the shadowed instruction ended the shadow: the held
         * traps are due now, at its handler's first instruction */
        u32 held = in->held_db_bits;
        in->held_db_bits = 0;
        insn_begin(c);
        debug_raise_trap(c, held);
    }
    bool tf = c->rflags & FL_TF;
    bool code_bp = in->dr_exec_active && !(c->rflags & FL_RF) &&
                   !(shadow_before == SHADOW_MOV_SS && c->model->vendor != VENDOR_AMD);

    const struct insn *i;
    for (;;) {
        if (unlikely(code_bp)) {
            u64 lin = cpu_is_long64(c) ? c->rip : (c->seg[SEG_CS].base + c->rip) & 0xffffffffull;
            if (debug_check_exec(c, lin))
                cpu_fault_noerr(c, EXC_DB); /* instruction breakpoint: a fault (the handler sets RF to resume) */
        }
        unsigned runnable;
        const struct block *b = block_lookup(c, &runnable);
        i = &b->ins[0];
        if (i->snap == SNAP_FULL) {
            memcpy(in->saved_gpr, c->gpr, sizeof(c->gpr));
            in->snapshot_full = true;
        }
        if (unlikely(in->trace_insns))
            trace_insn(c, b);
        in->blk = b;
        in->blk_icount0 = c->icount;
        i->fn(c, i);
        c->icount++;
        in->branches += i->br_prefix;
        in->blk = NULL;
        if (!(in->exits & EXIT_RIP_WRITTEN))
            c->rip = i->next_rip;
        if (likely(i->d.mnemonic != ZYDIS_MNEMONIC_UD2))
            break;
        /* A UD2 that returns was a forced-emulation prefix (insn_system.c): the
         * instruction after it runs now, at the same boundary (no events, no traps in
         * between), and a fault in it reports its own address. */
        in->exits &= ~EXIT_RIP_WRITTEN;
        snapshot_light(c, in);
    }
    if (!(in->exits & EXIT_RF_WRITTEN))
        c->rflags &= ~FL_RF;

    /* traps after the instruction: data breakpoints and single-step */
    u32 db = in->pending_db_bits | in->held_db_bits;
    in->held_db_bits = 0;
    bool loads_ss = c->intr_shadow == SHADOW_MOV_SS;
    bool step_trap = (in->exits & EXIT_TF_AT_END) ? (c->rflags & FL_TF) != 0 : tf;
    if (step_trap && !loads_ss && !(in->exits & EXIT_EVENT_DELIVERED))
        db |= DR6_BS;
    if (unlikely(db)) {
        if (loads_ss) {
            in->held_db_bits = db;
        } else {
            insn_begin(c);
            debug_raise_trap(c, db);
        }
    }
}

/* May the next instructions run as a block? Not while anything watches single
 * instructions: single-step, RF, an interrupt shadow, armed breakpoints, held-back debug
 * traps, the instruction trace. Instructions that change any of these end the block
 * (block_end, rip_written or rf_written). */
static inline bool block_mode_ok(const struct cpu *c)
{
    const struct cpu_internal *in = c->in;
    return !(c->rflags & (FL_TF | FL_RF)) && !c->intr_shadow && !(c->dr[7] & 0xff) &&
           !in->held_db_bits && !in->trace_insns && !c->host_debug;
}

/* The host debugger: is there a breakpoint at the instruction about to run? A vCPU
 * resuming at a breakpoint runs through it once. */
static bool host_breakpoint(struct cpu *c)
{
    const struct cpu_host_debug *d = c->host_debug;
    u64 lin = cpu_is_long64(c) ? c->rip : (c->seg[SEG_CS].base + c->rip) & 0xffffffffull;
    if (c->host_resume_armed) {
        c->host_resume_armed = false;
        if (lin == c->host_resume_rip)
            return false;
    }
    for (int k = 0; k < d->nbp; k++)
        if (d->bp[k] == lin) {
            c->host_stop = HOST_STOP_BREAKPOINT;
            c->host_stop_addr = lin;
            return true;
        }
    return false;
}

/* Runs decoded blocks from RIP until the budget (icount reaching in->run_end) is used or
 * an instruction needs the loop's attention: anything in the exit word but a plain
 * branch (events, writes to decoded code, TLB flushes, changes of the state blocks are
 * decoded for or that single-instruction mode watches). Plain branches and blocks run
 * to their end go straight on to the next block. */
static inline __attribute__((always_inline)) void block_run_with(struct cpu *c,
                                                                  const bool pmu_counts)
{
    struct cpu_internal *in = c->in;
    in->exits &= EXIT_CHECK_EVENTS | EXIT_STOP; /* those two persist until the loop acts */
    in->shadow_before = SHADOW_NONE; /* blocks run only outside interrupt shadows */
    while (c->icount < in->run_end) {
        snapshot_light(c, in); /* the fetch may fault */
        unsigned n;
        struct block *b = block_lookup(c, &n);
        if (n > in->run_end - c->icount)
            n = (unsigned)(in->run_end - c->icount);
        in->last_block = NULL;
        if (pmu_counts) {
            in->blk = b;
            in->blk_icount0 = c->icount;
        }
        const struct insn *i = b->ins, *last = b->ins + n - 1;
        for (;;) {
            if (i->snap == SNAP_MARK) {
                in->restore_none = true;
            } else if (i->snap != SNAP_NONE) {
                snapshot_light(c, in);
                if (i->snap == SNAP_FULL) {
                    memcpy(in->saved_gpr, c->gpr, sizeof(c->gpr));
                    in->snapshot_full = true;
                }
            }
            i->fn(c, i);
            c->icount++;
            if (unlikely(in->exits)) {
                if (!(in->exits & EXIT_RIP_WRITTEN))
                    c->rip = i->next_rip;
                if (in->exits != EXIT_RIP_WRITTEN) {
                    if (pmu_counts) {
                        in->branches += i->br_prefix;
                        in->blk = NULL;
                    }
                    return;
                }
                /* a plain branch: remember where it went, and go on there */
                in->exits = 0;
                break;
            }
            c->rip = i->next_rip;
            if (i == last)
                break;
            i++;
        }
        if (pmu_counts) {
            in->branches += i->br_prefix;
            in->blk = NULL;
        }
        in->last_block = b;
    }
}

/* The block loop as it is, and with the bookkeeping the performance counters need while
 * one is enabled (pmu.h): which block runs, and the branches of those that ran. Enabling
 * or disabling the first/last counter ends the block, so the loop switches. */
static void block_run(struct cpu *c) { block_run_with(c, false); }
static void block_run_counted(struct cpu *c) { block_run_with(c, true); }

static enum cpu_stop_reason run_loop(struct cpu *c, u64 budget);

void exec_retired(const struct cpu *c, bool with_current, u64 *insns, u64 *branches,
                  u64 *events)
{
    const struct cpu_internal *in = c->in;
    *events = in->events_delivered;
    *insns = c->icount - in->rep_restarts + with_current;
    *branches = in->branches;
    if (in->blk) {
        /* inside a block: add its branches that retired before this instruction */
        u64 k = c->icount - in->blk_icount0;
        if (with_current)
            *branches += in->blk->ins[k].br_prefix;
        else if (k)
            *branches += in->blk->ins[k - 1].br_prefix;
    }
}

bool exec_in_insn(const struct cpu *c)
{
    return c->in->blk != NULL;
}

void exec_set_pmu_deadline(struct cpu *c, u64 icount)
{
    struct cpu_internal *in = c->in;
    in->pmu_end = icount ? icount : ~0ull;
    in->run_end = in->budget_end < in->pmu_end ? in->budget_end : in->pmu_end;
}

enum cpu_stop_reason cpu_run(struct cpu *c, u64 budget)
{
    pmu_poll(c); /* cycle counters advance with the clock between runs */
    enum cpu_stop_reason r = run_loop(c, budget);
    cpu_flags(c); /* outside the engine RFLAGS is exact */
    return r;
}

/* The loop stopped before the budget's end: at the PMU's stop, where a counter may
 * overflow. The PMU accounts, raises its interrupt if due and sets the next stop. */
static bool pmu_stop_reached(struct cpu *c)
{
    if (c->icount >= c->in->budget_end)
        return false;
    pmu_poll(c);
    return true;
}

static enum cpu_stop_reason run_loop(struct cpu *c, u64 budget)
{
    struct cpu_internal *in = c->in;
    in->exits = EXIT_CHECK_EVENTS;
    in->budget_end = c->icount + budget;
    in->run_end = in->budget_end < in->pmu_end ? in->budget_end : in->pmu_end;
    in->run_faults_left = budget;

    in->last_block = NULL;
    if (setjmp(in->fault_jmp)) {
        /* A fault: roll back to the instruction start and deliver it. The block's
         * instructions before the faulting one retired. */
        in->last_block = NULL;
        if (in->blk) {
            u64 k = c->icount - in->blk_icount0;
            if (k)
                in->branches += in->blk->ins[k - 1].br_prefix;
            in->blk = NULL;
        }
        if (!in->restore_none && in->exc_vector != EXC_VMEXIT) {
            if (in->snapshot_full)
                memcpy(c->gpr, in->saved_gpr, sizeof(c->gpr));
            else
                c->gpr[R_RSP] = in->saved_rsp;
            c->rip = in->saved_rip;
            c->rflags = in->saved_rflags;
            in->lz.op = in->saved_lz_op;
        }
        in->restore_none = false;
        if (in->exc_vector == EXC_ABANDON) {
            in->delivering = -1;
            return STOP_REQUEST;
        }
        if (in->exc_vector == EXC_VMEXIT) {
            in->delivering = -1;
        } else {
            raise_exception(c, in->exc_vector, in->exc_has_error, in->exc_error);
        }
        if (c->state == CPU_SHUTDOWN)
            return STOP_SHUTDOWN;
        if (in->exits & EXIT_STOP)
            return STOP_REQUEST;
        /* A fault retires nothing: a guest whose handler faults again at once (a real-mode
         * #UD handler that is itself undefined: nothing escalates to #DF) would never use
         * up the budget. Each delivered fault and VM exit counts against it as an
         * instruction would, so that cpu_run() returns to the machine. */
        if (in->run_faults_left-- == 0)
            return STOP_BUDGET;
    }

    while (c->icount < in->run_end || pmu_stop_reached(c)) {
        if (unlikely(cpu_in_l2(c)))
            nested_boundary(c); /* MTF, timers, windows, virtual interrupts, INIT */
        if (unlikely(c->state != CPU_RUNNING)) {
            if (c->state == CPU_SHUTDOWN)
                return STOP_SHUTDOWN;
            if (c->state == CPU_WAIT_FOR_SIPI)
                return STOP_HALTED;
            /* halted: an unmasked interrupt or NMI wakes it (in MWAIT, also a write to
             * the monitored line or a masked interrupt) */
            take_events(c);
            if (c->state == CPU_HALTED && !(c->mwait && cpu_mwait_ends(c)))
                return STOP_HALTED;
            c->mwait = false; /* awake, whatever ended the wait */
            pmu_run_state_changed(c);
        } else if (unlikely((in->exits & EXIT_CHECK_EVENTS) || c->nmi_pending)) {
            take_events(c);
        }
        if (unlikely(in->exits & EXIT_STOP))
            return STOP_REQUEST;
        if (unlikely(c->host_debug != NULL) && c->host_debug->nbp && host_breakpoint(c))
            return STOP_REQUEST;
        if (unlikely(c->vmx_non_root) && vmx_mtf_step(c)) {
            step(c); /* one instruction, then the MTF exit at the next boundary */
        } else if (likely(block_mode_ok(c))) {
            if (likely(!c->pmu.enabled))
                block_run(c);
            else
                block_run_counted(c);
            /* SYSCALL or SYSRET that left TF set traps right after itself */
            if (unlikely(in->exits & EXIT_TF_AT_END) && (c->rflags & FL_TF)) {
                insn_begin(c);
                debug_raise_trap(c, DR6_BS);
            }
        } else {
            step(c);
        }
        if (unlikely(in->exits & EXIT_STOP))
            return STOP_REQUEST;
    }
    return STOP_BUDGET;
}

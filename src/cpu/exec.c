/* The execution loop: at each instruction boundary take pending events, then fetch,
 * decode (Zydis, through a decode cache validated against the bytes in memory, so
 * self-modifying code and page remapping are always seen), dispatch by mnemonic, and
 * on a fault roll back to the instruction start and deliver the exception, escalating
 * to double fault and shutdown as the SDM's exception classes say. */
#include <stdlib.h>
#include <string.h>

#include "cpu/exec.h"
#include "machine/mem.h"

/* ---- handler table (shared by all vCPUs, built once) ---- */
static insn_fn handlers[ZYDIS_MNEMONIC_MAX_VALUE + 1];

/* Instructions whose handlers change no GPR other than RSP before their last possible
 * fault (they read, check, then write one destination; stack operations move RSP only
 * after the access). A fault in them needs only RIP, RFLAGS and RSP restored, so the
 * loop saves just those instead of every GPR. */
static bool light_snapshot[ZYDIS_MNEMONIC_MAX_VALUE + 1];
static const ZydisMnemonic light_snapshot_list[] = {
    ZYDIS_MNEMONIC_MOV, ZYDIS_MNEMONIC_MOVZX, ZYDIS_MNEMONIC_MOVSX, ZYDIS_MNEMONIC_MOVSXD,
    ZYDIS_MNEMONIC_LEA, ZYDIS_MNEMONIC_ADD, ZYDIS_MNEMONIC_OR, ZYDIS_MNEMONIC_ADC,
    ZYDIS_MNEMONIC_SBB, ZYDIS_MNEMONIC_AND, ZYDIS_MNEMONIC_SUB, ZYDIS_MNEMONIC_XOR,
    ZYDIS_MNEMONIC_CMP, ZYDIS_MNEMONIC_TEST, ZYDIS_MNEMONIC_INC, ZYDIS_MNEMONIC_DEC,
    ZYDIS_MNEMONIC_NEG, ZYDIS_MNEMONIC_NOT, ZYDIS_MNEMONIC_SHL, ZYDIS_MNEMONIC_SHR,
    ZYDIS_MNEMONIC_SAR, ZYDIS_MNEMONIC_ROL, ZYDIS_MNEMONIC_ROR, ZYDIS_MNEMONIC_IMUL,
    ZYDIS_MNEMONIC_MUL, ZYDIS_MNEMONIC_DIV, ZYDIS_MNEMONIC_IDIV, ZYDIS_MNEMONIC_PUSH,
    ZYDIS_MNEMONIC_POP, ZYDIS_MNEMONIC_CALL, ZYDIS_MNEMONIC_RET, ZYDIS_MNEMONIC_JMP,
    ZYDIS_MNEMONIC_JB, ZYDIS_MNEMONIC_JBE, ZYDIS_MNEMONIC_JL, ZYDIS_MNEMONIC_JLE,
    ZYDIS_MNEMONIC_JNB, ZYDIS_MNEMONIC_JNBE, ZYDIS_MNEMONIC_JNL, ZYDIS_MNEMONIC_JNLE,
    ZYDIS_MNEMONIC_JNO, ZYDIS_MNEMONIC_JNP, ZYDIS_MNEMONIC_JNS, ZYDIS_MNEMONIC_JNZ,
    ZYDIS_MNEMONIC_JO, ZYDIS_MNEMONIC_JP, ZYDIS_MNEMONIC_JS, ZYDIS_MNEMONIC_JZ,
    ZYDIS_MNEMONIC_SETB, ZYDIS_MNEMONIC_SETBE, ZYDIS_MNEMONIC_SETL, ZYDIS_MNEMONIC_SETLE,
    ZYDIS_MNEMONIC_SETNB, ZYDIS_MNEMONIC_SETNBE, ZYDIS_MNEMONIC_SETNL, ZYDIS_MNEMONIC_SETNLE,
    ZYDIS_MNEMONIC_SETNO, ZYDIS_MNEMONIC_SETNP, ZYDIS_MNEMONIC_SETNS, ZYDIS_MNEMONIC_SETNZ,
    ZYDIS_MNEMONIC_SETO, ZYDIS_MNEMONIC_SETP, ZYDIS_MNEMONIC_SETS, ZYDIS_MNEMONIC_SETZ,
    ZYDIS_MNEMONIC_CMOVB, ZYDIS_MNEMONIC_CMOVBE, ZYDIS_MNEMONIC_CMOVL, ZYDIS_MNEMONIC_CMOVLE,
    ZYDIS_MNEMONIC_CMOVNB, ZYDIS_MNEMONIC_CMOVNBE, ZYDIS_MNEMONIC_CMOVNL, ZYDIS_MNEMONIC_CMOVNLE,
    ZYDIS_MNEMONIC_CMOVNO, ZYDIS_MNEMONIC_CMOVNP, ZYDIS_MNEMONIC_CMOVNS, ZYDIS_MNEMONIC_CMOVNZ,
    ZYDIS_MNEMONIC_CMOVO, ZYDIS_MNEMONIC_CMOVP, ZYDIS_MNEMONIC_CMOVS, ZYDIS_MNEMONIC_CMOVZ,
    ZYDIS_MNEMONIC_BT, ZYDIS_MNEMONIC_BTS, ZYDIS_MNEMONIC_BTR, ZYDIS_MNEMONIC_BTC,
    ZYDIS_MNEMONIC_BSF, ZYDIS_MNEMONIC_BSR, ZYDIS_MNEMONIC_NOP, ZYDIS_MNEMONIC_CDQE,
    ZYDIS_MNEMONIC_CWDE, ZYDIS_MNEMONIC_CBW, ZYDIS_MNEMONIC_CDQ, ZYDIS_MNEMONIC_CQO,
    ZYDIS_MNEMONIC_CWD, ZYDIS_MNEMONIC_POPCNT, ZYDIS_MNEMONIC_LZCNT, ZYDIS_MNEMONIC_TZCNT,
    ZYDIS_MNEMONIC_LEAVE,
};

static void handlers_init(void)
{
    static bool done;
    if (done)
        return;
    for (size_t k = 0; k < ARRAY_SIZE(light_snapshot_list); k++)
        light_snapshot[light_snapshot_list[k]] = true;
    insn_register_alu(handlers);
    insn_register_bits(handlers);
    insn_register_string(handlers);
    insn_register_control(handlers);
    insn_register_system(handlers);
    insn_register_x87(handlers);
    insn_register_sse(handlers);
    operand_init();
    done = true;
}

/* ---- decode cache ---- */
#define DCACHE_BITS 15
#define DCACHE_SIZE (1u << DCACHE_BITS)

struct dcache_entry {
    u64 lin;       /* linear address of the first byte */
    u64 rip;
    u8 key;        /* decoder key (mode, stack width); 0xff = empty */
    u8 len;
    u8 bytes[15];
    insn_fn fn;
    u32 *page_gen; /* code generation word of the page (NULL: validate by bytes) */
    u32 gen;       /* its value when decoded */
    bool light;    /* light_snapshot[] of its mnemonic */
    bool same_page_next; /* the next instruction starts on the same page */
    struct dcache_entry *succ; /* entry last found at next_rip (a hint, always checked) */
    struct insn insn;
};

struct decode_cache {
    struct dcache_entry e[DCACHE_SIZE];
};

static inline unsigned dcache_index(u64 lin) { return (unsigned)((lin ^ (lin >> DCACHE_BITS)) & (DCACHE_SIZE - 1)); }

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
            if (ZYAN_FAILED(ZydisDecoderInit(&in->dec[m][s], zmode[m], sw)))
                nestor_panic("Zydis decoder init failed");
        }
    mem_add_code_watcher(c->mem, code_page_marked, c);
    in->dcache = malloc(sizeof(*in->dcache));
    if (!in->dcache)
        return -1;
    for (unsigned i = 0; i < DCACHE_SIZE; i++)
        in->dcache->e[i].key = 0xff;
    in->delivering = -1;
    return 0;
}

void exec_destroy(struct cpu *c)
{
    free(c->in->dcache);
    c->in->dcache = NULL;
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

_Noreturn void cpu_unsupported_stop(struct cpu *c, const char *what)
{
    struct cpu_event ev = { .kind = EV_UNSUPPORTED, .u.unsupported = { what, true } };
    cpu_intercept(c, &ev);
    c->in->stop_requested = true;
    c->in->exc_vector = EXC_ABANDON;
    longjmp(c->in->fault_jmp, 1);
}

/* ---- instruction boundary ---- */
static inline void insn_begin(struct cpu *c)
{
    struct cpu_internal *in = c->in;
    memcpy(in->saved_gpr, c->gpr, sizeof(c->gpr));
    in->saved_rip = c->rip;
    in->saved_rflags = c->rflags;
    in->snapshot_full = true;
}

/* Vectors with an error code among the exceptions (SDM Vol. 3A, Table 6-1). */
static bool exc_has_error_code(int v)
{
    return v == EXC_DF || v == EXC_TS || v == EXC_NP || v == EXC_SS || v == EXC_GP ||
           v == EXC_PF || v == EXC_AC || v == EXC_CP;
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
    cpu_deliver(c, vector, EVT_HW_EXC, has_error && exc_has_error_code(vector), error, c->rip);
    in->delivering = -1;
}

/* Takes a pending NMI or external interrupt if the CPU can accept it now. */
static void take_events(struct cpu *c)
{
    struct cpu_internal *in = c->in;
    in->check_events = false;
    in->hint = NULL; /* control may go elsewhere: no hint, no link to what comes next */
    in->prev = NULL;
    if (c->intr_shadow) {
        in->check_events = true; /* look again after the shadowed instruction */
        return;
    }
    if (c->nmi_pending && !c->nmi_blocked) {
        c->nmi_pending = false;
        c->state = CPU_RUNNING;
        insn_begin(c);
        in->delivering = EXC_NMI;
        cpu_deliver(c, EXC_NMI, EVT_NMI, false, 0, c->rip);
        in->delivering = -1;
        c->nmi_blocked = true;
        return;
    }
    if (!(c->rflags & FL_IF) || !c->ops->intr_pending)
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
    cpu_deliver(c, (u8)v, EVT_EXT_INTR, false, 0, c->rip);
    in->delivering = -1;
    in->check_events = true; /* another one may be pending at higher priority */
}

/* ---- fetch and decode ---- */
static inline unsigned decoder_key(const struct cpu *c)
{
    unsigned sw = c->mode == MODE_LONG64 ? 2 : (c->seg[SEG_SS].attr & SEG_ATTR_DB) ? 1 : 0;
    return (unsigned)c->mode * 3 + sw;
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

static struct dcache_entry *decode(struct cpu *c)
{
    struct cpu_internal *in = c->in;
    u64 rip = c->rip;
    u64 lin = cpu_is_long64(c) ? rip : (c->seg[SEG_CS].base + rip) & 0xffffffffull;
    if (cpu_is_long64(c) && !cpu_canonical(c, rip))
        cpu_fault(c, EXC_GP, 0);
    unsigned key = decoder_key(c);
    struct dcache_entry *h = in->hint;
    if (h && h->rip == rip && h->lin == lin && h->key == key && c->tlb.epoch == in->fetch_epoch &&
        *h->page_gen == h->gen) {
        /* same page as the instruction before, translation unchanged, bytes unchanged */
        if (unlikely(!cpu_is_long64(c)))
            check_cs_limit(c, rip, h->len);
        return h;
    }
    struct dcache_entry *e = &in->dcache->e[dcache_index(lin)];
    u8 buf[15];
    unsigned on_page = 4096 - (lin & 0xfff);

    if (e->key == key && e->lin == lin && e->rip == rip) {
        if (likely(e->page_gen != NULL)) {
            /* same physical page, and no write to it since the decode */
            const struct tlb_entry *t = lin_code_entry(c, lin);
            if (likely(t->page_gen == e->page_gen && *e->page_gen == e->gen)) {
                if (unlikely(!cpu_is_long64(c)))
                    check_cs_limit(c, rip, e->len);
                in->fetch_epoch = c->tlb.epoch;
                if (in->prev)
                    in->prev->succ = e;
                return e;
            }
        } else {
            /* Crosses a page or runs from MMIO: compare the bytes. Those on this page
             * first: the cached instruction's length says nothing about what is there
             * now, so the next page is touched only if this page still matches. */
            unsigned first = e->len < on_page ? e->len : on_page;
            fetch(c, lin, buf, first);
            if (memcmp(buf, e->bytes, first) == 0 &&
                (first == e->len ||
                 (fetch(c, lin + first, buf + first, e->len - first),
                  memcmp(buf + first, e->bytes + first, e->len - first) == 0))) {
                check_cs_limit(c, rip, e->len);
                return e;
            }
        }
    }

    /* Miss: fetch what is on this page (up to 15), decode, and only if the decoder
     * needs more, touch the next page (which may #PF there). */
    unsigned avail = on_page < 15 ? on_page : 15;
    if (!cpu_is_long64(c) && rip <= c->seg[SEG_CS].limit && c->seg[SEG_CS].limit - rip + 1 < avail)
        avail = (unsigned)(c->seg[SEG_CS].limit - rip + 1);
    if (!cpu_is_long64(c) && rip > c->seg[SEG_CS].limit)
        cpu_fault(c, EXC_GP, 0);
    fetch(c, lin, buf, avail);
    ZydisDecoder *dec = &in->dec[c->mode][key % 3];
    e->key = 0xff;
    ZydisDecoderContext zctx;
    ZyanStatus st = ZydisDecoderDecodeInstruction(dec, &zctx, buf, avail, &e->insn.d);
    if (st == ZYDIS_STATUS_NO_MORE_DATA && avail < 15) {
        if (avail == on_page) {
            fetch(c, lin, buf, 15);
            avail = 15;
            st = ZydisDecoderDecodeInstruction(dec, &zctx, buf, avail, &e->insn.d);
        } else {
            cpu_fault(c, EXC_GP, 0); /* runs past the CS limit */
        }
    }
    if (st == ZYDIS_STATUS_INSTRUCTION_TOO_LONG)
        cpu_fault(c, EXC_GP, 0);
    if (ZYAN_FAILED(st))
        cpu_fault_noerr(c, EXC_UD);
    struct insn *i = &e->insn;
    memset(i->op, 0, sizeof(i->op));
    if (ZYAN_FAILED(ZydisDecoderDecodeOperands(dec, &zctx, &i->d, i->op, i->d.operand_count_visible)))
        cpu_fault_noerr(c, EXC_UD);
    check_cs_limit(c, rip, i->d.length);
    i->osize = (u8)(i->d.operand_width / 8);
    i->asize = (u8)(i->d.address_width / 8);
    i->rep = i->d.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE);
    i->repne = i->d.attributes & ZYDIS_ATTRIB_HAS_REPNE;
    i->lock = i->d.attributes & ZYDIS_ATTRIB_HAS_LOCK;
    u64 next = rip + i->d.length;
    if (c->mode != MODE_LONG64)
        next &= (c->mode == MODE_REAL || c->mode == MODE_V86 || c->mode == MODE_PROT16 ||
                 c->mode == MODE_COMPAT16) ? 0xffffull : 0xffffffffull;
    i->next_rip = next;
    opr_precompute(i);
    e->fn = handlers[i->d.mnemonic];
    e->light = light_snapshot[i->d.mnemonic];
    e->page_gen = NULL;
    e->succ = NULL;
    e->same_page_next = i->d.length < on_page;
    if (i->d.length <= on_page) {
        const struct tlb_entry *t = lin_code_entry(c, lin);
        if (t->page_gen) {
            mem_code_mark(c->mem, t->gpa);
            e->page_gen = t->page_gen;
            e->gen = *t->page_gen;
            in->fetch_epoch = c->tlb.epoch;
            if (in->prev)
                in->prev->succ = e;
        }
    }
    e->lin = lin;
    e->rip = rip;
    e->len = i->d.length;
    memcpy(e->bytes, buf, e->len);
    e->key = (u8)key;
    return e;
}

static void trace_insn(struct cpu *c, const struct insn *i)
{
    static ZydisFormatter fmt;
    static bool fmt_ready;
    if (!fmt_ready) {
        ZydisFormatterInit(&fmt, ZYDIS_FORMATTER_STYLE_INTEL);
        fmt_ready = true;
    }
    char text[128];
    ZydisFormatterFormatInstruction(&fmt, &i->d, i->op, i->d.operand_count_visible, text,
                                    sizeof(text), c->rip, NULL);
    fprintf(c->in->trace, "cpu%d %04x:%016llx  %s\n", c->id, c->seg[SEG_CS].sel,
            (unsigned long long)c->rip, text);
}

/* Executes one instruction (the caller has taken events). */
static void step(struct cpu *c)
{
    struct cpu_internal *in = c->in;
    /* Until the instruction is decoded, only RIP/RFLAGS can need restoring. Scalar
     * loads on purpose (see saved_rsp in exec.h): a merged 16-byte load of the just
     * stored RIP and RFLAGS stalls on store forwarding. */
    in->saved_rip = __atomic_load_n(&c->rip, __ATOMIC_RELAXED);
    in->saved_rflags = __atomic_load_n(&c->rflags, __ATOMIC_RELAXED);
    in->saved_rsp = __atomic_load_n(&c->gpr[R_RSP], __ATOMIC_RELAXED);
    in->snapshot_full = false;
    u8 shadow_before = c->intr_shadow;
    c->intr_shadow = 0;
    bool tf = (c->rflags & FL_TF) && !shadow_before;
    in->rip_written = false;
    in->rf_written = false;
    in->event_delivered = false;
    in->pending_db_bits = 0;

    if (unlikely(in->dr_exec_active) && !(c->rflags & FL_RF)) {
        u64 lin = cpu_is_long64(c) ? c->rip : (c->seg[SEG_CS].base + c->rip) & 0xffffffffull;
        if (debug_check_exec(c, lin))
            cpu_fault_noerr(c, EXC_DB); /* instruction breakpoint: a fault (the handler sets RF to resume) */
    }

    struct dcache_entry *e = decode(c);
    const struct insn *i = &e->insn;
    in->hint = NULL;
    in->prev = NULL;
    if (!e->light) {
        memcpy(in->saved_gpr, c->gpr, sizeof(c->gpr));
        in->snapshot_full = true;
    }
    if (unlikely(in->trace_insns))
        trace_insn(c, i);
    if (unlikely(!e->fn))
        cpu_unimplemented(c, ZydisMnemonicGetString(i->d.mnemonic));
    e->fn(c, i);
    if (!in->rip_written) {
        c->rip = i->next_rip;
        /* falls through on its page: the next fetch may use the successor hint */
        if (e->same_page_next && e->page_gen) {
            in->prev = e;
            in->hint = e->succ && e->succ->page_gen == e->page_gen ? e->succ : NULL;
        }
    }
    if (!in->rf_written)
        c->rflags &= ~FL_RF;
    c->icount++;

    /* traps after the instruction: data breakpoints and single-step */
    u32 db = in->pending_db_bits | in->deferred_db_bits;
    in->deferred_db_bits = 0;
    if (tf && !in->event_delivered)
        db |= BIT(14); /* DR6.BS */
    if (unlikely(db)) {
        if (c->intr_shadow == 2) {
            /* MOV SS / POP SS hold debug traps until after the next instruction */
            in->deferred_db_bits = db;
        } else {
            insn_begin(c);
            debug_raise_trap(c, db);
        }
    }
}

enum cpu_stop_reason cpu_run(struct cpu *c, u64 budget)
{
    struct cpu_internal *in = c->in;
    in->stop_requested = false;
    in->check_events = true;
    in->run_end = c->icount + budget;

    in->hint = NULL;
    in->prev = NULL;
    if (setjmp(in->fault_jmp)) {
        /* A fault: roll back to the instruction start and deliver it. */
        in->hint = NULL;
        in->prev = NULL;
        if (in->snapshot_full)
            memcpy(c->gpr, in->saved_gpr, sizeof(c->gpr));
        else
            c->gpr[R_RSP] = in->saved_rsp;
        c->rip = in->saved_rip;
        c->rflags = in->saved_rflags;
        if (in->exc_vector == EXC_ABANDON) {
            in->delivering = -1;
            return STOP_REQUEST;
        }
        raise_exception(c, in->exc_vector, in->exc_has_error, in->exc_error);
        if (c->state == CPU_SHUTDOWN)
            return STOP_SHUTDOWN;
        if (in->stop_requested)
            return STOP_REQUEST;
    }

    while (c->icount < in->run_end) {
        if (unlikely(c->state != CPU_RUNNING)) {
            if (c->state == CPU_SHUTDOWN)
                return STOP_SHUTDOWN;
            if (c->state == CPU_WAIT_FOR_SIPI)
                return STOP_HALTED;
            /* halted: an unmasked interrupt or NMI wakes it */
            take_events(c);
            if (c->state == CPU_HALTED)
                return STOP_HALTED;
        } else if (unlikely(in->check_events || c->nmi_pending)) {
            take_events(c);
        }
        if (unlikely(in->stop_requested))
            return STOP_REQUEST;
        step(c);
        if (unlikely(in->stop_requested))
            return STOP_REQUEST;
    }
    return STOP_BUDGET;
}

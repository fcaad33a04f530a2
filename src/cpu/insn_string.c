/* String instructions (MOVS, CMPS, SCAS, LODS, STOS, INS, OUTS) with REP/REPE/REPNE, and
 * XLAT, which shares their implicit DS-relative addressing.
 *
 * Addressing: the address size picks SI/ESI/RSI, DI/EDI/RDI and CX/ECX/RCX; the source is
 * DS-relative unless a segment prefix overrides it; the destination is always ES:rDI.
 * A repeated instruction commits after every element (a fault in element k keeps the
 * progress of elements < k) and runs at most STRING_CHUNK elements per call; if
 * elements remain, RIP stays on the instruction so the loop can take interrupts and
 * come back. */
#include <string.h>

#include "cpu/exec.h"

#define STRING_CHUNK 4096

enum string_op { STR_MOVS, STR_CMPS, STR_SCAS, STR_LODS, STR_STOS, STR_INS, STR_OUTS };

/* Advances index register reg by one element in the direction DF says. */
static inline void index_step(struct cpu *c, int reg, unsigned asize, unsigned n) {
    u64 v = gpr_read(c, reg, asize);
    v = (c->rflags & FL_DF) ? v - n : v + n;
    gpr_write(c, reg, asize, v & size_mask(asize));
}

/* One element. */
static inline void string_element(struct cpu *c, const struct insn *i, enum string_op op,
                                  int src_seg) {
    unsigned n = i->osize, as = i->asize;
    u64 si = gpr_read(c, R_RSI, as), di = gpr_read(c, R_RDI, as), v;
    u16 port;
    switch (op) {
    case STR_MOVS:
        v = vmem_read(c, src_seg, si, n);
        vmem_write(c, SEG_ES, di, n, v);
        index_step(c, R_RSI, as, n);
        index_step(c, R_RDI, as, n);
        break;
    case STR_CMPS: {
        u64 a = vmem_read(c, src_seg, si, n), b = vmem_read(c, SEG_ES, di, n);
        flags_set(c, FL_ARITH, flags_sub(a, b, 0, n));
        index_step(c, R_RSI, as, n);
        index_step(c, R_RDI, as, n);
        break;
    }
    case STR_SCAS:
        v = vmem_read(c, SEG_ES, di, n);
        flags_set(c, FL_ARITH, flags_sub(gpr_read(c, R_RAX, n), v, 0, n));
        index_step(c, R_RDI, as, n);
        break;
    case STR_LODS:
        gpr_write(c, R_RAX, n, vmem_read(c, src_seg, si, n));
        index_step(c, R_RSI, as, n);
        break;
    case STR_STOS:
        vmem_write(c, SEG_ES, di, n, gpr_read(c, R_RAX, n));
        index_step(c, R_RDI, as, n);
        break;
    case STR_INS:
        port = (u16)gpr_read(c, R_RDX, 2);
        /* The store must be known to succeed before the port is read (reads of device
         * registers have side effects). */
        vmem_check_write(c, SEG_ES, di, n);
        v = cpu_io_in(c, port, n);
        vmem_write(c, SEG_ES, di, n, v);
        index_step(c, R_RDI, as, n);
        break;
    case STR_OUTS:
        port = (u16)gpr_read(c, R_RDX, 2);
        v = vmem_read(c, src_seg, si, n);
        cpu_io_out(c, port, n, (u32)v);
        index_step(c, R_RSI, as, n);
        break;
    }
}

/* REP MOVS / REP STOS going forward over RAM: one page at a time with host memory
 * operations, which is what the element loop would do, element by element. Overlapping
 * MOVS copies at most the distance between destination and source per step, so the
 * repeated-pattern result of a forward element copy is kept. Returns false (nothing
 * done) when the element loop must handle the next element. */
static bool string_bulk(struct cpu *c, const struct insn *i, enum string_op op, int src_seg) {
    unsigned n = i->osize, as = i->asize;
    u64 amask = size_mask(as);
    u64 count = gpr_read(c, R_RCX, as);
    if ((c->rflags & FL_DF) || count < 2)
        return false;
    u64 di = gpr_read(c, R_RDI, as), si = gpr_read(c, R_RSI, as);
    u64 len = count > (1u << 20) / n ? (1u << 20) : count * n;
    /* no wrap-around of the index registers inside the span */
    if (len - 1 > amask - di)
        len = amask - di + 1;
    if (op == STR_MOVS && len - 1 > amask - si)
        len = amask - si + 1;
    u8 *src = NULL;
    if (op == STR_MOVS) {
        src = vmem_span(c, src_seg, si, &len, false);
        if (!src)
            return false;
    }
    u8 *dst = vmem_span(c, SEG_ES, di, &len, true);
    if (!dst)
        return false;
    if (op == STR_MOVS && dst > src && (u64)(dst - src) < len)
        len = (u64)(dst - src); /* forward overlap: copy no more than the distance */
    len -= len % n;
    if (len == 0)
        return false;
    if (op == STR_MOVS) {
        memmove(dst, src, len);
    } else {
        u64 v = gpr_read(c, R_RAX, n);
        if (n == 1)
            memset(dst, (int)v, len);
        else
            for (u64 k = 0; k < len; k += n)
                memcpy(dst + k, &v, n);
    }
    u64 elems = len / n;
    gpr_write(c, R_RDI, as, (di + len) & amask);
    if (op == STR_MOVS)
        gpr_write(c, R_RSI, as, (si + len) & amask);
    gpr_write(c, R_RCX, as, (count - elems) & amask);
    insn_commit(c);
    return true;
}

static inline void string_insn(struct cpu *c, const struct insn *i, enum string_op op) {
    int src_seg = insn_ds_segment(i);
    /* I/O permission is checked first, even when the count is zero (the port is fixed
     * for the whole instruction). */
    if (op == STR_INS || op == STR_OUTS) {
        u16 port = (u16)gpr_read(c, R_RDX, 2);
        cpu_check_io(c, port, i->osize);
        /* then a VM exit in VMX non-root operation, before the count or any memory
         * access is looked at (SDM 26.1.1: it comes before the segment, limit, #AC
         * and paging faults of the string) */
        cpu_insn_event(c, INSN_EV_STRING_IO,
                       port | (u64)i->osize << 16 | (u64)(op == STR_OUTS) << 24);
    }
    if (!i->rep && !i->repne) {
        string_element(c, i, op, src_seg);
        return;
    }
    bool compares = op == STR_CMPS || op == STR_SCAS;
    unsigned as = i->asize;
    if (op == STR_MOVS || op == STR_STOS) {
        /* a few pages per call, then back to the loop for interrupts */
        for (int pages = 0; pages < 16; pages++) {
            if (!string_bulk(c, i, op, src_seg))
                break;
            if (gpr_read(c, R_RCX, as) == 0)
                return;
        }
    }
    for (unsigned k = 0; k < STRING_CHUNK; k++) {
        u64 count = gpr_read(c, R_RCX, as);
        if (count == 0)
            return;
        string_element(c, i, op, src_seg);
        gpr_write(c, R_RCX, as, (count - 1) & size_mask(as));
        insn_commit(c);
        /* REPE stops when ZF = 0, REPNE when ZF = 1 (CMPS/SCAS only; for the other
         * instructions F2 repeats like F3). */
        if (compares && ((i->repne && (cpu_flags(c) & FL_ZF)) || (!i->repne && !(cpu_flags(c) & FL_ZF))))
            return;
        if (count == 1)
            return;
        if (unlikely(c->in->exits & EXIT_STOP))
            break;
    }
    c->in->exits |= EXIT_RIP_WRITTEN; /* elements remain: execute this instruction again */
    c->in->rep_restarts++;            /* (it retires once, at the end: pmu.c) */
}

static void insn_movs(struct cpu *c, const struct insn *i) { string_insn(c, i, STR_MOVS); }
static void insn_cmps(struct cpu *c, const struct insn *i) { string_insn(c, i, STR_CMPS); }
static void insn_scas(struct cpu *c, const struct insn *i) { string_insn(c, i, STR_SCAS); }
static void insn_lods(struct cpu *c, const struct insn *i) { string_insn(c, i, STR_LODS); }
static void insn_stos(struct cpu *c, const struct insn *i) { string_insn(c, i, STR_STOS); }
static void insn_ins(struct cpu *c, const struct insn *i) { string_insn(c, i, STR_INS); }
static void insn_outs(struct cpu *c, const struct insn *i) { string_insn(c, i, STR_OUTS); }

/* MOVSD and CMPSD are also SSE2 mnemonics (F2 0F 10/11, F2 0F C2). The string forms are
 * in the legacy opcode map; other forms go to the handler registered before this one
 * (or, if the SSE group registers later, it calls insn_string_movsd/cmpsd itself). */
static insn_fn sse_movsd, sse_cmpsd;

void insn_string_movsd(struct cpu *c, const struct insn *i) {
    if (i->d.opcode_map != ZYDIS_OPCODE_MAP_DEFAULT) {
        if (!sse_movsd)
            cpu_unimplemented(c, "movsd (SSE2)");
        sse_movsd(c, i);
        return;
    }
    string_insn(c, i, STR_MOVS);
}

void insn_string_cmpsd(struct cpu *c, const struct insn *i) {
    if (i->d.opcode_map != ZYDIS_OPCODE_MAP_DEFAULT) {
        if (!sse_cmpsd)
            cpu_unimplemented(c, "cmpsd (SSE2)");
        sse_cmpsd(c, i);
        return;
    }
    string_insn(c, i, STR_CMPS);
}

static void insn_xlat(struct cpu *c, const struct insn *i) {
    u64 ea = (gpr_read(c, R_RBX, i->asize) + gpr_read(c, R_RAX, 1)) & size_mask(i->asize);
    gpr_write(c, R_RAX, 1, vmem_read(c, insn_ds_segment(i), ea, 1));
}

void insn_register_string(insn_fn *t) {
    static const struct { ZydisMnemonic mn; insn_fn fn; } table[] = {
        { ZYDIS_MNEMONIC_MOVSB, insn_movs }, { ZYDIS_MNEMONIC_MOVSW, insn_movs },
        { ZYDIS_MNEMONIC_MOVSQ, insn_movs },
        { ZYDIS_MNEMONIC_CMPSB, insn_cmps }, { ZYDIS_MNEMONIC_CMPSW, insn_cmps },
        { ZYDIS_MNEMONIC_CMPSQ, insn_cmps },
        { ZYDIS_MNEMONIC_SCASB, insn_scas }, { ZYDIS_MNEMONIC_SCASW, insn_scas },
        { ZYDIS_MNEMONIC_SCASD, insn_scas }, { ZYDIS_MNEMONIC_SCASQ, insn_scas },
        { ZYDIS_MNEMONIC_LODSB, insn_lods }, { ZYDIS_MNEMONIC_LODSW, insn_lods },
        { ZYDIS_MNEMONIC_LODSD, insn_lods }, { ZYDIS_MNEMONIC_LODSQ, insn_lods },
        { ZYDIS_MNEMONIC_STOSB, insn_stos }, { ZYDIS_MNEMONIC_STOSW, insn_stos },
        { ZYDIS_MNEMONIC_STOSD, insn_stos }, { ZYDIS_MNEMONIC_STOSQ, insn_stos },
        { ZYDIS_MNEMONIC_INSB, insn_ins },   { ZYDIS_MNEMONIC_INSW, insn_ins },
        { ZYDIS_MNEMONIC_INSD, insn_ins },
        { ZYDIS_MNEMONIC_OUTSB, insn_outs }, { ZYDIS_MNEMONIC_OUTSW, insn_outs },
        { ZYDIS_MNEMONIC_OUTSD, insn_outs },
        { ZYDIS_MNEMONIC_XLAT, insn_xlat },
    };
    for (size_t k = 0; k < ARRAY_SIZE(table); k++)
        t[table[k].mn] = table[k].fn;
    sse_movsd = t[ZYDIS_MNEMONIC_MOVSD];
    sse_cmpsd = t[ZYDIS_MNEMONIC_CMPSD];
    t[ZYDIS_MNEMONIC_MOVSD] = insn_string_movsd;
    t[ZYDIS_MNEMONIC_CMPSD] = insn_string_cmpsd;
}

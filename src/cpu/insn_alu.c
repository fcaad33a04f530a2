/* General-purpose integer instructions: data movement, arithmetic and logic, shifts and
 * rotates, multiply/divide, stack operations, BCD adjustment, atomics (XADD, CMPXCHG*),
 * and the instructions that architecturally do nothing here (NOP family, prefetches,
 * fences, cache flushes).
 *
 * Handlers read operands through opr_* and leave faults to cpu_fault: the loop restores
 * GPRs/RIP/RFLAGS, so a handler only has to order its writes so that memory (the one
 * thing that is not restored) is written last, or after every check that can fail. */
#include "cpu/exec.h"

/* ---- small helpers ---- */

static inline u64 sign_extend(u64 v, unsigned bytes) {
    unsigned shift = 64 - bytes * 8;
    return (u64)((s64)(v << shift) >> shift);
}

static inline u64 msb(u64 v, unsigned bytes) { return (v >> (bytes * 8 - 1)) & 1; }

/* Operand n as a value of the destination's size: immediates come from the decoder
 * already sign-extended to 64 bits; everything else through opr_read. */
static inline u64 src_read(struct cpu *c, const struct insn *i, int n, unsigned bytes) {
    if (opr_is_imm(i, n))
        return i->op[n].imm.value.u & size_mask(bytes);
    return opr_read(c, i, n) & size_mask(bytes);
}

static inline u64 cf(const struct cpu *c) { return cpu_cf(c); }

static inline u64 fl_if(bool cond, u64 flag) { return cond ? flag : 0; }

/* ---- MOV family ---- */

static bool is_cr(const struct insn_operand *op) {
    return op->type == ZYDIS_OPERAND_TYPE_REGISTER && op->reg.value >= ZYDIS_REGISTER_CR0 &&
           op->reg.value <= ZYDIS_REGISTER_CR15;
}

static void insn_mov(struct cpu *c, const struct insn *i) {
    /* MOV to/from CRn is privileged in every mode (#GP(0) at CPL > 0, V86 included);
     * MOV DRn checks privilege in cpu_read_dr/cpu_write_dr, after a VMX MOV-DR exit. */
    if (unlikely(is_cr(&i->op[0]) || is_cr(&i->op[1])) && c->cpl != 0)
        cpu_fault(c, EXC_GP, 0);
    opr_write(c, i, 0, src_read(c, i, 1, opr_bytes(i, 0)));
}

static void insn_movzx(struct cpu *c, const struct insn *i) {
    opr_write(c, i, 0, opr_read(c, i, 1) & size_mask(opr_bytes(i, 1)));
}

static void insn_movsx(struct cpu *c, const struct insn *i) {
    u64 v = sign_extend(opr_read(c, i, 1), opr_bytes(i, 1));
    opr_write(c, i, 0, v & size_mask(opr_bytes(i, 0)));
}

static void insn_lea(struct cpu *c, const struct insn *i) {
    opr_write(c, i, 0, opr_ea(c, i, 1) & size_mask(opr_bytes(i, 0)));
}

static void insn_xchg(struct cpu *c, const struct insn *i) {
    u64 a = opr_read(c, i, 0), b = opr_read(c, i, 1);
    /* Register first: if the memory store faults the register is restored by the loop. */
    opr_write(c, i, 1, a);
    opr_write(c, i, 0, b);
}

/* ---- two-operand arithmetic and logic ---- */

enum alu_op { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP, ALU_TEST };

/* The result of a op b (unmasked), and the kind of lazy flag record it leaves. */
static inline u64 alu_compute(const struct cpu *c, enum alu_op op, u64 a, u64 b, u8 *kind) {
    switch (op) {
    case ALU_ADD: *kind = LZ_ADD; return a + b;
    case ALU_ADC: *kind = LZ_ADD; return a + b + cf(c);
    case ALU_SUB: case ALU_CMP: *kind = LZ_SUB; return a - b;
    case ALU_SBB: *kind = LZ_SUB; return a - b - cf(c);
    case ALU_AND: case ALU_TEST: *kind = LZ_LOGIC; return a & b;
    case ALU_OR: *kind = LZ_LOGIC; return a | b;
    default: *kind = LZ_LOGIC; return a ^ b;
    }
}

static inline void alu_binop(struct cpu *c, const struct insn *i, enum alu_op op) {
    unsigned n = opr_bytes(i, 0);
    u64 m = size_mask(n);
    u64 a = opr_read(c, i, 0) & m, b = src_read(c, i, 1, n);
    u8 kind;
    u64 r = alu_compute(c, op, a, b, &kind) & m;
    if (op != ALU_CMP && op != ALU_TEST)
        opr_write(c, i, 0, r);
    flags_lazy(c, kind, a, b, r, n);
}

static void insn_add(struct cpu *c, const struct insn *i) { alu_binop(c, i, ALU_ADD); }
static void insn_or(struct cpu *c, const struct insn *i) { alu_binop(c, i, ALU_OR); }
static void insn_adc(struct cpu *c, const struct insn *i) { alu_binop(c, i, ALU_ADC); }
static void insn_sbb(struct cpu *c, const struct insn *i) { alu_binop(c, i, ALU_SBB); }
static void insn_and(struct cpu *c, const struct insn *i) { alu_binop(c, i, ALU_AND); }
static void insn_sub(struct cpu *c, const struct insn *i) { alu_binop(c, i, ALU_SUB); }
static void insn_xor(struct cpu *c, const struct insn *i) { alu_binop(c, i, ALU_XOR); }
static void insn_cmp(struct cpu *c, const struct insn *i) { alu_binop(c, i, ALU_CMP); }
static void insn_test(struct cpu *c, const struct insn *i) { alu_binop(c, i, ALU_TEST); }

static void insn_inc(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    u64 a = opr_read(c, i, 0) & size_mask(n);
    u64 old_cf = cpu_cf(c); /* CF is preserved */
    opr_write(c, i, 0, (a + 1) & size_mask(n));
    flags_lazy(c, LZ_INC, a, 1, (a + 1) & size_mask(n), n);
    c->in->lz.cf = (u8)old_cf;
}

static void insn_dec(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    u64 a = opr_read(c, i, 0) & size_mask(n);
    u64 old_cf = cpu_cf(c); /* CF is preserved */
    opr_write(c, i, 0, (a - 1) & size_mask(n));
    flags_lazy(c, LZ_DEC, a, 1, (a - 1) & size_mask(n), n);
    c->in->lz.cf = (u8)old_cf;
}

static void insn_neg(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    u64 a = opr_read(c, i, 0) & size_mask(n);
    opr_write(c, i, 0, (0 - a) & size_mask(n));
    flags_set(c, FL_ARITH, flags_sub(0, a, 0, n)); /* CF = (a != 0) */
}

static void insn_not(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    opr_write(c, i, 0, ~opr_read(c, i, 0) & size_mask(n));
}

/* ADCX/ADOX: add with carry through CF only / OF only (ADX). */
static void adx_op(struct cpu *c, const struct insn *i, u64 flag) {
    if (!cpu_has(c, CF_ADX))
        cpu_fault_noerr(c, EXC_UD);
    unsigned n = opr_bytes(i, 0);
    u64 m = size_mask(n), a = opr_read(c, i, 0) & m, b = opr_read(c, i, 1) & m;
    u64 cin = (cpu_flags(c) & flag) ? 1 : 0;
    u64 r = (a + b + cin) & m;
    bool carry = n == 8 ? (r < a || (cin && r == a)) : ((a + b + cin) >> (n * 8)) != 0;
    opr_write(c, i, 0, r);
    flags_set(c, flag, carry ? flag : 0);
}
static void insn_adcx(struct cpu *c, const struct insn *i) { adx_op(c, i, FL_CF); }
static void insn_adox(struct cpu *c, const struct insn *i) { adx_op(c, i, FL_OF); }

/* ---- shifts and rotates ---- */

enum shift_op { SH_ROL, SH_ROR, SH_RCL, SH_RCR, SH_SHL, SH_SHR, SH_SAR };

/* gpr_dst: operand 0 is known at decode to be a GPR of its natural size (the specialised
 * forms below), read and written directly. */
static inline void shift_rotate(struct cpu *c, const struct insn *i, enum shift_op op, bool gpr_dst) {
    unsigned n = opr_bytes(i, 0), bits = n * 8;
    u64 m = size_mask(n);
    const struct opd *d = &i->opd[0];
#define SHIFT_DST_WRITE(v) (gpr_dst ? opd_gpr_write(c, d, (v)) : opr_write(c, i, 0, (v)))
    u64 a = (gpr_dst ? c->gpr[d->reg] : opr_read(c, i, 0)) & m;
    unsigned cnt = (unsigned)src_read(c, i, 1, 1) & (n == 8 ? 63 : 31);
    /* SHL/SHR/SAR replace every arithmetic flag; rotates keep some (made exact first) */
    u64 r = a, f = op >= SH_SHL ? c->rflags : cpu_flags(c), carry;

    if (cnt == 0) {
        /* No flags change; the destination is still written (32-bit registers zero-extend). */
        SHIFT_DST_WRITE(a);
        return;
    }
    switch (op) {
    case SH_ROL: {
        unsigned k = cnt & (bits - 1);
        r = k ? ((a << k) | (a >> (bits - k))) & m : a;
        carry = r & 1;
        f = (f & ~(FL_CF | FL_OF)) | fl_if(carry, FL_CF) | fl_if(msb(r, n) ^ carry, FL_OF);
        break;
    }
    case SH_ROR: {
        unsigned k = cnt & (bits - 1);
        r = k ? ((a >> k) | (a << (bits - k))) & m : a;
        carry = msb(r, n);
        f = (f & ~(FL_CF | FL_OF)) | fl_if(carry, FL_CF) |
            fl_if(msb(r, n) ^ ((r >> (bits - 2)) & 1), FL_OF);
        break;
    }
    case SH_RCL:
    case SH_RCR: {
        /* Rotate the (bits+1)-bit quantity CF:dest. */
        unsigned k = n == 1 ? cnt % 9 : n == 2 ? cnt % 17 : cnt;
        if (k == 0)
            break;
        unsigned __int128 w = ((unsigned __int128)cf(c) << bits) | a;
        unsigned __int128 wm = ((unsigned __int128)1 << (bits + 1)) - 1;
        if (op == SH_RCL)
            w = ((w << k) | (w >> (bits + 1 - k))) & wm;
        else
            w = ((w >> k) | (w << (bits + 1 - k))) & wm;
        r = (u64)w & m;
        carry = (u64)(w >> bits) & 1;
        u64 of = op == SH_RCL ? msb(r, n) ^ carry : msb(r, n) ^ ((r >> (bits - 2)) & 1);
        f = (f & ~(FL_CF | FL_OF)) | fl_if(carry, FL_CF) | fl_if(of, FL_OF);
        break;
    }
    case SH_SHL:
        r = (a << cnt) & m;
        carry = cnt <= bits ? (a >> (bits - cnt)) & 1 : 0;
        f = (f & ~FL_ARITH) | flags_szp(r, n) | fl_if(carry, FL_CF) |
            fl_if(msb(r, n) ^ carry, FL_OF);
        break;
    case SH_SHR:
        r = a >> cnt;
        carry = (a >> (cnt - 1)) & 1;
        f = (f & ~FL_ARITH) | flags_szp(r, n) | fl_if(carry, FL_CF) | fl_if(msb(a, n), FL_OF);
        break;
    case SH_SAR: {
        s64 s = (s64)sign_extend(a, n);
        r = (u64)(s >> cnt) & m;
        carry = (u64)(s >> (cnt - 1)) & 1;
        f = (f & ~FL_ARITH) | flags_szp(r, n) | fl_if(carry, FL_CF);
        break;
    }
    }
    SHIFT_DST_WRITE(r);
#undef SHIFT_DST_WRITE
    c->in->lz.op = LZ_NONE;
    c->rflags = f;
}

static void insn_rol(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_ROL, false); }
static void rol_r(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_ROL, true); }
static void insn_ror(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_ROR, false); }
static void ror_r(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_ROR, true); }
static void insn_rcl(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_RCL, false); }
static void rcl_r(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_RCL, true); }
static void insn_rcr(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_RCR, false); }
static void rcr_r(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_RCR, true); }
static void insn_shl(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_SHL, false); }
static void shl_r(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_SHL, true); }
static void insn_shr(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_SHR, false); }
static void shr_r(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_SHR, true); }
static void insn_sar(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_SAR, false); }
static void sar_r(struct cpu *c, const struct insn *i) { shift_rotate(c, i, SH_SAR, true); }

/* SHLD/SHRD. For 16-bit operands with a count above 16 the SDM leaves the result
 * undefined; nestor shifts the 48-bit pattern dest:src:dest (deterministic, untested). */
static void double_shift(struct cpu *c, const struct insn *i, bool left) {
    unsigned n = opr_bytes(i, 0), bits = n * 8;
    u64 m = size_mask(n);
    u64 a = opr_read(c, i, 0) & m, b = opr_read(c, i, 1) & m;
    unsigned cnt = (unsigned)src_read(c, i, 2, 1) & (n == 8 ? 63 : 31);
    u64 r, carry;

    if (cnt == 0) {
        opr_write(c, i, 0, a);
        return;
    }
    if (n == 2) {
        /* 48-bit pattern: for SHLD dest:src:dest (dest on top), for SHRD the same with
         * dest at the bottom; the result is the 16-bit window the shift moves dest to. */
        u64 w = (a << 32) | (b << 16) | a;
        if (left) {
            r = (w >> (32 - cnt)) & m;
            carry = (w >> (48 - cnt)) & 1;
        } else {
            r = (w >> cnt) & m;
            carry = (w >> (cnt - 1)) & 1;
        }
    } else if (left) {
        r = ((a << cnt) | (b >> (bits - cnt))) & m;
        carry = (a >> (bits - cnt)) & 1;
    } else {
        r = ((a >> cnt) | (b << (bits - cnt))) & m;
        carry = (a >> (cnt - 1)) & 1;
    }
    opr_write(c, i, 0, r);
    flags_set(c, FL_ARITH, flags_szp(r, n) | fl_if(carry, FL_CF) | fl_if(msb(r, n) ^ msb(a, n), FL_OF));
}
static void insn_shld(struct cpu *c, const struct insn *i) { double_shift(c, i, true); }
static void insn_shrd(struct cpu *c, const struct insn *i) { double_shift(c, i, false); }

/* ---- multiply and divide ---- */

/* The implicit accumulator pair of MUL/IMUL/DIV/IDIV: AX (8-bit), DX:AX, EDX:EAX, RDX:RAX. */
static unsigned __int128 acc_pair_read(const struct cpu *c, unsigned n) {
    if (n == 1)
        return gpr_read(c, R_RAX, 2);
    return ((unsigned __int128)gpr_read(c, R_RDX, n) << (n * 8)) | gpr_read(c, R_RAX, n);
}

/* Writes low/high halves: AL/AH for bytes, else rAX/rDX. */
static void acc_pair_write(struct cpu *c, unsigned n, u64 lo, u64 hi) {
    if (n == 1) {
        gpr_write(c, R_RAX, 2, ((hi & 0xff) << 8) | (lo & 0xff));
    } else {
        gpr_write(c, R_RAX, n, lo & size_mask(n));
        gpr_write(c, R_RDX, n, hi & size_mask(n));
    }
}

static void insn_mul(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    u64 m = size_mask(n);
    u64 a = gpr_read(c, R_RAX, n), b = opr_read(c, i, 0) & m;
    unsigned __int128 p = (unsigned __int128)a * b;
    u64 lo = (u64)p & m, hi = (u64)(p >> (n * 8)) & m;
    acc_pair_write(c, n, lo, hi);
    flags_set(c, FL_ARITH, flags_szp(lo, n) | fl_if(hi != 0, FL_CF | FL_OF));
}

static void insn_imul(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    u64 m = size_mask(n);
    int nops = i->d.operand_count_visible;
    if (nops == 1) {
        s64 a = (s64)sign_extend(gpr_read(c, R_RAX, n), n);
        s64 b = (s64)sign_extend(opr_read(c, i, 0), n);
        __int128 p = (__int128)a * b;
        u64 lo = (u64)p & m, hi = (u64)((unsigned __int128)p >> (n * 8)) & m;
        bool overflow = (__int128)(s64)sign_extend(lo, n) != p;
        acc_pair_write(c, n, lo, hi);
        flags_set(c, FL_ARITH, flags_szp(lo, n) | fl_if(overflow, FL_CF | FL_OF));
        return;
    }
    s64 a = (s64)sign_extend(nops == 2 ? opr_read(c, i, 0) : opr_read(c, i, 1), n);
    s64 b = (s64)sign_extend(src_read(c, i, nops - 1, n), n);
    __int128 p = (__int128)a * b;
    u64 lo = (u64)p & m;
    bool overflow = (__int128)(s64)sign_extend(lo, n) != p;
    opr_write(c, i, 0, lo);
    flags_set(c, FL_ARITH, flags_szp(lo, n) | fl_if(overflow, FL_CF | FL_OF));
}

static void insn_div(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    u64 d = opr_read(c, i, 0) & size_mask(n);
    if (d == 0)
        cpu_fault_noerr(c, EXC_DE);
    unsigned __int128 x = acc_pair_read(c, n);
    unsigned __int128 q = x / d;
    if (q > size_mask(n))
        cpu_fault_noerr(c, EXC_DE);
    acc_pair_write(c, n, (u64)q, (u64)(x % d));
}

static void insn_idiv(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0), bits = n * 8;
    u64 draw = opr_read(c, i, 0) & size_mask(n);
    if (draw == 0)
        cpu_fault_noerr(c, EXC_DE);
    /* Work on magnitudes in unsigned arithmetic: no signed overflow is possible. */
    unsigned __int128 x = acc_pair_read(c, n);
    bool xneg = (u64)(x >> (2 * bits - 1)) & 1;
    if (bits * 2 < 128)
        x &= ((unsigned __int128)1 << (2 * bits)) - 1;
    unsigned __int128 xmag = xneg ? ((~x + 1) & (bits * 2 < 128 ? (((unsigned __int128)1 << (2 * bits)) - 1)
                                                                 : ~(unsigned __int128)0))
                                  : x;
    bool dneg = msb(draw, n);
    u64 dmag = dneg ? (0 - draw) & size_mask(n) : draw;
    unsigned __int128 qmag = xmag / dmag, rmag = xmag % dmag;
    bool qneg = xneg != dneg;
    unsigned __int128 limit = (unsigned __int128)1 << (bits - 1); /* |min| */
    if (qneg ? qmag > limit : qmag >= limit)
        cpu_fault_noerr(c, EXC_DE);
    u64 q = qneg ? 0 - (u64)qmag : (u64)qmag;
    u64 r = xneg ? 0 - (u64)rmag : (u64)rmag;
    acc_pair_write(c, n, q, r);
}

/* ---- sign extension of the accumulator ---- */

static void insn_cbw_family(struct cpu *c, const struct insn *i) { /* CBW, CWDE, CDQE */
    unsigned n = i->osize;
    gpr_write(c, R_RAX, n, sign_extend(gpr_read(c, R_RAX, n / 2), n / 2) & size_mask(n));
}

static void insn_cwd_family(struct cpu *c, const struct insn *i) { /* CWD, CDQ, CQO */
    unsigned n = i->osize;
    gpr_write(c, R_RDX, n, msb(gpr_read(c, R_RAX, n), n) ? size_mask(n) : 0);
}

/* ---- stack ---- */

/* Writes the stack pointer bits the stack's address size covers (SP, ESP or RSP), as
 * cpu_push/cpu_pop do. */
static void stack_pointer_set(struct cpu *c, u64 v) {
    u64 sm = stack_mask(c);
    c->gpr[R_RSP] = (c->gpr[R_RSP] & ~sm) | (v & sm);
}

static bool is_seg_reg(const struct insn_operand *op) {
    return op->type == ZYDIS_OPERAND_TYPE_REGISTER && op->reg.value >= ZYDIS_REGISTER_ES &&
           op->reg.value <= ZYDIS_REGISTER_GS;
}

static void insn_push(struct cpu *c, const struct insn *i) {
    unsigned n = i->osize;
    if (unlikely(is_seg_reg(&i->op[0])) && n == 4 && c->model->vendor == VENDOR_INTEL) {
        /* A segment register pushed with a 32-bit operand size: current Intel
         * processors store only the 16-bit selector and leave the rest of the slot
         * (SDM PUSH); AMD processors store it zero-extended, as cpu_push does. With a
         * 64-bit operand size both vendors push it zero-extended (SDM PUSH). */
        u64 sel = opr_read(c, i, 0) & 0xffff;
        u64 sp = (gpr_read(c, R_RSP, 8) - n) & stack_mask(c);
        vmem_check_write(c, SEG_SS, sp, n);
        vmem_write(c, SEG_SS, sp, 2, sel);
        stack_pointer_set(c, sp);
        return;
    }
    cpu_push(c, src_read(c, i, 0, n), n);
}

static void insn_pop(struct cpu *c, const struct insn *i) {
    unsigned n = i->osize;
    /* The stack pointer moves first: a memory destination addressed through rSP uses
     * the incremented value (SDM POP). */
    u64 v = cpu_pop(c, n);
    opr_write(c, i, 0, v); /* POP SS: opr_write sets the interrupt shadow */
}

static void insn_pusha(struct cpu *c, const struct insn *i) { /* PUSHA, PUSHAD */
    unsigned n = i->osize;
    u64 sm = stack_mask(c);
    u64 sp = gpr_read(c, R_RSP, 8), old_sp = sp;
    u64 bottom = (sp - 8 * n) & sm;
    if (bottom + 8 * n - 1 <= sm) /* no wrap: check the whole block before writing */
        vmem_check_write(c, SEG_SS, bottom, 8 * n);
    static const int order[8] = { R_RAX, R_RCX, R_RDX, R_RBX, R_RSP, R_RBP, R_RSI, R_RDI };
    for (int k = 0; k < 8; k++) {
        u64 v = order[k] == R_RSP ? old_sp : gpr_read(c, order[k], n);
        sp = (sp - n) & sm;
        vmem_write(c, SEG_SS, sp, n, v & size_mask(n));
    }
    stack_pointer_set(c, sp);
}

static void insn_popa(struct cpu *c, const struct insn *i) { /* POPA, POPAD */
    unsigned n = i->osize;
    u64 sm = stack_mask(c);
    u64 sp = gpr_read(c, R_RSP, 8) & sm;
    static const int order[8] = { R_RDI, R_RSI, R_RBP, R_RSP, R_RBX, R_RDX, R_RCX, R_RAX };
    u64 vals[8];
    for (int k = 0; k < 8; k++) {
        vals[k] = vmem_read(c, SEG_SS, sp, n);
        sp = (sp + n) & sm;
    }
    for (int k = 0; k < 8; k++)
        if (order[k] != R_RSP) /* the saved stack pointer is skipped */
            gpr_write(c, order[k], n, vals[k]);
    stack_pointer_set(c, sp);
}

/* ---- flags ---- */

static void lahf_sahf_check(struct cpu *c) {
    if (cpu_is_long64(c) && !cpu_has(c, CF_LAHF_LM))
        cpu_fault_noerr(c, EXC_UD);
}

static void insn_lahf(struct cpu *c, const struct insn *i) {
    (void)i;
    lahf_sahf_check(c);
    u64 ah = (cpu_flags(c) & (FL_SF | FL_ZF | FL_AF | FL_PF | FL_CF)) | FL_FIXED1;
    gpr_write(c, R_RAX, 2, (ah << 8) | gpr_read(c, R_RAX, 1));
}

static void insn_sahf(struct cpu *c, const struct insn *i) {
    (void)i;
    lahf_sahf_check(c);
    flags_set(c, FL_SF | FL_ZF | FL_AF | FL_PF | FL_CF, gpr_read8h(c, 0));
}

/* SALC (D6, outside 64-bit mode, where the decoder rejects it): AL = CF ? FFh : 0,
 * flags unchanged. Intel documented it late, but every Intel and AMD CPU executes it. */
static void insn_salc(struct cpu *c, const struct insn *i) {
    (void)i;
    gpr_write(c, R_RAX, 1, cpu_cf(c) ? 0xff : 0);
}

static void insn_cmc(struct cpu *c, const struct insn *i) { (void)i; flags_set(c, FL_CF, ~cpu_cf(c)); }
static void insn_clc(struct cpu *c, const struct insn *i) { (void)i; flags_set(c, FL_CF, 0); }
static void insn_stc(struct cpu *c, const struct insn *i) { (void)i; flags_set(c, FL_CF, FL_CF); }
static void insn_cld(struct cpu *c, const struct insn *i) { (void)i; c->rflags &= ~FL_DF; }
static void insn_std(struct cpu *c, const struct insn *i) { (void)i; c->rflags |= FL_DF; }

/* ---- exchange-and-compare family ---- */

static void insn_xadd(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    u64 m = size_mask(n);
    u64 d = opr_read(c, i, 0) & m, s = opr_read(c, i, 1) & m;
    /* SRC <- DEST, then DEST <- sum: with the same register for both, the sum wins. */
    opr_write(c, i, 1, d);
    opr_write(c, i, 0, (d + s) & m);
    flags_set(c, FL_ARITH, flags_add(d, s, 0, n));
}

static void insn_cmpxchg(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    u64 m = size_mask(n);
    u64 d = opr_read(c, i, 0) & m, acc = gpr_read(c, R_RAX, n);
    u64 f = flags_sub(acc, d, 0, n);
    if (acc == d) {
        opr_write(c, i, 0, opr_read(c, i, 1) & m);
    } else {
        /* A memory destination is written back unchanged (a locked read-modify-write);
         * a register destination is not written at all (no zero-extension). */
        if (opr_is_mem(i, 0))
            opr_write(c, i, 0, d);
        gpr_write(c, R_RAX, n, d);
    }
    flags_set(c, FL_ARITH, f);
}

static void insn_cmpxchg8b(struct cpu *c, const struct insn *i) {
    if (!cpu_has(c, CF_CX8))
        cpu_fault_noerr(c, EXC_UD);
    u64 mem = opr_read(c, i, 0);
    u64 cmp = (gpr_read(c, R_RDX, 4) << 32) | gpr_read(c, R_RAX, 4);
    if (mem == cmp) {
        opr_write(c, i, 0, (gpr_read(c, R_RCX, 4) << 32) | gpr_read(c, R_RBX, 4));
        flags_set(c, FL_ZF, FL_ZF);
    } else {
        opr_write(c, i, 0, mem);
        gpr_write(c, R_RAX, 4, mem & 0xffffffffu);
        gpr_write(c, R_RDX, 4, mem >> 32);
        flags_set(c, FL_ZF, 0);
    }
}

static void insn_cmpxchg16b(struct cpu *c, const struct insn *i) {
    if (!cpu_has(c, CF_CX16))
        cpu_fault_noerr(c, EXC_UD);
    /* The alignment check is on the linear address; CMPXCHG16B exists only in 64-bit
     * mode, where only FS and GS have a base. */
    int seg = opr_seg(i, 0);
    u64 base = seg == SEG_FS || seg == SEG_GS ? c->seg[seg].base : 0;
    if ((base + opr_ea(c, i, 0)) & 15)
        cpu_fault(c, EXC_GP, 0);
    u64 mem[2];
    opr_read_bytes(c, i, 0, mem, 16);
    if (mem[0] == c->gpr[R_RAX] && mem[1] == c->gpr[R_RDX]) {
        u64 nv[2] = { c->gpr[R_RBX], c->gpr[R_RCX] };
        opr_write_bytes(c, i, 0, nv, 16);
        flags_set(c, FL_ZF, FL_ZF);
    } else {
        opr_write_bytes(c, i, 0, mem, 16);
        c->gpr[R_RAX] = mem[0];
        c->gpr[R_RDX] = mem[1];
        flags_set(c, FL_ZF, 0);
    }
}

static void insn_bswap(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    u64 v = opr_read(c, i, 0);
    /* 16-bit BSWAP is undefined in the SDM; processors clear the register's low word. */
    u64 r = n == 8 ? __builtin_bswap64(v) : n == 4 ? __builtin_bswap32((u32)v) : 0;
    opr_write(c, i, 0, r);
}

/* ---- BCD adjustment (invalid in 64-bit mode: the decoder rejects them there) ---- */

static void insn_daa(struct cpu *c, const struct insn *i) {
    (void)i;
    u64 al = gpr_read(c, R_RAX, 1), old_al = al;
    bool old_cf = cpu_flags(c) & FL_CF, af = c->rflags & FL_AF, carry;
    if ((al & 0xf) > 9 || af) {
        al = (al + 6) & 0xff;
        af = true;
    } else {
        af = false;
    }
    carry = old_al > 0x99 || old_cf;
    if (carry)
        al = (al + 0x60) & 0xff;
    gpr_write(c, R_RAX, 1, al);
    flags_set(c, FL_ARITH & ~FL_OF, flags_szp(al, 1) | fl_if(af, FL_AF) | fl_if(carry, FL_CF));
}

static void insn_das(struct cpu *c, const struct insn *i) {
    (void)i;
    u64 al = gpr_read(c, R_RAX, 1), old_al = al;
    bool old_cf = cpu_flags(c) & FL_CF, af = c->rflags & FL_AF, carry = false;
    if ((al & 0xf) > 9 || af) {
        carry = old_cf || al < 6;
        al = (al - 6) & 0xff;
        af = true;
    } else {
        af = false;
    }
    if (old_al > 0x99 || old_cf) {
        al = (al - 0x60) & 0xff;
        carry = true;
    }
    gpr_write(c, R_RAX, 1, al);
    flags_set(c, FL_ARITH & ~FL_OF, flags_szp(al, 1) | fl_if(af, FL_AF) | fl_if(carry, FL_CF));
}

static void ascii_adjust(struct cpu *c, bool add) { /* AAA, AAS */
    u64 ax = gpr_read(c, R_RAX, 2);
    bool adjust = (ax & 0xf) > 9 || (cpu_flags(c) & FL_AF);
    if (adjust) /* AAA: AX += 0x106; AAS: AX -= 6, AH -= 1 (the AL borrow reaches AH) */
        ax = add ? ax + 0x106 : ax - 6 - 0x100;
    ax = (ax & 0xff00) | (ax & 0x0f);
    gpr_write(c, R_RAX, 2, ax & 0xffff);
    flags_set(c, FL_AF | FL_CF, adjust ? FL_AF | FL_CF : 0);
}
static void insn_aaa(struct cpu *c, const struct insn *i) { (void)i; ascii_adjust(c, true); }
static void insn_aas(struct cpu *c, const struct insn *i) { (void)i; ascii_adjust(c, false); }

static void insn_aam(struct cpu *c, const struct insn *i) {
    u64 base = i->op[0].imm.value.u & 0xff, al = gpr_read(c, R_RAX, 1);
    if (base == 0)
        cpu_fault_noerr(c, EXC_DE);
    u64 q = al / base, r = al % base;
    gpr_write(c, R_RAX, 2, (q << 8) | r);
    flags_set(c, FL_ARITH, flags_szp(r, 1));
}

static void insn_aad(struct cpu *c, const struct insn *i) {
    u64 base = i->op[0].imm.value.u & 0xff;
    u64 al = (gpr_read(c, R_RAX, 1) + gpr_read8h(c, 0) * base) & 0xff;
    gpr_write(c, R_RAX, 2, al);
    flags_set(c, FL_ARITH, flags_szp(al, 1));
}

static void insn_bound(struct cpu *c, const struct insn *i) {
    unsigned n = opr_bytes(i, 0);
    int seg = opr_seg(i, 1);
    u64 ea = opr_ea(c, i, 1);
    s64 lower = (s64)sign_extend(vmem_read(c, seg, ea, n), n);
    s64 upper = (s64)sign_extend(vmem_read(c, seg, (ea + n) & size_mask(i->asize), n), n);
    s64 idx = (s64)sign_extend(opr_read(c, i, 0), n);
    if (idx < lower || idx > upper)
        cpu_fault_noerr(c, EXC_BR);
}

/* ---- instructions without architectural effect here ---- */

static void insn_nop(struct cpu *c, const struct insn *i) { (void)c; (void)i; }

static void insn_fence_sse2(struct cpu *c, const struct insn *i) { /* LFENCE, MFENCE */
    (void)i;
    if (!cpu_has(c, CF_SSE2))
        cpu_fault_noerr(c, EXC_UD);
}

static void insn_sfence(struct cpu *c, const struct insn *i) {
    (void)i;
    if (!cpu_has(c, CF_SSE))
        cpu_fault_noerr(c, EXC_UD);
}

/* CLFLUSH/CLFLUSHOPT: no cache to flush, but the access is checked like a byte load
 * (segment and page faults), without touching the memory (it may be MMIO). */
/* CLFLUSH (0F AE /7) and CLFLUSHOPT (66 0F AE /7): each #UDs without its own feature. */
static void insn_clflush(struct cpu *c, const struct insn *i) {
    if (!cpu_has(c, i->d.mnemonic == ZYDIS_MNEMONIC_CLFLUSHOPT ? CF_CLFLUSHOPT : CF_CLFLUSH))
        cpu_fault_noerr(c, EXC_UD);
    u64 lin = seg_linear(c, opr_seg(i, 0), opr_ea(c, i, 0), 1, false);
    lin_translate(c, lin, c->cpl == 3 ? ACC_READ | ACC_USER : ACC_READ);
}

/* ---- forms specialised at decode time ----
 * The commonest forms of MOV and the two-operand ALU instructions, with a GPR of its
 * natural size as destination and a GPR, immediate or memory source (and MOV's stores),
 * get handlers that skip the generic operand dispatch. Same semantics as the generic
 * handlers above; insn_alu_specialise() picks them. */
static inline void alu_to_gpr(struct cpu *c, const struct opd *d, enum alu_op op, u64 b) {
    unsigned n = d->bytes;
    u64 m = opd_mask[n], a = c->gpr[d->reg] & m;
    u8 kind;
    b &= m;
    u64 r = alu_compute(c, op, a, b, &kind) & m;
    if (op != ALU_CMP && op != ALU_TEST)
        opd_gpr_write(c, d, r);
    flags_lazy(c, kind, a, b, r, n);
}


#define ALU_FORMS(name, op)                                                                   \
    static void name##_rr(struct cpu *c, const struct insn *i) {                              \
        alu_to_gpr(c, &i->opd[0], op, c->gpr[i->opd[1].reg]);                                 \
    }                                                                                         \
    static void name##_ri(struct cpu *c, const struct insn *i) {                              \
        alu_to_gpr(c, &i->opd[0], op, i->opd[1].val);                                         \
    }                                                                                         \
    static void name##_rm(struct cpu *c, const struct insn *i) {                              \
        alu_to_gpr(c, &i->opd[0], op, opr_mem_read(c, i, 1));                                 \
    }
ALU_FORMS(add, ALU_ADD)
ALU_FORMS(or, ALU_OR)
ALU_FORMS(adc, ALU_ADC)
ALU_FORMS(sbb, ALU_SBB)
ALU_FORMS(and, ALU_AND)
ALU_FORMS(sub, ALU_SUB)
ALU_FORMS(xor, ALU_XOR)
ALU_FORMS(cmp, ALU_CMP)
ALU_FORMS(test, ALU_TEST)
#undef ALU_FORMS

static void mov_rr(struct cpu *c, const struct insn *i) { opd_gpr_write(c, &i->opd[0], c->gpr[i->opd[1].reg]); }
static void mov_ri(struct cpu *c, const struct insn *i) { opd_gpr_write(c, &i->opd[0], i->opd[1].val); }
static void mov_rm(struct cpu *c, const struct insn *i) { opd_gpr_write(c, &i->opd[0], opr_mem_read(c, i, 1)); }
static void mov_mr(struct cpu *c, const struct insn *i) {
    const struct opd *d = &i->opd[0];
    vmem_write(c, d->seg, opr_ea(c, i, 0), d->bytes, c->gpr[i->opd[1].reg] & opd_mask[d->bytes]);
}
static void mov_mi(struct cpu *c, const struct insn *i) {
    const struct opd *d = &i->opd[0];
    vmem_write(c, d->seg, opr_ea(c, i, 0), d->bytes, i->opd[1].val);
}

/* Source forms: register, immediate, memory, store of a register, store of an immediate. */
enum { FORM_RR, FORM_RI, FORM_RM, FORM_MR, FORM_MI, FORM_COUNT };
static const struct {
    ZydisMnemonic mn;
    insn_fn form[FORM_COUNT];
} specialised[] = {
    { ZYDIS_MNEMONIC_MOV, { mov_rr, mov_ri, mov_rm, mov_mr, mov_mi } },
    { ZYDIS_MNEMONIC_ADD, { add_rr, add_ri, add_rm } },
    { ZYDIS_MNEMONIC_OR, { or_rr, or_ri, or_rm } },
    { ZYDIS_MNEMONIC_ADC, { adc_rr, adc_ri, adc_rm } },
    { ZYDIS_MNEMONIC_SBB, { sbb_rr, sbb_ri, sbb_rm } },
    { ZYDIS_MNEMONIC_AND, { and_rr, and_ri, and_rm } },
    { ZYDIS_MNEMONIC_SUB, { sub_rr, sub_ri, sub_rm } },
    { ZYDIS_MNEMONIC_XOR, { xor_rr, xor_ri, xor_rm } },
    { ZYDIS_MNEMONIC_CMP, { cmp_rr, cmp_ri, cmp_rm } },
    { ZYDIS_MNEMONIC_TEST, { test_rr, test_ri, test_rm } },
};

/* Forms whose operands differ in size, and the stack's: LEA, MOVZX/MOVSX into a GPR from
 * a GPR or memory, PUSH/POP of a GPR of the operand size, shifts and rotates of a GPR. */
static void lea_r(struct cpu *c, const struct insn *i) { opd_gpr_write(c, &i->opd[0], opr_ea(c, i, 1)); }
static void movzx_rr(struct cpu *c, const struct insn *i) {
    opd_gpr_write(c, &i->opd[0], c->gpr[i->opd[1].reg] & opd_mask[i->opd[1].bytes]);
}
static void movzx_rm(struct cpu *c, const struct insn *i) { opd_gpr_write(c, &i->opd[0], opr_mem_read(c, i, 1)); }
static void movsx_rr(struct cpu *c, const struct insn *i) {
    opd_gpr_write(c, &i->opd[0], sign_extend(c->gpr[i->opd[1].reg], i->opd[1].bytes));
}
static void movsx_rm(struct cpu *c, const struct insn *i) {
    opd_gpr_write(c, &i->opd[0], sign_extend(opr_mem_read(c, i, 1), i->opd[1].bytes));
}
static void push_r(struct cpu *c, const struct insn *i) {
    cpu_push(c, c->gpr[i->opd[0].reg] & opd_mask[i->osize], i->osize);
}
static void pop_r(struct cpu *c, const struct insn *i) {
    /* RSP moves first: POP RSP leaves the popped value */
    opd_gpr_write(c, &i->opd[0], cpu_pop(c, i->osize));
}

static insn_fn specialise_sized(const struct insn *i) {
    const struct opd *d = &i->opd[0], *s = &i->opd[1];
    if (d->kind != OPD_GPR || i->lock)
        return NULL;
    switch (i->d.mnemonic) {
    case ZYDIS_MNEMONIC_LEA:
        return s->kind == OPD_MEM ? lea_r : NULL;
    case ZYDIS_MNEMONIC_MOVZX:
        return s->kind == OPD_GPR ? movzx_rr : s->kind == OPD_MEM ? movzx_rm : NULL;
    case ZYDIS_MNEMONIC_MOVSX: case ZYDIS_MNEMONIC_MOVSXD:
        return s->kind == OPD_GPR ? movsx_rr : s->kind == OPD_MEM ? movsx_rm : NULL;
    case ZYDIS_MNEMONIC_PUSH:
        return i->d.operand_count_visible == 1 && d->bytes == i->osize ? push_r : NULL;
    case ZYDIS_MNEMONIC_ROL: return rol_r;
    case ZYDIS_MNEMONIC_ROR: return ror_r;
    case ZYDIS_MNEMONIC_RCL: return rcl_r;
    case ZYDIS_MNEMONIC_RCR: return rcr_r;
    case ZYDIS_MNEMONIC_SHL: return shl_r;
    case ZYDIS_MNEMONIC_SHR: return shr_r;
    case ZYDIS_MNEMONIC_SAR: return sar_r;
    case ZYDIS_MNEMONIC_POP:
        return i->d.operand_count_visible == 1 && d->bytes == i->osize ? pop_r : NULL;
    default:
        return NULL;
    }
}

insn_fn insn_alu_specialise(const struct insn *i) {
    insn_fn f = specialise_sized(i);
    if (f)
        return f;
    if (i->d.operand_count_visible != 2 || i->lock)
        return NULL;
    const struct opd *d = &i->opd[0], *s = &i->opd[1];
    int form;
    if (d->kind == OPD_GPR) {
        if (s->kind == OPD_GPR && s->bytes == d->bytes)
            form = FORM_RR;
        else if (s->kind == OPD_IMM && s->bytes == d->bytes)
            form = FORM_RI;
        else if (s->kind == OPD_MEM && s->bytes == d->bytes)
            form = FORM_RM;
        else
            return NULL;
    } else if (d->kind == OPD_MEM && d->bytes <= 8) {
        if (s->kind == OPD_GPR && s->bytes == d->bytes)
            form = FORM_MR;
        else if (s->kind == OPD_IMM && s->bytes == d->bytes)
            form = FORM_MI;
        else
            return NULL;
    } else {
        return NULL;
    }
    for (size_t k = 0; k < ARRAY_SIZE(specialised); k++)
        if (specialised[k].mn == i->d.mnemonic)
            return specialised[k].form[form];
    return NULL;
}

void insn_register_alu(insn_fn *t) {
    static const struct { ZydisMnemonic mn; insn_fn fn; } table[] = {
        { ZYDIS_MNEMONIC_MOV, insn_mov },
        { ZYDIS_MNEMONIC_MOVZX, insn_movzx },
        { ZYDIS_MNEMONIC_MOVSX, insn_movsx },
        { ZYDIS_MNEMONIC_MOVSXD, insn_movsx },
        { ZYDIS_MNEMONIC_LEA, insn_lea },
        { ZYDIS_MNEMONIC_XCHG, insn_xchg },
        { ZYDIS_MNEMONIC_ADD, insn_add },
        { ZYDIS_MNEMONIC_OR, insn_or },
        { ZYDIS_MNEMONIC_ADC, insn_adc },
        { ZYDIS_MNEMONIC_SBB, insn_sbb },
        { ZYDIS_MNEMONIC_AND, insn_and },
        { ZYDIS_MNEMONIC_SUB, insn_sub },
        { ZYDIS_MNEMONIC_XOR, insn_xor },
        { ZYDIS_MNEMONIC_CMP, insn_cmp },
        { ZYDIS_MNEMONIC_TEST, insn_test },
        { ZYDIS_MNEMONIC_INC, insn_inc },
        { ZYDIS_MNEMONIC_DEC, insn_dec },
        { ZYDIS_MNEMONIC_NEG, insn_neg },
        { ZYDIS_MNEMONIC_NOT, insn_not },
        { ZYDIS_MNEMONIC_ADCX, insn_adcx },
        { ZYDIS_MNEMONIC_ADOX, insn_adox },
        { ZYDIS_MNEMONIC_ROL, insn_rol },
        { ZYDIS_MNEMONIC_ROR, insn_ror },
        { ZYDIS_MNEMONIC_RCL, insn_rcl },
        { ZYDIS_MNEMONIC_RCR, insn_rcr },
        { ZYDIS_MNEMONIC_SHL, insn_shl },
        { ZYDIS_MNEMONIC_SHR, insn_shr },
        { ZYDIS_MNEMONIC_SAR, insn_sar },
        { ZYDIS_MNEMONIC_SHLD, insn_shld },
        { ZYDIS_MNEMONIC_SHRD, insn_shrd },
        { ZYDIS_MNEMONIC_MUL, insn_mul },
        { ZYDIS_MNEMONIC_IMUL, insn_imul },
        { ZYDIS_MNEMONIC_DIV, insn_div },
        { ZYDIS_MNEMONIC_IDIV, insn_idiv },
        { ZYDIS_MNEMONIC_CBW, insn_cbw_family },
        { ZYDIS_MNEMONIC_CWDE, insn_cbw_family },
        { ZYDIS_MNEMONIC_CDQE, insn_cbw_family },
        { ZYDIS_MNEMONIC_CWD, insn_cwd_family },
        { ZYDIS_MNEMONIC_CDQ, insn_cwd_family },
        { ZYDIS_MNEMONIC_CQO, insn_cwd_family },
        { ZYDIS_MNEMONIC_PUSH, insn_push },
        { ZYDIS_MNEMONIC_POP, insn_pop },
        { ZYDIS_MNEMONIC_PUSHA, insn_pusha },
        { ZYDIS_MNEMONIC_PUSHAD, insn_pusha },
        { ZYDIS_MNEMONIC_POPA, insn_popa },
        { ZYDIS_MNEMONIC_POPAD, insn_popa },
        { ZYDIS_MNEMONIC_LAHF, insn_lahf },
        { ZYDIS_MNEMONIC_SAHF, insn_sahf },
        { ZYDIS_MNEMONIC_SALC, insn_salc },
        { ZYDIS_MNEMONIC_CMC, insn_cmc },
        { ZYDIS_MNEMONIC_CLC, insn_clc },
        { ZYDIS_MNEMONIC_STC, insn_stc },
        { ZYDIS_MNEMONIC_CLD, insn_cld },
        { ZYDIS_MNEMONIC_STD, insn_std },
        { ZYDIS_MNEMONIC_XADD, insn_xadd },
        { ZYDIS_MNEMONIC_CMPXCHG, insn_cmpxchg },
        { ZYDIS_MNEMONIC_CMPXCHG8B, insn_cmpxchg8b },
        { ZYDIS_MNEMONIC_CMPXCHG16B, insn_cmpxchg16b },
        { ZYDIS_MNEMONIC_BSWAP, insn_bswap },
        { ZYDIS_MNEMONIC_DAA, insn_daa },
        { ZYDIS_MNEMONIC_DAS, insn_das },
        { ZYDIS_MNEMONIC_AAA, insn_aaa },
        { ZYDIS_MNEMONIC_AAS, insn_aas },
        { ZYDIS_MNEMONIC_AAM, insn_aam },
        { ZYDIS_MNEMONIC_AAD, insn_aad },
        { ZYDIS_MNEMONIC_BOUND, insn_bound },
        { ZYDIS_MNEMONIC_NOP, insn_nop },
        { ZYDIS_MNEMONIC_ENDBR32, insn_nop },
        { ZYDIS_MNEMONIC_ENDBR64, insn_nop },
        { ZYDIS_MNEMONIC_PREFETCH, insn_nop },
        { ZYDIS_MNEMONIC_PREFETCHW, insn_nop },
        { ZYDIS_MNEMONIC_PREFETCHWT1, insn_nop },
        { ZYDIS_MNEMONIC_PREFETCHT0, insn_nop },
        { ZYDIS_MNEMONIC_PREFETCHT1, insn_nop },
        { ZYDIS_MNEMONIC_PREFETCHT2, insn_nop },
        { ZYDIS_MNEMONIC_PREFETCHNTA, insn_nop },
        { ZYDIS_MNEMONIC_LFENCE, insn_fence_sse2 },
        { ZYDIS_MNEMONIC_MFENCE, insn_fence_sse2 },
        { ZYDIS_MNEMONIC_SFENCE, insn_sfence },
        { ZYDIS_MNEMONIC_CLFLUSH, insn_clflush },
        { ZYDIS_MNEMONIC_CLFLUSHOPT, insn_clflush },
    };
    for (size_t k = 0; k < ARRAY_SIZE(table); k++)
        t[table[k].mn] = table[k].fn;
}

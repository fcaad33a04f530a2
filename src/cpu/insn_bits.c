/* Bit instructions: BT/BTS/BTR/BTC, BSF/BSR, POPCNT, LZCNT/TZCNT, BMI1/BMI2, MOVBE, and the
 * flag-conditional SETcc/CMOVcc. */
#include "cpu/exec.h"

static inline u64 sign_extend(u64 v, unsigned bytes) {
    unsigned shift = 64 - bytes * 8;
    return (u64)((s64)(v << shift) >> shift);
}

static inline u64 fl_if(bool cond, u64 flag) { return cond ? flag : 0; }


/* ---- BT family ---- */

enum bt_op { BT_TEST, BT_SET, BT_RESET, BT_COMPLEMENT };

/* CF receives the selected bit; ZF is preserved; OF/SF/AF/PF are undefined (kept). */
static inline void bit_test(struct cpu *c, const struct insn *i, enum bt_op op) {
    unsigned n = opr_bytes(i, 0), bits = n * 8;
    u64 off = opr_is_imm(i, 1) ? i->op[1].imm.value.u : opr_read(c, i, 1);
    u64 v, bit;

    if (opr_is_mem(i, 0) && !opr_is_imm(i, 1)) {
        /* A register bit offset reaches outside the operand: it is a signed offset from
         * the operand's address, accessed in operand-size units. */
        s64 soff = (s64)sign_extend(off, n);
        s64 unit = soff >> (n == 2 ? 4 : n == 4 ? 5 : 6);
        int seg = opr_seg(i, 0);
        u64 ea = (opr_ea(c, i, 0) + (u64)unit * n) & size_mask(i->asize);
        bit = (u64)soff & (bits - 1);
        v = vmem_read(c, seg, ea, n);
        u64 nv = op == BT_SET ? v | BIT(bit) : op == BT_RESET ? v & ~BIT(bit)
               : op == BT_COMPLEMENT ? v ^ BIT(bit) : v;
        if (op != BT_TEST)
            vmem_write(c, seg, ea, n, nv);
    } else {
        bit = off & (bits - 1);
        v = opr_read(c, i, 0);
        u64 nv = op == BT_SET ? v | BIT(bit) : op == BT_RESET ? v & ~BIT(bit)
               : op == BT_COMPLEMENT ? v ^ BIT(bit) : v;
        if (op != BT_TEST)
            opr_write(c, i, 0, nv);
    }
    flags_set(c, FL_CF, (v >> bit) & 1);
}

static void insn_bt(struct cpu *c, const struct insn *i) { bit_test(c, i, BT_TEST); }
static void insn_bts(struct cpu *c, const struct insn *i) { bit_test(c, i, BT_SET); }
static void insn_btr(struct cpu *c, const struct insn *i) { bit_test(c, i, BT_RESET); }
static void insn_btc(struct cpu *c, const struct insn *i) { bit_test(c, i, BT_COMPLEMENT); }

/* ---- bit scans and counts ---- */

/* BSF/BSR: ZF = (source == 0); a zero source leaves the destination unchanged (what
 * Intel and AMD processors do; the SDM calls it undefined). CF/OF/SF/AF/PF are undefined:
 * nestor clears them, except SF/PF which follow the result. */
static void bit_scan(struct cpu *c, const struct insn *i, bool reverse) {
    unsigned n = opr_bytes(i, 0);
    u64 s = opr_read(c, i, 1) & size_mask(n);
    if (s == 0) {
        flags_set(c, FL_ARITH, FL_ZF);
        return;
    }
    u64 r = reverse ? 63 - (u64)__builtin_clzll(s) : (u64)__builtin_ctzll(s);
    opr_write(c, i, 0, r);
    flags_set(c, FL_ARITH, flags_szp(r, n) & ~FL_ZF);
}
static void insn_bsf(struct cpu *c, const struct insn *i) { bit_scan(c, i, false); }
static void insn_bsr(struct cpu *c, const struct insn *i) { bit_scan(c, i, true); }

static void insn_popcnt(struct cpu *c, const struct insn *i) {
    if (!cpu_has(c, CF_POPCNT))
        cpu_fault_noerr(c, EXC_UD);
    unsigned n = opr_bytes(i, 0);
    u64 s = opr_read(c, i, 1) & size_mask(n);
    opr_write(c, i, 0, (u64)__builtin_popcountll(s));
    flags_set(c, FL_ARITH, fl_if(s == 0, FL_ZF));
}

/* LZCNT/TZCNT: CF = (source == 0), ZF = (result == 0). Without ABM/BMI1 the F3 prefix is
 * ignored by the processor and the encodings execute as BSR/BSF. */
static void insn_lzcnt(struct cpu *c, const struct insn *i) {
    if (!cpu_has(c, CF_ABM)) {
        bit_scan(c, i, true);
        return;
    }
    unsigned n = opr_bytes(i, 0), bits = n * 8;
    u64 s = opr_read(c, i, 1) & size_mask(n);
    u64 r = s ? (u64)__builtin_clzll(s) - (64 - bits) : bits;
    opr_write(c, i, 0, r);
    flags_set(c, FL_ARITH, fl_if(s == 0, FL_CF) | fl_if(r == 0, FL_ZF));
}

static void insn_tzcnt(struct cpu *c, const struct insn *i) {
    if (!cpu_has(c, CF_BMI1)) {
        bit_scan(c, i, false);
        return;
    }
    unsigned n = opr_bytes(i, 0), bits = n * 8;
    u64 s = opr_read(c, i, 1) & size_mask(n);
    u64 r = s ? (u64)__builtin_ctzll(s) : bits;
    opr_write(c, i, 0, r);
    flags_set(c, FL_ARITH, fl_if(s == 0, FL_CF) | fl_if(r == 0, FL_ZF));
}

/* ---- BMI1 / BMI2 (VEX-encoded: #UD in real and virtual-8086 mode) ---- */

static void vex_check(struct cpu *c, enum cpuid_fast feature) {
    if (!cpu_has(c, feature) || cpu_is_real(c) || cpu_is_v86(c))
        cpu_fault_noerr(c, EXC_UD);
}

static void insn_andn(struct cpu *c, const struct insn *i) {
    vex_check(c, CF_BMI1);
    unsigned n = opr_bytes(i, 0);
    u64 r = ~opr_read(c, i, 1) & opr_read(c, i, 2) & size_mask(n);
    opr_write(c, i, 0, r);
    flags_set(c, FL_ARITH, flags_szp(r, n) & ~FL_PF);
}

static void insn_bextr(struct cpu *c, const struct insn *i) {
    vex_check(c, CF_BMI1);
    unsigned n = opr_bytes(i, 0), bits = n * 8;
    u64 s = opr_read(c, i, 1) & size_mask(n), ctl = opr_read(c, i, 2);
    unsigned start = ctl & 0xff, len = (ctl >> 8) & 0xff;
    u64 r = start >= bits ? 0 : s >> start;
    if (len < 64)
        r &= MASK(len);
    opr_write(c, i, 0, r);
    flags_set(c, FL_ARITH, fl_if(r == 0, FL_ZF));
}

enum blsx_op { BLS_I, BLS_MSK, BLS_R };

static void blsx(struct cpu *c, const struct insn *i, enum blsx_op op) {
    vex_check(c, CF_BMI1);
    unsigned n = opr_bytes(i, 0);
    u64 m = size_mask(n), s = opr_read(c, i, 1) & m, r;
    bool carry;
    switch (op) {
    case BLS_I: r = (0 - s) & s & m; carry = s != 0; break;
    case BLS_MSK: r = ((s - 1) ^ s) & m; carry = s == 0; break;
    default: r = (s - 1) & s & m; carry = s == 0; break;
    }
    opr_write(c, i, 0, r);
    flags_set(c, FL_ARITH, (flags_szp(r, n) & ~FL_PF) | fl_if(carry, FL_CF));
}
static void insn_blsi(struct cpu *c, const struct insn *i) { blsx(c, i, BLS_I); }
static void insn_blsmsk(struct cpu *c, const struct insn *i) { blsx(c, i, BLS_MSK); }
static void insn_blsr(struct cpu *c, const struct insn *i) { blsx(c, i, BLS_R); }

static void insn_bzhi(struct cpu *c, const struct insn *i) {
    vex_check(c, CF_BMI2);
    unsigned n = opr_bytes(i, 0), bits = n * 8;
    u64 s = opr_read(c, i, 1) & size_mask(n);
    unsigned idx = opr_read(c, i, 2) & 0xff;
    u64 r = idx < bits ? s & MASK(idx) : s;
    opr_write(c, i, 0, r);
    flags_set(c, FL_ARITH, (flags_szp(r, n) & ~FL_PF) | fl_if(idx > bits - 1, FL_CF));
}

static void insn_mulx(struct cpu *c, const struct insn *i) {
    vex_check(c, CF_BMI2);
    unsigned n = opr_bytes(i, 0);
    unsigned __int128 p = (unsigned __int128)gpr_read(c, R_RDX, n) * (opr_read(c, i, 2) & size_mask(n));
    /* Low half first: with the same register named twice, the high half wins. */
    opr_write(c, i, 1, (u64)p & size_mask(n));
    opr_write(c, i, 0, (u64)(p >> (n * 8)) & size_mask(n));
}

static void insn_pdep(struct cpu *c, const struct insn *i) {
    vex_check(c, CF_BMI2);
    unsigned n = opr_bytes(i, 0);
    u64 s = opr_read(c, i, 1), mask = opr_read(c, i, 2) & size_mask(n), r = 0;
    for (u64 k = 1; mask; mask &= mask - 1, k <<= 1)
        if (s & k)
            r |= mask & -mask;
    opr_write(c, i, 0, r);
}

static void insn_pext(struct cpu *c, const struct insn *i) {
    vex_check(c, CF_BMI2);
    unsigned n = opr_bytes(i, 0);
    u64 s = opr_read(c, i, 1), mask = opr_read(c, i, 2) & size_mask(n), r = 0;
    for (u64 k = 1; mask; mask &= mask - 1, k <<= 1)
        if (s & mask & -mask)
            r |= k;
    opr_write(c, i, 0, r);
}

static void insn_rorx(struct cpu *c, const struct insn *i) {
    vex_check(c, CF_BMI2);
    unsigned n = opr_bytes(i, 0), bits = n * 8;
    u64 s = opr_read(c, i, 1) & size_mask(n);
    unsigned k = (unsigned)i->op[2].imm.value.u & (bits - 1);
    u64 r = k ? ((s >> k) | (s << (bits - k))) & size_mask(n) : s;
    opr_write(c, i, 0, r);
}

enum shx_op { SHX_SAR, SHX_SHL, SHX_SHR };

static void shiftx(struct cpu *c, const struct insn *i, enum shx_op op) {
    vex_check(c, CF_BMI2);
    unsigned n = opr_bytes(i, 0);
    u64 s = opr_read(c, i, 1) & size_mask(n);
    unsigned k = opr_read(c, i, 2) & (n == 8 ? 63 : 31);
    u64 r = op == SHX_SHL ? s << k : op == SHX_SHR ? s >> k : (u64)((s64)sign_extend(s, n) >> k);
    opr_write(c, i, 0, r & size_mask(n));
}
static void insn_sarx(struct cpu *c, const struct insn *i) { shiftx(c, i, SHX_SAR); }
static void insn_shlx(struct cpu *c, const struct insn *i) { shiftx(c, i, SHX_SHL); }
static void insn_shrx(struct cpu *c, const struct insn *i) { shiftx(c, i, SHX_SHR); }

/* ---- MOVBE ---- */

static void insn_movbe(struct cpu *c, const struct insn *i) {
    if (!cpu_has(c, CF_MOVBE))
        cpu_fault_noerr(c, EXC_UD);
    unsigned n = opr_bytes(i, 0);
    u64 v = opr_read(c, i, 1);
    u64 r = n == 8 ? __builtin_bswap64(v) : n == 4 ? __builtin_bswap32((u32)v)
                                                   : __builtin_bswap16((u16)v);
    opr_write(c, i, 0, r);
}

/* ---- SETcc / CMOVcc: the condition is the low nibble of the opcode (0F 9x / 0F 4x) ---- */

static void insn_setcc(struct cpu *c, const struct insn *i) {
    opr_write(c, i, 0, cond_eval(c, i->cc));
}

static void insn_cmovcc(struct cpu *c, const struct insn *i) {
    if (!cpu_has(c, CF_CMOV))
        cpu_fault_noerr(c, EXC_UD);
    /* The source is read (and may fault) whatever the condition; a 32-bit destination is
     * written (zero-extended) even when the condition is false. */
    u64 v = opr_read(c, i, 1);
    if (cond_eval(c, i->cc))
        opr_write(c, i, 0, v);
    else if (opr_bytes(i, 0) == 4)
        opr_write(c, i, 0, opr_read(c, i, 0));
}

void insn_register_bits(insn_fn *t) {
    static const struct { ZydisMnemonic mn; insn_fn fn; } table[] = {
        { ZYDIS_MNEMONIC_BT, insn_bt },
        { ZYDIS_MNEMONIC_BTS, insn_bts },
        { ZYDIS_MNEMONIC_BTR, insn_btr },
        { ZYDIS_MNEMONIC_BTC, insn_btc },
        { ZYDIS_MNEMONIC_BSF, insn_bsf },
        { ZYDIS_MNEMONIC_BSR, insn_bsr },
        { ZYDIS_MNEMONIC_POPCNT, insn_popcnt },
        { ZYDIS_MNEMONIC_LZCNT, insn_lzcnt },
        { ZYDIS_MNEMONIC_TZCNT, insn_tzcnt },
        { ZYDIS_MNEMONIC_ANDN, insn_andn },
        { ZYDIS_MNEMONIC_BEXTR, insn_bextr },
        { ZYDIS_MNEMONIC_BLSI, insn_blsi },
        { ZYDIS_MNEMONIC_BLSMSK, insn_blsmsk },
        { ZYDIS_MNEMONIC_BLSR, insn_blsr },
        { ZYDIS_MNEMONIC_BZHI, insn_bzhi },
        { ZYDIS_MNEMONIC_MULX, insn_mulx },
        { ZYDIS_MNEMONIC_PDEP, insn_pdep },
        { ZYDIS_MNEMONIC_PEXT, insn_pext },
        { ZYDIS_MNEMONIC_RORX, insn_rorx },
        { ZYDIS_MNEMONIC_SARX, insn_sarx },
        { ZYDIS_MNEMONIC_SHLX, insn_shlx },
        { ZYDIS_MNEMONIC_SHRX, insn_shrx },
        { ZYDIS_MNEMONIC_MOVBE, insn_movbe },
        { ZYDIS_MNEMONIC_SETO, insn_setcc },   { ZYDIS_MNEMONIC_SETNO, insn_setcc },
        { ZYDIS_MNEMONIC_SETB, insn_setcc },   { ZYDIS_MNEMONIC_SETNB, insn_setcc },
        { ZYDIS_MNEMONIC_SETZ, insn_setcc },   { ZYDIS_MNEMONIC_SETNZ, insn_setcc },
        { ZYDIS_MNEMONIC_SETBE, insn_setcc },  { ZYDIS_MNEMONIC_SETNBE, insn_setcc },
        { ZYDIS_MNEMONIC_SETS, insn_setcc },   { ZYDIS_MNEMONIC_SETNS, insn_setcc },
        { ZYDIS_MNEMONIC_SETP, insn_setcc },   { ZYDIS_MNEMONIC_SETNP, insn_setcc },
        { ZYDIS_MNEMONIC_SETL, insn_setcc },   { ZYDIS_MNEMONIC_SETNL, insn_setcc },
        { ZYDIS_MNEMONIC_SETLE, insn_setcc },  { ZYDIS_MNEMONIC_SETNLE, insn_setcc },
        { ZYDIS_MNEMONIC_CMOVO, insn_cmovcc }, { ZYDIS_MNEMONIC_CMOVNO, insn_cmovcc },
        { ZYDIS_MNEMONIC_CMOVB, insn_cmovcc }, { ZYDIS_MNEMONIC_CMOVNB, insn_cmovcc },
        { ZYDIS_MNEMONIC_CMOVZ, insn_cmovcc }, { ZYDIS_MNEMONIC_CMOVNZ, insn_cmovcc },
        { ZYDIS_MNEMONIC_CMOVBE, insn_cmovcc }, { ZYDIS_MNEMONIC_CMOVNBE, insn_cmovcc },
        { ZYDIS_MNEMONIC_CMOVS, insn_cmovcc }, { ZYDIS_MNEMONIC_CMOVNS, insn_cmovcc },
        { ZYDIS_MNEMONIC_CMOVP, insn_cmovcc }, { ZYDIS_MNEMONIC_CMOVNP, insn_cmovcc },
        { ZYDIS_MNEMONIC_CMOVL, insn_cmovcc }, { ZYDIS_MNEMONIC_CMOVNL, insn_cmovcc },
        { ZYDIS_MNEMONIC_CMOVLE, insn_cmovcc }, { ZYDIS_MNEMONIC_CMOVNLE, insn_cmovcc },
    };
    for (size_t k = 0; k < ARRAY_SIZE(table); k++)
        t[table[k].mn] = table[k].fn;
}

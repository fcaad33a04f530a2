/* The x87 FPU.
 *
 * The guest's register stack lives in c->fpu (physical registers R0..R7, TOP in FSW,
 * abridged tags). Stack bookkeeping (TOP, tags, stack overflow/underflow and their
 * masked responses, pops) is done here in C. Every numeric operation runs on the host's
 * x87 unit: the operands are loaded into an otherwise empty host stack, FLDENV installs
 * the guest's control word and condition codes over them, the real instruction executes,
 * and the results, condition codes and exception flags are read back; the host's own
 * state is reinitialized and its control word restored afterwards. Hence rounding,
 * precision control, NaN propagation, unsupported encodings, denormals, transcendental
 * results, the bias-adjusted results of unmasked overflow/underflow and even the
 * "undefined" condition codes are those of hardware. Where the C code decides a flag
 * (stack faults, pure register moves) it follows what the differential tests observed on
 * hardware where the SDM leaves it undefined.
 *
 * Unmasked exceptions set FSW.ES/B; the next waiting x87 instruction raises #MF when
 * CR0.NE is set. With CR0.NE clear the legacy FERR#/IRQ13 path is not modelled: the
 * instruction proceeds as if IGNNE# were asserted (see fpu_check_x87). An unmasked
 * invalid-operation, denormal or divide-by-zero exception leaves destination and TOP
 * unchanged; unmasked overflow/underflow of a store to memory also stores nothing. */
#include <stddef.h>
#include <string.h>

#include "cpu/fpu.h"

/* ---- host execution ---- */
/* Exchange area between C and the host x87; the offsets are spelled in the asm below. */
struct x87_io {
    u8 env[32]; /*   0: FLDENV image: guest FCW and condition codes, TOP/tags of the loads */
    u8 a[16];   /*  32: ST(0) operand */
    u8 b[16];   /*  48: ST(1) operand */
    u8 mem[16]; /*  64: memory operand (in and out) */
    u8 r0[16];  /*  80: ST(0) after the operation */
    u8 r1[16];  /*  96: ST(1) after the operation */
    u16 cw_masked; /* 112: all exceptions masked, for storing the results */
    u8 zpc[3];     /* 114: ZF, PF, CF after FCOMI/FUCOMI */
} __attribute__((aligned(16)));
_Static_assert(offsetof(struct x87_io, a) == 32 && offsetof(struct x87_io, b) == 48 &&
                   offsetof(struct x87_io, mem) == 64 && offsetof(struct x87_io, r0) == 80 &&
                   offsetof(struct x87_io, r1) == 96 && offsetof(struct x87_io, cw_masked) == 112 &&
                   offsetof(struct x87_io, zpc) == 114,
               "x87_io layout is spelled in the asm");

typedef u16 (*x87_host_fn)(struct x87_io *io);

/* The FLDENV image describes n registers loaded after FNINIT: TOP = 8 - n, R7 (and R6)
 * valid, the others empty. */
static void env_loaded(struct x87_io *io, unsigned n)
{
    static const u16 tags[3] = { 0xffff, 0x3fff, 0x0fff };
    io->env[5] = (u8)((io->env[5] & ~0x38) | (((8 - n) & 7) << 3));
    io->env[8] = (u8)tags[n];
    io->env[9] = (u8)(tags[n] >> 8);
}

#define LD_A "fldt 32(%[io])\n\t"
#define LD_BA "fldt 48(%[io])\n\tfldt 32(%[io])\n\t"
#define ST_R0 "fstpt 80(%[io])"
#define ST_R0R1 "fstpt 80(%[io])\n\tfstpt 96(%[io])"

/* loads: the operands (FLD m80 raises nothing); then FLDENV installs the guest's control
 * word and condition codes over them (TOP and tags describe the loaded registers) so the
 * instruction finds the guest's condition codes as they were; stores: results, after the
 * exceptions were read and cleared, under a fully masked control word (storing from an
 * emptied register cannot leave a pending exception). FNINIT leaves the host stack empty. */
#define X87_HOST(name, loads, op, stores)                                                  \
    static u16 name(struct x87_io *io)                                                     \
    {                                                                                      \
        u16 sw, save;                                                                      \
        env_loaded(io, sizeof(loads) == 1 ? 0 : sizeof(loads) == sizeof(LD_A) ? 1 : 2);     \
        __asm__ volatile("fnstcw %[save]\n\t"                                              \
                         "fninit\n\t" loads                                                \
                         "fldenv (%[io])\n\t" op "\n\t"                                    \
                         "fnstsw %[sw]\n\t"                                                \
                         "fnclex\n\t"                                                      \
                         "fldcw 112(%[io])\n\t" stores "\n\t"                              \
                         "fninit\n\t"                                                      \
                         "fldcw %[save]"                                                   \
                         : [sw] "=m"(sw), [save] "=m"(save)                                \
                         : [io] "r"(io)                                                    \
                         : "memory", "cc", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", \
                           "st(6)", "st(7)");                                              \
        return sw;                                                                         \
    }


/* Arithmetic: ST(0)=a OP b for register forms, a OP memory for the others. */
#define X87_ARITH(op, ops, opl, iops, iopl)                                                \
    X87_HOST(h_##op##_r, LD_BA, #op " %%st(1), %%st", ST_R0)                               \
    X87_HOST(h_##op##_m32, LD_A, ops " 64(%[io])", ST_R0)                                   \
    X87_HOST(h_##op##_m64, LD_A, opl " 64(%[io])", ST_R0)                                   \
    X87_HOST(h_##op##_i16, LD_A, iops " 64(%[io])", ST_R0)                                  \
    X87_HOST(h_##op##_i32, LD_A, iopl " 64(%[io])", ST_R0)                                  \
    static const x87_host_fn h_##op[5] = { h_##op##_r, h_##op##_m32, h_##op##_m64,         \
                                           h_##op##_i16, h_##op##_i32 };
X87_ARITH(fadd, "fadds", "faddl", "fiadds", "fiaddl")
X87_ARITH(fsub, "fsubs", "fsubl", "fisubs", "fisubl")
X87_ARITH(fsubr, "fsubrs", "fsubrl", "fisubrs", "fisubrl")
X87_ARITH(fmul, "fmuls", "fmull", "fimuls", "fimull")
X87_ARITH(fdiv, "fdivs", "fdivl", "fidivs", "fidivl")
X87_ARITH(fdivr, "fdivrs", "fdivrl", "fidivrs", "fidivrl")
/* forms: index into the arrays above */
enum { F_REG, F_M32, F_M64, F_I16, F_I32 };

/* Compares (condition codes only). */
X87_HOST(h_fcom_r, LD_BA, "fcom %%st(1)", "")
X87_HOST(h_fucom_r, LD_BA, "fucom %%st(1)", "")
X87_HOST(h_fcom_m32, LD_A, "fcoms 64(%[io])", "")
X87_HOST(h_fcom_m64, LD_A, "fcoml 64(%[io])", "")
X87_HOST(h_fcom_i16, LD_A, "ficoms 64(%[io])", "")
X87_HOST(h_fcom_i32, LD_A, "ficoml 64(%[io])", "")
static const x87_host_fn h_fcom[5] = { h_fcom_r, h_fcom_m32, h_fcom_m64, h_fcom_i16, h_fcom_i32 };
/* FCOMI/FUCOMI: ZF, PF, CF go to bytes 114..116 of the exchange area */
#define SET_ZPC "\n\tsetz 114(%[io])\n\tsetp 115(%[io])\n\tsetc 116(%[io])"
X87_HOST(h_fcomi_r, LD_BA, "fcomi %%st(1), %%st" SET_ZPC, "")
X87_HOST(h_fucomi_r, LD_BA, "fucomi %%st(1), %%st" SET_ZPC, "")
X87_HOST(h_ftst, LD_A, "ftst", "")
X87_HOST(h_fxam, LD_A, "fxam", "")

/* One-operand functions of ST(0). */
X87_HOST(h_fsqrt, LD_A, "fsqrt", ST_R0)
X87_HOST(h_frndint, LD_A, "frndint", ST_R0)
X87_HOST(h_f2xm1, LD_A, "f2xm1", ST_R0)
X87_HOST(h_fsin, LD_A, "fsin", ST_R0)
X87_HOST(h_fcos, LD_A, "fcos", ST_R0)
/* ST(0) = f(ST(0), ST(1)) */
X87_HOST(h_fscale, LD_BA, "fscale", ST_R0)
X87_HOST(h_fprem, LD_BA, "fprem", ST_R0)
X87_HOST(h_fprem1, LD_BA, "fprem1", ST_R0)
/* ST(1) = f(ST(1), ST(0)), pop: the result is the new ST(0) */
X87_HOST(h_fpatan, LD_BA, "fpatan", ST_R0)
X87_HOST(h_fyl2x, LD_BA, "fyl2x", ST_R0)
X87_HOST(h_fyl2xp1, LD_BA, "fyl2xp1", ST_R0)
/* ST(0) replaced and one value pushed */
X87_HOST(h_fxtract, LD_A, "fxtract", ST_R0R1)
X87_HOST(h_fptan, LD_A, "fptan", ST_R0R1)
X87_HOST(h_fsincos, LD_A, "fsincos", ST_R0R1)
/* loads */
X87_HOST(h_fld_m32, "", "flds 64(%[io])", ST_R0)
X87_HOST(h_fld_m64, "", "fldl 64(%[io])", ST_R0)
X87_HOST(h_fild_i16, "", "filds 64(%[io])", ST_R0)
X87_HOST(h_fild_i32, "", "fildl 64(%[io])", ST_R0)
X87_HOST(h_fild_i64, "", "fildll 64(%[io])", ST_R0)
X87_HOST(h_fbld, "", "fbld 64(%[io])", ST_R0)
X87_HOST(h_fld1, "", "fld1", ST_R0)
X87_HOST(h_fldz, "", "fldz", ST_R0)
X87_HOST(h_fldpi, "", "fldpi", ST_R0)
X87_HOST(h_fldl2e, "", "fldl2e", ST_R0)
X87_HOST(h_fldl2t, "", "fldl2t", ST_R0)
X87_HOST(h_fldlg2, "", "fldlg2", ST_R0)
X87_HOST(h_fldln2, "", "fldln2", ST_R0)
/* stores of ST(0) */
X87_HOST(h_fst_m32, LD_A, "fstps 64(%[io])", "")
X87_HOST(h_fst_m64, LD_A, "fstpl 64(%[io])", "")
X87_HOST(h_fist_i16, LD_A, "fistps 64(%[io])", "")
X87_HOST(h_fist_i32, LD_A, "fistpl 64(%[io])", "")
X87_HOST(h_fist_i64, LD_A, "fistpll 64(%[io])", "")
X87_HOST(h_fbstp, LD_A, "fbstp 64(%[io])", "")

/* ---- helpers ---- */
static const u8 qnan_indefinite[10] = { 0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff };

static void put16(u8 *p, u16 v) { memcpy(p, &v, 2); }
static void put32(u8 *p, u32 v) { memcpy(p, &v, 4); }
static u16 get16(const u8 *p) { u16 v; memcpy(&v, p, 2); return v; }
static u32 get32(const u8 *p) { u32 v; memcpy(&v, p, 4); return v; }

/* Records exception flags (FSW bits 0..6); true when one of `blocking` is unmasked, in
 * which case the instruction does not deliver its result. */
static bool x87_except(struct fpu_state *f, u16 exc, u16 blocking)
{
    exc &= FSW_EXC | FSW_SF;
    f->fsw |= exc;
    u16 unmasked = exc & ~f->fcw & FSW_EXC;
    if (unmasked)
        f->fsw |= FSW_ES | FSW_B;
    return (unmasked & blocking) != 0;
}

static void set_cc(struct fpu_state *f, u16 mask, u16 v) { f->fsw = (u16)((f->fsw & ~mask) | (v & mask)); }

/* Stack underflow / overflow: #IS. Returns true when masked (caller applies the masked
 * response), false when the instruction must stop. */
static bool stack_underflow(struct fpu_state *f)
{
    set_cc(f, FSW_C1, 0);
    return !x87_except(f, FSW_IE | FSW_SF, FSW_IE);
}
static bool stack_overflow(struct fpu_state *f)
{
    set_cc(f, FSW_C1, FSW_C1);
    return !x87_except(f, FSW_IE | FSW_SF, FSW_IE);
}

static void st_write(struct fpu_state *f, unsigned i, const u8 *v)
{
    memcpy(fpu_st(f, i), v, 10);
    fpu_set_valid(f, i, true);
}
static void fpu_pop(struct fpu_state *f)
{
    fpu_set_valid(f, 0, false);
    fpu_set_top(f, fpu_top(f) + 1);
}
static void fpu_push(struct fpu_state *f, const u8 *v)
{
    fpu_set_top(f, fpu_top(f) - 1);
    st_write(f, 0, v);
}

static void io_prepare(const struct fpu_state *f, struct x87_io *io)
{
    memset(io->env, 0, sizeof(io->env));
    put32(io->env + 0, f->fcw);
    put32(io->env + 4, f->fsw & FSW_CC);
    put32(io->env + 8, 0xffff);
    io->cw_masked = FCW_INIT;
}

/* Runs a host operation; condition codes in `ccmask` are taken from the host. Returns
 * the host status word. */
static u16 x87_run(struct fpu_state *f, x87_host_fn fn, struct x87_io *io, u16 ccmask)
{
    u16 sw = fn(io);
    set_cc(f, ccmask, sw);
    return sw;
}

static int mem_operand(const struct insn *i)
{
    for (int n = 0; n < i->d.operand_count_visible; n++)
        if (opr_is_mem(i, n))
            return n;
    return -1;
}

/* Start of a non-control x87 instruction: device checks, pending exceptions, and the
 * last-instruction pointers (FIP/FCS/FOP, and FDP/FDS for a memory operand). */
static void x87_begin(struct cpu *c, const struct insn *i)
{
    fpu_check_x87(c, true);
    struct fpu_state *f = &c->fpu;
    const struct insn_modrm *m = &i->d.raw.modrm;
    f->fop = (u16)(((i->d.opcode & 7) << 8) | (m->mod << 6) | (m->reg << 3) | m->rm);
    f->fip = c->rip;
    f->fcs = c->seg[SEG_CS].sel;
    int n = mem_operand(i);
    if (n >= 0) {
        f->fdp = opr_ea(c, i, n);
        f->fds = c->seg[opr_seg(i, n)].sel;
    }
}

static void mem_read(struct cpu *c, const struct insn *i, int n, void *buf)
{
    vmem_read_bytes(c, opr_seg(i, n), opr_ea(c, i, n), buf, opr_bytes(i, n));
}
static void mem_write(struct cpu *c, const struct insn *i, int n, const void *buf)
{
    vmem_write_bytes(c, opr_seg(i, n), opr_ea(c, i, n), buf, opr_bytes(i, n));
}

/* Index of ST(i) named by register operand n. */
static unsigned st_index(const struct insn *i, int n) { return (unsigned)zreg_index(i->op[n].reg.value) & 7; }

/* Form of a memory operand for the arithmetic/compare tables. */
static int mem_form(const struct insn *i, int n, bool integer)
{
    unsigned bits = i->op[n].size;
    if (integer)
        return bits == 16 ? F_I16 : F_I32;
    return bits == 32 ? F_M32 : F_M64;
}

/* ---- loads ---- */
static void insn_fld(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    ZydisMnemonic m = i->d.mnemonic;
    struct x87_io io;
    io_prepare(f, &io);
    x87_host_fn fn = NULL;
    u8 value[10];
    bool from_reg = false;
    if (m == ZYDIS_MNEMONIC_FLD && opr_is_reg(i, 0)) {
        from_reg = true;
        unsigned s = st_index(i, 0);
        if (fpu_st_empty(f, s)) {
            if (stack_underflow(f))
                fpu_push(f, qnan_indefinite);
            return;
        }
        memcpy(value, fpu_st(f, s), 10);
    } else if (m == ZYDIS_MNEMONIC_FLD) {
        unsigned bits = i->op[0].size;
        mem_read(c, i, 0, io.mem);
        if (bits == 80) {
            from_reg = true;
            memcpy(value, io.mem, 10);
        } else {
            fn = bits == 32 ? h_fld_m32 : h_fld_m64;
        }
    } else if (m == ZYDIS_MNEMONIC_FILD) {
        unsigned bits = i->op[0].size;
        mem_read(c, i, 0, io.mem);
        fn = bits == 16 ? h_fild_i16 : bits == 32 ? h_fild_i32 : h_fild_i64;
    } else if (m == ZYDIS_MNEMONIC_FBLD) {
        mem_read(c, i, 0, io.mem);
        fn = h_fbld;
    } else {
        static const struct { ZydisMnemonic m; x87_host_fn fn; } consts[] = {
            { ZYDIS_MNEMONIC_FLD1, h_fld1 }, { ZYDIS_MNEMONIC_FLDZ, h_fldz },
            { ZYDIS_MNEMONIC_FLDPI, h_fldpi }, { ZYDIS_MNEMONIC_FLDL2E, h_fldl2e },
            { ZYDIS_MNEMONIC_FLDL2T, h_fldl2t }, { ZYDIS_MNEMONIC_FLDLG2, h_fldlg2 },
            { ZYDIS_MNEMONIC_FLDLN2, h_fldln2 },
        };
        for (size_t k = 0; k < ARRAY_SIZE(consts); k++)
            if (consts[k].m == m)
                fn = consts[k].fn;
    }
    if (!fpu_st_empty(f, 7)) {
        if (stack_overflow(f))
            fpu_push(f, qnan_indefinite);
        return;
    }
    if (from_reg) {
        set_cc(f, FSW_C1, 0);
        fpu_push(f, value);
        return;
    }
    u16 sw = x87_run(f, fn, &io, FSW_CC);
    /* an unmasked denormal-operand exception of a load does not stop the push */
    if (x87_except(f, sw, FSW_IE))
        return;
    fpu_push(f, io.r0);
}

/* ---- stores ---- */
static void insn_fst(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    ZydisMnemonic m = i->d.mnemonic;
    bool pop = m != ZYDIS_MNEMONIC_FST && m != ZYDIS_MNEMONIC_FIST;
    struct x87_io io;
    io_prepare(f, &io);
    if (opr_is_reg(i, 0)) { /* FST/FSTP ST(i): a copy, no numeric exceptions */
        unsigned d = st_index(i, 0);
        if (fpu_st_empty(f, 0) && m == ZYDIS_MNEMONIC_FSTPNCE) {
            /* FSTP1 (D9 D8+i): an empty ST(0) is popped without a fault or a store */
            set_cc(f, FSW_C1, 0);
        } else if (fpu_st_empty(f, 0)) {
            if (!stack_underflow(f))
                return;
            st_write(f, d, qnan_indefinite);
        } else {
            set_cc(f, FSW_C1, 0);
            st_write(f, d, fpu_st(f, 0));
        }
        if (pop)
            fpu_pop(f);
        return;
    }
    unsigned bits = i->op[0].size;
    x87_host_fn fn = NULL;
    if (m == ZYDIS_MNEMONIC_FIST || m == ZYDIS_MNEMONIC_FISTP)
        fn = bits == 16 ? h_fist_i16 : bits == 32 ? h_fist_i32 : h_fist_i64;
    else if (m == ZYDIS_MNEMONIC_FBSTP)
        fn = h_fbstp;
    else if (bits == 32)
        fn = h_fst_m32;
    else if (bits == 64)
        fn = h_fst_m64;
    struct fpu_state nf = *f; /* FPU state changes only after the store succeeded */
    if (fpu_st_empty(&nf, 0)) {
        if (!stack_underflow(&nf)) {
            *f = nf;
            return;
        }
        /* masked response: the indefinite of the destination format */
        memset(io.mem, 0, sizeof(io.mem));
        if (fn == h_fist_i16 || fn == h_fist_i32 || fn == h_fist_i64)
            io.mem[bits / 8 - 1] = 0x80;
        else if (fn == h_fbstp)
            memcpy(io.mem, (const u8[]){ 0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff }, 10);
        else if (bits == 32)
            put32(io.mem, 0xffc00000u);
        else if (bits == 64)
            memcpy(io.mem, (const u8[]){ 0, 0, 0, 0, 0, 0, 0xf8, 0xff }, 8);
        else
            memcpy(io.mem, qnan_indefinite, 10);
    } else if (fn) {
        memcpy(io.a, fpu_st(&nf, 0), 10);
        u16 sw = x87_run(&nf, fn, &io, FSW_CC);
        if (x87_except(&nf, sw, FSW_IE | FSW_DE | FSW_OE | FSW_UE)) {
            *f = nf;
            return;
        }
    } else { /* FSTP m80: exact copy */
        set_cc(&nf, FSW_C1, 0);
        memcpy(io.mem, fpu_st(&nf, 0), 10);
    }
    mem_write(c, i, 0, io.mem);
    if (pop)
        fpu_pop(&nf);
    *f = nf;
}

/* ---- arithmetic ---- */
struct arith_op {
    const x87_host_fn *fns;
    bool pop, integer;
};
static struct arith_op arith_ops[ZYDIS_MNEMONIC_MAX_VALUE + 1];

static void insn_arith(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    const struct arith_op *o = &arith_ops[i->d.mnemonic];
    struct x87_io io;
    io_prepare(f, &io);
    unsigned dst = 0, src = 1;
    int form = F_REG;
    if (i->d.operand_count_visible == 0) { /* FADDP etc. without operands: ST(1), ST(0) */
        dst = 1;
        src = 0;
    } else if (opr_is_mem(i, 0)) {
        form = mem_form(i, 0, o->integer);
        mem_read(c, i, 0, io.mem);
    } else {
        dst = st_index(i, 0);
        src = st_index(i, 1);
    }
    bool empty = fpu_st_empty(f, dst) || (form == F_REG && fpu_st_empty(f, src));
    if (empty) {
        if (!stack_underflow(f))
            return;
        st_write(f, dst, qnan_indefinite);
    } else {
        memcpy(io.a, fpu_st(f, dst), 10);
        if (form == F_REG)
            memcpy(io.b, fpu_st(f, src), 10);
        u16 sw = x87_run(f, o->fns[form], &io, FSW_CC);
        if (x87_except(f, sw, FSW_IE | FSW_DE | FSW_ZE))
            return;
        st_write(f, dst, io.r0);
    }
    if (o->pop)
        fpu_pop(f);
}

/* ---- comparisons ---- */
static void insn_fcom(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    ZydisMnemonic m = i->d.mnemonic;
    bool unordered = m == ZYDIS_MNEMONIC_FUCOM || m == ZYDIS_MNEMONIC_FUCOMP || m == ZYDIS_MNEMONIC_FUCOMPP;
    bool integer = m == ZYDIS_MNEMONIC_FICOM || m == ZYDIS_MNEMONIC_FICOMP;
    unsigned pops = (m == ZYDIS_MNEMONIC_FCOMPP || m == ZYDIS_MNEMONIC_FUCOMPP) ? 2
                    : (m == ZYDIS_MNEMONIC_FCOM || m == ZYDIS_MNEMONIC_FUCOM || m == ZYDIS_MNEMONIC_FICOM) ? 0
                                                                                                        : 1;
    struct x87_io io;
    io_prepare(f, &io);
    unsigned src = 1;
    int form = F_REG;
    if (i->d.operand_count_visible > 0 && opr_is_mem(i, 0)) {
        form = mem_form(i, 0, integer);
        mem_read(c, i, 0, io.mem);
    } else if (i->d.operand_count_visible > 0) {
        src = st_index(i, i->d.operand_count_visible - 1);
    }
    if (fpu_st_empty(f, 0) || (form == F_REG && fpu_st_empty(f, src))) {
        /* "unordered" is reported even when the exception is unmasked */
        bool masked = stack_underflow(f);
        set_cc(f, FSW_C0 | FSW_C2 | FSW_C3, FSW_C0 | FSW_C2 | FSW_C3);
        if (!masked)
            return;
    } else {
        memcpy(io.a, fpu_st(f, 0), 10);
        if (form == F_REG)
            memcpy(io.b, fpu_st(f, src), 10);
        u16 sw = x87_run(f, form == F_REG && unordered ? h_fucom_r : h_fcom[form], &io, FSW_CC);
        if (x87_except(f, sw, FSW_IE | FSW_DE))
            return;
    }
    while (pops--)
        fpu_pop(f);
}

/* FCOMI/FCOMIP/FUCOMI/FUCOMIP: the result goes to ZF, PF, CF (OF, SF, AF cleared); the
 * condition codes are whatever the host's FCOMI leaves of the guest's. */
static void insn_fcomi(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    ZydisMnemonic m = i->d.mnemonic;
    bool unordered = m == ZYDIS_MNEMONIC_FUCOMI || m == ZYDIS_MNEMONIC_FUCOMIP;
    bool pop = m == ZYDIS_MNEMONIC_FCOMIP || m == ZYDIS_MNEMONIC_FUCOMIP;
    unsigned src = st_index(i, 1);
    u64 fl = FL_ZF | FL_PF | FL_CF; /* "unordered", also reported for an unmasked #IS */
    if (fpu_st_empty(f, 0) || fpu_st_empty(f, src)) {
        if (!stack_underflow(f)) {
            flags_set(c, FL_ARITH, fl);
            return;
        }
    } else {
        struct x87_io io;
        io_prepare(f, &io);
        memcpy(io.a, fpu_st(f, 0), 10);
        memcpy(io.b, fpu_st(f, src), 10);
        u16 sw = x87_run(f, unordered ? h_fucomi_r : h_fcomi_r, &io, FSW_CC);
        /* the flags are written even when an unmasked exception stops the pop */
        fl = (io.zpc[0] ? FL_ZF : 0) | (io.zpc[1] ? FL_PF : 0) | (io.zpc[2] ? FL_CF : 0);
        if (x87_except(f, sw, FSW_IE | FSW_DE)) {
            flags_set(c, FL_ARITH, fl);
            return;
        }
    }
    flags_set(c, FL_ARITH, fl);
    if (pop)
        fpu_pop(f);
}

static void insn_ftst_fxam(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    bool fxam = i->d.mnemonic == ZYDIS_MNEMONIC_FXAM;
    if (fpu_st_empty(f, 0)) {
        if (fxam) { /* class "empty"; C1 is the sign bit of the register */
            u16 sign = (fpu_st(f, 0)[9] & 0x80) ? FSW_C1 : 0;
            set_cc(f, FSW_CC, FSW_C3 | FSW_C0 | sign);
        } else {
            stack_underflow(f);
            set_cc(f, FSW_C0 | FSW_C2 | FSW_C3, FSW_C0 | FSW_C2 | FSW_C3);
        }
        return;
    }
    struct x87_io io;
    io_prepare(f, &io);
    memcpy(io.a, fpu_st(f, 0), 10);
    u16 sw = x87_run(f, fxam ? h_fxam : h_ftst, &io, FSW_CC);
    x87_except(f, sw, 0);
}

/* ---- functions of ST(0) (and ST(1)) ---- */
struct fn_op {
    x87_host_fn fn;
    u8 kind;
    bool clears_c2; /* C2 reports argument range / partial remainder */
};
enum { K_UNARY, K_BINARY, K_POP, K_PUSH };
static struct fn_op fn_ops[ZYDIS_MNEMONIC_MAX_VALUE + 1];

static void insn_fn1(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    const struct fn_op *o = &fn_ops[i->d.mnemonic];
    bool two = o->kind == K_BINARY || o->kind == K_POP;
    if (fpu_st_empty(f, 0) || (two && fpu_st_empty(f, 1))) {
        if (o->clears_c2) /* as hardware: "operand in range" / "reduction complete" */
            set_cc(f, FSW_C2, 0);
        if (!stack_underflow(f))
            return;
        switch (o->kind) {
        case K_UNARY:
        case K_BINARY: st_write(f, 0, qnan_indefinite); break;
        case K_POP: st_write(f, 1, qnan_indefinite); fpu_pop(f); break;
        case K_PUSH:
            st_write(f, 0, qnan_indefinite);
            fpu_push(f, qnan_indefinite);
            break;
        }
        return;
    }
    if (o->kind == K_PUSH && !fpu_st_empty(f, 7)) {
        if (o->clears_c2)
            set_cc(f, FSW_C2, 0);
        if (stack_overflow(f)) {
            st_write(f, 0, qnan_indefinite);
            fpu_push(f, qnan_indefinite);
        }
        return;
    }
    struct x87_io io;
    io_prepare(f, &io);
    memcpy(io.a, fpu_st(f, 0), 10);
    if (two)
        memcpy(io.b, fpu_st(f, 1), 10);
    u16 sw = x87_run(f, o->fn, &io, FSW_CC);
    if (x87_except(f, sw, FSW_IE | FSW_DE | FSW_ZE))
        return;
    switch (o->kind) {
    case K_UNARY:
    case K_BINARY: st_write(f, 0, io.r0); break;
    case K_POP: st_write(f, 1, io.r0); fpu_pop(f); break;
    case K_PUSH:
        /* FPTAN/FSINCOS with an operand out of range set C2 and change nothing */
        if ((sw & FSW_C2) && i->d.mnemonic != ZYDIS_MNEMONIC_FXTRACT)
            break;
        st_write(f, 0, io.r1);
        fpu_push(f, io.r0);
        break;
    }
}

/* FCHS/FABS: sign manipulation, no numeric exception. */
static void insn_fsign(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    if (fpu_st_empty(f, 0)) {
        if (stack_underflow(f))
            st_write(f, 0, qnan_indefinite);
        return;
    }
    u8 *r = fpu_st(f, 0);
    if (i->d.mnemonic == ZYDIS_MNEMONIC_FCHS)
        r[9] ^= 0x80;
    else
        r[9] &= 0x7f;
    set_cc(f, FSW_C1, 0);
}

/* ---- register manipulation ---- */
static void insn_fxch(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    unsigned s = i->d.operand_count_visible ? st_index(i, 0) : 1;
    if (fpu_st_empty(f, 0) || fpu_st_empty(f, s)) {
        if (!stack_underflow(f))
            return;
        if (fpu_st_empty(f, 0))
            st_write(f, 0, qnan_indefinite);
        if (fpu_st_empty(f, s))
            st_write(f, s, qnan_indefinite);
    } else {
        set_cc(f, FSW_C1, 0);
    }
    u8 t[10];
    memcpy(t, fpu_st(f, 0), 10);
    memcpy(fpu_st(f, 0), fpu_st(f, s), 10);
    memcpy(fpu_st(f, s), t, 10);
}

static void insn_fcmov(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    static const struct { ZydisMnemonic m; u8 cc; } conds[] = {
        /* Jcc condition numbers: B=2, NB=3, E=4, NE=5, BE=6, NBE=7, P=10, NP=11 */
        { ZYDIS_MNEMONIC_FCMOVB, 2 }, { ZYDIS_MNEMONIC_FCMOVNB, 3 },
        { ZYDIS_MNEMONIC_FCMOVE, 4 }, { ZYDIS_MNEMONIC_FCMOVNE, 5 },
        { ZYDIS_MNEMONIC_FCMOVBE, 6 }, { ZYDIS_MNEMONIC_FCMOVNBE, 7 },
        { ZYDIS_MNEMONIC_FCMOVU, 10 }, { ZYDIS_MNEMONIC_FCMOVNU, 11 },
    };
    unsigned cc = 0;
    for (size_t k = 0; k < ARRAY_SIZE(conds); k++)
        if (conds[k].m == i->d.mnemonic)
            cc = conds[k].cc;
    unsigned s = st_index(i, 1);
    if (fpu_st_empty(f, 0) || fpu_st_empty(f, s)) {
        if (stack_underflow(f))
            st_write(f, 0, qnan_indefinite);
        return;
    }
    if (cond_eval(c, cc))
        st_write(f, 0, fpu_st(f, s));
}

static void insn_ffree(struct cpu *c, const struct insn *i)
{
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    fpu_set_valid(f, st_index(i, 0), false);
    set_cc(f, FSW_C1, 0);
    if (i->d.mnemonic == ZYDIS_MNEMONIC_FFREEP)
        fpu_pop(f);
}

static void insn_fstp_misc(struct cpu *c, const struct insn *i)
{
    ZydisMnemonic m = i->d.mnemonic;
    x87_begin(c, i);
    struct fpu_state *f = &c->fpu;
    if (m == ZYDIS_MNEMONIC_FINCSTP || m == ZYDIS_MNEMONIC_FDECSTP) {
        fpu_set_top(f, fpu_top(f) + (m == ZYDIS_MNEMONIC_FINCSTP ? 1 : 7));
        set_cc(f, FSW_C1, 0);
    }
    /* FNOP does nothing else */
}

/* FNENI, FNDISI, FNSETPM: 8087/287 control instructions, no-ops since the 387 (they do
 * not wait for pending exceptions). */
static void insn_fnop_legacy(struct cpu *c, const struct insn *i)
{
    (void)i;
    fpu_check_x87(c, false);
}

/* ---- control instructions: pointers unchanged; only FLDCW, FLDENV and FRSTOR take a
 * pending exception (so does hardware, although the SDM lists no #MF for them) ---- */
static void insn_fninit(struct cpu *c, const struct insn *i)
{
    (void)i;
    fpu_check_x87(c, false);
    fpu_reset(c);
}

static void insn_fnclex(struct cpu *c, const struct insn *i)
{
    (void)i;
    fpu_check_x87(c, false);
    c->fpu.fsw &= (u16)~(FSW_EXC | FSW_SF | FSW_ES | FSW_B);
}

static void insn_fnstsw(struct cpu *c, const struct insn *i)
{
    fpu_check_x87(c, false);
    opr_write(c, i, 0, c->fpu.fsw);
}

static void insn_fnstcw(struct cpu *c, const struct insn *i)
{
    fpu_check_x87(c, false);
    opr_write(c, i, 0, c->fpu.fcw);
}

static void insn_fldcw(struct cpu *c, const struct insn *i)
{
    fpu_check_x87(c, true); /* hardware takes a pending exception first */
    c->fpu.fcw = fpu_fcw_sanitize((u16)opr_read(c, i, 0));
    fpu_update_es(&c->fpu);
}

static void insn_fwait(struct cpu *c, const struct insn *i)
{
    (void)i;
    if ((c->cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS))
        cpu_fault_noerr(c, EXC_NM);
    fpu_check_pending(c);
}

/* Environment image (FSTENV/FLDENV, first part of FSAVE/FRSTOR): 14 bytes with a 16-bit
 * operand size, 28 otherwise; real/V86 layouts keep 20-bit linear pointers and FOP. */
static unsigned env_size(const struct insn *i) { return i->osize == 2 ? 14 : 28; }
static bool env_real(const struct cpu *c) { return cpu_is_real(c) || cpu_is_v86(c); }

static void env_store(struct cpu *c, const struct insn *i, u8 *img)
{
    const struct fpu_state *f = &c->fpu;
    u16 tw = fpu_full_tag_word(f);
    u32 fip = (u32)f->fip, fdp = (u32)f->fdp;
    if (env_real(c)) {
        fip = (u32)((f->fcs << 4) + f->fip);
        fdp = (u32)((f->fds << 4) + f->fdp);
    }
    if (i->osize == 2) {
        put16(img + 0, f->fcw);
        put16(img + 2, f->fsw);
        put16(img + 4, tw);
        put16(img + 6, (u16)fip);
        if (env_real(c)) {
            put16(img + 8, (u16)(((fip >> 16) & 0xf) << 12 | (f->fop & 0x7ff)));
            put16(img + 10, (u16)fdp);
            put16(img + 12, (u16)(((fdp >> 16) & 0xf) << 12));
        } else {
            put16(img + 8, f->fcs);
            put16(img + 10, (u16)fdp);
            put16(img + 12, f->fds);
        }
        return;
    }
    put32(img + 0, 0xffff0000u | f->fcw);
    put32(img + 4, 0xffff0000u | f->fsw);
    put32(img + 8, 0xffff0000u | tw);
    if (env_real(c)) {
        put32(img + 12, 0xffff0000u | (fip & 0xffff));
        put32(img + 16, ((fip >> 16) << 12) | (f->fop & 0x7ff));
        put32(img + 20, 0xffff0000u | (fdp & 0xffff));
        put32(img + 24, (fdp >> 16) << 12);
    } else {
        put32(img + 12, fip);
        put32(img + 16, f->fcs | ((u32)(f->fop & 0x7ff) << 16));
        put32(img + 20, fdp);
        put32(img + 24, 0xffff0000u | f->fds);
    }
}

static void env_load(struct cpu *c, const struct insn *i, const u8 *img)
{
    struct fpu_state *f = &c->fpu;
    bool w16 = i->osize == 2;
    f->fcw = fpu_fcw_sanitize(get16(img + 0));
    f->fsw = get16(img + (w16 ? 2 : 4));
    f->ftw = fpu_abridged_tags(get16(img + (w16 ? 4 : 8)));
    if (w16) {
        u16 w3 = get16(img + 6), w4 = get16(img + 8), w5 = get16(img + 10), w6 = get16(img + 12);
        if (env_real(c)) {
            f->fip = w3 | ((u32)(w4 >> 12) << 16);
            f->fop = w4 & 0x7ff;
            f->fdp = w5 | ((u32)(w6 >> 12) << 16);
            f->fcs = f->fds = 0;
        } else {
            f->fip = w3;
            f->fcs = w4;
            f->fdp = w5;
            f->fds = w6;
        }
    } else {
        u32 d3 = get32(img + 12), d4 = get32(img + 16), d5 = get32(img + 20), d6 = get32(img + 24);
        if (env_real(c)) {
            f->fip = (d3 & 0xffff) | ((d4 >> 12) << 16);
            f->fop = d4 & 0x7ff;
            f->fdp = (d5 & 0xffff) | ((d6 >> 12) << 16);
            f->fcs = f->fds = 0;
        } else {
            f->fip = d3;
            f->fcs = (u16)d4;
            f->fop = (d4 >> 16) & 0x7ff;
            f->fdp = d5;
            f->fds = (u16)d6;
        }
    }
    fpu_update_es(f);
}

static void insn_fnstenv(struct cpu *c, const struct insn *i)
{
    fpu_check_x87(c, false);
    u8 img[28];
    env_store(c, i, img);
    vmem_write_bytes(c, opr_seg(i, 0), opr_ea(c, i, 0), img, env_size(i));
    c->fpu.fcw |= FCW_EXC_MASKS; /* FSTENV masks all exceptions afterwards */
    fpu_update_es(&c->fpu);
}

static void insn_fldenv(struct cpu *c, const struct insn *i)
{
    fpu_check_x87(c, true); /* hardware takes a pending exception first */
    u8 img[28];
    vmem_read_bytes(c, opr_seg(i, 0), opr_ea(c, i, 0), img, env_size(i));
    env_load(c, i, img);
}

static void insn_fnsave(struct cpu *c, const struct insn *i)
{
    fpu_check_x87(c, false);
    u8 img[28 + 80];
    unsigned n = env_size(i);
    env_store(c, i, img);
    for (unsigned k = 0; k < 8; k++)
        memcpy(img + n + 10 * k, fpu_st(&c->fpu, k), 10);
    vmem_write_bytes(c, opr_seg(i, 0), opr_ea(c, i, 0), img, n + 80);
    fpu_reset(c);
}

static void insn_frstor(struct cpu *c, const struct insn *i)
{
    fpu_check_x87(c, true); /* hardware takes a pending exception first */
    u8 img[28 + 80];
    unsigned n = env_size(i);
    vmem_read_bytes(c, opr_seg(i, 0), opr_ea(c, i, 0), img, n + 80);
    env_load(c, i, img);
    for (unsigned k = 0; k < 8; k++)
        memcpy(fpu_st(&c->fpu, k), img + n + 10 * k, 10);
}

/* ---- registration ---- */
void insn_register_x87(insn_fn *t)
{
    static const struct { ZydisMnemonic m; const x87_host_fn *fns; bool pop, integer; } arith[] = {
        { ZYDIS_MNEMONIC_FADD, h_fadd, false, false }, { ZYDIS_MNEMONIC_FADDP, h_fadd, true, false },
        { ZYDIS_MNEMONIC_FIADD, h_fadd, false, true }, { ZYDIS_MNEMONIC_FSUB, h_fsub, false, false },
        { ZYDIS_MNEMONIC_FSUBP, h_fsub, true, false }, { ZYDIS_MNEMONIC_FISUB, h_fsub, false, true },
        { ZYDIS_MNEMONIC_FSUBR, h_fsubr, false, false }, { ZYDIS_MNEMONIC_FSUBRP, h_fsubr, true, false },
        { ZYDIS_MNEMONIC_FISUBR, h_fsubr, false, true }, { ZYDIS_MNEMONIC_FMUL, h_fmul, false, false },
        { ZYDIS_MNEMONIC_FMULP, h_fmul, true, false }, { ZYDIS_MNEMONIC_FIMUL, h_fmul, false, true },
        { ZYDIS_MNEMONIC_FDIV, h_fdiv, false, false }, { ZYDIS_MNEMONIC_FDIVP, h_fdiv, true, false },
        { ZYDIS_MNEMONIC_FIDIV, h_fdiv, false, true }, { ZYDIS_MNEMONIC_FDIVR, h_fdivr, false, false },
        { ZYDIS_MNEMONIC_FDIVRP, h_fdivr, true, false }, { ZYDIS_MNEMONIC_FIDIVR, h_fdivr, false, true },
    };
    for (size_t k = 0; k < ARRAY_SIZE(arith); k++) {
        arith_ops[arith[k].m] = (struct arith_op){ arith[k].fns, arith[k].pop, arith[k].integer };
        t[arith[k].m] = insn_arith;
    }
    static const struct { ZydisMnemonic m; x87_host_fn fn; u8 kind; } fns[] = {
        { ZYDIS_MNEMONIC_FSQRT, h_fsqrt, K_UNARY }, { ZYDIS_MNEMONIC_FRNDINT, h_frndint, K_UNARY },
        { ZYDIS_MNEMONIC_F2XM1, h_f2xm1, K_UNARY }, { ZYDIS_MNEMONIC_FSIN, h_fsin, K_UNARY },
        { ZYDIS_MNEMONIC_FCOS, h_fcos, K_UNARY }, { ZYDIS_MNEMONIC_FSCALE, h_fscale, K_BINARY },
        { ZYDIS_MNEMONIC_FPREM, h_fprem, K_BINARY }, { ZYDIS_MNEMONIC_FPREM1, h_fprem1, K_BINARY },
        { ZYDIS_MNEMONIC_FPATAN, h_fpatan, K_POP }, { ZYDIS_MNEMONIC_FYL2X, h_fyl2x, K_POP },
        { ZYDIS_MNEMONIC_FYL2XP1, h_fyl2xp1, K_POP }, { ZYDIS_MNEMONIC_FXTRACT, h_fxtract, K_PUSH },
        { ZYDIS_MNEMONIC_FPTAN, h_fptan, K_PUSH }, { ZYDIS_MNEMONIC_FSINCOS, h_fsincos, K_PUSH },
    };
    for (size_t k = 0; k < ARRAY_SIZE(fns); k++) {
        ZydisMnemonic m = fns[k].m;
        bool c2 = m == ZYDIS_MNEMONIC_FSIN || m == ZYDIS_MNEMONIC_FCOS || m == ZYDIS_MNEMONIC_FSINCOS ||
                  m == ZYDIS_MNEMONIC_FPTAN || m == ZYDIS_MNEMONIC_FPREM || m == ZYDIS_MNEMONIC_FPREM1;
        fn_ops[m] = (struct fn_op){ fns[k].fn, fns[k].kind, c2 };
        t[fns[k].m] = insn_fn1;
    }
    static const struct { ZydisMnemonic m; insn_fn fn; } other[] = {
        { ZYDIS_MNEMONIC_FLD, insn_fld }, { ZYDIS_MNEMONIC_FILD, insn_fld },
        { ZYDIS_MNEMONIC_FBLD, insn_fld }, { ZYDIS_MNEMONIC_FLD1, insn_fld },
        { ZYDIS_MNEMONIC_FLDZ, insn_fld }, { ZYDIS_MNEMONIC_FLDPI, insn_fld },
        { ZYDIS_MNEMONIC_FLDL2E, insn_fld }, { ZYDIS_MNEMONIC_FLDL2T, insn_fld },
        { ZYDIS_MNEMONIC_FLDLG2, insn_fld }, { ZYDIS_MNEMONIC_FLDLN2, insn_fld },
        { ZYDIS_MNEMONIC_FST, insn_fst }, { ZYDIS_MNEMONIC_FSTP, insn_fst },
        { ZYDIS_MNEMONIC_FSTPNCE, insn_fst }, { ZYDIS_MNEMONIC_FIST, insn_fst },
        { ZYDIS_MNEMONIC_FISTP, insn_fst }, { ZYDIS_MNEMONIC_FBSTP, insn_fst },
        { ZYDIS_MNEMONIC_FCOM, insn_fcom }, { ZYDIS_MNEMONIC_FCOMP, insn_fcom },
        { ZYDIS_MNEMONIC_FCOMPP, insn_fcom }, { ZYDIS_MNEMONIC_FUCOM, insn_fcom },
        { ZYDIS_MNEMONIC_FUCOMP, insn_fcom }, { ZYDIS_MNEMONIC_FUCOMPP, insn_fcom },
        { ZYDIS_MNEMONIC_FICOM, insn_fcom }, { ZYDIS_MNEMONIC_FICOMP, insn_fcom },
        { ZYDIS_MNEMONIC_FCOMI, insn_fcomi }, { ZYDIS_MNEMONIC_FCOMIP, insn_fcomi },
        { ZYDIS_MNEMONIC_FUCOMI, insn_fcomi }, { ZYDIS_MNEMONIC_FUCOMIP, insn_fcomi },
        { ZYDIS_MNEMONIC_FTST, insn_ftst_fxam }, { ZYDIS_MNEMONIC_FXAM, insn_ftst_fxam },
        { ZYDIS_MNEMONIC_FCHS, insn_fsign }, { ZYDIS_MNEMONIC_FABS, insn_fsign },
        { ZYDIS_MNEMONIC_FXCH, insn_fxch },
        { ZYDIS_MNEMONIC_FCMOVB, insn_fcmov }, { ZYDIS_MNEMONIC_FCMOVNB, insn_fcmov },
        { ZYDIS_MNEMONIC_FCMOVE, insn_fcmov }, { ZYDIS_MNEMONIC_FCMOVNE, insn_fcmov },
        { ZYDIS_MNEMONIC_FCMOVBE, insn_fcmov }, { ZYDIS_MNEMONIC_FCMOVNBE, insn_fcmov },
        { ZYDIS_MNEMONIC_FCMOVU, insn_fcmov }, { ZYDIS_MNEMONIC_FCMOVNU, insn_fcmov },
        { ZYDIS_MNEMONIC_FFREE, insn_ffree }, { ZYDIS_MNEMONIC_FFREEP, insn_ffree },
        { ZYDIS_MNEMONIC_FINCSTP, insn_fstp_misc }, { ZYDIS_MNEMONIC_FDECSTP, insn_fstp_misc },
        { ZYDIS_MNEMONIC_FNOP, insn_fstp_misc }, { ZYDIS_MNEMONIC_FENI8087_NOP, insn_fnop_legacy },
        { ZYDIS_MNEMONIC_FDISI8087_NOP, insn_fnop_legacy }, { ZYDIS_MNEMONIC_FSETPM287_NOP, insn_fnop_legacy },
        { ZYDIS_MNEMONIC_FNINIT, insn_fninit }, { ZYDIS_MNEMONIC_FNCLEX, insn_fnclex },
        { ZYDIS_MNEMONIC_FNSTSW, insn_fnstsw }, { ZYDIS_MNEMONIC_FNSTCW, insn_fnstcw },
        { ZYDIS_MNEMONIC_FLDCW, insn_fldcw }, { ZYDIS_MNEMONIC_FWAIT, insn_fwait },
        { ZYDIS_MNEMONIC_FNSTENV, insn_fnstenv }, { ZYDIS_MNEMONIC_FLDENV, insn_fldenv },
        { ZYDIS_MNEMONIC_FNSAVE, insn_fnsave }, { ZYDIS_MNEMONIC_FRSTOR, insn_frstor },
    };
    for (size_t k = 0; k < ARRAY_SIZE(other); k++)
        t[other[k].m] = other[k].fn;
}

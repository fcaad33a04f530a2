/* Differential tests of the x87 FPU (see harness.h).
 *
 * Inputs: a random control word (rounding, precision control, exception masks: all
 * masked in most cases), random condition codes and TOP, a random tag word (registers
 * empty now and then, ST(7) often in use, for stack underflow/overflow), register
 * values drawn from special 80-bit encodings (zeros, infinities, QNaN/SNaN, indefinite,
 * denormals, pseudo-denormals, unnormals, pseudo-NaN/infinity, extreme exponents) and
 * random numbers; memory operands through RAX hold f32/f64/integer/BCD values.
 * Compared: FCW, FSW, abridged FTW, the valid ST registers, EFLAGS for FCOMI, memory.
 * Unmasked exceptions stay pending natively (no fault on the instruction itself); an
 * input with a pending exception makes waiting instructions raise #MF on both sides.
 *
 * Note for the harness owner: fx_to_engine() loads FIP/FDP as 64-bit fields but never
 * FCS/FDS, while the native FXRSTOR (no REX.W) takes FCS from bytes 12-13 and FDS from
 * bytes 20-21; the engine thus keeps FCS/FDS of the previous case, which FNSTENV/FNSAVE
 * store. Loading fcs/fds from those bytes would fix it (the inputs here keep them 0). */
#include <string.h>

#include "harness.h"

enum { M_NONE, M_F32, M_F64, M_I16, M_I32, M_I64, M_F80, M_BCD, M_ENV, M_CW };

static void rand_f80(struct diff_rng *r, uint8_t *p)
{
    static const struct { uint64_t m; uint16_t e; } special[] = {
        { 0, 0 }, { 0, 0x8000 }, { 0x8000000000000000ull, 0x7fff }, { 0x8000000000000000ull, 0xffff },
        { 0xc000000000000000ull, 0x7fff }, { 0xc000000000000000ull, 0xffff }, /* QNaN, indefinite */
        { 0xa000000000000000ull, 0x7fff }, { 0x8000000000000001ull, 0xffff }, /* SNaN */
        { 1, 0 }, { 0x7fffffffffffffffull, 0x8000 },                         /* denormals */
        { 0x8000000000000000ull, 0 },                                        /* pseudo-denormal */
        { 0x4000000000000000ull, 0x3fff },                                   /* unnormal */
        { 0, 0x7fff }, { 0x4000000000000000ull, 0x7fff },                    /* pseudo-inf/NaN */
        { 0xffffffffffffffffull, 0x7ffe }, { 0x8000000000000000ull, 0x0001 }, /* max, min normal */
        { 0x8000000000000000ull, 0x3fff }, { 0x8000000000000000ull, 0xbfff }, /* +-1 */
        { 0xc90fdaa22168c235ull, 0x4000 }, { 0x8000000000000000ull, 0x403e }, /* pi, 2^63 */
        { 0xffffffffffffffffull, 0x403d }, { 0x8000000000000000ull, 0x400e }, /* 2^63-1, 2^15 */
        { 0xc000000000000000ull, 0x3ffe }, { 0x8000000000000000ull, 0x3ffe }, /* 0.75, 0.5 */
    };
    uint64_t x = diff_rand(r), m = diff_rand(r) | 0x8000000000000000ull;
    uint16_t sign = (uint16_t)((x >> 63) << 15), e;
    switch (x & 7) {
    case 0: case 1: case 2: {
        unsigned k = (unsigned)((x >> 8) % (sizeof(special) / sizeof(special[0])));
        m = special[k].m;
        e = special[k].e;
        break;
    }
    case 3: e = sign | (uint16_t)(0x3fff + (int)((x >> 8) % 130) - 65); break;  /* ordinary */
    case 4: e = sign | (uint16_t)(0x3fff + (int)((x >> 8) % 16) - 8); break;    /* near 1 */
    case 5: e = sign | (uint16_t)(0x403e - (int)((x >> 8) % 64)); m &= ~0ull << ((x >> 16) % 64); break; /* integers */
    case 6: e = sign | (uint16_t)((x >> 8) & 1 ? 0x7ffe - (x >> 9) % 4 : 1 + (x >> 9) % 4); break; /* extremes */
    default: e = (uint16_t)diff_rand(r); m = diff_rand(r); break;
    }
    memcpy(p, &m, 8);
    memcpy(p + 8, &e, 2);
}

static void rand_mem(struct diff_rng *r, uint8_t *p, int kind)
{
    uint64_t x = diff_rand(r);
    switch (kind) {
    case M_F32: {
        static const uint32_t sp[] = { 0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7fa00000,
                                       0x00000001, 0x807fffff, 0x3f800000, 0x7f7fffff, 0x00800000 };
        uint32_t v = (x & 3) == 0 ? sp[(x >> 8) % 11] : (uint32_t)(x >> 8) ^ (uint32_t)(x << 30);
        if ((x & 3) == 1)
            v = (v & 0x807fffff) | (uint32_t)(110 + (x >> 40) % 40) << 23;
        memcpy(p, &v, 4);
        break;
    }
    case M_F64: {
        static const uint64_t sp[] = { 0, 0x8000000000000000ull, 0x7ff0000000000000ull, 0x7ff8000000000000ull,
                                       0x7ff4000000000000ull, 1, 0x3ff0000000000000ull, 0x7fefffffffffffffull };
        uint64_t v = (x & 3) == 0 ? sp[(x >> 8) % 8] : diff_rand(r);
        if ((x & 3) == 1)
            v = (v & 0x800fffffffffffffull) | (uint64_t)(1000 + (x >> 40) % 40) << 52;
        memcpy(p, &v, 8);
        break;
    }
    case M_BCD: {
        for (int k = 0; k < 9; k++)
            p[k] = (x & 7) ? (uint8_t)((diff_rand(r) % 10) << 4 | diff_rand(r) % 10) : (uint8_t)diff_rand(r);
        p[9] = (uint8_t)(diff_rand(r) & 0x80);
        break;
    }
    case M_F80: rand_f80(r, p); break;
    case M_CW: {
        uint16_t v = (uint16_t)((x & 3) ? (0x037f & ~((x >> 8) & 0x3f)) | ((x >> 16) & 0x0c00) : x >> 8);
        memcpy(p, &v, 2);
        break;
    }
    default: {
        uint64_t v = diff_rand_value(r);
        memcpy(p, &v, 8);
        break;
    }
    }
}

static void x87_setup(struct diff_state *s, struct diff_rng *r, const struct diff_form *f)
{
    uint64_t x = diff_rand(r);
    uint16_t fcw = (uint16_t)(0x0040 | ((x >> 2) & 0x0f00)); /* precision and rounding */
    fcw |= (x & 3) ? 0x3f : (uint16_t)((x >> 12) & 0x3f);     /* exception masks */
    uint16_t fsw = (uint16_t)(((x >> 20) & 7) << 11 | ((x >> 24) & 0x4700));
    if (((x >> 28) & 7) == 0)
        fsw |= (uint16_t)((x >> 32) & 0x3f & fcw); /* sticky flags of masked exceptions */
    if (((x >> 40) & 63) == 0) {
        fsw |= 0x0081 | 0x8000; /* a pending exception (IE unmasked) */
        fcw &= (uint16_t)~1;
    }
    memcpy(s->fx + FX_FCW, &fcw, 2);
    memcpy(s->fx + FX_FSW, &fsw, 2);
    unsigned top = (fsw >> 11) & 7;
    uint8_t ftw = 0;
    for (unsigned i = 0; i < 8; i++) {
        int valid = i < 7 ? diff_rand(r) % 10 != 0 : diff_rand(r) % 3 == 0;
        if (valid)
            ftw |= (uint8_t)(1u << ((top + i) & 7));
        rand_f80(r, s->fx + FX_ST(i));
        memset(s->fx + FX_ST(i) + 10, 0, 6);
    }
    s->fx[FX_FTW] = ftw;
    if (f->ptr_regs & (1u << D_RAX)) {
        uint8_t *p = DIFF_DATA_AT(s->gpr[D_RAX]);
        if (f->arg == M_ENV) {
            /* a plausible environment followed by registers; zero pointers (the harness
             * does not load FCS/FDS into the engine, see the note at the top) */
            int w16 = f->code[0] == '\x66';
            unsigned env_len = w16 ? 14 : 28;
            for (int k = 0; k < 8; k++)
                rand_f80(r, p + env_len + 10 * k);
            uint32_t cw = 0x037f & ~(uint32_t)(diff_rand(r) & (diff_rand(r) & 7 ? 0 : 0x3f));
            cw |= (uint32_t)(diff_rand(r) & 0x0f00);
            uint32_t sw = (uint32_t)(diff_rand(r) & 0x7f3f), tw = (uint32_t)diff_rand(r);
            if (diff_rand(r) & 1)
                sw |= (uint32_t)(diff_rand(r) & 0x8080); /* ES/B possibly inconsistent */
            else if (sw & ~cw & 0x3f)
                sw |= 0x8080;
            memset(p, 0, env_len);
            if (w16) {
                uint16_t e[3] = { (uint16_t)cw, (uint16_t)sw, (uint16_t)tw };
                memcpy(p, e, sizeof(e));
            } else {
                uint32_t e[3] = { cw, sw, tw };
                memcpy(p, e, sizeof(e));
            }
        } else {
            rand_mem(r, p, (int)f->arg);
        }
    }
}

#define XF(nm, bytes, marg)                                                                \
    { .name = nm, .code = bytes, .len = sizeof(bytes) - 1, .opts = DIFF_CMP_X87 | DIFF_ALLOW_FAULT, \
      .ptr_regs = (marg) == M_NONE ? 0 : (1u << D_RAX), .setup = x87_setup, .arg = (marg) }
#define XF32(nm, bytes, marg)                                                              \
    { .name = nm " (32-bit)", .code = bytes, .len = sizeof(bytes) - 1, .mode = DIFF_MODE32,  \
      .opts = DIFF_CMP_X87 | DIFF_ALLOW_FAULT, .ptr_regs = (marg) == M_NONE ? 0 : (1u << D_RAX), \
      .setup = x87_setup, .arg = (marg) }
#define XFI(nm, bytes) /* FCOMI family: ZF, PF, CF defined, OF/SF/AF cleared */               \
    { .name = nm, .code = bytes, .len = sizeof(bytes) - 1, .opts = DIFF_CMP_X87 | DIFF_ALLOW_FAULT, \
      .setup = x87_setup, .arg = M_NONE, .flags_cmp = DF_ARITH }
static const struct diff_form x87_forms[] = {
    /* D8 C0+i fadd, C8 fmul, E0 fsub, E8 fsubr, F0 fdiv, F8 fdivr;
     * DC/DE: C0 fadd, C8 fmul, E0 fsubr, E8 fsub, F0 fdivr, F8 fdiv (Intel naming) */
    XF("fadd st0,st1", "\xd8\xc1", M_NONE), XF("fadd st0,st5", "\xd8\xc5", M_NONE),
    XF("fadd st3,st0", "\xdc\xc3", M_NONE), XF("faddp st1,st0", "\xde\xc1", M_NONE),
    XF("fmul st0,st1", "\xd8\xc9", M_NONE), XF("fmul st4,st0", "\xdc\xcc", M_NONE),
    XF("fmulp st2,st0", "\xde\xca", M_NONE),
    XF("fsub st0,st1", "\xd8\xe1", M_NONE), XF("fsub st3,st0", "\xdc\xeb", M_NONE),
    XF("fsubp st1,st0", "\xde\xe9", M_NONE),
    XF("fsubr st0,st2", "\xd8\xea", M_NONE), XF("fsubr st3,st0", "\xdc\xe3", M_NONE),
    XF("fsubrp st1,st0", "\xde\xe1", M_NONE),
    XF("fdiv st0,st1", "\xd8\xf1", M_NONE), XF("fdiv st2,st0", "\xdc\xfa", M_NONE),
    XF("fdivp st1,st0", "\xde\xf9", M_NONE),
    XF("fdivr st0,st1", "\xd8\xf9", M_NONE), XF("fdivr st2,st0", "\xdc\xf2", M_NONE),
    XF("fdivrp st1,st0", "\xde\xf1", M_NONE),
    XF("fadd m32", "\xd8\x00", M_F32), XF("fadd m64", "\xdc\x00", M_F64),
    XF("fmul m32", "\xd8\x08", M_F32), XF("fmul m64", "\xdc\x08", M_F64),
    XF("fsub m32", "\xd8\x20", M_F32), XF("fsub m64", "\xdc\x20", M_F64),
    XF("fsubr m32", "\xd8\x28", M_F32), XF("fsubr m64", "\xdc\x28", M_F64),
    XF("fdiv m32", "\xd8\x30", M_F32), XF("fdiv m64", "\xdc\x30", M_F64),
    XF("fdivr m32", "\xd8\x38", M_F32), XF("fdivr m64", "\xdc\x38", M_F64),
    XF("fiadd m16", "\xde\x00", M_I16), XF("fiadd m32", "\xda\x00", M_I32),
    XF("fimul m16", "\xde\x08", M_I16), XF("fisub m32", "\xda\x20", M_I32),
    XF("fisubr m16", "\xde\x28", M_I16), XF("fidiv m32", "\xda\x30", M_I32),
    XF("fidivr m16", "\xde\x38", M_I16),
    /* compares */
    XF("fcom st1", "\xd8\xd1", M_NONE), XF("fcomp st3", "\xd8\xdb", M_NONE),
    XF("fcompp", "\xde\xd9", M_NONE), XF("fucom st2", "\xdd\xe2", M_NONE),
    XF("fucomp st1", "\xdd\xe9", M_NONE), XF("fucompp", "\xda\xe9", M_NONE),
    XF("fcom m32", "\xd8\x10", M_F32), XF("fcomp m64", "\xdc\x18", M_F64),
    XF("ficom m16", "\xde\x10", M_I16), XF("ficomp m32", "\xda\x18", M_I32),
    XFI("fcomi st0,st1", "\xdb\xf1"), XFI("fcomip st0,st2", "\xdf\xf2"),
    XFI("fucomi st0,st1", "\xdb\xe9"), XFI("fucomip st0,st3", "\xdf\xeb"),
    XF("ftst", "\xd9\xe4", M_NONE), XF("fxam", "\xd9\xe5", M_NONE),
    /* loads */
    XF("fld st2", "\xd9\xc2", M_NONE), XF("fld m32", "\xd9\x00", M_F32),
    XF("fld m64", "\xdd\x00", M_F64), XF("fld m80", "\xdb\x28", M_F80),
    XF("fild m16", "\xdf\x00", M_I16), XF("fild m32", "\xdb\x00", M_I32),
    XF("fild m64", "\xdf\x28", M_I64), XF("fbld m80", "\xdf\x20", M_BCD),
    XF("fld1", "\xd9\xe8", M_NONE), XF("fldl2t", "\xd9\xe9", M_NONE),
    XF("fldl2e", "\xd9\xea", M_NONE), XF("fldpi", "\xd9\xeb", M_NONE),
    XF("fldlg2", "\xd9\xec", M_NONE), XF("fldln2", "\xd9\xed", M_NONE),
    XF("fldz", "\xd9\xee", M_NONE),
    /* stores */
    XF("fst m32", "\xd9\x10", M_F32), XF("fstp m32", "\xd9\x18", M_F32),
    XF("fst m64", "\xdd\x10", M_F64), XF("fstp m64", "\xdd\x18", M_F64),
    XF("fstp m80", "\xdb\x38", M_F80), XF("fst st3", "\xdd\xd3", M_NONE),
    XF("fstp st1", "\xdd\xd9", M_NONE), XF("fist m16", "\xdf\x10", M_I16),
    XF("fistp m16", "\xdf\x18", M_I16), XF("fist m32", "\xdb\x10", M_I32),
    XF("fistp m32", "\xdb\x18", M_I32), XF("fistp m64", "\xdf\x38", M_I64),
    XF("fbstp m80", "\xdf\x30", M_BCD),
    /* functions */
    XF("fchs", "\xd9\xe0", M_NONE), XF("fabs", "\xd9\xe1", M_NONE),
    XF("fsqrt", "\xd9\xfa", M_NONE), XF("frndint", "\xd9\xfc", M_NONE),
    XF("f2xm1", "\xd9\xf0", M_NONE), XF("fsin", "\xd9\xfe", M_NONE),
    XF("fcos", "\xd9\xff", M_NONE), XF("fsincos", "\xd9\xfb", M_NONE),
    XF("fptan", "\xd9\xf2", M_NONE), XF("fpatan", "\xd9\xf3", M_NONE),
    XF("fyl2x", "\xd9\xf1", M_NONE), XF("fyl2xp1", "\xd9\xf9", M_NONE),
    XF("fscale", "\xd9\xfd", M_NONE), XF("fprem", "\xd9\xf8", M_NONE),
    XF("fprem1", "\xd9\xf5", M_NONE), XF("fxtract", "\xd9\xf4", M_NONE),
    /* registers */
    XF("fxch st3", "\xd9\xcb", M_NONE), XF("fxch st1", "\xd9\xc9", M_NONE),
    XF("fcmovb st0,st2", "\xda\xc2", M_NONE), XF("fcmove st0,st1", "\xda\xc9", M_NONE),
    XF("fcmovbe st0,st3", "\xda\xd3", M_NONE), XF("fcmovu st0,st1", "\xda\xd9", M_NONE),
    XF("fcmovnb st0,st2", "\xdb\xc2", M_NONE), XF("fcmovne st0,st1", "\xdb\xc9", M_NONE),
    XF("fcmovnbe st0,st3", "\xdb\xd3", M_NONE), XF("fcmovnu st0,st1", "\xdb\xd9", M_NONE),
    XF("ffree st2", "\xdd\xc2", M_NONE), XF("fincstp", "\xd9\xf7", M_NONE),
    XF("fdecstp", "\xd9\xf6", M_NONE), XF("fnop", "\xd9\xd0", M_NONE),
    /* undocumented aliases */
    XF("fstp1 st1", "\xd9\xd9", M_NONE), XF("fxch4 st1", "\xdd\xc9", M_NONE),
    XF("fxch7 st2", "\xdf\xca", M_NONE), XF("fstp8 st1", "\xdf\xd1", M_NONE),
    XF("fstp9 st3", "\xdf\xdb", M_NONE), XF("fcom2 st1", "\xdc\xd1", M_NONE),
    XF("fcomp3 st2", "\xdc\xda", M_NONE), XF("fcomp5 st1", "\xde\xd1", M_NONE),
    XF("ffreep st1", "\xdf\xc1", M_NONE), XF("fneni", "\xdb\xe0", M_NONE),
    XF("fndisi", "\xdb\xe1", M_NONE), XF("fnsetpm", "\xdb\xe4", M_NONE),
    /* control */
    XF("fninit", "\xdb\xe3", M_NONE), XF("fnclex", "\xdb\xe2", M_NONE),
    XF("fwait", "\x9b", M_NONE),
    XF("fldcw m16", "\xd9\x28", M_CW), XF("fnstcw m16", "\xd9\x38", M_I16),
    XF("fnstsw m16", "\xdd\x38", M_I16),
    { .name = "fnstsw ax", .code = "\xdf\xe0", .len = 2, .opts = DIFF_CMP_X87, .setup = x87_setup },
    XF("fldenv m28", "\xd9\x20", M_ENV), XF("frstor m108", "\xdd\x20", M_ENV),
    XF("fnstenv m28", "\xd9\x30", M_ENV), XF("fnsave m108", "\xdd\x30", M_ENV),
    XF("fnstenv m14", "\x66\xd9\x30", M_ENV),
    XF("frstor m94", "\x66\xdd\x20", M_ENV),
    /* compatibility mode */
    XF32("fnstenv m28", "\xd9\x30", M_ENV), XF32("fnsave m108", "\xdd\x30", M_ENV),
    XF32("fldenv m28", "\xd9\x20", M_ENV), XF32("frstor m94", "\x66\xdd\x20", M_ENV),
    XF32("fadd m64", "\xdc\x00", M_F64), XF32("fistp m64", "\xdf\x38", M_I64),
    XF32("fld m80", "\xdb\x28", M_F80), XF32("fsincos", "\xd9\xfb", M_NONE),
};
DIFF_SUITE(x87, x87_forms);

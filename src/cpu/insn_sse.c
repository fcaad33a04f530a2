/* MMX, SSE and SSE2, and the FXSAVE/XSAVE family.
 *
 * Integer SIMD and data movement are plain C with SSE2 intrinsics (no host control state
 * involved). Floating-point SIMD runs the same instruction on the host under the guest's
 * MXCSR (rounding, DAZ, FTZ) with every exception masked, then applies the guest's masks:
 * an unmasked exception leaves the destination unchanged and raises #XM (#UD without
 * CR4.OSXMMEXCPT), following the pre-/post-computation order of SDM Vol. 1, 11.5.
 *
 * MMX registers alias the x87 physical registers R0..R7; every MMX instruction (and every
 * SSE instruction with an MMX register operand) takes pending x87 exceptions and switches
 * the x87 unit to MMX state (TOP = 0, all registers valid). */
#include <emmintrin.h>
#include <string.h>

#include "cpu/fpu.h"

typedef union {
    __m128i v;
    u8 b[16];
    u16 w[8];
    u32 d[4];
    u64 q[2];
} v128;

/* ---- operands ---- */
static bool op_is_mmx(const struct insn *i, int n)
{
    ZydisRegister r = i->op[n].reg.value;
    return i->op[n].type == ZYDIS_OPERAND_TYPE_REGISTER && r >= ZYDIS_REGISTER_MM0 && r <= ZYDIS_REGISTER_MM7;
}
static bool op_is_xmm(const struct insn *i, int n)
{
    ZydisRegister r = i->op[n].reg.value;
    return i->op[n].type == ZYDIS_OPERAND_TYPE_REGISTER && r >= ZYDIS_REGISTER_XMM0 && r <= ZYDIS_REGISTER_XMM15;
}
static unsigned op_reg(const struct insn *i, int n) { return (unsigned)zreg_index(i->op[n].reg.value); }
static u8 *xmm_of(struct cpu *c, const struct insn *i, int n) { return c->fpu.xmm[op_reg(i, n) & 15]; }

/* Legacy SSE: a 16-byte memory operand must be 16-byte aligned (#GP(0)) except for the
 * explicitly unaligned forms. */
static void check_align(struct cpu *c, const struct insn *i, int n, unsigned bytes, unsigned align)
{
    if (align && bytes >= align && (fpu_operand_linear(c, i, n) & (align - 1)))
        cpu_fault(c, EXC_GP, 0);
}

/* Reads operand n: a whole MMX/XMM register, a GPR, an immediate, or memory of the
 * operand's size; zero-padded to 16 bytes. */
static void src_read(struct cpu *c, const struct insn *i, int n, v128 *v, unsigned align)
{
    const struct insn_operand *o = &i->op[n];
    v->q[0] = v->q[1] = 0;
    if (o->type == ZYDIS_OPERAND_TYPE_MEMORY) {
        unsigned bytes = o->size / 8;
        if (bytes > 16)
            bytes = 16;
        check_align(c, i, n, bytes, align);
        vmem_read_bytes(c, opr_seg(i, n), opr_ea(c, i, n), v->b, bytes);
    } else if (op_is_xmm(i, n)) {
        memcpy(v->b, xmm_of(c, i, n), 16);
    } else if (op_is_mmx(i, n)) {
        v->q[0] = fpu_mmx_read(c, op_reg(i, n));
    } else {
        v->q[0] = opr_read(c, i, n);
    }
}

static void mem_write(struct cpu *c, const struct insn *i, int n, const void *buf, unsigned bytes, unsigned align)
{
    check_align(c, i, n, bytes, align);
    vmem_write_bytes(c, opr_seg(i, n), opr_ea(c, i, n), buf, bytes);
}

/* Checks for an instruction whose first operand decides MMX vs XMM form. */
static bool simd_prologue(struct cpu *c, const struct insn *i, enum cpuid_fast mmx_feat, enum cpuid_fast xmm_feat)
{
    bool mmx = false;
    for (int n = 0; n < i->d.operand_count_visible; n++)
        mmx |= op_is_mmx(i, n);
    if (mmx)
        fpu_check_mmx(c, mmx_feat);
    else
        fpu_check_sse(c, xmm_feat);
    return mmx;
}

/* ---- SIMD floating-point exceptions ---- */
_Noreturn static void simd_fp_fault(struct cpu *c)
{
    cpu_fault_noerr(c, (c->cr4 & CR4_OSXMMEXCPT) ? EXC_XM : EXC_UD);
}

/* Merges the exception flags `fl` an operation produced (all exceptions masked) into
 * MXCSR. Pre-computation exceptions (I, Z, D) are reported first: if one of them is
 * unmasked, only they are recorded and the instruction faults; otherwise all flags are
 * recorded and an unmasked post-computation one (O, U, P) faults. */
static void simd_fp_exceptions(struct cpu *c, u32 fl)
{
    u32 mx = c->fpu.mxcsr;
    u32 unmasked = ~(mx >> 7) & MXCSR_FLAGS;
    u32 pre = fl & (MXCSR_IE | MXCSR_ZE | MXCSR_DE);
    if (pre & unmasked) {
        c->fpu.mxcsr = mx | pre;
        simd_fp_fault(c);
    }
    c->fpu.mxcsr = mx | (fl & MXCSR_FLAGS);
    if (fl & unmasked)
        simd_fp_fault(c);
}

/* MXCSR for the host run: the guest's rounding, DAZ and FZ, every exception masked and no
 * flag set. With underflow unmasked FZ does not apply (SDM 11.5.2.4). */
static u32 host_mxcsr(u32 guest)
{
    u32 mx = (guest & ~MXCSR_FLAGS) | MXCSR_MASKS;
    if (!(guest & MXCSR_UM))
        mx &= ~MXCSR_FZ;
    return mx;
}

/* With underflow unmasked, a tiny result raises #U even when exact; the masked host run
 * flags only inexact tiny results, so exact ones are found by looking for denormal
 * results in the lanes the instruction wrote. */
enum { UL_NONE, UL_SS, UL_PS, UL_PS2, UL_SD, UL_PD };
static bool has_denormal_result(const v128 *r, int ul)
{
    static const u8 lanes[] = { [UL_SS] = 1, [UL_PS] = 4, [UL_PS2] = 2, [UL_SD] = 1, [UL_PD] = 2 };
    for (int k = 0; k < lanes[ul]; k++) {
        if (ul >= UL_SD) {
            u64 x = r->q[k];
            if (!(x & 0x7ff0000000000000ull) && (x & 0x000fffffffffffffull))
                return true;
        } else {
            u32 x = r->d[k];
            if (!(x & 0x7f800000u) && (x & 0x007fffffu))
                return true;
        }
    }
    return false;
}

/* ---- host execution of floating-point SIMD instructions ---- */
typedef u32 (*host_fp_fn)(v128 *d, const v128 *s, u32 mx, u8 imm);

#define HOST_RUN(insn)                                                                     \
    __m128i x = d->v, y = s->v;                                                            \
    u32 save, out;                                                                         \
    __asm__ volatile("stmxcsr %[save]\n\t"                                                 \
                     "ldmxcsr %[mx]\n\t" insn " %[y], %[x]\n\t"                            \
                     "stmxcsr %[out]\n\t"                                                  \
                     "ldmxcsr %[save]"                                                     \
                     : [x] "+x"(x), [save] "=m"(save), [out] "=m"(out)                     \
                     : [y] "x"(y), [mx] "m"(mx));                                           \
    d->v = x;                                                                              \
    return out;

#define HOST_FP(name, insn)                                                                \
    static u32 host_##name(v128 *d, const v128 *s, u32 mx, u8 imm)                         \
    {                                                                                      \
        (void)imm;                                                                         \
        HOST_RUN(insn)                                                                     \
    }

HOST_FP(addps, "addps") HOST_FP(addss, "addss") HOST_FP(addpd, "addpd") HOST_FP(addsd, "addsd")
HOST_FP(subps, "subps") HOST_FP(subss, "subss") HOST_FP(subpd, "subpd") HOST_FP(subsd, "subsd")
HOST_FP(mulps, "mulps") HOST_FP(mulss, "mulss") HOST_FP(mulpd, "mulpd") HOST_FP(mulsd, "mulsd")
HOST_FP(divps, "divps") HOST_FP(divss, "divss") HOST_FP(divpd, "divpd") HOST_FP(divsd, "divsd")
HOST_FP(minps, "minps") HOST_FP(minss, "minss") HOST_FP(minpd, "minpd") HOST_FP(minsd, "minsd")
HOST_FP(maxps, "maxps") HOST_FP(maxss, "maxss") HOST_FP(maxpd, "maxpd") HOST_FP(maxsd, "maxsd")
HOST_FP(sqrtps, "sqrtps") HOST_FP(sqrtss, "sqrtss") HOST_FP(sqrtpd, "sqrtpd") HOST_FP(sqrtsd, "sqrtsd")
HOST_FP(rcpps, "rcpps") HOST_FP(rcpss, "rcpss") HOST_FP(rsqrtps, "rsqrtps") HOST_FP(rsqrtss, "rsqrtss")
HOST_FP(cvtps2pd, "cvtps2pd") HOST_FP(cvtpd2ps, "cvtpd2ps") HOST_FP(cvtss2sd, "cvtss2sd")
HOST_FP(cvtsd2ss, "cvtsd2ss") HOST_FP(cvtdq2ps, "cvtdq2ps") HOST_FP(cvtps2dq, "cvtps2dq")
HOST_FP(cvttps2dq, "cvttps2dq") HOST_FP(cvtdq2pd, "cvtdq2pd") HOST_FP(cvtpd2dq, "cvtpd2dq")
HOST_FP(cvttpd2dq, "cvttpd2dq")

/* Compares: the predicate (imm8 bits 2:0) is part of the encoding, so one host function
 * per predicate. */
#define HOST_CMP1(name, insn, k)                                                           \
    static u32 host_##name##_##k(v128 *d, const v128 *s, u32 mx, u8 imm)                   \
    {                                                                                      \
        (void)imm;                                                                         \
        HOST_RUN(insn " $" #k ",")                                                         \
    }
#define HOST_CMP(name)                                                                     \
    HOST_CMP1(name, #name, 0) HOST_CMP1(name, #name, 1) HOST_CMP1(name, #name, 2)          \
    HOST_CMP1(name, #name, 3) HOST_CMP1(name, #name, 4) HOST_CMP1(name, #name, 5)          \
    HOST_CMP1(name, #name, 6) HOST_CMP1(name, #name, 7)                                    \
    static u32 host_##name(v128 *d, const v128 *s, u32 mx, u8 imm)                         \
    {                                                                                      \
        static const host_fp_fn pred[8] = { host_##name##_0, host_##name##_1,              \
                                            host_##name##_2, host_##name##_3,              \
                                            host_##name##_4, host_##name##_5,              \
                                            host_##name##_6, host_##name##_7 };            \
        return pred[imm & 7](d, s, mx, imm);                                               \
    }
HOST_CMP(cmpps) HOST_CMP(cmpss) HOST_CMP(cmppd) HOST_CMP(cmpsd)

struct fp_op {
    host_fp_fn fn;
    u8 feat; /* cpuid_fast + 1 */
    u8 ul;   /* lanes checked for exact tiny results (UL_*) */
    bool imm;
};
static struct fp_op fp_ops[ZYDIS_MNEMONIC_MAX_VALUE + 1];

/* Runs fn on the host: d = op(d, s). Applies exceptions; returns normally only when the
 * result may be committed. */
static void simd_fp_run(struct cpu *c, host_fp_fn fn, v128 *d, const v128 *s, u8 imm, int ul)
{
    u32 fl = fn(d, s, host_mxcsr(c->fpu.mxcsr), imm) & MXCSR_FLAGS;
    if (ul != UL_NONE && !(c->fpu.mxcsr & MXCSR_UM) && !(fl & MXCSR_UE) && has_denormal_result(d, ul))
        fl |= MXCSR_UE;
    simd_fp_exceptions(c, fl);
}

static void insn_fp(struct cpu *c, const struct insn *i)
{
    const struct fp_op *o = &fp_ops[i->d.mnemonic];
    fpu_check_sse(c, (enum cpuid_fast)(o->feat - 1));
    v128 d, s;
    src_read(c, i, 1, &s, 16);
    memcpy(d.b, xmm_of(c, i, 0), 16);
    u8 imm = o->imm ? (u8)i->op[2].imm.value.u : 0;
    simd_fp_run(c, o->fn, &d, &s, imm, o->ul);
    memcpy(xmm_of(c, i, 0), d.b, 16);
}

/* ---- conversions involving MMX registers: done with the XMM forms on the low lanes
 * (the zero upper lanes raise nothing) ---- */
static void insn_cvt_mmx(struct cpu *c, const struct insn *i)
{
    ZydisMnemonic m = i->d.mnemonic;
    bool pd = m == ZYDIS_MNEMONIC_CVTPI2PD || m == ZYDIS_MNEMONIC_CVTPD2PI || m == ZYDIS_MNEMONIC_CVTTPD2PI;
    enum cpuid_fast feat = pd ? CF_SSE2 : CF_SSE;
    bool touches_mmx = op_is_mmx(i, 0) || op_is_mmx(i, 1);
    if (touches_mmx)
        fpu_check_mmx(c, feat);
    else
        fpu_check_sse(c, feat);
    v128 s, d;
    /* CVTPD2PI/CVTTPD2PI read a full (aligned) m128. */
    src_read(c, i, 1, &s, 16);
    if (op_is_mmx(i, 1))
        s.q[1] = 0;
    d.q[0] = d.q[1] = 0;
    switch (m) {
    case ZYDIS_MNEMONIC_CVTPI2PS:
        s.q[1] = 0;
        simd_fp_run(c, host_cvtdq2ps, &d, &s, 0, UL_NONE);
        break;
    case ZYDIS_MNEMONIC_CVTPI2PD: simd_fp_run(c, host_cvtdq2pd, &d, &s, 0, UL_NONE); break;
    case ZYDIS_MNEMONIC_CVTPS2PI: s.q[1] = 0; simd_fp_run(c, host_cvtps2dq, &d, &s, 0, UL_NONE); break;
    case ZYDIS_MNEMONIC_CVTTPS2PI: s.q[1] = 0; simd_fp_run(c, host_cvttps2dq, &d, &s, 0, UL_NONE); break;
    case ZYDIS_MNEMONIC_CVTPD2PI: simd_fp_run(c, host_cvtpd2dq, &d, &s, 0, UL_NONE); break;
    case ZYDIS_MNEMONIC_CVTTPD2PI: simd_fp_run(c, host_cvttpd2dq, &d, &s, 0, UL_NONE); break;
    default: nestor_panic("insn_cvt_mmx: %s", ZydisMnemonicGetString(m));
    }
    if (touches_mmx)
        fpu_mmx_enter(c);
    if (op_is_mmx(i, 0)) {
        fpu_mmx_write(c, op_reg(i, 0), d.q[0]);
    } else {
        u8 *x = xmm_of(c, i, 0);
        if (m == ZYDIS_MNEMONIC_CVTPI2PS)
            memcpy(x, d.b, 8); /* upper half of the destination is kept */
        else
            memcpy(x, d.b, 16);
    }
}

/* ---- conversions with a general register ---- */
#define HOST_TOSI(name, insn, type)                                                        \
    static u32 host_##name(const v128 *s, u32 mx, u64 *res)                                \
    {                                                                                      \
        __m128i y = s->v;                                                                  \
        type r;                                                                            \
        u32 save, out;                                                                     \
        __asm__ volatile("stmxcsr %[save]\n\tldmxcsr %[mx]\n\t" insn " %[y], %[r]\n\t"    \
                         "stmxcsr %[out]\n\tldmxcsr %[save]"                               \
                         : [r] "=r"(r), [save] "=m"(save), [out] "=m"(out)                 \
                         : [y] "x"(y), [mx] "m"(mx));                                       \
        *res = (u64)r;                                                                     \
        return out;                                                                        \
    }
HOST_TOSI(cvtss2si32, "cvtss2si", u32) HOST_TOSI(cvtss2si64, "cvtss2si", u64)
HOST_TOSI(cvttss2si32, "cvttss2si", u32) HOST_TOSI(cvttss2si64, "cvttss2si", u64)
HOST_TOSI(cvtsd2si32, "cvtsd2si", u32) HOST_TOSI(cvtsd2si64, "cvtsd2si", u64)
HOST_TOSI(cvttsd2si32, "cvttsd2si", u32) HOST_TOSI(cvttsd2si64, "cvttsd2si", u64)

#define HOST_FROMSI(name, insn, type)                                                      \
    static u32 host_##name(v128 *d, u64 v, u32 mx)                                         \
    {                                                                                      \
        __m128i x = d->v;                                                                  \
        type g = (type)v;                                                                  \
        u32 save, out;                                                                     \
        __asm__ volatile("stmxcsr %[save]\n\tldmxcsr %[mx]\n\t" insn " %[g], %[x]\n\t"    \
                         "stmxcsr %[out]\n\tldmxcsr %[save]"                               \
                         : [x] "+x"(x), [save] "=m"(save), [out] "=m"(out)                 \
                         : [g] "r"(g), [mx] "m"(mx));                                       \
        d->v = x;                                                                          \
        return out;                                                                        \
    }
HOST_FROMSI(cvtsi2ss32, "cvtsi2ssl", u32) HOST_FROMSI(cvtsi2ss64, "cvtsi2ssq", u64)
HOST_FROMSI(cvtsi2sd32, "cvtsi2sdl", u32) HOST_FROMSI(cvtsi2sd64, "cvtsi2sdq", u64)

static void insn_cvt_gpr(struct cpu *c, const struct insn *i)
{
    ZydisMnemonic m = i->d.mnemonic;
    bool sd = m == ZYDIS_MNEMONIC_CVTSI2SD || m == ZYDIS_MNEMONIC_CVTSD2SI || m == ZYDIS_MNEMONIC_CVTTSD2SI;
    fpu_check_sse(c, sd ? CF_SSE2 : CF_SSE);
    v128 s;
    src_read(c, i, 1, &s, 0);
    if (m == ZYDIS_MNEMONIC_CVTSI2SS || m == ZYDIS_MNEMONIC_CVTSI2SD) {
        bool q = opr_bytes(i, 1) == 8;
        v128 d;
        memcpy(d.b, xmm_of(c, i, 0), 16);
        u32 mx = host_mxcsr(c->fpu.mxcsr), fl;
        if (m == ZYDIS_MNEMONIC_CVTSI2SS)
            fl = q ? host_cvtsi2ss64(&d, s.q[0], mx) : host_cvtsi2ss32(&d, s.q[0], mx);
        else
            fl = q ? host_cvtsi2sd64(&d, s.q[0], mx) : host_cvtsi2sd32(&d, s.q[0], mx);
        simd_fp_exceptions(c, fl & MXCSR_FLAGS);
        memcpy(xmm_of(c, i, 0), d.b, 16);
        return;
    }
    static const struct { ZydisMnemonic m; u32 (*f32)(const v128 *, u32, u64 *); u32 (*f64)(const v128 *, u32, u64 *); } tosi[] = {
        { ZYDIS_MNEMONIC_CVTSS2SI, host_cvtss2si32, host_cvtss2si64 },
        { ZYDIS_MNEMONIC_CVTTSS2SI, host_cvttss2si32, host_cvttss2si64 },
        { ZYDIS_MNEMONIC_CVTSD2SI, host_cvtsd2si32, host_cvtsd2si64 },
        { ZYDIS_MNEMONIC_CVTTSD2SI, host_cvttsd2si32, host_cvttsd2si64 },
    };
    for (size_t k = 0; k < ARRAY_SIZE(tosi); k++) {
        if (tosi[k].m != m)
            continue;
        u64 r;
        u32 mx = host_mxcsr(c->fpu.mxcsr);
        u32 fl = opr_bytes(i, 0) == 8 ? tosi[k].f64(&s, mx, &r) : tosi[k].f32(&s, mx, &r);
        simd_fp_exceptions(c, fl & MXCSR_FLAGS);
        opr_write(c, i, 0, r);
        return;
    }
    nestor_panic("insn_cvt_gpr: %s", ZydisMnemonicGetString(m));
}

/* ---- COMISS/UCOMISS/COMISD/UCOMISD ---- */
#define HOST_COMI(name, insn)                                                              \
    static u32 host_##name(const v128 *a, const v128 *b, u32 mx, u64 *flags)               \
    {                                                                                      \
        __m128i x = a->v, y = b->v;                                                        \
        u8 zf, pf, cf;                                                                     \
        u32 save, out;                                                                     \
        __asm__ volatile("stmxcsr %[save]\n\tldmxcsr %[mx]\n\t" insn " %[y], %[x]\n\t"    \
                         "setz %[zf]\n\tsetp %[pf]\n\tsetc %[cf]\n\t"                      \
                         "stmxcsr %[out]\n\tldmxcsr %[save]"                               \
                         : [zf] "=q"(zf), [pf] "=q"(pf), [cf] "=q"(cf), [save] "=m"(save), \
                           [out] "=m"(out)                                                 \
                         : [x] "x"(x), [y] "x"(y), [mx] "m"(mx)                            \
                         : "cc");                                                          \
        *flags = (zf ? FL_ZF : 0) | (pf ? FL_PF : 0) | (cf ? FL_CF : 0);                   \
        return out;                                                                        \
    }
HOST_COMI(comiss, "comiss") HOST_COMI(ucomiss, "ucomiss") HOST_COMI(comisd, "comisd")
HOST_COMI(ucomisd, "ucomisd")

static void insn_comis(struct cpu *c, const struct insn *i)
{
    ZydisMnemonic m = i->d.mnemonic;
    bool sd = m == ZYDIS_MNEMONIC_COMISD || m == ZYDIS_MNEMONIC_UCOMISD;
    fpu_check_sse(c, sd ? CF_SSE2 : CF_SSE);
    v128 a, b;
    memcpy(a.b, xmm_of(c, i, 0), 16);
    src_read(c, i, 1, &b, 0);
    u32 mx = host_mxcsr(c->fpu.mxcsr);
    u64 fl;
    u32 ex = m == ZYDIS_MNEMONIC_COMISS    ? host_comiss(&a, &b, mx, &fl)
             : m == ZYDIS_MNEMONIC_UCOMISS ? host_ucomiss(&a, &b, mx, &fl)
             : m == ZYDIS_MNEMONIC_COMISD  ? host_comisd(&a, &b, mx, &fl)
                                           : host_ucomisd(&a, &b, mx, &fl);
    simd_fp_exceptions(c, ex & MXCSR_FLAGS);
    flags_set(c, FL_ARITH, fl); /* OF, SF, AF cleared */
}

/* ---- integer SIMD (MMX and XMM forms) ---- */
typedef __m128i (*vec_fn)(__m128i a, __m128i b);
#define VOP(name, expr)                                                                    \
    static __m128i v_##name(__m128i a, __m128i b) { return expr; }
VOP(paddb, _mm_add_epi8(a, b)) VOP(paddw, _mm_add_epi16(a, b)) VOP(paddd, _mm_add_epi32(a, b))
VOP(paddq, _mm_add_epi64(a, b)) VOP(paddsb, _mm_adds_epi8(a, b)) VOP(paddsw, _mm_adds_epi16(a, b))
VOP(paddusb, _mm_adds_epu8(a, b)) VOP(paddusw, _mm_adds_epu16(a, b))
VOP(psubb, _mm_sub_epi8(a, b)) VOP(psubw, _mm_sub_epi16(a, b)) VOP(psubd, _mm_sub_epi32(a, b))
VOP(psubq, _mm_sub_epi64(a, b)) VOP(psubsb, _mm_subs_epi8(a, b)) VOP(psubsw, _mm_subs_epi16(a, b))
VOP(psubusb, _mm_subs_epu8(a, b)) VOP(psubusw, _mm_subs_epu16(a, b))
VOP(pmullw, _mm_mullo_epi16(a, b)) VOP(pmulhw, _mm_mulhi_epi16(a, b)) VOP(pmulhuw, _mm_mulhi_epu16(a, b))
VOP(pmuludq, _mm_mul_epu32(a, b)) VOP(pmaddwd, _mm_madd_epi16(a, b))
VOP(pcmpeqb, _mm_cmpeq_epi8(a, b)) VOP(pcmpeqw, _mm_cmpeq_epi16(a, b)) VOP(pcmpeqd, _mm_cmpeq_epi32(a, b))
VOP(pcmpgtb, _mm_cmpgt_epi8(a, b)) VOP(pcmpgtw, _mm_cmpgt_epi16(a, b)) VOP(pcmpgtd, _mm_cmpgt_epi32(a, b))
VOP(packsswb, _mm_packs_epi16(a, b)) VOP(packssdw, _mm_packs_epi32(a, b)) VOP(packuswb, _mm_packus_epi16(a, b))
VOP(punpcklbw, _mm_unpacklo_epi8(a, b)) VOP(punpcklwd, _mm_unpacklo_epi16(a, b))
VOP(punpckldq, _mm_unpacklo_epi32(a, b)) VOP(punpcklqdq, _mm_unpacklo_epi64(a, b))
VOP(punpckhbw, _mm_unpackhi_epi8(a, b)) VOP(punpckhwd, _mm_unpackhi_epi16(a, b))
VOP(punpckhdq, _mm_unpackhi_epi32(a, b)) VOP(punpckhqdq, _mm_unpackhi_epi64(a, b))
VOP(pand, _mm_and_si128(a, b)) VOP(pandn, _mm_andnot_si128(a, b)) VOP(por, _mm_or_si128(a, b))
VOP(pxor, _mm_xor_si128(a, b))
VOP(psllw, _mm_sll_epi16(a, b)) VOP(pslld, _mm_sll_epi32(a, b)) VOP(psllq, _mm_sll_epi64(a, b))
VOP(psrlw, _mm_srl_epi16(a, b)) VOP(psrld, _mm_srl_epi32(a, b)) VOP(psrlq, _mm_srl_epi64(a, b))
VOP(psraw, _mm_sra_epi16(a, b)) VOP(psrad, _mm_sra_epi32(a, b))
VOP(pavgb, _mm_avg_epu8(a, b)) VOP(pavgw, _mm_avg_epu16(a, b))
VOP(pminub, _mm_min_epu8(a, b)) VOP(pmaxub, _mm_max_epu8(a, b))
VOP(pminsw, _mm_min_epi16(a, b)) VOP(pmaxsw, _mm_max_epi16(a, b)) VOP(psadbw, _mm_sad_epu8(a, b))
/* MMX forms of packs and high unpacks work on 64-bit halves. */
VOP(mmx_packsswb, _mm_packs_epi16(_mm_unpacklo_epi64(a, b), _mm_unpacklo_epi64(a, b)))
VOP(mmx_packssdw, _mm_packs_epi32(_mm_unpacklo_epi64(a, b), _mm_unpacklo_epi64(a, b)))
VOP(mmx_packuswb, _mm_packus_epi16(_mm_unpacklo_epi64(a, b), _mm_unpacklo_epi64(a, b)))
VOP(mmx_punpckhbw, _mm_unpacklo_epi8(_mm_srli_si128(a, 4), _mm_srli_si128(b, 4)))
VOP(mmx_punpckhwd, _mm_unpacklo_epi16(_mm_srli_si128(a, 4), _mm_srli_si128(b, 4)))
VOP(mmx_punpckhdq, _mm_unpacklo_epi32(_mm_srli_si128(a, 4), _mm_srli_si128(b, 4)))

struct int_op {
    vec_fn f, fmmx;
    u8 mmx_feat, xmm_feat; /* cpuid_fast + 1; 0: that form does not exist */
};
static struct int_op int_ops[ZYDIS_MNEMONIC_MAX_VALUE + 1];

static void insn_int(struct cpu *c, const struct insn *i)
{
    const struct int_op *o = &int_ops[i->d.mnemonic];
    bool mmx = op_is_mmx(i, 0);
    if (mmx ? !o->mmx_feat : !o->xmm_feat)
        cpu_fault_noerr(c, EXC_UD);
    if (mmx)
        fpu_check_mmx(c, (enum cpuid_fast)(o->mmx_feat - 1));
    else
        fpu_check_sse(c, (enum cpuid_fast)(o->xmm_feat - 1));
    v128 a, b;
    if (opr_is_imm(i, 1)) {
        b.q[0] = (u8)i->op[1].imm.value.u;
        b.q[1] = 0;
    } else {
        src_read(c, i, 1, &b, 16);
    }
    if (mmx) {
        a.q[0] = fpu_mmx_read(c, op_reg(i, 0));
        a.q[1] = 0;
        b.q[1] = 0;
        a.v = o->fmmx(a.v, b.v);
        fpu_mmx_enter(c);
        fpu_mmx_write(c, op_reg(i, 0), a.q[0]);
    } else {
        u8 *x = xmm_of(c, i, 0);
        memcpy(a.b, x, 16);
        a.v = o->f(a.v, b.v);
        memcpy(x, a.b, 16);
    }
}

/* ---- data movement ---- */
/* MOVAPS/MOVAPD/MOVDQA, MOVUPS/MOVUPD/MOVDQU, MOVNTPS/MOVNTPD/MOVNTDQ: 16 bytes. */
static void insn_mov128(struct cpu *c, const struct insn *i)
{
    ZydisMnemonic m = i->d.mnemonic;
    bool ps = m == ZYDIS_MNEMONIC_MOVAPS || m == ZYDIS_MNEMONIC_MOVUPS || m == ZYDIS_MNEMONIC_MOVNTPS;
    bool unaligned = m == ZYDIS_MNEMONIC_MOVUPS || m == ZYDIS_MNEMONIC_MOVUPD || m == ZYDIS_MNEMONIC_MOVDQU;
    fpu_check_sse(c, ps ? CF_SSE : CF_SSE2);
    unsigned align = unaligned ? 0 : 16;
    v128 v;
    src_read(c, i, 1, &v, align);
    if (opr_is_mem(i, 0))
        mem_write(c, i, 0, v.b, 16, align);
    else
        memcpy(xmm_of(c, i, 0), v.b, 16);
}

/* MOVSS/MOVSD (SSE forms), MOVLPS/MOVLPD/MOVHPS/MOVHPD, MOVLHPS/MOVHLPS. */
static void insn_mov_part(struct cpu *c, const struct insn *i)
{
    ZydisMnemonic m = i->d.mnemonic;
    bool sse1 = m == ZYDIS_MNEMONIC_MOVSS || m == ZYDIS_MNEMONIC_MOVLPS || m == ZYDIS_MNEMONIC_MOVHPS ||
                m == ZYDIS_MNEMONIC_MOVLHPS || m == ZYDIS_MNEMONIC_MOVHLPS;
    fpu_check_sse(c, sse1 ? CF_SSE : CF_SSE2);
    bool high = m == ZYDIS_MNEMONIC_MOVHPS || m == ZYDIS_MNEMONIC_MOVHPD;
    unsigned bytes = m == ZYDIS_MNEMONIC_MOVSS ? 4 : 8;
    if (opr_is_mem(i, 0)) { /* store the low (or high) part */
        const u8 *x = xmm_of(c, i, 1);
        mem_write(c, i, 0, x + (high ? 8 : 0), bytes, 0);
        return;
    }
    u8 *x = xmm_of(c, i, 0);
    v128 s;
    src_read(c, i, 1, &s, 0);
    switch (m) {
    case ZYDIS_MNEMONIC_MOVSS:
    case ZYDIS_MNEMONIC_MOVSD:
        if (opr_is_mem(i, 1))
            memset(x, 0, 16); /* a load zeroes the rest of the register */
        memcpy(x, s.b, bytes);
        break;
    case ZYDIS_MNEMONIC_MOVHLPS: memcpy(x, s.b + 8, 8); break;
    case ZYDIS_MNEMONIC_MOVLHPS: memcpy(x + 8, s.b, 8); break;
    default: memcpy(x + (high ? 8 : 0), s.b, 8); break; /* MOVLPS/LPD/HPS/HPD loads */
    }
}

/* MOVD/MOVQ in all forms, MOVQ2DQ, MOVDQ2Q, MOVNTQ, MOVNTI. */
static void insn_movdq(struct cpu *c, const struct insn *i)
{
    ZydisMnemonic m = i->d.mnemonic;
    if (m == ZYDIS_MNEMONIC_MOVNTI) {
        if (!cpu_has(c, CF_SSE2))
            cpu_fault_noerr(c, EXC_UD);
        opr_write(c, i, 0, opr_read(c, i, 1));
        return;
    }
    bool mmx = op_is_mmx(i, 0) || op_is_mmx(i, 1);
    bool xmm = op_is_xmm(i, 0) || op_is_xmm(i, 1);
    enum cpuid_fast feat = xmm ? CF_SSE2 : m == ZYDIS_MNEMONIC_MOVNTQ ? CF_SSE : CF_MMX;
    if (mmx)
        fpu_check_mmx(c, feat);
    else
        fpu_check_sse(c, feat);
    v128 v;
    src_read(c, i, 1, &v, 0);
    unsigned sbytes = opr_bytes(i, 1) < 8 ? opr_bytes(i, 1) : 8;
    if (sbytes < 8)
        v.q[0] &= size_mask(sbytes);
    v.q[1] = 0;
    if (mmx)
        fpu_mmx_enter(c);
    if (op_is_mmx(i, 0))
        fpu_mmx_write(c, op_reg(i, 0), v.q[0]);
    else if (op_is_xmm(i, 0))
        memcpy(xmm_of(c, i, 0), v.b, 16); /* every MOVD/MOVQ into XMM zeroes the rest */
    else if (opr_is_mem(i, 0))
        mem_write(c, i, 0, v.b, opr_bytes(i, 0), 0);
    else
        opr_write(c, i, 0, v.q[0]);
}

/* MOVMSKPS, MOVMSKPD, PMOVMSKB. */
static void insn_movmsk(struct cpu *c, const struct insn *i)
{
    ZydisMnemonic m = i->d.mnemonic;
    bool mmx = simd_prologue(c, i, CF_SSE, m == ZYDIS_MNEMONIC_MOVMSKPS ? CF_SSE : CF_SSE2);
    v128 s;
    src_read(c, i, 1, &s, 0);
    u64 r;
    if (m == ZYDIS_MNEMONIC_MOVMSKPS)
        r = (u64)_mm_movemask_ps(_mm_castsi128_ps(s.v));
    else if (m == ZYDIS_MNEMONIC_MOVMSKPD)
        r = (u64)_mm_movemask_pd(_mm_castsi128_pd(s.v));
    else
        r = (u64)_mm_movemask_epi8(s.v) & (mmx ? 0xff : 0xffff);
    if (mmx)
        fpu_mmx_enter(c);
    opr_write(c, i, 0, r);
}

/* MASKMOVQ / MASKMOVDQU: byte-masked store to DS:rDI (segment override allowed). */
static void insn_maskmov(struct cpu *c, const struct insn *i)
{
    bool mmx = simd_prologue(c, i, CF_SSE, CF_SSE2);
    v128 data, mask;
    src_read(c, i, 0, &data, 0);
    src_read(c, i, 1, &mask, 0);
    unsigned bytes = mmx ? 8 : 16;
    int seg = insn_ds_segment(i);
    u64 addr = c->gpr[R_RDI] & size_mask(i->asize);
    if (mmx)
        fpu_mmx_enter(c);
    unsigned sel = 0;
    for (unsigned k = 0; k < bytes; k++)
        if (mask.b[k] & 0x80)
            sel |= 1u << k;
    if (!sel)
        return;
    vmem_check_write(c, seg, addr, bytes);
    for (unsigned k = 0; k < bytes; k++)
        if (sel & (1u << k))
            vmem_write(c, seg, (addr + k) & size_mask(i->asize), 1, data.b[k]);
}

/* ---- shuffles and element access ---- */
static void insn_shuffle(struct cpu *c, const struct insn *i)
{
    ZydisMnemonic m = i->d.mnemonic;
    bool mmx = simd_prologue(c, i, CF_SSE, m == ZYDIS_MNEMONIC_SHUFPS ? CF_SSE : CF_SSE2);
    v128 s, d, r;
    u8 imm = (u8)i->op[2].imm.value.u;
    src_read(c, i, 1, &s, 16);
    if (mmx) {
        d.q[0] = fpu_mmx_read(c, op_reg(i, 0));
        d.q[1] = 0;
    } else {
        memcpy(d.b, xmm_of(c, i, 0), 16);
    }
    r = d;
    switch (m) {
    case ZYDIS_MNEMONIC_SHUFPS:
        r.d[0] = d.d[imm & 3];
        r.d[1] = d.d[(imm >> 2) & 3];
        r.d[2] = s.d[(imm >> 4) & 3];
        r.d[3] = s.d[(imm >> 6) & 3];
        break;
    case ZYDIS_MNEMONIC_SHUFPD:
        r.q[0] = d.q[imm & 1];
        r.q[1] = s.q[(imm >> 1) & 1];
        break;
    case ZYDIS_MNEMONIC_PSHUFD:
        for (int k = 0; k < 4; k++)
            r.d[k] = s.d[(imm >> (2 * k)) & 3];
        break;
    case ZYDIS_MNEMONIC_PSHUFW:
    case ZYDIS_MNEMONIC_PSHUFLW:
        r.q[1] = s.q[1];
        for (int k = 0; k < 4; k++)
            r.w[k] = s.w[(imm >> (2 * k)) & 3];
        break;
    case ZYDIS_MNEMONIC_PSHUFHW:
        r.q[0] = s.q[0];
        for (int k = 0; k < 4; k++)
            r.w[4 + k] = s.w[4 + ((imm >> (2 * k)) & 3)];
        break;
    default: nestor_panic("insn_shuffle: %s", ZydisMnemonicGetString(m));
    }
    if (mmx) {
        fpu_mmx_enter(c);
        fpu_mmx_write(c, op_reg(i, 0), r.q[0]);
    } else {
        memcpy(xmm_of(c, i, 0), r.b, 16);
    }
}

/* PEXTRW: 0F C5 (SSE/SSE2, to a GPR) and 66 0F 3A 15 (SSE4.1, to a GPR or m16), which
 * #UDs while the model lacks SSE4.1. */
static void insn_pextrw(struct cpu *c, const struct insn *i)
{
    bool sse41 = i->d.opcode_map == ZYDIS_OPCODE_MAP_0F3A;
    bool mmx = simd_prologue(c, i, CF_SSE, sse41 ? CF_SSE41 : CF_SSE2);
    v128 s;
    src_read(c, i, 1, &s, 0);
    unsigned k = (unsigned)i->op[2].imm.value.u & (mmx ? 3 : 7);
    if (mmx)
        fpu_mmx_enter(c);
    opr_write(c, i, 0, s.w[k]);
}

static void insn_pinsrw(struct cpu *c, const struct insn *i)
{
    bool mmx = simd_prologue(c, i, CF_SSE, CF_SSE2);
    v128 s;
    src_read(c, i, 1, &s, 0);
    unsigned k = (unsigned)i->op[2].imm.value.u & (mmx ? 3 : 7);
    if (mmx) {
        v128 d;
        d.q[0] = fpu_mmx_read(c, op_reg(i, 0));
        d.w[k] = s.w[0];
        fpu_mmx_enter(c);
        fpu_mmx_write(c, op_reg(i, 0), d.q[0]);
    } else {
        u8 *x = xmm_of(c, i, 0);
        memcpy(x + 2 * k, s.b, 2);
    }
}

static void insn_pshiftdq(struct cpu *c, const struct insn *i)
{
    fpu_check_sse(c, CF_SSE2);
    unsigned n = (unsigned)(i->op[1].imm.value.u & 0xff);
    u8 *x = xmm_of(c, i, 0);
    u8 r[16] = { 0 };
    bool left = i->d.mnemonic == ZYDIS_MNEMONIC_PSLLDQ;
    for (unsigned k = 0; k < 16 && n < 16; k++) {
        if (left && k >= n)
            r[k] = x[k - n];
        else if (!left && k + n < 16)
            r[k] = x[k + n];
    }
    memcpy(x, r, 16);
}

/* ---- control/status ---- */
static void insn_ldmxcsr(struct cpu *c, const struct insn *i)
{
    fpu_check_sse(c, CF_SSE);
    u32 v = (u32)opr_read(c, i, 0);
    if (v & ~MXCSR_WRITABLE)
        cpu_fault(c, EXC_GP, 0);
    c->fpu.mxcsr = v;
}

static void insn_stmxcsr(struct cpu *c, const struct insn *i)
{
    fpu_check_sse(c, CF_SSE);
    opr_write(c, i, 0, c->fpu.mxcsr);
}

static void insn_emms(struct cpu *c, const struct insn *i)
{
    (void)i;
    fpu_check_mmx(c, CF_MMX);
    c->fpu.ftw = 0;
    fpu_set_top(&c->fpu, 0); /* as hardware does */
}

/* ---- FXSAVE / FXRSTOR ---- */
static void put32(u8 *p, u32 v) { memcpy(p, &v, 4); }
static u32 get32(const u8 *p) { u32 v; memcpy(&v, p, 4); return v; }

/* FXSAVE/FXRSTOR: #UD without FXSR, #NM on CR0.EM or CR0.TS. */
static void check_fxsr(struct cpu *c)
{
    if (!cpu_has(c, CF_FXSR))
        cpu_fault_noerr(c, EXC_UD);
    if (c->cr0 & (CR0_EM | CR0_TS))
        cpu_fault_noerr(c, EXC_NM);
}

/* Number of XMM registers the image holds in the current mode. */
static unsigned xmm_count(const struct cpu *c) { return cpu_is_long64(c) ? 16 : 8; }

static void insn_fxsave(struct cpu *c, const struct insn *i)
{
    check_fxsr(c);
    bool rex_w = i->d.mnemonic == ZYDIS_MNEMONIC_FXSAVE64;
    check_align(c, i, 0, 16, 16);
    /* Hardware writes the image up to the last XMM register of the mode, reserved bytes
     * as zeros; the bytes after it (reserved and software-available) are not written.
     * Without CR4.OSFXSR the XMM registers are not saved. */
    u8 img[FXSAVE_SIZE] = { 0 };
    unsigned len = (c->cr4 & CR4_OSFXSR) ? 160 + 16 * xmm_count(c) : 160;
    fpu_save_x87_image(c, img, rex_w);
    put32(img + 24, c->fpu.mxcsr);
    put32(img + 28, MXCSR_WRITABLE);
    memcpy(img + 160, c->fpu.xmm, len - 160);
    vmem_write_bytes(c, opr_seg(i, 0), opr_ea(c, i, 0), img, len);
}

static void insn_fxrstor(struct cpu *c, const struct insn *i)
{
    check_fxsr(c);
    bool rex_w = i->d.mnemonic == ZYDIS_MNEMONIC_FXRSTOR64;
    check_align(c, i, 0, 16, 16);
    u8 img[FXSAVE_SIZE];
    unsigned len = 160 + 16 * xmm_count(c);
    vmem_read_bytes(c, opr_seg(i, 0), opr_ea(c, i, 0), img, len);
    u32 mx = get32(img + 24);
    if (mx & ~MXCSR_WRITABLE)
        cpu_fault(c, EXC_GP, 0);
    fpu_load_x87_image(c, img, rex_w);
    c->fpu.mxcsr = mx;
    if (c->cr4 & CR4_OSFXSR)
        memcpy(c->fpu.xmm, img + 160, 16 * xmm_count(c));
}

/* ---- XSAVE / XRSTOR (standard form; components 0 = x87 and 1 = SSE) ---- */
static u64 xsave_rfbm(const struct cpu *c)
{
    u64 mask = (c->gpr[R_RDX] << 32) | (c->gpr[R_RAX] & 0xffffffffull);
    return mask & c->xcr0;
}

static void check_xsave(struct cpu *c, const struct insn *i)
{
    if (!cpu_has(c, CF_XSAVE) || !(c->cr4 & CR4_OSXSAVE))
        cpu_fault_noerr(c, EXC_UD);
    if (c->cr0 & CR0_TS)
        cpu_fault_noerr(c, EXC_NM);
    check_align(c, i, 0, 64, 64);
}

static void insn_xsave(struct cpu *c, const struct insn *i)
{
    check_xsave(c, i);
    bool rex_w = i->d.mnemonic == ZYDIS_MNEMONIC_XSAVE64;
    u64 rfbm = xsave_rfbm(c);
    u64 ea = opr_ea(c, i, 0);
    int seg = opr_seg(i, 0);
    /* Every write below must succeed once the first one is made. */
    vmem_check_write(c, seg, ea, XSAVE_AREA_SIZE);
    u8 img[FXSAVE_SIZE] = { 0 };
    if (rfbm & XCR0_X87) {
        fpu_save_x87_image(c, img, rex_w);
        vmem_write_bytes(c, seg, ea, img, 24);
        vmem_write_bytes(c, seg, ea + 32, img + 32, 128);
    }
    if (rfbm & XCR0_SSE) {
        put32(img + 24, c->fpu.mxcsr);
        put32(img + 28, MXCSR_WRITABLE);
        memcpy(img + 160, c->fpu.xmm, 16 * xmm_count(c));
        vmem_write_bytes(c, seg, ea + 24, img + 24, 8);
        vmem_write_bytes(c, seg, ea + 160, img + 160, 16 * xmm_count(c));
    }
    /* XSTATE_BV[i] = XINUSE[i] for requested components, other bits and the rest of the
     * header unchanged. This model tracks both components as always in use (allowed:
     * SDM Vol. 1, 13.6). */
    u64 bv = vmem_read(c, seg, ea + XSAVE_HEADER_OFF, 8);
    bv |= rfbm & (XCR0_X87 | XCR0_SSE);
    vmem_write(c, seg, ea + XSAVE_HEADER_OFF, 8, bv);
}

static void insn_xrstor(struct cpu *c, const struct insn *i)
{
    check_xsave(c, i);
    bool rex_w = i->d.mnemonic == ZYDIS_MNEMONIC_XRSTOR64;
    u64 rfbm = xsave_rfbm(c);
    u8 img[XSAVE_AREA_SIZE];
    vmem_read_bytes(c, opr_seg(i, 0), opr_ea(c, i, 0), img, sizeof(img));
    u64 bv, comp, rsvd;
    memcpy(&bv, img + XSAVE_HEADER_OFF, 8);
    memcpy(&comp, img + XSAVE_HEADER_OFF + 8, 8);
    memcpy(&rsvd, img + XSAVE_HEADER_OFF + 16, 8);
    /* No compacted form in this model: standard-form checks. */
    if ((bv & ~c->xcr0) || comp || rsvd)
        cpu_fault(c, EXC_GP, 0);
    u32 mx = get32(img + 24);
    if ((rfbm & XCR0_SSE) && (mx & ~MXCSR_WRITABLE))
        cpu_fault(c, EXC_GP, 0);
    if (rfbm & XCR0_X87) {
        if (bv & XCR0_X87)
            fpu_load_x87_image(c, img, rex_w);
        else
            fpu_x87_init_state(c);
    }
    if (rfbm & XCR0_SSE) {
        c->fpu.mxcsr = mx; /* loaded whatever XSTATE_BV[1] says */
        if (bv & XCR0_SSE)
            memcpy(c->fpu.xmm, img + 160, 16 * xmm_count(c));
        else
            memset(c->fpu.xmm, 0, 16 * xmm_count(c));
    }
}

/* ---- mnemonics shared with string instructions ---- */
/* MOVSD and CMPSD name both a string instruction (A5 / A7) and an SSE2 one (F2 0F 10/11,
 * F2 0F C2); the string group registers first, its handler is kept for those forms. */
static insn_fn string_movsd, string_cmpsd;

static void insn_movsd_any(struct cpu *c, const struct insn *i)
{
    if (i->d.opcode_map == ZYDIS_OPCODE_MAP_0F)
        insn_mov_part(c, i);
    else if (string_movsd)
        string_movsd(c, i);
    else
        cpu_unimplemented(c, "movsd (string)");
}

static void insn_cmpsd_any(struct cpu *c, const struct insn *i)
{
    if (i->d.opcode_map == ZYDIS_OPCODE_MAP_0F)
        insn_fp(c, i);
    else if (string_cmpsd)
        string_cmpsd(c, i);
    else
        cpu_unimplemented(c, "cmpsd (string)");
}

/* ---- registration ---- */
#define FEAT(f) ((u8)((f) + 1))

void insn_register_sse(insn_fn *t)
{
    if (t[ZYDIS_MNEMONIC_MOVSD] != insn_movsd_any)
        string_movsd = t[ZYDIS_MNEMONIC_MOVSD];
    if (t[ZYDIS_MNEMONIC_CMPSD] != insn_cmpsd_any)
        string_cmpsd = t[ZYDIS_MNEMONIC_CMPSD];
    static const struct { ZydisMnemonic m; host_fp_fn fn; enum cpuid_fast feat; u8 ul; bool imm; } fp[] = {
        { ZYDIS_MNEMONIC_ADDPS, host_addps, CF_SSE, UL_PS, false },
        { ZYDIS_MNEMONIC_ADDSS, host_addss, CF_SSE, UL_SS, false },
        { ZYDIS_MNEMONIC_ADDPD, host_addpd, CF_SSE2, UL_PD, false },
        { ZYDIS_MNEMONIC_ADDSD, host_addsd, CF_SSE2, UL_SD, false },
        { ZYDIS_MNEMONIC_SUBPS, host_subps, CF_SSE, UL_PS, false },
        { ZYDIS_MNEMONIC_SUBSS, host_subss, CF_SSE, UL_SS, false },
        { ZYDIS_MNEMONIC_SUBPD, host_subpd, CF_SSE2, UL_PD, false },
        { ZYDIS_MNEMONIC_SUBSD, host_subsd, CF_SSE2, UL_SD, false },
        { ZYDIS_MNEMONIC_MULPS, host_mulps, CF_SSE, UL_PS, false },
        { ZYDIS_MNEMONIC_MULSS, host_mulss, CF_SSE, UL_SS, false },
        { ZYDIS_MNEMONIC_MULPD, host_mulpd, CF_SSE2, UL_PD, false },
        { ZYDIS_MNEMONIC_MULSD, host_mulsd, CF_SSE2, UL_SD, false },
        { ZYDIS_MNEMONIC_DIVPS, host_divps, CF_SSE, UL_PS, false },
        { ZYDIS_MNEMONIC_DIVSS, host_divss, CF_SSE, UL_SS, false },
        { ZYDIS_MNEMONIC_DIVPD, host_divpd, CF_SSE2, UL_PD, false },
        { ZYDIS_MNEMONIC_DIVSD, host_divsd, CF_SSE2, UL_SD, false },
        { ZYDIS_MNEMONIC_MINPS, host_minps, CF_SSE, UL_NONE, false },
        { ZYDIS_MNEMONIC_MINSS, host_minss, CF_SSE, UL_NONE, false },
        { ZYDIS_MNEMONIC_MINPD, host_minpd, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_MINSD, host_minsd, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_MAXPS, host_maxps, CF_SSE, UL_NONE, false },
        { ZYDIS_MNEMONIC_MAXSS, host_maxss, CF_SSE, UL_NONE, false },
        { ZYDIS_MNEMONIC_MAXPD, host_maxpd, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_MAXSD, host_maxsd, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_SQRTPS, host_sqrtps, CF_SSE, UL_NONE, false },
        { ZYDIS_MNEMONIC_SQRTSS, host_sqrtss, CF_SSE, UL_NONE, false },
        { ZYDIS_MNEMONIC_SQRTPD, host_sqrtpd, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_SQRTSD, host_sqrtsd, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_RCPPS, host_rcpps, CF_SSE, UL_NONE, false },
        { ZYDIS_MNEMONIC_RCPSS, host_rcpss, CF_SSE, UL_NONE, false },
        { ZYDIS_MNEMONIC_RSQRTPS, host_rsqrtps, CF_SSE, UL_NONE, false },
        { ZYDIS_MNEMONIC_RSQRTSS, host_rsqrtss, CF_SSE, UL_NONE, false },
        { ZYDIS_MNEMONIC_CMPPS, host_cmpps, CF_SSE, UL_NONE, true },
        { ZYDIS_MNEMONIC_CMPSS, host_cmpss, CF_SSE, UL_NONE, true },
        { ZYDIS_MNEMONIC_CMPPD, host_cmppd, CF_SSE2, UL_NONE, true },
        { ZYDIS_MNEMONIC_CMPSD, host_cmpsd, CF_SSE2, UL_NONE, true },
        { ZYDIS_MNEMONIC_CVTPS2PD, host_cvtps2pd, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_CVTPD2PS, host_cvtpd2ps, CF_SSE2, UL_PS2, false },
        { ZYDIS_MNEMONIC_CVTSS2SD, host_cvtss2sd, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_CVTSD2SS, host_cvtsd2ss, CF_SSE2, UL_SS, false },
        { ZYDIS_MNEMONIC_CVTDQ2PS, host_cvtdq2ps, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_CVTPS2DQ, host_cvtps2dq, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_CVTTPS2DQ, host_cvttps2dq, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_CVTDQ2PD, host_cvtdq2pd, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_CVTPD2DQ, host_cvtpd2dq, CF_SSE2, UL_NONE, false },
        { ZYDIS_MNEMONIC_CVTTPD2DQ, host_cvttpd2dq, CF_SSE2, UL_NONE, false },
    };
    for (size_t k = 0; k < ARRAY_SIZE(fp); k++) {
        fp_ops[fp[k].m] = (struct fp_op){ fp[k].fn, FEAT(fp[k].feat), fp[k].ul, fp[k].imm };
        t[fp[k].m] = insn_fp;
    }

    enum { NONE = -1 };
    static const struct { ZydisMnemonic m; vec_fn f, fmmx; int mmx_feat, xmm_feat; } ints[] = {
        { ZYDIS_MNEMONIC_PADDB, v_paddb, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PADDW, v_paddw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PADDD, v_paddd, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PADDQ, v_paddq, NULL, CF_SSE2, CF_SSE2 },
        { ZYDIS_MNEMONIC_PADDSB, v_paddsb, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PADDSW, v_paddsw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PADDUSB, v_paddusb, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PADDUSW, v_paddusw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSUBB, v_psubb, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSUBW, v_psubw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSUBD, v_psubd, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSUBQ, v_psubq, NULL, CF_SSE2, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSUBSB, v_psubsb, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSUBSW, v_psubsw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSUBUSB, v_psubusb, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSUBUSW, v_psubusw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PMULLW, v_pmullw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PMULHW, v_pmulhw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PMULHUW, v_pmulhuw, NULL, CF_SSE, CF_SSE2 },
        { ZYDIS_MNEMONIC_PMULUDQ, v_pmuludq, NULL, CF_SSE2, CF_SSE2 },
        { ZYDIS_MNEMONIC_PMADDWD, v_pmaddwd, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PCMPEQB, v_pcmpeqb, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PCMPEQW, v_pcmpeqw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PCMPEQD, v_pcmpeqd, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PCMPGTB, v_pcmpgtb, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PCMPGTW, v_pcmpgtw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PCMPGTD, v_pcmpgtd, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PACKSSWB, v_packsswb, v_mmx_packsswb, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PACKSSDW, v_packssdw, v_mmx_packssdw, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PACKUSWB, v_packuswb, v_mmx_packuswb, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PUNPCKLBW, v_punpcklbw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PUNPCKLWD, v_punpcklwd, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PUNPCKLDQ, v_punpckldq, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PUNPCKLQDQ, v_punpcklqdq, NULL, NONE, CF_SSE2 },
        { ZYDIS_MNEMONIC_PUNPCKHBW, v_punpckhbw, v_mmx_punpckhbw, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PUNPCKHWD, v_punpckhwd, v_mmx_punpckhwd, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PUNPCKHDQ, v_punpckhdq, v_mmx_punpckhdq, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PUNPCKHQDQ, v_punpckhqdq, NULL, NONE, CF_SSE2 },
        { ZYDIS_MNEMONIC_PAND, v_pand, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PANDN, v_pandn, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_POR, v_por, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PXOR, v_pxor, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSLLW, v_psllw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSLLD, v_pslld, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSLLQ, v_psllq, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSRLW, v_psrlw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSRLD, v_psrld, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSRLQ, v_psrlq, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSRAW, v_psraw, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSRAD, v_psrad, NULL, CF_MMX, CF_SSE2 },
        { ZYDIS_MNEMONIC_PAVGB, v_pavgb, NULL, CF_SSE, CF_SSE2 },
        { ZYDIS_MNEMONIC_PAVGW, v_pavgw, NULL, CF_SSE, CF_SSE2 },
        { ZYDIS_MNEMONIC_PMINUB, v_pminub, NULL, CF_SSE, CF_SSE2 },
        { ZYDIS_MNEMONIC_PMAXUB, v_pmaxub, NULL, CF_SSE, CF_SSE2 },
        { ZYDIS_MNEMONIC_PMINSW, v_pminsw, NULL, CF_SSE, CF_SSE2 },
        { ZYDIS_MNEMONIC_PMAXSW, v_pmaxsw, NULL, CF_SSE, CF_SSE2 },
        { ZYDIS_MNEMONIC_PSADBW, v_psadbw, NULL, CF_SSE, CF_SSE2 },
        /* floating-point bitwise operations and unpacks are integer operations here */
        { ZYDIS_MNEMONIC_ANDPS, v_pand, NULL, NONE, CF_SSE },
        { ZYDIS_MNEMONIC_ANDNPS, v_pandn, NULL, NONE, CF_SSE },
        { ZYDIS_MNEMONIC_ORPS, v_por, NULL, NONE, CF_SSE },
        { ZYDIS_MNEMONIC_XORPS, v_pxor, NULL, NONE, CF_SSE },
        { ZYDIS_MNEMONIC_ANDPD, v_pand, NULL, NONE, CF_SSE2 },
        { ZYDIS_MNEMONIC_ANDNPD, v_pandn, NULL, NONE, CF_SSE2 },
        { ZYDIS_MNEMONIC_ORPD, v_por, NULL, NONE, CF_SSE2 },
        { ZYDIS_MNEMONIC_XORPD, v_pxor, NULL, NONE, CF_SSE2 },
        { ZYDIS_MNEMONIC_UNPCKLPS, v_punpckldq, NULL, NONE, CF_SSE },
        { ZYDIS_MNEMONIC_UNPCKHPS, v_punpckhdq, NULL, NONE, CF_SSE },
        { ZYDIS_MNEMONIC_UNPCKLPD, v_punpcklqdq, NULL, NONE, CF_SSE2 },
        { ZYDIS_MNEMONIC_UNPCKHPD, v_punpckhqdq, NULL, NONE, CF_SSE2 },
    };
    for (size_t k = 0; k < ARRAY_SIZE(ints); k++) {
        int_ops[ints[k].m] = (struct int_op){
            ints[k].f, ints[k].fmmx ? ints[k].fmmx : ints[k].f,
            ints[k].mmx_feat == NONE ? 0 : FEAT(ints[k].mmx_feat), FEAT(ints[k].xmm_feat),
        };
        t[ints[k].m] = insn_int;
    }

    static const struct { ZydisMnemonic m; insn_fn fn; } other[] = {
        { ZYDIS_MNEMONIC_CVTPI2PS, insn_cvt_mmx }, { ZYDIS_MNEMONIC_CVTPS2PI, insn_cvt_mmx },
        { ZYDIS_MNEMONIC_CVTTPS2PI, insn_cvt_mmx }, { ZYDIS_MNEMONIC_CVTPI2PD, insn_cvt_mmx },
        { ZYDIS_MNEMONIC_CVTPD2PI, insn_cvt_mmx }, { ZYDIS_MNEMONIC_CVTTPD2PI, insn_cvt_mmx },
        { ZYDIS_MNEMONIC_CVTSI2SS, insn_cvt_gpr }, { ZYDIS_MNEMONIC_CVTSI2SD, insn_cvt_gpr },
        { ZYDIS_MNEMONIC_CVTSS2SI, insn_cvt_gpr }, { ZYDIS_MNEMONIC_CVTTSS2SI, insn_cvt_gpr },
        { ZYDIS_MNEMONIC_CVTSD2SI, insn_cvt_gpr }, { ZYDIS_MNEMONIC_CVTTSD2SI, insn_cvt_gpr },
        { ZYDIS_MNEMONIC_COMISS, insn_comis }, { ZYDIS_MNEMONIC_UCOMISS, insn_comis },
        { ZYDIS_MNEMONIC_COMISD, insn_comis }, { ZYDIS_MNEMONIC_UCOMISD, insn_comis },
        { ZYDIS_MNEMONIC_MOVAPS, insn_mov128 }, { ZYDIS_MNEMONIC_MOVAPD, insn_mov128 },
        { ZYDIS_MNEMONIC_MOVDQA, insn_mov128 }, { ZYDIS_MNEMONIC_MOVUPS, insn_mov128 },
        { ZYDIS_MNEMONIC_MOVUPD, insn_mov128 }, { ZYDIS_MNEMONIC_MOVDQU, insn_mov128 },
        { ZYDIS_MNEMONIC_MOVNTPS, insn_mov128 }, { ZYDIS_MNEMONIC_MOVNTPD, insn_mov128 },
        { ZYDIS_MNEMONIC_MOVNTDQ, insn_mov128 },
        { ZYDIS_MNEMONIC_MOVSS, insn_mov_part }, { ZYDIS_MNEMONIC_MOVLPS, insn_mov_part },
        { ZYDIS_MNEMONIC_MOVHPS, insn_mov_part }, { ZYDIS_MNEMONIC_MOVLPD, insn_mov_part },
        { ZYDIS_MNEMONIC_MOVHPD, insn_mov_part }, { ZYDIS_MNEMONIC_MOVLHPS, insn_mov_part },
        { ZYDIS_MNEMONIC_MOVHLPS, insn_mov_part },
        { ZYDIS_MNEMONIC_MOVD, insn_movdq }, { ZYDIS_MNEMONIC_MOVQ, insn_movdq },
        { ZYDIS_MNEMONIC_MOVQ2DQ, insn_movdq }, { ZYDIS_MNEMONIC_MOVDQ2Q, insn_movdq },
        { ZYDIS_MNEMONIC_MOVNTQ, insn_movdq }, { ZYDIS_MNEMONIC_MOVNTI, insn_movdq },
        { ZYDIS_MNEMONIC_MOVMSKPS, insn_movmsk }, { ZYDIS_MNEMONIC_MOVMSKPD, insn_movmsk },
        { ZYDIS_MNEMONIC_PMOVMSKB, insn_movmsk },
        { ZYDIS_MNEMONIC_MASKMOVQ, insn_maskmov }, { ZYDIS_MNEMONIC_MASKMOVDQU, insn_maskmov },
        { ZYDIS_MNEMONIC_SHUFPS, insn_shuffle }, { ZYDIS_MNEMONIC_SHUFPD, insn_shuffle },
        { ZYDIS_MNEMONIC_PSHUFD, insn_shuffle }, { ZYDIS_MNEMONIC_PSHUFW, insn_shuffle },
        { ZYDIS_MNEMONIC_PSHUFLW, insn_shuffle }, { ZYDIS_MNEMONIC_PSHUFHW, insn_shuffle },
        { ZYDIS_MNEMONIC_PEXTRW, insn_pextrw }, { ZYDIS_MNEMONIC_PINSRW, insn_pinsrw },
        { ZYDIS_MNEMONIC_PSLLDQ, insn_pshiftdq }, { ZYDIS_MNEMONIC_PSRLDQ, insn_pshiftdq },
        { ZYDIS_MNEMONIC_LDMXCSR, insn_ldmxcsr }, { ZYDIS_MNEMONIC_STMXCSR, insn_stmxcsr },
        { ZYDIS_MNEMONIC_EMMS, insn_emms },
        { ZYDIS_MNEMONIC_FXSAVE, insn_fxsave }, { ZYDIS_MNEMONIC_FXSAVE64, insn_fxsave },
        { ZYDIS_MNEMONIC_FXRSTOR, insn_fxrstor }, { ZYDIS_MNEMONIC_FXRSTOR64, insn_fxrstor },
        { ZYDIS_MNEMONIC_XSAVE, insn_xsave }, { ZYDIS_MNEMONIC_XSAVE64, insn_xsave },
        { ZYDIS_MNEMONIC_XRSTOR, insn_xrstor }, { ZYDIS_MNEMONIC_XRSTOR64, insn_xrstor },
    };
    for (size_t k = 0; k < ARRAY_SIZE(other); k++)
        t[other[k].m] = other[k].fn;

    t[ZYDIS_MNEMONIC_MOVSD] = insn_movsd_any;
    t[ZYDIS_MNEMONIC_CMPSD] = insn_cmpsd_any;
}

/* x87/MMX/SSE internals shared by insn_x87.c, insn_sse.c and fpu.c (engine-private).
 *
 * Arithmetic is performed by the host's own x87 and SSE units (the host is x86-64), so
 * results, flags and implementation-specific approximations match hardware bit for bit.
 * The guest's control word / MXCSR is loaded on the host for the duration of one
 * operation only; the host's own control state is restored afterwards. */
#ifndef NESTOR_CPU_FPU_H
#define NESTOR_CPU_FPU_H

#include "cpu/exec.h"

/* x87 status word */
#define FSW_IE 0x0001u
#define FSW_DE 0x0002u
#define FSW_ZE 0x0004u
#define FSW_OE 0x0008u
#define FSW_UE 0x0010u
#define FSW_PE 0x0020u
#define FSW_SF 0x0040u
#define FSW_ES 0x0080u
#define FSW_C0 0x0100u
#define FSW_C1 0x0200u
#define FSW_C2 0x0400u
#define FSW_TOP 0x3800u
#define FSW_C3 0x4000u
#define FSW_B 0x8000u
#define FSW_EXC 0x003fu
#define FSW_CC (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)

#define FCW_INIT 0x037fu
#define FCW_EXC_MASKS 0x003fu
/* Loading FCW (FLDCW, FLDENV, FRSTOR, FXRSTOR, XRSTOR): bits 7 and 13-15 read as 0,
 * bit 6 as 1; bit 12 (the 287's infinity control) is kept. */
static inline u16 fpu_fcw_sanitize(u16 v) { return (u16)((v & 0x1f3f) | 0x0040); }

/* MXCSR */
#define MXCSR_IE 0x0001u
#define MXCSR_DE 0x0002u
#define MXCSR_ZE 0x0004u
#define MXCSR_OE 0x0008u
#define MXCSR_UE 0x0010u
#define MXCSR_PE 0x0020u
#define MXCSR_FLAGS 0x003fu
#define MXCSR_DAZ 0x0040u
#define MXCSR_MASKS 0x1f80u
#define MXCSR_UM 0x0800u
#define MXCSR_FZ 0x8000u
#define MXCSR_INIT 0x1f80u
/* Bits of MXCSR the model implements (reported as MXCSR_MASK by FXSAVE); writing any
 * other bit is #GP(0). DAZ is supported. */
#define MXCSR_WRITABLE 0xffffu

/* FSW.ES and B summarize the unmasked exception flags; every load of FSW or FCW
 * (FLDCW, FLDENV, FRSTOR, FSTENV's masking, FXRSTOR, XRSTOR) recomputes them. */
static inline void fpu_update_es(struct fpu_state *f)
{
    if (f->fsw & ~f->fcw & 0x3f)
        f->fsw |= 0x8080;
    else
        f->fsw &= (u16)~0x8080;
}

/* ---- x87 register stack ---- */
static inline unsigned fpu_top(const struct fpu_state *f) { return (f->fsw >> 11) & 7; }
static inline void fpu_set_top(struct fpu_state *f, unsigned top)
{
    f->fsw = (u16)((f->fsw & ~FSW_TOP) | ((top & 7) << 11));
}
/* Physical register number of ST(i). */
static inline unsigned fpu_phys(const struct fpu_state *f, unsigned i) { return (fpu_top(f) + i) & 7; }
static inline u8 *fpu_st(struct fpu_state *f, unsigned i) { return f->st[fpu_phys(f, i)]; }
static inline bool fpu_st_empty(const struct fpu_state *f, unsigned i)
{
    return !(f->ftw & (1u << fpu_phys(f, i)));
}
static inline void fpu_set_valid(struct fpu_state *f, unsigned i, bool valid)
{
    unsigned p = fpu_phys(f, i);
    f->ftw = (u8)(valid ? (f->ftw | (1u << p)) : (f->ftw & ~(1u << p)));
}

/* Full 16-bit tag word (FSTENV/FSAVE format) computed from the abridged one and the
 * register contents; and the way back (FLDENV/FRSTOR: only "empty" survives). */
u16 fpu_full_tag_word(const struct fpu_state *f);
u8 fpu_abridged_tags(u16 full);

/* ---- device-availability and pending-exception checks ---- */
/* x87 instruction: #NM on CR0.EM or CR0.TS; a waiting one also takes a pending x87
 * exception (#MF with CR0.NE; with CR0.NE clear the legacy FERR#/IRQ13 path is not
 * modelled and the instruction proceeds as if IGNNE# were asserted). */
void fpu_check_x87(struct cpu *c, bool waiting);
/* Raises #MF for a pending x87 exception (FSW.ES) when CR0.NE is set. */
void fpu_check_pending(struct cpu *c);
/* SSE/SSE2 instruction: #UD (CR0.EM, CR4.OSFXSR clear, feature absent), then #NM (TS). */
void fpu_check_sse(struct cpu *c, enum cpuid_fast feature);
/* MMX instruction (or an SSE one with an MMX register operand): #UD on CR0.EM or feature
 * absent, #NM on CR0.TS, #MF for a pending x87 exception. */
void fpu_check_mmx(struct cpu *c, enum cpuid_fast feature);
/* Transition to MMX state: TOP = 0, all registers valid. */
static inline void fpu_mmx_enter(struct cpu *c)
{
    fpu_set_top(&c->fpu, 0);
    c->fpu.ftw = 0xff;
}
/* MMX register write: mantissa = v, sign/exponent all ones (as hardware). */
static inline void fpu_mmx_write(struct cpu *c, unsigned r, u64 v)
{
    u8 *p = c->fpu.st[r & 7];
    for (int k = 0; k < 8; k++)
        p[k] = (u8)(v >> (8 * k));
    p[8] = p[9] = 0xff;
}
static inline u64 fpu_mmx_read(const struct cpu *c, unsigned r)
{
    const u8 *p = c->fpu.st[r & 7];
    u64 v = 0;
    for (int k = 7; k >= 0; k--)
        v = (v << 8) | p[k];
    return v;
}

/* ---- state images ---- */
/* Sizes */
#define FXSAVE_SIZE 512u
#define XSAVE_HEADER_OFF 512u
#define XSAVE_AREA_SIZE 576u
#define XCR0_X87 BIT(0)
#define XCR0_SSE BIT(1)

/* Writes the x87 part (bytes 0..23 without MXCSR, 32..159) of an FXSAVE image. rex_w
 * selects the 64-bit FIP/FDP layout. */
void fpu_save_x87_image(const struct cpu *c, u8 *img, bool rex_w);
/* Loads the x87 part of an FXSAVE image (no checks needed: nothing there is reserved). */
void fpu_load_x87_image(struct cpu *c, const u8 *img, bool rex_w);
/* x87 state after FNINIT / XRSTOR init (component 0 initial configuration). */
void fpu_x87_init_state(struct cpu *c);

/* Linear address of memory operand n without limit checks (for alignment tests). */
u64 fpu_operand_linear(struct cpu *c, const struct insn *i, int n);

#endif

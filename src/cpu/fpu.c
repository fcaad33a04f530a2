/* x87/SSE state shared by the x87, MMX and SSE instruction groups: reset states, the
 * device-not-available / pending-exception checks, tag words and the FXSAVE-format
 * image of the x87 state (used by FXSAVE/FXRSTOR and XSAVE/XRSTOR). */
#include <string.h>

#include "cpu/fpu.h"

void fpu_reset(struct cpu *c)
{
    struct fpu_state *f = &c->fpu;
    f->fcw = FCW_INIT;
    f->fsw = 0;
    f->ftw = 0;
    f->fop = 0;
    f->fip = f->fdp = 0;
    f->fcs = f->fds = 0;
}

void fpu_x87_init_state(struct cpu *c)
{
    fpu_reset(c);
    memset(c->fpu.st, 0, sizeof(c->fpu.st));
}

/* Power-on (SDM Vol. 3A, Table 10-1): FCW 0040H, FSW 0, FTW 5555H (every register
 * valid and zero), pointers 0, registers +0.0; MXCSR 1F80H, XMM registers 0. */
void fpu_power_on(struct cpu *c)
{
    struct fpu_state *f = &c->fpu;
    memset(f, 0, sizeof(*f));
    f->fcw = 0x0040;
    f->ftw = 0xff;
    f->mxcsr = MXCSR_INIT;
}

/* ---- checks ---- */
void fpu_check_pending(struct cpu *c)
{
    if ((c->fpu.fsw & FSW_ES) && (c->cr0 & CR0_NE))
        cpu_fault_noerr(c, EXC_MF);
}

void fpu_check_x87(struct cpu *c, bool waiting)
{
    if (c->cr0 & (CR0_EM | CR0_TS))
        cpu_fault_noerr(c, EXC_NM);
    if (waiting)
        fpu_check_pending(c);
}

void fpu_check_sse(struct cpu *c, enum cpuid_fast feature)
{
    if ((c->cr0 & CR0_EM) || !(c->cr4 & CR4_OSFXSR) || !cpu_has(c, feature))
        cpu_fault_noerr(c, EXC_UD);
    if (c->cr0 & CR0_TS)
        cpu_fault_noerr(c, EXC_NM);
}

void fpu_check_mmx(struct cpu *c, enum cpuid_fast feature)
{
    if ((c->cr0 & CR0_EM) || !cpu_has(c, feature))
        cpu_fault_noerr(c, EXC_UD);
    /* SSE instructions that name an MMX register also need CR4.OSFXSR. */
    if (feature != CF_MMX && !(c->cr4 & CR4_OSFXSR))
        cpu_fault_noerr(c, EXC_UD);
    if (c->cr0 & CR0_TS)
        cpu_fault_noerr(c, EXC_NM);
    fpu_check_pending(c);
}

/* ---- tag words ---- */
/* Tag of a non-empty register: 0 valid, 1 zero, 2 special (NaN, infinity, denormal,
 * unsupported encodings). */
static unsigned reg_tag(const u8 *r)
{
    unsigned exp = (unsigned)(r[8] | (r[9] << 8)) & 0x7fff;
    u64 mant;
    memcpy(&mant, r, 8);
    if (exp == 0x7fff)
        return 2;
    if (exp == 0)
        return mant == 0 ? 1 : 2;
    return (mant >> 63) ? 0 : 2; /* integer bit clear: unnormal */
}

u16 fpu_full_tag_word(const struct fpu_state *f)
{
    u16 tw = 0;
    for (unsigned p = 0; p < 8; p++) {
        unsigned t = (f->ftw & (1u << p)) ? reg_tag(f->st[p]) : 3;
        tw = (u16)(tw | (t << (2 * p)));
    }
    return tw;
}

u8 fpu_abridged_tags(u16 full)
{
    u8 ftw = 0;
    for (unsigned p = 0; p < 8; p++)
        if (((full >> (2 * p)) & 3) != 3)
            ftw = (u8)(ftw | (1u << p));
    return ftw;
}

/* ---- FXSAVE image, x87 part ---- */
static void put16(u8 *p, u16 v) { memcpy(p, &v, 2); }
static void put32(u8 *p, u32 v) { memcpy(p, &v, 4); }
static void put64(u8 *p, u64 v) { memcpy(p, &v, 8); }
static u16 get16(const u8 *p) { u16 v; memcpy(&v, p, 2); return v; }
static u32 get32(const u8 *p) { u32 v; memcpy(&v, p, 4); return v; }
static u64 get64(const u8 *p) { u64 v; memcpy(&v, p, 8); return v; }

void fpu_save_x87_image(const struct cpu *c, u8 *img, bool rex_w)
{
    const struct fpu_state *f = &c->fpu;
    put16(img + 0, f->fcw);
    put16(img + 2, f->fsw);
    img[4] = f->ftw;
    img[5] = 0;
    put16(img + 6, f->fop & 0x7ff);
    if (rex_w) {
        put64(img + 8, f->fip);
        put64(img + 16, f->fdp);
    } else {
        put32(img + 8, (u32)f->fip);
        put16(img + 12, f->fcs);
        put16(img + 14, 0);
        put32(img + 16, (u32)f->fdp);
        put16(img + 20, f->fds);
        put16(img + 22, 0);
    }
    /* Registers in stack order: ST(0) first. */
    for (unsigned i = 0; i < 8; i++) {
        u8 *slot = img + 32 + 16 * i;
        memcpy(slot, f->st[(fpu_top(f) + i) & 7], 10);
        memset(slot + 10, 0, 6);
    }
}

void fpu_load_x87_image(struct cpu *c, const u8 *img, bool rex_w)
{
    struct fpu_state *f = &c->fpu;
    f->fcw = fpu_fcw_sanitize(get16(img + 0));
    f->fsw = get16(img + 2);
    f->ftw = img[4];
    f->fop = get16(img + 6) & 0x7ff;
    if (rex_w) {
        f->fip = get64(img + 8);
        f->fdp = get64(img + 16);
    } else {
        f->fip = get32(img + 8);
        f->fcs = get16(img + 12);
        f->fdp = get32(img + 16);
        f->fds = get16(img + 20);
    }
    for (unsigned i = 0; i < 8; i++)
        memcpy(f->st[(fpu_top(f) + i) & 7], img + 32 + 16 * i, 10);
    fpu_update_es(f);
}

u64 fpu_operand_linear(struct cpu *c, const struct insn *i, int n)
{
    int s = opr_seg(i, n);
    u64 ea = opr_ea(c, i, n);
    if (cpu_is_long64(c) && s != SEG_FS && s != SEG_GS)
        return ea;
    return c->seg[s].base + ea;
}

/* Segmentation: descriptor tables, segment register loads with the protection checks of
 * the SDM (Vol. 3A ch. 5, Vol. 2 MOV/POP/LDS), and the far transfers (JMP, CALL, RET,
 * IRET) between code segments, through call gates and across privilege levels.
 *
 * Every transfer first performs all its checks and memory writes (the return frame on
 * the old or the new stack), and only then commits CS, SS, RSP, RIP, RFLAGS and the CPL,
 * so a fault anywhere leaves the architectural state as it was before the instruction.
 * Event delivery (except.c) shares the stack and code-segment pieces. */
#include "cpu/exec.h"

/* ---- descriptors ---- */

/* Selector error code: index and TI; the RPL bits become IDT/EXT (SDM 6.13). */
static inline u32 sel_err(u16 sel) { return sel & 0xfffc; }
static inline bool sel_null(u16 sel) { return (sel & 0xfffc) == 0; }

static inline u32 desc_attr(u64 d) { return (u32)(d >> 40) & 0xf0ff; }
static inline bool attr_code(u32 a) { return (a & SEG_ATTR_S) && (a & 8); }
static inline bool attr_data(u32 a) { return (a & SEG_ATTR_S) && !(a & 8); }
static inline bool attr_conforming(u32 a) { return attr_code(a) && (a & 4); }
static inline bool attr_writable_data(u32 a) { return attr_data(a) && (a & 2); }
static inline bool attr_64bit_code(u32 a) { return (a & SEG_ATTR_L) && !(a & SEG_ATTR_DB); }

/* System descriptor types (S = 0). In IA-32e mode types 0xC/0xE/0xF are the 64-bit gates
 * and 16-bit gates, task gates and 16-bit TSSs do not exist. */
enum {
    SYS_TSS16_AVAIL = 0x1, SYS_LDT = 0x2, SYS_TSS16_BUSY = 0x3, SYS_CALL_GATE16 = 0x4,
    SYS_TASK_GATE = 0x5, SYS_INT_GATE16 = 0x6, SYS_TRAP_GATE16 = 0x7,
    SYS_TSS32_AVAIL = 0x9, SYS_TSS32_BUSY = 0xb, SYS_CALL_GATE32 = 0xc,
    SYS_INT_GATE32 = 0xe, SYS_TRAP_GATE32 = 0xf,
};

/* Attributes of every segment register in virtual-8086 mode: present, DPL 3, read/write
 * accessed data (what VM entry requires as well). */
#define V86_ATTR 0xf3u

/* Linear addresses outside IA-32e mode are 32 bits wide. */
static inline u64 lin_wrap(const struct cpu *c, u64 a)
{
    return (c->efer & EFER_LMA) ? a : (a & 0xffffffffull);
}

bool seg_fetch_descriptor(struct cpu *c, u16 sel, unsigned bytes, u64 desc[], u64 *addr)
{
    u64 base;
    u32 limit;
    if (sel & 4) {
        if (c->ldtr.attr & SEG_ATTR_UNUSABLE)
            return false;
        base = c->ldtr.base;
        limit = c->ldtr.limit;
    } else {
        base = c->gdtr.base;
        limit = c->gdtr.limit;
    }
    u32 off = sel & 0xfff8;
    if ((u64)off + bytes - 1 > limit)
        return false;
    u64 a = lin_wrap(c, base + off);
    *addr = a;
    desc[0] = lin_read(c, a, 8, ACC_IMPLICIT);
    if (bytes == 16)
        desc[1] = lin_read(c, lin_wrap(c, a + 8), 8, ACC_IMPLICIT);
    return true;
}

/* With ok == NULL a selector beyond the table limit raises #GP(sel); with ok, *ok tells
 * (for LAR/LSL/VERR/VERW, which report instead of faulting). */
u64 seg_read_descriptor(struct cpu *c, u16 sel, bool *ok)
{
    u64 d = 0, addr;
    bool found = seg_fetch_descriptor(c, sel, 8, &d, &addr);
    if (ok)
        *ok = found;
    else if (!found)
        cpu_fault(c, EXC_GP, sel_err(sel));
    return found ? d : 0;
}

void seg_from_descriptor(struct seg *s, u16 sel, u64 desc)
{
    u32 limit = (u32)(desc & 0xffff) | (u32)((desc >> 32) & 0xf0000);
    u32 attr = desc_attr(desc);
    if (attr & SEG_ATTR_G)
        limit = (limit << 12) | 0xfff;
    s->sel = sel;
    s->base = ((desc >> 16) & 0xffffff) | (((desc >> 56) & 0xff) << 24);
    s->limit = limit;
    s->attr = attr;
}

void seg_mark_accessed(struct cpu *c, u64 addr, u64 *desc)
{
    if (*desc & BIT(40))
        return;
    *desc |= BIT(40);
    lin_write(c, lin_wrap(c, addr + 5), 1, (*desc >> 40) & 0xff, ACC_IMPLICIT);
}

bool seg_offset_ok(const struct seg *s, u64 off, unsigned size)
{
    if (s->attr & SEG_ATTR_UNUSABLE)
        return false;
    u64 last = off + size - 1;
    if (attr_data(s->attr) && (s->attr & 4)) { /* expand-down: (limit, upper] */
        u64 upper = (s->attr & SEG_ATTR_DB) ? 0xffffffffull : 0xffffull;
        return off > s->limit && last <= upper && off <= last;
    }
    return last <= s->limit && off <= last;
}

void seg_null_ss(struct seg *s, unsigned cpl)
{
    s->sel = (u16)cpl;
    s->base = 0;
    s->limit = 0;
    /* DPL tracks the CPL even when SS is null (the CPL is SS.DPL in VMX's view). */
    s->attr = SEG_ATTR_UNUSABLE | SEG_ATTR_S | 0x3 | (cpl << 5);
}

void seg_load_null(struct cpu *c, int seg, u16 sel)
{
    struct seg *s = &c->seg[seg];
    if (seg == SEG_SS) {
        seg_null_ss(s, c->cpl);
        s->sel = sel;
        return;
    }
    s->sel = sel;
    s->attr = SEG_ATTR_UNUSABLE;
    /* Intel clears base and limit on a null load; AMD keeps them (Linux's
     * X86_BUG_NULL_SEG): FS/GS bases then survive in 64-bit mode. */
    if (!c->model || c->model->vendor != VENDOR_AMD) {
        s->base = 0;
        s->limit = 0;
    }
}

/* ---- segment register loads (MOV Sreg, POP Sreg, LDS/LES/LFS/LGS/LSS) ---- */

void seg_load(struct cpu *c, int seg, u16 sel)
{
    if (seg == SEG_CS || seg < SEG_ES || seg > SEG_GS)
        cpu_fault_noerr(c, EXC_UD); /* MOV CS, r/m is undefined */
    if (seg == SEG_SS)
        c->in->exits |= EXIT_BLOCK_END; /* the stack width is part of the decoder key */
    struct seg *s = &c->seg[seg];
    if (cpu_is_real(c)) {
        /* Only selector and base change: limits and attributes survive ("unreal" mode),
         * but the register becomes usable. */
        s->sel = sel;
        s->base = (u64)sel << 4;
        s->attr = (s->attr & ~SEG_ATTR_UNUSABLE) | SEG_ATTR_P;
        return;
    }
    if (cpu_is_v86(c)) {
        s->sel = sel;
        s->base = (u64)sel << 4;
        s->limit = 0xffff;
        s->attr = V86_ATTR;
        return;
    }
    unsigned cpl = c->cpl, rpl = sel & 3;
    if (sel_null(sel)) {
        if (seg == SEG_SS && !(cpu_is_long64(c) && cpl != 3 && rpl == cpl))
            cpu_fault(c, EXC_GP, 0);
        seg_load_null(c, seg, sel);
        return;
    }
    u64 d, addr;
    if (!seg_fetch_descriptor(c, sel, 8, &d, &addr))
        cpu_fault(c, EXC_GP, sel_err(sel));
    u32 a = desc_attr(d);
    unsigned dpl = SEG_ATTR_DPL(a);
    if (seg == SEG_SS) {
        if (rpl != cpl || !attr_writable_data(a) || dpl != cpl)
            cpu_fault(c, EXC_GP, sel_err(sel));
        if (!(a & SEG_ATTR_P))
            cpu_fault(c, EXC_SS, sel_err(sel));
    } else {
        /* data, or readable code; privilege applies unless the code is conforming */
        if (!(a & SEG_ATTR_S) || (attr_code(a) && !(a & 2)))
            cpu_fault(c, EXC_GP, sel_err(sel));
        if (!attr_conforming(a) && (rpl > dpl || cpl > dpl))
            cpu_fault(c, EXC_GP, sel_err(sel));
        if (!(a & SEG_ATTR_P))
            cpu_fault(c, EXC_NP, sel_err(sel));
    }
    seg_mark_accessed(c, addr, &d);
    seg_from_descriptor(s, sel, d);
}

/* ---- stacks ---- */

void stk_current(struct cpu *c, struct stack_ptr *s)
{
    s->ss = c->seg[SEG_SS];
    s->sp = c->gpr[R_RSP];
    s->mask = stack_mask(c);
    s->flat = cpu_is_long64(c);
    s->real = !cpu_is_prot(c);
    s->access = 0;
    s->err = 0;
}

/* Linear address of size bytes at stack offset off, or #SS(err). */
static u64 stk_linear(struct cpu *c, const struct stack_ptr *s, u64 off, unsigned size)
{
    if (s->flat) {
        if (!cpu_canonical(c, off) || !cpu_canonical(c, off + size - 1))
            cpu_fault(c, EXC_SS, s->err);
        return off;
    }
    bool ok = s->real ? off + size - 1 <= s->ss.limit : seg_offset_ok(&s->ss, off, size);
    if (!ok)
        cpu_fault(c, EXC_SS, s->err);
    return (s->ss.base + off) & 0xffffffffull;
}

void stk_push(struct cpu *c, struct stack_ptr *s, u64 v, unsigned bytes)
{
    u64 off = (s->sp - bytes) & s->mask;
    lin_write(c, stk_linear(c, s, off, bytes), bytes, v, s->access);
    s->sp = (s->sp & ~s->mask) | off;
}

u64 stk_pop(struct cpu *c, struct stack_ptr *s, unsigned bytes)
{
    u64 off = s->sp & s->mask;
    u64 v = lin_read(c, stk_linear(c, s, off, bytes), bytes, s->access);
    s->sp = (s->sp & ~s->mask) | ((off + bytes) & s->mask);
    return v;
}

/* Adds n to the stack pointer within its address size (RET imm16). */
static void stk_release(struct stack_ptr *s, u64 n)
{
    s->sp = (s->sp & ~s->mask) | ((s->sp + n) & s->mask);
}

static u64 ss_mask(const struct seg *ss, bool long64)
{
    if (long64)
        return ~0ull;
    return (ss->attr & SEG_ATTR_DB) ? 0xffffffffull : 0xffffull;
}

/* ---- the task-state segment ---- */

u64 tss64_stack(struct cpu *c, unsigned dpl, unsigned ist, u32 ext)
{
    /* RSP0..2 at 4, 12, 20; IST1..7 at 0x24 + 8 (n - 1) */
    u32 off = ist ? 0x24 + 8 * (ist - 1) : 4 + 8 * dpl;
    if ((c->tr.attr & SEG_ATTR_UNUSABLE) || off + 7 > c->tr.limit)
        cpu_fault(c, EXC_TS, sel_err(c->tr.sel) | ext);
    return lin_read(c, c->tr.base + off, 8, ACC_IMPLICIT);
}

void seg_inner_stack(struct cpu *c, unsigned dpl, u32 ext, struct seg *ss, u64 *sp)
{
    bool tss32 = SEG_ATTR_TYPE(c->tr.attr) & 8;
    /* 32-bit TSS: ESPn at 4 + 8n, SSn at 8 + 8n; 16-bit TSS: SPn at 2 + 4n, SSn after */
    u32 off = tss32 ? 4 + 8 * dpl : 2 + 4 * dpl;
    unsigned w = tss32 ? 4 : 2;
    if ((c->tr.attr & SEG_ATTR_UNUSABLE) || off + w + 1 > c->tr.limit)
        cpu_fault(c, EXC_TS, sel_err(c->tr.sel) | ext);
    u64 base = c->tr.base + off;
    *sp = lin_read(c, lin_wrap(c, base), w, ACC_IMPLICIT);
    u16 sel = (u16)lin_read(c, lin_wrap(c, base + w), 2, ACC_IMPLICIT);

    if (sel_null(sel))
        cpu_fault(c, EXC_TS, ext);
    u64 d, addr;
    if (!seg_fetch_descriptor(c, sel, 8, &d, &addr))
        cpu_fault(c, EXC_TS, sel_err(sel) | ext);
    u32 a = desc_attr(d);
    if ((sel & 3) != dpl || SEG_ATTR_DPL(a) != dpl || !attr_writable_data(a))
        cpu_fault(c, EXC_TS, sel_err(sel) | ext);
    if (!(a & SEG_ATTR_P))
        cpu_fault(c, EXC_SS, sel_err(sel) | ext);
    seg_mark_accessed(c, addr, &d);
    seg_from_descriptor(ss, sel, d);
}

/* ---- code segment targets ---- */

/* Common checks of a code segment selector that a transfer goes to: null -> #GP(ext),
 * beyond the table or not code -> #GP(sel|ext). Privilege and presence are the caller's
 * (the SDM checks privilege first). */
static u64 code_fetch(struct cpu *c, u16 sel, u32 ext, u64 *addr)
{
    u64 d;
    if (sel_null(sel))
        cpu_fault(c, EXC_GP, ext);
    if (!seg_fetch_descriptor(c, sel, 8, &d, addr) || !attr_code(desc_attr(d)))
        cpu_fault(c, EXC_GP, sel_err(sel) | ext);
    return d;
}

/* In IA-32e mode a code segment with L = 1 and D = 1 is reserved. */
static void code_present(struct cpu *c, u16 sel, u32 ext, u32 attr)
{
    if ((c->efer & EFER_LMA) && (attr & SEG_ATTR_L) && (attr & SEG_ATTR_DB))
        cpu_fault(c, EXC_GP, sel_err(sel) | ext);
    if (!(attr & SEG_ATTR_P))
        cpu_fault(c, EXC_NP, sel_err(sel) | ext);
}

void seg_gate_target(struct cpu *c, u16 sel, u32 ext, struct seg *cs, u64 *addr, u64 *desc)
{
    u64 d = code_fetch(c, sel, ext, addr);
    u32 a = desc_attr(d);
    if (SEG_ATTR_DPL(a) > c->cpl)
        cpu_fault(c, EXC_GP, sel_err(sel) | ext);
    if ((c->efer & EFER_LMA) && !attr_64bit_code(a))
        cpu_fault(c, EXC_GP, sel_err(sel) | ext);
    code_present(c, sel, ext, a);
    *desc = d;
    seg_from_descriptor(cs, sel, d);
}

/* Does the instruction pointer fit the new code segment? (canonical for 64-bit code) */
static bool code_offset_ok(const struct cpu *c, const struct seg *cs, u64 ip)
{
    if ((c->efer & EFER_LMA) && (cs->attr & SEG_ATTR_L))
        return cpu_canonical(c, ip);
    return ip <= cs->limit;
}

/* ---- committing a transfer ---- */

static void commit_cs(struct cpu *c, struct seg cs, unsigned cpl, u64 ip)
{
    cs.sel = (u16)((cs.sel & ~3u) | cpl);
    c->seg[SEG_CS] = cs;
    c->rip = ip;
    c->in->exits |= EXIT_RIP_WRITTEN;
    cpu_set_cpl(c, (u8)cpl);
}

static void commit_sp(struct cpu *c, const struct stack_ptr *s)
{
    c->gpr[R_RSP] = s->sp;
}

/* Real and virtual-8086 mode: CS = sel, base sel * 16 (the selector is kept whole). */
static void commit_cs_real(struct cpu *c, const struct seg *cs, u64 ip)
{
    c->seg[SEG_CS] = *cs;
    c->rip = ip;
    c->in->exits |= EXIT_RIP_WRITTEN;
}

/* Real and virtual-8086 mode: CS = sel, base sel * 16. */
static struct seg real_cs(const struct cpu *c, u16 sel)
{
    struct seg cs = c->seg[SEG_CS];
    cs.sel = sel;
    cs.base = (u64)sel << 4;
    if (cpu_is_v86(c)) {
        cs.limit = 0xffff;
        cs.attr = V86_ATTR;
    }
    return cs;
}

/* ---- JMP far / CALL far ---- */

static void far_real(struct cpu *c, bool call, u16 sel, u64 off, unsigned osize, u64 ret_rip)
{
    struct seg cs = real_cs(c, sel);
    off &= size_mask(osize);
    if (off > cs.limit)
        cpu_fault(c, EXC_GP, 0);
    struct stack_ptr st;
    stk_current(c, &st);
    if (call) {
        stk_push(c, &st, c->seg[SEG_CS].sel, osize);
        stk_push(c, &st, ret_rip & size_mask(osize), osize);
    }
    commit_cs_real(c, &cs, off);
    commit_sp(c, &st);
    cpu_update_mode(c);
}

/* The end of a far CALL/JMP that keeps the CPL (directly to a code segment, or through a
 * call gate to the same privilege): a CALL pushes the return CS:IP on the current stack,
 * then the descriptor is marked accessed and CS:RIP and the stack pointer committed. */
static void far_same_privilege(struct cpu *c, bool call, struct seg cs, u64 d, u64 desc_addr,
                               u64 off, unsigned size, u64 ret_rip)
{
    struct stack_ptr st;
    stk_current(c, &st);
    if (call) {
        stk_push(c, &st, c->seg[SEG_CS].sel, size);
        stk_push(c, &st, ret_rip & size_mask(size), size);
    }
    seg_mark_accessed(c, desc_addr, &d);
    cs.attr = desc_attr(d);
    commit_cs(c, cs, c->cpl, off);
    commit_sp(c, &st);
}

/* To a code segment directly: the CPL never changes. */
static void far_direct(struct cpu *c, bool call, u16 sel, u64 d, u64 addr, u64 off,
                       unsigned osize, u64 ret_rip)
{
    u32 a = desc_attr(d);
    unsigned cpl = c->cpl, dpl = SEG_ATTR_DPL(a), rpl = sel & 3;
    if (attr_conforming(a) ? dpl > cpl : (rpl > cpl || dpl != cpl))
        cpu_fault(c, EXC_GP, sel_err(sel));
    code_present(c, sel, 0, a);
    struct seg cs;
    seg_from_descriptor(&cs, sel, d);
    off &= size_mask(osize);
    if (!code_offset_ok(c, &cs, off))
        cpu_fault(c, EXC_GP, 0);
    far_same_privilege(c, call, cs, d, addr, off, osize, ret_rip);
    cpu_update_mode(c);
}

/* Through a call gate (16/32-bit, or 64-bit in IA-32e mode). */
static void far_gate(struct cpu *c, bool call, u16 sel, const u64 g[2], u64 ret_rip)
{
    bool lma = c->efer & EFER_LMA;
    u32 ga = desc_attr(g[0]);
    unsigned cpl = c->cpl, gdpl = SEG_ATTR_DPL(ga);
    if (gdpl < cpl || (sel & 3) > gdpl)
        cpu_fault(c, EXC_GP, sel_err(sel));
    if (!(ga & SEG_ATTR_P))
        cpu_fault(c, EXC_NP, sel_err(sel));
    /* the upper half of a 64-bit gate must have type 0 there */
    if (lma && ((g[1] >> 40) & 0x1f) != 0)
        cpu_fault(c, EXC_GP, sel_err(sel));
    unsigned gsize = lma ? 8 : SEG_ATTR_TYPE(ga) == SYS_CALL_GATE16 ? 2 : 4;
    u16 tsel = (u16)(g[0] >> 16);
    u64 goff = (g[0] & 0xffff) | ((g[0] >> 32) & 0xffff0000ull);
    if (lma)
        goff |= (g[1] & 0xffffffffull) << 32;
    goff &= size_mask(gsize);
    unsigned params = (g[0] >> 32) & 0x1f;

    u64 taddr;
    u64 d = code_fetch(c, tsel, 0, &taddr);
    u32 a = desc_attr(d);
    unsigned dpl = SEG_ATTR_DPL(a);
    if (dpl > cpl || (!call && !attr_conforming(a) && dpl != cpl))
        cpu_fault(c, EXC_GP, sel_err(tsel));
    if (lma && !attr_64bit_code(a))
        cpu_fault(c, EXC_GP, sel_err(tsel));
    code_present(c, tsel, 0, a);
    struct seg cs;
    seg_from_descriptor(&cs, tsel, d);
    if (!code_offset_ok(c, &cs, goff))
        cpu_fault(c, EXC_GP, 0);

    struct stack_ptr st;
    stk_current(c, &st);
    bool inner = call && !attr_conforming(a) && dpl < cpl;
    if (inner) {
        struct stack_ptr ns = { .access = ACC_IMPLICIT };
        if (lma) {
            u64 rsp = tss64_stack(c, dpl, 0, 0);
            if (!cpu_canonical(c, rsp))
                cpu_fault(c, EXC_SS, 0);
            seg_null_ss(&ns.ss, dpl);
            ns.sp = rsp;
            ns.mask = ~0ull;
            ns.flat = true;
            ns.err = 0;
        } else {
            seg_inner_stack(c, dpl, 0, &ns.ss, &ns.sp);
            ns.mask = ss_mask(&ns.ss, false);
            ns.flat = false;
            ns.err = sel_err(ns.ss.sel);
        }
        u64 old_sp = c->gpr[R_RSP];
        stk_push(c, &ns, c->seg[SEG_SS].sel, gsize);
        stk_push(c, &ns, old_sp & size_mask(gsize), gsize);
        /* parameters: copied from the caller's stack, deepest first */
        for (unsigned k = params; !lma && k > 0; k--) {
            struct stack_ptr src = st;
            stk_release(&src, (u64)(k - 1) * gsize);
            stk_push(c, &ns, stk_pop(c, &src, gsize), gsize);
        }
        stk_push(c, &ns, c->seg[SEG_CS].sel, gsize);
        stk_push(c, &ns, ret_rip & size_mask(gsize), gsize);
        seg_mark_accessed(c, taddr, &d);
        cs.attr = desc_attr(d);
        c->seg[SEG_SS] = ns.ss;
        commit_cs(c, cs, dpl, goff);
        commit_sp(c, &ns);
    } else {
        far_same_privilege(c, call, cs, d, taddr, goff, gsize, ret_rip);
    }
    cpu_update_mode(c);
}

void far_jmp_call(struct cpu *c, bool call, u16 sel, u64 off, unsigned osize, u64 ret_rip)
{
    if (!cpu_is_prot(c)) {
        far_real(c, call, sel, off, osize, ret_rip);
        return;
    }
    if (sel_null(sel))
        cpu_fault(c, EXC_GP, 0);
    bool lma = c->efer & EFER_LMA;
    u64 d[2] = { 0, 0 }, addr;
    if (!seg_fetch_descriptor(c, sel, 8, d, &addr))
        cpu_fault(c, EXC_GP, sel_err(sel));
    u32 a = desc_attr(d[0]);
    if (a & SEG_ATTR_S) {
        if (!attr_code(a))
            cpu_fault(c, EXC_GP, sel_err(sel));
        far_direct(c, call, sel, d[0], addr, off, osize, ret_rip);
        return;
    }
    switch (SEG_ATTR_TYPE(a)) {
    case SYS_CALL_GATE32:
        if (lma && !seg_fetch_descriptor(c, sel, 16, d, &addr))
            cpu_fault(c, EXC_GP, sel_err(sel));
        far_gate(c, call, sel, d, ret_rip);
        return;
    case SYS_CALL_GATE16:
        if (lma)
            break;
        far_gate(c, call, sel, d, ret_rip);
        return;
    case SYS_TASK_GATE:
    case SYS_TSS16_AVAIL:
    case SYS_TSS32_AVAIL:
        if (lma)
            break;
        /* privilege checks of the task switch itself belong to the unimplemented part */
        cpu_unsupported_stop(c, "hardware task switch");
    default:
        break;
    }
    cpu_fault(c, EXC_GP, sel_err(sel));
}

/* ---- RET far / IRET ---- */

/* The code segment a RET/IRET returns to (SDM RET, IRET "RETURN-TO-..." checks). */
static struct seg return_cs(struct cpu *c, u16 sel, u64 *addr, u64 *desc)
{
    u64 d = code_fetch(c, sel, 0, addr);
    u32 a = desc_attr(d);
    unsigned rpl = sel & 3, dpl = SEG_ATTR_DPL(a);
    if (rpl < c->cpl || (attr_conforming(a) ? dpl > rpl : dpl != rpl))
        cpu_fault(c, EXC_GP, sel_err(sel));
    code_present(c, sel, 0, a);
    struct seg cs;
    seg_from_descriptor(&cs, sel, d);
    *desc = d;
    return cs;
}

/* The stack segment a RET/IRET to privilege rpl loads. A null SS is allowed only when
 * returning to 64-bit code at CPL < 3. */
static struct seg return_ss(struct cpu *c, u16 sel, unsigned rpl, bool to64)
{
    struct seg ss;
    if (sel_null(sel)) {
        if (!to64 || rpl == 3)
            cpu_fault(c, EXC_GP, 0);
        seg_null_ss(&ss, rpl);
        ss.sel = sel;
        return ss;
    }
    u64 d, addr;
    if (!seg_fetch_descriptor(c, sel, 8, &d, &addr))
        cpu_fault(c, EXC_GP, sel_err(sel));
    u32 a = desc_attr(d);
    if ((sel & 3) != rpl || !attr_writable_data(a) || SEG_ATTR_DPL(a) != rpl)
        cpu_fault(c, EXC_GP, sel_err(sel));
    if (!(a & SEG_ATTR_P))
        cpu_fault(c, EXC_SS, sel_err(sel));
    seg_mark_accessed(c, addr, &d);
    seg_from_descriptor(&ss, sel, d);
    return ss;
}

/* After a return to an outer level, data segment registers the new CPL may not use
 * become null. */
static void null_inaccessible_segs(struct cpu *c, unsigned cpl)
{
    static const int segs[] = { SEG_ES, SEG_DS, SEG_FS, SEG_GS };
    for (unsigned k = 0; k < ARRAY_SIZE(segs); k++) {
        struct seg *s = &c->seg[segs[k]];
        if (s->attr & SEG_ATTR_UNUSABLE)
            continue;
        if (!attr_conforming(s->attr) && SEG_ATTR_DPL(s->attr) < cpl) {
            s->sel = 0;
            s->attr = SEG_ATTR_UNUSABLE;
        }
    }
}

/* New stack pointer after a return to an outer level: a 16-bit stack only takes the low
 * 16 bits, the rest stays from the old RSP (what Linux's espfix works around). */
static u64 outer_sp(const struct cpu *c, const struct seg *ss, bool to64, u64 popped)
{
    u64 m = ss_mask(ss, to64);
    if (m == 0xffff)
        return (c->gpr[R_RSP] & ~0xffffull) | (popped & 0xffff);
    return popped;
}

void far_ret(struct cpu *c, unsigned osize, u16 release)
{
    struct stack_ptr st;
    stk_current(c, &st);
    u64 ip = stk_pop(c, &st, osize);
    u16 sel = (u16)stk_pop(c, &st, osize);
    if (!cpu_is_prot(c)) {
        struct seg cs = real_cs(c, sel);
        if (ip > cs.limit)
            cpu_fault(c, EXC_GP, 0);
        stk_release(&st, release);
        commit_cs_real(c, &cs, ip);
        commit_sp(c, &st);
        cpu_update_mode(c);
        return;
    }
    u64 addr, d;
    struct seg cs = return_cs(c, sel, &addr, &d);
    unsigned rpl = sel & 3;
    bool to64 = (c->efer & EFER_LMA) && (cs.attr & SEG_ATTR_L);
    if (!code_offset_ok(c, &cs, ip))
        cpu_fault(c, EXC_GP, 0);
    stk_release(&st, release);
    if (rpl == c->cpl) {
        seg_mark_accessed(c, addr, &d);
        cs.attr = desc_attr(d);
        commit_cs(c, cs, rpl, ip);
        commit_sp(c, &st);
        cpu_update_mode(c);
        return;
    }
    u64 sp = stk_pop(c, &st, osize);
    u16 ss_sel = (u16)stk_pop(c, &st, osize);
    struct seg ss = return_ss(c, ss_sel, rpl, to64);
    seg_mark_accessed(c, addr, &d);
    cs.attr = desc_attr(d);
    struct stack_ptr ns = { .ss = ss, .sp = outer_sp(c, &ss, to64, sp),
                            .mask = ss_mask(&ss, to64) };
    stk_release(&ns, release);
    c->seg[SEG_SS] = ss;
    commit_cs(c, cs, rpl, ip);
    commit_sp(c, &ns);
    null_inaccessible_segs(c, rpl);
    cpu_update_mode(c);
}

/* Bits IRET loads outside virtual-8086 mode (plus IF/IOPL/VIF/VIP by privilege). */
#define IRET_BASE_MASK (FL_ARITH | FL_TF | FL_DF | FL_NT | FL_RF | FL_AC | FL_ID)
/* Real mode IRETD: everything but VM, VIF, VIP (SDM: tempEFLAGS AND 257FD5H). */
#define IRET_REAL_MASK 0x257fd5ull

static void iret_real(struct cpu *c, unsigned osize)
{
    struct stack_ptr st;
    stk_current(c, &st);
    u64 mask = osize == 2 ? 0xffff : IRET_REAL_MASK;
    if (cpu_is_v86(c)) {
        /* Without CR4.VME an IRET at IOPL < 3 is sensitive. */
        if (((c->rflags & FL_IOPL) >> 12) < 3)
            cpu_fault(c, EXC_GP, 0);
        mask &= ~FL_IOPL;
    }
    u64 ip = stk_pop(c, &st, osize);
    u16 sel = (u16)stk_pop(c, &st, osize);
    u64 fl = stk_pop(c, &st, osize);
    struct seg cs = real_cs(c, sel);
    if (ip > cs.limit)
        cpu_fault(c, EXC_GP, 0);
    commit_cs_real(c, &cs, ip);
    commit_sp(c, &st);
    cpu_set_rflags(c, fl, mask);
    c->nmi_blocked = false;
    cpu_update_mode(c);
}

void far_iret(struct cpu *c, unsigned osize)
{
    if (!cpu_is_prot(c)) {
        iret_real(c, osize);
        return;
    }
    bool lma = c->efer & EFER_LMA;
    if (c->rflags & FL_NT) {
        if (lma)
            cpu_fault(c, EXC_GP, 0);
        cpu_unsupported_stop(c, "task return (IRET with NT=1)");
    }
    struct stack_ptr st;
    stk_current(c, &st);
    u64 ip = stk_pop(c, &st, osize);
    u16 sel = (u16)stk_pop(c, &st, osize);
    u64 fl = stk_pop(c, &st, osize);
    if (!lma && osize == 4 && (fl & FL_VM) && c->cpl == 0)
        cpu_unsupported_stop(c, "IRET to virtual-8086 mode");

    u64 addr, d;
    struct seg cs = return_cs(c, sel, &addr, &d);
    unsigned cpl = c->cpl, rpl = sel & 3;
    bool to64 = lma && (cs.attr & SEG_ATTR_L);
    /* 64-bit mode IRET always pops SS:RSP; elsewhere only on a privilege change */
    bool pop_stack = rpl != cpl || cpu_is_long64(c);
    struct stack_ptr ns = st;
    if (pop_stack) {
        u64 sp = stk_pop(c, &st, osize);
        u16 ss_sel = (u16)stk_pop(c, &st, osize);
        ns.ss = return_ss(c, ss_sel, rpl, to64);
        ns.sp = outer_sp(c, &ns.ss, to64, sp);
    }
    if (!code_offset_ok(c, &cs, ip))
        cpu_fault(c, EXC_GP, 0);

    /* flags the old CPL/IOPL allow IRET to change */
    unsigned iopl = (c->rflags & FL_IOPL) >> 12;
    u64 mask = IRET_BASE_MASK;
    if (cpl <= iopl)
        mask |= FL_IF;
    if (cpl == 0)
        mask |= FL_IOPL | FL_VIF | FL_VIP;
    if (osize == 2)
        mask &= 0xffff;

    seg_mark_accessed(c, addr, &d);
    cs.attr = desc_attr(d);
    cpu_set_rflags(c, fl, mask);
    if (pop_stack)
        c->seg[SEG_SS] = ns.ss;
    commit_cs(c, cs, rpl, ip);
    commit_sp(c, &ns);
    if (rpl > cpl)
        null_inaccessible_segs(c, rpl);
    c->nmi_blocked = false;
    cpu_update_mode(c);
}

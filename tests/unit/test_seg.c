/* Segmentation, far transfers and event delivery: descriptor tables, TSS and code are
 * built in guest memory, the CPU is put straight into the mode under test, and a few
 * instructions run. Stack frames, selectors, error codes and flags are checked against
 * the SDM (Vol. 3A ch. 5 and 6, Vol. 2 CALL/RET/IRET/INT). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/exec.h" /* mmu_update: the tests set CR0/CR3/CR4 directly */
#include "machine/mem.h"

#define RAM (16 * MiB)

/* guest physical (= linear) layout */
#define GDT 0x1000u
#define IDT 0x2000u
#define TSS 0x3000u
#define GATE_TARGET 0x5000u
#define HANDLER 0x6000u /* + 0x100 * n */
#define STACK0 0x9000u
#define STACK3 0x7000u
#define CODE 0x10000u
#define PML4 0x20000u

/* selectors */
enum {
    S_CODE32 = 0x08, S_DATA32 = 0x10, S_CODE32_U = 0x1b, S_DATA32_U = 0x23, S_TSS32 = 0x28,
    S_GATE32 = 0x33, S_DATA_NP = 0x38, S_CODE64 = 0x40, S_DATA64 = 0x48, S_CODE64_U = 0x53,
    S_TSS64 = 0x58, S_GATE64 = 0x6b, S_DATA64_U = 0x7b,
};

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static int shutdowns;
/* exceptions the engine reported before delivering them */
static struct { u8 vector; u32 error; } excs[8];
static int nexcs;

static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *opaque)
{
    (void)cp;
    (void)opaque;
    if (ev->kind == EV_SHUTDOWN)
        shutdowns++;
    if (ev->kind == EV_EXCEPTION && nexcs < (int)ARRAY_SIZE(excs)) {
        excs[nexcs].vector = ev->u.exc.vector;
        excs[nexcs].error = ev->u.exc.error;
        nexcs++;
    }
    return INTERCEPT_DEFAULT;
}
static const struct cpu_ops ops = { .intercept = intercept };

static void w32(u64 a, u32 v) { cr_assert_eq(mem_write_u32(&mem, a, v), 0); }
static void w64(u64 a, u64 v) { cr_assert_eq(mem_write_u64(&mem, a, v), 0); }
static u32 r32(u64 a) { u32 v = 0; cr_assert_eq(mem_read_u32(&mem, a, &v), 0); return v; }
static u64 r64(u64 a) { u64 v = 0; cr_assert_eq(mem_read_u64(&mem, a, &v), 0); return v; }
static u8 r8(u64 a) { u8 v = 0; cr_assert_eq(mem_read_u8(&mem, a, &v), 0); return v; }
static void code(u64 a, const u8 *b, size_t n) { cr_assert_eq(mem_write(&mem, a, b, n), 0); }

/* A code/data/system descriptor: access byte (P DPL S type) and flags nibble (G D L AVL). */
static u64 desc(u32 base, u32 limit, u8 access, u8 flags)
{
    return (limit & 0xffff) | ((u64)(base & 0xffffff) << 16) | ((u64)access << 40) |
           ((u64)((limit >> 16) & 0xf) << 48) | ((u64)(flags & 0xf) << 52) |
           ((u64)(base >> 24) << 56);
}
/* A gate: access byte, selector, offset (low 32 bits), params or IST in bits 32..36. */
static u64 gate(u16 sel, u32 off, u8 access, u8 count)
{
    return (off & 0xffff) | ((u64)sel << 16) | ((u64)count << 32) | ((u64)access << 40) |
           ((u64)(off >> 16) << 48);
}
static void gdt_set(u16 sel, u64 d) { w64(GDT + (sel & ~7u), d); }
static void idt32(u8 v, u16 sel, u32 off, u8 access) { w64(IDT + v * 8u, gate(sel, off, access, 0)); }
static void idt64(u8 v, u16 sel, u64 off, u8 access, u8 ist)
{
    w64(IDT + v * 16u, gate(sel, (u32)off, access, ist));
    w64(IDT + v * 16u + 8, off >> 32);
}

static void setup(void)
{
    char err[128];
    cr_assert_eq(cpuid_model_parse(&model, "max", err, sizeof err), 0, "%s", err);
    cr_assert_eq(mem_init(&mem, RAM), 0);
    cr_assert_eq(cpu_init(c, 0, &mem, &model, &ops, NULL), 0);
    shutdowns = 0;
    nexcs = 0;

    gdt_set(S_CODE32, desc(0, 0xfffff, 0x9a, 0xc)); /* not yet accessed */
    gdt_set(S_DATA32, desc(0, 0xfffff, 0x93, 0xc));
    gdt_set(S_CODE32_U, desc(0, 0xfffff, 0xfb, 0xc));
    gdt_set(S_DATA32_U, desc(0, 0xfffff, 0xf3, 0xc));
    gdt_set(S_TSS32, desc(TSS, 0x67, 0x8b, 0));
    gdt_set(S_GATE32, gate(S_CODE32, GATE_TARGET, 0xec, 2));
    gdt_set(S_DATA_NP, desc(0, 0xfffff, 0x13, 0xc));
    gdt_set(S_CODE64, desc(0, 0xfffff, 0x9b, 0xa));
    gdt_set(S_DATA64, desc(0, 0xfffff, 0x93, 0xc));
    gdt_set(S_CODE64_U, desc(0, 0xfffff, 0xfb, 0xa));
    gdt_set(S_TSS64, desc(TSS, 0x67, 0x8b, 0));
    w64(GDT + S_TSS64 + 8, 0);
    gdt_set(S_GATE64, gate(S_CODE64, GATE_TARGET, 0xec, 0));
    w64(GDT + (S_GATE64 & ~7u) + 8, 0);
    gdt_set(S_DATA64_U, desc(0, 0xfffff, 0xf3, 0xc));
    /* every handler spins (jmp $), so a run of n instructions stops there */
    for (u64 h = HANDLER; h < HANDLER + 0x1000; h += 0x100)
        code(h, (const u8[]){ 0xeb, 0xfe }, 2);
    c->gdtr = (struct dtr){ GDT, 0xff };
    c->idtr = (struct dtr){ IDT, 0xfff };
}

static void teardown(void)
{
    cpu_destroy(c);
    mem_destroy(&mem);
}

TestSuite(seg, .init = setup, .fini = teardown);

static void prot32(unsigned cpl)
{
    c->cr0 = CR0_PE | CR0_ET;
    if (cpl == 0) {
        cpu_set_seg(c, SEG_CS, S_CODE32, 0, 0xffffffff, 0xc09b);
        for (int s = SEG_ES; s <= SEG_GS; s++)
            if (s != SEG_CS)
                cpu_set_seg(c, s, S_DATA32, 0, 0xffffffff, 0xc093);
        c->gpr[R_RSP] = STACK0;
    } else {
        cpu_set_seg(c, SEG_CS, S_CODE32_U, 0, 0xffffffff, 0xc0fb);
        for (int s = SEG_ES; s <= SEG_GS; s++)
            if (s != SEG_CS)
                cpu_set_seg(c, s, S_DATA32_U, 0, 0xffffffff, 0xc0f3);
        c->gpr[R_RSP] = STACK3;
    }
    c->tr = (struct seg){ S_TSS32, TSS, 0x67, 0x8b };
    w32(TSS + 4, STACK0);
    w32(TSS + 8, S_DATA32);
    c->rflags = FL_FIXED1 | FL_IF;
    c->rip = CODE;
    cpu_update_mode(c);
    cr_assert_eq(c->mode, MODE_PROT32);
    cr_assert_eq(c->cpl, cpl);
}

static void long64(unsigned cpl)
{
    /* identity map of the first GiB with 2M user pages */
    w64(PML4, (PML4 + 0x1000) | 7);
    w64(PML4 + 0x1000, (PML4 + 0x2000) | 7);
    for (u64 k = 0; k < 512; k++)
        w64(PML4 + 0x2000 + k * 8, (k << 21) | 0x87);
    c->cr3 = PML4;
    c->cr4 = CR4_PAE;
    c->efer = EFER_LME | EFER_LMA;
    c->cr0 = CR0_PE | CR0_ET | CR0_PG;
    if (cpl == 0) {
        cpu_set_seg(c, SEG_CS, S_CODE64, 0, 0xffffffff, 0xa09b);
        cpu_set_seg(c, SEG_SS, S_DATA64, 0, 0xffffffff, 0xc093);
        c->gpr[R_RSP] = STACK0;
    } else {
        cpu_set_seg(c, SEG_CS, S_CODE64_U, 0, 0xffffffff, 0xa0fb);
        cpu_set_seg(c, SEG_SS, S_DATA64_U, 0, 0xffffffff, 0xc0f3);
        c->gpr[R_RSP] = STACK3;
    }
    c->tr = (struct seg){ S_TSS64, TSS, 0x67, 0x8b };
    w64(TSS + 4, STACK0);
    c->rflags = FL_FIXED1 | FL_IF;
    c->rip = CODE;
    cpu_update_mode(c);
    mmu_update(c);
    cr_assert_eq(c->mode, MODE_LONG64);
    cr_assert_eq(c->cpl, cpl);
}

/* ---- protected mode ---- */

Test(seg, int_same_privilege_frame)
{
    prot32(0);
    idt32(0x30, S_CODE32, HANDLER, 0xee);
    code(CODE, (const u8[]){ 0xcd, 0x30 }, 2);
    cpu_run(c, 1);
    cr_assert_eq(c->rip, HANDLER);
    cr_assert_eq(c->seg[SEG_CS].sel, S_CODE32);
    cr_assert_eq(c->gpr[R_RSP], STACK0 - 12);
    cr_assert_eq(r32(STACK0 - 12), CODE + 2, "return EIP");
    cr_assert_eq(r32(STACK0 - 8), S_CODE32);
    cr_assert_eq(r32(STACK0 - 4), FL_FIXED1 | FL_IF);
    cr_assert_eq(c->rflags & FL_IF, 0, "interrupt gate clears IF");
    cr_assert_eq(r8(GDT + S_CODE32 + 5), 0x9b, "accessed bit set in the GDT");
}

Test(seg, int_inner_privilege_switches_to_tss_stack)
{
    prot32(3);
    idt32(0x30, S_CODE32, HANDLER, 0xef); /* trap gate */
    code(CODE, (const u8[]){ 0xcd, 0x30 }, 2);
    cpu_run(c, 1);
    cr_assert_eq(c->cpl, 0);
    cr_assert_eq(c->seg[SEG_SS].sel, S_DATA32);
    cr_assert_eq(c->gpr[R_RSP], STACK0 - 20);
    cr_assert_eq(r32(STACK0 - 20), CODE + 2);
    cr_assert_eq(r32(STACK0 - 16), S_CODE32_U);
    cr_assert_eq(r32(STACK0 - 12), FL_FIXED1 | FL_IF);
    cr_assert_eq(r32(STACK0 - 8), STACK3);
    cr_assert_eq(r32(STACK0 - 4), S_DATA32_U);
    cr_assert_neq(c->rflags & FL_IF, 0, "trap gate keeps IF");
}

Test(seg, int_through_dpl0_gate_from_cpl3_is_gp)
{
    prot32(3);
    idt32(0x31, S_CODE32, HANDLER, 0x8e);
    idt32(EXC_GP, S_CODE32, HANDLER + 0x200, 0x8f);
    code(CODE, (const u8[]){ 0xcd, 0x31 }, 2);
    cpu_run(c, 1);
    cr_assert_eq(c->rip, HANDLER + 0x200);
    cr_assert_eq(c->gpr[R_RSP], STACK0 - 24);
    cr_assert_eq(r32(STACK0 - 24), 0x31 * 8 + 2, "IDT bit, no EXT for INT n");
    cr_assert_eq(r32(STACK0 - 20), CODE, "faulting instruction");
    cr_assert_eq(r32(STACK0 - 12), FL_FIXED1 | FL_IF | FL_RF, "faults push RF=1");
}

Test(seg, not_present_gate_ext_bit_for_hardware_exception)
{
    prot32(0);
    w64(IDT + EXC_UD * 8, gate(S_CODE32, HANDLER, 0x0e, 0)); /* P = 0 */
    idt32(EXC_NP, S_CODE32, HANDLER + 0x300, 0x8e);
    code(CODE, (const u8[]){ 0x0f, 0x0b }, 2); /* UD2 */
    cpu_run(c, 1);
    cr_assert_eq(c->rip, HANDLER + 0x300);
    cr_assert_eq(r32(STACK0 - 16), EXC_UD * 8 + 2 + 1, "IDT | EXT");
    cr_assert_eq(r32(STACK0 - 12), CODE);
}

Test(seg, gate_beyond_idt_limit)
{
    prot32(0);
    c->idtr.limit = 0x20 * 8 - 1;
    idt32(EXC_GP, S_CODE32, HANDLER + 0x200, 0x8e);
    code(CODE, (const u8[]){ 0xcd, 0x30 }, 2);
    cpu_run(c, 1);
    cr_assert_eq(c->rip, HANDLER + 0x200);
    cr_assert_eq(r32(STACK0 - 16), 0x30 * 8 + 2);
}

Test(seg, iret_to_outer_privilege_nulls_data_segments)
{
    prot32(0);
    u32 sp = STACK0 - 20;
    w32(sp, CODE + 0x40);
    w32(sp + 4, S_CODE32_U);
    w32(sp + 8, FL_FIXED1 | FL_IF | FL_CF | (3u << 12));
    w32(sp + 12, STACK3);
    w32(sp + 16, S_DATA32_U);
    c->gpr[R_RSP] = sp;
    c->rflags = FL_FIXED1;
    code(CODE, (const u8[]){ 0xcf }, 1);
    cpu_run(c, 1);
    cr_assert_eq(c->cpl, 3);
    cr_assert_eq(c->rip, CODE + 0x40);
    cr_assert_eq(c->seg[SEG_SS].sel, S_DATA32_U);
    cr_assert_eq(c->gpr[R_RSP], STACK3);
    cr_assert_eq(c->rflags, FL_FIXED1 | FL_IF | FL_CF | (3u << 12), "CPL 0 may set IOPL");
    cr_assert_eq(c->seg[SEG_DS].sel, 0, "DPL 0 data segment nulled");
    cr_assert(c->seg[SEG_DS].attr & SEG_ATTR_UNUSABLE);
}

Test(seg, iret_at_cpl3_keeps_iopl_and_if)
{
    prot32(3);
    u32 sp = STACK3 - 12;
    w32(sp, CODE + 0x40);
    w32(sp + 4, S_CODE32_U);
    w32(sp + 8, FL_FIXED1 | (3u << 12) | FL_ZF); /* tries IOPL=3, IF=0 */
    c->gpr[R_RSP] = sp;
    code(CODE, (const u8[]){ 0xcf }, 1);
    cpu_run(c, 1);
    cr_assert_eq(c->rip, CODE + 0x40);
    cr_assert_eq(c->rflags, FL_FIXED1 | FL_IF | FL_ZF);
}

Test(seg, call_gate_copies_parameters_and_retf_returns)
{
    prot32(3);
    w32(STACK3 - 4, 0x1111);
    w32(STACK3 - 8, 0x2222);
    c->gpr[R_RSP] = STACK3 - 8;
    code(CODE, (const u8[]){ 0x9a, 0, 0, 0, 0, S_GATE32, 0 }, 7); /* call far 0x33:0 */
    code(GATE_TARGET, (const u8[]){ 0xca, 8, 0 }, 3);              /* retf 8 */
    cpu_run(c, 1);
    cr_assert_eq(c->cpl, 0);
    cr_assert_eq(c->rip, GATE_TARGET);
    cr_assert_eq(c->seg[SEG_SS].sel, S_DATA32);
    u32 sp = STACK0 - 24;
    cr_assert_eq(c->gpr[R_RSP], sp);
    cr_assert_eq(r32(sp), CODE + 7);
    cr_assert_eq(r32(sp + 4), S_CODE32_U);
    cr_assert_eq(r32(sp + 8), 0x2222);
    cr_assert_eq(r32(sp + 12), 0x1111);
    cr_assert_eq(r32(sp + 16), STACK3 - 8);
    cr_assert_eq(r32(sp + 20), S_DATA32_U);
    cpu_run(c, 1);
    cr_assert_eq(c->cpl, 3);
    cr_assert_eq(c->rip, CODE + 7);
    cr_assert_eq(c->seg[SEG_SS].sel, S_DATA32_U);
    cr_assert_eq(c->gpr[R_RSP], STACK3, "retf 8 releases the parameters on both stacks");
}

Test(seg, far_jmp_sets_accessed_bit_and_checks_privilege)
{
    prot32(0);
    code(CODE, (const u8[]){ 0xea, 0x10, 0, 1, 0, S_CODE32, 0 }, 7);
    cpu_run(c, 1);
    cr_assert_eq(c->rip, CODE + 0x10);
    cr_assert_eq(r8(GDT + S_CODE32 + 5), 0x9b);
    /* a non-conforming DPL 3 segment is not reachable by a direct jump from CPL 0 */
    idt32(EXC_GP, S_CODE32, HANDLER + 0x200, 0x8e);
    code(CODE + 0x10, (const u8[]){ 0xea, 0, 0, 1, 0, S_CODE32_U, 0 }, 7);
    cpu_run(c, 1);
    cr_assert_eq(c->rip, HANDLER + 0x200);
    cr_assert_eq(r32(c->gpr[R_RSP]), S_CODE32_U & 0xfffc);
}

Test(seg, segment_load_checks)
{
    prot32(3);
    idt32(EXC_GP, S_CODE32, HANDLER + 0x200, 0x8e);
    /* mov ax, 0x10; mov ds, ax: DPL 0 data from CPL 3 */
    code(CODE, (const u8[]){ 0x66, 0xb8, S_DATA32, 0, 0x8e, 0xd8 }, 6);
    cpu_run(c, 2);
    cr_assert_eq(c->rip, HANDLER + 0x200);
    cr_assert_eq(r32(c->gpr[R_RSP]), S_DATA32);
    cr_assert_eq(c->seg[SEG_DS].sel, S_DATA32_U, "DS unchanged");
}

Test(seg, segment_load_null_and_not_present)
{
    prot32(0);
    idt32(EXC_GP, S_CODE32, HANDLER + 0x200, 0x8e);
    idt32(EXC_NP, S_CODE32, HANDLER + 0x300, 0x8e);
    /* mov ax, 0; mov es, ax (fine: ES unusable); mov ax, 0x38; mov ds, ax (#NP) */
    code(CODE, (const u8[]){ 0x66, 0xb8, 0, 0, 0x8e, 0xc0, 0x66, 0xb8, S_DATA_NP, 0, 0x8e, 0xd8 }, 12);
    cpu_run(c, 4);
    cr_assert(c->seg[SEG_ES].attr & SEG_ATTR_UNUSABLE);
    cr_assert_eq(c->rip, HANDLER + 0x300);
    cr_assert_eq(r32(c->gpr[R_RSP]), S_DATA_NP);
    /* a null SS outside 64-bit mode: #GP(0) */
    prot32(0);
    code(CODE, (const u8[]){ 0x66, 0xb8, 0, 0, 0x8e, 0xd0 }, 6);
    cpu_run(c, 2);
    cr_assert_eq(c->rip, HANDLER + 0x200);
    cr_assert_eq(r32(c->gpr[R_RSP]), 0);
}

/* ---- real mode ---- */

Test(seg, real_mode_int_and_iret)
{
    w32(0x10 * 4, (0x1234u << 16) | 0x10);
    c->gpr[R_RSP] = 0x7000;
    c->seg[SEG_CS] = (struct seg){ 0x1000, 0x10000, 0xffff, 0x9b };
    c->seg[SEG_SS] = (struct seg){ 0, 0, 0xffff, 0x93 };
    c->idtr = (struct dtr){ 0, 0x3ff };
    c->rip = 0;
    c->rflags = FL_FIXED1 | FL_IF;
    cpu_update_mode(c);
    code(0x10000, (const u8[]){ 0xcd, 0x10 }, 2);
    code(0x12350, (const u8[]){ 0xcf }, 1);
    cpu_run(c, 1);
    cr_assert_eq(c->seg[SEG_CS].sel, 0x1234);
    cr_assert_eq(c->seg[SEG_CS].base, 0x12340);
    cr_assert_eq(c->rip, 0x10);
    cr_assert_eq(c->gpr[R_RSP], 0x6ffa);
    cr_assert_eq(r32(0x6ffa) & 0xffff, 2);
    cr_assert_eq(r32(0x6ffc) & 0xffff, 0x1000);
    cr_assert_eq(r32(0x6ffe) & 0xffff, FL_FIXED1 | FL_IF);
    cr_assert_eq(c->rflags & FL_IF, 0);
    cpu_run(c, 1);
    cr_assert_eq(c->seg[SEG_CS].sel, 0x1000);
    cr_assert_eq(c->rip, 2);
    cr_assert_eq(c->gpr[R_RSP], 0x7000);
    cr_assert_neq(c->rflags & FL_IF, 0);
}

/* ---- IA-32e mode ---- */

Test(seg, long_mode_ist_alignment_and_iretq)
{
    long64(3);
    idt64(0x40, S_CODE64, HANDLER, 0xee, 2);
    w64(TSS + 0x24 + 8, 0xa008); /* IST2, not 16-byte aligned */
    c->gpr[R_RSP] = STACK3 - 8;
    code(CODE, (const u8[]){ 0xcd, 0x40 }, 2);
    code(HANDLER, (const u8[]){ 0x48, 0xcf }, 2);
    cpu_run(c, 1);
    cr_assert_eq(c->cpl, 0);
    cr_assert_eq(c->rip, HANDLER);
    u64 sp = 0xa000 - 40;
    cr_assert_eq(c->gpr[R_RSP], sp);
    cr_assert_eq(c->seg[SEG_SS].sel, 0, "null SS with RPL = new CPL");
    cr_assert_eq(r64(sp), CODE + 2);
    cr_assert_eq(r64(sp + 8), S_CODE64_U);
    cr_assert_eq(r64(sp + 16), FL_FIXED1 | FL_IF);
    cr_assert_eq(r64(sp + 24), STACK3 - 8);
    cr_assert_eq(r64(sp + 32), S_DATA64_U);
    cpu_run(c, 1);
    cr_assert_eq(c->cpl, 3);
    cr_assert_eq(c->mode, MODE_LONG64);
    cr_assert_eq(c->rip, CODE + 2);
    cr_assert_eq(c->gpr[R_RSP], STACK3 - 8);
    cr_assert_eq(c->seg[SEG_SS].sel, S_DATA64_U);
}

Test(seg, long_mode_same_privilege_aligns_and_pushes_ss)
{
    long64(0);
    idt64(0x40, S_CODE64, HANDLER, 0x8e, 0);
    c->gpr[R_RSP] = STACK0 - 8;
    code(CODE, (const u8[]){ 0xcd, 0x40 }, 2);
    cpu_run(c, 1);
    u64 sp = STACK0 - 16 - 40;
    cr_assert_eq(c->gpr[R_RSP], sp);
    cr_assert_eq(r64(sp + 24), STACK0 - 8);
    cr_assert_eq(r64(sp + 32), S_DATA64);
    cr_assert_eq(c->seg[SEG_SS].sel, S_DATA64);
}

Test(seg, long_mode_call_gate_to_inner_privilege)
{
    long64(3);
    /* call far [rip+0]: m16:32 pointer right after the instruction */
    code(CODE, (const u8[]){ 0xff, 0x1d, 0, 0, 0, 0, 0, 0, 0, 0, S_GATE64, 0 }, 12);
    code(GATE_TARGET, (const u8[]){ 0x48, 0xcb }, 2); /* retfq */
    cpu_run(c, 1);
    cr_assert_eq(c->cpl, 0);
    cr_assert_eq(c->rip, GATE_TARGET);
    u64 sp = STACK0 - 32;
    cr_assert_eq(c->gpr[R_RSP], sp);
    cr_assert_eq(r64(sp), CODE + 6);
    cr_assert_eq(r64(sp + 8), S_CODE64_U);
    cr_assert_eq(r64(sp + 16), STACK3);
    cr_assert_eq(r64(sp + 24), S_DATA64_U);
    cpu_run(c, 1);
    cr_assert_eq(c->cpl, 3);
    cr_assert_eq(c->rip, CODE + 6);
    cr_assert_eq(c->gpr[R_RSP], STACK3);
}

Test(seg, fault_while_pushing_frame_leaves_state_for_double_fault)
{
    long64(3);
    idt64(0x40, S_CODE64, HANDLER, 0xee, 0);
    idt64(EXC_DF, S_CODE64, HANDLER + 0x800, 0x8e, 1);
    idt64(EXC_PF, S_CODE64, HANDLER + 0xe00, 0x8e, 0);
    w64(TSS + 4, 0x40000000ull + 0x1000); /* RSP0 beyond the 1 GiB map: #PF on push */
    w64(TSS + 0x24, 0xb000);              /* IST1 for #DF */
    code(CODE, (const u8[]){ 0xcd, 0x40 }, 2);
    cpu_run(c, 1);
    /* the #PF pushing the INT frame is delivered on the same broken stack: #DF */
    cr_assert_eq(c->rip, HANDLER + 0x800);
    u64 sp = 0xb000 - 48;
    cr_assert_eq(c->gpr[R_RSP], sp);
    cr_assert_eq(r64(sp), 0, "#DF error code");
    cr_assert_eq(r64(sp + 8), CODE, "RIP of the INT, nothing committed");
    cr_assert_eq(r64(sp + 16), S_CODE64_U);
    cr_assert_eq(r64(sp + 32), STACK3);
    cr_assert_eq(shutdowns, 0);
}

/* ---- virtual-8086 mode ---- */

static void v86(unsigned iopl)
{
    prot32(0);
    for (int s = SEG_ES; s <= SEG_GS; s++)
        c->seg[s] = (struct seg){ 0x100 + s, (0x100u + s) << 4, 0xffff, 0xf3 };
    c->seg[SEG_CS] = (struct seg){ 0x1000, 0x10000, 0xffff, 0xf3 };
    c->seg[SEG_SS] = (struct seg){ 0x600, 0x6000, 0xffff, 0xf3 };
    c->gpr[R_RSP] = 0x1000;
    c->rip = 0;
    c->rflags = FL_FIXED1 | FL_IF | FL_VM | ((u64)iopl << 12);
    cpu_update_mode(c);
    cr_assert_eq(c->mode, MODE_V86);
}

Test(seg, v86_interrupt_saves_segments_and_leaves_v86)
{
    v86(3);
    idt32(0x30, S_CODE32, HANDLER, 0xee);
    code(0x10000, (const u8[]){ 0xcd, 0x30 }, 2);
    cpu_run(c, 1);
    cr_assert_eq(c->mode, MODE_PROT32);
    cr_assert_eq(c->cpl, 0);
    cr_assert_eq(c->rip, HANDLER);
    cr_assert_eq(c->rflags & (FL_VM | FL_IF), 0);
    u32 sp = STACK0 - 36;
    cr_assert_eq(c->gpr[R_RSP], sp);
    cr_assert_eq(r32(sp), 2);
    cr_assert_eq(r32(sp + 4), 0x1000);
    cr_assert_eq(r32(sp + 8), FL_FIXED1 | FL_IF | FL_VM | (3u << 12));
    cr_assert_eq(r32(sp + 12), 0x1000);
    cr_assert_eq(r32(sp + 16), 0x600);
    cr_assert_eq(r32(sp + 20), 0x100 + SEG_ES);
    cr_assert_eq(r32(sp + 24), 0x100 + SEG_DS);
    cr_assert_eq(r32(sp + 28), 0x100 + SEG_FS);
    cr_assert_eq(r32(sp + 32), 0x100 + SEG_GS);
    for (int s = SEG_ES; s <= SEG_GS; s++)
        if (s != SEG_CS && s != SEG_SS)
            cr_assert_eq(c->seg[s].sel, 0, "data segment %d nulled", s);
}

Test(seg, v86_int_n_at_iopl0_is_gp_and_iret_keeps_iopl)
{
    v86(0);
    idt32(0x30, S_CODE32, HANDLER, 0xee);
    idt32(EXC_GP, S_CODE32, HANDLER + 0x200, 0x8e);
    c->rip = 4;
    code(0x10004, (const u8[]){ 0xcd, 0x30 }, 2);
    cpu_run(c, 1);
    cr_assert_eq(c->rip, HANDLER + 0x200);
    cr_assert_eq(r32(c->gpr[R_RSP]), 0, "#GP(0)");
    cr_assert_eq(r32(c->gpr[R_RSP] + 4), 4, "at the INT");

    v86(3);
    /* iret (16-bit) with an image that asks for IOPL 0 and IF 0 */
    w32(0x6000 + 0x1000, 0x20 | (0x1100u << 16));
    w32(0x6000 + 0x1004, FL_FIXED1 | FL_CF);
    code(0x10000, (const u8[]){ 0xcf }, 1);
    cpu_run(c, 1);
    cr_assert_eq(c->seg[SEG_CS].sel, 0x1100);
    cr_assert_eq(c->seg[SEG_CS].base, 0x11000);
    cr_assert_eq(c->rip, 0x20);
    cr_assert_eq(c->gpr[R_RSP], 0x1006);
    cr_assert_eq(c->rflags, FL_FIXED1 | FL_CF | FL_VM | (3u << 12), "IOPL and VM kept");
}

/* ---- stack switch faults and 64-bit segment loads ---- */

Test(seg, bad_tss_stack_is_ts_with_ext_then_double_then_triple_fault)
{
    prot32(3);
    w32(TSS + 8, S_DATA32_U); /* SS0 with RPL 3 */
    idt32(EXC_UD, S_CODE32, HANDLER, 0x8e);
    idt32(EXC_TS, S_CODE32, HANDLER + 0x100, 0x8e);
    idt32(EXC_DF, S_CODE32, HANDLER + 0x200, 0x8e);
    code(CODE, (const u8[]){ 0x0f, 0x0b }, 2);
    cpu_run(c, 1);
    cr_assert_eq(nexcs, 3);
    cr_assert_eq(excs[0].vector, EXC_UD);
    cr_assert_eq(excs[1].vector, EXC_TS);
    cr_assert_eq(excs[1].error, (S_DATA32_U & 0xfffc) | 1, "selector | EXT");
    cr_assert_eq(excs[2].vector, EXC_DF);
    cr_assert_eq(shutdowns, 1);
    cr_assert_eq(c->rip, CODE, "nothing committed");
    cr_assert_eq(c->cpl, 3);
}

Test(seg, long_mode_null_ss_and_fs_base_from_descriptor)
{
    long64(0);
    gdt_set(0x80, desc(0x12345678, 0xfffff, 0x93, 0xc));
    idt64(EXC_GP, S_CODE64, HANDLER + 0x200, 0x8e, 0);
    /* mov eax, 0x80; mov fs, eax; xor eax, eax; mov ss, eax; mov eax, 3; mov ss, eax */
    code(CODE, (const u8[]){ 0xb8, 0x80, 0, 0, 0, 0x8e, 0xe0, 0x31, 0xc0, 0x8e, 0xd0,
                             0xb8, 3, 0, 0, 0, 0x8e, 0xd0 }, 18);
    cpu_run(c, 4);
    cr_assert_eq(c->seg[SEG_FS].base, 0x12345678);
    cr_assert_eq(c->seg[SEG_SS].sel, 0);
    cr_assert(c->seg[SEG_SS].attr & SEG_ATTR_UNUSABLE);
    cr_assert_eq(c->cpl, 0);
    cpu_run(c, 2);
    cr_assert_eq(c->rip, HANDLER + 0x200, "null SS with RPL != CPL");
    cr_assert_eq(r64(c->gpr[R_RSP]), 0);
}

/* ---- near branches, LOOP, ENTER/LEAVE ---- */

Test(seg, near_branch_operand_and_address_size)
{
    prot32(0);
    /* jmp rel16 (66 e9): the new EIP is truncated to 16 bits */
    code(CODE, (const u8[]){ 0x66, 0xe9, 0x10, 0x00 }, 4);
    cpu_run(c, 1);
    cr_assert_eq(c->rip, 0x14);
    /* loop with a 16-bit address size counts in CX only */
    c->gpr[R_RCX] = 0x10000;
    c->rip = CODE;
    code(CODE, (const u8[]){ 0x67, 0xe2, 0x10 }, 3);
    cpu_run(c, 1);
    cr_assert_eq(c->gpr[R_RCX], 0x1ffff);
    cr_assert_eq(c->rip, CODE + 3 + 0x10);
    /* jecxz not taken, then call rel32 / ret 4 */
    c->rip = CODE;
    c->gpr[R_RSP] = STACK0;
    code(CODE, (const u8[]){ 0xe3, 0x10, 0xe8, 0x10, 0, 0, 0 }, 7);
    code(CODE + 0x17, (const u8[]){ 0xc2, 4, 0 }, 3);
    cpu_run(c, 2);
    cr_assert_eq(c->rip, CODE + 0x17);
    cr_assert_eq(r32(STACK0 - 4), CODE + 7);
    cpu_run(c, 1);
    cr_assert_eq(c->rip, CODE + 7);
    cr_assert_eq(c->gpr[R_RSP], STACK0 + 4);
}

Test(seg, enter_with_nesting_and_leave)
{
    prot32(0);
    c->gpr[R_RBP] = 0x8800;
    w32(0x87fc, 0xaaaa);
    w32(0x87f8, 0xbbbb);
    code(CODE, (const u8[]){ 0xc8, 0x10, 0x00, 0x03, 0xc9 }, 5); /* enter 16, 3; leave */
    cpu_run(c, 1);
    cr_assert_eq(r32(STACK0 - 4), 0x8800);
    cr_assert_eq(r32(STACK0 - 8), 0xaaaa);
    cr_assert_eq(r32(STACK0 - 12), 0xbbbb);
    cr_assert_eq(r32(STACK0 - 16), STACK0 - 4);
    cr_assert_eq(c->gpr[R_RBP], STACK0 - 4);
    cr_assert_eq(c->gpr[R_RSP], STACK0 - 16 - 16);
    cpu_run(c, 1);
    cr_assert_eq(c->gpr[R_RBP], 0x8800);
    cr_assert_eq(c->gpr[R_RSP], STACK0);
}

Test(seg, sixteen_bit_interrupt_gate_pushes_words)
{
    prot32(0);
    idt32(0x30, S_CODE32, HANDLER, 0x86);
    code(CODE, (const u8[]){ 0xcd, 0x30 }, 2);
    cpu_run(c, 1);
    cr_assert_eq(c->rip, HANDLER);
    cr_assert_eq(c->gpr[R_RSP], STACK0 - 6);
    cr_assert_eq(r32(STACK0 - 6) & 0xffff, (CODE + 2) & 0xffff);
    cr_assert_eq(r32(STACK0 - 4) & 0xffff, S_CODE32);
    cr_assert_eq(r32(STACK0 - 4) >> 16, FL_FIXED1 | FL_IF);
}

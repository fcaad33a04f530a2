/* Control registers, debug registers, EFER/MSRs and XCR0: each test puts the CPU in a
 * mode (64-bit, or 32-bit protected), runs one instruction and checks the exception it
 * raised (or not) and the resulting state against the SDM's MOV CR/MOV DR/WRMSR/XSETBV
 * rules. */
#include <criterion/criterion.h>
#include <string.h>

#include "cpu/exec.h"
#include "machine/mem.h"

#define RAM (16 * MiB)
#define CODE 0x10000u
#define PML4 0x20000u
#define PDPT 0x21000u
#define PAE_PDPT 0x22000u
#define PAE_PD 0x23000u

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static int last_exc;
static u32 last_err;
static u64 fake_ns;

static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *opaque)
{
    (void)cp;
    (void)opaque;
    if (ev->kind == EV_EXCEPTION) {
        last_exc = ev->u.exc.vector;
        last_err = ev->u.exc.error;
        return INTERCEPT_STOP; /* do not deliver: the test looks at the fault */
    }
    return INTERCEPT_DEFAULT;
}
static u64 now_ns(struct cpu *cp, void *opaque)
{
    (void)cp;
    (void)opaque;
    return fake_ns;
}
static const struct cpu_ops ops = { .intercept = intercept, .now_ns = now_ns };

static void w64(u64 a, u64 v) { cr_assert_eq(mem_write_u64(&mem, a, v), 0); }

static void make(const char *spec)
{
    char err[128];
    cr_assert_eq(cpuid_model_parse(&model, spec, err, sizeof err), 0, "%s", err);
    cr_assert_eq(mem_init(&mem, RAM), 0);
    cr_assert_eq(cpu_init(c, 0, &mem, &model, &ops, NULL), 0);
    fake_ns = 1000000;
}

/* 64-bit mode, CPL 0 (or 3), identity-mapped first GiB: a 1G page, user-accessible only
 * for CPL 3 (so that SMEP does not stop CPL 0 code). */
static void long64(unsigned cpl)
{
    w64(PML4, PDPT | 7);
    w64(PDPT, cpl ? 0x87 : 0x83);
    c->cr3 = PML4;
    c->cr4 = CR4_PAE;
    c->efer = EFER_LME | EFER_LMA | EFER_SCE | EFER_NXE;
    c->cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE;
    cpu_set_seg(c, SEG_CS, (u16)(0x08 | cpl), 0, 0xffffffff, 0xa09b | cpl << 5);
    cpu_set_seg(c, SEG_SS, (u16)(0x10 | cpl), 0, 0xffffffff, 0xc093 | cpl << 5);
    cpu_update_mode(c);
    mmu_update(c);
    cr_assert_eq(c->mode, MODE_LONG64);
}

/* 32-bit protected mode, CPL 0, paging off. */
static void prot32(void)
{
    c->cr0 = CR0_PE | CR0_ET | CR0_NE;
    c->cr4 = 0;
    c->efer = 0;
    cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xc09b);
    cpu_set_seg(c, SEG_SS, 0x10, 0, 0xffffffff, 0xc093);
    for (int s = SEG_ES; s <= SEG_GS; s++)
        if (s != SEG_CS && s != SEG_SS)
            cpu_set_seg(c, s, 0x10, 0, 0xffffffff, 0xc093);
    cpu_update_mode(c);
    mmu_update(c);
    cr_assert_eq(c->mode, MODE_PROT32);
}

/* Runs one instruction; returns the exception vector it raised, or -1. */
static int run(const u8 *bytes, size_t n)
{
    cr_assert_eq(mem_write(&mem, CODE, bytes, n), 0);
    c->rip = CODE;
    last_exc = -1;
    cpu_run(c, 1);
    return last_exc;
}
#define RUN(...) run((const u8[]){ __VA_ARGS__ }, sizeof((const u8[]){ __VA_ARGS__ }))

static int mov_cr(int cr, u64 v)
{
    c->gpr[R_RAX] = v;
    switch (cr) {
    case 0: return RUN(0x0f, 0x22, 0xc0);
    case 3: return RUN(0x0f, 0x22, 0xd8);
    case 4: return RUN(0x0f, 0x22, 0xe0);
    default: return RUN(0x44, 0x0f, 0x22, 0xc0); /* CR8 */
    }
}

static int mov_dr(int dr, u64 v)
{
    c->gpr[R_RAX] = v;
    return run((const u8[]){ 0x0f, 0x23, (u8)(0xc0 | dr << 3) }, 3);
}

static int wrmsr(u32 index, u64 v)
{
    c->gpr[R_RCX] = index;
    c->gpr[R_RAX] = v & 0xffffffffull;
    c->gpr[R_RDX] = v >> 32;
    return RUN(0x0f, 0x30);
}

static int rdmsr(u32 index, u64 *v)
{
    c->gpr[R_RCX] = index;
    int e = RUN(0x0f, 0x32);
    *v = (c->gpr[R_RDX] << 32) | (c->gpr[R_RAX] & 0xffffffffull);
    return e;
}

static void teardown(void)
{
    cpu_destroy(c);
    mem_destroy(&mem);
}

static void setup_max(void) { make("max"); }
TestSuite(cr, .init = setup_max, .fini = teardown);

Test(cr, cr0_rules_in_64bit_mode)
{
    long64(0);
    cr_expect_eq(mov_cr(0, c->cr0 & ~CR0_PG), EXC_GP, "clearing PG in 64-bit mode");
    cr_expect_eq(mov_cr(0, (c->cr0 | CR0_NW) & ~CR0_CD), EXC_GP, "NW without CD");
    cr_expect_eq(mov_cr(0, c->cr0 | BIT(32)), EXC_GP, "bits 63:32");
    cr_expect_eq(mov_cr(0, (c->cr0 | BIT(6) | CR0_WP) & ~CR0_ET), -1);
    cr_expect_eq(c->cr0 & BIT(6), 0u, "reserved bits are ignored");
    cr_expect(c->cr0 & CR0_ET, "ET is hardwired");
    cr_expect(c->cr0 & CR0_WP);
    cr_expect(c->in->pg.wp, "paging parameters follow CR0.WP");
}

Test(cr, cr4_rules)
{
    long64(0);
    u64 cr4 = c->cr4;
    cr_expect_eq(mov_cr(4, cr4 & ~CR4_PAE), EXC_GP, "leaving IA-32e mode through PAE");
    cr_expect_eq(mov_cr(4, cr4 | CR4_LA57), EXC_GP, "LA57 change in IA-32e mode");
    cr_expect_eq(mov_cr(4, cr4 | CR4_PKE), EXC_GP, "PKE: no protection keys");
    cr_expect_eq(mov_cr(4, cr4 | CR4_VMXE), -1, "VMXE: VMX is in the max model");
    cr_expect_eq(mov_cr(4, cr4), -1);
    cr_expect_eq(mov_cr(4, cr4 | BIT(15)), EXC_GP, "reserved bit 15");
    cr_expect_eq(mov_cr(4, cr4 | CR4_SMEP | CR4_SMAP | CR4_OSXSAVE | CR4_FSGSBASE), -1);
    cr_expect(c->in->pg.smep && c->in->pg.smap);
    c->cr3 = PML4 | 5;
    cr_expect_eq(mov_cr(4, c->cr4 | CR4_PCIDE), EXC_GP, "PCIDE with CR3[11:0] != 0");
    c->cr3 = PML4;
    cr_expect_eq(mov_cr(4, c->cr4 | CR4_PCIDE), -1);
    cr_expect_eq(mov_cr(0, c->cr0 & ~CR0_PG), EXC_GP);
}

Test(cr, cr4_features_follow_the_model)
{
    teardown();
    make("max,-smep,-fsgsbase,-la57");
    long64(0);
    cr_expect_eq(mov_cr(4, c->cr4 | CR4_SMEP), EXC_GP);
    cr_expect_eq(mov_cr(4, c->cr4 | CR4_FSGSBASE), EXC_GP);
    cr_expect_eq(mov_cr(4, c->cr4 | CR4_SMAP), -1);
}

Test(cr, cr3_rules)
{
    long64(0);
    cr_expect_eq(mov_cr(3, PML4 | BIT(40)), EXC_GP, "beyond MAXPHYADDR");
    cr_expect_eq(mov_cr(3, PML4 | BIT(63)), EXC_GP, "bit 63 without PCIDE");
    cr_expect_eq(mov_cr(4, c->cr4 | CR4_PCIDE), -1);
    cr_expect_eq(mov_cr(3, PML4 | BIT(63) | 7), -1, "no-flush hint with PCIDE");
    cr_expect_eq(c->cr3, PML4 | 7u, "bit 63 is not stored");
    cr_expect_eq(c->in->pg.root, PML4 | 7u);
}

Test(cr, cr8_and_privilege)
{
    long64(0);
    cr_expect_eq(mov_cr(8, 0x10), EXC_GP, "CR8 bits 63:4");
    cr_expect_eq(mov_cr(8, 0x7), -1);
    cr_expect_eq(c->cr8, 7u);
    c->gpr[R_RBX] = 0;
    cr_expect_eq(RUN(0x0f, 0x20, 0xe3), -1); /* mov rbx, cr4 */
    cr_expect_eq(c->gpr[R_RBX], c->cr4);
    cr_expect_eq(RUN(0x0f, 0x20, 0xc8), EXC_UD, "CR1 does not exist");
    long64(3);
    cr_expect_eq(mov_cr(0, c->cr0), EXC_GP, "CPL 3");
    cr_expect_eq(RUN(0x0f, 0x20, 0xe3), EXC_GP, "read at CPL 3");
    cr_expect_eq(mov_dr(7, 0), EXC_GP);
}

Test(cr, long_mode_activation)
{
    prot32();
    w64(PML4, PDPT | 7);
    w64(PDPT, 0x87);
    c->cr3 = PML4;
    c->efer = EFER_LME;
    cr_expect_eq(mov_cr(0, c->cr0 | CR0_PG), EXC_GP, "LME without PAE");
    cr_expect_eq(mov_cr(4, CR4_PAE), -1);
    cr_expect_eq(mov_cr(0, c->cr0 | CR0_PG), -1);
    cr_expect(c->efer & EFER_LMA, "LMA set with PG");
    cr_expect_eq(c->mode, MODE_COMPAT32);
    cr_expect_eq(c->in->pg.fmt, PG_LONG4);
    /* leaving again from compatibility mode */
    cr_expect_eq(mov_cr(0, c->cr0 & ~CR0_PG), -1);
    cr_expect_not(c->efer & EFER_LMA);
    cr_expect_eq(c->mode, MODE_PROT32);
    cr_expect_eq(mov_cr(0, CR0_PG | CR0_ET), EXC_GP, "PG without PE");
}

Test(cr, pae_pdptes)
{
    prot32();
    /* a PDPT with a reserved bit (bit 1 = R/W is reserved in PAE PDPTEs) */
    w64(PAE_PDPT, PAE_PD | 1);
    w64(PAE_PDPT + 8, 0);
    w64(PAE_PDPT + 16, 0);
    w64(PAE_PDPT + 24, 0);
    w64(PAE_PD, 0x83); /* 2M page at 0 */
    c->cr3 = PAE_PDPT;
    cr_expect_eq(mov_cr(4, CR4_PAE), -1);
    cr_expect_eq(mov_cr(0, c->cr0 | CR0_PG), -1);
    cr_expect_eq(c->in->pg.fmt, PG_PAE);
    cr_expect_eq(c->in->pg.pdpte[0], (u64)(PAE_PD | 1));
    w64(PAE_PDPT + 0x40, PAE_PD | 3);
    cr_expect_eq(mov_cr(3, PAE_PDPT + 0x40), EXC_GP, "reserved bit in a PDPTE");
    cr_expect_eq(c->cr3, (u64)PAE_PDPT, "CR3 unchanged after the fault");
    w64(PAE_PDPT + 0x40, PAE_PD | 1);
    cr_expect_eq(mov_cr(3, PAE_PDPT + 0x40), -1);
    cr_expect_eq(c->cr3, (u64)PAE_PDPT + 0x40);
}

Test(cr, debug_registers)
{
    long64(0);
    cr_expect_eq(mov_dr(4, 0x1), -1, "DR4 aliases DR6 without CR4.DE");
    cr_expect_eq(c->dr[6], 0xffff0ff1ull);
    cr_expect_eq(mov_dr(6, 0xffffffffull), -1);
    cr_expect_eq(c->dr[6], 0xffffefffull, "bit 12 reads 0");
    cr_expect_eq(mov_dr(6, BIT(32)), EXC_GP, "DR6 bits 63:32");
    cr_expect_eq(mov_dr(7, BIT(40)), EXC_GP, "DR7 bits 63:32");
    cr_expect_eq(mov_dr(0, 0xffff800000001000ull), -1);
    cr_expect_eq(c->dr[0], 0xffff800000001000ull);
    cr_expect_eq(mov_cr(4, c->cr4 | CR4_DE), -1);
    cr_expect_eq(mov_dr(5, 0), EXC_UD, "DR5 with CR4.DE");
    cr_expect_eq(mov_dr(7, 0x1 | BIT(13)), -1);
    cr_expect_eq(c->dr[7], 0x2401ull);
    cr_expect(c->in->dr_exec_active);
    cr_expect_eq(mov_dr(0, 0), EXC_DB, "general detect");
    cr_expect(c->dr[6] & BIT(13), "DR6.BD");
    /* delivery clears GD for the handler; this harness intercepts the #DB instead, and
     * an intercepted #DB (like one that causes a VM exit) leaves DR7 alone */
    cr_expect(c->dr[7] & BIT(13), "GD kept: the #DB was intercepted, not delivered");
    cr_expect_eq(mov_dr(7, 0x400), EXC_DB, "GD still set: the next MOV DR faults again");
    c->dr[7] &= ~(u64)BIT(13);
    cr_expect_eq(mov_dr(7, 0x400), -1);
    cr_expect_not(c->in->dr_exec_active);
}

Test(cr, efer_rules)
{
    long64(0);
    cr_expect_eq(wrmsr(0xc0000080u, c->efer | BIT(2)), EXC_GP, "reserved bit");
    cr_expect_eq(wrmsr(0xc0000080u, c->efer & ~EFER_LME), EXC_GP, "LME while paging");
    cr_expect_eq(wrmsr(0xc0000080u, (c->efer & ~(EFER_NXE | EFER_LMA))), -1, "LMA ignored");
    cr_expect(c->efer & EFER_LMA);
    cr_expect_not(c->in->pg.nxe);
    u64 v;
    cr_expect_eq(rdmsr(0xc0000080u, &v), -1);
    cr_expect_eq(v, c->efer);
    teardown();
    make("max,-nx");
    long64(0);
    c->efer &= ~EFER_NXE;
    cr_expect_eq(wrmsr(0xc0000080u, c->efer | EFER_NXE), EXC_GP, "NX not in the model");
}

Test(cr, msrs)
{
    long64(0);
    cr_expect_eq(wrmsr(0x277, 0x0007040600070406ull), -1);
    cr_expect_eq(wrmsr(0x277, 0x0007040600070402ull), EXC_GP, "PAT type 2");
    cr_expect_eq(wrmsr(0x176, 0x4000000000000000ull), EXC_GP, "SYSENTER_EIP non-canonical");
    cr_expect_eq(wrmsr(0x176, 0xffffffff81000000ull), -1);
    cr_expect_eq(c->msr_sysenter_eip, 0xffffffff81000000ull);
    cr_expect_eq(wrmsr(0xc0000100u, 0x1234), -1);
    cr_expect_eq(c->seg[SEG_FS].base, 0x1234u);
    cr_expect_eq(wrmsr(0xc0000084u, BIT(32)), EXC_GP, "SFMASK bits 63:32");
    cr_expect_eq(wrmsr(0x2ff, 0xc06), -1);
    cr_expect_eq(wrmsr(0x2ff, 0xc02), EXC_GP, "MTRR default type 2");
    cr_expect_eq(wrmsr(0x201, 0xff), EXC_GP, "PHYSMASK reserved bits");
    cr_expect_eq(wrmsr(0x201, 0xfff0000800ull), -1);
    cr_expect_eq(wrmsr(0x12345678, 0), EXC_GP, "nobody owns it");
    u64 v;
    cr_expect_eq(rdmsr(0x12345678, &v), EXC_GP);
    cr_expect_eq(rdmsr(0xfe, &v), -1);
    cr_expect_eq(v & 0xff, 8u, "MTRRcap.VCNT");
    cr_expect_eq(wrmsr(0xfe, 0), EXC_GP, "MTRRcap is read-only");
    /* TSC: writing it moves IA32_TSC_ADJUST by the same amount */
    cr_expect_eq(wrmsr(0x10, 1000), -1);
    cr_expect_eq(cpu_tsc(c), 1000u);
    cr_expect_eq(rdmsr(0x3b, &v), -1);
    u64 adj = v;
    cr_expect_eq(wrmsr(0x3b, adj + 500), -1);
    cr_expect_eq(cpu_tsc(c), 1500u);
    fake_ns += 1000; /* 1 us at 2 GHz */
    cr_expect_eq(cpu_tsc(c), 3500u);
}

Test(cr, xcr0)
{
    long64(0);
    c->gpr[R_RCX] = 0;
    c->gpr[R_RAX] = 3;
    c->gpr[R_RDX] = 0;
    cr_expect_eq(RUN(0x0f, 0x01, 0xd1), EXC_UD, "XSETBV without CR4.OSXSAVE");
    cr_expect_eq(mov_cr(4, c->cr4 | CR4_OSXSAVE), -1);
    c->gpr[R_RCX] = 0;
    c->gpr[R_RAX] = 3;
    cr_expect_eq(RUN(0x0f, 0x01, 0xd1), -1);
    cr_expect_eq(c->xcr0, 3u);
    c->gpr[R_RAX] = 2;
    cr_expect_eq(RUN(0x0f, 0x01, 0xd1), EXC_GP, "x87 bit clear");
    c->gpr[R_RAX] = 7;
    cr_expect_eq(RUN(0x0f, 0x01, 0xd1), EXC_GP, "AVX not supported");
    c->gpr[R_RAX] = 3;
    c->gpr[R_RCX] = 1;
    cr_expect_eq(RUN(0x0f, 0x01, 0xd1), EXC_GP, "XCR1");
    c->gpr[R_RCX] = 0;
    c->gpr[R_RAX] = 0;
    cr_expect_eq(RUN(0x0f, 0x01, 0xd0), -1); /* xgetbv */
    cr_expect_eq(c->gpr[R_RAX], 3u);
    /* CPUID reflects CR4.OSXSAVE */
    c->gpr[R_RAX] = 1;
    c->gpr[R_RCX] = 0;
    cr_expect_eq(RUN(0x0f, 0xa2), -1);
    cr_expect(c->gpr[R_RCX] & BIT(27));
}

Test(cr, syscall_sysret_roundtrip)
{
    long64(0);
    c->msr_star = (0x23ull << 48) | (0x08ull << 32); /* SYSRET base 0x23, SYSCALL CS 8 */
    c->msr_lstar = 0x400000;
    c->msr_sfmask = FL_IF | FL_TF;
    c->rflags = FL_FIXED1 | FL_IF | FL_CF;
    long64(3);
    cr_expect_eq(RUN(0x0f, 0x05), -1);
    cr_expect_eq(c->rip, 0x400000u);
    cr_expect_eq(c->gpr[R_RCX], CODE + 2u);
    cr_expect_eq(c->gpr[R_R11], FL_FIXED1 | FL_IF | FL_CF);
    cr_expect_eq(c->rflags & FL_IF, 0u);
    cr_expect_eq(c->cpl, 0);
    cr_expect_eq(c->seg[SEG_CS].sel, 0x08);
    cr_expect_eq(c->seg[SEG_SS].sel, 0x10);
    /* back to 64-bit user mode */
    c->gpr[R_RCX] = 0x401000;
    cr_expect_eq(RUN(0x48, 0x0f, 0x07), -1);
    cr_expect_eq(c->rip, 0x401000u);
    cr_expect_eq(c->cpl, 3);
    cr_expect_eq(c->seg[SEG_CS].sel, 0x33);
    cr_expect_eq(c->seg[SEG_SS].sel, 0x2b);
    cr_expect(c->rflags & FL_IF);
    cr_expect_eq(c->mode, MODE_LONG64);
    /* non-canonical RCX: #GP at CPL 0 (Intel) */
    long64(0);
    c->gpr[R_RCX] = 0x0000800000000000ull;
    cr_expect_eq(RUN(0x48, 0x0f, 0x07), EXC_GP);
    cr_expect_eq(c->cpl, 0);
}

Test(cr, cpuid_instruction)
{
    /* Intel enumerates SYSCALL only in 64-bit mode */
    long64(0);
    c->gpr[R_RAX] = 0x80000001u;
    c->gpr[R_RCX] = 0;
    cr_expect_eq(RUN(0x0f, 0xa2), -1);
    cr_expect(c->gpr[R_RDX] & BIT(11));
    cr_expect(c->gpr[R_RDX] & BIT(29), "LM");
    prot32();
    c->gpr[R_RAX] = 0x80000001u;
    cr_expect_eq(RUN(0x0f, 0xa2), -1);
    cr_expect_not(c->gpr[R_RDX] & BIT(11));
    cr_expect(c->gpr[R_RDX] & BIT(29), "LM");
    /* leaf 0 in the low halves, upper halves cleared */
    long64(0);
    c->gpr[R_RAX] = 0xffffffff00000000ull;
    c->gpr[R_RBX] = ~0ull;
    cr_expect_eq(RUN(0x0f, 0xa2), -1);
    cr_expect_eq(c->gpr[R_RAX], 0x16u);
    cr_expect_eq(c->gpr[R_RBX], 0x756e6547u, "\"Genu\"");
}

/* Exceptions in 64-bit mode: each vector with its error code, the saved RIP (fault:
 * the instruction; trap: the next one), CR2, #DF from a contributory pair on its IST
 * stack, and how software INT n checks gate DPL.
 * (INTO and BOUND are #UD in 64-bit mode: see t32/exceptions32.c for #OF and #BR.
 *  #TS needs task switching, which nestor does not implement: not tested.) */
#include "rt.h"

#define NONCANON 0x8000000000000000ull

/* Runs one instruction (text) under ASM_TRY; returns its address in *at. */
#define TRY(at, insn, ...)                                                          \
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") "1: " insn "\n2:"         \
                 : "=&r"(at) : __VA_ARGS__ : "memory", "cc")
/* The same with rax and rdx clobbered. */
#define TRY_AD(at, insn, ...)                                                       \
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") "1: " insn "\n2:"         \
                 : "=&r"(at) : __VA_ARGS__ : "memory", "cc", "rax", "rdx")

static void expect(int vector, ulong error, ulong ip, const char *what)
{
    int v = exc_vector();
    if (vector == NO_EXCEPTION) {
        TEST_ASSERT(v == NO_EXCEPTION, "%s: no exception (got vector %d)", what, v);
        return;
    }
    TEST_ASSERT(v == vector && exc_last.error == error && exc_last.ip == ip,
                "%s: vector %d error %#lx rip %#lx (want %d %#lx %#lx)", what, v,
                (ulong)exc_last.error, (ulong)exc_last.ip, vector, error, ip);
}

static void test_faults(void)
{
    ulong at, after;
    TRY(at, "divl %1", "r"(0), "a"(1), "d"(0));
    expect(DE_VECTOR, 0, at, "#DE: div by zero");
    TRY(at, "idivl %1", "r"(-1), "a"(0x80000000), "d"(-1));
    expect(DE_VECTOR, 0, at, "#DE: idiv overflow");

    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("2f", "%0") "int3\n2:" : "=&r"(after) :: "memory");
    expect(BP_VECTOR, 0, after, "#BP: int3 is a trap (rip after it)");
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("2f", "%0") ".byte 0xf1\n2:" : "=&r"(after) :: "memory");
    if (on_qemu_tcg())
        test_skip("#DB: icebp: QEMU TCG raises #UD for INT1 (built without WANT_ICEBP)");
    else
        expect(DB_VECTOR, 0, after, "#DB: icebp (int1) is a trap");

    TRY(at, "ud2", "r"(0));
    expect(UD_VECTOR, 0, at, "#UD: ud2");
    TRY(at, ".byte 0xce", "r"(0)); /* INTO */
    expect(UD_VECTOR, 0, at, "#UD: into in 64-bit mode");
    TRY(at, ".byte 0x0f, 0x0b", "r"(0));
    expect(UD_VECTOR, 0, at, "#UD: raw 0f 0b");
    TRY(at, ".byte 0xf0, 0x01, 0xc0", "r"(0)); /* lock add %eax, %eax: register destination */
    expect(UD_VECTOR, 0, at, "#UD: lock on a register operand");

    /* #NM: TS set, x87 instruction */
    write_cr0(read_cr0() | CR0_TS);
    TRY(at, "fnop", "r"(0));
    expect(NM_VECTOR, 0, at, "#NM: fnop with CR0.TS");
    TRY(at, "wait", "r"(0));
    expect(NM_VECTOR, 0, at, "#NM: wait with CR0.TS and CR0.MP");
    asm volatile("clts");
    TRY(at, "fnop", "r"(0));
    expect(NO_EXCEPTION, 0, 0, "no #NM after clts");
    write_cr0(read_cr0() | CR0_EM);
    TRY(at, "fnop", "r"(0));
    expect(NM_VECTOR, 0, at, "#NM: fnop with CR0.EM");
    write_cr0(read_cr0() & ~CR0_EM);

    /* #GP */
    TRY_AD(at, "movq (%1), %%rax", "r"(NONCANON));
    expect(GP_VECTOR, 0, at, "#GP(0): non-canonical load");
    TRY_AD(at, "movq %%rax, (%1)", "r"(0x0000800000000000ull));
    expect(GP_VECTOR, 0, at, "#GP(0): first non-canonical address");
    if (on_qemu_tcg()) {
        test_skip("#GP(0) on rdmsr/wrmsr of nonexistent MSRs, reserved EFER bits and "
                  "reserved CR4 bits: QEMU TCG does not check them");
    } else {
        TRY(at, "wrmsr", "c"(0x12345678), "a"(0), "d"(0));
        expect(GP_VECTOR, 0, at, "#GP(0): wrmsr to a nonexistent MSR");
        TRY_AD(at, "rdmsr", "c"(0x12345678));
        expect(GP_VECTOR, 0, at, "#GP(0): rdmsr of a nonexistent MSR");
        TRY(at, "wrmsr", "c"(MSR_EFER), "a"((u32)rdmsr(MSR_EFER) | BIT(1)), "d"(0));
        expect(GP_VECTOR, 0, at, "#GP(0): wrmsr setting a reserved EFER bit");
    }
    if (!on_qemu_tcg()) { /* QEMU TCG takes these (and then triple-faults) */
        TRY(at, "mov %1, %%cr4", "r"(read_cr4() | BIT(31)));
        expect(GP_VECTOR, 0, at, "#GP(0): reserved CR4 bit");
        TRY(at, "mov %1, %%cr4", "r"(read_cr4() & ~CR4_PAE));
        expect(GP_VECTOR, 0, at, "#GP(0): clearing CR4.PAE in long mode");
        TRY(at, "mov %1, %%cr0", "r"(read_cr0() & ~CR0_PG));
        expect(GP_VECTOR, 0, at, "#GP(0): clearing CR0.PG in 64-bit mode");
        TRY(at, "mov %1, %%cr0", "r"((read_cr0() | BIT(29)) & ~BIT(30)));
        expect(GP_VECTOR, 0, at, "#GP(0): CR0.NW without CR0.CD");
    }
    TRY(at, "mov %1, %%cr4", "r"(read_cr4() ^ CR4_LA57));
    expect(GP_VECTOR, 0, at, "#GP(0): toggling CR4.LA57 in 64-bit mode");
    TRY(at, "mov %1, %%ds", "r"(SEL_KCODE64 + 0x1000u));
    expect(GP_VECTOR, 0x1010, at, "#GP(sel): selector beyond the GDT limit");
    TRY(at, "mov %1, %%ds", "r"(SEL_TSS));
    expect(GP_VECTOR, SEL_TSS, at, "#GP(sel): TSS selector into DS");
}

/* null SS at CPL 0 is allowed in 64-bit mode: the check above must not fault */
static void test_null_ss(void)
{
    ulong at;
    TRY(at, "mov %1, %%ss\n\tmov %2, %%ss", "r"(0), "r"(SEL_KDATA));
    (void)at;
    TEST_ASSERT(exc_vector() == NO_EXCEPTION, "mov ss, null at CPL 0 in 64-bit mode: allowed");
}

static void test_segment_faults(void)
{
    ulong at;
    int np = GDT_FIRST_FREE, ro = GDT_FIRST_FREE + 1;
    gdt_set(np, 0, 0xfffff, DESC_DATA & 0x7f, DESC_G | DESC_DB); /* P = 0 */
    TRY(at, "mov %1, %%ds", "r"((u16)(np * 8)));
    expect(NP_VECTOR, np * 8, at, "#NP(sel): not-present data segment into DS");
    TRY(at, "mov %1, %%ss", "r"((u16)(np * 8)));
    expect(SS_VECTOR, np * 8, at, "#SS(sel): not-present segment into SS");
    gdt_set(ro, 0, 0xfffff, 0x90, DESC_G | DESC_DB); /* read-only data */
    TRY(at, "mov %1, %%ss", "r"((u16)(ro * 8)));
    expect(GP_VECTOR, ro * 8, at, "#GP(sel): read-only segment into SS");
    TRY(at, "mov %1, %%ds", "r"((u16)(SEL_UDATA)));
    expect(NO_EXCEPTION, 0, 0, "DS = DPL-3 data at CPL 0: allowed");
    asm volatile("mov %0, %%ds" ::"r"(SEL_KDATA));
    TRY(at, "mov %1, %%ss", "r"((u16)(SEL_UDATA)));
    expect(GP_VECTOR, SEL_UDATA & ~3, at, "#GP(sel): SS with DPL != CPL");
    TRY_AD(at, "movq (%1), %%rax", "r"(NONCANON));
    expect(GP_VECTOR, 0, at, "#GP(0): non-canonical via RAX");
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") "push %%rbp\n\tmov %1, %%rbp\n"
                 "1: movq (%%rbp), %%rax\n2:\tpop %%rbp"
                 : "=&r"(at) : "r"(NONCANON) : "rax", "memory");
    if (on_qemu_tcg())
        test_skip("#SS(0) for a non-canonical RBP-based access: QEMU TCG raises #GP(0)");
    else
        expect(SS_VECTOR, 0, at, "#SS(0): non-canonical via RBP");
}

static void test_page_fault(void)
{
    ulong at;
    u64 va = 5ull << 30; /* above the 4 GiB identity map */
    TRY_AD(at, "movq (%1), %%rax", "r"(va));
    expect(PF_VECTOR, 0, at, "#PF: read of an unmapped page");
    TEST_EQ(exc_last.cr2, va, "#PF: CR2 = faulting address");
    TRY(at, "movb %%al, 3(%1)", "r"(va));
    expect(PF_VECTOR, PFEC_W, at, "#PF: write of an unmapped page");
    TEST_EQ(exc_last.cr2, va + 3, "#PF: CR2 includes the offset");
    ulong target = va;
    /* the call pushes its return address before the fetch faults: restore RSP */
    asm volatile(ASM_TRY("2f") "mov %%rsp, %%r11\n\t" "call *%0\n2:\t" "mov %%r11, %%rsp"
                 :: "r"(target) : "r11", "memory");
    at = target;
    expect(PF_VECTOR, HAS_NX() ? PFEC_I : 0, target, "#PF: fetch of an unmapped page");
}

static void test_mf_xm(void)
{
    ulong at;
    /* x87: unmask ZE, divide by zero, the next waiting instruction reports #MF */
    u16 cw = 0x037f & ~BIT(2);
    asm volatile("fninit; fldcw %0" ::"m"(cw));
    asm volatile("fld1; fldz; fdivrp %%st, %%st(1)" ::: "memory"); /* 0 / ... -> 1/0 */
    TRY(at, "fwait", "r"(0));
    expect(MF_VECTOR, 0, at, "#MF: pending x87 #Z at the next fwait");
    u16 sw;
    asm volatile("fnstsw %0" : "=m"(sw));
    TEST_ASSERT(sw & BIT(2), "x87: ZE set in FSW (%#x)", sw);
    asm volatile("fninit");

    /* SSE: unmask ZM, divss by zero -> #XM */
    u32 mxcsr = 0x1f80 & ~BIT(9), one = 0x3f800000, zero = 0;
    asm volatile("ldmxcsr %0" ::"m"(mxcsr));
    TRY(at, "movd %1, %%xmm0\n\tmovd %2, %%xmm1\n1: divss %%xmm1, %%xmm0", "r"(one), "r"(zero));
    (void)at;
    int v = exc_vector();
    bool qemu = on_qemu_tcg(); /* QEMU 7.2 TCG sets MXCSR flags but never raises #XM */
    if (qemu)
        test_skip("#XM: QEMU TCG does not deliver unmasked SSE exceptions");
    else
        TEST_EQ(v, XM_VECTOR, "#XM: divss by zero with ZM clear");
    u32 after = 0;
    asm volatile("stmxcsr %0" : "=m"(after));
    TEST_ASSERT(after & BIT(2), "#XM: MXCSR.ZE set (%#x)", after);
    write_cr4(read_cr4() & ~CR4_OSXMMEXCPT);
    mxcsr = 0x1f80 & ~BIT(9);
    asm volatile("ldmxcsr %0" ::"m"(mxcsr));
    TRY(at, "movd %1, %%xmm0\n\tmovd %2, %%xmm1\n\tdivss %%xmm1, %%xmm0", "r"(one), "r"(zero));
    v = exc_vector();
    if (!qemu)
        TEST_EQ(v, UD_VECTOR, "#UD instead of #XM when CR4.OSXMMEXCPT = 0");
    write_cr4(read_cr4() | CR4_OSXMMEXCPT);
    mxcsr = 0x1f80;
    asm volatile("ldmxcsr %0" ::"m"(mxcsr));
    write_cr4(read_cr4() & ~CR4_OSFXSR);
    TRY(at, "xorps %%xmm0, %%xmm0", "r"(0));
    expect(UD_VECTOR, 0, at, "#UD: SSE with CR4.OSFXSR = 0");
    write_cr4(read_cr4() | CR4_OSFXSR);
}

static ulong user_misaligned(ulong p)
{
    return *(volatile u32 *)(p + 1);
}
static void misaligned_in_user(void *arg)
{
    run_user(user_misaligned, (ulong)arg, FL_AC);
}
static ulong user_hlt(ulong unused)
{
    (void)unused;
    asm volatile("hlt");
    return 0;
}
static void hlt_in_user(void *arg)
{
    (void)arg;
    run_user(user_hlt, 0, 0);
}
static ulong user_int(ulong vec)
{
    if (vec == 0x40)
        asm volatile("int $0x40");
    else
        asm volatile("int3");
    return 0;
}
static void int40_in_user(void *arg)
{
    (void)arg;
    run_user(user_int, 0x40, 0);
}

static volatile ulong bp_cs;
static void bp_handler(struct exc_frame *f) { bp_cs = f->cs; }

/* Error code naming an IDT entry: index << 3 | IDT (2). QEMU 7.2 TCG computes the index
 * as vector * 2 in 64-bit mode (16-byte gates): expect its value there. */
static ulong idt_error(int vector)
{
    return (ulong)vector * (on_qemu_tcg() ? 16 : 8) + 2;
}

static void test_user_faults(void)
{
    static u64 data[2];
    write_cr0(read_cr0() | CR0_AM);
    int v = exc_catch(misaligned_in_user, data);
    if (on_qemu_tcg())
        test_skip("#AC: QEMU TCG does not implement alignment checking");
    else
        TEST_ASSERT(v == AC_VECTOR && exc_last.error == 0 && (exc_last.cs & 3) == 3,
                    "#AC(0): misaligned user access with CR0.AM and EFLAGS.AC (vector %d)", v);
    write_cr0(read_cr0() & ~CR0_AM);
    v = exc_catch(misaligned_in_user, data);
    TEST_EQ(v, NO_EXCEPTION, "no #AC with CR0.AM clear");
    TEST_EQ(run_user(user_misaligned, (ulong)data, 0), 0, "run_user returns the user function's value");

    v = exc_catch(hlt_in_user, NULL);
    TEST_ASSERT(v == GP_VECTOR && exc_last.error == 0 && (exc_last.cs & 3) == 3,
                "#GP(0): hlt at CPL 3 (vector %d cs %#lx)", v, (ulong)exc_last.cs);
    v = exc_catch(int40_in_user, NULL);
    TEST_ASSERT(v == GP_VECTOR && exc_last.error == idt_error(0x40),
                "#GP(vec*8+2): int 0x40 at CPL 3 through a DPL-0 gate (error %#lx)", (ulong)exc_last.error);
    exc_set_handler(BP_VECTOR, bp_handler);
    TEST_EQ(run_user(user_int, 3, 0), 0, "int3 at CPL 3 through the DPL-3 #BP gate returns");
    TEST_EQ(bp_cs & 3, 3, "int3 at CPL 3 reached the #BP handler from CPL 3");
    exc_set_handler(BP_VECTOR, NULL);
}

/* #DF: #GP while the #GP gate is not present -> #NP (contributory) -> #DF */
static void gp_with_missing_gate(void *arg)
{
    (void)arg;
    *(volatile u64 *)NONCANON = 1;
}

static volatile ulong df_rsp;
static void df_handler(struct exc_frame *f)
{
    df_rsp = (ulong)&f;
    exc_last.vector = DF_VECTOR;
    exc_last.error = f->error;
    exc_last.ip = f->ip;
    /* #DF is an abort: do not return; leave through the catch */
    exc_set_handler(DF_VECTOR, NULL);
    exc_dispatch(f);
}

static void test_double_fault(void)
{
    exc_set_handler(DF_VECTOR, df_handler);
    idt_set_gate(GP_VECTOR, SEL_KCODE, (ulong)idt_stub_table[GP_VECTOR], 0xe, 0, 0);
    /* clear P by rewriting the gate's access byte */
    idt_clear_present(GP_VECTOR);
    int v = exc_catch(gp_with_missing_gate, NULL);
    idt_reset_gate(GP_VECTOR);
    TEST_EQ(v, DF_VECTOR, "#DF: #GP with a not-present #GP gate");
    TEST_EQ(exc_last.error, 0, "#DF: error code 0");
    ulong ist1 = (ulong)ist_stacks[IST_DF];
    TEST_ASSERT(df_rsp >= ist1 && df_rsp < ist1 + sizeof(ist_stacks[0]),
                "#DF: handler ran on IST%d (rsp %#lx)", IST_DF, df_rsp);
    exc_set_handler(DF_VECTOR, NULL);

    /* #NP for the missing gate itself: error code = IDT vector, IDT bit, EXT bit */
    idt_clear_present(0x41);
    ulong at;
    TRY(at, "int $0x41", "r"(0));
    expect(NP_VECTOR, idt_error(0x41), at, "#NP(vec*8+2): int n to a not-present gate");
    idt_reset_gate(0x41);
}

static volatile int soft_hits;
static volatile ulong soft_rip;
static void soft_handler(struct exc_frame *f)
{
    soft_hits++;
    soft_rip = f->ip;
}

static void test_soft_int(void)
{
    exc_set_handler(0x42, soft_handler);
    ulong after;
    asm volatile(ASM_LABEL_ADDR("1f", "%0") "int $0x42\n1:" : "=&r"(after) :: "memory");
    TEST_ASSERT(soft_hits == 1 && soft_rip == after, "int 0x42: handler ran once, rip after int");
    /* int with an error-code vector pushes no error code: vector 14 via INT */
    exc_set_handler(0x42, NULL);
}

/* Table-driven: instruction bytes run from a buffer (followed by RET), with the vector
 * and error code they must raise. */
struct insn_case {
    const char *name;
    u8 len, bytes[7];
    int vector;
};

/* one-byte opcodes that are invalid in 64-bit mode */
static const struct insn_case invalid64[] = {
    {"push es", 1, {0x06}, UD_VECTOR},     {"pop es", 1, {0x07}, UD_VECTOR},
    {"push cs", 1, {0x0e}, UD_VECTOR},     {"push ss", 1, {0x16}, UD_VECTOR},
    {"pop ss", 1, {0x17}, UD_VECTOR},      {"push ds", 1, {0x1e}, UD_VECTOR},
    {"pop ds", 1, {0x1f}, UD_VECTOR},      {"daa", 1, {0x27}, UD_VECTOR},
    {"das", 1, {0x2f}, UD_VECTOR},         {"aaa", 1, {0x37}, UD_VECTOR},
    {"aas", 1, {0x3f}, UD_VECTOR},         {"pusha", 1, {0x60}, UD_VECTOR},
    {"popa", 1, {0x61}, UD_VECTOR},        {"aam", 2, {0xd4, 0x0a}, UD_VECTOR},
    {"aad", 2, {0xd5, 0x0a}, UD_VECTOR},   {"salc", 1, {0xd6}, UD_VECTOR},
    {"call far imm", 7, {0x9a, 0, 0, 0, 0, 0x10, 0}, UD_VECTOR},
    {"jmp far imm", 7, {0xea, 0, 0, 0, 0, 0x10, 0}, UD_VECTOR},
    {"lds", 2, {0xc5, 0x00}, -2 /* VEX prefix when AVX exists */},
    {"ud0", 3, {0x0f, 0xff, 0xc0}, UD_VECTOR},
    {"ud1", 3, {0x0f, 0xb9, 0xc0}, UD_VECTOR},
    {"mov cs, ax", 2, {0x8e, 0xc8}, UD_VECTOR},
    {"lock nop", 2, {0xf0, 0x90}, UD_VECTOR},
    {"rsm outside SMM", 2, {0x0f, 0xaa}, UD_VECTOR},
};

/* privileged instructions at CPL 3 (IOPL 0): #GP(0) */
static const struct insn_case privileged[] = {
    {"hlt", 1, {0xf4}, GP_VECTOR},
    {"cli", 1, {0xfa}, GP_VECTOR},
    {"sti", 1, {0xfb}, GP_VECTOR},
    {"in al, 0x80", 2, {0xe4, 0x80}, GP_VECTOR},
    {"out 0x80, al", 2, {0xe6, 0x80}, GP_VECTOR},
    {"insb", 1, {0x6c}, GP_VECTOR},
    {"mov rax, cr0", 3, {0x0f, 0x20, 0xc0}, GP_VECTOR},
    {"mov cr3, rax", 3, {0x0f, 0x22, 0xd8}, GP_VECTOR},
    {"mov rax, dr7", 3, {0x0f, 0x21, 0xf8}, GP_VECTOR},
    {"clts", 2, {0x0f, 0x06}, GP_VECTOR},
    {"rdmsr", 2, {0x0f, 0x32}, GP_VECTOR},
    {"wrmsr", 2, {0x0f, 0x30}, GP_VECTOR},
    {"invd", 2, {0x0f, 0x08}, GP_VECTOR},
    {"wbinvd", 2, {0x0f, 0x09}, GP_VECTOR},
    {"invlpg [rax]", 3, {0x0f, 0x01, 0x38}, GP_VECTOR},
    {"lgdt [rax]", 3, {0x0f, 0x01, 0x10}, GP_VECTOR},
    {"lidt [rax]", 3, {0x0f, 0x01, 0x18}, GP_VECTOR},
    {"lmsw ax", 3, {0x0f, 0x01, 0xf0}, GP_VECTOR},
    {"ltr ax", 3, {0x0f, 0x00, 0xd8}, GP_VECTOR},
    {"lldt ax", 3, {0x0f, 0x00, 0xd0}, GP_VECTOR},
    {"swapgs", 3, {0x0f, 0x01, 0xf8}, GP_VECTOR},
    {"sysret", 3, {0x48, 0x0f, 0x07}, -3 /* #UD with EFER.SCE=0, else #GP */},
};

static u8 insn_buf[64] ALIGNED(16);

static void load_case(const struct insn_case *c)
{
    memcpy(insn_buf, c->bytes, c->len);
    insn_buf[c->len] = 0xc3; /* ret */
}

static int run_buf(void)
{
    static u64 scratch[4];
    asm volatile(ASM_TRY("1f") "mov %%rsp, %%r11\n\tcall *%0\n1:\tmov %%r11, %%rsp"
                 ::"r"(insn_buf), "a"(scratch) : "r11", "rcx", "rdx", "memory", "cc");
    return exc_vector();
}

static ulong user_run_buf(ulong unused)
{
    (void)unused;
    return (ulong)(run_buf() & 0xff) | ((ulong)exc_last.error << 8);
}

static void check_insn_tables(void)
{
    bool avx = cpu_has(1, 0, 2, 28);
    for (unsigned i = 0; i < ARRAY_SIZE(invalid64); i++) {
        const struct insn_case *c = &invalid64[i];
        if (c->vector == -2 && avx)
            continue; /* c5 is a VEX prefix there */
        load_case(c);
        int v = run_buf();
        TEST_ASSERT(v == UD_VECTOR, "64-bit mode: %s raises #UD (vector %d)", c->name, v);
    }
    bool sce = rdmsr(MSR_EFER) & EFER_SCE;
    for (unsigned i = 0; i < ARRAY_SIZE(privileged); i++) {
        const struct insn_case *c = &privileged[i];
        int want = c->vector == -3 ? (sce ? GP_VECTOR : UD_VECTOR) : c->vector;
        load_case(c);
        ulong r = run_user(user_run_buf, 0, 0);
        TEST_ASSERT((int)(r & 0xff) == want && (r >> 8) == 0,
                    "CPL 3: %s raises vector %d error 0 (got %lu error %#lx)", c->name, want,
                    r & 0xff, r >> 8);
    }
    /* IOPL 3 lets CPL 3 use CLI/STI and ports */
    insn_buf[0] = 0xfa;
    insn_buf[1] = 0xfb;
    insn_buf[2] = 0xc3;
    ulong r = run_user(user_run_buf, 0, 3ul << 12);
    TEST_EQ(r & 0xff, (u8)NO_EXCEPTION, "CPL 3 with IOPL 3: cli/sti allowed");
}

void test_main(void)
{
    test_faults();
    test_null_ss();
    test_segment_faults();
    test_page_fault();
    test_mf_xm();
    test_user_faults();
    test_double_fault();
    test_soft_int();
    check_insn_tables();
}

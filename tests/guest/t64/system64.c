/* System instructions in 64-bit mode: SGDT/SIDT/SLDT/STR/SMSW and UMIP, LTR (busy bit)
 * and LLDT with 16-byte descriptors, LAR/LSL on system descriptors, the TSS I/O
 * permission bitmap, CLI/STI/POPF at CPL 3, LMSW/CLTS, MOV CR/EFER rules, MSR validity
 * (PAT, MTRR, SYSENTER), XSETBV/XGETBV, INVPCID, SYSENTER/SYSEXIT (Intel) and RDPMC.
 * Checks QEMU TCG does not perform (reserved bits of CR4/EFER/PAT, canonical MSR values,
 * RDPMC) are skipped there with a message. */
#include "rt.h"

#define TSS2_INDEX GDT_FIRST_FREE        /* 16 bytes */
#define LDT_INDEX (GDT_FIRST_FREE + 2)   /* 16 bytes */
#define SEL_TSS2 (TSS2_INDEX << 3)
#define SEL_LDT (LDT_INDEX << 3)
#define SEL_LDT_DATA 0x0c                /* LDT entry 1, TI = 1, RPL 0 */
#define NONCANON 0x0100000000000000ull   /* non-canonical for 4- and 5-level paging */

#define TRY(insn, ...) asm volatile(ASM_TRY("1f") insn "\n1:" ::__VA_ARGS__ : "memory", "cc")

static bool zf_after_lar(u16 sel, ulong *out)
{
    u8 zf;
    ulong v = 0;
    asm volatile("lar %2, %0\n\tsetz %1" : "+r"(v), "=r"(zf) : "r"((ulong)sel) : "cc");
    *out = v;
    return zf;
}

static bool zf_after_lsl(u16 sel, ulong *out)
{
    u8 zf;
    ulong v = 0;
    asm volatile("lsl %2, %0\n\tsetz %1" : "+r"(v), "=r"(zf) : "r"((ulong)sel) : "cc");
    *out = v;
    return zf;
}

/* ---- descriptor-table registers and UMIP ---- */

static ulong user_sgdt(ulong unused)
{
    (void)unused;
    struct desc_ptr d;
    asm volatile("sgdt %0" : "=m"(d));
    return d.base;
}
static void sgdt_in_user(void *unused)
{
    (void)unused;
    run_user(user_sgdt, 0, 0);
}

static void check_store_tables(void)
{
    struct desc_ptr g, i;
    asm volatile("sgdt %0" : "=m"(g));
    asm volatile("sidt %0" : "=m"(i));
    TEST_EQ(g.base, (ulong)gdt, "SGDT base");
    TEST_EQ(g.limit, sizeof(u64) * GDT_ENTRIES - 1, "SGDT limit");
    TEST_EQ(i.limit, 256 * 16 - 1, "SIDT limit: 256 16-byte gates");
    struct desc_ptr small = { 0x7f, i.base };
    asm volatile("lidt %0" ::"m"(small));
    struct desc_ptr back;
    asm volatile("sidt %0" : "=m"(back));
    TEST_ASSERT(back.limit == 0x7f && back.base == i.base, "LIDT then SIDT");
    asm volatile("lidt %0" ::"m"(i));

    u16 tr, ldt;
    asm volatile("str %0" : "=r"(tr));
    asm volatile("sldt %0" : "=r"(ldt));
    TEST_EQ(tr, SEL_TSS, "STR");
    TEST_EQ(ldt, 0, "SLDT: no LDT loaded");
    ulong msw = 0xdead0000deadull;
    asm volatile("smsw %k0" : "+r"(msw));
    TEST_EQ(msw, (u32)read_cr0(), "SMSW r32: CR0[31:0], zero-extended");

    TEST_EQ(run_user(user_sgdt, 0, 0), (ulong)gdt, "SGDT at CPL 3 without UMIP");
    if (cpu_has(7, 0, 2, 2)) {
        write_cr4(read_cr4() | BIT(11));
        int e = exc_catch(sgdt_in_user, NULL);
        TEST_ASSERT(e == GP_VECTOR && exc_last.error == 0, "SGDT at CPL 3 with CR4.UMIP: #GP(0)");
        asm volatile("sgdt %0" : "=m"(g));
        TEST_EQ(g.base, (ulong)gdt, "SGDT at CPL 0 with CR4.UMIP");
        write_cr4(read_cr4() & ~BIT(11));
    } else {
        test_skip("UMIP: not in CPUID");
    }
}

/* ---- TR, LDTR, I/O bitmap ---- */

/* A second 64-bit TSS with an I/O bitmap that allows port 0x80 only. */
#define IOMAP_OFF 0x68u
static u8 tss2[IOMAP_OFF + 8192 + 1] ALIGNED(16);
static u64 ldt[2];

static void set_system_desc(int index, ulong base, u32 limit, u8 access)
{
    gdt_set(index, (u32)base, limit, access, 0);
    gdt[index + 1] = (u64)base >> 32;
}

static ulong user_io(ulong port)
{
    outb((u16)port, 0);
    (void)inw((u16)port);
    return 1;
}
/* the imm8 forms, with ports >= 0x80 (an unsigned immediate) */
static ulong user_io_imm(ulong deny)
{
    u8 v;
    if (deny)
        asm volatile("inb $0x82, %0" : "=a"(v));
    else
        asm volatile("inb $0x80, %0\n\toutb %0, $0x81" : "=a"(v));
    return v;
}
static void io_imm_in_user(void *deny)
{
    run_user(user_io_imm, (ulong)deny, 0);
}
static volatile ulong io_port, io_flags;
static void io_in_user(void *unused)
{
    (void)unused;
    run_user(user_io, io_port, io_flags);
}
static int try_user_io(ulong port, ulong flags)
{
    io_port = port;
    io_flags = flags;
    return exc_catch(io_in_user, NULL);
}

static void check_tr_ldtr_iomap(void)
{
    /* LTR of the busy runtime TSS */
    TRY("ltr %w0", "r"(SEL_TSS));
    TEST_ASSERT(exc_vector() == GP_VECTOR && exc_last.error == SEL_TSS, "LTR of a busy TSS: #GP(sel)");

    memcpy(tss2, &tss, sizeof(tss));
    memset(tss2 + IOMAP_OFF, 0xff, sizeof(tss2) - IOMAP_OFF);
    tss2[IOMAP_OFF + 0x80 / 8] &= (u8)~BIT(0x80 % 8);   /* port 0x80 */
    tss2[IOMAP_OFF + 0x81 / 8] &= (u8)~BIT(0x81 % 8);   /* port 0x81 */
    ((struct tss *)tss2)->iomap_base = IOMAP_OFF;
    set_system_desc(TSS2_INDEX, (ulong)tss2, sizeof(tss2) - 1, 0x89);
    asm volatile("ltr %w0" ::"r"(SEL_TSS2));
    TEST_EQ(read_tr(), SEL_TSS2, "LTR loads TR");
    TEST_EQ((gdt[TSS2_INDEX] >> 40) & 0xf, 0xb, "LTR marks the descriptor busy");
    ulong v;
    bool ok = zf_after_lar(SEL_TSS2, &v);
    TEST_ASSERT(ok && (v & 0xff00) == 0x8b00, "LAR of a busy 64-bit TSS (%#lx)", v);
    ok = zf_after_lsl(SEL_TSS2, &v);
    TEST_ASSERT(ok && v == sizeof(tss2) - 1, "LSL of a 64-bit TSS (%#lx)", v);

    /* CPL 3 with IOPL 0: the bitmap decides, per byte of the access */
    TEST_EQ(try_user_io(0x80, 0), NO_EXCEPTION, "I/O bitmap allows ports 0x80-0x81");
    int e = try_user_io(0x82, 0);
    TEST_ASSERT(e == GP_VECTOR && exc_last.error == 0, "I/O bitmap denies port 0x82: #GP(0)");
    e = try_user_io(0x81, 0); /* OUTB 0x81 passes, INW 0x81 needs 0x82 too */
    TEST_ASSERT(e == GP_VECTOR, "I/O bitmap: a 2-byte access needs both bits clear");
    TEST_EQ(try_user_io(0x82, 3ul << 12), NO_EXCEPTION, "IOPL 3 bypasses the bitmap");
    TEST_EQ(exc_catch(io_imm_in_user, (void *)0), NO_EXCEPTION, "IN/OUT imm8 0x80/0x81 allowed");
    TEST_EQ(exc_catch(io_imm_in_user, (void *)1), GP_VECTOR, "IN imm8 0x82 denied");

    /* back to the runtime's TSS: it is busy, so free it first */
    gdt[SEL_TSS >> 3] &= ~(2ull << 40);
    asm volatile("ltr %w0" ::"r"(SEL_TSS));
    TEST_EQ(read_tr(), SEL_TSS, "LTR back to the runtime TSS");
    e = try_user_io(0x80, 0);
    TEST_ASSERT(e == GP_VECTOR, "runtime TSS has no bitmap: #GP at IOPL 0");

    /* LLDT with a 16-byte descriptor, a data segment in the LDT */
    ldt[1] = 0xabcdull | (0x92ull << 40); /* data, base 0, byte-granular limit 0xabcd */
    set_system_desc(LDT_INDEX, (ulong)ldt, sizeof(ldt) - 1, 0x82);
    asm volatile("lldt %w0" ::"r"(SEL_LDT));
    u16 sel;
    asm volatile("sldt %0" : "=r"(sel));
    TEST_EQ(sel, SEL_LDT, "LLDT/SLDT");
    ok = zf_after_lsl(SEL_LDT_DATA, &v);
    TEST_ASSERT(ok && v == 0xabcd, "LSL of an LDT data segment (%#lx)", v);
    TEST_ASSERT(zf_after_lar(SEL_LDT, &v), "LAR of an LDT descriptor");
    TRY("lldt %w0", "r"(SEL_TSS));
    TEST_ASSERT(exc_vector() == GP_VECTOR && exc_last.error == SEL_TSS, "LLDT of a TSS: #GP(sel)");
    asm volatile("lldt %w0" ::"r"(0));
    TEST_ASSERT(!zf_after_lsl(SEL_LDT_DATA, &v), "LSL through a null LDT: ZF=0");
    /* a 16-bit TSS type does not exist in IA-32e mode */
    gdt_set(TSS2_INDEX, 0x1000, 0x67, 0x81, 0);
    if (on_qemu_tcg())
        test_skip("LSL of a 16-bit TSS type in long mode: QEMU TCG accepts the legacy types");
    else
        TEST_ASSERT(!zf_after_lsl(SEL_TSS2, &v), "LSL of a 16-bit TSS type in long mode: ZF=0");
}

/* ---- IF and IOPL at CPL 3 ---- */

static ulong user_cli(ulong unused)
{
    (void)unused;
    cli();
    return read_flags();
}
static volatile ulong cli_flags;
static void cli_in_user(void *unused)
{
    (void)unused;
    run_user(user_cli, 0, cli_flags);
}
static ulong user_popf(ulong unused)
{
    (void)unused;
    write_flags((3ul << 12) | BIT(1)); /* tries IOPL 3 and IF 0 */
    return read_flags();
}

static void check_if_iopl(void)
{
    cli_flags = FL_IF;
    int e = exc_catch(cli_in_user, NULL);
    TEST_ASSERT(e == GP_VECTOR && exc_last.error == 0, "CLI at CPL 3, IOPL 0: #GP(0)");
    TEST_EQ(run_user(user_cli, 0, FL_IF | (3ul << 12)) & FL_IF, 0, "CLI at CPL 3, IOPL 3");
    ulong f = run_user(user_popf, 0, FL_IF);
    TEST_ASSERT((f & FL_IF) && !(f & (3ul << 12)), "POPF at CPL 3 keeps IF and IOPL (%#lx)", f);
}

/* ---- CR0 shortcuts, CR4, EFER ---- */

static void check_cr_rules(void)
{
    ulong cr0 = read_cr0();
    asm volatile("lmsw %w0" ::"r"((u16)(cr0 & 0xe)));
    TEST_ASSERT(read_cr0() & CR0_PE, "LMSW cannot clear PE");
    asm volatile("lmsw %w0" ::"r"((u16)((cr0 & 0xf) | CR0_TS)));
    TEST_ASSERT(read_cr0() & CR0_TS, "LMSW sets TS");
    asm volatile("clts");
    TEST_ASSERT(!(read_cr0() & CR0_TS), "CLTS");
    write_cr0(cr0);

    bool qemu = on_qemu_tcg();
    if (qemu) {
        test_skip("clearing CR0.PG in 64-bit mode: QEMU TCG lets it through");
    } else {
        TRY("mov %0, %%cr0", "r"(cr0 & ~CR0_PG));
        TEST_EQ(exc_vector(), GP_VECTOR, "clearing CR0.PG in 64-bit mode: #GP");
    }
    if (qemu) {
        test_skip("clearing CR4.PAE in IA-32e mode: QEMU TCG lets it through");
    } else {
        TRY("mov %0, %%cr4", "r"(read_cr4() & ~CR4_PAE));
        TEST_EQ(exc_vector(), GP_VECTOR, "clearing CR4.PAE in IA-32e mode: #GP");
    }
    if (HAS_LA57()) {
        TRY("mov %0, %%cr4", "r"(read_cr4() ^ CR4_LA57));
        TEST_EQ(exc_vector(), GP_VECTOR, "changing CR4.LA57 in IA-32e mode: #GP");
    }
    if (HAS_PCID()) {
        ulong cr3 = read_cr3();
        TRY("mov %0, %%cr3", "r"(cr3 | 1));
        TEST_EQ(exc_vector(), NO_EXCEPTION, "CR3[11:0] = 1 without PCIDE");
        TRY("mov %0, %%cr4", "r"(read_cr4() | CR4_PCIDE));
        TEST_EQ(exc_vector(), GP_VECTOR, "setting PCIDE with CR3[11:0] != 0: #GP");
        write_cr3(cr3);
        write_cr4(read_cr4() | CR4_PCIDE);
        write_cr3(cr3 | 5 | BIT(63));
        TEST_EQ(read_cr3(), cr3 | 5, "MOV CR3 with bit 63 (no flush): bit 63 not stored");
        if (!qemu) {
            TRY("mov %0, %%cr0", "r"(cr0 & ~CR0_PG));
            TEST_EQ(exc_vector(), GP_VECTOR, "clearing PG with PCIDE: #GP");
        }
        write_cr3(cr3);
        write_cr4(read_cr4() & ~CR4_PCIDE);
    }
    if (qemu) {
        test_skip("EFER.LME change while paging: QEMU TCG does not check it");
    } else {
        TRY("wrmsr", "c"(MSR_EFER), "a"((u32)(rdmsr(MSR_EFER) & ~EFER_LME)), "d"(0));
        TEST_EQ(exc_vector(), GP_VECTOR, "clearing EFER.LME with paging on: #GP");
    }
}

/* ---- MSRs ---- */

static void check_msrs(void)
{
    u64 pat = rdmsr(0x277);
    wrmsr(0x277, 0x0007010600070106ull);
    TEST_EQ(rdmsr(0x277), 0x0007010600070106ull, "PAT write/read");
    wrmsr(0x277, pat);
    u64 cap = rdmsr(0xfe);
    TEST_ASSERT((cap & 0xff) >= 1 && (cap & BIT(8)), "MTRRcap: variable and fixed ranges (%#llx)",
                (unsigned long long)cap);
    u64 def = rdmsr(0x2ff);
    wrmsr(0x2ff, 0xc06);
    TEST_EQ(rdmsr(0x2ff), 0xc06, "MTRR default type write/read");
    wrmsr(0x2ff, def);
    if (on_qemu_tcg()) {
        test_skip("WRMSR TSC, PAT/MTRR type and canonical MSR checks: QEMU TCG's RDTSC "
                  "ignores TSC writes, and it does not check the others");
        return;
    }
    u64 t0 = rdtsc();
    wrmsr(0x10, 1000);
    u64 t1 = rdtsc();
    TEST_ASSERT(t1 >= 1000 && t1 < 1000 + 100000000ull, "WRMSR TSC sets the counter (%llu)",
                (unsigned long long)t1);
    wrmsr(0x10, t0);
    int e = wrmsr_safe(0x277, 0x0007040600070402ull);
    TEST_EQ(e, GP_VECTOR, "PAT with reserved memory type 2: #GP");
    e = wrmsr_safe(0x2ff, 0xc03);
    TEST_EQ(e, GP_VECTOR, "MTRR default type 3: #GP");
    e = wrmsr_safe(MSR_SYSENTER_EIP, NONCANON);
    TEST_EQ(e, GP_VECTOR, "non-canonical SYSENTER_EIP: #GP");
    e = wrmsr_safe(MSR_KERNEL_GS_BASE, NONCANON);
    TEST_EQ(e, GP_VECTOR, "non-canonical KERNEL_GS_BASE: #GP");
    e = wrmsr_safe(MSR_FMASK, BIT(32));
    TEST_EQ(e, GP_VECTOR, "FMASK bits 63:32: #GP");
    TRY("rdpmc", "c"(0x100));
    TEST_EQ(exc_vector(), GP_VECTOR, "RDPMC of a counter that does not exist: #GP");
}

/* ---- XCR0 ---- */

static ulong user_xsetbv(ulong unused)
{
    (void)unused;
    write_xcr0(3);
    return 0;
}
static void xsetbv_in_user(void *unused)
{
    (void)unused;
    run_user(user_xsetbv, 0, 0);
}

static void check_xcr0(void)
{
    if (!HAS_XSAVE()) {
        test_skip("XSAVE: not in CPUID");
        return;
    }
    write_cr4(read_cr4() | CR4_OSXSAVE);
    struct cpuid_regs d = cpuid2(0xd, 0);
    u64 supported = d.a | ((u64)d.d << 32);
    write_xcr0(3);
    TEST_EQ(read_xcr0(), 3, "XSETBV/XGETBV x87|SSE");
    TRY("xsetbv", "c"(0), "a"(2), "d"(0));
    TEST_EQ(exc_vector(), GP_VECTOR, "XCR0 without x87: #GP");
    u64 bad = ~supported & 0xffull;
    if (bad) {
        TRY("xsetbv", "c"(0), "a"((u32)(bad | 3)), "d"(0));
        TEST_EQ(exc_vector(), GP_VECTOR, "XCR0 with an unsupported component: #GP");
    }
    TRY("xsetbv", "c"(1), "a"(3), "d"(0));
    TEST_EQ(exc_vector(), GP_VECTOR, "XSETBV to XCR1: #GP");
    int e = exc_catch(xsetbv_in_user, NULL);
    TEST_EQ(e, GP_VECTOR, "XSETBV at CPL 3: #GP");
    write_cr4(read_cr4() & ~CR4_OSXSAVE);
    TRY("xgetbv", "c"(0));
    TEST_EQ(exc_vector(), UD_VECTOR, "XGETBV without CR4.OSXSAVE: #UD");
}

/* ---- INVPCID ---- */

static void check_invpcid(void)
{
    if (!HAS_INVPCID()) {
        test_skip("INVPCID: not in CPUID");
        return;
    }
    struct { u64 pcid, addr; } desc = { 0, 0x1000 };
    for (ulong type = 0; type < 4; type++) {
        TRY("invpcid %0, %1", "m"(desc), "r"(type));
        TEST_EQ(exc_vector(), NO_EXCEPTION, "INVPCID types 0-3");
    }
    TRY("invpcid %0, %1", "m"(desc), "r"(4ul));
    TEST_EQ(exc_vector(), GP_VECTOR, "INVPCID type 4: #GP");
    desc.pcid = 1;
    TRY("invpcid %0, %1", "m"(desc), "r"(1ul));
    TEST_EQ(exc_vector(), GP_VECTOR, "INVPCID of PCID 1 with CR4.PCIDE=0: #GP");
    desc.pcid = BIT(12);
    TRY("invpcid %0, %1", "m"(desc), "r"(0ul));
    TEST_EQ(exc_vector(), GP_VECTOR, "INVPCID descriptor bits 63:12: #GP");
    desc.pcid = 0;
    desc.addr = NONCANON;
    TRY("invpcid %0, %1", "m"(desc), "r"(0ul));
    TEST_EQ(exc_vector(), GP_VECTOR, "INVPCID of a non-canonical address: #GP");
}

/* ---- SYSENTER/SYSEXIT in 64-bit mode ---- */

extern u8 sysenter_entry[];
static volatile u64 se_seen[2];
asm(".text\n"
    "sysenter_entry:\n"
    "  mov %cs, %eax\n"
    "  mov %rax, se_seen(%rip)\n"
    "  mov %ss, %eax\n"
    "  mov %rax, se_seen+8(%rip)\n"
    "  sysexitq\n");

static ulong user_sysenter(ulong unused)
{
    (void)unused;
    ulong cs;
    asm volatile("mov %%rsp, %%rcx\n\t" ASM_LABEL_ADDR("1f", "%%rdx") "sysenter\n1:\tmov %%cs, %0"
                 : "=r"(cs) :: "rcx", "rdx", "rax", "memory");
    return cs;
}

static bool vendor_is_amd(void)
{
    struct cpuid_regs r = cpuid(0);
    return r.b == 0x68747541; /* "Auth" */
}

static void check_sysenter64(void)
{
    if (!HAS_SEP()) {
        test_skip("SYSENTER: not in CPUID");
        return;
    }
    wrmsr(MSR_SYSENTER_CS, SEL_KCODE64);
    wrmsr(MSR_SYSENTER_ESP, (ulong)kernel_stack + sizeof(kernel_stack));
    wrmsr(MSR_SYSENTER_EIP, (ulong)sysenter_entry);
    if (vendor_is_amd()) {
        TRY("sysenter");
        TEST_EQ(exc_vector(), UD_VECTOR, "SYSENTER in long mode on AMD: #UD");
    } else {
        TEST_EQ(run_user(user_sysenter, 0, 0), SEL_UCODE64, "SYSENTER/SYSEXIT64 round trip");
        TEST_EQ(se_seen[0], SEL_KCODE64, "SYSENTER: CS = SYSENTER_CS (64-bit)");
        TEST_EQ(se_seen[1], SEL_KDATA, "SYSENTER: SS = SYSENTER_CS + 8");
    }
    wrmsr(MSR_SYSENTER_CS, 0);
    TRY("sysenter");
    TEST_EQ(exc_vector(), vendor_is_amd() ? UD_VECTOR : GP_VECTOR,
            "SYSENTER with SYSENTER_CS = 0");
}

/* ---- I/O breakpoints (DR7 RW = 10 with CR4.DE) ---- */

static void check_io_breakpoint(void)
{
    write_cr4(read_cr4() | CR4_DE);
    write_dr6(0xffff0ff0);
    write_dr0(0x80);
    write_dr7(BIT(0) | (2ul << 16) | (1ul << 18)); /* L0, I/O, 2 bytes: ports 0x80-0x81 */
    ulong after;
    asm volatile(ASM_TRY("1f") ASM_LABEL_ADDR("1f", "%0") "outb %%al, $0x81\n1:"
                 : "=&r"(after) : "a"(0) : "memory");
    int v = exc_vector();
    TEST_ASSERT(v == DB_VECTOR && (exc_last.dr6 & 0xf) == 1 && exc_last.ip == after,
                "I/O breakpoint: #DB trap after OUT with DR6.B0 (vector %d dr6 %#lx)", v,
                (ulong)exc_last.dr6);
    write_dr6(0xffff0ff0);
    asm volatile(ASM_TRY("1f") "outb %%al, $0x82\n1:" ::"a"(0) : "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "I/O breakpoint: other ports do not match");
    write_dr7(0x400);
    write_cr4(read_cr4() & ~CR4_DE);
}

void test_main(void)
{
    check_store_tables();
    check_tr_ldtr_iomap();
    check_if_iopl();
    check_cr_rules();
    check_msrs();
    check_xcr0();
    check_invpcid();
    check_sysenter64();
    check_io_breakpoint();
    test_done();
}

/* AMD SVM intercepts (APM vol. 2 15.8-15.14, appendix C) with their EXITCODE, EXITINFO1,
 * EXITINFO2 and nRIP: CR reads and writes (decode assists: bit 63 and the GPR), the CR0
 * selective write, DR reads and writes, exceptions (#UD, #GP and #PF with their error
 * code and address, #BP, #DB), INTn, RDTSC (and TSC_OFFSET), RDTSCP, RDPMC, PUSHF, POPF,
 * IRET, INVD, WBINVD, PAUSE (and the PAUSE filter count and threshold), INVLPG, I/O
 * through the IOPM (the EXITINFO1 encoding, spans over intercepted ports, port FFFFh),
 * MSRs through the MSRPM (three ranges, read/write bits, MSRs outside them), XSETBV,
 * MONITOR/MWAIT, a triple fault (SHUTDOWN), the SVM instructions in L2; event injection
 * (INTR, NMI, exception with error code, software interrupt) through L2's own IDT,
 * EXITINTINFO for an exit during the delivery of an injected event, virtual interrupts
 * (V_IRQ, V_TPR, the VINTR intercept) and virtual GIF.
 * guest: cpu=max,vendor=AuthenticAMD name=svm-exits */
#include "svm.h"

static struct vmcb *const v = &svm_vmcb;

/* L2 code with global labels around one instruction: NAME (start), NAME_i (the
 * instruction), NAME_e (after it, then VMMCALL forever) */
#define L2_INSN(name, pre, insn)                                                              \
    extern char name[], name##_i[], name##_e[];                                               \
    asm(".pushsection .text\n" #name ":\n" pre "\n" #name "_i:\n" insn "\n" #name "_e:\n"     \
        "98: vmmcall\n jmp 98b\n.popsection")

static bool decode_assists(void) { return svm_has(SVMF_DECODE_ASSISTS); }

/* QEMU TCG 7.2 has no RDTSCP, INVD or XSETBV intercept (APM 15.9, 15.13: all three are
 * intercepts): those checks are skipped there */
static bool qemu_lacks(const char *what)
{
    if (!on_qemu_tcg())
        return false;
    test_skip("QEMU TCG does not implement the %s intercept", what);
    return true;
}

/* IOIO EXITINFO1: QEMU TCG leaves the address-size bits A16/A32/A64 (9:7) clear, which
 * APM 15.10.2 defines */
static void io_info(u64 want, const char *what)
{
    u64 got = v->c.exit_info1;
    if (on_qemu_tcg() && !(got & 0x380) && (want & 0x380)) {
        test_skip("QEMU TCG leaves IOIO EXITINFO1 bits 9:7 (address size) clear: %s", what);
        got |= want & 0x380;
    }
    TEST_EQF(got, want, "%s: EXITINFO1", what);
}

/* The exit of the instruction at i..e: code, RIP, nRIP; then L2 resumes after it and
 * reaches its VMMCALL. */
static void expect_insn(const char *what, const char *i, const char *e, u64 code)
{
    TEST_EQF(v->c.exit_code, code, "%s: EXITCODE", what);
    TEST_EQF(v->s.rip, PA(i), "%s: RIP of the instruction", what);
    if (svm_has(SVMF_NRIPS))
        TEST_EQF(v->c.nrip, PA(e), "%s: nRIP", what);
}
static void resume_after(const char *what, const char *e)
{
    v->s.rip = PA(e);
    TEST_EQF(svm_run(v), VMEXIT_VMMCALL, "%s: L2 continues after it", what);
}
static u64 run_code(const void *code, int intercept)
{
    svm_vmcb_init(v, code);
    if (intercept >= 0)
        svm_intercept(v, intercept);
    return svm_run(v);
}
#define SIMPLE(name, icpt, code, what)                                                        \
    do {                                                                                      \
        run_code(name, icpt);                                                                 \
        expect_insn(what, name##_i, name##_e, code);                                          \
        resume_after(what, name##_e);                                                         \
    } while (0)

/* ---- control and debug registers ---- */
L2_INSN(l2_rd_cr0, "", "mov %cr0, %rbx");
L2_INSN(l2_loop1000, "mov $1000, %ecx", "1: dec %ecx; jnz 1b");
L2_INSN(l2_rd_cr3, "", "mov %cr3, %r9");
L2_INSN(l2_rd_cr4, "", "mov %cr4, %rax");
L2_INSN(l2_rd_cr8, "", "mov %cr8, %r15");
L2_INSN(l2_wr_cr0, "mov %cr0, %rdx", "mov %rdx, %cr0");
L2_INSN(l2_wr_cr3, "mov %cr3, %r11", "mov %r11, %cr3");
L2_INSN(l2_wr_cr4, "mov %cr4, %rsi", "mov %rsi, %cr4");
L2_INSN(l2_wr_cr8, "xor %ecx, %ecx", "mov %rcx, %cr8");
L2_INSN(l2_clts, "", "clts");
extern char l2_sel_ts_first[];
L2_INSN(l2_sel_ts, "mov %cr0, %rax; xor $0xa, %rax; .globl l2_sel_ts_first; l2_sel_ts_first: mov %rax, %cr0; xor $0x10000, %rax",
        "mov %rax, %cr0");
L2_INSN(l2_rd_dr0, "", "mov %dr0, %rbx");
L2_INSN(l2_wr_dr7, "mov $0x400, %r10", "mov %r10, %dr7");

static void crs(void)
{
    static const struct { const char *name; const char *c, *i, *e; int icpt; u64 code; int gpr; } t[] = {
        { "MOV from CR0", l2_rd_cr0, l2_rd_cr0_i, l2_rd_cr0_e, I_CR_READ(0), VMEXIT_CR_READ(0), 3 },
        { "MOV from CR3", l2_rd_cr3, l2_rd_cr3_i, l2_rd_cr3_e, I_CR_READ(3), VMEXIT_CR_READ(3), 9 },
        { "MOV from CR4", l2_rd_cr4, l2_rd_cr4_i, l2_rd_cr4_e, I_CR_READ(4), VMEXIT_CR_READ(4), 0 },
        { "MOV from CR8", l2_rd_cr8, l2_rd_cr8_i, l2_rd_cr8_e, I_CR_READ(8), VMEXIT_CR_READ(8), 15 },
        { "MOV to CR0", l2_wr_cr0, l2_wr_cr0_i, l2_wr_cr0_e, I_CR_WRITE(0), VMEXIT_CR_WRITE(0), 2 },
        { "MOV to CR3", l2_wr_cr3, l2_wr_cr3_i, l2_wr_cr3_e, I_CR_WRITE(3), VMEXIT_CR_WRITE(3), 11 },
        { "MOV to CR4", l2_wr_cr4, l2_wr_cr4_i, l2_wr_cr4_e, I_CR_WRITE(4), VMEXIT_CR_WRITE(4), 6 },
        { "MOV to CR8", l2_wr_cr8, l2_wr_cr8_i, l2_wr_cr8_e, I_CR_WRITE(8), VMEXIT_CR_WRITE(8), 1 },
        { "MOV from DR0", l2_rd_dr0, l2_rd_dr0_i, l2_rd_dr0_e, I_DR_READ(0), VMEXIT_DR_READ(0), 3 },
        { "MOV to DR7", l2_wr_dr7, l2_wr_dr7_i, l2_wr_dr7_e, I_DR_WRITE(7), VMEXIT_DR_WRITE(7), 10 },
    };
    for (unsigned k = 0; k < ARRAY_SIZE(t); k++) {
        TEST_EQF(run_code(t[k].c, -1), VMEXIT_VMMCALL, "%s without its intercept: no exit", t[k].name);
        run_code(t[k].c, t[k].icpt);
        expect_insn(t[k].name, t[k].i, t[k].e, t[k].code);
        if (decode_assists()) {
            /* APM 15.33.1: MOV CRx: bit 63 (a MOV) and the GPR in 3:0; MOV DRx: the GPR
             * in 3:0 (bit 63 is not checked for DRs) */
            if (t[k].code < 0x20)
                TEST_EQF(v->c.exit_info1, BIT(63) | (u64)t[k].gpr, "%s: EXITINFO1 (decode assists)", t[k].name);
            else
                TEST_EQF(v->c.exit_info1 & 0xf, t[k].gpr, "%s: EXITINFO1[3:0] (decode assists)", t[k].name);
        }
        resume_after(t[k].name, t[k].e);
    }
    /* CLTS is a CR0 write; decode assists: bit 63 clear */
    run_code(l2_clts, I_CR_WRITE(0));
    expect_insn("CLTS", l2_clts_i, l2_clts_e, VMEXIT_CR_WRITE(0));
    if (decode_assists())
        TEST_EQ(v->c.exit_info1 & BIT(63), 0, "CLTS: EXITINFO1 bit 63 clear (not a MOV CR)");

    /* the CR0 selective write: TS and MP changes pass, others exit with 0x65 */
    run_code(l2_sel_ts, I_CR0_SEL_WRITE);
    expect_insn("CR0 selective write (WP)", l2_sel_ts_i, l2_sel_ts_e, VMEXIT_CR0_SEL_WRITE);
    TEST_EQ(v->s.cr0 & (CR0_TS | CR0_MP), (svm_read_cr(0) ^ 0xa) & (CR0_TS | CR0_MP),
            "the TS/MP-only write went through without an exit");
    TEST_EQ(v->s.cr0 & CR0_WP, svm_read_cr(0) & CR0_WP, "the WP write did not happen");
    if (decode_assists())
        TEST_EQ(v->c.exit_info1, BIT(63) | 0, "CR0 selective write: EXITINFO1 (decode assists)");
    run_code(l2_sel_ts, I_CR0_SEL_WRITE);
    svm_intercept(v, I_CR_WRITE(0));
    v->s.rip = PA(l2_sel_ts);
    TEST_EQ(svm_run(v), VMEXIT_CR_WRITE(0), "CR0 write intercept takes precedence over the selective one");
    TEST_EQ(v->s.rip, PA(l2_sel_ts_first), "at the first MOV to CR0");
}

/* ---- exceptions ---- */
L2_INSN(l2_ud, "", "ud2");
L2_INSN(l2_gp_sel, "mov $0xfff8, %eax", "mov %eax, %ds");
L2_INSN(l2_pf, "mov $0x140000123, %rax", "movq $1, (%rax)");
L2_INSN(l2_bp, "", "int3");
L2_INSN(l2_db, "", "nop");
L2_INSN(l2_intn, "", "int $0x55");

static void exceptions(void)
{
    run_code(l2_ud, I_EXC(UD_VECTOR));
    TEST_EQ(v->c.exit_code, VMEXIT_EXCP(6), "#UD intercept: 0x46");
    TEST_EQ(v->s.rip, PA(l2_ud_i), "#UD: RIP of the UD2");

    run_code(l2_gp_sel, I_EXC(GP_VECTOR));
    TEST_EQ(v->c.exit_code, VMEXIT_EXCP(13), "#GP intercept: 0x4d");
    TEST_EQ(v->c.exit_info1, 0xfff8, "#GP: the error code (the selector beyond the GDT limit) in EXITINFO1");
    TEST_EQ(v->s.rip, PA(l2_gp_sel_i), "#GP: RIP of the MOV DS");

    run_code(l2_pf, I_EXC(PF_VECTOR));
    TEST_EQ(v->c.exit_code, VMEXIT_EXCP(14), "#PF intercept: 0x4e");
    TEST_EQ(v->c.exit_info1, PFEC_W, "#PF: error code (write, not present) in EXITINFO1");
    TEST_EQ(v->c.exit_info2, 0x140000123ull, "#PF: the address in EXITINFO2");
    TEST_EQ(v->s.rip, PA(l2_pf_i), "#PF: RIP of the store");
    if (decode_assists()) {
        /* APM 15.33.4: the bytes of the faulting instruction */
        unsigned n = l2_pf_e - l2_pf_i;
        TEST_ASSERT(v->c.insn_len >= n && v->c.insn_len <= 15, "#PF: %u instruction bytes", v->c.insn_len);
        TEST_ASSERT(!memcmp(v->c.insn_bytes, l2_pf_i, n), "#PF: the instruction bytes");
    }

    if (on_qemu_tcg()) {
        /* APM 15.12: INT3 is a #BP for the exception intercepts; INTn's intercept is CD only */
        test_skip("QEMU TCG checks the INTn intercept for INT3, not the #BP exception intercept");
    } else {
        run_code(l2_bp, I_EXC(BP_VECTOR));
        TEST_EQ(v->c.exit_code, VMEXIT_EXCP(3), "#BP intercept: 0x43");
        TEST_EQ(v->s.rip, PA(l2_bp_i), "#BP: RIP of the INT3 (the intercept comes before delivery)");
    }

    svm_vmcb_init(v, l2_db);
    svm_intercept(v, I_EXC(DB_VECTOR));
    v->s.rflags |= FL_TF;
    TEST_EQ(svm_run(v), VMEXIT_EXCP(1), "#DB intercept (TF single-step): 0x41");
    TEST_EQ(v->s.rip, PA(l2_db_e), "#DB: RIP after the single-stepped NOP (a trap)");

    run_code(l2_intn, I_INTN);
    expect_insn("INT 0x55", l2_intn_i, l2_intn_e, VMEXIT_SWINT);
    if (decode_assists())
        TEST_EQ(v->c.exit_info1, 0x55, "INTn: the vector in EXITINFO1 (decode assists)");
}

/* ---- instructions ---- */
L2_INSN(l2_rdtsc, "", "rdtsc");
L2_INSN(l2_rdtscp, "", "rdtscp");
L2_INSN(l2_rdpmc, "xor %ecx, %ecx", "rdpmc");
L2_INSN(l2_pushf, "", "pushfq");
L2_INSN(l2_popf, "pushfq", "popfq");
L2_INSN(l2_iret, "mov %rsp, %rax; mov %ss, %ecx; push %rcx; push %rax; pushfq; mov %cs, %ecx; push %rcx;"
        "lea l2_iret_e(%rip), %rcx; push %rcx", "iretq");
L2_INSN(l2_invd, "", "invd");
L2_INSN(l2_wbinvd, "", "wbinvd");
L2_INSN(l2_pause, "", "pause");
L2_INSN(l2_invlpg, "mov $0x5000, %rax", "invlpg 0x10(%rax)");
L2_INSN(l2_invlpga, "", "invlpga");
L2_INSN(l2_xsetbv, "xor %ecx, %ecx; xor %edx, %edx", "xsetbv");
L2_INSN(l2_monitor, "xor %ecx, %ecx; xor %edx, %edx", "monitor");
L2_INSN(l2_mwait, "xor %ecx, %ecx; xor %eax, %eax", "mwait");
L2_INSN(l2_vmrun, "", "vmrun");
L2_INSN(l2_vmload, "", "vmload");
L2_INSN(l2_vmsave, "", "vmsave");
L2_INSN(l2_stgi, "", "stgi");
L2_INSN(l2_clgi, "", "clgi");
L2_INSN(l2_vmmcall, "", "vmmcall");
L2_INSN(l2_rdtsc_plain, "", "rdtsc; shl $32, %rdx; or %rdx, %rax; mov %rax, %rbx");
L2_INSN(l2_pause_loop, "xor %ebx, %ebx", "1: pause; inc %rbx; cmp $100, %rbx; jne 1b");
L2_INSN(l2_pause_slow, "xor %ebx, %ebx",
        "1: pause; inc %rbx; mov $20000, %ecx; 2: dec %ecx; jnz 2b; cmp $20, %rbx; jne 1b");

static void instructions(void)
{
    SIMPLE(l2_rdtsc, I_RDTSC, VMEXIT_RDTSC, "RDTSC");
    if (HAS_RDTSCP() && !qemu_lacks("RDTSCP"))
        SIMPLE(l2_rdtscp, I_RDTSCP, VMEXIT_RDTSCP, "RDTSCP");
    SIMPLE(l2_rdpmc, I_RDPMC, VMEXIT_RDPMC, "RDPMC");
    SIMPLE(l2_pushf, I_PUSHF, VMEXIT_PUSHF, "PUSHF");
    SIMPLE(l2_popf, I_POPF, VMEXIT_POPF, "POPF");
    run_code(l2_iret, I_IRET);
    expect_insn("IRET", l2_iret_i, l2_iret_e, VMEXIT_IRET);
    if (!qemu_lacks("INVD"))
        SIMPLE(l2_invd, I_INVD, VMEXIT_INVD, "INVD");
    TEST_EQ(run_code(l2_wbinvd, -1), VMEXIT_VMMCALL, "WBINVD without its intercept: no exit");
    SIMPLE(l2_wbinvd, I_WBINVD, VMEXIT_WBINVD, "WBINVD");
    SIMPLE(l2_pause, I_PAUSE, VMEXIT_PAUSE, "PAUSE");
    TEST_EQ(run_code(l2_invlpg, -1), VMEXIT_VMMCALL, "INVLPG without its intercept: no exit");
    run_code(l2_invlpg, I_INVLPG);
    expect_insn("INVLPG", l2_invlpg_i, l2_invlpg_e, VMEXIT_INVLPG);
    if (decode_assists())
        TEST_EQ(v->c.exit_info1, 0x5010, "INVLPG: the linear address in EXITINFO1 (decode assists)");

    /* TSC_OFFSET without the RDTSC intercept */
    svm_vmcb_init(v, l2_rdtsc_plain);
    v->c.tsc_offset = 1ull << 44;
    u64 t0 = rdtsc();
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "RDTSC with TSC_OFFSET: no exit");
    u64 t1 = rdtsc();
    TEST_ASSERT(svm_gregs[3] > t0 + (1ull << 44) && svm_gregs[3] < t1 + (1ull << 44),
                "L2's TSC is L1's + TSC_OFFSET (%#llx in (%#llx, %#llx))", (unsigned long long)svm_gregs[3],
                (unsigned long long)(t0 + (1ull << 44)), (unsigned long long)(t1 + (1ull << 44)));

    /* PAUSE filter (APM 15.14.4): "On VMRUN the count is loaded into an internal counter;
     * each PAUSE decrements it until it reaches zero, at which time a #VMEXIT is generated":
     * with count N the N-th PAUSE exits, N-1 go through */
    if (svm_has(SVMF_PAUSE_FILTER)) {
        svm_vmcb_init(v, l2_pause_loop);
        svm_intercept(v, I_PAUSE);
        v->c.pause_count = 7;
        TEST_EQ(svm_run(v), VMEXIT_PAUSE, "PAUSE filter count 7: exit");
        TEST_EQ(svm_gregs[3], 6, "at the 7th PAUSE (6 went through)");
        TEST_EQ(v->s.rip, PA(l2_pause_loop_i), "RIP of that PAUSE");
        svm_vmcb_init(v, l2_pause_loop);
        svm_intercept(v, I_PAUSE);
        v->c.pause_count = 101;
        TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "PAUSE filter count 101: 100 PAUSEs, no exit");
        svm_vmcb_init(v, l2_pause_slow);
        svm_intercept(v, I_PAUSE);
        v->c.pause_count = 5;
        TEST_EQ(svm_run(v), VMEXIT_PAUSE, "slow PAUSEs, count 5, no threshold: exit");
        TEST_EQ(svm_gregs[3], 4, "at the 5th PAUSE");
        if (svm_has(SVMF_PAUSE_THRESHOLD)) {
            svm_vmcb_init(v, l2_pause_slow);
            svm_intercept(v, I_PAUSE);
            v->c.pause_count = 5;
            v->c.pause_threshold = 1;
            TEST_EQ(svm_run(v), VMEXIT_VMMCALL,
                    "PAUSE filter threshold: PAUSEs further apart than the threshold reset the count");
        }
    } else {
        test_skip("no PAUSE filter");
    }

    if (!HAS_XSAVE()) {
        test_skip("no XSAVE");
    } else if (!qemu_lacks("XSETBV")) {
        write_cr4(read_cr4() | CR4_OSXSAVE);
        svm_vmcb_init(v, l2_xsetbv);
        svm_intercept(v, I_XSETBV);
        v->s.rax = 3;
        svm_run(v);
        expect_insn("XSETBV", l2_xsetbv_i, l2_xsetbv_e, VMEXIT_XSETBV);
        resume_after("XSETBV", l2_xsetbv_e);
    }
    if (cpu_has(1, 0, 2, 3)) {
        static u64 line[8] __attribute__((aligned(64)));
        svm_vmcb_init(v, l2_monitor);
        svm_intercept(v, I_MONITOR);
        v->s.rax = PA(line);
        svm_run(v);
        expect_insn("MONITOR", l2_monitor_i, l2_monitor_e, VMEXIT_MONITOR);
        SIMPLE(l2_mwait, I_MWAIT, VMEXIT_MWAIT, "MWAIT");
    } else {
        test_skip("no MONITOR/MWAIT");
    }

    /* the SVM instructions in L2 */
    static const struct { const char *name; const char *c, *i, *e; int icpt; u64 code; } s[] = {
        { "VMRUN", l2_vmrun, l2_vmrun_i, l2_vmrun_e, I_VMRUN, VMEXIT_VMRUN },
        { "VMLOAD", l2_vmload, l2_vmload_i, l2_vmload_e, I_VMLOAD, VMEXIT_VMLOAD },
        { "VMSAVE", l2_vmsave, l2_vmsave_i, l2_vmsave_e, I_VMSAVE, VMEXIT_VMSAVE },
        { "STGI", l2_stgi, l2_stgi_i, l2_stgi_e, I_STGI, VMEXIT_STGI },
        { "CLGI", l2_clgi, l2_clgi_i, l2_clgi_e, I_CLGI, VMEXIT_CLGI },
        { "INVLPGA", l2_invlpga, l2_invlpga_i, l2_invlpga_e, I_INVLPGA, VMEXIT_INVLPGA },
        { "VMMCALL", l2_vmmcall, l2_vmmcall_i, l2_vmmcall_e, I_VMMCALL, VMEXIT_VMMCALL },
    };
    for (unsigned k = 0; k < ARRAY_SIZE(s); k++) {
        svm_vmcb_init(v, s[k].c);
        svm_intercept(v, s[k].icpt);
        v->s.rax = PA(&svm_vmcb2);
        svm_gregs[1] = 1;
        svm_run(v);
        expect_insn(s[k].name, s[k].i, s[k].e, s[k].code);
    }
    /* VMMCALL without its intercept: #UD in L2 */
    svm_vmcb_init(v, l2_vmmcall);
    svm_no_intercept(v, I_VMMCALL);
    svm_intercept(v, I_EXC(UD_VECTOR));
    TEST_EQ(svm_run(v), VMEXIT_EXCP(6), "VMMCALL not intercepted: #UD");
}

/* ---- I/O ---- */
L2_INSN(l2_outb80, "", "outb %al, $0x80");
L2_INSN(l2_inw, "mov $0x1234, %edx", "inw %dx, %ax");
L2_INSN(l2_inl, "mov $0x1233, %edx", "inl %dx, %eax");
L2_INSN(l2_inb, "mov $0x1234, %edx", "inb %dx, %al");
L2_INSN(l2_outsb, "mov $0x1234, %edx; mov $3, %ecx", "rep outsb %fs:(%rsi), %dx");
L2_INSN(l2_insw32, "mov $0x1234, %edx; mov $2, %ecx", "addr32 rep insw %dx, %es:(%edi)");
L2_INSN(l2_inw_ffff, "mov $0xffff, %edx", "inw %dx, %ax");
static u8 io_buf[64];

static void io(void)
{
    svm_vmcb_init(v, l2_outb80);
    svm_intercept(v, I_IOIO);
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "OUT 0x80 with its IOPM bit clear: no exit");
    svm_vmcb_init(v, l2_outb80);
    svm_intercept(v, I_IOIO);
    svm_iopm_set(0x80);
    svm_run(v);
    expect_insn("OUT imm8", l2_outb80_i, l2_outb80_e, VMEXIT_IOIO);
    io_info(IOIO_PORT(0x80) | IOIO_SZ8 | IOIO_A64, "OUT 0x80, AL");
    TEST_EQ(v->c.exit_info2, PA(l2_outb80_e), "IOIO: EXITINFO2 is the next RIP");
    resume_after("OUT", l2_outb80_e);

    svm_vmcb_init(v, l2_inw);
    svm_intercept(v, I_IOIO);
    svm_iopm_set(0x1234);
    svm_run(v);
    expect_insn("IN AX, DX", l2_inw_i, l2_inw_e, VMEXIT_IOIO);
    io_info(IOIO_PORT(0x1234) | IOIO_SZ16 | IOIO_A64 | IOIO_TYPE_IN, "IN AX, DX");
    TEST_EQ(v->c.exit_info2, PA(l2_inw_e), "EXITINFO2");

    /* an access exits when any of its ports is intercepted */
    svm_vmcb_init(v, l2_inw);
    svm_intercept(v, I_IOIO);
    svm_iopm_set(0x1235);
    TEST_EQ(svm_run(v), VMEXIT_IOIO, "IN AX from 0x1234 with only 0x1235 intercepted: exit");
    io_info(IOIO_PORT(0x1234) | IOIO_SZ16 | IOIO_A64 | IOIO_TYPE_IN, "IN AX from 0x1234, 0x1235 intercepted");
    svm_vmcb_init(v, l2_inl);
    svm_intercept(v, I_IOIO);
    svm_iopm_set(0x1236);
    TEST_EQ(svm_run(v), VMEXIT_IOIO, "IN EAX from 0x1233 with only 0x1236 intercepted: exit");
    io_info(IOIO_PORT(0x1233) | IOIO_SZ32 | IOIO_A64 | IOIO_TYPE_IN, "IN EAX from 0x1233");
    svm_vmcb_init(v, l2_inb);
    svm_intercept(v, I_IOIO);
    svm_iopm_set(0x1235);
    svm_iopm_set(0x1233);
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "IN AL from 0x1234 with its neighbours intercepted: no exit");
    /* port FFFFh: a 2-byte access also covers bit 0x10000 of the 12 KiB IOPM */
    svm_vmcb_init(v, l2_inw_ffff);
    svm_intercept(v, I_IOIO);
    svm_iopm_set(0);
    svm_iopm[0x10000 / 8] |= 1;
    TEST_EQ(svm_run(v), VMEXIT_IOIO, "IN AX from FFFFh with the IOPM's bit 10000h set: exit (APM 15.10.1)");
    io_info(IOIO_PORT(0xffff) | IOIO_SZ16 | IOIO_A64 | IOIO_TYPE_IN, "IN AX from FFFFh");

    /* string forms */
    svm_vmcb_init(v, l2_outsb);
    svm_intercept(v, I_IOIO);
    svm_iopm_set(0x1234);
    svm_gregs[6] = PA(io_buf);
    svm_run(v);
    expect_insn("REP OUTSB", l2_outsb_i, l2_outsb_e, VMEXIT_IOIO);
    u64 want = IOIO_PORT(0x1234) | IOIO_SZ8 | IOIO_A64 | IOIO_REP | IOIO_STR;
    if (!decode_assists())
        v->c.exit_info1 &= ~IOIO_SEG(7);
    /* APM 15.10.2: SEG (12:10) with decode assists: FS = 4 */
    io_info(want | (decode_assists() ? IOIO_SEG(4) : 0), "REP OUTSB FS:");
    TEST_EQ(svm_gregs[1], 3, "RCX untouched");
    svm_vmcb_init(v, l2_insw32);
    svm_intercept(v, I_IOIO);
    svm_iopm_set(0x1235);
    svm_gregs[7] = PA(io_buf);
    svm_run(v);
    expect_insn("A32 REP INSW", l2_insw32_i, l2_insw32_e, VMEXIT_IOIO);
    v->c.exit_info1 &= ~IOIO_SEG(7);
    io_info(IOIO_PORT(0x1234) | IOIO_SZ16 | IOIO_A32 | IOIO_REP | IOIO_STR | IOIO_TYPE_IN, "A32 REP INSW");
}

/* ---- MSRs ---- */
L2_INSN(l2_rdmsr, "", "rdmsr");
L2_INSN(l2_wrmsr, "", "wrmsr");

static u64 msr_run(const void *code, u32 msr, bool r, bool w)
{
    svm_vmcb_init(v, code);
    svm_intercept(v, I_MSR);
    svm_msrpm_set(msr, r, w);
    svm_gregs[1] = msr;
    if (code == l2_wrmsr) {
        u64 val = 0;
        rdmsr_safe(msr, &val);
        v->s.rax = (u32)val;
        svm_gregs[2] = val >> 32;
    }
    return svm_run(v);
}

static void msrs(void)
{
    static const u32 in_range[] = { 0x174, 0x1fff, 0xc0000081, 0xc0001fff, 0xc0010114, 0xc0011fff };
    for (unsigned k = 0; k < ARRAY_SIZE(in_range); k++) {
        u32 m = in_range[k];
        bool exists = m != 0x1fff && m != 0xc0001fff && m != 0xc0011fff;
        if (exists)
            TEST_EQF(msr_run(l2_rdmsr, m, false, true), VMEXIT_VMMCALL, "RDMSR %#x with only its write bit: no exit", m);
        TEST_EQF(msr_run(l2_rdmsr, m, true, false), VMEXIT_MSR, "RDMSR %#x with its read bit", m);
        TEST_EQF(v->c.exit_info1, 0, "RDMSR %#x: EXITINFO1 0", m);
        if (svm_has(SVMF_NRIPS))
            TEST_EQF(v->c.nrip, PA(l2_rdmsr_e), "RDMSR %#x: nRIP", m);
        TEST_EQF(msr_run(l2_wrmsr, m, false, true), VMEXIT_MSR, "WRMSR %#x with its write bit", m);
        TEST_EQF(v->c.exit_info1, 1, "WRMSR %#x: EXITINFO1 1", m);
        if (exists)
            TEST_EQF(msr_run(l2_wrmsr, m, true, false), VMEXIT_VMMCALL, "WRMSR %#x with only its read bit: no exit", m);
    }
    /* neighbours: MSR 0x175's bits do not cover 0x174 */
    TEST_EQ(msr_run(l2_rdmsr, 0x174, false, false), VMEXIT_VMMCALL, "RDMSR 0x174 with no bits: no exit");
    svm_vmcb_init(v, l2_rdmsr);
    svm_intercept(v, I_MSR);
    svm_msrpm_set(0x175, true, true);
    svm_msrpm_set(0x173, true, true);
    svm_gregs[1] = 0x174;
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "RDMSR 0x174 with 0x173 and 0x175 intercepted: no exit");
    /* outside the three ranges: always an exit */
    static const u32 outside[] = { 0x2000, 0x40000000, 0xc0002000, 0xc0012000, 0xc0020000 };
    for (unsigned k = 0; k < ARRAY_SIZE(outside); k++) {
        TEST_EQF(msr_run(l2_rdmsr, outside[k], false, false), VMEXIT_MSR, "RDMSR %#x (outside the MSRPM) exits", outside[k]);
        TEST_EQF(v->c.exit_info1, 0, "RDMSR %#x: EXITINFO1", outside[k]);
    }
    /* without the MSR intercept, nothing exits: L2 reads the real EFER */
    svm_vmcb_init(v, l2_rdmsr);
    svm_msrpm_set(MSR_EFER, true, true);
    svm_gregs[1] = MSR_EFER;
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "RDMSR EFER without the MSR_PROT intercept: no exit");
    TEST_EQ(v->s.rax, (u32)v->s.efer, "L2 read its own EFER");
}

L2_INSN(l2_idle, "", "nop; nop; nop; nop");

/* ---- shutdown ---- */
L2_INSN(l2_triple, "", "ud2");
static void shutdown(void)
{
    svm_vmcb_init(v, l2_triple);
    v->s.idtr.limit = 0;
    TEST_EQ(svm_run(v), VMEXIT_SHUTDOWN, "L2 triple fault: SHUTDOWN exit 0x7f");
    TEST_EQ(v->s.rip, PA(l2_triple_i), "SHUTDOWN: RIP of the faulting UD2");
    TEST_EQ(run_code(l2_idle, -1), VMEXIT_VMMCALL, "L1 runs another L2 after the shutdown");
}

/* ---- L2's own IDT: stubs record the event, then VMMCALL ---- */
static volatile u64 ev_vec, ev_err, ev_rip, ev_count;
#define L2_ISR(v, kind) "l2_isr_" #v ": movq $" #v ", ev_vec(%rip); jmp l2_isr_" kind "\n"
extern char l2_isr_2[], l2_isr_13[], l2_isr_0x20[], l2_isr_0x30[], l2_isr_0x80[];
asm(".pushsection .text\n"
    L2_ISR(2, "noerr") L2_ISR(13, "err") L2_ISR(0x20, "noerr") L2_ISR(0x30, "noerr")
    L2_ISR(0x80, "noerr")
    "l2_isr_noerr: movq $-1, ev_err(%rip); jmp 1f\n"
    "l2_isr_err: popq ev_err(%rip)\n"
    "1: mov (%rsp), %rax; mov %rax, ev_rip(%rip); incq ev_count(%rip)\n"
    "98: vmmcall; jmp 98b\n"
    ".popsection");
static u64 l2_idt[512] __attribute__((aligned(4096)));
static void l2_gate(int vec, const void *fn)
{
    u64 off = PA(fn);
    l2_idt[vec * 2] = (off & 0xffff) | ((u64)SEL_KCODE64 << 16) | (0x8eull << 40) | ((off >> 16 & 0xffff) << 48);
    l2_idt[vec * 2 + 1] = off >> 32;
}
static void l2_own_idt(void)
{
    v->s.idtr.base = PA(l2_idt);
    v->s.idtr.limit = sizeof(l2_idt) - 1;
    ev_vec = ev_err = ev_rip = ~0ull;
    ev_count = 0;
}

L2_INSN(l2_sti_idle, "sti", "nop; nop; nop; nop");
static void events(void)
{
    memset(l2_idt, 0, sizeof(l2_idt));
    l2_gate(2, l2_isr_2);
    l2_gate(13, l2_isr_13);
    l2_gate(0x20, l2_isr_0x20);
    l2_gate(0x30, l2_isr_0x30);
    l2_gate(0x80, l2_isr_0x80);

    svm_vmcb_init(v, l2_idle);
    l2_own_idt();
    v->c.event_inj = EVT(0x20, EVT_TYPE_INTR);
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "EVENTINJ INTR 0x20: L2's handler");
    TEST_EQ(ev_vec, 0x20, "vector 0x20 delivered");
    TEST_EQ(ev_rip, PA(l2_idle), "before L2's first instruction");
    TEST_EQ(ev_count, 1, "once");
    TEST_EQ(v->c.event_inj & EVT_VALID, 0, "EVENTINJ.V cleared after the injection");

    svm_vmcb_init(v, l2_idle);
    l2_own_idt();
    v->c.event_inj = EVT(0, EVT_TYPE_NMI);
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "EVENTINJ NMI");
    TEST_EQ(ev_vec, 2, "NMI: vector 2 (VECTOR ignored)");

    svm_vmcb_init(v, l2_idle);
    l2_own_idt();
    v->c.event_inj = EVT_ERR(13, EVT_TYPE_EXC, 0x1234);
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "EVENTINJ #GP with error code");
    TEST_EQ(ev_vec, 13, "#GP delivered");
    TEST_EQ(ev_err, 0x1234, "with error code 0x1234 pushed");

    svm_vmcb_init(v, l2_idle);
    l2_own_idt();
    v->c.event_inj = EVT(0x80, EVT_TYPE_SWINT);
    v->c.nrip = PA(l2_idle) + 2;
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "EVENTINJ software interrupt 0x80");
    TEST_EQ(ev_vec, 0x80, "vector 0x80");
    TEST_EQ(ev_err, ~0ull, "no error code");
    if (svm_has(SVMF_NRIPS) && !on_qemu_tcg())
        TEST_EQ(ev_rip, PA(l2_idle) + 2, "software interrupt: the return address is nRIP (APM 15.20)");

    /* EXITINTINFO: the delivery of an injected #GP faults on the IDT (an unmapped page) */
    svm_vmcb_init(v, l2_idle);
    svm_intercept(v, I_EXC(PF_VECTOR));
    v->s.idtr.base = 0x140000000ull;
    v->c.event_inj = EVT_ERR(13, EVT_TYPE_EXC, 0x18);
    TEST_EQ(svm_run(v), VMEXIT_EXCP(14), "injected #GP, IDT unmapped: #PF intercept");
    TEST_EQ(v->c.exit_info2, 0x140000000ull + 13 * 16, "#PF address: the IDT gate");
    TEST_EQ(v->c.exit_info1, 0, "#PF error code: not present, supervisor read");
    TEST_EQ(v->c.exit_int_info, EVT_ERR(13, EVT_TYPE_EXC, 0x18), "EXITINTINFO holds the injected #GP");
    TEST_EQ(v->s.rip, PA(l2_idle), "RIP still at L2's first instruction");

    /* virtual interrupts */
    svm_vmcb_init(v, l2_idle);
    l2_own_idt();
    v->s.rflags |= FL_IF;
    v->c.int_ctl = V_IRQ | V_INTR_PRIO(2) | V_INTR_MASKING;
    v->c.int_vector = 0x30;
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "V_IRQ with IF=1: taken");
    TEST_EQ(ev_vec, 0x30, "V_INTR_VECTOR 0x30 delivered");
    TEST_EQ(v->c.int_ctl & V_IRQ, 0, "V_IRQ cleared once taken");

    svm_vmcb_init(v, l2_idle);
    l2_own_idt();
    v->c.int_ctl = V_IRQ | V_INTR_PRIO(2) | V_INTR_MASKING;
    v->c.int_vector = 0x30;
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "V_IRQ with IF=0");
    TEST_EQ(ev_count, 0, "not taken");
    TEST_EQ(v->c.int_ctl & V_IRQ, V_IRQ, "V_IRQ still pending");

    svm_vmcb_init(v, l2_idle);
    l2_own_idt();
    v->s.rflags |= FL_IF;
    v->c.int_ctl = V_IRQ | V_INTR_PRIO(2) | V_INTR_MASKING | 5; /* V_TPR 5 */
    v->c.int_vector = 0x30;
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "V_IRQ priority 2 under V_TPR 5");
    TEST_EQ(ev_count, 0, "masked by V_TPR");
    v->c.int_ctl = V_IRQ | V_INTR_PRIO(2) | V_INTR_MASKING | V_IGN_TPR | 5;
    v->s.rip = PA(l2_idle);
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "V_IGN_TPR");
    TEST_EQ(ev_vec, 0x30, "V_IGN_TPR: taken despite V_TPR");

    svm_vmcb_init(v, l2_sti_idle);
    l2_own_idt();
    svm_intercept(v, I_VINTR);
    v->c.int_ctl = V_IRQ | V_INTR_PRIO(2) | V_INTR_MASKING;
    v->c.int_vector = 0x30;
    TEST_EQ(svm_run(v), VMEXIT_VINTR, "VINTR intercept: exit when L2 could take the virtual interrupt");
    TEST_EQ(ev_count, 0, "not delivered");
    TEST_ASSERT(v->s.rip >= PA(l2_sti_idle_i) && v->s.rip <= PA(l2_sti_idle_i) + 1,
                "after the STI (and its shadow): RIP %#llx", (unsigned long long)v->s.rip);

    /* virtual GIF: STGI/CLGI in L2 set V_GIF instead of exiting */
    if (svm_has(SVMF_VGIF)) {
        svm_vmcb_init(v, l2_clgi);
        v->c.int_ctl = BIT(25) | BIT(9); /* V_GIF_ENABLE, V_GIF */
        TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "vGIF: CLGI in L2 does not exit");
        TEST_EQ(v->c.int_ctl & BIT(9), 0, "vGIF: CLGI cleared V_GIF");
        svm_vmcb_init(v, l2_stgi);
        v->c.int_ctl = BIT(25);
        TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "vGIF: STGI in L2 does not exit");
        TEST_EQ(v->c.int_ctl & BIT(9), BIT(9), "vGIF: STGI set V_GIF");
        /* a clear V_GIF holds the virtual interrupt (APM 15.33.6) */
        svm_vmcb_init(v, l2_idle);
        l2_own_idt();
        v->s.rflags |= FL_IF;
        v->c.int_ctl = V_IRQ | V_INTR_PRIO(2) | V_INTR_MASKING | BIT(25);
        v->c.int_vector = 0x30;
        TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "vGIF clear, V_IRQ, IF=1");
        TEST_EQ(ev_count, 0, "vGIF clear: the virtual interrupt is held");
        TEST_EQ(v->c.int_ctl & V_IRQ, V_IRQ, "vGIF clear: V_IRQ still pending");
        v->c.int_ctl |= BIT(9);
        v->s.rip = PA(l2_idle);
        TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "vGIF set, V_IRQ, IF=1");
        TEST_EQ(ev_vec, 0x30, "vGIF set: the virtual interrupt is taken");
    }
}

/* AMD's HostOnly/GuestOnly counter bits (PerfEvtSel 41/40) with SVM on: a counter of
 * retired instructions counts only L1's or only L2's (L2 runs 2001 instructions: the MOV
 * and 1000 DEC/JNZ pairs; its intercepted VMMCALL does not retire) */
#define MSR_PERF_CTL0 0xc0010000u
#define MSR_PERF_CTR0 0xc0010004u
static u64 count_l2_loop(u64 hg)
{
    wrmsr(MSR_PERF_CTL0, 0);
    wrmsr(MSR_PERF_CTR0, 0);
    svm_vmcb_init(v, l2_loop1000);
    wrmsr(MSR_PERF_CTL0, 0xc0 | BIT(16) | BIT(17) | BIT(22) | hg);
    u32 code = (u32)svm_run(v);
    wrmsr(MSR_PERF_CTL0, 0);
    TEST_EQ(code, VMEXIT_VMMCALL, "the counted L2 ends with VMMCALL");
    return rdmsr(MSR_PERF_CTR0);
}

static void host_guest_counters(void)
{
    u64 guest = count_l2_loop(1ull << 40), host = count_l2_loop(1ull << 41);
    u64 both = count_l2_loop(3ull << 40), none = count_l2_loop(0);
    TEST_ASSERT(guest >= 2001 && guest <= 2003, "GuestOnly: L2's 2001 instructions (%llu)",
                (unsigned long long)guest);
    TEST_ASSERT(host > 0 && host < 400, "HostOnly: L1's around VMRUN only (%llu)",
                (unsigned long long)host);
    TEST_ASSERT(both >= guest + host - 2 && both <= guest + host + 2,
                "both bits: host and guest (%llu)", (unsigned long long)both);
    TEST_ASSERT(none >= guest + host - 2 && none <= guest + host + 2,
                "neither bit: host and guest (%llu)", (unsigned long long)none);
    /* with SVM off, one bit alone counts nothing */
    u64 efer = rdmsr(MSR_EFER);
    wrmsr(MSR_EFER, efer & ~EFER_SVME);
    wrmsr(MSR_PERF_CTR0, 0);
    wrmsr(MSR_PERF_CTL0, 0xc0 | BIT(16) | BIT(17) | BIT(22) | (1ull << 41));
    for (volatile int k = 0; k < 100; k++)
        ;
    wrmsr(MSR_PERF_CTL0, 0);
    TEST_EQ(rdmsr(MSR_PERF_CTR0), 0, "HostOnly with EFER.SVME clear: nothing counted");
    wrmsr(MSR_EFER, efer);
}

/* TSC_RATIO (APM 15.30.5): L2's TSC is L1's times the ratio (8.32 fixed point), plus the
 * VMCB's offset */
static void tsc_ratio(void)
{
    if (!svm_has(SVMF_TSC_RATE)) {
        test_skip("no TSC ratio");
        return;
    }
    TEST_EQ(wrmsr_safe(MSR_TSC_RATIO, 1ull << 40), 13, "TSC_RATIO: bits 63:40 are reserved");
    wrmsr(MSR_TSC_RATIO, 2ull << 32);
    svm_vmcb_init(v, l2_rdtsc);
    v->c.tsc_offset = 1000;
    u64 before = rdtsc();
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "RDTSC in L2 with TSC_RATIO 2.0");
    u64 after = rdtsc();
    u64 l2 = (v->s.rax & 0xffffffffull) | svm_gregs[2] << 32;
    TEST_ASSERT(l2 >= 2 * before + 1000 && l2 <= 2 * after + 1000,
                "L2's TSC %llu is twice L1's (%llu..%llu) plus 1000", (unsigned long long)l2,
                (unsigned long long)before, (unsigned long long)after);
    wrmsr(MSR_TSC_RATIO, 1ull << 32);
    TEST_ASSERT(rdtsc() >= after, "L1's own TSC is not scaled");

    /* the TSC and its offsets wrap modulo 2^64 (L1's TSC near 2^63, an offset of 2^62) */
    u64 saved = rdtsc();
    wrmsr(0x10, 0x7fffffff00000000ull); /* IA32_TSC */
    svm_vmcb_init(v, l2_rdtsc);
    v->c.tsc_offset = 0x4000000000000000ull;
    before = rdtsc();
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "RDTSC in L2 with L1's TSC near 2^63");
    after = rdtsc();
    l2 = (v->s.rax & 0xffffffffull) | svm_gregs[2] << 32;
    TEST_ASSERT(l2 - 0x4000000000000000ull >= before && l2 - 0x4000000000000000ull <= after,
                "L2's TSC %#llx is L1's (%#llx..%#llx) plus 2^62, modulo 2^64",
                (unsigned long long)l2, (unsigned long long)before, (unsigned long long)after);
    wrmsr(0x10, saved);
}

void test_main(void)
{
    if (!svm_supported()) {
        TEST_ASSERT(false, "SVM with cpu=max,vendor=AuthenticAMD");
        return;
    }
    svm_enable();
    crs();
    exceptions();
    instructions();
    io();
    msrs();
    shutdown();
    events();
    tsc_ratio();
    host_guest_counters();
}

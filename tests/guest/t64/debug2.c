/* Debug traps around instruction boundaries that change the rules: MOV SS / POP SS
 * (SDM Vol. 3A 6.8.3: the single-step trap after it is suppressed, data breakpoints it
 * hit are held until after the next instruction or folded into a #DB that comes first,
 * Intel suppresses an instruction breakpoint on the next instruction, AMD does not),
 * single-step over STI; HLT (the trap after HLT ends the halt state), and SYSCALL/SYSRET,
 * which trap on TF at their end rather than at their start, in 64-bit and (AMD only)
 * compatibility mode, while SYSENTER, which keeps TF, traps at the kernel entry.
 * QEMU TCG: ICEBP raises #UD there and DR7.GD is not implemented; its data breakpoints
 * and code breakpoints do not follow the MOV SS rules, so those checks are skipped. */
/* guest: name=debug2 */
/* guest: cpu=max,vendor=AuthenticAMD name=debug2-amd */
#include "rt.h"

struct db_event { ulong rip, cs, dr6; };
static volatile struct db_event ev[16];
static volatile int nev;
static volatile bool clear_tf; /* the handler clears TF in the interrupted context */

static void db_handler(struct exc_frame *f)
{
    ulong dr6 = read_dr6();
    if (nev < 16) {
        ev[nev].rip = f->ip;
        ev[nev].cs = f->cs;
        ev[nev].dr6 = dr6;
    }
    nev++;
    write_dr6(DR6_RESET);
    if (dr6 & 0xf)
        f->flags |= FL_RF; /* an instruction breakpoint is a fault: do not repeat it */
    if (clear_tf)
        f->flags &= ~FL_TF;
}

static void reset_events(void)
{
    nev = 0;
    memset((void *)ev, 0, sizeof(ev));
    clear_tf = false;
    write_dr6(DR6_RESET);
}

static void call_asm(const u8 *fn)
{
    asm volatile("call *%0" ::"r"(fn) : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
                 "memory", "cc");
}

static bool is_amd(void)
{
    struct cpuid_regs r = cpuid(0);
    return !memcmp(&r.b, "Auth", 4);
}

static volatile u16 ss_sel; /* the SS selector, loaded from memory under a data breakpoint */

extern u8 mss_icebp[], mss_icebp_l1[], mss_icebp_l2[], mss_icebp_l3[], mss_icebp_l4[],
    mss_icebp_l5[], mss_gd[], mss_gd_mov[], mss_gd_l1[], mss_gd_l2[], mss_gd_l3[], mss_gd_l4[],
    mss_data_icebp[], mss_data_icebp_after[], mss_data_gd[], mss_data_gd_mov[],
    mss_data_int3[], mss_data_ud2[], mss_data_ud2_at[], mss_code_bp[], mss_code_bp_target[],
    sti_hlt[], sti_hlt_at[], sti_hlt_l1[], sti_hlt_l2[], sti_hlt_l3[], sti_hlt_l4[];
asm(".text\n"
    /* TF, then MOV SS and two ICEBPs: the single-step trap after MOV SS is suppressed,
     * each ICEBP raises its own #DB (no BS: an instruction that delivers an event has no
     * single-step trap), then single-steps until TF is cleared */
    "mss_icebp:\n"
    "  mov %ss, %eax\n"
    "  pushfq\n"
    "  orq $0x100, (%rsp)\n"
    "  popfq\n"
    "  mov %eax, %ss\n"
    "  .byte 0xf1\n"
    "mss_icebp_l1: .byte 0xf1\n"
    "mss_icebp_l2: pushfq\n"
    "mss_icebp_l3: andq $~0x100, (%rsp)\n"
    "mss_icebp_l4: popfq\n"
    "mss_icebp_l5: ret\n"
    /* TF, MOV SS, then a MOV DR with DR7.GD=1: one general-detect #DB (a fault, BD only),
     * the MOV DR runs again (delivery cleared GD) and single-steps go on */
    "mss_gd:\n"
    "  movq $0xffff0ff0, %rax\n"
    "  mov %ss, %ecx\n"
    "  pushfq\n"
    "  orq $0x100, (%rsp)\n"
    "  popfq\n"
    "  mov %ecx, %ss\n"
    "mss_gd_mov: mov %rax, %dr6\n"
    "mss_gd_l1: pushfq\n"
    "mss_gd_l2: andq $~0x100, (%rsp)\n"
    "mss_gd_l3: popfq\n"
    "mss_gd_l4: ret\n"
    /* MOV SS reading a watched variable, then ICEBP: one #DB, with the data breakpoint */
    "mss_data_icebp:\n"
    "  mov ss_sel(%rip), %ss\n"
    "  .byte 0xf1\n"
    "mss_data_icebp_after: ret\n"
    /* ... then a MOV DR with GD: one #DB with BD and the data breakpoint */
    "mss_data_gd:\n"
    "  movq $0xffff0ff0, %rax\n"
    "  mov ss_sel(%rip), %ss\n"
    "mss_data_gd_mov: mov %rax, %dr6\n"
    "  ret\n"
    /* ... then INT3: #BP, and the #DB at the #BP handler's first instruction */
    "mss_data_int3:\n"
    "  mov ss_sel(%rip), %ss\n"
    "  int3\n"
    "  ret\n"
    /* ... then UD2 (a fault): #UD, and the #DB at the #UD handler's first instruction */
    "mss_data_ud2:\n"
    "  mov ss_sel(%rip), %ss\n"
    "mss_data_ud2_at: ud2\n"
    "  ret\n"
    /* an instruction breakpoint on the instruction after MOV SS */
    "mss_code_bp:\n"
    "  mov %ss, %eax\n"
    "  mov %eax, %ss\n"
    "mss_code_bp_target: nop\n"
    "  ret\n"
    /* TF over STI; HLT: a trap after STI (at the HLT), one after HLT, then the rest */
    "sti_hlt:\n"
    "  pushfq\n"
    "  orq $0x100, (%rsp)\n"
    "  popfq\n"
    "  sti\n"
    "sti_hlt_at: hlt\n"
    "sti_hlt_l1: pushfq\n"
    "sti_hlt_l2: andq $~0x100, (%rsp)\n"
    "sti_hlt_l3: popfq\n"
    "sti_hlt_l4: cli\n"
    "  ret\n");

/* POP SS (valid outside 64-bit mode) behaves as MOV SS: in compatibility mode at CPL 0,
 * entered by a far call */
extern u8 pss_compat[], pss_after[];
asm(".text\n"
    ".code32\n"
    "pss_compat:\n"
    "  push %ss\n"
    "  pushf\n"
    "  orl $0x100, (%esp)\n"
    "  popf\n"
    "  pop %ss\n"
    "  .byte 0xf1\n"
    "pss_after: lret\n"
    ".code64\n");

static bool ev_is(int k, const u8 *rip, ulong dr6_bits)
{
    return ev[k].rip == (ulong)rip && (ev[k].dr6 & (0xf | DR6_BD | DR6_BS)) == dr6_bits;
}

static void show_events(const char *what)
{
    for (int k = 0; k < nev && k < 16; k++)
        printf("  %s: #DB %d at %#lx dr6 %#lx\n", what, k, (ulong)ev[k].rip, (ulong)ev[k].dr6);
}

static void check_movss_single_step(void)
{
    if (on_qemu_tcg()) {
        test_skip("MOV SS + ICEBP / DR7.GD: QEMU TCG has no ICEBP #DB and no general detect");
        return;
    }
    reset_events();
    call_asm(mss_icebp);
    bool ok = nev == 5 && ev_is(0, mss_icebp_l1, 0) && ev_is(1, mss_icebp_l2, 0) &&
              ev_is(2, mss_icebp_l3, DR6_BS) && ev_is(3, mss_icebp_l4, DR6_BS) &&
              ev_is(4, mss_icebp_l5, DR6_BS);
    if (!ok)
        show_events("mov ss; icebp");
    TEST_ASSERT(ok, "TF + MOV SS + ICEBP: one #DB per ICEBP without BS, no second #DB in "
                "the handler, then single-steps (%d events)", nev);

    reset_events();
    write_dr7(DR7_GD);
    call_asm(mss_gd);
    ok = nev == 5 && ev_is(0, mss_gd_mov, DR6_BD) && ev_is(1, mss_gd_l1, DR6_BS) &&
         ev_is(2, mss_gd_l2, DR6_BS) && ev_is(3, mss_gd_l3, DR6_BS) && ev_is(4, mss_gd_l4, DR6_BS);
    if (!ok)
        show_events("mov ss; mov dr (GD)");
    TEST_ASSERT(ok, "TF + MOV SS + MOV DR with DR7.GD: one general-detect #DB (BD, no BS), "
                "then single-steps (%d events)", nev);
    TEST_EQ(read_dr7() & DR7_GD, 0, "DR7.GD cleared by the #DB");
    write_dr7(0);

    reset_events();
    clear_tf = true;
    struct { u32 off; u16 sel; } __attribute__((packed)) far = {(u32)(ulong)pss_compat, SEL_KCODE32};
    asm volatile("lcall *%0" :: "m"(far) : "memory");
    if (nev != 1)
        show_events("pop ss; icebp");
    TEST_ASSERT(nev == 1 && ev_is(0, pss_after, 0),
                "TF + POP SS + ICEBP (compatibility mode): one #DB, after the ICEBP, without "
                "BS (%d events)", nev);
}

static volatile int bp_count, ud_count;
static void bp_handler(struct exc_frame *f) { (void)f; bp_count++; }
static void ud_handler(struct exc_frame *f) { f->ip += 2; ud_count++; }

static void watch_ss_sel(void)
{
    ss_sel = read_ss();
    write_dr1((ulong)&ss_sel);
    write_dr7(DR7_L(1) | DR7_RW(1, 3) | DR7_LEN(1, 1)); /* read/write, 2 bytes */
}

static void check_movss_data_bp(void)
{
    if (on_qemu_tcg()) {
        test_skip("MOV SS + data breakpoint: QEMU TCG has no ICEBP #DB and does not hold "
                  "data breakpoints across MOV SS");
        return;
    }
    /* ICEBP right after: the held data breakpoint comes with ICEBP's #DB */
    reset_events();
    watch_ss_sel();
    call_asm(mss_data_icebp);
    write_dr7(0);
    if (nev != 1)
        show_events("mov ss (watched); icebp");
    TEST_ASSERT(nev == 1 && ev_is(0, mss_data_icebp_after, DR6_B(1)),
                "MOV SS (data breakpoint) + ICEBP: one #DB after the ICEBP with DR6.B1 "
                "(%d events, dr6 %#lx)", nev, (ulong)ev[0].dr6);

    /* general detect right after: one #DB with BD and B1 */
    reset_events();
    watch_ss_sel();
    write_dr7(read_dr7() | DR7_GD);
    call_asm(mss_data_gd);
    write_dr7(0);
    if (nev != 1)
        show_events("mov ss (watched); mov dr (GD)");
    TEST_ASSERT(nev == 1 && ev_is(0, mss_data_gd_mov, DR6_B(1) | DR6_BD),
                "MOV SS (data breakpoint) + MOV DR with GD: one #DB with BD and B1 "
                "(%d events, dr6 %#lx)", nev, (ulong)ev[0].dr6);

    /* INT3 right after: #BP is delivered, then the #DB before the #BP handler runs */
    reset_events();
    bp_count = 0;
    exc_set_handler(BP_VECTOR, bp_handler);
    watch_ss_sel();
    call_asm(mss_data_int3);
    write_dr7(0);
    exc_set_handler(BP_VECTOR, NULL);
    TEST_ASSERT(bp_count == 1 && nev == 1 && ev_is(0, idt_stub_table[BP_VECTOR], DR6_B(1)),
                "MOV SS (data breakpoint) + INT3: #BP, then #DB at its handler's first "
                "instruction (%d #BP, %d #DB at %#lx)", bp_count, nev, (ulong)ev[0].rip);

    /* a fault right after: the same, at the #UD handler's first instruction */
    reset_events();
    ud_count = 0;
    exc_set_handler(UD_VECTOR, ud_handler);
    watch_ss_sel();
    call_asm(mss_data_ud2);
    write_dr7(0);
    exc_set_handler(UD_VECTOR, NULL);
    TEST_ASSERT(ud_count == 1 && nev == 1 && ev_is(0, idt_stub_table[UD_VECTOR], DR6_B(1)),
                "MOV SS (data breakpoint) + UD2: #UD, then #DB at its handler's first "
                "instruction, before it runs (%d #UD, %d #DB at %#lx, stub %#lx)", ud_count,
                nev, (ulong)ev[0].rip, (ulong)idt_stub_table[UD_VECTOR]);
}

static void check_movss_code_bp(void)
{
    if (on_qemu_tcg()) {
        test_skip("instruction breakpoint after MOV SS: not modelled by QEMU TCG");
        return;
    }
    reset_events();
    write_dr0((ulong)mss_code_bp_target);
    write_dr7(DR7_L(0)); /* execute, 1 byte */
    call_asm(mss_code_bp);
    write_dr7(0);
    if (is_amd())
        TEST_ASSERT(nev == 1 && ev_is(0, mss_code_bp_target, DR6_B(0)),
                    "AMD: an instruction breakpoint right after MOV SS fires (%d events)", nev);
    else
        TEST_EQ(nev, 0, "Intel: an instruction breakpoint right after MOV SS is suppressed");
    /* outside the shadow it fires on both (nop; ret at the breakpoint address) */
    reset_events();
    write_dr7(DR7_L(0));
    call_asm(mss_code_bp_target);
    write_dr7(0);
    TEST_ASSERT(nev == 1 && ev_is(0, mss_code_bp_target, DR6_B(0)),
                "the same breakpoint fires when no MOV SS precedes (%d events)", nev);
}

static void check_sti_hlt(void)
{
    reset_events();
    call_asm(sti_hlt);
    bool ok = nev == 5 && ev_is(0, sti_hlt_at, DR6_BS) && ev_is(1, sti_hlt_l1, DR6_BS) &&
              ev_is(2, sti_hlt_l2, DR6_BS) && ev_is(3, sti_hlt_l3, DR6_BS) &&
              ev_is(4, sti_hlt_l4, DR6_BS);
    if (!ok)
        show_events("sti; hlt");
    TEST_ASSERT(ok, "TF over STI; HLT: traps after STI and after HLT, the handler runs and "
                "execution goes on (%d events)", nev);
}

/* SYSCALL with SFMASK clearing TF and SYSRET restoring it from R11 */
extern u8 sc_entry64[], sc_entry32[], sc_entry_settf[], sc_user64[], sc_user64_ret[],
    sc_user32[], sc_user32_ret[];
asm(".text\n"
    "sc_entry64:\n"
    "  sysretq\n"
    "sc_entry32:\n"
    "  sysretl\n"
    /* TF set in the kernel but clear in R11: SYSRET ends with TF=0, so no trap */
    "sc_entry_settf:\n"
    "  andq $~0x100, %r11\n"
    "  pushfq\n"
    "  orq $0x100, (%rsp)\n"
    "  popfq\n"
    "  sysretq\n"
    "sc_user64:\n"
    "  syscall\n"
    "sc_user64_ret: nop\n"
    "  mov $0x5a, %eax\n"
    "  int $0x7f\n"
    ".code32\n"
    "sc_user32:\n"
    "  syscall\n"
    "sc_user32_ret: nop\n"
    "  mov $0x5a, %eax\n"
    "  int $0x7f\n"
    ".code64\n");

/* SYSENTER leaves TF alone (it clears VM, IF and RF): with TF set, the single-step trap
 * comes at the kernel's entry point, at CPL 0 */
extern u8 se_entry[], se_user[];
asm(".text\n"
    "se_entry:\n"
    "  sysexitq\n"
    "se_user:\n"
    "  mov %rsp, %rcx\n"
    "  lea se_user_ret(%rip), %rdx\n"
    "  pushfq\n"
    "  orq $0x100, (%rsp)\n"
    "  popfq\n"
    "  sysenter\n"
    "se_user_ret: nop\n"
    "  mov $0x5a, %eax\n"
    "  int $0x7f\n");

static ulong run_sc_user(const u8 *ip, u16 cs)
{
    return run_user_raw((ulong)ip, 0, FL_TF, cs, SEL_UDATA, (ulong)user_stack + sizeof(user_stack));
}

static void check_syscall_tf(void)
{
    if (!HAS_SYSCALL()) {
        test_skip("SYSCALL: not in CPUID");
        return;
    }
    u64 efer = rdmsr(MSR_EFER);
    wrmsr(MSR_EFER, efer | EFER_SCE);
    wrmsr(MSR_STAR, ((u64)(SEL_UCODE32 & ~3) << 48) | ((u64)SEL_KCODE64 << 32));

    /* SFMASK clears TF: no trap in the kernel; SYSRET sets TF from R11: trap in user */
    wrmsr(MSR_LSTAR, (ulong)sc_entry64);
    wrmsr(MSR_FMASK, FL_TF | FL_DF | FL_AC);
    reset_events();
    clear_tf = true;
    ulong r = run_sc_user(sc_user64, SEL_UCODE64);
    if (nev != 1)
        show_events("64-bit syscall");
    TEST_ASSERT(r == 0x5a && nev == 1 && ev[0].rip == (ulong)sc_user64_ret &&
                    ev[0].cs == SEL_UCODE64 && (ev[0].dr6 & DR6_BS),
                "64-bit SYSCALL masking TF: no #DB in the kernel; SYSRET restoring TF: #DB "
                "right after it, in user mode (%d events, first at %#lx cs %#lx)", nev,
                (ulong)ev[0].rip, (ulong)ev[0].cs);

    /* SFMASK keeps TF: the trap comes at the kernel entry, and again after SYSRET */
    wrmsr(MSR_FMASK, FL_DF | FL_AC);
    reset_events();
    clear_tf = true;
    r = run_sc_user(sc_user64, SEL_UCODE64);
    TEST_ASSERT(r == 0x5a && nev == 2 && ev[0].rip == (ulong)sc_entry64 &&
                    ev[0].cs == SEL_KCODE64 && ev[1].rip == (ulong)sc_user64_ret &&
                    ev[1].cs == SEL_UCODE64,
                "64-bit SYSCALL keeping TF: #DB at the kernel entry, then after SYSRET (%d "
                "events, first at %#lx)", nev, (ulong)ev[0].rip);

    /* TF set when SYSRET starts but clear in R11: no trap after it */
    wrmsr(MSR_LSTAR, (ulong)sc_entry_settf);
    wrmsr(MSR_FMASK, FL_TF | FL_DF | FL_AC);
    reset_events();
    clear_tf = true;
    r = run_sc_user(sc_user64, SEL_UCODE64);
    if (nev != 0)
        show_events("sysret clearing TF");
    TEST_ASSERT(r == 0x5a && nev == 0, "SYSRET that clears TF: no #DB although TF was set "
                "at its start (%d events)", nev);

    /* compatibility mode (AMD only: Intel's SYSCALL is #UD outside 64-bit mode) */
    if (is_amd()) {
        wrmsr(MSR_CSTAR, (ulong)sc_entry32);
        wrmsr(MSR_FMASK, FL_TF | FL_DF | FL_AC);
        reset_events();
        clear_tf = true;
        r = run_sc_user(sc_user32, SEL_UCODE32);
        if (nev != 1)
            show_events("compat syscall");
        TEST_ASSERT(r == 0x5a && nev == 1 && ev[0].rip == (ulong)sc_user32_ret &&
                        ev[0].cs == SEL_UCODE32 && (ev[0].dr6 & DR6_BS),
                    "compatibility-mode SYSCALL masking TF: no #DB in the kernel; SYSRETL: "
                    "#DB right after it in 32-bit user code (%d events, first at %#lx cs %#lx)",
                    nev, (ulong)ev[0].rip, (ulong)ev[0].cs);
    } else {
        test_skip("compatibility-mode SYSCALL: #UD on Intel (the debug2-amd run covers it)");
    }
    wrmsr(MSR_FMASK, 0);
    wrmsr(MSR_EFER, efer);
}

static void check_sysenter_tf(void)
{
    if (!HAS_SEP() || is_amd()) {
        test_skip("SYSENTER with TF: SYSENTER is #UD in long mode on AMD");
        return;
    }
    u64 cs = rdmsr(MSR_SYSENTER_CS), esp = rdmsr(MSR_SYSENTER_ESP), eip = rdmsr(MSR_SYSENTER_EIP);
    wrmsr(MSR_SYSENTER_CS, SEL_KCODE64);
    wrmsr(MSR_SYSENTER_ESP, (ulong)kernel_stack + sizeof(kernel_stack));
    wrmsr(MSR_SYSENTER_EIP, (ulong)se_entry);
    reset_events();
    clear_tf = true;
    ulong r = run_user_raw((ulong)se_user, 0, 0, SEL_UCODE64, SEL_UDATA,
                           (ulong)user_stack + sizeof(user_stack));
    TEST_ASSERT(r == 0x5a && nev == 1 && ev[0].rip == (ulong)se_entry &&
                    ev[0].cs == SEL_KCODE64 && (ev[0].dr6 & DR6_BS),
                "SYSENTER with TF: #DB at the kernel entry, CPL 0 (%d events, first at %#lx "
                "cs %#lx)", nev, (ulong)ev[0].rip, (ulong)ev[0].cs);
    wrmsr(MSR_SYSENTER_CS, cs);
    wrmsr(MSR_SYSENTER_ESP, esp);
    wrmsr(MSR_SYSENTER_EIP, eip);
}

void test_main(void)
{
    exc_set_handler(DB_VECTOR, db_handler);
    check_movss_single_step();
    check_movss_data_bp();
    check_movss_code_bp();
    check_sti_hlt();
    check_syscall_tf();
    check_sysenter_tf();
}

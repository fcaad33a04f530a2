/* Debug facilities: DR0-DR3 instruction and data breakpoints, DR6 status bits, DR7.GD,
 * RF, single-stepping with TF (including over a faulting instruction, over IRET and the
 * MOV SS shadow), INT3 and INT1 (ICEBP). */
#include "rt.h"

struct db_event { ulong rip, dr6; };
static volatile struct db_event ev[16];
static volatile int nev;

static void db_handler(struct exc_frame *f)
{
    ulong dr6 = read_dr6();
    if (nev < 16) {
        ev[nev].rip = f->ip;
        ev[nev].dr6 = dr6;
    }
    nev++;
    write_dr6(DR6_RESET);
    if (dr6 & 0xf) {
        /* an instruction breakpoint is a fault: resume with RF so it does not repeat */
        f->flags |= FL_RF;
    }
}

static void reset_events(void)
{
    nev = 0;
    memset((void *)ev, 0, sizeof(ev));
    write_dr6(DR6_RESET);
}

/* Sequences in assembly, with their labels visible to C. */
extern u8 bp_target[], step_seq[], step_l2[], step_l3[], step_l4[], step_l5[], step_l6[],
    fault_seq[], fault_ud[], fault_fix[], fault_after[], iret_seq[], iret_target[],
    movss_seq[], movss_after_nop[], movss_mov[];
static volatile u32 bp_count;
static volatile u32 watch_area[4] ALIGNED(16);
#define watched watch_area[0]
asm(".text\n"
    "bp_target:\n"
    "  incl bp_count(%rip)\n"
    "  ret\n"
    /* TF stepping: 5 traps expected, after each instruction up to the clearing popf */
    "step_seq:\n"
    "  pushfq\n"
    "  orq $0x100, (%rsp)\n"
    "  popfq\n"
    "  nop\n"
    "step_l2: nop\n"
    "step_l3: pushfq\n"
    "step_l4: andq $~0x100, (%rsp)\n"
    "step_l5: popfq\n"
    "step_l6: ret\n"
    /* TF over a faulting instruction: ud2 raises #UD (no #DB for it), fixup to fault_fix */
    "fault_seq:\n"
    "  movl $-1, exc_last(%rip)\n"
    "  leaq fault_fix(%rip), %rax\n"
    "  movq %rax, exc_fixup_ip(%rip)\n"
    "  pushfq\n"
    "  orq $0x100, (%rsp)\n"
    "  popfq\n"
    "  nop\n"
    "fault_ud: ud2\n"
    "fault_fix: nop\n"
    "fault_after: pushfq\n"
    "  andq $~0x100, (%rsp)\n"
    "  popfq\n"
    "  ret\n"
    /* TF set while IRET loads flags with TF clear: one #DB, at the IRET's target */
    "iret_seq:\n"
    "  mov %ss, %eax\n"
    "  pushq %rax\n"
    "  leaq 8(%rsp), %rax\n"
    "  pushq %rax\n"
    "  pushfq\n"
    "  andq $~0x100, (%rsp)\n"
    "  mov %cs, %eax\n"
    "  pushq %rax\n"
    "  leaq iret_target(%rip), %rax\n"
    "  pushq %rax\n"
    "  pushfq\n"
    "  orq $0x100, (%rsp)\n"
    "  popfq\n"
    "  nop\n"                        /* trap after this one (TF set by popf) */
    "  iretq\n"                      /* TF was set at its start: trap after it */
    "iret_target:\n"
    "  ret\n"
    /* MOV SS suppresses the single-step trap for one instruction */
    "movss_seq:\n"
    "  mov %ss, %eax\n"
    "  pushfq\n"
    "  orq $0x100, (%rsp)\n"
    "  popfq\n"
    "  nop\n"
    "movss_mov: mov %eax, %ss\n"
    "  nop\n"
    "movss_after_nop: pushfq\n"
    "  andq $~0x100, (%rsp)\n"
    "  popfq\n"
    "  ret\n");

static void call_asm(const u8 *fn)
{
    asm volatile("call *%0" ::"r"(fn) : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
                 "memory", "cc");
}

static void check_instruction_bp(void)
{
    reset_events();
    bp_count = 0;
    write_dr0((ulong)bp_target);
    write_dr7(DR7_L(0) | DR7_RW(0, 0) | DR7_LEN(0, 0));
    call_asm(bp_target);
    write_dr7(0);
    TEST_EQ(nev, 1, "instruction breakpoint: one #DB");
    TEST_EQ(ev[0].rip, (ulong)bp_target, "instruction breakpoint: fault, RIP at the instruction");
    TEST_ASSERT((ev[0].dr6 & 0xf) == DR6_B(0), "instruction breakpoint: DR6.B0 (%#lx)", (ulong)ev[0].dr6);
    TEST_EQ(bp_count, 1, "RF: the instruction ran once after the #DB");
    TEST_ASSERT(!(read_flags() & FL_RF), "RF is clear again");

    /* DR3 the same, and a disabled breakpoint does nothing */
    reset_events();
    write_dr3((ulong)bp_target);
    write_dr7(DR7_L(3));
    call_asm(bp_target);
    /* B0 may be set too: DR0 still matches, and B0-B3 report matches of disabled
     * breakpoints as well (SDM 17.2.3) */
    TEST_ASSERT(nev == 1 && (ev[0].dr6 & DR6_B(3)), "DR3 instruction breakpoint (dr6 %#lx)", (ulong)ev[0].dr6);
    write_dr7(0);
    reset_events();
    call_asm(bp_target);
    TEST_EQ(nev, 0, "disabled breakpoints do not trigger");
}

static void check_data_bp(void)
{
    reset_events();
    write_dr1((ulong)&watched);
    write_dr7(DR7_L(1) | DR7_RW(1, 1) | DR7_LEN(1, 3)); /* write, 4 bytes */
    ulong after;
    asm volatile(ASM_LABEL_ADDR("1f", "%0") "movl $5, %1\n1:" : "=&r"(after), "=m"(watched));
    TEST_EQ(nev, 1, "data write breakpoint: one #DB");
    TEST_EQ(ev[0].rip, after, "data breakpoint: trap, RIP after the write");
    TEST_ASSERT((ev[0].dr6 & 0xf) == DR6_B(1), "data breakpoint: DR6.B1 (%#lx)", (ulong)ev[0].dr6);
    u32 v = watched;
    TEST_EQ(nev, 1, "write-only breakpoint ignores reads");
    write_dr7(DR7_L(1) | DR7_RW(1, 3) | DR7_LEN(1, 3)); /* read/write */
    v = *(volatile u32 *)&watched;
    TEST_EQ(nev, 2, "read/write breakpoint triggers on a read");
    reset_events();
    v = *(volatile u8 *)((u8 *)&watched + 2);
    TEST_EQ(nev, 1, "read/write breakpoint covers a byte inside its 4-byte range");
    reset_events();
    v += watch_area[1];
    TEST_EQ(nev, 0, "a byte after the range does not trigger");
    (void)v;
    write_dr7(0);

    /* DR7.GD: the next MOV DR faults with DR6.BD */
    if (on_qemu_tcg()) {
        test_skip("DR7.GD: QEMU TCG does not implement general detect");
        return;
    }
    reset_events();
    write_dr7(DR7_GD);
    ulong at;
    asm volatile(ASM_LABEL_ADDR("1f", "%0") "1: mov %%dr0, %%rax" : "=&r"(at) :: "rax");
    TEST_EQ(nev, 1, "DR7.GD: MOV DR raises #DB");
    TEST_EQ(ev[0].rip, at, "DR7.GD: fault at the MOV DR");
    TEST_ASSERT(ev[0].dr6 & DR6_BD, "DR7.GD: DR6.BD set (%#lx)", (ulong)ev[0].dr6);
    TEST_ASSERT(!(read_dr7() & DR7_GD), "DR7.GD cleared on #DB delivery");
}

static void check_single_step(void)
{
    reset_events();
    call_asm(step_seq);
    const u8 *want[] = {step_l2, step_l3, step_l4, step_l5, step_l6};
    TEST_EQ(nev, 5, "TF: one trap per instruction until TF is cleared");
    for (int i = 0; i < 5 && i < nev; i++)
        TEST_ASSERT(ev[i].rip == (ulong)want[i] && (ev[i].dr6 & DR6_BS),
                    "TF step %d: rip %#lx dr6 %#lx", i, (ulong)ev[i].rip, (ulong)ev[i].dr6);

    reset_events();
    call_asm(fault_seq);
    TEST_EQ(exc_last.vector, UD_VECTOR, "TF over ud2: #UD delivered");
    TEST_ASSERT(nev >= 2 && ev[0].rip == (ulong)fault_ud && ev[1].rip == (ulong)fault_after,
                "TF over a faulting instruction: no #DB for it, next trap after the handler's "
                "target (%d events: %#lx %#lx)", nev, (ulong)ev[0].rip, (ulong)ev[1].rip);

    reset_events();
    call_asm(iret_seq);
    TEST_EQ(nev, 2, "TF over IRET that clears TF: traps after the nop and after IRET");
    TEST_EQ(ev[1].rip, (ulong)iret_target, "TF over IRET: trap at the IRET's target");

    reset_events();
    call_asm(movss_seq);
    bool skipped = true;
    for (int i = 0; i < nev && i < 16; i++)
        skipped &= ev[i].rip != (ulong)movss_mov + 2;
    TEST_ASSERT(skipped && nev >= 2, "MOV SS: no single-step trap right after it (%d events)", nev);
    bool found = false;
    for (int i = 0; i < nev && i < 16; i++)
        found |= ev[i].rip == (ulong)movss_after_nop;
    TEST_ASSERT(found, "MOV SS: the trap comes after the following instruction");
}

static void check_int3_int1(void)
{
    exc_set_handler(DB_VECTOR, NULL);
    ulong after;
    asm volatile(ASM_TRY("1f") ASM_LABEL_ADDR("1f", "%0") "int3\n1:" : "=&r"(after) :: "memory");
    TEST_ASSERT(exc_vector() == BP_VECTOR && exc_last.ip == after, "INT3: #BP trap, RIP after it");
    asm volatile(ASM_TRY("1f") ASM_LABEL_ADDR("1f", "%0") ".byte 0xcd, 0x03\n1:" : "=&r"(after) :: "memory");
    TEST_ASSERT(exc_vector() == BP_VECTOR && exc_last.ip == after, "INT 3 (cd 03): #BP trap");
    write_dr6(DR6_RESET);
    asm volatile(ASM_TRY("1f") ASM_LABEL_ADDR("1f", "%0") ".byte 0xf1\n1:" : "=&r"(after) :: "memory");
    int v = exc_vector();
    if (on_qemu_tcg()) {
        test_skip("INT1 (ICEBP): QEMU TCG raises #UD");
    } else {
        TEST_ASSERT(v == DB_VECTOR && exc_last.ip == after, "INT1: #DB trap, RIP after it");
        TEST_EQ(exc_last.dr6 & (DR6_BS | 0xf), 0, "INT1: no B0-B3/BS bits in DR6");
    }
}

void test_main(void)
{
    TEST_EQ(read_dr6(), DR6_RESET, "DR6 reset value");
    TEST_EQ(read_dr7(), 0x400, "DR7 reset value");
    exc_set_handler(DB_VECTOR, db_handler);
    check_instruction_bp();
    check_data_bp();
    check_single_step();
    check_int3_int1();
}

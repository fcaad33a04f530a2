/* Long mode and compatibility mode: the 64-bit code segment, RIP-relative and 32-bit
 * addressing, far calls between 64-bit and 32-bit code at CPL 0, IRETQ into ring-3
 * compatibility mode and interrupts back into 64-bit handlers, 64-bit call gates, IST
 * stacks, stack alignment on interrupt entry and non-canonical RIP. */
#include "rt.h"

extern u8 compat_func[], compat_user[], gate64_target[];
static volatile u64 seen[8];
asm(".text\n"
    ".code32\n"
    "compat_func:\n"              /* CPL 0 compatibility mode, entered by lcall m16:32 */
    "  mov %esp, %ecx\n"
    "  push %eax\n"
    "  sub %esp, %ecx\n"          /* 4 */
    "  pop %eax\n"
    "  mov $5, %eax\n"
    "  .byte 0x48\n"              /* DEC EAX here, REX.W in 64-bit mode */
    "  mov %ecx, %edx\n"
    "  mov %cs, %ecx\n"
    "  lret\n"
    "compat_user:\n"              /* CPL 3 compatibility mode, entered by IRETQ */
    "  mov %cs, %eax\n"
    "  shl $16, %eax\n"
    "  mov $7, %ax\n"
    "  .byte 0x48\n"              /* dec eax: 6 */
    "  int $0x7f\n"
    ".code64\n"
    "gate64_target:\n"            /* ring 0 through a 64-bit call gate */
    "  mov %cs, %eax\n"
    "  mov %rax, seen(%rip)\n"
    "  mov %ss, %eax\n"
    "  mov %rax, seen+8(%rip)\n"
    "  mov %rsp, seen+16(%rip)\n"
    "  mov 8(%rsp), %rax\n"
    "  mov %rax, seen+24(%rip)\n" /* caller CS */
    "  mov 24(%rsp), %rax\n"
    "  mov %rax, seen+32(%rip)\n" /* caller SS */
    "  lretq\n");

static void check_long_mode(void)
{
    u64 efer = rdmsr(MSR_EFER);
    TEST_ASSERT((efer & (EFER_LME | EFER_LMA)) == (EFER_LME | EFER_LMA), "EFER.LME and LMA set");
    u32 ar;
    asm("lar %1, %0" : "=r"(ar) : "r"((u32)SEL_KCODE64));
    TEST_ASSERT((ar & BIT(21)) && !(ar & BIT(22)), "CS.L=1, CS.D=0 (%#x)", ar);
    u64 sp1, sp2;
    asm volatile("mov %%rsp, %0; push $-1; mov %%rsp, %1; pop %%rax" : "=r"(sp1), "=r"(sp2) :: "rax");
    TEST_EQ(sp1 - sp2, 8, "push imm moves RSP by 8");
    u64 rip, here;
    asm("lea 0(%%rip), %0\n1:\t" ASM_LABEL_ADDR("1b", "%1") : "=r"(rip), "=r"(here));
    TEST_EQ(rip, here, "RIP-relative addressing");
    u64 r = 0xffffffff00000000ull;
    asm("movl $5, %k0" : "+r"(r));
    TEST_EQ(r, 5, "32-bit register write zero-extends");
    u64 big = 0x0000000100000010ull, out;
    asm("lea 4(%k1), %0" : "=r"(out) : "r"(big));
    TEST_EQ(out, 0x14, "address-size prefix: 32-bit effective address");
    u32 x = 5;
    asm(".byte 0x48, 0xff, 0xc8" : "+a"(x)); /* REX.W dec rax */
    TEST_EQ(x, 4, "0x48 is REX.W in 64-bit mode");
}

static void check_compat(void)
{
    struct { u32 off; u16 sel; } __attribute__((packed)) far = {(u32)(ulong)compat_func, SEL_KCODE32};
    u64 eax, ecx, edx;
    asm volatile("lcall *%3" : "=a"(eax), "=c"(ecx), "=d"(edx) : "m"(far) : "memory");
    TEST_EQ(ecx & 0xffff, SEL_KCODE32, "far call into compatibility mode at CPL 0");
    TEST_EQ(edx, 4, "compatibility mode: push moves ESP by 4");
    TEST_EQ(eax, 4, "compatibility mode: 0x48 is DEC EAX");

    u64 ret = run_user_raw((ulong)compat_user, 0, 0, SEL_UCODE32, SEL_UDATA,
                           (ulong)user_stack + sizeof(user_stack));
    TEST_EQ(ret >> 16, SEL_UCODE32, "IRETQ to ring-3 compatibility mode");
    TEST_EQ(ret & 0xffff, 6, "ring-3 compatibility code ran, INT back to the 64-bit IDT");
}

static ulong user_gate_call(ulong sel)
{
    struct { u64 off; u16 sel; } __attribute__((packed)) far = {0, (u16)(sel | 3)};
    asm volatile("rex.w lcall *(%0)" ::"r"(&far) : "rax", "memory");
    return 0;
}

static void check_call_gate(void)
{
    int g = GDT_FIRST_FREE;
    gdt_set_gate(g, SEL_KCODE64, (ulong)gate64_target, 0xc, 3, 0);
    run_user(user_gate_call, g * 8, 0);
    TEST_EQ(seen[0], SEL_KCODE64, "64-bit call gate: target at ring 0");
    TEST_EQ(seen[1], 0, "64-bit call gate: SS is null after the privilege change");
    TEST_EQ(seen[2], (ulong)kernel_stack + sizeof(kernel_stack) - 32, "64-bit call gate: RSP0 with SS, RSP, CS, RIP");
    TEST_EQ(seen[3], SEL_UCODE64, "64-bit call gate: caller CS pushed");
    TEST_EQ(seen[4], SEL_UDATA, "64-bit call gate: caller SS pushed");
}

static volatile ulong frame_addr, frame_align_ok;
static void ist_handler(struct exc_frame *f)
{
    frame_addr = (ulong)f;
    frame_align_ok = (((ulong)&f->ip + 5 * 8) & 15) == 0;
}

static void check_ist_and_alignment(void)
{
    exc_set_handler(0x44, ist_handler);
    idt_set_gate(0x44, SEL_KCODE64, (ulong)idt_stub_table[0x44], 0xe, 0, 3);
    asm volatile("int $0x44" ::: "memory");
    ulong ist3 = (ulong)ist_stacks[3];
    TEST_ASSERT(frame_addr >= ist3 && frame_addr < ist3 + sizeof(ist_stacks[3]),
                "IST3: the handler runs on the IST3 stack (%#lx)", frame_addr);
    idt_reset_gate(0x44);
    /* RSP is aligned to 16 before the frame is pushed */
    asm volatile("push %%rax\n\tint $0x44\n\tpop %%rax" ::: "rax", "memory");
    TEST_ASSERT(frame_align_ok, "interrupt frame aligned to 16 bytes from a misaligned RSP");
    exc_set_handler(0x44, NULL);
}

static void check_noncanonical_rip(void)
{
    ulong at;
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") "mov %%rsp, %%r11\n1:\tjmp *%1\n2:\tmov %%r11, %%rsp"
                 : "=&r"(at) : "r"(0x8000000000000000ull) : "r11", "memory");
    int v = exc_vector();
    /* Intel faults on the branch; AMD on the target fetch, reporting the target RIP */
    struct cpuid_regs r = cpuid(0);
    bool amd = !memcmp(&r.b, "Auth", 4);
    ulong want = amd ? 0x8000000000000000ull : at;
    TEST_ASSERT(v == GP_VECTOR && exc_last.error == 0 && exc_last.ip == want,
                "jmp to a non-canonical address: #GP(0), RIP %s (vector %d rip %#lx)",
                amd ? "= target (AMD)" : "at the jmp (Intel)", v, (ulong)exc_last.ip);
}

static void check_iretq(void)
{
    static u8 alt_stack[256] ALIGNED(16);
    ulong top = (ulong)alt_stack + sizeof(alt_stack), got_sp, got_ss;
    /* IRETQ at CPL 0 pops SS:RSP too, unlike a 32-bit same-privilege IRET */
    asm volatile("mov %%rsp, %%r11\n\t"
                 "pushq %3\n\tpushq %2\n\tpushfq\n\tpushq %4\n\t"
                 "lea 1f(%%rip), %%rax\n\tpushq %%rax\n\tiretq\n"
                 "1:\tmov %%rsp, %0\n\tmov %%ss, %k1\n\tmov %%r11, %%rsp"
                 : "=&r"(got_sp), "=&r"(got_ss)
                 : "r"(top), "r"((ulong)SEL_KDATA), "r"((ulong)SEL_KCODE64) : "rax", "r11", "memory");
    TEST_EQ(got_sp, top, "IRETQ to CPL 0 loads RSP from the frame");
    TEST_EQ(got_ss, SEL_KDATA, "IRETQ to CPL 0 loads SS from the frame");
    /* IRETQ with a null SS to CPL 0 is allowed in 64-bit mode */
    asm volatile("mov %%rsp, %%r11\n\t"
                 "pushq $0\n\tpushq %%r11\n\tpushfq\n\tpushq %1\n\t"
                 "lea 1f(%%rip), %%rax\n\tpushq %%rax\n\tiretq\n"
                 "1:\tmov %%ss, %k0\n\tmov %2, %%ss\n\tmov %%r11, %%rsp"
                 : "=&r"(got_ss) : "r"((ulong)SEL_KCODE64), "r"((ulong)SEL_KDATA) : "rax", "r11", "memory");
    TEST_EQ(got_ss, 0, "IRETQ to CPL 0 with a null SS");
}

void test_main(void)
{
    check_long_mode();
    check_compat();
    check_call_gate();
    check_ist_and_alignment();
    check_noncanonical_rip();
    check_iretq();
}

/* Events in VMX non-root operation: VM-entry event injection of every type through L2's
 * IDT (external interrupt, NMI, hardware exception with error code, software interrupt,
 * privileged software exception, software exception, with the instruction length), a
 * fault while an injected event is delivered (exit with IDT-vectoring information), the
 * exception bitmap with #PF error-code mask/match and the #PF qualification, INT3 exits,
 * external interrupts with and without exiting and acknowledge-on-exit (also waking a
 * halted L2), interrupt and virtual-NMI windows, MTF, the VMX-preemption timer, and an
 * L2 triple fault.
 * guest: cpu=max name=vmx-events */
#include "vmx.h"

#define V_EXT 0x41
#define V_SOFT 0x42
#define V_NP 0x43
#define V_SELF 0x44
#define V_TIMER 0x45

/* What L2's handlers saw: the vector, the error code, the return RIP on the stack. */
volatile u64 h_vector, h_error, h_rip, h_count;

/* L2 handlers: record and VMCALL (they never return: each test sets up a new L2) */
#define POP_ERR "  pop %rax\n  mov %rax, h_error(%rip)\n"
#define HANDLER(name, vec, err_asm)                                                       \
    extern char name[];                                                                   \
    asm(".pushsection .text\n" #name ":\n"                                                \
        "  movq $" #vec ", h_vector(%rip)\n"                                              \
        "  incq h_count(%rip)\n"                                                          \
        err_asm                                                                           \
        "  mov (%rsp), %rax\n  mov %rax, h_rip(%rip)\n"                                   \
        "1: vmcall\n  jmp 1b\n.popsection")
HANDLER(h_ext, 0x41, "");
HANDLER(h_nmi, 2, "");
HANDLER(h_gp, 13, POP_ERR);
HANDLER(h_soft, 0x42, "");
HANDLER(h_db, 1, "");
HANDLER(h_bp, 3, "");
HANDLER(h_timer, 0x45, "");

VMX_L2_CODE(l2_spin, "1: pause\n jmp 1b");
VMX_L2_CODE(l2_ud2, "ud2");
VMX_L2_CODE(l2_int3, "int3");
VMX_L2_CODE(l2_pf, "mov (%rbx), %rax");
VMX_L2_CODE(l2_hlt, "hlt");
VMX_L2_CODE(l2_sti_nops, "sti\n nop\n nop\n nop");
VMX_L2_CODE(l2_nops, "nop\n nop\n nop");
VMX_L2_CODE(l2_single_step, "pushf\n orq $0x100, (%rsp)\n popf\n nop\n nop");
VMX_L2_CODE(l2_iret, "mov %ss, %eax\n push %rax\n push %rsp\n addq $8, (%rsp)\n pushf\n"
                     " mov %cs, %eax\n push %rax\n lea 2f(%rip), %rax\n push %rax\n iretq\n"
                     "2: nop\n nop");

static void set_gate(int vec, void *h)
{
    idt_set_gate(vec, read_cs(), (ulong)h, 0xe, 0, 0);
}

static void l2(const void *code)
{
    vmx_setup_l2(code, 0, 0);
    h_vector = h_error = h_rip = h_count = 0;
}

static void inject(u32 type, u32 vector, bool err, u32 error, u32 len)
{
    vmwrite(F_ENTRY_INTR_INFO, vector | type << 8 | (err ? BIT(11) : 0) | BIT(31));
    vmwrite(F_ENTRY_EXC_ERROR, error);
    vmwrite(F_ENTRY_INSN_LEN, len);
}

static void injection(void)
{
    u64 start = (u64)(ulong)l2_spin;
    set_gate(V_EXT, h_ext);
    l2(l2_spin);
    vmwrite(F_GUEST_RFLAGS, 0x202);
    inject(0, V_EXT, false, 0, 0);
    TEST_EQ(vmx_run(), R_VMCALL, "injected external interrupt: L2's handler runs");
    TEST_EQ(h_vector, V_EXT, "its vector");
    TEST_EQ(h_rip, start, "return RIP: the guest RIP");
    TEST_EQ(vmread(F_ENTRY_INTR_INFO) >> 31, 0, "the valid bit is cleared by the exit");

    set_gate(2, h_nmi);
    l2(l2_spin);
    inject(2, 2, false, 0, 0);
    TEST_EQ(vmx_run(), R_VMCALL, "injected NMI");
    TEST_EQ(h_vector, 2, "through vector 2");
    TEST_EQ(vmread(F_GUEST_INTERRUPTIBILITY) & 8, 8, "blocking by NMI after its delivery");

    set_gate(13, h_gp);
    l2(l2_spin);
    inject(3, 13, true, 0x1238, 0);
    TEST_EQ(vmx_run(), R_VMCALL, "injected #GP with an error code");
    TEST_EQ(h_error, 0x1238, "the error code pushed");

    set_gate(V_SOFT, h_soft);
    l2(l2_spin);
    inject(4, V_SOFT, false, 0, 2);
    TEST_EQ(vmx_run(), R_VMCALL, "injected software interrupt");
    TEST_EQ(h_rip, start + 2, "return RIP: guest RIP + instruction length");

    set_gate(1, h_db);
    l2(l2_spin);
    inject(5, 1, false, 0, 1);
    TEST_EQ(vmx_run(), R_VMCALL, "injected privileged software exception");
    TEST_EQ(h_vector, 1, "vector 1");
    TEST_EQ(h_rip, start + 1, "return RIP + 1");

    set_gate(3, h_bp);
    l2(l2_spin);
    inject(6, 3, false, 0, 1);
    TEST_EQ(vmx_run(), R_VMCALL, "injected software exception #BP");
    TEST_EQ(h_rip, start + 1, "return RIP + 1");

    /* a fault delivering the injected event: its gate is not present */
    idt_clear_present(V_NP);
    l2(l2_spin);
    vmwrite(F_GUEST_RFLAGS, 0x202);
    vmwrite(F_EXC_BITMAP, BIT(11));
    inject(0, V_NP, false, 0, 0);
    TEST_EQ(vmx_run(), R_EXC_NMI, "#NP delivering the injected interrupt: exception exit");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), vmx_hw_exc_info(11, true), "exit information: #NP with error code");
    TEST_EQ(vmread(F_EXIT_INTR_ERROR), V_NP * 8 + 2 + 1, "error code: IDT, EXT");
    TEST_EQ(vmread(F_IDT_VECT_INFO), V_NP | BIT(31), "IDT-vectoring: the injected interrupt");
    TEST_EQ(vmread(F_GUEST_RIP), start, "RIP where the event was to be delivered");
    idt_set_gate(V_NP, read_cs(), (ulong)h_ext, 0xe, 0, 0);
    vmwrite(F_ENTRY_INTR_INFO, vmread(F_IDT_VECT_INFO)); /* L1 re-injects it */
    TEST_EQ(vmx_run(), R_VMCALL, "re-injected, it is delivered");
}

static void exceptions(void)
{
    l2(l2_ud2);
    vmwrite(F_EXC_BITMAP, BIT(6));
    TEST_EQ(vmx_run(), R_EXC_NMI, "#UD with bit 6: exit");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), vmx_hw_exc_info(6, false), "exit information: #UD");
    TEST_EQ(vmread(F_GUEST_RIP), (u64)(ulong)l2_ud2, "RIP at the UD2");

    l2(l2_int3);
    vmwrite(F_EXC_BITMAP, BIT(3));
    TEST_EQ(vmx_run(), R_EXC_NMI, "INT3 with bit 3: exit");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), 3 | 6u << 8 | BIT(31), "type 6: software exception");
    TEST_EQ(vmread(F_EXIT_INSN_LEN), 1, "instruction length 1");

    /* #PF: the bit and the error-code mask/match (SDM 26.2) */
    u64 va = 0x100000000000ull; /* not mapped */
    asm volatile("mov %0, %%cr2" ::"r"(0x1111ul));
    l2(l2_pf);
    vmx_gregs[3] = va;
    vmwrite(F_EXC_BITMAP, BIT(14));
    vmwrite(F_PF_MASK, 0);
    vmwrite(F_PF_MATCH, 0);
    TEST_EQ(vmx_run(), R_EXC_NMI, "#PF, bit 14, mask 0 match 0: exit");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), vmx_hw_exc_info(14, true), "exit information: #PF");
    TEST_EQ(vmread(F_EXIT_INTR_ERROR), 0, "error code: read, not present");
    TEST_EQ(vmread(F_EXIT_QUAL), va, "qualification: the linear address");
    TEST_EQ(read_cr(2) == 0x1111, 1, "CR2 unchanged");
    l2(l2_pf);
    vmx_gregs[3] = va;
    set_gate(14, h_gp); /* records the error code */
    vmwrite(F_EXC_BITMAP, BIT(14));
    vmwrite(F_PF_MASK, 1);
    vmwrite(F_PF_MATCH, 1);
    TEST_EQ(vmx_run(), R_VMCALL, "#PF, bit 14, error code does not match: delivered in L2");
    l2(l2_pf);
    vmx_gregs[3] = va;
    vmwrite(F_EXC_BITMAP, 0);
    vmwrite(F_PF_MASK, 1);
    vmwrite(F_PF_MATCH, 1);
    TEST_EQ(vmx_run(), R_EXC_NMI, "#PF, bit 14 clear, error code does not match: exit");
    idt_reset_gate(14);

    /* #DB: DR6 is not written, its bits are the qualification (SDM 28.1) */
    asm volatile("mov %0, %%dr6" ::"r"(0xffff0ff0ul));
    l2(l2_single_step);
    vmwrite(F_EXC_BITMAP, BIT(1));
    TEST_EQ(vmx_run(), R_EXC_NMI, "single-step #DB with bit 1: exit");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), vmx_hw_exc_info(1, false), "exit information: #DB");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x4000, "qualification: BS");
    ulong dr6;
    asm volatile("mov %%dr6, %0" : "=r"(dr6));
    TEST_EQ(dr6, 0xffff0ff0, "DR6 unchanged");

    /* a triple fault: no usable IDT */
    l2(l2_ud2);
    vmwrite(F_GUEST_IDTR_LIMIT, 0);
    TEST_EQ(vmx_run(), R_TRIPLE, "L2 triple fault: exit 2");
}

static void interrupts(void)
{
    /* external-interrupt exiting with acknowledge-on-exit */
    cli();
    l2(l2_spin);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_EXTINT);
    vmwrite(F_EXIT_CTLS, vmread(F_EXIT_CTLS) | EXIT_ACK_INTR);
    apic_icr(0, 0x40000 | V_SELF);
    TEST_EQ(vmx_run(), R_EXTINT, "a pending interrupt exits (L2's IF is 0)");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), V_SELF | BIT(31), "acknowledged: its vector");
    TEST_ASSERT(apic_read(0x100 + 0x10 * (V_SELF / 32)) & BIT(V_SELF % 32), "in L1's ISR");
    apic_eoi();

    /* without acknowledge-on-exit the interrupt stays pending */
    l2(l2_spin);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_EXTINT);
    apic_icr(0, 0x40000 | V_SELF);
    TEST_EQ(vmx_run(), R_EXTINT, "exit without acknowledge");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), 0, "no vector reported");
    TEST_ASSERT(apic_read(0x200 + 0x10 * (V_SELF / 32)) & BIT(V_SELF % 32), "still in L1's IRR");

    /* without exiting, L2 takes it through its IDT (the same IDT here) */
    set_gate(V_SELF, h_ext);
    l2(l2_spin);
    vmwrite(F_GUEST_RFLAGS, 0x202);
    TEST_EQ(vmx_run(), R_VMCALL, "without exiting L2's handler takes it");
    apic_eoi();

    /* a halted L2 woken by the timer's interrupt: the exit saves the HLT state */
    l2(l2_hlt);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_EXTINT);
    vmwrite(F_EXIT_CTLS, vmread(F_EXIT_CTLS) | EXIT_ACK_INTR);
    apic_write(0x3e0, 0xb);
    apic_write(APIC_LVTT, V_TIMER);
    apic_write(0x380, 20000);
    TEST_EQ(vmx_run(), R_EXTINT, "the timer interrupt ends L2's HLT with an exit");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), V_TIMER | BIT(31), "the timer's vector");
    TEST_EQ(vmread(F_GUEST_ACTIVITY), 1, "activity state saved: HLT");
    apic_eoi();
    apic_write(APIC_LVTT, BIT(16));
    sti();
}

static void windows(void)
{
    l2(l2_sti_nops);
    vmwrite(F_PROC, vmread(F_PROC) | PROC_INTR_WINDOW);
    TEST_EQ(vmx_run(), R_INTR_WINDOW, "interrupt window after STI and its shadow");
    TEST_EQ(vmread(F_GUEST_RIP), (u64)(ulong)l2_sti_nops + 2, "RIP after the instruction in the shadow");

    l2(l2_nops);
    vmwrite(F_PROC, vmread(F_PROC) | PROC_INTR_WINDOW);
    TEST_EQ(vmx_run(), R_VMCALL, "no window while L2's IF is 0");

    /* virtual NMIs: the window opens when L2's IRET ends blocking by NMI */
    l2(l2_iret);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_NMI | PIN_VNMI);
    vmwrite(F_PROC, vmread(F_PROC) | PROC_NMI_WINDOW);
    vmwrite(F_GUEST_INTERRUPTIBILITY, 8);
    TEST_EQ(vmx_run(), R_NMI_WINDOW, "NMI window after IRET unblocks virtual NMIs");
    u64 rip = vmread(F_GUEST_RIP);
    TEST_ASSERT(rip > (u64)(ulong)l2_iret, "at the instruction after the IRET (rip %lx)", (ulong)rip);
    l2(l2_nops);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_NMI | PIN_VNMI);
    vmwrite(F_PROC, vmread(F_PROC) | PROC_NMI_WINDOW);
    TEST_EQ(vmx_run(), R_NMI_WINDOW, "NMI window at once without blocking");
    TEST_EQ(vmread(F_GUEST_RIP), (u64)(ulong)l2_nops, "before the first instruction");
}

static void mtf_and_timer(void)
{
    l2(l2_nops);
    vmwrite(F_PROC, vmread(F_PROC) | PROC_MTF);
    TEST_EQ(vmx_run(), R_MTF, "MTF after one instruction");
    TEST_EQ(vmread(F_GUEST_RIP), (u64)(ulong)l2_nops + 1, "RIP after the NOP");
    TEST_EQ(vmx_run(), R_MTF, "and after the next");
    TEST_EQ(vmread(F_GUEST_RIP), (u64)(ulong)l2_nops + 2, "RIP after the second NOP");

    l2(l2_spin);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_PREEMPT);
    vmwrite(F_EXIT_CTLS, vmread(F_EXIT_CTLS) | EXIT_SAVE_PREEMPT);
    vmwrite(F_PREEMPT_TIMER, 2000);
    u64 t0 = rdtsc();
    TEST_EQ(vmx_run(), R_PREEMPT, "the preemption timer expires");
    u64 ticks = rdtsc() - t0;
    u32 rate = rdmsr(MSR_VMX_MISC) & 0x1f;
    TEST_ASSERT(ticks >= (2000ull << rate), "after at least 2000 << %u TSC ticks (%lu)", rate, (ulong)ticks);
    TEST_EQ(vmread(F_PREEMPT_TIMER), 0, "saved value 0");
    vmwrite(F_PREEMPT_TIMER, 0);
    TEST_EQ(vmx_run(), R_PREEMPT, "a zero timer exits before any instruction");
    /* a halted L2 (no HLT exiting, no interrupt to come): the timer still ends it */
    l2(l2_hlt);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_PREEMPT);
    vmwrite(F_PREEMPT_TIMER, 100000);
    t0 = rdtsc();
    TEST_EQ(vmx_run(), R_PREEMPT, "the timer ends L2's HLT");
    ticks = rdtsc() - t0;
    TEST_ASSERT(ticks >= (100000ull << rate), "after its time (%lu ticks)", (ulong)ticks);
    TEST_EQ(vmread(F_GUEST_ACTIVITY), 1, "activity state HLT saved");
}

void test_main(void)
{
    apic_enable();
    TEST_ASSERT(vmx_on(), "VMXON");
    injection();
    exceptions();
    interrupts();
    windows();
    mtf_and_timer();
    vmxoff();
}

/* APIC virtualization (SDM Vol. 3C chapter 30) seen by an L1 hypervisor: the TPR shadow
 * (CR8 reads and writes on the virtual-APIC page, the TPR-below-threshold exit after the
 * instruction), the APIC-access page (TPR virtualized, other registers exit with the
 * offset and access type; APIC-register virtualization reads the page), virtual-interrupt
 * delivery (RVI at entry delivered through L2's IDT, EOI virtualization with the
 * EOI-exit bitmap), posted interrupts (the notification vector moves the PIR into VIRR),
 * and x2APIC virtualization of the TPR MSR and self-IPIs.
 * guest: cpu=max name=vmx-apicv */
#include "vmx.h"

enum {
    F_VIRT_APIC_ADDR = 0x2012, F_APIC_ACCESS_ADDR = 0x2014, F_PI_DESC = 0x2016,
    F_EOI_EXIT0 = 0x201c, F_EOI_EXIT1 = 0x201e, F_GUEST_INTR_STATUS = 0x0810,
    F_PI_NV = 0x0002, F_TPR_THRESHOLD = 0x401c,
    R_TPR_BELOW = 43, R_APIC_ACCESS = 44, R_VEOI = 45, R_APIC_WRITE = 56,
};
#define PROC_TPR_SHADOW BIT(21)
#define PROC2_VAPIC_ACCESS BIT(0)
#define PROC2_VX2APIC BIT(4)
#define PROC2_APIC_REGS BIT(8)
#define PROC2_VID BIT(9)
#define PIN_POSTED BIT(7)
#define APIC_PAGE 0xfee00000ul

static u8 vapic[4096] __attribute__((aligned(4096)));
static u8 msr_bitmap[4096] __attribute__((aligned(4096)));
static u64 pi_desc[8] __attribute__((aligned(64)));
static u32 *vreg(unsigned off) { return (u32 *)(vapic + off); }

volatile u32 l2_intr_count, l2_intr_vector;
/* L2's handler for virtual interrupts 0x40 and 0x50: count, then EOI through the
 * APIC-access page (virtualized EOI) */
extern char l2_vintr_40[], l2_vintr_50[], l2_vintr_x2[];
asm(".globl l2_vintr_40, l2_vintr_50\n"
    "l2_vintr_40: movl $0x40, l2_intr_vector(%rip); jmp 1f\n"
    "l2_vintr_50: movl $0x50, l2_intr_vector(%rip)\n"
    "1: incl l2_intr_count(%rip)\n"
    "  push %rax; mov $0xfee000b0, %eax; movl $0, (%rax); pop %rax\n"
    "  iretq\n"
    /* the same with an x2APIC EOI (WRMSR 0x80b) */
    ".globl l2_vintr_x2\n"
    "l2_vintr_x2: movl $0x40, l2_intr_vector(%rip); incl l2_intr_count(%rip)\n"
    "  push %rax; push %rcx; push %rdx; mov $0x80b, %ecx; xor %eax, %eax; xor %edx, %edx\n"
    "  wrmsr; pop %rdx; pop %rcx; pop %rax\n"
    "  iretq\n");

static void l2_cr8(void)
{
    ulong v;
    asm volatile("mov %1, %%cr8; mov %%cr8, %0; vmcall" : "=&r"(v) : "r"(5ul));
    asm volatile("mov %0, %%rax; vmcall" ::"r"(v) : "rax");
    asm volatile(ASM_TRY("1f") "mov %0, %%cr8\n1:" ::"r"(0x12ul)); /* reserved bits */
    asm volatile("vmcall" ::"a"(exc_vector()));
    asm volatile("mov %0, %%cr8" ::"r"(2ul)); /* below the threshold */
    asm volatile("vmcall");
    for (;;)
        asm volatile("vmcall");
}

static void l2_mmio(void)
{
    volatile u32 *apic = (volatile u32 *)APIC_PAGE;
    u32 tpr = apic[0x80 / 4];
    asm volatile("vmcall" ::"a"(tpr));
    apic[0x80 / 4] = 0x30;
    asm volatile("vmcall");
    u32 id = apic[0x20 / 4]; /* not virtualized without APIC-register virtualization */
    asm volatile("vmcall" ::"a"(id));
    for (;;)
        asm volatile("vmcall");
}

static void l2_sti_loop(void)
{
    asm volatile("sti");
    for (;;)
        asm volatile("pause");
}

static void l2_x2apic(void)
{
    u32 lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x808));
    asm volatile("vmcall" ::"a"(lo));
    asm volatile("wrmsr" ::"c"(0x83f), "a"(0x40), "d"(0)); /* virtual self-IPI */
    asm volatile("sti");
    for (;;)
        asm volatile("pause");
}

static void setup(void (*fn)(void), u32 proc_extra, u32 proc2)
{
    vmx_vmcs_setup(&vmx_region_pa[1], fn);
    memset(vapic, 0, sizeof(vapic));
    vmwrite(F_PROC, vmread(F_PROC) | PROC_TPR_SHADOW | proc_extra);
    vmwrite(F_VIRT_APIC_ADDR, (u64)(ulong)vapic);
    vmwrite(F_TPR_THRESHOLD, 0);
    if (proc2)
        vmx_set_proc2(proc2);
    vmwrite(F_APIC_ACCESS_ADDR, APIC_PAGE);
}

void test_main(void)
{
    u64 proc_cap = rdmsr(MSR_VMX_TRUE_PROC), p2cap = rdmsr(MSR_VMX_PROCBASED2);
    TEST_ASSERT((proc_cap >> 32) & PROC_TPR_SHADOW, "TPR shadow may be 1");
    TEST_ASSERT((p2cap >> 32) & PROC2_VAPIC_ACCESS, "virtualize APIC accesses may be 1");
    TEST_ASSERT((p2cap >> 32) & PROC2_VID, "virtual-interrupt delivery may be 1");
    TEST_ASSERT((rdmsr(MSR_VMX_TRUE_PIN) >> 32) & PIN_POSTED, "posted interrupts may be 1");
    apic_enable();
    TEST_ASSERT(vmx_on(), "VMXON");
    u32 l1_tpr = apic_read(0x80);

    /* TPR shadow: CR8 is VTPR[7:4] */
    setup(l2_cr8, 0, 0);
    vmwrite(F_TPR_THRESHOLD, 3);
    *vreg(0x80) = 0x40;
    TEST_EQ(vmx_run(), R_VMCALL, "L2 ran");
    TEST_EQ(*vreg(0x80), 0x50, "MOV to CR8 wrote VTPR bits 7:4");
    vmx_skip();
    TEST_EQ(vmx_run(), R_VMCALL, "L2 ran on");
    TEST_EQ(vmx_gregs[0], 5, "MOV from CR8 read VTPR[7:4]");
    TEST_EQ(apic_read(0x80), l1_tpr, "L1's own TPR untouched");
    vmx_skip();
    TEST_EQ(vmx_run(), R_VMCALL, "L2 ran on");
    TEST_EQ(vmx_gregs[0], 13, "MOV to CR8 with bits 63:4 set: #GP in L2");
    TEST_EQ(*vreg(0x80), 0x50, "and VTPR unchanged");
    vmx_skip();
    u64 rip_before = vmread(F_GUEST_RIP);
    TEST_EQ(vmx_run(), R_TPR_BELOW, "CR8 below the TPR threshold: exit 43");
    TEST_ASSERT(vmread(F_GUEST_RIP) > rip_before, "trap-like: RIP is past the MOV to CR8");
    TEST_EQ(*vreg(0x80), 0x20, "VTPR written before the exit");

    /* APIC-access page */
    setup(l2_mmio, 0, PROC2_VAPIC_ACCESS);
    *vreg(0x80) = 0x70;
    TEST_EQ(vmx_run(), R_VMCALL, "L2 ran");
    TEST_EQ(vmx_gregs[0], 0x70, "a read of the TPR through the APIC-access page: VTPR");
    vmx_skip();
    TEST_EQ(vmx_run(), R_VMCALL, "L2 ran on");
    TEST_EQ(*vreg(0x80), 0x30, "a write of the TPR: VTPR");
    vmx_skip();
    TEST_EQ(vmx_run(), R_APIC_ACCESS, "a read of the APIC ID: APIC-access exit");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x020, "qualification: offset 0x20, linear read");
    setup(l2_mmio, 0, PROC2_VAPIC_ACCESS | PROC2_APIC_REGS);
    *vreg(0x20) = 0x12345678;
    TEST_EQ(vmx_run(), R_VMCALL, "L2 ran");
    vmx_skip();
    TEST_EQ(vmx_run(), R_VMCALL, "L2 ran on");
    vmx_skip();
    TEST_EQ(vmx_run(), R_VMCALL, "with APIC-register virtualization the ID read does not exit");
    TEST_EQ(vmx_gregs[0], 0x12345678, "and reads the virtual-APIC page");

    /* Virtual-interrupt delivery: RVI 0x40 at entry, EOI exit bitmap for it */
    idt_set_gate(0x40, read_cs(), (ulong)l2_vintr_40, 0xe, 0, 0);
    idt_set_gate(0x50, read_cs(), (ulong)l2_vintr_50, 0xe, 0, 0);
    setup(l2_sti_loop, 0, PROC2_VAPIC_ACCESS | PROC2_VID);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_EXTINT);
    vreg(0x200)[0x40 / 32 * 4] = 1u << (0x40 % 32); /* VIRR */
    vmwrite(F_GUEST_INTR_STATUS, 0x40);
    vmwrite(F_EOI_EXIT1, 1ull << (0x40 - 0x40));
    l2_intr_count = 0;
    TEST_EQ(vmx_run(), R_VEOI, "the virtual interrupt was delivered and its EOI exits");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x40, "qualification: the vector");
    TEST_EQ(l2_intr_count, 1, "L2's handler ran once");
    TEST_EQ(l2_intr_vector, 0x40, "for vector 0x40");
    TEST_EQ(vreg(0x100)[0x40 / 32 * 4], 0, "VISR cleared by the EOI");
    TEST_EQ(vmread(F_GUEST_INTR_STATUS), 0, "RVI and SVI 0");

    /* Posted interrupts: the notification vector arrives while L2 runs */
    setup(l2_sti_loop, 0, PROC2_VAPIC_ACCESS | PROC2_VID);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_EXTINT | PIN_POSTED);
    vmwrite(F_EXIT_CTLS, vmread(F_EXIT_CTLS) | EXIT_ACK_INTR);
    vmwrite(F_PI_NV, 0xf2);
    memset(pi_desc, 0, sizeof(pi_desc));
    pi_desc[0x50 / 64] = 1ull << (0x50 % 64);
    pi_desc[4] = 1; /* outstanding notification */
    vmwrite(F_PI_DESC, (u64)(ulong)pi_desc);
    vmwrite(F_GUEST_INTR_STATUS, 0);
    vmwrite(F_EOI_EXIT1, 1ull << (0x50 - 0x40));
    cli();
    apic_icr(0, 0x40000 | 0xf2); /* self-IPI, pending while L1 has IF = 0 */
    l2_intr_count = 0;
    TEST_EQ(vmx_run(), R_VEOI, "posted interrupt 0x50 delivered, its EOI exits");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x50, "qualification: the posted vector");
    TEST_EQ(l2_intr_vector, 0x50, "L2's handler for 0x50 ran");
    TEST_EQ(pi_desc[1], 0, "the PIR was cleared");
    TEST_EQ(pi_desc[4] & 1, 0, "ON was cleared");
    TEST_EQ(apic_read(0x100 + 0x10 * (0xf2 / 32)) & (1u << (0xf2 % 32)), 0,
            "L1's APIC got the EOI for the notification vector");

    /* x2APIC virtualization: TPR MSR and virtual self-IPI */
    setup(l2_x2apic, PROC_MSR_BITMAPS, PROC2_VX2APIC | PROC2_VID);
    memset(msr_bitmap, 0, sizeof(msr_bitmap));
    vmwrite(F_MSR_BITMAP, (u64)(ulong)msr_bitmap);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_EXTINT);
    *vreg(0x80) = 0x90;
    vmwrite(F_GUEST_INTR_STATUS, 0);
    vmwrite(F_EOI_EXIT1, 0);
    TEST_EQ(vmx_run(), R_VMCALL, "L2 ran");
    TEST_EQ(vmx_gregs[0], 0x90, "RDMSR 0x808: VTPR");
    vmx_skip();
    *vreg(0x80) = 0;
    l2_intr_count = 0;
    vmwrite(F_EOI_EXIT1, 1);
    idt_set_gate(0x40, read_cs(), (ulong)l2_vintr_x2, 0xe, 0, 0);
    TEST_EQ(vmx_run(), R_VEOI, "the virtual self-IPI (WRMSR 0x83f) was delivered, its EOI (WRMSR 0x80b) exits");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x40, "qualification: the vector");
    TEST_EQ(l2_intr_count, 1, "L2's handler ran once");
    TEST_EQ(*vreg(0x3f0), 0x40, "the self-IPI register on the virtual-APIC page");
    vmxoff();
}

/* Three levels: L1 (this kernel) runs L2, a small hypervisor whose VMX instructions exit
 * to L1 with their instruction information; L1 emulates them (VMXON, VMCLEAR, VMPTRLD,
 * VMWRITE, VMREAD into a software VMCS12; VMLAUNCH by running L3 on a second VMCS of its
 * own built from VMCS12) and reflects L3's CPUID exit back into L2 as a VM exit to L2's
 * host RIP and RSP, with L3's general registers as the architecture leaves them. L2 then
 * reads its exit reason and reports to L1.
 * guest: cpu=max name=vmx-nested */
#include "vmx.h"

u64 l3_stack[512] __attribute__((aligned(16)));
u64 l2_vmxon_region = 0x100000000ull;  /* L2's pointers: never dereferenced */
u64 l2_vmcs12 = 0x100001000ull;

/* L3: a marker in RSI, then CPUID */
VMX_L2_CODE(l3_code, "mov $0x3333, %rsi\n xor %eax, %eax\n xor %ecx, %ecx\n cpuid");

/* L2: a hypervisor running L3 */
extern char l2_hv[];
asm(".pushsection .text\nl2_hv:\n"
    "  lea l2_vmxon_region(%rip), %rax\n vmxon (%rax)\n"
    "  lea l2_vmcs12(%rip), %rax\n vmclear (%rax)\n vmptrld (%rax)\n"
    "  mov $0x681e, %rdx\n lea l3_code(%rip), %rcx\n vmwrite %rcx, %rdx\n"
    "  mov $0x681c, %rdx\n lea l3_stack+4096(%rip), %rcx\n vmwrite %rcx, %rdx\n"
    "  mov $0x6c16, %rdx\n lea 1f(%rip), %rcx\n vmwrite %rcx, %rdx\n"
    "  mov $0x6c14, %rdx\n mov %rsp, %rcx\n vmwrite %rcx, %rdx\n"
    "  vmlaunch\n"
    "  ud2\n"                              /* VMLAUNCH does not fall through */
    "1: mov $0x4402, %rdx\n vmread %rdx, %rax\n"
    "2: vmcall\n jmp 2b\n"
    ".popsection");

/* VMCS12: what L2 wrote, by encoding */
static struct { u64 field, value; } vmcs12[16];
static unsigned nvmcs12;
static u64 *vmcs12_slot(u64 field)
{
    for (unsigned k = 0; k < nvmcs12; k++)
        if (vmcs12[k].field == field)
            return &vmcs12[k].value;
    if (nvmcs12 == 16)
        return NULL;
    vmcs12[nvmcs12].field = field;
    return &vmcs12[nvmcs12++].value;
}

/* VMsucceed for the emulated instruction, and past it */
static void emulated(void)
{
    vmwrite(F_GUEST_RFLAGS, vmread(F_GUEST_RFLAGS) & ~0x8d5ull);
    vmx_skip();
}

static unsigned seen[64];

void test_main(void)
{
    TEST_ASSERT(vmx_on(), "VMXON");
    vmx_vmcs_setup(&vmx_region_pa[1], (void (*)(void))(ulong)l2_hv);
    bool l2_vmx = false, l2_current = false, done = false;
    for (int steps = 0; steps < 40 && !done; steps++) {
        long r = vmx_run();
        if (r >= 0 && r < 64)
            seen[r]++;
        u32 info = (u32)vmread(F_EXIT_INSN_INFO);
        switch (r) {
        case R_VMXON:
            l2_vmx = true;
            emulated();
            break;
        case R_VMCLEAR:
        case R_VMPTRLD:
            TEST_ASSERT(l2_vmx, "L2 is in (emulated) VMX operation");
            l2_current = r == R_VMPTRLD;
            TEST_EQ(vmread(F_EXIT_QUAL), 0, "no displacement in (%rax)");
            TEST_EQ((info >> 23) & 15, 0, "base register RAX in the instruction information");
            emulated();
            break;
        case R_VMWRITE: {
            TEST_ASSERT(info & BIT(10), "VMWRITE from a register");
            u64 field = vmx_gregs[(info >> 28) & 15];
            u64 *slot = vmcs12_slot(field);
            if (slot)
                *slot = vmx_gregs[(info >> 3) & 15];
            emulated();
            break;
        }
        case R_VMREAD: {
            u64 field = vmx_gregs[(info >> 28) & 15];
            u64 *slot = vmcs12_slot(field);
            vmx_gregs[(info >> 3) & 15] = slot ? *slot : 0;
            emulated();
            break;
        }
        case R_VMLAUNCH: {
            TEST_ASSERT(l2_current, "VMLAUNCH with a current VMCS12");
            /* run L3 on VMCS02, built from VMCS12 */
            u64 l2_rip = vmread(F_GUEST_RIP);
            vmx_vmcs_setup(&vmx_region_pa[2], (void (*)(void))(ulong)*vmcs12_slot(0x681e));
            vmwrite(F_GUEST_RSP, *vmcs12_slot(0x681c));
            long r3 = vmx_run();
            TEST_EQ(r3, R_CPUID, "L3 ran and its CPUID exited to L1");
            /* reflect it into L2: VMCS12's exit information, L2 at its host RIP/RSP */
            *vmcs12_slot(0x4402) = (u64)r3;
            *vmcs12_slot(0x440c) = vmread(F_EXIT_INSN_LEN);
            TEST_EQ(vmptrld(&vmx_region_pa[1]), 0, "back to VMCS01");
            vmx_launched = true;
            TEST_EQ(vmread(F_GUEST_RIP), l2_rip, "VMCS01 kept L2's state");
            vmwrite(F_GUEST_RIP, *vmcs12_slot(0x6c16));
            vmwrite(F_GUEST_RSP, *vmcs12_slot(0x6c14));
            vmwrite(F_GUEST_RFLAGS, 2);
            break;
        }
        case R_VMCALL:
            done = true;
            break;
        default:
            TEST_ASSERT(false, "unexpected exit %ld", r);
            done = true;
            break;
        }
    }
    TEST_ASSERT(done, "L2 finished");
    TEST_EQ(seen[R_VMXON], 1, "one VMXON exit");
    TEST_EQ(seen[R_VMWRITE], 4, "four VMWRITE exits");
    TEST_EQ(vmx_gregs[0], R_CPUID, "L2 read its exit reason: L3's CPUID");
    TEST_EQ(vmx_gregs[6], 0x3333, "L2 sees L3's RSI, as after a real VM exit");
    vmxoff();
}

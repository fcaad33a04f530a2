/* VMCS shadowing, VMFUNC EPTP switching and INVVPID (SDM 25.10, 26.5.6.3, 31.3):
 * - L2's VMREAD/VMWRITE go to the shadow VMCS (the link pointer) when the VMREAD/VMWRITE
 *   bitmap bit of the field is 0, and exit when it is 1 or the encoding is above 7FFFh;
 *   a shadow VMCS cannot be launched; VMPTRLD of a shadow region needs the capability;
 * - VMFUNC leaf 0 switches the EPTP from the EPTP list; an invalid index or entry, or a
 *   disabled leaf, exits (reason 59); without "enable VM functions" VMFUNC is #UD;
 * - INVVPID: every type the capability offers, and its VMfail cases.
 * guest: cpu=max name=vmx-shadow */
#include "vmx.h"

static u8 rd_bitmap[4096] __attribute__((aligned(4096)));
static u8 wr_bitmap[4096] __attribute__((aligned(4096)));
static u8 shadow_region[4096] __attribute__((aligned(4096)));
static u64 eptp_list[512] __attribute__((aligned(4096)));
static u64 ept_b[512] __attribute__((aligned(4096)));   /* a second EPT: PML4 */
static u64 ept_b3[512] __attribute__((aligned(4096)));  /* its PDPT */
static u64 ept_b2[512] __attribute__((aligned(4096)));  /* its first PD */
static u64 ept_b1[512] __attribute__((aligned(4096)));  /* the PT around page_a */
static u8 page_a[4096] __attribute__((aligned(4096)));
static u8 page_b[4096] __attribute__((aligned(4096)));

/* L2: VMWRITE guest RIP (shadowed) = 0x1234, VMREAD it back, VMCALL with it in RAX;
 * then a VMREAD of the exit reason (bit set: exits) */
VMX_L2_CODE(l2_shadow, "mov $0x681e, %rdx\n mov $0x1234, %rcx\n vmwrite %rcx, %rdx\n"
                       " vmread %rdx, %rax\n vmcall\n"
                       " mov $0x4402, %rdx\n vmread %rdx, %rax\n"
                       " mov $0x10000, %rdx\n vmread %rdx, %rax\n");
/* L2: VMFUNC(0, RCX), then read page_a's first word into RAX */
VMX_L2_CODE(l2_vmfunc, "xor %eax, %eax\n vmfunc\n mov (%rbx), %rax");

static void shadowing(void)
{
    u64 p2 = rdmsr(MSR_VMX_PROCBASED2) >> 32;
    if (!(p2 & PROC2_SHADOW)) {
        test_skip("no VMCS shadowing");
        return;
    }
    vmx_region_init(shadow_region, vmx_revision() | (1u << 31));
    u64 spa = (u64)(ulong)shadow_region;
    vmx_setup_l2(l2_shadow, 0, PROC2_SHADOW);
    memset(rd_bitmap, 0, 4096);
    memset(wr_bitmap, 0, 4096);
    rd_bitmap[0x4402 / 8] |= 1 << (0x4402 % 8); /* VMREAD of the exit reason exits */
    vmwrite(F_VMREAD_BITMAP, (u64)(ulong)rd_bitmap);
    vmwrite(F_VMWRITE_BITMAP, (u64)(ulong)wr_bitmap);
    vmwrite(F_LINK_POINTER, spa);
    u64 my_rip = vmread(F_GUEST_RIP);
    TEST_EQ(vmx_run(), R_VMCALL, "L2's shadowed VMWRITE and VMREAD did not exit");
    TEST_EQ(vmx_gregs[0], 0x1234, "VMREAD returned what VMWRITE wrote");
    u64 rip = vmread(F_GUEST_RIP);
    TEST_ASSERT(rip > my_rip && rip < my_rip + 0x40, "the current VMCS's guest RIP is L2's own (%lx)",
                (ulong)rip);
    vmx_skip();
    TEST_EQ(vmx_run(), R_VMREAD, "VMREAD of a field whose bitmap bit is 1: exit");
    vmx_skip();
    TEST_EQ(vmx_run(), R_VMREAD, "VMREAD of an encoding above 7FFFh: exit");

    /* L1 sees the shadow VMCS's contents by loading it */
    u64 cur;
    vmptrst(&cur);
    TEST_EQ(vmptrld(&spa), 0, "VMPTRLD of a shadow VMCS (the capability is there)");
    TEST_EQ(vmread(F_GUEST_RIP), 0x1234, "the shadow VMCS holds L2's VMWRITE");
    TEST_EQ(vmx_enter_asm(1), 1, "VMLAUNCH of a shadow VMCS: VMfailInvalid");
    vmptrld(&cur);
    vmx_launched = true;
    /* with the link pointer ~0 a shadowed VMREAD fails invalid (CF) in L2 */
    vmwrite(F_LINK_POINTER, ~0ull);
    vmwrite(F_GUEST_RIP, (u64)(ulong)l2_shadow);
    vmx_gregs[0] = 0;
    TEST_EQ(vmx_run(), R_VMCALL, "L2 ran with no shadow VMCS");
    TEST_EQ(vmread(F_GUEST_RFLAGS) & 1, 1, "its VMREAD: VMfailInvalid (CF)");
}

static void vmfunc(void)
{
    u64 p2 = rdmsr(MSR_VMX_PROCBASED2) >> 32;
    if (!(p2 & PROC2_VMFUNC) || !(rdmsr(MSR_VMX_VMFUNC) & 1)) {
        test_skip("no EPTP switching");
        return;
    }
    /* EPT A: identity. EPT B: identity but page_a's guest-physical page is page_b */
    u64 eptp_a = vmx_ept_identity(4);
    memset(ept_b, 0, sizeof(ept_b));
    memset(ept_b3, 0, sizeof(ept_b3));
    ept_b[0] = (u64)(ulong)ept_b3 | 7;
    for (u64 g = 1; g < 4; g++)
        ept_b3[g] = (g << 30) | 7 | (6 << 3) | (1u << 7);
    ept_b3[0] = (u64)(ulong)ept_b2 | 7;
    u64 a = (u64)(ulong)page_a, region = a & ~0x1fffffull;
    for (u64 m = 0; m < 512; m++)
        ept_b2[m] = (m << 21) | 7 | (6 << 3) | (1u << 7);
    ept_b2[region >> 21] = (u64)(ulong)ept_b1 | 7;
    for (u64 k = 0; k < 512; k++)
        ept_b1[k] = (region + (k << 12)) | 7 | (6 << 3);
    ept_b1[(a - region) >> 12] = (u64)(ulong)page_b | 7 | (6 << 3);
    *(u64 *)page_b = 0xb0b;
    u64 eptp_b = (u64)(ulong)ept_b | 6 | (3 << 3);
    memset(eptp_list, 0, sizeof(eptp_list));
    eptp_list[0] = eptp_a;
    eptp_list[1] = eptp_b;
    eptp_list[2] = 5; /* invalid: memory type 5 */
    *(u64 *)page_a = 0x600d;

    vmx_setup_l2(l2_vmfunc, 0, PROC2_EPT | PROC2_VMFUNC);
    vmwrite(F_EPT_POINTER, eptp_a);
    vmwrite(0x2018, 1); /* VM-function controls: EPTP switching */
    vmwrite(F_EPTP_LIST, (u64)(ulong)eptp_list);
    vmx_gregs[1] = 1;
    vmx_gregs[3] = (u64)(ulong)page_a;
    TEST_EQ(vmx_run(), R_VMCALL, "VMFUNC 0 with a valid entry does not exit");
    TEST_EQ(vmread(F_EPT_POINTER), eptp_b, "the EPTP is now entry 1");
    TEST_EQ(vmx_gregs[0], 0xb0b, "and L2 runs on it: page_a's address reaches page_b");

    vmx_setup_l2(l2_vmfunc, 0, PROC2_EPT | PROC2_VMFUNC);
    vmwrite(F_EPT_POINTER, eptp_a);
    vmwrite(0x2018, 1);
    vmwrite(F_EPTP_LIST, (u64)(ulong)eptp_list);
    vmx_gregs[1] = 2;
    TEST_EQ(vmx_run(), R_VMFUNC, "an invalid EPTP in the list: exit 59");
    TEST_EQ(vmread(F_EPT_POINTER), eptp_a, "the EPTP unchanged");
    vmx_gregs[1] = 512;
    vmwrite(F_GUEST_RIP, (u64)(ulong)l2_vmfunc);
    TEST_EQ(vmx_run(), R_VMFUNC, "index 512: exit 59");
    vmwrite(0x2018, 0);
    vmx_gregs[1] = 1;
    vmwrite(F_GUEST_RIP, (u64)(ulong)l2_vmfunc);
    TEST_EQ(vmx_run(), R_VMFUNC, "leaf 0 not enabled: exit 59");

    vmx_setup_l2(l2_vmfunc, 0, PROC2_EPT);
    vmwrite(F_EPT_POINTER, eptp_a);
    vmwrite(F_EXC_BITMAP, BIT(6));
    TEST_EQ(vmx_run(), R_EXC_NMI, "VMFUNC without enable VM functions: #UD");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), vmx_hw_exc_info(6, false), "exit information: #UD");
    asm volatile(ASM_TRY("1f") "xor %%eax, %%eax; vmfunc\n1:" ::: "rax");
    TEST_EQ(exc_vector(), 6, "VMFUNC in VMX root operation: #UD");
}

static void invvpid_cases(void)
{
    u64 cap = rdmsr(MSR_VMX_EPT_VPID_CAP);
    TEST_ASSERT(cap & BIT(32), "INVVPID supported");
    TEST_EQ(invvpid(0, 1, 0x1000), 0, "INVVPID individual address");
    TEST_EQ(invvpid(1, 1, 0), 0, "INVVPID single context");
    TEST_EQ(invvpid(2, 0, 0), 0, "INVVPID all contexts");
    TEST_EQ(invvpid(3, 1, 0), 0, "INVVPID single context, globals retained");
    TEST_EQ(invvpid(1, 0, 0), 2, "VPID 0: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 28, "VM-instruction error 28");
    TEST_EQ(invvpid(0, 1, 0x8000000000000000ull), 2, "non-canonical address: VMfailValid");
    TEST_EQ(invvpid(4, 1, 0), 2, "type 4: VMfailValid");
    u64 desc[2] = { 1ull << 16 | 1, 0 }, fl;
    asm volatile("invvpid %1, %2; pushf; pop %0" : "=r"(fl) : "m"(desc), "r"(1ul) : "cc", "memory");
    TEST_EQ(vmx_outcome(fl), 2, "descriptor bits 63:16 set: VMfailValid");
}

void test_main(void)
{
    TEST_ASSERT(vmx_on(), "VMXON");
    vmx_region_init(vmx_regions[1], vmx_revision());
    vmptrld(&vmx_region_pa[1]);
    invvpid_cases();
    shadowing();
    vmfunc();
    vmxoff();
}

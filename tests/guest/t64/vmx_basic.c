/* VMX basics: enumeration (CPUID.1:ECX.VMX, IA32_FEATURE_CONTROL, the capability MSRs),
 * VMXON's checks, the VMCS instructions' VMfail numbers, and an L2 that runs on L1's page
 * tables and exits on CPUID, VMCALL and HLT with the exit information the SDM gives.
 * guest: cpu=max name=vmx-basic */
/* guest: cpu=max,-vmx name=vmx-off */
#include "vmx.h"

static bool mentions(const char *s, const char *word)
{
    for (size_t n = strlen(word); *s; s++)
        if (strncmp(s, word, n) == 0)
            return true;
    return false;
}

static void l2_main(void)
{
    asm volatile("cpuid" ::"a"(0), "c"(0) : "rbx", "rdx");
    asm volatile("vmcall" ::"a"(0x1234));
    asm volatile("hlt");
    for (;;)
        asm volatile("vmcall" ::"a"(0xdead));
}

static void enumeration(void)
{
    u64 basic = rdmsr(MSR_VMX_BASIC);
    TEST_ASSERT(((basic >> 32) & 0x1fff) == 4096, "BASIC: a 4 KiB VMCS region");
    TEST_ASSERT(((basic >> 50) & 0xf) == 6, "BASIC: write-back VMCS memory type");
    TEST_ASSERT(basic & (1ull << 55), "BASIC: TRUE control MSRs");
    TEST_ASSERT(!(basic & (1ull << 31)), "BASIC: revision bit 31 is 0");
    u64 pin = rdmsr(MSR_VMX_TRUE_PIN);
    TEST_ASSERT((pin >> 32) & PIN_EXTINT, "external-interrupt exiting may be 1");
    TEST_ASSERT(((u32)rdmsr(MSR_VMX_PINBASED) & 0x16) == 0x16, "pin default1 bits reported must-be-1");
    u64 proc = rdmsr(MSR_VMX_PROCBASED);
    TEST_ASSERT((proc >> 63) & 1, "secondary controls may be 1");
    u64 p2 = rdmsr(MSR_VMX_PROCBASED2);
    TEST_ASSERT((p2 >> 32) & PROC2_EPT, "EPT may be 1");
    u64 ept = rdmsr(MSR_VMX_EPT_VPID_CAP);
    TEST_ASSERT(ept & (1u << 6), "EPT page-walk length 4");
    TEST_EQ((rdmsr(MSR_VMX_CR0_FIXED0) & 0x80000021), 0x80000021, "CR0 FIXED0: PE NE PG");
    TEST_EQ(rdmsr(MSR_VMX_CR4_FIXED0) & (1u << 13), 1u << 13, "CR4 FIXED0: VMXE");
    u64 v;
    TEST_EQ(wrmsr_safe(MSR_VMX_BASIC, basic), 13, "capability MSRs are read-only");
    TEST_EQ(rdmsr_safe(0x492, &v), 13, "no MSR after IA32_VMX_VMFUNC");
}

void test_main(void)
{
    char spec[64] = "max";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    bool has = cpu_has(1, 0, 2, 5);
    if (mentions(spec, "-vmx")) {
        TEST_ASSERT(!has, "-vmx hides CPUID.1:ECX.VMX");
        u64 v;
        TEST_EQ(rdmsr_safe(MSR_VMX_BASIC, &v), 13, "no capability MSRs without VMX");
        ulong cr4 = read_cr(4) | (1ul << 13);
        asm volatile(ASM_TRY("1f") "mov %0, %%cr4\n1:" ::"r"(cr4));
        TEST_EQ(exc_vector(), 13, "CR4.VMXE is reserved without VMX");
        return;
    }
    TEST_ASSERT(has, "CPUID.1:ECX.VMX with -cpu max");
    enumeration();

    /* FEATURE_CONTROL starts unlocked; VMXON needs it locked with VMX enabled */
    u64 fc = rdmsr(MSR_FEATURE_CONTROL);
    TEST_EQ(fc & 1, 0, "FEATURE_CONTROL is unlocked at reset");
    u64 region = (u64)(ulong)vmx_regions[0];
    vmx_region_init(vmx_regions[0], vmx_revision());
    asm volatile(ASM_TRY("1f") "vmxon %0\n1:" ::"m"(region));
    TEST_EQ(exc_vector(), 6, "VMXON without CR4.VMXE: #UD");

    ulong cr4 = read_cr(4) | (1ul << 13);
    asm volatile("mov %0, %%cr4" ::"r"(cr4));
    asm volatile(ASM_TRY("1f") "vmxon %0\n1:" ::"m"(region));
    TEST_EQ(exc_vector(), 13, "VMXON with FEATURE_CONTROL unlocked: #GP");
    TEST_EQ(wrmsr_safe(MSR_FEATURE_CONTROL, 1ull << 1), 13, "FEATURE_CONTROL bit 1 needs SMX");
    wrmsr(MSR_FEATURE_CONTROL, 5);
    TEST_EQ(wrmsr_safe(MSR_FEATURE_CONTROL, 5), 13, "a locked FEATURE_CONTROL is read-only");
    asm volatile(ASM_TRY("1f") "vmclear %0\n1:" ::"m"(region));
    TEST_EQ(exc_vector(), 6, "VMCLEAR outside VMX operation: #UD");

    /* VMXON: bad revision -> VMfailInvalid; then success */
    *(u32 *)vmx_regions[0] = vmx_revision() + 1;
    TEST_EQ(vmxon(&region), 1, "VMXON with a wrong revision: VMfailInvalid");
    u64 odd = region + 8;
    TEST_EQ(vmxon(&odd), 1, "VMXON with an unaligned region: VMfailInvalid");
    TEST_ASSERT(vmx_on(), "VMXON succeeds");
    TEST_EQ(vmxon(&vmx_region_pa[0]), 1, "VMXON in root operation without a VMCS: VMfailInvalid");
    asm volatile(ASM_TRY("1f") "mov %0, %%cr4\n1:" ::"r"(read_cr(4) & ~(1ul << 13)));
    TEST_EQ(exc_vector(), 13, "clearing CR4.VMXE in VMX operation: #GP");

    /* VMCS pointers */
    u64 cur;
    TEST_EQ(vmptrst(&cur), 0, "VMPTRST");
    TEST_EQ(cur, ~0ull, "no current VMCS after VMXON");
    u64 x;
    TEST_EQ(vmread_safe(F_GUEST_RIP, &x), 1, "VMREAD without a current VMCS: VMfailInvalid");
    TEST_EQ(vmptrld(&vmx_region_pa[0]), 1, "VMPTRLD of the VMXON region (no VMCS yet): VMfailInvalid");
    vmx_region_init(vmx_regions[1], vmx_revision());
    TEST_EQ(vmptrld(&vmx_region_pa[1]), 0, "VMPTRLD");
    TEST_EQ(vmptrst(&cur), 0, "VMPTRST");
    TEST_EQ(cur, vmx_region_pa[1], "VMPTRST stores the current VMCS");
    TEST_EQ(vmptrld(&vmx_region_pa[0]), 2, "VMPTRLD of the VMXON pointer: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 10, "VM-instruction error 10");
    u64 bad = vmx_region_pa[2] | 0x800;
    TEST_EQ(vmptrld(&bad), 2, "VMPTRLD unaligned: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 9, "VM-instruction error 9");
    *(u32 *)vmx_regions[2] = vmx_revision() ^ 1;
    TEST_EQ(vmptrld(&vmx_region_pa[2]), 2, "VMPTRLD with a wrong revision: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 11, "VM-instruction error 11");
    TEST_EQ(vmread_safe(0x6ffe, &x), 2, "VMREAD of an unsupported field");
    TEST_EQ(vmread(F_INSN_ERROR), 12, "VM-instruction error 12");
    TEST_EQ(vmwrite_safe(F_GUEST_RIP, 0x12345678), 0, "VMWRITE");
    TEST_EQ(vmread(F_GUEST_RIP), 0x12345678, "VMREAD returns what VMWRITE wrote");
    TEST_EQ(vmwrite_safe(F_GUEST_CS_SEL, 0x12345678), 0, "VMWRITE of a 16-bit field");
    TEST_EQ(vmread(F_GUEST_CS_SEL), 0x5678, "a 16-bit field keeps 16 bits");
    TEST_EQ(vmwrite_safe(F_EXIT_REASON, 7), 0, "VMWRITE to an exit-information field (MISC[29])");
    TEST_EQ(vmclear(&vmx_region_pa[0]), 2, "VMCLEAR of the VMXON pointer: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 3, "VM-instruction error 3");
    /* VMRESUME of a clear VMCS */
    vmx_vmcs_setup(&vmx_region_pa[1], l2_main);
    TEST_EQ(vmx_enter_asm(0), 2, "VMRESUME of a clear VMCS: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 5, "VM-instruction error 5");

    /* L2 runs: CPUID exits unconditionally */
    long r = vmx_run();
    TEST_EQ(r, R_CPUID, "CPUID exits");
    TEST_EQ(vmread(F_EXIT_INSN_LEN), 2, "CPUID's length");
    TEST_EQ(vmx_enter_asm(1), 2, "VMLAUNCH of a launched VMCS: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 4, "VM-instruction error 4");
    vmx_skip();
    r = vmx_run();
    TEST_EQ(r, R_VMCALL, "VMCALL exits");
    TEST_EQ(vmread(F_EXIT_INSN_LEN), 3, "VMCALL's length");
    TEST_EQ(vmx_gregs[0], 0x1234, "L2's RAX at the exit");
    vmx_skip();
    /* HLT exits only with HLT exiting */
    vmwrite(F_PROC, vmread(F_PROC) | PROC_HLT);
    r = vmx_run();
    TEST_EQ(r, R_HLT, "HLT exits with HLT exiting");
    vmx_skip();
    r = vmx_run();
    TEST_EQ(r, R_VMCALL, "L2 continues after the HLT");
    TEST_EQ(vmx_gregs[0], 0xdead, "at its last VMCALL");
    TEST_EQ(vmxoff(), 0, "VMXOFF");
    asm volatile(ASM_TRY("1f") "vmptrst %0\n1:" : "=m"(cur));
    TEST_EQ(exc_vector(), 6, "VMPTRST after VMXOFF: #UD");
}

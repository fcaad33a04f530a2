/* VM exits caused by instructions in L2 (SDM 26.1.2-26.1.3) with their exit information
 * (SDM 28.2): INVD, WBINVD, RDPMC, PAUSE, MONITOR, MWAIT (qualification bit 0), XSETBV,
 * INVLPG (the linear address), RDTSC/RDTSCP (TSC offsetting, RDTSCP #UD without "enable
 * RDTSCP"), control registers (guest/host masks and read shadows, CLTS, LMSW with its
 * source and memory operand, CR3-target values, CR3/CR8 load and store exiting, the GPR
 * in the qualification), debug registers (qualification, exits before #UD, #GP and the
 * general-detect #DB), VMMCALL (#UD), RDMSR/WRMSR (no bitmaps, the four bitmap quarters, MSRs outside
 * the ranges), and the exceptions that come before an exit (#UD, CPL-based #GP in an L2
 * at CPL 3, where CPUID, VMREAD and MOV DR still exit).
 * guest: cpu=max name=vmx-exits */
#include "vmx.h"

#define CR4_TSD BIT(2)
#define CR4_PCE BIT(8)
#define INTR_UD vmx_hw_exc_info(6, false)
#define INTR_GP vmx_hw_exc_info(13, true)

static volatile u64 mon_line[8] __attribute__((aligned(64)));
static volatile u16 lmsw_word;

static long l2_exit(const void *code, u32 proc, u32 proc2)
{
    vmx_setup_l2(code, proc, proc2);
    return vmx_run();
}

static u64 qual(void) { return vmread(F_EXIT_QUAL); }
static u64 len(void) { return vmread(F_EXIT_INSN_LEN); }

/* the exit, then (after skipping the instruction) L2's final VMCALL */
static void expect_then_vmcall(long r, long reason, u64 insn_len, const char *what)
{
    TEST_EQ(r, reason, what);
    TEST_EQ(len(), insn_len, "its instruction length");
    vmx_skip();
    TEST_EQ(vmx_run(), R_VMCALL, "L2 continues after it");
}

/* ---- unconditional and simple conditional exits ---- */
VMX_L2_CODE(l2_invd, "invd");
VMX_L2_CODE(l2_wbinvd, "wbinvd");
VMX_L2_CODE(l2_rdpmc, "xor %ecx, %ecx; rdpmc");
VMX_L2_CODE(l2_pause, "pause");
VMX_L2_CODE(l2_monitor, "monitor");
VMX_L2_CODE(l2_mwait, "mwait");
VMX_L2_CODE(l2_monitor_mwait, "monitor; mwait");
VMX_L2_CODE(l2_xsetbv, "xsetbv");
VMX_L2_CODE(l2_invlpg, "invlpg %fs:0x10(%rax)");
VMX_L2_CODE(l2_vmmcall, "vmmcall");

static void simple_exits(void)
{
    expect_then_vmcall(l2_exit(l2_invd, 0, 0), R_INVD, 2, "INVD exits unconditionally");
    TEST_EQ(l2_exit(l2_wbinvd, 0, 0), R_VMCALL, "WBINVD without WBINVD exiting: no exit");
    expect_then_vmcall(l2_exit(l2_wbinvd, 0, PROC2_WBINVD), R_WBINVD, 2, "WBINVD exiting");

    vmx_setup_l2(l2_rdpmc, 0, 0);
    vmwrite(F_EXC_BITMAP, 1u << 13);
    TEST_EQ(vmx_run(), R_VMCALL, "RDPMC without RDPMC exiting: no exit");
    TEST_EQ(l2_exit(l2_rdpmc, PROC_RDPMC, 0), R_RDPMC, "RDPMC exiting");
    TEST_EQ(len(), 2, "RDPMC's length");

    TEST_EQ(l2_exit(l2_pause, 0, 0), R_VMCALL, "PAUSE without PAUSE exiting: no exit");
    expect_then_vmcall(l2_exit(l2_pause, PROC_PAUSE, 0), R_PAUSE, 2, "PAUSE exiting");

    if (cpu_has(1, 0, 2, 3)) {
        vmx_setup_l2(l2_monitor, PROC_MONITOR, 0);
        vmx_gregs[0] = (u64)(ulong)mon_line;
        expect_then_vmcall(vmx_run(), R_MONITOR, 3, "MONITOR exiting");
        vmx_setup_l2(l2_mwait, PROC_MWAIT, 0);
        TEST_EQ(vmx_run(), R_MWAIT, "MWAIT exiting");
        TEST_EQ(qual(), 0, "MWAIT without an armed monitor: qualification bit 0 clear");
        TEST_EQ(len(), 3, "MWAIT's length");
        vmx_setup_l2(l2_monitor_mwait, PROC_MWAIT, 0);
        vmx_gregs[0] = (u64)(ulong)mon_line;
        TEST_EQ(vmx_run(), R_MWAIT, "MWAIT exiting after MONITOR");
        TEST_EQ(qual(), 1, "MWAIT with the monitor armed: qualification bit 0 set");
        vmx_setup_l2(l2_monitor, PROC_MWAIT, 0);
        vmx_gregs[0] = (u64)(ulong)mon_line;
        TEST_EQ(vmx_run(), R_VMCALL, "MONITOR without MONITOR exiting: no exit");
    } else {
        test_skip("no MONITOR/MWAIT");
    }

    if (cpu_has(1, 0, 2, 26)) {
        ulong cr4 = read_cr(4);
        asm volatile("mov %0, %%cr4" ::"r"(cr4 | CR4_OSXSAVE));
        vmx_setup_l2(l2_xsetbv, 0, 0);
        vmx_gregs[0] = 3; /* x87 | SSE */
        expect_then_vmcall(vmx_run(), R_XSETBV, 3, "XSETBV exits unconditionally");
        vmx_setup_l2(l2_xsetbv, 0, 0);
        vmwrite(F_GUEST_CR4, cr4 & ~CR4_OSXSAVE);
        vmwrite(F_EXC_BITMAP, 1u << 6);
        TEST_EQ(vmx_run(), R_EXC_NMI, "XSETBV with CR4.OSXSAVE clear: #UD, not an exit");
        TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_UD, "the #UD");
        asm volatile("mov %0, %%cr4" ::"r"(cr4));
    } else {
        test_skip("no XSAVE");
    }

    vmx_setup_l2(l2_vmmcall, 0, 0);
    vmwrite(F_EXC_BITMAP, 1u << 6);
    TEST_EQ(vmx_run(), R_EXC_NMI, "VMMCALL in L2 (Intel): #UD, not a VMCALL exit");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_UD, "the #UD");

    vmx_setup_l2(l2_invlpg, 0, 0);
    TEST_EQ(vmx_run(), R_VMCALL, "INVLPG without INVLPG exiting: no exit");
    vmx_setup_l2(l2_invlpg, PROC_INVLPG, 0);
    vmwrite(F_GUEST_FS_BASE, 0x100000);
    vmx_gregs[0] = 0x5000;
    TEST_EQ(vmx_run(), R_INVLPG, "INVLPG exiting");
    TEST_EQ(qual(), 0x105010, "INVLPG: the linear address (FS base + RAX + 0x10)");
    TEST_EQ(len(), 5, "INVLPG's length");
}

/* ---- the time-stamp counter ---- */
VMX_L2_CODE(l2_rdtsc, "rdtsc");
VMX_L2_CODE(l2_rdtscp, "rdtscp");
VMX_L2_CODE(l2_rdmsr_tsc, "rdmsr");
VMX_L2_CODE(l2_wrmsr_tsc, "wrmsr");

static u8 msr_bitmap[4096] __attribute__((aligned(4096)));

static u64 l2_edx_eax(void) { return vmx_gregs[2] << 32 | (u32)vmx_gregs[0]; }

static void tsc(void)
{
    TEST_EQ(l2_exit(l2_rdtsc, PROC_RDTSC, 0), R_RDTSC, "RDTSC exiting");
    TEST_EQ(len(), 2, "RDTSC's length");
    const u64 off = 1ull << 50;
    static const struct { u32 proc; u64 offset; const char *what; } runs[] = {
        { PROC_TSC_OFFSET, 1ull << 50, "RDTSC with TSC offsetting: L1's TSC + the offset" },
        { 0, 1ull << 50, "the offset is ignored without TSC offsetting" },
        { PROC_TSC_OFFSET, 0, "TSC offsetting with offset 0" },
    };
    for (unsigned k = 0; k < ARRAY_SIZE(runs); k++) {
        vmx_setup_l2(l2_rdtsc, runs[k].proc, 0);
        vmwrite(F_TSC_OFFSET, runs[k].offset);
        u64 add = runs[k].proc ? runs[k].offset : 0;
        u64 t0 = rdtsc();
        long r = vmx_run();
        u64 t1 = rdtsc();
        TEST_EQ(r, R_VMCALL, "RDTSC without RDTSC exiting: no exit");
        u64 v = l2_edx_eax();
        TEST_ASSERT(v >= t0 + add && v <= t1 + add, "%s (%#llx in [%#llx, %#llx])", runs[k].what,
                    (unsigned long long)v, (unsigned long long)(t0 + add),
                    (unsigned long long)(t1 + add));
    }
    /* RDMSR of IA32_TSC (not exiting): the offset too (SDM 26.3) */
    memset(msr_bitmap, 0, sizeof(msr_bitmap));
    vmx_setup_l2(l2_rdmsr_tsc, PROC_TSC_OFFSET | PROC_MSR_BITMAPS, 0);
    vmwrite(F_MSR_BITMAP, (u64)(ulong)msr_bitmap);
    vmwrite(F_TSC_OFFSET, -off);
    vmx_gregs[1] = 0x10;
    u64 t0 = rdtsc();
    long r = vmx_run();
    u64 t1 = rdtsc();
    TEST_EQ(r, R_VMCALL, "RDMSR IA32_TSC with its bitmap bit clear: no exit");
    u64 v = l2_edx_eax();
    TEST_ASSERT(v >= t0 - off && v <= t1 - off, "RDMSR IA32_TSC with TSC offsetting: L1's TSC + the (negative) offset");

    /* WRMSR of IA32_TSC (not exiting) writes the TSC itself: L1 reads what L2 wrote, L2
     * that plus its offset (only RDMSR and RDTSC add the offset, SDM 26.3) */
    u64 tsc_before = rdtsc();
    vmx_setup_l2(l2_wrmsr_tsc, PROC_TSC_OFFSET | PROC_MSR_BITMAPS, 0);
    vmwrite(F_MSR_BITMAP, (u64)(ulong)msr_bitmap);
    vmwrite(F_TSC_OFFSET, off);
    vmx_gregs[1] = 0x10;
    vmx_gregs[0] = 0;
    vmx_gregs[2] = 0x10; /* TSC := 1 << 36 */
    r = vmx_run();
    u64 l1_after = rdtsc();
    TEST_EQ(r, R_VMCALL, "WRMSR IA32_TSC with its bitmap bit clear: no exit");
    TEST_ASSERT(l1_after >= (1ull << 36) && l1_after < (1ull << 36) + 1000000000ull,
                "L1's TSC is the value L2 wrote (%llx)", (unsigned long long)l1_after);
    vmx_setup_l2(l2_rdtsc, PROC_TSC_OFFSET, 0);
    vmwrite(F_TSC_OFFSET, off);
    r = vmx_run();
    v = l2_edx_eax();
    TEST_ASSERT(v >= l1_after + off, "L2 reads it plus its offset");
    wrmsr(0x10, tsc_before); /* L1's clock back (roughly) */

    if (!cpu_has(0x80000001, 0, 3, 27)) {
        test_skip("no RDTSCP");
        return;
    }
    vmx_setup_l2(l2_rdtscp, PROC_RDTSC, 0);
    vmwrite(F_EXC_BITMAP, 1u << 6);
    TEST_EQ(vmx_run(), R_EXC_NMI, "RDTSCP without secondary controls: #UD (even with RDTSC exiting)");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_UD, "the #UD");
    vmx_setup_l2(l2_rdtscp, PROC_RDTSC, PROC2_WBINVD);
    vmwrite(F_EXC_BITMAP, 1u << 6);
    TEST_EQ(vmx_run(), R_EXC_NMI, "RDTSCP without enable RDTSCP: #UD");
    TEST_EQ(l2_exit(l2_rdtscp, PROC_RDTSC, PROC2_RDTSCP), R_RDTSCP, "RDTSCP with RDTSC exiting");
    TEST_EQ(len(), 3, "RDTSCP's length");
    wrmsr(0xc0000103, 0x77);
    vmx_setup_l2(l2_rdtscp, PROC_TSC_OFFSET, PROC2_RDTSCP);
    vmwrite(F_TSC_OFFSET, off);
    t0 = rdtsc();
    r = vmx_run();
    t1 = rdtsc();
    TEST_EQ(r, R_VMCALL, "RDTSCP without RDTSC exiting: no exit");
    v = l2_edx_eax();
    TEST_ASSERT(v >= t0 + off && v <= t1 + off, "RDTSCP with TSC offsetting: L1's TSC + the offset");
    TEST_EQ(vmx_gregs[1], 0x77, "RDTSCP's ECX: TSC_AUX");
}

/* ---- control registers ---- */
VMX_L2_CODE(l2_cr0_read, "mov %cr0, %rax; smsw %rbx");
VMX_L2_CODE(l2_cr0_write, "mov %rcx, %cr0; vmcall; mov %rdx, %cr0");
VMX_L2_CODE(l2_cr0_reserved, "mov %rsi, %cr0");
VMX_L2_CODE(l2_clts, "clts");
VMX_L2_CODE(l2_cr4, "mov %cr4, %rax; mov %rax, %cr4; vmcall; mov %rdi, %cr4");
VMX_L2_CODE(l2_lmsw_reg, "lmsw %ax");
VMX_L2_CODE(l2_lmsw_mem, "lmsw 0x10(%rbx)");
VMX_L2_CODE(l2_cr3_store, "mov %cr3, %r10");
VMX_L2_CODE(l2_cr3_load, "mov %r11, %cr3");
VMX_L2_CODE(l2_cr8_load, "mov %rax, %cr8");
VMX_L2_CODE(l2_cr8_store, "mov %cr8, %rdx");

enum { CRQ_TO = 0, CRQ_FROM = 1 << 4, CRQ_CLTS = 2 << 4, CRQ_LMSW = 3 << 4 };

static void lmsw_case(u16 src, u64 mask, u64 shadow, bool exits, const char *what)
{
    vmx_setup_l2(l2_lmsw_reg, 0, 0);
    vmwrite(F_CR0_MASK, mask);
    vmwrite(F_CR0_SHADOW, shadow);
    vmx_gregs[0] = src;
    long r = vmx_run();
    TEST_EQ(r, exits ? R_CR : R_VMCALL, what);
    if (exits && r == R_CR) {
        TEST_EQ(qual(), (u64)src << 16 | CRQ_LMSW, "LMSW: type 3, register operand, the 16-bit source");
        TEST_EQ(len(), 3, "LMSW's length");
    }
}

static void control_registers(void)
{
    u64 cr0 = read_cr(0), cr4 = read_cr(4), cr3 = read_cr(3);

    /* reads: the shadow in the bits L1 owns */
    vmx_setup_l2(l2_cr0_read, 0, 0);
    vmwrite(F_GUEST_CR0, cr0 | CR0_TS);
    vmwrite(F_CR0_MASK, CR0_TS | CR0_MP);
    vmwrite(F_CR0_SHADOW, CR0_MP);
    TEST_EQ(vmx_run(), R_VMCALL, "MOV from CR0 and SMSW do not exit");
    TEST_EQ(vmx_gregs[0], (cr0 & ~CR0_TS) | CR0_MP, "MOV from CR0: the read shadow in the owned bits");
    TEST_EQ(vmx_gregs[3] & 0xffff, ((cr0 & ~CR0_TS) | CR0_MP) & 0xffff, "SMSW: the read shadow too");

    /* writes: an exit when an owned bit would differ from the shadow */
    vmx_setup_l2(l2_cr0_write, 0, 0);
    vmwrite(F_GUEST_CR0, cr0 | CR0_TS);
    vmwrite(F_CR0_MASK, CR0_TS);
    vmwrite(F_CR0_SHADOW, 0);
    vmx_gregs[1] = cr0 & ~CR0_TS;
    vmx_gregs[2] = cr0 | CR0_TS;
    TEST_EQ(vmx_run(), R_VMCALL, "MOV to CR0 matching the shadow in the owned bits: no exit");
    TEST_EQ(vmread(F_GUEST_CR0) & CR0_TS, CR0_TS, "and the owned bit keeps its value");
    vmx_skip();
    TEST_EQ(vmx_run(), R_CR, "MOV to CR0 changing an owned bit against the shadow: exit");
    TEST_EQ(qual(), 0 | CRQ_TO | 2 << 8, "qualification: CR0, MOV to, RDX");
    TEST_EQ(len(), 3, "MOV to CR0's length");

    vmx_setup_l2(l2_cr0_reserved, 0, 0);
    vmwrite(F_CR0_MASK, CR0_TS);
    vmwrite(F_CR0_SHADOW, 0);
    vmwrite(F_EXC_BITMAP, 1u << 13);
    vmx_gregs[6] = cr0 | CR0_TS | (1ull << 32);
    TEST_EQ(vmx_run(), R_CR, "MOV to CR0 with a reserved bit: the exit comes before the #GP");
    TEST_EQ(qual(), 0 | CRQ_TO | 6 << 8, "qualification: CR0, MOV to, RSI");

    /* CLTS */
    vmx_setup_l2(l2_clts, 0, 0);
    vmwrite(F_GUEST_CR0, cr0 | CR0_TS);
    vmwrite(F_CR0_MASK, CR0_TS);
    vmwrite(F_CR0_SHADOW, CR0_TS);
    TEST_EQ(vmx_run(), R_CR, "CLTS with TS owned and set in the shadow: exit");
    TEST_EQ(qual(), CRQ_CLTS, "qualification: CR0, CLTS");
    TEST_EQ(len(), 2, "CLTS's length");
    vmx_setup_l2(l2_clts, 0, 0);
    vmwrite(F_GUEST_CR0, cr0 | CR0_TS);
    vmwrite(F_CR0_MASK, CR0_TS);
    vmwrite(F_CR0_SHADOW, 0);
    TEST_EQ(vmx_run(), R_VMCALL, "CLTS with TS owned and clear in the shadow: no exit");
    TEST_EQ(vmread(F_GUEST_CR0) & CR0_TS, CR0_TS, "CR0.TS, owned by L1, stays set");
    vmx_setup_l2(l2_clts, 0, 0);
    vmwrite(F_GUEST_CR0, cr0 | CR0_TS);
    TEST_EQ(vmx_run(), R_VMCALL, "CLTS with TS not owned: no exit");
    TEST_EQ(vmread(F_GUEST_CR0) & CR0_TS, 0, "CLTS clears CR0.TS");

    /* CR4 */
    vmx_setup_l2(l2_cr4, 0, 0);
    vmwrite(F_CR4_MASK, CR4_TSD);
    vmwrite(F_CR4_SHADOW, CR4_TSD);
    vmx_gregs[7] = cr4 & ~CR4_TSD;
    TEST_EQ(vmx_run(), R_VMCALL, "MOV from CR4 and back: no exit");
    TEST_EQ(vmx_gregs[0], cr4 | CR4_TSD, "MOV from CR4: the read shadow in the owned bits");
    TEST_EQ(vmread(F_GUEST_CR4) & CR4_TSD, 0, "CR4.TSD, owned by L1, stays clear");
    vmx_skip();
    TEST_EQ(vmx_run(), R_CR, "MOV to CR4 against the shadow: exit");
    TEST_EQ(qual(), 4 | CRQ_TO | 7 << 8, "qualification: CR4, MOV to, RDI");

    /* LMSW: bits 3:1 against the shadow; PE only when it would be set */
    lmsw_case(0xab01, 0xf, 0x11, false, "LMSW equal to the shadow in 3:0 (bits 15:4 ignored): no exit");
    lmsw_case(0xabc3, 0xf, 0x11, true, "LMSW changing MP against the shadow: exit");
    lmsw_case(0x0000, 0x1, 0x0, false, "LMSW with PE clear, PE owned and clear in the shadow: no exit");
    lmsw_case(0x0001, 0x1, 0x0, true, "LMSW setting PE, owned and clear in the shadow: exit");
    lmsw_case(0x0000, 0x1, 0x1, false, "LMSW cannot clear PE: no exit");
    lmsw_case(0x000e, 0x0, 0x0, false, "LMSW with nothing owned: no exit");
    vmx_setup_l2(l2_lmsw_mem, 0, 0);
    vmwrite(F_CR0_MASK, 0xe);
    vmwrite(F_CR0_SHADOW, 0);
    lmsw_word = 0x1234;
    vmx_gregs[3] = (u64)(ulong)&lmsw_word - 0x10;
    TEST_EQ(vmx_run(), R_CR, "LMSW from memory against the shadow: exit");
    TEST_EQ(qual(), 0x1234ull << 16 | 1 << 6 | CRQ_LMSW, "qualification: LMSW, memory operand, source");
    TEST_EQ(vmread(F_GUEST_LINEAR), (u64)(ulong)&lmsw_word, "guest-linear address: the operand's");
    TEST_EQ(len(), 4, "LMSW's length");

    /* CR3 */
    TEST_EQ(l2_exit(l2_cr3_store, 0, 0), R_VMCALL, "MOV from CR3 without CR3-store exiting: no exit");
    TEST_EQ(l2_exit(l2_cr3_store, PROC_CR3_STORE, 0), R_CR, "CR3-store exiting");
    TEST_EQ(qual(), 3 | CRQ_FROM | 10 << 8, "qualification: CR3, MOV from, R10");
    TEST_EQ(len(), 4, "its length");
    vmx_setup_l2(l2_cr3_load, PROC_CR3_LOAD, 0);
    vmx_gregs[11] = cr3;
    TEST_EQ(vmx_run(), R_CR, "CR3-load exiting");
    TEST_EQ(qual(), 3 | CRQ_TO | 11 << 8, "qualification: CR3, MOV to, R11");
    vmx_setup_l2(l2_cr3_load, PROC_CR3_LOAD, 0);
    vmx_gregs[11] = cr3;
    vmwrite(F_CR3_TARGET_COUNT, 2);
    vmwrite(F_CR3_TARGET0, cr3 + 0x1000);
    vmwrite(F_CR3_TARGET0 + 2, cr3);
    TEST_EQ(vmx_run(), R_VMCALL, "MOV to CR3 of a CR3-target value: no exit");
    vmx_setup_l2(l2_cr3_load, PROC_CR3_LOAD, 0);
    vmx_gregs[11] = cr3;
    vmwrite(F_CR3_TARGET_COUNT, 1);
    vmwrite(F_CR3_TARGET0, cr3 + 0x1000);
    vmwrite(F_CR3_TARGET0 + 2, cr3);
    TEST_EQ(vmx_run(), R_CR, "a target beyond the CR3-target count does not count");
    vmx_setup_l2(l2_cr3_load, 0, 0);
    vmx_gregs[11] = cr3;
    TEST_EQ(vmx_run(), R_VMCALL, "MOV to CR3 without CR3-load exiting: no exit");

    /* CR8 */
    TEST_EQ(l2_exit(l2_cr8_load, PROC_CR8_LOAD, 0), R_CR, "CR8-load exiting");
    TEST_EQ(qual(), 8 | CRQ_TO | 0 << 8, "qualification: CR8, MOV to, RAX");
    TEST_EQ(len(), 4, "its length");
    TEST_EQ(l2_exit(l2_cr8_store, PROC_CR8_STORE, 0), R_CR, "CR8-store exiting");
    TEST_EQ(qual(), 8 | CRQ_FROM | 2 << 8, "qualification: CR8, MOV from, RDX");
    TEST_EQ(l2_exit(l2_cr8_load, PROC_CR8_STORE, 0), R_VMCALL, "MOV to CR8 without CR8-load exiting");
    vmx_setup_l2(l2_cr8_load, PROC_CR8_LOAD, 0);
    vmwrite(F_EXC_BITMAP, 1u << 13);
    vmx_gregs[0] = 0x10;
    TEST_EQ(vmx_run(), R_CR, "MOV to CR8 with a reserved bit: the exit comes before the #GP");
    vmx_setup_l2(l2_cr8_load, 0, 0);
    vmwrite(F_EXC_BITMAP, 1u << 13);
    vmx_gregs[0] = 0x10;
    TEST_EQ(vmx_run(), R_EXC_NMI, "MOV to CR8 with a reserved bit without CR8-load exiting: #GP");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_GP, "the #GP");
    TEST_EQ(l2_exit(l2_cr8_store, PROC_CR8_LOAD, 0), R_VMCALL, "MOV from CR8 without CR8-store exiting");
}

/* ---- debug registers ---- */
VMX_L2_CODE(l2_dr7_write, "mov %rax, %dr7");
VMX_L2_CODE(l2_dr6_read, "mov %dr6, %rbx");
VMX_L2_CODE(l2_dr4_read, "mov %dr4, %rcx");
VMX_L2_CODE(l2_dr0_read, "mov %dr0, %rax");
VMX_L2_CODE(l2_dr7_reserved, "mov %rsi, %dr7");

static void dr_setup(const void *code, u32 proc, u64 dr7, u64 cr4)
{
    vmx_setup_l2(code, proc, 0);
    vmwrite(F_ENTRY_CTLS, vmread(F_ENTRY_CTLS) | ENTRY_LOAD_DEBUG);
    vmwrite(F_GUEST_DR7, dr7);
    vmwrite(F_GUEST_CR4, cr4);
    vmwrite(F_EXC_BITMAP, 1u << 1 | 1u << 6 | 1u << 13);
}

static void debug_registers(void)
{
    u64 cr4 = read_cr(4) & ~CR4_DE;
    dr_setup(l2_dr7_write, 0, 0x400, cr4);
    vmx_gregs[0] = 0x400;
    TEST_EQ(vmx_run(), R_VMCALL, "MOV to DR7 without MOV-DR exiting: no exit");
    dr_setup(l2_dr7_write, PROC_MOV_DR, 0x400, cr4);
    TEST_EQ(vmx_run(), R_DR, "MOV-DR exiting: MOV to DR7");
    TEST_EQ(qual(), 7 | 0 << 4 | 0 << 8, "qualification: DR7, MOV to, RAX");
    TEST_EQ(len(), 3, "its length");
    dr_setup(l2_dr6_read, PROC_MOV_DR, 0x400, cr4);
    TEST_EQ(vmx_run(), R_DR, "MOV-DR exiting: MOV from DR6");
    TEST_EQ(qual(), 6 | 1 << 4 | 3 << 8, "qualification: DR6, MOV from, RBX");
    dr_setup(l2_dr4_read, PROC_MOV_DR, 0x400, cr4);
    TEST_EQ(vmx_run(), R_DR, "MOV-DR exiting: MOV from DR4");
    TEST_EQ(qual(), 4 | 1 << 4 | 1 << 8, "qualification: DR4 as named (not DR6), RCX");
    dr_setup(l2_dr4_read, PROC_MOV_DR, 0x400, cr4 | CR4_DE);
    TEST_EQ(vmx_run(), R_DR, "MOV from DR4 with CR4.DE: the exit comes before the #UD");
    dr_setup(l2_dr4_read, 0, 0x400, cr4 | CR4_DE);
    TEST_EQ(vmx_run(), R_EXC_NMI, "MOV from DR4 with CR4.DE, no exiting: #UD");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_UD, "the #UD");
    dr_setup(l2_dr0_read, PROC_MOV_DR, 0x2400, cr4);
    TEST_EQ(vmx_run(), R_DR, "MOV DR with DR7.GD: the exit comes before the general-detect #DB");
    dr_setup(l2_dr0_read, 0, 0x2400, cr4);
    TEST_EQ(vmx_run(), R_EXC_NMI, "MOV DR with DR7.GD, no exiting: #DB");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), vmx_hw_exc_info(1, false), "the #DB");
    dr_setup(l2_dr7_reserved, PROC_MOV_DR, 0x400, cr4);
    vmx_gregs[6] = 1ull << 32;
    TEST_EQ(vmx_run(), R_DR, "MOV to DR7 with bit 32: the exit comes before the #GP");
    dr_setup(l2_dr7_reserved, 0, 0x400, cr4);
    vmx_gregs[6] = 1ull << 32;
    TEST_EQ(vmx_run(), R_EXC_NMI, "MOV to DR7 with bit 32, no exiting: #GP");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_GP, "the #GP");
}

/* ---- MSRs ---- */
VMX_L2_CODE(l2_rdmsr, "rdmsr");
VMX_L2_CODE(l2_wrmsr, "wrmsr");

static void bitmap_set(unsigned quarter, u32 msr)
{
    u32 bit = quarter * 8192 + (msr & 0x1fff);
    msr_bitmap[bit / 8] |= (u8)(1u << (bit & 7));
}

enum { READ_LOW, READ_HIGH, WRITE_LOW, WRITE_HIGH };

/* Runs RDMSR or WRMSR of msr (EDX:EAX = value) with or without the bitmap. */
static long msr_run(bool write, u32 msr, u64 value, bool bitmaps)
{
    vmx_setup_l2(write ? l2_wrmsr : l2_rdmsr, bitmaps ? PROC_MSR_BITMAPS : 0, 0);
    vmwrite(F_MSR_BITMAP, (u64)(ulong)msr_bitmap);
    vmwrite(F_EXC_BITMAP, 1u << 13);
    vmx_gregs[1] = msr;
    vmx_gregs[0] = (u32)value;
    vmx_gregs[2] = value >> 32;
    return vmx_run();
}

static void msrs(void)
{
    memset(msr_bitmap, 0, sizeof(msr_bitmap));
    TEST_EQ(msr_run(false, 0x10, 0, false), R_RDMSR, "RDMSR without MSR bitmaps exits");
    TEST_EQ(len(), 2, "its length");
    TEST_EQ(msr_run(true, 0x174, 0, false), R_WRMSR, "WRMSR without MSR bitmaps exits");
    TEST_EQ(msr_run(false, 0x10, 0, true), R_VMCALL, "RDMSR, bit clear: no exit");
    bitmap_set(READ_LOW, 0x10);
    bitmap_set(READ_HIGH, 0xc0000080);
    bitmap_set(WRITE_LOW, 0x174);
    bitmap_set(WRITE_HIGH, 0xc0000102);
    bitmap_set(READ_LOW, 0x1fff);
    bitmap_set(READ_HIGH, 0xc0000103); /* TSC_AUX: read-high only */
    bitmap_set(WRITE_LOW, 0x1b);       /* APIC_BASE: write-low only */
    bitmap_set(READ_HIGH, 0xc000001b); /* APIC_BASE's twin in the high range */
    bitmap_set(READ_LOW, 0x100);       /* FS_BASE's twin in the low range */
    TEST_EQ(msr_run(false, 0x10, 0, true), R_RDMSR, "read-low bitmap: RDMSR 10h exits");
    TEST_EQ(msr_run(false, 0x1b, 0, true), R_VMCALL, "RDMSR 1Bh (write-low and read-high C000001Bh bits): no exit");
    TEST_EQ(msr_run(false, 0xc0000080, 0, true), R_RDMSR, "read-high bitmap: RDMSR C0000080h exits");
    TEST_EQ(msr_run(false, 0xc0000100, 0, true), R_VMCALL, "RDMSR C0000100h (read-low 100h set): no exit");
    TEST_EQ(msr_run(true, 0x174, 0, true), R_WRMSR, "write-low bitmap: WRMSR 174h exits");
    TEST_EQ(msr_run(true, 0xc0000102, 0, true), R_WRMSR, "write-high bitmap: WRMSR C0000102h exits");
    TEST_EQ(msr_run(true, 0xc0000103, 0x55, true), R_VMCALL, "WRMSR C0000103h (read-high bit only): no exit");
    TEST_EQ(rdmsr(0xc0000103), 0x55, "and the write happened");
    TEST_EQ(msr_run(true, 0x175, 0x1234, true), R_VMCALL, "WRMSR 175h, bit clear: no exit");
    TEST_EQ(vmread(F_GUEST_SYSENTER_ESP), 0x1234, "L2's SYSENTER_ESP written");
    TEST_EQ(msr_run(false, 0x1fff, 0, true), R_RDMSR, "RDMSR of a non-existent MSR with its bit set: exit, not #GP");
    TEST_EQ(msr_run(false, 0x2000, 0, true), R_RDMSR, "RDMSR 2000h (outside the ranges) exits");
    TEST_EQ(msr_run(false, 0x40000000, 0, true), R_RDMSR, "RDMSR 40000000h exits");
    TEST_EQ(msr_run(true, 0xc0002000, 0, true), R_WRMSR, "WRMSR C0002000h exits");
    TEST_EQ(msr_run(false, 0xbfffffff, 0, true), R_RDMSR, "RDMSR BFFFFFFFh exits");
}

/* ---- faults before exits: L2 at CPL 3 ---- */
VMX_L2_CODE(l2_u_rdmsr, "rdmsr");
VMX_L2_CODE(l2_u_hlt, "hlt");
VMX_L2_CODE(l2_u_cr3, "mov %cr3, %rax");
VMX_L2_CODE(l2_u_rdtsc, "rdtsc");
VMX_L2_CODE(l2_u_rdpmc, "rdpmc");
VMX_L2_CODE(l2_u_wbinvd, "wbinvd");
VMX_L2_CODE(l2_u_invlpg, "invlpg (%rax)");
VMX_L2_CODE(l2_u_cpuid, "cpuid");
VMX_L2_CODE(l2_u_vmread, "vmread %rax, %rbx");
VMX_L2_CODE(l2_u_dr, "mov %dr7, %rax");

static long user_run(const void *code, u32 proc, u32 proc2, u64 cr4)
{
    vmx_setup_l2(code, proc, proc2);
    vmx_guest_cpl3();
    vmwrite(F_GUEST_CR4, cr4);
    vmwrite(F_EXC_BITMAP, 1u << 13 | 1u << 6);
    return vmx_run();
}

static void cpl3(void)
{
    u64 cr4 = read_cr(4) & ~(CR4_TSD | CR4_PCE);
    static const struct { const void *code; u32 proc, proc2; u64 cr4; const char *what; } gp[] = {
        { l2_u_rdmsr, 0, 0, 0, "RDMSR at CPL 3 without MSR bitmaps: #GP, not an exit" },
        { l2_u_hlt, PROC_HLT, 0, 0, "HLT at CPL 3 with HLT exiting: #GP" },
        { l2_u_cr3, PROC_CR3_STORE, 0, 0, "MOV from CR3 at CPL 3 with CR3-store exiting: #GP" },
        { l2_u_rdtsc, PROC_RDTSC, 0, CR4_TSD, "RDTSC at CPL 3 with CR4.TSD and RDTSC exiting: #GP" },
        { l2_u_rdpmc, PROC_RDPMC, 0, 0, "RDPMC at CPL 3 without CR4.PCE, RDPMC exiting: #GP" },
        { l2_u_wbinvd, 0, PROC2_WBINVD, 0, "WBINVD at CPL 3 with WBINVD exiting: #GP" },
        { l2_u_invlpg, PROC_INVLPG, 0, 0, "INVLPG at CPL 3 with INVLPG exiting: #GP" },
    };
    for (unsigned k = 0; k < ARRAY_SIZE(gp); k++) {
        TEST_EQ(user_run(gp[k].code, gp[k].proc, gp[k].proc2, cr4 | gp[k].cr4), R_EXC_NMI, gp[k].what);
        TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_GP, "the #GP");
    }
    TEST_EQ(user_run(l2_u_rdtsc, PROC_RDTSC, 0, cr4), R_RDTSC, "RDTSC at CPL 3 without CR4.TSD exits");
    TEST_EQ(user_run(l2_u_cpuid, 0, 0, cr4), R_CPUID, "CPUID at CPL 3 exits");
    TEST_EQ(user_run(l2_u_vmread, 0, 0, cr4), R_VMREAD, "VMREAD at CPL 3 exits (before the CPL check)");
    TEST_EQ(user_run(l2_u_dr, PROC_MOV_DR, 0, cr4), R_DR, "MOV DR at CPL 3 with MOV-DR exiting: exit before the #GP");
    TEST_EQ(user_run(l2_u_dr, 0, 0, cr4), R_EXC_NMI, "MOV DR at CPL 3 without exiting: #GP");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_GP, "the #GP");
}

void test_main(void)
{
    TEST_ASSERT(vmx_on(), "VMXON");
    simple_exits();
    tsc();
    control_registers();
    debug_registers();
    msrs();
    cpl3();
    TEST_EQ(vmxoff(), 0, "VMXOFF");
}

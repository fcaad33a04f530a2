/* VM-entry checks (SDM Vol. 3C 27.2, 27.3.1, 27.4): from a valid VMCS, one rule broken at
 * a time, VMLAUNCH: VMfailValid with error 7 (controls) or 8 (host state), or a VM exit
 * with reason 33 | bit 31 and its qualification (guest state; 2 PDPTEs, 3 NMI in an STI
 * shadow, 4 link pointer), or 34 | bit 31 with the failing MSR-load entry's number. After
 * a failure exit L1's state is what the host-state area says. The valid VMCSs are tried
 * too: a 64-bit L2 that exits on VMCALL, and (with the preemption timer at 0, so that L2
 * exits before its first instruction) an unrestricted real-mode guest, a virtual-8086
 * guest and a 32-bit PAE guest with and without EPT. Also VMLAUNCH after MOV SS (error 26).
 * QEMU TCG has no nested VMX: the test skips there.
 * guest: cpu=max name=vmx-entry */
#include "vmx.h"

static void l2_main(void)
{
    for (;;)
        asm volatile("vmcall" ::"a"(0x600d));
}

/* ---- the valid VMCSs a case starts from ---- */
enum base { B64, BREAL, BV86, BPAE, BPAE_EPT };
static u64 eptp;
static u64 pdpt[4] __attribute__((aligned(32)));
static u64 msr_area[4][2] __attribute__((aligned(16)));
static u8 link_page[4096] __attribute__((aligned(4096)));
/* a virtual-APIC page with VTPR 0 (APIC-virtualization cases) */
static u8 vapic_page[4096] __attribute__((aligned(4096)));

/* Host-state values that differ from L1's own, to see them loaded by a failure exit. */
#define HOST_SYSENTER_CS 0x4321
#define HOST_SYSENTER_ESP 0x1111000ull
#define HOST_SYSENTER_EIP 0x2222000ull
#define HOST_FS_BASE 0x3333000ull

static void exit_on_first_instruction(void)
{
    vmwrite(F_PIN, vmread(F_PIN) | PIN_PREEMPT);
    vmwrite(F_PREEMPT_TIMER, 0);
}

static void use_ept(u32 more)
{
    vmx_set_proc2(PROC2_EPT | more);
    vmwrite(F_EPT_POINTER, eptp);
}

/* All six segment registers of a 16-bit world: selector, base, limit 0xffff, rights. */
static void segs16(u16 sel, u32 ar_code, u32 ar_data)
{
    static const u32 sels[] = { F_GUEST_ES_SEL, F_GUEST_CS_SEL, F_GUEST_SS_SEL,
                                F_GUEST_DS_SEL, F_GUEST_FS_SEL, F_GUEST_GS_SEL };
    for (unsigned k = 0; k < 6; k++) {
        u32 f = sels[k];
        vmwrite(f, sel);
        vmwrite(f - 0x0800 + 0x6806, (u64)sel << 4);
        vmwrite(f - 0x0800 + 0x4800, 0xffff);
        vmwrite(f - 0x0800 + 0x4814, f == F_GUEST_CS_SEL ? ar_code : ar_data);
    }
}

/* A guest outside IA-32e mode (EFER.LMA/LME clear, loaded) */
static void not_ia32e(void)
{
    vmwrite(F_ENTRY_CTLS, vmread(F_ENTRY_CTLS) & ~(u64)ENTRY_IA32E);
    vmwrite(F_GUEST_EFER, vmread(F_GUEST_EFER) & ~(u64)((1 << 8) | (1 << 10)));
    vmwrite(F_GUEST_CR4, vmread(F_GUEST_CR4) & ~(u64)(1 << 17));
}

static void setup(enum base b)
{
    /* VMCLEAR writes the current VMCS back: clear it first, so that vmx_vmcs_setup's
     * zeroed region is what VMPTRLD loads (no field left over from the last case) */
    vmclear(&vmx_region_pa[1]);
    vmx_vmcs_setup(&vmx_region_pa[1], l2_main);
    vmwrite(F_HOST_SYSENTER_CS, HOST_SYSENTER_CS);
    vmwrite(F_HOST_SYSENTER_ESP, HOST_SYSENTER_ESP);
    vmwrite(F_HOST_SYSENTER_EIP, HOST_SYSENTER_EIP);
    vmwrite(F_HOST_FS_BASE, HOST_FS_BASE);
    memset(pdpt, 0, sizeof(pdpt));
    if (b == B64)
        return;
    exit_on_first_instruction();
    not_ia32e();
    vmwrite(F_GUEST_RIP, 0x1000);
    if (b == BREAL || b == BV86) {
        use_ept(PROC2_UNRESTRICTED);
        u64 cr0 = vmread(F_GUEST_CR0) & ~(u64)(1u << 31 | 1);
        vmwrite(F_GUEST_CR0, b == BV86 ? cr0 | 1 : cr0);
        vmwrite(F_GUEST_CR4, vmread(F_GUEST_CR4) & ~(u64)(1 << 5));
        if (b == BREAL) {
            segs16(0, 0x9b, 0x93);
        } else {
            segs16(0x100, 0xf3, 0xf3);
            vmwrite(F_GUEST_RFLAGS, 0x20002);
        }
        vmwrite(F_GUEST_TR_BASE, 0);
        vmwrite(F_GUEST_TR_LIMIT, 0x67);
        return;
    }
    /* 32-bit PAE paging, CR3 at a PDPT of four non-present entries */
    vmwrite(F_GUEST_CS_AR, 0xc09b);
    vmwrite(F_GUEST_CR3, (u64)(ulong)pdpt);
    vmwrite(F_GUEST_TR_BASE, 0);
    if (b == BPAE_EPT) {
        use_ept(0);
        for (int k = 0; k < 4; k++)
            vmwrite(0x280a + 2 * k, 0);
    }
}

/* ---- one broken rule: up to 8 field changes ---- */
enum op { NONE, SET, OR, CLR };
struct wr { u32 f; enum op op; u64 v; };
#define S(f, v) { f, SET, v }
#define O(f, v) { f, OR, v }
#define VAPIC ((u64)(ulong)vapic_page)
#define C(f, v) { f, CLR, v }
/* outcomes: VMfailValid errors 7 and 8; exits; a valid entry */
enum { CTL = 7, HOST = 8, GUEST = 0x80000021, MSRLOAD = 0x80000022, VALID = 1 };
struct kase {
    const char *what;
    enum base base;
    long expect;
    u64 qual;
    struct wr w[8];
};

static void apply(const struct wr *w)
{
    for (int k = 0; k < 8 && w[k].op != NONE; k++) {
        u64 v = w[k].v;
        if (w[k].op == OR)
            v |= vmread(w[k].f);
        else if (w[k].op == CLR)
            v = vmread(w[k].f) & ~v;
        vmwrite(w[k].f, v);
    }
}

struct dtr { u16 limit; u64 base; } __attribute__((packed));

/* After a failure exit: L1's state is the host-state area's (SDM 27.8, 28.5). */
static void check_host_state(const char *what)
{
    struct dtr g, i;
    asm volatile("sgdt %0; sidt %1" : "=m"(g), "=m"(i));
    bool ok = rdmsr(0x174) == HOST_SYSENTER_CS && rdmsr(0x175) == HOST_SYSENTER_ESP &&
              rdmsr(0x176) == HOST_SYSENTER_EIP && rdmsr(MSR_FS_BASE) == HOST_FS_BASE &&
              g.limit == 0xffff && i.limit == 0xffff && read_cr(3) == vmread(F_HOST_CR3);
    TEST_ASSERT(ok, "%s: L1 has the host state after the failure exit", what);
}

/* Back to L1's own descriptor tables and MSRs after any exit. */
static struct dtr l1_gdtr, l1_idtr;
static void restore_l1(void)
{
    asm volatile("lgdt %0; lidt %1" ::"m"(l1_gdtr), "m"(l1_idtr));
    wrmsr(0x174, 0);
    wrmsr(0x175, 0);
    wrmsr(0x176, 0);
    wrmsr(MSR_FS_BASE, 0);
}

static void run_case(const struct kase *k)
{
    setup(k->base);
    apply(k->w);
    long r = vmx_run();
    if (k->expect == CTL || k->expect == HOST) {
        u64 err = r == -2 ? vmread(F_INSN_ERROR) : 0;
        TEST_ASSERT(r == -2 && err == (u64)k->expect,
                    "%s: VMfailValid %ld (got %ld, error %lu)", k->what, k->expect, r, (ulong)err);
        return;
    }
    if (k->expect == VALID) {
        long want = k->base == B64 ? R_VMCALL : R_PREEMPT;
        TEST_ASSERT(r == want, "%s: enters (exit %ld, got %ld)", k->what, want, r);
        restore_l1();
        return;
    }
    u64 qual = r == k->expect ? vmread(F_EXIT_QUAL) : ~0ull;
    TEST_ASSERT(r == k->expect && qual == k->qual, "%s: exit %#lx qual %lu (got %#lx qual %#lx)",
                k->what, (ulong)k->expect, (ulong)k->qual, (ulong)r, (ulong)qual);
    if (r == k->expect)
        check_host_state(k->what);
    restore_l1();
}

/* VMLAUNCH in a MOV SS shadow: error 26, before the checks of the controls (the CR3-target
 * count is bad too). */
static void vmlaunch_after_mov_ss(void)
{
    setup(B64);
    vmwrite(F_CR3_TARGET_COUNT, 5);
    u64 fl;
    asm volatile("mov %%ss, %%ax; mov %%ax, %%ss; vmlaunch; pushf; pop %0"
                 : "=r"(fl) :: "rax", "cc", "memory");
    TEST_EQ(vmx_outcome(fl), 2, "VMLAUNCH after MOV SS: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 26, "VM-instruction error 26");
    asm volatile("vmlaunch; pushf; pop %0" : "=r"(fl) :: "cc", "memory");
    TEST_EQ(vmread(F_INSN_ERROR), 7, "the same VMLAUNCH without MOV SS: error 7");
}

/* The VM-entry MSR-load area: entry 3 of 3 names an x2APIC MSR (SDM 27.4). */
static void msr_load_failure(void)
{
    msr_area[0][0] = 0x174;
    msr_area[0][1] = 0x10;
    msr_area[1][0] = 0x175;
    msr_area[1][1] = 0x2000;
    msr_area[2][0] = 0x808;
    msr_area[2][1] = 0;
    struct kase k = { "MSR-load entry 3 (x2APIC TPR)", B64, MSRLOAD, 3,
                      { S(F_ENTRY_MSR_LOAD_COUNT, 3), S(F_ENTRY_MSR_LOAD_ADDR, (u64)(ulong)msr_area) } };
    run_case(&k);
    msr_area[2][0] = 0x9e; /* IA32_SMBASE: not loadable from the area */
    k.what = "MSR-load entry 3 (IA32_SMBASE)";
    run_case(&k);
    msr_area[2][0] = 0x176;
    msr_area[1][0] = 0x175 | (1ull << 32); /* reserved bits 63:32 of an entry's index word */
    k.what = "MSR-load entry 2 with reserved bits";
    k.qual = 2;
    run_case(&k);
}

#define PG (1ull << 31)
void test_main(void)
{
    if (on_qemu_tcg()) {
        test_skip("QEMU TCG has no nested VMX");
        return;
    }
    TEST_ASSERT(vmx_on(), "VMXON");
    asm volatile("sgdt %0; sidt %1" : "=m"(l1_gdtr), "=m"(l1_idtr));
    eptp = vmx_ept_identity(4);
    *(u32 *)link_page = vmx_revision() ^ 1;
    *(u32 *)(link_page + 0x800) = vmx_revision(); /* so that only the alignment is wrong */
    u64 link = (u64)(ulong)link_page, cur = vmx_region_pa[1];
    u64 spare = vmx_region_pa[2];
    vmx_region_init((void *)(ulong)spare, vmx_revision());
    u64 xint = 0x80000020, nmi = 0x80000202, gp = 0x80000b0d;

    const struct kase cases[] = {
        /* the valid starting points */
        { "valid 64-bit", B64, VALID, 0, { { 0 } } },
        { "valid real mode", BREAL, VALID, 0, { { 0 } } },
        { "valid v86", BV86, VALID, 0, { { 0 } } },
        { "valid 32-bit PAE", BPAE, VALID, 0, { { 0 } } },
        { "valid 32-bit PAE with EPT", BPAE_EPT, VALID, 0, { { 0 } } },
        /* 27.2.1.1 VM-execution controls */
        { "pin: posted interrupts without virtual-interrupt delivery", B64, CTL, 0, { O(F_PIN, 1 << 7) } },
        { "primary: tertiary controls not offered", B64, CTL, 0, { O(F_PROC, 1 << 17) } },
        { "secondary: PML not offered", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, 1 << 17) } },
        /* APIC virtualization */
        { "TPR shadow: virtual-APIC address unaligned", B64, CTL, 0, { O(F_PROC, 1 << 21), S(0x2012, 0x1008) } },
        { "TPR shadow: TPR threshold bits 31:4", B64, CTL, 0, { O(F_PROC, 1 << 21), S(0x2012, VAPIC), S(0x401c, 0x10) } },
        { "TPR shadow: TPR threshold above VTPR[7:4]", B64, CTL, 0, { O(F_PROC, 1 << 21), S(0x2012, VAPIC), S(0x401c, 3) } },
        { "TPR shadow: threshold 0 enters", B64, VALID, 0, { O(F_PROC, 1 << 21), S(0x2012, VAPIC), S(0x401c, 0) } },
        { "virtual-interrupt delivery without TPR shadow", B64, CTL, 0, { O(F_PIN, 1), O(F_PROC, PROC_SECONDARY), S(F_PROC2, 1 << 9) } },
        { "virtual-interrupt delivery without external-interrupt exiting", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY | 1 << 21), S(0x2012, VAPIC), S(F_PROC2, 1 << 9) } },
        { "x2APIC and APIC-access virtualization together", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY | 1 << 21), S(0x2012, VAPIC), S(F_PROC2, 1 | 1 << 4), S(0x2014, VAPIC) } },
        { "posted interrupts: descriptor not 64-byte aligned", B64, CTL, 0, { O(F_PIN, 1 | 1 << 7), O(F_PROC, PROC_SECONDARY | 1 << 21), S(0x2012, VAPIC), S(F_PROC2, 1 << 9), O(F_EXIT_CTLS, 1 << 15), S(0x2016, VAPIC + 8) } },
        { "posted interrupts: notification vector above 255", B64, CTL, 0, { O(F_PIN, 1 | 1 << 7), O(F_PROC, PROC_SECONDARY | 1 << 21), S(0x2012, VAPIC), S(F_PROC2, 1 << 9), O(F_EXIT_CTLS, 1 << 15), S(0x2016, VAPIC), S(0x0002, 0x100) } },
        { "APIC-access address unaligned", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, 1), S(0x2014, 0x1004) } },
        { "CR3-target count 5", B64, CTL, 0, { S(F_CR3_TARGET_COUNT, 5) } },
        { "I/O bitmap A unaligned", B64, CTL, 0, { O(F_PROC, PROC_IO_BITMAPS), S(F_IO_BITMAP_A, 0x1008), S(F_IO_BITMAP_B, 0x2000) } },
        { "I/O bitmap B beyond MAXPHYADDR", B64, CTL, 0, { O(F_PROC, PROC_IO_BITMAPS), S(F_IO_BITMAP_A, 0x1000), S(F_IO_BITMAP_B, 1ull << 60) } },
        { "MSR bitmap unaligned", B64, CTL, 0, { O(F_PROC, PROC_MSR_BITMAPS), S(F_MSR_BITMAP, 0x1800) } },
        { "virtual NMIs without NMI exiting", B64, CTL, 0, { O(F_PIN, PIN_VNMI) } },
        { "NMI-window exiting without virtual NMIs", B64, CTL, 0, { O(F_PIN, PIN_NMI), O(F_PROC, PROC_NMI_WINDOW) } },
        { "VPID 0", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, PROC2_VPID), S(F_VPID, 0) } },
        { "EPTP memory type 3", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, PROC2_EPT), S(F_EPT_POINTER, (eptp & ~7ull) | 3) } },
        { "EPTP walk length 3", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, PROC2_EPT), S(F_EPT_POINTER, (eptp & ~0x38ull) | (2 << 3)) } },
        { "EPTP bits 11:7", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, PROC2_EPT), S(F_EPT_POINTER, eptp | 0x80) } },
        { "unrestricted guest without EPT", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, PROC2_UNRESTRICTED) } },
        { "VM-function controls bit 1", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, PROC2_VMFUNC), S(0x2018, 2) } },
        { "EPTP switching without EPT", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, PROC2_VMFUNC), S(0x2018, 1), S(F_EPTP_LIST, 0x5000) } },
        { "EPTP list unaligned", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, PROC2_VMFUNC | PROC2_EPT), S(F_EPT_POINTER, eptp), S(0x2018, 1), S(F_EPTP_LIST, 0x5008) } },
        { "VMREAD bitmap unaligned", B64, CTL, 0, { O(F_PROC, PROC_SECONDARY), S(F_PROC2, PROC2_SHADOW), S(F_VMREAD_BITMAP, 0x10), S(F_VMWRITE_BITMAP, 0x1000) } },
        /* 27.2.1.2 VM-exit controls */
        { "exit: PERF_GLOBAL_CTRL not offered", B64, CTL, 0, { O(F_EXIT_CTLS, 1 << 12) } },
        { "save preemption timer without the timer", B64, CTL, 0, { O(F_EXIT_CTLS, EXIT_SAVE_PREEMPT) } },
        { "MSR-store area unaligned", B64, CTL, 0, { S(F_EXIT_MSR_STORE_COUNT, 1), S(F_EXIT_MSR_STORE_ADDR, 0x1004) } },
        { "MSR-load (exit) area past MAXPHYADDR", B64, CTL, 0, { S(F_EXIT_MSR_LOAD_COUNT, 2), S(F_EXIT_MSR_LOAD_ADDR, 1ull << 60) } },
        /* 27.2.1.3 VM-entry controls */
        { "entry to SMM", B64, CTL, 0, { O(F_ENTRY_CTLS, 1 << 10) } },
        { "inject type 1", B64, CTL, 0, { S(F_ENTRY_INTR_INFO, 0x80000120) } },
        { "inject NMI vector 3", B64, CTL, 0, { S(F_ENTRY_INTR_INFO, 0x80000203) } },
        { "inject hardware exception 32", B64, CTL, 0, { S(F_ENTRY_INTR_INFO, 0x80000320) } },
        { "inject other event vector 1", B64, CTL, 0, { S(F_ENTRY_INTR_INFO, 0x80000701) } },
        { "inject #GP without error code", B64, CTL, 0, { S(F_ENTRY_INTR_INFO, 0x8000030d) } },
        { "inject #UD with error code", B64, CTL, 0, { S(F_ENTRY_INTR_INFO, 0x80000b06) } },
        { "inject an interrupt with error code", B64, CTL, 0, { S(F_ENTRY_INTR_INFO, 0x80000820), S(F_GUEST_RFLAGS, 0x202) } },
        { "inject #GP in real mode with error code", BREAL, CTL, 0, { S(F_ENTRY_INTR_INFO, gp) } },
        { "inject with bit 12 set", B64, CTL, 0, { S(F_ENTRY_INTR_INFO, xint | 0x1000), S(F_GUEST_RFLAGS, 0x202) } },
        { "inject error code bit 16", B64, CTL, 0, { S(F_ENTRY_INTR_INFO, gp), S(F_ENTRY_EXC_ERROR, 0x10000) } },
        { "inject INT n with length 16", B64, CTL, 0, { S(F_ENTRY_INTR_INFO, 0x80000480), S(F_ENTRY_INSN_LEN, 16) } },
        { "entry MSR-load area unaligned", B64, CTL, 0, { S(F_ENTRY_MSR_LOAD_COUNT, 1), S(F_ENTRY_MSR_LOAD_ADDR, 0x1008) } },
        /* 27.2.2 - 27.2.4 host state */
        { "host CR0.NE clear", B64, HOST, 0, { C(F_HOST_CR0, 1 << 5) } },
        { "host CR0 bit 32", B64, HOST, 0, { O(F_HOST_CR0, 1ull << 32) } },
        { "host CR4.VMXE clear", B64, HOST, 0, { C(F_HOST_CR4, 1 << 13) } },
        { "host CR3 beyond MAXPHYADDR", B64, HOST, 0, { O(F_HOST_CR3, 1ull << 60) } },
        { "host SYSENTER_EIP not canonical", B64, HOST, 0, { S(F_HOST_SYSENTER_EIP, 1ull << 60) } },
        { "host PAT type 2", B64, HOST, 0, { O(F_EXIT_CTLS, EXIT_LOAD_PAT), S(F_HOST_PAT, 0x0007040600070402ull) } },
        { "host EFER bit 1", B64, HOST, 0, { O(F_HOST_EFER, 2) } },
        { "host EFER.LMA clear", B64, HOST, 0, { C(F_HOST_EFER, 1 << 10) } },
        { "host EFER.LME clear", B64, HOST, 0, { C(F_HOST_EFER, 1 << 8) } },
        { "host DS selector RPL 3", B64, HOST, 0, { O(F_HOST_DS_SEL, 3) } },
        { "host TR selector TI", B64, HOST, 0, { O(F_HOST_TR_SEL, 4) } },
        { "host CS selector 0", B64, HOST, 0, { S(F_HOST_CS_SEL, 0) } },
        { "host TR selector 0", B64, HOST, 0, { S(F_HOST_TR_SEL, 0) } },
        { "host SS 0 with a 32-bit host", B64, HOST, 0, { C(F_EXIT_CTLS, EXIT_HOST_64 | EXIT_LOAD_EFER), S(F_HOST_SS_SEL, 0) } },
        { "host GS base not canonical", B64, HOST, 0, { S(F_HOST_GS_BASE, 1ull << 60) } },
        { "host IDTR base not canonical", B64, HOST, 0, { S(F_HOST_IDTR_BASE, 1ull << 60) } },
        { "32-bit host in IA-32e mode", B64, HOST, 0, { C(F_EXIT_CTLS, EXIT_HOST_64 | EXIT_LOAD_EFER) } },
        { "32-bit host and guest in IA-32e mode", BPAE, HOST, 0, { C(F_EXIT_CTLS, EXIT_HOST_64 | EXIT_LOAD_EFER) } },
        { "64-bit host without CR4.PAE", B64, HOST, 0, { C(F_HOST_CR4, 1 << 5) } },
        /* 27.3.1.1 guest control registers, debug registers, MSRs */
        { "guest CR0.NE clear", B64, GUEST, 0, { C(F_GUEST_CR0, 1 << 5) } },
        { "guest CR0 bit 32", B64, GUEST, 0, { O(F_GUEST_CR0, 1ull << 32) } },
        { "guest CR0.PE clear without unrestricted guest", B64, GUEST, 0, { C(F_GUEST_CR0, 1) } },
        { "guest CR0.PG without PE", BREAL, GUEST, 0, { O(F_GUEST_CR0, PG) } },
        { "guest CR4.VMXE clear", B64, GUEST, 0, { C(F_GUEST_CR4, 1 << 13) } },
        { "guest DEBUGCTL bit 2", B64, GUEST, 0, { O(F_ENTRY_CTLS, ENTRY_LOAD_DEBUG), S(F_GUEST_DEBUGCTL, 4) } },
        { "IA-32e guest without CR4.PAE", B64, GUEST, 0, { C(F_GUEST_CR4, 1 << 5) } },
        { "CR4.PCIDE in a 32-bit guest", BPAE, GUEST, 0, { O(F_GUEST_CR4, 1 << 17) } },
        { "guest CR3 beyond MAXPHYADDR", B64, GUEST, 0, { O(F_GUEST_CR3, 1ull << 60) } },
        { "guest DR7 bit 32", B64, GUEST, 0, { O(F_ENTRY_CTLS, ENTRY_LOAD_DEBUG), S(F_GUEST_DR7, 0x400 | 1ull << 32) } },
        { "guest SYSENTER_ESP not canonical", B64, GUEST, 0, { S(F_GUEST_SYSENTER_ESP, 1ull << 60) } },
        { "guest PAT type 3", B64, GUEST, 0, { O(F_ENTRY_CTLS, ENTRY_LOAD_PAT), S(F_GUEST_PAT, 0x0007040600070403ull) } },
        { "guest EFER bit 1", B64, GUEST, 0, { O(F_GUEST_EFER, 2) } },
        { "guest EFER.LMA clear in an IA-32e guest", B64, GUEST, 0, { C(F_GUEST_EFER, 1 << 10 | 1 << 8) } },
        { "guest EFER.LME clear with paging", B64, GUEST, 0, { C(F_GUEST_EFER, 1 << 8) } },
        /* 27.3.1.2 segment registers */
        { "TR selector TI", B64, GUEST, 0, { O(F_GUEST_TR_SEL, 4) } },
        { "usable LDTR selector TI", B64, GUEST, 0, { S(F_GUEST_LDTR_SEL, 4), S(F_GUEST_LDTR_AR, 0x82) } },
        { "usable LDTR with selector 0", B64, VALID, 0, { S(F_GUEST_LDTR_AR, 0x82) } },
        { "SS.RPL 3 != CS.RPL 0 (conforming CS)", B64, GUEST, 0, { S(F_EXC_BITMAP, ~0u), S(F_GUEST_CS_AR, 0xa09f), O(F_GUEST_SS_SEL, 3), S(F_GUEST_SS_AR, 0xc0f3) } },
        { "v86 DS base != selector << 4", BV86, GUEST, 0, { S(F_GUEST_DS_BASE, 0x1234) } },
        { "FS base not canonical", B64, GUEST, 0, { S(F_GUEST_FS_BASE, 1ull << 60) } },
        { "TR base not canonical", B64, GUEST, 0, { S(F_GUEST_TR_BASE, 1ull << 60) } },
        { "usable LDTR base not canonical", B64, GUEST, 0, { S(F_GUEST_LDTR_AR, 0x82), S(F_GUEST_LDTR_BASE, 1ull << 60) } },
        { "unusable LDTR base not canonical", B64, VALID, 0, { S(F_GUEST_LDTR_BASE, 1ull << 60) } },
        { "CS base bit 32", B64, GUEST, 0, { S(F_GUEST_CS_BASE, 1ull << 32) } },
        { "usable DS base bit 32", B64, GUEST, 0, { S(F_GUEST_DS_BASE, 1ull << 32) } },
        { "unusable ES base bit 32", B64, VALID, 0, { S(F_GUEST_ES_AR, 0x10000), S(F_GUEST_ES_BASE, 1ull << 32) } },
        { "v86 ES limit 0xfffff", BV86, GUEST, 0, { S(F_GUEST_ES_LIMIT, 0xfffff) } },
        { "v86 FS rights 0xf2", BV86, GUEST, 0, { S(F_GUEST_FS_AR, 0xf2) } },
        { "CS type 3 without unrestricted guest", B64, GUEST, 0, { S(F_GUEST_CS_AR, 0xa093) } },
        { "CS not accessed", B64, GUEST, 0, { S(F_GUEST_CS_AR, 0xa09a) } },
        { "real-mode CS type 3", BREAL, VALID, 0, { S(F_GUEST_CS_AR, 0x93) } },
        { "SS a code segment", B64, GUEST, 0, { S(F_GUEST_SS_AR, 0xc09b) } },
        { "unusable SS in 64-bit mode", B64, VALID, 0, { S(F_GUEST_SS_AR, 0x10000) } },
        { "DS not accessed", B64, GUEST, 0, { S(F_GUEST_DS_AR, 0xc092) } },
        { "GS execute-only code", B64, GUEST, 0, { S(F_GUEST_GS_AR, 0xc099), S(F_GUEST_GS_LIMIT, 0xffffffff) } },
        { "DS a system segment (S=0)", B64, GUEST, 0, { S(F_GUEST_DS_AR, 0xc083) } },
        { "CS DPL 1 != SS DPL", B64, GUEST, 0, { S(F_GUEST_CS_AR, 0xa0bb) } },
        { "conforming CS DPL 2 > SS DPL", B64, GUEST, 0, { S(F_GUEST_CS_AR, 0xa0df) } },
        { "conforming CS DPL 0", B64, VALID, 0, { S(F_GUEST_CS_AR, 0xa09f) } },
        { "unusable CS (no rule forbids it; 64-bit mode ignores it)", B64, VALID, 0, { S(F_GUEST_CS_AR, 0x1a09b) } },
        { "real-mode CS type 3 DPL 3", BREAL, GUEST, 0, { S(F_GUEST_CS_AR, 0xf3) } },
        { "real-mode SS DPL 3", BREAL, GUEST, 0, { S(F_GUEST_CS_AR, 0x93), S(F_GUEST_SS_AR, 0xf3) } },
        { "SS.DPL 1 != SS.RPL 0 (conforming CS)", B64, GUEST, 0, { S(F_EXC_BITMAP, ~0u), S(F_GUEST_CS_AR, 0xa09f), S(F_GUEST_SS_AR, 0xc0b3) } },
        { "DS DPL 0 < RPL 3", B64, GUEST, 0, { O(F_GUEST_DS_SEL, 3) } },
        { "DS not present", B64, GUEST, 0, { S(F_GUEST_DS_AR, 0xc013) } },
        { "usable DS bit 8", B64, GUEST, 0, { O(F_GUEST_DS_AR, 0x100) } },
        { "CS bit 17", B64, GUEST, 0, { O(F_GUEST_CS_AR, 1 << 17) } },
        { "unusable FS with bit 8", B64, VALID, 0, { S(F_GUEST_FS_AR, 0x10100) } },
        { "64-bit CS with D/B", B64, GUEST, 0, { O(F_GUEST_CS_AR, 1 << 14) } },
        { "DS limit 0xfff00000 with G", B64, GUEST, 0, { S(F_GUEST_DS_LIMIT, 0xfff00000) } },
        { "SS limit 0xffffffff without G", B64, GUEST, 0, { S(F_GUEST_SS_AR, 0x4093) } },
        { "TR a 16-bit TSS in an IA-32e guest", B64, GUEST, 0, { S(F_GUEST_TR_AR, 0x83) } },
        { "TR an available TSS", B64, GUEST, 0, { S(F_GUEST_TR_AR, 0x89) } },
        { "TR unusable", B64, GUEST, 0, { S(F_GUEST_TR_AR, 0x1008b) } },
        { "TR a 16-bit busy TSS in a 32-bit guest", BPAE, VALID, 0, { S(F_GUEST_TR_AR, 0x83) } },
        { "usable LDTR of type 3", B64, GUEST, 0, { S(F_GUEST_LDTR_AR, 0x83) } },
        { "usable LDTR not present", B64, GUEST, 0, { S(F_GUEST_LDTR_AR, 0x02) } },
        /* 27.3.1.3 GDTR, IDTR */
        { "GDTR base not canonical", B64, GUEST, 0, { S(F_GUEST_GDTR_BASE, 1ull << 60) } },
        { "IDTR limit 0x10000", B64, GUEST, 0, { S(F_GUEST_IDTR_LIMIT, 0x10000) } },
        /* 27.3.1.4 RIP and RFLAGS */
        { "RIP not canonical", B64, GUEST, 0, { S(F_GUEST_RIP, 1ull << 60) } },
        { "RIP bit 32 in a 32-bit guest", BPAE, GUEST, 0, { S(F_GUEST_RIP, 1ull << 32) } },
        { "RFLAGS bit 1 clear", B64, GUEST, 0, { S(F_GUEST_RFLAGS, 0) } },
        { "RFLAGS bit 15", B64, GUEST, 0, { S(F_GUEST_RFLAGS, 0x8002) } },
        { "RFLAGS.VM in real mode", BREAL, GUEST, 0, { S(F_GUEST_RFLAGS, 0x20002), S(F_GUEST_CS_AR, 0xf3), S(F_GUEST_SS_AR, 0xf3), S(F_GUEST_DS_AR, 0xf3), S(F_GUEST_ES_AR, 0xf3), S(F_GUEST_FS_AR, 0xf3), S(F_GUEST_GS_AR, 0xf3) } },
        { "inject an interrupt with IF=0", B64, GUEST, 0, { S(F_ENTRY_INTR_INFO, xint) } },
        /* 27.3.1.5 non-register state */
        { "activity state 4", B64, GUEST, 0, { S(F_GUEST_ACTIVITY, 4) } },
        { "HLT with SS.DPL 3", BV86, GUEST, 0, { S(F_GUEST_ACTIVITY, 1) } },
        { "HLT in a MOV SS shadow", B64, GUEST, 0, { S(F_GUEST_ACTIVITY, 1), S(F_GUEST_INTERRUPTIBILITY, 2) } },
        { "HLT with #GP injected", B64, GUEST, 0, { S(F_GUEST_ACTIVITY, 1), S(F_ENTRY_INTR_INFO, gp) } },
        { "shutdown with an interrupt injected", B64, GUEST, 0, { S(F_GUEST_ACTIVITY, 2), S(F_ENTRY_INTR_INFO, xint), S(F_GUEST_RFLAGS, 0x202) } },
        { "wait-for-SIPI with an NMI injected", B64, GUEST, 0, { S(F_GUEST_ACTIVITY, 3), S(F_ENTRY_INTR_INFO, nmi) } },
        { "interruptibility bit 4 (no SGX)", B64, GUEST, 0, { S(F_GUEST_INTERRUPTIBILITY, 0x10) } },
        { "interruptibility bit 5", B64, GUEST, 0, { S(F_GUEST_INTERRUPTIBILITY, 0x20) } },
        { "STI and MOV SS blocking", B64, GUEST, 0, { S(F_GUEST_INTERRUPTIBILITY, 3), S(F_GUEST_RFLAGS, 0x202) } },
        { "STI blocking with IF=0", B64, GUEST, 0, { S(F_GUEST_INTERRUPTIBILITY, 1) } },
        { "interrupt injected in a MOV SS shadow", B64, GUEST, 0, { S(F_GUEST_INTERRUPTIBILITY, 2), S(F_GUEST_RFLAGS, 0x202), S(F_ENTRY_INTR_INFO, xint) } },
        { "NMI injected in a MOV SS shadow", B64, GUEST, 0, { S(F_GUEST_INTERRUPTIBILITY, 2), S(F_ENTRY_INTR_INFO, nmi) } },
        { "SMI blocking outside SMM", B64, GUEST, 0, { S(F_GUEST_INTERRUPTIBILITY, 4) } },
        { "NMI injected in an STI shadow", B64, GUEST, 3, { S(F_GUEST_INTERRUPTIBILITY, 1), S(F_GUEST_RFLAGS, 0x202), S(F_ENTRY_INTR_INFO, nmi) } },
        { "virtual NMI injected with virtual-NMI blocking", B64, GUEST, 0, { O(F_PIN, PIN_NMI | PIN_VNMI), S(F_GUEST_INTERRUPTIBILITY, 8), S(F_ENTRY_INTR_INFO, nmi) } },
        { "pending debug exceptions bit 4", B64, GUEST, 0, { S(F_GUEST_PENDING_DBG, 0x10) } },
        { "pending debug exceptions bit 13", B64, GUEST, 0, { S(F_GUEST_PENDING_DBG, 1 << 13) } },
        { "pending debug exceptions RTM (no RTM)", B64, GUEST, 0, { S(F_GUEST_PENDING_DBG, 1 << 16) } },
        { "STI shadow, TF=1, BS clear", B64, GUEST, 0, { S(F_GUEST_INTERRUPTIBILITY, 1), S(F_GUEST_RFLAGS, 0x302) } },
        { "STI shadow, TF=0, BS set", B64, GUEST, 0, { S(F_GUEST_INTERRUPTIBILITY, 1), S(F_GUEST_RFLAGS, 0x202), S(F_GUEST_PENDING_DBG, 1 << 14) } },
        { "HLT, TF=1 with BTF, BS set", B64, GUEST, 0, { S(F_GUEST_ACTIVITY, 1), S(F_GUEST_RFLAGS, 0x102), S(F_GUEST_DEBUGCTL, 2), S(F_GUEST_PENDING_DBG, 1 << 14) } },
        { "link pointer unaligned", B64, GUEST, 4, { S(F_LINK_POINTER, link | 0x800) } },
        { "link pointer beyond MAXPHYADDR", B64, GUEST, 4, { S(F_LINK_POINTER, 1ull << 60) } },
        { "link pointer to a wrong revision", B64, GUEST, 4, { S(F_LINK_POINTER, link) } },
        { "link pointer to the current VMCS", B64, GUEST, 4, { S(F_LINK_POINTER, cur) } },
        { "link pointer to an ordinary VMCS", B64, VALID, 0, { S(F_LINK_POINTER, spare) } },
        /* 27.3.1.6 PDPTEs */
        { "PDPTE field 2 with bit 1 (EPT)", BPAE_EPT, GUEST, 2, { S(0x280e, 3) } },
        { "PDPTE field 3 not present with bit 1 (EPT)", BPAE_EPT, VALID, 0, { S(0x2810, 2) } },
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
        run_case(&cases[k]);

    /* PDPTEs in memory without EPT */
    struct kase mem = { "PDPTE 1 in memory with bit 2", BPAE, GUEST, 2, { { 0 } } };
    setup(BPAE);
    pdpt[1] = 0x5000 | 1 | 4;
    long r = vmx_run();
    TEST_EQ(r, GUEST, mem.what);
    TEST_EQ(vmread(F_EXIT_QUAL), 2, "exit qualification 2");
    check_host_state(mem.what);
    restore_l1();
    setup(BPAE);
    pdpt[3] = 0x5000 | 1 | (1ull << 62);
    TEST_EQ(vmx_run(), GUEST, "PDPTE 3 in memory beyond MAXPHYADDR");
    restore_l1();
    setup(BPAE);
    pdpt[2] = 0x5000 | 1;
    TEST_EQ(vmx_run(), R_PREEMPT, "a present PDPTE in memory without reserved bits");
    restore_l1();

    msr_load_failure();
    vmlaunch_after_mov_ss();
    TEST_EQ(vmxoff(), 0, "VMXOFF");
}

/* The Hyper-V enlightened VMCS (hv-evmcs), as Linux KVM on Hyper-V uses it: L1 sets its
 * guest OS id and VP assist page, VMXONs, and keeps its L2's VMCS in a 4 KiB structure of
 * its own memory (version 1, struct hv_enlightened_vmcs) that the assist page names
 * (enlighten_vmentry, current_nested_vmcs) instead of VMPTRLD and VMREAD/VMWRITE. Checks:
 * CPUID 40000004h EAX bit 14 and 4000000Ah EAX 0x0101; the VMX capability MSRs without the
 * controls version 1 cannot express; exit information (reason, qualification, length,
 * guest RIP) in the structure's memory, guest_rip always read; hv_clean_fields 0xffff after
 * an entry, a field of a clean group not seen by VMRESUME and seen once its bit is cleared,
 * VMLAUNCH taking everything; VMfailValid 7 written into the structure for an invalid or an
 * unsupported control; a wrong revision VMfailInvalid, a structure that is not RAM #UD;
 * VMCLEAR of it leaves its bytes and releases it; VMWRITE VMfailInvalid, VMREAD never a
 * stale VMCS; enlighten_vmentry cleared: VMfailInvalid; two structures alternated, each
 * L2 with its own state. Without hv-evmcs: no CPUID bits, the capability MSRs offer those
 * controls, and VMLAUNCH with only the assist page fails VMfailInvalid.
 * QEMU TCG has no Hyper-V interface: the test skips there.
 * guest: cpu=max,hv-passthrough name=hv_evmcs */
/* guest: cpu=max,hv-vapic,hv-evmcs name=hv_evmcs-explicit */
/* guest: cpu=max,hv-vapic name=hv_evmcs-off */
#include "vmx.h"
#include "hyperv.h"

#define HV_X64_MSR_VP_ASSIST_PAGE 0x40000073

/* struct hv_enlightened_vmcs (version 1) offsets */
enum {
    E_REVISION = 0x000,
    E_HOST_SEL = 0x008, /* es cs ss ds fs gs tr, u16 each */
    E_HOST_PAT = 0x018, E_HOST_EFER = 0x020, E_HOST_CR0 = 0x028, E_HOST_CR3 = 0x030,
    E_HOST_CR4 = 0x038, E_HOST_SYSENTER_ESP = 0x040, E_HOST_SYSENTER_EIP = 0x048,
    E_HOST_RIP = 0x050, E_HOST_SYSENTER_CS = 0x058,
    E_PIN = 0x05c, E_EXIT_CTLS = 0x060, E_PROC2 = 0x064,
    E_GUEST_SEL = 0x080,   /* es cs ss ds fs gs ldtr tr, u16 */
    E_GUEST_LIMIT = 0x090, /* es cs ss ds fs gs ldtr tr gdtr idtr, u32 */
    E_GUEST_AR = 0x0b8,    /* es cs ss ds fs gs ldtr tr, u32 */
    E_GUEST_BASE = 0x0d8,  /* es cs ss ds fs gs ldtr tr gdtr idtr, u64 */
    E_LINK_POINTER = 0x1a0, E_GUEST_EFER = 0x1b8, E_GUEST_PENDING_DBG = 0x1e0,
    E_GUEST_ACTIVITY = 0x1f8,
    E_CR0_MASK = 0x200, E_CR4_MASK = 0x208, E_CR0_SHADOW = 0x210, E_CR4_SHADOW = 0x218,
    E_GUEST_CR0 = 0x220, E_GUEST_CR3 = 0x228, E_GUEST_CR4 = 0x230, E_GUEST_DR7 = 0x238,
    E_HOST_FS_BASE = 0x240, E_HOST_GS_BASE = 0x248, E_HOST_TR_BASE = 0x250,
    E_HOST_GDTR_BASE = 0x258, E_HOST_IDTR_BASE = 0x260, E_HOST_RSP = 0x268,
    E_INSN_ERROR = 0x2b0, E_EXIT_REASON = 0x2b4, E_EXIT_INTR_INFO = 0x2b8,
    E_EXIT_INSN_LEN = 0x2c8, E_EXIT_QUAL = 0x2d0,
    E_GUEST_RSP = 0x300, E_GUEST_RFLAGS = 0x308, E_GUEST_INTERRUPTIBILITY = 0x310,
    E_PROC = 0x314, E_EXC_BITMAP = 0x318, E_ENTRY_CTLS = 0x31c, E_ENTRY_INTR_INFO = 0x320,
    E_GUEST_RIP = 0x330, E_CLEAN = 0x338,
};
/* hv_clean_fields groups */
#define CLEAN_CONTROL_GRP1 BIT(3)
#define CLEAN_CONTROL_EXCPN BIT(7)
#define CLEAN_HOST_POINTER BIT(13)
#define CLEAN_ALL 0xffffu
/* the VP assist page */
#define A_ENLIGHTEN_VMENTRY 0x28
#define A_CURRENT_NESTED_VMCS 0x30

static u8 assist[4096] __attribute__((aligned(4096)));
static u8 evmcs_pg[2][4096] __attribute__((aligned(4096)));
static u8 snapshot[4096];
static u8 l2_stacks[2][8192] __attribute__((aligned(16)));

#define EV(T, e, off) (*(volatile T *)((e) + (off)))
#define ev16(e, off) EV(u16, e, off)
#define ev32(e, off) EV(u32, e, off)
#define ev64(e, off) EV(u64, e, off)

static bool mentions(const char *s, const char *word)
{
    for (size_t n = strlen(word); *s; s++)
        if (strncmp(s, word, n) == 0)
            return true;
    return false;
}

/* ---- L2 ---- */
/* The probe: UD2 under ASM_TRY, then VMCALL 0x2000|vector (0x2006: L2 took the #UD
 * itself; 0x1fff: nothing, as after an intercepted UD2 that L1 skipped). */
static void l2_probe(void)
{
    for (;;) {
        asm volatile(ASM_TRY("1f") "ud2\n1:" ::: "memory");
        int vec = exc_vector();
        asm volatile("vmcall" ::"a"(0x2000 + vec) : "memory");
    }
}

extern char l2_cpuid_insn[], l2_out_insn[], l2_vmcall_insn[];
static void l2_main(void)
{
    asm volatile(".globl l2_cpuid_insn\nl2_cpuid_insn: cpuid" ::"a"(0), "c"(0) : "rbx", "rdx");
    asm volatile(".globl l2_out_insn\nl2_out_insn: outb %%al, $0x80" ::"a"(0));
    asm volatile(".globl l2_vmcall_insn\nl2_vmcall_insn: vmcall" ::"a"(0x1234) : "memory");
    l2_probe();
}

/* ---- L1 ---- */
/* Enters L2 through the current enlightened VMCS e: HOST_RSP kept in e as KVM does (and
 * its group marked dirty when it changes); host RIP is vmx.h's exit point. */
int ev_enter_asm(int launch, u8 *e);
asm(".text\n"
    ".globl ev_enter_asm\n"
    "ev_enter_asm:\n"
    "  push %rbp; push %rbx; push %r12; push %r13; push %r14; push %r15\n"
    "  push %rdi\n"
    "  cmp %rsp, 0x268(%rsi); je 4f\n"
    "  mov %rsp, 0x268(%rsi); andl $~0x2000, 0x338(%rsi)\n"
    "4:\n"
    VMX_ENTER_L2_ASM
    "  mov $1, %ecx; mov $2, %edx; test $1, %al; cmovnz %ecx, %eax; jnz 3f\n"
    "  test $0x40, %al; cmovnz %edx, %eax; jnz 3f\n"
    "  mov $3, %eax\n" /* neither flag: not a VMX outcome */
    "3: pop %rdi\n"
    "  pop %r15; pop %r14; pop %r13; pop %r12; pop %rbx; pop %rbp\n"
    "  ret\n");

/* An L2 and its enlightened VMCS */
struct l2 {
    u8 *e;
    u64 gregs[16];
};
static struct l2 l2s[2];

static u64 pa_of(const void *p) { return (u64)(ulong)p; }

static void assist_use(const void *e, u8 enlighten)
{
    *(volatile u64 *)(assist + A_CURRENT_NESTED_VMCS) = pa_of(e);
    *(volatile u8 *)(assist + A_ENLIGHTEN_VMENTRY) = enlighten;
}

/* Runs L2 to its next exit through its structure (made current): the basic exit reason
 * read from the structure's memory (bit 31 kept), or -1/-2 for VMfailInvalid/Valid. */
static long ev_run(struct l2 *l, bool launch)
{
    assist_use(l->e, 1);
    memcpy(vmx_gregs, l->gregs, sizeof(vmx_gregs));
    int r = ev_enter_asm(launch, l->e);
    memcpy(l->gregs, vmx_gregs, sizeof(vmx_gregs));
    if (r)
        return -r;
    return ev32(l->e, E_EXIT_REASON) & 0x8000ffffu;
}

/* L1 moves L2 past the exiting instruction, in memory only (guest_rip has no clean bit) */
static void ev_skip(u8 *e)
{
    ev64(e, E_GUEST_RIP) += ev32(e, E_EXIT_INSN_LEN);
}

/* A structure for an L2 running fn at CPL 0 on L1's page tables, GDT and IDT (the state
 * of vmx.h's vmx_vmcs_setup), every group dirty. */
static void ev_setup(struct l2 *l, u8 *e, void (*fn)(void), u8 *stack_top)
{
    memset(e, 0, 4096);
    memset(l, 0, sizeof(*l));
    l->e = e;
    ev32(e, E_REVISION) = 1;
    struct { u16 limit; u64 base; } __attribute__((packed)) gdtr, idtr;
    asm volatile("sgdt %0; sidt %1" : "=m"(gdtr), "=m"(idtr));
    u16 cs = read_cs(), ss = read_ss(), ds = read_ds(), tr = read_tr();
    u64 trdesc = gdt[tr >> 3], trhi = gdt[(tr >> 3) + 1];
    u64 trbase = ((trdesc >> 16) & 0xffffff) | ((trdesc >> 32) & 0xff000000ull) | (trhi << 32);
    u64 efer = rdmsr(0xc0000080);
    extern char vmx_exit_point[];
    ev32(e, E_PIN) = vmx_ctl(MSR_VMX_TRUE_PIN, 0);
    ev32(e, E_PROC) = vmx_ctl(MSR_VMX_TRUE_PROC, PROC_UNCOND_IO);
    ev32(e, E_EXIT_CTLS) = vmx_ctl(MSR_VMX_TRUE_EXIT, EXIT_HOST_64 | EXIT_SAVE_EFER | EXIT_LOAD_EFER);
    ev32(e, E_ENTRY_CTLS) = vmx_ctl(MSR_VMX_TRUE_ENTRY, ENTRY_IA32E | ENTRY_LOAD_EFER);
    ev32(e, E_EXC_BITMAP) = 0;
    ev64(e, E_LINK_POINTER) = ~0ull;
    /* host */
    ev64(e, E_HOST_CR0) = read_cr(0);
    ev64(e, E_HOST_CR3) = read_cr(3);
    ev64(e, E_HOST_CR4) = read_cr(4);
    u16 hsel[7] = { ds, cs, ss, ds, 0, 0, tr };
    for (int k = 0; k < 7; k++)
        ev16(e, E_HOST_SEL + 2 * k) = hsel[k];
    ev64(e, E_HOST_TR_BASE) = trbase;
    ev64(e, E_HOST_GDTR_BASE) = gdtr.base;
    ev64(e, E_HOST_IDTR_BASE) = idtr.base;
    ev64(e, E_HOST_EFER) = efer;
    ev64(e, E_HOST_RIP) = pa_of(vmx_exit_point);
    /* L2: es cs ss ds fs gs ldtr tr */
    static const u32 ar[8] = { 0xc093, 0xa09b, 0xc093, 0xc093, 0x10000, 0x10000, 0x10000, 0x8b };
    static const u32 limit[8] = { 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0, 0, 0, 0x67 };
    u16 gsel[8] = { ds, cs, ss, ds, 0, 0, 0, tr };
    for (int k = 0; k < 8; k++) {
        ev16(e, E_GUEST_SEL + 2 * k) = gsel[k];
        ev32(e, E_GUEST_LIMIT + 4 * k) = limit[k];
        ev32(e, E_GUEST_AR + 4 * k) = ar[k];
    }
    ev64(e, E_GUEST_BASE + 8 * 7) = trbase;
    ev32(e, E_GUEST_LIMIT + 4 * 8) = gdtr.limit;
    ev64(e, E_GUEST_BASE + 8 * 8) = gdtr.base;
    ev32(e, E_GUEST_LIMIT + 4 * 9) = idtr.limit;
    ev64(e, E_GUEST_BASE + 8 * 9) = idtr.base;
    ev64(e, E_GUEST_CR0) = read_cr(0);
    ev64(e, E_GUEST_CR3) = read_cr(3);
    ev64(e, E_GUEST_CR4) = read_cr(4);
    ev64(e, E_GUEST_EFER) = efer;
    ev64(e, E_GUEST_DR7) = 0x400;
    ev64(e, E_GUEST_RFLAGS) = 2;
    ev64(e, E_GUEST_RSP) = pa_of(stack_top - 8);
    ev64(e, E_GUEST_RIP) = pa_of(fn);
    ev32(e, E_CLEAN) = 0;
}

/* The #UD probe: true if L2's UD2 exits (the exception bitmap has #UD), false if L2 took
 * the #UD itself; L2 is at the probe again afterwards. */
static int ev_probe(struct l2 *l, bool launch, const char *what)
{
    long r = ev_run(l, launch);
    if (r == R_EXC_NMI) {
        TEST_EQ(ev32(l->e, E_EXIT_INTR_INFO), vmx_hw_exc_info(UD_VECTOR, false),
                "the #UD exit's interruption information, in the structure");
        /* no instruction length for a hardware exception's exit: UD2 is 2 bytes */
        ev64(l->e, E_GUEST_RIP) += 2;
        r = ev_run(l, false);
        TEST_EQ(r, R_VMCALL, "L2 goes on after the skipped UD2");
        TEST_EQ(l->gregs[0], 0x2000 + NO_EXCEPTION, "L2 took no #UD");
        ev_skip(l->e);
        return 1;
    }
    if (r == R_VMCALL && l->gregs[0] == 0x2000 + UD_VECTOR) {
        ev_skip(l->e);
        return 0;
    }
    report(false, __FILE__, __LINE__, "%s: the probe ended with %ld (rax %#lx)", what, r,
           (ulong)l->gregs[0]);
    return -1;
}

/* The capability MSRs: the controls version 1 cannot express are allowed (offered) or not */
static void caps(bool offered)
{
    /* bits: the controls; base: those nestor's -cpu max offers (no PML, no loading of
     * PERF_GLOBAL_CTRL), which a run without hv-evmcs must find */
    static const struct { u32 msr; u32 bits, base; const char *what; } t[] = {
        { MSR_VMX_PINBASED, BIT(6) | BIT(7), BIT(6) | BIT(7),
          "PINBASED: preemption timer, posted interrupts" },
        { MSR_VMX_TRUE_PIN, BIT(6) | BIT(7), BIT(6) | BIT(7),
          "TRUE_PINBASED: preemption timer, posted interrupts" },
        { MSR_VMX_PROCBASED2,
          BIT(0) | BIT(8) | BIT(9) | BIT(10) | BIT(13) | BIT(14) | BIT(17) | BIT(25),
          BIT(0) | BIT(8) | BIT(9) | BIT(10) | BIT(13) | BIT(14) | BIT(25),
          "PROCBASED2: APIC access, APIC-register virt., virt. interrupt delivery, PLE, VMFUNC, "
          "shadow VMCS, PML, TSC scaling" },
        { MSR_VMX_EXIT, BIT(12) | BIT(22), BIT(22), "EXIT: load PERF_GLOBAL_CTRL, save preemption timer" },
        { MSR_VMX_TRUE_EXIT, BIT(12) | BIT(22), BIT(22),
          "TRUE_EXIT: load PERF_GLOBAL_CTRL, save preemption timer" },
        { MSR_VMX_ENTRY, BIT(13), 0, "ENTRY: load PERF_GLOBAL_CTRL" },
        { MSR_VMX_TRUE_ENTRY, BIT(13), 0, "TRUE_ENTRY: load PERF_GLOBAL_CTRL" },
    };
    for (unsigned k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
        u32 allowed1 = (u32)(rdmsr(t[k].msr) >> 32) & t[k].bits;
        if (offered)
            TEST_EQ(allowed1 & t[k].base, t[k].base, t[k].what);
        else
            TEST_EQ(allowed1, 0, t[k].what);
    }
    u64 vmfunc = 0;
    int gp = rdmsr_safe(MSR_VMX_VMFUNC, &vmfunc);
    if (offered) {
        TEST_EQ(gp, NO_EXCEPTION, "VMFUNC MSR readable");
        TEST_EQ(vmfunc & 1, 1, "VMFUNC: EPTP switching offered");
    } else {
        TEST_ASSERT(gp != NO_EXCEPTION || !(vmfunc & 1), "VMFUNC: no EPTP switching (%d, %#lx)", gp, (ulong)vmfunc);
    }
    /* what version 1 has fields for stays */
    TEST_ASSERT((rdmsr(MSR_VMX_PROCBASED2) >> 32) & PROC2_EPT, "EPT still offered");
    TEST_ASSERT((rdmsr(MSR_VMX_TRUE_EXIT) >> 32) & EXIT_LOAD_EFER, "exit load EFER still offered");
}

static void enable_assist(void)
{
    wrmsr(HV_X64_MSR_GUEST_OS_ID, 0x8100ull << 48); /* Linux */
    memset(assist, 0, sizeof(assist));
    wrmsr(HV_X64_MSR_VP_ASSIST_PAGE, pa_of(assist) | 1);
    TEST_EQ(rdmsr(HV_X64_MSR_VP_ASSIST_PAGE), pa_of(assist) | 1, "VP assist page enabled");
}

/* Without hv-evmcs: nothing offered, the assist page names no VMCS to VMLAUNCH */
static void without_evmcs(void)
{
    TEST_EQ(cpuid(0x40000004).a & BIT(14), 0, "CPUID 40000004h: no enlightened VMCS recommended");
    TEST_ASSERT(cpuid(0x40000000).a < 0x4000000a, "CPUID 40000000h: highest leaf %#x below 4000000Ah",
                cpuid(0x40000000).a);
    caps(true);
    enable_assist();
    TEST_ASSERT(vmx_on(), "VMXON");
    ev_setup(&l2s[0], evmcs_pg[0], l2_main, l2_stacks[0] + sizeof(l2_stacks[0]));
    long r = ev_run(&l2s[0], true);
    TEST_EQ(r, -1, "VMLAUNCH without VMPTRLD, the assist page naming a structure: VMfailInvalid");
    TEST_EQ(ev32(evmcs_pg[0], E_CLEAN), 0, "the structure was not taken (hv_clean_fields unchanged)");
    TEST_EQ(vmxoff(), 0, "VMXOFF");
}

static void with_evmcs(void)
{
    struct cpuid_regs h = cpuid(0x40000000);
    TEST_ASSERT(h.a >= 0x4000000a, "CPUID 40000000h: highest leaf %#x reaches 4000000Ah", h.a);
    TEST_EQ(cpuid(0x40000004).a & BIT(14), BIT(14), "CPUID 40000004h EAX bit 14: enlightened VMCS recommended");
    TEST_EQ(cpuid(0x4000000a).a, 0x0101, "CPUID 4000000Ah EAX: eVMCS versions 1 to 1");
    caps(false);
    enable_assist();
    TEST_ASSERT(vmx_on(), "VMXON");

    /* an ordinary VMCS first, so that a stale one would show */
    vmx_region_init(vmx_regions[1], vmx_revision());
    TEST_EQ(vmptrld(&vmx_region_pa[1]), 0, "VMPTRLD of an ordinary VMCS");
    vmwrite(F_GUEST_RIP, 0x5555);

    u8 *a = evmcs_pg[0], *b = evmcs_pg[1];
    struct l2 *la = &l2s[0], *lb = &l2s[1];
    ev_setup(la, a, l2_main, l2_stacks[0] + sizeof(l2_stacks[0]));

    /* VMLAUNCH through the assist page; CPUID exits, its information in memory */
    long r = ev_run(la, true);
    TEST_EQ(r, R_CPUID, "VMLAUNCH with the enlightened VMCS: L2's CPUID exits (reason at 0x2B4)");
    TEST_EQ(ev64(a, E_GUEST_RIP), pa_of(l2_cpuid_insn), "guest_rip (0x330) at the CPUID");
    TEST_EQ(ev32(a, E_EXIT_INSN_LEN), 2, "instruction length (0x2C8) 2");
    TEST_EQ(ev32(a, E_CLEAN), CLEAN_ALL, "hv_clean_fields 0xffff after the entry");
    TEST_ASSERT(ev64(a, E_GUEST_RSP) > pa_of(l2_stacks[0]) &&
                ev64(a, E_GUEST_RSP) <= pa_of(l2_stacks[0] + sizeof(l2_stacks[0])),
                "guest_rsp (0x300) on L2's stack");
    u64 x = 0;
    int rr = vmread_safe(F_GUEST_RIP, &x);
    TEST_ASSERT(rr == 1 || (rr == 0 && x == ev64(a, E_GUEST_RIP)),
                "VMREAD with the enlightened VMCS in use: VMfailInvalid, or the structure's value "
                "(outcome %d, %#lx), never the old VMCS's", rr, (ulong)x);
    TEST_EQ(vmwrite_safe(F_GUEST_RIP, 0x6666), 1, "VMWRITE with the enlightened VMCS in use: VMfailInvalid");
    TEST_EQ(ev64(a, E_GUEST_RIP), pa_of(l2_cpuid_insn), "guest_rip unchanged by the VMWRITE");
    ev_skip(a);
    r = ev_run(la, false);
    TEST_EQ(r, R_IO, "VMRESUME: L2 continues at the new guest_rip, its OUT exits");
    TEST_EQ(ev64(a, E_GUEST_RIP), pa_of(l2_out_insn), "guest_rip at the OUT");
    TEST_EQ(ev64(a, E_EXIT_QUAL), 0x800040, "exit qualification (0x2D0): port 80h, byte, OUT, immediate");
    TEST_EQ(ev32(a, E_EXIT_INSN_LEN), 2, "OUT's length");
    ev_skip(a);
    r = ev_run(la, false);
    TEST_EQ(r, R_VMCALL, "VMCALL exits");
    TEST_EQ(la->gregs[0], 0x1234, "L2's RAX at the VMCALL");
    TEST_EQ(ev64(a, E_GUEST_RIP), pa_of(l2_vmcall_insn), "guest_rip at the VMCALL");
    TEST_EQ(ev32(a, E_EXIT_INSN_LEN), 3, "VMCALL's length");
    TEST_EQ(ev64(a, E_EXIT_QUAL), 0, "VMCALL's qualification 0");
    ev_skip(a);

    /* clean fields */
    TEST_EQ(ev_probe(la, false, "baseline"), 0, "no #UD intercept: L2 takes its UD2");
    TEST_EQ(ev32(a, E_CLEAN), CLEAN_ALL, "hv_clean_fields 0xffff");
    ev32(a, E_EXC_BITMAP) = BIT(UD_VECTOR);
    TEST_EQ(ev_probe(la, false, "clean"), 0, "exception bitmap changed, CONTROL_EXCPN clean: not seen by VMRESUME");
    TEST_EQ(ev32(a, E_EXC_BITMAP), BIT(UD_VECTOR), "the exception bitmap is not written back");
    ev32(a, E_CLEAN) &= ~CLEAN_CONTROL_EXCPN;
    TEST_EQ(ev_probe(la, false, "dirty"), 1, "CONTROL_EXCPN marked dirty: VMRESUME takes the bitmap, UD2 exits");
    TEST_EQ(ev32(a, E_CLEAN), CLEAN_ALL, "hv_clean_fields 0xffff again");
    TEST_EQ(ev_probe(la, false, "kept"), 1, "the bitmap stays in force while clean");
    ev32(a, E_EXC_BITMAP) = 0;
    TEST_EQ(ev_probe(la, false, "kept2"), 1, "a clean bitmap of 0 is not seen either");
    TEST_EQ(ev32(a, E_CLEAN), CLEAN_ALL, "all clean before the VMLAUNCH");
    TEST_EQ(ev_probe(la, true, "launch"), 0, "VMLAUNCH takes every field, clean bits set or not");
    ev32(a, E_EXC_BITMAP) = BIT(UD_VECTOR);
    TEST_EQ(ev_probe(la, true, "launch2"), 1, "VMLAUNCH again (no launch state): the bitmap with #UD");

    /* VMfailValid for controls, the error number in the structure */
    u32 pin = ev32(a, E_PIN);
    u64 truepin = rdmsr(MSR_VMX_TRUE_PIN);
    TEST_EQ((truepin >> 63) & 1, 0, "pin-based bit 31 is reserved");
    ev32(a, E_PIN) = pin | BIT(31);
    ev32(a, E_CLEAN) &= ~CLEAN_CONTROL_GRP1;
    ev32(a, E_INSN_ERROR) = 0;
    r = ev_run(la, false);
    TEST_EQ(r, -2, "a reserved pin-based control: VMfailValid (ZF)");
    TEST_EQ(ev32(a, E_INSN_ERROR), 7, "VM-instruction error 7 in the structure (0x2B0)");
    ev32(a, E_PIN) = pin | PIN_EXTINT | BIT(7);
    ev32(a, E_EXIT_CTLS) |= EXIT_ACK_INTR;
    ev32(a, E_CLEAN) &= ~CLEAN_CONTROL_GRP1;
    ev32(a, E_INSN_ERROR) = 0;
    r = ev_run(la, false);
    TEST_EQ(r, -2, "posted interrupts (no field in version 1): VMfailValid");
    TEST_EQ(ev32(a, E_INSN_ERROR), 7, "VM-instruction error 7 in the structure");
    ev32(a, E_PIN) = pin;
    ev32(a, E_EXIT_CTLS) &= ~EXIT_ACK_INTR;
    ev32(a, E_CLEAN) &= ~CLEAN_CONTROL_GRP1;
    TEST_EQ(ev_probe(la, false, "fixed"), 1, "controls fixed and marked dirty: L2 runs again");

    /* the revision */
    ev32(a, E_REVISION) = 2;
    r = ev_run(la, false);
    TEST_EQ(r, -1, "revision_id 2: VMfailInvalid (CF)");
    ev32(a, E_REVISION) = vmx_revision();
    TEST_EQ(ev_probe(la, true, "vmxrev"), 1, "revision_id of IA32_VMX_BASIC is taken (as KVM takes Hyper-V's)");
    ev32(a, E_REVISION) = 1;

    /* a structure that is not RAM */
    static const u64 not_ram[] = { 0xfee00000ull, 0x40000000ull };
    for (unsigned k = 0; k < 2; k++) {
        *(volatile u64 *)(assist + A_CURRENT_NESTED_VMCS) = not_ram[k];
        *(volatile u8 *)(assist + A_ENLIGHTEN_VMENTRY) = 1;
        asm volatile(ASM_TRY("1f") "vmlaunch\n1:" ::: "memory", "cc");
        TEST_EQ(exc_vector(), UD_VECTOR, k ? "current_nested_vmcs beyond RAM: #UD at VMLAUNCH"
                                           : "current_nested_vmcs at the LAPIC: #UD at VMLAUNCH");
    }
    TEST_EQ(ev_probe(la, true, "after-ud"), 1, "a good structure again: L2 runs");

    /* VMCLEAR: the structure's bytes unchanged, released (the next VMRESUME reads all) */
    memcpy(snapshot, a, 4096);
    assist_use(a, 1);
    TEST_EQ(vmclear(&(u64){ pa_of(a) }), 0, "VMCLEAR of the enlightened VMCS: VMsucceed");
    TEST_ASSERT(memcmp(snapshot, a, 4096) == 0, "VMCLEAR does not write into the structure");
    ev32(a, E_EXC_BITMAP) = 0; /* clean: seen only because the structure was released */
    TEST_EQ(ev32(a, E_CLEAN), CLEAN_ALL, "all clean");
    TEST_EQ(ev_probe(la, false, "after-vmclear"), 0, "after VMCLEAR, VMRESUME reads every field");
    TEST_EQ(ev_probe(la, false, "after-vmclear2"), 0, "and L2 goes on");
    /* VMCLEAR of another address while an enlightened VMCS is in use: no launch state written */
    memset(b, 0x5a, 4096);
    memcpy(snapshot, b, 4096);
    TEST_EQ(vmclear(&(u64){ pa_of(b) }), 0, "VMCLEAR of another page: VMsucceed");
    TEST_ASSERT(memcmp(snapshot, b, 4096) == 0, "it does not write into that page either");

    /* enlighten_vmentry cleared: no current VMCS */
    assist_use(a, 0);
    memcpy(vmx_gregs, la->gregs, sizeof(vmx_gregs));
    TEST_EQ(ev_enter_asm(0, a), 1, "enlighten_vmentry 0: VMRESUME VMfailInvalid (no current VMCS)");
    TEST_EQ(vmwrite_safe(F_GUEST_RIP, 1), 1, "VMWRITE: VMfailInvalid");
    TEST_EQ(ev_probe(la, false, "re-enlightened"), 0, "enlighten_vmentry 1 again: VMRESUME takes the structure");

    /* two structures alternated: each L2 its own state */
    ev_setup(lb, b, l2_probe, l2_stacks[1] + sizeof(l2_stacks[1]));
    ev32(a, E_EXC_BITMAP) = BIT(UD_VECTOR);
    ev32(a, E_CLEAN) &= ~CLEAN_CONTROL_EXCPN;
    TEST_EQ(ev_probe(la, false, "A"), 1, "A: #UD intercepted");
    TEST_EQ(ev_probe(lb, true, "B"), 0, "B (launched): no #UD intercept");
    int ok = 0;
    for (int k = 0; k < 4; k++) {
        ok += ev32(a, E_CLEAN) == CLEAN_ALL && ev32(b, E_CLEAN) == CLEAN_ALL;
        ok += ev_probe(la, false, "A") == 1;
        ok += ev64(a, E_GUEST_RSP) > pa_of(l2_stacks[0]) && ev64(a, E_GUEST_RSP) <= pa_of(l2_stacks[1]);
        ok += ev_probe(lb, false, "B") == 0;
        ok += ev64(b, E_GUEST_RSP) > pa_of(l2_stacks[1]) &&
              ev64(b, E_GUEST_RSP) <= pa_of(l2_stacks[1] + sizeof(l2_stacks[1]));
    }
    TEST_EQ(ok, 20, "A and B alternated with every group clean: each keeps its bitmap and stack");
    TEST_EQ(vmxoff(), 0, "VMXOFF");
}

void test_main(void)
{
    char spec[128] = "max";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    if (on_qemu_tcg() || !hv_present()) {
        test_skip("no Hyper-V interface (QEMU TCG)");
        return;
    }
    TEST_ASSERT(cpu_has(1, 0, 2, 5), "CPUID.1:ECX.VMX");
    if (mentions(spec, "hv-evmcs") || mentions(spec, "hv-passthrough"))
        with_evmcs();
    else
        without_evmcs();
}

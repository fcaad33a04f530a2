/* A small L1 hypervisor for the VMX guest tests (64-bit tests only): VMX instructions
 * with their outcome, a VMCS set up for an L2 that runs a function of the test in 64-bit
 * mode on L1's own page tables (or on an identity EPT), and one entry point that runs L2
 * until its next VM exit. Include it once per test. */
#ifndef GUEST_VMX_H
#define GUEST_VMX_H

#include "rt.h"

/* ---- field encodings used by the tests (SDM Appendix B) ---- */
enum {
    F_VPID = 0x0000, F_GUEST_ES_SEL = 0x0800, F_GUEST_CS_SEL = 0x0802, F_GUEST_SS_SEL = 0x0804,
    F_GUEST_DS_SEL = 0x0806, F_GUEST_FS_SEL = 0x0808, F_GUEST_GS_SEL = 0x080a,
    F_GUEST_LDTR_SEL = 0x080c, F_GUEST_TR_SEL = 0x080e, F_HOST_ES_SEL = 0x0c00,
    F_HOST_CS_SEL = 0x0c02, F_HOST_SS_SEL = 0x0c04, F_HOST_DS_SEL = 0x0c06,
    F_HOST_FS_SEL = 0x0c08, F_HOST_GS_SEL = 0x0c0a, F_HOST_TR_SEL = 0x0c0c,
    F_IO_BITMAP_A = 0x2000, F_IO_BITMAP_B = 0x2002, F_MSR_BITMAP = 0x2004,
    F_EXIT_MSR_STORE_ADDR = 0x2006, F_EXIT_MSR_LOAD_ADDR = 0x2008,
    F_ENTRY_MSR_LOAD_ADDR = 0x200a, F_TSC_OFFSET = 0x2010, F_EPT_POINTER = 0x201a,
    F_EPTP_LIST = 0x2024, F_VMREAD_BITMAP = 0x2026, F_VMWRITE_BITMAP = 0x2028,
    F_GUEST_PHYS_ADDR = 0x2400, F_LINK_POINTER = 0x2800, F_GUEST_DEBUGCTL = 0x2802,
    F_GUEST_PAT = 0x2804, F_GUEST_EFER = 0x2806, F_HOST_PAT = 0x2c00, F_HOST_EFER = 0x2c02,
    F_PIN = 0x4000, F_PROC = 0x4002, F_EXC_BITMAP = 0x4004, F_PF_MASK = 0x4006,
    F_PF_MATCH = 0x4008, F_CR3_TARGET_COUNT = 0x400a, F_EXIT_CTLS = 0x400c,
    F_EXIT_MSR_STORE_COUNT = 0x400e, F_EXIT_MSR_LOAD_COUNT = 0x4010, F_ENTRY_CTLS = 0x4012,
    F_ENTRY_MSR_LOAD_COUNT = 0x4014, F_ENTRY_INTR_INFO = 0x4016, F_ENTRY_EXC_ERROR = 0x4018,
    F_ENTRY_INSN_LEN = 0x401a, F_PROC2 = 0x401e, F_INSN_ERROR = 0x4400, F_EXIT_REASON = 0x4402,
    F_EXIT_INTR_INFO = 0x4404, F_EXIT_INTR_ERROR = 0x4406, F_IDT_VECT_INFO = 0x4408,
    F_IDT_VECT_ERROR = 0x440a, F_EXIT_INSN_LEN = 0x440c, F_EXIT_INSN_INFO = 0x440e,
    F_GUEST_ES_LIMIT = 0x4800, F_GUEST_CS_LIMIT = 0x4802, F_GUEST_SS_LIMIT = 0x4804,
    F_GUEST_DS_LIMIT = 0x4806, F_GUEST_FS_LIMIT = 0x4808, F_GUEST_GS_LIMIT = 0x480a,
    F_GUEST_LDTR_LIMIT = 0x480c, F_GUEST_TR_LIMIT = 0x480e, F_GUEST_GDTR_LIMIT = 0x4810,
    F_GUEST_IDTR_LIMIT = 0x4812, F_GUEST_ES_AR = 0x4814, F_GUEST_CS_AR = 0x4816,
    F_GUEST_SS_AR = 0x4818, F_GUEST_DS_AR = 0x481a, F_GUEST_FS_AR = 0x481c,
    F_GUEST_GS_AR = 0x481e, F_GUEST_LDTR_AR = 0x4820, F_GUEST_TR_AR = 0x4822,
    F_GUEST_INTERRUPTIBILITY = 0x4824, F_GUEST_ACTIVITY = 0x4826, F_GUEST_SYSENTER_CS = 0x482a,
    F_PREEMPT_TIMER = 0x482e, F_HOST_SYSENTER_CS = 0x4c00,
    F_CR0_MASK = 0x6000, F_CR4_MASK = 0x6002, F_CR0_SHADOW = 0x6004, F_CR4_SHADOW = 0x6006,
    F_CR3_TARGET0 = 0x6008, F_EXIT_QUAL = 0x6400, F_GUEST_LINEAR = 0x640a,
    F_GUEST_CR0 = 0x6800, F_GUEST_CR3 = 0x6802, F_GUEST_CR4 = 0x6804, F_GUEST_ES_BASE = 0x6806,
    F_GUEST_CS_BASE = 0x6808, F_GUEST_SS_BASE = 0x680a, F_GUEST_DS_BASE = 0x680c,
    F_GUEST_FS_BASE = 0x680e, F_GUEST_GS_BASE = 0x6810, F_GUEST_LDTR_BASE = 0x6812,
    F_GUEST_TR_BASE = 0x6814, F_GUEST_GDTR_BASE = 0x6816, F_GUEST_IDTR_BASE = 0x6818,
    F_GUEST_DR7 = 0x681a, F_GUEST_RSP = 0x681c, F_GUEST_RIP = 0x681e, F_GUEST_RFLAGS = 0x6820,
    F_GUEST_PENDING_DBG = 0x6822, F_GUEST_SYSENTER_ESP = 0x6824, F_GUEST_SYSENTER_EIP = 0x6826,
    F_HOST_CR0 = 0x6c00, F_HOST_CR3 = 0x6c02, F_HOST_CR4 = 0x6c04, F_HOST_FS_BASE = 0x6c06,
    F_HOST_GS_BASE = 0x6c08, F_HOST_TR_BASE = 0x6c0a, F_HOST_GDTR_BASE = 0x6c0c,
    F_HOST_IDTR_BASE = 0x6c0e, F_HOST_SYSENTER_ESP = 0x6c10, F_HOST_SYSENTER_EIP = 0x6c12,
    F_HOST_RSP = 0x6c14, F_HOST_RIP = 0x6c16,
};

/* capability MSRs */
enum {
    MSR_FEATURE_CONTROL = 0x3a, MSR_VMX_BASIC = 0x480, MSR_VMX_PINBASED = 0x481,
    MSR_VMX_PROCBASED = 0x482, MSR_VMX_EXIT = 0x483, MSR_VMX_ENTRY = 0x484, MSR_VMX_MISC = 0x485,
    MSR_VMX_CR0_FIXED0 = 0x486, MSR_VMX_CR0_FIXED1 = 0x487, MSR_VMX_CR4_FIXED0 = 0x488,
    MSR_VMX_CR4_FIXED1 = 0x489, MSR_VMX_VMCS_ENUM = 0x48a, MSR_VMX_PROCBASED2 = 0x48b,
    MSR_VMX_EPT_VPID_CAP = 0x48c, MSR_VMX_TRUE_PIN = 0x48d, MSR_VMX_TRUE_PROC = 0x48e,
    MSR_VMX_TRUE_EXIT = 0x48f, MSR_VMX_TRUE_ENTRY = 0x490, MSR_VMX_VMFUNC = 0x491,
};

/* controls the tests use */
#define PIN_EXTINT BIT(0)
#define PIN_NMI BIT(3)
#define PIN_VNMI BIT(5)
#define PIN_PREEMPT BIT(6)
#define PROC_INTR_WINDOW BIT(2)
#define PROC_TSC_OFFSET BIT(3)
#define PROC_HLT BIT(7)
#define PROC_INVLPG BIT(9)
#define PROC_MWAIT BIT(10)
#define PROC_RDPMC BIT(11)
#define PROC_RDTSC BIT(12)
#define PROC_CR3_LOAD BIT(15)
#define PROC_CR3_STORE BIT(16)
#define PROC_CR8_LOAD BIT(19)
#define PROC_CR8_STORE BIT(20)
#define PROC_NMI_WINDOW BIT(22)
#define PROC_MOV_DR BIT(23)
#define PROC_UNCOND_IO BIT(24)
#define PROC_IO_BITMAPS BIT(25)
#define PROC_MTF BIT(27)
#define PROC_MSR_BITMAPS BIT(28)
#define PROC_MONITOR BIT(29)
#define PROC_PAUSE BIT(30)
#define PROC_SECONDARY BIT(31)
#define PROC2_EPT BIT(1)
#define PROC2_DESC BIT(2)
#define PROC2_RDTSCP BIT(3)
#define PROC2_VPID BIT(5)
#define PROC2_WBINVD BIT(6)
#define PROC2_UNRESTRICTED BIT(7)
#define PROC2_INVPCID BIT(12)
#define PROC2_VMFUNC BIT(13)
#define PROC2_SHADOW BIT(14)
#define EXIT_SAVE_DEBUG BIT(2)
#define EXIT_HOST_64 BIT(9)
#define EXIT_ACK_INTR BIT(15)
#define EXIT_SAVE_PAT BIT(18)
#define EXIT_LOAD_PAT BIT(19)
#define EXIT_SAVE_EFER BIT(20)
#define EXIT_LOAD_EFER BIT(21)
#define EXIT_SAVE_PREEMPT BIT(22)
#define ENTRY_LOAD_DEBUG BIT(2)
#define ENTRY_IA32E BIT(9)
#define ENTRY_LOAD_PAT BIT(14)
#define ENTRY_LOAD_EFER BIT(15)

/* exit reasons */
enum {
    R_EXC_NMI = 0, R_EXTINT = 1, R_TRIPLE = 2, R_INIT = 3, R_SIPI = 4, R_INTR_WINDOW = 7,
    R_NMI_WINDOW = 8, R_TASK = 9, R_CPUID = 10, R_HLT = 12, R_INVD = 13, R_INVLPG = 14,
    R_RDPMC = 15, R_RDTSC = 16, R_VMCALL = 18, R_VMCLEAR = 19, R_VMLAUNCH = 20,
    R_VMPTRLD = 21, R_VMPTRST = 22, R_VMREAD = 23, R_VMRESUME = 24, R_VMWRITE = 25,
    R_VMXOFF = 26, R_VMXON = 27, R_CR = 28, R_DR = 29, R_IO = 30, R_RDMSR = 31, R_WRMSR = 32,
    R_BAD_GUEST = 33, R_MSR_LOAD = 34, R_MWAIT = 36, R_MTF = 37, R_MONITOR = 39, R_PAUSE = 40,
    R_GDTR_IDTR = 46, R_LDTR_TR = 47, R_EPT_VIOLATION = 48, R_EPT_MISCONFIG = 49,
    R_INVEPT = 50, R_RDTSCP = 51, R_PREEMPT = 52, R_INVVPID = 53, R_WBINVD = 54,
    R_XSETBV = 55, R_INVPCID = 58, R_VMFUNC = 59,
};

/* ---- the instructions, with their outcome: 0 VMsucceed, 1 VMfailInvalid (CF),
 * 2 VMfailValid (ZF) ---- */
static inline int vmx_outcome(u64 flags)
{
    return (flags & 1) ? 1 : (flags & 0x40) ? 2 : 0;
}
#define VMX_OP1(insn, addr)                                                                   \
    ({ u64 fl_; asm volatile(insn " %1; pushf; pop %0" : "=r"(fl_) : "m"(*(u64 *)(addr)) : "cc", "memory"); \
       vmx_outcome(fl_); })
static inline int vmxon(u64 *pa) { return VMX_OP1("vmxon", pa); }
static inline int vmclear(u64 *pa) { return VMX_OP1("vmclear", pa); }
static inline int vmptrld(u64 *pa) { return VMX_OP1("vmptrld", pa); }
static inline int vmxoff(void)
{
    u64 fl;
    asm volatile("vmxoff; pushf; pop %0" : "=r"(fl) :: "cc", "memory");
    return vmx_outcome(fl);
}
static inline int vmptrst(u64 *out)
{
    u64 fl;
    asm volatile("vmptrst %1; pushf; pop %0" : "=r"(fl), "=m"(*out) :: "cc", "memory");
    return vmx_outcome(fl);
}
static inline int vmread_safe(u64 field, u64 *val)
{
    u64 fl, v = 0;
    asm volatile("vmread %2, %1; pushf; pop %0" : "=r"(fl), "=r"(v) : "r"(field) : "cc", "memory");
    *val = v;
    return vmx_outcome(fl);
}
static inline int vmwrite_safe(u64 field, u64 val)
{
    u64 fl;
    asm volatile("vmwrite %2, %1; pushf; pop %0" : "=r"(fl) : "r"(field), "r"(val) : "cc", "memory");
    return vmx_outcome(fl);
}
static inline u64 vmread(u64 field)
{
    u64 v = 0;
    int r = vmread_safe(field, &v);
    if (r)
        report(false, __FILE__, __LINE__, "vmread %#lx failed (%d)", (ulong)field, r);
    return v;
}
static inline void vmwrite(u64 field, u64 val)
{
    int r = vmwrite_safe(field, val);
    if (r)
        report(false, __FILE__, __LINE__, "vmwrite %#lx failed (%d)", (ulong)field, r);
}
static inline int invept(u64 type, u64 eptp)
{
    u64 desc[2] = { eptp, 0 }, fl;
    asm volatile("invept %1, %2; pushf; pop %0" : "=r"(fl) : "m"(desc), "r"(type) : "cc", "memory");
    return vmx_outcome(fl);
}
static inline int invvpid(u64 type, u16 vpid, u64 la)
{
    u64 desc[2] = { vpid, la }, fl;
    asm volatile("invvpid %1, %2; pushf; pop %0" : "=r"(fl) : "m"(desc), "r"(type) : "cc", "memory");
    return vmx_outcome(fl);
}

/* ---- VMX operation ---- */
static u64 vmx_region_pa[3]; /* VMXON region, the VMCS, a spare VMCS */
static u8 vmx_regions[4][4096] __attribute__((aligned(4096)));

/* The revision identifier of IA32_VMX_BASIC */
static inline u32 vmx_revision(void) { return (u32)rdmsr(MSR_VMX_BASIC) & 0x7fffffff; }

static inline void vmx_region_init(void *p, u32 rev)
{
    memset(p, 0, 4096);
    *(u32 *)p = rev;
}

/* FEATURE_CONTROL locked with VMX, CR4.VMXE and the fixed CR0/CR4 bits, VMXON. */
static inline bool vmx_on(void)
{
    u64 fc = rdmsr(MSR_FEATURE_CONTROL);
    if (!(fc & 1))
        wrmsr(MSR_FEATURE_CONTROL, fc | 5);
    ulong cr4;
    asm volatile("mov %%cr4, %0" : "=r"(cr4));
    cr4 |= 1ul << 13;
    asm volatile("mov %0, %%cr4" ::"r"(cr4));
    for (int k = 0; k < 3; k++) {
        vmx_region_init(vmx_regions[k], vmx_revision());
        vmx_region_pa[k] = (u64)(ulong)vmx_regions[k];
    }
    return vmxon(&vmx_region_pa[0]) == 0;
}

/* ---- the L2 context ---- */
/* L2's general registers by number (rsp unused: it lives in the VMCS) */
extern u64 vmx_gregs[16];
u64 vmx_gregs[16];
/* runs L2 until its next exit; 0 after an exit, else the VMLAUNCH/VMRESUME outcome */
int vmx_enter_asm(int launch);
/* The guest's registers from vmx_gregs, then VMRESUME (or VMLAUNCH when the word at
 * (%rsp) is nonzero), then RFLAGS in RAX: the part every L1 entry stub shares. */
#define VMX_ENTER_L2_ASM \
    "  mov vmx_gregs+8(%rip), %rcx; mov vmx_gregs+16(%rip), %rdx; mov vmx_gregs+24(%rip), %rbx\n" \
    "  mov vmx_gregs+40(%rip), %rbp; mov vmx_gregs+48(%rip), %rsi; mov vmx_gregs+56(%rip), %rdi\n" \
    "  mov vmx_gregs+64(%rip), %r8; mov vmx_gregs+72(%rip), %r9; mov vmx_gregs+80(%rip), %r10\n" \
    "  mov vmx_gregs+88(%rip), %r11; mov vmx_gregs+96(%rip), %r12; mov vmx_gregs+104(%rip), %r13\n" \
    "  mov vmx_gregs+112(%rip), %r14; mov vmx_gregs+120(%rip), %r15\n" \
    "  cmpq $0, (%rsp)\n" \
    "  mov vmx_gregs(%rip), %rax\n" \
    "  jne 1f\n" \
    "  vmresume\n" \
    "  jmp 2f\n" \
    "1: vmlaunch\n" \
    "2: pushf; pop %rax\n"

asm(".text\n"
    ".globl vmx_enter_asm\n"
    "vmx_enter_asm:\n"
    "  push %rbp; push %rbx; push %r12; push %r13; push %r14; push %r15\n"
    "  push %rdi\n"
    "  mov $0x6c14, %eax; vmwrite %rsp, %rax\n"
    "  lea vmx_exit_point(%rip), %rdx; mov $0x6c16, %eax; vmwrite %rdx, %rax\n"
    VMX_ENTER_L2_ASM
    "  mov $1, %ecx; mov $2, %edx; test $1, %al; cmovnz %ecx, %eax; jnz 3f\n"
    "  mov %edx, %eax\n"
    "3: pop %rdi\n"
    "  pop %r15; pop %r14; pop %r13; pop %r12; pop %rbx; pop %rbp\n"
    "  ret\n"
    ".globl vmx_exit_point\n"
    "vmx_exit_point:\n"
    "  mov %rax, vmx_gregs(%rip); mov %rcx, vmx_gregs+8(%rip); mov %rdx, vmx_gregs+16(%rip)\n"
    "  mov %rbx, vmx_gregs+24(%rip); mov %rbp, vmx_gregs+40(%rip); mov %rsi, vmx_gregs+48(%rip)\n"
    "  mov %rdi, vmx_gregs+56(%rip); mov %r8, vmx_gregs+64(%rip); mov %r9, vmx_gregs+72(%rip)\n"
    "  mov %r10, vmx_gregs+80(%rip); mov %r11, vmx_gregs+88(%rip); mov %r12, vmx_gregs+96(%rip)\n"
    "  mov %r13, vmx_gregs+104(%rip); mov %r14, vmx_gregs+112(%rip); mov %r15, vmx_gregs+120(%rip)\n"
    "  pop %rdi\n"
    "  pop %r15; pop %r14; pop %r13; pop %r12; pop %rbx; pop %rbp\n"
    "  xor %eax, %eax\n"
    "  ret\n");

static bool vmx_launched;

/* Runs L2 to its next exit: the basic exit reason (with bit 31 for an entry failure), or
 * -1/-2 if VMLAUNCH/VMRESUME failed (VMfailInvalid / VMfailValid). */
static inline long vmx_run(void)
{
    int r = vmx_enter_asm(!vmx_launched);
    if (r)
        return -r;
    u32 reason = (u32)vmread(F_EXIT_REASON);
    if (!(reason & (1u << 31)))
        vmx_launched = true;
    return reason & 0x8000ffffu;
}

/* Moves L2's RIP past the instruction that exited. */
static inline void vmx_skip(void)
{
    vmwrite(F_GUEST_RIP, vmread(F_GUEST_RIP) + vmread(F_EXIT_INSN_LEN));
}

static u8 vmx_l2_stack[8192] __attribute__((aligned(16)));

/* A control word with the bits the capability MSR says must be 1, plus `want`. */
static inline u32 vmx_ctl(u32 msr, u32 want)
{
    u64 cap = rdmsr(msr);
    return ((u32)cap | want) & (u32)(cap >> 32);
}

static inline u64 read_cr(int n)
{
    ulong v = 0;
    switch (n) {
    case 0: asm volatile("mov %%cr0, %0" : "=r"(v)); break;
    case 2: asm volatile("mov %%cr2, %0" : "=r"(v)); break;
    case 3: asm volatile("mov %%cr3, %0" : "=r"(v)); break;
    case 4: asm volatile("mov %%cr4, %0" : "=r"(v)); break;
    }
    return v;
}

/* A VMCS (the current one after this) for an L2 running fn(void) in 64-bit mode at CPL 0
 * with L1's page tables, GDT, IDT and segment selectors; L1's state as the host state.
 * No exiting control beyond the required ones: the test adds what it needs. */
static inline void vmx_vmcs_setup(u64 *region_pa, void (*fn)(void))
{
    /* VMCLEAR first: it writes a current VMCS back to its region, which is then reset */
    vmclear(region_pa);
    vmx_region_init((void *)(ulong)*region_pa, vmx_revision());
    vmptrld(region_pa);
    vmx_launched = false;
    memset(vmx_gregs, 0, sizeof(vmx_gregs));
    struct { u16 limit; u64 base; } __attribute__((packed)) gdtr, idtr;
    asm volatile("sgdt %0; sidt %1" : "=m"(gdtr), "=m"(idtr));
    u16 cs = read_cs(), ss = read_ss(), ds = read_ds(), tr = read_tr();
    u64 trdesc = gdt[tr >> 3], trhi = gdt[(tr >> 3) + 1];
    u64 trbase = ((trdesc >> 16) & 0xffffff) | ((trdesc >> 32) & 0xff000000ull) | (trhi << 32);
    u64 efer = rdmsr(0xc0000080);
    /* controls */
    vmwrite(F_PIN, vmx_ctl(MSR_VMX_TRUE_PIN, 0));
    vmwrite(F_PROC, vmx_ctl(MSR_VMX_TRUE_PROC, 0));
    vmwrite(F_EXIT_CTLS, vmx_ctl(MSR_VMX_TRUE_EXIT, EXIT_HOST_64 | EXIT_SAVE_EFER | EXIT_LOAD_EFER));
    vmwrite(F_ENTRY_CTLS, vmx_ctl(MSR_VMX_TRUE_ENTRY, ENTRY_IA32E | ENTRY_LOAD_EFER));
    vmwrite(F_EXC_BITMAP, 0);
    vmwrite(F_CR3_TARGET_COUNT, 0);
    vmwrite(F_LINK_POINTER, ~0ull);
    vmwrite(F_CR0_MASK, 0);
    vmwrite(F_CR4_MASK, 0);
    /* host state: L1 as it is now */
    vmwrite(F_HOST_CR0, read_cr(0));
    vmwrite(F_HOST_CR3, read_cr(3));
    vmwrite(F_HOST_CR4, read_cr(4));
    vmwrite(F_HOST_CS_SEL, cs);
    vmwrite(F_HOST_SS_SEL, ss);
    vmwrite(F_HOST_DS_SEL, ds);
    vmwrite(F_HOST_ES_SEL, ds);
    vmwrite(F_HOST_FS_SEL, 0);
    vmwrite(F_HOST_GS_SEL, 0);
    vmwrite(F_HOST_TR_SEL, tr);
    vmwrite(F_HOST_TR_BASE, trbase);
    vmwrite(F_HOST_GDTR_BASE, gdtr.base);
    vmwrite(F_HOST_IDTR_BASE, idtr.base);
    vmwrite(F_HOST_FS_BASE, 0);
    vmwrite(F_HOST_GS_BASE, 0);
    vmwrite(F_HOST_EFER, efer);
    vmwrite(F_HOST_SYSENTER_CS, 0);
    vmwrite(F_HOST_SYSENTER_ESP, 0);
    vmwrite(F_HOST_SYSENTER_EIP, 0);
    /* guest state: the same world, another stack and RIP */
    vmwrite(F_GUEST_CR0, read_cr(0));
    vmwrite(F_GUEST_CR3, read_cr(3));
    vmwrite(F_GUEST_CR4, read_cr(4));
    vmwrite(F_GUEST_EFER, efer);
    vmwrite(F_GUEST_DR7, 0x400);
    static const u32 sel_f[] = { F_GUEST_ES_SEL, F_GUEST_SS_SEL, F_GUEST_DS_SEL };
    for (unsigned k = 0; k < 3; k++) {
        u32 f = sel_f[k];
        vmwrite(f, f == F_GUEST_SS_SEL ? ss : ds);
        vmwrite(f - 0x0800 + 0x4800, 0xffffffff);  /* limit */
        vmwrite(f - 0x0800 + 0x4814, 0xc093);      /* AR: data, DPL 0, G, D/B */
        vmwrite(f - 0x0800 + 0x6806, 0);           /* base */
    }
    vmwrite(F_GUEST_FS_SEL, 0); vmwrite(F_GUEST_FS_AR, 0x10000); vmwrite(F_GUEST_FS_BASE, 0);
    vmwrite(F_GUEST_FS_LIMIT, 0);
    vmwrite(F_GUEST_GS_SEL, 0); vmwrite(F_GUEST_GS_AR, 0x10000); vmwrite(F_GUEST_GS_BASE, 0);
    vmwrite(F_GUEST_GS_LIMIT, 0);
    vmwrite(F_GUEST_CS_SEL, cs);
    vmwrite(F_GUEST_CS_LIMIT, 0xffffffff);
    vmwrite(F_GUEST_CS_AR, 0xa09b);
    vmwrite(F_GUEST_CS_BASE, 0);
    vmwrite(F_GUEST_TR_SEL, tr);
    vmwrite(F_GUEST_TR_LIMIT, 0x67);
    vmwrite(F_GUEST_TR_AR, 0x8b);
    vmwrite(F_GUEST_TR_BASE, trbase);
    vmwrite(F_GUEST_LDTR_SEL, 0);
    vmwrite(F_GUEST_LDTR_AR, 0x10000);
    vmwrite(F_GUEST_LDTR_LIMIT, 0);
    vmwrite(F_GUEST_LDTR_BASE, 0);
    vmwrite(F_GUEST_GDTR_BASE, gdtr.base);
    vmwrite(F_GUEST_GDTR_LIMIT, gdtr.limit);
    vmwrite(F_GUEST_IDTR_BASE, idtr.base);
    vmwrite(F_GUEST_IDTR_LIMIT, idtr.limit);
    vmwrite(F_GUEST_RFLAGS, 2);
    vmwrite(F_GUEST_RSP, (u64)(ulong)(vmx_l2_stack + sizeof(vmx_l2_stack) - 8));
    vmwrite(F_GUEST_RIP, (u64)(ulong)fn);
    vmwrite(F_GUEST_INTERRUPTIBILITY, 0);
    vmwrite(F_GUEST_ACTIVITY, 0);
    vmwrite(F_GUEST_PENDING_DBG, 0);
    vmwrite(F_GUEST_SYSENTER_CS, 0);
    vmwrite(F_GUEST_SYSENTER_ESP, 0);
    vmwrite(F_GUEST_SYSENTER_EIP, 0);
    vmwrite(F_ENTRY_INTR_INFO, 0);
}

/* Turns on secondary controls (with the primary bit that activates them). */
static inline void vmx_set_proc2(u32 want)
{
    vmwrite(F_PROC, vmread(F_PROC) | PROC_SECONDARY);
    vmwrite(F_PROC2, vmx_ctl(MSR_VMX_PROCBASED2, want));
}

/* Code for L2 written in assembly: `name` runs body, then VMCALLs forever (so a test
 * sees R_VMCALL once body is done without an exit). Registers come from vmx_gregs. */
#define VMX_L2_CODE(name, body)                                                               \
    extern char name[];                                                                       \
    asm(".pushsection .text\n" #name ":\n" body "\n98: vmcall\n jmp 98b\n.popsection")

/* The same for 32-bit code (the body is assembled as .code32). */
#define VMX_L2_CODE32(name, body)                                                             \
    extern char name[];                                                                       \
    asm(".pushsection .text\n.code32\n" #name ":\n" body                                      \
        "\n98: vmcall\n jmp 98b\n.code64\n.popsection")

/* A fresh VMCS for L2 code with primary controls `proc` (beyond the required ones) and,
 * when proc2 is not 0, secondary controls proc2. */
static inline void vmx_setup_l2(const void *code, u32 proc, u32 proc2)
{
    vmx_vmcs_setup(&vmx_region_pa[1], (void (*)(void))(ulong)code);
    vmwrite(F_PROC, vmx_ctl(MSR_VMX_TRUE_PROC, proc));
    if (proc2)
        vmx_set_proc2(proc2);
}

/* L2 at CPL 3: the runtime's 64-bit user code and data segments (its pages are user
 * pages). */
static inline void vmx_guest_cpl3(void)
{
    vmwrite(F_GUEST_CS_SEL, SEL_UCODE64);
    vmwrite(F_GUEST_CS_AR, 0xa0fb);
    static const u32 sel_f[] = { F_GUEST_ES_SEL, F_GUEST_SS_SEL, F_GUEST_DS_SEL };
    for (unsigned k = 0; k < 3; k++) {
        vmwrite(sel_f[k], SEL_UDATA);
        vmwrite(sel_f[k] - 0x0800 + 0x4814, 0xc0f3);
    }
}

/* The VM-exit interruption information of a hardware exception (SDM 24.9.2). */
static inline u32 vmx_hw_exc_info(u8 vector, bool has_error)
{
    return vector | 3u << 8 | (has_error ? 1u << 11 : 0) | 1u << 31;
}

/* An identity EPT of the first 4 GiB with 1 GiB pages (4-level, write-back, A/D off),
 * or 5-level with levels = 5. Returns the EPTP. */
static u64 vmx_ept_tables[5][512] __attribute__((aligned(4096)));
static inline u64 vmx_ept_identity(int levels)
{
    memset(vmx_ept_tables, 0, sizeof(vmx_ept_tables));
    /* [0]: top, ..., the PDPT holds 1 GiB leaves */
    int pdpt = levels == 5 ? 2 : 1;
    for (int l = 0; l < pdpt; l++)
        vmx_ept_tables[l][0] = (u64)(ulong)vmx_ept_tables[l + 1] | 7;
    for (int g = 0; g < 4; g++)
        vmx_ept_tables[pdpt][g] = ((u64)g << 30) | 7 | (6 << 3) | (1u << 7);
    return (u64)(ulong)vmx_ept_tables[0] | 6 | ((u64)(levels - 1) << 3);
}

/* L2 in 32-bit protected mode without paging (unrestricted guest on an identity EPT):
 * flat 32-bit code and data segments of the runtime, CR0 = PE|ET|NE, EFER 0. */
static inline void vmx_guest_prot32(void)
{
    vmwrite(F_PROC, vmread(F_PROC) | PROC_SECONDARY);
    vmwrite(F_PROC2, vmread(F_PROC2) | PROC2_EPT | PROC2_UNRESTRICTED);
    vmwrite(F_EPT_POINTER, vmx_ept_identity(4));
    vmwrite(F_ENTRY_CTLS, vmread(F_ENTRY_CTLS) & ~(u64)ENTRY_IA32E);
    vmwrite(F_GUEST_EFER, 0);
    vmwrite(F_GUEST_CR0, 0x31);
    vmwrite(F_GUEST_CR4, 1u << 13);
    vmwrite(F_GUEST_CS_SEL, SEL_KCODE32);
    vmwrite(F_GUEST_CS_AR, 0xc09b);
}

#endif

/* A small L1 hypervisor for the AMD SVM guest tests (64-bit tests only; AMD64 APM vol. 2
 * chapter 15 and appendix B): the VMCB layout, intercept bits and exit codes, SVM enabling,
 * a VMCB whose guest state is a copy of L1's own 64-bit world (same CR3, GDT, IDT and
 * segments; its own RIP and stack), and one entry point, svm_run(), that runs L2 until its
 * next #VMEXIT. Include it once per test.
 *
 * VMRUN saves only part of the host state in the host-save area (ES/CS/SS/DS, GDTR, IDTR,
 * EFER, CR0/CR3/CR4, RFLAGS, RIP, RSP, RAX) and loads the guest's counterparts from the
 * VMCB; FS, GS, TR, LDTR and the MSRs of VMLOAD/VMSAVE stay L1's, since L2 is a copy of L1
 * here. The general registers other than RAX and RSP are not switched at all: svm_run()
 * loads L2's from svm_gregs[] before VMRUN and stores them back after the #VMEXIT. */
#ifndef GUEST_SVM_H
#define GUEST_SVM_H

#include "rt.h"

/* TEST_EQ with a format for the message */
#define TEST_EQF(a, b, fmt, ...)                                                             \
    do {                                                                                     \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);       \
        report(a_ == b_, __FILE__, __LINE__, fmt ": got %#llx, want %#llx", ##__VA_ARGS__, a_, b_); \
    } while (0)

/* ---- the VMCB (APM appendix B, tables B-1 and B-2) ---- */
struct vmcb_seg {
    u16 sel;
    u16 attrib; /* descriptor bits 47:40 in 7:0, bits 55:52 (AVL, L, D/B, G) in 11:8 */
    u32 limit;
    u64 base;
} __attribute__((packed));

struct vmcb_control {
    u32 intercept_cr;    /* 0x000: bits 15:0 reads of CR0-15, 31:16 writes */
    u32 intercept_dr;    /* 0x004: bits 15:0 reads of DR0-15, 31:16 writes */
    u32 intercept_exc;   /* 0x008: one bit per exception vector */
    u32 intercept_misc1; /* 0x00c: INTR .. SHUTDOWN */
    u32 intercept_misc2; /* 0x010: VMRUN .. EFER write trap, CR write traps */
    u32 intercept_misc3; /* 0x014: INVLPGB, INVPCID, MCOMMIT, TLBSYNC ... */
    u8 rsvd1[0x03c - 0x018];
    u16 pause_threshold; /* 0x03c */
    u16 pause_count;     /* 0x03e */
    u64 iopm_base;       /* 0x040 */
    u64 msrpm_base;      /* 0x048 */
    u64 tsc_offset;      /* 0x050 */
    u32 asid;            /* 0x058 */
    u8 tlb_control;      /* 0x05c */
    u8 rsvd2[3];
    u32 int_ctl;         /* 0x060: V_TPR 7:0, V_IRQ 8, VGIF 9, V_INTR_PRIO 19:16, V_IGN_TPR 20,
                          * V_INTR_MASKING 24 */
    u32 int_vector;      /* 0x064: V_INTR_VECTOR 7:0 */
    u64 int_state;       /* 0x068: bit 0 interrupt shadow, bit 1 guest interrupt mask */
    u64 exit_code;       /* 0x070 */
    u64 exit_info1;      /* 0x078 */
    u64 exit_info2;      /* 0x080 */
    u64 exit_int_info;   /* 0x088: EXITINTINFO (error code in 63:32) */
    u64 np_enable;       /* 0x090: bit 0 NP_ENABLE */
    u64 avic_bar;        /* 0x098 */
    u64 ghcb;            /* 0x0a0 */
    u64 event_inj;       /* 0x0a8: EVENTINJ (error code in 63:32) */
    u64 ncr3;            /* 0x0b0 */
    u64 lbr_virt;        /* 0x0b8 */
    u32 clean;           /* 0x0c0: VMCB clean bits */
    u32 rsvd3;
    u64 nrip;            /* 0x0c8: next sequential RIP */
    u8 insn_len;         /* 0x0d0: number of guest instruction bytes fetched */
    u8 insn_bytes[15];   /* 0x0d1 */
    u8 rsvd4[0x400 - 0x0e0];
} __attribute__((packed));

struct vmcb_save {
    struct vmcb_seg es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr; /* 0x400 .. 0x49f */
    u8 rsvd1[0x4cb - 0x4a0];
    u8 cpl;              /* 0x4cb */
    u32 rsvd2;
    u64 efer;            /* 0x4d0 */
    u8 rsvd3[0x548 - 0x4d8];
    u64 cr4;             /* 0x548 */
    u64 cr3;             /* 0x550 */
    u64 cr0;             /* 0x558 */
    u64 dr7;             /* 0x560 */
    u64 dr6;             /* 0x568 */
    u64 rflags;          /* 0x570 */
    u64 rip;             /* 0x578 */
    u8 rsvd4[0x5d8 - 0x580];
    u64 rsp;             /* 0x5d8 */
    u8 rsvd5[0x5f8 - 0x5e0];
    u64 rax;             /* 0x5f8 */
    u64 star;            /* 0x600 */
    u64 lstar;           /* 0x608 */
    u64 cstar;           /* 0x610 */
    u64 sfmask;          /* 0x618 */
    u64 kernel_gs_base;  /* 0x620 */
    u64 sysenter_cs;     /* 0x628 */
    u64 sysenter_esp;    /* 0x630 */
    u64 sysenter_eip;    /* 0x638 */
    u64 cr2;             /* 0x640 */
    u8 rsvd6[0x668 - 0x648];
    u64 g_pat;           /* 0x668 */
    u64 dbgctl;          /* 0x670 */
    u64 br_from;         /* 0x678 */
    u64 br_to;           /* 0x680 */
    u64 lastexcp_from;   /* 0x688 */
    u64 lastexcp_to;     /* 0x690 */
} __attribute__((packed));

struct vmcb {
    struct vmcb_control c;
    struct vmcb_save s;
    u8 rest[4096 - 0x698];
} __attribute__((packed, aligned(4096)));

#define VMCB_OFF(f) __builtin_offsetof(struct vmcb, f)
_Static_assert(sizeof(struct vmcb) == 4096, "VMCB is a page");
_Static_assert(VMCB_OFF(c.intercept_misc1) == 0x00c, "VMCB 0x00c");
_Static_assert(VMCB_OFF(c.pause_threshold) == 0x03c, "VMCB 0x03c");
_Static_assert(VMCB_OFF(c.iopm_base) == 0x040, "VMCB 0x040");
_Static_assert(VMCB_OFF(c.asid) == 0x058, "VMCB 0x058");
_Static_assert(VMCB_OFF(c.int_ctl) == 0x060, "VMCB 0x060");
_Static_assert(VMCB_OFF(c.exit_code) == 0x070, "VMCB 0x070");
_Static_assert(VMCB_OFF(c.np_enable) == 0x090, "VMCB 0x090");
_Static_assert(VMCB_OFF(c.event_inj) == 0x0a8, "VMCB 0x0a8");
_Static_assert(VMCB_OFF(c.clean) == 0x0c0, "VMCB 0x0c0");
_Static_assert(VMCB_OFF(c.nrip) == 0x0c8, "VMCB 0x0c8");
_Static_assert(VMCB_OFF(c.insn_bytes) == 0x0d1, "VMCB 0x0d1");
_Static_assert(VMCB_OFF(s.es) == 0x400 && VMCB_OFF(s.tr) == 0x490, "VMCB segments");
_Static_assert(VMCB_OFF(s.cpl) == 0x4cb, "VMCB 0x4cb");
_Static_assert(VMCB_OFF(s.efer) == 0x4d0, "VMCB 0x4d0");
_Static_assert(VMCB_OFF(s.cr4) == 0x548 && VMCB_OFF(s.rip) == 0x578, "VMCB 0x548-0x578");
_Static_assert(VMCB_OFF(s.rsp) == 0x5d8 && VMCB_OFF(s.rax) == 0x5f8, "VMCB RSP, RAX");
_Static_assert(VMCB_OFF(s.cr2) == 0x640 && VMCB_OFF(s.g_pat) == 0x668, "VMCB CR2, G_PAT");

/* ---- intercepts: one bit number across the six intercept words at 0x000-0x014 ---- */
#define I_CR_READ(n) (n)
#define I_CR_WRITE(n) (16 + (n))
#define I_DR_READ(n) (32 + (n))
#define I_DR_WRITE(n) (48 + (n))
#define I_EXC(v) (64 + (v))
enum {
    I_INTR = 96, I_NMI, I_SMI, I_INIT, I_VINTR, I_CR0_SEL_WRITE, I_IDTR_READ, I_GDTR_READ,
    I_LDTR_READ, I_TR_READ, I_IDTR_WRITE, I_GDTR_WRITE, I_LDTR_WRITE, I_TR_WRITE, I_RDTSC,
    I_RDPMC, I_PUSHF, I_POPF, I_CPUID, I_RSM, I_IRET, I_INTN, I_INVD, I_PAUSE, I_HLT,
    I_INVLPG, I_INVLPGA, I_IOIO, I_MSR, I_TASK_SWITCH, I_FERR_FREEZE, I_SHUTDOWN,
    I_VMRUN = 128, I_VMMCALL, I_VMLOAD, I_VMSAVE, I_STGI, I_CLGI, I_SKINIT, I_RDTSCP, I_ICEBP,
    I_WBINVD, I_MONITOR, I_MWAIT, I_MWAIT_COND, I_XSETBV, I_RDPRU, I_EFER_WRITE_TRAP,
};

/* ---- exit codes (APM appendix C) ---- */
#define VMEXIT_CR_READ(n) (0x00 + (n))
#define VMEXIT_CR_WRITE(n) (0x10 + (n))
#define VMEXIT_DR_READ(n) (0x20 + (n))
#define VMEXIT_DR_WRITE(n) (0x30 + (n))
#define VMEXIT_EXCP(v) (0x40 + (v))
enum {
    VMEXIT_INTR = 0x60, VMEXIT_NMI, VMEXIT_SMI, VMEXIT_INIT, VMEXIT_VINTR, VMEXIT_CR0_SEL_WRITE,
    VMEXIT_IDTR_READ, VMEXIT_GDTR_READ, VMEXIT_LDTR_READ, VMEXIT_TR_READ, VMEXIT_IDTR_WRITE,
    VMEXIT_GDTR_WRITE, VMEXIT_LDTR_WRITE, VMEXIT_TR_WRITE, VMEXIT_RDTSC, VMEXIT_RDPMC,
    VMEXIT_PUSHF = 0x70, VMEXIT_POPF, VMEXIT_CPUID, VMEXIT_RSM, VMEXIT_IRET, VMEXIT_SWINT,
    VMEXIT_INVD, VMEXIT_PAUSE, VMEXIT_HLT, VMEXIT_INVLPG, VMEXIT_INVLPGA, VMEXIT_IOIO,
    VMEXIT_MSR, VMEXIT_TASK_SWITCH, VMEXIT_FERR_FREEZE, VMEXIT_SHUTDOWN,
    VMEXIT_VMRUN = 0x80, VMEXIT_VMMCALL, VMEXIT_VMLOAD, VMEXIT_VMSAVE, VMEXIT_STGI,
    VMEXIT_CLGI, VMEXIT_SKINIT, VMEXIT_RDTSCP, VMEXIT_ICEBP, VMEXIT_WBINVD, VMEXIT_MONITOR,
    VMEXIT_MWAIT, VMEXIT_MWAIT_CONDITIONAL, VMEXIT_XSETBV, VMEXIT_RDPRU, VMEXIT_EFER_WRITE_TRAP,
    VMEXIT_NPF = 0x400,
};
#define VMEXIT_INVALID (~0ull) /* -1 */

/* EVENTINJ / EXITINTINFO (APM 15.20, 15.7.2) */
#define EVT_VALID BIT(31)
#define EVT_EV BIT(11)
#define EVT_TYPE_INTR (0u << 8)
#define EVT_TYPE_NMI (2u << 8)
#define EVT_TYPE_EXC (3u << 8)
#define EVT_TYPE_SWINT (4u << 8)
#define EVT(vector, type) ((u64)(vector) | (type) | EVT_VALID)
#define EVT_ERR(vector, type, err) (EVT(vector, type) | EVT_EV | ((u64)(u32)(err) << 32))

/* int_ctl bits */
#define V_IRQ BIT(8)
#define V_INTR_PRIO(p) ((u32)(p) << 16)
#define V_IGN_TPR BIT(20)
#define V_INTR_MASKING BIT(24)

/* IOIO EXITINFO1 (APM 15.10.2) */
#define IOIO_TYPE_IN BIT(0)
#define IOIO_STR BIT(2)
#define IOIO_REP BIT(3)
#define IOIO_SZ8 BIT(4)
#define IOIO_SZ16 BIT(5)
#define IOIO_SZ32 BIT(6)
#define IOIO_A16 BIT(7)
#define IOIO_A32 BIT(8)
#define IOIO_A64 BIT(9)
#define IOIO_SEG(s) ((u64)(s) << 10)
#define IOIO_PORT(p) ((u64)(p) << 16)

/* NPF EXITINFO1 (APM 15.25.6) */
#define NPF_P BIT(0)
#define NPF_W BIT(1)
#define NPF_U BIT(2)
#define NPF_RSV BIT(3)
#define NPF_ID BIT(4)
#define NPF_FINAL BIT(32)  /* fault on the final guest-physical address */
#define NPF_WALK BIT(33)   /* fault on a guest page-table access */

/* ---- MSRs and CPUID ---- */
#define MSR_VM_CR 0xc0010114
#define MSR_VM_HSAVE_PA 0xc0010117
#define MSR_TSC_RATIO 0xc0000104
#define MSR_PAT 0x277
#define EFER_SVME BIT(12)
#define VM_CR_LOCK BIT(3)
#define VM_CR_SVMDIS BIT(4)

/* CPUID 8000_000Ah EDX */
enum {
    SVMF_NP = 0, SVMF_LBRV = 1, SVMF_SVML = 2, SVMF_NRIPS = 3, SVMF_TSC_RATE = 4,
    SVMF_VMCB_CLEAN = 5, SVMF_FLUSH_ASID = 6, SVMF_DECODE_ASSISTS = 7, SVMF_PAUSE_FILTER = 10,
    SVMF_PAUSE_THRESHOLD = 12, SVMF_AVIC = 13, SVMF_VLS = 15, SVMF_VGIF = 16,
};
static inline bool svm_supported(void) { return cpu_has(0x80000001, 0, 2, 2); }
static inline bool svm_has(int bit)
{
    return svm_supported() && cpu_has(0x8000000a, 0, 3, bit);
}
static inline int svm_maxphyaddr(void)
{
    return cpuid(0x80000000).a >= 0x80000008 ? (int)(cpuid(0x80000008).a & 0xff) : 36;
}

/* ---- the instructions ---- */
static inline void stgi(void) { asm volatile("stgi" ::: "memory"); }
static inline void clgi(void) { asm volatile("clgi" ::: "memory"); }
static inline void invlpga(u64 va, u32 asid) { asm volatile("invlpga" ::"a"(va), "c"(asid) : "memory"); }

/* ---- memory: the VMCBs, host-save area, IOPM (12 KiB) and MSRPM (8 KiB) ---- */
#define SVM_UNUSED __attribute__((unused))
static SVM_UNUSED struct vmcb svm_vmcb, svm_vmcb2;
static SVM_UNUSED u8 svm_hsave[4096] __attribute__((aligned(4096)));
static SVM_UNUSED u8 svm_iopm[3 * 4096] __attribute__((aligned(4096)));
static SVM_UNUSED u8 svm_msrpm[2 * 4096] __attribute__((aligned(4096)));
static SVM_UNUSED u8 svm_l2_stack[8192] __attribute__((aligned(16)));
#define PA(p) ((u64)(ulong)(p)) /* the test's memory is identity-mapped */

/* EFER.SVME and the host-save area. */
static inline void svm_enable(void)
{
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
    wrmsr(MSR_VM_HSAVE_PA, PA(svm_hsave));
}

/* ---- the L2 context: general registers by number (RAX and RSP live in the VMCB) ---- */
extern u64 svm_gregs[16];
u64 svm_gregs[16];
/* VMRUN with RAX = vmcb_pa; returns after the #VMEXIT with L2's registers in svm_gregs.
 * GIF is 0 then: svm_run() sets it again. */
void svm_vmrun_asm(u64 vmcb_pa);
asm(".text\n"
    ".globl svm_vmrun_asm\n"
    "svm_vmrun_asm:\n"
    "  push %rbp; push %rbx; push %r12; push %r13; push %r14; push %r15\n"
    "  mov %rdi, %rax\n"
    "  mov svm_gregs+8(%rip), %rcx; mov svm_gregs+16(%rip), %rdx; mov svm_gregs+24(%rip), %rbx\n"
    "  mov svm_gregs+40(%rip), %rbp; mov svm_gregs+48(%rip), %rsi; mov svm_gregs+56(%rip), %rdi\n"
    "  mov svm_gregs+64(%rip), %r8; mov svm_gregs+72(%rip), %r9; mov svm_gregs+80(%rip), %r10\n"
    "  mov svm_gregs+88(%rip), %r11; mov svm_gregs+96(%rip), %r12; mov svm_gregs+104(%rip), %r13\n"
    "  mov svm_gregs+112(%rip), %r14; mov svm_gregs+120(%rip), %r15\n"
    "  vmrun\n"
    "  mov %rcx, svm_gregs+8(%rip); mov %rdx, svm_gregs+16(%rip); mov %rbx, svm_gregs+24(%rip)\n"
    "  mov %rbp, svm_gregs+40(%rip); mov %rsi, svm_gregs+48(%rip); mov %rdi, svm_gregs+56(%rip)\n"
    "  mov %r8, svm_gregs+64(%rip); mov %r9, svm_gregs+72(%rip); mov %r10, svm_gregs+80(%rip)\n"
    "  mov %r11, svm_gregs+88(%rip); mov %r12, svm_gregs+96(%rip); mov %r13, svm_gregs+104(%rip)\n"
    "  mov %r14, svm_gregs+112(%rip); mov %r15, svm_gregs+120(%rip)\n"
    "  pop %r15; pop %r14; pop %r13; pop %r12; pop %rbx; pop %rbp\n"
    "  ret\n");

/* Runs L2 to its next #VMEXIT (VMCB clean bits cleared first, GIF set again after) and
 * returns the exit code. */
static inline u64 svm_run(struct vmcb *v)
{
    v->c.clean = 0;
    svm_vmrun_asm(PA(v));
    stgi();
    return v->c.exit_code;
}

/* Moves L2's RIP past the instruction that exited: by its known length, so that a wrong
 * nRIP cannot derail the rest of a test (svm_check_nrip checks nRIP). */
static inline void svm_skip(struct vmcb *v, unsigned len) { v->s.rip += len; }
static inline void svm_check_nrip(struct vmcb *v, unsigned len, const char *what)
{
    if (svm_has(SVMF_NRIPS))
        report(v->c.nrip == v->s.rip + len, __FILE__, __LINE__,
               "%s: nRIP %#llx, want RIP %#llx + %u", what, (unsigned long long)v->c.nrip,
               (unsigned long long)v->s.rip, len);
}

static inline void svm_intercept(struct vmcb *v, int bit)
{
    (&v->c.intercept_cr)[bit / 32] |= 1u << (bit % 32);
}
static inline void svm_no_intercept(struct vmcb *v, int bit)
{
    (&v->c.intercept_cr)[bit / 32] &= ~(1u << (bit % 32));
}

/* The packed VMCB attributes of a GDT descriptor. */
static inline u16 svm_attrib_of(u64 desc)
{
    return (u16)(((desc >> 40) & 0xff) | ((desc >> 44) & 0xf00));
}
static inline void svm_seg_from_gdt(struct vmcb_seg *s, u16 sel)
{
    s->sel = sel;
    if (!(sel & ~3)) {
        s->attrib = 0;
        s->limit = 0;
        s->base = 0;
        return;
    }
    u64 d = gdt[sel >> 3];
    s->attrib = svm_attrib_of(d);
    u32 limit = (u32)((d & 0xffff) | ((d >> 32) & 0xf0000));
    s->limit = (d & BIT(55)) ? (limit << 12) | 0xfff : limit;
    s->base = ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000ull);
}

static inline u64 svm_read_cr(int n)
{
    ulong v = 0;
    switch (n) {
    case 0: asm volatile("mov %%cr0, %0" : "=r"(v)); break;
    case 2: asm volatile("mov %%cr2, %0" : "=r"(v)); break;
    case 3: asm volatile("mov %%cr3, %0" : "=r"(v)); break;
    case 4: asm volatile("mov %%cr4, %0" : "=r"(v)); break;
    case 8: asm volatile("mov %%cr8, %0" : "=r"(v)); break;
    }
    return v;
}

/* A VMCB for L2 running fn in 64-bit mode at CPL 0 with L1's page tables, GDT, IDT and
 * selectors on svm_l2_stack; ASID 1; intercepts: VMRUN (which the APM requires), VMMCALL
 * and SHUTDOWN; IOPM and MSRPM cleared (they only matter with the IOIO/MSR intercepts). */
static inline void svm_vmcb_init(struct vmcb *v, const void *fn)
{
    memset(v, 0, sizeof(*v));
    memset(svm_gregs, 0, sizeof(svm_gregs));
    memset(svm_iopm, 0, sizeof(svm_iopm));
    memset(svm_msrpm, 0, sizeof(svm_msrpm));
    svm_intercept(v, I_VMRUN);
    svm_intercept(v, I_VMMCALL);
    svm_intercept(v, I_SHUTDOWN);
    v->c.iopm_base = PA(svm_iopm);
    v->c.msrpm_base = PA(svm_msrpm);
    v->c.asid = 1;
    struct { u16 limit; u64 base; } __attribute__((packed)) gdtr, idtr;
    asm volatile("sgdt %0; sidt %1" : "=m"(gdtr), "=m"(idtr));
    svm_seg_from_gdt(&v->s.cs, read_cs());
    svm_seg_from_gdt(&v->s.ss, read_ss());
    svm_seg_from_gdt(&v->s.ds, read_ds());
    svm_seg_from_gdt(&v->s.es, read_ds());
    svm_seg_from_gdt(&v->s.fs, 0);
    svm_seg_from_gdt(&v->s.gs, 0);
    svm_seg_from_gdt(&v->s.ldtr, 0);
    u16 tr = read_tr();
    svm_seg_from_gdt(&v->s.tr, tr);
    v->s.tr.base |= gdt[(tr >> 3) + 1] << 32;
    v->s.gdtr.limit = gdtr.limit;
    v->s.gdtr.base = gdtr.base;
    v->s.idtr.limit = idtr.limit;
    v->s.idtr.base = idtr.base;
    v->s.cpl = 0;
    v->s.efer = rdmsr(MSR_EFER);
    v->s.cr0 = svm_read_cr(0);
    v->s.cr3 = svm_read_cr(3);
    v->s.cr4 = svm_read_cr(4);
    v->s.cr2 = 0;
    v->s.dr6 = 0xffff0ff0;
    v->s.dr7 = 0x400;
    v->s.rflags = 2;
    v->s.rip = PA(fn);
    v->s.rsp = PA(svm_l2_stack + sizeof(svm_l2_stack) - 8);
    v->s.rax = 0;
    v->s.g_pat = rdmsr(MSR_PAT);
    v->s.star = rdmsr(MSR_STAR);
    v->s.lstar = rdmsr(MSR_LSTAR);
    v->s.sfmask = rdmsr(MSR_FMASK);
    v->s.sysenter_cs = rdmsr(MSR_SYSENTER_CS);
}

/* Code for L2 written in assembly: `name` runs body, then VMMCALLs forever (so a test
 * sees VMEXIT_VMMCALL once body is done without an exit). Registers come from svm_gregs,
 * RAX from the VMCB. */
#define SVM_L2_CODE(name, body)                                                               \
    extern char name[];                                                                       \
    asm(".pushsection .text\n" #name ":\n" body "\n98: vmmcall\n jmp 98b\n.popsection")

/* Intercept bits of the permission maps */
static inline void svm_iopm_set(u16 port) { svm_iopm[port / 8] |= 1u << (port % 8); }
/* The MSRPM offset and bit of msr's read intercept (write: bit + 1); -1 outside the
 * three ranges (APM 15.11). */
static inline long svm_msrpm_bit(u32 msr)
{
    if (msr <= 0x1fff)
        return msr * 2;
    if (msr >= 0xc0000000 && msr <= 0xc0001fff)
        return 0x800 * 8 + (msr - 0xc0000000) * 2;
    if (msr >= 0xc0010000 && msr <= 0xc0011fff)
        return 0x1000 * 8 + (msr - 0xc0010000) * 2;
    return -1;
}
static inline void svm_msrpm_set(u32 msr, bool read, bool write)
{
    long b = svm_msrpm_bit(msr);
    if (b < 0)
        return;
    if (read)
        svm_msrpm[b / 8] |= 1u << (b % 8);
    if (write)
        svm_msrpm[(b + 1) / 8] |= 1u << ((b + 1) % 8);
}

#endif

/* Guest test runtime: what every guest test kernel links against.
 *
 * A test is a multiboot v1 kernel. The runtime's entry stub takes the CPU from the
 * multiboot state (32-bit protected mode, paging off) to the test's mode: a 32-bit build
 * (-m32) stays in flat 32-bit protected mode without paging; a 64-bit build switches to
 * long mode with the first 4 GiB identity-mapped by 2 MiB pages (U/S=1, R/W=1; 5-level
 * paging when the test defines rt_want_la57 = 1 and CPUID has LA57). Then it sets up the
 * GDT, TSS, IDT and serial port and calls test_main(). Returning from test_main ends the
 * VM through the debug-exit port: status 0 when no check failed.
 *
 * The runtime is compiled with -mgeneral-regs-only: exception handlers do not save the
 * FPU/SSE state, so runtime code must never touch it. */
#ifndef GUEST_RT_H
#define GUEST_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t s32;
typedef int64_t s64;
typedef unsigned long ulong; /* register width: 4 bytes in 32-bit tests, 8 in 64-bit */

#define BIT(n) (1ull << (n))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGNED(n) __attribute__((aligned(n)))
#define NORETURN __attribute__((noreturn))
#define NOINLINE __attribute__((noinline))

/* ---------------------------------------------------------------- GDT layout
 * Chosen so that SYSCALL/SYSRET and SYSENTER/SYSEXIT find their fixed neighbours:
 * STAR.SYSCALL_CS = SEL_KCODE64 (SS = +8), STAR.SYSRET_CS = SEL_UCODE32 (SS = +8,
 * 64-bit CS = +16), SYSENTER_CS = SEL_KCODE64 (SS +8, 32-bit exit CS +16 / SS +24,
 * 64-bit exit CS +32 / SS +40). */
#define SEL_KCODE32 0x08
#define SEL_KCODE64 0x10
#define SEL_KDATA 0x18
#define SEL_UCODE32 0x23 /* includes RPL 3 */
#define SEL_UDATA 0x2b
#define SEL_UCODE64 0x33
#define SEL_UDATA2 0x3b  /* copy of SEL_UDATA, the SS of a 64-bit SYSEXIT */
#define SEL_TSS 0x40     /* 16 bytes in 64-bit mode */
#define SEL_CODE16 0x50  /* ring 0 16-bit code, base 0, limit 0xffff */
#define SEL_DATA16 0x58  /* ring 0 16-bit data, base 0, limit 0xffff */
#define GDT_FIRST_FREE 12 /* entries 12..GDT_ENTRIES-1 are for tests */
#define GDT_ENTRIES 32

#ifdef __x86_64__
#define SEL_KCODE SEL_KCODE64
#define SEL_UCODE SEL_UCODE64
#else
#define SEL_KCODE SEL_KCODE32
#define SEL_UCODE SEL_UCODE32
#endif

/* Descriptor access bytes (type | S | DPL | P) */
#define DESC_CODE 0x9a  /* present, ring 0, execute/read */
#define DESC_DATA 0x92  /* present, ring 0, read/write */
#define DESC_DPL(n) ((n) << 5)
/* flags nibble: G=8, D/B=4, L=2 */
#define DESC_G 0x8
#define DESC_DB 0x4
#define DESC_L 0x2

struct desc_ptr {
    u16 limit;
    ulong base;
} __attribute__((packed));

extern u64 gdt[GDT_ENTRIES];
/* Writes an 8-byte segment descriptor into gdt[index]. */
void gdt_set(int index, u32 base, u32 limit, u8 access, u8 flags);
/* Writes a gate (call gate type 0xc, interrupt 0xe, trap 0xf) into gdt[] (index) or the
 * IDT (vector); 64-bit gates take two GDT slots. */
void gdt_set_gate(int index, u16 sel, ulong offset, u8 type, int dpl, int param_count);
void idt_set_gate(int vector, u16 sel, ulong offset, u8 type, int dpl, int ist);
/* Restores vector's gate to the runtime's stub (interrupt gate, DPL 0, no IST). */
void idt_reset_gate(int vector);
/* Clears the gate's present bit (for #NP-on-delivery and #DF tests). */
void idt_clear_present(int vector);

extern void *idt_stub_table[256];

#ifdef __x86_64__
struct tss {
    u32 reserved0;
    u64 rsp[3];
    u64 ist[8];       /* ist[1..7] at 0x24..; ist[0] is the reserved quadword at 0x1c */
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss) == 0x68, "64-bit TSS layout");
#else
struct tss {
    u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags;
    u32 eax, ecx, edx, ebx, esp, ebp, esi, edi;
    u32 es, cs, ss, ds, fs, gs, ldt, trap_iomap;
} __attribute__((packed));
#endif
extern struct tss tss;
/* The stack the TSS gives for CPL 3 -> 0 transitions, and those of IST1..7. */
extern u8 kernel_stack[16384], ist_stacks[8][4096];
#define IST_DF 1  /* the runtime gives #DF IST1 in 64-bit mode */
#define IST_NMI 2 /* and NMI IST2 */

/* ---------------------------------------------------------------- exceptions */
enum {
    DE_VECTOR = 0, DB_VECTOR = 1, NMI_VECTOR = 2, BP_VECTOR = 3, OF_VECTOR = 4,
    BR_VECTOR = 5, UD_VECTOR = 6, NM_VECTOR = 7, DF_VECTOR = 8, TS_VECTOR = 10,
    NP_VECTOR = 11, SS_VECTOR = 12, GP_VECTOR = 13, PF_VECTOR = 14, MF_VECTOR = 16,
    AC_VECTOR = 17, MC_VECTOR = 18, XM_VECTOR = 19, VE_VECTOR = 20, CP_VECTOR = 21,
};
#define USER_RETURN_VECTOR 0x7f /* DPL 3 gate run_user() returns through */
#define NO_EXCEPTION (-1)

/* What the interrupt stubs save; the handler may change it (ip, flags, registers), and
 * the stub's IRET resumes from it. */
struct exc_frame {
#ifdef __x86_64__
    ulong r15, r14, r13, r12, r11, r10, r9, r8;
    ulong di, si, bp, bx, dx, cx, ax;
#else
    ulong es, ds;
    ulong di, si, bp, sp_unused, bx, dx, cx, ax;
#endif
    ulong vector, error;
    /* pushed by the CPU */
    ulong ip, cs, flags;
    ulong sp, ss; /* 64-bit: always; 32-bit: only after a privilege change */
};

struct exc_record {
    int vector;   /* NO_EXCEPTION if none */
    ulong error;
    ulong ip;     /* the faulting/trapping instruction pointer as pushed */
    ulong cs;
    ulong cr2;    /* for #PF */
    ulong flags;
    ulong dr6;    /* for #DB */
    unsigned count; /* exceptions taken since the last exc_clear() */
};
extern volatile struct exc_record exc_last;
void exc_clear(void);

typedef void (*exc_handler_t)(struct exc_frame *f);
/* The runtime's dispatcher (a handler may pass a frame on to it). */
void exc_dispatch(struct exc_frame *f);
/* Installs a C handler for a vector (NULL to remove). It runs with interrupts off on the
 * interrupted context's stack (or the IST/TSS stack) and returns into the IRET. */
void exc_set_handler(int vector, exc_handler_t h);

/* The exception helpers below (exc_catch, ASM_TRY, run_user) keep their state in
 * globals: use them on the BSP only; APs should not fault. */

/* Runs fn(arg). If it takes an exception, fn is abandoned (a longjmp back into
 * exc_catch at CPL 0) and the exception's vector is returned; else NO_EXCEPTION.
 * The details are in exc_last. Works for faults in ring 3 (run_user) too. */
int exc_catch(void (*fn)(void *), void *arg);

/* ASM_TRY: a one-instruction "expect exception" for inline assembly. It arms a recovery
 * address; if the next instruction(s) fault, the handler records the exception in
 * exc_last and resumes at the recovery label instead of IRETing back. Usage:
 *     asm volatile(ASM_TRY("1f") "mov (%0), %%eax\n1:" :: "r"(p));
 *     if (exc_last.vector == PF_VECTOR) ...
 * exc_last.vector is NO_EXCEPTION if nothing faulted. */
extern volatile ulong exc_fixup_ip;
#ifdef __x86_64__
#define ASM_TRY(label) \
    "movl $-1, exc_last(%%rip)\n\t" "movq $" label ", exc_fixup_ip(%%rip)\n\t"
#else
#define ASM_TRY(label) "movl $-1, exc_last\n\t" "movl $" label ", exc_fixup_ip\n\t"
#endif
/* Puts the address of a local asm label into a register operand. */
#ifdef __x86_64__
#define ASM_LABEL_ADDR(label, reg) "lea " label "(%%rip), " reg "\n\t"
#else
#define ASM_LABEL_ADDR(label, reg) "mov $" label ", " reg "\n\t"
#endif
/* ASM_TRY disarm after the guarded code (needed when nothing faulted). */
static inline void exc_disarm(void) { exc_fixup_ip = 0; }
/* Convenience: vector taken by the last ASM_TRY block (disarms it). */
static inline int exc_vector(void) { exc_fixup_ip = 0; return exc_last.vector; }

/* ---------------------------------------------------------------- setjmp */
typedef ulong jmp_buf_t[10];
int rt_setjmp(jmp_buf_t jb) __attribute__((returns_twice));
NORETURN void rt_longjmp(jmp_buf_t jb, int val);

/* ---------------------------------------------------------------- rings */
/* Runs fn(arg) at CPL 3 on the user stack (flat user segments; in 64-bit mode the
 * identity map is user-accessible). Returns fn's return value, which comes back
 * through INT USER_RETURN_VECTOR. flags is the RFLAGS the user code starts with
 * (e.g. BIT(9) for IF, BIT(18) for AC); bit 1 is forced. */
ulong run_user(ulong (*fn)(ulong), ulong arg, ulong flags);
/* Lower level: IRET to cs:ip with ss:sp and flags, di/edi = arg. The code there must end
 * with INT USER_RETURN_VECTOR, the value to return in ax/eax. Use it for other code
 * segments (e.g. a 32-bit compatibility-mode CS in a 64-bit test). */
ulong run_user_raw(ulong ip, ulong arg, ulong flags, u16 cs, u16 ss, ulong sp);
extern u8 user_stack[16384];

/* ---------------------------------------------------------------- serial/printf/report */
void serial_putc(char c);
void serial_puts(const char *s);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
int snprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t n, const char *fmt, va_list ap);

extern unsigned test_passed, test_failed, test_skipped;
/* Prints "PASS msg" or "FAIL msg (file:line)" and counts it. Returns cond. */
bool report(bool cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define TEST_ASSERT(cond, ...) report(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
/* Equality with both values shown on failure. */
#define TEST_EQ(a, b, what)                                                         \
    do {                                                                            \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
        report(a_ == b_, __FILE__, __LINE__, "%s: got %#llx, want %#llx", what, a_, b_); \
    } while (0)
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the summary line and exits: 0 if no check failed, else 1. */
NORETURN void test_done(void);
/* Ends the VM via debug-exit: status (code << 1) | 1. */
NORETURN void guest_exit(int code);
/* The debug-exit port guest_exit writes: 0xf4 unless a test moved the device. */
extern u16 rt_exit_port;
/* Fatal: prints "FAIL msg" and exits with code 0x7e. */
NORETURN void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The test's entry point, and the bitness-independent information from the loader. */
void test_main(void);
extern u32 mb_magic, mb_info;  /* EAX/EBX at entry */
extern u32 rt_want_la57;        /* weak, 0: a 64-bit test may define it as 1 */
extern u32 rt_paging_levels;    /* 0 (32-bit tests), 4 or 5 */
extern u8 __image_start[], __image_end[];
/* The multiboot command line ("" if none); the runner passes "cpu=SPEC" there for runs
 * with a cpu= option. rt_cmdline_value copies the value of the first word "key=value"
 * into buf (truncated to n-1 characters) and returns whether there is one. */
const char *rt_cmdline(void);
bool rt_cmdline_value(const char *key, char *buf, size_t n);

/* ---------------------------------------------------------------- CPU access */
static inline void outb(u16 port, u8 v) { asm volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { asm volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { asm volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

struct cpuid_regs { u32 a, b, c, d; };
static inline struct cpuid_regs cpuid2(u32 leaf, u32 sub)
{
    struct cpuid_regs r;
    asm volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(sub));
    return r;
}
static inline struct cpuid_regs cpuid(u32 leaf) { return cpuid2(leaf, 0); }
/* Feature test: leaf, subleaf, register index (0=eax..3=edx), bit. Checks the max leaf. */
bool cpu_has(u32 leaf, u32 sub, int reg, int bit);
/* True on QEMU's TCG (hypervisor signature "TCGTCGTCGTCG"): tests use it only to skip,
 * with a message, checks where QEMU is known to differ from the SDM/APM. */
bool on_qemu_tcg(void);
#define HAS_PSE() cpu_has(1, 0, 3, 3)
#define HAS_PAE() cpu_has(1, 0, 3, 6)
#define HAS_APIC() cpu_has(1, 0, 3, 9)
#define HAS_SEP() cpu_has(1, 0, 3, 11)
#define HAS_PGE() cpu_has(1, 0, 3, 13)
#define HAS_FXSR() cpu_has(1, 0, 3, 24)
#define HAS_SSE2() cpu_has(1, 0, 3, 26)
#define HAS_CX16() cpu_has(1, 0, 2, 13)
#define HAS_PCID() cpu_has(1, 0, 2, 17)
#define HAS_X2APIC() cpu_has(1, 0, 2, 21)
#define HAS_TSC_DEADLINE() cpu_has(1, 0, 2, 24)
#define HAS_XSAVE() cpu_has(1, 0, 2, 26)
#define HAS_FSGSBASE() cpu_has(7, 0, 1, 0)
#define HAS_SMEP() cpu_has(7, 0, 1, 7)
#define HAS_INVPCID() cpu_has(7, 0, 1, 10)
#define HAS_SMAP() cpu_has(7, 0, 1, 20)
#define HAS_LA57() cpu_has(7, 0, 2, 16)
#define HAS_RDPID() cpu_has(7, 0, 2, 22)
#define HAS_SYSCALL() cpu_has(0x80000001, 0, 3, 11)
#define HAS_NX() cpu_has(0x80000001, 0, 3, 20)
#define HAS_1G() cpu_has(0x80000001, 0, 3, 26)
#define HAS_RDTSCP() cpu_has(0x80000001, 0, 3, 27)
#define HAS_LM() cpu_has(0x80000001, 0, 3, 29)

static inline u64 rdmsr(u32 msr)
{
    u32 lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return lo | ((u64)hi << 32);
}
static inline void wrmsr(u32 msr, u64 v)
{
    asm volatile("wrmsr" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}
/* rdmsr/wrmsr that report a #GP instead of taking it: return the vector or NO_EXCEPTION */
int rdmsr_safe(u32 msr, u64 *v);
int wrmsr_safe(u32 msr, u64 v);

/* Register-width accesses that may fault: the vector taken (NO_EXCEPTION if none; the
 * details in exc_last). try_exec calls the code at va, which must return. */
int try_read(ulong va, ulong *out);
int try_write(ulong va, ulong v);
int try_exec(ulong va);
/* Writes "mov $v, %eax; ret" at p (self-modifying code tests). */
void emit_mov_ret(volatile u8 *p, u32 v);
static inline u64 rdtsc(void)
{
    u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return lo | ((u64)hi << 32);
}

#define DEF_CR(n)                                                                   \
    static inline ulong read_cr##n(void) { ulong v; asm volatile("mov %%cr" #n ", %0" : "=r"(v)); return v; } \
    static inline void write_cr##n(ulong v) { asm volatile("mov %0, %%cr" #n ::"r"(v) : "memory"); }
DEF_CR(0)
DEF_CR(2)
DEF_CR(3)
DEF_CR(4)
#define DEF_DR(n)                                                                   \
    static inline ulong read_dr##n(void) { ulong v; asm volatile("mov %%dr" #n ", %0" : "=r"(v)); return v; } \
    static inline void write_dr##n(ulong v) { asm volatile("mov %0, %%dr" #n ::"r"(v) : "memory"); }
DEF_DR(0)
DEF_DR(1)
DEF_DR(2)
DEF_DR(3)
DEF_DR(6)
DEF_DR(7)
/* A raw Xen hypercall with up to three arguments, VMCALL (or VMMCALL with amd), in the
 * current mode's convention: RDI, RSI, RDX in 64-bit code, EBX, ECX, EDX in 32-bit code. */
static inline long xen_hypercall3(bool amd, ulong nr, ulong a1, ulong a2, ulong a3)
{
    long r;
#ifdef __x86_64__
    if (amd)
        asm volatile("vmmcall" : "=a"(r) : "a"(nr), "D"(a1), "S"(a2), "d"(a3) : "memory");
    else
        asm volatile("vmcall" : "=a"(r) : "a"(nr), "D"(a1), "S"(a2), "d"(a3) : "memory");
#else
    if (amd)
        asm volatile("vmmcall" : "=a"(r) : "a"(nr), "b"(a1), "c"(a2), "d"(a3) : "memory");
    else
        asm volatile("vmcall" : "=a"(r) : "a"(nr), "b"(a1), "c"(a2), "d"(a3) : "memory");
#endif
    return r;
}

/* The same with five arguments: R10 and R8 (64-bit), ESI and EDI (32-bit) after the
 * first three. */
static inline long xen_hypercall5(bool amd, ulong nr, ulong a1, ulong a2, ulong a3, ulong a4,
                                  ulong a5)
{
    long r;
#ifdef __x86_64__
    register ulong r10 asm("r10") = a4;
    register ulong r8 asm("r8") = a5;
    if (amd)
        asm volatile("vmmcall" : "=a"(r) : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8) : "memory");
    else
        asm volatile("vmcall" : "=a"(r) : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8) : "memory");
#else
    if (amd)
        asm volatile("vmmcall" : "=a"(r) : "a"(nr), "b"(a1), "c"(a2), "d"(a3), "S"(a4), "D"(a5) : "memory");
    else
        asm volatile("vmcall" : "=a"(r) : "a"(nr), "b"(a1), "c"(a2), "d"(a3), "S"(a4), "D"(a5) : "memory");
#endif
    return r;
}

/* The start of a -xen test: true when Xen's interface is there (the runner passes
 * "xen=..." and CPUID 40000000h says "XenVMMXenVMM"), *amd (unless NULL) then telling
 * xen_hypercall3 which instruction to use. On QEMU TCG, which has no Xen interface, the
 * test is skipped (false); anywhere else a missing interface is a panic. */
bool xen_test_start(bool *amd);

/* DR6 status and DR7 control bits (SDM Vol. 3B 18.2) */
#define DR6_B(n) BIT(n)
#define DR6_BD BIT(13)
#define DR6_BS BIT(14)
#define DR6_RESET 0xffff0ff0ul
#define DR7_L(n) BIT(2 * (n))
#define DR7_RW(n, rw) ((ulong)(rw) << (16 + 4 * (n)))
#define DR7_LEN(n, len) ((ulong)(len) << (18 + 4 * (n)))
#define DR7_GD BIT(13)
static inline u64 read_xcr0(void) { u32 lo, hi; asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0)); return lo | ((u64)hi << 32); }
static inline void write_xcr0(u64 v) { asm volatile("xsetbv" ::"c"(0), "a"((u32)v), "d"((u32)(v >> 32))); }
static inline ulong read_flags(void) { ulong f; asm volatile("pushf; pop %0" : "=r"(f)); return f; }
static inline void write_flags(ulong f) { asm volatile("push %0; popf" ::"r"(f) : "memory", "cc"); }
static inline void cli(void) { asm volatile("cli" ::: "memory"); }
static inline void sti(void) { asm volatile("sti" ::: "memory"); }
static inline void invlpg(ulong va) { asm volatile("invlpg (%0)" ::"r"(va) : "memory"); }
static inline u16 read_cs(void) { u16 v; asm volatile("mov %%cs, %0" : "=r"(v)); return v; }
static inline u16 read_ss(void) { u16 v; asm volatile("mov %%ss, %0" : "=r"(v)); return v; }
static inline u16 read_ds(void) { u16 v; asm volatile("mov %%ds, %0" : "=r"(v)); return v; }
static inline u16 read_tr(void) { u16 v; asm volatile("str %0" : "=r"(v)); return v; }
static inline void pause(void) { asm volatile("pause" ::: "memory"); }

#define CR0_PE BIT(0)
#define CR0_MP BIT(1)
#define CR0_EM BIT(2)
#define CR0_TS BIT(3)
#define CR0_NE BIT(5)
#define CR0_WP BIT(16)
#define CR0_AM BIT(18)
#define CR0_PG BIT(31)
#define CR4_DE BIT(3)
#define CR4_PSE BIT(4)
#define CR4_PAE BIT(5)
#define CR4_PGE BIT(7)
#define CR4_OSFXSR BIT(9)
#define CR4_OSXMMEXCPT BIT(10)
#define CR4_LA57 BIT(12)
#define CR4_FSGSBASE BIT(16)
#define CR4_PCIDE BIT(17)
#define CR4_OSXSAVE BIT(18)
#define CR4_SMEP BIT(20)
#define CR4_SMAP BIT(21)
#define FL_CF BIT(0)
#define FL_ZF BIT(6)
#define FL_TF BIT(8)
#define FL_IF BIT(9)
#define FL_DF BIT(10)
#define FL_OF BIT(11)
#define FL_RF BIT(16)
#define FL_AC BIT(18)

#define MSR_APIC_BASE 0x1b
#define MSR_TSC_DEADLINE 0x6e0
#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define MSR_EFER 0xc0000080
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_FMASK 0xc0000084
#define MSR_FS_BASE 0xc0000100
#define MSR_GS_BASE 0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_TSC_AUX 0xc0000103
#define EFER_SCE BIT(0)
#define EFER_LME BIT(8)
#define EFER_LMA BIT(10)
#define EFER_NXE BIT(11)

/* ---------------------------------------------------------------- paging */
enum pt_format { PT_32BIT, PT_PAE, PT_4LEVEL, PT_5LEVEL };
#define PTE_P BIT(0)
#define PTE_W BIT(1)
#define PTE_U BIT(2)
#define PTE_PWT BIT(3)
#define PTE_PCD BIT(4)
#define PTE_A BIT(5)
#define PTE_D BIT(6)
#define PTE_PS BIT(7)
#define PTE_G BIT(8)
#define PTE_NX BIT(63)
#define PFEC_P BIT(0)
#define PFEC_W BIT(1)
#define PFEC_U BIT(2)
#define PFEC_RSVD BIT(3)
#define PFEC_I BIT(4)

struct page_table {
    enum pt_format format;
    u64 root; /* physical address of the top-level table (CR3 without flags) */
};
/* 4 KiB pages from a pool in the image (physical == virtual: identity-mapped). Zeroed. */
void *page_alloc(void);
/* Creates an empty table of the given format. */
void pt_init(struct page_table *pt, enum pt_format format);
/* Maps [va, va+size) to pa with pages of page_size (4K, 2M/4M, 1G) and the given leaf
 * flags (PTE_P is implied; PTE_PS is set for large pages). Intermediate entries get
 * P|W|U (and are not NX) so that the leaf flags decide. */
void pt_map(struct page_table *pt, u64 va, u64 pa, u64 size, u64 page_size, u64 flags);
/* Identity-maps the first 4 GiB (1 GiB for 32-bit paging... see pt.c) with big pages. */
void pt_map_identity(struct page_table *pt, u64 flags);
/* Pointer to the entry that maps va at the given level (1 = PTE, 2 = PDE, ...), NULL if
 * the walk does not reach that level. Entries are u32 in 32-bit paging, else u64: the
 * helpers below hide that. */
void *pt_entry(struct page_table *pt, u64 va, int level);
/* The leaf entry mapping va and its level (returns NULL if not mapped). */
void *pt_leaf(struct page_table *pt, u64 va, int *level);
u64 pte_get(struct page_table *pt, void *e);
void pte_set(struct page_table *pt, void *e, u64 v);
/* Number of levels of a format. */
int pt_levels(enum pt_format f);
/* Loads pt into CR3 (flags: PCID etc.). In a 32-bit test, also enables paging with the
 * CR4 bits the format needs (PSE / PAE). The 64-bit tests are in long mode already: only
 * PT_4LEVEL or PT_5LEVEL matching rt_paging_levels may be loaded. */
void pt_activate(struct page_table *pt, ulong cr3_flags);
/* The runtime's own 64-bit identity map. */
extern struct page_table rt_boot_pt;
/* 32-bit tests: turns paging off again (CR0.PG=0, CR4.PAE/PSE cleared). */
void paging_off(void);

/* ---------------------------------------------------------------- LAPIC */
#define APIC_DEFAULT_BASE 0xfee00000u
enum {
    APIC_ID = 0x20, APIC_LVR = 0x30, APIC_TPR = 0x80, APIC_EOI = 0xb0, APIC_LDR = 0xd0,
    APIC_DFR = 0xe0, APIC_SVR = 0xf0, APIC_ISR = 0x100, APIC_TMR = 0x180, APIC_IRR = 0x200,
    APIC_ESR = 0x280, APIC_ICR = 0x300, APIC_ICR2 = 0x310, APIC_LVTT = 0x320,
    APIC_LVT_THERMAL = 0x330, APIC_LVT_PMC = 0x340, APIC_LVT0 = 0x350, APIC_LVT1 = 0x360,
    APIC_LVTERR = 0x370, APIC_TMICT = 0x380, APIC_TMCCT = 0x390, APIC_TDCR = 0x3e0,
    APIC_SELF_IPI = 0x3f0,
};
#define APIC_LVT_MASKED BIT(16)
#define APIC_TIMER_PERIODIC (1u << 17)
#define APIC_TIMER_DEADLINE (2u << 17)
#define APIC_ICR_INIT 0x500
#define APIC_ICR_STARTUP 0x600
#define APIC_ICR_NMI 0x400
#define APIC_ICR_ASSERT 0x4000
#define APIC_ICR_LEVEL 0x8000
#define APIC_ICR_BUSY 0x1000
#define APIC_DEST_SELF (1u << 18)
#define APIC_DEST_ALL (2u << 18)
#define APIC_DEST_OTHERS (3u << 18)

extern bool apic_x2;  /* accessors use x2APIC MSRs when set */
void apic_enable(void);          /* software-enable (SVR) in xAPIC mode, spurious 0xff */
bool apic_enable_x2(void);       /* switch to x2APIC; false if unsupported */
void apic_disable_x2(void);      /* back to xAPIC (via disabled state, as the SDM requires) */
u32 apic_read(u32 reg);
void apic_write(u32 reg, u32 v);
void apic_icr(u32 dest, u32 lo); /* sends an IPI and waits for delivery */
u32 apic_id(void);
void apic_eoi(void);

/* ---------------------------------------------------------------- time */
/* TSC ticks per microsecond, from CPUID 0x15/0x16/0x40000010, else 1000 (1 GHz). */
u64 tsc_per_us(void);
void udelay(u64 us);

/* ---------------------------------------------------------------- SMP */
#define MAX_CPUS 16
/* Starts the APs with INIT-SIPI-SIPI; each runs ap_main(cpu_index) on its own stack in
 * the BSP's mode (with the BSP's GDT/IDT and, in 64-bit tests, page tables); cpu_index
 * counts from 1 in the order the APs arrive. Waits until expected_aps have reported in
 * or timeout_us passed; returns how many did. The trampoline lives at 0x8000. */
int smp_start(void (*ap_main)(int index), int expected_aps, u64 timeout_us);
extern volatile int smp_cpus_up; /* APs that reached ap_main */
typedef struct { volatile u32 v; } spinlock_t;
void spin_lock(spinlock_t *l);
void spin_unlock(spinlock_t *l);

/* ---------------------------------------------------------------- platform */
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_ID 0x01
#define FW_CFG_RAM_SIZE 0x03
#define FW_CFG_NB_CPUS 0x05
#define FW_CFG_MAX_CPUS 0x0f
#define FW_CFG_FILE_DIR 0x19
void fwcfg_select(u16 key);
void fwcfg_read(void *buf, u32 len);
/* Finds a fw_cfg file by name: its selector and size, or false. */
bool fwcfg_find_file(const char *name, u16 *select, u32 *size);
/* RAM size: fw_cfg key 0x03, falling back to e820. 0 if fw_cfg is absent. */
u64 fwcfg_ram_size(void);
bool fwcfg_present(void);

struct acpi_header {
    char signature[4];
    u32 length;
    u8 revision, checksum;
    char oem_id[6], oem_table_id[8];
    u32 oem_revision, creator_id, creator_revision;
} __attribute__((packed));
/* RSDP in 0xE0000-0xFFFFF (checksum verified), or NULL. */
const void *acpi_find_rsdp(void);
/* After a wake from ACPI S3, once the test is back in the runtime's mode, GDT and page
 * tables: the serial port, PIC, TSS, IDT and FPU set-up of rt_start again. */
void rt_reinit_cpu(void);
/* A table by signature via the XSDT (or RSDT), checksum verified, or NULL. */
const struct acpi_header *acpi_find_table(const char *sig);
u8 acpi_checksum(const void *p, u32 len);

/* ---------------------------------------------------------------- libc bits */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
/* 64-by-32 division that 32-bit code can use without libgcc. */
u64 udiv64(u64 n, u32 d, u32 *rem);

#endif

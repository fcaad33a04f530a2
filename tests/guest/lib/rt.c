/* Runtime core: start-up after the entry stub, descriptor tables, exception dispatch,
 * exception catching and ring-3 entry. */
#include "rt.h"

u32 rt_want_la57 __attribute__((weak)) = 0;

u8 boot_stack[16384] ALIGNED(16);
u8 kernel_stack[16384] ALIGNED(16);
u8 user_stack[16384] ALIGNED(16);
u8 ist_stacks[8][4096] ALIGNED(16);
/* Page-table pages of the boot identity map (64-bit tests). */
u64 boot_pml5[512] ALIGNED(4096);
u64 boot_pml4[512] ALIGNED(4096);
u64 boot_pdpt[512] ALIGNED(4096);
u64 boot_pd[4 * 512] ALIGNED(4096);
struct page_table rt_boot_pt;

struct tss tss ALIGNED(16);
static u64 idt[256 * (sizeof(ulong) / 4)] ALIGNED(16);
static struct desc_ptr idt_desc;
static exc_handler_t handlers[256];

volatile struct exc_record exc_last;
volatile ulong exc_fixup_ip;
static ulong *catch_jb; /* innermost exc_catch, or NULL */

ulong user_fn; /* read by rt_enter_user */
static ulong *user_jb;
static ulong user_ret;

void rt_enter_user(ulong ip, ulong arg, ulong flags, ulong cs, ulong ss, ulong sp);
extern u8 user_trampoline[];
void serial_init(void);
void smp_ap_init_cpu(void);

/* ---------------------------------------------------------------- descriptors */
void gdt_set(int index, u32 base, u32 limit, u8 access, u8 flags)
{
    gdt[index] = (limit & 0xffff) | ((u64)(base & 0xffffff) << 16) | ((u64)access << 40) |
                 ((u64)((limit >> 16) & 0xf) << 48) | ((u64)(flags & 0xf) << 52) |
                 ((u64)(base >> 24) << 56);
}

static u64 gate_low(u16 sel, ulong offset, u8 type, int dpl, int ist_or_params)
{
    return (offset & 0xffff) | ((u64)sel << 16) | ((u64)(ist_or_params & 0xff) << 32) |
           ((u64)(0x80 | (dpl << 5) | type) << 40) | ((u64)((offset >> 16) & 0xffff) << 48);
}

void gdt_set_gate(int index, u16 sel, ulong offset, u8 type, int dpl, int param_count)
{
    gdt[index] = gate_low(sel, offset, type, dpl, param_count & 0x1f);
#ifdef __x86_64__
    gdt[index + 1] = (u64)offset >> 32;
#endif
}

void idt_set_gate(int vector, u16 sel, ulong offset, u8 type, int dpl, int ist)
{
#ifdef __x86_64__
    idt[vector * 2] = gate_low(sel, offset, type, dpl, ist & 7);
    idt[vector * 2 + 1] = (u64)offset >> 32;
#else
    (void)ist;
    idt[vector] = gate_low(sel, offset, type, dpl, 0);
#endif
}

void idt_reset_gate(int vector)
{
    int dpl = (vector == BP_VECTOR || vector == OF_VECTOR || vector == USER_RETURN_VECTOR) ? 3 : 0;
    int ist = 0;
#ifdef __x86_64__
    if (vector == DF_VECTOR)
        ist = IST_DF;
    if (vector == NMI_VECTOR)
        ist = IST_NMI;
#endif
    idt_set_gate(vector, SEL_KCODE, (ulong)idt_stub_table[vector], 0xe, dpl, ist);
}

static void tss_init(void)
{
    memset(&tss, 0, sizeof(tss));
#ifdef __x86_64__
    tss.rsp[0] = (ulong)kernel_stack + sizeof(kernel_stack);
    for (int i = 1; i < 8; i++)
        tss.ist[i] = (ulong)ist_stacks[i] + sizeof(ist_stacks[i]);
    tss.iomap_base = sizeof(tss);
    gdt_set(SEL_TSS >> 3, (u32)(ulong)&tss, sizeof(tss) - 1, 0x89, 0);
    gdt[(SEL_TSS >> 3) + 1] = (u64)(ulong)&tss >> 32;
#else
    tss.esp0 = (ulong)kernel_stack + sizeof(kernel_stack);
    tss.ss0 = SEL_KDATA;
    tss.trap_iomap = (u32)sizeof(tss) << 16;
    gdt_set(SEL_TSS >> 3, (u32)(ulong)&tss, sizeof(tss) - 1, 0x89, 0);
#endif
    asm volatile("ltr %w0" ::"r"(SEL_TSS));
}

static void idt_load(void)
{
    asm volatile("lidt %0" ::"m"(idt_desc));
}

/* The FPU/SSE are usable by tests (CR0.MP, CR0.NE, CR4.OSFXSR/OSXMMEXCPT, no EM/TS). */
static void fpu_enable(void)
{
    write_cr0((read_cr0() & ~(CR0_EM | CR0_TS)) | CR0_MP | CR0_NE);
    if (HAS_FXSR())
        write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
    asm volatile("fninit");
}

/* The firmware leaves the 8259 PICs mapping IRQ0-7 onto vectors 8-15 (the exception
 * vectors): remap them to 0x20-0x2f and mask every line, so that only the LAPIC
 * interrupts the tests ask for arrive. */
static void pic_quiesce(void)
{
    static const u8 init[][2] = {
        {0x20, 0x11}, {0xa0, 0x11}, /* ICW1: edge, cascade, ICW4 follows */
        {0x21, 0x20}, {0xa1, 0x28}, /* ICW2: vector bases */
        {0x21, 0x04}, {0xa1, 0x02}, /* ICW3: slave on IRQ2 */
        {0x21, 0x01}, {0xa1, 0x01}, /* ICW4: 8086 mode */
        {0x21, 0xff}, {0xa1, 0xff}, /* OCW1: mask all */
    };
    for (unsigned i = 0; i < ARRAY_SIZE(init); i++)
        outb(init[i][0], init[i][1]);
}

static void user_return(struct exc_frame *f)
{
    user_ret = f->ax;
    rt_longjmp(user_jb, 1);
}

void rt_start(void)
{
    serial_init();
    serial_puts("\n"); /* firmware output may have left a partial line */
    pic_quiesce();
    tss_init();
    for (int v = 0; v < 256; v++)
        idt_reset_gate(v);
    idt_desc.limit = sizeof(idt) - 1;
    idt_desc.base = (ulong)idt;
    idt_load();
    exc_set_handler(USER_RETURN_VECTOR, user_return);
    exc_clear();
    fpu_enable();
#ifdef __x86_64__
    rt_boot_pt.format = rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL;
    rt_boot_pt.root = rt_paging_levels == 5 ? (ulong)boot_pml5 : (ulong)boot_pml4;
#endif
    test_main();
    test_done();
}

/* After the boot CPU went through RESET (a wake from ACPI S3) and the test brought it
 * back into the runtime's mode, GDT and page tables: what rt_start set up again. */
void rt_reinit_cpu(void)
{
    serial_init();
    pic_quiesce();
    tss_init();
    idt_load();
    fpu_enable();
}

/* Per-AP set-up (called by smp.c on each AP before its ap_main). */
void smp_ap_init_cpu(void)
{
    idt_load();
    fpu_enable();
}

/* ---------------------------------------------------------------- exceptions */
void exc_clear(void)
{
    exc_last.vector = NO_EXCEPTION;
    exc_last.error = exc_last.ip = exc_last.cs = exc_last.cr2 = exc_last.flags = 0;
    exc_last.dr6 = 0;
    exc_last.count = 0;
}

void exc_set_handler(int vector, exc_handler_t h)
{
    handlers[vector & 0xff] = h;
}

static const char *const exc_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#09", "#TS", "#NP",
    "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void exc_dispatch(struct exc_frame *f)
{
    int v = (int)f->vector;
    if (handlers[v]) {
        handlers[v](f);
        return;
    }
    exc_last.vector = v;
    exc_last.error = f->error;
    exc_last.ip = f->ip;
    exc_last.cs = f->cs;
    exc_last.flags = f->flags;
    exc_last.cr2 = v == PF_VECTOR ? read_cr2() : 0;
    exc_last.dr6 = v == DB_VECTOR ? read_dr6() : 0;
    exc_last.count++;
    if (exc_fixup_ip) {
        f->ip = exc_fixup_ip;
        exc_fixup_ip = 0;
        return;
    }
    if (catch_jb)
        rt_longjmp(catch_jb, 1);
    const char *name = v < 32 && exc_names[v] ? exc_names[v] : "interrupt";
    panic("unexpected %s (vector %d) error %#lx at %#lx:%#lx flags %#lx cr2 %#lx", name, v,
          f->error, f->cs, f->ip, f->flags, exc_last.cr2);
}

int exc_catch(void (*fn)(void *), void *arg)
{
    jmp_buf_t jb;
    ulong *outer = catch_jb;
    exc_last.vector = NO_EXCEPTION;
    if (rt_setjmp(jb) == 0) {
        catch_jb = jb;
        fn(arg);
        catch_jb = outer;
        return NO_EXCEPTION;
    }
    catch_jb = outer;
    return exc_last.vector;
}

/* ---------------------------------------------------------------- rings */
ulong run_user_raw(ulong ip, ulong arg, ulong flags, u16 cs, u16 ss, ulong sp)
{
    jmp_buf_t jb;
    ulong *outer = user_jb;
    if (rt_setjmp(jb) == 0) {
        user_jb = jb;
        rt_enter_user(ip, arg, flags | 2, cs, ss, sp);
    }
    user_jb = outer;
    return user_ret;
}

ulong run_user(ulong (*fn)(ulong), ulong arg, ulong flags)
{
    user_fn = (ulong)fn;
    return run_user_raw((ulong)user_trampoline, arg, flags, SEL_UCODE, SEL_UDATA,
                        (ulong)user_stack + sizeof(user_stack));
}

/* ---------------------------------------------------------------- MSR/CPUID helpers */
int rdmsr_safe(u32 msr, u64 *v)
{
    u32 lo = 0, hi = 0;
    asm volatile(ASM_TRY("1f") "rdmsr\n1:" : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
    *v = lo | ((u64)hi << 32);
    return exc_vector();
}

int wrmsr_safe(u32 msr, u64 v)
{
    asm volatile(ASM_TRY("1f") "wrmsr\n1:" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32))
                 : "memory");
    return exc_vector();
}

/* ---------------------------------------------------------------- guarded accesses */
int try_read(ulong va, ulong *out)
{
    ulong v = 0;
    asm volatile(ASM_TRY("1f") "mov (%1), %0\n1:" : "+r"(v) : "r"(va) : "memory");
    if (out)
        *out = v;
    return exc_vector();
}

int try_write(ulong va, ulong v)
{
    asm volatile(ASM_TRY("1f") "mov %1, (%0)\n1:" ::"r"(va), "r"(v) : "memory");
    return exc_vector();
}

/* A fault inside the callee resumes at the label with the callee's stack: the stack
 * pointer is restored from a register the call does not touch. */
int try_exec(ulong va)
{
#ifdef __x86_64__
    asm volatile(ASM_TRY("1f") "mov %%rsp, %%r11\n\tcall *%0\n1:\tmov %%r11, %%rsp"
                 ::"r"(va) : "r11", "rax", "memory");
#else
    asm volatile(ASM_TRY("1f") "mov %%esp, %%esi\n\tcall *%0\n1:\tmov %%esi, %%esp"
                 ::"r"(va) : "esi", "eax", "memory");
#endif
    return exc_vector();
}

void emit_mov_ret(volatile u8 *p, u32 v)
{
    p[0] = 0xb8;
    p[1] = (u8)v;
    p[2] = (u8)(v >> 8);
    p[3] = (u8)(v >> 16);
    p[4] = (u8)(v >> 24);
    p[5] = 0xc3;
}

bool cpu_has(u32 leaf, u32 sub, int reg, int bit)
{
    u32 max = cpuid(leaf & 0xffff0000u).a;
    if (max < leaf)
        return false;
    struct cpuid_regs r = cpuid2(leaf, sub);
    u32 v = reg == 0 ? r.a : reg == 1 ? r.b : reg == 2 ? r.c : r.d;
    return (v >> bit) & 1;
}

/* Clears the present bit of a gate (tests of #NP on delivery and #DF). */
void idt_clear_present(int vector)
{
    idt[vector * (sizeof(ulong) / 4)] &= ~BIT(47);
}

bool on_qemu_tcg(void)
{
    if (!cpu_has(1, 0, 2, 31))
        return false;
    struct cpuid_regs r = cpuid(0x40000000);
    return !memcmp(&r.b, "TCGT", 4) && !memcmp(&r.c, "CGTC", 4) && !memcmp(&r.d, "GTCG", 4);
}

bool xen_test_start(bool *amd)
{
    char spec[64];
    /* "XenV" of "XenVMMXenVMM" in EBX */
    if (!rt_cmdline_value("xen", spec, sizeof(spec)) || cpuid(0x40000000).b != 0x566e6558u) {
        if (on_qemu_tcg()) {
            test_skip("QEMU TCG has no Xen interface");
            return false;
        }
        panic("no Xen signature at 40000000h");
    }
    if (amd)
        *amd = cpuid(0).b == 0x68747541; /* "Auth" */
    return true;
}

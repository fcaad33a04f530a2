/* Canonical checks that do not depend on the paging mode. On a processor with 5-level
 * paging, the bases loaded by LGDT, LIDT, LLDT and LTR, INVPCID's address, the FS/GS
 * bases written by WRFSBASE/WRGSBASE and the MSRs holding linear addresses are checked
 * against the processor's linear-address width (57 bits), even under 4-level paging;
 * without LA57 against 48 bits. Addresses about to be used (a memory operand through
 * FS) are still checked against the current paging mode (48 bits here: the kernel runs
 * with 4-level paging).
 * QEMU TCG does not check these bases for canonical form at all: the checks that expect
 * a #GP are skipped there.
 * guest: cpu=max name=canonical */
/* guest: cpu=max,-la57 name=canonical-48 */
#include "rt.h"

#define A57 0x0000800000000000ull /* canonical in 57 bits, not in 48 */
#define ANC 0x0100000000000000ull /* canonical in neither */
#define CR4_FSGSBASE BIT(16)
#define LDT_INDEX GDT_FIRST_FREE
#define TSS_INDEX (GDT_FIRST_FREE + 2)

static bool la57;

/* The expected outcome of loading address a into a register checked at 57 bits with
 * LA57 in the model, else at 48. */
static bool canonical(u64 a, int bits)
{
    return (u64)((s64)(a << (64 - bits)) >> (64 - bits)) == a;
}
static int expected(u64 a)
{
    return canonical(a, la57 ? 57 : 48) ? NO_EXCEPTION : GP_VECTOR;
}

static void check(int got, u64 a, const char *what)
{
    int want = expected(a);
    if (want != NO_EXCEPTION && on_qemu_tcg()) {
        test_skip("%s %llx: QEMU TCG does not check it for canonical form", what,
                  (unsigned long long)a);
        return;
    }
    TEST_ASSERT(got == want, "%s with base %llx: vector %d (expected %d)", what,
                (unsigned long long)a, got, want);
}

static int load_dtr(bool idt, u64 base, u64 *readback)
{
    struct desc_ptr old, nw = { 0xfff, base }, now = { 0, 0 };
    ulong fl = read_flags();
    cli();
    if (idt) {
        asm volatile("sidt %0" : "=m"(old));
        asm volatile(ASM_TRY("1f") "lidt %1\n\t" "sidt %0\n1:" : "=m"(now) : "m"(nw) : "memory");
    } else {
        asm volatile("sgdt %0" : "=m"(old));
        asm volatile(ASM_TRY("1f") "lgdt %1\n\t" "sgdt %0\n1:" : "=m"(now) : "m"(nw) : "memory");
    }
    int v = exc_vector();
    if (idt)
        asm volatile("lidt %0" ::"m"(old));
    else
        asm volatile("lgdt %0" ::"m"(old));
    write_flags(fl);
    *readback = now.base;
    return v;
}

/* A 16-byte system descriptor (type 2 LDT, 9 available TSS) at gdt[index]. */
static void system_desc(int index, u64 base, u8 type)
{
    gdt_set(index, (u32)base, 0xfff, (u8)(0x80 | type), 0);
    gdt[index + 1] = base >> 32;
}

static int lldt(u64 base)
{
    system_desc(LDT_INDEX, base, 0x2);
    u16 sel = LDT_INDEX * 8;
    asm volatile(ASM_TRY("1f") "lldt %0\n1:" ::"r"(sel) : "memory");
    int v = exc_vector();
    if (v == GP_VECTOR)
        TEST_EQ(exc_last.error, sel, "LLDT #GP carries the selector");
    asm volatile("lldt %0" ::"r"((u16)0));
    return v;
}

static int ltr(u64 base)
{
    system_desc(TSS_INDEX, base, 0x9);
    u16 sel = TSS_INDEX * 8;
    asm volatile(ASM_TRY("1f") "ltr %0\n1:" ::"r"(sel) : "memory");
    int v = exc_vector();
    if (v == GP_VECTOR)
        TEST_EQ(exc_last.error, sel, "LTR #GP carries the selector");
    if (v == NO_EXCEPTION) {
        /* back to the runtime's TSS: clear its busy bit (type 0xb -> 0x9) first */
        gdt[SEL_TSS / 8] &= ~BIT(41);
        asm volatile("ltr %0" ::"r"((u16)SEL_TSS));
    }
    return v;
}

static int invpcid0(u64 addr)
{
    struct { u64 pcid, addr; } desc = { 0, addr };
    asm volatile(ASM_TRY("1f") "invpcid %0, %1\n1:" ::"m"(desc), "r"(0ul) : "memory");
    return exc_vector();
}

static int wrfsbase(u64 v)
{
    u64 old = rdmsr(MSR_FS_BASE);
    asm volatile(ASM_TRY("1f") "wrfsbase %0\n1:" ::"r"(v) : "memory");
    int r = exc_vector();
    if (r == NO_EXCEPTION)
        TEST_EQ(rdmsr(MSR_FS_BASE), v, "WRFSBASE stores the base");
    wrmsr(MSR_FS_BASE, old);
    return r;
}

static int wrgsbase(u64 v)
{
    u64 old;
    asm volatile("rdgsbase %0" : "=r"(old));
    asm volatile(ASM_TRY("1f") "wrgsbase %0\n1:" ::"r"(v) : "memory");
    int r = exc_vector();
    asm volatile("wrgsbase %0" ::"r"(old));
    return r;
}

static int wrmsr_restore(u32 msr, u64 v)
{
    u64 old = rdmsr(msr);
    int r = wrmsr_safe(msr, v);
    if (r == NO_EXCEPTION)
        TEST_EQ(rdmsr(msr), v, "the MSR keeps the address");
    wrmsr(msr, old);
    return r;
}

static bool mentions(const char *s, const char *word)
{
    for (size_t n = strlen(word); *s; s++)
        if (strncmp(s, word, n) == 0)
            return true;
    return false;
}

void test_main(void)
{
    la57 = HAS_LA57();
    char spec[128];
    if (rt_cmdline_value("cpu", spec, sizeof(spec)))
        TEST_EQ(la57, !mentions(spec, "-la57"), "CPUID.7:ECX.LA57 follows -cpu");
    TEST_ASSERT(!(read_cr4() & BIT(12)), "the kernel runs with 4-level paging");

    static const u64 addrs[] = { A57, ANC, 0xffff800000000000ull, 0xff00000000000000ull };
    for (unsigned k = 0; k < ARRAY_SIZE(addrs); k++) {
        u64 a = addrs[k], rb = 0;
        int v = load_dtr(false, a, &rb);
        check(v, a, "LGDT");
        if (v == NO_EXCEPTION)
            TEST_EQ(rb, a, "SGDT returns the base LGDT loaded");
        v = load_dtr(true, a, &rb);
        check(v, a, "LIDT");
        if (v == NO_EXCEPTION)
            TEST_EQ(rb, a, "SIDT returns the base LIDT loaded");
        check(lldt(a), a, "LLDT");
        check(ltr(a), a, "LTR");
        if (HAS_INVPCID())
            check(invpcid0(a), a, "INVPCID type 0");
        check(wrmsr_restore(MSR_KERNEL_GS_BASE, a), a, "WRMSR KERNEL_GS_BASE");
        check(wrmsr_restore(MSR_LSTAR, a), a, "WRMSR LSTAR");
        check(wrmsr_restore(MSR_SYSENTER_EIP, a), a, "WRMSR SYSENTER_EIP");
        if (HAS_FSGSBASE()) {
            write_cr4(read_cr4() | CR4_FSGSBASE);
            check(wrfsbase(a), a, "WRFSBASE");
            check(wrgsbase(a), a, "WRGSBASE");
            write_cr4(read_cr4() & ~CR4_FSGSBASE);
        }
    }

    /* A memory operand is checked against the current paging mode: through an FS base
     * that is canonical only in 57 bits, the access is a #GP under 4-level paging. */
    if (la57) {
        u64 old = rdmsr(MSR_FS_BASE);
        wrmsr(MSR_FS_BASE, A57);
        ulong x;
        asm volatile(ASM_TRY("1f") "mov %%fs:0, %0\n1:" : "=r"(x) :: "memory");
        wrmsr(MSR_FS_BASE, old);
        TEST_EQ(exc_vector(), GP_VECTOR, "an access through FS base 2^47 is a #GP under 4-level paging");
    }
}

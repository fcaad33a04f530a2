/* Instruction groups, one smoke check each (the differential tests cover them in
 * depth): string instructions with REP, CMPXCHG8B/16B, multiply/divide, x87, SSE2,
 * FXSAVE/FXRSTOR, XSAVE/XRSTOR, SYSCALL/SYSRET, SWAPGS, FS/GS bases, RDTSCP and RDPID. */
#include "rt.h"

/* The guest code is built with -mgeneral-regs-only: the compiler never keeps values in
 * XMM or x87 registers, so the asm below need not (and cannot) declare them clobbered. */

static void check_strings(void)
{
    static u8 src[64], dst[64];
    for (int i = 0; i < 64; i++)
        src[i] = (u8)(i * 7 + 1);
    u64 n = 64;
    void *d = dst, *s = src;
    asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
    TEST_ASSERT(!memcmp(src, dst, 64) && n == 0 && d == dst + 64, "rep movsb: copies, updates RCX/RDI");
    static u64 q[8];
    n = 8;
    d = q;
    asm volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(0x0123456789abcdefull) : "memory");
    TEST_ASSERT(q[0] == 0x0123456789abcdefull && q[7] == q[0] && n == 0, "rep stosq fills");
    dst[40] ^= 1;
    n = 64;
    d = dst;
    s = src;
    u8 ne;
    asm volatile("repe cmpsb; setne %3" : "+D"(d), "+S"(s), "+c"(n), "=q"(ne) :: "memory", "cc");
    TEST_ASSERT(ne && n == 64 - 41 && s == src + 41, "repe cmpsb stops after the first difference");
    n = 64;
    d = src;
    asm volatile("repne scasb" : "+D"(d), "+c"(n) : "a"(src[10]) : "memory", "cc");
    TEST_EQ((u8 *)d - src, 11, "repne scasb finds the byte");
    /* DF=1: backwards */
    memset(dst, 0, sizeof(dst));
    n = 16;
    d = dst + 15;
    s = src + 15;
    asm volatile("std; rep movsb; cld" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
    TEST_ASSERT(!memcmp(src, dst, 16) && (ulong)d == (ulong)dst - 1, "std; rep movsb copies backwards");
    n = 0;
    d = dst;
    asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(0xff) : "memory");
    TEST_ASSERT(d == dst && dst[0] == src[0], "rep with RCX=0 does nothing");
    u64 lods;
    s = src;
    asm volatile("lodsq" : "=a"(lods), "+S"(s));
    TEST_EQ(lods, *(u64 *)src, "lodsq");
}

static void check_cmpxchg(void)
{
    static u64 pair[2] ALIGNED(16) = {1, 2};
    u64 lo = 1, hi = 2;
    u8 ok;
    asm volatile("lock cmpxchg16b %0; sete %1" : "+m"(pair), "=q"(ok), "+a"(lo), "+d"(hi)
                 : "b"(10ull), "c"(20ull) : "memory", "cc");
    TEST_ASSERT(HAS_CX16() ? (ok && pair[0] == 10 && pair[1] == 20) : true, "cmpxchg16b: equal -> stored");
    lo = 0;
    hi = 0;
    asm volatile("lock cmpxchg16b %0; sete %1" : "+m"(pair), "=q"(ok), "+a"(lo), "+d"(hi)
                 : "b"(1ull), "c"(1ull) : "memory", "cc");
    TEST_ASSERT(!ok && lo == 10 && hi == 20 && pair[0] == 10, "cmpxchg16b: not equal -> loads RDX:RAX");
    static u8 buf[32] ALIGNED(16);
    asm volatile(ASM_TRY("1f") "lock cmpxchg16b 8(%0)\n1:" ::"r"(buf), "a"(0), "d"(0), "b"(0), "c"(0)
                 : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "cmpxchg16b: misaligned operand #GP");
    static u64 q = 5;
    u32 a = 5, dd = 0;
    asm volatile("lock cmpxchg8b %0; sete %1" : "+m"(q), "=q"(ok), "+a"(a), "+d"(dd)
                 : "b"(7), "c"(8) : "memory", "cc");
    TEST_ASSERT(ok && q == 0x0000000800000007ull, "cmpxchg8b");
    u64 x = 3, y = 4;
    asm volatile("lock xaddq %0, %1" : "+r"(y), "+m"(x));
    TEST_ASSERT(x == 7 && y == 3, "lock xadd");
}

static void check_muldiv(void)
{
    u64 hi, lo = 0xffffffffffffffffull;
    asm("mulq %2" : "+a"(lo), "=d"(hi) : "r"(0xffffffffffffffffull) : "cc");
    TEST_ASSERT(lo == 1 && hi == 0xfffffffffffffffeull, "mul: 128-bit product");
    s64 q = -7, r;
    asm("cqo; idivq %2" : "+a"(q), "=&d"(r) : "r"(2ll) : "cc");
    TEST_ASSERT(q == -3 && r == -1, "idiv rounds toward zero");
    u64 d_lo = 0, d_hi = 1, rem;
    asm volatile(ASM_TRY("1f") "divq %2\n1:" : "+a"(d_lo), "+d"(d_hi) : "r"(1ull) : "cc");
    rem = exc_vector();
    TEST_EQ(rem, DE_VECTOR, "div: quotient overflow #DE");
    s64 im = 0;
    asm("imulq $-3, %1, %0" : "=r"(im) : "r"(5ll));
    TEST_EQ(im, (u64)-15, "imul 3-operand");
}

static void check_x87(void)
{
    static const double a = 1.5, b = 2.25;
    s32 out;
    u16 sw;
    asm volatile("fninit\n\tfldl %1\n\tfaddl %2\n\tfmull %2\n\tfistpl %0" /* (1.5+2.25)*2.25 = 8.4375 -> 8 */
                 : "=m"(out) : "m"(a), "m"(b));
    TEST_EQ(out, 8, "x87: fld/fadd/fmul/fistp");
    static const double sixteen = 16.0;
    asm volatile("fldl %1\n\tfsqrt\n\tfistpl %0" : "=m"(out) : "m"(sixteen));
    TEST_EQ(out, 4, "x87: fsqrt");
    asm volatile("fld1\n\tfldz\n\tfcompp\n\tfnstsw %0" : "=m"(sw));
    TEST_ASSERT((sw & 0x4500) == 0x0100, "x87: fcompp 0 < 1 sets C0 (%#x)", sw);
    asm volatile("fldpi\n\tfistpl %0" : "=m"(out));
    TEST_EQ(out, 3, "x87: fldpi rounds to 3");
}

static void check_sse2(void)
{
    static u32 va[4] ALIGNED(16) = {1, 2, 3, 4}, vb[4] ALIGNED(16) = {10, 20, 30, 40}, vr[4] ALIGNED(16);
    asm volatile("movdqa %1, %%xmm0\n\tpaddd %2, %%xmm0\n\tpshufd $0x1b, %%xmm0, %%xmm0\n\tmovdqa %%xmm0, %0"
                 : "=m"(vr) : "m"(va), "m"(vb));
    TEST_ASSERT(vr[0] == 44 && vr[1] == 33 && vr[2] == 22 && vr[3] == 11, "SSE2: paddd, pshufd");
    static const double two = 2.0;
    s64 iout;
    asm volatile("movsd %1, %%xmm1\n\tmulsd %%xmm1, %%xmm1\n\tsqrtsd %%xmm1, %%xmm1\n\tmulsd %%xmm1, %%xmm1\n\tcvttsd2si %%xmm1, %0"
                 : "=r"(iout) : "m"(two));
    TEST_EQ(iout, 4, "SSE2: mulsd, sqrtsd, cvttsd2si");
    u32 mxcsr;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    TEST_EQ(mxcsr & 0xffc0, 0x1f80, "MXCSR default masks");
    static u8 mis[32] ALIGNED(16);
    asm volatile(ASM_TRY("1f") "movdqa 8(%0), %%xmm0\n1:" ::"r"(mis) : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "movdqa: misaligned operand #GP");
    /* PEXTRW has an SSE2 form (66 0F C5) and an SSE4.1 form (66 0F 3A 15) that may
     * store to memory: the latter is #UD without SSE4.1 */
    static u16 words[8] ALIGNED(16) = { 0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666, 0x7777, 0x8888 };
    u32 w = 0;
    asm volatile("movdqa %1, %%xmm2\n\tpextrw $5, %%xmm2, %0" : "=r"(w) : "m"(words));
    TEST_EQ(w, 0x6666, "SSE2: pextrw (66 0F C5) word 5");
    u16 stored = 0;
    asm volatile(ASM_TRY("1f") "movdqa %1, %%xmm2\n\t"
                 ".byte 0x66, 0x0f, 0x3a, 0x15, 0x10, 0x06\n1:" /* pextrw $6, %xmm2, (%rax) */
                 :: "a"(&stored), "m"(words) : "memory");
    int v = exc_vector();
    if (cpu_has(1, 0, 2, 19))
        TEST_ASSERT(v == NO_EXCEPTION && stored == 0x7777,
                    "SSE4.1: pextrw to memory (66 0F 3A 15) stores word 6 (vector %d, %#x)", v, stored);
    else
        TEST_EQ(v, UD_VECTOR, "no SSE4.1: pextrw 66 0F 3A 15 raises #UD");
}

static void check_fxsave_xsave(void)
{
    static u8 area[512] ALIGNED(16), area2[512] ALIGNED(16);
    static u32 pat[4] ALIGNED(16) = {0xdeadbeef, 0x12345678, 0xcafef00d, 0x0badc0de};
    asm volatile("movdqa %0, %%xmm3" ::"m"(pat));
    asm volatile("fxsave %0" : "=m"(area));
    TEST_ASSERT(!memcmp(area + 160 + 3 * 16, pat, 16), "FXSAVE: XMM3 at offset 208");
    TEST_EQ(*(u32 *)(area + 24), 0x1f80, "FXSAVE: MXCSR at offset 24");
    TEST_EQ(*(u16 *)area, 0x037f, "FXSAVE: FCW at offset 0");
    asm volatile("pxor %%xmm3, %%xmm3" ::: "memory");
    asm volatile("fxrstor %0" ::"m"(area));
    asm volatile("fxsave %0" : "=m"(area2));
    TEST_ASSERT(!memcmp(area2 + 160 + 3 * 16, pat, 16), "FXRSTOR restores XMM3");
    asm volatile(ASM_TRY("1f") "fxsave 8(%0)\n1:" ::"r"(area) : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "FXSAVE: misaligned area #GP");

    if (!HAS_XSAVE()) {
        test_skip("XSAVE: not in CPUID");
        return;
    }
    asm volatile(ASM_TRY("1f") "xgetbv\n1:" ::"c"(0) : "rax", "rdx", "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "XGETBV with CR4.OSXSAVE=0: #UD");
    write_cr4(read_cr4() | CR4_OSXSAVE);
    TEST_EQ(read_xcr0() & 1, 1, "XCR0.x87 is always set");
    asm volatile(ASM_TRY("1f") "xsetbv\n1:" ::"c"(0), "a"(0), "d"(0) : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "XSETBV clearing XCR0.x87: #GP");
    write_xcr0(3);
    u32 size = cpuid2(0xd, 0).b;
    TEST_ASSERT(size >= 576 && size <= 4096, "CPUID 0xd: XSAVE size for XCR0 %u", size);
    static u8 xa[4096] ALIGNED(64);
    memset(xa, 0, sizeof(xa));
    asm volatile("movdqa %0, %%xmm3" ::"m"(pat));
    asm volatile("xsave %0" : "+m"(xa) : "a"(3), "d"(0) : "memory");
    TEST_ASSERT(!memcmp(xa + 160 + 3 * 16, pat, 16), "XSAVE: XMM3 in the legacy area");
    TEST_ASSERT(*(u64 *)(xa + 512) & 2, "XSAVE: XSTATE_BV.SSE set");
    asm volatile("pxor %%xmm3, %%xmm3" ::: "memory");
    asm volatile("xrstor %0" ::"m"(xa), "a"(3), "d"(0));
    static u32 back[4] ALIGNED(16);
    asm volatile("movdqa %%xmm3, %0" : "=m"(back));
    TEST_ASSERT(!memcmp(back, pat, 16), "XRSTOR restores XMM3");
    *(u64 *)(xa + 512) = 1; /* SSE not in XSTATE_BV: XRSTOR initializes it */
    asm volatile("xrstor %0" ::"m"(xa), "a"(3), "d"(0));
    asm volatile("movdqa %%xmm3, %0" : "=m"(back));
    TEST_ASSERT(!back[0] && !back[1] && !back[2] && !back[3], "XRSTOR with XSTATE_BV.SSE=0 zeroes XMM");
    asm volatile(ASM_TRY("1f") "xsave 16(%0)\n1:" ::"r"(xa), "a"(3), "d"(0) : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "XSAVE: area not 64-byte aligned #GP");
    write_cr4(read_cr4() & ~CR4_OSXSAVE);
}

/* SYSCALL/SYSRET: the entry records CS/SS/RCX/R11 without touching the stack */
extern u8 syscall_entry[];
static volatile u64 sc_seen[4];
asm(".text\n"
    "syscall_entry:\n"
    "  mov %cs, %eax\n"
    "  mov %rax, sc_seen(%rip)\n"
    "  mov %ss, %eax\n"
    "  mov %rax, sc_seen+8(%rip)\n"
    "  mov %rcx, sc_seen+16(%rip)\n"
    "  mov %r11, sc_seen+24(%rip)\n"
    "  mov $0x5c, %eax\n"
    "  sysretq\n");

static ulong user_syscall(ulong unused)
{
    (void)unused;
    ulong ret, after, cs, ss;
    asm volatile(ASM_LABEL_ADDR("1f", "%1") "syscall\n1:\tmov %%cs, %2\n\tmov %%ss, %3"
                 : "=a"(ret), "=&r"(after), "=&r"(cs), "=&r"(ss) :: "rcx", "r11", "memory");
    return ret == 0x5c && sc_seen[2] == after && cs == SEL_UCODE64 && ss == SEL_UDATA;
}
static ulong user_swapgs(ulong unused)
{
    (void)unused;
    asm volatile("swapgs");
    return 0;
}
static void swapgs_in_user(void *unused)
{
    (void)unused;
    run_user(user_swapgs, 0, 0);
}

static void check_syscall_swapgs(void)
{
    if (!HAS_SYSCALL()) {
        test_skip("SYSCALL: not in CPUID");
    } else {
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~EFER_SCE);
        asm volatile(ASM_TRY("1f") "syscall\n1:" ::: "rcx", "r11", "memory");
        TEST_EQ(exc_vector(), UD_VECTOR, "SYSCALL with EFER.SCE=0: #UD");
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
        wrmsr(MSR_STAR, ((u64)(SEL_UCODE32 & ~3) << 48) | ((u64)SEL_KCODE64 << 32));
        wrmsr(MSR_LSTAR, (ulong)syscall_entry);
        wrmsr(MSR_FMASK, FL_AC | FL_DF);
        TEST_EQ(run_user(user_syscall, 0, FL_DF), 1, "SYSCALL/SYSRET round trip from ring 3");
        TEST_EQ(sc_seen[0], SEL_KCODE64, "SYSCALL: CS = STAR[47:32]");
        TEST_EQ(sc_seen[1], SEL_KDATA, "SYSCALL: SS = STAR[47:32] + 8");
        TEST_ASSERT(sc_seen[3] & FL_DF, "SYSCALL: R11 holds the caller's RFLAGS");
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~EFER_SCE);
    }

    wrmsr(MSR_GS_BASE, 0x1000);
    wrmsr(MSR_KERNEL_GS_BASE, 0x2000);
    asm volatile("swapgs");
    TEST_ASSERT(rdmsr(MSR_GS_BASE) == 0x2000 && rdmsr(MSR_KERNEL_GS_BASE) == 0x1000, "SWAPGS exchanges the bases");
    static u64 gsdata[2] = {0x600dcafe, 0};
    wrmsr(MSR_GS_BASE, (ulong)gsdata);
    u64 v;
    asm volatile("movq %%gs:0, %0" : "=r"(v));
    TEST_EQ(v, 0x600dcafe, "GS-relative access uses GS_BASE");
    wrmsr(MSR_FS_BASE, (ulong)gsdata - 8);
    asm volatile("movq %%fs:8, %0" : "=r"(v));
    TEST_EQ(v, 0x600dcafe, "FS-relative access uses FS_BASE");
    int e = exc_catch(swapgs_in_user, NULL);
    TEST_ASSERT(e == GP_VECTOR && exc_last.error == 0, "SWAPGS at CPL 3: #GP(0)");
    if (HAS_FSGSBASE()) {
        write_cr4(read_cr4() | CR4_FSGSBASE);
        asm volatile("wrfsbase %0" ::"r"(0x12340000ull));
        TEST_EQ(rdmsr(MSR_FS_BASE), 0x12340000, "WRFSBASE writes FS_BASE");
        write_cr4(read_cr4() & ~CR4_FSGSBASE);
        asm volatile(ASM_TRY("1f") "rdfsbase %%rax\n1:" ::: "rax", "memory");
        TEST_EQ(exc_vector(), UD_VECTOR, "RDFSBASE with CR4.FSGSBASE=0: #UD");
    }
    wrmsr(MSR_FS_BASE, 0);
    wrmsr(MSR_GS_BASE, 0);
}

static ulong user_rdtsc(ulong unused)
{
    (void)unused;
    return (ulong)rdtsc();
}
static void rdtsc_in_user(void *unused)
{
    (void)unused;
    run_user(user_rdtsc, 0, 0);
}

static void check_tsc(void)
{
    u64 t1 = rdtsc(), t2 = rdtsc();
    TEST_ASSERT(t2 > t1, "RDTSC increases");
    if (HAS_RDTSCP()) {
        wrmsr(MSR_TSC_AUX, 0x1234);
        u32 lo, hi, aux;
        asm volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
        TEST_EQ(aux, 0x1234, "RDTSCP returns TSC_AUX in ECX");
        TEST_ASSERT((((u64)hi << 32) | lo) >= t2, "RDTSCP returns the TSC");
    } else {
        test_skip("RDTSCP: not in CPUID");
    }
    if (HAS_RDPID()) {
        wrmsr(MSR_TSC_AUX, 0x4321);
        u64 pid;
        asm volatile("rdpid %0" : "=r"(pid));
        TEST_EQ(pid, 0x4321, "RDPID returns TSC_AUX");
    } else {
        test_skip("RDPID: not in CPUID");
    }
    TEST_EQ(exc_catch(rdtsc_in_user, NULL), NO_EXCEPTION, "RDTSC at CPL 3 with CR4.TSD=0");
    write_cr4(read_cr4() | BIT(2)); /* TSD: RDTSC becomes privileged */
    int v = exc_catch(rdtsc_in_user, NULL);
    TEST_ASSERT(v == GP_VECTOR && exc_last.error == 0, "RDTSC at CPL 3 with CR4.TSD=1: #GP(0)");
    TEST_ASSERT(rdtsc() > t2, "RDTSC at CPL 0 with CR4.TSD=1 works");
    write_cr4(read_cr4() & ~BIT(2));
}

void test_main(void)
{
    check_strings();
    check_cmpxchg();
    check_muldiv();
    check_x87();
    check_sse2();
    check_fxsave_xsave();
    check_syscall_swapgs();
    check_tsc();
}

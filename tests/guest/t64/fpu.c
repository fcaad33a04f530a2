/* x87/MMX/SSE system behaviour that user-level differential tests cannot reach:
 * device-not-available (CR0.TS, CR0.EM, WAIT with CR0.MP), CR4.OSFXSR and OSXMMEXCPT,
 * pending x87 exceptions and #MF, unmasked SIMD exceptions leaving the destination
 * unchanged, reserved-bit and alignment faults, the MMX state transition, FSTENV formats,
 * FXSAVE/XSAVE images and XRSTOR's init and header rules. The differential tests
 * (tests/diff/diff_x87.c, diff_sse.c) cover the arithmetic.
 * Where QEMU TCG differs from hardware the check is skipped there (see HW_EQ). */
#include "rt.h"

/* -mgeneral-regs-only: the compiler never keeps values in x87/XMM registers. */

/* Checks where QEMU TCG is known to differ from hardware (it checks pending x87
 * exceptions only in FWAIT, ignores unmasked x87 exception semantics, does not mask after
 * FSTENV, accepts reserved MXCSR bits, leaves the exponent of MMX registers alone). */
#define HW_EQ(a, b, what)                                                                   \
    do {                                                                                    \
        if (on_qemu_tcg())                                                                  \
            test_skip("%s: QEMU TCG differs from hardware", what);                          \
        else                                                                                \
            TEST_EQ(a, b, what);                                                            \
    } while (0)

static u8 area[512] ALIGNED(64);
static u8 xa[1024] ALIGNED(64);
static const u32 pat[4] ALIGNED(16) = { 0x11223344, 0x55667788, 0x99aabbcc, 0xddeeff00 };
static const double one = 1.0, zero = 0.0;

static void fpu_clean(void)
{
    write_cr0((read_cr0() & ~(CR0_EM | CR0_TS)) | CR0_MP | CR0_NE);
    write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
    u32 mx = 0x1f80;
    asm volatile("fninit\n\tldmxcsr %0" ::"m"(mx));
}

static void check_device_not_available(void)
{
    fpu_clean();
    write_cr0(read_cr0() | CR0_TS);
    asm volatile(ASM_TRY("1f") "fld1\n1:" ::: "memory");
    TEST_EQ(exc_vector(), NM_VECTOR, "CR0.TS: x87 instruction #NM");
    asm volatile(ASM_TRY("1f") "addps %%xmm1, %%xmm0\n1:" ::: "memory");
    TEST_EQ(exc_vector(), NM_VECTOR, "CR0.TS: SSE instruction #NM");
    asm volatile(ASM_TRY("1f") "paddb %%mm1, %%mm0\n1:" ::: "memory");
    TEST_EQ(exc_vector(), NM_VECTOR, "CR0.TS: MMX instruction #NM");
    asm volatile(ASM_TRY("1f") "fxsave %0\n1:" : "=m"(area)::"memory");
    TEST_EQ(exc_vector(), NM_VECTOR, "CR0.TS: FXSAVE #NM");
    asm volatile(ASM_TRY("1f") "wait\n1:" ::: "memory");
    TEST_EQ(exc_vector(), NM_VECTOR, "CR0.TS and CR0.MP: WAIT #NM");
    write_cr0(read_cr0() & ~CR0_MP);
    asm volatile(ASM_TRY("1f") "wait\n1:" ::: "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "CR0.TS without CR0.MP: WAIT runs");
    asm volatile("clts");
    asm volatile(ASM_TRY("1f") "fld1\n\tfstp %%st(0)\n1:" ::: "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "CLTS: x87 usable again");

    write_cr0(read_cr0() | CR0_EM);
    asm volatile(ASM_TRY("1f") "fld1\n1:" ::: "memory");
    TEST_EQ(exc_vector(), NM_VECTOR, "CR0.EM: x87 instruction #NM");
    asm volatile(ASM_TRY("1f") "addps %%xmm1, %%xmm0\n1:" ::: "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "CR0.EM: SSE instruction #UD");
    asm volatile(ASM_TRY("1f") "paddb %%mm1, %%mm0\n1:" ::: "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "CR0.EM: MMX instruction #UD");
    asm volatile(ASM_TRY("1f") "fxsave %0\n1:" : "=m"(area)::"memory");
    TEST_EQ(exc_vector(), NM_VECTOR, "CR0.EM: FXSAVE #NM");
    fpu_clean();

    write_cr4(read_cr4() & ~CR4_OSFXSR);
    asm volatile(ASM_TRY("1f") "addps %%xmm1, %%xmm0\n1:" ::: "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "CR4.OSFXSR=0: SSE instruction #UD");
    asm volatile(ASM_TRY("1f") "ldmxcsr %0\n1:" ::"m"(pat[0]) : "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "CR4.OSFXSR=0: LDMXCSR #UD");
    asm volatile(ASM_TRY("1f") "paddb %%mm1, %%mm0\n\temms\n1:" ::: "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "CR4.OSFXSR=0: MMX still runs");
    fpu_clean();
}

static void check_x87_pending(void)
{
    fpu_clean();
    u16 cw = 0x037b, sw = 0; /* ZE unmasked */
    asm volatile("fldcw %0\n\tfldl %1\n\tfdivl %2" ::"m"(cw), "m"(one), "m"(zero) : "memory");
    asm volatile("fnstsw %0" : "=m"(sw));
    TEST_EQ(sw & 0x80ff, 0x8084, "unmasked #Z: FSW.ZE, ES and B set, no fault yet");
    asm volatile(ASM_TRY("1f") "fwait\n1:" ::: "memory");
    TEST_EQ(exc_vector(), MF_VECTOR, "pending x87 exception: FWAIT #MF");
    asm volatile(ASM_TRY("1f") "fld1\n1:" ::: "memory");
    HW_EQ(exc_vector(), MF_VECTOR, "pending x87 exception: FLD #MF");
    asm volatile(ASM_TRY("1f") "paddb %%mm1, %%mm0\n1:" ::: "memory");
    HW_EQ(exc_vector(), MF_VECTOR, "pending x87 exception: MMX #MF");
    asm volatile(ASM_TRY("1f") "fnstenv %0\n1:" : "=m"(area)::"memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "FNSTENV does not wait");
    TEST_EQ(*(u16 *)area & 0x3f, 0x3b, "FNSTENV stores the control word before masking");
    u16 cw2;
    asm volatile("fnstcw %0" : "=m"(cw2));
    HW_EQ(cw2 & 0x3f, 0x3f, "FNSTENV masks all exceptions afterwards");
    asm volatile("fnstsw %0" : "=m"(sw));
    HW_EQ(sw & 0x8080, 0, "... which clears ES and B");
    /* the destination of an unmasked #Z keeps its value */
    asm volatile("fninit\n\tfldcw %0\n\tfldl %1\n\tfldl %2\n\tfdivr %%st(1), %%st\n\tfnclex\n\tfstpl %3\n\tfstp %%st(0)"
                 :: "m"(cw), "m"(one), "m"(zero), "m"(area) : "memory");
    HW_EQ(*(u64 *)area, 0, "unmasked #Z: ST(0) unchanged");
    fpu_clean();
}

static void check_simd_exceptions(void)
{
    fpu_clean();
    if (on_qemu_tcg()) {
        test_skip("unmasked SIMD exceptions: QEMU TCG does not raise them");
        return;
    }
    static u32 v[4] ALIGNED(16) = { 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000 };
    static u32 z[4] ALIGNED(16);
    static u32 out[4] ALIGNED(16);
    u32 mx = 0x1f80 & ~0x200, mxo; /* ZM clear */
    asm volatile("movaps %0, %%xmm0\n\tldmxcsr %1" ::"m"(v), "m"(mx));
    asm volatile(ASM_TRY("1f") "divps %0, %%xmm0\n1:" ::"m"(z) : "memory");
    TEST_EQ(exc_vector(), XM_VECTOR, "unmasked #Z with CR4.OSXMMEXCPT: #XM");
    asm volatile("stmxcsr %0\n\tmovaps %%xmm0, %1" : "=m"(mxo), "=m"(out));
    TEST_EQ(mxo & 0x3f, 0x04, "MXCSR.ZE recorded");
    TEST_ASSERT(!memcmp(out, v, 16), "destination unchanged");
    write_cr4(read_cr4() & ~CR4_OSXMMEXCPT);
    asm volatile(ASM_TRY("1f") "divps %0, %%xmm0\n1:" ::"m"(z) : "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "unmasked #Z without CR4.OSXMMEXCPT: #UD");
    fpu_clean();
}

static void check_reserved_and_alignment(void)
{
    fpu_clean();
    u32 bad = 0x1f80 | BIT(16);
    asm volatile(ASM_TRY("1f") "ldmxcsr %0\n1:" ::"m"(bad) : "memory");
    HW_EQ(exc_vector(), GP_VECTOR, "LDMXCSR reserved bit: #GP");
    static u8 m[48] ALIGNED(16);
    asm volatile(ASM_TRY("1f") "addps 4(%0), %%xmm0\n1:" ::"r"(m) : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "ADDPS misaligned m128: #GP");
    asm volatile(ASM_TRY("1f") "movups 4(%0), %%xmm0\n1:" ::"r"(m) : "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "MOVUPS misaligned: no fault");
    asm volatile(ASM_TRY("1f") "addss 4(%0), %%xmm0\n1:" ::"r"(m) : "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "ADDSS m32 needs no alignment");
    asm volatile("fxsave %0" : "=m"(area));
    *(u32 *)(area + 24) = bad;
    asm volatile(ASM_TRY("1f") "fxrstor %0\n1:" ::"m"(area) : "memory");
    HW_EQ(exc_vector(), GP_VECTOR, "FXRSTOR reserved MXCSR bit: #GP");
    fpu_clean();
}

static void check_mmx_state(void)
{
    fpu_clean();
    u16 sw, tw_env[14];
    asm volatile("fld1\n\tfld1\n\tfnstsw %0" : "=m"(sw));
    TEST_EQ((sw >> 11) & 7, 6, "two pushes: TOP = 6");
    u64 q = 0x0123456789abcdefull;
    asm volatile("movq %0, %%mm2" ::"m"(q));
    asm volatile("fnstenv %0" : "=m"(tw_env));
    TEST_EQ((tw_env[2] >> 11) & 7, 0, "MMX instruction: TOP = 0");
    bool none_empty = true;
    for (int r = 0; r < 8; r++)
        none_empty &= ((tw_env[4] >> (2 * r)) & 3) != 3;
    TEST_ASSERT(none_empty, "MMX instruction: no register empty (tag word %#x)", tw_env[4]);
    asm volatile("fnsave %0" : "=m"(area));
    /* FNSAVE: 28-byte environment, then ST(0)..ST(7) = R0..R7 with TOP = 0 */
    TEST_EQ(*(u64 *)(area + 28 + 20), q, "MM2 is R2's significand");
    HW_EQ(*(u16 *)(area + 28 + 28), 0xffff, "an MMX write sets the exponent to all ones");
    asm volatile("emms\n\tfnstenv %0" : "=m"(tw_env));
    TEST_EQ(tw_env[4], 0xffff, "EMMS: every tag empty");
    fpu_clean();
}

static void check_env_formats(void)
{
    fpu_clean();
    static u8 env[32];
    memset(env, 0xaa, sizeof(env));
    asm volatile("fld1\n\tfnstenv %0" : "=m"(env));
    TEST_EQ(*(u16 *)(env + 0), 0x037f, "FNSTENV 32-bit: FCW");
    TEST_EQ(*(u16 *)(env + 8), 0x3fff, "FNSTENV 32-bit: full tag word (R7 valid)");
    memset(env, 0xaa, sizeof(env));
    asm volatile("data16 fnstenv %0" : "=m"(env));
    TEST_EQ(*(u16 *)(env + 4), 0x3fff, "FNSTENV 16-bit: tag word at offset 4");
    TEST_EQ(env[14], 0xaa, "FNSTENV 16-bit: 14 bytes");
    fpu_clean();
}

/* Last-instruction pointers: FIP/FCS/FOP for non-control instructions, FDP/FDS for
 * memory operands; control instructions leave them alone. */
static void check_pointers(void)
{
    fpu_clean();
    static u32 env[7];
    ulong ip;
    asm volatile("lea 1f(%%rip), %0\n1:\tfaddl %1\n\tfnclex\n\tfnstenv %2"
                 : "=&r"(ip) : "m"(one), "m"(env) : "memory");
    TEST_EQ(env[3], (u32)ip, "FNSTENV: FIP is the last non-control instruction (FADD)");
    TEST_EQ(env[5], (u32)(ulong)&one, "FNSTENV: FDP is its memory operand");
    HW_EQ((env[4] >> 16) & 0x7ff, 0x405, "FNSTENV: FOP = DC /0 mod 00 rm 101");
    fpu_clean();
}

static void check_xsave(void)
{
    fpu_clean();
    if (!HAS_XSAVE()) {
        test_skip("XSAVE: not in CPUID");
        return;
    }
    write_cr4(read_cr4() | CR4_OSXSAVE);
    write_xcr0(3);
    memset(xa, 0, sizeof(xa));
    u32 mx = 0x1f80 | 0x2000; /* round down */
    asm volatile("movdqa %0, %%xmm5\n\tldmxcsr %1\n\tfld1" ::"m"(pat), "m"(mx));
    asm volatile("xsave %0" : "+m"(xa) : "a"(1), "d"(0) : "memory");
    TEST_EQ(*(u64 *)(xa + 512), 1, "XSAVE x87 only: XSTATE_BV = 1");
    TEST_EQ(*(u32 *)(xa + 24), 0, "XSAVE x87 only: MXCSR not written");
    TEST_EQ(*(u64 *)(xa + 160 + 5 * 16), 0, "XSAVE x87 only: XMM not written");
    asm volatile("xsave %0" : "+m"(xa) : "a"(3), "d"(0) : "memory");
    TEST_EQ(*(u32 *)(xa + 24), mx, "XSAVE: MXCSR");
    TEST_ASSERT(!memcmp(xa + 160 + 5 * 16, pat, 16), "XSAVE: XMM5");
    TEST_EQ(*(u64 *)(xa + 512) & 3, 3, "XSAVE: XSTATE_BV x87|SSE");
    /* XRSTOR of an initial SSE component still loads MXCSR */
    *(u64 *)(xa + 512) = 1;
    *(u32 *)(xa + 24) = 0x1f80 | 0x4000;
    asm volatile("xrstor %0" ::"m"(xa), "a"(3), "d"(0));
    u32 mxo;
    static u32 back[4] ALIGNED(16);
    asm volatile("stmxcsr %0\n\tmovdqa %%xmm5, %1" : "=m"(mxo), "=m"(back));
    TEST_EQ(mxo, 0x1f80 | 0x4000, "XRSTOR: MXCSR loaded although XSTATE_BV.SSE = 0");
    TEST_ASSERT(!back[0] && !back[3], "XRSTOR: XMM initialized");
    /* x87 init */
    *(u64 *)(xa + 512) = 0;
    *(u16 *)xa = 0x0000;
    asm volatile("xrstor %0" ::"m"(xa), "a"(1), "d"(0));
    u16 cw, sw;
    asm volatile("fnstcw %0\n\tfnstsw %1" : "=m"(cw), "=m"(sw));
    TEST_EQ(cw, 0x037f, "XRSTOR x87 init: FCW 037F");
    TEST_EQ(sw, 0, "XRSTOR x87 init: FSW 0");
    /* header checks */
    *(u64 *)(xa + 512) = 4;
    asm volatile(ASM_TRY("1f") "xrstor %0\n1:" ::"m"(xa), "a"(3), "d"(0) : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "XRSTOR: XSTATE_BV bit not in XCR0 #GP");
    *(u64 *)(xa + 512) = 3;
    *(u64 *)(xa + 528) = 1;
    asm volatile(ASM_TRY("1f") "xrstor %0\n1:" ::"m"(xa), "a"(3), "d"(0) : "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "XRSTOR: header bytes 23:16 not zero #GP");
    *(u64 *)(xa + 528) = 0;
    *(u32 *)(xa + 24) = 0x10000;
    asm volatile(ASM_TRY("1f") "xrstor %0\n1:" ::"m"(xa), "a"(3), "d"(0) : "memory");
    HW_EQ(exc_vector(), GP_VECTOR, "XRSTOR: reserved MXCSR bit #GP");
    asm volatile(ASM_TRY("1f") "xrstor %0\n1:" ::"m"(xa), "a"(1), "d"(0) : "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "XRSTOR x87 only ignores MXCSR");
    write_cr4(read_cr4() & ~CR4_OSXSAVE);
    asm volatile(ASM_TRY("1f") "xsave %0\n1:" : "+m"(xa) : "a"(3), "d"(0) : "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "XSAVE with CR4.OSXSAVE=0: #UD");
    fpu_clean();
}

void test_main(void)
{
    check_device_not_available();
    check_x87_pending();
    check_simd_exceptions();
    check_reserved_and_alignment();
    check_mmx_state();
    check_env_formats();
    check_pointers();
    check_xsave();
}

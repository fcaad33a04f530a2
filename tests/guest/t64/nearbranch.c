/* Near branches with an operand-size prefix (66h) in 64-bit mode, which the vendors
 * decode differently: Intel ignores the prefix (64-bit operand size, rel32 for E8/E9/0F 8x;
 * SDM Vol. 1, "Branching in 64-bit mode"), AMD makes the operand size 16 bits (rel16,
 * RIP truncated to 16 bits, 2-byte pushes and pops, word indirect targets; APM Vol. 1,
 * "Branching in 64-Bit Mode"). Each branch runs from a 64K-aligned buffer above 1M;
 * the AMD target lies below 64K (a pad in low memory), the Intel one in the buffer, and
 * the pad reached tells which decoding ran. QEMU TCG's choice is its own: skipped there.
 * guest: cpu=max name=nearbranch-intel */
/* guest: cpu=max,vendor=AuthenticAMD name=nearbranch-amd */
#include "rt.h"

static u8 area[0x10000 + 0x8000] __attribute__((aligned(0x10000)));
/* identity-mapped low memory; 0x6000-0x60ff is test scratch */
#define LOW(a) ((u8 *)(ulong)(a))

/* A landing pad: mov al, tag; mov rdx, rsp; mov rsp, r11; jmp rcx. */
static void pad(u8 *at, u8 tag)
{
    static const u8 code[] = { 0xb0, 0, 0x48, 0x89, 0xe2, 0x4c, 0x89, 0xdc, 0xff, 0xe1 };
    memcpy(at, code, sizeof code);
    at[1] = tag;
}

enum { AMD_PAD = 1, INTEL_PAD = 2 };

/* Jumps to area + off with RBX = rbx (pushed first when push is set); returns the pad's
 * tag, and in *rsp_delta RSP at the pad minus RSP at the branch. */
static int run(unsigned off, u64 rbx, bool push, long *rsp_delta)
{
    u64 tag = 0, rdx = 0, start = 0;
    asm volatile("lea 1f(%%rip), %%rcx\n\t"
                 "mov %%rsp, %%r11\n\t"
                 "mov %%rsp, %[start]\n\t"
                 "test %[push], %[push]\n\t"
                 "jz 2f\n\t"
                 "push %%rbx\n\t"
                 "sub $8, %[start]\n"
                 "2:\tjmp *%[target]\n"
                 "1:"
                 : "=&a"(tag), "=&d"(rdx), [start] "+&r"(start)
                 : [target] "r"(area + off), "b"(rbx), [push] "r"((u64)push)
                 : "rcx", "r11", "memory", "cc");
    *rsp_delta = (long)(rdx - start);
    return (int)(tag & 0xff);
}

static void place(unsigned off, const u8 *bytes, unsigned n) { memcpy(area + off, bytes, n); }

void test_main(void)
{
    if (on_qemu_tcg()) {
        test_skip("QEMU TCG decodes 66h near branches its own way");
        return;
    }
    struct cpuid_regs v = cpuid(0);
    bool amd = v.b == 0x68747541; /* "Auth" */
    int want = amd ? AMD_PAD : INTEL_PAD;
    const char *who = amd ? "AMD: 16-bit operand size" : "Intel: 66h ignored";
    u64 x = (u64)area;
    long d;
    int r;

    /* JMP rel16 (AMD, 4 bytes) / rel32 (Intel, 6 bytes) at 0x100: 66 E9 fc 5e 00 00 */
    pad(LOW(0x6000), AMD_PAD);          /* (0x104 + 0x5efc) & 0xffff */
    pad(area + 0x6002, INTEL_PAD);       /* area + 0x106 + 0x5efc */
    place(0x100, (const u8[]){ 0x66, 0xe9, 0xfc, 0x5e, 0x00, 0x00 }, 6);
    r = run(0x100, 0, false, &d);
    TEST_ASSERT(r == want, "JMP rel with 66h: %s (pad %d)", who, r);

    /* RET (66 C3): pops 2 bytes (AMD) or 8 (Intel) of area + 0x6020 */
    pad(LOW(0x6020), AMD_PAD);
    pad(area + 0x6020, INTEL_PAD);
    place(0x200, (const u8[]){ 0x66, 0xc3 }, 2);
    r = run(0x200, x + 0x6020, true, &d);
    TEST_ASSERT(r == want && d == (amd ? 2 : 8), "RET with 66h: %s (pad %d, RSP moved %ld)", who,
                r, d);

    /* CALL rel16 / rel32 at 0x300: 66 E8 3c 5d 00 00; AMD pushes a word, Intel a qword */
    pad(LOW(0x6040), AMD_PAD);          /* (0x304 + 0x5d3c) & 0xffff */
    pad(area + 0x6042, INTEL_PAD);
    place(0x300, (const u8[]){ 0x66, 0xe8, 0x3c, 0x5d, 0x00, 0x00 }, 6);
    r = run(0x300, 0, false, &d);
    TEST_ASSERT(r == want && d == (amd ? -2 : -8), "CALL with 66h: %s (pad %d, RSP moved %ld)",
                who, r, d);

    /* JMP short (66 EB 10) at area + 0x605d: the target truncated to 0x6070 on AMD */
    pad(LOW(0x6070), AMD_PAD);
    pad(area + 0x6070, INTEL_PAD);
    place(0x605d, (const u8[]){ 0x66, 0xeb, 0x10 }, 3);
    r = run(0x605d, 0, false, &d);
    TEST_ASSERT(r == want, "JMP short with 66h: %s (pad %d)", who, r);

    /* Jcc short (66 74 10, ZF=1 after the TEST of run) at area + 0x607d */
    pad(LOW(0x6090), AMD_PAD);
    pad(area + 0x6090, INTEL_PAD);
    place(0x607d, (const u8[]){ 0x66, 0x74, 0x10 }, 3);
    r = run(0x607d, 0, false, &d);
    TEST_ASSERT(r == want, "JZ short with 66h: %s (pad %d)", who, r);

    /* JMP r/m (66 FF E3: jmp bx / jmp rbx) to area + 0x60b0 */
    pad(LOW(0x60b0), AMD_PAD);
    pad(area + 0x60b0, INTEL_PAD);
    place(0x500, (const u8[]){ 0x66, 0xff, 0xe3 }, 3);
    r = run(0x500, x + 0x60b0, false, &d);
    TEST_ASSERT(r == want, "JMP r/m with 66h: %s (pad %d)", who, r);
}

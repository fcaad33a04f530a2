/* The hint-NOP space of the 0F map (SDM Vol. 2, Appendix A: 0F 18 /4-7, 0F 19-0F 1F
 * "NOP Ev"). MPX (0F 1A, 0F 1B), CET (F3 0F 1E: RDSSP, ENDBR) and CLDEMOTE (0F 1C /0)
 * were later placed in it; a CPU without them, such as nestor's model, executes every
 * such encoding as a NOP that touches neither registers nor memory. On a CPU with MPX
 * (QEMU TCG offers it) BNDMOV with BND4-7 is #UD, so those cases need CPUID.7:EBX.MPX=0. */
#include "rt.h"

struct hint_case {
    const char *name;
    u8 len, bytes[8];
    bool needs_no_mpx;
};

static const struct hint_case cases[] = {
    /* MPX encodings: the operands are whatever ModRM says (memory at [rax]) */
    { "bndldx bnd0, [rax] (0F 1A /r)", 3, { 0x0f, 0x1a, 0x00 }, false },
    { "bndmov bnd0, [rax] (66 0F 1A /r)", 4, { 0x66, 0x0f, 0x1a, 0x00 }, false },
    { "bndcl bnd0, [rax] (F3 0F 1A /r)", 4, { 0xf3, 0x0f, 0x1a, 0x00 }, false },
    { "bndcu bnd0, [rax] (F2 0F 1A /r)", 4, { 0xf2, 0x0f, 0x1a, 0x00 }, false },
    { "bndcl bnd1, rcx (F3 0F 1A C9)", 4, { 0xf3, 0x0f, 0x1a, 0xc9 }, false },
    { "bndstx [rax], bnd0 (0F 1B /r)", 3, { 0x0f, 0x1b, 0x00 }, false },
    { "bndmov [rax], bnd0 (66 0F 1B /r)", 4, { 0x66, 0x0f, 0x1b, 0x00 }, false },
    { "bndmk bnd0, [rax] (F3 0F 1B /r)", 4, { 0xf3, 0x0f, 0x1b, 0x00 }, false },
    { "bndcn bnd0, rax (F2 0F 1B C0)", 4, { 0xf2, 0x0f, 0x1b, 0xc0 }, false },
    { "bndmov bnd4, bnd0 (66 0F 1A E0)", 4, { 0x66, 0x0f, 0x1a, 0xe0 }, true },
    { "bndmov bnd0, bnd7 (66 0F 1A C7)", 4, { 0x66, 0x0f, 0x1a, 0xc7 }, true },
    { "bndcl bnd5, [rax] (F3 0F 1A 28)", 4, { 0xf3, 0x0f, 0x1a, 0x28 }, true },
    /* CLDEMOTE and the rest of 0F 1C */
    { "cldemote [rax] (0F 1C /0)", 3, { 0x0f, 0x1c, 0x00 }, false },
    { "nop [rax] (0F 1C /1)", 3, { 0x0f, 0x1c, 0x08 }, false },
    /* CET: RDSSPD/RDSSPQ leave their register alone, ENDBR */
    { "rdsspd ecx (F3 0F 1E C9)", 4, { 0xf3, 0x0f, 0x1e, 0xc9 }, false },
    { "rdsspq rcx (F3 48 0F 1E C9)", 5, { 0xf3, 0x48, 0x0f, 0x1e, 0xc9 }, false },
    { "endbr64 (F3 0F 1E FA)", 4, { 0xf3, 0x0f, 0x1e, 0xfa }, false },
    { "endbr32 (F3 0F 1E FB)", 4, { 0xf3, 0x0f, 0x1e, 0xfb }, false },
    { "nop ecx (0F 1E C9)", 3, { 0x0f, 0x1e, 0xc9 }, false },
    /* the never-assigned ones */
    { "nop [rax] (0F 19 /r)", 3, { 0x0f, 0x19, 0x00 }, false },
    { "nop ecx (0F 1D C9)", 3, { 0x0f, 0x1d, 0xc9 }, false },
    { "nop [rax] (0F 1F /0)", 3, { 0x0f, 0x1f, 0x00 }, false },
    { "reserved prefetch hint [rax] (0F 18 /4)", 3, { 0x0f, 0x18, 0x20 }, false },
    { "reserved prefetch hint [rax] (0F 18 /7)", 3, { 0x0f, 0x18, 0x38 }, false },
};

static u8 insn_buf[32] ALIGNED(16);
static u64 scratch[4];

/* Runs the case with RAX = &scratch, RCX = a marker; returns the vector (or
 * NO_EXCEPTION) and what RAX/RCX hold afterwards. */
static int run_case(const struct hint_case *c, u64 *rax, u64 *rcx)
{
    memcpy(insn_buf, c->bytes, c->len);
    insn_buf[c->len] = 0xc3; /* ret */
    u64 a = (u64)scratch, cx = 0x1122334455667788ull;
    asm volatile(ASM_TRY("1f") "mov %%rsp, %%r11\n\tcall *%2\n1:\tmov %%r11, %%rsp"
                 : "+a"(a), "+c"(cx)
                 : "r"(insn_buf)
                 : "r11", "rdx", "memory", "cc");
    *rax = a;
    *rcx = cx;
    return exc_vector();
}

void test_main(void)
{
    bool mpx = cpu_has(7, 0, 1, 14);
    for (unsigned k = 0; k < ARRAY_SIZE(cases); k++) {
        const struct hint_case *c = &cases[k];
        if (c->needs_no_mpx && mpx) {
            test_skip("%s: this CPU has MPX, where BND4-7 are #UD", c->name);
            continue;
        }
        for (unsigned q = 0; q < ARRAY_SIZE(scratch); q++)
            scratch[q] = 0x5a5a5a5a5a5a5a5aull + q;
        u64 rax, rcx;
        int v = run_case(c, &rax, &rcx);
        TEST_ASSERT(v == NO_EXCEPTION, "%s: executes as a NOP (vector %d)", c->name, v);
        TEST_ASSERT(rax == (u64)scratch && rcx == 0x1122334455667788ull,
                    "%s: registers unchanged (rax %#lx rcx %#lx)", c->name, (ulong)rax,
                    (ulong)rcx);
        bool mem_ok = true;
        for (unsigned q = 0; q < ARRAY_SIZE(scratch); q++)
            mem_ok &= scratch[q] == 0x5a5a5a5a5a5a5a5aull + q;
        TEST_ASSERT(mem_ok, "%s: memory unchanged", c->name);
    }
}

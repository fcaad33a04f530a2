/* Self-modifying code in 32-bit protected mode (the 64-bit test t64/smc covers more):
 * stores to the next instruction (MOV, REP STOSB, MOV then JMP), a function rewritten in
 * three shapes many times, and with 32-bit paging, code written through one linear alias
 * and run through another. */
#include "rt.h"

#define ROUNDS 1000

/* The new value is the first (stack) argument; each stores it into the imm32 of the
 * "mov $imm32, %eax" that follows, then returns EAX. */
asm(".pushsection .text.smc, \"ax\"\n"
    ".globl smc32_mov, smc32_jmp, smc32_rep_stosb\n"
    "smc32_mov:\n"
    "  movl 4(%esp), %eax\n"
    "  movl %eax, 1f+1\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc32_jmp:\n"
    "  movl 4(%esp), %eax\n"
    "  movl %eax, 2f+1\n"
    "  jmp 2f\n"
    "2: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc32_rep_stosb:\n" /* fills the imm32 with the argument's low byte */
    "  push %edi\n"
    "  movl 8(%esp), %eax\n"
    "  movl $1f+1, %edi\n"
    "  movl $4, %ecx\n"
    "  rep stosb\n"
    "  pop %edi\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    ".popsection\n");
extern ulong smc32_mov(ulong), smc32_jmp(ulong), smc32_rep_stosb(ulong);

static u32 round_value(int i, int salt) { return (u32)(i + 1) * 0x9e3779b1u ^ (u32)salt * 0x01010101u; }

static ulong call(ulong va, ulong arg)
{
    asm volatile("" ::: "memory");
    return ((ulong(*)(ulong))va)(arg);
}


static void check_next_instruction(void)
{
    static const struct { const char *what; ulong (*fn)(ulong); bool fill; } t[] = {
        { "MOV", smc32_mov, false },
        { "MOV then JMP", smc32_jmp, false },
        { "REP STOSB", smc32_rep_stosb, true },
    };
    for (size_t k = 0; k < ARRAY_SIZE(t); k++) {
        int bad = -1;
        ulong got = 0, want = 0;
        for (int i = 0; i < ROUNDS && bad < 0; i++) {
            u32 v = round_value(i, (int)k);
            want = t[k].fill ? (v & 0xff) * 0x01010101u : v;
            if ((got = t[k].fn(v)) != want)
                bad = i;
        }
        TEST_ASSERT(bad < 0, "%s to the next instruction, %d rounds: round %d got %#lx want %#lx",
                    t[k].what, ROUNDS, bad, got, want);
    }
}

static u8 page[4096] ALIGNED(4096);

static void check_rewritten_function(void)
{
    /* mov $v, %eax; ret  |  xor %eax, %eax; add $v, %eax; ret  |  push $v; pop %eax; nop; ret */
    static const u8 shapes[3][8] = {
        { 0xb8, 0, 0, 0, 0, 0xc3 },
        { 0x31, 0xc0, 0x05, 0, 0, 0, 0, 0xc3 },
        { 0x68, 0, 0, 0, 0, 0x58, 0x90, 0xc3 },
    };
    static const unsigned imm_at[3] = { 1, 3, 1 };
    emit_mov_ret(page + 512, 0x2222);
    int bad = -1;
    ulong got = 0;
    for (int i = 0; i < 3 * ROUNDS && bad < 0; i++) {
        u32 v = round_value(i, 5);
        u8 code[8];
        memcpy(code, shapes[i % 3], 8);
        memcpy(code + imm_at[i % 3], &v, 4);
        for (int k = 7; k >= 0; k--)
            ((volatile u8 *)page)[k] = code[k];
        if ((got = call((ulong)page, 0)) != v || call((ulong)page + 512, 0) != 0x2222)
            bad = i;
    }
    TEST_ASSERT(bad < 0, "a function rewritten %d times in 3 shapes: round %d got %#lx", 3 * ROUNDS, bad, got);
}

#define ALIAS_X 0x40000000u
#define ALIAS_W 0x40001000u

static void check_alias(void)
{
    struct page_table pt;
    pt_init(&pt, PT_32BIT);
    pt_map_identity(&pt, PTE_W | PTE_U);
    u8 *frame = page_alloc();
    pt_map(&pt, ALIAS_X, (ulong)frame, 4096, 4096, 0);
    pt_map(&pt, ALIAS_W, (ulong)frame, 4096, 4096, PTE_W);
    pt_activate(&pt, 0);
    int bad = -1;
    ulong got = 0;
    emit_mov_ret((volatile u8 *)ALIAS_W, 0); /* the writable alias is cached first */
    for (int i = 0; i < ROUNDS && bad < 0; i++) {
        u32 v = round_value(i, 6);
        emit_mov_ret(i % 2 ? (volatile u8 *)ALIAS_W : frame, v);
        if ((got = call(ALIAS_X, 0)) != v || (got = call((ulong)frame, 0)) != v)
            bad = i;
    }
    TEST_ASSERT(bad < 0, "32-bit paging: written through one alias, run through two: round %d got %#lx",
                bad, got);
    paging_off();
}

void test_main(void)
{
    check_next_instruction();
    check_rewritten_function();
    check_alias();
}

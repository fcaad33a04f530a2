/* Self-modifying code (SDM 8.1.3 and 11.6): a store to code is seen by the next
 * execution of that code, whatever wrote it and through whichever mapping.
 * - a store to the next instruction, then falling through to it (P6 and later detect
 *   it; QEMU does too) or jumping to it (the form the SDM guarantees), by every kind of
 *   store: MOV, byte MOV, XCHG, LOCK CMPXCHG, ADD (read-modify-write), MOVNTI, PUSH,
 *   STOS, REP STOSB, REP MOVSB; each repeated with new values so that a stale decode of
 *   the previous round shows;
 * - code written through another linear alias of the same frame (writable NX alias,
 *   identity map, user alias), executed through several aliases, at CPL 0 and 3;
 * - whole functions of different shapes rewritten and called 3000 times, with
 *   untouched neighbours on the same page that must keep working;
 * - code written by the bulk REP STOS/REP MOVS path (2-page fills, an overlapping
 *   forward copy that replicates a pattern);
 * - instructions straddling a page boundary: correct execution at every split, stores to
 *   either half (also by a store that itself straddles), remapping either page (PTE +
 *   INVLPG), #PF with CR2 = the second page and the error code's P/U/I bits when it is
 *   not present, NX or supervisor-only, and no fault when an instruction ends exactly at
 *   the end of a page that is followed by a not-present one;
 * - a translation changed in the middle of straight-line code: the code rewrites the PTE
 *   of its own page and flushes it (INVLPG, MOV CR3; both serializing), and the very next
 *   instruction comes from the new frame, 1000 times in a row alternating frames;
 * - remapping a page so that the instruction at an address that ran before now
 *   straddles into the next page (and back). */
#include "rt.h"

#define TVA 0x8000000000ull /* test mappings (PML4 slot 1) */
#define PAGE(i) (TVA + (u64)(i) * 4096)
#define ROUNDS 1000

static struct page_table pt;

typedef ulong (*code_fn)(ulong);
static ulong call(u64 va, ulong arg)
{
    asm volatile("" ::: "memory");
    return ((code_fn)va)(arg);
}


/* a value that differs in every byte from one round to the next */
static u32 round_value(int i, int salt) { return (u32)(i + 1) * 0x9e3779b1u ^ (u32)salt * 0x01010101u; }

/* ------------------------------------------------ (a) store to the next instruction */
/* Each function takes the new value in EDI, stores it into the imm32 of the
 * "mov $imm32, %eax" that follows (label 1) and returns EAX. */
asm(".pushsection .text.smc, \"ax\"\n"
    ".globl smc_mov32, smc_mov8, smc_xchg, smc_cmpxchg, smc_add, smc_movnti, smc_jmp\n"
    ".globl smc_push, smc_stos, smc_rep_stosb, smc_rep_movsb\n"
    "smc_mov32:\n"
    "  movl %edi, 1f+1(%rip)\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc_mov8:\n"
    "  movb %dil, 1f+1(%rip)\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc_xchg:\n"
    "  xchgl %edi, 1f+1(%rip)\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc_cmpxchg:\n"
    "  movl 1f+1(%rip), %eax\n"
    "  lock cmpxchgl %edi, 1f+1(%rip)\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc_add:\n" /* accumulates: returns the sum of all arguments so far */
    "  addl %edi, 1f+1(%rip)\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc_movnti:\n"
    "  movnti %edi, 1f+1(%rip)\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc_jmp:\n"
    "  movl %edi, 2f+1(%rip)\n"
    "  jmp 2f\n"
    "2: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc_push:\n" /* RDI holds the 8 code bytes: "mov $imm32, %eax; ret; int3; int3" */
    "  mov %rsp, %r8\n"
    "  lea 1f+8(%rip), %rsp\n"
    "  push %rdi\n"
    "  mov %r8, %rsp\n"
    "1: .byte 0xb8; .long 0; .byte 0xc3, 0xcc, 0xcc\n"
    "smc_stos:\n"
    "  mov %edi, %eax\n"
    "  lea 1f+1(%rip), %rdi\n"
    "  stosl\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc_rep_stosb:\n" /* fills the imm32 with the low byte of EDI */
    "  mov %edi, %eax\n"
    "  lea 1f+1(%rip), %rdi\n"
    "  mov $4, %ecx\n"
    "  rep stosb\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    "smc_rep_movsb:\n"
    "  movl %edi, smc_source(%rip)\n"
    "  lea smc_source(%rip), %rsi\n"
    "  lea 1f+1(%rip), %rdi\n"
    "  mov $4, %ecx\n"
    "  rep movsb\n"
    "1: .byte 0xb8; .long 0\n"
    "  ret\n"
    ".popsection\n");
extern ulong smc_mov32(ulong), smc_mov8(ulong), smc_xchg(ulong), smc_cmpxchg(ulong),
    smc_add(ulong), smc_movnti(ulong), smc_jmp(ulong), smc_push(ulong), smc_stos(ulong),
    smc_rep_stosb(ulong), smc_rep_movsb(ulong);
u32 smc_source;

enum next_kind { NEXT_SAME, NEXT_BYTE, NEXT_SUM, NEXT_PUSH, NEXT_FILL };
static const struct {
    const char *what;
    code_fn fn;
    enum next_kind kind;
} next_tests[] = {
    { "MOV", smc_mov32, NEXT_SAME },
    { "byte MOV", smc_mov8, NEXT_BYTE },
    { "XCHG", smc_xchg, NEXT_SAME },
    { "LOCK CMPXCHG", smc_cmpxchg, NEXT_SAME },
    { "ADD to memory", smc_add, NEXT_SUM },
    { "MOVNTI", smc_movnti, NEXT_SAME },
    { "MOV then JMP", smc_jmp, NEXT_SAME },
    { "PUSH (RSP pointed into the code)", smc_push, NEXT_PUSH },
    { "STOSD", smc_stos, NEXT_SAME },
    { "REP STOSB", smc_rep_stosb, NEXT_FILL },
    { "REP MOVSB", smc_rep_movsb, NEXT_SAME },
};

static void check_next_instruction(void)
{
    for (size_t t = 0; t < ARRAY_SIZE(next_tests); t++) {
        u32 sum = 0;
        int bad = -1;
        ulong got = 0, want = 0;
        for (int i = 0; i < ROUNDS && bad < 0; i++) {
            u32 v = round_value(i, (int)t);
            ulong arg = v;
            switch (next_tests[t].kind) {
            case NEXT_SAME: want = v; break;
            case NEXT_BYTE: want = v & 0xff; break;
            case NEXT_SUM: want = sum += v; break;
            case NEXT_FILL: want = (v & 0xff) * 0x01010101u; break;
            case NEXT_PUSH:
                arg = 0xb8 | (ulong)v << 8 | 0xc3ull << 40 | 0xccccull << 48;
                want = v;
                break;
            }
            got = next_tests[t].fn(arg);
            if (got != want)
                bad = i;
        }
        TEST_ASSERT(bad < 0, "%s to the next instruction, %d rounds: round %d returned %#lx, want %#lx",
                    next_tests[t].what, ROUNDS, bad, got, want);
    }
}

/* ------------------------------------------------ (b) linear aliases */
static ulong user_call(ulong va) { return call(va, 0); }

/* CPL 3 writes a function returning v through the writable alias */
static ulong user_emit(ulong v)
{
    emit_mov_ret((volatile u8 *)PAGE(22), (u32)v);
    return 0;
}

static void check_aliases(void)
{
    u8 *frame = page_alloc();
    u64 x1 = PAGE(20), x2 = PAGE(21), w = PAGE(22);
    pt_map(&pt, x1, (ulong)frame, 4096, 4096, PTE_U);
    pt_map(&pt, x2, (ulong)frame, 4096, 4096, PTE_U);
    pt_map(&pt, w, (ulong)frame, 4096, 4096, PTE_W | PTE_U | (HAS_NX() ? PTE_NX : 0));
    invlpg(x1), invlpg(x2), invlpg(w);

    /* The writable alias is in the TLB for writing before the frame holds any code. */
    emit_mov_ret((volatile u8 *)w, 1);
    TEST_EQ(call(x1, 0), 1, "alias: code written through the NX alias runs through X1");
    emit_mov_ret((volatile u8 *)w, 2);
    TEST_EQ(call(x1, 0), 2, "alias: rewritten through the (already cached) writable alias");

    volatile u8 *writers[] = { (volatile u8 *)w, frame };
    u64 runners[] = { x1, x2, (ulong)frame };
    int bad = -1;
    ulong got = 0;
    for (int i = 0; i < ROUNDS && bad < 0; i++) {
        u32 v = round_value(i, 7);
        emit_mov_ret(writers[i % 2], v);
        for (int r = 0; r < 3; r++) /* every alias runs the new code */
            if ((got = call(runners[(i + r) % 3], 0)) != v)
                bad = i;
    }
    TEST_ASSERT(bad < 0, "alias: %d rounds written through 2 aliases, run through 3: round %d got %#lx",
                ROUNDS, bad, got);

    /* user mode runs it, the supervisor rewrites it (another TLB class), and back */
    bad = -1;
    for (int i = 0; i < 200 && bad < 0; i++) {
        u32 v = round_value(i, 8);
        emit_mov_ret(frame, v);
        if ((got = run_user(user_call, x1, 0)) != v)
            bad = i;
        v = ~v;
        run_user(user_emit, v, 0);
        if ((got = call(x2, 0)) != v)
            bad = i;
    }
    TEST_ASSERT(bad < 0, "alias: CPL 3 runs what CPL 0 wrote and CPL 0 runs what CPL 3 wrote: round %d got %#lx",
                bad, got);
}

/* ------------------------------------------------ (c) whole functions rewritten */
/* Three shapes of a function returning v (called with EDI = 0x5555): */
static unsigned emit_shape(volatile u8 *p, int shape, u32 v)
{
    static const u8 shapes[3][12] = {
        { 0xb8, 0, 0, 0, 0, 0xc3 },                   /* mov $v, %eax; ret */
        { 0x8d, 0x87, 0, 0, 0, 0, 0x29, 0xf8, 0xc3 }, /* lea v(%rdi), %eax; sub %edi, %eax; ret */
        { 0x31, 0xc0, 0x05, 0, 0, 0, 0, 0x90, 0xc3 }, /* xor %eax, %eax; add $v, %eax; nop; ret */
    };
    static const unsigned imm_at[3] = { 1, 2, 3 }, len[3] = { 6, 9, 9 };
    u8 code[16];
    memcpy(code, shapes[shape], len[shape]);
    memcpy(code + imm_at[shape], &v, 4);
    if (shape == 1) { /* whole qwords at once */
        u64 q[2];
        memcpy(q, code, len[shape]);
        for (unsigned k = len[shape]; k < 16; k++) /* keep the bytes after the function */
            ((u8 *)q)[k] = p[k];
        ((volatile u64 *)p)[0] = q[0];
        ((volatile u64 *)p)[1] = q[1];
    } else { /* byte by byte, last byte first */
        for (int k = (int)len[shape] - 1; k >= 0; k--)
            p[k] = code[k];
    }
    return len[shape];
}

static void check_rewritten_functions(void)
{
    u8 *page = page_alloc();
    emit_mov_ret(page + 0, 0x1111);
    emit_mov_ret(page + 256, 0x3333);
    int bad = -1;
    ulong got = 0;
    for (int i = 0; i < 3 * ROUNDS && bad < 0; i++) {
        u32 v = round_value(i, 9);
        emit_shape(page + 128, i % 3, v);
        if ((got = call((ulong)page + 128, 0x5555)) != v)
            bad = i;
        /* the neighbours on the same page are still right (and re-cached each round) */
        if (call((ulong)page, 0) != 0x1111 || call((ulong)page + 256, 0) != 0x3333)
            bad = i;
    }
    TEST_ASSERT(bad < 0, "a function rewritten %d times in 3 shapes (neighbours untouched): round %d got %#lx",
                3 * ROUNDS, bad, got);
}

/* ------------------------------------------------ (d) bulk string writes */
static u8 bulk[3][4096] ALIGNED(4096);

static ulong run_counting(void *entry)
{
    ulong r;
    asm volatile("xor %%eax, %%eax\n\tcall *%1" : "=&a"(r) : "r"(entry) : "memory", "cc");
    return r;
}

static void check_bulk_strings(void)
{
    u8 *b = &bulk[0][0];
    static const unsigned probes[] = { 0, 100, 4094, 4096, 8000 };
    for (int round = 0; round < 4; round++) {
        /* ret everywhere; run it at a few places so that the old code is decoded */
        asm volatile("rep stosb" : "+D"(b), "+c"((ulong){ sizeof(bulk) }) : "a"(0xc3) : "memory");
        b = &bulk[0][0];
        for (size_t k = 0; k < ARRAY_SIZE(probes); k++)
            run_counting(b + probes[k]);
        /* REP STOSD: "inc %eax; nop; nop" over two pages, ret after them */
        void *d = b;
        ulong n = 2 * 4096 / 4;
        asm volatile("rep stosl" : "+D"(d), "+c"(n) : "a"(0x9090c0ffu) : "memory");
        TEST_EQ(run_counting(b), 2048, "REP STOSD wrote 2 pages of code over decoded code: runs from the start");
        TEST_EQ(run_counting(b + 4096), 1024, "... and from the second page");
        TEST_EQ(run_counting(b + 8000), (8192 - 8000) / 4, "... and near its end");

        /* REP MOVSB forward-overlapping by 2 replicates "inc %eax" (element semantics) */
        b[0] = 0xff, b[1] = 0xc0;
        unsigned copies = 3000 + (unsigned)round;
        void *s = b;
        d = b + 2;
        n = 2 * (copies - 1);
        asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
        b[2 * copies] = 0xc3;
        TEST_EQ(run_counting(b), copies, "overlapping REP MOVSB replicated code over decoded code");

        /* REP MOVSB of a function onto code decoded before */
        u8 fn[6];
        emit_mov_ret(fn, round_value(round, 10));
        d = b + 4090; /* straddles into the second page */
        s = fn;
        n = sizeof(fn);
        asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
        TEST_EQ(call((ulong)b + 4090, 0), round_value(round, 10), "REP MOVSB copied a function over decoded code");
    }
}

/* ------------------------------------------------ (e) page-straddling instructions */
static int try_call(u64 va, ulong *ret)
{
    ulong r = 0;
    asm volatile(ASM_TRY("1f") "mov %%rsp, %%r11\n\tcall *%1\n1:\tmov %%r11, %%rsp"
                 : "+a"(r) : "r"(va) : "r11", "rdi", "memory", "cc");
    if (ret)
        *ret = r;
    return exc_vector();
}

struct user_try { u64 va; ulong ret; int vector; };
static ulong user_try_call(ulong arg)
{
    struct user_try *t = (struct user_try *)arg;
    t->vector = try_call(t->va, &t->ret);
    return 0;
}

/* 48 b8 imm64 (movabs $imm, %rax) then c3 (ret), k bytes of it on the first page */
#define MOVABS_LEN 10
static u64 straddle_at(int k) { return PAGE(31) - (u64)k; }
static void emit_movabs(u64 va, u64 imm)
{
    volatile u8 *p = (volatile u8 *)va;
    p[0] = 0x48;
    p[1] = 0xb8;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (u8)(imm >> (8 * i));
    p[10] = 0xc3;
}
static u64 imm_for(int k, int salt) { return 0x0102030405060708ull * (u64)(k + 1) ^ (u64)salt << 40; }

static void check_straddle(void)
{
    u8 *fa = page_alloc(), *fb = page_alloc(), *fb2 = page_alloc(), *fa2 = page_alloc();
    u64 a = PAGE(30), b = PAGE(31);
    pt_map(&pt, a, (ulong)fa, 4096, 4096, PTE_W | PTE_U);
    pt_map(&pt, b, (ulong)fb, 4096, 4096, PTE_W | PTE_U);
    u64 *pte_a = pt_leaf(&pt, a, NULL), *pte_b = pt_leaf(&pt, b, NULL);
    invlpg(a), invlpg(b);
    u64 pte_a_orig = *pte_a, pte_b_orig = *pte_b;
    int bad;
    ulong got = 0;

    /* every split, run twice (the second run comes from the decode cache), then
     * rewritten through the same mapping in the first half, then the second */
    bad = -1;
    for (int k = 1; k <= MOVABS_LEN && bad < 0; k++) {
        emit_movabs(straddle_at(k), imm_for(k, 0));
        for (int rep = 0; rep < 2; rep++)
            if ((got = call(straddle_at(k), 0)) != imm_for(k, 0))
                bad = k;
        for (int byte = 2; byte < MOVABS_LEN; byte++) { /* each imm byte in turn */
            ((volatile u8 *)straddle_at(k))[byte] ^= 0x5a;
            u64 want = imm_for(k, 0) ^ 0x5aull << (8 * (byte - 2));
            if ((got = call(straddle_at(k), 0)) != want)
                bad = 100 * k + byte;
            ((volatile u8 *)straddle_at(k))[byte] ^= 0x5a;
        }
    }
    TEST_ASSERT(bad < 0, "page-straddling MOVABS at every split, each byte rewritten: case %d got %#lx",
                bad, got);

    /* a qword store that itself straddles the boundary rewrites an instruction at the
     * start of the second page */
    bad = -1;
    for (int i = 0; i < 100 && bad < 0; i++) {
        u32 v = round_value(i, 11);
        u64 q = 0xccccccull | 0xb8ull << 24 | (u64)v << 32; /* lands as b8 imm32 at b */
        *(volatile u64 *)(b - 3) = q;
        ((volatile u8 *)b)[5] = 0xc3;
        if ((got = call(b, 0)) != v)
            bad = i;
    }
    TEST_ASSERT(bad < 0, "a store straddling two pages rewrites code on the second: round %d got %#lx",
                bad, got);

    /* remapping either half (PTE + INVLPG) makes the new bytes run */
    bad = -1;
    for (int k = 1; k < MOVABS_LEN && bad < 0; k++) {
        emit_movabs(straddle_at(k), imm_for(k, 1));
        memcpy(fb2, fb, 4096);
        memcpy(fa2, fa, 4096);
        /* fb2/fa2: copies with the imm bytes (instruction bytes 2..9) of their half changed */
        for (int j = 2; j < MOVABS_LEN; j++) {
            if (j >= k)
                fb2[j - k] ^= 0xa5;
            else
                fa2[4096 - k + j] ^= 0x3c;
        }
        u64 want_b = imm_for(k, 1), want_a = imm_for(k, 1);
        for (int byte = 2; byte < MOVABS_LEN; byte++) {
            if (byte >= k)
                want_b ^= 0xa5ull << (8 * (byte - 2));
            else
                want_a ^= 0x3cull << (8 * (byte - 2));
        }
        if ((got = call(straddle_at(k), 0)) != imm_for(k, 1))
            bad = 10 * k;
        *pte_b = ((u64)(ulong)fb2) | (pte_b_orig & 0xfff);
        invlpg(b);
        if ((got = call(straddle_at(k), 0)) != want_b)
            bad = 10 * k + 1;
        *pte_b = pte_b_orig;
        invlpg(b);
        if ((got = call(straddle_at(k), 0)) != imm_for(k, 1))
            bad = 10 * k + 2;
        if (k >= 3) { /* some imm bytes on page a */
            *pte_a = ((u64)(ulong)fa2) | (pte_a_orig & 0xfff);
            invlpg(a);
            if ((got = call(straddle_at(k), 0)) != want_a)
                bad = 10 * k + 3;
            *pte_a = pte_a_orig;
            invlpg(a);
        }
    }
    TEST_ASSERT(bad < 0, "page-straddling MOVABS: remapping either page runs the new bytes: case %d got %#lx",
                bad, got);

    /* faults on the second page: CR2 is the second page, RIP the instruction */
    bool nx = HAS_NX() && (rdmsr(MSR_EFER) & EFER_NXE);
    ulong pfec_i = (nx || (read_cr4() & CR4_SMEP)) ? PFEC_I : 0;
    static const struct {
        const char *what;
        u64 pte_clear, pte_set;
        bool user;
        u64 pfec;
        bool needs_nx;
    } faults[] = {
        { "not present", PTE_P, 0, false, 0, false },
        { "not present, CPL 3", PTE_P, 0, true, PFEC_U, false },
        { "NX", 0, PTE_NX, false, PFEC_P, true },
        { "NX, CPL 3", 0, PTE_NX, true, PFEC_P | PFEC_U, true },
        { "supervisor-only, CPL 3", PTE_U, 0, true, PFEC_P | PFEC_U, false },
    };
    for (size_t f = 0; f < ARRAY_SIZE(faults); f++) {
        if (faults[f].needs_nx && !nx) {
            test_skip("straddling fetch, second page %s: no NX", faults[f].what);
            continue;
        }
        u64 want_pfec = faults[f].pfec | pfec_i;
        bad = -1;
        int vec = 0;
        ulong err = 0, cr2 = 0, ip = 0;
        for (int k = 1; k <= MOVABS_LEN && bad < 0; k++) {
            emit_movabs(straddle_at(k), imm_for(k, 2));
            call(straddle_at(k), 0); /* decoded and cached while the page is there */
            *pte_b = (pte_b_orig & ~faults[f].pte_clear) | faults[f].pte_set;
            invlpg(b);
            if (faults[f].user) {
                struct user_try t = { straddle_at(k), 0, 0 };
                run_user(user_try_call, (ulong)&t, 0);
                vec = t.vector;
            } else {
                vec = try_call(straddle_at(k), NULL);
            }
            err = exc_last.error, cr2 = exc_last.cr2, ip = exc_last.ip;
            u64 want_ip = k < MOVABS_LEN ? straddle_at(k) : b; /* k = 10: the RET faults */
            if (vec != PF_VECTOR || err != want_pfec || cr2 != b || ip != want_ip)
                bad = k;
            *pte_b = pte_b_orig;
            invlpg(b);
        }
        TEST_ASSERT(bad < 0, "straddling fetch, second page %s: #PF err %#llx CR2 = second page (split %d: vector %d err %#lx cr2 %#lx rip %#lx)",
                    faults[f].what, (unsigned long long)want_pfec, bad, vec, err, cr2, ip);
    }

    /* An instruction that ends exactly at the end of its page does not touch the next:
     * first where nothing was decoded before, then where a straddling instruction was
     * (a stale decode must not make the CPU fetch the old instruction's length). */
    u8 *fc = page_alloc();
    u64 c = PAGE(40), not_present = PAGE(41);
    pt_map(&pt, c, (ulong)fc, 4096, 4096, PTE_W | PTE_U);
    invlpg(c);
    emit_mov_ret((volatile u8 *)(not_present - 6), 0x600d);
    int vec = try_call(not_present - 6, &got);
    TEST_ASSERT(vec == NO_EXCEPTION && got == 0x600d,
                "code ending at a page end before a not-present page runs without #PF (got %#lx, vector %d cr2 %#lx)",
                got, vec, (ulong)exc_last.cr2);
    emit_movabs(straddle_at(6), 0x1234567890abcdefull);
    call(straddle_at(6), 0); /* decoded: 10 bytes at b - 6, 4 of them on page b */
    emit_mov_ret((volatile u8 *)(b - 6), 0x600d);
    *pte_b = pte_b_orig & ~PTE_P;
    invlpg(b);
    vec = try_call(b - 6, &got);
    TEST_ASSERT(vec == NO_EXCEPTION && got == 0x600d,
                "... also where a page-straddling instruction was decoded before (got %#lx, vector %d cr2 %#lx)",
                got, vec, (ulong)exc_last.cr2);
    *pte_b = pte_b_orig;
    invlpg(b);
}

/* ------------------------------------------------ (f) remapping the running page */
/* selfmap_*: store RDI (a new PTE) to [RSI] (our own PTE), flush the translation of
 * RDX (our own page), then "mov $imm32, %eax; ret" from whichever frame is mapped now.
 * The two frames hold the same bytes except the immediate. */
asm(".pushsection .text.smc, \"ax\"\n"
    ".globl selfmap_invlpg, selfmap_invlpg_end, selfmap_cr3, selfmap_cr3_end\n"
    "selfmap_invlpg:\n"
    "  movq %rdi, (%rsi)\n"
    "  invlpg (%rdx)\n"
    "  movl $0x11111111, %eax\n"
    "  ret\n"
    "selfmap_invlpg_end:\n"
    "selfmap_cr3:\n"
    "  movq %rdi, (%rsi)\n"
    "  movq %cr3, %rcx\n"
    "  movq %rcx, %cr3\n"
    "  movl $0x11111111, %eax\n"
    "  ret\n"
    "selfmap_cr3_end:\n"
    ".popsection\n");
extern const u8 selfmap_invlpg[], selfmap_invlpg_end[], selfmap_cr3[], selfmap_cr3_end[];

typedef ulong (*selfmap_fn)(u64 pte, u64 *pte_ptr, u64 va);

static void check_remap_running_page(void)
{
    static const struct {
        const char *what;
        const u8 *start, *end;
    } forms[] = {
        { "INVLPG", selfmap_invlpg, selfmap_invlpg_end },
        { "MOV CR3", selfmap_cr3, selfmap_cr3_end },
    };
    u8 *frame[2] = { page_alloc(), page_alloc() };
    u64 va = PAGE(40);
    for (size_t f = 0; f < ARRAY_SIZE(forms); f++) {
        size_t len = (size_t)(forms[f].end - forms[f].start);
        for (int k = 0; k < 2; k++) {
            memcpy(frame[k], forms[f].start, len);
            /* the immediate of "movl $imm32, %eax" is the 4 bytes before the final ret */
            u32 imm = k == 0 ? 0xaaaa0000u : 0xbbbb0001u;
            memcpy(frame[k] + len - 5, &imm, 4);
        }
        pt_map(&pt, va, (ulong)frame[0], 4096, 4096, PTE_W);
        u64 *pte = pt_leaf(&pt, va, NULL);
        invlpg(va);
        u64 pte_for[2] = { *pte, (*pte & ~0x000ffffffffff000ull) | (ulong)frame[1] };
        int bad = -1;
        ulong got = 0, want = 0;
        for (int i = 0; i < ROUNDS && bad < 0; i++) {
            int to = (i + 1) & 1; /* running from frame i & 1, switching to the other */
            asm volatile("" ::: "memory");
            got = ((selfmap_fn)va)(pte_for[to], pte, va);
            want = to == 0 ? 0xaaaa0000u : 0xbbbb0001u;
            if (got != want)
                bad = i;
        }
        TEST_ASSERT(bad < 0, "%s of the running page: the next instruction comes from the new frame: round %d got %#lx, want %#lx",
                    forms[f].what, bad, got, want);
        *pte = pte_for[0];
        invlpg(va);
    }
}

/* ------------------------------------------------ (g) remapped into a straddle */
static void check_remap_into_straddle(void)
{
    u8 *fa = page_alloc(), *fb = page_alloc(), *fnext = page_alloc();
    u64 va = PAGE(50), next = PAGE(51), entry = va + 4094;
    memset(fa, 0xcc, 4096);
    memset(fb, 0xcc, 4096);
    fa[4094] = 0x31, fa[4095] = 0xc0;  /* xor %eax, %eax (ends at the page end) */
    fb[4094] = 0xb8, fb[4095] = 0x5a;  /* mov $0x9090905a, %eax (3 bytes on the next page) */
    static const u8 tail[] = { 0x90, 0x90, 0x90, 0xc3 }; /* 3 NOPs (or imm bytes), ret */
    memcpy(fnext, tail, sizeof(tail));
    pt_map(&pt, va, (ulong)fa, 4096, 4096, 0);
    pt_map(&pt, next, (ulong)fnext, 4096, 4096, 0);
    u64 *pte = pt_leaf(&pt, va, NULL);
    invlpg(va), invlpg(next);
    u64 pte_a = *pte, pte_b = (*pte & ~0x000ffffffffff000ull) | (ulong)fb;
    int bad = -1;
    ulong got = 0;
    for (int i = 0; i < 100 && bad < 0; i++) {
        if ((got = call(entry, 0)) != 0)
            bad = 3 * i;
        *pte = pte_b;
        invlpg(va);
        if ((got = call(entry, 0)) != 0x9090905a)
            bad = 3 * i + 1;
        *pte = pte_a;
        invlpg(va);
        if ((got = call(entry, 0)) != 0)
            bad = 3 * i + 2;
    }
    TEST_ASSERT(bad < 0, "an address whose instruction fits its page, remapped so that it straddles, and back: case %d got %#lx",
                bad, got);
}

void test_main(void)
{
    pt_init(&pt, rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL);
    pt_map_identity(&pt, PTE_W | PTE_U);
    pt_activate(&pt, 0);

    check_next_instruction();
    check_aliases();
    check_rewritten_functions();
    check_bulk_strings();
    check_straddle();
    check_remap_running_page();
    check_remap_into_straddle();
}

/* Arithmetic flags across instructions: what one instruction leaves in CF/PF/AF/ZF/SF/OF
 * is what the next reader sees, whichever reader it is (Jcc/SETcc/CMOVcc, ADC/SBB,
 * RCL, LAHF, PUSHF, CMC, an exception frame), whichever instructions in between keep
 * some flags (INC/DEC keep CF, STC/CMC touch only CF, MOV/LEA none), at every operand
 * size, and across a fault taken between producer and reader. The expected values are
 * worked out from the SDM's definitions of each flag. */
#include "rt.h"

#define FL_PF BIT(2)
#define FL_AF BIT(4)
#define FL_SF BIT(7)
#define ARITH (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF)

static void check_kept_by_inc_dec(void)
{
    ulong f, rcx;
    /* CMP 1 - 2 borrows (CF=1); INC of -1 gives 0: ZF=1, PF=1, AF=1 (0xf + 1), CF kept */
    asm volatile("mov $1, %%eax; cmp $2, %%eax; mov $-1, %%ecx; inc %%ecx; pushfq; pop %0"
                 : "=r"(f) :: "rax", "rcx", "cc");
    TEST_EQ(f & ARITH, FL_CF | FL_ZF | FL_PF | FL_AF, "CMP (CF=1) then INC to 0: CF kept, ZF/PF/AF from INC");
    /* ADD -1 + 1 carries (CF=1); DEC 5 -> 4 keeps CF; ADC 0 adds it back */
    asm volatile("mov $-1, %%rax; add $1, %%rax; mov $5, %%ecx; dec %%ecx; adc $0, %%ecx"
                 : "=c"(rcx) :: "rax", "cc");
    TEST_EQ(rcx, 5, "ADD carries, DEC keeps CF, ADC adds it: 5 - 1 + 1");
    /* DEC of 0x80 (8-bit) overflows: OF=1, SF=0; CF from the XOR before it (0) */
    asm volatile("xor %%eax, %%eax; mov $0x80, %%cl; dec %%cl; pushfq; pop %0"
                 : "=r"(f) :: "rax", "rcx", "cc");
    TEST_EQ(f & ARITH, FL_OF | FL_AF, "XOR (CF=0) then 8-bit DEC 0x80: OF, AF (0x0 - 1), CF kept clear");
}

static void check_carry_readers(void)
{
    ulong rcx, rbx;
    /* CMP 0 - 1 borrows; SBB 10 - 3 - 1 */
    asm volatile("xor %%eax, %%eax; cmp $1, %%eax; mov $10, %%ecx; sbb $3, %%ecx"
                 : "=c"(rcx) :: "rax", "cc");
    TEST_EQ(rcx, 6, "CMP borrows, SBB subtracts it: 10 - 3 - 1");
    /* the borrow of a 16-bit SUB, rotated into EBX by RCL */
    asm volatile("mov $1, %%ax; sub $2, %%ax; mov $0, %%ebx; rcl $1, %%ebx"
                 : "=b"(rbx) :: "rax", "cc");
    TEST_EQ(rbx, 1, "16-bit SUB borrows, RCL rotates CF in");
    /* CMC inverts the CF of a CMP and keeps its ZF */
    u8 c, z;
    asm volatile("mov $7, %%eax; cmp $7, %%eax; stc; cmc; setc %0; setz %1"
                 : "=q"(c), "=q"(z) :: "rax", "cc");
    TEST_ASSERT(c == 0 && z == 1, "CMP equal (ZF=1), STC, CMC: CF=0, ZF still 1 (got CF=%u ZF=%u)", c, z);
}

static void check_conditions(void)
{
    u8 l, le, g, b, be, o, s, p;
    /* 8-bit: 0x80 - 0x01 = 0x7f overflows: SF=0, OF=1, so "less" (-128 < 1) */
    asm volatile("mov $0x80, %%al; cmp $1, %%al; setl %0; setle %1; setg %2; setb %3; setbe %4; seto %5"
                 : "=q"(l), "=q"(le), "=q"(g), "=q"(b), "=q"(be), "=q"(o) :: "rax", "cc");
    TEST_ASSERT(l && le && !g && !b && !be && o,
                "8-bit CMP 0x80, 1: L LE !G !B !BE O (got %u %u %u %u %u %u)", l, le, g, b, be, o);
    /* 16-bit: 0x8000 - 1 overflows too */
    asm volatile("mov $0x8000, %%ax; sub $1, %%ax; seto %0; setb %1; sets %2" : "=q"(o), "=q"(b), "=q"(s) :: "rax", "cc");
    TEST_ASSERT(o && !b && !s, "16-bit SUB 0x8000 - 1: OF, no CF, SF=0 (got %u %u %u)", o, b, s);
    /* 64-bit unsigned compare: 1 - 2^63 borrows, signed it does not overflow */
    asm volatile("mov $1, %%rax; mov $0x8000000000000000, %%rdx; cmp %%rdx, %%rax; setb %0; setl %1; seto %2"
                 : "=q"(b), "=q"(l), "=q"(o) :: "rax", "rdx", "cc");
    TEST_ASSERT(b && !l && o, "64-bit CMP 1, 2^63: B, !L (1 > -2^63), OF (got %u %u %u)", b, l, o);
    /* TEST of a negative value: SF=1, OF=CF=0; parity of the low byte 0xfb (7 bits set) */
    asm volatile("mov $-5, %%eax; test %%eax, %%eax; setl %0; setle %1; setg %2; setbe %3; setp %4"
                 : "=q"(l), "=q"(le), "=q"(g), "=q"(be), "=q"(p) :: "rax", "cc");
    TEST_ASSERT(l && le && !g && !be && !p, "TEST -5: L LE !G !BE, odd parity (got %u %u %u %u %u)",
                l, le, g, be, p);
    /* CMOVcc after ADD, with a MOV and LEA (no flags) in between */
    ulong r;
    asm volatile("mov $0x7fffffff, %%eax; add $1, %%eax; mov $1, %%ecx; lea 2(%%rcx), %%rdx; mov $9, %0; cmovo %%rdx, %0"
                 : "=&r"(r) :: "rax", "rcx", "rdx", "cc");
    TEST_EQ(r, 3, "ADD overflows, MOV and LEA keep the flags, CMOVO moves");
    /* a DEC/JNZ loop */
    ulong sum = 0;
    asm volatile("mov $100, %%ecx; 1: add %%rcx, %0; dec %%ecx; jnz 1b" : "+r"(sum) :: "rcx", "cc");
    TEST_EQ(sum, 5050, "DEC/JNZ loop sums 1..100");
}

static void check_flag_images(void)
{
    ulong f;
    ulong ax;
    /* SUB 0x10 - 0x11 = -1: CF SF PF (0xff) AF (0 - 1 in the low nibble), not ZF/OF */
    asm volatile("mov $0x10, %%eax; sub $0x11, %%eax; lahf" : "=a"(ax) :: "cc");
    TEST_EQ((ax >> 8) & 0xff, 0x97, "LAHF after SUB 0x10 - 0x11: SF AF PF CF and bit 1");
    /* PUSHF saves what CMP produced; XOR changes the flags; POPF brings them back */
    u8 c, z;
    asm volatile("mov $1, %%eax; cmp $2, %%eax; pushfq; xor %%eax, %%eax; popfq; setc %0; setz %1"
                 : "=q"(c), "=q"(z) :: "rax", "cc", "memory");
    TEST_ASSERT(c == 1 && z == 0, "PUSHF after CMP, XOR, POPF: CF=1 ZF=0 again (got %u %u)", c, z);
    /* ADD 0x7f + 1 (8-bit) in AL: OF SF AF, not CF/ZF; low byte 0x80 has odd parity */
    asm volatile("mov $0x7f, %%al; add $1, %%al; pushfq; pop %0" : "=r"(f) :: "rax", "cc");
    TEST_EQ(f & ARITH, FL_OF | FL_SF | FL_AF, "PUSHF after 8-bit ADD 0x7f + 1");
}

/* A fault between the producer and the reader: the #PF is delivered with the producer's
 * flags in its frame, and the code resumes (at the fixup) with them. */
static void check_across_fault(void)
{
    static struct page_table pt;
    pt_init(&pt, rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL);
    pt_map_identity(&pt, PTE_W);
    pt_activate(&pt, 0);
    volatile u32 *unmapped = (volatile u32 *)0x8000000000ull; /* PML4 slot 1: not mapped */
    ulong f;
    /* CMP 3 - 5: CF SF AF (3 - 5 borrows in the low nibble), PF (0xfe: 7 bits -> odd: no) */
    asm volatile("mov $3, %%eax; cmp $5, %%eax\n\t" ASM_TRY("1f")
                 "mov (%1), %%edx\n"
                 "1: pushfq; pop %0"
                 : "=r"(f) : "r"(unmapped) : "rax", "rdx", "cc", "memory");
    int v = exc_vector();
    TEST_EQ(v, PF_VECTOR, "the load faults");
    TEST_EQ(exc_last.flags & ARITH, FL_CF | FL_SF | FL_AF, "the #PF frame holds the CMP's flags");
    TEST_EQ(f & ARITH, FL_CF | FL_SF | FL_AF, "after the fault, the CMP's flags are still there");

    /* ROL reads the CMP's flags (it keeps all but CF/OF), then its store to a read-only
     * page faults: the #PF frame still holds the CMP's flags, not those from before it
     * (ZF|PF, set through POPF so that they differ) */
    u8 *ro = page_alloc();
    u64 ro_va = 0x8000001000ull;
    pt_map(&pt, ro_va, (ulong)ro, 4096, 4096, 0);
    write_cr0(read_cr0() | CR0_WP);
    invlpg(ro_va);
    asm volatile("pushfq; andq $~0x8d5, (%%rsp); orq $0x44, (%%rsp); popfq\n\t"
                 "mov $3, %%eax; cmp $5, %%eax\n\t" ASM_TRY("1f")
                 "roll $1, (%1)\n"
                 "1: pushfq; pop %0"
                 : "=r"(f) : "r"(ro_va) : "rax", "cc", "memory");
    v = exc_vector();
    TEST_EQ(v, PF_VECTOR, "ROL's store to a read-only page faults");
    TEST_EQ(exc_last.flags & ARITH, FL_CF | FL_SF | FL_AF, "that #PF frame holds the CMP's flags");
    TEST_EQ(f & ARITH, FL_CF | FL_SF | FL_AF, "and they are still there after the fault");

    /* Faults in the middle of straight-line code: what ran before stays done, the
     * faulting instruction leaves no trace (registers, flags, memory), whatever it is:
     * a load-and-add from an unmapped page, a read-modify-write whose store hits the
     * read-only page (ADD, INC). */
    static const struct {
        const char *what;
        int form;
    } forms[] = { { "ADD from an unmapped page", 0 }, { "ADD to a read-only page", 1 },
                  { "INC of a read-only page", 2 } };
    *(volatile u32 *)ro = 0x1234;
    for (size_t k = 0; k < ARRAY_SIZE(forms); k++) {
        ulong ecx = 0, rip = 0;
        /* CMP 3 - 5, ECX = 77, then the faulting instruction (label 2) */
#define FAULT_MIDLINE(insn, ptr)                                                          \
    asm volatile("mov $3, %%eax; cmp $5, %%eax; mov $77, %%ecx\n\t" ASM_TRY("1f")          \
                 "2: " insn "\n"                                                           \
                 "1: pushfq; pop %0; lea 2b(%%rip), %2"                                    \
                 : "=r"(f), "=c"(ecx), "=r"(rip) : "r"(ptr) : "rax", "cc", "memory")
        switch (forms[k].form) {
        case 0: FAULT_MIDLINE("add (%3), %%ecx", unmapped); break;
        case 1: FAULT_MIDLINE("add %%ecx, (%3)", ro_va); break;
        default: FAULT_MIDLINE("incl (%3)", ro_va); break;
        }
#undef FAULT_MIDLINE
        v = exc_vector();
        TEST_ASSERT(v == PF_VECTOR && exc_last.ip == rip && ecx == 77 &&
                        (f & ARITH) == (FL_CF | FL_SF | FL_AF) && *(volatile u32 *)ro == 0x1234,
                    "%s: #PF at the instruction (vector %d, ip %s), ECX kept (%lu), CMP's flags kept (%#lx), memory unchanged",
                    forms[k].what, v, exc_last.ip == rip ? "right" : "wrong", ecx, (ulong)(f & ARITH));
    }
}

void test_main(void)
{
    check_kept_by_inc_dec();
    check_carry_readers();
    check_conditions();
    check_flag_images();
    check_across_fault();
}

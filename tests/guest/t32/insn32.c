/* 32-bit-only instructions and 32-bit exception cases: BCD adjustments (DAA, DAS, AAA,
 * AAS, AAM, AAD; AAM 0 -> #DE), INTO (#OF), BOUND (#BR), PUSHA/POPA, ENTER/LEAVE,
 * SYSENTER/SYSEXIT, SALC, and error codes pushed in 32-bit frames. */
#include "rt.h"

static void check_bcd(void)
{
    u32 a;
    u32 fl;
    a = 0x79;
    asm("addb $0x35, %%al; daa; pushf; pop %1" : "+a"(a), "=r"(fl));
    TEST_ASSERT((a & 0xff) == 0x14 && (fl & FL_CF), "DAA: 79 + 35 = 114 (al %#x)", a & 0xff);
    a = 0x35;
    asm("subb $0x47, %%al; das; pushf; pop %1" : "+a"(a), "=r"(fl));
    TEST_ASSERT((a & 0xff) == 0x88 && (fl & FL_CF), "DAS: 35 - 47 = -12 -> 88 borrow (al %#x)", a & 0xff);
    a = 0x0009;
    asm("addb $8, %%al; aaa" : "+a"(a));
    TEST_EQ(a & 0xffff, 0x0107, "AAA: 9 + 8 = 17 unpacked");
    a = 0x0103;
    asm("subb $5, %%al; aas" : "+a"(a));
    TEST_EQ(a & 0xffff, 0x0008, "AAS: 13 - 5 = 8 unpacked");
    a = 63;
    asm("aam" : "+a"(a));
    TEST_EQ(a & 0xffff, 0x0603, "AAM: 63 -> 06 03");
    a = 0x0603;
    asm("aad" : "+a"(a));
    TEST_EQ(a & 0xffff, 63, "AAD: 06 03 -> 63");
    a = 0x0100;
    asm(".byte 0xd5, 0x10" : "+a"(a)); /* AAD base 16 */
    TEST_EQ(a & 0xffff, 16, "AAD imm8 = 16");
    asm volatile(ASM_TRY("1f") ".byte 0xd4, 0x00\n1:" ::"a"(5) : "memory"); /* AAM 0 */
    TEST_EQ(exc_vector(), DE_VECTOR, "AAM 0: #DE");
}

static void check_into_bound(void)
{
    ulong after;
    asm volatile(ASM_TRY("1f") "movl $0x7fffffff, %%eax\n\taddl $1, %%eax\n\t" ASM_LABEL_ADDR("1f", "%0") "into\n1:"
                 : "=&r"(after) :: "eax", "memory");
    TEST_ASSERT(exc_vector() == OF_VECTOR && exc_last.ip == after, "INTO with OF=1: #OF trap, EIP after it");
    asm volatile(ASM_TRY("1f") "xorl %%eax, %%eax\n\tinto\n1:" ::: "eax", "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "INTO with OF=0: nothing");
    static s32 bounds[2] = {10, 20};
    ulong at;
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") "1: bound %1, %2\n2:" : "=&r"(at) : "r"(15), "m"(bounds) : "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "BOUND within range");
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") "1: bound %1, %2\n2:" : "=&r"(at) : "r"(21), "m"(bounds) : "memory");
    TEST_ASSERT(exc_vector() == BR_VECTOR && exc_last.ip == at, "BOUND above: #BR fault at BOUND");
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") "1: bound %1, %2\n2:" : "=&r"(at) : "r"(-1), "m"(bounds) : "memory");
    TEST_EQ(exc_vector(), BR_VECTOR, "BOUND below (signed): #BR");
    asm volatile(ASM_TRY("1f") ".byte 0x62, 0xc0\n1:" ::: "memory"); /* BOUND with a register operand */
    TEST_EQ(exc_vector(), UD_VECTOR, "BOUND with a register operand: #UD");
}

static void check_stack_insns(void)
{
    u32 out[8];
    asm volatile("pushal\n\t"
                 "movl $1, %%eax\n\tmovl $2, %%ecx\n\tmovl $3, %%edx\n\tmovl $4, %%ebx\n\t"
                 "movl %%esp, %%esi\n\t"
                 "movl 0(%%esi), %%edi\n\tmovl %%edi, 0(%0)\n\t"   /* edi slot */
                 "movl 12(%%esi), %%edi\n\tmovl %%edi, 12(%0)\n\t" /* esp slot */
                 "leal 32(%%esi), %%edi\n\tmovl %%edi, 16(%0)\n\t"
                 "popal"
                 :: "r"(out) : "eax", "ecx", "edx", "ebx", "esi", "edi", "memory");
    TEST_EQ(out[3], out[4], "PUSHA: pushes the ESP from before it");
    u32 ebp_in, ebp_frame, esp_diff;
    asm volatile("movl %%ebp, %0\n\t"
                 "movl %%esp, %%ecx\n\t"
                 "enter $16, $0\n\t"
                 "movl %%ebp, %1\n\t"
                 "subl %%esp, %%ecx\n\t"
                 "movl %%ecx, %2\n\t"
                 "leave"
                 : "=&r"(ebp_in), "=&r"(ebp_frame), "=&r"(esp_diff) :: "ecx", "memory");
    TEST_EQ(esp_diff, 20, "ENTER 16,0: pushes EBP and reserves 16 bytes");
    u16 w;
    asm("movl $0x12345678, %%eax\n\tmovw $0xffff, %%ax\n\tincw %%ax\n\tmovw %%ax, %0" : "=r"(w) :: "eax");
    TEST_EQ(w, 0, "16-bit operand-size prefix");
    u32 cnt = 0;
    asm("movl $5, %%ecx\n1:\tincl %0\n\tloop 1b" : "+r"(cnt) :: "ecx");
    TEST_EQ(cnt, 5, "LOOP");
}

/* SYSENTER/SYSEXIT need CS, CS+8 (SS), CS+16 (user CS), CS+24 (user SS) in a row */
#define SE_BASE (GDT_FIRST_FREE + 4)
extern u8 sysenter_entry[];
static volatile u32 se_seen[4];
asm(".text\n"
    "sysenter_entry:\n"
    "  mov %cs, %eax\n"
    "  mov %eax, %ss:se_seen\n"
    "  mov %ss, %eax\n"
    "  mov %eax, %ss:se_seen+4\n"
    "  mov %esp, %ss:se_seen+8\n"
    "  mov $0x77, %eax\n"
    "  sysexit\n");           /* EIP = EDX, ESP = ECX */

static ulong user_sysenter(ulong unused)
{
    (void)unused;
    ulong ret, cs;
    asm volatile("movl %%esp, %%ecx\n\tmovl $1f, %%edx\n\tsysenter\n1:\tmov %%cs, %1"
                 : "=a"(ret), "=r"(cs) :: "ecx", "edx", "memory");
    /* SYSEXIT loads CS/SS from the MSR; DS keeps the user selector */
    return ret == 0x77 && cs == (u32)((SE_BASE + 2) * 8 + 3);
}

static void sysenter_in_user(void *out) { *(ulong *)out = run_user(user_sysenter, 0, 0); }

static void check_sysenter(void)
{
    if (!HAS_SEP()) {
        test_skip("SYSENTER: not in CPUID");
        return;
    }
    gdt_set(SE_BASE, 0, 0xfffff, 0x9a, DESC_G | DESC_DB);
    gdt_set(SE_BASE + 1, 0, 0xfffff, 0x92, DESC_G | DESC_DB);
    gdt_set(SE_BASE + 2, 0, 0xfffff, 0xfa, DESC_G | DESC_DB);
    gdt_set(SE_BASE + 3, 0, 0xfffff, 0xf2, DESC_G | DESC_DB);
    ulong r = 0;
    wrmsr(MSR_SYSENTER_CS, 0);
    int v = exc_catch(sysenter_in_user, &r);
    TEST_ASSERT(v == GP_VECTOR && exc_last.error == 0, "SYSENTER with SYSENTER_CS = 0: #GP(0) (vector %d)", v);
    ulong esp0 = (ulong)kernel_stack + sizeof(kernel_stack);
    wrmsr(MSR_SYSENTER_CS, SE_BASE * 8);
    wrmsr(MSR_SYSENTER_ESP, esp0);
    wrmsr(MSR_SYSENTER_EIP, (ulong)sysenter_entry);
    v = exc_catch(sysenter_in_user, &r);
    TEST_ASSERT(v == NO_EXCEPTION && r == 1, "SYSENTER/SYSEXIT round trip from ring 3 (vector %d)", v);
    TEST_EQ(se_seen[0], SE_BASE * 8, "SYSENTER: CS = SYSENTER_CS");
    TEST_EQ(se_seen[1], SE_BASE * 8 + 8, "SYSENTER: SS = SYSENTER_CS + 8");
    TEST_EQ(se_seen[2], esp0, "SYSENTER: ESP = SYSENTER_ESP");
    wrmsr(MSR_SYSENTER_CS, 0);
}

static void check_error_codes(void)
{
    /* a #GP with an error code in a 32-bit frame */
    asm volatile(ASM_TRY("1f") "mov %0, %%ds\n1:" ::"r"(0x1008) : "memory");
    TEST_ASSERT(exc_vector() == GP_VECTOR && exc_last.error == 0x1008, "32-bit frame: #GP error code");
    asm volatile("mov %0, %%ds" ::"r"(SEL_KDATA));
}

/* SALC (D6): AL = CF ? FFh : 00h, the other bits of EAX and every flag unchanged. */
static void check_salc(void)
{
    u32 a = 0x12345600, fl_before, fl_after;
    /* 80h - 81h: CF=1, SF=1, AF=1, PF=1; SALC keeps them all */
    asm volatile("movl $0x80, %%edx\n\tcmpb $0x81, %%dl\n\t"
                 "pushf; pop %1\n\t.byte 0xd6\n\tpushf; pop %2"
                 : "+a"(a), "=&r"(fl_before), "=&r"(fl_after) :: "edx", "cc");
    TEST_ASSERT(fl_before & FL_CF, "the CF=1 case has CF set");
    TEST_EQ(a, 0x123456ffu, "SALC with CF=1: AL = FF, rest of EAX kept");
    TEST_EQ(fl_after, fl_before, "SALC with CF=1: flags unchanged");
    /* 81h - 80h: CF=0, ZF=0, OF=0 */
    a = 0xabcdef77;
    asm volatile("movl $0x81, %%edx\n\tcmpb $0x80, %%dl\n\t"
                 "pushf; pop %1\n\t.byte 0xd6\n\tpushf; pop %2"
                 : "+a"(a), "=&r"(fl_before), "=&r"(fl_after) :: "edx", "cc");
    TEST_ASSERT(!(fl_before & FL_CF), "the CF=0 case has CF clear");
    TEST_EQ(a, 0xabcdef00u, "SALC with CF=0: AL = 0, rest of EAX kept");
    TEST_EQ(fl_after, fl_before, "SALC with CF=0: flags unchanged");
}

void test_main(void)
{
    check_salc();
    check_bcd();
    check_into_bound();
    check_stack_insns();
    check_sysenter();
    check_error_codes();
}

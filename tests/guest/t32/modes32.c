/* Operating modes from 32-bit protected mode: the multiboot entry state, a 16-bit
 * protected-mode code segment (far call/return, 16-bit operand size), and a round trip
 * through real mode (CR0.PE off, segment arithmetic, a real-mode interrupt through an
 * IVT of our own, operand-size prefix) and back to protected mode. */
#include "rt.h"

#define BLOB 0x7000u     /* 16-bit code is copied here (must be below 64 KiB) */
#define DATA 0x6000u     /* results written by the 16-bit code */
#define IVT 0x5800u      /* our own real-mode interrupt vector table */
#define RM_VECTOR 0x30
#define BLOB_OFF(sym) (BLOB + (u32)((ulong)(sym) - (ulong)blob_start))

extern u8 blob_start[], blob_end[], pm16_func[], pm16_to_real[], rm_int_handler[];
extern u32 rm_saved_esp;
void rm_trip(void);

asm(".pushsection .rodata\n"
    ".code16\n"
    "blob_start:\n"
    /* 16-bit protected mode, called with lcall from 32-bit code */
    "pm16_func:\n"
    "  mov %esp, %ebx\n"
    "  push %ax\n"
    "  mov %esp, %ecx\n"
    "  pop %ax\n"
    "  sub %ecx, %ebx\n"
    "  mov %ebx, (0x6000)\n"          /* stack delta of a 16-bit push: 2 */
    "  mov $0xffff, %ax\n"
    "  inc %ax\n"                     /* 16-bit wrap: ax = 0, ZF */
    "  pushf\n"
    "  pop %cx\n"
    "  mov %ax, (0x6004)\n"
    "  mov %cx, (0x6006)\n"
    "  call 1f\n"                     /* near call/ret with 16-bit IP */
    "  movw $0x1616, (0x6008)\n"
    "  pushf\n"                       /* 16-bit IRET: pops IP, CS, FLAGS (2 bytes each) */
    "  push %cs\n"
    "  push $(0x7000 + 2f - blob_start)\n"
    "  mov %esp, %ebx\n"
    "  iret\n"
    "2: mov %esp, %ecx\n"
    "  sub %ebx, %ecx\n"
    "  mov %ecx, (0x600c)\n"          /* 6 */
    "  lretl\n"
    "1: ret\n"
    /* 16-bit protected mode on the way to real mode */
    "pm16_to_real:\n"
    "  mov $0x58, %ax\n"
    "  mov %ax, %ds\n"
    "  mov %ax, %es\n"
    "  mov %ax, %ss\n"
    "  mov %cr0, %eax\n"
    "  and $0xfffffffe, %eax\n"
    "  mov %eax, %cr0\n"
    "  ljmp $0, $(0x7000 + rm_entry - blob_start)\n"
    "rm_entry:\n"
    "  xor %ax, %ax\n"
    "  mov %ax, %ds\n"
    "  mov %ax, %ss\n"
    "  mov $0x6ff0, %sp\n"
    "  movw $0x1234, (0x6010)\n"
    "  mov %cs, %ax\n"
    "  mov %ax, (0x6012)\n"           /* CS = 0 in real mode */
    "  mov $0x0500, %ax\n"
    "  mov %ax, %es\n"
    "  movw $0xbeef, %es:(0x0020)\n"  /* physical 0x5020 */
    "  lidt (0x6040)\n"               /* real-mode IDTR: base IVT, limit 0x3ff */
    "  mov %sp, %bx\n"
    "  int $0x30\n"
    "  mov %sp, %cx\n"
    "  sub %cx, %bx\n"
    "  mov %bx, (0x6014)\n"           /* SP restored by IRET: 0 */
    "  mov %sp, %bx\n"
    "  push %ax\n"
    "  mov %sp, %cx\n"
    "  pop %ax\n"
    "  sub %cx, %bx\n"
    "  mov %bx, (0x6016)\n"           /* 16-bit push: 2 */
    "  mov $0x12345678, %eax\n"       /* operand-size prefix */
    "  mov %eax, (0x6018)\n"
    "  pushl %eax\n"
    "  mov %sp, %bx\n"
    "  popl %eax\n"
    "  mov %sp, %cx\n"
    "  sub %bx, %cx\n"
    "  mov %cx, (0x601c)\n"           /* 32-bit pop: 4 */
    /* back to protected mode */
    "  mov %cr0, %eax\n"
    "  or $1, %eax\n"
    "  mov %eax, %cr0\n"
    "  ljmpl $0x08, $pm32_back\n"
    "rm_int_handler:\n"
    "  pushf\n"
    "  pop %ax\n"
    "  mov %ax, (0x6020)\n"           /* FLAGS inside: IF and TF cleared */
    "  mov %sp, %bp\n"
    "  mov (%bp), %ax\n"
    "  mov %ax, (0x6022)\n"           /* pushed IP */
    "  mov 2(%bp), %ax\n"
    "  mov %ax, (0x6024)\n"           /* pushed CS */
    "  movw $0x5678, (0x6026)\n"
    "  iret\n"
    "blob_end:\n"
    ".code32\n"
    ".popsection\n"
    ".text\n"
    ".globl rm_trip\n"
    "rm_trip:\n"
    "  pushal\n"
    "  mov %esp, rm_saved_esp\n"
    "  ljmp $0x50, $(0x7000 + pm16_to_real - blob_start)\n"
    "pm32_back:\n"
    "  mov $0x18, %ax\n"
    "  mov %ax, %ds\n"
    "  mov %ax, %es\n"
    "  mov %ax, %ss\n"
    "  mov %ax, %fs\n"
    "  mov %ax, %gs\n"
    "  mov rm_saved_esp, %esp\n"
    "  popal\n"
    "  ret\n"
    ".data\n"
    "rm_saved_esp: .long 0\n"
    ".text\n");

static void check_entry_state(void)
{
    TEST_EQ(mb_magic, 0x2badb002, "multiboot: EAX magic at entry");
    TEST_ASSERT(mb_info != 0, "multiboot: EBX info pointer (%#x)", mb_info);
    if (mb_info) {
        u32 flags = *(u32 *)(ulong)mb_info;
        TEST_ASSERT(flags & 1, "multiboot info: mem_lower/upper present (flags %#x)", flags);
        if (flags & 1)
            TEST_ASSERT(((u32 *)(ulong)mb_info)[2] >= 64 * 1024 - 2048,
                        "multiboot info: mem_upper %u KiB", ((u32 *)(ulong)mb_info)[2]);
    }
    ulong cr0 = read_cr0();
    TEST_ASSERT((cr0 & CR0_PE) && !(cr0 & CR0_PG), "protected mode without paging (cr0 %#lx)", cr0);
    TEST_EQ(read_cs(), SEL_KCODE32, "CS is the runtime's 32-bit code segment");
    ulong sp1, sp2;
    asm volatile("mov %%esp, %0; push %%eax; mov %%esp, %1; pop %%eax" : "=r"(sp1), "=r"(sp2));
    TEST_EQ(sp1 - sp2, 4, "32-bit push moves ESP by 4");
    TEST_ASSERT(!(rdmsr(MSR_EFER) & EFER_LMA), "EFER.LMA clear");
}

static void check_pm16(void)
{
    memset((void *)DATA, 0, 0x100);
    struct { u32 off; u16 sel; } __attribute__((packed)) target = {BLOB_OFF(pm16_func), SEL_CODE16};
    asm volatile("lcall *%0" ::"m"(target) : "eax", "ebx", "ecx", "memory", "cc");
    TEST_EQ(*(u32 *)DATA, 2, "16-bit code segment: push moves ESP by 2");
    TEST_EQ(*(u16 *)(DATA + 4), 0, "16-bit code segment: inc ax wraps to 0");
    TEST_ASSERT(*(u16 *)(DATA + 6) & BIT(6), "16-bit code segment: ZF after the wrap");
    TEST_EQ(*(u16 *)(DATA + 8), 0x1616, "16-bit code segment: near call/ret, lretl back");
    TEST_EQ(*(u32 *)(DATA + 12), 6, "16-bit code segment: IRET pops three words");
}

static void check_real_mode(void)
{
    struct { u16 limit; u32 base; } __attribute__((packed)) pm_idtr;
    asm volatile("sidt %0" : "=m"(pm_idtr));
    memset((void *)DATA, 0, 0x100);
    memset((void *)0x5020, 0, 2);
    *(u16 *)(DATA + 0x40) = 0x3ff; /* real-mode IDTR image */
    *(u32 *)(DATA + 0x42) = IVT;
    u16 *ivt = (u16 *)IVT;
    ivt[RM_VECTOR * 2] = (u16)BLOB_OFF(rm_int_handler);
    ivt[RM_VECTOR * 2 + 1] = 0;
    rm_trip();
    asm volatile("lidt %0" ::"m"(pm_idtr));
    TEST_EQ(read_cs(), SEL_KCODE32, "back in 32-bit protected mode");
    TEST_ASSERT(read_cr0() & CR0_PE, "CR0.PE set again");
    TEST_EQ(*(u16 *)(DATA + 0x10), 0x1234, "real mode: store through DS=0");
    TEST_EQ(*(u16 *)(DATA + 0x12), 0, "real mode: CS = 0 after the far jump");
    TEST_EQ(*(u16 *)0x5020, 0xbeef, "real mode: ES=0x500 addresses 0x5000 + offset");
    TEST_EQ(*(u16 *)(DATA + 0x26), 0x5678, "real mode: INT 0x30 through our IVT ran the handler");
    TEST_EQ(*(u16 *)(DATA + 0x14), 0, "real mode: IRET restored SP");
    TEST_EQ(*(u16 *)(DATA + 0x20) & (FL_IF | FL_TF), 0, "real mode: IF/TF clear in the handler");
    TEST_EQ(*(u16 *)(DATA + 0x24), 0, "real mode: INT pushed CS = 0");
    TEST_ASSERT(*(u16 *)(DATA + 0x22) > BLOB_OFF(blob_start) && *(u16 *)(DATA + 0x22) < BLOB_OFF(blob_end),
                "real mode: INT pushed the IP after it (%#x)", *(u16 *)(DATA + 0x22));
    TEST_EQ(*(u16 *)(DATA + 0x16), 2, "real mode: 16-bit push moves SP by 2");
    TEST_EQ(*(u32 *)(DATA + 0x18), 0x12345678, "real mode: 32-bit operand with the 66 prefix");
    TEST_EQ(*(u16 *)(DATA + 0x1c), 4, "real mode: 32-bit pop moves SP by 4");
}

void test_main(void)
{
    memcpy((void *)BLOB, blob_start, (size_t)(blob_end - blob_start));
    check_entry_state();
    check_pm16();
    check_real_mode();
    /* and the runtime still works: an exception after the round trip */
    asm volatile(ASM_TRY("1f") "ud2\n1:" ::: "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "exceptions delivered after returning from real mode");
}

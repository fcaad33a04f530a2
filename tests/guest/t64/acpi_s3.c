/* ACPI S3, suspend to RAM, as an OS does it: the DSDT's \_S3 gives SLP_TYP, the FACS
 * takes a real-mode waking vector, the RTC alarm (AIE) with RTC_EN in PM1_EN is the
 * wake source, SLP_TYP|SLP_EN in PM1a_CNT sleeps. On wake the boot CPU must start at
 * the vector in real mode (CS = vector >> 4, IP = vector & 0xf, interrupts off, long
 * mode gone), with RAM kept, WAK_STS and RTC_STS set, the RTC still running with its
 * alarm state, the local APIC back in its power-on state, and the other CPU waiting
 * for a SIPI. The real-mode stub records its entry state and climbs back to long mode.
 * A second sleep sets the X_Firmware_Waking_Vector too, which takes precedence: the CPU
 * must then start there in flat 32-bit protected mode with paging off.
 * QEMU wakes through SeaBIOS's resume path, which leaves its own values in the segment
 * and general registers: only what the ACPI specification fixes is checked; SeaBIOS
 * takes only the real-mode vector, so the second sleep is skipped there.
 * With -icount the clock jumps to the alarm while the machine sleeps.
 * guest: smp=2 timeout=60 name=acpi_s3 */
/* guest: smp=2 timeout=60 icount=yes name=acpi_s3-icount */
#include "rt.h"

#define BLOB 0x6000u          /* the waking stub (real-mode segment 0x600) */
#define WAKE_VECTOR (BLOB + 3) /* not paragraph aligned: CS = 0x600, IP = 3 */
#define SAVE 0x200u           /* the stub's record of its entry state (offsets in BLOB) */
enum {
    S_EAX = 0x00, S_CS = 0x20, S_CR0 = 0x30, S_CR4 = 0x34, S_EFLAGS = 0x38, S_IP = 0x3c,
    S_EFER = 0x40, S_GDTR = 0x50,
    /* the 32-bit stub's record */
    S32_CR0 = 0x60, S32_EFLAGS = 0x64, S32_EFER = 0x68, S32_MARK = 0x6c,
};
#define MARK32 0x32323232u
#define SIPI_PAGE 0x7000u     /* a second stub for the AP's SIPI */
#define SIPI_FLAG 0x7100u

#define PM1_STS_RTC BIT(10)
#define PM1_STS_WAK BIT(15)
#define PM1_EN_RTC BIT(10)
#define PM1_CNT_SLP_EN BIT(13)

#define RTC_B_AIE 0x20
#define RTC_B_BINARY 0x04
#define RTC_C_AF 0x20

extern u8 blob_start[], blob_end[], blob_ip_mark[], sipi_start[], sipi_end[], s3_wake32[];
/* Writes value to PM1a_CNT; returns 1 after the wake, 0 if the machine did not sleep. */
int s3_sleep(u32 port, u32 value);

asm(".pushsection .rodata\n"
    ".code16\n"
    "blob_start:\n"
    "  int3; int3; int3\n"            /* 0x6000: not the entry */
    "  movl %eax, %cs:0x200\n"        /* 0x6003: the waking vector */
    "  movl %ebx, %cs:0x204\n"
    "  movl %ecx, %cs:0x208\n"
    "  movl %edx, %cs:0x20c\n"
    "  movl %esi, %cs:0x210\n"
    "  movl %edi, %cs:0x214\n"
    "  movl %ebp, %cs:0x218\n"
    "  movl %esp, %cs:0x21c\n"
    "  movw %cs, %cs:0x220\n"
    "  movw %ds, %cs:0x222\n"
    "  movw %es, %cs:0x224\n"
    "  movw %ss, %cs:0x226\n"
    "  movw %fs, %cs:0x228\n"
    "  movw %gs, %cs:0x22a\n"
    "  movl %cr0, %eax\n"
    "  movl %eax, %cs:0x230\n"
    "  movl %cr4, %eax\n"
    "  movl %eax, %cs:0x234\n"
    "  movw %cs, %ax\n"
    "  movw %ax, %ss\n"
    "  movw $0x1f0, %sp\n"            /* a stack below the record */
    "  pushfl\n"
    "  popl %eax\n"
    "  movl %eax, %cs:0x238\n"
    "  call 1f\n"
    "blob_ip_mark:\n"
    "1: popw %ax\n"
    "  movw %ax, %cs:0x23c\n"         /* IP of blob_ip_mark: the entry IP was 3 */
    "  movl $0xc0000080, %ecx\n"
    "  rdmsr\n"
    "  movl %eax, %cs:0x240\n"
    "  movl %edx, %cs:0x244\n"
    /* back to long mode through the runtime's GDT and page tables */
    "  movw %cs, %ax\n"
    "  movw %ax, %ds\n"
    "  lgdtl 0x250\n"
    "  movl %cr0, %eax\n"
    "  orl $1, %eax\n"
    "  movl %eax, %cr0\n"
    "  ljmpl $0x08, $s3_resume32\n"
    "blob_end:\n"
    /* the AP's SIPI target (CS = 0x700): a flag, then halt */
    "sipi_start:\n"
    "  movw $0xa5a5, %cs:0x100\n"
    "2: cli\n"
    "  hlt\n"
    "  jmp 2b\n"
    "sipi_end:\n"
    ".popsection\n"

    ".text\n"
    ".code32\n"
    /* the X_Firmware_Waking_Vector: flat 32-bit protected mode, paging off */
    "s3_wake32:\n"
    "  movl %cr0, %eax\n"
    "  movl %eax, 0x6260\n"
    "  movl $0x61f0, %esp\n"
    "  pushfl\n"
    "  popl 0x6264\n"
    "  movl $0xc0000080, %ecx\n"
    "  rdmsr\n"
    "  movl %eax, 0x6268\n"
    "  movl $0x32323232, 0x626c\n"
    "  lgdtl 0x6250\n"
    "  ljmp $0x08, $s3_resume32\n"
    "s3_resume32:\n"
    "  movw $0x18, %ax\n"
    "  movw %ax, %ds\n"
    "  movw %ax, %es\n"
    "  movw %ax, %ss\n"
    "  movl $0x20, %eax\n"            /* CR4.PAE, and LA57 with 5 levels */
    "  cmpl $5, rt_paging_levels\n"
    "  jne 3f\n"
    "  orl $0x1000, %eax\n"
    "3: movl %eax, %cr4\n"
    "  movl rt_boot_cr3, %eax\n"
    "  movl %eax, %cr3\n"
    "  movl $0xc0000080, %ecx\n"
    "  movl rt_boot_efer, %eax\n"
    "  xorl %edx, %edx\n"
    "  wrmsr\n"
    "  movl %cr0, %eax\n"
    "  orl $0x80000001, %eax\n"
    "  movl %eax, %cr0\n"
    "  ljmp $0x10, $s3_resume64\n"
    ".code64\n"
    "s3_resume64:\n"
    "  lgdt gdt_desc(%rip)\n"
    "  movw $0x18, %ax\n"
    "  movw %ax, %ds\n"
    "  movw %ax, %es\n"
    "  movw %ax, %ss\n"
    "  movq s3_saved_rsp(%rip), %rsp\n"
    "  movl $1, %eax\n"
    "  jmp s3_restore\n"

    ".globl s3_sleep\n"
    "s3_sleep:\n"
    "  push %rbx\n"
    "  push %rbp\n"
    "  push %r12\n"
    "  push %r13\n"
    "  push %r14\n"
    "  push %r15\n"
    "  pushfq\n"
    "  movq %rsp, s3_saved_rsp(%rip)\n"
    "  movl %edi, %edx\n"
    "  movl %esi, %eax\n"
    "  outw %ax, %dx\n"
    "  movl $50000000, %ecx\n"        /* still running: the machine did not sleep */
    "4: pause\n"
    "  decl %ecx\n"
    "  jnz 4b\n"
    "  xorl %eax, %eax\n"
    "s3_restore:\n"
    "  popfq\n"
    "  pop %r15\n"
    "  pop %r14\n"
    "  pop %r13\n"
    "  pop %r12\n"
    "  pop %rbp\n"
    "  pop %rbx\n"
    "  ret\n"
    ".data\n"
    "s3_saved_rsp: .quad 0\n"
    ".text\n");

static u8 cmos_read(u8 index)
{
    outb(0x70, index);
    return inb(0x71);
}

static void cmos_write(u8 index, u8 v)
{
    outb(0x70, index);
    outb(0x71, v);
}

static int from_rtc(u8 v, bool binary) { return binary ? v : (v >> 4) * 10 + (v & 0xf); }
static u8 to_rtc(int v, bool binary) { return binary ? (u8)v : (u8)((v / 10) << 4 | v % 10); }

/* Programs the RTC alarm secs ahead of the time of day t0 (any hour, AIE on), enables
 * RTC_EN, clears PM1_STS and sleeps; returns s3_sleep's result. */
static int sleep_until_alarm(u32 pm1a_evt, u32 pm1a_cnt, int slp_typ, int t0, int secs);

/* The RTC's time of day in seconds (24-hour mode), read outside an update cycle. */
static int rtc_seconds(void)
{
    while (cmos_read(0x0a) & 0x80)
        pause();
    bool bin = cmos_read(0x0b) & RTC_B_BINARY;
    return from_rtc(cmos_read(0x04), bin) * 3600 + from_rtc(cmos_read(0x02), bin) * 60 +
           from_rtc(cmos_read(0x00), bin);
}

/* The first integer of Name(\_S3, Package() {...}) in the DSDT, or -1. */
static int dsdt_s3_slp_typ(const struct acpi_header *dsdt)
{
    const u8 *p = (const u8 *)dsdt, *end = p + dsdt->length;
    for (p += sizeof(*dsdt); p + 13 <= end; p++) {
        if (p[0] != 0x08)
            continue;
        const u8 *n = p + 1 + (p[1] == '\\'); /* NameOp, the root prefix maybe */
        if (memcmp(n, "_S3_", 4) != 0 || n[4] != 0x12)
            continue;
        const u8 *e = n + 7; /* "_S3_" PackageOp PkgLength(1) NumElements */
        if (n[5] & 0xc0)
            return -1;       /* a short package has a one-byte PkgLength */
        if (e[0] == 0x00 || e[0] == 0x01)
            return e[0];     /* ZeroOp, OneOp */
        if (e[0] == 0x0a)
            return e[1];     /* BytePrefix */
        return -1;
    }
    return -1;
}

static int sleep_until_alarm(u32 pm1a_evt, u32 pm1a_cnt, int slp_typ, int t0, int secs)
{
    bool bin = cmos_read(0x0b) & RTC_B_BINARY;
    int at = t0 + secs;
    cmos_write(0x01, to_rtc(at % 60, bin));
    cmos_write(0x03, to_rtc(at / 60 % 60, bin));
    cmos_write(0x05, 0xc0); /* don't care */
    cmos_write(0x0b, cmos_read(0x0b) | RTC_B_AIE);
    (void)cmos_read(0x0c);
    outw((u16)(pm1a_evt + 2), PM1_EN_RTC);
    outw((u16)pm1a_evt, 0xffff);
    return s3_sleep(pm1a_cnt, (u32)slp_typ << 10 | PM1_CNT_SLP_EN);
}

static volatile u32 pattern[16384];

static void ap_main(int index) { (void)index; }

void test_main(void)
{
    const struct acpi_header *fadt_h = acpi_find_table("FACP");
    TEST_ASSERT(fadt_h != NULL, "FADT present");
    if (!fadt_h)
        return;
    const u8 *fadt = (const u8 *)fadt_h;
    u32 pm1a_evt = *(const u32 *)(fadt + 56), pm1a_cnt = *(const u32 *)(fadt + 64);
    u64 facs_addr = *(const u32 *)(fadt + 36);
    if (!facs_addr && fadt_h->length >= 140)
        facs_addr = *(const u64 *)(fadt + 132);
    const struct acpi_header *dsdt = (const void *)(ulong)*(const u32 *)(fadt + 40);
    TEST_ASSERT(pm1a_evt && pm1a_cnt && facs_addr, "FADT: PM1a blocks %#x/%#x, FACS %#lx",
                pm1a_evt, pm1a_cnt, (ulong)facs_addr);
    TEST_EQ(*(const u32 *)(fadt + 112) & BIT(6), 0, "FADT: RTC_STS in the fixed registers (FIX_RTC clear)");
    int slp_typ = dsdt_s3_slp_typ(dsdt);
    TEST_ASSERT(slp_typ >= 0 && slp_typ < 8, "DSDT: \\_S3 package (SLP_TYP %d)", slp_typ);
    u8 *facs = (u8 *)(ulong)facs_addr;
    TEST_ASSERT(memcmp(facs, "FACS", 4) == 0, "FACS signature");
    if (slp_typ < 0 || !pm1a_cnt || memcmp(facs, "FACS", 4) != 0)
        return;

    /* the AP runs, then halts: after the wake it must be waiting for a SIPI */
    TEST_EQ(smp_start(ap_main, 1, 1000000), 1, "the AP started before the sleep");

    /* state the sleep must keep (RAM) and lose (the local APIC's TPR and SVR) */
    for (unsigned i = 0; i < ARRAY_SIZE(pattern); i++)
        pattern[i] = i * 0x9e3779b9u;
    apic_write(APIC_TPR, 0x50);

    /* the waking vector */
    memcpy((void *)(ulong)BLOB, blob_start, (size_t)(blob_end - blob_start));
    struct { u16 limit; u64 base; } __attribute__((packed)) gdtr;
    asm volatile("sgdt %0" : "=m"(gdtr));
    *(u16 *)(ulong)(BLOB + SAVE + S_GDTR) = gdtr.limit;
    *(u32 *)(ulong)(BLOB + SAVE + S_GDTR + 2) = (u32)gdtr.base;
    *(u32 *)(facs + 12) = WAKE_VECTOR;
    if (*(u32 *)(facs + 4) >= 32)
        *(u64 *)(facs + 24) = 0; /* no X_Firmware_Waking_Vector: real mode */

    /* the RTC alarm 2 seconds ahead */
    int t0 = rtc_seconds();
    int woke = sleep_until_alarm(pm1a_evt, pm1a_cnt, slp_typ, t0, 2);
    TEST_EQ(woke, 1, "the machine slept and woke through the FACS waking vector");
    if (!woke)
        return;
    rt_reinit_cpu();
    int t1 = rtc_seconds();

    const u8 *save = (const u8 *)(ulong)(BLOB + SAVE);
    u32 cr0 = *(const u32 *)(save + S_CR0);
    TEST_EQ(cr0 & (CR0_PE | CR0_PG), 0, "wake: real mode, paging off");
    TEST_EQ(*(const u16 *)(save + S_CS), WAKE_VECTOR >> 4, "wake: CS = vector >> 4");
    TEST_EQ(*(const u16 *)(save + S_IP), (u32)(blob_ip_mark - blob_start),
            "wake: entered at IP = vector & 0xf");
    TEST_EQ(*(const u32 *)(save + S_EFLAGS) & FL_IF, 0, "wake: interrupts disabled");
    TEST_EQ(*(const u32 *)(save + S_EFER) & (EFER_LME | EFER_LMA), 0, "wake: long mode off (EFER)");
    TEST_EQ(*(const u32 *)(save + S_CR4) & (CR4_PAE | CR4_PGE | CR4_LA57), 0,
            "wake: CR4 paging extensions off");

    u16 sts = inw((u16)pm1a_evt);
    TEST_ASSERT(sts & PM1_STS_WAK, "PM1_STS.WAK_STS set after the wake (%#x)", sts);
    TEST_ASSERT(sts & PM1_STS_RTC, "PM1_STS.RTC_STS: the RTC alarm woke the machine (%#x)", sts);
    TEST_EQ(inw((u16)(pm1a_evt + 2)) & PM1_EN_RTC, PM1_EN_RTC, "PM1_EN.RTC_EN kept (resume well)");
    outw((u16)pm1a_evt, PM1_STS_WAK | PM1_STS_RTC);
    TEST_EQ(inw((u16)pm1a_evt) & (PM1_STS_WAK | PM1_STS_RTC), 0, "WAK_STS and RTC_STS clear on write");

    unsigned bad = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(pattern); i++)
        bad += pattern[i] != i * 0x9e3779b9u;
    TEST_EQ(bad, 0, "RAM kept its content");

    /* the RTC is battery-backed: its alarm state and time went on */
    TEST_ASSERT(cmos_read(0x0b) & RTC_B_AIE, "RTC register B kept AIE");
    TEST_ASSERT(cmos_read(0x0c) & RTC_C_AF, "RTC alarm flag set by the alarm that woke us");
    int slept = (t1 - t0 + 86400) % 86400;
    TEST_ASSERT(slept >= 2 && slept <= 4, "the RTC's time went on to the alarm (%d s)", slept);

    /* the local APIC lost power: power-on state (xAPIC, TPR 0, software-disabled) */
    TEST_EQ(rdmsr(MSR_APIC_BASE) & (BIT(8) | BIT(10) | BIT(11)), BIT(8) | BIT(11),
            "APIC base: BSP, enabled, xAPIC");
    TEST_EQ(apic_read(APIC_TPR), 0, "LAPIC TPR back to 0");
    TEST_EQ(apic_read(APIC_SVR), 0xff, "LAPIC SVR back to 0xff (software-disabled)");

    /* the AP waits for a SIPI: a SIPI alone (no INIT) starts it */
    memcpy((void *)(ulong)SIPI_PAGE, sipi_start, (size_t)(sipi_end - sipi_start));
    *(volatile u16 *)(ulong)SIPI_FLAG = 0;
    apic_icr(1, APIC_ICR_STARTUP | (SIPI_PAGE >> 12));
    u64 end = rdtsc() + 100000ull * 1000;
    while (*(volatile u16 *)(ulong)SIPI_FLAG != 0xa5a5 && (s64)(rdtsc() - end) < 0)
        pause();
    TEST_EQ(*(volatile u16 *)(ulong)SIPI_FLAG, 0xa5a5, "the AP was waiting for a SIPI after the wake");

    /* the X_Firmware_Waking_Vector takes precedence: 32-bit protected mode */
    if (on_qemu_tcg()) {
        test_skip("SeaBIOS wakes through the real-mode vector only");
        return;
    }
    if (*(u32 *)(facs + 4) < 32 || facs[32] < 1) {
        test_skip("FACS version %u has no X_Firmware_Waking_Vector", facs[32]);
        return;
    }
    *(u64 *)(facs + 24) = (ulong)s3_wake32;
    *(u32 *)(facs + 36) = 0; /* OSPM flags: no 64BIT_WAKE_F */
    t0 = rtc_seconds();
    woke = sleep_until_alarm(pm1a_evt, pm1a_cnt, slp_typ, t0, 1);
    TEST_EQ(woke, 1, "slept and woke through the X_Firmware_Waking_Vector");
    if (!woke)
        return;
    rt_reinit_cpu();
    TEST_EQ(*(const u32 *)(save + S32_MARK), MARK32, "wake: entered at the X vector");
    u32 cr0_32 = *(const u32 *)(save + S32_CR0);
    TEST_EQ(cr0_32 & (CR0_PE | CR0_PG), CR0_PE, "X vector: protected mode, paging off");
    TEST_EQ(*(const u32 *)(save + S32_EFLAGS) & FL_IF, 0, "X vector: interrupts disabled");
    TEST_EQ(*(const u32 *)(save + S32_EFER) & (EFER_LME | EFER_LMA), 0, "X vector: long mode off");
    TEST_ASSERT(inw((u16)pm1a_evt) & PM1_STS_WAK, "PM1_STS.WAK_STS after the second wake");
}

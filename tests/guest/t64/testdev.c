/* QEMU's test devices as kvm-unit-tests uses them (-device pc-testdev, pci-testdev,
 * isa-debug-exit,iobase=..,iosize=..): pc-testdev's IRQ lines reach the I/O APIC and the
 * PIC, its data port answers every access size and string I/O, and its MMIO page takes
 * every kind of instruction (MOV, ALU on memory, XCHG, CMPXCHG, XADD, BT*, MOVS/STOS/
 * LODS/SCAS/CMPS, SSE, PUSH/POP, CALL through a pointer, page-crossing accesses), all of
 * which go through the VMM's MMIO path; pci-testdev is found by a PCI scan with its ids
 * and its BARs (sized, moved, disabled) run its test table; a debug-exit at another port.
 * QEMU raises ISA lines only (0-15) and has no ioeventfd consumers under TCG: an eventfd
 * test may count 0 there. */
/* guest: device=pc-testdev device=pci-testdev device=isa-debug-exit,iobase=0xf4,iosize=0x4 name=testdev */
/* guest: device=isa-debug-exit,iobase=0x501,iosize=2 append=exit-port=0x501 name=testdev-exit */
#include "rt.h"

#define IOMEM 0xff000000ul
#define IOAPIC 0xfec00000ul
#define VEC_ISA 0x41
#define VEC_GSI 0x42

/* ---------------------------------------------------------------- debug-exit elsewhere */
static void check_exit_port(u16 port)
{
    TEST_EQ(inb(port), 0, "the debug-exit at the port given reads 0");
    TEST_EQ(inb(port + 1), 0, "its second port (iosize=2) too");
    if (on_qemu_tcg())
        test_skip("QEMU's reads of unassigned ports are not checked");
    else {
        TEST_EQ(inb(port + 2), 0xff, "the port after iosize belongs to nobody");
        TEST_EQ(inb(0xf4), 0xff, "no debug-exit at 0xf4 when -device put it elsewhere");
    }
    outb(port + 2, 0); /* not the device's: ignored */
    rt_exit_port = port; /* test_done's exit status proves the device works */
}

/* ---------------------------------------------------------------- pc-testdev ports */
static void check_data_port(void)
{
    outl(0xe0, 0x12345678);
    TEST_EQ(inl(0xe0), 0x12345678, "0xe0: 32-bit write and read");
    TEST_EQ(inb(0xe0), 0x78, "0xe0: byte 0");
    TEST_EQ(inb(0xe3), 0x12, "0xe3: byte 3");
    TEST_EQ(inw(0xe2), 0x1234, "0xe2: upper word");
    outb(0xe1, 0xab);
    TEST_EQ(inl(0xe0), 0x1234ab78, "0xe1: byte write");
    outw(0xe2, 0xcdef);
    TEST_EQ(inl(0xe0), 0xcdefab78, "0xe2: word write");
    TEST_EQ(inl(0xe8), 0xcdefab78, "0xe8: the same register a byte at a time");
    outl(0xe8, 0x0badf00d);
    TEST_EQ(inl(0xe0), 0x0badf00d, "0xe8: 32-bit write");
    TEST_EQ(inw(0xea), 0x0bad, "0xea: upper word");

    /* string I/O: every element goes to the same port */
    static const u32 src[3] = { 0x11111111, 0x22222222, 0x33333333 };
    const void *s = src;
    unsigned long n = 3;
    asm volatile("rep outsl" : "+S"(s), "+c"(n) : "d"(0xe0) : "memory");
    TEST_EQ(inl(0xe0), 0x33333333, "REP OUTSD leaves the last element");
    TEST_EQ(n, 0, "REP OUTSD count");
    u16 dst[4] = { 0 };
    void *d = dst;
    n = 4;
    outl(0xe0, 0xa5a55a5a);
    asm volatile("rep insw" : "+D"(d), "+c"(n) : "d"(0xe2) : "memory");
    TEST_ASSERT(dst[0] == 0xa5a5 && dst[3] == 0xa5a5, "REP INSW from 0xe2: %#x %#x", dst[0],
                dst[3]);
    u8 bytes[4] = { 0x01, 0x02, 0x03, 0x04 };
    s = bytes;
    n = 4;
    asm volatile("rep outsb" : "+S"(s), "+c"(n) : "d"(0xe1) : "memory");
    TEST_EQ(inl(0xe0), 0xa5a5045a, "REP OUTSB to 0xe1 leaves the last byte in byte 1");
    outl(0xe4, 0x100000); /* flush page: the VMM forgets the page's decoded code */
    TEST_EQ(inl(0xe0), 0xa5a5045a, "the flush port leaves the data alone");
}

/* ---------------------------------------------------------------- IRQ lines */
static volatile unsigned isa_hits, gsi_hits;
static void isa_handler(struct exc_frame *f) { (void)f; isa_hits++; apic_eoi(); }
/* a level-triggered line is redelivered after EOI while it stays high: the handler
 * lowers it (acknowledges the "device") only the second time */
static void gsi_handler(struct exc_frame *f)
{
    (void)f;
    if (++gsi_hits == 2)
        outb(0x2000 + 17, 0);
    apic_eoi();
}

static void ioapic_write(u32 reg, u32 v)
{
    *(volatile u32 *)IOAPIC = reg;
    *(volatile u32 *)(IOAPIC + 0x10) = v;
}

static void ioapic_route(int pin, u32 low)
{
    ioapic_write(0x11 + 2 * pin, apic_id() << 24);
    ioapic_write(0x10 + 2 * pin, low);
}

static u8 pic_irr(u16 cmd_port)
{
    outb(cmd_port, 0x0a); /* OCW3: read IRR */
    return inb(cmd_port);
}

static void check_irq_lines(void)
{
    apic_enable();
    exc_set_handler(VEC_ISA, isa_handler);
    exc_set_handler(VEC_GSI, gsi_handler);
    /* the 8259 pair initialised and fully masked: its IRR still latches requests */
    static const u8 init[2][4] = { { 0x11, 0x20, 0x04, 0x01 }, { 0x11, 0x28, 0x02, 0x01 } };
    for (int c = 0; c < 2; c++) {
        u16 base = c ? 0xa0 : 0x20;
        outb(base, init[c][0]);
        outb(base + 1, init[c][1]);
        outb(base + 1, init[c][2]);
        outb(base + 1, init[c][3]);
        outb(base + 1, 0xff);
    }

    /* ISA IRQ 10, edge-triggered, active high: one interrupt per rising edge */
    ioapic_route(10, VEC_ISA);
    sti();
    outb(0x2000 + 10, 1);
    udelay(100);
    TEST_EQ(isa_hits, 1, "raising IRQ line 10 at port 0x200a: one interrupt through the I/O APIC");
    TEST_ASSERT(pic_irr(0xa0) & BIT(2), "the slave PIC saw IRQ 10 (IRR %#x)", pic_irr(0xa0));
    outb(0x2000 + 10, 1);
    udelay(100);
    TEST_EQ(isa_hits, 1, "no new edge while the line stays high");
    outb(0x2000 + 10, 0);
    outb(0x2000 + 10, 1);
    udelay(100);
    TEST_EQ(isa_hits, 2, "lowered and raised again: a second interrupt");
    outb(0x2000 + 10, 0);
    outw(0x2000 + 10, 1); /* only byte writes drive the lines */
    udelay(100);
    TEST_EQ(isa_hits, 2, "a word write to the IRQ port is ignored");
    cli();
    ioapic_route(10, BIT(16));

    if (on_qemu_tcg()) {
        test_skip("QEMU's pc-testdev drives ISA lines 0-15 only (it aborts on 16-23)");
        return;
    }
    /* I/O APIC input 17, level-triggered: delivered again after EOI while still high */
    ioapic_route(17, VEC_GSI | BIT(15));
    sti();
    outb(0x2000 + 17, 1);
    udelay(100);
    TEST_EQ(gsi_hits, 2, "line 17 held high, level-triggered: delivered again after EOI, "
                         "until the handler lowered it");
    cli();
    ioapic_route(17, BIT(16));
}

/* ---------------------------------------------------------------- instructions on MMIO */
static void enable_sse(void)
{
    write_cr0((read_cr0() & ~CR0_EM) | CR0_MP);
    write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT);
}

static void check_mmio_insns(void)
{
    volatile u64 *q = (volatile u64 *)IOMEM;
    volatile u32 *d = (volatile u32 *)IOMEM;
    volatile u8 *b = (volatile u8 *)IOMEM;

    q[0] = 0x0123456789abcdefull;
    TEST_EQ(q[0], 0x0123456789abcdefull, "MOV: 64-bit store and load");
    TEST_EQ(d[1], 0x01234567, "32-bit load of the upper half");
    TEST_EQ(b[0], 0xef, "byte load");
    TEST_EQ(((volatile u16 *)IOMEM)[1], 0x89ab, "word load");
    b[7] = 0xfe;
    TEST_EQ(q[0], 0xfe23456789abcdefull, "byte store");

    u64 r;
    q[1] = 40;
    asm volatile("addq $2, (%0)" ::"r"(q + 1) : "memory", "cc");
    TEST_EQ(q[1], 42, "ADD imm to memory");
    r = 8;
    asm volatile("addq (%1), %0" : "+r"(r) : "r"(q + 1) : "cc");
    TEST_EQ(r, 50, "ADD memory to register");
    asm volatile("subl $2, (%0); xorl $0xff, (%0); orl $0x100, (%0); andl $0x1ff, (%0); notl (%0); negl (%0); incl (%0); decl (%0)"
                 ::"r"(q + 1) : "memory", "cc");
    TEST_EQ(d[2], (u32)-(s32)~((((40u ^ 0xff) | 0x100) & 0x1ff)), "SUB/XOR/OR/AND/NOT/NEG/INC/DEC on memory");
    q[2] = 0x80;
    asm volatile("shlq $4, (%0); sarq $1, (%0); rolq $8, (%0)" ::"r"(q + 2) : "memory", "cc");
    TEST_EQ(q[2], 0x40000ull, "shifts and rotates of memory");
    u8 cf;
    asm volatile("btsq $3, (%1); setc %0" : "=r"(cf) : "r"(q + 2) : "memory", "cc");
    TEST_ASSERT(!cf && q[2] == 0x40008, "BTS on memory: %#lx", (unsigned long)q[2]);
    asm volatile("btrq $18, (%1); setc %0" : "=r"(cf) : "r"(q + 2) : "memory", "cc");
    TEST_ASSERT(cf && q[2] == 8, "BTR on memory: %#lx", (unsigned long)q[2]);
    u64 bit = 67; /* register bit offset: the address moves by 8 bytes */
    asm volatile("btcq %1, (%2); setc %0" : "=r"(cf) : "r"(bit), "r"(q + 1) : "memory", "cc");
    TEST_ASSERT(cf && q[2] == 0, "BTC with a register offset reaches the next qword");
    asm volatile("cmpq $0, (%1); sete %0" : "=r"(cf) : "r"(q + 2) : "cc");
    TEST_EQ(cf, 1, "CMP with memory");
    asm volatile("cmpq $0, (%1); setne (%0)" ::"r"(b + 24), "r"(q + 2) : "memory", "cc");
    TEST_EQ(b[24], 0, "SETcc to memory");

    q[3] = 7;
    r = 9;
    asm volatile("xchgq %0, (%1)" : "+r"(r) : "r"(q + 3) : "memory");
    TEST_ASSERT(r == 7 && q[3] == 9, "XCHG with memory");
    r = 5;
    asm volatile("lock xaddq %0, (%1)" : "+r"(r) : "r"(q + 3) : "memory", "cc");
    TEST_ASSERT(r == 9 && q[3] == 14, "LOCK XADD");
    u64 expect = 14, newv = 99;
    asm volatile("lock cmpxchgq %2, (%3)" : "+a"(expect), "=@ccz"(cf) : "r"(newv), "r"(q + 3) : "memory");
    TEST_ASSERT(cf && q[3] == 99, "LOCK CMPXCHG succeeds");
    expect = 1;
    asm volatile("lock cmpxchgq %2, (%3)" : "+a"(expect), "=@ccz"(cf) : "r"(newv), "r"(q + 3) : "memory");
    TEST_ASSERT(!cf && expect == 99, "LOCK CMPXCHG fails and loads RAX");
    u32 lo = 99, hi = 0;
    asm volatile("lock cmpxchg8b (%4)" : "+a"(lo), "+d"(hi), "=@ccz"(cf)
                 : "b"(0x11111111), "r"(q + 3), "c"(0x22222222) : "memory");
    TEST_ASSERT(cf && q[3] == 0x2222222211111111ull, "CMPXCHG8B");
    asm volatile("lock orq $0x100, (%0); lock andq $-2, (%0)" ::"r"(q + 3) : "memory", "cc");
    TEST_EQ(q[3], 0x2222222211111110ull | 0x100, "LOCK OR/AND");
    if (HAS_CX16()) {
        q[4] = 3;
        q[5] = 4;
        u64 a = 3, dd = 4;
        asm volatile("lock cmpxchg16b (%4)" : "+a"(a), "+d"(dd), "=@ccz"(cf)
                     : "b"(1ull), "r"(q + 4), "c"(2ull) : "memory");
        TEST_ASSERT(cf && q[4] == 1 && q[5] == 2, "CMPXCHG16B (16-byte aligned)");
        q[3] = 1;
    }

    /* MOVZX/MOVSX/CMOV from memory */
    b[40] = 0x80;
    u64 z, sx;
    asm volatile("movzbq (%2), %0; movsbq (%2), %1" : "=&r"(z), "=&r"(sx) : "r"(b + 40));
    TEST_ASSERT(z == 0x80 && sx == (u64)-128, "MOVZX/MOVSX from memory");
    r = 0;
    asm volatile("stc; cmovcq (%1), %0" : "+r"(r) : "r"(q + 3) : "cc");
    TEST_EQ(r, 1, "CMOVC from memory");

    /* strings: RAM <-> MMIO */
    static u64 ram[8], ram2[8];
    for (int i = 0; i < 8; i++)
        ram[i] = 0x1010101010101010ull * (u64)(i + 1);
    void *src = ram, *dst = (void *)(IOMEM + 0x100);
    unsigned long n = 8;
    asm volatile("cld; rep movsq" : "+S"(src), "+D"(dst), "+c"(n) :: "memory");
    TEST_ASSERT(q[0x20] == ram[0] && q[0x27] == ram[7], "REP MOVSQ RAM to MMIO");
    src = (void *)(IOMEM + 0x100);
    dst = ram2;
    n = 64;
    asm volatile("rep movsb" : "+S"(src), "+D"(dst), "+c"(n) :: "memory");
    TEST_EQ(memcmp(ram, ram2, sizeof ram), 0, "REP MOVSB MMIO to RAM");
    dst = (void *)(IOMEM + 0x200);
    n = 16;
    asm volatile("rep stosl" : "+D"(dst), "+c"(n) : "a"(0xdeadbeef) : "memory");
    TEST_ASSERT(d[0x80] == 0xdeadbeef && d[0x8f] == 0xdeadbeef, "REP STOSD to MMIO");
    src = (void *)(IOMEM + 0x200);
    u32 lv;
    asm volatile("lodsl" : "=a"(lv), "+S"(src));
    TEST_EQ(lv, 0xdeadbeef, "LODSD from MMIO");
    dst = (void *)(IOMEM + 0x200);
    n = 16;
    asm volatile("repe scasl" : "+D"(dst), "+c"(n) : "a"(0xdeadbeef) : "cc");
    TEST_EQ(n, 0, "REPE SCASD over MMIO");
    src = (void *)(IOMEM + 0x100);
    dst = ram;
    n = 8;
    asm volatile("repe cmpsq" : "+S"(src), "+D"(dst), "+c"(n) :: "cc");
    TEST_EQ(n, 0, "REPE CMPSQ MMIO against RAM");

    /* SSE loads and stores */
    enable_sse();
    static u8 v16[16] ALIGNED(16), w16[16] ALIGNED(16);
    for (int i = 0; i < 16; i++)
        v16[i] = (u8)(0xa0 + i);
    asm volatile("movdqa (%0), %%xmm0; movdqu %%xmm0, 0x301(%1); movups 0x301(%1), %%xmm1;"
                 "movaps %%xmm1, 0x310(%1); movdqa 0x310(%1), %%xmm2; movdqa %%xmm2, (%2)"
                 ::"r"(v16), "r"(IOMEM), "r"(w16) : "memory"); /* no xmm clobbers: the runtime never uses SSE */
    TEST_EQ(memcmp(v16, w16, 16), 0, "MOVDQU/MOVUPS/MOVAPS/MOVDQA through MMIO");
    u64 lowq;
    asm volatile("movq 0x310(%1), %%xmm3; movq %%xmm3, %0; movd %%xmm3, 0x320(%1)"
                 : "=&r"(lowq) : "r"(IOMEM) : "memory");
    TEST_ASSERT(lowq == 0xa7a6a5a4a3a2a1a0ull && d[0x320 / 4] == 0xa3a2a1a0, "MOVQ/MOVD with MMIO");
    asm volatile("pxor %%xmm4, %%xmm4; paddb 0x310(%0), %%xmm4; movntdq %%xmm4, 0x330(%0)"
                 ::"r"(IOMEM) : "memory");
    TEST_EQ(q[0x330 / 8], 0xa7a6a5a4a3a2a1a0ull, "PADDB from MMIO, MOVNTDQ to MMIO");

    /* the stack and control transfer through MMIO */
    q[0x50] = 0x5555;
    asm volatile("pushq (%0); popq 8(%0)" ::"r"(q + 0x50) : "memory");
    TEST_EQ(q[0x51], 0x5555, "PUSH from and POP to memory");
    extern char mmio_call_target[];
    q[0x52] = (u64)mmio_call_target;
    r = 0;
    asm volatile("call *(%1); jmp 2f\n"
                 "mmio_call_target: movq $77, %0; ret\n"
                 "2:" : "+r"(r) : "r"(q + 0x52) : "memory");
    TEST_EQ(r, 77, "CALL through a pointer in MMIO");

    /* accesses that cross a page boundary inside the window, and its last byte */
    *(volatile u64 *)(IOMEM + 0xffc) = 0x8877665544332211ull;
    TEST_EQ(*(volatile u32 *)(IOMEM + 0x1000), 0x88776655, "an 8-byte store split over two pages");
    TEST_EQ(*(volatile u64 *)(IOMEM + 0xffc), 0x8877665544332211ull, "and read back whole");
    b[0xffff] = 0x3c;
    TEST_EQ(b[0xffff], 0x3c, "the last byte of the 64 KiB window");
}

/* ---------------------------------------------------------------- pci-testdev */
static u32 pci_read(int dev, int reg)
{
    outl(0xcf8, 0x80000000u | (u32)dev << 11 | (u32)reg);
    return inl(0xcfc);
}

static void pci_write(int dev, int reg, u32 v)
{
    outl(0xcf8, 0x80000000u | (u32)dev << 11 | (u32)reg);
    outl(0xcfc, v);
}

struct accessor {
    bool io;
    ulong base;
};

static u8 rd8(const struct accessor *a, u32 off)
{
    return a->io ? inb((u16)(a->base + off)) : *(volatile u8 *)(a->base + off);
}
static u32 rd32(const struct accessor *a, u32 off)
{
    return a->io ? inl((u16)(a->base + off)) : *(volatile u32 *)(a->base + off);
}
static void wr8(const struct accessor *a, u32 off, u8 v)
{
    if (a->io)
        outb((u16)(a->base + off), v);
    else
        *(volatile u8 *)(a->base + off) = v;
}

/* kvm-unit-tests' protocol: select test t, check its header, ring its doorbell 16 times. */
static int run_tests(const struct accessor *a, const char *prefix)
{
    int passed = 0;
    for (int t = 0;; t++) {
        wr8(a, 0, (u8)t);
        if (rd32(a, 12) != 0 || rd8(a, 1) != 1)
            break;
        u32 off = rd32(a, 4);
        u8 sig = rd8(a, 8);
        char name[32];
        int i = 0;
        for (; i < 31 && (name[i] = (char)rd8(a, 16 + (u32)i)); i++)
            ;
        name[i] = 0;
        static const char *const kinds[3] = { "-no-eventfd", "-wildcard-eventfd",
                                              "-datamatch-eventfd" };
        TEST_ASSERT(t < 3 && strncmp(name, prefix, strlen(prefix)) == 0 &&
                        strcmp(name + strlen(prefix), kinds[t]) == 0,
                    "test %d is named %s%s: '%s'", t, prefix, t < 3 ? kinds[t] : "?", name);
        for (int k = 0; k < 16; k++)
            wr8(a, off, sig);
        wr8(a, off, (u8)~sig); /* a datamatch test ignores other data */
        u32 count = rd32(a, 12);
        const char *kind = name + strlen(prefix);
        u32 want = strcmp(kind, "-wildcard-eventfd") == 0 ? 17 : 16;
        bool qemu_eventfd = on_qemu_tcg() && strcmp(kind, "-no-eventfd") != 0 && count == 0;
        TEST_ASSERT(count == want || qemu_eventfd, "%s counted %u doorbell writes (want %u)",
                    name, count, want);
        passed++;
    }
    return passed;
}

static void check_pci_testdev(void)
{
    int dev = -1;
    for (int i = 0; i < 32 && dev < 0; i++)
        if (pci_read(i, 0) == 0x00051b36)
            dev = i;
    TEST_ASSERT(dev >= 0, "a PCI scan finds 1b36:0005 (pci-testdev)");
    if (dev < 0)
        return;
    TEST_EQ(pci_read(dev, 8) >> 8, 0x00ff00, "class 00ff, revision 0");
    TEST_EQ(pci_read(dev, 0x2c), 0x11001af4, "subsystem 1af4:1100");
    TEST_EQ((pci_read(dev, 0x3c) >> 8) & 0xff, 0, "no interrupt pin");
    u32 bar0 = pci_read(dev, 0x10), bar1 = pci_read(dev, 0x14);
    TEST_ASSERT(bar0 && !(bar0 & 1), "BAR0 is memory at %#x", bar0);
    TEST_ASSERT(bar1 & 1, "BAR1 is I/O at %#x", bar1);
    TEST_ASSERT((pci_read(dev, 4) & 3) == 3, "I/O and memory decoding enabled");
    pci_write(dev, 0x10, 0xffffffff);
    TEST_EQ(pci_read(dev, 0x10), 0xfffff000, "BAR0 sizing: 4 KiB");
    pci_write(dev, 0x10, bar0);
    pci_write(dev, 0x14, 0xffffffff);
    TEST_EQ(pci_read(dev, 0x14) & 0xffff, 0xff01, "BAR1 sizing: 256 ports");
    pci_write(dev, 0x14, bar1);

    struct accessor mem = { false, bar0 & ~0xful }, io = { true, bar1 & ~3ul };
    TEST_EQ(run_tests(&mem, "mmio"), 3, "tests of the memory BAR");
    TEST_EQ(run_tests(&io, "portio"), 3, "tests of the I/O BAR");

    /* the guest moves BAR1 and turns memory decoding off */
    u16 moved = 0xd800;
    pci_write(dev, 0x14, moved);
    struct accessor io2 = { true, moved };
    wr8(&io2, 0, 0);
    TEST_EQ(rd8(&io2, 0), 3, "BAR1 moved to 0xd800 answers there (portio test 3 selected)");
    TEST_ASSERT(inb((u16)io.base) != 3, "and no longer at its old ports");
    pci_write(dev, 0x14, bar1);
    u32 cmd = pci_read(dev, 4);
    pci_write(dev, 4, cmd & ~2u);
    TEST_ASSERT(rd8(&mem, 0) != 3, "memory decoding off: BAR0 gone");
    pci_write(dev, 4, cmd);
    TEST_EQ(rd8(&mem, 0), 3, "memory decoding back on");
}

void test_main(void)
{
    char port[16];
    if (rt_cmdline_value("exit-port", port, sizeof port)) {
        check_exit_port(0x501);
        return;
    }
    check_data_port();
    check_irq_lines();
    check_mmio_insns();
    check_pci_testdev();
}

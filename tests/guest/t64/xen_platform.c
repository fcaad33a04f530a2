/* -xen: the Xen platform PCI device as Xen's device model gives it to an HVM
 * guest: 5853:0001 with the same subsystem ids, revision 1, class ff80, INTA routed by
 * the DSDT's links, BAR0 256 I/O ports, BAR1 16 MiB prefetchable memory; the fixed
 * ports 0x10 (magic 0x49d2, unplug, platform flags) and 0x12 (protocol version 1, product
 * number, the debug log that reaches nestor's console). With platform=off none of it is
 * there. QEMU TCG has no Xen platform device here: the test skips there.
 * guest: xen=yes name=xen_platform */
/* guest: xen=platform=off append=absent=1 name=xen_platform-absent */
#include "rt.h"

static u32 cfg_read(int dev, int reg)
{
    outl(0xcf8, 0x80000000u | (u32)dev << 11 | (u32)reg);
    return inl(0xcfc);
}

static void cfg_write(int dev, int reg, u32 v)
{
    outl(0xcf8, 0x80000000u | (u32)dev << 11 | (u32)reg);
    outl(0xcfc, v);
}

static int find_platform(void)
{
    for (int dev = 0; dev < 32; dev++)
        if (cfg_read(dev, 0) == 0x00015853u)
            return dev;
    return -1;
}

void test_main(void)
{
    char spec[64] = "", absent[4] = "";
    if (!rt_cmdline_value("xen", spec, sizeof(spec))) {
        if (on_qemu_tcg()) {
            test_skip("QEMU TCG: no Xen platform device");
            return;
        }
        panic("run without -xen");
    }
    if (rt_cmdline_value("absent", absent, sizeof(absent))) {
        TEST_EQ(find_platform(), -1, "with platform=off: no 5853:0001 on bus 0");
        TEST_EQ(inw(0x10), 0xffff, "and port 0x10 is nobody's");
        return;
    }
    int dev = find_platform();
    TEST_ASSERT(dev > 0, "5853:0001 found in slot %d", dev);
    if (dev <= 0)
        return;
    TEST_EQ(cfg_read(dev, 0x2c), 0x00015853u, "subsystem 5853:0001");
    TEST_EQ(cfg_read(dev, 0x08), 0xff800001u, "class ff80, revision 1");
    TEST_EQ((cfg_read(dev, 0x3c) >> 8) & 0xff, 1, "interrupt pin INTA");
    u32 bar0 = cfg_read(dev, 0x10), bar1 = cfg_read(dev, 0x14);
    TEST_EQ(bar0 & 1, 1, "BAR0: I/O");
    TEST_EQ(bar1 & 0xf, 0x8, "BAR1: 32-bit prefetchable memory");
    cfg_write(dev, 0x14, 0xffffffffu);
    u32 size = ~(cfg_read(dev, 0x14) & ~0xfu) + 1;
    cfg_write(dev, 0x14, bar1);
    TEST_EQ(size, 16u << 20, "BAR1: 16 MiB");
    cfg_write(dev, 0x10, 0xffffffffu);
    u32 iosize = ~(cfg_read(dev, 0x10) & ~0x3u) + 1;
    cfg_write(dev, 0x10, bar0);
    TEST_EQ(iosize & 0xffff, 256, "BAR0: 256 ports");
    volatile u32 *mmio = (volatile u32 *)(u64)(bar1 & ~0xfu);
    mmio[0] = 0x12345678;
    TEST_EQ(mmio[0], 0, "BAR1 with nothing mapped reads 0");

    TEST_EQ(inw(0x10), 0x49d2, "port 0x10: the magic 0x49d2");
    TEST_EQ(inb(0x12), 1, "port 0x12: protocol version 1");
    outw(0x12, 3);           /* product number: Linux */
    outl(0x10, 0x00010000);  /* driver version */
    outw(0x10, 0x3);         /* unplug IDE disks and NICs: accepted */
    TEST_EQ(inw(0x10), 0x49d2, "still the magic after the registration: not blacklisted");
    outb(0x10, 0xff);
    TEST_EQ(inb(0x10), 1, "platform flags: only ROM_LOCK is kept");
    u16 io = (u16)(bar0 & ~3u);
    TEST_EQ(inb(io), 1, "BAR0 offset 0: the same flags");
    const char *msg = "hello from the platform log\n";
    for (const char *p = msg; *p; p++)
        outb(0x12, (u8)*p);
    for (const char *p = "and from BAR0\n"; *p; p++)
        outb(io + 8, (u8)*p);
}

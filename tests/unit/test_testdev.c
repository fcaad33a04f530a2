/* QEMU's test devices (src/dev/testdev.c, debugexit.c) and the PCI BARs they use: every
 * register as kvm-unit-tests reads it, accesses of every size at and beyond the edges
 * (safe, and only the device's own bytes move), BARs sized, moved, disabled, and yielding
 * to the platform's fixed ranges. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "dev/dev.h"
#include "platform_fixture.h"

static struct machine *m;

static void setup(void)
{
    m = fixture_machine();
    cr_assert_eq(mem_init(&m->mem, 8 * MiB), 0);
    m->pic = pic_create(m);
    m->pci = pci_create(m);
    m->pc_testdev = pc_testdev_create(m);
    m->pci_testdev = pci_testdev_create(m, 3);
}

static void teardown(void)
{
    pci_testdev_destroy(m->pci_testdev);
    pc_testdev_destroy(m->pc_testdev);
    pci_destroy(m->pci);
    pic_destroy(m->pic);
    mem_destroy(&m->mem);
    free(m);
}

TestSuite(testdev, .init = setup, .fini = teardown);

Test(testdev, data_port_every_size_and_edge)
{
    outl(m, 0xe0, 0x12345678);
    cr_assert_eq(inl(m, 0xe0), 0x12345678);
    cr_assert_eq(inb(m, 0xe3), 0x12);
    cr_assert_eq(inw(m, 0xe1), 0x3456);
    outw(m, 0xe1, 0xbeef);
    cr_assert_eq(inl(m, 0xe0), 0x12beef78);
    /* a dword at 0xe2 holds two of the register's bytes; the rest is not its own */
    cr_assert_eq(inl(m, 0xe2), 0xffff12be);
    outl(m, 0xe2, 0xaaaa5566);
    cr_assert_eq(inl(m, 0xe0), 0x5566ef78);
    /* 0xe8: the same bytes */
    cr_assert_eq(inl(m, 0xe8), 0x5566ef78);
    outb(m, 0xeb, 0x01);
    cr_assert_eq(inl(m, 0xe0), 0x0166ef78);
    /* the flush port is write-only and leaves the data alone */
    cr_assert_eq(inl(m, 0xe4), 0xffffffff);
    outl(m, 0xe4, 0x1000);
    cr_assert_eq(inl(m, 0xe0), 0x0166ef78);
}

Test(testdev, flush_drops_decoded_code_of_the_page)
{
    u32 *gen = mem_page_gen(&m->mem, 0x5000);
    cr_assert(gen);
    mem_code_mark(&m->mem, 0x5000);
    u32 before = *gen;
    outw(m, 0xe4, 0x5000); /* only 32-bit writes flush */
    cr_assert_eq(*gen, before);
    outl(m, 0xe4, 0x5123);
    cr_assert_neq(*gen, before);
    cr_assert_eq(*gen & PAGE_GEN_CODE, 0);
    outl(m, 0xe4, 0xfffff000); /* not RAM: nothing */
}

Test(testdev, irq_lines_drive_isa_irqs)
{
    outb(m, 0x2000 + 3, 1);
    cr_assert(pic_get_state(m->pic, 0).irr & BIT(3));
    outb(m, 0x2000 + 3, 0);
    outb(m, 0x2000 + 11, 0x80);
    cr_assert(pic_get_state(m->pic, 1).irr & BIT(3));
    outb(m, 0x2000 + 11, 0);
    outw(m, 0x2000 + 5, 1); /* byte writes only */
    cr_assert_eq(pic_get_state(m->pic, 0).irr & BIT(5), 0);
    outb(m, 0x2000 + 23, 1); /* I/O APIC inputs: no I/O APIC here, nothing happens */
    cr_assert_eq(inb(m, 0x2000), 0xff);
    cr_assert_null(bus_find(&m->io, 0x2000 + 24));
}

Test(testdev, iomem_is_plain_memory_to_its_last_byte)
{
    u64 base = PC_TESTDEV_IOMEM_BASE;
    mmio_wr64(m, base + 8, 0x0123456789abcdefull);
    cr_assert_eq(mmio_rd32(m, base + 12), 0x01234567);
    cr_assert_eq(bus_read(&m->mmio, base + 9, 2), 0xabcd);
    mmio_wr64(m, base + 0xfffc, 0x1122334455667788ull); /* half of it beyond the window */
    cr_assert_eq(mmio_rd32(m, base + 0xfffc), 0x55667788);
    cr_assert_eq(mmio_rd64(m, base + 0xfffc), 0xffffffff55667788ull);
    cr_assert_null(bus_find(&m->mmio, base + 0x10000));
}

static u32 cfg(int reg) { return pci_config_read(m->pci, 0, PCI_DEVFN(3, 0), (u16)reg, 4); }
static void cfg_wr(int reg, u32 v) { pci_config_write(m->pci, 0, PCI_DEVFN(3, 0), (u16)reg, 4, v); }

Test(testdev, pci_identity_and_bars)
{
    cr_assert_eq(cfg(0), 0x00051b36);
    cr_assert_eq(cfg(8), 0x00ff0000);
    cr_assert_eq(cfg(0x2c), 0x11001af4);
    cr_assert_eq(cfg(0x3c) >> 8 & 0xff, 0);
    cr_assert_eq(cfg(0x10), (u32)PCI_MEM_ALLOC_BASE);
    cr_assert_eq(cfg(0x14), PCI_IO_ALLOC_BASE | 1);
    cr_assert_eq(cfg(4) & 3, 3);
    cfg_wr(0x10, 0xffffffff);
    cr_assert_eq(cfg(0x10), 0xfffff000);
    cfg_wr(0x14, 0xffffffff);
    cr_assert_eq(cfg(0x14), 0xffffff01);
    /* all-ones addresses lie beyond the spaces: nothing decodes */
    cr_assert_null(bus_find(&m->io, PCI_IO_ALLOC_BASE));
    cfg_wr(0x10, (u32)PCI_MEM_ALLOC_BASE);
    cfg_wr(0x14, 0xd000);
    cr_assert_not_null(bus_find(&m->io, 0xd000));
    cr_assert_not_null(bus_find(&m->mmio, PCI_MEM_ALLOC_BASE + 0xfff));
    cr_assert_null(bus_find(&m->mmio, PCI_MEM_ALLOC_BASE + 0x1000));
    /* decoding off, then on */
    cfg_wr(4, cfg(4) & ~2u);
    cr_assert_null(bus_find(&m->mmio, PCI_MEM_ALLOC_BASE));
    cfg_wr(4, cfg(4) | 2u);
    cr_assert_not_null(bus_find(&m->mmio, PCI_MEM_ALLOC_BASE));
    /* a BAR over a platform device (pc-testdev's MMIO window): the platform answers */
    mmio_wr32(m, PC_TESTDEV_IOMEM_BASE, 0x55aa55aa);
    bus_write(&m->io, 0xd000, 1, 0); /* portio test 0 (index 3) selected through the I/O BAR */
    cfg_wr(0x10, (u32)PC_TESTDEV_IOMEM_BASE);
    const struct bus_range *r = bus_find(&m->mmio, PC_TESTDEV_IOMEM_BASE);
    cr_assert(r && !r->overlay);
    cr_assert_eq(mmio_rd32(m, PC_TESTDEV_IOMEM_BASE), 0x55aa55aa);
    cr_assert_eq(bus_read(&m->mmio, PC_TESTDEV_IOMEM_BASE + 0x10000, 1), 0xff);
    cfg_wr(0x10, (u32)PCI_MEM_ALLOC_BASE);
    cr_assert_eq(bus_read(&m->mmio, PCI_MEM_ALLOC_BASE, 1), 3);
    cfg_wr(0x14, PCI_IO_ALLOC_BASE);
}

/* The protocol of kvm-unit-tests' lib/pci-testdev.c, through BAR `bar`. */
static void run_protocol(bool io, u64 base, const char *const names[3])
{
    struct bus *bus = io ? &m->io : &m->mmio;
    for (int t = 0; t < 3; t++) {
        bus_write(bus, base, 1, (u64)t);
        cr_assert_eq(bus_read(bus, base + 12, 4), 0);
        cr_assert_eq(bus_read(bus, base + 1, 1), 1, "width");
        u32 off = (u32)bus_read(bus, base + 4, 4);
        cr_assert_eq(off, (io ? 128u : 2048u) + (io ? 3u : 0u) + (u32)t);
        u8 sig = (u8)bus_read(bus, base + 8, 1);
        cr_assert_eq(sig, t == 1 ? 0xce : 0xfa);
        char name[40] = { 0 };
        for (int i = 0; i < 39 && (name[i] = (char)bus_read(bus, base + 16 + (u64)i, 1)); i++)
            ;
        cr_assert_str_eq(name, names[t]);
        for (int k = 0; k < 16; k++)
            bus_write(bus, base + off, 1, sig);
        bus_write(bus, base + off, 4, 0x12345600u | (u8)~sig); /* byte 0 mismatches */
        cr_assert_eq(bus_read(bus, base + 12, 4), t == 1 ? 17u : 16u, "%s", names[t]);
    }
    bus_write(bus, base, 1, 3); /* no such test: nothing selected, reads 0 */
    cr_assert_eq(bus_read(bus, base + 1, 1), 0);
    cr_assert_eq(bus_read(bus, base + 16, 8), 0);
}

Test(testdev, pci_test_table)
{
    static const char *const mmio[3] = { "mmio-no-eventfd", "mmio-wildcard-eventfd",
                                         "mmio-datamatch-eventfd" };
    static const char *const pio[3] = { "portio-no-eventfd", "portio-wildcard-eventfd",
                                        "portio-datamatch-eventfd" };
    run_protocol(false, PCI_MEM_ALLOC_BASE, mmio);
    run_protocol(true, PCI_IO_ALLOC_BASE, pio);
    /* reads past the header and the name's NUL are 0; any size anywhere is safe */
    bus_write(&m->io, PCI_IO_ALLOC_BASE, 1, 2);
    cr_assert_eq(bus_read(&m->io, PCI_IO_ALLOC_BASE + 16 + 24, 1), 0);
    for (u64 off = 0; off < 256; off += 3)
        bus_write(&m->io, PCI_IO_ALLOC_BASE + off, 4, 0xffffffff);
    for (u64 off = 0; off < 4096; off += 7)
        (void)bus_read(&m->mmio, PCI_MEM_ALLOC_BASE + off, 8);
}

Test(testdev, debugexit_ports)
{
    cr_redirect_stderr();
    cr_assert_eq(debugexit_create(m, 0x501, 2), 0);
    cr_assert_eq(inb(m, 0x502), 0);
    cr_assert_null(bus_find(&m->io, 0x503));
    cr_assert_eq(debugexit_create(m, 0x502, 4), -1); /* taken */
    cr_assert_eq(debugexit_create(m, 0xfffe, 4), -1); /* beyond the I/O space */
    cr_assert_eq(debugexit_create(m, 0xe0, 1), -1);   /* pc-testdev's */
    bus_write(&m->io, 0x502, 2, 0x21);
    cr_assert(m->stop);
    cr_assert_eq(m->exit_status, 0x43);
}

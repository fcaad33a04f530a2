/* Unit tests of the PCI host bridge (mechanism #1 and ECAM), plus the other platform
 * ports that sit beside it: ACPI PM registers, PM timer, S5 and the reset register at
 * 0xcf9, and the i8042's probe and reset paths. */
#include <criterion/criterion.h>

#include "dev/timeconv.h"
#include "platform_fixture.h"

static struct machine *m;
static struct pci_bus *pci;
static struct acpi_pm *pm;
static struct kbc *kbc;

static void setup(void)
{
    m = fixture_machine();
    pci = pci_create(m);
    pm = acpi_pm_create(m);
    kbc = kbc_create(m);
}

static void teardown(void)
{
    kbc_destroy(kbc);
    acpi_pm_destroy(pm);
    pci_destroy(pci);
    free(m);
}

TestSuite(pci, .init = setup, .fini = teardown);

static u32 cfg1_read(u8 dev, u8 reg, unsigned size)
{
    outl(m, 0xcf8, 0x80000000u | (u32)dev << 11 | (reg & 0xfc));
    u16 port = (u16)(0xcfc + (reg & 3));
    return size == 1 ? inb(m, port) : size == 2 ? inw(m, port) : inl(m, port);
}

Test(pci, host_bridge_through_mechanism_1)
{
    cr_assert_eq(cfg1_read(0, 0x00, 4), 0x29c08086u);
    cr_assert_eq(cfg1_read(0, 0x08, 4), 0x06000000u);
    cr_assert_eq(cfg1_read(0, 0x0e, 1), 0x00, "header type 0");
    cr_assert_eq(cfg1_read(0, 0x02, 2), 0x29c0);
    cr_assert_eq(cfg1_read(0, 0x0b, 1), 0x06);
    for (u8 bar = 0x10; bar < 0x28; bar += 4) {
        outl(m, 0xcf8, 0x80000000u | bar);
        outl(m, 0xcfc, 0xffffffff);
        cr_assert_eq(inl(m, 0xcfc), 0u, "no BARs");
    }
    cr_assert_eq(inl(m, 0xcf8), 0x80000024u);
}

Test(pci, absent_functions_and_disabled_address_read_all_ones)
{
    cr_assert_eq(cfg1_read(1, 0x00, 4), 0xffffffffu);
    outl(m, 0xcf8, 0x80010000u); /* bus 1 */
    cr_assert_eq(inl(m, 0xcfc), 0xffffffffu);
    outl(m, 0xcf8, 0x00000000u); /* enable bit clear */
    cr_assert_eq(inl(m, 0xcfc), 0xffffffffu);
    outl(m, 0xcf8, 0x80000003u);
    cr_assert_eq(inl(m, 0xcf8), 0x80000000u, "register bits 1:0 read 0");
    outb(m, 0xcf8, 0x12); /* byte writes are not the address register */
    cr_assert_eq(inl(m, 0xcf8), 0x80000000u);
}

Test(pci, read_only_fields_protected_and_status_write_one_to_clear)
{
    outl(m, 0xcf8, 0x80000000u);
    outl(m, 0xcfc, 0x12345678);
    cr_assert_eq(inl(m, 0xcfc), 0x29c08086u);
    outl(m, 0xcf8, 0x80000004u);
    outw(m, 0xcfc, 0xffff);
    cr_assert_eq(inw(m, 0xcfc), 0x0547, "command: writable bits only");
    struct pci_device *d = pci_register_device(pci, PCI_DEVFN(0, 0), NULL, NULL);
    cr_assert_null(d, "00.0 is taken");
    pci_config_write(pci, 0, 0, 0x3c, 1, 0x0b);
    cr_assert_eq(cfg1_read(0, 0x3c, 1), 0x0b);
}

static int writes_seen;
static u16 last_offset;
static unsigned last_size;
static void on_write(struct pci_device *d, u16 offset, unsigned size)
{
    (void)d;
    last_offset = offset;
    last_size = size;
    writes_seen++;
}

Test(pci, registered_device_with_masks_and_callback)
{
    static const struct pci_device_ops ops = { on_write };
    struct pci_device *d = pci_register_device(pci, PCI_DEVFN(3, 0), &ops, NULL);
    cr_assert_not_null(d);
    d->config[0] = 0xf4;
    d->config[1] = 0x1a;
    d->config[6] = 0x80;
    d->w1cmask[6] = 0x80;
    d->wmask[0x11] = 0xf0; /* a 4 KiB memory BAR: bits 12-31 */
    d->wmask[0x12] = d->wmask[0x13] = 0xff;
    cr_assert_eq(cfg1_read(3, 0x00, 2), 0x1af4);
    outl(m, 0xcf8, 0x80000000u | 3 << 11 | 0x10);
    outl(m, 0xcfc, 0xffffffff);
    cr_assert_eq(inl(m, 0xcfc), 0xfffff000u);
    cr_assert_eq(writes_seen, 1);
    cr_assert_eq(last_offset, 0x10);
    cr_assert_eq(last_size, 4u);
    outl(m, 0xcf8, 0x80000000u | 3 << 11 | 0x04);
    outb(m, 0xcfe, 0x80); /* clear the status bit */
    cr_assert_eq(inb(m, 0xcfe), 0x00);
}

Test(pci, ecam)
{
    cr_assert_eq(mmio_rd32(m, PCI_ECAM_BASE), 0x29c08086u);
    cr_assert_eq((u16)bus_read(&m->mmio, PCI_ECAM_BASE + 0xa, 2), 0x0600);
    cr_assert_eq(mmio_rd32(m, PCI_ECAM_BASE + (1 << 15)), 0xffffffffu, "device 1 absent");
    cr_assert_eq(mmio_rd32(m, PCI_ECAM_BASE + (1 << 20)), 0xffffffffu, "bus 1 absent");
    cr_assert_eq(mmio_rd32(m, PCI_ECAM_BASE + 0x100), 0u, "extended space of 00.0: zero");
    mmio_wr32(m, PCI_ECAM_BASE + 0x0c, 0x0000ff10);
    cr_assert_eq(cfg1_read(0, 0x0c, 2), 0xff10);
}

/* ---- ACPI PM ---- */
Test(pci, pm_timer_rate)
{
    u32 t0 = inl(m, 0x608);
    advance(m, 1000000000ull);
    u32 t1 = inl(m, 0x608);
    cr_assert_eq(t1 - t0, 3579545u);
    cr_assert_eq(inw(m, 0x608), (u16)t1, "byte/word reads of the timer");
}

Test(pci, pm_timer_overflow_status_and_sci_timer)
{
    outw(m, 0x602, 0x0001); /* TMR_EN */
    u64 toggle = ticks_to_ns(1ull << 31, ACPI_PM_TIMER_HZ);
    cr_assert_eq(clock_next_deadline(&m->clock), toggle);
    run_until(m, toggle);
    cr_assert_eq(inw(m, 0x600) & 1, 1, "TMR_STS at the bit-31 change");
    outw(m, 0x600, 0x0001);
    cr_assert_eq(inw(m, 0x600) & 1, 0);
}

Test(pci, s5_and_power_button)
{
    acpi_pm_power_button(pm);
    cr_assert_eq(inw(m, 0x600) & 0x100, 0x100);
    outw(m, 0x604, (u16)(ACPI_S5_SLP_TYP << 10 | 1 << 13));
    cr_assert(m->stop);
    cr_assert_eq(m->exit_status, 0);
}

Test(pci, reset_register_as_linux_writes_it)
{
    outb(m, 0xcf9, 0x02);
    cr_assert(!m->stop);
    cr_assert_eq(inb(m, 0xcf9), 0x02);
    outb(m, 0xcf9, 0x06);
    cr_assert(m->stop);
    cr_assert_eq(m->exit_status, 0);
}

Test(pci, gpe0_block)
{
    outw(m, 0x622, 0xffff);
    cr_assert_eq(inl(m, 0x620), 0xffff0000u);
}

/* ---- i8042 ---- */
static u8 kbc_cmd(u8 cmd)
{
    outb(m, 0x64, cmd);
    cr_assert(inb(m, 0x64) & 1, "output buffer full");
    return inb(m, 0x60);
}

Test(pci, i8042_probe_sequence)
{
    cr_assert_eq(inb(m, 0x64) & 1, 0);
    cr_assert_eq(kbc_cmd(0xaa), 0x55);
    cr_assert_eq(kbc_cmd(0xab), 0x00);
    u8 ctr = kbc_cmd(0x20);
    cr_assert_eq(ctr & 0x40, 0x40, "translation on");
    outb(m, 0x64, 0x60);
    outb(m, 0x60, 0x47);
    cr_assert_eq(kbc_cmd(0x20), 0x47);
    /* AUX loopback comes back marked as AUX data */
    outb(m, 0x64, 0xd3);
    outb(m, 0x60, 0x5a);
    cr_assert_eq(inb(m, 0x64) & 0x21, 0x21);
    cr_assert_eq(inb(m, 0x60), 0x5a);
    /* a byte for the (absent) mouse times out */
    outb(m, 0x64, 0xd4);
    outb(m, 0x60, 0xff);
    cr_assert_eq(inb(m, 0x64) & 0x61, 0x61);
    cr_assert_eq(inb(m, 0x60), 0xfe);
    /* keyboard reset and identify */
    outb(m, 0x60, 0xff);
    cr_assert_eq(inb(m, 0x60), 0xfa);
    cr_assert_eq(inb(m, 0x60), 0xaa);
    outb(m, 0x60, 0xf2);
    cr_assert_eq(inb(m, 0x60), 0xfa);
    cr_assert_eq(inb(m, 0x60), 0xab);
    cr_assert_eq(inb(m, 0x60), 0x41);
    cr_assert_eq(inb(m, 0x64) & 1, 0);
}

Test(pci, i8042_pulse_reset)
{
    cr_assert_eq(kbc_cmd(0xd0) & 1, 1, "reset line high");
    outb(m, 0x64, 0xfe);
    cr_assert(m->stop);
    cr_assert_eq(m->exit_status, 0);
}

Test(pci, i8042_output_port_reset)
{
    outb(m, 0x64, 0xd1);
    outb(m, 0x60, 0x03);
    cr_assert(!m->stop);
    outb(m, 0x64, 0xd1);
    outb(m, 0x60, 0x02);
    cr_assert(m->stop);
}

/* ---- the ICH9 LPC bridge's PCI interrupt router (00:1f.0) ---- */

static void cfg1_write8(u8 dev, u8 reg, u8 v)
{
    outl(m, 0xcf8, 0x80000000u | (u32)dev << 11 | (reg & 0xfc));
    outb(m, (u16)(0xcfc + (reg & 3)), v);
}

Test(pci, lpc_router_power_on_and_writable_bits)
{
    cr_assert_eq(cfg1_read(31, 0x00, 4), 0x29188086u, "ICH9 LPC interface");
    cr_assert_eq(cfg1_read(31, 0x0a, 2), 0x0601u, "ISA bridge");
    for (u8 r = 0; r < 4; r++) {
        cr_assert_eq(cfg1_read(31, 0x60 + r, 1), 0x80u, "PIRQ%c_ROUT: not routed", 'A' + r);
        cr_assert_eq(cfg1_read(31, 0x68 + r, 1), 0x80u, "PIRQ%c_ROUT: not routed", 'E' + r);
    }
    cfg1_write8(31, 0x62, 0xff);
    cr_assert_eq(cfg1_read(31, 0x62, 1), 0x8fu, "bits 6:4 reserved");
    cfg1_write8(31, 0x6b, 0x0b);
    cr_assert_eq(cfg1_read(31, 0x6b, 1), 0x0bu);
    cr_assert_eq(cfg1_read(31, 0x64, 4), 0u, "nothing between the two groups");
}

Test(pci, intx_wired_or_onto_pirqs_and_the_router)
{
    m->pci = pci;
    m->pic = pic_create(m);
    m->ioapic = ioapic_create(m);
    pic_set_elcr(m->pic, 1u << 5 | 1u << 11);
    /* slot 1 INTA and slot 2 INTD share PIRQB (I/O APIC input 17) */
    pci_set_intx(pci, PCI_DEVFN(1, 0), 0, true);
    pci_set_intx(pci, PCI_DEVFN(2, 0), 3, true);
    cr_assert_eq(m->pci_gsis, 1u << 17, "PIRQB on GSI 17");
    cr_assert_eq(m->pci_isa_irqs, 0, "not routed to the 8259 at power-on");
    pci_set_intx(pci, PCI_DEVFN(1, 0), 0, false);
    cr_assert_eq(m->pci_gsis, 1u << 17, "still driven by the other function");
    pci_set_intx(pci, PCI_DEVFN(2, 0), 3, true);
    cr_assert_eq(m->pci_gsis, 1u << 17, "asserting twice counts once");

    cfg1_write8(31, 0x61, 5);
    cr_assert_eq(m->pci_isa_irqs, 1u << 5, "PIRQB routed to IRQ 5 while asserted");
    cr_assert(pic_get_state(m->pic, 0).irr & (1u << 5), "the 8259 sees the level at IRQ 5");
    machine_set_irq(m, 5, true); /* an ISA source on the same line */
    cfg1_write8(31, 0x61, 0x85);
    cr_assert_eq(m->pci_isa_irqs, 0, "bit 7: not routed");
    cr_assert(pic_get_state(m->pic, 0).irr & (1u << 5), "the ISA source still drives IRQ 5");
    machine_set_irq(m, 5, false);
    cr_assert_eq(pic_get_state(m->pic, 0).irr & (1u << 5), 0, "IRQ 5 low with neither");
    for (int irq = 0; irq < 16; irq++) {
        cfg1_write8(31, 0x61, (u8)irq);
        bool valid = irq >= 3 && irq != 8 && irq != 13;
        cr_assert_eq(m->pci_isa_irqs, valid ? 1u << irq : 0u, "route to IRQ %d", irq);
    }
    cfg1_write8(31, 0x61, 11);
    cr_assert(pic_get_state(m->pic, 1).irr & (1u << 3), "rerouted to IRQ 11 on the slave");
    pci_set_intx(pci, PCI_DEVFN(2, 0), 3, false);
    cr_assert_eq(m->pci_gsis, 0u, "PIRQB released by its last driver");
    cr_assert_eq(m->pci_isa_irqs, 0u);
    cr_assert_eq(pic_get_state(m->pic, 1).irr & (1u << 3), 0, "IRQ 11 low again");
    ioapic_destroy(m->ioapic);
    pic_destroy(m->pic);
    m->pic = NULL;
    m->ioapic = NULL;
}

Test(pci, firmware_irq_setup_as_seabios)
{
    struct pci_device *d = pci_register_device(pci, PCI_DEVFN(6, 0), NULL, NULL);
    d->config[0x3d] = 2; /* INTB: PIRQ (6 + 1) % 4 = D */
    cr_assert_eq(pci_firmware_irq_setup(pci), 1u << 10 | 1u << 11, "IRQ 10 and 11 level");
    static const u8 want[4] = { 10, 10, 11, 11 };
    for (u8 r = 0; r < 4; r++) {
        cr_assert_eq(cfg1_read(31, 0x60 + r, 1), want[r]);
        cr_assert_eq(cfg1_read(31, 0x68 + r, 1), want[r]);
    }
    cr_assert_eq(cfg1_read(6, 0x3c, 1), 11u, "Interrupt Line: PIRQD's IRQ");
    cr_assert_eq(cfg1_read(0, 0x3c, 1), 0u, "no pin, no line");
}

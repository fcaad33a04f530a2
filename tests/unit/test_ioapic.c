/* Unit tests of the I/O APIC: registers, redirection entries, edge and level delivery
 * to a LAPIC, remote IRR and the re-send after EOI, polarity, masking. */
#include <criterion/criterion.h>

#include "dev/dev.h"
#include "platform_fixture.h"

static struct machine *m;
static struct ioapic *io;
static struct lapic *apic;

static void setup(void)
{
    m = fixture_machine();
    char err[128];
    cr_assert_eq(cpuid_model_parse(&m->model, "max", err, sizeof(err)), 0);
    m->ncpus = 1;
    apic = m->lapic[0] = lapic_create(m, NULL, 0, true);
    lapic_mmio_write(apic, 0xf0, 4, 0x1ff); /* software-enable the LAPIC */
    io = ioapic_create(m);
}

static void teardown(void)
{
    ioapic_destroy(io);
    lapic_destroy(apic);
    free(m);
}

TestSuite(ioapic, .init = setup, .fini = teardown);

static u32 reg_read(u8 index)
{
    mmio_wr32(m, IOAPIC_MMIO_BASE, index);
    return mmio_rd32(m, IOAPIC_MMIO_BASE + 0x10);
}

static void reg_write(u8 index, u32 v)
{
    mmio_wr32(m, IOAPIC_MMIO_BASE, index);
    mmio_wr32(m, IOAPIC_MMIO_BASE + 0x10, v);
}

static void set_entry(int pin, u64 e)
{
    reg_write((u8)(0x10 + 2 * pin + 1), (u32)(e >> 32));
    reg_write((u8)(0x10 + 2 * pin), (u32)e);
}

/* Takes the pending interrupt from the LAPIC and EOIs it there; -1 if none. */
static int take(void)
{
    int v = lapic_intr_pending(apic);
    if (v >= 0) {
        cr_assert_eq(lapic_intr_ack(apic), v);
        lapic_mmio_write(apic, 0xb0, 4, 0);
    }
    return v;
}

Test(ioapic, identification_registers)
{
    cr_assert_eq(reg_read(0x01), 0x170020u);
    cr_assert_eq(reg_read(0x00), 0u);
    reg_write(0x00, 0x0a000000);
    cr_assert_eq(reg_read(0x00), 0x0a000000u);
    reg_write(0x01, 0);
    cr_assert_eq(reg_read(0x01), 0x170020u, "version is read-only");
    mmio_wr32(m, IOAPIC_MMIO_BASE, 0x12);
    cr_assert_eq(mmio_rd32(m, IOAPIC_MMIO_BASE), 0x12u, "IOREGSEL reads back");
}

Test(ioapic, entries_reset_masked_and_keep_read_only_bits)
{
    for (int pin = 0; pin < 24; pin++)
        cr_assert_eq(ioapic_redirection(io, pin), BIT(16));
    set_entry(3, 0xffffffffffffffffull);
    /* delivery status and remote IRR are read-only; bits 17-55 reserved */
    cr_assert_eq(ioapic_redirection(io, 3), 0xff0000000001afffull);
    cr_assert_eq(reg_read(0x10 + 7), 0xff000000u);
}

Test(ioapic, edge_pin_delivers_on_rising_edge_only)
{
    set_entry(2, 0x30); /* fixed, physical, dest 0, edge, high, unmasked */
    ioapic_set_irq(io, 2, true);
    cr_assert_eq(take(), 0x30);
    ioapic_set_irq(io, 2, true); /* still high: no edge */
    cr_assert_eq(take(), -1);
    ioapic_set_irq(io, 2, false);
    ioapic_set_irq(io, 2, true);
    cr_assert_eq(take(), 0x30);
}

Test(ioapic, masked_edge_is_lost)
{
    set_entry(4, 0x31 | BIT(16));
    ioapic_set_irq(io, 4, true);
    set_entry(4, 0x31);
    cr_assert_eq(take(), -1);
}

Test(ioapic, level_pin_remote_irr_and_resend_after_eoi)
{
    set_entry(9, 0x41 | BIT(15)); /* level, active high */
    ioapic_set_irq(io, 9, true);
    cr_assert(ioapic_redirection(io, 9) & BIT(14), "remote IRR set");
    cr_assert_eq(take(), 0x41);
    /* no EOI broadcast yet: nothing new even if the line toggles */
    ioapic_set_irq(io, 9, false);
    ioapic_set_irq(io, 9, true);
    cr_assert_eq(take(), -1);
    ioapic_eoi(io, 0x41);
    /* still asserted: sent again */
    cr_assert(ioapic_redirection(io, 9) & BIT(14));
    cr_assert_eq(take(), 0x41);
    ioapic_set_irq(io, 9, false);
    ioapic_eoi(io, 0x41);
    cr_assert_eq(ioapic_redirection(io, 9) & BIT(14), 0u);
    cr_assert_eq(take(), -1);
}

Test(ioapic, eoi_register_clears_remote_irr)
{
    set_entry(10, 0x42 | BIT(15));
    ioapic_set_irq(io, 10, true);
    cr_assert_eq(take(), 0x42);
    ioapic_set_irq(io, 10, false);
    mmio_wr32(m, IOAPIC_MMIO_BASE + 0x40, 0x42);
    cr_assert_eq(ioapic_redirection(io, 10) & BIT(14), 0u);
    mmio_wr32(m, IOAPIC_MMIO_BASE + 0x40, 0x99); /* other vectors: no effect */
}

Test(ioapic, unmasking_an_asserted_level_pin_delivers)
{
    set_entry(11, 0x43 | BIT(15) | BIT(16));
    ioapic_set_irq(io, 11, true);
    cr_assert_eq(take(), -1);
    set_entry(11, 0x43 | BIT(15));
    cr_assert_eq(take(), 0x43);
}

Test(ioapic, active_low_polarity)
{
    ioapic_set_irq(io, 16, true); /* an idle active-low line is high */
    set_entry(16, 0x50 | BIT(15) | BIT(13));
    cr_assert_eq(take(), -1);
    ioapic_set_irq(io, 16, false); /* asserted */
    cr_assert_eq(take(), 0x50);
    ioapic_set_irq(io, 16, true);
    ioapic_eoi(io, 0x50);
    cr_assert_eq(take(), -1);
}

Test(ioapic, switching_to_edge_clears_remote_irr)
{
    set_entry(12, 0x44 | BIT(15));
    ioapic_set_irq(io, 12, true);
    cr_assert_eq(take(), 0x44);
    set_entry(12, 0x44 | BIT(16));
    cr_assert_eq(ioapic_redirection(io, 12) & BIT(14), 0u);
}

Test(ioapic, destination_must_match)
{
    set_entry(5, 0x60 | (5ull << 56)); /* physical APIC ID 5: not ours */
    ioapic_set_irq(io, 5, true);
    cr_assert_eq(take(), -1);
    set_entry(6, 0x61 | (0xffull << 56)); /* broadcast */
    ioapic_set_irq(io, 6, true);
    cr_assert_eq(take(), 0x61);
}

Test(ioapic, extint_delivery_reaches_the_lapic)
{
    set_entry(0, (7u << 8));
    ioapic_set_irq(io, 0, true);
    cr_assert(lapic_extint_pending(apic));
}

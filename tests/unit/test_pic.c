/* Unit tests of the 8259A PIC pair: initialization, priorities, EOI, cascade, ELCR,
 * spurious interrupts, auto-EOI, poll mode, and the INT output on LINT0. */
#include <criterion/criterion.h>

#include "dev/dev.h"
#include "platform_fixture.h"

static struct machine *m;
static struct pic *pic;

/* The sequence Linux's init_8259A uses: vectors 0x20 and 0x28. */
static void init_pair(u8 icw4)
{
    outb(m, 0x20, 0x11);
    outb(m, 0x21, 0x20);
    outb(m, 0x21, 0x04);
    outb(m, 0x21, icw4);
    outb(m, 0xa0, 0x11);
    outb(m, 0xa1, 0x28);
    outb(m, 0xa1, 0x02);
    outb(m, 0xa1, icw4);
}

static void setup(void)
{
    m = fixture_machine();
    pic = pic_create(m);
    init_pair(0x01);
}

static void teardown(void)
{
    pic_destroy(pic);
    free(m);
}

TestSuite(pic, .init = setup, .fini = teardown);

Test(pic, init_sequence_sets_bases_and_clears_masks)
{
    struct pic_state ms = pic_get_state(pic, 0), ss = pic_get_state(pic, 1);
    cr_assert_eq(ms.base, 0x20);
    cr_assert_eq(ss.base, 0x28);
    cr_assert_eq(inb(m, 0x21), 0x00);
    cr_assert_eq(inb(m, 0xa1), 0x00);
    outb(m, 0x21, 0xfb);
    cr_assert_eq(inb(m, 0x21), 0xfb);
}

Test(pic, edge_request_ack_and_eoi)
{
    cr_assert(!pic_has_intr(pic));
    pic_set_irq(pic, 1, true);
    cr_assert(pic_has_intr(pic));
    cr_assert_eq(pic_intr_ack(pic), 0x21);
    cr_assert(!pic_has_intr(pic));
    outb(m, 0x20, 0x0b); /* OCW3: read ISR */
    cr_assert_eq(inb(m, 0x20), 0x02);
    outb(m, 0x20, 0x0a); /* OCW3: read IRR */
    cr_assert_eq(inb(m, 0x20), 0x00);
    outb(m, 0x20, 0x20); /* non-specific EOI */
    cr_assert_eq(pic_get_state(pic, 0).isr, 0);
    /* the line is still high: no new edge, no new request */
    cr_assert(!pic_has_intr(pic));
    pic_set_irq(pic, 1, false);
    pic_set_irq(pic, 1, true);
    cr_assert(pic_has_intr(pic));
}

Test(pic, edge_pulse_is_latched)
{
    pic_set_irq(pic, 4, true);
    pic_set_irq(pic, 4, false);
    cr_assert(pic_has_intr(pic));
    cr_assert_eq(pic_intr_ack(pic), 0x24);
}

Test(pic, masked_request_waits_for_unmask)
{
    outb(m, 0x21, 0x02);
    pic_set_irq(pic, 1, true);
    cr_assert(!pic_has_intr(pic));
    cr_assert_eq(pic_get_state(pic, 0).irr, 0x02);
    outb(m, 0x21, 0x00);
    cr_assert(pic_has_intr(pic));
}

Test(pic, priority_and_nesting)
{
    pic_set_irq(pic, 3, true);
    pic_set_irq(pic, 1, true);
    cr_assert_eq(pic_intr_ack(pic), 0x21);
    /* IRQ3 has lower priority than IRQ1 in service */
    cr_assert(!pic_has_intr(pic));
    /* IRQ0 has higher priority: it nests */
    pic_set_irq(pic, 0, true);
    cr_assert(pic_has_intr(pic));
    cr_assert_eq(pic_intr_ack(pic), 0x20);
    outb(m, 0x20, 0x20); /* EOI clears the highest in service: IRQ0 */
    cr_assert_eq(pic_get_state(pic, 0).isr, 0x02);
    cr_assert(!pic_has_intr(pic));
    outb(m, 0x20, 0x61); /* specific EOI for IRQ1 */
    cr_assert_eq(pic_get_state(pic, 0).isr, 0x00);
    cr_assert(pic_has_intr(pic));
    cr_assert_eq(pic_intr_ack(pic), 0x23);
}

Test(pic, cascade_through_ir2)
{
    pic_set_irq(pic, 10, true);
    cr_assert(pic_has_intr(pic));
    cr_assert_eq(pic_intr_ack(pic), 0x2a);
    cr_assert_eq(pic_get_state(pic, 0).isr, 0x04);
    cr_assert_eq(pic_get_state(pic, 1).isr, 0x04);
    outb(m, 0xa0, 0x20);
    outb(m, 0x20, 0x20);
    cr_assert_eq(pic_get_state(pic, 0).isr, 0);
    cr_assert_eq(pic_get_state(pic, 1).isr, 0);
    /* a masked slave line does not reach the master */
    outb(m, 0xa1, 0x08);
    pic_set_irq(pic, 11, true);
    cr_assert(!pic_has_intr(pic));
}

Test(pic, irq2_cannot_be_raised_from_outside)
{
    pic_set_irq(pic, 2, true);
    cr_assert(!pic_has_intr(pic));
}

Test(pic, elcr_masks_and_level_requests)
{
    outb(m, 0x4d0, 0xff);
    outb(m, 0x4d1, 0xff);
    cr_assert_eq(inb(m, 0x4d0), 0xf8);
    cr_assert_eq(inb(m, 0x4d1), 0xde);
    cr_assert_eq(inw(m, 0x4d0), 0xdef8);
    outb(m, 0x4d0, 0x20); /* IRQ5 level */
    pic_set_irq(pic, 5, true);
    cr_assert_eq(pic_intr_ack(pic), 0x25);
    /* a level request stays in IRR while the line is high: after EOI it comes again */
    cr_assert_eq(pic_get_state(pic, 0).irr, 0x20);
    outb(m, 0x20, 0x20);
    cr_assert(pic_has_intr(pic));
    pic_set_irq(pic, 5, false);
    cr_assert(!pic_has_intr(pic));
}

Test(pic, spurious_irq7_when_level_request_goes_away)
{
    outb(m, 0x4d0, 0x20);
    pic_set_irq(pic, 5, true);
    cr_assert(pic_has_intr(pic));
    pic_set_irq(pic, 5, false); /* gone before the INTA cycle */
    cr_assert_eq(pic_intr_ack(pic), 0x27);
    cr_assert_eq(pic_get_state(pic, 0).isr, 0); /* no ISR bit for a spurious IRQ7 */
}

Test(pic, spurious_irq15_on_the_slave)
{
    outb(m, 0x4d1, 0x04); /* IRQ10 level */
    pic_set_irq(pic, 10, true);
    pic_set_irq(pic, 10, false);
    /* the master latched the cascade edge; the slave has nothing to give */
    cr_assert(pic_has_intr(pic));
    cr_assert_eq(pic_intr_ack(pic), 0x2f);
    cr_assert_eq(pic_get_state(pic, 0).isr, 0x04);
    cr_assert_eq(pic_get_state(pic, 1).isr, 0x00);
}

Test(pic, auto_eoi_leaves_isr_clear)
{
    init_pair(0x03);
    pic_set_irq(pic, 1, true);
    cr_assert_eq(pic_intr_ack(pic), 0x21);
    cr_assert_eq(pic_get_state(pic, 0).isr, 0);
    pic_set_irq(pic, 3, true);
    cr_assert(pic_has_intr(pic)); /* nothing in service blocks it */
}

Test(pic, set_priority_rotates_order)
{
    outb(m, 0x20, 0xc2); /* IRQ2 lowest: IRQ3 highest */
    pic_set_irq(pic, 1, true);
    pic_set_irq(pic, 4, true);
    cr_assert_eq(pic_intr_ack(pic), 0x24);
    outb(m, 0x20, 0xc7); /* back to IRQ0 highest */
    outb(m, 0x20, 0x20);
    cr_assert_eq(pic_intr_ack(pic), 0x21);
}

Test(pic, poll_command)
{
    pic_set_irq(pic, 6, true);
    outb(m, 0x20, 0x0c); /* OCW3 poll */
    cr_assert_eq(inb(m, 0x20), 0x86);
    cr_assert_eq(pic_get_state(pic, 0).isr, 0x40);
    outb(m, 0x20, 0x0c);
    cr_assert_eq(inb(m, 0x20), 0x00); /* nothing left to poll */
}

Test(pic, icw1_resets_requests_and_masks)
{
    pic_set_irq(pic, 1, true);
    outb(m, 0x21, 0xff);
    init_pair(0x01);
    cr_assert_eq(pic_get_state(pic, 0).irr, 0);
    cr_assert_eq(pic_get_state(pic, 0).imr, 0);
    cr_assert(!pic_has_intr(pic));
}

Test(pic, int_output_drives_lint0_as_extint)
{
    char err[128];
    cr_assert_eq(cpuid_model_parse(&m->model, "max", err, sizeof(err)), 0);
    m->ncpus = 1;
    m->lapic[0] = lapic_create(m, NULL, 0, true);
    cr_assert(!lapic_extint_pending(m->lapic[0]));
    pic_set_irq(pic, 1, true);
    cr_assert(lapic_extint_pending(m->lapic[0]));
    cr_assert_eq(pic_intr_ack(pic), 0x21);
    cr_assert(!lapic_extint_pending(m->lapic[0]));
    lapic_destroy(m->lapic[0]);
}

/* Unit tests of the HPET: capabilities, main counter over virtual time, one-shot and
 * periodic comparators (with the value-set bit), 32-bit mode, level status bits,
 * routing capability, legacy replacement, and the ACPI table. */
#include <criterion/criterion.h>

#include "platform_fixture.h"

#define B HPET_MMIO_BASE
#define US 1000ull
#define T0_CFG (B + 0x100)
#define T0_CMP (B + 0x108)

static struct machine *m;
static struct pit *pit;
static struct rtc *rtc;
static struct hpet *hpet;

static void setup(void)
{
    m = fixture_machine();
    pit = pit_create(m);
    rtc = rtc_create(m, 0);
    hpet = hpet_create(m, pit, rtc);
}

static void teardown(void)
{
    hpet_destroy(hpet);
    rtc_destroy(rtc);
    pit_destroy(pit);
    free(m);
}

TestSuite(hpet, .init = setup, .fini = teardown);

Test(hpet, capabilities)
{
    cr_assert_eq(mmio_rd64(m, B), 0x009896808086a201ull);
    cr_assert_eq(mmio_rd32(m, B + 4), 10000000u, "10 ns period in fs");
    u64 t = mmio_rd64(m, T0_CFG);
    cr_assert_eq(t >> 32, HPET_ROUTE_CAP);
    cr_assert_eq(t & 0x30, 0x30, "periodic capable, 64-bit");
    cr_assert_eq(mmio_rd64(m, T0_CMP), ~0ull);
}

Test(hpet, counter_runs_only_when_enabled)
{
    advance(m, 5 * US);
    cr_assert_eq(mmio_rd64(m, B + 0xf0), 0);
    mmio_wr64(m, B + 0xf0, 1000);
    mmio_wr32(m, B + 0x10, 1);
    advance(m, 2 * US);
    cr_assert_eq(mmio_rd64(m, B + 0xf0), 1200);
    mmio_wr32(m, B + 0x10, 0);
    advance(m, 2 * US);
    cr_assert_eq(mmio_rd32(m, B + 0xf0), 1200u);
}

Test(hpet, one_shot_level_interrupt_status)
{
    mmio_wr64(m, T0_CFG, (20ull << 9) | 0x6); /* GSI 20, level, enabled */
    cr_assert_eq((mmio_rd64(m, T0_CFG) >> 9) & 0x1f, 20);
    mmio_wr64(m, T0_CMP, 1000);
    mmio_wr32(m, B + 0x10, 1);
    cr_assert_eq(clock_next_deadline(&m->clock), 10 * US);
    advance(m, 10 * US - 1);
    cr_assert_eq(mmio_rd32(m, B + 0x20), 0u);
    advance(m, 1);
    cr_assert_eq(mmio_rd32(m, B + 0x20), 1u);
    mmio_wr32(m, B + 0x20, 1); /* write 1 to clear */
    cr_assert_eq(mmio_rd32(m, B + 0x20), 0u);
    advance(m, 100 * US);
    cr_assert_eq(mmio_rd32(m, B + 0x20), 0u, "one-shot: no second match");
}

Test(hpet, edge_mode_sets_no_status)
{
    mmio_wr64(m, T0_CFG, (21ull << 9) | 0x4);
    mmio_wr64(m, T0_CMP, 10);
    mmio_wr32(m, B + 0x10, 1);
    advance(m, 1 * US);
    cr_assert_eq(mmio_rd32(m, B + 0x20), 0u);
}

Test(hpet, periodic_with_value_set_as_linux_programs_it)
{
    mmio_wr32(m, B + 0x10, 1);
    advance(m, 1 * US); /* counter 100 */
    mmio_wr32(m, T0_CFG, 0x4 | 0x8 | 0x40 | 0x100); /* enable, periodic, set value, 32-bit */
    mmio_wr32(m, T0_CMP, 100 + 500);  /* comparator (and period) */
    mmio_wr32(m, T0_CMP, 1000);       /* period */
    cr_assert_eq(mmio_rd64(m, T0_CMP), 600u);
    cr_assert_eq(mmio_rd64(m, T0_CFG) & 0x40, 0, "value set clears itself");
    advance(m, 5 * US); /* counter 600: first match */
    cr_assert_eq(mmio_rd32(m, T0_CMP), 1600u);
    advance(m, 10 * US);
    cr_assert_eq(mmio_rd32(m, T0_CMP), 2600u);
    advance(m, 35 * US); /* counter 5100: matches at 2600, 3600, 4600 */
    cr_assert_eq(mmio_rd32(m, T0_CMP), 5600u);
}

Test(hpet, periodic_late_timer_skips_missed_periods)
{
    mmio_wr64(m, T0_CFG, 0x4 | 0x8 | 0x40);
    mmio_wr64(m, T0_CMP, 100);
    mmio_wr64(m, T0_CMP, 100);
    mmio_wr32(m, B + 0x10, 1);
    /* run the timer only once, 1 ms late */
    clock_advance_to(&m->clock, 1000 * US + 5);
    clock_run_timers(&m->clock);
    cr_assert_eq(mmio_rd64(m, T0_CMP), 100100u);
}

Test(hpet, thirty_two_bit_mode_wraps)
{
    mmio_wr64(m, T0_CMP, 0x100000010ull);
    mmio_wr64(m, T0_CFG, (20ull << 9) | 0x2 | 0x100);
    cr_assert_eq(mmio_rd64(m, T0_CMP), 0x10u, "upper half cleared");
    mmio_wr64(m, B + 0xf0, 0xfffffff0ull);
    mmio_wr32(m, B + 0x10, 1);
    /* the low 32 bits match 0x10 after 0x20 ticks */
    cr_assert_eq(clock_next_deadline(&m->clock), 0x20 * 10);
    advance(m, 0x20 * 10);
    cr_assert_eq(mmio_rd32(m, B + 0x20), 1u);
}

Test(hpet, past_comparator_waits_for_the_wrap)
{
    mmio_wr64(m, B + 0xf0, 5000);
    mmio_wr64(m, T0_CFG, 0x2);
    mmio_wr64(m, T0_CMP, 10);
    mmio_wr32(m, B + 0x10, 1);
    cr_assert_eq(clock_next_deadline(&m->clock), CLOCK_NEVER, "64-bit: centuries away");
    mmio_wr64(m, T0_CFG, 0x2 | 0x100);
    cr_assert_eq(clock_next_deadline(&m->clock), (0x100000000ull - 5000 + 10) * 10);
}

Test(hpet, unsupported_route_is_not_taken)
{
    mmio_wr64(m, T0_CFG, 22ull << 9);
    mmio_wr64(m, T0_CFG, 5ull << 9);
    cr_assert_eq((mmio_rd64(m, T0_CFG) >> 9) & 0x1f, 22);
}

Test(hpet, legacy_replacement_disconnects_pit)
{
    outb(m, 0x43, 0x34);
    outb(m, 0x40, 0x00);
    outb(m, 0x40, 0x10);
    cr_assert_neq(clock_next_deadline(&m->clock), CLOCK_NEVER, "PIT drives IRQ0");
    mmio_wr32(m, B + 0x10, 0x2);
    cr_assert_eq(mmio_rd32(m, B + 0x10), 2u);
    cr_assert_eq(clock_next_deadline(&m->clock), CLOCK_NEVER, "PIT disconnected");
    mmio_wr32(m, B + 0x10, 0x0);
    cr_assert_neq(clock_next_deadline(&m->clock), CLOCK_NEVER);
}

Test(hpet, acpi_table)
{
    u8 buf[64];
    size_t len = 10;
    hpet_acpi_table(buf, &len);
    cr_assert_eq(len, 56, "too small: the length is reported");
    len = sizeof(buf);
    hpet_acpi_table(buf, &len);
    cr_assert_eq(len, 56);
    cr_assert_eq(memcmp(buf, "HPET", 4), 0);
    u8 sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += buf[i];
    cr_assert_eq(sum, 0, "checksum");
    u32 id = buf[36] | buf[37] << 8 | buf[38] << 16 | (u32)buf[39] << 24;
    cr_assert_eq(id, 0x8086a201u);
    u64 base = 0;
    for (int i = 7; i >= 0; i--)
        base = base << 8 | buf[44 + i];
    cr_assert_eq(base, HPET_MMIO_BASE);
}

/* Unit tests of the 8254 PIT and port 0x61: the six modes over virtual time, BCD,
 * latch and read-back commands, byte access modes, gate 2 and OUT2 through port 0x61,
 * and the timer that makes IRQ0 follow OUT0. */
#include <criterion/criterion.h>

#include "dev/timeconv.h"
#include "platform_fixture.h"

#define HZ 1193182ull

static struct machine *m;
static struct pit *pit;

static void setup(void)
{
    m = fixture_machine();
    pit = pit_create(m);
}

static void teardown(void)
{
    pit_destroy(pit);
    free(m);
}

TestSuite(pit, .init = setup, .fini = teardown);

/* Moves virtual time to the start of PIT tick k. */
static void at_tick(u64 k) { run_until(m, ticks_to_ns(k, HZ)); }

static void program(int counter, u8 mode_bits, u16 count)
{
    outb(m, 0x43, (u8)(counter << 6 | 0x30 | mode_bits));
    outb(m, (u16)(0x40 + counter), (u8)count);
    outb(m, (u16)(0x40 + counter), (u8)(count >> 8));
}

static u16 latch_read(int counter)
{
    outb(m, 0x43, (u8)(counter << 6));
    u16 lo = inb(m, (u16)(0x40 + counter));
    return (u16)(lo | inb(m, (u16)(0x40 + counter)) << 8);
}

Test(pit, mode0_on_counter2_as_linux_calibrates)
{
    outb(m, 0x61, (inb(m, 0x61) & ~0x02) | 0x01); /* gate 2 on, speaker off */
    program(2, 0 << 1, 11931);                    /* 10 ms */
    cr_assert_eq(inb(m, 0x61) & 0x20, 0, "OUT2 low while counting");
    /* written at tick 0, loaded at tick 1: terminal count at tick 1 + N */
    run_until(m, ticks_to_ns(11932, HZ) - 1);
    cr_assert_eq(inb(m, 0x61) & 0x20, 0);
    at_tick(11932);
    cr_assert_eq(inb(m, 0x61) & 0x20, 0x20, "OUT2 high at terminal count");
    advance(m, 50 * 1000 * 1000);
    cr_assert_eq(inb(m, 0x61) & 0x20, 0x20, "and stays high");
}

Test(pit, mode0_count_and_wraparound)
{
    program(0, 0, 100);
    at_tick(1 + 40);
    cr_assert_eq(latch_read(0), 60);
    at_tick(1 + 100 + 5); /* after terminal count the counter wraps to 0xffff... */
    cr_assert_eq(latch_read(0), 0x10000 - 5);
    cr_assert(pit_out(pit, 0));
}

Test(pit, mode0_first_byte_stops_counting)
{
    program(0, 0, 1000);
    at_tick(11);
    outb(m, 0x40, 0x10); /* LSB of a new count: counting stops, OUT low */
    at_tick(500);
    cr_assert_eq(latch_read(0), 990);
    outb(m, 0x40, 0x00); /* MSB: new count 0x0010 loads on the next tick */
    at_tick(500 + 1 + 16);
    cr_assert(pit_out(pit, 0));
}

Test(pit, mode2_rate_generator_periodic_irq0_edges)
{
    const u64 n = 1193; /* 1 ms */
    program(0, 2 << 1, (u16)n);
    /* count rising edges of OUT0 as the timers see them over 100 ms */
    const u64 end = 100 * 1000 * 1000;
    int rises = 0, timers = 0;
    bool out = pit_out(pit, 0);
    for (;;) {
        u64 d = clock_next_deadline(&m->clock);
        if (d > end)
            break;
        clock_advance_to(&m->clock, d);
        clock_run_timers(&m->clock);
        timers++;
        bool now = pit_out(pit, 0);
        rises += now && !out;
        out = now;
    }
    u64 last_tick = ns_to_ticks(end, HZ);
    cr_assert_eq(rises, (int)((last_tick - 1) / n), "one IRQ0 edge per period");
    cr_assert_eq(timers, 2 * rises + (out ? 0 : 1), "a timer per change of OUT0");
    /* the count runs N..1 */
    at_tick(ns_to_ticks(end, HZ) / n * n + 1 + n + 3);
    cr_assert_eq(latch_read(0), n - 3);
}

Test(pit, mode2_low_for_one_tick)
{
    program(0, 2 << 1, 10);
    at_tick(1 + 8);
    cr_assert(pit_out(pit, 0));
    at_tick(1 + 9); /* count 1 */
    cr_assert(!pit_out(pit, 0));
    at_tick(1 + 10); /* reloaded */
    cr_assert(pit_out(pit, 0));
}

Test(pit, mode3_square_wave_even_and_odd)
{
    program(0, 3 << 1, 4);
    bool want4[] = { 1, 1, 0, 0, 1, 1, 0, 0 };
    for (int i = 0; i < 8; i++) {
        at_tick(1 + (u64)i);
        cr_assert_eq(pit_out(pit, 0), want4[i], "N=4 tick %d", i);
    }
    program(2, 3 << 1, 5);
    outb(m, 0x61, 0x01);
    u64 t0 = ns_to_ticks(clock_now(&m->clock), HZ) + 1;
    bool want5[] = { 1, 1, 1, 0, 0, 1, 1, 1, 0, 0 };
    for (int i = 0; i < 10; i++) {
        at_tick(t0 + (u64)i);
        cr_assert_eq(pit_out(pit, 2), want5[i], "N=5 tick %d", i);
    }
}

Test(pit, mode4_strobe_once)
{
    program(0, 4 << 1, 20);
    at_tick(1 + 19);
    cr_assert(pit_out(pit, 0));
    at_tick(1 + 20);
    cr_assert(!pit_out(pit, 0));
    at_tick(1 + 21);
    cr_assert(pit_out(pit, 0));
    at_tick(1 + 20 + 0x10000);
    cr_assert(pit_out(pit, 0), "no second strobe");
}

Test(pit, mode1_and_mode5_are_gate_triggered)
{
    outb(m, 0x61, 0x00);
    program(2, 1 << 1, 30);
    at_tick(100);
    cr_assert(pit_out(pit, 2), "mode 1 waits for a trigger with OUT high");
    outb(m, 0x61, 0x01); /* rising gate at tick 100 */
    at_tick(101);
    cr_assert(!pit_out(pit, 2));
    at_tick(101 + 29);
    cr_assert(!pit_out(pit, 2));
    at_tick(101 + 30);
    cr_assert(pit_out(pit, 2));
    outb(m, 0x61, 0x00);
    program(2, 5 << 1, 7);
    at_tick(300);
    outb(m, 0x61, 0x01);
    at_tick(301 + 6);
    cr_assert(pit_out(pit, 2));
    at_tick(301 + 7);
    cr_assert(!pit_out(pit, 2), "mode 5 strobe");
    at_tick(301 + 8);
    cr_assert(pit_out(pit, 2));
}

Test(pit, mode0_gate_low_pauses)
{
    outb(m, 0x61, 0x01);
    program(2, 0, 100);
    at_tick(1 + 30);
    outb(m, 0x61, 0x00);
    at_tick(1000);
    cr_assert_eq(latch_read(2), 70);
    outb(m, 0x61, 0x01);
    at_tick(1000 + 69);
    cr_assert(!pit_out(pit, 2));
    at_tick(1000 + 70);
    cr_assert(pit_out(pit, 2));
}

Test(pit, bcd_counting)
{
    outb(m, 0x61, 0x01);
    program(2, 0x01, 0x1000); /* mode 0, BCD 1000 */
    at_tick(1 + 10);
    cr_assert_eq(latch_read(2), 0x0990);
    program(2, 0x01, 0x0000); /* BCD 0 means 10000 */
    u64 t0 = ns_to_ticks(clock_now(&m->clock), HZ) + 1;
    at_tick(t0 + 1);
    cr_assert_eq(latch_read(2), 0x9999);
}

Test(pit, latch_holds_until_read)
{
    program(0, 2 << 1, 1000);
    at_tick(1 + 100);
    outb(m, 0x43, 0x00);
    at_tick(1 + 300);
    outb(m, 0x43, 0x00); /* a second latch before reading is ignored */
    cr_assert_eq(inb(m, 0x40), (u8)900);
    at_tick(1 + 400);
    cr_assert_eq(inb(m, 0x40), 900 >> 8);
    cr_assert_eq(latch_read(0), 600);
}

Test(pit, byte_access_modes)
{
    outb(m, 0x43, 0x10 | 0x00); /* counter 0, LSB only, mode 0 */
    outb(m, 0x40, 0x50);
    at_tick(1 + 0x10);
    cr_assert_eq(inb(m, 0x40), 0x40);
    outb(m, 0x43, 0x20 | 0x00); /* MSB only */
    outb(m, 0x40, 0x02);        /* count 0x0200 */
    u64 t0 = ns_to_ticks(clock_now(&m->clock), HZ) + 1;
    at_tick(t0 + 0x100);
    cr_assert_eq(inb(m, 0x40), 0x01);
}

Test(pit, read_back_status_and_count)
{
    outb(m, 0x43, 0x34);               /* counter 0, word, mode 2, binary */
    outb(m, 0x43, 0xe2);               /* read-back: status of counter 0 */
    cr_assert_eq(inb(m, 0x40), 0xf4, "OUT high, null count, RW 3, mode 2");
    outb(m, 0x40, 0x00);
    outb(m, 0x40, 0x10);               /* count 0x1000 */
    at_tick(1 + 0x10);
    outb(m, 0x43, 0xc2);               /* read-back: status and count */
    cr_assert_eq(inb(m, 0x40), 0xb4, "count loaded: null count clear");
    cr_assert_eq(inb(m, 0x40), 0xf0);
    cr_assert_eq(inb(m, 0x40), 0x0f);
}

Test(pit, count_written_while_periodic_applies_next_cycle)
{
    program(0, 2 << 1, 100);
    at_tick(1 + 50);
    outb(m, 0x40, 20);
    outb(m, 0x40, 0);
    at_tick(1 + 99);
    cr_assert_eq(latch_read(0), 1, "the old cycle completes");
    at_tick(1 + 100 + 5);
    cr_assert_eq(latch_read(0), 15, "then the new count");
}

Test(pit, port_61_bits)
{
    outb(m, 0x61, 0xff);
    cr_assert_eq(inb(m, 0x61) & 0xcf, 0x0f, "bits 0-3 read back, 6-7 clear");
    u8 a = inb(m, 0x61) & 0x10;
    at_tick(ns_to_ticks(clock_now(&m->clock), HZ) + 18);
    cr_assert_neq(inb(m, 0x61) & 0x10, a, "refresh toggles every 18 ticks");
}

Test(pit, disconnected_irq_needs_no_timer)
{
    program(0, 2 << 1, 100);
    cr_assert_neq(clock_next_deadline(&m->clock), CLOCK_NEVER);
    pit_connect_irq(pit, false);
    cr_assert_eq(clock_next_deadline(&m->clock), CLOCK_NEVER);
    pit_connect_irq(pit, true);
    cr_assert_neq(clock_next_deadline(&m->clock), CLOCK_NEVER);
}

/* Unit tests of the CMOS RTC: time from the start date advancing with virtual time,
 * BCD/binary and 12/24-hour formats, setting the time, UIP, periodic/alarm/update flags
 * in register C, the NMI mask bit, NVRAM and the memory-size bytes. */
#include <criterion/criterion.h>

#include "platform_fixture.h"

#define SEC 1000000000ull
/* 2024-02-29 23:59:58 UTC, a Thursday */
#define START ((time_t)1709251198)

static struct machine *m;
static struct rtc *rtc;

static void setup(void)
{
    m = fixture_machine();
    rtc = rtc_create(m, START);
}

static void teardown(void)
{
    rtc_destroy(rtc);
    free(m);
}

TestSuite(rtc, .init = setup, .fini = teardown);

static u8 cmos(u8 i)
{
    outb(m, 0x70, i);
    return inb(m, 0x71);
}

static void cmos_set(u8 i, u8 v)
{
    outb(m, 0x70, i);
    outb(m, 0x71, v);
}

Test(rtc, time_from_start_date_in_bcd)
{
    cr_assert_eq(cmos(0x00), 0x58);
    cr_assert_eq(cmos(0x02), 0x59);
    cr_assert_eq(cmos(0x04), 0x23);
    cr_assert_eq(cmos(0x06), 0x05, "Thursday");
    cr_assert_eq(cmos(0x07), 0x29);
    cr_assert_eq(cmos(0x08), 0x02);
    cr_assert_eq(cmos(0x09), 0x24);
    cr_assert_eq(cmos(0x32), 0x20);
    cr_assert_eq(cmos(0x0a), 0x26);
    cr_assert_eq(cmos(0x0b), 0x02);
    cr_assert_eq(cmos(0x0d), 0x80);
}

Test(rtc, advances_with_virtual_time_across_month_end)
{
    advance(m, 2 * SEC - 1);
    cr_assert_eq(cmos(0x00), 0x59);
    advance(m, 1);
    cr_assert_eq(cmos(0x00), 0x00);
    cr_assert_eq(cmos(0x04), 0x00);
    cr_assert_eq(cmos(0x07), 0x01);
    cr_assert_eq(cmos(0x08), 0x03);
    cr_assert_eq(cmos(0x06), 0x06, "Friday");
}

Test(rtc, binary_and_12_hour_formats)
{
    cmos_set(0x0b, 0x06); /* binary, 24h */
    cr_assert_eq(cmos(0x00), 58);
    cr_assert_eq(cmos(0x04), 23);
    cmos_set(0x0b, 0x04); /* binary, 12h */
    cr_assert_eq(cmos(0x04), 0x80 | 11, "11 PM");
    advance(m, 2 * SEC);
    cr_assert_eq(cmos(0x04), 12, "midnight is 12 AM");
    cmos_set(0x0b, 0x00); /* BCD, 12h */
    cr_assert_eq(cmos(0x04), 0x12);
}

Test(rtc, set_time_with_set_bit)
{
    cmos_set(0x0b, 0x82); /* SET */
    cmos_set(0x00, 0x30);
    cmos_set(0x02, 0x15);
    cmos_set(0x04, 0x10);
    cmos_set(0x06, 0x06); /* the guest keeps the day of the week: Friday */
    cmos_set(0x07, 0x31);
    cmos_set(0x08, 0x12);
    cmos_set(0x09, 0x99);
    cmos_set(0x32, 0x19);
    advance(m, 5 * SEC);
    cr_assert_eq(cmos(0x00), 0x30, "stopped while SET");
    cmos_set(0x0b, 0x02);
    advance(m, 30 * SEC);
    cr_assert_eq(cmos(0x00), 0x00);
    cr_assert_eq(cmos(0x02), 0x16);
    advance(m, (60 * 60 * 14 - 60 + 30) * SEC); /* to 2000-01-01 00:00:30 */
    cr_assert_eq(cmos(0x09), 0x00);
    cr_assert_eq(cmos(0x32), 0x20);
    cr_assert_eq(cmos(0x08), 0x01);
    cr_assert_eq(cmos(0x07), 0x01);
    cr_assert_eq(cmos(0x06), 0x07, "2000-01-01 was a Saturday");
}

Test(rtc, write_while_running_keeps_phase)
{
    advance(m, SEC / 2);
    cmos_set(0x02, 0x10); /* minutes */
    cr_assert_eq(cmos(0x02), 0x10);
    advance(m, SEC / 2); /* the next update comes on the old phase */
    cr_assert_eq(cmos(0x00), 0x59);
}

Test(rtc, uip_before_each_update)
{
    advance(m, SEC - 300 * 1000);
    cr_assert_eq(cmos(0x0a) & 0x80, 0);
    advance(m, 100 * 1000); /* 200 us before the update */
    cr_assert_eq(cmos(0x0a) & 0x80, 0x80);
    advance(m, 200 * 1000);
    cr_assert_eq(cmos(0x0a) & 0x80, 0);
}

Test(rtc, periodic_flag_and_interrupt)
{
    cr_assert_eq(cmos(0x0c), 0);
    cmos_set(0x0b, 0x42); /* PIE */
    u64 d = clock_next_deadline(&m->clock);
    cr_assert_eq(d, 976563, "1024 Hz: next periodic tick");
    advance(m, 976562);
    cr_assert_eq(cmos(0x0c), 0);
    advance(m, 1);
    cr_assert_eq(cmos(0x0c), 0xc0, "IRQF and PF");
    cr_assert_eq(cmos(0x0c), 0x00, "reading C cleared it");
    cmos_set(0x0a, 0x2f); /* 2 Hz */
    advance(m, SEC / 2);
    cr_assert_eq(cmos(0x0c) & 0x40, 0x40);
}

Test(rtc, update_ended_flag_without_interrupt)
{
    advance(m, SEC);
    cr_assert_eq(cmos(0x0c) & 0xb0, 0x10, "UF without UIE: no IRQF");
    cmos_set(0x0b, 0x12); /* UIE */
    advance(m, SEC);
    cr_assert_eq(cmos(0x0c) & 0x90, 0x90);
    cmos_set(0x0b, 0x92); /* SET clears UIE */
    cr_assert_eq(cmos(0x0b), 0x82);
}

Test(rtc, alarm)
{
    cmos_set(0x01, 0x05);
    cmos_set(0x03, 0x00);
    cmos_set(0x05, 0x00); /* 00:00:05 */
    cmos_set(0x0b, 0x22); /* AIE */
    advance(m, 6 * SEC);
    cr_assert_eq(cmos(0x0c) & 0xa0, 0, "23:59:58 + 6 s = 00:00:04");
    advance(m, SEC);
    cr_assert_eq(cmos(0x0c) & 0xa0, 0xa0);
    cmos_set(0x01, 0xc0); /* seconds don't care: every second */
    cmos_set(0x03, 0xc0);
    cmos_set(0x05, 0xc0);
    advance(m, SEC);
    cr_assert_eq(cmos(0x0c) & 0xa0, 0xa0);
}

Test(rtc, alarm_timer_is_armed_for_the_match)
{
    cmos_set(0x01, 0x10);
    cmos_set(0x03, 0x00);
    cmos_set(0x05, 0x00); /* 00:00:10, 12 s after the start */
    cmos_set(0x0b, 0x22);
    cr_assert_eq(clock_next_deadline(&m->clock), 12 * SEC);
}

Test(rtc, nmi_mask_bit_and_nvram)
{
    outb(m, 0x70, 0x80 | 0x40);
    cr_assert(rtc_nmi_masked(rtc));
    outb(m, 0x71, 0x5a);
    outb(m, 0x70, 0x40);
    cr_assert(!rtc_nmi_masked(rtc));
    cr_assert_eq(inb(m, 0x71), 0x5a);
    cmos_set(0x0c, 0xff);
    cmos_set(0x0d, 0x00);
    cr_assert_eq(cmos(0x0d), 0x80, "D is read-only");
}

Test(rtc, memory_size_bytes)
{
    /* 512 MiB */
    cr_assert_eq(cmos(0x15) | cmos(0x16) << 8, 640);
    cr_assert_eq(cmos(0x30) | cmos(0x31) << 8, 0xffff);
    cr_assert_eq(cmos(0x34) | cmos(0x35) << 8, (512 - 16) * 16);
    cr_assert_eq(cmos(0x5b) | cmos(0x5c) << 8 | cmos(0x5d) << 16, 0);
    struct machine *big = fixture_machine();
    big->mem.ram_size = 6 * GiB;
    struct rtc *r2 = rtc_create(big, START);
    outb(big, 0x70, 0x34);
    u32 lo = inb(big, 0x71);
    outb(big, 0x70, 0x35);
    cr_assert_eq(lo | (u32)inb(big, 0x71) << 8, (3 * 1024 - 16) * 16);
    u32 high = 0;
    for (int i = 0; i < 3; i++) {
        outb(big, 0x70, (u8)(0x5b + i));
        high |= (u32)inb(big, 0x71) << (8 * i);
    }
    cr_assert_eq(high, 3 * 1024 * 16, "RAM above 4G in 64K units");
    rtc_destroy(r2);
    free(big);
}

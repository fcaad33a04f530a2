/* Unit tests of ACPI S3 in the PM device and the machine: SLP_TYP decoding, the
 * suspend and wake requests, what the PM1 registers keep and set across the sleep, and
 * the fixed-event wake rules (the RTC alarm needs RTC_EN and the RTC's AIE; the power
 * button always wakes; a wake event already standing ends the sleep at once). */
#include <criterion/criterion.h>

#include "dev/dev.h"
#include "platform_fixture.h"

#define SEC 1000000000ull
/* 2026-01-01 00:00:00 UTC */
#define START ((time_t)1767225600)

#define PM1_STS 0x600
#define PM1_EN 0x602
#define PM1_CNT 0x604
#define STS_TMR (1u << 0)
#define STS_PWRBTN (1u << 8)
#define STS_RTC (1u << 10)
#define STS_WAK (1u << 15)
#define CNT_SLP_EN (1u << 13)

static struct machine *m;

static void setup(void)
{
    m = fixture_machine();
    m->rtc = rtc_create(m, START);
    m->acpi_pm = acpi_pm_create(m);
}

static void teardown(void)
{
    acpi_pm_destroy(m->acpi_pm);
    rtc_destroy(m->rtc);
    free(m);
}

TestSuite(acpi_pm, .init = setup, .fini = teardown);

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

/* The RTC alarm at 00:00:02 (BCD), the clock showing 00:00:00 */
static void alarm_in_2s(bool aie)
{
    cmos_set(0x01, 0x02);
    cmos_set(0x03, 0x00);
    cmos_set(0x05, 0x00);
    cmos_set(0x0b, (u8)(cmos(0x0b) | (aie ? 0x20 : 0)));
    (void)cmos(0x0c);
}

static void sleep_s3(void)
{
    outw(m, PM1_CNT, (ACPI_S3_SLP_TYP << 10) | CNT_SLP_EN);
    cr_assert(m->sleep_requested, "SLP_EN with SLP_TYP = S3 asks the machine to sleep");
    machine_power_transitions(m);
}

Test(acpi_pm, s3_sleep_type_suspends)
{
    outw(m, PM1_CNT, ACPI_S3_SLP_TYP << 10);
    cr_assert(!m->sleep_requested, "SLP_TYP alone does not sleep");
    cr_assert_eq(inw(m, PM1_CNT) & (7u << 10), ACPI_S3_SLP_TYP << 10);
    outw(m, PM1_CNT, (2u << 10) | CNT_SLP_EN);
    cr_assert(!m->sleep_requested && !m->stop, "a sleep type not in the DSDT does nothing");
    sleep_s3();
    cr_assert(m->suspended && !m->sleep_requested && !m->stop);
    cr_assert_eq(inw(m, PM1_CNT) & CNT_SLP_EN, 0u, "SLP_EN reads 0");
}

Test(acpi_pm, sleep_keeps_resume_well_enables)
{
    outw(m, PM1_EN, STS_TMR | STS_RTC | STS_PWRBTN);
    sleep_s3();
    cr_assert_eq(inw(m, PM1_EN), STS_RTC | STS_PWRBTN, "TMR_EN (core well) is cleared");
}

Test(acpi_pm, rtc_alarm_wakes_with_rtc_en_and_aie)
{
    alarm_in_2s(true);
    outw(m, PM1_EN, STS_RTC);
    outw(m, PM1_STS, 0xffff);
    sleep_s3();
    advance(m, SEC + SEC / 2);
    cr_assert(!m->wake_requested, "not before the alarm");
    advance(m, SEC);
    cr_assert(m->wake_requested, "the alarm at 00:00:02 wakes the machine");
    machine_power_transitions(m);
    cr_assert(!m->suspended);
    u16 sts = inw(m, PM1_STS);
    cr_assert_eq(sts & (STS_WAK | STS_RTC), STS_WAK | STS_RTC, "WAK_STS and RTC_STS (%#x)", sts);
    cr_assert(cmos(0x0c) & 0x20, "the RTC kept its alarm flag");
}

Test(acpi_pm, rtc_alarm_without_rtc_en_does_not_wake)
{
    alarm_in_2s(true);
    outw(m, PM1_STS, 0xffff);
    sleep_s3();
    advance(m, 3 * SEC);
    cr_assert(m->suspended && !m->wake_requested, "RTC_EN clear: no wake");
    cr_assert(inw(m, PM1_STS) & STS_RTC, "the alarm still sets RTC_STS");
    cr_assert_eq(inw(m, PM1_STS) & STS_WAK, 0u);
}

Test(acpi_pm, rtc_alarm_without_aie_does_not_wake)
{
    alarm_in_2s(false);
    outw(m, PM1_EN, STS_RTC);
    outw(m, PM1_STS, 0xffff);
    sleep_s3();
    advance(m, 3 * SEC);
    cr_assert(m->suspended && !m->wake_requested, "AIE clear: the alarm raises no interrupt");
    cr_assert_eq(inw(m, PM1_STS) & STS_RTC, 0u);
}

Test(acpi_pm, power_button_always_wakes)
{
    outw(m, PM1_STS, 0xffff);
    sleep_s3();
    acpi_pm_power_button(m->acpi_pm);
    cr_assert(m->wake_requested, "PWRBTN_EN clear: the power button wakes anyway");
    machine_power_transitions(m);
    cr_assert(!m->suspended);
    cr_assert_eq(inw(m, PM1_STS) & (STS_WAK | STS_PWRBTN), STS_WAK | STS_PWRBTN);
}

Test(acpi_pm, standing_wake_event_ends_the_sleep_at_once)
{
    acpi_pm_power_button(m->acpi_pm);
    cr_assert(!m->wake_requested, "a running machine has nothing to wake");
    sleep_s3();
    cr_assert(!m->suspended, "PWRBTN_STS still set: woken at once");
    cr_assert(inw(m, PM1_STS) & STS_WAK);
}

Test(acpi_pm, machine_wake_is_a_no_op_while_running)
{
    machine_wake(m);
    cr_assert(!m->wake_requested);
    cr_assert_eq(inw(m, PM1_STS) & STS_WAK, 0u);
}

Test(acpi_pm, rtc_alarm_sets_rtc_sts_while_running)
{
    alarm_in_2s(true);
    outw(m, PM1_EN, STS_RTC);
    advance(m, 3 * SEC);
    cr_assert(inw(m, PM1_STS) & STS_RTC, "RTC_STS, an SCI source with RTC_EN");
    cr_assert(!m->wake_requested && !m->suspended);
}

/* What loses power in S3 comes back in its power-on state: the PIC, I/O APIC, PIT, HPET,
 * UART and i8042 of a full platform; the RTC's time and NVRAM stay. */
Test(acpi_pm, devices_without_power_come_back_reset)
{
    m->pic = pic_create(m);
    m->ioapic = ioapic_create(m);
    m->pit = pit_create(m);
    m->hpet = hpet_create(m, m->pit, m->rtc);
    m->uart = uart_create(m, 0x3f8, 4, -1, -1);
    m->kbc = kbc_create(m);

    /* PIC: remapped, IRQ0 unmasked; I/O APIC pin 2 unmasked; PIT counter 0 running;
     * HPET enabled with legacy replacement; UART at 115200 8N1 with interrupts; the
     * i8042 command byte changed; an NVRAM byte written */
    static const u8 icw[][2] = { {0x20, 0x11}, {0x21, 0x20}, {0x21, 0x04}, {0x21, 0x01}, {0x21, 0xfe} };
    for (unsigned i = 0; i < sizeof(icw) / sizeof(icw[0]); i++)
        outb(m, icw[i][0], icw[i][1]);
    mmio_wr32(m, IOAPIC_MMIO_BASE, 0x10 + 2 * 2);
    mmio_wr32(m, IOAPIC_MMIO_BASE + 0x10, 0x30);
    outb(m, 0x43, 0x34);
    outb(m, 0x40, 0x00);
    outb(m, 0x40, 0x10);
    mmio_wr64(m, HPET_MMIO_BASE + 0x10, 3);
    outb(m, 0x3fb, 0x83);
    outb(m, 0x3f8, 1);
    outb(m, 0x3f9, 0);
    outb(m, 0x3fb, 0x03);
    outb(m, 0x3f9, 0x0f);
    outb(m, 0x64, 0x60);
    outb(m, 0x60, 0x00);
    cmos_set(0x40, 0x5a);
    advance(m, SEC / 10);

    sleep_s3();

    cr_assert_eq(inb(m, 0x21), 0xff, "PIC: every line masked again");
    cr_assert_eq(ioapic_redirection(m->ioapic, 2) & (1u << 16), 1u << 16, "I/O APIC: pin 2 masked");
    cr_assert_eq(mmio_rd64(m, HPET_MMIO_BASE + 0x10), 0u, "HPET: halted, no legacy replacement");
    cr_assert_eq(mmio_rd64(m, HPET_MMIO_BASE + 0xf0), 0u, "HPET: main counter 0");
    cr_assert_eq(inb(m, 0x3f9), 0, "UART: IER 0");
    cr_assert_eq(inb(m, 0x3fb), 0, "UART: LCR 0");
    outb(m, 0x3fb, 0x80);
    cr_assert_eq(inb(m, 0x3f8) | inb(m, 0x3f9) << 8, 12, "UART: divisor as a BIOS leaves it");
    outb(m, 0x3fb, 0x00);
    outb(m, 0x64, 0x20);
    cr_assert_eq(inb(m, 0x60), 0x65, "i8042: command byte as a BIOS leaves it");
    outb(m, 0x43, 0xe2); /* read-back: status of counter 0 */
    cr_assert_eq(inb(m, 0x40) & 0x40, 0x40, "PIT: counter 0 has no count (null count)");
    cr_assert_eq(cmos(0x40), 0x5a, "CMOS NVRAM kept");

    kbc_destroy(m->kbc);
    uart_destroy(m->uart);
    hpet_destroy(m->hpet);
    pit_destroy(m->pit);
    ioapic_destroy(m->ioapic);
    pic_destroy(m->pic);
}

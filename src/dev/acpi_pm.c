/* ACPI fixed hardware of the PC (ACPI 6.x chapter 4.8): the PM1a event and control
 * registers, the 32-bit PM timer (3.579545 MHz), the GPE0 block, the SCI on IRQ 9 and
 * the reset register at 0xcf9 (the ICH's reset control register).
 *
 * nestor has no firmware and no SMI handler: the hardware is always in ACPI mode
 * (SCI_EN reads 1; the FADT's SMI_CMD is 0). Sleeping into S5 (SLP_EN with SLP_TYP =
 * ACPI_S5_SLP_TYP) powers the machine off, and a reset stops it too, both with status 0,
 * as QEMU does with -no-reboot. SLP_TYP = ACPI_S3_SLP_TYP suspends to RAM
 * (machine_suspend); other sleep types do nothing: the DSDT offers only \_S3 and \_S5.
 *
 * Wake from S3 (ACPI 6.x 4.8.3.1, the PM1 status and enable bits): the power button
 * wakes whatever PWRBTN_EN says; the RTC alarm (RTC_STS, set when the RTC raises its
 * alarm interrupt, which needs the RTC's AIE) wakes only with RTC_EN. On wake WAK_STS is
 * set. These registers live in the resume well and keep their state across S3; TMR_EN
 * and GBL_EN (core well: the PM timer's and the global lock's SCI sources) come back 0.
 *
 * The PM timer is computed from virtual time. TMR_STS (bit 31 of the counter changed)
 * is brought up to date when observed; a virtual timer is armed only for the SCI, while
 * TMR_EN is set and TMR_STS clear. */
#include "dev/platform.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "dev/timeconv.h"
#include "machine/machine.h"

enum {
    STS_TMR = 1 << 0, STS_BM = 1 << 4, STS_GBL = 1 << 5, STS_PWRBTN = 1 << 8,
    STS_SLPBTN = 1 << 9, STS_RTC = 1 << 10, STS_PCIEXP_WAKE = 1 << 14, STS_WAK = 1 << 15,
};
/* status bits that wake the machine from S3 when set, and their enable bits (the power
 * button's PWRBTN_EN only gates its SCI, not the wake) */
#define WAKE_ALWAYS STS_PWRBTN
#define WAKE_ENABLED STS_RTC
/* enable bits of the core well, cleared when the machine sleeps */
#define EN_CORE_WELL (STS_TMR | STS_GBL)
#define EN_WRITABLE (STS_TMR | STS_GBL | STS_PWRBTN | STS_SLPBTN | STS_RTC | STS_PCIEXP_WAKE)
/* the status bits that raise an SCI when enabled */
#define SCI_EVENTS (STS_TMR | STS_GBL | STS_PWRBTN | STS_SLPBTN | STS_RTC)

#define CNT_SCI_EN (1u << 0)
#define CNT_BM_RLD (1u << 1)
#define CNT_SLP_TYP_SHIFT 10
#define CNT_SLP_TYP (7u << CNT_SLP_TYP_SHIFT)
#define CNT_SLP_EN (1u << 13)
#define CNT_WRITABLE (CNT_BM_RLD | CNT_SLP_TYP)

#define RESET_SYS_RST 0x02
#define RESET_RST_CPU 0x04
#define RESET_FULL_RST 0x08

#define TMR_MSB_SHIFT 31 /* TMR_VAL_EXT: a 32-bit counter */

/* offsets in the 0x600 range */
enum { OFF_STS = 0, OFF_EN = 2, OFF_CNT = 4, OFF_TMR = 8, PM_RANGE_LEN = 12 };

struct acpi_pm {
    struct machine *m;
    u16 sts, en, cnt;
    u16 gpe_sts, gpe_en;
    u8 reset;
    u64 tmr_eval_tick;
    bool sci;
    int timer;
};

static u64 ticks_now(const struct acpi_pm *pm)
{
    return ns_to_ticks(clock_now(&pm->m->clock), ACPI_PM_TIMER_HZ);
}

u32 acpi_pm_timer(struct acpi_pm *pm) { return (u32)ticks_now(pm); }

/* Sets TMR_STS if bit 31 of the counter changed since last looked at; drives the SCI
 * and arms the timer for the next change while it could raise one. */
static void update(struct acpi_pm *pm)
{
    u64 t = ticks_now(pm);
    if (t >> TMR_MSB_SHIFT != pm->tmr_eval_tick >> TMR_MSB_SHIFT)
        pm->sts |= STS_TMR;
    pm->tmr_eval_tick = t;
    bool sci = (pm->cnt & CNT_SCI_EN) &&
               ((pm->sts & pm->en & SCI_EVENTS) || (pm->gpe_sts & pm->gpe_en));
    if (sci != pm->sci) {
        pm->sci = sci;
        machine_set_irq(pm->m, ACPI_SCI_IRQ, sci);
    }
    if ((pm->en & STS_TMR) && !(pm->sts & STS_TMR)) {
        u64 next = ((t >> TMR_MSB_SHIFT) + 1) << TMR_MSB_SHIFT;
        clock_timer_arm(&pm->m->clock, pm->timer, ticks_to_ns(next, ACPI_PM_TIMER_HZ));
    } else {
        clock_timer_disarm(&pm->m->clock, pm->timer);
    }
}

static void pm_timer(void *opaque, u64 now)
{
    (void)now;
    update(opaque);
}

/* Does a wake event stand (a wake status bit set whose wake is enabled)? */
static bool wake_event(const struct acpi_pm *pm)
{
    return (pm->sts & WAKE_ALWAYS) || (pm->sts & pm->en & WAKE_ENABLED);
}

/* A status bit was set by an event: it raises an SCI when enabled, and wakes a
 * sleeping machine when it is a wake event. */
static void fixed_event(struct acpi_pm *pm, u16 status)
{
    pm->sts |= status;
    update(pm);
    if (wake_event(pm))
        machine_wake(pm->m); /* no-op unless the machine sleeps */
}

void acpi_pm_power_button(struct acpi_pm *pm) { fixed_event(pm, STS_PWRBTN); }

void acpi_pm_rtc_alarm(struct acpi_pm *pm) { fixed_event(pm, STS_RTC); }

void acpi_pm_sleep(struct acpi_pm *pm)
{
    pm->en &= (u16)~EN_CORE_WELL;
    update(pm);
}

void acpi_pm_resume(struct acpi_pm *pm)
{
    pm->sts |= STS_WAK;
    update(pm);
}

static void enter_sleep_state(struct acpi_pm *pm, unsigned slp_typ)
{
    if (slp_typ == ACPI_S5_SLP_TYP) {
        machine_request_stop(pm->m, NESTOR_EXIT_OK);
    } else if (slp_typ == ACPI_S3_SLP_TYP) {
        machine_suspend(pm->m);
        /* a wake event that stands already ends the sleep at once, as on hardware */
        if (wake_event(pm))
            machine_wake(pm->m);
    }
}

/* ---- PM1 event/control and PM timer (0x600-0x60b) ---- */
static u8 pm_read_byte(struct acpi_pm *pm, unsigned off, u32 tmr)
{
    switch (off) {
    case OFF_STS: case OFF_STS + 1:
        return (u8)(pm->sts >> (8 * (off - OFF_STS)));
    case OFF_EN: case OFF_EN + 1:
        return (u8)(pm->en >> (8 * (off - OFF_EN)));
    case OFF_CNT: case OFF_CNT + 1:
        return (u8)(pm->cnt >> (8 * (off - OFF_CNT)));
    case OFF_TMR: case OFF_TMR + 1: case OFF_TMR + 2: case OFF_TMR + 3:
        return (u8)(tmr >> (8 * (off - OFF_TMR)));
    default:
        return 0xff; /* 0x606-0x607: nothing */
    }
}

static void pm_write_byte(struct acpi_pm *pm, unsigned off, u8 v)
{
    unsigned shift;
    switch (off) {
    case OFF_STS: case OFF_STS + 1:
        shift = 8 * (off - OFF_STS);
        pm->sts &= (u16)~((unsigned)v << shift); /* write 1 to clear */
        break;
    case OFF_EN: case OFF_EN + 1:
        shift = 8 * (off - OFF_EN);
        pm->en = (u16)((pm->en & ~(0xffu << shift)) | (((unsigned)v << shift) & EN_WRITABLE));
        break;
    case OFF_CNT: case OFF_CNT + 1: {
        shift = 8 * (off - OFF_CNT);
        u16 w = (u16)((unsigned)v << shift);
        pm->cnt = (u16)((pm->cnt & ~(0xffu << shift)) | (w & CNT_WRITABLE)) | CNT_SCI_EN;
        if (w & CNT_SLP_EN)
            enter_sleep_state(pm, (pm->cnt & CNT_SLP_TYP) >> CNT_SLP_TYP_SHIFT);
        break;
    }
    default:
        break; /* the PM timer is read-only */
    }
}

static u64 pm_read(void *opaque, u64 offset, unsigned size)
{
    struct acpi_pm *pm = opaque;
    update(pm); /* TMR_STS up to date */
    u32 tmr = acpi_pm_timer(pm);
    u64 v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (u64)(offset + i < PM_RANGE_LEN ? pm_read_byte(pm, (unsigned)(offset + i), tmr) : 0xff)
             << (8 * i);
    return v;
}

static void pm_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct acpi_pm *pm = opaque;
    update(pm); /* a status set by now can be cleared by this write */
    for (unsigned i = 0; i < size && offset + i < PM_RANGE_LEN; i++)
        pm_write_byte(pm, (unsigned)(offset + i), (u8)(value >> (8 * i)));
    update(pm);
}

/* ---- GPE0 block (0x620): 2 status bytes, 2 enable bytes; no event sources yet ---- */
static u64 gpe_read(void *opaque, u64 offset, unsigned size)
{
    struct acpi_pm *pm = opaque;
    u32 regs = pm->gpe_sts | (u32)pm->gpe_en << 16;
    u64 v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (u64)(offset + i < 4 ? (u8)(regs >> (8 * (offset + i))) : 0xff) << (8 * i);
    return v;
}

static void gpe_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct acpi_pm *pm = opaque;
    for (unsigned i = 0; i < size && offset + i < 4; i++) {
        unsigned off = (unsigned)(offset + i);
        u16 b = (u16)((u8)(value >> (8 * i)) << (8 * (off & 1)));
        if (off < 2)
            pm->gpe_sts &= (u16)~b;
        else
            pm->gpe_en = (u16)((pm->gpe_en & ~(0xffu << (8 * (off & 1)))) | b);
    }
    update(pm);
}

/* ---- reset control register (0xcf9) ---- */
static u64 reset_read(void *opaque, u64 offset, unsigned size)
{
    struct acpi_pm *pm = opaque;
    (void)offset;
    (void)size;
    return pm->reset;
}

static void reset_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct acpi_pm *pm = opaque;
    (void)offset;
    (void)size;
    u8 v = (u8)value;
    /* RST_CPU going from 0 to 1 resets (hard with SYS_RST, soft without): either way
     * there is no firmware to restart into, so the machine stops like a power-off */
    if ((v & RESET_RST_CPU) && !(pm->reset & RESET_RST_CPU))
        machine_request_stop(pm->m, NESTOR_EXIT_OK);
    pm->reset = v & (RESET_SYS_RST | RESET_FULL_RST);
}

struct acpi_pm *acpi_pm_create(struct machine *m)
{
    struct acpi_pm *pm = calloc(1, sizeof(*pm));
    if (!pm)
        nestor_panic("out of memory");
    pm->m = m;
    pm->cnt = CNT_SCI_EN;
    pm->timer = clock_timer_new(&m->clock, pm_timer, pm);
    pm->tmr_eval_tick = ticks_now(pm);
    bus_register(&m->io, ACPI_PM1A_EVT_BLK, PM_RANGE_LEN, pm_read, pm_write, pm, "acpi-pm");
    bus_register(&m->io, ACPI_GPE0_BLK, ACPI_GPE0_BLK_LEN, gpe_read, gpe_write, pm, "acpi-gpe0");
    bus_register(&m->io, ACPI_RESET_PORT, 1, reset_read, reset_write, pm, "reset-control");
    return pm;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
    clock_timer_disarm(&pm->m->clock, pm->timer);
    free(pm);
}

/* ---- state ---- */
#define F(m) STATE_FIELD(struct acpi_pm, m)
static const struct state_field acpi_pm_fields[] = {
    STATE_NOT_STATE(struct acpi_pm, m), F(sts), F(en), F(cnt), F(gpe_sts), F(gpe_en), F(reset),
    F(tmr_eval_tick), F(sci), STATE_NOT_STATE(struct acpi_pm, timer),
};
#undef F
static const struct state_desc acpi_pm_state_desc = STATE_DESC("acpi-pm", 1, struct acpi_pm, acpi_pm_fields);

void acpi_pm_state_register(struct acpi_pm *pm, struct state_registry *r)
{
    state_register(r, &acpi_pm_state_desc, 0, pm);
}

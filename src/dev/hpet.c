/* The High Precision Event Timer (IA-PC HPET Specification 1.0a).
 *
 * A 64-bit main counter at 100 MHz and three timers, each periodic-capable and 64-bit
 * (with 32-bit mode), routable to I/O APIC inputs 20-23; no FSB (MSI) delivery. In legacy
 * replacement mode timer 0 drives ISA IRQ0 and timer 1 IRQ8, and the PIT's and RTC's
 * outputs are disconnected.
 *
 * The counter does not tick: while enabled it is counter_base plus the 10 ns periods of
 * virtual time since base_ns. A timer's next comparator match is a counter value; a
 * virtual timer is armed for the time the counter reaches it. A match happens when the
 * counter equals the comparator (in the low 32 bits in 32-bit mode), so a comparator
 * already passed matches only after the counter wraps, as on hardware. */
#include "dev/platform.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "dev/timeconv.h"
#include "machine/machine.h"

#define NS_PER_TICK (NS_PER_SEC / HPET_FREQ_HZ)
#define PERIOD_FS (1000000000000000ull / HPET_FREQ_HZ)
#define HPET_REGS_SIZE 0x400
#define HPET_VENDOR 0x8086ull

/* general capabilities and ID: revision 1, timers-1, 64-bit counter, legacy capable */
#define CAP_ID (0x01ull | (u64)(HPET_TIMERS - 1) << 8 | BIT(13) | BIT(15) | HPET_VENDOR << 16 | \
                (u64)PERIOD_FS << 32)

enum { REG_CAP = 0x000, REG_CONFIG = 0x010, REG_ISR = 0x020, REG_COUNTER = 0x0f0,
       REG_TIMER = 0x100, TIMER_STRIDE = 0x20,
       TIMER_CONFIG = 0x00, TIMER_CMP = 0x08, TIMER_FSB = 0x10 };

#define CFG_ENABLE BIT(0)
#define CFG_LEGACY BIT(1)

#define TN_LEVEL BIT(1)
#define TN_INT_ENABLE BIT(2)
#define TN_PERIODIC BIT(3)
#define TN_PERIODIC_CAP BIT(4)
#define TN_SIZE_CAP BIT(5)
#define TN_VAL_SET BIT(6)
#define TN_32BIT BIT(8)
#define TN_ROUTE_SHIFT 9
#define TN_ROUTE_MASK (0x1full << TN_ROUTE_SHIFT)
#define TN_WRITABLE (TN_LEVEL | TN_INT_ENABLE | TN_PERIODIC | TN_VAL_SET | TN_32BIT | TN_ROUTE_MASK)
#define TN_CAPS (TN_PERIODIC_CAP | TN_SIZE_CAP | (u64)HPET_ROUTE_CAP << 32)

struct hpet_timer {
    u64 config;       /* writable bits only */
    u64 cmp;
    u64 period;       /* periodic mode: added to the comparator at each match */
    u64 match;        /* counter value of the next match (valid while armed) */
    bool armed;
    int irq;          /* line this timer drives high now, -1 none */
    int clk;          /* virtual timer */
};

struct hpet {
    struct machine *m;
    struct pit *pit;
    struct rtc *rtc;
    u64 config;
    u64 isr;
    u64 counter_base; /* counter value at base_ns (the value itself while halted) */
    u64 base_ns;
    struct hpet_timer t[HPET_TIMERS];
};

static bool enabled(const struct hpet *h) { return h->config & CFG_ENABLE; }

static u64 counter_at(const struct hpet *h, u64 now)
{
    if (!enabled(h))
        return h->counter_base;
    return h->counter_base + (now - h->base_ns) / NS_PER_TICK;
}

static u64 now_ns(const struct hpet *h) { return clock_now(&h->m->clock); }

/* ---- interrupt lines ----
 * pit and rtc may be NULL (a machine without them): nothing to disconnect then. */
/* The line timer n is wired to now: legacy IRQ0/IRQ8, its routed I/O APIC input, or -1. */
static int route(const struct hpet *h, int n)
{
    if ((h->config & CFG_LEGACY) && n < 2)
        return n == 0 ? 0 : RTC_IRQ;
    int r = (int)((h->t[n].config & TN_ROUTE_MASK) >> TN_ROUTE_SHIFT);
    return (HPET_ROUTE_CAP >> r) & 1 ? r : -1;
}

static void drive(struct hpet *h, int n, int irq, bool level)
{
    struct hpet_timer *t = &h->t[n];
    if (t->irq >= 0 && (t->irq != irq || !level)) {
        machine_set_irq(h->m, t->irq, false);
        t->irq = -1;
    }
    if (level && irq >= 0 && t->irq != irq) {
        machine_set_irq(h->m, irq, true);
        t->irq = irq;
    }
}

/* Level mode: the line follows the status bit while the interrupt is enabled. */
static void update_line(struct hpet *h, int n)
{
    const struct hpet_timer *t = &h->t[n];
    bool level = (t->config & TN_LEVEL) && (t->config & TN_INT_ENABLE) && (h->isr & BIT(n));
    drive(h, n, route(h, n), level);
}

static void fire(struct hpet *h, int n)
{
    struct hpet_timer *t = &h->t[n];
    if (t->config & TN_LEVEL) {
        h->isr |= BIT(n); /* set even when the interrupt is disabled */
        update_line(h, n);
    } else if (t->config & TN_INT_ENABLE) {
        int irq = route(h, n);
        if (irq >= 0) {
            drive(h, n, irq, false);
            machine_set_irq(h->m, irq, true); /* an edge: a pulse on the line */
            machine_set_irq(h->m, irq, false);
        }
    }
}

/* ---- comparators ---- */
static u64 width_mask(const struct hpet_timer *t) { return (t->config & TN_32BIT) ? 0xffffffffull : ~0ull; }

/* Arms timer n for its first match at a counter value >= from. */
static void arm(struct hpet *h, int n, u64 from)
{
    struct hpet_timer *t = &h->t[n];
    t->armed = false;
    clock_timer_disarm(&h->m->clock, t->clk);
    if (!enabled(h))
        return;
    u64 delta = (t->cmp - from) & width_mask(t);
    if (from + delta < from)
        return; /* beyond the 64-bit counter's wrap: centuries away */
    unsigned __int128 ns = (unsigned __int128)(from + delta - h->counter_base) * NS_PER_TICK + h->base_ns;
    if (ns >= CLOCK_NEVER)
        return; /* beyond the virtual clock's range */
    t->match = from + delta;
    t->armed = true;
    clock_timer_arm(&h->m->clock, t->clk, (u64)ns);
}

static void timer_expired(struct hpet *h, int n)
{
    struct hpet_timer *t = &h->t[n];
    if (!t->armed || !enabled(h))
        return;
    u64 now_count = counter_at(h, now_ns(h));
    if (now_count < t->match) {
        arm(h, n, t->match); /* early (real-time clock rounding): wait on */
        return;
    }
    fire(h, n);
    if (t->config & TN_PERIODIC) {
        /* the comparator advances by the period; periods missed while the timer ran
         * late are skipped, as the interrupts would have merged */
        u64 period = t->period & width_mask(t);
        u64 k = period ? (now_count - t->match) / period + 1 : 1;
        t->cmp = (t->cmp + k * period) & width_mask(t);
        arm(h, n, now_count + 1);
    } else {
        arm(h, n, t->match + 1);
    }
}

static void clk_timer0(void *o, u64 now) { (void)now; timer_expired(o, 0); }
static void clk_timer1(void *o, u64 now) { (void)now; timer_expired(o, 1); }
static void clk_timer2(void *o, u64 now) { (void)now; timer_expired(o, 2); }
static const timer_fn clk_fns[HPET_TIMERS] = { clk_timer0, clk_timer1, clk_timer2 };

static void rearm_all(struct hpet *h)
{
    u64 c = counter_at(h, now_ns(h));
    for (int n = 0; n < HPET_TIMERS; n++)
        arm(h, n, c);
}

/* ---- registers ---- */
static u64 reg_read(struct hpet *h, u64 reg)
{
    switch (reg) {
    case REG_CAP:
        return CAP_ID;
    case REG_CONFIG:
        return h->config;
    case REG_ISR:
        return h->isr;
    case REG_COUNTER:
        return counter_at(h, now_ns(h));
    default:
        break;
    }
    if (reg >= REG_TIMER && reg < REG_TIMER + HPET_TIMERS * TIMER_STRIDE) {
        const struct hpet_timer *t = &h->t[(reg - REG_TIMER) / TIMER_STRIDE];
        switch ((reg - REG_TIMER) % TIMER_STRIDE) {
        case TIMER_CONFIG:
            return (t->config & ~TN_VAL_SET) | TN_CAPS;
        case TIMER_CMP:
            return t->cmp;
        default:
            return 0; /* FSB route: no FSB delivery */
        }
    }
    return 0;
}

static void set_config(struct hpet *h, u64 v)
{
    u64 now = now_ns(h), old = h->config;
    v &= CFG_ENABLE | CFG_LEGACY;
    if ((v ^ old) & CFG_ENABLE) {
        h->counter_base = counter_at(h, now); /* halting freezes, enabling resumes */
        h->base_ns = now;
    }
    bool legacy_on = (v & CFG_LEGACY) && !(old & CFG_LEGACY);
    bool legacy_off = !(v & CFG_LEGACY) && (old & CFG_LEGACY);
    if (legacy_on && h->pit)
        pit_connect_irq(h->pit, false);
    if (legacy_on && h->rtc)
        rtc_connect_irq(h->rtc, false);
    h->config = v;
    for (int n = 0; n < HPET_TIMERS; n++)
        update_line(h, n); /* lines move between legacy and routed wiring */
    if (legacy_off && h->pit)
        pit_connect_irq(h->pit, true);
    if (legacy_off && h->rtc)
        rtc_connect_irq(h->rtc, true);
    if ((v ^ old) & CFG_ENABLE)
        rearm_all(h);
}

static void set_timer_config(struct hpet *h, int n, u64 v)
{
    struct hpet_timer *t = &h->t[n];
    u64 nv = v & TN_WRITABLE;
    unsigned r = (unsigned)((nv & TN_ROUTE_MASK) >> TN_ROUTE_SHIFT);
    if (!((HPET_ROUTE_CAP >> r) & 1))
        nv = (nv & ~TN_ROUTE_MASK) | (t->config & TN_ROUTE_MASK); /* unsupported route */
    t->config = nv;
    if (nv & TN_32BIT) {
        t->cmp &= 0xffffffffull;
        t->period &= 0xffffffffull;
    }
    if (!(nv & TN_LEVEL))
        h->isr &= ~BIT(n); /* the status bit has no meaning for edge interrupts */
    update_line(h, n);
    arm(h, n, counter_at(h, now_ns(h)));
}

static void set_comparator(struct hpet *h, int n, u64 v, u64 mask)
{
    struct hpet_timer *t = &h->t[n];
    v &= width_mask(t);
    mask &= width_mask(t);
    /* periodic mode: writes set the period; with "value set" also the comparator */
    if (!(t->config & TN_PERIODIC) || (t->config & TN_VAL_SET))
        t->cmp = (t->cmp & ~mask) | (v & mask);
    if (t->config & TN_PERIODIC)
        t->period = (t->period & ~mask) | (v & mask);
    t->config &= ~TN_VAL_SET;
    arm(h, n, counter_at(h, now_ns(h)));
}

/* Writes the bits in mask of the 64-bit register reg. */
static void reg_write(struct hpet *h, u64 reg, u64 value, u64 mask)
{
    switch (reg) {
    case REG_CONFIG:
        set_config(h, (h->config & ~mask) | (value & mask));
        return;
    case REG_ISR:
        /* write 1 to clear */
        h->isr &= ~(value & mask);
        for (int n = 0; n < HPET_TIMERS; n++)
            update_line(h, n);
        return;
    case REG_COUNTER: {
        u64 now = now_ns(h);
        h->counter_base = (counter_at(h, now) & ~mask) | (value & mask);
        h->base_ns = now;
        rearm_all(h);
        return;
    }
    default:
        break;
    }
    if (reg >= REG_TIMER && reg < REG_TIMER + HPET_TIMERS * TIMER_STRIDE) {
        int n = (int)((reg - REG_TIMER) / TIMER_STRIDE);
        switch ((reg - REG_TIMER) % TIMER_STRIDE) {
        case TIMER_CONFIG:
            set_timer_config(h, n, (h->t[n].config & ~mask) | (value & mask));
            break;
        case TIMER_CMP:
            set_comparator(h, n, value, mask);
            break;
        default:
            break; /* FSB route: read-only zero */
        }
    }
}

static u64 mmio_read(void *opaque, u64 offset, unsigned size)
{
    struct hpet *h = opaque;
    unsigned shift = (unsigned)(offset & 7) * 8;
    u64 v = reg_read(h, offset & ~7ull) >> shift;
    return size >= 8 ? v : v & MASK(size * 8);
}

static void mmio_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct hpet *h = opaque;
    unsigned shift = (unsigned)(offset & 7) * 8;
    if (shift + size * 8 > 64)
        return; /* straddles two registers */
    u64 mask = MASK(size * 8) << shift;
    reg_write(h, offset & ~7ull, value << shift, mask);
}

/* ---- ACPI table ---- */
static void put_le(u8 *p, u64 v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (u8)(v >> (8 * i));
}

void hpet_acpi_table(u8 *buf, size_t *len)
{
    enum { LEN = 56 };
    if (*len < LEN) {
        *len = LEN;
        return;
    }
    memset(buf, 0, LEN);
    memcpy(buf, "HPET", 4);
    put_le(buf + 4, LEN, 4);
    buf[8] = 1;                       /* revision */
    memcpy(buf + 10, "NESTOR", 6);    /* OEM ID */
    memcpy(buf + 16, "NESTORPC", 8);  /* OEM table ID */
    put_le(buf + 24, 1, 4);           /* OEM revision */
    memcpy(buf + 28, "NSTR", 4);      /* creator ID */
    put_le(buf + 32, 1, 4);           /* creator revision */
    put_le(buf + 36, (u32)CAP_ID, 4); /* event timer block ID: the low half of GCAP_ID */
    buf[40] = 0;                      /* base address: system memory GAS */
    buf[41] = 64;                     /* register bit width */
    buf[42] = 0;                      /* bit offset */
    buf[43] = 0;                      /* access size: undefined (any) */
    put_le(buf + 44, HPET_MMIO_BASE, 8);
    buf[52] = 0;                      /* HPET number */
    put_le(buf + 53, 0x80, 2);        /* minimum periodic tick: 128 counts (1.28 us) */
    buf[55] = 0;                      /* no page protection guarantee */
    u8 sum = 0;
    for (int i = 0; i < LEN; i++)
        sum += buf[i];
    buf[9] = (u8)-sum;
    *len = LEN;
}

void hpet_reset(struct hpet *h)
{
    set_config(h, 0); /* halted, legacy replacement off: the PIT and RTC get IRQ0/8 back */
    for (int n = 0; n < HPET_TIMERS; n++) {
        struct hpet_timer *t = &h->t[n];
        drive(h, n, -1, false);
        clock_timer_disarm(&h->m->clock, t->clk);
        int clk = t->clk;
        *t = (struct hpet_timer){ .irq = -1, .cmp = ~0ull, .clk = clk };
    }
    h->isr = 0;
    h->counter_base = 0;
    h->base_ns = now_ns(h);
}

struct hpet *hpet_create(struct machine *m, struct pit *pit, struct rtc *rtc)
{
    struct hpet *h = calloc(1, sizeof(*h));
    if (!h)
        nestor_panic("out of memory");
    h->m = m;
    h->pit = pit;
    h->rtc = rtc;
    for (int n = 0; n < HPET_TIMERS; n++) {
        h->t[n].irq = -1;
        h->t[n].cmp = ~0ull; /* comparators reset to all-ones */
        h->t[n].clk = clock_timer_new(&m->clock, clk_fns[n], h);
    }
    bus_register(&m->mmio, HPET_MMIO_BASE, HPET_REGS_SIZE, mmio_read, mmio_write, h, "hpet");
    return h;
}

void hpet_destroy(struct hpet *h)
{
    for (int n = 0; n < HPET_TIMERS; n++)
        clock_timer_disarm(&h->m->clock, h->t[n].clk);
    free(h);
}

/* ---- state ---- */
#define F(m) STATE_FIELD(struct hpet_timer, m)
static const struct state_field hpet_timer_fields[] = {
    F(config), F(cmp), F(period), F(match), F(armed), F(irq),
    STATE_NOT_STATE(struct hpet_timer, clk), /* the same virtual timer on every machine */
};
#undef F
static const struct state_desc hpet_timer_desc =
    STATE_DESC("hpet_timer", 1, struct hpet_timer, hpet_timer_fields);
static const struct state_field hpet_fields[] = {
    STATE_NOT_STATE(struct hpet, m), STATE_NOT_STATE(struct hpet, pit),
    STATE_NOT_STATE(struct hpet, rtc), STATE_FIELD(struct hpet, config),
    STATE_FIELD(struct hpet, isr), STATE_FIELD(struct hpet, counter_base),
    STATE_FIELD(struct hpet, base_ns),
    STATE_STRUCT(struct hpet, t, hpet_timer_desc),
};

static int hpet_post_load(void *obj, char *err, size_t errlen)
{
    struct hpet *h = obj;
    for (int i = 0; i < HPET_TIMERS; i++)
        if (h->t[i].irq < -1 || h->t[i].irq > 23) {
            return nestor_err(err, errlen, "timer %d drives line %d", i, h->t[i].irq);
        }
    return 0;
}

static const struct state_desc hpet_state_desc =
    STATE_DESC("hpet", 1, struct hpet, hpet_fields, .post_load = hpet_post_load);

void hpet_state_register(struct hpet *h, struct state_registry *r)
{
    state_register(r, &hpet_state_desc, 0, h);
}

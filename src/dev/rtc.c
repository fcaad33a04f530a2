/* The MC146818 real-time clock and CMOS NVRAM of the PC (Motorola MC146818A datasheet;
 * the ICH's RTC with the century byte at 0x32).
 *
 * Port 0x70 selects one of 128 bytes (bit 7 masks NMIs), port 0x71 reads/writes it.
 * Bytes 0-9 and 0x32 are the clock; 0x0a-0x0d the control/status registers A-D; the rest
 * is NVRAM, with the memory sizes a PC BIOS leaves there.
 *
 * The clock does not tick: while it runs, the time is base_secs plus the whole seconds of
 * virtual time since base_ns (an update boundary). Status flags (periodic, alarm,
 * update-ended) are brought up to date from virtual time whenever they are observed; a
 * virtual timer runs only while an enabled interrupt could newly raise IRQ8.
 * Daylight-saving (register B bit 0) is not implemented: the clock keeps UTC as given.
 * The RTC is battery-backed: it keeps running, with its alarm, while the machine sleeps
 * in S3, and its alarm interrupt is an ACPI wake event (acpi_pm_rtc_alarm). */
#include "dev/platform.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "dev/timeconv.h"
#include "machine/machine.h"

enum {
    REG_SEC = 0x00, REG_SEC_ALARM = 0x01, REG_MIN = 0x02, REG_MIN_ALARM = 0x03,
    REG_HOUR = 0x04, REG_HOUR_ALARM = 0x05, REG_DOW = 0x06, REG_DAY = 0x07,
    REG_MONTH = 0x08, REG_YEAR = 0x09, REG_A = 0x0a, REG_B = 0x0b, REG_C = 0x0c,
    REG_D = 0x0d, REG_CENTURY = RTC_CENTURY_REG,
};

#define A_UIP 0x80
#define A_DV_MASK 0x70
#define A_DV_RESET 0x60 /* DV = 11x: divider chain held in reset */
#define A_RS_MASK 0x0f
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10
#define D_VRT 0x80

#define RTC_HZ 32768ull
/* UIP is set this long before each update (8 periods of the 32.768 kHz clock) */
#define UIP_NS (8 * NS_PER_SEC / RTC_HZ)
#define NEVER (~0ull)

struct rtc {
    struct machine *m;
    u8 cmos[128];
    u8 index;
    bool nmi_masked;
    /* clock: while running, the time is base_secs + whole seconds since base_ns */
    s64 base_secs;
    s64 base_ns;          /* an update boundary of the divider chain (may precede 0) */
    int dow_offset;       /* the guest's day-of-week numbering relative to the real one */
    u64 flags_eval_ns;    /* register C flags are up to date until here */
    u8 flags;             /* PF, AF, UF */
    bool irq_connected, irq_level;
    bool alarm_irq;       /* the alarm interrupt condition (AF and AIE), last seen */
    int timer;
};

static u64 now_ns(const struct rtc *r) { return clock_now(&r->m->clock); }

static bool divider_running(const struct rtc *r)
{
    return (r->cmos[REG_A] & A_DV_RESET) != A_DV_RESET;
}

static bool clock_running(const struct rtc *r)
{
    return divider_running(r) && !(r->cmos[REG_B] & B_SET);
}

static s64 secs_at(const struct rtc *r, u64 t)
{
    s64 elapsed = (s64)t - r->base_ns;
    return r->base_secs + (elapsed >= 0 ? elapsed / (s64)NS_PER_SEC : 0);
}

/* ---- calendar (proleptic Gregorian, days since 1970-01-01) ---- */
static s64 days_from_civil(s64 y, s64 m, s64 d)
{
    y -= m <= 2;
    s64 era = (y >= 0 ? y : y - 399) / 400;
    s64 yoe = y - era * 400;
    s64 doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    s64 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(s64 z, s64 *y, int *m, int *d)
{
    z += 719468;
    s64 era = (z >= 0 ? z : z - 146096) / 146097;
    s64 doe = z - era * 146097;
    s64 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    s64 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    s64 mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static s64 floor_div(s64 a, s64 b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

/* ---- register encodings ---- */
static u8 encode(const struct rtc *r, int v)
{
    return (r->cmos[REG_B] & B_BINARY) ? (u8)v : (u8)((v / 10) << 4 | v % 10);
}

static int decode(const struct rtc *r, u8 v)
{
    /* BCD digits above 9 are taken at face value */
    return (r->cmos[REG_B] & B_BINARY) ? v : (v >> 4) * 10 + (v & 0xf);
}

static u8 encode_hour(const struct rtc *r, int h)
{
    if (r->cmos[REG_B] & B_24H)
        return encode(r, h);
    int h12 = h % 12 == 0 ? 12 : h % 12;
    return (u8)(encode(r, h12) | (h >= 12 ? 0x80 : 0));
}

static int decode_hour(const struct rtc *r, u8 v)
{
    if (r->cmos[REG_B] & B_24H)
        return decode(r, v);
    return decode(r, v & 0x7f) % 12 + ((v & 0x80) ? 12 : 0);
}

static int real_dow(s64 days) { return (int)(((days + 4) % 7 + 7) % 7); } /* 0 = Sunday */

/* Writes the time of secs into the clock bytes. */
static void store_time(struct rtc *r, s64 secs)
{
    s64 days = floor_div(secs, 86400), tod = secs - days * 86400, year;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    r->cmos[REG_SEC] = encode(r, (int)(tod % 60));
    r->cmos[REG_MIN] = encode(r, (int)(tod / 60 % 60));
    r->cmos[REG_HOUR] = encode_hour(r, (int)(tod / 3600));
    r->cmos[REG_DOW] = encode(r, (real_dow(days) + r->dow_offset) % 7 + 1);
    r->cmos[REG_DAY] = encode(r, day);
    r->cmos[REG_MONTH] = encode(r, month);
    r->cmos[REG_YEAR] = encode(r, (int)(((year % 100) + 100) % 100));
    r->cmos[REG_CENTURY] = encode(r, (int)(floor_div(year, 100) % 100 + 100) % 100);
}

/* The time the clock bytes say (out-of-range fields carry over like mktime's). */
static s64 load_time(struct rtc *r)
{
    s64 year = decode(r, r->cmos[REG_CENTURY]) * 100 + decode(r, r->cmos[REG_YEAR]);
    s64 month0 = decode(r, r->cmos[REG_MONTH]) - 1;
    year += floor_div(month0, 12);
    month0 -= floor_div(month0, 12) * 12;
    s64 days = days_from_civil(year, month0 + 1, 1) + decode(r, r->cmos[REG_DAY]) - 1;
    s64 secs = days * 86400 + decode_hour(r, r->cmos[REG_HOUR]) * 3600 +
               decode(r, r->cmos[REG_MIN]) * 60 + decode(r, r->cmos[REG_SEC]);
    int dow = decode(r, r->cmos[REG_DOW]) - 1;
    r->dow_offset = ((dow - real_dow(floor_div(secs, 86400))) % 7 + 7) % 7;
    return secs;
}

/* ---- alarm ---- */
static bool dont_care(u8 v) { return (v & 0xc0) == 0xc0; }

/* The first second after secs whose time of day matches the alarm, or NEVER. */
static u64 next_alarm(const struct rtc *r, s64 secs)
{
    u8 hs = r->cmos[REG_HOUR_ALARM], ms = r->cmos[REG_MIN_ALARM], ss = r->cmos[REG_SEC_ALARM];
    int H = dont_care(hs) ? -1 : decode_hour(r, hs);
    int M = dont_care(ms) ? -1 : decode(r, ms);
    int S = dont_care(ss) ? -1 : decode(r, ss);
    if (H > 23 || M > 59 || S > 59)
        return NEVER; /* a value the clock never shows */
    s64 t = secs + 1;
    for (int guard = 0; guard < 8; guard++) {
        s64 tod = t - floor_div(t, 86400) * 86400;
        int h = (int)(tod / 3600), m = (int)(tod / 60 % 60), s = (int)(tod % 60);
        if (H >= 0 && h != H)
            t += ((H - h + 24) % 24) * 3600 - m * 60 - s;
        else if (M >= 0 && m != M)
            t += ((M - m + 60) % 60) * 60 - s;
        else if (S >= 0 && s != S)
            t += (S - s + 60) % 60;
        else
            return (u64)t;
    }
    return NEVER;
}

/* ---- flags and IRQ8 ---- */
static u64 periodic_ticks(const struct rtc *r)
{
    unsigned rs = r->cmos[REG_A] & A_RS_MASK;
    if (!rs)
        return 0;
    return rs <= 2 ? 1u << (rs + 6) : 1u << (rs - 1);
}

static u64 divider_ticks(const struct rtc *r, u64 t)
{
    s64 e = (s64)t - r->base_ns;
    return e > 0 ? ns_to_ticks((u64)e, RTC_HZ) : 0;
}

/* Sets the flags of the events in (flags_eval_ns, now]. */
static void sync_flags(struct rtc *r, u64 now)
{
    u64 from = r->flags_eval_ns;
    if (now <= from)
        return;
    r->flags_eval_ns = now;
    if (!divider_running(r))
        return;
    u64 period = periodic_ticks(r);
    if (period && divider_ticks(r, now) / period != divider_ticks(r, from) / period)
        r->flags |= C_PF;
    if (!clock_running(r))
        return;
    s64 s0 = secs_at(r, from), s1 = secs_at(r, now);
    if (s1 != s0) {
        r->flags |= C_UF;
        u64 a = next_alarm(r, s0);
        if (a != NEVER && (s64)a <= s1)
            r->flags |= C_AF;
    }
}

static u8 irqf(const struct rtc *r)
{
    u8 b = r->cmos[REG_B];
    bool on = ((r->flags & C_PF) && (b & B_PIE)) || ((r->flags & C_AF) && (b & B_AIE)) ||
              ((r->flags & C_UF) && (b & B_UIE));
    return on ? C_IRQF : 0;
}

static u64 min_u64(u64 a, u64 b) { return a < b ? a : b; }

static u64 secs_to_ns(const struct rtc *r, u64 secs)
{
    s64 ds = (s64)secs - r->base_secs;
    return (u64)(r->base_ns + ds * (s64)NS_PER_SEC);
}

/* Drives IRQ8 and arms the timer for the next event that could raise it. */
static void update_irq(struct rtc *r)
{
    u64 now = now_ns(r);
    sync_flags(r, now);
    bool level = r->irq_connected && irqf(r);
    if (level != r->irq_level) {
        r->irq_level = level;
        machine_set_irq(r->m, RTC_IRQ, level);
    }
    u8 b = r->cmos[REG_B];
    /* the alarm interrupt (AF with AIE) also sets the ACPI PM's RTC_STS, on its rising
     * edge: a wake event from S3, and an SCI with RTC_EN */
    bool alarm = (r->flags & C_AF) && (b & B_AIE);
    if (alarm && !r->alarm_irq && r->m->acpi_pm)
        acpi_pm_rtc_alarm(r->m->acpi_pm);
    r->alarm_irq = alarm;
    u64 next = NEVER;
    if (divider_running(r)) {
        u64 period = periodic_ticks(r);
        bool line_free = !irqf(r);
        if (line_free && (b & B_PIE) && period && !(r->flags & C_PF)) {
            u64 k = divider_ticks(r, now) / period + 1;
            next = (u64)r->base_ns + ticks_to_ns(k * period, RTC_HZ);
        }
        if (clock_running(r)) {
            s64 s = secs_at(r, now);
            if (line_free && (b & B_UIE) && !(r->flags & C_UF))
                next = min_u64(next, secs_to_ns(r, (u64)(s + 1)));
            /* the alarm is timed even while IRQ8 is already high: RTC_STS needs it */
            if ((b & B_AIE) && !(r->flags & C_AF)) {
                u64 a = next_alarm(r, s);
                if (a != NEVER)
                    next = min_u64(next, secs_to_ns(r, a));
            }
        }
    }
    if (next == NEVER)
        clock_timer_disarm(&r->m->clock, r->timer);
    else
        clock_timer_arm(&r->m->clock, r->timer, next);
}

static void rtc_timer(void *opaque, u64 now)
{
    (void)now;
    update_irq(opaque);
}

void rtc_connect_irq(struct rtc *r, bool connected)
{
    r->irq_connected = connected;
    update_irq(r);
}

bool rtc_nmi_masked(const struct rtc *r) { return r->nmi_masked; }

/* ---- clock bytes ---- */
static bool is_clock_byte(u8 i) { return (i <= REG_YEAR && i != REG_SEC_ALARM && i != REG_MIN_ALARM &&
                                          i != REG_HOUR_ALARM) || i == REG_CENTURY; }

/* Would the clock run with register i set to v? */
static bool clock_running_with(const struct rtc *r, u8 i, u8 v)
{
    u8 a = i == REG_A ? v : r->cmos[REG_A], b = i == REG_B ? v : r->cmos[REG_B];
    return (a & A_DV_RESET) != A_DV_RESET && !(b & B_SET);
}

/* Stops the running clock at now, leaving its time in the clock bytes. */
static void stop_clock(struct rtc *r, u64 now)
{
    store_time(r, secs_at(r, now));
}

/* Starts the clock from the clock bytes, the next update first_update_ns from now. */
static void start_clock(struct rtc *r, u64 now, u64 first_update_ns)
{
    r->base_secs = load_time(r);
    r->base_ns = (s64)now + (s64)first_update_ns - (s64)NS_PER_SEC;
    r->flags_eval_ns = now;
}

static u8 cmos_read(struct rtc *r, u8 i)
{
    u64 now = now_ns(r);
    if (is_clock_byte(i) && clock_running(r))
        store_time(r, secs_at(r, now));
    switch (i) {
    case REG_A: {
        u8 v = r->cmos[REG_A] & ~A_UIP;
        if (clock_running(r) && (u64)((s64)now - r->base_ns) % NS_PER_SEC >= NS_PER_SEC - UIP_NS)
            v |= A_UIP;
        return v;
    }
    case REG_C: {
        sync_flags(r, now);
        u8 v = (u8)(r->flags | irqf(r));
        r->flags = 0;
        update_irq(r);
        return v;
    }
    default:
        return r->cmos[i];
    }
}

static void cmos_write(struct rtc *r, u8 i, u8 v)
{
    u64 now = now_ns(r);
    sync_flags(r, now);
    bool was_running = clock_running(r), divider_was = divider_running(r);
    if (is_clock_byte(i)) {
        if (was_running) {
            /* a write while the clock runs: the update phase is kept */
            stop_clock(r, now);
            r->cmos[i] = v;
            s64 since = (s64)now - r->base_ns;
            u64 phase = since >= 0 ? (u64)since % NS_PER_SEC : 0;
            start_clock(r, now, NS_PER_SEC - phase);
        } else {
            r->cmos[i] = v;
        }
    } else if (i == REG_A || i == REG_B) {
        if (i == REG_B && (v & B_SET))
            v &= ~B_UIE; /* SET clears UIE */
        if (i == REG_A)
            v &= ~A_UIP;
        if (was_running && !clock_running_with(r, i, v))
            stop_clock(r, now); /* the bytes keep the time (in the format they had) */
        r->cmos[i] = v;
        if (!was_running && clock_running(r))
            /* SET cleared: the next update in a second; out of divider reset: the
             * first update comes half a second later */
            start_clock(r, now, divider_was ? NS_PER_SEC : NS_PER_SEC / 2);
    } else if (i == REG_C || i == REG_D) {
        return; /* read-only */
    } else {
        r->cmos[i] = v;
    }
    update_irq(r);
}

static u64 rtc_read(void *opaque, u64 offset, unsigned size)
{
    struct rtc *r = opaque;
    (void)size;
    if (offset == 0)
        return 0xff; /* the index register is write-only */
    return cmos_read(r, r->index);
}

static void rtc_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct rtc *r = opaque;
    (void)size;
    if (offset == 0) {
        r->index = value & 0x7f;
        r->nmi_masked = value & 0x80;
    } else {
        cmos_write(r, r->index, (u8)value);
    }
}

/* The memory sizes a PC BIOS records in the NVRAM (as QEMU's pc_cmos_init sets them). */
static void set_memory_bytes(struct rtc *r)
{
    u64 ram = r->m->mem.ram_size;
    u64 below4g = ram < MEM_PCI_HOLE_START ? ram : MEM_PCI_HOLE_START;
    u64 above4g = ram - below4g;
    u64 base_kb = 640;
    u64 ext_kb = below4g / KiB > 1024 ? below4g / KiB - 1024 : 0;
    if (ext_kb > 0xffff)
        ext_kb = 0xffff;
    u64 above16m = below4g > 16 * MiB ? (below4g - 16 * MiB) / (64 * KiB) : 0;
    if (above16m > 0xffff)
        above16m = 0xffff;
    u64 high = above4g / (64 * KiB);
    if (high > 0xffffff)
        high = 0xffffff;
    r->cmos[0x15] = (u8)base_kb;
    r->cmos[0x16] = (u8)(base_kb >> 8);
    r->cmos[0x17] = r->cmos[0x30] = (u8)ext_kb;
    r->cmos[0x18] = r->cmos[0x31] = (u8)(ext_kb >> 8);
    r->cmos[0x34] = (u8)above16m;
    r->cmos[0x35] = (u8)(above16m >> 8);
    r->cmos[0x5b] = (u8)high;
    r->cmos[0x5c] = (u8)(high >> 8);
    r->cmos[0x5d] = (u8)(high >> 16);
    r->cmos[0x5f] = (u8)(r->m->ncpus > 0 ? r->m->ncpus - 1 : 0);
    r->cmos[0x14] = 0x02; /* equipment: FPU present, no floppies */
}

struct rtc *rtc_create(struct machine *m, time_t start)
{
    struct rtc *r = calloc(1, sizeof(*r));
    if (!r)
        nestor_panic("out of memory");
    r->m = m;
    r->cmos[REG_A] = 0x26; /* 32.768 kHz divider, 1024 Hz periodic rate */
    r->cmos[REG_B] = B_24H;
    r->cmos[REG_D] = D_VRT;
    set_memory_bytes(r);
    u64 now = now_ns(r);
    r->base_secs = (s64)start;
    r->base_ns = (s64)now;
    r->flags_eval_ns = now;
    r->irq_connected = true;
    r->timer = clock_timer_new(&m->clock, rtc_timer, r);
    bus_register(&m->io, RTC_INDEX_PORT, 2, rtc_read, rtc_write, r, "rtc");
    return r;
}

void rtc_destroy(struct rtc *r)
{
    clock_timer_disarm(&r->m->clock, r->timer);
    free(r);
}

/* ---- state ---- */
#define F(m) STATE_FIELD(struct rtc, m)
static const struct state_field rtc_fields[] = {
    STATE_NOT_STATE(struct rtc, m), F(cmos), F(index), F(nmi_masked), F(base_secs), F(base_ns),
    F(dow_offset), F(flags_eval_ns), F(flags), F(irq_connected), F(irq_level), F(alarm_irq),
    STATE_NOT_STATE(struct rtc, timer),
};
#undef F

static int rtc_post_load(void *obj, char *err, size_t errlen)
{
    struct rtc *r = obj;
    if (r->index > 0x7f || r->dow_offset < -7 || r->dow_offset > 7) {
        return nestor_err(err, errlen, "impossible RTC state");
    }
    return 0;
}

static const struct state_desc rtc_state_desc =
    STATE_DESC("rtc", 1, struct rtc, rtc_fields, .post_load = rtc_post_load);

void rtc_state_register(struct rtc *r, struct state_registry *reg)
{
    state_register(reg, &rtc_state_desc, 0, r);
}

/* The 8254 programmable interval timer (Intel 8254 datasheet) and port 0x61, the PC's
 * system control port B.
 *
 * Three counters clocked at 1.193182 MHz. Nothing ticks: each counter remembers the
 * clock tick at which its counting element was loaded and the value it was loaded with,
 * and its count and OUT at any tick are computed from the elapsed ticks. Counter 0's
 * OUT is ISA IRQ0: a virtual timer fires at each change of OUT0 and the line follows
 * it. Counter 1's OUT (DRAM refresh) goes nowhere. Counter 2's gate is port 0x61 bit 0
 * and its OUT is read at port 0x61 bit 5.
 *
 * Tick convention: a count written at tick t is loaded into the counting element at
 * tick t+1 (the datasheet's "next CLK pulse"); the counting element decrements once per
 * tick after that. So mode 0 raises OUT N+1 ticks after the count is written. */
#include "dev/platform.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "dev/timeconv.h"
#include "machine/machine.h"

#define PIT_HZ 1193182ull
#define NEVER (~0ull)
#define REFRESH_TICKS 18 /* port 0x61 bit 4 toggles with each DRAM refresh request */

enum { ACCESS_LATCH = 0, ACCESS_LSB = 1, ACCESS_MSB = 2, ACCESS_WORD = 3 };

struct pit_counter {
    u8 mode;             /* 0-5 */
    u8 access;           /* ACCESS_LSB, _MSB, _WORD */
    bool bcd;
    bool gate;
    u32 count;           /* count register N (1..modulus); 0: none written since the control word */
    /* counting element */
    bool running;        /* counting (loaded, gate allows, triggered) */
    u64 load_tick;       /* tick at which it held `start` */
    u32 start;           /* value at load_tick (periodic modes: the period) */
    bool terminal;       /* modes 0/4: terminal count already reached before a pause */
    u32 frozen;          /* value while not running */
    bool out_frozen;     /* OUT while not running */
    u64 null_until;      /* null count flag set before this tick */
    /* modes 2/3: a count written while counting takes effect at the end of the cycle */
    bool next_pending;
    u32 next_count;
    u64 next_tick;
    /* host interface */
    bool write_msb;      /* word access: the next write is the MSB */
    u8 write_lsb;
    bool read_msb;       /* word access: the next read is the MSB */
    bool count_latched;
    u16 latch;
    bool status_latched;
    u8 status;
};

struct pit {
    struct machine *m;
    struct pit_counter c[3];
    u8 port_b;           /* port 0x61 bits 0-3 */
    /* counter 0 -> IRQ0 */
    bool irq_connected;
    bool irq_level;
    u64 irq_eval_tick;
    int timer;
};

static u64 now_tick(const struct pit *p) { return ns_to_ticks(clock_now(&p->m->clock), PIT_HZ); }

static u32 modulus(const struct pit_counter *c) { return c->bcd ? 10000 : 0x10000; }

/* Ticks counted since the load (0 before it). */
static u64 elapsed(const struct pit_counter *c, u64 t)
{
    return t > c->load_tick ? t - c->load_tick : 0;
}

/* A count written while counting in modes 2/3 becomes current at the end of the cycle. */
static void sync(struct pit_counter *c, u64 t)
{
    if (c->next_pending && t >= c->next_tick) {
        c->next_pending = false;
        c->count = c->start = c->next_count;
        c->load_tick = c->next_tick;
    }
}

/* Mode 3 phase: OUT high for the first `high` ticks of each period of N. */
static u64 square_high_ticks(u32 n) { return (n & 1) ? (n + 1) / 2 : n / 2; }

static u32 value_at(const struct pit_counter *c, u64 t)
{
    if (!c->running)
        return c->frozen;
    u64 d = elapsed(c, t);
    u32 mod = modulus(c), n = c->start;
    switch (c->mode) {
    case 2:
        return (u32)((n - d % n) % mod);
    case 3: {
        u64 pos = d % n, high = square_high_ticks(n);
        u64 q = pos < high ? pos : pos - high;
        /* even N counts N, N-2, ... in each half; odd N counts N-1, N-3, ... */
        u64 top = (n & 1) ? n - 1 : n;
        return (u32)((top - 2 * q) % mod);
    }
    default: /* 0, 1, 4, 5: one pass, then wrapping around */
        return (u32)((n + mod - d % mod) % mod);
    }
}

static bool out_at(const struct pit_counter *c, u64 t)
{
    if (!c->running)
        return c->out_frozen;
    u64 d = elapsed(c, t);
    u32 n = c->start;
    switch (c->mode) {
    case 0:
    case 1:
        return c->terminal || d >= n;
    case 2:
        return n == 1 || d % n != n - 1u;
    case 3:
        return d % n < square_high_ticks(n);
    default: /* 4, 5: a one-tick low strobe at terminal count */
        return c->terminal || d != n;
    }
}

/* First tick after t at which OUT changes, or NEVER. */
static u64 next_change(const struct pit_counter *c, u64 t)
{
    if (!c->running)
        return NEVER;
    u64 d = elapsed(c, t), n = c->start, dd;
    switch (c->mode) {
    case 0:
    case 1:
        if (c->terminal || d >= n)
            return NEVER;
        dd = n;
        break;
    case 2:
        if (n == 1)
            return NEVER;
        dd = d - d % n + (d % n < n - 1 ? n - 1 : n);
        break;
    case 3: {
        u64 high = square_high_ticks(n);
        if (high == n)
            return NEVER; /* N = 1 */
        dd = d - d % n + (d % n < high ? high : n);
        break;
    }
    default:
        if (c->terminal || d > n)
            return NEVER;
        dd = d < n ? n : n + 1;
        break;
    }
    return c->load_tick + dd;
}

/* ---- counter 0 -> IRQ0 ---- */
static void set_irq(struct pit *p, bool level)
{
    p->irq_level = level;
    machine_set_irq(p->m, 0, level);
}

/* Brings IRQ0 up to date at tick t and arms the timer for the next change of OUT0. If
 * the timer ran late and OUT0 rose and fell again meanwhile, the rising edge is still
 * given to the interrupt controllers. */
static void irq_update(struct pit *p, u64 t, bool look_back)
{
    struct pit_counter *c = &p->c[0];
    sync(c, t);
    if (!p->irq_connected) {
        clock_timer_disarm(&p->m->clock, p->timer);
        return;
    }
    bool rose = false;
    if (look_back) {
        u64 e1 = next_change(c, p->irq_eval_tick);
        if (e1 <= t) {
            rose = out_at(c, e1);
            u64 e2 = rose ? NEVER : next_change(c, e1);
            rose = rose || (e2 <= t && out_at(c, e2));
        }
    }
    bool out = out_at(c, t);
    if (rose) {
        if (p->irq_level)
            set_irq(p, false);
        set_irq(p, true);
    }
    if (out != p->irq_level)
        set_irq(p, out);
    p->irq_eval_tick = t;
    u64 next = next_change(c, t);
    if (next == NEVER)
        clock_timer_disarm(&p->m->clock, p->timer);
    else
        clock_timer_arm(&p->m->clock, p->timer, ticks_to_ns(next, PIT_HZ));
}

static void irq_timer(void *opaque, u64 now_ns)
{
    struct pit *p = opaque;
    irq_update(p, ns_to_ticks(now_ns, PIT_HZ), true);
}

void pit_connect_irq(struct pit *p, bool connected)
{
    if (connected == p->irq_connected)
        return;
    if (!connected && p->irq_level)
        set_irq(p, false);
    p->irq_connected = connected;
    irq_update(p, now_tick(p), false);
}

bool pit_out(struct pit *p, int counter)
{
    if (counter < 0 || counter > 2)
        return false;
    u64 t = now_tick(p);
    sync(&p->c[counter], t);
    return out_at(&p->c[counter], t);
}

/* ---- counting element control ---- */
static void freeze(struct pit_counter *c, u64 t)
{
    if (!c->running)
        return;
    c->frozen = value_at(c, t);
    c->out_frozen = out_at(c, t);
    if ((c->mode == 0 || c->mode == 4) && elapsed(c, t) >= c->start)
        c->terminal = true;
    c->running = false;
}

static void load(struct pit_counter *c, u64 t, u32 start)
{
    c->running = true;
    c->load_tick = t + 1;
    c->start = start;
    c->next_pending = false;
}

static void set_gate(struct pit_counter *c, bool gate, u64 t)
{
    sync(c, t);
    bool rising = gate && !c->gate;
    c->gate = gate;
    if (!c->count)
        return; /* no count written: nothing counts */
    switch (c->mode) {
    case 0:
    case 4:
        /* gate low suspends counting; high resumes from where it stopped */
        if (!gate)
            freeze(c, t);
        else if (!c->running) {
            load(c, t, c->frozen);
            c->load_tick = t; /* resuming needs no load pulse */
        }
        break;
    case 1:
    case 5:
        /* a rising gate (re)triggers: OUT goes low (mode 1) and N counts down */
        if (rising) {
            c->terminal = false;
            load(c, t, c->count);
            c->null_until = t + 1;
        }
        break;
    default:
        /* gate low stops counting with OUT high; rising reloads N */
        if (!gate) {
            freeze(c, t);
            c->out_frozen = true;
            c->next_pending = false;
        } else if (rising) {
            load(c, t, c->count);
        }
        break;
    }
}

/* A complete count N was written at tick t. */
static void count_written(struct pit_counter *c, u32 n, u64 t)
{
    sync(c, t);
    bool was_counting = c->count && c->running;
    c->count = n;
    c->null_until = t + 1;
    switch (c->mode) {
    case 0:
    case 4:
        c->terminal = false;
        load(c, t, n);
        if (!c->gate) {
            c->running = false;
            c->frozen = n;
            c->out_frozen = c->mode == 4;
        }
        break;
    case 1:
    case 5:
        c->null_until = NEVER; /* loaded by the next trigger */
        break;
    default:
        if (was_counting) {
            /* the current cycle ends first */
            u64 d = elapsed(c, t);
            c->next_pending = true;
            c->next_count = n;
            c->next_tick = c->load_tick + d - d % c->start + c->start;
            c->null_until = c->next_tick;
        } else if (c->gate) {
            load(c, t, n);
        } else {
            c->frozen = n;
            c->out_frozen = true;
        }
        break;
    }
}

static u16 to_bcd(u32 v)
{
    return (u16)((v % 10) | (v / 10 % 10) << 4 | (v / 100 % 10) << 8 | (v / 1000 % 10) << 12);
}

static u32 from_bcd(u16 v)
{
    /* digits above 9 are taken at face value, as a BCD counter would misbehave anyway */
    return (v & 0xf) + ((v >> 4) & 0xf) * 10 + ((v >> 8) & 0xf) * 100 + ((v >> 12) & 0xf) * 1000u;
}

static u16 read_value(const struct pit_counter *c, u64 t)
{
    u32 v = value_at(c, t);
    return c->bcd ? to_bcd(v) : (u16)v;
}

static u8 status_byte(const struct pit_counter *c, u64 t)
{
    return (u8)((out_at(c, t) ? 0x80 : 0) | (t < c->null_until ? 0x40 : 0) | c->access << 4 |
                c->mode << 1 | (c->bcd ? 1 : 0));
}

/* ---- ports 0x40-0x43 ---- */
static void write_counter(struct pit *p, int i, u8 v)
{
    struct pit_counter *c = &p->c[i];
    u64 t = now_tick(p);
    u16 raw;
    switch (c->access) {
    case ACCESS_LSB:
        raw = v;
        break;
    case ACCESS_MSB:
        raw = (u16)(v << 8);
        break;
    default:
        if (!c->write_msb) {
            c->write_lsb = v;
            c->write_msb = true;
            if (c->mode == 0) {
                /* mode 0: writing the first byte stops the count */
                sync(c, t);
                freeze(c, t);
                c->out_frozen = false;
            }
            return;
        }
        c->write_msb = false;
        raw = (u16)(c->write_lsb | v << 8);
        break;
    }
    u32 n = c->bcd ? from_bcd(raw) : raw;
    count_written(c, n ? n : modulus(c), t);
    if (i == 0)
        irq_update(p, t, false);
}

static u8 read_counter(struct pit *p, int i)
{
    struct pit_counter *c = &p->c[i];
    u64 t = now_tick(p);
    sync(c, t);
    if (c->status_latched) {
        c->status_latched = false;
        return c->status;
    }
    u16 v = c->count_latched ? c->latch : read_value(c, t);
    u8 byte;
    switch (c->access) {
    case ACCESS_LSB:
        byte = (u8)v;
        c->count_latched = false;
        break;
    case ACCESS_MSB:
        byte = (u8)(v >> 8);
        c->count_latched = false;
        break;
    default:
        byte = c->read_msb ? (u8)(v >> 8) : (u8)v;
        if (c->read_msb)
            c->count_latched = false;
        c->read_msb = !c->read_msb;
        break;
    }
    return byte;
}

static void latch_count(struct pit_counter *c, u64 t)
{
    if (c->count_latched)
        return; /* a second latch before the first is read is ignored */
    sync(c, t);
    c->latch = read_value(c, t);
    c->count_latched = true;
    c->read_msb = false;
}

static void control_word(struct pit *p, u8 v)
{
    u64 t = now_tick(p);
    int sel = v >> 6;
    if (sel == 3) {
        /* read-back: bit 5 clear latches counts, bit 4 clear latches status */
        for (int i = 0; i < 3; i++) {
            struct pit_counter *c = &p->c[i];
            if (!(v & (2 << i)))
                continue;
            sync(c, t);
            if (!(v & 0x20))
                latch_count(c, t);
            if (!(v & 0x10) && !c->status_latched) {
                c->status = status_byte(c, t);
                c->status_latched = true;
            }
        }
        return;
    }
    struct pit_counter *c = &p->c[sel];
    u8 access = (v >> 4) & 3;
    if (access == ACCESS_LATCH) {
        latch_count(c, t);
        return;
    }
    sync(c, t);
    freeze(c, t);
    u8 mode = (v >> 1) & 7;
    c->mode = mode > 5 ? mode - 4 : mode; /* 6 and 7 are modes 2 and 3 */
    c->access = access;
    c->bcd = v & 1;
    c->count = 0;
    c->running = false;
    c->terminal = false;
    c->next_pending = false;
    c->out_frozen = c->mode != 0; /* mode 0 starts with OUT low, the others high */
    c->null_until = NEVER;
    c->write_msb = c->read_msb = false;
    if (sel == 0)
        irq_update(p, t, false);
}

static u64 pit_read(void *opaque, u64 offset, unsigned size)
{
    struct pit *p = opaque;
    (void)size;
    if (offset < 3)
        return read_counter(p, (int)offset);
    return 0xff; /* the control word register cannot be read */
}

static void pit_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct pit *p = opaque;
    (void)size;
    if (offset < 3)
        write_counter(p, (int)offset, (u8)value);
    else if (offset == 3)
        control_word(p, (u8)value);
}

/* ---- port 0x61 ---- */
static u64 port_b_read(void *opaque, u64 offset, unsigned size)
{
    struct pit *p = opaque;
    (void)offset;
    (void)size;
    u64 t = now_tick(p);
    sync(&p->c[2], t);
    bool refresh = (t / REFRESH_TICKS) & 1;
    return p->port_b | (refresh ? 0x10 : 0) | (out_at(&p->c[2], t) ? 0x20 : 0);
}

static void port_b_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct pit *p = opaque;
    (void)offset;
    (void)size;
    /* bits 0-3: gate 2, speaker data, parity and I/O channel check enables */
    p->port_b = (u8)value & 0x0f;
    set_gate(&p->c[2], value & 1, now_tick(p));
}

static void power_on(struct pit *p)
{
    memset(p->c, 0, sizeof(p->c));
    p->port_b = 0;
    for (int i = 0; i < 3; i++) {
        struct pit_counter *c = &p->c[i];
        c->gate = i != 2; /* gates 0 and 1 are tied high; gate 2 is port 0x61 bit 0 */
        c->access = ACCESS_WORD;
        c->out_frozen = false; /* undefined at power-up; low matches IRQ0's line */
        c->null_until = NEVER;
    }
}

void pit_reset(struct pit *p)
{
    power_on(p);
    clock_timer_disarm(&p->m->clock, p->timer);
    if (p->irq_level)
        set_irq(p, false);
    p->irq_eval_tick = now_tick(p);
}

struct pit *pit_create(struct machine *m)
{
    struct pit *p = calloc(1, sizeof(*p));
    if (!p)
        nestor_panic("out of memory");
    p->m = m;
    power_on(p);
    p->irq_connected = true;
    p->timer = clock_timer_new(&m->clock, irq_timer, p);
    bus_register(&m->io, PIT_PORT, 4, pit_read, pit_write, p, "pit");
    bus_register(&m->io, PORT_B, 1, port_b_read, port_b_write, p, "port-b");
    return p;
}

void pit_destroy(struct pit *p)
{
    clock_timer_disarm(&p->m->clock, p->timer);
    free(p);
}

/* ---- state ---- */
#define F(m) STATE_FIELD(struct pit_counter, m)
static const struct state_field pit_counter_fields[] = {
    F(mode), F(access), F(bcd), F(gate), F(count), F(running), F(load_tick), F(start),
    F(terminal), F(frozen), F(out_frozen), F(null_until), F(next_pending), F(next_count),
    F(next_tick), F(write_msb), F(write_lsb), F(read_msb), F(count_latched), F(latch),
    F(status_latched), F(status),
};
#undef F
static const struct state_desc pit_counter_desc =
    STATE_DESC("pit_counter", 1, struct pit_counter, pit_counter_fields);
static const struct state_field pit_fields[] = {
    STATE_NOT_STATE(struct pit, m), STATE_STRUCT(struct pit, c, pit_counter_desc), STATE_FIELD(struct pit, port_b),
    STATE_FIELD(struct pit, irq_connected), STATE_FIELD(struct pit, irq_level),
    STATE_FIELD(struct pit, irq_eval_tick), STATE_NOT_STATE(struct pit, timer),
};

static int pit_post_load(void *obj, char *err, size_t errlen)
{
    struct pit *p = obj;
    for (int i = 0; i < 3; i++) {
        const struct pit_counter *c = &p->c[i];
        if (c->mode > 5 || c->access < 1 || c->access > 3 || c->count > 0x10000 ||
            c->start > 0x10000 || c->next_count > 0x10000 || (c->running && c->start == 0)) {
            return nestor_err(err, errlen, "impossible state of counter %d", i);
        }
    }
    return 0;
}

static const struct state_desc pit_state_desc =
    STATE_DESC("pit", 1, struct pit, pit_fields, .post_load = pit_post_load);

void pit_state_register(struct pit *p, struct state_registry *r)
{
    state_register(r, &pit_state_desc, 0, p);
}

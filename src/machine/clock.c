/* Virtual time and timers. */
#include "machine/clock.h"
#include "machine/state.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Real-time mode: while making up for excluded host time, guest time runs this many
 * times slower than host time. */
#define SLOW_DIVISOR 4u

u64 clock_host_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
}

void clock_init(struct vclock *k, bool deterministic)
{
    memset(k, 0, sizeof(*k));
    k->deterministic = deterministic;
    k->ns_per_kinsn = 1000; /* deterministic mode: 1 ns per instruction (1000 MIPS) */
    k->host_start_ns = clock_host_ns();
    for (int i = 0; i < CLOCK_MAX_TIMERS; i++)
        k->t[i].deadline_ns = CLOCK_NEVER;
}

u64 clock_now(const struct vclock *k)
{
    if (k->deterministic)
        return k->det_ns;
    u64 host = clock_host_ns() - k->host_start_ns;
    if (host < k->hold_until_ns)
        return k->hold_ns + (host - k->hold_start_ns) / SLOW_DIVISOR;
    return host - k->stolen_ns;
}

void clock_exclude_host_time(struct vclock *k, u64 ns)
{
    if (k->deterministic || ns == 0)
        return;
    /* host - stolen_ns would now lie below what the guest may have read already. Guest
     * time must neither step back nor stand still (consecutive TSC reads differ), so
     * from here it runs at 1/SLOW_DIVISOR of the host's rate until it meets
     * host - stolen_ns: v + (t - h) / D = t - S at t = (D (v + S) - h) / (D - 1). */
    u64 h = clock_host_ns() - k->host_start_ns;
    u64 v = clock_now(k);
    k->stolen_ns += ns;
    k->hold_start_ns = h;
    k->hold_ns = v;
    k->hold_until_ns = (SLOW_DIVISOR * (v + k->stolen_ns) - h) / (SLOW_DIVISOR - 1);
}

void clock_advance_insns(struct vclock *k, u64 insns)
{
    if (k->deterministic)
        k->det_ns += insns * k->ns_per_kinsn / 1000;
}

void clock_advance_to(struct vclock *k, u64 t)
{
    if (k->deterministic && t > k->det_ns)
        k->det_ns = t;
}

int clock_timer_new(struct vclock *k, timer_fn fn, void *opaque)
{
    for (int i = 0; i < CLOCK_MAX_TIMERS; i++)
        if (!k->t[i].used) {
            k->t[i] = (struct clock_timer){ CLOCK_NEVER, fn, opaque, true };
            if (i >= k->ntimers)
                k->ntimers = i + 1;
            return i;
        }
    nestor_panic("out of virtual timers");
}

void clock_timer_arm(struct vclock *k, int id, u64 deadline_ns) { k->t[id].deadline_ns = deadline_ns; }
void clock_timer_disarm(struct vclock *k, int id) { k->t[id].deadline_ns = CLOCK_NEVER; }

u64 clock_next_deadline(const struct vclock *k)
{
    u64 d = CLOCK_NEVER;
    for (int i = 0; i < k->ntimers; i++)
        if (k->t[i].used && k->t[i].deadline_ns < d)
            d = k->t[i].deadline_ns;
    return d;
}

int clock_run_timers(struct vclock *k)
{
    int ran = 0;
    u64 now = clock_now(k);
    for (int i = 0; i < k->ntimers; i++) {
        struct clock_timer *t = &k->t[i];
        if (t->used && t->deadline_ns <= now) {
            t->deadline_ns = CLOCK_NEVER; /* the callback re-arms periodic timers */
            t->fn(t->opaque, now);
            ran++;
        }
    }
    return ran;
}

void clock_set_now(struct vclock *k, u64 ns)
{
    if (k->deterministic) {
        k->det_ns = ns;
        return;
    }
    u64 host = clock_host_ns();
    k->host_start_ns = host - ns; /* host time since start = ns from here */
    k->stolen_ns = 0;
    k->hold_start_ns = k->hold_until_ns = k->hold_ns = 0;
}

/* ---- state: the time and every timer's deadline (the timers themselves are created
 * by their owners in the same order on every machine of a configuration) ---- */
#define F(m) STATE_FIELD(struct vclock, m)
#define N(m) STATE_NOT_STATE(struct vclock, m)
static const struct state_field clock_fields[] = {
    N(deterministic), /* the configuration's (-icount) */
    N(ns_per_kinsn), N(det_ns), N(host_start_ns), N(stolen_ns), N(hold_start_ns),
    N(hold_until_ns), N(hold_ns), /* the time: clock_now() in the variable part */
    N(t), N(ntimers),
};
#undef F
#undef N

static void clock_save(void *obj, struct state_buf *b)
{
    struct vclock *k = obj;
    state_put_u64(b, clock_now(k));
    state_put_u32(b, (u32)k->ntimers);
    for (int i = 0; i < k->ntimers; i++) {
        state_put_u8(b, k->t[i].used);
        state_put_u64(b, k->t[i].deadline_ns);
    }
}

static int clock_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct vclock *k = obj;
    u64 now = state_get_u64(c);
    u32 n = state_get_u32(c);
    if (n != (u32)k->ntimers) {
        return nestor_err(err, errlen, "%u timers in the file, %d on this machine", n, k->ntimers);
    }
    for (int i = 0; i < k->ntimers && !c->bad; i++) {
        bool used = state_get_u8(c);
        u64 deadline = state_get_u64(c);
        if (used != k->t[i].used) {
            return nestor_err(err, errlen, "timer %d is %s in the file", i, used ? "in use" : "free");
        }
        k->t[i].deadline_ns = deadline;
    }
    clock_set_now(k, now);
    return 0;
}

static const struct state_desc clock_state_desc =
    STATE_DESC("clock", 1, struct vclock, clock_fields, .save = clock_save, .load = clock_load);

void clock_state_register(struct vclock *k, struct state_registry *r)
{
    state_register(r, &clock_state_desc, 0, k);
}

/* The virtual clock behind the TSC and every timer. In deterministic mode time advances
 * only with retired instructions (fixed nanoseconds per instruction), so a run is
 * repeatable; otherwise it follows the host's monotonic clock. */
#ifndef NESTOR_MACHINE_CLOCK_H
#define NESTOR_MACHINE_CLOCK_H

#include "common.h"

#define CLOCK_MAX_TIMERS 64
#define CLOCK_NEVER (~0ull)

typedef void (*timer_fn)(void *opaque, u64 now_ns);

struct clock_timer {
    u64 deadline_ns; /* CLOCK_NEVER when disarmed */
    timer_fn fn;
    void *opaque;
    bool used;
};

struct vclock {
    bool deterministic;
    u64 ns_per_kinsn;   /* deterministic: nanoseconds per 1000 instructions */
    u64 det_ns;         /* deterministic: current time */
    u64 host_start_ns;  /* real time: host monotonic time at start */
    u64 idle_skip_ns;   /* time skipped while every vCPU idled (deterministic) */
    struct clock_timer t[CLOCK_MAX_TIMERS];
    int ntimers;
};

void clock_init(struct vclock *k, bool deterministic);
u64 clock_now(const struct vclock *k);
/* Deterministic mode: account for instructions retired. */
void clock_advance_insns(struct vclock *k, u64 insns);
/* Jump to time t (deterministic mode idle skip); no-op in real-time mode. */
void clock_advance_to(struct vclock *k, u64 t);
int clock_timer_new(struct vclock *k, timer_fn fn, void *opaque);
void clock_timer_arm(struct vclock *k, int id, u64 deadline_ns);
void clock_timer_disarm(struct vclock *k, int id);
/* Earliest armed deadline, or CLOCK_NEVER. */
u64 clock_next_deadline(const struct vclock *k);
/* Runs every expired timer callback; returns how many ran. */
int clock_run_timers(struct vclock *k);
u64 clock_host_ns(void);

#endif

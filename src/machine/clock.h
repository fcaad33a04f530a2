/* The virtual clock behind the TSC and every timer. In deterministic mode time advances
 * only with retired instructions (fixed nanoseconds per instruction), so a run is
 * repeatable; otherwise it follows the host's monotonic clock, less the time the host
 * kept nestor from running while its vCPUs had work (see clock_exclude_host_time). */
#ifndef NESTOR_MACHINE_CLOCK_H
#define NESTOR_MACHINE_CLOCK_H

#include "common.h"

#define CLOCK_MAX_TIMERS 512 /* per vCPU: the LAPIC timer, Xen's three */
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
    u64 stolen_ns;      /* real time: host time excluded, see clock_exclude_host_time */
    u64 hold_start_ns;  /* real time: from host time hold_start_ns (since start) until */
    u64 hold_until_ns;  /* hold_until_ns, guest time runs slow from hold_ns, making up */
    u64 hold_ns;        /* for excluded time without stepping back */
    struct clock_timer t[CLOCK_MAX_TIMERS];
    int ntimers;
};

void clock_init(struct vclock *k, bool deterministic);
u64 clock_now(const struct vclock *k);
/* Deterministic mode: account for instructions retired. */
void clock_advance_insns(struct vclock *k, u64 insns);
/* Jump to time t (deterministic mode idle skip); no-op in real-time mode. */
void clock_advance_to(struct vclock *k, u64 t);
/* Real-time mode: the host did not run nestor for ns nanoseconds while the vCPUs had
 * work (preemption by other host load). Guest time leaves them out, as it would for a
 * paused VM: a guest that cannot run must not see its own code take that long (soft
 * lockup and hrtimer hang reports, lost RTC ticks). Guest time never steps back nor
 * stands still: it runs slower until the excluded time is made up. No-op in
 * deterministic mode. */
void clock_exclude_host_time(struct vclock *k, u64 ns);
/* Sets the virtual time (a resumed pause, a restored machine): in real-time mode time
 * goes on from ns; in deterministic mode it is ns. */
void clock_set_now(struct vclock *k, u64 ns);
struct state_registry;
void clock_state_register(struct vclock *k, struct state_registry *r);
int clock_timer_new(struct vclock *k, timer_fn fn, void *opaque);
void clock_timer_arm(struct vclock *k, int id, u64 deadline_ns);
void clock_timer_disarm(struct vclock *k, int id);
/* Earliest armed deadline, or CLOCK_NEVER. */
u64 clock_next_deadline(const struct vclock *k);
/* Runs every expired timer callback; returns how many ran. */
int clock_run_timers(struct vclock *k);
u64 clock_host_ns(void);

#endif

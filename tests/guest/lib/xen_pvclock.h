/* The pvclock as a Xen guest reads it (Linux's pvclock_clocksource_read), for the -xen
 * tests. Include after <xen/xen.h> (struct vcpu_time_info). */
#ifndef NESTOR_TESTS_GUEST_XEN_PVCLOCK_H
#define NESTOR_TESTS_GUEST_XEN_PVCLOCK_H

#include "rt.h"

/* ticks to ns with Xen's scale: ((delta << shift) * mul) >> 32 */
static inline u64 pvclock_scale(u64 delta, u32 mul, signed char shift)
{
    delta = shift >= 0 ? delta << shift : delta >> -shift;
    return (u64)(((unsigned __int128)delta * mul) >> 32);
}

/* System time now, with the version protocol (retry while odd or changed), and the TSC
 * value it was computed from in *tsc */
static inline u64 pvclock_read_tsc(volatile struct vcpu_time_info *t, u64 *tsc)
{
    u32 v;
    u64 ns;
    do {
        v = t->version;
        asm volatile("" ::: "memory");
        *tsc = rdtsc();
        ns = t->system_time +
             pvclock_scale(*tsc - t->tsc_timestamp, t->tsc_to_system_mul, (signed char)t->tsc_shift);
        asm volatile("" ::: "memory");
    } while ((v & 1) || v != t->version);
    return ns;
}

#endif

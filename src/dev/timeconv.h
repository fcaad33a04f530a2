/* Conversions between virtual nanoseconds and the tick counts of the platform's fixed
 * clocks (PIT, PM timer, RTC divider, HPET). Private to src/dev. */
#ifndef NESTOR_DEV_TIMECONV_H
#define NESTOR_DEV_TIMECONV_H

#include "common.h"

#define NS_PER_SEC 1000000000ull

/* floor(a * b / c), saturated at ~0. */
static inline u64 muldiv64(u64 a, u64 b, u64 c)
{
    unsigned __int128 r = (unsigned __int128)a * b / c;
    return r > ~0ull ? ~0ull : (u64)r;
}

/* Ticks of an hz clock elapsed at time ns (the tick count changes at the first ns where
 * the clock has completed it). */
static inline u64 ns_to_ticks(u64 ns, u64 hz) { return muldiv64(ns, hz, NS_PER_SEC); }

/* The first nanosecond at which ns_to_ticks() reaches ticks (saturated at ~0). */
static inline u64 ticks_to_ns(u64 ticks, u64 hz)
{
    unsigned __int128 r = ((unsigned __int128)ticks * NS_PER_SEC + hz - 1) / hz;
    return r > ~0ull ? ~0ull : (u64)r;
}

#endif

/* A bare machine for unit tests of the platform devices: buses, a deterministic clock,
 * RAM size bookkeeping, no CPUs unless a test adds LAPICs. */
#ifndef NESTOR_TESTS_PLATFORM_FIXTURE_H
#define NESTOR_TESTS_PLATFORM_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "dev/platform.h"
#include "machine/machine.h"

static inline struct machine *fixture_machine(void)
{
    struct machine *m = calloc(1, sizeof(*m));
    if (!m)
        abort();
    bus_init(&m->io, "io");
    bus_init(&m->mmio, "mmio");
    clock_init(&m->clock, true);
    m->mem.ram_size = 512 * MiB;
    m->ncpus = 0;
    return m;
}

/* Advances virtual time to t, running every timer whose deadline passes, in order. */
static inline void run_until(struct machine *m, u64 t)
{
    for (;;) {
        u64 d = clock_next_deadline(&m->clock);
        if (d > t)
            break;
        clock_advance_to(&m->clock, d);
        clock_run_timers(&m->clock);
    }
    clock_advance_to(&m->clock, t);
    clock_run_timers(&m->clock);
}

static inline void advance(struct machine *m, u64 ns) { run_until(m, clock_now(&m->clock) + ns); }

static inline u8 inb(struct machine *m, u16 port) { return (u8)bus_read(&m->io, port, 1); }
static inline u16 inw(struct machine *m, u16 port) { return (u16)bus_read(&m->io, port, 2); }
static inline u32 inl(struct machine *m, u16 port) { return (u32)bus_read(&m->io, port, 4); }
static inline void outb(struct machine *m, u16 port, u8 v) { bus_write(&m->io, port, 1, v); }
static inline void outw(struct machine *m, u16 port, u16 v) { bus_write(&m->io, port, 2, v); }
static inline void outl(struct machine *m, u16 port, u32 v) { bus_write(&m->io, port, 4, v); }
static inline u32 mmio_rd32(struct machine *m, u64 a) { return (u32)bus_read(&m->mmio, a, 4); }
static inline u64 mmio_rd64(struct machine *m, u64 a) { return bus_read(&m->mmio, a, 8); }
static inline void mmio_wr32(struct machine *m, u64 a, u32 v) { bus_write(&m->mmio, a, 4, v); }
static inline void mmio_wr64(struct machine *m, u64 a, u64 v) { bus_write(&m->mmio, a, 8, v); }

#endif

/* Port-I/O and MMIO bus: devices register ranges; the machine routes guest exits to the
 * one owner of an address. An access nobody owns reads as all-ones and drops writes,
 * as on a PC. */
#ifndef NESTOR_MACHINE_BUS_H
#define NESTOR_MACHINE_BUS_H

#include "common.h"

struct vcpu_ctx; /* the accessing vCPU, for per-CPU devices like the LAPIC */

/* offset is relative to the start of the registered range; size is 1, 2, 4 or 8. */
typedef u64 (*bus_read_fn)(void *opaque, u64 offset, unsigned size);
typedef void (*bus_write_fn)(void *opaque, u64 offset, unsigned size, u64 value);

struct bus_range {
    u64 start;
    u64 len;
    bus_read_fn read;
    bus_write_fn write;
    void *opaque;
    const char *name;
    /* A range the guest places (a PCI BAR): it may overlap anything, and the fixed
     * ranges of the platform win where it does, as PCI decodes below the chipset. */
    bool overlay;
};

#define BUS_MAX_RANGES 64

struct bus {
    struct bus_range r[BUS_MAX_RANGES];
    int n;
    bool report_unowned; /* log accesses nobody owns (trace option) */
    const char *kind;    /* "io" or "mmio", for messages */
};

void bus_init(struct bus *b, const char *kind);
/* Registers a range; overlapping an existing range is a nestor bug (panics). */
void bus_register(struct bus *b, u64 start, u64 len, bus_read_fn rd, bus_write_fn wr,
                  void *opaque, const char *name);
/* Registers or removes a guest-placed range (see bus_range.overlay); removal names the
 * range by its start and opaque. */
void bus_register_overlay(struct bus *b, u64 start, u64 len, bus_read_fn rd, bus_write_fn wr,
                          void *opaque, const char *name);
void bus_unregister(struct bus *b, u64 start, const void *opaque);
const struct bus_range *bus_find(const struct bus *b, u64 addr);
u64 bus_read(struct bus *b, u64 addr, unsigned size);
void bus_write(struct bus *b, u64 addr, unsigned size, u64 value);

#endif

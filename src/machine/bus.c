/* Port-I/O and MMIO address decoding: one owner per address. */
#include "machine/bus.h"

#include <string.h>

void bus_init(struct bus *b, const char *kind)
{
    memset(b, 0, sizeof(*b));
    b->kind = kind;
}

void bus_register(struct bus *b, u64 start, u64 len, bus_read_fn rd, bus_write_fn wr,
                  void *opaque, const char *name)
{
    if (b->n >= BUS_MAX_RANGES)
        nestor_panic("%s bus full registering %s", b->kind, name);
    for (int i = 0; i < b->n; i++)
        if (!b->r[i].overlay && start < b->r[i].start + b->r[i].len && b->r[i].start < start + len)
            nestor_panic("%s range of %s overlaps %s", b->kind, name, b->r[i].name);
    b->r[b->n++] = (struct bus_range){ start, len, rd, wr, opaque, name, false };
}

void bus_register_overlay(struct bus *b, u64 start, u64 len, bus_read_fn rd, bus_write_fn wr,
                          void *opaque, const char *name)
{
    if (b->n >= BUS_MAX_RANGES)
        nestor_panic("%s bus full registering %s", b->kind, name);
    b->r[b->n++] = (struct bus_range){ start, len, rd, wr, opaque, name, true };
}

void bus_unregister(struct bus *b, u64 start, const void *opaque)
{
    for (int i = 0; i < b->n; i++) {
        if (b->r[i].start == start && b->r[i].opaque == opaque) {
            memmove(&b->r[i], &b->r[i + 1], (size_t)(b->n - i - 1) * sizeof b->r[0]);
            b->n--;
            return;
        }
    }
}

const struct bus_range *bus_find(const struct bus *b, u64 addr)
{
    const struct bus_range *overlay = NULL;
    for (int i = 0; i < b->n; i++) {
        if (addr - b->r[i].start < b->r[i].len) {
            if (!b->r[i].overlay)
                return &b->r[i];
            if (!overlay)
                overlay = &b->r[i];
        }
    }
    return overlay;
}

u64 bus_read(struct bus *b, u64 addr, unsigned size)
{
    const struct bus_range *r = bus_find(b, addr);
    if (!r || !r->read) {
        if (b->report_unowned)
            nestor_log("%s read of %u bytes at %#llx: no device", b->kind, size, (unsigned long long)addr);
        return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
    }
    return r->read(r->opaque, addr - r->start, size);
}

void bus_write(struct bus *b, u64 addr, unsigned size, u64 value)
{
    const struct bus_range *r = bus_find(b, addr);
    if (!r || !r->write) {
        if (b->report_unowned)
            nestor_log("%s write of %u bytes at %#llx = %#llx: no device", b->kind, size,
                       (unsigned long long)addr, (unsigned long long)value);
        return;
    }
    r->write(r->opaque, addr - r->start, size, value);
}

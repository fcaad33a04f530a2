/* QEMU's isa-debug-exit device (hw/misc/debugexit.c): a write of v to its ports ends the
 * run with exit status (v << 1) | 1, so a guest can never report 0 by accident. The
 * device covers iosize ports from iobase (nestor's own: 0xf4, 4 ports, as test kernels
 * configure QEMU's), and 1-, 2- and 4-byte writes all count. Reads return 0, as QEMU's
 * read handler does. */
#include "dev/dev.h"

#include <stdio.h> /* machine.h uses FILE */

#include "machine/machine.h"

static u64 debugexit_read(void *opaque, u64 offset, unsigned size)
{
    (void)opaque, (void)offset, (void)size;
    return 0;
}

static void debugexit_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    (void)offset;
    struct machine *m = opaque;
    u64 v = size >= 8 ? value : value & MASK(size * 8);
    /* A process keeps 8 bits of its exit status; QEMU's exit() does the same. */
    machine_request_stop(m, (int)(((v << 1) | 1) & 0xff));
}

int debugexit_create(struct machine *m, u16 port, u16 size)
{
    for (u32 p = port; p < (u32)port + size; p++) {
        const struct bus_range *r = bus_find(&m->io, p);
        if (r) {
            nestor_log("isa-debug-exit: port 0x%x belongs to %s already", p, r->name);
            return -1;
        }
    }
    if (size == 0 || (u32)port + size > 0x10000) {
        nestor_log("isa-debug-exit: iobase 0x%x with iosize 0x%x is not a range of I/O ports",
                   port, size);
        return -1;
    }
    bus_register(&m->io, port, size, debugexit_read, debugexit_write, m, "debug-exit");
    return 0;
}

/* QEMU's isa-debug-exit device (hw/misc/debugexit.c): a write of v to its port ends the
 * run with exit status (v << 1) | 1, so a guest can never report 0 by accident. The
 * port range is 4 bytes wide (QEMU's iosize=0x04, as test kernels configure it), so
 * 1-, 2- and 4-byte writes all count. Reads return 0, as QEMU's read handler does. */
#include "dev/dev.h"

#include <stdio.h> /* machine.h uses FILE */

#include "machine/machine.h"

#define DEBUGEXIT_PORTS 4

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

void debugexit_create(struct machine *m, u16 port)
{
    bus_register(&m->io, port, DEBUGEXIT_PORTS, debugexit_read, debugexit_write, m,
                 "debug-exit");
}

/* The Xen guest's PV devices as the command line asks for them, QEMU's spelling:
 *   -drive file=IMG,if=none,id=D[,format=raw][,readonly=on][,snapshot=on]
 *   -device xen-disk,drive=D,vdev=xvda[,logical_block_size=512|4096][,physical_block_size=N]
 *                    [,max-ring-page-order=0-4][,num-queues=1-16]
 *   -drive file=IMG,if=xen[,index=N]      (xen-disk at xvda, xvdb... by index)
 * made once xenstore exists (their backends are domain 0's), polled by the run loop. */
#ifndef NESTOR_MACHINE_XENDEV_H
#define NESTOR_MACHINE_XENDEV_H

#include <poll.h>
#include <stddef.h>

#include "common.h"

struct machine;

/* xen-disk's properties (besides id), for -device's checks */
#define XENDEV_DISK_PROPS \
    "drive", "vdev", "logical_block_size", "physical_block_size", "max-ring-page-order", "num-queues"

/* Checks the -drive options (before the machine is built): 0, or -1 with a message */
int xendev_check_drives(const struct machine *m);
/* Opens the images and adds the backends: 0, or -1 with a message */
int xendev_create(struct machine *m);
void xendev_destroy(struct machine *m);
/* Finished I/O gets answered (every round: cheap when nothing finished) */
void xendev_poll(struct machine *m);
/* The descriptors whose readiness means work for xendev_poll (the idle wait polls them
 * with the console), for the requests in flight: how many were filled in, at most max */
int xendev_pollfds(struct machine *m, struct pollfd *fds, int max);
/* false, with a message, while a backend holds what a saved state cannot carry */
bool xendev_savable(const struct machine *m, char *err, size_t errlen);

#endif

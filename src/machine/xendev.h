/* The Xen guest's PV devices as the command line asks for them, QEMU's spelling:
 *   -drive file=IMG,if=none,id=D[,format=raw][,readonly=on][,snapshot=on]
 *   -device xen-disk,drive=D,vdev=xvda[,logical_block_size=512|4096][,physical_block_size=N]
 *                    [,max-ring-page-order=0-4][,num-queues=1-16]
 *   -drive file=IMG,if=xen[,index=N]      (xen-disk at xvda, xvdb... by index)
 *   -netdev user,id=N[,hostfwd=tcp:[HOSTADDR]:PORT-[GUESTADDR]:PORT...][,restrict=on]
 *   -netdev tap,id=N,ifname=TAP
 *   -device xen-net-device,netdev=N[,mac=52:54:00:12:34:56][,vif=N][,queues=1-8]
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
#define XENDEV_NET_PROPS "netdev", "mac", "vif", "queues"

/* Checks the -drive and -netdev options (before the machine is built): 0, or -1 with a
 * message */
int xendev_check_options(const struct machine *m);
/* Opens the images and networks and adds the backends: 0, or -1 with a message */
int xendev_create(struct machine *m);
void xendev_destroy(struct machine *m);
/* Finished disk I/O gets answered, received frames go to guests that posted buffers
 * (every round: cheap when there is nothing) */
void xendev_poll(struct machine *m);
/* The descriptors the devices wait on (disks with I/O in flight, the networks'
 * sockets), at most max, and in *timeout_ms how long a wait may last for the networks'
 * timers (lowered, never raised; -1: no limit). The count filled in. */
int xendev_pollfds(struct machine *m, struct pollfd *fds, int max, int *timeout_ms);
/* After the poll, with the revents of what xendev_pollfds filled in */
void xendev_dispatch(struct machine *m, const struct pollfd *fds, int n);
/* Something outside the vCPUs may still wake them: disk I/O in flight, a network */
bool xendev_can_wake(const struct machine *m);
/* Finishes the disk I/O in flight and answers it: before a save or a migration's last
 * pass, so that the saved machine has no request half done */
void xendev_quiesce(struct machine *m);
/* Save and restore: every PV device's connection, after the Xen interface's sections */
struct state_registry;
void xendev_state_register(struct machine *m, struct state_registry *r);

#endif

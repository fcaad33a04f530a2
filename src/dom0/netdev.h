/* The host's end of a guest network, as QEMU's -netdev names them:
 *   user  QEMU's user networking, through libslirp (Debian's libslirp-dev, the library
 *         QEMU uses): the guest is 10.0.2.15 by DHCP behind a NAT to the host's
 *         network, the gateway 10.0.2.2 is the host (its loopback too), 10.0.2.3
 *         forwards DNS; hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT makes
 *         a host port reach the guest. No privileges needed.
 *   tap   a host TAP interface (ifname=), opened through /dev/net/tun: frames go to the
 *         host's network stack as they are (needs CAP_NET_ADMIN or a TAP the user owns).
 * Ethernet frames go in with netdev_send and come out through the receiver callback; the
 * run loop polls the descriptors netdev_pollfds gives and then calls netdev_dispatch. */
#ifndef NESTOR_DOM0_NETDEV_H
#define NESTOR_DOM0_NETDEV_H

#include <poll.h>
#include <stddef.h>

#include "common.h"

struct netdev;
struct opts;

/* From "-netdev TYPE,id=N,..." parsed (machine/opts.h): NULL with a message */
struct netdev *netdev_create(const struct opts *o, char *err, size_t errlen);
/* An in-process peer: frames from the guest go to send (tests, fuzzing); frames for the
 * guest come in with netdev_deliver. NULL if out of memory. */
struct netdev *netdev_create_peer(const char *id, void (*send)(void *opaque, const u8 *frame, size_t len),
                                  void *opaque);
void netdev_deliver(struct netdev *nd, const u8 *frame, size_t len);
void netdev_destroy(struct netdev *nd);
const char *netdev_id(const struct netdev *nd);

/* Frames for the guest go to rx (NULL: dropped) */
typedef void (*netdev_rx_fn)(void *opaque, const u8 *frame, size_t len);
void netdev_set_receiver(struct netdev *nd, netdev_rx_fn rx, void *opaque);
/* A frame from the guest to the network */
void netdev_send(struct netdev *nd, const u8 *frame, size_t len);

/* Descriptors to poll (at most max) and, in *timeout_ms, how long the poll may wait at
 * most for the netdev's timers (left alone if longer); the count filled in */
int netdev_pollfds(struct netdev *nd, struct pollfd *fds, int max, int *timeout_ms);
/* After the poll: fds/n are what netdev_pollfds filled in, with their revents */
void netdev_dispatch(struct netdev *nd, const struct pollfd *fds, int n);

#endif

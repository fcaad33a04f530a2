/* The PV network backend (netif, xen/io/netif.h): a guest NIC (Linux's xen-netfront)
 * connected to a host network (netdev.h), what Linux's xen-netback and QEMU's xen_nic
 * do in domain 0.
 *
 * Offered, as netfront negotiates them: the copying receive path (feature-rx-copy),
 * scatter-gather (frames of several slots both ways), checksum offload (the guest's
 * partial TCP/UDP checksums completed here, IPv4 and IPv6), TCP segmentation offload
 * (GSO TCPv4/TCPv6 frames of up to 64 KiB cut into segments here), split event
 * channels, multiple queues (received frames spread by flow). Data moves by grant copy.
 *
 * Hostile frontends: a frame with a bad grant, a slot outside its page, sizes that do not
 * add up, too many slots, a bad extra-info chain, is answered NETIF_RSP_ERROR slot by slot
 * and dropped; a ring whose producer index runs more than a ring ahead is not served
 * until the frontend reconnects. Frames for a guest that posted no receive buffers wait
 * in a bounded queue (then are dropped, as on a wire). */
#ifndef NESTOR_DOM0_NETBACK_H
#define NESTOR_DOM0_NETBACK_H

#include <stddef.h>

#include "common.h"

struct xen;
struct xenstore;
struct netdev;
struct netback;

struct netback_opts {
    struct netdev *netdev;  /* not owned */
    u32 devid;              /* the vif's number (0, 1...) */
    u8 mac[6];
    u32 max_queues;         /* 1-8 */
};

struct netback *netback_create(struct xen *x, struct xenstore *xs, const struct netback_opts *o,
                               char *err, size_t errlen);
void netback_destroy(struct netback *nb);
/* Frames waiting for receive buffers go to the guest if it posted some (the run loop
 * calls it after the network was polled) */
void netback_poll(struct netback *nb);
/* Save and restore: the connection (the Xen interface's sections hold its mappings and
 * ports), registered after them; instance: the NIC's place among the NICs */
struct state_registry;
void netback_state_register(struct netback *nb, struct state_registry *r, u32 instance);

/* ---- the transmit side's parsing (for unit tests and fuzzing as well) ---- */
/* One transmit slot (struct netif_tx_request, or an extra-info slot) as it came */
struct netif_slot {
    u32 gref;
    u16 offset, flags, id, size;
    u8 raw[12];   /* the slot's bytes (an extra-info slot is read from them) */
};
/* A frame's slots checked: total size, the GSO request if any. 0, or -1 with the reason
 * (bad sizes, a slot beyond its page, an extra-info chain that does not end, ...). */
struct netif_tx_frame {
    u32 size;           /* the frame's bytes (the first slot's size) */
    u32 nslots;         /* data slots */
    u32 first_extra, nextra;  /* extra-info slots follow the first data slot */
    u16 gso_size;       /* 0: none */
    u8 gso_type;
    bool csum_blank;
};
int netif_tx_check(const struct netif_slot *slots, u32 n, struct netif_tx_frame *f,
                   const char **why);

#endif

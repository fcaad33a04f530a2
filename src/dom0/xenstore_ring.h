/* The guest's xenstore ring: the shared page and event channel the toolstack gives a
 * Xen HVM/PVH domain (HVM_PARAM_STORE_PFN/_EVTCHN), pumped between the guest and the
 * store (xenstore.h). */
#ifndef NESTOR_DOM0_XENSTORE_RING_H
#define NESTOR_DOM0_XENSTORE_RING_H

#include "common.h"
#include "dom0/xenstore.h"

struct xen;
struct xenstore_ring;

/* Sets up the ring page and channel for store s (the special page, the guest's port
 * allocated for domain 0, both in the HVM parameters): NULL if out of memory. *pfn and
 * *guest_port: where the guest finds them (for its xenstore keys). */
struct xenstore_ring *xenstore_ring_create(struct xen *x, struct xenstore *s, u32 *pfn, u32 *guest_port);
void xenstore_ring_destroy(struct xenstore_ring *r);
/* Moves what can move: requests into the store, replies and events out (the guest
 * signalled, or the store has something for it); signals the guest if anything moved. */
void xenstore_ring_pump(struct xenstore_ring *r);

#endif

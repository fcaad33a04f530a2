/* The back end of a shared ring (xen/io/ring.h) over the guest's granted pages, for
 * every PV backend: the header's four indices in the first page, entries of one size
 * after it, spanning pages that need not be contiguous in the host (an entry may
 * straddle two). Requests are copied out before anything looks at them (the guest may
 * rewrite a slot at any time); a producer index more than a ring ahead of the responses
 * is the frontend breaking the protocol. */
#ifndef NESTOR_DOM0_RING_H
#define NESTOR_DOM0_RING_H

#include "common.h"

#define BACKRING_HEADER 64u
#define BACKRING_MAX_PAGES 16u

struct backring {
    u8 *page[BACKRING_MAX_PAGES];
    u32 npages;
    u32 entry;          /* bytes of an entry (the request/response union) */
    u32 nr_ents;        /* a power of two */
    u32 req_cons, rsp_prod_pvt;
};

/* Entries a ring of npages pages holds for entries of entry bytes (ring.h's __RING_SIZE) */
u32 backring_entries(u32 npages, u32 entry);
/* Attaches to pages already set up by the frontend (BACK_RING_ATTACH: the private
 * indices start at the ring's response index) */
void backring_attach(struct backring *r, u8 *const *pages, u32 npages, u32 entry);
/* New requests: how many wait (0 if none); -1 if the producer index is more than a ring
 * ahead of the responses (RING_REQUEST_PROD_OVERFLOW) */
long backring_pending(struct backring *r);
/* Copies request req_cons out and consumes it */
void backring_take(struct backring *r, void *buf);
/* Writes a response (len bytes, the rest of the entry untouched) at rsp_prod_pvt */
void backring_respond(struct backring *r, const void *rsp, u32 len);
/* RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: true if the frontend wants an event */
bool backring_push(struct backring *r);
/* RING_FINAL_CHECK_FOR_REQUESTS: asks for an event on the next request, then true if
 * one arrived meanwhile */
bool backring_final_check(struct backring *r);
/* Requests taken and not yet answered */
static inline u32 backring_outstanding(const struct backring *r)
{
    return r->req_cons - r->rsp_prod_pvt;
}

#endif

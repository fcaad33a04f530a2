/* XenStore: the store that a Xen toolstack and its backends keep in domain 0 (Xen's
 * tools/xenstore) and that a guest reaches over its ring page (HVM_PARAM_STORE_PFN and
 * _EVTCHN). nestor is that domain 0: this is the store, its wire protocol
 * (xen/io/xs_wire.h: every message, Xen's errno names in error replies), the
 * permissions and quotas xenstored applies to a domU, transactions with conflict
 * detection, watches, and the host-side interface nestor's backends use (as the
 * privileged domain 0).
 *
 * Connections: the guest's (its domain id, unprivileged) speaks the wire protocol
 * through xenstore_guest_input/xenstore_guest_output, which the ring transport
 * (xenstore_ring.c) feeds from and drains to the shared page; the host's calls below
 * act as domain 0 directly. */
#ifndef NESTOR_DOM0_XENSTORE_H
#define NESTOR_DOM0_XENSTORE_H

#include <stddef.h>
#include <stdio.h>

#include "common.h"

struct xenstore;
struct state_registry;

/* xenstored's default quotas for an unprivileged domain (xenstored_core.c, Xen 4.17):
 * what a guest may hold before its requests fail (ENOSPC, E2BIG). */
struct xenstore_limits {
    u32 nodes;          /* nodes the domain owns (quota-nb-entry-per-domain) */
    u32 entry_size;     /* bytes of a node's value (quota-max-entry-size) */
    u32 watches;        /* per connection (quota-nb-watch-per-domain) */
    u32 transactions;   /* open at once (quota-max-transaction) */
    u32 perms;          /* entries of a node's permission list (quota-nb-perms-per-node) */
    u32 outstanding;    /* bytes of replies and watch events waiting for the guest */
};
extern const struct xenstore_limits xenstore_default_limits;

/* A store for guest domain domid. NULL if out of memory. */
struct xenstore *xenstore_create(u16 domid, const struct xenstore_limits *limits);
void xenstore_destroy(struct xenstore *s);
/* The guest's domain id */
u16 xenstore_domid(const struct xenstore *s);

/* ---- the guest's connection (the wire protocol) ----
 * input takes bytes the guest sent (any split: a message may arrive in pieces) and
 * handles every whole message; it returns the number of bytes taken, which is less
 * than len while replies wait for the guest to read them (flow control), or -1 once the
 * connection is broken (a message over XENSTORE_PAYLOAD_MAX: a protocol error, after
 * which nothing more is served). output copies up to cap bytes of replies and watch
 * events for the guest and consumes them; pending says how many wait. */
long xenstore_guest_input(struct xenstore *s, const void *data, size_t len);
size_t xenstore_guest_output(struct xenstore *s, void *buf, size_t cap);
size_t xenstore_guest_pending(const struct xenstore *s);
bool xenstore_guest_broken(const struct xenstore *s);
/* The transport found the guest misusing it: nothing more is served until a reset. */
void xenstore_guest_break(struct xenstore *s);
/* fn runs when replies or watch events wait for the guest outside its own input (a
 * host write fired one of its watches): the transport pushes them out. */
void xenstore_set_output_ready(struct xenstore *s, void (*fn)(void *opaque), void *opaque);
/* The guest reset its connection (its ring was reinitialised): its watches and
 * transactions go, partial messages too. */
void xenstore_guest_reset(struct xenstore *s);

/* ---- domain 0's access (backends, the toolstack), privileged ----
 * Results are 0 or a negative errno (-ENOENT, -EINVAL, -ENOMEM...). Paths are absolute.
 * A change fires the guest's and the host's watches as any write does. */
int xenstore_write(struct xenstore *s, const char *path, const void *value, size_t len);
int xenstore_printf(struct xenstore *s, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The value, NUL-terminated into buf (at most cap-1 bytes): its length, -ENOENT, or
 * -E2BIG when it does not fit. */
long xenstore_read(struct xenstore *s, const char *path, char *buf, size_t cap);
int xenstore_mkdir(struct xenstore *s, const char *path);
int xenstore_rm(struct xenstore *s, const char *path);
/* Permissions as xenstored's strings: "n0", "r1", "w5", "b7" (the first names the owner
 * and what everyone else may do). */
int xenstore_set_perms(struct xenstore *s, const char *path, const char *const *perms, int n);
/* A host watch on path (and everything under it): fn runs with the path that changed
 * after each change, once the message that made it is handled. Returns an id or -1. */
typedef void (*xenstore_watch_fn)(void *opaque, const char *path);
int xenstore_watch(struct xenstore *s, const char *path, xenstore_watch_fn fn, void *opaque);
void xenstore_unwatch(struct xenstore *s, int id);

/* The tree with values and permissions, one node a line (-d xenstore). */
void xenstore_dump(const struct xenstore *s, FILE *out);

/* What a Xen toolstack (libxl) writes for an HVM or PVH domain before it starts. */
struct xenstore_domain {
    const char *name;
    bool pvh;
    int ncpus;
    u64 ram_bytes;
    u32 store_port, store_pfn;
    u32 console_port, console_pfn;
};
int xenstore_write_domain(struct xenstore *s, const struct xenstore_domain *d);

/* Save and restore: the tree, the guest's watches, transactions and partial messages
 * (host watches are the backends', registered again when the machine is built). */
void xenstore_state_register(struct xenstore *s, struct state_registry *r);

#endif

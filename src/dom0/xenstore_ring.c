/* The xenstore ring (xen/io/xs_wire.h's struct xenstore_domain_interface): the shared
 * page at SPECIALPAGE_XENSTORE and its event channel, between the guest's xenbus and
 * nestor's store. Requests are taken from req[] as far as the store accepts them (it
 * stops while the guest leaves replies unread), replies and watch events go into rsp[]
 * as far as there is room; each side's indices are the other's to trust only as far as
 * a ring's worth: a guest whose indices say more (or that sends a message over
 * XENSTORE_PAYLOAD_MAX) gets the error field set (XENSTORE_ERROR_RINGIDX / _PROTO) and
 * is served no more, as xenstored does. The server features are reconnection (the guest
 * sets connection to XENSTORE_RECONNECT: the connection starts over) and the error
 * field. */
#include "dom0/xenstore_ring.h"

#include <stdlib.h>
#include <string.h>

#include <xen/io/xs_wire.h>
#include <xen/hvm/params.h>

#include "hv/xen/xen.h"

struct xenstore_ring {
    struct xen *x;
    struct xenstore *s;
    struct xenstore_domain_interface *intf;
    u32 host_port;
    /* a pump runs: what asks for another (a host watch's callback writing, the store
     * queueing an event) makes it go round again instead of starting inside it */
    bool pumping, again;
};

static u32 load(const XENSTORE_RING_IDX *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store(XENSTORE_RING_IDX *p, u32 v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void fail(struct xenstore_ring *r, u32 error)
{
    struct xenstore_domain_interface *in = r->intf;
    if (!xenstore_guest_broken(r->s))
        nestor_log("xenstore: the guest's ring is %s: no longer served",
                   error == XENSTORE_ERROR_RINGIDX ? "corrupt (indices beyond its size)"
                                                    : "misused (a message over the payload limit)");
    xenstore_guest_break(r->s);
    __atomic_store_n(&in->error, error, __ATOMIC_RELEASE);
}

void xenstore_ring_pump(struct xenstore_ring *r)
{
    if (r->pumping) {
        r->again = true;
        return;
    }
    r->pumping = true;
    struct xenstore_domain_interface *in = r->intf;
    bool moved = false;
    r->again = false;
    if (__atomic_load_n(&in->connection, __ATOMIC_ACQUIRE) == XENSTORE_RECONNECT) {
        xenstore_guest_reset(r->s);
        in->req_cons = in->req_prod = in->rsp_cons = in->rsp_prod = 0;
        in->error = XENSTORE_ERROR_NONE;
        __atomic_store_n(&in->connection, XENSTORE_CONNECTED, __ATOMIC_RELEASE);
        moved = true;
    }
    char buf[XENSTORE_RING_SIZE];
    while (!xenstore_guest_broken(r->s)) {
        bool progress = false;
        /* requests: the guest's bytes between our consumer and its producer */
        u32 cons = load(&in->req_cons), prod = load(&in->req_prod);
        if (prod - cons > XENSTORE_RING_SIZE) {
            fail(r, XENSTORE_ERROR_RINGIDX);
            moved = true;
            break;
        }
        u32 n = prod - cons;
        for (u32 i = 0; i < n; i++)
            buf[i] = in->req[MASK_XENSTORE_IDX(cons + i)];
        if (n) {
            long taken = xenstore_guest_input(r->s, buf, n);
            if (taken < 0) {
                fail(r, XENSTORE_ERROR_PROTO);
                moved = true;
                break;
            }
            if (taken) {
                store(&in->req_cons, cons + (u32)taken);
                progress = true;
            }
        }
        /* replies: as much as the guest has room for */
        cons = load(&in->rsp_cons);
        prod = load(&in->rsp_prod);
        if (prod - cons > XENSTORE_RING_SIZE) {
            fail(r, XENSTORE_ERROR_RINGIDX);
            moved = true;
            break;
        }
        u32 room = XENSTORE_RING_SIZE - (prod - cons);
        if (room && xenstore_guest_pending(r->s)) {
            u32 out = (u32)xenstore_guest_output(r->s, buf, room);
            for (u32 i = 0; i < out; i++)
                in->rsp[MASK_XENSTORE_IDX(prod + i)] = buf[i];
            store(&in->rsp_prod, prod + out);
            progress = true;
        }
        if (!progress && !r->again)
            break;
        r->again = false;
        moved |= progress;
    }
    r->pumping = false;
    if (moved)
        xen_evtchn_host_notify(r->x, r->host_port);
}

static void ring_notify(void *opaque, u32 host_port)
{
    (void)host_port;
    xenstore_ring_pump(opaque);
}

static void output_ready(void *opaque)
{
    xenstore_ring_pump(opaque);
}

struct xenstore_ring *xenstore_ring_create(struct xen *x, struct xenstore *s, u32 *pfn, u32 *guest_port)
{
    struct xenstore_ring *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->x = x;
    r->s = s;
    u8 *page;
    if (xen_special_ring(x, XEN_SPECIALPAGE_XENSTORE, HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN,
                         ring_notify, r, &page, &r->host_port)) {
        free(r);
        return NULL;
    }
    r->intf = (struct xenstore_domain_interface *)page;
    r->intf->server_features = XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR;
    xenstore_set_output_ready(s, output_ready, r);
    *pfn = (u32)xen_special_pfn(XEN_SPECIALPAGE_XENSTORE);
    *guest_port = xen_evtchn_guest_port(x, r->host_port);
    return r;
}

void xenstore_ring_destroy(struct xenstore_ring *r)
{
    free(r);
}

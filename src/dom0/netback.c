/* The PV network backend (see netback.h). The shape follows Linux's xen-netback: a vif
 * with its queues, each a transmit and a receive ring with their event channels (one
 * shared, or split); transmitted frames gathered from their slots by grant copy,
 * finished (checksum, segmentation) and sent to the host network; received frames kept
 * in a bounded queue until the guest posts buffers, then copied into them. */
#include "dom0/netback.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/netif.h>
#include <xen/io/xenbus.h>
#include <xen/grant_table.h>

#include "dom0/netdev.h"
#include "dom0/netpkt.h"
#include "dom0/ring.h"
#include "dom0/xenbus.h"
#include "dom0/xenstore.h"
#include "hv/xen/xen.h"
#include "machine/state.h"

#define MAX_QUEUES 8u
#define MAX_TX_SLOTS 64u        /* a frame's slots (Linux's netfront sends up to 18) */
#define RX_BACKLOG 256u         /* frames waiting for the guest's receive buffers, a queue */
#define TX_ENTRY 12u            /* union of netif_tx_request, extra info and response */
#define RX_ENTRY 8u

struct rxframe {
    u8 *data;
    u32 len;
};

struct netqueue {
    struct netback *nb;
    u32 tx_handle, rx_handle, tx_gref, rx_gref;
    u32 tx_guest, rx_guest;  /* the guest's ports */
    struct backring tx, rx;
    bool tx_mapped, rx_mapped;
    int tx_port, rx_port;    /* the same port when the channel is not split */
    bool halted;
    struct rxframe backlog[RX_BACKLOG];
    u32 head, count;
};

struct net_loaded;

struct netback {
    struct net_loaded *load;  /* a state being loaded, until post_load */
    struct xen *x;
    struct xenstore *xs;
    struct netdev *nd;
    struct xenbus_dev *xd;
    u8 mac[6];
    u32 max_queues, nqueues;
    struct netqueue *q[MAX_QUEUES];
    u8 *frame;               /* the transmit side's assembly buffer */
};

/* ---- transmit: checking a frame's slots ---- */
int netif_tx_check(const struct netif_slot *s, u32 n, struct netif_tx_frame *f, const char **why)
{
    memset(f, 0, sizeof(*f));
    *why = NULL;
    if (n == 0) {
        *why = "no slots";
        return -1;
    }
    f->size = s[0].size;
    f->csum_blank = s[0].flags & NETTXF_csum_blank;
    u32 i = 1;
    if (s[0].flags & NETTXF_extra_info) {
        f->first_extra = 1;
        for (bool more = true; more; i++) {
            if (i >= n) {
                *why = "the extra-info chain runs past the frame";
                return -1;
            }
            const u8 *e = s[i].raw;
            u8 type = e[0], flags = e[1];
            more = flags & XEN_NETIF_EXTRA_FLAG_MORE;
            f->nextra++;
            if (type == XEN_NETIF_EXTRA_TYPE_GSO) {
                u16 size;
                memcpy(&size, e + 2, 2);
                u8 gtype = e[4];
                if (size == 0 || (gtype != XEN_NETIF_GSO_TYPE_TCPV4 && gtype != XEN_NETIF_GSO_TYPE_TCPV6)) {
                    *why = "a GSO request without a size or of an unknown type";
                    return -1;
                }
                f->gso_size = size;
                f->gso_type = gtype;
            } else if (type != XEN_NETIF_EXTRA_TYPE_MCAST_ADD && type != XEN_NETIF_EXTRA_TYPE_MCAST_DEL &&
                       type != XEN_NETIF_EXTRA_TYPE_HASH) {
                *why = "an extra-info slot of an unknown type";
                return -1;
            }
        }
    }
    /* the data slots: the first, and those its more_data chain names */
    u32 rest = 0;
    f->nslots = 1;
    bool more = s[0].flags & NETTXF_more_data;
    for (; more; i++) {
        if (i >= n) {
            *why = "the frame's slots run past the ring";
            return -1;
        }
        if (s[i].offset + (u32)s[i].size > 4096) {
            *why = "a slot runs past its page";
            return -1;
        }
        rest += s[i].size;
        more = s[i].flags & NETTXF_more_data;
        f->nslots++;
    }
    if (rest > f->size) {
        *why = "the slots hold more than the frame's size";
        return -1;
    }
    if (s[0].offset + (f->size - rest) > 4096) {
        *why = "the first slot runs past its page";
        return -1;
    }
    if (f->size < NETPKT_ETH_HLEN) {
        *why = "a frame shorter than an Ethernet header";
        return -1;
    }
    return 0;
}

/* ---- receive ---- */
static struct netqueue *rx_queue_for(struct netback *nb, const u8 *frame, size_t len)
{
    if (nb->nqueues <= 1)
        return nb->nqueues ? nb->q[0] : NULL;
    /* a flow's frames on one queue: the addresses and ports, hashed */
    struct netpkt_layout l;
    u32 h = 0;
    if (netpkt_parse(frame, len, &l) == 0) {
        u32 alen = l.ipv6 ? 32 : 8, aoff = l.l3 + (l.ipv6 ? 8 : 12);
        for (u32 i = 0; i < alen; i++)
            h = h * 31 + frame[aoff + i];
        for (u32 i = 0; i < 4; i++)
            h = h * 31 + frame[l.l4 + i];
    }
    return nb->q[h % nb->nqueues];
}

static void notify(struct netqueue *q, int port)
{
    if (port > 0)
        xen_evtchn_host_notify(q->nb->x, (u32)port);
}

/* Frames of the backlog into the guest's posted buffers, as many as fit */
static void rx_deliver(struct netqueue *q)
{
    if (!q->rx.nr_ents || q->halted)
        return;
    for (;;) {
        while (q->count) {
            struct rxframe *fr = &q->backlog[q->head];
            u32 need = (fr->len + 4095) / 4096;
            long avail = backring_pending(&q->rx);
            if (avail < 0) {
                nestor_log("xen vif %u: the receive ring's index is broken: halting the queue",
                           q->nb->xd->devid);
                q->halted = true;
                return;
            }
            if ((u32)avail < need)
                break;
            for (u32 k = 0, off = 0; k < need; k++) {
                u8 req[RX_ENTRY];
                backring_take(&q->rx, req);
                u16 id;
                u32 gref;
                memcpy(&id, req, 2);
                memcpy(&gref, req + 4, 4);
                u32 chunk = fr->len - off < 4096 ? fr->len - off : 4096;
                struct netif_rx_response rsp = { .id = id, .offset = 0,
                                                 .flags = k + 1 < need ? NETRXF_more_data : 0 };
                rsp.status = xen_gnttab_host_copy_to(q->nb->x, gref, 0, fr->data + off, chunk) == GNTST_okay
                             ? (s16)chunk : NETIF_RSP_ERROR;
                backring_respond(&q->rx, &rsp, sizeof(rsp));
                off += chunk;
            }
            free(fr->data);
            q->head = (q->head + 1) % RX_BACKLOG;
            q->count--;
        }
        if (backring_push(&q->rx))
            notify(q, q->rx_port);
        /* waiting for buffers: an event when the frontend posts more */
        if (!q->count || !backring_final_check(&q->rx))
            break;
    }
}

static void netdev_rx(void *opaque, const u8 *frame, size_t len)
{
    struct netback *nb = opaque;
    struct netqueue *q = rx_queue_for(nb, frame, len);
    if (!q || len > 65535 + NETPKT_ETH_HLEN || q->count == RX_BACKLOG)
        return; /* not connected, or the guest does not keep up: dropped, as on a wire */
    u8 *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, frame, len);
    q->backlog[(q->head + q->count) % RX_BACKLOG] = (struct rxframe){ copy, (u32)len };
    q->count++;
    rx_deliver(q);
}

/* ---- transmit ---- */
static void netdev_emit(void *opaque, const u8 *frame, size_t len)
{
    netdev_send(opaque, frame, len);
}

static void tx_respond(struct netqueue *q, const struct netif_slot *s, u32 n, const struct netif_tx_frame *f,
                       s16 status)
{
    for (u32 i = 0; i < n; i++) {
        bool extra = f && i >= f->first_extra && i < f->first_extra + f->nextra && f->nextra;
        struct netif_tx_response rsp = { .id = s[i].id, .status = extra ? NETIF_RSP_NULL : status };
        backring_respond(&q->tx, &rsp, sizeof(rsp));
    }
}

/* One frame's slots gathered, finished and sent: the status of its slots */
static s16 tx_frame(struct netqueue *q, const struct netif_slot *s, const struct netif_tx_frame *f)
{
    struct netback *nb = q->nb;
    u32 rest = 0, data[MAX_TX_SLOTS], nd = 0;
    for (u32 i = 0; i < f->nslots + f->nextra; i++)
        if (!(f->nextra && i >= f->first_extra && i < f->first_extra + f->nextra))
            data[nd++] = i;
    for (u32 k = 1; k < nd; k++)
        rest += s[data[k]].size;
    u32 off = 0;
    for (u32 k = 0; k < nd; k++) {
        const struct netif_slot *sl = &s[data[k]];
        u32 len = k == 0 ? f->size - rest : sl->size;
        if (len && xen_gnttab_host_copy_from(nb->x, sl->gref, sl->offset, nb->frame + off, len) != GNTST_okay)
            return NETIF_RSP_ERROR;
        off += len;
    }
    if (f->gso_size) {
        /* TCP segmentation offload: the segments go out with their own checksums; a
         * frame that is not the TCP the GSO type says is dropped (as netback drops it) */
        netpkt_segment(nb->frame, f->size, f->gso_size, netdev_emit, nb->nd);
        return NETIF_RSP_OKAY;
    }
    if (f->csum_blank && netpkt_checksum_complete(nb->frame, f->size))
        return NETIF_RSP_OKAY; /* no checksum to finish: dropped, the slots are done */
    netdev_send(nb->nd, nb->frame, f->size);
    return NETIF_RSP_OKAY;
}

static void tx_run(struct netqueue *q)
{
    if (!q->tx.nr_ents || q->halted)
        return;
    struct netif_slot slots[MAX_TX_SLOTS];
    for (;;) {
        long n = backring_pending(&q->tx);
        if (n < 0) {
            nestor_log("xen vif %u: the transmit ring's index is broken: halting the queue",
                       q->nb->xd->devid);
            q->halted = true;
            return;
        }
        while (n > 0) {
            /* a frame's slots: the first, its extra-info chain, its more_data chain */
            u32 k = 0;
            bool extra = false, more = true;
            while (k < (u32)n && k < MAX_TX_SLOTS) {
                struct netif_slot *sl = &slots[k];
                backring_take(&q->tx, sl->raw);
                memcpy(&sl->gref, sl->raw, 4);
                memcpy(&sl->offset, sl->raw + 4, 2);
                memcpy(&sl->flags, sl->raw + 6, 2);
                memcpy(&sl->id, sl->raw + 8, 2);
                memcpy(&sl->size, sl->raw + 10, 2);
                k++;
                if (k == 1) {
                    extra = sl->flags & NETTXF_extra_info;
                    more = sl->flags & NETTXF_more_data;
                } else if (extra) {
                    extra = sl->raw[1] & XEN_NETIF_EXTRA_FLAG_MORE;
                } else {
                    more = sl->flags & NETTXF_more_data;
                }
                if (!extra && !more)
                    break;
            }
            n -= k;
            struct netif_tx_frame f;
            const char *why;
            if (extra || more) {
                /* the frame's chain runs past what the frontend produced or past the
                 * slots a frame may have: its slots are answered as errors */
                tx_respond(q, slots, k, NULL, NETIF_RSP_ERROR);
                continue;
            }
            if (netif_tx_check(slots, k, &f, &why)) {
                tx_respond(q, slots, k, NULL, NETIF_RSP_ERROR);
                continue;
            }
            tx_respond(q, slots, k, &f, tx_frame(q, slots, &f));
        }
        if (backring_push(&q->tx))
            notify(q, q->tx_port);
        if (!backring_final_check(&q->tx))
            break;
    }
}

static void tx_notify(void *opaque, u32 port)
{
    struct netqueue *q = opaque;
    (void)port;
    tx_run(q);
    if (q->rx_port == q->tx_port)
        rx_deliver(q); /* one channel for both directions */
}

static void rx_notify(void *opaque, u32 port)
{
    (void)port;
    rx_deliver(opaque);
}

void netback_poll(struct netback *nb)
{
    for (u32 i = 0; i < nb->nqueues; i++)
        if (nb->q[i]->count)
            rx_deliver(nb->q[i]);
}

/* ---- connecting ---- */
static void queue_release(struct netqueue *q)
{
    for (u32 i = 0; i < q->count; i++)
        free(q->backlog[(q->head + i) % RX_BACKLOG].data);
    free(q);
}

static void queue_free(struct netback *nb, struct netqueue *q)
{
    if (q->rx_port > 0 && q->rx_port != q->tx_port)
        xen_evtchn_host_close(nb->x, (u32)q->rx_port);
    if (q->tx_port > 0)
        xen_evtchn_host_close(nb->x, (u32)q->tx_port);
    if (q->tx_mapped)
        xen_gnttab_host_unmap(nb->x, q->tx_handle);
    if (q->rx_mapped)
        xen_gnttab_host_unmap(nb->x, q->rx_handle);
    queue_release(q);
}

static void net_disconnect(void *dev, struct xenbus_dev *xd)
{
    struct netback *nb = dev;
    (void)xd;
    for (u32 i = 0; i < nb->nqueues; i++)
        queue_free(nb, nb->q[i]);
    nb->nqueues = 0;
}

static int map_ring(struct netback *nb, const char *key, u32 *handle, u32 *grefp, bool *mapped, u8 **page,
                    char *msg, size_t msglen)
{
    u32 gref;
    if (xenbus_read_frontend_u32(nb->xd, key, &gref)) {
        nestor_err(msg, msglen, "reading %s", key);
        return -EINVAL;
    }
    struct xen_grant_mapping m;
    int rc = xen_gnttab_host_map(nb->x, gref, true, handle, &m);
    if (rc != GNTST_okay) {
        nestor_err(msg, msglen, "mapping %s (grant %u): status %d", key, gref, rc);
        return -EINVAL;
    }
    *mapped = true;
    *grefp = gref;
    if (m.offset || m.length != 4096) {
        nestor_err(msg, msglen, "%s grants part of a page", key);
        return -EINVAL;
    }
    *page = m.page;
    return 0;
}

static int bind_port(struct netback *nb, const char *key, xen_host_notify_fn fn, void *opaque, int *port,
                     u32 *guest_port, char *msg, size_t msglen)
{
    u32 guest;
    if (xenbus_read_frontend_u32(nb->xd, key, &guest))
        return -ENOENT;
    *guest_port = guest;
    *port = xen_evtchn_host_bind(nb->x, guest, fn, opaque);
    if (*port < 0) {
        nestor_err(msg, msglen, "binding %s %u", key, guest);
        return -EINVAL;
    }
    return 0;
}

static int queue_connect(struct netback *nb, struct netqueue *q, const char *dir, char *msg, size_t msglen)
{
    char key[64];
    const char *sep = *dir ? "/" : "";
    u8 *page;
    q->nb = nb;
    q->tx_port = q->rx_port = -1;
    snprintf(key, sizeof(key), "%s%stx-ring-ref", dir, sep);
    if (map_ring(nb, key, &q->tx_handle, &q->tx_gref, &q->tx_mapped, &page, msg, msglen))
        return -EINVAL;
    backring_attach(&q->tx, &page, 1, TX_ENTRY);
    snprintf(key, sizeof(key), "%s%srx-ring-ref", dir, sep);
    if (map_ring(nb, key, &q->rx_handle, &q->rx_gref, &q->rx_mapped, &page, msg, msglen))
        return -EINVAL;
    backring_attach(&q->rx, &page, 1, RX_ENTRY);
    /* split channels (feature-split-event-channels), else one for both */
    snprintf(key, sizeof(key), "%s%sevent-channel-tx", dir, sep);
    int rc = bind_port(nb, key, tx_notify, q, &q->tx_port, &q->tx_guest, msg, msglen);
    if (rc == 0) {
        snprintf(key, sizeof(key), "%s%sevent-channel-rx", dir, sep);
        if (bind_port(nb, key, rx_notify, q, &q->rx_port, &q->rx_guest, msg, msglen)) {
            if (!*msg)
                nestor_err(msg, msglen, "event-channel-tx without event-channel-rx");
            return -EINVAL;
        }
        return 0;
    }
    if (rc != -ENOENT)
        return rc;
    snprintf(key, sizeof(key), "%s%sevent-channel", dir, sep);
    rc = bind_port(nb, key, tx_notify, q, &q->tx_port, &q->tx_guest, msg, msglen);
    if (rc) {
        if (!*msg)
            nestor_err(msg, msglen, "reading %s", key);
        return -EINVAL;
    }
    q->rx_port = q->tx_port;
    q->rx_guest = q->tx_guest;
    return 0;
}

static int net_connect(void *dev, struct xenbus_dev *xd, char *msg, size_t msglen)
{
    struct netback *nb = dev;
    u32 v = 0;
    if (xenbus_read_frontend_u32(xd, "request-rx-copy", &v) || v != 1) {
        nestor_err(msg, msglen, "the frontend does not ask for the copying receive path (rx-flip is not offered)");
        return -EOPNOTSUPP;
    }
    u32 nq = 1;
    if (xenbus_read_frontend_u32(xd, "multi-queue-num-queues", &nq) == 0 && (nq == 0 || nq > nb->max_queues)) {
        nestor_err(msg, msglen, "%u queues asked for, at most %u offered", nq, nb->max_queues);
        return -EINVAL;
    }
    for (u32 i = 0; i < nq; i++) {
        struct netqueue *q = calloc(1, sizeof(*q));
        if (!q) {
            net_disconnect(nb, xd);
            nestor_err(msg, msglen, "out of memory");
            return -ENOMEM;
        }
        nb->q[nb->nqueues++] = q;
        char dir[24] = "";
        if (nq > 1)
            snprintf(dir, sizeof(dir), "queue-%u", i);
        int rc = queue_connect(nb, q, dir, msg, msglen);
        if (rc) {
            net_disconnect(nb, xd);
            return rc;
        }
    }
    for (u32 i = 0; i < nb->nqueues; i++)
        tx_run(nb->q[i]);
    return 0;
}

static int net_probe(void *dev, struct xenbus_dev *xd)
{
    struct netback *nb = dev;
    int rc = 0;
#define W(key, ...) do { if (!rc) rc = xenbus_write_backend(xd, key, __VA_ARGS__); } while (0)
    W("feature-sg", "1");
    W("feature-gso-tcpv4", "1");
    W("feature-gso-tcpv6", "1");
    W("feature-ipv6-csum-offload", "1");
    W("feature-rx-copy", "1");
    W("feature-rx-flip", "0");
    W("feature-split-event-channels", "1");
    W("multi-queue-max-queues", "%u", nb->max_queues);
#undef W
    return rc;
}

static const struct xenbus_backend_ops net_ops = {
    .type = "vif", .probe = net_probe, .connect = net_connect, .disconnect = net_disconnect,
};

struct netback *netback_create(struct xen *x, struct xenstore *xs, const struct netback_opts *o,
                               char *err, size_t errlen)
{
    if (o->max_queues < 1 || o->max_queues > MAX_QUEUES) {
        nestor_err(err, errlen, "queues: 1 to %u", MAX_QUEUES);
        return NULL;
    }
    struct netback *nb = calloc(1, sizeof(*nb));
    if (!nb || !(nb->frame = malloc(NETPKT_MAX_FRAME))) {
        free(nb);
        nestor_err(err, errlen, "out of memory");
        return NULL;
    }
    nb->x = x;
    nb->xs = xs;
    nb->nd = o->netdev;
    nb->max_queues = o->max_queues;
    memcpy(nb->mac, o->mac, 6);
    char mac[24], handle[12];
    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", o->mac[0], o->mac[1], o->mac[2],
             o->mac[3], o->mac[4], o->mac[5]);
    snprintf(handle, sizeof(handle), "%u", o->devid);
    /* what libxl writes for a vif */
    const struct xenbus_key fe[] = { { "handle", handle }, { "mac", mac }, { "trusted", "1" } };
    const struct xenbus_key be[] = {
        { "handle", handle }, { "mac", mac }, { "type", "vif" }, { "script", "" },
    };
    nb->xd = xenbus_backend_create(xs, &net_ops, nb, o->devid, fe, (int)ARRAY_SIZE(fe), be,
                                   (int)ARRAY_SIZE(be), err, errlen);
    if (!nb->xd) {
        free(nb->frame);
        free(nb);
        return NULL;
    }
    netdev_set_receiver(o->netdev, netdev_rx, nb);
    return nb;
}

void netback_destroy(struct netback *nb)
{
    if (!nb)
        return;
    netdev_set_receiver(nb->nd, NULL, NULL);
    free(nb->load);
    xenbus_backend_destroy(nb->xd);
    free(nb->frame);
    free(nb);
}

/* ---- state ----
 * The connection: the handshake's state, then each queue's two rings (grant, dom0's
 * mapping handle, private indices), its channels (dom0's ports and the guest's) and
 * whether its rings broke. Every slot taken is answered at once, so nothing is in
 * flight; frames waiting for receive buffers are the network's, not the machine's, and
 * are not saved (a restored guest has lost them, as on a wire). */
struct net_loaded_queue {
    u32 tx_gref, tx_handle, rx_gref, rx_handle, tx_port, rx_port, tx_guest, rx_guest;
    u32 tx_cons, tx_rsp, rx_cons, rx_rsp;
    bool halted;
};
struct net_loaded {
    u32 state, nqueues;
    bool connected;
    struct net_loaded_queue q[MAX_QUEUES];
};

static void net_save(void *obj, struct state_buf *sb)
{
    struct netback *nb = obj;
    state_put_u32(sb, (u32)nb->xd->state);
    state_put_u8(sb, nb->xd->connected);
    state_put_u32(sb, nb->nqueues);
    for (u32 i = 0; i < nb->nqueues; i++) {
        const struct netqueue *q = nb->q[i];
        const u32 v[] = { q->tx_gref, q->tx_handle, q->rx_gref, q->rx_handle, (u32)q->tx_port,
                          (u32)q->rx_port, q->tx_guest, q->rx_guest, q->tx.req_cons, q->tx.rsp_prod_pvt,
                          q->rx.req_cons, q->rx.rsp_prod_pvt };
        for (size_t k = 0; k < ARRAY_SIZE(v); k++)
            state_put_u32(sb, v[k]);
        state_put_u8(sb, q->halted);
    }
}

static int net_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct netback *nb = obj;
    struct net_loaded *l = calloc(1, sizeof(*l));
    if (!l)
        return nestor_err(err, errlen, "out of memory");
    free(nb->load);
    nb->load = l;
    l->state = state_get_u32(c);
    l->connected = state_get_u8(c);
    l->nqueues = state_get_u32(c);
    if (l->state > XenbusStateReconfigured || l->nqueues > nb->max_queues || (l->nqueues && !l->connected))
        return nestor_err(err, errlen, "impossible network backend state");
    for (u32 i = 0; i < l->nqueues; i++) {
        struct net_loaded_queue *q = &l->q[i];
        u32 *v[] = { &q->tx_gref, &q->tx_handle, &q->rx_gref, &q->rx_handle, &q->tx_port, &q->rx_port,
                     &q->tx_guest, &q->rx_guest, &q->tx_cons, &q->tx_rsp, &q->rx_cons, &q->rx_rsp };
        for (size_t k = 0; k < ARRAY_SIZE(v); k++)
            *v[k] = state_get_u32(c);
        q->halted = state_get_u8(c);
        if (q->tx_cons != q->tx_rsp || q->rx_cons != q->rx_rsp)
            return nestor_err(err, errlen, "the network backend had slots taken and not answered");
    }
    return c->bad ? nestor_err(err, errlen, "truncated network backend state") : 0;
}

static int net_attach_ring(struct netback *nb, struct backring *r, u32 handle, u32 gref, u32 entry,
                           u32 cons, u32 rsp)
{
    struct xen_grant_mapping m;
    if (xen_gnttab_host_mapping(nb->x, handle, gref, true, &m) != GNTST_okay || m.offset || m.length != 4096)
        return -1;
    backring_attach(r, &m.page, 1, entry);
    r->req_cons = cons;
    r->rsp_prod_pvt = rsp;
    return 0;
}

static int net_post_load(void *obj, char *err, size_t errlen)
{
    struct netback *nb = obj;
    struct net_loaded *l = nb->load;
    if (!l)
        return 0;
    for (u32 i = 0; i < nb->nqueues; i++)
        queue_release(nb->q[i]);
    nb->nqueues = 0;
    nb->xd->state = (int)l->state;
    nb->xd->connected = l->connected;
    int rc = 0;
    for (u32 i = 0; i < l->nqueues && !rc; i++) {
        const struct net_loaded_queue *lq = &l->q[i];
        struct netqueue *q = calloc(1, sizeof(*q));
        if (!q) {
            rc = nestor_err(err, errlen, "out of memory");
            break;
        }
        nb->q[nb->nqueues++] = q;
        q->nb = nb;
        q->tx_gref = lq->tx_gref, q->tx_handle = lq->tx_handle;
        q->rx_gref = lq->rx_gref, q->rx_handle = lq->rx_handle;
        q->tx_mapped = q->rx_mapped = true;
        q->tx_port = (int)lq->tx_port, q->rx_port = (int)lq->rx_port;
        q->tx_guest = lq->tx_guest, q->rx_guest = lq->rx_guest;
        q->halted = lq->halted;
        if (net_attach_ring(nb, &q->tx, q->tx_handle, q->tx_gref, TX_ENTRY, lq->tx_cons, lq->tx_rsp) ||
            net_attach_ring(nb, &q->rx, q->rx_handle, q->rx_gref, RX_ENTRY, lq->rx_cons, lq->rx_rsp))
            rc = nestor_err(err, errlen, "a network backend ring is not mapped");
        else if (q->tx_port == q->rx_port
                     ? q->tx_guest != q->rx_guest ||
                           xen_evtchn_host_attach(nb->x, lq->tx_port, q->tx_guest, tx_notify, q)
                     : xen_evtchn_host_attach(nb->x, lq->tx_port, q->tx_guest, tx_notify, q) ||
                           xen_evtchn_host_attach(nb->x, lq->rx_port, q->rx_guest, rx_notify, q))
            rc = nestor_err(err, errlen, "a network backend queue's event channel is not bound");
    }
    free(nb->load);
    nb->load = NULL;
    return rc;
}

#define N(x) STATE_NOT_STATE(struct netback, x)
static const struct state_field net_fields[] = {
    N(load), N(x), N(xs), N(nd), N(xd), N(mac), N(max_queues), N(nqueues), N(q), N(frame),
};
#undef N
static const struct state_desc net_state_desc =
    STATE_DESC("xen.vif", 1, struct netback, net_fields, .save = net_save, .load = net_load,
               .post_load = net_post_load);

void netback_state_register(struct netback *nb, struct state_registry *r, u32 instance)
{
    state_register(r, &net_state_desc, instance, nb);
}

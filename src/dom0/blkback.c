/* The PV block backend (see blkback.h). The shape follows Linux's xen-blkback: a
 * backend device with its queues, each queue a shared ring and an event channel, its
 * requests copied out of the ring before anything is looked at (the guest may rewrite
 * the slot), checked, run on the disk image and answered in the order they finish. */
#include "dom0/blkback.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/blkif.h>
#include <xen/io/protocols.h>
#include <xen/io/xenbus.h>
#include <xen/grant_table.h>

#include "dom0/diskimage.h"
#include "dom0/ring.h"
#include "dom0/xenbus.h"
#include "dom0/xenstore.h"
#include "hv/xen/xen.h"
#include "machine/state.h"

#define MAX_QUEUES 16u
#define MAX_RING_ORDER 4u
#define MAX_RING_PAGES (1u << MAX_RING_ORDER)
#define MAX_PERSISTENT 256u /* persistent grants a queue keeps mapped */
#define SEGS_PER_INDIRECT_PAGE (4096u / 8u)

/* ---- the two request layouts ----
 * x86_64's is the public header's; x86_32's is the same structure as an i386 compiler
 * lays it out (64-bit members 4-byte aligned, no padding before id), as Linux's blkback
 * spells it with packed structures. */
struct blkif_layout {
    const char *protocol;
    u32 entry;                          /* union of request and response */
    u32 response;                       /* bytes of a response */
    u8 id, sector, seg;                 /* read/write */
    u8 discard_sectors;                 /* discard (flag at 1, id and sector as rw) */
    u8 ind_id, ind_sector, ind_handle, ind_grefs; /* indirect (nr_segments at 2) */
};

static const struct blkif_layout layouts[] = {
    [BLKIF_ABI_X86_64] = {
        XEN_IO_PROTO_ABI_X86_64, sizeof(union blkif_sring_entry), sizeof(struct blkif_response),
        offsetof(struct blkif_request, id), offsetof(struct blkif_request, sector_number),
        offsetof(struct blkif_request, seg), offsetof(struct blkif_request_discard, nr_sectors),
        offsetof(struct blkif_request_indirect, id), offsetof(struct blkif_request_indirect, sector_number),
        offsetof(struct blkif_request_indirect, handle), offsetof(struct blkif_request_indirect, indirect_grefs),
    },
    [BLKIF_ABI_X86_32] = { XEN_IO_PROTO_ABI_X86_32, 108, 12, 4, 12, 20, 20, 4, 12, 20, 24 },
};

int blkif_abi_by_protocol(const char *protocol)
{
    for (size_t i = 0; i < ARRAY_SIZE(layouts); i++)
        if (!strcmp(protocol, layouts[i].protocol))
            return (int)i;
    return -1;
}

u32 blkif_entry_size(enum blkif_abi abi)
{
    return layouts[abi].entry;
}

u32 blkif_ring_entries(enum blkif_abi abi, u32 npages)
{
    return backring_entries(npages, layouts[abi].entry);
}

static u16 get16(const u8 *p) { u16 v; memcpy(&v, p, 2); return v; }
static u32 get32(const u8 *p) { u32 v; memcpy(&v, p, 4); return v; }
static u64 get64(const u8 *p) { u64 v; memcpy(&v, p, 8); return v; }

static void decode_segment(const u8 *p, struct blkif_segment *s)
{
    s->gref = get32(p);
    s->first_sect = p[4];
    s->last_sect = p[5];
}

void blkif_decode(enum blkif_abi abi, const u8 *e, struct blkif_req *r)
{
    const struct blkif_layout *l = &layouts[abi];
    memset(r, 0, sizeof(*r));
    r->operation = r->op = e[0];
    r->handle = get16(e + 2);
    switch (e[0]) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE:
    case BLKIF_OP_FLUSH_DISKCACHE:
    case BLKIF_OP_WRITE_BARRIER:
        r->nseg = e[1];
        r->id = get64(e + l->id);
        r->sector = get64(e + l->sector);
        for (u32 i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST && i < r->nseg; i++)
            decode_segment(e + l->seg + 8 * i, &r->seg[i]);
        break;
    case BLKIF_OP_DISCARD:
        r->discard_flags = e[1];
        r->id = get64(e + l->id);
        r->sector = get64(e + l->sector);
        r->discard_sectors = get64(e + l->discard_sectors);
        break;
    case BLKIF_OP_INDIRECT:
        /* only reads and writes come indirect; anything else stays BLKIF_OP_INDIRECT,
         * which no check lets through */
        r->indirect = true;
        r->operation = e[1];
        if (e[1] == BLKIF_OP_READ || e[1] == BLKIF_OP_WRITE)
            r->op = e[1];
        r->nseg = get16(e + 2);
        r->id = get64(e + l->ind_id);
        r->sector = get64(e + l->ind_sector);
        r->handle = get16(e + l->ind_handle);
        r->nindirect = (u8)((r->nseg + SEGS_PER_INDIRECT_PAGE - 1) / SEGS_PER_INDIRECT_PAGE);
        if (r->nindirect > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST)
            r->nindirect = BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST;
        for (u32 i = 0; i < r->nindirect; i++)
            r->indirect_gref[i] = get32(e + l->ind_grefs + 4 * i);
        break;
    default:
        /* the id is where every layout has it for the response */
        r->id = get64(e + l->id);
        break;
    }
}

int blkif_check_request(const struct blkif_req *r, const struct blkif_segment *seg, u64 sectors,
                        u32 sector_size, u64 *nsect)
{
    u64 n = 0;
    bool indirect = r->indirect;
    if (r->op == BLKIF_OP_DISCARD) {
        n = r->discard_sectors;
    } else {
        u32 max = indirect ? BLKIF_MAX_INDIRECT_SEGMENTS : BLKIF_MAX_SEGMENTS_PER_REQUEST;
        /* a flush may come without data; a read or write may not */
        if (r->nseg > max || (r->nseg == 0 && r->op != BLKIF_OP_FLUSH_DISKCACHE))
            return -EINVAL;
        for (u32 i = 0; i < r->nseg; i++) {
            if (seg[i].last_sect >= 4096 / 512 || seg[i].first_sect > seg[i].last_sect)
                return -EINVAL;
            n += (u64)(seg[i].last_sect - seg[i].first_sect + 1);
        }
    }
    /* Linux's blkback: the start and the length in whole logical sectors */
    u64 unit = sector_size / 512;
    /* a request without data (an empty flush) has no range to check: its sector number
     * is whatever the frontend left there */
    if (n && (((r->sector | n) & (unit - 1)) || r->sector > sectors || n > sectors - r->sector))
        return -ERANGE;
    *nsect = n;
    return 0;
}

void blkif_encode_response(enum blkif_abi abi, u8 *e, u64 id, u8 operation, s16 status)
{
    /* id at 0, operation at 8, status at 10 in both layouts; x86_64's pads to 16 */
    memset(e, 0, layouts[abi].response);
    memcpy(e, &id, 8);
    e[8] = operation;
    e[9] = 0;
    memcpy(e + 10, &status, 2);
}

/* ---- the backend ---- */
struct blkqueue;

struct pgrant {
    u32 gref, handle;
    struct xen_grant_mapping map;
};

/* A request in flight */
struct breq {
    struct blkqueue *q;
    struct blkif_req r;
    const struct blkif_segment *seg;  /* r.seg, or iseg for an indirect one */
    struct blkif_segment iseg[BLKIF_MAX_INDIRECT_SEGMENTS];
    u8 *buf;                          /* the data, between the grants and the disk */
    struct iovec iov;
    struct disk_io io;
    bool flush_after;                 /* a flush that carried data: the write, then this */
    struct breq *next_free;
};

struct blkqueue {
    struct blkback *b;
    u32 npages;
    u32 ring_handle[MAX_RING_PAGES], ring_gref[MAX_RING_PAGES];
    u8 *ring_page[MAX_RING_PAGES];
    struct backring ring;
    int host_port;
    u32 guest_port;
    bool halted;        /* the frontend broke the ring's indices */
    bool kick;          /* a slot came free: look at the ring again */
    struct breq *reqs, *free;
    struct pgrant pg[MAX_PERSISTENT];
    u32 npg;
};

struct blk_loaded;

struct blkback {
    struct blk_loaded *load;   /* a state being loaded, until post_load */
    struct xen *x;
    struct xenstore *xs;
    struct disk_image *image;
    struct xenbus_dev *xd;
    u64 sectors;            /* in 512-byte units */
    u32 sector_size, physical_sector_size;
    u32 max_ring_order, max_queues;
    bool readonly;
    enum blkif_abi abi;
    bool persistent;
    u32 nqueues;
    struct blkqueue *q[MAX_QUEUES];
};

/* Responses out, and an event if the frontend asked for one */
static void push_responses(struct blkqueue *q)
{
    if (q->ring.nr_ents && backring_push(&q->ring))
        xen_evtchn_host_notify(q->b->x, (u32)q->host_port);
}

static void respond(struct breq *br, s16 status)
{
    struct blkqueue *q = br->q;
    u8 e[16];
    blkif_encode_response(q->b->abi, e, br->r.id, br->r.operation, status);
    backring_respond(&q->ring, e, layouts[q->b->abi].response);
    free(br->buf);
    br->buf = NULL;
    br->next_free = q->free;
    q->free = br;
    q->kick = true;
}

/* ---- persistent grants ---- */
static struct pgrant *persistent_grant(struct blkqueue *q, u32 gref)
{
    for (u32 i = 0; i < q->npg; i++)
        if (q->pg[i].gref == gref)
            return &q->pg[i];
    if (q->npg == MAX_PERSISTENT)
        return NULL;
    struct pgrant *p = &q->pg[q->npg];
    /* writable: Linux's blkfront grants its persistent pages read-write */
    if (xen_gnttab_host_map(q->b->x, gref, true, &p->handle, &p->map) != GNTST_okay)
        return NULL;
    p->gref = gref;
    q->npg++;
    return p;
}

static void persistent_unmap_all(struct blkqueue *q)
{
    for (u32 i = 0; i < q->npg; i++)
        xen_gnttab_host_unmap(q->b->x, q->pg[i].handle);
    q->npg = 0;
}

/* One segment's bytes between the guest and buf: through a persistent grant the queue
 * holds, or by grant copy. 0, or -1 for a grant the guest did not give. */
static int segment_copy(struct blkqueue *q, const struct blkif_segment *s, u8 *buf, bool to_guest)
{
    u32 off = s->first_sect * 512u, len = (u32)(s->last_sect - s->first_sect + 1) * 512u;
    struct pgrant *p = q->b->persistent ? persistent_grant(q, s->gref) : NULL;
    if (p) {
        if (off < p->map.offset || off + len > (u32)p->map.offset + p->map.length)
            return -1;
        if (to_guest) {
            memcpy(p->map.page + off, buf, len);
            xen_gnttab_host_written(q->b->x, p->handle);
        } else {
            memcpy(buf, p->map.page + off, len);
        }
        return 0;
    }
    int rc = to_guest ? xen_gnttab_host_copy_to(q->b->x, s->gref, off, buf, len)
                      : xen_gnttab_host_copy_from(q->b->x, s->gref, off, buf, len);
    return rc == GNTST_okay ? 0 : -1;
}

static int segments_copy(struct breq *br, bool to_guest)
{
    u8 *p = br->buf;
    for (u32 i = 0; i < br->r.nseg; i++) {
        const struct blkif_segment *s = &br->seg[i];
        if (segment_copy(br->q, s, p, to_guest))
            return -1;
        p += (size_t)(s->last_sect - s->first_sect + 1) * 512u;
    }
    return 0;
}

/* ---- requests ---- */
static void io_done(struct disk_io *io, int result)
{
    struct breq *br = (struct breq *)((u8 *)io - offsetof(struct breq, io));
    struct blkqueue *q = br->q;
    if (result) {
        respond(br, BLKIF_RSP_ERROR);
        return;
    }
    if (br->flush_after) {
        /* the data is written: now the flush that makes it and what came before durable */
        br->flush_after = false;
        br->io = (struct disk_io){ .kind = DISK_FLUSH, .done = io_done };
        if (disk_image_submit(q->b->image, &br->io))
            respond(br, BLKIF_RSP_ERROR);
        return;
    }
    if (br->io.kind == DISK_READ && segments_copy(br, true)) {
        respond(br, BLKIF_RSP_ERROR);
        return;
    }
    respond(br, BLKIF_RSP_OKAY);
}

/* The indirect pages' segment descriptors, by grant copy */
static int read_indirect(struct breq *br)
{
    u8 page[4096];
    for (u32 i = 0, done = 0; i < br->r.nindirect; i++) {
        u32 n = br->r.nseg - done < SEGS_PER_INDIRECT_PAGE ? br->r.nseg - done : SEGS_PER_INDIRECT_PAGE;
        if (xen_gnttab_host_copy_from(br->q->b->x, br->r.indirect_gref[i], 0, page, n * 8) != GNTST_okay)
            return -1;
        for (u32 k = 0; k < n; k++)
            decode_segment(page + 8 * k, &br->iseg[done + k]);
        done += n;
    }
    br->seg = br->iseg;
    return 0;
}

/* What start_request returns for a request now in flight (statuses are 0, -1, -2) */
#define IN_FLIGHT 1

/* Checks a request and hands it to the disk: IN_FLIGHT, or the status to answer now */
static int start_request(struct breq *br)
{
    struct blkback *b = br->q->b;
    struct blkif_req *r = &br->r;
    br->seg = r->seg;
    br->flush_after = false;
    u64 nsect = 0;
    switch (r->op) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE:
    case BLKIF_OP_FLUSH_DISKCACHE:
        if (r->indirect &&
            (r->nseg > BLKIF_MAX_INDIRECT_SEGMENTS || read_indirect(br)))
            return BLKIF_RSP_ERROR;
        if (blkif_check_request(r, br->seg, b->sectors, b->sector_size, &nsect))
            return BLKIF_RSP_ERROR;
        if (r->op != BLKIF_OP_READ && b->readonly && nsect)
            return BLKIF_RSP_ERROR;
        if (nsect == 0) {
            br->io = (struct disk_io){ .kind = DISK_FLUSH, .done = io_done };
            break;
        }
        if (!(br->buf = malloc(nsect * 512)))
            return BLKIF_RSP_ERROR;
        if (r->op != BLKIF_OP_READ && segments_copy(br, false))
            return BLKIF_RSP_ERROR;
        br->iov = (struct iovec){ br->buf, nsect * 512 };
        br->io = (struct disk_io){ .kind = r->op == BLKIF_OP_READ ? DISK_READ : DISK_WRITE,
                                   .offset = r->sector * 512, .iov = &br->iov, .niov = 1,
                                   .done = io_done };
        br->flush_after = r->op == BLKIF_OP_FLUSH_DISKCACHE;
        break;
    case BLKIF_OP_DISCARD:
        if (b->readonly)
            return BLKIF_RSP_EOPNOTSUPP; /* not offered on a read-only disk */
        if (blkif_check_request(r, NULL, b->sectors, b->sector_size, &nsect))
            return BLKIF_RSP_ERROR;
        if (nsect == 0)
            return BLKIF_RSP_OKAY;
        br->io = (struct disk_io){ .kind = DISK_DISCARD, .offset = r->sector * 512,
                                   .len = nsect * 512, .done = io_done };
        break;
    case BLKIF_OP_INDIRECT:
        return BLKIF_RSP_ERROR; /* an indirect request that is neither read nor write */
    default:
        /* barriers, the reserved operation, anything unknown: not offered */
        return BLKIF_RSP_EOPNOTSUPP;
    }
    return disk_image_submit(b->image, &br->io) ? BLKIF_RSP_ERROR : IN_FLIGHT;
}

/* Takes the frontend's new requests (RING_FINAL_CHECK_FOR_REQUESTS) */
static void queue_run(struct blkqueue *q)
{
    q->kick = false;
    if (!q->ring.nr_ents || q->halted)
        return;
    u8 e[112];
    for (;;) {
        long n = backring_pending(&q->ring);
        if (n < 0) {
            nestor_log("xen vbd %u: the frontend's request index runs more than a ring of %u "
                       "ahead of the responses: halting the queue until it reconnects",
                       q->b->xd->devid, q->ring.nr_ents);
            q->halted = true;
            break;
        }
        for (; n > 0 && q->free; n--) {
            struct breq *br = q->free;
            q->free = br->next_free;
            backring_take(&q->ring, e);
            blkif_decode(q->b->abi, e, &br->r);
            int st = start_request(br);
            if (st != IN_FLIGHT)
                respond(br, (s16)st);
        }
        if (n > 0)
            break; /* every request slot busy: a completion looks again */
        if (!backring_final_check(&q->ring))
            break;
    }
    push_responses(q);
    q->kick = false;
}

static void queue_notify(void *opaque, u32 host_port)
{
    (void)host_port;
    queue_run(opaque);
}

void blkback_poll(struct blkback *b)
{
    if (!disk_image_inflight(b->image))
        return;
    if (!disk_image_reap(b->image))
        return;
    for (u32 i = 0; i < b->nqueues; i++) {
        struct blkqueue *q = b->q[i];
        push_responses(q);
        if (q->kick)
            queue_run(q);
    }
}

int blkback_event_fd(const struct blkback *b)
{
    return disk_image_event_fd(b->image);
}

unsigned blkback_inflight(const struct blkback *b)
{
    return disk_image_inflight(b->image);
}

/* ---- connecting ---- */
static void queue_release(struct blkqueue *q)
{
    if (q->reqs)
        for (u32 i = 0; i < q->ring.nr_ents; i++)
            free(q->reqs[i].buf);
    free(q->reqs);
    free(q);
}

static void queue_free(struct blkback *b, struct blkqueue *q)
{
    persistent_unmap_all(q);
    if (q->host_port > 0)
        xen_evtchn_host_close(b->x, (u32)q->host_port);
    for (u32 i = 0; i < q->npages; i++)
        xen_gnttab_host_unmap(b->x, q->ring_handle[i]);
    queue_release(q);
}

static void blk_disconnect(void *dev, struct xenbus_dev *xd)
{
    struct blkback *b = dev;
    (void)xd;
    /* requests in flight answer into rings still mapped */
    disk_image_drain(b->image);
    for (u32 i = 0; i < b->nqueues; i++) {
        push_responses(b->q[i]);
        queue_free(b, b->q[i]);
        b->q[i] = NULL;
    }
    b->nqueues = 0;
}

/* A request slot for each ring entry, all free */
static int queue_slots(struct blkqueue *q)
{
    q->reqs = calloc(q->ring.nr_ents, sizeof(*q->reqs));
    if (!q->reqs)
        return -1;
    q->free = NULL;
    for (u32 i = 0; i < q->ring.nr_ents; i++) {
        q->reqs[i].q = q;
        q->reqs[i].next_free = q->free;
        q->free = &q->reqs[i];
    }
    return 0;
}

/* One queue's ring and channel, from dir (the frontend's directory, or its queue-N) */
static int queue_connect(struct blkback *b, struct blkqueue *q, const char *dir, u32 order,
                         bool paged, char *msg, size_t msglen)
{
    char key[64];
    q->b = b;
    q->host_port = -1;
    q->npages = 1u << order;
    for (u32 i = 0; i < q->npages; i++) {
        u32 gref;
        if (paged)
            snprintf(key, sizeof(key), "%s%sring-ref%u", dir, *dir ? "/" : "", i);
        else
            snprintf(key, sizeof(key), "%s%sring-ref", dir, *dir ? "/" : "");
        if (xenbus_read_frontend_u32(b->xd, key, &gref)) {
            nestor_err(msg, msglen, "reading %s", key);
            return -EINVAL;
        }
        struct xen_grant_mapping m;
        q->ring_gref[i] = gref;
        int rc = xen_gnttab_host_map(b->x, gref, true, &q->ring_handle[i], &m);
        if (rc != GNTST_okay || m.offset || m.length != 4096) {
            if (rc == GNTST_okay)
                xen_gnttab_host_unmap(b->x, q->ring_handle[i]);
            nestor_err(msg, msglen, "mapping ring page %u (grant %u): status %d", i, gref, rc);
            q->npages = i;
            return -EINVAL;
        }
        q->ring_page[i] = m.page;
    }
    u32 port;
    snprintf(key, sizeof(key), "%s%sevent-channel", dir, *dir ? "/" : "");
    if (xenbus_read_frontend_u32(b->xd, key, &port)) {
        nestor_err(msg, msglen, "reading %s", key);
        return -EINVAL;
    }
    backring_attach(&q->ring, q->ring_page, q->npages, layouts[b->abi].entry);
    if (queue_slots(q)) {
        nestor_err(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    q->guest_port = port;
    q->host_port = xen_evtchn_host_bind(b->x, port, queue_notify, q);
    if (q->host_port < 0) {
        nestor_err(msg, msglen, "binding event channel %u", port);
        return -EINVAL;
    }
    return 0;
}

static int blk_connect(void *dev, struct xenbus_dev *xd, char *msg, size_t msglen)
{
    struct blkback *b = dev;
    char buf[64];
    b->abi = BLKIF_ABI_X86_64;
    if (xenbus_read_frontend(xd, "protocol", buf, sizeof(buf)) >= 0) {
        int abi = blkif_abi_by_protocol(buf);
        if (abi < 0) {
            nestor_err(msg, msglen, "unknown protocol %s", buf);
            return -ENOSYS;
        }
        b->abi = (enum blkif_abi)abi;
    }
    u32 v = 0;
    b->persistent = xenbus_read_frontend_u32(xd, "feature-persistent", &v) == 0 && v == 1;
    u32 nq = 1, order = 0;
    if (xenbus_read_frontend_u32(xd, "multi-queue-num-queues", &nq) == 0 &&
        (nq == 0 || nq > b->max_queues)) {
        nestor_err(msg, msglen, "%u queues asked for, at most %u offered", nq, b->max_queues);
        return -ENOSYS;
    }
    bool paged = xenbus_read_frontend_u32(xd, "ring-page-order", &order) == 0;
    if (paged && order > b->max_ring_order) {
        nestor_err(msg, msglen, "ring page order %u asked for, at most %u offered", order, b->max_ring_order);
        return -EINVAL;
    }
    for (u32 i = 0; i < nq; i++) {
        struct blkqueue *q = calloc(1, sizeof(*q));
        if (!q) {
            nestor_err(msg, msglen, "out of memory");
            blk_disconnect(b, xd);
            return -ENOMEM;
        }
        b->q[b->nqueues++] = q;
        char dir[24] = "";
        if (nq > 1)
            snprintf(dir, sizeof(dir), "queue-%u", i);
        int rc = queue_connect(b, q, dir, order, paged, msg, msglen);
        if (rc) {
            blk_disconnect(b, xd);
            return rc;
        }
    }
    /* requests the frontend queued before it saw us connected */
    for (u32 i = 0; i < b->nqueues; i++)
        queue_run(b->q[i]);
    return 0;
}

static int blk_probe(void *dev, struct xenbus_dev *xd)
{
    struct blkback *b = dev;
    int rc = 0;
#define W(key, ...) do { if (!rc) rc = xenbus_write_backend(xd, key, __VA_ARGS__); } while (0)
    W("feature-flush-cache", "1");
    W("feature-persistent", "1");
    W("feature-max-indirect-segments", "%u", BLKIF_MAX_INDIRECT_SEGMENTS);
    W("max-ring-page-order", "%u", b->max_ring_order);
    W("multi-queue-max-queues", "%u", b->max_queues);
    if (!b->readonly) {
        W("feature-discard", "1");
        W("discard-granularity", "%u", b->physical_sector_size > 4096 ? b->physical_sector_size : 4096);
        W("discard-alignment", "0");
        W("discard-secure", "0");
    }
    /* in 512-byte units, as Linux's blkback writes it and its blkfront reads it (Xen 4.17's
     * blkif.h says "sector-size" units; later Xen corrected the text to what every
     * implementation does) */
    W("sectors", "%llu", (unsigned long long)b->sectors);
    W("info", "%u", b->readonly ? VDISK_READONLY : 0);
    W("sector-size", "%u", b->sector_size);
    W("physical-sector-size", "%u", b->physical_sector_size);
#undef W
    return rc;
}

static const struct xenbus_backend_ops blk_ops = {
    .type = "vbd", .probe = blk_probe, .connect = blk_connect, .disconnect = blk_disconnect,
};

struct blkback *blkback_create(struct xen *x, struct xenstore *xs, const struct blkback_opts *o,
                               char *err, size_t errlen)
{
    u32 devid;
    if (xenbus_parse_vdev(o->vdev, &devid)) {
        nestor_err(err, errlen, "vdev=%s is not a disk name (xvda, xvdb..., hda, sda or a number)", o->vdev);
        return NULL;
    }
    u32 ss = o->sector_size ? o->sector_size : 512;
    u32 pss = o->physical_sector_size ? o->physical_sector_size : ss;
    if ((ss != 512 && ss != 4096) || pss < ss || (pss & (pss - 1)) || pss > 65536) {
        nestor_err(err, errlen, "sector sizes: logical 512 or 4096, physical a power of two at least that");
        return NULL;
    }
    u64 size = disk_image_size(o->image);
    if (size % ss || size == 0) {
        nestor_err(err, errlen, "%s: its size (%llu bytes) is not a whole number of %u-byte sectors",
                   o->file, (unsigned long long)size, ss);
        return NULL;
    }
    if (o->max_ring_order > MAX_RING_ORDER || o->max_queues < 1 || o->max_queues > MAX_QUEUES) {
        nestor_err(err, errlen, "max-ring-page-order is 0-%u, num-queues 1-%u", MAX_RING_ORDER, MAX_QUEUES);
        return NULL;
    }
    struct blkback *b = calloc(1, sizeof(*b));
    if (!b) {
        nestor_err(err, errlen, "out of memory");
        return NULL;
    }
    b->x = x;
    b->xs = xs;
    b->image = o->image;
    b->sectors = size / 512;
    b->sector_size = ss;
    b->physical_sector_size = pss;
    b->max_ring_order = o->max_ring_order;
    b->max_queues = o->max_queues;
    b->readonly = disk_image_readonly(o->image);
    char num[16];
    snprintf(num, sizeof(num), "%u", devid);
    /* what libxl writes for a disk with QEMU's qdisk backend */
    const struct xenbus_key fe[] = {
        { "virtual-device", num }, { "device-type", "disk" }, { "trusted", "1" },
    };
    const struct xenbus_key be[] = {
        { "dev", o->vdev }, { "type", "qdisk" }, { "mode", b->readonly ? "r" : "w" },
        { "params", o->file }, { "device-type", "disk" }, { "removable", "0" },
        { "bootable", "1" }, { "discard-enable", b->readonly ? "0" : "1" },
    };
    b->xd = xenbus_backend_create(xs, &blk_ops, b, devid, fe, (int)ARRAY_SIZE(fe), be,
                                  (int)ARRAY_SIZE(be), err, errlen);
    if (!b->xd) {
        free(b);
        return NULL;
    }
    return b;
}

void blkback_destroy(struct blkback *b)
{
    if (!b)
        return;
    free(b->load);
    xenbus_backend_destroy(b->xd);
    disk_image_close(b->image);
    free(b);
}

void blkback_quiesce(struct blkback *b)
{
    disk_image_drain(b->image);
    for (u32 i = 0; i < b->nqueues; i++)
        push_responses(b->q[i]);
}

/* ---- state ----
 * The connection: the handshake's state, the request layout and the persistent-grant
 * choice, then each queue: its ring's grants with dom0's mapping handles, the private
 * indices, its channel (dom0's port and the guest's), its persistent grants. The disk's
 * requests are finished before a save (blkback_quiesce): a file with requests taken and
 * not answered is refused. The mappings and the channel belong to the Xen interface's
 * state; post_load finds the pages again through the handles and takes the port back. */
struct blk_loaded_queue {
    u32 npages, ring_gref[MAX_RING_PAGES], ring_handle[MAX_RING_PAGES];
    u32 host_port, guest_port, req_cons, rsp_prod_pvt;
    bool halted;
    u32 npg, pg_gref[MAX_PERSISTENT], pg_handle[MAX_PERSISTENT];
};
struct blk_loaded {
    u32 state;
    bool connected, persistent;
    u32 abi, nqueues;
    struct blk_loaded_queue q[MAX_QUEUES];
};

static void blk_save(void *obj, struct state_buf *sb)
{
    struct blkback *b = obj;
    state_put_u32(sb, (u32)b->xd->state);
    state_put_u8(sb, b->xd->connected);
    state_put_u32(sb, b->abi);
    state_put_u8(sb, b->persistent);
    state_put_u32(sb, b->nqueues);
    for (u32 i = 0; i < b->nqueues; i++) {
        const struct blkqueue *q = b->q[i];
        state_put_u32(sb, q->npages);
        for (u32 k = 0; k < q->npages; k++) {
            state_put_u32(sb, q->ring_gref[k]);
            state_put_u32(sb, q->ring_handle[k]);
        }
        state_put_u32(sb, (u32)q->host_port);
        state_put_u32(sb, q->guest_port);
        state_put_u32(sb, q->ring.req_cons);
        state_put_u32(sb, q->ring.rsp_prod_pvt);
        state_put_u8(sb, q->halted);
        state_put_u32(sb, q->npg);
        for (u32 k = 0; k < q->npg; k++) {
            state_put_u32(sb, q->pg[k].gref);
            state_put_u32(sb, q->pg[k].handle);
        }
    }
}

static int blk_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct blkback *b = obj;
    struct blk_loaded *l = calloc(1, sizeof(*l));
    if (!l)
        return nestor_err(err, errlen, "out of memory");
    free(b->load);
    b->load = l;
    l->state = state_get_u32(c);
    l->connected = state_get_u8(c);
    l->abi = state_get_u32(c);
    l->persistent = state_get_u8(c);
    l->nqueues = state_get_u32(c);
    if (l->state > XenbusStateReconfigured || l->abi >= ARRAY_SIZE(layouts) || l->nqueues > b->max_queues ||
        (l->nqueues && !l->connected))
        return nestor_err(err, errlen, "impossible block backend state");
    for (u32 i = 0; i < l->nqueues && !c->bad; i++) {
        struct blk_loaded_queue *q = &l->q[i];
        q->npages = state_get_u32(c);
        if (q->npages == 0 || q->npages > (1u << b->max_ring_order) || (q->npages & (q->npages - 1)))
            return nestor_err(err, errlen, "a block backend queue of %u ring pages", q->npages);
        for (u32 k = 0; k < q->npages; k++) {
            q->ring_gref[k] = state_get_u32(c);
            q->ring_handle[k] = state_get_u32(c);
        }
        q->host_port = state_get_u32(c);
        q->guest_port = state_get_u32(c);
        q->req_cons = state_get_u32(c);
        q->rsp_prod_pvt = state_get_u32(c);
        q->halted = state_get_u8(c);
        q->npg = state_get_u32(c);
        if (q->req_cons != q->rsp_prod_pvt)
            return nestor_err(err, errlen, "the block backend had requests in flight");
        if (q->npg > MAX_PERSISTENT)
            return nestor_err(err, errlen, "%u persistent grants in a block backend queue", q->npg);
        for (u32 k = 0; k < q->npg; k++) {
            q->pg_gref[k] = state_get_u32(c);
            q->pg_handle[k] = state_get_u32(c);
        }
    }
    return c->bad ? nestor_err(err, errlen, "truncated block backend state") : 0;
}

/* The loaded connection made live: the queues on the mappings and ports the Xen
 * interface's state holds */
static int blk_post_load(void *obj, char *err, size_t errlen)
{
    struct blkback *b = obj;
    struct blk_loaded *l = b->load;
    if (!l)
        return 0;
    /* what this machine had before the load is gone with the Xen state it stood on */
    for (u32 i = 0; i < b->nqueues; i++)
        queue_release(b->q[i]);
    b->nqueues = 0;
    b->xd->state = (int)l->state;
    b->xd->connected = l->connected;
    b->abi = (enum blkif_abi)l->abi;
    b->persistent = l->persistent;
    int rc = 0;
    for (u32 i = 0; i < l->nqueues && !rc; i++) {
        const struct blk_loaded_queue *lq = &l->q[i];
        struct blkqueue *q = calloc(1, sizeof(*q));
        if (!q) {
            rc = nestor_err(err, errlen, "out of memory");
            break;
        }
        b->q[b->nqueues++] = q;
        q->b = b;
        q->npages = lq->npages;
        for (u32 k = 0; k < q->npages && !rc; k++) {
            struct xen_grant_mapping m;
            q->ring_gref[k] = lq->ring_gref[k];
            q->ring_handle[k] = lq->ring_handle[k];
            if (xen_gnttab_host_mapping(b->x, q->ring_handle[k], q->ring_gref[k], true, &m) != GNTST_okay ||
                m.offset || m.length != 4096)
                rc = nestor_err(err, errlen, "a block backend ring page is not mapped");
            q->ring_page[k] = m.page;
        }
        if (rc)
            break;
        backring_attach(&q->ring, q->ring_page, q->npages, layouts[b->abi].entry);
        q->ring.req_cons = lq->req_cons;
        q->ring.rsp_prod_pvt = lq->rsp_prod_pvt;
        q->halted = lq->halted;
        q->host_port = (int)lq->host_port;
        q->guest_port = lq->guest_port;
        if (queue_slots(q))
            rc = nestor_err(err, errlen, "out of memory");
        else if (xen_evtchn_host_attach(b->x, lq->host_port, lq->guest_port, queue_notify, q))
            rc = nestor_err(err, errlen, "a block backend queue's event channel is not bound");
        for (u32 k = 0; k < lq->npg && !rc; k++) {
            struct pgrant *p = &q->pg[q->npg++];
            p->gref = lq->pg_gref[k];
            p->handle = lq->pg_handle[k];
            if (xen_gnttab_host_mapping(b->x, p->handle, p->gref, true, &p->map) != GNTST_okay)
                rc = nestor_err(err, errlen, "a persistent grant is not mapped");
        }
    }
    free(b->load);
    b->load = NULL;
    return rc;
}

#define N(x) STATE_NOT_STATE(struct blkback, x)
static const struct state_field blk_fields[] = {
    N(load), N(x), N(xs), N(image), N(xd), N(sectors), N(sector_size), N(physical_sector_size),
    N(max_ring_order), N(max_queues), N(readonly), N(abi), N(persistent), N(nqueues), N(q),
};
#undef N
static const struct state_desc blk_state_desc =
    STATE_DESC("xen.vbd", 1, struct blkback, blk_fields, .save = blk_save, .load = blk_load,
               .post_load = blk_post_load);

void blkback_state_register(struct blkback *b, struct state_registry *r, u32 instance)
{
    state_register(r, &blk_state_desc, instance, b);
}

/* QEMU's hyperv-testdev: one 32-bit port at 3000h through which a test guest asks the
 * host side of the SynIC for what a real host's services would set up, as kvm-unit-tests'
 * Hyper-V tests do. A write names sint (bits 7:0), a VP (15:8), a command (23:16) and a
 * connection id (31:24):
 *   1/2 create/destroy a SINT route to (vp, sint), 3 signal it;
 *   4/5 create/destroy a message connection: a message the guest posts to it is posted
 *       back to (vp, sint), one at a time (INSUFFICIENT_BUFFERS while one waits for the
 *       slot, which the guest's EOM frees);
 *   6/7 create/destroy an event connection: HvSignalEvent sets flag number "connection
 *       id" of (vp, sint).
 * Reads return 0. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev/dev.h"
#include "machine/machine.h"
#include "machine/state.h"

#define TESTDEV_PORT 0x3000
#define TESTDEV_MAX 64
#define HV_STATUS_SUCCESS 0
#define HV_STATUS_INSUFFICIENT_BUFFERS 0x13

enum { CMD_SINT_ROUTE_CREATE = 1, CMD_SINT_ROUTE_DESTROY, CMD_SINT_ROUTE_SET_SINT,
       CMD_MSG_CONN_CREATE, CMD_MSG_CONN_DESTROY, CMD_EVT_CONN_CREATE, CMD_EVT_CONN_DESTROY };

struct testdev_route {
    bool used;
    u8 vp, sint;
};

struct testdev_conn {
    bool used, is_msg;
    u8 id, vp, sint;
    /* a message connection's message waiting for its slot */
    bool staged;
    u32 type, size;
    u8 payload[240];
};

struct hyperv_testdev {
    struct machine *m;
    struct hyperv *hv;
    struct testdev_route route[TESTDEV_MAX];
    struct testdev_conn conn[TESTDEV_MAX];
};

static struct testdev_conn *conn_find(struct hyperv_testdev *d, u32 id)
{
    for (int i = 0; i < TESTDEV_MAX; i++)
        if (d->conn[i].used && d->conn[i].id == id)
            return &d->conn[i];
    return NULL;
}

static void conn_try_post(struct hyperv_testdev *d, struct testdev_conn *k)
{
    if (k->staged && hyperv_post_message(d->hv, k->vp, k->sint, k->type, k->payload, k->size) != -EAGAIN)
        k->staged = false; /* delivered (or undeliverable: dropped, as QEMU's route does) */
}

static u16 msg_handler(void *opaque, u32 connection_id, u32 type, const u8 *payload, u32 size)
{
    struct hyperv_testdev *d = opaque;
    struct testdev_conn *k = conn_find(d, connection_id);
    if (!k)
        return HV_STATUS_INSUFFICIENT_BUFFERS;
    if (k->staged)
        return HV_STATUS_INSUFFICIENT_BUFFERS;
    k->staged = true;
    k->type = type;
    k->size = size;
    memcpy(k->payload, payload, size);
    conn_try_post(d, k);
    return HV_STATUS_SUCCESS;
}

static void sint_acked(void *opaque, int vp, int sint)
{
    struct hyperv_testdev *d = opaque;
    for (int i = 0; i < TESTDEV_MAX; i++) {
        struct testdev_conn *k = &d->conn[i];
        if (k->used && k->is_msg && k->vp == vp && (sint < 0 || k->sint == sint))
            conn_try_post(d, k);
    }
}

static void conn_register(struct hyperv_testdev *d, struct testdev_conn *k)
{
    if (k->is_msg)
        hyperv_msg_connection_add(d->hv, k->id, msg_handler, d);
    else
        hyperv_event_connection_add(d->hv, k->id, k->vp, k->sint, k->id);
}

static void testdev_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct hyperv_testdev *d = opaque;
    if (size != 4 || offset != 0)
        return;
    u8 sint = (u8)value, vp = (u8)(value >> 8), cmd = (u8)(value >> 16), id = (u8)(value >> 24);
    switch (cmd) {
    case CMD_SINT_ROUTE_CREATE:
        for (int i = 0; i < TESTDEV_MAX; i++)
            if (!d->route[i].used) {
                d->route[i] = (struct testdev_route){ true, vp, sint };
                break;
            }
        break;
    case CMD_SINT_ROUTE_DESTROY:
    case CMD_SINT_ROUTE_SET_SINT:
        for (int i = 0; i < TESTDEV_MAX; i++) {
            struct testdev_route *r = &d->route[i];
            if (!r->used || r->vp != vp || r->sint != sint)
                continue;
            if (cmd == CMD_SINT_ROUTE_DESTROY)
                r->used = false;
            else
                hyperv_sint_signal(d->hv, vp, sint);
            break;
        }
        break;
    case CMD_MSG_CONN_CREATE:
    case CMD_EVT_CONN_CREATE: {
        if (conn_find(d, id))
            break;
        for (int i = 0; i < TESTDEV_MAX; i++)
            if (!d->conn[i].used) {
                struct testdev_conn *k = &d->conn[i];
                memset(k, 0, sizeof(*k));
                k->used = true, k->is_msg = cmd == CMD_MSG_CONN_CREATE;
                k->id = id, k->vp = vp, k->sint = sint;
                conn_register(d, k);
                break;
            }
        break;
    }
    case CMD_MSG_CONN_DESTROY:
    case CMD_EVT_CONN_DESTROY: {
        struct testdev_conn *k = conn_find(d, id);
        if (k) {
            hyperv_connection_remove(d->hv, id);
            k->used = false;
        }
        break;
    }
    default:
        break;
    }
}

static u64 testdev_read(void *opaque, u64 offset, unsigned size)
{
    (void)opaque, (void)offset, (void)size;
    return 0;
}

struct hyperv_testdev *hyperv_testdev_create(struct machine *m, struct hyperv *hv)
{
    struct hyperv_testdev *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->m = m;
    d->hv = hv;
    bus_register(&m->io, TESTDEV_PORT, 4, testdev_read, testdev_write, d, "hyperv-testdev-ctl");
    hyperv_set_sint_ack_handler(hv, sint_acked, d);
    return d;
}

void hyperv_testdev_destroy(struct hyperv_testdev *d)
{
    free(d);
}

/* ---- state: the routes and connections; the connections are registered again ---- */
#define F(x) STATE_FIELD(struct testdev_route, x)
static const struct state_field route_fields[] = { F(used), F(vp), F(sint) };
#undef F
static const struct state_desc route_desc = STATE_DESC("hyperv_testdev.route", 1, struct testdev_route, route_fields);
#define F(x) STATE_FIELD(struct testdev_conn, x)
static const struct state_field conn_fields[] = {
    F(used), F(is_msg), F(id), F(vp), F(sint), F(staged), F(type), F(size), F(payload),
};
#undef F
static const struct state_desc conn_desc = STATE_DESC("hyperv_testdev.conn", 1, struct testdev_conn, conn_fields);
#define F(x) STATE_FIELD(struct hyperv_testdev, x)
#define N(x) STATE_NOT_STATE(struct hyperv_testdev, x)
static const struct state_field testdev_fields[] = {
    N(m), N(hv), STATE_STRUCT(struct hyperv_testdev, route, route_desc),
    STATE_STRUCT(struct hyperv_testdev, conn, conn_desc),
};
#undef F
#undef N

static int testdev_post_load(void *obj, char *err, size_t errlen)
{
    struct hyperv_testdev *d = obj;
    for (int i = 0; i < TESTDEV_MAX; i++) {
        struct testdev_conn *k = &d->conn[i];
        if (k->size > sizeof(k->payload))
            return nestor_err(err, errlen, "impossible hyperv-testdev state");
    }
    for (u32 id = 0; id < 256; id++)
        hyperv_connection_remove(d->hv, id);
    for (int i = 0; i < TESTDEV_MAX; i++)
        if (d->conn[i].used)
            conn_register(d, &d->conn[i]);
    return 0;
}

static const struct state_desc testdev_desc =
    STATE_DESC("hyperv_testdev", 1, struct hyperv_testdev, testdev_fields, .post_load = testdev_post_load);

void hyperv_testdev_state_register(struct hyperv_testdev *d, struct state_registry *r)
{
    state_register(r, &testdev_desc, 0, d);
}

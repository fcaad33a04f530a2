/* The guest's PV console, domain 0's side (see pvconsole.h). The ring's indices are the
 * guest's: whatever out_prod says, only out[] is read and a producer more than a ring
 * ahead gets a ring's worth (as xenconsoled's buffer_append bounds it); input trusts the
 * guest's in_cons only modulo the ring. */
#include "dom0/pvconsole.h"

#include <stdlib.h>
#include <unistd.h>

#include <xen/io/console.h>
#include <xen/hvm/params.h>

#include "hv/xen/xen.h"
#include "machine/state.h"

struct pvconsole {
    struct xen *x;
    int out_fd;
    struct xencons_interface *ring;
    u32 host_port;  /* dom0's end of the console channel */
};

static void write_all(int fd, const char *p, size_t n)
{
    while (n && fd >= 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* The guest signalled its port: what it produced goes out */
static void console_notify(void *opaque, u32 host_port)
{
    struct pvconsole *pc = opaque;
    struct xencons_interface *in = pc->ring;
    XENCONS_RING_IDX cons = __atomic_load_n(&in->out_cons, __ATOMIC_RELAXED);
    /* the producer's index before the bytes it covers (Xen's rmb) */
    XENCONS_RING_IDX prod = __atomic_load_n(&in->out_prod, __ATOMIC_ACQUIRE);
    XENCONS_RING_IDX n = prod - cons;
    if (n > sizeof(in->out))
        n = sizeof(in->out);
    char buf[sizeof(in->out)];
    for (XENCONS_RING_IDX i = 0; i < n; i++)
        buf[i] = in->out[MASK_XENCONS_IDX(cons + i, in->out)];
    write_all(pc->out_fd, buf, n);
    /* the bytes are read before the consumer index says so (Xen's mb) */
    __atomic_store_n(&in->out_cons, cons + n, __ATOMIC_RELEASE);
    xen_evtchn_host_notify(pc->x, host_port);
}

size_t pvconsole_input_room(const struct pvconsole *pc)
{
    const struct xencons_interface *in = pc->ring;
    XENCONS_RING_IDX used = __atomic_load_n(&in->in_prod, __ATOMIC_RELAXED) -
                            __atomic_load_n(&in->in_cons, __ATOMIC_ACQUIRE);
    return used > sizeof(in->in) ? sizeof(in->in) : sizeof(in->in) - used;
}

size_t pvconsole_input(struct pvconsole *pc, const u8 *buf, size_t n)
{
    struct xencons_interface *in = pc->ring;
    XENCONS_RING_IDX cons = __atomic_load_n(&in->in_cons, __ATOMIC_ACQUIRE);
    XENCONS_RING_IDX prod = __atomic_load_n(&in->in_prod, __ATOMIC_RELAXED);
    if (prod - cons > sizeof(in->in))
        prod = cons; /* indices the guest broke: start again from its consumer */
    size_t room = sizeof(in->in) - (prod - cons);
    if (n > room)
        n = room;
    for (size_t i = 0; i < n; i++)
        in->in[MASK_XENCONS_IDX(prod + (XENCONS_RING_IDX)i, in->in)] = (char)buf[i];
    /* the bytes before the producer index that covers them (Xen's wmb) */
    __atomic_store_n(&in->in_prod, prod + (XENCONS_RING_IDX)n, __ATOMIC_RELEASE);
    if (n)
        xen_evtchn_host_notify(pc->x, pc->host_port);
    return n;
}

struct pvconsole *pvconsole_create(struct xen *x, int out_fd)
{
    struct pvconsole *pc = calloc(1, sizeof(*pc));
    if (!pc)
        return NULL;
    pc->x = x;
    pc->out_fd = out_fd;
    u8 *page;
    if (xen_special_ring(x, XEN_SPECIALPAGE_CONSOLE, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN,
                         console_notify, pc, &page, &pc->host_port)) {
        free(pc);
        return NULL;
    }
    pc->ring = (struct xencons_interface *)page;
    return pc;
}

void pvconsole_destroy(struct pvconsole *pc)
{
    free(pc);
}

#define F(x) STATE_FIELD(struct pvconsole, x)
#define N(x) STATE_NOT_STATE(struct pvconsole, x)
static const struct state_field pvconsole_fields[] = { N(x), N(out_fd), N(ring), F(host_port) };
#undef F
#undef N
static const struct state_desc pvconsole_state_desc = STATE_DESC("pvconsole", 1, struct pvconsole, pvconsole_fields);

void pvconsole_state_register(struct pvconsole *pc, struct state_registry *r)
{
    state_register(r, &pvconsole_state_desc, 0, pc);
}

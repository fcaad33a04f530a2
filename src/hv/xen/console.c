/* The guest's PV console: what xl gives every HVM/PVH domU before it
 * starts (libxenguest's alloc_magic_pages_hvm): a page of struct xencons_interface at
 * the special pfn SPECIALPAGE_CONSOLE, a guest port allocated unbound for dom0 that dom0
 * (xenconsoled, here nestor) binds, both named by HVM_PARAM_CONSOLE_PFN and
 * HVM_PARAM_CONSOLE_EVTCHN. The guest writes into out[] and signals its port; nestor
 * copies what is between out_cons and out_prod to its console and signals back; nestor's
 * console input goes into in[] (xen_console_input) as well as to the serial port, so
 * console=hvc0 is interactive and serial and hvc0 work side by side. */
#include <stdlib.h>
#include <unistd.h>

#include "hv/xen/xen_internal.h"

#include <xen/io/console.h>

struct xen_console {
    u8 *page;       /* the struct xencons_interface: special page SPECIALPAGE_CONSOLE */
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

/* The guest signalled its port: what it produced goes out, at most one ring's worth
 * (the indices are the guest's: whatever out_prod says, only out[] is read, and a
 * producer more than a ring ahead gets a ring's worth, as xenconsoled's buffer_append
 * bounds it). */
static void console_notify(void *opaque, u32 host_port)
{
    struct xen *x = opaque;
    struct xencons_interface *in = (struct xencons_interface *)x->console->page;
    XENCONS_RING_IDX cons = __atomic_load_n(&in->out_cons, __ATOMIC_RELAXED);
    /* the producer's index before the bytes it covers (Xen's rmb) */
    XENCONS_RING_IDX prod = __atomic_load_n(&in->out_prod, __ATOMIC_ACQUIRE);
    XENCONS_RING_IDX n = prod - cons;
    if (n > sizeof(in->out))
        n = sizeof(in->out);
    char buf[sizeof(in->out)];
    for (XENCONS_RING_IDX i = 0; i < n; i++)
        buf[i] = in->out[MASK_XENCONS_IDX(cons + i, in->out)];
    write_all(x->host.console_fd, buf, n);
    /* the bytes are read before the consumer index says so (Xen's mb) */
    __atomic_store_n(&in->out_cons, cons + n, __ATOMIC_RELEASE);
    xen_evtchn_host_notify(x, host_port);
}

/* Input for the guest (nestor's console input, as xenconsoled gives it the terminal's):
 * as much as in[] has room for, the rest is dropped as a full terminal line drops it. The
 * guest's consumer index is trusted only modulo the ring. */
size_t xen_console_input(struct xen *x, const u8 *buf, size_t n)
{
    struct xen_console *con = x->console;
    if (!con || !con->page)
        return 0;
    struct xencons_interface *in = (struct xencons_interface *)con->page;
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
        xen_evtchn_host_notify(x, con->host_port);
    return n;
}

size_t xen_console_input_room(const struct xen *x)
{
    const struct xen_console *con = x->console;
    if (!con || !con->page)
        return 0;
    const struct xencons_interface *in = (const struct xencons_interface *)con->page;
    XENCONS_RING_IDX used = __atomic_load_n(&in->in_prod, __ATOMIC_RELAXED) -
                            __atomic_load_n(&in->in_cons, __ATOMIC_ACQUIRE);
    return used > sizeof(in->in) ? sizeof(in->in) : sizeof(in->in) - used;
}

int xen_console_create(struct xen *x)
{
    struct xen_console *con = calloc(1, sizeof(*con));
    if (!con)
        return -ENOMEM;
    x->console = con;
    return xen_special_ring(x, XEN_SPECIALPAGE_CONSOLE, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN,
                            console_notify, x, &con->page, &con->host_port);
}

void xen_console_destroy(struct xen *x)
{
    free(x->console);
    x->console = NULL;
}

/* ---- state: dom0's port (the page is a special page, saved with the domain) ---- */
#define F(x) STATE_FIELD(struct xen_console, x)
#define N(x) STATE_NOT_STATE(struct xen_console, x)
static const struct state_field console_fields[] = { N(page), F(host_port) };
#undef F
#undef N

static const struct state_desc console_state_desc = STATE_DESC("xen.console", 1, struct xen_console, console_fields);

void xen_console_state_register(struct xen *x, struct state_registry *r)
{
    state_register(r, &console_state_desc, 0, x->console);
}

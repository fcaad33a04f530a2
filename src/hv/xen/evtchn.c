/* Event channels (2-level and FIFO ABIs) and the upcall paths by which a pending event
 * reaches the guest (xen/common/event_channel.c, event_2l.c, event_fifo.c,
 * xen/arch/x86/hvm/irq.c). */
#include <stdlib.h>

#include "hv/xen/xen_internal.h"

#include <xen/event_channel.h>

struct xen_evtchn {
    int unused; /* the ports come with the implementation */
};

int xen_evtchn_create(struct xen *x)
{
    x->evtchn = calloc(1, sizeof(*x->evtchn));
    return x->evtchn ? 0 : -ENOMEM;
}

void xen_evtchn_destroy(struct xen *x)
{
    free(x->evtchn);
    x->evtchn = NULL;
}

/* Not implemented yet: -ENOSYS, as before this file existed. */
long xen_do_event_channel_op(struct xcall *k)
{
    (void)k;
    return -ENOSYS;
}

/* Until event channels exist no port is open. */
int xen_evtchn_set_pending(struct xen *x, u32 port)
{
    (void)x, (void)port;
    return -EINVAL;
}

void xen_evtchn_send_virq(struct xen *x, int vcpu, u32 virq)
{
    (void)x, (void)vcpu, (void)virq;
}

bool xen_evtchn_is_pending(struct xen *x, u32 port)
{
    (void)x, (void)port;
    return false;
}

u32 xen_evtchn_max_ports(const struct xen *x)
{
    (void)x;
    return 0;
}

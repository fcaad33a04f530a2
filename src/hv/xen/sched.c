/* sched_op and set_timer_op (xen/common/sched/core.c): yield, block, poll, shutdown,
 * watchdog, the single-shot timer. */
#include "hv/xen/xen_internal.h"

#include <xen/sched.h>

/* Not implemented yet: -ENOSYS, as before this file existed. */
long xen_do_sched_op(struct xcall *k)
{
    (void)k;
    return -ENOSYS;
}

/* Not implemented yet: -ENOSYS, as before this file existed. */
long xen_do_set_timer_op(struct xcall *k)
{
    (void)k;
    return -ENOSYS;
}

/* Until SCHEDOP_poll exists no vCPU polls. */
void xen_sched_port_pending(struct xen *x, u32 port)
{
    (void)x, (void)port;
}

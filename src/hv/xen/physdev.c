/* physdev_op (xen/arch/x86/physdev.c): pirqs for an HVM domU. */
#include "hv/xen/xen_internal.h"

#include <xen/physdev.h>

/* Not implemented yet: -ENOSYS, as before this file existed. */
long xen_do_physdev_op(struct xcall *k)
{
    (void)k;
    return -ENOSYS;
}

/* Until physdev_op exists the domain has no pirq. */
int xen_pirq_bind(struct xen *x, u32 pirq, u32 port)
{
    (void)x, (void)pirq, (void)port;
    return -EINVAL;
}

void xen_pirq_unbind(struct xen *x, u32 pirq)
{
    (void)x, (void)pirq;
}

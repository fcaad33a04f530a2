/* multicall (xen/common/multicall.c): a batch of hypercalls in one. */
#include "hv/xen/xen_internal.h"

/* Not implemented yet: -ENOSYS, as before this file existed. */
long xen_do_multicall(struct xcall *k)
{
    (void)k;
    return -ENOSYS;
}

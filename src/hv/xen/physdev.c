/* physdev_op (xen/arch/x86/physdev.c): pirqs for an HVM domU. */
#include "hv/xen/xen_internal.h"

#include <xen/physdev.h>

/* Not implemented yet: -ENOSYS, as before this file existed. */
long xen_do_physdev_op(struct xcall *k)
{
    (void)k;
    return -ENOSYS;
}

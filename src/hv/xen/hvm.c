/* hvm_op (xen/arch/x86/hvm/hvm.c): the HVM parameters, the upcall vector, get_time. */
#include "hv/xen/xen_internal.h"

#include <xen/hvm/hvm_op.h>

/* Not implemented yet: -ENOSYS, as before this file existed. */
long xen_do_hvm_op(struct xcall *k)
{
    (void)k;
    return -ENOSYS;
}

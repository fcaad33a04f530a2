/* Grant tables v1 and v2 (xen/common/grant_table.c) and the host's access to granted
 * pages, for nestor's backends. */
#include <stdlib.h>

#include "hv/xen/xen_internal.h"

#include <xen/grant_table.h>

struct xen_gnttab {
    int unused; /* the table comes with the implementation */
};

int xen_gnttab_create(struct xen *x)
{
    x->gnttab = calloc(1, sizeof(*x->gnttab));
    return x->gnttab ? 0 : -ENOMEM;
}

void xen_gnttab_destroy(struct xen *x)
{
    free(x->gnttab);
    x->gnttab = NULL;
}

/* Not implemented yet: -ENOSYS, as before this file existed. */
long xen_do_grant_table_op(struct xcall *k)
{
    (void)k;
    return -ENOSYS;
}

/* -xen: GNTTABOP_copy and the other grant-table operations from 32-bit code, in the
 * x86_32 layouts (Xen's compat gnttab_copy and gnttab_transfer, with a 32-bit
 * xen_pfn_t): the same checks as t64/xen_gntcopy.c, built for the 32-bit ABI.
 * guest: xen=yes name=xen_gntcopy32 */
/* guest: xen=yes cpu=max,vendor=AuthenticAMD name=xen_gntcopy32-amd */
#include "../t64/xen_gntcopy.c"

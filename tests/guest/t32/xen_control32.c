/* -xen: the toolstack's and dom0's hypercalls refused to a domU, from 32-bit code: the
 * same checks as t64/xen_control.c in the 32-bit ABI (dm_op's compat buffer descriptors,
 * 32-bit argument registers).
 * guest: xen=yes name=xen_control32 */
/* guest: xen=domid=5 cpu=max,vendor=AuthenticAMD name=xen_control32-amd */
#include "../t64/xen_control.c"

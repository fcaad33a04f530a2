/* -xen: multicall (Xen's compat multicall_entry, 32-bit fields), vm_assist and is_up
 * from 32-bit code: the same checks as t64/xen_multicall.c, built for the 32-bit ABI.
 * guest: xen=yes smp=2 name=xen_multicall32 */
/* guest: xen=yes smp=2 cpu=max,vendor=AuthenticAMD name=xen_multicall32-amd */
#include "../t64/xen_multicall.c"

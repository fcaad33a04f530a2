/* vmx_ept.c with 4-level paging in L1 and L2 (under 4- and 5-level EPT).
 * guest: cpu=max name=vmx-ept-l4 */
#define VMX_EPT_LA57 0
#include "vmx_ept.c"

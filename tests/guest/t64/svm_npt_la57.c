/* t64/svm_npt_modes with L1 in 5-level paging (CR4.LA57): the nested tables are walked
 * with 5 levels (APM vol. 2 15.25.3); 64-bit L2 on L1's 5-level tables and on 4-level
 * tables of its own; 32-bit, PAE and real-mode L2 under the 5-level NPT. With MAXPHYADDR
 * 52 the remapped guest-physical page is 2^48 (an NPT PML5E of its own).
 * guest: cpu=max,vendor=AuthenticAMD name=svm-npt-la57 */
/* guest: cpu=max,vendor=AuthenticAMD,phys-bits=52 name=svm-npt-la57-52 */
#include "rt.h"
u32 rt_want_la57 = 1;
#define SVM_NPT_WANT_LEVELS 5
#include "svm_npt_modes.c"

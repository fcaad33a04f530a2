/* The paging test with 5-level paging (CR4.LA57) when CPUID has it, else 4-level. */
#include "rt.h"
u32 rt_want_la57 = 1;
#include "paging.c"

/* t64/cpufeat.c in 32-bit protected mode without paging: the same checks, plus
 * CR4.LA57 (settable outside IA-32e mode exactly when the CPU has 5-level paging) and
 * CR4.PCIDE (#GP outside IA-32e mode).
 * guest: cpu=max name=cpufeat32 */
/* guest: cpu=max,-bmi1,-bmi2,-popcnt,-abm,-movbe,-rdtscp,-rdpid,-adx,-invpcid,-smep,-smap,-la57,-pcid,-fsgsbase,-xsave,-umip,-x2apic,-nx name=cpufeat32-off */
/* guest: cpu=max,vendor=AuthenticAMD name=cpufeat32-amd */
/* guest: cpu=qemu64 name=cpufeat32-qemu64 */
#include "../t64/cpufeat.c"

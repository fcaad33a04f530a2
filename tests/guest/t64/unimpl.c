/* An instruction nestor does not implement raises #UD in the guest, every time, and
 * nestor reports it once on stderr (tests/cli/run.sh checks the report). HADDPS is
 * SSE3, which the CPU model does not advertise: #UD on nestor. On hardware or QEMU with
 * SSE3 it executes, so this test runs on nestor only (default=no; the CLI test runs it).
 * guest: default=no */
#include "rt.h"

void test_main(void)
{
    for (int k = 0; k < 3; k++) {
        asm volatile(ASM_TRY("1f") "haddps %%xmm1, %%xmm0\n1:" ::: "memory");
        TEST_ASSERT(exc_last.vector == UD_VECTOR, "unimplemented HADDPS raises #UD (run %d)", k);
    }
    guest_exit(0);
}

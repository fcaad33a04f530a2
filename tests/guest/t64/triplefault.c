/* A triple fault must stop the machine: with an empty IDT, INT3 raises #GP, whose
 * delivery fails again (#DF), whose delivery fails a third time: shutdown. QEMU with
 * -no-reboot exits 0; nestor must exit with a non-zero status of its own (not through
 * the debug-exit port: the test never writes it after the marker).
 * guest: expect=triple-fault */
#include "rt.h"

void test_main(void)
{
    struct desc_ptr empty = {0, 0};
    printf("TRIPLE-FAULT-NEXT\n");
    asm volatile("lidt %0\n\tint3" ::"m"(empty) : "memory");
    printf("FAIL execution continued after a triple fault\n");
    guest_exit(0x3f);
}

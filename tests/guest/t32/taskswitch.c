/* Hardware task switching is not supported by nestor (README): a far JMP through a task
 * gate, a far CALL to a TSS descriptor or an interrupt through a task gate must stop the
 * machine with status 4 and a message naming it, without the guest running on.
 * The variant is chosen by the cpu= option, which the runner also passes on the kernel
 * command line (the CPU model itself does not matter here).
 */
/* guest: expect=unsupported name=taskswitch-jmp */
/* guest: expect=unsupported name=taskswitch-call cpu=max */
/* guest: expect=unsupported name=taskswitch-int cpu=qemu64 */
#include "rt.h"

#define SLOT_TSS (GDT_FIRST_FREE)      /* an available 32-bit TSS */
#define SLOT_GATE (GDT_FIRST_FREE + 1) /* a task gate to it */

static u8 tss2[104] __attribute__((aligned(16)));

void test_main(void)
{
    /* available 32-bit TSS (type 9), and a task gate (type 5) selecting it */
    gdt_set(SLOT_TSS, (u32)(ulong)tss2, sizeof(tss2) - 1, 0x89, 0);
    gdt[SLOT_GATE] = ((u64)(SLOT_TSS << 3) << 16) | (0x85ull << 40);
    char how[16] = "";
    rt_cmdline_value("cpu", how, sizeof(how));
    printf("UNSUPPORTED-NEXT\n");
    if (how[0] == 'q') {
        /* an interrupt through a task gate in the IDT */
        struct desc_ptr idtr;
        asm volatile("sidt %0" : "=m"(idtr));
        u64 *idt = (u64 *)idtr.base;
        idt[0x40] = ((u64)(SLOT_TSS << 3) << 16) | (0x85ull << 40);
        asm volatile("int $0x40");
    } else if (how[0]) {
        struct { u32 off; u16 sel; } __attribute__((packed)) far = { 0, SLOT_TSS << 3 };
        asm volatile("lcall *%0" ::"m"(far));
    } else {
        asm volatile("ljmp %0, $0" ::"i"(SLOT_GATE << 3));
    }
    printf("FAIL the guest ran on after a hardware task switch\n");
    guest_exit(0x3f);
}

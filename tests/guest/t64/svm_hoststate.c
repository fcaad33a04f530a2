/* #VMEXIT checks the host state it loads from the host-save area (APM 15.5.1: "#VMEXIT
 * performs the appropriate subset of these consistency checks on host state"), and an
 * illegal one shuts the processor down. The host-save area is ordinary memory: without
 * nested paging L2 can write it. Here L2 sets bit 32 of the saved CR0, then exits.
 * guest: cpu=max,vendor=AuthenticAMD name=svm-hoststate expect=triple-fault */
#include "svm.h"

extern char l2_smash_hsave[];
asm(".pushsection .text\n"
    "l2_smash_hsave:\n"
    "  movl $1, (%rax)\n"   /* the upper half of the saved CR0 */
    "  vmmcall\n"
    "  jmp l2_smash_hsave\n"
    ".popsection");

void test_main(void)
{
    if (!svm_supported()) {
        TEST_ASSERT(false, "SVM with cpu=max,vendor=AuthenticAMD");
        return;
    }
    svm_enable();
    struct vmcb *v = &svm_vmcb;
    /* first a run that leaves the host state alone: L1 comes back */
    svm_vmcb_init(v, l2_smash_hsave);
    v->s.rax = PA(&v->c.exit_info2); /* a harmless target: L2 writes the VMCB */
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "L2 writes elsewhere: #VMEXIT back to L1");
    svm_vmcb_init(v, l2_smash_hsave);
    v->s.rax = PA(svm_hsave) + 0x558 + 4; /* the host-save area holds VMCB-layout state */
    printf("TRIPLE-FAULT-NEXT\n");
    svm_run(v);
    TEST_ASSERT(false, "#VMEXIT loaded CR0[63:32] != 0 as host state without shutting down");
}

/* Signals from another vCPU while this one runs L2 (SDM 26.2): an NMI with NMI exiting
 * (exit reason 0, NMI interruption information), INIT (exit reason 3, L1 carries on
 * rather than being reset; in root operation it waits for the next VM entry), and SIPI to an L2 in the wait-for-SIPI activity state (exit
 * reason 4, the vector as qualification). The AP sends each on the BSP's command.
 * guest: cpu=max smp=2 name=vmx-smp */
#include "vmx.h"

static volatile u32 command, done, bsp_apic;

static void ap_main(int index)
{
    (void)index;
    for (;;) {
        u32 cmd = command;
        if (!cmd) {
            pause();
            continue;
        }
        udelay(2000); /* the BSP is in L2 by now */
        apic_icr(bsp_apic, cmd);
        command = 0;
        done++;
    }
}

VMX_L2_CODE(l2_spin, "1: pause\n jmp 1b");

/* The AP sends cmd (after a delay: the BSP runs L2 by then); wait_sent() waits until it
 * has, so that the next command is not cleared by the AP finishing this one. */
static u32 sent_mark;
static void send(u32 cmd)
{
    sent_mark = done;
    command = cmd;
}
static void wait_sent(void)
{
    while (done == sent_mark)
        pause();
}

void test_main(void)
{
    apic_enable();
    bsp_apic = apic_id();
    TEST_EQ(smp_start(ap_main, 1, 1000000), 1, "the AP is up");
    TEST_ASSERT(vmx_on(), "VMXON");

    vmx_setup_l2(l2_spin, 0, 0);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_NMI);
    send(APIC_ICR_NMI);
    TEST_EQ(vmx_run(), R_EXC_NMI, "an NMI while L2 runs: exit 0");
    wait_sent();
    TEST_EQ(vmread(F_EXIT_INTR_INFO), 2 | 2u << 8 | BIT(31), "NMI interruption information");

    vmx_setup_l2(l2_spin, 0, 0);
    send(APIC_ICR_INIT | APIC_ICR_ASSERT);
    TEST_EQ(vmx_run(), R_INIT, "an INIT while L2 runs: exit 3");
    wait_sent();
    TEST_EQ(vmread(F_GUEST_RIP) >= (u64)(ulong)l2_spin, 1, "L2's state saved");
    TEST_ASSERT(apic_read(0xf0) & 0x100, "the INIT did not reset L1's local APIC");

    /* INIT in VMX root operation is blocked, and pending: the next VM entry exits */
    send(APIC_ICR_INIT | APIC_ICR_ASSERT);
    wait_sent();
    udelay(1000);
    TEST_ASSERT(apic_read(0xf0) & 0x100, "an INIT in VMX root operation reset nothing");
    vmx_setup_l2(l2_spin, 0, 0);
    TEST_EQ(vmx_run(), R_INIT, "the blocked INIT exits at the next VM entry");
    TEST_EQ(vmread(F_GUEST_RIP), (u64)(ulong)l2_spin, "before L2's first instruction");

    vmx_setup_l2(l2_spin, 0, 0);
    vmwrite(F_GUEST_ACTIVITY, 3);
    send(APIC_ICR_STARTUP | 0x12);
    TEST_EQ(vmx_run(), R_SIPI, "a SIPI to L2 in wait-for-SIPI: exit 4");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x12, "the SIPI vector");
    TEST_EQ(vmread(F_GUEST_ACTIVITY), 3, "activity state: wait-for-SIPI");
    vmxoff();
}

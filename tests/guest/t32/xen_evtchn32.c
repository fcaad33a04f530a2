/* -xen from 32-bit code: event channels in the x86_32 layouts that Xen latches when
 * 32-bit code placed the hypercall page. xen_ulong_t is 32 bits: port 33 is bit 1 of
 * evtchn_pending[1] and evtchn_mask[1], and bit 1 of the selector, which sits at offset
 * 4 of the 64-byte x86_32 vcpu_info (at 8 natively). Send, masking and unmask
 * re-delivery, and the per-vCPU upcall vector through the LAPIC, in that layout. QEMU
 * TCG has no Xen interface: skipped there.
 * guest: xen=yes name=xen_evtchn32 */
/* guest: xen=yes cpu=max,vendor=AuthenticAMD name=xen_evtchn32-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/event_channel.h>
#include <xen/hvm/hvm_op.h>
#include <xen/arch-x86/cpuid.h>
#include <xen/foreign/x86_32.h>

#define UPCALL_VECTOR 0xe5
#define PORT 33u

static u8 *hpage;
static struct shared_info_x86_32 *si;
static volatile int upcalls;

static long hc(u32 nr, u32 a1, u32 a2, u32 a3)
{
    long r;
    void *stub = hpage + nr * 32;
    asm volatile("call *%[stub]" : "=a"(r), "+b"(a1), "+c"(a2), "+d"(a3) : [stub] "r"(stub) : "memory");
    return r;
}

static long evop(int cmd, void *arg)
{
    return hc(__HYPERVISOR_event_channel_op, (u32)cmd, (u32)arg, 0);
}

static long send(u32 p)
{
    struct evtchn_send s = { .port = p };
    return evop(EVTCHNOP_send, &s);
}

static void upcall_handler(struct exc_frame *f)
{
    (void)f;
    upcalls++;
    apic_eoi();
}

static void wait_upcalls(int n)
{
    for (int i = 0; i < 100000 && upcalls < n; i++)
        asm volatile("sti; nop; cli");
}

static void consume(void)
{
    si->vcpu_info[0].evtchn_upcall_pending = 0;
    si->vcpu_info[0].evtchn_pending_sel = 0;
    si->evtchn_pending[PORT / 32] &= ~(1u << (PORT % 32));
}

void test_main(void)
{
    if (!xen_test_start(NULL))
        return;
    hpage = page_alloc();
    TEST_EQ(wrmsr_safe(0x40000000, (u32)hpage), NO_EXCEPTION, "hypercall page placed from 32-bit code");
    u8 *p = page_alloc();
    memset(p, 0, 4096);
    u32 a[4] = { DOMID_SELF | (0u << 16), XENMAPSPACE_shared_info, 0, (u32)p >> 12 };
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u32)a, 0), 0, "shared_info placed");
    si = (void *)p;
    si->vcpu_info[0].evtchn_upcall_pending = 0;
    si->vcpu_info[0].evtchn_pending_sel = 0;

    /* ports 1..40 taken (1 and 2 by xenstore and the PV console), 33 freed: the IPI
     * port is 33 */
    for (u32 i = 3; i <= 40; i++) {
        struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = DOMID_SELF };
        TEST_ASSERT(evop(EVTCHNOP_alloc_unbound, &au) == 0 && au.port == i, "port %u allocated", i);
    }
    struct evtchn_close cl = { .port = PORT };
    TEST_EQ(evop(EVTCHNOP_close, &cl), 0, "port 33 closed");
    struct evtchn_bind_ipi ipi = { .vcpu = 0 };
    TEST_EQ(evop(EVTCHNOP_bind_ipi, &ipi), 0, "bind_ipi");
    TEST_EQ(ipi.port, PORT, "the IPI port is 33");

    apic_enable();
    exc_set_handler(UPCALL_VECTOR, upcall_handler);
    struct xen_hvm_evtchn_upcall_vector uv = { .vcpu = 0, .vector = UPCALL_VECTOR };
    TEST_EQ(hc(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, (u32)&uv, 0), 0, "upcall vector");
    wait_upcalls(1); /* Xen asserts the vector once when it is set */
    upcalls = 0;

    TEST_EQ(send(PORT), 0, "send on port 33");
    TEST_EQ(si->evtchn_pending[0], 0, "x86_32: nothing in word 0");
    TEST_EQ(si->evtchn_pending[1], 1u << 1, "x86_32: bit 1 of word 1");
    TEST_EQ(((volatile u32 *)&si->vcpu_info[0])[1], 1u << 1,
            "x86_32: selector bit 1, at offset 4 of the vcpu_info");
    TEST_EQ(((volatile u32 *)&si->vcpu_info[0])[2], 0, "nothing at offset 8");
    TEST_EQ(si->vcpu_info[0].evtchn_upcall_pending, 1, "upcall pending");
    wait_upcalls(1);
    TEST_EQ(upcalls, 1, "the upcall through the LAPIC vector");
    consume();

    si->evtchn_mask[1] = 1u << 1;
    TEST_EQ(send(PORT), 0, "send on the masked port");
    TEST_EQ(si->evtchn_pending[1], 1u << 1, "pending");
    TEST_EQ(si->vcpu_info[0].evtchn_pending_sel, 0, "masked: no selector bit");
    struct evtchn_unmask um = { .port = PORT };
    TEST_EQ(evop(EVTCHNOP_unmask, &um), 0, "unmask");
    TEST_EQ(si->evtchn_mask[1], 0, "x86_32: mask bit 1 of word 1 cleared");
    TEST_EQ(si->vcpu_info[0].evtchn_pending_sel, 1u << 1, "unmask re-delivers: selector bit 1");
    wait_upcalls(2);
    TEST_EQ(upcalls, 2, "and the upcall");
}

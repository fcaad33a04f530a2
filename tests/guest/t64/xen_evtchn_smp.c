/* -xen: event channels between vCPUs (2-level ABI), each vCPU with its own upcall
 * vector (HVMOP_set_evtchn_upcall_vector, through its LAPIC, EOId by the guest). An IPI
 * port bound to vCPU n (EVTCHNOP_bind_ipi) raises the selector and evtchn_upcall_pending
 * in vCPU n's vcpu_info only, and the upcall arrives on vCPU n, whoever sends; a port
 * moved by EVTCHNOP_bind_vcpu signals its new vCPU. The handler works as Linux's
 * (xen_evtchn_do_upcall, 2-level): upcall_pending cleared, the selector exchanged with
 * 0, the pending and unmasked ports of each selected word consumed. 200 IPIs ping-pong
 * between the two vCPUs, none lost, none doubled. QEMU TCG has no Xen interface: the
 * test skips there.
 * guest: xen=yes smp=2 name=xen_evtchn_smp */
/* guest: xen=yes smp=2 cpu=max,vendor=AuthenticAMD name=xen_evtchn_smp-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/event_channel.h>
#include <xen/hvm/hvm_op.h>
#include <xen/arch-x86/cpuid.h>

#define ENOENT 2
#define EINVAL 22
#define UPCALL_VECTOR 0xe4
#define ROUNDS 100
#define NPORTS 16

static bool amd;
static struct shared_info *shinfo;
static volatile u32 hits[2][NPORTS];  /* [vCPU][port]: events consumed */
static volatile u32 upcalls[2];
static volatile u32 wrong_cpu;        /* an upcall found nothing for its vCPU */
static volatile int ap_go, ap_done;
static u32 port_to_ap, port_to_bsp, moved, moved_peer;

static long hc(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static long evop(int cmd, void *arg)
{
    return hc(__HYPERVISOR_event_channel_op, cmd, (u64)arg, 0);
}

static long send(u32 p)
{
    struct evtchn_send s = { .port = p };
    return evop(EVTCHNOP_send, &s);
}

static u32 vcpu_id(void)
{
    return cpuid(XEN_CPUID_FIRST_LEAF + 4).b; /* the HVM leaf's vCPU id */
}

/* Linux's 2-level upcall: clear upcall_pending, take the selector, consume the pending
 * unmasked ports of each selected word. */
static void upcall_handler(struct exc_frame *f)
{
    (void)f;
    u32 v = vcpu_id() & 1;
    struct vcpu_info *vi = &shinfo->vcpu_info[v];
    upcalls[v]++;
    vi->evtchn_upcall_pending = 0;
    xen_ulong_t sel = __atomic_exchange_n(&vi->evtchn_pending_sel, 0, __ATOMIC_SEQ_CST);
    bool found = false;
    while (sel) {
        int w = __builtin_ctzl(sel);
        sel &= sel - 1;
        xen_ulong_t bits = shinfo->evtchn_pending[w] & ~shinfo->evtchn_mask[w];
        while (bits) {
            int b = __builtin_ctzl(bits);
            bits &= bits - 1;
            u32 port = (u32)(w * 64 + b);
            __atomic_and_fetch(&shinfo->evtchn_pending[w], ~(1ul << b), __ATOMIC_SEQ_CST);
            if (port < NPORTS)
                hits[v][port]++;
            found = true;
        }
    }
    if (!found)
        wrong_cpu++;
    apic_eoi();
}

static void wait_hits(u32 v, u32 port, u32 n)
{
    for (int i = 0; i < 2000000 && __atomic_load_n(&hits[v][port], __ATOMIC_SEQ_CST) < n; i++)
        asm volatile("sti; pause; cli");
}

static void ap_main(int index)
{
    (void)index;
    apic_enable();
    while (!__atomic_load_n(&ap_go, __ATOMIC_SEQ_CST))
        pause();
    /* ping-pong: each event from the BSP answered by one back */
    for (u32 i = 1; i <= ROUNDS; i++) {
        wait_hits(1, port_to_ap, i);
        if (hits[1][port_to_ap] < i)
            break;
        send(port_to_bsp);
    }
    wait_hits(1, moved, 1);
    __atomic_store_n(&ap_done, 1, __ATOMIC_SEQ_CST);
    for (;;)
        asm volatile("sti; hlt; cli");
}

void test_main(void)
{
    if (on_qemu_tcg()) {
        test_skip("QEMU TCG has no Xen interface");
        return;
    }
    amd = cpuid(0).b == 0x68747541; /* "Auth" */
    u8 *page = page_alloc();
    memset(page, 0, 4096);
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)page >> 12 };
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0), 0, "shared_info placed");
    shinfo = (void *)page;
    for (int v = 0; v < 2; v++)
        shinfo->vcpu_info[v] = (struct vcpu_info){ 0 };

    apic_enable();
    exc_set_handler(UPCALL_VECTOR, upcall_handler);
    for (u32 v = 0; v < 2; v++) {
        struct xen_hvm_evtchn_upcall_vector uv = { .vcpu = v, .vector = UPCALL_VECTOR };
        TEST_EQ(hc(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, (u64)&uv, 0), 0,
                "upcall vector of each vCPU");
    }
    TEST_EQ(smp_start(ap_main, 1, 2000000), 1, "vCPU 1 up");
    /* the vector set for vCPU 0 may have raised a spurious upcall (Xen asserts it at
     * once): take it now */
    asm volatile("sti; nop; nop; cli");
    upcalls[0] = upcalls[1] = wrong_cpu = 0;

    struct evtchn_bind_ipi ipi = { .vcpu = 1 };
    TEST_EQ(evop(EVTCHNOP_bind_ipi, &ipi), 0, "IPI port for vCPU 1");
    port_to_ap = ipi.port;
    ipi.vcpu = 0;
    TEST_EQ(evop(EVTCHNOP_bind_ipi, &ipi), 0, "IPI port for vCPU 0");
    port_to_bsp = ipi.port;
    struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = DOMID_SELF };
    TEST_EQ(evop(EVTCHNOP_alloc_unbound, &au), 0, "alloc_unbound");
    struct evtchn_bind_interdomain bi = { .remote_dom = DOMID_SELF, .remote_port = au.port };
    TEST_EQ(evop(EVTCHNOP_bind_interdomain, &bi), 0, "bind_interdomain loopback");
    moved = au.port, moved_peer = bi.local_port;
    TEST_ASSERT(port_to_ap < NPORTS && port_to_bsp < NPORTS && moved < NPORTS && moved_peer < NPORTS,
                "small port numbers");
    wait_hits(0, moved_peer, 1); /* a fresh interdomain end starts pending, on vCPU 0 */
    TEST_EQ(hits[0][moved_peer], 1, "the new interdomain end's initial event on vCPU 0");

    /* one event from the BSP to vCPU 1: vCPU 0's vcpu_info untouched */
    ap_go = 1;
    for (u32 i = 1; i <= ROUNDS; i++) {
        if (send(port_to_ap))
            break;
        wait_hits(0, port_to_bsp, i);
        if (hits[0][port_to_bsp] < i)
            break; /* lost: the checks below say so */
    }
    TEST_EQ(hits[1][port_to_ap], ROUNDS, "vCPU 1 got every event sent to it");
    TEST_EQ(hits[0][port_to_bsp], ROUNDS, "vCPU 0 got every answer");
    TEST_EQ(hits[0][port_to_ap] + hits[1][port_to_bsp], 0, "none on the wrong vCPU");

    /* bind_vcpu moves the loopback end to vCPU 1: its events go there */
    struct evtchn_bind_vcpu bv = { .port = moved, .vcpu = 2 };
    TEST_EQ(evop(EVTCHNOP_bind_vcpu, &bv), -ENOENT, "bind_vcpu to a vCPU the domain lacks: -ENOENT");
    bv.vcpu = 1;
    TEST_EQ(evop(EVTCHNOP_bind_vcpu, &bv), 0, "bind_vcpu: the interdomain end to vCPU 1");
    struct evtchn_status st = { .dom = DOMID_SELF, .port = moved };
    TEST_EQ(evop(EVTCHNOP_status, &st), 0, "status");
    TEST_EQ(st.vcpu, 1, "status shows vCPU 1");
    TEST_EQ(send(moved_peer), 0, "send from the other end");
    for (int i = 0; i < 2000000 && !__atomic_load_n(&ap_done, __ATOMIC_SEQ_CST); i++)
        asm volatile("sti; pause; cli");
    TEST_EQ(hits[1][moved], 1, "the moved port signalled vCPU 1");
    TEST_EQ(hits[0][moved], 0, "and not vCPU 0");
    TEST_EQ(wrong_cpu, 0, "every upcall found an event of its own vCPU");
    /* vCPU 0: the answers and the initial event; vCPU 1: the pings and the moved port */
    TEST_ASSERT(upcalls[0] == ROUNDS + 1 && upcalls[1] == ROUNDS + 1,
                "one upcall per event, no storm (%u, %u)", upcalls[0], upcalls[1]);
}

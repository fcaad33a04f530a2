/* -xen: event channels as Xen 4.17 gives them to an HVM domU, and their upcalls.
 *  - the 2-level ABI: loopback interdomain channels, IPIs, VIRQs; the pending and mask
 *    bitmaps in shared_info, the selector and upcall_pending in vcpu_info; masking and
 *    re-delivery on unmask; status, bind_vcpu, close, reset; every error (bad ports,
 *    closed ports, port 0, bad vCPUs, a VIRQ bound twice, a global VIRQ on vCPU 1, bad
 *    pointers);
 *  - the FIFO ABI: init_control and expand_array with their errors, the event words'
 *    PENDING/LINKED/MASKED bits, queue heads and links in the control block, READY bits,
 *    priorities, unmask re-delivery;
 *  - the upcall paths: the callback vector (HVM_PARAM_CALLBACK_IRQ vector type: taken
 *    while upcall_pending is set, no EOI) and the per-vCPU vector
 *    (HVMOP_set_evtchn_upcall_vector, through the LAPIC, with EOI); VIRQ_TIMER from the
 *    single-shot timer; an IPI to another vCPU;
 *  - hvm_op parameters a domU may and may not read or set.
 * QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes smp=2 name=xen_evtchn */
/* guest: xen=yes smp=2 cpu=max,vendor=AuthenticAMD name=xen_evtchn-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/vcpu.h>
#include <xen/event_channel.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/arch-x86/cpuid.h>
#include "xen_pvclock.h"

#define EPERM 1
#define ENOENT 2
#define ESRCH 3
#define EFAULT 14
#define EEXIST 17
#define EINVAL 22
#define ENOSYS 38
#define ETIME 62
#define EOPNOTSUPP 95

#define CALLBACK_VECTOR 0x40
#define UPCALL_VECTOR 0x50

static bool amd;
static struct shared_info *shinfo;

static long hc(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static long evtchn(u32 cmd, void *arg)
{
    return hc(__HYPERVISOR_event_channel_op, cmd, (u64)arg, 0);
}

static long set_param(u32 index, u64 value, u16 dom)
{
    struct xen_hvm_param p = { .domid = dom, .index = index, .value = value };
    return hc(__HYPERVISOR_hvm_op, HVMOP_set_param, (u64)&p, 0);
}

static long get_param(u32 index, u64 *value, u16 dom)
{
    struct xen_hvm_param p = { .domid = dom, .index = index, .value = 0xdead };
    long r = hc(__HYPERVISOR_hvm_op, HVMOP_get_param, (u64)&p, 0);
    *value = p.value;
    return r;
}

/* ---- upcalls: the handler counts them and clears upcall_pending, as Linux does ---- */
static volatile unsigned upcalls[2], lapic_upcalls[2];

static int my_cpu(void)
{
    return apic_id() == 0 ? 0 : 1;
}

static void callback_handler(struct exc_frame *f)
{
    (void)f;
    int cpu = my_cpu();
    upcalls[cpu]++;
    shinfo->vcpu_info[cpu].evtchn_upcall_pending = 0;
}

static void upcall_vector_handler(struct exc_frame *f)
{
    (void)f;
    int cpu = my_cpu();
    lapic_upcalls[cpu]++;
    shinfo->vcpu_info[cpu].evtchn_upcall_pending = 0;
    apic_eoi();
}

static bool test_bit(const volatile xen_ulong_t *map, u32 bit)
{
    return map[bit / 64] >> (bit % 64) & 1;
}

static void clear_bit(volatile xen_ulong_t *map, u32 bit)
{
    map[bit / 64] &= ~(1ull << (bit % 64));
}

static void set_bit(volatile xen_ulong_t *map, u32 bit)
{
    map[bit / 64] |= 1ull << (bit % 64);
}

/* Every event consumed: the bitmaps and selectors clear */
static void clear_events(void)
{
    memset((void *)shinfo->evtchn_pending, 0, sizeof(shinfo->evtchn_pending));
    for (int i = 0; i < 2; i++)
        shinfo->vcpu_info[i].evtchn_pending_sel = 0;
}

/* ---- port helpers ---- */
static u32 alloc_unbound(void)
{
    struct evtchn_alloc_unbound a = { .dom = DOMID_SELF, .remote_dom = DOMID_SELF };
    long r = evtchn(EVTCHNOP_alloc_unbound, &a);
    TEST_ASSERT(r == 0 && a.port > 0, "alloc_unbound: port %u (%ld)", a.port, r);
    return a.port;
}

/* A loopback channel: *a is the unbound end, *b the end bound to it */
static void loopback(u32 *a, u32 *b)
{
    *a = alloc_unbound();
    struct evtchn_bind_interdomain bi = { .remote_dom = DOMID_SELF, .remote_port = *a };
    TEST_EQ(evtchn(EVTCHNOP_bind_interdomain, &bi), 0, "bind_interdomain to our own unbound port");
    *b = bi.local_port;
}

static u32 status_of(u32 port, struct evtchn_status *s)
{
    *s = (struct evtchn_status){ .dom = DOMID_SELF, .port = port };
    long r = evtchn(EVTCHNOP_status, s);
    return r ? 0xffffffffu : s->status;
}

static void send(u32 port)
{
    struct evtchn_send s = { .port = port };
    TEST_EQ(evtchn(EVTCHNOP_send, &s), 0, "send");
}

static void close_port(u32 port)
{
    struct evtchn_close c = { .port = port };
    TEST_EQ(evtchn(EVTCHNOP_close, &c), 0, "close");
}

/* ---- the 2-level ABI with the callback vector ---- */
static void test_2level(void)
{
    volatile struct vcpu_info *vi = &shinfo->vcpu_info[0];
    /* errors first */
    struct evtchn_send bad = { .port = 0 };
    TEST_EQ(evtchn(EVTCHNOP_send, &bad), -EINVAL, "send on port 0 (reserved): -EINVAL");
    bad.port = 4096;
    TEST_EQ(evtchn(EVTCHNOP_send, &bad), -EINVAL, "send on port 4096 (beyond 2-level): -EINVAL");
    bad.port = 63;
    TEST_EQ(evtchn(EVTCHNOP_send, &bad), -EINVAL, "send on a closed port: -EINVAL");
    struct evtchn_close c0 = { .port = 0 };
    TEST_EQ(evtchn(EVTCHNOP_close, &c0), -EINVAL, "close port 0: -EINVAL");
    c0.port = 5;
    TEST_EQ(evtchn(EVTCHNOP_close, &c0), -EINVAL, "close a free port: -EINVAL");
    TEST_EQ(evtchn(99, &c0), -ENOSYS, "unknown sub-op: -ENOSYS");
    TEST_EQ(hc(__HYPERVISOR_event_channel_op, EVTCHNOP_send, 0x8000000000000000ull, 0), -EFAULT,
            "non-canonical argument: -EFAULT");
    TEST_EQ(hc(__HYPERVISOR_event_channel_op, EVTCHNOP_status, 0xfee00000ull, 0), -EFAULT,
            "argument in MMIO: -EFAULT");
    struct evtchn_alloc_unbound au = { .dom = 0, .remote_dom = DOMID_SELF };
    TEST_EQ(evtchn(EVTCHNOP_alloc_unbound, &au), -EPERM, "alloc_unbound in dom0: -EPERM");
    au.dom = 77;
    TEST_EQ(evtchn(EVTCHNOP_alloc_unbound, &au), -ESRCH, "alloc_unbound in a domain that does not exist: -ESRCH");
    struct evtchn_set_priority sp = { .port = 1, .priority = 3 };
    TEST_EQ(evtchn(EVTCHNOP_set_priority, &sp), -ENOSYS, "set_priority with 2-level: -ENOSYS");
    struct evtchn_expand_array ea = { .array_gfn = (u64)page_alloc() >> 12 };
    TEST_EQ(evtchn(EVTCHNOP_expand_array, &ea), -EOPNOTSUPP, "expand_array with 2-level: -EOPNOTSUPP");

    u32 a, b;
    loopback(&a, &b);
    /* ports 1 and 2 are xenstore's and the PV console's (the toolstack's, in that order) */
    TEST_ASSERT(a == 3 && b == 4, "the lowest free ports, 3 and 4 (got %u, %u)", a, b);
    struct evtchn_status s;
    TEST_EQ(status_of(a, &s), EVTCHNSTAT_interdomain, "status: interdomain");
    TEST_ASSERT(s.u.interdomain.port == b && s.u.interdomain.dom == 1 && s.vcpu == 0,
                "status: the other end is port %u of domain 1, vCPU 0", b);
    /* binding sets the new end pending (the other end may have signalled before) */
    TEST_ASSERT(test_bit(shinfo->evtchn_pending, b), "bind_interdomain: the new port is pending");
    TEST_ASSERT(upcalls[0] >= 1, "and the upcall came by the callback vector");
    clear_bit(shinfo->evtchn_pending, b);
    vi->evtchn_pending_sel = 0;

    unsigned before = upcalls[0];
    send(b);
    TEST_ASSERT(test_bit(shinfo->evtchn_pending, a), "send on one end: the other is pending");
    TEST_ASSERT(vi->evtchn_pending_sel & 1, "selector bit 0 set");
    TEST_EQ(upcalls[0], before + 1, "one upcall");
    /* pending already: no new upcall, nothing changes */
    vi->evtchn_pending_sel = 0;
    send(b);
    TEST_EQ(upcalls[0], before + 1, "sending again while pending: no upcall");
    TEST_EQ(vi->evtchn_pending_sel, 0, "and no selector bit");
    clear_bit(shinfo->evtchn_pending, a);

    /* masked: pending set, no selector and no upcall; unmask re-delivers */
    set_bit(shinfo->evtchn_mask, a);
    send(b);
    TEST_ASSERT(test_bit(shinfo->evtchn_pending, a), "masked port: pending set");
    TEST_EQ(upcalls[0], before + 1, "masked port: no upcall");
    TEST_EQ(vi->evtchn_pending_sel, 0, "masked port: no selector bit");
    struct evtchn_unmask um = { .port = a };
    TEST_EQ(evtchn(EVTCHNOP_unmask, &um), 0, "unmask");
    TEST_ASSERT(!test_bit(shinfo->evtchn_mask, a), "unmask cleared the mask bit");
    TEST_EQ(upcalls[0], before + 2, "unmask of a pending port: the upcall comes");
    TEST_ASSERT(vi->evtchn_pending_sel & 1, "with the selector bit");
    um.port = 9999;
    TEST_EQ(evtchn(EVTCHNOP_unmask, &um), -EINVAL, "unmask of an invalid port: -EINVAL");
    clear_bit(shinfo->evtchn_pending, a);
    vi->evtchn_pending_sel = 0;

    /* close one end: the other goes back to unbound; send on it is dropped */
    close_port(b);
    TEST_EQ(status_of(a, &s), EVTCHNSTAT_unbound, "peer closed: unbound again");
    TEST_EQ(s.u.unbound.dom, 1, "waiting for domain 1");
    TEST_EQ(status_of(b, &s), EVTCHNSTAT_closed, "closed port: status closed");
    send(a);
    TEST_ASSERT(!test_bit(shinfo->evtchn_pending, a) && !test_bit(shinfo->evtchn_pending, b),
                "send on an unbound port is dropped");
    struct evtchn_bind_interdomain bi = { .remote_dom = DOMID_SELF, .remote_port = b };
    TEST_EQ(evtchn(EVTCHNOP_bind_interdomain, &bi), -EINVAL, "bind to a closed port: -EINVAL");
    bi.remote_port = a;
    bi.remote_dom = 9;
    TEST_EQ(evtchn(EVTCHNOP_bind_interdomain, &bi), -ESRCH, "bind to a domain that does not exist: -ESRCH");

    /* IPIs */
    struct evtchn_bind_ipi ipi = { .vcpu = 7 };
    TEST_EQ(evtchn(EVTCHNOP_bind_ipi, &ipi), -ENOENT, "bind_ipi to vCPU 7 of 2: -ENOENT");
    ipi.vcpu = 0;
    TEST_EQ(evtchn(EVTCHNOP_bind_ipi, &ipi), 0, "bind_ipi");
    TEST_EQ(ipi.port, b, "reuses the lowest free port");
    before = upcalls[0];
    send(ipi.port);
    TEST_ASSERT(test_bit(shinfo->evtchn_pending, ipi.port) && upcalls[0] == before + 1,
                "an IPI to ourselves: pending, upcall");
    clear_bit(shinfo->evtchn_pending, ipi.port);
    struct evtchn_bind_vcpu bv = { .port = ipi.port, .vcpu = 1 };
    TEST_EQ(evtchn(EVTCHNOP_bind_vcpu, &bv), -EINVAL, "an IPI port cannot move: -EINVAL");
    bv.port = a;
    TEST_EQ(evtchn(EVTCHNOP_bind_vcpu, &bv), 0, "an unbound port moves to vCPU 1");
    TEST_ASSERT(status_of(a, &s) == EVTCHNSTAT_unbound && s.vcpu == 1, "status shows vCPU 1");
    bv.vcpu = 5;
    TEST_EQ(evtchn(EVTCHNOP_bind_vcpu, &bv), -ENOENT, "bind_vcpu to vCPU 5 of 2: -ENOENT");

    /* VIRQs */
    struct evtchn_bind_virq bvq = { .virq = VIRQ_TIMER, .vcpu = 0 };
    TEST_EQ(evtchn(EVTCHNOP_bind_virq, &bvq), 0, "bind VIRQ_TIMER on vCPU 0");
    u32 timer_port = bvq.port;
    TEST_EQ(evtchn(EVTCHNOP_bind_virq, &bvq), -EEXIST, "VIRQ_TIMER again on vCPU 0: -EEXIST");
    bvq = (struct evtchn_bind_virq){ .virq = VIRQ_CONSOLE, .vcpu = 1 };
    TEST_EQ(evtchn(EVTCHNOP_bind_virq, &bvq), -EINVAL, "a global VIRQ on vCPU 1: -EINVAL");
    bvq = (struct evtchn_bind_virq){ .virq = 24, .vcpu = 0 };
    TEST_EQ(evtchn(EVTCHNOP_bind_virq, &bvq), -EINVAL, "VIRQ 24: -EINVAL");
    bvq = (struct evtchn_bind_virq){ .virq = VIRQ_DEBUG, .vcpu = 3 };
    TEST_EQ(evtchn(EVTCHNOP_bind_virq, &bvq), -ENOENT, "VIRQ_DEBUG on vCPU 3 of 2: -ENOENT");
    TEST_ASSERT(status_of(timer_port, &s) == EVTCHNSTAT_virq && s.u.virq == VIRQ_TIMER,
                "status: virq TIMER");
    bv = (struct evtchn_bind_vcpu){ .port = timer_port, .vcpu = 1 };
    TEST_EQ(evtchn(EVTCHNOP_bind_vcpu, &bv), -EINVAL, "a per-vCPU VIRQ cannot move: -EINVAL");

    /* the single-shot timer raises VIRQ_TIMER at its deadline */
    volatile struct vcpu_time_info *t = &vi->time;
    struct vcpu_set_singleshot_timer st = { .timeout_abs_ns = t->system_time - 1000000, .flags = VCPU_SSHOTTMR_future };
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_set_singleshot_timer, 0, (u64)&st), -ETIME,
            "single-shot in the past with VCPU_SSHOTTMR_future: -ETIME");
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_set_singleshot_timer, 1, (u64)&st), -EINVAL,
            "single-shot for another vCPU: -EINVAL");
    clear_events();
    before = upcalls[0];
    st = (struct vcpu_set_singleshot_timer){ .timeout_abs_ns = t->system_time + 2000000 };
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_set_singleshot_timer, 0, (u64)&st), 0, "single-shot in 2 ms");
    for (int i = 0; i < 100 && upcalls[0] == before; i++)
        udelay(100);
    TEST_EQ(upcalls[0], before + 1, "the single-shot timer's upcall came");
    TEST_ASSERT(test_bit(shinfo->evtchn_pending, timer_port), "VIRQ_TIMER's port pending");
    clear_bit(shinfo->evtchn_pending, timer_port);
    before = upcalls[0];
    st.timeout_abs_ns = t->system_time + 1000000;
    hc(__HYPERVISOR_vcpu_op, VCPUOP_set_singleshot_timer, 0, (u64)&st);
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_stop_singleshot_timer, 0, 0), 0, "stop the single-shot");
    udelay(3000);
    TEST_EQ(upcalls[0], before, "a stopped timer does not fire");

    /* reset closes everything */
    struct evtchn_reset rs = { .dom = DOMID_SELF };
    TEST_EQ(evtchn(EVTCHNOP_reset, &rs), 0, "reset");
    TEST_EQ(status_of(a, &s), EVTCHNSTAT_closed, "after reset: closed");
    TEST_EQ(status_of(timer_port, &s), EVTCHNSTAT_closed, "the VIRQ port too");
    bvq = (struct evtchn_bind_virq){ .virq = VIRQ_TIMER, .vcpu = 0 };
    TEST_EQ(evtchn(EVTCHNOP_bind_virq, &bvq), 0, "VIRQ_TIMER can be bound again after reset");
    close_port(bvq.port);
}

/* ---- the other vCPU ---- */
static volatile int ap_go;
static void ap_main(int index)
{
    (void)index;
    apic_enable();
    for (;;) {
        sti();
        asm volatile("hlt");
        if (ap_go < 0)
            break;
    }
    cli();
    for (;;)
        asm volatile("hlt");
}

static void test_ipi_other_vcpu(void)
{
    clear_events();
    struct evtchn_bind_ipi ipi = { .vcpu = 1 };
    TEST_EQ(evtchn(EVTCHNOP_bind_ipi, &ipi), 0, "bind_ipi for vCPU 1");
    unsigned before = upcalls[1];
    send(ipi.port);
    for (int i = 0; i < 1000 && upcalls[1] == before; i++)
        udelay(10);
    TEST_EQ(upcalls[1], before + 1, "an IPI from vCPU 0 reaches vCPU 1 by the callback vector");
    TEST_ASSERT(test_bit(shinfo->evtchn_pending, ipi.port) && (shinfo->vcpu_info[1].evtchn_pending_sel & 1),
                "its port pending, vCPU 1's selector bit set");
    TEST_EQ(shinfo->vcpu_info[0].evtchn_pending_sel & 1, 0, "not vCPU 0's");
    clear_bit(shinfo->evtchn_pending, ipi.port);
    shinfo->vcpu_info[1].evtchn_pending_sel = 0;
    close_port(ipi.port);
}

/* ---- FIFO ---- */
static void test_fifo(void)
{
    struct evtchn_fifo_control_block *cb = page_alloc();
    memset(cb, 0, 4096);
    struct evtchn_init_control ic = { .control_gfn = (u64)cb >> 12, .offset = 4, .vcpu = 0 };
    TEST_EQ(evtchn(EVTCHNOP_init_control, &ic), -EINVAL, "init_control at a misaligned offset: -EINVAL");
    ic.offset = 4096 - 16;
    TEST_EQ(evtchn(EVTCHNOP_init_control, &ic), -EINVAL, "a control block crossing the page: -EINVAL");
    ic.offset = 0;
    ic.vcpu = 2;
    TEST_EQ(evtchn(EVTCHNOP_init_control, &ic), -ENOENT, "init_control for vCPU 2 of 2: -ENOENT");
    ic.vcpu = 0;
    ic.control_gfn = 0xfee00;
    TEST_EQ(evtchn(EVTCHNOP_init_control, &ic), -EINVAL, "a control block in MMIO: -EINVAL");

    /* a pending 2-level event moves across */
    u32 a, b;
    loopback(&a, &b);
    clear_bit(shinfo->evtchn_pending, b);
    send(b); /* port a pending (2-level) */
    ic.control_gfn = (u64)cb >> 12;
    TEST_EQ(evtchn(EVTCHNOP_init_control, &ic), 0, "init_control for vCPU 0");
    clear_events(); /* the 2-level bitmap is not used from now on */
    TEST_EQ(ic.link_bits, EVTCHN_FIFO_LINK_BITS, "link_bits 17");
    TEST_EQ(evtchn(EVTCHNOP_init_control, &ic), -EINVAL, "vCPU 0 again: -EINVAL");
    struct evtchn_set_priority sp = { .port = a, .priority = 16 };
    TEST_EQ(evtchn(EVTCHNOP_set_priority, &sp), -EINVAL, "priority 16: -EINVAL");

    event_word_t *words = page_alloc();
    memset(words, 0, 4096);
    unsigned before = upcalls[0];
    struct evtchn_expand_array ea = { .array_gfn = (u64)words >> 12 };
    TEST_EQ(evtchn(EVTCHNOP_expand_array, &ea), 0, "expand_array: the first page of event words");
    TEST_ASSERT(words[a] & (1u << EVTCHN_FIFO_PENDING), "the 2-level pending event is FIFO-pending now");
    TEST_ASSERT(words[a] & (1u << EVTCHN_FIFO_LINKED), "and linked");
    TEST_EQ(cb->head[EVTCHN_FIFO_PRIORITY_DEFAULT], a, "at the head of the default-priority queue");
    TEST_ASSERT(cb->ready & BIT(EVTCHN_FIFO_PRIORITY_DEFAULT), "that queue is ready");
    TEST_EQ(upcalls[0], before + 1, "with an upcall");

    /* a second event links behind the first: LINK of the tail, no new upcall */
    send(a); /* port b */
    TEST_EQ(words[a] & EVTCHN_FIFO_LINK_MASK, b, "the tail's LINK names the new event");
    TEST_ASSERT((words[b] & (1u << EVTCHN_FIFO_PENDING | 1u << EVTCHN_FIFO_LINKED)) ==
                    (1u << EVTCHN_FIFO_PENDING | 1u << EVTCHN_FIFO_LINKED), "the new event pending and linked");
    TEST_EQ(upcalls[0], before + 1, "no upcall while the queue is ready");

    /* the guest consumes the queue as Linux does: unlink, clear pending, clear ready */
    words[a] = 0;
    words[b] = 0;
    cb->head[EVTCHN_FIFO_PRIORITY_DEFAULT] = 0;
    cb->ready = 0;

    /* priority 3: its own queue */
    sp = (struct evtchn_set_priority){ .port = a, .priority = 3 };
    TEST_EQ(evtchn(EVTCHNOP_set_priority, &sp), 0, "set_priority 3");
    send(b);
    TEST_EQ(cb->head[3], a, "priority 3: head of queue 3");
    TEST_ASSERT(cb->ready == BIT(3), "only queue 3 ready (%#x)", cb->ready);
    TEST_EQ(upcalls[0], before + 2, "an upcall");
    words[a] = 0;
    cb->head[3] = 0;
    cb->ready = 0;

    /* masked: pending, not linked; unmask links it */
    words[a] = 1u << EVTCHN_FIFO_MASKED;
    send(b);
    TEST_EQ(words[a], (1u << EVTCHN_FIFO_MASKED) | (1u << EVTCHN_FIFO_PENDING), "masked event: pending, not linked");
    TEST_EQ(upcalls[0], before + 2, "no upcall");
    struct evtchn_unmask um = { .port = a };
    TEST_EQ(evtchn(EVTCHNOP_unmask, &um), 0, "unmask");
    TEST_EQ(words[a], (1u << EVTCHN_FIFO_PENDING) | (1u << EVTCHN_FIFO_LINKED), "unmasked: linked");
    TEST_EQ(cb->head[3], a, "queued");
    TEST_EQ(upcalls[0], before + 3, "the upcall comes");
    words[a] = 0;
    cb->head[3] = 0;
    cb->ready = 0;
    TEST_ASSERT(!test_bit(shinfo->evtchn_pending, a), "the 2-level bitmap is not used any more");

    struct evtchn_send s = { .port = 1024 };
    TEST_EQ(evtchn(EVTCHNOP_send, &s), -EINVAL, "FIFO: port 1024 (no bucket): -EINVAL");
    close_port(a);
    close_port(b);
    struct evtchn_reset rs = { .dom = DOMID_SELF };
    TEST_EQ(evtchn(EVTCHNOP_reset, &rs), 0, "reset: back to 2-level");
    TEST_EQ(evtchn(EVTCHNOP_set_priority, &sp), -ENOSYS, "set_priority is 2-level's -ENOSYS again");
}

/* ---- the per-vCPU upcall vector ---- */
static void test_upcall_vector(void)
{
    clear_events();
    struct xen_hvm_evtchn_upcall_vector uv = { .vcpu = 0, .vector = 0x0f };
    TEST_EQ(hc(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, (u64)&uv, 0), -EINVAL,
            "upcall vector 0x0f: -EINVAL");
    uv = (struct xen_hvm_evtchn_upcall_vector){ .vcpu = 9, .vector = UPCALL_VECTOR };
    TEST_EQ(hc(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, (u64)&uv, 0), -ENOENT,
            "upcall vector for vCPU 9: -ENOENT");
    uv.vcpu = 0;
    TEST_EQ(hc(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, (u64)&uv, 0), 0,
            "upcall vector 0x50 for vCPU 0");
    u32 a, b;
    unsigned cb_before = upcalls[0], before;
    loopback(&a, &b);
    TEST_ASSERT(lapic_upcalls[0] >= 1, "binding's pending event came through the LAPIC vector");
    clear_events();
    before = lapic_upcalls[0];
    send(b);
    TEST_EQ(lapic_upcalls[0], before + 1, "an event: the LAPIC vector");
    TEST_EQ(upcalls[0], cb_before, "not the callback vector: the per-vCPU vector comes first");
    close_port(a);
    close_port(b);
}

/* ---- HVM parameters ---- */
static void test_params(void)
{
    u64 v;
    TEST_EQ(get_param(HVM_PARAM_CALLBACK_IRQ, &v, DOMID_SELF), 0, "get CALLBACK_IRQ");
    TEST_EQ(v, (u64)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | CALLBACK_VECTOR, "the vector we set");
    TEST_EQ(get_param(HVM_PARAM_STORE_PFN, &v, DOMID_SELF), 0, "get STORE_PFN");
    TEST_EQ(get_param(HVM_PARAM_TIMER_MODE, &v, DOMID_SELF), -EPERM, "get TIMER_MODE: the toolstack's, -EPERM");
    TEST_EQ(set_param(HVM_PARAM_TIMER_MODE, 0, DOMID_SELF), -EPERM, "set TIMER_MODE: -EPERM");
    TEST_EQ(set_param(HVM_PARAM_STORE_PFN, 5, DOMID_SELF), -EPERM, "set STORE_PFN: -EPERM");
    TEST_EQ(set_param(HVM_PARAM_STORE_EVTCHN, 5, DOMID_SELF), 0, "set STORE_EVTCHN");
    TEST_EQ(get_param(HVM_PARAM_STORE_EVTCHN, &v, 1), 0, "get STORE_EVTCHN by our own id");
    TEST_EQ(v, 5, "reads back");
    TEST_EQ(get_param(HVM_NR_PARAMS, &v, DOMID_SELF), -EINVAL, "parameter 39: -EINVAL");
    TEST_EQ(get_param(HVM_PARAM_STORE_PFN, &v, 0), -EPERM, "dom0's parameters: -EPERM");
    TEST_EQ(get_param(HVM_PARAM_STORE_PFN, &v, 33), -ESRCH, "a domain that does not exist: -ESRCH");
    TEST_EQ(set_param(HVM_PARAM_X87_FIP_WIDTH, 3, DOMID_SELF), -EINVAL, "X87_FIP_WIDTH 3: -EINVAL");
    /* system time as the pvclock gives it before and after (the raw system_time field
     * is only a base, as old as the last update of the time info) */
    struct xen_hvm_get_time gt;
    u64 tsc, before = pvclock_read_tsc(&shinfo->vcpu_info[0].time, &tsc);
    TEST_EQ(hc(__HYPERVISOR_hvm_op, HVMOP_get_time, (u64)&gt, 0), 0, "get_time");
    u64 after = pvclock_read_tsc(&shinfo->vcpu_info[0].time, &tsc);
    TEST_ASSERT(gt.now + 1000000 >= before && gt.now <= after + 1000000,
                "get_time is system time: %llu within [%llu, %llu] (1 ms slack)",
                (unsigned long long)gt.now, (unsigned long long)before, (unsigned long long)after);
    TEST_EQ(hc(__HYPERVISOR_hvm_op, 99, 0, 0), -ENOSYS, "unknown hvm_op: -ENOSYS");
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    TEST_ASSERT(cpuid(0x40000004).a & XEN_HVM_CPUID_UPCALL_VECTOR, "the HVM leaf offers the upcall vector");
    shinfo = page_alloc();
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)shinfo >> 12 };
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0), 0, "shared_info placed");
    memset((void *)shinfo->evtchn_pending, 0, sizeof(shinfo->evtchn_pending));
    memset((void *)shinfo->evtchn_mask, 0, sizeof(shinfo->evtchn_mask));
    exc_set_handler(CALLBACK_VECTOR, callback_handler);
    exc_set_handler(UPCALL_VECTOR, upcall_vector_handler);
    apic_enable();
    TEST_EQ(set_param(HVM_PARAM_CALLBACK_IRQ, (u64)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | CALLBACK_VECTOR,
                      DOMID_SELF), 0, "CALLBACK_IRQ: vector 0x40");
    TEST_EQ(smp_start(ap_main, 1, 1000000), 1, "vCPU 1 up");
    sti();
    test_2level();
    test_ipi_other_vcpu();
    test_fifo();
    test_params();
    test_upcall_vector();
    ap_go = -1;
    cli();
}

/* -xen: the FIFO event-channel ABI as Xen's event_fifo.c has it. Before init_control
 * set_priority is -ENOSYS and expand_array -EOPNOTSUPP; init_control's checks (8-byte
 * alignment and fit of the control block, the vCPU, the frame, once per vCPU) and
 * link_bits; an event pending in the 2-level bitmap at the switch is linked once the
 * event array reaches it; send links an event at its queue's tail (the tail's LINK
 * field) or makes it the head of an empty queue, setting the READY bit and the upcall;
 * priorities choose the queue; a MASKED event is only marked PENDING and unmask links
 * it; an already LINKED one is not linked twice; reset goes back to 2-level.
 * QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes name=xen_fifo */
/* guest: xen=yes vendor=AuthenticAMD name=xen_fifo-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/event_channel.h>
#include <xen/arch-x86/cpuid.h>

#define ENOENT 2
#define EINVAL 22
#define ENOSYS 38
#define EOPNOTSUPP 95

#define PENDING (1u << EVTCHN_FIFO_PENDING)
#define MASKED (1u << EVTCHN_FIFO_MASKED)
#define LINKED (1u << EVTCHN_FIFO_LINKED)

static bool amd;
static struct shared_info *shinfo;

static long ev(int cmd, void *arg)
{
    return xen_hypercall3(amd, __HYPERVISOR_event_channel_op, (u64)cmd, (u64)arg, 0);
}

static u32 bind_ipi(void)
{
    struct evtchn_bind_ipi ip = { .vcpu = 0 };
    TEST_EQ(ev(EVTCHNOP_bind_ipi, &ip), 0, "bind_ipi");
    return ip.port;
}

static long send(u32 port)
{
    struct evtchn_send s = { .port = port };
    return ev(EVTCHNOP_send, &s);
}

static long init_control(u64 gfn, u32 offset, u32 vcpu, u32 *link_bits)
{
    struct evtchn_init_control c = { .control_gfn = gfn, .offset = offset, .vcpu = vcpu };
    long rc = ev(EVTCHNOP_init_control, &c);
    if (link_bits)
        *link_bits = c.link_bits;
    return rc;
}

static long expand(u64 gfn)
{
    struct evtchn_expand_array a = { .array_gfn = gfn };
    return ev(EVTCHNOP_expand_array, &a);
}

static long set_priority(u32 port, u32 prio)
{
    struct evtchn_set_priority p = { .port = port, .priority = prio };
    return ev(EVTCHNOP_set_priority, &p);
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    u8 *page = page_alloc();
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)page >> 12 };
    TEST_EQ(xen_hypercall3(amd, __HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0), 0,
            "shared_info placed");
    shinfo = (void *)page;
    shinfo->evtchn_mask[0] = 0;
    volatile struct vcpu_info *vi = &shinfo->vcpu_info[0];

    /* 2-level still: an event left pending across the switch */
    u32 p = bind_ipi();
    TEST_EQ(send(p), 0, "send while 2-level");
    TEST_ASSERT(shinfo->evtchn_pending[0] & (1ul << p), "pending in the 2-level bitmap");
    TEST_EQ(set_priority(p, 3), -ENOSYS, "set_priority with the 2-level ABI");
    TEST_EQ(set_priority(5000, 3), -EINVAL, "set_priority of an out-of-range port first");
    u8 *array = page_alloc(), *control = page_alloc();
    memset(array, 0, 4096);
    memset(control, 0xee, 4096);
    TEST_EQ(expand((u64)array >> 12), -EOPNOTSUPP, "expand_array before init_control");

    u64 cgfn = (u64)control >> 12;
    TEST_EQ(init_control(cgfn, 4, 0, NULL), -EINVAL, "control block not 8-byte aligned");
    TEST_EQ(init_control(cgfn, 4096 - sizeof(struct evtchn_fifo_control_block) + 8, 0, NULL),
            -EINVAL, "control block crossing the page");
    TEST_EQ(init_control(cgfn, 0, 1, NULL), -ENOENT, "a vCPU the domain lacks");
    TEST_EQ(init_control(0xfee00, 0, 0, NULL), -EINVAL, "the LAPIC frame");
    memset(control, 0, 4096);
    struct evtchn_fifo_control_block *cb = (void *)(control + 64);
    u32 link_bits = 0;
    vi->evtchn_upcall_pending = 0;
    TEST_EQ(init_control(cgfn, 64, 0, &link_bits), 0, "init_control");
    TEST_EQ(link_bits, EVTCHN_FIFO_LINK_BITS, "link_bits");
    TEST_EQ(init_control(cgfn, 0, 0, NULL), -EINVAL, "init_control twice for vCPU 0");
    TEST_EQ(cb->ready, 0, "nothing linked without an event array");

    volatile event_word_t *w = (volatile event_word_t *)array;
    TEST_EQ(expand((u64)array >> 12), 0, "expand_array");
    TEST_EQ(w[p], PENDING | LINKED, "the 2-level pending event is linked once its word exists");
    TEST_EQ(cb->head[EVTCHN_FIFO_PRIORITY_DEFAULT], p, "head of the default-priority queue");
    TEST_EQ(cb->ready, 1u << EVTCHN_FIFO_PRIORITY_DEFAULT, "its READY bit");
    TEST_EQ(vi->evtchn_upcall_pending, 1, "upcall pending");
    TEST_EQ(expand(~0ull), -EINVAL, "expand_array with a bad frame");

    /* consume it as a guest does: clear READY and the head, then LINKED and PENDING */
    cb->ready = 0;
    cb->head[EVTCHN_FIFO_PRIORITY_DEFAULT] = 0;
    w[p] = 0;
    vi->evtchn_upcall_pending = 0;

    /* priorities pick the queue */
    TEST_EQ(set_priority(p, EVTCHN_FIFO_PRIORITY_MIN + 1), -EINVAL, "priority 16");
    TEST_EQ(set_priority(p, 3), 0, "priority 3");
    TEST_EQ(send(p), 0, "send");
    TEST_EQ(cb->head[3], p, "head of queue 3");
    TEST_EQ(cb->ready, 1u << 3, "READY bit 3");
    TEST_EQ(vi->evtchn_upcall_pending, 1, "upcall pending");
    vi->evtchn_upcall_pending = 0;
    TEST_EQ(send(p), 0, "send while LINKED");
    TEST_EQ(w[p], PENDING | LINKED, "not linked twice");
    TEST_EQ(vi->evtchn_upcall_pending, 0, "no second upcall");

    /* a queue of three: tail links */
    u32 q = bind_ipi(), r = bind_ipi(), s = bind_ipi();
    w[s] = MASKED;
    TEST_EQ(send(q), 0, "send q");
    TEST_EQ(send(r), 0, "send r");
    TEST_EQ(cb->head[EVTCHN_FIFO_PRIORITY_DEFAULT], q, "q heads the default queue");
    TEST_EQ(w[q], PENDING | LINKED | r, "q's LINK names r");
    TEST_EQ(w[r], PENDING | LINKED, "r is the tail");
    TEST_EQ(cb->ready, (1u << 3) | (1u << EVTCHN_FIFO_PRIORITY_DEFAULT), "both READY bits");
    TEST_EQ(send(s), 0, "send to the masked s");
    TEST_EQ(w[s], MASKED | PENDING, "masked: only PENDING");
    TEST_EQ(w[r], PENDING | LINKED, "and r's LINK untouched");
    struct evtchn_unmask um = { .port = s };
    TEST_EQ(ev(EVTCHNOP_unmask, &um), 0, "unmask s");
    TEST_EQ(w[s], PENDING | LINKED, "s linked by unmask");
    TEST_EQ(w[r], PENDING | LINKED | s, "at the tail: r's LINK names s");

    /* the guest consumed the whole queue (tail unlinked): the next event is a new head */
    w[q] = w[r] = w[s] = 0;
    cb->ready = 0;
    cb->head[EVTCHN_FIFO_PRIORITY_DEFAULT] = 0;
    TEST_EQ(send(q), 0, "send q again");
    TEST_EQ(cb->head[EVTCHN_FIFO_PRIORITY_DEFAULT], q, "q heads again (the old tail was unlinked)");
    TEST_EQ(w[s], 0, "the old tail's word untouched");

    /* reset: back to 2-level */
    struct evtchn_reset rs = { .dom = DOMID_SELF };
    TEST_EQ(ev(EVTCHNOP_reset, &rs), 0, "reset");
    p = bind_ipi();
    TEST_EQ(set_priority(p, 3), -ENOSYS, "2-level again after reset");
    shinfo->evtchn_pending[0] = 0;
    TEST_EQ(send(p), 0, "send");
    TEST_ASSERT(shinfo->evtchn_pending[0] & (1ul << p), "pending in the 2-level bitmap again");
}

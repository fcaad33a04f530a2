/* Event channels (2-level and FIFO ABIs) and the upcall paths by which a pending event
 * reaches the guest, as Xen 4.17 has them (xen/common/event_channel.c, event_2l.c,
 * event_fifo.c, xen/arch/x86/hvm/irq.c). The guest's side of every structure (the
 * shared_info bitmaps, vcpu_info, the FIFO control blocks and event arrays) lives in
 * guest RAM and is reached through the bounds-checked guest memory; the port table is
 * nestor's. nestor's backends are domain 0: their ends of interdomain channels are the
 * host ports of xen.h. */
#include <stdlib.h>
#include <string.h>

#include "hv/xen/xen_internal.h"

#include <xen/event_channel.h>

/* Xen's port states (ECS_*, xen/include/xen/event.h, not public) */
enum { ECS_FREE, ECS_RESERVED, ECS_UNBOUND, ECS_INTERDOMAIN, ECS_PIRQ, ECS_VIRQ, ECS_IPI };

/* Ports come in buckets of 64 (Xen's EVTCHNS_PER_BUCKET on x86-64): a port is valid once
 * its bucket exists. The toolstack's default limit on a domU's ports (xl's
 * max_event_channels) is 1023. */
#define EVTCHNS_PER_BUCKET 64u
#define MAX_EVTCHN_PORT 1023u

#define HOST_PORTS 64u
/* event words in one page of the FIFO event array, and the array's most pages */
#define FIFO_WORDS_PER_PAGE (4096u / sizeof(event_word_t))
#define FIFO_MAX_PAGES (EVTCHN_FIFO_NR_CHANNELS / FIFO_WORDS_PER_PAGE)

struct port {
    u8 state;
    u8 priority;        /* FIFO */
    bool fifo_pending;  /* FIFO: raised while the port had no event word */
    u16 remote_dom;     /* unbound: who may bind; interdomain: the other end's domain */
    u32 remote_port;
    u32 virq_pirq;
    u32 notify_vcpu;
    /* FIFO: the queue the event was last linked on */
    u32 last_vcpu;
    u8 last_priority;
};

/* A port of domain 0, where nestor's backends are. */
struct host_port {
    bool used;
    bool bound;          /* connected to guest port guest_port */
    u32 guest_port;
    xen_host_notify_fn notify;
    void *opaque;
};

struct fifo_queue {
    u32 tail;
};

struct xen_evtchn {
    struct port *ports;
    u32 valid;          /* ports below this exist (whole buckets) */
    bool fifo;
    /* FIFO: event array pages (guest frames) and per vCPU the control block and queues */
    u64 array_gpa[FIFO_MAX_PAGES];
    u32 array_pages;
    struct fifo_vcpu {
        bool ready;
        u64 control_gpa;
        struct fifo_queue q[EVTCHN_FIFO_MAX_QUEUES];
    } *fifo_vcpu;
    /* per vCPU: the port bound to each VIRQ (0: none), the upcall vector (0: none) */
    u32 (*virq_port)[NR_VIRQS];
    u8 *upcall_vector;
    /* HVM_PARAM_CALLBACK_IRQ: how vCPU 0's upcalls are signalled otherwise */
    enum { VIA_NONE, VIA_GSI, VIA_PCI_INTX, VIA_VECTOR } via_type;
    u32 via_gsi;
    u8 via_devfn, via_intx, via_vector;
    bool via_asserted;
    struct host_port host[HOST_PORTS];
    int ncpus;          /* the vCPUs of the per-vCPU arrays */
};

static struct guest_mem *gmem(const struct xen *x)
{
    return x->host.cpus[0]->mem;
}

int xen_evtchn_create(struct xen *x)
{
    struct xen_evtchn *e = calloc(1, sizeof(*e));
    x->evtchn = e;
    if (!e)
        return -ENOMEM;
    size_t n = x->host.ncpus > 0 ? (size_t)x->host.ncpus : 1;
    e->ports = calloc(MAX_EVTCHN_PORT + 1, sizeof(*e->ports));
    e->fifo_vcpu = calloc(n, sizeof(*e->fifo_vcpu));
    e->virq_port = calloc(n, sizeof(*e->virq_port));
    e->upcall_vector = calloc(n, 1);
    if (!e->ports || !e->fifo_vcpu || !e->virq_port || !e->upcall_vector)
        return -ENOMEM;
    e->ncpus = (int)n;
    e->valid = EVTCHNS_PER_BUCKET;
    e->ports[0].state = ECS_RESERVED;
    return 0;
}

void xen_evtchn_destroy(struct xen *x)
{
    struct xen_evtchn *e = x->evtchn;
    if (e) {
        free(e->ports);
        free(e->fifo_vcpu);
        free(e->virq_port);
        free(e->upcall_vector);
    }
    free(e);
    x->evtchn = NULL;
}

/* ---- guest memory: bits and words at guest-physical addresses ---- */
static bool gbit_test(struct xen *x, u64 base, u32 bit)
{
    u8 b = 0;
    mem_read_u8(gmem(x), base + bit / 8, &b);
    return b >> (bit % 8) & 1;
}

/* Returns the bit's old value; a bit outside RAM reads as set (nothing to do). */
static bool gbit_set(struct xen *x, u64 base, u32 bit, bool value)
{
    u8 b;
    if (mem_read_u8(gmem(x), base + bit / 8, &b))
        return true;
    bool old = b >> (bit % 8) & 1;
    b = value ? b | (u8)(1u << (bit % 8)) : b & (u8)~(1u << (bit % 8));
    mem_write_u8(gmem(x), base + bit / 8, b);
    return old;
}

/* ---- ports ---- */
/* Xen's max_evtchns(): 2-level has (bits of xen_ulong_t)^2 ports, 32-bit guests 1024 */
u32 xen_evtchn_max_ports(const struct xen *x)
{
    if (x->evtchn->fifo)
        return EVTCHN_FIFO_NR_CHANNELS;
    return x->shinfo_32 ? 32u * 32u : (u32)EVTCHN_2L_NR_CHANNELS;
}

static bool port_valid(const struct xen *x, u32 port)
{
    return port < x->evtchn->valid && port < xen_evtchn_max_ports(x);
}

/* Xen's get_free_port(): the lowest free port, a new bucket when all are taken */
static long alloc_port(struct xen *x)
{
    struct xen_evtchn *e = x->evtchn;
    for (u32 p = 1; p <= MAX_EVTCHN_PORT && p < xen_evtchn_max_ports(x); p++) {
        if (p >= e->valid)
            e->valid += EVTCHNS_PER_BUCKET;
        if (e->ports[p].state == ECS_FREE) {
            e->ports[p] = (struct port){ .state = ECS_UNBOUND, .priority = EVTCHN_FIFO_PRIORITY_DEFAULT,
                                         .last_priority = EVTCHN_FIFO_PRIORITY_DEFAULT };
            return p;
        }
    }
    return -ENOSPC;
}

/* ---- the upcall ---- */
static bool upcall_pending(struct xen *x, int vcpu)
{
    u64 gpa;
    u8 v = 0;
    if (!xen_vcpu_info_gpa(x, vcpu, &gpa))
        return false;
    mem_read_u8(gmem(x), gpa + offsetof(struct vcpu_info, evtchn_upcall_pending), &v);
    return v != 0;
}

static void set_via_line(struct xen *x, bool level)
{
    struct xen_evtchn *e = x->evtchn;
    if (e->via_type == VIA_GSI)
        x->host.ops->set_gsi(x->host.opaque, (int)e->via_gsi, level);
    else if (e->via_type == VIA_PCI_INTX)
        x->host.ops->set_pci_intx(x->host.opaque, e->via_devfn, e->via_intx, level);
}

/* Xen's hvm_set_callback_irq_level(): the GSI or INTx line follows vCPU 0's
 * evtchn_upcall_pending */
static void update_via_line(struct xen *x)
{
    struct xen_evtchn *e = x->evtchn;
    if (e->via_type != VIA_GSI && e->via_type != VIA_PCI_INTX)
        return;
    bool level = upcall_pending(x, 0);
    if (level == e->via_asserted)
        return;
    e->via_asserted = level;
    set_via_line(x, level);
}

/* Xen's hvm_assert_evtchn_irq(): the per-vCPU vector through the LAPIC, else the
 * callback vector (taken while upcall_pending is set: xen_evtchn_intr_pending), else
 * for vCPU 0 the GSI or INTx line. A blocked vCPU wakes in every case. */
static void assert_upcall(struct xen *x, int vcpu)
{
    struct xen_evtchn *e = x->evtchn;
    if (e->upcall_vector[vcpu])
        x->host.ops->deliver_vector(x->host.opaque, vcpu, e->upcall_vector[vcpu]);
    else if (e->via_type == VIA_VECTOR)
        cpu_check_events(x->host.cpus[vcpu]);
    else if (vcpu == 0)
        update_via_line(x);
    xen_sched_wake(x, vcpu);
    x->host.ops->kick(x->host.opaque, vcpu);
}

/* Xen's vcpu_mark_events_pending() */
static void mark_events_pending(struct xen *x, int vcpu)
{
    u64 gpa;
    if (!xen_vcpu_info_gpa(x, vcpu, &gpa))
        return;
    if (gbit_set(x, gpa + offsetof(struct vcpu_info, evtchn_upcall_pending), 0, true))
        return;
    assert_upcall(x, vcpu);
}

/* ---- 2-level ABI (event_2l.c) ---- */
static u64 shinfo_field(const struct xen *x, bool mask)
{
    if (x->shinfo_32)
        return x->shinfo_gpa + (mask ? offsetof(struct shared_info_x86_32, evtchn_mask)
                                     : offsetof(struct shared_info_x86_32, evtchn_pending));
    return x->shinfo_gpa + (mask ? offsetof(struct shared_info, evtchn_mask)
                                 : offsetof(struct shared_info, evtchn_pending));
}

static u64 pending_sel_gpa(const struct xen *x, u64 info)
{
    return info + (x->shinfo_32 ? offsetof(struct vcpu_info_x86_32, evtchn_pending_sel)
                                : offsetof(struct vcpu_info, evtchn_pending_sel));
}

static void l2_set_pending(struct xen *x, int vcpu, u32 port)
{
    if (!x->shinfo_placed)
        return;
    if (gbit_set(x, shinfo_field(x, false), port, true))
        return;
    u32 word_bits = x->shinfo_32 ? 32 : 64;
    u64 info;
    if (!gbit_test(x, shinfo_field(x, true), port) && xen_vcpu_info_gpa(x, vcpu, &info) &&
        !gbit_set(x, pending_sel_gpa(x, info), port / word_bits, true))
        mark_events_pending(x, vcpu);
}

static void l2_unmask(struct xen *x, u32 port)
{
    if (!x->shinfo_placed)
        return;
    int vcpu = (int)x->evtchn->ports[port].notify_vcpu;
    u32 word_bits = x->shinfo_32 ? 32 : 64;
    u64 info;
    if (gbit_set(x, shinfo_field(x, true), port, false) &&
        gbit_test(x, shinfo_field(x, false), port) && xen_vcpu_info_gpa(x, vcpu, &info) &&
        !gbit_set(x, pending_sel_gpa(x, info), port / word_bits, true))
        mark_events_pending(x, vcpu);
}

/* ---- FIFO ABI (event_fifo.c) ---- */
/* The guest-physical address of port's event word, if its array page exists */
static bool fifo_word(struct xen *x, u32 port, u64 *gpa)
{
    struct xen_evtchn *e = x->evtchn;
    u32 page = port / FIFO_WORDS_PER_PAGE;
    if (port >= EVTCHN_FIFO_NR_CHANNELS || page >= e->array_pages)
        return false;
    *gpa = e->array_gpa[page] + (port % FIFO_WORDS_PER_PAGE) * sizeof(event_word_t);
    return true;
}

static u32 word_read(struct xen *x, u64 gpa)
{
    u32 w = 0;
    mem_read_u32(gmem(x), gpa, &w);
    return w;
}

static void word_write(struct xen *x, u64 gpa, u32 w)
{
    mem_write_u32(gmem(x), gpa, w);
}

/* Links port at the tail of its vCPU's queue of its priority, as Xen's
 * evtchn_fifo_set_pending(): the head in the control block when the queue was empty
 * (or its tail was unlinked by the guest meanwhile), then the queue's READY bit; a
 * change of queue forgets the old queue's tail if it was this port. */
static void fifo_set_pending(struct xen *x, int vcpu, u32 port)
{
    struct xen_evtchn *e = x->evtchn;
    struct port *p = &e->ports[port];
    u64 wgpa;
    if (!fifo_word(x, port, &wgpa)) {
        p->fifo_pending = true;
        return;
    }
    u32 w = word_read(x, wgpa);
    bool was_pending = w >> EVTCHN_FIFO_PENDING & 1;
    w |= 1u << EVTCHN_FIFO_PENDING;
    word_write(x, wgpa, w);
    struct fifo_vcpu *fv = &e->fifo_vcpu[vcpu];
    if (!(w >> EVTCHN_FIFO_MASKED & 1) && !(w >> EVTCHN_FIFO_LINKED & 1) && fv->ready) {
        struct fifo_queue *old_q = &e->fifo_vcpu[p->last_vcpu].q[p->last_priority];
        if (old_q->tail == port)
            old_q->tail = 0;
        p->last_vcpu = (u32)vcpu;
        p->last_priority = p->priority;
        struct fifo_queue *q = &fv->q[p->priority];
        word_write(x, wgpa, w | 1u << EVTCHN_FIFO_LINKED);
        bool linked = false;
        u64 tgpa;
        if (q->tail && fifo_word(x, q->tail, &tgpa)) {
            u32 t = word_read(x, tgpa);
            if (t >> EVTCHN_FIFO_LINKED & 1) {
                t = (t & ~((1u << EVTCHN_FIFO_BUSY) | EVTCHN_FIFO_LINK_MASK)) | port;
                word_write(x, tgpa, t);
                linked = true;
            }
        }
        u64 cb = fv->control_gpa;
        if (!linked)
            mem_write_u32(gmem(x), cb + offsetof(struct evtchn_fifo_control_block, head) +
                                       p->priority * sizeof(u32), port);
        q->tail = port;
        if (!linked && !gbit_set(x, cb + offsetof(struct evtchn_fifo_control_block, ready),
                                 p->priority, true))
            mark_events_pending(x, vcpu);
    }
    if (!was_pending)
        xen_sched_port_pending(x, port);
}

/* ---- the ABI's operations on a port ---- */
static void port_set_pending(struct xen *x, u32 port)
{
    int vcpu = (int)x->evtchn->ports[port].notify_vcpu;
    if (x->evtchn->fifo) {
        fifo_set_pending(x, vcpu, port);
        return;
    }
    bool was = x->shinfo_placed && gbit_test(x, shinfo_field(x, false), port);
    l2_set_pending(x, vcpu, port);
    if (!was)
        xen_sched_port_pending(x, port);
}

static void port_clear_pending(struct xen *x, u32 port)
{
    u64 w;
    x->evtchn->ports[port].fifo_pending = false;
    if (x->evtchn->fifo) {
        if (fifo_word(x, port, &w))
            word_write(x, w, word_read(x, w) & ~(1u << EVTCHN_FIFO_PENDING));
    } else if (x->shinfo_placed) {
        gbit_set(x, shinfo_field(x, false), port, false);
    }
}

static void port_unmask(struct xen *x, u32 port)
{
    u64 w;
    if (!x->evtchn->fifo) {
        l2_unmask(x, port);
    } else if (fifo_word(x, port, &w)) {
        u32 v = word_read(x, w) & ~(1u << EVTCHN_FIFO_MASKED);
        word_write(x, w, v);
        if (v >> EVTCHN_FIFO_PENDING & 1)
            fifo_set_pending(x, (int)x->evtchn->ports[port].notify_vcpu, port);
    }
}

bool xen_evtchn_is_pending(struct xen *x, u32 port)
{
    u64 w;
    if (!port_valid(x, port))
        return false;
    if (x->evtchn->fifo)
        return fifo_word(x, port, &w) && (word_read(x, w) >> EVTCHN_FIFO_PENDING & 1);
    return x->shinfo_placed && gbit_test(x, shinfo_field(x, false), port);
}

int xen_evtchn_set_pending(struct xen *x, u32 port)
{
    if (!port_valid(x, port) || x->evtchn->ports[port].state < ECS_UNBOUND)
        return -EINVAL;
    port_set_pending(x, port);
    return 0;
}

static bool virq_is_global(u32 virq)
{
    return !(virq == VIRQ_TIMER || virq == VIRQ_DEBUG || virq == VIRQ_XENOPROF ||
             virq == VIRQ_XENPMU);
}

void xen_evtchn_send_virq(struct xen *x, int vcpu, u32 virq)
{
    if (virq >= NR_VIRQS || vcpu < 0 || vcpu >= x->host.ncpus)
        return;
    /* a global VIRQ is bound on vCPU 0 and goes where its port says */
    u32 port = x->evtchn->virq_port[virq_is_global(virq) ? 0 : vcpu][virq];
    if (port)
        port_set_pending(x, port);
}

/* ---- the GSI / PCI INTx callback line ---- */
/* Xen's hvm_maybe_deassert_evtchn_irq(): the line drops once vCPU 0's upcall is no
 * longer pending */
void xen_maybe_deassert_callback(struct xen *x)
{
    struct xen_evtchn *e = x->evtchn;
    if (e->via_asserted && !upcall_pending(x, 0)) {
        e->via_asserted = false;
        set_via_line(x, false);
    }
}

/* ---- the callback vector: taken like an interrupt while the vCPU's upcall is pending,
 * ahead of the PIC and the LAPIC (Xen's hvm_vcpu_has_pending_irq) ---- */
int xen_intr_pending(struct xen *x, struct cpu *c)
{
    struct xen_evtchn *e = x->evtchn;
    if (e->via_type == VIA_GSI || e->via_type == VIA_PCI_INTX) {
        /* before the interrupt controllers are asked again */
        xen_maybe_deassert_callback(x);
        return -1;
    }
    if (e->via_type != VIA_VECTOR || e->upcall_vector[c->id] || !upcall_pending(x, c->id))
        return -1;
    return e->via_vector;
}

/* ---- HVM_PARAM_CALLBACK_IRQ and the per-vCPU vector (hvm.c) ---- */
/* Xen's hvm_set_callback_via(): the old way is torn down (its line lowered), the new one
 * set up, and asserted at once if vCPU 0 has an upcall pending. */
void xen_evtchn_set_callback_via(struct xen *x, u64 via)
{
    struct xen_evtchn *e = x->evtchn;
    unsigned type = (unsigned)(via >> 56) + 1; /* Xen's HVMIRQ_callback_*: none = 0 */
    if (e->via_asserted)
        set_via_line(x, false);
    e->via_asserted = false;
    e->via_type = VIA_NONE;
    if ((type == 1 && via == 0) || type > 3)
        return;
    switch (type) {
    case 1: /* GSI 1..23 */
        if ((u8)via == 0 || (u8)via >= 24)
            return;
        e->via_type = VIA_GSI;
        e->via_gsi = (u8)via;
        break;
    case 2: /* PCI INTx: device in bits 15:11, INTx in 1:0 (bus and domain ignored) */
        e->via_type = VIA_PCI_INTX;
        e->via_devfn = (u8)(((via >> 11) & 31) << 3);
        e->via_intx = (u8)(via & 3);
        break;
    case 3:
        e->via_type = VIA_VECTOR;
        e->via_vector = (u8)via;
        break;
    }
    update_via_line(x);
    for (int i = 0; i < x->host.ncpus; i++)
        cpu_check_events(x->host.cpus[i]);
}

bool xen_evtchn_vector_callback(const struct xen *x)
{
    return x->evtchn->via_type == VIA_VECTOR || x->evtchn->upcall_vector[0];
}

/* As Xen, the new vector is asserted at once if an upcall is already pending (the
 * guest may have registered its vcpu_info, which marks one, before it chose the vector) */
void xen_evtchn_set_upcall_vector(struct xen *x, int vcpu, u8 vector)
{
    x->evtchn->upcall_vector[vcpu] = vector;
    xen_evtchn_inject(x, vcpu);
}

/* Xen's arch_evtchn_inject(): a pending upcall is signalled again (after the guest moved
 * its vcpu_info or changed the way upcalls reach it) */
void xen_evtchn_inject(struct xen *x, int vcpu)
{
    if (upcall_pending(x, vcpu))
        assert_upcall(x, vcpu);
}

long xen_evtchn_alloc_for_dom0(struct xen *x)
{
    long p = alloc_port(x);
    if (p >= 0)
        x->evtchn->ports[p].remote_dom = 0;
    return p;
}

/* ---- host ports (domain 0) ---- */
static struct host_port *host_port(struct xen *x, u32 hp)
{
    return hp < HOST_PORTS && x->evtchn->host[hp].used ? &x->evtchn->host[hp] : NULL;
}

u32 xen_evtchn_guest_port(const struct xen *x, u32 host_port)
{
    const struct xen_evtchn *e = x->evtchn;
    return host_port < HOST_PORTS && e->host[host_port].used && e->host[host_port].bound
               ? e->host[host_port].guest_port : 0;
}

int xen_evtchn_host_bind(struct xen *x, u32 guest_port, xen_host_notify_fn notify, void *opaque)
{
    struct xen_evtchn *e = x->evtchn;
    if (!port_valid(x, guest_port) || e->ports[guest_port].state != ECS_UNBOUND ||
        e->ports[guest_port].remote_dom != 0)
        return -EINVAL;
    for (u32 hp = 1; hp < HOST_PORTS; hp++) {
        if (e->host[hp].used)
            continue;
        /* as bind_interdomain, the binder's own new port is the one marked pending:
         * the guest's end is not signalled */
        e->host[hp] = (struct host_port){ true, true, guest_port, notify, opaque };
        e->ports[guest_port].state = ECS_INTERDOMAIN;
        e->ports[guest_port].remote_port = hp;
        return (int)hp;
    }
    return -ENOSPC;
}

int xen_evtchn_host_alloc_unbound(struct xen *x, xen_host_notify_fn notify, void *opaque)
{
    struct xen_evtchn *e = x->evtchn;
    for (u32 hp = 1; hp < HOST_PORTS; hp++) {
        if (e->host[hp].used)
            continue;
        e->host[hp] = (struct host_port){ true, false, 0, notify, opaque };
        return (int)hp;
    }
    return -ENOSPC;
}

int xen_evtchn_host_attach(struct xen *x, u32 hp, u32 guest_port, xen_host_notify_fn notify, void *opaque)
{
    struct host_port *h = host_port(x, hp);
    if (!h || !h->used || !h->bound || h->guest_port != guest_port || !notify)
        return -EINVAL;
    h->notify = notify;
    h->opaque = opaque;
    return 0;
}

int xen_evtchn_host_notify(struct xen *x, u32 hp)
{
    struct host_port *h = host_port(x, hp);
    if (!h)
        return -EINVAL;
    if (h->bound)
        port_set_pending(x, h->guest_port);
    return 0;
}

void xen_evtchn_host_close(struct xen *x, u32 hp)
{
    struct host_port *h = host_port(x, hp);
    if (!h)
        return;
    if (h->bound) {
        struct port *p = &x->evtchn->ports[h->guest_port];
        p->state = ECS_UNBOUND; /* the guest's end waits for a new binding from dom0 */
        p->remote_dom = 0;
    }
    *h = (struct host_port){ 0 };
}

/* ---- event_channel_op ---- */
static long ev_close(struct xen *x, u32 port)
{
    struct xen_evtchn *e = x->evtchn;
    if (!port_valid(x, port))
        return -EINVAL;
    struct port *p = &e->ports[port];
    switch (p->state) {
    case ECS_FREE:
    case ECS_RESERVED:
        return -EINVAL;
    case ECS_VIRQ:
        for (int i = 0; i < x->host.ncpus; i++)
            if (e->virq_port[i][p->virq_pirq] == port)
                e->virq_port[i][p->virq_pirq] = 0;
        break;
    case ECS_PIRQ:
        xen_pirq_unbind(x, p->virq_pirq);
        break;
    case ECS_INTERDOMAIN:
        if (p->remote_dom == 0) {
            struct host_port *h = host_port(x, p->remote_port);
            if (h)
                h->bound = false; /* dom0's end is unbound again */
        } else if (p->remote_port != port) {
            /* loopback in this domain: the other end waits for a new binding */
            e->ports[p->remote_port].state = ECS_UNBOUND;
            e->ports[p->remote_port].remote_dom = x->cfg.domid;
        } else {
            /* bound to itself */
        }
        break;
    }
    port_clear_pending(x, port);
    *p = (struct port){ .state = ECS_FREE };
    return 0;
}

static long ev_reset(struct xen *x)
{
    struct xen_evtchn *e = x->evtchn;
    for (u32 p = 1; p < e->valid && p <= MAX_EVTCHN_PORT; p++)
        if (e->ports[p].state != ECS_FREE)
            ev_close(x, p);
    /* back to the 2-level ABI (Xen's evtchn_fifo_destroy) */
    e->fifo = false;
    e->array_pages = 0;
    memset(e->fifo_vcpu, 0, (size_t)x->host.ncpus * sizeof(*e->fifo_vcpu));
    return 0;
}

/* init_control: the control block (8-byte aligned, inside the page) of a vCPU; the first
 * one switches the domain to FIFO, moving pending 2-level events across. */
static long ev_init_control(struct xen *x, struct evtchn_init_control *ic)
{
    struct xen_evtchn *e = x->evtchn;
    if (ic->vcpu >= (u32)x->host.ncpus)
        return -ENOENT;
    if ((ic->offset & 7) || ic->offset > 4096 - sizeof(struct evtchn_fifo_control_block))
        return -EINVAL;
    struct fifo_vcpu *fv = &e->fifo_vcpu[ic->vcpu];
    if (fv->ready)
        return -EINVAL;
    u64 gpa = (ic->control_gfn << 12) + ic->offset;
    if (ic->control_gfn > MASK(52 - 12) || !mem_ptr(gmem(x), ic->control_gfn << 12, 4096))
        return -EINVAL;
    fv->ready = true;
    fv->control_gpa = gpa;
    memset(fv->q, 0, sizeof(fv->q));
    ic->link_bits = EVTCHN_FIFO_LINK_BITS;
    if (!e->fifo) {
        /* setup_ports(): 2-level pending events become FIFO-pending ones */
        for (u32 p = 1; p < e->valid && p <= MAX_EVTCHN_PORT; p++)
            if (e->ports[p].state >= ECS_UNBOUND && x->shinfo_placed &&
                gbit_test(x, shinfo_field(x, false), p))
                e->ports[p].fifo_pending = true;
        e->fifo = true;
    }
    return 0;
}

static long ev_expand_array(struct xen *x, u64 gfn)
{
    struct xen_evtchn *e = x->evtchn;
    if (!e->fifo)
        return -EOPNOTSUPP;
    if (e->array_pages >= FIFO_MAX_PAGES)
        return -EINVAL;
    if (gfn > MASK(52 - 12) || !mem_ptr(gmem(x), gfn << 12, 4096))
        return -EINVAL;
    u32 page = e->array_pages++;
    e->array_gpa[page] = gfn << 12;
    /* ports raised before their word existed are pending now */
    for (u32 p = page * FIFO_WORDS_PER_PAGE; p < (page + 1) * FIFO_WORDS_PER_PAGE && p < e->valid &&
                                             p <= MAX_EVTCHN_PORT; p++)
        if (e->ports[p].fifo_pending) {
            e->ports[p].fifo_pending = false;
            fifo_set_pending(x, (int)e->ports[p].notify_vcpu, p);
        }
    return 0;
}

/* Each sub-op's argument structure, in and out: the same layout in both ABIs. */
static const size_t ev_arg_size[] = {
    [EVTCHNOP_bind_interdomain] = sizeof(struct evtchn_bind_interdomain),
    [EVTCHNOP_bind_virq] = sizeof(struct evtchn_bind_virq),
    [EVTCHNOP_bind_pirq] = sizeof(struct evtchn_bind_pirq),
    [EVTCHNOP_close] = sizeof(struct evtchn_close),
    [EVTCHNOP_send] = sizeof(struct evtchn_send),
    [EVTCHNOP_status] = sizeof(struct evtchn_status),
    [EVTCHNOP_alloc_unbound] = sizeof(struct evtchn_alloc_unbound),
    [EVTCHNOP_bind_ipi] = sizeof(struct evtchn_bind_ipi),
    [EVTCHNOP_bind_vcpu] = sizeof(struct evtchn_bind_vcpu),
    [EVTCHNOP_unmask] = sizeof(struct evtchn_unmask),
    [EVTCHNOP_reset] = sizeof(struct evtchn_reset),
    [EVTCHNOP_init_control] = sizeof(struct evtchn_init_control),
    [EVTCHNOP_expand_array] = sizeof(struct evtchn_expand_array),
    [EVTCHNOP_set_priority] = sizeof(struct evtchn_set_priority),
    [14 /* EVTCHNOP_reset_cont */] = sizeof(struct evtchn_reset),
};

union ev_arg {
    struct evtchn_bind_interdomain bind_interdomain;
    struct evtchn_bind_virq bind_virq;
    struct evtchn_bind_pirq bind_pirq;
    struct evtchn_close close;
    struct evtchn_send send;
    struct evtchn_status status;
    struct evtchn_alloc_unbound alloc_unbound;
    struct evtchn_bind_ipi bind_ipi;
    struct evtchn_bind_vcpu bind_vcpu;
    struct evtchn_unmask unmask;
    struct evtchn_reset reset;
    struct evtchn_init_control init_control;
    struct evtchn_expand_array expand_array;
    struct evtchn_set_priority set_priority;
};

/* The sub-op proper; out says whether the structure goes back to the guest. */
static long ev_op(struct xen *x, u32 cmd, union ev_arg *a, bool *out)
{
    struct xen_evtchn *e = x->evtchn;
    long rc;
    switch (cmd) {
    case EVTCHNOP_alloc_unbound: {
        struct evtchn_alloc_unbound *u = &a->alloc_unbound;
        if ((rc = xen_own_domain(x, u->dom)))
            return rc;
        u16 remote = u->remote_dom == DOMID_SELF ? x->cfg.domid : u->remote_dom;
        if (remote != x->cfg.domid && remote != 0)
            return -ESRCH;
        if ((rc = alloc_port(x)) < 0)
            return rc;
        e->ports[rc].remote_dom = remote;
        u->port = (u32)rc;
        *out = true;
        return 0;
    }
    case EVTCHNOP_bind_interdomain: {
        struct evtchn_bind_interdomain *b = &a->bind_interdomain;
        u16 remote = b->remote_dom == DOMID_SELF ? x->cfg.domid : b->remote_dom;
        if (remote != x->cfg.domid && remote != 0)
            return -ESRCH;
        struct host_port *h = NULL;
        if (remote == 0) {
            h = host_port(x, b->remote_port);
            if (!h || h->bound)
                return -EINVAL;
        } else if (!port_valid(x, b->remote_port) ||
                   e->ports[b->remote_port].state != ECS_UNBOUND ||
                   e->ports[b->remote_port].remote_dom != x->cfg.domid) {
            return -EINVAL;
        }
        if ((rc = alloc_port(x)) < 0)
            return rc;
        u32 lp = (u32)rc;
        e->ports[lp].state = ECS_INTERDOMAIN;
        e->ports[lp].remote_dom = remote;
        e->ports[lp].remote_port = b->remote_port;
        if (h) {
            h->bound = true;
            h->guest_port = lp;
        } else {
            e->ports[b->remote_port].state = ECS_INTERDOMAIN;
            e->ports[b->remote_port].remote_port = lp;
        }
        b->local_port = lp;
        /* the other end may have signalled before the binding: always pending */
        port_set_pending(x, lp);
        *out = true;
        return 0;
    }
    case EVTCHNOP_bind_virq: {
        struct evtchn_bind_virq *b = &a->bind_virq;
        if (b->virq >= NR_VIRQS)
            return -EINVAL;
        if (virq_is_global(b->virq) && b->vcpu != 0)
            return -EINVAL;
        if (b->vcpu >= (u32)x->host.ncpus)
            return -ENOENT;
        if (e->virq_port[b->vcpu][b->virq])
            return -EEXIST;
        if ((rc = alloc_port(x)) < 0)
            return rc;
        e->ports[rc].state = ECS_VIRQ;
        e->ports[rc].virq_pirq = b->virq;
        e->ports[rc].notify_vcpu = b->vcpu;
        e->virq_port[b->vcpu][b->virq] = (u32)rc;
        b->port = (u32)rc;
        *out = true;
        return 0;
    }
    case EVTCHNOP_bind_ipi: {
        struct evtchn_bind_ipi *b = &a->bind_ipi;
        if (b->vcpu >= (u32)x->host.ncpus)
            return -ENOENT;
        if ((rc = alloc_port(x)) < 0)
            return rc;
        e->ports[rc].state = ECS_IPI;
        e->ports[rc].notify_vcpu = b->vcpu;
        b->port = (u32)rc;
        *out = true;
        return 0;
    }
    case EVTCHNOP_bind_pirq: {
        /* evtchn_bind_pirq(): the pirq's checks, then a port (for vCPU 0); an HVM
         * domain's BIND_PIRQ__WILL_SHARE changes nothing (no machine IRQ is shared) */
        struct evtchn_bind_pirq *b = &a->bind_pirq;
        if ((rc = xen_pirq_bind_check(x, b->pirq)))
            return rc;
        if ((rc = alloc_port(x)) < 0)
            return rc;
        xen_pirq_bind(x, b->pirq, (u32)rc);
        e->ports[rc].state = ECS_PIRQ;
        e->ports[rc].virq_pirq = b->pirq;
        b->port = (u32)rc;
        *out = true;
        return 0;
    }
    case EVTCHNOP_close:
        return ev_close(x, a->close.port);
    case EVTCHNOP_send: {
        u32 port = a->send.port;
        if (!port_valid(x, port))
            return -EINVAL;
        struct port *p = &e->ports[port];
        switch (p->state) {
        case ECS_INTERDOMAIN:
            if (p->remote_dom == 0) {
                struct host_port *h = host_port(x, p->remote_port);
                if (h && h->notify)
                    h->notify(h->opaque, p->remote_port);
            } else {
                port_set_pending(x, p->remote_port);
            }
            return 0;
        case ECS_IPI:
            port_set_pending(x, port);
            return 0;
        case ECS_UNBOUND:
            return 0; /* dropped */
        default:
            return -EINVAL;
        }
    }
    case EVTCHNOP_status: {
        struct evtchn_status *s = &a->status;
        if ((rc = xen_own_domain(x, s->dom)))
            return rc;
        if (!port_valid(x, s->port))
            return -EINVAL;
        struct port *p = &e->ports[s->port];
        static const u32 status_of[] = {
            [ECS_FREE] = EVTCHNSTAT_closed,         [ECS_RESERVED] = EVTCHNSTAT_closed,
            [ECS_UNBOUND] = EVTCHNSTAT_unbound,     [ECS_INTERDOMAIN] = EVTCHNSTAT_interdomain,
            [ECS_PIRQ] = EVTCHNSTAT_pirq,           [ECS_VIRQ] = EVTCHNSTAT_virq,
            [ECS_IPI] = EVTCHNSTAT_ipi,
        };
        s->status = status_of[p->state];
        s->vcpu = p->notify_vcpu;
        memset(&s->u, 0, sizeof(s->u));
        if (p->state == ECS_UNBOUND) {
            s->u.unbound.dom = p->remote_dom;
        } else if (p->state == ECS_INTERDOMAIN) {
            s->u.interdomain.dom = p->remote_dom;
            s->u.interdomain.port = p->remote_port;
        } else if (p->state == ECS_PIRQ || p->state == ECS_VIRQ) {
            s->u.virq = p->virq_pirq;
        }
        *out = true;
        return 0;
    }
    case EVTCHNOP_bind_vcpu: {
        struct evtchn_bind_vcpu *b = &a->bind_vcpu;
        if (b->vcpu >= (u32)x->host.ncpus)
            return -ENOENT;
        if (!port_valid(x, b->port))
            return -EINVAL;
        struct port *p = &e->ports[b->port];
        switch (p->state) {
        case ECS_VIRQ:
            if (!virq_is_global(p->virq_pirq))
                return -EINVAL;
            break;
        case ECS_UNBOUND:
        case ECS_INTERDOMAIN:
        case ECS_PIRQ:
            break;
        default:
            return -EINVAL;
        }
        p->notify_vcpu = b->vcpu;
        return 0;
    }
    case EVTCHNOP_unmask:
        if (!port_valid(x, a->unmask.port))
            return -EINVAL;
        port_unmask(x, a->unmask.port);
        return 0;
    case EVTCHNOP_reset:
    case 14: /* EVTCHNOP_reset_cont */
        if ((rc = xen_own_domain(x, a->reset.dom)))
            return rc;
        return ev_reset(x);
    case EVTCHNOP_init_control:
        rc = ev_init_control(x, &a->init_control);
        *out = rc == 0;
        return rc;
    case EVTCHNOP_expand_array:
        return ev_expand_array(x, a->expand_array.array_gfn);
    case EVTCHNOP_set_priority: {
        struct evtchn_set_priority *sp = &a->set_priority;
        /* the port first, then whether the ABI has priorities (evtchn_set_priority) */
        if (!port_valid(x, sp->port))
            return -EINVAL;
        if (!e->fifo)
            return -ENOSYS;
        if (sp->priority > EVTCHN_FIFO_PRIORITY_MIN)
            return -EINVAL;
        e->ports[sp->port].priority = (u8)sp->priority;
        return 0;
    }
    default:
        return -ENOSYS;
    }
}

/* event_channel_op(cmd, arg): the argument structure in, the sub-op, the structure out
 * (ports allocated, status) */
long xen_do_event_channel_op(struct xcall *k)
{
    u32 cmd = (u32)k->arg[0];
    if (cmd >= ARRAY_SIZE(ev_arg_size) || !ev_arg_size[cmd])
        return -ENOSYS;
    union ev_arg a;
    memset(&a, 0, sizeof(a));
    if (xen_copy_from(k, k->arg[1], &a, ev_arg_size[cmd]))
        return -EFAULT;
    bool out = false;
    long rc = ev_op(k->x, cmd, &a, &out);
    if (out && xen_copy_to(k, k->arg[1], &a, ev_arg_size[cmd]))
        return -EFAULT;
    /* an upcall this vCPU raised for itself is looked at before its next instruction */
    cpu_check_events(k->c);
    return rc;
}

/* ---- state ----
 * The port table and what each vCPU has (FIFO control block and queues, VIRQ bindings,
 * upcall vector), the callback's kind, and dom0's ports. A dom0 port's notify function
 * is the backend's, set up again when the machine is built: a port the file has in use
 * must be one this machine's backends opened. */
#define F(x) STATE_FIELD(struct port, x)
static const struct state_field port_fields[] = {
    F(state), F(priority), F(fifo_pending), F(remote_dom), F(remote_port), F(virq_pirq),
    F(notify_vcpu), F(last_vcpu), F(last_priority),
};
#undef F
static const struct state_desc port_desc = STATE_DESC("xen.port", 1, struct port, port_fields);
#define F(x) STATE_FIELD(struct host_port, x)
#define N(x) STATE_NOT_STATE(struct host_port, x)
static const struct state_field host_port_fields[] = {
    F(used), F(bound), F(guest_port), N(notify), N(opaque),
};
#undef F
#undef N
static const struct state_desc host_port_desc = STATE_DESC("xen.host_port", 1, struct host_port, host_port_fields);
#define F(x) STATE_FIELD(struct fifo_vcpu, x)
static const struct state_field fifo_vcpu_fields[] = { F(ready), F(control_gpa), F(q) };
#undef F
static const struct state_desc fifo_vcpu_desc = STATE_DESC("xen.fifo_vcpu", 1, struct fifo_vcpu, fifo_vcpu_fields);

#define F(x) STATE_FIELD(struct xen_evtchn, x)
#define N(x) STATE_NOT_STATE(struct xen_evtchn, x)
static const struct state_field evtchn_fields[] = {
    N(ports), F(valid), F(fifo), F(array_gpa), F(array_pages), N(fifo_vcpu), N(virq_port),
    N(upcall_vector), F(via_type), F(via_gsi), F(via_devfn), F(via_intx), F(via_vector),
    F(via_asserted), STATE_STRUCT(struct xen_evtchn, host, host_port_desc), N(ncpus),
};
#undef F
#undef N

static void evtchn_save(void *obj, struct state_buf *b)
{
    const struct xen_evtchn *e = obj, *s = e;
    for (u32 p = 0; p < e->valid; p++)
        state_put_struct(b, &port_desc, &e->ports[p]);
    for (int i = 0; i < s->ncpus; i++) {
        state_put_struct(b, &fifo_vcpu_desc, &e->fifo_vcpu[i]);
        state_put(b, e->virq_port[i], sizeof(e->virq_port[i]));
        state_put_u8(b, e->upcall_vector[i]);
    }
}

static int evtchn_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct xen_evtchn *e = obj, *s = e;
    if (e->valid > MAX_EVTCHN_PORT + 1 || e->valid % EVTCHNS_PER_BUCKET || !e->valid)
        return nestor_err(err, errlen, "an impossible number of event channels");
    memset(e->ports, 0, (MAX_EVTCHN_PORT + 1) * sizeof(*e->ports));
    for (u32 p = 0; p < e->valid; p++)
        state_get_struct(c, &port_desc, &e->ports[p]);
    for (int i = 0; i < s->ncpus; i++) {
        state_get_struct(c, &fifo_vcpu_desc, &e->fifo_vcpu[i]);
        state_get(c, e->virq_port[i], sizeof(e->virq_port[i]));
        e->upcall_vector[i] = state_get_u8(c);
    }
    return 0;
}

static bool port_ok(u32 p)
{
    return p <= MAX_EVTCHN_PORT;
}

static int evtchn_post_load(void *obj, char *err, size_t errlen)
{
    struct xen_evtchn *e = obj, *s = e;
    bool ok = e->array_pages <= FIFO_MAX_PAGES && e->via_type <= VIA_VECTOR &&
              (e->via_type != VIA_GSI || (e->via_gsi >= 1 && e->via_gsi < 24)) && e->via_intx < 4 &&
              (e->via_devfn & 7) == 0;
    for (u32 p = 0; ok && p < e->valid; p++) {
        const struct port *q = &e->ports[p];
        ok = q->state <= ECS_IPI && q->notify_vcpu < (u32)s->ncpus && q->last_vcpu < (u32)s->ncpus &&
             q->priority < EVTCHN_FIFO_MAX_QUEUES && q->last_priority < EVTCHN_FIFO_MAX_QUEUES &&
             (q->state != ECS_VIRQ || q->virq_pirq < NR_VIRQS) &&
             (q->state != ECS_INTERDOMAIN || (q->remote_dom == 0 ? q->remote_port < HOST_PORTS
                                                                  : q->remote_port < e->valid));
    }
    for (int i = 0; ok && i < s->ncpus; i++) {
        for (u32 k = 0; k < EVTCHN_FIFO_MAX_QUEUES; k++)
            ok = ok && port_ok(e->fifo_vcpu[i].q[k].tail);
        for (u32 v = 0; v < NR_VIRQS; v++)
            ok = ok && e->virq_port[i][v] < e->valid;
    }
    for (u32 h = 0; ok && h < HOST_PORTS; h++) {
        /* the backend's end: its function (not state) is this machine's backend's, there
         * from when the machine was built or attached again by the backend's own state
         * (a PV device's queues, xen_evtchn_host_attach); until then a signal on it is
         * not delivered */
        ok = e->host[h].guest_port < e->valid;
    }
    if (!ok)
        return nestor_err(err, errlen, "impossible event-channel state");
    return 0;
}

static const struct state_desc evtchn_state_desc =
    STATE_DESC("xen.evtchn", 1, struct xen_evtchn, evtchn_fields, .save = evtchn_save,
               .load = evtchn_load, .post_load = evtchn_post_load);

void xen_evtchn_state_register(struct xen *x, struct state_registry *r)
{
    state_register(r, &evtchn_state_desc, 0, x->evtchn);
}

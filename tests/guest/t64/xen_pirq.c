/* -xen: pirqs as Xen 4.17 gives them to an HVM domU for its emulated devices
 * (physdev_op: map_pirq, unmap_pirq, eoi, irq_status_query, get_free_pirq; event
 * channels of the pirq kind):
 *  - the sub-ops an HVM domU may not use answer -ENOSYS before their argument is read
 *    (pirq_eoi_gmfn v1/v2, the I/O APIC, IOPL, PCI management);
 *  - every error: bad pointers, dom0 (-EPERM) and unknown domains (-ESRCH), map_pirq
 *    without the vector callback, bad GSIs, MSI types, MULTI_MSI with a table, pirqs
 *    beyond the domain's 56 (24 GSIs + 32), eoi and irq_status_query of pirqs that are
 *    not there, a pirq bound twice (-EEXIST), no free pirq (-ENOSPC);
 *  - Xen's allocation (GSIs from 16 up, the others from the top down), an unbound or
 *    re-mapped pirq left alone, irq_status_query's needs_eoi, the pirq port's status;
 *  - delivery: pc-testdev's GSI 20 (level) and 5 (ISA, edge) and the RTC's periodic
 *    IRQ 8, mapped and bound, set the port pending (the callback vector runs) while the
 *    I/O APIC pin stays quiet; a level line still asserted at PHYSDEVOP_eoi is signalled
 *    again, an ISA one is not; the 8259 still sees an ISA line; an unbound pirq drops
 *    the edge; unmap gives the line back to the I/O APIC.
 * QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes device=pc-testdev name=xen_pirq */
/* guest: xen=yes device=pc-testdev cpu=max,vendor=AuthenticAMD name=xen_pirq-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/physdev.h>
#include <xen/event_channel.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/features.h>
#include <xen/version.h>

#define EPERM 1
#define ESRCH 3
#define EFAULT 14
#define EEXIST 17
#define EINVAL 22
#define ENOSPC 28
#define ENOSYS 38

#define IOAPIC 0xfec00000ul
#define TESTDEV_IRQ 0x2000
#define CB_VECTOR 0xf3
#define GSI20_VECTOR 0x60
#define GSI5_VECTOR 0x61
#define RTC_VECTOR 0x62
#define NR_PIRQS 56 /* 24 GSIs + Xen's 32 extra domU pirqs */
#define BAD_PTR 0x8000000000000000ull

static bool amd;
static struct shared_info *shinfo;

static long hc(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static long physdev(int cmd, void *arg)
{
    return hc(__HYPERVISOR_physdev_op, (u64)cmd, (u64)arg, 0);
}

static long evtchn(int cmd, void *arg)
{
    return hc(__HYPERVISOR_event_channel_op, (u64)cmd, (u64)arg, 0);
}

static long set_callback(u64 via)
{
    struct xen_hvm_param p = { .domid = DOMID_SELF, .index = HVM_PARAM_CALLBACK_IRQ, .value = via };
    return hc(__HYPERVISOR_hvm_op, HVMOP_set_param, (u64)&p, 0);
}

static long map_gsi(u16 dom, int gsi, int *pirq)
{
    struct physdev_map_pirq m = { .domid = dom, .type = MAP_PIRQ_TYPE_GSI, .index = gsi, .pirq = *pirq };
    long r = physdev(PHYSDEVOP_map_pirq, &m);
    *pirq = m.pirq;
    return r;
}

static long unmap(u16 dom, int pirq)
{
    struct physdev_unmap_pirq u = { .domid = dom, .pirq = pirq };
    return physdev(PHYSDEVOP_unmap_pirq, &u);
}

static long eoi(u32 pirq)
{
    struct physdev_eoi e = { .irq = pirq };
    return physdev(PHYSDEVOP_eoi, &e);
}

static long status_query(u32 pirq, u32 *flags)
{
    struct physdev_irq_status_query q = { .irq = pirq, .flags = 0xdead };
    long r = physdev(PHYSDEVOP_irq_status_query, &q);
    *flags = q.flags;
    return r;
}

static long free_pirq(int type, u32 *pirq)
{
    struct physdev_get_free_pirq g = { .type = type, .pirq = 0xdead };
    long r = physdev(PHYSDEVOP_get_free_pirq, &g);
    *pirq = g.pirq;
    return r;
}

static long bind(u32 pirq, u32 flags, u32 *port)
{
    struct evtchn_bind_pirq b = { .pirq = pirq, .flags = flags, .port = 0xdead };
    long r = evtchn(EVTCHNOP_bind_pirq, &b);
    *port = b.port;
    return r;
}

static long close_port(u32 port)
{
    struct evtchn_close c = { .port = port };
    return evtchn(EVTCHNOP_close, &c);
}

/* ---- the guest's side of an event ---- */
static volatile int cb_hits;
static volatile int vec_hits[256];

static void cb_handler(struct exc_frame *f)
{
    (void)f;
    cb_hits++;
    shinfo->vcpu_info[0].evtchn_upcall_pending = 0;
}

static void ioapic_handler(struct exc_frame *f)
{
    vec_hits[f->vector]++;
    apic_eoi();
}

static void line(int gsi, bool level);

/* GSI 20 is level-triggered at the I/O APIC: the handler drops the line, as a device's
 * driver would, before its EOI */
static void gsi20_handler(struct exc_frame *f)
{
    vec_hits[f->vector]++;
    line(20, false);
    apic_eoi();
}

/* volatile: nestor writes the bitmap during the guest's port I/O */
static bool port_pending(u32 port)
{
    return ((volatile xen_ulong_t *)shinfo->evtchn_pending)[port / 64] >> (port % 64) & 1;
}

static void clear_port(u32 port)
{
    ((volatile xen_ulong_t *)shinfo->evtchn_pending)[port / 64] &= ~(1ul << (port % 64));
    shinfo->vcpu_info[0].evtchn_pending_sel = 0;
    shinfo->vcpu_info[0].evtchn_upcall_pending = 0;
}

static void settle(void)
{
    sti();
    udelay(50);
    cli();
}

static void ioapic_write(u32 reg, u32 v)
{
    *(volatile u32 *)IOAPIC = reg;
    *(volatile u32 *)(IOAPIC + 0x10) = v;
}

static void ioapic_route(int pin, u8 vector, bool level)
{
    ioapic_write(0x11 + 2 * pin, apic_id() << 24);
    ioapic_write(0x10 + 2 * pin, vector | (level ? 1u << 15 : 0));
}

static void line(int gsi, bool level)
{
    outb(TESTDEV_IRQ + gsi, level);
}

static u8 pic_irr(void)
{
    outb(0x20, 0x0a);
    return inb(0x20);
}

/* ---- the sub-ops an HVM domU does not have ---- */
static void test_enosys(void)
{
    static const int cmds[] = {
        PHYSDEVOP_pirq_eoi_gmfn_v1, PHYSDEVOP_pirq_eoi_gmfn_v2, PHYSDEVOP_apic_read,
        PHYSDEVOP_apic_write, PHYSDEVOP_alloc_irq_vector, PHYSDEVOP_free_irq_vector,
        PHYSDEVOP_set_iopl, PHYSDEVOP_set_iobitmap, PHYSDEVOP_setup_gsi,
        PHYSDEVOP_manage_pci_add, PHYSDEVOP_manage_pci_remove, PHYSDEVOP_manage_pci_add_ext,
        PHYSDEVOP_restore_msi, PHYSDEVOP_pci_mmcfg_reserved, PHYSDEVOP_pci_device_add,
        PHYSDEVOP_pci_device_remove, PHYSDEVOP_restore_msi_ext, PHYSDEVOP_prepare_msix,
        PHYSDEVOP_release_msix, PHYSDEVOP_dbgp_op, 4 /* IRQ_UNMASK_NOTIFY */, 0, 1000, -1,
    };
    struct physdev_pirq_eoi_gmfn g = { .gmfn = (u64)page_alloc() >> 12 };
    for (unsigned i = 0; i < ARRAY_SIZE(cmds); i++) {
        long r = physdev(cmds[i], &g);
        TEST_ASSERT(r == -ENOSYS, "physdev_op %d: -ENOSYS for an HVM domU (got %ld)", cmds[i], r);
        r = hc(__HYPERVISOR_physdev_op, (u64)cmds[i], BAD_PTR, 0);
        TEST_ASSERT(r == -ENOSYS, "physdev_op %d with a bad pointer: -ENOSYS, the argument unread (got %ld)",
                    cmds[i], r);
    }
    TEST_EQ(hc(__HYPERVISOR_physdev_op_compat, 0, (u64)&g, 0), -ENOSYS, "the old physdev_op: -ENOSYS");
}

static void test_bad_pointers(void)
{
    static const int cmds[] = { PHYSDEVOP_map_pirq, PHYSDEVOP_unmap_pirq, PHYSDEVOP_eoi,
                                PHYSDEVOP_irq_status_query, PHYSDEVOP_get_free_pirq };
    for (unsigned i = 0; i < ARRAY_SIZE(cmds); i++) {
        long r = hc(__HYPERVISOR_physdev_op, (u64)cmds[i], BAD_PTR, 0);
        TEST_ASSERT(r == -EFAULT, "physdev_op %d, non-canonical argument: -EFAULT (got %ld)", cmds[i], r);
        r = hc(__HYPERVISOR_physdev_op, (u64)cmds[i], 0xfee00000ull, 0);
        TEST_ASSERT(r == -EFAULT, "physdev_op %d, argument in MMIO: -EFAULT (got %ld)", cmds[i], r);
    }
    /* a structure that ends in MMIO: map_pirq's 40 bytes from 0xfee00000 - 32 */
    TEST_EQ(hc(__HYPERVISOR_physdev_op, PHYSDEVOP_map_pirq, 0xfee00000ull - 32, 0), -EFAULT,
            "map_pirq crossing into MMIO: -EFAULT");
}

/* ---- map_pirq and the others' errors ---- */
static void test_map_errors(void)
{
    int pirq = -1;
    TEST_EQ(map_gsi(DOMID_SELF, 9, &pirq), -EINVAL, "map_pirq without the vector callback: -EINVAL");
    TEST_EQ(pirq, -1, "nothing allocated");
    exc_set_handler(CB_VECTOR, cb_handler);
    TEST_EQ(set_callback(((u64)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | CB_VECTOR), 0,
            "CALLBACK_IRQ = vector");

    /* domains: dom0 is not ours (-EPERM, the structure still written back), others
     * do not exist (-ESRCH, nothing written) */
    struct physdev_map_pirq m = { .domid = 0, .type = MAP_PIRQ_TYPE_GSI, .index = 9, .pirq = -1, .bus = 77 };
    TEST_EQ(physdev(PHYSDEVOP_map_pirq, &m), -EPERM, "map_pirq for dom0: -EPERM");
    m = (struct physdev_map_pirq){ .domid = 5, .type = MAP_PIRQ_TYPE_GSI, .index = 9, .pirq = -7 };
    TEST_EQ(physdev(PHYSDEVOP_map_pirq, &m), -ESRCH, "map_pirq for dom5: -ESRCH");
    TEST_EQ(m.pirq, -7, "-ESRCH: nothing allocated");
    TEST_EQ(unmap(0, 16), -EPERM, "unmap_pirq for dom0: -EPERM");
    TEST_EQ(unmap(5, 16), -ESRCH, "unmap_pirq for dom5: -ESRCH");

    /* GSIs: the I/O APIC's 24 */
    pirq = -1;
    TEST_EQ(map_gsi(DOMID_SELF, -1, &pirq), -EINVAL, "GSI -1: -EINVAL");
    TEST_EQ(map_gsi(DOMID_SELF, 24, &pirq), -EINVAL, "GSI 24: -EINVAL");
    TEST_EQ(pirq, -1, "no pirq chosen for a bad GSI");

    /* MSI kinds: an HVM domain's own devices map GSIs only */
    m = (struct physdev_map_pirq){ .domid = DOMID_SELF, .type = MAP_PIRQ_TYPE_MSI, .index = -1, .pirq = -1 };
    TEST_EQ(physdev(PHYSDEVOP_map_pirq, &m), -EINVAL, "MSI: -EINVAL");
    m = (struct physdev_map_pirq){ .domid = DOMID_SELF, .type = MAP_PIRQ_TYPE_MSI_SEG, .index = -1, .pirq = -1 };
    TEST_EQ(physdev(PHYSDEVOP_map_pirq, &m), -EINVAL, "MSI_SEG: -EINVAL");
    TEST_EQ(m.type, MAP_PIRQ_TYPE_MSI, "MSI_SEG comes back as MSI");
    m = (struct physdev_map_pirq){ .domid = DOMID_SELF, .type = MAP_PIRQ_TYPE_MULTI_MSI, .index = -1,
                                   .pirq = -1, .table_base = 0x1000 };
    m.domid = 5; /* the table is refused before the domain is looked at */
    TEST_EQ(physdev(PHYSDEVOP_map_pirq, &m), -EINVAL, "MULTI_MSI with a table: -EINVAL");
    m = (struct physdev_map_pirq){ .domid = DOMID_SELF, .type = MAP_PIRQ_TYPE_MULTI_MSI, .index = -1, .pirq = -1 };
    TEST_EQ(physdev(PHYSDEVOP_map_pirq, &m), -EINVAL, "MULTI_MSI: -EINVAL");
    m = (struct physdev_map_pirq){ .domid = DOMID_SELF, .type = MAP_PIRQ_TYPE_UNKNOWN, .index = 9, .pirq = -1 };
    TEST_EQ(physdev(PHYSDEVOP_map_pirq, &m), -EINVAL, "type UNKNOWN: -EINVAL");

    /* pirqs beyond the domain's */
    pirq = NR_PIRQS;
    TEST_EQ(map_gsi(DOMID_SELF, 9, &pirq), -EINVAL, "pirq 56: -EINVAL");
    TEST_EQ(eoi(NR_PIRQS), -EINVAL, "eoi of pirq 56: -EINVAL");
    TEST_EQ(eoi(0xffffffffu), -EINVAL, "eoi of pirq 0xffffffff: -EINVAL");
    TEST_EQ(eoi(30), -EINVAL, "eoi of a pirq never used: -EINVAL");
    u32 flags, port;
    TEST_EQ(status_query(NR_PIRQS, &flags), -EINVAL, "irq_status_query of pirq 56: -EINVAL");
    TEST_EQ(status_query(0xffffffffu, &flags), -EINVAL, "irq_status_query of pirq -1: -EINVAL");
    TEST_EQ(status_query(30, &flags), -EINVAL, "irq_status_query of an unmapped pirq: -EINVAL");
    TEST_EQ(bind(NR_PIRQS, 0, &port), -EINVAL, "bind_pirq of pirq 56: -EINVAL");
    TEST_EQ(unmap(DOMID_SELF, 30), 0, "unmap of an unmapped pirq: 0");
    TEST_EQ(unmap(DOMID_SELF, -5), 0, "unmap of pirq -5: 0");
}

/* ---- allocation, status, binding ---- */
static int pirq9;

static void test_map(void)
{
    u32 flags, port, p;
    pirq9 = -1;
    TEST_EQ(map_gsi(DOMID_SELF, 9, &pirq9), 0, "map GSI 9");
    TEST_EQ(pirq9, 16, "a GSI takes the first free pirq from 16");
    TEST_EQ(status_query((u32)pirq9, &flags), 0, "irq_status_query");
    TEST_EQ(flags, XENIRQSTAT_needs_eoi, "needs_eoi, not shared");
    int again = -1;
    TEST_EQ(map_gsi(DOMID_SELF, 9, &again), 0, "GSI 9 once more: success");
    TEST_EQ(again, 17, "with the next free pirq chosen");
    TEST_EQ(status_query(17, &flags), -EINVAL, "which is not mapped: GSI 9 keeps pirq 16");
    TEST_EQ(eoi(17), 0, "but exists (eoi: 0), as Xen leaves it");
    int own = 20;
    TEST_EQ(map_gsi(1 /* own domid */, 9, &own), 0, "pirq 20 for GSI 9, by the domain's own id");
    TEST_EQ(status_query(20, &flags), -EINVAL, "left alone: GSI 9 is mapped already");

    TEST_EQ(free_pirq(MAP_PIRQ_TYPE_MSI, &p), 0, "get_free_pirq (MSI)");
    TEST_EQ(p, NR_PIRQS - 1, "an MSI pirq comes from the top");
    TEST_EQ(free_pirq(MAP_PIRQ_TYPE_GSI, &p), 0, "get_free_pirq (GSI)");
    TEST_EQ(p, 17, "a GSI pirq from 16 up (17 exists, unmapped: free)");
    TEST_EQ(free_pirq(MAP_PIRQ_TYPE_GSI, &p), 0, "get_free_pirq (GSI) again");
    TEST_EQ(p, 18, "an allocated pirq is not given twice");
    TEST_EQ(status_query(18, &flags), -EINVAL, "allocated, not mapped: irq_status_query -EINVAL");
    TEST_EQ(eoi(18), 0, "allocated: eoi 0");
    int mapped = 18;
    TEST_EQ(map_gsi(DOMID_SELF, 11, &mapped), 0, "the allocated pirq 18 for GSI 11");
    TEST_EQ(status_query(18, &flags), 0, "mapped now");
    TEST_EQ(free_pirq(1234, &p), 0, "get_free_pirq of another type");
    TEST_EQ(p, NR_PIRQS - 2, "from the top");

    /* bind_pirq: an HVM domain may bind any pirq of its own; once only */
    TEST_EQ(bind((u32)pirq9, BIND_PIRQ__WILL_SHARE, &port), 0, "bind_pirq (will share)");
    TEST_ASSERT(port > 0 && port != 0xdead, "a port");
    u32 port2;
    TEST_EQ(bind((u32)pirq9, 0, &port2), -EEXIST, "bound twice: -EEXIST");
    struct evtchn_status st = { .dom = DOMID_SELF, .port = port };
    TEST_EQ(evtchn(EVTCHNOP_status, &st), 0, "status");
    TEST_EQ(st.status, EVTCHNSTAT_pirq, "EVTCHNSTAT_pirq");
    TEST_EQ(st.u.pirq, (u32)pirq9, "its pirq");
    TEST_EQ(st.vcpu, 0, "on vCPU 0");
    TEST_EQ(close_port(port), 0, "close");
    TEST_EQ(status_query((u32)pirq9, &flags), 0, "closing the port leaves the mapping");

    TEST_EQ(eoi(31), -EINVAL, "pirq 31: not there");
    TEST_EQ(bind(31, 0, &port), 0, "bind an unmapped pirq");
    TEST_EQ(eoi(31), 0, "bound: there");
    TEST_EQ(status_query(31, &flags), -EINVAL, "but not mapped");
    TEST_EQ(close_port(port), 0, "close");
    TEST_EQ(eoi(31), -EINVAL, "closed: gone again");
    TEST_EQ(bind(31, 0, &port), 0, "bound again");
    TEST_EQ(close_port(port), 0, "and closed");
}

/* ---- delivery ---- */
static void test_level(void)
{
    /* without a pirq, GSI 20 reaches the I/O APIC */
    exc_set_handler(GSI20_VECTOR, gsi20_handler);
    ioapic_route(20, GSI20_VECTOR, true);
    line(20, true);
    settle();
    TEST_EQ(vec_hits[GSI20_VECTOR], 1, "GSI 20 through the I/O APIC");
    line(20, false);
    settle();
    vec_hits[GSI20_VECTOR] = 0;

    int pirq = -1;
    u32 port;
    TEST_EQ(map_gsi(DOMID_SELF, 20, &pirq), 0, "map GSI 20");
    TEST_EQ(bind((u32)pirq, BIND_PIRQ__WILL_SHARE, &port), 0, "bind it");
    clear_port(port);
    cb_hits = 0;
    line(20, true);
    TEST_ASSERT(port_pending(port), "the rising line sets the pirq's port pending");
    settle();
    TEST_EQ(cb_hits, 1, "the callback vector ran");
    TEST_EQ(vec_hits[GSI20_VECTOR], 0, "the I/O APIC pin stayed quiet");
    clear_port(port);
    line(20, true);
    TEST_ASSERT(!port_pending(port), "a line staying high is no new edge");
    TEST_EQ(eoi((u32)pirq), 0, "eoi");
    TEST_ASSERT(port_pending(port), "level GSI still asserted at eoi: signalled again");
    clear_port(port);
    line(20, false);
    TEST_EQ(eoi((u32)pirq), 0, "eoi after the line dropped");
    TEST_ASSERT(!port_pending(port), "nothing then");
    line(20, true);
    TEST_ASSERT(port_pending(port), "the next edge");
    clear_port(port);

    /* unmapped while high: the I/O APIC gets the line back */
    TEST_EQ(unmap(DOMID_SELF, pirq), 0, "unmap GSI 20's pirq");
    settle();
    TEST_EQ(vec_hits[GSI20_VECTOR], 1, "the asserted line reaches the I/O APIC again");
    line(20, false);
    settle();
    u32 flags;
    TEST_EQ(status_query((u32)pirq, &flags), -EINVAL, "unmapped");
    TEST_EQ(eoi((u32)pirq), 0, "still bound: eoi 0");
    line(20, true);
    TEST_ASSERT(!port_pending(port), "an unmapped pirq's port stays quiet");
    settle();
    TEST_EQ(vec_hits[GSI20_VECTOR], 2, "the line is the I/O APIC's");
    line(20, false);
    settle();
    TEST_EQ(close_port(port), 0, "close");
    ioapic_write(0x10 + 2 * 20, 1u << 16);
}

static void test_isa(void)
{
    /* GSI 5 (ISA): edge-triggered to Xen; the 8259 sees it either way */
    exc_set_handler(GSI5_VECTOR, ioapic_handler);
    ioapic_route(5, GSI5_VECTOR, false);
    int pirq = -1;
    u32 port;
    TEST_EQ(map_gsi(DOMID_SELF, 5, &pirq), 0, "map GSI 5");
    TEST_EQ(bind((u32)pirq, 0, &port), 0, "bind it");
    clear_port(port);
    line(5, true);
    TEST_ASSERT(port_pending(port), "GSI 5 sets the port pending");
    TEST_ASSERT(pic_irr() & (1u << 5), "the 8259 sees IRQ 5");
    clear_port(port);
    TEST_EQ(eoi((u32)pirq), 0, "eoi with the line high");
    TEST_ASSERT(!port_pending(port), "an ISA line is not signalled again at eoi");
    line(5, false);
    TEST_ASSERT(!(pic_irr() & (1u << 5)), "the 8259's IRQ 5 dropped");
    settle();
    TEST_EQ(vec_hits[GSI5_VECTOR], 0, "the I/O APIC pin stayed quiet");

    /* an unbound pirq drops the edge */
    TEST_EQ(close_port(port), 0, "close");
    line(5, true);
    line(5, false);
    settle();
    TEST_EQ(vec_hits[GSI5_VECTOR], 0, "a mapped, unbound GSI reaches neither the port nor the I/O APIC");
    ioapic_write(0x10 + 2 * 5, 1u << 16);
}

static u8 cmos_read(u8 reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

static void cmos_write(u8 reg, u8 v)
{
    outb(0x70, reg);
    outb(0x71, v);
}

static void test_rtc(void)
{
    /* the RTC's periodic interrupt (IRQ 8) as a pirq */
    exc_set_handler(RTC_VECTOR, ioapic_handler);
    ioapic_route(8, RTC_VECTOR, false);
    int pirq = -1;
    u32 port;
    TEST_EQ(map_gsi(DOMID_SELF, 8, &pirq), 0, "map GSI 8 (RTC)");
    TEST_EQ(bind((u32)pirq, 0, &port), 0, "bind it");
    clear_port(port);
    cb_hits = 0;
    cmos_read(0x0c);
    cmos_write(0x0a, (cmos_read(0x0a) & 0xf0) | 6); /* 1024 Hz */
    cmos_write(0x0b, cmos_read(0x0b) | 0x40);       /* PIE */
    int seen = 0;
    for (int i = 0; i < 20000 && seen < 3; i++) {
        if (port_pending(port)) {
            seen++;
            clear_port(port);
            cmos_read(0x0c); /* the line drops: the next period raises it again */
        }
        udelay(10);
    }
    cmos_write(0x0b, cmos_read(0x0b) & ~0x40);
    cmos_read(0x0c);
    TEST_EQ(seen, 3, "three RTC periods, each an event on the pirq's port");
    settle();
    TEST_EQ(vec_hits[RTC_VECTOR], 0, "the I/O APIC pin 8 stayed quiet");
    TEST_EQ(close_port(port), 0, "close");
    TEST_EQ(unmap(DOMID_SELF, pirq), 0, "unmap");
    ioapic_write(0x10 + 2 * 8, 1u << 16);
}

/* ---- the upcall vector also allows map_pirq; pirqs run out ---- */
static void test_upcall_vector_and_exhaustion(void)
{
    TEST_EQ(set_callback(0), 0, "CALLBACK_IRQ = none");
    int pirq = -1;
    TEST_EQ(map_gsi(DOMID_SELF, 10, &pirq), -EINVAL, "no vector callback: -EINVAL");
    struct xen_hvm_evtchn_upcall_vector uv = { .vcpu = 0, .vector = CB_VECTOR };
    TEST_EQ(hc(__HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, (u64)&uv, 0), 0,
            "vCPU 0's upcall vector");
    settle();
    TEST_EQ(map_gsi(DOMID_SELF, 10, &pirq), 0, "map_pirq with the per-vCPU upcall vector");

    u32 p;
    int n = 0;
    while (free_pirq(MAP_PIRQ_TYPE_GSI, &p) == 0 && n < 100)
        n++;
    TEST_EQ(free_pirq(MAP_PIRQ_TYPE_MSI, &p), -ENOSPC, "every pirq from 16 taken: -ENOSPC");
    TEST_EQ(p, 0xdead, "nothing written");
    TEST_ASSERT(n > 0 && n < 40, "%d more pirqs were free", n);
    pirq = -1;
    TEST_EQ(map_gsi(DOMID_SELF, 11, &pirq), -EINVAL, "map_pirq with no free pirq: -EINVAL");
    TEST_EQ(pirq, -ENOSPC, "with -ENOSPC as its pirq, as Xen writes it back");
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    xen_feature_info_t fi = { .submap_idx = 0 };
    TEST_EQ(hc(__HYPERVISOR_xen_version, XENVER_get_features, (u64)&fi, 0), 0, "get_features");
    TEST_ASSERT(fi.submap & BIT(XENFEAT_hvm_pirqs), "XENFEAT_hvm_pirqs for an HVM domain");
    u8 *page = page_alloc();
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)page >> 12 };
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0), 0, "shared_info placed");
    shinfo = (void *)page;
    for (int i = 0; i < 8; i++)
        shinfo->evtchn_mask[i] = 0;
    apic_enable();
    outb(0x21, 0xff); /* the 8259's outputs masked: its IRR still shows the lines */
    outb(0xa1, 0xff);
    outb(0x4d0, 1u << 5); /* IRQ 5 level-triggered at the 8259: IRR follows the line */
    test_enosys();
    test_bad_pointers();
    test_map_errors();
    test_map();
    test_level();
    test_isa();
    test_rtc();
    test_upcall_vector_and_exhaustion();
}

/* PCI INTx routing on the q35 platform:
 *  - the ICH9 LPC bridge at 00:1f.0 and its PCI interrupt router, PIRQA-D_ROUT at
 *    0x60-0x63 and PIRQE-H_ROUT at 0x68-0x6b (ICH9 datasheet 13.1.17/13.1.20): as
 *    firmware leaves them (SeaBIOS: IRQ 10, 10, 11, 11 twice, those lines level in the
 *    ELCR), bit 7 and bits 3:0 writable, bits 6:4 reserved (read 0);
 * and with -xen, the Xen platform PCI device's INTA driven by the event-channel upcall
 * (HVM_PARAM_CALLBACK_IRQ in its PCI INTx form):
 *  - the device's Interrupt Line register says the IRQ firmware routed it to;
 *  - through the 8259 at the ISA IRQ its PIRQ's router register selects, with the I/O
 *    APIC masked: level-triggered (taken again after the EOI while the guest leaves
 *    evtchn_upcall_pending set, not once it cleared it), nothing while the router
 *    register's bit 7 disables the route or names a reserved IRQ, at once when it is
 *    enabled with the line asserted, and on the slave when rerouted to IRQ 11;
 *  - through the I/O APIC at input 16 + PIRQ, level-triggered (remote IRR: again after
 *    the EOI while pending).
 * QEMU TCG (q35 with SeaBIOS) runs the first part, less the reserved bits (QEMU keeps
 * them writable); it has no Xen interface for the rest.
 * guest: name=pci_intx */
/* guest: xen=yes name=pci_intx-xen */
/* guest: xen=yes vendor=AuthenticAMD name=pci_intx-xen-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/event_channel.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>

#define LPC 31
#define PIRQA_ROUT 0x60
#define PIRQE_ROUT 0x68
#define IOAPIC 0xfec00000ul
#define APIC_VECTOR 0xd3
#define MASTER_BASE 0x20
#define SLAVE_BASE 0x28

static u32 cfg_read(int dev, int reg)
{
    outl(0xcf8, 0x80000000u | (u32)dev << 11 | (u32)(reg & ~3));
    return inl(0xcfc) >> (8 * (reg & 3));
}

static void cfg_write8(int dev, int reg, u8 v)
{
    outl(0xcf8, 0x80000000u | (u32)dev << 11 | (u32)(reg & ~3));
    outb((u16)(0xcfc + (reg & 3)), v);
}

static u8 rout(int n) /* PIRQ n's router register, n = 0..7 for A..H */
{
    return (u8)cfg_read(LPC, (n < 4 ? PIRQA_ROUT : PIRQE_ROUT) + (n & 3));
}

static u16 elcr(void)
{
    return (u16)(inb(0x4d0) | inb(0x4d1) << 8);
}

static void test_router(void)
{
    TEST_EQ(cfg_read(LPC, 0), 0x29188086u, "00:1f.0 is the ICH9 LPC bridge");
    TEST_EQ(cfg_read(LPC, 8) >> 16, 0x0601u, "class: ISA bridge");
    static const u8 firmware[8] = { 10, 10, 11, 11, 10, 10, 11, 11 };
    for (int n = 0; n < 8; n++) {
        char what[64];
        snprintf(what, sizeof(what), "PIRQ%c_ROUT as firmware leaves it", 'A' + n);
        TEST_EQ(rout(n), firmware[n], what);
    }
    TEST_EQ(elcr() & 0x0c00, 0x0c00, "IRQ 10 and 11 level-triggered in the ELCR");

    u8 saved = rout(0);
    if (on_qemu_tcg()) {
        /* QEMU leaves every bit of the device-specific config space writable */
        test_skip("QEMU keeps the reserved bits 6:4 of PIRQx_ROUT writable");
    } else {
        cfg_write8(LPC, PIRQA_ROUT, 0xff);
        TEST_EQ(rout(0), 0x8f, "bits 6:4 reserved, bit 7 and 3:0 written");
        cfg_write8(LPC, PIRQA_ROUT, 0x75);
        TEST_EQ(rout(0), 0x05, "IRQ 5, enabled");
    }
    cfg_write8(LPC, PIRQE_ROUT + 3, 0x83);
    TEST_EQ(rout(7), 0x83, "PIRQH_ROUT written");
    TEST_EQ(rout(1), firmware[1], "the neighbour unchanged");
    cfg_write8(LPC, PIRQE_ROUT + 3, firmware[7]);
    cfg_write8(LPC, PIRQA_ROUT, saved);
    TEST_EQ(rout(0), saved, "restored");
}

/* ---- -xen: the platform device's INTA ---- */
static bool amd;
static struct shared_info *shinfo;
static u32 ipi;
static int dev, pirq;

static long hc(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static long send(void)
{
    struct evtchn_send s = { .port = ipi };
    return hc(__HYPERVISOR_event_channel_op, EVTCHNOP_send, (u64)&s, 0);
}

static long set_callback(u64 via)
{
    struct xen_hvm_param p = { .domid = DOMID_SELF, .index = HVM_PARAM_CALLBACK_IRQ, .value = via };
    return hc(__HYPERVISOR_hvm_op, HVMOP_set_param, (u64)&p, 0);
}

static void clear_all(void)
{
    shinfo->evtchn_pending[0] = 0;
    shinfo->vcpu_info[0].evtchn_pending_sel = 0;
    shinfo->vcpu_info[0].evtchn_upcall_pending = 0;
}

static void ioapic_write(u32 reg, u32 v)
{
    *(volatile u32 *)IOAPIC = reg;
    *(volatile u32 *)(IOAPIC + 0x10) = v;
}

/* Each handler counts, sees whether the upcall was pending, leaves it pending for the
 * first `keep` entries (a level line stays asserted), then clears it; then EOIs. */
static volatile int hits, real, keep;
static volatile int last_vector;

static void count(int vector)
{
    hits++;
    last_vector = vector;
    if (shinfo->vcpu_info[0].evtchn_upcall_pending)
        real++;
    if (hits > keep)
        shinfo->vcpu_info[0].evtchn_upcall_pending = 0;
}

static void pic_handler(struct exc_frame *f)
{
    count((int)f->vector);
    if (f->vector >= SLAVE_BASE)
        outb(0xa0, 0x20);
    outb(0x20, 0x20);
}

static void apic_handler(struct exc_frame *f)
{
    count((int)f->vector);
    apic_eoi();
}

static void wait_hits(int want)
{
    for (int i = 0; i < 100000 && hits < want; i++)
        asm volatile("pause");
    udelay(50); /* and no more than that */
}

static void reset_counts(int keep_pending)
{
    hits = real = 0;
    last_vector = -1;
    keep = keep_pending;
}

static void route(int irq_or_flags)
{
    cfg_write8(LPC, PIRQA_ROUT + pirq, (u8)irq_or_flags);
}

static void test_pic(void)
{
    for (int irq = 0; irq < 16; irq++)
        exc_set_handler(irq < 8 ? MASTER_BASE + irq : SLAVE_BASE + irq - 8, pic_handler);
    apic_write(0x350, 0x700);          /* LINT0: ExtINT */
    ioapic_write(0x10 + 2 * (16 + pirq), 1u << 16); /* masked at the I/O APIC */
    route(5);
    outb(0x4d0, (u8)(inb(0x4d0) | 1u << 5)); /* IRQ 5 level */
    outb(0x21, (u8)~(1u << 5 | 1u << 2));    /* master: IRQ 5 and the cascade */
    outb(0xa1, 0xff);
    clear_all();
    TEST_EQ(set_callback(((u64)HVM_PARAM_CALLBACK_TYPE_PCI_INTX << 56) | (u64)(dev << 11) | 0),
            0, "CALLBACK_IRQ = PCI INTx, the platform device's INTA");

    reset_counts(1);
    sti();
    TEST_EQ(send(), 0, "send");
    wait_hits(2);
    cli();
    TEST_EQ(hits, 2, "8259 IRQ 5: taken again after the EOI while pending, not after it was cleared");
    TEST_EQ(real, 2, "each time with evtchn_upcall_pending set");
    TEST_EQ(last_vector, MASTER_BASE + 5, "at the vector of IRQ 5");

    /* bit 7: not routed to the 8259; enabled while asserted, the request comes at once */
    route(0x85);
    reset_counts(0);
    clear_all();
    sti();
    TEST_EQ(send(), 0, "send with the route disabled");
    udelay(50);
    cli();
    TEST_EQ(hits, 0, "nothing at the 8259 while PIRQ_ROUT bit 7 is set");
    TEST_EQ(shinfo->vcpu_info[0].evtchn_upcall_pending, 1, "the upcall is pending meanwhile");
    route(5);
    sti();
    wait_hits(1);
    cli();
    TEST_EQ(hits, 1, "taken once the route is enabled with the line asserted");

    /* a reserved IRQ number routes nowhere (13: the FPU's, edge-only, also reserved) */
    route(13);
    outb(0xa1, (u8)~(1u << 5)); /* slave: IRQ 13 */
    reset_counts(0);
    clear_all();
    sti();
    TEST_EQ(send(), 0, "send routed to reserved IRQ 13");
    udelay(50);
    cli();
    TEST_EQ(hits, 0, "nothing at IRQ 13");

    /* rerouted to IRQ 11 on the slave (level in the ELCR since firmware) */
    route(11);
    outb(0xa1, (u8)~(1u << 3)); /* slave: IRQ 11 */
    outb(0x21, (u8)~(1u << 2)); /* master: the cascade only */
    reset_counts(2);
    sti();
    wait_hits(3);
    cli();
    TEST_EQ(hits, 3, "IRQ 11: the pending upcall taken, again twice while left pending");
    TEST_EQ(last_vector, SLAVE_BASE + 3, "at the vector of IRQ 11");

    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    outb(0x4d0, (u8)(inb(0x4d0) & ~(1u << 5)));
    route(10 + (pirq >= 2));
}

static void test_ioapic(void)
{
    int gsi = 16 + pirq;
    exc_set_handler(APIC_VECTOR, apic_handler);
    ioapic_write(0x11 + 2 * gsi, apic_id() << 24);
    ioapic_write(0x10 + 2 * gsi, APIC_VECTOR | (1u << 15)); /* level, active high */
    reset_counts(1);
    clear_all();
    sti();
    TEST_EQ(send(), 0, "send (I/O APIC)");
    wait_hits(2);
    cli();
    TEST_EQ(hits, 2, "I/O APIC input 16 + PIRQ: again after the EOI while pending, not after");
    TEST_EQ(real, 2, "each time with evtchn_upcall_pending set");
    TEST_EQ(last_vector, APIC_VECTOR, "at the redirection entry's vector");
    ioapic_write(0x10 + 2 * gsi, 1u << 16);
    TEST_EQ(set_callback(0), 0, "CALLBACK_IRQ = none");
}

void test_main(void)
{
    test_router();
    char spec[16];
    if (!rt_cmdline_value("xen", spec, sizeof(spec)))
        return;
    if (!xen_test_start(&amd))
        return;
    dev = -1;
    for (int d = 0; d < 32; d++)
        if (cfg_read(d, 0) == 0x00015853u)
            dev = d;
    TEST_ASSERT(dev > 0, "the Xen platform device is there");
    if (dev <= 0)
        return;
    pirq = dev % 4; /* INTA of slot dev: PIRQ (dev + 0) % 4 */
    static const u8 firmware[4] = { 10, 10, 11, 11 };
    TEST_EQ(cfg_read(dev, 0x3c) & 0xffff, 0x100u | firmware[pirq],
            "Interrupt Pin INTA, Interrupt Line the IRQ firmware routed its PIRQ to");

    u8 *page = page_alloc();
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)page >> 12 };
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0), 0, "shared_info placed");
    shinfo = (void *)page;
    shinfo->evtchn_mask[0] = 0;
    apic_enable();
    struct evtchn_bind_ipi ip = { .vcpu = 0 };
    TEST_EQ(hc(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, (u64)&ip, 0), 0, "bind_ipi");
    ipi = ip.port;
    test_pic();
    test_ioapic();
}

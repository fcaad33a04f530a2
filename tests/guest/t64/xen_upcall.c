/* -xen: the global event-channel upcall paths that HVM_PARAM_CALLBACK_IRQ selects, as
 * Xen's hvm_set_callback_via() / hvm_vcpu_has_pending_irq() have them:
 *  - the callback vector: injected directly while evtchn_upcall_pending is set and
 *    IF=1, ahead of the LAPIC and without it (no ISR bit, no EOI), again after IRET
 *    while the guest leaves it set, not while IF=0;
 *  - PCI INTx of a device on bus 0 (INTA of device 3: GSI 19 through the I/O APIC) and
 *    an ISA GSI through the 8259 PIC (IRQ 10, ExtINT on LINT0): level lines that follow
 *    vCPU 0's evtchn_upcall_pending and drop once the guest clears it.
 * QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes name=xen_upcall */
/* guest: xen=yes vendor=AuthenticAMD name=xen_upcall-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/event_channel.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/features.h>
#include <xen/version.h>
#include <xen/arch-x86/cpuid.h>

#define IOAPIC 0xfec00000ul
#define CB_VECTOR 0xf3
#define INTX_VECTOR 0xd1
#define INTX_DEVFN (3 << 3)
#define INTX_GSI 19 /* 16 + (device 3 + INTA) % 4 */
#define PIC_IRQ 10
#define PIC_VECTOR (0x28 + PIC_IRQ - 8)

static bool amd;
static struct shared_info *shinfo;
static u32 ipi;

static long hc(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static long send(u32 port)
{
    struct evtchn_send s = { .port = port };
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

static bool isr_bit(u8 v)
{
    return apic_read(0x100 + (v / 32) * 0x10) & (1u << (v % 32));
}

static volatile int cb_hits, cb_saw_pending, cb_in_isr, cb_clear_after;

/* The callback vector: left pending for the first cb_clear_after entries */
static void cb_handler(struct exc_frame *f)
{
    (void)f;
    cb_hits++;
    if (shinfo->vcpu_info[0].evtchn_upcall_pending)
        cb_saw_pending++;
    if (isr_bit(CB_VECTOR))
        cb_in_isr++;
    if (cb_hits >= cb_clear_after)
        shinfo->vcpu_info[0].evtchn_upcall_pending = 0;
}

static volatile int line_hits, line_real;

static void intx_handler(struct exc_frame *f)
{
    (void)f;
    line_hits++;
    if (shinfo->vcpu_info[0].evtchn_upcall_pending)
        line_real++;
    shinfo->vcpu_info[0].evtchn_upcall_pending = 0;
    apic_eoi();
}

static void pic_handler(struct exc_frame *f)
{
    (void)f;
    line_hits++;
    if (shinfo->vcpu_info[0].evtchn_upcall_pending)
        line_real++;
    shinfo->vcpu_info[0].evtchn_upcall_pending = 0;
    outb(0xa0, 0x20);
    outb(0x20, 0x20);
}

static void ioapic_write(u32 reg, u32 v)
{
    *(volatile u32 *)IOAPIC = reg;
    *(volatile u32 *)(IOAPIC + 0x10) = v;
}

static void wait_for(volatile int *v, int want)
{
    for (int i = 0; i < 100000 && *v < want; i++)
        asm volatile("pause");
}

static void test_vector(void)
{
    exc_set_handler(CB_VECTOR, cb_handler);
    clear_all();
    TEST_EQ(set_callback(((u64)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | CB_VECTOR), 0,
            "CALLBACK_IRQ = vector");
    cb_clear_after = 1;
    sti();
    TEST_EQ(send(ipi), 0, "send");
    wait_for(&cb_hits, 1);
    cli();
    TEST_EQ(cb_hits, 1, "one upcall by the callback vector");
    TEST_EQ(cb_saw_pending, 1, "with evtchn_upcall_pending set");
    TEST_EQ(cb_in_isr, 0, "not through the LAPIC: no ISR bit");
    TEST_ASSERT(!isr_bit(CB_VECTOR), "nothing to EOI");

    /* left pending by the handler, it comes again after IRET; masked by IF=0 meanwhile */
    clear_all();
    cb_hits = cb_saw_pending = 0;
    cb_clear_after = 3;
    TEST_EQ(send(ipi), 0, "send with IF=0");
    udelay(20);
    TEST_EQ(cb_hits, 0, "nothing while IF=0");
    sti();
    wait_for(&cb_hits, 3);
    udelay(20);
    cli();
    TEST_EQ(cb_hits, 3, "injected again while the guest leaves evtchn_upcall_pending set");
    TEST_EQ(cb_saw_pending, 3, "each time with it set");

    /* a masked port raises no upcall */
    clear_all();
    cb_hits = 0;
    cb_clear_after = 1;
    shinfo->evtchn_mask[0] = 1ul << ipi;
    sti();
    TEST_EQ(send(ipi), 0, "send to the masked port");
    udelay(20);
    cli();
    TEST_EQ(cb_hits, 0, "no upcall for a masked port");
    shinfo->evtchn_mask[0] = 0;
    TEST_EQ(set_callback(0), 0, "CALLBACK_IRQ = 0: none");
    clear_all();
    sti();
    TEST_EQ(send(ipi), 0, "send with no callback");
    udelay(20);
    cli();
    TEST_EQ(cb_hits, 0, "no upcall without a callback");
}

static void test_line(const char *what, int vector)
{
    clear_all();
    line_hits = line_real = 0;
    sti();
    TEST_EQ(send(ipi), 0, what);
    wait_for(&line_real, 1);
    cli();
    TEST_EQ(line_real, 1, "one upcall by the line with evtchn_upcall_pending set");
    int hits = line_hits;
    sti();
    udelay(50);
    cli();
    TEST_EQ(line_hits, hits, "the line dropped after the guest cleared evtchn_upcall_pending");
    clear_all();
    sti();
    TEST_EQ(send(ipi), 0, "send again");
    wait_for(&line_real, 2);
    cli();
    TEST_EQ(line_real, 2, "the next event raises it again");
    (void)vector;
}

static void test_intx(void)
{
    exc_set_handler(INTX_VECTOR, intx_handler);
    ioapic_write(0x11 + 2 * INTX_GSI, apic_id() << 24);
    ioapic_write(0x10 + 2 * INTX_GSI, INTX_VECTOR | (1u << 15) | (1u << 13)); /* level, low */
    ioapic_write(0x10 + 2 * INTX_GSI, INTX_VECTOR | (1u << 15)); /* level, active high */
    clear_all();
    TEST_EQ(set_callback(((u64)HVM_PARAM_CALLBACK_TYPE_PCI_INTX << 56) | (INTX_DEVFN << 8) | 0),
            0, "CALLBACK_IRQ = PCI INTx, device 3 INTA");
    test_line("send (PCI INTx)", INTX_VECTOR);
    ioapic_write(0x10 + 2 * INTX_GSI, 1u << 16);
}

static void test_pic(void)
{
    exc_set_handler(PIC_VECTOR, pic_handler);
    apic_write(0x350, 0x700); /* LINT0: ExtINT */
    ioapic_write(0x10 + 2 * PIC_IRQ, 1u << 16); /* masked at the I/O APIC */
    outb(0x21, 0xfb);                           /* master: only the cascade */
    outb(0xa1, (u8)~(1u << (PIC_IRQ - 8)));     /* slave: IRQ 10 */
    clear_all();
    TEST_EQ(set_callback(((u64)HVM_PARAM_CALLBACK_TYPE_GSI << 56) | PIC_IRQ), 0,
            "CALLBACK_IRQ = GSI 10");
    test_line("send (8259)", PIC_VECTOR);
    outb(0xa1, 0xff);
    outb(0x21, 0xff);
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    xen_feature_info_t fi = { .submap_idx = 0 };
    TEST_EQ(hc(__HYPERVISOR_xen_version, XENVER_get_features, (u64)&fi, 0), 0, "get_features");
    TEST_ASSERT(fi.submap & BIT(XENFEAT_hvm_callback_vector), "XENFEAT_hvm_callback_vector");
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
    test_vector();
    test_intx();
    test_pic();
}

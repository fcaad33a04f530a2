/* -xen from 32-bit code: pirqs through the x86_32 ABI. map_pirq's structure is 36
 * bytes there (table_base 4-aligned at offset 28, right after entry_nr): a MULTI_MSI
 * request with a table at offset 28 is refused (-EINVAL) before its domain is looked
 * at, one without (its bytes 36..39 set, which the native layout would read as the
 * table's high half) is not (-ESRCH). The other sub-ops have one layout; a GSI of pc-testdev mapped
 * and bound raises its port in the x86_32 shared_info, again at eoi while the level
 * line is high. QEMU TCG has no Xen interface: skipped there.
 * guest: xen=yes device=pc-testdev name=xen_pirq32 */
/* guest: xen=yes device=pc-testdev cpu=max,vendor=AuthenticAMD name=xen_pirq32-amd */
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
#include <xen/foreign/x86_32.h>

#define ESRCH 3
#define EINVAL 22
#define ENOSYS 38
#define TESTDEV_IRQ 0x2000
#define CB_VECTOR 0xf3

static u8 *hpage;
static struct shared_info_x86_32 *si;

static long hc(u32 nr, u32 a1, u32 a2, u32 a3)
{
    long r;
    void *stub = hpage + nr * 32;
    asm volatile("call *%[stub]" : "=a"(r), "+b"(a1), "+c"(a2), "+d"(a3) : [stub] "r"(stub) : "memory");
    return r;
}

static long physdev(int cmd, void *arg)
{
    return hc(__HYPERVISOR_physdev_op, (u32)cmd, (u32)arg, 0);
}

static bool pending(u32 port)
{
    return ((volatile u32 *)si->evtchn_pending)[port / 32] >> (port % 32) & 1;
}

static void clear(u32 port)
{
    ((volatile u32 *)si->evtchn_pending)[port / 32] &= ~(1u << (port % 32));
    si->vcpu_info[0].evtchn_upcall_pending = 0;
    si->vcpu_info[0].evtchn_pending_sel = 0;
}

/* map_pirq's x86_32 structure, as bytes: the native header's fields up to entry_nr,
 * then the 8-byte table_base at offset 28 */
struct map32 {
    u8 b[36 + 4];
};

static void put32(struct map32 *m, unsigned off, u32 v) { memcpy(m->b + off, &v, 4); }
static u32 get32(const struct map32 *m, unsigned off) { u32 v; memcpy(&v, m->b + off, 4); return v; }

void test_main(void)
{
    if (!xen_test_start(NULL))
        return;
    hpage = page_alloc();
    TEST_EQ(wrmsr_safe(0x40000000, (u32)hpage), NO_EXCEPTION, "hypercall page placed from 32-bit code");
    xen_feature_info_t fi = { .submap_idx = 0 };
    TEST_EQ(hc(__HYPERVISOR_xen_version, XENVER_get_features, (u32)&fi, 0), 0, "get_features");
    TEST_ASSERT(fi.submap & BIT(XENFEAT_hvm_pirqs), "XENFEAT_hvm_pirqs");
    u8 *p = page_alloc();
    memset(p, 0, 4096);
    u32 a[4] = { DOMID_SELF, XENMAPSPACE_shared_info, 0, (u32)p >> 12 };
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u32)a, 0), 0, "shared_info placed");
    si = (void *)p;
    struct xen_hvm_param cb = { .domid = DOMID_SELF, .index = HVM_PARAM_CALLBACK_IRQ,
                                .value = (u64)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | CB_VECTOR };
    TEST_EQ(hc(__HYPERVISOR_hvm_op, HVMOP_set_param, (u32)&cb, 0), 0, "CALLBACK_IRQ = vector");

    struct physdev_pirq_eoi_gmfn g = { .gmfn = 0x100 };
    TEST_EQ(physdev(PHYSDEVOP_pirq_eoi_gmfn_v2, &g), -ENOSYS, "pirq_eoi_gmfn_v2: -ENOSYS for HVM");

    /* the x86_32 layout: table_base at 28 */
    struct map32 m;
    memset(&m, 0, sizeof(m));
    put32(&m, 0, 5);                           /* domid 5: no such domain */
    put32(&m, 4, MAP_PIRQ_TYPE_MULTI_MSI);
    put32(&m, 28, 1);                          /* table_base = 1 */
    TEST_EQ(physdev(PHYSDEVOP_map_pirq, &m), -EINVAL, "MULTI_MSI with a table at offset 28: -EINVAL");
    put32(&m, 28, 0);
    put32(&m, 36, 1);                          /* the native table_base's high half */
    TEST_EQ(physdev(PHYSDEVOP_map_pirq, &m), -ESRCH, "no table at 28..35: the domain is looked at");

    memset(&m, 0xee, sizeof(m));
    memset(&m, 0, 36);
    put32(&m, 0, DOMID_SELF);
    put32(&m, 4, MAP_PIRQ_TYPE_GSI);
    put32(&m, 8, 20);                          /* index: GSI 20 */
    put32(&m, 12, (u32)-1);                    /* pirq: any */
    TEST_EQ(physdev(PHYSDEVOP_map_pirq, &m), 0, "map GSI 20");
    u32 pirq = get32(&m, 12);
    TEST_EQ(pirq, 16, "pirq 16");
    TEST_EQ(get32(&m, 36), 0xeeeeeeee, "nothing written past the 36 bytes");

    struct physdev_irq_status_query q = { .irq = pirq };
    TEST_EQ(physdev(PHYSDEVOP_irq_status_query, &q), 0, "irq_status_query");
    TEST_EQ(q.flags, XENIRQSTAT_needs_eoi, "needs_eoi");
    struct physdev_get_free_pirq fp = { .type = MAP_PIRQ_TYPE_MSI };
    TEST_EQ(physdev(PHYSDEVOP_get_free_pirq, &fp), 0, "get_free_pirq");
    TEST_EQ(fp.pirq, 55, "from the top");

    struct evtchn_bind_pirq b = { .pirq = pirq };
    TEST_EQ(hc(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_pirq, (u32)&b, 0), 0, "bind_pirq");
    clear(b.port);
    outb(TESTDEV_IRQ + 20, 1);
    TEST_ASSERT(pending(b.port), "GSI 20: the port pending in the x86_32 shared_info");
    clear(b.port);
    struct physdev_eoi e = { .irq = pirq };
    TEST_EQ(physdev(PHYSDEVOP_eoi, &e), 0, "eoi");
    TEST_ASSERT(pending(b.port), "signalled again: the line is still high");
    clear(b.port);
    outb(TESTDEV_IRQ + 20, 0);
    TEST_EQ(physdev(PHYSDEVOP_eoi, &e), 0, "eoi");
    TEST_ASSERT(!pending(b.port), "not with the line low");
    struct physdev_unmap_pirq u = { .domid = DOMID_SELF, .pirq = (int)pirq };
    TEST_EQ(physdev(PHYSDEVOP_unmap_pirq, &u), 0, "unmap");
    outb(TESTDEV_IRQ + 20, 1);
    TEST_ASSERT(!pending(b.port), "unmapped: the port stays quiet");
    outb(TESTDEV_IRQ + 20, 0);
}

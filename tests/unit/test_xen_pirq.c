/* The machine's side of pirqs (xen_gsi_set, the set_ioapic_input host op) and what a
 * guest sees that a guest test cannot set up: a PVH domain has no pirqs (no
 * XENFEAT_hvm_pirqs, eoi / irq_status_query / get_free_pirq -ENOSYS, map / unmap -EPERM,
 * as Xen answers a domain without XEN_X86_EMU_USE_PIRQ); map_pirq's x86_32 layout is 36
 * bytes (it works at the very end of RAM, where the native 40 would not fit). The guest
 * side runs real hypercalls from 32-bit flat protected mode. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "cpu/exec.h"
#include "hv/xen/xen.h"
#include "machine/mem.h"
#include "xen_fixture.h"

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/event_channel.h>
#include <xen/features.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/memory.h>
#include <xen/physdev.h>
#include <xen/version.h>

#define RAM (4 * MiB)
#define ARG 0x1000u
#define SHINFO 0x10000u
#define GSIS 24

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static struct xen *xen;
static struct xen_config cfg;
static struct xen_host host;

/* the I/O APIC inputs as the interface drives them */
static int ioapic_calls;
static bool ioapic_input[GSIS];
static void h_ioapic(void *o, int gsi, bool level)
{
    (void)o;
    cr_assert(gsi >= 0 && gsi < GSIS);
    ioapic_calls++;
    ioapic_input[gsi] = level;
}
static struct xen_host_ops host_ops;

static long hcall_at(u32 addr, u32 nr, u32 a1, void *arg, size_t len)
{
    return xen_fixture_call(xen, c, addr, nr, a1, arg, len, arg, 0);
}

static long physdev(u32 cmd, void *arg, size_t len)
{
    return hcall_at(ARG, __HYPERVISOR_physdev_op, cmd, arg, len);
}

/* map_pirq in the x86_32 layout: table_base right after entry_nr */
struct map_pirq32 {
    u16 domid;
    u16 pad;
    s32 type, index, pirq, bus, devfn, entry_nr;
    u32 table_base_lo, table_base_hi;
};

static void setup(void)
{
    xen_fixture_boot(&mem, &model, c, RAM);
    host_ops = xen_fixture_host_ops();
    host_ops.set_ioapic_input = h_ioapic;
    xen = xen_fixture_create(&cfg, &host, &host_ops, c, GSIS);
    ioapic_calls = 0;
    memset(ioapic_input, 0, sizeof(ioapic_input));
}

static void teardown(void)
{
    xen_destroy(xen);
    cpu_destroy(c);
    mem_destroy(&mem);
}

static void vector_callback(void)
{
    struct xen_hvm_param p = { .domid = DOMID_SELF, .index = HVM_PARAM_CALLBACK_IRQ,
                               .value = (u64)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | 0xf3 };
    cr_assert_eq(hcall_at(ARG, __HYPERVISOR_hvm_op, HVMOP_set_param, &p, sizeof(p)), 0);
}

static u32 features(void)
{
    xen_feature_info_t fi = { .submap_idx = 0 };
    cr_assert_eq(hcall_at(ARG, __HYPERVISOR_xen_version, XENVER_get_features, &fi, sizeof(fi)), 0);
    return fi.submap;
}

TestSuite(xen_pirq, .init = setup, .fini = teardown);

Test(xen_pirq, pvh_domain_has_no_pirqs)
{
    cr_assert(features() & BIT(XENFEAT_hvm_pirqs), "an HVM domain has pirqs");
    xen_set_pvh(xen);
    cr_assert_not(features() & BIT(XENFEAT_hvm_pirqs), "a PVH one does not");
    vector_callback();
    struct physdev_eoi e = { .irq = 16 };
    cr_assert_eq(physdev(PHYSDEVOP_eoi, &e, sizeof(e)), -ENOSYS);
    struct physdev_irq_status_query q = { .irq = 16 };
    cr_assert_eq(physdev(PHYSDEVOP_irq_status_query, &q, sizeof(q)), -ENOSYS);
    struct physdev_get_free_pirq g = { .type = MAP_PIRQ_TYPE_GSI };
    cr_assert_eq(physdev(PHYSDEVOP_get_free_pirq, &g, sizeof(g)), -ENOSYS);
    struct map_pirq32 m = { .domid = DOMID_SELF, .type = MAP_PIRQ_TYPE_GSI, .index = 9, .pirq = -1 };
    cr_assert_eq(physdev(PHYSDEVOP_map_pirq, &m, sizeof(m)), -EPERM, "XSM: not the domain's device model");
    cr_assert_eq(m.pirq, -1);
    struct physdev_unmap_pirq u = { .domid = DOMID_SELF, .pirq = 16 };
    cr_assert_eq(physdev(PHYSDEVOP_unmap_pirq, &u, sizeof(u)), -EPERM);
    cr_assert_not(xen_gsi_set(xen, 9, true), "the line stays the I/O APIC's");
}

Test(xen_pirq, gsi_lines_and_the_ioapic_input)
{
    vector_callback();
    cr_assert_not(xen_gsi_set(xen, 20, true), "an unmapped GSI is the I/O APIC's");
    cr_assert_not(xen_gsi_set(xen, -1, true), "out of range");
    cr_assert_not(xen_gsi_set(xen, GSIS, true), "out of range");
    /* mapped while the line is high: the I/O APIC input goes low */
    struct map_pirq32 m = { .domid = DOMID_SELF, .type = MAP_PIRQ_TYPE_GSI, .index = 20, .pirq = -1 };
    ioapic_input[20] = true;
    cr_assert_eq(physdev(PHYSDEVOP_map_pirq, &m, sizeof(m)), 0);
    cr_assert_eq(m.pirq, 16);
    cr_assert_not(ioapic_input[20], "a mapped GSI leaves the I/O APIC input low");
    int calls = ioapic_calls;
    cr_assert(xen_gsi_set(xen, 20, false), "the pirq's line");
    cr_assert(xen_gsi_set(xen, 20, true), "the pirq's line");
    cr_assert_eq(ioapic_calls, calls, "the I/O APIC input is not driven meanwhile");
    struct physdev_unmap_pirq u = { .domid = DOMID_SELF, .pirq = 16 };
    cr_assert_eq(physdev(PHYSDEVOP_unmap_pirq, &u, sizeof(u)), 0);
    cr_assert(ioapic_input[20], "unmapped: the input gets the line's level back");
    cr_assert_not(xen_gsi_set(xen, 20, false), "the I/O APIC's again");
}

Test(xen_pirq, map_pirq_x86_32_layout_is_36_bytes)
{
    vector_callback();
    struct map_pirq32 m = { .domid = DOMID_SELF, .type = MAP_PIRQ_TYPE_GSI, .index = 9, .pirq = -1 };
    cr_assert_eq(sizeof(m), 36);
    u32 end = RAM - 36; /* the x86_32 structure ends with RAM */
    cr_assert_eq(hcall_at(end, __HYPERVISOR_physdev_op, PHYSDEVOP_map_pirq, &m, 36), 0);
    cr_assert_eq(m.pirq, 16, "mapped; the pirq written back");
    /* MULTI_MSI with a table at offset 28 (the x86_32 table_base) is refused before the
     * domain is looked at: -EINVAL, not -ESRCH */
    m = (struct map_pirq32){ .domid = 5, .type = MAP_PIRQ_TYPE_MULTI_MSI, .table_base_lo = 1 };
    cr_assert_eq(physdev(PHYSDEVOP_map_pirq, &m, 36), -EINVAL);
    m = (struct map_pirq32){ .domid = 5, .type = MAP_PIRQ_TYPE_MULTI_MSI, .table_base_hi = 0, .pad = 0 };
    cr_assert_eq(physdev(PHYSDEVOP_map_pirq, &m, 36), -ESRCH);
}

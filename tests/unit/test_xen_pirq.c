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

static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *opaque)
{
    (void)cp, (void)ev, (void)opaque;
    return INTERCEPT_DEFAULT;
}
static u64 now_ns(struct cpu *cp, void *opaque) { (void)cp, (void)opaque; return 0; }
static const struct cpu_ops ops = { .intercept = intercept, .now_ns = now_ns };

static void h_gsi(void *o, int g, bool l) { (void)o, (void)g, (void)l; }
static void h_intx(void *o, u8 d, int p, bool l) { (void)o, (void)d, (void)p, (void)l; }
static void h_vector(void *o, int v, u8 vec) { (void)o, (void)v, (void)vec; }
static void h_kick(void *o, int v) { (void)o, (void)v; }
static u64 h_now(void *o) { (void)o; return 0; }
static int h_timer_new(void *o, void (*fn)(void *, u64), void *arg) { (void)o, (void)fn, (void)arg; return 0; }
static void h_timer_arm(void *o, int t, u64 d) { (void)o, (void)t, (void)d; }
static void h_timer_disarm(void *o, int t) { (void)o, (void)t; }
static void h_stop(void *o, int s) { (void)o, (void)s; }
static int h_map_page(void *o, u64 gpa, u8 *hp, u32 *gen) { (void)o, (void)gpa, (void)hp, (void)gen; return -1; }
static void h_unmap_page(void *o, u8 *hp) { (void)o, (void)hp; }
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
static const struct xen_host_ops host_ops = { h_gsi, h_intx, h_vector, h_kick, h_now,
                                              h_timer_new, h_timer_arm, h_timer_disarm, h_stop,
                                              h_map_page, h_unmap_page, h_ioapic };

static long hcall_at(u32 addr, u32 nr, u32 a1, void *arg, size_t len)
{
    cr_assert_eq(mem_write(&mem, addr, arg, len), 0);
    c->gpr[R_RAX] = nr;
    c->gpr[R_RBX] = a1;
    c->gpr[R_RCX] = addr;
    xen_hypercall(xen, c);
    cr_assert_eq(mem_read(&mem, addr, arg, len), 0);
    return (long)(int)c->gpr[R_RAX];
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
    char err[128];
    cr_assert_eq(cpuid_model_parse(&model, "max", err, sizeof err), 0, "%s", err);
    cr_assert_eq(mem_init(&mem, RAM), 0);
    cr_assert_eq(cpu_init(c, 0, &mem, &model, &ops, NULL), 0);
    c->cr0 = CR0_PE | CR0_ET | CR0_NE;
    cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xc09b);
    cpu_set_seg(c, SEG_SS, 0x10, 0, 0xffffffff, 0xc093);
    cpu_update_mode(c);
    mmu_update(c);
    cr_assert_eq(xen_parse_option(&cfg, NULL, err, sizeof err), 0, "%s", err);
    static struct cpu *cpus[1];
    cpus[0] = c;
    host = (struct xen_host){ .ops = &host_ops, .tsc_khz = 1000000, .console_fd = -1,
                              .cpus = cpus, .ncpus = 1, .nr_gsis = GSIS };
    xen = xen_create(&cfg, &host, 0x40000000u);
    cr_assert_not_null(xen);
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

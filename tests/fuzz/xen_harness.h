/* What the fuzz targets of domain 0's backends share: one vCPU in flat 32-bit protected
 * mode, the Xen interface with its grant table and shared_info placed, xenstore for
 * domain 1, and a frontend's tools (hypercalls in the x86_32 ABI, grant entries, keys
 * in its device directory). Inert host operations: no lines, vectors or timers. */
#ifndef NESTOR_TESTS_FUZZ_XEN_HARNESS_H
#define NESTOR_TESTS_FUZZ_XEN_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/exec.h"
#include "dom0/xenstore.h"
#include "hv/xen/xen.h"
#include "machine/mem.h"

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/memory.h>

#define HARNESS_RAM (4 * MiB)
#define HARNESS_ARG 0x1000u
#define HARNESS_SHINFO 0x10000u
#define HARNESS_TABLE 0xd0000000ull

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static struct xen *xen;
static struct xen_config cfg;
static struct xen_host host;
static struct xenstore *xs;

static enum intercept_result h_intercept(struct cpu *cp, struct cpu_event *ev, void *o)
{
    (void)cp, (void)ev, (void)o;
    return INTERCEPT_DEFAULT;
}
static u64 h_cpu_now(struct cpu *cp, void *o) { (void)cp, (void)o; return 0; }
static const struct cpu_ops h_cpu_ops = { .intercept = h_intercept, .now_ns = h_cpu_now };
static void h_gsi(void *o, int g, bool l) { (void)o, (void)g, (void)l; }
static void h_intx(void *o, u8 d, int p, bool l) { (void)o, (void)d, (void)p, (void)l; }
static void h_vector(void *o, int v, u8 vec) { (void)o, (void)v, (void)vec; }
static void h_kick(void *o, int v) { (void)o, (void)v; }
static u64 h_now(void *o) { (void)o; return 0; }
static int h_timer_new(void *o, void (*fn)(void *, u64), void *arg) { (void)o, (void)fn, (void)arg; return 0; }
static void h_timer_arm(void *o, int t, u64 d) { (void)o, (void)t, (void)d; }
static void h_timer_disarm(void *o, int t) { (void)o, (void)t; }
static void h_stop(void *o, int s) { (void)o, (void)s; }
static int h_map(void *o, u64 gpa, u8 *p, u32 *gen) { (void)o; return mem_overlay_map(&mem, gpa, p, gen); }
static void h_unmap(void *o, u8 *p) { (void)o; mem_overlay_unmap(&mem, p); }
static void h_ioapic(void *o, int g, bool l) { (void)o, (void)g, (void)l; }
static const struct xen_host_ops h_host_ops = {
    .set_gsi = h_gsi, .set_pci_intx = h_intx, .deliver_vector = h_vector, .kick = h_kick,
    .now_ns = h_now, .timer_new = h_timer_new, .timer_arm = h_timer_arm,
    .timer_disarm = h_timer_disarm, .stop = h_stop, .map_page = h_map, .unmap_page = h_unmap,
    .set_ioapic_input = h_ioapic,
};

static long hcall(u32 nr, u32 a1, const void *arg, size_t len, void *out)
{
    if (mem_write(&mem, HARNESS_ARG, arg, len))
        abort();
    c->gpr[R_RAX] = nr;
    c->gpr[R_RBX] = a1;
    c->gpr[R_RCX] = HARNESS_ARG;
    c->gpr[R_RDX] = 0;
    xen_hypercall(xen, c);
    if (out && mem_read(&mem, HARNESS_ARG, out, len))
        abort();
    return (long)(int)c->gpr[R_RAX];
}

/* A v1 grant of frame to domain 0 */
static void grant(u32 ref, u16 flags, u32 frame)
{
    grant_entry_v1_t e = { .flags = flags, .domid = 0, .frame = frame };
    mem_write(&mem, HARNESS_TABLE + 8ull * ref, &e, sizeof(e));
}

/* A key of the frontend's directory dir */
static void fe_write(const char *dir, const char *key, const char *value)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/%s", dir, key);
    xenstore_write(xs, p, value, strlen(value));
}

/* A port the guest allocates for domain 0 (0 if refused) */
static u32 guest_port_for_dom0(void)
{
    struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = 0 };
    return hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_alloc_unbound, &au, sizeof(au), &au) == 0 ? au.port : 0;
}

static void guest_send(u32 port)
{
    struct evtchn_send s = { .port = port };
    hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &s, sizeof(s), NULL);
}

static void harness_setup(void)
{
    char e[200];
    if (cpuid_model_parse(&model, "max", e, sizeof(e)) < 0 || mem_init(&mem, HARNESS_RAM) ||
        cpu_init(c, 0, &mem, &model, &h_cpu_ops, NULL))
        abort();
    c->cr0 = CR0_PE | CR0_ET | CR0_NE;
    cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xc09b);
    cpu_set_seg(c, SEG_SS, 0x10, 0, 0xffffffff, 0xc093);
    cpu_update_mode(c);
    mmu_update(c);
    if (xen_parse_option(&cfg, NULL, e, sizeof(e)))
        abort();
    static struct cpu *cpus[1];
    cpus[0] = c;
    host = (struct xen_host){ .ops = &h_host_ops, .tsc_khz = 1000000, .console_fd = -1,
                              .cpus = cpus, .ncpus = 1 };
    if (!(xen = xen_create(&cfg, &host, 0x40000000u)))
        abort();
    u32 ap[4] = { DOMID_SELF, XENMAPSPACE_grant_table, 0, (u32)(HARNESS_TABLE >> 12) };
    u32 si[4] = { DOMID_SELF, XENMAPSPACE_shared_info, 0, HARNESS_SHINFO >> 12 };
    if (hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &ap, sizeof(ap), NULL) ||
        hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &si, sizeof(si), NULL))
        abort();
    if (!(xs = xenstore_create(1, &xenstore_default_limits)))
        abort();
}

static void harness_teardown(void)
{
    xenstore_destroy(xs);
    xen_destroy(xen);
    cpu_destroy(c);
    mem_destroy(&mem);
}

#endif

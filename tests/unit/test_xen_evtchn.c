/* dom0's end of interdomain event channels (xen_evtchn_host_*), the host-side API
 * nestor's PV backends use: a dom0 port the guest binds (bind_interdomain to domain 0),
 * dom0 binding a guest port left unbound for domain 0, notifications both ways (the
 * guest's send runs the backend's callback; the backend's notify makes the guest's port
 * pending in shared_info), close from either side returning the other end to unbound.
 * The guest side runs real hypercalls from 32-bit flat protected mode. */
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
#include <xen/memory.h>

#define RAM (4 * MiB)
#define ARG 0x1000u
#define SHINFO 0x10000u

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static struct xen *xen;
static struct xen_config cfg;
static struct xen_host host;

static struct xen_host_ops host_ops;

/* the backend's callback: which dom0 port the guest signalled, how often */
static u32 notified_port, notified;
static int opaque_tag;
static void backend_notify(void *opaque, u32 port)
{
    cr_assert_eq(opaque, &opaque_tag);
    notified_port = port;
    notified++;
}

static long hcall(u32 nr, u32 a1, const void *arg, size_t len, void *out)
{
    return xen_fixture_call(xen, c, ARG, nr, a1, arg, len, out, 0);
}

static long evop(u32 cmd, void *arg, size_t len)
{
    return hcall(__HYPERVISOR_event_channel_op, cmd, arg, len, arg);
}

static bool guest_pending(u32 port)
{
    u64 w;
    cr_assert_eq(mem_read_u64(&mem, SHINFO + offsetof(struct shared_info, evtchn_pending) + 8 * (port / 64), &w), 0);
    return w >> (port % 64) & 1;
}

static void clear_guest_pending(void)
{
    u8 zero[sizeof(((struct shared_info *)0)->evtchn_pending)] = { 0 };
    cr_assert_eq(mem_write(&mem, SHINFO + offsetof(struct shared_info, evtchn_pending), zero, sizeof(zero)), 0);
}

static void setup(void)
{
    xen_fixture_boot(&mem, &model, c, RAM);
    host_ops = xen_fixture_host_ops();
    xen = xen_fixture_create(&cfg, &host, &host_ops, c, 0);
    /* the 32-bit ABI's compat xen_add_to_physmap: domid, size, space, idx, gpfn */
    u32 ap[4] = { DOMID_SELF, XENMAPSPACE_shared_info, 0, SHINFO >> 12 };
    cr_assert_eq(hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &ap, sizeof(ap), NULL), 0);
    notified = 0;
}

static void teardown(void)
{
    xen_destroy(xen);
    cpu_destroy(c);
    mem_destroy(&mem);
}

TestSuite(xen_evtchn_host, .init = setup, .fini = teardown);

Test(xen_evtchn_host, guest_binds_a_dom0_port)
{
    long d = xen_evtchn_host_alloc_unbound(xen, backend_notify, &opaque_tag);
    cr_assert_gt(d, 0, "a dom0 port (%ld)", d);
    struct evtchn_bind_interdomain bi = { .remote_dom = 0, .remote_port = (u32)d };
    cr_assert_eq(evop(EVTCHNOP_bind_interdomain, &bi, sizeof(bi)), 0);
    u32 port = bi.local_port;
    cr_assert(guest_pending(port), "a fresh interdomain end starts pending");
    clear_guest_pending();

    struct evtchn_send s = { .port = port };
    cr_assert_eq(evop(EVTCHNOP_send, &s, sizeof(s)), 0);
    cr_assert_eq(notified, 1, "the guest's send ran the backend's callback");
    cr_assert_eq(notified_port, (u32)d);
    cr_assert_not(guest_pending(port), "and signalled nothing on the guest's side");

    cr_assert_eq(xen_evtchn_host_notify(xen, (u32)d), 0);
    cr_assert(guest_pending(port), "the backend's notify: the guest's port pending");

    struct evtchn_status st = { .dom = DOMID_SELF, .port = port };
    cr_assert_eq(evop(EVTCHNOP_status, &st, sizeof(st)), 0);
    cr_assert_eq(st.status, EVTCHNSTAT_interdomain);
    cr_assert_eq(st.u.interdomain.dom, 0);
    cr_assert_eq(st.u.interdomain.port, (u32)d);

    /* a second guest bind of the same dom0 port: it is no longer unbound */
    struct evtchn_bind_interdomain again = { .remote_dom = 0, .remote_port = (u32)d };
    cr_assert_eq(evop(EVTCHNOP_bind_interdomain, &again, sizeof(again)), -EINVAL);

    /* the guest closes: dom0's end is unbound again, its notify signals nothing */
    struct evtchn_close cl = { .port = port };
    cr_assert_eq(evop(EVTCHNOP_close, &cl, sizeof(cl)), 0);
    clear_guest_pending();
    cr_assert_eq(xen_evtchn_host_notify(xen, (u32)d), 0);
    cr_assert_not(guest_pending(port));
    cr_assert_eq(evop(EVTCHNOP_bind_interdomain, &again, sizeof(again)), 0, "bindable again");

    xen_evtchn_host_close(xen, (u32)d);
    st = (struct evtchn_status){ .dom = DOMID_SELF, .port = again.local_port };
    cr_assert_eq(evop(EVTCHNOP_status, &st, sizeof(st)), 0);
    cr_assert_eq(st.status, EVTCHNSTAT_unbound, "dom0 closed: the guest's end is unbound");
    cr_assert_eq(st.u.unbound.dom, 0);
    cr_assert_eq(xen_evtchn_host_notify(xen, (u32)d), -EINVAL, "a closed dom0 port");
}

Test(xen_evtchn_host, dom0_binds_a_guest_port)
{
    struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = 0 };
    cr_assert_eq(evop(EVTCHNOP_alloc_unbound, &au, sizeof(au)), 0);
    struct evtchn_alloc_unbound self = { .dom = DOMID_SELF, .remote_dom = DOMID_SELF };
    cr_assert_eq(evop(EVTCHNOP_alloc_unbound, &self, sizeof(self)), 0);
    cr_assert_eq(xen_evtchn_host_bind(xen, self.port, backend_notify, &opaque_tag), -EINVAL,
                 "a port left unbound for the guest itself is not dom0's");
    cr_assert_eq(xen_evtchn_host_bind(xen, 0, backend_notify, &opaque_tag), -EINVAL, "port 0");
    cr_assert_eq(xen_evtchn_host_bind(xen, 1u << 20, backend_notify, &opaque_tag), -EINVAL,
                 "beyond the ports");
    long d = xen_evtchn_host_bind(xen, au.port, backend_notify, &opaque_tag);
    cr_assert_gt(d, 0);
    /* Xen marks the binder's new port pending (dom0's here), not the remote end */
    cr_assert_not(guest_pending(au.port), "bound by dom0: the guest's end not signalled");
    struct evtchn_status st = { .dom = DOMID_SELF, .port = au.port };
    cr_assert_eq(evop(EVTCHNOP_status, &st, sizeof(st)), 0);
    cr_assert_eq(st.status, EVTCHNSTAT_interdomain);
    cr_assert_eq(st.u.interdomain.port, (u32)d);
    cr_assert_eq(xen_evtchn_host_bind(xen, au.port, backend_notify, &opaque_tag), -EINVAL,
                 "bound twice");
    struct evtchn_send s = { .port = au.port };
    cr_assert_eq(evop(EVTCHNOP_send, &s, sizeof(s)), 0);
    cr_assert_eq(notified, 1);
    cr_assert_eq(notified_port, (u32)d);
    xen_evtchn_host_close(xen, (u32)d);
    cr_assert_eq(evop(EVTCHNOP_send, &s, sizeof(s)), 0, "send on the now unbound port: dropped");
    cr_assert_eq(notified, 1);
    cr_assert_eq(xen_evtchn_host_notify(xen, 9999), -EINVAL, "a dom0 port out of range");
    xen_evtchn_host_close(xen, 9999); /* harmless */
}

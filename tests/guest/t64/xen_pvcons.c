/* -xen: the PV console xl gives every HVM domU (its output half): HVM_PARAM_CONSOLE_PFN
 * and HVM_PARAM_CONSOLE_EVTCHN are set before the guest starts (read-only for it), the
 * page is a struct xencons_interface at libxenguest's special pfn (reserved in the
 * memory map, not RAM), the port is the guest's own end of a channel dom0 already bound.
 * A line written into out[] and signalled reaches nestor's console (the runner checks
 * the marker), out_cons catches up with out_prod and the guest's port is signalled
 * back; a hostile out_prod far ahead is bounded (one ring's worth), no hang.
 * QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes output=PVCONS-MARKER-OK name=xen_pvcons */
/* guest: xen=yes output=PVCONS-MARKER-OK cpu=max,vendor=AuthenticAMD name=xen_pvcons-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/event_channel.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/io/console.h>

#define EPERM 1

static bool amd;

static long hc(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static long get_param(u32 index, u64 *value)
{
    struct xen_hvm_param p = { .domid = DOMID_SELF, .index = index, .value = 0xdead };
    long r = hc(__HYPERVISOR_hvm_op, HVMOP_get_param, (u64)&p, 0);
    *value = p.value;
    return r;
}

static long set_param(u32 index, u64 value)
{
    struct xen_hvm_param p = { .domid = DOMID_SELF, .index = index, .value = value };
    return hc(__HYPERVISOR_hvm_op, HVMOP_set_param, (u64)&p, 0);
}

static bool port_pending(struct shared_info *s, u32 port)
{
    return s->evtchn_pending[port / 64] >> (port % 64) & 1;
}

static void send(u32 port)
{
    struct evtchn_send s = { .port = port };
    TEST_EQ(hc(__HYPERVISOR_event_channel_op, EVTCHNOP_send, (u64)&s, 0), 0, "EVTCHNOP_send on the console port");
}

void test_main(void)
{
    if (!xen_test_start(&amd))
        return;
    u64 pfn, port;
    TEST_EQ(get_param(HVM_PARAM_CONSOLE_PFN, &pfn), 0, "CONSOLE_PFN readable");
    TEST_EQ(get_param(HVM_PARAM_CONSOLE_EVTCHN, &port), 0, "CONSOLE_EVTCHN readable");
    /* libxenguest's special_pfn(SPECIALPAGE_CONSOLE): 0xff000 - 8 + 7 */
    TEST_EQ(pfn, 0xfefffull, "the console page is at the special pfn");
    TEST_ASSERT(port != 0, "the console has a port (%lu)", (unsigned long)port);
    TEST_EQ(set_param(HVM_PARAM_CONSOLE_PFN, 0x1234), -EPERM, "CONSOLE_PFN is the toolstack's");

    /* the port is an interdomain channel to dom0, already bound */
    struct evtchn_status st = { .dom = DOMID_SELF, .port = (u32)port };
    TEST_EQ(hc(__HYPERVISOR_event_channel_op, EVTCHNOP_status, (u64)&st, 0), 0, "status of the console port");
    TEST_EQ(st.status, EVTCHNSTAT_interdomain, "the console port is interdomain");
    TEST_EQ(st.u.interdomain.dom, 0, "bound to dom0");

    /* the page is reserved in the memory map, not RAM */
    struct e820 { u64 addr, size; u32 type; } __attribute__((packed)) map[64];
    struct xen_memory_map mm = { .nr_entries = 64 };
    set_xen_guest_handle(mm.buffer, (void *)map);
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_memory_map, (u64)&mm, 0), 0, "XENMEM_memory_map");
    bool covered = false;
    for (u32 i = 0; i < mm.nr_entries; i++) {
        if (map[i].addr <= pfn << 12 && (pfn << 12) + 4096 <= map[i].addr + map[i].size) {
            TEST_EQ(map[i].type, 2, "the console page's e820 range is reserved");
            covered = true;
        }
    }
    TEST_ASSERT(covered, "the console page is in the memory map");

    struct shared_info *shinfo = page_alloc();
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)shinfo >> 12 };
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0), 0, "shared_info placed");
    memset((void *)shinfo->evtchn_pending, 0, sizeof(shinfo->evtchn_pending));
    memset((void *)shinfo->evtchn_mask, 0, sizeof(shinfo->evtchn_mask));

    /* the page by its physical address (identity-mapped) */
    volatile struct xencons_interface *con = (volatile struct xencons_interface *)(pfn << 12);
    TEST_EQ(con->out_prod, con->out_cons, "the output ring starts empty");
    TEST_EQ(con->in_prod, con->in_cons, "no input");
    static const char line[] = "PVCONS-MARKER-OK\n";
    XENCONS_RING_IDX prod = con->out_prod;
    for (unsigned i = 0; i < sizeof(line) - 1; i++, prod++)
        con->out[MASK_XENCONS_IDX(prod, con->out)] = line[i];
    __atomic_thread_fence(__ATOMIC_RELEASE);
    con->out_prod = prod;
    send((u32)port);
    TEST_EQ(con->out_cons, prod, "dom0 consumed the line");
    TEST_ASSERT(port_pending(shinfo, (u32)port), "dom0 signalled the console port back");

    /* hostile: the producer claims 3 GiB more; dom0 takes one ring's worth per signal */
    shinfo->evtchn_pending[port / 64] = 0;
    memset((void *)con->out, ' ', sizeof(con->out));
    con->out[sizeof(con->out) - 1] = '\n';
    XENCONS_RING_IDX cons = con->out_cons;
    con->out_prod = cons + 0xc0000000u;
    send((u32)port);
    TEST_EQ(con->out_cons, cons + (u32)sizeof(con->out), "a hostile out_prod: one ring's worth consumed");
    TEST_ASSERT(port_pending(shinfo, (u32)port), "signalled back");
    con->out_cons = con->out_prod; /* the guest gives up its bogus producer */

}

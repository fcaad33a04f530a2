/* The PV network backend (src/dom0/netback.c): its transmit-slot checks (the first
 * slot's size as the frame's, more_data and extra-info chains, GSO requests, and every way
 * a hostile frontend gets them wrong), then the backend driven by a frontend written as a
 * guest's on an in-process peer network: the handshake's keys, checksum offload over
 * scatter-gather slots, TCP segmentation, error answers, a broken ring, frames received
 * into posted buffers (waiting for them, spanning two). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/io/netif.h>

#include "dom0/netback.h"
#include <stdio.h>
#include <stdlib.h>

#include "cpu/exec.h"
#include "dom0/netdev.h"
#include "dom0/netpkt.h"
#include "dom0/xenstore.h"
#include "hv/xen/xen.h"
#include "machine/mem.h"
#include "machine/state.h"
#include "xen_fixture.h"

#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/memory.h>

static struct netif_slot data(u16 offset, u16 size, u16 flags)
{
    struct netif_slot s = { .gref = 9, .offset = offset, .flags = flags, .id = 1, .size = size };
    return s;
}

static struct netif_slot extra(u8 type, u8 flags, u16 gso_size, u8 gso_type)
{
    struct netif_slot s = { 0 };
    s.raw[0] = type;
    s.raw[1] = flags;
    memcpy(s.raw + 2, &gso_size, 2);
    s.raw[4] = gso_type;
    return s;
}

Test(netif_tx, one_slot_frame)
{
    struct netif_slot s[1] = { data(100, 1514, NETTXF_csum_blank) };
    struct netif_tx_frame f;
    const char *why;
    cr_assert_eq(netif_tx_check(s, 1, &f, &why), 0, "%s", why);
    cr_assert_eq(f.size, 1514);
    cr_assert_eq(f.nslots, 1);
    cr_assert(f.csum_blank);
    cr_assert_eq(f.gso_size, 0);
}

Test(netif_tx, scatter_gather_with_gso)
{
    /* 9000 bytes: 200 in the first slot, then two 4096-byte pages and 608 */
    struct netif_slot s[5] = {
        data(3896, 9000, NETTXF_more_data | NETTXF_extra_info),
        extra(XEN_NETIF_EXTRA_TYPE_GSO, 0, 1448, XEN_NETIF_GSO_TYPE_TCPV4),
        data(0, 4096, NETTXF_more_data), data(0, 4096, NETTXF_more_data), data(0, 608, 0),
    };
    struct netif_tx_frame f;
    const char *why;
    cr_assert_eq(netif_tx_check(s, 5, &f, &why), 0, "%s", why);
    cr_assert_eq(f.nslots, 4);
    cr_assert_eq(f.nextra, 1);
    cr_assert_eq(f.first_extra, 1);
    cr_assert_eq(f.gso_size, 1448);
    cr_assert_eq(f.gso_type, XEN_NETIF_GSO_TYPE_TCPV4);
}

Test(netif_tx, hostile_slots)
{
    struct netif_tx_frame f;
    const char *why;
    struct netif_slot past_page[1] = { data(4000, 200, 0) };
    cr_assert_eq(netif_tx_check(past_page, 1, &f, &why), -1, "the first slot past its page");
    struct netif_slot too_much[2] = { data(0, 100, NETTXF_more_data), data(0, 200, 0) };
    cr_assert_eq(netif_tx_check(too_much, 2, &f, &why), -1, "fragments larger than the frame");
    struct netif_slot runs_on[2] = { data(0, 3000, NETTXF_more_data), data(0, 1000, NETTXF_more_data) };
    cr_assert_eq(netif_tx_check(runs_on, 2, &f, &why), -1, "a more_data chain without an end");
    struct netif_slot frag_past[2] = { data(0, 3000, NETTXF_more_data), data(4000, 1000, 0) };
    cr_assert_eq(netif_tx_check(frag_past, 2, &f, &why), -1, "a fragment past its page");
    struct netif_slot tiny[1] = { data(0, 10, 0) };
    cr_assert_eq(netif_tx_check(tiny, 1, &f, &why), -1, "shorter than Ethernet");
    struct netif_slot bad_gso[2] = { data(0, 1514, NETTXF_extra_info), extra(XEN_NETIF_EXTRA_TYPE_GSO, 0, 0, 1) };
    cr_assert_eq(netif_tx_check(bad_gso, 2, &f, &why), -1, "GSO without a size");
    struct netif_slot bad_type[2] = { data(0, 1514, NETTXF_extra_info), extra(XEN_NETIF_EXTRA_TYPE_GSO, 0, 1448, 7) };
    cr_assert_eq(netif_tx_check(bad_type, 2, &f, &why), -1, "an unknown GSO type");
    struct netif_slot unknown[2] = { data(0, 1514, NETTXF_extra_info), extra(0, 0, 0, 0) };
    cr_assert_eq(netif_tx_check(unknown, 2, &f, &why), -1, "extra-info type NONE");
    struct netif_slot endless[2] = { data(0, 1514, NETTXF_extra_info),
                                     extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_FLAG_MORE, 0, 0) };
    cr_assert_eq(netif_tx_check(endless, 2, &f, &why), -1, "an extra-info chain without an end");
    cr_assert_eq(netif_tx_check(endless, 0, &f, &why), -1, "no slots");
}

/* ---- the backend driven by a frontend written as a guest's, on an in-process peer ---- */

#define RAM (4 * MiB)
#define ARG 0x1000u
#define SHINFO 0x10000u
#define TXRING 0x30000u     /* grant 1 */
#define RXRING 0x31000u     /* grant 2 */
#define BUF 0x40000u        /* grants 10..: BUF + 4 KiB * i */
#define TABLE 0xd0000000ull
#define FE "/local/domain/1/device/vif/0"
#define BE "/local/domain/0/backend/vif/1/0"

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static struct xen *xen;
static struct xen_config cfg;
static struct xen_host host;
static struct xen_host_ops host_ops;
static struct xenstore *xs;
static struct netdev *peer;
static struct netback *nb;
static u32 port, tx_prod, rx_prod;

/* what reached the network */
static u8 sent[16][2048];
static size_t sent_len[16];
static int nsent;
static void peer_send(void *opaque, const u8 *frame, size_t len)
{
    (void)opaque;
    cr_assert_lt(nsent, 16);
    cr_assert_leq(len, sizeof(sent[0]));
    memcpy(sent[nsent], frame, len);
    sent_len[nsent++] = len;
}

static int h_map_page(void *o, u64 gpa, u8 *page, u32 *gen) { (void)o; return mem_overlay_map(&mem, gpa, page, gen); }
static void h_unmap_page(void *o, u8 *page) { (void)o; mem_overlay_unmap(&mem, page); }

static long hcall(u32 nr, u32 a1, const void *arg, size_t len, void *out)
{
    return xen_fixture_call(xen, c, ARG, nr, a1, arg, len, out, 0);
}

static void grant(u32 ref, u64 gpa)
{
    grant_entry_v1_t e = { .flags = GTF_permit_access, .domid = 0, .frame = (u32)(gpa >> 12) };
    cr_assert_eq(mem_write(&mem, TABLE + 8ull * ref, &e, sizeof(e)), 0);
}

static void fe_write(const char *key, const char *value)
{
    char p[128];
    snprintf(p, sizeof(p), FE "/%s", key);
    cr_assert_eq(xenstore_write(xs, p, value, strlen(value)), 0);
}

static void setup(void)
{
    xen_fixture_boot(&mem, &model, c, RAM);
    host_ops = xen_fixture_host_ops();
    host_ops.map_page = h_map_page;
    host_ops.unmap_page = h_unmap_page;
    xen = xen_fixture_create(&cfg, &host, &host_ops, c, 0);
    u32 ap[4] = { DOMID_SELF, XENMAPSPACE_grant_table, 0, (u32)(TABLE >> 12) };
    cr_assert_eq(hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &ap, sizeof(ap), NULL), 0);
    u32 si[4] = { DOMID_SELF, XENMAPSPACE_shared_info, 0, SHINFO >> 12 };
    cr_assert_eq(hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &si, sizeof(si), NULL), 0);
    xs = xenstore_create(1, &xenstore_default_limits);
    peer = netdev_create_peer("test", peer_send, NULL);
    char err[200];
    struct netback_opts o = { .netdev = peer, .devid = 0, .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 }, .max_queues = 2 };
    nb = netback_create(xen, xs, &o, err, sizeof(err));
    cr_assert_not_null(nb, "%s", err);
    nsent = 0;
    tx_prod = rx_prod = 0;
    /* the frontend: both rings, one channel */
    u8 zero[4096] = { 0 };
    u32 one = 1;
    for (u32 r = TXRING; r <= RXRING; r += 0x1000) {
        cr_assert_eq(mem_write(&mem, r, zero, sizeof(zero)), 0);
        mem_write(&mem, r + 4, &one, 4);
        mem_write(&mem, r + 12, &one, 4);
    }
    grant(1, TXRING);
    grant(2, RXRING);
    struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = 0 };
    cr_assert_eq(hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_alloc_unbound, &au, sizeof(au), &au), 0);
    port = au.port;
    char v[16];
    snprintf(v, sizeof(v), "%u", port);
    fe_write("tx-ring-ref", "1");
    fe_write("rx-ring-ref", "2");
    fe_write("event-channel", v);
    fe_write("request-rx-copy", "1");
    fe_write("state", "4");
}

static void teardown(void)
{
    netback_destroy(nb);
    netdev_destroy(peer);
    xenstore_destroy(xs);
    xen_destroy(xen);
    cpu_destroy(c);
    mem_destroy(&mem);
}

static void signal_backend(void)
{
    cr_assert_eq(mem_write(&mem, TXRING, &tx_prod, 4), 0);
    cr_assert_eq(mem_write(&mem, RXRING, &rx_prod, 4), 0);
    struct evtchn_send s = { .port = port };
    cr_assert_eq(hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &s, sizeof(s), NULL), 0);
}

static void tx_slot(const void *slot)
{
    cr_assert_eq(mem_write(&mem, TXRING + 64 + (tx_prod % 256) * 12, slot, 12), 0);
    tx_prod++;
}

static void tx_data(u32 gref, u16 offset, u16 flags, u16 id, u16 size)
{
    struct netif_tx_request r = { .gref = gref, .offset = offset, .flags = flags, .id = id, .size = size };
    tx_slot(&r);
}

static struct netif_tx_response tx_response(u32 i)
{
    struct netif_tx_response r;
    cr_assert_eq(mem_read(&mem, TXRING + 64 + (i % 256) * 12, &r, sizeof(r)), 0);
    return r;
}

static u32 rsp_prod(u32 ring)
{
    u32 v;
    cr_assert_eq(mem_read_u32(&mem, ring + 8, &v), 0);
    return v;
}

/* A TCP/IPv4 frame with payload bytes, its checksum partial (pseudo header), at gpa */
static size_t tcp_frame(u64 gpa, u32 payload)
{
    static u8 f[9000];
    memset(f, 0, 54);
    f[12] = 0x08;
    u8 *ip = f + 14, *tcp = ip + 20;
    ip[0] = 0x45;
    ip[2] = (u8)((40 + payload) >> 8);
    ip[3] = (u8)(40 + payload);
    ip[8] = 64;
    ip[9] = 6;
    memcpy(ip + 12, "\x0a\x00\x02\x0f\x0a\x00\x02\x02", 8);
    u16 hs = (u16)~netpkt_fold(netpkt_sum(ip, 20, 0));
    ip[10] = (u8)(hs >> 8);
    ip[11] = (u8)hs;
    tcp[12] = 0x50;
    tcp[13] = 0x18;
    for (u32 i = 0; i < payload; i++)
        tcp[20 + i] = (u8)(i * 3);
    u8 ph[12];
    memcpy(ph, ip + 12, 8);
    ph[8] = 0;
    ph[9] = 6;
    ph[10] = (u8)((20 + payload) >> 8);
    ph[11] = (u8)(20 + payload);
    u16 ps = netpkt_fold(netpkt_sum(ph, 12, 0));
    tcp[16] = (u8)(ps >> 8);
    tcp[17] = (u8)ps;
    cr_assert_eq(mem_write(&mem, gpa, f, 54 + payload), 0);
    return 54 + payload;
}

static bool tcp_ok(const u8 *f)
{
    const u8 *ip = f + 14;
    u32 len = (u32)(ip[2] << 8 | ip[3]) - 20;
    u8 ph[12];
    memcpy(ph, ip + 12, 8);
    ph[8] = 0;
    ph[9] = 6;
    ph[10] = (u8)(len >> 8);
    ph[11] = (u8)len;
    return netpkt_fold(netpkt_sum(ip + 20, len, netpkt_sum(ph, 12, 0))) == 0xffff;
}

TestSuite(netback, .init = setup, .fini = teardown);

Test(netback, probe_and_connect)
{
    char v[64];
    static const char *const keys[][2] = {
        { "feature-sg", "1" }, { "feature-gso-tcpv4", "1" }, { "feature-gso-tcpv6", "1" },
        { "feature-rx-copy", "1" }, { "feature-split-event-channels", "1" },
        { "multi-queue-max-queues", "2" }, { "mac", "52:54:00:12:34:56" }, { "state", "4" },
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), BE "/%s", keys[i][0]);
        cr_assert_gt(xenstore_read(xs, p, v, sizeof(v)), 0, "%s", keys[i][0]);
        cr_assert_str_eq(v, keys[i][1], "%s", keys[i][0]);
    }
    cr_assert_gt(xenstore_read(xs, FE "/mac", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "52:54:00:12:34:56");
}

Test(netback, transmits_with_checksum_offload_and_scatter_gather)
{
    /* 1054 bytes: 54 + 1000 of payload, in two slots (the first 500 in page 0 at 3596) */
    size_t len = tcp_frame(BUF + 0x2000, 1000);
    u8 f[1100];
    cr_assert_eq(mem_read(&mem, BUF + 0x2000, f, len), 0);
    cr_assert_eq(mem_write(&mem, BUF + 3596, f, 500), 0);
    cr_assert_eq(mem_write(&mem, BUF + 0x1000, f + 500, len - 500), 0);
    grant(10, BUF);
    grant(11, BUF + 0x1000);
    tx_data(10, 3596, NETTXF_csum_blank | NETTXF_more_data, 7, (u16)len);
    tx_data(11, 0, 0, 8, (u16)(len - 500));
    signal_backend();
    cr_assert_eq(nsent, 1);
    cr_assert_eq(sent_len[0], len);
    cr_assert(tcp_ok(sent[0]), "the checksum was completed");
    cr_assert_eq(memcmp(sent[0] + 54, f + 54, 1000), 0);
    cr_assert_eq(rsp_prod(TXRING), 2);
    cr_assert_eq(tx_response(0).id, 7);
    cr_assert_eq(tx_response(0).status, NETIF_RSP_OKAY);
    cr_assert_eq(tx_response(1).id, 8);
}

Test(netback, segments_a_gso_frame)
{
    size_t len = tcp_frame(BUF, 3000);
    grant(10, BUF);
    u8 f[3100];
    cr_assert_eq(mem_read(&mem, BUF, f, len), 0);
    tx_data(10, 0, NETTXF_csum_blank | NETTXF_extra_info, 1, (u16)len);
    struct netif_extra_info ex = { .type = XEN_NETIF_EXTRA_TYPE_GSO };
    ex.u.gso.size = 1000;
    ex.u.gso.type = XEN_NETIF_GSO_TYPE_TCPV4;
    u8 slot[12] = { 0 }; /* an extra-info slot is 8 bytes of a 12-byte ring entry */
    memcpy(slot, &ex, sizeof(ex));
    tx_slot(slot);
    signal_backend();
    cr_assert_eq(nsent, 3, "three segments of 1000");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sent_len[i], 54 + 1000);
        cr_assert(tcp_ok(sent[i]), "segment %d", i);
        cr_assert_eq(memcmp(sent[i] + 54, f + 54 + 1000 * i, 1000), 0);
    }
    cr_assert_eq(rsp_prod(TXRING), 2);
    cr_assert_eq(tx_response(0).status, NETIF_RSP_OKAY);
    cr_assert_eq(tx_response(1).status, NETIF_RSP_NULL, "the extra-info slot");
}

Test(netback, bad_slots_answered_as_errors)
{
    grant(10, BUF);
    tx_data(10, 4000, 0, 1, 200);         /* past its page */
    tx_data(99, 0, 0, 2, 100);            /* a grant the guest never gave */
    signal_backend();
    cr_assert_eq(nsent, 0);
    cr_assert_eq(rsp_prod(TXRING), 2);
    cr_assert_eq(tx_response(0).status, NETIF_RSP_ERROR);
    cr_assert_eq(tx_response(1).status, NETIF_RSP_ERROR);
    /* a broken producer index: nothing more is served */
    tx_prod = 5000;
    signal_backend();
    cr_assert_eq(rsp_prod(TXRING), 2);
}

Test(netback, receives_into_posted_buffers)
{
    u8 small[100], big[6000];
    for (u32 i = 0; i < sizeof(small); i++)
        small[i] = (u8)i;
    for (u32 i = 0; i < sizeof(big); i++)
        big[i] = (u8)(i * 5);
    /* no buffers yet: the frame waits */
    netdev_deliver(peer, small, sizeof(small));
    cr_assert_eq(rsp_prod(RXRING), 0);
    for (u32 i = 0; i < 3; i++) {
        grant(20 + i, BUF + 0x1000 * i);
        struct netif_rx_request r = { .id = (u16)(100 + i), .gref = 20 + i };
        cr_assert_eq(mem_write(&mem, RXRING + 64 + rx_prod * 8, &r, 8), 0);
        rx_prod++;
    }
    signal_backend();
    cr_assert_eq(rsp_prod(RXRING), 1, "the waiting frame in the first buffer");
    struct netif_rx_response rsp;
    cr_assert_eq(mem_read(&mem, RXRING + 64, &rsp, sizeof(rsp)), 0);
    cr_assert_eq(rsp.id, 100);
    cr_assert_eq(rsp.status, 100);
    cr_assert_eq(rsp.flags & NETRXF_more_data, 0);
    u8 back[6000];
    cr_assert_eq(mem_read(&mem, BUF, back, 100), 0);
    cr_assert_eq(memcmp(back, small, 100), 0);
    /* a 6000-byte frame over the next two buffers */
    netdev_deliver(peer, big, sizeof(big));
    cr_assert_eq(rsp_prod(RXRING), 3);
    cr_assert_eq(mem_read(&mem, RXRING + 64 + 8, &rsp, sizeof(rsp)), 0);
    cr_assert_eq(rsp.status, 4096);
    cr_assert_neq(rsp.flags & NETRXF_more_data, 0);
    cr_assert_eq(mem_read(&mem, RXRING + 64 + 16, &rsp, sizeof(rsp)), 0);
    cr_assert_eq(rsp.status, 6000 - 4096);
    cr_assert_eq(rsp.flags & NETRXF_more_data, 0);
    cr_assert_eq(mem_read(&mem, BUF + 0x1000, back, 4096), 0);
    cr_assert_eq(mem_read(&mem, BUF + 0x2000, back + 4096, 6000 - 4096), 0);
    cr_assert_eq(memcmp(back, big, 6000), 0);
}

/* Save and restore with a connected NIC: the machine's RAM and state (the Xen interface,
 * xenstore, the backend's connection, the frame map) saved, everything built again from
 * nothing (the backend in InitWait, no queue), the state loaded; the restored backend
 * answers on the same rings and channel, its index where it was. */
Test(netback, state_round_trip)
{
    size_t len = tcp_frame(BUF, 200);
    grant(10, BUF);
    tx_data(10, 0, NETTXF_csum_blank, 1, (u16)len);
    signal_backend();
    cr_assert_eq(nsent, 1);
    /* save */
    struct state_registry r = { 0 };
    xen_state_register(xen, &r);
    xenstore_state_register(xs, &r);
    netback_state_register(nb, &r, 0);
    mem_state_register(&mem, &r);
    struct state_buf b = { 0 };
    state_save_all(&r, &b);
    cr_assert_not(b.oom);
    state_registry_free(&r);
    u64 pages = mem_region_pages(&mem);
    u8 *ram = malloc(pages * 4096);
    cr_assert_not_null(ram);
    for (u64 i = 0; i < pages; i++) {
        u64 gpa;
        memcpy(ram + i * 4096, mem_region_page(&mem, i, &gpa), 4096);
    }
    u32 saved_tx_prod = tx_prod, saved_rx_prod = rx_prod;
    /* a new machine: the same construction, no frontend yet */
    teardown();
    xen_fixture_boot(&mem, &model, c, RAM);
    xen = xen_fixture_create(&cfg, &host, &host_ops, c, 0);
    xs = xenstore_create(1, &xenstore_default_limits);
    peer = netdev_create_peer("test", peer_send, NULL);
    char err[200];
    struct netback_opts o = { .netdev = peer, .devid = 0, .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 }, .max_queues = 2 };
    nb = netback_create(xen, xs, &o, err, sizeof(err));
    cr_assert_not_null(nb, "%s", err);
    for (u64 i = 0; i < pages; i++) {
        u64 gpa;
        mem_region_page(&mem, i, &gpa);
        cr_assert_eq(mem_region_write_page(&mem, gpa, ram + i * 4096), 0);
    }
    free(ram);
    struct state_registry r2 = { 0 };
    xen_state_register(xen, &r2);
    xenstore_state_register(xs, &r2);
    netback_state_register(nb, &r2, 0);
    mem_state_register(&mem, &r2);
    int rc = state_load_all(&r2, b.p, b.len, err, sizeof(err));
    state_registry_free(&r2);
    state_buf_free(&b);
    cr_assert_eq(rc, 0, "%s", err);
    char v[16];
    cr_assert_gt(xenstore_read(xs, BE "/state", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "4", "still Connected");
    /* the guest goes on: a second frame on the same ring, signalled on the same port */
    tx_prod = saved_tx_prod;
    rx_prod = saved_rx_prod;
    nsent = 0;
    len = tcp_frame(BUF + 0x1000, 300);
    grant(11, BUF + 0x1000);
    tx_data(11, 0, NETTXF_csum_blank, 2, (u16)len);
    signal_backend();
    cr_assert_eq(nsent, 1, "the restored backend transmits");
    cr_assert_eq(sent_len[0], len);
    cr_assert(tcp_ok(sent[0]));
    cr_assert_eq(rsp_prod(TXRING), 2, "its response after the first one");
    cr_assert_eq(tx_response(1).id, 2);
}

/* The PV block backend (src/dom0/blkback.c) driven by a frontend written here as a
 * guest's would be: its grant table, an event channel allocated for domain 0, the ring
 * page and the xenstore keys of the XenbusState handshake. Every request kind (read,
 * write, flush with and without data, discard, indirect) in both request layouts, every
 * error the backend must answer (bad grants, ranges, segments, operations, read-only
 * disk), a ring whose indices the guest broke, persistent grants, and the handshake's
 * states (connect, close, reconnect). The disk is a temporary file, its I/O synchronous. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/exec.h"
#include "dom0/blkback.h"
#include "dom0/diskimage.h"
#include "dom0/xenstore.h"
#include "hv/xen/xen.h"
#include "machine/mem.h"
#include "xen_fixture.h"

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/io/blkif.h>
#include <xen/memory.h>

#define RAM (4 * MiB)
#define ARG 0x1000u
#define SHINFO 0x10000u
#define RING 0x30000u        /* the ring page, grant 1 */
#define DATA 0x40000u        /* data pages, grants 2.. */
#define IND 0x80000u         /* an indirect page, grant 100 */
#define TABLE 0xd0000000ull
#define DISK_BYTES (1u << 20)
#define FE "/local/domain/1/device/vbd/51712"
#define BE "/local/domain/0/backend/vbd/1/51712"

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static struct xen *xen;
static struct xen_config cfg;
static struct xen_host host;
static struct xen_host_ops host_ops;
static struct xenstore *xs;
static struct blkback *bb;
static char path[64];
static int disk_fd = -1;
static u32 port;
static enum blkif_abi abi;
static u32 req_prod;

static int h_map_page(void *o, u64 gpa, u8 *page, u32 *gen) { (void)o; return mem_overlay_map(&mem, gpa, page, gen); }
static void h_unmap_page(void *o, u8 *page) { (void)o; mem_overlay_unmap(&mem, page); }

static long hcall(u32 nr, u32 a1, const void *arg, size_t len, void *out)
{
    return xen_fixture_call(xen, c, ARG, nr, a1, arg, len, out, 0);
}

static void grant(u32 ref, u64 gpa, bool readonly)
{
    grant_entry_v1_t e = { .flags = GTF_permit_access | (readonly ? GTF_readonly : 0), .domid = 0,
                           .frame = (u32)(gpa >> 12) };
    cr_assert_eq(mem_write(&mem, TABLE + 8ull * ref, &e, sizeof(e)), 0);
}

static u16 grant_flags(u32 ref)
{
    u16 f;
    cr_assert_eq(mem_read_u16(&mem, TABLE + 8ull * ref, &f), 0);
    return f;
}

static void fe_write(const char *key, const char *value)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", FE, key);
    cr_assert_eq(xenstore_write(xs, p, value, strlen(value)), 0);
}

static int be_state(void)
{
    char v[16];
    cr_assert_gt(xenstore_read(xs, BE "/state", v, sizeof(v)), 0);
    return atoi(v);
}

/* The disk: DISK_BYTES of a pattern */
static u8 pattern(u32 i)
{
    return (u8)(i * 7 + i / 4096);
}

static void make_disk(bool readonly)
{
    snprintf(path, sizeof(path), "/tmp/nestor-blkback-XXXXXX");
    disk_fd = mkstemp(path);
    cr_assert_geq(disk_fd, 0);
    static u8 buf[DISK_BYTES];
    for (u32 i = 0; i < DISK_BYTES; i++)
        buf[i] = pattern(i);
    cr_assert_eq(pwrite(disk_fd, buf, DISK_BYTES, 0), (ssize_t)DISK_BYTES);
    char err[200];
    struct disk_image_opts o = { .file = path, .readonly = readonly, .synchronous = true };
    struct disk_image *img = disk_image_open(&o, err, sizeof(err));
    cr_assert_not_null(img, "%s", err);
    struct blkback_opts bo = { .image = img, .vdev = "xvda", .file = path, .sector_size = 512,
                               .max_ring_order = 4, .max_queues = 1 };
    bb = blkback_create(xen, xs, &bo, err, sizeof(err));
    cr_assert_not_null(bb, "%s", err);
}

static void setup_common(bool readonly)
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
    cr_assert_not_null(xs);
    make_disk(readonly);
    abi = BLKIF_ABI_X86_64;
    req_prod = 0;
}

static void setup(void) { setup_common(false); }
static void setup_ro(void) { setup_common(true); }

static void teardown(void)
{
    blkback_destroy(bb);
    xenstore_destroy(xs);
    xen_destroy(xen);
    cpu_destroy(c);
    mem_destroy(&mem);
    close(disk_fd);
    unlink(path);
}

/* The frontend connects: ring page (SHARED_RING_INIT), channel, keys, Initialised */
static void connect(const char *protocol, bool persistent)
{
    u8 zero[4096] = { 0 };
    cr_assert_eq(mem_write(&mem, RING, zero, sizeof(zero)), 0);
    u32 ev[2] = { 1, 1 }; /* req_event, rsp_event */
    cr_assert_eq(mem_write(&mem, RING + 4, &ev[0], 4), 0);
    cr_assert_eq(mem_write(&mem, RING + 12, &ev[1], 4), 0);
    grant(1, RING, false);
    struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = 0 };
    cr_assert_eq(hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_alloc_unbound, &au, sizeof(au), &au), 0);
    port = au.port;
    char v[16];
    snprintf(v, sizeof(v), "%u", port);
    fe_write("ring-ref", "1");
    fe_write("event-channel", v);
    if (protocol)
        fe_write("protocol", protocol);
    fe_write("feature-persistent", persistent ? "1" : "0");
    fe_write("state", "3");
    abi = protocol && !strcmp(protocol, "x86_32-abi") ? BLKIF_ABI_X86_32 : BLKIF_ABI_X86_64;
}

static void put_u64(u8 *p, u64 v) { memcpy(p, &v, 8); }

/* A read/write/flush request into the ring (not yet produced) */
static void put_rw(u8 op, u64 id, u64 sector, const struct blkif_segment *seg, u8 nseg)
{
    u8 e[112] = { 0 };
    bool x32 = abi == BLKIF_ABI_X86_32;
    e[0] = op;
    e[1] = nseg;
    put_u64(e + (x32 ? 4 : 8), id);
    put_u64(e + (x32 ? 12 : 16), sector);
    for (u8 i = 0; i < nseg; i++) {
        u8 *s = e + (x32 ? 20 : 24) + 8 * i;
        memcpy(s, &seg[i].gref, 4);
        s[4] = seg[i].first_sect;
        s[5] = seg[i].last_sect;
    }
    u32 off = BLKIF_RING_HEADER + (req_prod % blkif_ring_entries(abi, 1)) * blkif_entry_size(abi);
    cr_assert_eq(mem_write(&mem, RING + off, e, blkif_entry_size(abi)), 0);
    req_prod++;
}

static void put_raw(const u8 *e)
{
    u32 off = BLKIF_RING_HEADER + (req_prod % blkif_ring_entries(abi, 1)) * blkif_entry_size(abi);
    cr_assert_eq(mem_write(&mem, RING + off, e, blkif_entry_size(abi)), 0);
    req_prod++;
}

/* Publishes the requests and signals the channel; the backend answers */
static void kick(void)
{
    cr_assert_eq(mem_write(&mem, RING, &req_prod, 4), 0);
    struct evtchn_send s = { .port = port };
    cr_assert_eq(hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &s, sizeof(s), NULL), 0);
    blkback_poll(bb);
}

static u32 rsp_prod(void)
{
    u32 v;
    cr_assert_eq(mem_read_u32(&mem, RING + 8, &v), 0);
    return v;
}

/* Response i: its id, operation and status */
static void response(u32 i, u64 *id, u8 *op, s16 *status)
{
    u8 e[16];
    u32 off = BLKIF_RING_HEADER + (i % blkif_ring_entries(abi, 1)) * blkif_entry_size(abi);
    cr_assert_eq(mem_read(&mem, RING + off, e, sizeof(e)), 0);
    memcpy(id, e, 8);
    *op = e[8];
    memcpy(status, e + 10, 2);
}

/* The status of the response with this id (responses come in the order requests
 * finish: a read answers after its disk I/O, an error at once) */
static s16 status_of(u64 want_id, u8 want_op)
{
    u64 id;
    u8 op;
    s16 st;
    for (u32 i = 0; i < rsp_prod(); i++) {
        response(i, &id, &op, &st);
        if (id == want_id) {
            cr_assert_eq(op, want_op, "the operation of response %llu", (unsigned long long)id);
            return st;
        }
    }
    cr_assert_fail("no response %llu", (unsigned long long)want_id);
    return 0;
}

static u8 disk_byte(u32 off)
{
    u8 b;
    cr_assert_eq(pread(disk_fd, &b, 1, off), 1);
    return b;
}

TestSuite(blkback, .init = setup, .fini = teardown);

Test(blkback, probe_writes_features_and_waits)
{
    char v[64];
    cr_assert_eq(be_state(), 2, "InitWait");
    static const char *const keys[][2] = {
        { "feature-flush-cache", "1" }, { "feature-persistent", "1" },
        { "feature-max-indirect-segments", "256" }, { "max-ring-page-order", "4" },
        { "multi-queue-max-queues", "1" }, { "feature-discard", "1" }, { "sectors", "2048" },
        { "sector-size", "512" }, { "info", "0" }, { "mode", "w" }, { "frontend", FE },
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), BE "/%s", keys[i][0]);
        cr_assert_gt(xenstore_read(xs, p, v, sizeof(v)), 0, "%s", keys[i][0]);
        cr_assert_str_eq(v, keys[i][1], "%s", keys[i][0]);
    }
    cr_assert_gt(xenstore_read(xs, FE "/backend", v, sizeof(v)), 0);
    cr_assert_gt(xenstore_read(xs, FE "/virtual-device", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "51712");
}

static void write_then_read(bool persistent)
{
    u8 page[4096];
    for (u32 i = 0; i < 4096; i++)
        page[i] = (u8)(i ^ 0x5a);
    cr_assert_eq(mem_write(&mem, DATA, page, sizeof(page)), 0);
    grant(2, DATA, false);
    grant(3, DATA + 0x1000, false);
    /* sectors 1-3 of the page to disk sectors 16-18 */
    struct blkif_segment w = { 2, 1, 3 };
    put_rw(BLKIF_OP_WRITE, 0x1111, 16, &w, 1);
    kick();
    cr_assert_eq(status_of(0x1111, BLKIF_OP_WRITE), BLKIF_RSP_OKAY);
    for (u32 i = 0; i < 3 * 512; i++)
        cr_assert_eq(disk_byte(16 * 512 + i), page[512 + i], "disk byte %u", i);
    cr_assert_eq(disk_byte(19 * 512), pattern(19 * 512), "the next sector untouched");
    /* read them back into the second page, sectors 4-6, in two segments */
    struct blkif_segment r[2] = { { 3, 4, 4 }, { 3, 5, 6 } };
    put_rw(BLKIF_OP_READ, 0x2222, 16, r, 2);
    kick();
    cr_assert_eq(status_of(0x2222, BLKIF_OP_READ), BLKIF_RSP_OKAY);
    u8 back[4096];
    cr_assert_eq(mem_read(&mem, DATA + 0x1000, back, sizeof(back)), 0);
    cr_assert_eq(memcmp(back + 4 * 512, page + 512, 3 * 512), 0);
    cr_assert_eq(back[0], 0, "outside the segments nothing was written");
    if (!persistent)
        cr_assert_eq(grant_flags(2) & (GTF_reading | GTF_writing), 0, "grant copies leave no pin");
}

Test(blkback, connects_and_moves_data_x86_64)
{
    connect("x86_64-abi", false);
    cr_assert_eq(be_state(), 4, "Connected");
    write_then_read(false);
}

Test(blkback, connects_and_moves_data_x86_32)
{
    connect("x86_32-abi", false);
    cr_assert_eq(be_state(), 4);
    write_then_read(false);
}

Test(blkback, persistent_grants_stay_mapped)
{
    connect(NULL, true);
    write_then_read(true);
    cr_assert_neq(grant_flags(2) & GTF_reading, 0, "the persistent grant is still mapped");
    fe_write("state", "5");
    cr_assert_eq(be_state(), 5, "Closing");
    cr_assert_eq(grant_flags(2) & (GTF_reading | GTF_writing), 0, "unmapped at disconnect");
    cr_assert_eq(grant_flags(1) & (GTF_reading | GTF_writing), 0, "the ring too");
}

Test(blkback, flush_with_and_without_data)
{
    connect(NULL, false);
    struct blkif_segment s = { 2, 0, 7 };
    u8 page[4096];
    memset(page, 0xee, sizeof(page));
    cr_assert_eq(mem_write(&mem, DATA, page, sizeof(page)), 0);
    grant(2, DATA, false);
    put_rw(BLKIF_OP_FLUSH_DISKCACHE, 1, 777 /* no range for an empty flush */, NULL, 0);
    put_rw(BLKIF_OP_FLUSH_DISKCACHE, 2, 8, &s, 1);
    kick();
    cr_assert_eq(status_of(1, BLKIF_OP_FLUSH_DISKCACHE), BLKIF_RSP_OKAY);
    cr_assert_eq(status_of(2, BLKIF_OP_FLUSH_DISKCACHE), BLKIF_RSP_OKAY);
    cr_assert_eq(disk_byte(8 * 512 + 100), 0xee, "a flush's data is written");
}

Test(blkback, discard_punches_a_hole)
{
    connect(NULL, false);
    u8 e[112] = { 0 };
    e[0] = BLKIF_OP_DISCARD;
    put_u64(e + 8, 9);
    put_u64(e + 16, 8);  /* sector */
    put_u64(e + 24, 8);  /* 8 sectors: the second 4 KiB of the disk */
    put_raw(e);
    kick();
    cr_assert_eq(status_of(9, BLKIF_OP_DISCARD), BLKIF_RSP_OKAY);
    cr_assert_eq(disk_byte(4096), 0);
    cr_assert_eq(disk_byte(8191), 0);
    cr_assert_eq(disk_byte(8192), pattern(8192), "beyond the range kept");
}

Test(blkback, indirect_request)
{
    connect(NULL, false);
    /* 20 segments, each one sector of page DATA + i pages, read from disk sector i * 3 */
    struct blkif_segment segs[20];
    u8 ind[4096] = { 0 };
    for (u32 i = 0; i < 20; i++) {
        grant(10 + i, DATA + 0x1000 * i, false);
        segs[i] = (struct blkif_segment){ 10 + i, 2, 2 };
        memcpy(ind + 8 * i, &segs[i].gref, 4);
        ind[8 * i + 4] = 2;
        ind[8 * i + 5] = 2;
    }
    cr_assert_eq(mem_write(&mem, IND, ind, sizeof(ind)), 0);
    grant(100, IND, true);
    u8 e[112] = { 0 };
    e[0] = BLKIF_OP_INDIRECT;
    e[1] = BLKIF_OP_READ;
    u16 n = 20;
    memcpy(e + 2, &n, 2);
    put_u64(e + offsetof(struct blkif_request_indirect, id), 0x77);
    put_u64(e + offsetof(struct blkif_request_indirect, sector_number), 40);
    u32 g = 100;
    memcpy(e + offsetof(struct blkif_request_indirect, indirect_grefs), &g, 4);
    put_raw(e);
    kick();
    /* the response carries the indirect operation (Linux's blkfront checks it) */
    cr_assert_eq(status_of(0x77, BLKIF_OP_READ), BLKIF_RSP_OKAY);
    for (u32 i = 0; i < 20; i++) {
        u8 b;
        cr_assert_eq(mem_read(&mem, DATA + 0x1000 * i + 2 * 512 + 5, &b, 1), 0);
        cr_assert_eq(b, disk_byte((40 + i) * 512 + 5), "segment %u", i);
    }
}

Test(blkback, malformed_requests_get_errors)
{
    connect(NULL, false);
    grant(2, DATA, false);
    struct blkif_segment ok = { 2, 0, 0 }, past = { 2, 0, 8 }, back = { 2, 3, 2 }, nogrant = { 55, 0, 0 };
    struct blkif_segment many[11];
    for (int i = 0; i < 11; i++)
        many[i] = ok;
    put_rw(BLKIF_OP_READ, 1, 2048, &ok, 1);       /* beyond the disk */
    put_rw(BLKIF_OP_READ, 2, ~0ull, &ok, 1);      /* the end wraps */
    put_rw(BLKIF_OP_READ, 3, 0, &past, 1);        /* last_sect beyond the page */
    put_rw(BLKIF_OP_READ, 4, 0, &back, 1);        /* first after last */
    put_rw(BLKIF_OP_READ, 5, 0, &nogrant, 1);     /* not granted */
    put_rw(BLKIF_OP_WRITE, 6, 0, NULL, 0);        /* a write without data */
    put_rw(BLKIF_OP_WRITE_BARRIER, 7, 0, &ok, 1); /* not offered */
    put_rw(99, 8, 0, &ok, 1);                     /* unknown */
    put_rw(BLKIF_OP_READ, 9, 2047, many, 11);     /* the full 11, ending past the disk */
    kick();
    static const struct { u8 op; s16 st; } want[] = {
        { BLKIF_OP_READ, BLKIF_RSP_ERROR }, { BLKIF_OP_READ, BLKIF_RSP_ERROR },
        { BLKIF_OP_READ, BLKIF_RSP_ERROR }, { BLKIF_OP_READ, BLKIF_RSP_ERROR },
        { BLKIF_OP_READ, BLKIF_RSP_ERROR }, { BLKIF_OP_WRITE, BLKIF_RSP_ERROR },
        { BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP }, { 99, BLKIF_RSP_EOPNOTSUPP },
        { BLKIF_OP_READ, BLKIF_RSP_ERROR },
    };
    for (u32 i = 0; i < 9; i++)
        cr_assert_eq(status_of(i + 1, want[i].op), want[i].st, "request %u", i + 1);
    /* an indirect request that is not a read or write, and one with too many segments */
    u8 e[112] = { 0 };
    e[0] = BLKIF_OP_INDIRECT;
    e[1] = BLKIF_OP_FLUSH_DISKCACHE;
    e[2] = 1;
    put_u64(e + 8, 10);
    put_raw(e);
    e[1] = BLKIF_OP_READ;
    u16 n = 257;
    memcpy(e + 2, &n, 2);
    put_u64(e + 8, 11);
    put_raw(e);
    kick();
    cr_assert_eq(status_of(10, BLKIF_OP_FLUSH_DISKCACHE), BLKIF_RSP_ERROR);
    cr_assert_eq(status_of(11, BLKIF_OP_READ), BLKIF_RSP_ERROR);
}

Test(blkback, broken_ring_index_halts_the_queue)
{
    connect(NULL, false);
    req_prod = 1000; /* far more than a ring ahead of the responses */
    kick();
    cr_assert_eq(rsp_prod(), 0, "nothing answered");
    /* the frontend starts again: Closed, Initialising, a fresh ring */
    fe_write("state", "6");
    cr_assert_eq(be_state(), 6);
    fe_write("state", "1");
    cr_assert_eq(be_state(), 2, "ready for a reconnect");
    req_prod = 0;
    connect(NULL, false);
    cr_assert_eq(be_state(), 4);
    write_then_read(false);
}

Test(blkback, unknown_protocol_refused)
{
    connect("arm-abi", false);
    cr_assert_eq(be_state(), 5, "Closing after the error");
    char v[128];
    cr_assert_gt(xenstore_read(xs, "/local/domain/0/error/backend/vbd/1/51712/error", v, sizeof(v)), 0);
}

Test(blkback_decode, geometry_checks)
{
    struct blkif_req r = { .operation = BLKIF_OP_READ, .op = BLKIF_OP_READ, .nseg = 1, .sector = 8 };
    struct blkif_segment s = { 1, 0, 7 };
    u64 n;
    cr_assert_eq(blkif_check_request(&r, &s, 64, 4096, &n), 0);
    cr_assert_eq(n, 8);
    r.sector = 9;
    cr_assert_eq(blkif_check_request(&r, &s, 64, 4096, &n), -ERANGE, "misaligned to 4 KiB");
    r.sector = 8;
    s.last_sect = 3;
    cr_assert_eq(blkif_check_request(&r, &s, 64, 4096, &n), -ERANGE, "a partial 4 KiB sector");
    cr_assert_eq(blkif_ring_entries(BLKIF_ABI_X86_64, 1), 32);
    cr_assert_eq(blkif_ring_entries(BLKIF_ABI_X86_32, 1), 32);
    cr_assert_eq(blkif_ring_entries(BLKIF_ABI_X86_64, 16), 512);
    cr_assert_eq(blkif_entry_size(BLKIF_ABI_X86_64), 112);
    cr_assert_eq(blkif_entry_size(BLKIF_ABI_X86_32), 108);
}

TestSuite(blkback_ro, .init = setup_ro, .fini = teardown);

Test(blkback_ro, read_only_disk)
{
    char v[8];
    cr_assert_gt(xenstore_read(xs, BE "/mode", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "r");
    cr_assert_gt(xenstore_read(xs, BE "/info", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "4", "VDISK_READONLY");
    cr_assert_eq(xenstore_read(xs, BE "/feature-discard", v, sizeof(v)), -ENOENT);
    connect(NULL, false);
    grant(2, DATA, false);
    struct blkif_segment s = { 2, 0, 0 };
    put_rw(BLKIF_OP_WRITE, 1, 0, &s, 1);
    put_rw(BLKIF_OP_READ, 2, 0, &s, 1);
    u8 e[112] = { 0 };
    e[0] = BLKIF_OP_DISCARD;
    put_u64(e + 8, 3);
    put_u64(e + 24, 8);
    put_raw(e);
    kick();
    cr_assert_eq(status_of(1, BLKIF_OP_WRITE), BLKIF_RSP_ERROR);
    cr_assert_eq(status_of(2, BLKIF_OP_READ), BLKIF_RSP_OKAY);
    cr_assert_eq(status_of(3, BLKIF_OP_DISCARD), BLKIF_RSP_EOPNOTSUPP);
    cr_assert_eq(disk_byte(0), 0, "unchanged");
    cr_assert_eq(disk_byte(1), pattern(1));
}

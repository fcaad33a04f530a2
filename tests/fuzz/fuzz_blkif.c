/* libFuzzer target: the PV block backend (src/dom0/blkback.c) against a hostile
 * frontend. A frontend connects (the protocol and persistent grants chosen by the input's
 * first byte) to a 64 KiB disk; then the input is cut into rounds, each a control byte
 * and bytes written over the ring's entries, a data page, an indirect page and the grant
 * table (which may grant anything, read-only or not, or nothing), a producer index from
 * the input, a signal, completions; now and then the frontend closes and reconnects.
 * Nothing may crash, hang, leak, read or write outside the disk and the granted bytes
 * (ASan/UBSan); no round gets more responses than a ring holds (32). */
#include <stdint.h>
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

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/memory.h>

#define RAM (4 * MiB)
#define ARG 0x1000u
#define SHINFO 0x10000u
#define RING 0x30000u    /* grant 1 */
#define DATA 0x40000u    /* grants 2-9: pages DATA + 4 KiB * i */
#define TABLE 0xd0000000ull
#define FE "/local/domain/1/device/vbd/51712"
#define DISK 65536u

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static struct xen *xen;
static struct xen_config cfg;
static struct xen_host host;
static struct xenstore *xs;
static struct blkback *bb;
static int disk_fd = -1;
static char disk_path[64];
static u32 port;

static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *o)
{
    (void)cp, (void)ev, (void)o;
    return INTERCEPT_DEFAULT;
}
static u64 cpu_now(struct cpu *cp, void *o) { (void)cp, (void)o; return 0; }
static const struct cpu_ops ops = { .intercept = intercept, .now_ns = cpu_now };
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
static const struct xen_host_ops host_ops = {
    .set_gsi = h_gsi, .set_pci_intx = h_intx, .deliver_vector = h_vector, .kick = h_kick,
    .now_ns = h_now, .timer_new = h_timer_new, .timer_arm = h_timer_arm,
    .timer_disarm = h_timer_disarm, .stop = h_stop, .map_page = h_map, .unmap_page = h_unmap,
    .set_ioapic_input = h_ioapic,
};

static long hcall(u32 nr, u32 a1, const void *arg, size_t len, void *out)
{
    if (mem_write(&mem, ARG, arg, len))
        abort();
    c->gpr[R_RAX] = nr;
    c->gpr[R_RBX] = a1;
    c->gpr[R_RCX] = ARG;
    c->gpr[R_RDX] = 0;
    xen_hypercall(xen, c);
    if (out && mem_read(&mem, ARG, out, len))
        abort();
    return (long)(int)c->gpr[R_RAX];
}

static void fe_write(const char *key, const char *value)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", FE, key);
    xenstore_write(xs, p, value, strlen(value));
}

static void grant(u32 ref, u16 flags, u32 frame)
{
    grant_entry_v1_t e = { .flags = flags, .domid = 0, .frame = frame };
    mem_write(&mem, TABLE + 8ull * ref, &e, sizeof(e));
}

/* The frontend (re)connects on a fresh ring */
static void connect(u8 how)
{
    static const u8 zero[4096];
    mem_write(&mem, RING, zero, sizeof(zero));
    u32 one = 1;
    mem_write(&mem, RING + 4, &one, 4);
    mem_write(&mem, RING + 12, &one, 4);
    grant(1, GTF_permit_access, RING >> 12);
    struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = 0 };
    if (hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_alloc_unbound, &au, sizeof(au), &au) == 0)
        port = au.port;
    char v[16];
    snprintf(v, sizeof(v), "%u", port);
    fe_write("ring-ref", "1");
    fe_write("event-channel", v);
    fe_write("protocol", how & 1 ? "x86_32-abi" : "x86_64-abi");
    fe_write("feature-persistent", how & 2 ? "1" : "0");
    fe_write("state", "3");
}

static void setup(void)
{
    char e[200];
    if (cpuid_model_parse(&model, "max", e, sizeof(e)) < 0 || mem_init(&mem, RAM) ||
        cpu_init(c, 0, &mem, &model, &ops, NULL))
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
    host = (struct xen_host){ .ops = &host_ops, .tsc_khz = 1000000, .console_fd = -1,
                              .cpus = cpus, .ncpus = 1 };
    if (!(xen = xen_create(&cfg, &host, 0x40000000u)))
        abort();
    u32 ap[4] = { DOMID_SELF, XENMAPSPACE_grant_table, 0, (u32)(TABLE >> 12) };
    u32 si[4] = { DOMID_SELF, XENMAPSPACE_shared_info, 0, SHINFO >> 12 };
    if (hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &ap, sizeof(ap), NULL) ||
        hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &si, sizeof(si), NULL))
        abort();
    if (!(xs = xenstore_create(1, &xenstore_default_limits)))
        abort();
    snprintf(disk_path, sizeof(disk_path), "/tmp/nestor-fuzz-blkif-XXXXXX");
    disk_fd = mkstemp(disk_path);
    if (disk_fd < 0 || ftruncate(disk_fd, DISK))
        abort();
    char err[200];
    struct disk_image_opts o = { .file = disk_path, .synchronous = true };
    struct disk_image *img = disk_image_open(&o, err, sizeof(err));
    if (!img)
        abort();
    struct blkback_opts bo = { .image = img, .vdev = "xvda", .file = disk_path, .sector_size = 512,
                               .max_ring_order = 0, .max_queues = 1 };
    if (!(bb = blkback_create(xen, xs, &bo, err, sizeof(err))))
        abort();
}

static void teardown(void)
{
    blkback_destroy(bb);
    xenstore_destroy(xs);
    xen_destroy(xen);
    cpu_destroy(c);
    mem_destroy(&mem);
    close(disk_fd);
    unlink(disk_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    connect(data[0]);
    u32 prod = 0;
    size_t i = 1;
    while (i + 2 <= size) {
        u8 ctl = data[i++];
        size_t n = data[i++] * 4u;
        if (n > size - i)
            n = size - i;
        /* where the bytes go: the ring's entries, a data page, the indirect page, the
         * grant table's first entries */
        static const u32 where[4] = { RING + 64, DATA, DATA + 0x8000, 0 };
        u32 w = where[ctl & 3];
        if (w)
            mem_write(&mem, w, data + i, n > 4096 - (w & 0xfff) ? 4096 - (w & 0xfff) : n);
        else
            mem_write(&mem, TABLE + 16, data + i, n > 4096 - 16 ? 4096 - 16 : n);
        i += n;
        /* grants 2-9 of the data pages, read-only as bit 2 says */
        if (ctl & 0x10)
            for (u32 g = 0; g < 9; g++)
                grant(2 + g, GTF_permit_access | (ctl & 4 ? GTF_readonly : 0), (DATA >> 12) + g);
        /* the producer: a few requests more, or whatever the input says */
        u32 rsp_before;
        mem_read_u32(&mem, RING + 8, &rsp_before);
        prod = ctl & 8 ? prod + 1 + (ctl >> 5) : (u32)ctl << 24 | ctl;
        mem_write(&mem, RING, &prod, 4);
        struct evtchn_send s = { .port = port };
        hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &s, sizeof(s), NULL);
        blkback_poll(bb);
        u32 rsp_after;
        mem_read_u32(&mem, RING + 8, &rsp_after);
        if (rsp_after - rsp_before > 32)
            abort();
        if ((ctl & 0xe0) == 0xe0) {
            /* the frontend goes away and comes back */
            fe_write("state", "6");
            fe_write("state", "1");
            prod = 0;
            connect(ctl);
        }
    }
    teardown();
    return 0;
}

/* libFuzzer target: the loader of saved machines. The first byte picks what the rest is:
 *   0: a serialised machine state, loaded into a machine (machine_state_load);
 *   1: patches (offset, byte) over the valid state of a machine that ran a little, so
 *      mutations reach every component's fields and their checks; a state the loader
 *      accepts then runs a few thousand instructions on each vCPU;
 *   2: a whole stream (header, zstd records, checksum) through snapshot_load_fd;
 *   3: a valid stream with patches (its checksum then fails, or the patch hit the
 *      checksum itself);
 *   4: patches over the valid state of a machine with the Xen interface, whose guest
 *      placed shared_info and grant frames, mapped one of its grants, gave pages back,
 *      populated one beyond RAM, moved one, opened event channels and set its callback
 *      (so the frame map and every Xen section hold something); a state the loader
 *      accepts then runs and is saved again.
 * Nothing may crash, hang, leak, or touch host memory outside guest RAM (ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "control/snapshot.h"
#include "cpu/cpu.h"
#include "hv/xen/xen.h"
#include "machine/machine.h"

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/grant_table.h>
#include <xen/event_channel.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>

static struct machine m, mx;
static u8 *good_state, *good_stream, *good_xen;
static size_t good_state_len, good_stream_len, good_xen_len;

/* A small program for vCPU 0 at 1M, in real mode as the machine starts: a loop of
 * memory writes, port I/O and arithmetic, so a saved state has some history. */
static const u8 program[] = {
    0xb8, 0x00, 0x10, /* mov ax, 0x1000 */
    0x8e, 0xd8,       /* mov ds, ax */
    0x31, 0xdb,       /* xor bx, bx */
    0x89, 0x1f,       /* mov [bx], bx */
    0x43,             /* inc bx */
    0xe6, 0x80,       /* out 0x80, al */
    0xeb, 0xf9,       /* jmp -7 (to mov [bx], bx) */
};

static void build(void)
{
    struct machine_config cfg = { .ram_size = 16 * MiB, .ncpus = 2, .console_in_fd = -1,
                                  .console_out_fd = -1, .deterministic = true };
    if (machine_create(&m, &cfg))
        abort();
    mem_write(&m.mem, 0x7c00, program, sizeof(program));
    struct cpu *c = m.cpu[0];
    cpu_set_seg(c, SEG_CS, 0, 0, 0xffff, 0x9b);
    c->rip = 0x7c00;
    cpu_run(c, 5000);
}

/* A hypercall of vCPU 0 in real mode (the x86_32 ABI: number in EAX, arguments in
 * EBX, ECX, EDX), its argument block at guest-physical addr; it must succeed. */
#define SCRATCH 0x5000u
static long hcall(u32 nr, u32 a1, const void *arg, size_t len, u32 a3)
{
    struct cpu *c = mx.cpu[0];
    if (len && mem_write(&mx.mem, SCRATCH, arg, len))
        abort();
    c->gpr[R_RAX] = nr;
    c->gpr[R_RBX] = a1;
    c->gpr[R_RCX] = SCRATCH;
    c->gpr[R_RDX] = a3;
    xen_hypercall(mx.xen, c);
    return (long)(int)c->gpr[R_RAX];
}

/* xen_add_to_physmap in the x86_32 layout: domid, size, space, idx, gpfn */
static void add_to_physmap(u32 space, u32 idx, u32 gpfn)
{
    u8 b[16] = { 0 };
    u16 dom = DOMID_SELF;
    memcpy(b, &dom, 2);
    memcpy(b + 4, &space, 4);
    memcpy(b + 8, &idx, 4);
    memcpy(b + 12, &gpfn, 4);
    if (hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, b, sizeof(b), 0))
        abort();
}

/* xen_memory_reservation in the x86_32 layout (extent_start, nr_extents, extent_order,
 * mem_flags, domid) over one extent list at SCRATCH + 64 */
static void reservation(u32 op, const u32 *gfns, u32 n)
{
    if (mem_write(&mx.mem, SCRATCH + 64, gfns, n * 4))
        abort();
    u8 b[20] = { 0 };
    u32 list = SCRATCH + 64;
    u16 dom = DOMID_SELF;
    memcpy(b, &list, 4);
    memcpy(b + 4, &n, 4);
    memcpy(b + 16, &dom, 2);
    if (hcall(__HYPERVISOR_memory_op, op, b, sizeof(b), 0) != (long)n)
        abort();
}

static void build_xen(void)
{
    struct machine_config cfg = { .ram_size = 16 * MiB, .ncpus = 2, .console_in_fd = -1,
                                  .console_out_fd = -1, .deterministic = true };
    char err[128];
    if (xen_parse_option(&cfg.xen, NULL, err, sizeof(err)) || machine_create(&mx, &cfg))
        abort();
    add_to_physmap(XENMAPSPACE_shared_info, 0, 0x800);
    add_to_physmap(XENMAPSPACE_grant_table, 0, 0x801);
    add_to_physmap(XENMAPSPACE_grant_table, 1, 0x900);
    /* grant 10 of frame 0: page 0x700 for the guest itself, mapped at 0xa00 */
    grant_entry_v1_t e = { .flags = GTF_permit_access, .domid = 1, .frame = 0x700 };
    mem_write(&mx.mem, 0x801000 + 10 * sizeof(e), &e, sizeof(e));
    struct gnttab_map_grant_ref map = { .host_addr = 0xa00000, .flags = GNTMAP_host_map, .ref = 10, .dom = 1 };
    if (hcall(__HYPERVISOR_grant_table_op, GNTTABOP_map_grant_ref, &map, sizeof(map), 1) ||
        (mem_read(&mx.mem, SCRATCH, &map, sizeof(map)), map.status != GNTST_okay))
        abort();
    const u32 back[] = { 0x710, 0x711, 0x712, 0x713 }, beyond[] = { 0x2000 };
    reservation(XENMEM_decrease_reservation, back, 4);
    reservation(XENMEM_populate_physmap, beyond, 1);
    add_to_physmap(XENMAPSPACE_gmfn, 0x720, 0x730);
    struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = 0 };
    struct evtchn_bind_virq bv = { .virq = VIRQ_TIMER, .vcpu = 1 };
    struct xen_hvm_param cb = { .domid = DOMID_SELF, .index = HVM_PARAM_CALLBACK_IRQ,
                                .value = 2ull << 56 | 0xf3 };
    if (hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_alloc_unbound, &au, sizeof(au), 0) ||
        hcall(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_virq, &bv, sizeof(bv), 0) ||
        hcall(__HYPERVISOR_hvm_op, HVMOP_set_param, &cb, sizeof(cb), 0))
        abort();
    mem_write(&mx.mem, 0x7c00, program, sizeof(program));
    struct cpu *c = mx.cpu[0];
    cpu_set_seg(c, SEG_CS, 0, 0, 0xffff, 0x9b);
    c->rip = 0x7c00;
    cpu_run(c, 5000);
    struct state_buf b = { 0 };
    machine_state_save(&mx, &b);
    good_xen = b.p;
    good_xen_len = b.len;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    build();
    build_xen();
    struct state_buf b = { 0 };
    machine_state_save(&m, &b);
    good_state = b.p;
    good_state_len = b.len;
    int fd = memfd_create("stream", 0);
    char err[256];
    if (fd < 0 || snapshot_save_fd(&m, fd, NULL, err, sizeof(err)) < 0)
        abort();
    good_stream_len = (size_t)lseek(fd, 0, SEEK_END);
    good_stream = malloc(good_stream_len);
    if (pread(fd, good_stream, good_stream_len, 0) != (ssize_t)good_stream_len)
        abort();
    close(fd);
    return 0;
}

static u8 *patched(const u8 *base, size_t len, const u8 *p, size_t n)
{
    u8 *out = malloc(len ? len : 1);
    memcpy(out, base, len);
    for (size_t i = 0; i + 4 <= n && len; i += 4) {
        size_t off = ((size_t)p[i] | (size_t)p[i + 1] << 8 | (size_t)p[i + 2] << 16) % len;
        out[off] = p[i + 3];
    }
    return out;
}

static void load_stream(const u8 *p, size_t n)
{
    int fd = memfd_create("stream", 0);
    if (fd < 0)
        abort();
    if (n && write(fd, p, n) != (ssize_t)n)
        abort();
    lseek(fd, 0, SEEK_SET);
    char err[512];
    snapshot_load_fd(&m, fd, err, sizeof(err));
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char err[512];
    const u8 *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0:
        machine_state_load(&m, p, n, err, sizeof(err));
        break;
    case 1: {
        u8 *s = patched(good_state, good_state_len, p, n);
        if (machine_state_load(&m, s, good_state_len, err, sizeof(err)) == 0)
            for (int i = 0; i < m.ncpus; i++)
                if (m.cpu[i]->state == CPU_RUNNING)
                    cpu_run(m.cpu[i], 3000);
        free(s);
        break;
    }
    case 2:
        load_stream(p, n);
        break;
    case 3: {
        u8 *s = patched(good_stream, good_stream_len, p, n);
        load_stream(s, good_stream_len);
        free(s);
        break;
    }
    case 4: {
        u8 *s = patched(good_xen, good_xen_len, p, n);
        if (machine_state_load(&mx, s, good_xen_len, err, sizeof(err)) == 0) {
            for (int i = 0; i < mx.ncpus; i++)
                if (mx.cpu[i]->state == CPU_RUNNING)
                    cpu_run(mx.cpu[i], 3000);
            struct state_buf b = { 0 };
            machine_state_save(&mx, &b);
            state_buf_free(&b);
        }
        free(s);
        if (machine_state_load(&mx, good_xen, good_xen_len, err, sizeof(err)) < 0)
            abort();
        return 0;
    }
    }
    /* whatever was loaded, the next input starts from the good state */
    if (machine_state_load(&m, good_state, good_state_len, err, sizeof(err)) < 0)
        abort();
    return 0;
}

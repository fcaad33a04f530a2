/* libFuzzer target: Xen's hypercall dispatcher with arbitrary numbers, argument
 * registers, CPU modes and CPLs, and argument blocks in guest memory, plus the
 * hypercall-page MSR and the CPUID leaves. The guest has 16 MiB of RAM mapped by 4-level
 * page tables with holes (not present, read-only, MMIO, beyond RAM); argument registers
 * are steered towards the interesting addresses. Before the call, a few memory_op
 * reservation calls with extent lists of frames in and around RAM (decrease, populate,
 * increase, gmfn moves, exchanges) leave the physical map full of holes, moved and
 * foreign pages.
 * Grant tables: with bit 15 of the control word the call is a grant_table_op with a real
 * sub-op, and the guest's grant frame 0 (placed in RAM, version 1 or 2) holds entries
 * made from the input with their frames steered to RAM, the table, dom0 and the guest's
 * ids, so copies, maps and the busy-bit protocol run deep; dom0 (nestor's backends) has
 * granted two pages, and the host side (xen_gnttab_host_*) maps and copies a grant after
 * the call. Nothing may crash, leak or touch host memory outside guest RAM (ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/exec.h"
#include "dom0/pvconsole.h"
#include "hv/xen/xen.h"
#include "machine/mem.h"

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/grant_table.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/event_channel.h>
#include <xen/physdev.h>
#include <xen/io/console.h>

#define RAM (16 * MiB)
#define PML4 0x1000u
#define PDPT 0x2000u
#define PD 0x3000u
#define PT 0x4000u
#define DATA 0x200000u   /* the argument block, mapped by 2M page 1 */
#define DATA_SIZE 8192u
/* memory_op's sub-ops (xen/memory.h, which this harness does not include) */
#define XENMEM_increase_reservation_ 0u
#define XENMEM_decrease_reservation_ 1u
#define XENMEM_populate_physmap_ 6u
#define XENMEM_add_to_physmap_ 7u
#define XENMEM_exchange_ 11u
#define SCRATCH 0x5000u   /* hypercall arguments of the harness's own */
#define TABLE 0x400000u   /* grant frame 0 (replacing a RAM page of 2M page 2) */
#define STATUS 0x401000u  /* v2 status frame 0 */

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static struct xen *xen;
static struct pvconsole *console; /* the PV console's backend, as the machine has it */
static struct xen_config xen_cfg;
static struct xen_host xen_host;

static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *opaque)
{
    (void)cp, (void)ev, (void)opaque;
    return INTERCEPT_DEFAULT;
}
static u64 now_ns(struct cpu *cp, void *opaque)
{
    (void)cp, (void)opaque;
    return 0;
}
static const struct cpu_ops ops = { .intercept = intercept, .now_ns = now_ns };

/* The machine behind the interface: interrupt lines and vectors go nowhere, the clock
 * stands at 0, timers exist and are never due, a stop request is recorded. */
#define FUZZ_TIMERS 256
static int ntimers;
static void host_set_gsi(void *o, int gsi, bool level) { (void)o, (void)gsi, (void)level; }
static void host_set_pci_intx(void *o, u8 devfn, int pin, bool level)
{
    (void)o, (void)devfn, (void)pin, (void)level;
}
static void host_deliver_vector(void *o, int vcpu, u8 vector) { (void)o, (void)vcpu, (void)vector; }
static void host_kick(void *o, int vcpu) { (void)o, (void)vcpu; }
static u64 host_now_ns(void *o) { (void)o; return 0; }
static int host_timer_new(void *o, void (*fn)(void *, u64), void *arg)
{
    (void)o, (void)fn, (void)arg;
    return ntimers < FUZZ_TIMERS ? ntimers++ : -1;
}
static void host_timer_arm(void *o, int t, u64 d)
{
    (void)o, (void)d;
    if (t < 0 || t >= ntimers)
        abort();
}
static void host_timer_disarm(void *o, int t)
{
    (void)o;
    if (t < 0 || t >= ntimers)
        abort();
}
static void host_stop(void *o, int status) { (void)o, (void)status; }
/* pages mapped into the guest-physical space go into the harness's guest memory */
static int host_map_page(void *o, u64 gpa, u8 *host, u32 *gen)
{
    (void)o;
    return mem_overlay_map(&mem, gpa, host, gen);
}
static void host_unmap_page(void *o, u8 *host)
{
    (void)o;
    mem_overlay_unmap(&mem, host);
}
static void host_set_ioapic_input(void *o, int gsi, bool level)
{
    (void)o;
    (void)level;
    if (gsi < 0 || gsi >= 24)
        abort();
}
static const struct xen_host_ops host_ops = {
    host_set_gsi, host_set_pci_intx, host_deliver_vector, host_kick, host_now_ns,
    host_timer_new, host_timer_arm, host_timer_disarm, host_stop, host_map_page, host_unmap_page,
    host_set_ioapic_input,
};

/* the map changed: the vCPU's translations go (the machine flushes every vCPU's TLB) */
static void map_changed(void *o)
{
    (void)o;
    tlb_flush_all(&cpu.tlb);
}

static void w64(u64 a, u64 v)
{
    if (mem_write_u64(&mem, a, v))
        abort();
}

static void init_once(void)
{
    char err[128];
    if (cpuid_model_parse(&model, "max", err, sizeof err) || mem_init(&mem, RAM) ||
        cpu_init(c, 0, &mem, &model, &ops, NULL))
        abort();
    mem_set_map_listener(&mem, map_changed, NULL);
    if (xen_parse_option(&xen_cfg, NULL, err, sizeof err))
        abort();
    static struct cpu *const cpus[1] = { &cpu };
    xen_host = (struct xen_host){ .ops = &host_ops, .amd = false, .rdtscp = true, .tsc_stable = true,
                                  .tsc_khz = 2000000, .console_fd = -1, .cpus = cpus, .ncpus = 1,
                                  .nr_gsis = 24 };
    xen = xen_create(&xen_cfg, &xen_host, 0x40000000u);
    if (!xen || !(console = pvconsole_create(xen, -1)))
        abort();
}

#define PRIME_ARG 0x300000u /* the argument of the guest's own priming calls */
/* The harness's own frames (page tables, the argument block) hold RAM again if a call
 * took them away */
static void restore_frames(void)
{
    static const u64 mine[] = { PML4 >> 12, PDPT >> 12, PD >> 12, PT >> 12, DATA >> 12,
                                (DATA >> 12) + 1, SCRATCH >> 12, PRIME_ARG >> 12 };
    for (unsigned i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
        if (mem_frame_at(&mem, mine[i], NULL) != MEM_FRAME_RAM) {
            mem_frame_remove(&mem, mine[i], NULL);
            if (mem_frame_populate(&mem, mine[i]))
                abort();
        }
}

/* State for the deep paths, made by the guest's own hypercalls (from real mode, 32-bit
 * registers, the argument at PRIME_ARG): the vector callback, which PHYSDEVOP_map_pirq
 * needs, and GSIs 5 (ISA) and 20 (level) mapped to pirqs and bound to ports, so that
 * driven lines signal them and eoi re-signals. */
static long guest_call(u32 nr, u32 cmd, const void *arg, size_t len)
{
    if (mem_write(&mem, PRIME_ARG, arg, len))
        abort();
    c->cr0 = CR0_ET;
    c->efer = 0;
    cpu_set_seg(c, SEG_CS, 0, 0, 0xffff, 0x9b);
    cpu_set_seg(c, SEG_SS, 0, 0, 0xffff, 0x93);
    cpu_update_mode(c);
    mmu_update(c);
    c->gpr[R_RAX] = nr;
    c->gpr[R_RBX] = cmd;
    c->gpr[R_RCX] = PRIME_ARG;
    xen_hypercall(xen, c);
    return (long)(s32)c->gpr[R_RAX];
}

static void prime_call(u32 nr, u32 cmd, const void *arg, size_t len)
{
    if (guest_call(nr, cmd, arg, len))
        abort();
}

static void prime_pirqs(void)
{
    struct xen_hvm_param p = { .domid = DOMID_SELF, .index = HVM_PARAM_CALLBACK_IRQ,
                               .value = (u64)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | 0xf3 };
    prime_call(__HYPERVISOR_hvm_op, HVMOP_set_param, &p, sizeof(p));
    /* shared_info, so that the ports' events reach its bitmaps (x86_32 add_to_physmap:
     * domid and size, space, idx, gpfn) */
    u32 shinfo[4] = { DOMID_SELF, XENMAPSPACE_shared_info, 0, 0x310000u >> 12 };
    prime_call(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, shinfo, sizeof(shinfo));
    static const int gsis[] = { 5, 20 };
    for (unsigned i = 0; i < 2; i++) {
        /* the x86_32 layout: 36 bytes, table_base (0) at 28 */
        struct physdev_map_pirq m = { .domid = DOMID_SELF, .type = MAP_PIRQ_TYPE_GSI,
                                      .index = gsis[i], .pirq = -1 };
        prime_call(__HYPERVISOR_physdev_op, PHYSDEVOP_map_pirq, &m, 36);
        struct evtchn_bind_pirq b = { .pirq = 16 + i };
        prime_call(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_pirq, &b, sizeof(b));
    }
}

/* Page tables: 0-2M by 4K pages (some absent, read-only, user, MMIO, beyond RAM), 2M-16M
 * by 2M pages, 1 GiB+ absent. */
static void build_tables(void)
{
    w64(PML4, PDPT | 7);
    w64(PDPT, PD | 7);
    w64(PD, PT | 7);
    for (u64 i = 1; i < 8; i++)
        w64(PD + 8 * i, (i << 21) | 0x83);
    for (u64 i = 0; i < 512; i++) {
        u64 e = (i << 12) | 3;
        switch (i % 8) {
        case 3: e = 0; break;                          /* not present */
        case 4: e = (i << 12) | 1; break;              /* read-only */
        case 5: e = (i << 12) | 7; break;              /* user */
        case 6: e = 0xfee00000ull | 3; break;          /* MMIO */
        case 7: e = ((u64)RAM + (i << 12)) | 3; break; /* beyond RAM */
        }
        w64(PT + 8 * i, e);
    }
}

/* A hypercall of the harness's own from 32-bit flat protected mode (arguments at
 * SCRATCH, as x86_32 layouts) */
static long own_call(u32 nr, u32 a1, const void *arg, size_t len, u32 a3)
{
    c->cr0 = CR0_PE | CR0_ET | CR0_NE;
    c->cr4 = 0;
    c->efer = 0;
    cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xc09b);
    cpu_set_seg(c, SEG_SS, 0x10, 0, 0xffffffff, 0xc093);
    cpu_update_mode(c);
    mmu_update(c);
    if (mem_write(&mem, SCRATCH, arg, len))
        abort();
    c->gpr[R_RAX] = nr;
    c->gpr[R_RBX] = a1;
    c->gpr[R_RCX] = SCRATCH;
    c->gpr[R_RDX] = a3;
    xen_hypercall(xen, c);
    return (long)(s32)c->gpr[R_RAX];
}

/* The grant table's state for this input: version, frames placed, dom0's grants (once
 * per interface), entries from the input with steered frame numbers */
static bool gnt_ready;
static u32 gnt_version;
static u8 dom0_pages[2][4096];

static void grant_state(bool v2, const u8 *in, size_t n)
{
    /* grant frame 0 is at TABLE (again, if a memory_op or a read-only grant mapping of
     * an earlier input took its place) */
    if (!gnt_ready || mem_frame_at(&mem, TABLE >> 12, NULL) != MEM_FRAME_FOREIGN ||
        mem_frame_readonly(&mem, TABLE >> 12)) {
        u32 ap[4] = { DOMID_SELF, XENMAPSPACE_grant_table, 0, TABLE >> 12 };
        if (own_call(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ap, sizeof(ap), 0))
            abort();
    }
    if (!gnt_ready) {
        if (xen_gnttab_host_grant(xen, dom0_pages[0], false) < 0 ||
            xen_gnttab_host_grant(xen, dom0_pages[1], true) < 0)
            abort();
        gnt_ready = true;
        gnt_version = 1;
    }
    u32 want = v2 ? 2 : 1;
    if (want != gnt_version) {
        u32 sv = want;
        if (own_call(__HYPERVISOR_grant_table_op, GNTTABOP_set_version, &sv, 4, 1) == 0) {
            gnt_version = want;
            u32 ap[4] = { DOMID_SELF, XENMAPSPACE_grant_table, XENMAPIDX_grant_table_status, STATUS >> 12 };
            if (want == 2 && own_call(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ap, sizeof(ap), 0))
                abort();
        }
    }
    /* entries: the input's bytes, frames steered (v1: the u32 at 4; v2: the u64 at 8,
     * also a transitive entry's gref), domids towards dom0 and the guest */
    u8 page[4096] = { 0 };
    memcpy(page, in, n < sizeof(page) ? n : sizeof(page));
    unsigned size = gnt_version == 1 ? 8 : 16;
    for (unsigned e = 0; e < sizeof(page); e += size) {
        u8 *p = page + e;
        if (!(p[2] & 0x80))
            p[2] = p[2] & 1, p[3] = 0; /* domid 0 or 1 (the guest) */
        if (!(p[1] & 0x80)) /* mostly permit_access or transitive, few other bits */
            p[0] = (p[0] & 0x1c) | (p[0] & 0x20 ? GTF_transitive : GTF_permit_access), p[1] &= 1;
        u64 frame;
        unsigned at = gnt_version == 1 ? 4 : 8, w = gnt_version == 1 ? 4 : 8;
        frame = 0;
        memcpy(&frame, p + at, w);
        if (!(frame >> (8 * w - 1))) {
            static const u64 near[4] = { DATA >> 12, (DATA >> 12) + 1, TABLE >> 12, SCRATCH >> 12 };
            frame = frame & 8 ? frame % (RAM >> 12) : near[frame & 3];
            memcpy(p + at, &frame, w);
        }
    }
    if (mem_write(&mem, TABLE, page, sizeof(page)))
        abort();
}

/* The operations at the argument block's offset off made plausible: domains among
 * DOMID_SELF, the guest's id and dom0, small references, frames near the data, offsets
 * and lengths mostly within a page (copy: native or x86_32 layout; map_grant_ref). */
static void steer_ops(u64 off, bool compat)
{
    static const u16 doms[4] = { DOMID_SELF, 1, 0, DOMID_SELF };
    static const u64 frames[4] = { DATA >> 12, (DATA >> 12) + 1, TABLE >> 12, 0xd0000 };
    u32 cmd = (u32)c->gpr[R_RDI] & 0xfff;
    size_t size = cmd == GNTTABOP_copy ? (compat ? 24 : sizeof(struct gnttab_copy))
                                       : sizeof(struct gnttab_map_grant_ref);
    if (cmd != GNTTABOP_copy && cmd != GNTTABOP_map_grant_ref)
        return;
    for (u64 a = DATA + off; a + size <= DATA + DATA_SIZE && a < DATA + off + 8 * size; a += size) {
        u8 b[sizeof(struct gnttab_copy)];
        if (mem_read(&mem, a, b, size))
            abort();
        if (cmd == GNTTABOP_map_grant_ref) {
            struct gnttab_map_grant_ref m;
            memcpy(&m, b, sizeof(m));
            if (!(m.flags & 0x80000000u)) {
                m.flags = GNTMAP_host_map | (m.flags & 1 ? GNTMAP_readonly : 0);
                m.dom = doms[m.dom & 3] == DOMID_SELF ? 1 : doms[m.dom & 3];
                m.ref %= 64;
                m.host_addr = (frames[m.host_addr & 3] + (m.host_addr >> 8 & 7)) << 12;
            }
            memcpy(b, &m, sizeof(m));
        } else {
            /* source and dest: the reference or frame, the domid, the offset */
            unsigned side = compat ? 8 : 16, w = compat ? 4 : 8;
            for (unsigned i = 0; i < 2; i++) {
                u8 *p = b + i * side;
                if (p[w] & 0x80)
                    continue;
                u64 u = 0;
                memcpy(&u, p, w);
                u = u & 4 ? u % 64 : frames[u & 3];
                memcpy(p, &u, w);
                memcpy(p + w, &doms[p[w] & 3], 2);
                p[w + 3] &= 0x0f; /* offset below 4096 */
            }
            b[2 * side + 1] &= 0x0f; /* len below 4096 */
        }
        if (mem_write(&mem, a, b, size))
            abort();
    }
}

/* After the call: every frame map_grant_ref may have placed read-only (GNTMAP_readonly)
 * is readable and refuses every write */
static void check_readonly_frames(void)
{
    static const u64 bases[3] = { DATA >> 12, TABLE >> 12, 0xd0000 };
    for (unsigned i = 0; i < 3; i++)
        for (u64 gfn = bases[i]; gfn < bases[i] + 9; gfn++) {
            if (!mem_frame_readonly(&mem, gfn))
                continue;
            u8 v;
            if (!mem_ptr(&mem, gfn << 12, 4096) || mem_ptr_write(&mem, gfn << 12, 1) ||
                mem_read_u8(&mem, gfn << 12, &v) || !mem_write_u8(&mem, gfn << 12, v))
                abort();
        }
}

/* dom0's side after the call: map a grant (touching its first and last granted byte),
 * copy from or to one */
static void host_side(u64 ops)
{
    u32 gref = (u32)(ops & 0x3ff), off = (u32)(ops >> 10 & 0x1fff), len = (u32)(ops >> 23 & 0x1fff);
    bool writable = ops >> 36 & 1;
    u32 h;
    struct xen_grant_mapping m;
    if (xen_gnttab_host_map(xen, gref, writable, &h, &m) == 0) {
        volatile u8 *b = m.page;
        if (m.length) {
            u8 first = b[m.offset], last = b[m.offset + m.length - 1];
            if (writable)
                b[m.offset] = last, b[m.offset + m.length - 1] = first;
        }
        if (!(ops >> 37 & 1) && xen_gnttab_host_unmap(xen, h))
            abort();
    }
    static u8 buf[8192];
    if (ops >> 38 & 1)
        xen_gnttab_host_copy_to(xen, gref, off, buf, len);
    else
        xen_gnttab_host_copy_from(xen, gref, off, buf, len);
}

/* memory_op's exchange as the call itself (the command in RDI/EBX, the struct at
 * RSI/ECX in the data block): the struct made plausible from its own bytes in the
 * caller's layout (x86_32: 20-byte reservations, nr_exchanged at 40): DOMID_SELF, the
 * guest's id, dom0 or domain 9, orders 0-15, 1-8 input extents and as many output
 * extents as the sizes need (or one more), nr_exchanged 0-3, both lists 8 frames at the
 * block's end in and around RAM, so the chunks, their checks and continuations run.
 * A NULL argument (short inputs have one) becomes an exchange at the block's start, or
 * further on by the third argument, which memory_op does not have (even: so that NULL
 * is still passed with an odd one). */
static void steer_exchange(bool compat)
{
    if (!(compat ? c->gpr[R_RCX] : c->gpr[R_RSI]) && !(c->gpr[R_RDX] & 1)) {
        c->gpr[R_RDI] = c->gpr[R_RBX] = XENMEM_exchange_;
        c->gpr[R_RSI] = c->gpr[R_RCX] = DATA + (c->gpr[R_RDX] >> 1 & 0x3f) * 8;
    }
    u64 arg = compat ? c->gpr[R_RCX] & 0xffffffffu : c->gpr[R_RSI];
    u32 cmd = (u32)(compat ? c->gpr[R_RBX] : c->gpr[R_RDI]);
    unsigned w = compat ? 4 : 8, rs = compat ? 20 : 32, len = compat ? 44 : 72;
    u64 list = DATA + DATA_SIZE - 64;
    if (cmd != XENMEM_exchange_ || arg < DATA || arg + len > list)
        return;
    u8 b[72];
    if (mem_read(&mem, arg, b, len))
        abort();
    static const u16 doms[4] = { DOMID_SELF, 1, 0, 9 };
    u64 nr = 1 + (b[w] & 7), out_nr;
    u32 order = b[2 * w] & 0xf, out_order = b[rs + 2 * w] & 0xf;
    out_nr = ((nr << order) >> out_order) + (b[rs + w] >> 7);
    u16 dom = doms[b[2 * w + 8] & 3], out_dom = b[2 * w + 8] & 0x80 ? doms[b[rs + 2 * w + 8] & 3] : dom;
    u64 done = b[2 * rs] & 3, gfn = (u64)b[1] << 4 | (b[2] & 0xf), out_list = list + w * (b[rs + 1] & 3);
    memcpy(b, &list, w), memcpy(b + w, &nr, w), memcpy(b + 2 * w, &order, 4);
    memcpy(b + 2 * w + 8, &dom, 2);
    memcpy(b + rs, &out_list, w), memcpy(b + rs + w, &out_nr, w), memcpy(b + rs + 2 * w, &out_order, 4);
    memcpy(b + rs + 2 * w + 8, &out_dom, 2);
    memcpy(b + 2 * rs, &done, w);
    if (mem_write(&mem, arg, b, len))
        abort();
    for (int e = 0; e < 8; e++) {
        u64 f = b[3] & 0x80 ? 0xd0000 + (u64)e : gfn + (u64)e * (b[3] & 3) * (1ull << order);
        if (mem_write(&mem, list + (u64)e * w, &f, w))
            abort();
    }
}

static u64 take(const u8 **p, size_t *n, unsigned bytes)
{
    u64 v = 0;
    for (unsigned i = 0; i < bytes && *n; i++, (*p)++, (*n)--)
        v |= (u64)**p << (8 * i);
    return v;
}

/* An argument: small numbers, pointers into the data block, page edges, holes,
 * non-canonical, or raw 64 bits. */
static u64 steer(u64 raw)
{
    switch (raw & 7) {
    case 0: return (raw >> 3) & 0xff;
    case 1: case 2: return DATA + ((raw >> 3) % DATA_SIZE);
    case 3: return ((raw >> 3) & 0x1ff) << 12 | ((raw >> 12) & 1 ? 0xff8 : 0);
    case 4: return 0x8000000000000000ull | (raw >> 3);
    case 5: return 0x40000000ull + ((raw >> 3) & 0xffff);
    default: return raw;
    }
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
    static bool ready;
    if (!ready) {
        init_once();
        prime_pirqs();
        ready = true;
    }
    restore_frames();
    build_tables();
    u64 ctl = take(&data, &size, 2);
    bool grants = ctl & 0x8000;
    u64 gops = grants ? take(&data, &size, 8) : 0;
    /* a fresh interface now and then: registrations (vcpu_info) are once per vCPU */
    if (ctl & 0x4000) {
        xen_destroy(xen);
        pvconsole_destroy(console);
        ntimers = 0; /* the old interface's timers went with it */
        gnt_ready = false;
        if (!(xen = xen_create(&xen_cfg, &xen_host, 0x40000000u)) || !(console = pvconsole_create(xen, -1)))
            abort();
        if (ctl & 0x8000)
            prime_pirqs(); /* half of them get mapped and bound pirqs at once */
    }
    if (grants)
        grant_state(ctl & 0x80, data, size);
    /* a device line changes level (GSIs -1..24: out of range too; 5 and 20 often, the
     * primed pirqs'), so that mapped pirqs are signalled, and the guest may EOI a pirq
     * near the primed ones at once (a level line still high signals again) */
    if (ctl & 0x80) {
        u64 line = take(&data, &size, 1);
        int gsi = line & 0x40 ? ((line & 1) ? 20 : 5) : (int)(line % 26) - 1;
        xen_gsi_set(xen, gsi, line >> 7);
        if (line & 0x20) {
            struct physdev_eoi e = { .irq = 16 + (u32)(line >> 1 & 3) };
            guest_call(__HYPERVISOR_physdev_op, PHYSDEVOP_eoi, &e, sizeof(e));
        }
    }
    /* mode: 64-bit, compatibility, 32-bit paged, 32-bit flat, real; CPL from 2 bits */
    unsigned mode = ctl % 5, cpl = (ctl >> 3) & 3;
    c->cr4 = CR4_PAE;
    c->efer = EFER_LME | EFER_LMA | EFER_NXE;
    c->cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | ((ctl >> 5) & 1 ? CR0_WP : 0);
    c->cr3 = PML4;
    c->rflags = FL_FIXED1 | ((ctl >> 6) & 1 ? FL_AC : 0);
    u32 cs_attr = 0xa09b, ss_attr = 0xc093;
    if (mode == 1) {
        cs_attr = 0xc09b;
    } else if (mode >= 2) {
        c->efer = 0;
        cs_attr = 0xc09b;
        if (mode == 3)
            c->cr0 &= ~CR0_PG;
        if (mode == 2) {
            c->cr4 = 0; /* 32-bit paging: 4M pages off, tables reinterpreted: fine */
        }
        if (mode == 4) {
            c->cr0 = CR0_ET;
            cpl = 0;
        }
    }
    cpu_set_seg(c, SEG_CS, (u16)(0x08 | cpl), 0, 0xffffffff, cs_attr | cpl << 5);
    cpu_set_seg(c, SEG_SS, (u16)(0x10 | cpl), 0, 0xffffffff, ss_attr | cpl << 5);
    cpu_update_mode(c);
    mmu_update(c);

    u64 nr = take(&data, &size, 1);
    if (ctl & 0x100)
        nr |= take(&data, &size, 8);
    c->gpr[R_RAX] = nr;
    static const u8 regs[] = { R_RDI, R_RSI, R_RDX, R_R10, R_R8, R_RBX, R_RCX };
    for (unsigned i = 0; i < sizeof(regs); i++)
        c->gpr[regs[i]] = steer(take(&data, &size, 8));
    if (grants) {
        /* grant_table_op(cmd, the argument block, a small count) in either ABI */
        c->gpr[R_RAX] = __HYPERVISOR_grant_table_op;
        c->gpr[R_RDI] = c->gpr[R_RBX] = gops % 14 | (gops & 0x100 ? 1u << 12 : 0);
        c->gpr[R_RSI] = c->gpr[R_RCX] = DATA + (gops >> 9 & 0x3f) * 8;
        c->gpr[R_RDX] = gops >> 15 & 0x7 ? gops >> 15 & 0xf : c->gpr[R_RDX];
    }
    /* an event-channel call, or a number past Xen's (a call that does nothing else):
     * the PV console's output indices are the guest's to set (any values: the send to
     * the console port after the call must stay within out[] and end) */
    bool console_send = false;
    if (((nr & 0xff) == __HYPERVISOR_event_channel_op || (nr & 0xe0) == 0xe0)) {
        u64 ring = (u64)0xfefff << 12; /* HVM_PARAM_CONSOLE_PFN; out_cons, out_prod */
        u64 idx = c->gpr[R_R10]; /* the fourth argument's bytes */
        if (mem_write(&mem, ring + offsetof(struct xencons_interface, out_cons), &idx, 8))
            abort();
        console_send = true;
    }
    /* the rest is the argument block */
    size_t n = size < DATA_SIZE ? size : DATA_SIZE;
    if (mem_write(&mem, DATA, data, n))
        abort();
    if (grants)
        steer_ops(c->gpr[R_RSI] - DATA, mode != 0);
    if (c->gpr[R_RAX] == 12) /* __HYPERVISOR_memory_op */
        steer_exchange(mode != 0);

    /* memory_op state first: up to 3 reservation calls, gmfn moves or exchanges (bit 27:
     * the list's extents for extents of another order, in place) on frames of RAM, of the
     * hole above it and of the PCI hole, in the guest's current mode */
    u64 pre = 1 + ((ctl >> 8) & 3);
    if (ctl & 0x80)
        for (u64 n = 0; n < pre && size >= 8; n++) {
            u64 w = take(&data, &size, 8);
            static const u32 ops_[] = { XENMEM_decrease_reservation_, XENMEM_populate_physmap_,
                                        XENMEM_increase_reservation_, XENMEM_add_to_physmap_ };
            u32 op = ops_[w & 3], order = (w >> 2) & 1 ? (u32)((w >> 3) & 0xf) : 0;
            u64 list = DATA + DATA_SIZE - 64, gfn = (w >> 8) % 0x1400;
            if ((w >> 7) & 1)
                gfn = 0xd0000 + (gfn & 0xf);
            for (int e = 0; e < 8; e++)
                if (mem_write_u64(&mem, list + 8 * e, gfn + (u64)e * ((w >> 24) & 7)))
                    abort();
            u64 saved[16];
            memcpy(saved, c->gpr, sizeof(saved));
            u8 res[72] = { 0 };
            if ((w >> 27) & 1) {
                /* struct xen_memory_exchange: in, out (the list from entry 0-3 on, an
                 * order that may or may not match the sizes), nr_exchanged 0-3 */
                op = XENMEM_exchange_;
                u64 nr = 1 + ((w >> 40) & 7), out_list = list + 8 * ((w >> 32) & 3);
                u32 out_order = (u32)((w >> 28) & 0xf);
                u64 out_nr = (nr << order) >> out_order, done = (w >> 34) & 3;
                u16 dom = 0x7ff0;
                memcpy(res, &list, 8), memcpy(res + 8, &nr, 8), memcpy(res + 16, &order, 4);
                memcpy(res + 24, &dom, 2);
                memcpy(res + 32, &out_list, 8), memcpy(res + 40, &out_nr, 8);
                memcpy(res + 48, &out_order, 4), memcpy(res + 56, &dom, 2);
                memcpy(res + 64, &done, 8);
            } else if (op == XENMEM_add_to_physmap_) {
                u16 dom = 0x7ff0, sz = (u16)((w >> 40) & 7);
                u32 space = (w >> 43) & 1 ? 3 : 2;
                u64 idx = (w >> 44) % 0x1400;
                memcpy(res, &dom, 2), memcpy(res + 2, &sz, 2), memcpy(res + 4, &space, 4);
                memcpy(res + 8, &idx, 8), memcpy(res + 16, &gfn, 8);
            } else {
                u64 nr = 1 + ((w >> 40) & 7);
                u16 dom = 0x7ff0;
                memcpy(res, &list, 8), memcpy(res + 8, &nr, 8), memcpy(res + 16, &order, 4);
                memcpy(res + 24, &dom, 2);
            }
            u64 arg = DATA + DATA_SIZE - 64 - sizeof(res);
            if (mem_write(&mem, arg, res, sizeof(res)))
                abort();
            c->gpr[R_RAX] = 12; /* __HYPERVISOR_memory_op */
            c->gpr[R_RDI] = c->gpr[R_RBX] = op;
            c->gpr[R_RSI] = c->gpr[R_RCX] = arg;
            xen_hypercall(xen, c);
            memcpy(c->gpr, saved, sizeof(saved));
            restore_frames();
        }
    xen_hypercall(xen, c);
    xen_maybe_deassert_callback(xen); /* the machine's next exit: a GSI/INTx line drops */
    if (grants) {
        check_readonly_frames();
        host_side(gops >> 19);
    }
    if (ctl & 0x2000)
        xen_vcpu_resume(xen, c);
    if (ctl & 0x200)
        xen_msr_write(xen, c, 0x40000000u + (u32)((ctl >> 10) & 3), steer(c->gpr[R_RBX]));
    if (ctl & 0x1000) {
        u32 r[4];
        xen_cpuid(xen, c, 0x40000000u + (u32)(nr & 0x1ff), (u32)c->gpr[R_RCX], r);
    }
    if (console_send) {
        /* the guest signals the console's port (HVM_PARAM_CONSOLE_EVTCHN, if the call
         * left it open): the backend consumes what the indices say */
        struct xen_hvm_param p = { .domid = DOMID_SELF, .index = HVM_PARAM_CONSOLE_EVTCHN };
        if (guest_call(__HYPERVISOR_hvm_op, HVMOP_get_param, &p, sizeof(p)) == 0 &&
            !mem_read(&mem, PRIME_ARG, &p, sizeof(p))) {
            struct evtchn_send send = { .port = (u32)p.value };
            guest_call(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &send, sizeof(send));
        }
    }
    return 0;
}

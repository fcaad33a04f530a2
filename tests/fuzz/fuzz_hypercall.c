/* libFuzzer target: Xen's hypercall dispatcher with arbitrary numbers, argument
 * registers, CPU modes and CPLs, and argument blocks in guest memory, plus the
 * hypercall-page MSR and the CPUID leaves. The guest has 16 MiB of RAM mapped by 4-level
 * page tables with holes (not present, read-only, MMIO, beyond RAM); argument registers
 * are steered towards the interesting addresses. Nothing may crash, leak or touch host
 * memory outside guest RAM (ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/exec.h"
#include "hv/xen/xen.h"
#include "machine/mem.h"

#define RAM (16 * MiB)
#define PML4 0x1000u
#define PDPT 0x2000u
#define PD 0x3000u
#define PT 0x4000u
#define DATA 0x200000u   /* the argument block, mapped by 2M page 1 */
#define DATA_SIZE 8192u

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static struct xen *xen;
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
static const struct xen_host_ops host_ops = {
    host_set_gsi, host_set_pci_intx, host_deliver_vector, host_kick, host_now_ns,
    host_timer_new, host_timer_arm, host_timer_disarm, host_stop, host_map_page, host_unmap_page,
};

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
    if (xen_parse_option(&xen_cfg, NULL, err, sizeof err))
        abort();
    static struct cpu *const cpus[1] = { &cpu };
    xen_host = (struct xen_host){ .ops = &host_ops, .amd = false, .rdtscp = true, .tsc_stable = true,
                                  .tsc_khz = 2000000, .console_fd = -1, .cpus = cpus, .ncpus = 1 };
    xen = xen_create(&xen_cfg, &xen_host, 0x40000000u);
    if (!xen)
        abort();
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
        ready = true;
    }
    build_tables();
    u64 ctl = take(&data, &size, 2);
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
    /* the rest is the argument block */
    size_t n = size < DATA_SIZE ? size : DATA_SIZE;
    if (mem_write(&mem, DATA, data, n))
        abort();

    /* a fresh interface now and then: registrations (vcpu_info) are once per vCPU */
    if (ctl & 0x4000) {
        xen_destroy(xen);
        ntimers = 0; /* the old interface's timers went with it */
        if (!(xen = xen_create(&xen_cfg, &xen_host, 0x40000000u)))
            abort();
    }
    xen_hypercall(xen, c);
    xen_maybe_deassert_callback(xen); /* the machine's next exit: a GSI/INTx line drops */
    if (ctl & 0x2000)
        xen_vcpu_resume(xen, c);
    if (ctl & 0x200)
        xen_msr_write(xen, c, 0x40000000u + (u32)((ctl >> 10) & 3), steer(c->gpr[R_RBX]));
    if (ctl & 0x1000) {
        u32 r[4];
        xen_cpuid(xen, c, 0x40000000u + (u32)(nr & 0x1ff), (u32)c->gpr[R_RCX], r);
    }
    return 0;
}

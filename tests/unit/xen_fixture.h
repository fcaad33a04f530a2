/* What the unit tests of the Xen interface share: a CPU whose events all take their
 * default course and a host whose operations do nothing (no lines, no vectors, no
 * timers, no page placed), which a test then adjusts where it watches or needs one. */
#ifndef NESTOR_TESTS_XEN_FIXTURE_H
#define NESTOR_TESTS_XEN_FIXTURE_H

#include <criterion/criterion.h>

#include "cpu/cpu.h"
#include "hv/xen/xen.h"
#include "machine/mem.h"

static inline enum intercept_result xen_fixture_intercept(struct cpu *c, struct cpu_event *ev, void *opaque)
{
    (void)c, (void)ev, (void)opaque;
    return INTERCEPT_DEFAULT;
}
static inline u64 xen_fixture_cpu_now(struct cpu *c, void *opaque) { (void)c, (void)opaque; return 0; }
static const struct cpu_ops xen_fixture_cpu_ops = { .intercept = xen_fixture_intercept,
                                                    .now_ns = xen_fixture_cpu_now };

static inline void xen_fixture_gsi(void *o, int g, bool l) { (void)o, (void)g, (void)l; }
static inline void xen_fixture_intx(void *o, u8 d, int p, bool l) { (void)o, (void)d, (void)p, (void)l; }
static inline void xen_fixture_vector(void *o, int v, u8 vec) { (void)o, (void)v, (void)vec; }
static inline void xen_fixture_kick(void *o, int v) { (void)o, (void)v; }
static inline u64 xen_fixture_now(void *o) { (void)o; return 0; }
static inline int xen_fixture_timer_new(void *o, void (*fn)(void *, u64), void *arg)
{
    (void)o, (void)fn, (void)arg;
    return 0;
}
static inline void xen_fixture_timer_arm(void *o, int t, u64 d) { (void)o, (void)t, (void)d; }
static inline void xen_fixture_timer_disarm(void *o, int t) { (void)o, (void)t; }
static inline void xen_fixture_stop(void *o, int s) { (void)o, (void)s; }
static inline int xen_fixture_map_page(void *o, u64 gpa, u8 *page, u32 *gen)
{
    (void)o, (void)gpa, (void)page, (void)gen;
    return -1;
}
static inline void xen_fixture_unmap_page(void *o, u8 *page) { (void)o, (void)page; }
static inline void xen_fixture_ioapic_input(void *o, int gsi, bool level) { (void)o, (void)gsi, (void)level; }

/* Every operation inert; no page can be placed in the guest-physical space. */
static inline struct xen_host_ops xen_fixture_host_ops(void)
{
    return (struct xen_host_ops){
        .set_gsi = xen_fixture_gsi, .set_pci_intx = xen_fixture_intx,
        .deliver_vector = xen_fixture_vector, .kick = xen_fixture_kick, .now_ns = xen_fixture_now,
        .timer_new = xen_fixture_timer_new, .timer_arm = xen_fixture_timer_arm,
        .timer_disarm = xen_fixture_timer_disarm, .stop = xen_fixture_stop,
        .map_page = xen_fixture_map_page, .unmap_page = xen_fixture_unmap_page,
        .set_ioapic_input = xen_fixture_ioapic_input,
    };
}

/* One vCPU of model "max" on ram bytes of RAM, in flat 32-bit protected mode (the x86_32
 * ABI: the tests' hypercalls take 32-bit registers and compat layouts). */
static inline void xen_fixture_boot(struct guest_mem *mem, struct cpuid_model *model,
                                    struct cpu *c, u64 ram)
{
    char err[128];
    cr_assert_eq(cpuid_model_parse(model, "max", err, sizeof err), 0, "%s", err);
    cr_assert_eq(mem_init(mem, ram), 0);
    cr_assert_eq(cpu_init(c, 0, mem, model, &xen_fixture_cpu_ops, NULL), 0);
    c->cr0 = CR0_PE | CR0_ET | CR0_NE;
    cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xc09b);
    cpu_set_seg(c, SEG_SS, 0x10, 0, 0xffffffff, 0xc093);
    cpu_update_mode(c);
    mmu_update(c);
}

/* The interface with its defaults (-xen alone) for that vCPU, on a host with these
 * operations and nr_gsis I/O APIC inputs; cfg and host must outlive it. */
static inline struct xen *xen_fixture_create(struct xen_config *cfg, struct xen_host *host,
                                             const struct xen_host_ops *ops, struct cpu *c,
                                             u32 nr_gsis)
{
    char err[128];
    cr_assert_eq(xen_parse_option(cfg, NULL, err, sizeof err), 0, "%s", err);
    static struct cpu *cpus[1];
    cpus[0] = c;
    *host = (struct xen_host){ .ops = ops, .tsc_khz = 1000000, .console_fd = -1,
                               .cpus = cpus, .ncpus = 1, .nr_gsis = nr_gsis };
    struct xen *x = xen_create(cfg, host, 0x40000000u);
    cr_assert_not_null(x);
    return x;
}

/* A hypercall from the fixture's vCPU in the x86_32 ABI: the argument block (len bytes
 * of arg) at guest-physical addr in ECX, a1 in EBX, a3 in EDX; the block is read
 * back into out (unless NULL) afterwards. EAX's result, sign-extended. */
static inline long xen_fixture_call(struct xen *x, struct cpu *c, u32 addr, u32 nr, u32 a1,
                                    const void *arg, size_t len, void *out, u32 a3)
{
    cr_assert_eq(mem_write(c->mem, addr, arg, len), 0);
    c->gpr[R_RAX] = nr;
    c->gpr[R_RBX] = a1;
    c->gpr[R_RCX] = addr;
    c->gpr[R_RDX] = a3;
    xen_hypercall(x, c);
    if (out)
        cr_assert_eq(mem_read(c->mem, addr, out, len), 0);
    return (long)(int)c->gpr[R_RAX];
}

#endif

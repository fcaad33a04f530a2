/* The Xen HVM hypervisor interface that nestor presents to a guest (-xen): the CPUID
 * leaves, the hypercall-page MSR and the hypercalls, as Xen 4.17 shows them to an HVM
 * domU. The machine routes to it the CPUID leaves of its range, its MSR and every
 * VMCALL/VMMCALL (EV_CPUID, EV_MSR_*, EV_HYPERCALL); the ABI comes from Xen's public
 * headers (libxen-dev). */
#ifndef NESTOR_HV_XEN_XEN_H
#define NESTOR_HV_XEN_XEN_H

#include <stddef.h>

#include "common.h"

struct cpu;
struct xen;

/* -xen [version=MAJOR.MINOR[EXTRA]][,domid=N] */
struct xen_config {
    bool enabled;
    u16 major, minor;        /* XENVER_version: default 4.17 */
    char extraversion[16];   /* XENVER_extraversion: default ".0" */
    u16 domid;               /* the guest's own domain id: default 1 */
};
/* Fills cfg from the option's value (NULL or "" = the defaults). Returns 0, or -1 with
 * a message in err. */
int xen_parse_option(struct xen_config *cfg, const char *spec, char *err, size_t errlen);

/* What the interface needs of its machine. */
struct xen_host {
    bool amd;         /* the CPU vendor: VMMCALL rather than VMCALL in the hypercall page */
    bool rdtscp;      /* the CPU model has RDTSCP (time leaf) */
    bool tsc_stable;  /* the CPU model's TSC is invariant (constant and nonstop) */
    u32 tsc_khz;      /* the guest TSC frequency */
    int console_fd;   /* console_io writes go here */
    u64 boot_wall_ns; /* the wall-clock time (ns since the Unix epoch) at virtual time 0 */
    /* the domain's vCPUs, by id: vcpu_op names them (one that waits for its SIPI is
     * down, as Xen's HVM vCPUs are until started) */
    struct cpu *const *cpus;
    int ncpus;
};

/* base: the first CPUID leaf, 0x40000000, or 0x40000100 when Hyper-V's leaves take the
 * first range (Xen with viridian). NULL if out of memory. */
struct xen *xen_create(const struct xen_config *cfg, const struct xen_host *host, u32 base);
void xen_destroy(struct xen *x);

/* CPUID: if leaf is Xen's (base .. 0x400001ff, as Xen answers them), fills r (eax, ebx,
 * ecx, edx) for vCPU c and returns true. */
bool xen_cpuid(struct xen *x, const struct cpu *c, u32 leaf, u32 subleaf, u32 r[4]);
/* MSRs: whether index is Xen's; then read/write return false for #GP. */
bool xen_msr_owned(const struct xen *x, u32 index);
bool xen_msr_read(struct xen *x, struct cpu *c, u32 index, u64 *value);
bool xen_msr_write(struct xen *x, struct cpu *c, u32 index, u64 value);
/* A VMCALL/VMMCALL of vCPU c: performs the hypercall, result in RAX. */
void xen_hypercall(struct xen *x, struct cpu *c);
/* Before vCPU c runs again (each entry into cpu_run): brings its vcpu_time_info up to
 * date with the virtual clock and its TSC, as Xen does before returning to a guest
 * whose time base changed. */
void xen_vcpu_resume(struct xen *x, struct cpu *c);

#endif

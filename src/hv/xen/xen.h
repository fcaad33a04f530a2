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

/* -xen [version=MAJOR.MINOR[EXTRA]][,domid=N][,platform=on|off] */
struct xen_config {
    bool enabled;
    u16 major, minor;        /* XENVER_version: default 4.17 */
    char extraversion[16];   /* XENVER_extraversion: default ".0" */
    u16 domid;               /* the guest's own domain id: default 1 */
    bool platform;           /* the Xen platform PCI device (default on, as xl gives an
                                HVM domain; platform=off leaves it out) */
};
/* Fills cfg from the option's value (NULL or "" = the defaults). Returns 0, or -1 with
 * a message in err. */
int xen_parse_option(struct xen_config *cfg, const char *spec, char *err, size_t errlen);

/* What the interface asks of its machine (each may be called from a hypercall, from a
 * timer callback or from the machine's run loop). */
struct xen_host_ops {
    /* the level of a GSI of the I/O APIC (0-15 are the ISA IRQs, also on the 8259) */
    void (*set_gsi)(void *opaque, int gsi, bool level);
    /* the INTx line pin (0 = INTA) of PCI function devfn on bus 0, routed as the
     * platform routes PCI interrupts */
    void (*set_pci_intx)(void *opaque, u8 devfn, int pin, bool level);
    /* a fixed, edge-triggered interrupt with this vector at vCPU vcpu's local APIC */
    void (*deliver_vector)(void *opaque, int vcpu, u8 vector);
    /* vCPU vcpu has something new to act on (an upcall to take, a polled port became
     * pending): it runs soon (the running vCPU's pass ends; -1: end it regardless) */
    void (*kick)(void *opaque, int vcpu);
    /* the virtual clock (ns) and timers on it: timer_new returns an id (or -1), fn runs
     * from the machine's loop when the deadline passes */
    u64 (*now_ns)(void *opaque);
    int (*timer_new)(void *opaque, void (*fn)(void *arg, u64 now_ns), void *arg);
    void (*timer_arm)(void *opaque, int timer, u64 deadline_ns);
    void (*timer_disarm)(void *opaque, int timer);
    /* the guest ends: status is nestor's exit status (0 poweroff/reboot, 4 crash) */
    void (*stop)(void *opaque, int status);
    /* a page of the interface's own (a grant frame) appears at guest-physical gpa,
     * replacing what was there, or moves there; unmap takes it away (every vCPU's TLB
     * is flushed). map returns 0 or -1 (no room). */
    int (*map_page)(void *opaque, u64 gpa, u8 *host, u32 *gen);
    void (*unmap_page)(void *opaque, u8 *host);
    /* the I/O APIC input of a GSI alone (not the 8259): a GSI the guest maps to a pirq
     * leaves its input low, one it unmaps gets the line's level back */
    void (*set_ioapic_input)(void *opaque, int gsi, bool level);
};

/* What the interface needs of its machine. */
struct xen_host {
    const struct xen_host_ops *ops;
    void *opaque;
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
    int nr_gsis;      /* the I/O APIC's inputs (GSIs 0..nr_gsis-1): pirqs map them */
};

/* base: the first CPUID leaf, 0x40000000, or 0x40000100 when Hyper-V's leaves take the
 * first range (Xen with viridian). NULL if out of memory. */
struct xen *xen_create(const struct xen_config *cfg, const struct xen_host *host, u32 base);
void xen_destroy(struct xen *x);

/* libxenguest's special pages of an HVM/PVH domain (xenstore's and the PV console's
 * rings among them): the range's guest-physical base and size, which the machine's
 * memory map marks reserved as libxl does; the frame of page index. */
#define XEN_NR_SPECIAL_PAGES 8u
#define XEN_SPECIALPAGE_XENSTORE 4u
#define XEN_SPECIALPAGE_CONSOLE 7u
u64 xen_special_region(u64 *size);
u64 xen_special_pfn(unsigned index);
/* A ring of one of domain 0's services, as the toolstack sets it up: special page index
 * (zeroed, the interface's own) at its frame, a guest port allocated unbound for domain
 * 0 and bound by it (notify runs when the guest signals it), named in HVM parameters
 * pfn_param and evtchn_param. 0, -EINVAL (index taken) or -ENOMEM; *page and *host_port. */
typedef void (*xen_host_notify_fn)(void *opaque, u32 host_port);
int xen_special_ring(struct xen *x, unsigned index, u32 pfn_param, u32 evtchn_param,
                     xen_host_notify_fn notify, void *opaque, u8 **page, u32 *host_port);

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
/* After vCPU c's pass (cpu_run returned): its runstate follows its run state (running,
 * blocked while halted, offline while it waits for its SIPI). */
void xen_vcpu_ran(struct xen *x, struct cpu *c);

/* The callback vector (HVM_PARAM_CALLBACK_IRQ of the vector type): the vector vCPU c
 * takes now as an interrupt, ahead of the PIC and its LAPIC, while its event upcall is
 * pending, or -1. For the GSI and PCI INTx kinds it lowers the line once vCPU 0's upcall
 * is no longer pending, before the interrupt controllers are asked. The machine calls it
 * wherever it looks for a vCPU's pending interrupt. */
int xen_intr_pending(struct xen *x, struct cpu *c);
/* Xen's hvm_maybe_deassert_evtchn_irq(), which Xen runs at every VM exit: the GSI or
 * PCI INTx callback line drops once vCPU 0's upcall is no longer pending. The machine
 * calls it for every event out of the CPU, before a device sees the access (so that a
 * guest that cleared evtchn_upcall_pending and then EOIs or unmasks the line at the
 * 8259 or the I/O APIC does not see it again). */
void xen_maybe_deassert_callback(struct xen *x);

/* Domain 0's ends of interdomain event channels, for nestor's backends (the guest's
 * PV devices). notify runs when the guest signals the channel. alloc_unbound makes a
 * dom0 port that the guest binds with EVTCHNOP_bind_interdomain; bind connects to a
 * guest port the guest allocated for dom0 (alloc_unbound with remote_dom 0), leaving it
 * as it is (Xen marks only the binder's new port pending). Both return the dom0 port or -ENOSPC/-EINVAL. notify signals the guest's end;
 * close frees a dom0 port (the guest's end waits for a new binding). */
int xen_evtchn_host_alloc_unbound(struct xen *x, xen_host_notify_fn notify, void *opaque);
int xen_evtchn_host_bind(struct xen *x, u32 guest_port, xen_host_notify_fn notify, void *opaque);
int xen_evtchn_host_notify(struct xen *x, u32 host_port);
/* After a restore: the backend that had dom0 port host_port, bound to guest_port, takes
 * it again with its notify function. 0, or -EINVAL if the machine has no such port. */
int xen_evtchn_host_attach(struct xen *x, u32 host_port, u32 guest_port, xen_host_notify_fn notify,
                           void *opaque);
/* The guest's end of a bound dom0 port (0: none) */
u32 xen_evtchn_guest_port(const struct xen *x, u32 host_port);
void xen_evtchn_host_close(struct xen *x, u32 host_port);

/* Domain 0's access to the guest's grants, for nestor's backends, through Xen's grant
 * protocol: the entry must grant domain 0 access (GTF_permit_access, or a v2 transitive
 * grant naming one of dom0's own grants), writable unless GTF_readonly; the guest sees
 * GTF_reading/GTF_writing (v1 flags, v2 status word) while the grant is in use. The
 * granted frame is the guest's memory (never a host address the guest names). The
 * results are GNTST_* codes (grant_table.h): GNTST_okay (0), GNTST_bad_gntref,
 * GNTST_general_error (not granted to dom0, read-only, the entry changing under us),
 * GNTST_bad_page (the frame is not the guest's memory), GNTST_bad_copy_arg (a range
 * beyond what is granted), GNTST_no_device_space (out of handles), GNTST_bad_handle.
 * host_map keeps the grant in use until host_unmap and gives the page's bytes and the
 * granted range within it (all of it but for a v2 sub-page grant); the backend stays
 * within [offset, offset + length); code the guest decoded from a page written through
 * a writable mapping is invalidated at the unmap. host_copy_from/to pin it for one copy. */
struct xen_grant_mapping {
    u8 *page;           /* the page's 4096 bytes */
    u16 offset, length; /* the granted part */
};
int xen_gnttab_host_map(struct xen *x, u32 gref, bool writable, u32 *handle, struct xen_grant_mapping *m);
int xen_gnttab_host_unmap(struct xen *x, u32 handle);
/* After a restore: the mapping behind a handle the backend held (the grant, writable or
 * not, as it was mapped): GNTST_okay with the page, or GNTST_bad_handle if the machine
 * has no such mapping. */
int xen_gnttab_host_mapping(struct xen *x, u32 handle, u32 gref, bool writable, struct xen_grant_mapping *m);
/* The host wrote through a writable mapping it keeps (a persistent grant): code the
 * guest decoded from the page is stale, and dirty logging sees the page. */
void xen_gnttab_host_written(struct xen *x, u32 handle);
int xen_gnttab_host_copy_from(struct xen *x, u32 gref, u32 off, void *buf, u32 len);
int xen_gnttab_host_copy_to(struct xen *x, u32 gref, u32 off, const void *buf, u32 len);
/* Domain 0's own grants to the guest (a page of the host's, 4096 bytes): the guest
 * reaches them with GNTTABOP_copy naming domain 0, and through its own transitive
 * grants. grant returns the reference, -ENOSPC, or -EINVAL without a page; end_grant returns 0, -EBUSY while
 * the guest uses it, -EINVAL for a reference not granted. */
int xen_gnttab_host_grant(struct xen *x, u8 *page, bool readonly);
int xen_gnttab_host_end_grant(struct xen *x, u32 gref);

/* A device's interrupt line, I/O APIC input gsi (ISA IRQ 0 is GSI 2), changes level;
 * the machine calls it for every device line, before the I/O APIC. If the guest mapped
 * the GSI to a pirq (PHYSDEVOP_map_pirq), the line is the pirq's: a rising edge
 * signals its event channel and the result is true: the I/O APIC input is left alone
 * (low). false: the line goes to the I/O APIC as without Xen. The 8259 takes its ISA
 * lines either way. */
bool xen_gsi_set(struct xen *x, int gsi, bool level);
/* The guest was entered through PVH: a PVH domain has no pirqs (libxl gives it no
 * emulated devices but the LAPIC, hence no XEN_X86_EMU_USE_PIRQ). */
void xen_set_pvh(struct xen *x);

/* An HVM parameter's value as the toolstack set it or the guest changed it (index below
 * HVM_NR_PARAMS; 0 otherwise) */
u64 xen_hvm_param(const struct xen *x, u32 index);

/* Save and restore: the interface's sections, registered after the machine's devices
 * and before the frame map's (mem_state_register), whose pages they name. savable is
 * false, with a message, while the interface holds what cannot be saved yet. */
struct state_registry;
void xen_state_register(struct xen *x, struct state_registry *r);
bool xen_state_savable(const struct xen *x, char *err, size_t errlen);

/* vCPU c's TSC was written (WRMSR TSC or TSC_ADJUST): its pvclock is brought up to
 * date before the guest reads the TSC again, as Xen does when a guest sets its TSC. */
void xen_tsc_written(struct xen *x, struct cpu *c);

#endif

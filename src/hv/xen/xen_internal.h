/* Inside the Xen interface: the state every part shares and the helpers they use. Each
 * part of the ABI has its file: xen.c (identification, the hypercall page, dispatch,
 * xen_version, console_io), memory.c (memory_op), vcpu.c (vcpu_op, vcpu_info, pvclock,
 * runstate, vm_assist), evtchn.c (event_channel_op and the upcall paths), hvm.c
 * (hvm_op), sched.c (sched_op, set_timer_op), gnttab.c (grant_table_op and the host's
 * grant access), physdev.c (physdev_op and pirqs). */
#ifndef NESTOR_HV_XEN_XEN_INTERNAL_H
#define NESTOR_HV_XEN_XEN_INTERNAL_H

#include <errno.h>
#include <stddef.h>

#include "hv/xen/xen.h"
#include "cpu/cpu.h"
#include "machine/mem.h"
#include "machine/state.h"

#define __XEN_INTERFACE_VERSION__ 0x00040e00 /* the 4.14+ interface, as Linux uses it */
#include <xen/xen.h>
#include <xen/foreign/x86_32.h>
#include <xen/hvm/params.h>

struct xen_evtchn;

/* Xen's NR_DOMAIN_WATCHDOG_TIMERS (xen/include/xen/sched.h, not public) */
#define NR_XEN_WATCHDOGS 2
struct xen_gnttab;

/* Per vCPU (host.ncpus of them) */
struct xen_vcpu {
    /* where the guest registered its vcpu_info (VCPUOP_register_vcpu_info), if it did;
     * until then vCPUs 0..31 use their slot in shared_info and the others have none */
    bool info_registered;
    u64 info_gpa;
    /* ---- timers, runstate, the secondary time area (vcpu.c, sched.c) ---- */
    struct xen *x;
    int id;
    /* runstate accounting (RUNSTATE_*), kept from the vCPU's run state at each pass */
    int rs_state;
    u64 rs_entry_ns;
    u64 rs_time[4];
    /* guest-virtual areas Xen keeps current: the runstate and the secondary time info
     * (0: none) */
    u64 runstate_gva;
    u64 time_area_gva;
    /* timers on the virtual clock: single-shot, periodic, poll timeout */
    int sshot_timer, periodic_timer, poll_timer;
    u64 periodic_ns, periodic_next;
    /* blocked by SCHEDOP_block or SCHEDOP_poll; polling: the one port polled, or -1 for
     * several */
    bool blocked, polling;
    s64 poll_port;
    bool in_multicall;      /* a multicall runs: a nested one is refused */
    /* ---- event channels and upcalls (evtchn.c, hvm.c) ---- */
};

struct xen {
    struct xen_config cfg;
    struct xen_host host;
    u32 base;      /* first CPUID leaf */
    u32 msr_base;  /* hypercall-page MSR */
    u32 time_mul;  /* TSC ticks to ns: (ticks << shift) * mul >> 32, as Xen's time scale */
    s8 time_shift;
    /* The shared_info layout, latched from the guest's mode when it places the hypercall
     * page (Xen's has_32bit_shinfo): 32-bit (x86_32) unless in 64-bit mode then. */
    bool shinfo_32;
    /* Where the guest placed shared_info (XENMEM_add_to_physmap), if it did */
    bool shinfo_placed;
    u64 shinfo_gpa;
    /* ---- memory (memory.c) ---- */
    u8 *shinfo_page;        /* Xen's shared_info page, a frame of the physical map when placed */
    u32 shinfo_gen;         /* its code-generation word */
    u64 mem_unmapped;       /* pages the domain owns in no frame (Xen's tot_pages counts them) */
    /* the memory map the domain set for itself (XENMEM_set_memory_map: e820 entries of
     * 20 bytes), which XENMEM_memory_map reports from then on instead of nestor's */
    bool memmap_set;
    u32 memmap_nr;
    u8 *memmap;
    struct xen_vcpu *vcpu;
    /* ---- event channels and upcalls (evtchn.c, hvm.c) ---- */
    struct xen_evtchn *evtchn;
    /* ---- grant tables (gnttab.c) ---- */
    struct xen_gnttab *gnttab;
    /* ---- timers, runstate, shutdown (vcpu.c, sched.c) ---- */
    u32 vm_assist;          /* VMASST_TYPE_* bits the guest enabled */
    bool shut_down;         /* the domain shut down: nothing more runs */
    u32 shutdown_code;      /* SCHEDOP_shutdown_code: the reason the next suspend gives */
    bool shutdown_code_set;
    int watchdog_timer[NR_XEN_WATCHDOGS];
    bool watchdog_used[NR_XEN_WATCHDOGS];
    /* ---- HVM parameters (hvm.c) ---- */
    u64 hvm_param[HVM_NR_PARAMS];
    /* ---- pirqs (physdev.c) ---- */
    struct xen_pirqs *pirqs;
    /* ---- the toolstack's special pages (special.c): the rings of dom0's services ---- */
    u8 *special_page[XEN_NR_SPECIAL_PAGES];
    u32 special_gen[XEN_NR_SPECIAL_PAGES];
};

/* One call in flight: the vCPU, its ABI (compat: 32-bit layouts and registers) and the
 * arguments. */
struct xcall {
    struct xen *x;
    struct cpu *c;
    bool compat;
    u64 arg[6];
};

/* The one way to guest memory named by a hypercall argument: a linear address of the
 * calling vCPU, through its page tables (cpu_copy_guest). 0 or -EFAULT. */
int xen_copy_from(struct xcall *k, u64 gva, void *buf, size_t len);
int xen_copy_to(struct xcall *k, u64 gva, const void *buf, size_t len);

/* The domain a domid_t names: 0 for this guest (DOMID_SELF or its own id), -EPERM for
 * dom0 (it exists, a domU may not look at it), -ESRCH otherwise. */
long xen_own_domain(const struct xen *x, u16 domid);

/* shared_info: the wall clock with its version protocol (xen.c) */
void xen_write_wallclock(struct xen *x, struct guest_mem *mem);
/* The guest-physical address of vCPU id's vcpu_info (vcpu.c), if it has one. */
bool xen_vcpu_info_gpa(const struct xen *x, int id, u64 *gpa);
/* Brings vCPU c's vcpu_time_info up to date (vcpu.c). */
void xen_update_time(struct xen *x, struct cpu *c);

/* The parts' lifetimes: create returns 0 or -ENOMEM (xen_create calls them in order and
 * destroys what was made on failure); destroy takes a part that may not exist. */
int xen_time_create(struct xen *x); /* vcpu.c, sched.c: the timers */
int xen_evtchn_create(struct xen *x);
void xen_evtchn_destroy(struct xen *x);
int xen_gnttab_create(struct xen *x);
void xen_gnttab_destroy(struct xen *x);
void xen_memory_destroy(struct xen *x); /* memory.c: shared_info leaves the map */
int xen_pirq_create(struct xen *x);
void xen_pirq_destroy(struct xen *x);
/* special.c: the special pages go (xen_destroy) */
void xen_special_destroy(struct xen *x);

/* ---- between the parts ---- */
/* memory.c: a page of Xen's that was at gfn is gone from there (removed, replaced, or
 * taken by a grant mapping): its owner (shared_info, the grant table) learns it. */
void xen_page_gone(struct xen *x, u64 gfn, const u8 *page);
/* evtchn.c: marks port pending as if its other end signalled it (an interdomain port
 * from a backend, a pirq's port) and runs the upcall if the guest is to get one.
 * Returns 0, or -EINVAL for a port that is not open. */
int xen_evtchn_set_pending(struct xen *x, u32 port);
/* evtchn.c: a guest port allocated unbound for domain 0, as the toolstack allocates
 * the console's and xenstore's (xc_evtchn_alloc_unbound for the domU): the port, or
 * -ENOSPC. */
long xen_evtchn_alloc_for_dom0(struct xen *x);
/* evtchn.c: raises virq (VIRQ_TIMER, VIRQ_DEBUG...) on vCPU vcpu if the guest bound it
 * there; nothing otherwise. */
void xen_evtchn_send_virq(struct xen *x, int vcpu, u32 virq);
/* evtchn.c: whether port exists and is pending (SCHEDOP_poll). */
bool xen_evtchn_is_pending(struct xen *x, u32 port);
/* evtchn.c: the number of ports the domain's event-channel ABI has (Xen's
 * max_evtchns): a port at or above it is -EINVAL. */
u32 xen_evtchn_max_ports(const struct xen *x);
/* vcpu.c: arms vCPU id's single-shot timer (VIRQ_TIMER) at system time deadline, 0
 * stops it (set_timer_op, VCPUOP_set_singleshot_timer). */
void xen_set_singleshot(struct xen *x, int id, u64 deadline);
/* sched.c: Xen's domain_crash(): the domain ends, nestor with the guest-error status */
void xen_domain_crash(struct xen *x, const char *why);
/* sched.c: the domain's watchdog timers (xen_time_create calls it). */
int xen_watchdog_create(struct xen *x);
/* evtchn.c: HVM_PARAM_CALLBACK_IRQ's value takes effect; HVMOP_set_evtchn_upcall_vector
 * (0: none) */
void xen_evtchn_set_callback_via(struct xen *x, u64 via);
void xen_evtchn_set_upcall_vector(struct xen *x, int vcpu, u8 vector);
/* evtchn.c: a pending upcall of vCPU vcpu is signalled again (Xen's arch_evtchn_inject) */
void xen_evtchn_inject(struct xen *x, int vcpu);
/* hvm.c: the parameters as the toolstack leaves them (xen_create calls it) */
void xen_hvm_params_init(struct xen *x);
/* gnttab.c: XENMEM_add_to_physmap of a grant frame (XENMAPSPACE_grant_table): 0 or
 * -EINVAL */
long xen_gnttab_map_frame(struct xen *x, u64 idx, u64 gfn);
/* gnttab.c: a grant or status frame placed at gfn is no longer there (memory_op removed
 * it or put another page there): the table knows it as placed nowhere. */
void xen_gnttab_frame_gone(struct xen *x, u64 gfn);
/* xen.c: the shared_info layout follows the guest's mode now (Xen's
 * hvm_latch_shinfo_size, also when the callback is set) */
void xen_latch_shinfo(struct xen *x, struct cpu *c);
/* sched.c: ends a SCHEDOP_poll or SCHEDOP_block of vCPU id (an event for it). */
void xen_sched_wake(struct xen *x, int id);
/* sched.c: port became pending: a vCPU polling it (SCHEDOP_poll) wakes. */
void xen_sched_port_pending(struct xen *x, u32 port);
/* physdev.c: EVTCHNOP_bind_pirq / close of a pirq port: the pirq now signals port
 * (0, or -EINVAL for a pirq beyond the domain's, -EEXIST if bound: an HVM domain may
 * bind a pirq it has not mapped, as in Xen) / no longer does. bind_check gives bind's
 * answer without binding, so that its errors come before the port's allocation. */
int xen_pirq_bind(struct xen *x, u32 pirq, u32 port);
void xen_pirq_unbind(struct xen *x, u32 pirq);
int xen_pirq_bind_check(struct xen *x, u32 pirq);
/* physdev.c: whether the domain has pirqs (Xen's has_pirq: HVM, not PVH), for
 * XENFEAT_hvm_pirqs */
bool xen_has_pirqs(const struct xen *x);
/* evtchn.c: Xen's is_hvm_pv_evtchn_domain(): the callback vector or vCPU 0's upcall
 * vector carries the domain's events (PHYSDEVOP_map_pirq needs it) */
bool xen_evtchn_vector_callback(const struct xen *x);

/* The hypercalls, one handler per number; each takes both ABIs (k->compat). */
long xen_do_memory_op(struct xcall *k);
long xen_do_vcpu_op(struct xcall *k);
long xen_do_event_channel_op(struct xcall *k);
long xen_do_hvm_op(struct xcall *k);
long xen_do_sched_op(struct xcall *k);
long xen_do_set_timer_op(struct xcall *k);
long xen_do_grant_table_op(struct xcall *k);
long xen_do_physdev_op(struct xcall *k);
long xen_do_vm_assist(struct xcall *k);
long xen_do_multicall(struct xcall *k);
/* control.c: the toolstack's and dom0's calls, refused as Xen refuses a domU */
long xen_do_platform_op(struct xcall *k);
long xen_do_sysctl(struct xcall *k);
long xen_do_domctl(struct xcall *k);
long xen_do_paging_domctl_cont(struct xcall *k);
long xen_do_dm_op(struct xcall *k);
long xen_do_hypfs_op(struct xcall *k);
long xen_do_mmuext_op(struct xcall *k);
long xen_do_xenpmu_op(struct xcall *k);
/* Xen's number for paging_domctl_cont, an x86 architecture call that the public
 * headers do not name (xen/arch/x86/include/asm/hypercall.h) */
#define XEN_HYPERCALL_PAGING_DOMCTL_CONT __HYPERVISOR_arch_1

/* ---- state (save and restore) ----
 * Each part describes its state beside its code; xen_state_register registers them in
 * order. The interface's own pages, which the frame map may hold, are named for a state
 * file by these numbers (MEM_PAGE_FOREIGN | number). */
#define XEN_PAGE_SHARED_INFO 0u
#define XEN_PAGE_SPECIAL 0x10u /* + index */
#define XEN_PAGE_GRANT_FRAME 0x100u
#define XEN_PAGE_STATUS_FRAME 0x200u
#define XEN_PAGE_DOM0_GRANT 0x1000u
void xen_evtchn_state_register(struct xen *x, struct state_registry *r);
void xen_gnttab_state_register(struct xen *x, struct state_registry *r);
void xen_pirq_state_register(struct xen *x, struct state_registry *r);
/* gnttab.c: whether what the table holds can be saved (dom0's grants and mappings are its
 * backends', which do not describe them yet): false with a message */
bool xen_gnttab_savable(const struct xen *x, char *err, size_t errlen);
/* gnttab.c: the pages by number (MEM_PAGE_UNKNOWN / NULL: not theirs) */
u64 xen_gnttab_page_id(const struct xen *x, const u8 *page);
u8 *xen_gnttab_page(struct xen *x, u64 id, u32 **gen);

/* memory.c: XENMEM_set_memory_map's entries (struct e820entry, packed) and Xen's most
 * (E820MAX, xen/arch/x86/include/asm/e820.h) */
#define XEN_E820_ENTRY_SIZE 20u
#define XEN_E820_MAX 1024u

/* Performs hypercall nr for vCPU c in the ABI compat says, with its argument registers
 * (the multicall entries use it too). */
long xen_call(struct xen *x, struct cpu *c, bool compat, u64 nr, const u64 args[6]);

#endif

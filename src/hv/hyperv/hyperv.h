/* The Hyper-V interface that nestor presents to a guest (-cpu ...,hv-*): the CPUID leaves,
 * the synthetic MSRs, the hypercalls, the synthetic interrupt controller and timers and
 * the synthetic debugger, as the Hyper-V Top-Level Functional Specification (TLFS 6.0)
 * describes them and as KVM with QEMU's hv-* properties offers them. The machine routes
 * to it the CPUID leaves 40000000h-400000FFh, the MSRs 40000000h-400001FFh and the
 * VMCALL/VMMCALLs that are Hyper-V's (all of them, or with Xen on too those whose EAX has
 * bit 31 set, as Xen's viridian hypercall page marks them). */
#ifndef NESTOR_HV_HYPERV_HYPERV_H
#define NESTOR_HV_HYPERV_HYPERV_H

#include <stddef.h>

#include "common.h"

struct cpu;
struct hyperv;
struct state_registry;

/* The enlightenments, by QEMU's property names. */
enum hyperv_feature {
    HV_FEAT_RELAXED, HV_FEAT_VAPIC, HV_FEAT_TIME, HV_FEAT_CRASH, HV_FEAT_RESET,
    HV_FEAT_VPINDEX, HV_FEAT_RUNTIME, HV_FEAT_SYNIC, HV_FEAT_STIMER, HV_FEAT_FREQUENCIES,
    HV_FEAT_REENLIGHTENMENT, HV_FEAT_TLBFLUSH, HV_FEAT_TLBFLUSH_EXT, HV_FEAT_IPI,
    HV_FEAT_STIMER_DIRECT, HV_FEAT_SYNDBG, HV_FEAT_XMM_INPUT, HV_FEAT_SPINLOCKS,
    HV_FEAT_EVMCS, HV_FEAT_COUNT
};

/* -device hv-syndbg,host_ip=A,host_port=P[,use_hcalls=on]: the synthetic debugger's
 * host end, a UDP peer (QEMU's device and properties) */
struct hyperv_syndbg_config {
    bool enabled;
    char host_ip[64];
    u16 host_port;         /* default 50000 */
    bool use_hcalls;       /* SYNDBG_OPTIONS tells the guest to use the hypercalls */
};

struct hyperv_config {
    u32 features;          /* BIT(HV_FEAT_*) */
    struct hyperv_syndbg_config syndbg;
    u32 spinlock_retries;  /* hv-spinlocks=N (CPUID 40000004h EBX): default 0xffffffff,
                              "never notify" */
    char vendor_id[13];    /* hv-vendor-id: the 40000000h signature ("Microsoft Hv") */
    bool evmcs_asked;      /* hv-evmcs itself was given (not through hv-passthrough): a
                              CPU without VMX is then an error rather than a reason to
                              leave it out */
};

static inline bool hyperv_config_enabled(const struct hyperv_config *cfg)
{
    return cfg->features != 0;
}

/* Takes one item of the -cpu string if it is a Hyper-V property (hv-NAME[=VALUE] or the
 * older hv_NAME spelling; hv-passthrough turns on every enlightenment nestor has):
 * returns 1 when taken, 0 when the item is not Hyper-V's, -1 with a message in err for a
 * bad value. */
int hyperv_parse_cpu_item(struct hyperv_config *cfg, const char *item, char *err, size_t errlen);
/* After the whole -cpu string: the dependencies between the enlightenments, as QEMU
 * checks them ("hv-synic requires hv-vpindex"). 0, or -1 with a message. */
int hyperv_config_check(const struct hyperv_config *cfg, char *err, size_t errlen);

/* -device hv-syndbg's properties (after "hv-syndbg,"; NULL or "": the defaults):
 * 0, or -1 with a message. */
int hyperv_parse_syndbg_device(struct hyperv_config *cfg, const char *props, char *err,
                               size_t errlen);

/* What the interface asks of its machine. */
struct hyperv_host_ops {
    /* a fixed, edge-triggered interrupt with this vector at vCPU vcpu's local APIC, as an
     * IPI from the hypervisor (an APIC that is software-disabled does not take it) */
    void (*deliver_vector)(void *opaque, int vcpu, u8 vector);
    /* vCPU vcpu's LAPIC registers through the synthetic APIC MSRs: EOI, ICR (64 bits, the
     * xAPIC layout in xAPIC mode, x2APIC's in x2APIC mode), TPR. false: #GP */
    bool (*apic_write)(void *opaque, int vcpu, u32 reg, u64 value);
    bool (*apic_read)(void *opaque, int vcpu, u32 reg, u64 *value);
    /* every translation of vCPU vcpu's TLB goes (a remote flush) */
    void (*flush_tlb)(void *opaque, int vcpu);
    /* vCPU vcpu has something new to act on: it runs soon */
    void (*kick)(void *opaque, int vcpu);
    /* the virtual clock (ns) and timers on it */
    u64 (*now_ns)(void *opaque);
    int (*timer_new)(void *opaque, void (*fn)(void *arg, u64 now_ns), void *arg);
    void (*timer_arm)(void *opaque, int timer, u64 deadline_ns);
    void (*timer_disarm)(void *opaque, int timer);
    /* the guest asked for a reset (HV_X64_MSR_RESET) or reported a crash (the crash MSRs):
     * the machine resets, or stops with the guest-error status */
    void (*reset)(void *opaque);
    void (*crashed)(void *opaque, const u64 params[5]);
};

struct hyperv_host {
    const struct hyperv_host_ops *ops;
    void *opaque;
    bool amd;           /* VMMCALL rather than VMCALL in the hypercall page */
    bool xen_too;       /* the Xen interface is on as well: the hypercall page marks a call
                           as Hyper-V's with EAX bit 31 (Xen's viridian convention) */
    u32 tsc_khz;        /* the guest TSC frequency */
    u32 apic_khz;       /* the LAPIC timer's input clock */
    struct cpu *const *cpus;
    int ncpus;
};

struct hyperv *hyperv_create(const struct hyperv_config *cfg, const struct hyperv_host *host);
void hyperv_destroy(struct hyperv *hv);

/* CPUID: leaves 40000000h-400000FFh are Hyper-V's; fills r (eax, ebx, ecx, edx). */
bool hyperv_cpuid(struct hyperv *hv, const struct cpu *c, u32 leaf, u32 subleaf, u32 r[4]);
/* MSRs: whether index is Hyper-V's (40000000h-400001FFh: those of features that are off
 * #GP); then read/write return false for #GP. */
bool hyperv_msr_owned(const struct hyperv *hv, u32 index);
bool hyperv_msr_read(struct hyperv *hv, struct cpu *c, u32 index, u64 *value);
bool hyperv_msr_write(struct hyperv *hv, struct cpu *c, u32 index, u64 value);
/* Whether this VMCALL/VMMCALL of vCPU c is Hyper-V's (see above). */
bool hyperv_hypercall_owned(const struct hyperv *hv, const struct cpu *c);
/* Performs it: the result in RAX (EDX:EAX in 32-bit code). false: #UD (CPL > 0, real or
 * virtual-8086 mode, as Hyper-V and KVM raise it). */
bool hyperv_hypercall(struct hyperv *hv, struct cpu *c);

/* Interrupt acknowledge and EOI at vCPU vcpu's LAPIC, for the SynIC: whether vector is
 * an auto-EOI SINT's (the machine then takes it out of service at once), and an EOI of
 * vector (a timer message waiting for its slot is retried). */
bool hyperv_auto_eoi(struct hyperv *hv, int vcpu, u8 vector);
void hyperv_eoi(struct hyperv *hv, int vcpu, u8 vector);
/* vCPU c's TSC was written: the reference TSC page follows it. */
void hyperv_tsc_written(struct hyperv *hv, struct cpu *c);
/* Before vCPU c runs (each entry into cpu_run): the VP assist page's EOI-avoidance bit
 * is looked at (an EOI the guest made by clearing it takes effect). */
void hyperv_vcpu_resume(struct hyperv *hv, struct cpu *c);
/* Before vCPU c's LAPIC is looked at (an interrupt check, an access to its registers):
 * an EOI the guest made by clearing the VP assist page's bit takes effect. */
void hyperv_pv_eoi_sync(struct hyperv *hv, struct cpu *c);
/* vCPU c accepted an interrupt (it is in service now; only_in_service: alone, edge, nothing
 * waiting): with EOI avoidance,
 * the VP assist page may announce that clearing its bit is the EOI. */
void hyperv_intr_taken(struct hyperv *hv, struct cpu *c, bool only_in_service);

/* The machine resets (the guest's reset, or a new boot): the interface's state goes back
 * to that of a new partition. */
void hyperv_reset(struct hyperv *hv);

/* The host side of SynIC connections (the TLFS' ports): HvPostMessage to connection_id
 * reaches handler (its result is the hypercall's status: HV_STATUS_SUCCESS or
 * HV_STATUS_INSUFFICIENT_BUFFERS); HvSignalEvent to an event connection sets flag 0..2047
 * of SINT sint's event flags page at vCPU vp and signals the SINT. Both return 0, or -1
 * if the id is taken. */
typedef u16 (*hyperv_msg_handler)(void *opaque, u32 connection_id, u32 message_type,
                                   const u8 *payload, u32 size);
int hyperv_msg_connection_add(struct hyperv *hv, u32 connection_id, hyperv_msg_handler fn,
                              void *opaque);
int hyperv_event_connection_add(struct hyperv *hv, u32 connection_id, int vp, u8 sint, u16 flag);
void hyperv_connection_remove(struct hyperv *hv, u32 connection_id);
/* The host posts a message to SINT sint of vCPU vp (its message slot must be free: -EAGAIN
 * otherwise, the SINT's owner retries after the guest's EOM) or sets an event flag. 0, or
 * -EINVAL (no such vCPU or SINT, SynIC off, page disabled). */
int hyperv_post_message(struct hyperv *hv, int vp, u8 sint, u32 type, const void *payload, u32 size);
int hyperv_set_event_flag(struct hyperv *hv, int vp, u8 sint, u16 flag);
/* The guest ended a message at SINT sint of vCPU vp (an EOM: every SINT, sint -1; an EOI
 * of the SINT's vector): a host poster whose message waited for the slot retries. */
typedef void (*hyperv_sint_ack_fn)(void *opaque, int vp, int sint);
void hyperv_set_sint_ack_handler(struct hyperv *hv, hyperv_sint_ack_fn fn, void *opaque);
/* Signals SINT sint of vCPU vp (its vector goes to the LAPIC unless masked). */
int hyperv_sint_signal(struct hyperv *hv, int vp, u8 sint);

/* After vCPU c's pass (cpu_run returned): VP_RUNTIME counts the time it ran. */
void hyperv_vcpu_ran(struct hyperv *hv, struct cpu *c);

/* Save and restore; the descriptions one by one (i = 0, 1, ...; NULL past the last), for
 * the unit test that checks each covers its struct. */
void hyperv_state_register(struct hyperv *hv, struct state_registry *r);
struct state_desc;
const struct state_desc *hyperv_state_descs(int i);

/* A guest's crash report (the crash MSRs) as text, for the log and the control plane */
void hyperv_crash_format(const u64 params[5], char *buf, size_t len);

#endif

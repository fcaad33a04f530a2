/* Inside the Hyper-V interface: the state its parts share. hyperv.c (options,
 * identification, the partition and VP MSRs, the hypercall page, the reference TSC
 * page, the VP assist page), hcall.c (the hypercall ABI, the dispatch table, the
 * TLB-flush and IPI hypercalls), synic.c (the synthetic interrupt controller, messages
 * and events, the connections), stimer.c (the synthetic timers), syndbg.c (the
 * synthetic debugger), state.c (save and restore). Numbers are the TLFS'. */
#ifndef NESTOR_HV_HYPERV_HYPERV_INTERNAL_H
#define NESTOR_HV_HYPERV_HYPERV_INTERNAL_H

#include "hv/hyperv/hyperv.h"
#include "cpu/cpu.h"
#include "machine/mem.h"

/* ---- the TLFS' numbers ---- */
/* MSRs */
enum {
    HV_MSR_GUEST_OS_ID = 0x40000000, HV_MSR_HYPERCALL = 0x40000001, HV_MSR_VP_INDEX = 0x40000002,
    HV_MSR_RESET = 0x40000003, HV_MSR_VP_RUNTIME = 0x40000010, HV_MSR_TIME_REF_COUNT = 0x40000020,
    HV_MSR_REFERENCE_TSC = 0x40000021, HV_MSR_TSC_FREQUENCY = 0x40000022,
    HV_MSR_APIC_FREQUENCY = 0x40000023, HV_MSR_EOI = 0x40000070, HV_MSR_ICR = 0x40000071,
    HV_MSR_TPR = 0x40000072, HV_MSR_VP_ASSIST_PAGE = 0x40000073, HV_MSR_SCONTROL = 0x40000080,
    HV_MSR_SVERSION = 0x40000081, HV_MSR_SIEFP = 0x40000082, HV_MSR_SIMP = 0x40000083,
    HV_MSR_EOM = 0x40000084, HV_MSR_SINT0 = 0x40000090, HV_MSR_SINT15 = 0x4000009f,
    HV_MSR_STIMER0_CONFIG = 0x400000b0, HV_MSR_STIMER3_COUNT = 0x400000b7,
    HV_MSR_GUEST_IDLE = 0x400000f0, HV_MSR_SYNDBG_CONTROL = 0x400000f1,
    HV_MSR_SYNDBG_STATUS = 0x400000f2, HV_MSR_SYNDBG_SEND_BUFFER = 0x400000f3,
    HV_MSR_SYNDBG_RECV_BUFFER = 0x400000f4, HV_MSR_SYNDBG_PENDING_BUFFER = 0x400000f5,
    HV_MSR_SYNDBG_OPTIONS = 0x400000ff, HV_MSR_CRASH_P0 = 0x40000100,
    HV_MSR_CRASH_P4 = 0x40000104, HV_MSR_CRASH_CTL = 0x40000105,
    HV_MSR_REENLIGHTENMENT_CONTROL = 0x40000106, HV_MSR_TSC_EMULATION_CONTROL = 0x40000107,
    HV_MSR_TSC_EMULATION_STATUS = 0x40000108,
};
#define HV_MSR_FIRST 0x40000000u
#define HV_MSR_LAST 0x400001ffu

/* hypercall status codes */
enum {
    HV_STATUS_SUCCESS = 0, HV_STATUS_INVALID_HYPERCALL_CODE = 2,
    HV_STATUS_INVALID_HYPERCALL_INPUT = 3, HV_STATUS_INVALID_ALIGNMENT = 4,
    HV_STATUS_INVALID_PARAMETER = 5, HV_STATUS_ACCESS_DENIED = 6,
    HV_STATUS_INVALID_PARTITION_STATE = 7, HV_STATUS_OPERATION_DENIED = 8,
    HV_STATUS_INSUFFICIENT_MEMORY = 0xb, HV_STATUS_INVALID_PORT_ID = 0x11,
    HV_STATUS_INVALID_CONNECTION_ID = 0x12, HV_STATUS_INSUFFICIENT_BUFFERS = 0x13,
    HV_STATUS_INVALID_VP_INDEX = 0x0e, HV_STATUS_INVALID_SYNIC_STATE = 0x18,
    HV_STATUS_NO_DATA = 0x1b, HV_STATUS_TIME_OUT = 0x78,
};
/* hypercall codes */
enum {
    HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE = 0x0002, HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST = 0x0003,
    HVCALL_NOTIFY_LONG_SPIN_WAIT = 0x0008, HVCALL_SEND_IPI = 0x000b,
    HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX = 0x0013, HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX = 0x0014,
    HVCALL_SEND_IPI_EX = 0x0015, HVCALL_POST_MESSAGE = 0x005c, HVCALL_SIGNAL_EVENT = 0x005d,
    HVCALL_POST_DEBUG_DATA = 0x0069, HVCALL_RETRIEVE_DEBUG_DATA = 0x006a,
    HVCALL_RESET_DEBUG_SESSION = 0x006b,
};

#define HV_SINT_COUNT 16
#define HV_STIMER_COUNT 4
#define HV_MESSAGE_SIZE 256u
#define HV_MESSAGE_PAYLOAD_MAX 240u
#define HV_EVENT_FLAGS_PER_SINT 2048u
#define HV_MESSAGE_TIMER_EXPIRED 0x80000010u
#define HV_SYNIC_VERSION 1u
#define HV_MAX_CONNECTIONS 64

/* One synthetic timer (stimer.c) */
struct hv_stimer {
    u64 config, count;
    u64 exp_time;          /* the reference time (100 ns) of the expiry being delivered */
    bool msg_pending;      /* the expiry message waits for its slot (EOM retries it) */
    int timer;             /* the clock timer (not state: the machine's order fixes it) */
    struct hyperv *hv;
    int vp, index;
};

/* Per virtual processor */
struct hv_vp {
    u64 vp_assist;         /* HV_X64_MSR_VP_ASSIST_PAGE */
    bool pv_eoi_pending;   /* the assist page's apic_assist bit 0 stands for an EOI */
    /* SynIC (synic.c) */
    u64 scontrol, siefp, simp;
    u64 sint[HV_SINT_COUNT];
    struct hv_stimer stimer[HV_STIMER_COUNT];
    /* VP_RUNTIME: the virtual time the VP has run, not counting its halts; run_start_ns:
     * where its current pass began, if it runs (0: it waits) */
    u64 runtime_ns;
    u64 run_start_ns;
};

/* The synthetic debugger (syndbg.c) */
struct hv_syndbg {
    int fd;                   /* the connected UDP socket, -1 without the device */
    u32 host_ip;              /* the peer (host byte order) */
    u16 host_port;
    u32 target_ip;            /* the guest's address, from its last frame */
    u64 control, status, send_gpa, recv_gpa, pending_gpa, options;
    int timer;
};

struct hv_connection {
    bool used;
    u32 id;
    hyperv_msg_handler msg;   /* message connection: the host's handler */
    void *opaque;
    int vp;                   /* event connection: where the flag goes */
    u8 sint;
    u16 flag;
};

struct hyperv {
    struct hyperv_config cfg;
    struct hyperv_host host;
    /* partition-wide MSRs */
    u64 guest_os_id, hypercall, reference_tsc;
    u64 crash_p[5], crash_ctl;
    u64 reenlightenment_control, tsc_emulation_control, tsc_emulation_status;
    u32 tsc_page_seq;      /* the reference TSC page's sequence, as last written */
    bool tsc_page_valid;   /* the page is on and written: the reference time is its formula */
    u64 tsc_page_scale;
    s64 tsc_page_offset;
    struct hv_vp *vp;
    struct hv_connection conn[HV_MAX_CONNECTIONS];
    hyperv_sint_ack_fn sint_ack;
    void *sint_ack_opaque;
    struct hv_syndbg *syndbg;
};

static inline bool hv_has(const struct hyperv *hv, enum hyperv_feature f)
{
    return (hv->cfg.features >> f) & 1;
}

/* The reference time: 100 ns units since the partition began. */
u64 hv_ref_time(const struct hyperv *hv);

/* ---- between the parts ---- */
/* hcall.c: one hypercall of vCPU c (the ABI decoded, dispatched, RAX written) */
void hv_hypercall_dispatch(struct hyperv *hv, struct cpu *c);
/* synic.c */
bool hv_synic_msr_read(struct hyperv *hv, struct cpu *c, u32 index, u64 *value);
bool hv_synic_msr_write(struct hyperv *hv, struct cpu *c, u32 index, u64 value);
void hv_synic_reset(struct hyperv *hv, int vp);
u16 hv_post_message_hcall(struct hyperv *hv, struct cpu *c, u64 gpa_or_fast, bool fast);
u16 hv_signal_event_hcall(struct hyperv *hv, struct cpu *c, u32 connection_id, u16 flag);
/* A message into SINT sint's slot of vp's message page: 0, -EAGAIN (slot busy: its
 * MessagePending flag is set unless no_retry, for a sender that will not try again),
 * -EINVAL (SynIC or page off). */
int hv_synic_deliver_message(struct hyperv *hv, int vp, u8 sint, const u8 msg[HV_MESSAGE_SIZE],
                             bool no_retry);
/* stimer.c */
bool hv_stimer_msr_read(struct hyperv *hv, struct cpu *c, u32 index, u64 *value);
bool hv_stimer_msr_write(struct hyperv *hv, struct cpu *c, u32 index, u64 value);
int hv_stimer_create(struct hyperv *hv);
void hv_stimer_reset(struct hyperv *hv, int vp);
/* EOM or an EOI at vp: timers whose message waited for SINT sint's slot try again */
void hv_stimer_retry(struct hyperv *hv, int vp, int sint);
/* syndbg.c */
int hv_syndbg_create(struct hyperv *hv);
void hv_syndbg_destroy(struct hyperv *hv);
void hv_syndbg_reset(struct hyperv *hv);
bool hv_syndbg_msr_read(struct hyperv *hv, struct cpu *c, u32 index, u64 *value);
bool hv_syndbg_msr_write(struct hyperv *hv, struct cpu *c, u32 index, u64 value);
u16 hv_syndbg_hcall(struct hyperv *hv, struct cpu *c, u16 code, u64 in_gpa, u64 out_gpa);

#endif

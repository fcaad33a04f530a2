/* Hyper-V guest helpers for the hv_* tests: the TLFS' MSR numbers, the SynIC page
 * layouts, the hypercall page and a 64-bit hypercall through it, hyperv-testdev's
 * commands (QEMU's port 0x3000, as kvm-unit-tests drive it). Header only. */
#ifndef GUEST_HYPERV_H
#define GUEST_HYPERV_H

#include "rt.h"

#define HV_X64_MSR_GUEST_OS_ID 0x40000000
#define HV_X64_MSR_HYPERCALL 0x40000001
#define HV_X64_MSR_VP_INDEX 0x40000002
#define HV_X64_MSR_TIME_REF_COUNT 0x40000020
#define HV_X64_MSR_SCONTROL 0x40000080
#define HV_X64_MSR_SVERSION 0x40000081
#define HV_X64_MSR_SIEFP 0x40000082
#define HV_X64_MSR_SIMP 0x40000083
#define HV_X64_MSR_EOM 0x40000084
#define HV_X64_MSR_SINT(n) (0x40000090 + (n))
#define HV_X64_MSR_STIMER_CONFIG(n) (0x400000b0 + 2 * (n))
#define HV_X64_MSR_STIMER_COUNT(n) (0x400000b1 + 2 * (n))
#define HV_X64_MSR_SYNDBG_CONTROL 0x400000f1
#define HV_X64_MSR_SYNDBG_STATUS 0x400000f2
#define HV_X64_MSR_SYNDBG_SEND_BUFFER 0x400000f3
#define HV_X64_MSR_SYNDBG_RECV_BUFFER 0x400000f4
#define HV_X64_MSR_SYNDBG_PENDING_BUFFER 0x400000f5
#define HV_X64_MSR_SYNDBG_OPTIONS 0x400000ff

#define HV_SINT_MASKED BIT(16)
#define HV_SINT_AUTO_EOI BIT(17)
#define HV_SINT_POLLING BIT(18)

#define HV_STIMER_ENABLE BIT(0)
#define HV_STIMER_PERIODIC BIT(1)
#define HV_STIMER_LAZY BIT(2)
#define HV_STIMER_AUTO_ENABLE BIT(3)
#define HV_STIMER_VECTOR(v) ((u64)(v) << 4)
#define HV_STIMER_DIRECT BIT(12)
#define HV_STIMER_SINT(s) ((u64)(s) << 16)

#define HVMSG_NONE 0
#define HVMSG_TIMER_EXPIRED 0x80000010u

/* hypercall codes and status values */
#define HVCALL_POST_MESSAGE 0x005c
#define HVCALL_SIGNAL_EVENT 0x005d
#define HVCALL_POST_DEBUG_DATA 0x0069
#define HVCALL_RETRIEVE_DEBUG_DATA 0x006a
#define HVCALL_RESET_DEBUG_SESSION 0x006b
#define HV_HYPERCALL_FAST BIT(16)
#define HV_STATUS_SUCCESS 0
#define HV_STATUS_INVALID_HYPERCALL_CODE 2
#define HV_STATUS_INVALID_HYPERCALL_INPUT 3
#define HV_STATUS_INVALID_ALIGNMENT 4
#define HV_STATUS_INVALID_PARAMETER 5
#define HV_STATUS_OPERATION_DENIED 8
#define HV_STATUS_INVALID_CONNECTION_ID 0x12
#define HV_STATUS_INSUFFICIENT_BUFFERS 0x13
#define HV_STATUS_NO_DATA 0x1b

/* a SynIC message slot (TLFS 11.9.3): 16 per page, one per SINT */
struct hv_message {
    volatile u32 type;
    volatile u8 payload_size;
    volatile u8 flags;        /* bit 0: MessagePending */
    u16 reserved;
    u64 sender;
    volatile u64 payload[30];
};
_Static_assert(sizeof(struct hv_message) == 256, "hv_message");
#define HV_MSG_PENDING 1

/* hyperv-testdev (QEMU hw/misc/hyperv_testdev.c): 32-bit writes to port 0x3000 */
#define HV_TESTDEV_PORT 0x3000
enum {
    HV_TESTDEV_SINT_ROUTE_CREATE = 1, HV_TESTDEV_SINT_ROUTE_DESTROY, HV_TESTDEV_SINT_ROUTE_SET_SINT,
    HV_TESTDEV_MSG_CONN_CREATE, HV_TESTDEV_MSG_CONN_DESTROY, HV_TESTDEV_EVT_CONN_CREATE,
    HV_TESTDEV_EVT_CONN_DESTROY,
};
static inline void hv_testdev(int cmd, u32 vp, u32 sint, u32 conn)
{
    outl(HV_TESTDEV_PORT, (sint & 0xff) | (vp & 0xff) << 8 | ((u32)cmd & 0xff) << 16 | (conn & 0xff) << 24);
}

/* Whether CPUID offers Hyper-V ("Microsoft Hv" at 40000000h, "Hv#1" at 40000001h) */
static inline bool hv_present(void)
{
    if (!cpu_has(1, 0, 2, 31))
        return false;
    struct cpuid_regs r = cpuid(0x40000000);
    return r.b == 0x7263694d && r.c == 0x666f736f && r.d == 0x76482074 &&
           cpuid(0x40000001).a == 0x31237648;
}

/* A test that needs the Hyper-V interface: on QEMU TCG (for reference runs) it skips,
 * elsewhere its absence is a failure. false: the caller returns. */
static inline bool hv_require(void)
{
    if (hv_present())
        return true;
    if (on_qemu_tcg()) {
        test_skip("QEMU TCG has no Hyper-V interface");
        return false;
    }
    panic("no Hyper-V CPUID leaves");
}

static void *hv_hypercall_page __attribute__((unused));

/* A 64-bit hypercall through a hypercall page the caller placed (RCX control, RDX and R8
 * input and output), and the same as a raw VMCALL (VMMCALL on AMD) */
static inline u64 hv_hypercall_via(const void *page, u64 control, u64 in, u64 out)
{
    u64 r;
    register u64 r8 asm("r8") = out;
    asm volatile("call *%[p]" : "=a"(r), "+c"(control), "+d"(in), "+r"(r8) : [p] "r"(page)
                 : "r9", "r10", "r11", "memory");
    return r;
}

static inline u64 hv_hypercall_raw(bool amd, u64 control, u64 in, u64 out)
{
    u64 r;
    register u64 r8 asm("r8") = out;
    if (amd)
        asm volatile("vmmcall" : "=a"(r), "+c"(control), "+d"(in), "+r"(r8) :: "memory");
    else
        asm volatile("vmcall" : "=a"(r), "+c"(control), "+d"(in), "+r"(r8) :: "memory");
    return r;
}

/* GUEST_OS_ID (kvm-unit-tests' value) and the hypercall page */
static inline void hv_hypercall_setup(void)
{
    if (!hv_hypercall_page)
        hv_hypercall_page = page_alloc();
    wrmsr(HV_X64_MSR_GUEST_OS_ID, 0x8f00ull << 48);
    wrmsr(HV_X64_MSR_HYPERCALL, (u64)hv_hypercall_page | 1);
}

/* A 64-bit hypercall through the page: RCX control, RDX input (GPA or fast value), R8
 * output; the result from RAX. */
static inline u64 hv_hypercall(u64 control, u64 in, u64 out)
{
    u64 r;
    register u64 r8 asm("r8") = out;
    asm volatile("call *%[page]"
                 : "=a"(r), "+c"(control), "+d"(in), "+r"(r8)
                 : [page] "m"(hv_hypercall_page)
                 : "memory", "cc");
    return r;
}

static inline u64 hv_ref_time(void)
{
    return rdmsr(HV_X64_MSR_TIME_REF_COUNT);
}

static inline u32 hv_vp_index(void)
{
    return (u32)rdmsr(HV_X64_MSR_VP_INDEX);
}

static inline bool apic_isr_has(u8 vector)
{
    return (apic_read(APIC_ISR + 0x10 * (vector / 32)) >> (vector % 32)) & 1;
}

static inline bool apic_irr_has(u8 vector)
{
    return (apic_read(APIC_IRR + 0x10 * (vector / 32)) >> (vector % 32)) & 1;
}

#endif

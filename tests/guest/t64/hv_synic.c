/* Hyper-V SynIC (TLFS 11) with QEMU's hyperv-testdev, as kvm-unit-tests' hyperv_synic
 * and hyperv_connections check it, on two vCPUs:
 *  - the SynIC MSRs at reset (SVERSION 1, EOM reads 0, SINTs 10000h), SINT vectors below
 *    16 refused unless masked, SVERSION read-only, SIMP/SIEFP pages zeroed when enabled;
 *  - SINT routes from the testdev: each vCPU signals the other's 16 SINTs (vectors
 *    B0h-BFh, auto-EOI on SINTs 3, 8, 10, 14), each arrives once; auto-EOI vectors are
 *    out of service in their handler and do not block the lower ones, the others are in
 *    service until their EOI and hold back vectors of their priority class meanwhile;
 *  - a masked SINT, a SynIC with SCONTROL off and a polled SINT deliver no interrupt;
 *  - message connections: HvPostMessage (slow) to this vCPU and the other lands in slot
 *    "sint" with type, size and payload, one interrupt; to a busy slot: status 0,
 *    MessagePending, no interrupt, the old message kept; a third post meanwhile
 *    INSUFFICIENT_BUFFERS; type cleared + EOM delivers the waiting one; bad sizes and
 *    types (INVALID_PARAMETER), unknown connections, misaligned input; a polled SINT
 *    still gets its message;
 *  - event connections: HvSignalEvent (fast, RDX = connection id) sets flag "connection
 *    id" in the SINT's event flags and interrupts once; again while set: status 0, no
 *    interrupt; the other vCPU's; slow form; unknown connection 12h, reserved bits 3.
 * QEMU TCG has no Hyper-V interface: the test skips there.
 * guest: smp=2 device=hyperv-testdev cpu=max,hv-vpindex,hv-synic name=hv_synic */
/* guest: smp=2 device=hyperv-testdev cpu=kvm64,hv_vpindex,hv_synic name=hv_synic-kvm64 */
#include "rt.h"
#include "hyperv.h"

#define NCPUS 2
#define VEC_BASE 0xb0                 /* SINT i -> vector B0h + i */
#define MSG_SINT 8
#define EVT_SINT 9
#define MSG_VEC 0xc8
#define EVT_VEC 0xc9
#define MSG_CONN(vp) (0x10 + (vp))
#define EVT_CONN(vp) (0x20 + (vp))
#define MSG_TYPE 0x12345678u

static bool is_auto_eoi(int sint) { return sint == 3 || sint == 8 || sint == 10 || sint == 14; }

static struct hv_message *simp[NCPUS];
static u8 *siefp[NCPUS];
static volatile u32 hits[NCPUS][256];
static volatile u32 in_service_bad[NCPUS]; /* a handler that found its vector's ISR bit wrong */
static volatile u8 skip_eoi_vector;        /* the BSP's handler leaves this one in service */
static volatile u8 last_vector[NCPUS];

/* auto-EOI vectors as the SINTs are set at the moment */
static volatile u64 auto_eoi_map[NCPUS][4];

static void isr(struct exc_frame *f)
{
    u32 vp = hv_vp_index() & 1;
    u8 v = (u8)f->vector;
    hits[vp][v]++;
    last_vector[vp] = v;
    bool aeoi = (auto_eoi_map[vp][v / 64] >> (v % 64)) & 1;
    /* an auto-EOI vector left service as it was accepted; the others are in service */
    if (apic_isr_has(v) == aeoi)
        in_service_bad[vp]++;
    if (!aeoi && !(vp == 0 && v == skip_eoi_vector))
        apic_eoi();
}

static void set_sint(int sint, u64 value)
{
    u32 vp = hv_vp_index() & 1;
    u8 v = (u8)value;
    wrmsr(HV_X64_MSR_SINT(sint), value);
    if ((value & HV_SINT_AUTO_EOI) && !(value & HV_SINT_MASKED))
        auto_eoi_map[vp][v / 64] |= BIT(v % 64);
    else
        auto_eoi_map[vp][v / 64] &= ~BIT(v % 64);
}

/* Take what is pending at this vCPU's LAPIC. */
static void take_interrupts(void)
{
    for (int i = 0; i < 4; i++)
        asm volatile("sti; nop; nop; cli" ::: "memory");
}

/* ---- the AP: commands from the BSP ---- */
enum { AP_IDLE, AP_NOP, AP_SETUP, AP_SIGNAL_BSP, AP_EOM, AP_POST_TO_BSP, AP_CONN_SETUP, AP_TEARDOWN };
static volatile int ap_cmd;
static volatile u64 ap_result;
static u64 ap_post_in_page;

/* The SynIC's initial state and the pages of this vCPU; SINTs 0-15 routed by the testdev. */
static void synic_setup(u32 vp)
{
    simp[vp] = page_alloc();
    siefp[vp] = page_alloc();
    /* enabling a page zeroes it */
    memset(simp[vp], 0xaa, 4096);
    memset(siefp[vp], 0x55, 4096);
    wrmsr(HV_X64_MSR_SIMP, (u64)simp[vp] | 1);
    wrmsr(HV_X64_MSR_SIEFP, (u64)siefp[vp] | 1);
    wrmsr(HV_X64_MSR_SCONTROL, 1);
    for (int i = 0; i < 16; i++) {
        hv_testdev(HV_TESTDEV_SINT_ROUTE_CREATE, vp, i, 0);
        set_sint(i, (VEC_BASE + i) | (is_auto_eoi(i) ? HV_SINT_AUTO_EOI : 0));
    }
}

static void synic_teardown(u32 vp)
{
    for (int i = 0; i < 16; i++) {
        set_sint(i, HV_SINT_MASKED | 0xff);
        hv_testdev(HV_TESTDEV_SINT_ROUTE_DESTROY, vp, i, 0);
    }
}

static u64 post_message(u64 in_gpa, u32 conn, u32 type, u32 size, u64 payload0)
{
    u32 *in = (u32 *)in_gpa;
    memset(in, 0, 256);
    in[0] = conn;
    in[2] = type;
    in[3] = size;
    *(u64 *)(in + 4) = payload0;
    return hv_hypercall(HVCALL_POST_MESSAGE, in_gpa, 0);
}

static void conn_setup(u32 vp)
{
    hv_testdev(HV_TESTDEV_MSG_CONN_CREATE, vp, MSG_SINT, MSG_CONN(vp));
    set_sint(MSG_SINT, MSG_VEC | HV_SINT_AUTO_EOI);
    hv_testdev(HV_TESTDEV_EVT_CONN_CREATE, vp, EVT_SINT, EVT_CONN(vp));
    set_sint(EVT_SINT, EVT_VEC | HV_SINT_AUTO_EOI);
}

static void ap_main(int index)
{
    (void)index;
    u32 vp = hv_vp_index();
    if (vp != 1) /* the checks on the BSP see it */
        in_service_bad[1] += 1000;
    for (;;) {
        int cmd = __atomic_load_n(&ap_cmd, __ATOMIC_SEQ_CST);
        switch (cmd) {
        case AP_IDLE:
            break;
        case AP_NOP:
            break;
        case AP_SETUP:
            hv_hypercall_setup();
            synic_setup(1);
            break;
        case AP_SIGNAL_BSP:
            for (int i = 0; i < 16; i++)
                hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 0, i, 0);
            break;
        case AP_EOM:
            simp[1][MSG_SINT].type = HVMSG_NONE;
            wrmsr(HV_X64_MSR_EOM, 0);
            break;
        case AP_POST_TO_BSP:
            ap_result = post_message(ap_post_in_page, MSG_CONN(0), MSG_TYPE, 8, 0x1000077);
            break;
        case AP_CONN_SETUP:
            synic_teardown(1);
            conn_setup(1);
            break;
        case AP_TEARDOWN:
            set_sint(MSG_SINT, HV_SINT_MASKED | 0xff);
            set_sint(EVT_SINT, HV_SINT_MASKED | 0xff);
            wrmsr(HV_X64_MSR_SCONTROL, 0);
            wrmsr(HV_X64_MSR_SIMP, 0);
            wrmsr(HV_X64_MSR_SIEFP, 0);
            break;
        }
        if (cmd != AP_IDLE)
            __atomic_store_n(&ap_cmd, AP_IDLE, __ATOMIC_SEQ_CST);
        asm volatile("sti; pause; cli" ::: "memory");
    }
}

/* Runs a command on the AP and waits for it; a few NOP rounds after it let the AP pass
 * through interrupt windows, so that anything pending at its LAPIC has been taken. */
static void ap_run(int cmd)
{
    __atomic_store_n(&ap_cmd, cmd, __ATOMIC_SEQ_CST);
    for (u64 i = 0; __atomic_load_n(&ap_cmd, __ATOMIC_SEQ_CST) != AP_IDLE; i++) {
        pause();
        if (i == 2000000000ull)
            panic("the AP does not answer (command %d)", cmd);
    }
    for (int r = 0; r < 3 && cmd != AP_NOP; r++)
        ap_run(AP_NOP);
}

static u32 sum_hits(int vp, int first, int n)
{
    u32 s = 0;
    for (int i = 0; i < n; i++)
        s += hits[vp][first + i];
    return s;
}

static void check_msrs_at_reset(void)
{
    u64 v;
    TEST_EQ(rdmsr(HV_X64_MSR_SVERSION), 1, "SVERSION");
    TEST_EQ(rdmsr(HV_X64_MSR_EOM), 0, "EOM reads 0");
    TEST_EQ(rdmsr(HV_X64_MSR_SIMP), 0, "SIMP at reset");
    TEST_EQ(rdmsr(HV_X64_MSR_SIEFP), 0, "SIEFP at reset");
    bool all_masked = true;
    for (int i = 0; i < 16; i++)
        all_masked &= rdmsr(HV_X64_MSR_SINT(i)) == HV_SINT_MASKED;
    TEST_ASSERT(all_masked, "SINT0-15 read 10000h at reset");
    TEST_EQ(wrmsr_safe(HV_X64_MSR_SVERSION, 1), GP_VECTOR, "SVERSION is read-only (#GP)");
    TEST_EQ(wrmsr_safe(HV_X64_MSR_SINT(0), 0x0f), GP_VECTOR, "SINT vector 15 unmasked: #GP");
    TEST_EQ(wrmsr_safe(HV_X64_MSR_SINT(0), 0x0f | HV_SINT_MASKED), NO_EXCEPTION,
            "SINT vector 15 masked: accepted");
    TEST_EQ(rdmsr_safe(HV_X64_MSR_SINT(0), &v), NO_EXCEPTION, "SINT0 readable");
    TEST_EQ(v, 0x0f | HV_SINT_MASKED, "SINT0 reads back");
    wrmsr(HV_X64_MSR_SINT(0), HV_SINT_MASKED);
}

static bool page_is_zero(const void *p)
{
    const u64 *q = p;
    for (int i = 0; i < 512; i++)
        if (q[i])
            return false;
    return true;
}

/* ---- part 1: SINT routes (hyperv_synic) ---- */
static void test_sint_routes(void)
{
    synic_setup(0);
    TEST_ASSERT(page_is_zero(simp[0]), "SIMP page zeroed when enabled");
    TEST_ASSERT(page_is_zero(siefp[0]), "SIEFP page zeroed when enabled");
    ap_run(AP_SETUP);
    TEST_ASSERT(page_is_zero(simp[1]) && page_is_zero(siefp[1]), "the AP's pages zeroed too");

    /* the BSP signals the AP's 16 SINTs, the AP the BSP's: each vector once */
    for (int i = 0; i < 16; i++)
        hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 1, i, 0);
    ap_run(AP_SIGNAL_BSP);
    take_interrupts();
    for (int vp = 0; vp < NCPUS; vp++) {
        bool each_once = true;
        for (int i = 0; i < 16; i++)
            each_once &= hits[vp][VEC_BASE + i] == 1;
        TEST_ASSERT(each_once, "vCPU %d: each of its 16 SINTs arrived once (%u in all)", vp,
                    sum_hits(vp, VEC_BASE, 16));
        TEST_EQ(in_service_bad[vp], 0, "auto-EOI vectors out of service in their handler, the others in");
    }
    bool isr_clear = true;
    for (int r = 0; r < 8; r++)
        isr_clear &= apic_read(APIC_ISR + 0x10 * r) == 0;
    TEST_ASSERT(isr_clear, "nothing left in service at the BSP");

    /* a non-auto-EOI SINT is in service until its EOI: SINT 5 (B5h) not EOId holds back
     * SINT 1 (B1h, the same priority class); an auto-EOI one (SINT 14, BEh) does not */
    memset((void *)hits, 0, sizeof(hits));
    skip_eoi_vector = VEC_BASE + 5;
    hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 0, 5, 0);
    take_interrupts();
    TEST_EQ(hits[0][VEC_BASE + 5], 1, "SINT 5 taken");
    TEST_ASSERT(apic_isr_has(VEC_BASE + 5), "B5h in service without its EOI");
    hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 0, 1, 0);
    take_interrupts();
    TEST_EQ(hits[0][VEC_BASE + 1], 0, "SINT 1 (B1h) held back while B5h is in service");
    TEST_ASSERT(apic_irr_has(VEC_BASE + 1), "B1h waits in IRR");
    skip_eoi_vector = 0;
    apic_eoi();
    take_interrupts();
    TEST_EQ(hits[0][VEC_BASE + 1], 1, "SINT 1 taken after the EOI of B5h");
    TEST_ASSERT(!apic_isr_has(VEC_BASE + 5) && !apic_isr_has(VEC_BASE + 1), "nothing in service");
    /* an auto-EOI vector taken with interrupts off for the rest: then a lower one */
    hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 0, 14, 0);
    asm volatile("sti; nop; cli" ::: "memory");
    hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 0, 2, 0);
    take_interrupts();
    TEST_EQ(hits[0][VEC_BASE + 14], 1, "auto-EOI SINT 14 (BEh) taken");
    TEST_EQ(hits[0][VEC_BASE + 2], 1, "SINT 2 (B2h) not held back by the auto-EOI BEh");

    /* nothing arrives from a masked SINT, a SynIC turned off or a polled SINT */
    set_sint(6, (VEC_BASE + 6) | HV_SINT_MASKED);
    hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 0, 6, 0);
    take_interrupts();
    TEST_EQ(hits[0][VEC_BASE + 6], 0, "masked SINT: no interrupt");
    TEST_ASSERT(!apic_irr_has(VEC_BASE + 6), "masked SINT: nothing in IRR");
    set_sint(6, VEC_BASE + 6);
    wrmsr(HV_X64_MSR_SCONTROL, 0);
    hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 0, 6, 0);
    take_interrupts();
    TEST_EQ(hits[0][VEC_BASE + 6], 0, "SCONTROL off: no interrupt");
    wrmsr(HV_X64_MSR_SCONTROL, 1);
    set_sint(6, (VEC_BASE + 6) | HV_SINT_POLLING);
    TEST_EQ(rdmsr(HV_X64_MSR_SINT(6)), (VEC_BASE + 6) | HV_SINT_POLLING, "SINT polling bit reads back");
    hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 0, 6, 0);
    take_interrupts();
    TEST_EQ(hits[0][VEC_BASE + 6], 0, "polled SINT: no interrupt");
    set_sint(6, VEC_BASE + 6);
    hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 0, 6, 0);
    take_interrupts();
    TEST_EQ(hits[0][VEC_BASE + 6], 1, "SINT 6 unmasked again: one interrupt");

    /* a destroyed route signals nothing (SINT 7 still unmasked) */
    hv_testdev(HV_TESTDEV_SINT_ROUTE_DESTROY, 0, 7, 0);
    hv_testdev(HV_TESTDEV_SINT_ROUTE_SET_SINT, 0, 7, 0);
    take_interrupts();
    TEST_EQ(hits[0][VEC_BASE + 7], 0, "destroyed route: nothing");
    hv_testdev(HV_TESTDEV_SINT_ROUTE_CREATE, 0, 7, 0);
    synic_teardown(0);
}

/* ---- part 2: connections (hyperv_connections) ---- */
static u64 signal_event_fast(u64 conn)
{
    return hv_hypercall(HVCALL_SIGNAL_EVENT | HV_HYPERCALL_FAST, conn, 0);
}

static u64 evt_word(int vp, u32 conn)
{
    return ((volatile u64 *)(siefp[vp] + EVT_SINT * 256))[conn / 64];
}

static void test_connections(void)
{
    u64 in = (u64)page_alloc();
    ap_post_in_page = (u64)page_alloc();
    conn_setup(0);
    ap_run(AP_CONN_SETUP);
    memset((void *)hits, 0, sizeof(hits));

    TEST_EQ(signal_event_fast(0x1234), HV_STATUS_INVALID_CONNECTION_ID,
            "HvSignalEvent to an unknown connection: INVALID_CONNECTION_ID");

    /* a message to this vCPU */
    struct hv_message *m0 = &simp[0][MSG_SINT], *m1 = &simp[1][MSG_SINT];
    TEST_EQ(post_message(in, MSG_CONN(0), MSG_TYPE, 8, 0x10001), 0, "HvPostMessage to self");
    take_interrupts();
    TEST_EQ(m0->type, MSG_TYPE, "self: message type in slot 8");
    TEST_EQ(m0->payload_size, 8, "self: payload size");
    TEST_EQ(m0->payload[0], 0x10001, "self: payload");
    TEST_EQ(m0->flags, 0, "self: no MessagePending");
    TEST_EQ(hits[0][MSG_VEC], 1, "self: one interrupt");
    m0->type = HVMSG_NONE;
    wrmsr(HV_X64_MSR_EOM, 0);

    /* to the other vCPU */
    TEST_EQ(post_message(in, MSG_CONN(1), MSG_TYPE, 8, 0x20001), 0, "HvPostMessage to the AP");
    ap_run(AP_NOP);
    TEST_EQ(m1->type, MSG_TYPE, "AP: message type in slot 8");
    TEST_EQ(m1->payload_size, 8, "AP: payload size");
    TEST_EQ(m1->payload[0], 0x20001, "AP: payload");
    TEST_EQ(m1->flags, 0, "AP: no MessagePending");
    TEST_EQ(hits[1][MSG_VEC], 1, "AP: one interrupt");
    TEST_EQ(hits[0][MSG_VEC], 1, "not at the BSP");

    /* to the busy slot: accepted, waits */
    TEST_EQ(post_message(in, MSG_CONN(1), MSG_TYPE, 8, 0x20002), 0, "HvPostMessage to a busy slot: 0");
    ap_run(AP_NOP);
    TEST_EQ(m1->payload[0], 0x20001, "busy slot: the first message stays");
    TEST_EQ(m1->flags & HV_MSG_PENDING, HV_MSG_PENDING, "busy slot: MessagePending set");
    TEST_EQ(hits[1][MSG_VEC], 1, "busy slot: no interrupt");
    TEST_EQ(post_message(in, MSG_CONN(1), MSG_TYPE, 8, 0x20003), HV_STATUS_INSUFFICIENT_BUFFERS,
            "a post while one waits: INSUFFICIENT_BUFFERS");
    /* the AP frees the slot: the waiting message comes */
    ap_run(AP_EOM);
    TEST_EQ(m1->type, MSG_TYPE, "after the EOM: the waiting message delivered");
    TEST_EQ(m1->payload[0], 0x20002, "after the EOM: its payload");
    TEST_EQ(m1->flags, 0, "after the EOM: no MessagePending");
    TEST_EQ(hits[1][MSG_VEC], 2, "after the EOM: one interrupt");
    ap_run(AP_EOM);
    ap_run(AP_NOP);
    TEST_EQ(hits[1][MSG_VEC], 2, "nothing more waits");

    /* from the AP to the BSP */
    ap_run(AP_POST_TO_BSP);
    take_interrupts();
    TEST_EQ(ap_result, 0, "HvPostMessage from the AP to the BSP");
    TEST_EQ(m0->type, MSG_TYPE, "BSP: message from the AP");
    TEST_EQ(m0->payload[0], 0x1000077, "BSP: its payload");
    TEST_EQ(hits[0][MSG_VEC], 2, "BSP: one interrupt");
    m0->type = HVMSG_NONE;
    wrmsr(HV_X64_MSR_EOM, 0);

    /* bad posts */
    TEST_EQ(post_message(in, MSG_CONN(0), MSG_TYPE, 241, 1), HV_STATUS_INVALID_PARAMETER,
            "payload size 241: INVALID_PARAMETER");
    TEST_EQ(post_message(in, MSG_CONN(0), 0x80000001u, 8, 1), HV_STATUS_INVALID_PARAMETER,
            "a hypervisor message type (bit 31): INVALID_PARAMETER");
    TEST_EQ(post_message(in, 0x3f, MSG_TYPE, 8, 1), HV_STATUS_INVALID_CONNECTION_ID,
            "HvPostMessage to an unknown connection: INVALID_CONNECTION_ID");
    TEST_EQ(hv_hypercall(HVCALL_POST_MESSAGE, in + 4, 0), HV_STATUS_INVALID_ALIGNMENT,
            "HvPostMessage input not 8-byte aligned: INVALID_ALIGNMENT");
    take_interrupts();
    TEST_EQ(m0->type, HVMSG_NONE, "no message from the bad posts");
    TEST_EQ(hits[0][MSG_VEC], 2, "no interrupt from the bad posts");
    TEST_EQ(post_message(in, MSG_CONN(0), MSG_TYPE, 240, 0x77), 0, "payload size 240 accepted");
    take_interrupts();
    TEST_EQ(m0->payload_size, 240, "240-byte payload delivered");
    TEST_EQ(hits[0][MSG_VEC], 3, "one interrupt");
    m0->type = HVMSG_NONE;
    wrmsr(HV_X64_MSR_EOM, 0);

    /* a polled SINT: the message lands, no interrupt */
    set_sint(MSG_SINT, MSG_VEC | HV_SINT_AUTO_EOI | HV_SINT_POLLING);
    TEST_EQ(post_message(in, MSG_CONN(0), MSG_TYPE, 8, 0x10002), 0, "HvPostMessage to a polled SINT");
    take_interrupts();
    TEST_EQ(m0->type, MSG_TYPE, "polled SINT: the message lands");
    TEST_EQ(m0->payload[0], 0x10002, "polled SINT: its payload");
    TEST_EQ(hits[0][MSG_VEC], 3, "polled SINT: no interrupt");
    m0->type = HVMSG_NONE;
    wrmsr(HV_X64_MSR_EOM, 0);
    set_sint(MSG_SINT, MSG_VEC | HV_SINT_AUTO_EOI);

    /* events */
    TEST_EQ(signal_event_fast(EVT_CONN(0)), 0, "HvSignalEvent to self");
    take_interrupts();
    TEST_EQ(evt_word(0, EVT_CONN(0)), BIT(EVT_CONN(0) % 64), "self: exactly flag 20h set");
    TEST_EQ(hits[0][EVT_VEC], 1, "self: one interrupt");
    TEST_EQ(signal_event_fast(EVT_CONN(0)), 0, "HvSignalEvent while the flag is set: 0");
    take_interrupts();
    TEST_EQ(hits[0][EVT_VEC], 1, "flag already set: no interrupt");
    ((volatile u64 *)(siefp[0] + EVT_SINT * 256))[0] = 0;

    TEST_EQ(signal_event_fast(EVT_CONN(1)), 0, "HvSignalEvent to the AP");
    ap_run(AP_NOP);
    TEST_EQ(evt_word(1, EVT_CONN(1)), BIT(EVT_CONN(1) % 64), "AP: exactly flag 21h set");
    TEST_EQ(hits[1][EVT_VEC], 1, "AP: one interrupt");
    TEST_EQ(hits[0][EVT_VEC], 1, "not at the BSP");
    TEST_EQ(signal_event_fast(EVT_CONN(1)), 0, "HvSignalEvent to the AP again");
    ap_run(AP_NOP);
    TEST_EQ(hits[1][EVT_VEC], 1, "AP: flag already set, no interrupt");
    ((volatile u64 *)(siefp[1] + EVT_SINT * 256))[0] = 0;

    /* the slow form: the connection id in memory */
    *(u64 *)in = EVT_CONN(0);
    TEST_EQ(hv_hypercall(HVCALL_SIGNAL_EVENT, in, 0), 0, "HvSignalEvent, slow");
    take_interrupts();
    TEST_EQ(evt_word(0, EVT_CONN(0)), BIT(EVT_CONN(0) % 64), "slow: the flag");
    TEST_EQ(hits[0][EVT_VEC], 2, "slow: one interrupt");
    ((volatile u64 *)(siefp[0] + EVT_SINT * 256))[0] = 0;
    TEST_EQ(hv_hypercall(HVCALL_SIGNAL_EVENT, in + 4, 0), HV_STATUS_INVALID_ALIGNMENT,
            "HvSignalEvent slow, misaligned: INVALID_ALIGNMENT");

    TEST_EQ(signal_event_fast(0x3f), HV_STATUS_INVALID_CONNECTION_ID,
            "HvSignalEvent to an unknown connection: INVALID_CONNECTION_ID");
    TEST_EQ(signal_event_fast(MSG_CONN(0)), HV_STATUS_INVALID_CONNECTION_ID,
            "HvSignalEvent to a message connection: INVALID_CONNECTION_ID");
    TEST_EQ(signal_event_fast(EVT_CONN(0) | BIT(24)), HV_STATUS_INVALID_HYPERCALL_INPUT,
            "HvSignalEvent, reserved bits 31:24: INVALID_HYPERCALL_INPUT");
    TEST_EQ(signal_event_fast(EVT_CONN(0) | BIT(48)), HV_STATUS_INVALID_HYPERCALL_INPUT,
            "HvSignalEvent, reserved bits 63:48: INVALID_HYPERCALL_INPUT");
    take_interrupts();
    TEST_EQ(evt_word(0, EVT_CONN(0)), 0, "no flag from the refused calls");
    TEST_EQ(hits[0][EVT_VEC], 2, "no interrupt from the refused calls");

    /* after the connections go, they are unknown */
    hv_testdev(HV_TESTDEV_MSG_CONN_DESTROY, 0, 0, MSG_CONN(0));
    hv_testdev(HV_TESTDEV_EVT_CONN_DESTROY, 0, 0, EVT_CONN(0));
    TEST_EQ(post_message(in, MSG_CONN(0), MSG_TYPE, 8, 1), HV_STATUS_INVALID_CONNECTION_ID,
            "destroyed message connection: INVALID_CONNECTION_ID");
    TEST_EQ(signal_event_fast(EVT_CONN(0)), HV_STATUS_INVALID_CONNECTION_ID,
            "destroyed event connection: INVALID_CONNECTION_ID");
    hv_testdev(HV_TESTDEV_MSG_CONN_DESTROY, 0, 0, MSG_CONN(1));
    hv_testdev(HV_TESTDEV_EVT_CONN_DESTROY, 0, 0, EVT_CONN(1));
    set_sint(MSG_SINT, HV_SINT_MASKED | 0xff);
    set_sint(EVT_SINT, HV_SINT_MASKED | 0xff);
    ap_run(AP_TEARDOWN);
    wrmsr(HV_X64_MSR_SCONTROL, 0);
    wrmsr(HV_X64_MSR_SIMP, 0);
    wrmsr(HV_X64_MSR_SIEFP, 0);
}

void test_main(void)
{
    if (!hv_require())
        return;
    TEST_ASSERT(cpuid(0x40000003).a & BIT(2), "CPUID 40000003h: SynIC MSRs available");
    apic_enable();
    for (int v = VEC_BASE; v < VEC_BASE + 16; v++)
        exc_set_handler(v, isr);
    exc_set_handler(MSG_VEC, isr);
    exc_set_handler(EVT_VEC, isr);
    hv_hypercall_setup();
    TEST_EQ(hv_vp_index(), 0, "VP_INDEX of the BSP");
    check_msrs_at_reset();
    TEST_EQ(smp_start(ap_main, 1, 2000000), 1, "vCPU 1 up");
    ap_run(AP_NOP);
    TEST_EQ(in_service_bad[1], 0, "VP_INDEX of the AP is 1 (errors seen)");
    test_sint_routes();
    test_connections();
}

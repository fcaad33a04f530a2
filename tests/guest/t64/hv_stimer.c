/* Hyper-V synthetic timers (TLFS 12.3), as kvm-unit-tests' hyperv_stimer checks them and
 * more, on the reference time (TIME_REF_COUNT, 100 ns):
 *  - two periodic 1 ms timers in message mode, on an EOId SINT (2, F1h) and an auto-EOI
 *    one (3, F2h), fire at their rate over 50 ms, on their period's grid, the first one
 *    period after the CONFIG write;
 *  - the message: type 80000010h, size 24, flags and sender 0, the timer index, the
 *    expiration time (the scheduled reference time) and a delivery time not before it;
 *  - a one-shot fires once at COUNT and clears its enable bit; one in the past at once;
 *  - auto-enable: writing COUNT enables (one-shot and periodic); COUNT 0 disables; CONFIG
 *    enabled while COUNT is 0 (Linux's order) waits for COUNT; SINTx 0 in message mode
 *    leaves the timer disabled;
 *  - a busy slot: the expiry sets MessagePending and waits; type cleared + EOM delivers;
 *  - direct mode: the APIC vector and no message (one-shot and periodic); without
 *    hv-stimer-direct such a CONFIG #GPs; reserved CONFIG bits #GP;
 *  - the AP's timers are its own.
 * With -icount the counts and latencies are exact: tighter bounds.
 * QEMU TCG has no Hyper-V interface: the test skips there.
 * guest: smp=2 cpu=max,hv-vpindex,hv-time,hv-synic,hv-stimer,hv-stimer-direct name=hv_stimer */
/* guest: smp=2 icount=yes cpu=max,hv-vpindex,hv-time,hv-synic,hv-stimer,hv-stimer-direct name=hv_stimer-icount */
/* guest: smp=2 cpu=max,hv-vpindex,hv-time,hv-synic,hv-stimer name=hv_stimer-nodirect */
/* guest: smp=2 device=hyperv-testdev cpu=kvm64,hv_vpindex,hv_time,hv_synic,hv_stimer name=hv_stimer-kvm64 */
#include "rt.h"
#include "hyperv.h"

#define NCPUS 2
#define SINT_EOI 2        /* vector F1h, EOId by the handler */
#define SINT_AEOI 3       /* vector F2h, auto-EOI */
#define VEC_EOI 0xf1
#define VEC_AEOI 0xf2
#define VEC_SINT0 0xf3
#define VEC_DIRECT 0xe0
#define MS 10000ull       /* reference time units per millisecond */

static bool icount;
static struct hv_message *simp[NCPUS];

/* what the handlers saw, per vCPU and timer */
struct rec {
    u32 n;
    u64 first_exp, last_exp, last_deliv, max_latency, seen_at;
    u32 bad_type, bad_layout, bad_order, bad_grid;
};
static volatile struct rec recs[NCPUS][4];
static volatile u64 period_of[NCPUS][4];   /* periodic: the grid the expirations follow */
static volatile u32 spurious[NCPUS];       /* a SINT interrupt with an empty slot */
static volatile u32 direct_hits[NCPUS], sint0_hits[NCPUS];
static volatile u64 direct_at[NCPUS];

static void msg_isr(struct exc_frame *f)
{
    u32 vp = hv_vp_index() & 1;
    int sint = f->vector == VEC_EOI ? SINT_EOI : SINT_AEOI;
    volatile struct hv_message *m = &simp[vp][sint];
    u64 now = hv_ref_time();
    if (m->type == HVMSG_NONE) {
        spurious[vp]++;
    } else {
        u32 idx = (u32)m->payload[0] & 3;
        volatile struct rec *r = &recs[vp][idx];
        u64 exp = m->payload[1], deliv = m->payload[2];
        if (m->type != HVMSG_TIMER_EXPIRED)
            r->bad_type++;
        if (m->payload_size != 24 || (m->payload[0] >> 2) != 0 || m->sender != 0 ||
            (m->flags & ~HV_MSG_PENDING) != 0)
            r->bad_layout++;
        if (deliv < exp || now < deliv)
            r->bad_order++;
        u64 p = period_of[vp][idx];
        if (r->n && p && (exp <= r->last_exp || (exp - r->last_exp) % p))
            r->bad_grid++;
        if (!r->n)
            r->first_exp = exp;
        if (deliv - exp > r->max_latency)
            r->max_latency = deliv - exp;
        r->last_exp = exp, r->last_deliv = deliv, r->seen_at = now;
        r->n++;
        bool pending = m->flags & HV_MSG_PENDING;
        m->type = HVMSG_NONE;
        asm volatile("mfence" ::: "memory");
        if (pending)
            wrmsr(HV_X64_MSR_EOM, 0);
    }
    if (f->vector == VEC_EOI)
        apic_eoi();
}

static void direct_isr(struct exc_frame *f)
{
    (void)f;
    u32 vp = hv_vp_index() & 1;
    direct_hits[vp]++;
    direct_at[vp] = hv_ref_time();
    apic_eoi();
}

static void sint0_isr(struct exc_frame *f)
{
    (void)f;
    sint0_hits[hv_vp_index() & 1]++;
    apic_eoi();
}

/* interrupts on until the reference time reaches end */
static void wait_until(u64 end)
{
    while (hv_ref_time() < end)
        asm volatile("sti; pause; cli" ::: "memory");
}

static void wait_ms(u64 ms)
{
    wait_until(hv_ref_time() + ms * MS);
}

/* interrupts on until *n reaches want (200 ms at most: a loaded host may run a real-time
 * guest late) */
static void wait_for(volatile u32 *n, u32 want)
{
    u64 end = hv_ref_time() + 200 * MS;
    while (*n < want && hv_ref_time() < end)
        asm volatile("sti; pause; cli" ::: "memory");
}

static void reset_recs(u32 vp)
{
    memset((void *)recs[vp], 0, sizeof(recs[vp]));
    memset((void *)period_of[vp], 0, sizeof(period_of[vp]));
    spurious[vp] = direct_hits[vp] = sint0_hits[vp] = 0;
}

static void stop(int t)
{
    wrmsr(HV_X64_MSR_STIMER_CONFIG(t), 0);
    wrmsr(HV_X64_MSR_STIMER_COUNT(t), 0);
}

static void synic_setup(u32 vp)
{
    simp[vp] = page_alloc();
    wrmsr(HV_X64_MSR_SIMP, (u64)simp[vp] | 1);
    wrmsr(HV_X64_MSR_SCONTROL, 1);
    wrmsr(HV_X64_MSR_SINT(SINT_EOI), VEC_EOI);
    wrmsr(HV_X64_MSR_SINT(SINT_AEOI), VEC_AEOI | HV_SINT_AUTO_EOI);
}

/* ---- the AP: runs its own periodic timer when asked ---- */
static volatile int ap_cmd, ap_done;
static volatile u64 ap_start, ap_stop;

static void ap_main(int index)
{
    (void)index;
    synic_setup(1);
    while (!__atomic_load_n(&ap_cmd, __ATOMIC_SEQ_CST))
        asm volatile("sti; pause; cli" ::: "memory");
    period_of[1][0] = MS;
    wrmsr(HV_X64_MSR_STIMER_COUNT(0), MS);
    ap_start = hv_ref_time();
    wrmsr(HV_X64_MSR_STIMER_CONFIG(0), HV_STIMER_ENABLE | HV_STIMER_PERIODIC | HV_STIMER_SINT(SINT_EOI));
    wait_until(ap_start + 20 * MS);
    stop(0);
    ap_stop = hv_ref_time();
    wait_ms(2);
    __atomic_store_n(&ap_done, 1, __ATOMIC_SEQ_CST);
    for (;;)
        asm volatile("sti; hlt; cli");
}

/* the number of expirations of a period in [start, stop]: exact with -icount (one less
 * if the last one was due as the timer stopped); in real time no more than that, and at
 * least one (a host that runs the guest late skips periods, as it must: the exact rate
 * is the -icount run's to check) */
static void check_count(u32 n, u64 start, u64 stop_at, u64 period, const char *what)
{
    u64 want = (stop_at - start) / period;
    if (icount)
        TEST_ASSERT(n + 1 >= want && n <= want, "%s: %u expirations, want %llu (-icount)", what, n,
                    (unsigned long long)want);
    else
        TEST_ASSERT(n >= 1 && n <= want + 1, "%s: %u expirations, want about %llu", what, n,
                    (unsigned long long)want);
}

static void check_clean(u32 vp, int t, const char *what)
{
    volatile struct rec *r = &recs[vp][t];
    TEST_ASSERT(!r->bad_type && !r->bad_layout && !r->bad_order && !r->bad_grid,
                "%s: messages well-formed (type %u, layout %u, delivery before expiry %u, off "
                "the grid %u)", what, r->bad_type, r->bad_layout, r->bad_order, r->bad_grid);
}

static void test_periodic(void)
{
    reset_recs(0);
    period_of[0][0] = period_of[0][1] = MS;
    wrmsr(HV_X64_MSR_STIMER_COUNT(0), MS);
    wrmsr(HV_X64_MSR_STIMER_COUNT(1), MS);
    u64 t0 = hv_ref_time();
    wrmsr(HV_X64_MSR_STIMER_CONFIG(0), HV_STIMER_ENABLE | HV_STIMER_PERIODIC | HV_STIMER_SINT(SINT_EOI));
    wrmsr(HV_X64_MSR_STIMER_CONFIG(1), HV_STIMER_ENABLE | HV_STIMER_PERIODIC | HV_STIMER_SINT(SINT_AEOI));
    u64 t1 = hv_ref_time();
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(0)),
            HV_STIMER_ENABLE | HV_STIMER_PERIODIC | HV_STIMER_SINT(SINT_EOI), "periodic CONFIG reads back");
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_COUNT(0)), MS, "periodic COUNT reads back");
    wait_until(t0 + 50 * MS);
    stop(0);
    stop(1);
    u64 t2 = hv_ref_time();
    wait_ms(1);
    check_count(recs[0][0].n, t1, t2, MS, "timer 0, 1 ms on SINT 2 (EOI)");
    check_count(recs[0][1].n, t1, t2, MS, "timer 1, 1 ms on SINT 3 (auto-EOI)");
    check_clean(0, 0, "timer 0");
    check_clean(0, 1, "timer 1");
    TEST_ASSERT(recs[0][0].first_exp >= t0 + MS && recs[0][0].first_exp <= t1 + MS,
                "first expiry one period after CONFIG (%llu in [%llu, %llu])",
                (unsigned long long)recs[0][0].first_exp, (unsigned long long)(t0 + MS),
                (unsigned long long)(t1 + MS));
    if (icount)
        TEST_ASSERT(recs[0][0].max_latency < 200 && recs[0][1].max_latency < 200,
                    "-icount: delivered within 20 us of expiry (%llu, %llu)",
                    (unsigned long long)recs[0][0].max_latency, (unsigned long long)recs[0][1].max_latency);
    TEST_EQ(spurious[0], 0, "no SINT interrupt without a message");
    u32 n0 = recs[0][0].n, n1 = recs[0][1].n;
    wait_ms(3);
    TEST_ASSERT(recs[0][0].n == n0 && recs[0][1].n == n1, "CONFIG 0 stops them");
    TEST_ASSERT(!apic_isr_has(VEC_EOI) && !apic_isr_has(VEC_AEOI), "nothing left in service");
}

/* a one-shot with interrupts off: the message in the slot as the timer left it */
static void test_message_layout(void)
{
    reset_recs(0);
    u64 due = hv_ref_time() + MS;
    wrmsr(HV_X64_MSR_STIMER_COUNT(2), due);
    wrmsr(HV_X64_MSR_STIMER_CONFIG(2), HV_STIMER_ENABLE | HV_STIMER_SINT(SINT_EOI));
    volatile struct hv_message *m = &simp[0][SINT_EOI];
    while (m->type == HVMSG_NONE && hv_ref_time() < due + 100 * MS)
        pause();
    u64 now = hv_ref_time();
    TEST_EQ(m->type, HVMSG_TIMER_EXPIRED, "one-shot: HVMSG_TIMER_EXPIRED in slot 2");
    TEST_EQ(m->payload_size, 24, "payload size 24");
    TEST_EQ(m->flags, 0, "flags 0");
    TEST_EQ(m->sender, 0, "sender 0");
    TEST_EQ((u32)m->payload[0], 2, "timer index 2");
    TEST_EQ(m->payload[0] >> 32, 0, "reserved 0");
    TEST_EQ(m->payload[1], due, "expiration time = COUNT");
    TEST_ASSERT(m->payload[2] >= due && m->payload[2] <= now, "delivery time %llu in [%llu, %llu]",
                (unsigned long long)m->payload[2], (unsigned long long)due, (unsigned long long)now);
    TEST_ASSERT(apic_irr_has(VEC_EOI), "its vector pending");
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(2)), HV_STIMER_SINT(SINT_EOI), "one-shot: enable bit cleared");
    wait_ms(3);
    TEST_EQ(recs[0][2].n, 1, "one-shot fired once");
    check_clean(0, 2, "one-shot");
    stop(2);
}

static void test_one_shot(void)
{
    /* in the past: at once */
    reset_recs(0);
    u64 now = hv_ref_time(), due = now - 5 * MS;
    wrmsr(HV_X64_MSR_STIMER_COUNT(0), due);
    wrmsr(HV_X64_MSR_STIMER_CONFIG(0), HV_STIMER_ENABLE | HV_STIMER_SINT(SINT_AEOI));
    wait_for(&recs[0][0].n, 1);
    TEST_EQ(recs[0][0].n, 1, "one-shot in the past fired");
    TEST_EQ(recs[0][0].first_exp, due, "its expiration time = COUNT");
    TEST_ASSERT(recs[0][0].seen_at - now < (icount ? MS / 10 : 50 * MS),
                "at once (%llu units after CONFIG)", (unsigned long long)(recs[0][0].seen_at - now));
    wait_ms(2);
    TEST_EQ(recs[0][0].n, 1, "and once only");
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(0)) & HV_STIMER_ENABLE, 0, "enable cleared");
    check_clean(0, 0, "one-shot in the past");

    /* auto-enable one-shot: CONFIG first, COUNT enables */
    reset_recs(0);
    wrmsr(HV_X64_MSR_STIMER_CONFIG(3), HV_STIMER_AUTO_ENABLE | HV_STIMER_SINT(SINT_EOI));
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(3)), HV_STIMER_AUTO_ENABLE | HV_STIMER_SINT(SINT_EOI),
            "auto-enable CONFIG: not enabled yet");
    wait_ms(2);
    TEST_EQ(recs[0][3].n, 0, "auto-enable: nothing before COUNT");
    due = hv_ref_time() + MS;
    wrmsr(HV_X64_MSR_STIMER_COUNT(3), due);
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(3)),
            HV_STIMER_AUTO_ENABLE | HV_STIMER_ENABLE | HV_STIMER_SINT(SINT_EOI), "COUNT write enabled it");
    wait_for(&recs[0][3].n, 1);
    wait_ms(1);
    TEST_EQ(recs[0][3].n, 1, "auto-enable one-shot fired once");
    TEST_EQ(recs[0][3].first_exp, due, "at COUNT");
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(3)) & HV_STIMER_ENABLE, 0, "then disabled");
    check_clean(0, 3, "auto-enable one-shot");
    stop(3);

    /* auto-enable periodic; COUNT 0 disables */
    reset_recs(0);
    period_of[0][1] = MS;
    wrmsr(HV_X64_MSR_STIMER_CONFIG(1), HV_STIMER_AUTO_ENABLE | HV_STIMER_PERIODIC | HV_STIMER_SINT(SINT_AEOI));
    u64 t0 = hv_ref_time();
    wrmsr(HV_X64_MSR_STIMER_COUNT(1), MS);
    wait_until(t0 + 20 * MS);
    wrmsr(HV_X64_MSR_STIMER_COUNT(1), 0);
    u64 t1 = hv_ref_time();
    check_count(recs[0][1].n, t0, t1, MS, "auto-enable periodic");
    check_clean(0, 1, "auto-enable periodic");
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(1)) & HV_STIMER_ENABLE, 0, "COUNT 0 clears enable");
    wait_ms(1);
    u32 n = recs[0][1].n;
    wait_ms(5);
    TEST_EQ(recs[0][1].n, n, "COUNT 0: no more expirations");
    stop(1);

    /* enabled with COUNT 0 (Linux: CONFIG at set-up, COUNT per event): waits for COUNT */
    reset_recs(0);
    wrmsr(HV_X64_MSR_STIMER_COUNT(0), 0);
    TEST_EQ(wrmsr_safe(HV_X64_MSR_STIMER_CONFIG(0), HV_STIMER_ENABLE | HV_STIMER_SINT(SINT_EOI)),
            NO_EXCEPTION, "CONFIG enabled with COUNT 0: no #GP");
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(0)), HV_STIMER_ENABLE | HV_STIMER_SINT(SINT_EOI),
            "CONFIG reads back enabled");
    wait_ms(3);
    TEST_EQ(recs[0][0].n, 0, "COUNT 0: does not fire");
    due = hv_ref_time() + MS;
    wrmsr(HV_X64_MSR_STIMER_COUNT(0), due);
    wait_for(&recs[0][0].n, 1);
    wait_ms(1);
    TEST_EQ(recs[0][0].n, 1, "fires once COUNT is written");
    TEST_EQ(recs[0][0].first_exp, due, "at COUNT");
    stop(0);

    /* SINTx 0 in message mode: stays disabled */
    reset_recs(0);
    wrmsr(HV_X64_MSR_SINT(0), VEC_SINT0);
    wrmsr(HV_X64_MSR_STIMER_COUNT(0), MS);
    wrmsr(HV_X64_MSR_STIMER_CONFIG(0), HV_STIMER_ENABLE | HV_STIMER_PERIODIC | HV_STIMER_SINT(0));
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(0)) & HV_STIMER_ENABLE, 0, "SINTx 0: enable bit not kept");
    wait_ms(3);
    TEST_EQ(recs[0][0].n + sint0_hits[0], 0, "SINTx 0: nothing fires");
    TEST_EQ(simp[0][0].type, HVMSG_NONE, "SINTx 0: slot 0 empty");
    wrmsr(HV_X64_MSR_SINT(0), HV_SINT_MASKED);
    stop(0);
}

static void test_busy_slot(void)
{
    reset_recs(0);
    volatile struct hv_message *m = &simp[0][SINT_EOI];
    m->payload[0] = 0x77;                  /* timer index 0x77: not a timer's */
    m->payload_size = 24;
    m->type = HVMSG_TIMER_EXPIRED;
    u64 due = hv_ref_time() + MS;
    wrmsr(HV_X64_MSR_STIMER_COUNT(0), due);
    wrmsr(HV_X64_MSR_STIMER_CONFIG(0), HV_STIMER_ENABLE | HV_STIMER_SINT(SINT_EOI));
    /* interrupts on: none comes */
    for (u64 end = hv_ref_time() + 200 * MS; hv_ref_time() < end && !(m->flags & HV_MSG_PENDING);)
        asm volatile("sti; pause; cli" ::: "memory");
    wait_ms(1);
    TEST_EQ(recs[0][0].n + spurious[0], 0, "busy slot: no expiry delivered");
    TEST_EQ(m->payload[0], 0x77, "busy slot: the slot's message kept");
    TEST_EQ(m->flags & HV_MSG_PENDING, HV_MSG_PENDING, "busy slot: MessagePending set");
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(0)) & HV_STIMER_ENABLE, HV_STIMER_ENABLE,
            "busy slot: the timer waits, still enabled");
    wait_ms(2);
    TEST_EQ(recs[0][0].n, 0, "busy slot: still waiting");
    u64 t_eom = hv_ref_time();
    m->type = HVMSG_NONE;
    wrmsr(HV_X64_MSR_EOM, 0);
    wait_for(&recs[0][0].n, 1);
    TEST_EQ(recs[0][0].n, 1, "after the EOM: the expiry delivered");
    TEST_EQ(recs[0][0].first_exp, due, "its expiration time");
    TEST_ASSERT(recs[0][0].last_deliv >= t_eom, "delivered after the EOM");
    check_clean(0, 0, "the waiting expiry");
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(0)) & HV_STIMER_ENABLE, 0, "then disabled (one-shot)");
    wait_ms(2);
    TEST_EQ(recs[0][0].n, 1, "delivered once");
    stop(0);
}

static bool slots_empty(void)
{
    for (int s = 0; s < 16; s++)
        if (simp[0][s].type != HVMSG_NONE)
            return false;
    return true;
}

static void test_direct(bool have_direct)
{
    u64 cfg = HV_STIMER_ENABLE | HV_STIMER_DIRECT | HV_STIMER_VECTOR(VEC_DIRECT);
    TEST_EQ(!!(cpuid(0x40000003).d & BIT(19)), have_direct, "CPUID 40000003h EDX bit 19 (direct mode)");
    if (!have_direct) {
        wrmsr(HV_X64_MSR_STIMER_COUNT(1), hv_ref_time() + MS);
        TEST_EQ(wrmsr_safe(HV_X64_MSR_STIMER_CONFIG(1), cfg), GP_VECTOR,
                "direct mode without hv-stimer-direct: #GP");
        TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(1)), 0, "CONFIG unchanged");
        wait_ms(3);
        TEST_EQ(direct_hits[0], 0, "no direct interrupt");
        stop(1);
        return;
    }
    reset_recs(0);
    u64 due = hv_ref_time() + MS;
    wrmsr(HV_X64_MSR_STIMER_COUNT(1), due);
    wrmsr(HV_X64_MSR_STIMER_CONFIG(1), cfg);
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(1)), cfg, "direct CONFIG reads back");
    wait_for(&direct_hits[0], 1);
    wait_ms(2);
    TEST_EQ(direct_hits[0], 1, "direct one-shot: one interrupt at its vector");
    TEST_ASSERT(direct_at[0] >= due, "not before COUNT");
    TEST_ASSERT(slots_empty() && recs[0][1].n == 0 && spurious[0] == 0, "direct: no message");
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(1)), cfg & ~HV_STIMER_ENABLE, "direct one-shot: enable cleared");
    /* periodic, 2 ms */
    reset_recs(0);
    wrmsr(HV_X64_MSR_STIMER_COUNT(1), 2 * MS);
    u64 t0 = hv_ref_time();
    wrmsr(HV_X64_MSR_STIMER_CONFIG(1), cfg | HV_STIMER_PERIODIC);
    wait_until(t0 + 30 * MS);
    stop(1);
    u64 t1 = hv_ref_time();
    check_count(direct_hits[0], t0, t1, 2 * MS, "direct periodic 2 ms");
    TEST_ASSERT(slots_empty() && spurious[0] == 0, "direct periodic: no message");
    wait_ms(3);
    TEST_ASSERT(!apic_isr_has(VEC_DIRECT), "direct vector not left in service");
}

static void test_reserved(void)
{
    static const u64 bad[] = { BIT(13), BIT(14), BIT(15), BIT(20), BIT(31), BIT(32), BIT(63) };
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
        TEST_EQ(wrmsr_safe(HV_X64_MSR_STIMER_CONFIG(2), HV_STIMER_SINT(SINT_EOI) | bad[i]), GP_VECTOR,
                "reserved CONFIG bit: #GP");
    TEST_EQ(rdmsr(HV_X64_MSR_STIMER_CONFIG(2)), 0, "CONFIG unchanged by the refused writes");
    TEST_EQ(wrmsr_safe(HV_X64_MSR_STIMER_CONFIG(2), HV_STIMER_LAZY | HV_STIMER_SINT(SINT_EOI)),
            NO_EXCEPTION, "the lazy bit is not reserved");
    stop(2);
}

static void test_ap(void)
{
    u32 n0 = recs[0][0].n;
    __atomic_store_n(&ap_cmd, 1, __ATOMIC_SEQ_CST);
    u64 end = hv_ref_time() + 2000 * MS;
    while (!__atomic_load_n(&ap_done, __ATOMIC_SEQ_CST) && hv_ref_time() < end)
        asm volatile("sti; pause; cli" ::: "memory");
    TEST_EQ(ap_done, 1, "the AP ran its timer");
    check_count(recs[1][0].n, ap_start, ap_stop, MS, "the AP's timer 0, 1 ms");
    check_clean(1, 0, "the AP's timer 0");
    TEST_EQ(recs[0][0].n, n0, "the BSP's timer 0 untouched");
}

static bool cmdline_has(const char *key, const char *word)
{
    char buf[256];
    if (!rt_cmdline_value(key, buf, sizeof(buf)))
        return false;
    size_t n = strlen(word);
    for (const char *p = buf; *p; p++)
        if (!strncmp(p, word, n) && (p[n] == 0 || p[n] == ','))
            return true;
    return false;
}

void test_main(void)
{
    if (!hv_require())
        return;
    char buf[8];
    icount = rt_cmdline_value("icount", buf, sizeof(buf));
    bool have_direct = cmdline_has("cpu", "hv-stimer-direct");
    TEST_ASSERT(cpuid(0x40000003).a & BIT(3), "CPUID 40000003h: synthetic timers available");
    apic_enable();
    exc_set_handler(VEC_EOI, msg_isr);
    exc_set_handler(VEC_AEOI, msg_isr);
    exc_set_handler(VEC_DIRECT, direct_isr);
    exc_set_handler(VEC_SINT0, sint0_isr);
    for (int t = 0; t < 4; t++)
        TEST_ASSERT(rdmsr(HV_X64_MSR_STIMER_CONFIG(t)) == 0 && rdmsr(HV_X64_MSR_STIMER_COUNT(t)) == 0,
                    "timer %d: CONFIG and COUNT 0 at reset", t);
    synic_setup(0);
    TEST_EQ(smp_start(ap_main, 1, 2000000), 1, "vCPU 1 up");
    test_periodic();
    test_message_layout();
    test_one_shot();
    test_busy_slot();
    test_direct(have_direct);
    test_reserved();
    test_ap();
}

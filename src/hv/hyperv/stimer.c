/* The synthetic timers (TLFS 12.3): four per VP on the reference time, one-shot (an
 * absolute expiry; one in the past expires at once) and periodic (a period, re-armed on
 * its grid: expirations missed while the message slot was busy are not caught up),
 * delivered as a timer-expired message to a SINT or, in direct mode, as a vector at the
 * LAPIC. A message that finds its slot busy waits for the guest's EOM (or the SINT's
 * EOI); a periodic one is then dropped, as in KVM. */
#include <errno.h>
#include <string.h>

#include "hv/hyperv/hyperv_internal.h"

#define CFG_ENABLE BIT(0)
#define CFG_PERIODIC BIT(1)
#define CFG_LAZY BIT(2)
#define CFG_AUTO_ENABLE BIT(3)
#define CFG_VECTOR(c) ((u8)((c) >> 4))
#define CFG_DIRECT BIT(12)
#define CFG_SINTX(c) ((u8)(((c) >> 16) & 0xf))
#define CFG_RESERVED 0xfffffffffff0e000ull

static void stimer_fire(void *arg, u64 now_ns);

int hv_stimer_create(struct hyperv *hv)
{
    for (int vp = 0; vp < hv->host.ncpus; vp++)
        for (int i = 0; i < HV_STIMER_COUNT; i++) {
            struct hv_stimer *t = &hv->vp[vp].stimer[i];
            t->hv = hv, t->vp = vp, t->index = i;
            t->timer = hv->host.ops->timer_new(hv->host.opaque, stimer_fire, t);
            if (t->timer < 0)
                return -1;
        }
    return 0;
}

static void stimer_stop(struct hv_stimer *t)
{
    t->hv->host.ops->timer_disarm(t->hv->host.opaque, t->timer);
}

void hv_stimer_reset(struct hyperv *hv, int vp)
{
    for (int i = 0; i < HV_STIMER_COUNT; i++) {
        struct hv_stimer *t = &hv->vp[vp].stimer[i];
        if (t->timer >= 0)
            stimer_stop(t);
        t->config = t->count = t->exp_time = 0;
        t->msg_pending = false;
    }
}

/* Delivery of an expiry: 0, or -1 if it must wait (a busy slot, an APIC that does not
 * take it). */
static int stimer_deliver(struct hv_stimer *t)
{
    struct hyperv *hv = t->hv;
    if (t->config & CFG_DIRECT) {
        hv->host.ops->deliver_vector(hv->host.opaque, t->vp, CFG_VECTOR(t->config));
        return 0;
    }
    /* HVMSG_TIMER_EXPIRED: timer index, reserved, expiration time, delivery time */
    u8 msg[HV_MESSAGE_SIZE] = { 0 };
    u32 type = HV_MESSAGE_TIMER_EXPIRED, index = (u32)t->index;
    u64 now = hv_ref_time(hv);
    memcpy(msg, &type, 4);
    msg[4] = 24;
    memcpy(msg + 16, &index, 4);
    memcpy(msg + 24, &t->exp_time, 8);
    memcpy(msg + 32, &now, 8);
    /* a periodic expiry that finds the slot busy is lost, without asking for an EOM */
    bool periodic = (t->config & CFG_PERIODIC) != 0;
    int rc = hv_synic_deliver_message(hv, t->vp, CFG_SINTX(t->config), msg, periodic);
    if (rc == -EAGAIN && periodic)
        return 0;
    return rc == 0 ? 0 : -1;
}

/* The clock timer for the reference time exp_time: when the virtual clock is that many
 * 100 ns units further (the reference time may run a fraction of a unit off the clock:
 * the firing checks it got there, see stimer_fire). */
static void stimer_arm(struct hv_stimer *t, u64 ref_now)
{
    struct hyperv *hv = t->hv;
    u64 now_ns = hv->host.ops->now_ns(hv->host.opaque);
    u64 ahead = t->exp_time > ref_now ? t->exp_time - ref_now : 0;
    u64 deadline = now_ns + (ahead > UINT64_MAX / 100 ? UINT64_MAX - now_ns : ahead * 100);
    hv->host.ops->timer_arm(hv->host.opaque, t->timer, deadline);
}

/* Arms the timer for its next expiry (TLFS 12.3.2-3). */
static void stimer_start(struct hv_stimer *t)
{
    struct hyperv *hv = t->hv;
    u64 now = hv_ref_time(hv);
    if (t->config & CFG_PERIODIC) {
        if (!t->exp_time)
            t->exp_time = now + t->count;
        else if (now >= t->exp_time) /* on the period's grid, missed ones skipped */
            t->exp_time = now + (t->count - (now - t->exp_time) % t->count);
    } else {
        t->exp_time = t->count;
    }
    stimer_arm(t, now);
}

static void stimer_expire(struct hv_stimer *t)
{
    t->msg_pending = true;
    if (stimer_deliver(t) != 0)
        return; /* waits for the EOM */
    t->msg_pending = false;
    if (t->config & CFG_PERIODIC)
        stimer_start(t);
    else
        t->config &= ~CFG_ENABLE;
}

static void stimer_fire(void *arg, u64 now_ns)
{
    (void)now_ns;
    struct hv_stimer *t = arg;
    if (!(t->config & CFG_ENABLE))
        return;
    /* an expiry is never delivered before its reference time (KVM's rule): a fraction of
     * a unit early, the timer waits one more */
    u64 ref = hv_ref_time(t->hv);
    if (ref < t->exp_time) {
        stimer_arm(t, ref);
        return;
    }
    stimer_expire(t);
}

void hv_stimer_retry(struct hyperv *hv, int vp, int sint)
{
    for (int i = 0; i < HV_STIMER_COUNT; i++) {
        struct hv_stimer *t = &hv->vp[vp].stimer[i];
        if (t->msg_pending && (t->config & CFG_ENABLE) && !(t->config & CFG_DIRECT) &&
            (sint < 0 || CFG_SINTX(t->config) == sint))
            stimer_expire(t);
    }
}

/* (Re)configures: any expiry in flight is forgotten, the timer starts anew if enabled. */
static void stimer_update(struct hv_stimer *t)
{
    stimer_stop(t);
    t->msg_pending = false;
    t->exp_time = 0;
    /* enabled with a count of 0, a timer waits for its count (Linux writes the
     * configuration first, then each expiry's count) */
    if ((t->config & CFG_ENABLE) && t->count)
        stimer_start(t);
}

bool hv_stimer_msr_read(struct hyperv *hv, struct cpu *c, u32 index, u64 *value)
{
    struct hv_stimer *t = &hv->vp[c->id].stimer[(index - HV_MSR_STIMER0_CONFIG) / 2];
    *value = (index - HV_MSR_STIMER0_CONFIG) % 2 ? t->count : t->config;
    return true;
}

bool hv_stimer_msr_write(struct hyperv *hv, struct cpu *c, u32 index, u64 value)
{
    struct hv_stimer *t = &hv->vp[c->id].stimer[(index - HV_MSR_STIMER0_CONFIG) / 2];
    if ((index - HV_MSR_STIMER0_CONFIG) % 2) { /* count */
        t->count = value;
        if (!value)
            t->config &= ~CFG_ENABLE;
        else if ((t->config & CFG_AUTO_ENABLE) &&
                 ((t->config & CFG_DIRECT) || CFG_SINTX(t->config) != 0))
            t->config |= CFG_ENABLE; /* not a message-mode timer without a SINT */
        stimer_update(t);
        return true;
    }
    if (value & CFG_RESERVED)
        return false;
    if ((value & CFG_DIRECT) && !hv_has(hv, HV_FEAT_STIMER_DIRECT))
        return false;
    /* a message-mode timer without a SINT is disabled (TLFS 12.3.1: SINTx 0) */
    if (!(value & CFG_DIRECT) && CFG_SINTX(value) == 0)
        value &= ~CFG_ENABLE;
    t->config = value;
    stimer_update(t);
    return true;
}

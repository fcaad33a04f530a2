/* The synthetic interrupt controller (TLFS 11): SCONTROL, SVERSION, the SIEF and SIM
 * pages, EOM, the sixteen SINTs (vector, masked, auto-EOI, polling); message slots with
 * their MessagePending protocol, event flags; HvPostMessage and HvSignalEvent through the
 * host's connections. The pages are guest RAM the guest names (as KVM keeps them), zeroed
 * when enabled. */
#include <errno.h>
#include <string.h>

#include "hv/hyperv/hyperv_internal.h"

#define SCONTROL_ENABLE BIT(0)
#define SINT_VECTOR(v) ((u8)(v))
#define SINT_MASKED BIT(16)
#define SINT_AUTO_EOI BIT(17)
#define SINT_POLLING BIT(18)
#define PAGE_ENABLE 1ull
/* hv_message: message_type (u32), payload_size (u8), message_flags (u8: bit 0
 * MessagePending), reserved (u16), sender/port (u64), payload */
#define MSG_FLAGS_OFF 5
#define MSG_PENDING 1u

void hv_synic_reset(struct hyperv *hv, int vp)
{
    struct hv_vp *v = &hv->vp[vp];
    v->scontrol = v->siefp = v->simp = 0;
    for (int s = 0; s < HV_SINT_COUNT; s++)
        v->sint[s] = SINT_MASKED;
}

static struct guest_mem *hv_mem(struct hyperv *hv)
{
    return hv->host.cpus[0]->mem;
}

/* The SINT's vector goes to the VP's LAPIC, unless the SynIC is off or the SINT masked
 * or polled. */
int hyperv_sint_signal(struct hyperv *hv, int vp, u8 sint)
{
    if (vp < 0 || vp >= hv->host.ncpus || sint >= HV_SINT_COUNT || !hv_has(hv, HV_FEAT_SYNIC))
        return -EINVAL;
    struct hv_vp *v = &hv->vp[vp];
    u64 s = v->sint[sint];
    if (!(v->scontrol & SCONTROL_ENABLE) || (s & SINT_MASKED))
        return -EINVAL;
    if (!(s & SINT_POLLING))
        hv->host.ops->deliver_vector(hv->host.opaque, vp, SINT_VECTOR(s));
    return 0;
}

int hv_synic_deliver_message(struct hyperv *hv, int vp, u8 sint, const u8 msg[HV_MESSAGE_SIZE],
                             bool no_retry)
{
    if (vp < 0 || vp >= hv->host.ncpus || sint >= HV_SINT_COUNT)
        return -EINVAL;
    struct hv_vp *v = &hv->vp[vp];
    if (!(v->scontrol & SCONTROL_ENABLE) || !(v->simp & PAGE_ENABLE))
        return -EINVAL;
    u64 slot = (v->simp & ~0xfffull) + (u64)sint * HV_MESSAGE_SIZE;
    struct guest_mem *m = hv_mem(hv);
    u32 type;
    if (mem_read(m, slot, &type, 4))
        return -EINVAL;
    if (type != 0) {
        /* the slot is busy: MessagePending asks the guest for an EOM when it frees it */
        u8 flags;
        if (no_retry)
            return -EAGAIN;
        if (mem_read(m, slot + MSG_FLAGS_OFF, &flags, 1) == 0) {
            flags |= MSG_PENDING;
            mem_write(m, slot + MSG_FLAGS_OFF, &flags, 1);
        }
        return -EAGAIN;
    }
    /* the payload first and the type last, as the guest reads them in the other order */
    if (mem_write(m, slot + 4, msg + 4, HV_MESSAGE_SIZE - 4) || mem_write(m, slot, msg, 4))
        return -EINVAL;
    hyperv_sint_signal(hv, vp, sint);
    return 0;
}

int hyperv_post_message(struct hyperv *hv, int vp, u8 sint, u32 type, const void *payload, u32 size)
{
    if (size > HV_MESSAGE_PAYLOAD_MAX)
        return -EINVAL;
    u8 msg[HV_MESSAGE_SIZE] = { 0 };
    memcpy(msg, &type, 4);
    msg[4] = (u8)size;
    if (size)
        memcpy(msg + 16, payload, size);
    return hv_synic_deliver_message(hv, vp, sint, msg, false);
}

int hyperv_set_event_flag(struct hyperv *hv, int vp, u8 sint, u16 flag)
{
    if (vp < 0 || vp >= hv->host.ncpus || sint >= HV_SINT_COUNT || flag >= HV_EVENT_FLAGS_PER_SINT)
        return -EINVAL;
    struct hv_vp *v = &hv->vp[vp];
    if (!(v->scontrol & SCONTROL_ENABLE) || !(v->siefp & PAGE_ENABLE))
        return -EINVAL;
    u64 byte = (v->siefp & ~0xfffull) + (u64)sint * (HV_EVENT_FLAGS_PER_SINT / 8) + flag / 8;
    struct guest_mem *m = hv_mem(hv);
    u8 b;
    if (mem_read(m, byte, &b, 1))
        return -EINVAL;
    if (b & (1u << (flag % 8)))
        return 0; /* already set: the guest has yet to see it, no new interrupt */
    b |= (u8)(1u << (flag % 8));
    if (mem_write(m, byte, &b, 1))
        return -EINVAL;
    hyperv_sint_signal(hv, vp, sint);
    return 0;
}

/* ---- MSRs ---- */
bool hv_synic_msr_read(struct hyperv *hv, struct cpu *c, u32 index, u64 *value)
{
    struct hv_vp *v = &hv->vp[c->id];
    switch (index) {
    case HV_MSR_SCONTROL: *value = v->scontrol; return true;
    case HV_MSR_SVERSION: *value = HV_SYNIC_VERSION; return true;
    case HV_MSR_SIEFP: *value = v->siefp; return true;
    case HV_MSR_SIMP: *value = v->simp; return true;
    case HV_MSR_EOM: *value = 0; return true;
    default:
        if (index >= HV_MSR_SINT0 && index <= HV_MSR_SINT15) {
            *value = v->sint[index - HV_MSR_SINT0];
            return true;
        }
        return false;
    }
}

static bool zero_page(struct guest_mem *m, u64 gpa)
{
    static const u8 zeros[4096];
    return mem_write(m, gpa, zeros, sizeof(zeros)) == 0;
}

/* The end of a message (EOM, or a SINT's EOI): what waited for a slot tries again. */
static void hv_synic_retry(struct hyperv *hv, int vp, int sint)
{
    hv_stimer_retry(hv, vp, sint);
    if (hv->sint_ack)
        hv->sint_ack(hv->sint_ack_opaque, vp, sint);
}

void hyperv_set_sint_ack_handler(struct hyperv *hv, hyperv_sint_ack_fn fn, void *opaque)
{
    hv->sint_ack = fn;
    hv->sint_ack_opaque = opaque;
}

bool hv_synic_msr_write(struct hyperv *hv, struct cpu *c, u32 index, u64 value)
{
    struct hv_vp *v = &hv->vp[c->id];
    switch (index) {
    case HV_MSR_SCONTROL:
        v->scontrol = value;
        return true;
    case HV_MSR_SVERSION:
        return false; /* read-only */
    case HV_MSR_SIEFP:
    case HV_MSR_SIMP:
        if ((value & PAGE_ENABLE) && !zero_page(c->mem, value & ~0xfffull))
            return false;
        if (index == HV_MSR_SIEFP)
            v->siefp = value;
        else
            v->simp = value;
        return true;
    case HV_MSR_EOM:
        hv_synic_retry(hv, c->id, -1);
        return true;
    default:
        break;
    }
    if (index < HV_MSR_SINT0 || index > HV_MSR_SINT15)
        return false;
    /* vectors 0-15 are not interrupts: refused unless the SINT is masked (Hyper-V's own
     * default, 10000h, has vector 0) */
    if (SINT_VECTOR(value) < 16 && !(value & SINT_MASKED))
        return false;
    v->sint[index - HV_MSR_SINT0] = value;
    return true;
}

bool hyperv_auto_eoi(struct hyperv *hv, int vcpu, u8 vector)
{
    if (vcpu < 0 || vcpu >= hv->host.ncpus || !hv_has(hv, HV_FEAT_SYNIC))
        return false;
    const struct hv_vp *v = &hv->vp[vcpu];
    for (int s = 0; s < HV_SINT_COUNT; s++)
        if (!(v->sint[s] & SINT_MASKED) && (v->sint[s] & SINT_AUTO_EOI) &&
            SINT_VECTOR(v->sint[s]) == vector)
            return true;
    return false;
}

void hyperv_eoi(struct hyperv *hv, int vcpu, u8 vector)
{
    if (vcpu < 0 || vcpu >= hv->host.ncpus || !hv_has(hv, HV_FEAT_SYNIC))
        return;
    const struct hv_vp *v = &hv->vp[vcpu];
    for (int s = 0; s < HV_SINT_COUNT; s++)
        if (!(v->sint[s] & SINT_MASKED) && SINT_VECTOR(v->sint[s]) == vector)
            hv_synic_retry(hv, vcpu, s);
}

/* ---- connections ---- */
static struct hv_connection *hv_conn_find(struct hyperv *hv, u32 id)
{
    for (int i = 0; i < HV_MAX_CONNECTIONS; i++)
        if (hv->conn[i].used && hv->conn[i].id == id)
            return &hv->conn[i];
    return NULL;
}

static struct hv_connection *hv_conn_new(struct hyperv *hv, u32 id)
{
    if (hv_conn_find(hv, id))
        return NULL;
    for (int i = 0; i < HV_MAX_CONNECTIONS; i++)
        if (!hv->conn[i].used) {
            memset(&hv->conn[i], 0, sizeof(hv->conn[i]));
            hv->conn[i].used = true;
            hv->conn[i].id = id;
            return &hv->conn[i];
        }
    return NULL;
}

int hyperv_msg_connection_add(struct hyperv *hv, u32 connection_id, hyperv_msg_handler fn, void *opaque)
{
    struct hv_connection *k = hv_conn_new(hv, connection_id);
    if (!k)
        return -1;
    k->msg = fn;
    k->opaque = opaque;
    return 0;
}

int hyperv_event_connection_add(struct hyperv *hv, u32 connection_id, int vp, u8 sint, u16 flag)
{
    struct hv_connection *k = hv_conn_new(hv, connection_id);
    if (!k)
        return -1;
    k->vp = vp, k->sint = sint, k->flag = flag;
    return 0;
}

void hyperv_connection_remove(struct hyperv *hv, u32 connection_id)
{
    struct hv_connection *k = hv_conn_find(hv, connection_id);
    if (k)
        k->used = false;
}

/* HvPostMessage's input (TLFS 11.10.1): connection id, reserved, message type, payload
 * size, then 240 bytes of payload */
u16 hv_post_message_hcall(struct hyperv *hv, struct cpu *c, u64 gpa, bool fast)
{
    (void)fast;
    struct {
        u32 connection_id, reserved, message_type, payload_size;
        u8 payload[HV_MESSAGE_PAYLOAD_MAX];
    } in;
    if ((gpa & 0xfff) + sizeof(in) > 4096 || mem_read(c->mem, gpa, &in, sizeof(in)))
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    if (in.payload_size > HV_MESSAGE_PAYLOAD_MAX || (in.message_type & 0x80000000u))
        return HV_STATUS_INVALID_PARAMETER;
    struct hv_connection *k = hv_conn_find(hv, in.connection_id);
    if (!k || !k->msg)
        return HV_STATUS_INVALID_CONNECTION_ID;
    return k->msg(k->opaque, in.connection_id, in.message_type, in.payload, in.payload_size);
}

u16 hv_signal_event_hcall(struct hyperv *hv, struct cpu *c, u32 connection_id, u16 flag)
{
    (void)c;
    struct hv_connection *k = hv_conn_find(hv, connection_id);
    if (!k || k->msg)
        return HV_STATUS_INVALID_CONNECTION_ID;
    /* the flag number is an offset from the connection's first flag (TLFS 11.10.2) */
    u32 f = (u32)k->flag + flag;
    if (f >= HV_EVENT_FLAGS_PER_SINT)
        return HV_STATUS_INVALID_PARAMETER;
    hyperv_set_event_flag(hv, k->vp, k->sint, (u16)f);
    return HV_STATUS_SUCCESS;
}

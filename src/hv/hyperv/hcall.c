/* Hyper-V's hypercall ABI (TLFS 3): the control word, the fast (register, optionally
 * XMM) and slow (guest-physical page) conventions, rep counts and the variable header,
 * the result word; one dispatch table; the TLB-flush, IPI and spin-wait hypercalls. */
#include <string.h>

#include "hv/hyperv/hyperv_internal.h"

/* The control word (TLFS 3.7) */
#define HC_CODE(ctl) ((u16)(ctl))
#define HC_FAST BIT(16)
#define HC_VAR_CNT(ctl) ((u32)((ctl) >> 17) & 0x3ff)
#define HC_REP_CNT(ctl) ((u32)((ctl) >> 32) & 0xfff)
#define HC_REP_IDX(ctl) ((u32)((ctl) >> 48) & 0xfff)
/* RsvdZ: 30:27, 47:44, 63:60 (bit 31, IsNested, names the L0 hypervisor: this one) */
#define HC_RSVD_MASK (0x78000000ull | 0x0000f00000000000ull | 0xf000000000000000ull)

/* Fast input: RDX, R8 and, with XMM fast input, XMM0-XMM5 (TLFS 3.11): 112 bytes */
#define HC_FAST_REGS_BYTES 16u
#define HC_FAST_XMM_BYTES 96u

struct hv_hypercall_desc;
struct hv_call {
    const struct hv_hypercall_desc *desc; /* NULL: an unknown code */
    struct hyperv *hv;
    struct cpu *c;
    u16 code;
    bool fast;
    u32 var_cnt, rep_cnt, rep_idx;
    u64 in_gpa, out_gpa;               /* slow calls */
    u8 fast_in[HC_FAST_REGS_BYTES + HC_FAST_XMM_BYTES];
    u32 fast_len;                      /* bytes of fast input the call may read */
    u32 reps_done;                     /* rep elements done from rep_idx on */
};

/* The one way to a hypercall's input: bytes [off, off+len) of its input, from the
 * registers of a fast call or the input page of a slow one (which may not cross its
 * page: TLFS 3.6). HV_STATUS_SUCCESS or HV_STATUS_INVALID_HYPERCALL_INPUT. */
static u16 hv_input(struct hv_call *k, u32 off, void *buf, u32 len)
{
    if (k->fast) {
        if (off > k->fast_len || len > k->fast_len - off)
            return HV_STATUS_INVALID_HYPERCALL_INPUT;
        memcpy(buf, k->fast_in + off, len);
        return HV_STATUS_SUCCESS;
    }
    if ((k->in_gpa & 0xfff) + off + (u64)len > 4096 ||
        mem_read(k->c->mem, k->in_gpa + off, buf, len))
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    return HV_STATUS_SUCCESS;
}

static u16 hv_input_u64(struct hv_call *k, u32 off, u64 *v)
{
    return hv_input(k, off, v, 8);
}

/* ---- processor sets ---- */
#define HV_GENERIC_SET_SPARSE_4K 0
#define HV_GENERIC_SET_ALL 1
#define HV_MAX_SPARSE_BANKS 64

/* A set of VPs as a bitmap over the partition's (ncpus <= 64 * banks). */
struct hv_vpset {
    bool all;
    u64 bank[HV_MAX_SPARSE_BANKS];
};

static bool vpset_has(const struct hv_vpset *s, int vp)
{
    return s->all || ((s->bank[vp / 64] >> (vp % 64)) & 1);
}

/* An hv_vpset at offset off of the input (format, valid_bank_mask, then var_cnt bank
 * words in the variable header). */
static u16 hv_read_vpset(struct hv_call *k, u32 off, struct hv_vpset *s)
{
    u64 format, valid;
    u16 st;
    memset(s, 0, sizeof(*s));
    if ((st = hv_input_u64(k, off, &format)) || (st = hv_input_u64(k, off + 8, &valid)))
        return st;
    if (format == HV_GENERIC_SET_ALL) {
        s->all = true;
        return HV_STATUS_SUCCESS;
    }
    if (format != HV_GENERIC_SET_SPARSE_4K)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    /* the variable header holds one word per bank of the mask, no more, no less */
    if ((u32)__builtin_popcountll(valid) != k->var_cnt)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    u32 w = 0;
    for (int b = 0; b < 64; b++) {
        if (!((valid >> b) & 1))
            continue;
        if ((st = hv_input_u64(k, off + 16 + 8 * w++, &s->bank[b])))
            return st;
    }
    return HV_STATUS_SUCCESS;
}

/* ---- TLB flushes (TLFS 12.4) ---- */
#define HV_FLUSH_ALL_PROCESSORS BIT(0)
#define HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES BIT(1)
#define HV_FLUSH_NON_GLOBAL_MAPPINGS_ONLY BIT(2)
#define HV_FLUSH_USE_EXTENDED_RANGE_FORMAT BIT(3)
#define HV_FLUSH_FLAGS_VALID 0xfull

/* Every VP of the set loses its translations: nestor flushes the whole TLB, which covers
 * any address space, list or range the guest names (a flush may do more than asked). The
 * rep elements (GVA ranges) are read all the same, so that a list the guest cannot
 * supply fails as it must. */
static u16 hv_flush(struct hv_call *k, bool ex, bool list)
{
    u64 space, flags;
    struct hv_vpset set;
    u16 st;
    if ((st = hv_input_u64(k, 0, &space)) || (st = hv_input_u64(k, 8, &flags)))
        return st;
    (void)space;
    if (flags & ~HV_FLUSH_FLAGS_VALID)
        return HV_STATUS_INVALID_PARAMETER;
    if ((flags & HV_FLUSH_USE_EXTENDED_RANGE_FORMAT) && !hv_has(k->hv, HV_FEAT_TLBFLUSH_EXT))
        return HV_STATUS_INVALID_PARAMETER;
    u32 elems;
    if (!ex) {
        u64 mask;
        if ((st = hv_input_u64(k, 16, &mask)))
            return st;
        memset(&set, 0, sizeof(set));
        set.bank[0] = mask;
        /* an empty mask is every processor: Windows Server 2012 sends it so (KVM) */
        set.all = mask == 0;
        elems = 24;
    } else {
        if ((st = hv_read_vpset(k, 16, &set)))
            return st;
        elems = 32 + 8 * k->var_cnt;
    }
    if (flags & HV_FLUSH_ALL_PROCESSORS)
        set.all = true;
    if (list)
        for (u32 r = k->rep_idx; r < k->rep_cnt; r++) {
            u64 gva;
            if ((st = hv_input_u64(k, elems + 8 * r, &gva)))
                return st;
            k->reps_done = r + 1 - k->rep_idx;
        }
    for (int vp = 0; vp < k->hv->host.ncpus; vp++)
        if (vpset_has(&set, vp))
            k->hv->host.ops->flush_tlb(k->hv->host.opaque, vp);
    return HV_STATUS_SUCCESS;
}

static u16 hc_flush_space(struct hv_call *k) { return hv_flush(k, false, false); }
static u16 hc_flush_list(struct hv_call *k) { return hv_flush(k, false, true); }
static u16 hc_flush_space_ex(struct hv_call *k) { return hv_flush(k, true, false); }
static u16 hc_flush_list_ex(struct hv_call *k) { return hv_flush(k, true, true); }

/* ---- IPIs (TLFS 10.5.2) ---- */
#define HV_IPI_LOW_VECTOR 0x10

static u16 hv_send_ipi(struct hv_call *k, bool ex)
{
    u64 w0;
    struct hv_vpset set;
    u16 st;
    if ((st = hv_input_u64(k, 0, &w0)))
        return st;
    u32 vector = (u32)w0;
    if (w0 >> 32) /* the reserved half of the first word */
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    if (!ex) {
        u64 mask;
        if ((st = hv_input_u64(k, 8, &mask)))
            return st;
        memset(&set, 0, sizeof(set));
        set.bank[0] = mask;
    } else if ((st = hv_read_vpset(k, 8, &set))) {
        return st;
    } else if (!set.all && !k->var_cnt) {
        return HV_STATUS_SUCCESS; /* an empty sparse set: nothing to send (as KVM) */
    }
    if (vector < HV_IPI_LOW_VECTOR || vector > 0xff)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    for (int vp = 0; vp < k->hv->host.ncpus; vp++)
        if (vpset_has(&set, vp))
            k->hv->host.ops->deliver_vector(k->hv->host.opaque, vp, (u8)vector);
    return HV_STATUS_SUCCESS;
}

static u16 hc_send_ipi(struct hv_call *k) { return hv_send_ipi(k, false); }
static u16 hc_send_ipi_ex(struct hv_call *k) { return hv_send_ipi(k, true); }

/* ---- the rest ---- */
/* HvNotifyLongSpinWait: the VP's spinning is a hint to run another one; nestor's
 * scheduler ends the pass of a vCPU that spins (PAUSE loops) the same way. */
static u16 hc_notify_long_spin_wait(struct hv_call *k)
{
    k->hv->host.ops->kick(k->hv->host.opaque, -1);
    return HV_STATUS_SUCCESS;
}

static u16 hc_post_message(struct hv_call *k)
{
    return hv_post_message_hcall(k->hv, k->c, k->fast ? 0 : k->in_gpa, k->fast);
}

static u16 hc_signal_event(struct hv_call *k)
{
    u64 in;
    if (!k->fast && (k->in_gpa & 7))
        return HV_STATUS_INVALID_ALIGNMENT;
    u16 st = hv_input_u64(k, 0, &in);
    if (st)
        return st;
    /* connection id 23:0, reserved 31:24, flag number 47:32, reserved 63:48 */
    if (in & 0xffff0000ff000000ull)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    return hv_signal_event_hcall(k->hv, k->c, (u32)in & 0xffffff, (u16)(in >> 32));
}

static u16 hc_debug(struct hv_call *k)
{
    return hv_syndbg_hcall(k->hv, k->c, k->code, k->fast ? 0 : k->in_gpa, k->fast ? 0 : k->out_gpa);
}

/* The dispatch table. rep: a rep hypercall (rep count at least 1, start index below it);
 * var: it takes a variable header; fast_refused: the status of a fast call of one that
 * takes its input from memory only (0: both conventions); feature: what must be on (the
 * code is unknown otherwise). */
struct hv_hypercall_desc {
    const char *name;
    u16 (*fn)(struct hv_call *k);
    bool rep, var;
    u16 fast_refused;
    int feature;
};

static const struct hv_hypercall_desc hv_hypercalls[] = {
    [HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE] = { "HvFlushVirtualAddressSpace", hc_flush_space,
                                             false, false, 0, HV_FEAT_TLBFLUSH },
    [HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST] = { "HvFlushVirtualAddressList", hc_flush_list,
                                            true, false, 0, HV_FEAT_TLBFLUSH },
    [HVCALL_NOTIFY_LONG_SPIN_WAIT] = { "HvNotifyLongSpinWait", hc_notify_long_spin_wait,
                                       false, false, 0, -1 },
    [HVCALL_SEND_IPI] = { "HvSendSyntheticClusterIpi", hc_send_ipi, false, false, 0, HV_FEAT_IPI },
    [HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX] = { "HvFlushVirtualAddressSpaceEx", hc_flush_space_ex,
                                                false, true, 0, HV_FEAT_TLBFLUSH },
    [HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX] = { "HvFlushVirtualAddressListEx", hc_flush_list_ex,
                                               true, true, 0, HV_FEAT_TLBFLUSH },
    [HVCALL_SEND_IPI_EX] = { "HvSendSyntheticClusterIpiEx", hc_send_ipi_ex, false, true, 0,
                             HV_FEAT_IPI },
    /* a message does not fit in registers: QEMU answers a fast one as an unknown call */
    [HVCALL_POST_MESSAGE] = { "HvPostMessage", hc_post_message, false, false,
                              HV_STATUS_INVALID_HYPERCALL_CODE, HV_FEAT_SYNIC },
    [HVCALL_SIGNAL_EVENT] = { "HvSignalEvent", hc_signal_event, false, false, 0, HV_FEAT_SYNIC },
    /* the debugger's calls are memory calls only (KVM: a fast one is an invalid parameter) */
    [HVCALL_POST_DEBUG_DATA] = { "HvPostDebugData", hc_debug, false, false,
                                 HV_STATUS_INVALID_PARAMETER, HV_FEAT_SYNDBG },
    [HVCALL_RETRIEVE_DEBUG_DATA] = { "HvRetrieveDebugData", hc_debug, false, false,
                                     HV_STATUS_INVALID_PARAMETER, HV_FEAT_SYNDBG },
    [HVCALL_RESET_DEBUG_SESSION] = { "HvResetDebugSession", hc_debug, false, false,
                                     HV_STATUS_INVALID_PARAMETER, HV_FEAT_SYNDBG },
};
#define HV_NR_HYPERCALLS (sizeof(hv_hypercalls) / sizeof(hv_hypercalls[0]))

static u16 hv_call(struct hv_call *k, u64 ctl)
{
    const struct hv_hypercall_desc *d = k->code < HV_NR_HYPERCALLS && hv_hypercalls[k->code].fn
                                            ? &hv_hypercalls[k->code] : NULL;
    k->desc = d;
    /* reserved bits first, whatever the code (KVM's order) */
    if (ctl & HC_RSVD_MASK)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    if (!d || (d->feature >= 0 && !hv_has(k->hv, (enum hyperv_feature)d->feature)))
        return HV_STATUS_INVALID_HYPERCALL_CODE;
    /* a simple call has no reps; a rep call at least one, starting below the count */
    if (d->rep ? (k->rep_cnt == 0 || k->rep_idx >= k->rep_cnt) : (k->rep_cnt || k->rep_idx))
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    if (!d->var && k->var_cnt)
        return HV_STATUS_INVALID_HYPERCALL_INPUT;
    if (k->fast && d->fast_refused)
        return d->fast_refused;
    if (!k->fast && ((k->in_gpa & 7) || (k->out_gpa & 7)))
        return HV_STATUS_INVALID_ALIGNMENT;
    return d->fn(k);
}

void hv_hypercall_dispatch(struct hyperv *hv, struct cpu *c)
{
    bool long64 = c->mode == MODE_LONG64;
    u64 ctl, in, out;
    if (long64) {
        ctl = c->gpr[R_RCX], in = c->gpr[R_RDX], out = c->gpr[R_R8];
    } else { /* EDX:EAX, EBX:ECX, EDI:ESI */
        ctl = (c->gpr[R_RDX] << 32) | (u32)c->gpr[R_RAX];
        in = (c->gpr[R_RBX] << 32) | (u32)c->gpr[R_RCX];
        out = (c->gpr[R_RDI] << 32) | (u32)c->gpr[R_RSI];
    }
    if (hv->host.xen_too && !long64)
        ctl &= ~0x80000000ull; /* the viridian marker the hypercall page ORs into EAX */
    struct hv_call k = { .hv = hv, .c = c, .code = HC_CODE(ctl), .fast = (ctl & HC_FAST) != 0,
                         .var_cnt = HC_VAR_CNT(ctl), .rep_cnt = HC_REP_CNT(ctl),
                         .rep_idx = HC_REP_IDX(ctl), .in_gpa = in, .out_gpa = out };
    if (k.fast) {
        memcpy(k.fast_in, &in, 8);
        memcpy(k.fast_in + 8, &out, 8);
        k.fast_len = HC_FAST_REGS_BYTES;
        if (hv_has(hv, HV_FEAT_XMM_INPUT) && long64) {
            for (int r = 0; r < 6; r++)
                memcpy(k.fast_in + 16 + 16 * r, c->fpu.xmm[r], 16);
            k.fast_len += HC_FAST_XMM_BYTES;
        }
    }
    u16 status = hv_call(&k, ctl);
    /* the result: status 15:0 and, for a rep call, the reps completed in 43:32 (TLFS 3.8):
     * all of them on success, else those before the one that failed */
    u64 result = status;
    if (k.desc && k.desc->rep)
        result |= (u64)(status == HV_STATUS_SUCCESS ? k.rep_cnt : k.rep_idx + k.reps_done) << 32;
    if (long64) {
        c->gpr[R_RAX] = result;
    } else {
        c->gpr[R_RAX] = (u32)result;
        c->gpr[R_RDX] = (u32)(result >> 32);
    }
}

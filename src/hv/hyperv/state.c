/* The Hyper-V interface's state for save and restore: the partition's MSRs, each VP's
 * (the assist page and its EOI avoidance, the SynIC, the timers) and the debugger's
 * registers. The timers' deadlines are the clock's, saved with it; the host's
 * connections are the machine's devices', made again as the machine is built; the
 * debugger's socket is the host's. */
#include "hv/hyperv/hyperv_internal.h"
#include "machine/state.h"

#define F(x) STATE_FIELD(struct hv_stimer, x)
#define N(x) STATE_NOT_STATE(struct hv_stimer, x)
static const struct state_field stimer_fields[] = {
    F(config), F(count), F(exp_time), F(msg_pending), N(timer), N(hv), N(vp),
    N(index),
};
#undef F
#undef N
static const struct state_desc stimer_desc = STATE_DESC("hyperv.stimer", 1, struct hv_stimer, stimer_fields);

#define F(x) STATE_FIELD(struct hv_vp, x)
static const struct state_field vp_fields[] = {
    F(vp_assist), F(pv_eoi_pending), F(scontrol), F(siefp), F(simp), F(sint),
    STATE_STRUCT(struct hv_vp, stimer, stimer_desc), F(runtime_ns),
    F(run_start_ns),
};
#undef F
static const struct state_desc vp_desc = STATE_DESC("hyperv.vp", 1, struct hv_vp, vp_fields);

#define F(x) STATE_FIELD(struct hv_syndbg, x)
#define N(x) STATE_NOT_STATE(struct hv_syndbg, x)
static const struct state_field syndbg_fields[] = {
    N(fd), N(host_ip), N(host_port), F(target_ip), F(control), F(status), F(send_gpa),
    F(recv_gpa), F(pending_gpa), F(options), N(timer),
};
#undef F
#undef N
static const struct state_desc syndbg_desc = STATE_DESC("hyperv.syndbg", 1, struct hv_syndbg, syndbg_fields);

#define F(x) STATE_FIELD(struct hyperv, x)
#define N(x) STATE_NOT_STATE(struct hyperv, x)
static const struct state_field hyperv_fields[] = {
    N(cfg), N(host), F(guest_os_id), F(hypercall), F(reference_tsc), F(crash_p), F(crash_ctl),
    F(reenlightenment_control), F(tsc_emulation_control), F(tsc_emulation_status),
    F(tsc_page_seq), F(tsc_page_valid), F(tsc_page_scale), F(tsc_page_offset), N(vp), N(conn), N(sint_ack), N(sint_ack_opaque), N(syndbg),
};
#undef F
#undef N

static void hyperv_save(void *obj, struct state_buf *b)
{
    const struct hyperv *hv = obj;
    for (int i = 0; i < hv->host.ncpus; i++)
        state_put_struct(b, &vp_desc, &hv->vp[i]);
    state_put_struct(b, &syndbg_desc, hv->syndbg);
}

static int hyperv_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct hyperv *hv = obj;
    for (int i = 0; i < hv->host.ncpus; i++)
        state_get_struct(c, &vp_desc, &hv->vp[i]);
    state_get_struct(c, &syndbg_desc, hv->syndbg);
    return 0;
}

static const struct state_desc hyperv_state_desc =
    STATE_DESC("hyperv", 1, struct hyperv, hyperv_fields, .save = hyperv_save, .load = hyperv_load);

void hyperv_state_register(struct hyperv *hv, struct state_registry *r)
{
    state_register(r, &hyperv_state_desc, 0, hv);
}

const struct state_desc *hyperv_state_descs(int i)
{
    static const struct state_desc *const descs[] = { &hyperv_state_desc, &vp_desc, &stimer_desc,
                                                      &syndbg_desc };
    return i >= 0 && i < (int)(sizeof(descs) / sizeof(descs[0])) ? descs[i] : NULL;
}

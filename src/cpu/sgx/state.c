/* SGX's state, described once for save/restore: each vCPU's enclave-mode registers and
 * Launch Control MSRs, and the EPC (the EPCM, the bytes of its valid pages, the keys'
 * root secret, so that a restored or migrated machine derives the same keys). */
#include <stdlib.h>
#include <string.h>

#include "cpu/sgx/sgx_internal.h"
#include "machine/state.h"

static const struct state_field seg_fields[] = {
    STATE_FIELD(struct seg, sel), STATE_FIELD(struct seg, base), STATE_FIELD(struct seg, limit),
    STATE_FIELD(struct seg, attr),
};
static const struct state_desc seg_desc = STATE_DESC("seg", 1, struct seg, seg_fields);

/* ---- per vCPU ---- */
#define F(m) STATE_FIELD(struct sgx_cpu, m)
#define N(m) STATE_NOT_STATE(struct sgx_cpu, m)
static const struct state_field sgx_cpu_fields[] = {
    N(feature), N(epc), N(cpu), F(lepubkeyhash), F(secs), F(tcs), F(tcs_la), F(elrange_base),
    F(elrange_size), F(aep), F(ssa_first), F(ssa_last),
    STATE_STRUCT(struct sgx_cpu, save_fs, seg_desc), STATE_STRUCT(struct sgx_cpu, save_gs, seg_desc),
    F(save_xcr0), F(save_tf), F(entry_epoch), F(dbgoptin),
};
#undef F
#undef N

/* Enclave mode's page indices are used to reach EPC bytes: they must name pages of the
 * EPC that hold what they should. */
static int sgx_cpu_post_load(void *obj, char *err, size_t errlen)
{
    struct sgx_cpu *s = obj;
    const struct sgx_epc *e = s->epc;
    if (!s->cpu->enclave_mode)
        return 0;
    if (s->secs >= e->npages || s->tcs >= e->npages || s->ssa_first >= e->npages ||
        s->ssa_last >= e->npages || e->epcm[s->secs].type != PT_SECS || !e->epcm[s->secs].valid ||
        e->epcm[s->tcs].type != PT_TCS || !e->epcm[s->tcs].valid ||
        e->epcm[s->ssa_first].type != PT_REG || e->epcm[s->ssa_last].type != PT_REG)
        return nestor_err(err, errlen, "sgx: the vCPU is in an enclave whose pages are not in the EPC");
    return 0;
}

static const struct state_desc sgx_cpu_desc =
    STATE_DESC("sgx", 1, struct sgx_cpu, sgx_cpu_fields, .post_load = sgx_cpu_post_load);

void sgx_cpu_state_register(struct cpu *c, struct state_registry *r)
{
    if (c->sgx)
        state_register(r, &sgx_cpu_desc, (u32)c->id, c->sgx);
}

/* ---- the EPC ---- */
#define F(m) STATE_FIELD(struct sgx_epcm, m)
static const struct state_field epcm_fields[] = {
    F(valid), F(type), F(perms), F(pending), F(modified), F(pr), F(blocked),
    STATE_NOT_STATE(struct sgx_epcm, pad), F(secs), STATE_NOT_STATE(struct sgx_epcm, pad2),
    F(linaddr), F(blocked_epoch), F(modify_epoch),
};
#undef F
static const struct state_desc epcm_desc = STATE_DESC("epcm", 1, struct sgx_epcm, epcm_fields);

#define F(m) STATE_FIELD(struct sgx_epc, m)
#define N(m) STATE_NOT_STATE(struct sgx_epc, m)
static const struct state_field epc_fields[] = {
    N(cfg), N(npages), N(first_page), N(bytes), N(gen), N(epcm), N(cpus), N(ncpus),
    F(next_eid), F(paging_nonce), F(cpusvn), N(flush_all), N(flush_opaque),
};
#undef F
#undef N

/* The layout, the root secret, then each valid page: index, EPCM entry, bytes; ~0 ends. */
static void epc_save(void *obj, struct state_buf *b)
{
    struct sgx_epc *e = obj;
    state_put_u32(b, (u32)e->cfg.nsections);
    for (int s = 0; s < e->cfg.nsections; s++) {
        state_put_u64(b, e->cfg.section[s].base);
        state_put_u64(b, e->cfg.section[s].size);
    }
    state_put(b, e->cfg.root_secret, sizeof(e->cfg.root_secret));
    for (u64 i = 0; i < e->npages; i++) {
        if (!e->epcm[i].valid)
            continue;
        state_put_u64(b, i);
        state_put_struct(b, &epcm_desc, &e->epcm[i]);
        state_put(b, epc_page(e, i), SGX_PAGE);
    }
    state_put_u64(b, ~0ull);
}

static int epc_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct sgx_epc *e = obj;
    u32 n = state_get_u32(c);
    if (n != (u32)e->cfg.nsections)
        return nestor_err(err, errlen, "sgx: the saved machine has %u EPC sections, this one %d "
                          "(give the same EPC options)", n, e->cfg.nsections);
    for (int s = 0; s < e->cfg.nsections; s++) {
        u64 base = state_get_u64(c), size = state_get_u64(c);
        if (base != e->cfg.section[s].base || size != e->cfg.section[s].size)
            return nestor_err(err, errlen, "sgx: EPC section %d differs from the saved machine's", s);
    }
    if (!state_get(c, e->cfg.root_secret, sizeof(e->cfg.root_secret)))
        return nestor_err(err, errlen, "sgx: truncated EPC state");
    memset(e->epcm, 0, e->npages * sizeof(*e->epcm));
    memset(e->bytes, 0, e->npages * SGX_PAGE);
    for (;;) {
        u64 i = state_get_u64(c);
        if (c->bad)
            return nestor_err(err, errlen, "sgx: truncated EPC state");
        if (i == ~0ull)
            break;
        if (i >= e->npages)
            return nestor_err(err, errlen, "sgx: EPC page %llu is beyond the EPC", (unsigned long long)i);
        struct sgx_epcm m;
        if (!state_get_struct(c, &epcm_desc, &m) || !state_get(c, epc_page(e, i), SGX_PAGE))
            return nestor_err(err, errlen, "sgx: truncated EPC state");
        if (!m.valid || m.type > PT_TRIM || (m.type != PT_SECS && m.type != PT_VA && m.secs >= e->npages) ||
            (m.perms & ~SECINFO_PERMS))
            return nestor_err(err, errlen, "sgx: EPC page %llu has an impossible EPCM entry",
                              (unsigned long long)i);
        m.pad = 0;
        m.pad2 = 0;
        e->epcm[i] = m;
    }
    return 0;
}

/* Every child's SECS must be a valid SECS; decoded enclave code is stale. */
static int epc_post_load(void *obj, char *err, size_t errlen)
{
    struct sgx_epc *e = obj;
    for (u64 i = 0; i < e->npages; i++) {
        const struct sgx_epcm *m = &e->epcm[i];
        if (m->valid && m->type != PT_SECS && m->type != PT_VA &&
            (!e->epcm[m->secs].valid || e->epcm[m->secs].type != PT_SECS))
            return nestor_err(err, errlen, "sgx: EPC page %llu belongs to no enclave",
                              (unsigned long long)i);
        mem_code_write(&e->gen[i]);
    }
    return 0;
}

static const struct state_desc epc_desc = STATE_DESC("sgx.epc", 1, struct sgx_epc, epc_fields,
                                                     .save = epc_save, .load = epc_load,
                                                     .post_load = epc_post_load);

void sgx_epc_state_register(struct sgx_epc *e, struct state_registry *r)
{
    state_register(r, &epc_desc, 0, e);
}

/* For the unit tests' coverage check. */
const struct state_desc *sgx_state_descs(int k)
{
    switch (k) {
    case 0: return &sgx_cpu_desc;
    case 1: return &epc_desc;
    case 2: return &epcm_desc;
    default: return NULL;
    }
}

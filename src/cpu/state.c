/* The vCPU's state description: the architectural registers and run state (struct cpu),
 * what the engine carries from one instruction to the next (struct cpu_internal), and
 * the software TLB, whose translations the guest can see (an entry outlives a change of
 * the page tables until the guest invalidates it), so a restored run uses the same ones.
 * What the engine rebuilds as it goes (decoders, the decoded-block cache, the state of
 * the instruction running) is not state: saves happen between instructions. */
#include <string.h>

#include "cpu/exec.h"
#include "cpu/sgx/sgx.h"
#include "cpu/svm/svm.h"
#include "cpu/vmx/vmx.h"
#include "machine/mem.h"
#include "machine/state.h"

/* the struct members, by their own descriptions */
static const struct state_field seg_fields[] = {
    STATE_FIELD(struct seg, sel), STATE_FIELD(struct seg, base), STATE_FIELD(struct seg, limit),
    STATE_FIELD(struct seg, attr),
};
static const struct state_desc seg_desc = STATE_DESC("seg", 1, struct seg, seg_fields);
static const struct state_field dtr_fields[] = {
    STATE_FIELD(struct dtr, base), STATE_FIELD(struct dtr, limit),
};
static const struct state_desc dtr_desc = STATE_DESC("dtr", 1, struct dtr, dtr_fields);
#define F(m) STATE_FIELD(struct fpu_state, m)
static const struct state_field fpu_fields[] = {
    F(fcw), F(fsw), F(ftw), F(fop), F(fip), F(fdp), F(fcs), F(fds), F(st), F(mxcsr), F(xmm),
};
#undef F
static const struct state_desc fpu_desc = STATE_DESC("fpu", 1, struct fpu_state, fpu_fields);
static const struct state_field pmu_counter_fields[] = {
    STATE_FIELD(struct pmu_counter, value), STATE_FIELD(struct pmu_counter, ctl),
};
static const struct state_desc pmu_counter_desc =
    STATE_DESC("pmu_counter", 1, struct pmu_counter, pmu_counter_fields);
#define F(m) STATE_FIELD(struct pmu, m)
#define N(m) STATE_NOT_STATE(struct pmu, m)
static const struct state_field pmu_fields[] = {
    STATE_STRUCT(struct pmu, ctr, pmu_counter_desc), F(fixed_ctrl), F(global_ctrl),
    F(global_status),
    F(event), F(enabled), F(counting), F(pmi), F(running), F(mark_insns), F(mark_branches), F(mark_ns),
};
#undef F
#undef N
static const struct state_desc pmu_desc = STATE_DESC("pmu", 1, struct pmu, pmu_fields);
static const struct state_field lazy_fields[] = {
    STATE_FIELD(struct lazy_flags, a), STATE_FIELD(struct lazy_flags, b),
    STATE_FIELD(struct lazy_flags, res), STATE_FIELD(struct lazy_flags, op),
    STATE_FIELD(struct lazy_flags, bytes), STATE_FIELD(struct lazy_flags, cf),
};
static const struct state_desc lazy_desc = STATE_DESC("lazy_flags", 1, struct lazy_flags, lazy_fields);

#define F(m) STATE_FIELD(struct cpu, m)
#define N(m) STATE_NOT_STATE(struct cpu, m)
#define S(m, d) STATE_STRUCT(struct cpu, m, d)
static const struct state_field cpu_fields[] = {
    F(gpr), F(rip), F(rflags), S(seg, seg_desc), S(ldtr, seg_desc), S(tr, seg_desc),
    S(gdtr, dtr_desc), S(idtr, dtr_desc),
    F(cr0), F(cr2), F(cr3), F(cr4), F(cr8), F(xcr0), F(efer), F(dr), S(fpu, fpu_desc),
    F(msr_star), F(msr_lstar), F(msr_cstar), F(msr_sfmask), F(msr_kernel_gs_base),
    F(msr_sysenter_cs), F(msr_sysenter_esp), F(msr_sysenter_eip),
    F(msr_tsc_aux), F(msr_pat), F(msr_misc_enable), F(msr_tsc_adjust), F(msr_debugctl),
    F(msr_mtrr_def_type), F(msr_mtrr_fixed), F(msr_mtrr_var),
    F(tsc_offset), F(tsc_multiplier), F(tsc_scaled_offset), F(msr_feature_control),
    F(mode), F(cpl), F(state), F(nmi_pending), F(nmi_blocked), F(intr_shadow),
    F(monitor_armed), F(mwait), F(mwait_break_on_intr), F(monitor_gpa),
    N(monitor_gen), /* a host word's value: cpu.monitor says whether the line was written */
    F(icount), N(id), /* the vCPU's index: the section's instance */
    N(model), N(mem), N(ops), N(ops_opaque),
    N(tlb), /* its own section, cpu.tlb */
    N(in),  /* its own section, cpu.engine */
    N(pmu), /* its own section, cpu.pmu */
    N(vmx), /* its own section, vmx */
    F(vmx_non_root),
    N(svm), /* its own section, svm */
    F(svm_guest), F(gif),
    N(sgx), /* its own section, sgx */
    F(enclave_mode),
    /* the host debugger's, not the guest's */
    N(host_debug), N(host_stop), N(host_stop_watch_kind), N(host_stop_addr),
    N(host_resume_rip), N(host_resume_armed),
};
#undef F
#undef N
#undef S

/* The counters as they stand at this instruction boundary (pmu_state_at): what the
 * engine counted since their last synchronisation is added, so two runs at the same
 * point save the same values however often each synchronised. */
static void pmu_save(void *obj, struct state_buf *b)
{
    struct pmu p;
    pmu_state_at(obj, &p);
    state_put_struct(b, &pmu_desc, &p);
}

static int pmu_load(void *obj, struct state_cursor *cur, char *err, size_t errlen)
{
    struct cpu *c = obj;
    if (!state_get_struct(cur, &pmu_desc, &c->pmu)) {
        return nestor_err(err, errlen, "malformed performance-counter state");
    }
    return 0;
}

/* MONITOR: whether the armed line's page was written since (its generation word, a
 * host-side counter, moved on); a restored monitor watches the page again. The page is
 * watched while the monitor is armed and while the vCPU waits in MWAIT (which disarmed
 * it). */
static bool monitor_watching(const struct cpu *c)
{
    return c->monitor_armed || (c->mwait && c->state == CPU_HALTED);
}

static void monitor_save(void *obj, struct state_buf *b)
{
    struct cpu *c = obj;
    u32 *gen = monitor_watching(c) ? mem_page_gen(c->mem, c->monitor_gpa) : NULL;
    state_put_u8(b, gen && *gen != c->monitor_gen);
}

static int monitor_load(void *obj, struct state_cursor *cur, char *err, size_t errlen)
{
    struct cpu *c = obj;
    (void)err;
    (void)errlen;
    c->monitor_gen = state_get_u8(cur) != 0; /* until post_load */
    return 0;
}

/* After every section: a monitor not yet triggered watches its page again: the TLBs
 * loaded after this vCPU's forget write access to it (mem_code_mark), so the next write
 * is seen, as none could have write access to it in the saved machine either. A
 * triggered one needs no watching (its page may since have been written through a TLB
 * that got write access again, which the restored TLBs then keep too). */
static int monitor_post_load(void *obj, char *err, size_t errlen)
{
    struct cpu *c = obj;
    (void)err;
    (void)errlen;
    bool triggered = c->monitor_gen != 0;
    c->monitor_gen = 0;
    if (monitor_watching(c)) {
        u32 *gen = mem_page_gen(c->mem, c->monitor_gpa);
        if (gen) {
            if (!triggered)
                mem_code_mark(c->mem, c->monitor_gpa);
            c->monitor_gen = triggered ? *gen ^ 2 : *gen;
        }
    }
    return 0;
}

static const struct state_field monitor_section_fields[] = { STATE_NOT_STATE(struct cpu, monitor_gen) };
static const struct state_desc cpu_monitor_state_desc = {
    .name = "cpu.monitor", .version = 1, .size = 0, .fields = monitor_section_fields,
    .nfields = 0, .save = monitor_save, .load = monitor_load, .post_load = monitor_post_load,
};

static const struct state_field pmu_section_fields[] = { STATE_NOT_STATE(struct cpu, pmu) };
static const struct state_desc cpu_pmu_state_desc = {
    .name = "cpu.pmu", .version = 1, .size = 0, .fields = pmu_section_fields, .nfields = 0,
    .save = pmu_save, .load = pmu_load,
};

/* The vCPU's paging parameters and everything else that lives in the engine's struct are
 * loaded before the cpu section's post_load runs; the paging accessors (host pointers)
 * are the running nestor's. */
static int cpu_post_load(void *obj, char *err, size_t errlen)
{
    struct cpu *c = obj;
    const struct cpu_internal *in = c->in;
    /* values the engine indexes tables or shifts by */
    if (c->mode > MODE_LONG64 || c->cpl > 3 || c->state > CPU_SHUTDOWN ||
        c->intr_shadow > SHADOW_MOV_SS) {
        return nestor_err(err, errlen, "impossible run state (mode %d, CPL %u, state %d, shadow %u)",
                 (int)c->mode, c->cpl, (int)c->state, c->intr_shadow);
    }
    if (in->lz.op > LZ_DEC || (in->lz.op != LZ_NONE && in->lz.bytes != 1 && in->lz.bytes != 2 &&
                               in->lz.bytes != 4 && in->lz.bytes != 8)) {
        return nestor_err(err, errlen, "impossible lazy flags (op %u, %u bytes)", in->lz.op, in->lz.bytes);
    }
    if (in->delivering < -1 || in->delivering > 255 || in->pg.fmt > PG_EPT5 ||
        in->pg.maxphyaddr != c->model->phys_bits) {
        return nestor_err(err, errlen, "impossible paging or event state");
    }
    if (!pmu_state_valid(&c->pmu)) {
        return nestor_err(err, errlen, "impossible performance-counter state");
    }
    struct paging_ctx pg = c->in->pg;
    mmu_params_update(c);
    struct paging_ops ops = c->in->pg.ops;
    c->in->pg = pg;
    c->in->pg.ops = ops;
    if (c->vmx && vmx_state_post_load(c, err, errlen) < 0)
        return -1;
    if ((c->svm_guest && (!c->svm || c->vmx_non_root)) || (c->vmx_non_root && !c->vmx) ||
        (c->enclave_mode && !c->sgx) ||
        (!c->svm && !c->gif))
        return nestor_err(err, errlen, "guest-hypervisor state without VMX/SVM in the model");
    if (c->svm && svm_state_post_load(c, err, errlen) < 0)
        return -1;
    debug_update(c);
    /* The cached decoder tables follow the mode. */
    c->in->exits |= EXIT_BLOCK_END;
    return 0;
}

const struct state_desc cpu_state_desc =
    STATE_DESC("cpu", 2, struct cpu, cpu_fields, .post_load = cpu_post_load);

#define F(m) STATE_FIELD(struct cpu_internal, m)
#define N(m) STATE_NOT_STATE(struct cpu_internal, m)
static const struct state_field engine_fields[] = {
    N(fault_jmp), N(saved_gpr), N(saved_rip), N(saved_rsp), N(saved_rflags),
    N(saved_lz_op), N(snapshot_full), N(restore_none),
    STATE_STRUCT(struct cpu_internal, lz, lazy_desc), /* none between instructions */
    N(exits), F(delivering), F(pending_db_bits), N(dec), N(blocks), N(last_block),
    F(pg.fmt), F(pg.root), F(pg.pdpte), F(pg.maxphyaddr), F(pg.wp), F(pg.pse), F(pg.nxe),
    F(pg.smep), F(pg.smap), F(pg.ac), F(pg.pdpe1gb), F(pg.ept_ad), N(pg.ops),
    F(large_pages_cached), N(dr_data_active), N(dr_exec_active), F(held_db_bits),
    F(fep_rip), F(fep_icount), N(run_end),
    N(exc_vector), N(exc_has_error), N(exc_error), N(exc_cr2), N(fb), N(trace),
    N(trace_insns), N(trace_events), N(blocks_decoded), N(block_flushes),
    N(budget_end), F(pmu_end),
    F(branches), F(rep_restarts), F(events_delivered), N(blk), N(blk_icount0),
    F(shadow_before), N(run_faults_left), N(walk_linear), N(walk_no_exit), F(dr6_before_db), F(db_qual),
};
#undef F
#undef N

const struct state_desc cpu_engine_state_desc =
    STATE_DESC("cpu.engine", 1, struct cpu_internal, engine_fields);

/* ---- the TLB: the valid entries, with the page each maps; host pointers rebuilt ---- */
static void tlb_save(void *obj, struct state_buf *b)
{
    struct cpu *c = obj;
    struct tlb *t = &c->tlb;
    state_put_u64(b, t->ctx);
    u32 n = 0;
    for (unsigned k = 0; k < 2 * TLB_SIZE; k++) {
        const struct tlb_entry *e = &t->e[k / TLB_SIZE][k % TLB_SIZE];
        n += e->tag_read != TLB_INVALID || e->tag_write != TLB_INVALID || e->tag_exec != TLB_INVALID;
    }
    state_put_u32(b, n);
    for (unsigned k = 0; k < 2 * TLB_SIZE; k++) {
        const struct tlb_entry *e = &t->e[k / TLB_SIZE][k % TLB_SIZE];
        if (e->tag_read == TLB_INVALID && e->tag_write == TLB_INVALID && e->tag_exec == TLB_INVALID)
            continue;
        state_put_u32(b, k);
        state_put_u64(b, e->tag_read);
        state_put_u64(b, e->tag_write);
        state_put_u64(b, e->tag_exec);
        state_put_u64(b, e->gpa);
        state_put_u32(b, e->pcid);
        state_put_u8(b, (u8)(e->global | (e->host != NULL) << 1));
    }
}

static int tlb_load(void *obj, struct state_cursor *cur, char *err, size_t errlen)
{
    struct cpu *c = obj;
    struct tlb *t = &c->tlb;
    tlb_init(t);
    t->ctx = state_get_u64(cur);
    u32 n = state_get_u32(cur);
    if (n > 2 * TLB_SIZE) {
        return nestor_err(err, errlen, "%u TLB entries, more than the TLB holds", n);
    }
    for (u32 i = 0; i < n && !cur->bad; i++) {
        u32 k = state_get_u32(cur);
        if (k >= 2 * TLB_SIZE) {
            return nestor_err(err, errlen, "TLB slot %u out of range", k);
        }
        u64 tags[3];
        for (int j = 0; j < 3; j++)
            tags[j] = state_get_u64(cur);
        u64 gpa = state_get_u64(cur);
        u32 pcid = state_get_u32(cur);
        u8 flags = state_get_u8(cur);
        struct tlb_entry *e = tlb_entry_for_fill(t, k / TLB_SIZE, k % TLB_SIZE);
        e->tag_read = tags[0];
        e->tag_write = tags[1];
        e->tag_exec = tags[2];
        e->gpa = gpa & ~0xfffull;
        e->pcid = (u16)(pcid & 0xfff);
        e->global = flags & 1;
        e->host = NULL;
        e->page_gen = NULL;
        if (flags & 2) {
            bool ro = false;
            u32 *gen = NULL;
            e->host = mem_page(c->mem, e->gpa, &gen, &ro);
            /* an enclave's page, which a vCPU inside it has in its TLB */
            if (!e->host && c->sgx)
                e->host = sgx_epc_host_page(c, e->gpa, &gen);
            if (!e->host) {
                return nestor_err(err, errlen, "a TLB entry maps %#llx, which is not RAM here",
                         (unsigned long long)e->gpa);
            }
            e->page_gen = gen;
            if (ro)
                e->tag_write = TLB_INVALID;
        }
    }
    return 0;
}

static const struct state_field tlb_fields[] = { STATE_NOT_STATE(struct cpu, tlb) };
const struct state_desc cpu_tlb_state_desc = {
    .name = "cpu.tlb", .version = 1, .size = 0, .fields = tlb_fields, .nfields = 0,
    .save = tlb_save, .load = tlb_load, .cache = true,
};

void cpu_state_register(struct cpu *c, struct state_registry *r)
{
    state_register(r, &cpu_engine_state_desc, (u32)c->id, c->in);
    state_register(r, &cpu_tlb_state_desc, (u32)c->id, c);
    state_register(r, &cpu_pmu_state_desc, (u32)c->id, c);
    if (c->vmx)
        vmx_state_register(c, r);
    if (c->svm)
        svm_state_register(c, r);
    sgx_cpu_state_register(c, r);
    /* the cpu section before cpu.monitor, which needs the loaded monitor address */
    state_register(r, &cpu_state_desc, (u32)c->id, c);
    state_register(r, &cpu_monitor_state_desc, (u32)c->id, c);
}

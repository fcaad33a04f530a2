/* vCPU life cycle (power-on reset, INIT, SIPI), mode tracking, the interception point and
 * state dumps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/exec.h"
#include "cpu/nested.h"
#include "cpu/sgx/sgx.h"
#include "cpu/svm/svm.h"
#include "cpu/vmx/vmx.h"

int cpu_init(struct cpu *c, int id, struct guest_mem *mem, struct cpuid_model *model,
             const struct cpu_ops *ops, void *opaque)
{
    memset(c, 0, sizeof(*c));
    c->id = id;
    c->mem = mem;
    c->model = model;
    c->ops = ops;
    c->ops_opaque = opaque;
    tlb_init(&c->tlb);
    c->in = calloc(1, sizeof(*c->in));
    if (!c->in)
        return -1;
    c->in->fb = cpuid_fast(model);
    if (exec_init(c) < 0 || vmx_init(c) < 0 || svm_init(c) < 0) {
        free(c->in);
        c->in = NULL;
        return -1;
    }
    cpu_reset(c);
    return 0;
}

void cpu_destroy(struct cpu *c)
{
    if (!c->in)
        return;
    exec_destroy(c);
    vmx_destroy(c);
    svm_destroy(c);
    sgx_cpu_destroy(c);
    free(c->in);
    c->in = NULL;
}

void cpu_set_seg(struct cpu *c, int seg, u16 sel, u64 base, u32 limit, u32 attr)
{
    c->seg[seg] = (struct seg){ sel, base, limit, attr };
    if (seg == SEG_CS || seg == SEG_SS)
        cpu_update_mode(c);
}

/* State common to RESET and INIT (SDM Vol. 3A, Table 10-1). */
static void reset_common(struct cpu *c)
{
    memset(c->gpr, 0, sizeof(c->gpr));
    struct cpuid_result r1 = cpuid_query(c->model, 1, 0, (u32)c->id, false, true, 0);
    c->gpr[R_RDX] = r1.eax; /* processor signature */
    c->rip = 0xfff0;
    c->mwait = c->monitor_armed = false;
    c->rflags = FL_FIXED1;
    if (c->in)
        c->in->lz.op = LZ_NONE;
    c->seg[SEG_CS] = (struct seg){ 0xf000, 0xffff0000ull, 0xffff, 0x9b };
    for (int s = 0; s < 6; s++)
        if (s != SEG_CS)
            c->seg[s] = (struct seg){ 0, 0, 0xffff, 0x93 };
    c->gdtr = (struct dtr){ 0, 0xffff };
    c->idtr = (struct dtr){ 0, 0xffff };
    c->ldtr = (struct seg){ 0, 0, 0xffff, 0x82 };
    c->tr = (struct seg){ 0, 0, 0xffff, 0x8b };
    c->cr0 = CR0_ET | CR0_CD | CR0_NW; /* 0x60000010 */
    c->cr2 = c->cr3 = c->cr4 = c->cr8 = 0;
    c->xcr0 = 1;
    c->efer = 0;
    memset(c->dr, 0, sizeof(c->dr));
    c->dr[6] = 0xffff0ff0;
    c->dr[7] = 0x400;
    c->msr_star = c->msr_lstar = c->msr_cstar = c->msr_sfmask = c->msr_kernel_gs_base = 0;
    c->msr_sysenter_cs = c->msr_sysenter_esp = c->msr_sysenter_eip = 0;
    c->msr_debugctl = 0;
    c->msr_pat = 0x0007040600070406ull;
    c->nmi_pending = c->nmi_blocked = false;
    c->intr_shadow = SHADOW_NONE;
    c->state = CPU_RUNNING;
    struct cpu_internal *in = c->in;
    in->delivering = -1;
    in->dr_exec_active = in->dr_data_active = false;
    in->held_db_bits = 0;
    in->exits |= EXIT_CHECK_EVENTS;
    cpu_update_mode(c);
    mmu_update(c);
}

void cpu_reset(struct cpu *c)
{
    vmx_reset(c); /* RESET leaves VMX operation */
    svm_reset(c); /* ... and SVM guest mode, and sets GIF */
    if (c->sgx) {  /* ... and enclave mode; firmware sets SGX up again */
        sgx_cpu_reset(c, true);
        c->msr_feature_control = 0;
    }
    c->cr0 = 0;
    reset_common(c);
    fpu_power_on(c);
    c->msr_tsc_aux = 0;
    c->msr_misc_enable = cpu_misc_enable_reset(c);
    c->msr_tsc_adjust = 0;
    c->tsc_offset = 0;
    c->msr_mtrr_def_type = 0;
    memset(c->msr_mtrr_fixed, 0, sizeof(c->msr_mtrr_fixed));
    memset(c->msr_mtrr_var, 0, sizeof(c->msr_mtrr_var));
    c->icount = 0;
    pmu_reset(c);
}

bool cpu_init_signal(struct cpu *c, bool is_bsp)
{
    /* INIT is blocked in VMX root operation and exits in non-root operation */
    if (vmx_init_signal(c, is_bsp))
        return false;
    /* ... and is held by SVM's GIF, or exits with SVM's INIT intercept */
    if (svm_init_signal(c, is_bsp))
        return false;
    svm_init_reset(c);
    sgx_cpu_reset(c, false);
    /* INIT keeps x87/SSE state, MTRRs, the TSC and the machine-check MSRs. */
    struct fpu_state keep = c->fpu;
    reset_common(c);
    c->fpu = keep;
    c->state = is_bsp ? CPU_RUNNING : CPU_WAIT_FOR_SIPI;
    pmu_run_state_changed(c);
    return true;
}

void cpu_sipi(struct cpu *c, u8 vector)
{
    if (c->state != CPU_WAIT_FOR_SIPI)
        return; /* a SIPI is ignored unless the CPU waits for one */
    if (vmx_sipi(c, vector))
        return; /* L2 in wait-for-SIPI: a VM exit */
    c->seg[SEG_CS] = (struct seg){ (u16)(vector << 8), (u64)vector << 12, 0xffff, 0x9b };
    c->rip = 0;
    c->state = CPU_RUNNING;
    cpu_update_mode(c);
    pmu_run_state_changed(c);
}

void cpu_check_events(struct cpu *c)
{
    if (c->in)
        c->in->exits |= EXIT_CHECK_EVENTS;
}

void cpu_nmi(struct cpu *c)
{
    c->nmi_pending = true;
    if (c->in)
        c->in->exits |= EXIT_CHECK_EVENTS;
}

bool cpu_runnable(struct cpu *c)
{
    switch (c->state) {
    case CPU_RUNNING:
        return true;
    case CPU_HALTED:
        /* the VMX-preemption timer of a halted L2 exits to L1; a virtual interrupt
         * (VMX APIC virtualization, SVM's V_IRQ) or a held INIT wakes L2 */
        if (unlikely(cpu_in_l2(c)) && nested_wakeup(c))
            return true;
        /* what take_events() wakes a halted CPU for (nothing while GIF is clear) */
        if (!c->gif)
            return false;
        if (c->nmi_pending && !c->nmi_blocked)
            return true;
        return !nested_intr_masked_by_if(c) && c->ops->intr_pending &&
               c->ops->intr_pending(c, c->ops_opaque) >= 0;
    default:
        return false;
    }
}

void cpu_update_mode(struct cpu *c)
{
    enum cpu_mode m;
    const struct seg *cs = &c->seg[SEG_CS];
    if (!(c->cr0 & CR0_PE))
        m = MODE_REAL;
    else if (c->rflags & FL_VM)
        m = MODE_V86;
    else if (c->efer & EFER_LMA)
        m = (cs->attr & SEG_ATTR_L) ? MODE_LONG64 : (cs->attr & SEG_ATTR_DB) ? MODE_COMPAT32 : MODE_COMPAT16;
    else
        m = (cs->attr & SEG_ATTR_DB) ? MODE_PROT32 : MODE_PROT16;
    u8 cpl = m == MODE_REAL ? 0 : m == MODE_V86 ? 3 : (u8)(cs->sel & 3);
    /* a decoded block belongs to one mode and privilege level */
    if (c->in && (m != c->mode || cpl != c->cpl))
        c->in->exits |= EXIT_BLOCK_END;
    c->mode = m;
    cpu_set_cpl(c, cpl);
}

void cpu_set_cpl(struct cpu *c, u8 cpl)
{
    /* counters filter by CPL: what ran so far counted at the old one */
    bool pmu_cpl = c->pmu.enabled && cpl != c->cpl;
    if (unlikely(pmu_cpl))
        pmu_sync(c);
    c->cpl = cpl;
    if (unlikely(pmu_cpl))
        pmu_refresh(c);
}

void cpu_set_rflags(struct cpu *c, u64 value, u64 changeable)
{
    u64 old = cpu_flags(c);
    u64 nf = (old & ~changeable) | (value & changeable);
    nf = (nf | FL_FIXED1) & ~(BIT(3) | BIT(5) | BIT(15) | (~0ull << 22));
    c->rflags = nf;
    if (changeable & FL_RF)
        c->in->exits |= EXIT_RF_WRITTEN;
    if ((nf ^ old) & FL_VM)
        cpu_update_mode(c);
    if ((nf & FL_IF) && !(old & FL_IF))
        c->in->exits |= EXIT_CHECK_EVENTS;
    if ((nf ^ old) & FL_TF)
        c->in->exits |= EXIT_BLOCK_END; /* single-stepping runs instruction by instruction */
}

enum intercept_result cpu_intercept(struct cpu *c, struct cpu_event *ev)
{
    cpu_flags(c); /* the machine sees exact RFLAGS */
    if (unlikely(c->in->trace_events))
        cpu_trace_event(c, ev);
    /* While L2 runs, L1's controls decide first: an exit does not return. */
    if (unlikely(cpu_in_l2(c)) && nested_intercept(c, ev))
        return INTERCEPT_HANDLED;
    if (ev->kind >= EV_INSN) /* nested VMX/SVM events: nobody else owns them */
        return INTERCEPT_DEFAULT;
    enum intercept_result r = c->ops->intercept(c, ev, c->ops_opaque);
    if (r == INTERCEPT_STOP) {
        c->in->exits |= EXIT_STOP;
        r = INTERCEPT_HANDLED;
    }
    /* devices may have raised or cleared interrupts */
    c->in->exits |= EXIT_CHECK_EVENTS;
    return r;
}

u64 cpu_tsc(struct cpu *c)
{
    return cpu_tsc_at(c, c->ops->now_ns(c, c->ops_opaque));
}

u64 cpu_wake_deadline_ns(const struct cpu *c)
{
    return c->vmx_non_root ? vmx_wake_deadline_ns(c) : ~0ull;
}

u64 cpu_l1_tsc_at(const struct cpu *c, u64 ns)
{
    unsigned __int128 t = (unsigned __int128)ns * c->model->tsc_khz / 1000000u;
    s64 off = c->vmx_non_root ? vmx_l1_tsc_offset(c) : c->svm_guest ? svm_l1_tsc_offset(c)
                                                                  : c->tsc_offset;
    return (u64)t + (u64)off;
}

u64 cpu_tsc_at(const struct cpu *c, u64 ns)
{
    unsigned __int128 t = (unsigned __int128)ns * c->model->tsc_khz / 1000000u;
    u64 tsc = (u64)t + (u64)c->tsc_offset;
    if (unlikely(c->tsc_multiplier))
        tsc = (u64)(((unsigned __int128)tsc * c->tsc_multiplier) >> 48) + (u64)c->tsc_scaled_offset;
    return tsc;
}

static const char *const event_names[EV_KIND_COUNT] = {
    [EV_IO] = "io", [EV_MMIO] = "mmio", [EV_MSR_READ] = "rdmsr", [EV_MSR_WRITE] = "wrmsr",
    [EV_CPUID] = "cpuid", [EV_HLT] = "hlt", [EV_INVLPG] = "invlpg", [EV_CR_ACCESS] = "cr",
    [EV_DR_ACCESS] = "dr", [EV_RDTSC] = "rdtsc", [EV_HYPERCALL] = "hypercall",
    [EV_EXCEPTION] = "exception", [EV_INTERRUPT] = "interrupt", [EV_TASK_SWITCH] = "task-switch",
    [EV_SHUTDOWN] = "shutdown", [EV_PAUSE] = "pause", [EV_UNSUPPORTED] = "unsupported",
    [EV_PMI] = "pmi",
    [EV_TSC_WRITTEN] = "tsc-written", [EV_INSN] = "vmx-insn",
    [EV_SOFT_EXCEPTION] = "soft-exception", [EV_NMI] = "nmi",
};

void cpu_trace_event(struct cpu *c, const struct cpu_event *ev)
{
    FILE *f = c->in->trace;
    if (!f)
        return;
    fprintf(f, "cpu%d event %s", c->id, event_names[ev->kind]);
    switch (ev->kind) {
    case EV_IO:
        fprintf(f, " port=%#x size=%u %s value=%#x", ev->u.io.port, ev->u.io.size,
                ev->u.io.write ? "out" : "in", ev->u.io.value);
        break;
    case EV_MMIO:
        fprintf(f, " gpa=%#llx size=%u %s value=%#llx", (unsigned long long)ev->u.mmio.gpa,
                ev->u.mmio.size, ev->u.mmio.write ? "write" : "read",
                (unsigned long long)ev->u.mmio.value);
        break;
    case EV_MSR_READ:
    case EV_MSR_WRITE:
        fprintf(f, " msr=%#x value=%#llx", ev->u.msr.index, (unsigned long long)ev->u.msr.value);
        break;
    case EV_EXCEPTION:
        fprintf(f, " vector=%u error=%#x cr2=%#llx", ev->u.exc.vector, ev->u.exc.error,
                (unsigned long long)ev->u.exc.cr2);
        break;
    case EV_INTERRUPT: fprintf(f, " vector=%u", ev->u.intr.vector); break;
    case EV_CPUID: fprintf(f, " leaf=%#x subleaf=%#x", ev->u.cpuid.leaf, ev->u.cpuid.subleaf); break;
    case EV_UNSUPPORTED: fprintf(f, " %s", ev->u.unsupported.what); break;
    default: break;
    }
    fprintf(f, " rip=%#llx\n", (unsigned long long)c->rip);
}

void cpu_set_trace(struct cpu *c, void *file, bool insns, bool events)
{
    c->in->trace = file;
    c->in->trace_insns = file && insns;
    c->in->trace_events = file && events;
}

void cpu_dump(const struct cpu *c, void *file)
{
    FILE *f = file;
    static const char *const gn[16] = { "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                        "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15" };
    static const char *const sn[6] = { "es", "cs", "ss", "ds", "fs", "gs" };
    fprintf(f, "vCPU %d state:\n", c->id);
    for (int i = 0; i < 16; i++)
        fprintf(f, "  %-3s=%016llx%s", gn[i], (unsigned long long)c->gpr[i], (i % 4 == 3) ? "\n" : "");
    fprintf(f, "  rip=%016llx rflags=%016llx cpl=%u mode=%d\n", (unsigned long long)c->rip,
            (unsigned long long)(c->in ? cpu_flags_peek(c) : c->rflags), c->cpl, c->mode);
    for (int s = 0; s < 6; s++)
        fprintf(f, "  %s=%04x base=%016llx limit=%08x attr=%05x\n", sn[s], c->seg[s].sel,
                (unsigned long long)c->seg[s].base, c->seg[s].limit, c->seg[s].attr);
    fprintf(f, "  ldtr=%04x tr=%04x base=%016llx gdtr=%016llx/%04x idtr=%016llx/%04x\n",
            c->ldtr.sel, c->tr.sel, (unsigned long long)c->tr.base,
            (unsigned long long)c->gdtr.base, c->gdtr.limit, (unsigned long long)c->idtr.base,
            c->idtr.limit);
    fprintf(f, "  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx efer=%016llx\n",
            (unsigned long long)c->cr0, (unsigned long long)c->cr2, (unsigned long long)c->cr3,
            (unsigned long long)c->cr4, (unsigned long long)c->efer);
    fprintf(f, "  dr6=%016llx dr7=%016llx icount=%llu\n", (unsigned long long)c->dr[6],
            (unsigned long long)c->dr[7], (unsigned long long)c->icount);
}

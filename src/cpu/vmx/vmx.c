/* The VMX state of a vCPU: creation, reset, INIT and SIPI in VMX operation, the CR0/CR4
 * bits VMX operation fixes, the record of the event being delivered (IDT-vectoring
 * information), the VMX-preemption timer. */
#include <stdlib.h>
#include <string.h>

#include "cpu/vmx/vmx_internal.h"

const struct vmx_seg_fields vmx_guest_seg[8] = {
    [SEG_ES] = { VMCS_GUEST_ES_SEL, VMCS_GUEST_ES_BASE, VMCS_GUEST_ES_LIMIT, VMCS_GUEST_ES_AR },
    [SEG_CS] = { VMCS_GUEST_CS_SEL, VMCS_GUEST_CS_BASE, VMCS_GUEST_CS_LIMIT, VMCS_GUEST_CS_AR },
    [SEG_SS] = { VMCS_GUEST_SS_SEL, VMCS_GUEST_SS_BASE, VMCS_GUEST_SS_LIMIT, VMCS_GUEST_SS_AR },
    [SEG_DS] = { VMCS_GUEST_DS_SEL, VMCS_GUEST_DS_BASE, VMCS_GUEST_DS_LIMIT, VMCS_GUEST_DS_AR },
    [SEG_FS] = { VMCS_GUEST_FS_SEL, VMCS_GUEST_FS_BASE, VMCS_GUEST_FS_LIMIT, VMCS_GUEST_FS_AR },
    [SEG_GS] = { VMCS_GUEST_GS_SEL, VMCS_GUEST_GS_BASE, VMCS_GUEST_GS_LIMIT, VMCS_GUEST_GS_AR },
    [VMX_SEG_LDTR] = { VMCS_GUEST_LDTR_SEL, VMCS_GUEST_LDTR_BASE, VMCS_GUEST_LDTR_LIMIT,
                       VMCS_GUEST_LDTR_AR },
    [VMX_SEG_TR] = { VMCS_GUEST_TR_SEL, VMCS_GUEST_TR_BASE, VMCS_GUEST_TR_LIMIT, VMCS_GUEST_TR_AR },
};

int vmx_init(struct cpu *c)
{
    c->vmx = NULL;
    c->vmx_non_root = false;
    if (!cpuid_has(c->model, "vmx") || c->model->vendor != VENDOR_INTEL)
        return 0;
    struct vmx *v = calloc(1, sizeof(*v));
    if (!v)
        return -1;
    c->vmx = v;
    vmx_caps_build(c, &v->caps);
    vmx_reset(c);
    return 0;
}

void vmx_destroy(struct cpu *c)
{
    free(c->vmx);
    c->vmx = NULL;
    c->vmx_non_root = false;
}

void vmx_reset(struct cpu *c)
{
    struct vmx *v = c->vmx;
    c->vmx_non_root = false;
    c->msr_feature_control = v ? 0 : 1; /* without VMX: locked, VMX off */
    if (!v)
        return;
    struct vmx_caps caps = v->caps;
    u64 evmcs_assist = v->evmcs_assist; /* the Hyper-V interface's, which keeps its MSR */
    memset(v, 0, sizeof(*v));
    v->caps = caps;
    v->evmcs_assist = evmcs_assist;
    v->current = ~0ull;
    v->evmcs = ~0ull;
    tlb_switch_context(&c->tlb, TLB_CTX_L1);
}

bool vmx_in_operation(const struct cpu *c)
{
    return c->vmx && c->vmx->on;
}

bool vmx_init_signal(struct cpu *c, bool is_bsp)
{
    struct vmx *v = c->vmx;
    if (!v || !v->on)
        return false;
    /* In VMX root operation INIT is blocked (SDM 24.8): it stays pending until VM entry
     * (an INIT exit at once) or VMXOFF (the INIT then happens). In non-root operation it
     * exits at the next boundary: the vCPU is outside cpu_run here. */
    v->init_pending = true;
    v->init_bsp = is_bsp;
    if (!c->vmx_non_root)
        return true;
    c->state = c->state == CPU_WAIT_FOR_SIPI ? CPU_WAIT_FOR_SIPI : CPU_RUNNING;
    cpu_check_events(c);
    return true;
}

bool vmx_sipi(struct cpu *c, u8 vector)
{
    struct vmx *v = c->vmx;
    if (!v || !c->vmx_non_root || c->state != CPU_WAIT_FOR_SIPI)
        return false;
    v->sipi_pending = true;
    v->sipi_vector = vector;
    c->state = CPU_RUNNING; /* runs to take the exit */
    cpu_check_events(c);
    return true;
}

/* ---- the bits VMX operation fixes (SDM 24.8, A.7, A.8) ---- */
bool vmx_cr0_allowed_root(const struct cpu *c, u64 cr0)
{
    const struct vmx *v = c->vmx;
    u64 f0 = v->caps.msr[VMX_CR0_FIXED0], f1 = v->caps.msr[VMX_CR0_FIXED1];
    return (cr0 & f0) == f0 && (cr0 & ~f1 & 0xffffffffull) == 0;
}

bool vmx_cr0_allowed(const struct cpu *c, u64 cr0)
{
    const struct vmx *v = c->vmx;
    if (!v || !v->on)
        return true;
    u64 f0 = v->caps.msr[VMX_CR0_FIXED0];
    if (c->vmx_non_root && (vmx_proc2(v) & PROC2_UNRESTRICTED_GUEST))
        f0 &= ~(u64)(CR0_PE | CR0_PG);
    return (cr0 & f0) == f0;
}

bool vmx_cr4_allowed(const struct cpu *c, u64 cr4)
{
    const struct vmx *v = c->vmx;
    if (!v || !v->on)
        return true;
    u64 f0 = v->caps.msr[VMX_CR4_FIXED0], f1 = v->caps.msr[VMX_CR4_FIXED1];
    return (cr4 & f0) == f0 && (cr4 & ~f1) == 0;
}

/* ---- IDT-vectoring information ---- */
void vmx_note_delivery(struct cpu *c, u8 vector, int type, bool has_error, u32 error,
                       u32 insn_len)
{
    struct vmx *v = c->vmx;
    static const u32 type_of_evt[] = {
        [EVT_EXT_INTR] = INTR_TYPE_EXT, [EVT_NMI] = INTR_TYPE_NMI,
        [EVT_HW_EXC] = INTR_TYPE_HW_EXC, [EVT_SW_INT] = INTR_TYPE_SW_INT,
        [EVT_PRIV_SW_EXC] = INTR_TYPE_PRIV_SW_EXC, [EVT_SW_EXC] = INTR_TYPE_SW_EXC,
    };
    v->delivering = true;
    v->deliver_info = vector | type_of_evt[type] << 8 | (has_error ? INTR_INFO_ERROR : 0) |
                      INTR_INFO_VALID;
    v->deliver_error = has_error ? error : 0;
    v->deliver_insn_len = insn_len;
}

void vmx_delivery_done(struct cpu *c)
{
    c->vmx->delivering = false;
}

/* ---- the VMX-preemption timer (SDM 26.5.1) ----
 * It counts down at the TSC rate divided by 2^IA32_VMX_MISC[4:0], from the value VM entry
 * loads; an exit with "save VMX-preemption timer value" stores what is left. */
s64 vmx_l1_tsc_offset(const struct cpu *c)
{
    return c->vmx_non_root ? c->vmx->l1_tsc_offset : c->tsc_offset;
}

u64 vmx_l1_tsc(const struct cpu *c)
{
    return cpu_l1_tsc_at(c, c->ops->now_ns((struct cpu *)c, c->ops_opaque));
}

static u64 tsc_now(struct cpu *c)
{
    return vmx_l1_tsc(c);
}

void vmx_preempt_start(struct cpu *c)
{
    struct vmx *v = c->vmx;
    v->preempt_active = vmx_pin(v) & PIN_PREEMPTION_TIMER;
    if (!v->preempt_active)
        return;
    u64 ticks = (u32)v->vmcs.f[VMCS_PREEMPT_TIMER_VALUE];
    unsigned rate = v->caps.msr[VMX_MISC] & 0x1f;
    /* the timer decrements when bit `rate` of the TSC changes: deadline in TSC ticks */
    u64 now = tsc_now(c);
    v->preempt_deadline_tsc = ((now >> rate) + ticks) << rate;
}

u32 vmx_preempt_remaining(struct cpu *c)
{
    struct vmx *v = c->vmx;
    if (!v->preempt_active)
        return (u32)v->vmcs.f[VMCS_PREEMPT_TIMER_VALUE];
    u64 now = tsc_now(c);
    unsigned rate = v->caps.msr[VMX_MISC] & 0x1f;
    if (now >= v->preempt_deadline_tsc)
        return 0;
    u64 left = (v->preempt_deadline_tsc >> rate) - (now >> rate);
    return left > 0xffffffffu ? 0xffffffffu : (u32)left;
}

/* ---- MSR areas ---- */
bool vmx_msr_access(struct cpu *c, u32 index, u64 *value, bool write)
{
    /* the areas reach the engine's MSRs and the machine's (APIC, TSC deadline) alike,
     * without the MSR bitmaps: they are not instructions */
    bool nr = c->vmx_non_root;
    c->vmx_non_root = false;
    bool ok = write ? cpu_wrmsr(c, index, *value) : cpu_rdmsr(c, index, value);
    c->vmx_non_root = nr;
    return ok;
}

_Noreturn void vmx_longjmp_exit(struct cpu *c)
{
    exec_context_switched(c);
}

/* ---- L2's view of the processor ---- */
u64 vmx_cr0_visible(const struct cpu *c)
{
    const struct vmx *v = c->vmx;
    u64 mask = v->vmcs.f[VMCS_CR0_GUEST_HOST_MASK];
    return (c->cr0 & ~mask) | (v->vmcs.f[VMCS_CR0_READ_SHADOW] & mask);
}

bool vmx_l2_has_rdtscp(const struct cpu *c)
{
    return vmx_proc2(c->vmx) & PROC2_RDTSCP;
}

bool vmx_l2_has_invpcid(const struct cpu *c)
{
    return vmx_proc2(c->vmx) & PROC2_INVPCID;
}

u64 vmx_wake_deadline_ns(const struct cpu *c)
{
    const struct vmx *v = c->vmx;
    if (!v->preempt_active || !c->model->tsc_khz)
        return ~0ull;
    /* the first ns at which the TSC reaches the deadline (inverse of cpu_tsc_at) */
    s64 ticks = (s64)(v->preempt_deadline_tsc - (u64)v->l1_tsc_offset);
    if (ticks <= 0)
        return 0;
    unsigned __int128 ns = ((unsigned __int128)(u64)ticks * 1000000u + c->model->tsc_khz - 1) /
                           c->model->tsc_khz;
    return ns > ~0ull ? ~0ull : (u64)ns;
}

bool vmx_wake_due(const struct cpu *c)
{
    return c->vmx->preempt_active && vmx_preempt_remaining((struct cpu *)c) == 0;
}

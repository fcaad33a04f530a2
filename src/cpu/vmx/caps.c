/* What nestor's VMX offers, as the capability MSRs report it (SDM Vol. 3D, Appendix A),
 * and IA32_FEATURE_CONTROL. Each control word is one table of the controls nestor
 * implements; every other control is reported fixed (the default1 class at 1, the rest at
 * 0) so that an L1 cannot set it and VM entry fails if it tries. */
#include "cpu/vmx/vmx_internal.h"

/* A control the implementation offers, and the VMCS fields it brings (VMXF_*). */
struct vmx_control {
    u32 bit;
    enum vmx_feature feature;
};

/* "default1" classes (SDM A.2): bits reported must-be-1 in the non-TRUE MSRs. The TRUE
 * MSRs let some of them be 0 (those offered below). */
#define PIN_DEFAULT1 (BIT(1) | BIT(2) | BIT(4))
#define PROC_DEFAULT1 (BIT(1) | BIT(4) | BIT(5) | BIT(6) | BIT(8) | BIT(13) | BIT(14) | \
                       BIT(15) | BIT(16) | BIT(26))
#define EXIT_DEFAULT1 (0x1ffu | BIT(10) | BIT(11) | BIT(13) | BIT(14) | BIT(16) | BIT(17))
#define ENTRY_DEFAULT1 (0x1ffu | BIT(12))

static const struct vmx_control pin_controls[] = {
    { PIN_EXT_INTR_EXITING, VMXF_ALWAYS },
    { PIN_NMI_EXITING, VMXF_ALWAYS },
    { PIN_VIRTUAL_NMIS, VMXF_ALWAYS },
    { PIN_PREEMPTION_TIMER, VMXF_PREEMPT_TIMER },
    { PIN_POSTED_INTR, VMXF_POSTED_INTR },
};

static const struct vmx_control proc_controls[] = {
    { PROC_INTR_WINDOW, VMXF_ALWAYS },      { PROC_TSC_OFFSETTING, VMXF_ALWAYS },
    { PROC_HLT_EXITING, VMXF_ALWAYS },      { PROC_INVLPG_EXITING, VMXF_ALWAYS },
    { PROC_MWAIT_EXITING, VMXF_ALWAYS },    { PROC_RDPMC_EXITING, VMXF_ALWAYS },
    { PROC_RDTSC_EXITING, VMXF_ALWAYS },    { PROC_CR3_LOAD_EXITING, VMXF_ALWAYS },
    { PROC_CR3_STORE_EXITING, VMXF_ALWAYS },{ PROC_CR8_LOAD_EXITING, VMXF_ALWAYS },
    { PROC_CR8_STORE_EXITING, VMXF_ALWAYS },{ PROC_NMI_WINDOW, VMXF_ALWAYS },
    { PROC_MOV_DR_EXITING, VMXF_ALWAYS },   { PROC_UNCOND_IO_EXITING, VMXF_ALWAYS },
    { PROC_IO_BITMAPS, VMXF_ALWAYS },       { PROC_MTF, VMXF_ALWAYS },
    { PROC_MSR_BITMAPS, VMXF_ALWAYS },      { PROC_MONITOR_EXITING, VMXF_ALWAYS },
    { PROC_PAUSE_EXITING, VMXF_ALWAYS },    { PROC_SECONDARY, VMXF_ALWAYS },
    { PROC_TPR_SHADOW, VMXF_TPR_SHADOW },
};

static const struct vmx_control proc2_controls[] = {
    { PROC2_EPT, VMXF_EPT },
    { PROC2_DESC_TABLE_EXITING, VMXF_ALWAYS },
    { PROC2_RDTSCP, VMXF_ALWAYS },
    { PROC2_VPID, VMXF_VPID },
    { PROC2_WBINVD_EXITING, VMXF_ALWAYS },
    { PROC2_UNRESTRICTED_GUEST, VMXF_ALWAYS },
    { PROC2_INVPCID, VMXF_ALWAYS },
    { PROC2_VMFUNC, VMXF_VMFUNC },
    { PROC2_SHADOW_VMCS, VMXF_SHADOW_VMCS },
    { PROC2_VIRT_APIC_ACCESS, VMXF_APIC_ACCESS },
    { PROC2_VIRT_X2APIC, VMXF_TPR_SHADOW },
    { PROC2_APIC_REG_VIRT, VMXF_TPR_SHADOW },
    { PROC2_VIRT_INTR_DELIVERY, VMXF_VIRT_INTR },
    { PROC2_PAUSE_LOOP_EXITING, VMXF_PLE },
    { PROC2_TSC_SCALING, VMXF_TSC_SCALING },
};

static const struct vmx_control exit_controls[] = {
    { EXIT_SAVE_DEBUG, VMXF_ALWAYS },     { EXIT_HOST_ADDR_SPACE, VMXF_ALWAYS },
    { EXIT_ACK_INTR, VMXF_ALWAYS },       { EXIT_SAVE_PAT, VMXF_PAT },
    { EXIT_LOAD_PAT, VMXF_PAT },          { EXIT_SAVE_EFER, VMXF_EFER },
    { EXIT_LOAD_EFER, VMXF_EFER },        { EXIT_SAVE_PREEMPT_TIMER, VMXF_PREEMPT_TIMER },
};

static const struct vmx_control entry_controls[] = {
    { ENTRY_LOAD_DEBUG, VMXF_ALWAYS },
    { ENTRY_IA32E_GUEST, VMXF_ALWAYS },
    { ENTRY_LOAD_PAT, VMXF_PAT },
    { ENTRY_LOAD_EFER, VMXF_EFER },
};

/* One control MSR: allowed-0 settings in bits 31:0 (a 1 = the control must be 1),
 * allowed-1 settings in bits 63:32 (a 1 = the control may be 1). */
static u64 ctl_msr(u32 must1, const struct vmx_control *t, size_t n, u32 *features)
{
    u32 may1 = must1;
    for (size_t k = 0; k < n; k++) {
        may1 |= t[k].bit;
        *features |= VMXF_MASK(t[k].feature);
    }
    return (u64)may1 << 32 | must1;
}

/* IA32_VMX_MISC (SDM A.6) */
#define MISC_PREEMPT_RATE 5u          /* the timer counts every 2^5 TSC ticks */
#define MISC_STORE_LMA BIT(5)         /* exits store EFER.LMA into "IA-32e mode guest" */
#define MISC_ACT_HLT BIT(6)
#define MISC_ACT_SHUTDOWN BIT(7)
#define MISC_ACT_WAIT_SIPI BIT(8)
#define MISC_CR3_TARGETS(n) ((u64)(n) << 16)
#define MISC_VMWRITE_ANY BIT(29)      /* VMWRITE may write the exit-information fields */
#define MISC_INJECT_LEN0 BIT(30)      /* software events may be injected with length 0 */

void vmx_caps_build(struct cpu *c, struct vmx_caps *caps)
{
    u32 f = VMXF_MASK(VMXF_ALWAYS);
    u64 *m = caps->msr;
    m[VMX_BASIC] = VMX_REVISION | (u64)4096 << 32 | 6ull << 50 /* write-back */ |
                   BIT(54) /* INS/OUTS information */ | BIT(55) /* TRUE controls */;
    m[VMX_TRUE_PINBASED] = ctl_msr(PIN_DEFAULT1, pin_controls, ARRAY_SIZE(pin_controls), &f);
    m[VMX_PINBASED] = m[VMX_TRUE_PINBASED];
    /* CR3-load/store exiting are default1 but may be 0 in the TRUE MSR */
    m[VMX_TRUE_PROCBASED] = ctl_msr(PROC_DEFAULT1 & ~(PROC_CR3_LOAD_EXITING | PROC_CR3_STORE_EXITING),
                                    proc_controls, ARRAY_SIZE(proc_controls), &f);
    m[VMX_PROCBASED] = m[VMX_TRUE_PROCBASED] | PROC_DEFAULT1;
    m[VMX_PROCBASED2] = ctl_msr(0, proc2_controls, ARRAY_SIZE(proc2_controls), &f);
    /* ENCLS exiting where the model has SGX: an L1 virtualises SGX for its guests */
    if (cpuid_has(c->model, "sgx")) {
        m[VMX_PROCBASED2] |= (u64)PROC2_ENCLS_EXITING << 32;
        f |= VMXF_MASK(VMXF_ENCLS);
    }
    /* "save debug controls" is default1 but may be 0 in the TRUE MSR; likewise "load
     * debug controls" on entry */
    m[VMX_TRUE_EXIT] = ctl_msr(EXIT_DEFAULT1 & ~EXIT_SAVE_DEBUG, exit_controls,
                               ARRAY_SIZE(exit_controls), &f);
    m[VMX_EXIT] = m[VMX_TRUE_EXIT] | EXIT_DEFAULT1;
    m[VMX_TRUE_ENTRY] = ctl_msr(ENTRY_DEFAULT1 & ~ENTRY_LOAD_DEBUG, entry_controls,
                                ARRAY_SIZE(entry_controls), &f);
    m[VMX_ENTRY] = m[VMX_TRUE_ENTRY] | ENTRY_DEFAULT1;
    m[VMX_MISC] = MISC_PREEMPT_RATE | MISC_STORE_LMA | MISC_ACT_HLT | MISC_ACT_SHUTDOWN |
                  MISC_ACT_WAIT_SIPI | MISC_CR3_TARGETS(4) | MISC_VMWRITE_ANY |
                  MISC_INJECT_LEN0;
    m[VMX_CR0_FIXED0] = CR0_PE | CR0_NE | CR0_PG;
    m[VMX_CR0_FIXED1] = 0xffffffffu;
    m[VMX_CR4_FIXED0] = CR4_VMXE;
    m[VMX_CR4_FIXED1] = cpu_cr4_allowed(c) | CR4_VMXE;
    m[VMX_EPT_VPID_CAP] = EPT_CAP_EXEC_ONLY | EPT_CAP_PWL4 |
                          (cpu_has(c, CF_LA57) ? EPT_CAP_PWL5 : 0) | EPT_CAP_UC | EPT_CAP_WB |
                          EPT_CAP_2M | EPT_CAP_1G | EPT_CAP_INVEPT | EPT_CAP_AD |
                          EPT_CAP_ADV_EXIT_INFO | EPT_CAP_INVEPT_SINGLE | EPT_CAP_INVEPT_ALL |
                          VPID_CAP_INVVPID | VPID_CAP_ADDR | VPID_CAP_SINGLE | VPID_CAP_ALL |
                          VPID_CAP_SINGLE_NONGLOBAL;
    m[VMX_VMFUNC] = BIT(0); /* EPTP switching */
    f |= VMXF_MASK(VMXF_EPTP_SWITCH);
    caps->features = f;
    m[VMX_VMCS_ENUM] = (u64)vmcs_max_index(f) << 1;
}

bool vmx_ctl_ok(const struct vmx *v, int cap, u32 value)
{
    u64 m = v->caps.msr[cap];
    u32 must1 = (u32)m, may1 = (u32)(m >> 32);
    return (value & must1) == must1 && (value & ~may1) == 0;
}


bool vmx_msr_read(struct cpu *c, u32 index, u64 *value)
{
    struct vmx *v = c->vmx;
    if (index == 0x3a) {
        *value = c->msr_feature_control;
        return true;
    }
    if (!v || index < MSR_VMX_FIRST || index > MSR_VMX_LAST)
        return false;
    u32 k = index - MSR_VMX_FIRST;
    /* the TRUE MSRs and VMFUNC exist only as BASIC[55] and the secondary controls say */
    if (k == VMX_PROCBASED2 || k == VMX_EPT_VPID_CAP) {
        if (!(v->caps.msr[VMX_PROCBASED] >> 63))
            return false;
    }
    if (k == VMX_VMFUNC && !((v->caps.msr[VMX_PROCBASED2] >> 32) & PROC2_VMFUNC))
        return false;
    *value = v->caps.msr[k];
    return true;
}


/* The VMCS field table (Intel SDM Vol. 3C, Appendix B "Field Encoding in VMCS") and the
 * width rules of VMREAD and VMWRITE (SDM 25.11.2, 31.3). */
#include "cpu/vmx/vmcs.h"

/* Sorted by encoding: vmcs_field_find searches it by halves. The feature column says
 * which VMX feature the field belongs to (the SDM's "this field exists only on
 * processors that support the 1-setting of ..."). */
static const struct vmcs_field_desc fields[] = {
    { 0x0000, VMCS_VPID, VMXF_VPID, "virtual-processor identifier" },
    { 0x0002, VMCS_POSTED_INTR_NV, VMXF_POSTED_INTR, "posted-interrupt notification vector" },
    { 0x0004, VMCS_EPTP_INDEX, VMXF_EPT_VE, "EPTP index" },
    { 0x0800, VMCS_GUEST_ES_SEL, VMXF_ALWAYS, "guest ES selector" },
    { 0x0802, VMCS_GUEST_CS_SEL, VMXF_ALWAYS, "guest CS selector" },
    { 0x0804, VMCS_GUEST_SS_SEL, VMXF_ALWAYS, "guest SS selector" },
    { 0x0806, VMCS_GUEST_DS_SEL, VMXF_ALWAYS, "guest DS selector" },
    { 0x0808, VMCS_GUEST_FS_SEL, VMXF_ALWAYS, "guest FS selector" },
    { 0x080a, VMCS_GUEST_GS_SEL, VMXF_ALWAYS, "guest GS selector" },
    { 0x080c, VMCS_GUEST_LDTR_SEL, VMXF_ALWAYS, "guest LDTR selector" },
    { 0x080e, VMCS_GUEST_TR_SEL, VMXF_ALWAYS, "guest TR selector" },
    { 0x0810, VMCS_GUEST_INTR_STATUS, VMXF_VIRT_INTR, "guest interrupt status" },
    { 0x0812, VMCS_GUEST_PML_INDEX, VMXF_PML, "PML index" },
    { 0x0c00, VMCS_HOST_ES_SEL, VMXF_ALWAYS, "host ES selector" },
    { 0x0c02, VMCS_HOST_CS_SEL, VMXF_ALWAYS, "host CS selector" },
    { 0x0c04, VMCS_HOST_SS_SEL, VMXF_ALWAYS, "host SS selector" },
    { 0x0c06, VMCS_HOST_DS_SEL, VMXF_ALWAYS, "host DS selector" },
    { 0x0c08, VMCS_HOST_FS_SEL, VMXF_ALWAYS, "host FS selector" },
    { 0x0c0a, VMCS_HOST_GS_SEL, VMXF_ALWAYS, "host GS selector" },
    { 0x0c0c, VMCS_HOST_TR_SEL, VMXF_ALWAYS, "host TR selector" },
    { 0x2000, VMCS_IO_BITMAP_A, VMXF_ALWAYS, "I/O bitmap A address" },
    { 0x2002, VMCS_IO_BITMAP_B, VMXF_ALWAYS, "I/O bitmap B address" },
    { 0x2004, VMCS_MSR_BITMAP, VMXF_ALWAYS, "MSR-bitmap address" },
    { 0x2006, VMCS_EXIT_MSR_STORE_ADDR, VMXF_ALWAYS, "VM-exit MSR-store address" },
    { 0x2008, VMCS_EXIT_MSR_LOAD_ADDR, VMXF_ALWAYS, "VM-exit MSR-load address" },
    { 0x200a, VMCS_ENTRY_MSR_LOAD_ADDR, VMXF_ALWAYS, "VM-entry MSR-load address" },
    { 0x200c, VMCS_EXECUTIVE_VMCS_PTR, VMXF_ALWAYS, "executive-VMCS pointer" },
    { 0x200e, VMCS_PML_ADDR, VMXF_PML, "PML address" },
    { 0x2010, VMCS_TSC_OFFSET, VMXF_ALWAYS, "TSC offset" },
    { 0x2012, VMCS_VIRTUAL_APIC_ADDR, VMXF_TPR_SHADOW, "virtual-APIC address" },
    { 0x2014, VMCS_APIC_ACCESS_ADDR, VMXF_APIC_ACCESS, "APIC-access address" },
    { 0x2016, VMCS_POSTED_INTR_DESC_ADDR, VMXF_POSTED_INTR, "posted-interrupt descriptor address" },
    { 0x2018, VMCS_VMFUNC_CONTROLS, VMXF_VMFUNC, "VM-function controls" },
    { 0x201a, VMCS_EPT_POINTER, VMXF_EPT, "EPT pointer" },
    { 0x201c, VMCS_EOI_EXIT_BITMAP0, VMXF_VIRT_INTR, "EOI-exit bitmap 0" },
    { 0x201e, VMCS_EOI_EXIT_BITMAP1, VMXF_VIRT_INTR, "EOI-exit bitmap 1" },
    { 0x2020, VMCS_EOI_EXIT_BITMAP2, VMXF_VIRT_INTR, "EOI-exit bitmap 2" },
    { 0x2022, VMCS_EOI_EXIT_BITMAP3, VMXF_VIRT_INTR, "EOI-exit bitmap 3" },
    { 0x2024, VMCS_EPTP_LIST_ADDR, VMXF_EPTP_SWITCH, "EPTP-list address" },
    { 0x2026, VMCS_VMREAD_BITMAP, VMXF_SHADOW_VMCS, "VMREAD-bitmap address" },
    { 0x2028, VMCS_VMWRITE_BITMAP, VMXF_SHADOW_VMCS, "VMWRITE-bitmap address" },
    { 0x202a, VMCS_VE_INFO_ADDR, VMXF_EPT_VE, "virtualization-exception information address" },
    { 0x202c, VMCS_XSS_EXIT_BITMAP, VMXF_XSAVES, "XSS-exiting bitmap" },
    { 0x202e, VMCS_ENCLS_EXIT_BITMAP, VMXF_ENCLS, "ENCLS-exiting bitmap" },
    { 0x2032, VMCS_TSC_MULTIPLIER, VMXF_TSC_SCALING, "TSC multiplier" },
    { 0x2400, VMCS_GUEST_PHYSICAL_ADDR, VMXF_EPT, "guest-physical address" },
    { 0x2800, VMCS_LINK_POINTER, VMXF_ALWAYS, "VMCS link pointer" },
    { 0x2802, VMCS_GUEST_DEBUGCTL, VMXF_ALWAYS, "guest IA32_DEBUGCTL" },
    { 0x2804, VMCS_GUEST_PAT, VMXF_PAT, "guest IA32_PAT" },
    { 0x2806, VMCS_GUEST_EFER, VMXF_EFER, "guest IA32_EFER" },
    { 0x2808, VMCS_GUEST_PERF_GLOBAL_CTRL, VMXF_PERF_GLOBAL, "guest IA32_PERF_GLOBAL_CTRL" },
    { 0x280a, VMCS_GUEST_PDPTE0, VMXF_EPT, "guest PDPTE0" },
    { 0x280c, VMCS_GUEST_PDPTE1, VMXF_EPT, "guest PDPTE1" },
    { 0x280e, VMCS_GUEST_PDPTE2, VMXF_EPT, "guest PDPTE2" },
    { 0x2810, VMCS_GUEST_PDPTE3, VMXF_EPT, "guest PDPTE3" },
    { 0x2c00, VMCS_HOST_PAT, VMXF_PAT, "host IA32_PAT" },
    { 0x2c02, VMCS_HOST_EFER, VMXF_EFER, "host IA32_EFER" },
    { 0x2c04, VMCS_HOST_PERF_GLOBAL_CTRL, VMXF_PERF_GLOBAL, "host IA32_PERF_GLOBAL_CTRL" },
    { 0x4000, VMCS_PIN_CONTROLS, VMXF_ALWAYS, "pin-based VM-execution controls" },
    { 0x4002, VMCS_PROC_CONTROLS, VMXF_ALWAYS, "primary processor-based VM-execution controls" },
    { 0x4004, VMCS_EXCEPTION_BITMAP, VMXF_ALWAYS, "exception bitmap" },
    { 0x4006, VMCS_PF_ERROR_MASK, VMXF_ALWAYS, "page-fault error-code mask" },
    { 0x4008, VMCS_PF_ERROR_MATCH, VMXF_ALWAYS, "page-fault error-code match" },
    { 0x400a, VMCS_CR3_TARGET_COUNT, VMXF_ALWAYS, "CR3-target count" },
    { 0x400c, VMCS_EXIT_CONTROLS, VMXF_ALWAYS, "primary VM-exit controls" },
    { 0x400e, VMCS_EXIT_MSR_STORE_COUNT, VMXF_ALWAYS, "VM-exit MSR-store count" },
    { 0x4010, VMCS_EXIT_MSR_LOAD_COUNT, VMXF_ALWAYS, "VM-exit MSR-load count" },
    { 0x4012, VMCS_ENTRY_CONTROLS, VMXF_ALWAYS, "VM-entry controls" },
    { 0x4014, VMCS_ENTRY_MSR_LOAD_COUNT, VMXF_ALWAYS, "VM-entry MSR-load count" },
    { 0x4016, VMCS_ENTRY_INTR_INFO, VMXF_ALWAYS, "VM-entry interruption-information field" },
    { 0x4018, VMCS_ENTRY_EXCEPTION_ERROR, VMXF_ALWAYS, "VM-entry exception error code" },
    { 0x401a, VMCS_ENTRY_INSN_LEN, VMXF_ALWAYS, "VM-entry instruction length" },
    { 0x401c, VMCS_TPR_THRESHOLD, VMXF_TPR_SHADOW, "TPR threshold" },
    { 0x401e, VMCS_PROC_CONTROLS2, VMXF_ALWAYS, "secondary processor-based VM-execution controls" },
    { 0x4020, VMCS_PLE_GAP, VMXF_PLE, "PLE_Gap" },
    { 0x4022, VMCS_PLE_WINDOW, VMXF_PLE, "PLE_Window" },
    { 0x4400, VMCS_VM_INSTRUCTION_ERROR, VMXF_ALWAYS, "VM-instruction error" },
    { 0x4402, VMCS_EXIT_REASON, VMXF_ALWAYS, "exit reason" },
    { 0x4404, VMCS_EXIT_INTR_INFO, VMXF_ALWAYS, "VM-exit interruption information" },
    { 0x4406, VMCS_EXIT_INTR_ERROR, VMXF_ALWAYS, "VM-exit interruption error code" },
    { 0x4408, VMCS_IDT_VECTORING_INFO, VMXF_ALWAYS, "IDT-vectoring information field" },
    { 0x440a, VMCS_IDT_VECTORING_ERROR, VMXF_ALWAYS, "IDT-vectoring error code" },
    { 0x440c, VMCS_EXIT_INSN_LEN, VMXF_ALWAYS, "VM-exit instruction length" },
    { 0x440e, VMCS_EXIT_INSN_INFO, VMXF_ALWAYS, "VM-exit instruction information" },
    { 0x4800, VMCS_GUEST_ES_LIMIT, VMXF_ALWAYS, "guest ES limit" },
    { 0x4802, VMCS_GUEST_CS_LIMIT, VMXF_ALWAYS, "guest CS limit" },
    { 0x4804, VMCS_GUEST_SS_LIMIT, VMXF_ALWAYS, "guest SS limit" },
    { 0x4806, VMCS_GUEST_DS_LIMIT, VMXF_ALWAYS, "guest DS limit" },
    { 0x4808, VMCS_GUEST_FS_LIMIT, VMXF_ALWAYS, "guest FS limit" },
    { 0x480a, VMCS_GUEST_GS_LIMIT, VMXF_ALWAYS, "guest GS limit" },
    { 0x480c, VMCS_GUEST_LDTR_LIMIT, VMXF_ALWAYS, "guest LDTR limit" },
    { 0x480e, VMCS_GUEST_TR_LIMIT, VMXF_ALWAYS, "guest TR limit" },
    { 0x4810, VMCS_GUEST_GDTR_LIMIT, VMXF_ALWAYS, "guest GDTR limit" },
    { 0x4812, VMCS_GUEST_IDTR_LIMIT, VMXF_ALWAYS, "guest IDTR limit" },
    { 0x4814, VMCS_GUEST_ES_AR, VMXF_ALWAYS, "guest ES access rights" },
    { 0x4816, VMCS_GUEST_CS_AR, VMXF_ALWAYS, "guest CS access rights" },
    { 0x4818, VMCS_GUEST_SS_AR, VMXF_ALWAYS, "guest SS access rights" },
    { 0x481a, VMCS_GUEST_DS_AR, VMXF_ALWAYS, "guest DS access rights" },
    { 0x481c, VMCS_GUEST_FS_AR, VMXF_ALWAYS, "guest FS access rights" },
    { 0x481e, VMCS_GUEST_GS_AR, VMXF_ALWAYS, "guest GS access rights" },
    { 0x4820, VMCS_GUEST_LDTR_AR, VMXF_ALWAYS, "guest LDTR access rights" },
    { 0x4822, VMCS_GUEST_TR_AR, VMXF_ALWAYS, "guest TR access rights" },
    { 0x4824, VMCS_GUEST_INTERRUPTIBILITY, VMXF_ALWAYS, "guest interruptibility state" },
    { 0x4826, VMCS_GUEST_ACTIVITY_STATE, VMXF_ALWAYS, "guest activity state" },
    { 0x4828, VMCS_GUEST_SMBASE, VMXF_ALWAYS, "guest SMBASE" },
    { 0x482a, VMCS_GUEST_SYSENTER_CS, VMXF_ALWAYS, "guest IA32_SYSENTER_CS" },
    { 0x482e, VMCS_PREEMPT_TIMER_VALUE, VMXF_PREEMPT_TIMER, "VMX-preemption timer value" },
    { 0x4c00, VMCS_HOST_SYSENTER_CS, VMXF_ALWAYS, "host IA32_SYSENTER_CS" },
    { 0x6000, VMCS_CR0_GUEST_HOST_MASK, VMXF_ALWAYS, "CR0 guest/host mask" },
    { 0x6002, VMCS_CR4_GUEST_HOST_MASK, VMXF_ALWAYS, "CR4 guest/host mask" },
    { 0x6004, VMCS_CR0_READ_SHADOW, VMXF_ALWAYS, "CR0 read shadow" },
    { 0x6006, VMCS_CR4_READ_SHADOW, VMXF_ALWAYS, "CR4 read shadow" },
    { 0x6008, VMCS_CR3_TARGET0, VMXF_ALWAYS, "CR3-target value 0" },
    { 0x600a, VMCS_CR3_TARGET1, VMXF_ALWAYS, "CR3-target value 1" },
    { 0x600c, VMCS_CR3_TARGET2, VMXF_ALWAYS, "CR3-target value 2" },
    { 0x600e, VMCS_CR3_TARGET3, VMXF_ALWAYS, "CR3-target value 3" },
    { 0x6400, VMCS_EXIT_QUALIFICATION, VMXF_ALWAYS, "exit qualification" },
    { 0x6402, VMCS_IO_RCX, VMXF_ALWAYS, "I/O RCX" },
    { 0x6404, VMCS_IO_RSI, VMXF_ALWAYS, "I/O RSI" },
    { 0x6406, VMCS_IO_RDI, VMXF_ALWAYS, "I/O RDI" },
    { 0x6408, VMCS_IO_RIP, VMXF_ALWAYS, "I/O RIP" },
    { 0x640a, VMCS_GUEST_LINEAR_ADDR, VMXF_ALWAYS, "guest-linear address" },
    { 0x6800, VMCS_GUEST_CR0, VMXF_ALWAYS, "guest CR0" },
    { 0x6802, VMCS_GUEST_CR3, VMXF_ALWAYS, "guest CR3" },
    { 0x6804, VMCS_GUEST_CR4, VMXF_ALWAYS, "guest CR4" },
    { 0x6806, VMCS_GUEST_ES_BASE, VMXF_ALWAYS, "guest ES base" },
    { 0x6808, VMCS_GUEST_CS_BASE, VMXF_ALWAYS, "guest CS base" },
    { 0x680a, VMCS_GUEST_SS_BASE, VMXF_ALWAYS, "guest SS base" },
    { 0x680c, VMCS_GUEST_DS_BASE, VMXF_ALWAYS, "guest DS base" },
    { 0x680e, VMCS_GUEST_FS_BASE, VMXF_ALWAYS, "guest FS base" },
    { 0x6810, VMCS_GUEST_GS_BASE, VMXF_ALWAYS, "guest GS base" },
    { 0x6812, VMCS_GUEST_LDTR_BASE, VMXF_ALWAYS, "guest LDTR base" },
    { 0x6814, VMCS_GUEST_TR_BASE, VMXF_ALWAYS, "guest TR base" },
    { 0x6816, VMCS_GUEST_GDTR_BASE, VMXF_ALWAYS, "guest GDTR base" },
    { 0x6818, VMCS_GUEST_IDTR_BASE, VMXF_ALWAYS, "guest IDTR base" },
    { 0x681a, VMCS_GUEST_DR7, VMXF_ALWAYS, "guest DR7" },
    { 0x681c, VMCS_GUEST_RSP, VMXF_ALWAYS, "guest RSP" },
    { 0x681e, VMCS_GUEST_RIP, VMXF_ALWAYS, "guest RIP" },
    { 0x6820, VMCS_GUEST_RFLAGS, VMXF_ALWAYS, "guest RFLAGS" },
    { 0x6822, VMCS_GUEST_PENDING_DBG, VMXF_ALWAYS, "guest pending debug exceptions" },
    { 0x6824, VMCS_GUEST_SYSENTER_ESP, VMXF_ALWAYS, "guest IA32_SYSENTER_ESP" },
    { 0x6826, VMCS_GUEST_SYSENTER_EIP, VMXF_ALWAYS, "guest IA32_SYSENTER_EIP" },
    { 0x6c00, VMCS_HOST_CR0, VMXF_ALWAYS, "host CR0" },
    { 0x6c02, VMCS_HOST_CR3, VMXF_ALWAYS, "host CR3" },
    { 0x6c04, VMCS_HOST_CR4, VMXF_ALWAYS, "host CR4" },
    { 0x6c06, VMCS_HOST_FS_BASE, VMXF_ALWAYS, "host FS base" },
    { 0x6c08, VMCS_HOST_GS_BASE, VMXF_ALWAYS, "host GS base" },
    { 0x6c0a, VMCS_HOST_TR_BASE, VMXF_ALWAYS, "host TR base" },
    { 0x6c0c, VMCS_HOST_GDTR_BASE, VMXF_ALWAYS, "host GDTR base" },
    { 0x6c0e, VMCS_HOST_IDTR_BASE, VMXF_ALWAYS, "host IDTR base" },
    { 0x6c10, VMCS_HOST_SYSENTER_ESP, VMXF_ALWAYS, "host IA32_SYSENTER_ESP" },
    { 0x6c12, VMCS_HOST_SYSENTER_EIP, VMXF_ALWAYS, "host IA32_SYSENTER_EIP" },
    { 0x6c14, VMCS_HOST_RSP, VMXF_ALWAYS, "host RSP" },
    { 0x6c16, VMCS_HOST_RIP, VMXF_ALWAYS, "host RIP" },
};
#define NFIELDS ((int)(sizeof(fields) / sizeof(fields[0])))
_Static_assert(sizeof(fields) / sizeof(fields[0]) == VMCS_NFIELDS,
               "one table row per storage slot");

const struct vmcs_field_desc *vmcs_field_table(int *count)
{
    *count = NFIELDS;
    return fields;
}

static bool offered(const struct vmcs_field_desc *d, u32 features)
{
    return d->needs == VMXF_ALWAYS || (features & VMXF_MASK(d->needs));
}

const struct vmcs_field_desc *vmcs_field_find(u64 encoding, u32 features, bool *high)
{
    /* bits 12 and 63:15 are reserved: no field has them set */
    if (encoding & ~(u64)0x6fff)
        return NULL;
    u32 full = (u32)encoding & ~VMCS_ENC_HIGH;
    int lo = 0, hi = NFIELDS - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (fields[mid].encoding == full) {
            const struct vmcs_field_desc *d = &fields[mid];
            bool h = encoding & VMCS_ENC_HIGH;
            /* only a 64-bit field has a high half to name */
            if (h && vmcs_field_width(d) != VMCS_W64)
                return NULL;
            if (!offered(d, features))
                return NULL;
            *high = h;
            return d;
        }
        if (fields[mid].encoding < full)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

u32 vmcs_max_index(u32 features)
{
    u32 max = 0;
    for (int i = 0; i < NFIELDS; i++)
        if (offered(&fields[i], features) && VMCS_ENC_INDEX(fields[i].encoding) > max)
            max = VMCS_ENC_INDEX(fields[i].encoding);
    return max;
}

static u64 width_mask(enum vmcs_width w)
{
    switch (w) {
    case VMCS_W16:
        return 0xffff;
    case VMCS_W32:
        return 0xffffffffu;
    default:
        return ~0ull;
    }
}

u64 vmcs_read(const struct vmcs *v, const struct vmcs_field_desc *d, bool high)
{
    u64 val = v->f[d->field];
    if (high)
        return val >> 32;
    return val & width_mask(vmcs_field_width(d));
}

void vmcs_write(struct vmcs *v, const struct vmcs_field_desc *d, bool high, u64 value)
{
    u64 *slot = &v->f[d->field];
    if (high)
        *slot = (*slot & 0xffffffffu) | (value << 32);
    else
        *slot = value & width_mask(vmcs_field_width(d));
}

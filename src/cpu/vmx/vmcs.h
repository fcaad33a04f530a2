/* The VMCS as nestor keeps it: one table maps every architectural field encoding (Intel
 * SDM Vol. 3C, Appendix B) to its slot, width, kind and the VMX feature without which the
 * field does not exist. VMREAD, VMWRITE, VMCS shadowing, VMCS_ENUM and save/restore all go
 * through this table; nothing else knows a field's encoding.
 *
 * The storage is private to nestor (SDM 25.2: software must not depend on the VMCS
 * region's format): a dense array of 64-bit slots, one per field, indexed by enum
 * vmcs_field, so that the engine reads a field as v->f[VMCS_GUEST_RIP]. */
#ifndef NESTOR_CPU_VMX_VMCS_H
#define NESTOR_CPU_VMX_VMCS_H

#include "common.h"

/* Encoding bits (SDM 25.11.2): access type (bit 0: the high 32 bits of a 64-bit field),
 * index (9:1), type (11:10), width (14:13); bits 12 and 31:15 are 0 in every field. */
#define VMCS_ENC_HIGH BIT(0)
#define VMCS_ENC_INDEX(e) (((e) >> 1) & 0x1ffu)
#define VMCS_ENC_TYPE(e) (((e) >> 10) & 3u)
#define VMCS_ENC_WIDTH(e) (((e) >> 13) & 3u)

enum vmcs_width { VMCS_W16 = 0, VMCS_W64 = 1, VMCS_W32 = 2, VMCS_WNAT = 3 };
enum vmcs_kind { VMCS_CONTROL = 0, VMCS_EXIT_INFO = 1, VMCS_GUEST = 2, VMCS_HOST = 3 };

/* The VMX features a field can depend on: the field exists only when the feature is
 * offered (its control can be 1, or its capability bit is set), as on a processor
 * without the feature (VMREAD/VMWRITE of it: VMfailValid, "unsupported VMCS component").
 * The VMX capability model (the set of offered features) is a bit mask of these. */
enum vmx_feature {
    VMXF_ALWAYS = 0,        /* every VMX processor */
    VMXF_VPID,              /* secondary "enable VPID" */
    VMXF_POSTED_INTR,       /* pin-based "process posted interrupts" */
    VMXF_EPT,               /* secondary "enable EPT" */
    VMXF_VIRT_INTR,         /* secondary "virtual-interrupt delivery" */
    VMXF_PML,               /* secondary "enable PML" */
    VMXF_TPR_SHADOW,        /* primary "use TPR shadow": the virtual-APIC page */
    VMXF_APIC_ACCESS,       /* secondary "virtualize APIC accesses" */
    VMXF_VMFUNC,            /* secondary "enable VM functions" */
    VMXF_EPTP_SWITCH,       /* VM function 0, EPTP switching: the EPTP list */
    VMXF_SHADOW_VMCS,       /* secondary "VMCS shadowing": the VMREAD/VMWRITE bitmaps */
    VMXF_EPT_VE,            /* secondary "EPT-violation #VE" */
    VMXF_XSAVES,            /* secondary "enable XSAVES/XRSTORS": the XSS-exiting bitmap */
    VMXF_TSC_SCALING,       /* secondary "use TSC scaling" */
    VMXF_PREEMPT_TIMER,     /* pin-based "activate VMX-preemption timer" */
    VMXF_PAT,               /* entry "load IA32_PAT" / exit "save/load IA32_PAT" */
    VMXF_EFER,              /* entry "load IA32_EFER" / exit "save/load IA32_EFER" */
    VMXF_PERF_GLOBAL,       /* "load IA32_PERF_GLOBAL_CTRL" */
    VMXF_PLE,               /* secondary "PAUSE-loop exiting" */
    VMXF_ENCLS,             /* secondary "enable ENCLS exiting" */
    VMXF_COUNT
};
#define VMXF_MASK(f) (1u << (f))

/* Every field, as its storage slot. The names follow the SDM's (Appendix B). */
enum vmcs_field {
    /* 16-bit control */
    VMCS_VPID, VMCS_POSTED_INTR_NV, VMCS_EPTP_INDEX,
    /* 16-bit guest state */
    VMCS_GUEST_ES_SEL, VMCS_GUEST_CS_SEL, VMCS_GUEST_SS_SEL, VMCS_GUEST_DS_SEL,
    VMCS_GUEST_FS_SEL, VMCS_GUEST_GS_SEL, VMCS_GUEST_LDTR_SEL, VMCS_GUEST_TR_SEL,
    VMCS_GUEST_INTR_STATUS, VMCS_GUEST_PML_INDEX,
    /* 16-bit host state */
    VMCS_HOST_ES_SEL, VMCS_HOST_CS_SEL, VMCS_HOST_SS_SEL, VMCS_HOST_DS_SEL,
    VMCS_HOST_FS_SEL, VMCS_HOST_GS_SEL, VMCS_HOST_TR_SEL,
    /* 64-bit control */
    VMCS_IO_BITMAP_A, VMCS_IO_BITMAP_B, VMCS_MSR_BITMAP, VMCS_EXIT_MSR_STORE_ADDR,
    VMCS_EXIT_MSR_LOAD_ADDR, VMCS_ENTRY_MSR_LOAD_ADDR, VMCS_EXECUTIVE_VMCS_PTR,
    VMCS_PML_ADDR, VMCS_TSC_OFFSET, VMCS_VIRTUAL_APIC_ADDR, VMCS_APIC_ACCESS_ADDR,
    VMCS_POSTED_INTR_DESC_ADDR, VMCS_VMFUNC_CONTROLS, VMCS_EPT_POINTER,
    VMCS_EOI_EXIT_BITMAP0, VMCS_EOI_EXIT_BITMAP1, VMCS_EOI_EXIT_BITMAP2,
    VMCS_EOI_EXIT_BITMAP3, VMCS_EPTP_LIST_ADDR, VMCS_VMREAD_BITMAP, VMCS_VMWRITE_BITMAP,
    VMCS_VE_INFO_ADDR, VMCS_XSS_EXIT_BITMAP, VMCS_ENCLS_EXIT_BITMAP, VMCS_TSC_MULTIPLIER,
    /* 64-bit read-only data */
    VMCS_GUEST_PHYSICAL_ADDR,
    /* 64-bit guest state */
    VMCS_LINK_POINTER, VMCS_GUEST_DEBUGCTL, VMCS_GUEST_PAT, VMCS_GUEST_EFER,
    VMCS_GUEST_PERF_GLOBAL_CTRL, VMCS_GUEST_PDPTE0, VMCS_GUEST_PDPTE1, VMCS_GUEST_PDPTE2,
    VMCS_GUEST_PDPTE3,
    /* 64-bit host state */
    VMCS_HOST_PAT, VMCS_HOST_EFER, VMCS_HOST_PERF_GLOBAL_CTRL,
    /* 32-bit control */
    VMCS_PIN_CONTROLS, VMCS_PROC_CONTROLS, VMCS_EXCEPTION_BITMAP, VMCS_PF_ERROR_MASK,
    VMCS_PF_ERROR_MATCH, VMCS_CR3_TARGET_COUNT, VMCS_EXIT_CONTROLS, VMCS_EXIT_MSR_STORE_COUNT,
    VMCS_EXIT_MSR_LOAD_COUNT, VMCS_ENTRY_CONTROLS, VMCS_ENTRY_MSR_LOAD_COUNT,
    VMCS_ENTRY_INTR_INFO, VMCS_ENTRY_EXCEPTION_ERROR, VMCS_ENTRY_INSN_LEN, VMCS_TPR_THRESHOLD,
    VMCS_PROC_CONTROLS2, VMCS_PLE_GAP, VMCS_PLE_WINDOW,
    /* 32-bit read-only data */
    VMCS_VM_INSTRUCTION_ERROR, VMCS_EXIT_REASON, VMCS_EXIT_INTR_INFO, VMCS_EXIT_INTR_ERROR,
    VMCS_IDT_VECTORING_INFO, VMCS_IDT_VECTORING_ERROR, VMCS_EXIT_INSN_LEN, VMCS_EXIT_INSN_INFO,
    /* 32-bit guest state */
    VMCS_GUEST_ES_LIMIT, VMCS_GUEST_CS_LIMIT, VMCS_GUEST_SS_LIMIT, VMCS_GUEST_DS_LIMIT,
    VMCS_GUEST_FS_LIMIT, VMCS_GUEST_GS_LIMIT, VMCS_GUEST_LDTR_LIMIT, VMCS_GUEST_TR_LIMIT,
    VMCS_GUEST_GDTR_LIMIT, VMCS_GUEST_IDTR_LIMIT, VMCS_GUEST_ES_AR, VMCS_GUEST_CS_AR,
    VMCS_GUEST_SS_AR, VMCS_GUEST_DS_AR, VMCS_GUEST_FS_AR, VMCS_GUEST_GS_AR, VMCS_GUEST_LDTR_AR,
    VMCS_GUEST_TR_AR, VMCS_GUEST_INTERRUPTIBILITY, VMCS_GUEST_ACTIVITY_STATE, VMCS_GUEST_SMBASE,
    VMCS_GUEST_SYSENTER_CS, VMCS_PREEMPT_TIMER_VALUE,
    /* 32-bit host state */
    VMCS_HOST_SYSENTER_CS,
    /* natural-width control */
    VMCS_CR0_GUEST_HOST_MASK, VMCS_CR4_GUEST_HOST_MASK, VMCS_CR0_READ_SHADOW,
    VMCS_CR4_READ_SHADOW, VMCS_CR3_TARGET0, VMCS_CR3_TARGET1, VMCS_CR3_TARGET2,
    VMCS_CR3_TARGET3,
    /* natural-width read-only data */
    VMCS_EXIT_QUALIFICATION, VMCS_IO_RCX, VMCS_IO_RSI, VMCS_IO_RDI, VMCS_IO_RIP,
    VMCS_GUEST_LINEAR_ADDR,
    /* natural-width guest state */
    VMCS_GUEST_CR0, VMCS_GUEST_CR3, VMCS_GUEST_CR4, VMCS_GUEST_ES_BASE, VMCS_GUEST_CS_BASE,
    VMCS_GUEST_SS_BASE, VMCS_GUEST_DS_BASE, VMCS_GUEST_FS_BASE, VMCS_GUEST_GS_BASE,
    VMCS_GUEST_LDTR_BASE, VMCS_GUEST_TR_BASE, VMCS_GUEST_GDTR_BASE, VMCS_GUEST_IDTR_BASE,
    VMCS_GUEST_DR7, VMCS_GUEST_RSP, VMCS_GUEST_RIP, VMCS_GUEST_RFLAGS,
    VMCS_GUEST_PENDING_DBG, VMCS_GUEST_SYSENTER_ESP, VMCS_GUEST_SYSENTER_EIP,
    /* natural-width host state */
    VMCS_HOST_CR0, VMCS_HOST_CR3, VMCS_HOST_CR4, VMCS_HOST_FS_BASE, VMCS_HOST_GS_BASE,
    VMCS_HOST_TR_BASE, VMCS_HOST_GDTR_BASE, VMCS_HOST_IDTR_BASE, VMCS_HOST_SYSENTER_ESP,
    VMCS_HOST_SYSENTER_EIP, VMCS_HOST_RSP, VMCS_HOST_RIP,
    VMCS_NFIELDS
};

struct vmcs_field_desc {
    u32 encoding;       /* the full (access type 0) encoding */
    enum vmcs_field field;
    enum vmx_feature needs;
    const char *name;
};

/* The fields' contents. The launch state and the rest of what VMX keeps per VMCS live
 * with the VMX implementation. */
struct vmcs {
    u64 f[VMCS_NFIELDS];
};

/* The table, in encoding order; *count gets its length. */
const struct vmcs_field_desc *vmcs_field_table(int *count);

/* The field an encoding names, if it exists with the features offered (a mask of
 * VMXF_MASK bits): its descriptor, with *high set for the high-half access of a 64-bit
 * field. NULL for an encoding with reserved bits set, an unknown one, a high access of a
 * field that is not 64-bit, or a field whose feature is not offered. */
const struct vmcs_field_desc *vmcs_field_find(u64 encoding, u32 features, bool *high);

/* The highest index (encoding bits 9:1) of any field that exists with these features:
 * IA32_VMX_VMCS_ENUM bits 9:1 (SDM A.9). */
u32 vmcs_max_index(u32 features);

/* VMREAD's value of a field (found by vmcs_field_find): the field's bits for its width;
 * the high half of a 64-bit field is bits 63:32 in bits 31:0. */
u64 vmcs_read(const struct vmcs *v, const struct vmcs_field_desc *d, bool high);

/* VMWRITE's effect: the value truncated to the field's width (16- and 32-bit fields keep
 * their low bits; natural-width ones all 64, the caller truncates outside 64-bit mode);
 * a high access replaces bits 63:32 only. */
void vmcs_write(struct vmcs *v, const struct vmcs_field_desc *d, bool high, u64 value);

/* Width and kind of a field from its encoding. */
static inline enum vmcs_width vmcs_field_width(const struct vmcs_field_desc *d)
{
    return (enum vmcs_width)VMCS_ENC_WIDTH(d->encoding);
}
static inline enum vmcs_kind vmcs_field_kind(const struct vmcs_field_desc *d)
{
    return (enum vmcs_kind)VMCS_ENC_TYPE(d->encoding);
}

#endif

/* The enlightened VMCS (Hyper-V TLFS 6.0, "Enlightened VMCS", version 1): a guest
 * hypervisor that the Hyper-V interface told to use it (CPUID 40000004h EAX bit 14,
 * hv-evmcs) keeps its VMCS in a structure of its own memory instead of VMPTRLD and
 * VMREAD/VMWRITE: it names the structure in its VP assist page (current_nested_vmcs,
 * with enlighten_vmentry set) and VMLAUNCH/VMRESUME take it from there.
 *
 * The structure's layout is one more column of data over the VMCS fields: evmcs_layout
 * gives each field nestor has its offset in version 1 and its clean-field group. At
 * VM entry the groups the guest marked dirty (a clear bit in hv_clean_fields; all of them
 * on VMLAUNCH and for a structure not used before) are read into the current VMCS, and
 * then every group counts as clean, as KVM leaves it; at VM exit, and at a VMfailValid,
 * the guest state, the exit information and the controls an exit may change are written
 * back. Fields of the "ALL" group (the MSR-area addresses and counts, the page-fault
 * error-code mask and match, the CR3-target count) are not read, as KVM does not: they
 * stay 0. The structure has no launch state: VMLAUNCH and VMRESUME are taken as said. */
#include <string.h>

#include "cpu/nested.h"
#include "cpu/vmx/vmx_internal.h"

#define PROC2_ENABLE_PML BIT(17)

/* hv_clean_fields bits */
enum evmcs_group {
    EVMCS_NONE = -1, /* read at every entry */
    EVMCS_IO_BITMAP = 0, EVMCS_MSR_BITMAP = 1, EVMCS_CONTROL_GRP2 = 2, EVMCS_CONTROL_GRP1 = 3,
    EVMCS_CONTROL_PROC = 4, EVMCS_CONTROL_EVENT = 5, EVMCS_CONTROL_ENTRY = 6,
    EVMCS_CONTROL_EXCPN = 7, EVMCS_CRDR = 8, EVMCS_CONTROL_XLAT = 9, EVMCS_GUEST_BASIC = 10,
    EVMCS_GUEST_GRP1 = 11, EVMCS_GUEST_GRP2 = 12, EVMCS_HOST_POINTER = 13, EVMCS_HOST_GRP1 = 14,
    EVMCS_ALL = 16, /* no group of its own: never read (see above) */
};
#define EVMCS_CLEAN_ALL 0xffffu

#define EVMCS_REVISION 1u
#define EVMCS_OFF_REVISION 0x000u
#define EVMCS_OFF_CLEAN_FIELDS 0x338u
#define EVMCS_SIZE 0x400u
/* the VP assist page (struct hv_vp_assist_page) */
#define ASSIST_OFF_ENLIGHTEN_VMENTRY 0x28u
#define ASSIST_OFF_CURRENT_NESTED_VMCS 0x30u

struct evmcs_slot {
    u16 offset;       /* 0: the field is not in the structure */
    s8 group;
};

/* Version 1's layout (Linux's struct hv_enlightened_vmcs; KVM's evmcs field table) */
static const struct evmcs_slot evmcs_layout[VMCS_NFIELDS] = {
    [VMCS_HOST_ES_SEL] = { 0x008, EVMCS_HOST_GRP1 },
    [VMCS_HOST_CS_SEL] = { 0x00a, EVMCS_HOST_GRP1 },
    [VMCS_HOST_SS_SEL] = { 0x00c, EVMCS_HOST_GRP1 },
    [VMCS_HOST_DS_SEL] = { 0x00e, EVMCS_HOST_GRP1 },
    [VMCS_HOST_FS_SEL] = { 0x010, EVMCS_HOST_GRP1 },
    [VMCS_HOST_GS_SEL] = { 0x012, EVMCS_HOST_GRP1 },
    [VMCS_HOST_TR_SEL] = { 0x014, EVMCS_HOST_GRP1 },
    [VMCS_HOST_PAT] = { 0x018, EVMCS_HOST_GRP1 },
    [VMCS_HOST_EFER] = { 0x020, EVMCS_HOST_GRP1 },
    [VMCS_HOST_CR0] = { 0x028, EVMCS_HOST_GRP1 },
    [VMCS_HOST_CR3] = { 0x030, EVMCS_HOST_GRP1 },
    [VMCS_HOST_CR4] = { 0x038, EVMCS_HOST_GRP1 },
    [VMCS_HOST_SYSENTER_ESP] = { 0x040, EVMCS_HOST_GRP1 },
    [VMCS_HOST_SYSENTER_EIP] = { 0x048, EVMCS_HOST_GRP1 },
    [VMCS_HOST_RIP] = { 0x050, EVMCS_HOST_GRP1 },
    [VMCS_HOST_SYSENTER_CS] = { 0x058, EVMCS_HOST_GRP1 },
    [VMCS_PIN_CONTROLS] = { 0x05c, EVMCS_CONTROL_GRP1 },
    [VMCS_EXIT_CONTROLS] = { 0x060, EVMCS_CONTROL_GRP1 },
    [VMCS_PROC_CONTROLS2] = { 0x064, EVMCS_CONTROL_GRP1 },
    [VMCS_IO_BITMAP_A] = { 0x068, EVMCS_IO_BITMAP },
    [VMCS_IO_BITMAP_B] = { 0x070, EVMCS_IO_BITMAP },
    [VMCS_MSR_BITMAP] = { 0x078, EVMCS_MSR_BITMAP },
    [VMCS_GUEST_ES_SEL] = { 0x080, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_CS_SEL] = { 0x082, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_SS_SEL] = { 0x084, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_DS_SEL] = { 0x086, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_FS_SEL] = { 0x088, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_GS_SEL] = { 0x08a, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_LDTR_SEL] = { 0x08c, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_TR_SEL] = { 0x08e, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_ES_LIMIT] = { 0x090, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_CS_LIMIT] = { 0x094, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_SS_LIMIT] = { 0x098, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_DS_LIMIT] = { 0x09c, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_FS_LIMIT] = { 0x0a0, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_GS_LIMIT] = { 0x0a4, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_LDTR_LIMIT] = { 0x0a8, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_TR_LIMIT] = { 0x0ac, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_GDTR_LIMIT] = { 0x0b0, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_IDTR_LIMIT] = { 0x0b4, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_ES_AR] = { 0x0b8, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_CS_AR] = { 0x0bc, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_SS_AR] = { 0x0c0, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_DS_AR] = { 0x0c4, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_FS_AR] = { 0x0c8, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_GS_AR] = { 0x0cc, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_LDTR_AR] = { 0x0d0, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_TR_AR] = { 0x0d4, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_ES_BASE] = { 0x0d8, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_CS_BASE] = { 0x0e0, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_SS_BASE] = { 0x0e8, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_DS_BASE] = { 0x0f0, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_FS_BASE] = { 0x0f8, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_GS_BASE] = { 0x100, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_LDTR_BASE] = { 0x108, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_TR_BASE] = { 0x110, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_GDTR_BASE] = { 0x118, EVMCS_GUEST_GRP2 },
    [VMCS_GUEST_IDTR_BASE] = { 0x120, EVMCS_GUEST_GRP2 },
    [VMCS_EXIT_MSR_STORE_ADDR] = { 0x140, EVMCS_ALL },
    [VMCS_EXIT_MSR_LOAD_ADDR] = { 0x148, EVMCS_ALL },
    [VMCS_ENTRY_MSR_LOAD_ADDR] = { 0x150, EVMCS_ALL },
    [VMCS_CR3_TARGET0] = { 0x158, EVMCS_ALL },
    [VMCS_CR3_TARGET1] = { 0x160, EVMCS_ALL },
    [VMCS_CR3_TARGET2] = { 0x168, EVMCS_ALL },
    [VMCS_CR3_TARGET3] = { 0x170, EVMCS_ALL },
    [VMCS_PF_ERROR_MASK] = { 0x178, EVMCS_ALL },
    [VMCS_PF_ERROR_MATCH] = { 0x17c, EVMCS_ALL },
    [VMCS_CR3_TARGET_COUNT] = { 0x180, EVMCS_ALL },
    [VMCS_EXIT_MSR_STORE_COUNT] = { 0x184, EVMCS_ALL },
    [VMCS_EXIT_MSR_LOAD_COUNT] = { 0x188, EVMCS_ALL },
    [VMCS_ENTRY_MSR_LOAD_COUNT] = { 0x18c, EVMCS_ALL },
    [VMCS_TSC_OFFSET] = { 0x190, EVMCS_CONTROL_GRP2 },
    [VMCS_VIRTUAL_APIC_ADDR] = { 0x198, EVMCS_CONTROL_GRP2 },
    [VMCS_LINK_POINTER] = { 0x1a0, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_DEBUGCTL] = { 0x1a8, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_PAT] = { 0x1b0, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_EFER] = { 0x1b8, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_PDPTE0] = { 0x1c0, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_PDPTE1] = { 0x1c8, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_PDPTE2] = { 0x1d0, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_PDPTE3] = { 0x1d8, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_PENDING_DBG] = { 0x1e0, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_SYSENTER_ESP] = { 0x1e8, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_SYSENTER_EIP] = { 0x1f0, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_ACTIVITY_STATE] = { 0x1f8, EVMCS_GUEST_GRP1 },
    [VMCS_GUEST_SYSENTER_CS] = { 0x1fc, EVMCS_GUEST_GRP1 },
    [VMCS_CR0_GUEST_HOST_MASK] = { 0x200, EVMCS_CRDR },
    [VMCS_CR4_GUEST_HOST_MASK] = { 0x208, EVMCS_CRDR },
    [VMCS_CR0_READ_SHADOW] = { 0x210, EVMCS_CRDR },
    [VMCS_CR4_READ_SHADOW] = { 0x218, EVMCS_CRDR },
    [VMCS_GUEST_CR0] = { 0x220, EVMCS_CRDR },
    [VMCS_GUEST_CR3] = { 0x228, EVMCS_CRDR },
    [VMCS_GUEST_CR4] = { 0x230, EVMCS_CRDR },
    [VMCS_GUEST_DR7] = { 0x238, EVMCS_CRDR },
    [VMCS_HOST_FS_BASE] = { 0x240, EVMCS_HOST_POINTER },
    [VMCS_HOST_GS_BASE] = { 0x248, EVMCS_HOST_POINTER },
    [VMCS_HOST_TR_BASE] = { 0x250, EVMCS_HOST_POINTER },
    [VMCS_HOST_GDTR_BASE] = { 0x258, EVMCS_HOST_POINTER },
    [VMCS_HOST_IDTR_BASE] = { 0x260, EVMCS_HOST_POINTER },
    [VMCS_HOST_RSP] = { 0x268, EVMCS_HOST_POINTER },
    [VMCS_EPT_POINTER] = { 0x270, EVMCS_CONTROL_XLAT },
    [VMCS_VPID] = { 0x278, EVMCS_CONTROL_XLAT },
    [VMCS_GUEST_PHYSICAL_ADDR] = { 0x2a8, EVMCS_NONE },
    [VMCS_VM_INSTRUCTION_ERROR] = { 0x2b0, EVMCS_NONE },
    [VMCS_EXIT_REASON] = { 0x2b4, EVMCS_NONE },
    [VMCS_EXIT_INTR_INFO] = { 0x2b8, EVMCS_NONE },
    [VMCS_EXIT_INTR_ERROR] = { 0x2bc, EVMCS_NONE },
    [VMCS_IDT_VECTORING_INFO] = { 0x2c0, EVMCS_NONE },
    [VMCS_IDT_VECTORING_ERROR] = { 0x2c4, EVMCS_NONE },
    [VMCS_EXIT_INSN_LEN] = { 0x2c8, EVMCS_NONE },
    [VMCS_EXIT_INSN_INFO] = { 0x2cc, EVMCS_NONE },
    [VMCS_EXIT_QUALIFICATION] = { 0x2d0, EVMCS_NONE },
    [VMCS_IO_RCX] = { 0x2d8, EVMCS_NONE },
    [VMCS_IO_RSI] = { 0x2e0, EVMCS_NONE },
    [VMCS_IO_RDI] = { 0x2e8, EVMCS_NONE },
    [VMCS_IO_RIP] = { 0x2f0, EVMCS_NONE },
    [VMCS_GUEST_LINEAR_ADDR] = { 0x2f8, EVMCS_NONE },
    [VMCS_GUEST_RSP] = { 0x300, EVMCS_GUEST_BASIC },
    [VMCS_GUEST_RFLAGS] = { 0x308, EVMCS_GUEST_BASIC },
    [VMCS_GUEST_INTERRUPTIBILITY] = { 0x310, EVMCS_GUEST_BASIC },
    [VMCS_PROC_CONTROLS] = { 0x314, EVMCS_CONTROL_PROC },
    [VMCS_EXCEPTION_BITMAP] = { 0x318, EVMCS_CONTROL_EXCPN },
    [VMCS_ENTRY_CONTROLS] = { 0x31c, EVMCS_CONTROL_ENTRY },
    [VMCS_ENTRY_INTR_INFO] = { 0x320, EVMCS_CONTROL_EVENT },
    [VMCS_ENTRY_EXCEPTION_ERROR] = { 0x324, EVMCS_CONTROL_EVENT },
    [VMCS_ENTRY_INSN_LEN] = { 0x328, EVMCS_CONTROL_EVENT },
    [VMCS_TPR_THRESHOLD] = { 0x32c, EVMCS_NONE },
    [VMCS_GUEST_RIP] = { 0x330, EVMCS_NONE },
    [VMCS_GUEST_PERF_GLOBAL_CTRL] = { 0x388, EVMCS_GUEST_GRP1 },
    [VMCS_XSS_EXIT_BITMAP] = { 0x3c0, EVMCS_CONTROL_GRP2 },
    [VMCS_ENCLS_EXIT_BITMAP] = { 0x3c8, EVMCS_CONTROL_GRP2 },
    [VMCS_HOST_PERF_GLOBAL_CTRL] = { 0x3d0, EVMCS_HOST_GRP1 },
    [VMCS_TSC_MULTIPLIER] = { 0x3d8, EVMCS_CONTROL_GRP2 },
};

/* Fields an exit may change besides the guest state and the exit information */
static bool written_back(enum vmcs_field f, const struct vmcs_field_desc *d)
{
    enum vmcs_kind k = vmcs_field_kind(d);
    return k == VMCS_GUEST || k == VMCS_EXIT_INFO || f == VMCS_PROC_CONTROLS ||
           f == VMCS_ENTRY_CONTROLS || f == VMCS_ENTRY_INTR_INFO ||
           f == VMCS_ENTRY_EXCEPTION_ERROR || f == VMCS_ENTRY_INSN_LEN;
}

static unsigned field_bytes(const struct vmcs_field_desc *d)
{
    switch (vmcs_field_width(d)) {
    case VMCS_W16: return 2;
    case VMCS_W32: return 4;
    default: return 8;
    }
}

/* The capability MSRs of a processor whose hypervisor offers the enlightened VMCS: the
 * controls version 1 cannot express are not offered (KVM filters them for such a guest,
 * and KVM as that guest relies on it). */
#define EVMCS1_UNSUPPORTED_PIN (PIN_POSTED_INTR | PIN_PREEMPTION_TIMER)
#define EVMCS1_UNSUPPORTED_PROC2 (PROC2_VIRT_INTR_DELIVERY | PROC2_VIRT_APIC_ACCESS |        \
                                  PROC2_APIC_REG_VIRT | PROC2_ENABLE_PML | PROC2_VMFUNC |      \
                                  PROC2_SHADOW_VMCS | PROC2_TSC_SCALING | PROC2_PAUSE_LOOP_EXITING)
#define EVMCS1_UNSUPPORTED_EXIT (EXIT_SAVE_PREEMPT_TIMER | EXIT_LOAD_PERF_GLOBAL)
#define EVMCS1_UNSUPPORTED_ENTRY ENTRY_LOAD_PERF_GLOBAL

void vmx_evmcs_offered(struct cpu *c)
{
    if (!c->vmx)
        return;
    u64 *m = c->vmx->caps.msr;
    static const struct { int cap; u32 bits; } drop[] = {
        { VMX_PINBASED, EVMCS1_UNSUPPORTED_PIN }, { VMX_TRUE_PINBASED, EVMCS1_UNSUPPORTED_PIN },
        { VMX_PROCBASED2, EVMCS1_UNSUPPORTED_PROC2 },
        { VMX_EXIT, EVMCS1_UNSUPPORTED_EXIT }, { VMX_TRUE_EXIT, EVMCS1_UNSUPPORTED_EXIT },
        { VMX_ENTRY, EVMCS1_UNSUPPORTED_ENTRY }, { VMX_TRUE_ENTRY, EVMCS1_UNSUPPORTED_ENTRY },
    };
    for (size_t k = 0; k < sizeof(drop) / sizeof(drop[0]); k++)
        m[drop[k].cap] &= ~((u64)drop[k].bits << 32); /* the allowed-1 half */
    m[VMX_VMFUNC] &= ~1ull; /* EPTP switching */
}

void vmx_evmcs_set_assist(struct cpu *c, u64 gpa)
{
    if (c->vmx)
        c->vmx->evmcs_assist = gpa;
}

void vmx_evmcs_release(struct cpu *c)
{
    c->vmx->evmcs = ~0ull;
}

/* The VP assist page names an enlightened VMCS: its address */
static bool evmcs_named(struct cpu *c, u64 *gpa)
{
    struct vmx *v = c->vmx;
    u8 enlighten = 0;
    if (!v->evmcs_assist ||
        !nested_phys_read(c, v->evmcs_assist + ASSIST_OFF_ENLIGHTEN_VMENTRY, &enlighten, 1) ||
        !(enlighten & 1) ||
        !nested_phys_read(c, v->evmcs_assist + ASSIST_OFF_CURRENT_NESTED_VMCS, gpa, 8))
        return false;
    return *gpa != ~0ull;
}

bool vmx_evmcs_in_use(struct cpu *c)
{
    u64 gpa;
    return evmcs_named(c, &gpa);
}

/* Controls version 1 has no field for, or nestor's L1 may not use with it (KVM 6.1's
 * EVMCS1_UNSUPPORTED_*): an entry with one fails as with an invalid control (VMfail 7). */
static bool evmcs_controls_ok(const struct vmx *v)
{
    const u64 *f = v->vmcs.f;
    return !(f[VMCS_PIN_CONTROLS] & EVMCS1_UNSUPPORTED_PIN) &&
           !(vmx_proc2(v) & EVMCS1_UNSUPPORTED_PROC2) &&
           !(f[VMCS_EXIT_CONTROLS] & EVMCS1_UNSUPPORTED_EXIT) &&
           !(f[VMCS_ENTRY_CONTROLS] & EVMCS1_UNSUPPORTED_ENTRY);
}

enum vmx_evmcs_result vmx_evmcs_enter(struct cpu *c, bool launch)
{
    struct vmx *v = c->vmx;
    u64 gpa;
    if (!evmcs_named(c, &gpa)) {
        v->evmcs = ~0ull; /* back to VMPTRLD's VMCS, which there is none of now */
        return EVMCS_NOT_USED;
    }
    /* the structure must be RAM of the guest's (KVM raises #UD otherwise) */
    u8 probe;
    if ((gpa & 0xfff) || !nested_phys_read(c, gpa, &probe, 1) ||
        !nested_phys_read(c, gpa + EVMCS_SIZE - 1, &probe, 1))
        return EVMCS_UD;
    u32 rev = 0;
    nested_phys_read(c, gpa + EVMCS_OFF_REVISION, &rev, 4);
    /* version 1, or the VMCS revision (genuine Hyper-V writes that one) */
    if (rev != EVMCS_REVISION && rev != VMX_REVISION) {
        v->evmcs = ~0ull;
        return EVMCS_VMFAIL_INVALID;
    }
    u32 clean = 0;
    nested_phys_read(c, gpa + EVMCS_OFF_CLEAN_FIELDS, &clean, 4);
    bool fresh = launch || gpa != v->evmcs;
    if (fresh) {
        /* a VMCS VMPTRLD made current goes back to its region; nothing is left over */
        vmx_vmcs_flush(c);
        v->current = ~0ull;
        v->current_is_shadow = false;
        if (launch)
            memset(&v->vmcs, 0, sizeof(v->vmcs));
        clean = 0;
    }
    v->evmcs = gpa;
    int n;
    const struct vmcs_field_desc *t = vmcs_field_table(&n);
    for (int k = 0; k < n; k++) {
        const struct evmcs_slot *s = &evmcs_layout[t[k].field];
        if (!s->offset || s->group == EVMCS_ALL || (s->group >= 0 && ((clean >> s->group) & 1)))
            continue;
        u64 val = 0;
        nested_phys_read(c, gpa + s->offset, &val, field_bytes(&t[k]));
        vmcs_write(&v->vmcs, &t[k], false, val);
    }
    /* consumed: every group is clean until the guest marks one dirty */
    clean |= EVMCS_CLEAN_ALL;
    nested_phys_write(c, gpa + EVMCS_OFF_CLEAN_FIELDS, &clean, 4);
    v->launched = !launch;
    if (!evmcs_controls_ok(v))
        return EVMCS_BAD_CONTROLS;
    return EVMCS_USED;
}

void vmx_evmcs_write_back(struct cpu *c)
{
    struct vmx *v = c->vmx;
    if (v->evmcs == ~0ull)
        return;
    int n;
    const struct vmcs_field_desc *t = vmcs_field_table(&n);
    for (int k = 0; k < n; k++) {
        const struct evmcs_slot *s = &evmcs_layout[t[k].field];
        if (!s->offset || !written_back(t[k].field, &t[k]))
            continue;
        u64 val = v->vmcs.f[t[k].field];
        nested_phys_write(c, v->evmcs + s->offset, &val, field_bytes(&t[k]));
    }
}

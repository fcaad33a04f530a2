/* The VM-entry checks (SDM Vol. 3C 27.2, 27.3.1), one small named function per rule, in
 * a table in the SDM's order: VMX controls (27.2.1), host state (27.2.2-27.2.4), guest
 * state (27.3.1.1-27.3.1.6). The first rule that fails decides the outcome.
 *
 * Controls of features nestor does not offer (PML, #VE, SPP, TSC scaling,
 * PERF_GLOBAL_CTRL, CET, entry to SMM) are
 * refused by the reserved-bit rules of their control words (their allowed-1 bit is 0),
 * so the rules that only apply when they are 1 are not listed. */
#include "cpu/vmx/entry_checks.h"
#include "cpu/pmu.h"

enum check_class { CHECK_CONTROL, CHECK_HOST, CHECK_GUEST };

struct entry_check {
    const char *name;       /* the function's name: what the rule is about */
    enum check_class cls;
    const char *sdm;        /* the section stating the rule */
    u8 qual;                /* guest rules: the exit qualification of their failure */
    bool (*ok)(struct cpu *c);
};

#define F(x) (c->vmx->vmcs.f[VMCS_##x])
#define V (c->vmx)

static bool phys_ok(const struct cpu *c, u64 pa) { return (pa >> c->model->phys_bits) == 0; }
static bool page_ok(const struct cpu *c, u64 pa) { return !(pa & 0xfff) && phys_ok(c, pa); }
static bool canon(const struct cpu *c, u64 a) { return cpu_canonical_max(c, a); }
/* A control register value against the FIXED0/FIXED1 capability pair (all 64 bits: the
 * FIXED1 MSRs read 0 in bits 63:32, which no CR0/CR4 may set). */
static bool fixed_ok(u64 value, u64 fixed0, u64 fixed1)
{
    return (value & fixed0) == fixed0 && !(value & ~fixed1);
}
static bool pat_valid(u64 pat)
{
    for (int k = 0; k < 8; k++) {
        unsigned t = (pat >> (8 * k)) & 0xff;
        if (!(t == 0 || t == 1 || t == 4 || t == 5 || t == 6 || t == 7))
            return false;
    }
    return true;
}
/* The IA32_EFER bits WRMSR may set on this vCPU (the rest are reserved). */
static u64 efer_allowed(const struct cpu *c)
{
    u64 allowed = EFER_LMA | EFER_LME;
    if (cpu_has(c, CF_SYSCALL))
        allowed |= EFER_SCE;
    if (cpu_has(c, CF_NX) && !(c->msr_misc_enable & MISC_ENABLE_XD_DISABLE))
        allowed |= EFER_NXE;
    return allowed;
}
static bool msr_area_ok(const struct cpu *c, u64 addr, u64 count)
{
    return count == 0 || (!(addr & 0xf) && phys_ok(c, addr) && phys_ok(c, addr + count * 16 - 1));
}
/* Segment limit and granularity agree (SDM 27.3.1.2, bit 15 G). */
static bool limit_g_ok(u32 limit, u32 ar)
{
    if ((limit & 0xfff) != 0xfff && (ar & SEG_ATTR_G))
        return false;
    return !(limit >> 20) || (ar & SEG_ATTR_G);
}
#define AR_RESERVED 0xfffe0f00u /* access-rights bits 11:8 and 31:17 */

/* ===================== 27.2.1.1 VM-execution control fields ===================== */
static bool ctl_pin_reserved(struct cpu *c) { return vmx_ctl_ok(V, VMX_TRUE_PINBASED, (u32)F(PIN_CONTROLS)); }
static bool ctl_proc_reserved(struct cpu *c) { return vmx_ctl_ok(V, VMX_TRUE_PROCBASED, (u32)F(PROC_CONTROLS)); }
static bool ctl_proc2_reserved(struct cpu *c)
{
    return !(F(PROC_CONTROLS) & PROC_SECONDARY) || vmx_ctl_ok(V, VMX_PROCBASED2, (u32)F(PROC_CONTROLS2));
}
static bool ctl_cr3_target_count(struct cpu *c)
{
    return (u32)F(CR3_TARGET_COUNT) <= ((V->caps.msr[VMX_MISC] >> 16) & 0x1ff);
}
static bool ctl_io_bitmap_addrs(struct cpu *c)
{
    return !(vmx_proc(V) & PROC_IO_BITMAPS) || (page_ok(c, F(IO_BITMAP_A)) && page_ok(c, F(IO_BITMAP_B)));
}
static bool ctl_msr_bitmap_addr(struct cpu *c)
{
    return !(vmx_proc(V) & PROC_MSR_BITMAPS) || page_ok(c, F(MSR_BITMAP));
}
static bool ctl_virtual_nmis_need_nmi_exiting(struct cpu *c)
{
    return (vmx_pin(V) & PIN_NMI_EXITING) || !(vmx_pin(V) & PIN_VIRTUAL_NMIS);
}
static bool ctl_nmi_window_needs_virtual_nmis(struct cpu *c)
{
    return (vmx_pin(V) & PIN_VIRTUAL_NMIS) || !(vmx_proc(V) & PROC_NMI_WINDOW);
}
static bool ctl_vpid_nonzero(struct cpu *c) { return !(vmx_proc2(V) & PROC2_VPID) || (u16)F(VPID) != 0; }
static bool ctl_eptp_valid(struct cpu *c)
{
    return !(vmx_proc2(V) & PROC2_EPT) || vmx_eptp_valid(V, F(EPT_POINTER), c->model->phys_bits);
}
static bool ctl_unrestricted_needs_ept(struct cpu *c)
{
    return !(vmx_proc2(V) & PROC2_UNRESTRICTED_GUEST) || (vmx_proc2(V) & PROC2_EPT);
}
static bool ctl_vmfunc_reserved(struct cpu *c)
{
    return !(vmx_proc2(V) & PROC2_VMFUNC) || !(F(VMFUNC_CONTROLS) & ~V->caps.msr[VMX_VMFUNC]);
}
/* EPTP switching (VM function 0) needs EPT and an EPTP-list address on a page */
static bool ctl_eptp_switching(struct cpu *c)
{
    if (!(vmx_proc2(V) & PROC2_VMFUNC) || !(F(VMFUNC_CONTROLS) & 1))
        return true;
    return (vmx_proc2(V) & PROC2_EPT) && page_ok(c, F(EPTP_LIST_ADDR));
}
static bool ctl_vmcs_shadow_bitmaps(struct cpu *c)
{
    return !(vmx_proc2(V) & PROC2_SHADOW_VMCS) ||
           (page_ok(c, F(VMREAD_BITMAP)) && page_ok(c, F(VMWRITE_BITMAP)));
}

/* ===================== 27.2.1.2 VM-exit control fields ===================== */
static bool ctl_exit_reserved(struct cpu *c) { return vmx_ctl_ok(V, VMX_TRUE_EXIT, (u32)F(EXIT_CONTROLS)); }
static bool ctl_exit_save_timer_needs_timer(struct cpu *c)
{
    return !(F(EXIT_CONTROLS) & EXIT_SAVE_PREEMPT_TIMER) || (vmx_pin(V) & PIN_PREEMPTION_TIMER);
}
static bool ctl_exit_msr_store_area(struct cpu *c)
{
    return msr_area_ok(c, F(EXIT_MSR_STORE_ADDR), (u32)F(EXIT_MSR_STORE_COUNT));
}
static bool ctl_exit_msr_load_area(struct cpu *c)
{
    return msr_area_ok(c, F(EXIT_MSR_LOAD_ADDR), (u32)F(EXIT_MSR_LOAD_COUNT));
}

/* ===================== 27.2.1.3 VM-entry control fields ===================== */
static bool ctl_entry_reserved(struct cpu *c) { return vmx_ctl_ok(V, VMX_TRUE_ENTRY, (u32)F(ENTRY_CONTROLS)); }
/* The event-injection rules apply when the interruption-information field is valid. */
static u32 injected(const struct cpu *c)
{
    u32 info = (u32)F(ENTRY_INTR_INFO);
    return (info & INTR_INFO_VALID) ? info : 0;
}
/* Type 1 is reserved; type 7 (other event) exists with the "monitor trap flag" control. */
static bool ctl_inject_type(struct cpu *c)
{
    u32 info = injected(c);
    if (!info)
        return true;
    unsigned type = INTR_INFO_TYPE(info);
    if (type == 1)
        return false;
    return type != INTR_TYPE_OTHER || ((V->caps.msr[VMX_TRUE_PROCBASED] >> 32) & PROC_MTF);
}
static bool ctl_inject_vector(struct cpu *c)
{
    u32 info = injected(c);
    unsigned type = INTR_INFO_TYPE(info), vec = INTR_INFO_VECTOR(info);
    if (!info)
        return true;
    if (type == INTR_TYPE_NMI)
        return vec == EXC_NMI;
    if (type == INTR_TYPE_HW_EXC)
        return vec <= 31;
    if (type == INTR_TYPE_OTHER)
        return vec == 0;
    return true;
}
/* deliver-error-code is 1 exactly for a protected-mode hardware exception that has one */
static bool ctl_inject_error_code_bit(struct cpu *c)
{
    u32 info = injected(c);
    if (!info)
        return true;
    unsigned vec = INTR_INFO_VECTOR(info);
    bool prot = !(vmx_proc2(V) & PROC2_UNRESTRICTED_GUEST) || (F(GUEST_CR0) & CR0_PE);
    bool has_code = vec == EXC_DF || vec == EXC_TS || vec == EXC_NP || vec == EXC_SS ||
                    vec == EXC_GP || vec == EXC_PF || vec == EXC_AC;
    bool want = prot && INTR_INFO_TYPE(info) == INTR_TYPE_HW_EXC && has_code;
    return !!(info & INTR_INFO_ERROR) == want;
}
static bool ctl_inject_reserved_bits(struct cpu *c) { return !(injected(c) & 0x7ffff000u); }
/* bits 31:16 of the error code are 0 (bit 15 may be set: #PF's SGX bit) */
static bool ctl_inject_error_code_value(struct cpu *c)
{
    return !(injected(c) & INTR_INFO_ERROR) || !((u32)F(ENTRY_EXCEPTION_ERROR) >> 16);
}
static bool ctl_inject_insn_len(struct cpu *c)
{
    u32 info = injected(c);
    unsigned type = INTR_INFO_TYPE(info);
    if (!info || !(type == INTR_TYPE_SW_INT || type == INTR_TYPE_PRIV_SW_EXC || type == INTR_TYPE_SW_EXC))
        return true;
    u32 len = (u32)F(ENTRY_INSN_LEN);
    return len <= 15 && (len != 0 || (V->caps.msr[VMX_MISC] & BIT(30)));
}
static bool ctl_entry_msr_load_area(struct cpu *c)
{
    return msr_area_ok(c, F(ENTRY_MSR_LOAD_ADDR), (u32)F(ENTRY_MSR_LOAD_COUNT));
}

/* ===================== 27.2.2 host control registers and MSRs ===================== */
static bool host_cr0_fixed(struct cpu *c)
{
    return fixed_ok(F(HOST_CR0), V->caps.msr[VMX_CR0_FIXED0], V->caps.msr[VMX_CR0_FIXED1]);
}
static bool host_cr4_fixed(struct cpu *c)
{
    return fixed_ok(F(HOST_CR4), V->caps.msr[VMX_CR4_FIXED0], V->caps.msr[VMX_CR4_FIXED1]);
}
static bool host_cr3_width(struct cpu *c) { return phys_ok(c, F(HOST_CR3)); }
static bool host_sysenter_canonical(struct cpu *c)
{
    return canon(c, F(HOST_SYSENTER_ESP)) && canon(c, F(HOST_SYSENTER_EIP));
}
static bool host_pat_valid(struct cpu *c)
{
    return !(F(EXIT_CONTROLS) & EXIT_LOAD_PAT) || pat_valid(F(HOST_PAT));
}
static bool host_efer_reserved(struct cpu *c)
{
    return !(F(EXIT_CONTROLS) & EXIT_LOAD_EFER) || !(F(HOST_EFER) & ~efer_allowed(c));
}
/* LMA, and LME with paging, equal "host address-space size" */
static bool host_efer_lma_lme(struct cpu *c)
{
    if (!(F(EXIT_CONTROLS) & EXIT_LOAD_EFER))
        return true;
    bool l = F(EXIT_CONTROLS) & EXIT_HOST_ADDR_SPACE;
    u64 e = F(HOST_EFER);
    if (!!(e & EFER_LMA) != l)
        return false;
    return !(F(HOST_CR0) & CR0_PG) || !!(e & EFER_LME) == l;
}

/* ============== 27.2.3 host segment and descriptor-table registers ============== */
static bool host_selectors_rpl_ti(struct cpu *c)
{
    static const int sels[] = { VMCS_HOST_ES_SEL, VMCS_HOST_CS_SEL, VMCS_HOST_SS_SEL,
                                VMCS_HOST_DS_SEL, VMCS_HOST_FS_SEL, VMCS_HOST_GS_SEL,
                                VMCS_HOST_TR_SEL };
    for (size_t k = 0; k < ARRAY_SIZE(sels); k++)
        if (c->vmx->vmcs.f[sels[k]] & 7)
            return false;
    return true;
}
static bool host_cs_tr_nonnull(struct cpu *c) { return F(HOST_CS_SEL) && F(HOST_TR_SEL); }
static bool host_ss_nonnull_32bit(struct cpu *c)
{
    return F(HOST_SS_SEL) || (F(EXIT_CONTROLS) & EXIT_HOST_ADDR_SPACE);
}
static bool host_bases_canonical(struct cpu *c)
{
    return canon(c, F(HOST_FS_BASE)) && canon(c, F(HOST_GS_BASE)) && canon(c, F(HOST_GDTR_BASE)) &&
           canon(c, F(HOST_IDTR_BASE)) && canon(c, F(HOST_TR_BASE));
}

/* ===================== 27.2.4 address-space size ===================== */
/* Outside IA-32e mode neither the host nor the guest may be 64-bit; inside, the host is. */
static bool host_addr_space_matches_mode(struct cpu *c)
{
    bool l = F(EXIT_CONTROLS) & EXIT_HOST_ADDR_SPACE;
    if (c->efer & EFER_LMA)
        return l;
    return !l && !(F(ENTRY_CONTROLS) & ENTRY_IA32E_GUEST);
}
static bool host_32bit_rules(struct cpu *c)
{
    if (F(EXIT_CONTROLS) & EXIT_HOST_ADDR_SPACE)
        return true;
    return !(F(ENTRY_CONTROLS) & ENTRY_IA32E_GUEST) && !(F(HOST_CR4) & CR4_PCIDE) &&
           !(F(HOST_RIP) >> 32);
}
static bool host_64bit_rules(struct cpu *c)
{
    if (!(F(EXIT_CONTROLS) & EXIT_HOST_ADDR_SPACE))
        return true;
    return (F(HOST_CR4) & CR4_PAE) && canon(c, F(HOST_RIP));
}

/* ========= 27.3.1.1 guest control registers, debug registers and MSRs ========= */
static bool unrestricted(const struct cpu *c) { return vmx_proc2(V) & PROC2_UNRESTRICTED_GUEST; }
static bool ia32e_guest(const struct cpu *c) { return F(ENTRY_CONTROLS) & ENTRY_IA32E_GUEST; }
static bool v86_guest(const struct cpu *c) { return F(GUEST_RFLAGS) & FL_VM; }

/* with "unrestricted guest", PE and PG may be 0 */
static bool guest_cr0_fixed(struct cpu *c)
{
    u64 f0 = V->caps.msr[VMX_CR0_FIXED0];
    if (unrestricted(c))
        f0 &= ~(u64)(CR0_PE | CR0_PG);
    return fixed_ok(F(GUEST_CR0), f0, V->caps.msr[VMX_CR0_FIXED1]);
}
static bool guest_cr0_pg_needs_pe(struct cpu *c)
{
    return !(F(GUEST_CR0) & CR0_PG) || (F(GUEST_CR0) & CR0_PE);
}
static bool guest_cr4_fixed(struct cpu *c)
{
    return fixed_ok(F(GUEST_CR4), V->caps.msr[VMX_CR4_FIXED0], V->caps.msr[VMX_CR4_FIXED1]);
}
static bool guest_debugctl_reserved(struct cpu *c)
{
    return !(F(ENTRY_CONTROLS) & ENTRY_LOAD_DEBUG) || !(F(GUEST_DEBUGCTL) & ~pmu_debugctl_bits(c));
}
static bool guest_ia32e_needs_paging(struct cpu *c)
{
    return !ia32e_guest(c) || ((F(GUEST_CR0) & CR0_PG) && (F(GUEST_CR4) & CR4_PAE));
}
static bool guest_pcide_needs_ia32e(struct cpu *c)
{
    return ia32e_guest(c) || !(F(GUEST_CR4) & CR4_PCIDE);
}
static bool guest_cr3_width(struct cpu *c) { return phys_ok(c, F(GUEST_CR3)); }
static bool guest_dr7_high(struct cpu *c)
{
    return !(F(ENTRY_CONTROLS) & ENTRY_LOAD_DEBUG) || !(F(GUEST_DR7) >> 32);
}
static bool guest_sysenter_canonical(struct cpu *c)
{
    return canon(c, F(GUEST_SYSENTER_ESP)) && canon(c, F(GUEST_SYSENTER_EIP));
}
static bool guest_pat_valid(struct cpu *c)
{
    return !(F(ENTRY_CONTROLS) & ENTRY_LOAD_PAT) || pat_valid(F(GUEST_PAT));
}
static bool guest_efer_reserved(struct cpu *c)
{
    return !(F(ENTRY_CONTROLS) & ENTRY_LOAD_EFER) || !(F(GUEST_EFER) & ~efer_allowed(c));
}
static bool guest_efer_lma(struct cpu *c)
{
    return !(F(ENTRY_CONTROLS) & ENTRY_LOAD_EFER) || !!(F(GUEST_EFER) & EFER_LMA) == ia32e_guest(c);
}
static bool guest_efer_lme(struct cpu *c)
{
    if (!(F(ENTRY_CONTROLS) & ENTRY_LOAD_EFER) || !(F(GUEST_CR0) & CR0_PG))
        return true;
    return !!(F(GUEST_EFER) & EFER_LME) == !!(F(GUEST_EFER) & EFER_LMA);
}

/* ===================== 27.3.1.2 guest segment registers ===================== */
/* The six segment registers' fields, CS first. */
enum { GS_CS, GS_SS, GS_DS, GS_ES, GS_FS, GS_GS, GS_N };
static const int gseg_index[GS_N] = { SEG_CS, SEG_SS, SEG_DS, SEG_ES, SEG_FS, SEG_GS };
#define gseg(s) vmx_guest_seg[gseg_index[s]]
static u64 seg_sel(const struct cpu *c, int s) { return c->vmx->vmcs.f[gseg(s).sel]; }
static u64 seg_base(const struct cpu *c, int s) { return c->vmx->vmcs.f[gseg(s).base]; }
static u32 seg_limit(const struct cpu *c, int s) { return (u32)c->vmx->vmcs.f[gseg(s).limit]; }
static u32 seg_ar(const struct cpu *c, int s) { return (u32)c->vmx->vmcs.f[gseg(s).ar]; }
/* CS is always checked; the others only when usable (SDM 27.3.1.2 access-rights rules) */
static bool seg_checked(const struct cpu *c, int s)
{
    return s == GS_CS || !(seg_ar(c, s) & SEG_ATTR_UNUSABLE);
}
static u32 ldtr_ar(const struct cpu *c) { return (u32)F(GUEST_LDTR_AR); }
static bool ldtr_usable(const struct cpu *c) { return !(ldtr_ar(c) & SEG_ATTR_UNUSABLE); }

/* -- selectors -- */
static bool guest_tr_ti(struct cpu *c) { return !(F(GUEST_TR_SEL) & 4); }
static bool guest_ldtr_ti(struct cpu *c) { return !ldtr_usable(c) || !(F(GUEST_LDTR_SEL) & 4); }
static bool guest_ss_rpl_cs_rpl(struct cpu *c)
{
    return v86_guest(c) || unrestricted(c) || (F(GUEST_SS_SEL) & 3) == (F(GUEST_CS_SEL) & 3);
}
/* -- base addresses -- */
static bool guest_v86_bases(struct cpu *c)
{
    if (!v86_guest(c))
        return true;
    for (int s = 0; s < GS_N; s++)
        if (seg_base(c, s) != seg_sel(c, s) << 4)
            return false;
    return true;
}
static bool guest_bases_canonical(struct cpu *c)
{
    return canon(c, F(GUEST_TR_BASE)) && canon(c, F(GUEST_FS_BASE)) && canon(c, F(GUEST_GS_BASE)) &&
           (!ldtr_usable(c) || canon(c, F(GUEST_LDTR_BASE)));
}
static bool guest_bases_32bit(struct cpu *c)
{
    static const int segs[] = { GS_CS, GS_SS, GS_DS, GS_ES };
    for (size_t k = 0; k < ARRAY_SIZE(segs); k++)
        if (seg_checked(c, segs[k]) && (seg_base(c, segs[k]) >> 32))
            return false;
    return true;
}
/* -- limits -- */
static bool guest_v86_limits(struct cpu *c)
{
    if (!v86_guest(c))
        return true;
    for (int s = 0; s < GS_N; s++)
        if (seg_limit(c, s) != 0xffff)
            return false;
    return true;
}
/* -- access rights -- */
static bool guest_v86_access_rights(struct cpu *c)
{
    if (!v86_guest(c))
        return true;
    for (int s = 0; s < GS_N; s++)
        if (seg_ar(c, s) != 0xf3)
            return false;
    return true;
}
/* Types: accessed code (9, 11, 13, 15), or 3 (accessed read/write data) with
 * "unrestricted guest" */
static bool guest_cs_type(struct cpu *c)
{
    unsigned t = SEG_ATTR_TYPE(seg_ar(c, GS_CS));
    return v86_guest(c) || t == 9 || t == 11 || t == 13 || t == 15 || (t == 3 && unrestricted(c));
}
static bool guest_ss_type(struct cpu *c)
{
    unsigned t = SEG_ATTR_TYPE(seg_ar(c, GS_SS));
    return v86_guest(c) || !seg_checked(c, GS_SS) || t == 3 || t == 7;
}
/* DS, ES, FS, GS: accessed; a code segment readable */
static bool guest_data_seg_types(struct cpu *c)
{
    if (v86_guest(c))
        return true;
    for (int s = GS_DS; s < GS_N; s++) {
        u32 t = SEG_ATTR_TYPE(seg_ar(c, s));
        if (seg_checked(c, s) && (!(t & 1) || ((t & 8) && !(t & 2))))
            return false;
    }
    return true;
}
static bool guest_seg_s_bits(struct cpu *c)
{
    if (v86_guest(c))
        return true;
    for (int s = 0; s < GS_N; s++)
        if (seg_checked(c, s) && !(seg_ar(c, s) & SEG_ATTR_S))
            return false;
    return true;
}
static bool guest_cs_dpl(struct cpu *c)
{
    if (v86_guest(c))
        return true;
    u32 cs = seg_ar(c, GS_CS);
    unsigned t = SEG_ATTR_TYPE(cs), dpl = SEG_ATTR_DPL(cs), ss_dpl = SEG_ATTR_DPL(seg_ar(c, GS_SS));
    if (t == 3)
        return dpl == 0;
    if (t == 9 || t == 11)
        return dpl == ss_dpl;
    if (t == 13 || t == 15)
        return dpl <= ss_dpl;
    return true;
}
static bool guest_ss_dpl(struct cpu *c)
{
    if (v86_guest(c))
        return true;
    unsigned dpl = SEG_ATTR_DPL(seg_ar(c, GS_SS));
    if (!unrestricted(c) && dpl != (F(GUEST_SS_SEL) & 3))
        return false;
    if (SEG_ATTR_TYPE(seg_ar(c, GS_CS)) == 3 || !(F(GUEST_CR0) & CR0_PE))
        return dpl == 0;
    return true;
}
/* DS, ES, FS, GS that are usable data or non-conforming code: DPL >= RPL */
static bool guest_data_seg_dpl(struct cpu *c)
{
    if (v86_guest(c) || unrestricted(c))
        return true;
    for (int s = GS_DS; s < GS_N; s++) {
        u32 ar = seg_ar(c, s);
        if (seg_checked(c, s) && SEG_ATTR_TYPE(ar) <= 11 && SEG_ATTR_DPL(ar) < (seg_sel(c, s) & 3))
            return false;
    }
    return true;
}
static bool guest_seg_present(struct cpu *c)
{
    if (v86_guest(c))
        return true;
    for (int s = 0; s < GS_N; s++)
        if (seg_checked(c, s) && !(seg_ar(c, s) & SEG_ATTR_P))
            return false;
    return true;
}
static bool guest_seg_ar_reserved(struct cpu *c)
{
    if (v86_guest(c))
        return true;
    for (int s = 0; s < GS_N; s++)
        if (seg_checked(c, s) && (seg_ar(c, s) & AR_RESERVED))
            return false;
    return true;
}
static bool guest_cs_db_in_long_mode(struct cpu *c)
{
    u32 cs = seg_ar(c, GS_CS);
    return v86_guest(c) || !ia32e_guest(c) || !(cs & SEG_ATTR_L) || !(cs & SEG_ATTR_DB);
}
static bool guest_seg_granularity(struct cpu *c)
{
    if (v86_guest(c))
        return true;
    for (int s = 0; s < GS_N; s++)
        if (seg_checked(c, s) && !limit_g_ok(seg_limit(c, s), seg_ar(c, s)))
            return false;
    return true;
}
/* TR: a busy TSS (64-bit for an IA-32e guest), system, present, usable */
static bool guest_tr_rules(struct cpu *c)
{
    u32 ar = (u32)F(GUEST_TR_AR);
    unsigned t = SEG_ATTR_TYPE(ar);
    if (ia32e_guest(c) ? t != 11 : (t != 3 && t != 11))
        return false;
    return !(ar & SEG_ATTR_S) && (ar & SEG_ATTR_P) && !(ar & SEG_ATTR_UNUSABLE) &&
           !(ar & AR_RESERVED) && limit_g_ok((u32)F(GUEST_TR_LIMIT), ar);
}
/* LDTR, if usable: an LDT, system, present */
static bool guest_ldtr_usable_rules(struct cpu *c)
{
    u32 ar = ldtr_ar(c);
    if (!ldtr_usable(c))
        return true;
    return SEG_ATTR_TYPE(ar) == 2 && !(ar & SEG_ATTR_S) && (ar & SEG_ATTR_P) &&
           !(ar & AR_RESERVED) && limit_g_ok((u32)F(GUEST_LDTR_LIMIT), ar);
}

/* ============== 27.3.1.3 guest descriptor-table registers ============== */
static bool guest_dtr_bases(struct cpu *c)
{
    return canon(c, F(GUEST_GDTR_BASE)) && canon(c, F(GUEST_IDTR_BASE));
}
static bool guest_dtr_limits(struct cpu *c)
{
    return !(F(GUEST_GDTR_LIMIT) >> 16) && !(F(GUEST_IDTR_LIMIT) >> 16);
}

/* ===================== 27.3.1.4 RIP and RFLAGS ===================== */
static bool guest_rip_width(struct cpu *c)
{
    bool l = ia32e_guest(c) && (F(GUEST_CS_AR) & SEG_ATTR_L);
    return l ? canon(c, F(GUEST_RIP)) : !(F(GUEST_RIP) >> 32);
}
static bool guest_rflags_reserved(struct cpu *c)
{
    u64 f = F(GUEST_RFLAGS);
    return !(f & (~0ull << 22 | BIT(15) | BIT(5) | BIT(3))) && (f & FL_FIXED1);
}
static bool guest_rflags_vm(struct cpu *c)
{
    return !v86_guest(c) || (!ia32e_guest(c) && (F(GUEST_CR0) & CR0_PE));
}
static bool guest_rflags_if_for_extint(struct cpu *c)
{
    u32 info = injected(c);
    return !info || INTR_INFO_TYPE(info) != INTR_TYPE_EXT || (F(GUEST_RFLAGS) & FL_IF);
}

/* ===================== 27.3.1.5 non-register state ===================== */
static u64 activity(const struct cpu *c) { return F(GUEST_ACTIVITY_STATE); }
static u32 interruptibility(const struct cpu *c) { return (u32)F(GUEST_INTERRUPTIBILITY); }

/* 0 (active), or a state IA32_VMX_MISC[8:6] offers */
static bool guest_activity_supported(struct cpu *c)
{
    u64 a = activity(c);
    return a == ACTIVITY_ACTIVE || (a <= 3 && (V->caps.msr[VMX_MISC] & BIT(5 + a)));
}
static bool guest_activity_hlt_ss_dpl(struct cpu *c)
{
    return activity(c) != ACTIVITY_HLT || SEG_ATTR_DPL((u32)F(GUEST_SS_AR)) == 0;
}
static bool guest_activity_active_in_shadow(struct cpu *c)
{
    return activity(c) == ACTIVITY_ACTIVE ||
           !(interruptibility(c) & (INTERRUPTIBILITY_STI | INTERRUPTIBILITY_MOV_SS));
}
/* An injected event must be one the activity state does not block: HLT lets external
 * interrupts, NMIs, #DB, #MC and a pending MTF exit through; shutdown NMIs and #MC;
 * wait-for-SIPI nothing. */
static bool guest_activity_injection(struct cpu *c)
{
    u32 info = injected(c);
    if (!info)
        return true;
    unsigned type = INTR_INFO_TYPE(info), vec = INTR_INFO_VECTOR(info);
    switch (activity(c)) {
    case ACTIVITY_ACTIVE:
        return true;
    case ACTIVITY_HLT:
        return type == INTR_TYPE_EXT || type == INTR_TYPE_NMI ||
               (type == INTR_TYPE_HW_EXC && (vec == EXC_DB || vec == EXC_MC)) ||
               (type == INTR_TYPE_OTHER && vec == 0);
    case ACTIVITY_SHUTDOWN:
        return type == INTR_TYPE_NMI || (type == INTR_TYPE_HW_EXC && vec == EXC_MC);
    default:
        return false;
    }
}
/* Bits 31:5 are reserved; bit 4 (enclave interruption) needs SGX, which nestor lacks. */
static bool guest_intr_reserved(struct cpu *c) { return !(F(GUEST_INTERRUPTIBILITY) >> 4); }
static bool guest_intr_sti_movss_exclusive(struct cpu *c)
{
    u32 s = interruptibility(c);
    return !((s & INTERRUPTIBILITY_STI) && (s & INTERRUPTIBILITY_MOV_SS));
}
static bool guest_intr_sti_needs_if(struct cpu *c)
{
    return !(interruptibility(c) & INTERRUPTIBILITY_STI) || (F(GUEST_RFLAGS) & FL_IF);
}
static bool guest_intr_extint_injection(struct cpu *c)
{
    u32 info = injected(c);
    return !info || INTR_INFO_TYPE(info) != INTR_TYPE_EXT ||
           !(interruptibility(c) & (INTERRUPTIBILITY_STI | INTERRUPTIBILITY_MOV_SS));
}
static bool guest_intr_nmi_injection_movss(struct cpu *c)
{
    u32 info = injected(c);
    return !info || INTR_INFO_TYPE(info) != INTR_TYPE_NMI ||
           !(interruptibility(c) & INTERRUPTIBILITY_MOV_SS);
}
/* blocking by SMI outside SMM (nestor's VMX never runs in SMM) */
static bool guest_intr_smi(struct cpu *c) { return !(interruptibility(c) & INTERRUPTIBILITY_SMI); }
/* The SDM lets a processor refuse an NMI injected into an STI shadow; nestor's model
 * does, with its own exit qualification (3). */
static bool guest_intr_nmi_injection_sti(struct cpu *c)
{
    u32 info = injected(c);
    return !info || INTR_INFO_TYPE(info) != INTR_TYPE_NMI ||
           !(interruptibility(c) & INTERRUPTIBILITY_STI);
}
static bool guest_intr_virtual_nmi_injection(struct cpu *c)
{
    u32 info = injected(c);
    return !info || INTR_INFO_TYPE(info) != INTR_TYPE_NMI || !(vmx_pin(V) & PIN_VIRTUAL_NMIS) ||
           !(interruptibility(c) & INTERRUPTIBILITY_NMI);
}
/* Bits 11:4, 13, 15 and 63:17 are reserved; bit 16 (RTM) needs RTM, which nestor lacks. */
static bool guest_pending_dbg_reserved(struct cpu *c)
{
    return !(F(GUEST_PENDING_DBG) & (~0ull << 16 | BIT(15) | BIT(13) | 0xff0ull));
}
/* In an STI or MOV SS shadow or in HLT, BS is pending exactly when TF single-steps
 * (TF=1 and DEBUGCTL.BTF=0). */
static bool guest_pending_dbg_bs(struct cpu *c)
{
    if (!(interruptibility(c) & (INTERRUPTIBILITY_STI | INTERRUPTIBILITY_MOV_SS)) &&
        activity(c) != ACTIVITY_HLT)
        return true;
    bool step = (F(GUEST_RFLAGS) & FL_TF) && !(F(GUEST_DEBUGCTL) & BIT(1));
    return !!(F(GUEST_PENDING_DBG) & DR6_BS) == step;
}
/* The VMCS link pointer, unless all ones (failures with exit qualification 4). */
static bool link_pointer_used(const struct cpu *c) { return F(LINK_POINTER) != ~0ull; }
static bool guest_link_pointer_addr(struct cpu *c)
{
    return !link_pointer_used(c) || page_ok(c, F(LINK_POINTER));
}
/* bits 30:0 of the VMCS there: the revision; bit 31: the "VMCS shadowing" control */
static bool guest_link_pointer_revision(struct cpu *c)
{
    if (!link_pointer_used(c))
        return true;
    u32 rev = ~0u;
    if (!nested_phys_read(c, F(LINK_POINTER), &rev, 4))
        return false;
    bool shadow = vmx_proc2(V) & PROC2_SHADOW_VMCS;
    return (rev & 0x7fffffffu) == VMX_REVISION && !!(rev >> 31) == shadow;
}
static bool guest_link_pointer_not_current(struct cpu *c)
{
    return !link_pointer_used(c) || F(LINK_POINTER) != V->current;
}

/* ========= 27.3.1.6 PDPTEs of a PAE guest (failures with exit qualification 2) ========= */
/* With EPT the four PDPTE fields, else the PDPTEs at CR3 in memory: a present entry has
 * no reserved bit set (bits 2:1, 8:5, and those beyond MAXPHYADDR). */
static bool guest_pdptes(struct cpu *c)
{
    if (!(F(GUEST_CR0) & CR0_PG) || !(F(GUEST_CR4) & CR4_PAE) || ia32e_guest(c))
        return true;
    if (vmx_proc2(V) & PROC2_EPT) {
        u64 reserved = BIT(1) | BIT(2) | 0x1e0ull | (~0ull << c->model->phys_bits);
        for (int k = 0; k < 4; k++) {
            u64 e = c->vmx->vmcs.f[VMCS_GUEST_PDPTE0 + k];
            if ((e & 1) && (e & reserved))
                return false;
        }
        return true;
    }
    u64 pdpte[4];
    return paging_load_pdptes(&c->in->pg, F(GUEST_CR3), pdpte);
}

/* ---- APIC virtualization controls (SDM 27.2.1.1) ---- */
static bool tpr_shadow(const struct cpu *c) { return vmx_proc(c->vmx) & PROC_TPR_SHADOW; }
static bool vid_on(const struct cpu *c) { return vmx_proc2(c->vmx) & PROC2_VIRT_INTR_DELIVERY; }
/* the virtual-APIC address: on a page, within MAXPHYADDR */
static bool ctl_virtual_apic_addr(struct cpu *c)
{
    return !tpr_shadow(c) || page_ok(c, F(VIRTUAL_APIC_ADDR));
}
/* without virtual-interrupt delivery the TPR threshold has bits 3:0 only */
static bool ctl_tpr_threshold_reserved(struct cpu *c)
{
    return !tpr_shadow(c) || vid_on(c) || !((u32)F(TPR_THRESHOLD) >> 4);
}
/* ... and may not exceed VTPR[7:4] when APIC accesses are not virtualized either */
static bool ctl_tpr_threshold_vtpr(struct cpu *c)
{
    if (!tpr_shadow(c) || vid_on(c) || (vmx_proc2(V) & PROC2_VIRT_APIC_ACCESS))
        return true;
    u8 vtpr = 0;
    nested_phys_read(c, F(VIRTUAL_APIC_ADDR) + 0x80, &vtpr, 1);
    return ((u32)F(TPR_THRESHOLD) & 0xf) <= (u32)(vtpr >> 4);
}
/* virtualize x2APIC mode, APIC-register virtualization and virtual-interrupt delivery
 * need the TPR shadow */
static bool ctl_apicv_needs_tpr_shadow(struct cpu *c)
{
    u32 p2 = vmx_proc2(V);
    return tpr_shadow(c) ||
           !(p2 & (PROC2_VIRT_X2APIC | PROC2_APIC_REG_VIRT | PROC2_VIRT_INTR_DELIVERY));
}
/* x2APIC virtualization and APIC-access virtualization exclude each other */
static bool ctl_x2apic_excludes_apic_access(struct cpu *c)
{
    u32 p2 = vmx_proc2(V);
    return !((p2 & PROC2_VIRT_X2APIC) && (p2 & PROC2_VIRT_APIC_ACCESS));
}
/* virtual-interrupt delivery needs external-interrupt exiting */
static bool ctl_vid_needs_extint_exiting(struct cpu *c)
{
    return !vid_on(c) || (vmx_pin(V) & PIN_EXT_INTR_EXITING);
}
/* posted interrupts: virtual-interrupt delivery, acknowledge on exit, a vector in 7:0,
 * a 64-byte aligned descriptor within MAXPHYADDR */
static bool ctl_posted_interrupts(struct cpu *c)
{
    if (!(vmx_pin(V) & PIN_POSTED_INTR))
        return true;
    u64 desc = F(POSTED_INTR_DESC_ADDR);
    return vid_on(c) && (F(EXIT_CONTROLS) & EXIT_ACK_INTR) && !(F(POSTED_INTR_NV) >> 8) &&
           !(desc & 0x3f) && phys_ok(c, desc);
}
/* the APIC-access address: on a page, within MAXPHYADDR */
static bool ctl_apic_access_addr(struct cpu *c)
{
    return !(vmx_proc2(V) & PROC2_VIRT_APIC_ACCESS) || page_ok(c, F(APIC_ACCESS_ADDR));
}

#define ROW(cls, sdm, fn) { #fn, cls, sdm, 0, fn }
#define ROWQ(sdm, qual, fn) { #fn, CHECK_GUEST, sdm, qual, fn }
static const struct entry_check checks[] = {
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_pin_reserved),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_proc_reserved),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_proc2_reserved),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_cr3_target_count),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_io_bitmap_addrs),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_msr_bitmap_addr),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_virtual_nmis_need_nmi_exiting),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_nmi_window_needs_virtual_nmis),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_vpid_nonzero),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_eptp_valid),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_unrestricted_needs_ept),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_vmfunc_reserved),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_eptp_switching),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_vmcs_shadow_bitmaps),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_virtual_apic_addr),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_tpr_threshold_reserved),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_tpr_threshold_vtpr),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_apicv_needs_tpr_shadow),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_x2apic_excludes_apic_access),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_vid_needs_extint_exiting),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_posted_interrupts),
    ROW(CHECK_CONTROL, "27.2.1.1", ctl_apic_access_addr),
    ROW(CHECK_CONTROL, "27.2.1.2", ctl_exit_reserved),
    ROW(CHECK_CONTROL, "27.2.1.2", ctl_exit_save_timer_needs_timer),
    ROW(CHECK_CONTROL, "27.2.1.2", ctl_exit_msr_store_area),
    ROW(CHECK_CONTROL, "27.2.1.2", ctl_exit_msr_load_area),
    ROW(CHECK_CONTROL, "27.2.1.3", ctl_entry_reserved),
    ROW(CHECK_CONTROL, "27.2.1.3", ctl_inject_type),
    ROW(CHECK_CONTROL, "27.2.1.3", ctl_inject_vector),
    ROW(CHECK_CONTROL, "27.2.1.3", ctl_inject_error_code_bit),
    ROW(CHECK_CONTROL, "27.2.1.3", ctl_inject_reserved_bits),
    ROW(CHECK_CONTROL, "27.2.1.3", ctl_inject_error_code_value),
    ROW(CHECK_CONTROL, "27.2.1.3", ctl_inject_insn_len),
    ROW(CHECK_CONTROL, "27.2.1.3", ctl_entry_msr_load_area),
    ROW(CHECK_HOST, "27.2.2", host_cr0_fixed),
    ROW(CHECK_HOST, "27.2.2", host_cr4_fixed),
    ROW(CHECK_HOST, "27.2.2", host_cr3_width),
    ROW(CHECK_HOST, "27.2.2", host_sysenter_canonical),
    ROW(CHECK_HOST, "27.2.2", host_pat_valid),
    ROW(CHECK_HOST, "27.2.2", host_efer_reserved),
    ROW(CHECK_HOST, "27.2.2", host_efer_lma_lme),
    ROW(CHECK_HOST, "27.2.3", host_selectors_rpl_ti),
    ROW(CHECK_HOST, "27.2.3", host_cs_tr_nonnull),
    ROW(CHECK_HOST, "27.2.3", host_ss_nonnull_32bit),
    ROW(CHECK_HOST, "27.2.3", host_bases_canonical),
    ROW(CHECK_HOST, "27.2.4", host_addr_space_matches_mode),
    ROW(CHECK_HOST, "27.2.4", host_32bit_rules),
    ROW(CHECK_HOST, "27.2.4", host_64bit_rules),
    ROW(CHECK_GUEST, "27.3.1.1", guest_cr0_fixed),
    ROW(CHECK_GUEST, "27.3.1.1", guest_cr0_pg_needs_pe),
    ROW(CHECK_GUEST, "27.3.1.1", guest_cr4_fixed),
    ROW(CHECK_GUEST, "27.3.1.1", guest_debugctl_reserved),
    ROW(CHECK_GUEST, "27.3.1.1", guest_ia32e_needs_paging),
    ROW(CHECK_GUEST, "27.3.1.1", guest_pcide_needs_ia32e),
    ROW(CHECK_GUEST, "27.3.1.1", guest_cr3_width),
    ROW(CHECK_GUEST, "27.3.1.1", guest_dr7_high),
    ROW(CHECK_GUEST, "27.3.1.1", guest_sysenter_canonical),
    ROW(CHECK_GUEST, "27.3.1.1", guest_pat_valid),
    ROW(CHECK_GUEST, "27.3.1.1", guest_efer_reserved),
    ROW(CHECK_GUEST, "27.3.1.1", guest_efer_lma),
    ROW(CHECK_GUEST, "27.3.1.1", guest_efer_lme),
    ROW(CHECK_GUEST, "27.3.1.2", guest_tr_ti),
    ROW(CHECK_GUEST, "27.3.1.2", guest_ldtr_ti),
    ROW(CHECK_GUEST, "27.3.1.2", guest_ss_rpl_cs_rpl),
    ROW(CHECK_GUEST, "27.3.1.2", guest_v86_bases),
    ROW(CHECK_GUEST, "27.3.1.2", guest_bases_canonical),
    ROW(CHECK_GUEST, "27.3.1.2", guest_bases_32bit),
    ROW(CHECK_GUEST, "27.3.1.2", guest_v86_limits),
    ROW(CHECK_GUEST, "27.3.1.2", guest_v86_access_rights),
    ROW(CHECK_GUEST, "27.3.1.2", guest_cs_type),
    ROW(CHECK_GUEST, "27.3.1.2", guest_ss_type),
    ROW(CHECK_GUEST, "27.3.1.2", guest_data_seg_types),
    ROW(CHECK_GUEST, "27.3.1.2", guest_seg_s_bits),
    ROW(CHECK_GUEST, "27.3.1.2", guest_cs_dpl),
    ROW(CHECK_GUEST, "27.3.1.2", guest_ss_dpl),
    ROW(CHECK_GUEST, "27.3.1.2", guest_data_seg_dpl),
    ROW(CHECK_GUEST, "27.3.1.2", guest_seg_present),
    ROW(CHECK_GUEST, "27.3.1.2", guest_seg_ar_reserved),
    ROW(CHECK_GUEST, "27.3.1.2", guest_cs_db_in_long_mode),
    ROW(CHECK_GUEST, "27.3.1.2", guest_seg_granularity),
    ROW(CHECK_GUEST, "27.3.1.2", guest_tr_rules),
    ROW(CHECK_GUEST, "27.3.1.2", guest_ldtr_usable_rules),
    ROW(CHECK_GUEST, "27.3.1.3", guest_dtr_bases),
    ROW(CHECK_GUEST, "27.3.1.3", guest_dtr_limits),
    ROW(CHECK_GUEST, "27.3.1.4", guest_rip_width),
    ROW(CHECK_GUEST, "27.3.1.4", guest_rflags_reserved),
    ROW(CHECK_GUEST, "27.3.1.4", guest_rflags_vm),
    ROW(CHECK_GUEST, "27.3.1.4", guest_rflags_if_for_extint),
    ROW(CHECK_GUEST, "27.3.1.5", guest_activity_supported),
    ROW(CHECK_GUEST, "27.3.1.5", guest_activity_hlt_ss_dpl),
    ROW(CHECK_GUEST, "27.3.1.5", guest_activity_active_in_shadow),
    ROW(CHECK_GUEST, "27.3.1.5", guest_activity_injection),
    ROW(CHECK_GUEST, "27.3.1.5", guest_intr_reserved),
    ROW(CHECK_GUEST, "27.3.1.5", guest_intr_sti_movss_exclusive),
    ROW(CHECK_GUEST, "27.3.1.5", guest_intr_sti_needs_if),
    ROW(CHECK_GUEST, "27.3.1.5", guest_intr_extint_injection),
    ROW(CHECK_GUEST, "27.3.1.5", guest_intr_nmi_injection_movss),
    ROW(CHECK_GUEST, "27.3.1.5", guest_intr_smi),
    ROWQ("27.3.1.5", 3, guest_intr_nmi_injection_sti),
    ROW(CHECK_GUEST, "27.3.1.5", guest_intr_virtual_nmi_injection),
    ROW(CHECK_GUEST, "27.3.1.5", guest_pending_dbg_reserved),
    ROW(CHECK_GUEST, "27.3.1.5", guest_pending_dbg_bs),
    ROWQ("27.3.1.5", 4, guest_link_pointer_addr),
    ROWQ("27.3.1.5", 4, guest_link_pointer_revision),
    ROWQ("27.3.1.5", 4, guest_link_pointer_not_current),
    ROWQ("27.3.1.6", 2, guest_pdptes),
};

static bool run_checks(struct cpu *c, bool guest, struct vmx_check_failure *fail)
{
    for (size_t k = 0; k < ARRAY_SIZE(checks); k++) {
        const struct entry_check *e = &checks[k];
        if ((e->cls == CHECK_GUEST) != guest || e->ok(c))
            continue;
        fail->name = e->name;
        fail->insn_error = e->cls == CHECK_CONTROL ? VMXERR_ENTRY_INVALID_CONTROLS :
                           VMXERR_ENTRY_INVALID_HOST_STATE;
        fail->qual = e->qual;
        if (c->in->trace_events)
            fprintf(c->in->trace, "cpu%d vmentry check failed: %s (SDM %s)\n", c->id,
                    e->name, e->sdm);
        return false;
    }
    return true;
}

bool vmx_entry_check_controls_host(struct cpu *c, struct vmx_check_failure *fail)
{
    return run_checks(c, false, fail);
}

bool vmx_entry_check_guest(struct cpu *c, struct vmx_check_failure *fail)
{
    return run_checks(c, true, fail);
}

int vmx_entry_check_count(void)
{
    return (int)ARRAY_SIZE(checks);
}

bool vmx_entry_check_info(int k, struct vmx_check_info *info)
{
    if (k < 0 || k >= (int)ARRAY_SIZE(checks))
        return false;
    static const char *const class_names[] = { "control", "host", "guest" };
    *info = (struct vmx_check_info){ checks[k].name, class_names[checks[k].cls], checks[k].sdm,
                                     checks[k].qual };
    return true;
}

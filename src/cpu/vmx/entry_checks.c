/* The VM-entry checks (SDM Vol. 3C 27.2, 27.3.1), one small named function per rule. */
#include "cpu/vmx/entry_checks.h"

enum check_class { CHECK_CONTROL, CHECK_HOST, CHECK_GUEST };

struct entry_check {
    const char *name;
    enum check_class cls;
    const char *sdm;                      /* the section stating the rule */
    bool (*ok)(struct cpu *c, u64 *qual); /* guest checks may set the qualification */
};

#define F(x) (c->vmx->vmcs.f[VMCS_##x])
#define V (c->vmx)

static bool phys_ok(const struct cpu *c, u64 pa) { return (pa >> c->model->phys_bits) == 0; }
static bool page_ok(const struct cpu *c, u64 pa) { return !(pa & 0xfff) && phys_ok(c, pa); }
static bool canon(const struct cpu *c, u64 a) { return cpu_canonical_max(c, a); }

/* ---- 27.2.1.1 VM-execution control fields ---- */
static bool ctl_pin(struct cpu *c, u64 *q) { (void)q; return vmx_ctl_ok(V, VMX_TRUE_PINBASED, (u32)F(PIN_CONTROLS)); }
static bool ctl_proc(struct cpu *c, u64 *q) { (void)q; return vmx_ctl_ok(V, VMX_TRUE_PROCBASED, (u32)F(PROC_CONTROLS)); }
static bool ctl_proc2(struct cpu *c, u64 *q)
{
    (void)q;
    return !(F(PROC_CONTROLS) & PROC_SECONDARY) || vmx_ctl_ok(V, VMX_PROCBASED2, (u32)F(PROC_CONTROLS2));
}
static bool ctl_cr3_count(struct cpu *c, u64 *q) { (void)q; return (u32)F(CR3_TARGET_COUNT) <= 4; }
static bool ctl_io_bitmaps(struct cpu *c, u64 *q)
{
    (void)q;
    return !(vmx_proc(V) & PROC_IO_BITMAPS) || (page_ok(c, F(IO_BITMAP_A)) && page_ok(c, F(IO_BITMAP_B)));
}
static bool ctl_msr_bitmap(struct cpu *c, u64 *q)
{
    (void)q;
    return !(vmx_proc(V) & PROC_MSR_BITMAPS) || page_ok(c, F(MSR_BITMAP));
}
static bool ctl_nmi_virtual(struct cpu *c, u64 *q)
{
    (void)q;
    u32 pin = vmx_pin(V);
    if (!(pin & PIN_NMI_EXITING) && (pin & PIN_VIRTUAL_NMIS))
        return false;
    return (pin & PIN_VIRTUAL_NMIS) || !(vmx_proc(V) & PROC_NMI_WINDOW);
}
static bool ctl_vpid(struct cpu *c, u64 *q) { (void)q; return !(vmx_proc2(V) & PROC2_VPID) || (u16)F(VPID) != 0; }
static bool ctl_eptp(struct cpu *c, u64 *q)
{
    (void)q;
    return !(vmx_proc2(V) & PROC2_EPT) || vmx_eptp_valid(V, F(EPT_POINTER), c->model->phys_bits);
}
static bool ctl_unrestricted(struct cpu *c, u64 *q)
{
    (void)q;
    u32 p2 = vmx_proc2(V);
    return !(p2 & PROC2_UNRESTRICTED_GUEST) || (p2 & PROC2_EPT);
}
static bool ctl_vmfunc(struct cpu *c, u64 *q)
{
    (void)q;
    if (!(vmx_proc2(V) & PROC2_VMFUNC))
        return true;
    u64 fn = F(VMFUNC_CONTROLS);
    if (fn & ~V->caps.msr[VMX_VMFUNC])
        return false;
    /* EPTP switching needs EPT and a page-aligned EPTP list */
    return !(fn & 1) || ((vmx_proc2(V) & PROC2_EPT) && page_ok(c, F(EPTP_LIST_ADDR)));
}
static bool ctl_shadow_bitmaps(struct cpu *c, u64 *q)
{
    (void)q;
    return !(vmx_proc2(V) & PROC2_SHADOW_VMCS) ||
           (page_ok(c, F(VMREAD_BITMAP)) && page_ok(c, F(VMWRITE_BITMAP)));
}

/* ---- 27.2.1.2 VM-exit control fields ---- */
static bool ctl_exit(struct cpu *c, u64 *q) { (void)q; return vmx_ctl_ok(V, VMX_TRUE_EXIT, (u32)F(EXIT_CONTROLS)); }
static bool ctl_exit_preempt(struct cpu *c, u64 *q)
{
    (void)q; /* "save VMX-preemption timer value" needs the timer active */
    return !(F(EXIT_CONTROLS) & EXIT_SAVE_PREEMPT_TIMER) || (vmx_pin(V) & PIN_PREEMPTION_TIMER);
}
static bool msr_area_ok(const struct cpu *c, u64 addr, u64 count)
{
    return count == 0 || (!(addr & 0xf) && phys_ok(c, addr) && phys_ok(c, addr + count * 16 - 1));
}
static bool ctl_exit_msr_areas(struct cpu *c, u64 *q)
{
    (void)q;
    return msr_area_ok(c, F(EXIT_MSR_STORE_ADDR), (u32)F(EXIT_MSR_STORE_COUNT)) &&
           msr_area_ok(c, F(EXIT_MSR_LOAD_ADDR), (u32)F(EXIT_MSR_LOAD_COUNT));
}

/* ---- 27.2.1.3 VM-entry control fields ---- */
static bool ctl_entry(struct cpu *c, u64 *q) { (void)q; return vmx_ctl_ok(V, VMX_TRUE_ENTRY, (u32)F(ENTRY_CONTROLS)); }
static bool ctl_entry_msr_area(struct cpu *c, u64 *q)
{
    (void)q;
    return msr_area_ok(c, F(ENTRY_MSR_LOAD_ADDR), (u32)F(ENTRY_MSR_LOAD_COUNT));
}
/* Event injection (27.2.1.3): type supported, vector rules, error code rules, length. */
static bool ctl_entry_injection(struct cpu *c, u64 *q)
{
    (void)q;
    u32 info = (u32)F(ENTRY_INTR_INFO);
    if (!(info & INTR_INFO_VALID))
        return true;
    unsigned type = INTR_INFO_TYPE(info), vec = INTR_INFO_VECTOR(info);
    if (info & 0x7ffff000u) /* bits 30:12 reserved */
        return false;
    if (type == 1)
        return false;
    if (type == INTR_TYPE_NMI && vec != 2)
        return false;
    if (type == INTR_TYPE_HW_EXC && vec > 31)
        return false;
    if (type == INTR_TYPE_OTHER && (vec != 0 || !(vmx_proc(V) & PROC_MTF)))
        return false;
    bool unrestricted_real = (vmx_proc2(V) & PROC2_UNRESTRICTED_GUEST) && !(F(GUEST_CR0) & CR0_PE);
    bool err_vec = vec == EXC_DF || vec == EXC_TS || vec == EXC_NP || vec == EXC_SS ||
                   vec == EXC_GP || vec == EXC_PF || vec == EXC_AC;
    if (info & INTR_INFO_ERROR) {
        if (unrestricted_real || type != INTR_TYPE_HW_EXC || !err_vec)
            return false;
        if (F(ENTRY_EXCEPTION_ERROR) >> 15) /* bits 31:15 of the error code are 0 */
            return false;
    } else if (type == INTR_TYPE_HW_EXC && err_vec && !unrestricted_real) {
        return false;
    }
    if (type == INTR_TYPE_SW_INT || type == INTR_TYPE_PRIV_SW_EXC || type == INTR_TYPE_SW_EXC) {
        u32 len = (u32)F(ENTRY_INSN_LEN);
        if (len > 15 || (len == 0 && !(V->caps.msr[VMX_MISC] & BIT(30))))
            return false;
    }
    return true;
}

/* ---- 27.2.2 host control registers and MSRs ---- */
static bool host_cr0(struct cpu *c, u64 *q) { (void)q; return vmx_cr0_allowed_root(c, F(HOST_CR0)); }
static bool host_cr4(struct cpu *c, u64 *q)
{
    (void)q;
    u64 f0 = V->caps.msr[VMX_CR4_FIXED0], f1 = V->caps.msr[VMX_CR4_FIXED1];
    return (F(HOST_CR4) & f0) == f0 && !(F(HOST_CR4) & ~f1);
}
static bool host_cr3(struct cpu *c, u64 *q) { (void)q; return phys_ok(c, F(HOST_CR3)); }
static bool host_sysenter(struct cpu *c, u64 *q)
{
    (void)q;
    return canon(c, F(HOST_SYSENTER_ESP)) && canon(c, F(HOST_SYSENTER_EIP));
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
static bool host_pat(struct cpu *c, u64 *q)
{
    (void)q;
    return !(F(EXIT_CONTROLS) & EXIT_LOAD_PAT) || pat_valid(F(HOST_PAT));
}
static bool host_efer(struct cpu *c, u64 *q)
{
    (void)q;
    if (!(F(EXIT_CONTROLS) & EXIT_LOAD_EFER))
        return true;
    u64 e = F(HOST_EFER);
    bool l = F(EXIT_CONTROLS) & EXIT_HOST_ADDR_SPACE;
    if (e & ~(u64)(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE))
        return false;
    return !!(e & EFER_LMA) == l && !!(e & EFER_LME) == l;
}

/* ---- 27.2.3 host segment and descriptor-table registers ---- */
static bool host_selectors(struct cpu *c, u64 *q)
{
    (void)q;
    static const int sels[] = { VMCS_HOST_ES_SEL, VMCS_HOST_CS_SEL, VMCS_HOST_SS_SEL,
                                VMCS_HOST_DS_SEL, VMCS_HOST_FS_SEL, VMCS_HOST_GS_SEL,
                                VMCS_HOST_TR_SEL };
    for (size_t k = 0; k < ARRAY_SIZE(sels); k++)
        if (c->vmx->vmcs.f[sels[k]] & 7) /* RPL and TI are 0 */
            return false;
    if (!F(HOST_CS_SEL) || !F(HOST_TR_SEL))
        return false;
    return F(HOST_SS_SEL) || (F(EXIT_CONTROLS) & EXIT_HOST_ADDR_SPACE);
}
static bool host_bases(struct cpu *c, u64 *q)
{
    (void)q;
    return canon(c, F(HOST_FS_BASE)) && canon(c, F(HOST_GS_BASE)) && canon(c, F(HOST_GDTR_BASE)) &&
           canon(c, F(HOST_IDTR_BASE)) && canon(c, F(HOST_TR_BASE));
}

/* ---- 27.2.4 address-space size ---- */
static bool host_addr_space(struct cpu *c, u64 *q)
{
    (void)q;
    bool l = F(EXIT_CONTROLS) & EXIT_HOST_ADDR_SPACE;
    /* the processor is in IA-32e mode exactly when host address-space size is 1 */
    if (!!(c->efer & EFER_LMA) != l)
        return false;
    if (l)
        return (F(HOST_CR4) & CR4_PAE) && canon(c, F(HOST_RIP));
    return !(F(ENTRY_CONTROLS) & ENTRY_IA32E_GUEST) && !(F(HOST_CR4) & CR4_PCIDE) &&
           !(F(HOST_RIP) >> 32);
}

/* ---- 27.3.1.1 guest control registers, debug registers and MSRs ---- */
static bool unrestricted(struct cpu *c) { return vmx_proc2(V) & PROC2_UNRESTRICTED_GUEST; }
static bool ia32e_guest(struct cpu *c) { return F(ENTRY_CONTROLS) & ENTRY_IA32E_GUEST; }
static bool guest_cr0(struct cpu *c, u64 *q)
{
    (void)q;
    u64 cr0 = F(GUEST_CR0);
    u64 f0 = V->caps.msr[VMX_CR0_FIXED0], f1 = V->caps.msr[VMX_CR0_FIXED1];
    if (unrestricted(c))
        f0 &= ~(u64)(CR0_PE | CR0_PG);
    if ((cr0 & f0) != f0 || (cr0 & ~f1 & 0xffffffffull))
        return false;
    return !(cr0 & CR0_PG) || (cr0 & CR0_PE);
}
static bool guest_cr4(struct cpu *c, u64 *q)
{
    (void)q;
    u64 f0 = V->caps.msr[VMX_CR4_FIXED0], f1 = V->caps.msr[VMX_CR4_FIXED1];
    return (F(GUEST_CR4) & f0) == f0 && !(F(GUEST_CR4) & ~f1);
}
static bool guest_ia32e_paging(struct cpu *c, u64 *q)
{
    (void)q;
    if (ia32e_guest(c))
        return (F(GUEST_CR0) & CR0_PG) && (F(GUEST_CR4) & CR4_PAE);
    return !(F(GUEST_CR4) & CR4_PCIDE);
}
static bool guest_cr3(struct cpu *c, u64 *q) { (void)q; return phys_ok(c, F(GUEST_CR3)); }
static bool guest_dr7(struct cpu *c, u64 *q)
{
    (void)q;
    return !(F(ENTRY_CONTROLS) & ENTRY_LOAD_DEBUG) || !(F(GUEST_DR7) >> 32);
}
static bool guest_sysenter(struct cpu *c, u64 *q)
{
    (void)q;
    return canon(c, F(GUEST_SYSENTER_ESP)) && canon(c, F(GUEST_SYSENTER_EIP));
}
static bool guest_pat(struct cpu *c, u64 *q)
{
    (void)q;
    return !(F(ENTRY_CONTROLS) & ENTRY_LOAD_PAT) || pat_valid(F(GUEST_PAT));
}
static bool guest_efer(struct cpu *c, u64 *q)
{
    (void)q;
    if (!(F(ENTRY_CONTROLS) & ENTRY_LOAD_EFER))
        return true;
    u64 e = F(GUEST_EFER);
    if (e & ~(u64)(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE))
        return false;
    bool l = ia32e_guest(c);
    if (!!(e & EFER_LMA) != l)
        return false;
    return !(F(GUEST_CR0) & CR0_PG) || !!(e & EFER_LME) == !!(e & EFER_LMA);
}

/* ---- 27.3.1.2 guest segment registers (the rules a flat or real-mode guest meets) ---- */
static bool guest_tr(struct cpu *c, u64 *q)
{
    (void)q;
    u32 ar = (u32)F(GUEST_TR_AR);
    unsigned type = ar & 0xf;
    if (F(GUEST_TR_SEL) & 4)
        return false;
    if (ia32e_guest(c) ? type != 11 : (type != 3 && type != 11))
        return false;
    return !(ar & SEG_ATTR_S) && (ar & SEG_ATTR_P) && !(ar & SEG_ATTR_UNUSABLE) &&
           !(ar & 0xfffe0f00u) && canon(c, F(GUEST_TR_BASE));
}
static bool guest_ldtr(struct cpu *c, u64 *q)
{
    (void)q;
    u32 ar = (u32)F(GUEST_LDTR_AR);
    if (ar & SEG_ATTR_UNUSABLE)
        return true;
    return !(F(GUEST_LDTR_SEL) & 4) && (ar & 0xf) == 2 && !(ar & SEG_ATTR_S) &&
           (ar & SEG_ATTR_P) && !(ar & 0xfffe0f00u) && canon(c, F(GUEST_LDTR_BASE));
}
static bool guest_cs(struct cpu *c, u64 *q)
{
    (void)q;
    u32 ar = (u32)F(GUEST_CS_AR);
    bool v86 = F(GUEST_RFLAGS) & FL_VM;
    if (v86)
        return ar == 0xf3 && F(GUEST_CS_BASE) == (F(GUEST_CS_SEL) << 4) &&
               (u32)F(GUEST_CS_LIMIT) == 0xffff;
    unsigned type = ar & 0xf;
    if (!((type == 9 || type == 11 || type == 13 || type == 15) ||
          (type == 3 && unrestricted(c))))
        return false;
    if (!(ar & SEG_ATTR_S) || !(ar & SEG_ATTR_P) || (ar & SEG_ATTR_UNUSABLE) || (ar & 0xfffe0f00u))
        return false;
    if (ia32e_guest(c) && (ar & SEG_ATTR_L) && (ar & SEG_ATTR_DB))
        return false;
    u32 limit = (u32)F(GUEST_CS_LIMIT);
    if ((limit & 0xfff) != 0xfff && (ar & SEG_ATTR_G))
        return false;
    if ((limit >> 20) && !(ar & SEG_ATTR_G))
        return false;
    return !(F(GUEST_CS_BASE) >> 32);
}
static bool guest_ss_dpl(struct cpu *c, u64 *q)
{
    (void)q;
    u32 ss = (u32)F(GUEST_SS_AR), cs = (u32)F(GUEST_CS_AR);
    if (F(GUEST_RFLAGS) & FL_VM)
        return ss == 0xf3;
    if (unrestricted(c) && !(F(GUEST_CR0) & CR0_PE))
        return SEG_ATTR_DPL(ss) == 0;
    if ((cs & 0xf) == 3)
        return SEG_ATTR_DPL(ss) == 0;
    if (ss & SEG_ATTR_UNUSABLE)
        return true;
    unsigned t = ss & 0xf;
    return (t == 3 || t == 7) && (ss & SEG_ATTR_S) && (ss & SEG_ATTR_P) &&
           SEG_ATTR_DPL(ss) == (F(GUEST_SS_SEL) & 3);
}
static bool guest_data_segs(struct cpu *c, u64 *q)
{
    (void)q;
    static const int ar_f[] = { VMCS_GUEST_DS_AR, VMCS_GUEST_ES_AR, VMCS_GUEST_FS_AR, VMCS_GUEST_GS_AR };
    static const int base_f[] = { VMCS_GUEST_DS_BASE, VMCS_GUEST_ES_BASE, VMCS_GUEST_FS_BASE, VMCS_GUEST_GS_BASE };
    for (size_t k = 0; k < ARRAY_SIZE(ar_f); k++) {
        u32 ar = (u32)c->vmx->vmcs.f[ar_f[k]];
        u64 base = c->vmx->vmcs.f[base_f[k]];
        if (k >= 2 ? !canon(c, base) : (base >> 32) != 0)
            return false;
        if (ar & SEG_ATTR_UNUSABLE)
            continue;
        if (!(ar & 1) || !(ar & SEG_ATTR_S) || !(ar & SEG_ATTR_P) || (ar & 0xfffe0f00u))
            return false;
        if ((ar & 8) && !(ar & 2)) /* code segments must be readable */
            return false;
    }
    return true;
}
static bool guest_dtr(struct cpu *c, u64 *q)
{
    (void)q;
    return canon(c, F(GUEST_GDTR_BASE)) && canon(c, F(GUEST_IDTR_BASE)) &&
           !(F(GUEST_GDTR_LIMIT) >> 16) && !(F(GUEST_IDTR_LIMIT) >> 16);
}

/* ---- 27.3.1.4 RIP and RFLAGS ---- */
static bool guest_rip(struct cpu *c, u64 *q)
{
    (void)q;
    bool l = ia32e_guest(c) && (F(GUEST_CS_AR) & SEG_ATTR_L);
    return l ? canon(c, F(GUEST_RIP)) : !(F(GUEST_RIP) >> 32);
}
static bool guest_rflags(struct cpu *c, u64 *q)
{
    (void)q;
    u64 f = F(GUEST_RFLAGS);
    if ((f & (~0ull << 22 | BIT(15) | BIT(5) | BIT(3))) || !(f & FL_FIXED1))
        return false;
    if ((f & FL_VM) && (ia32e_guest(c) || !(F(GUEST_CR0) & CR0_PE)))
        return false;
    u32 info = (u32)F(ENTRY_INTR_INFO);
    if ((info & INTR_INFO_VALID) && INTR_INFO_TYPE(info) == INTR_TYPE_EXT && !(f & FL_IF))
        return false;
    return true;
}

/* ---- 27.3.1.5 non-register state ---- */
static bool guest_activity(struct cpu *c, u64 *q)
{
    (void)q;
    u64 a = F(GUEST_ACTIVITY_STATE);
    if (a > 3 || (a && !(V->caps.msr[VMX_MISC] & BIT(5 + a))))
        return false;
    /* HLT needs SS.DPL 0; events blocked by STI/MOV SS allow only the active state */
    if (a == ACTIVITY_HLT && SEG_ATTR_DPL((u32)F(GUEST_SS_AR)) != 0)
        return false;
    if (a && (F(GUEST_INTERRUPTIBILITY) & (INTERRUPTIBILITY_STI | INTERRUPTIBILITY_MOV_SS)))
        return false;
    return true;
}
static bool guest_interruptibility(struct cpu *c, u64 *q)
{
    (void)q;
    u64 s = F(GUEST_INTERRUPTIBILITY);
    if (s >> 5)
        return false;
    if ((s & INTERRUPTIBILITY_STI) && (s & INTERRUPTIBILITY_MOV_SS))
        return false;
    if ((s & INTERRUPTIBILITY_STI) && !(F(GUEST_RFLAGS) & FL_IF))
        return false;
    if (s & INTERRUPTIBILITY_SMI) /* not in SMM */
        return false;
    u32 info = (u32)F(ENTRY_INTR_INFO);
    if (info & INTR_INFO_VALID) {
        unsigned t = INTR_INFO_TYPE(info);
        if (t == INTR_TYPE_EXT && (s & (INTERRUPTIBILITY_STI | INTERRUPTIBILITY_MOV_SS)))
            return false;
        if (t == INTR_TYPE_NMI && (s & INTERRUPTIBILITY_MOV_SS))
            return false;
        if (t == INTR_TYPE_NMI && (vmx_pin(V) & PIN_VIRTUAL_NMIS) && (s & INTERRUPTIBILITY_NMI))
            return false;
    }
    return true;
}
static bool guest_pending_dbg(struct cpu *c, u64 *q)
{
    (void)q;
    u64 p = F(GUEST_PENDING_DBG);
    /* reserved bits 63:17, 15, 11:4 */
    return !(p & (~0ull << 17 | BIT(15) | 0xff0ull));
}
static bool guest_link_pointer(struct cpu *c, u64 *q)
{
    u64 lp = F(LINK_POINTER);
    if (lp == ~0ull)
        return true;
    *q = 4;
    if (!page_ok(c, lp))
        return false;
    u32 rev = ~0u;
    vmx_phys_read(c, lp, &rev, 4);
    bool shadow = vmx_proc2(V) & PROC2_SHADOW_VMCS;
    return (rev & 0x7fffffffu) == VMX_REVISION && !!(rev >> 31) == shadow;
}

static const struct entry_check checks[] = {
    { "controls: pin-based", CHECK_CONTROL, "27.2.1.1", ctl_pin },
    { "controls: primary processor-based", CHECK_CONTROL, "27.2.1.1", ctl_proc },
    { "controls: secondary processor-based", CHECK_CONTROL, "27.2.1.1", ctl_proc2 },
    { "controls: CR3-target count", CHECK_CONTROL, "27.2.1.1", ctl_cr3_count },
    { "controls: I/O bitmaps", CHECK_CONTROL, "27.2.1.1", ctl_io_bitmaps },
    { "controls: MSR bitmap", CHECK_CONTROL, "27.2.1.1", ctl_msr_bitmap },
    { "controls: NMI exiting, virtual NMIs, NMI-window", CHECK_CONTROL, "27.2.1.1", ctl_nmi_virtual },
    { "controls: VPID", CHECK_CONTROL, "27.2.1.1", ctl_vpid },
    { "controls: EPT pointer", CHECK_CONTROL, "27.2.1.1", ctl_eptp },
    { "controls: unrestricted guest needs EPT", CHECK_CONTROL, "27.2.1.1", ctl_unrestricted },
    { "controls: VM functions", CHECK_CONTROL, "27.2.1.1", ctl_vmfunc },
    { "controls: VMREAD/VMWRITE bitmaps", CHECK_CONTROL, "27.2.1.1", ctl_shadow_bitmaps },
    { "controls: VM-exit", CHECK_CONTROL, "27.2.1.2", ctl_exit },
    { "controls: save preemption timer", CHECK_CONTROL, "27.2.1.2", ctl_exit_preempt },
    { "controls: VM-exit MSR areas", CHECK_CONTROL, "27.2.1.2", ctl_exit_msr_areas },
    { "controls: VM-entry", CHECK_CONTROL, "27.2.1.3", ctl_entry },
    { "controls: VM-entry MSR-load area", CHECK_CONTROL, "27.2.1.3", ctl_entry_msr_area },
    { "controls: event injection", CHECK_CONTROL, "27.2.1.3", ctl_entry_injection },
    { "host: CR0", CHECK_HOST, "27.2.2", host_cr0 },
    { "host: CR4", CHECK_HOST, "27.2.2", host_cr4 },
    { "host: CR3", CHECK_HOST, "27.2.2", host_cr3 },
    { "host: SYSENTER_ESP/EIP", CHECK_HOST, "27.2.2", host_sysenter },
    { "host: IA32_PAT", CHECK_HOST, "27.2.2", host_pat },
    { "host: IA32_EFER", CHECK_HOST, "27.2.2", host_efer },
    { "host: selectors", CHECK_HOST, "27.2.3", host_selectors },
    { "host: base addresses", CHECK_HOST, "27.2.3", host_bases },
    { "host: address-space size", CHECK_HOST, "27.2.4", host_addr_space },
    { "guest: CR0", CHECK_GUEST, "27.3.1.1", guest_cr0 },
    { "guest: CR4", CHECK_GUEST, "27.3.1.1", guest_cr4 },
    { "guest: IA-32e mode and paging", CHECK_GUEST, "27.3.1.1", guest_ia32e_paging },
    { "guest: CR3", CHECK_GUEST, "27.3.1.1", guest_cr3 },
    { "guest: DR7", CHECK_GUEST, "27.3.1.1", guest_dr7 },
    { "guest: SYSENTER_ESP/EIP", CHECK_GUEST, "27.3.1.1", guest_sysenter },
    { "guest: IA32_PAT", CHECK_GUEST, "27.3.1.1", guest_pat },
    { "guest: IA32_EFER", CHECK_GUEST, "27.3.1.1", guest_efer },
    { "guest: TR", CHECK_GUEST, "27.3.1.2", guest_tr },
    { "guest: LDTR", CHECK_GUEST, "27.3.1.2", guest_ldtr },
    { "guest: CS", CHECK_GUEST, "27.3.1.2", guest_cs },
    { "guest: SS", CHECK_GUEST, "27.3.1.2", guest_ss_dpl },
    { "guest: DS, ES, FS, GS", CHECK_GUEST, "27.3.1.2", guest_data_segs },
    { "guest: GDTR, IDTR", CHECK_GUEST, "27.3.1.3", guest_dtr },
    { "guest: RIP", CHECK_GUEST, "27.3.1.4", guest_rip },
    { "guest: RFLAGS", CHECK_GUEST, "27.3.1.4", guest_rflags },
    { "guest: activity state", CHECK_GUEST, "27.3.1.5", guest_activity },
    { "guest: interruptibility state", CHECK_GUEST, "27.3.1.5", guest_interruptibility },
    { "guest: pending debug exceptions", CHECK_GUEST, "27.3.1.5", guest_pending_dbg },
    { "guest: VMCS link pointer", CHECK_GUEST, "27.3.1.5", guest_link_pointer },
};

static bool run_checks(struct cpu *c, bool guest, struct vmx_check_failure *fail)
{
    for (size_t k = 0; k < ARRAY_SIZE(checks); k++) {
        const struct entry_check *e = &checks[k];
        if ((e->cls == CHECK_GUEST) != guest)
            continue;
        u64 qual = 0;
        if (e->ok(c, &qual))
            continue;
        fail->name = e->name;
        fail->insn_error = e->cls == CHECK_CONTROL ? VMXERR_ENTRY_INVALID_CONTROLS :
                           VMXERR_ENTRY_INVALID_HOST_STATE;
        fail->qual = qual;
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

const char *vmx_entry_check_name(int k)
{
    return k >= 0 && k < (int)ARRAY_SIZE(checks) ? checks[k].name : NULL;
}

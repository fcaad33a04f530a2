/* Model-specific registers the engine owns (SDM Vol. 4 ch. 2, Vol. 3A ch. 11-12, 17.17),
 * as one table: index range, the feature that makes it exist, a reader and a writer that
 * validates. An MSR outside the table, or one whose feature the model lacks, goes to
 * cpu_intercept (EV_MSR_READ / EV_MSR_WRITE): the machine owns the APIC, x2APIC and
 * TSC-deadline MSRs; anything nobody takes is #GP(0). */
#include "cpu/exec.h"
#include "cpu/sgx/sgx.h"
#include "cpu/svm/svm.h"
#include "cpu/vmx/vmx.h"

enum {
    MSR_TSC = 0x10,
    MSR_PLATFORM_ID = 0x17,
    MSR_FEATURE_CONTROL = 0x3a,
    MSR_TSC_ADJUST = 0x3b,
    MSR_BIOS_SIGN_ID = 0x8b,
    MSR_ARCH_CAPABILITIES = 0x10a,
    MSR_PLATFORM_INFO = 0xce,
    MSR_MTRRCAP = 0xfe,
    MSR_SYSENTER_CS = 0x174,
    MSR_SYSENTER_ESP = 0x175,
    MSR_SYSENTER_EIP = 0x176,
    MSR_MCG_CAP = 0x179,
    MSR_MCG_STATUS = 0x17a,
    MSR_MISC_ENABLE = 0x1a0,
    MSR_DEBUGCTL = 0x1d9,
    MSR_MTRR_PHYS_FIRST = 0x200,
    MSR_MTRR_PHYS_LAST = 0x20f,
    MSR_MTRR_FIX64K = 0x250,
    MSR_MTRR_FIX16K_80000 = 0x258,
    MSR_MTRR_FIX16K_A0000 = 0x259,
    MSR_MTRR_FIX4K_FIRST = 0x268,
    MSR_MTRR_FIX4K_LAST = 0x26f,
    MSR_PAT = 0x277,
    MSR_MTRR_DEF_TYPE = 0x2ff,
    MSR_EFER = 0xc0000080u,
    MSR_STAR = 0xc0000081u,
    MSR_LSTAR = 0xc0000082u,
    MSR_CSTAR = 0xc0000083u,
    MSR_SFMASK = 0xc0000084u,
    MSR_FS_BASE = 0xc0000100u,
    MSR_GS_BASE = 0xc0000101u,
    MSR_KERNEL_GS_BASE = 0xc0000102u,
    MSR_TSC_AUX = 0xc0000103u,
};

/* Variable-range MTRR pairs (MTRRcap.VCNT): 8, matching msr_mtrr_var[16]. */
#define MTRR_VAR_COUNT 8u
/* MTRRcap: VCNT, fixed ranges (bit 8), write-combining (bit 10). */
#define MTRRCAP_VALUE (MTRR_VAR_COUNT | BIT(8) | BIT(10))
/* MCG_CAP: no error-reporting banks, no MCG_CTL: machine checks never occur. */
#define MCG_CAP_VALUE 0ull
/* PLATFORM_ID: platform id 0 in bits 52:50 (microcode updates select on it). */
#define PLATFORM_ID_VALUE 0ull
/* Microcode revision the CPUID instruction loads into BIOS_SIGN_ID (Intel: bits 63:32;
 * AMD's PATCH_LEVEL at the same index: bits 31:0). Nonzero, as on every shipped part. */
#define MICROCODE_REVISION 1ull
/* FEATURE_CONTROL: locked with VMX and SMX off, as firmware leaves it. */
#define FEATURE_CONTROL_VALUE BIT(0)
/* ARCH_CAPABILITIES: the software CPU executes nothing speculatively, so it reports itself
 * free of every speculative-execution and data-sampling issue the MSR can express:
 * RDCL_NO (0), SKIP_L1DFL_VMENTRY (3), SSB_NO (4), MDS_NO (5), IF_PSCHANGE_MC_NO (6),
 * TAA_NO (8), SBDR_SSDP_NO (13), FBSDP_NO (14), PSDP_NO (15), BHI_NO (20), PBRSB_NO (24),
 * GDS_NO (26), RFDS_NO (27), ITS_NO (62). */
#define ARCH_CAPABILITIES_VALUE (BIT(0) | BIT(3) | BIT(4) | BIT(5) | BIT(6) | BIT(8) | BIT(13) | \
                                 BIT(14) | BIT(15) | BIT(20) | BIT(24) | BIT(26) | BIT(27) | \
                                 BIT(62))
/* IA32_MISC_ENABLE (SDM Vol. 4 table 2-2). Read/write: fast strings (0), automatic
 * thermal control (3), Enhanced SpeedStep (16), MONITOR/MWAIT (18, with MONITOR in the
 * model), limit CPUID maxval (22), xTPR messages disable (23), XD disable (34, with NX
 * in the model); they only store, except 18, 22 and 34, which change CPUID (and 34 makes
 * EFER.NXE reserved). Read-only status: performance monitoring available (7, writes
 * ignored), BTS and PEBS unavailable (11, 12: a write that changes them is #GP). Every
 * other bit is reserved (#GP). */
#define MISC_ENABLE_FAST_STRINGS BIT(0)
#define MISC_ENABLE_AUTO_THERMAL BIT(3)
#define MISC_ENABLE_PERFMON BIT(7)
#define MISC_ENABLE_BTS_UNAVAIL BIT(11)
#define MISC_ENABLE_PEBS_UNAVAIL BIT(12)
#define MISC_ENABLE_EIST BIT(16)
#define MISC_ENABLE_XTPR_DISABLE BIT(23)
#define MISC_ENABLE_WRITABLE (MISC_ENABLE_FAST_STRINGS | MISC_ENABLE_AUTO_THERMAL | \
                              MISC_ENABLE_EIST | MISC_ENABLE_MWAIT | MISC_ENABLE_LIMIT_CPUID | \
                              MISC_ENABLE_XTPR_DISABLE | MISC_ENABLE_XD_DISABLE)
#define MISC_ENABLE_STATUS (MISC_ENABLE_BTS_UNAVAIL | MISC_ENABLE_PEBS_UNAVAIL)

/* Memory types valid in MTRRs: UC, WC, WT, WP, WB; PAT adds UC- (7). */
static bool mtrr_type_ok(u64 t) { return t == 0 || t == 1 || t == 4 || t == 5 || t == 6; }
static bool pat_type_ok(u64 t) { return mtrr_type_ok(t) || t == 7; }

static bool bytes_ok(u64 v, bool (*type_ok)(u64))
{
    for (int b = 0; b < 8; b++)
        if (!type_ok((v >> (8 * b)) & 0xff))
            return false;
    return true;
}

/* Address bits at and above MAXPHYADDR: reserved in MTRR bases and masks. */
static u64 phys_reserved(const struct cpu *c)
{
    return ~0ull << c->model->phys_bits;
}

/* ---- presence ---- */
typedef bool (*present_fn)(const struct cpu *c);
static bool always(const struct cpu *c) { (void)c; return true; }
static bool has_tsc(const struct cpu *c) { return cpu_has(c, CF_TSC); }
static bool has_sep(const struct cpu *c) { return cpu_has(c, CF_SEP); }
static bool has_mtrr(const struct cpu *c) { return cpu_has(c, CF_MTRR); }
static bool has_pat(const struct cpu *c) { return cpu_has(c, CF_PAT); }
static bool has_lm(const struct cpu *c) { return cpu_has(c, CF_LM); }
static bool has_mca(const struct cpu *c) { return cpuid_has(c->model, "mca"); }
static bool has_tsc_adjust(const struct cpu *c) { return cpuid_has(c->model, "tsc_adjust"); }
static bool has_arch_caps(const struct cpu *c) { return cpuid_has(c->model, "arch_capabilities"); }
static bool has_tsc_aux(const struct cpu *c) { return cpu_has(c, CF_RDTSCP) || cpu_has(c, CF_RDPID); }
static bool has_efer(const struct cpu *c)
{
    return cpu_has(c, CF_LM) || cpu_has(c, CF_NX) || cpu_has(c, CF_SYSCALL);
}
static bool is_intel(const struct cpu *c) { return c->model->vendor == VENDOR_INTEL; }
static bool is_amd(const struct cpu *c) { return c->model->vendor == VENDOR_AMD; }

/* ---- readers and writers: false = #GP(0) ---- */
typedef bool (*rd_fn)(struct cpu *c, u32 index, u64 *v);
typedef bool (*wr_fn)(struct cpu *c, u32 index, u64 v);

static bool wr_readonly(struct cpu *c, u32 index, u64 v) { (void)c; (void)index; (void)v; return false; }

/* Owners of a view of time built on this vCPU's TSC (Xen's pvclock) hear of a change
 * before the guest can read the TSC again. */
static void tsc_written(struct cpu *c)
{
    struct cpu_event ev = { .kind = EV_TSC_WRITTEN };
    cpu_intercept(c, &ev);
}

static bool rd_tsc(struct cpu *c, u32 index, u64 *v) { (void)index; *v = cpu_tsc(c); return true; }
static bool wr_tsc(struct cpu *c, u32 index, u64 v)
{
    (void)index;
    /* Writing the TSC moves IA32_TSC_ADJUST by the same amount (SDM 17.17.3). */
    u64 delta = v - cpu_tsc(c);
    c->tsc_offset = (s64)((u64)c->tsc_offset + delta); /* the TSC wraps mod 2^64 */
    c->msr_tsc_adjust += delta;
    tsc_written(c);
    return true;
}

static bool rd_tsc_adjust(struct cpu *c, u32 index, u64 *v) { (void)index; *v = c->msr_tsc_adjust; return true; }
static bool wr_tsc_adjust(struct cpu *c, u32 index, u64 v)
{
    (void)index;
    c->tsc_offset = (s64)((u64)c->tsc_offset + (v - c->msr_tsc_adjust));
    c->msr_tsc_adjust = v;
    tsc_written(c);
    return true;
}

static bool rd_const(u64 value, u64 *v) { *v = value; return true; }
/* IA32_FEATURE_CONTROL: firmware's to set on a model with VMX or SGX (unlocked at RESET),
 * else locked with everything off */
static bool feature_control_settable(const struct cpu *c) { return c->vmx || c->sgx; }
static bool rd_feature_control(struct cpu *c, u32 i, u64 *v)
{
    (void)i;
    return rd_const(feature_control_settable(c) ? c->msr_feature_control : FEATURE_CONTROL_VALUE, v);
}
/* Writable until locked; the bits are the lock, VMX outside SMX with VMX, and SGX's
 * global and Launch Control enables with SGX (SDM Vol. 4, MSR 3Ah); anything else or a
 * write once locked is #GP. The VMX capability MSRs are read-only (cpu/vmx/caps.c). */
static bool wr_feature_control(struct cpu *c, u32 i, u64 v)
{
    (void)i;
    u64 writable = BIT(0);
    if (c->vmx)
        writable |= BIT(2);
    if (c->sgx) {
        writable |= FEATURE_CONTROL_SGX;
        if (cpuid_has(c->model, "sgx_lc"))
            writable |= FEATURE_CONTROL_SGX_LC;
    }
    if (!feature_control_settable(c) || (c->msr_feature_control & BIT(0)) || (v & ~writable))
        return false;
    c->msr_feature_control = v;
    return true;
}
static bool has_sgx_lc(const struct cpu *c) { return c->sgx && cpuid_has(c->model, "sgx_lc"); }
static bool has_vmx(const struct cpu *c) { return c->vmx != NULL; }
static bool rd_vmx_caps(struct cpu *c, u32 i, u64 *v) { return vmx_msr_read(c, i, v); }
/* AMD's HWCR (MSR C001_0015): TscFreqSel (bit 24) reads 1, the TSC counting at the P0
 * frequency as on every family-10h-and-later part (Linux warns of a firmware bug
 * otherwise). Writes may set the bits system software toggles, which change nothing
 * here: SmmLock (0), TlbCacheDis (3), IgnneEm (6), the FFDIS/LockTscToCurrentP0 pair
 * (8, 21) and McStatusWrEn (18); anything else is #GP. */
#define MSR_AMD_HWCR 0xc0010015u
#define HWCR_TSC_FREQ_SEL BIT(24)
static bool rd_hwcr(struct cpu *c, u32 i, u64 *v) { (void)c; (void)i; return rd_const(HWCR_TSC_FREQ_SEL, v); }
static bool wr_hwcr(struct cpu *c, u32 i, u64 v)
{
    (void)c;
    (void)i;
    return !(v & ~(BIT(0) | BIT(3) | BIT(6) | BIT(8) | BIT(18) | BIT(21) | HWCR_TSC_FREQ_SEL));
}
/* AMD's SYSCFG (C001_0010): no fixed-range MTRR DRAM attributes, no TOM2, no memory
 * encryption: 0, and only 0 may be written. NB_CFG (C001_001F): EnableCf8ExtCfg (bit 46)
 * may be set, as Linux does on family 10h-17h parts, and reads back 0: nestor's PCI
 * host decodes extended configuration through MMCONFIG only. */
#define MSR_AMD_SYSCFG 0xc0010010u
#define MSR_AMD_NB_CFG 0xc001001fu
static bool wr_syscfg(struct cpu *c, u32 i, u64 v) { (void)c; (void)i; return v == 0; }
static bool wr_nb_cfg(struct cpu *c, u32 i, u64 v) { (void)c; (void)i; return !(v & ~BIT(46)); }
/* SVM's VM_CR, VM_HSAVE_PA and TSC_RATIO (cpu/svm/svm.c) */
static bool has_svm(const struct cpu *c) { return c->svm != NULL; }
static bool rd_svm(struct cpu *c, u32 i, u64 *v) { return svm_msr_read(c, i, v); }
static bool wr_svm(struct cpu *c, u32 i, u64 v) { return svm_msr_write(c, i, v); }
static bool rd_mtrrcap(struct cpu *c, u32 i, u64 *v) { (void)c; (void)i; return rd_const(MTRRCAP_VALUE, v); }
static bool rd_arch_caps(struct cpu *c, u32 i, u64 *v) { (void)c; (void)i; return rd_const(ARCH_CAPABILITIES_VALUE, v); }
static bool rd_mcg_cap(struct cpu *c, u32 i, u64 *v) { (void)c; (void)i; return rd_const(MCG_CAP_VALUE, v); }
static bool rd_zero(struct cpu *c, u32 i, u64 *v) { (void)c; (void)i; return rd_const(0, v); }
static bool rd_platform_id(struct cpu *c, u32 i, u64 *v) { (void)c; (void)i; return rd_const(PLATFORM_ID_VALUE, v); }
static bool rd_ucode_rev(struct cpu *c, u32 i, u64 *v)
{
    (void)i;
    return rd_const(is_intel(c) ? MICROCODE_REVISION << 32 : MICROCODE_REVISION, v);
}

/* Microcode revision: a write (of 0, by convention) precedes CPUID, which reloads the
 * revision; no update is ever loaded, so writes are ignored. */
static bool wr_ignore(struct cpu *c, u32 i, u64 v) { (void)c; (void)i; (void)v; return true; }

/* MCG_STATUS: no machine check is ever in progress; software may only clear it. */
static bool wr_mcg_status(struct cpu *c, u32 i, u64 v) { (void)c; (void)i; return v == 0; }

static bool rd_platform_info(struct cpu *c, u32 i, u64 *v)
{
    (void)i;
    /* bits 15:8: maximum non-turbo ratio of the 100 MHz bus clock = the TSC ratio */
    u64 ratio = c->model->tsc_khz / 100000u;
    *v = (ratio & 0xff) << 8;
    return true;
}

static u64 misc_enable_status(const struct cpu *c)
{
    return MISC_ENABLE_STATUS | (pmu_available(c->model) ? MISC_ENABLE_PERFMON : 0);
}

u64 cpu_misc_enable_reset(const struct cpu *c)
{
    u64 v = MISC_ENABLE_FAST_STRINGS | MISC_ENABLE_AUTO_THERMAL;
    if (cpuid_has(c->model, "monitor"))
        v |= MISC_ENABLE_MWAIT;
    return v;
}

static bool rd_misc_enable(struct cpu *c, u32 i, u64 *v)
{
    (void)i;
    *v = c->msr_misc_enable | misc_enable_status(c);
    return true;
}
static bool wr_misc_enable(struct cpu *c, u32 i, u64 v)
{
    (void)i;
    u64 changed = v ^ (c->msr_misc_enable | misc_enable_status(c));
    if ((v & ~(MISC_ENABLE_WRITABLE | MISC_ENABLE_STATUS | MISC_ENABLE_PERFMON)) ||
        (changed & MISC_ENABLE_STATUS))
        return false;
    /* MONITOR/MWAIT can be enabled only where they exist, the CPUID limit only when
     * there are leaves above 2, XD disabled only where there is an XD bit and while
     * EFER.NXE does not use it (the SDM leaves that case undefined; nestor refuses it so
     * that NXE is never set while reserved). */
    if ((changed & MISC_ENABLE_MWAIT) && !cpuid_has(c->model, "monitor"))
        return false;
    if ((v & MISC_ENABLE_LIMIT_CPUID) &&
        cpuid_query(c->model, 0, 0, (u32)c->id, false, true, 0).eax <= 2)
        return false;
    if ((v & MISC_ENABLE_XD_DISABLE) && (!cpu_has(c, CF_NX) || (c->efer & EFER_NXE)))
        return false;
    c->msr_misc_enable = v & MISC_ENABLE_WRITABLE;
    return true;
}

static bool rd_debugctl(struct cpu *c, u32 i, u64 *v) { (void)i; *v = c->msr_debugctl; return true; }
static bool wr_debugctl(struct cpu *c, u32 i, u64 v)
{
    (void)i;
    /* LBR and BTF are not implemented: only 0 and the PMU's freeze bit are accepted */
    if (v & ~pmu_debugctl_bits(c))
        return false;
    c->msr_debugctl = v;
    return true;
}

static u64 *sysenter_field(struct cpu *c, u32 index)
{
    return index == MSR_SYSENTER_CS ? &c->msr_sysenter_cs
         : index == MSR_SYSENTER_ESP ? &c->msr_sysenter_esp : &c->msr_sysenter_eip;
}
static bool rd_sysenter(struct cpu *c, u32 i, u64 *v) { *v = *sysenter_field(c, i); return true; }
static bool wr_sysenter(struct cpu *c, u32 i, u64 v)
{
    if (i != MSR_SYSENTER_CS && !cpu_canonical_max(c, v))
        return false;
    *sysenter_field(c, i) = v;
    return true;
}

static bool rd_mtrr_var(struct cpu *c, u32 i, u64 *v) { *v = c->msr_mtrr_var[i - MSR_MTRR_PHYS_FIRST]; return true; }
static bool wr_mtrr_var(struct cpu *c, u32 i, u64 v)
{
    unsigned n = i - MSR_MTRR_PHYS_FIRST;
    if (n % 2 == 0) { /* PHYSBASE: type, base */
        if ((v & 0xf00) || (v & phys_reserved(c)) || !mtrr_type_ok(v & 0xff))
            return false;
    } else {          /* PHYSMASK: valid bit 11, mask */
        if ((v & 0x7ff) || (v & phys_reserved(c)))
            return false;
    }
    c->msr_mtrr_var[n] = v;
    return true;
}

static int fixed_index(u32 i)
{
    if (i == MSR_MTRR_FIX64K)
        return 0;
    if (i == MSR_MTRR_FIX16K_80000 || i == MSR_MTRR_FIX16K_A0000)
        return 1 + (int)(i - MSR_MTRR_FIX16K_80000);
    return 3 + (int)(i - MSR_MTRR_FIX4K_FIRST);
}
static bool rd_mtrr_fixed(struct cpu *c, u32 i, u64 *v) { *v = c->msr_mtrr_fixed[fixed_index(i)]; return true; }
static bool wr_mtrr_fixed(struct cpu *c, u32 i, u64 v)
{
    if (!bytes_ok(v, mtrr_type_ok))
        return false;
    c->msr_mtrr_fixed[fixed_index(i)] = v;
    return true;
}

static bool rd_mtrr_def(struct cpu *c, u32 i, u64 *v) { (void)i; *v = c->msr_mtrr_def_type; return true; }
static bool wr_mtrr_def(struct cpu *c, u32 i, u64 v)
{
    (void)i;
    /* type (7:0), fixed-range enable (10), enable (11) */
    if ((v & ~(0xffull | BIT(10) | BIT(11))) || !mtrr_type_ok(v & 0xff))
        return false;
    c->msr_mtrr_def_type = v;
    return true;
}

static bool rd_pat(struct cpu *c, u32 i, u64 *v) { (void)i; *v = c->msr_pat; return true; }
static bool wr_pat(struct cpu *c, u32 i, u64 v)
{
    (void)i;
    if (!bytes_ok(v, pat_type_ok))
        return false;
    c->msr_pat = v;
    return true;
}

static bool rd_efer(struct cpu *c, u32 i, u64 *v) { (void)i; *v = c->efer; return true; }
static bool wr_efer(struct cpu *c, u32 i, u64 v)
{
    (void)i;
    if (!cpu_efer_valid(c, v))
        return false;
    cpu_load_efer(c, v);
    return true;
}

static u64 *syscall_field(struct cpu *c, u32 index)
{
    switch (index) {
    case MSR_STAR: return &c->msr_star;
    case MSR_LSTAR: return &c->msr_lstar;
    case MSR_CSTAR: return &c->msr_cstar;
    case MSR_SFMASK: return &c->msr_sfmask;
    case MSR_KERNEL_GS_BASE: return &c->msr_kernel_gs_base;
    case MSR_FS_BASE: return &c->seg[SEG_FS].base;
    case MSR_GS_BASE: return &c->seg[SEG_GS].base;
    default: return &c->msr_tsc_aux;
    }
}
static bool rd_field(struct cpu *c, u32 i, u64 *v) { *v = *syscall_field(c, i); return true; }
static bool wr_field(struct cpu *c, u32 i, u64 v)
{
    switch (i) {
    case MSR_STAR:
        break;
    case MSR_SFMASK:
    case MSR_TSC_AUX:
        if (v >> 32)
            return false;
        break;
    default: /* LSTAR, CSTAR and the bases hold linear addresses */
        if (!cpu_canonical_max(c, v))
            return false;
        break;
    }
    *syscall_field(c, i) = v;
    return true;
}

static const struct msr_desc {
    u32 first, last;
    present_fn present;
    rd_fn rd;
    wr_fn wr;
} msrs[] = {
    { MSR_TSC, MSR_TSC, has_tsc, rd_tsc, wr_tsc },
    { MSR_PLATFORM_ID, MSR_PLATFORM_ID, is_intel, rd_platform_id, wr_readonly },
    { MSR_FEATURE_CONTROL, MSR_FEATURE_CONTROL, is_intel, rd_feature_control, wr_feature_control },
    { MSR_VMX_FIRST, MSR_VMX_LAST, has_vmx, rd_vmx_caps, wr_readonly },
    { MSR_SGXLEPUBKEYHASH0, MSR_SGXLEPUBKEYHASH3, has_sgx_lc, sgx_msr_read, sgx_msr_write },
    { MSR_AMD_SYSCFG, MSR_AMD_SYSCFG, is_amd, rd_zero, wr_syscfg },
    { MSR_AMD_HWCR, MSR_AMD_HWCR, is_amd, rd_hwcr, wr_hwcr },
    { MSR_AMD_NB_CFG, MSR_AMD_NB_CFG, is_amd, rd_zero, wr_nb_cfg },
    { MSR_VM_CR, MSR_VM_CR, has_svm, rd_svm, wr_svm },
    { MSR_VM_HSAVE_PA, MSR_VM_HSAVE_PA, has_svm, rd_svm, wr_svm },
    { MSR_SVM_TSC_RATIO, MSR_SVM_TSC_RATIO, has_svm, rd_svm, wr_svm },
    { MSR_TSC_ADJUST, MSR_TSC_ADJUST, has_tsc_adjust, rd_tsc_adjust, wr_tsc_adjust },
    { MSR_BIOS_SIGN_ID, MSR_BIOS_SIGN_ID, always, rd_ucode_rev, wr_ignore },
    { MSR_ARCH_CAPABILITIES, MSR_ARCH_CAPABILITIES, has_arch_caps, rd_arch_caps, wr_readonly },
    { MSR_PLATFORM_INFO, MSR_PLATFORM_INFO, is_intel, rd_platform_info, wr_readonly },
    { MSR_MTRRCAP, MSR_MTRRCAP, has_mtrr, rd_mtrrcap, wr_readonly },
    { MSR_SYSENTER_CS, MSR_SYSENTER_EIP, has_sep, rd_sysenter, wr_sysenter },
    { MSR_MCG_CAP, MSR_MCG_CAP, has_mca, rd_mcg_cap, wr_readonly },
    { MSR_MCG_STATUS, MSR_MCG_STATUS, has_mca, rd_zero, wr_mcg_status },
    { MSR_MISC_ENABLE, MSR_MISC_ENABLE, is_intel, rd_misc_enable, wr_misc_enable },
    { MSR_DEBUGCTL, MSR_DEBUGCTL, always, rd_debugctl, wr_debugctl },
    { MSR_MTRR_PHYS_FIRST, MSR_MTRR_PHYS_FIRST + 2 * MTRR_VAR_COUNT - 1, has_mtrr, rd_mtrr_var, wr_mtrr_var },
    { MSR_MTRR_FIX64K, MSR_MTRR_FIX64K, has_mtrr, rd_mtrr_fixed, wr_mtrr_fixed },
    { MSR_MTRR_FIX16K_80000, MSR_MTRR_FIX16K_A0000, has_mtrr, rd_mtrr_fixed, wr_mtrr_fixed },
    { MSR_MTRR_FIX4K_FIRST, MSR_MTRR_FIX4K_LAST, has_mtrr, rd_mtrr_fixed, wr_mtrr_fixed },
    { MSR_PAT, MSR_PAT, has_pat, rd_pat, wr_pat },
    { MSR_MTRR_DEF_TYPE, MSR_MTRR_DEF_TYPE, has_mtrr, rd_mtrr_def, wr_mtrr_def },
    { MSR_EFER, MSR_EFER, has_efer, rd_efer, wr_efer },
    { MSR_STAR, MSR_SFMASK, has_lm, rd_field, wr_field },
    { MSR_FS_BASE, MSR_KERNEL_GS_BASE, has_lm, rd_field, wr_field },
    { MSR_TSC_AUX, MSR_TSC_AUX, has_tsc_aux, rd_field, wr_field },
    /* performance monitoring (pmu.c): Intel IA32_PMCx, PERFEVTSELx, FIXED_CTRx, the
     * fixed and global controls; AMD's legacy and core-extension counters */
    { 0xc1, 0xc4, pmu_intel_msrs, pmu_rdmsr, pmu_wrmsr },
    { 0x186, 0x189, pmu_intel_msrs, pmu_rdmsr, pmu_wrmsr },
    { 0x309, 0x30b, pmu_intel_msrs, pmu_rdmsr, pmu_wrmsr },
    { 0x38d, 0x390, pmu_intel_msrs, pmu_rdmsr, pmu_wrmsr },
    { 0xc0010000u, 0xc0010007u, pmu_amd_msrs, pmu_rdmsr, pmu_wrmsr },
    { 0xc0010200u, 0xc001020bu, pmu_amd_ext_msrs, pmu_rdmsr, pmu_wrmsr },
};

static const struct msr_desc *msr_find(const struct cpu *c, u32 index)
{
    for (size_t k = 0; k < ARRAY_SIZE(msrs); k++)
        if (index >= msrs[k].first && index <= msrs[k].last)
            return msrs[k].present(c) ? &msrs[k] : NULL;
    return NULL;
}

bool cpu_rdmsr(struct cpu *c, u32 index, u64 *value)
{
    const struct msr_desc *d = msr_find(c, index);
    if (d)
        return d->rd(c, index, value);
    struct cpu_event ev = { .kind = EV_MSR_READ, .u.msr = { index, 0 } };
    if (cpu_intercept(c, &ev) != INTERCEPT_HANDLED)
        return false;
    *value = ev.u.msr.value;
    return true;
}

bool cpu_wrmsr(struct cpu *c, u32 index, u64 value)
{
    const struct msr_desc *d = msr_find(c, index);
    if (d)
        return d->wr(c, index, value);
    struct cpu_event ev = { .kind = EV_MSR_WRITE, .u.msr = { index, value } };
    return cpu_intercept(c, &ev) == INTERCEPT_HANDLED;
}

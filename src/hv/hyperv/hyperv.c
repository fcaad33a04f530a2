/* Hyper-V's partition: the hv-* options, the CPUID leaves, the partition and VP MSRs
 * (guest OS id, hypercall page, VP index, reset, runtime, the reference counter and TSC
 * page, frequencies, the synthetic APIC MSRs and the VP assist page, crash and
 * reenlightenment MSRs). Facts follow the TLFS 6.0 and, where it is silent, KVM
 * (arch/x86/kvm/hyperv.c) and QEMU (target/i386/kvm/kvm.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/hyperv/hyperv_internal.h"
#include "cpu/vmx/vmx.h"

/* ---- the enlightenments: QEMU's names, what each sets in CPUID, what it needs ---- */
enum hv_cpuid_reg { HV_FEATURES_EAX, HV_FEATURES_EBX, HV_FEATURES_EDX, HV_HINTS_EAX, HV_NREGS };

/* 40000003h EAX: the partition's privileges (HV_PARTITION_PRIVILEGE_MASK, low half) */
#define HV_VP_RUNTIME_AVAILABLE BIT(0)
#define HV_TIME_REF_COUNT_AVAILABLE BIT(1)
#define HV_SYNIC_AVAILABLE BIT(2)
#define HV_SYNTIMERS_AVAILABLE BIT(3)
#define HV_APIC_ACCESS_AVAILABLE BIT(4)
#define HV_HYPERCALL_AVAILABLE BIT(5)
#define HV_VP_INDEX_AVAILABLE BIT(6)
#define HV_RESET_AVAILABLE BIT(7)
#define HV_REFERENCE_TSC_AVAILABLE BIT(9)
#define HV_ACCESS_FREQUENCY_MSRS BIT(11)
#define HV_ACCESS_REENLIGHTENMENTS_CONTROL BIT(13)
/* 40000003h EBX: the high half */
#define HV_POST_MESSAGES BIT(4)
#define HV_SIGNAL_EVENTS BIT(5)
#define HV_DEBUGGING BIT(11)
/* 40000003h EDX: the features */
#define HV_CPU_DYNAMIC_PARTITIONING_AVAILABLE BIT(3)
#define HV_HYPERCALL_XMM_INPUT_AVAILABLE BIT(4)
#define HV_FREQUENCY_MSRS_AVAILABLE BIT(8)
#define HV_GUEST_CRASH_MSR_AVAILABLE BIT(10)
#define HV_FEATURE_DEBUG_MSRS_AVAILABLE BIT(11)
#define HV_EXT_GVA_RANGES_FLUSH_AVAILABLE BIT(14)
#define HV_STIMER_DIRECT_MODE_AVAILABLE BIT(19)
/* 40000004h EAX: the recommendations */
#define HV_REMOTE_TLB_FLUSH_RECOMMENDED BIT(2)
#define HV_APIC_ACCESS_RECOMMENDED BIT(3)
#define HV_RELAXED_TIMING_RECOMMENDED BIT(5)
#define HV_CLUSTER_IPI_RECOMMENDED BIT(10)
#define HV_EX_PROCESSOR_MASKS_RECOMMENDED BIT(11)
#define HV_ENLIGHTENED_VMCS_RECOMMENDED BIT(14)
/* 4000000Ah EAX: the enlightened VMCS versions, lowest in 7:0 and highest in 15:8 */
#define HV_EVMCS_VERSIONS 0x0101u

static const struct hv_feature_desc {
    const char *name;      /* QEMU's property, after "hv-" */
    u32 bits[HV_NREGS];    /* what it shows in CPUID */
    u32 needs;             /* BIT(HV_FEAT_*) it depends on (any of them) */
} hv_features[HV_FEAT_COUNT] = {
    [HV_FEAT_RELAXED] = { "relaxed", { [HV_HINTS_EAX] = HV_RELAXED_TIMING_RECOMMENDED }, 0 },
    [HV_FEAT_VAPIC] = { "vapic", { [HV_FEATURES_EAX] = HV_APIC_ACCESS_AVAILABLE,
                                   [HV_HINTS_EAX] = HV_APIC_ACCESS_RECOMMENDED }, 0 },
    [HV_FEAT_TIME] = { "time", { [HV_FEATURES_EAX] = HV_TIME_REF_COUNT_AVAILABLE |
                                                     HV_REFERENCE_TSC_AVAILABLE }, 0 },
    [HV_FEAT_CRASH] = { "crash", { [HV_FEATURES_EDX] = HV_GUEST_CRASH_MSR_AVAILABLE }, 0 },
    [HV_FEAT_RESET] = { "reset", { [HV_FEATURES_EAX] = HV_RESET_AVAILABLE }, 0 },
    [HV_FEAT_VPINDEX] = { "vpindex", { [HV_FEATURES_EAX] = HV_VP_INDEX_AVAILABLE }, 0 },
    [HV_FEAT_RUNTIME] = { "runtime", { [HV_FEATURES_EAX] = HV_VP_RUNTIME_AVAILABLE }, 0 },
    [HV_FEAT_SYNIC] = { "synic", { [HV_FEATURES_EAX] = HV_SYNIC_AVAILABLE,
                                   [HV_FEATURES_EBX] = HV_POST_MESSAGES | HV_SIGNAL_EVENTS },
                        BIT(HV_FEAT_VPINDEX) },
    [HV_FEAT_STIMER] = { "stimer", { [HV_FEATURES_EAX] = HV_SYNTIMERS_AVAILABLE },
                         BIT(HV_FEAT_SYNIC) | BIT(HV_FEAT_TIME) },
    [HV_FEAT_FREQUENCIES] = { "frequencies", { [HV_FEATURES_EAX] = HV_ACCESS_FREQUENCY_MSRS,
                                               [HV_FEATURES_EDX] = HV_FREQUENCY_MSRS_AVAILABLE }, 0 },
    [HV_FEAT_REENLIGHTENMENT] = { "reenlightenment",
                                  { [HV_FEATURES_EAX] = HV_ACCESS_REENLIGHTENMENTS_CONTROL }, 0 },
    [HV_FEAT_TLBFLUSH] = { "tlbflush", { [HV_HINTS_EAX] = HV_REMOTE_TLB_FLUSH_RECOMMENDED |
                                                          HV_EX_PROCESSOR_MASKS_RECOMMENDED },
                           BIT(HV_FEAT_VPINDEX) },
    [HV_FEAT_TLBFLUSH_EXT] = { "tlbflush-ext",
                               { [HV_FEATURES_EDX] = HV_EXT_GVA_RANGES_FLUSH_AVAILABLE },
                               BIT(HV_FEAT_TLBFLUSH) },
    [HV_FEAT_IPI] = { "ipi", { [HV_HINTS_EAX] = HV_CLUSTER_IPI_RECOMMENDED |
                                                HV_EX_PROCESSOR_MASKS_RECOMMENDED },
                      BIT(HV_FEAT_VPINDEX) },
    [HV_FEAT_STIMER_DIRECT] = { "stimer-direct",
                                { [HV_FEATURES_EDX] = HV_STIMER_DIRECT_MODE_AVAILABLE },
                                BIT(HV_FEAT_STIMER) },
    [HV_FEAT_SYNDBG] = { "syndbg", { [HV_FEATURES_EBX] = HV_DEBUGGING,
                                     [HV_FEATURES_EDX] = HV_FEATURE_DEBUG_MSRS_AVAILABLE },
                         BIT(HV_FEAT_SYNIC) | BIT(HV_FEAT_RELAXED) },
    [HV_FEAT_XMM_INPUT] = { "xmm-input", { [HV_FEATURES_EDX] = HV_HYPERCALL_XMM_INPUT_AVAILABLE }, 0 },
    [HV_FEAT_SPINLOCKS] = { "spinlocks", { 0 }, 0 },
    [HV_FEAT_EVMCS] = { "evmcs", { [HV_HINTS_EAX] = HV_ENLIGHTENED_VMCS_RECOMMENDED },
                        BIT(HV_FEAT_VAPIC) },
};

#define HV_DEFAULT_SPINLOCK_RETRIES 0xffffffffu
/* QEMU's floor for hv-spinlocks (a smaller count is refused) */
#define HV_MIN_SPINLOCK_RETRIES 0xfffu

static int hv_fail(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
    return -1;
}

static bool parse_on_off(const char *v, bool *on)
{
    if (!v || !strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes")) {
        *on = true;
        return true;
    }
    if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no")) {
        *on = false;
        return true;
    }
    return false;
}

int hyperv_parse_cpu_item(struct hyperv_config *cfg, const char *item, char *err, size_t errlen)
{
    if (strncmp(item, "hv-", 3) && strncmp(item, "hv_", 3))
        return 0;
    if (!cfg->vendor_id[0])
        strcpy(cfg->vendor_id, "Microsoft Hv");
    if (!cfg->spinlock_retries)
        cfg->spinlock_retries = HV_DEFAULT_SPINLOCK_RETRIES;
    /* the name, with QEMU's older underscores read as dashes */
    char name[48];
    const char *eq = strchr(item, '=');
    size_t n = eq ? (size_t)(eq - item) - 3 : strlen(item) - 3;
    if (n >= sizeof(name))
        return hv_fail(err, errlen, "unknown Hyper-V property '%s'%s", item, "");
    memcpy(name, item + 3, n);
    name[n] = 0;
    for (char *p = name; *p; p++)
        if (*p == '_')
            *p = '-';
    const char *value = eq ? eq + 1 : NULL;

    if (!strcmp(name, "spinlocks")) {
        char *end;
        unsigned long long v = value ? strtoull(value, &end, 0) : 0;
        if (!value || end == value || *end || v > 0xffffffffull)
            return hv_fail(err, errlen, "'%s': hv-spinlocks=N takes a 32-bit count%s", item, "");
        if (v < HV_MIN_SPINLOCK_RETRIES)
            return hv_fail(err, errlen, "'%s': hv-spinlocks is at least 0xfff (4095)%s", item, "");
        cfg->spinlock_retries = (u32)v;
        cfg->features |= BIT(HV_FEAT_SPINLOCKS);
        return 1;
    }
    if (!strcmp(name, "vendor-id")) {
        if (!value || strlen(value) > 12)
            return hv_fail(err, errlen, "'%s': hv-vendor-id takes at most 12 characters%s", item, "");
        memset(cfg->vendor_id, 0, sizeof(cfg->vendor_id));
        memcpy(cfg->vendor_id, value, strlen(value));
        return 1;
    }
    bool on;
    if (!parse_on_off(value, &on))
        return hv_fail(err, errlen, "'%s': the value must be on or off%s", item, "");
    if (!strcmp(name, "passthrough")) {
        /* no host Hyper-V stands behind nestor: everything it implements */
        if (on)
            for (int f = 0; f < HV_FEAT_COUNT; f++)
                if (f != HV_FEAT_SYNDBG && f != HV_FEAT_SPINLOCKS)
                    cfg->features |= BIT(f);
        return 1;
    }
    for (int f = 0; f < HV_FEAT_COUNT; f++) {
        if (strcmp(name, hv_features[f].name))
            continue;
        if (f == HV_FEAT_SPINLOCKS)
            break;
        cfg->features = on ? cfg->features | BIT(f) : cfg->features & ~BIT(f);
        if (f == HV_FEAT_EVMCS)
            cfg->evmcs_asked = on;
        return 1;
    }
    return hv_fail(err, errlen, "unknown Hyper-V property '%s'%s", item, "");
}

int hyperv_config_check(const struct hyperv_config *cfg, char *err, size_t errlen)
{
    for (int f = 0; f < HV_FEAT_COUNT; f++) {
        u32 needs = hv_features[f].needs;
        if (!(cfg->features & BIT(f)) || !needs || (cfg->features & needs))
            continue;
        char names[64] = "";
        for (int g = 0; g < HV_FEAT_COUNT; g++)
            if (needs & BIT(g))
                snprintf(names + strlen(names), sizeof(names) - strlen(names), "%shv-%s",
                         names[0] ? " or " : "", hv_features[g].name);
        char what[32];
        snprintf(what, sizeof(what), "hv-%s", hv_features[f].name);
        return hv_fail(err, errlen, "Hyper-V %s requires %s", what, names);
    }
    return 0;
}

/* ---- creation ---- */
struct hyperv *hyperv_create(const struct hyperv_config *cfg, const struct hyperv_host *host)
{
    struct hyperv *hv = calloc(1, sizeof(*hv));
    if (!hv)
        return NULL;
    hv->cfg = *cfg;
    if (!hv->cfg.vendor_id[0])
        strcpy(hv->cfg.vendor_id, "Microsoft Hv");
    if (!hv->cfg.spinlock_retries)
        hv->cfg.spinlock_retries = HV_DEFAULT_SPINLOCK_RETRIES;
    hv->host = *host;
    hv->vp = calloc((size_t)host->ncpus, sizeof(*hv->vp));
    if (!hv->vp || hv_stimer_create(hv) || hv_syndbg_create(hv)) {
        hyperv_destroy(hv);
        return NULL;
    }
    if (hv_has(hv, HV_FEAT_EVMCS))
        for (int i = 0; i < host->ncpus; i++)
            vmx_evmcs_offered(host->cpus[i]);
    hyperv_reset(hv);
    return hv;
}

void hyperv_destroy(struct hyperv *hv)
{
    if (!hv)
        return;
    hv_syndbg_destroy(hv);
    free(hv->vp);
    free(hv);
}

void hyperv_reset(struct hyperv *hv)
{
    hv->guest_os_id = hv->hypercall = hv->reference_tsc = 0;
    memset(hv->crash_p, 0, sizeof(hv->crash_p));
    hv->crash_ctl = 0;
    hv->reenlightenment_control = hv->tsc_emulation_control = hv->tsc_emulation_status = 0;
    hv->tsc_page_seq = 0;
    hv->tsc_page_valid = false;
    hv->tsc_page_scale = 0;
    hv->tsc_page_offset = 0;
    for (int i = 0; i < hv->host.ncpus; i++) {
        struct hv_vp *vp = &hv->vp[i];
        vp->vp_assist = 0;
        vp->pv_eoi_pending = false;
        if (hv_has(hv, HV_FEAT_EVMCS))
            vmx_evmcs_set_assist(hv->host.cpus[i], 0);
        vp->runtime_ns = vp->run_start_ns = 0;
        hv_synic_reset(hv, i);
        hv_stimer_reset(hv, i);
    }
    hv_syndbg_reset(hv);
}

/* ---- CPUID ---- */
/* 40000002h: the hypervisor version, QEMU's default (Windows Server 2016, 10.0.14393) */
#define HV_VERSION_BUILD 14393u
#define HV_VERSION_MAJOR_MINOR 0x000a0000u
/* 40000005h: the implementation limits QEMU gives (no limit on VPs, 64 logical
 * processors) */
#define HV_MAX_VIRTUAL_PROCESSORS 0xffffffffu
#define HV_MAX_LOGICAL_PROCESSORS 0x40u

static u32 hv_cpuid_bits(const struct hyperv *hv, enum hv_cpuid_reg reg)
{
    u32 bits = 0;
    for (int f = 0; f < HV_FEAT_COUNT; f++)
        if (hv_has(hv, (enum hyperv_feature)f))
            bits |= hv_features[f].bits[reg];
    return bits;
}

bool hyperv_cpuid(struct hyperv *hv, const struct cpu *c, u32 leaf, u32 subleaf, u32 r[4])
{
    (void)c, (void)subleaf;
    if (leaf < 0x40000000u || leaf > 0x400000ffu)
        return false;
    r[0] = r[1] = r[2] = r[3] = 0;
    switch (leaf) {
    case 0x40000000:
        /* the highest leaf: the implementation limits, the nested features with the
         * enlightened VMCS, or the debugger's leaves */
        r[0] = hv_has(hv, HV_FEAT_SYNDBG) ? 0x40000082 : hv_has(hv, HV_FEAT_EVMCS) ? 0x4000000a
                                                                                : 0x40000005;
        memcpy(&r[1], hv->cfg.vendor_id, 4);
        memcpy(&r[2], hv->cfg.vendor_id + 4, 4);
        memcpy(&r[3], hv->cfg.vendor_id + 8, 4);
        break;
    case 0x40000001:
        memcpy(&r[0], "Hv#1", 4);
        break;
    case 0x40000002:
        r[0] = HV_VERSION_BUILD;
        r[1] = HV_VERSION_MAJOR_MINOR;
        break;
    case 0x40000003:
        r[0] = HV_HYPERCALL_AVAILABLE | hv_cpuid_bits(hv, HV_FEATURES_EAX);
        r[1] = hv_cpuid_bits(hv, HV_FEATURES_EBX);
        /* dynamic partitioning is always shown, as QEMU does (Windows' CPU hotplug) */
        r[3] = HV_CPU_DYNAMIC_PARTITIONING_AVAILABLE | hv_cpuid_bits(hv, HV_FEATURES_EDX);
        break;
    case 0x40000004:
        r[0] = hv_cpuid_bits(hv, HV_HINTS_EAX);
        r[1] = hv->cfg.spinlock_retries;
        break;
    case 0x40000005:
        r[0] = HV_MAX_VIRTUAL_PROCESSORS;
        r[1] = HV_MAX_LOGICAL_PROCESSORS;
        break;
    case 0x4000000a:
        if (hv_has(hv, HV_FEAT_EVMCS))
            r[0] = HV_EVMCS_VERSIONS;
        break;
    case 0x40000080:
    case 0x40000081:
    case 0x40000082:
        if (!hv_has(hv, HV_FEAT_SYNDBG))
            break;
        if (leaf == 0x40000080) { /* EAX 0, as QEMU answers */
            memcpy(&r[1], "Micr", 4), memcpy(&r[2], "osof", 4), memcpy(&r[3], "t VS", 4);
        } else if (leaf == 0x40000081) {
            memcpy(&r[0], "VS#1", 4);
        } else {
            r[0] = BIT(1); /* HV_X64_SYNDBG_CAP_ALLOW_KERNEL_DEBUGGING */
        }
        break;
    default:
        break; /* 40000006h-400000FFh: none of their features is offered */
    }
    return true;
}

/* ---- time ---- */
/* The partition's reference time: while the reference TSC page is on, its formula with
 * vCPU 0's TSC (the page's), so that TIME_REF_COUNT, the page and the timers never
 * disagree, as KVM computes it; else the virtual clock. */
u64 hv_ref_time(const struct hyperv *hv)
{
    u64 now = hv->host.ops->now_ns(hv->host.opaque);
    if (!hv->tsc_page_valid)
        return now / 100;
    u64 tsc = cpu_l1_tsc_at(hv->host.cpus[0], now);
    return (u64)(((unsigned __int128)tsc * hv->tsc_page_scale) >> 64) + (u64)hv->tsc_page_offset;
}

/* The reference TSC page (TLFS 12.7.3): reference time = ((TSC * scale) >> 64) + offset,
 * for vCPU 0's TSC (the partition's one page; every vCPU's TSC is the same unless the
 * guest wrote one). Written when enabled and when the TSC changes; the sequence moves on
 * at each rewrite and is never 0 (0 tells the guest to fall back to the MSR). */
struct hv_tsc_page {
    u32 sequence, reserved1;
    u64 scale;
    s64 offset;
};

static void hv_write_tsc_page(struct hyperv *hv)
{
    hv->tsc_page_valid = false;
    if (!(hv->reference_tsc & 1))
        return;
    struct cpu *c0 = hv->host.cpus[0];
    u64 now = hv->host.ops->now_ns(hv->host.opaque);
    /* scale = 2^64 * 10^7 / tsc_hz = 2^64 * 10^4 / tsc_khz */
    u64 scale = (u64)(((unsigned __int128)10000 << 64) / hv->host.tsc_khz);
    u64 tsc = cpu_l1_tsc_at(c0, now);
    u64 scaled = (u64)(((unsigned __int128)tsc * scale) >> 64);
    struct hv_tsc_page p = { 0 };
    if (++hv->tsc_page_seq == 0 || hv->tsc_page_seq == 0xffffffffu)
        hv->tsc_page_seq = 1;
    p.sequence = hv->tsc_page_seq;
    p.scale = scale;
    p.offset = (s64)(now / 100 - scaled);
    if (mem_write(c0->mem, hv->reference_tsc & ~0xfffull, &p, sizeof(p)))
        return;
    hv->tsc_page_scale = p.scale;
    hv->tsc_page_offset = p.offset;
    hv->tsc_page_valid = true;
}

void hyperv_tsc_written(struct hyperv *hv, struct cpu *c)
{
    if (c->id == 0)
        hv_write_tsc_page(hv);
}

/* ---- the hypercall page ---- */
static bool hv_write_hypercall_page(struct hyperv *hv, struct cpu *c, u64 gpa)
{
    u8 code[16];
    unsigned n = 0;
    if (hv->host.xen_too) { /* orl $0x80000000, %eax: Xen's viridian marker */
        code[n++] = 0x0d;
        code[n++] = 0x00, code[n++] = 0x00, code[n++] = 0x00, code[n++] = 0x80;
    }
    code[n++] = 0x0f, code[n++] = 0x01, code[n++] = hv->host.amd ? 0xd9 : 0xc1;
    code[n++] = 0xc3;
    return mem_write(c->mem, gpa, code, n) == 0;
}

/* ---- MSRs ---- */
/* Which enlightenment each MSR belongs to (those of a feature that is off #GP). */
static bool hv_msr_feature(const struct hyperv *hv, u32 index)
{
    switch (index) {
    case HV_MSR_GUEST_OS_ID: case HV_MSR_HYPERCALL:
        return true;
    case HV_MSR_VP_INDEX: return hv_has(hv, HV_FEAT_VPINDEX);
    case HV_MSR_RESET: return hv_has(hv, HV_FEAT_RESET);
    case HV_MSR_VP_RUNTIME: return hv_has(hv, HV_FEAT_RUNTIME);
    case HV_MSR_TIME_REF_COUNT: case HV_MSR_REFERENCE_TSC: return hv_has(hv, HV_FEAT_TIME);
    case HV_MSR_TSC_FREQUENCY: case HV_MSR_APIC_FREQUENCY: return hv_has(hv, HV_FEAT_FREQUENCIES);
    case HV_MSR_EOI: case HV_MSR_ICR: case HV_MSR_TPR:
        return hv_has(hv, HV_FEAT_VAPIC);
    case HV_MSR_VP_ASSIST_PAGE:
        /* every Hyper-V VP has one (Linux sets it up whatever CPUID says); its EOI
         * avoidance is hv-vapic's */
        return true;
    case HV_MSR_REENLIGHTENMENT_CONTROL: case HV_MSR_TSC_EMULATION_CONTROL:
    case HV_MSR_TSC_EMULATION_STATUS:
        return hv_has(hv, HV_FEAT_REENLIGHTENMENT);
    default:
        break;
    }
    if (index >= HV_MSR_SCONTROL && index <= HV_MSR_SINT15 &&
        (index <= HV_MSR_EOM || index >= HV_MSR_SINT0))
        return hv_has(hv, HV_FEAT_SYNIC);
    if (index >= HV_MSR_STIMER0_CONFIG && index <= HV_MSR_STIMER3_COUNT)
        return hv_has(hv, HV_FEAT_STIMER);
    if (index >= HV_MSR_CRASH_P0 && index <= HV_MSR_CRASH_CTL)
        return hv_has(hv, HV_FEAT_CRASH);
    if ((index >= HV_MSR_SYNDBG_CONTROL && index <= HV_MSR_SYNDBG_PENDING_BUFFER) ||
        index == HV_MSR_SYNDBG_OPTIONS)
        return hv_has(hv, HV_FEAT_SYNDBG);
    return false;
}

bool hyperv_msr_owned(const struct hyperv *hv, u32 index)
{
    (void)hv;
    return index >= HV_MSR_FIRST && index <= HV_MSR_LAST;
}

#define HV_CRASH_CTL_CRASH_NOTIFY (1ull << 63)

bool hyperv_msr_read(struct hyperv *hv, struct cpu *c, u32 index, u64 *value)
{
    if (!hv_msr_feature(hv, index))
        return false;
    struct hv_vp *vp = &hv->vp[c->id];
    switch (index) {
    case HV_MSR_GUEST_OS_ID: *value = hv->guest_os_id; return true;
    case HV_MSR_HYPERCALL: *value = hv->hypercall; return true;
    case HV_MSR_VP_INDEX: *value = (u64)c->id; return true;
    case HV_MSR_RESET: *value = 0; return true;
    case HV_MSR_VP_RUNTIME: {
        /* the passes that ended, and the one running now (the VP reads it as it runs) */
        u64 ns = vp->runtime_ns, now = hv->host.ops->now_ns(hv->host.opaque);
        if (vp->run_start_ns && now > vp->run_start_ns)
            ns += now - vp->run_start_ns;
        *value = ns / 100;
        return true;
    }
    case HV_MSR_TIME_REF_COUNT: *value = hv_ref_time(hv); return true;
    case HV_MSR_REFERENCE_TSC: *value = hv->reference_tsc; return true;
    case HV_MSR_TSC_FREQUENCY: *value = (u64)hv->host.tsc_khz * 1000; return true;
    case HV_MSR_APIC_FREQUENCY: *value = (u64)hv->host.apic_khz * 1000; return true;
    case HV_MSR_EOI: return false; /* write-only, as the APIC's EOI register */
    case HV_MSR_ICR: case HV_MSR_TPR:
        return hv->host.ops->apic_read(hv->host.opaque, c->id, index, value);
    case HV_MSR_VP_ASSIST_PAGE: *value = vp->vp_assist; return true;
    case HV_MSR_CRASH_CTL: *value = HV_CRASH_CTL_CRASH_NOTIFY; return true;
    case HV_MSR_REENLIGHTENMENT_CONTROL: *value = hv->reenlightenment_control; return true;
    case HV_MSR_TSC_EMULATION_CONTROL: *value = hv->tsc_emulation_control; return true;
    case HV_MSR_TSC_EMULATION_STATUS: *value = hv->tsc_emulation_status; return true;
    default:
        break;
    }
    if (index >= HV_MSR_CRASH_P0 && index <= HV_MSR_CRASH_P4) {
        *value = hv->crash_p[index - HV_MSR_CRASH_P0];
        return true;
    }
    if (index >= HV_MSR_STIMER0_CONFIG && index <= HV_MSR_STIMER3_COUNT)
        return hv_stimer_msr_read(hv, c, index, value);
    if (index >= HV_MSR_SCONTROL && index <= HV_MSR_SINT15)
        return hv_synic_msr_read(hv, c, index, value);
    return hv_syndbg_msr_read(hv, c, index, value);
}

/* reserved bits of the page MSRs: 11:1 (the TLFS' RsvdP, kept as written) */
#define HV_PAGE_ENABLE 1ull

bool hyperv_msr_write(struct hyperv *hv, struct cpu *c, u32 index, u64 value)
{
    if (!hv_msr_feature(hv, index))
        return false;
    struct hv_vp *vp = &hv->vp[c->id];
    switch (index) {
    case HV_MSR_GUEST_OS_ID:
        hv->guest_os_id = value;
        /* a zero id disables the hypercall page (TLFS 3.13), unless it is locked */
        if (!value && !(hv->hypercall & 2))
            hv->hypercall &= ~HV_PAGE_ENABLE;
        return true;
    case HV_MSR_HYPERCALL:
        /* locked (TLFS 3.13): writes are ignored until reset; so are they while the guest
         * has not identified itself (as KVM) */
        if ((hv->hypercall & 2) || !hv->guest_os_id)
            return true;
        if ((value & HV_PAGE_ENABLE) && !hv_write_hypercall_page(hv, c, value & ~0xfffull))
            return false;
        hv->hypercall = value;
        return true;
    case HV_MSR_RESET:
        if (value & 1)
            hv->host.ops->reset(hv->host.opaque);
        return true;
    case HV_MSR_REFERENCE_TSC:
        if ((value & HV_PAGE_ENABLE) && !mem_ptr(c->mem, value & ~0xfffull, 4096))
            return false;
        hv->reference_tsc = value;
        hv_write_tsc_page(hv);
        return true;
    case HV_MSR_EOI: case HV_MSR_ICR: case HV_MSR_TPR:
        if (index == HV_MSR_EOI)
            vp->pv_eoi_pending = false;
        return hv->host.ops->apic_write(hv->host.opaque, c->id, index, value);
    case HV_MSR_VP_ASSIST_PAGE:
        if (value & HV_PAGE_ENABLE) {
            /* only apic_assist is cleared: the rest of the page is the guest's */
            u32 zero = 0;
            if (mem_write(c->mem, value & ~0xfffull, &zero, 4))
                return false;
        }
        vp->vp_assist = value;
        vp->pv_eoi_pending = false;
        if (hv_has(hv, HV_FEAT_EVMCS)) /* where VMLAUNCH finds the enlightened VMCS */
            vmx_evmcs_set_assist(c, (value & HV_PAGE_ENABLE) ? value & ~0xfffull : 0);
        return true;
    case HV_MSR_CRASH_CTL:
        if (value & HV_CRASH_CTL_CRASH_NOTIFY)
            hv->host.ops->crashed(hv->host.opaque, hv->crash_p);
        return true;
    case HV_MSR_REENLIGHTENMENT_CONTROL:
        /* vector 7:0, enable 16, target VP 63:32; the rest is reserved */
        if (value & 0xfffeff00ull)
            return false;
        hv->reenlightenment_control = value;
        return true;
    case HV_MSR_TSC_EMULATION_CONTROL:
        if (value & ~1ull)
            return false;
        hv->tsc_emulation_control = value;
        return true;
    case HV_MSR_TSC_EMULATION_STATUS:
        /* the guest may only clear the in-progress bit, which nestor never sets: a
         * migration keeps the TSC's frequency */
        if (value)
            return false;
        hv->tsc_emulation_status = 0;
        return true;
    case HV_MSR_VP_INDEX: case HV_MSR_VP_RUNTIME: case HV_MSR_TIME_REF_COUNT:
    case HV_MSR_TSC_FREQUENCY: case HV_MSR_APIC_FREQUENCY:
        return false; /* read-only for the guest */
    default:
        break;
    }
    if (index >= HV_MSR_CRASH_P0 && index <= HV_MSR_CRASH_P4) {
        hv->crash_p[index - HV_MSR_CRASH_P0] = value;
        return true;
    }
    if (index >= HV_MSR_STIMER0_CONFIG && index <= HV_MSR_STIMER3_COUNT)
        return hv_stimer_msr_write(hv, c, index, value);
    if (index >= HV_MSR_SCONTROL && index <= HV_MSR_SINT15)
        return hv_synic_msr_write(hv, c, index, value);
    return hv_syndbg_msr_write(hv, c, index, value);
}

/* ---- the VP assist page's EOI avoidance (TLFS 10.3.5) ----
 * When the interrupt a VP accepts is the only one in service and nothing else waits, the
 * hypervisor sets bit 0 of apic_assist; the guest's EOI is then to clear it, and the
 * hypervisor performs the EOI when it next looks (before the VP runs or takes an
 * interrupt). */
static bool hv_assist_enabled(const struct hv_vp *vp)
{
    return vp->vp_assist & HV_PAGE_ENABLE;
}

void hyperv_intr_taken(struct hyperv *hv, struct cpu *c, bool only_in_service)
{
    struct hv_vp *vp = &hv->vp[c->id];
    if (!hv_has(hv, HV_FEAT_VAPIC) || !hv_assist_enabled(vp))
        return;
    hyperv_pv_eoi_sync(hv, c); /* an EOI the guest made by clearing the bit comes first */
    u32 assist;
    u64 gpa = vp->vp_assist & ~0xfffull;
    if (mem_read(c->mem, gpa, &assist, 4))
        return;
    /* a bit the guest left set (it ended that interrupt through the APIC, or has yet to
     * end it) lapses, as KVM takes it back at the guest's next exit: the guest sees it
     * clear and makes a real EOI, and none is made for it later */
    vp->pv_eoi_pending = false;
    if (only_in_service) {
        assist |= 1;
        vp->pv_eoi_pending = true;
    } else {
        assist &= ~1u;
    }
    mem_write(c->mem, gpa, &assist, 4);
}

/* VP_RUNTIME: a pass that begins with the vCPU running counts until it ends */
void hyperv_vcpu_ran(struct hyperv *hv, struct cpu *c)
{
    struct hv_vp *vp = &hv->vp[c->id];
    u64 now = hv->host.ops->now_ns(hv->host.opaque);
    if (vp->run_start_ns && now > vp->run_start_ns)
        vp->runtime_ns += now - vp->run_start_ns;
    vp->run_start_ns = 0;
}

void hyperv_vcpu_resume(struct hyperv *hv, struct cpu *c)
{
    struct hv_vp *vp = &hv->vp[c->id];
    if (c->state == CPU_RUNNING)
        vp->run_start_ns = hv->host.ops->now_ns(hv->host.opaque);
    hyperv_pv_eoi_sync(hv, c);
}

/* An EOI the guest made by clearing the assist page's bit takes effect. */
void hyperv_pv_eoi_sync(struct hyperv *hv, struct cpu *c)
{
    struct hv_vp *vp = &hv->vp[c->id];
    if (!vp->pv_eoi_pending)
        return;
    u32 assist;
    if (mem_read(c->mem, vp->vp_assist & ~0xfffull, &assist, 4) || (assist & 1))
        return;
    vp->pv_eoi_pending = false;
    hv->host.ops->apic_write(hv->host.opaque, c->id, HV_MSR_EOI, 0);
}

/* ---- hypercalls ---- */
bool hyperv_hypercall_owned(const struct hyperv *hv, const struct cpu *c)
{
    return !hv->host.xen_too || (c->gpr[R_RAX] & 0x80000000u);
}

bool hyperv_hypercall(struct hyperv *hv, struct cpu *c)
{
    /* Hyper-V raises #UD for a hypercall from CPL > 0, real or virtual-8086 mode */
    if (c->mode == MODE_REAL || c->mode == MODE_V86 || c->cpl != 0)
        return false;
    hv_hypercall_dispatch(hv, c);
    return true;
}

/* ---- crash reports ---- */
void hyperv_crash_format(const u64 p[5], char *buf, size_t len)
{
    snprintf(buf, len, "the guest reported a crash (Hyper-V crash MSRs): P0=%#llx P1=%#llx "
             "P2=%#llx P3=%#llx P4=%#llx", (unsigned long long)p[0], (unsigned long long)p[1],
             (unsigned long long)p[2], (unsigned long long)p[3], (unsigned long long)p[4]);
}

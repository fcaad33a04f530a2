/* The performance-monitoring unit (see pmu.h): Intel architectural performance
 * monitoring version 2 (SDM Vol. 3B, 21.2.1-21.2.2) and AMD's performance counters
 * (APM Vol. 2, 13.2: the legacy PerfEvtSel0-3/PerfCtr0-3 at C001_0000h and the core
 * performance counter extensions at C001_0200h).
 *
 * Events. Intel (architectural events, CPUID.0AH:EBX): 3CH/00H unhalted core cycles,
 * C0H/00H instructions retired, 3CH/01H unhalted reference cycles, C4H/00H branch
 * instructions retired; the LLC and branch-mispredict events are reported unavailable.
 * AMD (family 17h): 076H cycles not in halt, 0C0H retired instructions, 0C2H retired
 * branch instructions, both of which also count each exception and interrupt (NMI,
 * external interrupt) delivered, as AMD's processor reference says. A branch instruction is one that may transfer control: Jcc (taken
 * or not), LOOPcc, JrCXZ, JMP, CALL, RET, far JMP/CALL/RET, IRET, INT n/INT3/INT1/INTO,
 * SYSCALL/SYSRET/SYSENTER/SYSEXIT. A REP string instruction is one instruction however
 * many iterations it runs; a faulting instruction does not retire. Cycles run at the TSC
 * rate of the virtual clock while the vCPU is not halted; the core and the reference
 * clock are the same clock. The engine retires at most one instruction per cycle, so a
 * counter mask (CMASK) of 1 counts the same as 0 and a higher one counts nothing; the
 * edge-detect and invert qualifiers describe pipeline cycles nestor does not model, and
 * a counter programmed with them (or with any other event) counts nothing. */
#include <string.h>

#include "cpu/exec.h"

/* ---- the implementation's shape ---- */
#define INTEL_GP 4            /* general-purpose counters (CPUID.0AH:EAX[15:8]) */
#define AMD_LEGACY 4          /* PerfCtr0-3 */
#define AMD_CORE PMU_GP_MAX   /* with the core extension: 6 */
#define PMU_WIDTH 48          /* every counter */
#define PMU_VERSION 2
#define WIDTH_MASK ((1ull << PMU_WIDTH) - 1)

/* Intel's architectural event numbering (CPUID.0AH:EBX bit = 1: not available). */
enum { ARCH_CORE_CYCLES, ARCH_INSNS, ARCH_REF_CYCLES, ARCH_LLC_REF, ARCH_LLC_MISS,
       ARCH_BRANCHES, ARCH_BRANCH_MISSES, ARCH_EVENTS };
#define ARCH_UNAVAILABLE (BIT(ARCH_LLC_REF) | BIT(ARCH_LLC_MISS) | BIT(ARCH_BRANCH_MISSES))

enum { PMU_EV_NONE, PMU_EV_INSNS, PMU_EV_BRANCHES, PMU_EV_CYCLES };

/* Event select bits, common to both vendors' layouts. */
#define SEL_EVENT 0xffull
#define SEL_UMASK (0xffull << 8)
#define SEL_USR BIT(16)
#define SEL_OS BIT(17)
#define SEL_EDGE BIT(18)
#define SEL_PC BIT(19)  /* Intel: pin control (no pins here: no effect) */
#define SEL_INT BIT(20)
#define SEL_EN BIT(22)
#define SEL_INV BIT(23)
#define SEL_CMASK (0xffull << 24)
#define AMD_SEL_EVENT_HI (0xfull << 32) /* EventSelect[11:8] */
#define AMD_SEL_GUEST_ONLY BIT(40)
#define AMD_SEL_HOST_ONLY BIT(41)
#define AMD_SEL_HG_ONLY (AMD_SEL_GUEST_ONLY | AMD_SEL_HOST_ONLY)
/* Writable bits; the rest are reserved (#GP). Intel v2 has no AnyThread (bit 21). */
#define INTEL_SEL_VALID (SEL_EVENT | SEL_UMASK | SEL_USR | SEL_OS | SEL_EDGE | SEL_PC | \
                         SEL_INT | SEL_EN | SEL_INV | SEL_CMASK)
#define AMD_SEL_VALID (SEL_EVENT | SEL_UMASK | SEL_USR | SEL_OS | SEL_EDGE | SEL_INT | SEL_EN | \
                       SEL_INV | SEL_CMASK | AMD_SEL_EVENT_HI | AMD_SEL_HG_ONLY)
/* IA32_FIXED_CTR_CTRL: per counter OS (0), USR (1), PMI (3); AnyThread (2) is v3. */
#define FIXED_CTRL_VALID 0xbbbull
/* IA32_PERF_GLOBAL_*: counter bits, and in STATUS/OVF_CTRL OvfBuffer (62) and
 * CondChgd (63), which are never set here (no DS buffer; no condition changes). */
#define GLOBAL_COUNTERS ((BIT(INTEL_GP) - 1) | (7ull << 32))
#define GLOBAL_OVF_VALID (GLOBAL_COUNTERS | BIT(62) | BIT(63))
#define DEBUGCTL_FREEZE_PERFMON_ON_PMI BIT(12)

enum {
    MSR_PMC0 = 0xc1,
    MSR_PERFEVTSEL0 = 0x186,
    MSR_FIXED_CTR0 = 0x309,
    MSR_FIXED_CTR_CTRL = 0x38d,
    MSR_PERF_GLOBAL_STATUS = 0x38e,
    MSR_PERF_GLOBAL_CTRL = 0x38f,
    MSR_PERF_GLOBAL_OVF_CTRL = 0x390,
    MSR_K7_EVNTSEL0 = 0xc0010000u,
    MSR_K7_PERFCTR0 = 0xc0010004u,
    MSR_F15H_PERF_CTL0 = 0xc0010200u, /* CTL n at +2n, CTR n at +2n+1 */
};

static bool intel(const struct cpu *c) { return c->model->vendor == VENDOR_INTEL; }

bool pmu_available(const struct cpuid_model *m) { return m->pmu; }

struct cpuid_result pmu_cpuid_leaf_0xa(const struct cpuid_model *m)
{
    struct cpuid_result r = { 0 };
    if (!m->pmu || m->vendor != VENDOR_INTEL)
        return r;
    r.eax = PMU_VERSION | INTEL_GP << 8 | PMU_WIDTH << 16 | (u32)ARCH_EVENTS << 24;
    r.ebx = ARCH_UNAVAILABLE;
    r.edx = PMU_FIXED | PMU_WIDTH << 5;
    return r;
}

bool pmu_intel_msrs(const struct cpu *c) { return c->model->pmu && intel(c); }
bool pmu_amd_msrs(const struct cpu *c) { return c->model->pmu && !intel(c); }
bool pmu_amd_ext_msrs(const struct cpu *c)
{
    return pmu_amd_msrs(c) && cpuid_has(c->model, "perfctr_core");
}

u64 pmu_debugctl_bits(const struct cpu *c)
{
    return pmu_intel_msrs(c) ? DEBUGCTL_FREEZE_PERFMON_ON_PMI : 0;
}

/* ---- what each counter counts ---- */
struct event_code { u16 event; u8 umask; u8 what; };
static const struct event_code intel_events[] = {
    { 0x3c, 0x00, PMU_EV_CYCLES },   /* UnHalted Core Cycles */
    { 0xc0, 0x00, PMU_EV_INSNS },    /* Instructions Retired */
    { 0x3c, 0x01, PMU_EV_CYCLES },   /* UnHalted Reference Cycles (at the TSC rate) */
    { 0xc4, 0x00, PMU_EV_BRANCHES }, /* Branch Instructions Retired */
};
static const struct event_code amd_events[] = {
    { 0x076, 0x00, PMU_EV_CYCLES },   /* Cycles not in Halt */
    { 0x0c0, 0x00, PMU_EV_INSNS },    /* Retired Instructions */
    { 0x0c2, 0x00, PMU_EV_BRANCHES }, /* Retired Branch Instructions */
};
/* Fixed counters: INST_RETIRED.ANY, CPU_CLK_UNHALTED.CORE, CPU_CLK_UNHALTED.REF_TSC. */
static const u8 fixed_events[PMU_FIXED] = { PMU_EV_INSNS, PMU_EV_CYCLES, PMU_EV_CYCLES };

static u8 decode_event(const struct cpu *c, u64 sel)
{
    if ((sel & (SEL_EDGE | SEL_INV)) || ((sel & SEL_CMASK) >> 24) > 1)
        return PMU_EV_NONE;
    u16 event = (u16)(sel & SEL_EVENT);
    u8 umask = (u8)((sel & SEL_UMASK) >> 8);
    const struct event_code *t = intel_events;
    size_t n = ARRAY_SIZE(intel_events);
    if (!intel(c)) {
        event |= (u16)((sel & AMD_SEL_EVENT_HI) >> 24);
        t = amd_events;
        n = ARRAY_SIZE(amd_events);
    }
    for (size_t k = 0; k < n; k++)
        if (t[k].event == event && t[k].umask == umask)
            return t[k].what;
    return PMU_EV_NONE;
}

static unsigned gp_count(const struct cpu *c)
{
    if (intel(c))
        return INTEL_GP;
    return cpuid_has(c->model, "perfctr_core") ? AMD_CORE : AMD_LEGACY;
}

/* Counts at this CPL? rings: bit 0 = CPL 0 (OS), bit 1 = CPL 1-3 (USR). */
static bool ring_ok(unsigned rings, u8 cpl) { return rings & (cpl == 0 ? 1u : 2u); }

/* AMD's HostOnly and GuestOnly (PerfEvtSel bits 41 and 40): with SVM on (EFER.SVME, or
 * an SVM guest running), one of them alone counts only in host or only in guest mode;
 * with SVM off, one alone counts nothing; neither or both count everywhere (APM vol. 2
 * 13.2.1; Linux's AMD PMU driver clears HostOnly while SVM is off for that reason). */
static bool amd_host_guest_ok(const struct cpu *c, u64 sel)
{
    u64 hg = sel & AMD_SEL_HG_ONLY;
    if (hg == 0 || hg == AMD_SEL_HG_ONLY)
        return true;
    if (!c->svm_guest && !(c->efer & EFER_SVME))
        return false;
    return (hg == AMD_SEL_GUEST_ONLY) == c->svm_guest;
}

/* The engine's counts as this vendor's events count them: AMD's retired-instruction and
 * retired-branch events also count every exception and interrupt, each as one (PPR for
 * AMD family 17h, PMCx0C0 and PMCx0C2). */
static void retired(const struct cpu *c, bool with_current, u64 *insns, u64 *branches)
{
    u64 events;
    exec_retired(c, with_current, insns, branches, &events);
    if (!intel(c)) {
        *insns += events;
        *branches += events;
    }
}

/* Recomputes what each counter counts and which count now, and where the engine must
 * stop for the next overflow interrupt. */
void pmu_refresh(struct cpu *c)
{
    struct pmu *p = &c->pmu;
    bool was_enabled = p->enabled != 0;
    p->enabled = p->counting = p->pmi = 0;
    p->running = c->state == CPU_RUNNING;
    if (!c->model->pmu) {
        exec_set_pmu_deadline(c, 0);
        return;
    }
    bool is_intel = intel(c);
    unsigned ngp = gp_count(c);
    for (unsigned k = 0; k < ngp; k++) {
        u64 sel = p->ctr[k].ctl;
        p->event[k] = decode_event(c, sel);
        bool on = (sel & SEL_EN) && (!is_intel || (p->global_ctrl & BIT(k)));
        unsigned rings = (sel & SEL_OS ? 1u : 0) | (sel & SEL_USR ? 2u : 0);
        if (on)
            p->enabled |= (u16)BIT(k);
        if (on && p->event[k] != PMU_EV_NONE && ring_ok(rings, c->cpl) &&
            (is_intel || amd_host_guest_ok(c, sel)))
            p->counting |= (u16)BIT(k);
        if (sel & SEL_INT)
            p->pmi |= (u16)BIT(k);
    }
    if (is_intel) {
        for (unsigned k = 0; k < PMU_FIXED; k++) {
            unsigned idx = PMU_FIXED_BASE + k, f = (unsigned)(p->fixed_ctrl >> (4 * k)) & 0xf;
            p->event[idx] = fixed_events[k];
            bool on = (f & 3) && (p->global_ctrl & BIT(32 + k));
            if (on)
                p->enabled |= (u16)BIT(idx);
            if (on && ring_ok(f & 3, c->cpl))
                p->counting |= (u16)BIT(idx);
            if (f & 8)
                p->pmi |= (u16)BIT(idx);
        }
    }
    /* cycles stop while halted */
    if (!p->running)
        for (unsigned k = 0; k < PMU_COUNTERS; k++)
            if (p->event[k] == PMU_EV_CYCLES)
                p->counting &= (u16)~BIT(k);

    /* The next overflow of an interrupting instruction or branch counter: branches are
     * at most instructions, so stopping after as many instructions as the branch
     * counter has left is early or exact, and the next poll looks again. */
    u64 left = 0;
    for (unsigned k = 0; k < PMU_COUNTERS; k++) {
        if (!(p->counting & p->pmi & BIT(k)) || p->event[k] == PMU_EV_CYCLES)
            continue;
        u64 n = (WIDTH_MASK - p->ctr[k].value) + 1;
        if (!left || n < left)
            left = n;
    }
    u64 stop = 0;
    if (left) {
        /* where icount will be when that many more have retired (REP resumptions and
         * delivered events make the two differ; the engine polls after events) */
        u64 now, br;
        retired(c, false, &now, &br);
        stop = c->icount + (p->mark_insns - now) + left;
    }
    exec_set_pmu_deadline(c, stop);
    /* the engine tracks branches only while a counter is enabled (exec.c) */
    if (was_enabled != (p->enabled != 0))
        exec_block_end(c);
}

/* A counter wrapped: overflow status (Intel), and the PMI if it asks for one. */
static void overflowed(const struct cpu *c, struct pmu *p, unsigned k, bool *pmi)
{
    if (intel(c))
        p->global_status |= k >= PMU_FIXED_BASE ? BIT(32 + k - PMU_FIXED_BASE) : BIT(k);
    if (p->pmi & BIT(k))
        *pmi = true;
}

/* Brings the counters up to now: what retired (and the time that passed) since the last
 * synchronisation is added to the counters that counted it. Inside an instruction
 * (with_current) that instruction counts too, under the state before its change. */
/* The accounting of sync_counts on p (the vCPU's or a copy): true if a counter that
 * asks for a PMI overflowed. */
static bool add_counts(const struct cpu *c, struct pmu *p, bool with_current)
{
    u64 insns, branches, ns = c->ops->now_ns ? c->ops->now_ns((struct cpu *)c, c->ops_opaque) : p->mark_ns;
    retired(c, with_current, &insns, &branches);
    /* An instruction counted in advance that then faulted leaves a mark ahead of the
     * count: nothing to add until the count passes it. */
    s64 di = (s64)(insns - p->mark_insns), db = (s64)(branches - p->mark_branches);
    s64 dt = (s64)(ns - p->mark_ns);
    u64 khz = c->model->tsc_khz, dcycles = 0, used_ns = dt > 0 ? (u64)dt : 0;
    if (dt > 0 && khz) {
        /* cycles at the TSC rate; the part of a nanosecond short of a whole cycle is
         * left for next time */
        dcycles = (u64)((unsigned __int128)(u64)dt * khz / 1000000u);
        used_ns = (u64)((unsigned __int128)dcycles * 1000000u / khz);
    }
    bool pmi = false;
    for (unsigned k = 0; k < PMU_COUNTERS; k++) {
        if (!(p->counting & BIT(k)))
            continue;
        u64 d = p->event[k] == PMU_EV_INSNS ? (di > 0 ? (u64)di : 0)
              : p->event[k] == PMU_EV_BRANCHES ? (db > 0 ? (u64)db : 0) : dcycles;
        u64 v = p->ctr[k].value + d;
        if (v > WIDTH_MASK)
            overflowed(c, p, k, &pmi);
        p->ctr[k].value = v & WIDTH_MASK;
    }
    if (di >= 0)
        p->mark_insns = insns;
    if (db >= 0)
        p->mark_branches = branches;
    p->mark_ns += used_ns;
    return pmi;
}

void pmu_state_at(const struct cpu *c, struct pmu *out)
{
    *out = c->pmu;
    if (out->enabled)
        add_counts(c, out, false);
}

static void sync_counts(struct cpu *c, bool with_current)
{
    struct pmu *p = &c->pmu;
    bool pmi = add_counts(c, p, with_current);
    if (pmi) {
        /* Freeze_PerfMon_On_PMI: the PMI clears the global enables (SDM Vol. 3B,
         * "Freezing LBR and Performance Counters on PMI") */
        if (intel(c) && (c->msr_debugctl & DEBUGCTL_FREEZE_PERFMON_ON_PMI)) {
            p->global_ctrl = 0;
            pmu_refresh(c);
        }
        struct cpu_event ev = { .kind = EV_PMI };
        cpu_intercept(c, &ev);
    }
}

/* Before a change of CPL: inside an instruction (SYSCALL, IRET, INT n) or between them
 * (event delivery). While a counter is enabled the engine knows which. */
void pmu_sync(struct cpu *c)
{
    sync_counts(c, exec_in_insn(c));
}

void pmu_run_state_changed(struct cpu *c)
{
    bool running = c->state == CPU_RUNNING;
    if (running == c->pmu.running)
        return;
    if (!c->pmu.enabled) { /* nothing counts: the enabling WRMSR starts from its own mark */
        c->pmu.running = running;
        return;
    }
    sync_counts(c, false);
    pmu_refresh(c);
}

void pmu_poll(struct cpu *c)
{
    if (!c->pmu.enabled)
        return;
    sync_counts(c, false);
    pmu_refresh(c);
}

void pmu_reset(struct cpu *c)
{
    struct pmu *p = &c->pmu;
    memset(p, 0, sizeof(*p));
    /* GLOBAL_CTRL's general-purpose enables are set at reset so that software written
     * for version 1, which knows only the event selects, counts. */
    p->global_ctrl = BIT(INTEL_GP) - 1;
    retired(c, false, &p->mark_insns, &p->mark_branches);
    pmu_refresh(c);
}

/* ---- MSRs ---- */
/* The counter an MSR index names, or -1; *is_ctl: the event select (or, for fixed
 * counters, nothing). */
static int counter_of(const struct cpu *c, u32 index, bool *is_ctl)
{
    *is_ctl = false;
    if (intel(c)) {
        if (index >= MSR_PMC0 && index < MSR_PMC0 + INTEL_GP)
            return (int)(index - MSR_PMC0);
        if (index >= MSR_PERFEVTSEL0 && index < MSR_PERFEVTSEL0 + INTEL_GP) {
            *is_ctl = true;
            return (int)(index - MSR_PERFEVTSEL0);
        }
        if (index >= MSR_FIXED_CTR0 && index < MSR_FIXED_CTR0 + PMU_FIXED)
            return PMU_FIXED_BASE + (int)(index - MSR_FIXED_CTR0);
        return -1;
    }
    /* the legacy MSRs are the first four of the extension's pairs */
    if (index >= MSR_K7_EVNTSEL0 && index < MSR_K7_EVNTSEL0 + AMD_LEGACY) {
        *is_ctl = true;
        return (int)(index - MSR_K7_EVNTSEL0);
    }
    if (index >= MSR_K7_PERFCTR0 && index < MSR_K7_PERFCTR0 + AMD_LEGACY)
        return (int)(index - MSR_K7_PERFCTR0);
    if (index >= MSR_F15H_PERF_CTL0 && index < MSR_F15H_PERF_CTL0 + 2 * AMD_CORE) {
        *is_ctl = !(index & 1);
        return (int)(index - MSR_F15H_PERF_CTL0) / 2;
    }
    return -1;
}

/* The counter's value now, without moving the marks (reads: the reading instruction
 * itself is not counted yet). */
static u64 read_counter(struct cpu *c, unsigned k)
{
    sync_counts(c, false);
    return c->pmu.ctr[k].value;
}

bool pmu_rdmsr(struct cpu *c, u32 index, u64 *value)
{
    struct pmu *p = &c->pmu;
    bool is_ctl;
    int k = counter_of(c, index, &is_ctl);
    if (k >= 0) {
        *value = is_ctl ? p->ctr[k].ctl : read_counter(c, (unsigned)k);
        return true;
    }
    switch (index) {
    case MSR_FIXED_CTR_CTRL: *value = p->fixed_ctrl; return true;
    case MSR_PERF_GLOBAL_STATUS: sync_counts(c, false); *value = p->global_status; return true;
    case MSR_PERF_GLOBAL_CTRL: *value = p->global_ctrl; return true;
    case MSR_PERF_GLOBAL_OVF_CTRL: *value = 0; return true; /* write-only in effect */
    default: return false;
    }
}

bool pmu_wrmsr(struct cpu *c, u32 index, u64 value)
{
    struct pmu *p = &c->pmu;
    bool is_ctl;
    int k = counter_of(c, index, &is_ctl);
    /* validate first: a #GP changes nothing */
    if (k >= 0 && is_ctl) {
        if (value & ~(intel(c) ? INTEL_SEL_VALID : AMD_SEL_VALID))
            return false;
    } else if (k < 0) {
        switch (index) {
        case MSR_FIXED_CTR_CTRL:
            if (value & ~FIXED_CTRL_VALID)
                return false;
            break;
        case MSR_PERF_GLOBAL_CTRL:
            if (value & ~GLOBAL_COUNTERS)
                return false;
            break;
        case MSR_PERF_GLOBAL_OVF_CTRL:
            if (value & ~GLOBAL_OVF_VALID)
                return false;
            break;
        default:
            return false; /* GLOBAL_STATUS is read-only */
        }
    }
    /* everything before this WRMSR, and the WRMSR itself, counts as programmed before */
    sync_counts(c, true);
    if (k >= 0 && is_ctl) {
        p->ctr[k].ctl = value;
    } else if (k >= 0) {
        /* Intel's IA32_PMCx take bits 31:0 sign-extended (no full-width writes are
         * advertised); the fixed counters and AMD's counters take the full width. */
        if (intel(c) && k < PMU_FIXED_BASE)
            value = (u64)(s64)(s32)value;
        p->ctr[k].value = value & WIDTH_MASK;
    } else if (index == MSR_FIXED_CTR_CTRL) {
        p->fixed_ctrl = value;
    } else if (index == MSR_PERF_GLOBAL_CTRL) {
        p->global_ctrl = value;
    } else {
        p->global_status &= ~value;
    }
    pmu_refresh(c);
    return true;
}

/* ---- RDPMC ---- */
bool pmu_rdpmc(struct cpu *c, u32 ecx, u64 *value)
{
    if (!c->model->pmu)
        return false;
    if (intel(c)) {
        /* ECX[30] selects the fixed-function counters, ECX[29:0] the counter */
        u32 n = ecx & 0x3fffffffu;
        if (ecx & BIT(31))
            return false;
        if (ecx & BIT(30)) {
            if (n >= PMU_FIXED)
                return false;
            *value = read_counter(c, PMU_FIXED_BASE + n);
        } else {
            if (n >= INTEL_GP)
                return false;
            *value = read_counter(c, n);
        }
        return true;
    }
    /* AMD: 0-3 legacy (= core 0-3), 4-5 the extension's further counters */
    if (ecx >= gp_count(c))
        return false;
    *value = read_counter(c, ecx);
    return true;
}

bool pmu_state_valid(const struct pmu *p)
{
    for (unsigned k = 0; k < PMU_COUNTERS; k++)
        if (p->event[k] > PMU_EV_CYCLES)
            return false;
    return true;
}

/* The performance-monitoring unit of a vCPU: Intel architectural performance monitoring
 * version 2 (CPUID leaf 0Ah) and AMD's legacy and core-extension counters.
 *
 * Instructions retired and branch instructions retired are counted exactly; core and
 * reference cycles follow the virtual clock at the TSC rate. Counting costs nothing per
 * instruction: the engine already counts retired instructions (icount) and adds the
 * branches of each block as it leaves it, and the PMU turns differences of those into
 * counter values at the points where what is counted changes (an MSR write, a change of
 * CPL, HLT and wake-up) or is read. An instruction counts under the configuration and
 * privilege level in effect when it starts: the WRMSR that enables a counter is not
 * counted, the one that disables it is, SYSCALL is counted at the caller's CPL. For the
 * overflow interrupt (PMI) the engine stops its run exactly where the next counter with
 * its interrupt enabled would wrap.
 *
 * Used by msr.c (the MSRs), cpuid.c (leaf 0Ah), insn_system.c (RDPMC, HLT), cpu.c and
 * exec.c (CPL, run state, the run budget); the PMI leaves through cpu_intercept (EV_PMI)
 * to the local APIC's LVT performance-counter entry. */
#ifndef NESTOR_CPU_PMU_H
#define NESTOR_CPU_PMU_H

#include "common.h"

struct cpu;
struct cpuid_model;
struct cpuid_result;

#define PMU_GP_MAX 6     /* general-purpose counters at most (AMD's core extension) */
#define PMU_FIXED 3      /* Intel fixed-function counters */
#define PMU_COUNTERS (PMU_GP_MAX + PMU_FIXED)
#define PMU_FIXED_BASE PMU_GP_MAX /* index of fixed counter 0 in pmu.ctr[] */

struct pmu_counter {
    u64 value; /* the count at the last synchronisation, within the counter width */
    u64 ctl;   /* event select MSR (general-purpose counters) */
};

struct pmu {
    struct pmu_counter ctr[PMU_COUNTERS];
    u64 fixed_ctrl;    /* IA32_FIXED_CTR_CTRL */
    u64 global_ctrl;   /* IA32_PERF_GLOBAL_CTRL */
    u64 global_status; /* IA32_PERF_GLOBAL_STATUS */
    /* derived from the above and the vCPU state (pmu.c) */
    u8 event[PMU_COUNTERS]; /* what each counter counts when enabled (PMU_EV_*) */
    u16 enabled;            /* counters enabled by their controls */
    u16 counting;           /* enabled and counting at the current CPL and run state */
    u16 pmi;                /* counters that interrupt on overflow */
    bool running;           /* the vCPU was running (not halted) at the last update */
    /* values of the engine's retired-instruction and -branch counts and of the clock
     * at the last synchronisation */
    u64 mark_insns, mark_branches, mark_ns;
};

/* The PMU's state with the counters brought up to now (what sync would make of it),
 * without changing the vCPU: for saving. */
void pmu_state_at(const struct cpu *c, struct pmu *out);
/* Could a loaded state be this PMU's (what each counter counts is a known event)? */
bool pmu_state_valid(const struct pmu *p);

/* Power-on state (INIT keeps the counters, as on hardware). */
void pmu_reset(struct cpu *c);

/* Is there a PMU in this model? (MISC_ENABLE bit 7, "performance monitoring available") */
bool pmu_available(const struct cpuid_model *m);
/* CPUID leaf 0Ah of an Intel model with a PMU. */
struct cpuid_result pmu_cpuid_leaf_0xa(const struct cpuid_model *m);

/* The MSRs: which exist, and their readers/writers (false: #GP). */
bool pmu_intel_msrs(const struct cpu *c);
bool pmu_amd_msrs(const struct cpu *c);
bool pmu_amd_ext_msrs(const struct cpu *c);
bool pmu_rdmsr(struct cpu *c, u32 index, u64 *value);
bool pmu_wrmsr(struct cpu *c, u32 index, u64 value);
/* Valid IA32_DEBUGCTL bits the PMU adds (Freeze_PerfMon_On_PMI). */
u64 pmu_debugctl_bits(const struct cpu *c);

/* RDPMC's counter for ECX: false if the index is invalid (#GP). */
bool pmu_rdpmc(struct cpu *c, u32 ecx, u64 *value);

/* The vCPU's CPL is about to change / has changed (cpu_update_mode). */
void pmu_sync(struct cpu *c);
void pmu_refresh(struct cpu *c);
/* The run state changed (HLT, wake-up, INIT, SIPI): unhalted cycles stop or go on. */
void pmu_run_state_changed(struct cpu *c);
/* The engine reached the instruction count the PMU asked it to stop at, or a slice
 * begins (cycle counters advance with the clock): account, raise due PMIs. */
void pmu_poll(struct cpu *c);

#endif

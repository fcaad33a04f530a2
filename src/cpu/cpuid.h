/* The CPU model: which features the guest sees in CPUID, and therefore which instructions
 * and control bits the engine accepts. A feature absent from the model faults as on
 * hardware without it. */
#ifndef NESTOR_CPU_CPUID_H
#define NESTOR_CPU_CPUID_H

#include "common.h"

/* Where a feature bit lives in CPUID. */
enum cpuid_reg { CPUID_EAX, CPUID_EBX, CPUID_ECX, CPUID_EDX };

struct cpuid_feature {
    const char *name; /* as Linux's /proc/cpuinfo spells it */
    u32 leaf, subleaf;
    enum cpuid_reg reg;
    u8 bit;
    bool implemented; /* engine implements it: part of model "max" */
    bool baseline;    /* part of model "qemu64" */
};

enum cpuid_vendor { VENDOR_INTEL, VENDOR_AMD };

/* Fast checks used by the engine on hot paths. Filled by cpuid_model_parse
 * (and cpuid_model_finish after a direct change of enabled[]). */
enum cpuid_fast {
    CF_FPU, CF_TSC, CF_MSR, CF_PAE, CF_CX8, CF_APIC, CF_SEP, CF_PGE, CF_CMOV, CF_PAT,
    CF_PSE, CF_PSE36, CF_CLFLUSH, CF_MMX, CF_FXSR, CF_SSE, CF_SSE2, CF_SSE3, CF_SSSE3,
    CF_SSE41, CF_SSE42, CF_CX16, CF_X2APIC, CF_MOVBE, CF_POPCNT, CF_XSAVE, CF_OSXSAVE,
    CF_TSC_DEADLINE, CF_HYPERVISOR, CF_SYSCALL, CF_NX, CF_PDPE1GB, CF_RDTSCP, CF_LM,
    CF_LAHF_LM, CF_ABM /* LZCNT */, CF_FSGSBASE, CF_BMI1, CF_BMI2, CF_SMEP, CF_SMAP,
    CF_INVPCID, CF_PCID, CF_LA57, CF_RDPID, CF_UMIP, CF_DE, CF_PSE_CR4 /* pse */, CF_VME,
    CF_MCE, CF_MTRR, CF_ERMS, CF_ADX, CF_CONSTANT_TSC, CF_NONSTOP_TSC,
    CF_CLFLUSHOPT, CF_SVM,
    CF_COUNT
};
struct cpuid_fastbits { bool has[CF_COUNT]; };
#define CPUID_MAX_FEATURES 160

struct cpuid_model {
    enum cpuid_vendor vendor;
    bool enabled[CPUID_MAX_FEATURES]; /* indexed like cpuid_feature_table() */
    u32 tsc_khz;                      /* advertised TSC frequency */
    u32 bus_khz;                      /* LAPIC timer / crystal frequency */
    int ncpus;
    u8 phys_bits;                     /* MAXPHYADDR: phys-bits=N, CPUID 80000008h:EAX[7:0] */
    char model_name[49];
    bool pmu;                         /* performance monitoring (pmu.h); -cpu pmu=on|off */
    /* Not a CPUID feature: UD2 followed by "kvm" or "xen" is KVM's/Xen's forced-emulation
     * prefix (option "fep"; the engine skips it and runs the instruction after it). */
    bool fep;
    struct cpuid_fastbits fast;       /* derived from enabled[] */
    /* SGX's EPC sections (CPUID leaf 12h sub-leaves 2 and up): the machine's EPC */
    struct { u64 base, size; } epc[8];
    int nepc;
};

/* The physical-address width (MAXPHYADDR) of a model without phys-bits=N, and the range
 * phys-bits accepts (QEMU's: 32 to 52, the architectural maximum). */
#define CPUID_DEFAULT_PHYS_BITS 40
#define CPUID_MIN_PHYS_BITS 32
#define CPUID_MAX_PHYS_BITS 52

/* The table of every feature nestor knows the name of. */
const struct cpuid_feature *cpuid_feature_table(int *count);

/* Parses QEMU's -cpu syntax: MODEL[,+feat|,-feat|,feat|,feat=on|off|,vendor=...|,phys-bits=N]...
 * (models: max, qemu64); "fep" (also +fep, fep=on) turns on the forced-emulation prefixes,
 * not a feature bit.
 * Returns 0, or -1 with a clear message in err (unknown model or feature, or a feature
 * that nestor does not implement). */
int cpuid_model_parse(struct cpuid_model *m, const char *spec, char *err, size_t errlen);

/* Is the named feature on? (name as in the table; panics on an unknown name: a nestor bug) */
bool cpuid_has(const struct cpuid_model *m, const char *name);

/* Turns SGX and everything that depends on it off (a machine without an EPC). */
void cpuid_disable_sgx(struct cpuid_model *m);

/* Recomputes the derived fast bits after enabled[] was changed directly. */
void cpuid_model_finish(struct cpuid_model *m);

const struct cpuid_fastbits *cpuid_fast(const struct cpuid_model *m);

/* Answers CPUID(leaf, subleaf) for vCPU apic_id, with state-dependent bits
 * (OSXSAVE from CR4, APIC enable from the APIC base MSR) taken from the arguments. */
struct cpuid_result { u32 eax, ebx, ecx, edx; };
struct cpuid_result cpuid_query(const struct cpuid_model *m, u32 leaf, u32 subleaf,
                                u32 apic_id, bool osxsave, bool apic_enabled, u64 xcr0);
/* The APIC feature flag (leaf 1 EDX[9], and AMD's copy in leaf 80000001h EDX[9]) follows
 * the vCPU's IA32_APIC_BASE global enable bit (SDM 10.4.3): with the APIC disabled it is
 * cleared in edx, the answer for leaf. The LAPIC's owner applies this to the engine's
 * answer when the APIC is disabled. */
void cpuid_apply_apic_enable(u32 leaf, bool apic_enabled, u32 *edx);

/* IA32_MISC_ENABLE (Intel, SDM Vol. 4 table 2-2) bits that change what CPUID reports:
 * MONITOR/MWAIT enable (clear: CPUID.1:ECX.MONITOR is 0), limit CPUID maxval (CPUID.0:EAX
 * reads 2), XD bit disable (CPUID.80000001h:EDX.NX is 0). */
#define MISC_ENABLE_MWAIT (1ull << 18)
#define MISC_ENABLE_LIMIT_CPUID (1ull << 22)
#define MISC_ENABLE_XD_DISABLE (1ull << 34)
/* The leaf CPUID answers for leaf under misc_enable: with the maxval limit an Intel CPU
 * treats basic leaves above 2 as out of range, answering with leaf 2. */
u32 cpuid_misc_enable_leaf(const struct cpuid_model *m, u32 leaf, u64 misc_enable);
/* Applies misc_enable's other effects to the answer r for leaf (Intel only). */
void cpuid_misc_enable_adjust(const struct cpuid_model *m, u32 leaf, u64 misc_enable,
                              struct cpuid_result *r);

#endif

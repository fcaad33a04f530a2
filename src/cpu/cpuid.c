/* The CPU model: the feature table, QEMU-style -cpu parsing and the CPUID leaves.
 *
 * Every feature nestor can name lives in one table with its CPUID location; a model is
 * the set of enabled entries plus a vendor, clock frequencies and a CPU count. The leaves
 * are assembled from that set, so a feature bit is reported exactly when the engine
 * accepts the instructions and control bits behind it.
 *
 * Topology: the ncpus vCPUs are the cores of one package, one thread per core; APIC id
 * = vCPU index. Caches: 32K L1d/L1i per core, 1M L2 per core, 16M L3 per package. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpuid.h"
#include "cpu/pmu.h"
#include "cpu/svm/svm.h"

enum { L_STD1 = 1, L_STD6 = 6, L_STD7 = 7, L_XSAVE = 0xd, L_SGX = 0x12, L_EXT1 = 0x80000001u,
       L_EXT7 = 0x80000007u, L_EXT8 = 0x80000008u };

/* implemented: the engine (CPU + machine) implements what the bit promises.
 * baseline: QEMU's qemu64 model has it (restricted to what nestor implements). */
#define F(name, leaf, sub, reg, bit, impl, base) \
    { name, leaf, sub, CPUID_##reg, bit, impl, base }
static const struct cpuid_feature features[] = {
    /* CPUID.1:EDX */
    F("fpu", L_STD1, 0, EDX, 0, true, true),
    F("vme", L_STD1, 0, EDX, 1, false, false), /* VME/PVI are not implemented */
    F("de", L_STD1, 0, EDX, 2, true, true),
    F("pse", L_STD1, 0, EDX, 3, true, true),
    F("tsc", L_STD1, 0, EDX, 4, true, true),
    F("msr", L_STD1, 0, EDX, 5, true, true),
    F("pae", L_STD1, 0, EDX, 6, true, true),
    F("mce", L_STD1, 0, EDX, 7, true, true),
    F("cx8", L_STD1, 0, EDX, 8, true, true),
    F("apic", L_STD1, 0, EDX, 9, true, true),
    F("sep", L_STD1, 0, EDX, 11, true, true),
    F("mtrr", L_STD1, 0, EDX, 12, true, true),
    F("pge", L_STD1, 0, EDX, 13, true, true),
    F("mca", L_STD1, 0, EDX, 14, true, true),
    F("cmov", L_STD1, 0, EDX, 15, true, true),
    F("pat", L_STD1, 0, EDX, 16, true, true),
    F("pse36", L_STD1, 0, EDX, 17, true, true),
    F("clflush", L_STD1, 0, EDX, 19, true, true),
    F("mmx", L_STD1, 0, EDX, 23, true, true),
    F("fxsr", L_STD1, 0, EDX, 24, true, true),
    F("sse", L_STD1, 0, EDX, 25, true, true),
    F("sse2", L_STD1, 0, EDX, 26, true, true),
    F("ss", L_STD1, 0, EDX, 27, true, false), /* self-snoop: a cache property only */
    /* CPUID.1:ECX */
    F("pni", L_STD1, 0, ECX, 0, false, true), /* SSE3 */
    F("pclmulqdq", L_STD1, 0, ECX, 1, false, false),
    F("monitor", L_STD1, 0, ECX, 3, true, false), /* MONITOR/MWAIT, leaf 5 */
    F("vmx", L_STD1, 0, ECX, 5, true, false), /* VMX (src/cpu/vmx/): Intel vendor only */
    F("ssse3", L_STD1, 0, ECX, 9, false, false),
    F("fma", L_STD1, 0, ECX, 12, false, false),
    F("cx16", L_STD1, 0, ECX, 13, true, true),
    F("pcid", L_STD1, 0, ECX, 17, true, false),
    F("sse4_1", L_STD1, 0, ECX, 19, false, false),
    F("sse4_2", L_STD1, 0, ECX, 20, false, false),
    F("x2apic", L_STD1, 0, ECX, 21, true, false),
    F("movbe", L_STD1, 0, ECX, 22, true, false),
    F("popcnt", L_STD1, 0, ECX, 23, true, false),
    F("tsc_deadline_timer", L_STD1, 0, ECX, 24, true, false),
    F("aes", L_STD1, 0, ECX, 25, false, false),
    F("xsave", L_STD1, 0, ECX, 26, true, false),
    F("avx", L_STD1, 0, ECX, 28, false, false),
    F("f16c", L_STD1, 0, ECX, 29, false, false),
    F("rdrand", L_STD1, 0, ECX, 30, false, false),
    /* On in every model, as QEMU sets it: the guest runs on a virtual machine monitor.
     * Its leaves from 40000000h say which one (nestor, no paravirtual interface) unless
     * -hypervisor hides the bit, and them with it, to look like bare metal. */
    F("hypervisor", L_STD1, 0, ECX, 31, true, true),
    /* CPUID.6:EAX */
    F("arat", L_STD6, 0, EAX, 2, true, false), /* the LAPIC timer never stops */
    /* CPUID.(7,0):EBX */
    F("fsgsbase", L_STD7, 0, EBX, 0, true, false),
    F("tsc_adjust", L_STD7, 0, EBX, 1, true, false),
    /* SGX (src/cpu/sgx/): Intel vendor only, and only with an EPC (-sgx-epc) */
    F("sgx", L_STD7, 0, EBX, 2, true, false),
    F("bmi1", L_STD7, 0, EBX, 3, true, false),
    F("hle", L_STD7, 0, EBX, 4, false, false),
    F("avx2", L_STD7, 0, EBX, 5, false, false),
    F("smep", L_STD7, 0, EBX, 7, true, false),
    F("bmi2", L_STD7, 0, EBX, 8, true, false),
    F("erms", L_STD7, 0, EBX, 9, true, false),
    F("invpcid", L_STD7, 0, EBX, 10, true, false),
    F("rtm", L_STD7, 0, EBX, 11, false, false),
    F("mpx", L_STD7, 0, EBX, 14, false, false),
    F("avx512f", L_STD7, 0, EBX, 16, false, false),
    F("rdseed", L_STD7, 0, EBX, 18, false, false),
    F("adx", L_STD7, 0, EBX, 19, true, false),
    F("smap", L_STD7, 0, EBX, 20, true, false),
    F("clflushopt", L_STD7, 0, EBX, 23, true, false),
    F("clwb", L_STD7, 0, EBX, 24, false, false),
    F("sha_ni", L_STD7, 0, EBX, 29, false, false),
    /* CPUID.(7,0):ECX */
    F("umip", L_STD7, 0, ECX, 2, true, false),
    F("pku", L_STD7, 0, ECX, 3, false, false),
    F("waitpkg", L_STD7, 0, ECX, 5, false, false),
    F("la57", L_STD7, 0, ECX, 16, true, false),
    F("rdpid", L_STD7, 0, ECX, 22, true, false),
    F("sgx_lc", L_STD7, 0, ECX, 30, true, false), /* SGX Launch Control */
    /* CPUID.(12h,0):EAX, EBX and (12h,1):EAX: SGX's leaves and enclave attributes, under
     * QEMU's names */
    F("sgx1", L_SGX, 0, EAX, 0, true, false),
    F("sgx2", L_SGX, 0, EAX, 1, true, false),
    F("sgx-edeccssa", L_SGX, 0, EAX, 11, true, false),
    F("sgx-exinfo", L_SGX, 0, EBX, 0, true, false),
    F("sgx-debug", L_SGX, 1, EAX, 1, true, false),
    F("sgx-mode64", L_SGX, 1, EAX, 2, true, false),
    F("sgx-provisionkey", L_SGX, 1, EAX, 4, true, false), /* not in max: see below */
    F("sgx-tokenkey", L_SGX, 1, EAX, 5, true, false),
    F("sgx-kss", L_SGX, 1, EAX, 7, true, false),
    F("sgx-aex-notify", L_SGX, 1, EAX, 10, true, false),
    /* CPUID.(7,0):EDX */
    F("md_clear", L_STD7, 0, EDX, 10, false, false),
    F("spec_ctrl", L_STD7, 0, EDX, 26, false, false),
    F("arch_capabilities", L_STD7, 0, EDX, 29, true, false), /* MSR 10Ah */
    /* CPUID.(0xd,1):EAX */
    F("xsaveopt", L_XSAVE, 1, EAX, 0, false, false),
    F("xsavec", L_XSAVE, 1, EAX, 1, false, false),
    F("xgetbv1", L_XSAVE, 1, EAX, 2, false, false),
    F("xsaves", L_XSAVE, 1, EAX, 3, false, false),
    /* CPUID.80000001h:EDX */
    F("syscall", L_EXT1, 0, EDX, 11, true, true),
    F("nx", L_EXT1, 0, EDX, 20, true, true),
    F("mmxext", L_EXT1, 0, EDX, 22, false, false),
    F("fxsr_opt", L_EXT1, 0, EDX, 25, false, false),
    F("pdpe1gb", L_EXT1, 0, EDX, 26, true, false),
    F("rdtscp", L_EXT1, 0, EDX, 27, true, false),
    F("lm", L_EXT1, 0, EDX, 29, true, true),
    F("3dnowext", L_EXT1, 0, EDX, 30, false, false),
    F("3dnow", L_EXT1, 0, EDX, 31, false, false),
    /* CPUID.80000001h:ECX */
    F("lahf_lm", L_EXT1, 0, ECX, 0, true, true),
    F("svm", L_EXT1, 0, ECX, 2, true, true), /* SVM (src/cpu/svm/): AMD vendor only */
    F("abm", L_EXT1, 0, ECX, 5, true, false), /* LZCNT */
    F("sse4a", L_EXT1, 0, ECX, 6, false, false),
    F("3dnowprefetch", L_EXT1, 0, ECX, 8, true, false), /* PREFETCHW */
    F("perfctr_core", L_EXT1, 0, ECX, 23, true, false), /* AMD core counters (pmu.c) */
    /* CPUID.80000007h:EDX bit 8, the invariant TSC; Linux derives constant_tsc and
     * nonstop_tsc from it ("invtsc" and "nonstop_tsc" are accepted as aliases). */
    F("constant_tsc", L_EXT7, 0, EDX, 8, true, false),
    /* CPUID.80000008h:EBX */
    F("wbnoinvd", L_EXT8, 0, EBX, 9, true, false),
};
#undef F

_Static_assert(ARRAY_SIZE(features) <= CPUID_MAX_FEATURES, "CPUID_MAX_FEATURES too small");

/* Other spellings accepted on the command line (QEMU's names and common synonyms). */
static const struct { const char *alias, *name; } aliases[] = {
    { "sse3", "pni" },           { "sse4.1", "sse4_1" },      { "sse4.2", "sse4_2" },
    { "lzcnt", "abm" },          { "invtsc", "constant_tsc" }, { "nonstop_tsc", "constant_tsc" },
    { "tsc_deadline", "tsc_deadline_timer" }, { "pclmuldq", "pclmulqdq" },
    { "pdpe1g", "pdpe1gb" },     { "sha", "sha_ni" },         { "sgxlc", "sgx_lc" },
    { "sgx-lc", "sgx_lc" },
};

/* Which table entry backs each fast bit. CF_OSXSAVE tells whether CR4.OSXSAVE may be
 * set, i.e. whether XSAVE is in the model. */
static const struct { enum cpuid_fast cf; const char *name; } fast_names[] = {
    { CF_FPU, "fpu" }, { CF_TSC, "tsc" }, { CF_MSR, "msr" }, { CF_PAE, "pae" },
    { CF_CX8, "cx8" }, { CF_APIC, "apic" }, { CF_SEP, "sep" }, { CF_PGE, "pge" },
    { CF_CMOV, "cmov" }, { CF_PAT, "pat" }, { CF_PSE, "pse" }, { CF_PSE36, "pse36" },
    { CF_CLFLUSH, "clflush" }, { CF_CLFLUSHOPT, "clflushopt" }, { CF_SVM, "svm" },
    { CF_MMX, "mmx" }, { CF_FXSR, "fxsr" }, { CF_SSE, "sse" },
    { CF_SSE2, "sse2" }, { CF_SSE3, "pni" }, { CF_SSSE3, "ssse3" }, { CF_SSE41, "sse4_1" },
    { CF_SSE42, "sse4_2" }, { CF_CX16, "cx16" }, { CF_X2APIC, "x2apic" },
    { CF_MOVBE, "movbe" }, { CF_POPCNT, "popcnt" }, { CF_XSAVE, "xsave" },
    { CF_OSXSAVE, "xsave" }, { CF_TSC_DEADLINE, "tsc_deadline_timer" },
    { CF_HYPERVISOR, "hypervisor" }, { CF_SYSCALL, "syscall" }, { CF_NX, "nx" },
    { CF_PDPE1GB, "pdpe1gb" }, { CF_RDTSCP, "rdtscp" }, { CF_LM, "lm" },
    { CF_LAHF_LM, "lahf_lm" }, { CF_ABM, "abm" }, { CF_FSGSBASE, "fsgsbase" },
    { CF_BMI1, "bmi1" }, { CF_BMI2, "bmi2" }, { CF_SMEP, "smep" }, { CF_SMAP, "smap" },
    { CF_INVPCID, "invpcid" }, { CF_PCID, "pcid" }, { CF_LA57, "la57" },
    { CF_RDPID, "rdpid" }, { CF_UMIP, "umip" }, { CF_DE, "de" }, { CF_PSE_CR4, "pse" },
    { CF_VME, "vme" }, { CF_MCE, "mce" }, { CF_MTRR, "mtrr" }, { CF_ERMS, "erms" },
    { CF_ADX, "adx" }, { CF_CONSTANT_TSC, "constant_tsc" },
    { CF_NONSTOP_TSC, "constant_tsc" },
};

/* Family/model/stepping signatures (CPUID.1:EAX layout) per vendor: a family-6 Intel
 * core and a family-17h (Zen 2) AMD core.
 * The Intel model number, 3BH, is one Intel never shipped: operating systems key errata,
 * split-lock detection, TSC-deadline microcode checks, P-state and PMU drivers on real
 * model numbers, and each of those would expect MSRs and behaviour of that part. An
 * unknown family-6 model >= 0FH gets the architectural paths only (PAT, constant TSC and
 * the other family-6 defaults stay on). */
static const u32 signature[] = {
    [VENDOR_INTEL] = (0x3u << 16) | (0x6u << 8) | (0xbu << 4) | 0x1u,   /* 06_3BH, stepping 1 */
    [VENDOR_AMD] = (0x8u << 20) | (0x3u << 16) | (0xfu << 8) | (0x1u << 4), /* 17_31H */
};
static const char vendor_string[][13] = {
    [VENDOR_INTEL] = "GenuineIntel",
    [VENDOR_AMD] = "AuthenticAMD",
};
/* Highest basic leaf: Intel has the TSC/crystal leaves 15h and 16h, AMD stops at 0Dh. */
static const u32 max_basic_leaf[] = { [VENDOR_INTEL] = 0x16, [VENDOR_AMD] = 0xd };
/* Highest extended leaf: AMD's goes on to the SVM leaf 8000000Ah and the extended
 * feature leaf 80000021h. */
static const u32 max_ext_leaf[] = { [VENDOR_INTEL] = 0x80000008u, [VENDOR_AMD] = 0x80000021u };
/* 80000021h:EAX: SRSO_NO (bit 29), the counterpart of the *_NO bits of Intel's
 * IA32_ARCH_CAPABILITIES: a software CPU has no return-address speculation to overflow. */
#define AMD_EXT21_SRSO_NO BIT(29)
#define HV_BASE_LEAF 0x40000000u
#define HV_MAX_LEAF 0x40000001u
/* Without a paravirtual interface the leaves read as QEMU's TCG lays them out for a guest
 * without KVM, Xen or Hyper-V: 40000000h gives the highest hypervisor leaf (40000001h)
 * and the VMM's signature (nestor's own, so that no guest takes it for another VMM and
 * uses that VMM's interfaces); 40000001h, the feature leaf, is all zero. */
static const char hv_signature[13] = "NestorNestor";

/* XSAVE components the engine implements: x87 and SSE. The image is the 512-byte
 * legacy region plus the 64-byte XSAVE header. */
#define XCR0_SUPPORTED 0x3ull
#define XSAVE_LEGACY_SIZE 576u

/* Leaf 15h/16h defaults: a 25 MHz crystal (also the LAPIC timer clock) and a 2 GHz TSC. */
#define DEFAULT_TSC_KHZ 2000000u
#define DEFAULT_BUS_KHZ 25000u

const struct cpuid_feature *cpuid_feature_table(int *count)
{
    if (count)
        *count = (int)ARRAY_SIZE(features);
    return features;
}

static int feature_index(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(features); i++)
        if (strcmp(features[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Do two feature names match, '-' and '_' counted alike? */
static bool names_match(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_')))
            return false;
    return *a == *b;
}

/* Finds a feature by a command-line spelling: QEMU writes '-' where Linux writes '_' (and
 * SGX's table names are QEMU's), so either spelling of either matches. */
static int feature_lookup(const char *spelled)
{
    for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
        if (names_match(aliases[i].alias, spelled))
            return feature_index(aliases[i].name);
    for (size_t i = 0; i < ARRAY_SIZE(features); i++)
        if (names_match(features[i].name, spelled))
            return (int)i;
    return -1;
}

void cpuid_model_finish(struct cpuid_model *m)
{
    memset(&m->fast, 0, sizeof(m->fast));
    for (size_t i = 0; i < ARRAY_SIZE(fast_names); i++) {
        int idx = feature_index(fast_names[i].name);
        if (idx < 0)
            nestor_panic("cpuid: fast bit names unknown feature %s", fast_names[i].name);
        m->fast.has[fast_names[i].cf] = m->enabled[idx];
    }
}

const struct cpuid_fastbits *cpuid_fast(const struct cpuid_model *m)
{
    return &m->fast;
}

bool cpuid_has(const struct cpuid_model *m, const char *name)
{
    int idx = feature_index(name);
    if (idx < 0)
        nestor_panic("cpuid_has: unknown feature %s", name);
    return m->enabled[idx];
}

void cpuid_disable_sgx(struct cpuid_model *m)
{
    for (size_t f = 0; f < ARRAY_SIZE(features); f++)
        if (features[f].leaf == L_SGX || !strcmp(features[f].name, "sgx") ||
            !strcmp(features[f].name, "sgx_lc"))
            m->enabled[f] = false;
    m->nepc = 0;
    cpuid_model_finish(m);
}

/* Named models. */
enum model_base { BASE_MAX, BASE_QEMU64 };
static const struct {
    const char *name;
    enum model_base base;
    enum cpuid_vendor vendor;
    const char *model_name;
} models[] = {
    { "max", BASE_MAX, VENDOR_INTEL, "nestor virtual CPU" },
    /* QEMU's qemu64 reports AuthenticAMD; nestor keeps Intel as the default vendor
     * because where the vendors differ (SYSCALL/SYSENTER/SYSRET) it follows Intel
     * unless vendor=AuthenticAMD is given. */
    { "qemu64", BASE_QEMU64, VENDOR_INTEL, "nestor virtual CPU (qemu64)" },
    /* QEMU's kvm64, which kvm-unit-tests' Hyper-V tests name: qemu64's baseline here */
    { "kvm64", BASE_QEMU64, VENDOR_INTEL, "nestor virtual CPU (kvm64)" },
};

static int fail(char *err, size_t errlen, const char *fmt, const char *arg)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, arg);
    return -1;
}

/* Applies one ",item" of the -cpu string. */
static int apply_option(struct cpuid_model *m, const char *item, char *err, size_t errlen)
{
    char key[64];
    const char *value = NULL;
    bool on;

    if (item[0] == '+' || item[0] == '-') {
        on = item[0] == '+';
        snprintf(key, sizeof(key), "%s", item + 1);
    } else {
        const char *eq = strchr(item, '=');
        if (!eq) /* a bare name turns the feature on, as in QEMU */
            eq = item + strlen(item);
        size_t klen = (size_t)(eq - item);
        if (klen >= sizeof(key))
            return fail(err, errlen, "unknown option '%s'", item);
        memcpy(key, item, klen);
        key[klen] = 0;
        value = *eq ? eq + 1 : "on";
        if (strcmp(key, "phys-bits") == 0 || strcmp(key, "phys_bits") == 0) {
            char *end;
            unsigned long n = strtoul(value, &end, 10);
            if (end == value || *end || n < CPUID_MIN_PHYS_BITS || n > CPUID_MAX_PHYS_BITS)
                return fail(err, errlen, "phys-bits=%s: the physical address width must be "
                            "a number of bits from 32 to 52", value);
            m->phys_bits = (u8)n;
            return 0;
        }
        if (strcmp(key, "pmu") == 0) { /* QEMU's property: the performance counters */
            if (strcmp(value, "on") == 0 || strcmp(value, "true") == 0)
                m->pmu = true;
            else if (strcmp(value, "off") == 0 || strcmp(value, "false") == 0)
                m->pmu = false;
            else
                return fail(err, errlen, "'%s': the value must be on or off", item);
            return 0;
        }
        if (strcmp(key, "vendor") == 0) {
            for (size_t v = 0; v < ARRAY_SIZE(vendor_string); v++) {
                if (strcmp(value, vendor_string[v]) == 0) {
                    m->vendor = (enum cpuid_vendor)v;
                    return 0;
                }
            }
            return fail(err, errlen,
                        "unknown vendor '%s' (GenuineIntel or AuthenticAMD)", value);
        }
        if (strcmp(value, "on") == 0 || strcmp(value, "true") == 0)
            on = true;
        else if (strcmp(value, "off") == 0 || strcmp(value, "false") == 0)
            on = false;
        else
            return fail(err, errlen, "'%s': the value must be on or off", item);
    }

    /* properties of the engine, not CPUID features */
    if (strcmp(key, "fep") == 0) {
        m->fep = on;
        return 0;
    }
    int idx = feature_lookup(key);
    if (idx < 0)
        return fail(err, errlen, "unknown CPU feature '%s'", key);
    if (on && !features[idx].implemented)
        return fail(err, errlen, "feature '%s' is not implemented by nestor",
                    features[idx].name);
    m->enabled[idx] = on;
    return 0;
}

int cpuid_model_parse(struct cpuid_model *m, const char *spec, char *err, size_t errlen)
{
    char buf[512];
    if (!spec)
        spec = "max";
    if (strlen(spec) >= sizeof(buf))
        return fail(err, errlen, "option string too long (%s)", "over 511 characters");
    snprintf(buf, sizeof(buf), "%s", spec);

    char *save = NULL;
    char *name = strtok_r(buf, ",", &save);
    if (!name)
        return fail(err, errlen, "no CPU model given%s", "");

    int mi = -1;
    for (size_t i = 0; i < ARRAY_SIZE(models); i++)
        if (strcmp(models[i].name, name) == 0)
            mi = (int)i;
    if (mi < 0)
        return fail(err, errlen, "unknown CPU model '%s' (models: max, qemu64, kvm64)", name);

    struct cpuid_model nm;
    memset(&nm, 0, sizeof(nm));
    nm.vendor = models[mi].vendor;
    nm.tsc_khz = DEFAULT_TSC_KHZ;
    nm.bus_khz = DEFAULT_BUS_KHZ;
    nm.ncpus = 1;
    nm.phys_bits = CPUID_DEFAULT_PHYS_BITS;
    snprintf(nm.model_name, sizeof(nm.model_name), "%s", models[mi].model_name);
    nm.pmu = models[mi].base == BASE_MAX; /* QEMU's qemu64 has none under TCG */
    for (size_t f = 0; f < ARRAY_SIZE(features); f++) {
        bool in_base = models[mi].base == BASE_MAX ? features[f].implemented
                                                   : features[f].baseline;
        /* the provisioning key is the host's to grant (-sgx-provision): max leaves it
         * out, +sgx-provisionkey asks for it */
        if (!strcmp(features[f].name, "sgx-provisionkey"))
            in_base = false;
        nm.enabled[f] = in_base && features[f].implemented;
    }

    for (char *item = strtok_r(NULL, ",", &save); item; item = strtok_r(NULL, ",", &save))
        if (apply_option(&nm, item, err, errlen) != 0)
            return -1;
    /* VMX is Intel's and SVM AMD's: each model has the one of its vendor */
    if (nm.vendor == VENDOR_AMD)
        nm.enabled[feature_index("vmx")] = false;
    else
        nm.enabled[feature_index("svm")] = false;
    /* SGX is Intel's; its leaf 12h bits and Launch Control are part of it */
    if (nm.vendor == VENDOR_AMD)
        nm.enabled[feature_index("sgx")] = false;
    if (!nm.enabled[feature_index("sgx")])
        for (size_t f = 0; f < ARRAY_SIZE(features); f++)
            if (features[f].leaf == L_SGX || !strcmp(features[f].name, "sgx_lc"))
                nm.enabled[f] = false;
    /* the core counter extension is part of the PMU */
    if (!nm.pmu)
        nm.enabled[feature_index("perfctr_core")] = false;

    cpuid_model_finish(&nm);
    *m = nm;
    return 0;
}

/* ---- leaves ---- */

static u32 features_of(const struct cpuid_model *m, u32 leaf, u32 subleaf, enum cpuid_reg reg)
{
    u32 bits = 0;
    for (size_t f = 0; f < ARRAY_SIZE(features); f++)
        if (m->enabled[f] && features[f].leaf == leaf && features[f].subleaf == subleaf &&
            features[f].reg == reg)
            bits |= 1u << features[f].bit;
    return bits;
}

static void set_string(struct cpuid_result *r, const char s[12])
{
    /* Vendor strings are laid out EBX, EDX, ECX. */
    memcpy(&r->ebx, s, 4);
    memcpy(&r->edx, s + 4, 4);
    memcpy(&r->ecx, s + 8, 4);
}

static unsigned ceil_log2(unsigned n)
{
    unsigned s = 0;
    while ((1u << s) < n)
        s++;
    return s;
}

/* Bits of the APIC id that number the cores of the package. */
static unsigned core_bits(const struct cpuid_model *m)
{
    return ceil_log2(m->ncpus > 1 ? (unsigned)m->ncpus : 1);
}

/* One cache of leaf 4 (Intel deterministic cache parameters). */
struct cache_desc { u8 type, level; u32 size_kb; u16 ways; bool shared_by_package; };
static const struct cache_desc caches[] = {
    { 1, 1, 32, 8, false },        /* L1 data */
    { 2, 1, 32, 8, false },        /* L1 instruction */
    { 3, 2, 1024, 16, false },     /* L2 unified */
    { 3, 3, 16384, 16, true },     /* L3 unified, one per package */
};
#define CACHE_LINE 64u

static struct cpuid_result leaf4(const struct cpuid_model *m, u32 subleaf)
{
    struct cpuid_result r = { 0 };
    if (subleaf >= ARRAY_SIZE(caches))
        return r; /* type 0: no more caches */
    const struct cache_desc *d = &caches[subleaf];
    u32 ids = 1u << core_bits(m);
    u32 sets = d->size_kb * 1024u / (d->ways * CACHE_LINE);
    r.eax = d->type | (u32)d->level << 5 | BIT(8) /* self-initializing */ |
            (d->shared_by_package ? ids - 1 : 0) << 14 | (ids - 1) << 26;
    r.ebx = (CACHE_LINE - 1) | 0u << 12 /* one partition */ | (u32)(d->ways - 1) << 22;
    r.ecx = sets - 1;
    r.edx = d->level == 3 ? BIT(1) /* inclusive */ : 0;
    return r;
}

static struct cpuid_result leaf_0xb(const struct cpuid_model *m, u32 subleaf, u32 apic_id)
{
    struct cpuid_result r = { 0 };
    r.edx = apic_id;
    r.ecx = subleaf & 0xff;
    if (subleaf == 0) {        /* SMT level: one thread per core */
        r.eax = 0;
        r.ebx = 1;
        r.ecx |= 1u << 8;
    } else if (subleaf == 1) { /* core level: the whole package */
        r.eax = core_bits(m);
        r.ebx = (u32)(m->ncpus > 0 ? m->ncpus : 1);
        r.ecx |= 2u << 8;
    }
    return r;
}

static struct cpuid_result leaf_0xd(const struct cpuid_model *m, u32 subleaf, u64 xcr0)
{
    struct cpuid_result r = { 0 };
    if (!m->fast.has[CF_XSAVE])
        return r;
    if (subleaf == 0) {
        r.eax = (u32)XCR0_SUPPORTED;
        r.edx = (u32)(XCR0_SUPPORTED >> 32);
        /* Only x87 and SSE exist, both inside the legacy region: the size needed for the
         * enabled components and for all supported ones is the same. */
        (void)xcr0;
        r.ebx = XSAVE_LEGACY_SIZE;
        r.ecx = XSAVE_LEGACY_SIZE;
    } else if (subleaf == 1) {
        r.eax = features_of(m, L_XSAVE, 1, CPUID_EAX);
        /* EBX: size for XCR0 | IA32_XSS, defined only with XSAVES (not implemented). */
    }
    return r;
}

/* Leaf 15h: TSC = crystal * EBX / EAX. */
static struct cpuid_result leaf_0x15(const struct cpuid_model *m)
{
    struct cpuid_result r = { 0 };
    u32 a = m->bus_khz, b = m->tsc_khz;
    if (a == 0 || b == 0)
        return r;
    u32 x = a, y = b;
    while (y) {
        u32 t = x % y;
        x = y;
        y = t;
    }
    r.eax = a / x;
    r.ebx = b / x;
    r.ecx = m->bus_khz * 1000u;
    return r;
}

static void brand_chunk(const struct cpuid_model *m, u32 index, struct cpuid_result *r)
{
    char brand[48] = { 0 };
    size_t n = strnlen(m->model_name, sizeof(m->model_name));
    memcpy(brand, m->model_name, n > 47 ? 47 : n);
    memcpy(&r->eax, brand + 16 * index, 4);
    memcpy(&r->ebx, brand + 16 * index + 4, 4);
    memcpy(&r->ecx, brand + 16 * index + 8, 4);
    memcpy(&r->edx, brand + 16 * index + 12, 4);
}

/* AMD repeats these CPUID.1:EDX bits in CPUID.80000001h:EDX (FPU..PSE36 except the
 * reserved bit 10 and SEP, plus MMX and FXSR). */
#define AMD_EXT1_EDX_MIRROR 0x0183f3ffu

static struct cpuid_result leaf_0x12(const struct cpuid_model *m, u32 subleaf);

static bool leaf_exists(const struct cpuid_model *m, u32 leaf)
{
    if (leaf <= max_basic_leaf[m->vendor])
        return true;
    if (leaf >= HV_BASE_LEAF && leaf <= HV_MAX_LEAF)
        return m->fast.has[CF_HYPERVISOR];
    return leaf >= 0x80000000u && leaf <= max_ext_leaf[m->vendor];
}

void cpuid_apply_apic_enable(u32 leaf, bool apic_enabled, u32 *edx)
{
    if (!apic_enabled && (leaf == 1 || leaf == 0x80000001u))
        *edx &= ~(u32)BIT(9);
}

struct cpuid_result cpuid_query(const struct cpuid_model *m, u32 leaf, u32 subleaf,
                                u32 apic_id, bool osxsave, bool apic_enabled, u64 xcr0)
{
    struct cpuid_result r = { 0 };
    enum cpuid_vendor v = m->vendor;
    bool intel = v == VENDOR_INTEL;
    unsigned ncpus = m->ncpus > 0 ? (unsigned)m->ncpus : 1;

    if (!leaf_exists(m, leaf)) {
        /* Intel answers an out-of-range leaf with the highest basic leaf; AMD with 0. */
        if (!intel)
            return r;
        leaf = max_basic_leaf[v];
    }

    switch (leaf) {
    case 0:
        r.eax = max_basic_leaf[v];
        set_string(&r, vendor_string[v]);
        break;
    case 1:
        r.eax = signature[v];
        r.ebx = (apic_id & 0xff) << 24;
        if (m->fast.has[CF_CLFLUSH])
            r.ebx |= (CACHE_LINE / 8) << 8;
        r.ecx = features_of(m, 1, 0, CPUID_ECX);
        r.edx = features_of(m, 1, 0, CPUID_EDX);
        if (osxsave && m->fast.has[CF_XSAVE])
            r.ecx |= BIT(27);
        cpuid_apply_apic_enable(leaf, apic_enabled, &r.edx);
        if (ncpus > 1) { /* HTT: EBX[23:16] is valid (addressable logical ids) */
            r.edx |= BIT(28);
            r.ebx |= (1u << core_bits(m)) << 16;
        }
        break;
    case 2: /* no descriptors: "use leaf 4" (0xff), one iteration */
        if (intel)
            r.eax = 0x0000ff01u;
        break;
    case 4:
        if (intel)
            r = leaf4(m, subleaf);
        break;
    case 5: /* MONITOR/MWAIT: the monitor line is a cache line; MWAIT takes ECX[0]
             * (interrupts as break events) and Intel reports one C1 sub-state, the
             * HLT-like wait every hint gets */
        if (features_of(m, 1, 0, CPUID_ECX) & BIT(3)) {
            r.eax = r.ebx = CACHE_LINE;
            r.ecx = BIT(0) | BIT(1);
            r.edx = intel ? 1u << 4 : 0;
        }
        break;
    case 6:
        r.eax = features_of(m, 6, 0, CPUID_EAX);
        break;
    case 7:
        if (subleaf == 0) {
            r.eax = 0; /* highest subleaf */
            r.ebx = features_of(m, 7, 0, CPUID_EBX);
            r.ecx = features_of(m, 7, 0, CPUID_ECX);
            r.edx = features_of(m, 7, 0, CPUID_EDX);
        }
        break;
    case 0xa:
        r = pmu_cpuid_leaf_0xa(m);
        break;
    case 0xb:
        r = leaf_0xb(m, subleaf, apic_id);
        break;
    case 0xd:
        r = leaf_0xd(m, subleaf, xcr0);
        break;
    case 0x12:
        r = leaf_0x12(m, subleaf);
        break;
    case 0x15:
        r = leaf_0x15(m);
        break;
    case 0x16:
        r.eax = m->tsc_khz / 1000; /* base MHz */
        r.ebx = m->tsc_khz / 1000; /* maximum MHz */
        r.ecx = m->bus_khz / 1000; /* bus (reference) MHz */
        break;
    case HV_BASE_LEAF:
        r.eax = HV_MAX_LEAF;
        /* hypervisor leaves use EBX, ECX, EDX order */
        memcpy(&r.ebx, hv_signature, 4);
        memcpy(&r.ecx, hv_signature + 4, 4);
        memcpy(&r.edx, hv_signature + 8, 4);
        break;
    case 0x80000000u:
        r.eax = max_ext_leaf[v];
        if (!intel)
            set_string(&r, vendor_string[v]);
        break;
    case 0x80000001u:
        r.ecx = features_of(m, L_EXT1, 0, CPUID_ECX);
        r.edx = features_of(m, L_EXT1, 0, CPUID_EDX);
        if (intel)
            r.ecx &= ~(u32)BIT(23); /* PerfCtrExtCore is AMD's; reserved on Intel */
        if (!intel) {
            r.eax = signature[v];
            r.edx |= features_of(m, 1, 0, CPUID_EDX) & AMD_EXT1_EDX_MIRROR;
            cpuid_apply_apic_enable(leaf, apic_enabled, &r.edx);
            if (ncpus > 1)
                r.ecx |= BIT(1); /* CmpLegacy: cores, not threads */
        }
        break;
    case 0x80000002u:
    case 0x80000003u:
    case 0x80000004u:
        brand_chunk(m, leaf - 0x80000002u, &r);
        break;
    case 0x80000005u:
        if (!intel) { /* L1: 32K 8-way, 64-byte lines; TLB fields left 0 */
            r.ecx = 32u << 24 | 8u << 16 | 1u << 8 | CACHE_LINE;
            r.edx = 32u << 24 | 8u << 16 | 1u << 8 | CACHE_LINE;
        }
        break;
    case 0x80000006u:
        /* L2 1M 16-way (associativity code 8); AMD also reports the 16M L3 here. */
        r.ecx = 1024u << 16 | 0x8u << 12 | CACHE_LINE;
        if (!intel)
            r.edx = (16384u / 512u) << 18 | 0x8u << 12 | CACHE_LINE;
        break;
    case 0x80000007u:
        r.edx = features_of(m, L_EXT7, 0, CPUID_EDX);
        break;
    case 0x80000008u:
        r.eax = m->phys_bits | (m->fast.has[CF_LA57] ? 57u : 48u) << 8;
        r.ebx = features_of(m, L_EXT8, 0, CPUID_EBX);
        if (!intel)
            r.ecx = (ncpus - 1) | core_bits(m) << 12;
        break;
    case 0x80000021u:
        r.eax = AMD_EXT21_SRSO_NO;
        break;
    case 0x8000000au:
        /* SVM (APM 15.2): revision, ASID count, and the features nestor implements;
         * reserved (zero) without SVM */
        if (m->fast.has[CF_SVM]) {
            r.eax = SVM_REVISION;
            r.ebx = SVM_NASID;
            r.edx = SVM_FEATURES;
        }
        break;
    default:
        break; /* reserved leaves inside the range (3, 8, 9, 0xc, 0xe-0x14): zero */
    }
    return r;
}

/* SGX (SDM Vol. 2A, CPUID leaf 12h): the leaves and MISCSELECT bits, the largest enclave
 * (2^31 bytes outside 64-bit mode, 2^36 in it, as processors report), the ATTRIBUTES and
 * XFRM bits ECREATE accepts, and the EPC sections. Zero without SGX. */
static struct cpuid_result leaf_0x12(const struct cpuid_model *m, u32 subleaf)
{
    struct cpuid_result r = { 0 };
    if (!cpuid_has(m, "sgx"))
        return r;
    if (subleaf == 0) {
        r.eax = features_of(m, L_SGX, 0, CPUID_EAX);
        r.ebx = features_of(m, L_SGX, 0, CPUID_EBX);
        r.edx = 31u | 36u << 8;
    } else if (subleaf == 1) {
        r.eax = features_of(m, L_SGX, 1, CPUID_EAX);
        /* XFRM: the XSAVE components the engine implements (x87, SSE) */
        r.ecx = (u32)XCR0_SUPPORTED;
    } else if (subleaf - 2 < (u32)m->nepc) {
        /* type 1: an EPC section, confidentiality and integrity protected */
        u64 b = m->epc[subleaf - 2].base, sz = m->epc[subleaf - 2].size;
        r.eax = 1u | (u32)(b & 0xfffff000u);
        r.ebx = (u32)(b >> 32) & 0xfffffu;
        r.ecx = 1u | (u32)(sz & 0xfffff000u);
        r.edx = (u32)(sz >> 32) & 0xfffffu;
    }
    return r;
}

u32 cpuid_misc_enable_leaf(const struct cpuid_model *m, u32 leaf, u64 misc_enable)
{
    if (m->vendor != VENDOR_INTEL || !(misc_enable & MISC_ENABLE_LIMIT_CPUID))
        return leaf;
    /* the out-of-range rule, with 2 as the highest basic leaf */
    bool basic = leaf < HV_BASE_LEAF;
    return (basic && leaf > 2) || !leaf_exists(m, leaf) ? 2 : leaf;
}

void cpuid_misc_enable_adjust(const struct cpuid_model *m, u32 leaf, u64 misc_enable,
                              struct cpuid_result *r)
{
    if (m->vendor != VENDOR_INTEL)
        return;
    if (leaf == 0 && (misc_enable & MISC_ENABLE_LIMIT_CPUID))
        r->eax = 2;
    if (leaf == 1 && !(misc_enable & MISC_ENABLE_MWAIT))
        r->ecx &= ~(u32)BIT(3);
    if (leaf == 0x80000001u && (misc_enable & MISC_ENABLE_XD_DISABLE))
        r->edx &= ~(u32)BIT(20);
}

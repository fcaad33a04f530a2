/* The CPU model: -cpu parsing (models, +/-feature, feature=on|off, vendor=, errors) and
 * the contents of the CPUID leaves. */
#include <criterion/criterion.h>
#include <string.h>

#include "cpu/cpuid.h"

static struct cpuid_model m;
static char err[256];

static int parse(const char *spec)
{
    err[0] = 0;
    return cpuid_model_parse(&m, spec, err, sizeof err);
}

static struct cpuid_result q(u32 leaf, u32 sub)
{
    return cpuid_query(&m, leaf, sub, 0, false, true, 1);
}

#define BITSET(v, n) (((v) >> (n)) & 1)

Test(cpuid, max_has_every_implemented_feature)
{
    cr_assert_eq(parse("max"), 0, "%s", err);
    int n;
    const struct cpuid_feature *f = cpuid_feature_table(&n);
    cr_assert_gt(n, 50);
    for (int k = 0; k < n; k++) {
        bool amd_only = strcmp(f[k].name, "svm") == 0; /* the default vendor is Intel */
        /* the host grants the provisioning key, not the model */
        bool host_grant = strcmp(f[k].name, "sgx-provisionkey") == 0;
        cr_expect_eq(m.enabled[k], f[k].implemented && !amd_only && !host_grant, "max: %s", f[k].name);
    }
    cr_expect_eq(m.vendor, VENDOR_INTEL);
    cr_expect_eq(m.ncpus, 1);
    cr_expect_eq(m.tsc_khz, 2000000u);
    cr_expect(cpuid_has(&m, "lm") && cpuid_has(&m, "nx") && cpuid_has(&m, "la57"));
    cr_expect_not(cpuid_has(&m, "avx"));
    cr_expect(cpuid_fast(&m)->has[CF_SMEP]);
    cr_expect(cpuid_fast(&m)->has[CF_CONSTANT_TSC] && cpuid_fast(&m)->has[CF_NONSTOP_TSC]);
}

/* QEMU's SGX names use '-' (sgx-provisionkey), Linux's '_': either spelling is taken */
Test(cpuid, sgx_names_either_spelling)
{
    cr_assert_eq(parse("max,+sgx-provisionkey,-sgx-kss"), 0, "%s", err);
    cr_expect(cpuid_has(&m, "sgx-provisionkey") && !cpuid_has(&m, "sgx-kss"));
    cr_assert_eq(parse("max,sgx_provisionkey=on,+sgxlc,-sgx_aex_notify"), 0, "%s", err);
    cr_expect(cpuid_has(&m, "sgx-provisionkey") && cpuid_has(&m, "sgx_lc") &&
              !cpuid_has(&m, "sgx-aex-notify"));
}

Test(cpuid, qemu64_baseline)
{
    cr_assert_eq(parse("qemu64"), 0, "%s", err);
    static const char *const on[] = { "fpu", "de", "pse", "tsc", "msr", "pae", "mce", "cx8",
                                      "apic", "sep", "mtrr", "pge", "mca", "cmov", "pat",
                                      "pse36", "clflush", "mmx", "fxsr", "sse", "sse2",
                                      "syscall", "nx", "lm", "lahf_lm", "cx16",
                                      "hypervisor" };
    for (size_t k = 0; k < sizeof on / sizeof on[0]; k++)
        cr_expect(cpuid_has(&m, on[k]), "qemu64 lacks %s", on[k]);
    static const char *const off[] = { "pcid", "smep", "smap", "la57", "x2apic", "pdpe1gb",
                                       "rdtscp", "fsgsbase", "svm", "pni" };
    for (size_t k = 0; k < sizeof off / sizeof off[0]; k++)
        cr_expect_not(cpuid_has(&m, off[k]), "qemu64 has %s", off[k]);
}

Test(cpuid, feature_options)
{
    cr_assert_eq(parse("qemu64,+pcid,-nx,smep=on,sse2=off,+invtsc"), 0, "%s", err);
    cr_expect(cpuid_has(&m, "pcid"));
    cr_expect(cpuid_has(&m, "smep"));
    cr_expect(cpuid_has(&m, "constant_tsc"));
    cr_expect_not(cpuid_has(&m, "nx"));
    cr_expect_not(cpuid_has(&m, "sse2"));
    cr_expect(cpuid_fast(&m)->has[CF_PCID]);
    cr_expect_not(cpuid_fast(&m)->has[CF_NX]);
    /* QEMU spellings */
    cr_assert_eq(parse("max,-tsc-deadline,-lahf-lm,hypervisor=off"), 0, "%s", err);
    cr_expect_not(cpuid_has(&m, "tsc_deadline_timer"));
    cr_expect_not(cpuid_has(&m, "lahf_lm"));
    cr_expect_not(cpuid_has(&m, "hypervisor"));
}

Test(cpuid, vendor_option)
{
    cr_assert_eq(parse("max,vendor=AuthenticAMD"), 0, "%s", err);
    cr_expect_eq(m.vendor, VENDOR_AMD);
    struct cpuid_result r = q(0, 0);
    char s[13] = { 0 };
    memcpy(s, &r.ebx, 4);
    memcpy(s + 4, &r.edx, 4);
    memcpy(s + 8, &r.ecx, 4);
    cr_expect_str_eq(s, "AuthenticAMD");
    /* family 17h: base family 0xf + extended family 8 */
    struct cpuid_result r1 = q(1, 0);
    cr_expect_eq((r1.eax >> 8) & 0xf, 0xfu);
    cr_expect_eq((r1.eax >> 20) & 0xff, 0x8u);
    /* AMD mirrors the x87/TSC/... bits in 80000001h:EDX */
    struct cpuid_result e1 = q(0x80000001u, 0);
    cr_expect(BITSET(e1.edx, 0) && BITSET(e1.edx, 4));
    cr_expect(BITSET(e1.edx, 29));
    cr_expect_eq(e1.eax, r1.eax);
}

Test(cpuid, fep_option)
{
    /* "fep" is a property of the engine, not a CPUID bit: every leaf stays the same */
    static const u32 leaves[] = { 0, 1, 7, 0xd, 0x40000000u, 0x80000000u, 0x80000001u,
                                  0x80000008u };
    struct cpuid_result plain[sizeof leaves / sizeof leaves[0]];
    cr_assert_eq(parse("max"), 0, "%s", err);
    cr_expect_not(m.fep, "off by default");
    for (size_t k = 0; k < sizeof leaves / sizeof leaves[0]; k++)
        plain[k] = q(leaves[k], 0);
    static const char *const on[] = { "max,fep", "max,+fep", "max,fep=on", "qemu64,fep" };
    for (size_t k = 0; k < sizeof on / sizeof on[0]; k++) {
        cr_assert_eq(parse(on[k]), 0, "%s", err);
        cr_expect(m.fep, "%s", on[k]);
    }
    cr_assert_eq(parse("max,fep"), 0, "%s", err);
    for (size_t k = 0; k < sizeof leaves / sizeof leaves[0]; k++) {
        struct cpuid_result r = q(leaves[k], 0);
        cr_expect(!memcmp(&r, &plain[k], sizeof r), "leaf %#x changed with fep", leaves[k]);
    }
    cr_assert_eq(parse("max,fep,-fep"), 0, "%s", err);
    cr_expect_not(m.fep);
    cr_assert_eq(parse("max,fep=off"), 0, "%s", err);
    cr_expect_not(m.fep);
    cr_expect_eq(parse("max,fep=maybe"), -1);
}

Test(cpuid, errors)
{
    cr_expect_eq(parse("pentium9000"), -1);
    cr_expect(strstr(err, "unknown CPU model"), "%s", err);
    cr_expect_eq(parse("max,+frobnicate"), -1);
    cr_expect(strstr(err, "unknown CPU feature 'frobnicate'"), "%s", err);
    cr_expect_eq(parse("max,+avx"), -1);
    cr_expect(strstr(err, "not implemented by nestor"), "%s", err);
    cr_expect_eq(parse("max,avx=on"), -1);
    cr_expect(strstr(err, "not implemented by nestor"), "%s", err);
    cr_expect_eq(parse("max,avx=off"), 0, "%s", err); /* turning it off is fine */
    cr_expect_eq(parse("max,smep=maybe"), -1);
    cr_expect_eq(parse("max,vendor=CyrixInstead"), -1);
    cr_expect(strstr(err, "unknown vendor"), "%s", err);
    cr_expect_eq(parse("qemu64,smep"), 0, "%s", err); /* bare name: on */
    cr_expect(cpuid_has(&m, "smep"));
    cr_expect_eq(parse("max,vendor"), -1);
    cr_expect_eq(parse(""), -1);
}

Test(cpuid, leaf0_and_out_of_range)
{
    cr_assert_eq(parse("max"), 0, "%s", err);
    struct cpuid_result r = q(0, 0);
    cr_expect_eq(r.eax, 0x16u);
    char s[13] = { 0 };
    memcpy(s, &r.ebx, 4);
    memcpy(s + 4, &r.edx, 4);
    memcpy(s + 8, &r.ecx, 4);
    cr_expect_str_eq(s, "GenuineIntel");
    /* Intel answers leaves above the maximum with the highest basic leaf */
    struct cpuid_result hi = q(0x16, 0), past = q(0x17, 0), hv = q(0x40000002u, 0);
    cr_expect(memcmp(&hi, &past, sizeof hi) == 0);
    cr_expect(memcmp(&hi, &hv, sizeof hi) == 0, "past the highest hypervisor leaf");
    struct cpuid_result ext = q(0x80000000u, 0);
    cr_expect_eq(ext.eax, 0x80000008u);
    struct cpuid_result beyond = q(0x80000009u, 0);
    cr_expect(memcmp(&hi, &beyond, sizeof hi) == 0);
    /* AMD answers zero */
    cr_assert_eq(parse("max,vendor=AuthenticAMD"), 0, "%s", err);
    struct cpuid_result z = q(0x12345, 0);
    cr_expect(z.eax == 0 && z.ebx == 0 && z.ecx == 0 && z.edx == 0);
}

Test(cpuid, leaf1_state_dependent_bits)
{
    cr_assert_eq(parse("max"), 0, "%s", err);
    m.ncpus = 4;
    struct cpuid_result r = cpuid_query(&m, 1, 0, 3, true, false, 3);
    cr_expect_eq(r.ebx >> 24, 3u, "initial APIC id");
    cr_expect_eq((r.ebx >> 8) & 0xff, 8u, "CLFLUSH line 64 bytes");
    cr_expect_eq((r.ebx >> 16) & 0xff, 4u, "addressable logical processors");
    cr_expect(BITSET(r.edx, 28), "HTT with 4 CPUs");
    cr_expect(BITSET(r.ecx, 27), "OSXSAVE follows CR4");
    cr_expect_not(BITSET(r.edx, 9), "APIC bit follows the APIC base enable");
    cr_expect(BITSET(r.ecx, 26), "XSAVE");
    cr_expect_not(BITSET(r.ecx, 28), "no AVX");
    cr_expect(BITSET(r.edx, 25) && BITSET(r.edx, 26), "SSE, SSE2");
    struct cpuid_result r2 = cpuid_query(&m, 1, 0, 0, false, true, 1);
    cr_expect_not(BITSET(r2.ecx, 27));
    cr_expect(BITSET(r2.edx, 9));
    u32 edx = r2.edx;
    cpuid_apply_apic_enable(1, true, &edx);
    cr_expect_eq(edx, r2.edx, "enabled: unchanged");
    cpuid_apply_apic_enable(1, false, &edx);
    cr_expect_eq(edx, r2.edx & ~(u32)BIT(9), "disabled: only the APIC flag cleared");
    edx = ~0u;
    cpuid_apply_apic_enable(7, false, &edx);
    cr_expect_eq(edx, ~0u, "other leaves untouched");
    cpuid_apply_apic_enable(0x80000001u, false, &edx);
    cr_expect_eq(edx, ~(u32)BIT(9), "AMD's copy in 80000001h");
    m.ncpus = 1;
    struct cpuid_result r3 = q(1, 0);
    cr_expect_not(BITSET(r3.edx, 28));
}

Test(cpuid, leaf7_and_extended_features)
{
    cr_assert_eq(parse("max,-la57"), 0, "%s", err);
    struct cpuid_result r = q(7, 0);
    cr_expect(BITSET(r.ebx, 7) && BITSET(r.ebx, 20), "SMEP, SMAP");
    cr_expect(BITSET(r.ebx, 0), "FSGSBASE");
    cr_expect_not(BITSET(r.ebx, 5), "no AVX2");
    cr_expect(BITSET(r.ecx, 2), "UMIP");
    cr_expect_not(BITSET(r.ecx, 16), "LA57 turned off");
    cr_expect_eq(q(7, 1).ebx, 0u);
    struct cpuid_result e = q(0x80000001u, 0);
    cr_expect(BITSET(e.edx, 11) && BITSET(e.edx, 20) && BITSET(e.edx, 29), "syscall nx lm");
    cr_expect(BITSET(e.edx, 26) && BITSET(e.edx, 27), "pdpe1gb rdtscp");
    cr_expect(BITSET(e.ecx, 0) && BITSET(e.ecx, 5), "lahf_lm abm");
    cr_expect(BITSET(q(0x80000007u, 0).edx, 8), "invariant TSC");
    struct cpuid_result a = q(0x80000008u, 0);
    cr_expect_eq(a.eax & 0xff, 40u);
    cr_expect_eq((a.eax >> 8) & 0xff, 48u);
    cr_assert_eq(parse("max"), 0, "%s", err);
    cr_expect_eq((q(0x80000008u, 0).eax >> 8) & 0xff, 57u);
}

Test(cpuid, brand_string)
{
    cr_assert_eq(parse("max"), 0, "%s", err);
    char brand[49] = { 0 };
    for (u32 k = 0; k < 3; k++) {
        struct cpuid_result r = q(0x80000002u + k, 0);
        memcpy(brand + 16 * k, &r, 16);
    }
    cr_expect_str_eq(brand, "nestor virtual CPU");
}

Test(cpuid, topology_leaves)
{
    cr_assert_eq(parse("max"), 0, "%s", err);
    m.ncpus = 6;
    struct cpuid_result smt = cpuid_query(&m, 0xb, 0, 5, false, true, 1);
    struct cpuid_result core = cpuid_query(&m, 0xb, 1, 5, false, true, 1);
    struct cpuid_result end = cpuid_query(&m, 0xb, 2, 5, false, true, 1);
    cr_expect_eq(smt.ebx, 1u);
    cr_expect_eq((smt.ecx >> 8) & 0xff, 1u);
    cr_expect_eq(smt.edx, 5u);
    cr_expect_eq(core.eax & 0x1f, 3u, "6 cores need 3 APIC id bits");
    cr_expect_eq(core.ebx, 6u);
    cr_expect_eq((core.ecx >> 8) & 0xff, 2u);
    cr_expect_eq(end.ebx, 0u);
    cr_expect_eq((end.ecx >> 8) & 0xff, 0u);
    /* leaf 4: L1d, L1i, L2, L3, then none; cores per package field */
    struct cpuid_result l1 = q(4, 0), l3 = q(4, 3), none = q(4, 4);
    cr_expect_eq(l1.eax & 0x1f, 1u);
    cr_expect_eq((l1.eax >> 26) + 1, 8u);
    u32 size = ((l3.ebx >> 22) + 1) * (((l3.ebx >> 12) & 0x3ff) + 1) * ((l3.ebx & 0xfff) + 1) *
               (l3.ecx + 1);
    cr_expect_eq(size, 16u << 20);
    cr_expect_eq(none.eax & 0x1f, 0u);
}

Test(cpuid, xsave_and_tsc_leaves)
{
    cr_assert_eq(parse("max"), 0, "%s", err);
    struct cpuid_result d0 = q(0xd, 0), d1 = q(0xd, 1);
    cr_expect_eq(d0.eax, 3u);
    cr_expect_eq(d0.ebx, 576u);
    cr_expect_eq(d0.ecx, 576u);
    cr_expect_eq(d1.eax, 0u, "no XSAVEOPT/XSAVEC/XSAVES");
    struct cpuid_result t = q(0x15, 0);
    cr_assert_neq(t.eax, 0u);
    cr_expect_eq((u64)t.ecx * t.ebx / t.eax, (u64)m.tsc_khz * 1000);
    cr_expect_eq(t.ecx, m.bus_khz * 1000);
    cr_expect_eq(q(0x16, 0).eax, m.tsc_khz / 1000);
    cr_assert_eq(parse("max,-xsave"), 0, "%s", err);
    cr_expect_eq(q(0xd, 0).eax, 0u);
    /* the hypervisor bit and leaves are on by default, as QEMU has them: leaf 40000000h
     * names the highest hypervisor leaf and the signature, 40000001h is empty */
    cr_assert_eq(parse("max"), 0, "%s", err);
    cr_expect(BITSET(q(1, 0).ecx, 31));
    struct cpuid_result hv = q(0x40000000u, 0);
    cr_expect_eq(hv.eax, 0x40000001u);
    char sig[13] = { 0 };
    memcpy(sig, &hv.ebx, 4);
    memcpy(sig + 4, &hv.ecx, 4);
    memcpy(sig + 8, &hv.edx, 4);
    cr_expect_str_eq(sig, "NestorNestor");
    struct cpuid_result hv1 = q(0x40000001u, 0);
    cr_expect(hv1.eax == 0 && hv1.ebx == 0 && hv1.ecx == 0 && hv1.edx == 0);
    /* -hypervisor: bare metal, no hypervisor leaves (Intel: the highest basic leaf) */
    cr_assert_eq(parse("max,-hypervisor"), 0, "%s", err);
    cr_expect_not(BITSET(q(1, 0).ecx, 31));
    struct cpuid_result top = q(0x16, 0), none = q(0x40000000u, 0);
    cr_expect(memcmp(&top, &none, sizeof top) == 0);
    cr_assert_eq(parse("qemu64"), 0, "%s", err);
    cr_expect(BITSET(q(1, 0).ecx, 31), "qemu64 has it too");
}

Test(cpuid, phys_bits_option)
{
    cr_assert_eq(parse("max"), 0, "%s", err);
    cr_expect_eq(m.phys_bits, 40, "default MAXPHYADDR");
    cr_expect_eq(q(0x80000008u, 0).eax, 40u | 57u << 8);
    cr_assert_eq(parse("max,phys-bits=36"), 0, "%s", err);
    cr_expect_eq(q(0x80000008u, 0).eax & 0xff, 36u);
    cr_assert_eq(parse("qemu64,phys-bits=52"), 0, "%s", err);
    cr_expect_eq(q(0x80000008u, 0).eax, 52u | 48u << 8);
    cr_assert_eq(parse("max,phys-bits=32,-la57"), 0, "%s", err);
    cr_expect_eq(q(0x80000008u, 0).eax, 32u | 48u << 8);
    static const char *const bad[] = { "max,phys-bits=31", "max,phys-bits=53", "max,phys-bits=",
                                       "max,phys-bits=4x", "max,phys-bits=-40" };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        cr_expect_eq(parse(bad[k]), -1, "%s accepted", bad[k]);
        cr_expect(strstr(err, "32 to 52") != NULL, "%s: message '%s'", bad[k], err);
    }
}

Test(cpuid, monitor_leaf5)
{
    cr_assert_eq(parse("max"), 0, "%s", err);
    cr_expect(BITSET(q(1, 0).ecx, 3), "max has MONITOR");
    struct cpuid_result r = q(5, 0);
    cr_expect_eq(r.eax, 64u);
    cr_expect_eq(r.ebx, 64u);
    cr_expect_eq(r.ecx, 3u, "extensions enumerated, interrupts as break events");
    cr_expect_eq(r.edx, 0x10u, "one C1 sub-state");
    cr_assert_eq(parse("max,-monitor"), 0, "%s", err);
    r = q(5, 0);
    cr_expect(r.eax == 0 && r.ebx == 0 && r.ecx == 0 && r.edx == 0);
    cr_assert_eq(parse("qemu64"), 0, "%s", err);
    cr_expect_not(BITSET(q(1, 0).ecx, 3), "qemu64 has no MONITOR");
}

Test(cpuid, misc_enable_effects)
{
    cr_assert_eq(parse("max"), 0, "%s", err);
    u64 on = MISC_ENABLE_MWAIT;
    cr_expect_eq(cpuid_misc_enable_leaf(&m, 7, on), 7u);
    cr_expect_eq(cpuid_misc_enable_leaf(&m, 2, on | MISC_ENABLE_LIMIT_CPUID), 2u);
    cr_expect_eq(cpuid_misc_enable_leaf(&m, 3, on | MISC_ENABLE_LIMIT_CPUID), 2u);
    cr_expect_eq(cpuid_misc_enable_leaf(&m, 0x16, on | MISC_ENABLE_LIMIT_CPUID), 2u);
    cr_expect_eq(cpuid_misc_enable_leaf(&m, 0x40000000u, on | MISC_ENABLE_LIMIT_CPUID),
                 0x40000000u, "the hypervisor leaves stay");
    cr_expect_eq(cpuid_misc_enable_leaf(&m, 0x40000005u, on | MISC_ENABLE_LIMIT_CPUID), 2u,
                 "out of range: the highest basic leaf, now 2");
    cr_expect_eq(cpuid_misc_enable_leaf(&m, 0x80000001u, on | MISC_ENABLE_LIMIT_CPUID),
                 0x80000001u);
    struct cpuid_result r = q(0, 0);
    cpuid_misc_enable_adjust(&m, 0, on | MISC_ENABLE_LIMIT_CPUID, &r);
    cr_expect_eq(r.eax, 2u);
    r = q(1, 0);
    cpuid_misc_enable_adjust(&m, 1, on, &r);
    cr_expect(BITSET(r.ecx, 3));
    cpuid_misc_enable_adjust(&m, 1, 0, &r);
    cr_expect_not(BITSET(r.ecx, 3), "bit 18 clear hides MONITOR");
    r = q(0x80000001u, 0);
    cr_expect(BITSET(r.edx, 20));
    cpuid_misc_enable_adjust(&m, 0x80000001u, on | MISC_ENABLE_XD_DISABLE, &r);
    cr_expect_not(BITSET(r.edx, 20), "XD disable hides NX");
    /* AMD has no IA32_MISC_ENABLE */
    cr_assert_eq(parse("max,vendor=AuthenticAMD"), 0, "%s", err);
    cr_expect_eq(cpuid_misc_enable_leaf(&m, 7, MISC_ENABLE_LIMIT_CPUID), 7u);
    r = q(1, 0);
    cpuid_misc_enable_adjust(&m, 1, 0, &r);
    cr_expect(BITSET(r.ecx, 3));
}

/* The PMU (pmu.c): on in max, off in qemu64, pmu=on|off; leaf 0Ah for Intel, the AMD
 * core extension bit only with vendor AMD and a PMU. */
Test(cpuid, pmu_option_and_leaves)
{
    cr_assert_eq(parse("max"), 0, "%s", err);
    cr_expect(m.pmu);
    struct cpuid_result a = q(0xa, 0);
    cr_expect_eq(a.eax, 0x07300402u, "version 2, 4 counters, 48 bits, 7 events");
    cr_expect_eq(a.ebx, 0x58u, "LLC references/misses and branch mispredicts unavailable");
    cr_expect_eq(a.edx, 0x603u, "3 fixed counters of 48 bits");
    cr_expect_not(BITSET(q(0x80000001u, 0).ecx, 23), "PerfCtrExtCore is not Intel's");
    cr_assert_eq(parse("max,pmu=off"), 0, "%s", err);
    cr_expect_not(m.pmu);
    a = q(0xa, 0);
    cr_expect_eq(a.eax | a.ebx | a.ecx | a.edx, 0u, "pmu=off: leaf 0Ah empty");
    cr_assert_eq(parse("qemu64"), 0, "%s", err);
    cr_expect_not(m.pmu, "qemu64 has no PMU");
    cr_assert_eq(parse("qemu64,pmu=on"), 0, "%s", err);
    cr_expect(m.pmu);
    cr_assert_eq(parse("max,vendor=AuthenticAMD"), 0, "%s", err);
    a = q(0xa, 0);
    cr_expect_eq(a.eax | a.ebx | a.ecx | a.edx, 0u, "AMD: leaf 0Ah reserved");
    cr_expect(BITSET(q(0x80000001u, 0).ecx, 23), "AMD: PerfCtrExtCore");
    cr_assert_eq(parse("max,vendor=AuthenticAMD,pmu=off"), 0, "%s", err);
    cr_expect_not(BITSET(q(0x80000001u, 0).ecx, 23), "no PMU: no core extension either");
    cr_expect_neq(parse("max,pmu=maybe"), 0);
}

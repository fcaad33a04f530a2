/* -cpu feature control: the kernel runs under several -cpu options and checks that
 * - CPUID agrees with the option string the runner passed on the command line
 *   ("cpu=SPEC": -feat absent, +feat present, qemu64 has no leaf-7 features,
 *   vendor=AuthenticAMD changes leaf 0, leaf 80000000h and the AMD copies of the
 *   leaf-1 EDX bits in leaf 80000001h);
 * - the behaviour agrees with CPUID: a present feature's instructions run and its
 *   control bits can be set; an absent one's instructions raise #UD (LZCNT and TZCNT
 *   run as BSR and BSF instead: their F3 prefix is ignored) and its control bits #GP
 *   (CR4.SMEP/SMAP/PCIDE/FSGSBASE/OSXSAVE/UMIP/LA57, EFER.NXE/SCE, x2APIC enable in
 *   IA32_APIC_BASE); 1G pages without pdpe1gb are a reserved-bit #PF; SYSENTER in
 *   64-bit mode is #UD on AMD and not on Intel.
 * Without a cpu= on the command line only the second part runs.
 * t32/cpufeat32.c compiles this file for 32-bit protected mode (where CR4.LA57 can be
 * set when the CPU has it, and CR4.PCIDE never).
 * guest: cpu=max name=cpufeat */
/* guest: cpu=max,-bmi1,-bmi2,-popcnt,-abm,-movbe,-rdtscp,-rdpid,-cx16,-adx,-invpcid,-smep,-smap,-la57,-pcid,-fsgsbase,-xsave,-umip,-x2apic,-pdpe1gb,-nx,-syscall,-clflushopt name=cpufeat-off */
/* guest: cpu=max,vendor=AuthenticAMD name=cpufeat-amd */
/* guest: cpu=qemu64 name=cpufeat-qemu64 */
#include "rt.h"

enum { EAX, EBX, ECX, EDX };
struct feature {
    const char *name;
    u32 leaf, sub;
    int reg, bit;
};
static const struct feature features[] = {
    { "bmi1", 7, 0, EBX, 3 },      { "bmi2", 7, 0, EBX, 8 },       { "popcnt", 1, 0, ECX, 23 },
    { "abm", 0x80000001, 0, ECX, 5 }, { "movbe", 1, 0, ECX, 22 },  { "rdtscp", 0x80000001, 0, EDX, 27 },
    { "rdpid", 7, 0, ECX, 22 },    { "cx16", 1, 0, ECX, 13 },      { "adx", 7, 0, EBX, 19 },
    { "invpcid", 7, 0, EBX, 10 },  { "smep", 7, 0, EBX, 7 },       { "smap", 7, 0, EBX, 20 },
    { "la57", 7, 0, ECX, 16 },     { "pcid", 1, 0, ECX, 17 },      { "fsgsbase", 7, 0, EBX, 0 },
    { "xsave", 1, 0, ECX, 26 },    { "umip", 7, 0, ECX, 2 },       { "x2apic", 1, 0, ECX, 21 },
    { "pdpe1gb", 0x80000001, 0, EDX, 26 }, { "nx", 0x80000001, 0, EDX, 20 },
    { "syscall", 0x80000001, 0, EDX, 11 }, { "clflushopt", 7, 0, EBX, 23 },
};
enum feat_id {
    BMI1, BMI2, POPCNT, ABM, MOVBE, RDTSCP, RDPID, CX16, ADX, INVPCID, SMEP, SMAP, LA57,
    PCID, FSGSBASE, XSAVE, UMIP, X2APIC, PDPE1GB, NX, SYSCALL, CLFLUSHOPT, NFEAT
};
_Static_assert(ARRAY_SIZE(features) == NFEAT, "feature table and ids agree");

static bool has[NFEAT];
static bool is_amd;

static bool feature_bit(const struct feature *f)
{
    /* Intel reports SYSCALL in 80000001h only in 64-bit mode */
#ifndef __x86_64__
    if (f->leaf == 0x80000001 && f->bit == 11 && !is_amd)
        return true; /* unknown here: the EFER.SCE check below decides */
#endif
    return cpu_has(f->leaf, f->sub, f->reg, f->bit);
}

static const char *id_name(int id) { return features[id].name; }

/* ------------------------------------------------ CPUID against the option string */
/* length of the prefix of s without c (strcspn for one character) */
static size_t len_to(const char *s, char c)
{
    size_t n = 0;
    while (s[n] && s[n] != c)
        n++;
    return n;
}

static int feature_named(const char *name, size_t len)
{
    static const struct { const char *alias, *name; } aliases[] = { { "lzcnt", "abm" }, { "pdpe1g", "pdpe1gb" } };
    char n[32];
    if (len >= sizeof(n))
        return -1;
    for (size_t i = 0; i < len; i++)
        n[i] = name[i] == '-' ? '_' : name[i];
    n[len] = 0;
    const char *canonical = n;
    for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
        if (!strcmp(n, aliases[i].alias))
            canonical = aliases[i].name;
    for (int i = 0; i < NFEAT; i++)
        if (!strcmp(canonical, features[i].name))
            return i;
    return -1;
}

static void vendor_of(u32 leaf, char out[13])
{
    struct cpuid_regs r = cpuid(leaf);
    memcpy(out, &r.b, 4);
    memcpy(out + 4, &r.d, 4);
    memcpy(out + 8, &r.c, 4);
    out[12] = 0;
}

#define AMD_EXT1_EDX_MIRROR 0x0183f3ffu /* leaf-1 EDX bits AMD repeats in 80000001h */

static void check_spec(const char *spec)
{
    char model[32];
    size_t mlen = len_to(spec, ',');
    memcpy(model, spec, mlen < sizeof(model) ? mlen : sizeof(model) - 1);
    model[mlen < sizeof(model) ? mlen : sizeof(model) - 1] = 0;
    bool plus_leaf7 = false;
    const char *want_vendor = NULL;
    char vendor_buf[16];

    for (const char *p = spec + mlen; *p;) {
        p++; /* the comma */
        size_t len = len_to(p, ',');
        const char *item = p;
        p += len;
        int sign = 0;
        if (item[0] == '+' || item[0] == '-') {
            sign = item[0] == '+' ? 1 : -1;
            item++, len--;
        } else if (len > 7 && !strncmp(item, "vendor=", 7)) {
            size_t vl = len - 7 < sizeof(vendor_buf) - 1 ? len - 7 : sizeof(vendor_buf) - 1;
            memcpy(vendor_buf, item + 7, vl);
            vendor_buf[vl] = 0;
            want_vendor = vendor_buf;
            continue;
        } else {
            size_t nlen = len_to(item, '=') < len ? len_to(item, '=') : len;
            const char *eq = nlen < len ? item + nlen : NULL;
            sign = eq && (!strncmp(eq + 1, "off", 3) || !strncmp(eq + 1, "false", 5)) ? -1 : 1;
            len = nlen;
        }
        int id = feature_named(item, len);
        if (id < 0)
            continue; /* a feature this test does not look at */
        if (sign > 0 && features[id].leaf == 7)
            plus_leaf7 = true;
        TEST_ASSERT(has[id] == (sign > 0), "-cpu %c%s: CPUID says %s", sign > 0 ? '+' : '-',
                    id_name(id), has[id] ? "present" : "absent");
    }
    if (!strcmp(model, "qemu64") && !plus_leaf7) {
        struct cpuid_regs l7 = cpuid(0).a >= 7 ? cpuid2(7, 0) : (struct cpuid_regs){ 0, 0, 0, 0 };
        TEST_ASSERT(l7.b == 0 && l7.c == 0 && l7.d == 0,
                    "qemu64: no leaf-7 features (ebx %#x ecx %#x edx %#x)", l7.b, l7.c, l7.d);
    }
    if (want_vendor) {
        char v0[13], v8[13];
        vendor_of(0, v0);
        vendor_of(0x80000000, v8);
        TEST_ASSERT(!strcmp(v0, want_vendor), "vendor=%s: leaf 0 says %s", want_vendor, v0);
        if (!strcmp(want_vendor, "AuthenticAMD"))
            TEST_ASSERT(!strcmp(v8, want_vendor), "vendor=%s: leaf 80000000h says %s", want_vendor, v8);
    }
}

/* the vendor-specific layout of leaf 80000001h */
static void check_vendor_leaves(void)
{
    char v0[13];
    vendor_of(0, v0);
    struct cpuid_regs l1 = cpuid(1), e1 = cpuid(0x80000001);
    if (is_amd) {
        TEST_EQ(e1.d & AMD_EXT1_EDX_MIRROR, l1.d & AMD_EXT1_EDX_MIRROR,
                "AMD: 80000001h EDX repeats the leaf-1 EDX bits");
        TEST_EQ(e1.a, l1.a, "AMD: 80000001h EAX is the family/model/stepping");
    } else {
        TEST_EQ(e1.d & AMD_EXT1_EDX_MIRROR, 0, "Intel: 80000001h EDX has no copies of leaf-1 bits");
    }
}

/* ------------------------------------------------ instructions */
static int probe_andn(void)
{
    ulong r = 0;
    asm volatile(ASM_TRY("1f") "andn %2, %1, %0\n1:" : "+r"(r) : "r"((ulong)0xf0), "r"((ulong)0xff) : "memory", "cc");
    int v = exc_vector();
    return v == NO_EXCEPTION && r != 0x0f ? 0x100 : v; /* 0x100: wrong result */
}
static int probe_bzhi(void)
{
    ulong r = 0;
    asm volatile(ASM_TRY("1f") "bzhi %2, %1, %0\n1:" : "+r"(r) : "r"((ulong)0xff), "r"((ulong)4) : "memory", "cc");
    int v = exc_vector();
    return v == NO_EXCEPTION && r != 0x0f ? 0x100 : v;
}
static int probe_popcnt(void)
{
    ulong r = 0;
    asm volatile(ASM_TRY("1f") "popcnt %1, %0\n1:" : "+r"(r) : "r"((ulong)0xf0f) : "memory", "cc");
    int v = exc_vector();
    return v == NO_EXCEPTION && r != 8 ? 0x100 : v;
}
static int probe_movbe(void)
{
    u32 m = 0x11223344, r = 0;
    asm volatile(ASM_TRY("1f") "movbe %1, %0\n1:" : "+r"(r) : "m"(m) : "memory");
    int v = exc_vector();
    return v == NO_EXCEPTION && r != 0x44332211 ? 0x100 : v;
}
static int probe_rdtscp(void)
{
    asm volatile(ASM_TRY("1f") "rdtscp\n1:" ::: "eax", "ecx", "edx", "memory");
    return exc_vector();
}
static int probe_rdpid(void)
{
    ulong r;
    asm volatile(ASM_TRY("1f") "rdpid %0\n1:" : "=r"(r) :: "memory");
    return exc_vector();
}
#ifdef __x86_64__
static int probe_cx16(void)
{
    static u64 pair[2] ALIGNED(16) = { 1, 2 };
    asm volatile(ASM_TRY("1f") "lock cmpxchg16b %0\n1:" : "+m"(pair) : "a"(1), "d"(2), "b"(3), "c"(4) : "memory", "cc");
    int v = exc_vector();
    return v == NO_EXCEPTION && (pair[0] != 3 || pair[1] != 4) ? 0x100 : v;
}
#endif
static int probe_adx(void)
{
    ulong r = 1;
    asm volatile(ASM_TRY("1f") "stc\n\tadcx %1, %0\n1:" : "+r"(r) : "r"((ulong)1) : "memory", "cc");
    int v = exc_vector();
    return v == NO_EXCEPTION && r != 3 ? 0x100 : v;
}
static int probe_invpcid(void)
{
    static u64 desc[2] ALIGNED(16);
    asm volatile(ASM_TRY("1f") "invpcid %0, %1\n1:" :: "m"(desc), "r"((ulong)2) : "memory");
    return exc_vector();
}
static int probe_clflushopt(void)
{
    static u8 line[64] ALIGNED(64);
    asm volatile(ASM_TRY("1f") "clflushopt %0\n1:" : "+m"(line) :: "memory");
    return exc_vector();
}
static int probe_xgetbv(void)
{
    asm volatile(ASM_TRY("1f") "xgetbv\n1:" :: "c"(0) : "eax", "edx", "memory");
    return exc_vector();
}

/* LZCNT / TZCNT: without the feature the F3 prefix is ignored: BSR / BSF */
static void check_count_fallback(void)
{
    ulong r = 0x77;
    u8 zf;
    asm volatile("lzcnt %2, %0; setz %1" : "+r"(r), "=q"(zf) : "r"((ulong)1) : "cc");
    if (has[ABM])
        TEST_EQ(r, sizeof(ulong) * 8 - 1, "abm: LZCNT(1) counts the leading zeros");
    else
        TEST_EQ(r, 0, "no abm: F3 0F BD runs as BSR (BSR(1) = 0)");
    r = 0x77;
    u8 cf;
    asm volatile("tzcnt %3, %0; setz %1; setc %2" : "+r"(r), "=q"(zf), "=q"(cf) : "r"((ulong)0) : "cc");
    if (has[BMI1])
        TEST_ASSERT(r == sizeof(ulong) * 8 && cf && !zf, "bmi1: TZCNT(0) = operand size, CF=1 ZF=0 (%#lx cf %d zf %d)",
                    r, cf, zf);
    else
        TEST_ASSERT(zf && !cf, "no bmi1: F3 0F BC runs as BSF: BSF(0) sets ZF (cf %d zf %d)", cf, zf);
}

static const struct {
    int feature;
    const char *insn;
    int (*probe)(void);
} insn_probes[] = {
    { BMI1, "ANDN", probe_andn },      { BMI2, "BZHI", probe_bzhi },
    { POPCNT, "POPCNT", probe_popcnt }, { MOVBE, "MOVBE", probe_movbe },
    { RDTSCP, "RDTSCP", probe_rdtscp }, { RDPID, "RDPID", probe_rdpid },
#ifdef __x86_64__
    { CX16, "CMPXCHG16B", probe_cx16 },
#endif
    { ADX, "ADCX", probe_adx },        { INVPCID, "INVPCID", probe_invpcid },
    { CLFLUSHOPT, "CLFLUSHOPT", probe_clflushopt },
};

static void check_instructions(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(insn_probes); i++) {
        int f = insn_probes[i].feature;
        int v = insn_probes[i].probe();
        if (has[f])
            TEST_ASSERT(v == NO_EXCEPTION, "%s present: %s runs (vector %d%s)", id_name(f),
                        insn_probes[i].insn, v, v == 0x100 ? ": wrong result" : "");
        else
            TEST_ASSERT(v == UD_VECTOR, "%s absent: %s raises #UD (vector %d)", id_name(f),
                        insn_probes[i].insn, v);
    }
    check_count_fallback();
}

/* ------------------------------------------------ control bits */
static int try_write_cr4(ulong v)
{
    asm volatile(ASM_TRY("1f") "mov %0, %%cr4\n1:" ::"r"(v) : "memory");
    return exc_vector();
}

/* Sets a CR4 bit (and clears it again): #GP exactly when the feature is absent. */
static void check_cr4_bit(int feature, ulong bit, const char *bitname)
{
    if (!has[feature] && on_qemu_tcg()) {
        test_skip("%s absent: CR4.%s: QEMU TCG does not check reserved CR4 bits (it may hang)",
                  id_name(feature), bitname);
        return;
    }
    ulong old = read_cr4();
    int v = try_write_cr4(old | bit);
    bool set = v == NO_EXCEPTION && (read_cr4() & bit);
    if (v == NO_EXCEPTION)
        write_cr4(old);
    if (has[feature])
        TEST_ASSERT(set, "%s present: CR4.%s can be set (vector %d)", id_name(feature), bitname, v);
    else
        TEST_ASSERT(v == GP_VECTOR, "%s absent: setting CR4.%s raises #GP (vector %d)", id_name(feature),
                    bitname, v);
}

static void check_control_bits(void)
{
#ifdef __x86_64__
    /* SMEP/SMAP are probed on a copy of the identity map without U, so that the code
     * keeps running at CPL 0 while they are set */
    static struct page_table spt;
    pt_init(&spt, rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL);
    pt_map_identity(&spt, PTE_W);
    pt_activate(&spt, 0);
    check_cr4_bit(SMEP, CR4_SMEP, "SMEP");
    check_cr4_bit(SMAP, CR4_SMAP, "SMAP");
    pt_activate(&rt_boot_pt, 0);
    check_cr4_bit(PCID, CR4_PCIDE, "PCIDE");
    /* LA57 cannot change in IA-32e mode, present or not */
    if (on_qemu_tcg()) {
        test_skip("changing CR4.LA57 in IA-32e mode: QEMU TCG may hang instead of #GP");
    } else {
        ulong cr4 = read_cr4();
        TEST_EQ(try_write_cr4(cr4 ^ CR4_LA57), GP_VECTOR, "changing CR4.LA57 in IA-32e mode raises #GP");
    }
#else
    check_cr4_bit(SMEP, CR4_SMEP, "SMEP");
    check_cr4_bit(SMAP, CR4_SMAP, "SMAP");
    /* outside IA-32e mode LA57 can be set when the CPU has 5-level paging */
    check_cr4_bit(LA57, CR4_LA57, "LA57");
    if (has[PCID] && !on_qemu_tcg()) {
        ulong cr4 = read_cr4();
        TEST_EQ(try_write_cr4(cr4 | CR4_PCIDE), GP_VECTOR, "CR4.PCIDE outside IA-32e mode raises #GP");
    }
#endif
    check_cr4_bit(FSGSBASE, CR4_FSGSBASE, "FSGSBASE");
    check_cr4_bit(XSAVE, CR4_OSXSAVE, "OSXSAVE");
    check_cr4_bit(UMIP, BIT(11), "UMIP");
    if (!has[XSAVE])
        TEST_EQ(probe_xgetbv(), UD_VECTOR, "xsave absent: XGETBV raises #UD");

    /* EFER */
    u64 efer;
    if (rdmsr_safe(MSR_EFER, &efer) != NO_EXCEPTION) {
        test_skip("EFER: not present (no lm, nx or syscall)");
    } else if (on_qemu_tcg() && (!has[NX] || !has[SYSCALL])) {
        test_skip("EFER.NXE/SCE without the feature: QEMU TCG ignores the bit instead of #GP");
    } else {
        static const struct { int feature; u64 bit; const char *name; } efer_bits[] = {
            { NX, EFER_NXE, "NXE" }, { SYSCALL, EFER_SCE, "SCE" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(efer_bits); i++) {
            int f = efer_bits[i].feature;
            int v = wrmsr_safe(MSR_EFER, efer | efer_bits[i].bit);
            wrmsr(MSR_EFER, efer);
#ifndef __x86_64__
            if (f == SYSCALL && !is_amd) { /* Intel hides the bit outside 64-bit mode */
                TEST_ASSERT(v == NO_EXCEPTION || v == GP_VECTOR, "EFER.SCE write (vector %d)", v);
                continue;
            }
#endif
            TEST_EQ(v, has[f] ? NO_EXCEPTION : GP_VECTOR, has[f] ? "EFER bit of a present feature can be set"
                                                                 : "EFER bit of an absent feature: #GP");
            if (v != (has[f] ? NO_EXCEPTION : GP_VECTOR))
                printf("  (EFER.%s, %s)\n", efer_bits[i].name, id_name(f));
        }
    }

    /* x2APIC enable */
    u64 base = rdmsr(MSR_APIC_BASE);
    int v = wrmsr_safe(MSR_APIC_BASE, base | BIT(10));
    if (v == NO_EXCEPTION && (rdmsr(MSR_APIC_BASE) & BIT(10))) {
        wrmsr(MSR_APIC_BASE, base & ~(BIT(10) | BIT(11))); /* back through "disabled" */
        wrmsr(MSR_APIC_BASE, base);
        apic_enable();
    }
    if (has[X2APIC])
        TEST_EQ(v, NO_EXCEPTION, "x2apic present: IA32_APIC_BASE.EXTD can be set");
    else if (on_qemu_tcg() && v == NO_EXCEPTION)
        test_skip("x2apic absent: QEMU TCG ignores EXTD instead of #GP");
    else
        TEST_EQ(v, GP_VECTOR, "x2apic absent: setting IA32_APIC_BASE.EXTD raises #GP");
}

#ifdef __x86_64__
/* 1G pages and SYSENTER in 64-bit mode */
static void check_long_mode_only(void)
{
    static struct page_table gpt;
    const u64 va = 0x8000000000ull;
    pt_init(&gpt, rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL);
    pt_map_identity(&gpt, PTE_W | PTE_U);
    pt_map(&gpt, va, 0, 1ull << 30, 1ull << 30, PTE_W);
    pt_activate(&gpt, 0);
    u64 val = 0;
    asm volatile(ASM_TRY("1f") "movq (%1), %0\n1:" : "+r"(val) : "r"(va + 0x100000) : "memory");
    int v = exc_vector();
    pt_activate(&rt_boot_pt, 0);
    if (has[PDPE1GB]) {
        TEST_ASSERT(v == NO_EXCEPTION && val == *(u64 *)0x100000, "pdpe1gb present: a 1G page maps (vector %d)", v);
    } else if (on_qemu_tcg()) {
        test_skip("pdpe1gb absent: QEMU TCG maps 1G pages anyway (vector %d)", v);
    } else {
        ulong pfec = exc_last.error;
        TEST_ASSERT(v == PF_VECTOR && pfec == (PFEC_P | PFEC_RSVD),
                    "pdpe1gb absent: PS in a PDPTE is reserved: #PF P|RSVD (vector %d error %#lx)", v,
                    (ulong)exc_last.error);
    }

    u64 cs = rdmsr(MSR_SYSENTER_CS);
    wrmsr(MSR_SYSENTER_CS, 0);
    asm volatile(ASM_TRY("1f") "sysenter\n1:" ::: "memory");
    v = exc_vector();
    wrmsr(MSR_SYSENTER_CS, cs);
    if (is_amd)
        TEST_EQ(v, UD_VECTOR, "AMD: SYSENTER in 64-bit mode raises #UD");
    else
        TEST_EQ(v, GP_VECTOR, "Intel: SYSENTER in 64-bit mode with SYSENTER_CS = 0 raises #GP");
}
#endif

void test_main(void)
{
    char v0[13];
    vendor_of(0, v0);
    is_amd = !strcmp(v0, "AuthenticAMD");
    for (int i = 0; i < NFEAT; i++)
        has[i] = feature_bit(&features[i]);
    printf("vendor %s, features:", v0);
    for (int i = 0; i < NFEAT; i++)
        printf(" %c%s", has[i] ? '+' : '-', features[i].name);
    printf("\n");

    static char spec[512];
    if (rt_cmdline_value("cpu", spec, sizeof(spec)))
        check_spec(spec);
    else
        test_skip("no cpu= on the command line: CPUID is not compared with an option string");
    check_vendor_leaves();
    check_instructions();
    check_control_bits();
#ifdef __x86_64__
    check_long_mode_only();
#endif
}

/* The opcode-map audit: every instruction the CPU model advertises has a handler.
 *
 * Enumerates the encodings of the one-byte, 0F, 0F 38 and 0F 3A maps (every opcode with
 * every ModRM byte, under no prefix, 66, 67, F2, F3 and, in 64-bit mode, REX.W with
 * them), the 3DNow! map (0F 0F with every suffix) and the VEX maps 1-3 (the BMI and
 * other VEX forms), decodes each with the engine's own decoder set-up in real, 16-bit,
 * 32-bit and 64-bit mode, and classifies what decodes by Zydis' ISA set into the CPUID
 * feature that enables it. For each CPU model (max and qemu64, Intel and AMD) every
 * instruction whose feature the model has must have a handler (exec_handler), so that a
 * feature turned on in the model later without its instructions fails here. A new ISA
 * set (a newer Zydis) that the table below does not classify fails too. */
#include <criterion/criterion.h>
#include <string.h>

#include "cpu/cpuid.h"
#include "cpu/exec.h"

/* What an ISA set needs: up to two features of the CPUID table, all of which must be
 * on; ALWAYS: every x86-64 processor has it; NEVER: the model has no way to advertise
 * it (no entry in the feature table), so it is #UD on nestor. */
#define ALWAYS "always"
#define NEVER "never"
struct isa_need {
    const char *feature[2];
};
#define NEED(set, ...) [ZYDIS_ISA_SET_##set] = { { __VA_ARGS__ } }
static const struct isa_need isa_need[ZYDIS_ISA_SET_MAX_VALUE + 1] = {
    /* the base architecture */
    NEED(I86, ALWAYS), NEED(I186, ALWAYS), NEED(I286REAL, ALWAYS), NEED(I286PROTECTED, ALWAYS),
    NEED(I386, ALWAYS), NEED(I486REAL, ALWAYS), NEED(I486, ALWAYS), NEED(FAT_NOP, ALWAYS),
    NEED(PAUSE, ALWAYS), /* F3 90: a NOP before SSE2 */
    NEED(RDPMC, ALWAYS), /* P6 and later; #GP unless CR4.PCE or CPL 0 */
    NEED(PREFETCH_NOP, ALWAYS), /* 0F 0D: a NOP-space prefetch on every current CPU */
    NEED(PENTIUMREAL, ALWAYS), /* CMPXCHG8B, RDTSC, RDMSR, WRMSR: see need_override */
    NEED(PPRO, ALWAYS),        /* UD0-2, NOP Ev, FCOMI, SYSENTER: see need_override */
    NEED(X87, "fpu"), NEED(FCMOV, "fpu", "cmov"), NEED(CMOV, "cmov"),
    NEED(LONGMODE, "lm"), NEED(AMD, "syscall"), NEED(LAHF, "lahf_lm"),
    NEED(CMPXCHG16B, "cx16"),
    NEED(PENTIUMMMX, "mmx"), NEED(SSE, "sse"), NEED(SSE_PREFETCH, "sse"),
    NEED(SSEMXCSR, "sse"), NEED(SSE2, "sse2"), NEED(SSE2MMX, "sse2"),
    NEED(SSE3, "pni"), NEED(SSE3X87, "pni"), NEED(SSSE3, "ssse3"), NEED(SSSE3MMX, "ssse3"),
    NEED(SSE4, "sse4_1"), NEED(SSE42, "sse4_2"), NEED(SSE4A, "sse4a"),
    NEED(AES, "aes"), NEED(PCLMULQDQ, "pclmulqdq"), NEED(SHA, "sha_ni"),
    NEED(AMD3DNOW, "3dnow"), NEED(FXSAVE, "fxsr"), NEED(FXSAVE64, "fxsr"),
    NEED(XSAVE, "xsave"), NEED(XSAVEOPT, "xsaveopt"), NEED(XSAVEC, "xsavec"),
    NEED(XSAVES, "xsaves"), NEED(CLFSH, "clflush"), NEED(CLFLUSHOPT, "clflushopt"),
    NEED(CLWB, "clwb"), NEED(MONITOR, "monitor"), NEED(POPCNT, "popcnt"),
    NEED(LZCNT, "abm"), NEED(BMI1, "bmi1"), NEED(BMI2, "bmi2"), NEED(ADOX_ADCX, "adx"),
    NEED(MOVBE, "movbe"), NEED(INVPCID, "invpcid"), NEED(RDPID, "rdpid"),
    NEED(RDTSCP, "rdtscp"), NEED(RDWRFSGS, "fsgsbase"), NEED(SMAP, "smap"),
    NEED(RDRAND, "rdrand"), NEED(RDSEED, "rdseed"), NEED(RTM, "rtm"), NEED(MPX, "mpx"),
    NEED(PKU, "pku"), NEED(SGX, "sgx"), NEED(WAITPKG, "waitpkg"), NEED(SVM, "svm"),
    NEED(VTX, "vmx"), NEED(AVX, "avx"), NEED(AVX2, "avx2"), NEED(AVX2GATHER, "avx2"),
    NEED(F16C, "f16c"), NEED(FMA, "fma"), NEED(AVXAES, "avx", "aes"),
    NEED(VPCLMULQDQ, "avx", "pclmulqdq"), NEED(AVX512F_KOP, "avx512f"),
    /* extensions the feature table has no entry for (the model cannot advertise them) */
    NEED(AVX512BW_KOP, NEVER), NEED(AVX512DQ_KOP, NEVER), NEED(GFNI, NEVER),
    NEED(AVX_GFNI, NEVER), NEED(AMD_INVLPGB, NEVER), NEED(AMX_BF16, NEVER), NEED(AMX_INT8, NEVER),
    NEED(AMX_TILE, NEVER), NEED(AVX_VNNI, NEVER), NEED(CET, NEVER), NEED(CLDEMOTE, NEVER),
    NEED(CLZERO, NEVER), NEED(ENQCMD, NEVER), NEED(FMA4, NEVER), NEED(HRESET, NEVER),
    NEED(KEYLOCKER, NEVER), NEED(KEYLOCKER_WIDE, NEVER), NEED(KNCE, NEVER),
    NEED(KNCJKBR, NEVER), NEED(KNCSTREAM, NEVER), NEED(KNCV, NEVER), NEED(KNC_MISC, NEVER),
    NEED(KNC_PF_HINT, NEVER), NEED(LWP, NEVER), NEED(MCOMMIT, NEVER), NEED(MONITORX, NEVER),
    NEED(MOVDIR, NEVER), NEED(PADLOCK_ACE, NEVER), NEED(PADLOCK_PHE, NEVER),
    NEED(PADLOCK_PMM, NEVER), NEED(PADLOCK_RNG, NEVER), NEED(PCONFIG, NEVER),
    NEED(PREFETCHWT1, NEVER), NEED(PT, NEVER), NEED(RDPRU, NEVER), NEED(SERIALIZE, NEVER),
    NEED(SGX_ENCLV, NEVER), NEED(SMX, NEVER), NEED(SNP, NEVER), NEED(TBM, NEVER),
    NEED(TDX, NEVER), NEED(TSX_LDTRK, NEVER), NEED(UINTR, NEVER), NEED(VAES, NEVER),
    NEED(VMFUNC, NEVER), NEED(XOP, NEVER),
};
#undef NEED

/* Instructions of a base ISA set that have a CPUID feature of their own. */
static const struct {
    ZydisMnemonic mn;
    const char *feature;
} need_override[] = {
    { ZYDIS_MNEMONIC_CMPXCHG8B, "cx8" },  { ZYDIS_MNEMONIC_RDTSC, "tsc" },
    { ZYDIS_MNEMONIC_RDMSR, "msr" },      { ZYDIS_MNEMONIC_WRMSR, "msr" },
    { ZYDIS_MNEMONIC_SYSENTER, "sep" },   { ZYDIS_MNEMONIC_SYSEXIT, "sep" },
    { ZYDIS_MNEMONIC_FCOMI, "fpu" },      { ZYDIS_MNEMONIC_FCOMIP, "fpu" },
    { ZYDIS_MNEMONIC_FUCOMI, "fpu" },     { ZYDIS_MNEMONIC_FUCOMIP, "fpu" },
    { ZYDIS_MNEMONIC_PREFETCHW, "3dnowprefetch" },
};

/* Advertised instructions nestor leaves out on purpose (README, "What the guest sees").
 * Each is #UD, reported once on stderr. */
static const struct {
    ZydisMnemonic mn;
    const char *why;
} deliberate[] = {
    /* owned elsewhere: the PMU work implements RDPMC's counters, MONITOR/MWAIT are
     * registered (as #UD while the model does not advertise "monitor") */
    { ZYDIS_MNEMONIC_INVALID, NULL },
};

/* Known gaps still to implement (TODO: this list must become empty). */
static const ZydisMnemonic known_gaps[] = {
    ZYDIS_MNEMONIC_INVALID,
};

/* ---- enumeration ---- */
struct seen {
    bool found, no_handler;
    u8 len, mode; /* modes[] index */
    u8 bytes[15]; /* the first encoding found */
};
static struct seen seen[ZYDIS_MNEMONIC_MAX_VALUE + 1][ZYDIS_ISA_SET_MAX_VALUE + 1];
static unsigned decoded;

static const struct {
    const char *name;
    ZydisMachineMode mode;
    ZydisStackWidth width;
} modes[] = {
    { "real", ZYDIS_MACHINE_MODE_REAL_16, ZYDIS_STACK_WIDTH_16 },
    { "16-bit", ZYDIS_MACHINE_MODE_LEGACY_16, ZYDIS_STACK_WIDTH_16 },
    { "32-bit", ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32 },
    { "compat", ZYDIS_MACHINE_MODE_LONG_COMPAT_32, ZYDIS_STACK_WIDTH_32 },
    { "64-bit", ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64 },
};

static void record(struct seen *s, const ZydisDecodedInstruction *d, const u8 *buf,
                   unsigned mode)
{
    s->len = d->length;
    memcpy(s->bytes, buf, d->length);
    s->mode = (u8)mode;
}

static void try_decode(ZydisDecoder *dec, unsigned mode, const u8 *b, unsigned n)
{
    u8 buf[24] = { 0 }; /* SIB, displacement and immediate bytes: zero */
    memcpy(buf, b, n);
    ZydisDecodedInstruction d;
    if (ZYAN_FAILED(ZydisDecoderDecodeInstruction(dec, NULL, buf, 15, &d)))
        return;
    decoded++;
    struct seen *s = &seen[d.mnemonic][d.meta.isa_set];
    /* the handler may depend on the form (operand count): keep a form without one */
    bool none = !exec_handler(&d);
    if (!s->found || (none && !s->no_handler))
        record(s, &d, buf, mode);
    s->found = true;
    s->no_handler |= none;
}

static void enumerate(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    static const u8 legacy[][2] = { { 0 }, { 0x66 }, { 0x67 }, { 0xf2 }, { 0xf3 }, { 0x66, 0x67 } };
    static const u8 legacy_n[] = { 0, 1, 1, 1, 1, 2 };
    for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
        ZydisDecoder dec;
        exec_decoder_init(&dec, modes[m].mode, modes[m].width);
        bool long64 = modes[m].mode == ZYDIS_MACHINE_MODE_LONG_64;
        for (int rexw = 0; rexw <= (long64 ? 1 : 0); rexw++)
            for (size_t p = 0; p < ARRAY_SIZE(legacy); p++)
                for (int map = 0; map < 4; map++)
                    for (int op = 0; op < 256; op++)
                        for (int modrm = 0; modrm < 256; modrm++) {
                            u8 b[8];
                            unsigned n = legacy_n[p];
                            memcpy(b, legacy[p], n);
                            if (rexw)
                                b[n++] = 0x48;
                            if (map)
                                b[n++] = 0x0f;
                            if (map == 2)
                                b[n++] = 0x38;
                            if (map == 3)
                                b[n++] = 0x3a;
                            b[n++] = (u8)op;
                            b[n++] = (u8)modrm;
                            try_decode(&dec, (unsigned)m, b, n);
                        }
        /* 3DNow!: 0F 0F ModRM [SIB/disp] suffix */
        for (int suffix = 0; suffix < 256; suffix++) {
            u8 r[] = { 0x0f, 0x0f, 0xc1, (u8)suffix };
            u8 mem[] = { 0x0f, 0x0f, 0x07, (u8)suffix };
            try_decode(&dec, (unsigned)m, r, sizeof r);
            if (!long64 && modes[m].mode != ZYDIS_MACHINE_MODE_LEGACY_32 &&
                modes[m].mode != ZYDIS_MACHINE_MODE_LONG_COMPAT_32)
                try_decode(&dec, (unsigned)m, mem, sizeof mem); /* [bx]: no displacement */
        }
        /* VEX (C4): maps 1-3, W, L, pp, every opcode; register and memory ModRM forms */
        if (modes[m].mode == ZYDIS_MACHINE_MODE_REAL_16)
            continue;
        for (int map = 1; map <= 3; map++)
            for (int w = 0; w < 2; w++)
                for (int l = 0; l < 2; l++)
                    for (int pp = 0; pp < 4; pp++)
                        for (int op = 0; op < 256; op++)
                            for (int reg = 0; reg < 8; reg++)
                                for (int mod = 0; mod < 4; mod += 3) {
                                    u8 b[] = { 0xc4, (u8)(0xe0 | map),
                                               (u8)(w << 7 | 0x70 | l << 2 | pp), (u8)op,
                                               (u8)(mod << 6 | reg << 3 | 1) };
                                    try_decode(&dec, (unsigned)m, b, sizeof b);
                                }
    }
}

static bool listed(ZydisMnemonic mn)
{
    for (size_t k = 0; k < ARRAY_SIZE(deliberate); k++)
        if (deliberate[k].mn == mn && mn != ZYDIS_MNEMONIC_INVALID)
            return true;
    for (size_t k = 0; k < ARRAY_SIZE(known_gaps); k++)
        if (known_gaps[k] == mn && mn != ZYDIS_MNEMONIC_INVALID)
            return true;
    return false;
}

static int table_index(const char *name)
{
    int n;
    const struct cpuid_feature *f = cpuid_feature_table(&n);
    for (int k = 0; k < n; k++)
        if (!strcmp(f[k].name, name))
            return k;
    return -1;
}

/* Does the model advertise what the instruction needs? */
static bool advertised(const struct cpuid_model *m, ZydisMnemonic mn, ZydisISASet set)
{
    const struct isa_need *need = &isa_need[set];
    const char *feature[2] = { need->feature[0], need->feature[1] };
    for (size_t k = 0; k < ARRAY_SIZE(need_override); k++)
        if (need_override[k].mn == mn) {
            feature[0] = need_override[k].feature;
            feature[1] = NULL;
        }
    for (int k = 0; k < 2 && feature[k]; k++) {
        if (!strcmp(feature[k], NEVER))
            return false;
        if (!strcmp(feature[k], ALWAYS))
            continue;
        int idx = table_index(feature[k]);
        cr_assert_geq(idx, 0, "the audit names feature '%s', which the CPUID table lacks",
                      feature[k]);
        if (!m->enabled[idx])
            return false;
    }
    return true;
}

static void format_bytes(const struct seen *s, char *out, size_t len)
{
    size_t o = 0;
    for (unsigned k = 0; k < s->len && o + 4 < len; k++)
        o += (size_t)snprintf(out + o, len - o, "%s%02x", k ? " " : "", s->bytes[k]);
}

static void audit_model(const char *spec)
{
    struct cpuid_model m;
    char err[256];
    cr_assert_eq(cpuid_model_parse(&m, spec, err, sizeof err), 0, "%s: %s", spec, err);
    enumerate();
    cr_assert_gt(decoded, 100000u, "the enumeration decoded too little");
    unsigned missing = 0, required = 0;
    for (int mn = 1; mn <= ZYDIS_MNEMONIC_MAX_VALUE; mn++)
        for (int set = 0; set <= ZYDIS_ISA_SET_MAX_VALUE; set++) {
            const struct seen *s = &seen[mn][set];
            if (!s->found)
                continue;
            char text[64];
            format_bytes(s, text, sizeof text);
            cr_expect(isa_need[set].feature[0] != NULL,
                      "ISA set %s (%s, %s: %s) is not classified: add it to isa_need[]",
                      ZydisISASetGetString((ZydisISASet)set),
                      ZydisMnemonicGetString((ZydisMnemonic)mn), modes[s->mode].name, text);
            if (!isa_need[set].feature[0] || !advertised(&m, (ZydisMnemonic)mn, (ZydisISASet)set))
                continue;
            required++;
            if (s->no_handler && !listed((ZydisMnemonic)mn)) {
                missing++;
                cr_expect(false, "%s: %s (%s, %s mode: %s) has no handler", spec,
                          ZydisMnemonicGetString((ZydisMnemonic)mn),
                          ZydisISASetGetString((ZydisISASet)set), modes[s->mode].name, text);
            }
        }
    cr_expect_gt(required, 400u, "%s: too few advertised instructions found", spec);
    cr_expect_eq(missing, 0u, "%s: %u advertised instructions without a handler", spec, missing);
}

Test(opcode_audit, max_intel, .timeout = 120) { audit_model("max"); }
Test(opcode_audit, max_amd, .timeout = 120) { audit_model("max,vendor=AuthenticAMD"); }
Test(opcode_audit, qemu64_intel, .timeout = 120) { audit_model("qemu64"); }
Test(opcode_audit, qemu64_amd, .timeout = 120) { audit_model("qemu64,vendor=AuthenticAMD"); }

/* The audit sees what it is meant to: SALC exists outside 64-bit mode only, and the
 * hint-NOP space decodes as NOP (not as MPX/CET/CLDEMOTE), as on a CPU without them. */
Test(opcode_audit, enumeration_sanity)
{
    enumerate();
    bool salc_legacy = false, salc_64 = false;
    for (int set = 0; set <= ZYDIS_ISA_SET_MAX_VALUE; set++)
        if (seen[ZYDIS_MNEMONIC_SALC][set].found) {
            salc_legacy = true;
            salc_64 |= modes[seen[ZYDIS_MNEMONIC_SALC][set].mode].mode == ZYDIS_MACHINE_MODE_LONG_64;
        }
    cr_expect(salc_legacy, "SALC was not enumerated");
    cr_expect_not(salc_64, "SALC decoded in 64-bit mode");
    static const ZydisMnemonic nop_space[] = { ZYDIS_MNEMONIC_BNDMOV, ZYDIS_MNEMONIC_BNDCL,
                                               ZYDIS_MNEMONIC_ENDBR64, ZYDIS_MNEMONIC_RDSSPD,
                                               ZYDIS_MNEMONIC_CLDEMOTE };
    for (size_t k = 0; k < ARRAY_SIZE(nop_space); k++)
        for (int set = 0; set <= ZYDIS_ISA_SET_MAX_VALUE; set++)
            cr_expect_not(seen[nop_space[k]][set].found, "%s decoded",
                          ZydisMnemonicGetString(nop_space[k]));
}

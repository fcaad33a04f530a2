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
 * set (a newer Zydis) that the table below does not classify fails too.
 *
 * Then every distinct form found (mnemonic, ISA set, prefixes, operand kinds and sizes)
 * runs once on an engine vCPU in the mode it was decoded in: an advertised
 * form must neither end in the engine's "not implemented" report (a handler that lacks
 * the form) nor raise #UD (unless the architecture says so in that state: UD0-2, RSM,
 * the vendors' SYSCALL/SYSENTER rules), and a form whose feature the model does not
 * advertise must raise #UD (a handler that forgets its feature check), hints aside. */
#include <criterion/criterion.h>
#include <string.h>

#include "cpu/cpuid.h"
#include "cpu/exec.h"
#include "cpu/sgx/sgx.h"
#include "machine/mem.h"

/* What an ISA set needs: up to two features of the CPUID table, all of which must be
 * on; ALWAYS: every x86-64 processor has it; NEVER: the model has no way to advertise
 * it (no entry in the feature table), so it is #UD on nestor (or, for a hint, the NOP
 * a CPU without it executes). */
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

/* There is no list of exceptions: nestor implements every instruction its models
 * advertise. One left out on purpose would be named here, with the reason, and in the
 * README ("What the guest sees"). */

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

/* Distinct forms, for the execution check: the first encoding of each. */
struct form {
    u64 key[3];
    u16 mnemonic;
    u8 set, mode, len;
    bool has_handler;
    u8 bytes[15];
};
#define FORMS_MAX (1u << 16)
static struct form forms[FORMS_MAX];
static unsigned nforms;

static void form_key(const ZydisDecodedInstruction *d, const ZydisDecodedOperand *op,
                     unsigned mode, u64 key[3])
{
    u64 prefixes = (u64)((d->attributes & ZYDIS_ATTRIB_HAS_REP) != 0) |
                   (u64)((d->attributes & ZYDIS_ATTRIB_HAS_REPE) != 0) << 1 |
                   (u64)((d->attributes & ZYDIS_ATTRIB_HAS_REPNE) != 0) << 2 |
                   (u64)((d->attributes & ZYDIS_ATTRIB_HAS_OPERANDSIZE) != 0) << 3;
    key[0] = (u64)d->mnemonic | (u64)d->meta.isa_set << 16 | (u64)mode << 24 |
             (u64)d->operand_width << 32 | (u64)d->address_width << 44 | prefixes << 56;
    key[1] = key[2] = 0;
    for (unsigned k = 0; k < d->operand_count_visible && k < 4; k++) {
        u64 shape = (u64)op[k].type | (u64)op[k].size << 4;
        if (op[k].type == ZYDIS_OPERAND_TYPE_REGISTER)
            shape |= (u64)ZydisRegisterGetClass(op[k].reg.value) << 20;
        if (op[k].type == ZYDIS_OPERAND_TYPE_MEMORY)
            shape |= (u64)op[k].mem.type << 20;
        key[1 + k / 2] |= shape << (32 * (k % 2));
    }
}

static void add_form(const ZydisDecodedInstruction *d, const ZydisDecodedOperand *op,
                     const u8 *buf, unsigned mode)
{
    u64 key[3];
    form_key(d, op, mode, key);
    u64 h = (key[0] * 0x9e3779b97f4a7c15ull) ^ (key[1] * 0xc2b2ae3d27d4eb4full) ^
            (key[2] * 0x165667b19e3779f9ull);
    for (unsigned probe = 0; probe < FORMS_MAX; probe++) {
        struct form *f = &forms[(h + probe) & (FORMS_MAX - 1)];
        if (f->len == 0) {
            cr_assert_lt(nforms, FORMS_MAX / 2, "too many forms");
            memcpy(f->key, key, sizeof key);
            f->mnemonic = (u16)d->mnemonic;
            f->set = (u8)d->meta.isa_set;
            f->mode = (u8)mode;
            f->len = d->length;
            f->has_handler = exec_handler(d) != NULL;
            memcpy(f->bytes, buf, d->length);
            nforms++;
            return;
        }
        if (!memcmp(f->key, key, sizeof key))
            return;
    }
}

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
    ZydisDecodedOperand op[ZYDIS_MAX_OPERAND_COUNT];
    if (ZYAN_FAILED(ZydisDecoderDecodeFull(dec, buf, 15, &d, op)))
        return;
    decoded++;
    add_form(&d, op, buf, mode);
    struct seen *s = &seen[d.mnemonic][d.meta.isa_set];
    /* the handler may depend on the form (operand count): keep a form without one */
    bool none = !exec_handler(&d);
    if (!s->found || (none && !s->no_handler))
        record(s, &d, buf, mode);
    s->found = true;
    s->no_handler |= none;
}

/* Each test runs in a process of its own: one enumeration, with one vendor's decoder
 * (AMD decodes 66h-prefixed rel32 branches in 64-bit mode as rel16). */
static void enumerate(enum cpuid_vendor vendor)
{
    static bool done;
    if (done)
        return;
    done = true;
    static const u8 legacy[][2] = { { 0 }, { 0x66 }, { 0x67 }, { 0xf2 }, { 0xf3 }, { 0x66, 0x67 } };
    static const u8 legacy_n[] = { 0, 1, 1, 1, 1, 2 };
    for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
        ZydisDecoder dec;
        exec_decoder_init(&dec, modes[m].mode, modes[m].width, vendor);
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
    enumerate(m.vendor);
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
            if (s->no_handler) {
                missing++;
                cr_expect(false, "%s: %s (%s, %s mode: %s) has no handler", spec,
                          ZydisMnemonicGetString((ZydisMnemonic)mn),
                          ZydisISASetGetString((ZydisISASet)set), modes[s->mode].name, text);
            }
        }
    cr_expect_gt(required, 400u, "%s: too few advertised instructions found", spec);
    cr_expect_eq(missing, 0u, "%s: %u advertised instructions without a handler", spec, missing);
}

/* ---- the execution check ---- */
#define RAM (16 * MiB)
#define CODE 0x10000u
#define PML4 0x20000u
#define PDPT 0x21000u
#define PD 0x22000u
#define DATA 0x1000u /* every GPR: memory operands land in 0x1000-0xf000 */

static struct guest_mem mem;
static struct cpu cpu, *c = &cpu;
static int last_exc;
static bool unimplemented;

static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *opaque)
{
    (void)cp;
    (void)opaque;
    if (ev->kind == EV_EXCEPTION) {
        last_exc = ev->u.exc.vector;
        return INTERCEPT_STOP; /* do not deliver: the check looks at the vector */
    }
    if (ev->kind == EV_UNSUPPORTED && !ev->u.unsupported.stop)
        unimplemented = true;
    return INTERCEPT_DEFAULT;
}
static u64 now_ns(struct cpu *cp, void *opaque)
{
    (void)cp;
    (void)opaque;
    return 1000000;
}
static const struct cpu_ops ops = { .intercept = intercept, .now_ns = now_ns };

/* The state each form starts from: the mode, every feature's enable bit the model
 * allows (CR4.OSFXSR, OSXSAVE, FSGSBASE; XCR0 x87+SSE; EFER.SCE), x87/SSE usable. */
static void enter_mode(const struct cpuid_model *m, ZydisMachineMode mode)
{
    c->state = CPU_RUNNING;
    c->intr_shadow = 0;
    c->rflags = FL_FIXED1;
    for (int r = 0; r < 16; r++)
        c->gpr[r] = DATA;
    fpu_reset(c);
    c->fpu.mxcsr = 0x1f80;
    c->dr[7] = 0x400;
    c->gdtr = (struct dtr){ 0, 0 };
    c->idtr = (struct dtr){ 0, 0 };
    c->xcr0 = 1;
    u64 cr4 = CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_PCE;
    if (m->fast.has[CF_XSAVE]) {
        cr4 |= CR4_OSXSAVE;
        c->xcr0 = 3;
    }
    if (m->fast.has[CF_FSGSBASE])
        cr4 |= CR4_FSGSBASE;
    c->efer = m->fast.has[CF_SYSCALL] ? EFER_SCE : 0;
    bool wide = mode == ZYDIS_MACHINE_MODE_LEGACY_32 || mode == ZYDIS_MACHINE_MODE_LONG_COMPAT_32;
    if (mode == ZYDIS_MACHINE_MODE_LONG_64 || mode == ZYDIS_MACHINE_MODE_LONG_COMPAT_32) {
        cr_assert_eq(mem_write_u64(&mem, PML4, PDPT | 7), 0);
        cr_assert_eq(mem_write_u64(&mem, PDPT, PD | 7), 0);
        for (u64 k = 0; k < RAM >> 21; k++) /* 2M pages: qemu64 has no 1G pages */
            cr_assert_eq(mem_write_u64(&mem, PD + 8 * k, k << 21 | 0x83), 0);
        c->cr3 = PML4;
        c->cr4 = cr4 | CR4_PAE;
        c->efer |= EFER_LME | EFER_LMA | EFER_NXE;
        c->cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_MP;
        cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, wide ? 0xc09b : 0xa09b);
        c->rip = CODE;
    } else if (mode == ZYDIS_MACHINE_MODE_REAL_16) {
        c->cr0 = CR0_ET | CR0_NE | CR0_MP;
        c->cr4 = cr4;
        cpu_set_seg(c, SEG_CS, CODE >> 4, CODE, 0xffff, 0x9b);
        c->rip = 0;
    } else { /* protected mode, 32- or 16-bit code */
        c->cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_MP;
        c->cr4 = cr4;
        if (wide) {
            cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xc09b);
            c->rip = CODE;
        } else {
            cpu_set_seg(c, SEG_CS, 0x08, CODE, 0xffff, 0x9b);
            c->rip = 0;
        }
    }
    /* data and stack: flat; 16-bit code gets a 16-bit stack, as the decoder assumed */
    for (int s = SEG_ES; s <= SEG_GS; s++)
        if (s != SEG_CS) {
            if (mode == ZYDIS_MACHINE_MODE_REAL_16)
                cpu_set_seg(c, s, 0, 0, 0xffff, 0x93);
            else
                cpu_set_seg(c, s, 0x10, 0, 0xffffffff,
                            mode == ZYDIS_MACHINE_MODE_LEGACY_16 ? 0x8093 : 0xc093);
        }
    cpu_update_mode(c);
    mmu_update(c);
}

/* Forms whose feature check is not a #UD: without the feature they are other
 * instructions or hints, as on hardware. */
static bool runs_without_feature(ZydisMnemonic mn)
{
    switch (mn) {
    case ZYDIS_MNEMONIC_LZCNT:     /* BSR with an ignored F3 */
    case ZYDIS_MNEMONIC_TZCNT:     /* BSF with an ignored F3 */
    case ZYDIS_MNEMONIC_PREFETCHW:   /* 0F 0D /1, /2: prefetch hints, NOPs without */
    case ZYDIS_MNEMONIC_PREFETCHWT1: /* the feature (AMD's 0F 0D group is all hints) */
        return true;
    default:
        return false;
    }
}

/* Advertised instructions that still #UD in the state the check runs them in. */
static bool ud_when_advertised(const struct cpuid_model *m, const struct form *f)
{
    bool long64 = modes[f->mode].mode == ZYDIS_MACHINE_MODE_LONG_64;
    bool longmode = long64 || modes[f->mode].mode == ZYDIS_MACHINE_MODE_LONG_COMPAT_32;
    switch (f->mnemonic) {
    case ZYDIS_MNEMONIC_UD0: case ZYDIS_MNEMONIC_UD1: case ZYDIS_MNEMONIC_UD2:
        return true;
    case ZYDIS_MNEMONIC_RSM: /* outside SMM, which nestor does not have */
        return true;
    /* VMX instructions outside VMX operation (VMXON without CR4.VMXE, VMFUNC outside
     * non-root operation): the check never turns VMX on */
    case ZYDIS_MNEMONIC_VMXON: case ZYDIS_MNEMONIC_VMXOFF: case ZYDIS_MNEMONIC_VMCLEAR:
    case ZYDIS_MNEMONIC_VMPTRLD: case ZYDIS_MNEMONIC_VMPTRST: case ZYDIS_MNEMONIC_VMREAD:
    case ZYDIS_MNEMONIC_VMWRITE: case ZYDIS_MNEMONIC_VMLAUNCH: case ZYDIS_MNEMONIC_VMRESUME:
    case ZYDIS_MNEMONIC_INVEPT: case ZYDIS_MNEMONIC_INVVPID: case ZYDIS_MNEMONIC_VMFUNC:
    case ZYDIS_MNEMONIC_VMCALL: /* #UD outside VMX operation without a hypervisor interface */
        return m->vendor == VENDOR_INTEL;
    /* SVM instructions without EFER.SVME, which the check never sets; SKINIT needs a
     * CPUID bit of its own (8000_0001h:ECX[12]) that no model has */
    case ZYDIS_MNEMONIC_VMRUN: case ZYDIS_MNEMONIC_VMLOAD: case ZYDIS_MNEMONIC_VMSAVE:
    case ZYDIS_MNEMONIC_STGI: case ZYDIS_MNEMONIC_CLGI: case ZYDIS_MNEMONIC_INVLPGA:
    case ZYDIS_MNEMONIC_SKINIT:
    case ZYDIS_MNEMONIC_VMMCALL: /* #UD outside guest mode without a hypervisor interface */
        return m->vendor == VENDOR_AMD;
    /* SGX: ENCLS needs protected mode; ENCLU runs at CPL 3 only (the check runs at 0) */
    case ZYDIS_MNEMONIC_ENCLS:
        return modes[f->mode].mode == ZYDIS_MACHINE_MODE_REAL_16;
    case ZYDIS_MNEMONIC_ENCLU:
        return true;
    case ZYDIS_MNEMONIC_SYSCALL: case ZYDIS_MNEMONIC_SYSRET: /* Intel: 64-bit mode only */
        return m->vendor == VENDOR_INTEL && !long64;
    case ZYDIS_MNEMONIC_SYSENTER: case ZYDIS_MNEMONIC_SYSEXIT: /* AMD: not in long mode */
        return m->vendor == VENDOR_AMD && longmode;
    default:
        return false;
    }
}

static void run_forms(const char *spec)
{
    struct cpuid_model m;
    char err[256];
    cr_assert_eq(cpuid_model_parse(&m, spec, err, sizeof err), 0, "%s: %s", spec, err);
    enumerate(m.vendor);
    cr_assert_eq(mem_init(&mem, RAM), 0);
    cr_assert_eq(cpu_init(c, 0, &mem, &m, &ops, NULL), 0);
    /* a model with SGX comes with an EPC (a machine without one has no SGX) */
    struct sgx_epc *epc = NULL;
    if (cpuid_has(&m, "sgx")) {
        struct sgx_config sc = { .nsections = 1 };
        sc.section[0].base = 0x100000000ull;
        sc.section[0].size = 0x10000;
        cr_assert((epc = sgx_epc_create(&sc)) != NULL);
        cr_assert_eq(sgx_cpu_init(c, epc), 0);
    }
    unsigned ran = 0, bad = 0;
    for (unsigned k = 0; k < FORMS_MAX; k++) {
        const struct form *f = &forms[k];
        ZydisMachineMode mode = modes[f->mode].mode;
        if (!f->len || !f->has_handler || !isa_need[f->set].feature[0])
            continue;
        bool adv = advertised(&m, (ZydisMnemonic)f->mnemonic, (ZydisISASet)f->set);
        if (!adv && runs_without_feature((ZydisMnemonic)f->mnemonic))
            continue;
        u8 code[24] = { 0 };
        memcpy(code, f->bytes, f->len);
        cr_assert_eq(mem_write(&mem, CODE, code, sizeof code), 0);
        enter_mode(&m, mode);
        last_exc = -1;
        unimplemented = false;
        cpu_run(c, 1);
        ran++;
        char text[64];
        struct seen shown = { .len = f->len };
        memcpy(shown.bytes, f->bytes, f->len);
        format_bytes(&shown, text, sizeof text);
        if (adv && unimplemented) {
            bad++;
            cr_expect(false, "%s: %s (%s mode: %s) is advertised, but its handler lacks this form",
                      spec, ZydisMnemonicGetString((ZydisMnemonic)f->mnemonic),
                      modes[f->mode].name, text);
        } else if (adv && last_exc == EXC_UD && !ud_when_advertised(&m, f)) {
            bad++;
            cr_expect(false, "%s: %s (%s mode: %s) is advertised, but raised #UD", spec,
                      ZydisMnemonicGetString((ZydisMnemonic)f->mnemonic),
                      modes[f->mode].name, text);
        } else if (!adv && last_exc != EXC_UD) {
            bad++;
            cr_expect(false, "%s: %s (%s, %s mode: %s) is not advertised, but ran (vector %d)",
                      spec, ZydisMnemonicGetString((ZydisMnemonic)f->mnemonic),
                      ZydisISASetGetString((ZydisISASet)f->set), modes[f->mode].name, text,
                      last_exc);
        }
    }
    cpu_destroy(c);
    sgx_epc_destroy(epc);
    mem_destroy(&mem);
    cr_expect_gt(ran, 1000u, "%s: too few forms ran", spec);
    cr_expect_eq(bad, 0u, "%s: %u forms misbehave", spec, bad);
}

static void audit(const char *spec)
{
    audit_model(spec);
    run_forms(spec);
}

Test(opcode_audit, max_intel, .timeout = 300) { audit("max"); }
Test(opcode_audit, max_amd, .timeout = 300) { audit("max,vendor=AuthenticAMD"); }
Test(opcode_audit, qemu64_intel, .timeout = 300) { audit("qemu64"); }
Test(opcode_audit, qemu64_amd, .timeout = 300) { audit("qemu64,vendor=AuthenticAMD"); }

/* The audit sees what it is meant to: SALC exists outside 64-bit mode only, and the
 * hint-NOP space decodes as NOP (not as MPX/CET/CLDEMOTE), as on a CPU without them. */
Test(opcode_audit, enumeration_sanity)
{
    enumerate(VENDOR_INTEL);
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

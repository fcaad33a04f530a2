/* -cpu ...,hv-*: Hyper-V's identification and synthetic MSRs as the TLFS describes them and
 * KVM with QEMU's hv-* properties shows them. CPUID 40000000h-40000005h (the maximum leaf,
 * "Microsoft Hv" or hv-vendor-id's signature, "Hv#1", version 10.0.14393, the feature,
 * privilege and recommendation bits of exactly the enlightenments on, the spinlock
 * retries, the limits); every synthetic MSR #GPs unless its enlightenment is on (guest OS
 * id, hypercall and VP assist page always there); the hypercall page (ignored until the
 * guest OS id is set, VMCALL or VMMCALL + RET, disabled by a zero id, the lock bit, a page
 * that is not RAM); VP_INDEX per vCPU, read-only; TIME_REF_COUNT at 10 MHz against the
 * TSC; the reference TSC page (sequence, scale and offset agree with TIME_REF_COUNT,
 * monotonic, follows a TSC write); TSC/APIC frequency MSRs against CPUID 15h and the
 * LAPIC timer; VP_RUNTIME; the EOI/ICR/TPR MSRs in xAPIC and x2APIC mode; the VP assist
 * page (only its first dword cleared) and EOI avoidance through it; SynIC MSR reset
 * values and rules; crash, reenlightenment and TSC emulation MSRs. Two runs end the VM
 * from the guest: a crash report (status 4) and a reset (status 0).
 * QEMU TCG has no Hyper-V interface: the test skips there.
 * guest: cpu=max,hv-passthrough smp=2 name=hv_basic */
/* guest: cpu=max,vendor=AuthenticAMD,hv-passthrough name=hv_basic-amd */
/* guest: cpu=max,hv-vpindex,hv_time,hv_spinlocks=0x1fff name=hv_basic-few */
/* guest: cpu=max,hv-relaxed,hv-vapic,hv-time,hv-vpindex,hv-runtime,hv-crash,hv-reset,hv-frequencies,hv-reenlightenment,hv-tlbflush,hv-tlbflush-ext,hv-ipi,hv-synic,hv-stimer,hv-stimer-direct,hv-xmm-input,hv-spinlocks=0x2fff,hv-vendor-id=NestorHV name=hv_basic-vendor */
/* guest: cpu=max name=hv_basic-off */
/* guest: cpu=max,hv-crash append=mode=crash expect=exit-4 name=hv_basic-crash */
/* guest: cpu=max,hv-reset append=mode=reset expect=exit-0 name=hv_basic-reset */
#include "rt.h"
#include "hyperv.h"

/* MSRs (TLFS) */
#define GUEST_OS_ID 0x40000000
#define HYPERCALL 0x40000001
#define VP_INDEX 0x40000002
#define RESET 0x40000003
#define VP_RUNTIME 0x40000010
#define TIME_REF_COUNT 0x40000020
#define REFERENCE_TSC 0x40000021
#define TSC_FREQUENCY 0x40000022
#define APIC_FREQUENCY 0x40000023
#define HV_EOI 0x40000070
#define HV_ICR 0x40000071
#define HV_TPR 0x40000072
#define VP_ASSIST_PAGE 0x40000073
#define SCONTROL 0x40000080
#define SVERSION 0x40000081
#define SIEFP 0x40000082
#define SIMP 0x40000083
#define EOM 0x40000084
#define SINT0 0x40000090
#define STIMER0_CONFIG 0x400000b0
#define STIMER0_COUNT 0x400000b1
#define CRASH_P0 0x40000100
#define CRASH_CTL 0x40000105
#define REENLIGHTENMENT_CONTROL 0x40000106
#define TSC_EMULATION_CONTROL 0x40000107
#define TSC_EMULATION_STATUS 0x40000108
#define MSR_TSC 0x10

/* the enlightenments as the test reads them from cpu= */
enum { RELAXED, VAPIC, TIME, CRASH, RST, VPINDEX, RUNTIME, SYNIC, STIMER, FREQ, REENL,
       TLBFLUSH, TLBFLUSH_EXT, IPI, STIMER_DIRECT, XMM_INPUT, EVMCS, NFEAT };
static const char *const feat_names[NFEAT] = {
    "relaxed", "vapic", "time", "crash", "reset", "vpindex", "runtime", "synic", "stimer",
    "frequencies", "reenlightenment", "tlbflush", "tlbflush-ext", "ipi", "stimer-direct",
    "xmm-input", "evmcs",
};
/* what each shows: 40000003h EAX, EBX, EDX, 40000004h EAX (the fact sheet's table, QEMU) */
static const u32 feat_bits[NFEAT][4] = {
    [RELAXED] = { 0, 0, 0, BIT(5) },
    [VAPIC] = { BIT(4), 0, 0, BIT(3) },
    [TIME] = { BIT(1) | BIT(9), 0, 0, 0 },
    [CRASH] = { 0, 0, BIT(10), 0 },
    [RST] = { BIT(7), 0, 0, 0 },
    [VPINDEX] = { BIT(6), 0, 0, 0 },
    [RUNTIME] = { BIT(0), 0, 0, 0 },
    [SYNIC] = { BIT(2), BIT(4) | BIT(5), 0, 0 },
    [STIMER] = { BIT(3), 0, 0, 0 },
    [FREQ] = { BIT(11), 0, BIT(8), 0 },
    [REENL] = { BIT(13), 0, 0, 0 },
    [TLBFLUSH] = { 0, 0, 0, BIT(2) | BIT(11) },
    [TLBFLUSH_EXT] = { 0, 0, BIT(14), 0 },
    [IPI] = { 0, 0, 0, BIT(10) | BIT(11) },
    [STIMER_DIRECT] = { 0, 0, BIT(19), 0 },
    [XMM_INPUT] = { 0, 0, BIT(4), 0 },
    [EVMCS] = { 0, 0, 0, BIT(14) },
};

static u32 feats;        /* BIT(feature) from the cpu= string */
static bool any_hv;      /* some hv-* property */
static u32 want_spin = 0xffffffffu;
static char want_vendor[13] = "Microsoft Hv";
static bool amd;

static bool has(int f) { return (feats >> f) & 1; }

static u32 parse_num(const char *s)
{
    u32 v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (s += 2; *s && *s != ','; s++)
            v = v * 16 + (u32)(*s <= '9' ? *s - '0' : (*s | 0x20) - 'a' + 10);
        return v;
    }
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (u32)(*s - '0');
    return v;
}

static void parse_spec(const char *spec)
{
    const char *p = spec;
    while (*p) {
        char item[64];
        size_t n = 0;
        while (*p && *p != ',' && n < sizeof(item) - 1)
            item[n++] = *p++;
        item[n] = 0;
        if (*p == ',')
            p++;
        if (strncmp(item, "hv-", 3) && strncmp(item, "hv_", 3)) {
            if (!strcmp(item, "vendor=AuthenticAMD"))
                amd = true;
            continue;
        }
        any_hv = true;
        char *name = item + 3, *eq = NULL;
        for (char *q = name; *q; q++) {
            if (*q == '=') {
                eq = q;
                break;
            }
            if (*q == '_')
                *q = '-';
        }
        if (eq)
            *eq = 0;
        if (!strcmp(name, "passthrough")) {
            feats |= BIT(NFEAT) - 1; /* the enlightened VMCS only with VMX: see below */
        } else if (!strcmp(name, "spinlocks")) {
            want_spin = parse_num(eq + 1);
        } else if (!strcmp(name, "vendor-id")) {
            memset(want_vendor, 0, sizeof(want_vendor));
            memcpy(want_vendor, eq + 1, strlen(eq + 1));
        } else {
            for (int f = 0; f < NFEAT; f++)
                if (!strcmp(name, feat_names[f]))
                    feats |= (u32)BIT(f);
        }
    }
}

/* ---------------------------------------------------------------- CPUID */
static void test_cpuid(void)
{
    TEST_ASSERT(cpu_has(1, 0, 2, 31), "CPUID.1:ECX.hypervisor");
    struct cpuid_regs r = cpuid(0x40000000);
    TEST_EQ(r.a, has(EVMCS) ? 0x4000000a : 0x40000005,
            "40000000h: the highest leaf 40000005h (4000000Ah with the enlightened VMCS)");
    char sig[13] = { 0 };
    memcpy(sig, &r.b, 4), memcpy(sig + 4, &r.c, 4), memcpy(sig + 8, &r.d, 4);
    TEST_ASSERT(!memcmp(sig, want_vendor, 12), "40000000h: signature '%s', want '%s'", sig, want_vendor);
    r = cpuid(0x40000001);
    TEST_EQ(r.a, 0x31237648, "40000001h: 'Hv#1'");
    TEST_EQ(r.b | r.c | r.d, 0, "40000001h: EBX-EDX zero");
    r = cpuid(0x40000002);
    TEST_EQ(r.a, 14393, "40000002h: build 14393");
    TEST_EQ(r.b, 0x000a0000, "40000002h: version 10.0");
    TEST_EQ(r.c | r.d, 0, "40000002h: service pack, branch, number 0");
    u32 want[4] = { BIT(5), 0, BIT(3), 0 }; /* HYPERCALL; CPU dynamic partitioning */
    for (int f = 0; f < NFEAT; f++)
        if (has(f))
            for (int k = 0; k < 4; k++)
                want[k] |= feat_bits[f][k];
    r = cpuid(0x40000003);
    TEST_EQ(r.a, want[0], "40000003h EAX: the privileges of exactly the enlightenments on");
    TEST_EQ(r.b, want[1], "40000003h EBX");
    TEST_EQ(r.c, 0, "40000003h ECX");
    TEST_EQ(r.d, want[2], "40000003h EDX: the features of exactly the enlightenments on");
    r = cpuid(0x40000004);
    TEST_EQ(r.a, want[3], "40000004h EAX: the recommendations");
    TEST_EQ(r.b, want_spin, "40000004h EBX: the spinlock retries");
    TEST_EQ(r.c | r.d, 0, "40000004h ECX, EDX");
    r = cpuid(0x40000005);
    TEST_EQ(r.a, 0xffffffffu, "40000005h EAX: no limit on virtual processors");
    TEST_EQ(r.b, 64, "40000005h EBX: 64 logical processors");
    TEST_EQ(r.c | r.d, 0, "40000005h ECX, EDX");
    for (u32 leaf = 0x40000006; leaf <= 0x40000009; leaf++) {
        r = cpuid(leaf);
        TEST_EQ(r.a | r.b | r.c | r.d, 0, "40000006h-40000009h: zero");
    }
    r = cpuid(0x4000000a);
    TEST_EQ(r.a, has(EVMCS) ? 0x0101u : 0, "4000000Ah EAX: enlightened VMCS versions 1 to 1");
    TEST_EQ(r.b | r.c | r.d, 0, "4000000Ah EBX-EDX");
}

/* ---------------------------------------------------------------- MSR gating */
static const struct { u32 msr; int feat; const char *name; } msr_table[] = {
    { GUEST_OS_ID, -1, "GUEST_OS_ID" }, { HYPERCALL, -1, "HYPERCALL" },
    { VP_ASSIST_PAGE, -1, "VP_ASSIST_PAGE" }, { VP_INDEX, VPINDEX, "VP_INDEX" },
    { RESET, RST, "RESET" }, { VP_RUNTIME, RUNTIME, "VP_RUNTIME" },
    { TIME_REF_COUNT, TIME, "TIME_REF_COUNT" }, { REFERENCE_TSC, TIME, "REFERENCE_TSC" },
    { TSC_FREQUENCY, FREQ, "TSC_FREQUENCY" }, { APIC_FREQUENCY, FREQ, "APIC_FREQUENCY" },
    { HV_ICR, VAPIC, "ICR" }, { HV_TPR, VAPIC, "TPR" },
    { SCONTROL, SYNIC, "SCONTROL" }, { SVERSION, SYNIC, "SVERSION" }, { SIEFP, SYNIC, "SIEFP" },
    { SIMP, SYNIC, "SIMP" }, { EOM, SYNIC, "EOM" }, { SINT0, SYNIC, "SINT0" },
    { SINT0 + 15, SYNIC, "SINT15" }, { STIMER0_CONFIG, STIMER, "STIMER0_CONFIG" },
    { STIMER0_CONFIG + 7, STIMER, "STIMER3_COUNT" }, { CRASH_P0, CRASH, "CRASH_P0" },
    { CRASH_P0 + 4, CRASH, "CRASH_P4" }, { CRASH_CTL, CRASH, "CRASH_CTL" },
    { REENLIGHTENMENT_CONTROL, REENL, "REENLIGHTENMENT_CONTROL" },
    { TSC_EMULATION_CONTROL, REENL, "TSC_EMULATION_CONTROL" },
    { TSC_EMULATION_STATUS, REENL, "TSC_EMULATION_STATUS" },
    /* never: the debugger's (hv-syndbg is not on), GUEST_IDLE, unassigned numbers */
    { 0x400000f1, -2, "SYNDBG_CONTROL" }, { 0x400000ff, -2, "SYNDBG_OPTIONS" },
    { 0x400000f0, -2, "GUEST_IDLE" }, { 0x40000004, -2, "40000004h" },
    { 0x40000190, -2, "40000190h" }, { 0x400001ff, -2, "400001FFh" },
};

static void test_msr_gating(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(msr_table); i++) {
        int f = msr_table[i].feat;
        bool on = any_hv && (f == -1 || (f >= 0 && has(f)));
        u64 v;
        int vec = rdmsr_safe(msr_table[i].msr, &v);
        char what[96];
        snprintf(what, sizeof(what), "RDMSR %s: %s", msr_table[i].name, on ? "no fault" : "#GP");
        TEST_EQ(vec, on ? NO_EXCEPTION : GP_VECTOR, what);
    }
    u64 v;
    if (any_hv)
        TEST_EQ(rdmsr_safe(HV_EOI, &v), GP_VECTOR, "EOI is write-only: a read #GPs");
    else
        TEST_EQ(wrmsr_safe(HV_EOI, 0), GP_VECTOR, "EOI without Hyper-V: #GP");
}

/* ---------------------------------------------------------------- hypercall page */
static u8 hc_page[4096] ALIGNED(4096);
static u8 hc_page2[4096] ALIGNED(4096);

static u64 hcall_page(u64 ctl, u64 in, u64 out) { return hv_hypercall_via(hc_page, ctl, in, out); }
static u64 hcall_raw(u64 ctl, u64 in, u64 out) { return hv_hypercall_raw(amd, ctl, in, out); }

#define NOT_RAM 0x40000000ull /* 1 GiB: beyond the 128 MiB of RAM */
#define OS_ID 0x8100000000050a00ull

static void test_hypercall_msr(void)
{
    memset(hc_page, 0xcc, sizeof(hc_page));
    memset(hc_page2, 0xcc, sizeof(hc_page2));
    TEST_EQ(rdmsr(GUEST_OS_ID), 0, "GUEST_OS_ID starts at 0");
    TEST_EQ(rdmsr(HYPERCALL), 0, "HYPERCALL starts at 0");
    TEST_EQ(wrmsr_safe(HYPERCALL, (u64)hc_page | 1), NO_EXCEPTION, "HYPERCALL with no guest OS id: no #GP");
    TEST_EQ(rdmsr(HYPERCALL), 0, "... the write is ignored");
    TEST_EQ(hc_page[0], 0xcc, "... and the page is not written");
    wrmsr(GUEST_OS_ID, OS_ID);
    TEST_EQ(rdmsr(GUEST_OS_ID), OS_ID, "GUEST_OS_ID reads back");
    TEST_EQ(wrmsr_safe(HYPERCALL, NOT_RAM | 1), GP_VECTOR, "a hypercall page that is not RAM: #GP");
    TEST_EQ(rdmsr(HYPERCALL), 0, "... and HYPERCALL unchanged");
    wrmsr(HYPERCALL, (u64)hc_page | 1);
    TEST_EQ(rdmsr(HYPERCALL), (u64)hc_page | 1, "HYPERCALL reads back");
    u8 want[4] = { 0x0f, 0x01, amd ? 0xd9 : 0xc1, 0xc3 };
    TEST_ASSERT(!memcmp(hc_page, want, 4), "the page begins %s; RET (%02x %02x %02x %02x)",
                amd ? "VMMCALL" : "VMCALL", hc_page[0], hc_page[1], hc_page[2], hc_page[3]);
    TEST_EQ(hcall_page(0x0008, 0, 0), 0, "HvNotifyLongSpinWait through the page: success");
    TEST_EQ(hcall_raw(0x0008, 0, 0), 0, "... and by a raw hypercall instruction");
    TEST_EQ(hcall_raw(0x0001, 0, 0), 2, "an unknown code: HV_STATUS_INVALID_HYPERCALL_CODE");
    wrmsr(GUEST_OS_ID, 0);
    TEST_EQ(rdmsr(HYPERCALL), (u64)hc_page, "a zero guest OS id clears HYPERCALL's enable bit");
    wrmsr(GUEST_OS_ID, OS_ID);
    wrmsr(HYPERCALL, (u64)hc_page | 1);
    wrmsr(HYPERCALL, (u64)hc_page | 3);
    TEST_EQ(rdmsr(HYPERCALL), (u64)hc_page | 3, "HYPERCALL with the locked bit");
    wrmsr(HYPERCALL, 0);
    wrmsr(HYPERCALL, (u64)hc_page2 | 1);
    TEST_EQ(rdmsr(HYPERCALL), (u64)hc_page | 3, "locked: later writes are ignored");
    TEST_EQ(hc_page2[0], 0xcc, "... no page written elsewhere");
    TEST_EQ(hcall_page(0x0008, 0, 0), 0, "the locked page still calls");
}

/* ---------------------------------------------------------------- time */
static u64 tsc_hz(void)
{
    if (has(FREQ))
        return rdmsr(TSC_FREQUENCY);
    return tsc_per_us() * 1000000;
}

struct tsc_page {
    volatile u32 seq, rsvd;
    volatile u64 scale;
    volatile s64 offset;
};
static u8 tsc_pg[4096] ALIGNED(4096);
static ulong read_cr8(void) { ulong v; asm volatile("mov %%cr8, %0" : "=r"(v)); return v; }

static bool page_time(u64 *t)
{
    struct tsc_page *p = (void *)tsc_pg;
    u32 s;
    u64 scale, tsc;
    s64 off;
    do {
        s = p->seq;
        asm volatile("" ::: "memory");
        if (!s)
            return false;
        scale = p->scale;
        off = p->offset;
        tsc = rdtsc();
        asm volatile("" ::: "memory");
    } while (p->seq != s);
    *t = (u64)(((unsigned __int128)tsc * scale) >> 64) + (u64)off;
    return true;
}

static void test_time(void)
{
    /* TIME_REF_COUNT: 100 ns units */
    u64 r0 = rdmsr(TIME_REF_COUNT), t0 = rdtsc();
    udelay(20000);
    u64 r1 = rdmsr(TIME_REF_COUNT), t1 = rdtsc();
    u64 hz = tsc_hz();
    /* (r1 - r0) / 10^7 s == (t1 - t0) / hz s, within 5% */
    u64 lhs = (r1 - r0) * (hz / 1000), rhs = (t1 - t0) * 10000;
    TEST_ASSERT(r1 > r0 && lhs < rhs + rhs / 20 && lhs + rhs / 20 > rhs,
                "TIME_REF_COUNT runs at 10 MHz (%llu ticks for %llu TSC cycles at %llu Hz)",
                (unsigned long long)(r1 - r0), (unsigned long long)(t1 - t0), (unsigned long long)hz);
    TEST_EQ(wrmsr_safe(TIME_REF_COUNT, 0), GP_VECTOR, "TIME_REF_COUNT is read-only: #GP");

    /* the reference TSC page */
    memset(tsc_pg, 0, sizeof(tsc_pg));
    TEST_EQ(rdmsr(REFERENCE_TSC), 0, "REFERENCE_TSC starts at 0");
    wrmsr(REFERENCE_TSC, (u64)tsc_pg | 1);
    TEST_EQ(rdmsr(REFERENCE_TSC), (u64)tsc_pg | 1, "REFERENCE_TSC reads back exactly");
    struct tsc_page *p = (void *)tsc_pg;
    TEST_ASSERT(p->seq != 0 && p->seq != 0xffffffffu, "the page's sequence is valid (%#x)", p->seq);
    bool ok = true, mono = true;
    u64 prev = 0, worst = 0;
    for (int i = 0; i < 2000 && ok; i++) {
        u64 t = 0, m;
        ok = page_time(&t);
        m = rdmsr(TIME_REF_COUNT);
        mono &= t >= prev;
        prev = t;
        /* read before the MSR: not after it, and not far before */
        if ((s64)(m - t) < 0 || m - t > 10000) {
            printf("page time %llu, TIME_REF_COUNT %llu\n", (unsigned long long)t, (unsigned long long)m);
            ok = false;
        }
        if (m - t > worst)
            worst = m - t;
    }
    TEST_ASSERT(ok, "TSC page time is within 1 ms before TIME_REF_COUNT (worst %llu)",
                (unsigned long long)worst);
    TEST_ASSERT(mono, "TSC page time is monotonic");
    u32 seq = p->seq;
    wrmsr(MSR_TSC, 12345);
    u64 t = 0, m;
    ok = page_time(&t);
    m = rdmsr(TIME_REF_COUNT);
    TEST_ASSERT(ok && p->seq != seq && (s64)(m - t) >= 0 && m - t < 10000,
                "after a TSC write the page follows (seq %#x -> %#x, %lld ticks off)", seq, p->seq,
                (long long)(m - t));
    wrmsr(REFERENCE_TSC, 0);
    TEST_EQ(rdmsr(REFERENCE_TSC), 0, "REFERENCE_TSC disabled reads 0");
    TEST_EQ(wrmsr_safe(REFERENCE_TSC, NOT_RAM | 1), GP_VECTOR, "a TSC page that is not RAM: #GP");
}

static void test_frequencies(void)
{
    u64 tf = rdmsr(TSC_FREQUENCY), af = rdmsr(APIC_FREQUENCY);
    TEST_ASSERT(tf != 0 && af != 0, "frequencies: TSC %llu Hz, APIC %llu Hz", (unsigned long long)tf,
                (unsigned long long)af);
    if (cpuid(0).a >= 0x16) {
        struct cpuid_regs r = cpuid(0x15);
        if (r.a && r.c)
            TEST_EQ(tf, (u64)r.c * r.b / r.a, "TSC_FREQUENCY is CPUID 15h's crystal * ratio");
        TEST_EQ(af / 1000000, cpuid(0x16).c & 0xffff, "APIC_FREQUENCY is CPUID 16h's bus MHz");
    }
    /* the LAPIC timer counts at APIC_FREQUENCY (divide by 1) */
    apic_write(APIC_LVTT, APIC_LVT_MASKED | 0xee);
    apic_write(APIC_TDCR, 0xb);
    apic_write(APIC_TMICT, 0xffffffffu);
    u32 c0 = apic_read(APIC_TMCCT);
    u64 t0 = rdtsc();
    udelay(5000);
    u32 c1 = apic_read(APIC_TMCCT);
    u64 t1 = rdtsc();
    apic_write(APIC_TMICT, 0);
    /* (c0 - c1) / af == (t1 - t0) / tf, within 5% */
    u64 lhs = (u64)(c0 - c1) * (tf / 1000), rhs = (t1 - t0) * (af / 1000);
    TEST_ASSERT(lhs < rhs + rhs / 20 && lhs + rhs / 20 > rhs,
                "the LAPIC timer counts at APIC_FREQUENCY (%u counts in %llu TSC cycles)", c0 - c1,
                (unsigned long long)(t1 - t0));
    TEST_EQ(wrmsr_safe(TSC_FREQUENCY, tf), GP_VECTOR, "TSC_FREQUENCY is read-only: #GP");
    TEST_EQ(wrmsr_safe(APIC_FREQUENCY, af), GP_VECTOR, "APIC_FREQUENCY is read-only: #GP");
}

static void test_runtime(void)
{
    u64 r0 = rdmsr(VP_RUNTIME), f0 = has(TIME) ? rdmsr(TIME_REF_COUNT) : 0;
    udelay(20000);
    u64 r1 = rdmsr(VP_RUNTIME), f1 = has(TIME) ? rdmsr(TIME_REF_COUNT) : 0;
    TEST_ASSERT(r1 > r0, "VP_RUNTIME grows while the VP runs (%llu -> %llu)", (unsigned long long)r0,
                (unsigned long long)r1);
    if (has(TIME))
        TEST_ASSERT(r1 - r0 <= f1 - f0 + 10000 && r1 - r0 >= (f1 - f0) / 2,
                    "... as fast as the reference time while it spins, not faster (%llu, %llu)",
                    (unsigned long long)(r1 - r0), (unsigned long long)(f1 - f0));
    TEST_EQ(wrmsr_safe(VP_RUNTIME, 0), GP_VECTOR, "VP_RUNTIME is read-only: #GP");
}

/* ---------------------------------------------------------------- APIC MSRs, VP assist */
static volatile u32 *assist;
static volatile int got[256];
static volatile u32 seen_bit[256];
static volatile bool no_eoi;
static volatile bool plain_eoi; /* EOI through the APIC, the assist page's bit untouched */

static bool isr_has(u8 v) { return apic_read(APIC_ISR + 0x10 * (v / 32)) & BIT(v % 32); }
static bool irr_has(u8 v) { return apic_read(APIC_IRR + 0x10 * (v / 32)) & BIT(v % 32); }

static void irq_handler(struct exc_frame *f)
{
    u8 v = (u8)f->vector;
    got[v]++;
    if (assist)
        seen_bit[v] = *assist & 1;
    if (no_eoi)
        return;
    if (plain_eoi) {
        apic_eoi();
        return;
    }
    /* Linux's EOI with the assist page: clearing a set bit is the EOI */
    if (assist && (__atomic_exchange_n(assist, 0, __ATOMIC_SEQ_CST) & 1))
        return;
    apic_eoi();
}

static bool wait_got(u8 v, int n)
{
    for (int i = 0; i < 100000 && got[v] < n; i++) {
        sti();
        asm volatile("nop");
        cli();
        if (!(i % 100))
            udelay(10);
    }
    cli();
    return got[v] >= n;
}

/* An EOI made by clearing the assist page's bit takes effect when nestor next looks (at
 * the latest when the vCPU's pass ends): wait for it, boundedly. */
static bool isr_clears(u8 a, u8 b)
{
    for (int i = 0; i < 1000 && (isr_has(a) || isr_has(b)); i++)
        udelay(100);
    return !isr_has(a) && !isr_has(b);
}

static void test_apic_msrs(void)
{
    wrmsr(HV_TPR, 0x20);
    TEST_EQ(apic_read(APIC_TPR), 0x20, "TPR MSR write: the APIC's TPR");
    TEST_EQ(read_cr8(), 2, "... and CR8");
    asm volatile("mov %0, %%cr8" ::"r"(3ul));
    TEST_EQ(rdmsr(HV_TPR), 0x30, "TPR MSR read: CR8's write");
    wrmsr(HV_TPR, 0);

    u8 v = 0x61;
    no_eoi = true;
    cli();
    wrmsr(HV_ICR, ((u64)apic_id() << 56) | v);
    TEST_ASSERT(irr_has(v), "ICR MSR: a fixed IPI to this APIC's id (destination in bits 63:56) is pending");
    TEST_ASSERT(wait_got(v, 1), "... and delivered");
    TEST_ASSERT(isr_has(v), "... in service without an EOI");
    wrmsr(HV_EOI, 0);
    TEST_ASSERT(!isr_has(v), "EOI MSR write ends service");

    if (apic_enable_x2()) {
        v = 0x62;
        cli();
        wrmsr(HV_ICR, ((u64)apic_id() << 32) | v);
        TEST_ASSERT(wait_got(v, 1) && isr_has(v), "x2APIC: ICR MSR with the destination in 63:32");
        wrmsr(HV_EOI, 0);
        TEST_ASSERT(!isr_has(v), "x2APIC: EOI MSR");
        wrmsr(HV_TPR, 0x50);
        TEST_EQ(apic_read(APIC_TPR), 0x50, "x2APIC: TPR MSR");
        wrmsr(HV_TPR, 0);
        apic_disable_x2();
    }
    no_eoi = false;
}

static u8 assist_pg[4096] ALIGNED(4096);

static void test_vp_assist(void)
{
    memset(assist_pg, 0xa5, sizeof(assist_pg));
    TEST_EQ(rdmsr(VP_ASSIST_PAGE), 0, "VP_ASSIST_PAGE starts at 0");
    wrmsr(VP_ASSIST_PAGE, (u64)assist_pg | 1);
    TEST_EQ(rdmsr(VP_ASSIST_PAGE), (u64)assist_pg | 1, "VP_ASSIST_PAGE reads back");
    u32 first;
    memcpy(&first, assist_pg, 4);
    bool rest = true;
    for (int i = 4; i < 4096; i++)
        rest &= assist_pg[i] == 0xa5;
    TEST_ASSERT(first == 0 && rest, "enabling clears only the first dword (%#x)", first);
    TEST_EQ(wrmsr_safe(VP_ASSIST_PAGE, NOT_RAM | 1), GP_VECTOR, "an assist page that is not RAM: #GP");
    TEST_EQ(rdmsr(VP_ASSIST_PAGE), (u64)assist_pg | 1, "... VP_ASSIST_PAGE unchanged");
    memset(assist_pg, 0, 4);

    assist = (volatile u32 *)assist_pg;
    /* an interrupt alone in service: the bit says "clearing me is the EOI" */
    cli();
    apic_icr(0, APIC_DEST_SELF | 0x51);
    TEST_ASSERT(wait_got(0x51, 1), "self-IPI 51h delivered");
    if (has(VAPIC)) {
        TEST_EQ(seen_bit[0x51], 1, "EOI avoidance: apic_assist bit 0 set in the handler");
        /* the handler cleared the bit and did no EOI: 41h (a lower class) still gets in */
        apic_icr(0, APIC_DEST_SELF | 0x41);
        TEST_ASSERT(wait_got(0x41, 1), "clearing the bit was the EOI: a lower-priority IPI is delivered");
        TEST_ASSERT(isr_clears(0x51, 0x41), "nothing left in service");
        /* another interrupt waiting in IRR: no EOI avoidance for the first */
        cli();
        apic_icr(0, APIC_DEST_SELF | 0x52);
        apic_icr(0, APIC_DEST_SELF | 0x42);
        TEST_ASSERT(wait_got(0x52, 1) && wait_got(0x42, 1), "52h and 42h delivered");
        TEST_EQ(seen_bit[0x52], 0, "52h taken with 42h pending: bit 0 clear, a real EOI");
        TEST_EQ(seen_bit[0x42], 1, "42h then alone in service: bit 0 set");
        TEST_ASSERT(isr_clears(0x52, 0x42), "nothing left in service");
        /* a guest may ignore the bit and EOI through the APIC: the offer lapses, and no EOI
         * is made for it later on behalf of another interrupt */
        plain_eoi = true;
        cli();
        apic_icr(0, APIC_DEST_SELF | 0x53);
        TEST_ASSERT(wait_got(0x53, 1) && seen_bit[0x53] == 1, "53h alone: bit 0 set, the handler EOIs through the APIC");
        plain_eoi = false;
        no_eoi = true;
        apic_icr(0, APIC_DEST_SELF | 0x63);
        apic_icr(0, APIC_DEST_SELF | 0x43);
        TEST_ASSERT(wait_got(0x63, 1), "63h delivered (43h waiting)");
        TEST_EQ(seen_bit[0x63], 0, "63h taken with 43h pending: bit 0 clear");
        no_eoi = false;
        for (int i = 0; i < 50; i++) {
            sti();
            udelay(100);
            cli();
        }
        TEST_ASSERT(isr_has(0x63) && got[0x43] == 0,
                    "63h stays in service without its EOI: 43h still blocked (no EOI left over from 53h)");
        wrmsr(HV_EOI, 0);
        TEST_ASSERT(wait_got(0x43, 1), "the EOI of 63h lets 43h in");
        TEST_ASSERT(isr_clears(0x63, 0x43), "nothing left in service");
    } else {
        TEST_EQ(seen_bit[0x51], 0, "without hv-vapic no EOI avoidance: bit 0 stays clear");
        TEST_ASSERT(!isr_has(0x51), "the real EOI ended service");
    }
    assist = NULL;
    wrmsr(VP_ASSIST_PAGE, 0);
    TEST_EQ(rdmsr(VP_ASSIST_PAGE), 0, "VP_ASSIST_PAGE disabled");
}

/* ---------------------------------------------------------------- SynIC, timers */
static u8 synic_pg[4096] ALIGNED(4096);

static void test_synic(void)
{
    TEST_EQ(rdmsr(SCONTROL), 0, "SCONTROL is 0 at reset");
    TEST_EQ(rdmsr(SVERSION), 1, "SVERSION is 1");
    TEST_EQ(wrmsr_safe(SVERSION, 1), GP_VECTOR, "SVERSION is read-only: #GP");
    TEST_EQ(rdmsr(SIEFP), 0, "SIEFP is 0 at reset");
    TEST_EQ(rdmsr(SIMP), 0, "SIMP is 0 at reset");
    u64 v;
    TEST_ASSERT(rdmsr_safe(EOM, &v) == NO_EXCEPTION && v == 0, "EOM reads 0");
    bool ok = true;
    for (int i = 0; i < 16; i++)
        ok &= rdmsr(SINT0 + i) == 0x10000;
    TEST_ASSERT(ok, "SINT0-15 are 10000h (masked) at reset");
    TEST_EQ(wrmsr_safe(SINT0, 0x05), GP_VECTOR, "SINT with vector 5, unmasked: #GP");
    TEST_EQ(rdmsr(SINT0), 0x10000, "... SINT unchanged");
    TEST_EQ(wrmsr_safe(SINT0, 0x10005), NO_EXCEPTION, "SINT with vector 5, masked: allowed");
    TEST_EQ(rdmsr(SINT0), 0x10005, "... reads back");
    TEST_EQ(wrmsr_safe(SINT0 + 3, 0x20030), NO_EXCEPTION, "SINT3 vector 30h auto-EOI");
    TEST_EQ(rdmsr(SINT0 + 3), 0x20030, "... reads back");
    wrmsr(SINT0, 0x10000);
    wrmsr(SINT0 + 3, 0x10000);
    memset(synic_pg, 0x5a, sizeof(synic_pg));
    wrmsr(SIMP, (u64)synic_pg | 1);
    bool zero = true;
    for (int i = 0; i < 4096; i++)
        zero &= synic_pg[i] == 0;
    TEST_ASSERT(zero, "enabling SIMP zeroes the message page");
    TEST_EQ(rdmsr(SIMP), (u64)synic_pg | 1, "SIMP reads back");
    wrmsr(SIMP, 0);
    wrmsr(SCONTROL, 1);
    TEST_EQ(rdmsr(SCONTROL), 1, "SCONTROL reads back");
    wrmsr(SCONTROL, 0);
    if (has(STIMER)) {
        TEST_EQ(rdmsr(STIMER0_CONFIG), 0, "STIMER0_CONFIG is 0 at reset");
        TEST_EQ(rdmsr(STIMER0_COUNT), 0, "STIMER0_COUNT is 0 at reset");
    }
}

static void test_crash_reenl(void)
{
    if (has(CRASH)) {
        TEST_EQ(rdmsr(CRASH_CTL), BIT(63), "CRASH_CTL reads CRASH_NOTIFY (bit 63)");
        bool ok = true;
        for (int i = 0; i < 5; i++)
            wrmsr(CRASH_P0 + i, 0x1111ull * (i + 1));
        for (int i = 0; i < 5; i++)
            ok &= rdmsr(CRASH_P0 + i) == 0x1111ull * (i + 1);
        TEST_ASSERT(ok, "CRASH_P0-P4 read back");
    }
    if (has(REENL)) {
        TEST_EQ(wrmsr_safe(REENLIGHTENMENT_CONTROL, 0xee | BIT(16)), NO_EXCEPTION,
                "REENLIGHTENMENT_CONTROL vector EEh, enabled, VP 0");
        TEST_EQ(rdmsr(REENLIGHTENMENT_CONTROL), 0xee | BIT(16), "... reads back");
        TEST_EQ(wrmsr_safe(REENLIGHTENMENT_CONTROL, 0xee | BIT(8)), GP_VECTOR, "reserved bit 8: #GP");
        TEST_EQ(wrmsr_safe(REENLIGHTENMENT_CONTROL, 0xee | BIT(20)), GP_VECTOR, "reserved bit 20: #GP");
        TEST_EQ(rdmsr(REENLIGHTENMENT_CONTROL), 0xee | BIT(16), "... unchanged");
        wrmsr(REENLIGHTENMENT_CONTROL, 0);
        TEST_EQ(wrmsr_safe(TSC_EMULATION_CONTROL, 1), NO_EXCEPTION, "TSC_EMULATION_CONTROL enable");
        TEST_EQ(rdmsr(TSC_EMULATION_CONTROL), 1, "... reads back");
        wrmsr(TSC_EMULATION_CONTROL, 0);
        TEST_EQ(rdmsr(TSC_EMULATION_STATUS), 0, "TSC_EMULATION_STATUS: no emulation in progress");
        TEST_EQ(wrmsr_safe(TSC_EMULATION_STATUS, 1), GP_VECTOR, "TSC_EMULATION_STATUS non-zero write: #GP");
        TEST_EQ(wrmsr_safe(TSC_EMULATION_STATUS, 0), NO_EXCEPTION, "... zero allowed");
    }
}

/* ---------------------------------------------------------------- vCPU 1 */
static volatile u64 ap_vp_index = ~0ull;
static volatile int ap_vp_write = -2;

static void ap_main(int index)
{
    (void)index;
    ap_vp_index = rdmsr(VP_INDEX);
    /* no exception catching on an AP: a write that #GPs would be fatal; only read */
    ap_vp_write = 0;
}

void test_main(void)
{
    char spec[1024] = "", mode[16] = "";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    rt_cmdline_value("mode", mode, sizeof(mode));
    parse_spec(spec);
    if (amd) /* VMX's enlightenment: hv-passthrough leaves it out on an AMD CPU */
        feats &= ~(u32)BIT(EVMCS);
    bool hv_there = cpuid(0x40000001).a == 0x31237648;
    if (any_hv && !hv_there && on_qemu_tcg()) {
        test_skip("QEMU TCG has no Hyper-V interface");
        return;
    }
    apic_enable();
    for (int v = 0x40; v < 0x70; v++)
        exc_set_handler(v, irq_handler);

    if (!any_hv) {
        struct cpuid_regs r = cpuid(0x40000000);
        TEST_ASSERT(memcmp(&r.b, "Micr", 4) || memcmp(&r.c, "osof", 4) || memcmp(&r.d, "t Hv", 4),
                    "without hv-*: 40000000h is not Microsoft's");
        TEST_ASSERT(!hv_there, "without hv-*: no 'Hv#1' interface");
        test_msr_gating();
        TEST_EQ(wrmsr_safe(GUEST_OS_ID, OS_ID), GP_VECTOR, "without hv-*: GUEST_OS_ID write #GPs");
        return;
    }
    if (!strcmp(mode, "crash")) {
        for (int i = 0; i < 5; i++)
            wrmsr(CRASH_P0 + i, 0xc0de0000ull + i);
        TEST_EQ(rdmsr(CRASH_CTL), BIT(63), "CRASH_CTL reads CRASH_NOTIFY");
        TEST_EQ(wrmsr_safe(CRASH_CTL, 0), NO_EXCEPTION, "CRASH_CTL write without bit 63: nothing");
        printf("SHUTDOWN-NEXT\n");
        wrmsr(CRASH_CTL, BIT(63));
        TEST_ASSERT(false, "the crash report did not stop the VM");
        return;
    }
    if (!strcmp(mode, "reset")) {
        TEST_EQ(rdmsr(RESET), 0, "RESET reads 0");
        wrmsr(RESET, 0);
        wrmsr(RESET, 2);
        TEST_ASSERT(true, "RESET writes without bit 0 do nothing");
        printf("SHUTDOWN-NEXT\n");
        wrmsr(RESET, 1);
        TEST_ASSERT(false, "RESET=1 did not end the VM");
        return;
    }

    test_cpuid();
    test_msr_gating();
    test_hypercall_msr();
    if (has(VPINDEX)) {
        TEST_EQ(rdmsr(VP_INDEX), 0, "VP_INDEX of the BSP: 0");
        TEST_EQ(wrmsr_safe(VP_INDEX, 0), GP_VECTOR, "VP_INDEX is read-only: #GP");
        if (cpuid(1).b >> 16 > 1 || fwcfg_present()) {
            fwcfg_select(FW_CFG_NB_CPUS);
            u16 n = 0;
            fwcfg_read(&n, 2);
            if (n >= 2 && smp_start(ap_main, 1, 2000000) == 1) {
                for (int i = 0; i < 1000000 && ap_vp_write != 0; i++)
                    pause();
                TEST_EQ(ap_vp_index, 1, "VP_INDEX of vCPU 1: 1");
            }
        }
    }
    if (has(RST))
        TEST_EQ(rdmsr(RESET), 0, "RESET reads 0");
    if (has(TIME))
        test_time();
    if (has(FREQ))
        test_frequencies();
    if (has(RUNTIME))
        test_runtime();
    if (has(VAPIC))
        test_apic_msrs();
    test_vp_assist();
    if (has(SYNIC))
        test_synic();
    test_crash_reenl();
}

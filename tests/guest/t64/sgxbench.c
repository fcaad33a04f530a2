/* Benchmark of SGX (bench/run.sh runs it with -sgx-epc 64M; docs/PERFORMANCE.md has the
 * figures). The kernel enables SGX and Launch Control in IA32_FEATURE_CONTROL, writes the
 * hash of its enclave's signer to IA32_SGXLEPUBKEYHASH0-3, and builds the enclave of
 * t64/sgxbench_encl.S (signed at build time: sgxbench.mk) with ECREATE, EADD, EEXTEND and
 * EINIT. Then, each timed with RDTSC and reported in guest time through the TSC frequency
 * (least of RUNS runs):
 *   eenter-eexit  ring 3 in a loop: EENTER, whose entry point is EEXIT back to the
 *                 instruction after the ENCLU: the cost of one enclave round trip;
 *   eadd          EADD of PAGES regular pages into a second enclave (ECREATE'd with
 *                 32 MiB of ELRANGE): pages per second and MB/s;
 *   eadd+eextend  the same with the 16 EEXTENDs that measure each page's 4 KiB, as a
 *                 loader builds a measured enclave: pages per second and MB/s;
 *   eremove       EREMOVE of those pages.
 * Guest time follows the host clock (less the time the host did not run nestor).
 * guest: default=no cpu=max epc=64M timeout=600 */
#include "rt.h"

#ifndef SGXBENCH_BLOBS
#error "SGXBENCH_BLOBS (the folder of the signed enclave) is not defined"
#endif

#define ROUNDS 100000
#define RUNS 5
#define PAGES 8192          /* the second enclave's pages: 32 MiB */
#define PAGE_RUNS 3

#define MSR_FEATURE_CONTROL 0x3a
#define MSR_SGXLEPUBKEYHASH0 0x8c
enum { ECREATE = 0, EADD = 1, EINIT = 2, EREMOVE = 3, EEXTEND = 6 };
#define PT_TCS 1ull
#define PT_REG 2ull
#define SI_R 1ull
#define SI_W 2ull
#define SI_X 4ull

#define BLOB(name, file)                                                                   \
    asm(".pushsection .data\n.balign 4096\n.globl " #name "\n" #name ":\n.incbin \""         \
        SGXBENCH_BLOBS "/" file "\"\n.globl " #name "_end\n" #name "_end:\n.byte 0\n"         \
        ".balign 8\n.popsection");                                                          \
    extern u8 name[], name##_end[]
BLOB(encl_image, "encl.bin");
BLOB(encl_sig, "encl.sig");
BLOB(encl_meas, "encl.meas");

#define BASE 0x8000000000ull    /* the enclave's ELRANGE: 16 KiB */
#define BASE2 0x10000000000ull  /* the second enclave's: 32 MiB */

struct secs {
    u64 size, baseaddr;
    u32 ssaframesize, miscselect;
    u8 reserved1[24];
    u64 attributes, xfrm;
    u8 rest[4096 - 64];
} __attribute__((packed));
struct pageinfo { u64 linaddr, srcpge, secinfo, secs; };
struct secinfo { u64 flags; u8 reserved[56]; };

static struct secs secs_src ALIGNED(4096);
static u8 src_page[4096] ALIGNED(4096);
static struct pageinfo pageinfo ALIGNED(32);
static struct secinfo secinfo ALIGNED(64);
static u8 sigstruct[4096] ALIGNED(4096);
static u8 token[512] ALIGNED(512);
static u64 epc_base, epc_size, epc_next;
static u64 tsc_hz;

/* ENCLS: the fault's vector (NO_EXCEPTION if none) and RAX */
static int encls(u64 leaf, u64 rbx, u64 rcx, u64 rdx, u64 *rax)
{
    u64 a = leaf;
    asm volatile(ASM_TRY("1f") ".byte 0x0f, 0x01, 0xcf\n\t1:"
                 : "+a"(a), "+b"(rbx), "+c"(rcx), "+d"(rdx) : : "memory", "cc");
    if (rax)
        *rax = a;
    return exc_vector();
}

static void encls_ok(u64 leaf, u64 rbx, u64 rcx, u64 rdx, const char *what)
{
    u64 rax;
    int v = encls(leaf, rbx, rcx, rdx, &rax);
    if (v != NO_EXCEPTION || (leaf == EINIT && rax))
        panic("%s: vector %d, RAX %llu", what, v, (unsigned long long)rax);
}

static u64 epc_alloc(void)
{
    if (epc_next >= epc_base + epc_size)
        panic("EPC exhausted");
    u64 p = epc_next;
    epc_next += 4096;
    return p;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static u64 create(u64 base, u64 size)
{
    memset(&secs_src, 0, sizeof(secs_src));
    secs_src.size = size;
    secs_src.baseaddr = base;
    secs_src.ssaframesize = 1;
    secs_src.attributes = 4; /* MODE64BIT */
    secs_src.xfrm = 3;
    memset(&secinfo, 0, sizeof(secinfo));
    pageinfo = (struct pageinfo){ 0, (u64)(ulong)&secs_src, (u64)(ulong)&secinfo, 0 };
    u64 secs = epc_alloc();
    encls_ok(ECREATE, (ulong)&pageinfo, secs, 0, "ECREATE");
    return secs;
}

static void add(u64 secs, u64 epc, u64 linaddr, const void *page, u64 flags, bool measure)
{
    memcpy(src_page, page, 4096);
    secinfo.flags = flags;
    pageinfo = (struct pageinfo){ linaddr, (u64)(ulong)src_page, (u64)(ulong)&secinfo, secs };
    encls_ok(EADD, (ulong)&pageinfo, epc, 0, "EADD");
    if (measure)
        for (u64 c = 0; c < 4096; c += 256)
            encls_ok(EEXTEND, 0, epc + c, 0, "EEXTEND");
}

/* The enclave of sgxbench_encl.S at BASE, initialised: returns its TCS's address */
static u64 build(void)
{
    static const struct { u32 off; u64 flags; bool measure; } layout[] = {
        { 0x0000, PT_TCS << 8, true },
        { 0x1000, PT_REG << 8 | SI_R | SI_X, true },
        { 0x2000, PT_REG << 8 | SI_R | SI_W, false },
    };
    u64 secs = create(BASE, 0x4000);
    u64 image_len = (u64)(encl_image_end - encl_image);
    for (unsigned i = 0; i < ARRAY_SIZE(layout); i++) {
        static u8 page[4096] ALIGNED(4096);
        memset(page, 0, sizeof(page));
        if (layout[i].off < image_len)
            memcpy(page, encl_image + layout[i].off,
                   image_len - layout[i].off < 4096 ? image_len - layout[i].off : 4096);
        u64 epc = epc_alloc();
        add(secs, epc, BASE + layout[i].off, page, layout[i].flags, layout[i].measure);
        pt_map(&rt_boot_pt, BASE + layout[i].off, epc, 4096, 4096, PTE_W | PTE_U);
    }
    write_cr3(read_cr3());
    memcpy(sigstruct, encl_sig, 1808);
    memset(token, 0, sizeof(token));
    encls_ok(EINIT, (ulong)sigstruct, secs, (ulong)token, "EINIT");
    return BASE;
}

/* Ring 3: EENTER of the TCS in rsi[0], rsi[1] times; the enclave EEXITs at once to the
 * instruction after the ENCLU. Returns 0 (1 if the AEP was reached: an AEX). */
ulong round_trips(ulong arg);
asm(".text\n"
    ".globl round_trips\n"
    "round_trips:\n"
    "  push %rbx\n"
    "  mov 8(%rdi), %r8\n"
    "  mov (%rdi), %r9\n"
    "1: mov $2, %eax\n"
    "  mov %r9, %rbx\n"
    "  lea 2f(%rip), %rcx\n"
    "  .byte 0x0f, 0x01, 0xd7\n"
    "  dec %r8\n"
    "  jnz 1b\n"
    "  xor %eax, %eax\n"
    "  pop %rbx\n"
    "  ret\n"
    "2: mov $1, %eax\n"
    "  pop %rbx\n"
    "  ret\n");

static void report_each(const char *name, u64 n, u64 least, const char *unit, unsigned runs)
{
    u64 tenths = least * 10000000000ull / tsc_hz / n;
    u64 per_s = n * tsc_hz / (least ? least : 1);
    printf("sgxbench: %s %llu in %llu us: %llu.%llu ns each, %llu %s per second (least of %u runs)\n",
           name, (unsigned long long)n, (unsigned long long)(least * 1000000ull / tsc_hz),
           (unsigned long long)(tenths / 10), (unsigned long long)(tenths % 10),
           (unsigned long long)per_s, unit, runs);
}

static void report_pages(const char *name, u64 least)
{
    u64 per_s = (u64)PAGES * tsc_hz / (least ? least : 1);
    /* MB/s with one decimal: 4096-byte pages, 10^6 bytes */
    u64 mb10 = per_s * 4096 / 100000;
    printf("sgxbench: %s %u pages in %llu us: %llu pages per second, %llu.%llu MB/s (least of %u runs)\n",
           name, PAGES, (unsigned long long)(least * 1000000ull / tsc_hz), (unsigned long long)per_s,
           (unsigned long long)(mb10 / 10), (unsigned long long)(mb10 % 10), PAGE_RUNS);
}

void test_main(void)
{
    struct cpuid_regs r = cpuid(0);
    if (r.a < 0x12 || !cpu_has(7, 0, 1, 2) || !(cpuid2(0x12, 0).a & 1)) {
        test_skip("no SGX in CPUID (nestor: -sgx-epc SIZE)");
        return;
    }
    r = cpuid2(0x12, 2);
    TEST_ASSERT((r.a & 0xf) == 1, "an EPC section in CPUID 12h.2");
    epc_base = (r.a & 0xfffff000ull) | ((u64)(r.b & 0xfffff) << 32);
    epc_size = (r.c & 0xfffff000ull) | ((u64)(r.d & 0xfffff) << 32);
    if (epc_size < (u64)(PAGES + 8) * 4096) {
        test_skip("the EPC (%llu KiB) is smaller than the benchmark needs", (unsigned long long)(epc_size >> 10));
        return;
    }
    epc_next = epc_base;
    /* the EPC at its physical address (2 MiB pages where it is aligned so) */
    u64 big = (epc_base | epc_size) & 0x1fffff ? 4096 : 0x200000;
    pt_map(&rt_boot_pt, epc_base, epc_base, epc_size, big, PTE_W);
    write_cr3(read_cr3());
    u64 fc = rdmsr(MSR_FEATURE_CONTROL);
    if (!(fc & 1))
        wrmsr(MSR_FEATURE_CONTROL, fc | 1 | BIT(17) | BIT(18));
    /* the signer's hash: encl.meas's second line */
    const u8 *m = encl_meas;
    while (m < encl_meas_end && *m != '\n')
        m++;
    m++;
    for (int i = 0; i < 4; i++) {
        u64 v = 0;
        for (int k = 7; k >= 0; k--)
            v = v << 8 | (u64)(hexval((char)m[16 * i + 2 * k]) << 4 | hexval((char)m[16 * i + 2 * k + 1]));
        wrmsr(MSR_SGXLEPUBKEYHASH0 + i, v);
    }
    tsc_hz = tsc_per_us() * 1000000ull;

    /* ---- EENTER + EEXIT ---- */
    u64 tcs = build();
    static u64 args[2];
    args[0] = tcs;
    args[1] = 1000;
    TEST_EQ(run_user(round_trips, (ulong)args, 0), 0, "1000 round trips, no AEX (warm-up)");
    args[1] = ROUNDS;
    u64 least = ~0ull;
    bool ok = true;
    for (int k = 0; k < RUNS; k++) {
        u64 t0 = rdtsc();
        ok &= run_user(round_trips, (ulong)args, 0) == 0;
        u64 t = rdtsc() - t0;
        if (t < least)
            least = t;
    }
    TEST_ASSERT(ok, "every EENTER came back through EEXIT");
    report_each("eenter-eexit", ROUNDS, least, "round trips", RUNS);

    /* ---- EADD, EADD + EEXTEND, EREMOVE ---- */
    static u8 page[4096] ALIGNED(4096);
    for (unsigned i = 0; i < sizeof(page); i++)
        page[i] = (u8)(i * 7 + 1);
    u64 first = epc_next;
    u64 best[3] = { ~0ull, ~0ull, ~0ull };
    for (int run = 0; run < 2 * PAGE_RUNS; run++) {
        bool measure = run & 1;
        epc_next = first;
        u64 secs = create(BASE2, (u64)PAGES * 4096);
        u64 base_epc = epc_next;
        u64 t0 = rdtsc();
        for (u64 p = 0; p < PAGES; p++) {
            secinfo.flags = PT_REG << 8 | SI_R | SI_W;
            pageinfo = (struct pageinfo){ BASE2 + 4096 * p, (u64)(ulong)page, (u64)(ulong)&secinfo, secs };
            u64 epc = base_epc + 4096 * p;
            encls_ok(EADD, (ulong)&pageinfo, epc, 0, "EADD");
            if (measure)
                for (u64 c = 0; c < 4096; c += 256)
                    encls_ok(EEXTEND, 0, epc + c, 0, "EEXTEND");
        }
        u64 t = rdtsc() - t0;
        if (t < best[measure])
            best[measure] = t;
        t0 = rdtsc();
        for (u64 p = 0; p < PAGES; p++)
            encls_ok(EREMOVE, 0, base_epc + 4096 * p, 0, "EREMOVE");
        t = rdtsc() - t0;
        if (t < best[2])
            best[2] = t;
        encls_ok(EREMOVE, 0, secs, 0, "EREMOVE of the SECS");
    }
    report_pages("eadd", best[0]);
    report_pages("eadd+eextend", best[1]);
    report_pages("eremove", best[2]);
    TEST_ASSERT(true, "%u pages added, measured and removed %u times", PAGES, PAGE_RUNS);
}

/* SGX for the 64-bit guest tests (sgx_*.c): the architectural structures (SDM Vol. 3D
 * ch. 35), ENCLS at CPL 0, the test enclave (t64/sgx_encl.S, signed at build time) built
 * into the EPC, and a ring-3 stub that enters it with ENCLU and comes back on EEXIT, on an
 * AEX (at the AEP) or on a fault of the ENCLU itself.
 *
 * A test includes this header once; it needs -DSGX_BLOBS="dir" (guest.mk gives it). */
#ifndef GUEST_SGX_H
#define GUEST_SGX_H

#include "rt.h"

#ifndef SGX_BLOBS
#error "SGX_BLOBS (the folder of the signed test enclave) is not defined"
#endif

/* ---------------------------------------------------------------- constants */
#define MSR_IA32_FEATURE_CONTROL 0x3a
#define FC_LOCK BIT(0)
#define FC_SGX_LC BIT(17)
#define FC_SGX BIT(18)
#define MSR_SGXLEPUBKEYHASH0 0x8c

enum { ECREATE = 0, EADD = 1, EINIT = 2, EREMOVE = 3, EDBGRD = 4, EDBGWR = 5, EEXTEND = 6 };
enum { EREPORT = 0, EGETKEY = 1, EENTER = 2, ERESUME = 3, EEXIT = 4 };
/* EAX error codes (SDM Table 38-4) */
enum {
    SGX_INVALID_SIG_STRUCT = 1, SGX_INVALID_ATTRIBUTE = 2, SGX_INVALID_MEASUREMENT = 4,
    SGX_INVALID_SIGNATURE = 8, SGX_CHILD_PRESENT = 13, SGX_ENCLAVE_ACT = 14,
    SGX_INVALID_EINITTOKEN = 16, SGX_PAGE_NOT_DEBUGGABLE = 21, SGX_INVALID_CPUSVN = 32,
    SGX_INVALID_ISVSVN = 64, SGX_INVALID_KEYNAME = 256,
};
/* SECINFO.FLAGS */
#define SI_R 1ull
#define SI_W 2ull
#define SI_X 4ull
#define SI_PT(t) ((u64)(t) << 8)
enum { PT_SECS = 0, PT_TCS = 1, PT_REG = 2, PT_VA = 3 };
/* SECS.ATTRIBUTES */
#define ATTR_INIT BIT(0)
#define ATTR_DEBUG BIT(1)
#define ATTR_MODE64BIT BIT(2)
#define ATTR_PROVISIONKEY BIT(4)
#define ATTR_EINITTOKEN_KEY BIT(5)
#define PFEC_SGX BIT(15)

/* SECS */
struct secs {
    u64 size, baseaddr;
    u32 ssaframesize, miscselect;
    u8 reserved1[24];
    u64 attributes, xfrm;
    u8 mrenclave[32], reserved2[32], mrsigner[32];
    u8 rest[4096 - 160];
} __attribute__((packed));
_Static_assert(sizeof(struct secs) == 4096, "SECS");
struct pageinfo { u64 linaddr, srcpge, secinfo, secs; };
struct secinfo { u64 flags; u8 reserved[56]; };
/* SSA frame: EXINFO then GPRSGX, the last 200 bytes of the frame */
struct ssa_tail {
    u64 maddr;
    u32 errcd, exinfo_reserved;
    u64 gpr[16]; /* RAX RCX RDX RBX RSP RBP RSI RDI R8..R15 */
    u64 rflags, rip, ursp, urbp;
    u32 exitinfo, reserved;
    u64 fsbase, gsbase;
} __attribute__((packed));
_Static_assert(sizeof(struct ssa_tail) == 200, "EXINFO + GPRSGX");
enum { GAX, GCX, GDX, GBX, GSP, GBP, GSI, GDI, G8, G9, G10, G11, G12, G13, G14, G15 };

/* REPORT, TARGETINFO, KEYREQUEST (SDM 35.15-35.18) */
#define REPORT_MISCSELECT 16
#define REPORT_ATTRIBUTES 48
#define REPORT_MRENCLAVE 64
#define REPORT_MRSIGNER 128
#define REPORT_ISVPRODID 256
#define REPORT_ISVSVN 258
#define REPORT_REPORTDATA 320
#define REPORT_KEYID 384
#define REPORT_MAC 416
#define TI_MEASUREMENT 0
#define TI_ATTRIBUTES 32
#define TI_MISCSELECT 52
#define KR_KEYNAME 0
#define KR_KEYPOLICY 2
#define KR_ISVSVN 4
#define KR_CPUSVN 8
#define KR_ATTRIBUTEMASK 24
#define KR_KEYID 40
#define KR_MISCMASK 72
enum { KEY_EINITTOKEN = 0, KEY_PROVISION = 1, KEY_PROVISION_SEAL = 2, KEY_REPORT = 3, KEY_SEAL = 4 };
#define POLICY_MRENCLAVE 1
#define POLICY_MRSIGNER 2

/* ---------------------------------------------------------------- the enclave's blobs */
#define SGX_BLOB(name, file)                                                             \
    asm(".pushsection .data\n.balign 4096\n.globl " #name "\n" #name ":\n.incbin \""       \
        SGX_BLOBS "/" file "\"\n.globl " #name "_end\n" #name "_end:\n.byte 0\n.balign 8\n" \
        ".popsection");                                                                   \
    extern u8 name[], name##_end[]
SGX_BLOB(encl_image, "encl.bin");
SGX_BLOB(encl_layout, "encl.layout");
SGX_BLOB(encl_sig, "encl.sig");
SGX_BLOB(encl_meas, "encl.meas");
SGX_BLOB(encl_prod_sig, "encl_prod.sig");
SGX_BLOB(encl_key2_sig, "encl_key2.sig");
SGX_BLOB(encl_key2_meas, "encl_key2.meas");

#define ENCL_SIZE 0x10000ull
#define ENCL_TCS0 0x0000
#define ENCL_TCS1 0x1000
#define ENCL_DATA 0x4000
#define ENCL_RODATA 0x5000
#define ENCL_SSA0 0x6000
#define ENCL_SSA1 0x8000
#define ENCL_PAGE_A 0xa000
#define ENCL_PAGE_B 0xb000
#define ENCL_MAX_PAGES 16
/* the enclave's commands (RDI at EENTER) */
enum {
    CMD_ECHO = 0, CMD_SUM = 1, CMD_FSGS = 2, CMD_ILLEGAL = 3, CMD_READ = 4, CMD_WRITE = 5,
    CMD_OUTREAD = 6, CMD_SPIN = 7, CMD_EREPORT = 8, CMD_EGETKEY = 9, CMD_ENCLU = 10,
    CMD_DUMPSSA = 11, CMD_EEXIT_BAD = 12, CMD_OUTWRITE = 13, CMD_XMM = 14, CMD_ENCLU_SI = 15,
};
#define ENCL_RODATA_MARKER 0x0123456789abcdefull
#define ENCL_PAGE_A_MARKER 0xaaaa0000aaaa0001ull
#define ENCL_PAGE_B_MARKER 0xbbbb0000bbbb0002ull

struct layout_page { u32 offset; u8 type, perms, measure; };
static struct layout_page encl_pages[ENCL_MAX_PAGES];
static int encl_npages;

static inline int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "0x1000 reg rw 1" lines */
static inline void sgx_parse_layout(void)
{
    const char *p = (const char *)encl_layout, *end = (const char *)encl_layout_end;
    encl_npages = 0;
    while (p < end && encl_npages < ENCL_MAX_PAGES) {
        struct layout_page *lp = &encl_pages[encl_npages];
        u32 off = 0;
        if (p[0] != '0' || p[1] != 'x')
            panic("layout: bad line");
        for (p += 2; hexval(*p) >= 0; p++)
            off = off * 16 + (u32)hexval(*p);
        lp->offset = off;
        p++;
        lp->type = p[0] == 't' ? PT_TCS : PT_REG;
        p += 4;
        lp->perms = 0;
        for (; *p != ' '; p++)
            lp->perms |= *p == 'r' ? SI_R : *p == 'w' ? SI_W : *p == 'x' ? SI_X : 0;
        p++;
        lp->measure = *p == '1';
        while (p < end && *p != '\n')
            p++;
        p++;
        encl_npages++;
    }
}

/* n bytes of hex at text into out */
static inline void sgx_parse_hex(const u8 *text, u8 *out, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = (u8)(hexval((char)text[2 * i]) << 4 | hexval((char)text[2 * i + 1]));
}

/* ---------------------------------------------------------------- CPUID, EPC */
static u64 epc_base, epc_size, epc_next;

static inline bool sgx_cpuid_present(void)
{
    struct cpuid_regs v = cpuid(0);
    if (v.a < 0x12 || !cpu_has(7, 0, 1, 2))
        return false;
    return cpuid2(0x12, 0).a & 1;
}

/* EPC section 0 from CPUID 12h sub-leaf 2 (type 1 in EAX[3:0]) */
static inline bool sgx_epc_section(u64 *base, u64 *size)
{
    struct cpuid_regs r = cpuid2(0x12, 2);
    if ((r.a & 0xf) != 1)
        return false;
    *base = (r.a & 0xfffff000ull) | ((u64)(r.b & 0xfffff) << 32);
    *size = (r.c & 0xfffff000ull) | ((u64)(r.d & 0xfffff) << 32);
    return true;
}

/* Maps the EPC at its physical address (4K pages, user, writable) */
static inline void sgx_map_epc(void)
{
    if (!sgx_epc_section(&epc_base, &epc_size))
        panic("no EPC section in CPUID 12h.2");
    pt_map(&rt_boot_pt, epc_base, epc_base, epc_size, 4096, PTE_W | PTE_U);
    write_cr3(read_cr3());
    epc_next = epc_base;
}

static inline u64 epc_alloc(void)
{
    if (epc_next >= epc_base + epc_size)
        panic("EPC exhausted");
    u64 p = epc_next;
    epc_next += 4096;
    return p;
}

/* FEATURE_CONTROL: SGX and Launch Control on, locked */
static inline void sgx_enable(void)
{
    u64 fc = rdmsr(MSR_IA32_FEATURE_CONTROL);
    if (!(fc & FC_LOCK))
        wrmsr(MSR_IA32_FEATURE_CONTROL, fc | FC_SGX | FC_SGX_LC | FC_LOCK);
}

/* IA32_SGXLEPUBKEYHASH0-3 = a MRSIGNER (32 bytes, little-endian quadwords) */
static inline void sgx_set_lehash(const u8 *mrsigner)
{
    for (int i = 0; i < 4; i++) {
        u64 v;
        memcpy(&v, mrsigner + 8 * i, 8);
        wrmsr(MSR_SGXLEPUBKEYHASH0 + i, v);
    }
}

/* What every SGX test does first: SGX must be there (on QEMU TCG, which has none, the
 * test skips: false), then the enclave's layout, MRSIGNER from its measurement file,
 * FEATURE_CONTROL with SGX and Launch Control, the hash MSRs naming that signer, and the
 * EPC mapped. false: the test ends here. */
static inline bool sgx_test_setup(u8 mrsigner[32])
{
    if (!sgx_cpuid_present()) {
        if (on_qemu_tcg())
            test_skip("QEMU TCG has no SGX");
        else
            TEST_ASSERT(false, "CPUID: SGX with -cpu max and an EPC");
        return false;
    }
    sgx_parse_layout();
    sgx_parse_hex(encl_meas + 65, mrsigner, 32);
    sgx_enable();
    sgx_set_lehash(mrsigner);
    sgx_map_epc();
    return true;
}

/* ---------------------------------------------------------------- ENCLS */
struct encls_res {
    int vector;     /* NO_EXCEPTION or the fault */
    u64 error, cr2; /* of the fault */
    u64 rax, rbx;   /* after the leaf */
    ulong flags;
};

static inline struct encls_res encls(u64 leaf, u64 rbx, u64 rcx, u64 rdx)
{
    struct encls_res r;
    u64 a = leaf;
    ulong fl;
    asm volatile(ASM_TRY("1f") ".byte 0x0f, 0x01, 0xcf\n\t"
                 "1: pushf; pop %[fl]"
                 : "+a"(a), [fl] "=r"(fl), "+b"(rbx), "+c"(rcx), "+d"(rdx)
                 :
                 : "memory", "cc");
    r.vector = exc_vector();
    r.error = exc_last.error;
    r.cr2 = exc_last.cr2;
    r.rax = a;
    r.rbx = rbx;
    r.flags = fl;
    return r;
}

/* ---------------------------------------------------------------- building an enclave */
static u8 sgx_src_page[4096] ALIGNED(4096);
static u8 sgx_zero_page[4096] ALIGNED(4096);
static struct secs sgx_secs_src ALIGNED(4096);
static struct pageinfo sgx_pageinfo ALIGNED(32);
static struct secinfo sgx_secinfo ALIGNED(64);
static u8 sgx_sigstruct[4096] ALIGNED(4096);
static u8 sgx_token[512] ALIGNED(512);

struct enclave {
    u64 base, size;
    u64 secs;               /* EPC address of the SECS */
    u64 page[ENCL_MAX_PAGES]; /* EPC address of each layout page, 0 if not added */
    u64 attributes, xfrm;
    u32 miscselect;
};

/* The SECS of a test enclave: base, 64 KiB, one-page SSA frames */
static inline void sgx_secs_init(struct secs *s, u64 base, u64 attributes, u32 misc)
{
    memset(s, 0, sizeof(*s));
    s->size = ENCL_SIZE;
    s->baseaddr = base;
    s->ssaframesize = 1;
    s->miscselect = misc;
    s->attributes = attributes;
    s->xfrm = 3;
}

static inline struct encls_res sgx_ecreate_raw(u64 epc, const struct secs *src)
{
    memcpy(&sgx_secs_src, src, sizeof(*src));
    memset(&sgx_secinfo, 0, sizeof(sgx_secinfo));
    sgx_pageinfo = (struct pageinfo){ 0, (u64)(ulong)&sgx_secs_src, (u64)(ulong)&sgx_secinfo, 0 };
    return encls(ECREATE, (ulong)&sgx_pageinfo, epc, 0);
}

static inline struct encls_res sgx_eadd_raw(u64 epc, u64 secs, u64 linaddr, const void *src, u64 flags)
{
    memcpy(sgx_src_page, src, 4096);
    memset(&sgx_secinfo, 0, sizeof(sgx_secinfo));
    sgx_secinfo.flags = flags;
    sgx_pageinfo = (struct pageinfo){ linaddr, (u64)(ulong)sgx_src_page, (u64)(ulong)&sgx_secinfo, secs };
    return encls(EADD, (ulong)&sgx_pageinfo, epc, 0);
}

static inline struct encls_res sgx_einit_raw(u64 secs, const u8 *sig)
{
    memcpy(sgx_sigstruct, sig, 1808);
    memset(sgx_token, 0, sizeof(sgx_token));
    return encls(EINIT, (ulong)sgx_sigstruct, secs, (ulong)sgx_token);
}

static inline const void *sgx_image_page(u32 offset)
{
    u64 len = (u64)(encl_image_end - encl_image);
    return offset < len ? encl_image + offset : sgx_zero_page;
}

/* Maps enclave page linear -> EPC page (user, writable: the EPCM decides) */
static inline void sgx_map_page(u64 linear, u64 epc)
{
    pt_map(&rt_boot_pt, linear, epc, 4096, 4096, PTE_W | PTE_U);
    invlpg(linear);
}

/* ECREATE + every layout page (EADD, EEXTEND as measured) at base; stops at the first
 * leaf that faults (returns it). modify(offset, page) may change a page's bytes. */
static inline struct encls_res sgx_build(struct enclave *e, u64 base, u64 attributes, u32 misc,
                                         void (*modify)(u32 offset, u8 *page))
{
    struct secs s;
    memset(e, 0, sizeof(*e));
    e->base = base;
    e->size = ENCL_SIZE;
    e->attributes = attributes;
    e->xfrm = 3;
    e->miscselect = misc;
    e->secs = epc_alloc();
    sgx_secs_init(&s, base, attributes, misc);
    struct encls_res r = sgx_ecreate_raw(e->secs, &s);
    if (r.vector != NO_EXCEPTION)
        return r;
    for (int i = 0; i < encl_npages; i++) {
        const struct layout_page *lp = &encl_pages[i];
        static u8 page[4096] ALIGNED(4096);
        memcpy(page, sgx_image_page(lp->offset), 4096);
        if (modify)
            modify(lp->offset, page);
        u64 epc = epc_alloc();
        u64 lin = base + lp->offset;
        r = sgx_eadd_raw(epc, e->secs, lin, page, SI_PT(lp->type) | (lp->type == PT_TCS ? 0 : lp->perms));
        if (r.vector != NO_EXCEPTION)
            return r;
        e->page[i] = epc;
        sgx_map_page(lin, epc);
        if (lp->measure)
            for (u64 c = 0; c < 4096; c += 256) {
                r = encls(EEXTEND, e->secs, epc + c, 0);
                if (r.vector != NO_EXCEPTION)
                    return r;
            }
    }
    return r;
}

/* the EPC page of the layout page at offset */
static inline u64 sgx_epc_of(const struct enclave *e, u32 offset)
{
    for (int i = 0; i < encl_npages; i++)
        if (encl_pages[i].offset == offset)
            return e->page[i];
    return 0;
}

/* ---------------------------------------------------------------- entering (ring 3) */
struct sgx_regs { u64 r[16]; u64 flags; };
struct sgx_call {
    struct sgx_regs in;  /* RAX leaf, RBX TCS, RCX AEP (0: the stub's), the rest as given */
    struct sgx_regs out; /* every register where the stub got control back */
    u64 how;             /* SGX_BACK_* */
};
enum { SGX_BACK_EEXIT = 0, SGX_BACK_AEX = 1, SGX_BACK_FAULT = 2 };
_Static_assert(sizeof(struct sgx_regs) == 136, "stub offsets");

/* the ring-3 stub */
extern u8 sgx_ucall[], sgx_enclu_insn[], sgx_after_enclu[], sgx_aep[], sgx_ufault[];
volatile u64 sgx_ustack, sgx_ucur, sgx_uscratch, sgx_uflags, sgx_uhow;
volatile u32 sgx_aep_resume; /* at the AEP: ERESUME at once (counting) instead of returning */
volatile u64 sgx_aep_count;
asm(".text\n"
    ".globl sgx_ucall\n"
    "sgx_ucall:\n"
    "  push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
    "  mov %rsp, sgx_ustack(%rip)\n"
    "  mov %rdi, sgx_ucur(%rip)\n"
    "  mov 8(%rdi), %rcx\n"
    "  test %rcx, %rcx\n"
    "  jnz 1f\n"
    "  lea sgx_aep(%rip), %rcx\n"
    "1: mov 16(%rdi), %rdx\n"
    "  mov 24(%rdi), %rbx\n"
    "  mov 40(%rdi), %rbp\n"
    "  mov 48(%rdi), %rsi\n"
    "  mov 64(%rdi), %r8\n"
    "  mov 72(%rdi), %r9\n"
    "  mov 80(%rdi), %r10\n"
    "  mov 88(%rdi), %r11\n"
    "  mov 96(%rdi), %r12\n"
    "  mov 104(%rdi), %r13\n"
    "  mov 112(%rdi), %r14\n"
    "  mov 120(%rdi), %r15\n"
    "  mov 0(%rdi), %rax\n"
    "  mov 56(%rdi), %rdi\n"
    ".globl sgx_enclu_insn\n"
    "sgx_enclu_insn:\n"
    "  .byte 0x0f, 0x01, 0xd7\n"
    ".globl sgx_after_enclu\n"
    "sgx_after_enclu:\n"
    "  mov %rax, sgx_uscratch(%rip)\n"
    "  pushfq\n"
    "  popq sgx_uflags(%rip)\n"
    "  movq $0, sgx_uhow(%rip)\n"
    "  jmp 2f\n"
    ".globl sgx_aep\n"
    "sgx_aep:\n"
    "  mov %rax, sgx_uscratch(%rip)\n"
    "  pushfq\n"
    "  popq sgx_uflags(%rip)\n"
    "  incq sgx_aep_count(%rip)\n"
    "  cmpl $0, sgx_aep_resume(%rip)\n"
    "  je 3f\n"
    "  mov sgx_uscratch(%rip), %rax\n"
    "  jmp sgx_enclu_insn\n"
    "3: movq $1, sgx_uhow(%rip)\n"
    "  jmp 2f\n"
    ".globl sgx_ufault\n"
    "sgx_ufault:\n"
    "  mov %rax, sgx_uscratch(%rip)\n"
    "  pushfq\n"
    "  popq sgx_uflags(%rip)\n"
    "  movq $2, sgx_uhow(%rip)\n"
    "2: mov sgx_ucur(%rip), %rax\n"
    "  mov %rcx, 136+8(%rax)\n"
    "  mov %rdx, 136+16(%rax)\n"
    "  mov %rbx, 136+24(%rax)\n"
    "  mov %rsp, 136+32(%rax)\n"
    "  mov %rbp, 136+40(%rax)\n"
    "  mov %rsi, 136+48(%rax)\n"
    "  mov %rdi, 136+56(%rax)\n"
    "  mov %r8, 136+64(%rax)\n"
    "  mov %r9, 136+72(%rax)\n"
    "  mov %r10, 136+80(%rax)\n"
    "  mov %r11, 136+88(%rax)\n"
    "  mov %r12, 136+96(%rax)\n"
    "  mov %r13, 136+104(%rax)\n"
    "  mov %r14, 136+112(%rax)\n"
    "  mov %r15, 136+120(%rax)\n"
    "  mov sgx_uscratch(%rip), %rcx\n"
    "  mov %rcx, 136(%rax)\n"
    "  mov sgx_uflags(%rip), %rcx\n"
    "  mov %rcx, 136+128(%rax)\n"
    "  mov sgx_uhow(%rip), %rcx\n"
    "  mov %rcx, 272(%rax)\n"
    "  mov sgx_ustack(%rip), %rsp\n"
    "  pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
    "  ret\n");

/* What the ring-0 handler saw of each event while a call ran */
struct sgx_event {
    int vector;
    u64 error, ip, cs, sp, flags, cr2;
    u64 ax, bx, cx, dx, bp, si, di, r8, r15;
    u64 xmm0; /* low quadword at the event (read with SSE, which the runtime never uses) */
};
#define SGX_MAX_EVENTS 64
static struct sgx_event sgx_events[SGX_MAX_EVENTS];
static volatile unsigned sgx_nevents;  /* events recorded (all of them counted) */
static int sgx_timer_vector = -1;       /* a LAPIC timer vector to EOI, if any */

__attribute__((unused)) static void sgx_event_handler(struct exc_frame *f)
{
    unsigned n = sgx_nevents++;
    if (n < SGX_MAX_EVENTS) {
        struct sgx_event *e = &sgx_events[n];
        e->vector = (int)f->vector;
        e->error = f->error;
        e->ip = f->ip;
        e->cs = f->cs;
        e->sp = f->sp;
        e->flags = f->flags;
        e->cr2 = f->vector == PF_VECTOR ? read_cr2() : 0;
        e->ax = f->ax;
        e->bx = f->bx;
        e->cx = f->cx;
        e->dx = f->dx;
        e->bp = f->bp;
        e->si = f->si;
        e->di = f->di;
        e->r8 = f->r8;
        e->r15 = f->r15;
        e->xmm0 = ~0ull;
        if ((read_cr4() & CR4_OSFXSR) && !(read_cr0() & (CR0_TS | CR0_EM)))
            asm volatile("movq %%xmm0, %0" : "=r"(e->xmm0));
    }
    if ((int)f->vector == sgx_timer_vector) {
        apic_eoi();
        return;
    }
    if (f->ip == (ulong)sgx_aep)
        return; /* an AEX: back to the AEP */
    if (f->ip == (ulong)sgx_enclu_insn) {
        f->ip = (ulong)sgx_ufault; /* the ENCLU itself faulted */
        return;
    }
    panic("unexpected vector %lu error %#lx at %#lx during an enclave call", f->vector, f->error, f->ip);
}

__attribute__((unused)) static ulong sgx_user_fn(ulong arg)
{
    return ((ulong(*)(ulong))(ulong)sgx_ucall)(arg);
}

__attribute__((unused)) static const int sgx_vectors[] = { DE_VECTOR, DB_VECTOR, BP_VECTOR, UD_VECTOR, NM_VECTOR,
                                   GP_VECTOR, PF_VECTOR, SS_VECTOR, NP_VECTOR, AC_VECTOR,
                                   MF_VECTOR, XM_VECTOR, BR_VECTOR, OF_VECTOR };

/* Runs ENCLU[leaf] at CPL 3 with RBX = tcs and the other registers from c->in; returns
 * how the stub got back (SGX_BACK_*). Events are recorded from index 0. */
static inline u64 sgx_call(struct sgx_call *c, u64 leaf, u64 tcs)
{
    c->in.r[GAX] = leaf;
    c->in.r[GBX] = tcs;
    sgx_nevents = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(sgx_vectors); i++)
        exc_set_handler(sgx_vectors[i], sgx_event_handler);
    if (sgx_timer_vector >= 0)
        exc_set_handler(sgx_timer_vector, sgx_event_handler);
    memset(&c->out, 0, sizeof(c->out));
    c->how = ~0ull;
    run_user(sgx_user_fn, (ulong)c, FL_IF);
    for (unsigned i = 0; i < ARRAY_SIZE(sgx_vectors); i++)
        exc_set_handler(sgx_vectors[i], NULL);
    if (sgx_timer_vector >= 0)
        exc_set_handler(sgx_timer_vector, NULL);
    return c->how;
}

/* An EENTER with RDI = cmd, RSI = buf, RDX = a1, R8 = a2, R9 = a3 */
static inline u64 sgx_cmd(struct sgx_call *c, u64 tcs, u64 cmd, const void *buf, u64 a1, u64 a2, u64 a3)
{
    memset(&c->in, 0, sizeof(c->in));
    c->in.r[GDI] = cmd;
    c->in.r[GSI] = (ulong)buf;
    c->in.r[GDX] = a1;
    c->in.r[G8] = a2;
    c->in.r[G9] = a3;
    return sgx_call(c, EENTER, tcs);
}

/* ---------------------------------------------------------------- AES-128, AES-CMAC */
static const u8 aes_sbox[256] __attribute__((unused)) = {
    0x63,0x7c,0x77,0x7b,0xf2,0x6b,0x6f,0xc5,0x30,0x01,0x67,0x2b,0xfe,0xd7,0xab,0x76,
    0xca,0x82,0xc9,0x7d,0xfa,0x59,0x47,0xf0,0xad,0xd4,0xa2,0xaf,0x9c,0xa4,0x72,0xc0,
    0xb7,0xfd,0x93,0x26,0x36,0x3f,0xf7,0xcc,0x34,0xa5,0xe5,0xf1,0x71,0xd8,0x31,0x15,
    0x04,0xc7,0x23,0xc3,0x18,0x96,0x05,0x9a,0x07,0x12,0x80,0xe2,0xeb,0x27,0xb2,0x75,
    0x09,0x83,0x2c,0x1a,0x1b,0x6e,0x5a,0xa0,0x52,0x3b,0xd6,0xb3,0x29,0xe3,0x2f,0x84,
    0x53,0xd1,0x00,0xed,0x20,0xfc,0xb1,0x5b,0x6a,0xcb,0xbe,0x39,0x4a,0x4c,0x58,0xcf,
    0xd0,0xef,0xaa,0xfb,0x43,0x4d,0x33,0x85,0x45,0xf9,0x02,0x7f,0x50,0x3c,0x9f,0xa8,
    0x51,0xa3,0x40,0x8f,0x92,0x9d,0x38,0xf5,0xbc,0xb6,0xda,0x21,0x10,0xff,0xf3,0xd2,
    0xcd,0x0c,0x13,0xec,0x5f,0x97,0x44,0x17,0xc4,0xa7,0x7e,0x3d,0x64,0x5d,0x19,0x73,
    0x60,0x81,0x4f,0xdc,0x22,0x2a,0x90,0x88,0x46,0xee,0xb8,0x14,0xde,0x5e,0x0b,0xdb,
    0xe0,0x32,0x3a,0x0a,0x49,0x06,0x24,0x5c,0xc2,0xd3,0xac,0x62,0x91,0x95,0xe4,0x79,
    0xe7,0xc8,0x37,0x6d,0x8d,0xd5,0x4e,0xa9,0x6c,0x56,0xf4,0xea,0x65,0x7a,0xae,0x08,
    0xba,0x78,0x25,0x2e,0x1c,0xa6,0xb4,0xc6,0xe8,0xdd,0x74,0x1f,0x4b,0xbd,0x8b,0x8a,
    0x70,0x3e,0xb5,0x66,0x48,0x03,0xf6,0x0e,0x61,0x35,0x57,0xb9,0x86,0xc1,0x1d,0x9e,
    0xe1,0xf8,0x98,0x11,0x69,0xd9,0x8e,0x94,0x9b,0x1e,0x87,0xe9,0xce,0x55,0x28,0xdf,
    0x8c,0xa1,0x89,0x0d,0xbf,0xe6,0x42,0x68,0x41,0x99,0x2d,0x0f,0xb0,0x54,0xbb,0x16,
};

static inline u8 aes_xtime(u8 x) { return (u8)((x << 1) ^ ((x & 0x80) ? 0x1b : 0)); }

static inline void aes128_encrypt(const u8 key[16], const u8 in[16], u8 out[16])
{
    u8 rk[176], s[16];
    memcpy(rk, key, 16);
    u8 rcon = 1;
    for (int i = 16; i < 176; i += 4) {
        u8 t[4] = { rk[i - 4], rk[i - 3], rk[i - 2], rk[i - 1] };
        if (i % 16 == 0) {
            u8 t0 = t[0];
            t[0] = (u8)(aes_sbox[t[1]] ^ rcon);
            t[1] = aes_sbox[t[2]];
            t[2] = aes_sbox[t[3]];
            t[3] = aes_sbox[t0];
            rcon = aes_xtime(rcon);
        }
        for (int j = 0; j < 4; j++)
            rk[i + j] = rk[i - 16 + j] ^ t[j];
    }
    for (int i = 0; i < 16; i++)
        s[i] = in[i] ^ rk[i];
    for (int round = 1; round <= 10; round++) {
        u8 t[16];
        for (int i = 0; i < 16; i++) /* SubBytes + ShiftRows (column-major state) */
            t[i] = aes_sbox[s[(i + 4 * (i % 4)) % 16]];
        if (round < 10)
            for (int c = 0; c < 4; c++) { /* MixColumns */
                u8 *col = t + 4 * c, a0 = col[0], a1 = col[1], a2 = col[2], a3 = col[3];
                u8 all = a0 ^ a1 ^ a2 ^ a3;
                col[0] ^= all ^ aes_xtime(a0 ^ a1);
                col[1] ^= all ^ aes_xtime(a1 ^ a2);
                col[2] ^= all ^ aes_xtime(a2 ^ a3);
                col[3] ^= all ^ aes_xtime(a3 ^ a0);
            }
        for (int i = 0; i < 16; i++)
            s[i] = t[i] ^ rk[16 * round + i];
    }
    memcpy(out, s, 16);
}

static inline void cmac_double(u8 b[16])
{
    u8 carry = b[0] >> 7;
    for (int i = 0; i < 15; i++)
        b[i] = (u8)(b[i] << 1 | b[i + 1] >> 7);
    b[15] = (u8)(b[15] << 1) ^ (carry ? 0x87 : 0);
}

/* AES-128-CMAC (RFC 4493) */
static inline void aes_cmac(const u8 key[16], const u8 *msg, size_t len, u8 mac[16])
{
    u8 k1[16] = { 0 }, k2[16], x[16] = { 0 }, last[16];
    aes128_encrypt(key, k1, k1);
    cmac_double(k1);
    memcpy(k2, k1, 16);
    cmac_double(k2);
    size_t n = len ? (len + 15) / 16 : 1;
    bool complete = len && len % 16 == 0;
    for (size_t b = 0; b + 1 < n; b++) {
        for (int i = 0; i < 16; i++)
            x[i] ^= msg[16 * b + i];
        aes128_encrypt(key, x, x);
    }
    size_t rest = len - 16 * (n - 1);
    for (int i = 0; i < 16; i++) {
        u8 m = (size_t)i < rest ? msg[16 * (n - 1) + i] : (size_t)i == rest ? 0x80 : 0;
        last[i] = m ^ (complete ? k1[i] : k2[i]);
    }
    for (int i = 0; i < 16; i++)
        x[i] ^= last[i];
    aes128_encrypt(key, x, mac);
}

#endif

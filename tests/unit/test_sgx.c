/* Unit tests of SGX's state and options: the state descriptions (cpu/sgx/state.c) cover
 * their structs; a machine with an EPC holding a built, initialised enclave and a vCPU
 * inside it saves, restores into a second machine and saves again bit for bit, and both
 * go on the same way (an AEX included); the loader refuses a corrupted EPC (a page beyond
 * the EPC, impossible EPCM entries, a child of no enclave, another EPC layout, truncation)
 * and a vCPU in an enclave whose pages are not there, with a message and without a crash.
 * Then the command line's SGX options (cli/sgx_options.c): -object memory-backend-epc,
 * -M sgx-epc.N, -sgx-epc, -sgx-key FILE (made once, then reused).
 *
 * The enclave is built by the vCPU itself: the test writes page tables, descriptor
 * tables and code into the machine's RAM and runs ENCLS (ECREATE, EADD, EEXTEND, EINIT
 * with a SIGSTRUCT signed here with a fresh RSA-3072 key) and then EENTER from CPL 3. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "cli/sgx_options.h"
#include "control/snapshot.h"
#include "cpu/exec.h"
#include "cpu/sgx/sgx_internal.h"
#include "machine/machine.h"
#include "machine/state.h"

/* ---------------------------------------------------------------- the descriptions */
Test(sgx_state, descriptions_cover_their_structs)
{
    int n = 0;
    for (int k = 0; sgx_state_descs(k); k++, n++) {
        char err[300] = "";
        const struct state_desc *d = sgx_state_descs(k);
        cr_expect_eq(state_desc_check(d, err, sizeof(err)), 0, "%s: %s", d->name, err);
    }
    cr_expect_eq(n, 3, "the vCPU's, the EPC's and the EPCM entry's");
}

/* ---------------------------------------------------------------- a machine with an enclave */
#define EPC_PAGES 64
#define PML4 0x1000u
#define PDPT0 0x2000u
#define PD0 0x3000u      /* 0-1 GiB, 2 MiB pages */
#define PD_EPC 0x4000u   /* the EPC's GiB */
#define PT_EPC 0x5000u
#define PDPT1 0x6000u    /* ELRANGE at 512 GiB */
#define PD_E 0x7000u
#define PT_E 0x8000u
#define GDT 0x9000u
#define TSS 0x9100u
#define IDT 0xa000u
#define HANDLER 0xb000u  /* every vector: hlt; jmp $-1 */
#define KCODE 0x10000u
#define UCODE 0x11000u
#define AEP 0x11100u
#define USTACK 0x12000u
#define KSTACK 0x13000u
#define PAGEINFO 0x14000u
#define SECINFO 0x14040u
#define TOKEN 0x14200u
#define SRC 0x15000u
#define SIGSTRUCT 0x16000u
#define BASE 0x8000000000ull
#define ENCL_SIZE 0x4000ull
/* the enclave: SECS (EPC 0), TCS (1, +0), code (2, +0x1000, RX, measured), SSA (3, +0x2000),
 * data (4, +0x3000, RW) */

static struct machine a, b;

static void teardown(void)
{
    machine_destroy(&a);
    machine_destroy(&b);
}

static void make(struct machine *m, int nsections, u64 pages)
{
    struct machine_config cfg = {
        .ram_size = 64 * MiB,
        .ncpus = 2,
        .console_in_fd = -1,
        .console_out_fd = -1,
        .deterministic = true,
    };
    cfg.sgx.nsections = nsections;
    for (int s = 0; s < nsections; s++)
        cfg.sgx.section[s].size = pages * 4096;
    cr_assert_eq(machine_create(m, &cfg), 0);
    if (nsections)
        cr_assert(m->sgx_epc && m->cpu[0]->sgx);
}

static void w64(struct machine *m, u64 pa, u64 v) { cr_assert_eq(mem_write(&m->mem, pa, &v, 8), 0); }
static void wbytes(struct machine *m, u64 pa, const void *p, size_t n)
{
    cr_assert_eq(mem_write(&m->mem, pa, p, n), 0);
}
static u64 epc_base(const struct machine *m) { return m->sgx_epc->cfg.section[0].base; }

/* Paging for RAM, the EPC at its physical address and ELRANGE; GDT, TSS, IDT; vCPU 0 at
 * CPL 0 in 64-bit mode with SGX enabled in FEATURE_CONTROL. */
static void environment(struct machine *m)
{
    u64 epc = epc_base(m);
    w64(m, PML4, PDPT0 | 7);
    w64(m, PML4 + 8, PDPT1 | 7);
    w64(m, PDPT0, PD0 | 7);
    w64(m, PDPT0 + 8 * (epc >> 30), PD_EPC | 7);
    for (u64 k = 0; k < 512; k++)
        w64(m, PD0 + 8 * k, k << 21 | 0x87);
    w64(m, PD_EPC + 8 * ((epc >> 21) & 511), PT_EPC | 7);
    for (u64 k = 0; k < EPC_PAGES; k++)
        w64(m, PT_EPC + 8 * k, (epc + 4096 * k) | 7);
    w64(m, PDPT1, PD_E | 7);
    w64(m, PD_E, PT_E | 7);
    for (u64 k = 0; k < 4; k++)
        w64(m, PT_E + 8 * k, (epc + 4096 * (k + 1)) | 7);
    w64(m, GDT + 8, 0x00af9b000000ffffull);
    w64(m, GDT + 16, 0x00cf93000000ffffull);
    w64(m, GDT + 24, 0x00008b0000000067ull | (u64)TSS << 16);
    w64(m, GDT + 40, 0x00affb000000ffffull);
    w64(m, GDT + 48, 0x00cff3000000ffffull);
    w64(m, TSS + 4, KSTACK);
    for (u64 v = 0; v < 256; v++) {
        w64(m, IDT + 16 * v, (HANDLER & 0xffff) | 0x08ull << 16 | 0x8eull << 40);
        w64(m, IDT + 16 * v + 8, 0);
    }
    static const u8 handler[] = { 0xf4, 0xeb, 0xfd }; /* hlt; jmp $-1 */
    wbytes(m, HANDLER, handler, sizeof(handler));
    struct cpu *c = m->cpu[0];
    c->gdtr = (struct dtr){ GDT, 0x37 };
    c->idtr = (struct dtr){ IDT, 0xfff };
    c->cr3 = PML4;
    c->cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    c->efer = EFER_LME | EFER_LMA | EFER_SCE | EFER_NXE;
    c->cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_WP | CR0_MP;
    cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xa09b);
    for (int s = 0; s < 6; s++)
        if (s != SEG_CS)
            cpu_set_seg(c, s, 0x10, 0, 0xffffffff, 0xc093);
    c->tr = (struct seg){ 0x18, TSS, 0x67, 0x8b };
    c->ldtr = (struct seg){ 0, 0, 0, SEG_ATTR_UNUSABLE };
    c->gpr[R_RSP] = KSTACK;
    c->rflags = FL_FIXED1;
    cpu_update_mode(c);
    mmu_update(c);
    c->msr_feature_control = BIT(0) | FEATURE_CONTROL_SGX | FEATURE_CONTROL_SGX_LC;
}

/* One ENCLS at CPL 0: it must not fault; returns RAX. */
static u64 encls(struct machine *m, u32 leaf, u64 rbx, u64 rcx, u64 rdx)
{
    static const u8 code[] = { 0x0f, 0x01, 0xcf, 0xf4 }; /* encls; hlt */
    struct cpu *c = m->cpu[0];
    wbytes(m, KCODE, code, sizeof(code));
    c->rip = KCODE;
    c->state = CPU_RUNNING;
    c->gpr[R_RAX] = leaf;
    c->gpr[R_RBX] = rbx;
    c->gpr[R_RCX] = rcx;
    c->gpr[R_RDX] = rdx;
    cpu_run(c, 2);
    cr_assert(c->rip == KCODE + sizeof(code) && c->state == CPU_HALTED,
              "ENCLS[%u] faulted (rip %#llx)", leaf, (unsigned long long)c->rip);
    return c->gpr[R_RAX];
}

static EVP_PKEY *rsa3072_e3(void)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM *e = BN_new();
    EVP_PKEY *key = NULL;
    cr_assert(ctx && e && BN_set_word(e, 3));
    cr_assert_eq(EVP_PKEY_keygen_init(ctx), 1);
    cr_assert_eq(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 3072), 1);
    cr_assert_eq(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e), 1);
    cr_assert_eq(EVP_PKEY_generate(ctx, &key), 1);
    BN_free(e);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

/* A SIGSTRUCT for MRENCLAVE mr and these attributes; mrsigner gets SHA-256(modulus). */
static void sign(u8 ss[SGX_SIGSTRUCT_SIZE], const u8 mr[32], u64 attributes, u8 mrsigner[32])
{
    static const u8 header[16] = { 6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0 };
    static const u8 header2[16] = { 1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0 };
    memset(ss, 0, SGX_SIGSTRUCT_SIZE);
    memcpy(ss, header, 16);
    memcpy(ss + SGX_SIGSTRUCT_HEADER2, header2, 16);
    wr64(ss, SGX_SIGSTRUCT_ATTRIBUTES, attributes);
    wr64(ss, SGX_SIGSTRUCT_ATTRIBUTES + 8, 3);
    wr64(ss, SGX_SIGSTRUCT_ATTRIBUTEMASK, ~(u64)ATTR_INIT);
    wr64(ss, SGX_SIGSTRUCT_ATTRIBUTEMASK + 8, ~0ull);
    memcpy(ss + SGX_SIGSTRUCT_ENCLAVEHASH, mr, 32);
    EVP_PKEY *key = rsa3072_e3();
    BIGNUM *n = NULL;
    cr_assert_eq(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    cr_assert_eq(BN_bn2lebinpad(n, ss + SGX_SIGSTRUCT_MODULUS, 384), 384);
    wr32(ss, SGX_SIGSTRUCT_EXPONENT, 3);
    u8 msg[256], sig[384];
    memcpy(msg, ss, 128);
    memcpy(msg + 128, ss + SGX_SIGSTRUCT_BODY, 128);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t len = sizeof(sig);
    cr_assert(md);
    cr_assert_eq(EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL), 1);
    cr_assert_eq(EVP_DigestSign(md, sig, &len, msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 384; i++)
        ss[SGX_SIGSTRUCT_SIGNATURE + i] = sig[383 - i];
    /* Q1 = floor(S^2 / M), Q2 = floor((S^3 - Q1*S*M) / M) */
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *s = BN_lebin2bn(ss + SGX_SIGSTRUCT_SIGNATURE, 384, NULL);
    BIGNUM *s2 = BN_new(), *s3 = BN_new(), *q1 = BN_new(), *t = BN_new(), *q2 = BN_new();
    cr_assert(bn && s && s2 && s3 && q1 && t && q2);
    cr_assert(BN_mul(s2, s, s, bn) && BN_div(q1, NULL, s2, n, bn) && BN_mul(s3, s2, s, bn));
    cr_assert(BN_mul(t, q1, s, bn) && BN_mul(t, t, n, bn) && BN_sub(s3, s3, t) &&
              BN_div(q2, NULL, s3, n, bn));
    cr_assert_eq(BN_bn2lebinpad(q1, ss + SGX_SIGSTRUCT_Q1, 384), 384);
    cr_assert_eq(BN_bn2lebinpad(q2, ss + SGX_SIGSTRUCT_Q2, 384), 384);
    BN_free(q2), BN_free(t), BN_free(q1), BN_free(s3), BN_free(s2), BN_free(s), BN_free(n);
    BN_CTX_free(bn);
    EVP_PKEY_free(key);
    sgx_sha256(ss + SGX_SIGSTRUCT_MODULUS, 384, mrsigner);
}

static void add_page(struct machine *m, u64 epc_index, u64 offset, u64 secinfo, const u8 *page, bool measure)
{
    u64 epc = epc_base(m);
    wbytes(m, SRC, page, 4096);
    w64(m, SECINFO, secinfo);
    w64(m, PAGEINFO, BASE + offset);
    w64(m, PAGEINFO + 8, SRC);
    w64(m, PAGEINFO + 16, SECINFO);
    w64(m, PAGEINFO + 24, epc);
    encls(m, 1, PAGEINFO, epc + 4096 * epc_index, 0);
    if (measure)
        for (u64 o = 0; o < 4096; o += 256)
            encls(m, 6, 0, epc + 4096 * epc_index + o, 0);
}

/* The enclave's code: inc qword [rip -> data page]; jmp back (forever) */
static const u8 enclave_code[] = { 0x48, 0xff, 0x05, 0xf9, 0x1f, 0x00, 0x00, 0xeb, 0xf7 };

/* Builds and initialises the enclave in m's EPC with a SIGSTRUCT signed now (or the one
 * given, made for the same enclave), the hash MSRs naming its signer. */
static void build_enclave(struct machine *m, u8 sig[SGX_SIGSTRUCT_SIZE], bool signed_already)
{
    environment(m);
    u64 epc = epc_base(m);
    u64 attrs = ATTR_MODE64BIT | ATTR_DEBUG;
    u8 page[4096] = { 0 };
    wr64(page, SECS_SIZE, ENCL_SIZE);
    wr64(page, SECS_BASEADDR, BASE);
    wr32(page, SECS_SSAFRAMESIZE, 1);
    wr64(page, SECS_ATTRIBUTES, attrs);
    wr64(page, SECS_ATTRIBUTES + 8, 3);
    wbytes(m, SRC, page, 4096);
    w64(m, SECINFO, 0);
    w64(m, PAGEINFO, 0);
    w64(m, PAGEINFO + 8, SRC);
    w64(m, PAGEINFO + 16, SECINFO);
    w64(m, PAGEINFO + 24, 0);
    encls(m, 0, PAGEINFO, epc, 0);
    memset(page, 0, sizeof(page));
    wr64(page, TCS_OSSA, 0x2000);
    wr32(page, TCS_NSSA, 1);
    wr64(page, TCS_OENTRY, 0x1000);
    wr64(page, TCS_OFSBASE, 0x3000);
    wr64(page, TCS_OGSBASE, 0x3000);
    wr32(page, TCS_FSLIMIT, 0xfff);
    wr32(page, TCS_GSLIMIT, 0xfff);
    add_page(m, 1, 0, (u64)PT_TCS << 8, page, true);
    memset(page, 0, sizeof(page));
    memcpy(page, enclave_code, sizeof(enclave_code));
    add_page(m, 2, 0x1000, (u64)PT_REG << 8 | SECINFO_R | SECINFO_X, page, true);
    memset(page, 0, sizeof(page));
    add_page(m, 3, 0x2000, (u64)PT_REG << 8 | SECINFO_R | SECINFO_W, page, false);
    add_page(m, 4, 0x3000, (u64)PT_REG << 8 | SECINFO_R | SECINFO_W, page, false);
    u8 mr[32], mrsigner[32];
    sgx_measure_final(&secs_private(m->sgx_epc, 0)->measure, mr);
    if (!signed_already)
        sign(sig, mr, attrs, mrsigner);
    else
        sgx_sha256(sig + SGX_SIGSTRUCT_MODULUS, 384, mrsigner);
    memcpy(m->cpu[0]->sgx->lepubkeyhash, mrsigner, 32);
    wbytes(m, SIGSTRUCT, sig, SGX_SIGSTRUCT_SIZE);
    cr_assert_eq(encls(m, 2, SIGSTRUCT, epc, TOKEN), 0, "EINIT");
}

/* From CPL 0: IRETQ to CPL 3, EENTER (AEP: jmp $); runs until the vCPU is inside. */
static void enter_enclave(struct machine *m)
{
    struct cpu *c = m->cpu[0];
    u8 k[64], u[64];
    size_t n = 0;
#define K(...) do { const u8 b_[] = { __VA_ARGS__ }; memcpy(k + n, b_, sizeof(b_)); n += sizeof(b_); } while (0)
    K(0x6a, 0x33, 0x68, USTACK & 0xff, (USTACK >> 8) & 0xff, USTACK >> 16, 0);  /* push ss; push rsp */
    K(0x68, 0x02, 0x00, 0x00, 0x00);                                           /* push rflags */
    K(0x6a, 0x2b, 0x68, UCODE & 0xff, (UCODE >> 8) & 0xff, UCODE >> 16, 0);    /* push cs; push rip */
    K(0x48, 0xcf);                                                             /* iretq */
#undef K
    wbytes(m, KCODE, k, n);
    n = 0;
    const u8 user[] = {
        0xb8, 0x02, 0x00, 0x00, 0x00,                         /* mov eax, 2 (EENTER) */
        0x48, 0xbb, 0, 0, 0, 0, 0x80, 0, 0, 0,                /* mov rbx, BASE (the TCS) */
        0x48, 0xc7, 0xc1, AEP & 0xff, (AEP >> 8) & 0xff, AEP >> 16, 0, /* mov rcx, AEP */
        0x0f, 0x01, 0xd7,                                     /* enclu */
    };
    memcpy(u, user, sizeof(user));
    wbytes(m, UCODE, u, sizeof(user));
    static const u8 aep[] = { 0xeb, 0xfe };                   /* AEP: jmp $ */
    wbytes(m, AEP, aep, sizeof(aep));
    c->rip = KCODE;
    c->state = CPU_RUNNING;
    cpu_run(c, 300);
    cr_assert(c->enclave_mode, "EENTER (rip %#llx)", (unsigned long long)c->rip);
    cr_assert_eq(c->cpl, 3);
}

static void save(struct machine *m, struct state_buf *buf)
{
    *buf = (struct state_buf){ 0 };
    machine_state_save(m, buf);
    cr_assert(!buf->oom);
}

static void expect_same_saves(struct machine *x, struct machine *y, const char *when)
{
    struct state_buf s1, s2;
    save(x, &s1);
    save(y, &s2);
    cr_expect(s1.len == s2.len && !memcmp(s1.p, s2.p, s1.len), "%s: the machines save differently", when);
    state_buf_free(&s1);
    state_buf_free(&s2);
}

static u8 sig_a[SGX_SIGSTRUCT_SIZE];

/* The machine state leaves RAM out (a snapshot adds it): the part the tests use, copied */
#define RAM_USED 0x20000u
static void copy_ram(struct machine *from, struct machine *to)
{
    static u8 buf[RAM_USED];
    cr_assert_eq(mem_read(&from->mem, 0, buf, sizeof(buf)), 0);
    wbytes(to, 0, buf, sizeof(buf));
}


Test(sgx_state, round_trip_inside_an_enclave, .fini = teardown)
{
    make(&a, 1, EPC_PAGES);
    make(&b, 1, EPC_PAGES);
    build_enclave(&a, sig_a, false);
    enter_enclave(&a);
    cpu_run(a.cpu[0], 1000); /* the enclave counts in its data page */
    cr_assert(a.cpu[0]->enclave_mode);

    struct state_buf s1, s2;
    save(&a, &s1);
    char err[300] = "";
    cr_assert_eq(machine_state_load(&b, s1.p, s1.len, err, sizeof(err)), 0, "%s", err);
    copy_ram(&a, &b);
    save(&b, &s2);
    cr_expect(s1.len == s2.len && !memcmp(s1.p, s2.p, s1.len), "a reloaded machine saves differently");
    /* the EPC itself, byte for byte, and the vCPU's enclave registers */
    struct sgx_epc *ea = a.sgx_epc, *eb = b.sgx_epc;
    cr_expect_arr_eq(ea->bytes, eb->bytes, EPC_PAGES * 4096, "EPC bytes");
    cr_expect_arr_eq(ea->epcm, eb->epcm, EPC_PAGES * sizeof(struct sgx_epcm), "EPCM");
    cr_expect_arr_eq(ea->cfg.root_secret, eb->cfg.root_secret, 32, "the keys' root secret");
    cr_expect(b.cpu[0]->enclave_mode);
    const struct sgx_cpu *ca = a.cpu[0]->sgx, *cb = b.cpu[0]->sgx;
    cr_expect(ca->secs == cb->secs && ca->tcs == cb->tcs && ca->tcs_la == cb->tcs_la &&
              ca->ssa_first == cb->ssa_first && ca->ssa_last == cb->ssa_last && ca->aep == cb->aep &&
              ca->elrange_base == cb->elrange_base && ca->elrange_size == cb->elrange_size &&
              !memcmp(ca->lepubkeyhash, cb->lepubkeyhash, 32), "the vCPU's enclave registers");
    state_buf_free(&s1);
    state_buf_free(&s2);

    /* both go on alike: more of the enclave's loop (decoded again from the restored EPC in
     * b), then an NMI: an AEX to the AEP, the SSA frame written, then the handler */
    cpu_run(a.cpu[0], 777);
    cpu_run(b.cpu[0], 777);
    expect_same_saves(&a, &b, "777 instructions later");
    cr_expect(a.cpu[0]->enclave_mode && b.cpu[0]->enclave_mode);
    u64 count = rd64(epc_page(eb, 4), 0);
    cr_expect_gt(count, 300, "the enclave ran in b (%llu)", (unsigned long long)count);
    cpu_nmi(a.cpu[0]);
    cpu_nmi(b.cpu[0]);
    cpu_run(a.cpu[0], 50);
    cpu_run(b.cpu[0], 50);
    cr_expect(!a.cpu[0]->enclave_mode && !b.cpu[0]->enclave_mode, "the NMI made an AEX");
    cr_expect_eq(rd32(epc_page(eb, 1), TCS_CSSA), 1, "the AEX moved CSSA on");
    cr_expect_eq(rd64(epc_page(eb, 3), 4096 - GPRSGX_SIZE + GPR_RIP) & ~0xfull, BASE + 0x1000,
                 "the SSA frame holds the enclave's RIP");
    expect_same_saves(&a, &b, "after the AEX");

    /* and the machine restored outside the enclave, after the AEX, the same */
    save(&a, &s1);
    cr_assert_eq(machine_state_load(&b, s1.p, s1.len, err, sizeof(err)), 0, "%s", err);
    save(&b, &s2);
    cr_expect(s1.len == s2.len && !memcmp(s1.p, s2.p, s1.len), "after the AEX: a reloaded machine saves differently");
    state_buf_free(&s1);
    state_buf_free(&s2);
}

/* The whole machine through a snapshot file (RAM and state), inside the enclave: the
 * restored machine's digest is the saved one's, and it goes on to the same digest. */
Test(sgx_state, snapshot_inside_an_enclave, .fini = teardown)
{
    make(&a, 1, EPC_PAGES);
    build_enclave(&a, sig_a, false);
    enter_enclave(&a);
    cpu_run(a.cpu[0], 500);
    char err[300] = "", path[] = "/tmp/nestor-sgx-snap.XXXXXX";
    cr_assert(snapshot_supported(&a, err, sizeof(err)), "%s", err);
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(snapshot_save_file(&a, path, NULL, err, sizeof(err)), 0, "%s", err);
    make(&b, 1, EPC_PAGES);
    cr_assert_eq(snapshot_load_file(&b, path, err, sizeof(err)), 0, "%s", err);
    unlink(path);
    char da[65], db[65];
    snapshot_digest(&a, da);
    snapshot_digest(&b, db);
    cr_expect_str_eq(da, db, "restored");
    cr_expect(b.cpu[0]->enclave_mode);
    cpu_run(a.cpu[0], 1234);
    cpu_run(b.cpu[0], 1234);
    snapshot_digest(&a, da);
    snapshot_digest(&b, db);
    cr_expect_str_eq(da, db, "1234 instructions later");
}

/* ---------------------------------------------------------------- refusals */
/* A section of a serialised state: where its fields' values and its variable part are */
struct section {
    size_t start, var, var_len, end;
};

/* Finds section name.instance; field (if not NULL) gets the offset of that field's value */
static bool find_section(const struct state_buf *s, const char *name, u32 instance,
                         struct section *out, const char *field, size_t *field_at)
{
    size_t pos = 0;
#define U32(at) ((u32)s->p[at] | (u32)s->p[(at) + 1] << 8 | (u32)s->p[(at) + 2] << 16 | (u32)s->p[(at) + 3] << 24)
    while (pos + 8 <= s->len) {
        size_t start = pos;
        cr_assert_eq(U32(pos), 0x54434553u, "not a section at %zu", pos);
        u32 nl = U32(pos + 4);
        bool match = nl == strlen(name) && !memcmp(s->p + pos + 8, name, nl);
        pos += 8 + nl;
        u32 inst = U32(pos), nf = U32(pos + 8);
        match = match && inst == instance;
        pos += 12;
        for (u32 k = 0; k < nf; k++) {
            u32 fl = U32(pos);
            bool this_field = match && field && fl == strlen(field) && !memcmp(s->p + pos + 4, field, fl);
            pos += 4 + fl;
            u32 size = U32(pos);
            pos += 4;
            if (this_field)
                *field_at = pos;
            pos += size;
        }
        u64 extra = U32(pos) | (u64)U32(pos + 4) << 32;
        pos += 8;
        if (match) {
            *out = (struct section){ start, pos, (size_t)extra, pos + (size_t)extra };
            return true;
        }
        pos += (size_t)extra;
    }
#undef U32
    return false;
}

/* The EPC section's variable part: sections, root secret, then per page index (8),
 * EPCM entry (valid, type, perms, pending, modified, pr, blocked: 1 each; secs 4,
 * linaddr 8, blocked_epoch 8, modify_epoch 8) and 4096 bytes */
#define EPCM_PACKED 35
#define PAGE_RECORD (8 + EPCM_PACKED + 4096)
static size_t epc_record(const struct section *sec, int nsections, int k)
{
    return sec->var + 4 + 16 * (size_t)nsections + 32 + (size_t)k * PAGE_RECORD;
}

static void expect_refused(struct machine *m, const struct state_buf *s, const char *want)
{
    char err[300] = "";
    cr_expect_eq(machine_state_load(m, s->p, s->len, err, sizeof(err)), -1, "accepted (%s)", want);
    cr_expect(strstr(err, want), "'%s' does not say '%s'", err, want);
}

static void put64(u8 *p, u64 v) { memcpy(p, &v, 8); }

Test(sgx_state, refusals, .fini = teardown)
{
    make(&a, 1, EPC_PAGES);
    make(&b, 1, EPC_PAGES);
    build_enclave(&a, sig_a, false);
    enter_enclave(&a);
    struct state_buf s;
    save(&a, &s);
    u8 *copy = malloc(s.len);
    cr_assert(copy);
    memcpy(copy, s.p, s.len);
    struct section epc;
    cr_assert(find_section(&s, "sgx.epc", 0, &epc, NULL, NULL));
    cr_assert_eq(epc.var_len, 4 + 16 + 32 + 5 * PAGE_RECORD + 8, "five pages saved");
    size_t rec0 = epc_record(&epc, 1, 0), rec2 = epc_record(&epc, 1, 2);
    cr_assert_eq(s.p[rec0], 0, "page 0 first");

    /* a page beyond the EPC */
    put64(s.p + rec2, EPC_PAGES);
    expect_refused(&b, &s, "beyond the EPC");
    put64(s.p + rec2, ~0ull - 1);
    expect_refused(&b, &s, "beyond the EPC");
    memcpy(s.p, copy, s.len);
    /* impossible EPCM entries: not valid, a type past PT_TRIM, a permission bit past X, a
     * child whose SECS index is beyond the EPC */
    s.p[rec2 + 8] = 0;
    expect_refused(&b, &s, "impossible EPCM entry");
    memcpy(s.p, copy, s.len);
    s.p[rec2 + 8 + 1] = 5;
    expect_refused(&b, &s, "impossible EPCM entry");
    s.p[rec2 + 8 + 1] = 0xff;
    expect_refused(&b, &s, "impossible EPCM entry");
    memcpy(s.p, copy, s.len);
    s.p[rec2 + 8 + 2] = 8;
    expect_refused(&b, &s, "impossible EPCM entry");
    memcpy(s.p, copy, s.len);
    s.p[rec2 + 8 + 7 + 2] = 0x40; /* secs = 0x400000 */
    expect_refused(&b, &s, "impossible EPCM entry");
    memcpy(s.p, copy, s.len);
    /* a child whose SECS is no SECS (page 2, the code page) */
    s.p[rec2 + 8 + 7] = 2;
    expect_refused(&b, &s, "belongs to no enclave");
    memcpy(s.p, copy, s.len);
    /* the list not ended, truncated inside a page */
    struct state_buf t = s;
    t.len = epc.var + 4 + 16 + 32 + 2 * PAGE_RECORD + 100;
    expect_refused(&b, &t, "truncated");
    /* the EPC section's own length shortened: the page list runs past it */
    put64(s.p + epc.var - 8, epc.var_len - 9);
    expect_refused(&b, &s, "sgx");
    memcpy(s.p, copy, s.len);

    /* the vCPU inside an enclave whose SECS, TCS or SSA page is not what it should be */
    struct section sx;
    size_t at = 0;
    cr_assert(find_section(&s, "sgx", 0, &sx, "secs", &at) && at);
    put64(s.p + at, EPC_PAGES + 1);
    expect_refused(&b, &s, "not in the EPC");
    put64(s.p + at, 2); /* a regular page */
    expect_refused(&b, &s, "not in the EPC");
    memcpy(s.p, copy, s.len);
    cr_assert(find_section(&s, "sgx", 0, &sx, "tcs", &at) && at);
    put64(s.p + at, 4);
    expect_refused(&b, &s, "not in the EPC");
    memcpy(s.p, copy, s.len);
    cr_assert(find_section(&s, "sgx", 0, &sx, "ssa_last", &at) && at);
    put64(s.p + at, 1u << 20);
    expect_refused(&b, &s, "not in the EPC");
    memcpy(s.p, copy, s.len);
    /* after all that, the good state still loads */
    char err[300] = "";
    cr_expect_eq(machine_state_load(&b, s.p, s.len, err, sizeof(err)), 0, "%s", err);
    cr_expect(b.cpu[0]->enclave_mode);

    /* another EPC layout: a bigger section, two sections, none */
    struct machine c;
    make(&c, 1, EPC_PAGES * 2);
    expect_refused(&c, &s, "differs");
    machine_destroy(&c);
    make(&c, 2, EPC_PAGES);
    expect_refused(&c, &s, "EPC sections");
    machine_destroy(&c);
    make(&c, 0, 0);
    expect_refused(&c, &s, "does not have");
    machine_destroy(&c);
    free(copy);
    state_buf_free(&s);
}

/* A vCPU inside an enclave has its enclave's pages in its TLB (after any instruction
 * inside): the TLB's loader finds their host pages in the EPC, not only in RAM (it once
 * looked in RAM only and refused the state). */
Test(sgx_state, tlb_of_an_enclave_page, .fini = teardown)
{
    make(&a, 1, EPC_PAGES);
    make(&b, 1, EPC_PAGES);
    build_enclave(&a, sig_a, false);
    enter_enclave(&a);
    struct state_buf s1, s2;
    save(&a, &s1);
    char err[300] = "";
    cr_expect_eq(machine_state_load(&b, s1.p, s1.len, err, sizeof(err)), 0, "%s", err);
    save(&b, &s2);
    cr_expect(s1.len == s2.len && !memcmp(s1.p, s2.p, s1.len), "a reloaded machine saves differently");
    state_buf_free(&s1);
    state_buf_free(&s2);
}

/* A state whose vCPU is "in an enclave" loaded into a machine without an EPC: there is no
 * enclave for it to be in (nestor would reach for its SGX state on the next event: it once
 * accepted such a state, and the next exception dereferenced the NULL c->sgx in sgx_aex). */
Test(sgx_state, enclave_mode_without_an_epc, .fini = teardown)
{
    make(&a, 0, 0);
    make(&b, 0, 0);
    struct state_buf s;
    save(&a, &s);
    struct section sec;
    size_t at = 0;
    cr_assert(find_section(&s, "cpu", 0, &sec, "enclave_mode", &at) && at);
    s.p[at] = 1;
    char err[300] = "";
    cr_expect_eq(machine_state_load(&b, s.p, s.len, err, sizeof(err)), -1, "accepted");
    state_buf_free(&s);
}

/* ---------------------------------------------------------------- the command line */
Test(sgx_cli, object_and_machine)
{
    struct sgx_cli s = { 0 };
    struct sgx_config cfg;
    char err[300];
    cr_assert_eq(sgx_cli_object(&s, "memory-backend-epc,id=epc0,size=64M,prealloc=on", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sgx_cli_object(&s, "memory-backend-epc,id=epc1,size=8192K", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sgx_cli_machine(&s, "q35,sgx-epc.0.memdev=epc1,sgx-epc.0.node=0", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sgx_cli_machine(&s, "sgx-epc.1.memdev=epc0", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sgx_cli_finish(&s, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(cfg.nsections, 2);
    cr_expect_eq(cfg.section[0].size, 8 * MiB, "sgx-epc.0 is epc1");
    cr_expect_eq(cfg.section[1].size, 64 * MiB);
    cr_expect(!cfg.provision_allowed && !cfg.root_secret_set);
    /* the shorthand adds its sections after them */
    cr_assert_eq(sgx_cli_epc(&s, "4M,1G", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sgx_cli_finish(&s, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(cfg.nsections, 4);
    cr_expect_eq(cfg.section[2].size, 4 * MiB);
    cr_expect_eq(cfg.section[3].size, GiB);
    /* plain bytes, a B suffix, lower case */
    struct sgx_cli t = { 0 };
    cr_assert_eq(sgx_cli_epc(&t, "4096,8kB,1m", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sgx_cli_finish(&t, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect(cfg.nsections == 3 && cfg.section[0].size == 4096 && cfg.section[1].size == 8192 &&
              cfg.section[2].size == MiB);
    t.provision = true;
    cr_assert_eq(sgx_cli_finish(&t, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect(cfg.provision_allowed);
    /* a machine type alone, or pc-* */
    cr_expect_eq(sgx_cli_machine(&t, "pc", err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(sgx_cli_machine(&t, "pc-i440fx-8.2,sgx-epc.2.node=0", err, sizeof(err)), 0, "%s", err);
}

static void expect_error(int r, const char *err, const char *want)
{
    cr_expect_eq(r, -1, "accepted (%s)", want);
    cr_expect(strstr(err, want), "'%s' does not say '%s'", err, want);
}

Test(sgx_cli, bad_specs)
{
    struct sgx_cli s = { 0 };
    struct sgx_config cfg;
    char err[300];
    expect_error(sgx_cli_object(&s, "memory-backend-ram,id=m,size=1M", err, sizeof(err)), err, "memory-backend-epc only");
    expect_error(sgx_cli_object(&s, "memory-backend-epc,size=1M", err, sizeof(err)), err, "id=NAME");
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=,size=1M", err, sizeof(err)), err, "id=NAME");
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=m", err, sizeof(err)), err, "size=");
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=m,size=0", err, sizeof(err)), err, "size=");
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=m,size=12Q", err, sizeof(err)), err, "size=");
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=m,size=99999999999999999999", err, sizeof(err)), err, "size=");
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=m,size=20000000T", err, sizeof(err)), err, "size=");
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=m,size=1M,colour=blue", err, sizeof(err)), err, "unknown property");
    char longid[100];
    memset(longid, 'x', sizeof(longid));
    longid[99] = 0;
    char spec[200];
    snprintf(spec, sizeof(spec), "memory-backend-epc,id=%s,size=1M", longid);
    expect_error(sgx_cli_object(&s, spec, err, sizeof(err)), err, "id=NAME");
    cr_assert_eq(sgx_cli_object(&s, "memory-backend-epc,id=m,size=1M", err, sizeof(err)), 0, "%s", err);
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=m,size=2M", err, sizeof(err)), err, "already taken");
    for (int k = 1; k < SGX_MAX_SECTIONS; k++) {
        snprintf(spec, sizeof(spec), "memory-backend-epc,id=m%d,size=1M", k);
        cr_assert_eq(sgx_cli_object(&s, spec, err, sizeof(err)), 0, "%s", err);
    }
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=one-too-many,size=1M", err, sizeof(err)), err, "at most");

    struct sgx_cli m = { 0 };
    expect_error(sgx_cli_machine(&m, "microvm,sgx-epc.0.memdev=x", err, sizeof(err)), err, "nestor is a PC");
    expect_error(sgx_cli_machine(&m, "sgx-epc.8.memdev=x", err, sizeof(err)), err, "unknown property");
    expect_error(sgx_cli_machine(&m, "sgx-epc.0.size=1M", err, sizeof(err)), err, "unknown property");
    expect_error(sgx_cli_machine(&m, "accel=kvm", err, sizeof(err)), err, "unknown property");
    expect_error(sgx_cli_machine(&m, "sgx-epc.0.node=1", err, sizeof(err)), err, "one NUMA node");
    expect_error(sgx_cli_machine(&m, "sgx-epc.x.memdev=a", err, sizeof(err)), err, "unknown property");

    struct sgx_cli e = { 0 };
    cr_expect_eq(sgx_cli_epc(&e, "4M,,", err, sizeof(err)), 0, "empty items are skipped");
    expect_error(sgx_cli_epc(&e, "4X", err, sizeof(err)), err, "BYTES");
    expect_error(sgx_cli_epc(&e, "0", err, sizeof(err)), err, "BYTES");
    expect_error(sgx_cli_epc(&e, "1M,1M,1M,1M,1M,1M,1M,1M,1M", err, sizeof(err)), err, "at most");

    /* finish: a memdev naming no backend, a backend used twice, a backend unused, too many */
    struct sgx_cli f = { 0 };
    cr_assert_eq(sgx_cli_machine(&f, "sgx-epc.0.memdev=nothing", err, sizeof(err)), 0, "%s", err);
    expect_error(sgx_cli_finish(&f, &cfg, err, sizeof(err)), err, "no -object memory-backend-epc");
    struct sgx_cli g = { 0 };
    cr_assert_eq(sgx_cli_object(&g, "memory-backend-epc,id=x,size=1M", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sgx_cli_machine(&g, "sgx-epc.0.memdev=x,sgx-epc.1.memdev=x", err, sizeof(err)), 0, "%s", err);
    expect_error(sgx_cli_finish(&g, &cfg, err, sizeof(err)), err, "used twice");
    struct sgx_cli h = { 0 };
    cr_assert_eq(sgx_cli_object(&h, "memory-backend-epc,id=x,size=1M", err, sizeof(err)), 0, "%s", err);
    expect_error(sgx_cli_finish(&h, &cfg, err, sizeof(err)), err, "no -M sgx-epc.N.memdev");
    struct sgx_cli i = { 0 };
    for (int k = 0; k < SGX_MAX_SECTIONS; k++) {
        snprintf(spec, sizeof(spec), "memory-backend-epc,id=b%d,size=1M", k);
        cr_assert_eq(sgx_cli_object(&i, spec, err, sizeof(err)), 0, "%s", err);
        snprintf(spec, sizeof(spec), "sgx-epc.%d.memdev=b%d", k, k);
        cr_assert_eq(sgx_cli_machine(&i, spec, err, sizeof(err)), 0, "%s", err);
    }
    cr_assert_eq(sgx_cli_epc(&i, "1M", err, sizeof(err)), 0, "%s", err);
    expect_error(sgx_cli_finish(&i, &cfg, err, sizeof(err)), err, "at most");
}

/* Negative sizes are refused, as QEMU refuses them (strtoull takes a sign: size=-1 was
 * once 2^64-1 bytes, and -sgx-epc -4096 a section of 2^64-4096 bytes whose end address
 * wrapped past the machine's layout check). */
Test(sgx_cli, negative_sizes)
{
    struct sgx_cli s = { 0 };
    char err[300];
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=m,size=-1", err, sizeof(err)), err, "size=");
    expect_error(sgx_cli_object(&s, "memory-backend-epc,id=n,size=-4096", err, sizeof(err)), err, "size=");
    expect_error(sgx_cli_epc(&s, "-4096", err, sizeof(err)), err, "BYTES");
}

static void read_file(const char *path, u8 *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    *len = fread(buf, 1, cap, f);
    fclose(f);
}

Test(sgx_cli, key_file_made_then_reused)
{
    char dir[] = "/tmp/nestor-sgx-key.XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof(path), "%s/root.key", dir);
    struct sgx_cli s = { 0 };
    s.key_file = path;
    struct sgx_config c1, c2;
    char err[300];
    cr_assert_eq(sgx_cli_finish(&s, &c1, err, sizeof(err)), 0, "%s", err);
    cr_expect(c1.root_secret_set);
    u8 buf[64];
    size_t len;
    read_file(path, buf, sizeof(buf), &len);
    cr_expect_eq(len, 32, "the file holds the 32 bytes");
    cr_expect_arr_eq(buf, c1.root_secret, 32);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "a secret: mode 0600 (%o)", st.st_mode & 0777);
    static const u8 zero[32];
    cr_expect(memcmp(c1.root_secret, zero, 32), "random bytes, not zeros");
    /* reused: the same secret */
    cr_assert_eq(sgx_cli_finish(&s, &c2, err, sizeof(err)), 0, "%s", err);
    cr_expect_arr_eq(c1.root_secret, c2.root_secret, 32);
    /* a file of another length is refused, and left alone */
    FILE *f = fopen(path, "ab");
    cr_assert(f);
    fputc('x', f);
    fclose(f);
    expect_error(sgx_cli_finish(&s, &c2, err, sizeof(err)), err, "exactly 32 bytes");
    cr_assert_eq(truncate(path, 31), 0);
    expect_error(sgx_cli_finish(&s, &c2, err, sizeof(err)), err, "exactly 32 bytes");
    read_file(path, buf, sizeof(buf), &len);
    cr_expect_eq(len, 31);
    unlink(path);
    /* a directory that does not exist, and a directory as the file */
    snprintf(path, sizeof(path), "%s/missing/root.key", dir);
    expect_error(sgx_cli_finish(&s, &c2, err, sizeof(err)), err, "-sgx-key");
    s.key_file = dir;
    expect_error(sgx_cli_finish(&s, &c2, err, sizeof(err)), err, "-sgx-key");
    cr_assert_eq(rmdir(dir), 0);
}

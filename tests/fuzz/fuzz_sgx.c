/* libFuzzer target: SGX's ENCLS and ENCLU leaves, enclave mode and the asynchronous exit,
 * with operands, structures and enclave code from the input.
 *
 * The machine: one vCPU (-cpu max with SGX) over 4 MiB of RAM and a 48-page EPC at
 * 2 GiB, 64-bit paging that maps RAM and the EPC at their physical addresses and two
 * enclaves' linear ranges (ELRANGE, at 512 GiB and at 1 GiB) page by page. At start-up
 * the harness builds two initialised enclaves through the vCPU itself (ECREATE, EADD,
 * EEXTEND and EINIT with SIGSTRUCTs it signs with OpenSSL under a fixed RSA-3072 key
 * whose hash it writes to the Launch Control MSRs), a 64-bit one and a 32-bit one (built
 * in compatibility mode), and keeps the EPC as it is then; every run starts from that EPC:
 *
 *   EPC page 0   the SECS (64-bit, debug, EXINFO, AEX-Notify and KSS where the model has them)
 *   1  +0x0000   TCS0: NSSA 2, SSA frames at +0x2000, FS and GS at +0x4000 (measured)
 *   2  +0x1000   code, RWX (not measured: the input's bytes each run)
 *   3,4 +0x2000  TCS0's SSA frames (RW)
 *   5  +0x4000   data (RW): KEYREQUEST, TARGETINFO, REPORTDATA, REPORT, SECINFO, key
 *   6  +0x5000   TCS1 (not measured: its fields from the input each run, within what EADD
 *                accepts, so that the enclave is one the same SIGSTRUCT launches)
 *   7  +0x6000   TCS1's SSA frame (RW)
 *   8  +0x7000   RW page (EACCEPTCOPY's source), 9 +0x8000 read-only page (measured)
 *   10-31        free; ELRANGE's pages +0x9000..+0xf000 map EPC pages 10-16 (EAUG)
 *   32-37        the 32-bit enclave at 1 GiB (32 KiB): SECS, TCS (NSSA 2, measured), code
 *                (RWX, the input's), two SSA frames, data; +0x5000..+0x7000 map 38-40
 *   41-47        free
 *
 * The input (take() reads it little-endian; running out gives zeros): a control word,
 * four sections each with a length byte in front (so that changing one does not shift
 * the others), then the program:
 *  - control: CR0.TS, CR4.OSFXSR/OSXSAVE/SMAP/SMEP, EFER.NXE, FEATURE_CONTROL without
 *    SGX, an interrupt (vector, period), an NMI or INIT halfway;
 *  - section 1: steered quadwords into the harness's structures in RAM (PAGEINFO,
 *    SECINFO, PCMD, EINITTOKEN, the SECS and source pages, the SIGSTRUCT), into the
 *    enclaves' unmeasured pages (SSA frames, data, the copy page) and TCS1's fields;
 *  - sections 2, 3 and 4: the enclaves' code at TCS0's and TCS1's entry points and the
 *    32-bit enclave's (in 32-bit encodings): ENCLU leaves
 *    inside (EREPORT, EGETKEY, EEXIT, EACCEPT, EMODPE, EACCEPTCOPY, EDECCSSA) with steered
 *    operands, stores into its SSA frames, data and code, loads, faults, instructions
 *    illegal in an enclave, spins for the interrupt to hit (AEX), TF, RSP and FS/GS use,
 *    jumps, raw bytes; EEXIT at the end;
 *  - the program, at CPL 0: ENCLS with RAX, RBX, RCX and RDX steered (the leaf's own
 *    operands by default: PAGEINFO, SECINFO, SIGSTRUCT, EPC pages, VA slots; or EPC page +
 *    offset, ELRANGE, non-EPC, unaligned, non-canonical, unmapped, MMIO, raw), ENCLU on
 *    an excursion to CPL 3 (IRETQ with IF/TF/AC from the input, mostly EENTER or ERESUME
 *    of TCS0/TCS1 with the AEP), leaves at the wrong privilege, stores anywhere (the
 *    ELRANGE page-table entries by default), CR and MSR writes, STI/CLI/HLT, raw bytes.
 *    An op whose kind has bit 7 set runs its leaf in compatibility mode (IRETQ to a 32-bit
 *    code segment, at CPL 0 for ENCLS): 32-bit operands, the 32-bit enclave's TCS.
 * Every op first stores the address of the next one at RESUME; every exception and
 * interrupt handler goes on there at CPL 0 (or IRETQs to the AEP, whose ENCLU is then the
 * ERESUME of the synthetic state, while the input's AEP_IRET count lasts). EEXIT lands on
 * an INT 80h, and so does the AEP after its ENCLU. The harness raises its interrupt line
 * every so many instructions (cpu_run in slices, cpu_check_events between them).
 * tests/fuzz/fuzz_sgx_seeds.py writes
 * seed inputs in this format (make check's bounded run starts from them).
 *
 * After each run the EPCM must be consistent (each valid child page's SECS is a valid
 * SECS, its address inside that enclave; each SECS counts exactly its children and the
 * threads inside; an invalid entry is all zero), and enclave mode must mean CPL 3 with
 * an active TCS of the current enclave and valid SSA pages; no TCS outside is active.
 * Nothing may crash, hang, leak or reach host memory outside guest RAM and the EPC
 * (ASan/UBSan). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cpu/exec.h"
#include "cpu/fpu.h"
#include "cpu/sgx/sgx_internal.h"
#include "machine/mem.h"

#define RAM (4 * MiB)
#define PML4 0x1000u
#define PDPT0 0x2000u
#define PD0 0x3000u       /* 2 MiB pages: 0-1 GiB identity */
#define PD2 0x4000u       /* 2-3 GiB: the EPC's page table */
#define PT_EPC 0x5000u
#define PDPT1 0x6000u     /* 512 GiB: ELRANGE */
#define PD_E 0x7000u
#define PT_E 0x8000u
#define PD1 0xc000u       /* 1-2 GiB: the 32-bit enclave's page table */
#define PT_E32 0xd000u
#define GDT 0x9000u
#define TSS 0x9100u
#define IDT 0xa000u
#define HANDLERS 0xb000u
#define H_NOERR HANDLERS
#define H_ERR (HANDLERS + 0x10)
#define H_COMMON (HANDLERS + 0x20)
#define AEP (HANDLERS + 0x100)
#define EXIT_LANDING (HANDLERS + 0x180)
#define RESUME (HANDLERS + 0xf00)
#define AEP_IRET (HANDLERS + 0xf08)
#define KCODE 0x10000u
#define KCODE_END 0x1c000u
#define USTACK 0x1e000u
#define KSTACK 0x1f000u
#define PAGEINFO 0x20000u /* 4 x 32 bytes */
#define SECINFO 0x20100u  /* 4 x 64 */
#define PCMD 0x20200u     /* 2 x 128 */
#define TOKEN 0x20400u
#define SECS_SRC 0x21000u
#define SRC 0x22000u
#define SIGSTRUCT 0x23000u
#define SPARE 0x24000u
#define HARNESS_END 0x25000u
#define FREE_RAM 0x30000u

#define EPC_BASE 0x80000000ull
#define EPC_PAGES 48u
#define BASE 0x8000000000ull  /* ELRANGE of the built enclave */
#define BASE32 0x40000000ull  /* ELRANGE of the built 32-bit enclave (32 KiB) */
#define ENCL32_SIZE 0x8000ull
#define E32_SECS 32u          /* its EPC pages: SECS, TCS, code, 2 SSA, data */
#define E32_TCS_OFF 0x0000u
#define E32_CODE_OFF 0x1000u
#define E32_SSA_OFF 0x2000u
#define E32_DATA_OFF 0x4000u
#define ENCL_SIZE 0x10000ull
#define BASE2 0x8000100000ull /* the SECS_SRC template's ELRANGE (mapped to EPC 17-24) */
#define TCS0_OFF 0x0000u
#define CODE_OFF 0x1000u
#define SSA0_OFF 0x2000u
#define DATA_OFF 0x4000u
#define TCS1_OFF 0x5000u
#define SSA1_OFF 0x6000u
#define COPY_OFF 0x7000u
#define RO_OFF 0x8000u
/* the data page's buffers */
#define D_KEYREQUEST 0x000u
#define D_TARGETINFO 0x200u
#define D_REPORTDATA 0x400u
#define D_REPORT 0x600u
#define D_SECINFO 0x800u
#define D_KEY 0x840u

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static struct sgx_epc *epc;

/* the EPC after the enclave's build */
static u8 *snap_bytes;
static struct sgx_epcm snap_epcm[EPC_PAGES];
static u64 snap_next_eid, snap_paging_nonce;
static u8 snap_cpusvn[16];
static u64 lehash[4];
static u64 enclave_attrs;
static u32 enclave_misc;
static u64 tcs_flags_allowed;
static u8 sigstruct[SGX_SIGSTRUCT_SIZE], sigstruct32[SGX_SIGSTRUCT_SIZE];
static bool tracing;

/* an interrupt every irq_period instructions from irq_next (0: none) */
static u64 irq_next, irq_period;
static int irq_vector;

static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *opaque)
{
    (void)cp, (void)ev, (void)opaque;
    return INTERCEPT_DEFAULT;
}
static u64 now_ns(struct cpu *cp, void *opaque)
{
    (void)opaque;
    return cp->icount * 10;
}
static int intr_pending(struct cpu *cp, void *opaque)
{
    (void)opaque;
    return irq_period && cp->icount >= irq_next ? irq_vector : -1;
}
static int intr_ack(struct cpu *cp, void *opaque)
{
    (void)opaque;
    irq_next = cp->icount + irq_period;
    return irq_vector;
}
static const struct cpu_ops ops = { .intercept = intercept, .intr_pending = intr_pending,
                                    .intr_ack = intr_ack, .now_ns = now_ns };

static void flush_tlb(void *opaque)
{
    (void)opaque;
    tlb_flush_all(&c->tlb);
}

static u64 take(const u8 **data, size_t *size, unsigned n)
{
    u64 v = 0;
    for (unsigned k = 0; k < n && *size; k++, (*data)++, (*size)--)
        v |= (u64)**data << (8 * k);
    return v;
}

static void w64(u64 pa, u64 v) { mem_write(&mem, pa, &v, 8); }

/* ---- the fixed key the harness signs the enclave with (RSA-3072, e = 3) ---- */
static const char signing_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIG/AIBADANBgkqhkiG9w0BAQEFAASCBuYwggbiAgEAAoIBgQC/k6oguLe9Fjp0\n"
    "vzn5QmNUpCvPSeQJh+wp+LT+5/yXp+wuFwlI2avLrwvF4tFxPO214HrV7012gy71\n"
    "zaC2pfJM6GHI/IViqIfIN62iO4FW8QfjH6vbM1SDCQvSJPDWKFhalmm1dnx6r9qX\n"
    "WfoB5Ho5LdHDoEb0edlmuHnzeLl59cRtTv6GhSrb6asZbwpIYs/idV097XQHbUdJ\n"
    "EiKRsjKfJmkT/Laso9ZsdJRlUJ9pxC9A/VXs8Tlch/MylRxEOXRBXMmBK2UckUSD\n"
    "jb8AKdnKCHSHesQNPA+pk+dtJNVdGSAheJV40hI+1xUM5sF+sOkrqmqbRMsLvkJN\n"
    "RcH4ab/tBdaHlsZoEA9f8lpPTLhpn7W4WLy7bfjUI1KKICmUBfwnx2plDVWhvanh\n"
    "N6aDdtLr3PjOR5PS354cW5chpTOb6Tqerb0gmKrVNIReFvM0gcxMMNFWxd4Q1p9l\n"
    "7F4rgmlBcB6E2G9c3oMMOrAFYBRCGNrp+RN+GykEgRISHj80898CAQMCggGAf7fG\n"
    "wHslKLl8TdTRUNbs4xgdNNvtW6/yxqXN/0VTD8VIHroGMJEdMnSyg+yLoNNJI+r8\n"
    "jp+I+azJ+TPAecP23fBBMKhY7HBahXpzwX0A5KCv7L/H53eNrLCyjBigjsWQPGRG\n"
    "ePmoUcqRujv8AUL8Jh6L18AvTaaQ7yWmolB7pqPYSN9UWa4ckpvHZkoG2uyKlvjo\n"
    "0/Oir54vhgwXC8whv27wt/3PHcKO8vhi7jW/m9gfgKjj80t7kwVMzGNoLXuhrWL0\n"
    "9UxAmNmuEZEOrGnD+H9FD+N3Rz8rCmAlo/UGb9MdcHju+dOwhW0f+lFvlLSw/pZf\n"
    "lph6FHlUg8zUr0Z8i69cJPUQe4L41vS/aqU952E3JAGQcGlNbQ/mo2yetQsNhpNP\n"
    "IXNOwZvTslcIMlHmbKQT7i/JJ4e6yxgsaulpd8ik6JfUUiNtjTDhus/ZKbCqmqKn\n"
    "dxn8ENqVQDwVWL/lozWfY8dHlnr4gRJEHEP76t7vOBCtatLbvZUSNsNzzD7bAoHB\n"
    "APWQmw3mGr8WcKEOw77bas3BSkhuRwR+szJ9w/et1t4iE6NEGUza+vOzVlcsBmDF\n"
    "eX24p3yc+JT+GT3WESv+albsl/b50mbCC+bNtW8QBa2KjMlU2Q4X4U7hDKcCnKFI\n"
    "AV9fwvecEkeBsw6pTq7lqayaruGHPqF4lKVAneJmrxGoAJvFC8Ykgdjx8IwSEPUQ\n"
    "q3eDtuyE9wawJff5/+Otbwi9a+eXje9YnS4+PHKD03stAm71yyFsfluGbykH1B/c\n"
    "BQKBwQDHt78DUul4NE7IJWU+r8kHiEKnN0od3pvnher/h3TXOmBVfxW1OY6DAA6+\n"
    "QJO+3GYwEDO8wxtYCipJvHHFgZrEkjRZLVtICY42tYXARNXhA1Y5AYsEuCNhqmvt\n"
    "+p7jLWZ+irC7RE030jlHC8uJFk+cTCwHeKd2G3FGdrae4GZWlEKmBPLfPwSoeUE5\n"
    "zRyA6CDsuR83mezw3pmNmD5CtSHD4kOHlfYLzXEcYQ1odkbmnXGm6kQ8cmEMmweW\n"
    "8T1iuZMCgcEAo7W8s+68f2RLFgnX1JJHM9YxhZ7aAv8iIaktT8k56WwNF4K7iJH8\n"
    "oneO5MgEQIOmU9BvqGiluKlmKTlgx/7xj0hlT1E27ywH7zPOSgquc7GzMOM7XrqW\n"
    "NJYIb1cTFjAA6j/XT71hhQEiCcY0dJkbyGcfQQTUa6W4bisT7ER0tnAAZ9iyhBhW\n"
    "kKFLCAwLTgsc+lfPSFikryAZT/v/7R5KBdOdRQ+z9OW+HtQoTFfiUh4Bn06Ha52p\n"
    "klmfcK/iv+gDAoHBAIUlKgI3RlAi3zAY7inKhgUFgcTPhr6UZ++unKpaTeTRlY5U\n"
    "uSN7tFdVXymAYn89mXVgIn3XZ5AGxtvS9oOrvIMMIuYePNqxCXnOWSrYjpYCOXtW\n"
    "XK3QF5ZxnUlRv0IeRFRcddItiM/he4Syh7C5imgyyAT7Gk689i75zxSVmY8NgcQD\n"
    "TJTUrcWmK3veEwCawJ3Qv3pmnfXpu7O61Cx4wS1Bglpj+V0zoL2WCPBO2e8ToRnx\n"
    "gtL26128r7n2KOx7twKBwB1bMiCNoDmqjSEz5rx+VgXgpBnQwrbapXdEOEWEG/eZ\n"
    "jc32c7uO1Ou7kyVNTi+T64ckqGvElBpTk/foC4HMjXx08rwvwWNlovRmiypcXH+D\n"
    "p/nplKCcxWEEf2yp1sfzubVOTdFKIbDlEAysRr/xTe0qfknL7T4JZJAAmwL3QMMP\n"
    "2IYgQEahPvB25PMN7JX5MUgjC4D8sH5VNtS0/XbAVngEkCBZ8aXxuxecdSLOZsH3\n"
    "QyhS7O/zXjIBbfsYYUc9mw==\n"
    "-----END PRIVATE KEY-----\n";

static EVP_PKEY *signing_key(void)
{
    BIO *b = BIO_new_mem_buf(signing_key_pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!k)
        abort();
    return k;
}

/* Q1 = floor(S^2 / M), Q2 = floor((S^3 - Q1*S*M) / M) (SDM "SIGSTRUCT") */
static void set_q1_q2(u8 *ss)
{
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *s = BN_lebin2bn(ss + SGX_SIGSTRUCT_SIGNATURE, 384, NULL);
    BIGNUM *m = BN_lebin2bn(ss + SGX_SIGSTRUCT_MODULUS, 384, NULL);
    BIGNUM *s2 = BN_new(), *s3 = BN_new(), *q1 = BN_new(), *t = BN_new(), *q2 = BN_new();
    if (!bn || !s || !m || !s2 || !s3 || !q1 || !t || !q2 || !BN_mul(s2, s, s, bn) ||
        !BN_div(q1, NULL, s2, m, bn) || !BN_mul(s3, s2, s, bn) || !BN_mul(t, q1, s, bn) ||
        !BN_mul(t, t, m, bn) || !BN_sub(s3, s3, t) || !BN_div(q2, NULL, s3, m, bn) ||
        BN_bn2lebinpad(q1, ss + SGX_SIGSTRUCT_Q1, 384) != 384 ||
        BN_bn2lebinpad(q2, ss + SGX_SIGSTRUCT_Q2, 384) != 384)
        abort();
    BN_free(q2), BN_free(t), BN_free(q1), BN_free(s3), BN_free(s2), BN_free(m), BN_free(s);
    BN_CTX_free(bn);
}

/* The SIGSTRUCT of an enclave with these attributes measured as mrenclave, into ss;
 * lehash gets its MRSIGNER. */
static void sign_enclave(const u8 mrenclave[32], u64 attrs, u8 *ss)
{
    static const u8 header[16] = { 6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0 };
    static const u8 header2[16] = { 1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0 };
    memset(ss, 0, SGX_SIGSTRUCT_SIZE);
    memcpy(ss, header, 16);
    wr32(ss, SGX_SIGSTRUCT_DATE, 0x20240301);
    memcpy(ss + SGX_SIGSTRUCT_HEADER2, header2, 16);
    wr32(ss, SGX_SIGSTRUCT_MISCSELECT, enclave_misc);
    wr32(ss, SGX_SIGSTRUCT_MISCMASK, ~0u);
    wr64(ss, SGX_SIGSTRUCT_ATTRIBUTES, attrs);
    wr64(ss, SGX_SIGSTRUCT_ATTRIBUTES + 8, 3);
    wr64(ss, SGX_SIGSTRUCT_ATTRIBUTEMASK, ~(u64)ATTR_INIT);
    wr64(ss, SGX_SIGSTRUCT_ATTRIBUTEMASK + 8, ~0ull);
    memcpy(ss + SGX_SIGSTRUCT_ENCLAVEHASH, mrenclave, 32);
    wr16(ss, SGX_SIGSTRUCT_ISVPRODID, 0x5678);
    wr16(ss, SGX_SIGSTRUCT_ISVSVN, 3);
    EVP_PKEY *key = signing_key();
    BIGNUM *n = NULL;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        BN_bn2lebinpad(n, ss + SGX_SIGSTRUCT_MODULUS, 384) != 384)
        abort();
    BN_free(n);
    wr32(ss, SGX_SIGSTRUCT_EXPONENT, 3);
    u8 msg[256], sig_be[384];
    memcpy(msg, ss, 128);
    memcpy(msg + 128, ss + SGX_SIGSTRUCT_BODY, 128);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t siglen = sizeof(sig_be);
    if (!md || EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) != 1 ||
        EVP_DigestSign(md, sig_be, &siglen, msg, sizeof(msg)) != 1 || siglen != 384)
        abort();
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    for (int i = 0; i < 384; i++)
        ss[SGX_SIGSTRUCT_SIGNATURE + i] = sig_be[383 - i];
    set_q1_q2(ss);
    u8 mrsigner[32];
    sgx_sha256(ss + SGX_SIGSTRUCT_MODULUS, 384, mrsigner);
    memcpy(lehash, mrsigner, 32);
}

/* ---- the machine ---- */
static void idt_gate(unsigned vec, u64 off, unsigned dpl)
{
    u64 lo = (off & 0xffff) | 0x08ull << 16 | (u64)(0x8e | dpl << 5) << 40 |
             ((off >> 16) & 0xffff) << 48;
    w64(IDT + 16 * vec, lo);
    w64(IDT + 16 * vec + 8, off >> 32);
}

static bool has_error_code(unsigned vec)
{
    return vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 ||
           vec == 30;
}

/* Every handler: at the AEP with AEP_IRET left, IRETQ there (its ENCLU is ERESUME);
 * otherwise go on with the op RESUME names, at CPL 0 on a fresh stack. */
static const u8 h_noerr[] = { 0xeb, 0x1e };                               /* jmp H_COMMON */
static const u8 h_err[] = { 0x48, 0x83, 0xc4, 0x08, 0xeb, 0x0a };          /* add rsp, 8 */
static void write_handlers(void)
{
    mem_write(&mem, H_NOERR, h_noerr, sizeof(h_noerr));
    mem_write(&mem, H_ERR, h_err, sizeof(h_err));
    u8 h[64];
    size_t n = 0;
#define B(...) do { const u8 b_[] = { __VA_ARGS__ }; memcpy(h + n, b_, sizeof(b_)); n += sizeof(b_); } while (0)
#define D32(v) do { u32 v_ = (u32)(v); memcpy(h + n, &v_, 4); n += 4; } while (0)
    B(0x48, 0x81, 0x3c, 0x24); D32(AEP);            /* cmp qword [rsp], AEP */
    B(0x75, 0x13);                                  /* jne resume */
    B(0x80, 0x3c, 0x25); D32(AEP_IRET); B(0x00);    /* cmp byte [AEP_IRET], 0 */
    B(0x74, 0x09);                                  /* je resume */
    B(0xfe, 0x0c, 0x25); D32(AEP_IRET);             /* dec byte [AEP_IRET] */
    B(0x48, 0xcf);                                  /* iretq */
    B(0x48, 0xc7, 0xc4); D32(KSTACK);               /* resume: mov rsp, KSTACK */
    B(0xff, 0x24, 0x25); D32(RESUME);               /* jmp [RESUME] */
    mem_write(&mem, H_COMMON, h, n);
    n = 0;
    B(0x0f, 0x01, 0xd7);                            /* AEP: enclu (ERESUME) */
    B(0xcd, 0x80);                                  /* int 80h: back to CPL 0 */
    mem_write(&mem, AEP, h, n);
    n = 0;
    B(0xcd, 0x80);                                  /* EXIT_LANDING: int 80h */
    mem_write(&mem, EXIT_LANDING, h, n);
#undef B
#undef D32
}

/* RAM, page tables, descriptor tables, handlers; the vCPU at CPL 0 in 64-bit mode. */
static void machine_state(u64 cr0_extra, u64 cr4_extra, bool nxe)
{
    cpu_reset(c);
    mem_fill(&mem, 0, 0, HARNESS_END);
    w64(PML4, PDPT0 | 7);
    w64(PML4 + 8, PDPT1 | 7);
    w64(PDPT0, PD0 | 7);
    w64(PDPT0 + 16, PD2 | 7);
    for (u64 k = 0; k < 512; k++)
        w64(PD0 + 8 * k, k << 21 | 0x87);
    w64(PD2, PT_EPC | 7);
    for (u64 k = 0; k < EPC_PAGES; k++)
        w64(PT_EPC + 8 * k, (EPC_BASE + 4096 * k) | 7);
    w64(PDPT0 + 8, PD1 | 7);
    w64(PD1, PT_E32 | 7);
    /* the 32-bit enclave's ELRANGE: its pages, then EAUG's (EPC 38-40) */
    for (u64 k = 0; k < 8; k++)
        w64(PT_E32 + 8 * k, (EPC_BASE + 4096 * (E32_SECS + 1 + k)) | 7);
    w64(PDPT1, PD_E | 7);
    w64(PD_E, PT_E | 7);
    /* ELRANGE: the enclave's pages, then EAUG's; BASE2's pages on EPC 17-24 */
    for (u64 k = 0; k < 16; k++)
        w64(PT_E + 8 * k, (EPC_BASE + 4096 * (k + 1)) | 7);
    for (u64 k = 0; k < 8; k++)
        w64(PT_E + 8 * (256 + k), (EPC_BASE + 4096 * (k + 17)) | 7);
    /* GDT: null, code64 (08), data (10), TSS (18), code64 DPL3 (28), data DPL3 (30),
     * code32 (38), code32 DPL3 (40) */
    w64(GDT + 8, 0x00af9b000000ffffull);
    w64(GDT + 16, 0x00cf93000000ffffull);
    w64(GDT + 24, 0x00008b0000000067ull | (u64)TSS << 16);
    w64(GDT + 40, 0x00affb000000ffffull);
    w64(GDT + 48, 0x00cff3000000ffffull);
    w64(GDT + 56, 0x00cf9b000000ffffull);
    w64(GDT + 64, 0x00cffb000000ffffull);
    w64(TSS + 4, KSTACK);
    for (unsigned v = 0; v < 256; v++)
        idt_gate(v, has_error_code(v) ? H_ERR : H_NOERR, v == 0x80 ? 3 : 0);
    write_handlers();
    c->gdtr = (struct dtr){ GDT, 0x47 };
    c->idtr = (struct dtr){ IDT, 0xfff };
    c->cr3 = PML4;
    c->cr4 = CR4_PAE | CR4_OSFXSR | BIT(10) /* OSXMMEXCPT */ | cr4_extra;
    c->efer = EFER_LME | EFER_LMA | EFER_SCE | (nxe ? EFER_NXE : 0);
    c->cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_WP | CR0_MP | cr0_extra;
    c->xcr0 = XCR0_X87 | XCR0_SSE;
    cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xa09b);
    for (int s = 0; s < 6; s++)
        if (s != SEG_CS)
            cpu_set_seg(c, s, 0x10, 0, 0xffffffff, 0xc093);
    c->tr = (struct seg){ 0x18, TSS, 0x67, 0x8b };
    c->ldtr = (struct seg){ 0, 0, 0, SEG_ATTR_UNUSABLE };
    c->rip = KCODE;
    c->gpr[R_RSP] = KSTACK;
    c->rflags = FL_FIXED1;
    cpu_update_mode(c);
    mmu_update(c);
    c->msr_feature_control = BIT(0) | FEATURE_CONTROL_SGX | FEATURE_CONTROL_SGX_LC;
    memcpy(c->sgx->lepubkeyhash, lehash, sizeof(lehash));
}

/* One ENCLS at CPL 0 during the set-up (in compatibility mode for the 32-bit enclave):
 * it must not fault; returns RAX. */
static bool setup_compat;
static u64 setup_encls(u32 leaf, u64 rbx, u64 rcx, u64 rdx)
{
    if (setup_compat)
        cpu_set_seg(c, SEG_CS, 0x38, 0, 0xffffffff, 0xc09b);
    else
        cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xa09b);
    cpu_update_mode(c);
    static const u8 code[] = { 0x0f, 0x01, 0xcf, 0xf4 }; /* encls; hlt */
    mem_write(&mem, KCODE, code, sizeof(code));
    c->rip = KCODE;
    c->state = CPU_RUNNING;
    c->gpr[R_RAX] = leaf;
    c->gpr[R_RBX] = rbx;
    c->gpr[R_RCX] = rcx;
    c->gpr[R_RDX] = rdx;
    cpu_run(c, 2);
    if (c->rip != KCODE + sizeof(code) || c->state != CPU_HALTED) {
        fprintf(stderr, "fuzz_sgx: set-up ENCLS[%u] faulted (rip %#llx)\n", leaf,
                (unsigned long long)c->rip);
        abort();
    }
    return c->gpr[R_RAX];
}

static void pageinfo(unsigned k, u64 linaddr, u64 srcpge, u64 secinfo, u64 secs)
{
    w64(PAGEINFO + 32 * k, linaddr);
    w64(PAGEINFO + 32 * k + 8, srcpge);
    w64(PAGEINFO + 32 * k + 16, secinfo);
    w64(PAGEINFO + 32 * k + 24, secs);
}

/* A TCS: flags, OSSA, NSSA, OENTRY, OFSBASE, OGSBASE (offsets in the enclave) */
static void tcs_fields(u8 *p, u64 flags, u64 ossa, u32 nssa, u64 oentry, u64 ofs, u64 ogs)
{
    memset(p, 0, SGX_PAGE);
    wr64(p, TCS_FLAGS, flags);
    wr64(p, TCS_OSSA, ossa);
    wr32(p, TCS_NSSA, nssa);
    wr64(p, TCS_OENTRY, oentry);
    wr64(p, TCS_OFSBASE, ofs);
    wr64(p, TCS_OGSBASE, ogs);
    wr32(p, TCS_FSLIMIT, 0xfff);
    wr32(p, TCS_GSLIMIT, 0xfff);
}

static void secs_template(u64 base, u64 size, u64 attrs)
{
    u8 s[SGX_PAGE] = { 0 };
    wr64(s, SECS_SIZE, size);
    wr64(s, SECS_BASEADDR, base);
    wr32(s, SECS_SSAFRAMESIZE, 1);
    wr32(s, SECS_MISCSELECT, enclave_misc);
    wr64(s, SECS_ATTRIBUTES, attrs);
    wr64(s, SECS_ATTRIBUTES + 8, 3);
    mem_write(&mem, SECS_SRC, s, sizeof(s));
}

/* The enclave of the header comment, built and initialised through the vCPU. */
static void build_enclave(void)
{
    machine_state(0, 0, true);
    u64 allowed = sgx_attributes_allowed(c);
    enclave_attrs = (ATTR_MODE64BIT | ATTR_DEBUG | ATTR_KSS | ATTR_AEXNOTIFY) & allowed;
    enclave_misc = MISC_EXINFO & sgx_miscselect_allowed(c);
    tcs_flags_allowed = TCS_FLAGS_DBGOPTIN |
                        (cpuid_has(c->model, "sgx-aex-notify") ? TCS_FLAGS_AEXNOTIFY : 0);
    secs_template(BASE, ENCL_SIZE, enclave_attrs);
    pageinfo(0, 0, SECS_SRC, SECINFO, 0);
    setup_encls(0, PAGEINFO, EPC_BASE, 0);
    static const struct { u32 off; unsigned type, perms; bool measure; } layout[] = {
        { TCS0_OFF, PT_TCS, 0, true },       { CODE_OFF, PT_REG, 7, false },
        { SSA0_OFF, PT_REG, 3, false },      { SSA0_OFF + 0x1000, PT_REG, 3, false },
        { DATA_OFF, PT_REG, 3, false },      { TCS1_OFF, PT_TCS, 0, false },
        { SSA1_OFF, PT_REG, 3, false },      { COPY_OFF, PT_REG, 3, false },
        { RO_OFF, PT_REG, 1, true },
    };
    for (unsigned k = 0; k < ARRAY_SIZE(layout); k++) {
        u8 page[SGX_PAGE];
        memset(page, 0, sizeof(page));
        if (layout[k].off == TCS0_OFF)
            tcs_fields(page, tcs_flags_allowed & TCS_FLAGS_AEXNOTIFY, SSA0_OFF, 2, CODE_OFF,
                       DATA_OFF, DATA_OFF);
        else if (layout[k].off == TCS1_OFF)
            tcs_fields(page, 0, SSA1_OFF, 1, CODE_OFF + 0x800, DATA_OFF, DATA_OFF);
        else if (layout[k].off == RO_OFF)
            for (unsigned i = 0; i < SGX_PAGE; i++)
                page[i] = (u8)(i * 13 + 7);
        mem_write(&mem, SRC, page, sizeof(page));
        w64(SECINFO + 64, (u64)layout[k].type << 8 | layout[k].perms);
        pageinfo(1, BASE + layout[k].off, SRC, SECINFO + 64, EPC_BASE);
        u64 epc_page = EPC_BASE + 4096 * (k + 1);
        setup_encls(1, PAGEINFO + 32, epc_page, 0);
        if (layout[k].measure)
            for (u64 o = 0; o < SGX_PAGE; o += 256)
                setup_encls(6, 0, epc_page + o, 0);
    }
    u8 mrenclave[32];
    sgx_measure_final(&secs_private(epc, 0)->measure, mrenclave);
    sign_enclave(mrenclave, enclave_attrs, sigstruct);
    memcpy(c->sgx->lepubkeyhash, lehash, sizeof(lehash));
    mem_write(&mem, SIGSTRUCT, sigstruct, sizeof(sigstruct));
    u64 r = setup_encls(2, SIGSTRUCT, EPC_BASE, TOKEN);
    if (r != 0 || !(rd64(epc_page(epc, 0), SECS_ATTRIBUTES) & ATTR_INIT)) {
        fprintf(stderr, "fuzz_sgx: EINIT of the harness's enclave: %llu\n", (unsigned long long)r);
        abort();
    }

    /* the 32-bit enclave, built in compatibility mode: TCS (NSSA 2, measured), code (RWX,
     * not measured), two SSA frames, data */
    setup_compat = true;
    u64 attrs32 = enclave_attrs & ~(u64)ATTR_MODE64BIT;
    secs_template(BASE32, ENCL32_SIZE, attrs32);
    u64 secs32 = EPC_BASE + 4096 * E32_SECS;
    setup_encls(0, PAGEINFO, secs32, 0);
    static const struct { u32 off; unsigned type, perms; bool measure; } layout32[] = {
        { E32_TCS_OFF, PT_TCS, 0, true },   { E32_CODE_OFF, PT_REG, 7, false },
        { E32_SSA_OFF, PT_REG, 3, false },  { E32_SSA_OFF + 0x1000, PT_REG, 3, false },
        { E32_DATA_OFF, PT_REG, 3, false },
    };
    for (unsigned k = 0; k < ARRAY_SIZE(layout32); k++) {
        u8 page[SGX_PAGE];
        memset(page, 0, sizeof(page));
        if (layout32[k].off == E32_TCS_OFF)
            tcs_fields(page, tcs_flags_allowed & TCS_FLAGS_AEXNOTIFY, E32_SSA_OFF, 2,
                       E32_CODE_OFF, E32_DATA_OFF, E32_DATA_OFF);
        mem_write(&mem, SRC, page, sizeof(page));
        w64(SECINFO + 64, (u64)layout32[k].type << 8 | layout32[k].perms);
        pageinfo(1, BASE32 + layout32[k].off, SRC, SECINFO + 64, secs32);
        u64 epc_page = EPC_BASE + 4096 * (E32_SECS + 1 + k);
        setup_encls(1, PAGEINFO + 32, epc_page, 0);
        if (layout32[k].measure)
            for (u64 o = 0; o < SGX_PAGE; o += 256)
                setup_encls(6, 0, epc_page + o, 0);
    }
    sgx_measure_final(&secs_private(epc, E32_SECS)->measure, mrenclave);
    sign_enclave(mrenclave, attrs32, sigstruct32);
    mem_write(&mem, SIGSTRUCT, sigstruct32, sizeof(sigstruct32));
    r = setup_encls(2, SIGSTRUCT, secs32, TOKEN);
    if (r != 0 || !(rd64(epc_page(epc, E32_SECS), SECS_ATTRIBUTES) & ATTR_INIT)) {
        fprintf(stderr, "fuzz_sgx: EINIT of the harness's 32-bit enclave: %llu\n", (unsigned long long)r);
        abort();
    }
    setup_compat = false;
    snap_bytes = malloc(EPC_PAGES * SGX_PAGE);
    if (!snap_bytes)
        abort();
    memcpy(snap_bytes, epc->bytes, EPC_PAGES * SGX_PAGE);
    memcpy(snap_epcm, epc->epcm, sizeof(snap_epcm));
    snap_next_eid = epc->next_eid;
    snap_paging_nonce = epc->paging_nonce;
    memcpy(snap_cpusvn, epc->cpusvn, 16);
}

static void init_once(void)
{
    char err[128];
    if (mem_init(&mem, RAM) < 0 || cpuid_model_parse(&model, "max", err, sizeof(err)) < 0)
        abort();
    /* the provisioning key granted (-cpu max,+sgx-provisionkey -sgx-provision); set in the
     * table directly: the parser does not know the SGX feature names spelled with '-' */
    int nf;
    const struct cpuid_feature *f = cpuid_feature_table(&nf);
    for (int i = 0; i < nf; i++)
        if (!strcmp(f[i].name, "sgx-provisionkey"))
            model.enabled[i] = true;
    cpuid_model_finish(&model);
    if (!cpuid_has(&model, "sgx1")) {
        fprintf(stderr, "fuzz_sgx: the max model has no SGX\n");
        abort();
    }
    model.epc[0].base = EPC_BASE;
    model.epc[0].size = EPC_PAGES * SGX_PAGE;
    model.nepc = 1;
    struct sgx_config cfg = { .nsections = 1, .provision_allowed = true, .root_secret_set = true };
    cfg.section[0].base = EPC_BASE;
    cfg.section[0].size = EPC_PAGES * SGX_PAGE;
    for (int i = 0; i < 32; i++)
        cfg.root_secret[i] = (u8)(0x5a ^ i);
    if (cpu_init(c, 0, &mem, &model, &ops, NULL) < 0 || !(epc = sgx_epc_create(&cfg)) ||
        sgx_cpu_init(c, epc) < 0)
        abort();
    sgx_epc_set_flush(epc, flush_tlb, NULL);
    build_enclave();
    /* FUZZ_SGX_TRACE=1: every instruction and event of each run on stderr */
    if (getenv("FUZZ_SGX_TRACE")) {
        cpu_set_trace(c, stderr, true, true);
        tracing = true;
    }
}

/* ---- invariants ---- */
static _Noreturn void broken(const char *what, u64 page)
{
    fprintf(stderr, "fuzz_sgx: invariant broken: %s (EPC page %llu)\n", what, (unsigned long long)page);
    abort();
}

/* FUZZ_SGX_TRACE: the EPCM after the run */
static void trace_epcm(void)
{
    for (u64 i = 0; i < EPC_PAGES; i++) {
        const struct sgx_epcm *m = &epc->epcm[i];
        if (m->valid)
            fprintf(stderr, "epcm %2llu: type %u perms %u pending %u modified %u pr %u blocked %u "
                    "secs %u linaddr %#llx\n", (unsigned long long)i, m->type, m->perms, m->pending,
                    m->modified, m->pr, m->blocked, m->secs, (unsigned long long)m->linaddr);
    }
    fprintf(stderr, "enclave_mode %d cpl %u rip %#llx rax %#llx state %d\n", c->enclave_mode, c->cpl,
            (unsigned long long)c->rip, (unsigned long long)c->gpr[R_RAX], c->state);
}

static void check_invariants(void)
{
    if (tracing)
        trace_epcm();
    const struct sgx_epc *e = epc;
    static const struct sgx_epcm zero;
    u64 children[EPC_PAGES] = { 0 };
    const struct sgx_cpu *s = c->sgx;
    for (u64 i = 0; i < EPC_PAGES; i++) {
        const struct sgx_epcm *m = &e->epcm[i];
        if (!m->valid) {
            if (memcmp(m, &zero, sizeof(zero)))
                broken("an invalid EPCM entry holds something", i);
            continue;
        }
        if (m->type > PT_TRIM || (m->perms & ~SECINFO_PERMS))
            broken("impossible type or permissions", i);
        if (m->type == PT_SECS || m->type == PT_VA) {
            /* (ELDB leaves any page it loads blocked, a SECS or VA page too) */
            if (m->secs || m->linaddr || m->pending || m->modified || m->pr)
                broken("a SECS or VA page with child attributes", i);
            continue;
        }
        if (m->secs >= EPC_PAGES || !e->epcm[m->secs].valid || e->epcm[m->secs].type != PT_SECS)
            broken("a child page whose SECS is not a valid SECS", i);
        children[m->secs]++;
        const u8 *secs = epc_page(e, m->secs);
        if ((m->linaddr & 0xfff) || m->linaddr - rd64(secs, SECS_BASEADDR) >= rd64(secs, SECS_SIZE))
            broken("a child page outside its enclave", i);
        /* WORKAROUND (reported bug): EACCEPT of a page EMODT made a TCS does not check the
         * new TCS as the SDM says (STATE, CSSA < NSSA, AEP, DBGOPTIN, reserved bytes, the
         * FS/GS limits of a 32-bit enclave: #GP), so such a TCS may hold any STATE. Until
         * that is fixed only the TCSs of the built enclaves are checked. */
        if (m->type == PT_TCS && !m->modified && snap_epcm[i].valid && snap_epcm[i].type == PT_TCS) {
            const u8 *t = epc_page(e, i);
            bool current = c->enclave_mode && s->tcs == i;
            if (rd64(t, TCS_STATE) != (current ? 1u : 0u))
                broken(current ? "the current TCS is not active" : "a TCS outside is active", i);
        }
    }
    for (u64 i = 0; i < EPC_PAGES; i++) {
        const struct sgx_epcm *m = &e->epcm[i];
        if (!m->valid || m->type != PT_SECS)
            continue;
        const struct sgx_secs_private *p = secs_private(e, i);
        if (p->children != children[i])
            broken("a SECS's children count is not its number of child pages", i);
        u64 want = c->enclave_mode && s->secs == i ? 1 : 0;
        if (p->active_threads != want)
            broken("a SECS's active thread count is not the threads inside", i);
    }
    if (!c->enclave_mode)
        return;
    if (c->cpl != 3)
        broken("enclave mode outside CPL 3", s->secs);
    if (s->secs >= EPC_PAGES || !e->epcm[s->secs].valid || e->epcm[s->secs].type != PT_SECS)
        broken("enclave mode in no enclave", s->secs);
    if (s->tcs >= EPC_PAGES || !e->epcm[s->tcs].valid || e->epcm[s->tcs].type != PT_TCS ||
        e->epcm[s->tcs].secs != s->secs)
        broken("enclave mode on no TCS of the enclave", s->tcs);
    const u64 ssa[2] = { s->ssa_first, s->ssa_last };
    for (int k = 0; k < 2; k++)
        if (ssa[k] >= EPC_PAGES || !e->epcm[ssa[k]].valid || e->epcm[ssa[k]].type != PT_REG ||
            e->epcm[ssa[k]].secs != s->secs)
            broken("enclave mode with an SSA frame that is no page of the enclave", ssa[k]);
    const u8 *secs = epc_page(e, s->secs);
    if (s->elrange_base != rd64(secs, SECS_BASEADDR) || s->elrange_size != rd64(secs, SECS_SIZE))
        broken("enclave mode with another ELRANGE than the SECS's", s->secs);
}

/* ---- steering ---- */
enum {
    K_DEFAULT, K_RAW, K_PAGEINFO, K_SECINFO, K_SECS_SRC, K_SRC, K_SIGSTRUCT, K_TOKEN, K_PCMD,
    K_EPC, K_EPC_OFF, K_VA_SLOT, K_ELRANGE, K_ELRANGE_OFF, K_DATA_BUF, K_AEP, K_EXIT,
    K_TCS, K_NONCANONICAL, K_UNMAPPED, K_MMIO, K_FREE_RAM, K_SMALL, K_PTE, K_SSA_FIELD,
    K_XSAVE_FIELD, K_COUNT
};

/* Code generated now runs in compatibility mode (32-bit encodings), and the enclave
 * operands mean the 32-bit enclave's. */
static bool g32;

/* The value of a steering kind (arg: which page, offset, ...). */
static u64 kind_value(unsigned kind, u16 arg, const u8 **data, size_t *size)
{
    u64 lo = arg & 0xff, hi = arg >> 8;
    if (g32) {
        switch (kind) {
        case K_ELRANGE: return BASE32 + 4096 * (lo % 9);
        case K_ELRANGE_OFF: return BASE32 + (arg & 0x7ff8);
        case K_DATA_BUF: return BASE32 + E32_DATA_OFF + 0x40 * (lo & 0x3f);
        case K_TCS: return BASE32 + (lo & 1 ? E32_CODE_OFF : E32_TCS_OFF);
        case K_SSA_FIELD:
            return BASE32 + E32_SSA_OFF + 0x1000 * (lo & 1) + SGX_PAGE - GPRSGX_SIZE - EXINFO_SIZE +
                   8 * (hi % 25);
        case K_XSAVE_FIELD: {
            static const u32 fields[6] = { 0, 24, 160, 512, 520, 528 };
            return BASE32 + E32_SSA_OFF + 0x1000 * (lo & 1) + fields[hi % 6];
        }
        default: break;
        }
    }
    switch (kind) {
    case K_PAGEINFO: return PAGEINFO + 32 * (lo & 3);
    case K_SECINFO: return SECINFO + 64 * (lo & 3);
    case K_SECS_SRC: return SECS_SRC;
    case K_SRC: return lo & 1 ? SPARE : SRC;
    case K_SIGSTRUCT: return SIGSTRUCT;
    case K_TOKEN: return TOKEN;
    case K_PCMD: return PCMD + 128 * (lo & 1);
    case K_EPC: return EPC_BASE + 4096 * (lo % (EPC_PAGES + 1));
    case K_EPC_OFF: /* 8-byte steps in the first KiB, 32-byte steps across the page */
        return EPC_BASE + 4096 * (lo % EPC_PAGES) + (hi < 0x80 ? 8 * hi : 32 * (hi & 0x7f));
    case K_VA_SLOT: return EPC_BASE + 4096 * (lo % EPC_PAGES) + 8 * hi;
    case K_ELRANGE: return (lo & 0x80 ? BASE2 : BASE) + 4096 * (lo % 17);
    case K_ELRANGE_OFF: return BASE + (arg & 0xfff8);
    case K_DATA_BUF: return BASE + DATA_OFF + 0x40 * (lo & 0x3f);
    case K_AEP: return AEP;
    case K_EXIT: return EXIT_LANDING;
    case K_TCS: return BASE + (lo & 1 ? TCS1_OFF : TCS0_OFF);
    case K_NONCANONICAL: return 0x8000000000000000ull | (u64)arg << 12;
    case K_UNMAPPED: return 0x7f000000ull + 4096 * lo;
    case K_MMIO: return 0x30000000ull + 4096 * lo;
    case K_FREE_RAM: return FREE_RAM + 4096 * (lo & 15) + 8 * hi;
    case K_SMALL: return lo;
    case K_PTE: return PT_E + 8 * (lo & 15);
    case K_SSA_FIELD: {
        static const u32 frames[4] = { SSA0_OFF, SSA0_OFF + 0x1000, SSA1_OFF, SSA1_OFF };
        return BASE + frames[lo & 3] + SGX_PAGE - GPRSGX_SIZE - EXINFO_SIZE + 8 * (hi % 25);
    }
    case K_XSAVE_FIELD: {
        static const u32 frames[3] = { SSA0_OFF, SSA0_OFF + 0x1000, SSA1_OFF };
        static const u32 fields[6] = { 0, 24, 160, 512, 520, 528 };
        return BASE + frames[lo % 3] + fields[hi % 6];
    }
    default: return data ? take(data, size, 8) : 0;
    }
}

/* A steered value: sel's low 5 bits pick the kind (0: the caller's default), its top 3 a
 * perturbation (mostly none; +1, +8, or a bit flipped). */
static u64 steer(u64 def, const u8 **data, size_t *size)
{
    u8 sel = (u8)take(data, size, 1);
    u16 arg = (u16)take(data, size, 2);
    unsigned kind = sel & 31;
    u64 v = kind == K_DEFAULT ? def : kind_value(kind < K_COUNT ? kind : K_RAW, arg, data, size);
    switch (sel >> 5) {
    case 5: return v + 1;
    case 6: return v + 8;
    case 7: return v ^ (1ull << (take(data, size, 1) & 63));
    default: return v;
    }
}

/* ---- code ---- */
struct code {
    u8 b[KCODE_END - KCODE];
    size_t n, cap;
};
static void emit(struct code *k, const void *p, size_t len)
{
    if (k->n + len <= k->cap) {
        memcpy(k->b + k->n, p, len);
        k->n += len;
    }
}
#define EMIT(k, ...) do { const u8 b_[] = { __VA_ARGS__ }; emit(k, b_, sizeof(b_)); } while (0)
static void emit32(struct code *k, u32 v) { emit(k, &v, 4); }
static void emit64(struct code *k, u64 v) { emit(k, &v, 8); }
/* mov r64, imm64 (compatibility mode: mov r32, imm32) */
static void mov_imm(struct code *k, int reg, u64 v)
{
    if (g32) {
        EMIT(k, (u8)(0xb8 + (reg & 7)));
        emit32(k, (u32)v);
        return;
    }
    EMIT(k, (u8)(reg < 8 ? 0x48 : 0x49), (u8)(0xb8 + (reg & 7)));
    emit64(k, v);
}
/* REX.W where the code is 64-bit */
static void rexw(struct code *k)
{
    if (!g32)
        EMIT(k, 0x48);
}

/* the leaves' own operands (RBX, RCX, RDX), by kind and argument */
struct operand { u8 kind; u16 arg; };
struct leaf_defaults { struct operand rbx, rcx, rdx; };
static u64 default_value(struct operand o, u16 arg)
{
    return kind_value(o.kind, (u16)(o.arg ? o.arg : arg), NULL, NULL);
}
static const struct leaf_defaults encls_defaults[16] = {
    [0x0] = { { K_PAGEINFO, 0x100 }, { K_EPC, 0 }, { K_SMALL, 0x100 } },     /* ECREATE */
    [0x1] = { { K_PAGEINFO, 0x101 }, { K_EPC, 0 }, { K_SMALL, 0x100 } },     /* EADD */
    [0x2] = { { K_SIGSTRUCT, 0 }, { K_EPC, 0 }, { K_TOKEN, 0 } },             /* EINIT */
    [0x3] = { { K_SMALL, 0x100 }, { K_EPC, 0 }, { K_SMALL, 0x100 } },        /* EREMOVE */
    [0x4] = { { K_SMALL, 0x100 }, { K_EPC_OFF, 0 }, { K_SMALL, 0x100 } },    /* EDBGRD */
    [0x5] = { { K_SMALL, 0 }, { K_EPC_OFF, 0 }, { K_SMALL, 0x100 } },        /* EDBGWR */
    [0x6] = { { K_SMALL, 0x100 }, { K_EPC_OFF, 0 }, { K_SMALL, 0x100 } },    /* EEXTEND */
    [0x7] = { { K_PAGEINFO, 0x102 }, { K_EPC, 0 }, { K_VA_SLOT, 0 } },       /* ELDB */
    [0x8] = { { K_PAGEINFO, 0x102 }, { K_EPC, 0 }, { K_VA_SLOT, 0 } },       /* ELDU */
    [0x9] = { { K_SMALL, 0x100 }, { K_EPC, 0 }, { K_SMALL, 0x100 } },        /* EBLOCK */
    [0xa] = { { K_SMALL, 3 }, { K_EPC, 0 }, { K_SMALL, 0x100 } },            /* EPA */
    [0xb] = { { K_PAGEINFO, 0x102 }, { K_EPC, 0 }, { K_VA_SLOT, 0 } },       /* EWB */
    [0xc] = { { K_SMALL, 0x100 }, { K_EPC, 0 }, { K_SMALL, 0x100 } },        /* ETRACK */
    [0xd] = { { K_PAGEINFO, 0x103 }, { K_EPC, 0 }, { K_SMALL, 0x100 } },     /* EAUG */
    [0xe] = { { K_SECINFO, 0x103 }, { K_EPC, 0 }, { K_SMALL, 0x100 } },      /* EMODPR */
    [0xf] = { { K_SECINFO, 0x103 }, { K_EPC, 0 }, { K_SMALL, 0x100 } },      /* EMODT */
};
static const struct leaf_defaults enclu_defaults[10] = {
    [0x0] = { { K_DATA_BUF, D_TARGETINFO / 0x40 }, { K_DATA_BUF, D_REPORTDATA / 0x40 },
              { K_DATA_BUF, D_REPORT / 0x40 } },                               /* EREPORT */
    [0x1] = { { K_DATA_BUF, D_KEYREQUEST / 0x40 + 0x100 }, { K_DATA_BUF, D_KEY / 0x40 },
              { K_SMALL, 0x100 } },                                            /* EGETKEY */
    [0x2] = { { K_TCS, 0 }, { K_AEP, 0 }, { K_SMALL, 0x100 } },               /* EENTER */
    [0x3] = { { K_TCS, 0 }, { K_AEP, 0 }, { K_SMALL, 0x100 } },               /* ERESUME */
    [0x4] = { { K_EXIT, 0 }, { K_SMALL, 0x100 }, { K_SMALL, 0x100 } },        /* EEXIT */
    [0x5] = { { K_DATA_BUF, D_SECINFO / 0x40 }, { K_ELRANGE, 0 }, { K_SMALL, 0x100 } }, /* EACCEPT */
    [0x6] = { { K_DATA_BUF, D_SECINFO / 0x40 }, { K_ELRANGE, 0 }, { K_SMALL, 0x100 } }, /* EMODPE */
    [0x7] = { { K_DATA_BUF, D_SECINFO / 0x40 }, { K_ELRANGE, 0 },
              { K_ELRANGE, COPY_OFF / 0x1000 + 0x100 } },                      /* EACCEPTCOPY */
    [0x8] = { { K_SMALL, 0x100 }, { K_SMALL, 0x100 }, { K_SMALL, 0x100 } },   /* (none) */
    [0x9] = { { K_SMALL, 0x100 }, { K_SMALL, 0x100 }, { K_SMALL, 0x100 } },   /* EDECCSSA */
};

/* RAX = leaf, RBX/RCX/RDX steered from the leaf's defaults; then ENCLS or ENCLU. Outside
 * an enclave ENCLU is mostly EENTER (leaf byte below 60h) or ERESUME (60h-7Fh). */
static void emit_leaf(struct code *k, bool encls, bool outside, const u8 **data, size_t *size)
{
    u8 l = (u8)take(data, size, 1);
    u32 leaf = encls ? l % 17u : outside && l < 0x80 ? (l < 0x60 ? 2u : 3u) : (l & 0x7f) % 11u;
    if (leaf == (encls ? 16u : 10u))
        leaf = (u32)take(data, size, 4);
    const struct leaf_defaults *d =
        encls ? (leaf < 16 ? &encls_defaults[leaf] : &encls_defaults[3])
              : (leaf < 10 ? &enclu_defaults[leaf] : &enclu_defaults[9]);
    u16 arg = (u16)take(data, size, 2);
    EMIT(k, 0xb8);
    emit32(k, leaf);
    mov_imm(k, R_RBX, steer(default_value(d->rbx, arg), data, size));
    mov_imm(k, R_RCX, steer(default_value(d->rcx, arg), data, size));
    mov_imm(k, R_RDX, steer(default_value(d->rdx, arg), data, size));
    if (encls)
        EMIT(k, 0x0f, 0x01, 0xcf);
    else
        EMIT(k, 0x0f, 0x01, 0xd7);
}

/* mov rax, value; mov rdi, address; mov [rdi], rax (the default: a PTE of ELRANGE) */
static void emit_store(struct code *k, u64 def_addr, const u8 **data, size_t *size)
{
    u64 addr = steer(def_addr, data, size);
    u64 value = steer((EPC_BASE + 4096 * (take(data, size, 1) % EPC_PAGES)) | 7, data, size);
    mov_imm(k, R_RAX, value);
    mov_imm(k, R_RDI, addr);
    rexw(k);
    EMIT(k, 0x89, 0x07);
}

/* An excursion for the next bytes of op: IRETQ with IF/TF/AC from the input to CPL 3 in
 * 64-bit mode (user), or to compatibility mode at CPL 3 or at CPL 0 (compat, user); the
 * caller's instructions, then INT 80h back (EEXIT and the AEP end with one too). The
 * caller generates the instructions with g32 set for compatibility mode. */
static void excursion(struct code *op, bool user, bool compat, const u8 **data, size_t *size,
                      size_t *patch)
{
    u8 f = (u8)take(data, size, 1);
    u32 fl = FL_FIXED1 | (f & 1 ? FL_IF : 0) | (f & 2 ? FL_TF : 0) | (f & 4 ? FL_AC : 0);
    u8 cs = compat ? (user ? 0x43 : 0x38) : 0x2b, ss = user ? 0x33 : 0x10;
    EMIT(op, 0x6a, ss, 0x68);       /* push SS; push RSP */
    emit32(op, user ? USTACK : KSTACK - 0x100);
    EMIT(op, 0x68);                 /* push RFLAGS */
    emit32(op, fl);
    EMIT(op, 0x6a, cs, 0x68);       /* push CS; push the next instruction */
    *patch = op->n;
    emit32(op, 0);
    EMIT(op, 0x48, 0xcf);           /* iretq */
    u32 target = (u32)op->n;
    memcpy(op->b + *patch, &target, 4); /* relative to the op; made absolute by the caller */
    /* at CPL 3 the IRETQ left DS and ES null, which compatibility mode cannot use:
     * mov eax, 33h; mov ds, eax; mov es, eax (the same bytes in either mode) */
    if (user)
        EMIT(op, 0xb8, 0x33, 0x00, 0x00, 0x00, 0x8e, 0xd8, 0x8e, 0xc0);
}

/* The vCPU's program at KCODE, at CPL 0: ops, each storing the next op's address at RESUME
 * first; an exception, interrupt, EEXIT or AEX anywhere in an op goes on with the next. */
static void kernel_program(const u8 **data, size_t *size, unsigned nops)
{
    static struct code all, op;
    all.n = 0;
    all.cap = KCODE_END - KCODE - 64;
    for (unsigned i = 0; i < nops && *size; i++) {
        op.n = 0;
        op.cap = 512;
        size_t patch = ~(size_t)0;
        u8 kind = (u8)take(data, size, 1);
        switch (kind % 16) {
        /* the kind's bit 7 runs the leaf in compatibility mode (the 32-bit enclave's) */
        case 0: case 1: case 2: case 3:
            if (kind & 0x80) {
                excursion(&op, false, true, data, size, &patch);
                g32 = true;
                emit_leaf(&op, true, false, data, size);
                g32 = false;
                EMIT(&op, 0xcd, 0x80);
            } else {
                emit_leaf(&op, true, false, data, size);
            }
            break;
        case 4: case 5: case 6: case 7: case 8: /* ENCLU at CPL 3 */
            excursion(&op, true, kind & 0x80, data, size, &patch);
            g32 = kind & 0x80;
            emit_leaf(&op, false, true, data, size);
            g32 = false;
            EMIT(&op, 0xcd, 0x80);
            break;
        case 9: /* a leaf at the wrong privilege: ENCLS at CPL 3, ENCLU at CPL 0 */
            if (take(data, size, 1) & 1) {
                excursion(&op, true, kind & 0x80, data, size, &patch);
                g32 = kind & 0x80;
                emit_leaf(&op, true, false, data, size);
                g32 = false;
                EMIT(&op, 0xcd, 0x80);
            } else if (kind & 0x80) {
                excursion(&op, false, true, data, size, &patch);
                g32 = true;
                emit_leaf(&op, false, true, data, size);
                g32 = false;
                EMIT(&op, 0xcd, 0x80);
            } else {
                emit_leaf(&op, false, true, data, size);
            }
            break;
        case 10: emit_store(&op, PT_E + 8 * (take(data, size, 1) & 15), data, size); break;
        case 11: EMIT(&op, 0xc6, 0x04, 0x25); emit32(&op, AEP_IRET); EMIT(&op, (u8)take(data, size, 1)); break;
        case 12: { /* mov rax, crN; xor rax, imm32; mov crN, rax (CR0, CR3, CR4), or CR3 reload */
            static const u8 cr[] = { 0xc0, 0xd8, 0xe0, 0xd8 };
            u8 which = (u8)take(data, size, 1) & 3;
            EMIT(&op, 0x0f, 0x20, cr[which], 0x48, 0x35);
            emit32(&op, which == 3 ? 0 : (u32)take(data, size, 4));
            EMIT(&op, 0x0f, 0x22, cr[which]);
            break;
        }
        case 13: { /* sti; nop / cli / sti; hlt */
            static const u8 st[3][2] = { { 0xfb, 0x90 }, { 0xfa, 0x90 }, { 0xfb, 0xf4 } };
            emit(&op, st[take(data, size, 1) % 3], 2);
            break;
        }
        case 14: { /* raw bytes */
            unsigned len = (unsigned)take(data, size, 1) % 9;
            for (unsigned j = 0; j < len; j++)
                EMIT(&op, (u8)take(data, size, 1));
            break;
        }
        default: { /* wrmsr: FEATURE_CONTROL or a Launch Control hash MSR */
            static const u32 msrs[] = { 0x3a, 0x8c, 0x8d, 0x8e, 0x8f };
            u64 v = take(data, size, 8);
            EMIT(&op, 0xb9);
            emit32(&op, msrs[take(data, size, 1) % 5]);
            EMIT(&op, 0xb8);
            emit32(&op, (u32)v);
            EMIT(&op, 0xba);
            emit32(&op, (u32)(v >> 32));
            EMIT(&op, 0x0f, 0x30);
            break;
        }
        }
        /* mov qword [RESUME], next; the op */
        u32 at = (u32)(KCODE + all.n + 12);
        u32 next = at + (u32)op.n;
        if (all.n + 12 + op.n > all.cap)
            break;
        if (patch != ~(size_t)0) {
            u32 rel;
            memcpy(&rel, op.b + patch, 4);
            rel += at;
            memcpy(op.b + patch, &rel, 4);
        }
        EMIT(&all, 0x48, 0xc7, 0x04, 0x25);
        emit32(&all, RESUME);
        emit32(&all, next);
        emit(&all, op.b, op.n);
    }
    /* the end: cli; hlt */
    u32 end = (u32)(KCODE + all.n + 12);
    all.cap += 64;
    EMIT(&all, 0x48, 0xc7, 0x04, 0x25);
    emit32(&all, RESUME);
    emit32(&all, end);
    EMIT(&all, 0xfa, 0xf4, 0xeb, 0xfc);
    mem_write(&mem, KCODE, all.b, all.n);
}

/* The enclave's code from an entry point: ops inside the enclave, then EEXIT. */
static size_t enclave_program(u8 *out, size_t cap, const u8 **data, size_t *size, unsigned nops)
{
    static struct code k;
    k.n = 0;
    k.cap = cap - 32;
    for (unsigned i = 0; i < nops && *size && k.n + 64 < k.cap; i++) {
        switch (take(data, size, 1) % 16) {
        case 0: case 1: case 2:
            emit_leaf(&k, false, false, data, size);
            break;
        case 3: /* EEXIT to the landing */
            mov_imm(&k, R_RBX, EXIT_LANDING);
            EMIT(&k, 0xb8, 0x04, 0x00, 0x00, 0x00, 0x0f, 0x01, 0xd7);
            break;
        case 4: case 5: /* a store inside the enclave (its SSA frames by default) */
            emit_store(&k, kind_value(K_SSA_FIELD, (u16)take(data, size, 2), NULL, NULL), data, size);
            break;
        case 6: { /* a load */
            u64 a = steer(kind_value(K_ELRANGE_OFF, (u16)take(data, size, 2), NULL, NULL), data, size);
            mov_imm(&k, R_RDI, a);
            rexw(&k);
            EMIT(&k, 0x8b, 0x07);
            break;
        }
        case 7: { /* a fault or an instruction illegal inside */
            static const u8 ins[][4] = {
                { 2, 0x0f, 0x0b },       /* ud2 */
                { 1, 0xcc },             /* int3 */
                { 2, 0x0f, 0xa2 },       /* cpuid */
                { 2, 0x31, 0xc9 },       /* xor ecx, ecx (then div ecx) */
                { 2, 0xf7, 0xf1 },       /* div ecx */
                { 2, 0xcd, 0x80 },       /* int 80h */
                { 2, 0x0f, 0x05 },       /* syscall */
                { 2, 0xe4, 0x80 },       /* in al, 80h */
                { 2, 0x8e, 0xd0 },       /* mov ss, eax */
                { 1, 0xf4 },             /* hlt */
                { 2, 0x0f, 0x31 },       /* rdtsc */
                { 3, 0x0f, 0x01, 0xd1 }, /* xsetbv */
                { 3, 0x0f, 0x01, 0xcf }, /* encls */
                { 2, 0xff, 0xe3 },       /* jmp rbx */
                { 1, 0xcb },             /* retf */
                { 3, 0x0f, 0x01, 0xc8 }, /* monitor */
            };
            unsigned w = (unsigned)take(data, size, 1) % ARRAY_SIZE(ins);
            emit(&k, ins[w] + 1, ins[w][0]);
            break;
        }
        case 8: /* mov ecx, n; 1: dec ecx; jnz 1b - for the interrupt to hit */
            EMIT(&k, 0xb9);
            emit32(&k, (u32)take(data, size, 1) * 4);
            EMIT(&k, 0xff, 0xc9, 0x75, 0xfc);
            break;
        case 9: /* pushf; or qword [rsp], TF; popf */
            EMIT(&k, 0x9c);
            rexw(&k);
            EMIT(&k, 0x81, 0x0c, 0x24, 0x00, 0x01, 0x00, 0x00, 0x9d);
            break;
        case 10: /* mov rsp, value */
            mov_imm(&k, R_RSP, steer(BASE + COPY_OFF + 0x800, data, size));
            EMIT(&k, 0x50); /* push rax */
            break;
        case 11: { /* FS/GS: mov rax, fs:[disp]; mov gs:[disp], rax */
            u32 d = (u32)take(data, size, 2) & 0x1ff8;
            EMIT(&k, 0x64);
            rexw(&k);
            EMIT(&k, 0x8b, 0x04, 0x25);
            emit32(&k, d);
            EMIT(&k, 0x65);
            rexw(&k);
            EMIT(&k, 0x89, 0x04, 0x25);
            emit32(&k, d ^ 8);
            break;
        }
        case 12: { /* raw bytes */
            unsigned len = (unsigned)take(data, size, 1) % 9;
            for (unsigned j = 0; j < len; j++)
                EMIT(&k, (u8)take(data, size, 1));
            break;
        }
        case 13: /* jmp to a steered address */
            mov_imm(&k, R_RAX, steer(BASE + CODE_OFF, data, size));
            EMIT(&k, 0xff, 0xe0);
            break;
        case 14: /* a register from the input (RAX..R15) */
            mov_imm(&k, (int)(take(data, size, 1) & 15), take(data, size, 8));
            break;
        default: /* EEXIT with a steered target */
            mov_imm(&k, R_RBX, steer(EXIT_LANDING, data, size));
            EMIT(&k, 0xb8, 0x04, 0x00, 0x00, 0x00, 0x0f, 0x01, 0xd7);
            break;
        }
    }
    k.cap += 32;
    mov_imm(&k, R_RBX, EXIT_LANDING);
    EMIT(&k, 0xb8, 0x04, 0x00, 0x00, 0x00, 0x0f, 0x01, 0xd7);
    memcpy(out, k.b, k.n);
    return k.n;
}

/* ---- per run ---- */
static void restore_epc(void)
{
    memcpy(epc->bytes, snap_bytes, EPC_PAGES * SGX_PAGE);
    memcpy(epc->epcm, snap_epcm, sizeof(snap_epcm));
    for (u64 i = 0; i < EPC_PAGES; i++)
        mem_code_write(&epc->gen[i]);
    epc->next_eid = snap_next_eid;
    epc->paging_nonce = snap_paging_nonce;
    memcpy(epc->cpusvn, snap_cpusvn, 16);
}

static u8 *encl(u32 off) { return epc_page(epc, 1 + off / SGX_PAGE); }

/* The structures in RAM, with the defaults the leaves' default operands expect. */
static void structures(void)
{
    secs_template(BASE2, 0x8000, enclave_attrs);
    pageinfo(0, 0, SECS_SRC, SECINFO, 0);                                     /* ECREATE */
    pageinfo(1, BASE2 + 0x1000, SRC, SECINFO + 64, EPC_BASE + 4096 * 17);      /* EADD */
    pageinfo(2, 0, SRC, PCMD, 0);                                             /* EWB, ELD */
    pageinfo(3, BASE + 0x9000, 0, 0, EPC_BASE);                               /* EAUG */
    w64(SECINFO, 0);                                                          /* PT_SECS */
    w64(SECINFO + 64, (u64)PT_REG << 8 | 7);
    w64(SECINFO + 128, (u64)PT_TCS << 8);
    w64(SECINFO + 192, (u64)PT_TRIM << 8);
    mem_write(&mem, SIGSTRUCT, sigstruct, sizeof(sigstruct));
    u8 t[SGX_PAGE];
    tcs_fields(t, 0, 0x2000, 1, 0x1000, 0, 0);
    mem_write(&mem, SRC, t, sizeof(t));
    /* the enclave's data page: KEYREQUEST (a seal key), SECINFO for EACCEPT of EAUG's pages */
    u8 *datas[2] = { encl(DATA_OFF), epc_page(epc, E32_SECS + 1 + E32_DATA_OFF / SGX_PAGE) };
    for (int k = 0; k < 2; k++) {
        u8 *d = datas[k];
        wr16(d, D_KEYREQUEST, 4);
        wr16(d, D_KEYREQUEST + 2, 2);
        wr64(d, D_SECINFO, SECINFO_PENDING | SECINFO_R | SECINFO_W | (u64)PT_REG << 8);
    }
}

/* TCS1's fields from the input, kept within what EADD accepts of an unmeasured TCS. */
static void tcs1_from_input(const u8 **data, size_t *size)
{
    u8 *t = encl(TCS1_OFF);
    u64 ossa = steer(SSA1_OFF, data, size) & ~0xfffull;
    u32 nssa = (u32)take(data, size, 1);
    u64 oentry = steer(CODE_OFF + 0x800, data, size);
    u64 ofs = steer(DATA_OFF, data, size) & ~0xfffull, ogs = steer(DATA_OFF, data, size) & ~0xfffull;
    u64 flags = take(data, size, 1) & tcs_flags_allowed;
    tcs_fields(t, flags, ossa, nssa ? nssa % 4 : 1, oentry, ofs, ogs);
    wr32(t, TCS_FSLIMIT, (u32)take(data, size, 4) | 0xfff);
    wr32(t, TCS_GSLIMIT, (u32)take(data, size, 4) | 0xfff);
}

/* cpu_run for budget instructions; the harness's "interrupt controller" raises its line
 * every irq_period instructions, and says so to the vCPU between slices as a LAPIC does
 * (cpu_check_events), so that an interrupt can hit wherever the vCPU runs */
static void run(u64 budget)
{
    while (budget && c->state != CPU_SHUTDOWN) {
        u64 n = irq_period && irq_period < budget ? irq_period : budget;
        cpu_run(c, n);
        budget -= n;
        if (irq_period && c->icount >= irq_next)
            cpu_check_events(c);
    }
}

/* The next section of the input: a length byte, then that many bytes (fewer at the end) */
static void section(const u8 **data, size_t *size, const u8 **sec, size_t *sec_size)
{
    size_t n = (size_t)take(data, size, 1);
    if (n > *size)
        n = *size;
    *sec = *data;
    *sec_size = n;
    *data += n;
    *size -= n;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
    static bool ready;
    if (!ready) {
        init_once();
        ready = true;
    }
    u64 ctl = take(&data, &size, 4);
    machine_state(ctl & BIT(0) ? CR0_TS : 0,
                  (ctl & BIT(1) ? CR4_OSXSAVE : 0) | (ctl & BIT(2) ? CR4_SMAP : 0) |
                      (ctl & BIT(3) ? CR4_SMEP : 0),
                  !(ctl & BIT(4)));
    if (ctl & BIT(5))
        c->cr4 &= ~(u64)CR4_OSFXSR;
    if (ctl & BIT(6))
        c->msr_feature_control &= ~(u64)FEATURE_CONTROL_SGX;
    restore_epc();
    structures();
    irq_period = ctl & BIT(7) ? 20 + (ctl >> 8 & 0xff) * 4 : 0;
    irq_next = irq_period;
    irq_vector = ctl & BIT(16) ? (int)(ctl >> 17 & 0x1f) : 0x20 + (int)(ctl >> 17 & 0x1f);

    /* section 1: steered quadwords at 8-aligned offsets of the harness's RAM structures,
     * of the enclave's unmeasured pages (SSA frames, data, the copy page), TCS1's fields */
    const u8 *sec;
    size_t sec_size;
    section(&data, &size, &sec, &sec_size);
    while (sec_size) {
        u8 what = (u8)take(&sec, &sec_size, 1);
        if (what < 0x80) {
            u64 at = PAGEINFO + ((take(&sec, &sec_size, 2) % (HARNESS_END - PAGEINFO)) & ~7ull);
            w64(at, steer(0, &sec, &sec_size));
        } else if (what < 0xf0) {
            /* the 64-bit enclave's SSA frames, data, copy page; the 32-bit one's SSA, data */
            static const u32 pages[] = { 1 + SSA0_OFF / SGX_PAGE, 2 + SSA0_OFF / SGX_PAGE,
                                         1 + DATA_OFF / SGX_PAGE, 1 + SSA1_OFF / SGX_PAGE,
                                         1 + COPY_OFF / SGX_PAGE, E32_SECS + 1 + E32_SSA_OFF / SGX_PAGE,
                                         E32_SECS + 2 + E32_SSA_OFF / SGX_PAGE,
                                         E32_SECS + 1 + E32_DATA_OFF / SGX_PAGE };
            u8 *p = epc_page(epc, pages[(what - 0x80) % ARRAY_SIZE(pages)]);
            unsigned off = (unsigned)take(&sec, &sec_size, 2) & 0xff8;
            wr64(p, off, steer(0, &sec, &sec_size));
        } else {
            tcs1_from_input(&sec, &sec_size);
        }
    }
    /* sections 2 and 3: the enclave's code at TCS0's entry (+0) and TCS1's (+0x800) */
    u8 *code = encl(CODE_OFF);
    section(&data, &size, &sec, &sec_size);
    enclave_program(code, 0x800, &sec, &sec_size, 64);
    section(&data, &size, &sec, &sec_size);
    enclave_program(code + 0x800, 0x800, &sec, &sec_size, 64);
    /* section 4: the 32-bit enclave's code (compatibility mode) */
    section(&data, &size, &sec, &sec_size);
    g32 = true;
    enclave_program(epc_page(epc, E32_SECS + 1 + E32_CODE_OFF / SGX_PAGE), SGX_PAGE, &sec, &sec_size, 128);
    g32 = false;
    /* the rest: the program at CPL 0 */
    kernel_program(&data, &size, 64);

    if (!(ctl & BIT(28))) {
        run(3000);
        check_invariants();
        return 0;
    }
    /* an NMI or an INIT halfway */
    run(1500);
    check_invariants();
    if (c->state != CPU_SHUTDOWN) {
        if (ctl & BIT(29))
            cpu_init_signal(c, true);
        else
            cpu_nmi(c);
        run(1500);
        check_invariants();
    }
    return 0;
}

/* sgx_sign: measures an enclave the way ECREATE, EADD and EEXTEND do and writes the
 * SIGSTRUCT that EINIT checks, for the enclaves the SGX guest tests and the Linux test
 * build with gcc.
 *
 * It computes MRENCLAVE on its own (one EVP SHA-256 over the measurement records) and
 * knows the SIGSTRUCT layout on its own: it shares no code with the engine's SGX
 * cryptography (src/cpu/sgx/crypto.c), so that the engine's measurement and signature
 * check are tested against it rather than against themselves.
 *
 * Usage: see usage() below. The layout file lists the pages in the order the loader adds
 * them, one per line: OFFSET TYPE PERMS MEASURE, e.g.
 *     0x0000 tcs - 1
 *     0x1000 reg rx 1
 *     0x3000 reg rw 0
 * A page's contents are the image's bytes at OFFSET (zeros past the end of the image). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#define PAGE 4096u
#define CHUNK 256u         /* what one EEXTEND measures */
#define RSA_BYTES 384      /* RSA-3072 */
#define SIGSTRUCT_BYTES 1808

/* SIGSTRUCT fields (Intel SDM Vol. 3D, "SIGSTRUCT"). The signed bytes are the header
 * [0, 128) and the body [900, 1028). */
enum {
    SS_HEADER = 0,
    SS_VENDOR = 16,
    SS_DATE = 20,
    SS_HEADER2 = 24,
    SS_MODULUS = 128,
    SS_EXPONENT = 512,
    SS_SIGNATURE = 516,
    SS_MISCSELECT = 900,
    SS_MISCMASK = 904,
    SS_ATTRIBUTES = 928,      /* flags u64, then xfrm u64 */
    SS_ATTRIBUTEMASK = 944,   /* flags mask u64, then xfrm mask u64 */
    SS_ENCLAVEHASH = 960,
    SS_ISVPRODID = 1024,
    SS_ISVSVN = 1026,
    SS_Q1 = 1040,
    SS_Q2 = 1424,
    SS_HEADER_LEN = 128,
    SS_BODY = 900,
    SS_BODY_LEN = 128,
};

static const uint8_t sigstruct_header[16] = {
    0x06, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0,
};
static const uint8_t sigstruct_header2[16] = {
    0x01, 0x01, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 0x01, 0, 0, 0,
};

/* SECINFO.FLAGS */
#define SECINFO_R 0x1u
#define SECINFO_W 0x2u
#define SECINFO_X 0x4u
#define PT_TCS 1u
#define PT_REG 2u

struct page_spec {
    uint64_t offset;
    unsigned type;  /* PT_TCS or PT_REG */
    unsigned perms; /* SECINFO_R|W|X */
    bool measure;   /* EEXTEND its 16 chunks */
};

struct options {
    const char *key_path, *image_path, *layout_path, *out_path;
    uint32_t ssaframesize;
    uint64_t size; /* 0: the default */
    uint64_t attributes, attributemask, xfrm, xfrmmask;
    uint32_t miscselect, miscmask;
    uint16_t isvprodid, isvsvn;
    uint32_t vendor;
    uint32_t date_bcd; /* 0: today */
    bool print_mrenclave, print_mrsigner;
};

static const char *prog = "sgx_sign";

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (ERR_peek_error())
        ERR_print_errors_fp(stderr);
    exit(1);
}

static _Noreturn void usage(void)
{
    fprintf(stderr,
            "usage: %s -key KEY.pem -image IMG.bin -layout LAYOUT.txt -out SIGSTRUCT.bin\n"
            "       [-ssaframesize PAGES (1)] [-size BYTES (power of 2; default: the smallest\n"
            "        holding the image and every page of the layout, at least 4096)]\n"
            "       [-attributes HEX64 (4: MODE64BIT)] [-attributemask HEX64 (0)]\n"
            "       [-xfrm HEX64 (3: x87, SSE)] [-xfrmmask HEX64 (0)]\n"
            "       [-miscselect HEX32 (0)] [-miscmask HEX32 (0)]\n"
            "       [-isvprodid N (0)] [-isvsvn N (0)] [-vendor 0|0x8086 (0)]\n"
            "       [-date YYYYMMDD (today, or SOURCE_DATE_EPOCH's day, UTC)]\n"
            "       [-print-mrenclave] [-print-mrsigner]\n"
            "KEY.pem is an RSA-3072 private key with exponent 3, generated if the file does\n"
            "not exist. LAYOUT.txt has one line per page, in the order the loader adds them:\n"
            "OFFSET tcs|reg PERMS(rwx subset or -) MEASURE(0|1); '#' starts a comment line.\n",
            prog);
    exit(2);
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A whole-string unsigned number no greater than max (base 0: decimal, 0x hex, 0 octal). */
static bool parse_u64(const char *s, int base, uint64_t max, uint64_t *out)
{
    /* strtoull would accept leading blanks and a minus sign */
    if (!(base == 16 ? isxdigit((unsigned char)s[0]) : isdigit((unsigned char)s[0])))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

static uint64_t option_number(const char *opt, const char *s, int base, uint64_t max)
{
    uint64_t v;
    if (!parse_u64(s, base, max, &v)) {
        fprintf(stderr, "%s: bad value for %s: '%s'\n", prog, opt, s);
        usage();
    }
    return v;
}

/* YYYYMMDD as BCD (0x20240131 for 20240131) */
static uint32_t parse_date(const char *s)
{
    if (strlen(s) != 8 || strspn(s, "0123456789") != 8)
        return 0;
    uint32_t bcd = 0;
    for (int i = 0; i < 8; i++)
        bcd = bcd << 4 | (uint32_t)(s[i] - '0');
    unsigned month = (unsigned)((s[4] - '0') * 10 + (s[5] - '0'));
    unsigned day = (unsigned)((s[6] - '0') * 10 + (s[7] - '0'));
    if (month < 1 || month > 12 || day < 1 || day > 31)
        return 0;
    return bcd;
}

static uint32_t today_bcd(void)
{
    time_t now = time(NULL);
    const char *epoch = getenv("SOURCE_DATE_EPOCH"); /* reproducible builds */
    uint64_t e;
    if (epoch && parse_u64(epoch, 10, INT64_MAX, &e))
        now = (time_t)e;
    struct tm tm;
    char buf[16];
    if (!gmtime_r(&now, &tm) || strftime(buf, sizeof(buf), "%Y%m%d", &tm) != 8)
        die("cannot format today's date");
    return parse_date(buf);
}

static void parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){
        .ssaframesize = 1,
        .attributes = 0x4, /* MODE64BIT: the enclaves are 64-bit code */
        .xfrm = 0x3,       /* x87 and SSE, the XFRM every enclave must have */
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-print-mrenclave")) {
            o->print_mrenclave = true;
            continue;
        }
        if (!strcmp(a, "-print-mrsigner")) {
            o->print_mrsigner = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "-help") || !strcmp(a, "--help"))
            usage();
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            usage();
        }
        const char *v = argv[++i];
        if (!strcmp(a, "-key"))
            o->key_path = v;
        else if (!strcmp(a, "-image"))
            o->image_path = v;
        else if (!strcmp(a, "-layout"))
            o->layout_path = v;
        else if (!strcmp(a, "-out"))
            o->out_path = v;
        else if (!strcmp(a, "-ssaframesize"))
            o->ssaframesize = (uint32_t)option_number(a, v, 0, UINT32_MAX);
        else if (!strcmp(a, "-size"))
            o->size = option_number(a, v, 0, UINT64_MAX);
        else if (!strcmp(a, "-attributes"))
            o->attributes = option_number(a, v, 16, UINT64_MAX);
        else if (!strcmp(a, "-attributemask"))
            o->attributemask = option_number(a, v, 16, UINT64_MAX);
        else if (!strcmp(a, "-xfrm"))
            o->xfrm = option_number(a, v, 16, UINT64_MAX);
        else if (!strcmp(a, "-xfrmmask"))
            o->xfrmmask = option_number(a, v, 16, UINT64_MAX);
        else if (!strcmp(a, "-miscselect"))
            o->miscselect = (uint32_t)option_number(a, v, 16, UINT32_MAX);
        else if (!strcmp(a, "-miscmask"))
            o->miscmask = (uint32_t)option_number(a, v, 16, UINT32_MAX);
        else if (!strcmp(a, "-isvprodid"))
            o->isvprodid = (uint16_t)option_number(a, v, 0, UINT16_MAX);
        else if (!strcmp(a, "-isvsvn"))
            o->isvsvn = (uint16_t)option_number(a, v, 0, UINT16_MAX);
        else if (!strcmp(a, "-vendor")) {
            o->vendor = (uint32_t)option_number(a, v, 0, UINT32_MAX);
            if (o->vendor != 0 && o->vendor != 0x8086) {
                fprintf(stderr, "%s: -vendor must be 0 or 0x8086\n", prog);
                usage();
            }
        } else if (!strcmp(a, "-date")) {
            o->date_bcd = parse_date(v);
            if (!o->date_bcd) {
                fprintf(stderr, "%s: bad -date '%s' (YYYYMMDD)\n", prog, v);
                usage();
            }
        } else {
            fprintf(stderr, "%s: unknown option %s\n", prog, a);
            usage();
        }
    }
    if (!o->key_path || !o->image_path || !o->layout_path || !o->out_path)
        usage();
    if (o->ssaframesize == 0) {
        fprintf(stderr, "%s: -ssaframesize must be at least 1\n", prog);
        usage();
    }
    if (o->size && (o->size < PAGE || (o->size & (o->size - 1)))) {
        fprintf(stderr, "%s: -size must be a power of 2, at least %u\n", prog, PAGE);
        usage();
    }
}

/* ---- input files ---- */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf)
            die("out of memory reading %s", path);
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(f))
        die("%s: read error", path);
    fclose(f);
    *len = n;
    return buf;
}

static int compare_offsets(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static struct page_spec *read_layout(const char *path, size_t *count)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("%s: %s", path, strerror(errno));
    struct page_spec *pages = NULL;
    size_t n = 0, cap = 0;
    char line[1024];
    for (unsigned lineno = 1; fgets(line, sizeof(line), f); lineno++) {
        if (!strchr(line, '\n') && !feof(f))
            die("%s:%u: line too long", path, lineno);
        char *save, *tok[5];
        int ntok = 0;
        for (char *t = strtok_r(line, " \t\r\n", &save); t && ntok < 5;
             t = strtok_r(NULL, " \t\r\n", &save))
            tok[ntok++] = t;
        if (ntok == 0 || tok[0][0] == '#')
            continue;
        if (ntok != 4)
            die("%s:%u: expected 'OFFSET TYPE PERMS MEASURE'", path, lineno);

        struct page_spec p = {0};
        if (!parse_u64(tok[0], 0, UINT64_MAX - PAGE, &p.offset) || p.offset % PAGE)
            die("%s:%u: bad offset '%s' (a multiple of 4096)", path, lineno, tok[0]);
        if (!strcmp(tok[1], "tcs"))
            p.type = PT_TCS;
        else if (!strcmp(tok[1], "reg"))
            p.type = PT_REG;
        else
            die("%s:%u: bad page type '%s' (tcs or reg)", path, lineno, tok[1]);
        if (strcmp(tok[2], "-")) {
            for (const char *c = tok[2]; *c; c++) {
                unsigned bit = *c == 'r'   ? SECINFO_R
                               : *c == 'w' ? SECINFO_W
                               : *c == 'x' ? SECINFO_X
                                           : 0;
                if (!bit || (p.perms & bit))
                    die("%s:%u: bad permissions '%s' (a subset of rwx, or -)", path, lineno,
                        tok[2]);
                p.perms |= bit;
            }
        }
        if (strcmp(tok[3], "0") && strcmp(tok[3], "1"))
            die("%s:%u: MEASURE is 0 or 1, not '%s'", path, lineno, tok[3]);
        p.measure = tok[3][0] == '1';

        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            pages = realloc(pages, cap * sizeof(*pages));
            if (!pages)
                die("out of memory reading %s", path);
        }
        pages[n++] = p;
    }
    if (ferror(f))
        die("%s: read error", path);
    fclose(f);
    if (n == 0)
        die("%s: no pages", path);

    /* EADD refuses a page that is already in the enclave */
    uint64_t *offsets = malloc(n * sizeof(*offsets));
    if (!offsets)
        die("out of memory");
    for (size_t i = 0; i < n; i++)
        offsets[i] = pages[i].offset;
    qsort(offsets, n, sizeof(*offsets), compare_offsets);
    for (size_t i = 1; i < n; i++)
        if (offsets[i] == offsets[i - 1])
            die("%s: page 0x%" PRIx64 " is listed twice", path, offsets[i]);
    free(offsets);
    *count = n;
    return pages;
}

/* ---- the key ---- */

static EVP_PKEY *generate_key(void)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM *e = BN_new();
    EVP_PKEY *key = NULL;
    if (!ctx || !e || !BN_set_word(e, 3) || EVP_PKEY_keygen_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 3072) != 1 ||
        EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e) != 1 || EVP_PKEY_generate(ctx, &key) != 1)
        die("cannot generate an RSA-3072 key");
    BN_free(e);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

/* Writes the new key to a temporary file, then links it to path: several signers
 * started at once (make -j) all end up using the one key that got there first. */
static EVP_PKEY *create_key_file(const char *path)
{
    size_t len = strlen(path) + 16;
    char *tmp = malloc(len);
    if (!tmp)
        die("out of memory");
    snprintf(tmp, len, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp); /* mode 0600: it is a private key */
    if (fd < 0)
        die("%s: %s", tmp, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f)
        die("%s: %s", tmp, strerror(errno));
    EVP_PKEY *key = generate_key();
    if (PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1 || fflush(f) ||
        fsync(fd) || fclose(f)) {
        unlink(tmp);
        die("%s: cannot write the key", tmp);
    }
    int linked = link(tmp, path);
    int link_errno = errno;
    unlink(tmp);
    free(tmp);
    if (linked == 0) {
        fprintf(stderr, "%s: generated a new RSA-3072 key (exponent 3) in %s\n", prog, path);
        return key;
    }
    EVP_PKEY_free(key);
    if (link_errno != EEXIST)
        die("%s: %s", path, strerror(link_errno));
    return NULL; /* someone else's key is there now */
}

static EVP_PKEY *load_key(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT) {
        EVP_PKEY *key = create_key_file(path);
        if (key)
            return key;
        f = fopen(path, "r");
    }
    if (!f)
        die("%s: %s", path, strerror(errno));
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!key)
        die("%s: not a PEM private key", path);
    BIGNUM *e = NULL;
    if (!EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_get_bits(key) != 3072 ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1 || !BN_is_word(e, 3))
        die("%s: not an RSA-3072 key with exponent 3 (SGX signs with those only)", path);
    BN_free(e);
    return key;
}

/* ---- measurement ---- */

static void digest_update(EVP_MD_CTX *md, const void *p, size_t n)
{
    if (EVP_DigestUpdate(md, p, n) != 1)
        die("SHA-256 failed");
}

/* MRENCLAVE: the SHA-256 of the records ECREATE, EADD and EEXTEND append (SDM Vol. 3D,
 * the leaves' operation sections) */
static void measure_enclave(const struct options *o, uint64_t size, const uint8_t *image,
                            size_t image_len, const struct page_spec *pages, size_t npages,
                            uint8_t mrenclave[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        die("SHA-256 failed");

    uint8_t rec[64] = {0};
    memcpy(rec, "ECREATE", 8);
    put_le32(rec + 8, o->ssaframesize);
    put_le64(rec + 12, size);
    digest_update(md, rec, sizeof(rec));

    uint8_t page[PAGE];
    for (size_t i = 0; i < npages; i++) {
        const struct page_spec *p = &pages[i];
        /* a TCS's SECINFO has R, W and X clear (EADD refuses it otherwise) */
        uint64_t flags = (uint64_t)p->type << 8 | (p->type == PT_TCS ? 0 : p->perms);
        memset(rec, 0, sizeof(rec));
        memcpy(rec, "EADD", 4);
        put_le64(rec + 8, p->offset);
        put_le64(rec + 16, flags); /* SECINFO's first 48 bytes: FLAGS, then zeros */
        digest_update(md, rec, sizeof(rec));
        if (!p->measure)
            continue;

        memset(page, 0, sizeof(page));
        if (p->offset < image_len) {
            size_t avail = image_len - (size_t)p->offset;
            memcpy(page, image + p->offset, avail < PAGE ? avail : PAGE);
        }
        for (unsigned c = 0; c < PAGE; c += CHUNK) {
            memset(rec, 0, sizeof(rec));
            memcpy(rec, "EEXTEND", 8);
            put_le64(rec + 8, p->offset + c);
            digest_update(md, rec, sizeof(rec));
            digest_update(md, page + c, CHUNK);
        }
    }

    unsigned len = 0;
    if (EVP_DigestFinal_ex(md, mrenclave, &len) != 1 || len != 32)
        die("SHA-256 failed");
    EVP_MD_CTX_free(md);
}

/* ---- signing ---- */

static BIGNUM *le_number(const uint8_t *p)
{
    BIGNUM *v = BN_lebin2bn(p, RSA_BYTES, NULL);
    if (!v)
        die("out of memory");
    return v;
}

/* Q1 = floor(S^2 / M), Q2 = floor((S^3 - Q1*S*M) / M), which let EINIT check S^3 mod M
 * without a division of its own */
static void put_q1_q2(uint8_t *ss)
{
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *s = le_number(ss + SS_SIGNATURE), *m = le_number(ss + SS_MODULUS);
    BIGNUM *q1 = BN_new(), *q2 = BN_new(), *t = BN_new(), *u = BN_new();
    if (!bn || !q1 || !q2 || !t || !u || !BN_sqr(t, s, bn) || !BN_div(q1, NULL, t, m, bn) ||
        !BN_mul(t, t, s, bn) ||                                /* S^3 */
        !BN_mul(u, q1, s, bn) || !BN_mul(u, u, m, bn) ||       /* Q1*S*M */
        !BN_sub(t, t, u) || !BN_div(q2, NULL, t, m, bn) ||
        BN_bn2lebinpad(q1, ss + SS_Q1, RSA_BYTES) != RSA_BYTES ||
        BN_bn2lebinpad(q2, ss + SS_Q2, RSA_BYTES) != RSA_BYTES)
        die("cannot compute Q1 and Q2");
    BN_free(u);
    BN_free(t);
    BN_free(q2);
    BN_free(q1);
    BN_free(m);
    BN_free(s);
    BN_CTX_free(bn);
}

static void sign(EVP_PKEY *key, uint8_t *ss)
{
    BIGNUM *n = NULL;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        BN_bn2lebinpad(n, ss + SS_MODULUS, RSA_BYTES) != RSA_BYTES)
        die("cannot read the key's modulus");
    BN_free(n);
    put_le32(ss + SS_EXPONENT, 3);

    uint8_t signed_data[SS_HEADER_LEN + SS_BODY_LEN];
    memcpy(signed_data, ss + SS_HEADER, SS_HEADER_LEN);
    memcpy(signed_data + SS_HEADER_LEN, ss + SS_BODY, SS_BODY_LEN);

    /* RSASSA-PKCS1-v1_5 (OpenSSL's default padding for RSA) with SHA-256 */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t sig_be[RSA_BYTES];
    size_t siglen = sizeof(sig_be);
    if (!md || EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) != 1 ||
        EVP_DigestSign(md, sig_be, &siglen, signed_data, sizeof(signed_data)) != 1 ||
        siglen != RSA_BYTES)
        die("cannot sign");
    EVP_MD_CTX_free(md);
    for (unsigned i = 0; i < RSA_BYTES; i++)
        ss[SS_SIGNATURE + i] = sig_be[RSA_BYTES - 1 - i];
    put_q1_q2(ss);
}

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        die("%s: %s", path, strerror(errno));
    if (fwrite(p, 1, n, f) != n || fclose(f)) {
        unlink(path);
        die("%s: write error", path);
    }
}

int main(int argc, char **argv)
{
    struct options o;
    parse_args(argc, argv, &o);

    size_t image_len, npages;
    uint8_t *image = read_file(o.image_path, &image_len);
    struct page_spec *pages = read_layout(o.layout_path, &npages);

    uint64_t end = image_len;
    for (size_t i = 0; i < npages; i++)
        if (pages[i].offset + PAGE > end)
            end = pages[i].offset + PAGE;
    uint64_t size = o.size;
    if (!size) {
        if (end > (UINT64_C(1) << 63))
            die("the enclave would be larger than 2^63 bytes");
        for (size = PAGE; size < end; size <<= 1)
            ;
    } else if (end > size) {
        die("the image or a page of the layout ends at 0x%" PRIx64 ", past the enclave's "
            "size 0x%" PRIx64, end, size);
    }

    uint8_t ss[SIGSTRUCT_BYTES] = {0};
    memcpy(ss + SS_HEADER, sigstruct_header, sizeof(sigstruct_header));
    put_le32(ss + SS_VENDOR, o.vendor);
    put_le32(ss + SS_DATE, o.date_bcd ? o.date_bcd : today_bcd());
    memcpy(ss + SS_HEADER2, sigstruct_header2, sizeof(sigstruct_header2));
    put_le32(ss + SS_MISCSELECT, o.miscselect);
    put_le32(ss + SS_MISCMASK, o.miscmask);
    put_le64(ss + SS_ATTRIBUTES, o.attributes);
    put_le64(ss + SS_ATTRIBUTES + 8, o.xfrm);
    put_le64(ss + SS_ATTRIBUTEMASK, o.attributemask);
    put_le64(ss + SS_ATTRIBUTEMASK + 8, o.xfrmmask);
    measure_enclave(&o, size, image, image_len, pages, npages, ss + SS_ENCLAVEHASH);
    put_le16(ss + SS_ISVPRODID, o.isvprodid);
    put_le16(ss + SS_ISVSVN, o.isvsvn);

    EVP_PKEY *key = load_key(o.key_path);
    sign(key, ss);
    EVP_PKEY_free(key);
    write_file(o.out_path, ss, sizeof(ss));

    if (o.print_mrenclave)
        print_hex(ss + SS_ENCLAVEHASH, 32);
    if (o.print_mrsigner) {
        uint8_t mrsigner[32];
        if (EVP_Digest(ss + SS_MODULUS, RSA_BYTES, mrsigner, NULL, EVP_sha256(), NULL) != 1)
            die("SHA-256 failed");
        print_hex(mrsigner, 32);
    }
    free(pages);
    free(image);
    return 0;
}

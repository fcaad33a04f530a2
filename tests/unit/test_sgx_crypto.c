/* SGX's cryptography (cpu/sgx/crypto.h) against answers computed elsewhere: MRENCLAVE
 * against SHA-256 of the measurement records built here byte by byte (and a digest
 * computed with Python's hashlib when the test was written); the SIGSTRUCT check
 * against SIGSTRUCTs signed here with a fresh RSA-3072 e=3 key, whose Q1 and Q2 are
 * computed here with the SDM's own formula, and against each single corruption of them;
 * CMAC against RFC 4493; AES-GCM against Python's cryptography package and its own tag
 * checks. Then the host tool tests/sgx/sgx_sign: a SIGSTRUCT it writes passes the check
 * and carries the MRENCLAVE the engine computes for the same pages. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "cpu/sgx/crypto.h"

static void from_hex(const char *hex, u8 *out, size_t n)
{
    cr_assert_eq(strlen(hex), 2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (u8)v;
    }
}

static void expect_hex(const u8 *got, const char *hex, size_t n, const char *what)
{
    u8 want[64];
    from_hex(hex, want, n);
    cr_expect_arr_eq(got, want, n, "%s", what);
}

static void put_le32(u8 *p, u32 v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (u8)(v >> (8 * i));
}

static void put_le64(u8 *p, u64 v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (u8)(v >> (8 * i));
}

static void evp_sha256(const void *p, size_t n, u8 out[32])
{
    cr_assert_eq(EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL), 1);
}

/* ---- MRENCLAVE ---- */

/* The records as the SDM lists them, appended to buf; returns the new length. */
static size_t ecreate_record(u8 *buf, size_t at, u32 ssaframesize, u64 size)
{
    memset(buf + at, 0, 64);
    memcpy(buf + at, "ECREATE\0", 8);
    put_le32(buf + at + 8, ssaframesize);
    put_le64(buf + at + 12, size);
    return at + 64;
}

static size_t eadd_record(u8 *buf, size_t at, u64 offset, const u8 secinfo48[48])
{
    memcpy(buf + at, "EADD\0\0\0\0", 8);
    put_le64(buf + at + 8, offset);
    memcpy(buf + at + 16, secinfo48, 48);
    return at + 64;
}

static size_t eextend_record(u8 *buf, size_t at, u64 offset, const u8 data[256])
{
    memset(buf + at, 0, 64);
    memcpy(buf + at, "EEXTEND\0", 8);
    put_le64(buf + at + 8, offset);
    memcpy(buf + at + 64, data, 256);
    return at + 64 + 256;
}

Test(sgx_crypto, measure_matches_sha256_of_the_records)
{
    u8 secinfo[48] = {0x05, 0x02}; /* R|X, PT_REG */
    u8 data[256];
    for (int i = 0; i < 256; i++)
        data[i] = (u8)(i * 7 + 3);

    struct sgx_measure m;
    sgx_measure_init(&m);
    sgx_measure_ecreate(&m, 2, 0x10000);
    sgx_measure_eadd(&m, 0x1000, secinfo);
    sgx_measure_eextend(&m, 0x1100, data);
    cr_expect_eq(m.blocks, 7);
    u8 digest[32], want[32];
    sgx_measure_final(&m, digest);

    u8 records[448];
    size_t n = ecreate_record(records, 0, 2, 0x10000);
    n = eadd_record(records, n, 0x1000, secinfo);
    n = eextend_record(records, n, 0x1100, data);
    cr_assert_eq(n, sizeof(records));
    evp_sha256(records, n, want);
    cr_expect_arr_eq(digest, want, 32);
    /* the same records hashed by Python's hashlib */
    expect_hex(digest, "4517fdbccecf6840481ce2512d84626671fa38947ae74e5ca948ab5aaf0081d9", 32,
               "hashlib's digest of the three records");
}

Test(sgx_crypto, measure_of_nothing_is_sha256_of_nothing)
{
    struct sgx_measure m;
    u8 digest[32];
    sgx_measure_init(&m);
    sgx_measure_final(&m, digest);
    expect_hex(digest, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 32,
               "SHA-256 of the empty string");
}

/* final leaves the running state alone: EINIT reads MRENCLAVE once, but a saved SECS
 * and the tests may read it at any point */
Test(sgx_crypto, measure_final_does_not_disturb_the_state)
{
    static u8 blocks[300 * 64];
    for (size_t i = 0; i < sizeof(blocks); i++)
        blocks[i] = (u8)(i * 31 + (i >> 8));
    struct sgx_measure m;
    sgx_measure_init(&m);
    for (size_t b = 0; b < 300; b++) {
        sgx_measure_update(&m, blocks + 64 * b);
        if (b % 37 == 0 || b == 299) {
            struct sgx_measure copy = m;
            u8 d1[32], d2[32], want[32];
            sgx_measure_final(&m, d1);
            sgx_measure_final(&m, d2);
            cr_assert_arr_eq(&m, &copy, sizeof(m));
            cr_assert_arr_eq(d1, d2, 32);
            evp_sha256(blocks, 64 * (b + 1), want);
            cr_assert_arr_eq(d1, want, 32, "after %zu blocks", b + 1);
        }
    }
}

Test(sgx_crypto, sha256_known_answer)
{
    u8 d[32];
    sgx_sha256("abc", 3, d);
    expect_hex(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 32,
               "FIPS 180-2");
    sgx_sha256(NULL, 0, d);
    expect_hex(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 32, "empty");
}

/* ---- SIGSTRUCT ---- */

static EVP_PKEY *rsa3072_key(unsigned exponent)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM *e = BN_new();
    EVP_PKEY *key = NULL;
    cr_assert(ctx && e && BN_set_word(e, exponent));
    cr_assert_eq(EVP_PKEY_keygen_init(ctx), 1);
    cr_assert_eq(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 3072), 1);
    cr_assert_eq(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e), 1);
    cr_assert_eq(EVP_PKEY_generate(ctx, &key), 1);
    BN_free(e);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

static BIGNUM *le_field(const u8 *ss, unsigned off)
{
    BIGNUM *v = BN_lebin2bn(ss + off, 384, NULL);
    cr_assert(v);
    return v;
}

/* Q1 and Q2 as the SDM writes them: Q1 = floor(S^2 / M), Q2 = floor((S^3 - Q1*S*M) / M) */
static void set_q1_q2(u8 *ss)
{
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *s = le_field(ss, 516), *m = le_field(ss, 128);
    BIGNUM *s2 = BN_new(), *s3 = BN_new(), *q1 = BN_new(), *q1sm = BN_new(), *q2 = BN_new();
    cr_assert(bn && s2 && s3 && q1 && q1sm && q2);
    cr_assert(BN_mul(s2, s, s, bn) && BN_div(q1, NULL, s2, m, bn));
    cr_assert(BN_mul(s3, s2, s, bn));
    cr_assert(BN_mul(q1sm, q1, s, bn) && BN_mul(q1sm, q1sm, m, bn));
    cr_assert(BN_sub(s3, s3, q1sm) && BN_div(q2, NULL, s3, m, bn));
    /* with S >= M (hostile input) they may not fit: the fields keep what they held */
    if (BN_num_bytes(q1) <= 384 && BN_num_bytes(q2) <= 384) {
        cr_assert_eq(BN_bn2lebinpad(q1, ss + 1040, 384), 384);
        cr_assert_eq(BN_bn2lebinpad(q2, ss + 1424, 384), 384);
    }
    BN_free(q2);
    BN_free(q1sm);
    BN_free(q1);
    BN_free(s3);
    BN_free(s2);
    BN_free(m);
    BN_free(s);
    BN_CTX_free(bn);
}

/* A SIGSTRUCT with plausible contents, signed by key (exponent field e) */
static void signed_sigstruct(u8 ss[SGX_SIGSTRUCT_SIZE], EVP_PKEY *key, u32 e)
{
    static const u8 header[16] = {6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    static const u8 header2[16] = {1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0};
    memset(ss, 0, SGX_SIGSTRUCT_SIZE);
    memcpy(ss, header, 16);
    put_le32(ss + 20, 0x20240131);
    memcpy(ss + 24, header2, 16);
    put_le64(ss + 928, 0x4);  /* MODE64BIT */
    put_le64(ss + 936, 0x3);  /* XFRM */
    put_le64(ss + 944, ~0ull);
    for (int i = 0; i < 32; i++)
        ss[960 + i] = (u8)(0xa0 + i); /* ENCLAVEHASH */
    ss[1024] = 0x34;
    ss[1025] = 0x12;
    ss[1026] = 7;

    BIGNUM *n = NULL;
    cr_assert_eq(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    cr_assert_eq(BN_bn2lebinpad(n, ss + 128, 384), 384);
    BN_free(n);
    put_le32(ss + 512, e);

    u8 msg[256], sig_be[384];
    memcpy(msg, ss, 128);
    memcpy(msg + 128, ss + 900, 128);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t siglen = sizeof(sig_be);
    cr_assert(md);
    cr_assert_eq(EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL), 1);
    cr_assert_eq(EVP_DigestSign(md, sig_be, &siglen, msg, sizeof(msg)), 1);
    cr_assert_eq(siglen, 384);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 384; i++)
        ss[516 + i] = sig_be[383 - i];
    set_q1_q2(ss);
}

static u8 good[SGX_SIGSTRUCT_SIZE], bad[SGX_SIGSTRUCT_SIZE];

static void sign_with_fresh_key(void)
{
    EVP_PKEY *key = rsa3072_key(3);
    signed_sigstruct(good, key, 3);
    EVP_PKEY_free(key);
    cr_assert_eq(sgx_sigstruct_verify(good), 0, "a correctly signed SIGSTRUCT is refused");
}

static void flip(u8 *ss, unsigned byte, unsigned bit)
{
    memcpy(ss, good, SGX_SIGSTRUCT_SIZE);
    ss[byte] ^= (u8)(1u << bit);
}

Test(sgx_crypto, sigstruct_accepts_a_good_signature, .init = sign_with_fresh_key)
{
    /* the signature covers neither the key nor Q1/Q2, nor bytes [1028, 1040) */
    memcpy(bad, good, sizeof(bad));
    cr_expect_eq(sgx_sigstruct_verify(bad), 0);
}

Test(sgx_crypto, sigstruct_refuses_a_changed_header, .init = sign_with_fresh_key)
{
    static const unsigned bytes[] = {0, 4, 12, 16, 20, 23, 24, 40, 44, 100, 127};
    for (size_t i = 0; i < ARRAY_SIZE(bytes); i++)
        for (unsigned bit = 0; bit < 8; bit += 7) {
            flip(bad, bytes[i], bit);
            cr_expect_eq(sgx_sigstruct_verify(bad), -1, "header byte %u bit %u", bytes[i], bit);
        }
}

Test(sgx_crypto, sigstruct_refuses_a_changed_body, .init = sign_with_fresh_key)
{
    static const unsigned bytes[] = {900,  904, 912,  928,  936,  944, 952,
                                     960,  991, 1008, 1024, 1026, 1027};
    for (size_t i = 0; i < ARRAY_SIZE(bytes); i++)
        for (unsigned bit = 0; bit < 8; bit += 3) {
            flip(bad, bytes[i], bit);
            cr_expect_eq(sgx_sigstruct_verify(bad), -1, "body byte %u bit %u", bytes[i], bit);
        }
}

/* Q1 and Q2 follow the changed signature (or modulus), so that only the RSA check can
 * find the change */
Test(sgx_crypto, sigstruct_refuses_a_changed_signature, .init = sign_with_fresh_key)
{
    static const unsigned bytes[] = {516, 517, 700, 898, 899};
    for (size_t i = 0; i < ARRAY_SIZE(bytes); i++) {
        flip(bad, bytes[i], 1);
        set_q1_q2(bad);
        cr_expect_eq(sgx_sigstruct_verify(bad), -1, "signature byte %u", bytes[i]);
    }
}

Test(sgx_crypto, sigstruct_refuses_another_modulus, .init = sign_with_fresh_key)
{
    static const unsigned bytes[] = {128, 300, 510};
    for (size_t i = 0; i < ARRAY_SIZE(bytes); i++) {
        flip(bad, bytes[i], 1); /* bit 1: the modulus stays odd */
        set_q1_q2(bad);
        cr_expect_eq(sgx_sigstruct_verify(bad), -1, "modulus byte %u", bytes[i]);
    }
}

Test(sgx_crypto, sigstruct_refuses_a_wrong_q1, .init = sign_with_fresh_key)
{
    static const unsigned bytes[] = {1040, 1041, 1200, 1423};
    for (size_t i = 0; i < ARRAY_SIZE(bytes); i++)
        for (unsigned bit = 0; bit < 8; bit += 7) {
            flip(bad, bytes[i], bit);
            cr_expect_eq(sgx_sigstruct_verify(bad), -1, "Q1 byte %u bit %u", bytes[i], bit);
        }
}

Test(sgx_crypto, sigstruct_refuses_a_wrong_q2, .init = sign_with_fresh_key)
{
    static const unsigned bytes[] = {1424, 1425, 1600, 1807};
    for (size_t i = 0; i < ARRAY_SIZE(bytes); i++)
        for (unsigned bit = 0; bit < 8; bit += 7) {
            flip(bad, bytes[i], bit);
            cr_expect_eq(sgx_sigstruct_verify(bad), -1, "Q2 byte %u bit %u", bytes[i], bit);
        }
}

Test(sgx_crypto, sigstruct_refuses_an_exponent_other_than_3, .init = sign_with_fresh_key)
{
    static const u32 exponents[] = {0, 1, 2, 5, 65537, 0x03000000, 0x103, 0xffffffff};
    for (size_t i = 0; i < ARRAY_SIZE(exponents); i++) {
        memcpy(bad, good, sizeof(bad));
        put_le32(bad + 512, exponents[i]);
        cr_expect_eq(sgx_sigstruct_verify(bad), -1, "exponent %u", exponents[i]);
    }
}

/* a key with e = 65537 signs correctly, but SGX keys have e = 3 */
Test(sgx_crypto, sigstruct_refuses_a_65537_key)
{
    EVP_PKEY *key = rsa3072_key(65537);
    signed_sigstruct(bad, key, 65537);
    EVP_PKEY_free(key);
    cr_expect_eq(sgx_sigstruct_verify(bad), -1);
    put_le32(bad + 512, 3);
    cr_expect_eq(sgx_sigstruct_verify(bad), -1, "with the exponent field claiming 3");
}

/* hostile SIGSTRUCTs: a refusal, not a crash (the sanitizer build watches the reads) */
Test(sgx_crypto, sigstruct_refuses_malformed_input, .init = sign_with_fresh_key)
{
    memset(bad, 0, sizeof(bad));
    put_le32(bad + 512, 3);
    cr_expect_eq(sgx_sigstruct_verify(bad), -1, "all zeros");

    memset(bad, 0xff, sizeof(bad));
    put_le32(bad + 512, 3);
    cr_expect_eq(sgx_sigstruct_verify(bad), -1, "all ones");
    set_q1_q2(bad);
    cr_expect_eq(sgx_sigstruct_verify(bad), -1, "all ones, Q1/Q2 consistent (S = M)");

    flip(bad, 128, 0); /* an even modulus */
    set_q1_q2(bad);
    cr_expect_eq(sgx_sigstruct_verify(bad), -1, "even modulus");

    memcpy(bad, good, sizeof(bad));
    bad[128 + 383] = 0; /* a shorter modulus */
    set_q1_q2(bad);
    cr_expect_eq(sgx_sigstruct_verify(bad), -1, "modulus below 2^3064");

    memcpy(bad, good, sizeof(bad));
    memcpy(bad + 516, bad + 128, 384); /* S = M */
    set_q1_q2(bad);
    cr_expect_eq(sgx_sigstruct_verify(bad), -1, "signature equal to the modulus");

    memcpy(bad, good, sizeof(bad));
    memset(bad + 516, 0, 384); /* S = 0 */
    memset(bad + 1040, 0, 768);
    cr_expect_eq(sgx_sigstruct_verify(bad), -1, "zero signature");

    memcpy(bad, good, sizeof(bad));
    memset(bad + 516, 0, 384); /* S = 1: S^3 mod M = 1 */
    bad[516] = 1;
    set_q1_q2(bad);
    cr_expect_eq(sgx_sigstruct_verify(bad), -1, "signature 1");

    /* random corruption anywhere */
    unsigned seed = 12345;
    for (int i = 0; i < 200; i++) {
        memcpy(bad, good, sizeof(bad));
        for (int k = 0; k < 1 + i % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            unsigned at = (seed >> 8) % SGX_SIGSTRUCT_SIZE;
            /* bytes outside the checked ones do not count */
            if (at >= 1028 && at < 1040)
                at = 1024;
            bad[at] ^= (u8)(1 + (seed >> 24) % 255);
        }
        cr_expect_eq(sgx_sigstruct_verify(bad), -1, "random corruption %d", i);
    }
    cr_expect_eq(sgx_sigstruct_verify(good), 0);
}

/* ---- AES-128-CMAC (RFC 4493, section 4) ---- */

Test(sgx_crypto, cmac_rfc4493)
{
    u8 key[16], msg[64], mac[16];
    from_hex("2b7e151628aed2a6abf7158809cf4f3c", key, 16);
    from_hex("6bc1bee22e409f96e93d7e117393172a"
             "ae2d8a571e03ac9c9eb76fac45af8e51"
             "30c81c46a35ce411e5fbc1191a0a52ef"
             "f69f2445df4f9b17ad2b417be66c3710",
             msg, 64);
    static const struct {
        size_t len;
        const char *mac;
    } examples[] = {
        {0, "bb1d6929e95937287fa37d129b756746"},
        {16, "070a16b46b4d4144f79bdd9dd04a287c"},
        {40, "dfa66747de9ae63030ca32611497c827"},
        {64, "51f0bebf7e3b9d92fc49741779363cfe"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(examples); i++) {
        sgx_cmac(key, msg, examples[i].len, mac);
        expect_hex(mac, examples[i].mac, 16, "RFC 4493 example");
    }
    sgx_cmac(key, NULL, 0, mac);
    expect_hex(mac, "bb1d6929e95937287fa37d129b756746", 16, "no data, NULL pointer");
}

/* ---- AES-128-GCM ---- */

static u8 gcm_key[16], gcm_iv[12], page[4096], sealed[4096], opened[4096];
static const char gcm_aad[] = "PCMD-and-VA-slot"; /* 16 bytes, no terminator used */

static void gcm_setup(void)
{
    for (int i = 0; i < 16; i++)
        gcm_key[i] = (u8)i;
    for (int i = 0; i < 12; i++)
        gcm_iv[i] = (u8)(100 + i);
    for (int i = 0; i < 4096; i++)
        page[i] = (u8)(i * 13 + 1);
}

Test(sgx_crypto, gcm_known_answer, .init = gcm_setup)
{
    u8 tag[16];
    sgx_page_encrypt(gcm_key, gcm_iv, gcm_aad, 16, page, sealed, tag);
    /* Python's cryptography (AESGCM) on the same key, IV, AAD and page */
    expect_hex(sealed, "1b6c558dee40f7a6f248d4801b609c28", 16, "first ciphertext block");
    expect_hex(sealed + 4080, "823077b264e190b93d41bb1bd8158e30", 16, "last ciphertext block");
    expect_hex(tag, "b577abb54340d734832939f6eac1a3be", 16, "tag");
}

Test(sgx_crypto, gcm_round_trip, .init = gcm_setup)
{
    u8 tag[16];
    sgx_page_encrypt(gcm_key, gcm_iv, gcm_aad, 16, page, sealed, tag);
    cr_expect(memcmp(sealed, page, 4096) != 0);
    cr_assert_eq(sgx_page_decrypt(gcm_key, gcm_iv, gcm_aad, 16, sealed, opened, tag), 0);
    cr_expect_arr_eq(opened, page, 4096);

    /* in place, and without additional data */
    memcpy(opened, page, 4096);
    sgx_page_encrypt(gcm_key, gcm_iv, NULL, 0, opened, opened, tag);
    cr_assert_eq(sgx_page_decrypt(gcm_key, gcm_iv, NULL, 0, opened, opened, tag), 0);
    cr_expect_arr_eq(opened, page, 4096);
}

Test(sgx_crypto, gcm_refuses_any_change, .init = gcm_setup)
{
    u8 tag[16], t2[16], key2[16], iv2[12], aad2[16];
    sgx_page_encrypt(gcm_key, gcm_iv, gcm_aad, 16, page, sealed, tag);
    memset(opened, 0x5a, sizeof(opened));
    u8 untouched[4096];
    memcpy(untouched, opened, sizeof(untouched));

    memcpy(t2, tag, 16);
    t2[15] ^= 0x80;
    cr_expect_eq(sgx_page_decrypt(gcm_key, gcm_iv, gcm_aad, 16, sealed, opened, t2), -1, "tag");

    sealed[2000] ^= 1;
    cr_expect_eq(sgx_page_decrypt(gcm_key, gcm_iv, gcm_aad, 16, sealed, opened, tag), -1,
                 "ciphertext");
    sealed[2000] ^= 1;

    memcpy(aad2, gcm_aad, 16);
    aad2[3] ^= 4;
    cr_expect_eq(sgx_page_decrypt(gcm_key, gcm_iv, aad2, 16, sealed, opened, tag), -1,
                 "additional data");
    cr_expect_eq(sgx_page_decrypt(gcm_key, gcm_iv, gcm_aad, 15, sealed, opened, tag), -1,
                 "AAD length");

    memcpy(iv2, gcm_iv, 12);
    iv2[11] ^= 1;
    cr_expect_eq(sgx_page_decrypt(gcm_key, iv2, gcm_aad, 16, sealed, opened, tag), -1, "IV");

    memcpy(key2, gcm_key, 16);
    key2[0] ^= 1;
    cr_expect_eq(sgx_page_decrypt(key2, gcm_iv, gcm_aad, 16, sealed, opened, tag), -1, "key");

    cr_expect_arr_eq(opened, untouched, 4096, "a refused page is not written");
    cr_expect_eq(sgx_page_decrypt(gcm_key, gcm_iv, gcm_aad, 16, sealed, opened, tag), 0);
}

/* ---- the host tool tests/sgx/sgx_sign ---- */

static char tmpdir[] = "/tmp/nestor-sgx-sign-XXXXXX";
static char tool[4096];

static void tool_setup(void)
{
    char exe[sizeof(tool) - 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    cr_assert(n > 0);
    exe[n] = 0;
    *strrchr(exe, '/') = 0; /* .../tests/unit */
    snprintf(tool, sizeof(tool), "%s/../sgx/sgx_sign", exe);
    cr_assert_eq(access(tool, X_OK), 0, "%s is not built (make test-programs)", tool);
    cr_assert(mkdtemp(tmpdir));
}

static void tool_teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
}

static void write_file(const char *name, const void *p, size_t n)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static void read_sigstruct(const char *name, u8 ss[SGX_SIGSTRUCT_SIZE])
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fread(ss, 1, SGX_SIGSTRUCT_SIZE, f), SGX_SIGSTRUCT_SIZE);
    cr_assert_eq(fgetc(f), EOF, "a SIGSTRUCT is 1808 bytes");
    fclose(f);
}

/* Runs the tool in tmpdir with args; its stdout goes to out (if not NULL). Returns its
 * exit status. */
static int run_tool(const char *args, char *out, size_t outlen)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' %s 2>stderr.txt", tmpdir, tool, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out ? out : cmd, 1, out ? outlen - 1 : sizeof(cmd) - 1, p);
    if (out)
        out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void hex(const u8 *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static u8 image[2 * 4096 + 100]; /* page 0x2000 is partly beyond its end */

/* the layout below, measured by the engine's functions: a TCS (its SECINFO without R/W/X),
 * code, data, an unmeasured page, and a measured page beyond the image (zeros) */
static void engine_mrenclave(u32 ssaframesize, u64 size, u8 digest[32])
{
    static const struct {
        u64 offset, flags;
        bool measure;
    } pages[] = {
        {0x0000, 0x100, true},  {0x1000, 0x205, true}, {0x2000, 0x203, true},
        {0x3000, 0x203, false}, {0x4000, 0x201, true},
    };
    struct sgx_measure m;
    sgx_measure_init(&m);
    sgx_measure_ecreate(&m, ssaframesize, size);
    for (size_t i = 0; i < ARRAY_SIZE(pages); i++) {
        u8 secinfo[48] = {0};
        put_le64(secinfo, pages[i].flags);
        sgx_measure_eadd(&m, pages[i].offset, secinfo);
        if (!pages[i].measure)
            continue;
        /* the image's bytes at the page's offset, zeros past its end */
        u8 data[4096] = {0};
        if (pages[i].offset < sizeof(image)) {
            size_t have = sizeof(image) - pages[i].offset;
            memcpy(data, image + pages[i].offset, have < 4096 ? have : 4096);
        }
        for (unsigned c = 0; c < 4096; c += 256)
            sgx_measure_eextend(&m, pages[i].offset + c, data + c);
    }
    sgx_measure_final(&m, digest);
}

static const char layout[] = "# a small enclave\n"
                             "0x0000 tcs - 1\n"
                             "0x1000 reg rx 1\n"
                             "  0x2000\treg rw 1\n"
                             "\n"
                             "0x3000 reg wr 0\n"
                             "16384 reg r 1\n";

Test(sgx_crypto, sign_tool_output_passes_the_engine_checks, .init = tool_setup,
     .fini = tool_teardown)
{
    for (size_t i = 0; i < sizeof(image); i++)
        image[i] = (u8)(i * 5 + (i >> 12) + 1);
    write_file("img.bin", image, sizeof(image));
    write_file("layout.txt", layout, strlen(layout));

    /* no key yet: the tool makes one */
    char out[512];
    cr_assert_eq(run_tool("-key k.pem -image img.bin -layout layout.txt -out ss.bin "
                          "-isvprodid 0x1234 -isvsvn 7 -vendor 0x8086 -date 20240131 "
                          "-attributes 6 -attributemask fffffffffffffffb -xfrm 7 -xfrmmask 3 "
                          "-miscselect 1 -miscmask ffffffff -print-mrenclave -print-mrsigner",
                          out, sizeof(out)),
                 0);
    u8 ss[SGX_SIGSTRUCT_SIZE];
    read_sigstruct("ss.bin", ss);
    cr_expect_eq(sgx_sigstruct_verify(ss), 0, "the tool's SIGSTRUCT passes EINIT's check");

    /* pages up to 0x5000: the enclave is 32 KiB */
    u8 mrenclave[32], mrsigner[32];
    engine_mrenclave(1, 0x8000, mrenclave);
    cr_expect_arr_eq(ss + 960, mrenclave, 32, "ENCLAVEHASH is the engine's MRENCLAVE");
    sgx_sha256(ss + 128, 384, mrsigner);
    char want[160];
    hex(mrenclave, 32, want);
    want[64] = '\n';
    hex(mrsigner, 32, want + 65);
    strcpy(want + 129, "\n");
    cr_expect_str_eq(out, want, "-print-mrenclave -print-mrsigner");

    static const u8 header[16] = {6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    static const u8 header2[16] = {1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0};
    static const u8 fields[] = {
        0x86, 0x80, 0, 0, 0x31, 0x01, 0x24, 0x20, /* VENDOR, DATE (BCD) */
    };
    static const u8 body[] = {
        1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, /* MISCSELECT, MISCMASK */
    };
    static const u8 attributes[32] = {
        6, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0,
        0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0, 0, 0, 0, 0,
    };
    cr_expect_arr_eq(ss, header, 16);
    cr_expect_arr_eq(ss + 16, fields, 8);
    cr_expect_arr_eq(ss + 24, header2, 16);
    cr_expect_eq(ss[512] | ss[513] << 8 | ss[514] << 16 | ss[515] << 24, 3);
    cr_expect_arr_eq(ss + 900, body, 8);
    cr_expect_arr_eq(ss + 928, attributes, 32);
    cr_expect_eq(ss[1024] | ss[1025] << 8, 0x1234);
    cr_expect_eq(ss[1026] | ss[1027] << 8, 7);

    /* the second run reuses the key; -size and -ssaframesize enter ECREATE's record */
    cr_assert_eq(run_tool("-key k.pem -image img.bin -layout layout.txt -out ss2.bin "
                          "-size 0x100000 -ssaframesize 2 -print-mrsigner",
                          out, sizeof(out)),
                 0);
    u8 ss2[SGX_SIGSTRUCT_SIZE];
    read_sigstruct("ss2.bin", ss2);
    cr_expect_eq(sgx_sigstruct_verify(ss2), 0);
    cr_expect_arr_eq(ss2 + 128, ss + 128, 384, "the same key");
    cr_expect_str_eq(out, want + 65);
    engine_mrenclave(2, 0x100000, mrenclave);
    cr_expect_arr_eq(ss2 + 960, mrenclave, 32);
}

/* the tool's exit status signing img.bin as laid out in layout.txt with key, more options */
static int sign_with(const char *key, const char *options)
{
    char args[512];
    snprintf(args, sizeof(args), "-key %s -image img.bin -layout layout.txt -out ss.bin %s", key,
             options);
    return run_tool(args, NULL, 0);
}

Test(sgx_crypto, sign_tool_refuses_bad_input, .init = tool_setup, .fini = tool_teardown)
{
    write_file("img.bin", "\x90\xc3", 2);
    static const char *layouts[] = {
        "0x0000 tcs - 1\n0x1000 reg rx 1\n0x0000 reg r 0\n", /* a page twice */
        "0x0800 reg r 1\n",                                 /* not page-aligned */
        "0x0000 ssa r 1\n",                                 /* no such type */
        "0x0000 reg rwxr 1\n",                              /* permission twice */
        "0x0000 reg rq 1\n",                                /* no such permission */
        "0x0000 reg r 2\n",                                 /* MEASURE is 0 or 1 */
        "0x0000 reg r\n",                                   /* a field missing */
        "# nothing\n",                                      /* no pages */
    };
    for (size_t i = 0; i < ARRAY_SIZE(layouts); i++) {
        write_file("layout.txt", layouts[i], strlen(layouts[i]));
        cr_expect_neq(sign_with("k.pem", ""), 0, "layout %zu", i);
    }
    static const char good_layout[] = "0x0000 tcs - 1\n0x1000 reg rx 1\n";
    write_file("layout.txt", good_layout, strlen(good_layout));
    cr_expect_neq(sign_with("k.pem", "-size 0x1000"), 0, "a page beyond -size");
    cr_expect_neq(sign_with("k.pem", "-size 0x3000"), 0, "-size not a power of 2");
    cr_expect_neq(sign_with("k.pem", "-vendor 1"), 0, "-vendor other than 0 and 0x8086");
    cr_expect_neq(sign_with("k.pem", "-date 20241301"), 0, "-date with month 13");
    cr_expect_neq(sign_with("k.pem", "-isvsvn 65536"), 0, "-isvsvn beyond 16 bits");
    cr_expect_neq(sign_with("k.pem", "-attributes -1"), 0, "a negative number");
    cr_expect_neq(run_tool("-key k.pem -image img.bin -layout layout.txt", NULL, 0), 0, "no -out");

    /* an RSA key SGX cannot use */
    EVP_PKEY *key = rsa3072_key(65537);
    char path[256];
    snprintf(path, sizeof(path), "%s/e65537.pem", tmpdir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    cr_assert_eq(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(key);
    cr_expect_neq(sign_with("e65537.pem", ""), 0, "a key with exponent 65537");
    cr_expect_eq(sign_with("k.pem", ""), 0, "and the good case still works");
}

/* SGX's cryptography on top of OpenSSL 3's libcrypto (see crypto.h). */

/* MRENCLAVE is a SHA-256 that runs from ECREATE to EINIT across many instructions, and
 * its intermediate state is part of the SECS page: it must be plain data that a save file
 * can hold and a restore can resume. EVP digest contexts are opaque and cannot be
 * exported, so the measurement uses the low-level SHA256_CTX and SHA256_Transform (the
 * block function on a state we own), deprecated in OpenSSL 3 but with no replacement. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "cpu/sgx/crypto.h"

#include <limits.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

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

static u32 get_le32(const u8 *p)
{
    return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

/* ---- MRENCLAVE ---- */

void sgx_measure_init(struct sgx_measure *m)
{
    SHA256_CTX ctx;
    /* SHA256_Init only sets fields: it cannot fail */
    SHA256_Init(&ctx);
    _Static_assert(sizeof(ctx.h) == sizeof(m->h), "SHA-256 state is eight 32-bit words");
    memcpy(m->h, ctx.h, sizeof(m->h));
    m->blocks = 0;
    OPENSSL_cleanse(&ctx, sizeof(ctx));
}

/* One application of SHA-256's compression function to the state words h. */
static void sha256_compress(u32 h[8], const u8 block[64])
{
    SHA256_CTX ctx;
    memset(&ctx, 0, sizeof(ctx));
    memcpy(ctx.h, h, sizeof(ctx.h));
    SHA256_Transform(&ctx, block);
    memcpy(h, ctx.h, sizeof(ctx.h));
}

void sgx_measure_update(struct sgx_measure *m, const u8 block[64])
{
    sha256_compress(m->h, block);
    m->blocks++;
}

void sgx_measure_final(const struct sgx_measure *m, u8 digest[32])
{
    /* The message is always a whole number of blocks, so SHA-256's padding (0x80, zeros,
     * the length in bits big-endian) is exactly one more block. */
    u32 h[8];
    u8 pad[64] = {0x80};
    u64 bits = m->blocks * 512;
    memcpy(h, m->h, sizeof(h));
    for (int i = 0; i < 8; i++)
        pad[56 + i] = (u8)(bits >> (56 - 8 * i));
    sha256_compress(h, pad);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            digest[4 * i + j] = (u8)(h[i] >> (24 - 8 * j));
}

void sgx_measure_ecreate(struct sgx_measure *m, u32 ssaframesize, u64 size)
{
    u8 rec[64] = {0};
    memcpy(rec, "ECREATE", 8);
    put_le32(rec + 8, ssaframesize);
    put_le64(rec + 12, size);
    sgx_measure_update(m, rec);
}

void sgx_measure_eadd(struct sgx_measure *m, u64 offset, const u8 secinfo48[48])
{
    u8 rec[64] = {0};
    memcpy(rec, "EADD", 4);
    put_le64(rec + 8, offset);
    memcpy(rec + 16, secinfo48, 48);
    sgx_measure_update(m, rec);
}

void sgx_measure_eextend(struct sgx_measure *m, u64 offset, const u8 data[256])
{
    u8 rec[64] = {0};
    memcpy(rec, "EEXTEND", 8);
    put_le64(rec + 8, offset);
    sgx_measure_update(m, rec);
    for (int i = 0; i < 4; i++)
        sgx_measure_update(m, data + 64 * i);
}

void sgx_sha256(const void *data, size_t len, u8 out[32])
{
    if (EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL) != 1)
        nestor_panic("sgx: SHA-256 failed in OpenSSL (out of memory?)");
}

/* ---- SIGSTRUCT ---- */

/* The RSA public key (n = modulus, e = 3) as an EVP_PKEY; NULL if OpenSSL refuses it. */
static EVP_PKEY *rsa_public_key(const BIGNUM *n, const BIGNUM *e)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (!bld)
        nestor_panic("sgx: out of memory building an RSA key");
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) != NULL &&
        EVP_PKEY_fromdata_init(ctx) == 1)
        if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
            key = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return key;
}

/* RSASSA-PKCS1-v1_5 with SHA-256: does sig_be (384 bytes, big-endian) sign digest? */
static bool rsa_pkcs1_sha256_ok(const BIGNUM *n, const BIGNUM *e, const u8 sig_be[SGX_RSA_BYTES],
                                const u8 digest[32])
{
    EVP_PKEY *key = rsa_public_key(n, e);
    if (!key)
        return false;
    bool ok = false;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (ctx && EVP_PKEY_verify_init(ctx) == 1 &&
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
        EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1)
        ok = EVP_PKEY_verify(ctx, sig_be, SGX_RSA_BYTES, digest, 32) == 1;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

/* Q1 = floor(S^2 / M) and Q2 = floor((S^3 - Q1*S*M) / M): since S^2 - Q1*M is S^2 mod M,
 * Q2 = floor(S * (S^2 mod M) / M). Both are below M when S < M, so they fit 384 bytes. */
static bool q1_q2_ok(const BIGNUM *s, const BIGNUM *m, const BIGNUM *q1_given,
                     const BIGNUM *q2_given, BN_CTX *bn)
{
    BN_CTX_start(bn);
    BIGNUM *t = BN_CTX_get(bn), *q1 = BN_CTX_get(bn), *r = BN_CTX_get(bn),
           *q2 = BN_CTX_get(bn);
    if (!q2 || !BN_sqr(t, s, bn) || !BN_div(q1, r, t, m, bn) || !BN_mul(t, s, r, bn) ||
        !BN_div(q2, NULL, t, m, bn))
        nestor_panic("sgx: out of memory checking a SIGSTRUCT's Q1/Q2");
    bool ok = BN_cmp(q1, q1_given) == 0 && BN_cmp(q2, q2_given) == 0;
    BN_CTX_end(bn);
    return ok;
}

int sgx_sigstruct_verify(const u8 sig[SGX_SIGSTRUCT_SIZE])
{
    if (get_le32(sig + SGX_SIGSTRUCT_EXPONENT) != 3)
        return -1;
    /* RSA-3072: a modulus with a zero top byte is a shorter key, whose signatures
     * are not 384 bytes */
    if (sig[SGX_SIGSTRUCT_MODULUS + SGX_RSA_BYTES - 1] == 0)
        return -1;

    /* errors OpenSSL queues while refusing hostile input are ours to drop */
    ERR_set_mark();
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *m = BN_lebin2bn(sig + SGX_SIGSTRUCT_MODULUS, SGX_RSA_BYTES, NULL);
    BIGNUM *s = BN_lebin2bn(sig + SGX_SIGSTRUCT_SIGNATURE, SGX_RSA_BYTES, NULL);
    BIGNUM *q1 = BN_lebin2bn(sig + SGX_SIGSTRUCT_Q1, SGX_RSA_BYTES, NULL);
    BIGNUM *q2 = BN_lebin2bn(sig + SGX_SIGSTRUCT_Q2, SGX_RSA_BYTES, NULL);
    BIGNUM *e = BN_new();
    if (!bn || !m || !s || !q1 || !q2 || !e || !BN_set_word(e, 3))
        nestor_panic("sgx: out of memory checking a SIGSTRUCT");

    bool ok = false;
    /* an RSA modulus is odd, and a signature is a residue below it */
    if (BN_is_odd(m) && BN_cmp(s, m) < 0 && q1_q2_ok(s, m, q1, q2, bn)) {
        u8 signed_data[SGX_SIGSTRUCT_HEADER_LEN + SGX_SIGSTRUCT_BODY_LEN], digest[32];
        u8 sig_be[SGX_RSA_BYTES];
        memcpy(signed_data, sig + SGX_SIGSTRUCT_HEADER, SGX_SIGSTRUCT_HEADER_LEN);
        memcpy(signed_data + SGX_SIGSTRUCT_HEADER_LEN, sig + SGX_SIGSTRUCT_BODY,
               SGX_SIGSTRUCT_BODY_LEN);
        sgx_sha256(signed_data, sizeof(signed_data), digest);
        for (int i = 0; i < SGX_RSA_BYTES; i++)
            sig_be[i] = sig[SGX_SIGSTRUCT_SIGNATURE + SGX_RSA_BYTES - 1 - i];
        ok = rsa_pkcs1_sha256_ok(m, e, sig_be, digest);
    }

    BN_free(e);
    BN_free(q2);
    BN_free(q1);
    BN_free(s);
    BN_free(m);
    BN_CTX_free(bn);
    ERR_pop_to_mark();
    return ok ? 0 : -1;
}

/* ---- AES ---- */

void sgx_cmac(const u8 key[16], const void *data, size_t len, u8 mac[16])
{
    size_t maclen = 0;
    static const u8 no_data;
    if (!EVP_Q_mac(NULL, "CMAC", NULL, "AES-128-CBC", NULL, key, 16, len ? data : &no_data,
                   len, mac, 16, &maclen) ||
        maclen != 16)
        nestor_panic("sgx: AES-128-CMAC failed in OpenSSL (out of memory?)");
}

static EVP_CIPHER_CTX *page_cipher(const u8 key[16], const u8 iv[12], const void *aad,
                                   size_t aadlen, bool encrypt)
{
    if (aadlen > INT_MAX)
        nestor_panic("sgx: %zu bytes of additional data for AES-GCM", aadlen);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl;
    /* GCM's default IV length is the 12 bytes EWB uses */
    if (!ctx || EVP_CipherInit_ex2(ctx, EVP_aes_128_gcm(), key, iv, encrypt, NULL) != 1 ||
        (aadlen && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aadlen) != 1))
        nestor_panic("sgx: AES-128-GCM setup failed in OpenSSL (out of memory?)");
    return ctx;
}

void sgx_page_encrypt(const u8 key[16], const u8 iv[12], const void *aad, size_t aadlen,
                      const u8 in[4096], u8 out[4096], u8 tag[16])
{
    EVP_CIPHER_CTX *ctx = page_cipher(key, iv, aad, aadlen, true);
    int outl = 0, finl = 0;
    if (EVP_EncryptUpdate(ctx, out, &outl, in, 4096) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + outl, &finl) != 1 || outl + finl != 4096 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
        nestor_panic("sgx: AES-128-GCM encryption failed in OpenSSL");
    EVP_CIPHER_CTX_free(ctx);
}

int sgx_page_decrypt(const u8 key[16], const u8 iv[12], const void *aad, size_t aadlen,
                     const u8 in[4096], u8 out[4096], const u8 tag[16])
{
    /* the plaintext is released only once the tag is known good */
    u8 plain[4096];
    u8 tag_copy[16];
    memcpy(tag_copy, tag, 16);
    EVP_CIPHER_CTX *ctx = page_cipher(key, iv, aad, aadlen, false);
    int outl = 0, finl = 0;
    if (EVP_DecryptUpdate(ctx, plain, &outl, in, 4096) != 1 || outl != 4096 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag_copy) != 1)
        nestor_panic("sgx: AES-128-GCM decryption failed in OpenSSL");
    /* a tag mismatch is the guest's doing: whatever OpenSSL queues for it is dropped */
    ERR_set_mark();
    bool ok = EVP_DecryptFinal_ex(ctx, plain + outl, &finl) == 1;
    ERR_pop_to_mark();
    EVP_CIPHER_CTX_free(ctx);
    if (ok)
        memcpy(out, plain, sizeof(plain));
    OPENSSL_cleanse(plain, sizeof(plain));
    return ok ? 0 : -1;
}

/* The cryptography of SGX as the engine performs it: MRENCLAVE's running SHA-256 (kept
 * as plain data in the SECS), EINIT's check of a SIGSTRUCT, AES-128-CMAC (EREPORT,
 * EGETKEY, EINITTOKEN) and AES-128-GCM (the pages EWB writes out and ELDB/ELDU read back).
 * Everything here works on byte arrays in the architecture's little-endian layouts; the
 * callers copy the structures out of guest memory first. */
#ifndef NESTOR_CPU_SGX_CRYPTO_H
#define NESTOR_CPU_SGX_CRYPTO_H

#include "common.h"

#define SGX_SIGSTRUCT_SIZE 1808

/* Offsets into a SIGSTRUCT (SDM Vol. 3D, "SIGSTRUCT"; Linux's struct sgx_sigstruct).
 * The signed data is [0, 128) || [900, 1028). */
#define SGX_SIGSTRUCT_HEADER 0
#define SGX_SIGSTRUCT_VENDOR 16
#define SGX_SIGSTRUCT_DATE 20
#define SGX_SIGSTRUCT_HEADER2 24
#define SGX_SIGSTRUCT_SWDEFINED 40
#define SGX_SIGSTRUCT_MODULUS 128
#define SGX_SIGSTRUCT_EXPONENT 512
#define SGX_SIGSTRUCT_SIGNATURE 516
#define SGX_SIGSTRUCT_MISCSELECT 900
#define SGX_SIGSTRUCT_MISCMASK 904
#define SGX_SIGSTRUCT_ISVFAMILYID 912
#define SGX_SIGSTRUCT_ATTRIBUTES 928
#define SGX_SIGSTRUCT_ATTRIBUTEMASK 944
#define SGX_SIGSTRUCT_ENCLAVEHASH 960
#define SGX_SIGSTRUCT_ISVEXTPRODID 1008
#define SGX_SIGSTRUCT_ISVPRODID 1024
#define SGX_SIGSTRUCT_ISVSVN 1026
#define SGX_SIGSTRUCT_Q1 1040
#define SGX_SIGSTRUCT_Q2 1424
#define SGX_SIGSTRUCT_HEADER_LEN 128
#define SGX_SIGSTRUCT_BODY 900
#define SGX_SIGSTRUCT_BODY_LEN 128
#define SGX_RSA_BYTES 384 /* RSA-3072: modulus, signature, Q1, Q2 */

/* MRENCLAVE's running SHA-256 as plain data (it lives in the SECS page and is saved with
 * the machine): the eight state words and the number of 64-byte blocks hashed. */
struct sgx_measure {
    u32 h[8];
    u64 blocks;
};
void sgx_measure_init(struct sgx_measure *m);
/* one 64-byte block */
void sgx_measure_update(struct sgx_measure *m, const u8 block[64]);
/* SHA-256 of the blocks*64 bytes hashed so far; m is unchanged (measuring may go on) */
void sgx_measure_final(const struct sgx_measure *m, u8 digest[32]);

/* The measurement records of the SDM (ENCLS leaves' operation sections):
 * ECREATE: "ECREATE\0" || SSAFRAMESIZE (u32 LE) || SIZE (u64 LE) || 44 zero bytes
 * EADD:    "EADD\0\0\0\0" || offset (u64 LE, page offset from BASEADDR)
 *          || first 48 bytes of SECINFO
 * EEXTEND: "EEXTEND\0" || offset (u64 LE, of the 256-byte chunk) || 48 zero bytes,
 *          then the 256 bytes (4 blocks) */
void sgx_measure_ecreate(struct sgx_measure *m, u32 ssaframesize, u64 size);
void sgx_measure_eadd(struct sgx_measure *m, u64 offset, const u8 secinfo48[48]);
void sgx_measure_eextend(struct sgx_measure *m, u64 offset, const u8 data[256]);

void sgx_sha256(const void *data, size_t len, u8 out[32]);

/* EINIT's SIGSTRUCT check: RSA-3072 with public exponent 3 (EXPONENT field must be 3),
 * MODULUS (offset 128, 384 bytes) and SIGNATURE (offset 516, 384 bytes) little-endian,
 * RSASSA-PKCS1-v1_5 with SHA-256 over bytes [0,128) || [900,1028) of the SIGSTRUCT;
 * also Q1 (offset 1040) and Q2 (offset 1424), little-endian 384 bytes each, must be
 * Q1 = floor(S^2 / M) and Q2 = floor((S^3 - Q1*S*M) / M) as the SDM defines them.
 * The modulus must be a full 3072-bit number (its top byte non-zero) and the signature
 * smaller than it.
 * 0: valid; -1: invalid (any malformed input: never crash, never read out of bounds). */
int sgx_sigstruct_verify(const u8 sig[SGX_SIGSTRUCT_SIZE]);

/* AES-128-CMAC (EREPORT's MAC, EGETKEY's derivation, EINITTOKEN's MAC) */
void sgx_cmac(const u8 key[16], const void *data, size_t len, u8 mac[16]);

/* AES-128-GCM for EWB/ELDB/ELDU: encrypts a 4096-byte page with additional data aad,
 * giving the tag; decrypt returns 0 and writes out only if the tag matches, else -1.
 * in and out may be the same buffer. */
void sgx_page_encrypt(const u8 key[16], const u8 iv[12], const void *aad, size_t aadlen,
                      const u8 in[4096], u8 out[4096], u8 tag[16]);
int sgx_page_decrypt(const u8 key[16], const u8 iv[12], const void *aad, size_t aadlen,
                     const u8 in[4096], u8 out[4096], const u8 tag[16]);

#endif

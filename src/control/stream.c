/* The save/migration stream: header, zstd-compressed records, SHA-256 trailer. */
#include "control/stream.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define PAGE 4096u
#define SHA_LEN 32
enum { REC_PAGE = 'P', REC_ZERO = 'Z', REC_STATE = 'S', REC_END = 'E' };


static void put_le(u8 *p, u64 v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (u8)(v >> (8 * i));
}
static u64 get_le(const u8 *p, int n)
{
    u64 v = 0;
    for (int i = 0; i < n; i++)
        v |= (u64)p[i] << (8 * i);
    return v;
}

/* ---- writer ---- */
static void raw_write(struct stream_out *s, const void *p, size_t n)
{
    if (s->failed)
        return;
    EVP_DigestUpdate(s->sha, p, n);
    const u8 *q = p;
    while (n) {
        ssize_t w = write(s->fd, q, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            s->failed = true;
            snprintf(s->err, sizeof(s->err), "write: %s", w < 0 ? strerror(errno) : "nothing written");
            return;
        }
        q += w;
        n -= (size_t)w;
        s->bytes += (u64)w;
    }
}

static void z_write(struct stream_out *s, const void *p, size_t n, ZSTD_EndDirective mode)
{
    if (s->failed)
        return;
    ZSTD_inBuffer in = { p, n, 0 };
    for (;;) {
        ZSTD_outBuffer out = { s->out, s->out_cap, 0 };
        size_t left = ZSTD_compressStream2(s->z, &out, &in, mode);
        if (ZSTD_isError(left)) {
            s->failed = true;
            snprintf(s->err, sizeof(s->err), "zstd: %s", ZSTD_getErrorName(left));
            return;
        }
        raw_write(s, s->out, out.pos);
        if (s->failed)
            return;
        if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0)
            return;
    }
}

int stream_out_open(struct stream_out *s, int fd, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->sha = EVP_MD_CTX_new();
    s->z = ZSTD_createCCtx();
    s->out_cap = ZSTD_CStreamOutSize();
    s->out = malloc(s->out_cap);
    if (!s->sha || !s->z || !s->out || EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL) != 1) {
        stream_out_abort(s);
        return nestor_err(err, errlen, "out of host memory");
    }
    ZSTD_CCtx_setParameter(s->z, ZSTD_c_compressionLevel, 1);
    return 0;
}

void stream_put_header(struct stream_out *s, u32 version, const char *config)
{
    u8 h[16];
    memcpy(h, STREAM_MAGIC, 8);
    put_le(h + 8, version, 4);
    size_t n = strlen(config);
    put_le(h + 12, n, 4);
    raw_write(s, h, sizeof(h));
    raw_write(s, config, n);
}

void stream_put_page(struct stream_out *s, u64 gpa, const u8 *data)
{
    u8 h[9] = { REC_PAGE };
    put_le(h + 1, gpa, 8);
    z_write(s, h, sizeof(h), ZSTD_e_continue);
    z_write(s, data, PAGE, ZSTD_e_continue);
}

void stream_put_zero_page(struct stream_out *s, u64 gpa)
{
    u8 h[9] = { REC_ZERO };
    put_le(h + 1, gpa, 8);
    z_write(s, h, sizeof(h), ZSTD_e_continue);
}

void stream_put_state(struct stream_out *s, const u8 *p, size_t len)
{
    u8 h[9] = { REC_STATE };
    put_le(h + 1, len, 8);
    z_write(s, h, sizeof(h), ZSTD_e_continue);
    z_write(s, p, len, ZSTD_e_continue);
}

void stream_flush(struct stream_out *s)
{
    z_write(s, NULL, 0, ZSTD_e_flush);
}

void stream_fail(struct stream_out *s, const char *msg)
{
    if (!s->failed) {
        s->failed = true;
        snprintf(s->err, sizeof(s->err), "%s", msg);
    }
}

void stream_out_abort(struct stream_out *s)
{
    EVP_MD_CTX_free(s->sha);
    ZSTD_freeCCtx(s->z);
    free(s->out);
    s->sha = s->z = NULL;
    s->out = NULL;
}

int stream_out_close(struct stream_out *s, u64 *bytes, char *err, size_t errlen)
{
    u8 end = REC_END;
    z_write(s, &end, 1, ZSTD_e_continue);
    z_write(s, NULL, 0, ZSTD_e_end);
    u8 digest[SHA_LEN];
    unsigned dl = 0;
    if (!s->failed) {
        EVP_DigestFinal_ex(s->sha, digest, &dl);
        /* the trailer is not part of what it covers */
        EVP_MD_CTX_reset(s->sha);
        EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL);
        raw_write(s, digest, SHA_LEN);
    }
    int r = s->failed ? nestor_err(err, errlen, "%s", s->err) : 0;
    if (bytes)
        *bytes = s->bytes;
    stream_out_abort(s);
    return r;
}

/* ---- reader ---- */
int stream_in_open(struct stream_in *s, int fd, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->sha = EVP_MD_CTX_new();
    s->z = ZSTD_createDCtx();
    s->in_cap = ZSTD_DStreamInSize();
    s->in = malloc(s->in_cap);
    s->rec_cap = 1u << 20;
    s->rec = malloc(s->rec_cap);
    if (!s->sha || !s->z || !s->in || !s->rec || EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL) != 1) {
        stream_in_close(s);
        return nestor_err(err, errlen, "out of host memory");
    }
    return 0;
}

void stream_in_close(struct stream_in *s)
{
    EVP_MD_CTX_free(s->sha);
    ZSTD_freeDCtx(s->z);
    free(s->in);
    free(s->rec);
    s->sha = s->z = NULL;
    s->in = s->rec = NULL;
}

/* Refills the raw buffer: false at end of input or on an error. */
static bool fill(struct stream_in *s)
{
    if (s->in_pos < s->in_len)
        return true;
    if (s->eof)
        return false;
    for (;;) {
        ssize_t n = read(s->fd, s->in, s->in_cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            s->eof = true;
            return false;
        }
        s->in_pos = 0;
        s->in_len = (size_t)n;
        return true;
    }
}

/* Reads n raw bytes (hashed when hash). */
static bool raw_read(struct stream_in *s, void *p, size_t n, bool hash)
{
    u8 *q = p;
    while (n) {
        if (!fill(s))
            return false;
        size_t k = s->in_len - s->in_pos;
        if (k > n)
            k = n;
        memcpy(q, s->in + s->in_pos, k);
        if (hash)
            EVP_DigestUpdate(s->sha, s->in + s->in_pos, k);
        s->in_pos += k;
        s->bytes += k;
        q += k;
        n -= k;
    }
    return true;
}

int stream_get_header(struct stream_in *s, u32 *version, char **config, char *err, size_t errlen)
{
    u8 h[16];
    *config = NULL;
    if (!raw_read(s, h, sizeof(h), true))
        return nestor_err(err, errlen, "not a nestor machine state: too short");
    if (memcmp(h, STREAM_MAGIC, 8))
        return nestor_err(err, errlen, "not a nestor machine state (no %s signature)", STREAM_MAGIC);
    *version = (u32)get_le(h + 8, 4);
    u32 n = (u32)get_le(h + 12, 4);
    if (n > STREAM_MAX_CONFIG)
        return nestor_err(err, errlen, "the machine state's header is corrupt");
    char *c = malloc(n + 1);
    if (!c)
        return nestor_err(err, errlen, "out of host memory");
    if (!raw_read(s, c, n, true)) {
        free(c);
        return nestor_err(err, errlen, "the machine state is truncated");
    }
    c[n] = 0;
    if (strlen(c) != n) {
        free(c);
        return nestor_err(err, errlen, "the machine state's header is corrupt");
    }
    *config = c;
    return 0;
}

/* Parses the complete records at the front of the decompressed bytes. 1: the end mark
 * was seen; 0: more input needed; -1: error. */
static int parse_records(struct stream_in *s, const struct stream_sink *k, char *err, size_t errlen)
{
    while (s->rec_pos < s->rec_len) {
        const u8 *p = s->rec + s->rec_pos;
        size_t avail = s->rec_len - s->rec_pos;
        switch (p[0]) {
        case REC_END:
            s->rec_pos++;
            if (s->rec_pos != s->rec_len)
                return nestor_err(err, errlen, "the machine state has data after its end mark");
            return 1;
        case REC_PAGE:
            if (avail < 9 + PAGE)
                return 0;
            if (k->page(k->opaque, get_le(p + 1, 8), p + 9, err, errlen) < 0)
                return -1;
            s->rec_pos += 9 + PAGE;
            break;
        case REC_ZERO:
            if (avail < 9)
                return 0;
            if (k->page(k->opaque, get_le(p + 1, 8), NULL, err, errlen) < 0)
                return -1;
            s->rec_pos += 9;
            break;
        case REC_STATE: {
            if (avail < 9)
                return 0;
            u64 len = get_le(p + 1, 8);
            if (len > STREAM_MAX_STATE)
                return nestor_err(err, errlen, "the machine state is corrupt (a record of %llu bytes)",
                            (unsigned long long)len);
            if (avail < 9 + len) {
                /* room for the whole record */
                if (9 + len > s->rec_cap - s->rec_pos) {
                    size_t cap = s->rec_cap;
                    while (cap < 9 + len + ZSTD_DStreamOutSize())
                        cap *= 2;
                    memmove(s->rec, s->rec + s->rec_pos, avail);
                    s->rec_len = avail;
                    s->rec_pos = 0;
                    u8 *q = realloc(s->rec, cap);
                    if (!q)
                        return nestor_err(err, errlen, "out of host memory");
                    s->rec = q;
                    s->rec_cap = cap;
                }
                return 0;
            }
            if (k->state(k->opaque, p + 9, (size_t)len, err, errlen) < 0)
                return -1;
            s->rec_pos += 9 + (size_t)len;
            break;
        }
        default:
            return nestor_err(err, errlen, "the machine state is corrupt (record type %#x)", p[0]);
        }
    }
    return 0;
}

int stream_get_records(struct stream_in *s, const struct stream_sink *k, char *err, size_t errlen)
{
    bool frame_done = false, need_input = true;
    int got_end = 0;
    while (!frame_done) {
        /* zstd may hold output back when the buffer was full: drain it before reading */
        if (need_input && s->in_pos == s->in_len && !fill(s))
            return nestor_err(err, errlen, "the machine state is truncated");
        if (s->rec_pos == s->rec_len)
            s->rec_pos = s->rec_len = 0;
        if (s->rec_cap - s->rec_len < ZSTD_DStreamOutSize()) {
            memmove(s->rec, s->rec + s->rec_pos, s->rec_len - s->rec_pos);
            s->rec_len -= s->rec_pos;
            s->rec_pos = 0;
        }
        ZSTD_inBuffer in = { s->in + s->in_pos, s->in_len - s->in_pos, 0 };
        ZSTD_outBuffer out = { s->rec + s->rec_len, s->rec_cap - s->rec_len, 0 };
        size_t r = ZSTD_decompressStream(s->z, &out, &in);
        if (ZSTD_isError(r))
            return nestor_err(err, errlen, "the machine state is corrupt (%s)", ZSTD_getErrorName(r));
        EVP_DigestUpdate(s->sha, s->in + s->in_pos, in.pos);
        s->in_pos += in.pos;
        s->bytes += in.pos;
        s->rec_len += out.pos;
        need_input = out.pos < out.size;
        if (got_end && out.pos)
            return nestor_err(err, errlen, "the machine state has data after its end mark");
        if (!got_end) {
            got_end = parse_records(s, k, err, errlen);
            if (got_end < 0)
                return -1;
        }
        if (r == 0 && !got_end && need_input) {
            /* the frame ended without the end mark */
            return nestor_err(err, errlen, "the machine state ends without its end mark");
        }
        frame_done = r == 0 && got_end;
    }
    u8 want[SHA_LEN], have[SHA_LEN];
    unsigned dl = 0;
    EVP_DigestFinal_ex(s->sha, want, &dl);
    if (!raw_read(s, have, SHA_LEN, false))
        return nestor_err(err, errlen, "the machine state is truncated (no checksum)");
    if (memcmp(want, have, SHA_LEN))
        return nestor_err(err, errlen, "the machine state's checksum does not match: the file is corrupt");
    return 0;
}

/* ---- digest ---- */
void stream_digest_init(struct stream_digest *d)
{
    d->sha = EVP_MD_CTX_new();
    if (!d->sha || EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL) != 1)
        nestor_panic("out of host memory");
}

void stream_digest_update(struct stream_digest *d, const void *p, size_t n)
{
    EVP_DigestUpdate(d->sha, p, n);
}

void stream_digest_final(struct stream_digest *d, char hex[65])
{
    u8 md[SHA_LEN];
    unsigned n = 0;
    EVP_DigestFinal_ex(d->sha, md, &n);
    for (int i = 0; i < SHA_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(d->sha);
    d->sha = NULL;
}

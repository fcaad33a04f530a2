/* The byte stream of a saved or migrating machine (snapshot.h describes the format):
 * a raw header, zstd-compressed records, a SHA-256 trailer. Writers and readers work on a
 * file descriptor (a file, a socket, a pipe) so that save/restore and live migration
 * share one format. Internal to src/control/. */
#ifndef NESTOR_CONTROL_STREAM_H
#define NESTOR_CONTROL_STREAM_H

#include "common.h"

struct machine;

#define STREAM_MAGIC "NESTORSV"
#define STREAM_MAX_CONFIG 4096
#define STREAM_MAX_STATE (256u << 20) /* a machine state larger than this is corrupt */

struct stream_out {
    int fd;
    void *sha;   /* EVP_MD_CTX */
    void *z;     /* ZSTD_CCtx */
    u8 *out;
    size_t out_cap;
    u64 bytes;   /* written to fd so far */
    bool failed;
    char err[256];
};

int stream_out_open(struct stream_out *s, int fd, char *err, size_t errlen);
void stream_put_header(struct stream_out *s, u32 version, const char *config);
void stream_put_page(struct stream_out *s, u64 gpa, const u8 *data);
void stream_put_zero_page(struct stream_out *s, u64 gpa);
void stream_put_state(struct stream_out *s, const u8 *p, size_t len);
/* Makes everything put so far reach fd (the receiver can apply it): a pre-copy round. */
void stream_flush(struct stream_out *s);
void stream_fail(struct stream_out *s, const char *msg);
/* Ends the stream (end mark, checksum) and frees the writer: 0, or -1 with a message. */
int stream_out_close(struct stream_out *s, u64 *bytes, char *err, size_t errlen);
/* Frees a writer without ending the stream (a cancelled migration). */
void stream_out_abort(struct stream_out *s);

struct stream_in {
    int fd;
    void *sha;
    void *z;
    u8 *in;          /* raw bytes read, not yet consumed */
    size_t in_pos, in_len, in_cap;
    u8 *rec;         /* decompressed bytes not yet parsed into records */
    size_t rec_pos, rec_len, rec_cap;
    bool eof;
    u64 bytes;       /* raw bytes consumed */
};

/* What a reader does with the records. A page of NULL data is a zero page. */
struct stream_sink {
    void *opaque;
    int (*page)(void *opaque, u64 gpa, const u8 *data, char *err, size_t errlen);
    int (*state)(void *opaque, const u8 *p, size_t len, char *err, size_t errlen);
};

int stream_in_open(struct stream_in *s, int fd, char *err, size_t errlen);
/* The header: *config is malloc'ed (the caller frees it). */
int stream_get_header(struct stream_in *s, u32 *version, char **config, char *err, size_t errlen);
/* Every record up to the end mark, then the checksum: 0 only when it matches. */
int stream_get_records(struct stream_in *s, const struct stream_sink *sink, char *err, size_t errlen);
void stream_in_close(struct stream_in *s);

/* SHA-256 over any bytes (the state digest). */
struct stream_digest {
    void *sha;
};
void stream_digest_init(struct stream_digest *d);
void stream_digest_update(struct stream_digest *d, const void *p, size_t n);
void stream_digest_final(struct stream_digest *d, char hex[65]);

/* snapshot.c's pieces, for the migration code: */
void snapshot_config(const struct machine *m, char *buf, size_t cap);
void snapshot_put_header(struct machine *m, struct stream_out *s);
/* Region page idx (mem_region_page) as a page record; a zero page as a zero-page record
 * when zero_record, else not at all (a destination starts from zeroed RAM). true when
 * its contents were sent. */
bool snapshot_put_page(struct machine *m, struct stream_out *s, u64 idx, bool zero_record);
/* Every non-zero page of RAM. */
void snapshot_put_ram(struct machine *m, struct stream_out *s);
bool snapshot_page_is_zero(const u8 *p);
void snapshot_put_state(struct machine *m, struct stream_out *s);

#endif

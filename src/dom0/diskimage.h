/* A disk image behind a PV block backend: a raw file opened, locked and sized once, and
 * the reads, writes, flushes and discards the backend asks for, run asynchronously off
 * the vCPU loop through io_uring (Debian's liburing) so the guest keeps running during
 * I/O. With -icount (deterministic runs) or where the host refuses io_uring, requests
 * run synchronously at submission and complete at the next disk_image_reap: completion
 * order and timing then depend on the guest alone.
 *
 * The image is locked with an open-file-description lock (F_OFD_SETLK) over its whole
 * length: exclusively when written, shared when read only, so that two nestors (or
 * another program that honours the lock, such as QEMU) cannot write it at once.
 * snapshot=on opens the image read only and writes go to a temporary sparse copy of its
 * allocated extents, deleted when nestor exits, as QEMU's temporary overlay does. */
#ifndef NESTOR_DOM0_DISKIMAGE_H
#define NESTOR_DOM0_DISKIMAGE_H

#include <stddef.h>
#include <sys/uio.h>

#include "common.h"

struct disk_image;

struct disk_image_opts {
    const char *file;
    bool readonly;      /* opened read only: writes and discards fail */
    bool snapshot;      /* writes go to a temporary copy */
    bool synchronous;   /* run every request at submission (deterministic runs) */
};

/* NULL with a message in err (no such file, not a raw image, locked by another...) */
struct disk_image *disk_image_open(const struct disk_image_opts *o, char *err, size_t errlen);
void disk_image_close(struct disk_image *d);
u64 disk_image_size(const struct disk_image *d);
bool disk_image_readonly(const struct disk_image *d);

enum disk_io_kind { DISK_READ, DISK_WRITE, DISK_FLUSH, DISK_DISCARD };

/* One request. The caller owns it until done runs (from disk_image_reap, on the vCPU
 * loop's thread) with 0 or a negative errno; a read or write that moves fewer bytes than
 * asked is -EIO. iov/niov: the buffers of a read or write; len: the length of a discard. */
struct disk_io {
    enum disk_io_kind kind;
    u64 offset;
    const struct iovec *iov;
    int niov;
    u64 len;
    void (*done)(struct disk_io *io, int result);
    /* the engine's */
    u64 want;           /* bytes a read or write moves */
    int result;         /* run synchronously: its result, until reaped */
    struct disk_io *next;
};

/* Queues io (submitted to the kernel at once). 0, or a negative errno when the request
 * cannot be queued (the caller completes it with an error itself). */
int disk_image_submit(struct disk_image *d, struct disk_io *io);
/* Runs the done callbacks of finished requests; the number run. Cheap when none
 * finished (no system call with io_uring). */
int disk_image_reap(struct disk_image *d);
/* Requests submitted and not yet reaped */
unsigned disk_image_inflight(const struct disk_image *d);
/* A file descriptor that becomes readable when a request finishes (for poll while the
 * vCPUs are idle), or -1 when requests finish synchronously. */
int disk_image_event_fd(const struct disk_image *d);
/* Waits for every request in flight and reaps them (before a save, at disconnect). */
void disk_image_drain(struct disk_image *d);

#endif

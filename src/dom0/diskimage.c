/* A raw disk image and its asynchronous I/O (see diskimage.h). */
#include "dom0/diskimage.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUEUE_DEPTH 256u

struct disk_image {
    int fd;
    u64 size;
    bool readonly;
    bool uring_ok;
    struct io_uring ring;
    int event_fd;
    unsigned inflight;      /* submitted and not reaped */
    unsigned in_kernel;     /* of those, in the ring */
    /* requests waiting for room in the ring, and (synchronous mode) finished ones */
    struct disk_io *waiting, *waiting_tail;
    struct disk_io *finished, *finished_tail;
};

static void list_add(struct disk_io **head, struct disk_io **tail, struct disk_io *io)
{
    io->next = NULL;
    if (*tail)
        (*tail)->next = io;
    else
        *head = io;
    *tail = io;
}

/* ---- opening ---- */
/* The image's allocated extents copied into a sparse temporary file (snapshot=on): the
 * copy is what the guest then reads and writes. */
static int snapshot_copy(int src, u64 size, char *err, size_t errlen)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/nestor-snapshot-XXXXXX", dir && *dir ? dir : "/var/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        nestor_err(err, errlen, "cannot create the snapshot's temporary file in %s: %s",
                   dir && *dir ? dir : "/var/tmp", strerror(errno));
        return -1;
    }
    unlink(path); /* gone when nestor exits, whatever happens */
    if (ftruncate(fd, (off_t)size) < 0)
        goto fail;
    off_t pos = 0;
    static char buf[1 << 16];
    while ((u64)pos < size) {
        off_t data = lseek(src, pos, SEEK_DATA);
        if (data < 0)
            break; /* ENXIO: holes to the end */
        off_t hole = lseek(src, data, SEEK_HOLE);
        if (hole < 0)
            hole = (off_t)size;
        for (off_t at = data; at < hole;) {
            size_t n = (size_t)(hole - at) < sizeof(buf) ? (size_t)(hole - at) : sizeof(buf);
            ssize_t r = pread(src, buf, n, at);
            if (r <= 0)
                goto fail;
            if (pwrite(fd, buf, (size_t)r, at) != r)
                goto fail;
            at += r;
        }
        pos = hole;
    }
    return fd;
fail:
    nestor_err(err, errlen, "cannot copy the image for snapshot=on: %s", strerror(errno ? errno : EIO));
    close(fd);
    return -1;
}

/* The whole file locked as QEMU's raw driver does (OFD locks: per open file, released
 * at close): exclusive for writing, shared for reading. */
static int lock_image(int fd, bool write, const char *file, char *err, size_t errlen)
{
    struct flock fl = { .l_type = (short)(write ? F_WRLCK : F_RDLCK), .l_whence = SEEK_SET };
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno == EAGAIN || errno == EACCES)
        nestor_err(err, errlen, "%s is in use by another program (it holds a lock on it)%s", file,
                   write ? "; readonly=on or snapshot=on share it" : "");
    else
        nestor_err(err, errlen, "cannot lock %s: %s", file, strerror(errno));
    return -1;
}

struct disk_image *disk_image_open(const struct disk_image_opts *o, char *err, size_t errlen)
{
    bool write = !o->readonly && !o->snapshot;
    int fd = open(o->file, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        nestor_err(err, errlen, "cannot open %s: %s", o->file, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        nestor_err(err, errlen, "%s is not a regular file (nestor reads raw image files)", o->file);
        close(fd);
        return NULL;
    }
    if (lock_image(fd, write, o->file, err, errlen)) {
        close(fd);
        return NULL;
    }
    u64 size = (u64)st.st_size;
    if (o->snapshot) {
        int copy = snapshot_copy(fd, size, err, errlen);
        close(fd); /* the lock goes with it: the image is not used any more */
        if (copy < 0)
            return NULL;
        fd = copy;
    }
    struct disk_image *d = calloc(1, sizeof(*d));
    if (!d) {
        nestor_err(err, errlen, "out of memory");
        close(fd);
        return NULL;
    }
    d->fd = fd;
    d->size = size;
    d->readonly = o->readonly;
    d->event_fd = -1;
    if (!o->synchronous && io_uring_queue_init(QUEUE_DEPTH, &d->ring, 0) == 0) {
        d->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (d->event_fd >= 0 && io_uring_register_eventfd(&d->ring, d->event_fd) == 0) {
            d->uring_ok = true;
        } else {
            if (d->event_fd >= 0)
                close(d->event_fd);
            d->event_fd = -1;
            io_uring_queue_exit(&d->ring);
        }
    }
    if (!o->synchronous && !d->uring_ok)
        nestor_log("%s: the host refuses io_uring: disk requests run synchronously", o->file);
    return d;
}

void disk_image_close(struct disk_image *d)
{
    if (!d)
        return;
    disk_image_drain(d);
    if (d->uring_ok) {
        io_uring_queue_exit(&d->ring);
        close(d->event_fd);
    }
    close(d->fd);
    free(d);
}

u64 disk_image_size(const struct disk_image *d)
{
    return d->size;
}

bool disk_image_readonly(const struct disk_image *d)
{
    return d->readonly;
}

unsigned disk_image_inflight(const struct disk_image *d)
{
    return d->inflight;
}

int disk_image_event_fd(const struct disk_image *d)
{
    return d->uring_ok ? d->event_fd : -1;
}

/* ---- requests ---- */
static u64 io_bytes(const struct disk_io *io)
{
    u64 n = 0;
    for (int i = 0; i < io->niov; i++)
        n += io->iov[i].iov_len;
    return n;
}

/* The request run here and now: 0 or a negative errno */
static int run_sync(struct disk_image *d, struct disk_io *io)
{
    switch (io->kind) {
    case DISK_READ:
    case DISK_WRITE: {
        ssize_t r = io->kind == DISK_READ ? preadv(d->fd, io->iov, io->niov, (off_t)io->offset)
                                          : pwritev(d->fd, io->iov, io->niov, (off_t)io->offset);
        return r < 0 ? -errno : (u64)r == io->want ? 0 : -EIO;
    }
    case DISK_FLUSH:
        return fdatasync(d->fd) < 0 ? -errno : 0;
    case DISK_DISCARD:
        return fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)io->offset,
                         (off_t)io->len) < 0 ? -errno : 0;
    }
    return -EINVAL;
}

/* Puts io into the ring; false when the ring is full */
static bool ring_queue(struct disk_image *d, struct disk_io *io)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
    if (!sqe)
        return false;
    switch (io->kind) {
    case DISK_READ:
        io_uring_prep_readv(sqe, d->fd, io->iov, (unsigned)io->niov, io->offset);
        break;
    case DISK_WRITE:
        io_uring_prep_writev(sqe, d->fd, io->iov, (unsigned)io->niov, io->offset);
        break;
    case DISK_FLUSH:
        io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
        break;
    case DISK_DISCARD:
        io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                io->offset, io->len);
        break;
    }
    io_uring_sqe_set_data(sqe, io);
    d->in_kernel++;
    return true;
}

/* Moves waiting requests into the ring and hands it to the kernel */
static void ring_submit(struct disk_image *d)
{
    while (d->waiting && ring_queue(d, d->waiting)) {
        d->waiting = d->waiting->next;
        if (!d->waiting)
            d->waiting_tail = NULL;
    }
    /* a failure (ENOMEM, EINTR) leaves the entries queued: the next call submits them */
    io_uring_submit(&d->ring);
}

int disk_image_submit(struct disk_image *d, struct disk_io *io)
{
    if ((io->kind == DISK_WRITE || io->kind == DISK_DISCARD) && d->readonly)
        return -EROFS;
    io->want = io_bytes(io);
    d->inflight++;
    if (!d->uring_ok) {
        io->result = run_sync(d, io);
        list_add(&d->finished, &d->finished_tail, io);
        return 0;
    }
    list_add(&d->waiting, &d->waiting_tail, io);
    ring_submit(d);
    return 0;
}

int disk_image_reap(struct disk_image *d)
{
    int n = 0;
    if (!d->uring_ok) {
        while (d->finished) {
            struct disk_io *io = d->finished;
            d->finished = io->next;
            if (!d->finished)
                d->finished_tail = NULL;
            d->inflight--;
            n++;
            io->done(io, io->result);
        }
        return n;
    }
    if (!d->in_kernel)
        return 0;
    u64 ignored;
    if (read(d->event_fd, &ignored, sizeof(ignored)) < 0 && errno != EAGAIN)
        nestor_log("disk: reading the completion eventfd: %s", strerror(errno));
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&d->ring, &cqe) == 0) {
        struct disk_io *io = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&d->ring, cqe);
        d->in_kernel--;
        d->inflight--;
        n++;
        if (res >= 0 && (io->kind == DISK_READ || io->kind == DISK_WRITE))
            res = (u64)res == io->want ? 0 : -EIO;
        else if (res > 0)
            res = 0;
        io->done(io, res);
    }
    if (d->waiting)
        ring_submit(d);
    return n;
}

void disk_image_drain(struct disk_image *d)
{
    while (d->inflight) {
        if (d->uring_ok && d->in_kernel) {
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&d->ring, &cqe) < 0 && d->in_kernel)
                continue;
        }
        disk_image_reap(d);
    }
}

/* The PV block backend (blkif, xen/io/blkif.h): a disk image offered to a Xen guest as
 * a virtual block device (xvda...), what Linux's xen-blkback and QEMU's xen-block do in
 * domain 0.
 *
 * Offered: read, write, flush (BLKIF_OP_FLUSH_DISKCACHE, made durable with fdatasync,
 * with or without data), discard (hole punching; not on a read-only disk), indirect
 * descriptors (up to 256 segments a request), persistent grants, multi-page rings (up
 * to 16 pages) and multiple queues, 512- and 4096-byte logical sectors, the x86_64 and
 * x86_32 request layouts. Data moves by grant copy through a bounce buffer, or through
 * the persistent grants the backend keeps mapped, on the vCPU loop's thread; the disk
 * I/O itself runs asynchronously (diskimage.h).
 *
 * Hostile frontends: a request that names a bad grant, a range outside the disk, too
 * many segments, a segment outside its page or misaligned to the sector size gets
 * BLKIF_RSP_ERROR; an operation not offered gets BLKIF_RSP_EOPNOTSUPP; a ring whose
 * producer index runs more than a ring ahead stops being served until the frontend
 * reconnects (as Linux's blkback halts it). Nothing the guest writes can make the
 * backend read or write outside the image or the granted bytes. */
#ifndef NESTOR_DOM0_BLKBACK_H
#define NESTOR_DOM0_BLKBACK_H

#include <stddef.h>

#include "common.h"
#include "dom0/ring.h"

struct xen;
struct xenstore;
struct disk_image;
struct blkback;

struct blkback_opts {
    struct disk_image *image;   /* the backend owns it from here on */
    const char *vdev;           /* "xvda" */
    const char *file;           /* shown in the backend's params key */
    u32 sector_size;            /* logical: 512 or 4096 */
    u32 physical_sector_size;   /* 0: the logical size */
    u32 max_ring_order;         /* ring pages the frontend may use: 1 << order (0-4) */
    u32 max_queues;             /* 1-16 */
};

/* Adds the device to the guest's xenstore and waits for its frontend. NULL with a
 * message (a vdev that is not a disk name, a size not a multiple of the sector). */
struct blkback *blkback_create(struct xen *x, struct xenstore *xs, const struct blkback_opts *o,
                               char *err, size_t errlen);
void blkback_destroy(struct blkback *b);
/* Finished disk requests get their responses (the machine calls it every round) */
void blkback_poll(struct blkback *b);
/* Readable when a disk request finishes (-1: they finish synchronously) */
int blkback_event_fd(const struct blkback *b);
/* Finishes the disk requests in flight and answers them (before a save) */
void blkback_quiesce(struct blkback *b);
/* Save and restore: the connection (the Xen interface's sections hold its mappings and
 * ports), registered after them; instance: the device's place among the disks */
struct state_registry;
void blkback_state_register(struct blkback *b, struct state_registry *r, u32 instance);
/* Disk requests submitted and not yet answered */
unsigned blkback_inflight(const struct blkback *b);

/* ---- the request format, decoded (for unit tests and fuzzing as well) ---- */
enum blkif_abi { BLKIF_ABI_X86_64, BLKIF_ABI_X86_32 };
/* The ABI a frontend's "protocol" key names (absent: the native x86_64): -1 if none */
int blkif_abi_by_protocol(const char *protocol);
/* Bytes of a ring entry (request or response) and of the ring's header */
u32 blkif_entry_size(enum blkif_abi abi);
#define BLKIF_RING_HEADER BACKRING_HEADER
/* Entries a ring of npages pages holds (a power of two, as ring.h computes it) */
u32 blkif_ring_entries(enum blkif_abi abi, u32 npages);

#define BLKIF_MAX_INDIRECT_SEGMENTS 256u
struct blkif_segment {
    u32 gref;
    u8 first_sect, last_sect;
};
struct blkif_req {
    u8 operation;        /* what the response echoes: the operation, or an indirect
                            request's indirect_op (as Linux's blkback answers) */
    u8 op;               /* what to do: BLKIF_OP_READ/WRITE/FLUSH_DISKCACHE/DISCARD, or
                            the operation itself when it is not one the backend offers */
    bool indirect;       /* BLKIF_OP_INDIRECT */
    u16 nseg;            /* data segments */
    u16 handle;
    u64 id, sector;
    u64 discard_sectors; /* BLKIF_OP_DISCARD */
    u8 discard_flags;
    u8 nindirect;        /* BLKIF_OP_INDIRECT: pages of segments, grefs below */
    u32 indirect_gref[8];
    struct blkif_segment seg[11]; /* direct segments (nseg of them, if not indirect) */
};
/* One ring entry decoded (nothing checked but what the layout needs) */
void blkif_decode(enum blkif_abi abi, const u8 *entry, struct blkif_req *r);
/* The checks a request's geometry must pass: 0, or -EINVAL (a segment outside its page,
 * too many or too few segments, indirect pages beyond what the segments need) and
 * -ERANGE (beyond the disk, misaligned to the sector size). sectors: in 512-byte units,
 * the disk's size; sector_size: the logical one. *nsect: the request's 512-byte sectors. */
int blkif_check_request(const struct blkif_req *r, const struct blkif_segment *seg, u64 sectors,
                        u32 sector_size, u64 *nsect);
/* A response into a ring entry */
void blkif_encode_response(enum blkif_abi abi, u8 *entry, u64 id, u8 operation, s16 status);

#endif

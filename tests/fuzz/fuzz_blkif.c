/* libFuzzer target: the PV block backend (src/dom0/blkback.c) against a hostile
 * frontend. A frontend connects (the protocol and persistent grants chosen by the input's
 * first byte) to a 64 KiB disk; then the input is cut into rounds, each a control byte
 * and bytes written over the ring's entries, a data page, an indirect page and the grant
 * table (which may grant anything, read-only or not, or nothing), a producer index from
 * the input, a signal, completions; now and then the frontend closes and reconnects.
 * Nothing may crash, hang, leak, read or write outside the disk and the granted bytes
 * (ASan/UBSan); no round gets more responses than a ring holds (32). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dom0/blkback.h"
#include "dom0/diskimage.h"
#include "xen_harness.h"

#define RING 0x30000u    /* grant 1 */
#define DATA 0x40000u    /* grants 2-9: pages DATA + 4 KiB * i */
#define TABLE HARNESS_TABLE
#define FE "/local/domain/1/device/vbd/51712"
#define DISK 65536u

static struct blkback *bb;
static int disk_fd = -1;
static char disk_path[64];
static u32 port;

/* The frontend (re)connects on a fresh ring */
static void connect(u8 how)
{
    static const u8 zero[4096];
    mem_write(&mem, RING, zero, sizeof(zero));
    u32 one = 1;
    mem_write(&mem, RING + 4, &one, 4);
    mem_write(&mem, RING + 12, &one, 4);
    grant(1, GTF_permit_access, RING >> 12);
    port = guest_port_for_dom0();
    char v[16];
    snprintf(v, sizeof(v), "%u", port);
    fe_write(FE, "ring-ref", "1");
    fe_write(FE, "event-channel", v);
    fe_write(FE, "protocol", how & 1 ? "x86_32-abi" : "x86_64-abi");
    fe_write(FE, "feature-persistent", how & 2 ? "1" : "0");
    fe_write(FE, "state", "3");
}

static void setup(void)
{
    harness_setup();
    snprintf(disk_path, sizeof(disk_path), "/tmp/nestor-fuzz-blkif-XXXXXX");
    disk_fd = mkstemp(disk_path);
    if (disk_fd < 0 || ftruncate(disk_fd, DISK))
        abort();
    char err[200];
    struct disk_image_opts o = { .file = disk_path, .synchronous = true };
    struct disk_image *img = disk_image_open(&o, err, sizeof(err));
    if (!img)
        abort();
    struct blkback_opts bo = { .image = img, .vdev = "xvda", .file = disk_path, .sector_size = 512,
                               .max_ring_order = 0, .max_queues = 1 };
    if (!(bb = blkback_create(xen, xs, &bo, err, sizeof(err))))
        abort();
}

static void teardown(void)
{
    blkback_destroy(bb);
    harness_teardown();
    close(disk_fd);
    unlink(disk_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    connect(data[0]);
    u32 prod = 0;
    size_t i = 1;
    while (i + 2 <= size) {
        u8 ctl = data[i++];
        size_t n = data[i++] * 4u;
        if (n > size - i)
            n = size - i;
        /* where the bytes go: the ring's entries, a data page, the indirect page, the
         * grant table's first entries */
        static const u32 where[4] = { RING + 64, DATA, DATA + 0x8000, 0 };
        u32 w = where[ctl & 3];
        if (w)
            mem_write(&mem, w, data + i, n > 4096 - (w & 0xfff) ? 4096 - (w & 0xfff) : n);
        else
            mem_write(&mem, TABLE + 16, data + i, n > 4096 - 16 ? 4096 - 16 : n);
        i += n;
        /* grants 2-9 of the data pages, read-only as bit 2 says */
        if (ctl & 0x10)
            for (u32 g = 0; g < 9; g++)
                grant(2 + g, GTF_permit_access | (ctl & 4 ? GTF_readonly : 0), (DATA >> 12) + g);
        /* the producer: a few requests more, or whatever the input says */
        u32 rsp_before;
        mem_read_u32(&mem, RING + 8, &rsp_before);
        prod = ctl & 8 ? prod + 1 + (ctl >> 5) : (u32)ctl << 24 | ctl;
        mem_write(&mem, RING, &prod, 4);
        guest_send(port);
        blkback_poll(bb);
        u32 rsp_after;
        mem_read_u32(&mem, RING + 8, &rsp_after);
        if (rsp_after - rsp_before > 32)
            abort();
        if ((ctl & 0xe0) == 0xe0) {
            /* the frontend goes away and comes back */
            fe_write(FE, "state", "6");
            fe_write(FE, "state", "1");
            prod = 0;
            connect(ctl);
        }
    }
    teardown();
    return 0;
}

/* The Xen guest's PV devices from the command line (see xendev.h). */
#include "machine/xendev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dom0/blkback.h"
#include "dom0/diskimage.h"
#include "machine/machine.h"
#include "machine/opts.h"

struct xendevs {
    struct blkback *disk[MACHINE_MAX_DRIVES];
    int ndisks;
};

static const char *const drive_props[] = {
    "file", "if", "format", "readonly", "snapshot", "index", "media", NULL,
};

/* One -drive parsed and checked */
struct drive {
    struct opts o;
    const char *file, *id;
    bool xen;           /* if=xen: a xen-disk of its own */
    bool readonly, snapshot;
    u64 index;
};

static int drive_parse(const char *spec, struct drive *d)
{
    memset(d, 0, sizeof(*d));
    if (opts_parse(&d->o, "-drive", spec, false) || opts_check_known(&d->o, drive_props))
        return -1;
    d->file = opts_get(&d->o, "file");
    d->id = opts_get(&d->o, "id");
    const char *iface = opts_get(&d->o, "if");
    const char *format = opts_get(&d->o, "format");
    const char *media = opts_get(&d->o, "media");
    if (!d->file || !*d->file) {
        nestor_log("-drive %s: file= names the image", spec);
        return -1;
    }
    if (!iface || (strcmp(iface, "none") && strcmp(iface, "xen"))) {
        nestor_log("-drive %s: if=none (for a -device) or if=xen; nestor has no %s disks", spec,
                   iface ? iface : "IDE");
        return -1;
    }
    d->xen = !strcmp(iface, "xen");
    if (!d->xen && !d->id) {
        nestor_log("-drive %s: if=none needs an id= for its -device", spec);
        return -1;
    }
    if (format && strcmp(format, "raw")) {
        nestor_log("-drive %s: format=%s: nestor reads raw images (qemu-img convert -O raw makes one)",
                   spec, format);
        return -1;
    }
    if (media && strcmp(media, "disk")) {
        nestor_log("-drive %s: media=%s: only disks", spec, media);
        return -1;
    }
    if (opts_bool(&d->o, "readonly", &d->readonly) || opts_bool(&d->o, "snapshot", &d->snapshot) ||
        opts_num(&d->o, "index", 25, &d->index))
        return -1;
    return 0;
}

int xendev_check_drives(const struct machine *m)
{
    const struct machine_config *cfg = &m->cfg;
    for (int i = 0; i < cfg->ndrives; i++) {
        struct drive d;
        if (drive_parse(cfg->drives[i], &d))
            return -1;
        if (!m->xen) {
            nestor_log("-drive %s: nestor's disks are Xen PV disks: add -xen", cfg->drives[i]);
            return -1;
        }
        for (int k = 0; k < i; k++) {
            struct drive e;
            if (drive_parse(cfg->drives[k], &e) == 0 && d.id && e.id && !strcmp(d.id, e.id)) {
                nestor_log("-drive id=%s: given twice", d.id);
                return -1;
            }
        }
    }
    return 0;
}

/* A format's first bytes that say the file is not raw: refused rather than shown to the
 * guest as a disk of its header (QEMU probes and warns) */
static int looks_raw(const char *file)
{
    FILE *f = fopen(file, "rb");
    if (!f)
        return 1; /* the open itself reports it */
    u8 magic[4] = { 0 };
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return !(n == 4 && !memcmp(magic, "QFI\xfb", 4));
}

static int add_disk(struct machine *m, const struct drive *d, const char *vdev, const struct opts *dev)
{
    struct xendevs *xd = m->xendevs;
    if (xd->ndisks == MACHINE_MAX_DRIVES) {
        nestor_log("more than %d Xen disks", MACHINE_MAX_DRIVES);
        return -1;
    }
    if (!opts_get(&d->o, "format") && !looks_raw(d->file)) {
        nestor_log("%s is a qcow2 image: nestor reads raw images (qemu-img convert -O raw makes one)", d->file);
        return -1;
    }
    u64 lbs = 512, pbs = 0, order = 4, queues = m->ncpus < 4 ? (u64)m->ncpus : 4;
    if (dev && (opts_num(dev, "logical_block_size", 4096, &lbs) ||
                opts_num(dev, "physical_block_size", 65536, &pbs) ||
                opts_num(dev, "max-ring-page-order", 4, &order) ||
                opts_num(dev, "num-queues", 16, &queues)))
        return -1;
    char err[300];
    struct disk_image_opts io = {
        .file = d->file, .readonly = d->readonly, .snapshot = d->snapshot,
        .synchronous = m->cfg.deterministic,
    };
    struct disk_image *img = disk_image_open(&io, err, sizeof(err));
    if (!img) {
        nestor_log("-drive file=%s: %s", d->file, err);
        return -1;
    }
    struct blkback_opts bo = {
        .image = img, .vdev = vdev, .file = d->file, .sector_size = (u32)lbs,
        .physical_sector_size = (u32)pbs, .max_ring_order = (u32)order, .max_queues = (u32)queues,
    };
    struct blkback *b = blkback_create(m->xen, m->xenstore, &bo, err, sizeof(err));
    if (!b) {
        disk_image_close(img);
        nestor_log("xen-disk %s: %s", vdev, err);
        return -1;
    }
    xd->disk[xd->ndisks++] = b;
    return 0;
}

int xendev_create(struct machine *m)
{
    const struct machine_config *cfg = &m->cfg;
    if (!(m->xendevs = calloc(1, sizeof(*m->xendevs)))) {
        nestor_log("out of memory");
        return -1;
    }
    /* -device xen-disk,drive=D */
    bool used[MACHINE_MAX_DRIVES] = { false };
    for (int i = 0; i < cfg->ndevices; i++) {
        struct opts o;
        if (opts_parse(&o, "-device", cfg->devices[i], true) || strcmp(o.name, "xen-disk"))
            continue;
        const char *id = opts_get(&o, "drive"), *vdev = opts_get(&o, "vdev");
        if (!id || !vdev) {
            nestor_log("-device %s: xen-disk needs drive= and vdev=", cfg->devices[i]);
            return -1;
        }
        int k;
        struct drive d;
        for (k = 0; k < cfg->ndrives; k++)
            if (drive_parse(cfg->drives[k], &d) == 0 && d.id && !strcmp(d.id, id) && !d.xen)
                break;
        if (k == cfg->ndrives) {
            nestor_log("-device %s: no -drive if=none,id=%s", cfg->devices[i], id);
            return -1;
        }
        if (used[k]) {
            nestor_log("-device %s: drive %s is already used by another device", cfg->devices[i], id);
            return -1;
        }
        used[k] = true;
        if (add_disk(m, &d, vdev, &o))
            return -1;
    }
    /* -drive if=xen: xvda, xvdb... by index, else in order after the ones taken */
    u32 taken = 0;
    for (int k = 0; k < cfg->ndrives; k++) {
        struct drive d;
        if (drive_parse(cfg->drives[k], &d) == 0 && d.xen && opts_get(&d.o, "index"))
            taken |= 1u << d.index;
    }
    for (int k = 0; k < cfg->ndrives; k++) {
        struct drive d;
        if (drive_parse(cfg->drives[k], &d) || !d.xen)
            continue;
        u32 index = (u32)d.index;
        if (!opts_get(&d.o, "index")) {
            for (index = 0; index < 26 && (taken >> index & 1); index++)
                ;
            if (index == 26) {
                nestor_log("-drive %s: no free xvd letter", cfg->drives[k]);
                return -1;
            }
            taken |= 1u << index;
        }
        char vdev[8];
        snprintf(vdev, sizeof(vdev), "xvd%c", 'a' + index);
        if (add_disk(m, &d, vdev, NULL))
            return -1;
    }
    for (int k = 0; k < cfg->ndrives; k++) {
        struct drive d;
        if (!used[k] && drive_parse(cfg->drives[k], &d) == 0 && !d.xen)
            nestor_log("-drive id=%s: no device uses it", d.id);
    }
    return 0;
}

void xendev_destroy(struct machine *m)
{
    struct xendevs *xd = m->xendevs;
    if (!xd)
        return;
    for (int i = 0; i < xd->ndisks; i++)
        blkback_destroy(xd->disk[i]);
    free(xd);
    m->xendevs = NULL;
}

void xendev_poll(struct machine *m)
{
    struct xendevs *xd = m->xendevs;
    if (!xd)
        return;
    for (int i = 0; i < xd->ndisks; i++)
        blkback_poll(xd->disk[i]);
}

int xendev_pollfds(struct machine *m, struct pollfd *fds, int max)
{
    struct xendevs *xd = m->xendevs;
    int n = 0;
    if (!xd)
        return 0;
    for (int i = 0; i < xd->ndisks && n < max; i++) {
        int fd = blkback_event_fd(xd->disk[i]);
        if (fd >= 0 && blkback_inflight(xd->disk[i]))
            fds[n++] = (struct pollfd){ fd, POLLIN, 0 };
    }
    return n;
}

bool xendev_savable(const struct machine *m, char *err, size_t errlen)
{
    const struct xendevs *xd = m->xendevs;
    if (!xd)
        return true;
    for (int i = 0; i < xd->ndisks; i++)
        if (blkback_busy(xd->disk[i])) {
            nestor_err(err, errlen, "a PV disk is connected: saving the block backend's rings is not supported yet");
            return false;
        }
    return true;
}

/* The Xen guest's PV devices from the command line (see xendev.h). */
#include "machine/xendev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dom0/blkback.h"
#include "dom0/diskimage.h"
#include "dom0/netback.h"
#include "dom0/netdev.h"
#include "machine/machine.h"
#include "machine/opts.h"

struct xendevs {
    struct blkback *disk[MACHINE_MAX_DRIVES];
    int ndisks;
    struct netdev *netdev[MACHINE_MAX_NETDEVS];
    int nnetdevs;
    int poll_first[MACHINE_MAX_NETDEVS], poll_count[MACHINE_MAX_NETDEVS]; /* in the last fill */
    struct netback *nic[MACHINE_MAX_NETDEVS];
    int nnics;
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

int xendev_check_options(const struct machine *m)
{
    const struct machine_config *cfg = &m->cfg;
    for (int i = 0; i < cfg->nnetdevs; i++) {
        struct opts o;
        if (opts_parse(&o, "-netdev", cfg->netdevs[i], true))
            return -1;
        if (!m->xen) {
            nestor_log("-netdev %s: nestor's NICs are Xen PV NICs: add -xen", cfg->netdevs[i]);
            return -1;
        }
        if (!opts_get(&o, "id")) {
            nestor_log("-netdev %s: needs an id=", cfg->netdevs[i]);
            return -1;
        }
    }
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

/* "52:54:00:12:34:56" */
static int parse_mac(const char *s, u8 mac[6])
{
    unsigned v[6];
    char tail;
    if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = (u8)v[i];
    return mac[0] & 1 ? -1 : 0; /* a multicast address is no NIC's */
}

/* -netdev and -device xen-net-device */
static int create_nics(struct machine *m)
{
    const struct machine_config *cfg = &m->cfg;
    struct xendevs *xd = m->xendevs;
    char err[300];
    for (int i = 0; i < cfg->nnetdevs; i++) {
        struct opts o;
        if (opts_parse(&o, "-netdev", cfg->netdevs[i], true))
            return -1;
        for (int k = 0; k < xd->nnetdevs; k++)
            if (!strcmp(netdev_id(xd->netdev[k]), opts_get(&o, "id"))) {
                nestor_log("-netdev id=%s: given twice", opts_get(&o, "id"));
                return -1;
            }
        struct netdev *nd = netdev_create(&o, err, sizeof(err));
        if (!nd) {
            nestor_log("-netdev %s: %s", cfg->netdevs[i], err);
            return -1;
        }
        xd->netdev[xd->nnetdevs++] = nd;
    }
    bool taken[MACHINE_MAX_NETDEVS] = { false };
    u32 next_vif = 0;
    for (int i = 0; i < cfg->ndevices; i++) {
        struct opts o;
        if (opts_parse(&o, "-device", cfg->devices[i], true) || strcmp(o.name, "xen-net-device"))
            continue;
        const char *id = opts_get(&o, "netdev");
        int k;
        for (k = 0; id && k < xd->nnetdevs; k++)
            if (!strcmp(netdev_id(xd->netdev[k]), id))
                break;
        if (!id || k == xd->nnetdevs) {
            nestor_log("-device %s: netdev= names no -netdev", cfg->devices[i]);
            return -1;
        }
        if (taken[k]) {
            nestor_log("-device %s: netdev %s already has a NIC", cfg->devices[i], id);
            return -1;
        }
        taken[k] = true;
        u64 vif = next_vif, queues = m->ncpus < 8 ? (u64)m->ncpus : 8;
        if (opts_num(&o, "vif", 255, &vif) || opts_num(&o, "queues", 8, &queues))
            return -1;
        next_vif = (u32)vif + 1;
        /* Xen's OUI, as libxl makes them, numbered by vif (runs stay alike) */
        struct netback_opts no = { .netdev = xd->netdev[k], .devid = (u32)vif,
                                   .mac = { 0x00, 0x16, 0x3e, 0x5e, 0x00, (u8)vif },
                                   .max_queues = queues ? (u32)queues : 1 };
        const char *mac = opts_get(&o, "mac");
        if (mac && parse_mac(mac, no.mac)) {
            nestor_log("-device %s: mac=%s is not a unicast MAC address", cfg->devices[i], mac);
            return -1;
        }
        struct netback *nb = netback_create(m->xen, m->xenstore, &no, err, sizeof(err));
        if (!nb) {
            nestor_log("xen-net-device vif %llu: %s", (unsigned long long)vif, err);
            return -1;
        }
        xd->nic[xd->nnics++] = nb;
    }
    for (int k = 0; k < xd->nnetdevs; k++)
        if (!taken[k])
            nestor_log("-netdev id=%s: no device uses it", netdev_id(xd->netdev[k]));
    return 0;
}

/* -device xen-disk,drive=D, then -drive if=xen: xvda, xvdb... by index, else in order
 * after the ones taken. The drives are parsed once, in place (an opts list points into
 * itself). */
static int create_disks(struct machine *m, struct drive *drives)
{
    const struct machine_config *cfg = &m->cfg;
    bool used[MACHINE_MAX_DRIVES] = { false };
    for (int k = 0; k < cfg->ndrives; k++)
        if (drive_parse(cfg->drives[k], &drives[k]))
            return -1;
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
        for (k = 0; k < cfg->ndrives; k++)
            if (!drives[k].xen && !strcmp(drives[k].id, id))
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
        if (add_disk(m, &drives[k], vdev, &o))
            return -1;
    }
    u32 taken = 0;
    for (int k = 0; k < cfg->ndrives; k++)
        if (drives[k].xen && opts_get(&drives[k].o, "index"))
            taken |= 1u << drives[k].index;
    for (int k = 0; k < cfg->ndrives; k++) {
        struct drive *d = &drives[k];
        if (!d->xen) {
            if (!used[k])
                nestor_log("-drive id=%s: no device uses it", d->id);
            continue;
        }
        u32 index = (u32)d->index;
        if (!opts_get(&d->o, "index")) {
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
        if (add_disk(m, d, vdev, NULL))
            return -1;
    }
    return 0;
}

int xendev_create(struct machine *m)
{
    if (!(m->xendevs = calloc(1, sizeof(*m->xendevs)))) {
        nestor_log("out of memory");
        return -1;
    }
    struct drive *drives = calloc(MACHINE_MAX_DRIVES, sizeof(*drives));
    if (!drives) {
        nestor_log("out of memory");
        return -1;
    }
    int rc = create_disks(m, drives);
    free(drives);
    return rc ? rc : create_nics(m);
}

void xendev_destroy(struct machine *m)
{
    struct xendevs *xd = m->xendevs;
    if (!xd)
        return;
    for (int i = 0; i < xd->ndisks; i++)
        blkback_destroy(xd->disk[i]);
    for (int i = 0; i < xd->nnics; i++)
        netback_destroy(xd->nic[i]);
    for (int i = 0; i < xd->nnetdevs; i++)
        netdev_destroy(xd->netdev[i]);
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
    for (int i = 0; i < xd->nnics; i++)
        netback_poll(xd->nic[i]);
}

int xendev_pollfds(struct machine *m, struct pollfd *fds, int max, int *timeout_ms)
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
    for (int i = 0; i < xd->nnetdevs; i++) {
        xd->poll_first[i] = n;
        xd->poll_count[i] = netdev_pollfds(xd->netdev[i], fds + n, max - n, timeout_ms);
        n += xd->poll_count[i];
    }
    return n;
}

void xendev_dispatch(struct machine *m, const struct pollfd *fds, int n)
{
    struct xendevs *xd = m->xendevs;
    if (!xd)
        return;
    for (int i = 0; i < xd->nnetdevs; i++) {
        int first = xd->poll_first[i], count = xd->poll_count[i];
        if (first + count > n)
            count = n > first ? n - first : 0;
        netdev_dispatch(xd->netdev[i], fds + first, count);
    }
    xendev_poll(m);
}

bool xendev_can_wake(const struct machine *m)
{
    const struct xendevs *xd = m->xendevs;
    if (!xd)
        return false;
    for (int i = 0; i < xd->ndisks; i++)
        if (blkback_inflight(xd->disk[i]))
            return true;
    return xd->nnetdevs > 0;
}

void xendev_quiesce(struct machine *m)
{
    struct xendevs *xd = m->xendevs;
    for (int i = 0; xd && i < xd->ndisks; i++)
        blkback_quiesce(xd->disk[i]);
}

void xendev_state_register(struct machine *m, struct state_registry *r)
{
    struct xendevs *xd = m->xendevs;
    for (int i = 0; xd && i < xd->ndisks; i++)
        blkback_state_register(xd->disk[i], r, (u32)i);
    for (int i = 0; xd && i < xd->nnics; i++)
        netback_state_register(xd->nic[i], r, (u32)i);
}

/* The XenbusState handshake of a PV device's backend (see xenbus.h). */
#include "dom0/xenbus.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/xenbus.h>

#include "dom0/xenstore.h"

long xenbus_read_frontend(struct xenbus_dev *xd, const char *key, char *buf, size_t cap)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", xd->fe, key);
    return xenstore_read(xd->xs, path, buf, cap);
}

int xenbus_read_frontend_u32(struct xenbus_dev *xd, const char *key, u32 *out)
{
    char buf[24];
    long n = xenbus_read_frontend(xd, key, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || *end || errno || v > 0xffffffffull || buf[0] == '-')
        return -EINVAL;
    *out = (u32)v;
    return 0;
}

int xenbus_write_backend(struct xenbus_dev *xd, const char *key, const char *fmt, ...)
{
    char path[160], value[256];
    snprintf(path, sizeof(path), "%s/%s", xd->be, key);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(value))
        return -E2BIG;
    return xenstore_write(xd->xs, path, value, (size_t)n);
}

void xenbus_switch_state(struct xenbus_dev *xd, int state)
{
    if (xd->state == state)
        return;
    xd->state = state;
    xenbus_write_backend(xd, "state", "%d", state);
}

static void disconnect(struct xenbus_dev *xd)
{
    if (xd->connected) {
        xd->ops->disconnect(xd->dev, xd);
        xd->connected = false;
    }
}

/* The frontend's state changed (or its node went: Unknown): Linux's
 * frontend_changed of its block and network backends */
static void frontend_changed(void *opaque, const char *path)
{
    struct xenbus_dev *xd = opaque;
    (void)path;
    u32 fe = XenbusStateUnknown;
    if (xenbus_read_frontend_u32(xd, "state", &fe))
        fe = XenbusStateUnknown;
    switch (fe) {
    case XenbusStateInitialising:
        /* a frontend starting again after it closed: the backend is ready for it */
        if (xd->state == XenbusStateClosed)
            xenbus_switch_state(xd, XenbusStateInitWait);
        break;
    case XenbusStateInitialised:
    case XenbusStateConnected:
        if (xd->state == XenbusStateConnected || xd->connected)
            break;
        if (xd->state != XenbusStateInitWait) {
            /* connected without a handshake (the backend Closing after an error) */
            break;
        }
        char msg[160] = "";
        int rc = xd->ops->connect(xd->dev, xd, msg, sizeof(msg));
        if (rc) {
            /* xenbus_dev_fatal: the reason in the device's error node, then Closing */
            nestor_log("xen %s %u: cannot connect to the guest's frontend: %s", xd->ops->type,
                       xd->devid, msg);
            char epath[200];
            snprintf(epath, sizeof(epath), "/local/domain/0/error%s/error", xd->be + strlen("/local/domain/0"));
            char value[200];
            int n = snprintf(value, sizeof(value), "%d %s", -rc, msg);
            xenstore_write(xd->xs, epath, value, (size_t)(n < (int)sizeof(value) ? n : (int)sizeof(value) - 1));
            xenbus_switch_state(xd, XenbusStateClosing);
            break;
        }
        xd->connected = true;
        xenbus_switch_state(xd, XenbusStateConnected);
        break;
    case XenbusStateClosing:
        disconnect(xd);
        xenbus_switch_state(xd, XenbusStateClosing);
        break;
    case XenbusStateClosed:
    case XenbusStateUnknown:
        disconnect(xd);
        xenbus_switch_state(xd, XenbusStateClosed);
        break;
    default:
        /* Reconfiguring/Reconfigured are a PV-SCSI and PV-USB business; an invalid
         * value is ignored as Linux's xenbus ignores it */
        break;
    }
}

static int write_keys(struct xenstore *xs, const char *dir, const struct xenbus_key *k, int n)
{
    char path[200];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, k[i].key);
        int rc = xenstore_write(xs, path, k[i].value, strlen(k[i].value));
        if (rc)
            return rc;
    }
    return 0;
}

struct xenbus_dev *xenbus_backend_create(struct xenstore *xs,
                                         const struct xenbus_backend_ops *ops, void *dev,
                                         u32 devid, const struct xenbus_key *fe_keys, int nfe,
                                         const struct xenbus_key *be_keys, int nbe, char *err,
                                         size_t errlen)
{
    struct xenbus_dev *xd = calloc(1, sizeof(*xd));
    if (!xd) {
        nestor_err(err, errlen, "out of memory");
        return NULL;
    }
    xd->xs = xs;
    xd->ops = ops;
    xd->dev = dev;
    xd->devid = devid;
    xd->domid = xenstore_domid(xs);
    xd->watch = -1;
    snprintf(xd->fe, sizeof(xd->fe), "/local/domain/%u/device/%s/%u", xd->domid, ops->type, devid);
    snprintf(xd->be, sizeof(xd->be), "/local/domain/0/backend/%s/%u/%u", ops->type, xd->domid, devid);
    char dom[8], num[16], ro[8], owner[8];
    snprintf(dom, sizeof(dom), "%u", xd->domid);
    snprintf(num, sizeof(num), "%u", devid);
    snprintf(ro, sizeof(ro), "r%u", xd->domid);
    snprintf(owner, sizeof(owner), "n%u", xd->domid);
    /* libxl's device_add: the frontend the domain's (domain 0 reads it), the backend
     * domain 0's (the domain reads it) */
    const char *fe_perms[] = { owner, "r0" }, *be_perms[] = { "n0", ro };
    const struct xenbus_key fe_own[] = {
        { "backend", xd->be }, { "backend-id", "0" }, { "state", "1" },
    };
    const struct xenbus_key be_own[] = {
        { "frontend", xd->fe }, { "frontend-id", dom }, { "online", "1" }, { "state", "1" },
    };
    int rc;
    if ((rc = xenstore_mkdir(xs, xd->be)) || (rc = xenstore_set_perms(xs, xd->be, be_perms, 2)) ||
        (rc = write_keys(xs, xd->be, be_own, (int)ARRAY_SIZE(be_own))) ||
        (rc = write_keys(xs, xd->be, be_keys, nbe)) || (rc = xenstore_mkdir(xs, xd->fe)) ||
        (rc = xenstore_set_perms(xs, xd->fe, fe_perms, 2)) ||
        (rc = write_keys(xs, xd->fe, fe_own, (int)ARRAY_SIZE(fe_own))) ||
        (rc = write_keys(xs, xd->fe, fe_keys, nfe))) {
        nestor_err(err, errlen, "writing the device's xenstore nodes: %s", strerror(-rc));
        free(xd);
        return NULL;
    }
    xd->state = XenbusStateInitialising;
    if ((rc = ops->probe(dev, xd))) {
        nestor_err(err, errlen, "writing the backend's features: %s", strerror(-rc));
        free(xd);
        return NULL;
    }
    xenbus_switch_state(xd, XenbusStateInitWait);
    char state_path[100];
    snprintf(state_path, sizeof(state_path), "%s/state", xd->fe);
    xd->watch = xenstore_watch(xs, state_path, frontend_changed, xd);
    if (xd->watch < 0) {
        nestor_err(err, errlen, "out of memory");
        free(xd);
        return NULL;
    }
    return xd;
}

void xenbus_backend_destroy(struct xenbus_dev *xd)
{
    if (!xd)
        return;
    disconnect(xd);
    if (xd->watch >= 0)
        xenstore_unwatch(xd->xs, xd->watch);
    free(xd);
}

/* The disk number of "a".."z", "aa".. (libxl's bijective base 26); -1 past the name */
static int disk_letters(const char **p)
{
    int n = -1;
    const char *s = *p;
    if (*s < 'a' || *s > 'z')
        return -1;
    while (*s >= 'a' && *s <= 'z') {
        n = (n + 1) * 26 + (*s - 'a');
        if (n > (1 << 20))
            return -1;
        s++;
    }
    *p = s;
    return n;
}

static int partition(const char *s, int limit)
{
    if (!*s)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < 1 || v >= limit || s[0] == '0')
        return -1;
    return (int)v;
}

int xenbus_parse_vdev(const char *name, u32 *devid)
{
    const char *s = name;
    if (*s >= '0' && *s <= '9') {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (*end || errno || v == 0 || v > 0x7fffffff)
            return -1;
        *devid = (u32)v;
        return 0;
    }
    if (!strncmp(s, "xvd", 3)) {
        s += 3;
        int disk = disk_letters(&s);
        int part = disk < 0 ? -1 : partition(s, 256);
        if (disk < 0 || part < 0)
            return -1;
        if (disk < 16 && part < 16)
            *devid = (202u << 8) | ((u32)disk << 4) | (u32)part;
        else if (disk < (1 << 20))
            *devid = (1u << 28) | ((u32)disk << 8) | (u32)part;
        else
            return -1;
        return 0;
    }
    if (!strncmp(s, "hd", 2) || !strncmp(s, "sd", 2)) {
        bool ide = s[0] == 'h';
        s += 2;
        int disk = disk_letters(&s);
        int part = disk < 0 ? -1 : partition(s, ide ? 64 : 16);
        if (disk < 0 || part < 0 || disk >= (ide ? 4 : 16))
            return -1;
        if (ide)
            *devid = ((disk < 2 ? 3u : 22u) << 8) | ((u32)(disk & 1) << 6) | (u32)part;
        else
            *devid = (8u << 8) | ((u32)disk << 4) | (u32)part;
        return 0;
    }
    return -1;
}

/* A PV device's two xenstore directories and the XenbusState handshake between its
 * frontend (in the guest) and its backend (nestor, as domain 0), shared by every backend
 * (block, network): what libxl writes when it adds a device, and what Linux's
 * xenbus_probe_backend and a backend driver's otherend_changed do with the frontend's
 * state (xen/io/xenbus.h).
 *
 *   frontend  /local/domain/D/device/TYPE/ID: backend, backend-id, state, ... (the
 *             domain's own, domain 0 may read)
 *   backend   /local/domain/0/backend/TYPE/D/ID: frontend, frontend-id, online, state,
 *             ... (domain 0's, the domain may read)
 *
 * The backend probes (writes what the frontend reads before it connects) and waits in
 * InitWait; the frontend's Initialised or Connected makes it connect (rings, channels)
 * and go Connected; the frontend's Closing or Closed disconnects it; a frontend that
 * starts again (Initialising after Closed: a driver reloaded, a kexec) finds it in
 * InitWait again. A connect that fails writes the reason to the device's error node
 * and leaves the backend Closing, as xenbus_dev_fatal does. */
#ifndef NESTOR_DOM0_XENBUS_H
#define NESTOR_DOM0_XENBUS_H

#include <stddef.h>

#include "common.h"

struct xenstore;
struct xenbus_dev;

struct xenbus_backend_ops {
    const char *type;   /* "vbd", "vif" */
    /* keys the frontend reads before it connects; 0 or a negative errno */
    int (*probe)(void *dev, struct xenbus_dev *xd);
    /* the frontend has set up its side: 0 (the backend goes Connected), or a negative
     * errno with the reason in msg */
    int (*connect)(void *dev, struct xenbus_dev *xd, char *msg, size_t msglen);
    /* rings and channels go; requests in flight finish first */
    void (*disconnect)(void *dev, struct xenbus_dev *xd);
};

struct xenbus_dev {
    struct xenstore *xs;
    const struct xenbus_backend_ops *ops;
    void *dev;
    u16 domid;
    u32 devid;
    char fe[80], be[80];  /* the two directories */
    int state;            /* the backend's XenbusState */
    int watch;
    bool connected;
};

/* A key and value the toolstack writes into one of the directories */
struct xenbus_key {
    const char *key, *value;
};

/* Writes both directories (the toolstack's keys plus the handshake's own), probes and
 * goes to InitWait; the handshake then follows the frontend's state. NULL with a
 * message if xenstore refuses. */
struct xenbus_dev *xenbus_backend_create(struct xenstore *xs,
                                         const struct xenbus_backend_ops *ops, void *dev,
                                         u32 devid, const struct xenbus_key *fe_keys, int nfe,
                                         const struct xenbus_key *be_keys, int nbe, char *err,
                                         size_t errlen);
void xenbus_backend_destroy(struct xenbus_dev *xd);

/* The frontend's keys, relative to its directory: the value into buf (NUL-terminated),
 * its length or a negative errno; a number (decimal, as xenbus_scanf reads it) */
long xenbus_read_frontend(struct xenbus_dev *xd, const char *key, char *buf, size_t cap);
int xenbus_read_frontend_u32(struct xenbus_dev *xd, const char *key, u32 *out);
/* A key of the backend's directory */
int xenbus_write_backend(struct xenbus_dev *xd, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The backend's state changes (written to its state node) */
void xenbus_switch_state(struct xenbus_dev *xd, int state);

/* A virtual-device name as libxl parses it: xvdX[N] (major 202, or the extended form
 * beyond xvdp), hdX, sdX, or a number. 0, or -1 if it is none of those. */
int xenbus_parse_vdev(const char *name, u32 *devid);

#endif

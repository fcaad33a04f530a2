/* The host's end of a guest network: libslirp or a TAP interface (see netdev.h). */
#include "dom0/netdev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <slirp/libslirp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "machine/opts.h"

enum netdev_type { NETDEV_USER, NETDEV_TAP, NETDEV_PEER };

struct slirp_timer {
    SlirpTimerCb cb;
    void *cb_opaque;
    s64 expire_ms;      /* -1: not armed */
    bool used;
};

struct netdev {
    enum netdev_type type;
    char id[64];
    netdev_rx_fn rx;
    void *rx_opaque;
    /* user */
    Slirp *slirp;
    struct slirp_timer *timers;
    int ntimers;
    struct pollfd *fill;    /* the array slirp_pollfds_fill is filling */
    int nfill, maxfill;
    const struct pollfd *polled;
    int npolled;
    /* tap */
    int tap_fd;
    /* peer */
    void (*peer_send)(void *opaque, const u8 *frame, size_t len);
    void *peer_opaque;
};

const char *netdev_id(const struct netdev *nd)
{
    return nd->id;
}

void netdev_set_receiver(struct netdev *nd, netdev_rx_fn rx, void *opaque)
{
    nd->rx = rx;
    nd->rx_opaque = opaque;
}

/* ---- libslirp's callbacks ---- */
static s64 host_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (s64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ssize_t slirp_send_packet(const void *buf, size_t len, void *opaque)
{
    struct netdev *nd = opaque;
    if (nd->rx)
        nd->rx(nd->rx_opaque, buf, len);
    return (ssize_t)len;
}

static void slirp_guest_error(const char *msg, void *opaque)
{
    struct netdev *nd = opaque;
    nestor_log("-netdev user,id=%s: the guest's packet: %s", nd->id, msg);
}

static int64_t slirp_clock_ns(void *opaque)
{
    (void)opaque;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *slirp_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
    struct netdev *nd = opaque;
    for (int i = 0; i < nd->ntimers; i++)
        if (!nd->timers[i].used) {
            nd->timers[i] = (struct slirp_timer){ cb, cb_opaque, -1, true };
            return (void *)(uintptr_t)(i + 1);
        }
    struct slirp_timer *t = realloc(nd->timers, sizeof(*t) * (size_t)(nd->ntimers + 1));
    if (!t)
        return NULL;
    nd->timers = t;
    nd->timers[nd->ntimers++] = (struct slirp_timer){ cb, cb_opaque, -1, true };
    return (void *)(uintptr_t)nd->ntimers;
}

static struct slirp_timer *timer_of(struct netdev *nd, void *timer)
{
    uintptr_t i = (uintptr_t)timer;
    return i >= 1 && i <= (uintptr_t)nd->ntimers ? &nd->timers[i - 1] : NULL;
}

static void slirp_timer_free(void *timer, void *opaque)
{
    struct slirp_timer *t = timer_of(opaque, timer);
    if (t)
        t->used = false;
}

static void slirp_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
    struct slirp_timer *t = timer_of(opaque, timer);
    if (t)
        t->expire_ms = expire_ms;
}

static void slirp_no_fd(int fd, void *opaque) { (void)fd, (void)opaque; }
static void slirp_notify(void *opaque) { (void)opaque; }

static const SlirpCb slirp_callbacks = {
    .send_packet = slirp_send_packet, .guest_error = slirp_guest_error,
    .clock_get_ns = slirp_clock_ns, .timer_new = slirp_timer_new,
    .timer_free = slirp_timer_free, .timer_mod = slirp_timer_mod,
    .register_poll_fd = slirp_no_fd, .unregister_poll_fd = slirp_no_fd,
    .notify = slirp_notify,
};

/* hostfwd=PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, as QEMU spells it */
static int add_hostfwd(struct netdev *nd, const char *spec, char *err, size_t errlen)
{
    char buf[128], haddr[64] = "", gaddr[64] = "";
    unsigned hport, gport;
    if (strlen(spec) >= sizeof(buf))
        return nestor_err(err, errlen, "hostfwd=%s: too long", spec);
    strcpy(buf, spec);
    char *colon = strchr(buf, ':');
    if (!colon)
        return nestor_err(err, errlen, "hostfwd=%s: tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", spec);
    *colon = 0;
    bool udp = !strcmp(buf, "udp");
    if (!udp && strcmp(buf, "tcp"))
        return nestor_err(err, errlen, "hostfwd=%s: tcp or udp", spec);
    char *host = colon + 1, *dash = strchr(host, '-');
    if (!dash)
        return nestor_err(err, errlen, "hostfwd=%s: no '-' between the host and the guest side", spec);
    *dash = 0;
    char *guest = dash + 1;
    char *hc = strrchr(host, ':'), *gc = strrchr(guest, ':');
    char *end;
    if (!hc || !gc)
        return nestor_err(err, errlen, "hostfwd=%s: ADDR:PORT on both sides (ADDR may be empty)", spec);
    *hc = 0;
    *gc = 0;
    snprintf(haddr, sizeof(haddr), "%s", host);
    snprintf(gaddr, sizeof(gaddr), "%s", guest);
    hport = (unsigned)strtoul(hc + 1, &end, 10);
    if (*end || hc[1] == 0 || hport > 65535)
        return nestor_err(err, errlen, "hostfwd=%s: bad host port", spec);
    gport = (unsigned)strtoul(gc + 1, &end, 10);
    if (*end || gc[1] == 0 || gport == 0 || gport > 65535)
        return nestor_err(err, errlen, "hostfwd=%s: bad guest port", spec);
    struct in_addr ha = { INADDR_ANY }, ga = { 0 };
    if (*haddr && !inet_aton(haddr, &ha))
        return nestor_err(err, errlen, "hostfwd=%s: bad host address", spec);
    if (*gaddr && !inet_aton(gaddr, &ga))
        return nestor_err(err, errlen, "hostfwd=%s: bad guest address", spec);
    if (slirp_add_hostfwd(nd->slirp, udp, ha, (int)hport, ga, (int)gport) < 0)
        return nestor_err(err, errlen, "hostfwd=%s: cannot listen on the host port (%s)", spec,
                          strerror(errno ? errno : EADDRINUSE));
    return 0;
}

static int create_user(struct netdev *nd, const struct opts *o, char *err, size_t errlen)
{
    static const char *const known[] = { "hostfwd", "restrict", NULL };
    if (opts_check_known(o, known))
        return nestor_err(err, errlen, "see above");
    bool restricted = false;
    if (opts_bool(o, "restrict", &restricted))
        return nestor_err(err, errlen, "see above");
    SlirpConfig cfg = { .version = 4, .restricted = restricted, .in_enabled = true };
    /* QEMU's defaults: 10.0.2.0/24, the host at .2, DNS at .3, DHCP from .15; IPv6
     * fec0::/64 with the host at ::2 and DNS at ::3 */
    inet_aton("10.0.2.0", &cfg.vnetwork);
    inet_aton("255.255.255.0", &cfg.vnetmask);
    inet_aton("10.0.2.2", &cfg.vhost);
    inet_aton("10.0.2.15", &cfg.vdhcp_start);
    inet_aton("10.0.2.3", &cfg.vnameserver);
    cfg.in6_enabled = true;
    inet_pton(AF_INET6, "fec0::", &cfg.vprefix_addr6);
    cfg.vprefix_len = 64;
    inet_pton(AF_INET6, "fec0::2", &cfg.vhost6);
    inet_pton(AF_INET6, "fec0::3", &cfg.vnameserver6);
    nd->slirp = slirp_new(&cfg, &slirp_callbacks, nd);
    if (!nd->slirp)
        return nestor_err(err, errlen, "libslirp refused its configuration");
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->key[i], "hostfwd") && add_hostfwd(nd, o->value[i], err, errlen))
            return -1;
    return 0;
}

static int create_tap(struct netdev *nd, const struct opts *o, char *err, size_t errlen)
{
    static const char *const known[] = { "ifname", "script", "downscript", NULL };
    if (opts_check_known(o, known))
        return nestor_err(err, errlen, "see above");
    const char *ifname = opts_get(o, "ifname");
    const char *script = opts_get(o, "script"), *down = opts_get(o, "downscript");
    if ((script && strcmp(script, "no")) || (down && strcmp(down, "no")))
        return nestor_err(err, errlen, "nestor runs no network scripts: script=no,downscript=no");
    if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ)
        return nestor_err(err, errlen, "ifname= names the TAP interface (at most %d characters)", IFNAMSIZ - 1);
    nd->tap_fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (nd->tap_fd < 0)
        return nestor_err(err, errlen, "cannot open /dev/net/tun: %s", strerror(errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    if (ioctl(nd->tap_fd, TUNSETIFF, &ifr) < 0)
        return nestor_err(err, errlen, "TAP interface %s: %s", ifname, strerror(errno));
    return 0;
}

struct netdev *netdev_create(const struct opts *o, char *err, size_t errlen)
{
    const char *id = opts_get(o, "id");
    if (!id || !*id) {
        nestor_err(err, errlen, "-netdev %s needs an id=", o->name);
        return NULL;
    }
    struct netdev *nd = calloc(1, sizeof(*nd));
    if (!nd) {
        nestor_err(err, errlen, "out of memory");
        return NULL;
    }
    nd->tap_fd = -1;
    snprintf(nd->id, sizeof(nd->id), "%s", id);
    int rc;
    if (!strcmp(o->name, "user")) {
        nd->type = NETDEV_USER;
        rc = create_user(nd, o, err, errlen);
    } else if (!strcmp(o->name, "tap")) {
        nd->type = NETDEV_TAP;
        rc = create_tap(nd, o, err, errlen);
    } else {
        rc = nestor_err(err, errlen, "-netdev %s: nestor has user and tap", o->name);
    }
    if (rc) {
        netdev_destroy(nd);
        return NULL;
    }
    return nd;
}

struct netdev *netdev_create_peer(const char *id, void (*send)(void *opaque, const u8 *frame, size_t len),
                                  void *opaque)
{
    struct netdev *nd = calloc(1, sizeof(*nd));
    if (!nd)
        return NULL;
    nd->type = NETDEV_PEER;
    nd->tap_fd = -1;
    snprintf(nd->id, sizeof(nd->id), "%s", id);
    nd->peer_send = send;
    nd->peer_opaque = opaque;
    return nd;
}

void netdev_deliver(struct netdev *nd, const u8 *frame, size_t len)
{
    if (nd->rx)
        nd->rx(nd->rx_opaque, frame, len);
}

void netdev_destroy(struct netdev *nd)
{
    if (!nd)
        return;
    if (nd->slirp)
        slirp_cleanup(nd->slirp);
    if (nd->tap_fd >= 0)
        close(nd->tap_fd);
    free(nd->timers);
    free(nd);
}

void netdev_send(struct netdev *nd, const u8 *frame, size_t len)
{
    if (nd->type == NETDEV_PEER) {
        nd->peer_send(nd->peer_opaque, frame, len);
    } else if (nd->type == NETDEV_USER) {
        slirp_input(nd->slirp, frame, (int)len);
    } else if (write(nd->tap_fd, frame, len) < 0 && errno != EAGAIN) {
        /* a frame the host's interface refuses is lost, as on a wire */
    }
}

/* ---- polling ---- */
static int slirp_add_poll(int fd, int events, void *opaque)
{
    struct netdev *nd = opaque;
    if (nd->nfill == nd->maxfill)
        return -1; /* no room this time: slirp leaves the socket for the next poll */
    short ev = 0;
    if (events & SLIRP_POLL_IN)
        ev |= POLLIN;
    if (events & SLIRP_POLL_OUT)
        ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI)
        ev |= POLLPRI;
    nd->fill[nd->nfill] = (struct pollfd){ fd, ev, 0 };
    return nd->nfill++;
}

static int slirp_get_revents(int idx, void *opaque)
{
    struct netdev *nd = opaque;
    if (idx < 0 || idx >= nd->npolled)
        return 0;
    short r = nd->polled[idx].revents;
    int ev = 0;
    if (r & POLLIN)
        ev |= SLIRP_POLL_IN;
    if (r & POLLOUT)
        ev |= SLIRP_POLL_OUT;
    if (r & POLLPRI)
        ev |= SLIRP_POLL_PRI;
    if (r & (POLLERR | POLLNVAL))
        ev |= SLIRP_POLL_ERR;
    if (r & POLLHUP)
        ev |= SLIRP_POLL_HUP;
    return ev;
}

int netdev_pollfds(struct netdev *nd, struct pollfd *fds, int max, int *timeout_ms)
{
    if (nd->type == NETDEV_PEER)
        return 0;
    if (nd->type == NETDEV_TAP) {
        if (max < 1)
            return 0;
        fds[0] = (struct pollfd){ nd->tap_fd, POLLIN, 0 };
        return 1;
    }
    nd->fill = fds;
    nd->nfill = 0;
    nd->maxfill = max;
    uint32_t to = *timeout_ms < 0 ? UINT32_MAX : (uint32_t)*timeout_ms;
    slirp_pollfds_fill(nd->slirp, &to, slirp_add_poll, nd);
    s64 now = host_ms();
    for (int i = 0; i < nd->ntimers; i++)
        if (nd->timers[i].used && nd->timers[i].expire_ms >= 0) {
            s64 left = nd->timers[i].expire_ms - now;
            if (left < 0)
                left = 0;
            if ((u64)left < to)
                to = (uint32_t)left;
        }
    if (to != UINT32_MAX && (*timeout_ms < 0 || (s64)to < *timeout_ms))
        *timeout_ms = (int)(to > 0x7fffffff ? 0x7fffffff : to);
    return nd->nfill;
}

void netdev_dispatch(struct netdev *nd, const struct pollfd *fds, int n)
{
    if (nd->type == NETDEV_PEER)
        return;
    if (nd->type == NETDEV_TAP) {
        if (n < 1 || !(fds[0].revents & POLLIN))
            return;
        static u8 frame[65536 + 64];
        for (int i = 0; i < 64; i++) {
            ssize_t r = read(nd->tap_fd, frame, sizeof(frame));
            if (r <= 0)
                break;
            if (nd->rx)
                nd->rx(nd->rx_opaque, frame, (size_t)r);
        }
        return;
    }
    s64 now = host_ms();
    for (int i = 0; i < nd->ntimers; i++) {
        struct slirp_timer *t = &nd->timers[i];
        if (t->used && t->expire_ms >= 0 && t->expire_ms <= now) {
            /* the callback may make timers (the array moves) */
            SlirpTimerCb cb = t->cb;
            void *arg = t->cb_opaque;
            t->expire_ms = -1;
            cb(arg);
        }
    }
    nd->polled = fds;
    nd->npolled = n;
    slirp_pollfds_poll(nd->slirp, 0, slirp_get_revents, nd);
    nd->polled = NULL;
    nd->npolled = 0;
}

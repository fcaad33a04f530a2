/* The synthetic debugger (TLFS' debugging interface, as KDNET uses it on Hyper-V): a
 * channel between the guest's kernel debugger and a debugger on the host, bridged to a
 * UDP peer as QEMU's hv-syndbg device does.
 *
 * - MSR mode: the guest names a send, a receive and a pending page (SYNDBG_SEND_BUFFER,
 *   RECV_BUFFER, PENDING_BUFFER); a write of SYNDBG_CONTROL sends (bit 0, the size in bits
 *   31:16) or receives (bit 1); SYNDBG_STATUS tells the outcome (bit 0 sent, bit 2
 *   received with the size in 31:16). The pending page's first byte is 1 while data from
 *   the host waits. Payloads are the UDP payloads, unchanged.
 * - Hypercall mode (SYNDBG_OPTIONS bit 2, which the host sets for use_hcalls=on):
 *   HvPostDebugData takes an Ethernet/IPv4/UDP frame and sends its UDP payload;
 *   HvRetrieveDebugData gives what the host sent as such a frame, addressed from the host
 *   to the guest's last source address; HvResetDebugSession names both ends. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hv/hyperv/hyperv_internal.h"

#define SYNDBG_CONTROL_SEND BIT(0)
#define SYNDBG_CONTROL_RECV BIT(1)
#define SYNDBG_STATUS_SEND_SUCCESS BIT(0)
#define SYNDBG_STATUS_RECV_SUCCESS BIT(2)
#define SYNDBG_OPTION_USE_HCALLS BIT(2)
#define SYNDBG_DEFAULT_PORT 50000
#define SYNDBG_PAGE 4096u
/* Ethernet + IPv4 (no options) + UDP headers of the hypercall mode's frames */
#define ETH_HLEN 14u
#define IP_HLEN 20u
#define UDP_HLEN 8u
#define FRAME_HLEN (ETH_HLEN + IP_HLEN + UDP_HLEN)
/* how often the pending page is brought up to date, in virtual time */
#define SYNDBG_POLL_NS 1000000ull


int hyperv_parse_syndbg_device(struct hyperv_config *cfg, const char *props, char *err, size_t errlen)
{
    struct hyperv_syndbg_config *d = &cfg->syndbg;
    *d = (struct hyperv_syndbg_config){ .enabled = true, .host_port = SYNDBG_DEFAULT_PORT };
    strcpy(d->host_ip, "127.0.0.1");
    char buf[256];
    if (!props)
        props = "";
    if (strlen(props) >= sizeof(buf)) {
        snprintf(err, errlen, "hv-syndbg: the properties are too long");
        return -1;
    }
    strcpy(buf, props);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        const char *v = eq ? eq + 1 : "";
        if (eq)
            *eq = 0;
        if (!strcmp(t, "host_ip")) {
            if (!*v || strlen(v) >= sizeof(d->host_ip))
                goto bad;
            strcpy(d->host_ip, v);
        } else if (!strcmp(t, "host_port")) {
            char *end;
            unsigned long p = strtoul(v, &end, 0);
            if (!*v || *end || p == 0 || p > 65535)
                goto bad;
            d->host_port = (u16)p;
        } else if (!strcmp(t, "use_hcalls")) {
            if (!strcmp(v, "on") || !strcmp(v, "true"))
                d->use_hcalls = true;
            else if (!strcmp(v, "off") || !strcmp(v, "false"))
                d->use_hcalls = false;
            else
                goto bad;
        } else {
            snprintf(err, errlen, "hv-syndbg: unknown property '%s' (host_ip, host_port, use_hcalls)", t);
            return -1;
        }
        continue;
bad:
        snprintf(err, errlen, "hv-syndbg: bad value for %s: '%s'", t, v);
        return -1;
    }
    return 0;
}

static bool syndbg_data_waiting(const struct hv_syndbg *d)
{
    struct pollfd p = { .fd = d->fd, .events = POLLIN };
    return d->fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* The pending page's byte: 1 while data from the host waits */
static void syndbg_update_pending(struct hyperv *hv)
{
    struct hv_syndbg *d = hv->syndbg;
    if (!d->pending_gpa)
        return;
    u8 v = syndbg_data_waiting(d);
    mem_write(hv->host.cpus[0]->mem, d->pending_gpa, &v, 1);
}

static void syndbg_poll(void *arg, u64 now_ns)
{
    struct hyperv *hv = arg;
    syndbg_update_pending(hv);
    if (hv->syndbg->pending_gpa)
        hv->host.ops->timer_arm(hv->host.opaque, hv->syndbg->timer, now_ns + SYNDBG_POLL_NS);
}

int hv_syndbg_create(struct hyperv *hv)
{
    struct hv_syndbg *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    hv->syndbg = d;
    d->fd = -1;
    d->timer = hv->host.ops->timer_new(hv->host.opaque, syndbg_poll, hv);
    if (d->timer < 0)
        return -1;
    const struct hyperv_syndbg_config *cfg = &hv->cfg.syndbg;
    if (!cfg->enabled)
        return 0;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM }, *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", cfg->host_port);
    if (getaddrinfo(cfg->host_ip, port, &hints, &res) || !res) {
        nestor_log("hv-syndbg: cannot resolve host_ip=%s", cfg->host_ip);
        return -1;
    }
    d->host_ip = ntohl(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr);
    d->host_port = cfg->host_port;
    d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->fd < 0 || connect(d->fd, res->ai_addr, res->ai_addrlen)) {
        nestor_log("hv-syndbg: cannot reach %s:%u: %s", cfg->host_ip, cfg->host_port, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    d->target_ip = d->host_ip;
    return 0;
}

void hv_syndbg_reset(struct hyperv *hv)
{
    struct hv_syndbg *d = hv->syndbg;
    d->control = d->status = d->send_gpa = d->recv_gpa = d->pending_gpa = 0;
    d->options = hv->cfg.syndbg.use_hcalls ? SYNDBG_OPTION_USE_HCALLS : 0;
    hv->host.ops->timer_disarm(hv->host.opaque, d->timer);
}

void hv_syndbg_destroy(struct hyperv *hv)
{
    struct hv_syndbg *d = hv->syndbg;
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    free(d);
    hv->syndbg = NULL;
}

/* ---- MSR mode ---- */
static void syndbg_control(struct hyperv *hv, struct cpu *c, u64 control)
{
    struct hv_syndbg *d = hv->syndbg;
    u8 buf[SYNDBG_PAGE];
    d->status = 0;
    if (d->fd < 0)
        return;
    if (control & SYNDBG_CONTROL_SEND) {
        u32 len = (u32)(control >> 16) & 0xffff;
        if (len <= SYNDBG_PAGE && !mem_read(c->mem, d->send_gpa, buf, len) &&
            send(d->fd, buf, len, 0) == (ssize_t)len)
            d->status = SYNDBG_STATUS_SEND_SUCCESS;
    } else if (control & SYNDBG_CONTROL_RECV) {
        ssize_t n = recv(d->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n >= 0 && !mem_write(c->mem, d->recv_gpa, buf, (u64)n))
            d->status = SYNDBG_STATUS_RECV_SUCCESS | ((u64)n << 16);
        syndbg_update_pending(hv);
    }
}

bool hv_syndbg_msr_read(struct hyperv *hv, struct cpu *c, u32 index, u64 *value)
{
    (void)c;
    struct hv_syndbg *d = hv->syndbg;
    switch (index) {
    case HV_MSR_SYNDBG_CONTROL: *value = d->control; return true;
    case HV_MSR_SYNDBG_STATUS: *value = d->status; return true;
    case HV_MSR_SYNDBG_SEND_BUFFER: *value = d->send_gpa; return true;
    case HV_MSR_SYNDBG_RECV_BUFFER: *value = d->recv_gpa; return true;
    case HV_MSR_SYNDBG_PENDING_BUFFER: *value = d->pending_gpa; return true;
    case HV_MSR_SYNDBG_OPTIONS: *value = d->options; return true;
    default: return false;
    }
}

bool hv_syndbg_msr_write(struct hyperv *hv, struct cpu *c, u32 index, u64 value)
{
    struct hv_syndbg *d = hv->syndbg;
    switch (index) {
    case HV_MSR_SYNDBG_CONTROL:
        d->control = value;
        syndbg_control(hv, c, value);
        return true;
    case HV_MSR_SYNDBG_STATUS: d->status = value; return true;
    case HV_MSR_SYNDBG_SEND_BUFFER: d->send_gpa = value; return true;
    case HV_MSR_SYNDBG_RECV_BUFFER: d->recv_gpa = value; return true;
    case HV_MSR_SYNDBG_PENDING_BUFFER:
        d->pending_gpa = value;
        syndbg_update_pending(hv);
        if (value)
            syndbg_poll(hv, hv->host.ops->now_ns(hv->host.opaque));
        else
            hv->host.ops->timer_disarm(hv->host.opaque, d->timer);
        return true;
    case HV_MSR_SYNDBG_OPTIONS: d->options = value; return true;
    default: return false;
    }
}

/* ---- hypercall mode ---- */
static u16 get16be(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 get32be(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static void put16be(u8 *p, u32 v) { p[0] = (u8)(v >> 8), p[1] = (u8)v; }
static void put32be(u8 *p, u32 v) { put16be(p, v >> 16), put16be(p + 2, v); }

static u16 ip_checksum(const u8 *p, u32 len)
{
    u32 sum = 0;
    for (u32 i = 0; i + 1 < len; i += 2)
        sum += get16be(p + i);
    if (len & 1)
        sum += (u32)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (u16)~sum;
}

static u16 syndbg_post(struct hyperv *hv, struct cpu *c, u64 in_gpa, u64 out_gpa)
{
    struct hv_syndbg *d = hv->syndbg;
    u8 in[SYNDBG_PAGE];
    u32 count;
    if (mem_read(c->mem, in_gpa, &count, 4))
        return HV_STATUS_INSUFFICIENT_MEMORY; /* as QEMU: a buffer it cannot map */
    if (count > SYNDBG_PAGE - 8)
        return HV_STATUS_INVALID_PARAMETER;
    if (mem_read(c->mem, in_gpa + 8, in, count))
        return HV_STATUS_INSUFFICIENT_MEMORY; /* as QEMU: a buffer it cannot map */
    /* an Ethernet frame with IPv4 and UDP; anything else is not for the debugger */
    u32 pending = 0;
    if (count >= FRAME_HLEN && get16be(in + 12) == 0x0800 && (in[ETH_HLEN] >> 4) == 4 &&
        in[ETH_HLEN + 9] == 17) {
        u32 ihl = (in[ETH_HLEN] & 0xfu) * 4;
        if (ihl >= IP_HLEN && ETH_HLEN + ihl + UDP_HLEN <= count) {
            d->target_ip = get32be(in + ETH_HLEN + 12);
            u32 off = ETH_HLEN + ihl + UDP_HLEN;
            if (send(d->fd, in + off, count - off, 0) != (ssize_t)(count - off))
                pending = count - off;
        }
    }
    if (mem_write(c->mem, out_gpa, &pending, 4))
        return HV_STATUS_INSUFFICIENT_MEMORY; /* as QEMU: a buffer it cannot map */
    return pending ? HV_STATUS_INSUFFICIENT_BUFFERS : HV_STATUS_SUCCESS;
}

static u16 syndbg_retrieve(struct hyperv *hv, struct cpu *c, u64 in_gpa, u64 out_gpa)
{
    struct hv_syndbg *d = hv->syndbg;
    u32 count;
    if (mem_read(c->mem, in_gpa, &count, 4))
        return HV_STATUS_INSUFFICIENT_MEMORY; /* as QEMU: a buffer it cannot map */
    u32 out_hdr[2] = { 0, count };
    u8 frame[SYNDBG_PAGE];
    u32 room = count < SYNDBG_PAGE - 8 ? count : SYNDBG_PAGE - 8;
    if (!syndbg_data_waiting(d) || room < FRAME_HLEN) {
        if (mem_write(c->mem, out_gpa, out_hdr, 8))
            return HV_STATUS_INSUFFICIENT_MEMORY; /* as QEMU: a buffer it cannot map */
        return HV_STATUS_NO_DATA;
    }
    ssize_t n = recv(d->fd, frame + FRAME_HLEN, room - FRAME_HLEN, MSG_DONTWAIT);
    if (n < 0)
        return HV_STATUS_INVALID_PARAMETER;
    /* Ethernet (addresses 0), IPv4 from the host to the guest, UDP port to port */
    memset(frame, 0, FRAME_HLEN);
    put16be(frame + 12, 0x0800);
    u8 *ip = frame + ETH_HLEN, *udp = ip + IP_HLEN;
    u32 udp_len = UDP_HLEN + (u32)n;
    ip[0] = 0x45, ip[8] = 64, ip[9] = 17;
    put16be(ip + 2, IP_HLEN + udp_len);
    put32be(ip + 12, d->host_ip);
    put32be(ip + 16, d->target_ip);
    put16be(ip + 10, ip_checksum(ip, IP_HLEN));
    put16be(udp, d->host_port);
    put16be(udp + 2, d->host_port);
    put16be(udp + 4, udp_len);
    /* the UDP checksum over the pseudo-header and the datagram */
    u8 pseudo[SYNDBG_PAGE + 12];
    memcpy(pseudo, ip + 12, 8);
    pseudo[8] = 0, pseudo[9] = 17;
    put16be(pseudo + 10, udp_len);
    memcpy(pseudo + 12, udp, udp_len);
    u16 sum = ip_checksum(pseudo, 12 + udp_len);
    put16be(udp + 6, sum ? sum : 0xffff);
    u32 total = FRAME_HLEN + (u32)n;
    out_hdr[0] = total;
    out_hdr[1] = count - total;
    if (mem_write(c->mem, out_gpa, out_hdr, 8) || mem_write(c->mem, out_gpa + 8, frame, total))
        return HV_STATUS_INSUFFICIENT_MEMORY; /* as QEMU: a buffer it cannot map */
    syndbg_update_pending(hv);
    return HV_STATUS_SUCCESS;
}

static u16 syndbg_reset_session(struct hyperv *hv, struct cpu *c, u64 out_gpa)
{
    struct hv_syndbg *d = hv->syndbg;
    u8 out[28] = { 0 };
    memcpy(out, &d->host_ip, 4);
    memcpy(out + 4, &d->host_ip, 4);
    memcpy(out + 8, &d->host_port, 2);
    memcpy(out + 10, &d->host_port, 2);
    if (mem_write(c->mem, out_gpa, out, sizeof(out)))
        return HV_STATUS_INSUFFICIENT_MEMORY; /* as QEMU: a buffer it cannot map */
    return HV_STATUS_SUCCESS;
}

u16 hv_syndbg_hcall(struct hyperv *hv, struct cpu *c, u16 code, u64 in_gpa, u64 out_gpa)
{
    struct hv_syndbg *d = hv->syndbg;
    if (!(d->options & SYNDBG_OPTION_USE_HCALLS))
        return HV_STATUS_OPERATION_DENIED;
    if (d->fd < 0)
        return HV_STATUS_INVALID_HYPERCALL_CODE; /* no host end: as QEMU without the device */
    switch (code) {
    case HVCALL_POST_DEBUG_DATA: return syndbg_post(hv, c, in_gpa, out_gpa);
    case HVCALL_RETRIEVE_DEBUG_DATA: return syndbg_retrieve(hv, c, in_gpa, out_gpa);
    default: return syndbg_reset_session(hv, c, out_gpa);
    }
}

/* Checksum completion and TCP segmentation for frames from a PV network frontend (see
 * netpkt.h). */
#include "dom0/netpkt.h"

#include <stdlib.h>
#include <string.h>

#define ETH_P_IP 0x0800u
#define ETH_P_IPV6 0x86ddu
#define ETH_P_8021Q 0x8100u
#define PROTO_TCP 6u
#define PROTO_UDP 17u

static u16 be16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static void put_be16(u8 *p, u16 v) { p[0] = (u8)(v >> 8); p[1] = (u8)v; }
static void put_be32(u8 *p, u32 v) { p[0] = (u8)(v >> 24); p[1] = (u8)(v >> 16); p[2] = (u8)(v >> 8); p[3] = (u8)v; }

u32 netpkt_sum(const u8 *p, size_t len, u32 sum)
{
    u64 s = sum;
    for (; len >= 2; p += 2, len -= 2)
        s += (u32)(p[0] << 8 | p[1]);
    if (len)
        s += (u32)p[0] << 8;
    while (s >> 32)
        s = (s & 0xffffffffu) + (s >> 32);
    return (u32)s;
}

u16 netpkt_fold(u32 sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (u16)sum;
}

/* The end of the IP packet (a frame may carry padding after it) */
static u32 ip_end(const u8 *f, const struct netpkt_layout *l)
{
    return l->ipv6 ? l->l3 + 40 + be16(f + l->l3 + 4) : l->l3 + be16(f + l->l3 + 2);
}

int netpkt_parse(const u8 *f, size_t len, struct netpkt_layout *l)
{
    memset(l, 0, sizeof(*l));
    if (len < NETPKT_ETH_HLEN)
        return -1;
    u32 l3 = NETPKT_ETH_HLEN;
    u16 type = be16(f + 12);
    if (type == ETH_P_8021Q) {
        if (len < l3 + 4)
            return -1;
        type = be16(f + 16);
        l3 += 4;
    }
    l->l3 = l3;
    if (type == ETH_P_IP) {
        if (len < l3 + 20 || f[l3] >> 4 != 4)
            return -1;
        u32 ihl = (f[l3] & 15u) * 4, tot = be16(f + l3 + 2);
        if (ihl < 20 || tot < ihl || l3 + tot > len)
            return -1;
        if (be16(f + l3 + 6) & 0x3fff)
            return -1; /* a fragment: no whole TCP/UDP header to speak of */
        l->proto = f[l3 + 9];
        l->l4 = l3 + ihl;
    } else if (type == ETH_P_IPV6) {
        if (len < l3 + 40 || f[l3] >> 4 != 6 || l3 + 40 + be16(f + l3 + 4) > len)
            return -1;
        l->ipv6 = true;
        l->proto = f[l3 + 6];
        l->l4 = l3 + 40;
    } else {
        return -1;
    }
    u32 end = ip_end(f, l);
    if (l->proto == PROTO_TCP) {
        if (l->l4 + 20 > end)
            return -1;
        l->l4_hlen = (f[l->l4 + 12] >> 4) * 4u;
        if (l->l4_hlen < 20 || l->l4 + l->l4_hlen > end)
            return -1;
    } else if (l->proto == PROTO_UDP) {
        if (l->l4 + 8 > end)
            return -1;
        l->l4_hlen = 8;
    } else {
        return -1;
    }
    return 0;
}

int netpkt_checksum_complete(u8 *f, size_t len)
{
    struct netpkt_layout l;
    if (netpkt_parse(f, len, &l))
        return -1;
    u32 end = ip_end(f, &l), field = l.l4 + (l.proto == PROTO_TCP ? 16 : 6);
    u16 csum = (u16)~netpkt_fold(netpkt_sum(f + l.l4, end - l.l4, 0));
    if (l.proto == PROTO_UDP && csum == 0)
        csum = 0xffff; /* UDP's "no checksum" is 0: a computed 0 is sent as all ones */
    put_be16(f + field, csum);
    return 0;
}

/* The TCP/UDP pseudo header's sum for l4len bytes */
static u32 pseudo_sum(const u8 *f, const struct netpkt_layout *l, u32 l4len)
{
    u8 tail[8];
    u32 s;
    if (l->ipv6) {
        s = netpkt_sum(f + l->l3 + 8, 32, 0); /* source and destination */
        put_be32(tail, l4len);
        put_be32(tail + 4, l->proto);
    } else {
        s = netpkt_sum(f + l->l3 + 12, 8, 0);
        put_be16(tail, l->proto);
        put_be16(tail + 2, (u16)l4len);
        memset(tail + 4, 0, 4);
    }
    return netpkt_sum(tail, 8, s);
}

#define TCP_FIN 0x01u
#define TCP_PSH 0x08u
#define TCP_CWR 0x80u

int netpkt_segment(const u8 *f, size_t len, u32 mss,
                   void (*emit)(void *opaque, const u8 *frame, size_t len), void *opaque)
{
    struct netpkt_layout l;
    if (netpkt_parse(f, len, &l) || l.proto != PROTO_TCP || mss == 0)
        return -1;
    u32 hl = l.l4 + l.l4_hlen, end = ip_end(f, &l), payload = end - hl;
    if (mss > 65535)
        mss = 65535;
    u8 *out = malloc(hl + (payload < mss ? payload : mss));
    if (!out)
        return -1;
    u32 seq = be32(f + l.l4 + 4);
    u16 id = l.ipv6 ? 0 : be16(f + l.l3 + 4);
    u8 flags = f[l.l4 + 13];
    u32 off = 0, n = 0;
    do {
        u32 chunk = payload - off < mss ? payload - off : mss;
        bool first = off == 0, last = off + chunk == payload;
        memcpy(out, f, hl);
        memcpy(out + hl, f + hl + off, chunk);
        u32 l4len = l.l4_hlen + chunk;
        if (l.ipv6) {
            put_be16(out + l.l3 + 4, (u16)l4len);
        } else {
            u32 ihl = l.l4 - l.l3;
            put_be16(out + l.l3 + 2, (u16)(ihl + l4len));
            put_be16(out + l.l3 + 4, (u16)(id + n));
            put_be16(out + l.l3 + 10, 0);
            put_be16(out + l.l3 + 10, (u16)~netpkt_fold(netpkt_sum(out + l.l3, ihl, 0)));
        }
        put_be32(out + l.l4 + 4, seq + off);
        u8 fl = flags;
        if (!last)
            fl &= (u8)~(TCP_FIN | TCP_PSH);
        if (!first)
            fl &= (u8)~TCP_CWR;
        out[l.l4 + 13] = fl;
        put_be16(out + l.l4 + 16, 0);
        u32 s = netpkt_sum(out + l.l4, l4len, pseudo_sum(out, &l, l4len));
        put_be16(out + l.l4 + 16, (u16)~netpkt_fold(s));
        emit(opaque, out, hl + chunk);
        off += chunk;
        n++;
    } while (off < payload);
    free(out);
    return 0;
}

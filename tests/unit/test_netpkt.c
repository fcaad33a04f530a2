/* The PV network backend's offloads (src/dom0/netpkt.c): a partial TCP/UDP checksum
 * completed so that the receiver's check holds, TCP segmentation (headers, lengths,
 * identification, sequence numbers, flags, checksums, the payload in order), IPv4 and
 * IPv6, and malformed frames refused. Checks are by the receiver's rules (a header or
 * segment whose ones'-complement sum folds to 0xffff), not by the code's own arithmetic. */
#include <criterion/criterion.h>
#include <string.h>

#include "dom0/netpkt.h"

static u8 frame[NETPKT_MAX_FRAME];

static void be16(u8 *p, u16 v) { p[0] = (u8)(v >> 8); p[1] = (u8)v; }
static u16 get16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 get32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }

/* Ethernet + IPv4 (no options) + TCP (20 bytes) + payload; the checksum field holds the
 * pseudo-header's sum as Linux leaves it for CHECKSUM_PARTIAL */
static size_t tcp4(u32 payload, u8 flags)
{
    memset(frame, 0, 64);
    be16(frame + 12, 0x0800);
    u8 *ip = frame + 14, *tcp = ip + 20;
    ip[0] = 0x45;
    be16(ip + 2, (u16)(20 + 20 + payload));
    be16(ip + 4, 0x1234);
    ip[8] = 64;
    ip[9] = 6;
    memcpy(ip + 12, "\x0a\x00\x02\x0f\x0a\x00\x02\x02", 8);
    be16(ip + 10, (u16)~netpkt_fold(netpkt_sum(ip, 20, 0)));
    be16(tcp, 40000);
    be16(tcp + 2, 80);
    memcpy(tcp + 4, "\x10\x00\x00\x00", 4); /* seq 0x10000000 */
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    be16(tcp + 14, 65535);
    for (u32 i = 0; i < payload; i++)
        tcp[20 + i] = (u8)(i * 13 + 5);
    u8 ph[12];
    memcpy(ph, ip + 12, 8);
    ph[8] = 0;
    ph[9] = 6;
    be16(ph + 10, (u16)(20 + payload));
    be16(tcp + 16, netpkt_fold(netpkt_sum(ph, 12, 0)));
    return 14 + 40 + payload;
}

/* The receiver's check of a TCP/UDP segment over IPv4: pseudo header + segment */
static bool l4_ok_v4(const u8 *f, u8 proto)
{
    const u8 *ip = f + 14;
    u32 ihl = (ip[0] & 15) * 4, len = get16(ip + 2) - ihl;
    u8 ph[12];
    memcpy(ph, ip + 12, 8);
    ph[8] = 0;
    ph[9] = proto;
    be16(ph + 10, (u16)len);
    return netpkt_fold(netpkt_sum(ip + ihl, len, netpkt_sum(ph, 12, 0))) == 0xffff;
}

Test(netpkt, completes_a_tcp_checksum)
{
    size_t len = tcp4(1000, 0x18);
    cr_assert_not(l4_ok_v4(frame, 6), "partial before");
    cr_assert_eq(netpkt_checksum_complete(frame, len), 0);
    cr_assert(l4_ok_v4(frame, 6));
}

Test(netpkt, completes_a_udp_checksum)
{
    size_t len = tcp4(0, 0);
    u8 *ip = frame + 14, *udp = ip + 20;
    ip[9] = 17;
    be16(ip + 2, 20 + 8 + 100);
    be16(udp + 4, 8 + 100);
    for (int i = 0; i < 100; i++)
        udp[8 + i] = (u8)i;
    u8 ph[12];
    memcpy(ph, ip + 12, 8);
    ph[8] = 0;
    ph[9] = 17;
    be16(ph + 10, 108);
    be16(udp + 6, netpkt_fold(netpkt_sum(ph, 12, 0)));
    len = 14 + 20 + 108;
    cr_assert_eq(netpkt_checksum_complete(frame, len), 0);
    cr_assert(l4_ok_v4(frame, 17));
    cr_assert_neq(get16(udp + 6), 0, "a UDP checksum is never sent as 0");
}

static u8 out[8][2048];
static size_t outlen[8];
static int nout;
static void collect(void *opaque, const u8 *f, size_t len)
{
    (void)opaque;
    cr_assert_lt(nout, 8);
    cr_assert_leq(len, sizeof(out[0]));
    memcpy(out[nout], f, len);
    outlen[nout++] = len;
}

Test(netpkt, segments_tcp_over_ipv4)
{
    size_t len = tcp4(3500, 0x19 /* FIN PSH ACK */ | 0x80 /* CWR */);
    u8 payload[3500];
    memcpy(payload, frame + 54, sizeof(payload));
    nout = 0;
    cr_assert_eq(netpkt_segment(frame, len, 1448, collect, NULL), 0);
    cr_assert_eq(nout, 3);
    u32 at = 0;
    for (int i = 0; i < nout; i++) {
        const u8 *ip = out[i] + 14, *tcp = ip + 20;
        u32 chunk = i < 2 ? 1448 : 3500 - 2 * 1448;
        cr_assert_eq(outlen[i], 54 + chunk);
        cr_assert_eq(get16(ip + 2), 40 + chunk, "IP total length");
        cr_assert_eq(get16(ip + 4), 0x1234 + i, "IP identification");
        cr_assert_eq(netpkt_fold(netpkt_sum(ip, 20, 0)), 0xffff, "IP header checksum");
        cr_assert_eq(get32(tcp + 4), 0x10000000u + at, "sequence number");
        cr_assert_eq(tcp[13] & 0x01, i == 2 ? 0x01 : 0, "FIN on the last only");
        cr_assert_eq(tcp[13] & 0x08, i == 2 ? 0x08 : 0, "PSH on the last only");
        cr_assert_eq(tcp[13] & 0x80, i == 0 ? 0x80 : 0, "CWR on the first only");
        cr_assert_eq(tcp[13] & 0x10, 0x10, "ACK everywhere");
        cr_assert(l4_ok_v4(out[i], 6), "TCP checksum of segment %d", i);
        cr_assert_eq(memcmp(tcp + 20, payload + at, chunk), 0);
        at += chunk;
    }
}

Test(netpkt, segments_tcp_over_ipv6)
{
    memset(frame, 0, 128);
    be16(frame + 12, 0x86dd);
    u8 *ip = frame + 14, *tcp = ip + 40;
    ip[0] = 0x60;
    be16(ip + 4, 20 + 2000);
    ip[6] = 6;
    ip[7] = 64;
    ip[8] = 0xfe, ip[9] = 0xc0, ip[23] = 0x0f;
    ip[24] = 0xfe, ip[25] = 0xc0, ip[39] = 0x02;
    tcp[12] = 5 << 4;
    tcp[13] = 0x10;
    for (int i = 0; i < 2000; i++)
        tcp[20 + i] = (u8)(i ^ 0x33);
    nout = 0;
    cr_assert_eq(netpkt_segment(frame, 14 + 40 + 20 + 2000, 1000, collect, NULL), 0);
    cr_assert_eq(nout, 2);
    for (int i = 0; i < 2; i++) {
        const u8 *o = out[i] + 14;
        cr_assert_eq(get16(o + 4), 20 + 1000, "payload length");
        u8 ph[40];
        memcpy(ph, o + 8, 32);
        memset(ph + 32, 0, 8);
        ph[34] = (u8)(1020 >> 8);
        ph[35] = (u8)1020;
        ph[39] = 6;
        cr_assert_eq(netpkt_fold(netpkt_sum(o + 40, 1020, netpkt_sum(ph, 40, 0))), 0xffff, "segment %d", i);
    }
}

Test(netpkt, refuses_malformed_frames)
{
    struct netpkt_layout l;
    size_t len = tcp4(100, 0x10);
    cr_assert_eq(netpkt_parse(frame, len, &l), 0);
    cr_assert_eq(netpkt_parse(frame, 13, &l), -1, "shorter than Ethernet");
    cr_assert_eq(netpkt_parse(frame, 14 + 30, &l), -1, "IP length beyond the frame");
    frame[14] = 0x44;
    cr_assert_eq(netpkt_parse(frame, len, &l), -1, "IHL below 5");
    tcp4(100, 0x10);
    be16(frame + 14 + 6, 0x2000);
    cr_assert_eq(netpkt_parse(frame, len, &l), -1, "a fragment");
    tcp4(100, 0x10);
    frame[14 + 20 + 12] = 15 << 4; /* a 60-byte TCP header in a 120-byte segment: fits */
    cr_assert_eq(netpkt_parse(frame, len, &l), 0);
    be16(frame + 14 + 2, 20 + 40);
    cr_assert_eq(netpkt_parse(frame, len, &l), -1, "TCP header beyond the IP packet");
    tcp4(100, 0x10);
    frame[14 + 9] = 1; /* ICMP */
    cr_assert_eq(netpkt_checksum_complete(frame, len), -1);
    tcp4(100, 0x10);
    cr_assert_eq(netpkt_segment(frame, len, 0, collect, NULL), -1, "mss 0");
    nout = 0;
    cr_assert_eq(netpkt_segment(frame, len, 1448, collect, NULL), 0, "one segment");
    cr_assert_eq(nout, 1);
    cr_assert(l4_ok_v4(out[0], 6));
}

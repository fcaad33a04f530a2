/* Ethernet frames as a PV network backend finishes them for the host side: the
 * offloads Linux's netfront asks of its backend (xen/io/netif.h) done in software. A
 * frame the guest marked NETTXF_csum_blank carries a TCP or UDP checksum that holds
 * only the pseudo-header's sum; a GSO frame (XEN_NETIF_GSO_TYPE_TCPV4/V6) is one TCP
 * segment of up to 64 KiB to cut into segments of gso_size payload bytes. Both need the
 * frame's IPv4/IPv6 and TCP/UDP headers, which are parsed with every length checked
 * against the frame: a malformed frame is refused, never read past its end. */
#ifndef NESTOR_DOM0_NETPKT_H
#define NESTOR_DOM0_NETPKT_H

#include <stddef.h>

#include "common.h"

#define NETPKT_ETH_HLEN 14u
#define NETPKT_MAX_FRAME (NETPKT_ETH_HLEN + 65535u + 256u)

/* Where a frame's layers start (offsets from the frame's first byte) */
struct netpkt_layout {
    bool ipv6;
    u32 l3, l4;       /* IP header, TCP/UDP header */
    u8 proto;         /* IPPROTO_TCP or IPPROTO_UDP */
    u32 l4_hlen;      /* the TCP header's length (with options); 8 for UDP */
};

/* Parses Ethernet (with one optional 802.1Q tag), IPv4 (options allowed, not a
 * fragment) or IPv6 (no extension headers), then TCP or UDP. 0, or -1 when the frame is
 * anything else or its lengths do not hold together. */
int netpkt_parse(const u8 *frame, size_t len, struct netpkt_layout *l);

/* Completes a checksum the sender left partial (the pseudo-header's sum in the field):
 * the ones' complement sum over the TCP/UDP header and payload, as a NIC with checksum
 * offload writes it. 0, or -1 for a frame netpkt_parse refuses. */
int netpkt_checksum_complete(u8 *frame, size_t len);

/* Cuts a TCP frame into frames of at most mss payload bytes, each with its own IP
 * header (length, IPv4 identification and header checksum), TCP sequence number and
 * flags (FIN and PSH on the last segment only, CWR on the first only) and full TCP
 * checksum; emit runs for each. 0, or -1 (not a TCP frame netpkt_parse takes, mss 0, out
 * of memory). A frame whose payload fits one segment is emitted whole, checksummed. */
int netpkt_segment(const u8 *frame, size_t len, u32 mss,
                   void (*emit)(void *opaque, const u8 *frame, size_t len), void *opaque);

/* The Internet checksum's ones'-complement sum of len bytes, added to sum (not folded) */
u32 netpkt_sum(const u8 *p, size_t len, u32 sum);
u16 netpkt_fold(u32 sum);

#endif

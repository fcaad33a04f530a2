/* libFuzzer target: the PV network backend (src/dom0/netback.c) against a hostile
 * frontend, on an in-process peer network. A frontend connects (one channel or split,
 * by the input's first byte); then the input is cut into rounds, each a control byte and
 * bytes written over the transmit ring's entries, the receive ring's, a data page or
 * the grant table, new producer indices, signals, and frames from the network (whose
 * bytes come from the input too); now and then the frontend closes and reconnects.
 * Nothing may crash, hang, leak or touch memory it should not (ASan/UBSan); frames that
 * reach the network are at most 64 KiB and a few headers long. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dom0/netback.h"
#include "dom0/netdev.h"
#include "dom0/netpkt.h"
#include "xen_harness.h"

#define TXRING 0x30000u  /* grant 1 */
#define RXRING 0x31000u  /* grant 2 */
#define DATA 0x40000u    /* grants 3-10: pages DATA + 4 KiB * i */
#define FE "/local/domain/1/device/vif/0"

static struct netdev *peer;
static struct netback *nb;
static u32 tx_port, rx_port;

static void peer_send(void *opaque, const u8 *frame, size_t len)
{
    (void)opaque;
    if (len > NETPKT_MAX_FRAME || (len && !frame))
        abort();
    volatile u8 sink = 0;
    for (size_t i = 0; i < len; i += 512)
        sink ^= frame[i]; /* every byte handed over is readable */
    (void)sink;
}

static void connect(u8 how)
{
    static const u8 zero[4096];
    u32 one = 1;
    for (u32 r = TXRING; r <= RXRING; r += 0x1000) {
        mem_write(&mem, r, zero, sizeof(zero));
        mem_write(&mem, r + 4, &one, 4);
        mem_write(&mem, r + 12, &one, 4);
    }
    grant(1, GTF_permit_access, TXRING >> 12);
    grant(2, GTF_permit_access, RXRING >> 12);
    tx_port = guest_port_for_dom0();
    rx_port = how & 1 ? guest_port_for_dom0() : tx_port;
    char v[16];
    fe_write(FE, "tx-ring-ref", "1");
    fe_write(FE, "rx-ring-ref", "2");
    if (how & 1) {
        snprintf(v, sizeof(v), "%u", tx_port);
        fe_write(FE, "event-channel-tx", v);
        snprintf(v, sizeof(v), "%u", rx_port);
        fe_write(FE, "event-channel-rx", v);
    } else {
        snprintf(v, sizeof(v), "%u", tx_port);
        fe_write(FE, "event-channel", v);
    }
    fe_write(FE, "request-rx-copy", "1");
    fe_write(FE, "feature-sg", "1");
    fe_write(FE, "state", "4");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    harness_setup();
    char err[200];
    if (!(peer = netdev_create_peer("fuzz", peer_send, NULL)))
        abort();
    struct netback_opts o = { .netdev = peer, .devid = 0, .mac = { 0, 0x16, 0x3e, 0, 0, 1 }, .max_queues = 1 };
    if (!(nb = netback_create(xen, xs, &o, err, sizeof(err))))
        abort();
    connect(data[0]);
    u32 tx_prod = 0, rx_prod = 0;
    size_t i = 1;
    while (i + 2 <= size) {
        u8 ctl = data[i++];
        size_t n = data[i++] * 8u;
        if (n > size - i)
            n = size - i;
        static const u32 where[4] = { TXRING + 64, RXRING + 64, DATA, 0 };
        u32 w = where[ctl & 3];
        size_t room = w ? 4096 - (w & 0xfff) : 4096 - 24;
        mem_write(&mem, w ? w : HARNESS_TABLE + 24, data + i, n < room ? n : room);
        if (ctl & 0x10)
            for (u32 g = 0; g < 8; g++)
                grant(3 + g, GTF_permit_access | (ctl & 4 ? GTF_readonly : 0), (DATA >> 12) + g);
        /* producers move by a little, or anywhere the input says */
        tx_prod = ctl & 8 ? tx_prod + 1 + (ctl >> 5) : (u32)ctl << 24 | ctl;
        rx_prod += (ctl >> 4) & 3 ? 4u : 0u;
        mem_write(&mem, TXRING, &tx_prod, 4);
        mem_write(&mem, RXRING, &rx_prod, 4);
        guest_send(tx_port);
        if (rx_port != tx_port)
            guest_send(rx_port);
        /* a frame from the network: the round's bytes */
        if (ctl & 0x40)
            netdev_deliver(peer, data + i, n);
        netback_poll(nb);
        i += n;
        if ((ctl & 0xe0) == 0xe0) {
            fe_write(FE, "state", "6");
            fe_write(FE, "state", "1");
            tx_prod = rx_prod = 0;
            connect(ctl);
        }
    }
    netback_destroy(nb);
    netdev_destroy(peer);
    harness_teardown();
    return 0;
}

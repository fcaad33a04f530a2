/* The PV network backend's transmit-slot checks (netif_tx_check): the first slot's size
 * as the frame's, more_data and extra-info chains, GSO requests, and every way a hostile
 * frontend can get them wrong. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/io/netif.h>

#include "dom0/netback.h"

static struct netif_slot data(u16 offset, u16 size, u16 flags)
{
    struct netif_slot s = { .gref = 9, .offset = offset, .flags = flags, .id = 1, .size = size };
    return s;
}

static struct netif_slot extra(u8 type, u8 flags, u16 gso_size, u8 gso_type)
{
    struct netif_slot s = { 0 };
    s.raw[0] = type;
    s.raw[1] = flags;
    memcpy(s.raw + 2, &gso_size, 2);
    s.raw[4] = gso_type;
    return s;
}

Test(netif_tx, one_slot_frame)
{
    struct netif_slot s[1] = { data(100, 1514, NETTXF_csum_blank) };
    struct netif_tx_frame f;
    const char *why;
    cr_assert_eq(netif_tx_check(s, 1, &f, &why), 0, "%s", why);
    cr_assert_eq(f.size, 1514);
    cr_assert_eq(f.nslots, 1);
    cr_assert(f.csum_blank);
    cr_assert_eq(f.gso_size, 0);
}

Test(netif_tx, scatter_gather_with_gso)
{
    /* 9000 bytes: 200 in the first slot, then two 4096-byte pages and 608 */
    struct netif_slot s[5] = {
        data(3896, 9000, NETTXF_more_data | NETTXF_extra_info),
        extra(XEN_NETIF_EXTRA_TYPE_GSO, 0, 1448, XEN_NETIF_GSO_TYPE_TCPV4),
        data(0, 4096, NETTXF_more_data), data(0, 4096, NETTXF_more_data), data(0, 608, 0),
    };
    struct netif_tx_frame f;
    const char *why;
    cr_assert_eq(netif_tx_check(s, 5, &f, &why), 0, "%s", why);
    cr_assert_eq(f.nslots, 4);
    cr_assert_eq(f.nextra, 1);
    cr_assert_eq(f.first_extra, 1);
    cr_assert_eq(f.gso_size, 1448);
    cr_assert_eq(f.gso_type, XEN_NETIF_GSO_TYPE_TCPV4);
}

Test(netif_tx, hostile_slots)
{
    struct netif_tx_frame f;
    const char *why;
    struct netif_slot past_page[1] = { data(4000, 200, 0) };
    cr_assert_eq(netif_tx_check(past_page, 1, &f, &why), -1, "the first slot past its page");
    struct netif_slot too_much[2] = { data(0, 100, NETTXF_more_data), data(0, 200, 0) };
    cr_assert_eq(netif_tx_check(too_much, 2, &f, &why), -1, "fragments larger than the frame");
    struct netif_slot runs_on[2] = { data(0, 3000, NETTXF_more_data), data(0, 1000, NETTXF_more_data) };
    cr_assert_eq(netif_tx_check(runs_on, 2, &f, &why), -1, "a more_data chain without an end");
    struct netif_slot frag_past[2] = { data(0, 3000, NETTXF_more_data), data(4000, 1000, 0) };
    cr_assert_eq(netif_tx_check(frag_past, 2, &f, &why), -1, "a fragment past its page");
    struct netif_slot tiny[1] = { data(0, 10, 0) };
    cr_assert_eq(netif_tx_check(tiny, 1, &f, &why), -1, "shorter than Ethernet");
    struct netif_slot bad_gso[2] = { data(0, 1514, NETTXF_extra_info), extra(XEN_NETIF_EXTRA_TYPE_GSO, 0, 0, 1) };
    cr_assert_eq(netif_tx_check(bad_gso, 2, &f, &why), -1, "GSO without a size");
    struct netif_slot bad_type[2] = { data(0, 1514, NETTXF_extra_info), extra(XEN_NETIF_EXTRA_TYPE_GSO, 0, 1448, 7) };
    cr_assert_eq(netif_tx_check(bad_type, 2, &f, &why), -1, "an unknown GSO type");
    struct netif_slot unknown[2] = { data(0, 1514, NETTXF_extra_info), extra(0, 0, 0, 0) };
    cr_assert_eq(netif_tx_check(unknown, 2, &f, &why), -1, "extra-info type NONE");
    struct netif_slot endless[2] = { data(0, 1514, NETTXF_extra_info),
                                     extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_FLAG_MORE, 0, 0) };
    cr_assert_eq(netif_tx_check(endless, 2, &f, &why), -1, "an extra-info chain without an end");
    cr_assert_eq(netif_tx_check(endless, 0, &f, &why), -1, "no slots");
}

/* libFuzzer target: the xenstore server's wire protocol (src/dom0/xenstore.h) as a
 * hostile guest speaks it. The input is a byte stream cut into pieces: each piece is a
 * control byte then bytes for the guest's connection. Control bits: which of a few
 * well-formed messages to send before the raw bytes (so that transactions, watches and
 * deep trees exist for the raw bytes to hit), whether the host writes a node (firing
 * watches), whether the guest reads its replies, a reset, a save/restore round trip.
 * Nothing may crash, hang, leak or read outside its buffers (ASan/UBSan); replies are
 * well-formed (a header, at most XENSTORE_PAYLOAD_MAX bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/xs_wire.h>

#include "dom0/xenstore.h"
#include "machine/state.h"

static void msg(struct xenstore *s, u32 type, u32 tx, const char *payload, u32 len)
{
    struct xsd_sockmsg h = { .type = type, .req_id = 1, .tx_id = tx, .len = len };
    xenstore_guest_input(s, &h, sizeof(h));
    xenstore_guest_input(s, payload, len);
}

/* Reads every reply and checks its framing */
static void drain(struct xenstore *s)
{
    static u8 buf[1 << 16];
    size_t n;
    static size_t have;
    while ((n = xenstore_guest_output(s, buf + have, sizeof(buf) - have)) > 0) {
        have += n;
        while (have >= sizeof(struct xsd_sockmsg)) {
            struct xsd_sockmsg h;
            memcpy(&h, buf, sizeof(h));
            if (h.len > XENSTORE_PAYLOAD_MAX)
                abort();
            if (have < sizeof(h) + h.len)
                break;
            memmove(buf, buf + sizeof(h) + h.len, have - sizeof(h) - h.len);
            have -= sizeof(h) + h.len;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xenstore *s = xenstore_create(5, &xenstore_default_limits);
    if (!s)
        abort();
    const char *ro[] = { "n0", "r5" }, *rw[] = { "n5" };
    xenstore_mkdir(s, "/local/domain/5");
    xenstore_set_perms(s, "/local/domain/5", ro, 2);
    xenstore_mkdir(s, "/local/domain/5/data");
    xenstore_set_perms(s, "/local/domain/5/data", rw, 1);
    size_t i = 0;
    while (i < size) {
        u8 ctl = data[i++];
        size_t n = i < size ? data[i++] : 0;
        if (n > size - i)
            n = size - i;
        switch (ctl & 7) {
        case 1: msg(s, XS_WRITE, 0, "data/a/b\0v", 10); break;
        case 2: msg(s, XS_TRANSACTION_START, 0, "", 1); break;
        case 3: msg(s, XS_WATCH, 0, "data\0tok", 9); break;
        case 4: msg(s, XS_WRITE, ctl >> 4, "data/t\0x", 8); break;
        case 5: msg(s, XS_TRANSACTION_END, ctl >> 4, "T", 2); break;
        default: break;
        }
        if (ctl & 0x08)
            xenstore_write(s, "/local/domain/5/data/host", data + i, n < 64 ? n : 64);
        long t = xenstore_guest_input(s, data + i, n);
        if (t < 0)
            xenstore_guest_reset(s);
        i += n;
        if (!(ctl & 0x80))
            drain(s);
        if ((ctl & 0x70) == 0x70) {
            struct state_registry r = { 0 }, r2 = { 0 };
            struct state_buf b = { 0 };
            xenstore_state_register(s, &r);
            state_save_all(&r, &b);
            struct xenstore *s2 = xenstore_create(5, &xenstore_default_limits);
            xenstore_state_register(s2, &r2);
            char err[200];
            if (state_load_all(&r2, b.p, b.len, err, sizeof(err)) < 0)
                abort(); /* its own state must load */
            xenstore_destroy(s);
            s = s2;
            state_registry_free(&r);
            state_registry_free(&r2);
            state_buf_free(&b);
        }
    }
    drain(s);
    xenstore_destroy(s);
    return 0;
}

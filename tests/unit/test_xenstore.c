/* Unit tests of the xenstore server (src/dom0/xenstore.h) through its wire protocol, as
 * a domU's xenbus speaks it: every message and its errors, relative paths, permissions
 * as xenstored applies them to a domU, quotas, watches and their events, transactions
 * with conflicts (EAGAIN), split and oversized messages, flow control, domain 0's
 * access, the toolstack's tree, and a save/restore round trip. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/xs_wire.h>

#include "dom0/xenstore.h"
#include "machine/state.h"

#define DOMID 3
static struct xenstore *s;

static void setup(void)
{
    s = xenstore_create(DOMID, &xenstore_default_limits);
    cr_assert_not_null(s);
    /* what the toolstack makes: the domain's directory, readable by it */
    const char *ro[] = { "n0", "r3" }, *rw[] = { "n3" };
    cr_assert_eq(xenstore_mkdir(s, "/local/domain/3"), 0);
    cr_assert_eq(xenstore_set_perms(s, "/local/domain/3", ro, 2), 0);
    cr_assert_eq(xenstore_mkdir(s, "/local/domain/3/data"), 0);
    cr_assert_eq(xenstore_set_perms(s, "/local/domain/3/data", rw, 1), 0);
    cr_assert_eq(xenstore_write(s, "/local/domain/3/name", "guest", 5), 0);
    cr_assert_eq(xenstore_write(s, "/secret", "x", 1), 0);
}

static void teardown(void)
{
    xenstore_destroy(s);
}

TestSuite(xenstore, .init = setup, .fini = teardown);

/* A reply as the guest reads it */
struct reply {
    struct xsd_sockmsg h;
    char body[XENSTORE_PAYLOAD_MAX + 1];
};

static bool next_reply(struct reply *r)
{
    if (xenstore_guest_pending(s) < sizeof(r->h))
        return false;
    cr_assert_eq(xenstore_guest_output(s, &r->h, sizeof(r->h)), sizeof(r->h));
    cr_assert_leq(r->h.len, XENSTORE_PAYLOAD_MAX);
    cr_assert_eq(xenstore_guest_output(s, r->body, r->h.len), r->h.len);
    r->body[r->h.len] = 0;
    return true;
}

/* Sends one message (payload: the strings, each with its NUL, or raw bytes) */
static void send_raw(u32 type, u32 tx, const void *payload, u32 len)
{
    static u32 req;
    struct xsd_sockmsg h = { .type = type, .req_id = ++req, .tx_id = tx, .len = len };
    u8 buf[sizeof(h) + XENSTORE_PAYLOAD_MAX + 64];
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), payload, len);
    cr_assert_eq(xenstore_guest_input(s, buf, sizeof(h) + len), (long)(sizeof(h) + len));
}

/* strings joined with their NULs */
static u32 join(char *out, int n, va_list ap)
{
    u32 len = 0;
    for (int i = 0; i < n; i++) {
        const char *a = va_arg(ap, const char *);
        size_t l = strlen(a) + 1;
        memcpy(out + len, a, l);
        len += (u32)l;
    }
    return len;
}

/* Sends a message of n strings and returns its reply (the first message out) */
static struct reply call(u32 type, u32 tx, int n, ...)
{
    char p[XENSTORE_PAYLOAD_MAX];
    va_list ap;
    va_start(ap, n);
    u32 len = join(p, n, ap);
    va_end(ap);
    send_raw(type, tx, p, len);
    struct reply r;
    cr_assert(next_reply(&r), "no reply");
    return r;
}

static void expect_ok(struct reply r, u32 type)
{
    cr_assert_eq(r.h.type, type, "type %u, body '%s'", r.h.type, r.body);
}

static void expect_error(struct reply r, const char *err)
{
    cr_assert_eq(r.h.type, XS_ERROR, "type %u for %s", r.h.type, err);
    cr_assert_str_eq(r.body, err);
}

static void write_str(u32 tx, const char *path, const char *value)
{
    char p[XENSTORE_PAYLOAD_MAX];
    cr_assert_lt(strlen(path) + strlen(value) + 1, sizeof(p));
    size_t l = strlen(path) + 1;
    memcpy(p, path, l);
    memcpy(p + l, value, strlen(value));
    send_raw(XS_WRITE, tx, p, (u32)(l + strlen(value)));
}

Test(xenstore, read_write_relative_and_absolute)
{
    write_str(0, "data/a", "hello");
    struct reply r;
    cr_assert(next_reply(&r));
    expect_ok(r, XS_WRITE);
    cr_assert_str_eq(r.body, "OK");
    r = call(XS_READ, 0, 1, "/local/domain/3/data/a");
    expect_ok(r, XS_READ);
    cr_assert_eq(r.h.len, 5, "no NUL after a value");
    cr_assert_str_eq(r.body, "hello");
    r = call(XS_READ, 0, 1, "name");
    cr_assert_str_eq(r.body, "guest");
    expect_error(call(XS_READ, 0, 1, "data/none"), "ENOENT");
    expect_error(call(XS_READ, 0, 1, "/secret"), "EACCES");
    expect_error(call(XS_READ, 0, 1, "/nothere/x"), "EACCES"); /* the root is not readable */
    expect_error(call(XS_READ, 0, 1, "data//a"), "EINVAL");
    expect_error(call(XS_READ, 0, 1, "data/a/"), "EINVAL");
    expect_error(call(XS_READ, 0, 1, "data/a b"), "EINVAL");
    expect_error(call(XS_READ, 0, 2, "data/a", "extra"), "EINVAL");
    send_raw(XS_READ, 0, "data/a", 6); /* no NUL */
    cr_assert(next_reply(&r));
    expect_error(r, "EINVAL");
    /* writes need write permission: the domain's directory is read-only for it */
    write_str(0, "name", "x");
    cr_assert(next_reply(&r));
    expect_error(r, "EACCES");
    write_str(0, "/secret", "y");
    cr_assert(next_reply(&r));
    expect_error(r, "EACCES");
    /* the reply echoes the request id and transaction id */
    r = call(XS_READ, 0, 1, "name");
    cr_assert_neq(r.h.req_id, 0);
}

Test(xenstore, mkdir_rm_directory)
{
    expect_ok(call(XS_MKDIR, 0, 1, "data/d/e/f"), XS_MKDIR);
    expect_ok(call(XS_MKDIR, 0, 1, "data/d/e/f"), XS_MKDIR); /* exists: fine */
    write_str(0, "data/d/g", "1");
    struct reply r;
    cr_assert(next_reply(&r));
    r = call(XS_DIRECTORY, 0, 1, "data/d");
    expect_ok(r, XS_DIRECTORY);
    cr_assert_eq(r.h.len, 4);
    cr_assert_eq(memcmp(r.body, "e\0g\0", 4), 0, "children in the order they were made");
    expect_ok(call(XS_RM, 0, 1, "data/d/e"), XS_RM);
    expect_error(call(XS_READ, 0, 1, "data/d/e/f"), "ENOENT");
    expect_ok(call(XS_RM, 0, 1, "data/d/none"), XS_RM); /* parent exists: fine */
    expect_error(call(XS_RM, 0, 1, "data/none/x"), "ENOENT");
    expect_error(call(XS_RM, 0, 1, "/"), "EINVAL");
    expect_error(call(XS_RM, 0, 1, "name"), "EACCES");
    expect_error(call(XS_MKDIR, 0, 1, "device"), "EACCES");
}

Test(xenstore, directory_part)
{
    char name[64];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "data/many/child-with-a-long-name-%03d", i);
        expect_ok(call(XS_MKDIR, 0, 1, name), XS_MKDIR);
    }
    /* the whole list does not fit one reply */
    expect_error(call(XS_DIRECTORY, 0, 1, "data/many"), "E2BIG");
    int seen = 0;
    unsigned off = 0;
    char gen0[32] = "";
    for (;;) {
        char o[16];
        snprintf(o, sizeof(o), "%u", off);
        struct reply r = call(XS_DIRECTORY_PART, 0, 2, "data/many", o);
        expect_ok(r, XS_DIRECTORY_PART);
        size_t gl = strlen(r.body) + 1;
        if (!gen0[0])
            snprintf(gen0, sizeof(gen0), "%.31s", r.body);
        cr_assert_str_eq(r.body, gen0, "the generation stays while nothing changes");
        bool end = false;
        for (size_t at = gl; at < r.h.len;) {
            size_t l = strlen(r.body + at);
            if (!l) {
                end = true;
                break;
            }
            snprintf(name, sizeof(name), "child-with-a-long-name-%03d", seen);
            cr_assert_str_eq(r.body + at, name);
            seen++;
            off += (unsigned)l + 1;
            at += l + 1;
        }
        if (end)
            break;
    }
    cr_assert_eq(seen, 300);
    expect_error(call(XS_DIRECTORY_PART, 0, 2, "data/many", "3"), "EINVAL"); /* not a name's start */
    expect_error(call(XS_DIRECTORY_PART, 0, 2, "data/many", "x"), "EINVAL");
}

Test(xenstore, permissions)
{
    expect_ok(call(XS_MKDIR, 0, 1, "data/p"), XS_MKDIR);
    struct reply r = call(XS_GET_PERMS, 0, 1, "data/p");
    expect_ok(r, XS_GET_PERMS);
    cr_assert_str_eq(r.body, "n3", "a domain owns what it makes");
    r = call(XS_GET_PERMS, 0, 1, "name");
    cr_assert_eq(memcmp(r.body, "n0\0r3\0", 6), 0);
    expect_ok(call(XS_SET_PERMS, 0, 3, "data/p", "n3", "r0"), XS_SET_PERMS);
    expect_error(call(XS_SET_PERMS, 0, 2, "data/p", "n5"), "EPERM"); /* giving it away */
    expect_error(call(XS_SET_PERMS, 0, 2, "data/p", "x3"), "EINVAL");
    expect_error(call(XS_SET_PERMS, 0, 2, "data/p", "r"), "EINVAL");
    expect_error(call(XS_SET_PERMS, 0, 1, "data/p"), "EINVAL");
    expect_error(call(XS_SET_PERMS, 0, 7, "data/p", "n3", "r1", "r2", "r4", "r5", "r6"), "ENOSPC");
    expect_error(call(XS_SET_PERMS, 0, 2, "name", "b3"), "EACCES");
    /* domain 0 makes a node readable by the guest only through a specific entry */
    const char *p[] = { "n0", "r3" };
    cr_assert_eq(xenstore_write(s, "/shared", "v", 1), 0);
    expect_error(call(XS_READ, 0, 1, "/shared"), "EACCES");
    cr_assert_eq(xenstore_set_perms(s, "/shared", p, 2), 0);
    r = call(XS_READ, 0, 1, "/shared");
    cr_assert_str_eq(r.body, "v");
}

Test(xenstore, quotas)
{
    char big[3000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    write_str(0, "data/big", big);
    struct reply r;
    cr_assert(next_reply(&r));
    expect_error(r, "ENOSPC");
    char name[64];
    int made = 0;
    for (;; made++) {
        snprintf(name, sizeof(name), "data/n%d", made);
        r = call(XS_MKDIR, 0, 1, name);
        if (r.h.type == XS_ERROR) {
            cr_assert_str_eq(r.body, "ENOSPC");
            break;
        }
        cr_assert_lt(made, 2000);
    }
    /* the domain owned data/ already */
    cr_assert_eq(made, 999);
    /* watches */
    for (int i = 0;; i++) {
        snprintf(name, sizeof(name), "tok%d", i);
        r = call(XS_WATCH, 0, 2, "data", name);
        if (r.h.type == XS_ERROR) {
            cr_assert_str_eq(r.body, "E2BIG");
            cr_assert_eq(i, 128);
            break;
        }
        cr_assert(next_reply(&r), "the new watch fires at once");
        cr_assert_eq(r.h.type, XS_WATCH_EVENT);
    }
    /* transactions */
    for (int i = 0;; i++) {
        r = call(XS_TRANSACTION_START, 0, 1, "");
        if (r.h.type == XS_ERROR) {
            cr_assert_str_eq(r.body, "ENOSPC");
            cr_assert_eq(i, 10);
            break;
        }
    }
}

Test(xenstore, watches_fire)
{
    struct reply r = call(XS_WATCH, 0, 2, "data/w", "T1");
    expect_ok(r, XS_WATCH);
    cr_assert(next_reply(&r));
    cr_assert_eq(r.h.type, XS_WATCH_EVENT);
    cr_assert_eq(memcmp(r.body, "data/w\0T1\0", 10), 0, "relative, as registered");
    r = call(XS_WATCH, 0, 2, "/local/domain/3/data", "T2");
    cr_assert(next_reply(&r));
    expect_error(call(XS_WATCH, 0, 2, "data/w", "T1"), "EEXIST");
    expect_error(call(XS_WATCH, 0, 2, "@bogus", "T3"), "EINVAL");
    r = call(XS_WATCH, 0, 2, "@releaseDomain", "T4");
    expect_ok(r, XS_WATCH);
    cr_assert(next_reply(&r));
    cr_assert_eq(memcmp(r.body, "@releaseDomain\0T4\0", 18), 0);
    /* a write below both watches: the reply, then an event each */
    write_str(0, "data/w/x", "1");
    cr_assert(next_reply(&r));
    expect_ok(r, XS_WRITE);
    cr_assert(next_reply(&r));
    cr_assert_eq(memcmp(r.body, "data/w/x\0T1\0", 12), 0);
    cr_assert(next_reply(&r));
    cr_assert_eq(memcmp(r.body, "/local/domain/3/data/w/x\0T2\0", 28), 0);
    cr_assert_not(next_reply(&r));
    /* removing a parent fires the watches below it, with their own paths */
    expect_ok(call(XS_RM, 0, 1, "data"), XS_RM);
    cr_assert(next_reply(&r));
    cr_assert_eq(memcmp(r.body, "data/w\0T1\0", 10), 0);
    cr_assert(next_reply(&r));
    cr_assert_eq(memcmp(r.body, "/local/domain/3/data\0T2\0", 24), 0);
    /* a host write fires the guest's watch too */
    expect_ok(call(XS_UNWATCH, 0, 2, "/local/domain/3/data", "T2"), XS_UNWATCH);
    expect_error(call(XS_UNWATCH, 0, 2, "data", "T2"), "ENOENT");
    cr_assert_eq(xenstore_write(s, "/local/domain/3/data/w", "h", 1), 0);
    cr_assert(next_reply(&r));
    cr_assert_eq(memcmp(r.body, "data/w\0T1\0", 10), 0);
    /* nodes the guest may not read fire nothing for it */
    expect_ok(call(XS_WATCH, 0, 2, "/", "ROOT"), XS_WATCH);
    cr_assert(next_reply(&r));
    cr_assert_eq(xenstore_write(s, "/secret", "z", 1), 0);
    cr_assert_not(next_reply(&r));
    expect_ok(call(XS_RESET_WATCHES, 0, 1, ""), XS_RESET_WATCHES);
    cr_assert_eq(xenstore_write(s, "/local/domain/3/data/w", "i", 1), 0);
    cr_assert_not(next_reply(&r), "no watches after a reset");
}

static int host_events;
static char host_path[256];
static void host_watch(void *opaque, const char *path)
{
    (void)opaque;
    host_events++;
    snprintf(host_path, sizeof(host_path), "%s", path);
}

Test(xenstore, host_watches)
{
    int id = xenstore_watch(s, "/local/domain/3/data", host_watch, NULL);
    cr_assert_geq(id, 0);
    write_str(0, "data/state", "4");
    struct reply r;
    cr_assert(next_reply(&r));
    cr_assert_eq(host_events, 1);
    cr_assert_str_eq(host_path, "/local/domain/3/data/state");
    char buf[16];
    cr_assert_eq(xenstore_read(s, "/local/domain/3/data/state", buf, sizeof(buf)), 1);
    cr_assert_str_eq(buf, "4");
    xenstore_unwatch(s, id);
    write_str(0, "data/state", "5");
    cr_assert(next_reply(&r));
    cr_assert_eq(host_events, 1);
    cr_assert_eq(xenstore_read(s, "/none", buf, sizeof(buf)), -ENOENT);
    cr_assert_eq(xenstore_read(s, "relative", buf, sizeof(buf)), -EINVAL);
}

static u32 start_tx(void)
{
    struct reply r = call(XS_TRANSACTION_START, 0, 1, "");
    expect_ok(r, XS_TRANSACTION_START);
    return (u32)strtoul(r.body, NULL, 10);
}

Test(xenstore, transactions)
{
    u32 t = start_tx();
    cr_assert_neq(t, 0);
    write_str(t, "data/tx", "in");
    struct reply r;
    cr_assert(next_reply(&r));
    cr_assert_eq(r.h.tx_id, t);
    expect_error(call(XS_READ, 0, 1, "data/tx"), "ENOENT"); /* not visible outside yet */
    r = call(XS_READ, t, 1, "data/tx");
    cr_assert_str_eq(r.body, "in");
    expect_ok(call(XS_TRANSACTION_END, t, 1, "T"), XS_TRANSACTION_END);
    r = call(XS_READ, 0, 1, "data/tx");
    cr_assert_str_eq(r.body, "in");
    expect_error(call(XS_READ, t, 1, "data/tx"), "ENOENT"); /* the transaction is gone */
    expect_error(call(XS_TRANSACTION_END, t, 1, "T"), "ENOENT");
    /* a conflict: what the transaction read changed meanwhile */
    t = start_tx();
    call(XS_READ, t, 1, "data/tx");
    write_str(t, "data/other", "1");
    cr_assert(next_reply(&r));
    cr_assert_eq(xenstore_write(s, "/local/domain/3/data/tx", "new", 3), 0);
    expect_error(call(XS_TRANSACTION_END, t, 1, "T"), "EAGAIN");
    expect_error(call(XS_READ, 0, 1, "data/other"), "ENOENT");
    /* an abort leaves nothing */
    t = start_tx();
    write_str(t, "data/gone", "1");
    cr_assert(next_reply(&r));
    expect_ok(call(XS_TRANSACTION_END, t, 1, "F"), XS_TRANSACTION_END);
    expect_error(call(XS_READ, 0, 1, "data/gone"), "ENOENT");
    /* a change elsewhere does not conflict (a new sibling would: the parent changed, as
     * in xenstored); a watch fires at the commit */
    expect_ok(call(XS_WATCH, 0, 2, "data/late", "W"), XS_WATCH);
    cr_assert(next_reply(&r));
    t = start_tx();
    write_str(t, "data/late", "1");
    cr_assert(next_reply(&r));
    cr_assert_not(next_reply(&r), "no event before the commit");
    cr_assert_eq(xenstore_write(s, "/local/domain/3/name", "renamed", 7), 0);
    expect_ok(call(XS_TRANSACTION_END, t, 1, "T"), XS_TRANSACTION_END);
    cr_assert(next_reply(&r));
    cr_assert_eq(memcmp(r.body, "data/late\0W\0", 12), 0);
    /* a removal in a transaction */
    t = start_tx();
    expect_ok(call(XS_RM, t, 1, "data/late"), XS_RM);
    expect_ok(call(XS_TRANSACTION_END, t, 1, "T"), XS_TRANSACTION_END);
    cr_assert(next_reply(&r));
    cr_assert_eq(memcmp(r.body, "data/late\0W\0", 12), 0, "the removal fires at the commit");
    expect_error(call(XS_READ, 0, 1, "data/late"), "ENOENT");
    expect_error(call(XS_TRANSACTION_END, 0, 1, "T"), "ENOENT");
    expect_error(call(XS_TRANSACTION_END, 99, 1, "X"), "ENOENT"); /* no such transaction first */
    expect_error(call(XS_READ, 99, 1, "name"), "ENOENT");
    t = start_tx();
    expect_error(call(XS_TRANSACTION_END, t, 1, "X"), "EINVAL");
    expect_error(call(XS_TRANSACTION_START, t, 1, ""), "EBUSY");
}

Test(xenstore, domains_and_privileged_messages)
{
    struct reply r = call(XS_GET_DOMAIN_PATH, 0, 1, "3");
    cr_assert_str_eq(r.body, "/local/domain/3");
    expect_error(call(XS_GET_DOMAIN_PATH, 0, 1, "x"), "EINVAL");
    r = call(XS_IS_DOMAIN_INTRODUCED, 0, 1, "3");
    cr_assert_str_eq(r.body, "T");
    r = call(XS_IS_DOMAIN_INTRODUCED, 0, 1, "9");
    cr_assert_str_eq(r.body, "F");
    expect_error(call(XS_INTRODUCE, 0, 3, "4", "123", "5"), "EACCES");
    expect_error(call(XS_RELEASE, 0, 1, "4"), "EACCES");
    expect_error(call(XS_RESUME, 0, 1, "4"), "EACCES");
    expect_error(call(XS_SET_TARGET, 0, 2, "4", "5"), "EACCES");
    expect_error(call(XS_CONTROL, 0, 1, "print"), "EACCES");
    expect_error(call(XS_WATCH_EVENT, 0, 2, "a", "b"), "EINVAL");
    expect_error(call(XS_ERROR, 0, 1, "x"), "EINVAL");
    expect_error(call(XS_TYPE_COUNT, 0, 1, "x"), "EINVAL");
    expect_error(call(1000, 0, 1, "x"), "EINVAL");
}

Test(xenstore, split_and_oversized_messages)
{
    /* a message in single bytes */
    struct xsd_sockmsg h = { .type = XS_READ, .req_id = 77, .len = 5 };
    u8 m[sizeof(h) + 5];
    memcpy(m, &h, sizeof(h));
    memcpy(m + sizeof(h), "name", 5);
    for (size_t i = 0; i < sizeof(m); i++)
        cr_assert_eq(xenstore_guest_input(s, m + i, 1), 1);
    struct reply r;
    cr_assert(next_reply(&r));
    cr_assert_eq(r.h.req_id, 77);
    cr_assert_str_eq(r.body, "guest");
    /* flow control: a guest that does not read its replies stops being served */
    long taken = 0;
    for (int i = 0; i < 10000 && taken >= 0; i++) {
        long t = xenstore_guest_input(s, m, sizeof(m));
        if (t < (long)sizeof(m))
            break;
        taken += t;
    }
    cr_assert_leq(xenstore_guest_pending(s), xenstore_default_limits.outstanding + 4096);
    while (next_reply(&r))
        ;
    /* a message over the payload limit breaks the connection */
    h.len = XENSTORE_PAYLOAD_MAX + 1;
    cr_assert_eq(xenstore_guest_input(s, &h, sizeof(h)), -1);
    cr_assert(xenstore_guest_broken(s));
    cr_assert_eq(xenstore_guest_input(s, m, sizeof(m)), -1);
    xenstore_guest_reset(s);
    cr_assert_not(xenstore_guest_broken(s));
    cr_assert_eq(xenstore_guest_input(s, m, sizeof(m)), (long)sizeof(m));
}

Test(xenstore, the_toolstack_tree)
{
    struct xenstore *t = xenstore_create(7, &xenstore_default_limits);
    struct xenstore_domain d = { .name = "vm", .pvh = true, .ncpus = 2, .ram_bytes = 512u << 20,
                                 .store_port = 2, .store_pfn = 0xfeffc, .console_port = 1,
                                 .console_pfn = 0xfefff };
    cr_assert_eq(xenstore_write_domain(t, &d), 0);
    char buf[64];
    static const char *const want[][2] = {
        { "/local/domain/7/name", "vm" }, { "/local/domain/7/domid", "7" },
        { "/local/domain/7/memory/target", "524288" }, { "/local/domain/7/cpu/1/availability", "online" },
        { "/local/domain/7/store/port", "2" }, { "/local/domain/7/store/ring-ref", "1044476" },
        { "/local/domain/7/console/port", "1" }, { "/local/domain/7/control/shutdown", "" },
        { "/libxl/7/type", "pvh" }, { "/local/domain/7/control/platform-feature-xs_reset_watches", "1" },
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cr_assert_geq(xenstore_read(t, want[i][0], buf, sizeof(buf)), 0, "%s", want[i][0]);
        cr_assert_str_eq(buf, want[i][1], "%s", want[i][0]);
    }
    xenstore_destroy(t);
}

Test(xenstore, state_round_trip)
{
    /* a watch, an open transaction with a change, a reply not yet read, half a message */
    struct reply r = call(XS_WATCH, 0, 2, "data", "W");
    cr_assert(next_reply(&r));
    u32 t = start_tx();
    write_str(t, "data/in-tx", "1");
    struct xsd_sockmsg h = { .type = XS_READ, .req_id = 5, .len = 5 };
    cr_assert_eq(xenstore_guest_input(s, &h, sizeof(h)), (long)sizeof(h));
    struct state_registry reg = { 0 };
    xenstore_state_register(s, &reg);
    struct state_buf a = { 0 }, b = { 0 };
    state_save_all(&reg, &a);
    state_registry_free(&reg);
    struct xenstore *s2 = xenstore_create(DOMID, &xenstore_default_limits);
    struct state_registry reg2 = { 0 };
    xenstore_state_register(s2, &reg2);
    char err[200] = "";
    cr_assert_eq(state_load_all(&reg2, a.p, a.len, err, sizeof(err)), 0, "%s", err);
    state_save_all(&reg2, &b);
    cr_assert_eq(a.len, b.len);
    cr_assert_eq(memcmp(a.p, b.p, a.len), 0, "saved again: the same bytes");
    state_registry_free(&reg2);
    /* the restored store goes on as the original does */
    struct xenstore *orig = s;
    for (int k = 0; k < 2; k++) {
        s = k ? s2 : orig;
        cr_assert(next_reply(&r));
        expect_ok(r, XS_WRITE); /* the reply left unread */
        cr_assert_eq(xenstore_guest_input(s, "name", 5), 5);
        cr_assert(next_reply(&r));
        cr_assert_str_eq(r.body, "guest");
        expect_ok(call(XS_TRANSACTION_END, t, 1, "T"), XS_TRANSACTION_END);
        cr_assert(next_reply(&r));
        cr_assert_eq(memcmp(r.body, "data/in-tx\0W\0", 13), 0);
    }
    s = orig;
    xenstore_destroy(s2);
    state_buf_free(&a);
    state_buf_free(&b);
}

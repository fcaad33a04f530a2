/* XenStore as Xen 4.17's C xenstored keeps it for one unprivileged guest: the tree of
 * nodes (value, permission list, generation), the guest's connection with its watches
 * and transactions, domain 0's privileged access. See xenstore.h.
 *
 * Transactions work on a copy of the tree taken at their start; every node a
 * transaction reads or changes is noted with the generation it had; at commit, a node
 * whose generation in the live tree differs (another change came first) makes the
 * commit fail with EAGAIN, as xenstored's does; otherwise the nodes it changed are
 * written into the live tree and their watches fire then. */
#include "dom0/xenstore.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/xs_wire.h>

#include "machine/state.h"

const struct xenstore_limits xenstore_default_limits = {
    .nodes = 1000, .entry_size = 2048, .watches = 128, .transactions = 10, .perms = 5,
    .outstanding = 64 * 1024,
};

/* Permission bits (xenstored's XS_PERM_*): n, r, w, b */
enum { PERM_NONE = 0, PERM_READ = 1, PERM_WRITE = 2, PERM_BOTH = 3 };
struct xs_perm {
    u16 dom;
    u8 perm;
};

struct node {
    char *name;
    struct node *parent;
    struct node **kids;     /* in the order they were made, as xenstored lists them */
    u32 nkids, kcap;
    u8 *value;
    u32 len;
    struct xs_perm *perms;  /* [0]: the owner, and what any other domain may do */
    u32 nperms;
    u64 gen;                /* the store's generation when it last changed */
};

/* An open transaction: its copy of the tree, what it touched (with the generation then:
 * 0 for a node that did not exist) and what it changed (rm: its subtree too). */
struct touched {
    char *path;
    u64 gen;
};
struct change {
    char *path;
    bool subtree; /* a removal: the watches on nodes below fire too */
};
struct tx {
    u32 id;
    struct node *root;
    struct touched *touched;
    u32 ntouched, tcap;
    struct change *changes;
    u32 nchanges, ccap;
};

struct watch {
    char *path;     /* canonical (absolute, or a special @ name) */
    char *token;
    bool relative;  /* registered relative: events name paths relative to the domain */
    bool host;
    xenstore_watch_fn fn;
    void *opaque;
    int id;
};

/* A growable byte queue: bytes [pos, len) of p wait to be taken */
struct bytes {
    u8 *p;
    size_t pos, len, cap;
};

/* Appends n bytes (false: no host memory, nothing appended); the taken part is reused */
static bool bytes_append(struct bytes *b, const void *p, size_t n)
{
    if (!n || !p)
        return true;
    if (b->pos && b->pos == b->len)
        b->pos = b->len = 0;
    if (b->len + n > b->cap && b->pos) {
        memmove(b->p, b->p + b->pos, b->len - b->pos);
        b->len -= b->pos;
        b->pos = 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        u8 *q = realloc(b->p, cap);
        if (!q)
            return false;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return true;
}

/* Room for one more element in a growable array (arrp: the array pointer's address) of n used of *cap (false: no host
 * memory, nothing changed) */
static bool grow(void *arrp, u32 n, u32 *cap, size_t elem, u32 first)
{
    if (n < *cap)
        return true;
    /* the array pointer is copied as bytes: it is a pointer to some element type */
    void *old;
    memcpy(&old, arrp, sizeof(old));
    u32 c = *cap ? *cap * 2 : first;
    void *q = realloc(old, elem * c);
    if (!q)
        return false;
    memcpy(arrp, &q, sizeof(q));
    *cap = c;
    return true;
}

#define HDR ((u32)sizeof(struct xsd_sockmsg))
#define MAX_QUEUED (4u << 20) /* replies and events a guest may leave unread, at most */

struct xenstore {
    u16 domid;
    struct xenstore_limits lim;
    struct node *root;
    u64 gen;
    char dompath[32];
    /* the guest's connection: the message being received, what waits for it */
    u8 in[sizeof(struct xsd_sockmsg) + XENSTORE_PAYLOAD_MAX];
    u32 in_len;
    struct bytes out;
    bool broken;
    bool dropped_events; /* logged once */
    struct tx *tx;
    u32 ntx;
    u32 next_tx;
    struct watch *watches;
    u32 nwatches, wcap;
    int next_watch;
    /* host watches due once the current message is handled */
    struct pending {
        int id;
        char *path;
    } *pending;
    u32 npending, pcap;
    bool delivering;
    /* while a guest message is handled, its watch events wait here to follow its reply */
    bool deferring;
    struct bytes deferred;
    void (*output_ready)(void *opaque);
    void *output_opaque;
};

/* ---- nodes ---- */
static struct node *node_new(const char *name, size_t nlen)
{
    struct node *n = calloc(1, sizeof(*n));
    if (!n || !(n->name = malloc(nlen + 1))) {
        free(n);
        return NULL;
    }
    memcpy(n->name, name, nlen);
    n->name[nlen] = 0;
    return n;
}

static void node_free(struct node *n)
{
    if (!n)
        return;
    for (u32 i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->value);
    free(n->perms);
    free(n->name);
    free(n);
}

static bool node_set_value(struct node *n, const void *v, size_t len)
{
    u8 *p = malloc(len ? len : 1);
    if (!p)
        return false;
    if (len)
        memcpy(p, v, len);
    free(n->value);
    n->value = p;
    n->len = (u32)len;
    return true;
}

static bool node_set_perms(struct node *n, const struct xs_perm *p, u32 np)
{
    struct xs_perm *q = malloc(sizeof(*q) * (np ? np : 1));
    if (!q)
        return false;
    memcpy(q, p, sizeof(*q) * np);
    free(n->perms);
    n->perms = q;
    n->nperms = np;
    return true;
}

static bool node_add_kid(struct node *parent, struct node *kid)
{
    if (!grow(&parent->kids, parent->nkids, &parent->kcap, sizeof(*parent->kids), 4))
        return false;
    parent->kids[parent->nkids++] = kid;
    kid->parent = parent;
    return true;
}

static void node_unlink(struct node *n)
{
    struct node *p = n->parent;
    for (u32 i = 0; p && i < p->nkids; i++)
        if (p->kids[i] == n) {
            memmove(&p->kids[i], &p->kids[i + 1], sizeof(p->kids[0]) * (p->nkids - i - 1));
            p->nkids--;
            break;
        }
    n->parent = NULL;
}

static struct node *node_clone(const struct node *n)
{
    struct node *c = node_new(n->name, strlen(n->name));
    if (!c)
        return NULL;
    c->gen = n->gen;
    if (!node_set_value(c, n->value, n->len) || !node_set_perms(c, n->perms, n->nperms))
        goto fail;
    for (u32 i = 0; i < n->nkids; i++) {
        struct node *k = node_clone(n->kids[i]);
        if (!k || !node_add_kid(c, k)) {
            node_free(k);
            goto fail;
        }
    }
    return c;
fail:
    node_free(c);
    return NULL;
}

static struct node *kid_named(const struct node *n, const char *name, size_t len)
{
    for (u32 i = 0; i < n->nkids; i++)
        if (strlen(n->kids[i]->name) == len && !memcmp(n->kids[i]->name, name, len))
            return n->kids[i];
    return NULL;
}

/* The node at a canonical absolute path, or NULL. *nearest: the deepest node that
 * exists on the way (the root at least). */
static struct node *lookup(struct node *root, const char *path, struct node **nearest)
{
    struct node *n = root;
    const char *p = path + 1;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        struct node *k = kid_named(n, p, len);
        if (!k) {
            if (nearest)
                *nearest = n;
            return NULL;
        }
        n = k;
        p += len + (e != NULL);
    }
    if (nearest)
        *nearest = n;
    return n;
}

static u32 count_owned(const struct node *n, u16 dom)
{
    u32 c = n->nperms && n->perms[0].dom == dom;
    for (u32 i = 0; i < n->nkids; i++)
        c += count_owned(n->kids[i], dom);
    return c;
}

/* ---- paths ---- */
/* xenstored's is_valid_nodename: absolute, no empty component, no trailing slash,
 * [A-Za-z0-9-/_@] only. Special watch paths start with '@'. */
static bool valid_chars(const char *p)
{
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '/' || *p == '_' || *p == '@'))
            return false;
    return true;
}

/* The canonical form of path as the guest (or the host) names it: relative paths are
 * the domain's. 0 with out filled (cap ≥ XENSTORE_ABS_PATH_MAX + 1), or an errno. */
static int canonical(const struct xenstore *s, const char *path, bool allow_special, char *out, size_t cap)
{
    size_t len = strlen(path);
    if (allow_special && path[0] == '@') {
        if (strcmp(path, "@introduceDomain") && strcmp(path, "@releaseDomain"))
            return EINVAL;
        snprintf(out, cap, "%s", path);
        return 0;
    }
    if (!valid_chars(path) || strchr(path, '@'))
        return EINVAL;
    if (path[0] != '/') {
        if (len > XENSTORE_REL_PATH_MAX)
            return E2BIG;
        if (!len || strlen(s->dompath) + 1 + len >= cap)
            return EINVAL;
        snprintf(out, cap, "%s/%s", s->dompath, path);
    } else {
        if (len > XENSTORE_ABS_PATH_MAX || len >= cap)
            return E2BIG;
        memcpy(out, path, len + 1);
    }
    size_t n = strlen(out);
    if (strstr(out, "//") || (n > 1 && out[n - 1] == '/'))
        return EINVAL;
    return 0;
}

/* Whether path is at or below base */
static bool is_under(const char *path, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(path, base, n))
        return false;
    return path[n] == 0 || path[n] == '/' || (n == 1 && base[0] == '/');
}

/* ---- one request's context: who asks, in which tree ---- */
struct op {
    struct xenstore *s;
    bool priv;
    u16 dom;
    struct tx *t;
    struct node *root;
};

static u8 perm_for(const struct op *o, const struct node *n)
{
    if (o->priv || !n->nperms || n->perms[0].dom == o->dom)
        return PERM_BOTH;
    for (u32 i = 1; i < n->nperms; i++)
        if (n->perms[i].dom == o->dom)
            return n->perms[i].perm;
    return n->perms[0].perm;
}

static bool note_touched(struct op *o, const char *path, const struct node *n)
{
    struct tx *t = o->t;
    if (!t)
        return true;
    for (u32 i = 0; i < t->ntouched; i++)
        if (!strcmp(t->touched[i].path, path))
            return true;
    if (!grow(&t->touched, t->ntouched, &t->tcap, sizeof(*t->touched), 8))
        return false;
    if (!(t->touched[t->ntouched].path = strdup(path)))
        return false;
    t->touched[t->ntouched++].gen = n ? n->gen : 0;
    return true;
}

static void parent_path(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    char *sl = strrchr(out, '/');
    if (sl == out)
        out[1] = 0;
    else if (sl)
        *sl = 0;
}

/* The node for reading (xenstored's get_node): ENOENT when it does not exist (EACCES if
 * the nearest node that does is not readable: nothing is learnt through the error),
 * EACCES without the permission asked for. */
static int get_node(struct op *o, const char *path, u8 want, struct node **out)
{
    struct node *nearest = NULL;
    struct node *n = lookup(o->root, path, &nearest);
    if (!note_touched(o, path, n))
        return ENOMEM;
    if (!n)
        return perm_for(o, nearest) & PERM_READ ? ENOENT : EACCES;
    if ((perm_for(o, n) & want) != want)
        return EACCES;
    *out = n;
    return 0;
}

/* ---- watches ---- */
static void queue_bytes(struct xenstore *s, const void *p, size_t n);

static void queue_message(struct xenstore *s, u32 type, u32 req_id, u32 tx_id, const void *p, size_t n)
{
    struct xsd_sockmsg h = { .type = type, .req_id = req_id, .tx_id = tx_id, .len = (u32)n };
    queue_bytes(s, &h, sizeof(h));
    queue_bytes(s, p, n);
}

static void queue_event(struct xenstore *s, const struct watch *w, const char *path)
{
    const char *shown = path;
    size_t dl = strlen(s->dompath);
    if (w->relative && !strncmp(path, s->dompath, dl) && path[dl] == '/')
        shown = path + dl + 1;
    size_t pl = strlen(shown), tl = strlen(w->token);
    if (s->out.len - s->out.pos + HDR + pl + tl + 2 > MAX_QUEUED) {
        if (!s->dropped_events)
            nestor_log("xenstore: the guest leaves its watch events unread; dropping them");
        s->dropped_events = true;
        return;
    }
    char buf[sizeof(struct xsd_sockmsg) + XENSTORE_ABS_PATH_MAX + XENSTORE_PAYLOAD_MAX + 2];
    if (pl + tl + 2 > sizeof(buf) - HDR)
        return;
    struct xsd_sockmsg h = { .type = XS_WATCH_EVENT, .len = (u32)(pl + tl + 2) };
    memcpy(buf, &h, HDR);
    memcpy(buf + HDR, shown, pl + 1);
    memcpy(buf + HDR + pl + 1, w->token, tl + 1);
    size_t n = HDR + pl + tl + 2;
    bytes_append(s->deferring ? &s->deferred : &s->out, buf, n);
}

static void queue_host_event(struct xenstore *s, int id, const char *path)
{
    if (!grow(&s->pending, s->npending, &s->pcap, sizeof(*s->pending), 8))
        return;
    char *c = strdup(path);
    if (c)
        s->pending[s->npending++] = (struct pending){ id, c };
}

/* A node changed (exact) or a subtree went (rm): the watches at or above it fire with its
 * path, and for a removal those below it with their own, as xenstored's fire_watches.
 * A guest's watch fires only for nodes it may read (readable is what it could read). */
static void fire(struct xenstore *s, const char *path, bool subtree, bool guest_may_read)
{
    for (u32 i = 0; i < s->nwatches; i++) {
        const struct watch *w = &s->watches[i];
        if (w->path[0] == '@')
            continue;
        const char *name = NULL;
        if (is_under(path, w->path))
            name = path;
        else if (subtree && is_under(w->path, path))
            name = w->path;
        if (!name)
            continue;
        if (w->host)
            queue_host_event(s, w->id, name);
        else if (guest_may_read)
            queue_event(s, w, name);
    }
}

static void fire_for(struct op *o, const char *path, const struct node *n, bool subtree)
{
    struct op guest = { o->s, false, o->s->domid, NULL, o->root };
    bool readable = !n || (perm_for(&guest, n) & PERM_READ);
    fire(o->s, path, subtree, readable);
}

/* A change: fired now, or at commit for a transaction */
static int changed(struct op *o, const char *path, const struct node *n, bool subtree)
{
    struct tx *t = o->t;
    if (!t) {
        fire_for(o, path, n, subtree);
        return 0;
    }
    if (!grow(&t->changes, t->nchanges, &t->ccap, sizeof(*t->changes), 8))
        return ENOMEM;
    if (!(t->changes[t->nchanges].path = strdup(path)))
        return ENOMEM;
    t->changes[t->nchanges++].subtree = subtree;
    return 0;
}

/* ---- the operations ---- */
/* Creates path and its missing parents (xenstored's create_node): the nearest existing
 * node must be writable; each new node inherits its parent's permissions, an
 * unprivileged creator owning it; the domain's node quota counts the new ones. */
static int create(struct op *o, const char *path, struct node **out)
{
    struct node *nearest = NULL;
    if ((*out = lookup(o->root, path, &nearest)))
        return 0;
    if (!(perm_for(o, nearest) & PERM_WRITE))
        return EACCES;
    /* the components still to make: those below nearest */
    const char *rest = path + 1;
    u32 depth = 0;
    for (struct node *n = nearest; n->parent; n = n->parent)
        depth++;
    for (u32 i = 0; i < depth; i++) {
        rest = strchr(rest, '/');
        rest = rest ? rest + 1 : "";
    }
    u32 add = 1;
    for (const char *p = rest; (p = strchr(p, '/')); p++)
        add++;
    if (!o->priv && count_owned(o->root, o->dom) + add > o->s->lim.nodes)
        return ENOSPC;
    struct node *parent = nearest;
    while (*rest) {
        const char *e = strchr(rest, '/');
        size_t len = e ? (size_t)(e - rest) : strlen(rest);
        struct node *k = node_new(rest, len);
        if (!k || !node_set_value(k, "", 0) || !node_set_perms(k, parent->perms, parent->nperms) ||
            !node_add_kid(parent, k)) {
            node_free(k);
            return ENOMEM;
        }
        if (!o->priv && k->nperms)
            k->perms[0].dom = o->dom;
        k->gen = ++o->s->gen;
        parent->gen = o->s->gen;
        parent = k;
        rest += len + (e != NULL);
    }
    *out = parent;
    return 0;
}

static int do_write(struct op *o, const char *path, const void *v, size_t len)
{
    if (!o->priv && len > o->s->lim.entry_size)
        return ENOSPC;
    struct node *n = lookup(o->root, path, NULL);
    char pp[XENSTORE_ABS_PATH_MAX + 1];
    if (!note_touched(o, path, n))
        return ENOMEM;
    if (n) {
        if (!(perm_for(o, n) & PERM_WRITE))
            return EACCES;
    } else {
        parent_path(path, pp, sizeof(pp));
        if (!note_touched(o, pp, lookup(o->root, pp, NULL)))
            return ENOMEM;
        int rc = create(o, path, &n);
        if (rc)
            return rc;
    }
    if (!node_set_value(n, v, len))
        return ENOMEM;
    n->gen = ++o->s->gen;
    return changed(o, path, n, false);
}

static int do_mkdir(struct op *o, const char *path)
{
    struct node *n = lookup(o->root, path, NULL);
    if (!note_touched(o, path, n))
        return ENOMEM;
    if (n)
        return 0; /* xenstored: an existing node is left alone, no watch fires */
    char pp[XENSTORE_ABS_PATH_MAX + 1];
    parent_path(path, pp, sizeof(pp));
    if (!note_touched(o, pp, lookup(o->root, pp, NULL)))
        return ENOMEM;
    int rc = create(o, path, &n);
    return rc ? rc : changed(o, path, n, false);
}

static int do_rm(struct op *o, const char *path)
{
    if (!strcmp(path, "/"))
        return EINVAL;
    struct node *n = lookup(o->root, path, NULL);
    char pp[XENSTORE_ABS_PATH_MAX + 1];
    parent_path(path, pp, sizeof(pp));
    struct node *parent = lookup(o->root, pp, NULL);
    if (!note_touched(o, path, n) || !note_touched(o, pp, parent))
        return ENOMEM;
    if (!n) /* xenstored: removing what is not there succeeds if its parent is */
        return parent ? 0 : ENOENT;
    if (!(perm_for(o, n) & PERM_WRITE))
        return EACCES;
    /* who may read it is decided before it goes */
    struct op guest = { o->s, false, o->s->domid, NULL, o->root };
    bool readable = perm_for(&guest, n) & PERM_READ;
    node_unlink(n);
    node_free(n);
    parent->gen = ++o->s->gen;
    if (!o->t) {
        fire(o->s, path, true, readable);
        return 0;
    }
    return changed(o, path, NULL, true);
}

static int parse_perms(const struct op *o, const char *const *str, int n, struct xs_perm *out)
{
    if (n < 1)
        return EINVAL;
    if (!o->priv && (u32)n > o->s->lim.perms)
        return ENOSPC;
    for (int i = 0; i < n; i++) {
        const char *p = str[i];
        u8 perm;
        switch (p[0]) {
        case 'n': perm = PERM_NONE; break;
        case 'r': perm = PERM_READ; break;
        case 'w': perm = PERM_WRITE; break;
        case 'b': perm = PERM_BOTH; break;
        default: return EINVAL;
        }
        char *end;
        if (!p[1] || p[1] < '0' || p[1] > '9')
            return EINVAL;
        unsigned long d = strtoul(p + 1, &end, 10);
        if (*end || d > 0xffff)
            return EINVAL;
        out[i] = (struct xs_perm){ (u16)d, perm };
    }
    return 0;
}

static int do_set_perms(struct op *o, const char *path, const char *const *str, int n)
{
    struct xs_perm p[64];
    if (n > 64)
        return o->priv ? EINVAL : ENOSPC;
    int rc = parse_perms(o, str, n, p);
    if (rc)
        return rc;
    struct node *node;
    if ((rc = get_node(o, path, PERM_WRITE, &node)))
        return rc;
    /* an unprivileged domain may not give its node away */
    if (!o->priv && node->nperms && p[0].dom != node->perms[0].dom)
        return EPERM;
    if (!node_set_perms(node, p, (u32)n))
        return ENOMEM;
    node->gen = ++o->s->gen;
    return changed(o, path, node, false);
}

/* ---- transactions ---- */
static struct tx *tx_find(struct xenstore *s, u32 id)
{
    for (u32 i = 0; i < s->ntx; i++)
        if (s->tx[i].id == id)
            return &s->tx[i];
    return NULL;
}

static void tx_free(struct tx *t)
{
    node_free(t->root);
    for (u32 i = 0; i < t->ntouched; i++)
        free(t->touched[i].path);
    free(t->touched);
    for (u32 i = 0; i < t->nchanges; i++)
        free(t->changes[i].path);
    free(t->changes);
}

static void tx_remove(struct xenstore *s, struct tx *t)
{
    tx_free(t);
    u32 i = (u32)(t - s->tx);
    memmove(&s->tx[i], &s->tx[i + 1], sizeof(*t) * (s->ntx - i - 1));
    s->ntx--;
}

static int tx_start(struct xenstore *s, u32 *id)
{
    if (s->ntx >= s->lim.transactions)
        return ENOSPC;
    struct tx *a = realloc(s->tx, sizeof(*a) * (s->ntx + 1));
    if (!a)
        return ENOMEM;
    s->tx = a;
    struct tx *t = &s->tx[s->ntx];
    memset(t, 0, sizeof(*t));
    if (!(t->root = node_clone(s->root)))
        return ENOMEM;
    /* ids are never 0 (no transaction) and not reused while open (t is not counted yet) */
    do
        t->id = ++s->next_tx;
    while (!t->id || tx_find(s, t->id));
    s->ntx++;
    *id = t->id;
    return 0;
}

/* Copies node path from the transaction's tree into the live one (value, permissions,
 * the parents it lacks), or removes it there if the transaction removed it. */
static int tx_apply_one(struct xenstore *s, struct tx *t, const char *path)
{
    struct node *src = lookup(t->root, path, NULL);
    struct node *dst = lookup(s->root, path, NULL);
    if (!src) {
        if (dst && dst != s->root) {
            struct node *parent = dst->parent;
            node_unlink(dst);
            node_free(dst);
            parent->gen = ++s->gen;
        }
        return 0;
    }
    if (!dst) {
        /* make the chain down from the nearest existing node, copying each level */
        struct node *nearest;
        lookup(s->root, path, &nearest);
        struct node *from = src;
        /* find src's ancestor that corresponds to nearest's child */
        u32 depth_n = 0, depth_s = 0;
        for (struct node *n = nearest; n->parent; n = n->parent)
            depth_n++;
        for (struct node *n = src; n->parent; n = n->parent)
            depth_s++;
        struct node *chain[XENSTORE_ABS_PATH_MAX / 2];
        u32 k = 0;
        for (from = src; depth_s > depth_n && k < sizeof(chain) / sizeof(chain[0]); depth_s--)
            chain[k++] = from, from = from->parent;
        struct node *parent = nearest;
        while (k--) {
            struct node *c = node_new(chain[k]->name, strlen(chain[k]->name));
            if (!c || !node_set_value(c, chain[k]->value, chain[k]->len) ||
                !node_set_perms(c, chain[k]->perms, chain[k]->nperms) || !node_add_kid(parent, c)) {
                node_free(c);
                return ENOMEM;
            }
            c->gen = ++s->gen;
            parent->gen = s->gen;
            parent = c;
        }
        return 0;
    }
    if (!node_set_value(dst, src->value, src->len) || !node_set_perms(dst, src->perms, src->nperms))
        return ENOMEM;
    dst->gen = ++s->gen;
    return 0;
}

static int tx_end(struct xenstore *s, struct tx *t, bool commit)
{
    if (!commit) {
        tx_remove(s, t);
        return 0;
    }
    for (u32 i = 0; i < t->ntouched; i++) {
        const struct node *n = lookup(s->root, t->touched[i].path, NULL);
        if ((n ? n->gen : 0) != t->touched[i].gen) {
            tx_remove(s, t);
            return EAGAIN;
        }
    }
    int rc = 0;
    for (u32 i = 0; i < t->nchanges && !rc; i++)
        rc = tx_apply_one(s, t, t->changes[i].path);
    if (!rc)
        for (u32 i = 0; i < t->nchanges; i++) {
            const char *path = t->changes[i].path;
            struct op live = { s, true, 0, NULL, s->root };
            fire_for(&live, path, lookup(s->root, path, NULL), t->changes[i].subtree);
        }
    tx_remove(s, t);
    return rc;
}

/* ---- output ---- */
static void queue_bytes(struct xenstore *s, const void *p, size_t n)
{
    bytes_append(&s->out, p, n);
}

size_t xenstore_guest_pending(const struct xenstore *s)
{
    return s->out.len - s->out.pos;
}

size_t xenstore_guest_output(struct xenstore *s, void *buf, size_t cap)
{
    size_t n = xenstore_guest_pending(s);
    if (n > cap)
        n = cap;
    if (!n)
        return 0;
    memcpy(buf, s->out.p + s->out.pos, n);
    s->out.pos += n;
    return n;
}

static void deliver_host_events(struct xenstore *s)
{
    if (s->delivering)
        return;
    s->delivering = true;
    /* a callback may write and so add events: the list is taken as it grows */
    for (u32 i = 0; i < s->npending; i++) {
        struct pending p = s->pending[i];
        for (u32 w = 0; w < s->nwatches; w++)
            if (s->watches[w].host && s->watches[w].id == p.id) {
                s->watches[w].fn(s->watches[w].opaque, p.path);
                break;
            }
        free(s->pending[i].path);
    }
    s->npending = 0;
    s->delivering = false;
    if (s->output_ready && xenstore_guest_pending(s))
        s->output_ready(s->output_opaque);
}

/* ---- the wire protocol ---- */
/* The request's strings: the payload split at NULs; the last must end the payload
 * (xenstored's get_strings). Returns how many (≤ max), or -1. */
static int strings(const char *p, u32 len, const char **v, int max)
{
    if (!len || p[len - 1])
        return -1;
    int n = 0;
    for (u32 i = 0; i < len;) {
        if (n == max)
            return -1;
        v[n++] = p + i;
        i += (u32)strlen(p + i) + 1;
    }
    return n;
}

static const char *errname(int e)
{
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (xsd_errors[i].errnum == e)
            return xsd_errors[i].errstring;
    return "EIO";
}

struct req {
    const struct xsd_sockmsg *h;
    const char *p;
    struct op o;
    /* the message's path, for those whose payload is one path (canonical) */
    char path[XENSTORE_ABS_PATH_MAX + 1];
    /* the reply */
    char *r;
    size_t rlen, rcap;
};

static bool reply_add(struct req *q, const void *p, size_t n)
{
    if (q->rlen + n > q->rcap)
        return false;
    memcpy(q->r + q->rlen, p, n);
    q->rlen += n;
    return true;
}

static bool reply_str(struct req *q, const char *s)
{
    return reply_add(q, s, strlen(s) + 1);
}

static int one_path(struct req *q, char *path)
{
    const char *v[1];
    if (strings(q->p, q->h->len, v, 1) != 1)
        return EINVAL;
    return canonical(q->o.s, v[0], false, path, XENSTORE_ABS_PATH_MAX + 1);
}

static int h_read(struct req *q)
{
    struct node *n;
    int rc = get_node(&q->o, q->path, PERM_READ, &n);
    if (rc)
        return rc;
    return reply_add(q, n->value, n->len) ? 0 : E2BIG;
}

static int h_write(struct req *q)
{
    u32 len = q->h->len;
    const char *nul = memchr(q->p, 0, len);
    if (!nul)
        return EINVAL;
    char path[XENSTORE_ABS_PATH_MAX + 1];
    int rc = canonical(q->o.s, q->p, false, path, sizeof(path));
    if (rc)
        return rc;
    size_t off = (size_t)(nul - q->p) + 1;
    return do_write(&q->o, path, q->p + off, len - off);
}

static int h_mkdir(struct req *q)
{
    return do_mkdir(&q->o, q->path);
}

static int h_rm(struct req *q)
{
    return do_rm(&q->o, q->path);
}

static int h_directory(struct req *q)
{
    struct node *n;
    int rc = get_node(&q->o, q->path, PERM_READ, &n);
    if (rc)
        return rc;
    for (u32 i = 0; i < n->nkids; i++)
        if (!reply_str(q, n->kids[i]->name))
            return E2BIG;
    return 0;
}

/* DIRECTORY_PART path offset: the node's generation, then the children's names from
 * byte offset of their list on, as many as fit; an empty name ends a complete list. */
static int h_directory_part(struct req *q)
{
    const char *v[2];
    if (strings(q->p, q->h->len, v, 2) != 2)
        return EINVAL;
    char path[XENSTORE_ABS_PATH_MAX + 1], *end;
    int rc = canonical(q->o.s, v[0], false, path, sizeof(path));
    if (rc)
        return rc;
    unsigned long off = strtoul(v[1], &end, 10);
    if (*end || !*v[1] || v[1][0] < '0' || v[1][0] > '9')
        return EINVAL;
    struct node *n;
    if ((rc = get_node(&q->o, path, PERM_READ, &n)))
        return rc;
    char gen[24];
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)n->gen);
    reply_str(q, gen);
    size_t at = 0;
    u32 i = 0;
    for (; i < n->nkids; i++) {
        size_t l = strlen(n->kids[i]->name) + 1;
        if (at + l > off)
            break;
        at += l;
    }
    if (at != off && i < n->nkids)
        return EINVAL; /* not at a name's start */
    if (off > at)
        return EINVAL;
    for (; i < n->nkids; i++) {
        /* leave room for the end mark */
        if (q->rlen + strlen(n->kids[i]->name) + 2 > q->rcap)
            return 0;
        reply_str(q, n->kids[i]->name);
    }
    reply_add(q, "", 1);
    return 0;
}

static int h_get_perms(struct req *q)
{
    struct node *n;
    int rc = get_node(&q->o, q->path, PERM_READ, &n);
    if (rc)
        return rc;
    static const char letter[] = { 'n', 'r', 'w', 'b' };
    for (u32 i = 0; i < n->nperms; i++) {
        char b[8];
        snprintf(b, sizeof(b), "%c%u", letter[n->perms[i].perm & 3], n->perms[i].dom);
        if (!reply_str(q, b))
            return E2BIG;
    }
    return 0;
}

static int h_set_perms(struct req *q)
{
    const char *v[66];
    int n = strings(q->p, q->h->len, v, 66);
    if (n < 2)
        return n < 0 && !q->o.priv ? ENOSPC : EINVAL;
    char path[XENSTORE_ABS_PATH_MAX + 1];
    int rc = canonical(q->o.s, v[0], false, path, sizeof(path));
    return rc ? rc : do_set_perms(&q->o, path, v + 1, n - 1);
}

static int h_watch(struct req *q)
{
    struct xenstore *s = q->o.s;
    const char *v[2];
    if (strings(q->p, q->h->len, v, 2) != 2)
        return EINVAL;
    char path[XENSTORE_ABS_PATH_MAX + 1];
    int rc = canonical(s, v[0], true, path, sizeof(path));
    if (rc)
        return rc;
    u32 mine = 0;
    for (u32 i = 0; i < s->nwatches; i++) {
        const struct watch *w = &s->watches[i];
        if (w->host)
            continue;
        mine++;
        if (!strcmp(w->path, path) && !strcmp(w->token, v[1]))
            return EEXIST;
    }
    if (mine >= s->lim.watches)
        return E2BIG;
    if (!grow(&s->watches, s->nwatches, &s->wcap, sizeof(*s->watches), 8))
        return ENOMEM;
    struct watch w = { strdup(path), strdup(v[1]), v[0][0] != '/' && v[0][0] != '@', false, NULL, NULL, 0 };
    if (!w.path || !w.token) {
        free(w.path);
        free(w.token);
        return ENOMEM;
    }
    s->watches[s->nwatches++] = w;
    return 0;
}

static int h_unwatch(struct req *q)
{
    struct xenstore *s = q->o.s;
    const char *v[2];
    if (strings(q->p, q->h->len, v, 2) != 2)
        return EINVAL;
    char path[XENSTORE_ABS_PATH_MAX + 1];
    int rc = canonical(s, v[0], true, path, sizeof(path));
    if (rc)
        return rc;
    for (u32 i = 0; i < s->nwatches; i++) {
        struct watch *w = &s->watches[i];
        if (!w->host && !strcmp(w->path, path) && !strcmp(w->token, v[1])) {
            free(w->path);
            free(w->token);
            memmove(w, w + 1, sizeof(*w) * (s->nwatches - i - 1));
            s->nwatches--;
            return 0;
        }
    }
    return ENOENT;
}

static int h_transaction_start(struct req *q)
{
    const char *v[1];
    /* xenstored takes an empty string, or nothing */
    if (q->h->len && strings(q->p, q->h->len, v, 1) != 1)
        return EINVAL;
    if (q->h->tx_id)
        return EBUSY;
    u32 id;
    int rc = tx_start(q->o.s, &id);
    if (rc)
        return rc;
    char b[16];
    snprintf(b, sizeof(b), "%u", id);
    return reply_str(q, b) ? 0 : EIO;
}

static int h_transaction_end(struct req *q)
{
    const char *v[1];
    if (strings(q->p, q->h->len, v, 1) != 1 || (strcmp(v[0], "T") && strcmp(v[0], "F")))
        return EINVAL;
    if (!q->o.t)
        return ENOENT;
    struct tx *t = q->o.t;
    q->o.t = NULL;
    return tx_end(q->o.s, t, v[0][0] == 'T');
}

static int domid_arg(struct req *q, unsigned long *d)
{
    const char *v[1];
    char *end;
    if (strings(q->p, q->h->len, v, 1) != 1 || v[0][0] < '0' || v[0][0] > '9')
        return EINVAL;
    *d = strtoul(v[0], &end, 10);
    return *end || *d > 0xffff ? EINVAL : 0;
}

static int h_get_domain_path(struct req *q)
{
    unsigned long d;
    int rc = domid_arg(q, &d);
    if (rc)
        return rc;
    char b[32];
    snprintf(b, sizeof(b), "/local/domain/%lu", d);
    return reply_str(q, b) ? 0 : EIO;
}

static int h_is_domain_introduced(struct req *q)
{
    unsigned long d;
    int rc = domid_arg(q, &d);
    if (rc)
        return rc;
    return reply_str(q, d == 0 || d == q->o.s->domid ? "T" : "F") ? 0 : EIO;
}

static void drop_guest_watches_and_tx(struct xenstore *s)
{
    u32 k = 0;
    for (u32 i = 0; i < s->nwatches; i++) {
        if (s->watches[i].host) {
            s->watches[k++] = s->watches[i];
        } else {
            free(s->watches[i].path);
            free(s->watches[i].token);
        }
    }
    s->nwatches = k;
    while (s->ntx)
        tx_remove(s, &s->tx[s->ntx - 1]);
}

static int h_reset_watches(struct req *q)
{
    drop_guest_watches_and_tx(q->o.s);
    q->o.t = NULL;
    return 0;
}

/* domain 0's messages (introduce a domain, debug, ...): a domU may not */
static int h_privileged(struct req *q)
{
    (void)q;
    return EACCES;
}

/* What the daemon sends, not takes */
static int h_invalid(struct req *q)
{
    (void)q;
    return EINVAL;
}

/* One handler per message type, with what the dispatcher does around it. in_tx: it works
 * inside a transaction (tx_id names one), otherwise tx_id is ignored, as xenstored does;
 * path: its payload is one path (made canonical in q->path first); ok: its reply is "OK". */
static const struct {
    const char *name;
    int (*fn)(struct req *q);
    bool in_tx, path, ok;
} handlers[XS_TYPE_COUNT] = {
    [XS_CONTROL] = { "CONTROL", h_privileged, false, false, false },
    [XS_DIRECTORY] = { "DIRECTORY", h_directory, true, true, false },
    [XS_READ] = { "READ", h_read, true, true, false },
    [XS_GET_PERMS] = { "GET_PERMS", h_get_perms, true, true, false },
    [XS_WATCH] = { "WATCH", h_watch, false, false, true },
    [XS_UNWATCH] = { "UNWATCH", h_unwatch, false, false, true },
    [XS_TRANSACTION_START] = { "TRANSACTION_START", h_transaction_start, false, false, false },
    [XS_TRANSACTION_END] = { "TRANSACTION_END", h_transaction_end, true, false, true },
    [XS_INTRODUCE] = { "INTRODUCE", h_privileged, false, false, false },
    [XS_RELEASE] = { "RELEASE", h_privileged, false, false, false },
    [XS_GET_DOMAIN_PATH] = { "GET_DOMAIN_PATH", h_get_domain_path, false, false, false },
    [XS_WRITE] = { "WRITE", h_write, true, false, true },
    [XS_MKDIR] = { "MKDIR", h_mkdir, true, true, true },
    [XS_RM] = { "RM", h_rm, true, true, true },
    [XS_SET_PERMS] = { "SET_PERMS", h_set_perms, true, false, true },
    [XS_WATCH_EVENT] = { "WATCH_EVENT", h_invalid, false, false, false },
    [XS_ERROR] = { "ERROR", h_invalid, false, false, false },
    [XS_IS_DOMAIN_INTRODUCED] = { "IS_DOMAIN_INTRODUCED", h_is_domain_introduced, false, false, false },
    [XS_RESUME] = { "RESUME", h_privileged, false, false, false },
    [XS_SET_TARGET] = { "SET_TARGET", h_privileged, false, false, false },
    [XS_RESET_WATCHES] = { "RESET_WATCHES", h_reset_watches, false, false, true },
    [XS_DIRECTORY_PART] = { "DIRECTORY_PART", h_directory_part, true, false, false },
};

/* Handles one whole message of the guest's: its reply (or XS_ERROR) is queued, then a
 * new watch's first event, then watch events of what it changed. */
static void handle(struct xenstore *s, const struct xsd_sockmsg *h, const char *payload)
{
    char reply[XENSTORE_PAYLOAD_MAX];
    struct req q = { .h = h, .p = payload, .o = { s, false, s->domid, NULL, s->root }, .r = reply,
                     .rcap = sizeof(reply) };
    int rc;
    s->deferring = true;
    s->deferred.pos = s->deferred.len = 0;
    if (h->type >= XS_TYPE_COUNT || !handlers[h->type].fn) {
        rc = EINVAL;
    } else {
        if (handlers[h->type].in_tx && h->tx_id) {
            q.o.t = tx_find(s, h->tx_id);
            if (q.o.t)
                q.o.root = q.o.t->root;
        }
        if (handlers[h->type].in_tx && h->tx_id && !q.o.t)
            rc = ENOENT;
        else if (handlers[h->type].path && (rc = one_path(&q, q.path)))
            ;
        else if (!(rc = handlers[h->type].fn(&q)) && handlers[h->type].ok)
            rc = reply_str(&q, "OK") ? 0 : EIO;
    }
    s->deferring = false;
    if (rc)
        queue_message(s, XS_ERROR, h->req_id, h->tx_id, errname(rc), strlen(errname(rc)) + 1);
    else
        queue_message(s, h->type, h->req_id, h->tx_id, reply, q.rlen);
    if (!rc && h->type == XS_WATCH) {
        /* xenstored fires a new watch at once */
        const struct watch *w = &s->watches[s->nwatches - 1];
        queue_event(s, w, w->path);
    }
    queue_bytes(s, s->deferred.p, s->deferred.len);
    s->deferred.len = 0;
}

long xenstore_guest_input(struct xenstore *s, const void *data, size_t len)
{
    if (s->broken)
        return -1;
    const u8 *p = data;
    size_t taken = 0;
    while (taken < len) {
        if (s->in_len < HDR) {
            /* a new message starts only while the guest keeps up with its replies */
            if (!s->in_len && xenstore_guest_pending(s) > s->lim.outstanding)
                break;
            size_t n = HDR - s->in_len < len - taken ? HDR - s->in_len : len - taken;
            memcpy(s->in + s->in_len, p + taken, n);
            s->in_len += (u32)n;
            taken += n;
            if (s->in_len < HDR)
                break;
        }
        struct xsd_sockmsg h;
        memcpy(&h, s->in, HDR);
        if (h.len > XENSTORE_PAYLOAD_MAX) {
            nestor_log("xenstore: the guest sent a message of %u bytes (at most %u): its connection is broken",
                       h.len, XENSTORE_PAYLOAD_MAX);
            s->broken = true;
            return -1;
        }
        size_t want = HDR + h.len - s->in_len;
        size_t n = want < len - taken ? want : len - taken;
        memcpy(s->in + s->in_len, p + taken, n);
        s->in_len += (u32)n;
        taken += n;
        if (s->in_len < HDR + h.len)
            break;
        s->in_len = 0;
        handle(s, &h, (const char *)s->in + HDR);
        deliver_host_events(s);
    }
    return (long)taken;
}

bool xenstore_guest_broken(const struct xenstore *s)
{
    return s->broken;
}

void xenstore_guest_break(struct xenstore *s)
{
    s->broken = true;
}

void xenstore_guest_reset(struct xenstore *s)
{
    drop_guest_watches_and_tx(s);
    s->in_len = 0;
    s->out.pos = s->out.len = 0;
    s->broken = false;
}

void xenstore_set_output_ready(struct xenstore *s, void (*fn)(void *opaque), void *opaque)
{
    s->output_ready = fn;
    s->output_opaque = opaque;
}

/* ---- lifetime ---- */
struct xenstore *xenstore_create(u16 domid, const struct xenstore_limits *limits)
{
    struct xenstore *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->domid = domid;
    s->lim = *limits;
    snprintf(s->dompath, sizeof(s->dompath), "/local/domain/%u", domid);
    struct xs_perm root_perm = { 0, PERM_NONE };
    if (!(s->root = node_new("", 0)) || !node_set_value(s->root, "", 0) ||
        !node_set_perms(s->root, &root_perm, 1)) {
        xenstore_destroy(s);
        return NULL;
    }
    return s;
}

u16 xenstore_domid(const struct xenstore *s)
{
    return s->domid;
}

void xenstore_destroy(struct xenstore *s)
{
    if (!s)
        return;
    node_free(s->root);
    drop_guest_watches_and_tx(s);
    for (u32 i = 0; i < s->nwatches; i++) {
        free(s->watches[i].path);
        free(s->watches[i].token);
    }
    free(s->watches);
    free(s->tx);
    for (u32 i = 0; i < s->npending; i++)
        free(s->pending[i].path);
    free(s->pending);
    free(s->out.p);
    free(s->deferred.p);
    free(s);
}

/* ---- domain 0's access ---- */
static int host_path(const struct xenstore *s, const char *path, char *out)
{
    if (path[0] != '/')
        return -EINVAL;
    int rc = canonical(s, path, false, out, XENSTORE_ABS_PATH_MAX + 1);
    return rc ? -rc : 0;
}

static struct op host_op(struct xenstore *s)
{
    return (struct op){ s, true, 0, NULL, s->root };
}

static int host_done(struct xenstore *s, int rc)
{
    deliver_host_events(s);
    if (s->output_ready && xenstore_guest_pending(s))
        s->output_ready(s->output_opaque);
    return -rc;
}

int xenstore_write(struct xenstore *s, const char *path, const void *value, size_t len)
{
    char p[XENSTORE_ABS_PATH_MAX + 1];
    int rc = host_path(s, path, p);
    if (rc)
        return rc;
    if (len > XENSTORE_PAYLOAD_MAX)
        return -E2BIG;
    struct op o = host_op(s);
    return host_done(s, do_write(&o, p, value, len));
}

int xenstore_printf(struct xenstore *s, const char *path, const char *fmt, ...)
{
    char v[XENSTORE_PAYLOAD_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(v))
        return -E2BIG;
    return xenstore_write(s, path, v, (size_t)n);
}

long xenstore_read(struct xenstore *s, const char *path, char *buf, size_t cap)
{
    char p[XENSTORE_ABS_PATH_MAX + 1];
    int rc = host_path(s, path, p);
    if (rc)
        return rc;
    struct node *n = lookup(s->root, p, NULL);
    if (!n)
        return -ENOENT;
    if (n->len + 1 > cap)
        return -E2BIG;
    memcpy(buf, n->value, n->len);
    buf[n->len] = 0;
    return n->len;
}

int xenstore_mkdir(struct xenstore *s, const char *path)
{
    char p[XENSTORE_ABS_PATH_MAX + 1];
    int rc = host_path(s, path, p);
    if (rc)
        return rc;
    struct op o = host_op(s);
    return host_done(s, do_mkdir(&o, p));
}

int xenstore_rm(struct xenstore *s, const char *path)
{
    char p[XENSTORE_ABS_PATH_MAX + 1];
    int rc = host_path(s, path, p);
    if (rc)
        return rc;
    struct op o = host_op(s);
    return host_done(s, do_rm(&o, p));
}

int xenstore_set_perms(struct xenstore *s, const char *path, const char *const *perms, int n)
{
    char p[XENSTORE_ABS_PATH_MAX + 1];
    int rc = host_path(s, path, p);
    if (rc)
        return rc;
    struct op o = host_op(s);
    return host_done(s, do_set_perms(&o, p, perms, n));
}

int xenstore_watch(struct xenstore *s, const char *path, xenstore_watch_fn fn, void *opaque)
{
    char p[XENSTORE_ABS_PATH_MAX + 1];
    if (host_path(s, path, p) || !fn)
        return -1;
    if (!grow(&s->watches, s->nwatches, &s->wcap, sizeof(*s->watches), 8))
        return -1;
    struct watch w = { strdup(p), strdup(""), false, true, fn, opaque, ++s->next_watch };
    if (!w.path || !w.token) {
        free(w.path);
        free(w.token);
        return -1;
    }
    s->watches[s->nwatches++] = w;
    return w.id;
}

void xenstore_unwatch(struct xenstore *s, int id)
{
    for (u32 i = 0; i < s->nwatches; i++)
        if (s->watches[i].host && s->watches[i].id == id) {
            free(s->watches[i].path);
            free(s->watches[i].token);
            memmove(&s->watches[i], &s->watches[i + 1], sizeof(s->watches[0]) * (s->nwatches - i - 1));
            s->nwatches--;
            return;
        }
}

static void dump_node(const struct node *n, const char *path, FILE *out)
{
    fprintf(out, "%s = \"", path[0] ? path : "/");
    for (u32 i = 0; i < n->len; i++) {
        u8 c = n->value[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            fputc(c, out);
        else
            fprintf(out, "\\x%02x", c);
    }
    fputc('"', out);
    static const char letter[] = { 'n', 'r', 'w', 'b' };
    fprintf(out, "   (");
    for (u32 i = 0; i < n->nperms; i++)
        fprintf(out, "%s%c%u", i ? "," : "", letter[n->perms[i].perm & 3], n->perms[i].dom);
    fprintf(out, ")\n");
    for (u32 i = 0; i < n->nkids; i++) {
        char sub[XENSTORE_ABS_PATH_MAX + 64];
        snprintf(sub, sizeof(sub), "%s/%s", path, n->kids[i]->name);
        dump_node(n->kids[i], sub, out);
    }
}

void xenstore_dump(const struct xenstore *s, FILE *out)
{
    dump_node(s->root, "", out);
}

/* ---- state ----
 * The tree (each node: name, value, permissions, generation, children, depth first),
 * the guest's connection (the message it is sending, the replies and events it has not
 * read, whether it broke the protocol), its watches and its transactions with their
 * trees and what they touched and changed. Host watches are the backends', made again
 * with the machine. */
#define MAX_DEPTH (XENSTORE_ABS_PATH_MAX / 2)
#define MAX_NODES (1u << 20)

static void put_node(struct state_buf *b, const struct node *n)
{
    state_put_str(b, n->name);
    state_put_u32(b, n->len);
    state_put(b, n->value, n->len);
    state_put_u32(b, n->nperms);
    for (u32 i = 0; i < n->nperms; i++) {
        state_put_u32(b, n->perms[i].dom);
        state_put_u8(b, n->perms[i].perm);
    }
    state_put_u64(b, n->gen);
    state_put_u32(b, n->nkids);
    for (u32 i = 0; i < n->nkids; i++)
        put_node(b, n->kids[i]);
}

static struct node *get_node_state(struct state_cursor *c, u32 depth, u32 *count)
{
    char name[XENSTORE_ABS_PATH_MAX + 1];
    if (depth > MAX_DEPTH || ++*count > MAX_NODES || !state_get_str(c, name, sizeof(name)) ||
        (depth && (!name[0] || strchr(name, '/'))) || (!depth && name[0]))
        return NULL;
    struct node *n = node_new(name, strlen(name));
    if (!n)
        return NULL;
    u32 len = state_get_u32(c);
    if (c->bad || len > XENSTORE_PAYLOAD_MAX || len > c->len - c->pos)
        goto fail;
    if (!node_set_value(n, c->p + c->pos, len))
        goto fail;
    c->pos += len;
    u32 np = state_get_u32(c);
    if (c->bad || !np || np > 64)
        goto fail;
    struct xs_perm p[64];
    for (u32 i = 0; i < np; i++) {
        u32 dom = state_get_u32(c);
        u8 perm = state_get_u8(c);
        if (dom > 0xffff || perm > PERM_BOTH)
            goto fail;
        p[i] = (struct xs_perm){ (u16)dom, perm };
    }
    if (!node_set_perms(n, p, np))
        goto fail;
    n->gen = state_get_u64(c);
    u32 nk = state_get_u32(c);
    if (c->bad || nk > c->len - c->pos)
        goto fail;
    for (u32 i = 0; i < nk; i++) {
        struct node *k = get_node_state(c, depth + 1, count);
        if (!k || kid_named(n, k->name, strlen(k->name)) || !node_add_kid(n, k)) {
            node_free(k);
            goto fail;
        }
    }
    return n;
fail:
    node_free(n);
    return NULL;
}

#define F(x) STATE_FIELD(struct xenstore, x)
#define N(x) STATE_NOT_STATE(struct xenstore, x)
static const struct state_field xenstore_fields[] = {
    N(domid), N(lim), N(root), F(gen), N(dompath), F(in), F(in_len), N(out), F(broken), F(dropped_events), N(tx), N(ntx), F(next_tx), N(watches), N(nwatches),
    N(wcap), N(next_watch), N(pending), N(npending), N(pcap), N(delivering), N(deferring),
    N(deferred), N(output_ready), N(output_opaque),
};
#undef F
#undef N

static void xenstore_save(void *obj, struct state_buf *b)
{
    struct xenstore *s = obj;
    put_node(b, s->root);
    state_put_u32(b, (u32)xenstore_guest_pending(s));
    if (xenstore_guest_pending(s))
        state_put(b, s->out.p + s->out.pos, xenstore_guest_pending(s));
    u32 guest = 0;
    for (u32 i = 0; i < s->nwatches; i++)
        guest += !s->watches[i].host;
    state_put_u32(b, guest);
    for (u32 i = 0; i < s->nwatches; i++)
        if (!s->watches[i].host) {
            state_put_str(b, s->watches[i].path);
            state_put_str(b, s->watches[i].token);
            state_put_u8(b, s->watches[i].relative);
        }
    state_put_u32(b, s->ntx);
    for (u32 i = 0; i < s->ntx; i++) {
        const struct tx *t = &s->tx[i];
        state_put_u32(b, t->id);
        put_node(b, t->root);
        state_put_u32(b, t->ntouched);
        for (u32 k = 0; k < t->ntouched; k++) {
            state_put_str(b, t->touched[k].path);
            state_put_u64(b, t->touched[k].gen);
        }
        state_put_u32(b, t->nchanges);
        for (u32 k = 0; k < t->nchanges; k++) {
            state_put_str(b, t->changes[k].path);
            state_put_u8(b, t->changes[k].subtree);
        }
    }
}

static bool get_path(struct state_cursor *c, char *buf)
{
    return state_get_str(c, buf, XENSTORE_ABS_PATH_MAX + 1) && (buf[0] == '/' || buf[0] == '@');
}

static int xenstore_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct xenstore *s = obj;
    drop_guest_watches_and_tx(s);
    u32 count = 0;
    struct node *root = get_node_state(c, 0, &count);
    if (!root)
        return nestor_err(err, errlen, "an impossible xenstore tree");
    node_free(s->root);
    s->root = root;
    u32 pending = state_get_u32(c);
    if (c->bad || pending > MAX_QUEUED || pending > c->len - c->pos)
        return nestor_err(err, errlen, "impossible xenstore output");
    s->out.pos = s->out.len = 0;
    queue_bytes(s, c->p + c->pos, pending);
    c->pos += pending;
    if (s->out.len != pending)
        return nestor_err(err, errlen, "out of host memory");
    u32 nw = state_get_u32(c);
    if (c->bad || nw > s->lim.watches)
        return nestor_err(err, errlen, "impossible xenstore watches");
    char path[XENSTORE_ABS_PATH_MAX + 1], token[XENSTORE_PAYLOAD_MAX + 1];
    for (u32 i = 0; i < nw; i++) {
        if (!get_path(c, path) || !state_get_str(c, token, sizeof(token)))
            return nestor_err(err, errlen, "an impossible xenstore watch");
        u8 rel = state_get_u8(c);
        if (rel > 1 || s->nwatches == UINT32_MAX)
            return nestor_err(err, errlen, "an impossible xenstore watch");
        struct watch *w = realloc(s->watches, sizeof(*w) * (s->nwatches + 1));
        if (!w)
            return nestor_err(err, errlen, "out of host memory");
        s->watches = w;
        s->wcap = s->nwatches + 1;
        w[s->nwatches] = (struct watch){ strdup(path), strdup(token), rel, false, NULL, NULL, 0 };
        if (!w[s->nwatches].path || !w[s->nwatches].token) {
            free(w[s->nwatches].path);
            free(w[s->nwatches].token);
            return nestor_err(err, errlen, "out of host memory");
        }
        s->nwatches++;
    }
    u32 ntx = state_get_u32(c);
    if (c->bad || ntx > s->lim.transactions)
        return nestor_err(err, errlen, "impossible xenstore transactions");
    for (u32 i = 0; i < ntx; i++) {
        struct tx *a = realloc(s->tx, sizeof(*a) * (s->ntx + 1));
        if (!a)
            return nestor_err(err, errlen, "out of host memory");
        s->tx = a;
        struct tx *t = &s->tx[s->ntx];
        memset(t, 0, sizeof(*t));
        t->id = state_get_u32(c);
        count = 0;
        if (!t->id || tx_find(s, t->id) != NULL || !(t->root = get_node_state(c, 0, &count)))
            return nestor_err(err, errlen, "an impossible xenstore transaction");
        s->ntx++;
        u32 nt = state_get_u32(c);
        if (c->bad || nt > MAX_NODES || (u64)nt * 9 > c->len - c->pos ||
            !(t->touched = calloc(nt ? nt : 1, sizeof(*t->touched))))
            return nestor_err(err, errlen, "an impossible xenstore transaction");
        t->tcap = nt ? nt : 1;
        for (; t->ntouched < nt; t->ntouched++) {
            if (!get_path(c, path) || !(t->touched[t->ntouched].path = strdup(path)))
                return nestor_err(err, errlen, "an impossible xenstore transaction");
            t->touched[t->ntouched].gen = state_get_u64(c);
        }
        u32 nc = state_get_u32(c);
        if (c->bad || nc > MAX_NODES || (u64)nc * 6 > c->len - c->pos ||
            !(t->changes = calloc(nc ? nc : 1, sizeof(*t->changes))))
            return nestor_err(err, errlen, "an impossible xenstore transaction");
        t->ccap = nc ? nc : 1;
        for (; t->nchanges < nc; t->nchanges++) {
            if (!get_path(c, path) || path[0] != '/' || !(t->changes[t->nchanges].path = strdup(path)))
                return nestor_err(err, errlen, "an impossible xenstore transaction");
            u8 sub = state_get_u8(c);
            if (sub > 1)
                return nestor_err(err, errlen, "an impossible xenstore transaction");
            t->changes[t->nchanges].subtree = sub;
        }
    }
    return 0;
}

static int xenstore_post_load(void *obj, char *err, size_t errlen)
{
    struct xenstore *s = obj;
    struct xsd_sockmsg h;
    if (s->in_len > sizeof(s->in))
        return nestor_err(err, errlen, "an impossible xenstore message");
    if (s->in_len >= HDR) {
        memcpy(&h, s->in, HDR);
        if (h.len > XENSTORE_PAYLOAD_MAX || s->in_len >= HDR + h.len)
            return nestor_err(err, errlen, "an impossible xenstore message");
    }
    return 0;
}

static const struct state_desc xenstore_state_desc =
    STATE_DESC("xenstore", 1, struct xenstore, xenstore_fields, .save = xenstore_save,
               .load = xenstore_load, .post_load = xenstore_post_load);

void xenstore_state_register(struct xenstore *s, struct state_registry *r)
{
    state_register(r, &xenstore_state_desc, 0, s);
}

/* The state description: registry, coverage check, section (de)serialisation. */
#include "machine/state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECTION_MAGIC 0x54434553u /* "SECT" */
#define NAME_MAX_LEN 64
#define LAYOUT_MAX_LEN 1024

void state_register(struct state_registry *r, const struct state_desc *d, u32 instance, void *obj)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        struct state_entry *e = realloc(r->e, cap * sizeof(*e));
        if (!e)
            nestor_panic("out of host memory registering state");
        r->e = e;
        r->cap = cap;
    }
    r->e[r->n++] = (struct state_entry){ d, instance, obj };
}

void state_registry_free(struct state_registry *r)
{
    free(r->e);
    *r = (struct state_registry){ 0 };
}


/* ---- coverage ---- */
static int by_offset(const void *a, const void *b)
{
    const struct state_field *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The largest padding the compiler can put before a member: less than its alignment,
 * which divides both its offset and its size (a scalar's, an array element's, a
 * struct's) and is at most 8 for the types described. */
static size_t max_pad_before(size_t offset, size_t size)
{
    size_t a = 8;
    while (a > 1 && (offset % a || size % a))
        a >>= 1;
    return a - 1;
}

int state_desc_check(const struct state_desc *d, char *err, size_t errlen)
{
    struct state_field *f = malloc((d->nfields + 1) * sizeof(*f));
    if (!f)
        return nestor_err(err, errlen, "out of memory");
    memcpy(f, d->fields, d->nfields * sizeof(*f));
    qsort(f, d->nfields, sizeof(*f), by_offset);
    size_t end = 0;
    int r = 0;
    for (size_t i = 0; i < d->nfields && !r; i++) {
        const char *name = f[i].name ? f[i].name : "(not state)";
        if (f[i].offset < end)
            r = nestor_err(err, errlen, "%s: %s overlaps the member before it", d->name, name);
        else if (f[i].offset - end > max_pad_before(f[i].offset, f[i].size))
            r = nestor_err(err, errlen, "%s: bytes %zu..%zu before %s are not described",
                     d->name, end, f[i].offset - 1, name);
        end = f[i].offset + f[i].size;
    }
    if (!r && end > d->size)
        r = nestor_err(err, errlen, "%s: a field lies beyond the struct", d->name);
    if (!r && d->size - end > 7)
        r = nestor_err(err, errlen, "%s: bytes %zu..%zu at the end are not described", d->name,
                 end, d->size - 1);
    for (size_t i = 0; i < d->nfields && !r; i++)
        for (size_t j = i + 1; j < d->nfields && !r; j++)
            if (d->fields[i].name && d->fields[j].name && !strcmp(d->fields[i].name, d->fields[j].name))
                r = nestor_err(err, errlen, "%s: field %s described twice", d->name, d->fields[i].name);
    for (size_t i = 0; i < d->nfields && !r; i++) {
        const struct state_desc *sub = d->fields[i].sub;
        if (!sub)
            continue;
        if (!sub->size || d->fields[i].size % sub->size)
            r = nestor_err(err, errlen, "%s: %s is not a whole number of %s", d->name,
                     d->fields[i].name, sub->name);
        else
            r = state_desc_check(sub, err, errlen);
    }
    free(f);
    return r;
}

/* ---- buffers ---- */
void state_put(struct state_buf *b, const void *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        u8 *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

void state_put_u8(struct state_buf *b, u8 v) { state_put(b, &v, 1); }
void state_put_u32(struct state_buf *b, u32 v)
{
    u8 x[4] = { (u8)v, (u8)(v >> 8), (u8)(v >> 16), (u8)(v >> 24) };
    state_put(b, x, 4);
}
void state_put_u64(struct state_buf *b, u64 v)
{
    state_put_u32(b, (u32)v);
    state_put_u32(b, (u32)(v >> 32));
}
void state_put_str(struct state_buf *b, const char *s)
{
    size_t n = strlen(s);
    state_put_u32(b, (u32)n);
    state_put(b, s, n);
}
void state_buf_free(struct state_buf *b)
{
    free(b->p);
    *b = (struct state_buf){ 0 };
}

bool state_get(struct state_cursor *c, void *p, size_t n)
{
    if (c->bad || n > c->len - c->pos) {
        c->bad = true;
        memset(p, 0, n);
        return false;
    }
    memcpy(p, c->p + c->pos, n);
    c->pos += n;
    return true;
}
u8 state_get_u8(struct state_cursor *c)
{
    u8 v;
    state_get(c, &v, 1);
    return v;
}
u32 state_get_u32(struct state_cursor *c)
{
    u8 x[4];
    state_get(c, x, 4);
    return (u32)x[0] | (u32)x[1] << 8 | (u32)x[2] << 16 | (u32)x[3] << 24;
}
u64 state_get_u64(struct state_cursor *c)
{
    u64 lo = state_get_u32(c);
    return lo | (u64)state_get_u32(c) << 32;
}
bool state_get_str(struct state_cursor *c, char *buf, size_t cap)
{
    u32 n = state_get_u32(c);
    if (c->bad || n >= cap || n > c->len - c->pos) {
        c->bad = true;
        if (cap)
            buf[0] = 0;
        return false;
    }
    memcpy(buf, c->p + c->pos, n);
    buf[n] = 0;
    c->pos += n;
    return true;
}

/* ---- fields, packed: a struct member through its own description ---- */
static size_t packed_size(const struct state_field *f)
{
    if (!f->sub)
        return f->size;
    size_t one = 0;
    for (size_t k = 0; k < f->sub->nfields; k++)
        if (f->sub->fields[k].name)
            one += packed_size(&f->sub->fields[k]);
    return one * (f->size / f->sub->size);
}

static void put_field(struct state_buf *b, const u8 *base, const struct state_field *f)
{
    if (!f->sub) {
        state_put(b, base + f->offset, f->size);
        return;
    }
    for (size_t e = 0; e < f->size / f->sub->size; e++)
        for (size_t k = 0; k < f->sub->nfields; k++)
            if (f->sub->fields[k].name)
                put_field(b, base + f->offset + e * f->sub->size, &f->sub->fields[k]);
}

static void get_field(struct state_cursor *c, u8 *base, const struct state_field *f)
{
    if (!f->sub) {
        state_get(c, base + f->offset, f->size);
        if (f->is_bool)
            for (size_t i = 0; i < f->size; i++)
                if (base[f->offset + i] > 1) {
                    base[f->offset + i] = 0;
                    c->bad_bool = true;
                }
        return;
    }
    for (size_t e = 0; e < f->size / f->sub->size; e++)
        for (size_t k = 0; k < f->sub->nfields; k++)
            if (f->sub->fields[k].name)
                get_field(c, base + f->offset + e * f->sub->size, &f->sub->fields[k]);
}

void state_put_struct(struct state_buf *b, const struct state_desc *d, const void *obj)
{
    for (size_t k = 0; k < d->nfields; k++)
        if (d->fields[k].name)
            put_field(b, obj, &d->fields[k]);
}

bool state_get_struct(struct state_cursor *c, const struct state_desc *d, void *obj)
{
    for (size_t k = 0; k < d->nfields; k++)
        if (d->fields[k].name)
            get_field(c, obj, &d->fields[k]);
    return !c->bad && !c->bad_bool;
}

/* The field's name with its members' layout: "seg{sel:2,base:8,limit:4,attr:4}[6]". */
static void field_layout(struct state_buf *b, const struct state_field *f)
{
    state_put(b, f->name, strlen(f->name));
    if (!f->sub)
        return;
    state_put(b, "{", 1);
    bool first = true;
    for (size_t k = 0; k < f->sub->nfields; k++) {
        const struct state_field *g = &f->sub->fields[k];
        if (!g->name)
            continue;
        if (!first)
            state_put(b, ",", 1);
        first = false;
        field_layout(b, g);
        char n[32];
        int len = snprintf(n, sizeof(n), ":%zu", packed_size(g));
        state_put(b, n, (size_t)len);
    }
    char n[32];
    int len = snprintf(n, sizeof(n), "}[%zu]", f->size / f->sub->size);
    state_put(b, n, (size_t)len);
}

static void put_field_name(struct state_buf *b, const struct state_field *f)
{
    struct state_buf l = { 0 };
    field_layout(&l, f);
    state_put_u32(b, (u32)l.len);
    state_put(b, l.p, l.len);
    if (l.oom)
        b->oom = true;
    state_buf_free(&l);
}

/* ---- sections ---- */
static u32 named_fields(const struct state_desc *d)
{
    u32 n = 0;
    for (size_t i = 0; i < d->nfields; i++)
        n += d->fields[i].name != NULL;
    return n;
}

static void save_sections(const struct state_registry *r, struct state_buf *b, bool caches)
{
    for (size_t i = 0; i < r->n; i++) {
        const struct state_entry *e = &r->e[i];
        const struct state_desc *d = e->desc;
        if (d->cache && !caches)
            continue;
        state_put_u32(b, SECTION_MAGIC);
        state_put_str(b, d->name);
        state_put_u32(b, e->instance);
        state_put_u32(b, d->version);
        state_put_u32(b, named_fields(d));
        for (size_t k = 0; k < d->nfields; k++) {
            const struct state_field *f = &d->fields[k];
            if (!f->name)
                continue;
            put_field_name(b, f);
            state_put_u32(b, (u32)packed_size(f));
            put_field(b, (const u8 *)e->obj, f);
        }
        /* the variable part, with its length in front */
        size_t at = b->len;
        state_put_u64(b, 0);
        if (d->save)
            d->save(e->obj, b);
        if (!b->oom) {
            u64 n = b->len - at - 8;
            for (int k = 0; k < 8; k++)
                b->p[at + k] = (u8)(n >> (8 * k));
        }
    }
}

void state_save_all(const struct state_registry *r, struct state_buf *b)
{
    save_sections(r, b, true);
}

void state_save_all_but_caches(const struct state_registry *r, struct state_buf *b)
{
    save_sections(r, b, false);
}

int state_load_all(const struct state_registry *r, const u8 *p, size_t len, char *err, size_t errlen)
{
    struct state_cursor c = { .p = p, .len = len };
    bool *seen = calloc(r->n + 1, 1);
    if (!seen)
        return nestor_err(err, errlen, "out of host memory");
    int rc = 0;
    size_t next = 0;
    while (c.pos < c.len && !rc) {
        char name[NAME_MAX_LEN], fname[LAYOUT_MAX_LEN];
        if (state_get_u32(&c) != SECTION_MAGIC || !state_get_str(&c, name, sizeof(name))) {
            rc = nestor_err(err, errlen, "the machine state is corrupt at byte %zu", c.pos);
            break;
        }
        u32 instance = state_get_u32(&c), version = state_get_u32(&c), nf = state_get_u32(&c);
        if (c.bad) {
            rc = nestor_err(err, errlen, "the machine state is truncated in section %s", name);
            break;
        }
        /* components come in the order this machine registers them (each section's
         * load may rely on those before it) */
        size_t idx = next++;
        const struct state_entry *e = idx < r->n ? &r->e[idx] : NULL;
        if (!e || strcmp(e->desc->name, name) || e->instance != instance) {
            bool known = false;
            for (size_t k = 0; k < r->n && !known; k++)
                known = !strcmp(r->e[k].desc->name, name) && r->e[k].instance == instance;
            if (!known)
                rc = nestor_err(err, errlen, "the state has a component %s.%u this machine does not have",
                          name, instance);
            else if (!e)
                rc = nestor_err(err, errlen, "component %s.%u appears twice", name, instance);
            else
                rc = nestor_err(err, errlen, "the state has component %s.%u where this machine has %s.%u "
                          "(it lacks component %s.%u or has them in another order)", name, instance,
                          e->desc->name, e->instance, e->desc->name, e->instance);
            break;
        }
        seen[idx] = true;
        const struct state_desc *d = e->desc;
        if (version != d->version) {
            rc = nestor_err(err, errlen, "component %s is version %u in the file, %u here", name,
                      version, d->version);
            break;
        }
        if (nf != named_fields(d)) {
            rc = nestor_err(err, errlen, "component %s has %u fields in the file, %u here", name,
                      nf, named_fields(d));
            break;
        }
        for (size_t k = 0; k < d->nfields && !rc; k++) {
            const struct state_field *f = &d->fields[k];
            if (!f->name)
                continue;
            bool ok = state_get_str(&c, fname, sizeof(fname));
            u32 size = state_get_u32(&c);
            struct state_buf want = { 0 };
            field_layout(&want, f);
            state_put(&want, "", 1);
            if (!ok || c.bad)
                rc = nestor_err(err, errlen, "the machine state is truncated in section %s", name);
            else if (want.oom)
                rc = nestor_err(err, errlen, "out of host memory");
            else if (strcmp(fname, (const char *)want.p) || size != packed_size(f))
                rc = nestor_err(err, errlen, "component %s: field %s (%u bytes) in the file where "
                          "this nestor has %s (%zu bytes)", name, fname, size,
                          (const char *)want.p, packed_size(f));
            else if (size > c.len - c.pos)
                rc = nestor_err(err, errlen, "the machine state is truncated in section %s", name);
            else
                get_field(&c, (u8 *)e->obj, f);
            if (!rc && c.bad_bool)
                rc = nestor_err(err, errlen, "component %s: field %s holds an impossible value",
                          name, f->name);
            state_buf_free(&want);
        }
        if (rc)
            break;
        u64 extra = state_get_u64(&c);
        if (c.bad || extra > c.len - c.pos) {
            rc = nestor_err(err, errlen, "the machine state is truncated in section %s", name);
            break;
        }
        struct state_cursor x = { .p = c.p + c.pos, .len = (size_t)extra };
        c.pos += (size_t)extra;
        if (d->load) {
            char why[200] = "";
            if (d->load(e->obj, &x, why, sizeof(why)) < 0 || x.bad || x.pos != x.len)
                rc = nestor_err(err, errlen, "component %s.%u: %s", name, instance,
                          why[0] ? why : "its variable part is malformed");
        } else if (extra) {
            rc = nestor_err(err, errlen, "component %s has data this nestor does not expect", name);
        }
    }
    for (size_t i = 0; i < r->n && !rc; i++)
        if (!seen[i])
            rc = nestor_err(err, errlen, "the state lacks component %s.%u", r->e[i].desc->name,
                      r->e[i].instance);
    free(seen);
    if (rc)
        return rc;
    for (size_t i = 0; i < r->n; i++) {
        const struct state_entry *e = &r->e[i];
        char why[200] = "";
        if (e->desc->post_load && e->desc->post_load(e->obj, why, sizeof(why)) < 0)
            return nestor_err(err, errlen, "component %s.%u: %s", e->desc->name, e->instance,
                        why[0] ? why : "inconsistent state");
    }
    return 0;
}

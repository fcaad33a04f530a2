/* QEMU-style option lists (see opts.h). */
#include "machine/opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *label(const struct opts *o)
{
    return o->name ? o->name : "";
}

int opts_parse(struct opts *o, const char *what, const char *spec, bool named)
{
    memset(o, 0, sizeof(*o));
    o->what = what;
    if (strlen(spec) >= sizeof o->buf) {
        nestor_log("%s %s: too long", what, spec);
        return -1;
    }
    strcpy(o->buf, spec);
    char *save = NULL;
    char *t = strtok_r(o->buf, ",", &save);
    if (named) {
        o->name = t;
        if (!o->name || strchr(o->name, '=')) {
            nestor_log("%s '%s': no name first", what, spec);
            return -1;
        }
        t = strtok_r(NULL, ",", &save);
    }
    for (; t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq || eq == t || o->n == OPTS_MAX_PROPS) {
            nestor_log("%s %s: '%s' is not a property=value", what, spec, t);
            return -1;
        }
        *eq = 0;
        o->key[o->n] = t;
        o->value[o->n++] = eq + 1;
    }
    return 0;
}

const char *opts_get(const struct opts *o, const char *key)
{
    const char *v = NULL;
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->key[i], key))
            v = o->value[i];
    return v;
}

int opts_num(const struct opts *o, const char *key, u64 max, u64 *out)
{
    const char *v = opts_get(o, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 0);
    if (errno || end == v || *end || v[0] == '-' || n > max) {
        nestor_log("%s %s: %s=%s is not a number from 0 to 0x%llx", o->what, label(o), key, v,
                   (unsigned long long)max);
        return -1;
    }
    *out = n;
    return 0;
}

int opts_bool(const struct opts *o, const char *key, bool *out)
{
    const char *v = opts_get(o, key);
    if (!v)
        return 0;
    static const char *const yes[] = { "on", "yes", "true" }, *const no[] = { "off", "no", "false" };
    for (int i = 0; i < 3; i++) {
        if (!strcmp(v, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(v, no[i])) {
            *out = false;
            return 0;
        }
    }
    nestor_log("%s %s: %s=%s: on or off", o->what, label(o), key, v);
    return -1;
}

int opts_check_known(const struct opts *o, const char *const *known)
{
    for (int i = 0; i < o->n; i++) {
        bool ok = !strcmp(o->key[i], "id");
        for (int k = 0; known[k] && !ok; k++)
            ok = !strcmp(o->key[i], known[k]);
        if (!ok) {
            nestor_log("%s %s: unknown property '%s'", o->what, label(o), o->key[i]);
            return -1;
        }
    }
    return 0;
}

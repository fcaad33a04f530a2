/* The command line's SGX options (sgx_options.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/rand.h>

#include "cli/sgx_options.h"
#include "machine/opts.h"

/* Objects' sizes count in bytes without a suffix, as QEMU's do. */
static int parse_bytes(const char *v, u64 *out) { return parse_size(v, 1, out); }

int sgx_cli_object(struct sgx_cli *s, const char *spec, char *err, size_t errlen)
{
    struct opts o;
    if (opts_parse(&o, "-object", spec, true) < 0)
        return nestor_err(err, errlen, "-object %s: cannot parse it", spec);
    if (strcmp(o.name, "memory-backend-epc"))
        return nestor_err(err, errlen, "-object %s: nestor knows memory-backend-epc only", o.name);
    static const char *const known[] = { "size", "prealloc", "share", NULL };
    if (opts_check_known(&o, known) < 0)
        return nestor_err(err, errlen, "-object %s: unknown property", spec);
    const char *id = opts_get(&o, "id"), *size = opts_get(&o, "size");
    if (!id || !*id || strlen(id) >= sizeof(s->backend[0].id))
        return nestor_err(err, errlen, "-object %s: an id=NAME is needed", spec);
    u64 bytes;
    if (!size || parse_bytes(size, &bytes) < 0 || bytes == 0)
        return nestor_err(err, errlen, "-object %s: size=BYTES[K|M|G] is needed", spec);
    for (int k = 0; k < s->nbackend; k++)
        if (!strcmp(s->backend[k].id, id))
            return nestor_err(err, errlen, "-object %s: id %s is already taken", spec, id);
    if (s->nbackend >= SGX_MAX_SECTIONS)
        return nestor_err(err, errlen, "-object %s: at most %d EPC backends", spec, SGX_MAX_SECTIONS);
    snprintf(s->backend[s->nbackend].id, sizeof(s->backend[0].id), "%s", id);
    s->backend[s->nbackend++].size = bytes;
    return 0;
}

int sgx_cli_machine(struct sgx_cli *s, const char *spec, char *err, size_t errlen)
{
    /* a leading machine type without '=' ("q35", "pc") names the PC nestor is */
    const char *props = spec;
    char type[32] = "";
    const char *comma = strchr(spec, ',');
    const char *eq = strchr(spec, '=');
    if (!eq || (comma && comma < eq)) {
        size_t n = comma ? (size_t)(comma - spec) : strlen(spec);
        if (n >= sizeof(type))
            n = sizeof(type) - 1;
        memcpy(type, spec, n);
        type[n] = 0;
        if (strcmp(type, "pc") && strcmp(type, "q35") && strncmp(type, "pc-", 3))
            return nestor_err(err, errlen, "-M %s: nestor is a PC (pc, q35)", spec);
        props = comma ? comma + 1 : "";
    }
    if (!*props)
        return 0;
    struct opts o;
    if (opts_parse(&o, "-M", props, false) < 0)
        return nestor_err(err, errlen, "-M %s: cannot parse it", spec);
    for (int k = 0; k < o.n; k++) {
        unsigned idx;
        char field[16];
        if (sscanf(o.key[k], "sgx-epc.%u.%15s", &idx, field) != 2 || idx >= SGX_MAX_SECTIONS)
            return nestor_err(err, errlen, "-M %s: unknown property %s", spec, o.key[k]);
        if (!strcmp(field, "memdev")) {
            snprintf(s->memdev[idx], sizeof(s->memdev[idx]), "%s", o.value[k]);
        } else if (!strcmp(field, "node")) {
            if (strcmp(o.value[k], "0"))
                return nestor_err(err, errlen, "-M %s: nestor's machine has one NUMA node (0)", spec);
        } else {
            return nestor_err(err, errlen, "-M %s: unknown property %s", spec, o.key[k]);
        }
    }
    return 0;
}

int sgx_cli_epc(struct sgx_cli *s, const char *spec, char *err, size_t errlen)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        u64 bytes;
        if (parse_bytes(t, &bytes) < 0 || bytes == 0)
            return nestor_err(err, errlen, "-sgx-epc %s: sizes are BYTES[K|M|G]", spec);
        if (s->nshorthand >= SGX_MAX_SECTIONS)
            return nestor_err(err, errlen, "-sgx-epc %s: at most %d sections", spec, SGX_MAX_SECTIONS);
        s->shorthand[s->nshorthand++] = bytes;
    }
    return 0;
}

/* The root secret: FILE's 32 bytes, or new random ones written to FILE (mode 0600). */
static int key_file(const char *path, u8 out[32], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, out, 32);
        u8 extra;
        ssize_t more = read(fd, &extra, 1);
        close(fd);
        if (n != 32 || more != 0)
            return nestor_err(err, errlen, "-sgx-key %s: the file must hold exactly 32 bytes", path);
        return 0;
    }
    if (errno != ENOENT)
        return nestor_err(err, errlen, "-sgx-key %s: %s", path, strerror(errno));
    if (RAND_bytes(out, 32) != 1)
        return nestor_err(err, errlen, "-sgx-key %s: no random bytes", path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, out, 32) != 32) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return nestor_err(err, errlen, "-sgx-key %s: cannot write it: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

int sgx_cli_finish(const struct sgx_cli *s, struct sgx_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    /* -M sgx-epc.N in index order, each naming a backend; then the shorthand's */
    bool used[SGX_MAX_SECTIONS] = { false };
    for (int idx = 0; idx < SGX_MAX_SECTIONS; idx++) {
        if (!s->memdev[idx][0])
            continue;
        int b = -1;
        for (int k = 0; k < s->nbackend; k++)
            if (!strcmp(s->backend[k].id, s->memdev[idx]))
                b = k;
        if (b < 0)
            return nestor_err(err, errlen, "-M sgx-epc.%d.memdev=%s: no -object memory-backend-epc "
                              "with that id", idx, s->memdev[idx]);
        if (used[b])
            return nestor_err(err, errlen, "-M sgx-epc: backend %s is used twice", s->memdev[idx]);
        used[b] = true;
        out->section[out->nsections++].size = s->backend[b].size;
    }
    for (int k = 0; k < s->nbackend; k++)
        if (!used[k])
            return nestor_err(err, errlen, "-object memory-backend-epc,id=%s: no -M sgx-epc.N.memdev "
                              "names it", s->backend[k].id);
    for (int k = 0; k < s->nshorthand; k++) {
        if (out->nsections >= SGX_MAX_SECTIONS)
            return nestor_err(err, errlen, "at most %d EPC sections", SGX_MAX_SECTIONS);
        out->section[out->nsections++].size = s->shorthand[k];
    }
    out->provision_allowed = s->provision;
    if (s->key_file) {
        if (key_file(s->key_file, out->root_secret, err, errlen) < 0)
            return -1;
        out->root_secret_set = true;
    }
    return 0;
}

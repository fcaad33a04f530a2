/* Save and restore: the stream format (see snapshot.h) over a file or a connection. */
#include "control/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "control/stream.h"
#include "machine/machine.h"
#include "machine/xendev.h"

#define PAGE 4096u


bool snapshot_supported(const struct machine *m, char *err, size_t errlen)
{
    return !m->xen || xen_state_savable(m->xen, err, errlen);
}

/* ---- the configuration a stream belongs to ---- */
void snapshot_config(const struct machine *m, char *buf, size_t cap)
{
    const struct machine_config *c = &m->cfg;
    size_t n = (size_t)snprintf(buf, cap, "m=%llu\nsmp=%d\ncpu=%s\nicount=%d\nxen=",
                                (unsigned long long)c->ram_size, c->ncpus,
                                c->cpu_spec ? c->cpu_spec : "max", c->deterministic);
    if (n < cap && c->xen.enabled)
        n += (size_t)snprintf(buf + n, cap - n, "%u.%u%s,domid=%u,platform=%d", c->xen.major,
                              c->xen.minor, c->xen.extraversion, c->xen.domid, c->xen.platform);
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "\ndevices=");
    for (int i = 0; i < c->ndevices && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? " " : "", c->devices[i]);
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "\ndrives=");
    for (int i = 0; i < c->ndrives && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? " " : "", c->drives[i]);
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "\nnetdevs=");
    for (int i = 0; i < c->nnetdevs && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? " " : "", c->netdevs[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "\n");
}

/* Compares two configurations key by key, naming the first that differs. */
static int config_compare(const char *file, const char *here, char *err, size_t errlen)
{
    static const char *const option[] = { "m", "-m", "smp", "-smp", "cpu", "-cpu",
                                          "icount", "-icount", "xen", "-xen",
                                          "devices", "-device", "drives", "-drive", "netdevs", "-netdev" };
    const char *a = file, *b = here;
    while (*a || *b) {
        const char *ae = strchr(a, '\n'), *be = strchr(b, '\n');
        size_t al = ae ? (size_t)(ae - a) : strlen(a), bl = be ? (size_t)(be - b) : strlen(b);
        if (al != bl || memcmp(a, b, al)) {
            const char *eq = memchr(a, '=', al);
            size_t kl = eq ? (size_t)(eq - a) : al;
            const char *opt = "configuration";
            for (size_t k = 0; k < sizeof(option) / sizeof(option[0]); k += 2)
                if (strlen(option[k]) == kl && !memcmp(a, option[k], kl))
                    opt = option[k + 1];
            return nestor_err(err, errlen, "the state was saved from a machine with a different %s: "
                        "'%.*s' there, '%.*s' here", opt, (int)(al > 200 ? 200 : al), a,
                        (int)(bl > 200 ? 200 : bl), b);
        }
        a += al + (ae != NULL);
        b += bl + (be != NULL);
    }
    return 0;
}

/* ---- RAM ---- */
bool snapshot_page_is_zero(const u8 *p)
{
    const u64 *w = (const u64 *)p;
    for (unsigned i = 0; i < PAGE / 8; i++)
        if (w[i])
            return false;
    return true;
}

bool snapshot_put_page(struct machine *m, struct stream_out *s, u64 idx, bool zero_record)
{
    u64 gpa = 0;
    const u8 *p = mem_region_page(&m->mem, idx, &gpa);
    if (snapshot_page_is_zero(p)) {
        if (zero_record)
            stream_put_zero_page(s, gpa);
        return false;
    }
    stream_put_page(s, gpa, p);
    return true;
}

void snapshot_put_ram(struct machine *m, struct stream_out *s)
{
    for (u64 i = 0, n = mem_region_pages(&m->mem); i < n; i++)
        snapshot_put_page(m, s, i, false);
}

/* RAM is anonymous memory: dropping the pages makes them read as zero again, without
 * touching them (a 1 GiB machine costs nothing where memset would write it all). */
static void zero_ram(struct machine *m)
{
    for (int r = 0; r < m->mem.nregions; r++)
        if (madvise(m->mem.region[r].host, m->mem.region[r].size, MADV_DONTNEED) < 0)
            memset(m->mem.region[r].host, 0, m->mem.region[r].size);
}

/* ---- save ---- */
void snapshot_put_header(struct machine *m, struct stream_out *s)
{
    char config[2048];
    snapshot_config(m, config, sizeof(config));
    stream_put_header(s, SNAPSHOT_FORMAT_VERSION, config);
}

void snapshot_put_state(struct machine *m, struct stream_out *s)
{
    struct state_buf b = { 0 };
    machine_state_save(m, &b);
    if (b.oom)
        stream_fail(s, "out of host memory serialising the machine state");
    else
        stream_put_state(s, b.p, b.len);
    state_buf_free(&b);
}

int snapshot_save_fd(struct machine *m, int fd, u64 *bytes, char *err, size_t errlen)
{
    if (!snapshot_supported(m, err, errlen))
        return -1;
    struct stream_out s;
    if (stream_out_open(&s, fd, err, errlen) < 0)
        return -1;
    xendev_quiesce(m); /* no disk request half done in the file */
    snapshot_put_header(m, &s);
    snapshot_put_ram(m, &s);
    snapshot_put_state(m, &s);
    return stream_out_close(&s, bytes, err, errlen);
}

int snapshot_save_file(struct machine *m, const char *path, u64 *bytes, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return nestor_err(err, errlen, "%s: %s", path, strerror(errno));
    int r = snapshot_save_fd(m, fd, bytes, err, errlen);
    if (r == 0 && fsync(fd) < 0 && errno != EINVAL)
        r = nestor_err(err, errlen, "%s: %s", path, strerror(errno));
    if (close(fd) < 0 && r == 0)
        r = nestor_err(err, errlen, "%s: %s", path, strerror(errno));
    return r;
}

/* ---- load ---- */
struct loader {
    struct machine *m;
    u8 *state;
    size_t state_len;
};

static int on_page(void *opaque, u64 gpa, const u8 *data, char *err, size_t errlen)
{
    struct loader *l = opaque;
    /* into the region's own page: the frame map, which may have it elsewhere, comes with
     * the state */
    if (mem_region_write_page(&l->m->mem, gpa, data) < 0)
        return nestor_err(err, errlen, "a page at %#llx, which is not RAM on this machine",
                          (unsigned long long)gpa);
    return 0;
}

static int on_state(void *opaque, const u8 *data, size_t len, char *err, size_t errlen)
{
    struct loader *l = opaque;
    free(l->state);
    l->state = malloc(len ? len : 1);
    if (!l->state)
        return nestor_err(err, errlen, "out of host memory");
    memcpy(l->state, data, len);
    l->state_len = len;
    return 0;
}

int snapshot_load_fd(struct machine *m, int fd, char *err, size_t errlen)
{
    char why[400];
    if (!snapshot_supported(m, why, sizeof(why)))
        return nestor_err(err, errlen, "%s", why);
    char config[2048];
    snapshot_config(m, config, sizeof(config));
    struct stream_in s;
    if (stream_in_open(&s, fd, err, errlen) < 0)
        return -1;
    struct loader l = { m, NULL, 0 };
    int r = -1;
    char *file_config = NULL;
    u32 version = 0;
    if (stream_get_header(&s, &version, &file_config, err, errlen) < 0)
        goto out;
    if (version != SNAPSHOT_FORMAT_VERSION) {
        nestor_err(err, errlen, "the state is in format version %u; this nestor reads version %u",
             version, SNAPSHOT_FORMAT_VERSION);
        goto out;
    }
    if (config_compare(file_config, config, err, errlen) < 0)
        goto out;
    zero_ram(m);
    /* pages go straight to RAM; the state waits for the checksum */
    struct stream_sink sink = { &l, on_page, on_state };
    if (stream_get_records(&s, &sink, err, errlen) < 0)
        goto out;
    if (!l.state) {
        nestor_err(err, errlen, "the stream holds no machine state");
        goto out;
    }
    if (machine_state_load(m, l.state, l.state_len, why, sizeof(why)) < 0) {
        nestor_err(err, errlen, "%s", why);
        goto out;
    }
    r = 0;
out:
    free(file_config);
    free(l.state);
    stream_in_close(&s);
    return r;
}

int snapshot_load_file(struct machine *m, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nestor_err(err, errlen, "%s: %s", path, strerror(errno));
    char why[400];
    int r = snapshot_load_fd(m, fd, why, sizeof(why));
    close(fd);
    if (r < 0)
        nestor_err(err, errlen, "%s: %s", path, why);
    return r;
}

/* ---- digest ---- */
void snapshot_digest(struct machine *m, char hex[65])
{
    struct stream_digest d;
    stream_digest_init(&d);
    struct state_buf b = { 0 };
    /* the architectural state: caches (TLBs) left out */
    state_save_all_but_caches(&m->state, &b);
    stream_digest_update(&d, b.p, b.len);
    state_buf_free(&b);
    for (int r = 0; r < m->mem.nregions; r++)
        stream_digest_update(&d, m->mem.region[r].host, m->mem.region[r].size);
    stream_digest_final(&d, hex);
}

static void digest_hex(const void *p, size_t len, char hex[65])
{
    struct stream_digest d;
    stream_digest_init(&d);
    stream_digest_update(&d, p, len);
    stream_digest_final(&d, hex);
}

void snapshot_digest_sections(struct machine *m, FILE *out)
{
    char hex[65];
    for (size_t i = 0; i < m->state.n; i++) {
        const struct state_entry *e = &m->state.e[i];
        struct state_registry one = { (struct state_entry *)e, 1, 1 };
        struct state_buf b = { 0 };
        state_save_all(&one, &b);
        digest_hex(b.p, b.len, hex);
        fprintf(out, "state digest %s.%u %s%s\n", e->desc->name, e->instance, hex,
                e->desc->cache ? " (a cache: not in the machine's digest)" : "");
        state_buf_free(&b);
    }
    for (int r = 0; r < m->mem.nregions; r++) {
        digest_hex(m->mem.region[r].host, m->mem.region[r].size, hex);
        fprintf(out, "state digest ram@%#llx %s\n", (unsigned long long)m->mem.region[r].gpa, hex);
    }
}

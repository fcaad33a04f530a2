/* QMP server: sockets, the JSON stream of each client, the command table, events. */
#include "control/qmp.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "control/migrate.h"
#include "control/sock.h"
#include "dev/platform.h"
#include "machine/machine.h"

#define QMP_MAX_SERVERS 4
#define QMP_MAX_CLIENTS 16
#define QMP_MAX_PENDING (64 * 1024) /* bytes of one message at most */

struct qmp_client {
    int fd;
    json_tokener *tok;
    size_t pending; /* bytes of the message being received */
    bool caps;      /* capabilities negotiated: commands and events */
};

struct qmp_server {
    int fd;
    bool wait;
    char path[256]; /* unix: unlinked at the end */
};

static struct {
    struct machine *m;
    struct qmp_server srv[QMP_MAX_SERVERS];
    int nsrv;
    struct qmp_client cl[QMP_MAX_CLIENTS];
    int ncl;
    bool registered_with; /* on the current machine */
    bool reset_requested, quit_requested, incoming_deferred, migrated;
    bool sandboxed; /* qmp_feed: commands with host effects are refused */
} q;


/* ---- output ---- */
static void send_json(struct qmp_client *c, json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    size_t n = strlen(s);
    while (n && c->fd >= 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the client went away: its read sees it */
        s += w;
        n -= (size_t)w;
    }
    if (c->fd >= 0)
        send(c->fd, "\r\n", 2, MSG_NOSIGNAL);
}

static void reply(struct qmp_client *c, json_object *id, json_object *ret)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "return", ret ? ret : json_object_new_object());
    if (id)
        json_object_object_add(o, "id", json_object_get(id));
    send_json(c, o);
    json_object_put(o);
}

static void reply_error(struct qmp_client *c, json_object *id, const char *cls, const char *fmt, ...)
{
    char desc[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    json_object *e = json_object_new_object();
    json_object_object_add(e, "class", json_object_new_string(cls));
    json_object_object_add(e, "desc", json_object_new_string(desc));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", e);
    if (id)
        json_object_object_add(o, "id", json_object_get(id));
    send_json(c, o);
    json_object_put(o);
}

static void emit(const char *name, json_object *data)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "event", json_object_new_string(name));
    if (data)
        json_object_object_add(o, "data", data);
    json_object *ts = json_object_new_object();
    json_object_object_add(ts, "seconds", json_object_new_int64(tv.tv_sec));
    json_object_object_add(ts, "microseconds", json_object_new_int64(tv.tv_usec));
    json_object_object_add(o, "timestamp", ts);
    for (int i = 0; i < q.ncl; i++)
        if (q.cl[i].caps)
            send_json(&q.cl[i], o);
    json_object_put(o);
}

/* ---- commands ---- */
typedef void (*qmp_handler)(struct qmp_client *c, json_object *args, json_object *id);

static const char *status_name(void)
{
    struct machine *m = q.m;
    if (q.incoming_deferred)
        return "inmigrate";
    if (m->stop)
        return "shutdown";
    if (m->paused)
        return q.migrated ? "postmigrate" : "paused";
    return "running";
}

static void cmd_capabilities(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    if (c->caps) {
        reply_error(c, id, "CommandNotFound", "Capabilities negotiation is already complete, command ignored");
        return;
    }
    c->caps = true;
    reply(c, id, NULL);
}

/* The version QMP clients see: QEMU 8.0's protocol, package nestor. */
static json_object *version_object(void)
{
    json_object *v = json_object_new_object(), *qe = json_object_new_object();
    json_object_object_add(qe, "major", json_object_new_int(8));
    json_object_object_add(qe, "minor", json_object_new_int(0));
    json_object_object_add(qe, "micro", json_object_new_int(0));
    json_object_object_add(v, "qemu", qe);
    json_object_object_add(v, "package", json_object_new_string("nestor"));
    return v;
}

static void cmd_query_version(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    reply(c, id, version_object());
}

static void cmd_query_status(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    json_object *r = json_object_new_object();
    const char *s = status_name();
    json_object_object_add(r, "status", json_object_new_string(s));
    json_object_object_add(r, "running", json_object_new_boolean(!strcmp(s, "running")));
    json_object_object_add(r, "singlestep", json_object_new_boolean(false));
    reply(c, id, r);
}

static void cmd_stop(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    machine_pause(q.m);
    reply(c, id, NULL);
}

static void cmd_cont(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    if (q.incoming_deferred) {
        reply_error(c, id, "GenericError", "the machine waits for migrate-incoming");
        return;
    }
    q.migrated = false;
    machine_resume(q.m);
    reply(c, id, NULL);
}

static void cmd_system_reset(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    q.reset_requested = true;
    machine_request_stop(q.m, NESTOR_EXIT_OK);
    q.m->paused = false; /* leave the pause loop: the machine is built again */
    reply(c, id, NULL);
}

static void cmd_system_powerdown(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    machine_powerdown(q.m);
    reply(c, id, NULL);
    emit("POWERDOWN", NULL);
}

static void cmd_quit(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    q.quit_requested = true;
    reply(c, id, NULL);
    machine_request_stop(q.m, NESTOR_EXIT_OK);
    q.m->paused = false;
}

static void cmd_query_cpus_fast(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    json_object *a = json_object_new_array();
    for (int i = 0; i < q.m->ncpus; i++) {
        json_object *o = json_object_new_object(), *props = json_object_new_object();
        char path[64];
        snprintf(path, sizeof(path), "/machine/unattached/device[%d]", i);
        json_object_object_add(o, "cpu-index", json_object_new_int(i));
        json_object_object_add(o, "qom-path", json_object_new_string(path));
        json_object_object_add(o, "thread-id", json_object_new_int((int)getpid()));
        json_object_object_add(props, "core-id", json_object_new_int(0));
        json_object_object_add(props, "thread-id", json_object_new_int(0));
        json_object_object_add(props, "node-id", json_object_new_int(0));
        json_object_object_add(props, "socket-id", json_object_new_int(i));
        json_object_object_add(o, "props", props);
        json_object_object_add(o, "target", json_object_new_string("x86_64"));
        json_object_array_add(a, o);
    }
    reply(c, id, a);
}

/* A command's string argument, or NULL after the error reply QEMU gives. */
static const char *string_arg(struct qmp_client *c, json_object *args, json_object *id, const char *name)
{
    json_object *v;
    if (!json_object_object_get_ex(args, name, &v) || !json_object_is_type(v, json_type_string)) {
        reply_error(c, id, "GenericError", "Parameter '%s' is missing", name);
        return NULL;
    }
    return json_object_get_string(v);
}

static void cmd_hmp(struct qmp_client *c, json_object *args, json_object *id)
{
    const char *line = string_arg(c, args, id, "command-line");
    if (!line)
        return;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        reply_error(c, id, "GenericError", "out of host memory");
        return;
    }
    while (*line == ' ')
        line++;
    if (!strncmp(line, "info registers", 14) && (!line[14] || line[14] == ' ')) {
        for (int i = 0; i < q.m->ncpus; i++) {
            fprintf(f, "CPU#%d\n", i);
            cpu_dump(q.m->cpu[i], f);
        }
    } else if (!strcmp(line, "info status")) {
        fprintf(f, "VM status: %s\n", status_name());
    } else if (!strcmp(line, "info version")) {
        fprintf(f, "8.0.0 (nestor)\n");
    } else {
        fprintf(f, "unknown command: '%s'\n", line);
    }
    fclose(f);
    reply(c, id, json_object_new_string(text ? text : ""));
    free(text);
}

static void cmd_migrate(struct qmp_client *c, json_object *args, json_object *id)
{
    const char *uri = string_arg(c, args, id, "uri");
    if (!uri)
        return;
    char err[300];
    if (migrate_start(q.m, uri, err, sizeof(err)) < 0) {
        reply_error(c, id, "GenericError", "%s", err);
        return;
    }
    reply(c, id, NULL);
}

static void cmd_migrate_cancel(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    migrate_cancel(q.m);
    reply(c, id, NULL);
}

static void cmd_query_migrate(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    const struct migrate_info *i = migrate_info();
    json_object *r = json_object_new_object();
    if (i->state != MIGRATE_NONE) {
        json_object_object_add(r, "status", json_object_new_string(migrate_state_name(i->state)));
        json_object_object_add(r, "total-time", json_object_new_int64((int64_t)i->total_ms));
        json_object_object_add(r, "setup-time", json_object_new_int64((int64_t)i->setup_ms));
        if (i->state == MIGRATE_COMPLETED)
            json_object_object_add(r, "downtime", json_object_new_int64((int64_t)i->downtime_ms));
        json_object *ram = json_object_new_object();
        json_object_object_add(ram, "transferred", json_object_new_int64((int64_t)i->bytes));
        json_object_object_add(ram, "total", json_object_new_int64((int64_t)i->ram_total));
        json_object_object_add(ram, "remaining", json_object_new_int64((int64_t)i->ram_remaining));
        json_object_object_add(ram, "normal", json_object_new_int64((int64_t)i->pages_normal));
        json_object_object_add(ram, "normal-bytes", json_object_new_int64((int64_t)i->ram_transferred));
        json_object_object_add(ram, "duplicate", json_object_new_int64((int64_t)i->pages_zero));
        json_object_object_add(ram, "dirty-sync-count", json_object_new_int64((int64_t)i->passes));
        json_object_object_add(ram, "dirty-pages-rate", json_object_new_int64((int64_t)i->dirty_rate));
        json_object_object_add(r, "ram", ram);
        if (i->state == MIGRATE_FAILED && i->error[0])
            json_object_object_add(r, "error-desc", json_object_new_string(i->error));
    }
    reply(c, id, r);
}

static void cmd_migrate_incoming(struct qmp_client *c, json_object *args, json_object *id)
{
    if (!q.incoming_deferred) {
        reply_error(c, id, "GenericError", "The incoming migration has already been started "
                    "or nestor was not started with -incoming defer");
        return;
    }
    const char *uri = string_arg(c, args, id, "uri");
    if (!uri)
        return;
    reply(c, id, NULL);
    json_object *d = json_object_new_object();
    json_object_object_add(d, "status", json_object_new_string("active"));
    emit("MIGRATION", d);
    char err[400];
    /* the machine is paused and waits: receiving blocks until the stream is in */
    if (migrate_incoming(q.m, uri, err, sizeof(err)) < 0) {
        nestor_log("migrate-incoming: %s", err);
        d = json_object_new_object();
        json_object_object_add(d, "status", json_object_new_string("failed"));
        emit("MIGRATION", d);
        machine_request_stop(q.m, NESTOR_EXIT_USAGE);
        q.m->paused = false;
        return;
    }
    d = json_object_new_object();
    json_object_object_add(d, "status", json_object_new_string("completed"));
    emit("MIGRATION", d);
    q.incoming_deferred = false;
    machine_resume(q.m);
}

static void cmd_query_commands(struct qmp_client *c, json_object *args, json_object *id);

static const struct qmp_command {
    const char *name;
    qmp_handler fn;
    bool before_caps; /* allowed in capabilities negotiation mode */
    bool host_effects; /* reaches the host (files, sockets, commands): not in qmp_feed */
} commands[] = {
    { "qmp_capabilities", cmd_capabilities, true, false },
    { "query-version", cmd_query_version, false, false },
    { "query-commands", cmd_query_commands, false, false },
    { "query-status", cmd_query_status, false, false },
    { "stop", cmd_stop, false, false },
    { "cont", cmd_cont, false, false },
    { "system_reset", cmd_system_reset, false, false },
    { "system_powerdown", cmd_system_powerdown, false, false },
    { "quit", cmd_quit, false, false },
    { "query-cpus-fast", cmd_query_cpus_fast, false, false },
    { "human-monitor-command", cmd_hmp, false, false },
    { "migrate", cmd_migrate, false, true },
    { "query-migrate", cmd_query_migrate, false, false },
    { "migrate_cancel", cmd_migrate_cancel, false, false },
    { "migrate-incoming", cmd_migrate_incoming, false, true },
};

static void cmd_query_commands(struct qmp_client *c, json_object *args, json_object *id)
{
    (void)args;
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(commands[i].name));
        json_object_array_add(a, o);
    }
    reply(c, id, a);
}

static void dispatch(struct qmp_client *c, json_object *msg)
{
    json_object *id = NULL, *ex = NULL, *args = NULL;
    if (!json_object_is_type(msg, json_type_object)) {
        reply_error(c, NULL, "GenericError", "QMP input must be a JSON object");
        return;
    }
    json_object_object_get_ex(msg, "id", &id);
    if (!json_object_object_get_ex(msg, "execute", &ex) || !json_object_is_type(ex, json_type_string)) {
        reply_error(c, id, "GenericError", "QMP input lacks member 'execute'");
        return;
    }
    if (json_object_object_get_ex(msg, "arguments", &args) && !json_object_is_type(args, json_type_object)) {
        reply_error(c, id, "GenericError", "QMP input member 'arguments' must be an object");
        return;
    }
    const char *name = json_object_get_string(ex);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name))
            continue;
        if (q.sandboxed && commands[i].host_effects) {
            reply_error(c, id, "GenericError", "%s is not available here", name);
            return;
        }
        if (!c->caps && !commands[i].before_caps) {
            reply_error(c, id, "CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'");
            return;
        }
        commands[i].fn(c, args, id);
        return;
    }
    reply_error(c, id, "CommandNotFound", "The command %s has not been found", name);
}

/* ---- connections ---- */
static void greet(struct qmp_client *c)
{
    json_object *o = json_object_new_object(), *qo = json_object_new_object();
    json_object_object_add(qo, "version", version_object());
    json_object_object_add(qo, "capabilities", json_object_new_array());
    json_object_object_add(o, "QMP", qo);
    send_json(c, o);
    json_object_put(o);
}

static void drop_client(int i)
{
    close(q.cl[i].fd);
    json_tokener_free(q.cl[i].tok);
    q.cl[i] = q.cl[--q.ncl];
}

/* Input from a client: complete messages are run, a malformed one answered with an
 * error (and the rest of what arrived with it dropped), an oversized one likewise. */
static void client_input(struct qmp_client *c, const u8 *buf, size_t n)
{
    while (n) {
        json_object *o = json_tokener_parse_ex(c->tok, (const char *)buf, (int)n);
        enum json_tokener_error e = json_tokener_get_error(c->tok);
        size_t used = json_tokener_get_parse_end(c->tok);
        if (used > n || (used == 0 && !o && e != json_tokener_continue))
            used = n;
        if (o) {
            json_tokener_reset(c->tok);
            c->pending = 0;
            dispatch(c, o);
            json_object_put(o);
        } else if (e == json_tokener_continue) {
            c->pending += used;
            if (c->pending > QMP_MAX_PENDING) {
                reply_error(c, NULL, "GenericError", "QMP message longer than %d bytes", QMP_MAX_PENDING);
                json_tokener_reset(c->tok);
                c->pending = 0;
                return;
            }
        } else {
            reply_error(c, NULL, "GenericError", "JSON parse error, %s", json_tokener_error_desc(e));
            json_tokener_reset(c->tok);
            c->pending = 0;
            return;
        }
        buf += used;
        n -= used;
        /* whitespace between messages */
        while (n && (*buf == ' ' || *buf == '\r' || *buf == '\n' || *buf == '\t') && !c->pending) {
            buf++;
            n--;
        }
    }
}

static void accept_client(struct qmp_server *s)
{
    int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (q.ncl == QMP_MAX_CLIENTS) {
        close(fd);
        return;
    }
    struct qmp_client *c = &q.cl[q.ncl++];
    *c = (struct qmp_client){ .fd = fd, .tok = json_tokener_new() };
    greet(c);
}

static void serve(int timeout_ms)
{
    struct pollfd p[QMP_MAX_SERVERS + QMP_MAX_CLIENTS];
    int n = 0;
    for (int i = 0; i < q.nsrv; i++)
        p[n++] = (struct pollfd){ q.srv[i].fd, POLLIN, 0 };
    for (int i = 0; i < q.ncl; i++)
        p[n++] = (struct pollfd){ q.cl[i].fd, POLLIN, 0 };
    if (poll(p, (nfds_t)n, timeout_ms) <= 0)
        return;
    for (int i = 0; i < q.nsrv; i++)
        if (p[i].revents & POLLIN)
            accept_client(&q.srv[i]);
    /* clients in reverse: dropping one moves the last into its place */
    for (int i = q.nsrv + q.ncl - 1; i >= q.nsrv; i--) {
        int k = i - q.nsrv;
        if (k >= q.ncl || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        u8 buf[4096];
        ssize_t r = recv(q.cl[k].fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            drop_client(k);
            continue;
        }
        if (r > 0)
            client_input(&q.cl[k], buf, (size_t)r);
    }
}

/* ---- the machine's control client ---- */
static void qmp_poll(void *opaque, int timeout_ms)
{
    (void)opaque;
    serve(timeout_ms);
}

static void qmp_event(void *opaque, enum machine_event ev)
{
    (void)opaque;
    switch (ev) {
    case MACHINE_EV_STOP:
        emit("STOP", NULL);
        break;
    case MACHINE_EV_RESUME:
        emit("RESUME", NULL);
        break;
    case MACHINE_EV_SHUTDOWN:
        if (!q.reset_requested) {
            json_object *d = json_object_new_object();
            bool host = q.quit_requested;
            json_object_object_add(d, "guest", json_object_new_boolean(!host));
            json_object_object_add(d, "reason", json_object_new_string(host ? "host-qmp-quit" : "guest-shutdown"));
            emit("SHUTDOWN", d);
        }
        break;
    case MACHINE_EV_GUEST_PANICKED: {
        /* QEMU's event, with the Hyper-V crash parameters as its "info" */
        json_object *d = json_object_new_object(), *info = json_object_new_object();
        json_object_object_add(d, "action", json_object_new_string("poweroff"));
        json_object_object_add(info, "type", json_object_new_string("hyper-v"));
        static const char *const args[5] = { "arg1", "arg2", "arg3", "arg4", "arg5" };
        for (int i = 0; i < 5; i++)
            json_object_object_add(info, args[i], json_object_new_uint64(q.m->panic_info[i]));
        json_object_object_add(d, "info", info);
        emit("GUEST_PANICKED", d);
        break;
    }
    case MACHINE_EV_STOP_POINT:
    case MACHINE_EV_DEBUG: /* STOP was sent as it paused */
        break;
    }
}

static const struct machine_control_ops qmp_ops = { qmp_poll, qmp_event };

static void migration_changed(void *opaque, enum migrate_state s)
{
    (void)opaque;
    if (s == MIGRATE_COMPLETED)
        q.migrated = true;
    json_object *d = json_object_new_object();
    json_object_object_add(d, "status", json_object_new_string(migrate_state_name(s)));
    emit("MIGRATION", d);
}

void qmp_attach(struct machine *m)
{
    bool again = q.m != NULL;
    q.m = m;
    if (q.nsrv) {
        machine_set_control(m, &qmp_ops, NULL);
        migrate_set_listener(migration_changed, NULL);
    }
    if (again && q.reset_requested) {
        q.reset_requested = false;
        emit("RESET", json_object_new_object());
    }
}

bool qmp_reset_requested(void)
{
    return q.reset_requested;
}

void qmp_set_incoming_deferred(bool deferred)
{
    q.incoming_deferred = deferred;
}

void qmp_wait_client(void)
{
    bool waiting = false;
    for (int i = 0; i < q.nsrv; i++)
        waiting |= q.srv[i].wait;
    while (waiting) {
        for (int i = 0; i < q.ncl; i++)
            if (q.cl[i].caps)
                return;
        serve(1000);
    }
}

/* ---- servers ---- */
int qmp_listen(const char *spec, char *err, size_t errlen)
{
    if (q.nsrv == QMP_MAX_SERVERS)
        return nestor_err(err, errlen, "-qmp: at most %d servers", QMP_MAX_SERVERS);
    char addr[256];
    const char *comma = strchr(spec, ',');
    size_t al = comma ? (size_t)(comma - spec) : strlen(spec);
    if (al >= sizeof(addr))
        return nestor_err(err, errlen, "-qmp %s: address too long", spec);
    memcpy(addr, spec, al);
    addr[al] = 0;
    bool server = false, wait = true;
    for (const char *o = comma; o && *o;) {
        o++;
        const char *e = strchr(o, ',');
        size_t n = e ? (size_t)(e - o) : strlen(o);
        if ((n == 6 && !strncmp(o, "server", 6)) || (n == 9 && !strncmp(o, "server=on", 9)))
            server = true;
        else if (n == 10 && !strncmp(o, "server=off", 10))
            server = false;
        else if ((n == 6 && !strncmp(o, "nowait", 6)) || (n == 8 && !strncmp(o, "wait=off", 8)))
            wait = false;
        else if (n == 7 && !strncmp(o, "wait=on", 7))
            wait = true;
        else
            return nestor_err(err, errlen, "-qmp %s: unknown option '%.*s'", spec, (int)n, o);
        o = e;
    }
    if (!server)
        return nestor_err(err, errlen, "-qmp %s: nestor only listens (add server=on,wait=off)", spec);
    struct qmp_server *s = &q.srv[q.nsrv];
    memset(s, 0, sizeof(*s));
    s->wait = wait;
    int fd = sock_listen(addr, true, err, errlen);
    if (fd < 0)
        return -1;
    if (!strncmp(addr, "unix:", 5))
        snprintf(s->path, sizeof(s->path), "%s", addr + 5);
    s->fd = fd;
    q.nsrv++;
    return 0;
}

void qmp_shutdown(void)
{
    while (q.ncl)
        drop_client(q.ncl - 1);
    for (int i = 0; i < q.nsrv; i++) {
        close(q.srv[i].fd);
        if (q.srv[i].path[0])
            unlink(q.srv[i].path);
    }
    q.nsrv = 0;
}

void qmp_feed(int fd, const u8 *p, size_t n)
{
    q.sandboxed = true;
    struct qmp_client c = { .fd = fd, .tok = json_tokener_new(), .caps = n && (p[0] & 1) };
    client_input(&c, p, n);
    json_tokener_free(c.tok);
}

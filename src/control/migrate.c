/* Migration: outgoing pre-copy driven between rounds of the run loop, incoming load. */
#include "control/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control/snapshot.h"
#include "control/sock.h"
#include "control/stream.h"
#include "machine/machine.h"
#include "machine/xendev.h"

#define PAGE 4096u
/* pages sent per look of the run loop while the guest runs: a few milliseconds of work,
 * so the guest keeps most of the CPU during pre-copy */
#define PAGES_PER_SLICE 512u

enum phase { PH_FIRST, PH_DIRTY, PH_DONE };

struct migration {
    struct machine *m;
    struct migrate_info info;
    struct stream_out out;
    bool out_open;
    int fd;
    pid_t child;           /* exec: the command */
    enum phase phase;
    u64 cursor;            /* next page index of the current pass */
    u64 npages;
    u8 *pass;              /* the pages of the current pass (dirty passes) */
    u64 pass_pages;        /* pages in it */
    u64 prev_pass_pages;   /* pages of the pass before */
    int stalled;           /* passes in a row that left about as much as the one before */
    u64 start_ns, pass_start_ns, pass_bytes_start;
    double bytes_per_ns;   /* measured transfer rate */
    bool registered;
    bool was_running;
};

static struct migration mig;
static void (*listener)(void *opaque, enum migrate_state s);
static void *listener_opaque;

void migrate_set_listener(void (*fn)(void *opaque, enum migrate_state s), void *opaque)
{
    listener = fn;
    listener_opaque = opaque;
}

const char *migrate_state_name(enum migrate_state s)
{
    static const char *const names[] = { "none", "setup", "active", "completed", "failed",
                                         "cancelled" };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "none";
}

const struct migrate_info *migrate_info(void)
{
    if (mig.info.state == MIGRATE_ACTIVE || mig.info.state == MIGRATE_SETUP)
        mig.info.total_ms = (clock_host_ns() - mig.start_ns) / 1000000;
    mig.info.bytes = mig.out_open ? mig.out.bytes : mig.info.bytes;
    return &mig.info;
}

static void set_state(enum migrate_state s)
{
    mig.info.state = s;
    if (listener)
        listener(listener_opaque, s);
}


/* ---- connections ---- */
/* exec:COMMAND: the stream is the command's standard input (outgoing) or output. */
static int spawn(const char *cmd, bool outgoing, pid_t *pid, char *err, size_t errlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return nestor_err(err, errlen, "exec: %s", strerror(errno));
    pid_t c = fork();
    if (c < 0) {
        close(p[0]);
        close(p[1]);
        return nestor_err(err, errlen, "exec: %s", strerror(errno));
    }
    if (c == 0) {
        dup2(outgoing ? p[0] : p[1], outgoing ? 0 : 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(outgoing ? p[0] : p[1]);
    *pid = c;
    return outgoing ? p[1] : p[0];
}

static int open_outgoing(const char *uri, pid_t *child, char *err, size_t errlen)
{
    *child = -1;
    if (!strncmp(uri, "tcp:", 4) || !strncmp(uri, "unix:", 5))
        return sock_connect(uri, err, errlen);
    if (!strncmp(uri, "exec:", 5))
        return spawn(uri + 5, true, child, err, errlen);
    return nestor_err(err, errlen, "%s: the destination must be file:PATH, tcp:HOST:PORT, "
                "unix:PATH or exec:COMMAND", uri);
}

/* ---- outgoing ---- */
static void finish(enum migrate_state s, const char *why)
{
    struct machine *m = mig.m;
    if (mig.out_open) {
        if (s == MIGRATE_COMPLETED) {
            char err[256];
            if (stream_out_close(&mig.out, &mig.info.bytes, err, sizeof(err)) < 0) {
                s = MIGRATE_FAILED;
                why = err;
                snprintf(mig.info.error, sizeof(mig.info.error), "%s", why);
            }
        } else {
            mig.info.bytes = mig.out.bytes;
            stream_out_abort(&mig.out);
        }
        mig.out_open = false;
    }
    if (mig.fd >= 0)
        close(mig.fd);
    mig.fd = -1;
    if (mig.child > 0) {
        int st;
        if (s != MIGRATE_COMPLETED)
            kill(mig.child, SIGTERM);
        waitpid(mig.child, &st, 0);
        if (s == MIGRATE_COMPLETED && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            s = MIGRATE_FAILED;
            snprintf(mig.info.error, sizeof(mig.info.error), "the exec: command failed");
        }
        mig.child = -1;
    }
    machine_dirty_log_stop(m);
    free(mig.pass);
    mig.pass = NULL;
    mig.phase = PH_DONE;
    mig.info.total_ms = (clock_host_ns() - mig.start_ns) / 1000000;
    mig.info.ram_remaining = 0;
    if (s != MIGRATE_COMPLETED) {
        if (why && !mig.info.error[0])
            snprintf(mig.info.error, sizeof(mig.info.error), "%s", why);
        /* the source goes on as it was */
        if (mig.was_running && m->paused)
            machine_resume(m);
        nestor_log("migration %s: %s", migrate_state_name(s), mig.info.error);
    }
    set_state(s);
}


static void send_page(u64 idx, bool first_pass)
{
    /* a zero page goes as such only after the first pass: the destination starts zeroed */
    if (snapshot_put_page(mig.m, &mig.out, idx, !first_pass)) {
        mig.info.pages_normal++;
        mig.info.ram_transferred += PAGE;
    } else {
        mig.info.pages_zero++;
    }
}

static u64 count_bits(const u8 *b, u64 n)
{
    u64 c = 0;
    for (u64 i = 0; i < (n + 7) / 8; i++)
        c += (u64)__builtin_popcount(b[i]);
    return c;
}

/* Ends a pass: takes the dirty pages as the next pass, or stops the machine and sends
 * the rest when that fits the downtime limit or the passes do not converge. */
static void next_pass(void)
{
    struct machine *m = mig.m;
    u64 now = clock_host_ns();
    u64 pass_ns = now - mig.pass_start_ns;
    u64 pass_bytes = mig.out.bytes - mig.pass_bytes_start;
    if (pass_ns && pass_bytes)
        mig.bytes_per_ns = (double)pass_bytes / (double)pass_ns;
    /* disk requests in flight finish first: what they write is in this pass */
    xendev_quiesce(m);
    machine_dirty_log_take(m, mig.pass);
    mig.info.passes++;
    mig.prev_pass_pages = mig.pass_pages;
    mig.pass_pages = count_bits(mig.pass, mig.npages);
    /* the guest dirties as fast as the passes send: more passes do not help */
    if (mig.info.passes > 1 && mig.pass_pages * 10 >= mig.prev_pass_pages * 9)
        mig.stalled++;
    else
        mig.stalled = 0;
    mig.info.dirty_rate = pass_ns ? mig.pass_pages * 1000000000ull / pass_ns : 0;
    mig.cursor = 0;
    mig.phase = PH_DIRTY;
    mig.pass_start_ns = now;
    mig.pass_bytes_start = mig.out.bytes;
    mig.info.ram_remaining = mig.pass_pages * PAGE;
    /* what the rest would cost at the measured rate (compression counted in) */
    double ratio = mig.info.ram_transferred ? (double)mig.out.bytes / (double)mig.info.ram_transferred : 1.0;
    double est_ns = mig.bytes_per_ns > 0 ? (double)(mig.pass_pages * PAGE) * ratio / mig.bytes_per_ns : 0;
    if (est_ns > MIGRATE_DOWNTIME_LIMIT_MS * 1e6 && mig.info.passes < MIGRATE_MAX_PASSES &&
        mig.stalled < MIGRATE_STALLED_PASSES)
        return;
    /* stop and copy: no vCPU has run since the take, so the pass holds every page
     * written since the pages were last sent */
    u64 stop_ns = clock_host_ns();
    if (!m->paused)
        machine_pause(m);
    for (u64 i = 0; i < mig.npages; i++)
        if (mig.pass[i / 8] & (1u << (i % 8)))
            send_page(i, false);
    snapshot_put_state(m, &mig.out);
    stream_flush(&mig.out);
    mig.info.downtime_ms = (clock_host_ns() - stop_ns) / 1000000;
    finish(mig.out.failed ? MIGRATE_FAILED : MIGRATE_COMPLETED, mig.out.failed ? mig.out.err : NULL);
}

/* Between rounds: a slice of the current pass. */
static void migrate_poll(void *opaque, int timeout_ms)
{
    (void)opaque;
    (void)timeout_ms;
    if (mig.info.state != MIGRATE_ACTIVE || mig.phase == PH_DONE)
        return;
    unsigned budget = PAGES_PER_SLICE;
    if (mig.phase == PH_FIRST) {
        while (budget && mig.cursor < mig.npages) {
            send_page(mig.cursor++, true);
            budget--;
        }
        mig.info.ram_remaining = (mig.npages - mig.cursor) * PAGE;
        if (mig.cursor == mig.npages)
            next_pass();
    } else {
        while (budget && mig.cursor < mig.npages) {
            u64 i = mig.cursor++;
            if (mig.pass[i / 8] & (1u << (i % 8))) {
                send_page(i, false);
                mig.info.ram_remaining -= PAGE;
                budget--;
            }
        }
        if (mig.cursor == mig.npages)
            next_pass();
    }
    if (mig.phase != PH_DONE && mig.out.failed)
        finish(MIGRATE_FAILED, mig.out.err);
}

static void migrate_event(void *opaque, enum machine_event ev)
{
    (void)opaque;
    /* the guest stopped the machine for good: nothing to migrate any more */
    if (ev == MACHINE_EV_SHUTDOWN && (mig.info.state == MIGRATE_ACTIVE || mig.info.state == MIGRATE_SETUP))
        finish(MIGRATE_FAILED, "the machine shut down during the migration");
}

static const struct machine_control_ops migrate_ops = { migrate_poll, migrate_event };

int migrate_start(struct machine *m, const char *uri, char *err, size_t errlen)
{
    if (mig.info.state == MIGRATE_ACTIVE || mig.info.state == MIGRATE_SETUP)
        return nestor_err(err, errlen, "a migration is already in progress");
    if (!snapshot_supported(m, err, errlen))
        return -1;
    if (!mig.registered) {
        machine_set_control(m, &migrate_ops, &mig);
        mig.registered = true;
    }
    mig.m = m;
    mig.fd = -1;
    mig.child = -1;
    memset(&mig.info, 0, sizeof(mig.info));
    mig.start_ns = clock_host_ns();
    mig.was_running = !m->paused;
    mig.info.ram_total = mem_region_pages(&m->mem) * PAGE;
    set_state(MIGRATE_SETUP);
    if (!strncmp(uri, "file:", 5)) {
        /* stop and copy */
        u64 stop_ns = clock_host_ns();
        if (!m->paused)
            machine_pause(m);
        if (snapshot_save_file(m, uri + 5, &mig.info.bytes, mig.info.error, sizeof(mig.info.error)) < 0) {
            if (mig.was_running)
                machine_resume(m);
            set_state(MIGRATE_FAILED);
            return nestor_err(err, errlen, "%s", mig.info.error);
        }
        mig.info.downtime_ms = mig.info.total_ms = (clock_host_ns() - stop_ns) / 1000000;
        mig.info.ram_transferred = mig.info.ram_total;
        set_state(MIGRATE_COMPLETED);
        return 0;
    }
    mig.fd = open_outgoing(uri, &mig.child, mig.info.error, sizeof(mig.info.error));
    if (mig.fd < 0) {
        set_state(MIGRATE_FAILED);
        return nestor_err(err, errlen, "%s", mig.info.error);
    }
    mig.npages = mem_region_pages(&m->mem);
    mig.pass = calloc((mig.npages + 7) / 8, 1);
    if (!mig.pass || stream_out_open(&mig.out, mig.fd, err, errlen) < 0 ||
        machine_dirty_log_start(m) < 0) {
        free(mig.pass);
        mig.pass = NULL;
        close(mig.fd);
        set_state(MIGRATE_FAILED);
        return nestor_err(err, errlen, "out of host memory");
    }
    mig.out_open = true;
    snapshot_put_header(m, &mig.out);
    mig.phase = PH_FIRST;
    mig.cursor = 0;
    mig.pass_pages = mig.prev_pass_pages = 0;
    mig.stalled = 0;
    mig.pass_start_ns = clock_host_ns();
    mig.pass_bytes_start = 0;
    mig.info.setup_ms = (clock_host_ns() - mig.start_ns) / 1000000;
    set_state(MIGRATE_ACTIVE);
    /* a paused machine migrates at once: nothing dirties its RAM */
    if (m->paused) {
        while (mig.phase != PH_DONE)
            migrate_poll(&mig, 0);
    }
    return 0;
}

void migrate_cancel(struct machine *m)
{
    (void)m;
    if (mig.info.state == MIGRATE_ACTIVE || mig.info.state == MIGRATE_SETUP)
        finish(MIGRATE_CANCELLED, "cancelled");
}

/* ---- incoming ---- */
static int listen_accept(const char *uri, char *err, size_t errlen)
{
    int lfd = sock_listen(uri, false, err, errlen);
    if (lfd < 0)
        return -1;
    int fd;
    do
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    int e = errno;
    close(lfd);
    if (fd < 0)
        return nestor_err(err, errlen, "%s: %s", uri, strerror(e));
    return fd;
}

int migrate_incoming(struct machine *m, const char *uri, char *err, size_t errlen)
{
    if (!strncmp(uri, "file:", 5))
        return snapshot_load_file(m, uri + 5, err, errlen);
    int fd;
    pid_t child = -1;
    if (!strncmp(uri, "tcp:", 4) || !strncmp(uri, "unix:", 5))
        fd = listen_accept(uri, err, errlen);
    else if (!strncmp(uri, "exec:", 5))
        fd = spawn(uri + 5, false, &child, err, errlen);
    else
        return nestor_err(err, errlen, "%s: expected file:PATH, tcp:[HOST]:PORT, unix:PATH or "
                    "exec:COMMAND", uri);
    if (fd < 0)
        return -1;
    char why[400];
    int r = snapshot_load_fd(m, fd, why, sizeof(why));
    close(fd);
    if (child > 0) {
        int st;
        waitpid(child, &st, 0);
    }
    if (r < 0)
        return nestor_err(err, errlen, "%s: %s", uri, why);
    return 0;
}

/* Migration: the machine's stream (snapshot.h) to a file, a TCP or Unix socket or a
 * command, and back.
 *
 * Outgoing, to a connection: pre-copy. RAM is sent while the guest runs, a slice between
 * rounds of the run loop, with dirty logging on; then the pages written meanwhile, in
 * passes, until what is left can go within the downtime limit (or the passes stop
 * converging); then the machine pauses, the last pages and the device state go, and the
 * source stays paused (QEMU's "postmigrate"). To a file the machine is saved at once
 * (stop and copy). A migration that fails or is cancelled leaves the source as it was:
 * running if it ran.
 *
 * Incoming: the destination is created with the same options, receives the stream,
 * verifies its checksum, loads the state and runs from exactly where the source stopped. */
#ifndef NESTOR_CONTROL_MIGRATE_H
#define NESTOR_CONTROL_MIGRATE_H

#include "common.h"

struct machine;

enum migrate_state {
    MIGRATE_NONE,
    MIGRATE_SETUP,
    MIGRATE_ACTIVE,
    MIGRATE_COMPLETED,
    MIGRATE_FAILED,
    MIGRATE_CANCELLED,
};

struct migrate_info {
    enum migrate_state state;
    u64 total_ms;       /* start to end (so far while active) */
    u64 downtime_ms;    /* paused to done */
    u64 setup_ms;
    u64 bytes;          /* stream bytes written */
    u64 ram_total;      /* bytes of RAM */
    u64 ram_remaining;  /* bytes of RAM left in the current pass */
    u64 ram_transferred;/* bytes of pages sent (before compression) */
    u64 pages_normal;   /* pages sent with their contents */
    u64 pages_zero;     /* pages sent as zero pages or skipped in the first pass */
    u64 passes;         /* dirty-log synchronisations (QEMU's dirty-sync-count) */
    u64 dirty_rate;     /* pages dirtied per second, last pass */
    char error[256];
};

/* The downtime the last pass aims at (QEMU's downtime-limit), milliseconds. */
#define MIGRATE_DOWNTIME_LIMIT_MS 300
/* Passes after the first before the machine is stopped whatever is left, and passes in
 * a row that each left at least 90% of what the one before left (not converging). */
#define MIGRATE_MAX_PASSES 30
#define MIGRATE_STALLED_PASSES 4

/* Starts a migration to uri: file:PATH, tcp:HOST:PORT, unix:PATH, exec:COMMAND. 0, or -1
 * with a message (nothing started). A file is written before this returns. */
int migrate_start(struct machine *m, const char *uri, char *err, size_t errlen);
/* Cancels a migration in progress (the source goes on as before). */
void migrate_cancel(struct machine *m);
const struct migrate_info *migrate_info(void);
/* Told at every change of state (QMP's MIGRATION event). */
void migrate_set_listener(void (*fn)(void *opaque, enum migrate_state s), void *opaque);
const char *migrate_state_name(enum migrate_state s);
/* Receives a machine from uri (file:PATH, tcp:HOST:PORT, unix:PATH, exec:COMMAND) into m,
 * just created with the source's options. 0, or -1 with a message. */
int migrate_incoming(struct machine *m, const char *uri, char *err, size_t errlen);

#endif

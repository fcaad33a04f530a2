/* Save and restore of a whole machine: its state description (machine/state.h) and its
 * RAM, as one stream. The same stream goes to a file (migrate "file:PATH", -incoming
 * file:PATH) and, in rounds, over a connection for live migration.
 *
 * The stream: a header (magic, format version, nestor's version, the machine's
 * configuration as key=value pairs), then zstd-compressed records (RAM pages by guest
 * physical address, zero pages skipped; the machine state; an end mark), then a SHA-256
 * of everything before it. A loader refuses, with a message naming what differs, a
 * stream of another format version, for another configuration (-m, -smp, -cpu, -icount,
 * devices, -xen), truncated, or whose checksum does not match; the machine state is
 * loaded only once the checksum has been verified. */
#ifndef NESTOR_CONTROL_SNAPSHOT_H
#define NESTOR_CONTROL_SNAPSHOT_H

#include <stdio.h>

#include "common.h"

struct machine;

#define SNAPSHOT_FORMAT_VERSION 1

/* Can this machine be saved? false with the reason (a component whose state is not
 * described yet). */
bool snapshot_supported(const struct machine *m, char *err, size_t errlen);

/* Writes the whole machine (between instructions: between rounds or at a stop point) to
 * fd. 0, or -1 with a message. *bytes gets the stream's size when not NULL. */
int snapshot_save_fd(struct machine *m, int fd, u64 *bytes, char *err, size_t errlen);
int snapshot_save_file(struct machine *m, const char *path, u64 *bytes, char *err, size_t errlen);

/* Reads a stream into a machine just created with the configuration it was saved from
 * (its RAM and every component are replaced). 0, or -1 with a message; the machine must
 * then be discarded. */
int snapshot_load_fd(struct machine *m, int fd, char *err, size_t errlen);
int snapshot_load_file(struct machine *m, const char *path, char *err, size_t errlen);

/* SHA-256 of the machine's architectural state and RAM as hex (65 bytes with the NUL):
 * two runs that end in the same state have the same digest. The TLBs are left out: what
 * they hold is a cache the architecture lets a processor drop at any time. */
void snapshot_digest(struct machine *m, char hex[65]);
/* The digest of each component's section and each RAM region, a line each (-d state):
 * where two runs that should end alike first differ. */
void snapshot_digest_sections(struct machine *m, FILE *out);

#endif

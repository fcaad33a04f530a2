/* QMP, QEMU's machine protocol, so that existing clients (scripts, libvirt-style tools,
 * qmp-shell) drive nestor: the greeting and capabilities negotiation, one table of
 * commands (query-status, stop, cont, system_reset, system_powerdown, quit,
 * query-cpus-fast, human-monitor-command, migrate, query-migrate, migrate_cancel,
 * migrate-incoming, ...) and the events (STOP, RESUME, SHUTDOWN, RESET, POWERDOWN,
 * MIGRATION). JSON goes through json-c. Servers listen on Unix or TCP sockets; each takes
 * several clients; a malformed or oversized message gets an error reply and the
 * connection and the guest carry on. */
#ifndef NESTOR_CONTROL_QMP_H
#define NESTOR_CONTROL_QMP_H

#include "common.h"

struct machine;

/* -qmp unix:PATH,server=on,wait=off | tcp:HOST:PORT,server=on,wait=off (QEMU's
 * spellings; "server"/"nowait" too). wait=on: qmp_wait_client() waits for a client. 0,
 * or -1 with a message. */
int qmp_listen(const char *spec, char *err, size_t errlen);
/* Serves the machine (again after a reset rebuilt it). */
void qmp_attach(struct machine *m);
/* Blocks until some server with wait=on has a client that negotiated capabilities. */
void qmp_wait_client(void);
/* The run ended because a client asked for a reset (system_reset): the CLI builds the
 * machine again. Cleared by the call. */
bool qmp_reset_requested(void);
/* -incoming defer: the machine waits for migrate-incoming. */
void qmp_set_incoming_deferred(bool deferred);
/* Closes every server and client. */
void qmp_shutdown(void);
/* For the fuzz target: feeds bytes to a client connection's input as if received, its
 * replies going to fd; commands that reach the host (migrate, migrate-incoming) are
 * refused. The first byte's bit 0: capabilities already negotiated. */
void qmp_feed(int fd, const u8 *p, size_t n);

#endif

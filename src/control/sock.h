/* The control plane's sockets (QMP, gdb, migration), by QEMU's address spellings:
 * "tcp:HOST:PORT" (an empty HOST listens on every address) and "unix:PATH". */
#ifndef NESTOR_CONTROL_SOCK_H
#define NESTOR_CONTROL_SOCK_H

#include "common.h"

/* A listening socket (a Unix socket's stale path is replaced): the fd, or -1 with a
 * message. nonblock: accept() never waits. */
int sock_listen(const char *addr, bool nonblock, char *err, size_t errlen);
/* A connected socket: the fd, or -1 with a message. */
int sock_connect(const char *addr, char *err, size_t errlen);

#endif

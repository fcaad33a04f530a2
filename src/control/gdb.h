/* The gdb stub: gdb's remote serial protocol on a TCP port, as QEMU's -gdb/-s/-S, so
 * that `gdb vmlinux` with `target remote :1234` debugs the guest: each vCPU a thread,
 * registers with an x86-64 (or, for a CPU model without long mode, i386) target
 * description, memory through the guest's page tables, breakpoints and watchpoints held
 * by nestor (the guest sees none of them: its code is not patched, its debug registers
 * are its own), single step, continue, Ctrl-C. */
#ifndef NESTOR_CONTROL_GDB_H
#define NESTOR_CONTROL_GDB_H

#include "common.h"

struct machine;

/* -gdb tcp::PORT | tcp:HOST:PORT (and -s: tcp::1234). 0, or -1 with a message. */
int gdb_listen(const char *spec, char *err, size_t errlen);
/* Serves the machine (again after a reset rebuilt it). start_stopped (-S): the guest
 * waits for the debugger's first continue. */
void gdb_attach(struct machine *m, bool start_stopped);
void gdb_shutdown(void);
/* For the fuzz target: feeds bytes to the protocol as if received, replies to fd. */
void gdb_feed(int fd, const u8 *p, size_t n);

#endif

/* The serial console on the terminal: raw mode while the guest runs, QEMU's Ctrl-A
 * escape commands, restored terminal on every exit path. */
#ifndef NESTOR_CLI_CONSOLE_H
#define NESTOR_CLI_CONSOLE_H

#include "common.h"
#include "machine/machine.h"

struct console {
    int in_fd, out_fd;
    bool tty;            /* input is a terminal: raw mode and escapes active */
    bool escape;         /* the previous byte was Ctrl-A */
    bool quit;           /* Ctrl-A x was typed */
};

/* Puts a terminal input into raw mode (restored at exit and on fatal signals). */
void console_open(struct console *con, int in_fd, int out_fd);
void console_close(struct console *con);
/* Puts the terminal back as it was (async-signal-safe) */
void console_restore_terminal(void);
/* Processes escape sequences in place; returns the bytes left for the guest. Ctrl-A x
 * sets *action to CONSOLE_QUIT, Ctrl-A s to CONSOLE_POWERDOWN. */
size_t console_filter(void *con, u8 *buf, size_t n, enum console_action *action);

#endif

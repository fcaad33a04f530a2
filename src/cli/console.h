/* The serial console on the terminal: raw mode while the guest runs, QEMU's Ctrl-A
 * escape commands, restored terminal on every exit path. */
#ifndef NESTOR_CLI_CONSOLE_H
#define NESTOR_CLI_CONSOLE_H

#include "common.h"

struct console {
    int in_fd, out_fd;
    bool tty;            /* input is a terminal: raw mode and escapes active */
    bool escape;         /* the previous byte was Ctrl-A */
    bool quit;           /* Ctrl-A x was typed */
};

/* Puts a terminal input into raw mode (restored at exit and on fatal signals). */
void console_open(struct console *con, int in_fd, int out_fd);
void console_close(struct console *con);
/* Processes escape sequences in place; returns the bytes left for the guest. */
size_t console_filter(void *con, u8 *buf, size_t n, bool *quit);

#endif

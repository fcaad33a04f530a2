#include "cli/console.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define CTRL_A 0x01

static struct termios saved_tio;
static int saved_fd = -1;

void console_restore_terminal(void)
{
    if (saved_fd >= 0)
        tcsetattr(saved_fd, TCSANOW, &saved_tio);
}

static void fatal_signal(int sig)
{
    console_restore_terminal();
    signal(sig, SIG_DFL);
    raise(sig);
}

void console_open(struct console *con, int in_fd, int out_fd)
{
    memset(con, 0, sizeof(*con));
    con->in_fd = in_fd;
    con->out_fd = out_fd;
    con->tty = in_fd >= 0 && isatty(in_fd);
    if (!con->tty || tcgetattr(in_fd, &saved_tio) < 0) {
        con->tty = false;
        return;
    }
    saved_fd = in_fd;
    atexit(console_restore_terminal);
    signal(SIGHUP, fatal_signal);
    signal(SIGSEGV, fatal_signal);
    signal(SIGABRT, fatal_signal);
    struct termios raw = saved_tio;
    /* Ctrl-C and friends go to the guest; output processing stays on */
    raw.c_iflag &= ~(unsigned)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    raw.c_lflag &= ~(unsigned)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    raw.c_cflag &= ~(unsigned)(CSIZE | PARENB);
    raw.c_cflag |= CS8;
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    tcsetattr(in_fd, TCSANOW, &raw);
}

void console_close(struct console *con)
{
    if (con->tty)
        console_restore_terminal();
    con->tty = false;
}

static void say(struct console *con, const char *s)
{
    if (write(con->out_fd, s, strlen(s)) < 0) {
        /* nothing sensible to do if the terminal is gone */
    }
}

size_t console_filter(void *opaque, u8 *buf, size_t n, enum console_action *action)
{
    struct console *con = opaque;
    if (!con->tty)
        return n;
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        u8 b = buf[i];
        if (!con->escape) {
            if (b == CTRL_A)
                con->escape = true;
            else
                buf[out++] = b;
            continue;
        }
        con->escape = false;
        switch (b) {
        case 'x':
        case 'X':
            say(con, "\r\nnestor: terminated by Ctrl-A x\r\n");
            con->quit = true;
            *action = CONSOLE_QUIT;
            break;
        case 's':
        case 'S':
            say(con, "\r\nnestor: asking the guest to power off (Ctrl-A s)\r\n");
            *action = CONSOLE_POWERDOWN;
            break;
        case CTRL_A:
        case 'a':
            buf[out++] = CTRL_A;
            break;
        case 'h':
        case 'H':
        case '?':
            say(con, "\r\nC-a h    print this help\r\n"
                     "C-a x    exit nestor\r\n"
                     "C-a s    ask the guest to power off (ACPI button; a Xen guest:\r\n"
                     "         xenstore's control/shutdown)\r\n"
                     "C-a C-a  send C-a to the guest\r\n");
            break;
        default:
            break; /* unknown escapes are dropped, as QEMU does */
        }
    }
    return out;
}

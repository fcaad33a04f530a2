/* libFuzzer target: the gdb stub's packet parser and commands. Arbitrary bytes arrive
 * as from a debugger (packets with right or wrong checksums, escapes, acks, Ctrl-C); the
 * second half of the input is also sent as well-formed packets, so that every command
 * (registers, memory through the guest's paging, breakpoints, watchpoints, steps,
 * threads, qXfer) sees arbitrary arguments. Replies go to /dev/null. Nothing may crash,
 * leak or hang (ASan/UBSan). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/gdb.h"
#include "machine/machine.h"

static struct machine m;
static int out_fd;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    struct machine_config cfg = { .ram_size = 16 * MiB, .ncpus = 2, .console_in_fd = -1,
                                  .console_out_fd = -1, .deterministic = true };
    if (machine_create(&m, &cfg))
        abort();
    gdb_attach(&m, true);
    out_fd = open("/dev/null", O_WRONLY);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t half = size / 2;
    gdb_feed(out_fd, data, half);
    /* the rest as one packet with a correct checksum */
    char *pkt = malloc(size - half + 5);
    u8 sum = 0;
    size_t n = 0;
    pkt[n++] = '$';
    for (size_t i = half; i < size; i++) {
        u8 ch = data[i];
        if (ch == '$' || ch == '#')
            ch = ' ';
        pkt[n++] = (char)ch;
        sum += ch;
    }
    n += (size_t)snprintf(pkt + n, 4, "#%02x", sum);
    gdb_feed(out_fd, (const u8 *)pkt, n);
    free(pkt);
    m.stop = false;
    m.paused = true;
    return 0;
}

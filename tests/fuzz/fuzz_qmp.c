/* libFuzzer target: QMP's input path. Arbitrary bytes arrive on a client connection of a
 * small machine's QMP server: the JSON stream (partial, malformed, oversized messages,
 * several in one read), the command dispatch with arbitrary arguments, and the commands
 * themselves (stop, cont, system_reset, system_powerdown, quit, info registers...); the
 * ones that reach the host (migrate) are refused in this sandbox. Replies go to
 * /dev/null. Nothing may crash, leak, or hang (ASan/UBSan). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/qmp.h"
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
    qmp_attach(&m);
    out_fd = open("/dev/null", O_WRONLY);
    return 0;
}

/* Commands to build messages with (the input's second byte picks one), so that the
 * dispatcher and the handlers see well-formed requests with arbitrary arguments too. */
static const char *const names[] = {
    "qmp_capabilities", "query-version", "query-commands", "query-status", "stop", "cont",
    "system_reset", "system_powerdown", "quit", "query-cpus-fast", "human-monitor-command",
    "migrate", "query-migrate", "migrate_cancel", "migrate-incoming", "no-such-command",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 2 && (data[0] & 2)) {
        /* {"execute": NAME, "arguments": REST, "id": N} with REST the input's bytes,
         * or {"command-line": "REST"} for the monitor */
        const char *name = names[data[1] % (sizeof(names) / sizeof(names[0]))];
        char *msg = malloc(size * 2 + 128);
        size_t n = (size_t)sprintf(msg, "{\"execute\": \"%s\", \"id\": %u, \"arguments\": ", name, data[1]);
        if (data[0] & 4) {
            n += (size_t)sprintf(msg + n, "{\"command-line\": \"");
            for (size_t i = 2; i < size; i++)
                msg[n++] = (data[i] >= 0x20 && data[i] < 0x7f && data[i] != '"' && data[i] != '\\') ? (char)data[i] : ' ';
            n += (size_t)sprintf(msg + n, "\"}");
        } else {
            memcpy(msg + n, data + 2, size - 2);
            n += size - 2;
        }
        n += (size_t)sprintf(msg + n, "}\r\n");
        qmp_feed(out_fd, (const u8 *)msg, n);
        free(msg);
    } else {
        qmp_feed(out_fd, data, size);
    }
    /* what a command asked of the machine is undone for the next input */
    m.stop = false;
    m.paused = false;
    m.exit_status = 0;
    return 0;
}

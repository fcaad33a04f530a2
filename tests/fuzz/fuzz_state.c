/* libFuzzer target: the loader of saved machines. The first byte picks what the rest is:
 *   0: a serialised machine state, loaded into a machine (machine_state_load);
 *   1: patches (offset, byte) over the valid state of a machine that ran a little, so
 *      mutations reach every component's fields and their checks; a state the loader
 *      accepts then runs a few thousand instructions on each vCPU;
 *   2: a whole stream (header, zstd records, checksum) through snapshot_load_fd;
 *   3: a valid stream with patches (its checksum then fails, or the patch hit the
 *      checksum itself).
 * Nothing may crash, hang, leak, or touch host memory outside guest RAM (ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "control/snapshot.h"
#include "machine/machine.h"

static struct machine m;
static u8 *good_state, *good_stream;
static size_t good_state_len, good_stream_len;

/* A small program for vCPU 0 at 1M, in real mode as the machine starts: a loop of
 * memory writes, port I/O and arithmetic, so a saved state has some history. */
static const u8 program[] = {
    0xb8, 0x00, 0x10, /* mov ax, 0x1000 */
    0x8e, 0xd8,       /* mov ds, ax */
    0x31, 0xdb,       /* xor bx, bx */
    0x89, 0x1f,       /* mov [bx], bx */
    0x43,             /* inc bx */
    0xe6, 0x80,       /* out 0x80, al */
    0xeb, 0xf9,       /* jmp -7 (to mov [bx], bx) */
};

static void build(void)
{
    struct machine_config cfg = { .ram_size = 16 * MiB, .ncpus = 2, .console_in_fd = -1,
                                  .console_out_fd = -1, .deterministic = true };
    if (machine_create(&m, &cfg))
        abort();
    mem_write(&m.mem, 0x7c00, program, sizeof(program));
    struct cpu *c = m.cpu[0];
    cpu_set_seg(c, SEG_CS, 0, 0, 0xffff, 0x9b);
    c->rip = 0x7c00;
    cpu_run(c, 5000);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    build();
    struct state_buf b = { 0 };
    machine_state_save(&m, &b);
    good_state = b.p;
    good_state_len = b.len;
    int fd = memfd_create("stream", 0);
    char err[256];
    if (fd < 0 || snapshot_save_fd(&m, fd, NULL, err, sizeof(err)) < 0)
        abort();
    good_stream_len = (size_t)lseek(fd, 0, SEEK_END);
    good_stream = malloc(good_stream_len);
    if (pread(fd, good_stream, good_stream_len, 0) != (ssize_t)good_stream_len)
        abort();
    close(fd);
    return 0;
}

static u8 *patched(const u8 *base, size_t len, const u8 *p, size_t n)
{
    u8 *out = malloc(len ? len : 1);
    memcpy(out, base, len);
    for (size_t i = 0; i + 4 <= n && len; i += 4) {
        size_t off = ((size_t)p[i] | (size_t)p[i + 1] << 8 | (size_t)p[i + 2] << 16) % len;
        out[off] = p[i + 3];
    }
    return out;
}

static void load_stream(const u8 *p, size_t n)
{
    int fd = memfd_create("stream", 0);
    if (fd < 0)
        abort();
    if (n && write(fd, p, n) != (ssize_t)n)
        abort();
    lseek(fd, 0, SEEK_SET);
    char err[512];
    snapshot_load_fd(&m, fd, err, sizeof(err));
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char err[512];
    const u8 *p = data + 1;
    size_t n = size - 1;
    switch (data[0] & 3) {
    case 0:
        machine_state_load(&m, p, n, err, sizeof(err));
        break;
    case 1: {
        u8 *s = patched(good_state, good_state_len, p, n);
        if (machine_state_load(&m, s, good_state_len, err, sizeof(err)) == 0)
            for (int i = 0; i < m.ncpus; i++)
                if (m.cpu[i]->state == CPU_RUNNING)
                    cpu_run(m.cpu[i], 3000);
        free(s);
        break;
    }
    case 2:
        load_stream(p, n);
        break;
    case 3: {
        u8 *s = patched(good_stream, good_stream_len, p, n);
        load_stream(s, good_stream_len);
        free(s);
        break;
    }
    }
    /* whatever was loaded, the next input starts from the good state */
    if (machine_state_load(&m, good_state, good_state_len, err, sizeof(err)) < 0)
        abort();
    return 0;
}

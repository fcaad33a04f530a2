/* Builds the machine nestor runs (machine_create: 2 CPUs, 512 MiB, all the platform
 * devices, no kernel) and writes each of its ACPI tables to DIR/SIG.dat, the RSDP to
 * DIR/RSDP.dat and the e820 map to DIR/e820.txt, for tests/dev/run.sh to hand to iasl. */
#include <stdio.h>
#include <string.h>

#include "dev/dev.h"
#include "machine/machine.h"

static struct machine m;

static u64 le(const u8 *p, int n)
{
    u64 v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int dump(const char *dir, const char *name, u64 gpa, u64 len)
{
    const u8 *p = mem_ptr(&m.mem, gpa, len);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
    FILE *f = fopen(path, "wb");
    if (!p || !f || fwrite(p, 1, len, f) != len || fclose(f)) {
        fprintf(stderr, "acpi_dump: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static int dump_table(const char *dir, u64 gpa)
{
    const u8 *h = mem_ptr(&m.mem, gpa, 36);
    if (!h)
        return -1;
    char sig[5] = { 0 };
    memcpy(sig, h, 4);
    return dump(dir, sig, gpa, le(h + 4, 4));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: acpi_dump DIR\n");
        return 2;
    }
    struct machine_config cfg = {
        .ram_size = 512 * MiB,
        .ncpus = 2,
        .deterministic = true,
        .console_in_fd = -1,
        .console_out_fd = 1,
    };
    if (machine_create(&m, &cfg) != 0)
        return 1;
    u64 rsdp = m.acpi_rsdp;
    const u8 *r = mem_ptr(&m.mem, rsdp, 36);
    if (dump(argv[1], "RSDP", rsdp, 36) || dump_table(argv[1], le(r + 16, 4)) ||
        dump_table(argv[1], le(r + 24, 8)))
        return 1;
    const u8 *x = mem_ptr(&m.mem, le(r + 24, 8), 36);
    for (u64 i = 0; i < (le(x + 4, 4) - 36) / 8; i++) {
        u64 t = le(x + 36 + 8 * i, 8);
        if (dump_table(argv[1], t))
            return 1;
        const u8 *h = mem_ptr(&m.mem, t, 4);
        if (!memcmp(h, "FACP", 4)) {
            const u8 *fadt = mem_ptr(&m.mem, t, 276);
            if (dump(argv[1], "FACS", le(fadt + 36, 4), 64) || dump_table(argv[1], le(fadt + 40, 4)))
                return 1;
        }
    }
    /* the e820 map the tables go with, for reading next to them */
    char path[512];
    snprintf(path, sizeof(path), "%s/e820.txt", argv[1]);
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    for (int i = 0; i < m.mem.ne820; i++)
        fprintf(f, "0x%010llx-0x%010llx type %u\n", (unsigned long long)m.mem.e820[i].addr,
                (unsigned long long)(m.mem.e820[i].addr + m.mem.e820[i].size - 1), m.mem.e820[i].type);
    if (fclose(f))
        return 1;
    machine_destroy(&m);
    return 0;
}

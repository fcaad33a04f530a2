/* Unit tests of fw_cfg through its I/O ports, as a guest (or SeaBIOS / Linux's
 * qemu_fw_cfg driver) uses them: selector and data ports, the file directory, etc/e820,
 * and DMA transfers into guest RAM. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dev/dev.h"
#include "machine/machine.h"

static struct machine m;
static struct fwcfg *fw;

static void setup(void)
{
    memset(&m, 0, sizeof(m));
    cr_assert_eq(mem_init(&m.mem, 64 * MiB), 0);
    bus_init(&m.io, "io");
    bus_init(&m.mmio, "mmio");
    clock_init(&m.clock, true);
    m.ncpus = m.cfg.ncpus = 3;
    fw = fwcfg_create(&m);
}

static void teardown(void)
{
    fwcfg_destroy(fw);
    mem_destroy(&m.mem);
}

TestSuite(fwcfg, .init = setup, .fini = teardown);

static void select_key(u16 key) { bus_write(&m.io, 0x510, 2, key); }

static void read_data(void *buf, size_t n)
{
    u8 *p = buf;
    for (size_t i = 0; i < n; i++)
        p[i] = (u8)bus_read(&m.io, 0x511, 1);
}

static u64 read_le(u16 key, int bytes)
{
    u8 b[8] = { 0 };
    select_key(key);
    read_data(b, (size_t)bytes);
    u64 v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }

/* Finds a file in the directory; returns its key and size. */
static bool find_file(const char *name, u16 *key, u32 *size)
{
    u8 n[4], e[64];
    select_key(0x19);
    read_data(n, 4);
    for (u32 i = 0; i < be32(n); i++) {
        read_data(e, sizeof(e));
        if (!strcmp((const char *)e + 8, name)) {
            *size = be32(e);
            *key = (u16)(e[4] << 8 | e[5]);
            return true;
        }
    }
    return false;
}

Test(fwcfg, signature_and_id)
{
    char sig[5] = { 0 };
    select_key(0x0000);
    read_data(sig, 4);
    cr_assert_str_eq(sig, "QEMU");
    cr_assert_eq(bus_read(&m.io, 0x511, 1), 0u, "past the end reads 0");
    cr_assert_eq(read_le(0x01, 4), 3u, "traditional interface and DMA");
    /* a 1-byte read at the selector port also returns data (QEMU's combined region) */
    select_key(0x0000);
    cr_assert_eq(bus_read(&m.io, 0x510, 1), (u64)'Q');
    cr_assert_eq(bus_read(&m.io, 0x510, 2), 0xffffu, "16-bit reads are not decoded");
}

Test(fwcfg, machine_items)
{
    cr_assert_eq(read_le(0x03, 8), 64 * MiB);
    cr_assert_eq(read_le(0x05, 2), 3u);
    cr_assert_eq(read_le(0x0f, 2), 3u);
    cr_assert_eq(read_le(0x1234, 4), 0u, "unknown keys read as 0");
    /* the write-channel bit does not change which item is read */
    cr_assert_eq(read_le(0x4005, 2), 3u);
    /* items set by the machine replace derived ones */
    u16 two = 2;
    fwcfg_set(fw, 0x05, &two, 2);
    cr_assert_eq(read_le(0x05, 2), 2u);
}

Test(fwcfg, e820_file)
{
    u16 key;
    u32 size;
    cr_assert(find_file("etc/e820", &key, &size));
    cr_assert_geq(key, 0x20);
    cr_assert_eq(size, (u32)m.mem.ne820 * 20);
    select_key(key);
    for (int i = 0; i < m.mem.ne820; i++) {
        u8 e[20];
        read_data(e, sizeof(e));
        u64 addr, len;
        u32 type;
        memcpy(&addr, e, 8);
        memcpy(&len, e + 8, 8);
        memcpy(&type, e + 16, 4);
        cr_assert_eq(addr, m.mem.e820[i].addr);
        cr_assert_eq(len, m.mem.e820[i].size);
        cr_assert_eq(type, m.mem.e820[i].type);
    }
    /* a later change of the map shows on the next selection */
    mem_e820_mark(&m.mem, 0x200000, 0x1000, E820_RESERVED);
    cr_assert(find_file("etc/e820", &key, &size));
    cr_assert_eq(size, (u32)m.mem.ne820 * 20);
}

Test(fwcfg, files_sorted_by_name)
{
    fwcfg_add_file(fw, "opt/zzz", "last", 4);
    fwcfg_add_file(fw, "opt/aaa", "first!", 6);
    u8 n[4], e[64];
    select_key(0x19);
    read_data(n, 4);
    cr_assert_eq(be32(n), 3u);
    const char *want[] = { "etc/e820", "opt/aaa", "opt/zzz" };
    for (int i = 0; i < 3; i++) {
        read_data(e, sizeof(e));
        cr_assert_str_eq((const char *)e + 8, want[i]);
        cr_assert_eq(e[4] << 8 | e[5], 0x20 + i);
        cr_assert_eq(e[6] | e[7], 0, "reserved");
    }
    char buf[8] = { 0 };
    u16 key;
    u32 size;
    cr_assert(find_file("opt/aaa", &key, &size));
    cr_assert_eq(size, 6u);
    select_key(key);
    read_data(buf, 6);
    cr_assert_str_eq(buf, "first!");
}

/* Writes a FWCfgDmaAccess at desc and starts it the way Linux does (big-endian halves). */
static u32 dma(u64 desc, u32 control, u32 length, u64 addr)
{
    u8 d[16];
    for (int i = 0; i < 4; i++) {
        d[i] = (u8)(control >> (24 - 8 * i));
        d[4 + i] = (u8)(length >> (24 - 8 * i));
    }
    for (int i = 0; i < 8; i++)
        d[8 + i] = (u8)(addr >> (56 - 8 * i));
    cr_assert_eq(mem_write(&m.mem, desc, d, sizeof(d)), 0);
    bus_write(&m.io, 0x514, 4, __builtin_bswap32((u32)(desc >> 32)));
    bus_write(&m.io, 0x518, 4, __builtin_bswap32((u32)desc));
    u8 c[4];
    cr_assert_eq(mem_read(&m.mem, desc, c, 4), 0);
    return be32(c);
}

enum { DMA_ERROR = 1, DMA_READ = 2, DMA_SKIP = 4, DMA_SELECT = 8, DMA_WRITE = 16 };

Test(fwcfg, dma_signature)
{
    cr_assert_eq(bus_read(&m.io, 0x514, 4), 0x554d4551u, "bytes 'QEMU'");
    cr_assert_eq(bus_read(&m.io, 0x518, 4), 0x47464320u, "bytes ' CFG'");
    cr_assert_eq(bus_read(&m.io, 0x515, 1), (u64)'E');
}

Test(fwcfg, dma_read_skip_and_errors)
{
    u8 buf[16];
    memset(buf, 0xaa, sizeof(buf));
    mem_write(&m.mem, 0x20000, buf, sizeof(buf));

    /* select the signature and read 8 bytes: 4 of data, then zeros */
    cr_assert_eq(dma(0x10000, (0u << 16) | DMA_SELECT | DMA_READ, 8, 0x20000), 0u);
    mem_read(&m.mem, 0x20000, buf, sizeof(buf));
    cr_assert_eq(memcmp(buf, "QEMU\0\0\0\0", 8), 0);
    cr_assert_eq(buf[8], 0xaa, "nothing beyond the length");

    /* skip 2 bytes of RAM size, read the next 2 */
    u64 ram = 64 * MiB;
    cr_assert_eq(dma(0x10000, (0x03u << 16) | DMA_SELECT | DMA_SKIP, 2, 0), 0u);
    cr_assert_eq(dma(0x10000, DMA_READ, 2, 0x20000), 0u);
    mem_read(&m.mem, 0x20000, buf, 2);
    cr_assert_eq(buf[0] | buf[1] << 8, (ram >> 16) & 0xffff);

    /* a target that is not RAM (the VGA hole) fails */
    cr_assert_eq(dma(0x10000, (0x00u << 16) | DMA_SELECT | DMA_READ, 4, 0xa0000), (u32)DMA_ERROR);
    /* nothing is writable */
    cr_assert_eq(dma(0x10000, (0x00u << 16) | DMA_SELECT | DMA_WRITE, 4, 0x20000), (u32)DMA_ERROR);
    /* a descriptor outside RAM is ignored without harm */
    bus_write(&m.io, 0x514, 4, __builtin_bswap32(0x10));
    bus_write(&m.io, 0x518, 4, 0);
    /* no operation bits: only the selection happens */
    cr_assert_eq(dma(0x10000, (0x05u << 16) | DMA_SELECT, 100, 0x20000), 0u);
    cr_assert_eq(bus_read(&m.io, 0x511, 1), 3u);
}

Test(fwcfg, dma_reads_directory_and_e820)
{
    u16 key;
    u32 size;
    cr_assert(find_file("etc/e820", &key, &size));
    cr_assert_eq(dma(0x10000, ((u32)key << 16) | DMA_SELECT | DMA_READ, size, 0x30000), 0u);
    u8 e[20];
    mem_read(&m.mem, 0x30000, e, sizeof(e));
    u64 addr, len;
    memcpy(&addr, e, 8);
    memcpy(&len, e + 8, 8);
    cr_assert_eq(addr, m.mem.e820[0].addr);
    cr_assert_eq(len, m.mem.e820[0].size);
}

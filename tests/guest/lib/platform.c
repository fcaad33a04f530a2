/* fw_cfg (QEMU's firmware configuration interface at 0x510/0x511) and ACPI lookup. */
#include "rt.h"

#define FW_CFG_PORT_SEL 0x510
#define FW_CFG_PORT_DATA 0x511

void fwcfg_select(u16 key) { outw(FW_CFG_PORT_SEL, key); }

void fwcfg_read(void *buf, u32 len)
{
    u8 *p = buf;
    while (len--)
        *p++ = inb(FW_CFG_PORT_DATA);
}

bool fwcfg_present(void)
{
    char sig[4];
    fwcfg_select(FW_CFG_SIGNATURE);
    fwcfg_read(sig, 4);
    return memcmp(sig, "QEMU", 4) == 0;
}

static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }

bool fwcfg_find_file(const char *name, u16 *select, u32 *size)
{
    u8 count_be[4];
    fwcfg_select(FW_CFG_FILE_DIR);
    fwcfg_read(count_be, 4);
    u32 count = be32(count_be);
    for (u32 i = 0; i < count && i < 4096; i++) {
        u8 entry[64]; /* size (be32), select (be16), reserved (16), name[56] */
        fwcfg_read(entry, sizeof(entry));
        entry[63] = 0;
        if (strcmp((const char *)entry + 8, name) == 0) {
            *size = be32(entry);
            *select = (u16)(entry[4] << 8 | entry[5]);
            return true;
        }
    }
    return false;
}

u64 fwcfg_ram_size(void)
{
    if (!fwcfg_present())
        return 0;
    u64 size = 0;
    fwcfg_select(FW_CFG_RAM_SIZE);
    fwcfg_read(&size, 8);
    if (size)
        return size;
    /* no RAM_SIZE key: add up the RAM (type 1) entries of etc/e820 */
    u16 sel;
    u32 len;
    if (!fwcfg_find_file("etc/e820", &sel, &len))
        return 0;
    fwcfg_select(sel);
    for (u32 off = 0; off + 20 <= len; off += 20) {
        struct { u64 addr, len; u32 type; } __attribute__((packed)) e;
        fwcfg_read(&e, 20);
        if (e.type == 1)
            size += e.len;
    }
    return size;
}

u8 acpi_checksum(const void *p, u32 len)
{
    u8 sum = 0;
    for (u32 i = 0; i < len; i++)
        sum += ((const u8 *)p)[i];
    return sum;
}

const void *acpi_find_rsdp(void)
{
    for (ulong a = 0xe0000; a < 0x100000; a += 16) {
        const u8 *p = (const u8 *)a;
        if (memcmp(p, "RSD PTR ", 8) == 0 && acpi_checksum(p, 20) == 0)
            return p;
    }
    return NULL;
}

static const struct acpi_header *table_at(u64 addr)
{
    if (addr == 0 || addr >= (4ull << 30) - sizeof(struct acpi_header))
        return NULL; /* only the identity-mapped 4 GiB are reachable */
    const struct acpi_header *h = (const struct acpi_header *)(ulong)addr;
    if (h->length < sizeof(*h) || h->length > (1u << 20) || acpi_checksum(h, h->length))
        return NULL;
    return h;
}

const struct acpi_header *acpi_find_table(const char *sig)
{
    const u8 *rsdp = acpi_find_rsdp();
    if (!rsdp)
        return NULL;
    u64 xsdt_addr = 0;
    if (rsdp[15] >= 2)
        memcpy(&xsdt_addr, rsdp + 24, 8);
    const struct acpi_header *root = table_at(xsdt_addr);
    int esize = 8;
    if (!root) {
        u32 rsdt;
        memcpy(&rsdt, rsdp + 16, 4);
        root = table_at(rsdt);
        esize = 4;
    }
    if (!root)
        return NULL;
    const u8 *entries = (const u8 *)(root + 1);
    u32 n = (root->length - sizeof(*root)) / esize;
    for (u32 i = 0; i < n; i++) {
        u64 a = 0;
        memcpy(&a, entries + i * esize, esize);
        const struct acpi_header *t = table_at(a);
        if (t && memcmp(t->signature, sig, 4) == 0)
            return t;
    }
    return NULL;
}

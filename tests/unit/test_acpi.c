/* Unit tests of the ACPI tables: built into guest RAM of a hand-made machine, then found
 * the way an OS finds them (RSDP scan of the BIOS area) and checked: signatures, lengths,
 * checksums, pointers, FADT fields, the MADT's entries, HPET and MCFG, the DSDT's
 * devices and their resource templates, and the e820 reservations. A bare machine (no
 * devices) checks that only what exists is advertised; the full platform is the set of
 * devices machine_create() makes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dev/dev.h"
#include "machine/machine.h"

static struct machine m;

static void setup(void)
{
    memset(&m, 0, sizeof(m));
    cr_assert_eq(mem_init(&m.mem, 128 * MiB), 0);
    bus_init(&m.io, "io");
    bus_init(&m.mmio, "mmio");
    clock_init(&m.clock, true);
    m.ncpus = m.cfg.ncpus = 4;
}

/* The devices machine_create() makes, in its order. */
static void create_platform(void)
{
    m.pic = pic_create(&m);
    m.ioapic = ioapic_create(&m);
    m.pit = pit_create(&m);
    m.rtc = rtc_create(&m, 0);
    m.hpet = hpet_create(&m, m.pit, m.rtc);
    m.acpi_pm = acpi_pm_create(&m);
    m.pci = pci_create(&m);
    m.kbc = kbc_create(&m);
    m.uart = uart_create(&m, 0x3f8, 4, -1, -1);
    debugexit_create(&m, 0xf4, 4);
    m.fwcfg = fwcfg_create(&m);
}

static void teardown(void)
{
    if (m.fwcfg)
        fwcfg_destroy(m.fwcfg);
    if (m.uart)
        uart_destroy(m.uart);
    if (m.kbc)
        kbc_destroy(m.kbc);
    if (m.pci)
        pci_destroy(m.pci);
    if (m.acpi_pm)
        acpi_pm_destroy(m.acpi_pm);
    if (m.hpet)
        hpet_destroy(m.hpet);
    if (m.rtc)
        rtc_destroy(m.rtc);
    if (m.pit)
        pit_destroy(m.pit);
    if (m.ioapic)
        ioapic_destroy(m.ioapic);
    if (m.pic)
        pic_destroy(m.pic);
    mem_destroy(&m.mem);
}

TestSuite(acpi, .init = setup, .fini = teardown);

static u64 le(const u8 *p, int n)
{
    u64 v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static u8 sum(const u8 *p, size_t n)
{
    u8 s = 0;
    while (n--)
        s = (u8)(s + *p++);
    return s;
}

/* A table at gpa: checks signature, length bounds and checksum; returns its bytes. */
static const u8 *table(u64 gpa, const char *sig)
{
    const u8 *h = mem_ptr(&m.mem, gpa, 36);
    cr_assert_not_null(h, "%s at %#llx is not in RAM", sig, (unsigned long long)gpa);
    cr_assert_eq(memcmp(h, sig, 4), 0, "signature %.4s, expected %s", (const char *)h, sig);
    u32 len = (u32)le(h + 4, 4);
    cr_assert_geq(len, 36u);
    const u8 *t = mem_ptr(&m.mem, gpa, len);
    cr_assert_not_null(t);
    cr_assert_eq(sum(t, len), 0, "%s checksum", sig);
    cr_assert_eq(memcmp(t + 10, "NESTOR", 6), 0, "OEM ID");
    return t;
}

/* The RSDP as an OS finds it: "RSD PTR " on a 16-byte boundary in 0xE0000-0xFFFFF. */
static u64 scan_rsdp(void)
{
    for (u64 a = 0xe0000; a < 0x100000; a += 16) {
        const u8 *p = mem_ptr(&m.mem, a, 8);
        if (p && !memcmp(p, "RSD PTR ", 8))
            return a;
    }
    return 0;
}

struct tables {
    u32 n;                   /* entries of the XSDT */
    const u8 *fadt, *madt, *hpet, *mcfg, *dsdt, *facs;
};

/* Builds the tables and follows the pointers from the RSDP. */
static struct tables build(void)
{
    u64 rsdp_gpa = acpi_build(&m);
    cr_assert_eq(rsdp_gpa & 15, 0u);
    cr_assert_eq(scan_rsdp(), rsdp_gpa);
    const u8 *rsdp = mem_ptr(&m.mem, rsdp_gpa, 36);
    cr_assert_eq(sum(rsdp, 20), 0, "ACPI 1.0 checksum");
    cr_assert_eq(sum(rsdp, 36), 0, "extended checksum");
    cr_assert_eq(rsdp[15], 2, "revision");
    cr_assert_eq(le(rsdp + 20, 4), 36u);

    struct tables t = { 0 };
    const u8 *rsdt = table(le(rsdp + 16, 4), "RSDT");
    const u8 *xsdt = table(le(rsdp + 24, 8), "XSDT");
    t.n = (u32)(le(xsdt + 4, 4) - 36) / 8;
    cr_assert_eq((le(rsdt + 4, 4) - 36) / 4, t.n, "RSDT and XSDT list the same tables");
    for (u32 i = 0; i < t.n; i++) {
        u64 a = le(xsdt + 36 + 8 * i, 8);
        cr_assert_eq(le(rsdt + 36 + 4 * i, 4), a);
        const u8 *h = mem_ptr(&m.mem, a, 4);
        static const char *sigs[] = { "FACP", "APIC", "HPET", "MCFG" };
        const u8 **slot[] = { &t.fadt, &t.madt, &t.hpet, &t.mcfg };
        size_t k = 0;
        while (k < 4 && memcmp(h, sigs[k], 4))
            k++;
        cr_assert_lt(k, 4u, "unexpected table %.4s", (const char *)h);
        cr_assert_null(*slot[k], "%s listed twice", sigs[k]);
        *slot[k] = table(a, sigs[k]);
    }
    cr_assert_not_null(t.fadt);
    cr_assert_not_null(t.madt);
    /* FACS: FIRMWARE_CTRL only (at most one of it and X_FIRMWARE_CTRL is set); DSDT:
     * the 32- and 64-bit pointers agree */
    cr_assert_neq(le(t.fadt + 36, 4), 0u);
    cr_assert_eq(le(t.fadt + 132, 8), 0u, "X_FIRMWARE_CTRL");
    cr_assert_eq(le(t.fadt + 40, 4), le(t.fadt + 140, 8));
    t.facs = mem_ptr(&m.mem, le(t.fadt + 36, 4), 64);
    cr_assert_not_null(t.facs);
    t.dsdt = table(le(t.fadt + 40, 4), "DSDT");
    return t;
}

/* ---- e820 ---- */

static const struct e820_entry *e820_at(u64 addr)
{
    for (int i = 0; i < m.mem.ne820; i++)
        if (addr - m.mem.e820[i].addr < m.mem.e820[i].size)
            return &m.mem.e820[i];
    return NULL;
}

/* Is [addr, addr+size) covered by entries of one type? */
static bool e820_covers(u64 addr, u64 size, u32 type)
{
    for (u64 a = addr; a < addr + size;) {
        const struct e820_entry *e = e820_at(a);
        if (!e || e->type != type)
            return false;
        a = e->addr + e->size;
    }
    return true;
}

static void assert_e820_sorted_and_disjoint(void)
{
    cr_assert_gt(m.mem.ne820, 0);
    for (int i = 0; i < m.mem.ne820; i++) {
        cr_assert_gt(m.mem.e820[i].size, 0u, "entry %d is empty", i);
        if (i)
            cr_assert_geq(m.mem.e820[i].addr, m.mem.e820[i - 1].addr + m.mem.e820[i - 1].size,
                          "entry %d overlaps or precedes entry %d", i, i - 1);
    }
}

/* ---- AML and resource templates ---- */

static u32 eisa(const char *id)
{
    u32 v = (u32)(id[0] - '@') << 26 | (u32)(id[1] - '@') << 21 | (u32)(id[2] - '@') << 16;
    for (int i = 3; i < 7; i++)
        v |= (u32)(id[i] >= 'A' ? id[i] - 'A' + 10 : id[i] - '0') << (4 * (6 - i));
    return __builtin_bswap32(v);
}

static const u8 *find_bytes(const u8 *p, size_t len, const void *pat, size_t n)
{
    for (size_t i = 0; i + n <= len; i++)
        if (!memcmp(p + i, pat, n))
            return p + i;
    return NULL;
}

/* Offset in the DSDT of Name (_HID, id): an EISA ID ("PNP0A08") or a string ID. */
static const u8 *find_hid(const u8 *dsdt, const char *id)
{
    u8 pat[16] = { 0x08, '_', 'H', 'I', 'D' };
    size_t n = 5;
    if (strlen(id) == 7 && !memcmp(id, "PNP", 3)) {
        u32 v = eisa(id);
        pat[n++] = 0x0c;
        memcpy(pat + n, &v, 4), n += 4;
    } else {
        pat[n++] = 0x0d;
        memcpy(pat + n, id, strlen(id) + 1), n += strlen(id) + 1;
    }
    u32 len = (u32)le(dsdt + 4, 4);
    return find_bytes(dsdt + 36, len - 36, pat, n);
}

static size_t pkg_length(const u8 *p, size_t *bytes)
{
    int extra = p[0] >> 6;
    size_t v = extra ? p[0] & 0xf : p[0] & 0x3f;
    for (int i = 1; i <= extra; i++)
        v |= (size_t)p[i] << (4 + 8 * (i - 1));
    *bytes = (size_t)extra + 1;
    return v;
}

struct desc {
    u8 tag;       /* small: the item name byte with its length; large: the tag byte */
    const u8 *d;  /* the descriptor's first byte */
    size_t len;   /* whole descriptor */
};

struct crs {
    struct desc desc[16];
    int n;
};

/* The _CRS buffer of the device whose _HID is id: walked descriptor by descriptor; it
 * must fill the buffer exactly and end with an end tag whose checksum zeroes the sum. */
static struct crs device_crs(const u8 *dsdt, const char *id)
{
    const u8 *hid = find_hid(dsdt, id);
    cr_assert_not_null(hid, "no device with _HID %s", id);
    u32 dlen = (u32)le(dsdt + 4, 4);
    const u8 *end = dsdt + dlen;
    const u8 *crs = find_bytes(hid, (size_t)(end - hid), "\x08_CRS\x11", 6);
    cr_assert_not_null(crs, "%s has no _CRS buffer", id);
    const u8 *next_hid = find_bytes(hid + 1, (size_t)(end - hid - 1), "\x08_HID", 5);
    cr_assert(!next_hid || crs < next_hid, "%s: the _CRS found belongs to the next device", id);
    size_t plen_bytes, plen = pkg_length(crs + 6, &plen_bytes);
    const u8 *size_op = crs + 6 + plen_bytes;
    size_t size = size_op[0] == 0x0a ? size_op[1] : size_op[0] == 0x0b ? (size_t)le(size_op + 1, 2) : 0;
    cr_assert_gt(size, 0u, "%s: buffer size", id);
    const u8 *r = size_op + (size_op[0] == 0x0a ? 2 : 3);
    cr_assert_eq((size_t)(r - (crs + 6)) + size, plen, "%s: PkgLength covers the buffer", id);
    cr_assert_leq(r + size, end);
    cr_assert_eq(sum(r, size), 0, "%s: resource template checksum", id);

    struct crs c = { .n = 0 };
    size_t off = 0;
    for (;;) {
        cr_assert_lt(off, size, "%s: no end tag", id);
        const u8 *d = r + off;
        size_t dl = d[0] & 0x80 ? 3 + (size_t)le(d + 1, 2) : 1 + (size_t)(d[0] & 7);
        cr_assert_leq(off + dl, size, "%s: descriptor overruns the buffer", id);
        if (d[0] == 0x79) {
            cr_assert_eq(off + dl, size, "%s: bytes after the end tag", id);
            break;
        }
        cr_assert_lt(c.n, 16);
        c.desc[c.n++] = (struct desc){ d[0], d, dl };
        off += dl;
    }
    return c;
}

static bool has_io(const struct crs *c, u16 port, u8 len)
{
    for (int i = 0; i < c->n; i++) {
        const u8 *d = c->desc[i].d;
        if (d[0] == 0x47 && d[1] == 1 && le(d + 2, 2) == port && le(d + 4, 2) == port &&
            d[6] == 1 && d[7] == len)
            return true;
    }
    return false;
}

static bool has_irq(const struct crs *c, int irq)
{
    for (int i = 0; i < c->n; i++)
        if (c->desc[i].tag == 0x22 && le(c->desc[i].d + 1, 2) == 1u << irq)
            return true;
    return false;
}

static bool has_mem32_fixed(const struct crs *c, u32 base, u32 len)
{
    for (int i = 0; i < c->n; i++) {
        const u8 *d = c->desc[i].d;
        if (d[0] == 0x86 && le(d + 1, 2) == 9 && le(d + 4, 4) == base && le(d + 8, 4) == len)
            return true;
    }
    return false;
}

/* A producer window of an address space descriptor (word/dword/qword): type, min, max. */
struct window { u8 type; u64 min, max; };

static int windows(const struct crs *c, struct window *w, int max)
{
    int n = 0;
    for (int i = 0; i < c->n && n < max; i++) {
        const u8 *d = c->desc[i].d;
        int width = d[0] == 0x88 ? 2 : d[0] == 0x87 ? 4 : d[0] == 0x8a ? 8 : 0;
        if (!width)
            continue;
        cr_assert_eq(le(d + 1, 2), 3u + 5u * (unsigned)width, "address descriptor length");
        cr_assert_eq(d[4], 0x0c, "producer, positive decode, fixed min and max");
        u64 gra = le(d + 6, width), min = le(d + 6 + width, width), mx = le(d + 6 + 2 * width, width);
        u64 tra = le(d + 6 + 3 * width, width), len = le(d + 6 + 4 * width, width);
        cr_assert_eq(gra, 0u);
        cr_assert_eq(tra, 0u);
        cr_assert_eq(len, mx - min + 1, "length of [%#llx, %#llx]", (unsigned long long)min,
                     (unsigned long long)mx);
        w[n++] = (struct window){ d[3], min, mx };
    }
    return n;
}

/* ---- the bare machine: only what exists is advertised ---- */

Test(acpi, rsdp_xsdt_rsdt)
{
    struct tables t = build();
    cr_assert_eq(t.n, 2u, "no HPET, no PCI: FADT and MADT only");
    cr_assert_null(t.hpet);
    cr_assert_null(t.mcfg);
    /* the area is reserved in e820 */
    cr_assert(e820_covers(scan_rsdp(), 36, E820_RESERVED));
    cr_assert(!e820_covers(PCI_ECAM_BASE, 4096, E820_RESERVED), "no ECAM without PCI");
    assert_e820_sorted_and_disjoint();
}

Test(acpi, fadt)
{
    struct tables t = build();
    const u8 *fadt = t.fadt;
    cr_assert_eq(le(fadt + 4, 4), 276u);
    cr_assert_eq(fadt[8], 6, "revision 6");
    u32 flags = (u32)le(fadt + 112, 4);
    cr_assert_eq(flags & (1u << 20), 0u, "not hardware-reduced");
    cr_assert(flags & (1u << 4), "no PM1 block: no fixed power button");
    cr_assert_eq(flags & (1u << 8), 0u, "no PM timer: no TMR_VAL_EXT");
    cr_assert_eq(flags & (1u << 10), 0u, "no reset device: no RESET_REG_SUP");
    cr_assert_eq(le(fadt + 46, 2), 9u, "SCI");
    cr_assert_eq(le(fadt + 76, 4), 0u, "no PM timer device: no PM_TMR_BLK");
    cr_assert_eq(fadt[91], 0);
    cr_assert_eq(fadt[208], 0, "no X_PM_TMR_BLK");
    cr_assert_eq(le(fadt + 120, 8), 0u, "no RESET_REG");
    cr_assert_eq(le(fadt + 109, 2), (1u << 2) | (1u << 5), "no VGA, no CMOS RTC, nothing legacy");
    cr_assert_eq(fadt[108], 0, "no century byte without an RTC");
    cr_assert_eq(memcmp(t.facs, "FACS", 4), 0);
    cr_assert_eq(le(t.facs + 4, 4), 64u);
    cr_assert_eq(le(fadt + 36, 4) & 63, 0u, "FACS is 64-byte aligned");
    /* \_S5 is a package of four zeros (ACPI_S5_SLP_TYP) */
    u32 dlen = (u32)le(t.dsdt + 4, 4);
    const u8 *s5 = find_bytes(t.dsdt + 36, dlen - 36, "\x08\\_S5_\x12", 7);
    cr_assert_not_null(s5, "Name(\\_S5, Package(){...})");
    cr_assert_eq(s5[8], 4);
    cr_assert_eq(memcmp(s5 + 9, "\0\0\0\0", 4), 0);
    cr_assert_eq(ACPI_S5_SLP_TYP, 0);
    cr_assert_null(find_hid(t.dsdt, "PNP0A08"), "no PCI host bridge");
    cr_assert_null(find_hid(t.dsdt, "PNP0103"), "no HPET device");
    cr_assert_null(find_hid(t.dsdt, "PNP0C02"), "no motherboard resources");
}

Test(acpi, fadt_follows_the_bus)
{
    /* with devices on the PM timer and reset ports, both are advertised */
    bus_register(&m.io, 0x608, 4, NULL, NULL, NULL, "pmtimer");
    bus_register(&m.io, 0xcf9, 1, NULL, NULL, NULL, "reset");
    const u8 *fadt = build().fadt;
    cr_assert_eq(le(fadt + 76, 4), 0x608u);
    cr_assert_eq(fadt[91], 4);
    cr_assert_eq(le(fadt + 208 + 4, 8), 0x608u);
    cr_assert_eq(fadt[208], 1);
    cr_assert_eq(fadt[209], 32);
    cr_assert(le(fadt + 112, 4) & (1u << 8), "TMR_VAL_EXT");
    cr_assert(le(fadt + 112, 4) & (1u << 10), "RESET_REG_SUP");
    /* reset register: I/O port 0xcf9, 8 bits, byte access, value 6 */
    cr_assert_eq(fadt[116], 1);
    cr_assert_eq(fadt[117], 8);
    cr_assert_eq(fadt[118], 0);
    cr_assert_eq(fadt[119], 1);
    cr_assert_eq(le(fadt + 120, 8), 0xcf9u);
    cr_assert_eq(fadt[128], 6);
}

Test(acpi, madt)
{
    m.ioapic = ioapic_create(&m);
    const u8 *madt = build().madt;
    cr_assert_eq(le(madt + 36, 4), 0xfee00000u);
    cr_assert_eq(le(madt + 40, 4), 0u, "no 8259s: no PCAT_COMPAT");
    u32 len = (u32)le(madt + 4, 4);
    int lapics = 0, ioapics = 0, isos = 0, nmis = 0;
    for (u32 off = 44; off < len;) {
        const u8 *e = madt + off;
        cr_assert_geq(e[1], 2);
        cr_assert_leq(off + e[1], len);
        switch (e[0]) {
        case 0:
            cr_assert_eq(e[1], 8);
            cr_assert_eq(e[2], lapics, "processor UID");
            cr_assert_eq(e[3], lapics, "APIC ID");
            cr_assert_eq(le(e + 4, 4), 1u, "enabled");
            lapics++;
            break;
        case 1:
            cr_assert_eq(e[1], 12);
            cr_assert_eq(e[2], IOAPIC_ID);
            cr_assert_eq(le(e + 4, 4), IOAPIC_MMIO_BASE);
            cr_assert_eq(le(e + 8, 4), 0u, "GSI base");
            ioapics++;
            break;
        case 2:
            cr_assert_eq(e[1], 10);
            cr_assert_eq(e[2], 0, "ISA");
            if (e[3] == 0) {
                cr_assert_eq(le(e + 4, 4), 2u, "IRQ0 -> GSI2");
                cr_assert_eq(le(e + 8, 2), 0u, "conforming: edge, active high");
            } else {
                cr_assert_eq(e[3], 9);
                cr_assert_eq(le(e + 4, 4), 9u);
                cr_assert_eq(le(e + 8, 2), 0xdu, "active high, level");
            }
            isos++;
            break;
        case 4:
            cr_assert_eq(e[1], 6);
            cr_assert_eq(e[2], 0xff, "all processors");
            cr_assert_eq(le(e + 3, 2), 0u);
            cr_assert_eq(e[5], 1, "LINT1");
            nmis++;
            break;
        default:
            cr_assert_fail("unexpected MADT entry type %d", e[0]);
        }
        off += e[1];
    }
    cr_assert_eq(lapics, 4);
    cr_assert_eq(ioapics, 1);
    cr_assert_eq(isos, 2);
    cr_assert_eq(nmis, 1);
}

Test(acpi, madt_without_ioapic_has_no_ioapic_entries)
{
    const u8 *madt = build().madt;
    cr_assert_eq(le(madt + 4, 4), 36u + 8 + 4 * 8 + 6, "LAPICs and the LINT1 NMI only");
}

Test(acpi, pm1_blocks_advertised_with_the_device)
{
    const u8 *fadt = build().fadt;
    cr_assert_eq(le(fadt + 56, 4), 0u, "no PM device: no PM1a event block");
    m.acpi_pm = acpi_pm_create(&m);
    fadt = build().fadt;
    cr_assert_eq(le(fadt + 56, 4), 0x600u);
    cr_assert_eq(fadt[88], 4);
    cr_assert_eq(le(fadt + 64, 4), 0x604u);
    cr_assert_eq(fadt[89], 2);
    cr_assert_eq(le(fadt + 148 + 4, 8), 0x600u, "X_PM1a_EVT_BLK");
    cr_assert_eq(le(fadt + 172 + 4, 8), 0x604u, "X_PM1a_CNT_BLK");
    cr_assert_eq(le(fadt + 112, 4) & (1u << 6), 0u, "RTC_STS in PM1: FIX_RTC clear");
    /* \_S3: Package() { ACPI_S3_SLP_TYP, ACPI_S3_SLP_TYP, 0, 0 } (OneOp: 1) */
    struct tables t = build();
    u32 dlen = (u32)le(t.dsdt + 4, 4);
    const u8 *s3 = find_bytes(t.dsdt + 36, dlen - 36, "\x08\\_S3_\x12", 7);
    cr_assert_not_null(s3, "Name(\\_S3, Package(){...}) with the PM control register");
    cr_assert_eq(ACPI_S3_SLP_TYP, 1);
    cr_assert_eq(s3[8], 4);
    cr_assert_eq(memcmp(s3 + 9, "\1\1\0\0", 4), 0);
}

Test(acpi, pm1_registers_and_soft_off)
{
    struct acpi_pm *pm = acpi_pm_create(&m);
    cr_assert_eq(bus_read(&m.io, 0x604, 2) & 1, 1u, "SCI_EN: always in ACPI mode");
    bus_write(&m.io, 0x602, 2, 0x0121); /* PM1_EN */
    cr_assert_eq(bus_read(&m.io, 0x602, 2), 0x0121u);
    cr_assert_eq(bus_read(&m.io, 0x600, 4), 0x01210000u, "status 0, enable above it");
    bus_write(&m.io, 0x600, 2, 0xffff); /* write-1-to-clear leaves the enables alone */
    cr_assert_eq(bus_read(&m.io, 0x602, 2), 0x0121u);
    /* SLP_TYP without SLP_EN only sets the type */
    bus_write(&m.io, 0x604, 2, (ACPI_S5_SLP_TYP << 10) | 1);
    cr_assert(!m.stop);
    /* a sleep type that is neither S3 nor S5 does nothing */
    bus_write(&m.io, 0x604, 2, (2 << 10) | (1 << 13));
    cr_assert(!m.stop);
    cr_assert_eq(bus_read(&m.io, 0x604, 2) & (1 << 13), 0u, "SLP_EN is write-only");
    bus_write(&m.io, 0x604, 2, (ACPI_S5_SLP_TYP << 10) | (1 << 13));
    cr_assert(m.stop, "S5: power off");
    cr_assert_eq(m.exit_status, 0);
    acpi_pm_destroy(pm);
}

/* ---- the full platform ---- */

Test(acpi, platform_lists_hpet_and_mcfg)
{
    create_platform();
    struct tables t = build();
    cr_assert_eq(t.n, 4u, "FADT, MADT, HPET, MCFG");
    cr_assert_not_null(t.hpet);
    cr_assert_not_null(t.mcfg);
    /* HPET: the HPET model's own table */
    u8 expect[64];
    size_t len = sizeof(expect);
    hpet_acpi_table(expect, &len);
    cr_assert_eq(le(t.hpet + 4, 4), len);
    cr_assert_eq(memcmp(t.hpet, expect, len), 0);
    cr_assert_eq(t.hpet[40], 0, "system memory");
    cr_assert_eq(le(t.hpet + 44, 8), HPET_MMIO_BASE);
    /* MCFG: one ECAM area, segment 0, buses 0-255 */
    cr_assert_eq(le(t.mcfg + 4, 4), 60u);
    cr_assert_eq(t.mcfg[8], 1, "revision");
    cr_assert_eq(le(t.mcfg + 36, 8), 0u, "reserved");
    cr_assert_eq(le(t.mcfg + 44, 8), PCI_ECAM_BASE);
    cr_assert_eq(le(t.mcfg + 52, 2), 0u, "segment");
    cr_assert_eq(t.mcfg[54], 0, "start bus");
    cr_assert_eq(t.mcfg[55], 255, "end bus");
}

Test(acpi, platform_fadt)
{
    create_platform();
    const u8 *fadt = build().fadt;
    cr_assert_eq(le(fadt + 46, 2), ACPI_SCI_IRQ);
    cr_assert_eq(le(fadt + 48, 4), 0u, "SMI_CMD 0: always in ACPI mode");
    cr_assert_eq(fadt[52], 0);
    cr_assert_eq(fadt[53], 0);
    /* every block: the legacy port and length, and an X_ generic address saying the same */
    static const struct { u16 port; u8 len; int field, len_field, x_field, access; } blocks[] = {
        { 0x600, 4, 56, 88, 148, 2 },  /* PM1a_EVT_BLK */
        { 0x604, 2, 64, 89, 172, 2 },  /* PM1a_CNT_BLK */
        { 0x608, 4, 76, 91, 208, 3 },  /* PM_TMR_BLK */
        { 0x620, 4, 80, 92, 220, 1 },  /* GPE0_BLK */
    };
    for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) {
        cr_assert_eq(le(fadt + blocks[i].field, 4), blocks[i].port);
        cr_assert_eq(fadt[blocks[i].len_field], blocks[i].len);
        const u8 *gas = fadt + blocks[i].x_field;
        cr_assert_eq(gas[0], 1, "system I/O");
        cr_assert_eq(gas[1], blocks[i].len * 8, "bit width = 8 * length");
        cr_assert_eq(gas[2], 0);
        cr_assert_eq(gas[3], blocks[i].access);
        cr_assert_eq(le(gas + 4, 8), blocks[i].port);
    }
    /* no second blocks, no PM2 */
    cr_assert_eq(le(fadt + 60, 4) | le(fadt + 68, 4) | le(fadt + 72, 4) | le(fadt + 84, 4), 0u);
    u32 flags = (u32)le(fadt + 112, 4);
    cr_assert(flags & (1u << 8), "TMR_VAL_EXT");
    cr_assert(flags & (1u << 10), "RESET_REG_SUP");
    cr_assert_eq(flags & (1u << 4), 0u, "fixed-feature power button");
    cr_assert_eq(flags & (1u << 19), 0u, "4 CPUs: flat logical mode is fine");
    cr_assert_eq(le(fadt + 120, 8), ACPI_RESET_PORT);
    cr_assert_eq(fadt[128], ACPI_RESET_VALUE);
    cr_assert_eq(fadt[108], 0x32, "CENTURY");
    cr_assert_eq(le(fadt + 109, 2), 0x7u, "legacy devices, 8042, no VGA");
}

Test(acpi, platform_madt_is_pc_compatible)
{
    create_platform();
    const u8 *madt = build().madt;
    cr_assert_eq(le(madt + 40, 4), 1u, "PCAT_COMPAT");
    const u8 *io = find_bytes(madt + 44, le(madt + 4, 4) - 44, "\x01\x0c", 2);
    cr_assert_not_null(io);
    cr_assert_eq(io[2], IOAPIC_ID);
}

Test(acpi, many_cpus_use_physical_destinations)
{
    m.ncpus = m.cfg.ncpus = 9;
    cr_assert(le(build().fadt + 112, 4) & (1u << 19));
}

Test(acpi, platform_e820_reservations)
{
    create_platform();
    build();
    assert_e820_sorted_and_disjoint();
    cr_assert(e820_covers(PCI_ECAM_BASE, PCI_ECAM_SIZE, E820_RESERVED), "ECAM");
    cr_assert(e820_covers(IOAPIC_MMIO_BASE, 4096, E820_RESERVED), "I/O APIC page");
    cr_assert(e820_covers(HPET_MMIO_BASE, 4096, E820_RESERVED), "HPET page");
    cr_assert(e820_covers(0xfee00000, 4096, E820_RESERVED), "LAPIC page");
    cr_assert(e820_covers(0xe0000, 0x20000, E820_RESERVED), "BIOS area with the tables");
    /* RAM is untouched and the holes between stay holes */
    cr_assert(e820_covers(0, 0x9fc00, E820_RAM));
    cr_assert(e820_covers(MiB, 127 * MiB, E820_RAM));
    cr_assert_null(e820_at(128 * MiB));
    cr_assert_null(e820_at(PCI_ECAM_BASE - 1));
    cr_assert_null(e820_at(PCI_ECAM_BASE + PCI_ECAM_SIZE));
    cr_assert_null(e820_at(0xfec01000));
    /* building again gives the same map */
    struct e820_entry before[MEM_MAX_E820];
    int n = m.mem.ne820;
    memcpy(before, m.mem.e820, sizeof(before));
    build();
    cr_assert_eq(m.mem.ne820, n);
    for (int k = 0; k < n; k++) /* field by field: the struct has padding */
        cr_assert(before[k].addr == m.mem.e820[k].addr && before[k].size == m.mem.e820[k].size &&
                      before[k].type == m.mem.e820[k].type,
                  "entry %d", k);
}

Test(acpi, platform_dsdt_legacy_devices)
{
    create_platform();
    const u8 *dsdt = build().dsdt;
    struct crs kbd = device_crs(dsdt, "PNP0303");
    cr_assert_eq(kbd.n, 3);
    cr_assert(has_io(&kbd, 0x60, 1) && has_io(&kbd, 0x64, 1) && has_irq(&kbd, 1));
    struct crs mou = device_crs(dsdt, "PNP0F13");
    cr_assert_eq(mou.n, 1);
    cr_assert(has_irq(&mou, 12));
    struct crs rtc = device_crs(dsdt, "PNP0B00");
    cr_assert_eq(rtc.n, 2);
    cr_assert(has_io(&rtc, 0x70, 2) && has_irq(&rtc, 8));
    struct crs com1 = device_crs(dsdt, "PNP0501");
    cr_assert_eq(com1.n, 2);
    cr_assert(has_io(&com1, 0x3f8, 8) && has_irq(&com1, 4));
    struct crs hpet = device_crs(dsdt, "PNP0103");
    cr_assert_eq(hpet.n, 1);
    cr_assert(has_mem32_fixed(&hpet, (u32)HPET_MMIO_BASE, 0x400));
    struct crs fwcfg = device_crs(dsdt, "QEMU0002");
    cr_assert_eq(fwcfg.n, 1);
    cr_assert(has_io(&fwcfg, 0x510, 12));
}

Test(acpi, platform_dsdt_motherboard_resources)
{
    create_platform();
    const u8 *dsdt = build().dsdt;
    struct crs sysr = device_crs(dsdt, "PNP0C02");
    /* ECAM (Linux's "reserved in ACPI motherboard resources"), and the ports no other
     * device describes; 0xcf9 is inside the host bridge's 0xcf8-0xcff */
    cr_assert(has_mem32_fixed(&sysr, (u32)PCI_ECAM_BASE, (u32)PCI_ECAM_SIZE));
    cr_assert(has_io(&sysr, 0x600, 0x40), "PM blocks");
    cr_assert(has_io(&sysr, 0x92, 1), "port A");
    cr_assert(has_io(&sysr, 0xf4, 1), "debug exit");
    cr_assert(has_io(&sysr, 0x4d0, 2), "ELCR");
    cr_assert(!has_io(&sysr, 0xcf9, 1));
    cr_assert_eq(sysr.n, 5);
}

Test(acpi, motherboard_resources_without_pci_hold_the_reset_port)
{
    m.acpi_pm = acpi_pm_create(&m);
    struct crs sysr = device_crs(build().dsdt, "PNP0C02");
    cr_assert(has_io(&sysr, 0xcf9, 1));
    cr_assert(has_io(&sysr, 0x600, 0x40));
    cr_assert_eq(sysr.n, 2, "no ECAM without PCI");
}

Test(acpi, platform_dsdt_pci_host_bridge)
{
    create_platform();
    const u8 *dsdt = build().dsdt;
    const u8 *hid = find_hid(dsdt, "PNP0A08");
    cr_assert_not_null(hid);
    u32 cid = eisa("PNP0A03");
    cr_assert_eq(memcmp(hid + 10, "\x08_CID\x0c", 6), 0);
    cr_assert_eq(memcmp(hid + 16, &cid, 4), 0);
    cr_assert_eq(memcmp(hid + 20, "\x08_SEG\x00\x08_BBN\x00\x08_UID\x00", 18), 0);
    struct crs c = device_crs(dsdt, "PNP0A08");
    cr_assert(has_io(&c, 0xcf8, 8), "the configuration ports, consumed");
    struct window w[8];
    int n = windows(&c, w, 8);
    cr_assert_eq(n, 5);
    cr_assert(w[0].type == 2 && w[0].min == 0 && w[0].max == 255, "buses 0-255");
    cr_assert(w[1].type == 1 && w[1].min == 0 && w[1].max == 0xcf7);
    cr_assert(w[2].type == 1 && w[2].min == 0xd00 && w[2].max == 0xffff);
    /* memory: the PCI hole from 3G to the I/O APIC, without ECAM and without RAM */
    u64 covered = 0;
    for (int i = 3; i < n; i++) {
        cr_assert_eq(w[i].type, 0);
        cr_assert_geq(w[i].min, 0xc0000000u);
        cr_assert_leq(w[i].max, 0xfebfffffu);
        cr_assert(w[i].max < PCI_ECAM_BASE || w[i].min >= PCI_ECAM_BASE + PCI_ECAM_SIZE);
        cr_assert(e820_at(w[i].min) == NULL && e820_at(w[i].max) == NULL, "not in e820");
        covered += w[i].max - w[i].min + 1;
    }
    cr_assert_eq(covered, 0xfec00000u - 0xc0000000u - PCI_ECAM_SIZE);
}

/* ---- PCI interrupt routing in the DSDT: \_PIC, the two _PRT tables, the links ---- */

/* The routing table Name (name, Package (124) { Package (4) { addr, pin, link, 0 } }):
 * each entry's link, checked against pin p of slot s on PIRQ (s + p) % 4. */
static void check_routing_table(const u8 *dsdt, const char *name, const char *prefix)
{
    u32 dlen = (u32)le(dsdt + 4, 4);
    u8 pat[6] = { 0x08, (u8)name[0], (u8)name[1], (u8)name[2], (u8)name[3], 0x12 };
    const u8 *p = find_bytes(dsdt + 36, dlen - 36, pat, 6);
    cr_assert_not_null(p, "Name (%s, Package ...)", name);
    size_t nb;
    pkg_length(p + 6, &nb);
    p += 6 + nb;
    cr_assert_eq(*p++, 124, "%s: INTA-INTD of slots 1-31", name);
    for (int slot = 1; slot < 32; slot++) {
        for (int pin = 0; pin < 4; pin++) {
            cr_assert_eq(*p++, 0x12, "%s: an entry package", name);
            pkg_length(p, &nb);
            p += nb;
            cr_assert_eq(*p++, 4);
            cr_assert_eq(*p++, 0x0c, "the address as a DWord");
            cr_assert_eq(le(p, 4), (u64)slot << 16 | 0xffff);
            p += 4;
            if (pin <= 1) {
                cr_assert_eq(*p++, pin, "pin Zero/One");
            } else {
                cr_assert_eq(p[0], 0x0a);
                cr_assert_eq(p[1], pin);
                p += 2;
            }
            char link[4] = { prefix[0], prefix[1], prefix[2], (char)('A' + (slot + pin) % 4) };
            cr_assert_eq(memcmp(p, link, 4), 0, "%s: slot %d pin %d on %.4s", name, slot, pin, link);
            p += 4;
            cr_assert_eq(*p++, 0, "source index 0");
        }
    }
}

Test(acpi, platform_dsdt_pci_interrupt_routing)
{
    create_platform();
    const u8 *dsdt = build().dsdt;
    u32 dlen = (u32)le(dsdt + 4, 4);
    const u8 *body = dsdt + 36;
    size_t blen = dlen - 36;
    /* Name (\PICF, Zero); Method (\_PIC, 1) { Store (Arg0, \PICF) } */
    cr_assert_not_null(find_bytes(body, blen, "\x08\\PICF\x00", 7), "PICF starts at 0 (PIC)");
    const u8 *pic = find_bytes(body, blen, "\\_PIC\x01\x70\x68\\PICF", 13);
    cr_assert_not_null(pic, "\\_PIC stores its argument in \\PICF");
    cr_assert_eq(pic[-2], 0x14, "\\_PIC is a method");
    /* Method (_PRT) { If (\PICF) { Return (PRTA) } Return (PRTP) } */
    const u8 *prt = find_bytes(body, blen, "_PRT\x00\xa0", 6);
    cr_assert_not_null(prt, "_PRT is a method that tests");
    cr_assert_eq(prt[-2], 0x14);
    size_t nb;
    pkg_length(prt + 6, &nb);
    cr_assert_eq(memcmp(prt + 6 + nb, "\\PICF\xa4PRTA\xa4PRTP", 15), 0,
                 "APIC mode: PRTA, else PRTP");
    check_routing_table(dsdt, "PRTA", "GSI");
    check_routing_table(dsdt, "PRTP", "LNK");
    /* the router registers: Device (LPC) at 00:1f.0, PCI_Config 0x60-0x63 as PRQA-PRQD */
    const u8 *lpc = find_bytes(body, blen, "LPC_\x08_ADR\x0c\x00\x00\x1f\x00", 14);
    cr_assert_not_null(lpc, "Device (LPC) { Name (_ADR, 0x001F0000) ...");
    cr_assert_not_null(find_bytes(lpc, blen - (size_t)(lpc - body),
                                  "\x5b\x80PIRQ\x02\x0a\x60\x0a\x04", 11),
                       "OperationRegion (PIRQ, PCI_Config, 0x60, 4)");
    cr_assert_not_null(find_bytes(lpc, blen - (size_t)(lpc - body),
                                  "PIRQ\x01PRQA\x08PRQB\x08PRQC\x08PRQD\x08", 25),
                       "Field (PIRQ, ByteAcc) { PRQA, 8 ... PRQD, 8 }");
    /* LNKA-LNKD: _HID PNP0C0F, _UID n, _PRS { 5, 10, 11 }, and methods on PRQn */
    for (int n = 0; n < 4; n++) {
        char dev[10] = { 'L', 'N', 'K', (char)('A' + n), 0x08, '_', 'H', 'I', 'D', 0 };
        const u8 *d = find_bytes(body, blen, dev, 9); /* the device, not a _PRT entry */
        dev[4] = 0;
        cr_assert_not_null(d, "%s", dev);
        u32 hid = eisa("PNP0C0F");
        cr_assert_eq(memcmp(d + 4, "\x08_HID\x0c", 6), 0);
        cr_assert_eq(memcmp(d + 10, &hid, 4), 0, "%s is a PCI interrupt link", dev);
        const u8 *prs = find_bytes(d, blen - (size_t)(d - body), "\x08_PRS\x11", 6);
        cr_assert_not_null(prs);
        pkg_length(prs + 6, &nb);
        const u8 *irq = prs + 6 + nb + 2; /* after BufferSize (ByteConst) */
        static const u8 want[] = { 0x89, 14, 0, 0x09, 3, 5, 0, 0, 0, 10, 0, 0, 0, 11, 0, 0, 0 };
        cr_assert_eq(memcmp(irq, want, sizeof(want)), 0,
                     "%s: _PRS Interrupt (Consumer, Level, ActiveHigh, Shared) { 5, 10, 11 }", dev);
        u8 field[] = "\\/\x04_SB_PCI0LPC_PRQ?";
        field[sizeof(field) - 2] = (u8)('A' + n);
        size_t flen = sizeof(field) - 1;
        u8 sta[32] = "_STA\x00\xa4IQST", srs[48] = "_SRS\x09\x8a\x68\x0a\x05PRRI\x70PRRI";
        memcpy(sta + 10, field, flen);
        memcpy(srs + 18, field, flen);
        cr_assert_not_null(find_bytes(d, blen - (size_t)(d - body), sta, 10 + flen),
                           "%s: _STA from IQST (PRQ%c)", dev, 'A' + n);
        cr_assert_not_null(find_bytes(d, blen - (size_t)(d - body), srs, 18 + flen),
                           "%s: _SRS stores the descriptor's IRQ into PRQ%c", dev, 'A' + n);
    }
}

/* ACPI tables (ACPI 6.0 specification, chapter 5), built in a host buffer and copied to
 * guest RAM at ACPI_AREA_BASE in the BIOS area, where OSes search for the RSDP:
 *   RSDP (revision 2) -> RSDT and XSDT -> FADT (revision 6), MADT
 *   FADT -> FACS, DSDT (AML from the small emitter below)
 * The tables describe the machine as built: fixed-hardware blocks (PM1 event/control,
 * PM timer), the reset register, the RTC, the 8042 and the serial port are advertised
 * only if a device owns their ports on the I/O bus, so acpi_build() belongs after the
 * devices are created. */
#include "dev/dev.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "machine/machine.h"

#define ACPI_OEM_ID "NESTOR"
#define ACPI_OEM_TABLE_ID "NESTORVM"
#define ACPI_CREATOR_ID "NSTR"

#define SDT_HEADER_SIZE 36
#define RSDP_SIZE 36
#define RSDP_V1_SIZE 20
#define FACS_SIZE 64
#define FADT_SIZE 276
#define FADT_REVISION 6
#define FADT_MINOR_REVISION 0
#define MADT_REVISION 4
#define DSDT_REVISION 2 /* 64-bit AML integers */

#define LAPIC_DEFAULT_BASE 0xfee00000u
#define IOAPIC_BASE 0xfec00000u

/* Fixed-hardware ports, as on QEMU's ICH9 (q35) machine. */
#define PM1A_EVT_PORT 0x600
#define PM1A_CNT_PORT 0x604
#define PM_TMR_PORT 0x608
#define RESET_PORT 0xcf9
#define RESET_VALUE 0x06 /* CPU reset + system reset */
#define SCI_IRQ 9
#define RTC_PORT 0x70
#define KBC_PORT 0x60
#define COM1_PORT 0x3f8
#define COM1_IRQ 4

/* FADT flags (ACPI 6.0 table 5-35) */
enum {
    FADT_WBINVD = 1 << 0,
    FADT_PROC_C1 = 1 << 2,
    FADT_PWR_BUTTON = 1 << 4, /* no fixed-feature power button */
    FADT_SLP_BUTTON = 1 << 5, /* no fixed-feature sleep button */
    FADT_FIX_RTC = 1 << 6,    /* no RTC wake status in the fixed register space */
    FADT_RESET_REG_SUP = 1 << 10,
    FADT_HW_REDUCED_ACPI = 1 << 20,
};
/* IA-PC boot architecture flags (table 5-36) */
enum {
    BOOT_LEGACY_DEVICES = 1 << 0,
    BOOT_8042 = 1 << 1,
    BOOT_VGA_NOT_PRESENT = 1 << 2,
    BOOT_CMOS_RTC_NOT_PRESENT = 1 << 5,
};

/* MADT structure types and flags */
enum { MADT_LAPIC = 0, MADT_IOAPIC = 1, MADT_ISO = 2, MADT_LAPIC_NMI = 4 };
#define MADT_PCAT_COMPAT 1
#define MPS_ACTIVE_HIGH 0x1
#define MPS_LEVEL 0xc

/* Generic address structure address spaces and access sizes */
enum { GAS_SYSTEM_IO = 1 };
enum { GAS_ACCESS_BYTE = 1, GAS_ACCESS_WORD = 2, GAS_ACCESS_DWORD = 3 };

/* ---- little-endian buffer writes ---- */

static void put(u8 *p, u64 v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (u8)(v >> (8 * i));
}

static u8 checksum(const u8 *p, size_t len)
{
    u8 sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (u8)(sum + p[i]);
    return (u8)-sum;
}

/* ---- AML emitter (ACPI 6.0 chapter 20) ---- */

#define AML_MAX 4096

struct aml {
    u8 b[AML_MAX];
    size_t len;
};

enum {
    AML_ZERO = 0x00, AML_ONE = 0x01, AML_NAME = 0x08, AML_BYTE = 0x0a, AML_WORD = 0x0b,
    AML_DWORD = 0x0c, AML_STRING = 0x0d, AML_QWORD = 0x0e, AML_SCOPE = 0x10,
    AML_BUFFER = 0x11, AML_PACKAGE = 0x12, AML_EXT = 0x5b, AML_EXT_DEVICE = 0x82,
    AML_ROOT = '\\', AML_DUAL_NAME = 0x2e, AML_MULTI_NAME = 0x2f, AML_ONES = 0xff,
};

static void aml_bytes(struct aml *a, const void *p, size_t n)
{
    if (n > AML_MAX - a->len)
        nestor_panic("AML buffer full");
    memcpy(a->b + a->len, p, n);
    a->len += n;
}

static void aml_byte(struct aml *a, u8 v)
{
    aml_bytes(a, &v, 1);
}

/* A name string: optional root prefix, then dot-separated segments of up to four
 * characters, padded with '_' ("\\_SB.COM1"). */
static void aml_name(struct aml *a, const char *path)
{
    if (*path == '\\') {
        aml_byte(a, AML_ROOT);
        path++;
    }
    int nseg = 1;
    for (const char *p = path; *p; p++)
        nseg += *p == '.';
    if (nseg == 2)
        aml_byte(a, AML_DUAL_NAME);
    else if (nseg > 2) {
        aml_byte(a, AML_MULTI_NAME);
        aml_byte(a, (u8)nseg);
    }
    for (int s = 0; s < nseg; s++) {
        char seg[4] = { '_', '_', '_', '_' };
        for (int i = 0; *path && *path != '.'; i++, path++)
            if (i < 4)
                seg[i] = *path;
        if (*path == '.')
            path++;
        aml_bytes(a, seg, 4);
    }
}

static void aml_integer(struct aml *a, u64 v)
{
    u8 p[8];
    put(p, v, 8);
    if (v == 0)
        aml_byte(a, AML_ZERO);
    else if (v == 1)
        aml_byte(a, AML_ONE);
    else if (v == ~0ull)
        aml_byte(a, AML_ONES);
    else if (v <= 0xff)
        aml_byte(a, AML_BYTE), aml_bytes(a, p, 1);
    else if (v <= 0xffff)
        aml_byte(a, AML_WORD), aml_bytes(a, p, 2);
    else if (v <= 0xffffffff)
        aml_byte(a, AML_DWORD), aml_bytes(a, p, 4);
    else
        aml_byte(a, AML_QWORD), aml_bytes(a, p, 8);
}

/* EISA ID compression: three letters of five bits and four hex digits, stored so the
 * bytes read in big-endian order. */
static u32 eisa_id(const char *id)
{
    u32 v = (u32)((id[0] - '@') & 0x1f) << 26 | (u32)((id[1] - '@') & 0x1f) << 21 |
            (u32)((id[2] - '@') & 0x1f) << 16;
    for (int i = 3; i < 7; i++) {
        char c = id[i];
        u32 d = (u32)(c >= 'A' ? c - 'A' + 10 : c - '0');
        v |= d << (4 * (6 - i));
    }
    return __builtin_bswap32(v);
}

/* Objects whose encoding carries a PkgLength: opened before their contents, closed
 * after, when the length is known and inserted. */
static size_t aml_open(struct aml *a, const u8 *opcode, size_t oplen)
{
    aml_bytes(a, opcode, oplen);
    return a->len;
}

static void aml_close(struct aml *a, size_t start)
{
    size_t body = a->len - start;
    /* The PkgLength counts itself: 1 byte encodes up to 63, else 1-3 more bytes. */
    int extra = body + 1 <= 63 ? 0 : body + 2 < (1u << 12) ? 1 : body + 3 < (1u << 20) ? 2 : 3;
    size_t total = body + 1 + (size_t)extra;
    if (total >= (1u << 28) || (size_t)extra + 1 > AML_MAX - a->len)
        nestor_panic("AML object too large");
    u8 enc[4];
    if (extra == 0) {
        enc[0] = (u8)total;
    } else {
        enc[0] = (u8)((extra << 6) | (total & 0xf));
        for (int i = 1; i <= extra; i++)
            enc[i] = (u8)(total >> (4 + 8 * (i - 1)));
    }
    memmove(a->b + start + extra + 1, a->b + start, body);
    memcpy(a->b + start, enc, (size_t)extra + 1);
    a->len += (size_t)extra + 1;
}

static void aml_name_decl(struct aml *a, const char *name)
{
    aml_byte(a, AML_NAME);
    aml_name(a, name);
}

static size_t aml_scope(struct aml *a, const char *name)
{
    static const u8 op[] = { AML_SCOPE };
    size_t s = aml_open(a, op, sizeof(op));
    aml_name(a, name);
    return s;
}

static size_t aml_device(struct aml *a, const char *name)
{
    static const u8 op[] = { AML_EXT, AML_EXT_DEVICE };
    size_t s = aml_open(a, op, sizeof(op));
    aml_name(a, name);
    return s;
}

/* Package (n) { integers } */
static void aml_package_of_integers(struct aml *a, const u64 *v, int n)
{
    static const u8 op[] = { AML_PACKAGE };
    size_t s = aml_open(a, op, sizeof(op));
    aml_byte(a, (u8)n);
    for (int i = 0; i < n; i++)
        aml_integer(a, v[i]);
    aml_close(a, s);
}

/* Buffer () { bytes }, e.g. a resource template */
static void aml_buffer(struct aml *a, const u8 *data, size_t n)
{
    static const u8 op[] = { AML_BUFFER };
    size_t s = aml_open(a, op, sizeof(op));
    aml_integer(a, n);
    aml_bytes(a, data, n);
    aml_close(a, s);
}

/* Resource template of an ISA device: one I/O range and one edge IRQ (ACPI 6.0 6.4.2). */
static size_t isa_resources(u8 *r, u16 port, u8 len, u8 irq)
{
    size_t n = 0;
    r[n++] = 0x47; /* I/O port descriptor, 7 bytes */
    r[n++] = 0x01; /* decodes 16 address bits */
    put(r + n, port, 2), n += 2;
    put(r + n, port, 2), n += 2;
    r[n++] = 1; /* alignment */
    r[n++] = len;
    r[n++] = 0x22; /* IRQ descriptor, 2 bytes: active-high edge */
    put(r + n, 1u << irq, 2), n += 2;
    r[n++] = 0x79; /* end tag */
    r[n++] = 0;    /* checksum 0: treat as valid */
    return n;
}

static void build_dsdt_body(struct machine *m, struct aml *a)
{
    /* \_S5: sleep type values for soft-off, written to PM1a/b_CNT.SLP_TYP. */
    static const u64 s5[4] = { ACPI_S5_SLP_TYP, ACPI_S5_SLP_TYP, 0, 0 };
    aml_name_decl(a, "\\_S5");
    aml_package_of_integers(a, s5, 4);

    size_t sb = aml_scope(a, "\\_SB");
    if (bus_find(&m->io, COM1_PORT)) {
        size_t dev = aml_device(a, "COM1");
        aml_name_decl(a, "_HID");
        aml_byte(a, AML_DWORD);
        u8 id[4];
        put(id, eisa_id("PNP0501"), 4);
        aml_bytes(a, id, 4);
        aml_name_decl(a, "_UID");
        aml_integer(a, 1);
        u8 res[16];
        size_t n = isa_resources(res, COM1_PORT, 8, COM1_IRQ);
        aml_name_decl(a, "_CRS");
        aml_buffer(a, res, n);
        aml_close(a, dev);
    }
    aml_close(a, sb);
}

/* ---- tables ---- */

struct acpi_area {
    u8 b[ACPI_AREA_SIZE];
    size_t len;
};

static size_t area_alloc(struct acpi_area *t, size_t size, size_t align)
{
    size_t off = (t->len + align - 1) & ~(align - 1);
    if (off + size > sizeof(t->b))
        nestor_panic("ACPI tables do not fit in %llu bytes", (unsigned long long)ACPI_AREA_SIZE);
    t->len = off + size;
    return off;
}

static u64 gpa_of(size_t off)
{
    return ACPI_AREA_BASE + off;
}

static void sdt_header(u8 *p, const char *sig, u32 len, u8 rev)
{
    memcpy(p, sig, 4);
    put(p + 4, len, 4);
    p[8] = rev;
    memcpy(p + 10, ACPI_OEM_ID, 6);
    memcpy(p + 16, ACPI_OEM_TABLE_ID, 8);
    put(p + 24, 1, 4); /* OEM revision */
    memcpy(p + 28, ACPI_CREATOR_ID, 4);
    put(p + 32, 1, 4); /* creator revision */
}

static void sdt_finish(u8 *p)
{
    u32 len = (u32)p[4] | (u32)p[5] << 8 | (u32)p[6] << 16 | (u32)p[7] << 24;
    p[9] = 0;
    p[9] = checksum(p, len);
}

static void gas_io(u8 *p, u16 port, u8 bits, u8 access)
{
    p[0] = GAS_SYSTEM_IO;
    p[1] = bits;
    p[2] = 0;
    p[3] = access;
    put(p + 4, port, 8);
}

static size_t build_facs(struct acpi_area *t)
{
    size_t off = area_alloc(t, FACS_SIZE, 64);
    u8 *p = t->b + off;
    memcpy(p, "FACS", 4);
    put(p + 4, FACS_SIZE, 4);
    p[32] = 2; /* version */
    return off;
}

static size_t build_dsdt(struct machine *m, struct acpi_area *t)
{
    static struct aml a; /* 4 KiB: kept off the stack */
    a.len = 0;
    build_dsdt_body(m, &a);
    size_t off = area_alloc(t, SDT_HEADER_SIZE + a.len, 16);
    u8 *p = t->b + off;
    sdt_header(p, "DSDT", (u32)(SDT_HEADER_SIZE + a.len), DSDT_REVISION);
    memcpy(p + SDT_HEADER_SIZE, a.b, a.len);
    sdt_finish(p);
    return off;
}

/* A fixed-hardware register block advertised when a device owns its port: the 32-bit
 * field, its length byte and the X_ generic address. */
static void fadt_block(struct machine *m, u8 *fadt, u16 port, u8 len, u8 access,
                       int field_off, int len_off, int x_off)
{
    if (!bus_find(&m->io, port))
        return;
    put(fadt + field_off, port, 4);
    fadt[len_off] = len;
    gas_io(fadt + x_off, port, (u8)(len * 8), access);
}

static size_t build_fadt(struct machine *m, struct acpi_area *t, size_t facs, size_t dsdt)
{
    size_t off = area_alloc(t, FADT_SIZE, 16);
    u8 *p = t->b + off;
    sdt_header(p, "FACP", FADT_SIZE, FADT_REVISION);
    put(p + 36, gpa_of(facs), 4);  /* FIRMWARE_CTRL */
    put(p + 40, gpa_of(dsdt), 4);  /* DSDT */
    p[45] = 0;                     /* preferred PM profile: unspecified */
    put(p + 46, SCI_IRQ, 2);
    /* SMI_CMD = 0: no SMM, the platform is always in ACPI mode. */
    /* (PM1 event blocks hold two 16-bit registers) */
    fadt_block(m, p, PM1A_EVT_PORT, 4, GAS_ACCESS_WORD, 56, 88, 148);
    fadt_block(m, p, PM1A_CNT_PORT, 2, GAS_ACCESS_WORD, 64, 89, 172);
    fadt_block(m, p, PM_TMR_PORT, 4, GAS_ACCESS_DWORD, 76, 91, 208);
    put(p + 96, 101, 2);  /* P_LVL2_LAT > 100: no C2 */
    put(p + 98, 1001, 2); /* P_LVL3_LAT > 1000: no C3 */
    bool rtc = bus_find(&m->io, RTC_PORT) != NULL;
    p[108] = rtc ? 0x32 : 0; /* CMOS century byte */
    u16 boot = BOOT_VGA_NOT_PRESENT;
    if (!rtc)
        boot |= BOOT_CMOS_RTC_NOT_PRESENT;
    if (bus_find(&m->io, KBC_PORT))
        boot |= BOOT_8042;
    if (bus_find(&m->io, COM1_PORT))
        boot |= BOOT_LEGACY_DEVICES;
    put(p + 109, boot, 2);
    u32 flags = FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_FIX_RTC;
    if (bus_find(&m->io, RESET_PORT))
        flags |= FADT_RESET_REG_SUP;
    put(p + 112, flags, 4);
    gas_io(p + 116, RESET_PORT, 8, GAS_ACCESS_BYTE); /* RESET_REG */
    p[128] = RESET_VALUE;
    p[131] = FADT_MINOR_REVISION;
    put(p + 132, gpa_of(facs), 8); /* X_FIRMWARE_CTRL */
    put(p + 140, gpa_of(dsdt), 8); /* X_DSDT */
    memcpy(p + 268, "NESTOR\0\0", 8); /* hypervisor vendor identity */
    sdt_finish(p);
    return off;
}

static int machine_cpus(const struct machine *m)
{
    int n = m->ncpus ? m->ncpus : m->cfg.ncpus;
    return n < 1 ? 1 : n > MACHINE_MAX_CPUS ? MACHINE_MAX_CPUS : n;
}

static size_t build_madt(struct machine *m, struct acpi_area *t)
{
    int ncpus = machine_cpus(m);
    size_t len = SDT_HEADER_SIZE + 8 + (size_t)ncpus * 8 + 12 + 2 * 10 + 6;
    size_t off = area_alloc(t, len, 16);
    u8 *p = t->b + off, *e = p + SDT_HEADER_SIZE + 8;
    sdt_header(p, "APIC", (u32)len, MADT_REVISION);
    put(p + 36, LAPIC_DEFAULT_BASE, 4);
    put(p + 40, MADT_PCAT_COMPAT, 4);
    /* Processor local APICs; APIC ID = processor UID = CPU index. */
    for (int i = 0; i < ncpus; i++, e += 8) {
        e[0] = MADT_LAPIC;
        e[1] = 8;
        e[2] = (u8)i;
        e[3] = (u8)i;
        put(e + 4, 1, 4); /* enabled */
    }
    /* The I/O APIC takes the first ID after the CPUs, its inputs GSI 0-23. */
    e[0] = MADT_IOAPIC;
    e[1] = 12;
    e[2] = (u8)ncpus;
    put(e + 4, IOAPIC_BASE, 4);
    put(e + 8, 0, 4);
    e += 12;
    /* ISA IRQ 0 (PIT) is wired to GSI 2; the SCI is level-triggered, active high. */
    static const struct { u8 irq; u32 gsi; u16 flags; } overrides[] = {
        { 0, 2, 0 },
        { SCI_IRQ, SCI_IRQ, MPS_ACTIVE_HIGH | MPS_LEVEL },
    };
    for (size_t i = 0; i < ARRAY_SIZE(overrides); i++, e += 10) {
        e[0] = MADT_ISO;
        e[1] = 10;
        e[2] = 0; /* ISA */
        e[3] = overrides[i].irq;
        put(e + 4, overrides[i].gsi, 4);
        put(e + 8, overrides[i].flags, 2);
    }
    /* LINT1 of every processor is the NMI input. */
    e[0] = MADT_LAPIC_NMI;
    e[1] = 6;
    e[2] = 0xff; /* all processors */
    put(e + 3, 0, 2);
    e[5] = 1;
    sdt_finish(p);
    return off;
}

static size_t build_rsdt(struct acpi_area *t, const size_t *tables, int n, bool x)
{
    int entry = x ? 8 : 4;
    size_t len = SDT_HEADER_SIZE + (size_t)(n * entry);
    size_t off = area_alloc(t, len, 16);
    u8 *p = t->b + off;
    sdt_header(p, x ? "XSDT" : "RSDT", (u32)len, 1);
    for (int i = 0; i < n; i++)
        put(p + SDT_HEADER_SIZE + i * entry, gpa_of(tables[i]), entry);
    sdt_finish(p);
    return off;
}

static void build_rsdp(struct acpi_area *t, size_t rsdp, size_t rsdt, size_t xsdt)
{
    u8 *p = t->b + rsdp;
    memcpy(p, "RSD PTR ", 8);
    memcpy(p + 9, ACPI_OEM_ID, 6);
    p[15] = 2; /* revision: ACPI 2.0+ */
    put(p + 16, gpa_of(rsdt), 4);
    put(p + 20, RSDP_SIZE, 4);
    put(p + 24, gpa_of(xsdt), 8);
    p[8] = checksum(p, RSDP_V1_SIZE);
    p[32] = checksum(p, RSDP_SIZE);
}

u64 acpi_build(struct machine *m)
{
    static struct acpi_area t; /* 64 KiB: kept off the stack */
    memset(&t, 0, sizeof(t));
    /* The RSDP first: OSes scan the BIOS area on 16-byte boundaries. */
    size_t rsdp = area_alloc(&t, RSDP_SIZE, 16);
    size_t facs = build_facs(&t);
    size_t dsdt = build_dsdt(m, &t);
    size_t tables[2];
    tables[0] = build_fadt(m, &t, facs, dsdt);
    tables[1] = build_madt(m, &t);
    size_t rsdt = build_rsdt(&t, tables, 2, false);
    size_t xsdt = build_rsdt(&t, tables, 2, true);
    build_rsdp(&t, rsdp, rsdt, xsdt);

    if (mem_write(&m->mem, ACPI_AREA_BASE, t.b, t.len) < 0)
        nestor_panic("the BIOS area at %#llx is not RAM", (unsigned long long)ACPI_AREA_BASE);
    mem_e820_mark(&m->mem, ACPI_AREA_BASE, (t.len + 0xfff) & ~0xfffull, E820_RESERVED);
    return ACPI_AREA_BASE + rsdp;
}

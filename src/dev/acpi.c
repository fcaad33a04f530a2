/* ACPI tables (ACPI 6.0 specification, chapter 5), built in a host buffer and copied to
 * guest RAM at ACPI_AREA_BASE in the BIOS area, where OSes search for the RSDP:
 *   RSDP (revision 2) -> RSDT and XSDT -> FADT (revision 6), MADT, HPET, MCFG
 *   FADT -> FACS, DSDT (AML from the small emitter below)
 * The tables describe the machine as built: a fixed-hardware register block, a legacy
 * device, the I/O APIC, the HPET or the PCI host bridge is advertised only if a device
 * owns its port or MMIO range on the machine's buses, so acpi_build() belongs after the
 * devices are created.
 *
 * acpi_build() also marks reserved in the e820 map what firmware reserves on a PC: the
 * tables themselves, the PCI ECAM area (Linux uses the MCFG only when the area is
 * reserved in e820 and as a PNP0C02 motherboard resource in the DSDT; it is both here),
 * and the I/O APIC, HPET and local APIC pages. */
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
#define MCFG_REVISION 1
#define DSDT_REVISION 2 /* 64-bit AML integers */

#define PAGE_SIZE 4096ull
#define LAPIC_DEFAULT_BASE 0xfee00000u
/* The PCI memory window ends below the I/O APIC, HPET and LAPIC pages. */
#define PCI_MMIO_END IOAPIC_MMIO_BASE
#define PCI_IO_END 0x10000u
#define COM1_PORT 0x3f8
#define COM1_IRQ 4
#define DEBUGEXIT_PORT 0xf4
#define FWCFG_PORT 0x510
#define FWCFG_PORTS 12      /* selector, data, DMA address: 0x510-0x51b, as QEMU has it */
#define ACPI_PM_IO_LEN 0x40 /* the PM I/O space decoded at PM1A_EVT_BLK: 0x600-0x63f */

/* FADT field offsets (ACPI 6.0 table 5-34) */
enum {
    FADT_FIRMWARE_CTRL = 36, FADT_DSDT = 40, FADT_PM_PROFILE = 45, FADT_SCI_INT = 46,
    FADT_SMI_CMD = 48, FADT_PM1A_EVT_BLK = 56, FADT_PM1A_CNT_BLK = 64, FADT_PM_TMR_BLK = 76,
    FADT_GPE0_BLK = 80, FADT_PM1_EVT_LEN = 88, FADT_PM1_CNT_LEN = 89, FADT_PM_TMR_LEN = 91,
    FADT_GPE0_BLK_LEN = 92, FADT_P_LVL2_LAT = 96, FADT_P_LVL3_LAT = 98, FADT_CENTURY = 108,
    FADT_IAPC_BOOT_ARCH = 109, FADT_FLAGS = 112, FADT_RESET_REG = 116, FADT_RESET_VALUE = 128,
    FADT_MINOR_VERSION = 131, FADT_X_FIRMWARE_CTRL = 132, FADT_X_DSDT = 140,
    FADT_X_PM1A_EVT_BLK = 148, FADT_X_PM1A_CNT_BLK = 172, FADT_X_PM_TMR_BLK = 208,
    FADT_X_GPE0_BLK = 220, FADT_HYPERVISOR_VENDOR = 268,
};

/* FADT flags (ACPI 6.0 table 5-35) */
enum {
    FADT_WBINVD = 1 << 0,
    FADT_PROC_C1 = 1 << 2,
    FADT_PWR_BUTTON = 1 << 4, /* no fixed-feature power button */
    FADT_SLP_BUTTON = 1 << 5, /* no fixed-feature sleep button */
    FADT_FIX_RTC = 1 << 6,    /* no RTC wake status in the fixed register space */
    FADT_TMR_VAL_EXT = 1 << 8,/* the PM timer counts 32 bits */
    FADT_RESET_REG_SUP = 1 << 10,
    FADT_APIC_PHYSICAL = 1 << 19, /* xAPIC physical destination mode */
    FADT_HW_REDUCED_ACPI = 1 << 20,
};
/* IA-PC boot architecture flags (table 5-36) */
enum {
    BOOT_LEGACY_DEVICES = 1 << 0,
    BOOT_8042 = 1 << 1,
    BOOT_VGA_NOT_PRESENT = 1 << 2,
    BOOT_CMOS_RTC_NOT_PRESENT = 1 << 5,
};
/* Logical flat destinations address 8 xAPICs at most; with more CPUs the OS is told to
 * use physical destinations. */
#define FLAT_LOGICAL_MAX_CPUS 8

/* MADT structure types and flags */
enum { MADT_LAPIC = 0, MADT_IOAPIC = 1, MADT_ISO = 2, MADT_LAPIC_NMI = 4 };
#define MADT_PCAT_COMPAT 1
#define MADT_ALL_PROCESSORS 0xff
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

#define AML_MAX 16384

struct aml {
    u8 b[AML_MAX];
    size_t len;
};

enum {
    AML_ZERO = 0x00, AML_ONE = 0x01, AML_NAME = 0x08, AML_BYTE = 0x0a, AML_WORD = 0x0b,
    AML_DWORD = 0x0c, AML_STRING = 0x0d, AML_QWORD = 0x0e, AML_SCOPE = 0x10,
    AML_BUFFER = 0x11, AML_PACKAGE = 0x12, AML_EXT = 0x5b, AML_EXT_DEVICE = 0x82,
    AML_ROOT = '\\', AML_DUAL_NAME = 0x2e, AML_MULTI_NAME = 0x2f, AML_ONES = 0xff,
    AML_METHOD = 0x14, AML_ARG0 = 0x68, AML_STORE = 0x70, AML_AND = 0x7b,
    AML_OR = 0x7d, AML_CREATE_DWORD_FIELD = 0x8a, AML_LLESS = 0x95, AML_IF = 0xa0,
    AML_RETURN = 0xa4, AML_NULL_NAME = 0x00,
    AML_EXT_OP_REGION = 0x80, AML_EXT_FIELD = 0x81, /* after AML_EXT */
};
enum { AML_REGION_PCI_CONFIG = 0x02 };
enum { AML_FIELD_BYTE_ACC = 0x01 }; /* NoLock, Preserve */

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

static void aml_string(struct aml *a, const char *s)
{
    aml_byte(a, AML_STRING);
    aml_bytes(a, s, strlen(s) + 1);
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

/* EisaId("PNPxxxx") as an AML DWord constant (always the DWord form, as iasl emits it). */
static void aml_eisa_id(struct aml *a, const char *id)
{
    u8 v[4];
    put(v, eisa_id(id), 4);
    aml_byte(a, AML_DWORD);
    aml_bytes(a, v, 4);
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

/* Name (name, integer) */
static void aml_name_integer(struct aml *a, const char *name, u64 v)
{
    aml_name_decl(a, name);
    aml_integer(a, v);
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

/* ---- resource templates (ACPI 6.0 section 6.4) ---- */

#define RES_MAX 256

struct res {
    u8 b[RES_MAX];
    size_t len;
};

/* small and large resource descriptor tags */
enum {
    RES_IRQ = 0x22,          /* IRQ, 2 bytes: edge-triggered, active-high, exclusive */
    RES_IO = 0x47,           /* I/O port, 7 bytes */
    RES_END = 0x79,          /* end tag, 1 byte: checksum */
    RES_MEM32_FIXED = 0x86,  /* fixed-location 32-bit memory range */
    RES_DWORD_ADDR = 0x87,
    RES_WORD_ADDR = 0x88,
    RES_QWORD_ADDR = 0x8a,
};
enum { RES_IO_DECODE16 = 1, RES_MEM_WRITABLE = 1 };
/* address space descriptors: resource types, general flags, type-specific flags */
enum { RES_TYPE_MEMORY = 0, RES_TYPE_IO = 1, RES_TYPE_BUS = 2 };
enum { RES_PRODUCER = 0, RES_MIN_FIXED = 1 << 2, RES_MAX_FIXED = 1 << 3 };
enum { RES_IO_ENTIRE_RANGE = 3, RES_MEM_READ_WRITE = 1 /* non-cacheable */ };

static u8 *res_add(struct res *r, size_t n)
{
    if (n > RES_MAX - r->len)
        nestor_panic("resource template full");
    u8 *p = r->b + r->len;
    r->len += n;
    return p;
}

/* IO (Decode16, port, port, 1, len): a fixed range of len ports */
static void res_io(struct res *r, u16 port, u8 len)
{
    u8 *p = res_add(r, 8);
    p[0] = RES_IO;
    p[1] = RES_IO_DECODE16;
    put(p + 2, port, 2);
    put(p + 4, port, 2);
    p[6] = 1; /* alignment */
    p[7] = len;
}

/* Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) { gsi }: the extended
 * interrupt descriptor (ACPI 6.0 6.4.3.6) */
static void res_ext_irqs(struct res *r, const u32 *irqs, int n)
{
    u8 *p = res_add(r, 5 + 4 * (size_t)n);
    p[0] = 0x89;
    put(p + 1, 2 + 4 * (u64)n, 2);
    p[3] = 0x01 | 0x08; /* consumer, shared; level (bit 1 clear), active-high (bit 2 clear) */
    p[4] = (u8)n;
    for (int i = 0; i < n; i++)
        put(p + 5 + 4 * i, irqs[i], 4);
}

static void res_ext_irq(struct res *r, u32 gsi)
{
    res_ext_irqs(r, &gsi, 1);
}
/* where the first interrupt number of that descriptor is, for CreateDWordField */
#define RES_EXT_IRQ_NUMBER 5

/* IRQNoFlags () { irq }: an ISA interrupt, edge-triggered and active-high */
static void res_irq(struct res *r, int irq)
{
    u8 *p = res_add(r, 3);
    p[0] = RES_IRQ;
    put(p + 1, 1u << irq, 2);
}

static void res_mem32_fixed(struct res *r, u32 base, u32 len, bool writable)
{
    u8 *p = res_add(r, 12);
    p[0] = RES_MEM32_FIXED;
    put(p + 1, 9, 2);
    p[3] = writable ? RES_MEM_WRITABLE : 0;
    put(p + 4, base, 4);
    put(p + 8, len, 4);
}

/* A range the device produces for its children (a bridge window), of fixed size and
 * location [min, max]: WordBusNumber/WordIO, DWordMemory or QWordMemory by width. The
 * granularity is 0 as the fixed min/max combination requires (table 6-238). */
static void res_window(struct res *r, u8 type, u8 type_flags, u64 min, u64 max)
{
    static const struct { u8 tag; int width; } forms[] = {
        { RES_WORD_ADDR, 2 }, { RES_DWORD_ADDR, 4 }, { RES_QWORD_ADDR, 8 },
    };
    size_t f = max <= 0xffff ? 0 : max <= 0xffffffff ? 1 : 2;
    int w = forms[f].width;
    u8 *p = res_add(r, 6 + 5 * (size_t)w);
    p[0] = forms[f].tag;
    put(p + 1, 3 + 5 * (u64)w, 2);
    p[3] = type;
    p[4] = RES_PRODUCER | RES_MIN_FIXED | RES_MAX_FIXED; /* positive decode */
    p[5] = type_flags;
    u64 fields[5] = { 0, min, max, 0, max - min + 1 }; /* granularity, min, max, offset, length */
    for (int i = 0; i < 5; i++)
        put(p + 6 + i * w, fields[i], w);
}

/* The end tag, with the checksum that makes the template's bytes sum to zero. */
static void res_end(struct res *r)
{
    u8 *p = res_add(r, 2);
    p[0] = RES_END;
    p[1] = 0;
    p[1] = checksum(r->b, r->len);
}

/* Name (_CRS, ResourceTemplate () { ... }) */
static void aml_crs(struct aml *a, struct res *r)
{
    res_end(r);
    aml_name_decl(a, "_CRS");
    aml_buffer(a, r->b, r->len);
}

/* ---- DSDT ---- */

static bool io_owned(struct machine *m, u16 port)
{
    return bus_find(&m->io, port) != NULL;
}

/* Legacy ISA devices, present when a device owns their first port. */
static const struct isa_device {
    const char *name, *hid;
    int uid;                                /* -1: no _UID (one of a kind) */
    u16 owner_port;
    struct { u16 port; u8 len; } io[2];     /* len 0: unused */
    int irq;                                /* -1: none */
} isa_devices[] = {
    { "KBD", "PNP0303", -1, KBC_DATA_PORT, { { KBC_DATA_PORT, 1 }, { KBC_CMD_PORT, 1 } }, KBC_KBD_IRQ },
    /* the i8042's AUX port: nothing is attached, but the port and its IRQ exist */
    { "MOU", "PNP0F13", -1, KBC_DATA_PORT, { { 0, 0 } }, KBC_AUX_IRQ },
    { "RTC", "PNP0B00", -1, RTC_INDEX_PORT, { { RTC_INDEX_PORT, 2 } }, RTC_IRQ },
    { "COM1", "PNP0501", 1, COM1_PORT, { { COM1_PORT, 8 } }, COM1_IRQ },
};

/* I/O ports of the motherboard (PNP0C02) that no other device describes, so the OS
 * leaves them alone; present when a device owns the first port. */
static const struct { u16 port, len; } motherboard_io[] = {
    { PORT_A, 1 },                          /* fast A20 and fast reset */
    { DEBUGEXIT_PORT, 1 },
    { PIC_ELCR_PORT, 2 },
    { ACPI_PM1A_EVT_BLK, ACPI_PM_IO_LEN },  /* PM1 event/control, PM timer, GPE0 */
    { ACPI_RESET_PORT, 1 },
};

static void aml_device_ids(struct aml *a, const char *hid, int uid)
{
    aml_name_decl(a, "_HID");
    aml_eisa_id(a, hid);
    if (uid >= 0)
        aml_name_integer(a, "_UID", (u64)uid);
}

static void build_isa_device(struct aml *a, const struct isa_device *d)
{
    size_t dev = aml_device(a, d->name);
    aml_device_ids(a, d->hid, d->uid);
    struct res r = { .len = 0 };
    for (size_t i = 0; i < ARRAY_SIZE(d->io); i++)
        if (d->io[i].len)
            res_io(&r, d->io[i].port, d->io[i].len);
    if (d->irq >= 0)
        res_irq(&r, d->irq);
    aml_crs(a, &r);
    aml_close(a, dev);
}

/* RAM below 4G ends at the PCI hole, or earlier with less RAM. */
static u64 low_ram_end(const struct guest_mem *mem)
{
    u64 end = 0;
    for (int i = 0; i < mem->nregions; i++) {
        const struct mem_region *r = &mem->region[i];
        if (r->gpa < MEM_4G && r->gpa + r->size > end)
            end = r->gpa + r->size;
    }
    return end;
}

/* Memory windows over [lo, hi) minus the hole [hole_lo, hole_hi). */
static void res_memory_windows(struct res *r, u64 lo, u64 hi, u64 hole_lo, u64 hole_hi)
{
    u64 below_end = hole_lo < hi ? hole_lo : hi;
    u64 above_start = hole_hi > lo ? hole_hi : lo;
    if (lo < below_end)
        res_window(r, RES_TYPE_MEMORY, RES_MEM_READ_WRITE, lo, below_end - 1);
    if (above_start < hi)
        res_window(r, RES_TYPE_MEMORY, RES_MEM_READ_WRITE, above_start, hi - 1);
}

/* ---- PCI interrupt routing ----
 * The OS tells the DSDT its interrupt model through \_PIC (0: 8259 PIC, 1: I/O APIC),
 * recorded in \PICF; the host bridge's _PRT then gives INTA-INTD of each slot either
 * the links GSIA-GSID (APIC mode: I/O APIC inputs 16-19, fixed) or the links LNKA-LNKD
 * (PIC mode: an ISA IRQ chosen by the OS and programmed into the router registers
 * PIRQA-D_ROUT of the LPC bridge 00:1f.0, which the links read and write through a
 * PCI_Config operation region), as QEMU's q35 DSDT has it. Pin p of slot s is on
 * PIRQ (s + p) % 4 in both (pci_intx_pirq). */

/* The ISA IRQs a link may take in PIC mode: the ones no ISA device of this PC uses
 * (QEMU's choice too); firmware leaves 10 and 11 programmed. */
static const u32 link_isa_irqs[] = { 5, 10, 11 };

#define ROUTER_PATH "\\_SB.PCI0.LPC.PRQ" /* + A-D */
#define PIRQ_ROUT_DISABLE 0x80
#define PIRQ_ROUT_IRQ 0x0f

static size_t aml_method(struct aml *a, const char *name, int nargs, bool serialized)
{
    static const u8 op[] = { AML_METHOD };
    size_t s = aml_open(a, op, sizeof(op));
    aml_name(a, name);
    aml_byte(a, (u8)(nargs | (serialized ? 0x08 : 0)));
    return s;
}

/* If (predicate) { ... }: the predicate's bytes follow, then the body, then aml_close */
static size_t aml_if(struct aml *a)
{
    static const u8 op[] = { AML_IF };
    return aml_open(a, op, sizeof(op));
}

static void aml_router_field(struct aml *a, int n)
{
    char path[] = ROUTER_PATH "A";
    path[sizeof(path) - 2] = (char)('A' + n);
    aml_name(a, path);
}

/* The links GSIA-GSID: each wired to one I/O APIC input (pci_intx_gsi), level-triggered
 * and active-high; nothing to choose (_PRS = _CRS, _SRS accepts it). */
static void build_gsi_links(struct aml *a)
{
    for (int n = 0; n < PCI_INTX_LINKS; n++) {
        char name[5] = { 'G', 'S', 'I', (char)('A' + n), 0 };
        size_t dev = aml_device(a, name);
        aml_device_ids(a, "PNP0C0F", n);
        struct res r = { .len = 0 };
        res_ext_irq(&r, (u32)pci_intx_gsi(0, n));
        res_end(&r);
        aml_name_decl(a, "_PRS");
        aml_buffer(a, r.b, r.len);
        aml_name_decl(a, "_CRS");
        aml_buffer(a, r.b, r.len);
        aml_close(a, aml_method(a, "_SRS", 1, false));
        aml_close(a, dev);
    }
}

/* The links LNKA-LNKD over the router registers, with two helpers as QEMU has them:
 *   Method (IQST, 1) { If (And (Arg0, 0x80)) { Return (0x09) } Return (0x0B) }
 *     _STA: present and functioning, enabled unless the register's bit 7 disables it
 *   Method (IQCR, 1, Serialized) { Name (PRR0, ResourceTemplate () { Interrupt (...) {0} })
 *       CreateDWordField (PRR0, 5, PRRI)
 *       If (LLess (Arg0, 0x80)) { And (Arg0, 0x0F, PRRI) }  Return (PRR0) }
 *     _CRS: the routed IRQ, or none (0) while disabled
 * and in each link _PRS, _STA, _CRS, _DIS (sets bit 7) and _SRS (writes the IRQ of the
 * chosen descriptor, which clears bit 7). */
static void build_pic_links(struct aml *a)
{
    size_t m = aml_method(a, "IQST", 1, false);
    size_t i = aml_if(a);
    aml_byte(a, AML_AND), aml_byte(a, AML_ARG0), aml_integer(a, PIRQ_ROUT_DISABLE);
    aml_byte(a, AML_NULL_NAME);
    aml_byte(a, AML_RETURN), aml_integer(a, 0x09);
    aml_close(a, i);
    aml_byte(a, AML_RETURN), aml_integer(a, 0x0b);
    aml_close(a, m);

    m = aml_method(a, "IQCR", 1, true);
    struct res r = { .len = 0 };
    res_ext_irq(&r, 0);
    res_end(&r);
    aml_name_decl(a, "PRR0");
    aml_buffer(a, r.b, r.len);
    aml_byte(a, AML_CREATE_DWORD_FIELD), aml_name(a, "PRR0");
    aml_integer(a, RES_EXT_IRQ_NUMBER), aml_name(a, "PRRI");
    i = aml_if(a);
    aml_byte(a, AML_LLESS), aml_byte(a, AML_ARG0), aml_integer(a, PIRQ_ROUT_DISABLE);
    aml_byte(a, AML_AND), aml_byte(a, AML_ARG0), aml_integer(a, PIRQ_ROUT_IRQ);
    aml_name(a, "PRRI");
    aml_close(a, i);
    aml_byte(a, AML_RETURN), aml_name(a, "PRR0");
    aml_close(a, m);

    for (int n = 0; n < PCI_INTX_LINKS; n++) {
        char name[5] = { 'L', 'N', 'K', (char)('A' + n), 0 };
        size_t dev = aml_device(a, name);
        aml_device_ids(a, "PNP0C0F", n);
        struct res prs = { .len = 0 };
        res_ext_irqs(&prs, link_isa_irqs, (int)ARRAY_SIZE(link_isa_irqs));
        res_end(&prs);
        aml_name_decl(a, "_PRS");
        aml_buffer(a, prs.b, prs.len);
        /* Method (_STA) { Return (IQST (PRQn)) } */
        m = aml_method(a, "_STA", 0, false);
        aml_byte(a, AML_RETURN), aml_name(a, "IQST"), aml_router_field(a, n);
        aml_close(a, m);
        /* Method (_DIS) { Or (PRQn, 0x80, PRQn) } */
        m = aml_method(a, "_DIS", 0, false);
        aml_byte(a, AML_OR), aml_router_field(a, n), aml_integer(a, PIRQ_ROUT_DISABLE);
        aml_router_field(a, n);
        aml_close(a, m);
        /* Method (_CRS) { Return (IQCR (PRQn)) } */
        m = aml_method(a, "_CRS", 0, false);
        aml_byte(a, AML_RETURN), aml_name(a, "IQCR"), aml_router_field(a, n);
        aml_close(a, m);
        /* Method (_SRS, 1, Serialized) { CreateDWordField (Arg0, 5, PRRI)
         *                                Store (PRRI, PRQn) } */
        m = aml_method(a, "_SRS", 1, true);
        aml_byte(a, AML_CREATE_DWORD_FIELD), aml_byte(a, AML_ARG0);
        aml_integer(a, RES_EXT_IRQ_NUMBER), aml_name(a, "PRRI");
        aml_byte(a, AML_STORE), aml_name(a, "PRRI"), aml_router_field(a, n);
        aml_close(a, m);
        aml_close(a, dev);
    }
}

/* Name (name, Package () { Package () { slot << 16 | 0xffff, pin, link, 0 } ... }):
 * INTA-INTD of slots 1-31 to the links prefix A-D */
static void build_routing_table(struct aml *a, const char *name, const char *prefix)
{
    static const u8 package[] = { AML_PACKAGE };
    aml_name_decl(a, name);
    size_t outer = aml_open(a, package, sizeof(package));
    aml_byte(a, 31 * 4);
    for (int slot = 1; slot < 32; slot++) {
        for (int pin = 0; pin < 4; pin++) {
            char link[5] = { prefix[0], prefix[1], prefix[2],
                             (char)('A' + pci_intx_pirq(slot, pin)), 0 };
            size_t e = aml_open(a, package, sizeof(package));
            aml_byte(a, 4);
            aml_integer(a, (u64)slot << 16 | 0xffff);
            aml_integer(a, (u64)pin);
            aml_name(a, link);
            aml_integer(a, 0);
            aml_close(a, e);
        }
    }
    aml_close(a, outer);
}

static bool router_present(struct machine *m)
{
    return pci_config_read(m->pci, 0, PCI_DEVFN(PCI_LPC_SLOT, 0), 0, 2) == 0x8086;
}

/* In the host bridge: the tables, _PRT choosing one by \PICF, and the LPC bridge with
 * its router registers:
 *   Method (_PRT) { If (\PICF) { Return (PRTA) } Return (PRTP) }
 *   Device (LPC) { Name (_ADR, 0x001F0000)
 *       OperationRegion (PIRQ, PCI_Config, 0x60, 0x0C)
 *       Field (PIRQ, ByteAcc, NoLock, Preserve) { PRQA, 8, PRQB, 8, PRQC, 8, PRQD, 8 } }
 * Without the router there is only the APIC mode's table. */
static void build_pci_routing(struct machine *m, struct aml *a)
{
    if (!router_present(m)) {
        build_routing_table(a, "_PRT", "GSI");
        return;
    }
    build_routing_table(a, "PRTA", "GSI");
    build_routing_table(a, "PRTP", "LNK");
    size_t meth = aml_method(a, "_PRT", 0, false);
    size_t i = aml_if(a);
    aml_name(a, "\\PICF");
    aml_byte(a, AML_RETURN), aml_name(a, "PRTA");
    aml_close(a, i);
    aml_byte(a, AML_RETURN), aml_name(a, "PRTP");
    aml_close(a, meth);

    size_t dev = aml_device(a, "LPC");
    aml_name_integer(a, "_ADR", (u64)PCI_LPC_SLOT << 16);
    static const u8 region[] = { AML_EXT, AML_EXT_OP_REGION };
    aml_bytes(a, region, sizeof(region));
    aml_name(a, "PIRQ");
    aml_byte(a, AML_REGION_PCI_CONFIG);
    aml_integer(a, 0x60);
    aml_integer(a, PCI_INTX_LINKS);
    static const u8 field[] = { AML_EXT, AML_EXT_FIELD };
    size_t f = aml_open(a, field, sizeof(field));
    aml_name(a, "PIRQ");
    aml_byte(a, AML_FIELD_BYTE_ACC);
    for (int n = 0; n < PCI_INTX_LINKS; n++) {
        char name[5] = { 'P', 'R', 'Q', (char)('A' + n), 0 };
        aml_name(a, name);
        aml_byte(a, 8); /* bits */
    }
    aml_close(a, f);
    aml_close(a, dev);
}

/* The PCI host bridge: segment 0, buses 0-255 through ECAM. It consumes the
 * configuration ports 0xcf8-0xcff and passes the rest of the I/O space and the PCI hole
 * (less ECAM) on to PCI devices. */
static void build_pci_host_bridge(struct machine *m, struct aml *a)
{
    size_t dev = aml_device(a, "PCI0");
    aml_name_decl(a, "_HID");
    aml_eisa_id(a, "PNP0A08");
    aml_name_decl(a, "_CID");
    aml_eisa_id(a, "PNP0A03");
    aml_name_integer(a, "_SEG", 0);
    aml_name_integer(a, "_BBN", 0);
    aml_name_integer(a, "_UID", 0);
    struct res r = { .len = 0 };
    res_window(&r, RES_TYPE_BUS, 0, 0, PCI_ECAM_BUSES - 1);
    res_io(&r, PCI_CONFIG_ADDR_PORT, 8);
    res_window(&r, RES_TYPE_IO, RES_IO_ENTIRE_RANGE, 0, PCI_CONFIG_ADDR_PORT - 1);
    res_window(&r, RES_TYPE_IO, RES_IO_ENTIRE_RANGE, PCI_CONFIG_ADDR_PORT + 8, PCI_IO_END - 1);
    u64 start = low_ram_end(&m->mem);
    if (start < MEM_PCI_HOLE_START)
        start = MEM_PCI_HOLE_START;
    res_memory_windows(&r, start, PCI_MMIO_END, PCI_ECAM_BASE, PCI_ECAM_BASE + PCI_ECAM_SIZE);
    aml_crs(a, &r);
    build_pci_routing(m, a);
    aml_close(a, dev);
    build_gsi_links(a);
    if (router_present(m))
        build_pic_links(a);
}

static bool pci_present(struct machine *m)
{
    return bus_find(&m->mmio, PCI_ECAM_BASE) != NULL;
}

static void build_motherboard_resources(struct machine *m, struct aml *a)
{
    struct res r = { .len = 0 };
    bool pci = pci_present(m);
    if (pci)
        res_mem32_fixed(&r, (u32)PCI_ECAM_BASE, (u32)PCI_ECAM_SIZE, true);
    for (size_t i = 0; i < ARRAY_SIZE(motherboard_io); i++) {
        u16 port = motherboard_io[i].port;
        /* the host bridge already consumes 0xcf8-0xcff (the reset register 0xcf9) */
        if (pci && (unsigned)(port - PCI_CONFIG_ADDR_PORT) < 8u)
            continue;
        if (io_owned(m, port))
            res_io(&r, port, (u8)motherboard_io[i].len);
    }
    if (r.len == 0)
        return;
    size_t dev = aml_device(a, "SYSR");
    aml_device_ids(a, "PNP0C02", 0);
    aml_crs(a, &r);
    aml_close(a, dev);
}

static void build_hpet_device(struct machine *m, struct aml *a)
{
    const struct bus_range *hpet = bus_find(&m->mmio, HPET_MMIO_BASE);
    if (!hpet)
        return;
    size_t dev = aml_device(a, "HPET");
    aml_device_ids(a, "PNP0103", 0);
    struct res r = { .len = 0 };
    res_mem32_fixed(&r, (u32)hpet->start, (u32)hpet->len, false);
    aml_crs(a, &r);
    aml_close(a, dev);
}

/* QEMU's fw_cfg device: Linux's qemu_fw_cfg driver finds the ports through it. */
static void build_fwcfg_device(struct machine *m, struct aml *a)
{
    if (!io_owned(m, FWCFG_PORT))
        return;
    size_t dev = aml_device(a, "FWCF");
    aml_name_decl(a, "_HID");
    aml_string(a, "QEMU0002");
    aml_name_integer(a, "_STA", 0xb); /* present, enabled, functioning, not shown in UIs */
    struct res r = { .len = 0 };
    res_io(&r, FWCFG_PORT, FWCFG_PORTS);
    aml_crs(a, &r);
    aml_close(a, dev);
}

static void build_dsdt_body(struct machine *m, struct aml *a)
{
    /* \_S3 (suspend to RAM) and \_S5 (soft-off): the sleep type values written to
     * PM1a/b_CNT.SLP_TYP, when the PM control register is there to take them. */
    if (io_owned(m, ACPI_PM1A_CNT_BLK)) {
        static const u64 s3[4] = { ACPI_S3_SLP_TYP, ACPI_S3_SLP_TYP, 0, 0 };
        aml_name_decl(a, "\\_S3");
        aml_package_of_integers(a, s3, 4);
    }
    static const u64 s5[4] = { ACPI_S5_SLP_TYP, ACPI_S5_SLP_TYP, 0, 0 };
    aml_name_decl(a, "\\_S5");
    aml_package_of_integers(a, s5, 4);
    /* the OS's interrupt model (ACPI 6.0 5.8.1): Method (\_PIC, 1) { Store (Arg0, \PICF) },
     * 0 (the 8259) until the OS says otherwise */
    if (pci_present(m) && router_present(m)) {
        aml_name_integer(a, "\\PICF", 0);
        size_t pic = aml_method(a, "\\_PIC", 1, false);
        aml_byte(a, AML_STORE), aml_byte(a, AML_ARG0), aml_name(a, "\\PICF");
        aml_close(a, pic);
    }

    size_t sb = aml_scope(a, "\\_SB");
    if (pci_present(m))
        build_pci_host_bridge(m, a);
    for (size_t i = 0; i < ARRAY_SIZE(isa_devices); i++)
        if (io_owned(m, isa_devices[i].owner_port))
            build_isa_device(a, &isa_devices[i]);
    build_hpet_device(m, a);
    build_fwcfg_device(m, a);
    build_motherboard_resources(m, a);
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
    /* Flags 0: no S4BIOS_REQ, no 64-bit waking environment (64BIT_WAKE_SUPPORTED_F);
     * the firmware waking vectors are read on wake from S3 (machine_wake). */
    p[32] = 2; /* version */
    return off;
}

static size_t build_dsdt(struct machine *m, struct acpi_area *t)
{
    static struct aml a; /* 8 KiB: kept off the stack */
    a.len = 0;
    build_dsdt_body(m, &a);
    size_t off = area_alloc(t, SDT_HEADER_SIZE + a.len, 16);
    u8 *p = t->b + off;
    sdt_header(p, "DSDT", (u32)(SDT_HEADER_SIZE + a.len), DSDT_REVISION);
    memcpy(p + SDT_HEADER_SIZE, a.b, a.len);
    sdt_finish(p);
    return off;
}

/* Fixed-hardware register blocks: the 32-bit port field, its length byte and the X_
 * generic address, which says the same (address, and length in bits). */
static const struct fadt_block {
    u16 port;
    u8 len, access;
    u8 field, len_field, x_field;
} fadt_blocks[] = {
    /* the PM1 event block holds two 16-bit registers, status and enable */
    { ACPI_PM1A_EVT_BLK, ACPI_PM1_EVT_LEN, GAS_ACCESS_WORD,
      FADT_PM1A_EVT_BLK, FADT_PM1_EVT_LEN, FADT_X_PM1A_EVT_BLK },
    { ACPI_PM1A_CNT_BLK, ACPI_PM1_CNT_LEN, GAS_ACCESS_WORD,
      FADT_PM1A_CNT_BLK, FADT_PM1_CNT_LEN, FADT_X_PM1A_CNT_BLK },
    { ACPI_PM_TMR_BLK, ACPI_PM_TMR_LEN, GAS_ACCESS_DWORD,
      FADT_PM_TMR_BLK, FADT_PM_TMR_LEN, FADT_X_PM_TMR_BLK },
    /* GPE registers are byte-wide: status bytes, then enable bytes */
    { ACPI_GPE0_BLK, ACPI_GPE0_BLK_LEN, GAS_ACCESS_BYTE,
      FADT_GPE0_BLK, FADT_GPE0_BLK_LEN, FADT_X_GPE0_BLK },
};

/* Ports of the legacy devices whose presence sets IAPC_BOOT_ARCH.LEGACY_DEVICES. */
static const u16 legacy_device_ports[] = {
    PIC_MASTER_PORT, PIT_PORT, RTC_INDEX_PORT, KBC_DATA_PORT, COM1_PORT,
};

static int machine_cpus(const struct machine *m)
{
    int n = m->ncpus ? m->ncpus : m->cfg.ncpus;
    return n < 1 ? 1 : n > MACHINE_MAX_CPUS ? MACHINE_MAX_CPUS : n;
}

static size_t build_fadt(struct machine *m, struct acpi_area *t, size_t facs, size_t dsdt)
{
    size_t off = area_alloc(t, FADT_SIZE, 16);
    u8 *p = t->b + off;
    sdt_header(p, "FACP", FADT_SIZE, FADT_REVISION);
    put(p + FADT_FIRMWARE_CTRL, gpa_of(facs), 4);
    put(p + FADT_DSDT, gpa_of(dsdt), 4);
    p[FADT_PM_PROFILE] = 0; /* unspecified */
    put(p + FADT_SCI_INT, ACPI_SCI_IRQ, 2);
    /* SMI_CMD = 0: no SMM, the platform is always in ACPI mode. */
    put(p + FADT_SMI_CMD, 0, 4);
    for (size_t i = 0; i < ARRAY_SIZE(fadt_blocks); i++) {
        const struct fadt_block *b = &fadt_blocks[i];
        if (!io_owned(m, b->port))
            continue;
        put(p + b->field, b->port, 4);
        p[b->len_field] = b->len;
        gas_io(p + b->x_field, b->port, (u8)(b->len * 8), b->access);
    }
    put(p + FADT_P_LVL2_LAT, 101, 2);  /* > 100: no C2 */
    put(p + FADT_P_LVL3_LAT, 1001, 2); /* > 1000: no C3 */

    bool rtc = io_owned(m, RTC_INDEX_PORT);
    p[FADT_CENTURY] = rtc ? RTC_CENTURY_REG : 0;
    u16 boot = BOOT_VGA_NOT_PRESENT;
    if (!rtc)
        boot |= BOOT_CMOS_RTC_NOT_PRESENT;
    if (io_owned(m, KBC_DATA_PORT))
        boot |= BOOT_8042;
    for (size_t i = 0; i < ARRAY_SIZE(legacy_device_ports); i++)
        if (io_owned(m, legacy_device_ports[i]))
            boot |= BOOT_LEGACY_DEVICES;
    put(p + FADT_IAPC_BOOT_ARCH, boot, 2);

    /* RTC_STS/RTC_EN are in the PM1 event block (FIX_RTC clear) when it is there */
    u32 flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON;
    if (!io_owned(m, ACPI_PM1A_EVT_BLK))
        flags |= FADT_FIX_RTC;
    /* the power button is the fixed-feature one, PWRBTN_STS in the PM1 event block */
    if (!io_owned(m, ACPI_PM1A_EVT_BLK))
        flags |= FADT_PWR_BUTTON;
    if (io_owned(m, ACPI_PM_TMR_BLK))
        flags |= FADT_TMR_VAL_EXT;
    if (machine_cpus(m) > FLAT_LOGICAL_MAX_CPUS)
        flags |= FADT_APIC_PHYSICAL;
    if (io_owned(m, ACPI_RESET_PORT)) {
        flags |= FADT_RESET_REG_SUP;
        gas_io(p + FADT_RESET_REG, ACPI_RESET_PORT, 8, GAS_ACCESS_BYTE);
        p[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
    }
    put(p + FADT_FLAGS, flags, 4);
    p[FADT_MINOR_VERSION] = FADT_MINOR_REVISION;
    /* The FACS is below 4G: FIRMWARE_CTRL holds it, and X_FIRMWARE_CTRL must then be 0
     * (at most one of the two is set). The DSDT is in both fields, which agree. */
    put(p + FADT_X_FIRMWARE_CTRL, 0, 8);
    put(p + FADT_X_DSDT, gpa_of(dsdt), 8);
    memcpy(p + FADT_HYPERVISOR_VENDOR, "NESTOR\0\0", 8);
    sdt_finish(p);
    return off;
}

/* Interrupt source overrides: ISA IRQ 0 (PIT) is wired to GSI 2; the SCI is
 * level-triggered, active high. Flags 0: the ISA default, edge and active high. */
static const struct { u8 irq; u32 gsi; u16 flags; } madt_overrides[] = {
    { 0, 2, 0 },
    { ACPI_SCI_IRQ, ACPI_SCI_IRQ, MPS_ACTIVE_HIGH | MPS_LEVEL },
};

static size_t build_madt(struct machine *m, struct acpi_area *t)
{
    int ncpus = machine_cpus(m);
    bool ioapic = bus_find(&m->mmio, IOAPIC_MMIO_BASE) != NULL;
    size_t len = SDT_HEADER_SIZE + 8 + (size_t)ncpus * 8 + 6;
    if (ioapic)
        len += 12 + ARRAY_SIZE(madt_overrides) * 10;
    size_t off = area_alloc(t, len, 16);
    u8 *p = t->b + off, *e = p + SDT_HEADER_SIZE + 8;
    sdt_header(p, "APIC", (u32)len, MADT_REVISION);
    put(p + 36, LAPIC_DEFAULT_BASE, 4);
    /* PCAT_COMPAT: the 8259 pair is there, and the OS masks it to use the APICs. */
    put(p + 40, io_owned(m, PIC_MASTER_PORT) ? MADT_PCAT_COMPAT : 0, 4);
    /* Processor local APICs; APIC ID = processor UID = CPU index. */
    for (int i = 0; i < ncpus; i++, e += 8) {
        e[0] = MADT_LAPIC;
        e[1] = 8;
        e[2] = (u8)i;
        e[3] = (u8)i;
        put(e + 4, 1, 4); /* enabled */
    }
    if (ioapic) {
        /* IOAPIC_ID is 0 like CPU 0's APIC ID: with xAPICs, interrupt messages travel
         * on the system bus, where I/O APIC IDs are not LAPIC IDs (QEMU does the same). */
        e[0] = MADT_IOAPIC;
        e[1] = 12;
        e[2] = IOAPIC_ID;
        e[3] = 0;
        put(e + 4, IOAPIC_MMIO_BASE, 4);
        put(e + 8, IOAPIC_GSI_BASE, 4);
        e += 12;
        for (size_t i = 0; i < ARRAY_SIZE(madt_overrides); i++, e += 10) {
            e[0] = MADT_ISO;
            e[1] = 10;
            e[2] = 0; /* ISA */
            e[3] = madt_overrides[i].irq;
            put(e + 4, madt_overrides[i].gsi, 4);
            put(e + 8, madt_overrides[i].flags, 2);
        }
    }
    /* LINT1 of every processor is the NMI input (flags 0: conforming to the bus). */
    e[0] = MADT_LAPIC_NMI;
    e[1] = 6;
    e[2] = MADT_ALL_PROCESSORS;
    put(e + 3, 0, 2);
    e[5] = 1;
    sdt_finish(p);
    return off;
}

/* The HPET's table comes from the HPET model; 0 when there is no HPET. */
static size_t build_hpet(struct machine *m, struct acpi_area *t)
{
    if (!bus_find(&m->mmio, HPET_MMIO_BASE))
        return 0;
    size_t len = 0;
    hpet_acpi_table(NULL, &len); /* no room: asks for the length */
    size_t off = area_alloc(t, len, 16);
    hpet_acpi_table(t->b + off, &len);
    return off;
}

/* MCFG (PCI Firmware 3.2 section 4.1.2): one ECAM area, segment 0, buses 0-255. */
static size_t build_mcfg(struct machine *m, struct acpi_area *t)
{
    if (!pci_present(m))
        return 0;
    size_t len = SDT_HEADER_SIZE + 8 + 16;
    size_t off = area_alloc(t, len, 16);
    u8 *p = t->b + off;
    sdt_header(p, "MCFG", (u32)len, MCFG_REVISION);
    u8 *e = p + SDT_HEADER_SIZE + 8;
    put(e, PCI_ECAM_BASE, 8);
    put(e + 8, 0, 2);                   /* PCI segment group */
    e[10] = 0;                          /* start bus */
    e[11] = (u8)(PCI_ECAM_BUSES - 1);   /* end bus */
    sdt_finish(p);
    return off;
}

/* SRAT (ACPI 6.5 section 5.2.16), with an EPC only, as QEMU builds it for one: every
 * processor and all memory in proximity domain 0, the EPC sections included, so that the
 * kernel finds the node its EPC belongs to. */
static size_t build_srat(struct machine *m, struct acpi_area *t)
{
    if (!m->sgx_epc)
        return 0;
    int ncpus = machine_cpus(m);
    int nmem = m->mem.nregions + m->model.nepc;
    size_t len = SDT_HEADER_SIZE + 12 + (size_t)ncpus * 16 + (size_t)nmem * 40;
    size_t off = area_alloc(t, len, 16);
    u8 *p = t->b + off, *e = p + SDT_HEADER_SIZE + 12;
    sdt_header(p, "SRAT", (u32)len, 3);
    put(p + SDT_HEADER_SIZE, 1, 4); /* reserved, 1 for compatibility */
    for (int i = 0; i < ncpus; i++, e += 16) {
        e[0] = 0;                       /* processor local APIC affinity */
        e[1] = 16;
        e[2] = 0;                       /* proximity domain 0 */
        e[3] = (u8)i;                   /* APIC ID */
        put(e + 4, 1, 4);               /* enabled */
    }
    for (int k = 0; k < nmem; k++, e += 40) {
        bool epc = k >= m->mem.nregions;
        u64 base = epc ? m->model.epc[k - m->mem.nregions].base : m->mem.region[k].gpa;
        u64 size = epc ? m->model.epc[k - m->mem.nregions].size : m->mem.region[k].size;
        e[0] = 1;                       /* memory affinity */
        e[1] = 40;
        put(e + 2, 0, 4);               /* proximity domain 0 */
        put(e + 8, base, 8);
        put(e + 16, size, 8);
        put(e + 28, 1, 4);              /* enabled */
    }
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

/* MMIO ranges reserved in e820 when a device owns them, as whole pages. */
static const u64 reserved_mmio[] = { PCI_ECAM_BASE, IOAPIC_MMIO_BASE, HPET_MMIO_BASE };

static void reserve_page_range(struct machine *m, u64 start, u64 len)
{
    u64 first = start & ~(PAGE_SIZE - 1);
    u64 end = (start + len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    mem_e820_mark(&m->mem, first, end - first, E820_RESERVED);
}

u64 acpi_build(struct machine *m)
{
    static struct acpi_area t; /* 64 KiB: kept off the stack */
    memset(&t, 0, sizeof(t));
    /* The RSDP first: OSes scan the BIOS area on 16-byte boundaries. */
    size_t rsdp = area_alloc(&t, RSDP_SIZE, 16);
    size_t facs = build_facs(&t);
    m->acpi_facs = gpa_of(facs);
    size_t dsdt = build_dsdt(m, &t);
    size_t tables[5];
    int n = 0;
    tables[n++] = build_fadt(m, &t, facs, dsdt);
    tables[n++] = build_madt(m, &t);
    size_t optional[] = { build_hpet(m, &t), build_mcfg(m, &t), build_srat(m, &t) };
    for (size_t i = 0; i < ARRAY_SIZE(optional); i++)
        if (optional[i]) /* offset 0 is the RSDP's: 0 means absent */
            tables[n++] = optional[i];
    size_t rsdt = build_rsdt(&t, tables, n, false);
    size_t xsdt = build_rsdt(&t, tables, n, true);
    build_rsdp(&t, rsdp, rsdt, xsdt);

    if (mem_write(&m->mem, ACPI_AREA_BASE, t.b, t.len) < 0)
        nestor_panic("the BIOS area at %#llx is not RAM", (unsigned long long)ACPI_AREA_BASE);
    reserve_page_range(m, ACPI_AREA_BASE, t.len);
    for (size_t i = 0; i < ARRAY_SIZE(reserved_mmio); i++) {
        const struct bus_range *r = bus_find(&m->mmio, reserved_mmio[i]);
        if (r)
            reserve_page_range(m, r->start, r->len);
    }
    reserve_page_range(m, LAPIC_DEFAULT_BASE, PAGE_SIZE); /* the MADT's LAPIC address */
    return ACPI_AREA_BASE + rsdp;
}

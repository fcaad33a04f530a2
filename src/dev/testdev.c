/* QEMU's test devices, as x86 test kernels (kvm-unit-tests) use them.
 *
 * pc-testdev (QEMU's hw/misc/pc-testdev.c), an ISA device:
 *   ports 0xe0-0xe3   a 32-bit data register: an access of any size at port 0xe0+n reads
 *                     or writes its bytes from n on (bytes beyond 0xe3 are not its own)
 *   ports 0xe4-0xe7   flush page: a 32-bit write of a physical address drops what the VMM
 *                     cached of that page (QEMU unmaps it from the host so that KVM faults
 *                     on it again; nestor forgets the instructions it decoded from it)
 *   ports 0xe8-0xeb   the data register again, accessed a byte at a time (QEMU splits
 *                     wider accesses there; the bytes that reach the register are the same)
 *   ports 0x2000-0x2017  interrupt lines: a byte write of v to 0x2000+n drives line n
 *                     (ISA IRQ 0-15, I/O APIC inputs 16-23, where QEMU asserts that the
 *                     line is an ISA one and aborts) to v != 0; other sizes are ignored,
 *                     as QEMU accepts only byte accesses there
 *   MMIO 0xff000000   64 KiB of plain memory behind the MMIO path, so that test kernels can
 *                     run any instruction on memory that is not RAM
 * pci-testdev (QEMU's hw/misc/pci-testdev.c), Red Hat 1b36:0005, class 00ff:
 *   BAR0 4 KiB of memory, BAR1 256 I/O ports, with the same register file: a table of six
 *   tests (mmio/portio x no-eventfd/wildcard-eventfd/datamatch-eventfd). A byte write of t
 *   to offset 0 selects test t of the BAR's kind (t >= 3: none) and zeroes its count;
 *   reads return the selected test's header (test, width, offset, data, count, name);
 *   a write to the test's offset counts when the data matches (any data for wildcard).
 *   Both BARs work a byte at a time, as QEMU's do. nestor has no ioeventfd: every
 *   matching write is counted, which is also what kvm-unit-tests accepts from QEMU.
 * Guest accesses of any size and value are safe: nothing outside the devices' own state
 * is touched. */
#include "dev/dev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "machine/machine.h"

/* ---------------------------------------------------------------- pc-testdev */
#define PC_TESTDEV_DATA_PORT 0xe0
#define PC_TESTDEV_FLUSH_PORT 0xe4
#define PC_TESTDEV_BYTE_PORT 0xe8
#define PC_TESTDEV_IRQ_PORT 0x2000
#define PC_TESTDEV_IRQ_LINES 24
#define PC_TESTDEV_IOMEM_SIZE 0x10000

struct pc_testdev {
    struct machine *m;
    u8 data[4];
    u8 iomem[PC_TESTDEV_IOMEM_SIZE];
};

/* Bytes of an access at `offset` into a register file of `len` bytes: those inside it
 * move, the others read as an unowned bus does (all ones) and are not written. */
static u64 bytes_read(const u8 *reg, u64 len, u64 offset, unsigned size)
{
    u64 v = 0;
    for (unsigned i = 0; i < size && i < 8; i++)
        v |= (u64)(offset + i < len ? reg[offset + i] : 0xff) << (8 * i);
    return v;
}

static void bytes_write(u8 *reg, u64 len, u64 offset, unsigned size, u64 value)
{
    for (unsigned i = 0; i < size && i < 8; i++)
        if (offset + i < len)
            reg[offset + i] = (u8)(value >> (8 * i));
}

static u64 data_read(void *opaque, u64 offset, unsigned size)
{
    struct pc_testdev *t = opaque;
    return bytes_read(t->data, sizeof t->data, offset, size);
}

static void data_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct pc_testdev *t = opaque;
    bytes_write(t->data, sizeof t->data, offset, size, value);
}

static u64 write_only_read(void *opaque, u64 offset, unsigned size)
{
    (void)opaque, (void)offset;
    return size >= 8 ? ~0ull : MASK(size * 8);
}

static void flush_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct pc_testdev *t = opaque;
    if (offset != 0 || size != 4)
        return;
    u32 *gen = mem_page_gen(&t->m->mem, (u32)value & ~0xfffu);
    if (gen)
        mem_code_write(gen);
}

static void irq_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct pc_testdev *t = opaque;
    if (size == 1 && offset < PC_TESTDEV_IRQ_LINES)
        machine_set_irq(t->m, (int)offset, (value & 0xff) != 0);
}

static u64 iomem_read(void *opaque, u64 offset, unsigned size)
{
    struct pc_testdev *t = opaque;
    return bytes_read(t->iomem, sizeof t->iomem, offset, size);
}

static void iomem_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct pc_testdev *t = opaque;
    bytes_write(t->iomem, sizeof t->iomem, offset, size, value);
}

struct pc_testdev *pc_testdev_create(struct machine *m)
{
    struct pc_testdev *t = calloc(1, sizeof *t);
    if (!t)
        nestor_panic("out of memory");
    t->m = m;
    bus_register(&m->io, PC_TESTDEV_DATA_PORT, 4, data_read, data_write, t, "pc-testdev-ioport");
    bus_register(&m->io, PC_TESTDEV_FLUSH_PORT, 4, write_only_read, flush_write, t,
                 "pc-testdev-flush-page");
    bus_register(&m->io, PC_TESTDEV_BYTE_PORT, 4, data_read, data_write, t,
                 "pc-testdev-ioport-byte");
    bus_register(&m->io, PC_TESTDEV_IRQ_PORT, PC_TESTDEV_IRQ_LINES, write_only_read, irq_write, t,
                 "pc-testdev-irq-line");
    bus_register(&m->mmio, PC_TESTDEV_IOMEM_BASE, PC_TESTDEV_IOMEM_SIZE, iomem_read, iomem_write,
                 t, "pc-testdev-iomem");
    return t;
}

void pc_testdev_destroy(struct pc_testdev *t)
{
    free(t);
}

/* ---------------------------------------------------------------- pci-testdev */
#define IOTEST_KINDS 3      /* no-eventfd, wildcard-eventfd, datamatch-eventfd */
#define IOTEST_TYPES 2      /* mmio (BAR0), portio (BAR1) */
#define IOTEST_COUNT (IOTEST_KINDS * IOTEST_TYPES)
#define IOTEST_MEMSIZE 2048 /* the doorbells of the mmio tests start here in BAR0 */
#define IOTEST_IOSIZE 128   /* and those of the portio tests here in BAR1 */
#define IOTEST_DATAMATCH 0xfa
#define IOTEST_NOMATCH 0xce
#define IOTEST_NAME_MAX 32 /* "portio-datamatch-eventfd" and its NUL fit */

/* The header the guest reads, byte by byte. */
enum {
    HDR_TEST = 0, HDR_WIDTH = 1, HDR_OFFSET = 4, HDR_DATA = 8, HDR_COUNT = 12, HDR_NAME = 16,
    HDR_SIZE = HDR_NAME + IOTEST_NAME_MAX,
};

struct iotest {
    u8 hdr[HDR_SIZE];
    unsigned len;    /* header and name with its NUL */
    bool match_data; /* only writes of hdr[HDR_DATA] count */
};

struct pci_testdev {
    struct pci_device *pci;
    struct iotest test[IOTEST_COUNT];
    int current; /* -1: none selected */
};

static const char *const iotest_kind[IOTEST_KINDS] = { "no-eventfd", "wildcard-eventfd",
                                                       "datamatch-eventfd" };
static const char *const iotest_type[IOTEST_TYPES] = { "mmio", "portio" };

static void put32le(u8 *p, u32 v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (u8)(v >> (8 * i));
}

static u32 get32le(const u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }

static void iotest_byte_write(struct pci_testdev *d, int type, u64 addr, u8 v)
{
    if (addr == HDR_TEST) {
        d->current = -1;
        if (v >= IOTEST_KINDS)
            return;
        d->current = type * IOTEST_KINDS + v;
        put32le(d->test[d->current].hdr + HDR_COUNT, 0);
        return;
    }
    if (d->current < 0)
        return;
    struct iotest *t = &d->test[d->current];
    if (addr != get32le(t->hdr + HDR_OFFSET) || (t->match_data && v != t->hdr[HDR_DATA]))
        return;
    put32le(t->hdr + HDR_COUNT, get32le(t->hdr + HDR_COUNT) + 1);
}

static u8 iotest_byte_read(struct pci_testdev *d, u64 addr)
{
    if (d->current < 0)
        return 0;
    const struct iotest *t = &d->test[d->current];
    /* as QEMU: the last byte (the name's NUL) and what lies beyond read as 0 */
    return addr + 1 < t->len ? t->hdr[addr] : 0;
}

static u64 iotest_read(void *opaque, u64 offset, unsigned size)
{
    u64 v = 0;
    for (unsigned i = 0; i < size && i < 8; i++)
        v |= (u64)iotest_byte_read(opaque, offset + i) << (8 * i);
    return v;
}

static void iotest_write(void *opaque, u64 offset, unsigned size, u64 value, int type)
{
    for (unsigned i = 0; i < size && i < 8; i++)
        iotest_byte_write(opaque, type, offset + i, (u8)(value >> (8 * i)));
}

static void iotest_mmio_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    iotest_write(opaque, offset, size, value, 0);
}

static void iotest_pio_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    iotest_write(opaque, offset, size, value, 1);
}

struct pci_testdev *pci_testdev_create(struct machine *m, int slot)
{
    struct pci_testdev *d = calloc(1, sizeof *d);
    if (!d)
        nestor_panic("out of memory");
    d->current = -1;
    for (int i = 0; i < IOTEST_COUNT; i++) {
        struct iotest *t = &d->test[i];
        int kind = i % IOTEST_KINDS, type = i / IOTEST_KINDS;
        int n = snprintf((char *)t->hdr + HDR_NAME, IOTEST_NAME_MAX, "%s-%s", iotest_type[type],
                         iotest_kind[kind]);
        t->len = HDR_NAME + (unsigned)n + 1;
        t->match_data = kind != 1; /* all but the wildcard */
        t->hdr[HDR_TEST] = (u8)i;
        t->hdr[HDR_WIDTH] = 1;
        put32le(t->hdr + HDR_OFFSET, (u32)((type ? IOTEST_IOSIZE : IOTEST_MEMSIZE) + i));
        t->hdr[HDR_DATA] = t->match_data ? IOTEST_DATAMATCH : IOTEST_NOMATCH;
    }
    struct pci_device *p = pci_register_device(m->pci, PCI_DEVFN(slot, 0), NULL, d);
    if (!p)
        nestor_panic("pci-testdev: slot %d taken", slot);
    d->pci = p;
    static const u8 ids[] = { 0x36, 0x1b, 0x05, 0x00 }; /* Red Hat, QEMU PCI test device */
    memcpy(p->config, ids, sizeof ids);
    p->config[0x08] = 0x00; /* revision */
    p->config[0x0a] = 0xff; /* class 00ff: unclassified, "other" */
    p->config[0x0b] = 0x00;
    p->config[0x2c] = 0xf4; /* subsystem: QEMU's defaults, 1af4:1100 */
    p->config[0x2d] = 0x1a;
    p->config[0x2e] = 0x00;
    p->config[0x2f] = 0x11;
    /* command: I/O, memory, bus master, parity, SERR, INTx disable; status W1C bits */
    p->wmask[0x04] = 0x47;
    p->wmask[0x05] = 0x05;
    p->w1cmask[0x07] = 0xf9;
    p->wmask[0x0c] = 0xff; /* cache line size */
    p->wmask[0x0d] = 0xff; /* latency timer */
    p->wmask[0x3c] = 0xff; /* interrupt line; pin 0: none */
    pci_device_add_bar(p, 0, PCI_BAR_MEM32, IOTEST_MEMSIZE * 2, iotest_read, iotest_mmio_write, d,
                       "pci-testdev-mmio");
    pci_device_add_bar(p, 1, PCI_BAR_IO, IOTEST_IOSIZE * 2, iotest_read, iotest_pio_write, d,
                       "pci-testdev-portio");
    return d;
}

void pci_testdev_destroy(struct pci_testdev *d)
{
    free(d);
}

/* ---- state ---- */
static const struct state_field pc_testdev_fields[] = {
    STATE_NOT_STATE(struct pc_testdev, m), STATE_FIELD(struct pc_testdev, data),
    STATE_FIELD(struct pc_testdev, iomem),
};
static const struct state_desc pc_testdev_state_desc =
    STATE_DESC("pc-testdev", 1, struct pc_testdev, pc_testdev_fields);

void pc_testdev_state_register(struct pc_testdev *d, struct state_registry *r)
{
    state_register(r, &pc_testdev_state_desc, 0, d);
}

static const struct state_field iotest_fields[] = {
    STATE_FIELD(struct iotest, hdr), STATE_FIELD(struct iotest, len),
    STATE_FIELD(struct iotest, match_data),
};
static const struct state_desc iotest_desc = STATE_DESC("iotest", 1, struct iotest, iotest_fields);
static const struct state_field pci_testdev_fields[] = {
    STATE_NOT_STATE(struct pci_testdev, pci), STATE_STRUCT(struct pci_testdev, test, iotest_desc),
    STATE_FIELD(struct pci_testdev, current),
};

static int pci_testdev_post_load(void *obj, char *err, size_t errlen)
{
    struct pci_testdev *d = obj;
    if (d->current < -1 || d->current >= IOTEST_COUNT) {
        return nestor_err(err, errlen, "test %d selected", d->current);
    }
    for (int i = 0; i < IOTEST_COUNT; i++)
        if (d->test[i].len > HDR_SIZE) {
            return nestor_err(err, errlen, "test %d is longer than its header", i);
        }
    return 0;
}

static const struct state_desc pci_testdev_state_desc =
    STATE_DESC("pci-testdev", 1, struct pci_testdev, pci_testdev_fields,
               .post_load = pci_testdev_post_load);

void pci_testdev_state_register(struct pci_testdev *d, struct state_registry *r)
{
    state_register(r, &pci_testdev_state_desc, 0, d);
}

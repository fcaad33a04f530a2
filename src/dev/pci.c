/* PCI host bridge (PCI Local Bus 3.0 chapter 3.2.2.3.2 "configuration mechanism #1";
 * PCI Express Base chapter 7.2.2 "ECAM").
 *
 * Bus 0 only (there are no bridges), with the Q35 MCH's identity at 00.0. Config space
 * is an array per function with a mask of guest-writable bits and a mask of
 * write-1-to-clear bits, so read-only fields stay as the device defined them; a device
 * with side effects (BARs, command register) gets a callback after each write.
 *
 * Port 0xcf8 is the address register for 32-bit accesses only; narrower accesses to
 * 0xcf8-0xcfb are ordinary I/O (0xcf9 is the reset control register, see acpi_pm.c). */
#include "dev/platform.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "machine/machine.h"

#define ADDR_ENABLE BIT(31)
#define ADDR_MASK 0x80fffffcu /* enable, bus, device, function, dword register */

struct pci_bus {
    struct machine *m;
    u32 addr; /* 0xcf8 */
    struct pci_device *dev[256];
    u64 next_io, next_mem; /* firmware's BAR assignment */
    /* PCI INTx wires: the asserted pins (bit n = INTA + n) of each function, and how
     * many asserted pins drive each PIRQ (they are wired-OR, as open-drain lines are) */
    u8 intx[256];
    u8 pirq_drivers[PCI_INTX_LINKS];
    struct pci_device *lpc; /* the interrupt router, 00:1f.0 */
};

static void put16(u8 *p, u16 v) { p[0] = (u8)v; p[1] = (u8)(v >> 8); }
static void put32(u8 *p, u32 v) { put16(p, (u16)v); put16(p + 2, (u16)(v >> 16)); }

static struct pci_device *find(struct pci_bus *b, u8 bus, u8 devfn)
{
    return bus == 0 ? b->dev[devfn] : NULL;
}

u32 pci_config_read(struct pci_bus *b, u8 bus, u8 devfn, u16 offset, unsigned size)
{
    struct pci_device *d = find(b, bus, devfn);
    u32 v = 0;
    for (unsigned i = 0; i < size && i < 4; i++) {
        unsigned off = offset + i;
        u8 byte = d && off < PCI_CONFIG_SIZE ? d->config[off] : 0xff;
        v |= (u32)byte << (8 * i);
    }
    return v;
}

#define PCI_COMMAND 0x04
#define PCI_COMMAND_IO BIT(0)
#define PCI_COMMAND_MEMORY BIT(1)
#define PCI_BAR0 0x10

/* Registers each BAR's range where config space puts it now: decoding enabled in the
 * command register, an address other than 0, and the range within the address space
 * (64 KiB of I/O ports, 4 GiB for a 32-bit memory BAR); else nowhere. */
static void pci_update_bars(struct pci_device *d)
{
    struct machine *m = d->bus->m;
    u16 cmd = (u16)(d->config[PCI_COMMAND] | d->config[PCI_COMMAND + 1] << 8);
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        struct pci_bar *bar = &d->bar[i];
        if (bar->kind == PCI_BAR_NONE)
            continue;
        bool io = bar->kind == PCI_BAR_IO;
        const u8 *r = d->config + PCI_BAR0 + 4 * i;
        u64 addr = (u32)(r[0] | r[1] << 8 | r[2] << 16 | (u32)r[3] << 24) & (io ? ~3u : ~15u);
        u64 limit = io ? 0x10000 : 0x100000000ull;
        bool on = (cmd & (io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) && addr != 0 &&
                  addr + bar->size <= limit;
        u64 want = on ? addr : 0;
        if (want == bar->mapped)
            continue;
        struct bus *bus = io ? &m->io : &m->mmio;
        if (bar->mapped)
            bus_unregister(bus, bar->mapped, bar->opaque);
        if (want)
            bus_register_overlay(bus, want, bar->size, bar->read, bar->write, bar->opaque,
                                 bar->name);
        bar->mapped = want;
    }
}

void pci_config_write(struct pci_bus *b, u8 bus, u8 devfn, u16 offset, unsigned size, u32 value)
{
    struct pci_device *d = find(b, bus, devfn);
    if (!d || offset >= PCI_CONFIG_SIZE)
        return;
    unsigned n = 0;
    for (unsigned i = 0; i < size && i < 4 && offset + i < PCI_CONFIG_SIZE; i++, n++) {
        unsigned off = offset + i;
        u8 v = (u8)(value >> (8 * i));
        u8 keep = (u8)~(d->wmask[off] | d->w1cmask[off]);
        d->config[off] = (u8)((d->config[off] & keep) | (v & d->wmask[off]) |
                              (d->config[off] & d->w1cmask[off] & ~v));
    }
    /* the command register (decode enables) or a BAR changed: decode where it says */
    if (n && offset < 0x28 && offset + n > 0x04)
        pci_update_bars(d);
    if (d->ops && d->ops->config_written)
        d->ops->config_written(d, offset, n);
}

struct pci_device *pci_register_device(struct pci_bus *b, u8 devfn,
                                       const struct pci_device_ops *ops, void *opaque)
{
    if (b->dev[devfn])
        return NULL;
    struct pci_device *d = calloc(1, sizeof(*d));
    if (!d)
        nestor_panic("out of memory");
    d->devfn = devfn;
    d->ops = ops;
    d->opaque = opaque;
    d->bus = b;
    b->dev[devfn] = d;
    return d;
}

int pci_intx_gsi(int slot, int pin)
{
    return 16 + pci_intx_pirq(slot, pin);
}

int pci_intx_pirq(int slot, int pin)
{
    return (slot + pin) % PCI_INTX_LINKS;
}

/* ---- the PCI interrupt router: PIRQA-D to the I/O APIC and the 8259 ----
 * The ICH9 datasheet's LPC registers PIRQ[A-D]_ROUT (0x60-0x63) and PIRQ[E-H]_ROUT
 * (0x68-0x6b): bit 7 IRQEN (1: the PIRQ is not routed to the 8259), bits 3:0 the ISA
 * IRQ, of which 3-7, 9-12, 14 and 15 are valid (the others are reserved: not routed);
 * bits 6:4 are reserved and read 0. The I/O APIC has PIRQA-H on its inputs 16-23
 * whatever the routing. No function's INTx reaches PIRQE-H here (the HPET has I/O APIC
 * inputs 20-23), so their registers only hold what the guest writes. */
#define PIRQ_ROUT_A 0x60    /* PIRQA-D_ROUT */
#define PIRQ_ROUT_E 0x68    /* PIRQE-H_ROUT */
#define PIRQ_ROUT_DISABLE 0x80
#define PIRQ_ROUT_IRQ 0x0f
#define PIRQ_ROUT_WMASK 0x8f
#define PIRQ_ISA_IRQS 0xdef8u /* IRQ 3-7, 9-12, 14, 15 */

/* The ISA IRQ the router gives PIRQ n, or -1 when it is not routed to the 8259. */
static int pirq_isa_irq(const struct pci_bus *b, int n)
{
    if (!b->lpc)
        return -1;
    u8 rout = b->lpc->config[PIRQ_ROUT_A + n];
    int irq = rout & PIRQ_ROUT_IRQ;
    return !(rout & PIRQ_ROUT_DISABLE) && (PIRQ_ISA_IRQS & (1u << irq)) ? irq : -1;
}

/* Drives the interrupt controllers' inputs from the PIRQs: I/O APIC input 16 + n while
 * PIRQ n is asserted, and the 8259 input its router register selects. */
static void update_lines(struct pci_bus *b)
{
    u32 gsis = 0;
    u16 isa_irqs = 0;
    for (int n = 0; n < PCI_INTX_LINKS; n++) {
        if (!b->pirq_drivers[n])
            continue;
        gsis |= 1u << (16 + n);
        int irq = pirq_isa_irq(b, n);
        if (irq >= 0)
            isa_irqs |= (u16)(1u << irq);
    }
    machine_set_pci_lines(b->m, gsis, isa_irqs);
}

void pci_set_intx(struct pci_bus *b, u8 devfn, int pin, bool level)
{
    u8 bit = (u8)(1u << (pin & 3));
    if (!!(b->intx[devfn] & bit) == level)
        return;
    b->intx[devfn] ^= bit;
    int n = pci_intx_pirq(devfn >> 3, pin & 3);
    b->pirq_drivers[n] = (u8)(b->pirq_drivers[n] + (level ? 1 : -1));
    update_lines(b);
}

static void lpc_config_written(struct pci_device *d, u16 offset, unsigned size)
{
    if (offset < PIRQ_ROUT_A + PCI_INTX_LINKS && offset + size > PIRQ_ROUT_A)
        update_lines(d->bus);
}

static const struct pci_device_ops lpc_ops = { lpc_config_written };

/* 00:1f.0: the ICH9 LPC bridge (as on QEMU's q35) with its PCI interrupt router, at
 * the power-on values; firmware programs it (pci_firmware_irq_setup). It decodes no
 * other register: the ACPI PM block, the HPET and the legacy devices sit at fixed
 * addresses and no base register moves them. */
static void add_lpc_bridge(struct pci_bus *b)
{
    struct pci_device *d = pci_register_device(b, PCI_DEVFN(PCI_LPC_SLOT, 0), &lpc_ops, NULL);
    put16(d->config + 0x00, 0x8086);      /* vendor: Intel */
    put16(d->config + 0x02, 0x2918);      /* device: 82801IB (ICH9) LPC interface */
    put16(d->config + 0x04, 0x0007);      /* command: I/O, memory, bus master (hardwired) */
    put16(d->config + 0x06, 0x0200);      /* status: medium DEVSEL timing */
    put32(d->config + 0x08, 0x06010002);  /* class: ISA bridge; revision 2 */
    d->config[0x0e] = 0x00;               /* header type 0, single function */
    put16(d->config + 0x2c, 0x8086);      /* subsystem vendor */
    put16(d->config + 0x2e, 0x2918);      /* subsystem */
    put16(d->w1cmask + 0x06, 0xf900);     /* status: parity, aborts, SERR */
    for (int n = 0; n < 4; n++) {
        d->config[PIRQ_ROUT_A + n] = d->config[PIRQ_ROUT_E + n] = PIRQ_ROUT_DISABLE;
        d->wmask[PIRQ_ROUT_A + n] = d->wmask[PIRQ_ROUT_E + n] = PIRQ_ROUT_WMASK;
    }
    b->lpc = d;
}

/* What SeaBIOS does for a q35 machine (mch_isa_bridge_setup, pci_bios_init_device):
 * PIRQA-H to ISA IRQs 10, 10, 11, 11 (twice), those IRQs level-triggered, and each
 * function with an interrupt pin told its IRQ in the Interrupt Line register. */
u16 pci_firmware_irq_setup(struct pci_bus *b)
{
    static const u8 pci_irqs[PCI_INTX_LINKS] = { 10, 10, 11, 11 };
    u16 level = 0;
    for (int n = 0; n < 4; n++) {
        u8 irq = pci_irqs[n % PCI_INTX_LINKS];
        pci_config_write(b, 0, PCI_DEVFN(PCI_LPC_SLOT, 0), (u16)(PIRQ_ROUT_A + n), 1, irq);
        pci_config_write(b, 0, PCI_DEVFN(PCI_LPC_SLOT, 0), (u16)(PIRQ_ROUT_E + n), 1, irq);
        level |= (u16)(1u << irq);
    }
    for (int devfn = 0; devfn < 256; devfn++) {
        struct pci_device *d = b->dev[devfn];
        u8 pin = d ? d->config[0x3d] : 0;
        if (pin >= 1 && pin <= 4)
            d->config[0x3c] = pci_irqs[pci_intx_pirq(devfn >> 3, pin - 1)];
    }
    return level;
}

int pci_free_slot(struct pci_bus *b)
{
    for (int slot = 1; slot < 32; slot++)
        if (!b->dev[PCI_DEVFN(slot, 0)])
            return slot;
    return -1;
}

void pci_device_add_bar(struct pci_device *d, int bar, enum pci_bar_kind kind, u64 size,
                        u64 (*rd)(void *, u64, unsigned), void (*wr)(void *, u64, unsigned, u64),
                        void *opaque, const char *name)
{
    struct pci_bus *b = d->bus;
    bool io = kind == PCI_BAR_IO;
    if (bar < 0 || bar >= PCI_NUM_BARS || (size & (size - 1)) || size < (io ? 4u : 16u))
        nestor_panic("pci: bad BAR %d of %llu bytes for %s", bar, (unsigned long long)size, name);
    u64 *next = io ? &b->next_io : &b->next_mem;
    u64 addr = (*next + size - 1) & ~(size - 1);
    u64 limit = io ? 0x10000 : PCI_ECAM_BASE;
    if (addr + size > limit)
        nestor_panic("pci: no room for BAR %d of %s", bar, name);
    *next = addr + size;
    d->bar[bar] = (struct pci_bar){ kind, size, rd, wr, opaque, name, 0 };
    u8 *r = d->config + PCI_BAR0 + 4 * bar;
    put32(r, (u32)addr | (io ? 1u : 0u)); /* bit 0: I/O space indicator */
    put32(d->wmask + PCI_BAR0 + 4 * bar, (u32)~(size - 1) & (io ? ~3u : ~15u));
    u16 enable = io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
    d->config[PCI_COMMAND] |= (u8)enable;
    d->wmask[PCI_COMMAND] |= (u8)enable;
    pci_update_bars(d);
}

/* ---- configuration mechanism #1 ---- */
static u64 addr_read(void *opaque, u64 offset, unsigned size)
{
    struct pci_bus *b = opaque;
    (void)offset;
    return size == 4 ? b->addr : MASK(size * 8);
}

static void addr_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct pci_bus *b = opaque;
    (void)offset;
    if (size == 4)
        b->addr = (u32)value & ADDR_MASK;
}

static u64 data_read(void *opaque, u64 offset, unsigned size)
{
    struct pci_bus *b = opaque;
    if (!(b->addr & ADDR_ENABLE) || offset + size > 4)
        return MASK(size * 8);
    return pci_config_read(b, (u8)(b->addr >> 16), (u8)(b->addr >> 8),
                           (u16)((b->addr & 0xfc) + offset), size);
}

static void data_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct pci_bus *b = opaque;
    if (!(b->addr & ADDR_ENABLE) || offset + size > 4)
        return;
    pci_config_write(b, (u8)(b->addr >> 16), (u8)(b->addr >> 8),
                     (u16)((b->addr & 0xfc) + offset), size, (u32)value);
}

/* ---- ECAM: bus << 20 | devfn << 12 | register ---- */
static u64 ecam_read(void *opaque, u64 offset, unsigned size)
{
    struct pci_bus *b = opaque;
    u16 reg = offset & 0xfff;
    if (size > 4 || reg + size > PCI_CONFIG_SIZE)
        return MASK(size * 8);
    return pci_config_read(b, (u8)(offset >> 20), (u8)(offset >> 12), reg, size);
}

static void ecam_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct pci_bus *b = opaque;
    u16 reg = offset & 0xfff;
    if (size > 4 || reg + size > PCI_CONFIG_SIZE)
        return;
    pci_config_write(b, (u8)(offset >> 20), (u8)(offset >> 12), reg, size, (u32)value);
}

/* 00.0: the Q35 memory controller hub as host bridge. No BARs, no capabilities. */
static void add_host_bridge(struct pci_bus *b)
{
    struct pci_device *d = pci_register_device(b, PCI_DEVFN(0, 0), NULL, NULL);
    put16(d->config + 0x00, 0x8086);      /* vendor: Intel */
    put16(d->config + 0x02, 0x29c0);      /* device: 82G33/G31/P35/P31 (Q35) MCH */
    put16(d->config + 0x06, 0x0000);      /* status */
    put32(d->config + 0x08, 0x06000000);  /* class: host bridge; revision 0 */
    d->config[0x0e] = 0x00;               /* header type 0, single function */
    put16(d->config + 0x2c, 0x8086);      /* subsystem vendor */
    put16(d->config + 0x2e, 0x29c0);      /* subsystem */
    /* command: I/O, memory, bus master, parity, SERR, INTx disable */
    put16(d->wmask + 0x04, 0x0547);
    /* status: master data parity error, target/master aborts, SERR, parity error */
    put16(d->w1cmask + 0x06, 0xf900);
    d->wmask[0x0c] = 0xff;                /* cache line size */
    d->wmask[0x0d] = 0xff;                /* latency timer */
    d->wmask[0x3c] = 0xff;                /* interrupt line (scratch for software) */
}

struct pci_bus *pci_create(struct machine *m)
{
    struct pci_bus *b = calloc(1, sizeof(*b));
    if (!b)
        nestor_panic("out of memory");
    b->m = m;
    b->next_io = PCI_IO_ALLOC_BASE;
    b->next_mem = PCI_MEM_ALLOC_BASE;
    add_host_bridge(b);
    add_lpc_bridge(b);
    bus_register(&m->io, PCI_CONFIG_ADDR_PORT, 1, addr_read, addr_write, b, "pci-addr");
    bus_register(&m->io, PCI_CONFIG_DATA_PORT, 4, data_read, data_write, b, "pci-data");
    bus_register(&m->mmio, PCI_ECAM_BASE, PCI_ECAM_SIZE, ecam_read, ecam_write, b, "pci-ecam");
    return b;
}

void pci_unregister_device(struct pci_device *d)
{
    d->config[PCI_COMMAND] &= (u8)~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    pci_update_bars(d); /* no BAR decodes any more */
    d->bus->dev[d->devfn] = NULL;
    free(d);
}

void pci_destroy(struct pci_bus *b)
{
    for (int i = 0; i < 256; i++)
        free(b->dev[i]);
    free(b);
}

/* ---- state: the bus's address latch and INTx wires, each function's config space
 * (the BARs then decode where it says) ---- */
static const struct state_field pci_bus_fields[] = {
    STATE_NOT_STATE(struct pci_bus, m), STATE_FIELD(struct pci_bus, addr),
    STATE_NOT_STATE(struct pci_bus, dev), STATE_NOT_STATE(struct pci_bus, next_io),
    STATE_NOT_STATE(struct pci_bus, next_mem), STATE_FIELD(struct pci_bus, intx),
    STATE_FIELD(struct pci_bus, pirq_drivers), STATE_NOT_STATE(struct pci_bus, lpc),
};
static const struct state_desc pci_bus_state_desc = STATE_DESC("pci", 1, struct pci_bus, pci_bus_fields);

static const struct state_field pci_dev_fields[] = {
    STATE_NOT_STATE(struct pci_device, devfn), STATE_NOT_STATE(struct pci_device, ops),
    STATE_NOT_STATE(struct pci_device, opaque), STATE_NOT_STATE(struct pci_device, bus),
    STATE_NOT_STATE(struct pci_device, bar), STATE_FIELD(struct pci_device, config),
    STATE_NOT_STATE(struct pci_device, wmask), STATE_NOT_STATE(struct pci_device, w1cmask),
};

static int pci_dev_post_load(void *obj, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct pci_device *d = obj;
    pci_update_bars(d);
    if (d->ops && d->ops->config_written)
        d->ops->config_written(d, 0, PCI_CONFIG_SIZE);
    return 0;
}

static const struct state_desc pci_dev_state_desc =
    STATE_DESC("pci.function", 1, struct pci_device, pci_dev_fields, .post_load = pci_dev_post_load);

void pci_state_register(struct pci_bus *b, struct state_registry *r)
{
    state_register(r, &pci_bus_state_desc, 0, b);
    for (int i = 0; i < 256; i++)
        if (b->dev[i])
            state_register(r, &pci_dev_state_desc, (u32)i, b->dev[i]);
}

/* The I/O APIC (Intel 82093AA datasheet; version 0x20 as in the ICH chipsets, which adds
 * the EOI register at offset 0x40).
 *
 * 24 input pins; each has a 64-bit redirection entry. A pin is asserted when its input
 * level differs from the entry's polarity (active low: level 0 asserts).
 *  - edge: a transition to asserted on an unmasked pin sends one message; an edge on a
 *    masked pin is lost (82093AA: "ignored, not held pending").
 *  - level: an asserted, unmasked pin without remote IRR sends a message and sets remote
 *    IRR; the EOI for its vector clears remote IRR and, if the pin is still asserted,
 *    sends again. Unmasking an asserted level pin sends too.
 * Messages go out at once (machine_apic_send), so delivery status always reads idle. */
#include "dev/platform.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "dev/dev.h"
#include "machine/machine.h"

enum {
    REG_ID = 0x00, REG_VERSION = 0x01, REG_ARB = 0x02, REG_REDIR = 0x10,
    MMIO_IOREGSEL = 0x00, MMIO_IOWIN = 0x10, MMIO_EOI = 0x40, MMIO_SIZE = 0x1000,
};

#define IOAPIC_VERSION (0x20u | ((IOAPIC_PINS - 1u) << 16))

/* redirection entry bits */
#define RTE_VECTOR 0xffull
#define RTE_DELIVERY_SHIFT 8
#define RTE_LOGICAL BIT(11)
#define RTE_DELIVERY_STATUS BIT(12)
#define RTE_ACTIVE_LOW BIT(13)
#define RTE_REMOTE_IRR BIT(14)
#define RTE_LEVEL BIT(15)
#define RTE_MASKED BIT(16)
#define RTE_DEST_SHIFT 56
/* bits software may write: vector, delivery mode, destination mode, polarity, trigger,
 * mask, destination */
#define RTE_WRITABLE (0xffull | 0x700ull | RTE_LOGICAL | RTE_ACTIVE_LOW | RTE_LEVEL | \
                      RTE_MASKED | (0xffull << RTE_DEST_SHIFT))

struct ioapic {
    struct machine *m;
    u8 id;
    u8 regsel;
    u32 level;        /* electrical input levels */
    u64 rte[IOAPIC_PINS];
};

static bool asserted(const struct ioapic *io, int pin)
{
    bool high = io->level & (1u << pin);
    return (io->rte[pin] & RTE_ACTIVE_LOW) ? !high : high;
}

/* Sends the pin's interrupt message. */
static void send(struct ioapic *io, int pin)
{
    u64 e = io->rte[pin];
    u8 mode = (u8)((e >> RTE_DELIVERY_SHIFT) & 7);
    switch (mode) {
    case APIC_DM_FIXED:
    case APIC_DM_LOWEST:
        if (e & RTE_LEVEL)
            io->rte[pin] |= RTE_REMOTE_IRR;
        break;
    case APIC_DM_SMI:
    case APIC_DM_NMI:
    case APIC_DM_INIT:
    case APIC_DM_EXTINT:
        break;
    default:
        return; /* reserved delivery modes send nothing */
    }
    struct apic_msg msg = {
        .dest = (u32)(e >> RTE_DEST_SHIFT),
        .vector = (u8)(e & RTE_VECTOR),
        .delivery = mode,
        .logical = e & RTE_LOGICAL,
        /* only fixed and lowest-priority messages can be level (they await an EOI) */
        .level = (e & RTE_LEVEL) && mode <= APIC_DM_LOWEST,
        .shorthand = 0,
        .src = -1,
    };
    machine_apic_send(io->m, &msg);
}

/* A level pin that is asserted, unmasked and not awaiting an EOI is (re)sent. */
static void service_level(struct ioapic *io, int pin)
{
    u64 e = io->rte[pin];
    if ((e & RTE_LEVEL) && !(e & (RTE_MASKED | RTE_REMOTE_IRR)) && asserted(io, pin))
        send(io, pin);
}

void ioapic_set_irq(struct ioapic *io, int pin, bool level)
{
    if (pin < 0 || pin >= IOAPIC_PINS)
        return;
    bool before = asserted(io, pin);
    if (level)
        io->level |= 1u << pin;
    else
        io->level &= ~(1u << pin);
    bool now = asserted(io, pin);
    u64 e = io->rte[pin];
    if (e & RTE_LEVEL)
        service_level(io, pin);
    else if (now && !before && !(e & RTE_MASKED))
        send(io, pin);
}

void ioapic_eoi(struct ioapic *io, u8 vector)
{
    for (int pin = 0; pin < IOAPIC_PINS; pin++) {
        u64 e = io->rte[pin];
        if ((e & RTE_LEVEL) && (e & RTE_REMOTE_IRR) && (u8)(e & RTE_VECTOR) == vector) {
            io->rte[pin] &= ~RTE_REMOTE_IRR;
            service_level(io, pin);
        }
    }
}

u64 ioapic_redirection(const struct ioapic *io, int pin)
{
    return pin >= 0 && pin < IOAPIC_PINS ? io->rte[pin] : 0;
}

/* ---- registers ---- */
static u32 reg_read(const struct ioapic *io, u8 index)
{
    switch (index) {
    case REG_ID:
        return (u32)io->id << 24;
    case REG_VERSION:
        return IOAPIC_VERSION;
    case REG_ARB:
        return (u32)io->id << 24; /* the arbitration ID is loaded from the ID */
    default:
        if (index >= REG_REDIR && index < REG_REDIR + 2 * IOAPIC_PINS) {
            u64 e = io->rte[(index - REG_REDIR) / 2];
            return (index & 1) ? (u32)(e >> 32) : (u32)e;
        }
        return 0;
    }
}

static void reg_write(struct ioapic *io, u8 index, u32 value)
{
    if (index == REG_ID) {
        io->id = (value >> 24) & 0xf;
        return;
    }
    if (index < REG_REDIR || index >= REG_REDIR + 2 * IOAPIC_PINS)
        return; /* version, arbitration: read-only */
    int pin = (index - REG_REDIR) / 2;
    u64 e = io->rte[pin];
    u64 v = (index & 1) ? (e & 0xffffffffull) | ((u64)value << 32)
                        : (e & ~0xffffffffull) | value;
    e = (e & ~RTE_WRITABLE) | (v & RTE_WRITABLE);
    if (!(e & RTE_LEVEL))
        e &= ~RTE_REMOTE_IRR; /* remote IRR has no meaning for edge pins */
    io->rte[pin] = e;
    /* an unmasked, asserted level pin interrupts now (edges already passed are lost) */
    service_level(io, pin);
}

static u64 mmio_read(void *opaque, u64 offset, unsigned size)
{
    struct ioapic *io = opaque;
    u32 v;
    if (offset - MMIO_IOREGSEL < 4)
        v = io->regsel;
    else if (offset - MMIO_IOWIN < 4)
        v = reg_read(io, io->regsel);
    else
        return 0;
    /* narrower reads see bytes of the 32-bit register */
    v >>= 8 * (offset & 3);
    return size >= 4 ? v : v & (u32)MASK(size * 8);
}

static void mmio_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct ioapic *io = opaque;
    (void)size;
    if (offset == MMIO_IOREGSEL)
        io->regsel = (u8)value;
    else if (offset == MMIO_IOWIN)
        reg_write(io, io->regsel, (u32)value);
    else if (offset == MMIO_EOI)
        ioapic_eoi(io, (u8)value);
}

/* Power-on state; the input levels are the wires' and stay. */
void ioapic_reset(struct ioapic *io)
{
    io->id = IOAPIC_ID;
    io->regsel = 0;
    for (int pin = 0; pin < IOAPIC_PINS; pin++)
        io->rte[pin] = RTE_MASKED;
}

struct ioapic *ioapic_create(struct machine *m)
{
    struct ioapic *io = calloc(1, sizeof(*io));
    if (!io)
        nestor_panic("out of memory");
    io->m = m;
    ioapic_reset(io);
    bus_register(&m->mmio, IOAPIC_MMIO_BASE, MMIO_SIZE, mmio_read, mmio_write, io, "ioapic");
    return io;
}

void ioapic_destroy(struct ioapic *io) { free(io); }

/* ---- state ---- */
static const struct state_field ioapic_fields[] = {
    STATE_NOT_STATE(struct ioapic, m), STATE_FIELD(struct ioapic, id),
    STATE_FIELD(struct ioapic, regsel), STATE_FIELD(struct ioapic, level),
    STATE_FIELD(struct ioapic, rte),
};
static const struct state_desc ioapic_state_desc = STATE_DESC("ioapic", 1, struct ioapic, ioapic_fields);

void ioapic_state_register(struct ioapic *io, struct state_registry *r)
{
    state_register(r, &ioapic_state_desc, 0, io);
}

/* The 8259A programmable interrupt controller pair of the PC (Intel 8259A datasheet;
 * the ELCR of the Intel ICH/PIIX chipsets).
 *
 * The slave's INT output is the master's IR2. The master's INT output is the CPU's INTR
 * pin, which on an APIC system is LINT0 of the local APICs.
 *
 * Choices a PC chipset makes and nestor follows:
 *  - edge/level per line comes from the ELCR (0x4d0/0x4d1); ICW1's LTIM bit is ignored,
 *    as on ICH chipsets. IRQ0, 1, 2, 8 and 13 are edge only.
 *  - an edge request is latched in IRR on the rising edge and stays there until the
 *    INTA cycle, even if the line drops before (devices may pulse their line); a level
 *    request follows the line, so a level request that goes away before INTA produces a
 *    spurious IRQ7 (IRQ15 when it was on the slave).
 *  - ICW3 and the buffered-mode bits of ICW4 describe the board's wiring, which is
 *    fixed: the slave hangs on IR2. */
#include "dev/platform.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "dev/dev.h"
#include "machine/machine.h"

struct pic_chip {
    u8 irr, isr, imr;
    u8 line;            /* input line levels (for edge detection) */
    u8 elcr, elcr_mask; /* level-triggered lines; which lines may be level */
    u8 base;            /* vector base (ICW2 bits 7:3) */
    u8 priority_add;    /* line with the highest priority (rotation) */
    u8 init_step;       /* 0: operating; 2, 3, 4: waiting for that ICW */
    bool icw4_needed, single;
    bool auto_eoi, rotate_on_aeoi, special_fully_nested;
    bool read_isr, poll, special_mask;
};

struct pic {
    struct machine *m;
    struct pic_chip chip[2]; /* 0 master, 1 slave */
    bool intr;               /* master INT output */
};

enum { MASTER, SLAVE, CASCADE_IR = 2 };

/* Priority (0 = highest) of the highest-priority line set in mask, 8 if none. */
static int priority(const struct pic_chip *c, u8 mask)
{
    for (int p = 0; p < 8; p++)
        if (mask & (1u << ((p + c->priority_add) & 7)))
            return p;
    return 8;
}

/* The line the chip would present at INTA, or -1. */
static int pending_line(const struct pic_chip *c, bool is_master)
{
    int p = priority(c, c->irr & ~c->imr);
    if (p == 8)
        return -1;
    u8 in_service = c->isr;
    /* special mask mode: masked lines in service do not block lower priorities */
    if (c->special_mask)
        in_service &= ~c->imr;
    /* special fully nested mode: the cascade line in service does not block further
     * (higher-priority) requests from the slave */
    if (is_master && c->special_fully_nested)
        in_service &= ~(1u << CASCADE_IR);
    if (p >= priority(c, in_service))
        return -1;
    return (p + c->priority_add) & 7;
}

static void set_line(struct pic_chip *c, int line, bool level);

/* Recomputes the slave's INT (master IR2) and the master's INT (the CPUs' INTR). */
static void update(struct pic *p)
{
    bool slave_int = pending_line(&p->chip[SLAVE], false) >= 0;
    set_line(&p->chip[MASTER], CASCADE_IR, slave_int);
    bool intr = pending_line(&p->chip[MASTER], true) >= 0;
    if (intr == p->intr)
        return;
    p->intr = intr;
    for (int i = 0; i < p->m->ncpus; i++)
        if (p->m->lapic[i])
            lapic_set_lint(p->m->lapic[i], 0, intr);
}

static void set_line(struct pic_chip *c, int line, bool level)
{
    u8 bit = (u8)(1u << line);
    bool was = c->line & bit;
    if (level)
        c->line |= bit;
    else
        c->line &= ~bit;
    if (c->elcr & bit) {
        if (level)
            c->irr |= bit;
        else
            c->irr &= ~bit;
    } else if (level && !was) {
        c->irr |= bit;
    }
}

void pic_set_irq(struct pic *p, int irq, bool level)
{
    if (irq < 0 || irq > 15 || irq == CASCADE_IR)
        return;
    set_line(&p->chip[irq >> 3], irq & 7, level);
    update(p);
}

bool pic_has_intr(const struct pic *p) { return p->intr; }

/* INTA on one chip for line: IRR -> ISR (or straight through with auto-EOI). */
static void acknowledge(struct pic_chip *c, int line)
{
    u8 bit = (u8)(1u << line);
    if (!(c->elcr & bit))
        c->irr &= ~bit; /* the edge latch is consumed; a level request stays */
    if (c->auto_eoi) {
        if (c->rotate_on_aeoi)
            c->priority_add = (u8)((line + 1) & 7);
    } else {
        c->isr |= bit;
    }
}

u8 pic_intr_peek(const struct pic *p)
{
    const struct pic_chip *mc = &p->chip[MASTER], *sc = &p->chip[SLAVE];
    int line = pending_line(mc, true);
    if (line < 0)
        return mc->base | 7;
    if (line != CASCADE_IR)
        return (u8)(mc->base | line);
    int sline = pending_line(sc, false);
    return sline < 0 ? sc->base | 7 : (u8)(sc->base | sline);
}

u8 pic_intr_ack(struct pic *p)
{
    struct pic_chip *mc = &p->chip[MASTER], *sc = &p->chip[SLAVE];
    int line = pending_line(mc, true);
    u8 vector;
    if (line < 0) {
        vector = mc->base | 7; /* spurious: the request went away before INTA */
    } else {
        acknowledge(mc, line);
        if (line == CASCADE_IR) {
            int sline = pending_line(sc, false);
            if (sline < 0) {
                vector = sc->base | 7; /* spurious on the slave: IRQ15, no ISR bit */
            } else {
                acknowledge(sc, sline);
                vector = (u8)(sc->base | sline);
            }
        } else {
            vector = (u8)(mc->base | line);
        }
    }
    update(p);
    return vector;
}

/* ---- register interface ---- */
static void init_reset(struct pic_chip *c)
{
    /* ICW1: edge-sense latches reset, IMR and ISR cleared, IR7 lowest priority, special
     * mask cleared, reads select IRR, ICW4 functions off. Level requests remain, since
     * the ELCR still says those lines are level. */
    c->irr &= c->elcr & c->line;
    c->isr = 0;
    c->imr = 0;
    c->priority_add = 0;
    c->auto_eoi = c->rotate_on_aeoi = c->special_fully_nested = false;
    c->read_isr = c->poll = c->special_mask = false;
}

static void ocw2(struct pic_chip *c, u8 v)
{
    int cmd = v >> 5, level = v & 7;
    int line;
    switch (cmd) {
    case 0: /* clear rotate in auto-EOI mode */
    case 4: /* set rotate in auto-EOI mode */
        c->rotate_on_aeoi = cmd == 4;
        break;
    case 1: /* non-specific EOI */
    case 5: /* rotate on non-specific EOI */
        if (priority(c, c->isr) == 8)
            break;
        line = (priority(c, c->isr) + c->priority_add) & 7;
        c->isr &= (u8)~(1u << line);
        if (cmd == 5)
            c->priority_add = (u8)((line + 1) & 7);
        break;
    case 3: /* specific EOI */
    case 7: /* rotate on specific EOI */
        c->isr &= (u8)~(1u << level);
        if (cmd == 7)
            c->priority_add = (u8)((level + 1) & 7);
        break;
    case 6: /* set priority: level becomes the lowest */
        c->priority_add = (u8)((level + 1) & 7);
        break;
    default: /* 2: no operation */
        break;
    }
}

static void chip_write(struct pic *p, struct pic_chip *c, unsigned port, u8 v)
{
    if (port == 0) {
        if (v & 0x10) { /* ICW1 */
            init_reset(c);
            c->icw4_needed = v & 0x01;
            c->single = v & 0x02;
            c->init_step = 2;
        } else if (v & 0x08) { /* OCW3 */
            if (v & 0x02)
                c->read_isr = v & 0x01;
            if (v & 0x40)
                c->special_mask = v & 0x20;
            c->poll = v & 0x04;
        } else { /* OCW2 */
            ocw2(c, v);
        }
    } else {
        switch (c->init_step) {
        case 2: /* ICW2: vector base */
            c->base = v & 0xf8;
            c->init_step = !c->single ? 3 : c->icw4_needed ? 4 : 0;
            break;
        case 3: /* ICW3: cascade wiring (fixed on the PC) */
            c->init_step = c->icw4_needed ? 4 : 0;
            break;
        case 4: /* ICW4 */
            c->auto_eoi = v & 0x02;
            c->special_fully_nested = v & 0x10;
            c->init_step = 0;
            break;
        default: /* OCW1 */
            c->imr = v;
            break;
        }
    }
    update(p);
}

/* Poll command: the next read of port 0 is an INTA that returns the level. */
static u8 poll_read(struct pic *p, int chip)
{
    struct pic_chip *c = &p->chip[chip];
    c->poll = false;
    int line = pending_line(c, chip == MASTER);
    if (line < 0)
        return 0;
    acknowledge(c, line); /* on the master, IR2 goes in service; the slave is polled apart */
    update(p);
    return (u8)(0x80 | line);
}

static u8 chip_read(struct pic *p, int chip, unsigned port)
{
    struct pic_chip *c = &p->chip[chip];
    if (c->poll)
        return poll_read(p, chip);
    if (port == 0)
        return c->read_isr ? c->isr : c->irr;
    return c->imr;
}

static u64 pic_io_read(void *opaque, u64 offset, unsigned size, int chip)
{
    struct pic *p = opaque;
    u64 v = 0;
    /* wider accesses read consecutive ports */
    for (unsigned i = 0; i < size; i++)
        v |= (u64)(offset + i < 2 ? chip_read(p, chip, (unsigned)(offset + i)) : 0xff) << (8 * i);
    return v;
}

static void pic_io_write(void *opaque, u64 offset, unsigned size, u64 value, int chip)
{
    struct pic *p = opaque;
    for (unsigned i = 0; i < size && offset + i < 2; i++)
        chip_write(p, &p->chip[chip], (unsigned)(offset + i), (u8)(value >> (8 * i)));
}

static u64 master_read(void *o, u64 off, unsigned size) { return pic_io_read(o, off, size, MASTER); }
static u64 slave_read(void *o, u64 off, unsigned size) { return pic_io_read(o, off, size, SLAVE); }
static void master_write(void *o, u64 off, unsigned size, u64 v) { pic_io_write(o, off, size, v, MASTER); }
static void slave_write(void *o, u64 off, unsigned size, u64 v) { pic_io_write(o, off, size, v, SLAVE); }

static u64 elcr_read(void *opaque, u64 offset, unsigned size)
{
    struct pic *p = opaque;
    u64 v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (u64)(offset + i < 2 ? p->chip[offset + i].elcr : 0xff) << (8 * i);
    return v;
}

static void elcr_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct pic *p = opaque;
    for (unsigned i = 0; i < size && offset + i < 2; i++) {
        struct pic_chip *c = &p->chip[offset + i];
        c->elcr = (u8)(value >> (8 * i)) & c->elcr_mask;
        /* a line that became level reflects its level now; one that became edge keeps
         * what it latched */
        c->irr = (u8)((c->irr & ~c->elcr) | (c->line & c->elcr));
    }
    update(p);
}

void pic_set_elcr(struct pic *p, u16 level_irqs)
{
    elcr_write(p, 0, 2, level_irqs);
}

struct pic_state pic_get_state(const struct pic *p, int chip)
{
    const struct pic_chip *c = &p->chip[chip & 1];
    return (struct pic_state){ c->irr, c->isr, c->imr, c->elcr, c->base };
}

/* The state a PC BIOS leaves, over the input lines' levels (wires, not PIC state). */
static void power_on(struct pic *p)
{
    u8 lines[2] = { p->chip[MASTER].line, p->chip[SLAVE].line };
    memset(p->chip, 0, sizeof(p->chip));
    p->chip[MASTER].line = lines[MASTER];
    p->chip[SLAVE].line = lines[SLAVE];
    p->chip[MASTER].elcr_mask = 0xf8; /* IRQ0-2 are edge only */
    p->chip[SLAVE].elcr_mask = 0xde;  /* IRQ8 and IRQ13 are edge only */
    /* the state a PC BIOS leaves: real-mode vector bases, every line masked */
    p->chip[MASTER].base = 0x08;
    p->chip[SLAVE].base = 0x70;
    p->chip[MASTER].imr = p->chip[SLAVE].imr = 0xff;
}

void pic_reset(struct pic *p)
{
    power_on(p);
    update(p);
}

struct pic *pic_create(struct machine *m)
{
    struct pic *p = calloc(1, sizeof(*p));
    if (!p)
        nestor_panic("out of memory");
    p->m = m;
    power_on(p);
    bus_register(&m->io, PIC_MASTER_PORT, 2, master_read, master_write, p, "pic-master");
    bus_register(&m->io, PIC_SLAVE_PORT, 2, slave_read, slave_write, p, "pic-slave");
    bus_register(&m->io, PIC_ELCR_PORT, 2, elcr_read, elcr_write, p, "pic-elcr");
    return p;
}

void pic_destroy(struct pic *p) { free(p); }

/* ---- state ---- */
static const struct state_field pic_fields[] = {
    STATE_NOT_STATE(struct pic, m), STATE_FIELD(struct pic, chip), STATE_FIELD(struct pic, intr),
};

static int pic_post_load(void *obj, char *err, size_t errlen)
{
    struct pic *p = obj;
    for (int i = 0; i < 2; i++)
        if (p->chip[i].priority_add > 7 || p->chip[i].init_step > 4) {
            return nestor_err(err, errlen, "impossible 8259 state");
        }
    return 0;
}

static const struct state_desc pic_state_desc =
    STATE_DESC("pic", 1, struct pic, pic_fields, .post_load = pic_post_load);

void pic_state_register(struct pic *p, struct state_registry *r)
{
    state_register(r, &pic_state_desc, 0, p);
}

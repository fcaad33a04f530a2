/* The i8042 keyboard controller of the PC (IBM PC/AT and PS/2 technical references),
 * with an MF2 keyboard on the first port and nothing plugged into the AUX port, plus
 * port 0x92 (system control port A).
 *
 * Enough for Linux's i8042 and atkbd drivers and for the reset paths: command 0xfe
 * (pulse the reset line), an output-port write with bit 0 clear, and port 0x92 bit 0
 * reset the machine, which for nestor (no firmware) means stopping with status 0.
 * The keyboard sends no scancodes (console input arrives on the UART); it answers the
 * host's commands. The AUX port exists: the controller's loopback (0xd3) and interface
 * test (0xa9) work, but a byte sent to the device (0xd4) times out, as with no mouse
 * attached. A20 gating (output port bit 1, port 0x92 bit 1) is recorded but not applied:
 * the address bus is never wrapped at 1 MiB. */
#include "dev/platform.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "machine/machine.h"

/* status register */
#define STS_OBF 0x01
#define STS_SYS 0x04
#define STS_CMD 0x08    /* the last write was to the command port */
#define STS_UNLOCKED 0x10
#define STS_AUX 0x20    /* the output byte came from the AUX port */
#define STS_TIMEOUT 0x40

/* command byte */
#define CB_KBD_INT 0x01
#define CB_AUX_INT 0x02
#define CB_SYS 0x04
#define CB_KBD_DISABLE 0x10
#define CB_AUX_DISABLE 0x20
#define CB_XLATE 0x40

/* output port */
#define OP_RESET_N 0x01
#define OP_A20 0x02

#define QUEUE_SIZE 16

enum source { FROM_CTRL, FROM_KBD, FROM_AUX };

struct kbc {
    struct machine *m;
    u8 cmd_byte;
    u8 out_port;
    u8 status_flags;        /* STS_SYS, STS_CMD, STS_TIMEOUT of the current byte */
    u8 pending_cmd;         /* controller command awaiting its data byte, or 0 */
    u8 kbd_pending_cmd;     /* keyboard command awaiting its parameter, or 0 */
    u8 kbd_last;            /* for the keyboard's resend command */
    u8 port_a;
    struct { u8 byte; u8 src; bool timeout; } q[QUEUE_SIZE];
    int qhead, qlen;
    bool irq1, irq12;
};

static void update_irqs(struct kbc *k)
{
    bool kbd = false, aux = false;
    if (k->qlen) {
        bool is_aux = k->q[k->qhead].src == FROM_AUX;
        aux = is_aux && (k->cmd_byte & CB_AUX_INT);
        kbd = !is_aux && (k->cmd_byte & CB_KBD_INT);
    }
    if (kbd != k->irq1) {
        k->irq1 = kbd;
        machine_set_irq(k->m, KBC_KBD_IRQ, kbd);
    }
    if (aux != k->irq12) {
        k->irq12 = aux;
        machine_set_irq(k->m, KBC_AUX_IRQ, aux);
    }
}

static void push(struct kbc *k, u8 byte, enum source src, bool timeout)
{
    if (k->qlen == QUEUE_SIZE)
        return; /* the host is not reading: further bytes are lost */
    int i = (k->qhead + k->qlen++) % QUEUE_SIZE;
    k->q[i].byte = byte;
    k->q[i].src = (u8)src;
    k->q[i].timeout = timeout;
    if (src == FROM_KBD)
        k->kbd_last = byte;
    update_irqs(k);
}

static void reset_machine(struct kbc *k)
{
    machine_request_stop(k->m, NESTOR_EXIT_OK);
}

/* ---- the keyboard ---- */
static void kbd_command(struct kbc *k, u8 v)
{
    if (k->kbd_pending_cmd) {
        u8 cmd = k->kbd_pending_cmd;
        k->kbd_pending_cmd = 0;
        if (cmd == 0xf0 && v == 0) {
            /* get scan code set: set 2, reported as 0x41 when the controller translates */
            push(k, 0xfa, FROM_KBD, false);
            push(k, (k->cmd_byte & CB_XLATE) ? 0x41 : 0x02, FROM_KBD, false);
        } else {
            push(k, 0xfa, FROM_KBD, false); /* LEDs, typematic rate, scan code set */
        }
        return;
    }
    switch (v) {
    case 0xed: /* set LEDs */
    case 0xf0: /* get/set scan code set */
    case 0xf3: /* set typematic rate */
        k->kbd_pending_cmd = v;
        push(k, 0xfa, FROM_KBD, false);
        break;
    case 0xee: /* echo */
        push(k, 0xee, FROM_KBD, false);
        break;
    case 0xf2: /* identify: MF2 keyboard (ID 0x83 translated to 0x41) */
        push(k, 0xfa, FROM_KBD, false);
        push(k, 0xab, FROM_KBD, false);
        push(k, (k->cmd_byte & CB_XLATE) ? 0x41 : 0x83, FROM_KBD, false);
        break;
    case 0xf4: /* enable scanning */
    case 0xf5: /* disable scanning, defaults */
    case 0xf6: /* set defaults */
    case 0xf7: case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc: case 0xfd:
        push(k, 0xfa, FROM_KBD, false);
        break;
    case 0xfe: /* resend */
        push(k, k->kbd_last, FROM_KBD, false);
        break;
    case 0xff: /* reset: acknowledge, then the self-test passed */
        push(k, 0xfa, FROM_KBD, false);
        push(k, 0xaa, FROM_KBD, false);
        break;
    default:
        push(k, 0xfe, FROM_KBD, false); /* unknown command: resend request */
        break;
    }
}

/* ---- the controller ---- */
static void write_output_port(struct kbc *k, u8 v)
{
    k->out_port = v;
    if (!(v & OP_RESET_N))
        reset_machine(k);
}

static void controller_command(struct kbc *k, u8 cmd)
{
    if (cmd >= 0x20 && cmd <= 0x3f) { /* read internal RAM; 0x20 is the command byte */
        push(k, cmd == 0x20 ? k->cmd_byte : 0x00, FROM_CTRL, false);
        return;
    }
    if (cmd >= 0x60 && cmd <= 0x7f) { /* write internal RAM: the data byte follows */
        k->pending_cmd = cmd;
        return;
    }
    if (cmd >= 0xf0) { /* pulse output port bits: bit 0 clear pulses reset */
        if (!(cmd & 0x01))
            reset_machine(k);
        return;
    }
    switch (cmd) {
    case 0xa7: /* disable AUX */
        k->cmd_byte |= CB_AUX_DISABLE;
        break;
    case 0xa8: /* enable AUX */
        k->cmd_byte &= ~CB_AUX_DISABLE;
        break;
    case 0xa9: /* AUX interface test: lines fine */
        push(k, 0x00, FROM_CTRL, false);
        break;
    case 0xaa: /* controller self-test */
        k->status_flags |= STS_SYS;
        k->cmd_byte |= CB_SYS;
        push(k, 0x55, FROM_CTRL, false);
        break;
    case 0xab: /* keyboard interface test */
        push(k, 0x00, FROM_CTRL, false);
        break;
    case 0xad: /* disable keyboard */
        k->cmd_byte |= CB_KBD_DISABLE;
        break;
    case 0xae: /* enable keyboard */
        k->cmd_byte &= ~CB_KBD_DISABLE;
        break;
    case 0xc0: /* read input port: keyboard not inhibited */
        push(k, 0x80, FROM_CTRL, false);
        break;
    case 0xd0: /* read output port */
        push(k, k->out_port, FROM_CTRL, false);
        break;
    case 0xd1: /* write output port */
    case 0xd2: /* write keyboard output buffer */
    case 0xd3: /* write AUX output buffer (loopback) */
    case 0xd4: /* write to the AUX device */
        k->pending_cmd = cmd;
        break;
    default:
        break; /* unknown commands are ignored */
    }
}

static void controller_data(struct kbc *k, u8 cmd, u8 v)
{
    switch (cmd) {
    case 0x60:
        k->cmd_byte = v;
        k->status_flags = (u8)((k->status_flags & ~STS_SYS) | (v & CB_SYS ? STS_SYS : 0));
        update_irqs(k);
        break;
    case 0xd1:
        write_output_port(k, v);
        break;
    case 0xd2:
        push(k, v, FROM_KBD, false);
        break;
    case 0xd3:
        push(k, v, FROM_AUX, false);
        break;
    case 0xd4:
        /* no device answers: the controller reports a timeout with 0xfe */
        push(k, 0xfe, FROM_AUX, true);
        break;
    default:
        break; /* other internal RAM bytes are not kept */
    }
}

static u64 kbc_data_read(void *opaque, u64 offset, unsigned size)
{
    struct kbc *k = opaque;
    (void)offset;
    (void)size;
    if (!k->qlen)
        return k->q[(k->qhead + QUEUE_SIZE - 1) % QUEUE_SIZE].byte; /* the last byte again */
    u8 v = k->q[k->qhead].byte;
    k->qhead = (k->qhead + 1) % QUEUE_SIZE;
    k->qlen--;
    /* each byte is its own interrupt: the line drops, then rises for the next one */
    if (k->irq1) {
        k->irq1 = false;
        machine_set_irq(k->m, KBC_KBD_IRQ, false);
    }
    if (k->irq12) {
        k->irq12 = false;
        machine_set_irq(k->m, KBC_AUX_IRQ, false);
    }
    update_irqs(k);
    return v;
}

static void kbc_data_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct kbc *k = opaque;
    (void)offset;
    (void)size;
    k->status_flags &= ~STS_CMD;
    u8 cmd = k->pending_cmd;
    k->pending_cmd = 0;
    if (cmd)
        controller_data(k, cmd, (u8)value);
    else
        kbd_command(k, (u8)value);
}

static u64 kbc_status_read(void *opaque, u64 offset, unsigned size)
{
    struct kbc *k = opaque;
    (void)offset;
    (void)size;
    u8 s = (u8)((k->status_flags & (STS_SYS | STS_CMD)) | STS_UNLOCKED);
    if (k->qlen) {
        s |= STS_OBF;
        if (k->q[k->qhead].src == FROM_AUX)
            s |= STS_AUX;
        if (k->q[k->qhead].timeout)
            s |= STS_TIMEOUT;
    }
    return s;
}

static void kbc_command_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct kbc *k = opaque;
    (void)offset;
    (void)size;
    k->status_flags |= STS_CMD;
    k->pending_cmd = 0;
    controller_command(k, (u8)value);
}

/* ---- port 0x92 ---- */
static u64 port_a_read(void *opaque, u64 offset, unsigned size)
{
    struct kbc *k = opaque;
    (void)offset;
    (void)size;
    return k->port_a;
}

static void port_a_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct kbc *k = opaque;
    (void)offset;
    (void)size;
    /* bit 0: fast reset on a 0 -> 1 transition; bit 1: A20 */
    if ((value & 1) && !(k->port_a & 1))
        reset_machine(k);
    k->port_a = (u8)value & 0x02;
}

/* as a BIOS leaves it: self-test passed, translation on, keyboard interrupt on, AUX
 * disabled; A20 enabled, reset line high */
static void power_on(struct kbc *k)
{
    k->cmd_byte = CB_KBD_INT | CB_SYS | CB_AUX_DISABLE | CB_XLATE;
    k->status_flags = STS_SYS;
    k->out_port = OP_RESET_N | OP_A20;
    k->port_a = 0x02;
    k->pending_cmd = k->kbd_pending_cmd = k->kbd_last = 0;
    k->qhead = k->qlen = 0;
}

void kbc_reset(struct kbc *k)
{
    power_on(k);
    update_irqs(k);
}

struct kbc *kbc_create(struct machine *m)
{
    struct kbc *k = calloc(1, sizeof(*k));
    if (!k)
        nestor_panic("out of memory");
    k->m = m;
    power_on(k);
    bus_register(&m->io, KBC_DATA_PORT, 1, kbc_data_read, kbc_data_write, k, "i8042-data");
    bus_register(&m->io, KBC_CMD_PORT, 1, kbc_status_read, kbc_command_write, k, "i8042-cmd");
    bus_register(&m->io, PORT_A, 1, port_a_read, port_a_write, k, "port-a");
    return k;
}

void kbc_destroy(struct kbc *k) { free(k); }

/* ---- state ---- */
#define F(m) STATE_FIELD(struct kbc, m)
static const struct state_field kbc_fields[] = {
    STATE_NOT_STATE(struct kbc, m), F(cmd_byte), F(out_port), F(status_flags), F(pending_cmd),
    F(kbd_pending_cmd), F(kbd_last), F(port_a), F(q), F(qhead), F(qlen), F(irq1), F(irq12),
};
#undef F

static int kbc_post_load(void *obj, char *err, size_t errlen)
{
    struct kbc *k = obj;
    if (k->qhead < 0 || k->qhead >= QUEUE_SIZE || k->qlen < 0 || k->qlen > QUEUE_SIZE) {
        return nestor_err(err, errlen, "output queue out of range");
    }
    return 0;
}

static const struct state_desc kbc_state_desc =
    STATE_DESC("i8042", 1, struct kbc, kbc_fields, .post_load = kbc_post_load);

void kbc_state_register(struct kbc *k, struct state_registry *r)
{
    state_register(r, &kbc_state_desc, 0, k);
}

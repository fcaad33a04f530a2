/* 16550A UART (National Semiconductor PC16550D datasheet): the eight registers with the
 * divisor latch, 16-byte receive FIFO with trigger levels and character timeout, modem
 * control with loopback, and the interrupt identification priorities.
 *
 * Transmission is instantaneous: a THR write goes straight to out_fd, so THR and the
 * transmitter are always empty again by the time the guest looks (LSR.THRE = TEMT = 1).
 * The word length in LCR does not mask the byte: guests that never program the UART
 * still print whole bytes, as on QEMU.
 *
 * On a PC the UART's interrupt output reaches the ISA bus only when MCR.OUT2 is set, and
 * in loopback mode the OUT2 pin is forced inactive, so the IRQ line is
 * "interrupt pending && OUT2 && !LOOP". */
#include "dev/dev.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <unistd.h>

#include "machine/machine.h"

enum { REG_DATA, REG_IER, REG_IIR_FCR, REG_LCR, REG_MCR, REG_LSR, REG_MSR, REG_SCR };

#define IER_RDA BIT(0)  /* received data available (and character timeout) */
#define IER_THRE BIT(1)
#define IER_RLS BIT(2)  /* receiver line status */
#define IER_MS BIT(3)   /* modem status */
#define IER_WRITABLE 0x0f

enum { IIR_NONE = 0x01, IIR_MS = 0x00, IIR_THRE = 0x02, IIR_RDA = 0x04, IIR_RLS = 0x06,
       IIR_TIMEOUT = 0x0c, IIR_FIFO_ON = 0xc0 };

#define FCR_ENABLE BIT(0)
#define FCR_CLEAR_RX BIT(1)
#define FCR_CLEAR_TX BIT(2)
#define FCR_STORED 0xc9 /* enable, DMA mode, trigger level */

#define LCR_DLAB BIT(7)

#define MCR_DTR BIT(0)
#define MCR_RTS BIT(1)
#define MCR_OUT1 BIT(2)
#define MCR_OUT2 BIT(3)
#define MCR_LOOP BIT(4)
#define MCR_WRITABLE 0x1f

#define LSR_DR BIT(0)
#define LSR_OE BIT(1)
#define LSR_PE BIT(2)
#define LSR_FE BIT(3)
#define LSR_BI BIT(4)
#define LSR_THRE BIT(5)
#define LSR_TEMT BIT(6)
#define LSR_FIFO_ERR BIT(7)
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS BIT(0)
#define MSR_DDSR BIT(1)
#define MSR_TERI BIT(2)
#define MSR_DDCD BIT(3)
#define MSR_CTS BIT(4)
#define MSR_DSR BIT(5)
#define MSR_RI BIT(6)
#define MSR_DCD BIT(7)
#define MSR_DELTAS 0x0f

/* Modem inputs when not in loopback: a terminal is attached (CTS, DSR, DCD). */
#define MSR_CONNECTED (MSR_CTS | MSR_DSR | MSR_DCD)

#define FIFO_SIZE 16
#define UART_CLOCK_HZ 115200 /* 1.8432 MHz / 16: baud rate with divisor 1 */

static const u8 rx_trigger[4] = { 1, 4, 8, 14 };

struct uart {
    struct machine *m;
    u16 base;
    int irq;
    int in_fd, out_fd;

    u8 ier, lcr, mcr, lsr_errors, msr, scr, fcr;
    u16 divisor;
    u8 rx[FIFO_SIZE];
    unsigned rx_head, rx_count;
    bool thr_ipending;     /* THRE interrupt condition, cleared by IIR read or THR write */
    bool timeout_ipending; /* character timeout */
    bool irq_level;        /* what the machine was last told */
    int timeout_timer;
    bool output_broken;    /* out_fd failed; output is dropped from then on */
};

static bool fifo_on(const struct uart *u)
{
    return u->fcr & FCR_ENABLE;
}

static unsigned rx_capacity(const struct uart *u)
{
    return fifo_on(u) ? FIFO_SIZE : 1;
}

static u8 lsr(const struct uart *u)
{
    return u->lsr_errors | (u->rx_count ? LSR_DR : 0) | LSR_THRE | LSR_TEMT;
}

/* Interrupt identification in priority order (datasheet table 4). */
static u8 iir_source(const struct uart *u)
{
    if ((u->ier & IER_RLS) && (u->lsr_errors & LSR_ERRORS))
        return IIR_RLS;
    if (u->ier & IER_RDA) {
        unsigned trigger = fifo_on(u) ? rx_trigger[u->fcr >> 6] : 1;
        if (u->rx_count >= trigger)
            return IIR_RDA;
        if (u->timeout_ipending && u->rx_count)
            return IIR_TIMEOUT;
    }
    if ((u->ier & IER_THRE) && u->thr_ipending)
        return IIR_THRE;
    if ((u->ier & IER_MS) && (u->msr & MSR_DELTAS))
        return IIR_MS;
    return IIR_NONE;
}

static void update_irq(struct uart *u)
{
    bool level = iir_source(u) != IIR_NONE && (u->mcr & MCR_OUT2) && !(u->mcr & MCR_LOOP);
    if (level != u->irq_level) {
        u->irq_level = level;
        machine_set_irq(u->m, u->irq, level);
    }
}

/* Four character times at the current line settings (datasheet: FIFO timeout). */
static u64 char_timeout_ns(const struct uart *u)
{
    unsigned bits = 1 + 5 + (u->lcr & 3) + ((u->lcr & 0x08) ? 1 : 0) + ((u->lcr & 0x04) ? 2 : 1);
    u64 divisor = u->divisor ? u->divisor : 0x10000;
    return 4 * bits * 1000000000ull * divisor / UART_CLOCK_HZ;
}

static void restart_timeout(struct uart *u)
{
    u->timeout_ipending = false;
    if (fifo_on(u) && u->rx_count)
        clock_timer_arm(&u->m->clock, u->timeout_timer,
                        clock_now(&u->m->clock) + char_timeout_ns(u));
    else
        clock_timer_disarm(&u->m->clock, u->timeout_timer);
}

static void timeout_expired(void *opaque, u64 now)
{
    (void)now;
    struct uart *u = opaque;
    if (u->rx_count) {
        u->timeout_ipending = true;
        update_irq(u);
    }
}

static void rx_clear(struct uart *u)
{
    u->rx_head = u->rx_count = 0;
    restart_timeout(u);
}

static void rx_push(struct uart *u, u8 byte)
{
    if (u->rx_count >= rx_capacity(u)) {
        u->lsr_errors |= LSR_OE; /* the new character is lost */
        return;
    }
    u->rx[(u->rx_head + u->rx_count) % FIFO_SIZE] = byte;
    u->rx_count++;
}

static u8 rx_pop(struct uart *u)
{
    if (!u->rx_count)
        return 0;
    u8 byte = u->rx[u->rx_head];
    u->rx_head = (u->rx_head + 1) % FIFO_SIZE;
    u->rx_count--;
    return byte;
}

/* Writes all of buf, resuming after signals and short writes, waiting if the
 * descriptor is non-blocking. */
static void output(struct uart *u, const u8 *buf, size_t len)
{
    while (len && !u->output_broken) {
        ssize_t n = write(u->out_fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = { .fd = u->out_fd, .events = POLLOUT };
            poll(&p, 1, -1);
        } else {
            nestor_log("serial output failed; further guest output is dropped");
            u->output_broken = true;
        }
    }
}

/* The modem inputs: in loopback they are the modem outputs (RTS->CTS, DTR->DSR,
 * OUT1->RI, OUT2->DCD). A change sets the delta bits; RI reports its trailing edge. */
static void update_modem_inputs(struct uart *u)
{
    u8 in = MSR_CONNECTED;
    if (u->mcr & MCR_LOOP)
        in = (u8)(((u->mcr & MCR_RTS) ? MSR_CTS : 0) | ((u->mcr & MCR_DTR) ? MSR_DSR : 0) |
                  ((u->mcr & MCR_OUT1) ? MSR_RI : 0) | ((u->mcr & MCR_OUT2) ? MSR_DCD : 0));
    u8 old = u->msr & 0xf0, changed = old ^ in;
    u8 deltas = (u8)(((changed & MSR_CTS) ? MSR_DCTS : 0) | ((changed & MSR_DSR) ? MSR_DDSR : 0) |
                     ((old & MSR_RI) && !(in & MSR_RI) ? MSR_TERI : 0) |
                     ((changed & MSR_DCD) ? MSR_DDCD : 0));
    u->msr = (u8)(in | (u->msr & MSR_DELTAS) | deltas);
}

static void write_thr(struct uart *u, u8 byte)
{
    /* The THRE interrupt drops with the write and rises again when the byte has gone,
     * which here is at once: an edge-triggered interrupt controller sees a new edge. */
    u->thr_ipending = false;
    update_irq(u);
    if (u->mcr & MCR_LOOP) {
        rx_push(u, byte);
        restart_timeout(u);
    } else {
        output(u, &byte, 1);
    }
    u->thr_ipending = true;
}

static void write_fcr(struct uart *u, u8 v)
{
    bool was_on = fifo_on(u);
    if (!(v & FCR_ENABLE)) {
        /* With the enable bit clear the other bits are not programmed. */
        u->fcr = 0;
        if (was_on)
            rx_clear(u);
        return;
    }
    u->fcr = v & FCR_STORED;
    if (!was_on || (v & FCR_CLEAR_RX))
        rx_clear(u);
    /* FCR_CLEAR_TX: the transmit FIFO is always empty. */
}

static u64 uart_read(void *opaque, u64 offset, unsigned size)
{
    (void)size;
    struct uart *u = opaque;
    u8 v = 0;
    switch (offset) {
    case REG_DATA:
        if (u->lcr & LCR_DLAB) {
            v = (u8)u->divisor;
        } else {
            v = rx_pop(u);
            restart_timeout(u);
        }
        break;
    case REG_IER:
        v = (u->lcr & LCR_DLAB) ? (u8)(u->divisor >> 8) : u->ier;
        break;
    case REG_IIR_FCR:
        v = iir_source(u);
        if (v == IIR_THRE)
            u->thr_ipending = false; /* reading IIR acknowledges THRE */
        if (fifo_on(u))
            v |= IIR_FIFO_ON;
        break;
    case REG_LCR:
        v = u->lcr;
        break;
    case REG_MCR:
        v = u->mcr;
        break;
    case REG_LSR:
        v = lsr(u);
        /* bit 7: a parity, framing or break error sits in the FIFO */
        if (fifo_on(u) && (u->lsr_errors & (LSR_PE | LSR_FE | LSR_BI)))
            v |= LSR_FIFO_ERR;
        u->lsr_errors = 0; /* error bits clear on read */
        break;
    case REG_MSR:
        v = u->msr;
        u->msr &= (u8)~MSR_DELTAS;
        break;
    case REG_SCR:
        v = u->scr;
        break;
    }
    update_irq(u);
    return v;
}

static void uart_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    (void)size;
    struct uart *u = opaque;
    u8 v = (u8)value;
    switch (offset) {
    case REG_DATA:
        if (u->lcr & LCR_DLAB)
            u->divisor = (u16)((u->divisor & 0xff00) | v);
        else
            write_thr(u, v);
        break;
    case REG_IER:
        if (u->lcr & LCR_DLAB) {
            u->divisor = (u16)((u->divisor & 0x00ff) | (v << 8));
        } else {
            u8 old = u->ier;
            u->ier = v & IER_WRITABLE;
            /* Enabling THRE interrupts while THR is empty raises one at once. */
            if ((u->ier & IER_THRE) && !(old & IER_THRE))
                u->thr_ipending = true;
        }
        break;
    case REG_IIR_FCR:
        write_fcr(u, v);
        break;
    case REG_LCR:
        u->lcr = v;
        break;
    case REG_MCR:
        u->mcr = v & MCR_WRITABLE;
        update_modem_inputs(u);
        break;
    case REG_LSR:
    case REG_MSR:
        break; /* factory test registers on real parts; read-only here */
    case REG_SCR:
        u->scr = v;
        break;
    }
    update_irq(u);
}

static void power_on(struct uart *u)
{
    u->ier = u->lcr = u->mcr = u->lsr_errors = u->scr = u->fcr = 0;
    u->rx_head = u->rx_count = 0;
    u->thr_ipending = u->timeout_ipending = false;
    u->divisor = 12; /* 9600 baud, as a PC BIOS leaves COM1 */
    u->msr = MSR_CONNECTED;
}

void uart_reset(struct uart *u)
{
    power_on(u);
    clock_timer_disarm(&u->m->clock, u->timeout_timer);
    update_irq(u);
}

struct uart *uart_create(struct machine *m, u16 base, int irq, int in_fd, int out_fd)
{
    struct uart *u = calloc(1, sizeof(*u));
    if (!u)
        nestor_panic("out of memory for the UART");
    u->m = m;
    u->base = base;
    u->irq = irq;
    u->in_fd = in_fd;
    u->out_fd = out_fd;
    power_on(u);
    u->timeout_timer = clock_timer_new(&m->clock, timeout_expired, u);
    bus_register(&m->io, base, 8, uart_read, uart_write, u, "uart");
    return u;
}

void uart_destroy(struct uart *u)
{
    if (!u)
        return;
    clock_timer_disarm(&u->m->clock, u->timeout_timer);
    free(u);
}

bool uart_can_receive(const struct uart *u)
{
    /* In loopback the serial input is disconnected from the line. */
    return !(u->mcr & MCR_LOOP) && u->rx_count < rx_capacity(u);
}

bool uart_irq_level(const struct uart *u)
{
    return u->irq_level;
}

void uart_receive(struct uart *u, const u8 *buf, size_t len)
{
    if (u->mcr & MCR_LOOP)
        return;
    for (size_t i = 0; i < len; i++)
        rx_push(u, buf[i]);
    if (len)
        restart_timeout(u);
    update_irq(u);
}

/* ---- state ---- */
#define F(m) STATE_FIELD(struct uart, m)
#define N(m) STATE_NOT_STATE(struct uart, m)
static const struct state_field uart_fields[] = {
    N(m), N(base), N(irq), N(in_fd), N(out_fd),
    F(ier), F(lcr), F(mcr), F(lsr_errors), F(msr), F(scr), F(fcr), F(divisor), F(rx),
    F(rx_head), F(rx_count), F(thr_ipending), F(timeout_ipending), F(irq_level),
    N(timeout_timer), N(output_broken),
};
#undef F
#undef N

static int uart_post_load(void *obj, char *err, size_t errlen)
{
    struct uart *u = obj;
    if (u->rx_head >= FIFO_SIZE || u->rx_count > FIFO_SIZE) {
        return nestor_err(err, errlen, "receive FIFO out of range");
    }
    return 0;
}

static const struct state_desc uart_state_desc =
    STATE_DESC("uart", 1, struct uart, uart_fields, .post_load = uart_post_load);

void uart_state_register(struct uart *u, struct state_registry *r)
{
    state_register(r, &uart_state_desc, u->base, u);
}

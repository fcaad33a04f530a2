/* Unit tests of the 16550A UART through its I/O ports: registers, divisor latch, FIFOs,
 * loopback, interrupt identification and the IRQ line with MCR.OUT2. Output goes to a
 * pipe that the test reads back. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dev/dev.h"
#include "machine/machine.h"

static struct machine m;
static struct uart *uart;
static int pipe_fd[2];

#define COM1 0x3f8

static void setup(void)
{
    memset(&m, 0, sizeof(m));
    bus_init(&m.io, "io");
    clock_init(&m.clock, true);
    cr_assert_eq(pipe(pipe_fd), 0);
    fcntl(pipe_fd[0], F_SETFL, O_NONBLOCK);
    uart = uart_create(&m, COM1, 4, -1, pipe_fd[1]);
}

static void teardown(void)
{
    uart_destroy(uart);
    close(pipe_fd[0]);
    close(pipe_fd[1]);
}

TestSuite(uart, .init = setup, .fini = teardown);

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4,
       LSR = 5, MSR = 6, SCR = 7 };

static u8 in(int reg) { return (u8)bus_read(&m.io, COM1 + (u64)reg, 1); }
static void out(int reg, u8 v) { bus_write(&m.io, COM1 + (u64)reg, 1, v); }

static size_t drain(char *buf, size_t n)
{
    ssize_t r = read(pipe_fd[0], buf, n);
    return r < 0 ? 0 : (size_t)r;
}

Test(uart, transmit_goes_to_the_output_at_once)
{
    const char *msg = "hello\n";
    for (const char *p = msg; *p; p++)
        out(THR, (u8)*p);
    char buf[16] = { 0 };
    cr_assert_eq(drain(buf, sizeof(buf)), strlen(msg));
    cr_assert_str_eq(buf, msg);
    cr_assert_eq(in(LSR), 0x60, "THRE and TEMT, no data");
}

Test(uart, reset_values)
{
    cr_assert_eq(in(IER), 0);
    cr_assert_eq(in(IIR), 0x01);
    cr_assert_eq(in(LCR), 0);
    cr_assert_eq(in(MCR), 0);
    cr_assert_eq(in(LSR), 0x60);
    cr_assert_eq(in(MSR) & 0xf0, 0xb0, "CTS, DSR, DCD from the attached terminal");
    cr_assert(!uart_irq_level(uart));
}

Test(uart, divisor_latch_and_scratch)
{
    out(IER, 0x05);
    out(LCR, 0x83);
    out(DLL, 0x01);
    out(DLM, 0x02);
    cr_assert_eq(in(DLL), 0x01);
    cr_assert_eq(in(DLM), 0x02);
    out(LCR, 0x03);
    cr_assert_eq(in(IER), 0x05, "IER untouched by the divisor writes");
    cr_assert_eq(in(LCR), 0x03);
    out(LCR, 0x83);
    cr_assert_eq(in(DLL) | in(DLM) << 8, 0x0201);
    out(LCR, 0x03);
    out(SCR, 0x5a);
    cr_assert_eq(in(SCR), 0x5a);
    out(IER, 0xff);
    cr_assert_eq(in(IER), 0x0f, "16550A IER has four bits");
    char buf[4];
    cr_assert_eq(drain(buf, sizeof(buf)), 0u, "divisor writes transmit nothing");
}

Test(uart, loopback)
{
    out(MCR, 0x10);
    cr_assert_eq(in(MSR) & 0xf0, 0x00, "modem inputs follow the (clear) outputs");
    (void)in(MSR);
    out(MCR, 0x1f); /* DTR RTS OUT1 OUT2 LOOP */
    cr_assert_eq(in(MSR), 0xf0 | 0x0b, "CTS DSR RI DCD, with DCTS DDSR DDCD");
    cr_assert_eq(in(MSR), 0xf0, "deltas clear on read");
    out(MCR, 0x1b); /* OUT1 (RI) falls: trailing edge */
    cr_assert_eq(in(MSR), 0xb0 | 0x04);

    out(THR, 'x');
    char buf[4];
    cr_assert_eq(drain(buf, sizeof(buf)), 0u, "loopback keeps the byte");
    cr_assert_eq(in(LSR) & 1, 1);
    cr_assert_eq(in(RBR), 'x');
    cr_assert_eq(in(LSR) & 1, 0);
    cr_assert(!uart_can_receive(uart), "the line input is disconnected in loopback");
}

Test(uart, fifo_trigger_overrun_and_order)
{
    out(FCR, 0xc1); /* FIFO on, trigger 14 */
    cr_assert_eq(in(IIR), 0xc1);
    out(IER, 0x01);
    u8 data[16];
    for (int i = 0; i < 16; i++)
        data[i] = (u8)('a' + i);
    uart_receive(uart, data, 13);
    cr_assert_eq(in(IIR), 0xc1, "below the trigger level");
    uart_receive(uart, data + 13, 3);
    cr_assert_eq(in(IIR), 0xc4, "received data available");
    cr_assert(!uart_can_receive(uart));
    uart_receive(uart, (const u8 *)"!", 1);
    out(IER, 0x05);
    cr_assert_eq(in(IIR), 0xc6, "line status (overrun) comes first");
    cr_assert_eq(in(LSR) & 0x03, 0x03, "data ready, overrun");
    cr_assert_eq(in(LSR) & 0x02, 0x00, "overrun clears on read");
    for (int i = 0; i < 16; i++)
        cr_assert_eq(in(RBR), data[i]);
    cr_assert_eq(in(LSR) & 1, 0);
    cr_assert_eq(in(IIR), 0xc1);
}

Test(uart, character_timeout)
{
    out(LCR, 0x03);
    out(FCR, 0x81); /* trigger 8 */
    out(IER, 0x01);
    uart_receive(uart, (const u8 *)"ab", 2);
    cr_assert_eq(in(IIR), 0xc1);
    u64 deadline = clock_next_deadline(&m.clock);
    cr_assert_neq(deadline, CLOCK_NEVER);
    /* 4 characters of 10 bits at 9600 baud (divisor 12) */
    cr_assert_eq(deadline, 4ull * 10 * 1000000000ull * 12 / 115200);
    clock_advance_to(&m.clock, deadline);
    clock_run_timers(&m.clock);
    cr_assert_eq(in(IIR), 0xcc, "character timeout");
    cr_assert_eq(in(RBR), 'a');
    cr_assert_eq(in(IIR), 0xc1, "reading restarts the timeout");
    cr_assert_eq(in(RBR), 'b');
}

Test(uart, no_fifo_holds_one_byte)
{
    uart_receive(uart, (const u8 *)"xy", 2);
    cr_assert_eq(in(LSR) & 0x03, 0x03, "second byte overran");
    cr_assert_eq(in(RBR), 'x');
    cr_assert(uart_can_receive(uart));
}

Test(uart, thre_interrupt_and_out2)
{
    out(IER, 0x02);
    cr_assert(!uart_irq_level(uart), "OUT2 clear: the line stays low");
    out(MCR, 0x08);
    cr_assert(uart_irq_level(uart), "THRE with OUT2");
    cr_assert_eq(in(IIR), 0x02);
    cr_assert(!uart_irq_level(uart), "reading IIR acknowledged THRE");
    cr_assert_eq(in(IIR), 0x01);
    out(THR, 'z');
    cr_assert(uart_irq_level(uart), "the byte went: THRE again");
    out(IER, 0x00);
    cr_assert(!uart_irq_level(uart));

    out(IER, 0x01);
    uart_receive(uart, (const u8 *)"q", 1);
    cr_assert(uart_irq_level(uart));
    out(MCR, 0x18); /* loopback forces OUT2 inactive */
    cr_assert(!uart_irq_level(uart));
    out(MCR, 0x08);
    cr_assert(uart_irq_level(uart));
    cr_assert_eq(in(RBR), 'q');
    cr_assert(!uart_irq_level(uart));
}

Test(uart, modem_status_interrupt)
{
    out(IER, 0x08);
    out(MCR, 0x08 | 0x10 | 0x01); /* OUT2, LOOP, DTR -> DSR changes */
    cr_assert_eq(in(IIR), 0x00, "modem status");
    (void)in(MSR);
    cr_assert_eq(in(IIR), 0x01);
}

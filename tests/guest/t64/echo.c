/* Serial echo for the command-line tests (tests/cli/run.sh): prints "READY", then echoes
 * every byte received on COM1, printable ones as themselves and others as "^XX" (hex),
 * so that the test can see which bytes reached the guest (Ctrl-C, Ctrl-A). On 'Q' it
 * prints "BYE" and exits through the debug-exit port with 0x42 (nestor status 0x85).
 * guest: default=no */
#include "rt.h"

#define COM1 0x3f8
#define LSR_DATA_READY 0x01

static u8 serial_getc(void)
{
    while (!(inb(COM1 + 5) & LSR_DATA_READY))
        pause();
    return inb(COM1);
}

void test_main(void)
{
    printf("READY\n");
    for (;;) {
        u8 c = serial_getc();
        if (c == 'Q') {
            printf("\nBYE\n");
            guest_exit(0x42);
        }
        if (c >= 0x20 && c < 0x7f)
            printf("%c", c);
        else
            printf("^%02x", c);
    }
}

/* Serial output (16550A at 0x3f8), printf, check reporting and exit. */
#include "rt.h"

#define COM1 0x3f8

static spinlock_t print_lock;
unsigned test_passed, test_failed, test_skipped;

void serial_init(void)
{
    outb(COM1 + 1, 0x00); /* no interrupts */
    outb(COM1 + 3, 0x80); /* DLAB */
    outb(COM1 + 0, 0x01); /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0xc7); /* FIFO on, cleared */
    outb(COM1 + 4, 0x03); /* DTR, RTS */
}

void serial_putc(char c)
{
    /* wait for THR empty, but never forever: a missing LSR must not hang the test */
    for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
        pause();
    outb(COM1, (u8)c);
}

void serial_puts(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

/* ---------------------------------------------------------------- formatting */
u64 udiv64(u64 n, u32 d, u32 *rem)
{
#ifdef __x86_64__
    if (rem)
        *rem = (u32)(n % d);
    return n / d;
#else
    u32 hi = (u32)(n >> 32), lo = (u32)n, qhi = hi / d, r = hi % d, qlo;
    asm("divl %4" : "=a"(qlo), "=d"(r) : "a"(lo), "d"(r), "rm"(d));
    if (rem)
        *rem = r;
    return ((u64)qhi << 32) | qlo;
#endif
}

struct out {
    char *buf;
    size_t n, len;
};

static void put(struct out *o, char c)
{
    if (o->buf) {
        if (o->len + 1 < o->n)
            o->buf[o->len] = c;
    } else {
        serial_putc(c);
    }
    o->len++;
}

static void put_number(struct out *o, u64 v, unsigned base, bool neg, int width, bool zero,
                       bool left, bool upper, const char *prefix)
{
    char tmp[24];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        u32 r;
        v = udiv64(v, base, &r);
        tmp[n++] = digits[r];
    } while (v);
    int plen = (int)strlen(prefix) + (neg ? 1 : 0);
    int pad = width - n - plen;
    if (!left && !zero)
        for (; pad > 0; pad--)
            put(o, ' ');
    if (neg)
        put(o, '-');
    for (; *prefix; prefix++)
        put(o, *prefix);
    if (!left && zero)
        for (; pad > 0; pad--)
            put(o, '0');
    while (n)
        put(o, tmp[--n]);
    if (left)
        for (; pad > 0; pad--)
            put(o, ' ');
}

static int format(struct out *o, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(o, *fmt);
            continue;
        }
        bool zero = false, left = false, alt = false;
        int width = 0, lng = 0;
        for (fmt++;; fmt++) {
            if (*fmt == '0')
                zero = true;
            else if (*fmt == '-')
                left = true;
            else if (*fmt == '#')
                alt = true;
            else
                break;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l')
            lng++, fmt++;
        if (*fmt == 'z')
            lng = sizeof(size_t) == 8 ? 2 : 0, fmt++;
        u64 u;
        s64 s;
        switch (*fmt) {
        case 'd':
        case 'i':
            s = lng >= 2 ? va_arg(ap, long long) : lng ? va_arg(ap, long) : va_arg(ap, int);
            put_number(o, s < 0 ? -(u64)s : (u64)s, 10, s < 0, width, zero, left, false, "");
            break;
        case 'u':
        case 'x':
        case 'X':
            u = lng >= 2 ? va_arg(ap, unsigned long long)
                : lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            put_number(o, u, *fmt == 'u' ? 10 : 16, false, width, zero, left, *fmt == 'X',
                       alt && *fmt != 'u' ? "0x" : "");
            break;
        case 'p':
            put_number(o, (ulong)va_arg(ap, void *), 16, false, width, zero, left, false, "0x");
            break;
        case 'c':
            put(o, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            int pad = width - (int)strlen(str);
            if (!left)
                for (; pad > 0; pad--)
                    put(o, ' ');
            while (*str)
                put(o, *str++);
            if (left)
                for (; pad > 0; pad--)
                    put(o, ' ');
            break;
        }
        case '%':
            put(o, '%');
            break;
        case 0:
            return (int)o->len;
        default:
            put(o, '%');
            put(o, *fmt);
        }
    }
    return (int)o->len;
}

int vsnprintf(char *buf, size_t n, const char *fmt, va_list ap)
{
    struct out o = {buf, n, 0};
    format(&o, fmt, ap);
    if (n)
        buf[o.len < n ? o.len : n - 1] = 0;
    return (int)o.len;
}

int snprintf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return r;
}

int vprintf(const char *fmt, va_list ap)
{
    struct out o = {NULL, 0, 0};
    ulong fl = read_flags();
    cli();
    spin_lock(&print_lock);
    format(&o, fmt, ap);
    spin_unlock(&print_lock);
    write_flags(fl);
    return (int)o.len;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vprintf(fmt, ap);
    va_end(ap);
    return r;
}

/* ---------------------------------------------------------------- reporting */
bool report(bool cond, const char *file, int line, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (cond) {
        test_passed++;
        printf("PASS %s\n", msg);
    } else {
        test_failed++;
        printf("FAIL %s (%s:%d)\n", msg, file, line);
    }
    return cond;
}

void test_skip(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    test_skipped++;
    printf("SKIP %s\n", msg);
}

u16 rt_exit_port = 0xf4;

void guest_exit(int code)
{
    cli();
    outb(rt_exit_port, (u8)code);
    /* no debug-exit device: stop here */
    for (;;)
        asm volatile("cli; hlt");
}

void test_done(void)
{
    printf("SUMMARY: %u passed, %u failed, %u skipped\n", test_passed, test_failed,
           test_skipped);
    guest_exit(test_failed ? 1 : 0);
}

void panic(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    serial_puts("FAIL ");
    serial_puts(msg);
    serial_puts("\n");
    guest_exit(0x7e);
}

/* ---------------------------------------------------------------- locks */
void spin_lock(spinlock_t *l)
{
    while (__atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE))
        while (l->v)
            pause();
}

void spin_unlock(spinlock_t *l)
{
    __atomic_store_n(&l->v, 0, __ATOMIC_RELEASE);
}

#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void nestor_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nestor: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int nestor_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void nestor_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nestor: internal error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

int parse_size(const char *s, u64 unit, u64 *out)
{
    /* digits first: strtoull would take a sign (and turn -1 into 2^64-1) */
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    u64 mul = unit;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': mul = KiB; end++; break;
    case 'm': case 'M': mul = MiB; end++; break;
    case 'g': case 'G': mul = GiB; end++; break;
    case 't': case 'T': mul = 1024 * GiB; end++; break;
    default: return -1;
    }
    if ((*end == 'B' || *end == 'b') && end[1] == 0)
        end++;
    if (*end || v > (~0ull) / mul)
        return -1;
    *out = v * mul;
    return 0;
}

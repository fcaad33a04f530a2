#include "common.h"

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

/* Types and small helpers shared by every folder of nestor. */
#ifndef NESTOR_COMMON_H
#define NESTOR_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BIT(n) (1ull << (n))
#define MASK(bits) ((bits) >= 64 ? ~0ull : (BIT(bits) - 1))

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)

/* Messages from nestor itself (never from the guest) go to stderr. */
void nestor_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Internal invariant broken: a nestor bug, never reachable from guest behaviour. */
_Noreturn void nestor_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Formats a message into err (errlen bytes, NULL allowed) and returns -1: the error
 * path of functions that report "0, or -1 with a message". */
int nestor_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* QEMU's size syntax: digits with an optional K, M, G or T suffix (and B); a plain
 * number counts in unit bytes (MiB for -m, bytes for -object size=). 0, or -1 for
 * anything else (a sign, overflow). */
int parse_size(const char *s, u64 unit, u64 *out);

/* Exit statuses of the nestor process that are not the guest's own. They are even:
 * odd statuses belong to the debug-exit port ((v << 1) | 1). */
enum {
    NESTOR_EXIT_OK = 0,          /* guest powered off, reset, or Ctrl-A x */
    NESTOR_EXIT_USAGE = 2,       /* bad command line or malformed kernel image */
    NESTOR_EXIT_GUEST_ERROR = 4, /* triple fault, unsupported guest feature, hung guest */
};

#endif

/* CPU-bound benchmark: a fixed amount of mixed integer work (about 300 million
 * instructions): hashing a buffer, sorting, a sieve, CRC-32 and a small interpreter-like
 * switch loop. Prints the checksum (checked against the known value, so a wrong result
 * fails) and the TSC ticks taken.
 * guest: default=no timeout=600 */
#include "rt.h"

#define BUF_WORDS (256 * 1024)
static u32 buf[BUF_WORDS];
static u8 sieve[2000000];
static u32 crc_table[256];

static u64 xorshift(u64 *s)
{
    u64 x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* FNV-1a over the buffer's bytes, several rounds with the buffer perturbed in between */
static u64 hash_rounds(int rounds)
{
    u64 h = 0xcbf29ce484222325ull;
    for (int r = 0; r < rounds; r++) {
        const u8 *p = (const u8 *)buf;
        for (u32 i = 0; i < sizeof(buf); i += 4) {
            h = (h ^ p[i]) * 0x100000001b3ull;
            h = (h ^ p[i + 3]) * 0x100000001b3ull;
        }
        buf[h % BUF_WORDS] ^= (u32)h;
    }
    return h;
}

/* heap sort: branchy, memory-bound */
static void sift(u32 *a, u32 start, u32 end)
{
    u32 root = start;
    while (2 * root + 1 <= end) {
        u32 child = 2 * root + 1, sw = root;
        if (a[sw] < a[child])
            sw = child;
        if (child + 1 <= end && a[sw] < a[child + 1])
            sw = child + 1;
        if (sw == root)
            return;
        u32 t = a[root];
        a[root] = a[sw];
        a[sw] = t;
        root = sw;
    }
}

static void heap_sort(u32 *a, u32 n)
{
    for (u32 s = n / 2; s-- > 0;)
        sift(a, s, n - 1);
    for (u32 end = n - 1; end > 0; end--) {
        u32 t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift(a, 0, end - 1);
    }
}

static u32 primes(void)
{
    u32 count = 0;
    memset(sieve, 0, sizeof(sieve));
    for (u32 i = 2; i < sizeof(sieve); i++) {
        if (sieve[i])
            continue;
        count++;
        for (u32 j = i * 2; j < sizeof(sieve); j += i)
            sieve[j] = 1;
    }
    return count;
}

static u32 crc32(const void *data, u32 len)
{
    const u8 *p = data;
    u32 c = 0xffffffffu;
    while (len--)
        c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* A tiny stack machine: the dispatch pattern of an interpreter. */
static u64 interp(u32 steps)
{
    static const u8 prog[] = {0, 1, 2, 3, 1, 4, 0, 5, 2, 6, 3, 7};
    u64 acc = 1, x = 7, stack[16];
    int sp = 0;
    for (u32 i = 0; i < steps; i++) {
        switch (prog[i % sizeof(prog)]) {
        case 0: acc += x; break;
        case 1: acc ^= acc >> 3; break;
        case 2: stack[sp++ & 15] = acc; break;
        case 3: x = x * 31 + (stack[--sp & 15] & 0xff); break;
        case 4: acc = (acc << 5) | (acc >> 59); break;
        case 5: acc -= x >> 2; break;
        case 6: x ^= acc; break;
        default: acc += i; break;
        }
    }
    return acc ^ x;
}

#define EXPECTED_CHECKSUM 0x4c84a021757bea98ull /* from a reference run on QEMU TCG */

void test_main(void)
{
    u64 t0 = rdtsc(), seed = 0x9e3779b97f4a7c15ull, sum = 0;
    for (u32 i = 0; i < 256; i++) {
        u32 c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & -(c & 1));
        crc_table[i] = c;
    }
    for (u32 i = 0; i < BUF_WORDS; i++)
        buf[i] = (u32)xorshift(&seed);
    sum ^= hash_rounds(40);
    heap_sort(buf, BUF_WORDS);
    for (u32 i = 1; i < BUF_WORDS; i++)
        if (buf[i - 1] > buf[i])
            panic("bench: heap sort left %u > %u at %u", buf[i - 1], buf[i], i);
    sum = sum * 31 + buf[BUF_WORDS / 2];
    sum = sum * 31 + primes();
    for (int r = 0; r < 8; r++)
        sum = sum * 31 + crc32(buf, sizeof(buf));
    sum = sum * 31 + interp(20000000);
    u64 ticks = rdtsc() - t0;
    printf("bench: checksum %#llx, %llu TSC ticks\n", (unsigned long long)sum,
           (unsigned long long)ticks);
    TEST_EQ(sum, EXPECTED_CHECKSUM, "bench checksum");
}

/* A workload that keeps writing memory, for live-migration tests: memstress SECONDS
 * [MIB]. It fills MIB MiB (default 96) with page patterns derived from each page's
 * number and generation, then for SECONDS rewrites random pages with their next
 * generation, printing progress; at the end it checks every page against the pattern its
 * generation says it must hold and prints "memstress: verified N pages, M wrong". A
 * migration that lost or mixed up a page in between shows as wrong pages. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096u

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void fill(uint64_t *p, uint64_t page, uint32_t gen)
{
    uint64_t s = mix(page << 32 | gen);
    for (unsigned i = 0; i < PAGE / 8; i++)
        p[i] = s + i * 0x100000001b3ull;
}

static int check(const uint64_t *p, uint64_t page, uint32_t gen)
{
    uint64_t s = mix(page << 32 | gen);
    for (unsigned i = 0; i < PAGE / 8; i++)
        if (p[i] != s + i * 0x100000001b3ull)
            return 0;
    return 1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 5;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 96;
    size_t pages = mib * 1024 * 1024 / PAGE;
    uint8_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t *gen = calloc(pages, sizeof(*gen));
    if (mem == MAP_FAILED || !gen) {
        printf("memstress: no memory\n");
        return 1;
    }
    for (size_t i = 0; i < pages; i++)
        fill((uint64_t *)(mem + i * PAGE), i, 0);
    printf("memstress: started, %zu MiB\n", mib);
    fflush(stdout);
    uint64_t x = 1, writes = 0;
    double start = now(), next = start + 1;
    while (now() - start < seconds) {
        for (int k = 0; k < 256; k++) {
            x = mix(x);
            size_t i = x % pages;
            fill((uint64_t *)(mem + i * PAGE), i, ++gen[i]);
            writes++;
        }
        if (now() >= next) {
            printf("memstress: %llu page writes\n", (unsigned long long)writes);
            fflush(stdout);
            next += 1;
        }
    }
    size_t wrong = 0;
    for (size_t i = 0; i < pages; i++)
        wrong += !check((const uint64_t *)(mem + i * PAGE), i, gen[i]);
    printf("memstress: verified %zu pages after %llu page writes, %zu wrong\n", pages,
           (unsigned long long)writes, wrong);
    return wrong != 0;
}

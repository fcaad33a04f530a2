/* The Linux PMU check (tests/linux/run.sh, built into the test initramfs by
 * scripts/linux.sh): counts the user-mode instructions retired around a loop of N and of
 * 2N iterations of "dec; jnz" with perf_event_open(PERF_COUNT_HW_INSTRUCTIONS,
 * exclude_kernel) and prints both counts. Everything outside the loop (the ioctl
 * wrappers' user-mode instructions) is the same in both runs, so on a PMU that counts
 * exactly the difference is exactly 2 * N. AMD's retired-instruction event also counts
 * each interrupt and exception delivered (at the CPL it interrupted): a timer tick in the
 * loop adds one. Each count is the least of RUNS short runs, one no interrupt landed in
 * (a timer tick every 4 ms; a run of a few thousand instructions is far shorter, under
 * ASan too).
 *   perfcount N */
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static long loop_count(int fd, uint64_t n, uint64_t *count)
{
    if (ioctl(fd, PERF_EVENT_IOC_RESET, 0) < 0 || ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) < 0)
        return -1;
    /* two instructions per iteration */
    asm volatile("1: dec %0\n\tjnz 1b" : "+r"(n) : : "cc");
    if (ioctl(fd, PERF_EVENT_IOC_DISABLE, 0) < 0)
        return -1;
    return read(fd, count, sizeof(*count)) == sizeof(*count) ? 0 : -1;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 100000;
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_HARDWARE;
    attr.config = PERF_COUNT_HW_INSTRUCTIONS;
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    int fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
    if (fd < 0) {
        perror("perf_event_open");
        return 1;
    }
    enum { RUNS = 31 };
    uint64_t a = UINT64_MAX, b = UINT64_MAX;
    for (int k = 0; k < RUNS; k++) {
        uint64_t x, y;
        if (loop_count(fd, n, &x) < 0 || loop_count(fd, 2 * n, &y) < 0) {
            perror("perf counter");
            return 1;
        }
        a = x < a ? x : a;
        b = y < b ? y : b;
    }
    printf("instructions, loop of %llu: %llu\n", (unsigned long long)n, (unsigned long long)a);
    printf("instructions, loop of %llu: %llu\n", (unsigned long long)(2 * n), (unsigned long long)b);
    printf("difference: %llu for %llu more iterations\n", (unsigned long long)(b - a),
           (unsigned long long)n);
    return 0;
}

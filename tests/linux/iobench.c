/* The PV device benchmark run inside the guest (make bench, section 8), a static binary
 * in the test initramfs:
 *   iobench disk DEV MIB   sequential write then read of MIB MiB in 1 MiB O_DIRECT
 *                          blocks, then 4 KiB O_DIRECT reads at random offsets for 3 s
 *                          (one at a time): MB/s, MB/s, IOPS
 *   iobench tcp IP PORT MIB  MIB MiB sent over one TCP connection: MB/s
 * Times are the guest's CLOCK_MONOTONIC. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int disk(const char *dev, long mib)
{
    int fd = open(dev, O_RDWR | O_DIRECT);
    if (fd < 0) {
        perror(dev);
        return 1;
    }
    void *buf;
    if (posix_memalign(&buf, 4096, 1 << 20))
        return 1;
    memset(buf, 0x5a, 1 << 20);
    double t = now();
    for (long i = 0; i < mib; i++)
        if (pwrite(fd, buf, 1 << 20, (off_t)i << 20) != 1 << 20) {
            perror("write");
            return 1;
        }
    fdatasync(fd);
    double w = now() - t;
    t = now();
    for (long i = 0; i < mib; i++)
        if (pread(fd, buf, 1 << 20, (off_t)i << 20) != 1 << 20) {
            perror("read");
            return 1;
        }
    double r = now() - t;
    printf("iobench: seq-write %.1f MB/s\n", mib * 1.048576 / w);
    printf("iobench: seq-read %.1f MB/s\n", mib * 1.048576 / r);
    uint64_t x = 88172645463325252ull, ops = 0, blocks = (uint64_t)mib * 256;
    t = now();
    double end = t + 3;
    while (now() < end) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (pread(fd, buf, 4096, (off_t)(x % blocks) * 4096) != 4096) {
            perror("random read");
            return 1;
        }
        ops++;
    }
    printf("iobench: rand-read-4k %.0f IOPS\n", ops / (now() - t));
    close(fd);
    return 0;
}

static int tcp(const char *ip, int port, long mib)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_aton(ip, &a.sin_addr);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a))) {
        perror("connect");
        return 1;
    }
    static char buf[1 << 16];
    memset(buf, 'n', sizeof(buf));
    double t = now();
    for (long left = mib << 20; left > 0;) {
        ssize_t n = write(s, buf, left < (long)sizeof(buf) ? (size_t)left : sizeof(buf));
        if (n <= 0) {
            perror("send");
            return 1;
        }
        left -= n;
    }
    shutdown(s, SHUT_WR);
    char c;
    while (read(s, &c, 1) > 0) /* the host closes once it has it all */
        ;
    printf("iobench: tcp-send %.1f MB/s\n", mib * 1.048576 / (now() - t));
    close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "disk"))
        return disk(argv[2], atol(argv[3]));
    if (argc == 5 && !strcmp(argv[1], "tcp"))
        return tcp(argv[2], atoi(argv[3]), atol(argv[4]));
    fprintf(stderr, "usage: iobench disk DEV MIB | iobench tcp IP PORT MIB\n");
    return 2;
}

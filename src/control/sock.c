/* The control plane's sockets. */
#include "control/sock.h"

#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int unix_addr(const char *path, struct sockaddr_un *sa, char *err, size_t errlen)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (!path[0] || strlen(path) >= sizeof(sa->sun_path))
        return nestor_err(err, errlen, "unix:%s: not a socket path", path);
    strcpy(sa->sun_path, path);
    return 0;
}

/* "HOST:PORT" resolved; *res freed by the caller */
static int inet_addr(const char *hostport, bool passive, struct addrinfo **res, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof(host) || !colon[1])
        return nestor_err(err, errlen, "tcp:%s: expected tcp:HOST:PORT", hostport);
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = passive ? AI_PASSIVE : 0 };
    int r = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, res);
    if (r)
        return nestor_err(err, errlen, "tcp:%s: %s", hostport, gai_strerror(r));
    return 0;
}

int sock_listen(const char *addr, bool nonblock, char *err, size_t errlen)
{
    int flags = SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
    int fd = -1;
    if (!strncmp(addr, "unix:", 5)) {
        struct sockaddr_un sa;
        if (unix_addr(addr + 5, &sa, err, errlen) < 0)
            return -1;
        unlink(sa.sun_path);
        fd = socket(AF_UNIX, flags, 0);
        if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)) {
            int e = errno;
            close(fd);
            errno = e;
            fd = -1;
        }
    } else if (!strncmp(addr, "tcp:", 4)) {
        struct addrinfo *res;
        if (inet_addr(addr + 4, true, &res, err, errlen) < 0)
            return -1;
        for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | (flags & ~SOCK_STREAM), a->ai_protocol);
            int one = 1;
            if (fd >= 0)
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (fd >= 0 && (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 8) < 0)) {
                int e = errno;
                close(fd);
                errno = e;
                fd = -1;
            }
        }
        freeaddrinfo(res);
    } else {
        return nestor_err(err, errlen, "%s: expected tcp:HOST:PORT or unix:PATH", addr);
    }
    if (fd < 0)
        return nestor_err(err, errlen, "%s: %s", addr, strerror(errno));
    return fd;
}

int sock_connect(const char *addr, char *err, size_t errlen)
{
    int fd = -1;
    if (!strncmp(addr, "unix:", 5)) {
        struct sockaddr_un sa;
        if (unix_addr(addr + 5, &sa, err, errlen) < 0)
            return -1;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            fd = -1;
        }
    } else if (!strncmp(addr, "tcp:", 4)) {
        struct addrinfo *res;
        if (inet_addr(addr + 4, false, &res, err, errlen) < 0)
            return -1;
        for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
                int e = errno;
                close(fd);
                errno = e;
                fd = -1;
            }
        }
        freeaddrinfo(res);
    } else {
        return nestor_err(err, errlen, "%s: expected tcp:HOST:PORT or unix:PATH", addr);
    }
    if (fd < 0)
        return nestor_err(err, errlen, "%s: %s", addr, strerror(errno));
    return fd;
}

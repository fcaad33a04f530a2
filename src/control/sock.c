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

/* A socket of the address's family, bound and listening or connected; -1 with errno. */
static int open_socket(int family, int flags, const struct sockaddr *sa, socklen_t len, bool listening)
{
    int fd = socket(family, flags, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (listening && family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (listening ? bind(fd, sa, len) < 0 || listen(fd, 8) < 0 : connect(fd, sa, len) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int open_addr(const char *addr, int flags, bool listening, char *err, size_t errlen)
{
    int fd = -1;
    if (!strncmp(addr, "unix:", 5)) {
        struct sockaddr_un sa;
        if (unix_addr(addr + 5, &sa, err, errlen) < 0)
            return -1;
        if (listening)
            unlink(sa.sun_path);
        fd = open_socket(AF_UNIX, flags, (struct sockaddr *)&sa, sizeof(sa), listening);
    } else if (!strncmp(addr, "tcp:", 4)) {
        struct addrinfo *res;
        if (inet_addr(addr + 4, listening, &res, err, errlen) < 0)
            return -1;
        for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next)
            fd = open_socket(a->ai_family, flags, a->ai_addr, a->ai_addrlen, listening);
        freeaddrinfo(res);
    } else {
        return nestor_err(err, errlen, "%s: expected tcp:HOST:PORT or unix:PATH", addr);
    }
    if (fd < 0)
        return nestor_err(err, errlen, "%s: %s", addr, strerror(errno));
    return fd;
}

int sock_listen(const char *addr, bool nonblock, char *err, size_t errlen)
{
    return open_addr(addr, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), true, err, errlen);
}

int sock_connect(const char *addr, char *err, size_t errlen)
{
    return open_addr(addr, SOCK_STREAM | SOCK_CLOEXEC, false, err, errlen);
}

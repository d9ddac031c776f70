/* iowait: waiting on descriptors and the kinds of descriptors one waits on,
 * in one process (no threads, no fork): eventfd, socketpair (stream and
 * datagram), poll/ppoll, select/pselect, epoll (data returned verbatim,
 * level and edge triggered, MOD/DEL, timeouts), timerfd (relative,
 * absolute, interval), an AF_UNIX stream socket through
 * bind/listen/connect/accept in directory argv[1], SCM_RIGHTS, memfd with
 * sendfile and splice.  Prints only deterministic results. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e)
{
    switch (e) {
    case 0: return "0";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EINTR: return "EINTR";
    case ENOTSOCK: return "ENOTSOCK";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EADDRINUSE: return "EADDRINUSE";
    case EPIPE: return "EPIPE";
    case ENOTCONN: return "ENOTCONN";
    default: return "other";
    }
}

/* The result of a call that may fail: "n" or "-1 ENAME". */
static const char *res(long r)
{
    static char buf[8][48];
    static int slot;
    char *b = buf[slot++ & 7];
    if (r < 0)
        snprintf(b, 48, "-1 %s", errname(errno));
    else
        snprintf(b, 48, "%ld", r);
    return b;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_eventfd(void)
{
    int fd = eventfd(5, EFD_NONBLOCK | EFD_CLOEXEC);
    uint64_t v = 0;
    long r = read(fd, &v, 8);
    printf("eventfd: read %ld value %llu\n", r, (unsigned long long)v);
    printf("eventfd: empty read %s\n", res(read(fd, &v, 8)));
    v = 2;
    write(fd, &v, 8);
    v = 3;
    write(fd, &v, 8);
    r = read(fd, &v, 8);
    printf("eventfd: two writes read as %llu\n", (unsigned long long)v);
    printf("eventfd: cloexec %d\n", (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    close(fd);
    fd = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    int n = 0;
    while (read(fd, &v, 8) == 8 && v == 1)
        n++;
    printf("eventfd: semaphore gave %d ones then %s\n", n, errname(errno));
    printf("eventfd: bad flags %s\n", res(eventfd(0, 0x80)));
    close(fd);
}

static void test_socketpair_poll(void)
{
    int sv[2];
    printf("socketpair: %s\n", res(socketpair(AF_UNIX, SOCK_STREAM, 0, sv)));
    struct pollfd p[3] = {{sv[1], POLLIN, 0}, {sv[0], POLLOUT, 0}, {-1, POLLIN, 0}};
    int r = poll(p, 3, 0);   /* never a call among other arguments: evaluation order differs */
    printf("poll: empty %d revents %#x %#x\n", r, p[0].revents, p[1].revents);
    write(sv[0], "ping", 4);
    r = poll(p, 1, 1000);
    printf("poll: after write %d revents %#x\n", r, p[0].revents);
    char buf[16] = {0};
    printf("poll: read %zd '%.4s'\n", read(sv[1], buf, sizeof buf), buf);
    struct pollfd bad = {1000, POLLIN, 0};
    r = poll(&bad, 1, -1);
    printf("poll: bad fd %d revents %#x\n", r, bad.revents);
    long long t0 = now_ms();
    r = poll(p, 1, 60);
    printf("poll: timeout %d waited>=50ms %d\n", r, now_ms() - t0 >= 50);
    struct timespec ts = {0, 50 * 1000000};
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    t0 = now_ms();
    r = ppoll(p, 1, &ts, &mask);
    printf("ppoll: timeout %d waited>=40ms %d\n", r, now_ms() - t0 >= 40);
    write(sv[1], "x", 1);
    ts.tv_sec = 5;
    ts.tv_nsec = 0;
    struct pollfd q = {sv[0], POLLIN | POLLOUT, 0};
    r = ppoll(&q, 1, &ts, NULL);
    printf("ppoll: ready %d revents %#x\n", r, q.revents);
    read(sv[0], buf, 1);
    shutdown(sv[1], SHUT_WR);
    q.events = POLLIN;
    r = poll(&q, 1, 1000);
    ssize_t got = read(sv[0], buf, sizeof buf);
    printf("poll: after peer shutdown %d revents %#x read %zd\n", r, q.revents, got);
    close(sv[1]);
    q.events = POLLOUT;
    r = poll(&q, 1, 1000);
    printf("poll: after peer close %d hup %d\n", r, (q.revents & POLLHUP) != 0);
    close(sv[0]);
}

static void test_select(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    fd_set rd, wr;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(sv[0], &rd);
    FD_SET(sv[1], &wr);
    int nfds = (sv[0] > sv[1] ? sv[0] : sv[1]) + 1;
    struct timeval tv = {1, 0};
    int r = select(nfds, &rd, &wr, NULL, &tv);
    printf("select: %d read %d write %d\n", r, FD_ISSET(sv[0], &rd), FD_ISSET(sv[1], &wr));
    FD_ZERO(&rd);
    FD_SET(sv[0], &rd);
    tv.tv_sec = 0;
    tv.tv_usec = 50000;
    long long t0 = now_ms();
    r = select(nfds, &rd, NULL, NULL, &tv);
    printf("select: timeout %d set %d waited>=40ms %d\n", r, FD_ISSET(sv[0], &rd),
           now_ms() - t0 >= 40);
    write(sv[1], "abc", 3);
    FD_ZERO(&rd);
    FD_SET(sv[0], &rd);
    FD_SET(sv[1], &rd);
    struct timespec ts = {2, 0};
    sigset_t mask;
    sigemptyset(&mask);
    r = pselect(nfds, &rd, NULL, NULL, &ts, &mask);
    printf("pselect: %d read %d %d\n", r, FD_ISSET(sv[0], &rd), FD_ISSET(sv[1], &rd));
    /* Linux's select ignores descriptors beyond the fd table's size, which
     * depends on what the parent had open: grow the table past 100 first, so
     * fd 100 is a closed descriptor (EBADF) and not an ignored one (a hang). */
    dup2(0, 100);
    close(100);
    FD_ZERO(&rd);
    FD_SET(100, &rd);
    r = select(101, &rd, NULL, NULL, NULL);
    printf("select: bad fd %s\n", res(r));
    tv.tv_sec = -1;
    printf("select: negative timeout %s\n", res(select(0, NULL, NULL, NULL, &tv)));
    close(sv[0]);
    close(sv[1]);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = ((const struct epoll_event *)a)->data.u64;
    uint64_t y = ((const struct epoll_event *)b)->data.u64;
    return x < y ? -1 : x > y;
}

static void test_epoll(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    printf("epoll: create1 ok %d cloexec %d\n", ep >= 0, (fcntl(ep, F_GETFD) & FD_CLOEXEC) != 0);
    printf("epoll: create1 bad flags %s\n", res(epoll_create1(1)));
    int sv[2], efd = eventfd(0, EFD_NONBLOCK);
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ULL};
    printf("epoll: add %s\n", res(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev)));
    printf("epoll: add again %s\n", res(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev)));
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 0xFFFFFFFFFFFFFFFEULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    struct epoll_event out[8];
    printf("epoll: nothing ready %d\n", epoll_wait(ep, out, 8, 0));
    long long t0 = now_ms();
    int r = epoll_wait(ep, out, 8, 50);
    printf("epoll: timeout %d waited>=40ms %d\n", r, now_ms() - t0 >= 40);
    write(sv[0], "hi", 2);
    uint64_t one = 1;
    write(efd, &one, 8);
    r = epoll_wait(ep, out, 8, 1000);
    qsort(out, r, sizeof out[0], cmp_u64);
    printf("epoll: %d ready\n", r);
    for (int i = 0; i < r; i++)
        printf("epoll:   events %#x data %#llx\n", out[i].events,
               (unsigned long long)out[i].data.u64);
    /* level-triggered stays ready, edge-triggered does not */
    r = epoll_wait(ep, out, 8, 0);
    printf("epoll: again %d data %#llx\n", r, r > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
    r = epoll_pwait(ep, out, 1, 0, NULL);
    printf("epoll: maxevents 1 -> %d\n", r);
    ev.events = EPOLLOUT;
    ev.data.u64 = 42;
    printf("epoll: mod %s\n", res(epoll_ctl(ep, EPOLL_CTL_MOD, sv[1], &ev)));
    printf("epoll: del %s\n", res(epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL)));
    printf("epoll: del again %s\n", res(epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL)));
    r = epoll_wait(ep, out, 8, 0);
    printf("epoll: after mod %d events %#x data %llu\n", r, out[0].events,
           (unsigned long long)out[0].data.u64);
    printf("epoll: maxevents 0 %s\n", res(epoll_wait(ep, out, 0, 0)));
    printf("epoll: not an epoll fd %s\n", res(epoll_wait(efd, out, 1, 0)));
    printf("epoll: add itself %s\n", res(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev)));
    /* the epoll fd is itself pollable */
    struct pollfd p = {ep, POLLIN, 0};
    printf("epoll: poll on epoll fd %d\n", poll(&p, 1, 0));
    close(sv[0]);
    close(sv[1]);
    close(efd);
    close(ep);
}

static void test_timerfd(void)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    printf("timerfd: create ok %d\n", fd >= 0);
    struct itimerspec its = {{0, 10 * 1000000}, {0, 10 * 1000000}}, old;
    printf("timerfd: settime %s\n", res(timerfd_settime(fd, 0, &its, &old)));
    printf("timerfd: old disarmed %d\n", old.it_value.tv_sec == 0 && old.it_value.tv_nsec == 0);
    struct itimerspec cur;
    timerfd_gettime(fd, &cur);
    printf("timerfd: interval %ld ns, value in (0, 10ms] %d\n", cur.it_interval.tv_nsec,
           cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 10000000);
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 2000);
    printf("timerfd: poll %d revents %#x\n", r, p.revents);
    uint64_t n = 0;
    r = read(fd, &n, 8);
    printf("timerfd: read %d expirations>=1 %d\n", r, n >= 1);
    usleep(35000);
    read(fd, &n, 8);
    printf("timerfd: after 35ms expirations>=2 %d\n", n >= 2);
    memset(&its, 0, sizeof its);
    timerfd_settime(fd, 0, &its, NULL);
    timerfd_gettime(fd, &cur);
    printf("timerfd: disarmed %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    printf("timerfd: read disarmed %s\n", res(read(fd, &n, 8)));
    /* absolute, one-shot */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    its.it_value = now;
    its.it_value.tv_nsec += 20 * 1000000;
    if (its.it_value.tv_nsec >= 1000000000) {
        its.it_value.tv_sec++;
        its.it_value.tv_nsec -= 1000000000;
    }
    printf("timerfd: abstime %s\n", res(timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL)));
    p.revents = 0;
    r = poll(&p, 1, 2000);
    n = 0;
    read(fd, &n, 8);
    printf("timerfd: abstime fired %d expirations %llu\n", r, (unsigned long long)n);
    its.it_value.tv_nsec = 1000000000;
    printf("timerfd: bad timespec %s\n", res(timerfd_settime(fd, 0, &its, NULL)));
    printf("timerfd: bad clock %s\n", res(timerfd_create(12345, 0)));
    close(fd);
}

static void test_unix_stream(void)
{
    int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, "iowait.sock");
    socklen_t alen = offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path) + 1;
    unlink(a.sun_path);
    int cli0 = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("unix: connect before bind %s\n", res(connect(cli0, (struct sockaddr *)&a, alen)));
    close(cli0);
    printf("unix: bind %s\n", res(bind(srv, (struct sockaddr *)&a, alen)));
    struct stat st;
    printf("unix: socket file %d\n", stat(a.sun_path, &st) == 0 && S_ISSOCK(st.st_mode));
    printf("unix: listen %s\n", res(listen(srv, 4)));
    fcntl(srv, F_SETFL, O_NONBLOCK);
    printf("unix: accept nobody %s\n", res(accept(srv, NULL, NULL)));
    fcntl(srv, F_SETFL, 0);
    struct pollfd p = {srv, POLLIN, 0};
    printf("unix: listener poll %d\n", poll(&p, 1, 0));
    int cli = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("unix: connect %s\n", res(connect(cli, (struct sockaddr *)&a, alen)));
    int r = poll(&p, 1, 1000);
    printf("unix: listener poll %d revents %#x\n", r, p.revents);
    struct sockaddr_un peer;
    socklen_t plen = sizeof peer;
    int conn = accept4(srv, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK);
    printf("unix: accept4 ok %d peer len %u nonblock %d\n", conn >= 0, (unsigned)plen,
           (fcntl(conn, F_GETFL) & O_NONBLOCK) != 0);
    struct sockaddr_un name;
    socklen_t nlen = sizeof name;
    getsockname(srv, (struct sockaddr *)&name, &nlen);
    printf("unix: getsockname '%s' len %u\n", name.sun_path, (unsigned)nlen);
    nlen = sizeof name;
    getpeername(cli, (struct sockaddr *)&name, &nlen);
    printf("unix: getpeername '%s'\n", name.sun_path);
    nlen = 4;
    memset(&name, 0, sizeof name);
    getsockname(srv, (struct sockaddr *)&name, &nlen);
    printf("unix: short getsockname len %u first bytes '%.2s'\n", (unsigned)nlen, name.sun_path);
    char buf[64] = {0};
    printf("unix: send %zd\n", send(cli, "hello server", 12, 0));
    printf("unix: recv %zd '%.12s'\n", recv(conn, buf, sizeof buf, 0), buf);
    printf("unix: recv empty %s\n", res(recv(conn, buf, sizeof buf, 0)));
    send(conn, "abcdef", 6, 0);
    memset(buf, 0, sizeof buf);
    printf("unix: peek %zd '%.3s'\n", recv(cli, buf, 3, MSG_PEEK), buf);
    printf("unix: waitall %zd '%.6s'\n", recv(cli, buf, 6, MSG_WAITALL), buf);
    int type = 0;
    socklen_t tl = sizeof type;
    getsockopt(conn, SOL_SOCKET, SO_TYPE, &type, &tl);
    printf("unix: SO_TYPE %d\n", type);
    struct timeval tv = {0, 30000};
    setsockopt(cli, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    long long t0 = now_ms();
    printf("unix: recv with SO_RCVTIMEO %s", res(recv(cli, buf, sizeof buf, 0)));
    printf(" waited>=20ms %d\n", now_ms() - t0 >= 20);
    shutdown(cli, SHUT_WR);
    printf("unix: recv after peer SHUT_WR %s\n", res(recv(conn, buf, sizeof buf, 0)));
    printf("unix: send after SHUT_WR %s\n", res(send(cli, "x", 1, MSG_NOSIGNAL)));
    close(conn);
    close(cli);
    close(srv);
    printf("unix: bind again %s\n", res(bind(socket(AF_UNIX, SOCK_STREAM, 0),
                                             (struct sockaddr *)&a, alen)));
    unlink(a.sun_path);
}

static void test_dgram_and_rights(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    send(sv[0], "one", 3, 0);
    send(sv[0], "three", 5, 0);
    char buf[16] = {0};
    printf("dgram: %zd '%.3s'", recv(sv[1], buf, sizeof buf, 0), buf);
    printf(" %zd '%.5s'\n", recv(sv[1], buf, sizeof buf, 0), buf);
    send(sv[0], "truncated", 9, 0);
    printf("dgram: MSG_TRUNC %zd\n", recv(sv[1], buf, 4, MSG_TRUNC));

    /* SCM_RIGHTS: send an eventfd and a pipe end, use them through the copies */
    int efd = eventfd(7, 0), pp[2];
    pipe(pp);
    int fds[2] = {efd, pp[1]};
    union {
        char buf[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct iovec iov = {"F", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    printf("rights: sendmsg %zd\n", sendmsg(sv[0], &m, 0));
    close(efd);
    close(pp[1]);
    char data[4];
    struct iovec riov = {data, sizeof data};
    memset(&u, 0, sizeof u);
    struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof u.buf};
    ssize_t r = recvmsg(sv[1], &rm, MSG_CMSG_CLOEXEC);
    c = CMSG_FIRSTHDR(&rm);
    int got[2] = {-1, -1};
    if (c && c->cmsg_type == SCM_RIGHTS)
        memcpy(got, CMSG_DATA(c), sizeof got);
    printf("rights: recvmsg %zd '%c' level %d type %d len %zu ctrunc %d\n", r, data[0],
           c ? c->cmsg_level : -1, c ? c->cmsg_type : -1, c ? (size_t)c->cmsg_len : 0,
           (rm.msg_flags & MSG_CTRUNC) != 0);
    printf("rights: new fds distinct %d cloexec %d\n", got[0] >= 0 && got[1] >= 0 && got[0] != got[1],
           (fcntl(got[0], F_GETFD) & FD_CLOEXEC) != 0);
    uint64_t v = 0;
    read(got[0], &v, 8);
    printf("rights: eventfd through the copy %llu\n", (unsigned long long)v);
    write(got[1], "via", 3);
    close(got[1]);
    memset(buf, 0, sizeof buf);
    printf("rights: pipe through the copy %zd '%.3s'\n", read(pp[0], buf, sizeof buf), buf);
    close(got[0]);
    close(pp[0]);
    /* a closed fd cannot be sent */
    memset(&u, 0, sizeof u);
    c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int badfd = 200;
    memcpy(CMSG_DATA(c), &badfd, sizeof badfd);
    m.msg_controllen = CMSG_SPACE(sizeof(int));
    printf("rights: sending a closed fd %s\n", res(sendmsg(sv[0], &m, 0)));
    close(sv[0]);
    close(sv[1]);
}

static void test_memfd_sendfile(void)
{
    int mfd = memfd_create("iowait", MFD_CLOEXEC);
    printf("memfd: create ok %d\n", mfd >= 0);
    write(mfd, "0123456789", 10);
    struct stat st;
    fstat(mfd, &st);
    printf("memfd: size %lld\n", (long long)st.st_size);
    char *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, mfd, 0);
    printf("memfd: mapped '%.4s'\n", map);
    munmap(map, 4096);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    off_t off = 3;
    ssize_t sent = sendfile(sv[0], mfd, &off, 4);
    printf("sendfile: %zd offset now %lld\n", sent, (long long)off);
    char buf[16] = {0};
    printf("sendfile: received %zd '%.4s'\n", recv(sv[1], buf, sizeof buf, 0), buf);
    int pp[2];
    pipe(pp);
    loff_t loff = 6;
    printf("splice: file to pipe %zd\n", splice(mfd, &loff, pp[1], NULL, 4, 0));
    printf("splice: pipe to socket %zd\n", splice(pp[0], NULL, sv[0], NULL, 4, 0));
    memset(buf, 0, sizeof buf);
    printf("splice: received %zd '%.4s'\n", recv(sv[1], buf, sizeof buf, 0), buf);
    close(pp[0]);
    close(pp[1]);
    close(sv[0]);
    close(sv[1]);
    close(mfd);
}

int main(int argc, char **argv)
{
    if (argc < 2 || chdir(argv[1]) != 0) {
        printf("usage: iowait DIR\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_eventfd();
    test_socketpair_poll();
    test_select();
    test_epoll();
    test_timerfd();
    test_unix_stream();
    test_dgram_and_rights();
    test_memfd_sendfile();
    printf("done\n");
    return 0;
}

/* The floor for bench/run's HTTP rows: a minimal epoll server in C with no
 * runtime, answering the same bytes as coro's and tokio's "200 OK" servers
 * (keep-alive, pipelining: one write for all complete requests of a read,
 * "Connection: close"). It parses only enough to count requests (the end of
 * each head) and to see "Connection: close"; no timers, no allocation per
 * request. Usage as the other servers: --port P [--threads N] (N threads,
 * one SO_REUSEPORT listener and epoll each); other flags are ignored. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char OK[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
static const char OK_CLOSE[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n"
    "Connection: close\r\n\r\nHello, World!";

#define BUF 16384
#define MAXFD 65536

struct conn {
    size_t have; /* bytes of an unfinished head kept from the last read */
    char in[BUF];
};

static struct conn *conns[MAXFD];
static int port = 8080;

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Answer every complete request head in c->in; returns -1 to close. */
static int serve(int fd, struct conn *c) {
    static __thread char out[BUF / 16 * sizeof OK_CLOSE + sizeof OK_CLOSE];
    size_t used = 0, start = 0, o = 0;
    int close_after = 0;
    for (;;) {
        char *end = memmem(c->in + start, c->have - start, "\r\n\r\n", 4);
        if (!end) break;
        size_t head_end = (size_t)(end - c->in) + 4;
        /* "Connection: close" anywhere in this head. */
        char saved = c->in[head_end - 1];
        c->in[head_end - 1] = 0;
        int is_close = strcasestr(c->in + start, "\r\nconnection: close") != NULL;
        c->in[head_end - 1] = saved;
        const char *r = is_close ? OK_CLOSE : OK;
        size_t n = is_close ? sizeof OK_CLOSE - 1 : sizeof OK - 1;
        if (o + n > sizeof out) break;
        memcpy(out + o, r, n);
        o += n;
        start = used = head_end;
        if (is_close) { close_after = 1; break; }
    }
    if (used) {
        memmove(c->in, c->in + used, c->have - used);
        c->have -= used;
    }
    if (c->have == BUF) return -1; /* a head larger than the buffer */
    size_t off = 0;
    while (off < o) {
        ssize_t w = write(fd, out + off, o - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1; /* a full socket buffer ends the connection: loopback load never fills it */
        }
        off += (size_t)w;
    }
    return close_after ? -1 : 0;
}

/* Bound and listening before "listening" is printed: the harness starts
 * its load as soon as it reads that line. */
static int listener(void) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(l, 4096) < 0) die("listen");
    return l;
}

static void *loop(void *arg) {
    int l = (int)(intptr_t)arg;
    int one = 1;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                for (;;) {
                    int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0) break;
                    if (c >= MAXFD) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (!conns[c]) conns[c] = malloc(sizeof(struct conn));
                    conns[c]->have = 0;
                    struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            /* Level-triggered: one read per readiness, as a request per
             * event is the common case; what is left is reported again. */
            struct conn *c = conns[fd];
            int dead = 0;
            ssize_t r = read(fd, c->in + c->have, BUF - c->have);
            if (r > 0) {
                c->have += (size_t)r;
                dead = serve(fd, c) < 0;
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                dead = 1;
            }
            if (dead) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 1;
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
    }
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    int ls[64];
    for (int i = 0; i < threads; i++) ls[i] = listener();
    printf("http_floor_epoll: listening on 127.0.0.1:%d (%d threads)\n", port, threads);
    fflush(stdout);
    pthread_t t[64];
    for (int i = 1; i < threads; i++) pthread_create(&t[i], NULL, loop, (void *)(intptr_t)ls[i]);
    loop((void *)(intptr_t)ls[0]);
    return 0;
}

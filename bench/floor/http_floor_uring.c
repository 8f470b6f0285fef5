/* The io_uring floor for bench/run's HTTP rows: the same bytes and
 * connection policies as http_floor_epoll.c (keep-alive, pipelining: one
 * send for all complete requests of a receive, "Connection: close"), with
 * the kernel features that make a completion server cheapest and no
 * runtime: a DEFER_TASKRUN single-issuer ring, multishot accept, and per
 * connection one multishot receive that picks its buffers from a
 * provided-buffer ring. It answers the question whether the completion
 * path can go below the epoll floor at all. Built with liburing (bench/run
 * installs liburing-dev when missing). Usage as the other servers:
 * --port P [--threads N] (N threads, one SO_REUSEPORT listener and ring
 * each); other flags are ignored. */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static const char OK[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
static const char OK_CLOSE[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n"
    "Connection: close\r\n\r\nHello, World!";

#define BUF 16384
#define MAXFD 65536
#define NBUFS 1024 /* provided buffers per ring (a power of two) */
#define BUFSZ 4096
#define BGID 0

/* user_data: a heap send record (pointer, low bits 0) or fd << 3 | tag. */
enum { T_ACCEPT = 1, T_RECV = 2, T_SEND_STATIC = 3 };

struct conn {
    size_t have;  /* bytes of an unfinished head kept from the last receive */
    int sends;    /* sends in flight */
    int closing;  /* the last response was sent or the peer went away */
    int recv_on;  /* a multishot receive is armed */
    char in[BUF];
};

struct heap_send {
    int fd;
    char data[];
};

struct worker {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    char *bufs;
    struct conn *conns[MAXFD];
};

static int port = 8080;

static void die(const char *what, int err) {
    fprintf(stderr, "%s: %s\n", what, strerror(err));
    exit(1);
}

static struct io_uring_sqe *sqe_of(struct worker *w) {
    struct io_uring_sqe *s = io_uring_get_sqe(&w->ring);
    if (!s) {
        io_uring_submit(&w->ring);
        s = io_uring_get_sqe(&w->ring);
        if (!s) die("io_uring_get_sqe", EBUSY);
    }
    return s;
}

static void arm_recv(struct worker *w, int fd) {
    struct io_uring_sqe *s = sqe_of(w);
    io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = BGID;
    io_uring_sqe_set_data64(s, (uint64_t)fd << 3 | T_RECV);
    w->conns[fd]->recv_on = 1;
}

static void arm_accept(struct worker *w, int l) {
    struct io_uring_sqe *s = sqe_of(w);
    io_uring_prep_multishot_accept(s, l, NULL, NULL, 0);
    io_uring_sqe_set_data64(s, (uint64_t)l << 3 | T_ACCEPT);
}

static void give_back(struct worker *w, unsigned bid) {
    io_uring_buf_ring_add(w->br, w->bufs + (size_t)bid * BUFSZ, BUFSZ, bid,
                          io_uring_buf_ring_mask(NBUFS), 0);
    io_uring_buf_ring_advance(w->br, 1);
}

/* The connection is done: once nothing of ours is in flight, close it.
 * A shutdown ends the armed receive (it completes with 0). */
static void finish(struct worker *w, int fd) {
    struct conn *c = w->conns[fd];
    c->closing = 1;
    if (c->sends) return;
    if (c->recv_on) {
        shutdown(fd, SHUT_RDWR);
        return;
    }
    close(fd);
}

/* Answer every complete request head in `p[0..n)`; returns the bytes used
 * and sets *close_after. Responses leave in one send. */
static size_t serve(struct worker *w, int fd, const char *p, size_t n, int *close_after) {
    static __thread char out[BUF / 16 * sizeof OK_CLOSE + sizeof OK_CLOSE];
    size_t used = 0, o = 0, count = 0;
    const char *one = NULL;
    size_t one_len = 0;
    *close_after = 0;
    for (;;) {
        const char *end = memmem(p + used, n - used, "\r\n\r\n", 4);
        if (!end) break;
        size_t head_end = (size_t)(end - p) + 4;
        /* "Connection: close" anywhere in this head (heads are short). */
        char head[BUF + 1];
        size_t hl = head_end - used;
        memcpy(head, p + used, hl);
        head[hl] = 0;
        int is_close = strcasestr(head, "\r\nconnection: close") != NULL;
        one = is_close ? OK_CLOSE : OK;
        one_len = is_close ? sizeof OK_CLOSE - 1 : sizeof OK - 1;
        if (o + one_len > sizeof out) break;
        memcpy(out + o, one, one_len);
        o += one_len;
        count++;
        used = head_end;
        if (is_close) { *close_after = 1; break; }
    }
    if (count == 0) return used;
    struct io_uring_sqe *s = sqe_of(w);
    if (count == 1) {
        /* The common case: a static response, no copy, no allocation. */
        io_uring_prep_send(s, fd, one, one_len, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(s, (uint64_t)fd << 3 | T_SEND_STATIC);
    } else {
        struct heap_send *h = malloc(sizeof *h + o);
        h->fd = fd;
        memcpy(h->data, out, o);
        io_uring_prep_send(s, fd, h->data, o, MSG_NOSIGNAL);
        io_uring_sqe_set_data(s, h);
    }
    w->conns[fd]->sends++;
    return used;
}

static void on_recv(struct worker *w, int fd, struct io_uring_cqe *cqe) {
    struct conn *c = w->conns[fd];
    int more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) c->recv_on = 0;
    if (cqe->res <= 0) {
        if (cqe->res == -ENOBUFS && !c->closing) {
            arm_recv(w, fd); /* buffers are back by the next submit */
            return;
        }
        finish(w, fd);
        return;
    }
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    const char *data = w->bufs + (size_t)bid * BUFSZ;
    size_t n = (size_t)cqe->res;
    int close_after = 0;
    if (c->closing) {
        give_back(w, bid);
    } else if (c->have == 0) {
        /* Parse in place; keep only an unfinished head. */
        size_t used = serve(w, fd, data, n, &close_after);
        if (used < n && !close_after) {
            if (n - used > BUF) close_after = 1;
            else {
                memcpy(c->in, data + used, n - used);
                c->have = n - used;
            }
        }
        give_back(w, bid);
    } else {
        if (c->have + n > BUF) {
            close_after = 1;
        } else {
            memcpy(c->in + c->have, data, n);
            c->have += n;
            size_t used = serve(w, fd, c->in, c->have, &close_after);
            memmove(c->in, c->in + used, c->have - used);
            c->have -= used;
        }
        give_back(w, bid);
    }
    if (close_after) {
        finish(w, fd);
    } else if (!more && !c->closing) {
        arm_recv(w, fd);
    }
}

static void on_send(struct worker *w, int fd, int res) {
    struct conn *c = w->conns[fd];
    c->sends--;
    /* A short or failed send ends the connection: loopback load never
     * fills a socket buffer with these sizes. */
    if (res < 0) c->closing = 1;
    if (c->closing) finish(w, fd);
}

/* Bound and listening before "listening" is printed: the harness starts
 * its load as soon as it reads that line. */
static int listener(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0) die("bind", errno);
    if (listen(l, 4096) < 0) die("listen", errno);
    return l;
}

static void *loop(void *arg) {
    struct worker *w = calloc(1, sizeof *w);
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int r = io_uring_queue_init_params(4096, &w->ring, &p);
    if (r < 0) die("io_uring_queue_init_params (needs Linux 6.1)", -r);
    /* The provided-buffer ring. */
    size_t ring_bytes = NBUFS * sizeof(struct io_uring_buf);
    w->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (w->br == MAP_FAILED) die("mmap", errno);
    io_uring_buf_ring_init(w->br);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)w->br,
                                   .ring_entries = NBUFS, .bgid = BGID};
    r = io_uring_register_buf_ring(&w->ring, &reg, 0);
    if (r < 0) die("io_uring_register_buf_ring (needs Linux 5.19)", -r);
    w->bufs = malloc((size_t)NBUFS * BUFSZ);
    for (unsigned i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(w->br, w->bufs + (size_t)i * BUFSZ, BUFSZ, i,
                              io_uring_buf_ring_mask(NBUFS), (int)i);
    io_uring_buf_ring_advance(w->br, NBUFS);

    int l = (int)(intptr_t)arg;
    int one = 1;
    arm_accept(w, l);

    for (;;) {
        r = io_uring_submit_and_wait(&w->ring, 1);
        if (r < 0 && r != -EINTR) die("io_uring_submit_and_wait", -r);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe) {
            seen++;
            uint64_t ud = cqe->user_data;
            unsigned tag = ud & 7;
            int fd = (int)(ud >> 3);
            if (tag == T_ACCEPT) {
                if (cqe->res >= 0) {
                    int c = cqe->res;
                    if (c >= MAXFD) { close(c); }
                    else {
                        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                        if (!w->conns[c]) w->conns[c] = malloc(sizeof(struct conn));
                        w->conns[c]->have = 0;
                        w->conns[c]->sends = 0;
                        w->conns[c]->closing = 0;
                        arm_recv(w, c);
                    }
                }
                if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(w, fd);
            } else if (tag == T_RECV) {
                on_recv(w, fd, cqe);
            } else if (tag == T_SEND_STATIC) {
                on_send(w, fd, cqe->res);
            } else {
                struct heap_send *h = (struct heap_send *)(uintptr_t)ud;
                int hfd = h->fd;
                free(h);
                on_send(w, hfd, cqe->res);
            }
        }
        io_uring_cq_advance(&w->ring, seen);
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
    printf("http_floor_uring: listening on 127.0.0.1:%d (%d threads)\n", port, threads);
    fflush(stdout);
    pthread_t t[64];
    for (int i = 1; i < threads; i++) pthread_create(&t[i], NULL, loop, (void *)(intptr_t)ls[i]);
    loop((void *)(intptr_t)ls[0]);
    return 0;
}

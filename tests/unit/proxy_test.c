/* Tests for core/net/proxy: a real proxy on 127.0.0.1:0 with its own loop,
 * run by the test's main thread; real upstream servers on 127.0.0.1:0, each
 * an accept thread plus a thread per connection on plain blocking sockets;
 * clients on blocking sockets in a helper thread. Clients and upstreams
 * record the first thing that went wrong instead of asserting (Criterion's
 * asserts belong to the test's thread); the test asserts after the loop has
 * stopped, every thread has been joined and every socket closed, and every
 * test ends with uv_loop_close() == 0. Nothing asserts on timings. */
#include "core/net/proxy.h"

#include "core/lib/err.h"
#include "core/lib/sb.h"
#include "core/lib/xalloc.h"
#include "core/net/http.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define IO_TIMEOUT_S 20
#define BIG ((size_t)10 << 20)
#define MAX_UCONNS 64

struct fx;

static void fx_fail(struct fx *f, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define CHECK(f, cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fx_fail((f), __LINE__, __VA_ARGS__);                                                   \
    } while (0)

/* ---- upstream servers (their own threads) ---- */

struct ups {
    struct fx *f;
    char id;
    int lfd, port;
    pthread_t th;
    bool running;
    atomic_int stop;
    atomic_int conns;     /* connections accepted */
    atomic_int reqs;      /* requests seen */
    atomic_int body_seen; /* first body byte of a /upload arrived */
    atomic_int release;   /* a /slow request may be answered */
    atomic_int big_sent;  /* a /big response went whole into the socket */
    pthread_mutex_t mu;
    pthread_t cth[MAX_UCONNS];
    int cfd[MAX_UCONNS];
    int ncth;
    char last_head[4096];
};

struct uc {
    struct ups *u;
    int fd;
    char *buf;
    size_t len, cap;
};

static bool u_fill(struct uc *c)
{
    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 131072;
        c->buf = xrealloc(c->buf, c->cap);
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            return true;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR) && !atomic_load(&c->u->stop))
            continue;
        return false;
    }
}

static void u_consume(struct uc *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static bool sendall(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        s += k;
        n -= (size_t)k;
    }
    return true;
}

static bool sends(int fd, const char *s)
{
    return sendall(fd, s, strlen(s));
}

static uint32_t fnv(const void *p, size_t n, uint32_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}
#define FNV0 2166136261u

static char *pattern(size_t n)
{
    char *p = xmalloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (char)(x >> 16);
    }
    return p;
}

static const char *hdr_in(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r");
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = 0;
            return out;
        }
    }
    return NULL;
}

/* u_body: read a request body (length or chunked) as it comes */
static bool u_body(struct uc *c, const char *head, size_t *len, uint32_t *sum, bool upload)
{
    char v[64];
    *len = 0;
    *sum = FNV0;
    if (hdr_in(head, "Transfer-Encoding", v, sizeof v)) {
        for (;;) {
            char *e;
            while (!(e = memmem(c->buf, c->len, "\r\n", 2)))
                if (!u_fill(c))
                    return false;
            size_t n = strtoul(c->buf, NULL, 16);
            u_consume(c, (size_t)(e - c->buf) + 2);
            if (n == 0) {
                while (!(e = memmem(c->buf, c->len, "\r\n", 2)))
                    if (!u_fill(c))
                        return false;
                u_consume(c, (size_t)(e - c->buf) + 2);
                return true;
            }
            while (c->len < n + 2)
                if (!u_fill(c))
                    return false;
            *sum = fnv(c->buf, n, *sum);
            *len += n;
            u_consume(c, n + 2);
        }
    }
    size_t want = hdr_in(head, "Content-Length", v, sizeof v) ? strtoull(v, NULL, 10) : 0;
    while (*len < want) {
        if (!c->len && !u_fill(c))
            return false;
        if (upload)
            atomic_store(&c->u->body_seen, 1);
        size_t k = c->len < want - *len ? c->len : want - *len;
        *sum = fnv(c->buf, k, *sum);
        *len += k;
        u_consume(c, k);
    }
    return true;
}

static void u_serve(struct uc *c, const char *head, const char *path, size_t blen, uint32_t sum)
{
    char b[8192];
    int fd = c->fd;
    if (strcmp(path, "/hello") == 0) {
        snprintf(b, sizeof b, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-Up: %c\r\n\r\nhello %c",
                 c->u->id, c->u->id);
        sends(fd, b);
    } else if (strcmp(path, "/echo") == 0 || strcmp(path, "/upload") == 0) {
        char body[128];
        int n = snprintf(body, sizeof body, "len=%zu sum=%08x", blen, sum);
        snprintf(b, sizeof b, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", n, body);
        sends(fd, b);
    } else if (strcmp(path, "/head") == 0) {
        snprintf(b, sizeof b,
                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: X-Secret\r\n"
                 "X-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\nTrailer: X-T\r\n\r\n",
                 strlen(head));
        sends(fd, b);
        sends(fd, head);
    } else if (strcmp(path, "/chunked") == 0) {
        sends(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 1; i <= 20; i++) {
            char piece[64];
            int n = snprintf(piece, sizeof piece, "piece-%d;", i);
            snprintf(b, sizeof b, "%x\r\n%s\r\n", n, piece);
            sends(fd, b);
            if (i % 5 == 0)
                usleep(2000);
        }
        sends(fd, "0\r\n\r\n");
    } else if (strcmp(path, "/big") == 0) {
        char *big = pattern(BIG);
        snprintf(b, sizeof b, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", BIG);
        if (sends(fd, b) && sendall(fd, big, BIG))
            atomic_store(&c->u->big_sent, 1);
        free(big);
    } else if (strcmp(path, "/die") == 0) {
        sends(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        memset(b, 'x', 1000);
        sendall(fd, b, 1000);
        usleep(20000);
        shutdown(fd, SHUT_RDWR);
    } else if (strcmp(path, "/die-chunked") == 0) {
        sends(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        usleep(20000);
        shutdown(fd, SHUT_RDWR);
    } else if (strcmp(path, "/silent") == 0) { /* reads the request, never answers */
        while (u_fill(c))
            c->len = 0;
    } else if (strcmp(path, "/stall") == 0) { /* a head and 4 of 100 bytes, then silence */
        sends(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart");
        while (u_fill(c))
            c->len = 0;
    } else if (strcmp(path, "/stall-eof") == 0) { /* no length: the end is the connection's */
        sends(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart");
        while (u_fill(c))
            c->len = 0;
    } else if (strcmp(path, "/stall-chunked") == 0) { /* a chunk, then silence */
        sends(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n");
        while (u_fill(c))
            c->len = 0;
    } else if (strcmp(path, "/slow") == 0) { /* answers once the test releases it */
        for (int i = 0;
             i < IO_TIMEOUT_S * 1000 && !atomic_load(&c->u->release) && !atomic_load(&c->u->stop);
             i++)
            usleep(1000);
        snprintf(b, sizeof b, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nslow %c", c->u->id);
        sends(fd, b);
    } else if (strcmp(path, "/ws") == 0) {
        sends(fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\n\r\n");
        for (;;) { /* echo until the end */
            if (!c->len && !u_fill(c))
                break;
            if (!sendall(fd, c->buf, c->len))
                break;
            c->len = 0;
        }
        shutdown(fd, SHUT_RDWR);
    } else {
        sends(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n");
    }
}

static void *u_conn_main(void *arg)
{
    struct uc *c = arg;
    struct ups *u = c->u;
    bool drop_next = false; /* after a /ka-drop: the next request gets no answer */
    for (;;) {
        char *e;
        while (!(e = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL))
            if (!u_fill(c))
                goto out;
        size_t hl = (size_t)(e - c->buf) + 4;
        char *head = xstrndup(c->buf, hl);
        u_consume(c, hl);
        atomic_fetch_add(&u->reqs, 1);
        pthread_mutex_lock(&u->mu);
        snprintf(u->last_head, sizeof u->last_head, "%s", head);
        pthread_mutex_unlock(&u->mu);
        if (drop_next) { /* as a keep-alive timeout firing while the request arrives */
            free(head);
            shutdown(c->fd, SHUT_RDWR);
            break;
        }
        char method[16] = "", path[256] = "";
        sscanf(head, "%15s %255s", method, path);
        char *q = strchr(path, '?');
        if (q)
            *q = 0;
        size_t blen;
        uint32_t sum;
        bool ok = u_body(c, head, &blen, &sum, strcmp(path, "/upload") == 0);
        if (ok && strcmp(method, "HEAD") == 0) /* a length, never a body */
            ok = sends(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
        else if (ok && strcmp(path, "/ka-drop") == 0)
            drop_next = sends(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nka-drop");
        else if (ok && strcmp(path, "/hello-close") == 0) /* keep-alive, then closes idle */
            sends(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        else if (ok)
            u_serve(c, head, path, blen, sum);
        free(head);
        if (strcmp(path, "/hello-close") == 0) {
            shutdown(c->fd, SHUT_RDWR);
            break;
        }
        if (!ok || strcmp(path, "/die") == 0 || strcmp(path, "/ws") == 0 ||
            strcmp(path, "/die-chunked") == 0 || strcmp(path, "/silent") == 0 ||
            strcmp(path, "/stall") == 0 || strcmp(path, "/stall-eof") == 0 ||
            strcmp(path, "/stall-chunked") == 0)
            break;
    }
out:
    free(c->buf);
    free(c);
    return NULL;
}

static void *u_accept_main(void *arg)
{
    struct ups *u = arg;
    while (!atomic_load(&u->stop)) {
        struct pollfd pf = {.fd = u->lfd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int fd = accept4(u->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = 0, .tv_usec = 200000}; /* to look at stop */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        atomic_fetch_add(&u->conns, 1);
        pthread_mutex_lock(&u->mu);
        if (u->ncth == MAX_UCONNS) {
            pthread_mutex_unlock(&u->mu);
            close(fd);
            continue;
        }
        struct uc *c = xcalloc(1, sizeof *c);
        c->u = u;
        c->fd = fd;
        u->cfd[u->ncth] = fd;
        pthread_create(&u->cth[u->ncth++], NULL, u_conn_main, c);
        pthread_mutex_unlock(&u->mu);
    }
    return NULL;
}

/* ups_listen: an upstream on fd, a bound socket not yet listening; false
 * (fd still the caller's) when it cannot listen. Asserts nothing, so that a
 * client thread may call it. */
static bool ups_listen(struct ups *u, struct fx *f, char id, int fd)
{
    memset(u, 0, sizeof *u);
    u->f = f;
    u->id = id;
    struct sockaddr_in a;
    socklen_t sl = sizeof a;
    if (listen(fd, 64) != 0 || getsockname(fd, (struct sockaddr *)&a, &sl) != 0)
        return false;
    pthread_mutex_init(&u->mu, NULL);
    u->lfd = fd;
    u->port = ntohs(a.sin_port);
    if (pthread_create(&u->th, NULL, u_accept_main, u) != 0) {
        pthread_mutex_destroy(&u->mu);
        return false;
    }
    u->running = true;
    return true;
}

static void ups_start(struct ups *u, struct fx *f, char id)
{
    memset(u, 0, sizeof *u);
    u->f = f;
    u->id = id;
    pthread_mutex_init(&u->mu, NULL);
    u->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(u->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof a;
    cr_assert_eq(bind(u->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(u->lfd, 64), 0);
    getsockname(u->lfd, (struct sockaddr *)&a, &sl);
    u->port = ntohs(a.sin_port);
    u->running = true;
    pthread_create(&u->th, NULL, u_accept_main, u);
}

static void ups_stop(struct ups *u)
{
    if (!u->running)
        return;
    atomic_store(&u->stop, 1);
    pthread_join(u->th, NULL);
    for (int i = 0; i < u->ncth; i++)
        shutdown(u->cfd[i], SHUT_RDWR);
    for (int i = 0; i < u->ncth; i++) {
        pthread_join(u->cth[i], NULL);
        close(u->cfd[i]);
    }
    close(u->lfd);
    pthread_mutex_destroy(&u->mu);
    u->running = false;
}

/* ---- the fixture: the proxy on the test's thread ---- */

typedef void (*client_fn)(struct fx *f);

struct fx {
    uv_loop_t loop;
    struct proxy *px;
    uv_async_t done;
    uv_timer_t later; /* answers a held request */
    struct proxy_limits lim;
    int port;
    client_fn client;
    pthread_t th;
    atomic_int done_sent;
    pthread_mutex_t mu;
    char *fail;
    struct ups up[2];
    int nups;
    char addr[3][64]; /* what decide forwards to */
    int naddr;
    struct proxy_req *held;
    atomic_int decided, gone_calls, logs, closed;
    atomic_int close_called; /* on_done called proxy_close */
    int spare_fd;            /* a bound socket a test hands to a client (-1: none) */
    unsigned close_ms;       /* proxy_close's deadline [2000] */
    proxy_decide_fn decide;  /* instead of the fixture's decide */
    int nreq;                /* requests that decide saw (loop thread) */
    long long down_ms_seen;  /* how long a client took over what down_ms must cover */
    int last_log_status;
    bool last_log_complete;
    struct proxy_stats stats; /* copied when the proxy has closed */
};

static void fx_fail(struct fx *f, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&f->mu);
    if (!f->fail)
        f->fail = xasprintf("line %d: %s", line, msg);
    pthread_mutex_unlock(&f->mu);
}

static void forward(struct fx *f, struct proxy_req *r)
{
    struct proxy_upstream ups[3];
    for (int i = 0; i < f->naddr; i++)
        ups[i].addr = f->addr[i];
    int rc = proxy_forward(r, "svc", ups, (size_t)f->naddr);
    CHECK(f, rc == 0 || rc == PE_CANCELED, "proxy_forward: %d", rc);
}

static void on_later(uv_timer_t *t)
{
    struct fx *f = t->data;
    struct proxy_req *r = f->held;
    f->held = NULL;
    if (r)
        forward(f, r);
}

static void decide(struct proxy_req *r, void *ctx)
{
    struct fx *f = ctx;
    atomic_fetch_add(&f->decided, 1);
    const char *path = proxy_req_path(r);
    if (strcmp(path, "/hold") == 0) { /* answered later, from a timer */
        f->held = r;
        uv_timer_start(&f->later, on_later, 50, 0);
        return;
    }
    if (strcmp(path, "/hold-forever") == 0) {
        f->held = r;
        return;
    }
    if (strcmp(path, "/reply") == 0) {
        struct http_hdr h[] = {{"X-Mine", "yes"}};
        proxy_reply(r, 201, h, 1, "text/plain", "made here\n", 10);
        return;
    }
    forward(f, r);
}

static void gone(struct proxy_req *r, void *ctx)
{
    struct fx *f = ctx;
    atomic_fetch_add(&f->gone_calls, 1);
    if (f->held == r)
        f->held = NULL;
    CHECK(f, proxy_req_gone(r), "gone called on a live request");
    proxy_req_drop(r);
}

static void logf_(const struct proxy_log *l, void *ctx)
{
    struct fx *f = ctx;
    atomic_fetch_add(&f->logs, 1);
    f->last_log_status = l->status;
    f->last_log_complete = l->complete;
    CHECK(f, l->method && l->target && l->host && l->remote, "log record with a NULL string");
}

/* proxy_close's callback gets only the proxy: one fixture per test process */
static struct fx *the_fx;

static void on_closed(struct proxy *p)
{
    struct fx *f = the_fx;
    f->stats = *proxy_stats(p);
    atomic_store(&f->closed, 1);
}

static void on_done(uv_async_t *a)
{
    struct fx *f = a->data;
    if (f->held) { /* a test that left one held: the embedder answers it */
        struct proxy_req *r = f->held;
        f->held = NULL;
        proxy_req_drop(r);
    }
    proxy_close(f->px, f->close_ms ? f->close_ms : 2000, on_closed);
    atomic_store(&f->close_called, 1);
    uv_close((uv_handle_t *)a, NULL);
    uv_close((uv_handle_t *)&f->later, NULL);
}

static void *client_main(void *arg)
{
    struct fx *f = arg;
    f->client(f);
    if (!atomic_exchange(&f->done_sent, 1))
        uv_async_send(&f->done);
    return NULL;
}

static void assert_no_leaks(void)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (report on stderr)");
#endif
}

static void fx_init(struct fx *f, int nups)
{
    memset(f, 0, sizeof *f);
    the_fx = f;
    pthread_mutex_init(&f->mu, NULL);
    cr_assert_eq(uv_loop_init(&f->loop), 0);
    f->nups = nups;
    for (int i = 0; i < nups; i++) {
        ups_start(&f->up[i], f, (char)('A' + i));
        snprintf(f->addr[i], sizeof f->addr[i], "127.0.0.1:%d", f->up[i].port);
    }
    f->naddr = nups;
    f->spare_fd = -1;
}

/* fx_run: start the proxy, run client in a thread and the loop here until
 * the proxy has closed, stop the upstreams, then check */
static void fx_run(struct fx *f, client_fn client)
{
    struct err e = {0};
    uv_async_init(&f->loop, &f->done, on_done);
    f->done.data = f;
    uv_timer_init(&f->loop, &f->later);
    f->later.data = f;
    struct proxy_opts o = {.lim = f->lim,
                           .decide = f->decide ? f->decide : decide,
                           .gone = gone,
                           .log = logf_,
                           .ctx = f,
                           .via = false};
    int rc = proxy_start(&f->px, &f->loop, "127.0.0.1:0", &o, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    f->port = proxy_port(f->px);
    cr_assert_gt(f->port, 0);
    f->client = client;
    cr_assert_eq(pthread_create(&f->th, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(f->th, NULL);
    for (int i = 0; i < f->nups; i++)
        ups_stop(&f->up[i]);
    cr_assert(atomic_load(&f->closed), "the close callback was not called");
    cr_assert_eq(uv_loop_close(&f->loop), 0, "a handle is still open");
    pthread_mutex_destroy(&f->mu);
    char *fail = f->fail;
    f->fail = NULL;
    if (fail) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", fail);
        free(fail);
        cr_assert_fail("%s", msg);
    }
    assert_no_leaks();
}

/* ---- the client side (helper thread, blocking sockets) ---- */

struct cl {
    int fd;
    char *buf;
    size_t len, cap;
};

struct resp {
    int status;
    char head[4096];
    char *body;
    size_t blen;
    bool chunked;
};

static bool cl_open(struct cl *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return false;
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    return true;
}

static void cl_close(struct cl *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

static bool cl_fill(struct cl *c)
{
    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 131072;
        c->buf = xrealloc(c->buf, c->cap);
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

static void cl_consume(struct cl *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static const char *resp_header(const struct resp *r, const char *name)
{
    static _Thread_local char val[512];
    return hdr_in(r->head, name, val, sizeof val);
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* cl_resp: one final response, body de-chunked; false when the connection
 * ended before the response was whole */
static bool cl_resp_(struct cl *c, struct resp *r, bool head_req)
{
    memset(r, 0, sizeof *r);
    for (;;) {
        char *e = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (!e) {
            if (!cl_fill(c))
                return false;
            continue;
        }
        size_t hl = (size_t)(e - c->buf) + 4;
        size_t cp = hl < sizeof r->head ? hl : sizeof r->head - 1;
        memcpy(r->head, c->buf, cp);
        r->head[cp] = 0;
        cl_consume(c, hl);
        if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
            return false;
        if (r->status >= 100 && r->status < 200 && r->status != 101)
            continue;
        break;
    }
    const char *te = resp_header(r, "Transfer-Encoding");
    if (te && !head_req) {
        r->chunked = true;
        size_t cap = 4096;
        r->body = xmalloc(cap);
        for (;;) {
            char *e;
            while (!(e = c->len ? memmem(c->buf, c->len, "\r\n", 2) : NULL))
                if (!cl_fill(c))
                    return false;
            size_t n = strtoul(c->buf, NULL, 16);
            cl_consume(c, (size_t)(e - c->buf) + 2);
            while (c->len < n + 2)
                if (!cl_fill(c))
                    return false;
            if (n == 0) {
                if (memcmp(c->buf, "\r\n", 2) != 0)
                    return false;
                cl_consume(c, 2);
                r->body[r->blen] = 0;
                return true;
            }
            if (r->blen + n + 1 > cap) {
                while (r->blen + n + 1 > cap)
                    cap *= 2;
                r->body = xrealloc(r->body, cap);
            }
            memcpy(r->body + r->blen, c->buf, n);
            r->blen += n;
            cl_consume(c, n + 2);
        }
    }
    const char *cl = resp_header(r, "Content-Length");
    size_t n = cl ? (size_t)strtoull(cl, NULL, 10) : 0;
    if (head_req || r->status == 204 || r->status == 304 || r->status == 101)
        n = 0;
    bool to_eof = !cl && !head_req && r->status != 204 && r->status != 304 && r->status != 101;
    if (to_eof) {
        while (cl_fill(c))
            ;
        n = c->len;
    }
    while (c->len < n)
        if (!cl_fill(c))
            return false;
    r->body = xmalloc(n + 1);
    memcpy(r->body, c->buf, n);
    r->body[n] = 0;
    r->blen = n;
    cl_consume(c, n);
    return true;
}

static bool cl_resp(struct cl *c, struct resp *r, bool head_req)
{
    if (cl_resp_(c, r, head_req))
        return true;
    resp_free(r);
    return false;
}

/* cl_eof: the proxy closed the connection and sent nothing more */
__attribute__((unused)) static bool cl_eof(struct cl *c)
{
    if (c->len)
        return false;
    char b;
    ssize_t n = recv(c->fd, &b, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* req: one request on a new connection; the status (0: none) */
static int req(struct fx *f, const char *text, struct resp *r)
{
    struct cl c;
    if (!cl_open(&c, f->port))
        return 0;
    int st = 0;
    if (sendall(c.fd, text, strlen(text)) && cl_resp(&c, r, false))
        st = r->status;
    cl_close(&c);
    return st;
}

/* ---- tests ---- */

TestSuite(proxy, .timeout = 120);

static void c_get(struct fx *f)
{
    struct resp r;
    int st = req(f, "GET /hello?x=1 HTTP/1.1\r\nHost: App.Example.COM.:8080\r\n\r\n", &r);
    CHECK(f, st == 200, "status %d", st);
    if (st == 200) {
        CHECK(f, strcmp(r.body, "hello A") == 0, "body '%s'", r.body);
        const char *v = resp_header(&r, "X-Up");
        CHECK(f, v && strcmp(v, "A") == 0, "x-up %s", v ? v : "-");
        CHECK(f, strncmp(r.head, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", r.head);
    }
    resp_free(&r);
}

Test(proxy, a_get_is_forwarded_and_answered)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_get);
    cr_assert_eq(f.stats.requests, 1);
    cr_assert_eq(f.stats.responses[2], 1);
    cr_assert_eq(f.stats.conns_open, 0);
    cr_assert_eq(f.stats.upstream_conns_open, 0);
    cr_assert_eq(atomic_load(&f.logs), 1);
    cr_assert_eq(f.last_log_status, 200);
    cr_assert(f.last_log_complete);
}

static void c_keepalive(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    for (int i = 0; i < 5; i++) {
        struct resp r;
        bool ok = sends(c.fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n") && cl_resp(&c, &r, false);
        CHECK(f, ok && r.status == 200, "request %d: %d", i, ok ? r.status : 0);
        CHECK(f, !ok || strcmp(r.body, "hello A") == 0, "body");
        resp_free(&r);
        if (!ok)
            break;
    }
    cl_close(&c);
    /* a second client connection reuses the pooled upstream one */
    struct resp r;
    int st = req(f, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 200, "status %d", st);
    resp_free(&r);
}

Test(proxy, keep_alive_requests_share_one_upstream_connection)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_keepalive);
    cr_assert_eq(atomic_load(&f.up[0].reqs), 6);
    cr_assert_eq(atomic_load(&f.up[0].conns), 1, "upstream saw %d connections",
                 atomic_load(&f.up[0].conns));
    cr_assert_eq(f.stats.upstream_reuses, 5);
    cr_assert_eq(f.stats.upstream_conns_made, 1);
}

/* a 10 MB body streams: the upstream has its first bytes before the client
 * sends the last ones, and gets every byte */
static void c_upload(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    char *body = pattern(BIG);
    char head[256];
    snprintf(head, sizeof head, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n",
             BIG);
    bool ok = sends(c.fd, head) && sendall(c.fd, body, BIG - 4096);
    for (int i = 0; ok && i < IO_TIMEOUT_S * 1000 && !atomic_load(&f->up[0].body_seen); i++)
        usleep(1000);
    CHECK(f, atomic_load(&f->up[0].body_seen), "the upstream saw no body before its end");
    ok = ok && sendall(c.fd, body + BIG - 4096, 4096);
    struct resp r;
    ok = ok && cl_resp(&c, &r, false);
    CHECK(f, ok && r.status == 200, "status %d", ok ? r.status : 0);
    if (ok) {
        char want[64];
        snprintf(want, sizeof want, "len=%zu sum=%08x", BIG, fnv(body, BIG, FNV0));
        CHECK(f, strcmp(r.body, want) == 0, "got '%s' want '%s'", r.body, want);
        resp_free(&r);
    }
    free(body);
    cl_close(&c);
}

Test(proxy, a_10_mb_post_streams_to_the_upstream_intact)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_upload);
}

/* the /echo answer for the body "hello world" on c (when ok), then close c */
static void expect_hello_echo(struct fx *f, struct cl *c, bool ok)
{
    struct resp r;
    ok = ok && cl_resp(c, &r, false);
    CHECK(f, ok && r.status == 200, "status %d", ok ? r.status : 0);
    if (ok) {
        char want[64];
        snprintf(want, sizeof want, "len=11 sum=%08x", fnv("hello world", 11, FNV0));
        CHECK(f, strcmp(r.body, want) == 0, "got '%s' want '%s'", r.body, want);
        resp_free(&r);
    }
    cl_close(c);
}

/* a chunked request body goes upstream chunked and whole */
static void c_chunked_req(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port))
        return;
    bool ok = sends(c.fd, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    expect_hello_echo(f, &c, ok);
}

Test(proxy, a_chunked_request_body_arrives_whole)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_chunked_req);
}

/* a chunked response stays chunked for HTTP/1.1 and is whole; an HTTP/1.0
 * client gets it de-chunked, ended by the connection's end */
static void c_chunked(struct fx *f)
{
    char want[512] = "";
    for (int i = 1; i <= 20; i++) {
        char piece[32];
        snprintf(piece, sizeof piece, "piece-%d;", i);
        strcat(want, piece);
    }
    struct resp r;
    int st = req(f, "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 200, "status %d", st);
    if (st) {
        CHECK(f, r.chunked, "not chunked: %s", r.head);
        CHECK(f, strcmp(r.body, want) == 0, "body '%s'", r.body);
        resp_free(&r);
    }
    st = req(f, "GET /chunked HTTP/1.0\r\n\r\n", &r);
    CHECK(f, st == 200, "1.0 status %d", st);
    if (st) {
        CHECK(f, !r.chunked, "chunked to HTTP/1.0: %s", r.head);
        CHECK(f, strcmp(r.body, want) == 0, "1.0 body '%s'", r.body);
        resp_free(&r);
    }
}

Test(proxy, chunked_responses_keep_their_framing_and_body)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_chunked);
}

static void c_ws(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port))
        return;
    bool ok = sends(c.fd, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                          "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n");
    struct resp r;
    ok = ok && cl_resp(&c, &r, false);
    CHECK(f, ok && r.status == 101, "status %d", ok ? r.status : 0);
    if (ok) {
        const char *v = resp_header(&r, "Upgrade");
        CHECK(f, v && strcasecmp(v, "websocket") == 0, "upgrade %s", v ? v : "-");
        resp_free(&r);
    }
    for (int i = 0; ok && i < 3; i++) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "frame %d through the tunnel", i);
        ok = sendall(c.fd, msg, (size_t)n);
        while (ok && c.len < (size_t)n)
            ok = cl_fill(&c);
        CHECK(f, ok && memcmp(c.buf, msg, (size_t)n) == 0, "echo %d", i);
        if (ok)
            cl_consume(&c, (size_t)n);
    }
    shutdown(c.fd, SHUT_WR);
    CHECK(f, cl_eof(&c), "the tunnel did not end");
    cl_close(&c);
}

Test(proxy, a_websocket_upgrade_becomes_a_tunnel)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_ws);
    cr_assert_eq(f.stats.tunnels, 1);
    cr_assert_eq(f.stats.tunnels_open, 0);
}

/* an upstream that dies mid-response: the client sees a cut connection */
static void c_die(struct fx *f)
{
    struct resp r;
    int st = req(f, "GET /die HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 0, "a cut response looked whole (%d)", st);
    st = req(f, "GET /die-chunked HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 0, "a cut chunked response looked whole (%d)", st);
}

Test(proxy, an_upstream_dying_mid_response_cuts_the_client)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_die);
    cr_assert_eq(f.stats.upstream_aborts, 2);
}

/* a client that reads a 10 MB response slowly: the proxy queues a bounded
 * amount, never the whole body */
static void c_slow(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port))
        return;
    int rcv = 16384;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    bool ok = sends(c.fd, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    char *want = pattern(BIG);
    char *e;
    while (ok && !(e = c.len ? memmem(c.buf, c.len, "\r\n\r\n", 4) : NULL))
        ok = cl_fill(&c);
    if (ok)
        cl_consume(&c, (size_t)(e - c.buf) + 4);
    size_t got = 0;
    uint32_t sum = FNV0;
    int round = 0;
    while (ok && got < BIG) {
        if (!c.len)
            ok = cl_fill(&c);
        if (!ok)
            break;
        size_t k = c.len < BIG - got ? c.len : BIG - got;
        sum = fnv(c.buf, k, sum);
        got += k;
        cl_consume(&c, k);
        if (++round % 64 == 0)
            usleep(1000);
    }
    CHECK(f, ok && got == BIG, "got %zu of %zu", got, BIG);
    CHECK(f, sum == fnv(want, BIG, FNV0), "body differs");
    free(want);
    cl_close(&c);
}

Test(proxy, a_slow_client_keeps_the_proxy_buffers_bounded)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.buffer_bytes = 64 * 1024;
    fx_run(&f, c_slow);
    cr_assert_lt(f.stats.buffered_peak, (uint64_t)512 * 1024, "buffered peak %llu",
                 (unsigned long long)f.stats.buffered_peak);
    cr_assert_eq(f.stats.buffered, 0);
}

static void c_limits(struct fx *f)
{
    char *big = xmalloc(8192);
    memset(big, 'a', 8191);
    big[8191] = 0;
    char *text = xasprintf("GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: %s\r\n\r\n", big);
    struct resp r;
    int st = req(f, text, &r);
    CHECK(f, st == 431, "big header: %d", st);
    resp_free(&r);
    free(text);
    free(big);
    struct sb many;
    sb_init(&many);
    sb_adds(&many, "GET /hello HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 30; i++)
        sb_addf(&many, "X-H%d: v\r\n", i);
    sb_adds(&many, "\r\n");
    st = req(f, many.buf, &r);
    CHECK(f, st == 431, "many headers: %d", st);
    resp_free(&r);
    sb_release(&many);
    /* smuggling defences */
    static const char *const bad[] = {
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "GET /hello HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: a\r\nX-Bad: a\001b\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "GET /hello HTTP/1.1\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        st = req(f, bad[i], &r);
        CHECK(f, st == 400, "bad request %zu: %d", i, st);
        resp_free(&r);
    }
}

Test(proxy, header_limits_431_and_smuggling_attempts_400)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.max_header_bytes = 4096;
    f.lim.max_headers = 20;
    fx_run(&f, c_limits);
    cr_assert_eq(atomic_load(&f.up[0].reqs), 0, "a bad request reached the upstream");
    cr_assert_eq(f.stats.headers_too_large, 2);
    cr_assert_eq(f.stats.bad_requests, 7);
}

static void c_hop(struct fx *f)
{
    struct resp r;
    int st = req(f,
                 "GET /head HTTP/1.1\r\nHost: app.example:8080\r\nConnection: keep-alive, "
                 "X-Private\r\nX-Private: secret\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
                 "Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Forwarded-For: 10.0.0.1\r\n"
                 "X-Forwarded-Proto: gopher\r\nX-Other: kept\r\n\r\n",
                 &r);
    CHECK(f, st == 200, "status %d", st);
    if (st != 200)
        return;
    const char *up = r.body; /* the head the upstream received */
    char v[256];
    CHECK(f, !hdr_in(up, "X-Private", v, sizeof v), "named by Connection: %s", up);
    CHECK(f, !hdr_in(up, "Keep-Alive", v, sizeof v), "keep-alive: %s", up);
    CHECK(f, !hdr_in(up, "TE", v, sizeof v), "te: %s", up);
    CHECK(f, !hdr_in(up, "Proxy-Connection", v, sizeof v), "proxy-connection: %s", up);
    CHECK(f, !hdr_in(up, "Upgrade", v, sizeof v), "upgrade: %s", up);
    CHECK(f, !hdr_in(up, "Connection", v, sizeof v), "connection: %s", up);
    CHECK(f, hdr_in(up, "X-Other", v, sizeof v) && !strcmp(v, "kept"), "x-other: %s", up);
    CHECK(f, hdr_in(up, "Host", v, sizeof v) && !strcmp(v, "app.example:8080"), "host: %s", up);
    CHECK(f, hdr_in(up, "X-Forwarded-For", v, sizeof v) && !strcmp(v, "10.0.0.1, 127.0.0.1"),
          "x-forwarded-for: %s", up);
    CHECK(f, hdr_in(up, "X-Forwarded-Proto", v, sizeof v) && !strcmp(v, "http"),
          "x-forwarded-proto: %s", up);
    CHECK(f, hdr_in(up, "X-Forwarded-Host", v, sizeof v) && !strcmp(v, "app.example:8080"),
          "x-forwarded-host: %s", up);
    /* and on the way back */
    CHECK(f, !resp_header(&r, "X-Secret"), "response x-secret: %s", r.head);
    CHECK(f, !resp_header(&r, "Keep-Alive"), "response keep-alive: %s", r.head);
    CHECK(f, !resp_header(&r, "Trailer"), "response trailer: %s", r.head);
    CHECK(f, !resp_header(&r, "Connection"), "response connection: %s", r.head);
    CHECK(f, resp_header(&r, "X-Kept"), "response x-kept: %s", r.head);
    resp_free(&r);
}

Test(proxy, hop_by_hop_headers_go_and_x_forwarded_headers_come)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_hop);
}

static void c_rr(struct fx *f)
{
    int a = 0, b = 0;
    for (int i = 0; i < 6; i++) {
        struct resp r;
        int st = req(f, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", &r);
        CHECK(f, st == 200, "status %d", st);
        if (st == 200) {
            a += strcmp(r.body, "hello A") == 0;
            b += strcmp(r.body, "hello B") == 0;
        }
        resp_free(&r);
    }
    CHECK(f, a == 3 && b == 3, "a=%d b=%d", a, b);
}

Test(proxy, round_robin_spreads_requests_over_two_upstreams)
{
    struct fx f;
    fx_init(&f, 2);
    fx_run(&f, c_rr);
}

static void c_dead(struct fx *f)
{
    for (int i = 0; i < 4; i++) {
        struct resp r;
        int st = req(f, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", &r);
        CHECK(f, st == 200, "status %d", st);
        CHECK(f, st != 200 || strcmp(r.body, "hello A") == 0, "body %s", r.body);
        resp_free(&r);
    }
}

Test(proxy, a_dead_upstream_is_skipped)
{
    struct fx f;
    fx_init(&f, 1);
    /* a port with nothing listening: bound, never listened on */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &sl);
    snprintf(f.addr[1], sizeof f.addr[1], "%s", f.addr[0]);
    snprintf(f.addr[0], sizeof f.addr[0], "127.0.0.1:%d", ntohs(a.sin_port));
    f.naddr = 2;
    fx_run(&f, c_dead);
    close(fd);
    cr_assert_geq(f.stats.upstream_connect_errors, 1);
    cr_assert_eq(f.stats.responses[2], 4);
}

static void c_all_dead(struct fx *f)
{
    struct resp r;
    int st = req(f, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 502, "status %d", st);
    resp_free(&r);
}

Test(proxy, no_upstream_answering_is_a_502)
{
    struct fx f;
    fx_init(&f, 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &sl);
    snprintf(f.addr[0], sizeof f.addr[0], "127.0.0.1:%d", ntohs(a.sin_port));
    f.naddr = 1;
    fx_run(&f, c_all_dead);
    close(fd);
}

static void c_hold(struct fx *f)
{
    struct resp r;
    int st = req(f, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 404, "status %d", st); /* the upstream has no /hold */
    resp_free(&r);
    st = req(f, "GET /reply HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 201 && !strcmp(r.body, "made here\n"), "reply %d", st);
    CHECK(f, st != 201 || resp_header(&r, "X-Mine"), "reply header");
    resp_free(&r);
}

Test(proxy, a_held_request_is_forwarded_when_decide_answers_later)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_hold);
    cr_assert_eq(atomic_load(&f.up[0].reqs), 1);
    cr_assert_eq(f.stats.held, 0);
}

static void c_hold_timeout(struct fx *f)
{
    struct resp r;
    int st = req(f, "GET /hold-forever HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 503, "status %d", st);
    const char *v = st ? resp_header(&r, "Retry-After") : NULL;
    CHECK(f, v && !strcmp(v, "7"), "retry-after %s", v ? v : "-");
    resp_free(&r);
    for (int i = 0; i < IO_TIMEOUT_S * 1000 && !atomic_load(&f->gone_calls); i++)
        usleep(1000);
    CHECK(f, atomic_load(&f->gone_calls) == 1, "gone called %d times",
          atomic_load(&f->gone_calls));
}

Test(proxy, the_hold_timeout_answers_503_with_retry_after_and_calls_gone)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.hold_timeout_ms = 100;
    f.lim.retry_after_s = 7;
    fx_run(&f, c_hold_timeout);
    cr_assert_eq(f.stats.hold_timeouts, 1);
    cr_assert_eq(f.stats.held, 0);
}

static void c_leave(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port))
        return;
    sends(c.fd, "GET /hold-forever HTTP/1.1\r\nHost: a\r\n\r\n");
    for (int i = 0; i < IO_TIMEOUT_S * 1000 && !atomic_load(&f->decided); i++)
        usleep(1000);
    cl_close(&c);
    for (int i = 0; i < IO_TIMEOUT_S * 1000 && !atomic_load(&f->gone_calls); i++)
        usleep(1000);
    CHECK(f, atomic_load(&f->gone_calls) == 1, "gone called %d times",
          atomic_load(&f->gone_calls));
}

Test(proxy, a_client_leaving_while_held_calls_gone)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_leave);
    cr_assert_eq(f.stats.client_gone, 1);
    cr_assert_eq(f.stats.held, 0);
}

/* ---- paths with their own deadlines and limits ---- */

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* bound_port: a loopback socket bound to a free port and not listening, so
 * that a connect to it is refused; -1 on failure */
static int bound_port(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof a;
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &sl) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Expect: 100-continue: the proxy answers 100 itself once the request is
 * forwarded; the body then goes upstream whole */
static void c_expect(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    bool ok = sends(c.fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n"
                          "Expect: 100-continue\r\n\r\n");
    while (ok && c.len < sizeof cont - 1)
        ok = cl_fill(&c);
    CHECK(f, ok && memcmp(c.buf, cont, sizeof cont - 1) == 0, "no 100 Continue: '%.*s'",
          (int)c.len, c.buf ? c.buf : "");
    if (ok)
        cl_consume(&c, sizeof cont - 1);
    ok = ok && sends(c.fd, "hello world");
    expect_hello_echo(f, &c, ok);
}

Test(proxy, expect_100_continue_is_answered_by_the_proxy_and_not_forwarded)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_expect);
    char v[64];
    const char *up = f.up[0].last_head;
    cr_assert_null(hdr_in(up, "Expect", v, sizeof v), "expect went upstream: %s", up);
    cr_assert(hdr_in(up, "Content-Length", v, sizeof v) && !strcmp(v, "11"), "%s", up);
}

/* blackhole: a loopback listener with backlog 0 whose accept queue is full
 * (a connection nobody accepts): the kernel drops further SYNs, so connects
 * to it hang. fds gets the listener and the connections; returns their
 * number, or 0 (nothing left open) when the queue could not be seen full. */
static int blackhole(int *fds, int cap, int *port)
{
    int n = 0;
    int l = bound_port(port);
    if (l < 0)
        return 0;
    fds[n++] = l;
    if (listen(l, 0) != 0)
        goto fail;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (n < cap) {
        struct tcp_info ti;
        socklen_t tl = sizeof ti;
        if (getsockopt(l, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0)
            goto fail;
        if (ti.tcpi_unacked > ti.tcpi_sacked) /* listener: queued > backlog */
            return n;
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s < 0)
            goto fail;
        fds[n++] = s;
        if (connect(s, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
            goto fail;
        /* connected, and then queued on the listener (readable) */
        struct pollfd pf = {.fd = s, .events = POLLOUT}, pl = {.fd = l, .events = POLLIN};
        if (poll(&pf, 1, 5000) != 1 || poll(&pl, 1, 5000) != 1)
            goto fail;
    }
fail:
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

static void c_connect_timeout(struct fx *f)
{
    struct resp r;
    int st = req(f, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 504, "status %d", st);
    resp_free(&r);
}

Test(proxy, a_connect_that_never_completes_is_a_504)
{
    int fds[8], port = 0;
    int n = blackhole(fds, 8, &port);
    if (!n)
        cr_skip_test("cannot fill a loopback accept queue here");
    struct fx f;
    fx_init(&f, 0);
    snprintf(f.addr[0], sizeof f.addr[0], "127.0.0.1:%d", port);
    f.naddr = 1;
    f.lim.connect_timeout_ms = 300;
    fx_run(&f, c_connect_timeout);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    cr_assert_eq(f.stats.upstream_connect_errors, 1);
    cr_assert_eq(f.stats.responses[5], 1);
    cr_assert_eq(f.last_log_status, 504);
}

/* hello_from: a GET /hello on a new connection answered by upstream id */
static bool hello_from(struct fx *f, char id)
{
    struct resp r;
    int st = req(f, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    bool ok = st == 200 && r.blen == 7 && r.body[6] == id;
    CHECK(f, st == 200, "status %d", st);
    resp_free(&r);
    return ok;
}

/* with another address up, a connect timeout is no 504: the request goes
 * on to the next address (and the timed-out one is marked down) */
static void c_connect_next(struct fx *f)
{
    for (int i = 0; i < 3; i++)
        CHECK(f, hello_from(f, 'A'), "request %d not answered by A", i);
}

Test(proxy, a_connect_timeout_moves_on_to_the_next_address)
{
    int fds[8], port = 0;
    int n = blackhole(fds, 8, &port);
    if (!n)
        cr_skip_test("cannot fill a loopback accept queue here");
    struct fx f;
    fx_init(&f, 1);
    snprintf(f.addr[1], sizeof f.addr[1], "%s", f.addr[0]);
    snprintf(f.addr[0], sizeof f.addr[0], "127.0.0.1:%d", port);
    f.naddr = 2;
    f.lim.connect_timeout_ms = 300;
    fx_run(&f, c_connect_next);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    cr_assert_geq(f.stats.upstream_connect_errors, 1);
    cr_assert_eq(f.stats.responses[2], 3);
}

/* an upstream that reads the request and says nothing: 504; one that sends
 * its head and then nothing: the client is cut, never given a whole-looking
 * response */
static void c_response_timeout(struct fx *f)
{
    struct resp r;
    int st = req(f, "GET /silent HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 504, "silent: status %d", st);
    resp_free(&r);
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    bool ok = sends(c.fd, "GET /stall HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(f, ok, "send");
    char *e = NULL;
    while (ok && !(e = c.len ? memmem(c.buf, c.len, "\r\n\r\n", 4) : NULL))
        ok = cl_fill(&c);
    CHECK(f, e && !strncmp(c.buf, "HTTP/1.1 200 ", 13), "stall: no head");
    while (ok)
        ok = cl_fill(&c); /* to the end: the proxy cuts the connection */
    if (e) {
        size_t body = c.len - (size_t)(e - c.buf) - 4;
        CHECK(f, body < 100, "stall: %zu body bytes of 100 and the end", body);
    }
    cl_close(&c);
}

Test(proxy, upstream_silence_is_a_504_before_the_response_and_a_cut_during_it)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.response_timeout_ms = 300;
    fx_run(&f, c_response_timeout);
    cr_assert_eq(f.stats.upstream_timeouts, 2);
    cr_assert_eq(f.stats.responses[5], 1);
    cr_assert_eq(atomic_load(&f.up[0].reqs), 2);
}

/* a pooled connection the upstream closes as the next request arrives (its
 * keep-alive timeout firing): the request, a GET none of which was answered,
 * is sent again on a new connection */
static void c_stale(struct fx *f)
{
    struct resp r;
    int st = req(f, "GET /ka-drop HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 200, "first: status %d", st);
    resp_free(&r);
    st = req(f, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 200, "second: status %d", st);
    CHECK(f, st != 200 || !strcmp(r.body, "hello A"), "second: body '%s'", r.body);
    resp_free(&r);
}

Test(proxy, a_pooled_connection_closed_under_a_get_is_retried_on_a_new_one)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_stale);
    cr_assert_eq(f.stats.upstream_reuses, 1);
    cr_assert_eq(f.stats.retries, 1);
    cr_assert_eq(atomic_load(&f.up[0].conns), 2);
    cr_assert_eq(atomic_load(&f.up[0].reqs), 3);
}

/* the same for a POST without a body: the upstream may have acted on it, so
 * it is not sent again (RFC 9110 9.2.2); with an Idempotency-Key it is */
static void c_stale_post(struct fx *f)
{
    struct resp r;
    int st = req(f, "GET /ka-drop HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 200, "first: status %d", st);
    resp_free(&r);
    st = req(f, "POST /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &r);
    CHECK(f, st == 502, "a POST is not replayed: status %d", st);
    resp_free(&r);
    st = req(f, "GET /ka-drop HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 200, "third: status %d", st);
    resp_free(&r);
    st = req(f,
             "POST /hello HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k1\r\n"
             "Content-Length: 0\r\n\r\n",
             &r);
    CHECK(f, st == 200, "a POST with an Idempotency-Key is replayed: status %d", st);
    resp_free(&r);
}

Test(proxy, a_post_is_not_replayed_after_its_pooled_connection_dies)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_stale_post);
    cr_assert_eq(f.stats.retries, 1);
}

/* an upstream that closes its keep-alive connection once idle: the next
 * request gets a working connection, whether the proxy saw the close first
 * (the connection leaves the pool) or met it when sending (a retry) */
static void c_idle_close(struct fx *f)
{
    struct resp r;
    int st = req(f, "GET /hello-close HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 200, "first: status %d", st);
    resp_free(&r);
    st = req(f, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    CHECK(f, st == 200, "second: status %d", st);
    resp_free(&r);
}

Test(proxy, an_upstream_closing_an_idle_pooled_connection_costs_no_request)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_idle_close);
    cr_assert_eq(atomic_load(&f.up[0].conns), 2);
    cr_assert_eq(f.stats.responses[2], 2);
}

/* HEAD: the length is passed on, no body is awaited, and the client and
 * upstream connections both carry the next request */
static void c_head(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    struct resp r;
    bool ok = sends(c.fd, "HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n") && cl_resp(&c, &r, true);
    CHECK(f, ok && r.status == 200, "head: status %d", ok ? r.status : 0);
    if (ok) {
        const char *v = resp_header(&r, "Content-Length");
        CHECK(f, v && !strcmp(v, "1234"), "head: content-length %s", v ? v : "-");
        CHECK(f, !resp_header(&r, "Connection"), "head: %s", r.head);
        resp_free(&r);
    }
    ok = ok && sends(c.fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n") && cl_resp(&c, &r, false);
    CHECK(f, ok && r.status == 200, "get after head: status %d", ok ? r.status : 0);
    if (ok) {
        CHECK(f, !strcmp(r.body, "hello A"), "get after head: body '%s'", r.body);
        resp_free(&r);
    }
    cl_close(&c);
}

Test(proxy, head_gets_the_length_without_a_body_and_keeps_the_connection)
{
    struct fx f;
    fx_init(&f, 1);
    fx_run(&f, c_head);
    cr_assert_eq(f.stats.conns_accepted, 1);
    cr_assert_eq(atomic_load(&f.up[0].conns), 1);
    cr_assert_eq(atomic_load(&f.up[0].reqs), 2);
    cr_assert_eq(f.stats.responses[2], 2);
}

/* a head that never ends is a 408 (from accept for the first request, from
 * its first byte for a later one); an idle keep-alive client is closed */
static bool get_hello(struct cl *c)
{
    struct resp r;
    bool ok = sends(c->fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n") && cl_resp(c, &r, false);
    ok = ok && r.status == 200;
    resp_free(&r);
    return ok;
}

static void expect_408(struct fx *f, struct cl *c, const char *what)
{
    struct resp r;
    bool ok = cl_resp(c, &r, false);
    CHECK(f, ok && r.status == 408, "%s: status %d", what, ok ? r.status : 0);
    CHECK(f, !ok || resp_header(&r, "Connection"), "%s: no Connection: close", what);
    resp_free(&r);
    CHECK(f, cl_eof(c), "%s: the connection stayed open", what);
}

static void c_client_timeouts(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    CHECK(f, sends(c.fd, "GET /hello HTTP/1.1\r\nHost: a\r\n"), "send");
    expect_408(f, &c, "partial head");
    cl_close(&c);
    if (!cl_open(&c, f->port))
        return;
    expect_408(f, &c, "nothing sent");
    cl_close(&c);
    if (!cl_open(&c, f->port))
        return;
    CHECK(f, get_hello(&c), "keep-alive request");
    CHECK(f, sends(c.fd, "GET /hel"), "send");
    expect_408(f, &c, "partial second head");
    cl_close(&c);
    if (!cl_open(&c, f->port))
        return;
    CHECK(f, get_hello(&c), "idle: request");
    CHECK(f, cl_eof(&c), "an idle keep-alive connection stayed open");
    cl_close(&c);
}

Test(proxy, slow_heads_get_408_and_idle_keep_alive_clients_are_closed)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.header_timeout_ms = 500; /* whole heads are sent at once: they make it */
    f.lim.idle_timeout_ms = 300;
    fx_run(&f, c_client_timeouts);
    cr_assert_eq(f.stats.header_timeouts, 3);
    cr_assert_eq(atomic_load(&f.up[0].reqs), 2);
}

/* max_connections: the connection past it gets 503 and is closed; once the
 * others have gone, new ones are served */
static void c_capacity(struct fx *f)
{
    struct cl a, b, c;
    bool oa = cl_open(&a, f->port), ob = cl_open(&b, f->port);
    CHECK(f, oa && ob, "connect");
    if (oa && ob) {
        /* both served, so both are counted */
        CHECK(f, get_hello(&a) && get_hello(&b), "the first two clients");
        if (cl_open(&c, f->port)) {
            struct resp r;
            bool ok = cl_resp(&c, &r, false);
            CHECK(f, ok && r.status == 503, "third: status %d", ok ? r.status : 0);
            resp_free(&r);
            CHECK(f, cl_eof(&c), "third: the connection stayed open");
            cl_close(&c);
        }
    }
    if (oa)
        cl_close(&a);
    if (ob)
        cl_close(&b);
    /* the proxy learns of those closes on its own loop: try until served */
    bool served = false;
    for (int i = 0; i < IO_TIMEOUT_S * 20 && !served; i++) {
        struct resp r;
        served = req(f, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", &r) == 200;
        resp_free(&r);
        if (!served)
            usleep(50000);
    }
    CHECK(f, served, "no client served after the first two left");
}

Test(proxy, past_max_connections_a_client_gets_503_until_others_leave)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.max_connections = 2;
    fx_run(&f, c_capacity);
    cr_assert_geq(f.stats.over_capacity, 1);
    cr_assert_geq(f.stats.responses[2], 3);
}

/* down_ms: an address that refused a connect is skipped (here even once it
 * listens) while another is up, then tried again */
#define DOWN_MS 1500

static void c_down(struct fx *f)
{
    long long t0 = mono_ms();
    int not_a = 0;
    /* the first request is refused by the first address: it is marked down */
    for (int i = 0; i < 4; i++)
        not_a += !hello_from(f, 'A');
    if (ups_listen(&f->up[1], f, 'B', f->spare_fd))
        f->spare_fd = -1;
    else
        CHECK(f, false, "B cannot listen");
    for (int i = 0; i < 4; i++)
        not_a += !hello_from(f, 'A');
    f->down_ms_seen = mono_ms() - t0;
    /* past down_ms B may rightly have been tried: then nothing can be told */
    CHECK(f, not_a == 0 || f->down_ms_seen >= DOWN_MS, "%d answers not from A while B was down",
          not_a);
    bool b = false;
    for (int i = 0; i < IO_TIMEOUT_S * 20 && !b; i++) {
        b = hello_from(f, 'B');
        if (!b)
            usleep(50000);
    }
    CHECK(f, b, "B was never tried again");
}

Test(proxy, an_address_that_refused_is_skipped_for_down_ms_then_tried_again)
{
    struct fx f;
    fx_init(&f, 1);
    int port = 0;
    f.spare_fd = bound_port(&port);
    cr_assert_geq(f.spare_fd, 0);
    snprintf(f.addr[1], sizeof f.addr[1], "%s", f.addr[0]);
    snprintf(f.addr[0], sizeof f.addr[0], "127.0.0.1:%d", port);
    f.naddr = 2;
    f.nups = 2; /* up[1] runs once B listens */
    f.lim.down_ms = DOWN_MS;
    fx_run(&f, c_down);
    if (f.spare_fd >= 0)
        close(f.spare_fd);
    if (f.down_ms_seen < DOWN_MS) { /* else the window passed: B may have been tried */
        cr_assert_eq(f.stats.upstream_connect_errors, 1);
    }
    cr_assert_geq(atomic_load(&f.up[1].conns), 1);
}

/* proxy_close with requests in flight: the one answered before the deadline
 * goes out whole with Connection: close, the one still waiting at the
 * deadline is cut, and the close callback runs (fx_run checks it, the loop
 * closing and, under ASan, leaks) */
static bool wait_flag(atomic_int *a, int want)
{
    for (int i = 0; i < IO_TIMEOUT_S * 1000; i++) {
        if (atomic_load(a) >= want)
            return true;
        usleep(1000);
    }
    return false;
}

static void c_close_inflight(struct fx *f)
{
    struct cl a, b;
    bool oa = cl_open(&a, f->port), ob = cl_open(&b, f->port);
    CHECK(f, oa && ob, "connect");
    if (oa && ob) {
        CHECK(f, sends(a.fd, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
        CHECK(f, sends(b.fd, "GET /silent HTTP/1.1\r\nHost: a\r\n\r\n"), "send");
        CHECK(f, wait_flag(&f->up[0].reqs, 2), "the upstream did not get both requests");
        if (!atomic_exchange(&f->done_sent, 1))
            uv_async_send(&f->done); /* on_done closes the proxy */
        CHECK(f, wait_flag(&f->close_called, 1), "proxy_close was not called");
        atomic_store(&f->up[0].release, 1);
        struct resp r;
        bool ok = cl_resp(&a, &r, false);
        CHECK(f, ok && r.status == 200, "slow: status %d", ok ? r.status : 0);
        if (ok) {
            CHECK(f, !strcmp(r.body, "slow A"), "slow: body '%s'", r.body);
            const char *v = resp_header(&r, "Connection");
            CHECK(f, v && !strcasecmp(v, "close"), "slow: connection %s", v ? v : "-");
            resp_free(&r);
        }
        CHECK(f, cl_eof(&a), "slow: the connection stayed open");
        ok = cl_resp(&b, &r, false);
        CHECK(f, !ok, "silent: a response (%d) after the deadline", r.status);
        resp_free(&r);
    }
    if (oa)
        cl_close(&a);
    if (ob)
        cl_close(&b);
}

Test(proxy, proxy_close_finishes_requests_in_flight_and_cuts_them_at_the_deadline)
{
    struct fx f;
    fx_init(&f, 1);
    f.close_ms = 4000; /* ample for the /slow answer, which comes at once */
    fx_run(&f, c_close_inflight);
    cr_assert_eq(f.stats.conns_open, 0);
    cr_assert_eq(f.stats.upstream_conns_open, 0);
    cr_assert_eq(f.stats.responses[2], 1);
    cr_assert_eq(atomic_load(&f.logs), 2);
}

/* a keep-alive client still reading its response is not idle: the proxy
 * has the whole response (buffer_bytes is large) but the client takes
 * longer than idle_timeout_ms to read the rest; it must get every byte */
static void slow_tail(struct fx *f, const char *request, unsigned pause_ms, bool half_close)
{
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    int rcv = 16384;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    bool ok = sends(c.fd, request);
    if (ok && half_close) /* a request and then our end, as some HTTP/1.0 clients do */
        ok = shutdown(c.fd, SHUT_WR) == 0;
    char *e = NULL;
    while (ok && !(e = c.len ? memmem(c.buf, c.len, "\r\n\r\n", 4) : NULL))
        ok = cl_fill(&c);
    if (e)
        cl_consume(&c, (size_t)(e - c.buf) + 4);
    /* the upstream is done; the client now reads nothing for longer than
     * idle_timeout_ms: the slow reader this test is about */
    CHECK(f, wait_flag(&f->up[0].big_sent, 1), "the upstream did not send it all");
    usleep(pause_ms * 1000);
    size_t got = 0;
    uint32_t sum = FNV0;
    while (ok && got < BIG) {
        if (!c.len && !cl_fill(&c))
            break;
        size_t k = c.len < BIG - got ? c.len : BIG - got;
        sum = fnv(c.buf, k, sum);
        got += k;
        cl_consume(&c, k);
    }
    char *want = pattern(BIG);
    CHECK(f, got == BIG, "got %zu of %zu bytes", got, BIG);
    CHECK(f, got != BIG || sum == fnv(want, BIG, FNV0), "body differs");
    free(want);
    cl_close(&c);
}

static void c_slow_tail(struct fx *f)
{
    slow_tail(f, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n", 1000, false);
}

/* the same with the connection's last response, after which it lingers */
static void c_slow_last(struct fx *f)
{
    slow_tail(f, "GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 3000, false);
}

/* a client that half-closes after its request: its end of the connection
 * is no reason to drop the response still queued for it */
static void c_half_close(struct fx *f)
{
    slow_tail(f, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n", 300, true);
    /* and two pipelined requests before the end: both are answered */
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    bool ok = sends(c.fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"
                          "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n") &&
              shutdown(c.fd, SHUT_WR) == 0;
    for (int i = 0; ok && i < 2; i++) {
        struct resp r;
        ok = cl_resp(&c, &r, false);
        CHECK(f, ok && r.status == 200, "pipelined %d: status %d", i, ok ? r.status : 0);
        resp_free(&r);
    }
    CHECK(f, !ok || cl_eof(&c), "pipelined: the connection stayed open");
    cl_close(&c);
}

Test(proxy, a_client_that_half_closes_still_gets_its_whole_response)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.buffer_bytes = 16 << 20;
    fx_run(&f, c_half_close);
}

Test(proxy, a_client_still_reading_its_last_response_is_not_cut)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.buffer_bytes = 16 << 20;
    fx_run(&f, c_slow_last);
}

Test(proxy, a_client_still_reading_its_response_is_not_idle)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.buffer_bytes = 16 << 20; /* the proxy takes the whole response at once */
    f.lim.idle_timeout_ms = 200;
    fx_run(&f, c_slow_tail);
}

/* proxy_close while a response is whole in the proxy's queue but not yet
 * read by its client: the connection is not idle, the response goes out */
static void c_close_tail(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    int rcv = 16384;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    bool ok = sends(c.fd, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(f, wait_flag(&f->logs, 1), "the response never went whole into the queue");
    if (!atomic_exchange(&f->done_sent, 1))
        uv_async_send(&f->done); /* on_done closes the proxy */
    CHECK(f, wait_flag(&f->close_called, 1), "proxy_close was not called");
    struct resp r;
    ok = ok && cl_resp(&c, &r, false);
    CHECK(f, ok && r.status == 200 && r.blen == BIG, "status %d, %zu bytes", ok ? r.status : 0,
          ok ? r.blen : 0);
    resp_free(&r);
    CHECK(f, cl_eof(&c), "the connection stayed open");
    cl_close(&c);
}

Test(proxy, proxy_close_lets_a_queued_response_reach_its_client)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.buffer_bytes = 16 << 20; /* the proxy takes the whole response at once */
    f.close_ms = 4000;
    fx_run(&f, c_close_tail);
}

/* The proxy remembers at most 4096 upstream addresses (MAX_POOLS in
 * proxy.c); past that, pool_get sweeps those without connections. The
 * sweep must not free an address a request being forwarded holds: here the
 * 4096th address is made by proxy_forward and the 4097th, in the same call,
 * sweeps. Under ASan a freed one is a use-after-free. */
#define POOLS_MAX 4096

static void decide_many(struct proxy_req *r, void *ctx)
{
    struct fx *f = ctx;
    char key[32], a1[64];
    struct proxy_upstream ups[2];
    snprintf(key, sizeof key, "k%d", f->nreq); /* rr starts at 0: ups[0] first */
    if (f->nreq < POOLS_MAX - 2) { /* A answers; the other address is only remembered */
        snprintf(a1, sizeof a1, "127.0.0.2:%d", 1000 + f->nreq);
        ups[0].addr = f->addr[0];
        ups[1].addr = a1;
    } else { /* two new addresses, both refusing: 502 */
        ups[0].addr = f->addr[1];
        ups[1].addr = f->addr[2];
    }
    f->nreq++;
    int rc = proxy_forward(r, key, ups, 2);
    CHECK(f, rc == 0, "proxy_forward: %d", rc);
}

static void c_many(struct fx *f)
{
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    for (int i = 0; i < POOLS_MAX - 1; i++) {
        struct resp r;
        bool ok = sends(c.fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n") && cl_resp(&c, &r, false);
        int want = i < POOLS_MAX - 2 ? 200 : 502;
        CHECK(f, ok && r.status == want, "request %d: status %d", i, ok ? r.status : 0);
        resp_free(&r);
        if (!ok)
            break;
    }
    cl_close(&c);
}

Test(proxy, forgetting_addresses_past_the_limit_spares_those_in_use)
{
    struct fx f;
    fx_init(&f, 1);
    int p1 = 0, p2 = 0;
    int fd1 = bound_port(&p1), fd2 = bound_port(&p2);
    snprintf(f.addr[1], sizeof f.addr[1], "127.0.0.1:%d", p1);
    snprintf(f.addr[2], sizeof f.addr[2], "127.0.0.1:%d", p2);
    f.decide = decide_many;
    if (fd1 >= 0 && fd2 >= 0)
        fx_run(&f, c_many);
    if (fd1 >= 0)
        close(fd1);
    if (fd2 >= 0)
        close(fd2);
    cr_assert(fd1 >= 0 && fd2 >= 0, "no free port");
    cr_assert_eq(f.nreq, POOLS_MAX - 1);
}

/* a cut response whose end would be the connection's end (no length from
 * the upstream; a chunked one de-chunked for HTTP/1.0) ends in a reset: a
 * clean end would pass it off as whole */
static void cut_ends_in_reset(struct fx *f, const char *what, const char *request)
{
    struct cl c;
    if (!cl_open(&c, f->port)) {
        CHECK(f, false, "connect");
        return;
    }
    bool ok = sends(c.fd, request);
    ssize_t n;
    do {
        char b[4096];
        n = recv(c.fd, b, sizeof b, 0);
    } while (ok && n > 0);
    CHECK(f, n < 0 && errno == ECONNRESET, "%s: ended by %s", what,
          n == 0 ? "a clean end, which looks whole" : strerror(errno));
    cl_close(&c);
}

static void c_cut_reset(struct fx *f)
{
    cut_ends_in_reset(f, "no length", "GET /stall-eof HTTP/1.1\r\nHost: a\r\n\r\n");
    cut_ends_in_reset(f, "de-chunked", "GET /stall-chunked HTTP/1.0\r\n\r\n");
}

Test(proxy, a_cut_response_without_its_own_framing_ends_in_a_reset)
{
    struct fx f;
    fx_init(&f, 1);
    f.lim.response_timeout_ms = 300;
    fx_run(&f, c_cut_reset);
    cr_assert_eq(f.stats.upstream_timeouts, 2);
}

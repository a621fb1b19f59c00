/* Tests for core/net/http: a real server on 127.0.0.1:0 with its own loop,
 * run by the test's main thread, and clients on plain blocking sockets in a
 * helper thread. Clients record the first thing that went wrong instead of
 * asserting (Criterion's asserts belong to the test's thread); the test
 * asserts on it after the loop has stopped, and every test ends with
 * uv_loop_close() == 0. Nothing asserts on timings: waits are blocking
 * reads with a generous receive timeout, and timeouts under test are set
 * small. */
#include "core/net/http.h"

#include "core/lib/err.h"
#include "core/lib/xalloc.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define CLIENT_TIMEOUT_S 20

struct fx;
typedef void (*client_fn)(struct fx *f);

struct fx {
    uv_loop_t loop;
    struct http_server srv;
    uv_async_t done; /* the client thread asks the loop to close the server */
    struct http_limits lim;
    unsigned deadline_ms;
    int port;
    client_fn client;
    pthread_t th;
    atomic_int done_sent;
    pthread_mutex_t mu;
    char *fail; /* first failure seen by a client */
    /* handler side */
    atomic_int got;       /* requests the handler saw */
    atomic_int closed;    /* close_cb ran */
    atomic_int responded; /* an async response was attempted */
    atomic_int seq;       /* orders events below */
    int seq_responded, seq_closed;
    int async_rc;
    bool async_gone;
    int bad_hdr_rc, twice_rc;
    sem_t release;           /* lets async work finish */
    struct http_stats stats; /* copied when the server has closed */
};

/* Criterion's workers end without LeakSanitizer's exit-time check, so the
 * tests ask for one when the server is gone. */
static void assert_no_leaks(void)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (report on stderr)");
#endif
}

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

#define CHECK(f, cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fx_fail((f), __LINE__, __VA_ARGS__);                                                   \
    } while (0)

/* ---- the handler (loop thread) ---- */

static uint32_t fnv(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

struct job {
    uv_work_t w;
    struct http_req *req;
    struct fx *f;
};

static void job_work(uv_work_t *w)
{
    struct job *j = w->data;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += CLIENT_TIMEOUT_S;
    sem_timedwait(&j->f->release, &ts);
}

static void job_done(uv_work_t *w, int status)
{
    struct job *j = w->data;
    struct fx *f = j->f;
    (void)status;
    f->async_gone = http_req_gone(j->req);
    f->async_rc = http_respond(j->req, 200, "text/plain", "async\n", 6);
    f->seq_responded = ++f->seq;
    atomic_store(&f->responded, 1);
    free(j);
}

static void on_closed(struct http_server *srv)
{
    struct fx *f = (struct fx *)((char *)srv - offsetof(struct fx, srv));
    f->stats = *http_server_stats(srv);
    f->seq_closed = ++f->seq;
    atomic_store(&f->closed, 1);
}

static void handler(struct http_req *req, void *ctx)
{
    struct fx *f = ctx;
    char buf[512];
    if (strcmp(req->path, "/hello") == 0) {
        http_respond(req, 200, "text/plain", "hello\n", 6);
    } else if (strcmp(req->path, "/echo") == 0) {
        const char *x = http_req_header(req, "x-test");
        int n = snprintf(buf, sizeof buf, "%s path=%s query=%s len=%zu sum=%08x x-test=%s|",
                         req->method, req->path, req->query, req->body_len,
                         fnv(req->body, req->body_len), x ? x : "-");
        http_respond(req, 200, "text/plain", buf, (size_t)n);
    } else if (strcmp(req->path, "/info") == 0) {
        const char *ev = http_req_header(req, "X-GitHub-Event");
        const char *pad = http_req_header(req, "x-pad");
        int n =
            snprintf(buf, sizeof buf, "event=%s pad=[%s] n=%zu first=%s remote=%.10s start=%d",
                     ev ? ev : "-", pad ? pad : "-", req->nheaders,
                     req->nheaders ? req->headers[0].name : "-", req->remote, req->start_ms > 0);
        http_respond(req, 200, "text/plain", buf, (size_t)n);
    } else if (strcmp(req->path, "/async") == 0 || strcmp(req->path, "/async-close") == 0) {
        if (strcmp(req->path, "/async-close") == 0)
            http_server_close(&f->srv, 10000, on_closed);
        struct job *j = xcalloc(1, sizeof *j);
        j->w.data = j;
        j->req = req;
        j->f = f;
        uv_queue_work(&f->loop, &j->w, job_work, job_done);
    } else if (strcmp(req->path, "/badhdr") == 0) {
        struct http_hdr h[] = {{"X-Evil", "a\r\nSet-Cookie: x=1"}};
        f->bad_hdr_rc = http_respond_hdrs(req, 200, "text/plain", h, 1, "no\n", 3);
    } else if (strcmp(req->path, "/twice") == 0) {
        struct http_hdr h[] = {{"X-Extra", "yes"}, {"Cache-Control", "no-store"}};
        http_req_ref(req);
        http_respond_hdrs(req, 201, "text/plain", h, 2, "once\n", 5);
        f->twice_rc = http_respond(req, 200, "text/plain", "twice\n", 6);
        http_req_unref(req);
    } else if (strcmp(req->path, "/big") == 0) {
        size_t n = (size_t)8 << 20;
        char *big = xmalloc(n);
        for (size_t i = 0; i < n; i++)
            big[i] = (char)('a' + i % 26);
        http_respond(req, 200, "application/octet-stream", big, n);
        free(big);
    } else if (strcmp(req->path, "/empty") == 0) {
        http_respond(req, 204, NULL, NULL, 0);
    } else {
        http_respond(req, 404, "text/plain", "not found\n", 10);
    }
    atomic_fetch_add(&f->got, 1);
}

static void on_done(uv_async_t *a)
{
    struct fx *f = a->data;
    http_server_close(&f->srv, f->deadline_ms, on_closed);
    uv_close((uv_handle_t *)a, NULL);
}

static void *client_main(void *arg)
{
    struct fx *f = arg;
    f->client(f);
    if (!atomic_exchange(&f->done_sent, 1))
        uv_async_send(&f->done);
    return NULL;
}

static void fx_init(struct fx *f)
{
    memset(f, 0, sizeof *f);
    f->deadline_ms = 5000;
    pthread_mutex_init(&f->mu, NULL);
    sem_init(&f->release, 0, 0);
    cr_assert_eq(uv_loop_init(&f->loop), 0);
}

/* fx_run: start the server with f->lim, run client in a thread, run the
 * loop until the server has closed, then check and tear down. before_listen,
 * if set, runs just before the server starts. */
static void fx_run_with(struct fx *f, client_fn client, void (*before_listen)(struct fx *f))
{
    struct err e = {0};
    uv_async_init(&f->loop, &f->done, on_done);
    f->done.data = f;
    if (before_listen)
        before_listen(f);
    int rc = http_server_start(&f->srv, &f->loop, "127.0.0.1:0", &f->lim, handler, f, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    f->port = http_server_port(&f->srv);
    cr_assert_gt(f->port, 0);
    f->client = client;
    cr_assert_eq(pthread_create(&f->th, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(f->th, NULL);
    cr_assert(atomic_load(&f->closed), "close_cb was not called");
    cr_assert_eq(uv_loop_close(&f->loop), 0, "a handle is still open");
    sem_destroy(&f->release);
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

static void fx_run(struct fx *f, client_fn client)
{
    fx_run_with(f, client, NULL);
}

/* ---- the client side (helper thread, blocking sockets) ---- */

struct cl {
    int fd;
    char *buf;
    size_t len, cap;
};

struct resp {
    int status;
    char head[2048];
    char *body;
    size_t blen;
};

static bool cl_open(struct cl *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return false;
    struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
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

static bool cl_send(struct cl *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        s += k;
        n -= (size_t)k;
    }
    return true;
}

static bool cl_sends(struct cl *c, const char *s)
{
    return cl_send(c, s, strlen(s));
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

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

static const char *resp_header(const struct resp *r, const char *name)
{
    static _Thread_local char val[256];
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r");
            if (vl >= sizeof val)
                vl = sizeof val - 1;
            memcpy(val, v, vl);
            val[vl] = 0;
            return val;
        }
    }
    return NULL;
}

/* cl_resp: read one final response (skipping 1xx); head_req: no body. */
static bool cl_resp(struct cl *c, struct resp *r, bool head_req)
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
        if (r->status >= 100 && r->status < 200)
            continue;
        const char *cl = resp_header(r, "Content-Length");
        size_t n = cl ? (size_t)strtoull(cl, NULL, 10) : 0;
        if (head_req || r->status == 204 || r->status == 304)
            n = 0;
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
}

/* cl_eof: the server closed the connection (and sent nothing more). */
static bool cl_eof(struct cl *c)
{
    if (c->len)
        return false;
    char b;
    ssize_t n = recv(c->fd, &b, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* get: one request on a new connection; returns the status (0: none). */
static int get(struct fx *f, const char *req, struct resp *r)
{
    struct cl c;
    if (!cl_open(&c, f->port))
        return 0;
    int st = 0;
    if (cl_sends(&c, req) && cl_resp(&c, r, false))
        st = r->status;
    cl_close(&c);
    return st;
}

static void wait_flag(atomic_int *flag)
{
    for (int i = 0; i < CLIENT_TIMEOUT_S * 1000 && !atomic_load(flag); i++)
        usleep(1000);
}

/* ---- tests ---- */

TestSuite(http, .timeout = 90);

static void c_simple_get(struct fx *f)
{
    struct resp r;
    int st = get(f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    CHECK(f, st == 200, "status %d", st);
    if (st) {
        CHECK(f, strcmp(r.body, "hello\n") == 0, "body '%s'", r.body);
        const char *v = resp_header(&r, "Content-Length");
        CHECK(f, v && strcmp(v, "6") == 0, "content-length %s", v ? v : "-");
        v = resp_header(&r, "Server");
        CHECK(f, v && strcmp(v, "prenv") == 0, "server %s", v ? v : "-");
        v = resp_header(&r, "Date");
        CHECK(f, v && strlen(v) == 29 && strcmp(v + 25, " GMT") == 0, "date %s", v ? v : "-");
        v = resp_header(&r, "Content-Type");
        CHECK(f, v && strcmp(v, "text/plain") == 0, "content-type %s", v ? v : "-");
        CHECK(f, strncmp(r.head, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", r.head);
    }
    resp_free(&r);
}

Test(http, a_get_is_answered_200_with_body_date_length_and_server)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_simple_get);
    cr_assert_eq(f.stats.requests, 1);
    cr_assert_eq(f.stats.responses[2], 1);
    cr_assert_eq(f.stats.conns_open, 0);
}

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

static void c_post_1m(struct fx *f)
{
    size_t n = 1 << 20;
    char *body = pattern(n);
    char head[256], want[128];
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nHost: x\r\nX-Test: big\r\nContent-Length: %zu\r\n\r\n", n);
    snprintf(want, sizeof want, "POST path=/echo query= len=%zu sum=%08x x-test=big|", n,
             fnv(body, n));
    struct cl c;
    struct resp r = {0};
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, head) && cl_send(&c, body, n), "send");
    CHECK(f, cl_resp(&c, &r, false), "no response");
    CHECK(f, r.status == 200, "status %d", r.status);
    CHECK(f, r.body && strcmp(r.body, want) == 0, "got '%s' want '%s'", r.body, want);
    resp_free(&r);
    cl_close(&c);
    free(body);
}

Test(http, a_one_mebibyte_post_body_arrives_intact)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_post_1m);
}

static void c_expect_continue(struct fx *f)
{
    struct cl c;
    struct resp r = {0};
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f,
          cl_sends(&c, "PUT /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                       "Content-Length: 5\r\n\r\n"),
          "send");
    /* the interim answer comes before any body byte is sent */
    while (!memmem(c.buf ? c.buf : "", c.len, "\r\n\r\n", 4))
        if (!cl_fill(&c))
            break;
    CHECK(f, c.len > 12 && strncmp(c.buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0,
          "no 100 Continue: '%.*s'", (int)c.len, c.buf ? c.buf : "");
    CHECK(f, cl_sends(&c, "hello"), "send body");
    CHECK(f, cl_resp(&c, &r, false), "no response");
    CHECK(f, r.status == 200 && r.body && strstr(r.body, "PUT path=/echo query= len=5 "),
          "status %d body %s", r.status, r.body);
    resp_free(&r);
    cl_close(&c);
}

static void c_post_25mb(struct fx *f)
{
    size_t n = 25000000; /* GitHub's largest webhook payload */
    char *body = pattern(n);
    char head[256], want[128];
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
    snprintf(want, sizeof want, "POST path=/echo query= len=%zu sum=%08x x-test=-|", n,
             fnv(body, n));
    struct cl c;
    struct resp r = {0};
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, head) && cl_send(&c, body, n), "send");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 200, "status %d", r.status);
    CHECK(f, r.body && strcmp(r.body, want) == 0, "got '%s' want '%s'", r.body, want);
    resp_free(&r);
    /* and a large response, then the connection is still good */
    CHECK(f, cl_sends(&c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 200 && r.blen == (size_t)8 << 20, "big: %d %zu",
          r.status, r.blen);
    CHECK(f, r.body && r.body[(8 << 20) - 1] == (char)('a' + ((8 << 20) - 1) % 26), "big body");
    resp_free(&r);
    CHECK(f, cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 200, "after big: %d", r.status);
    resp_free(&r);
    cl_close(&c);
    free(body);
}

Test(http, a_25_mb_webhook_body_fits_the_default_limit_and_large_responses_are_written_whole)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_post_25mb);
}

Test(http, expect_100_continue_is_answered_before_the_body_is_sent)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_expect_continue);
}

static void c_chunked(struct fx *f)
{
    const char *req = "POST /echo?a=1&b=2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n"
                      "1;ext=1\r\n \r\n"
                      "10\r\nwonderful world!\r\n"
                      "0\r\nX-Trailer: t\r\n\r\n";
    const char *full = "hello wonderful world!";
    char want[160];
    snprintf(want, sizeof want, "POST path=/echo query=a=1&b=2 len=%zu sum=%08x x-test=-|",
             strlen(full), fnv(full, strlen(full)));
    struct cl c;
    struct resp r = {0};
    CHECK(f, cl_open(&c, f->port), "connect");
    /* a byte at a time: chunk boundaries fall anywhere */
    for (const char *p = req; *p; p++)
        CHECK(f, cl_send(&c, p, 1), "send");
    CHECK(f, cl_resp(&c, &r, false), "no response");
    CHECK(f, r.status == 200, "status %d", r.status);
    CHECK(f, r.body && strcmp(r.body, want) == 0, "got '%s' want '%s'", r.body, want);
    resp_free(&r);
    cl_close(&c);
}

Test(http, a_chunked_body_is_dechunked)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_chunked);
}

static void c_keep_alive(struct fx *f)
{
    struct cl c;
    CHECK(f, cl_open(&c, f->port), "connect");
    for (int i = 0; i < 3; i++) {
        struct resp r = {0};
        char req[128];
        snprintf(req, sizeof req, "GET /echo?i=%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        CHECK(f, cl_sends(&c, req), "send %d", i);
        CHECK(f, cl_resp(&c, &r, false), "no response %d", i);
        char want[32];
        snprintf(want, sizeof want, "query=i=%d ", i);
        CHECK(f, r.status == 200 && r.body && strstr(r.body, want), "request %d: %d %s", i,
              r.status, r.body);
        CHECK(f, !resp_header(&r, "Connection"), "connection header on a 1.1 keep-alive");
        resp_free(&r);
    }
    cl_close(&c);
}

Test(http, keep_alive_serves_three_requests_on_one_connection)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_keep_alive);
    cr_assert_eq(f.stats.conns_accepted, 1);
    cr_assert_eq(f.stats.requests, 3);
}

static void c_pipelined(struct fx *f)
{
    struct cl c;
    CHECK(f, cl_open(&c, f->port), "connect");
    /* all in one write, the middle one with a body */
    CHECK(f,
          cl_sends(&c, "GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /echo?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /echo?n=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
          "send");
    const char *want[] = {"GET path=/echo query=n=1 len=0", "POST path=/echo query=n=2 len=3",
                          "hello\n", "GET path=/echo query=n=4 len=0"};
    for (int i = 0; i < 4; i++) {
        struct resp r = {0};
        CHECK(f, cl_resp(&c, &r, false), "no response %d", i);
        CHECK(f, r.status == 200 && r.body && strncmp(r.body, want[i], strlen(want[i])) == 0,
              "response %d: %d '%s'", i, r.status, r.body);
        resp_free(&r);
    }
    CHECK(f, cl_eof(&c), "not closed after Connection: close");
    cl_close(&c);
}

Test(http, pipelined_requests_are_answered_in_order)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_pipelined);
    cr_assert_eq(f.stats.requests, 4);
}

static void c_conn_close(struct fx *f)
{
    struct cl c;
    struct resp r = {0};
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), "send");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 200, "status %d", r.status);
    const char *v = resp_header(&r, "Connection");
    CHECK(f, v && strcasecmp(v, "close") == 0, "connection %s", v ? v : "-");
    CHECK(f, cl_eof(&c), "connection still open");
    resp_free(&r);
    cl_close(&c);
}

Test(http, connection_close_is_honoured)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_conn_close);
}

static void c_http10(struct fx *f)
{
    struct cl c;
    struct resp r = {0};
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, "GET /hello HTTP/1.0\r\n\r\n"), "send");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 200, "status %d", r.status);
    const char *v = resp_header(&r, "Connection");
    CHECK(f, v && strcasecmp(v, "close") == 0, "1.0 connection %s", v ? v : "-");
    CHECK(f, cl_eof(&c), "1.0 connection still open");
    resp_free(&r);
    cl_close(&c);

    CHECK(f, cl_open(&c, f->port), "connect");
    for (int i = 0; i < 2; i++) {
        CHECK(f, cl_sends(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "send");
        CHECK(f, cl_resp(&c, &r, false) && r.status == 200, "keep-alive %d: %d", i, r.status);
        v = resp_header(&r, "Connection");
        CHECK(f, v && strcasecmp(v, "keep-alive") == 0, "1.0 keep-alive %s", v ? v : "-");
        resp_free(&r);
    }
    cl_close(&c);
}

Test(http, http_1_0_closes_unless_keep_alive_is_asked_for)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_http10);
    cr_assert_eq(f.stats.conns_accepted, 2);
    cr_assert_eq(f.stats.requests, 3);
}

static void c_head(struct fx *f)
{
    struct cl c;
    struct resp r = {0};
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    CHECK(f, cl_resp(&c, &r, true) && r.status == 200, "status %d", r.status);
    const char *v = resp_header(&r, "Content-Length");
    CHECK(f, v && strcmp(v, "6") == 0, "content-length %s", v ? v : "-");
    resp_free(&r);
    /* had a body been sent, it would be read as this response's start */
    CHECK(f, cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 200 && strcmp(r.body, "hello\n") == 0,
          "after HEAD: %d", r.status);
    resp_free(&r);
    CHECK(f, cl_sends(&c, "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 204, "204: %d", r.status);
    CHECK(f, !resp_header(&r, "Content-Length"), "204 with a Content-Length");
    resp_free(&r);
    cl_close(&c);
}

Test(http, head_and_204_get_headers_without_a_body)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_head);
}

static void c_body_limit(struct fx *f)
{
    struct resp r = {0};
    struct cl c;
    /* declared too large: refused before the body is read */
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n"),
          "send");
    char junk[4096];
    memset(junk, 'x', sizeof junk);
    cl_send(&c, junk, sizeof junk); /* the server may be closing already */
    CHECK(f, cl_resp(&c, &r, false) && r.status == 413, "declared: %d", r.status);
    CHECK(f, r.body && strcmp(r.body, "payload too large\n") == 0, "body %s", r.body);
    const char *v = resp_header(&r, "Connection");
    CHECK(f, v && strcasecmp(v, "close") == 0, "connection %s", v ? v : "-");
    CHECK(f, cl_eof(&c), "still open after 413");
    resp_free(&r);
    cl_close(&c);

    /* chunked: refused when the de-chunked bytes pass the cap */
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
          "send");
    bool sent = true;
    for (int i = 0; i < 8 && sent; i++)
        sent = cl_sends(&c, "100\r\n") && cl_send(&c, junk, 256) && cl_sends(&c, "\r\n");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 413, "chunked: %d", r.status);
    resp_free(&r);
    cl_close(&c);

    /* exactly at the cap is fine */
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f,
          cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n") &&
              cl_send(&c, junk, 1024),
          "send");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 200, "at the cap: %d", r.status);
    resp_free(&r);
    cl_close(&c);

    int st = get(f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    CHECK(f, st == 200, "another client: %d", st);
    resp_free(&r);
}

Test(http, a_body_over_the_limit_gets_413_and_another_client_is_still_served)
{
    struct fx f;
    fx_init(&f);
    f.lim.max_body = 1024;
    fx_run(&f, c_body_limit);
    cr_assert_eq(f.stats.rejected[HTTP_REJ_BODY_TOO_LARGE], 2);
    cr_assert_eq(f.stats.responses[4], 2);
}

static void c_header_limits(struct fx *f)
{
    struct resp r = {0};
    char big[2048];
    memset(big, 'a', sizeof big);
    char req[4096];
    snprintf(req, sizeof req, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: %.*s\r\n\r\n",
             (int)sizeof big, big);
    int st = get(f, req, &r);
    CHECK(f, st == 431, "large header: %d", st);
    CHECK(f, !st || (r.body && strcmp(r.body, "request header fields too large\n") == 0), "body %s",
          r.body);
    resp_free(&r);

    char many[4096] = "GET /hello HTTP/1.1\r\n";
    for (int i = 0; i < 30; i++) {
        size_t l = strlen(many);
        snprintf(many + l, sizeof many - l, "H%d: v\r\n", i);
    }
    size_t ml = strlen(many);
    snprintf(many + ml, sizeof many - ml, "\r\n");
    st = get(f, many, &r);
    CHECK(f, st == 431, "many headers: %d", st);
    resp_free(&r);

    snprintf(req, sizeof req, "GET /%.*s HTTP/1.1\r\nHost: x\r\n\r\n", 600, big);
    st = get(f, req, &r);
    CHECK(f, st == 414, "long url: %d", st);
    resp_free(&r);

    st = get(f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    CHECK(f, st == 200, "a fine request: %d", st);
    resp_free(&r);
}

Test(http, headers_over_the_limits_get_431_and_a_long_url_414)
{
    struct fx f;
    fx_init(&f);
    f.lim.max_header_bytes = 1024;
    f.lim.max_headers = 20;
    f.lim.max_url = 512;
    fx_run(&f, c_header_limits);
    cr_assert_eq(f.stats.rejected[HTTP_REJ_HEADERS_TOO_LARGE], 2);
    cr_assert_eq(f.stats.rejected[HTTP_REJ_URL_TOO_LONG], 1);
}

static void c_malformed(struct fx *f)
{
    struct cl other;
    CHECK(f, cl_open(&other, f->port), "connect");
    CHECK(f, cl_sends(&other, "GET /hel"), "send"); /* in progress on another connection */
    struct resp r = {0};
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /x HTTP/1.1 trailing\r\n\r\n",
        "GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET /x HTTP/1.1\r\nBad Header: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int st = get(f, bad[i], &r);
        CHECK(f, st == 400, "case %zu: %d", i, st);
        CHECK(f, !st || (r.body && strcmp(r.body, "bad request\n") == 0), "body %s", r.body);
        resp_free(&r);
    }
    int st = get(f, "GET /x HTTP/2.0\r\n\r\n", &r);
    CHECK(f, st == 505, "HTTP/2.0: %d", st);
    resp_free(&r);
    CHECK(f, cl_sends(&other, "lo HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    CHECK(f, cl_resp(&other, &r, false) && r.status == 200, "the other connection: %d", r.status);
    resp_free(&r);
    cl_close(&other);
}

Test(http, a_malformed_request_gets_400_and_other_connections_do_not_notice)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_malformed);
    cr_assert_eq(f.stats.rejected[HTTP_REJ_BAD_REQUEST], 6);
    cr_assert_eq(f.stats.requests, 1);
}

static void c_slow_loris(struct fx *f)
{
    struct cl slow;
    CHECK(f, cl_open(&slow, f->port), "connect");
    const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    bool served_other = false, cut = false;
    struct resp r = {0};
    for (int i = 0; i < 400 && !cut; i++) {
        char ch = i < (int)strlen(req) ? req[i] : 'z';
        if (i == 5 && !served_other) {
            /* the slow client is mid-headers: another one is served now */
            int st = get(f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
            CHECK(f, st == 200, "other client during the slow one: %d", st);
            resp_free(&r);
            served_other = true;
        }
        struct pollfd p = {.fd = slow.fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            CHECK(f, cl_resp(&slow, &r, false) && r.status == 408, "slow client: %d", r.status);
            CHECK(f, cl_eof(&slow), "slow client not closed");
            resp_free(&r);
            cut = true;
            break;
        }
        if (!cl_send(&slow, &ch, 1))
            break;
    }
    CHECK(f, cut, "the slow client was never cut off");
    CHECK(f, served_other, "the other client never ran");
    cl_close(&slow);
}

Test(http, a_slow_loris_is_cut_off_at_the_header_timeout_while_another_client_is_served)
{
    struct fx f;
    fx_init(&f);
    f.lim.header_timeout_ms = 1500;
    fx_run(&f, c_slow_loris);
    cr_assert_eq(f.stats.rejected[HTTP_REJ_HEADER_TIMEOUT], 1);
}

static void c_timeouts(struct fx *f)
{
    struct cl c;
    struct resp r = {0};
    /* a body that stops short */
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123"),
          "send");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 408, "short body: %d", r.status);
    CHECK(f, cl_eof(&c), "not closed after 408");
    resp_free(&r);
    cl_close(&c);
    /* a keep-alive connection left idle is closed without a word */
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 200, "status %d", r.status);
    CHECK(f, cl_eof(&c), "idle connection not closed");
    resp_free(&r);
    cl_close(&c);
    /* as is one that never sends anything */
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_eof(&c), "silent connection not closed");
    cl_close(&c);
}

Test(http, a_stalled_body_gets_408_and_idle_connections_are_closed)
{
    struct fx f;
    fx_init(&f);
    f.lim.body_timeout_ms = 200;
    f.lim.idle_timeout_ms = 200;
    f.lim.header_timeout_ms = 300;
    fx_run(&f, c_timeouts);
    cr_assert_eq(f.stats.rejected[HTTP_REJ_BODY_TIMEOUT], 1);
    cr_assert_eq(f.stats.idle_closed, 2);
}

static void c_disconnect(struct fx *f)
{
    struct cl c;
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, "POST /async HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"),
          "send");
    wait_flag(&f->got);
    cl_close(&c); /* gone before the answer */
    sem_post(&f->release);
    wait_flag(&f->responded);
    CHECK(f, atomic_load(&f->responded), "the handler never answered");
}

Test(http, a_client_that_disconnects_before_the_async_response_costs_nothing)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_disconnect);
    cr_assert(f.async_rc == 0 || f.async_rc == PE_CANCELED, "rc %d", f.async_rc);
    cr_assert_eq(f.stats.conns_open, 0);
}

static void c_dropped(struct fx *f)
{
    struct cl c;
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    wait_flag(&f->got);
    atomic_store(&f->done_sent, 1);
    uv_async_send(&f->done); /* close with a short deadline while the handler holds it */
    wait_flag(&f->closed);
    CHECK(f, atomic_load(&f->closed), "close_cb not called at the deadline");
    CHECK(f, cl_eof(&c), "the dropped connection is still open");
    cl_close(&c);
    sem_post(&f->release); /* now the handler answers a request whose server is gone */
}

Test(http, a_request_dropped_at_the_close_deadline_can_still_be_answered_safely)
{
    struct fx f;
    fx_init(&f);
    f.deadline_ms = 50;
    fx_run(&f, c_dropped);
    cr_assert(f.async_gone);
    cr_assert_eq(f.async_rc, PE_CANCELED);
    cr_assert_lt(f.seq_closed, f.seq_responded);
    cr_assert_eq(f.stats.client_gone, 1);
}

static void c_graceful(struct fx *f)
{
    struct cl c, late;
    struct resp r = {0};
    CHECK(f, cl_open(&c, f->port), "connect");
    CHECK(f, cl_sends(&c, "GET /async-close HTTP/1.1\r\nHost: x\r\n\r\n"), "send");
    wait_flag(&f->got);
    /* closing has begun: no new connections */
    bool refused = !cl_open(&late, f->port);
    CHECK(f, refused, "a new connection was accepted while closing");
    if (!refused)
        cl_close(&late);
    CHECK(f, !atomic_load(&f->closed), "closed with a request in flight");
    sem_post(&f->release);
    CHECK(f, cl_resp(&c, &r, false) && r.status == 200, "in-flight request: %d", r.status);
    CHECK(f, r.body && strcmp(r.body, "async\n") == 0, "body %s", r.body);
    const char *v = resp_header(&r, "Connection");
    CHECK(f, v && strcasecmp(v, "close") == 0, "connection %s", v ? v : "-");
    CHECK(f, cl_eof(&c), "not closed after the last response");
    resp_free(&r);
    cl_close(&c);
}

Test(http, graceful_close_finishes_an_in_flight_async_request_before_close_cb)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_graceful);
    cr_assert_eq(f.async_rc, 0);
    cr_assert_lt(f.seq_responded, f.seq_closed);
    cr_assert_eq(f.stats.responses[2], 1);
    cr_assert_eq(f.stats.client_gone, 0);
}

#define NCONC 200

static void c_concurrent(struct fx *f)
{
    struct cl *cs = xcalloc(NCONC, sizeof *cs);
    for (int i = 0; i < NCONC; i++)
        CHECK(f, cl_open(&cs[i], f->port), "connect %d", i);
    for (int i = 0; i < NCONC; i++) {
        char req[96];
        snprintf(req, sizeof req, "GET /echo?c=%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        CHECK(f, cs[i].fd >= 0 && cl_sends(&cs[i], req), "send %d", i);
    }
    int ok = 0;
    for (int i = NCONC - 1; i >= 0; i--) {
        struct resp r = {0};
        char want[32];
        snprintf(want, sizeof want, "query=c=%d ", i);
        if (cs[i].fd >= 0 && cl_resp(&cs[i], &r, false) && r.status == 200 && strstr(r.body, want))
            ok++;
        resp_free(&r);
        cl_close(&cs[i]);
    }
    CHECK(f, ok == NCONC, "%d of %d answered", ok, NCONC);
    free(cs);
}

Test(http, two_hundred_concurrent_connections_each_get_their_answer)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_concurrent);
    cr_assert_eq(f.stats.conns_accepted, NCONC);
    cr_assert_eq(f.stats.requests, NCONC);
}

static void c_capacity(struct fx *f)
{
    struct cl a, b, c;
    struct resp r = {0};
    CHECK(f, cl_open(&a, f->port) && cl_open(&b, f->port), "connect");
    /* both are surely accepted once each has been answered */
    CHECK(f, cl_sends(&a, "GET /hello HTTP/1.1\r\n\r\n") && cl_resp(&a, &r, false), "a");
    resp_free(&r);
    CHECK(f, cl_sends(&b, "GET /hello HTTP/1.1\r\n\r\n") && cl_resp(&b, &r, false), "b");
    resp_free(&r);
    CHECK(f, cl_open(&c, f->port), "connect c");
    CHECK(f, cl_resp(&c, &r, false) && r.status == 503, "over capacity: %d", r.status);
    CHECK(f, cl_eof(&c), "not closed after 503");
    resp_free(&r);
    cl_close(&c);
    cl_close(&a);
    /* a slot frees once the server has seen a go; retry until it has */
    int st = 0;
    for (int i = 0; i < 2000 && st != 200; i++) {
        st = get(f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        resp_free(&r);
        if (st != 200)
            usleep(10000);
    }
    CHECK(f, st == 200, "no slot after a client left: %d", st);
    cl_close(&b);
}

Test(http, connections_over_the_maximum_get_503_until_a_slot_frees)
{
    struct fx f;
    fx_init(&f);
    f.lim.max_connections = 2;
    fx_run(&f, c_capacity);
    cr_assert_geq(f.stats.rejected[HTTP_REJ_OVER_CAPACITY], 1);
    cr_assert_eq(f.stats.responses[5], f.stats.rejected[HTTP_REJ_OVER_CAPACITY]);
}

static void c_request_fields(struct fx *f)
{
    struct resp r = {0};
    int st = get(f,
                 "GET /info HTTP/1.1\r\nhost: x\r\nx-github-event: push\r\n"
                 "X-Pad: \t padded value \t \r\nX-Empty:\r\n\r\n",
                 &r);
    CHECK(f, st == 200, "status %d", st);
    CHECK(f,
          r.body && strcmp(r.body, "event=push pad=[padded value] n=4 first=host "
                                   "remote=127.0.0.1: start=1") == 0,
          "got '%s'", r.body);
    resp_free(&r);
    st = get(f, "GET /badhdr HTTP/1.1\r\n\r\n", &r);
    CHECK(f, st == 500, "header injection: %d", st);
    CHECK(f, !strstr(r.head, "Set-Cookie"), "header injected: %s", r.head);
    resp_free(&r);
    st = get(f, "GET /twice HTTP/1.1\r\n\r\n", &r);
    CHECK(f, st == 201 && strcmp(r.body, "once\n") == 0, "twice: %d", st);
    const char *v = resp_header(&r, "X-Extra");
    CHECK(f, v && strcmp(v, "yes") == 0, "extra header %s", v ? v : "-");
    resp_free(&r);
    st = get(f, "GET http://example.com/echo?abs=1 HTTP/1.1\r\n\r\n", &r);
    CHECK(f, st == 200 && strstr(r.body, "path=/echo query=abs=1 "), "absolute form: %d %s", st,
          r.body);
    resp_free(&r);
}

Test(http, the_handler_sees_headers_case_insensitively_and_cannot_inject_headers)
{
    struct fx f;
    fx_init(&f);
    fx_run(&f, c_request_fields);
    cr_assert_eq(f.bad_hdr_rc, PE_USAGE);
    cr_assert_eq(f.twice_rc, PE_USAGE);
}

Test(http, listen_addresses_parse_and_bad_ones_say_why)
{
    struct sockaddr_storage ss;
    struct err e = {0};
    cr_assert_eq(http_listen_parse(&ss, "127.0.0.1:8080", &e), 0);
    cr_assert_eq(ss.ss_family, AF_INET);
    cr_assert_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
    cr_assert_eq(http_listen_parse(&ss, "[::1]:0", &e), 0);
    cr_assert_eq(ss.ss_family, AF_INET6);
    cr_assert_eq(http_listen_parse(&ss, ":8080", &e), 0);
    cr_assert_eq(ss.ss_family, AF_INET6);
    cr_assert_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8080);
    cr_assert_eq(http_listen_parse(&ss, "8080", &e), 0);
    cr_assert_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8080);
    cr_assert_eq(http_listen_parse(&ss, "localhost:9", &e), 0);
    cr_assert_eq(ss.ss_family, AF_INET);
    const char *bad[] = {"",        "example.com:80", "1.2.3.4:65536", "1.2.3.4:",
                         "[::1:80", "::1:80",         "1.2.3.4:-1",    "1.2.3.4:8x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_neq(http_listen_parse(&ss, bad[i], &e), 0, "%s", bad[i]);
        cr_assert_eq(e.code, PE_CONFIG);
        cr_assert(strstr(e.msg, "listen address"), "%s", e.msg);
        err_release(&e);
    }
    cr_assert_eq(http_listen_parse(&ss, "1.2.3.4:99999", &e), PE_CONFIG);
    cr_assert_str_eq(e.msg, "bad port in listen address '1.2.3.4:99999' (want 0-65535, as in "
                            "'127.0.0.1:8080')");
    err_release(&e);
}

static void noop_handler(struct http_req *req, void *ctx)
{
    (void)ctx;
    http_respond(req, 200, NULL, NULL, 0);
}

static void on_closed_flag(struct http_server *srv)
{
    (void)srv;
}

Test(http, a_port_in_use_is_an_error_that_leaves_nothing_open_and_sigpipe_is_guarded)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct http_server a, b;
    struct err e = {0};
    cr_assert_eq(http_server_start(&a, &loop, "127.0.0.1:0", NULL, noop_handler, NULL, &e), 0);
    struct sigaction sa;
    sigaction(SIGPIPE, NULL, &sa);
    cr_assert(sa.sa_handler != SIG_DFL, "SIGPIPE left at its default");
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", http_server_port(&a));
    int rc = http_server_start(&b, &loop, addr, NULL, noop_handler, NULL, &e);
    cr_assert_eq(rc, -EADDRINUSE);
    cr_assert(strstr(e.msg, "cannot listen on 127.0.0.1:") && strstr(e.msg, "in use"), "%s", e.msg);
    err_release(&e);
    cr_assert_eq(http_server_start(&b, &loop, "nowhere:1", NULL, noop_handler, NULL, &e),
                 PE_CONFIG);
    err_release(&e);
    http_server_stop_accepting(&a);
    http_server_stop_accepting(&a);
    http_server_close(&a, 0, on_closed_flag);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    assert_no_leaks();
}

/* The descriptor table is full when the server starts (only its own
 * listening socket and the dup it watches fit), so libuv has no reserve
 * descriptor and every accept fails with EMFILE: the server must pause
 * instead of spinning, keep the clients in the backlog, and serve them
 * once descriptors are free again. */
#define NHOLD 4

static struct {
    int fds[NHOLD];
    struct rlimit old;
} emf;

static void emfile_before_listen(struct fx *f)
{
    (void)f;
    for (int i = 0; i < NHOLD; i++)
        emf.fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    getrlimit(RLIMIT_NOFILE, &emf.old);
    /* a limit just past the second free descriptor number */
    int nfree = 0, lim = 0;
    for (int fd = 0; fd < 65536 && nfree < 2; fd++)
        if (fcntl(fd, F_GETFD) == -1 && ++nfree == 2)
            lim = fd + 1;
    struct rlimit low = emf.old;
    low.rlim_cur = (rlim_t)lim;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
}

static void c_emfile(struct fx *f)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct cl cs[NHOLD];
    for (int i = 0; i < NHOLD; i++) {
        memset(&cs[i], 0, sizeof cs[i]);
        cs[i].fd = emf.fds[i];
        struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
        setsockopt(cs[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        CHECK(f, connect(cs[i].fd, (struct sockaddr *)&a, sizeof a) == 0, "connect %d", i);
        CHECK(f, cl_sends(&cs[i], "GET /hello HTTP/1.1\r\n\r\n"), "send %d", i);
    }
    /* wait until the server has met EMFILE (a racy read of a counter the
     * loop thread writes, good enough for a test) */
    const volatile uint64_t *errs = &f->srv.stats.rejected[HTTP_REJ_ACCEPT_ERROR];
    for (int i = 0; i < CLIENT_TIMEOUT_S * 1000 && *errs < 2; i++)
        usleep(1000);
    CHECK(f, *errs >= 2, "the server never met EMFILE");
    setrlimit(RLIMIT_NOFILE, &emf.old);
    int ok = 0;
    for (int i = 0; i < NHOLD; i++) {
        struct resp r = {0};
        if (cl_resp(&cs[i], &r, false) && r.status == 200)
            ok++;
        resp_free(&r);
        cl_close(&cs[i]);
    }
    CHECK(f, ok == NHOLD, "%d of %d waiting clients answered", ok, NHOLD);
}

Test(http, with_the_descriptor_table_full_accepting_pauses_and_waiting_clients_are_served)
{
    struct fx f;
    fx_init(&f);
    fx_run_with(&f, c_emfile, emfile_before_listen);
    cr_assert_geq(f.stats.rejected[HTTP_REJ_ACCEPT_ERROR], 2);
    cr_assert_eq(f.stats.responses[2], NHOLD);
}

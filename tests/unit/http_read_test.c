/* Tests for core/net/http's reading while a request is with the handler (it
 * goes on until something comes, which is kept for later) and for the body
 * buffers it reuses: a client that half-closes after its request still gets
 * the answer, a request sent while the previous one is being answered waits
 * its turn, and bodies of every size arrive intact through reused buffers.
 * The server runs on the test's thread, the client on a helper thread that
 * records its first failure; every test ends with uv_loop_close() == 0. */
#include "core/net/http.h"

#include "core/lib/err.h"
#include "core/lib/xalloc.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct rx {
    uv_loop_t loop;
    struct http_server srv;
    uv_async_t done;
    int port;
    void (*client)(struct rx *);
    pthread_t th;
    char *fail;
};

struct later {
    uv_timer_t t;
    struct http_req *req;
};

#define FAIL(x, ...)                                                                               \
    do {                                                                                           \
        if (!(x)->fail)                                                                            \
            (x)->fail = xasprintf(__VA_ARGS__);                                                    \
    } while (0)

/* ---- the server: /slow answers after 50 ms, a POST with its length and a
 * checksum of its body, anything else at once with its path ---- */

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_cb(uv_timer_t *t)
{
    struct later *l = t->data;
    http_respond(l->req, 200, "text/plain", l->req->path, strlen(l->req->path));
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static void handler(struct http_req *req, void *ctx)
{
    struct rx *x = ctx;
    if (!strcmp(req->path, "/slow")) {
        struct later *l = xcalloc(1, sizeof *l);
        l->req = req;
        uv_timer_init(&x->loop, &l->t);
        l->t.data = l;
        uv_timer_start(&l->t, later_cb, 50, 0);
        return;
    }
    if (!strcmp(req->method, "POST")) {
        unsigned long sum = 0;
        for (size_t i = 0; i < req->body_len; i++)
            sum = sum * 31 + (unsigned char)req->body[i];
        char out[64];
        int n = snprintf(out, sizeof out, "%zu %lu", req->body_len, sum);
        http_respond(req, 200, "text/plain", out, (size_t)n);
        return;
    }
    http_respond(req, 200, "text/plain", req->path, strlen(req->path));
}

static void closed_cb(struct http_server *srv)
{
    struct rx *x = srv->ctx;
    uv_close((uv_handle_t *)&x->done, NULL);
}

static void done_cb(uv_async_t *a)
{
    struct rx *x = a->data;
    http_server_close(&x->srv, 1000, closed_cb);
}

static void *client_main(void *arg)
{
    struct rx *x = arg;
    x->client(x);
    uv_async_send(&x->done);
    return NULL;
}

static void run(void (*client)(struct rx *))
{
    struct rx x = {0};
    x.client = client;
    cr_assert_eq(uv_loop_init(&x.loop), 0);
    struct err e = {0};
    cr_assert_eq(http_server_start(&x.srv, &x.loop, "127.0.0.1:0", NULL, handler, &x, &e), 0, "%s",
                 e.msg);
    x.port = http_server_port(&x.srv);
    uv_async_init(&x.loop, &x.done, done_cb);
    x.done.data = &x;
    cr_assert_eq(pthread_create(&x.th, NULL, client_main, &x), 0);
    uv_run(&x.loop, UV_RUN_DEFAULT);
    pthread_join(x.th, NULL);
    cr_assert_eq(uv_loop_close(&x.loop), 0, "every handle is closed");
    cr_assert_null(x.fail, "%s", x.fail);
}

/* ---- the client side: blocking sockets ---- */

static int dial(struct rx *x)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)x->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        FAIL(x, "connect failed");
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* read_answer: one response's body (Content-Length), or NULL */
static char *read_answer(int fd)
{
    char buf[8192];
    size_t n = 0;
    char *end = NULL;
    while (!(end = memmem(buf, n, "\r\n\r\n", 4))) {
        if (n >= sizeof buf - 1)
            return NULL;
        ssize_t r = recv(fd, buf + n, 1, 0); /* byte by byte: nothing of the next is taken */
        if (r <= 0)
            return NULL;
        n += (size_t)r;
    }
    buf[n] = 0;
    if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0)
        return NULL;
    const char *cl = strcasestr(buf, "\r\nContent-Length: ");
    if (!cl)
        return NULL;
    size_t len = strtoul(cl + 18, NULL, 10), got = 0;
    char *body = xmalloc(len + 1);
    while (got < len) {
        ssize_t r = recv(fd, body + got, len - got, 0);
        if (r <= 0) {
            free(body);
            return NULL;
        }
        got += (size_t)r;
    }
    body[len] = 0;
    return body;
}

static void expect(struct rx *x, int fd, const char *want, const char *what)
{
    char *got = read_answer(fd);
    if (!got || strcmp(got, want) != 0)
        FAIL(x, "%s: got \"%s\", want \"%s\"", what, got ? got : "(no answer)", want);
    free(got);
}

static void c_half_close(struct rx *x)
{
    int fd = dial(x);
    if (fd < 0)
        return;
    static const char req[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
    if (!send_all(fd, req, sizeof req - 1))
        FAIL(x, "send");
    shutdown(fd, SHUT_WR); /* nothing more comes: the EOF reaches the server at once */
    expect(x, fd, "/slow", "the answer after a half-close");
    char c;
    if (recv(fd, &c, 1, 0) != 0)
        FAIL(x, "the connection stays open after the client's EOF");
    close(fd);
}

Test(http_read, a_client_that_half_closes_after_its_request_still_gets_the_answer)
{
    run(c_half_close);
}

static void c_next_while_answering(struct rx *x)
{
    int fd = dial(x);
    if (fd < 0)
        return;
    for (int round = 0; round < 3; round++) {
        static const char slow[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
        static const char next[] = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
        if (!send_all(fd, slow, sizeof slow - 1))
            FAIL(x, "send");
        usleep(10000); /* the first is with the handler when the second comes */
        if (!send_all(fd, next, sizeof next - 1))
            FAIL(x, "send");
        expect(x, fd, "/slow", "the first answer");
        expect(x, fd, "/next", "the request sent meanwhile, answered next");
    }
    /* and after them, the connection is read as before */
    static const char last[] = "GET /last HTTP/1.1\r\nHost: x\r\n\r\n";
    if (!send_all(fd, last, sizeof last - 1))
        FAIL(x, "send");
    expect(x, fd, "/last", "a request after them");
    close(fd);
}

Test(http_read, a_request_sent_while_the_previous_is_answered_waits_its_turn)
{
    run(c_next_while_answering);
}

static void c_bodies(struct rx *x)
{
    static const size_t sizes[] = {26307,  26307, 100,   26000, 300000, 1,     262144,
                                   262143, 70000, 26307, 5,     0,      200000};
    int fd = dial(x);
    if (fd < 0)
        return;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        char *body = xmalloc(n + 1);
        unsigned long sum = 0;
        for (size_t k = 0; k < n; k++) {
            body[k] = (char)('a' + (k * 7 + i) % 26);
            sum = sum * 31 + (unsigned char)body[k];
        }
        char head[128];
        int hl = snprintf(head, sizeof head,
                          "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
        if (!send_all(fd, head, (size_t)hl) || !send_all(fd, body, n))
            FAIL(x, "send");
        char want[64];
        snprintf(want, sizeof want, "%zu %lu", n, sum);
        char what[64];
        snprintf(what, sizeof what, "body %zu of %zu bytes", i, n);
        expect(x, fd, want, what);
        free(body);
    }
    close(fd);
}

Test(http_read, bodies_of_every_size_arrive_intact_through_reused_buffers)
{
    run(c_bodies);
}

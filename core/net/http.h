/* http: an HTTP/1.1 server on a libuv loop, parsing with http-parser. It
 * accepts connections, reads one request at a time into memory (headers and
 * the whole, de-chunked body, each under a cap), hands it to one handler and
 * writes the handler's response with Date, Server, Content-Length and
 * Connection headers; keep-alive and pipelining follow HTTP/1.1. Every phase
 * of a connection has a deadline, every buffer a cap, and a bad request
 * costs only its own connection.
 *
 * What it leaves to others: routing (the handler sees every request), TLS,
 * streaming and chunked responses, compression, Upgrade/CONNECT (answered by
 * the handler like any request, then the connection closes), and logging
 * (counters only; nothing here prints).
 *
 * Threads: everything here runs on the loop's thread, including
 * http_respond. A handler that works on another thread responds from an
 * after-work callback (uv_queue_work) or a uv_async_t.
 *
 * SIGPIPE: libuv writes with write(2), which raises SIGPIPE on a reset
 * connection. http_server_start installs a do-nothing handler if (and only
 * if) the disposition is still the default; prenv's main ignores it anyway. */
#ifndef PRENV_HTTP_H
#define PRENV_HTTP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct err;
struct http_req;
struct http_server;

/* Limits. A zero field takes the default in brackets. A request over a limit
 * is answered with the status shown and a short text body, then its
 * connection closes (after reading and discarding what the client is still
 * sending, briefly, so that it sees the answer). */
struct http_limits {
    size_t max_header_bytes;    /* request line + headers, 431 [64 KiB; at most 80 KiB,
                                 * http-parser's own ceiling] */
    size_t max_url;             /* request target, 414 [8 KiB; at most 65535] */
    size_t max_headers;         /* header lines, 431 [100] */
    size_t max_body;            /* after de-chunking, 413 [26 MiB] */
    unsigned header_timeout_ms; /* from a request's first byte (or from accept for the
                                 * first request) to the end of its headers, 408 [10 s] */
    unsigned body_timeout_ms;   /* from the end of the headers to the end of the body,
                                 * 408 [60 s] */
    unsigned idle_timeout_ms;   /* keep-alive wait between requests; closes silently [60 s] */
    unsigned write_timeout_ms;  /* one response's write; closes [60 s] */
    unsigned max_connections;   /* open at once [1024]. The next ones are accepted and
                                 * answered 503 with Connection: close; past a further 64
                                 * of those the server stops accepting (connections wait in
                                 * the kernel's backlog) until one closes */
};

/* Why a request or connection was turned away; indexes http_stats.rejected. */
#define HTTP_REJECTS(X)                                                                            \
    X(HTTP_REJ_BAD_REQUEST, "bad_request")             /* 400: malformed */                        \
    X(HTTP_REJ_URL_TOO_LONG, "url_too_long")           /* 414 */                                   \
    X(HTTP_REJ_HEADERS_TOO_LARGE, "headers_too_large") /* 431 */                                   \
    X(HTTP_REJ_BODY_TOO_LARGE, "body_too_large")       /* 413 */                                   \
    X(HTTP_REJ_HEADER_TIMEOUT, "header_timeout")       /* 408 */                                   \
    X(HTTP_REJ_BODY_TIMEOUT, "body_timeout")           /* 408 */                                   \
    X(HTTP_REJ_WRITE_TIMEOUT, "write_timeout")         /* closed */                                \
    X(HTTP_REJ_OVER_CAPACITY, "over_capacity")         /* 503 at max_connections */                \
    X(HTTP_REJ_ACCEPT_ERROR, "accept_error")           /* EMFILE and the like: accepting pauses */

enum http_reject {
#define HTTP_REJ_ENUM(name, label) name,
    HTTP_REJECTS(HTTP_REJ_ENUM)
#undef HTTP_REJ_ENUM
        HTTP_REJ__COUNT
};

/* http_reject_name: the label for metrics, "body_too_large". */
const char *http_reject_name(enum http_reject r);

/* Counters for /metrics. Read them on the loop thread (or accept torn reads). */
struct http_stats {
    uint64_t conns_accepted; /* every accepted connection, rejected ones included */
    uint64_t conns_open;     /* gauge */
    uint64_t requests;       /* complete requests handed to the handler */
    uint64_t responses[6];   /* by status class: [2] is 2xx ... [5] is 5xx; errors the
                              * server sends itself (400, 408, 413, ...) count too */
    uint64_t rejected[HTTP_REJ__COUNT];
    uint64_t idle_closed; /* keep-alive or never-used connections closed on timeout */
    uint64_t client_gone; /* requests whose connection closed before the response */
    uint64_t bytes_in, bytes_out;
};

/* The request as the handler sees it. Every field is read-only and stays
 * valid until http_respond (or, with http_req_ref, until the last
 * http_req_unref). Strings are NUL-terminated. */
struct http_header {
    const char *name, *value; /* as received; value without surrounding blanks */
};

struct http_req {
    const char *method; /* "GET", "POST", ... */
    int method_id;      /* http-parser's enum http_method */
    const char *target; /* request target as received: "/hook?x=1" */
    const char *path;   /* its path, not percent-decoded: "/hook" ("*" for OPTIONS *) */
    const char *query;  /* raw query without '?', "" if none */
    int version_minor;  /* HTTP/1.x */
    const struct http_header *headers;
    size_t nheaders;  /* duplicates are kept, in order */
    const char *body; /* de-chunked bytes, body[body_len] == 0 */
    size_t body_len;
    char remote[64];    /* peer, "127.0.0.1:54321" or "[::1]:54321" */
    long long start_ms; /* tm_mono_ms() at the request's first byte */
};

/* http_req_header: the first header named name (ASCII case-insensitive), or
 * NULL. Borrowed from req. */
const char *http_req_header(const struct http_req *req, const char *name);

/* The handler owns a response obligation for each request: it must call
 * http_respond (or http_respond_hdrs) exactly once, now or later on the loop
 * thread. Until then the connection parses nothing more (pipelined requests
 * wait their turn; at most one more read of them is kept). If the client
 * goes away or the server drops the connection first (http_server_close's
 * deadline), the request stays valid and responding to it sends nothing and
 * frees it; the server never frees a request the handler has not answered. */
typedef void (*http_handler_fn)(struct http_req *req, void *ctx);

/* An extra response header. The server writes Date, Server, Content-Length
 * and Connection itself; passing one of those (or Transfer-Encoding), a name
 * that is not an HTTP token or a value with CR or LF is refused. */
struct http_hdr {
    const char *name, *value;
};

/* http_respond: answer req with status (200-999), a Content-Type (NULL for
 * none) and len bytes of body (copied; NULL when len is 0; at most 1 GiB).
 * A HEAD request gets the headers only; 204 and 304 get neither body nor
 * Content-Length. Consumes the response obligation: req must not be used
 * afterwards unless referenced. Returns 0 when the response is queued,
 * PE_CANCELED when the client is gone (nothing sent, req released all the
 * same), PE_USAGE for a second response, or for a bad status, header or
 * length (then a 500 is sent instead). While a request is with the handler
 * a client that hangs up is noticed only when the response is written (an
 * EOF that comes meanwhile waits for it). */
int http_respond(struct http_req *req, int status, const char *content_type, const void *body,
                 size_t len);
int http_respond_hdrs(struct http_req *req, int status, const char *content_type,
                      const struct http_hdr *hdrs, size_t nhdrs, const void *body, size_t len);

/* http_req_gone: true once the connection the request came on is closed. */
bool http_req_gone(const struct http_req *req);

/* References beyond the response obligation, e.g. to log a request after
 * answering it. The request is freed when it has been answered and the last
 * reference is dropped. */
void http_req_ref(struct http_req *req);
void http_req_unref(struct http_req *req);

/* The server. Embed it in its owner (or allocate it); it is the owner's
 * memory, zeroed or not, and must stay put from a successful
 * http_server_start until close_cb has been called. Its fields are private
 * except through the functions below. */
struct http_conn;
typedef void (*http_server_close_cb)(struct http_server *srv);

struct http_server {
    /* private */
    uv_loop_t *loop;
    int lfd;                   /* the listening socket, -1 once stopped */
    uv_tcp_t listener;         /* watches a dup of lfd; closed while accepting pauses */
    uv_timer_t accept_timer;   /* resumes accepting after an accept error */
    uv_timer_t deadline_timer; /* http_server_close's deadline */
    struct http_limits lim;
    http_handler_fn handler;
    void *ctx;
    struct http_conn *conns; /* open connections, a doubly linked list */
    uint64_t nconns;         /* in the list, those being answered 503 included */
    char *rbuf;              /* shared read buffer: reads are consumed at once */
#define HTTP_SPARE_BODIES 16
    char *spare[HTTP_SPARE_BODIES]; /* body buffers of answered requests, for the next */
    size_t spare_cap[HTTP_SPARE_BODIES];
    int nspare;
    int handles;             /* open libuv handles of the server itself */
    bool listening, listener_closing, accept_pending, closing, close_cb_called;
    http_server_close_cb close_cb;
    struct sockaddr_storage addr; /* bound address */
    char date[40];                /* cached Date header value */
    long long date_sec;
    struct http_stats stats;
};

/* http_listen_parse: "127.0.0.1:8080", "[::1]:0", ":8080" or "8080" (every
 * interface: IPv6 and IPv4 when the host has IPv6, else IPv4), or
 * "localhost:8080" (127.0.0.1). Names are not resolved. */
int http_listen_parse(struct sockaddr_storage *out, const char *listen, struct err *e);
/* http_listen_fd: a listening, non-blocking, close-on-exec socket bound to
 * *ss (the address actually bound is written back: port 0 becomes the real
 * one; "every address" on a machine without IPv6 becomes IPv4's), or -errno.
 * Plain system calls: a failure leaves no libuv handle. core/net/proxy too. */
int http_listen_fd(struct sockaddr_storage *ss);
/* http_sigpipe_guard: SIGPIPE at its default disposition becomes a
 * do-nothing handler (so write(2) to a reset socket fails with EPIPE rather
 * than killing the process); a disposition the process chose is kept. */
void http_sigpipe_guard(void);

/* http_server_start: bind and listen on listen, and answer every request
 * with handler(req, ctx). lim may be NULL for the defaults; it is copied.
 * On failure nothing is left open: srv may be discarded or started again. */
int http_server_start(struct http_server *srv, uv_loop_t *loop, const char *listen,
                      const struct http_limits *lim, http_handler_fn handler, void *ctx,
                      struct err *e);

/* http_server_port: the bound port (the real one after listening on 0). */
int http_server_port(const struct http_server *srv);
/* http_server_stats: the live counters, borrowed from srv. */
const struct http_stats *http_server_stats(const struct http_server *srv);

/* http_server_stop_accepting: close the listening socket; connections
 * already open are served as before. Idempotent. */
void http_server_stop_accepting(struct http_server *srv);

/* http_server_close (srv must have been started): stop accepting; close idle connections now; let
 * requests in progress (being received, handled or answered) finish, each
 * answered with Connection: close; after deadline_ms drop whatever is left
 * (requests the handler still holds stay valid, see above). close_cb(srv)
 * is called, from the loop, once every handle is closed; then srv may be
 * freed. Calling it again does nothing. */
void http_server_close(struct http_server *srv, unsigned deadline_ms,
                       http_server_close_cb close_cb);

#endif

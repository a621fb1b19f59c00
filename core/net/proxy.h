/* proxy: the preview router's HTTP/1.1 reverse-proxy engine on a libuv loop.
 * It accepts client connections, parses each request's head with
 * http-parser, asks the embedder where the request goes (decide), and then
 * streams the request to an upstream and the response back, both ways at
 * once, without holding a whole body: a side that cannot keep up stops the
 * other side's reading (backpressure). Upstream connections are kept alive in
 * a pool per upstream address; a pool key groups the addresses of one
 * service for round-robin. Upgrade (WebSocket) becomes a raw tunnel after the
 * upstream's 101. Every phase has a deadline, every buffer a bound.
 *
 * What it leaves to others: the route table (decide sees host, path and
 * headers and answers), waking sleeping environments (a request may be held
 * while the embedder works), TLS, HTTP/2, caching, compression, access-log
 * formatting (one log callback per finished request, nothing here prints),
 * and name resolution (upstreams are numeric addresses).
 *
 * Threads: everything here runs on the loop's thread, including every
 * proxy_req_* call and the answer functions. Work done elsewhere answers from
 * an after-work callback or a uv_async_t.
 *
 * SIGPIPE: like core/net/http, proxy_start installs a do-nothing handler if
 * the disposition is still the default. */
#ifndef PRENV_PROXY_H
#define PRENV_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct err;
struct http_hdr; /* core/net/http.h: {name, value} */
struct proxy;
struct proxy_req;

/* Limits. A zero field takes the default in brackets. */
struct proxy_limits {
    size_t max_header_bytes;       /* request line + headers, 431; an upstream response head
                                    * over it is a 502 [64 KiB; at most 80 KiB] */
    size_t max_headers;            /* header lines, 431 [100] */
    unsigned header_timeout_ms;    /* first byte (accept for the first request) to the end of
                                    * the head, 408 [10 s] */
    unsigned idle_timeout_ms;      /* client keep-alive wait between requests, from when the
                                    * last response is written out; closes [60 s] */
    unsigned client_timeout_ms;    /* a client that sends none of its body, or reads none of
                                    * the response (its queued tail included), for this long
                                    * is cut off [60 s] */
    unsigned hold_timeout_ms;      /* a held request unanswered this long gets 503 with
                                    * Retry-After [60 s] */
    unsigned retry_after_s;        /* Retry-After of that 503 [5] */
    unsigned connect_timeout_ms;   /* upstream connect; then the next upstream, else 504 [5 s] */
    unsigned response_timeout_ms;  /* upstream silence while its response is awaited or being
                                    * read: 504 before the response started, else the client
                                    * connection is cut [60 s] */
    unsigned tunnel_timeout_ms;    /* an Upgrade tunnel with no byte either way [10 min] */
    unsigned pool_idle_timeout_ms; /* an idle pooled upstream connection is closed after it,
                                    * under the common 5 s of application servers [4 s] */
    unsigned pool_max_idle;        /* idle connections kept per upstream address [32] */
    unsigned down_ms;              /* an upstream that refused or timed out a connect is skipped
                                    * this long while another is up [2 s] */
    unsigned max_connections;      /* client connections open at once; the next ones get 503
                                    * and close; past 64 more, accepting pauses [1024] */
    size_t buffer_bytes;           /* bytes queued towards one side before the other side's
                                    * reading pauses [64 KiB] */
};

/* One candidate upstream: a numeric address, "127.0.0.1:8080", "[::1]:8080"
 * or "localhost:8080" (127.0.0.1). Names are not resolved. */
struct proxy_upstream {
    const char *addr;
};

/* decide: called on the loop thread once per request, when its head is in
 * and valid (bad requests are answered by the proxy and never reach it). The
 * embedder reads the request with proxy_req_* and owes exactly one answer:
 * proxy_forward, proxy_reply or proxy_req_drop, from inside decide or later
 * (the request is then held: see proxy_req_drop). */
typedef void (*proxy_decide_fn)(struct proxy_req *r, void *ctx);

/* gone: optional. Called at most once per held request that can no longer
 * be answered usefully: its client went away, the hold timeout answered it
 * 503, or the proxy was closed. The embedder still owes the answer; it only
 * frees the request now (any answer function will do). */
typedef void (*proxy_gone_fn)(struct proxy_req *r, void *ctx);

/* One finished request (answered, failed or abandoned), for the access log.
 * Strings are borrowed for the duration of the call. */
struct proxy_log {
    const char *host;     /* as proxy_req_host */
    const char *method;   /* "GET" */
    const char *target;   /* as received, "/a?b=1" */
    const char *remote;   /* client address, "127.0.0.1" */
    const char *upstream; /* the address that answered, or NULL */
    int status;           /* sent to the client; 0 when none was (client gone, cut off) */
    bool complete;        /* the response went out whole (false: cut, or never sent) */
    uint64_t bytes_in;    /* request body bytes read from the client */
    uint64_t bytes_out;   /* response bytes (head and body) written to the client */
    long long duration_us;         /* from the head's arrival to the end */
    long long held_us;             /* time waiting for the embedder's answer */
    long long upstream_connect_us; /* -1 when no new connection was made */
    long long upstream_header_us;  /* request head sent to response head in; -1 if none */
    void *tag;                     /* proxy_req_set_tag's */
};
typedef void (*proxy_log_fn)(const struct proxy_log *l, void *ctx);

struct proxy_opts {
    struct proxy_limits lim;
    proxy_decide_fn decide; /* required */
    proxy_gone_fn gone;     /* optional */
    proxy_log_fn log;       /* optional */
    void *ctx;              /* passed to all three */
    const char *proto;      /* X-Forwarded-Proto sent upstream ["http"]; copied */
    bool via;               /* add "Via: 1.1 prenv" both ways */
};

/* Latency histograms: bucket i counts values <= proxy_lat_bounds_us[i]; the
 * last bucket counts the rest. */
#define PROXY_LAT_BUCKETS 12
extern const long long proxy_lat_bounds_us[PROXY_LAT_BUCKETS - 1];

/* Counters for /metrics. Read them on the loop thread. */
struct proxy_stats {
    uint64_t conns_accepted, conns_open;   /* client connections; open is a gauge */
    uint64_t requests;                     /* heads handed to decide */
    uint64_t responses[6];                 /* by status class, [2] = 2xx ... [5] = 5xx, the
                                            * proxy's own answers included */
    uint64_t bad_requests;                 /* 400 (smuggling defenses included), 505 */
    uint64_t headers_too_large;            /* 431 */
    uint64_t header_timeouts;              /* 408 */
    uint64_t over_capacity;                /* 503 at max_connections */
    uint64_t held;                         /* gauge: requests waiting for the embedder */
    uint64_t hold_timeouts;                /* 503 + Retry-After */
    uint64_t client_gone;                  /* client left before its response was whole */
    uint64_t client_timeouts;              /* client_timeout_ms cut-offs */
    uint64_t upstream_connect_errors;      /* refused, unreachable, timed out */
    uint64_t upstream_timeouts;            /* response_timeout_ms */
    uint64_t upstream_bad_responses;       /* unparsable heads, over limits: 502 */
    uint64_t upstream_aborts;              /* died mid-response: client cut */
    uint64_t retries;                      /* requests sent again to another connection */
    uint64_t upstream_conns_open;          /* gauge, idle ones included */
    uint64_t upstream_conns_idle;          /* gauge: in the pool */
    uint64_t upstream_conns_made;          /* connects attempted */
    uint64_t upstream_reuses;              /* requests sent on a pooled connection */
    uint64_t tunnels_open, tunnels;        /* Upgrade tunnels: gauge and total */
    uint64_t buffered, buffered_peak;      /* bytes copied into write queues (both ways, all
                                            * connections): gauge and its high-water mark */
    uint64_t bytes_in, bytes_out;          /* client side, all bytes */
    uint64_t connect_us[PROXY_LAT_BUCKETS]; /* upstream connect latency */
    uint64_t header_us[PROXY_LAT_BUCKETS];  /* request head sent to response head in */
};

/* proxy_start: listen on addr ("127.0.0.1:8080", "[::1]:0", ":8080"; see
 * http_listen_parse) and proxy every request there. o is copied (its
 * strings too). *out is the proxy's, freed after proxy_close's callback.
 * On failure nothing is left open and *out is NULL. */
int proxy_start(struct proxy **out, uv_loop_t *loop, const char *addr, const struct proxy_opts *o,
                struct err *e);

/* proxy_port: the bound port (the real one after listening on 0). */
int proxy_port(const struct proxy *p);

/* proxy_stats: the live counters, borrowed from p. */
const struct proxy_stats *proxy_stats(const struct proxy *p);

/* proxy_close: stop accepting, close idle client and pooled connections at
 * once, let requests in progress (held ones included) finish, each with
 * Connection: close (a client still reading its last response is not idle:
 * the rest goes out, then the connection closes); after deadline_ms cut
 * whatever is left (held requests
 * get gone and stay valid for the embedder's answer). cb(p) is called from
 * the loop once every handle is closed; p is freed when it returns. A second
 * call does nothing. */
void proxy_close(struct proxy *p, unsigned deadline_ms, void (*cb)(struct proxy *p));

/* ---- the request, for decide and held requests ----
 * Strings are borrowed from r and valid until its answer (proxy_forward,
 * proxy_reply, proxy_req_drop) returns; NUL-terminated. */

/* proxy_req_host: the Host header (or an absolute-form target's authority)
 * without its port, lowercased, no trailing dot; "" when there is none
 * (HTTP/1.0). */
const char *proxy_req_host(const struct proxy_req *r);
/* proxy_req_method: "GET". */
const char *proxy_req_method(const struct proxy_req *r);
/* proxy_req_path: the target's path, not percent-decoded, "/a/b"; for an
 * absolute-form target its path part. */
const char *proxy_req_path(const struct proxy_req *r);
/* proxy_req_query: the raw query without '?', "" when none. */
const char *proxy_req_query(const struct proxy_req *r);
/* proxy_req_header: the first header named name (ASCII case-insensitive),
 * or NULL. */
const char *proxy_req_header(const struct proxy_req *r, const char *name);
/* proxy_req_remote: the client's address without port, "127.0.0.1". */
const char *proxy_req_remote(const struct proxy_req *r);
/* proxy_req_gone: true once answering r can no longer reach its client
 * (gone, timed out, proxy closed). */
bool proxy_req_gone(const struct proxy_req *r);
/* proxy_req_set_tag: an embedder pointer handed back in the log record
 * (e.g. the environment); it must stay valid until that log call. */
void proxy_req_set_tag(struct proxy_req *r, void *tag);
/* proxy_req_strip_auth: the Authorization header held credentials for the
 * proxy itself: do not forward it upstream. */
void proxy_req_strip_auth(struct proxy_req *r);

/* ---- answers: exactly one per request; each consumes the obligation, after
 * which r must not be used. On a request that is gone they only release it.
 * A second answer is ignored (and returns PE_USAGE). ---- */

/* proxy_forward: send r to one of ups[0..n) (copied; at most 64), picking
 * round-robin among those not marked down, per pool_key (copied; the
 * addresses of one service, e.g. the environment's name). A refused or
 * timed-out connect marks the address down and tries the next; a pooled
 * connection found closed is replaced. Returns 0, PE_CANCELED when r was
 * gone, PE_CONFIG for a bad address or n == 0 (r is then answered 502). */
int proxy_forward(struct proxy_req *r, const char *pool_key, const struct proxy_upstream *ups,
                  size_t n);

/* proxy_reply: answer r from the embedder: status 200-599, extra headers
 * (copied; Content-Length, Transfer-Encoding, Connection and Date are the
 * proxy's and refused, as are names that are not tokens and values with CR
 * or LF: a 500 goes out instead and PE_USAGE is returned), a Content-Type
 * (NULL for none) and len bytes of body (copied). Returns 0 or PE_CANCELED
 * when r was gone. */
int proxy_reply(struct proxy_req *r, int status, const struct http_hdr *hdrs, size_t n,
                const char *content_type, const char *body, size_t len);

/* proxy_req_drop: give r up without answering it yourself: a request that
 * is still live is answered 503 with Retry-After, as on the hold timeout.
 * For a request gone is called about, this is the natural release. */
void proxy_req_drop(struct proxy_req *r);

#endif

/* proxy: the HTTP/1.1 reverse proxy. A client connection moves through
 *
 *   IDLE -> HEAD -> REQ -> IDLE (keep-alive)      REQ -> TUNNEL (101)
 *                      -> LINGER -> closed
 *
 * and a request in REQ is first with the embedder (decide, maybe held),
 * then either answered by the proxy itself or attached to an upstream
 * connection. Both parsers (http-parser) pause at the end of a head and at
 * the end of a message, so every http_parser_execute covers one segment:
 * head bytes, or body bytes which are passed on as they came (chunked
 * framing included: it was validated by the parser on the way), except that
 * a chunked response to an HTTP/1.0 client is de-chunked.
 *
 * Writes are tried at once (uv_try_write) from the shared read buffer; only
 * what the socket does not take is copied into a write request, and that
 * copy is what "buffered" counts. A side whose peer has more than
 * buffer_bytes queued stops being read until the queue drains.
 *
 * Bytes that arrive while they cannot be parsed (a request with the
 * embedder, a pipelined next request) wait in c->pend; reading stops only
 * when pend grows past buffer_bytes, which saves the epoll_ctl calls of
 * stopping and starting around every request.
 *
 * Left to others: routing (decide), TLS, HTTP/2, caching, name resolution. */
#include "core/net/proxy.h"

#include "core/lib/err.h"
#include "core/lib/sb.h"
#include "core/lib/xalloc.h"
#include "core/net/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (64 * 1024)
#define BACKLOG 511
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (1024 * 1024)
#define ACCEPT_PAUSE_MS 100
#define REJECT_SLOTS 64
#define PARSER_HEADER_CEILING (80 * 1024)
#define MAX_UPS 64
#define HASH_SIZE 256
#define MAX_POOLS 4096 /* upstream addresses and pool keys remembered */
#define ADDR_MAX 64

#define DEF_MAX_HEADER_BYTES (64 * 1024)
#define DEF_MAX_HEADERS 100
#define DEF_HEADER_TIMEOUT_MS 10000
#define DEF_IDLE_TIMEOUT_MS 60000
#define DEF_CLIENT_TIMEOUT_MS 60000
#define DEF_HOLD_TIMEOUT_MS 60000
#define DEF_RETRY_AFTER_S 5
#define DEF_CONNECT_TIMEOUT_MS 5000
#define DEF_RESPONSE_TIMEOUT_MS 60000
#define DEF_TUNNEL_TIMEOUT_MS (10 * 60 * 1000)
#define DEF_POOL_IDLE_TIMEOUT_MS 4000
#define DEF_POOL_MAX_IDLE 32
#define DEF_DOWN_MS 2000
#define DEF_MAX_CONNECTIONS 1024
#define DEF_BUFFER_BYTES (64 * 1024)

const long long proxy_lat_bounds_us[PROXY_LAT_BUCKETS - 1] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000};

enum cphase { C_IDLE, C_HEAD, C_REQ, C_TUNNEL, C_LINGER, C_CLOSED };
enum ustate { U_CONNECTING, U_BUSY, U_IDLE, U_TUNNEL, U_CLOSED };
enum last_cb { L_NONE, L_URL, L_FIELD, L_VALUE };
enum rmode { RM_RAW, RM_DECHUNK };

struct cconn;
struct uconn;

/* An upstream address and its pool of idle connections. */
struct upool {
    struct upool *hnext;
    struct sockaddr_storage ss;
    struct uconn *idle; /* most recently used first */
    unsigned nidle, nconns;
    unsigned refs;        /* requests holding it among their candidates */
    long long down_until; /* tm ms; 0 when up */
    char addr[ADDR_MAX];
};

/* Round-robin state of one pool key. */
struct pkey {
    struct pkey *hnext;
    unsigned rr;
    char key[];
};

/* A head as received: "first\0name\0value\0name\0value\0...". The first
 * string is the URL (requests) or the reason phrase (responses). */
struct head {
    char *buf;
    size_t len, cap;
    size_t *offs; /* first, then name, value pairs */
    size_t noffs, capoffs;
    size_t bytes; /* counted against max_header_bytes */
    enum last_cb last;
};

struct proxy_req {
    struct proxy *p;
    struct cconn *c; /* NULL once detached from its connection (gone) */
    struct uconn *u; /* the upstream connection carrying it */
    void *tag;
    bool owed;        /* the embedder owes an answer */
    bool in_decide;   /* decide is running */
    bool held;        /* counted in stats.held */
    bool gone;        /* cannot reach its client any more */
    bool gone_called; /* the gone callback ran */
    bool logged;
    /* the request */
    struct head h;
    size_t path_off, query_off, host_off;
    int method;
    unsigned short major, minor;
    bool keep_alive, chunked, has_body, expect, upgrade;
    uint64_t content_length;
    const char *host_hdr; /* the Host header's value, in h */
    /* forwarding */
    struct upool *ups[MAX_UPS];
    unsigned nups, cur, tries;
    bool body_sent; /* request body bytes went upstream: no retry */
    bool strip_auth; /* the proxy consumed Authorization: not forwarded */
    bool req_done;  /* the whole request was read from the client */
    bool sent_continue;
    bool connect_timed_out;
    struct sb uh; /* the head sent upstream, kept for a retry */
    /* the response */
    struct head rh;
    int status;
    bool resp_head_sent, resp_done, interim, close_client;
    bool head_pending; /* the response head waits in uh to go out with body bytes */
    enum rmode mode;
    /* accounting */
    long long t_head, t_hold, held_us, connect_us, header_us, t_sent; /* us */
    uint64_t bytes_in, bytes_out;
    char upstream[ADDR_MAX];
    char remote[48];
};

struct cconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    struct proxy *p;
    struct cconn *prev, *next;
    http_parser parser;
    enum cphase phase;
    int handles;
    struct proxy_req *req; /* the current request, kept for the next one */
    struct uconn *tun;     /* the tunnel's other side */
    char *pend;            /* received, not yet parsed */
    size_t pend_off, pend_len, pend_cap;
    size_t wq;                   /* bytes queued towards the client */
    bool reading, bp;            /* bp: reading stopped for backpressure */
    bool read_eof, shut_sent;    /* tunnel half-closes */
    bool driving;                /* c_drive is on the stack */
    bool hc, mc;                 /* set by the parser callbacks */
    bool rejecting;              /* answered by the proxy, then lingers */
    bool tunnel_counted;         /* in stats.tunnels_open */
    int rej;                     /* status a callback failed with */
    unsigned long served;
    size_t lingered;
    char remote[48];
};

struct uconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_shutdown_t shut;
    struct proxy *p;
    struct upool *pool;
    struct uconn *prev, *next; /* in the pool's idle list */
    http_parser parser;
    enum ustate st;
    int handles;
    struct proxy_req *req;
    size_t wq;           /* bytes queued towards the upstream */
    bool reading, bp;    /* bp: reading stopped for backpressure */
    bool reused;         /* this request came from the pool */
    bool got_bytes;      /* response bytes arrived for the current request */
    bool hc, mc;         /* set by the parser callbacks */
    bool read_eof, shut_sent;
    bool bad;            /* the head broke a limit */
    struct cconn *tc;    /* the tunnel's client side */
    long long t_connect; /* us */
};

enum wside { W_CLIENT, W_UPSTREAM };

struct wreq {
    uv_write_t w;
    enum wside side;
    void *owner;
    size_t len;
    char data[];
};

struct proxy {
    uv_loop_t *loop;
    int lfd;
    uv_tcp_t listener;
    uv_timer_t accept_timer, deadline_timer;
    struct proxy_limits lim;
    proxy_decide_fn decide;
    proxy_gone_fn gone;
    proxy_log_fn log;
    void *ctx;
    char *proto;
    bool via;
    struct cconn *conns;
    uint64_t nconns;
    uint64_t nuconns;       /* upstream connections with open handles */
    uint64_t live_reqs;     /* detached requests the embedder still owes */
    int handles;
    bool listening, listener_closing, accept_pending, closing, close_cb_called, cut;
    void (*close_cb)(struct proxy *p);
    struct upool *pools[HASH_SIZE];
    struct pkey *keys[HASH_SIZE];
    unsigned npools, nkeys;
    struct sockaddr_storage addr;
    char *rbuf; /* shared read buffer: every read is consumed at once */
    struct sb scratch;
    char date[40];
    long long date_sec;
    struct proxy_stats stats;
};

static void c_close(struct cconn *c);
static void c_drive(struct cconn *c);
static void c_next(struct cconn *c);
static void c_linger(struct cconn *c);
static void u_close(struct uconn *u);
static void u_release(struct uconn *u, bool reusable);
static void r_log(struct proxy_req *r);
static void p_maybe_done(struct proxy *p);
static void accept_one(struct proxy *p);
static void c_send_own(struct cconn *c, int status, const char *extra, const char *ctype,
                       const char *body, size_t len, bool close);

/* ---- small helpers ---- */

static long long now_us(void)
{
    return (long long)(uv_hrtime() / 1000);
}

static long long now_ms(void)
{
    return (long long)(uv_hrtime() / 1000000);
}

static void lat_add(uint64_t *hist, long long us)
{
    int i = 0;
    while (i < PROXY_LAT_BUCKETS - 1 && us > proxy_lat_bounds_us[i])
        i++;
    hist[i]++;
}

static void limits_fill(struct proxy_limits *l)
{
#define DEF(f, v)                                                                                  \
    if (!l->f)                                                                                     \
    l->f = (v)
    DEF(max_header_bytes, DEF_MAX_HEADER_BYTES);
    if (l->max_header_bytes > PARSER_HEADER_CEILING)
        l->max_header_bytes = PARSER_HEADER_CEILING;
    DEF(max_headers, DEF_MAX_HEADERS);
    DEF(header_timeout_ms, DEF_HEADER_TIMEOUT_MS);
    DEF(idle_timeout_ms, DEF_IDLE_TIMEOUT_MS);
    DEF(client_timeout_ms, DEF_CLIENT_TIMEOUT_MS);
    DEF(hold_timeout_ms, DEF_HOLD_TIMEOUT_MS);
    DEF(retry_after_s, DEF_RETRY_AFTER_S);
    DEF(connect_timeout_ms, DEF_CONNECT_TIMEOUT_MS);
    DEF(response_timeout_ms, DEF_RESPONSE_TIMEOUT_MS);
    DEF(tunnel_timeout_ms, DEF_TUNNEL_TIMEOUT_MS);
    DEF(pool_idle_timeout_ms, DEF_POOL_IDLE_TIMEOUT_MS);
    DEF(pool_max_idle, DEF_POOL_MAX_IDLE);
    DEF(down_ms, DEF_DOWN_MS);
    DEF(max_connections, DEF_MAX_CONNECTIONS);
    DEF(buffer_bytes, DEF_BUFFER_BYTES);
#undef DEF
}

static const char *date_now(struct proxy *p)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if ((long long)now != p->date_sec || !p->date[0]) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(p->date, sizeof p->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        p->date_sec = (long long)now;
    }
    return p->date;
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error"
                                                                                    : "Server Error";
    }
}

static bool tchar(unsigned char ch)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && memchr(extra, ch, sizeof extra - 1));
}

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!tchar((unsigned char)*s))
            return false;
    return true;
}

/* field-value bytes: VCHAR, obs-text, SP and HTAB */
static bool value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

/* list_has: a comma-separated header value holds token (case-insensitive) */
static bool list_has(const char *v, const char *token)
{
    size_t tl = strlen(token);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *s = v;
        while (*v && *v != ',')
            v++;
        const char *e = v;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0)
            return true;
    }
    return false;
}

/* ---- heads ---- */

static void head_reset(struct head *h)
{
    h->len = h->noffs = h->bytes = 0;
    h->last = L_NONE;
}

static void head_release(struct head *h)
{
    free(h->buf);
    free(h->offs);
    memset(h, 0, sizeof *h);
}

/* head_add: buf grows only while bytes stays under the header limit */
static void head_add(struct head *h, const char *s, size_t n)
{
    if (h->len + n + 1 > h->cap) {
        size_t nc = h->cap ? h->cap : 1024;
        while (nc < h->len + n + 1)
            nc *= 2;
        h->buf = xrealloc(h->buf, nc);
        h->cap = nc;
    }
    memcpy(h->buf + h->len, s, n);
    h->len += n;
}

static void head_mark(struct head *h)
{
    XGROW(h->offs, h->capoffs, h->noffs + 1);
    h->offs[h->noffs++] = h->len;
}

static size_t head_n(const struct head *h)
{
    return h->noffs ? (h->noffs - 1) / 2 : 0;
}

static const char *head_name(const struct head *h, size_t i)
{
    return h->buf + h->offs[1 + 2 * i];
}

static const char *head_value(const struct head *h, size_t i)
{
    return h->buf + h->offs[2 + 2 * i];
}

static const char *head_get(const struct head *h, const char *name)
{
    for (size_t i = 0; i < head_n(h); i++)
        if (strcasecmp(head_name(h, i), name) == 0)
            return head_value(h, i);
    return NULL;
}

/* the parser callbacks' shared part; -1 when a limit is hit */
static int head_first(struct head *h, const char *at, size_t len, size_t max)
{
    if (h->last == L_NONE) {
        head_mark(h);
        h->last = L_URL;
    }
    h->bytes += len;
    if (h->bytes > max)
        return -1;
    head_add(h, at, len);
    return 0;
}

static int head_field(struct head *h, const char *at, size_t len, size_t max, size_t maxn)
{
    if (h->last != L_FIELD) {
        if (h->last == L_NONE)
            head_mark(h);
        head_add(h, "", 1);
        if (head_n(h) + 1 > maxn)
            return -1;
        head_mark(h);
        h->bytes += 4;
        h->last = L_FIELD;
    }
    h->bytes += len;
    if (h->bytes > max)
        return -1;
    head_add(h, at, len);
    return 0;
}

static int head_value_cb(struct head *h, const char *at, size_t len, size_t max)
{
    if (h->last != L_VALUE) {
        head_add(h, "", 1);
        head_mark(h);
        h->last = L_VALUE;
    }
    h->bytes += len;
    if (h->bytes > max)
        return -1;
    head_add(h, at, len);
    return 0;
}

/* head_end: terminate the last string and trim values; false when a name is
 * not a token or a value holds a forbidden byte */
static bool head_end(struct head *h)
{
    if (h->last == L_NONE)
        head_mark(h);
    if (h->last == L_FIELD) {
        head_add(h, "", 1);
        head_mark(h);
    }
    head_add(h, "", 1);
    for (size_t i = 0; i < head_n(h); i++) {
        char *v = h->buf + h->offs[2 + 2 * i];
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            v[--vl] = 0;
        if (!is_token(head_name(h, i)) || !value_ok(v, vl))
            return false;
    }
    return true;
}

/* ---- upstream addresses, pools and pool keys ---- */

static uint32_t fnv(const char *s)
{
    uint32_t x = 2166136261u;
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 16777619u;
    return x;
}

static int addr_parse(struct sockaddr_storage *ss, const char *addr)
{
    struct err e = {0};
    int rc = http_listen_parse(ss, addr, &e);
    err_release(&e);
    if (rc)
        return rc;
    if (addr[0] == ':' || !strchr(addr, ':')) /* every interface is no upstream */
        return PE_CONFIG;
    int port = ss->ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)ss)->sin_port);
    return port > 0 ? 0 : PE_CONFIG;
}

/* pools_sweep: forget addresses with no connection, no down mark and no
 * request holding them */
static void pools_sweep(struct proxy *p)
{
    long long now = now_ms();
    for (int i = 0; i < HASH_SIZE; i++)
        for (struct upool **pp = &p->pools[i]; *pp;) {
            struct upool *u = *pp;
            if (u->nconns == 0 && u->refs == 0 && u->down_until <= now) {
                *pp = u->hnext;
                free(u);
                p->npools--;
            } else {
                pp = &u->hnext;
            }
        }
}

static struct upool *pool_get(struct proxy *p, const char *addr)
{
    if (strlen(addr) >= ADDR_MAX)
        return NULL;
    uint32_t hv = fnv(addr) % HASH_SIZE;
    for (struct upool *u = p->pools[hv]; u; u = u->hnext)
        if (strcmp(u->addr, addr) == 0)
            return u;
    struct sockaddr_storage ss;
    if (addr_parse(&ss, addr) != 0)
        return NULL;
    if (p->npools >= MAX_POOLS)
        pools_sweep(p);
    struct upool *u = xcalloc(1, sizeof *u);
    u->ss = ss;
    snprintf(u->addr, sizeof u->addr, "%s", addr);
    u->hnext = p->pools[hv];
    p->pools[hv] = u;
    p->npools++;
    return u;
}

static struct pkey *key_get(struct proxy *p, const char *key)
{
    uint32_t hv = fnv(key) % HASH_SIZE;
    for (struct pkey *k = p->keys[hv]; k; k = k->hnext)
        if (strcmp(k->key, key) == 0)
            return k;
    if (p->nkeys >= MAX_POOLS) { /* forget every round-robin position: harmless */
        for (int i = 0; i < HASH_SIZE; i++)
            while (p->keys[i]) {
                struct pkey *k = p->keys[i];
                p->keys[i] = k->hnext;
                free(k);
            }
        p->nkeys = 0;
    }
    size_t kl = strlen(key);
    struct pkey *k = xcalloc(1, sizeof *k + kl + 1);
    memcpy(k->key, key, kl + 1);
    k->hnext = p->keys[hv];
    p->keys[hv] = k;
    p->nkeys++;
    return k;
}

/* ---- writing ---- */

static void c_drained(struct cconn *c);
static void u_drained(struct uconn *u);
static void c_abort(struct cconn *c);
static void u_fail(struct uconn *u, int why);

enum ufail { UF_EOF, UF_ERROR, UF_TIMEOUT, UF_BAD };

static void on_wdone(uv_write_t *w, int status)
{
    struct wreq *wr = (struct wreq *)w;
    enum wside side = wr->side;
    void *owner = wr->owner;
    size_t len = wr->len;
    free(wr);
    if (side == W_CLIENT) {
        struct cconn *c = owner;
        c->wq -= len;
        c->p->stats.buffered -= len;
        if (c->phase == C_CLOSED)
            return;
        if (status < 0)
            c_abort(c);
        else
            c_drained(c);
    } else {
        struct uconn *u = owner;
        u->wq -= len;
        u->p->stats.buffered -= len;
        if (u->st == U_CLOSED)
            return;
        if (status < 0)
            u_fail(u, UF_ERROR);
        else
            u_drained(u);
    }
}

/* side_write: write b[0..nb) to s: at once what the socket takes, the rest
 * copied into a queued write. 0, or a libuv error (nothing queued then). */
static int side_write(struct proxy *p, uv_stream_t *s, enum wside side, void *owner, size_t *wq,
                      const uv_buf_t *b, unsigned nb)
{
    size_t total = 0, done = 0;
    for (unsigned i = 0; i < nb; i++)
        total += b[i].len;
    if (!total)
        return 0;
    if (*wq == 0) {
        int n = uv_try_write(s, b, nb);
        if (n >= 0)
            done = (size_t)n;
        else if (n != UV_EAGAIN && n != UV_ENOSYS)
            return n;
        if (done == total)
            return 0;
    }
    size_t rest = total - done;
    struct wreq *wr = xmalloc(sizeof *wr + rest);
    size_t skip = done, at = 0;
    for (unsigned i = 0; i < nb; i++) {
        size_t l = b[i].len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(wr->data + at, b[i].base + skip, l - skip);
        at += l - skip;
        skip = 0;
    }
    wr->side = side;
    wr->owner = owner;
    wr->len = rest;
    uv_buf_t ub = uv_buf_init(wr->data, (unsigned)rest);
    int rc = uv_write(&wr->w, s, &ub, 1, on_wdone);
    if (rc) {
        free(wr);
        return rc;
    }
    *wq += rest;
    p->stats.buffered += rest;
    if (p->stats.buffered > p->stats.buffered_peak)
        p->stats.buffered_peak = p->stats.buffered;
    return 0;
}

static int c_write(struct cconn *c, const uv_buf_t *b, unsigned nb)
{
    size_t total = 0;
    for (unsigned i = 0; i < nb; i++)
        total += b[i].len;
    c->p->stats.bytes_out += total;
    if (c->req)
        c->req->bytes_out += total;
    return side_write(c->p, (uv_stream_t *)&c->tcp, W_CLIENT, c, &c->wq, b, nb);
}

static int c_write1(struct cconn *c, const char *s, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)s, (unsigned)n);
    return c_write(c, &b, 1);
}

static int u_write1(struct uconn *u, const char *s, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)s, (unsigned)n);
    return side_write(u->p, (uv_stream_t *)&u->tcp, W_UPSTREAM, u, &u->wq, &b, 1);
}

/* ---- reading on and off: libuv (and epoll) is asked only on a change ---- */

static void on_calloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_cread(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_ualloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_uread(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static int c_read(struct cconn *c, bool on)
{
    if (c->reading == on)
        return 0;
    int rc = on ? uv_read_start((uv_stream_t *)&c->tcp, on_calloc, on_cread)
                : uv_read_stop((uv_stream_t *)&c->tcp);
    if (!rc)
        c->reading = on;
    return rc;
}

static int u_read(struct uconn *u, bool on)
{
    if (u->reading == on)
        return 0;
    int rc = on ? uv_read_start((uv_stream_t *)&u->tcp, on_ualloc, on_uread)
                : uv_read_stop((uv_stream_t *)&u->tcp);
    if (!rc)
        u->reading = on;
    return rc;
}

/* c_sync_read: read the client unless its bytes have nowhere to go */
static void c_sync_read(struct cconn *c)
{
    if (c->phase == C_CLOSED)
        return;
    size_t max = c->p->lim.buffer_bytes;
    bool stop = c->read_eof; /* the client's end came: there is nothing more to read */
    if (c->phase == C_TUNNEL)
        stop = stop || (c->tun && c->tun->wq > max);
    else if (c->phase != C_LINGER)
        stop = stop || c->pend_len - c->pend_off > max ||
               (c->req && c->req->u && c->req->u->wq > max);
    c->bp = stop;
    if (c_read(c, !stop) != 0)
        c_abort(c);
}

static struct cconn *u_client(const struct uconn *u)
{
    return u->req ? u->req->c : NULL;
}

static void u_sync_read(struct uconn *u)
{
    if (u->st == U_CLOSED || u->st == U_CONNECTING)
        return;
    struct cconn *c = u_client(u);
    bool stop = (c && c->wq > u->p->lim.buffer_bytes) || (u->st == U_TUNNEL && u->read_eof);
    u->bp = stop;
    if (u_read(u, !stop) != 0)
        u_fail(u, UF_ERROR);
}

/* ---- request heads (client parser callbacks) ---- */

static struct proxy_req *r_new(struct cconn *c)
{
    struct proxy_req *r = xcalloc(1, sizeof *r);
    r->p = c->p;
    r->c = c;
    sb_init(&r->uh);
    memcpy(r->remote, c->remote, sizeof r->remote);
    return r;
}

/* r_unref_ups: the request is done with its candidate addresses */
static void r_unref_ups(struct proxy_req *r)
{
    for (unsigned i = 0; i < r->nups; i++)
        r->ups[i]->refs--;
    r->nups = 0;
}

static void r_free(struct proxy_req *r)
{
    r_unref_ups(r);
    head_release(&r->h);
    head_release(&r->rh);
    sb_release(&r->uh);
    free(r);
}

/* r_reset: ready for the connection's next request */
static void r_reset(struct proxy_req *r)
{
    r_unref_ups(r);
    struct cconn *c = r->c;
    struct head h = r->h, rh = r->rh;
    struct sb uh = r->uh;
    head_reset(&h);
    head_reset(&rh);
    sb_reset(&uh);
    memset(r, 0, sizeof *r);
    r->h = h;
    r->rh = rh;
    r->uh = uh;
    r->c = c;
    r->p = c->p;
    memcpy(r->remote, c->remote, sizeof r->remote);
}

static struct cconn *pc(http_parser *hp)
{
    return hp->data;
}

static void c_arm(struct cconn *c, unsigned ms);

static int on_req_begin(http_parser *hp)
{
    struct cconn *c = pc(hp);
    if (!c->req)
        c->req = r_new(c);
    else
        r_reset(c->req);
    if (c->phase == C_IDLE && c->served > 0)
        c_arm(c, c->p->lim.header_timeout_ms); /* the first one's runs from accept */
    c->phase = C_HEAD;
    return 0;
}

static int on_req_url(http_parser *hp, const char *at, size_t len)
{
    struct cconn *c = pc(hp);
    if (head_first(&c->req->h, at, len, c->p->lim.max_header_bytes) != 0) {
        c->rej = 431;
        return -1;
    }
    return 0;
}

static int on_req_field(http_parser *hp, const char *at, size_t len)
{
    struct cconn *c = pc(hp);
    if (head_field(&c->req->h, at, len, c->p->lim.max_header_bytes, c->p->lim.max_headers) != 0) {
        c->rej = 431;
        return -1;
    }
    return 0;
}

static int on_req_value(http_parser *hp, const char *at, size_t len)
{
    struct cconn *c = pc(hp);
    if (head_value_cb(&c->req->h, at, len, c->p->lim.max_header_bytes) != 0) {
        c->rej = 431;
        return -1;
    }
    return 0;
}

static int on_req_headers(http_parser *hp)
{
    pc(hp)->hc = true;
    http_parser_pause(hp, 1);
    return 0;
}

static int on_req_complete(http_parser *hp)
{
    pc(hp)->mc = true;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings req_settings = {
    .on_message_begin = on_req_begin,
    .on_url = on_req_url,
    .on_header_field = on_req_field,
    .on_header_value = on_req_value,
    .on_headers_complete = on_req_headers,
    .on_message_complete = on_req_complete,
};

/* host_norm: the Host without port, lowercased, no trailing dot; false when
 * it holds bytes no host name or address has */
static bool host_norm(const char *in, size_t n, char *out, size_t cap)
{
    size_t end = n;
    if (n && in[0] == '[') {
        const char *rb = memchr(in, ']', n);
        if (!rb)
            return false;
        end = (size_t)(rb - in) + 1;
        if (end < n && in[end] != ':')
            return false;
    } else {
        const char *colon = memchr(in, ':', n);
        if (colon)
            end = (size_t)(colon - in);
    }
    for (size_t i = end; i < n; i++) /* the port */
        if (i > end && (in[i] < '0' || in[i] > '9'))
            return false;
    while (end && in[end - 1] == '.')
        end--;
    if (end + 1 > cap)
        return false;
    for (size_t i = 0; i < end; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (!(tchar(ch) || ch == '[' || ch == ']' || ch == ':') || ch == '%' || ch == '\'' ||
            ch == '`' || ch == '|' || ch == '^')
            return false;
        out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    out[end] = 0;
    return true;
}

/* r_head_check: after the head: validate it and fill r's fields; 0 or the
 * status to answer with */
static int r_head_check(struct proxy_req *r, http_parser *hp)
{
    struct head *h = &r->h;
    if (hp->http_major != 1)
        return 505;
    if (!head_end(h))
        return 400;
    r->method = hp->method;
    r->major = hp->http_major;
    r->minor = hp->http_minor;
    if (hp->method == HTTP_CONNECT)
        return 405;
    size_t ncl = 0, nte = 0, nhost = 0;
    const char *cl = NULL, *te = NULL;
    for (size_t i = 0; i < head_n(h); i++) {
        const char *n = head_name(h, i), *v = head_value(h, i);
        if (strcasecmp(n, "content-length") == 0) {
            if (cl && strcmp(cl, v) != 0)
                return 400;
            cl = v;
            ncl++;
        } else if (strcasecmp(n, "transfer-encoding") == 0) {
            te = v;
            nte++;
        } else if (strcasecmp(n, "host") == 0) {
            r->host_hdr = v;
            nhost++;
        } else if (strcasecmp(n, "expect") == 0) {
            r->expect = strcasecmp(v, "100-continue") == 0;
        }
    }
    if ((ncl && nte) || nte > 1 || nhost > 1 || (nte && strcasecmp(te, "chunked") != 0) ||
        (nte && hp->http_minor == 0) || (!nhost && hp->http_minor >= 1))
        return 400;
    r->chunked = nte > 0;
    r->content_length = ncl ? hp->content_length : 0;
    r->has_body = r->chunked || r->content_length > 0;
    if (!r->has_body || hp->http_minor == 0)
        r->expect = false;
    r->upgrade = hp->upgrade;
    if (r->upgrade && r->has_body)
        return 400;
    r->keep_alive = http_should_keep_alive(hp) && !r->upgrade;

    /* the target: origin-form, absolute-form or '*' */
    const char *url = h->buf + h->offs[0];
    size_t ulen = strlen(url);
    const char *path = "/", *query = "", *auth = NULL;
    size_t plen = 1, qlen = 0, alen = 0;
    if (ulen == 1 && url[0] == '*') {
        if (hp->method != HTTP_OPTIONS)
            return 400;
        path = "*";
    } else {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (ulen == 0 || http_parser_parse_url(url, ulen, 0, &u) != 0)
            return 400;
        if (u.field_set & (1 << UF_PATH)) {
            path = url + u.field_data[UF_PATH].off;
            plen = u.field_data[UF_PATH].len;
        }
        if (u.field_set & (1 << UF_QUERY)) {
            query = url + u.field_data[UF_QUERY].off;
            qlen = u.field_data[UF_QUERY].len;
        }
        if (u.field_set & (1 << UF_HOST)) {
            auth = url + u.field_data[UF_HOST].off;
            alen = u.field_data[UF_HOST].len;
            if (u.field_set & (1 << UF_PORT)) /* host and port, as written */
                alen = (size_t)(u.field_data[UF_PORT].off + u.field_data[UF_PORT].len) -
                       u.field_data[UF_HOST].off;
            if (auth > url && auth[-1] == '[') {
                auth--;
                alen += 2;
                if (!(u.field_set & (1 << UF_PORT)))
                    alen = strcspn(auth, "/?#");
            }
        } else if (url[0] != '/') {
            return 400;
        }
    }
    char host[256] = "";
    const char *hsrc = auth ? auth : r->host_hdr;
    size_t hlen = auth ? alen : r->host_hdr ? strlen(r->host_hdr) : 0;
    if (hsrc && !host_norm(hsrc, hlen, host, sizeof host))
        return 400;
    /* copy out first: head_add may move buf, which path and query point into */
    size_t hl = strlen(host);
    size_t need = plen + qlen + hl + 3;
    char stack[1024];
    char *tmp = need <= sizeof stack ? stack : xmalloc(need);
    memcpy(tmp, path, plen);
    tmp[plen] = 0;
    memcpy(tmp + plen + 1, query, qlen);
    tmp[plen + 1 + qlen] = 0;
    memcpy(tmp + plen + qlen + 2, host, hl + 1);
    size_t host_hdr_off = r->host_hdr ? (size_t)(r->host_hdr - h->buf) : 0;
    r->path_off = h->len;
    r->query_off = h->len + plen + 1;
    r->host_off = h->len + plen + qlen + 2;
    head_add(h, tmp, need);
    if (tmp != stack)
        free(tmp);
    if (r->host_hdr)
        r->host_hdr = h->buf + host_hdr_off;
    return 0;
}

/* ---- the head sent upstream ---- */

enum hopk { HK_KEEP, HK_DROP, HK_XFF };

/* hop_kind: what happens to a request header on its way upstream; the
 * response side drops the same hop-by-hop set (see resp_keep) */
static enum hopk hop_kind(const char *n)
{
    static const char *const drop[] = {
        "connection", "keep-alive",        "proxy-connection", "te",
        "trailer",    "transfer-encoding", "upgrade",          "content-length",
        "host",       "expect",            "x-forwarded-proto", "x-forwarded-host"};
    char c0 = (char)(n[0] | 0x20);
    if (c0 != 'c' && c0 != 'k' && c0 != 'p' && c0 != 't' && c0 != 'u' && c0 != 'h' &&
        c0 != 'e' && c0 != 'x')
        return HK_KEEP;
    if (strcasecmp(n, "x-forwarded-for") == 0)
        return HK_XFF;
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
        if (strcasecmp(n, drop[i]) == 0)
            return HK_DROP;
    return HK_KEEP;
}

/* named_by_connection: the header is listed in a Connection header of h */
static bool named_by_connection(const struct head *h, const char *name)
{
    for (size_t i = 0; i < head_n(h); i++)
        if (strcasecmp(head_name(h, i), "connection") == 0 && list_has(head_value(h, i), name))
            return true;
    return false;
}

static void r_build_uh(struct proxy_req *r)
{
    struct proxy *p = r->p;
    const struct head *h = &r->h;
    struct sb *b = &r->uh;
    sb_reset(b);
    const char *url = h->buf + h->offs[0];
    sb_adds(b, http_method_str((enum http_method)r->method));
    sb_addc(b, ' ');
    if (url[0] == '/' || url[0] == '*') {
        sb_adds(b, url);
    } else { /* absolute-form: origin-form upstream */
        sb_adds(b, h->buf + r->path_off);
        if (h->buf[r->query_off]) {
            sb_addc(b, '?');
            sb_adds(b, h->buf + r->query_off);
        }
    }
    sb_adds(b, " HTTP/1.1\r\nHost: ");
    if (url[0] != '/' && url[0] != '*')
        sb_adds(b, h->buf + r->host_off);
    else if (r->host_hdr)
        sb_adds(b, r->host_hdr);
    else
        sb_adds(b, r->ups[0]->addr);
    sb_adds(b, "\r\n");
    bool has_conn = false;
    for (size_t i = 0; i < head_n(h); i++)
        if (strcasecmp(head_name(h, i), "connection") == 0)
            has_conn = true;
    for (size_t i = 0; i < head_n(h); i++) {
        const char *n = head_name(h, i);
        enum hopk k = hop_kind(n);
        if (k != HK_KEEP || (has_conn && named_by_connection(h, n)) ||
            (r->strip_auth && !strcasecmp(n, "authorization")))
            continue;
        sb_adds(b, n);
        sb_adds(b, ": ");
        sb_adds(b, head_value(h, i));
        sb_adds(b, "\r\n");
    }
    /* X-Forwarded-For: the values received, in order, then the client */
    sb_adds(b, "X-Forwarded-For: ");
    for (size_t i = 0; i < head_n(h); i++)
        if (strcasecmp(head_name(h, i), "x-forwarded-for") == 0 && *head_value(h, i)) {
            sb_adds(b, head_value(h, i));
            sb_adds(b, ", ");
        }
    sb_adds(b, r->remote);
    sb_adds(b, "\r\n");
    sb_adds(b, "X-Forwarded-Proto: ");
    sb_adds(b, p->proto);
    sb_adds(b, "\r\n");
    if (r->host_hdr) {
        sb_adds(b, "X-Forwarded-Host: ");
        sb_adds(b, r->host_hdr);
        sb_adds(b, "\r\n");
    }
    if (p->via)
        sb_adds(b, "Via: 1.1 prenv\r\n");
    if (r->chunked)
        sb_adds(b, "Transfer-Encoding: chunked\r\n");
    else if (r->has_body)
        sb_addf(b, "Content-Length: %llu\r\n", (unsigned long long)r->content_length);
    if (r->upgrade) {
        const char *up = head_get(h, "upgrade");
        sb_adds(b, "Connection: upgrade\r\nUpgrade: ");
        sb_adds(b, up ? up : "");
        sb_adds(b, "\r\n");
    }
    sb_adds(b, "\r\n");
}

/* ---- client connections ---- */

static void c_on_timer(uv_timer_t *t);

static void c_arm(struct cconn *c, unsigned ms)
{
    uv_timer_start(&c->timer, c_on_timer, ms, 0);
}

/* c_arm_stream: while a forwarded request's body is awaited or its
 * response waits in the queue, the client has client_timeout_ms to move */
static void c_arm_stream(struct cconn *c)
{
    struct proxy_req *r = c->req;
    if (c->phase != C_REQ || !r || r->owed)
        return;
    if ((r->u && !r->req_done && r->u->st == U_BUSY) || c->wq > 0)
        c_arm(c, c->p->lim.client_timeout_ms);
    else
        uv_timer_stop(&c->timer);
}

/* c_arm_tail: in C_IDLE or C_LINGER, the response before may still wait in
 * the queue: its client is not idle but reading, with client_timeout_ms to
 * move; the idle (or linger) wait starts once the queue is empty */
static void c_arm_tail(struct cconn *c)
{
    struct proxy *p = c->p;
    if (c->wq > 0)
        c_arm(c, p->lim.client_timeout_ms);
    else
        c_arm(c, c->phase == C_LINGER ? LINGER_MS : p->lim.idle_timeout_ms);
}

static void count_status(struct proxy *p, int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        p->stats.responses[cls]++;
}

/* c_send_own: a whole response made here (errors, proxy_reply); marks the
 * request answered but neither logs it nor moves the connection on */
static void c_send_own(struct cconn *c, int status, const char *extra, const char *ctype,
                       const char *body, size_t len, bool close)
{
    struct proxy *p = c->p;
    struct proxy_req *r = c->req;
    bool head_req = r && r->method == HTTP_HEAD;
    if (!r || !r->req_done || !r->keep_alive || p->closing || r->upgrade)
        close = true;
    struct sb *b = &p->scratch;
    sb_reset(b);
    sb_addf(b, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, reason(status), date_now(p));
    bool nobody = status == 204 || status == 304 || (status >= 100 && status < 200);
    if (!nobody)
        sb_addf(b, "Content-Length: %zu\r\n", len);
    if (ctype && !nobody) {
        sb_adds(b, "Content-Type: ");
        sb_adds(b, ctype);
        sb_adds(b, "\r\n");
    }
    if (extra)
        sb_adds(b, extra);
    if (p->via)
        sb_adds(b, "Via: 1.1 prenv\r\n");
    if (close)
        sb_adds(b, "Connection: close\r\n");
    else if (r && r->minor == 0)
        sb_adds(b, "Connection: keep-alive\r\n");
    sb_adds(b, "\r\n");
    uv_buf_t bufs[2] = {uv_buf_init(b->buf, (unsigned)b->len),
                        uv_buf_init((char *)body, (unsigned)len)};
    unsigned nb = nobody || head_req || !len ? 1 : 2;
    count_status(p, status);
    if (r) {
        r->status = status;
        r->resp_head_sent = r->resp_done = true;
        r->close_client = close;
    }
    if (c_write(c, bufs, nb) != 0)
        c_close(c);
}

/* c_reject: a bad request or a limit: answer and close */
static void c_reject(struct cconn *c, int status)
{
    struct proxy *p = c->p;
    const char *msg;
    switch (status) {
    case 408:
        p->stats.header_timeouts++;
        msg = "request header timeout\n";
        break;
    case 431:
        p->stats.headers_too_large++;
        msg = "request header fields too large\n";
        break;
    case 503:
        p->stats.over_capacity++;
        msg = "over capacity\n";
        break;
    case 505:
        p->stats.bad_requests++;
        msg = "http version not supported\n";
        break;
    case 405:
        p->stats.bad_requests++;
        msg = "method not allowed\n";
        break;
    default:
        p->stats.bad_requests++;
        msg = "bad request\n";
        break;
    }
    c->rejecting = true;
    if (c->req && !c->req->owed && !c->req->t_head)
        c->req->logged = true; /* never reached decide: not logged */
    c_send_own(c, status, status == 405 ? "Allow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n"
                                        : NULL,
               "text/plain; charset=utf-8", msg, strlen(msg), true);
    if (c->phase != C_CLOSED)
        c_linger(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct cconn *c = req->data;
    (void)status;
    /* the linger timer or the peer's EOF ends the connection; when that EOF
     * came first, the last response is out now and both ways have ended */
    if (c->phase == C_LINGER && c->read_eof)
        c_close(c);
}

/* c_linger: the last response is queued: FIN after it, then discard input
 * briefly so that the client sees the answer rather than a reset */
static void c_linger(struct cconn *c)
{
    if (c->phase == C_CLOSED || c->phase == C_LINGER)
        return;
    c->phase = C_LINGER;
    c->lingered = 0;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
        c_read(c, !c->read_eof) != 0) {
        c_close(c);
        return;
    }
    c_arm_tail(c);
}

/* c_finish: the response is whole (queued): log, then the next request or
 * the end of the connection */
static void c_finish(struct cconn *c)
{
    struct proxy_req *r = c->req;
    r->resp_done = true;
    r_log(r);
    /* a client that half-closed sends no request past those already in pend */
    if (r->close_client || !r->req_done || c->p->closing ||
        (c->read_eof && c->pend_len == c->pend_off))
        c_linger(c);
    else
        c_next(c);
}

static void c_next(struct cconn *c)
{
    c->served++;
    c->phase = C_IDLE;
    c_arm_tail(c);
    c_drive(c);
}

static void pend_add(struct cconn *c, const char *d, size_t n)
{
    if (c->pend_off && c->pend_off == c->pend_len)
        c->pend_off = c->pend_len = 0;
    if (c->pend_len + n > c->pend_cap) {
        if (c->pend_off) {
            memmove(c->pend, c->pend + c->pend_off, c->pend_len - c->pend_off);
            c->pend_len -= c->pend_off;
            c->pend_off = 0;
        }
        if (c->pend_len + n > c->pend_cap) {
            size_t nc = c->pend_cap ? c->pend_cap : 4096;
            while (nc < c->pend_len + n)
                nc *= 2;
            c->pend = xrealloc(c->pend, nc);
            c->pend_cap = nc;
        }
    }
    memcpy(c->pend + c->pend_len, d, n);
    c->pend_len += n;
}

static bool c_can_parse(const struct cconn *c)
{
    if (c->phase == C_IDLE || c->phase == C_HEAD)
        return !c->rejecting;
    if (c->phase != C_REQ)
        return false;
    const struct proxy_req *r = c->req;
    return r && !r->owed && r->u && r->u->st == U_BUSY && !r->req_done &&
           r->u->wq <= c->p->lim.buffer_bytes;
}

static void u_arm(struct uconn *u);

/* obs-fold: a line of the head that starts with a blank */
static bool c_has_fold(struct cconn *c, const char *d, size_t n, bool *lf)
{
    for (size_t i = 0; i < n; i++) {
        if (*lf && (d[i] == ' ' || d[i] == '\t'))
            return true;
        *lf = d[i] == '\n';
    }
    (void)c;
    return false;
}

/* c_step: one http_parser_execute over d: a head, or body bytes that go
 * upstream as they came. Returns the bytes taken, or SIZE_MAX when the
 * connection is being answered or closed. Sets c->hc when a head is ready
 * for decide. */
static size_t c_step(struct cconn *c, const char *d, size_t n)
{
    struct proxy *p = c->p;
    if (c->phase == C_REQ) {
        struct proxy_req *r = c->req;
        struct uconn *u = r->u;
        c->mc = false;
        size_t k = http_parser_execute(&c->parser, &req_settings, d, n);
        enum http_errno en = HTTP_PARSER_ERRNO(&c->parser);
        if (en == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
        } else if (en != HPE_OK) {
            p->stats.bad_requests++;
            if (!r->resp_head_sent) { /* the upstream saw a broken body: it goes */
                u_release(u, false);
                c->req->u = NULL;
                c_reject(c, 400);
                p->stats.bad_requests--;
            } else {
                c_close(c);
            }
            return SIZE_MAX;
        }
        if (k) {
            r->bytes_in += k;
            r->body_sent = true;
            if (u_write1(u, d, k) != 0) {
                u_fail(u, UF_ERROR);
                return c->phase == C_CLOSED ? SIZE_MAX : k;
            }
        }
        if (c->mc) {
            r->req_done = true;
            u_arm(u);
        }
        c_arm_stream(c);
        return k;
    }
    /* a head */
    c->hc = false;
    bool lf = c->phase == C_HEAD ? c->mc : false; /* mc doubles as "last byte was LF" here */
    size_t k = http_parser_execute(&c->parser, &req_settings, d, n);
    enum http_errno en = HTTP_PARSER_ERRNO(&c->parser);
    if (en == HPE_PAUSED) {
        http_parser_pause(&c->parser, 0);
    } else if (en != HPE_OK) {
        c_reject(c, c->rej ? c->rej : en == HPE_HEADER_OVERFLOW ? 431 : 400);
        return SIZE_MAX;
    }
    if (c_has_fold(c, d, k, &lf)) {
        c_reject(c, 400);
        return SIZE_MAX;
    }
    c->mc = lf;
    if (!c->hc)
        return k;
    struct proxy_req *r = c->req;
    int st = r_head_check(r, &c->parser);
    if (st) {
        c_reject(c, st);
        return SIZE_MAX;
    }
    if (r->upgrade) {
        k++; /* the head's last LF, which the parser would take: the rest is the tunnel's */
        r->req_done = true;
    } else {
        c->mc = false;
        k += http_parser_execute(&c->parser, &req_settings, d + k, 1);
        en = HTTP_PARSER_ERRNO(&c->parser);
        if (en == HPE_PAUSED)
            http_parser_pause(&c->parser, 0);
        else if (en != HPE_OK) {
            c_reject(c, 400);
            return SIZE_MAX;
        }
        r->req_done = c->mc;
    }
    c->mc = false;
    c->phase = C_REQ;
    uv_timer_stop(&c->timer);
    r->t_head = now_us();
    return k;
}

static void c_dispatch(struct cconn *c)
{
    struct proxy *p = c->p;
    struct proxy_req *r = c->req;
    p->stats.requests++;
    r->owed = true;
    r->in_decide = true;
    p->decide(r, p->ctx);
    r->in_decide = false;
    if (r->owed && !r->gone) { /* held */
        r->held = true;
        r->t_hold = now_us();
        p->stats.held++;
        if (r->c)
            c_arm(r->c, p->lim.hold_timeout_ms);
    } else if (r->owed == false && !r->c && r->gone) {
        r_log(r); /* answered while gone, inside decide */
        r_free(r);
        p->live_reqs--;
    }
}

/* c_pump: parse what waits in pend while it can be; c->driving keeps the
 * calls that answers make from nesting */
static void c_pump(struct cconn *c)
{
    while (c->phase != C_CLOSED && c->pend_len > c->pend_off && c_can_parse(c)) {
        size_t k = c_step(c, c->pend + c->pend_off, c->pend_len - c->pend_off);
        if (k == SIZE_MAX)
            return;
        c->pend_off += k;
        if (c->hc) {
            c->hc = false;
            c_dispatch(c);
        } else if (k == 0) {
            break;
        }
    }
    if (c->pend_off == c->pend_len)
        c->pend_off = c->pend_len = 0;
}

static void c_drive(struct cconn *c)
{
    if (c->driving)
        return;
    c->driving = true;
    c_pump(c);
    c->driving = false;
    c_sync_read(c);
}

/* c_input: bytes from the client; parsed in place when nothing waits */
static void c_input(struct cconn *c, const char *d, size_t n)
{
    if (c->pend_len > c->pend_off || c->driving) {
        pend_add(c, d, n);
        c_drive(c);
        return;
    }
    c->driving = true;
    while (n && c->phase != C_CLOSED && c_can_parse(c)) {
        size_t k = c_step(c, d, n);
        if (k == SIZE_MAX) {
            n = 0;
            break;
        }
        d += k;
        n -= k;
        if (c->hc) {
            c->hc = false;
            if (n)
                pend_add(c, d, n);
            n = 0;
            c_dispatch(c);
            c_pump(c);
            break;
        }
        if (k == 0)
            break;
    }
    if (n && c->phase != C_CLOSED)
        pend_add(c, d, n);
    c->driving = false;
    c_sync_read(c);
}

static void on_calloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct cconn *c = h->data;
    (void)suggested;
    buf->base = c->p->rbuf;
    buf->len = RBUF_SIZE;
}

static void c_tunnel_in(struct cconn *c, const char *d, size_t n);
static void c_tunnel_eof(struct cconn *c);

static void c_gone(struct cconn *c);

static void on_cread(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cconn *c = s->data;
    struct proxy *p = c->p;
    if (nread == 0 || c->phase == C_CLOSED)
        return;
    if (nread < 0) {
        switch (c->phase) {
        case C_TUNNEL:
            if (nread == UV_EOF) {
                c_tunnel_eof(c);
                break;
            }
            c_close(c);
            break;
        case C_REQ:
            if (c->req && c->req->owed) {
                c_gone(c);
            } else if (nread == UV_EOF && c->req && c->req->req_done) {
                /* a half-close after the request: the response still goes out */
                c_read(c, false);
                c->read_eof = true;
            } else {
                c_close(c);
            }
            break;
        case C_IDLE:
        case C_LINGER:
            if (nread == UV_EOF && c->wq > 0) {
                /* a half-close: the last response's tail still goes out */
                c_read(c, false);
                c->read_eof = true;
                c_linger(c);
                break;
            }
            c_close(c);
            break;
        default:
            c_close(c);
            break;
        }
        return;
    }
    p->stats.bytes_in += (uint64_t)nread;
    switch (c->phase) {
    case C_LINGER:
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_MAX_BYTES)
            c_close(c);
        return;
    case C_TUNNEL:
        c_tunnel_in(c, buf->base, (size_t)nread);
        return;
    default:
        c_input(c, buf->base, (size_t)nread);
        return;
    }
}

/* ---- requests the embedder holds ---- */

static void r_unhold(struct proxy_req *r)
{
    if (r->held) {
        r->held = false;
        r->p->stats.held--;
        r->held_us += now_us() - r->t_hold;
    }
}

/* r_detach: the request can no longer reach its client; the embedder still
 * owes its answer, which frees it */
static void r_detach(struct proxy_req *r)
{
    if (r->gone)
        return;
    struct cconn *c = r->c;
    if (c && c->req == r)
        c->req = NULL;
    r->c = NULL;
    r->gone = true;
    r->p->live_reqs++;
}

/* r_gone_notify: tell the embedder about a held request that is gone */
static void r_gone_notify(struct proxy_req *r)
{
    struct proxy *p = r->p;
    if (r->gone_called || !r->held)
        return;
    r->gone_called = true;
    r_unhold(r);
    if (p->gone)
        p->gone(r, p->ctx);
}

/* r_release: an answer for a gone request: log it and free it */
static void r_release(struct proxy_req *r)
{
    struct proxy *p = r->p;
    r_unhold(r);
    r->owed = false;
    if (r->in_decide)
        return; /* c_dispatch frees it */
    r_log(r);
    r_free(r);
    p->live_reqs--;
    p_maybe_done(p);
}

/* c_gone: the client left while its request was with the embedder */
static void c_gone(struct cconn *c)
{
    struct proxy_req *r = c->req;
    c->p->stats.client_gone++;
    r_detach(r);
    c_close(c);
    r_gone_notify(r);
}

static void c_on_timer(uv_timer_t *t)
{
    struct cconn *c = t->data;
    struct proxy *p = c->p;
    if ((c->phase == C_IDLE || c->phase == C_LINGER) && c->wq > 0) {
        p->stats.client_timeouts++; /* the last response's tail went unread */
        c_close(c);
        return;
    }
    switch (c->phase) {
    case C_IDLE:
        if (c->served == 0)
            c_reject(c, 408);
        else
            c_close(c);
        break;
    case C_HEAD:
        c_reject(c, 408);
        break;
    case C_REQ: {
        struct proxy_req *r = c->req;
        if (r && r->owed) { /* the hold timeout */
            p->stats.hold_timeouts++;
            char extra[64];
            snprintf(extra, sizeof extra, "Retry-After: %u\r\nCache-Control: no-store\r\n",
                     p->lim.retry_after_s);
            static const char msg[] = "the service is not ready yet; try again shortly\n";
            c_send_own(c, 503, extra, "text/plain; charset=utf-8", msg, sizeof msg - 1, true);
            r->status = 503;
            r_detach(r);
            if (c->phase != C_CLOSED)
                c_linger(c);
            r_gone_notify(r);
        } else {
            p->stats.client_timeouts++;
            c_close(c);
        }
        break;
    }
    case C_TUNNEL:
    case C_LINGER:
    default:
        c_close(c);
        break;
    }
}

static void c_freed(uv_handle_t *h)
{
    struct cconn *c = h->data;
    if (--c->handles > 0)
        return;
    struct proxy *p = c->p;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    p->nconns--;
    p->stats.conns_open--;
    if (c->req) {
        if (c->req->t_head)
            r_log(c->req);
        r_free(c->req);
    }
    free(c->pend);
    free(c);
    if (p->accept_pending && p->listening &&
        p->nconns < (uint64_t)p->lim.max_connections + REJECT_SLOTS) {
        p->accept_pending = false;
        accept_one(p);
    }
    p_maybe_done(p);
}

static void c_close(struct cconn *c)
{
    if (c->phase == C_CLOSED)
        return;
    struct proxy *p = c->p;
    c->phase = C_CLOSED;
    struct proxy_req *r = c->req;
    /* a response cut short, or queued bytes given up: end with a reset, as
     * a clean end would pass a response framed by it off as whole */
    if (c->wq > 0 || (r && !r->owed && r->resp_head_sent && !r->resp_done)) {
        uv_os_fd_t fd;
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    if (r && r->owed) {
        r_detach(r);
        if (!r->held)
            r->gone_called = true; /* in decide: it sees proxy_req_gone */
    } else if (r) {
        if (r->t_head && !r->resp_done)
            p->stats.client_gone++;
        if (r->u) {
            struct uconn *u = r->u;
            r->u = NULL;
            u->req = NULL;
            u_release(u, false);
        }
    }
    if (c->tunnel_counted) {
        c->tunnel_counted = false;
        p->stats.tunnels_open--;
    }
    if (c->tun) {
        struct uconn *u = c->tun;
        c->tun = NULL;
        u->req = NULL;
        u_close(u);
    }
    uv_close((uv_handle_t *)&c->tcp, c_freed);
    uv_close((uv_handle_t *)&c->timer, c_freed);
    if (r && r->owed)
        r_gone_notify(r);
}

static void c_abort(struct cconn *c)
{
    c_close(c);
}

/* ---- upstream connections ---- */

static struct uconn *pu(http_parser *hp)
{
    return hp->data;
}

static int on_resp_begin(http_parser *hp)
{
    struct uconn *u = pu(hp);
    if (u->req)
        head_reset(&u->req->rh);
    return 0;
}

static int on_resp_status(http_parser *hp, const char *at, size_t len)
{
    struct uconn *u = pu(hp);
    if (head_first(&u->req->rh, at, len, u->p->lim.max_header_bytes) != 0) {
        u->bad = true;
        return -1;
    }
    return 0;
}

static int on_resp_field(http_parser *hp, const char *at, size_t len)
{
    struct uconn *u = pu(hp);
    size_t maxn = u->p->lim.max_headers < 1000 ? 1000 : u->p->lim.max_headers;
    if (head_field(&u->req->rh, at, len, u->p->lim.max_header_bytes, maxn) != 0) {
        u->bad = true;
        return -1;
    }
    return 0;
}

static int on_resp_value(http_parser *hp, const char *at, size_t len)
{
    struct uconn *u = pu(hp);
    if (head_value_cb(&u->req->rh, at, len, u->p->lim.max_header_bytes) != 0) {
        u->bad = true;
        return -1;
    }
    return 0;
}

static int on_resp_headers(http_parser *hp)
{
    struct uconn *u = pu(hp);
    u->hc = true;
    http_parser_pause(hp, 1);
    return u->req->method == HTTP_HEAD ? 1 : 0;
}

static int r_write_body(struct proxy_req *r, const char *d, size_t n);

static int on_resp_body(http_parser *hp, const char *at, size_t len)
{
    struct uconn *u = pu(hp);
    struct proxy_req *r = u->req;
    if (r->mode != RM_DECHUNK || !r->c)
        return 0;
    if (r_write_body(r, at, len) != 0) {
        u->bad = true;
        return -1;
    }
    return 0;
}

static int on_resp_complete(http_parser *hp)
{
    pu(hp)->mc = true;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings resp_settings = {
    .on_message_begin = on_resp_begin,
    .on_status = on_resp_status,
    .on_header_field = on_resp_field,
    .on_header_value = on_resp_value,
    .on_headers_complete = on_resp_headers,
    .on_body = on_resp_body,
    .on_message_complete = on_resp_complete,
};

static void u_on_timer(uv_timer_t *t);

/* u_arm: the response timeout runs while the upstream owes us bytes */
static void u_arm(struct uconn *u)
{
    if (u->st != U_BUSY || !u->req)
        return;
    if ((u->req->req_done || u->wq > 0) && !u->bp)
        uv_timer_start(&u->timer, u_on_timer, u->p->lim.response_timeout_ms, 0);
    else
        uv_timer_stop(&u->timer);
}

static void u_freed(uv_handle_t *h)
{
    struct uconn *u = h->data;
    if (--u->handles > 0)
        return;
    struct proxy *p = u->p;
    u->pool->nconns--;
    p->nuconns--;
    p->stats.upstream_conns_open--;
    free(u);
    p_maybe_done(p);
}

static void pool_unlink(struct uconn *u)
{
    struct upool *pl = u->pool;
    if (u->prev)
        u->prev->next = u->next;
    else
        pl->idle = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->prev = u->next = NULL;
    pl->nidle--;
    u->p->stats.upstream_conns_idle--;
}

static void u_close(struct uconn *u)
{
    if (u->st == U_CLOSED)
        return;
    if (u->st == U_IDLE)
        pool_unlink(u);
    u->st = U_CLOSED;
    u->req = NULL;
    u->tc = NULL;
    uv_close((uv_handle_t *)&u->tcp, u_freed);
    uv_close((uv_handle_t *)&u->timer, u_freed);
}

/* u_release: the request is done with u: back to the pool or closed */
static void u_release(struct uconn *u, bool reusable)
{
    struct proxy *p = u->p;
    struct upool *pl = u->pool;
    if (u->req && u->req->u == u)
        u->req->u = NULL;
    u->req = NULL;
    if (!reusable || u->st != U_BUSY || p->closing || pl->nidle >= p->lim.pool_max_idle ||
        u->wq > 0 || u->read_eof) {
        u_close(u);
        return;
    }
    u->st = U_IDLE;
    u->bp = false;
    u->next = pl->idle;
    u->prev = NULL;
    if (pl->idle)
        pl->idle->prev = u;
    pl->idle = u;
    pl->nidle++;
    p->stats.upstream_conns_idle++;
    if (u_read(u, true) != 0) {
        u_close(u);
        return;
    }
    uv_timer_start(&u->timer, u_on_timer, p->lim.pool_idle_timeout_ms, 0);
}

static void r_attempt(struct proxy_req *r);

/* r_pick: the next candidate not tried yet, preferring those not down */
static int r_pick(struct proxy_req *r)
{
    long long now = now_ms();
    int fallback = -1;
    for (unsigned i = 0; i < r->nups; i++) {
        unsigned j = (r->cur + i) % r->nups;
        if (r->tries & (1ull << j))
            continue;
        if (r->ups[j]->down_until <= now)
            return (int)j;
        if (fallback < 0)
            fallback = (int)j;
    }
    return fallback;
}

/* r_fail_own: the proxy answers a request it could not forward */
static void r_fail_own(struct proxy_req *r, int status)
{
    struct cconn *c = r->c;
    const char *msg = status == 504   ? "the service did not answer in time\n"
                      : status == 502 ? "the service could not be reached\n"
                                      : "error\n";
    c_send_own(c, status, "Cache-Control: no-store\r\n", "text/plain; charset=utf-8", msg,
               strlen(msg), false);
    if (c->phase != C_CLOSED)
        c_finish(c);
}

static void u_connect(struct proxy_req *r, struct upool *pl);
static void u_attach(struct uconn *u, struct proxy_req *r);

static void r_attempt(struct proxy_req *r)
{
    struct proxy *p = r->p;
    int j = r_pick(r);
    if (j < 0) {
        r_fail_own(r, r->connect_timed_out ? 504 : 502);
        return;
    }
    r->cur = (unsigned)j;
    struct upool *pl = r->ups[j];
    snprintf(r->upstream, sizeof r->upstream, "%s", pl->addr);
    struct uconn *u = pl->idle;
    if (!u) {
        u_connect(r, pl);
        return;
    }
    pool_unlink(u);
    uv_timer_stop(&u->timer);
    u->reused = true;
    p->stats.upstream_reuses++;
    u->st = U_BUSY;
    u_attach(u, r);
}

static void u_attach(struct uconn *u, struct proxy_req *r)
{
    struct cconn *c = r->c;
    u->req = r;
    r->u = u;
    u->st = U_BUSY;
    u->got_bytes = u->hc = u->mc = u->bad = false;
    http_parser_init(&u->parser, HTTP_RESPONSE);
    u->parser.data = u;
    if (!r->uh.len)
        r_build_uh(r);
    r->t_sent = now_us();
    if (u_write1(u, r->uh.buf, r->uh.len) != 0) {
        u_fail(u, UF_ERROR);
        return;
    }
    u_sync_read(u);
    if (u->st != U_BUSY)
        return;
    if (r->expect && !r->req_done && !r->sent_continue && c->pend_len == c->pend_off) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        r->sent_continue = true;
        if (c_write1(c, cont, sizeof cont - 1) != 0) {
            c_close(c);
            return;
        }
    }
    u_arm(u);
    c_arm_stream(c);
    c_drive(c);
}

static void on_uconnect(uv_connect_t *cr, int status)
{
    struct uconn *u = cr->data;
    if (u->st == U_CLOSED)
        return;
    if (status < 0) {
        u_fail(u, UF_ERROR);
        return;
    }
    struct proxy_req *r = u->req;
    long long us = now_us() - u->t_connect;
    lat_add(u->p->stats.connect_us, us);
    r->connect_us = us;
    u->pool->down_until = 0;
    uv_tcp_nodelay(&u->tcp, 1);
    u_attach(u, r);
}

static void u_connect(struct proxy_req *r, struct upool *pl)
{
    struct proxy *p = r->p;
    struct uconn *u = xcalloc(1, sizeof *u);
    u->p = p;
    u->pool = pl;
    u->tcp.data = u->timer.data = u->creq.data = u->shut.data = u;
    uv_tcp_init(p->loop, &u->tcp);
    uv_timer_init(p->loop, &u->timer);
    u->handles = 2;
    pl->nconns++;
    p->nuconns++;
    p->stats.upstream_conns_open++;
    p->stats.upstream_conns_made++;
    u->st = U_CONNECTING;
    u->req = r;
    r->u = u;
    u->t_connect = now_us();
    int rc = uv_tcp_connect(&u->creq, &u->tcp, (const struct sockaddr *)&pl->ss, on_uconnect);
    if (rc) {
        u_fail(u, UF_ERROR);
        return;
    }
    uv_timer_start(&u->timer, u_on_timer, p->lim.connect_timeout_ms, 0);
}

/* u_fail: u broke (closed, reset, timed out, spoke nonsense) */

/* replayable: may the request be sent again after a pooled connection died
 * under it? Only an idempotent method (RFC 9110 9.2.2: GET, HEAD, OPTIONS,
 * TRACE, PUT, DELETE) or one that carries an Idempotency-Key: the upstream
 * may have acted on a POST even though it never answered */
static bool replayable(const struct proxy_req *r)
{
    switch (r->method) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
    case HTTP_PUT:
    case HTTP_DELETE:
        return true;
    default:
        return head_get(&r->h, "Idempotency-Key") || head_get(&r->h, "X-Idempotency-Key");
    }
}

static void u_fail(struct uconn *u, int why)
{
    struct proxy *p = u->p;
    struct proxy_req *r = u->req;
    if (u->st == U_TUNNEL) {
        struct cconn *c = u->tc;
        u_close(u);
        if (c)
            c_close(c);
        return;
    }
    if (!r) {
        u_close(u);
        return;
    }
    struct cconn *c = r->c;
    if (u->st == U_CONNECTING) {
        p->stats.upstream_connect_errors++;
        u->pool->down_until = now_ms() + p->lim.down_ms;
        r->tries |= 1ull << r->cur;
        if (why == UF_TIMEOUT)
            r->connect_timed_out = true;
        r->u = NULL;
        u_close(u);
        r_attempt(r);
        return;
    }
    if (!r->resp_head_sent) {
        bool retry = u->reused && !u->got_bytes && !r->body_sent && why != UF_TIMEOUT &&
                     why != UF_BAD && replayable(r);
        r->u = NULL;
        u_close(u);
        if (retry) {
            p->stats.retries++;
            r_attempt(r);
            return;
        }
        if (why == UF_TIMEOUT)
            p->stats.upstream_timeouts++;
        else if (why == UF_BAD)
            p->stats.upstream_bad_responses++;
        else
            r->tries |= 1ull << r->cur;
        r_fail_own(r, why == UF_TIMEOUT ? 504 : 502);
        return;
    }
    /* mid-response: never let a cut response look whole */
    if (why == UF_TIMEOUT)
        p->stats.upstream_timeouts++;
    else
        p->stats.upstream_aborts++;
    r->u = NULL;
    u_close(u);
    if (c)
        c_close(c);
}

static void u_on_timer(uv_timer_t *t)
{
    struct uconn *u = t->data;
    switch (u->st) {
    case U_CONNECTING:
    case U_BUSY:
        u_fail(u, UF_TIMEOUT);
        break;
    default:
        u_close(u);
        break;
    }
}

/* ---- responses ---- */

/* resp_drop: a response header that stays on the upstream's side of the
 * hop, or that the proxy writes itself */
static bool resp_drop(const char *n)
{
    static const char *const drop[] = {"connection", "keep-alive", "proxy-connection", "te",
                                       "trailer", "transfer-encoding", "upgrade",
                                       "content-length"};
    char c0 = (char)(n[0] | 0x20);
    if (c0 != 'c' && c0 != 'k' && c0 != 'p' && c0 != 't' && c0 != 'u')
        return false;
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
        if (strcasecmp(n, drop[i]) == 0)
            return true;
    return false;
}

/* u_send_head: the client's copy of the upstream's response head, built
 * into r->uh (a retry is no longer possible, so the request head is done
 * with) and sent with the first body bytes: one write, one segment */
static int u_send_head(struct uconn *u)
{
    struct proxy *p = u->p;
    struct proxy_req *r = u->req;
    struct cconn *c = r->c;
    const struct head *h = &r->rh;
    http_parser *hp = &u->parser;
    int status = hp->status_code;
    bool upgrade = status == 101;
    bool nobody = r->method == HTTP_HEAD || status == 204 || status == 304;
    bool chunked = (hp->flags & F_CHUNKED) != 0;
    bool has_cl = hp->content_length != ULLONG_MAX && !chunked;
    r->close_client = !r->keep_alive || p->closing || !r->req_done || (r->upgrade && !upgrade);
    r->mode = RM_RAW;
    if (!nobody && !upgrade && !has_cl) {
        if (!chunked || r->minor == 0)
            r->close_client = true; /* the end of the body is the end of the connection */
        if (chunked && r->minor == 0)
            r->mode = RM_DECHUNK;
    }
    struct sb *b = &r->uh;
    sb_reset(b);
    const char *rp = h->buf + h->offs[0];
    sb_addf(b, "HTTP/1.1 %d %s\r\n", status, *rp ? rp : reason(status));
    bool has_conn = false;
    for (size_t i = 0; i < head_n(h); i++)
        if (strcasecmp(head_name(h, i), "connection") == 0)
            has_conn = true;
    const char *cl = NULL, *te = NULL, *upv = NULL;
    for (size_t i = 0; i < head_n(h); i++) {
        const char *n = head_name(h, i), *v = head_value(h, i);
        if (resp_drop(n)) {
            if (!cl && strcasecmp(n, "content-length") == 0)
                cl = v;
            else if (!te && strcasecmp(n, "transfer-encoding") == 0)
                te = v;
            else if (!upv && strcasecmp(n, "upgrade") == 0)
                upv = v;
            continue;
        }
        if (has_conn && named_by_connection(h, n))
            continue;
        sb_adds(b, n);
        sb_adds(b, ": ");
        sb_adds(b, v);
        sb_adds(b, "\r\n");
    }
    if (nobody) {
        if (cl)
            sb_addf(b, "Content-Length: %s\r\n", cl);
    } else if (has_cl) {
        sb_addf(b, "Content-Length: %llu\r\n", (unsigned long long)hp->content_length);
    } else if (chunked && r->mode == RM_RAW) {
        sb_addf(b, "Transfer-Encoding: %s\r\n", te ? te : "chunked");
    }
    if (p->via)
        sb_adds(b, "Via: 1.1 prenv\r\n");
    if (upgrade) {
        sb_adds(b, "Connection: upgrade\r\nUpgrade: ");
        sb_adds(b, upv ? upv : "");
        sb_adds(b, "\r\n");
    } else if (r->close_client) {
        sb_adds(b, "Connection: close\r\n");
    } else if (r->minor == 0) {
        sb_adds(b, "Connection: keep-alive\r\n");
    }
    sb_adds(b, "\r\n");
    r->status = status;
    r->resp_head_sent = true;
    r->head_pending = true;
    count_status(p, status);
    (void)c;
    return 0;
}

/* r_flush_head: the response head alone, when no body bytes came with it */
static int r_flush_head(struct proxy_req *r)
{
    if (!r->head_pending)
        return 0;
    r->head_pending = false;
    return c_write1(r->c, r->uh.buf, r->uh.len);
}

/* r_write_body: body bytes to the client, behind the head if it waits */
static int r_write_body(struct proxy_req *r, const char *d, size_t n)
{
    if (!r->head_pending)
        return c_write1(r->c, d, n);
    r->head_pending = false;
    uv_buf_t b[2] = {uv_buf_init(r->uh.buf, (unsigned)r->uh.len), uv_buf_init((char *)d, (unsigned)n)};
    return c_write(r->c, b, 2);
}

static void c_tunnel_start(struct cconn *c, struct uconn *u, const char *d, size_t n);

/* u_resp_done: the response went whole to the client's queue */
static void u_resp_done(struct uconn *u)
{
    struct proxy_req *r = u->req;
    struct cconn *c = r->c;
    bool reuse = r->req_done && http_should_keep_alive(&u->parser);
    u_release(u, reuse);
    if (r_flush_head(r) != 0) {
        c_close(c);
        return;
    }
    c_finish(c);
}

/* u_step: one http_parser_execute over the upstream's bytes; the bytes
 * taken (u is no longer busy when the response ended), or SIZE_MAX when u
 * or the request failed */
static size_t u_step(struct uconn *u, const char *d, size_t n)
{
    struct proxy *p = u->p;
    struct proxy_req *r = u->req;
    struct cconn *c = r->c;
    if (r->resp_head_sent) {
        u->mc = false;
        size_t k = http_parser_execute(&u->parser, &resp_settings, d, n);
        enum http_errno en = HTTP_PARSER_ERRNO(&u->parser);
        if (en == HPE_PAUSED) {
            http_parser_pause(&u->parser, 0);
        } else if (en != HPE_OK) {
            u_fail(u, UF_BAD);
            return SIZE_MAX;
        }
        if (k && r->mode == RM_RAW && r_write_body(r, d, k) != 0) {
            c_close(c);
            return SIZE_MAX;
        }
        if (u->mc)
            u_resp_done(u);
        return k;
    }
    u->hc = false;
    size_t k = http_parser_execute(&u->parser, &resp_settings, d, n);
    enum http_errno en = HTTP_PARSER_ERRNO(&u->parser);
    if (en == HPE_PAUSED) {
        http_parser_pause(&u->parser, 0);
    } else if (en != HPE_OK) {
        u_fail(u, UF_BAD);
        return SIZE_MAX;
    }
    if (!u->hc)
        return k;
    if (!head_end(&r->rh)) {
        u_fail(u, UF_BAD);
        return SIZE_MAX;
    }
    int status = u->parser.status_code;
    if (status == 101) {
        if (!r->upgrade || !u->parser.upgrade) {
            u_fail(u, UF_BAD);
            return SIZE_MAX;
        }
        r->header_us = now_us() - r->t_sent;
        lat_add(p->stats.header_us, r->header_us);
        if (u_send_head(u) != 0 || r_flush_head(r) != 0) {
            c_close(c);
            return SIZE_MAX;
        }
        c_tunnel_start(c, u, d + k + 1, n - k - 1);
        return n;
    }
    if (status < 200) { /* interim: 100 Continue went out already, the rest is dropped */
        u->mc = false;
        k += http_parser_execute(&u->parser, &resp_settings, d + k, 1);
        if (HTTP_PARSER_ERRNO(&u->parser) == HPE_PAUSED)
            http_parser_pause(&u->parser, 0);
        return k;
    }
    r->header_us = now_us() - r->t_sent;
    lat_add(p->stats.header_us, r->header_us);
    if (u_send_head(u) != 0) {
        c_close(c);
        return SIZE_MAX;
    }
    u->mc = false;
    k += http_parser_execute(&u->parser, &resp_settings, d + k, 1);
    en = HTTP_PARSER_ERRNO(&u->parser);
    if (en == HPE_PAUSED) {
        http_parser_pause(&u->parser, 0);
    } else if (en != HPE_OK) {
        u_fail(u, UF_BAD);
        return SIZE_MAX;
    }
    if (u->mc)
        u_resp_done(u);
    return k;
}

static void on_ualloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct uconn *u = h->data;
    (void)suggested;
    buf->base = u->p->rbuf;
    buf->len = RBUF_SIZE;
}

static void u_tunnel_in(struct uconn *u, const char *d, size_t n);
static void u_tunnel_eof(struct uconn *u);

static void on_uread(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct uconn *u = s->data;
    if (nread == 0 || u->st == U_CLOSED)
        return;
    if (u->st == U_IDLE) { /* a pooled connection speaks or closes: it goes */
        u_close(u);
        return;
    }
    if (u->st == U_TUNNEL) {
        if (nread == UV_EOF)
            u_tunnel_eof(u);
        else if (nread < 0)
            u_fail(u, UF_ERROR);
        else
            u_tunnel_in(u, buf->base, (size_t)nread);
        return;
    }
    if (!u->req) {
        u_close(u);
        return;
    }
    if (nread < 0) {
        u->read_eof = true;
        struct proxy_req *r = u->req;
        if (nread == UV_EOF && r->resp_head_sent) {
            u->mc = false;
            http_parser_execute(&u->parser, &resp_settings, NULL, 0);
            if (u->mc) { /* the body ran to the end of the connection */
                u_resp_done(u);
                return;
            }
        }
        u_fail(u, nread == UV_EOF ? UF_EOF : UF_ERROR);
        return;
    }
    u->got_bytes = true;
    const char *d = buf->base;
    size_t n = (size_t)nread;
    while (n) {
        size_t k = u_step(u, d, n);
        if (k == SIZE_MAX)
            return;
        d += k;
        n -= k;
        if (u->st != U_BUSY || k == 0) /* done: u is pooled, closed or a tunnel */
            break;
    }
    if (u->st == U_IDLE && n) { /* bytes past the response: not to be trusted */
        u_close(u);
        return;
    }
    if (u->st == U_BUSY && u->req) {
        if (r_flush_head(u->req) != 0) {
            c_close(u->req->c);
            return;
        }
        u_arm(u);
        u_sync_read(u);
    }
}

/* ---- tunnels ---- */

static void c_tunnel_start(struct cconn *c, struct uconn *u, const char *d, size_t n)
{
    struct proxy *p = c->p;
    struct proxy_req *r = c->req;
    r->resp_done = true;
    r->u = NULL;
    u->req = NULL;
    u->st = U_TUNNEL;
    u->tc = c;
    c->tun = u;
    c->phase = C_TUNNEL;
    c->tunnel_counted = true;
    p->stats.tunnels++;
    p->stats.tunnels_open++;
    uv_timer_stop(&u->timer);
    r_log(r);
    c_arm(c, p->lim.tunnel_timeout_ms);
    if (n && c_write1(c, d, n) != 0) {
        c_close(c);
        return;
    }
    if (c->pend_len > c->pend_off) {
        size_t off = c->pend_off, m = c->pend_len - c->pend_off;
        c->pend_off = c->pend_len = 0;
        if (u_write1(u, c->pend + off, m) != 0) {
            c_close(c);
            return;
        }
    }
    c_sync_read(c);
    u_sync_read(u);
}

static void c_tunnel_in(struct cconn *c, const char *d, size_t n)
{
    if (u_write1(c->tun, d, n) != 0) {
        c_close(c);
        return;
    }
    c_arm(c, c->p->lim.tunnel_timeout_ms);
    c_sync_read(c);
}

static void u_tunnel_in(struct uconn *u, const char *d, size_t n)
{
    struct cconn *c = u->tc;
    if (!c || c_write1(c, d, n) != 0) {
        if (c)
            c_close(c);
        else
            u_close(u);
        return;
    }
    c_arm(c, c->p->lim.tunnel_timeout_ms);
    u_sync_read(u);
}

static void on_tunnel_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

/* half-closes travel through the tunnel; when both ways ended it closes */
static void c_tunnel_eof(struct cconn *c)
{
    struct uconn *u = c->tun;
    c->read_eof = true;
    c_read(c, false);
    if (!u || u->read_eof) {
        c_close(c);
        return;
    }
    if (!u->shut_sent) {
        u->shut_sent = true;
        if (uv_shutdown(&u->shut, (uv_stream_t *)&u->tcp, on_tunnel_shutdown) != 0)
            c_close(c);
    }
}

static void u_tunnel_eof(struct uconn *u)
{
    struct cconn *c = u->tc;
    u->read_eof = true;
    u_read(u, false);
    if (!c || c->read_eof) {
        if (c)
            c_close(c);
        else
            u_close(u);
        return;
    }
    if (!c->shut_sent) {
        c->shut_sent = true;
        if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_tunnel_shutdown) != 0)
            c_close(c);
    }
}

/* ---- a queue drained below buffer_bytes: the other side reads again ---- */

static void c_drained(struct cconn *c)
{
    if (c->phase == C_IDLE || c->phase == C_LINGER) { /* the last response's tail moved */
        c_arm_tail(c);
        return;
    }
    if (c->phase == C_TUNNEL) {
        if (c->tun)
            u_sync_read(c->tun);
        return;
    }
    if (c->req && c->req->u && c->req->u->st == U_BUSY) {
        struct uconn *u = c->req->u;
        u_sync_read(u);
        u_arm(u);
    }
    c_arm_stream(c);
}

static void u_drained(struct uconn *u)
{
    if (u->st == U_TUNNEL) {
        if (u->tc)
            c_sync_read(u->tc);
        return;
    }
    struct cconn *c = u_client(u);
    if (c) {
        c_drive(c);
    }
    u_arm(u);
}

/* ---- the log record ---- */

static void r_log(struct proxy_req *r)
{
    struct proxy *p = r->p;
    if (r->logged)
        return;
    r->logged = true;
    if (!p->log || p->close_cb_called || !r->t_head)
        return;
    struct proxy_log l = {
        .host = r->h.buf + r->host_off,
        .method = http_method_str((enum http_method)r->method),
        .target = r->h.buf + r->h.offs[0],
        .remote = r->remote,
        .upstream = r->upstream[0] ? r->upstream : NULL,
        .status = r->resp_head_sent ? r->status : 0,
        .complete = r->resp_done,
        .bytes_in = r->bytes_in,
        .bytes_out = r->bytes_out,
        .duration_us = now_us() - r->t_head,
        .held_us = r->held_us,
        .upstream_connect_us = r->upstream[0] && r->connect_us ? r->connect_us : -1,
        .upstream_header_us = r->header_us ? r->header_us : -1,
        .tag = r->tag,
    };
    p->log(&l, p->ctx);
}

/* ---- accepting ---- */

static void peer_name(struct cconn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(c->remote, sizeof c->remote, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], c->remote, sizeof c->remote);
        else
            uv_ip6_name(a, c->remote, sizeof c->remote);
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof c->remote);
    }
}

static void accept_one(struct proxy *p)
{
    struct cconn *c = xcalloc(1, sizeof *c);
    c->p = p;
    c->tcp.data = c->timer.data = c->shut.data = c;
    uv_tcp_init(p->loop, &c->tcp);
    uv_timer_init(p->loop, &c->timer);
    c->handles = 2;
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    p->nconns++;
    p->stats.conns_open++;
    if (uv_accept((uv_stream_t *)&p->listener, (uv_stream_t *)&c->tcp) != 0) {
        c_close(c);
        return;
    }
    p->stats.conns_accepted++;
    peer_name(c);
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->phase = C_IDLE;
    if (p->nconns > p->lim.max_connections) {
        c_reject(c, 503);
        return;
    }
    c_arm(c, p->lim.header_timeout_ms);
    if (c_read(c, true) != 0)
        c_close(c);
}

static void on_connection(uv_stream_t *l, int status);

static void on_listener_closed(uv_handle_t *h)
{
    struct proxy *p = h->data;
    p->listener_closing = false;
    p->handles--;
    p_maybe_done(p);
}

/* listener_open: watch a dup of lfd, so that closing the handle (to pause
 * after an accept error) keeps the socket and its backlog */
static int listener_open(struct proxy *p)
{
    int fd = fcntl(p->lfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (uv_tcp_init(p->loop, &p->listener) != 0 || uv_tcp_open(&p->listener, fd) != 0 ||
        uv_listen((uv_stream_t *)&p->listener, BACKLOG, on_connection) != 0)
        abort();
    p->listener.data = p;
    p->handles++;
    p->listening = true;
    return 0;
}

static void listener_close(struct proxy *p)
{
    if (!p->listening)
        return;
    p->listening = false;
    p->accept_pending = false;
    p->listener_closing = true;
    uv_close((uv_handle_t *)&p->listener, on_listener_closed);
}

static void on_accept_timer(uv_timer_t *t)
{
    struct proxy *p = t->data;
    if (p->lfd < 0)
        return;
    if (p->listener_closing || (!p->listening && listener_open(p) != 0))
        uv_timer_start(&p->accept_timer, on_accept_timer, ACCEPT_PAUSE_MS, 0);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct proxy *p = l->data;
    if (status < 0) {
        listener_close(p);
        uv_timer_start(&p->accept_timer, on_accept_timer, ACCEPT_PAUSE_MS, 0);
        return;
    }
    if (p->nconns >= (uint64_t)p->lim.max_connections + REJECT_SLOTS) {
        p->accept_pending = true;
        return;
    }
    accept_one(p);
}

/* ---- the proxy ---- */

int proxy_start(struct proxy **out, uv_loop_t *loop, const char *addr, const struct proxy_opts *o,
                struct err *e)
{
    *out = NULL;
    if (!o || !o->decide)
        return err_set(e, PE_USAGE, NULL, "proxy without a decide callback");
    struct sockaddr_storage ss;
    int rc = http_listen_parse(&ss, addr, e);
    if (rc)
        return rc;
    int fd = http_listen_fd(&ss);
    if (fd < 0)
        return err_errno(e, -fd, "cannot listen on %s", addr);
    struct proxy *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    p->addr = ss;
    p->lfd = fd;
    p->lim = o->lim;
    limits_fill(&p->lim);
    p->decide = o->decide;
    p->gone = o->gone;
    p->log = o->log;
    p->ctx = o->ctx;
    p->proto = xstrdup(o->proto && *o->proto ? o->proto : "http");
    p->via = o->via;
    sb_init(&p->scratch);
    rc = listener_open(p);
    if (rc) {
        close(fd);
        free(p->proto);
        free(p);
        return err_errno(e, -rc, "cannot listen on %s", addr);
    }
    http_sigpipe_guard();
    uv_timer_init(loop, &p->accept_timer);
    uv_timer_init(loop, &p->deadline_timer);
    p->accept_timer.data = p->deadline_timer.data = p;
    p->handles += 2;
    p->rbuf = xmalloc(RBUF_SIZE);
    *out = p;
    return 0;
}

int proxy_port(const struct proxy *p)
{
    if (p->addr.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&p->addr)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&p->addr)->sin_port);
}

const struct proxy_stats *proxy_stats(const struct proxy *p)
{
    return &p->stats;
}

static void p_handle_closed(uv_handle_t *h)
{
    struct proxy *p = h->data;
    p->handles--;
    p_maybe_done(p);
}

static void p_free(struct proxy *p)
{
    for (int i = 0; i < HASH_SIZE; i++) {
        while (p->pools[i]) {
            struct upool *u = p->pools[i];
            p->pools[i] = u->hnext;
            free(u);
        }
        while (p->keys[i]) {
            struct pkey *k = p->keys[i];
            p->keys[i] = k->hnext;
            free(k);
        }
    }
    sb_release(&p->scratch);
    free(p->rbuf);
    free(p->proto);
    free(p);
}

static void p_maybe_done(struct proxy *p)
{
    if (!p->closing)
        return;
    if (p->nconns > 0 || p->nuconns > 0) {
        return;
    }
    if (!p->close_cb_called && !uv_is_closing((uv_handle_t *)&p->accept_timer)) {
        uv_close((uv_handle_t *)&p->accept_timer, p_handle_closed);
        uv_close((uv_handle_t *)&p->deadline_timer, p_handle_closed);
        return;
    }
    if (p->handles == 0 && !p->close_cb_called) {
        p->close_cb_called = true;
        if (p->close_cb)
            p->close_cb(p);
    }
    if (p->close_cb_called && p->live_reqs == 0 && !p->cut) {
        p->cut = true; /* freed once */
        p_free(p);
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct proxy *p = t->data;
    for (struct cconn *c = p->conns; c; c = c->next)
        c_close(c);
}

static void pools_close(struct proxy *p)
{
    for (int i = 0; i < HASH_SIZE; i++)
        for (struct upool *u = p->pools[i]; u; u = u->hnext)
            while (u->idle)
                u_close(u->idle);
}

void proxy_close(struct proxy *p, unsigned deadline_ms, void (*cb)(struct proxy *p))
{
    if (p->closing)
        return;
    p->closing = true;
    p->close_cb = cb;
    if (p->lfd >= 0) {
        listener_close(p);
        close(p->lfd);
        p->lfd = -1;
    }
    uv_timer_stop(&p->accept_timer);
    pools_close(p);
    for (struct cconn *c = p->conns; c; c = c->next) {
        if (c->phase != C_IDLE)
            continue;
        if (c->wq > 0)
            c_linger(c); /* its last response is still going out: FIN after it */
        else
            c_close(c);
    }
    if (p->nconns > 0)
        uv_timer_start(&p->deadline_timer, on_deadline, deadline_ms, 0);
    p_maybe_done(p);
}

/* ---- the request, for decide ---- */

const char *proxy_req_host(const struct proxy_req *r)
{
    return r->h.buf + r->host_off;
}

const char *proxy_req_method(const struct proxy_req *r)
{
    return http_method_str((enum http_method)r->method);
}

const char *proxy_req_path(const struct proxy_req *r)
{
    return r->h.buf + r->path_off;
}

const char *proxy_req_query(const struct proxy_req *r)
{
    return r->h.buf + r->query_off;
}

const char *proxy_req_header(const struct proxy_req *r, const char *name)
{
    return head_get(&r->h, name);
}

const char *proxy_req_remote(const struct proxy_req *r)
{
    return r->remote;
}

bool proxy_req_gone(const struct proxy_req *r)
{
    return r->gone || !r->c;
}

void proxy_req_set_tag(struct proxy_req *r, void *tag)
{
    r->tag = tag;
}

void proxy_req_strip_auth(struct proxy_req *r)
{
    r->strip_auth = true;
}

/* ---- answers ---- */

int proxy_forward(struct proxy_req *r, const char *pool_key, const struct proxy_upstream *ups,
                  size_t n)
{
    struct proxy *p = r->p;
    if (!r->owed)
        return PE_USAGE;
    if (r->gone) {
        r_release(r);
        return PE_CANCELED;
    }
    r_unhold(r);
    r->owed = false;
    struct cconn *c = r->c;
    uv_timer_stop(&c->timer);
    bool ok = n > 0 && n <= MAX_UPS;
    for (size_t i = 0; ok && i < n; i++) { /* held at once: a later pool_get may sweep */
        r->ups[i] = ups[i].addr ? pool_get(p, ups[i].addr) : NULL;
        ok = r->ups[i] != NULL;
        if (ok) {
            r->ups[i]->refs++;
            r->nups = (unsigned)i + 1;
        }
    }
    if (!ok) {
        r_unref_ups(r);
        r_fail_own(r, 502);
        return PE_CONFIG;
    }
    struct pkey *k = key_get(p, pool_key ? pool_key : "");
    r->cur = k->rr++ % r->nups;
    r_attempt(r);
    return 0;
}

static bool reply_hdr_ok(const struct http_hdr *h)
{
    static const char *const reserved[] = {"content-length", "transfer-encoding", "connection",
                                           "date"};
    if (!h->name || !h->value || !is_token(h->name) || strpbrk(h->value, "\r\n"))
        return false;
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (strcasecmp(h->name, reserved[i]) == 0)
            return false;
    return true;
}

int proxy_reply(struct proxy_req *r, int status, const struct http_hdr *hdrs, size_t n,
                const char *content_type, const char *body, size_t len)
{
    struct proxy *p = r->p;
    if (!r->owed)
        return PE_USAGE;
    if (r->gone) {
        r_release(r);
        return PE_CANCELED;
    }
    r_unhold(r);
    r->owed = false;
    struct cconn *c = r->c;
    uv_timer_stop(&c->timer);
    int rc = 0;
    bool ok = status >= 200 && status <= 599 && (!content_type || !strpbrk(content_type, "\r\n"));
    for (size_t i = 0; ok && i < n; i++)
        ok = reply_hdr_ok(&hdrs[i]);
    struct sb extra;
    sb_init(&extra);
    if (ok) {
        for (size_t i = 0; i < n; i++)
            sb_addf(&extra, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
        c_send_own(c, status, extra.buf, content_type, body, len, false);
    } else {
        static const char msg[] = "internal error\n";
        c_send_own(c, 500, NULL, "text/plain; charset=utf-8", msg, sizeof msg - 1, false);
        rc = PE_USAGE;
    }
    sb_release(&extra);
    (void)p;
    if (c->phase != C_CLOSED)
        c_finish(c);
    return rc;
}

void proxy_req_drop(struct proxy_req *r)
{
    struct proxy *p = r->p;
    if (!r->owed)
        return;
    if (r->gone) {
        r_release(r);
        return;
    }
    char extra[80];
    snprintf(extra, sizeof extra, "Retry-After: %u\r\nCache-Control: no-store\r\n",
             p->lim.retry_after_s);
    r_unhold(r);
    r->owed = false;
    struct cconn *c = r->c;
    uv_timer_stop(&c->timer);
    static const char msg[] = "the service is not available; try again shortly\n";
    c_send_own(c, 503, extra, "text/plain; charset=utf-8", msg, sizeof msg - 1, false);
    if (c->phase != C_CLOSED)
        c_finish(c);
}

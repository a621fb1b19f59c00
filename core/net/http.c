/* http: the HTTP/1.1 server. A connection moves through phases:
 *
 *   IDLE -> HEAD -> BODY -> HANDLER -> WRITE -> IDLE (keep-alive)
 *                                            -> LINGER -> closed
 *
 * with one timer per connection armed for the phase's deadline. The parser
 * pauses at the end of each request, so a connection parses nothing while its
 * request is with the handler or its response is being written; bytes of a
 * pipelined next request that came in the same read, or in the one read that
 * may follow (reading stops only when something comes, which saves two
 * epoll_ctl calls per request), wait in c->pend, and an EOF then waits for
 * the answer to go out. At most one response per connection is in flight, so
 * memory per connection is bounded by the limits. Body buffers of answered
 * requests are kept (HTTP_SPARE_BODIES, each at most BODY_PREALLOC) for the
 * next bodies. Final responses that close the connection are
 * followed by a shutdown and a short "lingering close" that reads and
 * discards what the client still sends, so that it sees the answer instead
 * of a reset.
 *
 * Left to others: routing, TLS, streaming responses, logging. */
#include "core/net/http.h"

#include "core/lib/err.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

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
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (64 * 1024)
#define BACKLOG 511
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (1024 * 1024)
#define ACCEPT_PAUSE_MS 100
#define REJECT_SLOTS 64 /* connections being answered 503 beyond max_connections */
#define PARSER_HEADER_CEILING (80 * 1024)
#define BODY_PREALLOC (256 * 1024)
#define RESP_MAX ((size_t)1 << 30) /* a uv_buf_t holds an unsigned int */

#define DEF_MAX_HEADER_BYTES (64 * 1024)
#define DEF_MAX_URL (8 * 1024)
#define DEF_MAX_HEADERS 100
#define DEF_MAX_BODY ((size_t)26 << 20)
#define DEF_HEADER_TIMEOUT_MS 10000
#define DEF_BODY_TIMEOUT_MS 60000
#define DEF_IDLE_TIMEOUT_MS 60000
#define DEF_WRITE_TIMEOUT_MS 60000
#define DEF_MAX_CONNECTIONS 1024

enum phase { PH_IDLE, PH_HEAD, PH_BODY, PH_HANDLER, PH_WRITE, PH_LINGER, PH_CLOSED };
enum last_cb { L_NONE, L_URL, L_FIELD, L_VALUE };

struct hreq {
    struct http_req pub;    /* first: the handler's pointer is ours */
    struct http_conn *conn; /* NULL once the connection is gone */
    int refs;               /* the response obligation counts as one */
    bool responded, head, keep_alive;
    enum last_cb last;
    size_t url_len, hbytes;
    char *hbuf; /* url\0 name\0 value\0 ... path\0 query\0 */
    size_t hlen, hcap;
    size_t *offs; /* url, then name, value pairs */
    size_t noffs, capoffs;
    struct http_header *hdrs;
    char *body;
    size_t blen, bcap, bmax; /* bmax: the most bcap will grow to */
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    struct http_server *srv;
    struct http_conn *prev, *next;
    http_parser parser;
    enum phase phase;
    int handles;      /* open handles, 2 until both close callbacks ran */
    bool close_after; /* close once the response in flight is written */
    enum http_reject rej;
    bool rej_set;
    int rej_status;       /* overrides the reason's usual status */
    unsigned long served; /* responses written */
    struct hreq *cur;     /* being received */
    struct hreq *ready;   /* received, not yet handed over */
    struct hreq *active;  /* with the handler */
    char *pend;           /* received, not yet parsed (pipelining) */
    size_t pend_len;
    bool reading;  /* libuv is reading it */
    bool read_end; /* EOF or an error came while the handler had the request */
    size_t lingered;
    char remote[64];
};

enum wkind { W_RESPONSE, W_CONTINUE };

struct wreq {
    uv_write_t w;
    struct http_conn *c;
    enum wkind kind;
    size_t len;
    char data[];
};

static const char *const reject_names[] = {
#define HTTP_REJ_NAME(name, label) label,
    HTTP_REJECTS(HTTP_REJ_NAME)
#undef HTTP_REJ_NAME
};

const char *http_reject_name(enum http_reject r)
{
    return (unsigned)r < HTTP_REJ__COUNT ? reject_names[r] : "unknown";
}

static void conn_close(struct http_conn *c);
static void conn_next(struct http_conn *c);
static void srv_maybe_done(struct http_server *srv);
static void accept_one(struct http_server *srv);

/* ---- requests ---- */

static struct hreq *req_new(struct http_conn *c)
{
    struct hreq *r = xcalloc(1, sizeof *r);
    r->conn = c;
    r->refs = 1;
    r->pub.method = "";
    r->pub.target = r->pub.path = r->pub.query = "";
    r->pub.body = "";
    memcpy(r->pub.remote, c->remote, sizeof r->pub.remote);
    r->pub.start_ms = tm_mono_ms();
    return r;
}

static void req_free(struct hreq *r)
{
    if (!r)
        return;
    free(r->hbuf);
    free(r->offs);
    free(r->hdrs);
    free(r->body);
    free(r);
}

/* Body buffers go back to the server when their request is answered and
 * come out again for the next body that fits: no allocation per request. */
static char *body_take(struct http_server *srv, size_t *cap)
{
    for (int i = 0; i < srv->nspare; i++)
        if (srv->spare_cap[i] >= *cap) {
            char *b = srv->spare[i];
            *cap = srv->spare_cap[i];
            srv->nspare--;
            srv->spare[i] = srv->spare[srv->nspare];
            srv->spare_cap[i] = srv->spare_cap[srv->nspare];
            return b;
        }
    return xmalloc(*cap);
}

static void body_give(struct http_server *srv, char *b, size_t cap)
{
    if (srv->nspare < HTTP_SPARE_BODIES && cap <= BODY_PREALLOC) {
        srv->spare[srv->nspare] = b;
        srv->spare_cap[srv->nspare++] = cap;
    } else {
        free(b);
    }
}

static void req_unref_(struct hreq *r)
{
    if (--r->refs == 0)
        req_free(r);
}

static struct hreq *req_of(const struct http_req *pub)
{
    return (struct hreq *)pub; /* pub is the first member */
}

void http_req_ref(struct http_req *req)
{
    req_of(req)->refs++;
}

void http_req_unref(struct http_req *req)
{
    if (req)
        req_unref_(req_of(req));
}

bool http_req_gone(const struct http_req *req)
{
    return req_of(req)->conn == NULL;
}

const char *http_req_header(const struct http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* hbuf grows only while hbytes stays under the header limit, which counts
 * every stored byte, so it is capped by it. */
static void head_add(struct hreq *r, const char *p, size_t n)
{
    if (r->hlen + n + 1 > r->hcap) {
        size_t nc = r->hcap ? r->hcap : 256;
        while (nc < r->hlen + n + 1)
            nc *= 2;
        r->hbuf = xrealloc(r->hbuf, nc);
        r->hcap = nc;
    }
    memcpy(r->hbuf + r->hlen, p, n);
    r->hlen += n;
}

static void head_mark(struct hreq *r)
{
    XGROW(r->offs, r->capoffs, r->noffs + 1);
    r->offs[r->noffs++] = r->hlen;
}

/* ---- limits and small helpers ---- */

static void limits_fill(struct http_limits *l, const struct http_limits *in)
{
    if (in)
        *l = *in;
    else
        memset(l, 0, sizeof *l);
    if (!l->max_header_bytes)
        l->max_header_bytes = DEF_MAX_HEADER_BYTES;
    if (l->max_header_bytes > PARSER_HEADER_CEILING)
        l->max_header_bytes = PARSER_HEADER_CEILING;
    if (!l->max_url)
        l->max_url = DEF_MAX_URL;
    if (l->max_url > UINT16_MAX) /* http_parser_parse_url's offsets */
        l->max_url = UINT16_MAX;
    if (!l->max_headers)
        l->max_headers = DEF_MAX_HEADERS;
    if (!l->max_body)
        l->max_body = DEF_MAX_BODY;
    if (l->max_body > SIZE_MAX / 2)
        l->max_body = SIZE_MAX / 2;
    if (!l->header_timeout_ms)
        l->header_timeout_ms = DEF_HEADER_TIMEOUT_MS;
    if (!l->body_timeout_ms)
        l->body_timeout_ms = DEF_BODY_TIMEOUT_MS;
    if (!l->idle_timeout_ms)
        l->idle_timeout_ms = DEF_IDLE_TIMEOUT_MS;
    if (!l->write_timeout_ms)
        l->write_timeout_ms = DEF_WRITE_TIMEOUT_MS;
    if (!l->max_connections)
        l->max_connections = DEF_MAX_CONNECTIONS;
}

static const char *date_now(struct http_server *srv)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if ((long long)now != srv->date_sec || !srv->date[0]) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(srv->date, sizeof srv->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        srv->date_sec = (long long)now;
    }
    return srv->date;
}

static bool hdr_text_ok(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}

/* token characters (RFC 9110 5.6.2), which http-parser does not enforce */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$%&'*+-.^_`|~", ch)))
            return false;
    }
    return true;
}

static bool hdr_reserved(const char *name)
{
    static const char *const reserved[] = {"content-length", "transfer-encoding", "connection",
                                           "date", "server"};
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return true;
    return false;
}

/* ---- writing ---- */

static void on_timer(uv_timer_t *t);

static void arm(struct http_conn *c, unsigned ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the linger timer or the peer's EOF ends the connection */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* conn_read: read or not; libuv (and epoll) is asked only on a change */
static int conn_read(struct http_conn *c, bool on)
{
    if (c->reading == on)
        return 0;
    int rc = on ? uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)
                : uv_read_stop((uv_stream_t *)&c->tcp);
    if (!rc)
        c->reading = on;
    return rc;
}

/* linger: the last response is out; send FIN and discard input briefly. */
static void conn_linger(struct http_conn *c)
{
    c->phase = PH_LINGER;
    c->lingered = 0;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
        conn_read(c, true) != 0) {
        conn_close(c);
        return;
    }
    arm(c, LINGER_MS);
}

static void on_write(uv_write_t *w, int status)
{
    struct wreq *wr = (struct wreq *)w;
    struct http_conn *c = wr->c;
    enum wkind kind = wr->kind;
    free(wr);
    if (c->phase == PH_CLOSED)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (kind != W_RESPONSE)
        return;
    c->served++;
    if (c->close_after || c->srv->closing)
        conn_linger(c);
    else
        conn_next(c);
}

static struct wreq *wreq_new(struct http_conn *c, enum wkind kind, size_t len)
{
    struct wreq *wr = xmalloc(sizeof *wr + len);
    wr->c = c;
    wr->kind = kind;
    wr->len = len;
    return wr;
}

static int conn_write(struct http_conn *c, struct wreq *wr)
{
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)wr->len);
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc) { /* the callback will not run */
        free(wr);
        conn_close(c);
        return rc;
    }
    c->srv->stats.bytes_out += wr->len;
    return 0;
}

/* conn_send: queue a complete response and move to PH_WRITE. */
static void conn_send(struct http_conn *c, int status, const char *ctype,
                      const struct http_hdr *hdrs, size_t nhdrs, const void *body, size_t len,
                      bool head, bool keep, int minor)
{
    struct http_server *srv = c->srv;
    bool bodiless = status == 204 || status == 304;
    const char *reason = http_status_str((enum http_status)status);
    if (strcmp(reason, "<unknown>") == 0)
        reason = "";
    struct sb h;
    sb_init(&h);
    sb_addf(&h, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: prenv\r\n", status, reason, date_now(srv));
    if (ctype)
        sb_addf(&h, "Content-Type: %s\r\n", ctype);
    if (!bodiless)
        sb_addf(&h, "Content-Length: %zu\r\n", len);
    if (!keep)
        sb_adds(&h, "Connection: close\r\n");
    else if (minor == 0)
        sb_adds(&h, "Connection: keep-alive\r\n");
    for (size_t i = 0; i < nhdrs; i++)
        sb_addf(&h, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
    sb_adds(&h, "\r\n");
    size_t blen = (head || bodiless) ? 0 : len;
    struct wreq *wr = wreq_new(c, W_RESPONSE, h.len + blen);
    memcpy(wr->data, h.buf, h.len);
    if (blen)
        memcpy(wr->data + h.len, body, blen);
    sb_release(&h);
    srv->stats.responses[status / 100 < 6 ? status / 100 : 0]++;
    c->close_after = !keep;
    c->phase = PH_WRITE;
    arm(c, srv->lim.write_timeout_ms);
    conn_write(c, wr);
}

static const struct {
    int status;
    const char *body;
} reject_resp[HTTP_REJ__COUNT] = {
    [HTTP_REJ_BAD_REQUEST] = {400, "bad request\n"},
    [HTTP_REJ_URL_TOO_LONG] = {414, "uri too long\n"},
    [HTTP_REJ_HEADERS_TOO_LARGE] = {431, "request header fields too large\n"},
    [HTTP_REJ_BODY_TOO_LARGE] = {413, "payload too large\n"},
    [HTTP_REJ_HEADER_TIMEOUT] = {408, "request timeout\n"},
    [HTTP_REJ_BODY_TIMEOUT] = {408, "request timeout\n"},
    [HTTP_REJ_WRITE_TIMEOUT] = {0, NULL},
    [HTTP_REJ_OVER_CAPACITY] = {503, "service unavailable\n"},
    [HTTP_REJ_ACCEPT_ERROR] = {0, NULL},
};

/* conn_reject: answer a request the server refuses, then close. */
static void conn_reject(struct http_conn *c, enum http_reject why, int status, const char *body)
{
    c->srv->stats.rejected[why]++;
    bool head = c->cur && c->cur->head;
    req_free(c->cur);
    c->cur = NULL;
    conn_read(c, false);
    if (!status) {
        status = reject_resp[why].status;
        body = reject_resp[why].body;
    }
    conn_send(c, status, "text/plain; charset=utf-8", NULL, 0, body, strlen(body), head, false, 1);
}

int http_respond(struct http_req *req, int status, const char *content_type, const void *body,
                 size_t len)
{
    return http_respond_hdrs(req, status, content_type, NULL, 0, body, len);
}

int http_respond_hdrs(struct http_req *req, int status, const char *content_type,
                      const struct http_hdr *hdrs, size_t nhdrs, const void *body, size_t len)
{
    struct hreq *r = req_of(req);
    if (r->responded)
        return PE_USAGE;
    r->responded = true;
    int rc = 0;
    bool ok = status >= 200 && status <= 999 && (!content_type || hdr_text_ok(content_type)) &&
              (len == 0 || body) && len <= RESP_MAX;
    for (size_t i = 0; ok && i < nhdrs; i++)
        ok = hdrs[i].name && hdrs[i].value && is_token(hdrs[i].name) &&
             !hdr_reserved(hdrs[i].name) && hdr_text_ok(hdrs[i].value);
    if (!ok) {
        static const char ise[] = "internal server error\n";
        rc = PE_USAGE;
        status = 500;
        content_type = "text/plain; charset=utf-8";
        hdrs = NULL;
        nhdrs = 0;
        body = ise;
        len = sizeof ise - 1;
    }
    struct http_conn *c = r->conn;
    if (!c) {
        req_unref_(r);
        return rc ? rc : PE_CANCELED;
    }
    c->active = NULL;
    r->conn = NULL;
    bool keep = r->keep_alive && !c->srv->closing && !c->close_after;
    struct http_server *srv = c->srv;
    conn_send(c, status, content_type, hdrs, nhdrs, body, len, r->head, keep, r->pub.version_minor);
    if (r->refs == 1 && r->body) { /* freed below: its body buffer serves the next request */
        body_give(srv, r->body, r->bcap);
        r->body = NULL;
    }
    req_unref_(r);
    return rc;
}

/* ---- parsing ---- */

static struct http_conn *pconn(http_parser *p)
{
    return p->data;
}

static int fail(struct http_conn *c, enum http_reject why)
{
    c->rej = why;
    c->rej_set = true;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = pconn(p);
    req_free(c->cur);
    c->cur = req_new(c);
    if (c->phase == PH_IDLE && c->served > 0)
        arm(c, c->srv->lim.header_timeout_ms); /* the first request's runs from accept */
    c->phase = PH_HEAD;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = pconn(p);
    struct hreq *r = c->cur;
    if (r->last == L_NONE) {
        head_mark(r);
        r->last = L_URL;
    }
    r->url_len += len;
    r->hbytes += len;
    if (r->url_len > c->srv->lim.max_url)
        return fail(c, HTTP_REJ_URL_TOO_LONG);
    if (r->hbytes > c->srv->lim.max_header_bytes)
        return fail(c, HTTP_REJ_HEADERS_TOO_LARGE);
    head_add(r, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = pconn(p);
    struct hreq *r = c->cur;
    if (r->last != L_FIELD) {
        if (r->last == L_NONE) { /* no URL callback: empty target */
            head_mark(r);
        }
        head_add(r, "", 1);
        if ((r->noffs - 1) / 2 >= c->srv->lim.max_headers)
            return fail(c, HTTP_REJ_HEADERS_TOO_LARGE);
        head_mark(r);
        r->hbytes += 4; /* ": " and CRLF */
        r->last = L_FIELD;
    }
    r->hbytes += len;
    if (r->hbytes > c->srv->lim.max_header_bytes)
        return fail(c, HTTP_REJ_HEADERS_TOO_LARGE);
    head_add(r, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = pconn(p);
    struct hreq *r = c->cur;
    if (r->last != L_VALUE) {
        head_add(r, "", 1);
        head_mark(r);
        r->last = L_VALUE;
    }
    r->hbytes += len;
    if (r->hbytes > c->srv->lim.max_header_bytes)
        return fail(c, HTTP_REJ_HEADERS_TOO_LARGE);
    head_add(r, at, len);
    return 0;
}

/* split_target: append path\0query\0 to hbuf; false if the target is bad. */
static bool split_target(struct hreq *r, const char *url, size_t ulen, bool connect,
                         size_t *path_off, size_t *query_off)
{
    const char *path = "/", *query = "";
    size_t plen = 1, qlen = 0;
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (ulen == 1 && url[0] == '*') {
        path = "*";
    } else if (ulen == 0 || http_parser_parse_url(url, ulen, connect, &u) != 0) {
        return false;
    } else {
        if (u.field_set & (1 << UF_PATH)) {
            path = url + u.field_data[UF_PATH].off;
            plen = u.field_data[UF_PATH].len;
        } else if (connect) {
            path = "";
            plen = 0;
        }
        if (u.field_set & (1 << UF_QUERY)) {
            query = url + u.field_data[UF_QUERY].off;
            qlen = u.field_data[UF_QUERY].len;
        }
    }
    /* copy out first: head_add may move hbuf, which url points into */
    char *tmp = xmalloc(plen + qlen + 2);
    memcpy(tmp, path, plen);
    tmp[plen] = 0;
    memcpy(tmp + plen + 1, query, qlen);
    tmp[plen + 1 + qlen] = 0;
    *path_off = r->hlen;
    *query_off = r->hlen + plen + 1;
    head_add(r, tmp, plen + qlen + 2);
    free(tmp);
    return true;
}

static bool expects_continue(const struct hreq *r)
{
    const char *v = http_req_header(&r->pub, "Expect");
    return v && strcasecmp(v, "100-continue") == 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = pconn(p);
    struct http_server *srv = c->srv;
    struct hreq *r = c->cur;
    if (r->last == L_NONE)
        head_mark(r);
    if (r->last == L_FIELD) { /* a name whose value never came */
        head_add(r, "", 1);
        head_mark(r);
    }
    head_add(r, "", 1);
    if (p->http_major != 1) {
        c->rej_status = 505;
        return fail(c, HTTP_REJ_BAD_REQUEST);
    }
    size_t path_off, query_off;
    if (!split_target(r, r->hbuf + r->offs[0], r->url_len, p->method == HTTP_CONNECT, &path_off,
                      &query_off))
        return fail(c, HTTP_REJ_BAD_REQUEST);
    /* hbuf is final: point into it */
    size_t nh = (r->noffs - 1) / 2;
    r->hdrs = xcalloc(nh ? nh : 1, sizeof *r->hdrs);
    for (size_t i = 0; i < nh; i++) {
        char *name = r->hbuf + r->offs[1 + 2 * i];
        char *value = r->hbuf + r->offs[2 + 2 * i];
        size_t vl = strlen(value);
        while (vl && (value[vl - 1] == ' ' || value[vl - 1] == '\t'))
            value[--vl] = 0;
        if (!is_token(name))
            return fail(c, HTTP_REJ_BAD_REQUEST);
        r->hdrs[i].name = name;
        r->hdrs[i].value = value;
    }
    r->pub.headers = r->hdrs;
    r->pub.nheaders = nh;
    r->pub.target = r->hbuf + r->offs[0];
    r->pub.path = r->hbuf + path_off;
    r->pub.query = r->hbuf + query_off;
    r->pub.method_id = p->method;
    r->pub.method = http_method_str((enum http_method)p->method);
    r->pub.version_minor = p->http_minor;
    r->head = p->method == HTTP_HEAD;
    r->keep_alive = http_should_keep_alive(p) && !p->upgrade && p->method != HTTP_CONNECT;

    bool chunked = p->flags & F_CHUNKED;
    bool has_len = p->content_length != ULLONG_MAX && p->content_length > 0;
    if (has_len && p->content_length > srv->lim.max_body)
        return fail(c, HTTP_REJ_BODY_TOO_LARGE);
    /* room for the declared length, but memory follows the bytes that
     * actually arrive: at most BODY_PREALLOC before any of them has */
    r->bmax = (has_len && !chunked ? (size_t)p->content_length : srv->lim.max_body) + 1;
    if (has_len && !chunked) {
        r->bcap = r->bmax < BODY_PREALLOC ? r->bmax : BODY_PREALLOC;
        r->body = body_take(srv, &r->bcap);
    }
    if ((has_len || chunked) && p->http_minor >= 1 && expects_continue(r)) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct wreq *wr = wreq_new(c, W_CONTINUE, sizeof cont - 1);
        memcpy(wr->data, cont, sizeof cont - 1);
        if (conn_write(c, wr) != 0)
            return -1; /* the connection is closing */
    }
    c->phase = PH_BODY;
    if (has_len || chunked)
        arm(c, srv->lim.body_timeout_ms);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = pconn(p);
    struct hreq *r = c->cur;
    size_t max = c->srv->lim.max_body;
    if (len > max - r->blen)
        return fail(c, HTTP_REJ_BODY_TOO_LARGE);
    if (r->blen + len + 1 > r->bcap) {
        size_t nc = r->bcap ? r->bcap : 4096;
        while (nc < r->blen + len + 1)
            nc *= 2;
        if (nc > r->bmax)
            nc = r->bmax;
        r->body = xrealloc(r->body, nc);
        r->bcap = nc;
    }
    memcpy(r->body + r->blen, at, len);
    r->blen += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = pconn(p);
    struct hreq *r = c->cur;
    if (r->body) {
        r->body[r->blen] = 0;
        r->pub.body = r->body;
    }
    r->pub.body_len = r->blen;
    c->ready = r;
    c->cur = NULL;
    c->phase = PH_HANDLER;
    uv_timer_stop(&c->timer);
    http_parser_pause(p, 1); /* one request at a time */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* conn_parse: feed bytes to the parser. Returns how many it took; it stops
 * early at the end of a request (c->ready is set) or at an error (the
 * connection is being answered and closed: returns SIZE_MAX). */
static size_t conn_parse(struct http_conn *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
    enum http_errno en = HTTP_PARSER_ERRNO(&c->parser);
    if (en == HPE_PAUSED) {
        http_parser_pause(&c->parser, 0);
        return n;
    }
    if (en == HPE_OK && n == len)
        return n;
    if (c->phase == PH_CLOSED || c->phase == PH_WRITE) /* a callback closed it */
        return SIZE_MAX;
    if (c->rej_set && c->rej_status == 505)
        conn_reject(c, c->rej, 505, "http version not supported\n");
    else if (c->rej_set)
        conn_reject(c, c->rej, 0, NULL);
    else if (en == HPE_HEADER_OVERFLOW)
        conn_reject(c, HTTP_REJ_HEADERS_TOO_LARGE, 0, NULL);
    else
        conn_reject(c, HTTP_REJ_BAD_REQUEST, 0, NULL);
    return SIZE_MAX;
}

static void conn_dispatch(struct http_conn *c)
{
    struct http_server *srv = c->srv;
    struct hreq *r = c->ready;
    c->ready = NULL;
    c->active = r;
    srv->stats.requests++;
    /* reading goes on until something comes (on_read then keeps it and
     * stops): most clients send nothing before the answer, and stopping
     * and starting would cost two epoll_ctl calls per request */
    srv->handler(&r->pub, srv->ctx);
}

/* conn_take: parse data that arrived; keep what follows a complete request. */
static void conn_take(struct http_conn *c, const char *data, size_t len)
{
    size_t n = conn_parse(c, data, len);
    if (n == SIZE_MAX)
        return;
    if (c->ready) {
        if (n < len) {
            c->pend = xmalloc(len - n);
            memcpy(c->pend, data + n, len - n);
            c->pend_len = len - n;
        }
        conn_dispatch(c);
    }
}

/* conn_next: the response is written and the connection stays: parse what
 * is pending, then read again. */
static void conn_next(struct http_conn *c)
{
    c->phase = PH_IDLE;
    arm(c, c->srv->lim.idle_timeout_ms);
    if (c->pend_len) {
        size_t n = conn_parse(c, c->pend, c->pend_len);
        if (n == SIZE_MAX)
            return;
        c->pend_len -= n;
        if (c->pend_len)
            memmove(c->pend, c->pend + n, c->pend_len);
        else {
            free(c->pend);
            c->pend = NULL;
        }
        if (c->ready) {
            conn_dispatch(c);
            return;
        }
    }
    if (c->read_end || conn_read(c, true) != 0) /* the client's end: closed after the answer */
        conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->srv->rbuf, RBUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = s->data;
    if (nread == 0 || c->phase == PH_CLOSED)
        return;
    if (nread < 0) {
        if (c->phase == PH_HANDLER || c->phase == PH_WRITE) {
            /* the answer goes out first, as when reading had stopped */
            c->read_end = true;
            conn_read(c, false);
            return;
        }
        conn_close(c);
        return;
    }
    c->srv->stats.bytes_in += (uint64_t)nread;
    switch (c->phase) {
    case PH_IDLE:
    case PH_HEAD:
    case PH_BODY:
        conn_take(c, buf->base, (size_t)nread);
        break;
    case PH_LINGER:
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_MAX_BYTES)
            conn_close(c);
        break;
    default: /* with the handler or writing: kept for after the answer (at most one read) */
        c->pend = xrealloc(c->pend, c->pend_len + (size_t)nread);
        memcpy(c->pend + c->pend_len, buf->base, (size_t)nread);
        c->pend_len += (size_t)nread;
        conn_read(c, false);
        break;
    }
}

static void on_timer(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    switch (c->phase) {
    case PH_IDLE:
        c->srv->stats.idle_closed++;
        conn_close(c);
        break;
    case PH_HEAD:
        conn_reject(c, HTTP_REJ_HEADER_TIMEOUT, 0, NULL);
        break;
    case PH_BODY:
        conn_reject(c, HTTP_REJ_BODY_TIMEOUT, 0, NULL);
        break;
    case PH_WRITE:
        c->srv->stats.rejected[HTTP_REJ_WRITE_TIMEOUT]++;
        conn_close(c);
        break;
    case PH_LINGER:
        conn_close(c);
        break;
    default:
        break;
    }
}

/* ---- connections ---- */

static void conn_freed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->handles > 0)
        return;
    struct http_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    srv->stats.conns_open--;
    free(c->pend);
    free(c);
    if (srv->accept_pending && srv->listening &&
        srv->nconns < (uint64_t)srv->lim.max_connections + REJECT_SLOTS) {
        srv->accept_pending = false;
        accept_one(srv);
    }
    srv_maybe_done(srv);
}

static void conn_close(struct http_conn *c)
{
    if (c->phase == PH_CLOSED)
        return;
    c->phase = PH_CLOSED;
    if (c->active) {
        c->active->conn = NULL; /* the handler still owes it a response */
        c->active = NULL;
        c->srv->stats.client_gone++;
    }
    if (c->ready) {
        req_free(c->ready);
        c->ready = NULL;
    }
    req_free(c->cur);
    c->cur = NULL;
    uv_close((uv_handle_t *)&c->tcp, conn_freed);
    uv_close((uv_handle_t *)&c->timer, conn_freed);
}

static void peer_name(struct http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, host, sizeof host);
            port = ntohs(a->sin6_port);
            snprintf(c->remote, sizeof c->remote, "[%s]:%d", host, port);
            return;
        }
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, host, sizeof host);
        port = ntohs(a->sin_port);
    }
    snprintf(c->remote, sizeof c->remote, "%s:%d", host, port);
}

static void accept_one(struct http_server *srv)
{
    struct http_conn *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    c->tcp.data = c->timer.data = c->shut.data = c;
    uv_tcp_init(srv->loop, &c->tcp); /* AF_UNSPEC: no socket yet, cannot fail */
    uv_timer_init(srv->loop, &c->timer);
    c->handles = 2;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    srv->stats.conns_open++;
    if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->tcp) != 0) {
        srv->stats.rejected[HTTP_REJ_ACCEPT_ERROR]++;
        conn_close(c);
        return;
    }
    srv->stats.conns_accepted++;
    peer_name(c);
    uv_tcp_nodelay(&c->tcp, 1);
    if (srv->nconns > srv->lim.max_connections) {
        conn_reject(c, HTTP_REJ_OVER_CAPACITY, 0, NULL);
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->phase = PH_IDLE;
    arm(c, srv->lim.header_timeout_ms);
    if (conn_read(c, true) != 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *l, int status);

static void on_listener_closed(uv_handle_t *h)
{
    struct http_server *srv = h->data;
    srv->listener_closing = false;
    srv->handles--;
    srv_maybe_done(srv);
}

/* listener_open: watch the listening socket through a libuv handle on a dup
 * of srv->lfd, so that closing the handle (to pause) keeps the socket and
 * its backlog. The dup comes first: under EMFILE it takes the slot the
 * closed handle freed, and it is the only step that can fail. */
static int listener_open(struct http_server *srv)
{
    int fd = fcntl(srv->lfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* none of these can fail on a fresh, listening socket: uv_tcp_init
     * makes no socket, uv_tcp_open only records it and makes it
     * non-blocking, uv_listen calls listen() again */
    if (uv_tcp_init(srv->loop, &srv->listener) != 0 || uv_tcp_open(&srv->listener, fd) != 0 ||
        uv_listen((uv_stream_t *)&srv->listener, BACKLOG, on_connection) != 0)
        abort();
    srv->listener.data = srv;
    srv->handles++;
    srv->listening = true;
    return 0;
}

static void listener_close(struct http_server *srv)
{
    if (!srv->listening)
        return;
    srv->listening = false;
    srv->accept_pending = false; /* libuv closes a connection it was holding for us */
    srv->listener_closing = true;
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}

static void on_accept_timer(uv_timer_t *t)
{
    struct http_server *srv = t->data;
    if (srv->lfd < 0)
        return;
    if (srv->listener_closing || (!srv->listening && listener_open(srv) != 0)) {
        uv_timer_start(&srv->accept_timer, on_accept_timer, ACCEPT_PAUSE_MS, 0);
        return;
    }
}

/* on_connection. Two ways to pause accepting, both leaving connections in
 * the kernel's backlog:
 * - at capacity, a connection is left with libuv, which then stops watching
 *   the socket until uv_accept takes it (when a connection closes);
 * - on an accept error (EMFILE/ENFILE that libuv's reserve-descriptor trick
 *   could not absorb) libuv would retry at once, forever: closing the handle
 *   is the only way out of its accept loop, so the handle is closed and
 *   opened again after ACCEPT_PAUSE_MS. */
static void on_connection(uv_stream_t *l, int status)
{
    struct http_server *srv = l->data;
    if (status < 0) {
        srv->stats.rejected[HTTP_REJ_ACCEPT_ERROR]++;
        listener_close(srv);
        uv_timer_start(&srv->accept_timer, on_accept_timer, ACCEPT_PAUSE_MS, 0);
        return;
    }
    if (srv->nconns >= (uint64_t)srv->lim.max_connections + REJECT_SLOTS) {
        srv->accept_pending = true;
        return;
    }
    accept_one(srv);
}

/* ---- the server ---- */

int http_listen_parse(struct sockaddr_storage *out, const char *listen, struct err *e)
{
    memset(out, 0, sizeof *out);
    if (!listen || !*listen)
        return err_set(e, PE_CONFIG, NULL, "empty listen address");
    const char *colon = strrchr(listen, ':');
    const char *port_s = colon ? colon + 1 : listen;
    char host[INET6_ADDRSTRLEN + 2] = "";
    if (colon) {
        size_t hl = (size_t)(colon - listen);
        if (hl >= sizeof host)
            return err_set(e, PE_CONFIG, NULL, "bad listen address '%s'", listen);
        memcpy(host, listen, hl);
        host[hl] = 0;
    }
    char *end;
    errno = 0;
    long port = strtol(port_s, &end, 10);
    if (!*port_s || *end || errno || port < 0 || port > 65535 || *port_s == '+' || *port_s == '-' ||
        *port_s == ' ')
        return err_set(e, PE_CONFIG, NULL,
                       "bad port in listen address '%s' (want 0-65535, as in "
                       "'127.0.0.1:8080')",
                       listen);
    size_t hl = strlen(host);
    if (hl == 0) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_any;
        a->sin6_port = htons((uint16_t)port);
        return 0;
    }
    if (host[0] == '[') {
        if (hl < 3 || host[hl - 1] != ']')
            return err_set(e, PE_CONFIG, NULL, "bad listen address '%s'", listen);
        host[hl - 1] = 0;
        if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)out) != 0)
            return err_set(e, PE_CONFIG, NULL, "bad IPv6 address in listen address '%s'", listen);
        return 0;
    }
    if (strcmp(host, "localhost") == 0)
        memcpy(host, "127.0.0.1", sizeof "127.0.0.1");
    struct in_addr probe;
    if (inet_pton(AF_INET, host, &probe) != 1)
        return err_set(e, PE_CONFIG, NULL,
                       "bad listen address '%s' (want an IP address and a port, as in "
                       "'127.0.0.1:8080' or '[::1]:8080')",
                       listen);
    uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
    return 0;
}

static bool is_any6(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 && memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr,
                                               &in6addr_any, sizeof in6addr_any) == 0;
}

int http_listen_fd(struct sockaddr_storage *ss)
{
    bool any6 = is_any6(ss);
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (any6) /* both families on one socket */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    socklen_t sl =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)ss, sl) != 0 || listen(fd, BACKLOG) != 0)
        goto fail;
    sl = sizeof *ss;
    getsockname(fd, (struct sockaddr *)ss, &sl);
    return fd;
fail:;
    int rc = -errno;
    if (fd >= 0)
        close(fd);
    if (any6 && (rc == -EAFNOSUPPORT || rc == -EPROTONOSUPPORT || rc == -EADDRNOTAVAIL)) {
        /* no IPv6 here: every IPv4 interface instead */
        uint16_t port = ((struct sockaddr_in6 *)ss)->sin6_port;
        memset(ss, 0, sizeof *ss);
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_ANY);
        a->sin_port = port;
        return http_listen_fd(ss);
    }
    return rc;
}

static void on_sigpipe(int sig)
{
    (void)sig; /* only so that write(2) fails with EPIPE instead */
}

/* libuv writes to sockets with write(2), which raises SIGPIPE on a reset
 * connection and kills a process that left it at the default. A process
 * that chose a disposition keeps it; otherwise a do-nothing handler, not
 * SIG_IGN, so that programs it executes start with the default again. */
void http_sigpipe_guard(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL ||
        (sa.sa_flags & SA_SIGINFO))
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
}

int http_server_start(struct http_server *srv, uv_loop_t *loop, const char *listen,
                      const struct http_limits *lim, http_handler_fn handler, void *ctx,
                      struct err *e)
{
    memset(srv, 0, sizeof *srv);
    srv->lfd = -1;
    struct sockaddr_storage ss;
    int rc = http_listen_parse(&ss, listen, e);
    if (rc)
        return rc;
    if (!handler)
        return err_set(e, PE_USAGE, NULL, "http server without a handler");
    int fd = http_listen_fd(&ss);
    if (fd < 0)
        return err_errno(e, -fd, "cannot listen on %s", listen);
    srv->loop = loop;
    srv->addr = ss;
    srv->lfd = fd;
    http_sigpipe_guard();
    limits_fill(&srv->lim, lim);
    srv->handler = handler;
    srv->ctx = ctx;
    rc = listener_open(srv);
    if (rc) {
        close(fd);
        srv->lfd = -1;
        return err_errno(e, -rc, "cannot listen on %s", listen);
    }
    uv_timer_init(loop, &srv->accept_timer);
    uv_timer_init(loop, &srv->deadline_timer);
    srv->accept_timer.data = srv->deadline_timer.data = srv;
    srv->handles += 2;
    srv->rbuf = xmalloc(RBUF_SIZE);
    return 0;
}

int http_server_port(const struct http_server *srv)
{
    if (srv->addr.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&srv->addr)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&srv->addr)->sin_port);
}

const struct http_stats *http_server_stats(const struct http_server *srv)
{
    return &srv->stats;
}

static void srv_handle_closed(uv_handle_t *h)
{
    struct http_server *srv = h->data;
    srv->handles--;
    srv_maybe_done(srv);
}

void http_server_stop_accepting(struct http_server *srv)
{
    if (srv->lfd < 0)
        return;
    listener_close(srv);
    close(srv->lfd);
    srv->lfd = -1;
    uv_timer_stop(&srv->accept_timer);
}

static void srv_maybe_done(struct http_server *srv)
{
    if (!srv->closing || srv->nconns > 0)
        return;
    if (!uv_is_closing((uv_handle_t *)&srv->accept_timer)) {
        uv_close((uv_handle_t *)&srv->accept_timer, srv_handle_closed);
        uv_close((uv_handle_t *)&srv->deadline_timer, srv_handle_closed);
    }
    if (srv->handles == 0 && !srv->close_cb_called) {
        srv->close_cb_called = true;
        free(srv->rbuf);
        srv->rbuf = NULL;
        while (srv->nspare > 0)
            free(srv->spare[--srv->nspare]);
        if (srv->close_cb)
            srv->close_cb(srv);
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct http_server *srv = t->data;
    for (struct http_conn *c = srv->conns; c; c = c->next)
        conn_close(c);
}

void http_server_close(struct http_server *srv, unsigned deadline_ms, http_server_close_cb close_cb)
{
    if (srv->closing)
        return;
    srv->closing = true;
    srv->close_cb = close_cb;
    http_server_stop_accepting(srv);
    for (struct http_conn *c = srv->conns; c; c = c->next) {
        switch (c->phase) {
        case PH_IDLE:
            conn_close(c);
            break;
        case PH_WRITE:
            c->close_after = true;
            break;
        default: /* receiving, handling or lingering: let it finish */
            break;
        }
    }
    if (srv->nconns > 0)
        uv_timer_start(&srv->deadline_timer, on_deadline, deadline_ms, 0);
    srv_maybe_done(srv);
}

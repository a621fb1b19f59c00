/* client: HTTP(S) requests on a libuv loop through libcurl's multi socket
 * interface. curl tells us which sockets to watch (on_socket) and when to
 * wake it (on_timer_set); the loop tells curl what happened
 * (curl_multi_socket_action); completed transfers are collected after every
 * action (dispatch). Callbacks may re-enter the client: a close asked for
 * from inside one is carried out when the outermost dispatch returns. */
#include "core/net/client.h"

#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef PRENV_VERSION
#define PRENV_VERSION "0"
#endif

struct net_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct net_client *c;
    struct net_sock *prev, *next;
    bool closing;
};

struct net_call {
    struct net_client *c;
    struct net_call *prev, *next;
    CURL *easy;
    struct curl_slist *hdrs;
    uint64_t id;
    net_done_fn cb;
    void *ctx;
    char *method;
    char *where; /* "POST https://host/path" without user info or query */
    long long timeout_ms;
    size_t max_response;
    struct sb body;
    struct net_header *rh;
    size_t nrh, caprh, rh_bytes;
    bool body_over, hdr_over;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *net_resp_header(const struct net_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (!strcasecmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

size_t net_inflight(const struct net_client *c)
{
    size_t n = 0;
    for (const struct net_call *k = c->calls; k; k = k->next)
        n++;
    return n;
}

/* ---- handles ---------------------------------------------------------- */

static void maybe_closed(struct net_client *c)
{
    if (c->closing && !c->multi && c->handles == 0 && !c->close_cb_called) {
        c->close_cb_called = true;
        if (c->close_cb)
            c->close_cb(c);
    }
}

static void on_sock_closed(uv_handle_t *h)
{
    struct net_sock *ns = h->data;
    struct net_client *c = ns->c;
    if (ns->prev)
        ns->prev->next = ns->next;
    else
        c->socks = ns->next;
    if (ns->next)
        ns->next->prev = ns->prev;
    free(ns);
    c->handles--;
    maybe_closed(c);
}

static void sock_close(struct net_sock *ns)
{
    if (ns->closing)
        return;
    ns->closing = true;
    uv_poll_stop(&ns->poll);
    uv_close((uv_handle_t *)&ns->poll, on_sock_closed);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct net_client *c = h->data;
    c->handles--;
    maybe_closed(c);
}

/* ---- completion ------------------------------------------------------- */

static void do_close(struct net_client *c);

static void enter(struct net_client *c)
{
    c->dispatching++;
}

static void leave(struct net_client *c)
{
    if (--c->dispatching == 0 && c->close_pending) {
        c->close_pending = false;
        do_close(c);
    }
}

static void call_free(struct net_call *k)
{
    if (k->easy)
        curl_easy_cleanup(k->easy);
    curl_slist_free_all(k->hdrs);
    for (size_t i = 0; i < k->nrh; i++) {
        free(k->rh[i].name);
        free(k->rh[i].value);
    }
    free(k->rh);
    sb_release(&k->body);
    free(k->method);
    free(k->where);
    free(k);
}

/* finish: take k out of the client and run its callback with the outcome
 * of the transfer (res), or PE_CANCELED when canceled. */
static void finish(struct net_call *k, CURLcode res, bool canceled)
{
    struct net_client *c = k->c;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->calls = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
    if (c->multi)
        curl_multi_remove_handle(c->multi, k->easy);

    struct err e = {0};
    struct net_resp resp = {0};
    if (canceled) {
        err_set(&e, PE_CANCELED, NULL, "%s: canceled", k->where);
    } else if (res == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
        resp.status = (int)status;
        resp.headers = k->rh;
        resp.nheaders = k->nrh;
    } else if ((res == CURLE_WRITE_ERROR && k->body_over) || res == CURLE_FILESIZE_EXCEEDED) {
        err_set(&e, PE_LIMIT, NULL, "%s: response body is larger than %zu bytes", k->where,
                k->max_response);
    } else if (res == CURLE_WRITE_ERROR && k->hdr_over) {
        err_set(&e, PE_LIMIT, NULL, "%s: response headers are larger than %zu bytes or %d lines",
                k->where, NET_MAX_HEADER_BYTES, NET_MAX_HEADERS);
    } else if (res == CURLE_OPERATION_TIMEDOUT) {
        err_set(&e, PE_TIMEOUT, NULL, "%s: timed out after %lld ms", k->where, k->timeout_ms);
    } else {
        int code = res == CURLE_URL_MALFORMAT || res == CURLE_UNSUPPORTED_PROTOCOL ? PE_USAGE
                                                                                   : PE_TRANSIENT;
        /* curl's detail names hosts, ports and TLS reasons, never bodies or headers */
        if (k->errbuf[0])
            err_set(&e, code, NULL, "%s: %s", k->where, k->errbuf);
        else
            err_set(&e, code, NULL, "%s: %s", k->where, curl_easy_strerror(res));
    }
    if (e.code) /* no partial bodies */
        sb_release(&k->body);
    /* the body is always a malloc'd string, even when empty, so the callback
     * may take it */
    size_t body_len = k->body.len;
    char *body = k->body.cap ? k->body.buf : xstrdup("");
    sb_init_max(&k->body, k->body.max);
    resp.body = body;
    resp.body_len = body_len;
    enter(c);
    k->cb(&resp, &e, k->ctx);
    if (resp.body == body) /* the callback left it */
        free(body);
    err_release(&e);
    call_free(k);
    leave(c);
}

static void dispatch(struct net_client *c)
{
    if (!c->multi)
        return;
    enter(c);
    CURLMsg *m;
    int left;
    while (!c->closing && c->multi && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct net_call *k = NULL;
        CURL *easy = m->easy_handle;
        CURLcode res = m->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&k);
        if (k)
            finish(k, res, false);
    }
    leave(c);
}

/* ---- curl's callbacks --------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct net_sock *ns = h->data;
    struct net_client *c = ns->c;
    if (!c->multi)
        return;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    int running;
    curl_multi_socket_action(c->multi, ns->fd, flags, &running);
    dispatch(c);
}

static void on_timeout(uv_timer_t *t)
{
    struct net_client *c = t->data;
    if (!c->multi)
        return;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    dispatch(c);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    struct net_client *c = userp;
    struct net_sock *ns = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (ns) {
            curl_multi_assign(c->multi, s, NULL);
            sock_close(ns);
        }
        return 0;
    }
    if (!ns) {
        ns = xcalloc(1, sizeof *ns);
        ns->fd = s;
        ns->c = c;
        if (uv_poll_init_socket(c->loop, &ns->poll, s) != 0) {
            free(ns);
            return -1;
        }
        ns->poll.data = ns;
        c->handles++;
        ns->next = c->socks;
        if (c->socks)
            c->socks->prev = ns;
        c->socks = ns;
        curl_multi_assign(c->multi, s, ns);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&ns->poll, ev, on_poll);
    return 0;
}

static int on_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct net_client *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else /* 0 means at once: the next loop iteration, never from inside curl */
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct net_call *k = ud;
    size_t len = size * n;
    sb_add(&k->body, p, len);
    if (!sb_ok(&k->body)) {
        k->body_over = true;
        return 0;
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct net_call *k = ud;
    size_t len = size * n;
    if (len >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new response: drop interim ones */
        for (size_t i = 0; i < k->nrh; i++) {
            free(k->rh[i].name);
            free(k->rh[i].value);
        }
        k->nrh = 0;
        k->rh_bytes = 0;
        return len;
    }
    k->rh_bytes += len;
    if (k->rh_bytes > NET_MAX_HEADER_BYTES || k->nrh >= NET_MAX_HEADERS) {
        k->hdr_over = true;
        return 0;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon || colon == p || p[0] == ' ' || p[0] == '\t')
        return len; /* the blank end line, or an obsolete folded line */
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    XGROW(k->rh, k->caprh, k->nrh + 1);
    k->rh[k->nrh].name = xstrndup(p, (size_t)(colon - p));
    k->rh[k->nrh].value = xstrndup(v, (size_t)(end - v));
    k->nrh++;
    return len;
}

/* ---- public ------------------------------------------------------------- */

int net_client_start(struct net_client *c, uv_loop_t *loop, struct err *e)
{
    memset(c, 0, sizeof *c);
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return err_set(e, PE_INTERNAL, NULL, "curl_global_init: %s", curl_easy_strerror(global_rc));
    c->loop = loop;
    c->next_id = 1;
    CURLM *m = curl_multi_init();
    if (!m)
        return err_set(e, PE_INTERNAL, NULL, "curl_multi_init failed");
    int rc = uv_timer_init(loop, &c->timer);
    if (rc) {
        curl_multi_cleanup(m);
        return err_set(e, PE_INTERNAL, NULL, "uv_timer_init: %s", uv_strerror(rc));
    }
    c->timer.data = c;
    c->handles = 1;
    c->multi = m;
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer_set);
    curl_multi_setopt(m, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
    const char *ca = getenv("PRENV_CA_FILE");
    if (!ca || !*ca)
        ca = getenv("SSL_CERT_FILE");
    if (ca && *ca)
        c->ca_file = xstrdup(ca);
    c->started = true;
    return 0;
}

/* check_ca: an https:// request needs CA certificates to verify the peer:
 * the file named by PRENV_CA_FILE or SSL_CERT_FILE, else libcurl's built-in
 * bundle path. Where none is readable (an empty container, a scratch image)
 * say so, and how to fix it, before curl reports a bare "error setting
 * certificate file". */
static int check_ca(const struct net_client *c, const char *where, struct err *e)
{
    if (c->ca_file) {
        if (access(c->ca_file, R_OK) == 0)
            return 0;
        const char *var = getenv("PRENV_CA_FILE") && *getenv("PRENV_CA_FILE") ? "PRENV_CA_FILE"
                                                                              : "SSL_CERT_FILE";
        err_set(e, PE_CONFIG, NULL, "%s: cannot read the CA certificates in %s=%s: %s", where,
                var, c->ca_file, strerror(errno));
        err_hint(e, "point %s at a readable PEM bundle of CA certificates", var);
        return PE_CONFIG;
    }
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if ((v->cainfo && access(v->cainfo, R_OK) == 0) || (v->capath && access(v->capath, R_OK) == 0))
        return 0;
    err_set(e, PE_CONFIG, NULL, "%s: no CA certificates to verify the server with (looked for %s)",
            where, v->cainfo ? v->cainfo : v->capath ? v->capath : "none built in");
    err_hint(e, "set PRENV_CA_FILE (or SSL_CERT_FILE) to a PEM bundle of CA certificates, "
                "e.g. a copy of /etc/ssl/certs/ca-certificates.crt");
    return PE_CONFIG;
}

/* where: "METHOD scheme://host[:port]/path", without user info, query or
 * fragment, for error messages */
static char *describe(const char *method, const char *url)
{
    const char *s = strstr(url, "://");
    const char *auth = s ? s + 3 : url;
    const char *path = auth + strcspn(auth, "/?#");
    const char *host = auth;
    for (const char *p = auth; p < path; p++)
        if (*p == '@')
            host = p + 1;
    size_t plen = strcspn(path, "?#");
    return xasprintf("%s %.*s%.*s%.*s", method, (int)(s ? s + 3 - url : 0), url, (int)(path - host),
                     host, (int)plen, path);
}

static bool valid_method(const char *m)
{
    if (!*m || strlen(m) > 16)
        return false;
    for (const char *p = m; *p; p++)
        if (*p < 'A' || *p > 'Z')
            return false;
    return true;
}

int net_request(struct net_client *c, const struct net_req *req, net_done_fn cb, void *ctx,
                uint64_t *id, struct err *e)
{
    if (!c->started || c->closing)
        return err_set(e, PE_CANCELED, NULL, "http client is closing");
    const char *method = req->method ? req->method : "GET";
    if (!valid_method(method))
        return err_set(e, PE_USAGE, NULL, "invalid HTTP method");
    if (!req->url || (strncasecmp(req->url, "http://", 7) && strncasecmp(req->url, "https://", 8)))
        return err_set(e, PE_USAGE, NULL, "URL must start with http:// or https://");
    if (strpbrk(req->url, " \r\n\t"))
        return err_set(e, PE_USAGE, NULL, "URL holds blanks or line breaks");
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        const char *h = req->headers[i];
        const char *colon = strchr(h, ':');
        if (!colon || colon == h || strpbrk(h, "\r\n"))
            return err_set(e, PE_USAGE, NULL, "malformed request header %zu", i);
    }
    if (!strncasecmp(req->url, "https://", 8)) {
        char *where = describe(method, req->url);
        int rc = check_ca(c, where, e);
        free(where);
        if (rc)
            return rc;
    }
    struct net_call *k = xcalloc(1, sizeof *k);
    k->c = c;
    k->cb = cb;
    k->ctx = ctx;
    k->method = xstrdup(method);
    k->where = describe(method, req->url);
    k->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : NET_TIMEOUT_DEFAULT_MS;
    k->max_response = req->max_response ? req->max_response : NET_MAX_RESPONSE_DEFAULT;
    sb_init_max(&k->body, k->max_response);
    k->easy = curl_easy_init();
    if (!k->easy) {
        call_free(k);
        return err_set(e, PE_INTERNAL, NULL, "curl_easy_init failed");
    }
    CURL *h = k->easy;
    bool has_expect = false, has_ua = false;
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        k->hdrs = curl_slist_append(k->hdrs, req->headers[i]);
        if (!k->hdrs)
            abort();
        if (!strncasecmp(req->headers[i], "Expect:", 7))
            has_expect = true;
        if (!strncasecmp(req->headers[i], "User-Agent:", 11))
            has_ua = true;
    }
    if (!has_expect) /* no 100-continue round trip before a body */
        k->hdrs = curl_slist_append(k->hdrs, "Expect:");
    if (!k->hdrs)
        abort();
    int bad = 0;
    bad |= curl_easy_setopt(h, CURLOPT_URL, req->url);
    bad |= curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)k);
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, k->hdrs);
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, k);
    bad |= curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    bad |= curl_easy_setopt(h, CURLOPT_HEADERDATA, k);
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, k->errbuf);
    bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)k->timeout_ms);
    bad |= curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)k->max_response);
    bad |= curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    bad |= curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!has_ua)
        bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "prenv/" PRENV_VERSION);
    if (c->ca_file)
        bad |= curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    bool is_post = !strcmp(method, "POST");
    bool with_body = is_post || req->body_len > 0;
    if (!strcmp(method, "HEAD"))
        bad |= curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (!strcmp(method, "GET") && !with_body)
        bad |= curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    else if (!is_post)
        bad |= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (with_body) {
        bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        bad |= curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
    }
    if (bad) {
        call_free(k);
        return err_set(e, PE_INTERNAL, NULL, "curl_easy_setopt failed");
    }
    k->id = c->next_id++;
    k->next = c->calls;
    if (c->calls)
        c->calls->prev = k;
    c->calls = k;
    CURLMcode mc = curl_multi_add_handle(c->multi, h);
    if (mc != CURLM_OK) {
        c->calls = k->next;
        if (k->next)
            k->next->prev = NULL;
        call_free(k);
        return err_set(e, PE_INTERNAL, NULL, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    }
    if (id)
        *id = k->id;
    return 0;
}

bool net_cancel(struct net_client *c, uint64_t id)
{
    for (struct net_call *k = c->calls; k; k = k->next) {
        if (k->id == id) {
            enter(c);
            finish(k, CURLE_OK, true);
            leave(c);
            return true;
        }
    }
    return false;
}

static void do_close(struct net_client *c)
{
    enter(c);
    while (c->calls)
        finish(c->calls, CURLE_OK, true);
    c->dispatching--; /* not leave(): we are the close */
    free(c->ca_file);
    c->ca_file = NULL;
    if (c->multi) {
        curl_multi_cleanup(c->multi); /* tells on_socket to drop what it still watches */
        c->multi = NULL;
    }
    for (struct net_sock *ns = c->socks; ns; ns = ns->next)
        sock_close(ns);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

void net_client_close(struct net_client *c, net_close_fn close_cb)
{
    if (!c->started || c->closing)
        return;
    c->closing = true;
    c->close_cb = close_cb;
    if (c->dispatching)
        c->close_pending = true;
    else
        do_close(c);
}

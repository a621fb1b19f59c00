/* report: GitHub deployments, commit statuses and the sticky comment for
 * preview environments, on a libuv loop.
 *
 * Three layers. Calls: one API request with its retries, queued in one list
 * for the whole reporter and sent by pump() when the in-flight cap, the rate
 * limit block, the spacing of mutating requests and the call's own back-off
 * allow; an App's installation token is fetched (once, shared) before a call
 * that needs it goes out. Ops: one report_* operation, a small state machine
 * issuing one call at a time; ops of one env wait in that env's FIFO. Envs:
 * what is remembered per (repo, env): the current deployment, the sticky
 * comment's id and what the comment shows.
 *
 * API entry points only queue and arm a zero timer, so callbacks never run
 * inside the call that asked for them. */
#include "hooks/report.h"

#include "core/lib/crypto.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/net/client.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef PRENV_VERSION
#define PRENV_VERSION "0"
#endif

#define KEY_MAX ((size_t)64 << 10)
#define PAGE_MAX 50    /* pages followed in one listing */
#define IDS_MAX 5000   /* deployments set inactive in one teardown */
#define GH_MSG_MAX 300 /* characters of GitHub's error message kept */
#define RL_WAIT_MAX_MS (3600LL * 1000)

/* ---- text ---------------------------------------------------------------- */

/* utf8_next: the code point at s (n > 0 bytes left) in *cp; returns its
 * length, or minus the number of bytes to replace with one U+FFFD (the
 * "maximal subpart" of an invalid sequence, as WHATWG and Unicode advise). */
static long utf8_next(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1, *cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2, *cp = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlong forms */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3, *cp = c & 0x07;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
    } else {
        return -1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi)
            return -(long)i;
        lo = 0x80, hi = 0xBF;
        *cp = (*cp << 6) | (s[i] & 0x3F);
    }
    return (long)need + 1;
}

#define REPLACEMENT "\xEF\xBF\xBD"

/* clean: s as valid UTF-8 into out; with oneline, control characters become
 * spaces; at most max characters, the last being "…" when cut. */
static void clean(struct sb *out, const char *s, size_t max, bool oneline)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), total = 0;
    unsigned cp;
    for (size_t i = 0; i < n; total++) {
        long l = utf8_next(p + i, n - i, &cp);
        i += (size_t)(l > 0 ? l : -l);
    }
    size_t keep = total <= max ? total : (max ? max - 1 : 0);
    size_t i = 0;
    for (size_t chars = 0; i < n && chars < keep; chars++) {
        long l = utf8_next(p + i, n - i, &cp);
        if (l < 0) {
            sb_adds(out, REPLACEMENT);
            i += (size_t)-l;
        } else if (oneline &&
                   (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x2028 || cp == 0x2029)) {
            sb_addc(out, ' ');
            i += (size_t)l;
        } else {
            sb_add(out, p + i, (size_t)l);
            i += (size_t)l;
        }
    }
    if (total > max && max)
        sb_adds(out, "\xE2\x80\xA6"); /* … */
}

char *report_clip(const char *s, size_t max)
{
    struct sb b;
    sb_init(&b);
    clean(&b, s ? s : "", max, true);
    return sb_steal(&b);
}

/* json_str: s as a JSON string literal, invalid UTF-8 replaced */
static void json_str(struct sb *out, const char *s)
{
    struct sb t;
    sb_init(&t);
    clean(&t, s ? s : "", SIZE_MAX, false);
    sb_add_json_str(out, t.buf);
    sb_release(&t);
}

/* md_text: s as one line of Markdown text that renders as itself: no
 * markup, no HTML, no mentions; at most max characters */
static void md_text(struct sb *out, const char *s, size_t max)
{
    struct sb t;
    sb_init(&t);
    clean(&t, s, max, true);
    for (const char *p = t.buf; *p; p++) {
        if (*p == '<')
            sb_adds(out, "&lt;");
        else if (*p == '>')
            sb_adds(out, "&gt;");
        else if (*p == '&')
            sb_adds(out, "&amp;");
        else if (*p == '@')
            sb_adds(out, "&#64;");
        else if (strchr("\\`*_{}[]()#+-.!|~\"':", *p)) {
            sb_addc(out, '\\');
            sb_addc(out, *p);
        } else
            sb_addc(out, *p);
    }
    sb_release(&t);
}

/* link_ok: an http(s) URL that can stand in a Markdown link and a table */
static bool link_ok(const char *u)
{
    if (!u || (strncmp(u, "https://", 8) && strncmp(u, "http://", 7)) || strlen(u) > 2048)
        return false;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= 0x20 || *p >= 0x7F || strchr("<>()[]|\"'`\\{}^", *p))
            return false;
    return true;
}

static void md_link(struct sb *out, const char *u)
{
    if (link_ok(u)) {
        sb_addc(out, '[');
        md_text(out, u, 200);
        sb_addf(out, "](%s)", u);
    } else {
        md_text(out, u, 200);
    }
}

static void b64url(struct sb *out, const unsigned char *d, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
        char q[4] = {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
        sb_add(out, q, 4);
    }
    if (n - i == 1) {
        unsigned v = (unsigned)d[i] << 16;
        char q[2] = {t[v >> 18], t[(v >> 12) & 63]};
        sb_add(out, q, 2);
    } else if (n - i == 2) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8;
        char q[3] = {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63]};
        sb_add(out, q, 3);
    }
}

static void burn(char *s)
{
    if (s) {
        mbedtls_platform_zeroize(s, strlen(s));
        free(s);
    }
}

/* ---- structures ---------------------------------------------------------- */

enum mode { MODE_OFF, MODE_TOKEN, MODE_APP };
enum call_auth { AUTH_NONE, AUTH_TOKEN, AUTH_JWT };

struct call;
typedef void (*call_done_fn)(struct call *k, struct net_resp *resp, struct err *e);

/* one API request and its retries */
struct call {
    struct reporter *r;
    struct call *prev, *next;  /* r's pending list, while pending */
    char *method, *url, *body; /* body NULL: none */
    enum call_auth auth;
    bool mutating, allow_404, noop, pending, inflight, retried_401;
    int attempts;
    long long due_ms; /* monotonic */
    uint64_t net_id;
    call_done_fn done; /* NULL once orphaned by report_close */
    void *owner;
};

enum op_kind { OP_START, OP_DONE, OP_TEARDOWN };

enum stage {
    S_CREATE,    /* POST deployments */
    S_PROGRESS,  /* POST deployments/{id}/statuses in_progress */
    S_COMMIT,    /* POST statuses/{sha} pending */
    S_LIST,      /* GET deployments?environment= (only without memory of the last one) */
    S_SUPERSEDE, /* POST deployments/{old}/statuses inactive */
    D_FIND,      /* GET deployments?environment=&sha= (only without memory) */
    D_STATUS,    /* POST deployments/{id}/statuses success|failure */
    D_COMMIT,    /* POST statuses/{sha} success|failure */
    T_LIST,      /* GET deployments?environment= (every page) */
    T_INACTIVE,  /* POST deployments/{id}/statuses inactive, for each */
    C_IDENT,     /* GET /user or GET /app: who prenv is */
    C_PATCH,     /* PATCH issues/comments/{id} */
    C_LIST,      /* GET issues/{n}/comments (every page until found) */
    C_CREATE,    /* POST issues/{n}/comments */
    ST_END,
    ST_NOOP, /* reporting is off */
};

struct op {
    struct op *next;
    struct renv *env;
    enum op_kind kind;
    enum stage stage;
    report_cb cb;
    void *ctx;
    char *sha, *desc, *url, *log_url, *receipt;
    bool ok, leftovers;
    long long expires_ms;
    long long old_dep;
    bool need_list;
    long long *ids;
    size_t nids, capids, idx;
    char *next_url;
    int pages;
    struct call *call;
};

enum env_status { ES_NONE, ES_DEPLOYING, ES_READY, ES_FAILED, ES_GONE };

struct renv {
    struct renv *next;
    struct reporter *r;
    char *repo, *env;
    long long number;
    struct op *head, *tail;
    long long deployment_id; /* the current one; 0 = unknown or none */
    bool history_known;      /* earlier deployments are known to be inactive */
    long long comment_id;
    bool closed; /* torn down: forget it when idle */
    /* what the comment shows */
    enum env_status status;
    char *sha, *url, *log_url, *desc, *receipt;
    long long expires_ms;
    bool leftovers;
};

struct reporter {
    uv_loop_t *loop;
    struct net_client net;
    uv_timer_t timer;
    enum mode mode;
    char *api;    /* without a trailing slash */
    char *token;  /* MODE_TOKEN; secret */
    char *app_id; /* MODE_APP */
    long long installation;
    mbedtls_pk_context key;
    bool key_loaded;
    char *inst_token; /* secret */
    long long inst_expires_ms;
    struct call *exchange; /* the token exchange queued or in flight */
    char *login;           /* who prenv is on GitHub */
    char *context, *auth_desc, *ua;
    int max_attempts, max_inflight;
    long long bmin, bmax, secondary, gap, timeout, margin;
    size_t max_response;
    struct call *pend_head, *pend_tail;
    int inflight;
    long long blocked_until, next_mutation; /* monotonic */
    bool pumping, pump_again;
    struct renv *envs;
    size_t nops;
    size_t napi; /* report_api calls not finished */
    bool closing;
    int closes;
    report_close_cb close_cb;
    void *close_arg;
};

/* ---- authentication ------------------------------------------------------ */

static int rng(void *ctx, unsigned char *buf, size_t len)
{
    (void)ctx;
    return crypto_random(buf, len) ? MBEDTLS_ERR_PK_ALLOC_FAILED : 0;
}

static int load_key(struct reporter *r, const char *path, struct err *e)
{
    char *pem = NULL;
    size_t len = 0;
    int rc = fs_read(path, KEY_MAX, &pem, &len, e);
    if (rc) {
        err_prefix(e, "GitHub App private key: ");
        return rc;
    }
    mbedtls_pk_init(&r->key);
    r->key_loaded = true;
    /* PEM wants the terminating NUL counted */
    rc = mbedtls_pk_parse_key(&r->key, (const unsigned char *)pem, len + 1, NULL, 0);
    mbedtls_platform_zeroize(pem, len);
    free(pem);
    if (rc) {
        char msg[128];
        mbedtls_strerror(rc, msg, sizeof msg);
        return err_set(e, PE_CONFIG, NULL, "GitHub App private key '%s': %s", path, msg);
    }
    if (mbedtls_pk_get_type(&r->key) != MBEDTLS_PK_RSA)
        return err_set(e, PE_CONFIG, NULL, "GitHub App private key '%s' is not an RSA key", path);
    return 0;
}

/* jwt: an RS256 JWT for the App: iat a minute ago, exp in nine minutes. */
static int jwt_make(struct reporter *r, struct sb *out, struct err *e)
{
    long long now = tm_now_ms() / 1000;
    struct sb claims, input;
    sb_init(&claims);
    sb_init(&input);
    sb_addf(&claims, "{\"iat\":%lld,\"exp\":%lld,\"iss\":", now - 60, now + 9 * 60);
    long long num;
    if (str_parse_int(r->app_id, 1, LLONG_MAX, &num))
        sb_addf(&claims, "%lld}", num); /* an app id, as GitHub's own libraries send it */
    else {
        json_str(&claims, r->app_id); /* a client id */
        sb_addc(&claims, '}');
    }
    static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    b64url(&input, (const unsigned char *)header, sizeof header - 1);
    sb_addc(&input, '.');
    b64url(&input, (const unsigned char *)claims.buf, claims.len);
    sb_release(&claims);
    unsigned char hash[32], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t slen = 0;
    mbedtls_sha256_ret((const unsigned char *)input.buf, input.len, hash, 0);
    int rc = mbedtls_pk_sign(&r->key, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, &slen, rng, NULL);
    if (rc) {
        char msg[128];
        mbedtls_strerror(rc, msg, sizeof msg);
        sb_release(&input);
        return err_set(e, PE_INTERNAL, NULL, "signing the GitHub App JWT: %s", msg);
    }
    sb_add(out, input.buf, input.len);
    sb_addc(out, '.');
    b64url(out, sig, slen);
    sb_release(&input);
    return 0;
}

static bool token_fresh(const struct reporter *r)
{
    return r->inst_token && tm_now_ms() + r->margin < r->inst_expires_ms;
}

/* ---- calls ----------------------------------------------------------------- */

static void pump(struct reporter *r);

static void on_wake(uv_timer_t *t)
{
    pump(t->data);
}

/* kick: pump on the next loop iteration (never inside an API call) */
static void kick(struct reporter *r)
{
    if (!r->closing)
        uv_timer_start(&r->timer, on_wake, 0, 0);
}

static struct call *call_new(struct reporter *r, const char *method, char *url, char *body,
                             enum call_auth auth, call_done_fn done, void *owner)
{
    struct call *k = xcalloc(1, sizeof *k);
    k->r = r;
    k->method = xstrdup(method);
    k->url = url;
    k->body = body;
    k->auth = auth;
    k->mutating = strcmp(method, "GET") != 0 && auth != AUTH_JWT;
    k->done = done;
    k->owner = owner;
    return k;
}

static void call_free(struct call *k)
{
    free(k->method);
    free(k->url);
    free(k->body);
    free(k);
}

static void call_queue(struct call *k, long long due)
{
    struct reporter *r = k->r;
    k->due_ms = due;
    k->pending = true;
    k->next = NULL;
    k->prev = r->pend_tail;
    if (r->pend_tail)
        r->pend_tail->next = k;
    else
        r->pend_head = k;
    r->pend_tail = k;
}

static void call_queue_front(struct call *k)
{
    struct reporter *r = k->r;
    k->due_ms = 0;
    k->pending = true;
    k->prev = NULL;
    k->next = r->pend_head;
    if (r->pend_head)
        r->pend_head->prev = k;
    else
        r->pend_tail = k;
    r->pend_head = k;
}

static void call_unlink(struct call *k)
{
    struct reporter *r = k->r;
    if (k->prev)
        k->prev->next = k->next;
    else
        r->pend_head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        r->pend_tail = k->prev;
    k->prev = k->next = NULL;
    k->pending = false;
}

/* call_complete: hand the outcome to the owner, then free the call */
static void call_complete(struct call *k, struct net_resp *resp, struct err *e)
{
    struct err ok = {0};
    if (k->done)
        k->done(k, resp, e ? e : &ok);
    call_free(k);
}

/* the path of a call's URL below the API base, without the query */
static void call_where(struct sb *out, const struct call *k)
{
    const char *p = k->url;
    size_t al = strlen(k->r->api);
    if (!strncmp(p, k->r->api, al))
        p += al;
    sb_addf(out, "%s %.*s", k->method, (int)strcspn(p, "?#"), p);
}

/* gh_message: GitHub's error message from a response body, cleaned */
static void gh_message(struct sb *out, const struct net_resp *resp)
{
    cJSON *j = cJSON_ParseWithLength(resp->body, resp->body_len);
    struct sb m;
    sb_init(&m);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (cJSON_IsString(msg))
        sb_adds(&m, msg->valuestring);
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(j, "errors"), *x;
    if (!cJSON_IsArray(errs))
        errs = NULL;
    cJSON_ArrayForEach(x, errs)
    {
        const cJSON *xm = cJSON_GetObjectItemCaseSensitive(x, "message");
        const cJSON *xf = cJSON_GetObjectItemCaseSensitive(x, "field");
        const cJSON *xc = cJSON_GetObjectItemCaseSensitive(x, "code");
        sb_adds(&m, m.len ? "; " : "");
        if (cJSON_IsString(x))
            sb_adds(&m, x->valuestring);
        else if (cJSON_IsString(xm))
            sb_adds(&m, xm->valuestring);
        else if (cJSON_IsString(xf) && cJSON_IsString(xc))
            sb_addf(&m, "%s: %s", xf->valuestring, xc->valuestring);
    }
    cJSON_Delete(j);
    clean(out, m.len ? m.buf : "no message", GH_MSG_MAX, true);
    sb_release(&m);
}

static long long backoff(const struct reporter *r, int attempt)
{
    long long d = r->bmin;
    for (int i = 1; i < attempt && d < r->bmax; i++)
        d *= 2;
    if (d > r->bmax)
        d = r->bmax;
    uint32_t rnd = 0;
    crypto_random(&rnd, sizeof rnd);
    long long w = d / 2 + (long long)(rnd % (uint64_t)(d / 2 + 1)); /* "equal jitter" */
    return w < r->bmin ? r->bmin : w;
}

/* server_now: the server's clock (its Date header), else ours, in seconds */
static long long server_now(const struct net_resp *resp)
{
    const char *d = net_resp_header(resp, "date");
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (d) {
        const char *end = strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (end && !*end)
            return (long long)timegm(&tm);
    }
    return tm_now_ms() / 1000;
}

/* rate_wait: how long a 403/429 asks us to wait (ms), -1 if it is not a rate
 * limit; *block: the wait applies to every request */
static long long rate_wait(const struct reporter *r, const struct net_resp *resp, const char *msg,
                           int attempts, bool *block)
{
    *block = false;
    if (resp->status != 403 && resp->status != 429)
        return -1;
    const char *rem = net_resp_header(resp, "x-ratelimit-remaining");
    const char *reset = net_resp_header(resp, "x-ratelimit-reset");
    const char *ra = net_resp_header(resp, "retry-after");
    long long v, wait = -1;
    if (rem && !strcmp(rem, "0") && reset && str_parse_int(reset, 0, LLONG_MAX / 2000, &v)) {
        wait = (v - server_now(resp)) * 1000 + 500; /* the reset second has to be over */
        if (wait < 1000)
            wait = 1000;
        *block = true;
    }
    if (ra && str_parse_int(ra, 0, 24 * 3600, &v)) {
        long long w = v ? v * 1000 : 1000;
        wait = w > wait ? w : wait;
        *block = true;
    }
    if (wait < 0 && (resp->status == 429 || strcasestr(msg, "rate limit"))) {
        /* a secondary limit without advice: at least the configured minute,
         * growing with every attempt */
        wait = r->secondary;
        for (int i = 1; i < attempts && wait < 8 * r->secondary; i++)
            wait *= 2;
        wait += backoff(r, 1) - r->bmin / 2;
        *block = true;
    }
    if (wait > RL_WAIT_MAX_MS)
        wait = RL_WAIT_MAX_MS;
    return wait;
}

static int status_code(int status)
{
    if (status == 401 || status == 403)
        return PE_CONFIG;
    if (status == 404 || status == 410)
        return PE_NOTFOUND;
    return PE_USAGE;
}

static void on_net_done(struct net_resp *resp, struct err *e, void *ctx)
{
    struct call *k = ctx;
    struct reporter *r = k->r;
    k->inflight = false;
    r->inflight--;
    if (!k->done || r->closing) { /* orphaned */
        call_free(k);
        return;
    }
    long long now = tm_mono_ms(), wait = -1;
    struct err fail = {0};
    struct sb why;
    sb_init(&why);
    bool rate_limited = false;
    if (e->code == PE_CANCELED) {
        call_complete(k, NULL, e);
        goto out;
    }
    if (e->code) {
        if (e->code == PE_TIMEOUT || e->code == PE_TRANSIENT) {
            wait = backoff(r, k->attempts);
            sb_adds(&why, e->msg);
        } else {
            err_move(&fail, e);
        }
    } else if ((resp->status >= 200 && resp->status < 300) ||
               (resp->status == 404 && k->allow_404)) {
        call_complete(k, resp, NULL);
        goto out;
    } else {
        struct sb msg;
        sb_init(&msg);
        gh_message(&msg, resp);
        bool block = false;
        call_where(&why, k);
        sb_addf(&why, ": %d: %s", resp->status, msg.buf);
        if (resp->status == 401 && k->auth == AUTH_TOKEN && r->mode == MODE_APP &&
            !k->retried_401) {
            /* the installation token was revoked or expired early: a new one */
            burn(r->inst_token);
            r->inst_token = NULL;
            k->retried_401 = true;
            wait = 0;
        } else if ((wait = rate_wait(r, resp, msg.buf, k->attempts, &block)) >= 0) {
            rate_limited = true;
            if (block && now + wait > r->blocked_until)
                r->blocked_until = now + wait;
        } else if (resp->status >= 500 && resp->status <= 504) {
            wait = backoff(r, k->attempts);
        } else {
            err_set(&fail, status_code(resp->status), NULL, "%s", why.buf);
        }
        sb_release(&msg);
    }
    if (!fail.code && wait >= 0) {
        if (k->attempts < r->max_attempts) {
            call_queue(k, now + wait);
            goto out;
        }
        err_set(&fail, rate_limited ? PE_LIMIT : PE_TRANSIENT, NULL,
                "gave up after %d attempts: %s", k->attempts, why.buf);
    }
    call_complete(k, NULL, &fail);
out:
    err_release(&fail);
    sb_release(&why);
    pump(r);
}

static void on_token(struct call *k, struct net_resp *resp, struct err *e);

static void start_exchange(struct reporter *r)
{
    char *url = xasprintf("%s/app/installations/%lld/access_tokens", r->api, r->installation);
    r->exchange = call_new(r, "POST", url, NULL, AUTH_JWT, on_token, r);
    call_queue_front(r->exchange);
}

static void send_call(struct reporter *r, struct call *k)
{
    struct err e = {0};
    if (k->noop) {
        call_complete(k, NULL, NULL);
        return;
    }
    struct sb auth;
    sb_init(&auth);
    if (k->auth == AUTH_JWT) {
        sb_adds(&auth, "Authorization: Bearer ");
        if (jwt_make(r, &auth, &e)) {
            sb_release(&auth);
            call_complete(k, NULL, &e);
            err_release(&e);
            return;
        }
    } else if (k->auth == AUTH_TOKEN) {
        sb_addf(&auth, "Authorization: Bearer %s", r->mode == MODE_APP ? r->inst_token : r->token);
    }
    const char *hdrs[8];
    size_t n = 0;
    hdrs[n++] = "Accept: application/vnd.github+json";
    hdrs[n++] = "X-GitHub-Api-Version: 2022-11-28";
    hdrs[n++] = r->ua;
    if (auth.len)
        hdrs[n++] = auth.buf;
    if (k->body)
        hdrs[n++] = "Content-Type: application/json";
    hdrs[n] = NULL;
    struct net_req req = {
        .method = k->method,
        .url = k->url,
        .headers = hdrs,
        .body = k->body,
        .body_len = k->body ? strlen(k->body) : 0,
        .timeout_ms = r->timeout,
        .max_response = r->max_response,
    };
    k->attempts++;
    k->inflight = true;
    r->inflight++;
    if (k->mutating)
        r->next_mutation = tm_mono_ms() + r->gap;
    int rc = net_request(&r->net, &req, on_net_done, k, &k->net_id, &e);
    mbedtls_platform_zeroize(auth.buf, auth.len);
    sb_release(&auth);
    if (rc) {
        k->inflight = false;
        r->inflight--;
        call_complete(k, NULL, &e);
    }
    err_release(&e);
}

/* pump: send every call that may go now; arm the timer for the next one */
static void pump(struct reporter *r)
{
    if (r->closing)
        return;
    if (r->pumping) {
        r->pump_again = true;
        return;
    }
    r->pumping = true;
    long long wake;
    do {
        r->pump_again = false;
        long long now = tm_mono_ms();
        wake = LLONG_MAX;
        for (struct call *k = r->pend_head; k; k = k->next) {
            if (r->inflight >= r->max_inflight) {
                wake = LLONG_MAX; /* a completion pumps again */
                break;
            }
            long long at = k->due_ms;
            if (!k->noop && r->blocked_until > at)
                at = r->blocked_until;
            if (k->mutating && r->next_mutation > at)
                at = r->next_mutation;
            if (at > now) {
                wake = at < wake ? at : wake;
                continue;
            }
            if (!k->noop && k->auth == AUTH_TOKEN && r->mode == MODE_APP && !token_fresh(r)) {
                if (!r->exchange) {
                    start_exchange(r);
                    r->pump_again = true;
                    break;
                }
                continue; /* waits for the token */
            }
            call_unlink(k);
            send_call(r, k); /* may complete calls and queue others */
            r->pump_again = true;
            break;
        }
    } while (r->pump_again && !r->closing);
    r->pumping = false;
    if (r->closing)
        return;
    if (wake == LLONG_MAX)
        uv_timer_stop(&r->timer);
    else {
        long long d = wake - tm_mono_ms();
        uv_timer_start(&r->timer, on_wake, d > 0 ? (uint64_t)d : 0, 0);
    }
}

static void on_token(struct call *k, struct net_resp *resp, struct err *e)
{
    struct reporter *r = k->owner;
    r->exchange = NULL;
    struct err bad = {0};
    if (!e->code) {
        cJSON *j = cJSON_ParseWithLength(resp->body, resp->body_len);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "token");
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, "expires_at");
        long long exp;
        if (cJSON_IsString(t) && *t->valuestring && !strpbrk(t->valuestring, "\r\n")) {
            burn(r->inst_token);
            r->inst_token = xstrdup(t->valuestring);
            if (!cJSON_IsString(x) || !tm_parse_rfc3339(x->valuestring, &exp))
                exp = tm_now_ms() + 55 * 60 * 1000; /* GitHub's are good for an hour */
            r->inst_expires_ms = exp;
            if (!token_fresh(r)) /* expiring already: use it once, renew next time */
                r->inst_expires_ms = tm_now_ms() + r->margin + 1000;
        } else {
            err_set(&bad, PE_USAGE, NULL, "no token in GitHub's answer to %s",
                    "the token exchange");
        }
        if (j) {
            /* the token is in there too */
            if (cJSON_IsString(t))
                mbedtls_platform_zeroize(t->valuestring, strlen(t->valuestring));
            cJSON_Delete(j);
        }
        mbedtls_platform_zeroize(resp->body, resp->body_len);
        if (!bad.code)
            return;
        e = &bad;
    }
    /* everything waiting for a token fails with this error; calls queued by
     * the failures themselves will try a fresh exchange */
    size_t n = 0, cap = 0;
    struct call **wait = NULL;
    for (struct call *w = r->pend_head; w; w = w->next)
        if (w->auth == AUTH_TOKEN && !w->noop) {
            XGROW(wait, cap, n + 1);
            wait[n++] = w;
        }
    for (size_t i = 0; i < n; i++) {
        struct err we = {0};
        err_set(&we, e->code, NULL, "GitHub App installation token: %s", e->msg);
        call_unlink(wait[i]);
        call_complete(wait[i], NULL, &we);
        err_release(&we);
        if (r->closing)
            break;
    }
    free(wait);
    err_release(&bad);
}

/* ---- envs ------------------------------------------------------------------ */

static struct renv *env_get(struct reporter *r, const struct report_pr *pr)
{
    for (struct renv *v = r->envs; v; v = v->next)
        if (!strcasecmp(v->repo, pr->repo) && !strcmp(v->env, pr->env))
            return v;
    struct renv *v = xcalloc(1, sizeof *v);
    v->r = r;
    v->repo = xstrdup(pr->repo);
    v->env = xstrdup(pr->env);
    v->number = pr->number;
    v->next = r->envs;
    r->envs = v;
    return v;
}

static void env_free(struct renv *v)
{
    struct reporter *r = v->r;
    for (struct renv **pp = &r->envs; *pp; pp = &(*pp)->next)
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    free(v->repo);
    free(v->env);
    free(v->sha);
    free(v->url);
    free(v->log_url);
    free(v->desc);
    free(v->receipt);
    free(v);
}

static void set_str(char **dst, const char *s)
{
    char *c = s ? xstrdup(s) : NULL;
    free(*dst);
    *dst = c;
}

/* the sticky comment's text */
static char *comment_render(const struct renv *v)
{
    struct sb b;
    sb_init(&b);
    sb_addf(&b, "<!-- prenv:%s -->\n", v->env);
    static const char *const status[] = {
        [ES_NONE] = "unknown",
        [ES_DEPLOYING] = "\xF0\x9F\x9A\x80 deploying",        /* 🚀 */
        [ES_READY] = "\xE2\x9C\x85 ready",                    /* ✅ */
        [ES_FAILED] = "\xE2\x9D\x8C deployment failed",       /* ❌ */
        [ES_GONE] = "\xF0\x9F\x97\x91\xEF\xB8\x8F torn down", /* 🗑️ */
    };
    sb_addf(&b, "### Preview environment `%s`: %s\n\n", v->env, status[v->status]);
    if (v->desc && *v->desc) {
        md_text(&b, v->desc, REPORT_DESC_MAX);
        sb_adds(&b, "\n\n");
    }
    sb_adds(&b, "| | |\n|---|---|\n");
    if (v->url && v->status != ES_GONE) {
        sb_adds(&b, "| **URL** | ");
        md_link(&b, v->url);
        sb_adds(&b, " |\n");
    }
    if (v->sha) {
        struct sb s;
        sb_init(&s);
        clean(&s, v->sha, 12, true);
        sb_adds(&b, "| **Commit** | `");
        for (const char *p = s.buf; *p && p - s.buf < 7; p++) /* hex, checked on entry */
            sb_addc(&b, *p);
        sb_adds(&b, "` |\n");
        sb_release(&s);
    }
    if (v->expires_ms > 0 && v->status != ES_GONE) {
        sb_adds(&b, "| **Expires** | ");
        tm_rfc3339(&b, v->expires_ms);
        sb_adds(&b, " |\n");
    }
    if (v->log_url) {
        sb_adds(&b, "| **Logs** | ");
        md_link(&b, v->log_url);
        sb_adds(&b, " |\n");
    }
    if (v->status == ES_GONE && v->receipt) {
        sb_addf(&b, "\n#### Teardown receipt%s\n\n",
                v->leftovers ? ": some resources are left" : "");
        sb_adds(&b, v->receipt);
    }
    sb_adds(&b, "\n<sub>Updated by prenv at ");
    tm_rfc3339(&b, tm_now_ms() / 1000 * 1000);
    sb_adds(&b, "</sub>\n");
    return sb_steal(&b);
}

static char *receipt_render(const struct report_receipt *rc, bool *leftovers)
{
    struct sb b;
    sb_init(&b);
    *leftovers = false;
    if (!rc || !rc->n) {
        sb_adds(&b, "Nothing was left to remove.\n");
        return sb_steal(&b);
    }
    sb_adds(&b, "| Resource | Type | Result |\n|---|---|---|\n");
    for (size_t i = 0; i < rc->n; i++) {
        const struct report_item *it = &rc->items[i];
        sb_adds(&b, "| ");
        md_text(&b, it->name ? it->name : "?", 100);
        sb_adds(&b, " | ");
        md_text(&b, it->type ? it->type : "", 60);
        if (it->removed) {
            sb_adds(&b, " | removed |\n");
        } else {
            *leftovers = true;
            sb_adds(&b, " | **left**: ");
            md_text(&b, it->why && *it->why ? it->why : "no reason given", 300);
            sb_adds(&b, " |\n");
        }
    }
    return sb_steal(&b);
}

/* ---- ops ------------------------------------------------------------------- */

static void op_go(struct op *o);

static void op_free(struct op *o)
{
    free(o->sha);
    free(o->desc);
    free(o->url);
    free(o->log_url);
    free(o->receipt);
    free(o->ids);
    free(o->next_url);
    free(o);
}

static void op_begin(struct op *o)
{
    struct renv *v = o->env;
    struct reporter *r = v->r;
    if (r->mode == MODE_OFF) {
        o->stage = ST_NOOP;
        op_go(o);
        return;
    }
    switch (o->kind) {
    case OP_START:
        v->closed = false;
        o->stage = S_CREATE;
        break;
    case OP_DONE:
        v->closed = false;
        v->status = o->ok ? ES_READY : ES_FAILED;
        set_str(&v->sha, o->sha);
        set_str(&v->url, o->url);
        set_str(&v->log_url, o->log_url);
        set_str(&v->desc, o->desc);
        v->expires_ms = o->expires_ms;
        o->stage = D_FIND;
        break;
    case OP_TEARDOWN:
        v->status = ES_GONE;
        set_str(&v->desc, o->desc);
        set_str(&v->receipt, o->receipt);
        v->leftovers = o->leftovers;
        if (o->sha)
            set_str(&v->sha, o->sha);
        o->stage = T_LIST;
        break;
    }
    op_go(o);
}

/* op_finish: o is over (e NULL or clear: success). The env's next op
 * starts, then o's callback runs. */
static void op_finish(struct op *o, struct err *e)
{
    struct renv *v = o->env;
    struct reporter *r = v->r;
    v->head = o->next;
    if (!v->head)
        v->tail = NULL;
    r->nops--;
    if (o->kind == OP_TEARDOWN) {
        v->deployment_id = 0;
        v->closed = true;
    }
    report_cb cb = o->cb;
    void *ctx = o->ctx;
    struct err res = {0};
    if (e && e->code) {
        err_move(&res, e);
        err_prefix(&res, "report %s: ", v->env);
    }
    op_free(o);
    if (v->head)
        op_begin(v->head);
    else if (v->closed)
        env_free(v);
    cb(&res, ctx);
    err_release(&res);
}

static void op_on_call(struct call *k, struct net_resp *resp, struct err *e);

static void op_call(struct op *o, const char *method, char *url, struct sb *body,
                    enum call_auth auth)
{
    struct reporter *r = o->env->r;
    struct call *k = call_new(r, method, url, body ? sb_steal(body) : NULL, auth, op_on_call, o);
    o->call = k;
    call_queue(k, 0);
}

static char *api_url(const struct renv *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *api_url(const struct renv *v, const char *fmt, ...)
{
    struct sb b;
    sb_init(&b);
    sb_addf(&b, "%s/repos/%s", v->r->api, v->repo);
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    return sb_steal(&b);
}

static void body_deployment_status(struct sb *b, const char *state, const char *desc,
                                   const char *url, const char *log_url, bool auto_inactive)
{
    sb_adds(b, "{\"state\":");
    json_str(b, state);
    if (desc) {
        char *d = report_clip(desc, REPORT_DESC_MAX);
        sb_adds(b, ",\"description\":");
        json_str(b, d);
        free(d);
    }
    if (url) {
        sb_adds(b, ",\"environment_url\":");
        json_str(b, url);
    }
    if (log_url) {
        sb_adds(b, ",\"log_url\":");
        json_str(b, log_url);
    }
    if (!auto_inactive)
        sb_adds(b, ",\"auto_inactive\":false");
    sb_addc(b, '}');
}

static void body_commit_status(struct sb *b, const struct reporter *r, const char *state,
                               const char *desc, const char *target)
{
    char *d = report_clip(desc, REPORT_DESC_MAX);
    sb_adds(b, "{\"state\":");
    json_str(b, state);
    if (target) {
        sb_adds(b, ",\"target_url\":");
        json_str(b, target);
    }
    sb_adds(b, ",\"description\":");
    json_str(b, d);
    sb_adds(b, ",\"context\":");
    json_str(b, r->context);
    sb_addc(b, '}');
    free(d);
}

static void short_sha(char out[8], const char *sha)
{
    snprintf(out, 8, "%.7s", sha ? sha : "");
}

/* op_go: issue the call of o->stage, passing over stages with nothing to do */
static void op_go(struct op *o)
{
    struct renv *v = o->env;
    struct reporter *r = v->r;
    struct sb b;
    sb_init(&b);
    char sh[8];
    for (;;) {
        switch (o->stage) {
        case ST_NOOP: {
            struct call *k = call_new(r, "GET", xstrdup(""), NULL, AUTH_NONE, op_on_call, o);
            k->noop = true;
            o->call = k;
            call_queue(k, 0);
            return;
        }
        case S_CREATE: {
            short_sha(sh, o->sha);
            char *d = o->desc ? report_clip(o->desc, REPORT_DESC_MAX)
                              : xasprintf("Deploying %s to %s", sh, v->env);
            sb_adds(&b, "{\"ref\":");
            json_str(&b, o->sha);
            sb_adds(&b, ",\"environment\":");
            json_str(&b, v->env);
            sb_adds(&b, ",\"transient_environment\":true,\"production_environment\":false,"
                        "\"auto_merge\":false,\"required_contexts\":[],\"description\":");
            json_str(&b, d);
            sb_addc(&b, '}');
            free(d);
            op_call(o, "POST", api_url(v, "/deployments"), &b, AUTH_TOKEN);
            return;
        }
        case S_PROGRESS:
            body_deployment_status(&b, "in_progress", o->desc ? o->desc : "Deploying", NULL, NULL,
                                   true);
            op_call(o, "POST", api_url(v, "/deployments/%lld/statuses", v->deployment_id), &b,
                    AUTH_TOKEN);
            return;
        case S_COMMIT: {
            short_sha(sh, o->sha);
            char *d = o->desc ? xstrdup(o->desc) : xasprintf("Deploying %s to %s", sh, v->env);
            body_commit_status(&b, r, "pending", d, NULL);
            free(d);
            op_call(o, "POST", api_url(v, "/statuses/%s", o->sha), &b, AUTH_TOKEN);
            return;
        }
        case S_LIST:
            if (!o->need_list) {
                o->stage = S_SUPERSEDE;
                continue;
            }
            op_call(o, "GET", api_url(v, "/deployments?environment=%s&per_page=100", v->env), NULL,
                    AUTH_TOKEN);
            return;
        case S_SUPERSEDE:
            if (!o->old_dep) {
                o->stage = ST_END;
                continue;
            }
            short_sha(sh, o->sha);
            sb_addf(&b, "Superseded by %s", sh);
            {
                char *d = sb_steal(&b);
                body_deployment_status(&b, "inactive", d, NULL, NULL, true);
                free(d);
            }
            op_call(o, "POST", api_url(v, "/deployments/%lld/statuses", o->old_dep), &b,
                    AUTH_TOKEN);
            return;
        case D_FIND:
            if (v->deployment_id) {
                o->stage = D_STATUS;
                continue;
            }
            op_call(o, "GET",
                    api_url(v, "/deployments?environment=%s&sha=%s&per_page=1", v->env, o->sha),
                    NULL, AUTH_TOKEN);
            return;
        case D_STATUS: {
            if (!v->deployment_id) {
                o->stage = D_COMMIT;
                continue;
            }
            const char *d = o->desc ? o->desc : o->ok ? "Preview ready" : "Deployment failed";
            body_deployment_status(&b, o->ok ? "success" : "failure", d, o->ok ? o->url : NULL,
                                   o->log_url, false);
            op_call(o, "POST", api_url(v, "/deployments/%lld/statuses", v->deployment_id), &b,
                    AUTH_TOKEN);
            return;
        }
        case D_COMMIT: {
            const char *d = o->desc ? o->desc : o->ok ? "Preview ready" : "Deployment failed";
            const char *target = o->ok ? o->url : o->log_url ? o->log_url : o->url;
            body_commit_status(&b, r, o->ok ? "success" : "failure", d, target);
            op_call(o, "POST", api_url(v, "/statuses/%s", o->sha), &b, AUTH_TOKEN);
            return;
        }
        case T_LIST:
            op_call(o, "GET",
                    o->next_url ? xstrdup(o->next_url)
                                : api_url(v, "/deployments?environment=%s&per_page=100", v->env),
                    NULL, AUTH_TOKEN);
            return;
        case T_INACTIVE:
            if (o->idx >= o->nids) {
                o->stage = C_IDENT;
                continue;
            }
            body_deployment_status(&b, "inactive",
                                   o->desc ? o->desc : "Preview environment removed", NULL, NULL,
                                   true);
            op_call(o, "POST", api_url(v, "/deployments/%lld/statuses", o->ids[o->idx]), &b,
                    AUTH_TOKEN);
            return;
        case C_IDENT:
            if (r->login) {
                o->stage = C_PATCH;
                continue;
            }
            if (r->mode == MODE_APP)
                op_call(o, "GET", xasprintf("%s/app", r->api), NULL, AUTH_JWT);
            else
                op_call(o, "GET", xasprintf("%s/user", r->api), NULL, AUTH_TOKEN);
            return;
        case C_PATCH: {
            if (!v->comment_id) {
                o->stage = C_LIST;
                continue;
            }
            char *text = comment_render(v);
            sb_adds(&b, "{\"body\":");
            json_str(&b, text);
            sb_addc(&b, '}');
            free(text);
            op_call(o, "PATCH",
                    xasprintf("%s/repos/%s/issues/comments/%lld", r->api, v->repo, v->comment_id),
                    &b, AUTH_TOKEN);
            o->call->allow_404 = true;
            return;
        }
        case C_LIST:
            op_call(o, "GET",
                    o->next_url ? xstrdup(o->next_url)
                                : api_url(v, "/issues/%lld/comments?per_page=100", v->number),
                    NULL, AUTH_TOKEN);
            return;
        case C_CREATE: {
            char *text = comment_render(v);
            sb_adds(&b, "{\"body\":");
            json_str(&b, text);
            sb_addc(&b, '}');
            free(text);
            op_call(o, "POST", api_url(v, "/issues/%lld/comments", v->number), &b, AUTH_TOKEN);
            return;
        }
        case ST_END:
            sb_release(&b);
            op_finish(o, NULL);
            return;
        }
    }
}

/* link_next: the rel="next" URL of a Link header, if it is below the API
 * base (a token never goes anywhere else). Caller frees. */
static char *link_next(const struct reporter *r, const struct net_resp *resp)
{
    const char *h = net_resp_header(resp, "link");
    if (!h)
        return NULL;
    size_t al = strlen(r->api);
    for (const char *p = h; (p = strchr(p, '<'));) {
        const char *end = strchr(p, '>');
        if (!end)
            return NULL;
        const char *params = end + 1;
        size_t plen = strcspn(params, "<");
        const char *rel = NULL;
        for (const char *q = params; q < params + plen; q++)
            if (!strncasecmp(q, "rel=", 4)) {
                rel = q + 4;
                break;
            }
        if (rel && (!strncmp(rel, "\"next\"", 6) || !strncmp(rel, "next", 4) ||
                    !strncmp(rel, "\"next ", 6))) {
            char *u = xstrndup(p + 1, (size_t)(end - p - 1));
            if (strncmp(u, r->api, al) || u[al] != '/' || strpbrk(u, " \r\n\t")) {
                free(u);
                return NULL;
            }
            return u;
        }
        p = end;
    }
    return NULL;
}

static bool json_id(const cJSON *j, const char *name, long long *out)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > 9007199254740991.0)
        return false;
    *out = (long long)x->valuedouble;
    return true;
}

/* op_result: the call of o->stage answered 2xx (or 404 where allowed) */
static void op_result(struct op *o, struct net_resp *resp)
{
    struct renv *v = o->env;
    struct reporter *r = v->r;
    struct err e = {0};
    cJSON *j = resp ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
    const cJSON *list = cJSON_IsArray(j) ? j : NULL;
    long long id;
    switch (o->stage) {
    case ST_NOOP:
        o->stage = ST_END;
        break;
    case S_CREATE:
        if (resp->status != 201 || !json_id(j, "id", &id)) {
            struct sb m;
            sb_init(&m);
            gh_message(&m, resp);
            err_set(&e, PE_USAGE, NULL, "GitHub created no deployment (%d): %s", resp->status,
                    m.buf);
            sb_release(&m);
            break;
        }
        o->old_dep = v->deployment_id != id ? v->deployment_id : 0;
        o->need_list = !o->old_dep && !v->history_known;
        v->history_known = true;
        v->deployment_id = id;
        v->status = ES_DEPLOYING;
        set_str(&v->sha, o->sha);
        o->stage = S_PROGRESS;
        break;
    case S_PROGRESS:
        o->stage = S_COMMIT;
        break;
    case S_COMMIT:
        o->stage = S_LIST;
        break;
    case S_LIST: {
        /* the newest other deployment is the one superseded (older ones
         * were set inactive when they were superseded) */
        const cJSON *x;
        cJSON_ArrayForEach(x, list)
        {
            if (json_id(x, "id", &id) && id != v->deployment_id && id > o->old_dep)
                o->old_dep = id;
        }
        o->stage = S_SUPERSEDE;
        break;
    }
    case S_SUPERSEDE:
        o->stage = ST_END;
        break;
    case D_FIND: {
        const cJSON *x = cJSON_GetArrayItem(j, 0);
        if (cJSON_IsArray(j) && x && json_id(x, "id", &id))
            v->deployment_id = id;
        o->stage = D_STATUS;
        break;
    }
    case D_STATUS:
        o->stage = D_COMMIT;
        break;
    case D_COMMIT:
        o->stage = C_IDENT;
        break;
    case T_LIST: {
        const cJSON *x;
        cJSON_ArrayForEach(x, list)
        {
            if (json_id(x, "id", &id) && o->nids < IDS_MAX) {
                XGROW(o->ids, o->capids, o->nids + 1);
                o->ids[o->nids++] = id;
            }
        }
        free(o->next_url);
        o->next_url = ++o->pages < PAGE_MAX ? link_next(r, resp) : NULL;
        if (!o->next_url) {
            o->stage = T_INACTIVE;
            o->pages = 0;
        }
        break;
    }
    case T_INACTIVE:
        o->idx++;
        break;
    case C_IDENT: {
        const cJSON *x =
            cJSON_GetObjectItemCaseSensitive(j, r->mode == MODE_APP ? "slug" : "login");
        if (!cJSON_IsString(x) || !*x->valuestring) {
            err_set(&e, PE_USAGE, NULL, "GitHub did not say who prenv is (%s)",
                    r->mode == MODE_APP ? "GET /app" : "GET /user");
            break;
        }
        free(r->login);
        r->login =
            r->mode == MODE_APP ? xasprintf("%s[bot]", x->valuestring) : xstrdup(x->valuestring);
        o->stage = C_PATCH;
        break;
    }
    case C_PATCH:
        if (resp->status == 404) { /* deleted: find or write another */
            v->comment_id = 0;
            o->stage = C_LIST;
        } else {
            o->stage = ST_END;
        }
        break;
    case C_LIST: {
        char *marker = xasprintf("<!-- prenv:%s -->", v->env);
        const cJSON *x;
        cJSON_ArrayForEach(x, list)
        {
            const cJSON *body = cJSON_GetObjectItemCaseSensitive(x, "body");
            const cJSON *user = cJSON_GetObjectItemCaseSensitive(x, "user");
            const cJSON *login = cJSON_GetObjectItemCaseSensitive(user, "login");
            /* only prenv's own comment: anybody can paste the marker */
            if (cJSON_IsString(body) && strstr(body->valuestring, marker) &&
                cJSON_IsString(login) && !strcasecmp(login->valuestring, r->login) &&
                json_id(x, "id", &id)) {
                v->comment_id = id;
                break;
            }
        }
        free(marker);
        free(o->next_url);
        o->next_url = NULL;
        if (v->comment_id)
            o->stage = C_PATCH;
        else if ((o->next_url = ++o->pages < PAGE_MAX ? link_next(r, resp) : NULL))
            o->stage = C_LIST;
        else
            o->stage = C_CREATE;
        break;
    }
    case C_CREATE:
        if (json_id(j, "id", &id))
            v->comment_id = id;
        o->stage = ST_END;
        break;
    case ST_END:
        break;
    }
    cJSON_Delete(j);
    if (e.code) {
        op_finish(o, &e);
        err_release(&e);
        return;
    }
    op_go(o);
}

static void op_on_call(struct call *k, struct net_resp *resp, struct err *e)
{
    struct op *o = k->owner;
    o->call = NULL;
    if (e->code) {
        struct err c = {0};
        err_move(&c, e);
        op_finish(o, &c);
        err_release(&c);
        return;
    }
    op_result(o, resp);
}

/* ---- public -------------------------------------------------------------------- */

static bool repo_ok(const char *s)
{
    const char *slash = s ? strchr(s, '/') : NULL;
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/') || strlen(s) > 200)
        return false;
    for (const char *p = s; *p; p++)
        if (p != slash && !(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
                            ('0' <= *p && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return false;
    return strcmp(slash + 1, ".") && strcmp(slash + 1, "..");
}

static bool sha_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 7 || n > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!(('0' <= *p && *p <= '9') || ('a' <= *p && *p <= 'f') || ('A' <= *p && *p <= 'F')))
            return false;
    return true;
}

static int check_pr(const struct report_pr *pr, bool need_sha, struct err *e)
{
    if (!repo_ok(pr->repo))
        return err_set(e, PE_USAGE, NULL, "report: repository must be owner/name");
    if (pr->number < 1)
        return err_set(e, PE_USAGE, NULL, "report: pull request number must be positive");
    if (!pr->env || !str_is_slug(pr->env, 63))
        return err_set(e, PE_USAGE, NULL, "report: environment name must be a DNS label");
    if ((need_sha || pr->sha) && !sha_ok(pr->sha))
        return err_set(e, PE_USAGE, NULL, "report: head sha must be 7 to 64 hex digits");
    return 0;
}

static struct op *op_new(struct reporter *r, const struct report_pr *pr, enum op_kind kind,
                         report_cb cb, void *ctx)
{
    struct op *o = xcalloc(1, sizeof *o);
    o->kind = kind;
    o->cb = cb;
    o->ctx = ctx;
    o->sha = pr->sha ? xstrdup(pr->sha) : NULL;
    (void)r;
    return o;
}

static void op_enqueue(struct reporter *r, const struct report_pr *pr, struct op *o)
{
    struct renv *v = env_get(r, pr);
    v->number = pr->number;
    o->env = v;
    r->nops++;
    if (v->tail)
        v->tail->next = o;
    else
        v->head = o;
    v->tail = o;
    if (v->head == o)
        op_begin(o); /* queues its first call only */
    kick(r);
}

static int entry_check(struct reporter *r, const struct report_pr *pr, bool need_sha, report_cb cb,
                       struct err *e)
{
    if (r->closing)
        return err_set(e, PE_CANCELED, NULL, "report: closing");
    if (!cb)
        return err_set(e, PE_USAGE, NULL, "report: no callback");
    return check_pr(pr, need_sha, e);
}

int report_deploy_start(struct reporter *r, const struct report_pr *pr, const char *description,
                        report_cb cb, void *ctx, struct err *e)
{
    int rc = entry_check(r, pr, true, cb, e);
    if (rc)
        return rc;
    struct op *o = op_new(r, pr, OP_START, cb, ctx);
    o->desc = description ? xstrdup(description) : NULL;
    op_enqueue(r, pr, o);
    return 0;
}

int report_deploy_done(struct reporter *r, const struct report_pr *pr,
                       const struct report_result *res, report_cb cb, void *ctx, struct err *e)
{
    int rc = entry_check(r, pr, true, cb, e);
    if (rc)
        return rc;
    if (!res)
        return err_set(e, PE_USAGE, NULL, "report: no result");
    struct op *o = op_new(r, pr, OP_DONE, cb, ctx);
    o->ok = res->ok;
    o->url = res->url && *res->url ? xstrdup(res->url) : NULL;
    o->log_url = res->log_url && *res->log_url ? xstrdup(res->log_url) : NULL;
    o->desc = res->description ? xstrdup(res->description) : NULL;
    o->expires_ms = res->expires_ms;
    op_enqueue(r, pr, o);
    return 0;
}

int report_teardown(struct reporter *r, const struct report_pr *pr,
                    const struct report_receipt *receipt, report_cb cb, void *ctx, struct err *e)
{
    int rc = entry_check(r, pr, false, cb, e);
    if (rc)
        return rc;
    struct op *o = op_new(r, pr, OP_TEARDOWN, cb, ctx);
    o->receipt = receipt_render(receipt, &o->leftovers);
    if (receipt && receipt->description)
        o->desc = xstrdup(receipt->description);
    else
        o->desc = xstrdup(o->leftovers ? "Preview environment removed; some resources are left"
                                       : "Preview environment removed");
    op_enqueue(r, pr, o);
    return 0;
}

struct api_ctx {
    report_api_cb cb;
    void *ctx;
};

static void api_done(struct call *k, struct net_resp *resp, struct err *e)
{
    struct api_ctx *a = k->owner;
    k->r->napi--;
    if (e && e->code)
        a->cb(0, NULL, 0, e, a->ctx);
    else
        a->cb(resp ? resp->status : 0, resp ? resp->body : NULL, resp ? resp->body_len : 0, e,
              a->ctx);
    free(a);
}

int report_api(struct reporter *r, const char *method, const char *path, const char *json_body,
               bool allow_404, report_api_cb cb, void *ctx, struct err *e)
{
    if (!report_enabled(r))
        return err_set(e, PE_USAGE, NULL, "reporting to GitHub is off: no credentials");
    if (r->closing)
        return err_set(e, PE_CANCELED, NULL, "the reporter is closing");
    if (!path || path[0] != '/' || strstr(path, ".."))
        return err_set(e, PE_USAGE, NULL, "report_api: a path below the API base, like /repos/o/r");
    struct api_ctx *a = xcalloc(1, sizeof *a);
    a->cb = cb;
    a->ctx = ctx;
    struct call *k = call_new(r, method, xasprintf("%s%s", r->api, path),
                              json_body ? xstrdup(json_body) : NULL, AUTH_TOKEN, api_done, a);
    k->allow_404 = allow_404;
    r->napi++;
    call_queue(k, tm_mono_ms());
    kick(r);
    return 0;
}

size_t report_pending(const struct reporter *r)
{
    return r->nops + r->napi;
}

bool report_enabled(const struct reporter *r)
{
    return r->mode != MODE_OFF;
}

const char *report_auth_desc(const struct reporter *r)
{
    return r->auth_desc;
}

static void reporter_free(struct reporter *r)
{
    free(r->api);
    burn(r->token);
    burn(r->inst_token);
    free(r->app_id);
    if (r->key_loaded)
        mbedtls_pk_free(&r->key);
    free(r->login);
    free(r->context);
    free(r->auth_desc);
    free(r->ua);
    free(r);
}

static void on_net_closed(struct net_client *c);

int report_start(struct reporter **out, uv_loop_t *loop, const struct report_config *cfg,
                 struct err *e)
{
    *out = NULL;
    static const struct report_config none;
    if (!cfg)
        cfg = &none;
    struct reporter *r = xcalloc(1, sizeof *r);
    r->loop = loop;
    const char *api = cfg->api_url && *cfg->api_url ? cfg->api_url : REPORT_API_DEFAULT;
    if ((strncmp(api, "https://", 8) && strncmp(api, "http://", 7)) || strpbrk(api, " \r\n\t?#")) {
        reporter_free(r);
        return err_set(e, PE_CONFIG, NULL, "GitHub API URL must be http(s)://host[/path]");
    }
    r->api = xstrdup(api);
    for (size_t n = strlen(r->api); n > 8 && r->api[n - 1] == '/'; n--)
        r->api[n - 1] = 0;
    r->context = xstrdup(cfg->context && *cfg->context ? cfg->context : REPORT_CONTEXT_DEFAULT);
    r->ua = xstrdup("User-Agent: prenv/" PRENV_VERSION);
    r->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 5;
    r->max_inflight = cfg->max_inflight > 0 ? cfg->max_inflight : 8;
    r->bmin = cfg->backoff_min_ms > 0 ? cfg->backoff_min_ms : 1000;
    r->bmax = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 60000;
    if (r->bmax < r->bmin)
        r->bmax = r->bmin;
    r->secondary = cfg->secondary_wait_ms > 0 ? cfg->secondary_wait_ms : 60000;
    r->gap = cfg->mutate_gap_ms > 0 ? cfg->mutate_gap_ms : cfg->mutate_gap_ms < 0 ? 0 : 1000;
    r->timeout = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    r->max_response = cfg->max_response ? cfg->max_response : (size_t)8 << 20;
    r->margin = cfg->token_margin_ms > 0 ? cfg->token_margin_ms : 5 * 60 * 1000;

    bool app_any = (cfg->app_id && *cfg->app_id) || (cfg->app_key_path && *cfg->app_key_path) ||
                   cfg->installation_id;
    const char *tok = cfg->token && *cfg->token ? cfg->token : NULL;
    if (app_any) {
        if (tok) {
            reporter_free(r);
            return err_set(e, PE_CONFIG, NULL,
                           "GitHub: configure either a token or a GitHub App, not both");
        }
        if (!cfg->app_id || !*cfg->app_id || !cfg->app_key_path || !*cfg->app_key_path ||
            cfg->installation_id < 1) {
            reporter_free(r);
            return err_set(e, PE_CONFIG, NULL,
                           "GitHub App needs an app id (or client id), a private key file and "
                           "an installation id");
        }
        if (strpbrk(cfg->app_id, "\"\\\r\n") || strlen(cfg->app_id) > 100) {
            reporter_free(r);
            return err_set(e, PE_CONFIG, NULL, "GitHub App id is malformed");
        }
        int rc = load_key(r, cfg->app_key_path, e);
        if (rc) {
            reporter_free(r);
            return rc;
        }
        r->mode = MODE_APP;
        r->app_id = xstrdup(cfg->app_id);
        r->installation = cfg->installation_id;
        r->auth_desc = xasprintf("GitHub App %s (installation %lld)", r->app_id, r->installation);
    } else {
        if (!tok) {
            const char *env = getenv("PRENV_GITHUB_TOKEN");
            tok = env && *env ? env : NULL;
        }
        if (tok && strpbrk(tok, " \r\n\t")) {
            reporter_free(r);
            return err_set(e, PE_CONFIG, NULL, "GitHub token holds blanks or line breaks");
        }
        r->mode = tok ? MODE_TOKEN : MODE_OFF;
        r->token = tok ? xstrdup(tok) : NULL;
        r->auth_desc =
            xstrdup(tok ? "token" : "off: no PRENV_GITHUB_TOKEN and no GitHub App configured");
    }
    int rc = net_client_start(&r->net, loop, e);
    if (rc) {
        reporter_free(r);
        return rc;
    }
    rc = uv_timer_init(loop, &r->timer);
    if (rc) { /* r goes when the client's handles have closed, from the loop */
        r->closing = true;
        r->closes = 1;
        net_client_close(&r->net, on_net_closed);
        return err_set(e, PE_INTERNAL, NULL, "uv_timer_init: %s", uv_strerror(rc));
    }
    r->timer.data = r;
    *out = r;
    return 0;
}

static void closed_one(struct reporter *r)
{
    if (--r->closes > 0)
        return;
    report_close_cb cb = r->close_cb;
    void *arg = r->close_arg;
    reporter_free(r);
    if (cb)
        cb(arg);
}

static void on_net_closed(struct net_client *c)
{
    struct reporter *r = (struct reporter *)((char *)c - offsetof(struct reporter, net));
    closed_one(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

static void call_cancel(struct call *k)
{
    if (k->pending) {
        call_unlink(k);
        call_free(k);
    } else if (k->inflight) {
        k->done = NULL; /* on_net_done frees it when the client cancels it */
    }
}

void report_close(struct reporter *r, report_close_cb cb, void *arg)
{
    r->closing = true;
    r->close_cb = cb;
    r->close_arg = arg;
    uv_timer_stop(&r->timer);
    while (r->envs) {
        struct renv *v = r->envs;
        while (v->head) {
            struct op *o = v->head;
            v->head = o->next;
            r->nops--;
            if (o->call)
                call_cancel(o->call);
            struct err e = {0};
            err_set(&e, PE_CANCELED, NULL, "report %s: canceled", v->env);
            report_cb ocb = o->cb;
            void *ctx = o->ctx;
            op_free(o);
            ocb(&e, ctx);
            err_release(&e);
        }
        v->tail = NULL;
        env_free(v);
    }
    if (r->exchange) {
        call_cancel(r->exchange);
        r->exchange = NULL;
    }
    while (r->pend_head) { /* nothing should be left; be sure */
        struct call *k = r->pend_head;
        call_unlink(k);
        call_free(k);
    }
    r->closes = 2;
    net_client_close(&r->net, on_net_closed);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

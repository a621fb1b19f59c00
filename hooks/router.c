/* router: route table, access checks and wake-on-request for the proxy (router.h). */
#include "hooks/router.h"

#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/net/http.h"
#include "core/net/proxy.h"
#include "core/routes.h"
#include "core/state.h"
#include "envs/project.h"

#include <mbedtls/base64.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ACTIVITY_FLUSH_MS 5000
#define WAKE_STALE_MS 30000

struct held {
    struct proxy_req *r;
    struct held *next;
};

/* One environment the router has seen. Kept until the router closes: the
 * proxy's log records point at it (proxy_req_set_tag). */
struct env_info {
    char *name;
    int kind;          /* enum env_kind; -1 when the project does not know the name */
    bool present;      /* has routes in the current table */
    bool asleep;
    char *status;      /* creating, up, failed, ... (NULL: no state) */
    char *error;       /* last_error */
    long long activity_ms;
    bool dirty;        /* activity_ms not written yet */
    long long wake_job; /* the wake job in flight, 0 = none */
    long long wake_started;
    struct held *held;
    size_t nheld;
    /* metrics */
    unsigned long long by_class[6], wakes, wakes_failed;
    long long wake_ms_total;
    struct env_info *next;
};

struct rentry {
    char *host, *path;
    size_t plen;
    struct env_info *env;
    struct proxy_upstream *ups;
    char **addrs;
    size_t nup;
    bool claim_only; /* claimed for an up in progress; no record yet */
};

struct router {
    uv_loop_t *loop;
    struct proxy *px;
    const struct project *proj;
    struct router_hooks h;
    struct rentry *tab;
    size_t n;
    struct env_info *envs;
    uv_timer_t flush;
    size_t bad_records;
    unsigned long long not_found, denied;
    unsigned long long hdr_hist[PROXY_LAT_BUCKETS], hdr_count;
    double hdr_sum_s;
    long long reloaded_ms; /* tm_mono_ms() of the last reload */
    void (*close_cb)(void *);
    void *close_arg;
    bool closing;
};

static void rlog(struct router *rt, const char *level, const char *msg, ...)
{
    if (!rt->h.log)
        return;
    const char *kv[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k || n + 3 > sizeof kv / sizeof *kv)
            break;
        kv[n++] = k;
        kv[n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    kv[n] = NULL;
    rt->h.log(rt->h.ctx, level, msg, kv);
}

static struct env_info *env_get(struct router *rt, const char *name)
{
    for (struct env_info *e = rt->envs; e; e = e->next)
        if (!strcmp(e->name, name))
            return e;
    struct env_info *e = xcalloc(1, sizeof *e);
    e->name = xstrdup(name);
    e->kind = -1;
    e->next = rt->envs;
    rt->envs = e;
    return e;
}

static void table_free(struct rentry *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i].host);
        free(t[i].path);
        for (size_t k = 0; k < t[i].nup; k++)
            free(t[i].addrs[k]);
        free(t[i].addrs);
        free(t[i].ups);
    }
    free(t);
}

static int cmp_entry(const void *a, const void *b)
{
    const struct rentry *x = a, *y = b;
    int c = strcmp(x->host, y->host);
    if (c)
        return c;
    return x->plen < y->plen ? 1 : x->plen > y->plen ? -1 : 0; /* longest prefix first */
}

void router_reload(struct router *rt)
{
    rt->reloaded_ms = tm_mono_ms();
    struct route *rs = NULL;
    size_t n = 0, bad = 0;
    struct err e = {0};
    route_load_all(rt->proj->state_dir, &rs, &n, &bad, &e);
    err_release(&e);
    if (bad && bad != rt->bad_records) {
        char nb[32];
        snprintf(nb, sizeof nb, "%zu", bad);
        rlog(rt, "warn", "router: route records that cannot be read are skipped", "count", nb,
             "dir", rt->proj->state_dir, NULL);
    }
    rt->bad_records = bad;
    for (struct env_info *ei = rt->envs; ei; ei = ei->next)
        ei->present = false;
    struct rentry *tab = xcalloc(n ? n : 1, sizeof *tab);
    for (size_t i = 0; i < n; i++) {
        struct route *r = &rs[i];
        struct rentry *t = &tab[i];
        t->host = r->host;
        t->path = r->path;
        r->host = r->path = NULL;
        t->plen = strcmp(t->path, "/") ? strlen(t->path) : 0;
        t->claim_only = r->resource == NULL;
        t->nup = r->nup;
        t->addrs = r->upstreams;
        r->upstreams = NULL;
        r->nup = 0;
        t->ups = xcalloc(t->nup ? t->nup : 1, sizeof *t->ups);
        for (size_t k = 0; k < t->nup; k++)
            t->ups[k].addr = t->addrs[k];
        struct env_info *ei = env_get(rt, r->env);
        t->env = ei;
        if (!ei->present) {
            ei->present = true;
            struct st_summary sm;
            struct err se = {0};
            free(ei->status);
            free(ei->error);
            ei->status = ei->error = NULL;
            ei->asleep = false;
            if (!state_summary(&sm, rt->proj->state_dir, ei->name, &se)) {
                ei->status = sm.status ? xstrdup(sm.status) : NULL;
                ei->asleep = sm.asleep_why != NULL;
                if (sm.activity_ms > ei->activity_ms && !ei->dirty)
                    ei->activity_ms = sm.activity_ms;
                st_summary_release(&sm);
            }
            err_release(&se);
            struct env_def d;
            if (!project_env(&d, rt->proj, ei->name, &se)) {
                ei->kind = (int)d.kind;
                env_def_release(&d);
            }
            err_release(&se);
        }
    }
    qsort(tab, n, sizeof *tab, cmp_entry);
    routes_free(rs, n);
    table_free(rt->tab, rt->n);
    rt->tab = tab;
    rt->n = n;
}

/* first_of: the index of host's first entry (the table is sorted by host),
 * or where it would be */
static size_t first_of(const struct router *rt, const char *host)
{
    size_t lo = 0, hi = rt->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(rt->tab[mid].host, host) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* the entry for host and path: the longest path prefix that matches */
static const struct rentry *lookup(const struct router *rt, const char *host, const char *path)
{
    for (size_t i = first_of(rt, host); i < rt->n && !strcmp(rt->tab[i].host, host); i++) {
        const struct rentry *t = &rt->tab[i];
        if (!t->plen || (!strncmp(path, t->path, t->plen) &&
                         (path[t->plen] == '/' || path[t->plen] == 0 || path[t->plen] == '?')))
            return t;
    }
    return NULL;
}

static bool host_known(const struct router *rt, const char *host)
{
    size_t i = first_of(rt, host);
    return i < rt->n && !strcmp(rt->tab[i].host, host);
}

static bool same_secret(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    unsigned char diff = alen != blen;
    for (size_t i = 0; i < alen && i < blen; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return !diff;
}

/* allowed: the request carries what the env's kind asks for (or it asks nothing) */
static bool allowed(const struct router *rt, const struct env_info *ei, struct proxy_req *r)
{
    if (ei->kind < 0 || ei->kind > 2)
        return true;
    const struct router_access *a = &rt->proj->router.access[ei->kind];
    if (!a->token && !a->basic)
        return true;
    const char *h = proxy_req_header(r, "Authorization");
    if (!h)
        return false;
    if (a->token && !strncasecmp(h, "Bearer ", 7))
        return same_secret(h + 7, strlen(h + 7), a->token);
    if (a->basic && !strncasecmp(h, "Basic ", 6)) {
        unsigned char dec[512];
        size_t n = 0;
        const char *b64 = h + 6;
        while (*b64 == ' ')
            b64++;
        if (mbedtls_base64_decode(dec, sizeof dec, &n, (const unsigned char *)b64, strlen(b64)))
            return false;
        return same_secret((const char *)dec, n, a->basic);
    }
    return false;
}

static void add_html(struct sb *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': sb_adds(b, "&lt;"); break;
        case '>': sb_adds(b, "&gt;"); break;
        case '&': sb_adds(b, "&amp;"); break;
        case '"': sb_adds(b, "&quot;"); break;
        case '\'': sb_adds(b, "&#39;"); break;
        default: sb_addc(b, *s);
        }
    }
}

static void page(struct proxy_req *r, int status, const char *title, const char *text,
                 const char *retry_after, const char *auth)
{
    struct sb b;
    sb_init(&b);
    sb_adds(&b, "<!doctype html><meta charset=\"utf-8\"><meta name=\"viewport\" "
                "content=\"width=device-width\"><title>");
    add_html(&b, title);
    sb_adds(&b, "</title><body style=\"font:16px system-ui,sans-serif;max-width:40rem;"
                "margin:3rem auto;padding:0 1rem\"><h1 style=\"font-size:1.3rem\">");
    add_html(&b, title);
    sb_adds(&b, "</h1><p>");
    add_html(&b, text);
    sb_adds(&b, "</p><p style=\"color:#666;font-size:.85rem\">prenv router</p></body>\n");
    struct http_hdr hdrs[3];
    size_t n = 0;
    hdrs[n++] = (struct http_hdr){"Cache-Control", "no-store"};
    if (retry_after)
        hdrs[n++] = (struct http_hdr){"Retry-After", retry_after};
    if (auth)
        hdrs[n++] = (struct http_hdr){"WWW-Authenticate", auth};
    proxy_reply(r, status, hdrs, n, "text/html; charset=utf-8", b.buf, b.len);
    sb_release(&b);
}

static void hold(struct router *rt, struct env_info *ei, struct proxy_req *r)
{
    struct held *h = xcalloc(1, sizeof *h);
    h->r = r;
    h->next = ei->held;
    ei->held = h;
    ei->nheld++;
    /* everyone waits on the same wake; one that has not ended long after
     * the hold (superseded in the queue by a destroy, say) is not waited on */
    if (ei->wake_job &&
        tm_mono_ms() - ei->wake_started < rt->proj->router.hold_ms + WAKE_STALE_MS)
        return;
    long long id = rt->h.wake ? rt->h.wake(rt->h.ctx, ei->name) : -1;
    if (id <= 0) {
        ei->wake_job = -1; /* router_job_ended takes it for the failed wake */
        ei->wake_started = tm_mono_ms();
        ei->wakes++;
        router_job_ended(rt, ei->name, -1, false, "the wake job could not be queued");
        return;
    }
    ei->wake_job = id;
    ei->wake_started = tm_mono_ms();
    ei->wakes++;
    char jid[32];
    snprintf(jid, sizeof jid, "%lld", id);
    rlog(rt, "info", "router: waking on request", "env", ei->name, "job", jid, "host",
         proxy_req_host(r), NULL);
}

/* stale: what the table says may be out of date (a route created or an env
 * brought up by the CLI a moment ago, before the state directory's change
 * reached us): read it again, at most every min_ms */
static bool stale(struct router *rt, long long min_ms)
{
    if (tm_mono_ms() - rt->reloaded_ms < min_ms)
        return false;
    router_reload(rt);
    return true;
}

static void decide(struct proxy_req *r, void *ctx)
{
    struct router *rt = ctx;
    const char *host = proxy_req_host(r), *path = proxy_req_path(r);
    const struct rentry *t = *host ? lookup(rt, host, path) : NULL;
    if ((!t && *host && stale(rt, 1000)) ||
        (t && (t->claim_only || !t->nup) && !t->env->asleep && stale(rt, 100)))
        t = lookup(rt, host, path);
    if (!t) {
        rt->not_found++;
        char *text = *host && host_known(rt, host)
                         ? xasprintf("Nothing is routed at %s%s on %s.", path[0] ? "" : "/", path,
                                     host)
                         : xasprintf("No environment answers at %s.", *host ? host : "(no Host)");
        page(r, 404, "Not found", text, NULL, NULL);
        free(text);
        return;
    }
    struct env_info *ei = t->env;
    if (!allowed(rt, ei, r)) {
        rt->denied++;
        const struct router_access *a = &rt->proj->router.access[ei->kind];
        page(r, 401, "Sign-in required",
             "This environment needs credentials: a bearer token or a user name and password "
             "from its owners.",
             NULL, a->basic ? "Basic realm=\"prenv\", charset=\"UTF-8\"" : "Bearer realm=\"prenv\"");
        return;
    }
    /* the router's credentials are the router's: an app (a preview runs a
     * pull request's code) never sees the token that opens every preview */
    if (ei->kind >= 0 && ei->kind <= 2 &&
        (rt->proj->router.access[ei->kind].token || rt->proj->router.access[ei->kind].basic))
        proxy_req_strip_auth(r);
    proxy_req_set_tag(r, ei);
    ei->activity_ms = tm_now_ms();
    ei->dirty = true;
    if (ei->asleep && !t->claim_only) {
        hold(rt, ei, r);
        return;
    }
    if (t->claim_only || !t->nup) {
        bool failed = ei->status && strstr(ei->status, "failed");
        if (failed) {
            char *text = xasprintf("%s failed to come up%s%s. Its owners can see why with "
                                   "`prenv env show %s`.",
                                   ei->name, ei->error ? ": " : "", ei->error ? ei->error : "",
                                   ei->name);
            page(r, 503, "Environment failed", text, "30", NULL);
            free(text);
        } else if (t->claim_only || (ei->status && !strcmp(ei->status, "creating"))) {
            char *text = xasprintf("%s is being created. This page will work in a moment.",
                                   ei->name);
            page(r, 503, "Starting", text, "5", NULL);
            free(text);
        } else {
            char *text = xasprintf("%s runs no replica of this service right now.", ei->name);
            page(r, 503, "No replica running", text, "10", NULL);
            free(text);
        }
        return;
    }
    proxy_forward(r, ei->name, t->ups, t->nup);
}

static void gone(struct proxy_req *r, void *ctx)
{
    struct router *rt = ctx;
    for (struct env_info *ei = rt->envs; ei; ei = ei->next)
        for (struct held **pp = &ei->held; *pp; pp = &(*pp)->next)
            if ((*pp)->r == r) {
                struct held *h = *pp;
                *pp = h->next;
                ei->nheld--;
                free(h);
                proxy_req_drop(r);
                return;
            }
    proxy_req_drop(r); /* not ours to hold: release it */
}

void router_job_ended(struct router *rt, const char *env, long long job, bool ok,
                      const char *error)
{
    router_reload(rt);
    struct env_info *ei = NULL;
    for (struct env_info *x = rt->envs; x; x = x->next)
        if (!strcmp(x->name, env))
            ei = x;
    if (!ei)
        return;
    bool was_wake = ei->wake_job && job == ei->wake_job;
    if (was_wake) {
        long long ms = tm_mono_ms() - ei->wake_started;
        ei->wake_ms_total += ms;
        if (!ok)
            ei->wakes_failed++;
        ei->wake_job = 0;
        char d[32];
        snprintf(d, sizeof d, "%lld", ms);
        rlog(rt, ok ? "info" : "error", ok ? "router: woken" : "router: wake failed", "env", env,
             "duration_ms", d, "error", ok ? NULL : error, NULL);
    }
    if (!ei->held)
        return;
    struct held *list = ei->held;
    ei->held = NULL;
    ei->nheld = 0;
    while (list) {
        struct held *h = list;
        list = h->next;
        struct proxy_req *r = h->r;
        free(h);
        if (proxy_req_gone(r)) {
            proxy_req_drop(r);
        } else if (was_wake && !ok) {
            char *text = xasprintf("%s could not be woken: %s. Try again in a moment; its "
                                   "owners can see why with `prenv env show %s`.",
                                   env, error ? error : "the wake failed", env);
            page(r, 503, "Could not wake the environment", text, "30", NULL);
            free(text);
        } else {
            decide(r, rt); /* up now: forwarded; still asleep: held for the next wake */
        }
    }
}

static void log_cb(const struct proxy_log *l, void *ctx)
{
    struct router *rt = ctx;
    struct env_info *ei = l->tag;
    int cls = l->status >= 100 && l->status < 600 ? l->status / 100 : 0;
    if (ei)
        ei->by_class[cls]++;
    if (l->upstream_header_us >= 0) {
        int i = 0;
        while (i < PROXY_LAT_BUCKETS - 1 && l->upstream_header_us > proxy_lat_bounds_us[i])
            i++;
        rt->hdr_hist[i]++;
        rt->hdr_count++;
        rt->hdr_sum_s += (double)l->upstream_header_us / 1e6;
    }
    char st[16], dur[32], in[32], out[32], held[32];
    snprintf(st, sizeof st, "%d", l->status);
    snprintf(dur, sizeof dur, "%.3f", (double)l->duration_us / 1000.0);
    snprintf(in, sizeof in, "%llu", (unsigned long long)l->bytes_in);
    snprintf(out, sizeof out, "%llu", (unsigned long long)l->bytes_out);
    snprintf(held, sizeof held, "%.1f", (double)l->held_us / 1000.0);
    rlog(rt, "info", "request", "env", ei ? ei->name : NULL, "host", l->host, "method", l->method,
         "target", l->target, "status", st, "duration_ms", dur, "bytes_in", in, "bytes_out", out,
         "upstream", l->upstream, "held_ms", l->held_us > 0 ? held : NULL, "complete",
         l->complete ? NULL : "no", "remote", l->remote, NULL);
}

static void flush_activity(struct router *rt)
{
    for (struct env_info *ei = rt->envs; ei; ei = ei->next) {
        if (!ei->dirty)
            continue;
        ei->dirty = false;
        struct err e = {0};
        if (state_activity_touch(rt->proj->state_dir, ei->name, ei->activity_ms, &e)) {
            rlog(rt, "warn", "router: cannot record activity", "env", ei->name, "error", e.msg,
                 NULL);
            err_release(&e);
        }
    }
}

static void flush_cb(uv_timer_t *t)
{
    flush_activity(t->data);
}

int router_start(struct router **out, uv_loop_t *loop, const char *addr,
                 const struct project *proj, const struct router_hooks *h, struct err *e)
{
    struct router *rt = xcalloc(1, sizeof *rt);
    rt->loop = loop;
    rt->proj = proj;
    rt->h = *h;
    router_reload(rt);
    struct proxy_opts o = {
        .decide = decide,
        .gone = gone,
        .log = log_cb,
        .ctx = rt,
    };
    o.lim.hold_timeout_ms = (unsigned)proj->router.hold_ms;
    o.lim.pool_max_idle = 64; /* as nginx's keepalive 64: a busy env reuses, not reconnects */
    int rc = proxy_start(&rt->px, loop, addr, &o, e);
    if (rc) {
        err_prefix(e, "router: ");
        table_free(rt->tab, rt->n);
        free(rt);
        *out = NULL;
        return rc;
    }
    uv_timer_init(loop, &rt->flush);
    rt->flush.data = rt;
    uv_timer_start(&rt->flush, flush_cb, ACTIVITY_FLUSH_MS, ACTIVITY_FLUSH_MS);
    *out = rt;
    return 0;
}

int router_port(const struct router *rt)
{
    return proxy_port(rt->px);
}

static void free_router(struct router *rt)
{
    table_free(rt->tab, rt->n);
    while (rt->envs) {
        struct env_info *ei = rt->envs;
        rt->envs = ei->next;
        free(ei->name);
        free(ei->status);
        free(ei->error);
        free(ei);
    }
    void (*cb)(void *) = rt->close_cb;
    void *arg = rt->close_arg;
    free(rt);
    if (cb)
        cb(arg);
}

static void timer_closed(uv_handle_t *h)
{
    free_router(h->data);
}

static void proxy_closed(struct proxy *p)
{
    (void)p;
}

/* proxy_close's callback has no argument of ours; serve runs one router */
static struct router *closing_rt;

static void proxy_closed_rt(struct proxy *p)
{
    proxy_closed(p);
    struct router *rt = closing_rt;
    closing_rt = NULL;
    flush_activity(rt);
    uv_close((uv_handle_t *)&rt->flush, timer_closed);
}

void router_close(struct router *rt, unsigned deadline_ms, void (*cb)(void *arg), void *arg)
{
    if (rt->closing)
        return;
    rt->closing = true;
    rt->close_cb = cb;
    rt->close_arg = arg;
    uv_timer_stop(&rt->flush);
    /* held requests: the environment will not be woken by this process */
    for (struct env_info *ei = rt->envs; ei; ei = ei->next) {
        while (ei->held) {
            struct held *h = ei->held;
            ei->held = h->next;
            page(h->r, 503, "Restarting", "prenv is restarting; try again in a moment.", "5",
                 NULL);
            free(h);
        }
        ei->nheld = 0;
    }
    closing_rt = rt;
    proxy_close(rt->px, deadline_ms, proxy_closed_rt);
}

static void metric_env(struct sb *b, const char *name, const char *env)
{
    sb_adds(b, name);
    sb_adds(b, "{env=\"");
    for (const char *p = env; *p; p++) { /* env names are slugs; escape anyway */
        if (*p == '"' || *p == '\\')
            sb_addc(b, '\\');
        sb_addc(b, *p);
    }
    sb_addc(b, '"');
}

void router_metrics(const struct router *rt, struct sb *b)
{
    const struct proxy_stats *s = proxy_stats(rt->px);
    sb_adds(b, "# HELP prenv_router_requests_total Requests through the router, by environment "
               "and status class.\n# TYPE prenv_router_requests_total counter\n");
    for (const struct env_info *ei = rt->envs; ei; ei = ei->next)
        for (int c = 1; c < 6; c++)
            if (ei->by_class[c]) {
                metric_env(b, "prenv_router_requests_total", ei->name);
                sb_addf(b, ",code=\"%dxx\"} %llu\n", c, ei->by_class[c]);
            }
    sb_addf(b, "# HELP prenv_router_not_found_total Requests for hosts no environment has.\n"
               "# TYPE prenv_router_not_found_total counter\nprenv_router_not_found_total %llu\n",
            rt->not_found);
    sb_addf(b, "# HELP prenv_router_denied_total Requests without the credentials their "
               "environment's kind asks for.\n# TYPE prenv_router_denied_total counter\n"
               "prenv_router_denied_total %llu\n",
            rt->denied);
    sb_adds(b, "# HELP prenv_router_wakes_total Wakes started by a request, and those that "
               "failed.\n# TYPE prenv_router_wakes_total counter\n");
    sb_adds(b, "# HELP prenv_router_wake_seconds_total Time from a request's wake to the end "
               "of its job.\n# TYPE prenv_router_wake_seconds_total counter\n");
    for (const struct env_info *ei = rt->envs; ei; ei = ei->next)
        if (ei->wakes) {
            metric_env(b, "prenv_router_wakes_total", ei->name);
            sb_addf(b, ",result=\"ok\"} %llu\n", ei->wakes - ei->wakes_failed - (ei->wake_job ? 1 : 0));
            metric_env(b, "prenv_router_wakes_total", ei->name);
            sb_addf(b, ",result=\"failed\"} %llu\n", ei->wakes_failed);
            metric_env(b, "prenv_router_wake_seconds_total", ei->name);
            sb_addf(b, "} %.3f\n", (double)ei->wake_ms_total / 1000.0);
        }
    sb_adds(b, "# HELP prenv_router_held Requests waiting for an environment to wake.\n"
               "# TYPE prenv_router_held gauge\n");
    sb_addf(b, "prenv_router_held %llu\n", (unsigned long long)s->held);
    sb_adds(b, "# HELP prenv_router_upstream_header_seconds From a request sent upstream to "
               "its response head.\n# TYPE prenv_router_upstream_header_seconds histogram\n");
    unsigned long long cum = 0;
    for (int i = 0; i < PROXY_LAT_BUCKETS - 1; i++) {
        cum += rt->hdr_hist[i];
        sb_addf(b, "prenv_router_upstream_header_seconds_bucket{le=\"%g\"} %llu\n",
                (double)proxy_lat_bounds_us[i] / 1e6, cum);
    }
    sb_addf(b, "prenv_router_upstream_header_seconds_bucket{le=\"+Inf\"} %llu\n", rt->hdr_count);
    sb_addf(b, "prenv_router_upstream_header_seconds_sum %.6f\n", rt->hdr_sum_s);
    sb_addf(b, "prenv_router_upstream_header_seconds_count %llu\n", rt->hdr_count);
    sb_addf(b, "# TYPE prenv_router_connections gauge\nprenv_router_connections %llu\n",
            (unsigned long long)s->conns_open);
    sb_addf(b, "# TYPE prenv_router_upstream_errors_total counter\n"
               "prenv_router_upstream_errors_total{kind=\"connect\"} %llu\n"
               "prenv_router_upstream_errors_total{kind=\"timeout\"} %llu\n"
               "prenv_router_upstream_errors_total{kind=\"abort\"} %llu\n",
            (unsigned long long)s->upstream_connect_errors,
            (unsigned long long)s->upstream_timeouts, (unsigned long long)s->upstream_aborts);
}

/* serve: the daemon: HTTP intake, durable queue, job runner, API, metrics. */
#include "hooks/serve.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/net/http.h"
#include "core/state.h"
#include "envs/cost.h"
#include "envs/op.h"
#include "envs/project.h"
#include "hooks/github.h"
#include "hooks/dashboard.h"
#include "hooks/queue.h"
#include "hooks/router.h"
#include "hooks/report.h"
#include "ttl/reap.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#define DELIVERY_KEEP_MS (14LL * 86400000) /* GitHub redelivers for 3 days (7 on GHES) */
#define JOB_DURATION_BUCKETS 10

enum intake_result { IN_QUEUED, IN_DUPLICATE, IN_STALE, IN_ERROR };

struct intake {
    struct http_req *req;
    char *hook_id, *delivery, *repo, *state, *env, *sha, *meta, *why;
    long long number, updated_ms;
    enum job_kind kind;
    /* results, filled by the flush */
    enum intake_result result;
    long long job_id;
    bool cancel_running;
    char *error;
    struct intake *next;
};

struct job_run {
    struct serve *sv;
    struct job job;
    pthread_t thread;
    struct op_result res;
    struct op_env *oe; /* while open; guarded by sv->mu */
    bool cancel;       /* asked before the env was open */
    long long t0;
    char *finish_error; /* recording its end failed */
    /* a refresh: how many resources drifted, and "name: what" of each
     * (filled by engine events, from any of the run's threads: drift_mu) */
    int drift;
    struct val *drifted;
    pthread_mutex_t drift_mu;
    struct job_run *next;
};

/* the last drift check of one stage (loop thread only) */
struct drift_rec {
    char *env;
    int drift;           /* gone or drifted resources */
    long long at_ms;     /* when the check ended */
};

struct serve {
    const char *router_listen; /* the router's address (router.listen or --router); NULL: off */
    struct router *rt;         /* NULL when off, or after it closed */
    uv_timer_t route_timer;    /* reloads the route table shortly after state changes */
    const struct serve_opts *o;
    uv_loop_t loop;
    struct http_server http;
    uv_signal_t sigint, sigterm;
    uv_async_t wake;
    uv_timer_t tick, stop_timer, reap_timer, sweep_timer, refresh_timer;
    struct drift_rec *drift; /* the stages' last drift checks */
    size_t ndrift, capdrift;
    uv_fs_event_t state_watch; /* the CLI changed an env: look again */
    bool watching;
    struct project *proj;
    struct gh_policy policy;
    FILE *log;
    pthread_mutex_t log_mu;
    /* log lines of one loop iteration, written at its end (log_flush) */
    struct sb logbuf;
    bool log_buffered;
    pthread_t loop_thread;
    uv_prepare_t log_flush;
    /* the queue: one SQLite handle, used by the loop thread and the flush
     * worker, never both at once (qmu) */
    struct queue *q;
    pthread_mutex_t qmu;
    /* intake waiting for its durable write; the batch being written */
    struct intake *batch, **batch_tail, *flushing;
    bool flush_busy;
    uv_work_t flush_work;
    /* jobs that ended, their end to be recorded by the next flush; those
     * the flush in progress records */
    struct job_run *ended, **ended_tail, *ending;
    bool sched_again; /* schedule() waited for the flush in progress */
    /* jobs */
    pthread_mutex_t mu;
    struct job_run *running, *finished;
    int nrunning;
    /* reporting to GitHub (NULL or disabled when not configured) */
    struct reporter *rep;
    long long *waiting_reported; /* jobs already reported as waiting (previews.max) */
    size_t nwaiting, capwaiting;
    /* shutdown */
    bool stopping, http_closed, stop_forced;
    int stop_signal;
    /* metrics */
    unsigned long long hooks_total[4];   /* queued, duplicate, stale, error */
    unsigned long long hooks_ignored, hooks_ping;
    unsigned long long hooks_rejected[5]; /* no_secret, content_type, signature, malformed, other */
    unsigned long long job_hist[2][JOB_DURATION_BUCKETS + 1]; /* up, destroy */
    double job_sum[2];
    unsigned long long job_count[2];
};

static const double job_buckets[JOB_DURATION_BUCKETS] = {1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};

/* ---- structured logging: key=value, one line per event ---- */

static void kv_value(struct sb *b, const char *v)
{
    bool quote = !*v;
    for (const char *p = v; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
            quote = true;
    if (!quote) {
        sb_adds(b, v);
        return;
    }
    sb_addc(b, '"');
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_addc(b, '\\');
        if ((unsigned char)*p < 0x20)
            sb_addc(b, ' ');
        else
            sb_addc(b, *p);
    }
    sb_addc(b, '"');
}

#define LOG_BUF_MAX (256 * 1024)

/* log_write: the buffered lines, under log_mu */
static void log_write(struct serve *sv)
{
    if (!sv->logbuf.len)
        return;
    fwrite(sv->logbuf.buf, 1, sv->logbuf.len, sv->log);
    fflush(sv->log);
    sb_reset(&sv->logbuf);
}

/* slog_line: write a finished line (see log_flush_cb) */
static void slog_line(struct serve *sv, struct sb *b)
{
    sb_addc(b, '\n');
    pthread_mutex_lock(&sv->log_mu);
    /* on the loop thread while it runs, lines wait for the end of the loop
     * iteration (log_flush_cb: one write for all of them); elsewhere they
     * are written at once, after those waiting */
    if (sv->log_buffered && pthread_equal(pthread_self(), sv->loop_thread) &&
        sv->logbuf.len + b->len <= LOG_BUF_MAX) {
        sb_add(&sv->logbuf, b->buf, b->len);
    } else {
        log_write(sv);
        fwrite(b->buf, 1, b->len, sv->log);
        fflush(sv->log);
    }
    pthread_mutex_unlock(&sv->log_mu);
}

static void slog_head(struct sb *b, const char *level, const char *msg)
{
    sb_adds(b, "ts=");
    tm_rfc3339(b, tm_now_ms());
    sb_adds(b, " level=");
    sb_adds(b, level);
    sb_adds(b, " msg=");
    kv_value(b, msg);
}

static void slog_pair(struct sb *b, const char *k, const char *v)
{
    if (!v)
        return;
    sb_addc(b, ' ');
    sb_adds(b, k);
    sb_addc(b, '=');
    kv_value(b, v);
}

/* slog: level, message, then NULL-terminated key, value pairs (a NULL
 * value leaves its key out) */
static void slog(struct serve *sv, const char *level, const char *msg, ...)
{
    struct sb b;
    sb_init(&b);
    slog_head(&b, level, msg);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        slog_pair(&b, k, va_arg(ap, const char *));
    }
    va_end(ap);
    slog_line(sv, &b);
    sb_release(&b);
}

/* log_flush_cb: the loop is about to wait for I/O: write what it logged */
static void log_flush_cb(uv_prepare_t *h)
{
    struct serve *sv = h->data;
    pthread_mutex_lock(&sv->log_mu);
    log_write(sv);
    pthread_mutex_unlock(&sv->log_mu);
}

/* ---- responses ---- */

static void respond_json(struct http_req *req, int status, const char *json)
{
    http_respond(req, status, "application/json", json, strlen(json));
}

static void respond_error(struct http_req *req, int status, const char *msg)
{
    struct sb b;
    sb_init(&b);
    sb_adds(&b, "{\"error\": ");
    sb_add_json_str(&b, msg);
    sb_adds(&b, "}\n");
    respond_json(req, status, b.buf);
    sb_release(&b);
}

/* ---- jobs ---- */

static void schedule(struct serve *sv);
static void start_flush(struct serve *sv);
static void reap_run(struct serve *sv);
static void cancel_running(struct serve *sv, const char *env, const char *why);

static void job_on_open(void *ctx, struct op_env *oe)
{
    struct job_run *jr = ctx;
    pthread_mutex_lock(&jr->sv->mu);
    jr->oe = oe;
    if (jr->cancel)
        oe->host.cancel = 1;
    pthread_mutex_unlock(&jr->sv->mu);
}

static void job_on_close(void *ctx, struct op_env *oe)
{
    struct job_run *jr = ctx;
    (void)oe;
    pthread_mutex_lock(&jr->sv->mu);
    jr->oe = NULL;
    pthread_mutex_unlock(&jr->sv->mu);
}

/* the PR's facts from the job's metadata */
static struct val *meta_pr(const char *meta)
{
    cJSON *j = meta ? cJSON_Parse(meta) : NULL;
    if (!j)
        return NULL;
    struct val *v = val_from_cjson(j);
    cJSON_Delete(j);
    struct val *pr = val_map(NULL);
    static const char *const keys[] = {"number", "sha", "branch", "author", "title", "repo", NULL};
    for (size_t i = 0; keys[i]; i++) {
        struct val *x = val_map_get(v, keys[i]);
        if (x)
            val_map_set(pr, keys[i], NULL, val_clone(x));
    }
    val_free(v);
    return pr;
}

/* ---- reporting back to the pull request ---- */

struct pr_ref {
    char *repo, *sha, *env;
    long long number;
};

static bool pr_ref_of(const struct job *j, struct pr_ref *out)
{
    memset(out, 0, sizeof *out);
    cJSON *m = j->meta ? cJSON_Parse(j->meta) : NULL;
    const cJSON *repo = cJSON_GetObjectItemCaseSensitive(m, "repo");
    const cJSON *num = cJSON_GetObjectItemCaseSensitive(m, "number");
    bool ok = cJSON_IsString(repo) && cJSON_IsNumber(num);
    if (ok) {
        out->repo = xstrdup(repo->valuestring);
        out->number = (long long)num->valuedouble;
        out->sha = j->sha ? xstrdup(j->sha) : NULL;
        out->env = xstrdup(j->env);
    }
    cJSON_Delete(m);
    return ok;
}

static void pr_ref_release(struct pr_ref *p)
{
    free(p->repo);
    free(p->sha);
    free(p->env);
}

struct report_ctx {
    struct serve *sv;
    char *env, *what;
};

static void report_done_cb(struct err *e, void *ctx)
{
    struct report_ctx *rc = ctx;
    if (e && e->code && e->code != PE_CANCELED)
        slog(rc->sv, "warn", "reporting to GitHub failed", "env", rc->env, "report", rc->what,
             "error", e->msg, NULL);
    free(rc->env);
    free(rc->what);
    free(rc);
}

static struct report_ctx *report_ctx_new(struct serve *sv, const char *env, const char *what)
{
    struct report_ctx *rc = xcalloc(1, sizeof *rc);
    rc->sv = sv;
    rc->env = xstrdup(env);
    rc->what = xstrdup(what);
    return rc;
}

static bool reporting(struct serve *sv)
{
    return sv->rep && report_enabled(sv->rep);
}

static void report_start_job(struct serve *sv, const struct job *j, const char *desc)
{
    struct pr_ref p;
    if (!reporting(sv) || j->kind != JOB_UP || !pr_ref_of(j, &p))
        return;
    struct report_pr pr = {p.repo, p.number, p.sha, p.env};
    struct report_ctx *rc = report_ctx_new(sv, j->env, "deploy start");
    struct err e = {0};
    if (report_deploy_start(sv->rep, &pr, desc, report_done_cb, rc, &e)) {
        report_done_cb(&e, rc);
        err_release(&e);
    }
    pr_ref_release(&p);
}

/* "name (type)" from the receipt lists */
static void split_item(const char *s, char **name, char **type)
{
    const char *sp = strstr(s, " (");
    if (!sp) {
        *name = xstrdup(s);
        *type = NULL;
        return;
    }
    *name = xstrndup(s, (size_t)(sp - s));
    const char *end = strchr(sp + 2, ')');
    const char *comma = strchr(sp + 2, ',');
    if (comma && (!end || comma < end))
        end = comma;
    *type = end ? xstrndup(sp + 2, (size_t)(end - sp - 2)) : xstrdup(sp + 2);
}

/* the reaper's reason, from a job's metadata; caller frees */
static char *meta_reason(const struct job *j)
{
    cJSON *m = j->meta ? cJSON_Parse(j->meta) : NULL;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "reason");
    char *s = cJSON_IsString(r) ? xstrdup(r->valuestring) : NULL;
    cJSON_Delete(m);
    return s;
}

static void report_end_job(struct serve *sv, const struct job *j, const struct op_result *res)
{
    struct pr_ref p;
    if (!reporting(sv) || !pr_ref_of(j, &p))
        return;
    struct report_pr pr = {p.repo, p.number, p.sha, p.env};
    struct err e = {0};
    if (j->kind == JOB_SLEEP || j->kind == JOB_WAKE || j->kind == JOB_EXTEND ||
        j->kind == JOB_REFRESH) {
        pr_ref_release(&p);
        return; /* the log says it; the PR needs no comment each night */
    }
    if (j->kind == JOB_WARN) {
        if (res->rc) {
            pr_ref_release(&p);
            return;
        }
        struct st_summary sm = {0};
        struct err se = {0};
        state_summary(&sm, sv->proj->state_dir, j->env, &se);
        err_release(&se);
        char *reason = meta_reason(j);
        /* the reason reads "expires at <time> (ttl)" */
        char *desc = xasprintf("Expires soon: %s; comment /prenv extend 24h to keep it",
                               reason && !strncmp(reason, "expires ", 8) ? reason + 8
                               : reason                                   ? reason
                                                                          : "");
        char *clip = report_clip(desc, REPORT_DESC_MAX);
        struct report_result rr = {.ok = true,
                                   .url = sm.url,
                                   .description = clip,
                                   .expires_ms = st_summary_expiry(&sm, NULL, 0)};
        struct report_pr wpr = {p.repo, p.number, sm.sha ? sm.sha : p.sha, p.env};
        struct report_ctx *rc = report_ctx_new(sv, j->env, "expiry warning");
        if (!wpr.sha || report_deploy_done(sv->rep, &wpr, &rr, report_done_cb, rc, &e)) {
            report_done_cb(&e, rc);
            err_release(&e);
        }
        free(clip);
        free(desc);
        free(reason);
        st_summary_release(&sm);
        pr_ref_release(&p);
        return;
    }
    if (j->kind == JOB_UP) {
        if (res->rc == PE_CANCELED) {
            pr_ref_release(&p);
            return; /* superseded: the newer job reports */
        }
        struct st_summary sm = {0};
        struct err se = {0};
        state_summary(&sm, sv->proj->state_dir, j->env, &se);
        err_release(&se);
        char *log_url = sv->proj->serve.public_url
                            ? xasprintf("%s/api/v1/envs/%s", sv->proj->serve.public_url, j->env)
                            : NULL;
        const char *url = res->outputs ? val_map_str(res->outputs, "url", NULL) : NULL;
        char *desc = res->rc ? report_clip(res->error ? res->error : "failed", REPORT_DESC_MAX)
                             : NULL;
        struct report_result rr = {
            .ok = res->rc == 0,
            .url = url,
            .log_url = log_url,
            .description = desc,
            .expires_ms = st_summary_expiry(&sm, NULL, 0),
        };
        struct report_ctx *rc = report_ctx_new(sv, j->env, "deploy done");
        if (report_deploy_done(sv->rep, &pr, &rr, report_done_cb, rc, &e)) {
            report_done_cb(&e, rc);
            err_release(&e);
        }
        free(desc);
        free(log_url);
        st_summary_release(&sm);
    } else {
        size_t nr = res->removed ? res->removed->u.list.n : 0,
               nl = res->left ? res->left->u.list.n : 0;
        struct report_item *items = xcalloc(nr + nl + 1, sizeof *items);
        char **strs = xcalloc(2 * (nr + nl) + 1, sizeof *strs);
        for (size_t i = 0; i < nr + nl; i++) {
            const struct val *v = i < nr ? res->removed->u.list.v[i] : res->left->u.list.v[i - nr];
            split_item(v->u.str.s, &strs[2 * i], &strs[2 * i + 1]);
            items[i] = (struct report_item){strs[2 * i], strs[2 * i + 1], i < nr,
                                            i < nr ? NULL : (res->error ? res->error : "left")};
        }
        char *reason = meta_reason(j);
        char *rdesc = reason ? xasprintf("Preview environment removed (%s)", reason) : NULL;
        char *rclip = rdesc ? report_clip(rdesc, REPORT_DESC_MAX) : NULL;
        struct report_receipt rec = {items, nr + nl, rclip};
        struct report_ctx *rc = report_ctx_new(sv, j->env, "teardown");
        if (report_teardown(sv->rep, &pr, &rec, report_done_cb, rc, &e)) {
            report_done_cb(&e, rc);
            err_release(&e);
        }
        for (size_t i = 0; i < 2 * (nr + nl); i++)
            free(strs[i]);
        free(strs);
        free(items);
        free(rclip);
        free(rdesc);
        free(reason);
    }
    pr_ref_release(&p);
}

/* a refresh job's engine events: collect what drifted */
static void refresh_event(void *ctx, const struct eng_event *ev)
{
    struct job_run *jr = ctx;
    if (ev->kind != EV_DRIFT || !ev->resource)
        return;
    pthread_mutex_lock(&jr->drift_mu);
    if (!jr->drifted)
        jr->drifted = val_list(NULL);
    struct val *m = val_map(NULL);
    val_map_set(m, "resource", NULL, val_str(ev->resource, NULL));
    val_map_set(m, "type", NULL, val_str(ev->type ? ev->type : "", NULL));
    val_map_set(m, "drift", NULL, val_str(ev->detail ? ev->detail : "drifted", NULL));
    val_list_push(jr->drifted, m);
    pthread_mutex_unlock(&jr->drift_mu);
}

static void *job_thread(void *arg)
{
    struct job_run *jr = arg;
    struct serve *sv = jr->sv;
    char *cmdline = xasprintf("prenv serve: %s %s (job %lld)", job_kind_name(jr->job.kind),
                              jr->job.env, jr->job.id);
    struct op_opts oo = {
        .project_dir = sv->proj->dir,
        .state_dir = sv->proj->state_dir,
        .command = cmdline,
        .lock_wait_ms = -1,
        .parallel = sv->o->parallel,
        .on_open = job_on_open,
        .on_close = job_on_close,
        .open_ctx = jr,
    };
    switch (jr->job.kind) {
    case JOB_UP: {
        struct val *pr = meta_pr(jr->job.meta);
        oo.sha = jr->job.sha;
        const char *author = pr ? val_map_str(pr, "author", NULL) : NULL;
        oo.owner = author;
        op_run_up(jr->job.env, &oo, pr, &jr->res);
        val_free(pr);
        break;
    }
    case JOB_DESTROY:
        op_run_destroy(jr->job.env, &oo, &jr->res);
        break;
    case JOB_SLEEP: {
        cJSON *m = jr->job.meta ? cJSON_Parse(jr->job.meta) : NULL;
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(m, "sleep");
        op_run_sleep(jr->job.env, cJSON_IsString(w) ? w->valuestring : "manual", &oo, &jr->res);
        cJSON_Delete(m);
        break;
    }
    case JOB_WAKE: {
        /* a wake from a request holds over the schedule for a while */
        cJSON *m = jr->job.meta ? cJSON_Parse(jr->job.meta) : NULL;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(m, "until_ms");
        op_run_wake(jr->job.env, cJSON_IsNumber(u) ? (long long)u->valuedouble : 0, &oo, &jr->res);
        cJSON_Delete(m);
        break;
    }
    case JOB_WARN:
        op_run_warned(jr->job.env, &oo, &jr->res);
        break;
    case JOB_REFRESH: {
        /* read-only: drift is counted and logged, the state stays as it is */
        struct err e = {0};
        struct op_env *oe = NULL;
        memset(&jr->res, 0, sizeof jr->res);
        oo.on_event = refresh_event;
        oo.ev_ctx = jr;
        long long t0 = tm_mono_ms();
        if (op_open(&oe, jr->job.env, OP_LOCK | OP_NEED_STATE | OP_NO_CONFIG, &oo, &e) ||
            op_refresh_read(oe, &jr->drift, &e)) {
            jr->res.rc = e.code ? e.code : PE_INTERNAL;
            jr->res.error = xstrdup(e.msg ? e.msg : "failed");
            err_release(&e);
        }
        jr->res.ms = tm_mono_ms() - t0;
        op_close(oe);
        break;
    }
    case JOB_EXTEND: {
        cJSON *m = jr->job.meta ? cJSON_Parse(jr->job.meta) : NULL;
        const cJSON *by = cJSON_GetObjectItemCaseSensitive(m, "by_ms");
        struct err e = {0};
        struct op_env *oe = NULL;
        memset(&jr->res, 0, sizeof jr->res);
        if (op_open(&oe, jr->job.env, OP_LOCK | OP_NEED_STATE | OP_NO_CONFIG, &oo, &e) ||
            op_extend(oe, cJSON_IsNumber(by) ? (long long)by->valuedouble : 0, 0, &e)) {
            jr->res.rc = e.code;
            jr->res.error = xstrdup(e.msg ? e.msg : "failed");
            err_release(&e);
        }
        op_close(oe);
        cJSON_Delete(m);
        break;
    }
    }
    free(cmdline);
    pthread_mutex_lock(&sv->mu);
    /* from running to finished */
    for (struct job_run **pp = &sv->running; *pp; pp = &(*pp)->next)
        if (*pp == jr) {
            *pp = jr->next;
            break;
        }
    jr->next = sv->finished;
    sv->finished = jr;
    pthread_mutex_unlock(&sv->mu);
    uv_async_send(&sv->wake);
    return NULL;
}

static const char *job_started(enum job_kind k)
{
    static const char *const s[JOB_KINDS] = {"bringing up",
                                              "destroying",
                                              "putting to sleep",
                                              "waking",
                                              "recording the expiry warning",
                                              "extending",
                                              "checking for drift"};
    return (unsigned)k < JOB_KINDS ? s[k] : "?";
}

static const char *job_ended(enum job_kind k, bool ok)
{
    static const char *const s[JOB_KINDS] = {
        "environment up",          "environment destroyed", "environment asleep", "environment awake",
        "expiry warning recorded", "expiry extended",       "drift checked"};
    static const char *const f[JOB_KINDS] = {"up failed",      "destroy failed", "sleep failed",
                                             "wake failed",    "warning failed", "extend failed",
                                             "drift check failed"};
    return (unsigned)k < JOB_KINDS ? (ok ? s[k] : f[k]) : "?";
}

static void job_observe(struct serve *sv, struct job_run *jr)
{
    if (jr->job.kind != JOB_UP && jr->job.kind != JOB_DESTROY)
        return;
    int k = jr->job.kind == JOB_UP ? 0 : 1;
    double secs = (double)(tm_mono_ms() - jr->t0) / 1000.0;
    sv->job_count[k]++;
    sv->job_sum[k] += secs;
    for (int i = 0; i < JOB_DURATION_BUCKETS; i++)
        if (secs <= job_buckets[i])
            sv->job_hist[k][i]++;
    sv->job_hist[k][JOB_DURATION_BUCKETS]++;
}

static void wake_cb(uv_async_t *h)
{
    struct serve *sv = h->data;
    pthread_mutex_lock(&sv->mu);
    struct job_run *done = sv->finished;
    sv->finished = NULL;
    pthread_mutex_unlock(&sv->mu);
    while (done) {
        struct job_run *jr = done;
        done = jr->next;
        pthread_join(jr->thread, NULL);
        job_observe(sv, jr);
        /* its end is written by the next flush, on the thread pool (no
         * commit waits for the disk on this thread); job_end follows */
        jr->next = NULL;
        *sv->ended_tail = jr;
        sv->ended_tail = &jr->next;
    }
    start_flush(sv);
}

/* ---- drift: the stages are read every serve.refresh_interval ---- */

static struct drift_rec *drift_find(struct serve *sv, const char *env)
{
    for (size_t i = 0; i < sv->ndrift; i++)
        if (!strcmp(sv->drift[i].env, env))
            return &sv->drift[i];
    return NULL;
}

/* a refresh job ended well: keep its count for /metrics and the API, and
 * log each drifted resource */
static void drift_record(struct serve *sv, struct job_run *jr)
{
    struct drift_rec *d = drift_find(sv, jr->job.env);
    if (!d) {
        XGROW(sv->drift, sv->capdrift, sv->ndrift + 1);
        d = &sv->drift[sv->ndrift++];
        d->env = xstrdup(jr->job.env);
    }
    d->drift = jr->drift;
    d->at_ms = tm_now_ms();
    for (size_t i = 0; jr->drifted && i < jr->drifted->u.list.n; i++) {
        const struct val *m = jr->drifted->u.list.v[i];
        slog(sv, "warn", "drift: a resource differs from the state", "env", jr->job.env,
             "resource", val_map_str(m, "resource", NULL), "type", val_map_str(m, "type", NULL),
             "drift", val_map_str(m, "drift", NULL), NULL);
    }
}

static long long push_job(struct serve *sv, const char *env, enum job_kind kind,
                          const char *reason, const char *repo, long long number,
                          const char *extra);

static void refresh_cb(uv_timer_t *t)
{
    struct serve *sv = t->data;
    if (sv->stopping)
        return;
    for (size_t i = 0; i < sv->proj->nstages; i++) {
        const char *env = sv->proj->stages[i].name;
        char *sp = state_path(sv->proj->state_dir, env);
        bool exists = fs_exists(sp);
        free(sp);
        struct drift_rec *d = drift_find(sv, env);
        if (exists) {
            push_job(sv, env, JOB_REFRESH, "drift check (serve.refresh_interval)", NULL, 0,
                     NULL);
        } else if (d) {
            /* destroyed since its last check: its numbers would lie */
            free(d->env);
            *d = sv->drift[--sv->ndrift];
        }
    }
}

/* job_end: a job's end is recorded (or could not be): log, report, free */
static void job_end(struct serve *sv, struct job_run *jr)
{
    sv->nrunning--;
    bool ok = jr->res.rc == 0;
    if (jr->finish_error)
        slog(sv, "error", "cannot record a job's end", "job_env", jr->job.env, "error",
             jr->finish_error, NULL);
    char id[32], ms[32];
    snprintf(id, sizeof id, "%lld", jr->job.id);
    snprintf(ms, sizeof ms, "%lld", jr->res.ms);
    if (ok)
        slog(sv, "info", job_ended(jr->job.kind, true), "env", jr->job.env, "job", id, "delivery",
             jr->job.delivery, "sha", jr->job.sha, "duration_ms", ms, NULL);
    else
        slog(sv, "error", job_ended(jr->job.kind, false), "env", jr->job.env, "job", id,
             "delivery", jr->job.delivery, "error", jr->res.error, "retry",
             jr->res.transient ? "yes" : "no", NULL);
    if (jr->job.kind == JOB_REFRESH && ok)
        drift_record(sv, jr);
    report_end_job(sv, &jr->job, &jr->res);
    if (sv->rt && jr->job.kind != JOB_REFRESH)
        router_job_ended(sv->rt, jr->job.env, jr->job.id, ok, jr->res.error);
    val_free(jr->drifted);
    pthread_mutex_destroy(&jr->drift_mu);
    op_result_release(&jr->res);
    job_release(&jr->job);
    free(jr->finish_error);
    free(jr);
}

static void tick_cb(uv_timer_t *t)
{
    schedule(t->data);
}

static void reap_run(struct serve *sv);

static void reap_cb(uv_timer_t *t)
{
    reap_run(t->data);
}

/* a state file changed (`prenv env extend`, `env up --ttl` from a shell, or
 * our own jobs): decide again within a second — sooner if already due */
static void route_reload_cb(uv_timer_t *t)
{
    struct serve *sv = t->data;
    if (sv->rt)
        router_reload(sv->rt);
}

static void state_changed(uv_fs_event_t *h, const char *file, int events, int status)
{
    (void)file;
    (void)events;
    (void)status;
    struct serve *sv = h->data;
    if (sv->stopping)
        return;
    if (uv_timer_get_due_in(&sv->reap_timer) > 1000 || !uv_is_active((uv_handle_t *)&sv->reap_timer))
        uv_timer_start(&sv->reap_timer, reap_cb, 1000, 0);
    if (sv->rt && !uv_is_active((uv_handle_t *)&sv->route_timer))
        uv_timer_start(&sv->route_timer, route_reload_cb, 200, 0);
}

/* queue a job from prenv itself (reaper, sweeper, PR comments) */
static long long push_job(struct serve *sv, const char *env, enum job_kind kind,
                          const char *reason, const char *repo, long long number,
                          const char *extra)
{
    struct sb m;
    sb_init(&m);
    sb_adds(&m, "{\"source\": \"prenv\", \"reason\": ");
    sb_add_json_str(&m, reason);
    if (repo) {
        sb_adds(&m, ", \"repo\": ");
        sb_add_json_str(&m, repo);
        sb_addf(&m, ", \"number\": %lld", number);
    }
    if (extra)
        sb_addf(&m, ", %s", extra);
    sb_addc(&m, '}');
    long long id = 0;
    bool cancel = false;
    struct err e = {0};
    pthread_mutex_lock(&sv->qmu);
    int rc = queue_push(sv->q, env, kind, NULL, m.buf, NULL, &id, &cancel, &e);
    pthread_mutex_unlock(&sv->qmu);
    if (rc) {
        slog(sv, "error", "cannot queue a job", "env", env, "error", e.msg, NULL);
        err_release(&e);
        id = -1;
    } else if (cancel) {
        cancel_running(sv, env, reason);
    }
    sb_release(&m);
    schedule(sv);
    return id;
}

/* ---- the PR sweeper: a close webhook that never arrived ---- */

struct sweep_ctx {
    struct serve *sv;
    char *env, *repo;
    long long number;
};

static void sweep_answer(int status, const char *body, size_t len, struct err *e, void *ctx)
{
    struct sweep_ctx *c = ctx;
    struct serve *sv = c->sv;
    char num[32];
    snprintf(num, sizeof num, "%lld", c->number);
    if (e && e->code) {
        if (e->code != PE_CANCELED)
            slog(sv, "warn", "sweeper: GitHub did not answer; nothing is destroyed", "env", c->env,
                 "pr", num, "error", e->msg, NULL);
    } else if (status == 404) {
        slog(sv, "warn",
             "sweeper: GitHub does not know this pull request (404: deleted, renamed, or no "
             "access); nothing is destroyed",
             "env", c->env, "pr", num, "repo", c->repo, NULL);
    } else if (status != 200) {
        slog(sv, "warn", "sweeper: unexpected answer; nothing is destroyed", "env", c->env, "pr",
             num, NULL);
    } else {
        /* only an explicit, well-formed "closed" for this very PR counts */
        cJSON *j = cJSON_ParseWithLength(body, len);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "state");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "number");
        bool closed = cJSON_IsString(st) && !strcmp(st->valuestring, "closed") &&
                      cJSON_IsNumber(n) && (long long)n->valuedouble == c->number;
        bool open = cJSON_IsString(st) && !strcmp(st->valuestring, "open");
        if (closed && !sv->stopping) {
            slog(sv, "info", "sweeper: the pull request is closed; destroying its preview", "env",
                 c->env, "pr", num, NULL);
            push_job(sv, c->env, JOB_DESTROY, "the pull request is closed (found by the sweeper)",
                     c->repo, c->number, NULL);
        } else if (!open) {
            slog(sv, "warn", "sweeper: an answer that does not look right; nothing is destroyed",
                 "env", c->env, "pr", num, NULL);
        }
        cJSON_Delete(j);
    }
    free(c->env);
    free(c->repo);
    free(c);
}

static void sweep_cb(uv_timer_t *t)
{
    struct serve *sv = t->data;
    if (sv->stopping || !reporting(sv))
        return;
    char **names = NULL;
    size_t n = 0;
    struct err e = {0};
    if (!state_list(&names, &n, sv->proj->state_dir, &e))
        for (size_t i = 0; i < n; i++) {
            struct st_summary s;
            struct err se = {0};
            if (state_summary(&s, sv->proj->state_dir, names[i], &se)) {
                err_release(&se);
                continue;
            }
            if (s.pr_repo && s.pr_number > 0 && s.status && strcmp(s.status, "destroying")) {
                struct sweep_ctx *c = xcalloc(1, sizeof *c);
                c->sv = sv;
                c->env = xstrdup(s.env);
                c->repo = xstrdup(s.pr_repo);
                c->number = s.pr_number;
                char *path = xasprintf("/repos/%s/pulls/%lld", s.pr_repo, s.pr_number);
                if (report_api(sv->rep, "GET", path, NULL, true, sweep_answer, c, &se)) {
                    free(c->env);
                    free(c->repo);
                    free(c);
                    err_release(&se);
                }
                free(path);
            }
            st_summary_release(&s);
        }
    err_release(&e);
    state_names_free(names, n);
}

/* ---- /prenv commands in PR comments ---- */

struct cmd_ctx_pr {
    struct serve *sv;
    char *repo, *login, *verb, *arg, *env;
    long long number, comment_id;
};

static void cmdpr_free(struct cmd_ctx_pr *c)
{
    free(c->repo);
    free(c->login);
    free(c->verb);
    free(c->arg);
    free(c->env);
    free(c);
}

static void ignore_answer(int status, const char *body, size_t len, struct err *e, void *ctx)
{
    (void)status;
    (void)body;
    (void)len;
    struct serve *sv = ctx;
    if (e && e->code && e->code != PE_CANCELED)
        slog(sv, "warn", "cannot answer a PR comment", "error", e->msg, NULL);
}

static void cmdpr_answer(struct cmd_ctx_pr *c, const char *reaction, const char *reply)
{
    struct err e = {0};
    char *path = xasprintf("/repos/%s/issues/comments/%lld/reactions", c->repo, c->comment_id);
    char *body = xasprintf("{\"content\": \"%s\"}", reaction);
    if (report_api(c->sv->rep, "POST", path, body, false, ignore_answer, c->sv, &e))
        err_release(&e);
    free(path);
    free(body);
    if (reply) {
        struct sb b;
        sb_init(&b);
        sb_adds(&b, "{\"body\": ");
        sb_add_json_str(&b, reply);
        sb_addc(&b, '}');
        path = xasprintf("/repos/%s/issues/%lld/comments", c->repo, c->number);
        if (report_api(c->sv->rep, "POST", path, b.buf, false, ignore_answer, c->sv, &e))
            err_release(&e);
        free(path);
        sb_release(&b);
    }
}

static void cmdpr_permission(int status, const char *body, size_t len, struct err *e, void *ctx)
{
    struct cmd_ctx_pr *c = ctx;
    struct serve *sv = c->sv;
    if ((e && e->code) || status != 200) {
        slog(sv, "warn", "PR command: cannot check the commenter's permission; ignored", "env",
             c->env, "login", c->login, "error", e && e->code ? e->msg : NULL, NULL);
        cmdpr_free(c);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "permission");
    bool allowed = cJSON_IsString(p) && (!strcmp(p->valuestring, "admin") ||
                                         !strcmp(p->valuestring, "maintain") ||
                                         !strcmp(p->valuestring, "write"));
    cJSON_Delete(j);
    if (!allowed) {
        slog(sv, "warn", "PR command refused: the commenter cannot write to the repository",
             "env", c->env, "login", c->login, "command", c->verb, NULL);
        char *r = xasprintf("prenv: `/prenv %s` needs write access to the repository.", c->verb);
        cmdpr_answer(c, "-1", r);
        free(r);
        cmdpr_free(c);
        return;
    }
    slog(sv, "info", "PR command", "env", c->env, "login", c->login, "command", c->verb, "arg",
         c->arg, NULL);
    char *reason = xasprintf("/prenv %s%s%s by %s", c->verb, c->arg ? " " : "",
                             c->arg ? c->arg : "", c->login);
    if (!strcmp(c->verb, "destroy"))
        push_job(sv, c->env, JOB_DESTROY, reason, c->repo, c->number, NULL);
    else if (!strcmp(c->verb, "sleep"))
        push_job(sv, c->env, JOB_SLEEP, reason, c->repo, c->number, "\"sleep\": \"manual\"");
    else if (!strcmp(c->verb, "wake"))
        push_job(sv, c->env, JOB_WAKE, reason, c->repo, c->number, NULL);
    else {
        long long ms = 0;
        const char *why = NULL;
        dur_parse(c->arg, &ms, &why);
        char *extra = xasprintf("\"by_ms\": %lld", ms);
        push_job(sv, c->env, JOB_EXTEND, reason, c->repo, c->number, extra);
        free(extra);
    }
    free(reason);
    cmdpr_answer(c, "+1", NULL);
    cmdpr_free(c);
}

/* an issue_comment delivery: `/prenv extend 24h|sleep|wake|destroy` on a PR */
static void on_pr_comment(struct serve *sv, struct http_req *req)
{
    cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(j, "action");
    const cJSON *issue = cJSON_GetObjectItemCaseSensitive(j, "issue");
    const cJSON *comment = cJSON_GetObjectItemCaseSensitive(j, "comment");
    const cJSON *repo = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "repository"), "full_name");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(comment, "body");
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(comment, "id");
    const cJSON *login = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(comment, "user"), "login");
    const cJSON *num = cJSON_GetObjectItemCaseSensitive(issue, "number");
    const char *why = NULL;
    if (!cJSON_IsString(action) || strcmp(action->valuestring, "created") != 0)
        why = "only new comments carry commands";
    else if (!cJSON_GetObjectItemCaseSensitive(issue, "pull_request"))
        why = "not a pull request";
    else if (!cJSON_IsString(body) || strncmp(body->valuestring, "/prenv ", 7) != 0)
        why = "no /prenv command";
    else if (!cJSON_IsString(repo) || !cJSON_IsNumber(num) || !cJSON_IsNumber(cid) ||
             !cJSON_IsString(login))
        why = "the comment lacks repository, number, id or author";
    else if (!reporting(sv))
        why = "PR commands need GitHub credentials (PRENV_GITHUB_TOKEN or an App)";
    char verb[16] = "", arg[32] = "";
    if (!why) {
        /* the command is the first line: verb and at most one argument */
        const char *p = body->valuestring + 7;
        size_t vl = strcspn(p, " \r\n");
        if (vl && vl < sizeof verb)
            memcpy(verb, p, vl);
        p += vl;
        while (*p == ' ')
            p++;
        size_t al = strcspn(p, " \r\n");
        if (al && al < sizeof arg)
            memcpy(arg, p, al);
        long long ms;
        const char *dwhy;
        if (strcmp(verb, "extend") && strcmp(verb, "sleep") && strcmp(verb, "wake") &&
            strcmp(verb, "destroy"))
            why = "unknown /prenv command (extend DUR, sleep, wake, destroy)";
        else if (!strcmp(verb, "extend") && (!*arg || !dur_parse(arg, &ms, &dwhy)))
            why = "/prenv extend needs a duration such as 24h";
    }
    if (why) {
        sv->hooks_ignored++;
        struct sb b;
        sb_init(&b);
        sb_adds(&b, "{\"result\": \"ignored\", \"reason\": ");
        sb_add_json_str(&b, why);
        sb_adds(&b, "}\n");
        respond_json(req, 202, b.buf);
        sb_release(&b);
        cJSON_Delete(j);
        return;
    }
    struct cmd_ctx_pr *c = xcalloc(1, sizeof *c);
    c->sv = sv;
    c->repo = xstrdup(repo->valuestring);
    c->login = xstrdup(login->valuestring);
    c->verb = xstrdup(verb);
    c->arg = *arg ? xstrdup(arg) : NULL;
    c->number = (long long)num->valuedouble;
    c->comment_id = (long long)cid->valuedouble;
    c->env = project_preview_name(sv->proj, c->number);
    cJSON_Delete(j);
    /* the commenter must be able to write to the repository */
    char *enc = xasprintf("/repos/%s/collaborators/%s/permission", c->repo, c->login);
    struct err e = {0};
    bool safe = str_is_ident(c->login) || strspn(c->login, "abcdefghijklmnopqrstuvwxyz"
                                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") ==
                                              strlen(c->login);
    if (!safe || report_api(sv->rep, "GET", enc, NULL, false, cmdpr_permission, c, &e)) {
        err_release(&e);
        cmdpr_free(c);
        respond_error(req, 400, "a login GitHub would not send");
        free(enc);
        return;
    }
    free(enc);
    respond_json(req, 202, "{\"result\": \"command received\"}\n");
}

/* the reaper: decide for every env now, queue what is due (behind anything
 * else for that env), and sleep until the next event — no polling */
static void reap_run(struct serve *sv)
{
    if (sv->stopping)
        return;
    long long now = tm_now_ms();
    struct reap_plan plan;
    struct err e = {0};
    if (reap_plan(&plan, sv->proj, now, &e)) {
        slog(sv, "error", "the reaper cannot read the environments", "error", e.msg, NULL);
        err_release(&e);
        uv_timer_start(&sv->reap_timer, reap_cb, 60000, 0);
        return;
    }
    bool queued = false;
    for (size_t i = 0; i < plan.n; i++) {
        const struct reap_item *it = &plan.items[i];
        bool active = false;
        pthread_mutex_lock(&sv->qmu);
        queue_active(sv->q, it->env, &active, &e);
        pthread_mutex_unlock(&sv->qmu);
        err_release(&e);
        if (active)
            continue; /* its jobs run first; the reaper looks again after them */
        struct sb m;
        sb_init(&m);
        sb_adds(&m, "{\"source\": \"reaper\", \"reason\": ");
        sb_add_json_str(&m, it->why);
        if (it->sleep_why) {
            sb_adds(&m, ", \"sleep\": ");
            sb_add_json_str(&m, it->sleep_why);
        }
        if (it->repo) {
            sb_adds(&m, ", \"repo\": ");
            sb_add_json_str(&m, it->repo);
            sb_addf(&m, ", \"number\": %lld", it->number);
        }
        sb_addc(&m, '}');
        static const enum job_kind kinds[] = {JOB_DESTROY, JOB_WARN, JOB_SLEEP, JOB_WAKE};
        long long id = 0;
        bool cancel = false;
        pthread_mutex_lock(&sv->qmu);
        int rc = queue_push(sv->q, it->env, kinds[it->action], NULL, m.buf, NULL, &id, &cancel, &e);
        pthread_mutex_unlock(&sv->qmu);
        sb_release(&m);
        if (rc) {
            slog(sv, "error", "the reaper cannot queue a job", "env", it->env, "error", e.msg, NULL);
            err_release(&e);
            continue;
        }
        slog(sv, it->action == REAP_WARN ? "warn" : "info",
             it->action == REAP_DESTROY ? "expired: destroying"
             : it->action == REAP_WARN  ? "expires soon"
             : it->action == REAP_SLEEP ? "going to sleep"
                                        : "waking up",
             "env", it->env, "reason", it->why, NULL);
        queued = true;
    }
    long long next = plan.next_ms;
    reap_plan_release(&plan);
    if (queued)
        schedule(sv);
    /* wake at the next event; look again within the hour whatever happens
     * (the wall clock may have been set, or the machine suspended) */
    uv_update_time(&sv->loop);
    now = tm_now_ms();
    long long wait = next == LLONG_MAX ? 3600000 : next - now;
    if (wait < 0)
        wait = 0;
    if (wait > 3600000)
        wait = 3600000;
    uv_timer_start(&sv->reap_timer, reap_cb, (uint64_t)wait, 0);
}

/* previews over previews.max wait in the queue */
static bool over_preview_cap(struct serve *sv, const struct job *j)
{
    int max = sv->proj->pp.max;
    if (!max || j->kind != JOB_UP)
        return false;
    struct env_def d;
    struct err e = {0};
    if (project_env(&d, sv->proj, j->env, &e)) {
        err_release(&e);
        return false;
    }
    bool preview = d.kind == ENV_PREVIEW;
    env_def_release(&d);
    if (!preview)
        return false;
    char *p = state_path(sv->proj->state_dir, j->env);
    bool exists = access(p, F_OK) == 0;
    free(p);
    if (exists)
        return false;
    char **names = NULL;
    size_t n = 0;
    int count = 0;
    if (!state_list(&names, &n, sv->proj->state_dir, &e))
        for (size_t i = 0; i < n; i++) {
            struct env_def dd;
            struct err de = {0};
            if (!project_env(&dd, sv->proj, names[i], &de)) {
                if (dd.kind == ENV_PREVIEW)
                    count++;
                env_def_release(&dd);
            }
            err_release(&de);
        }
    err_release(&e);
    state_names_free(names, n);
    return count >= max;
}

static void schedule(struct serve *sv)
{
    if (sv->stopping)
        return;
    if (sv->flush_busy) {
        /* the thread pool is writing the queue: flush_done_cb comes back
         * here, rather than this thread waiting for the lock */
        sv->sched_again = true;
        return;
    }
    sv->sched_again = false;
    while (sv->nrunning < sv->proj->serve.concurrency) {
        struct job j;
        bool got = false;
        struct err e = {0};
        pthread_mutex_lock(&sv->qmu);
        int rc = queue_claim(sv->q, sv->proj->serve.concurrency, &j, &got, &e);
        if (!rc && got && over_preview_cap(sv, &j)) {
            /* back into the queue, without counting an attempt (relaxed, as
             * the claim: a restart would requeue it all the same) */
            queue_relaxed(sv->q, true, &e);
            queue_finish(sv->q, j.id, false, true, "waiting: previews.max reached", 1000000, &e);
            queue_relaxed(sv->q, false, &e);
            pthread_mutex_unlock(&sv->qmu);
            err_release(&e);
            bool told = false;
            for (size_t k = 0; k < sv->nwaiting; k++)
                told |= sv->waiting_reported[k] == j.id;
            if (!told) {
                slog(sv, "info", "preview waits: previews.max reached", "env", j.env, NULL);
                char *d = xasprintf("Waiting: %d previews are running (previews.max)",
                                    sv->proj->pp.max);
                report_start_job(sv, &j, d);
                free(d);
                XGROW(sv->waiting_reported, sv->capwaiting, sv->nwaiting + 1);
                sv->waiting_reported[sv->nwaiting++] = j.id;
            }
            job_release(&j);
            break;
        }
        pthread_mutex_unlock(&sv->qmu);
        if (rc) {
            slog(sv, "error", "cannot read the job queue", "error", e.msg, NULL);
            err_release(&e);
            break;
        }
        if (!got)
            break;
        struct job_run *jr = xcalloc(1, sizeof *jr);
        jr->sv = sv;
        jr->job = j;
        jr->t0 = tm_mono_ms();
        pthread_mutex_init(&jr->drift_mu, NULL);
        pthread_mutex_lock(&sv->mu);
        jr->next = sv->running;
        sv->running = jr;
        pthread_mutex_unlock(&sv->mu);
        sv->nrunning++;
        char id[32];
        snprintf(id, sizeof id, "%lld", j.id);
        char *why = meta_reason(&j);
        slog(sv, "info", job_started(j.kind), "env", j.env, "job", id, "delivery", j.delivery,
             "sha", j.sha, "reason", why, NULL);
        free(why);
        report_start_job(sv, &jr->job, NULL);
        if (pthread_create(&jr->thread, NULL, job_thread, jr) != 0) {
            pthread_mutex_lock(&sv->mu);
            sv->running = jr->next;
            pthread_mutex_unlock(&sv->mu);
            sv->nrunning--;
            pthread_mutex_lock(&sv->qmu);
            queue_finish(sv->q, j.id, false, true, "cannot start a thread", 1000000, &e);
            pthread_mutex_unlock(&sv->qmu);
            err_release(&e);
            job_release(&jr->job);
            pthread_mutex_destroy(&jr->drift_mu);
            free(jr);
            break;
        }
    }
    /* wake again when a retry comes due */
    long long due = 0;
    struct err e = {0};
    pthread_mutex_lock(&sv->qmu);
    queue_next_due(sv->q, &due, &e);
    pthread_mutex_unlock(&sv->qmu);
    err_release(&e);
    long long wait = due ? due - tm_now_ms() : 60000;
    if (wait < 50)
        wait = 50;
    if (wait > 60000)
        wait = 60000;
    uv_timer_start(&sv->tick, tick_cb, (uint64_t)wait, 0);
}

/* a newer intent asks a running job of env to stop at its next boundary */
static void cancel_running(struct serve *sv, const char *env, const char *why)
{
    pthread_mutex_lock(&sv->mu);
    for (struct job_run *jr = sv->running; jr; jr = jr->next)
        if (!strcmp(jr->job.env, env)) {
            jr->cancel = true;
            if (jr->oe)
                jr->oe->host.cancel = 1;
            struct err e = {0};
            pthread_mutex_lock(&sv->qmu);
            queue_cancel(sv->q, jr->job.id, why, &e);
            pthread_mutex_unlock(&sv->qmu);
            err_release(&e);
        }
    pthread_mutex_unlock(&sv->mu);
    slog(sv, "info", "canceling the running job", "env", env, "reason", why, NULL);
}

/* ---- intake: deliveries become durable jobs, many per transaction ---- */

static void intake_free(struct intake *in)
{
    free(in->hook_id);
    free(in->delivery);
    free(in->repo);
    free(in->state);
    free(in->env);
    free(in->sha);
    free(in->meta);
    free(in->why);
    free(in->error);
    free(in);
}

static void flush_work_cb(uv_work_t *w)
{
    struct serve *sv = w->data;
    struct err e = {0};
    pthread_mutex_lock(&sv->qmu);
    /* the ends of jobs, each in its own transaction as before */
    for (struct job_run *jr = sv->ending; jr; jr = jr->next) {
        if (queue_finish(sv->q, jr->job.id, jr->res.rc == 0, jr->res.transient, jr->res.error,
                         sv->proj->serve.max_attempts, &e))
            jr->finish_error = xstrdup(e.msg ? e.msg : "queue error");
        err_release(&e);
    }
    if (!sv->flushing) {
        pthread_mutex_unlock(&sv->qmu);
        return;
    }
    int rc = queue_batch_begin(sv->q, &e);
    for (struct intake *in = sv->flushing; !rc && in; in = in->next) {
        if (in->delivery) {
            bool dup = false;
            if ((rc = queue_seen(sv->q, in->hook_id, in->delivery, DELIVERY_KEEP_MS, &dup, &e)))
                break;
            if (dup) {
                in->result = IN_DUPLICATE;
                continue;
            }
        }
        if (in->repo && in->updated_ms) {
            bool newer = true;
            if ((rc = queue_pr_newer(sv->q, in->repo, in->number, in->updated_ms, in->state,
                                     &newer, &e)))
                break;
            if (!newer) {
                in->result = IN_STALE;
                continue;
            }
        }
        if ((rc = queue_push(sv->q, in->env, in->kind, in->sha, in->meta, in->delivery,
                             &in->job_id, &in->cancel_running, &e)))
            break;
        in->result = IN_QUEUED;
    }
    if (!rc)
        rc = queue_batch_commit(sv->q, &e);
    else
        queue_batch_rollback(sv->q);
    pthread_mutex_unlock(&sv->qmu);
    if (rc)
        for (struct intake *in = sv->flushing; in; in = in->next) {
            in->result = IN_ERROR;
            in->error = xstrdup(e.msg ? e.msg : "queue error");
        }
    err_release(&e);
}

static void start_flush(struct serve *sv);

static void flush_done_cb(uv_work_t *w, int status)
{
    struct serve *sv = w->data;
    (void)status;
    struct intake *list = sv->flushing;
    struct job_run *ended = sv->ending;
    sv->flushing = NULL;
    sv->ending = NULL;
    sv->flush_busy = false;
    bool queued = false;
    while (list) {
        struct intake *in = list;
        list = in->next;
        sv->hooks_total[in->result]++;
        struct sb b;
        sb_init(&b);
        char id[32];
        snprintf(id, sizeof id, "%lld", in->job_id);
        switch (in->result) {
        case IN_QUEUED:
            sb_addf(&b, "{\"result\": \"queued\", \"job\": %lld, \"env\": ", in->job_id);
            sb_add_json_str(&b, in->env);
            sb_addf(&b, ", \"intent\": \"%s\"}\n", job_kind_name(in->kind));
            slog(sv, "info", "delivery queued", "delivery", in->delivery, "env", in->env,
                 "intent", job_kind_name(in->kind), "job", id, "reason", in->why, NULL);
            if (in->cancel_running)
                cancel_running(sv, in->env, "superseded by a close");
            queued = true;
            respond_json(in->req, 202, b.buf);
            break;
        case IN_DUPLICATE:
            slog(sv, "info", "duplicate delivery ignored", "delivery", in->delivery, "env", in->env,
                 NULL);
            respond_json(in->req, 202, "{\"result\": \"duplicate\"}\n");
            break;
        case IN_STALE:
            slog(sv, "info", "out-of-order delivery ignored: a newer event was seen", "delivery",
                 in->delivery, "env", in->env, NULL);
            respond_json(in->req, 202, "{\"result\": \"stale\"}\n");
            break;
        case IN_ERROR:
            slog(sv, "error", "cannot queue a delivery", "delivery", in->delivery, "error",
                 in->error, NULL);
            respond_error(in->req, 503, "the job queue cannot be written; redeliver later");
            break;
        }
        sb_release(&b);
        intake_free(in);
    }
    bool any_ended = ended != NULL;
    while (ended) {
        struct job_run *jr = ended;
        ended = jr->next;
        job_end(sv, jr);
    }
    if (any_ended) {
        schedule(sv);
        reap_run(sv); /* envs changed: the next event may be sooner */
    } else if (sv->sched_again || (queued && sv->nrunning < sv->proj->serve.concurrency)) {
        schedule(sv); /* with every slot busy, a job's end will look */
    }
    if (sv->batch || sv->ended)
        start_flush(sv);
}

static void start_flush(struct serve *sv)
{
    if (sv->flush_busy || (!sv->batch && !sv->ended))
        return;
    sv->flushing = sv->batch;
    sv->batch = NULL;
    sv->batch_tail = &sv->batch;
    sv->ending = sv->ended;
    sv->ended = NULL;
    sv->ended_tail = &sv->ended;
    sv->flush_busy = true;
    sv->flush_work.data = sv;
    if (uv_queue_work(&sv->loop, &sv->flush_work, flush_work_cb, flush_done_cb) != 0) {
        sv->flush_busy = false;
        for (struct intake *in = sv->flushing; in; in = in->next)
            in->result = IN_ERROR;
        for (struct job_run *jr = sv->ending; jr; jr = jr->next)
            jr->finish_error = xstrdup("cannot start a worker thread");
        flush_done_cb(&sv->flush_work, 0);
    }
}

static void enqueue_intake(struct serve *sv, struct intake *in)
{
    in->next = NULL;
    *sv->batch_tail = in;
    sv->batch_tail = &in->next;
    start_flush(sv);
}

static void reject(struct serve *sv, struct http_req *req, int idx, int status, const char *why,
                   const char *delivery)
{
    sv->hooks_rejected[idx]++;
    slog(sv, "warn", "delivery rejected", "delivery", delivery ? delivery : "-", "reason", why,
         "remote", req->remote, NULL);
    respond_error(req, status, why);
}

static void on_webhook(struct serve *sv, struct http_req *req)
{
    const char *delivery = http_req_header(req, "X-GitHub-Delivery");
    const char *secret = sv->proj->gh.webhook_secret;
    if (!secret || !*secret) {
        reject(sv, req, 0, 503,
               "no webhook secret is configured: set PRENV_GITHUB_WEBHOOK_SECRET (or "
               "github.webhook_secret) and the same secret on the GitHub hook",
               delivery);
        return;
    }
    const char *ct = http_req_header(req, "Content-Type");
    if (ct && !strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
        reject(sv, req, 1, 415,
               "this hook sends form-encoded payloads: set its content type to application/json "
               "in the GitHub hook settings",
               delivery);
        return;
    }
    if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
        reject(sv, req, 1, 415, "Content-Type must be application/json", delivery);
        return;
    }
    /* the signature is checked before anything is parsed */
    struct err e = {0};
    if (gh_verify(secret, http_req_header(req, "X-Hub-Signature-256"), req->body, req->body_len,
                  &e)) {
        sv->hooks_rejected[2]++;
        slog(sv, "warn", "delivery rejected: bad signature", "delivery",
             delivery ? delivery : "-", "reason", e.msg, "remote", req->remote, NULL);
        respond_error(req, 401, e.msg);
        err_release(&e);
        return;
    }
    const char *event = http_req_header(req, "X-GitHub-Event");
    if (event && !strcmp(event, "issue_comment")) {
        on_pr_comment(sv, req);
        return;
    }
    struct gh_event ev;
    if (gh_parse(&ev, http_req_header(req, "X-GitHub-Event"), delivery,
                 http_req_header(req, "X-GitHub-Hook-ID"), req->body, req->body_len, &e)) {
        gh_event_release(&ev);
        sv->hooks_rejected[3]++;
        slog(sv, "warn", "delivery rejected: malformed", "delivery", delivery ? delivery : "-",
             "reason", e.msg, NULL);
        respond_error(req, 400, e.msg);
        err_release(&e);
        return;
    }
    const char *why = NULL;
    enum gh_verdict v = gh_decide(&ev, &sv->policy, &why);
    if (v == GH_PING) {
        sv->hooks_ping++;
        slog(sv, "info", "ping", "delivery", ev.delivery, "hook", ev.hook_id, NULL);
        respond_json(req, 200, "{\"result\": \"pong\"}\n");
        gh_event_release(&ev);
        return;
    }
    if (v == GH_IGNORE) {
        sv->hooks_ignored++;
        slog(sv, "info", "delivery ignored", "delivery", ev.delivery, "event", ev.event, "action",
             ev.action, "reason", why, NULL);
        struct sb b;
        sb_init(&b);
        sb_adds(&b, "{\"result\": \"ignored\", \"reason\": ");
        sb_add_json_str(&b, why ? why : "");
        sb_adds(&b, "}\n");
        respond_json(req, 202, b.buf);
        sb_release(&b);
        gh_event_release(&ev);
        return;
    }
    struct intake *in = xcalloc(1, sizeof *in);
    in->req = req;
    in->hook_id = ev.hook_id ? xstrdup(ev.hook_id) : NULL;
    in->delivery = xstrdup(ev.delivery);
    in->repo = ev.repo ? xstrdup(ev.repo) : NULL;
    in->state = ev.state ? xstrdup(ev.state) : NULL;
    in->number = ev.number;
    in->updated_ms = ev.updated_ms;
    in->env = project_preview_name(sv->proj, ev.number);
    in->kind = v == GH_UP ? JOB_UP : JOB_DESTROY;
    in->sha = v == GH_UP && ev.sha ? xstrdup(ev.sha) : NULL;
    in->meta = gh_meta_json(&ev, ev.fork && sv->policy.forks == GH_FORKS_ALLOW);
    in->why = xstrdup(why ? why : ""); /* why may point into ev */
    gh_event_release(&ev);
    enqueue_intake(sv, in);
}

/* ---- the REST API ---- */

static bool authorized(struct serve *sv, struct http_req *req)
{
    const char *tok = sv->proj->serve.api_token;
    if (!tok || !*tok) {
        respond_error(req, 403,
                      "the API's mutating calls are off: set PRENV_API_TOKEN (or serve.api_token)");
        return false;
    }
    const char *h = http_req_header(req, "Authorization");
    bool ok = false;
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        const char *given = h + 7;
        size_t a = strlen(given), b = strlen(tok);
        unsigned char diff = a != b;
        for (size_t i = 0; i < a && i < b; i++)
            diff |= (unsigned char)(given[i] ^ tok[i]);
        ok = !diff;
    }
    if (!ok)
        http_respond_hdrs(req, 401, "application/json",
                          (const struct http_hdr[]){{"WWW-Authenticate", "Bearer"}}, 1,
                          "{\"error\": \"a valid bearer token is required\"}\n", 44);
    return ok;
}

/* query_str: the raw value of key= in a query string (no percent-decoding:
 * tag names and durations need none); caller frees; NULL when absent */
static char *query_str(const char *query, const char *key)
{
    size_t kl = strlen(key);
    for (const char *q = query; q && *q;) {
        const char *amp = strchr(q, '&');
        if (!strncmp(q, key, kl) && q[kl] == '=')
            return amp ? xstrndup(q + kl + 1, (size_t)(amp - q - kl - 1)) : xstrdup(q + kl + 1);
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* pct_decode: %XX escapes in place (an RFC 3339 time's ':' and '+' arrive
 * encoded from browsers); a malformed escape is left as it is */
static void pct_decode(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
            char hex[3] = {r[1], r[2], 0};
            *w++ = (char)strtol(hex, NULL, 16);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
}

/* GET /api/v1/cost?by=TAG&since=DUR&until=TIME: `prenv cost --json`
 * (docs/cost.md); the dashboard's cost columns */
static void api_cost(struct serve *sv, struct http_req *req)
{
    char *by = query_str(req->query, "by"), *since = query_str(req->query, "since");
    char *until = query_str(req->query, "until");
    long long to = tm_now_ms(), from = 0;
    const char *why = NULL;
    struct cost_row *rows = NULL;
    size_t n = 0;
    struct err e = {0};
    if (until)
        pct_decode(until);
    if (until && !tm_parse_rfc3339(until, &to)) {
        char *msg = xasprintf("until: expects an RFC 3339 time such as 2026-11-01T00:00:00Z, "
                              "not '%s'",
                              until);
        respond_error(req, 400, msg);
        free(msg);
        goto out;
    }
    if (since && !dur_parse(since, &from, &why)) {
        char *msg = xasprintf("since: invalid duration '%s': %s", since, why);
        respond_error(req, 400, msg);
        free(msg);
        goto out;
    }
    if (since)
        from = to - from;
    if (by && !*by) {
        respond_error(req, 400, "by: expects a tag name");
        goto out;
    }
    if (cost_collect(&rows, &n, sv->proj, from, to, &e)) {
        respond_error(req, 500, e.msg);
        err_release(&e);
        goto out;
    }
    if (by && !cost_tag_known(rows, n, by)) {
        char *msg = xasprintf("by: no environment has a tag '%s' (tags are case-sensitive)", by);
        respond_error(req, 400, msg);
        free(msg);
        goto out;
    }
    struct sb b;
    sb_init(&b);
    cost_json(&b, rows, n, by, &sv->proj->cost, from, to);
    respond_json(req, 200, b.buf);
    sb_release(&b);
out:
    cost_rows_free(rows, n);
    free(by);
    free(since);
    free(until);
}

static void api_envs(struct serve *sv, struct http_req *req)
{
    char **names = NULL;
    size_t n = 0;
    struct err e = {0};
    if (state_list(&names, &n, sv->proj->state_dir, &e)) {
        respond_error(req, 500, e.msg);
        err_release(&e);
        return;
    }
    struct sb b;
    sb_init(&b);
    sb_addc(&b, '[');
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        struct st_summary sm;
        if (state_summary(&sm, sv->proj->state_dir, names[i], &e)) {
            err_release(&e);
            continue;
        }
        sb_adds(&b, shown++ ? ",\n  " : "\n  ");
        st_summary_json(&b, &sm);
        /* the last drift check, for stages the daemon has checked */
        const struct drift_rec *d = drift_find(sv, names[i]);
        if (d && b.len && b.buf[b.len - 1] == '}') {
            b.buf[--b.len] = 0;
            sb_addf(&b, ", \"drift\": %d, \"refreshed\": ", d->drift);
            struct sb t;
            sb_init(&t);
            tm_rfc3339(&t, d->at_ms);
            sb_add_json_str(&b, t.buf);
            sb_release(&t);
            sb_addc(&b, '}');
        }
        st_summary_release(&sm);
    }
    sb_adds(&b, shown ? "\n]\n" : "]\n");
    respond_json(req, 200, b.buf);
    sb_release(&b);
    state_names_free(names, n);
}

static void api_env(struct serve *sv, struct http_req *req, const char *name)
{
    struct state *st = NULL;
    struct err e = {0};
    if (!str_is_slug(name, 63)) {
        respond_error(req, 400, "not an environment name");
        return;
    }
    if (state_load(&st, sv->proj->state_dir, name, &e)) {
        respond_error(req, e.code == PE_NOTFOUND ? 404 : 500, e.msg);
        err_release(&e);
        return;
    }
    struct sb b;
    sb_init(&b);
    state_serialize(&b, st, true);
    respond_json(req, 200, b.buf);
    sb_release(&b);
    state_free(st);
}

static void api_push(struct serve *sv, struct http_req *req, const char *name, enum job_kind kind)
{
    if (!authorized(sv, req))
        return;
    struct env_def d;
    struct err e = {0};
    if (project_env(&d, sv->proj, name, &e)) {
        respond_error(req, e.code == PE_NOTFOUND ? 404 : 400, e.msg);
        err_release(&e);
        return;
    }
    env_def_release(&d);
    char *sha = NULL;
    if (kind == JOB_UP && req->body_len) {
        cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "sha");
        if (!j || (s && !cJSON_IsString(s))) {
            cJSON_Delete(j);
            respond_error(req, 400, "the body must be JSON like {\"sha\": \"...\"}");
            return;
        }
        if (cJSON_IsString(s))
            sha = xstrdup(s->valuestring);
        cJSON_Delete(j);
    }
    struct intake *in = xcalloc(1, sizeof *in);
    in->req = req;
    in->env = xstrdup(name);
    in->kind = kind;
    in->sha = sha;
    in->meta = xstrdup("{\"source\": \"api\"}");
    slog(sv, "info", "API request", "env", name, "intent", job_kind_name(kind), "remote",
         req->remote, NULL);
    enqueue_intake(sv, in);
}

static void api_info(struct serve *sv, struct http_req *req)
{
    struct sb b;
    sb_init(&b);
    sb_adds(&b, "{\"project\": ");
    sb_add_json_str(&b, sv->proj->name);
    sb_adds(&b, ", \"version\": \"" PRENV_VERSION "\", \"router\": ");
    if (sv->router_listen)
        sb_add_json_str(&b, sv->router_listen);
    else
        sb_adds(&b, "null");
    sb_addf(&b, ", \"actions\": %s}\n", sv->proj->serve.api_token ? "true" : "false");
    respond_json(req, 200, b.buf);
    sb_release(&b);
}

/* POST /api/v1/envs/ENV/sleep|wake|extend: the same jobs the reaper and PR
 * comments queue; extend takes {"by": "24h"} (default 24h) */
static void api_lifecycle(struct serve *sv, struct http_req *req, const char *name,
                          const char *verb)
{
    if (!authorized(sv, req))
        return;
    struct st_summary sm;
    struct err e = {0};
    if (state_summary(&sm, sv->proj->state_dir, name, &e)) {
        respond_error(req, e.code == PE_NOTFOUND ? 404 : 500, e.msg);
        err_release(&e);
        return;
    }
    st_summary_release(&sm);
    long long by = 24 * 3600 * 1000LL;
    if (!strcmp(verb, "extend") && req->body_len) {
        cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "by");
        const char *why = NULL;
        bool ok = j && (!b || (cJSON_IsString(b) && dur_parse(b->valuestring, &by, &why) &&
                               by > 0));
        cJSON_Delete(j);
        if (!ok) {
            respond_error(req, 400, "the body must be JSON like {\"by\": \"24h\"}");
            return;
        }
    }
    char *reason = xasprintf("%s via the API from %s", verb, req->remote);
    enum job_kind kind = !strcmp(verb, "sleep") ? JOB_SLEEP
                         : !strcmp(verb, "wake") ? JOB_WAKE
                                                 : JOB_EXTEND;
    char *extra = kind == JOB_SLEEP    ? xstrdup("\"sleep\": \"manual\"")
                  : kind == JOB_EXTEND ? xasprintf("\"by_ms\": %lld", by)
                                       : NULL;
    long long id = push_job(sv, name, kind, reason, NULL, 0, extra);
    slog(sv, "info", "API request", "env", name, "intent", verb, "remote", req->remote, NULL);
    struct sb b;
    sb_init(&b);
    if (id > 0) {
        sb_addf(&b, "{\"result\": \"queued\", \"job\": %lld, \"env\": ", id);
        sb_add_json_str(&b, name);
        sb_addf(&b, ", \"intent\": \"%s\"}\n", verb);
        respond_json(req, 202, b.buf);
    } else {
        respond_error(req, 503, "the job queue cannot be written; try again later");
    }
    sb_release(&b);
    free(extra);
    free(reason);
}

static void api_jobs(struct serve *sv, struct http_req *req)
{
    char *json = NULL;
    struct err e = {0};
    pthread_mutex_lock(&sv->qmu);
    int rc = queue_list_json(sv->q, 200, &json, &e);
    pthread_mutex_unlock(&sv->qmu);
    if (rc) {
        respond_error(req, 500, e.msg);
        err_release(&e);
        return;
    }
    struct sb b;
    sb_init(&b);
    sb_adds(&b, json);
    sb_addc(&b, '\n');
    respond_json(req, 200, b.buf);
    sb_release(&b);
    free(json);
}

static void metrics(struct serve *sv, struct http_req *req)
{
    struct sb b;
    sb_init(&b);
    if (sv->rt)
        router_metrics(sv->rt, &b);
    static const char *const results[] = {"queued", "duplicate", "stale", "error"};
    sb_adds(&b, "# HELP prenv_webhooks_total Webhook deliveries by outcome.\n"
                "# TYPE prenv_webhooks_total counter\n");
    for (int i = 0; i < 4; i++)
        sb_addf(&b, "prenv_webhooks_total{result=\"%s\"} %llu\n", results[i], sv->hooks_total[i]);
    sb_addf(&b, "prenv_webhooks_total{result=\"ignored\"} %llu\n", sv->hooks_ignored);
    sb_addf(&b, "prenv_webhooks_total{result=\"ping\"} %llu\n", sv->hooks_ping);
    static const char *const reasons[] = {"no_secret", "content_type", "signature", "malformed",
                                          "other"};
    sb_adds(&b, "# HELP prenv_webhooks_rejected_total Deliveries refused, by reason.\n"
                "# TYPE prenv_webhooks_rejected_total counter\n");
    for (int i = 0; i < 5; i++)
        sb_addf(&b, "prenv_webhooks_rejected_total{reason=\"%s\"} %llu\n", reasons[i],
                sv->hooks_rejected[i]);
    long long counts[7];
    struct err e = {0};
    pthread_mutex_lock(&sv->qmu);
    int rc = queue_counts(sv->q, counts, &e);
    pthread_mutex_unlock(&sv->qmu);
    err_release(&e);
    if (!rc) {
        sb_adds(&b, "# HELP prenv_jobs Jobs in the queue by state.\n# TYPE prenv_jobs gauge\n");
        for (int i = 0; i < 7; i++)
            sb_addf(&b, "prenv_jobs{state=\"%s\"} %lld\n", job_state_name((enum job_state)i),
                    counts[i]);
    }
    char **names = NULL;
    size_t n = 0;
    int kinds[3] = {0, 0, 0};
    if (!state_list(&names, &n, sv->proj->state_dir, &e))
        for (size_t i = 0; i < n; i++) {
            struct env_def d;
            struct err de = {0};
            if (!project_env(&d, sv->proj, names[i], &de)) {
                kinds[d.kind]++;
                env_def_release(&d);
            }
            err_release(&de);
        }
    err_release(&e);
    state_names_free(names, n);
    sb_adds(&b, "# HELP prenv_environments Environments by kind.\n"
                "# TYPE prenv_environments gauge\n");
    for (int k = 0; k < 3; k++)
        sb_addf(&b, "prenv_environments{kind=\"%s\"} %d\n", env_kind_name((enum env_kind)k),
                kinds[k]);
    sb_adds(&b, "# HELP prenv_job_duration_seconds How long jobs took, by kind.\n"
                "# TYPE prenv_job_duration_seconds histogram\n");
    for (int k = 0; k < 2; k++) {
        const char *kn = k ? "destroy" : "up";
        for (int i = 0; i < JOB_DURATION_BUCKETS; i++)
            sb_addf(&b, "prenv_job_duration_seconds_bucket{kind=\"%s\",le=\"%g\"} %llu\n", kn,
                    job_buckets[i], sv->job_hist[k][i]);
        sb_addf(&b, "prenv_job_duration_seconds_bucket{kind=\"%s\",le=\"+Inf\"} %llu\n", kn,
                sv->job_hist[k][JOB_DURATION_BUCKETS]);
        sb_addf(&b, "prenv_job_duration_seconds_sum{kind=\"%s\"} %.3f\n", kn, sv->job_sum[k]);
        sb_addf(&b, "prenv_job_duration_seconds_count{kind=\"%s\"} %llu\n", kn, sv->job_count[k]);
    }
    if (sv->ndrift) {
        sb_adds(&b, "# HELP prenv_env_drift Resources found gone or drifted by the last drift "
                    "check.\n# TYPE prenv_env_drift gauge\n");
        for (size_t i = 0; i < sv->ndrift; i++)
            sb_addf(&b, "prenv_env_drift{env=\"%s\"} %d\n", sv->drift[i].env, sv->drift[i].drift);
        sb_adds(&b, "# HELP prenv_env_refreshed_timestamp_seconds When the last drift check "
                    "ended.\n# TYPE prenv_env_refreshed_timestamp_seconds gauge\n");
        for (size_t i = 0; i < sv->ndrift; i++)
            sb_addf(&b, "prenv_env_refreshed_timestamp_seconds{env=\"%s\"} %.3f\n",
                    sv->drift[i].env, (double)sv->drift[i].at_ms / 1000.0);
    }
    sb_addf(&b, "# HELP prenv_jobs_running Jobs running now.\n# TYPE prenv_jobs_running gauge\n"
                "prenv_jobs_running %d\n",
            sv->nrunning);
    const struct http_stats *hs = http_server_stats(&sv->http);
    sb_addf(&b, "# HELP prenv_http_requests_total Requests served.\n"
                "# TYPE prenv_http_requests_total counter\nprenv_http_requests_total %llu\n",
            (unsigned long long)hs->requests);
    sb_adds(&b, "# HELP prenv_http_responses_total Responses by status class.\n"
                "# TYPE prenv_http_responses_total counter\n");
    for (int i = 1; i <= 5; i++)
        sb_addf(&b, "prenv_http_responses_total{code=\"%dxx\"} %llu\n", i,
                (unsigned long long)hs->responses[i]);
    sb_adds(&b, "# HELP prenv_http_rejected_total Connections or requests the server refused.\n"
                "# TYPE prenv_http_rejected_total counter\n");
    for (int i = 0; i < HTTP_REJ__COUNT; i++)
        sb_addf(&b, "prenv_http_rejected_total{reason=\"%s\"} %llu\n",
                http_reject_name((enum http_reject)i), (unsigned long long)hs->rejected[i]);
    sb_addf(&b, "# HELP prenv_http_connections_open Open connections.\n"
                "# TYPE prenv_http_connections_open gauge\nprenv_http_connections_open %llu\n",
            (unsigned long long)hs->conns_open);
    http_respond(req, 200, "text/plain; version=0.0.4", b.buf, b.len);
    sb_release(&b);
}

static void handler(struct http_req *req, void *ctx)
{
    struct serve *sv = ctx;
    const char *m = req->method, *p = req->path;
    bool get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    if (sv->stopping) {
        http_respond_hdrs(req, 503, "application/json",
                          (const struct http_hdr[]){{"Retry-After", "5"}}, 1,
                          "{\"error\": \"shutting down\"}\n", 27);
        return;
    }
    if (!strcmp(p, "/hooks/github")) {
        if (strcmp(m, "POST") != 0) {
            http_respond_hdrs(req, 405, "application/json",
                              (const struct http_hdr[]){{"Allow", "POST"}}, 1,
                              "{\"error\": \"POST only\"}\n", 23);
            return;
        }
        on_webhook(sv, req);
        return;
    }
    if (!strcmp(p, "/healthz") && get) {
        respond_json(req, 200, "{\"status\": \"ok\"}\n");
        return;
    }
    if ((!strcmp(p, "/") || !strcmp(p, "/index.html")) && get) {
        dash_page(req);
        return;
    }
    if (!strcmp(p, "/api/v1/info") && get) {
        api_info(sv, req);
        return;
    }
    if (!strcmp(p, "/metrics") && get) {
        metrics(sv, req);
        return;
    }
    if (!strcmp(p, "/api/v1/envs") && get) {
        api_envs(sv, req);
        return;
    }
    if (!strcmp(p, "/api/v1/cost") && get) {
        api_cost(sv, req);
        return;
    }
    if (!strcmp(p, "/api/v1/jobs") && get) {
        api_jobs(sv, req);
        return;
    }
    if (str_prefix(p, "/api/v1/envs/")) {
        char *name = xstrdup(p + strlen("/api/v1/envs/"));
        char *slash = strchr(name, '/');
        const char *sub = slash ? slash + 1 : NULL;
        if (slash)
            *slash = 0;
        bool post = !strcmp(m, "POST");
        if (!str_is_slug(name, 63))
            respond_error(req, 400, "not an environment name");
        else if (!sub && get)
            api_env(sv, req, name);
        else if (!sub && !strcmp(m, "DELETE"))
            api_push(sv, req, name, JOB_DESTROY);
        else if (sub && !strcmp(sub, "up") && post)
            api_push(sv, req, name, JOB_UP);
        else if (sub && (!strcmp(sub, "sleep") || !strcmp(sub, "wake") || !strcmp(sub, "extend")) &&
                 post)
            api_lifecycle(sv, req, name, sub);
        else if (sub && !strcmp(sub, "history") && get)
            dash_history(req, sv->proj->state_dir, name);
        else if (sub && !strcmp(sub, "logs") && get)
            dash_logs(req, sv->proj->state_dir, name);
        else if (sub && strcmp(sub, "up") && strcmp(sub, "sleep") && strcmp(sub, "wake") &&
                 strcmp(sub, "extend") && strcmp(sub, "history") && strcmp(sub, "logs"))
            respond_error(req, 404, "no such path; see docs/serve.md");
        else
            respond_error(req, 405, "method not allowed here");
        free(name);
        return;
    }
    respond_error(req, 404, "no such path; see docs/serve.md");
}

/* ---- start and stop ---- */

static void close_noop(uv_handle_t *h)
{
    (void)h;
}

static void http_closed_cb(struct http_server *srv)
{
    struct serve *sv = srv->ctx;
    sv->http_closed = true;
}

static void rep_closed(void *arg)
{
    (void)arg;
}

static void finish_stop(struct serve *sv)
{
    /* every job has ended: close the rest so the loop can end */
    if (sv->rep) {
        report_close(sv->rep, rep_closed, NULL);
        sv->rep = NULL;
    }
    uv_close((uv_handle_t *)&sv->wake, close_noop);
    uv_close((uv_handle_t *)&sv->log_flush, close_noop);
    uv_close((uv_handle_t *)&sv->tick, close_noop);
    uv_close((uv_handle_t *)&sv->reap_timer, close_noop);
    uv_close((uv_handle_t *)&sv->sweep_timer, close_noop);
    uv_close((uv_handle_t *)&sv->refresh_timer, close_noop);
    uv_close((uv_handle_t *)&sv->route_timer, close_noop);
    if (sv->watching)
        uv_close((uv_handle_t *)&sv->state_watch, close_noop);
    uv_close((uv_handle_t *)&sv->stop_timer, close_noop);
    uv_close((uv_handle_t *)&sv->sigint, close_noop);
    uv_close((uv_handle_t *)&sv->sigterm, close_noop);
}

static void stop_check(uv_timer_t *t)
{
    struct serve *sv = t->data;
    /* final statuses go out before the reporter is closed (bounded by the
     * deadline: after it, what is pending is canceled) */
    bool reports_pending = sv->rep && report_pending(sv->rep) && !sv->stop_forced;
    if (sv->nrunning == 0 && !sv->flush_busy && !sv->batch && !reports_pending && !sv->rt) {
        uv_timer_stop(t);
        finish_stop(sv);
    }
}

/* every running job stops at its next resource boundary */
static void cancel_all(struct serve *sv)
{
    pthread_mutex_lock(&sv->mu);
    for (struct job_run *jr = sv->running; jr; jr = jr->next) {
        jr->cancel = true;
        if (jr->oe)
            jr->oe->host.cancel = 1;
    }
    pthread_mutex_unlock(&sv->mu);
}

static void stop_deadline(uv_timer_t *t)
{
    struct serve *sv = t->data;
    if (!sv->stop_forced && !sv->nrunning)
        sv->stop_forced = true; /* only reports were pending: stop waiting for them */
    if (!sv->stop_forced && sv->nrunning) {
        sv->stop_forced = true;
        slog(sv, "warn", "shutdown deadline reached: canceling running jobs at their next step",
             NULL);
        cancel_all(sv);
    }
    uv_timer_start(t, stop_check, 100, 100);
}

static void router_closed(void *arg)
{
    struct serve *sv = arg;
    sv->rt = NULL;
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct serve *sv = h->data;
    if (sv->stopping) {
        if (signum == SIGINT)
            slog(sv, "warn", "second interrupt: canceling running jobs", NULL);
        cancel_all(sv);
        return;
    }
    sv->stopping = true;
    sv->stop_signal = signum;
    char n[16];
    snprintf(n, sizeof n, "%d", sv->nrunning);
    slog(sv, "info", "shutting down: finishing requests and running jobs", "signal",
         signum == SIGTERM ? "TERM" : "INT", "jobs_running", n, NULL);
    uv_timer_stop(&sv->tick);
    uv_timer_stop(&sv->reap_timer);
    uv_timer_stop(&sv->sweep_timer);
    uv_timer_stop(&sv->refresh_timer);
    if (sv->watching)
        uv_fs_event_stop(&sv->state_watch);
    http_server_close(&sv->http, 5000, http_closed_cb);
    uv_timer_stop(&sv->route_timer);
    if (sv->rt)
        router_close(sv->rt, 5000, router_closed, sv);
    sv->stop_timer.data = sv;
    uv_timer_start(&sv->stop_timer, stop_deadline, (uint64_t)sv->proj->serve.shutdown_ms, 0);
    /* a quick path when nothing runs */
    if (sv->nrunning == 0) {
        uv_timer_stop(&sv->stop_timer);
        uv_timer_start(&sv->stop_timer, stop_check, 50, 100);
    }
}

/* the router's hooks: a wake job for a request, and its log lines. A
 * request's wake holds over the env's schedule for router.wake_for (1 h), as
 * `prenv env wake --until 1h` would, so a reviewer after hours is not put
 * back to sleep at the reaper's next look. */
static long long router_wake(void *ctx, const char *env)
{
    struct serve *sv = ctx;
    if (sv->stopping)
        return -1;
    char extra[64];
    snprintf(extra, sizeof extra, "\"until_ms\": %lld", tm_now_ms() + sv->proj->router.wake_ms);
    return push_job(sv, env, JOB_WAKE, "a request through the router", NULL, 0, extra);
}

static void router_log(void *ctx, const char *level, const char *msg, const char *const *kv)
{
    struct serve *sv = ctx;
    struct sb b;
    sb_init(&b);
    slog_head(&b, level, msg);
    for (size_t i = 0; kv[i]; i += 2)
        slog_pair(&b, kv[i], kv[i + 1]);
    slog_line(sv, &b);
    sb_release(&b);
}

int serve_run(const struct serve_opts *o, struct err *e)
{
    struct serve *sv = xcalloc(1, sizeof *sv);
    sv->o = o;
    sv->log = o->log ? o->log : stderr;
    pthread_mutex_init(&sv->log_mu, NULL);
    pthread_mutex_init(&sv->qmu, NULL);
    pthread_mutex_init(&sv->mu, NULL);
    sv->batch_tail = &sv->batch;
    sv->ended_tail = &sv->ended;
    sb_init(&sv->logbuf);
    char *dir = NULL;
    int rc = project_find(&dir, o->project_dir, e);
    if (!rc)
        rc = project_load(&sv->proj, dir, o->state_dir, e);
    free(dir);
    if (rc)
        goto out_free;
    sv->router_listen = o->router ? o->router : sv->proj->router.listen;
    if (!strcmp(sv->router_listen, "off"))
        sv->router_listen = NULL;
    const struct preview_policy *pp = &sv->proj->pp;
    sv->policy = (struct gh_policy){
        .drafts = pp->drafts,
        .destroy_on_draft = pp->destroy_on_draft,
        .label = pp->label,
        .forks = (enum gh_forks)pp->forks,
        .trusted = (const char *const *)pp->trusted,
    };
    char *serve_dir = xasprintf("%s/serve", sv->proj->state_dir);
    char *qpath = xasprintf("%s/queue.db", serve_dir);
    rc = fs_mkdir_p(serve_dir, 0700, e);
    if (!rc)
        rc = queue_open(&sv->q, qpath, e);
    free(serve_dir);
    free(qpath);
    if (rc)
        goto out_proj;
    int recovered = 0;
    if ((rc = queue_recover(sv->q, &recovered, e)))
        goto out_queue;
    uv_loop_init(&sv->loop);
    const char *listen = o->listen ? o->listen : sv->proj->serve.listen;
    if ((rc = http_server_start(&sv->http, &sv->loop, listen, NULL, handler, sv, e))) {
        err_prefix(e, "cannot listen on %s: ", listen);
        uv_loop_close(&sv->loop);
        goto out_queue;
    }
    uv_async_init(&sv->loop, &sv->wake, wake_cb);
    sv->wake.data = sv;
    uv_prepare_init(&sv->loop, &sv->log_flush);
    sv->log_flush.data = sv;
    uv_prepare_start(&sv->log_flush, log_flush_cb);
    uv_unref((uv_handle_t *)&sv->log_flush);
    sv->loop_thread = pthread_self();
    sv->log_buffered = true;
    uv_timer_init(&sv->loop, &sv->tick);
    sv->tick.data = sv;
    uv_timer_init(&sv->loop, &sv->stop_timer);
    sv->stop_timer.data = sv;
    uv_timer_init(&sv->loop, &sv->reap_timer);
    sv->reap_timer.data = sv;
    uv_timer_init(&sv->loop, &sv->sweep_timer);
    sv->sweep_timer.data = sv;
    uv_timer_init(&sv->loop, &sv->refresh_timer);
    sv->refresh_timer.data = sv;
    uv_timer_init(&sv->loop, &sv->route_timer);
    sv->route_timer.data = sv;
    uv_signal_init(&sv->loop, &sv->sigint);
    uv_signal_init(&sv->loop, &sv->sigterm);
    sv->sigint.data = sv->sigterm.data = sv;
    uv_signal_start(&sv->sigint, signal_cb, SIGINT);
    uv_signal_start(&sv->sigterm, signal_cb, SIGTERM);
    const struct github_conf *g = &sv->proj->gh;
    struct report_config rcfg = {
        .api_url = g->api_url,
        .token = g->token,
        .app_id = g->app_id,
        .app_key_path = g->app_key_file,
        .installation_id = g->app_installation,
    };
    struct err re = {0};
    if (report_start(&sv->rep, &sv->loop, &rcfg, &re)) {
        slog(sv, "error", "reporting to GitHub is off: its configuration is wrong", "error",
             re.msg, NULL);
        err_release(&re);
        sv->rep = NULL;
    } else if (!report_enabled(sv->rep)) {
        slog(sv, "info", "reporting to GitHub is off: set PRENV_GITHUB_TOKEN or github.app", NULL);
    } else {
        slog(sv, "info", "reporting to GitHub", "api", g->api_url, "auth",
             report_auth_desc(sv->rep), NULL);
    }
    char rport[16] = "off";
    if (sv->router_listen) {
        struct router_hooks rh = {.wake = router_wake, .log = router_log, .ctx = sv};
        struct err rte = {0};
        if (router_start(&sv->rt, &sv->loop, sv->router_listen, sv->proj, &rh, &rte)) {
            /* webhooks and the API still work: say so loudly rather than stop */
            slog(sv, "error", "the router is off: cannot listen", "router", sv->router_listen,
                 "error", rte.msg, "hint", "free the port, or set router.listen / --router", NULL);
            err_release(&rte);
            sv->rt = NULL;
        } else {
            snprintf(rport, sizeof rport, "%d", router_port(sv->rt));
        }
    }
    char port[16], rec[16];
    snprintf(port, sizeof port, "%d", http_server_port(&sv->http));
    snprintf(rec, sizeof rec, "%d", recovered);
    slog(sv, "info", "prenv serve started", "project", sv->proj->name, "listen", listen, "port",
         port, "state_dir", sv->proj->state_dir, "resumed_jobs", rec, "webhooks",
         sv->proj->gh.webhook_secret ? "on" : "off (no secret)", "api",
         sv->proj->serve.api_token ? "read-write" : "read-only (no token)", "router",
         sv->rt ? sv->router_listen : "off", "router_port", rport, NULL);
    char *sdir = xasprintf("%s/state", sv->proj->state_dir);
    struct err we = {0};
    if (!fs_mkdir_p(sdir, 0700, &we)) {
        uv_fs_event_init(&sv->loop, &sv->state_watch);
        sv->state_watch.data = sv;
        sv->watching = true;
        int wr = uv_fs_event_start(&sv->state_watch, state_changed, sdir, 0);
        if (wr)
            slog(sv, "warn", "cannot watch the state directory; changes made outside the daemon "
                 "are seen within the hour", "error", uv_strerror(wr), NULL);
    } else {
        err_release(&we);
    }
    free(sdir);
    schedule(sv);
    reap_run(sv); /* catch up at once with whatever came due while nothing ran */
    if (sv->proj->serve.sweep_ms > 0 && reporting(sv))
        uv_timer_start(&sv->sweep_timer, sweep_cb,
                       (uint64_t)(sv->proj->serve.sweep_ms < 5000 ? sv->proj->serve.sweep_ms : 5000),
                       (uint64_t)sv->proj->serve.sweep_ms);
    if (sv->proj->serve.refresh_ms > 0)
        uv_timer_start(&sv->refresh_timer, refresh_cb, (uint64_t)sv->proj->serve.refresh_ms,
                       (uint64_t)sv->proj->serve.refresh_ms);
    uv_run(&sv->loop, UV_RUN_DEFAULT);
    pthread_mutex_lock(&sv->log_mu);
    sv->log_buffered = false;
    log_write(sv);
    pthread_mutex_unlock(&sv->log_mu);
    /* the loop ends when every handle is closed */
    int lc = uv_loop_close(&sv->loop);
    slog(sv, "info", "prenv serve stopped", "clean", lc == 0 ? "yes" : "no", NULL);
    rc = 0;
out_queue:
    free(sv->waiting_reported);
    for (size_t i = 0; i < sv->ndrift; i++)
        free(sv->drift[i].env);
    free(sv->drift);
    queue_close(sv->q);
out_proj:
    project_free(sv->proj);
out_free:
    sb_release(&sv->logbuf);
    pthread_mutex_destroy(&sv->log_mu);
    pthread_mutex_destroy(&sv->qmu);
    pthread_mutex_destroy(&sv->mu);
    free(sv);
    return rc;
}

/* serve: the daemon: HTTP intake, durable queue, job runner, API, metrics. */
#include "hooks/serve.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/net/http.h"
#include "core/state.h"
#include "envs/op.h"
#include "envs/project.h"
#include "hooks/github.h"
#include "hooks/queue.h"
#include "hooks/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
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
    struct job_run *next;
};

struct serve {
    const struct serve_opts *o;
    uv_loop_t loop;
    struct http_server http;
    uv_signal_t sigint, sigterm;
    uv_async_t wake;
    uv_timer_t tick, stop_timer;
    struct project *proj;
    struct gh_policy policy;
    FILE *log;
    pthread_mutex_t log_mu;
    /* the queue: one SQLite handle, used by the loop thread and the flush
     * worker, never both at once (qmu) */
    struct queue *q;
    pthread_mutex_t qmu;
    /* intake waiting for its durable write; the batch being written */
    struct intake *batch, **batch_tail, *flushing;
    bool flush_busy;
    uv_work_t flush_work;
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

/* slog: level, message, then NULL-terminated key, value pairs */
static void slog(struct serve *sv, const char *level, const char *msg, ...)
{
    struct sb b;
    sb_init(&b);
    sb_adds(&b, "ts=");
    tm_rfc3339(&b, tm_now_ms());
    sb_addf(&b, " level=%s msg=", level);
    kv_value(&b, msg);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (!v)
            continue;
        sb_addf(&b, " %s=", k);
        kv_value(&b, v);
    }
    va_end(ap);
    sb_addc(&b, '\n');
    pthread_mutex_lock(&sv->log_mu);
    fputs(b.buf, sv->log);
    fflush(sv->log);
    pthread_mutex_unlock(&sv->log_mu);
    sb_release(&b);
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
    static const char *const keys[] = {"number", "sha", "branch", "author", "title", NULL};
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

static void report_end_job(struct serve *sv, const struct job *j, const struct op_result *res)
{
    struct pr_ref p;
    if (!reporting(sv) || !pr_ref_of(j, &p))
        return;
    struct report_pr pr = {p.repo, p.number, p.sha, p.env};
    struct err e = {0};
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
            .expires_ms = sm.expires_ms,
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
        struct report_receipt rec = {items, nr + nl, NULL};
        struct report_ctx *rc = report_ctx_new(sv, j->env, "teardown");
        if (report_teardown(sv->rep, &pr, &rec, report_done_cb, rc, &e)) {
            report_done_cb(&e, rc);
            err_release(&e);
        }
        for (size_t i = 0; i < 2 * (nr + nl); i++)
            free(strs[i]);
        free(strs);
        free(items);
    }
    pr_ref_release(&p);
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
    if (jr->job.kind == JOB_UP) {
        struct val *pr = meta_pr(jr->job.meta);
        oo.sha = jr->job.sha;
        const char *author = pr ? val_map_str(pr, "author", NULL) : NULL;
        oo.owner = author;
        op_run_up(jr->job.env, &oo, pr, &jr->res);
        val_free(pr);
    } else {
        op_run_destroy(jr->job.env, &oo, &jr->res);
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

static void job_observe(struct serve *sv, struct job_run *jr)
{
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
        sv->nrunning--;
        job_observe(sv, jr);
        bool ok = jr->res.rc == 0;
        struct err e = {0};
        pthread_mutex_lock(&sv->qmu);
        if (queue_finish(sv->q, jr->job.id, ok, jr->res.transient, jr->res.error,
                         sv->proj->serve.max_attempts, &e))
            slog(sv, "error", "cannot record a job's end", "job_env", jr->job.env, "error", e.msg,
                 NULL);
        pthread_mutex_unlock(&sv->qmu);
        err_release(&e);
        char id[32], ms[32];
        snprintf(id, sizeof id, "%lld", jr->job.id);
        snprintf(ms, sizeof ms, "%lld", jr->res.ms);
        if (ok)
            slog(sv, "info", jr->job.kind == JOB_UP ? "environment up" : "environment destroyed",
                 "env", jr->job.env, "job", id, "delivery", jr->job.delivery, "sha", jr->job.sha,
                 "duration_ms", ms, NULL);
        else
            slog(sv, "error", jr->job.kind == JOB_UP ? "up failed" : "destroy failed", "env",
                 jr->job.env, "job", id, "delivery", jr->job.delivery, "error", jr->res.error,
                 "retry", jr->res.transient ? "yes" : "no", NULL);
        report_end_job(sv, &jr->job, &jr->res);
        op_result_release(&jr->res);
        job_release(&jr->job);
        free(jr);
    }
    schedule(sv);
}

static void tick_cb(uv_timer_t *t)
{
    schedule(t->data);
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
    while (sv->nrunning < sv->proj->serve.concurrency) {
        struct job j;
        bool got = false;
        struct err e = {0};
        pthread_mutex_lock(&sv->qmu);
        int rc = queue_claim(sv->q, sv->proj->serve.concurrency, &j, &got, &e);
        if (!rc && got && over_preview_cap(sv, &j)) {
            /* back into the queue, without counting an attempt */
            queue_finish(sv->q, j.id, false, true, "waiting: previews.max reached", 1000000, &e);
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
        pthread_mutex_lock(&sv->mu);
        jr->next = sv->running;
        sv->running = jr;
        pthread_mutex_unlock(&sv->mu);
        sv->nrunning++;
        char id[32];
        snprintf(id, sizeof id, "%lld", j.id);
        slog(sv, "info", j.kind == JOB_UP ? "bringing up" : "destroying", "env", j.env, "job", id,
             "delivery", j.delivery, "sha", j.sha, NULL);
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
    sv->flushing = NULL;
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
    if (queued)
        schedule(sv);
    if (sv->batch)
        start_flush(sv);
}

static void start_flush(struct serve *sv)
{
    if (sv->flush_busy || !sv->batch)
        return;
    sv->flushing = sv->batch;
    sv->batch = NULL;
    sv->batch_tail = &sv->batch;
    sv->flush_busy = true;
    sv->flush_work.data = sv;
    if (uv_queue_work(&sv->loop, &sv->flush_work, flush_work_cb, flush_done_cb) != 0) {
        sv->flush_busy = false;
        for (struct intake *in = sv->flushing; in; in = in->next)
            in->result = IN_ERROR;
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
    if (!strcmp(p, "/metrics") && get) {
        metrics(sv, req);
        return;
    }
    if (!strcmp(p, "/api/v1/envs") && get) {
        api_envs(sv, req);
        return;
    }
    if (!strcmp(p, "/api/v1/jobs") && get) {
        api_jobs(sv, req);
        return;
    }
    if (str_prefix(p, "/api/v1/envs/")) {
        char *name = xstrdup(p + strlen("/api/v1/envs/"));
        char *slash = strchr(name, '/');
        if (!slash && get)
            api_env(sv, req, name);
        else if (!slash && !strcmp(m, "DELETE"))
            api_push(sv, req, name, JOB_DESTROY);
        else if (slash && !strcmp(slash, "/up") && !strcmp(m, "POST")) {
            *slash = 0;
            api_push(sv, req, name, JOB_UP);
        } else
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
    uv_close((uv_handle_t *)&sv->tick, close_noop);
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
    if (sv->nrunning == 0 && !sv->flush_busy && !sv->batch && !reports_pending) {
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
    http_server_close(&sv->http, 5000, http_closed_cb);
    sv->stop_timer.data = sv;
    uv_timer_start(&sv->stop_timer, stop_deadline, (uint64_t)sv->proj->serve.shutdown_ms, 0);
    /* a quick path when nothing runs */
    if (sv->nrunning == 0) {
        uv_timer_stop(&sv->stop_timer);
        uv_timer_start(&sv->stop_timer, stop_check, 50, 100);
    }
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
    char *dir = NULL;
    int rc = project_find(&dir, o->project_dir, e);
    if (!rc)
        rc = project_load(&sv->proj, dir, o->state_dir, e);
    free(dir);
    if (rc)
        goto out_free;
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
    uv_timer_init(&sv->loop, &sv->tick);
    sv->tick.data = sv;
    uv_timer_init(&sv->loop, &sv->stop_timer);
    sv->stop_timer.data = sv;
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
    char port[16], rec[16];
    snprintf(port, sizeof port, "%d", http_server_port(&sv->http));
    snprintf(rec, sizeof rec, "%d", recovered);
    slog(sv, "info", "prenv serve started", "project", sv->proj->name, "listen", listen, "port",
         port, "state_dir", sv->proj->state_dir, "resumed_jobs", rec, "webhooks",
         sv->proj->gh.webhook_secret ? "on" : "off (no secret)", "api",
         sv->proj->serve.api_token ? "read-write" : "read-only (no token)", NULL);
    schedule(sv);
    uv_run(&sv->loop, UV_RUN_DEFAULT);
    /* the loop ends when every handle is closed */
    int lc = uv_loop_close(&sv->loop);
    slog(sv, "info", "prenv serve stopped", "clean", lc == 0 ? "yes" : "no", NULL);
    rc = 0;
out_queue:
    free(sv->waiting_reported);
    queue_close(sv->q);
out_proj:
    project_free(sv->proj);
out_free:
    pthread_mutex_destroy(&sv->log_mu);
    pthread_mutex_destroy(&sv->qmu);
    pthread_mutex_destroy(&sv->mu);
    free(sv);
    return rc;
}

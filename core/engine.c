/* engine: reconcile, refresh, plan, apply and destroy for one environment.
 * Provider calls run on libuv's thread pool; everything that touches the
 * state runs on the loop thread, so the state needs no lock of its own. */
#include "core/engine.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/seal.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define MAX_ATTEMPTS 5
#define BACKOFF_BASE_MS 250
#define BACKOFF_MAX_MS 8000
#define JOURNAL_CHECKPOINT 2000 /* records before the whole state is rewritten */

enum { T_WAIT, T_RUN, T_OK, T_FAIL, T_SKIP };
enum mode { M_IDLE, M_PLAN, M_APPLY };

struct task {
    struct runner *rn;
    int node; /* desired index, or -1 */
    char *name;
    const struct provider *prov;
    enum eng_op op;
    int status;
    size_t *waits;
    size_t nwaits, capwaits;
    /* worker inputs, owned by the task */
    struct val *props;      /* as rendered: secrets sealed; what state records */
    struct val *call_props; /* props with secrets opened: what the provider gets */
    struct val *old_props, *old_outputs, *old_priv; /* from state, secrets opened if possible */
    char *old_id;
    struct prov_call call;
    /* worker results */
    struct prov_result res;
    struct err err;
    int rc;
    int attempts;
    long long t0;
    bool rebuild;
    uv_work_t work;
};

struct runner {
    struct engine *en;
    const struct eng_desired *d;
    struct task *tasks;
    size_t n;
    int running;
    bool failed;     /* stop scheduling new work */
    bool keep_going; /* destroy: independent branches continue after a failure */
    bool dirty;
    uv_loop_t loop;
    uv_idle_t idle;
    uv_signal_t sigint, sigterm;
    int (*prepare)(struct runner *rn, struct task *t, struct err *e);
    void (*finish)(struct runner *rn, struct task *t);
    struct err err; /* first failure */
    bool save_failed;
};

struct engine {
    struct state *st;
    char *state_dir, *project_dir, *work_dir, *log_dir, *run_dir;
    struct prov_host *host;
    struct eng_opts opts;
    enum mode mode;
    const struct plan *cur_plan; /* M_PLAN: steps decided so far */
    size_t cur_plan_n;
    struct runner *cur_run;      /* M_APPLY */
    char **gone;                 /* refresh: resources that no longer exist */
    size_t ngone, capgone;
    char **drift_names, **drift_msgs;
    size_t ndrift, capdrift, capdrift2;
};

const char *eng_op_name(enum eng_op op)
{
    static const char *const n[] = {"same", "create", "update", "replace", "delete", "read"};
    return op < OP_COUNT ? n[op] : "?";
}

const char *eng_op_symbol(enum eng_op op)
{
    static const char *const s[] = {"=", "+", "~", "+-", "-", ">"};
    return op < OP_COUNT ? s[op] : "?";
}

static void emit(struct engine *en, enum eng_event_kind k, const struct task *t, const char *detail)
{
    if (!en->opts.on_event)
        return;
    struct eng_event ev = {
        .kind = k,
        .resource = t ? t->name : NULL,
        .type = t && t->prov ? t->prov->type : NULL,
        .op = t ? t->op : OP_SAME,
        .elapsed_ms = t && t->t0 ? tm_mono_ms() - t->t0 : 0,
        .err = t && t->err.code ? &t->err : NULL,
        .detail = detail,
    };
    en->opts.on_event(en->opts.ev_ctx, &ev);
}

/* test hook: PRENV_CRASH_AT=<point>[:<resource>] kills the process with
 * SIGKILL at that point, to prove recovery from a crash at every step */
static void crash_point(const char *point, const char *resource)
{
    const char *spec = getenv("PRENV_CRASH_AT");
    if (!spec || !*spec)
        return;
    size_t pl = strlen(point);
    if (strncmp(spec, point, pl) != 0 || (spec[pl] != 0 && spec[pl] != ':'))
        return;
    if (spec[pl] == ':' && (!resource || strcmp(spec + pl + 1, resource) != 0))
        return;
    kill(getpid(), SIGKILL);
}

struct engine *eng_new(struct state *st, const char *state_dir, const char *project_dir,
                       struct prov_host *host, const struct eng_opts *opts)
{
    struct engine *en = xcalloc(1, sizeof *en);
    en->st = st;
    en->state_dir = xstrdup(state_dir);
    en->project_dir = xstrdup(project_dir);
    en->work_dir = xasprintf("%s/work/%s", state_dir, st->env);
    en->log_dir = xasprintf("%s/logs/%s", state_dir, st->env);
    en->run_dir = xasprintf("%s/run/%s", state_dir, st->env);
    en->host = host;
    if (opts)
        en->opts = *opts;
    if (en->opts.parallel <= 0)
        en->opts.parallel = 4;
    /* libuv's pool has 4 threads unless told before its first use; size it
     * to the parallelism asked for (our own variable, set before any thread) */
    if (!getenv("UV_THREADPOOL_SIZE") && en->opts.parallel > 4) {
        char n[16];
        snprintf(n, sizeof n, "%d", en->opts.parallel > 128 ? 128 : en->opts.parallel);
        setenv("UV_THREADPOOL_SIZE", n, 0);
    }
    return en;
}

static void clear_marks(struct engine *en)
{
    for (size_t i = 0; i < en->ngone; i++)
        free(en->gone[i]);
    for (size_t i = 0; i < en->ndrift; i++) {
        free(en->drift_names[i]);
        free(en->drift_msgs[i]);
    }
    en->ngone = en->ndrift = 0;
}

void eng_free(struct engine *en)
{
    if (!en)
        return;
    clear_marks(en);
    free(en->gone);
    free(en->drift_names);
    free(en->drift_msgs);
    free(en->state_dir);
    free(en->project_dir);
    free(en->work_dir);
    free(en->log_dir);
    free(en->run_dir);
    free(en);
}

int eng_prepare_dirs(struct engine *en, struct err *e)
{
    int rc = fs_mkdir_p(en->work_dir, 0700, e);
    if (!rc)
        rc = fs_mkdir_p(en->log_dir, 0700, e);
    if (!rc)
        rc = fs_mkdir_p(en->run_dir, 0700, e);
    return rc;
}

const char *eng_work_dir(const struct engine *en)
{
    return en->work_dir;
}

const char *eng_log_dir(const struct engine *en)
{
    return en->log_dir;
}

int eng_save(struct engine *en, struct err *e)
{
    return state_save(en->st, en->state_dir, e);
}

static bool is_gone(const struct engine *en, const char *name)
{
    for (size_t i = 0; i < en->ngone; i++)
        if (!strcmp(en->gone[i], name))
            return true;
    return false;
}

static const char *drift_of(const struct engine *en, const char *name)
{
    for (size_t i = 0; i < en->ndrift; i++)
        if (!strcmp(en->drift_names[i], name))
            return en->drift_msgs[i];
    /* drift an earlier refresh recorded */
    const struct st_res *r = state_res(en->st, name);
    return r ? r->drift : NULL;
}

const struct val *eng_outputs(struct engine *en, const char *resource)
{
    const struct st_res *r = state_res(en->st, resource);
    if (en->mode == M_PLAN) {
        for (size_t i = 0; i < en->cur_plan_n; i++) {
            const struct plan_step *s = &en->cur_plan->steps[i];
            if (strcmp(s->name, resource) != 0)
                continue;
            if (s->op == OP_SAME && r)
                return r->outputs;
            if (s->op != OP_UPDATE || !r)
                return NULL;
            /* an update may change an output unless the provider says it is
             * stable: the plan shows those as known after apply */
            struct plan_step *ms = (struct plan_step *)s;
            if (!ms->outs_view) {
                ms->outs_view = val_clone(r->outputs);
                for (size_t k = 0; ms->outs_view && k < ms->outs_view->u.map.n; k++) {
                    struct val_entry *ent = &ms->outs_view->u.map.e[k];
                    const struct prov_output *po = s->prov ? prov_output_find(s->prov, ent->key)
                                                           : NULL;
                    if (po && (po->flags & OUT_STABLE))
                        continue;
                    char *what = xasprintf("%s.%s", s->name, ent->key);
                    val_free(ent->v);
                    ent->v = val_unknown(what);
                    free(what);
                }
            }
            return ms->outs_view;
        }
        return r && !is_gone(en, resource) ? r->outputs : NULL;
    }
    if (en->mode == M_APPLY && en->cur_run) {
        struct runner *rn = en->cur_run;
        for (size_t i = 0; i < rn->n; i++)
            if (!strcmp(rn->tasks[i].name, resource) && rn->tasks[i].op != OP_DELETE)
                return rn->tasks[i].status == T_OK && r ? r->outputs : NULL;
    }
    return r ? r->outputs : NULL;
}

/* ---- diff ---- */

void eng_diff(const struct val *old, const struct val *nw, const struct provider *p,
              char ***changed, size_t *nchanged, char **replace_why)
{
    *changed = NULL;
    *nchanged = 0;
    size_t cap = 0;
    *replace_why = NULL;
    const struct val *sides[2] = {nw, old};
    for (int s = 0; s < 2; s++) {
        const struct val *m = sides[s];
        if (!m || m->kind != VAL_MAP)
            continue;
        for (size_t i = 0; i < m->u.map.n; i++) {
            const char *k = m->u.map.e[i].key;
            if (s == 1 && val_map_get(nw, k))
                continue; /* already compared from the new side */
            const struct val *a = val_map_get(old, k), *b = val_map_get(nw, k);
            bool a_null = !a || a->kind == VAL_NULL, b_null = !b || b->kind == VAL_NULL;
            if (a_null && b_null)
                continue;
            if (!a_null && !b_null && val_equal(a, b))
                continue;
            XGROW(*changed, cap, *nchanged + 1);
            (*changed)[(*nchanged)++] = xstrdup(k);
            const struct prov_prop *pp = p ? prov_prop_find(p, k) : NULL;
            if (pp && (pp->flags & PROP_REPLACE) && !*replace_why)
                *replace_why = xasprintf("'%s' changed", k);
        }
    }
}

/* ---- plan ---- */

static void step_release(struct plan_step *s)
{
    val_free(s->outs_view);
    free(s->name);
    val_free(s->props);
    for (size_t i = 0; i < s->nchanged; i++)
        free(s->changed[i]);
    free(s->changed);
    free(s->why);
}

void plan_release(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++)
        step_release(&p->steps[i]);
    free(p->steps);
    memset(p, 0, sizeof *p);
}

static bool is_protected(const struct engine *en, const struct st_res *r, const struct eng_node *n)
{
    if (en->opts.ignore_protect)
        return false;
    return en->opts.env_protect || (r && r->protect) || (n && n->protect);
}

static int protect_error(struct engine *en, const char *name, enum eng_op op, const char *why,
                         struct err *e)
{
    err_set(e, PE_PROTECTED, NULL, "resource '%s' is protected and would be %s%s%s", name,
            op == OP_DELETE ? "deleted" : "replaced", why ? " because " : "", why ? why : "");
    err_hint(e, en->opts.env_protect
                    ? "this environment is protected (stages.<name>.protect in prenv.yaml); pass "
                      "--unprotect if you really mean it"
                    : "remove 'protect: true' from the resource, or pass --unprotect");
    return PE_PROTECTED;
}

/* order state resources so that dependents come before their dependencies */
static size_t *reverse_state_order(const struct state *st, char *const *only, size_t nonly)
{
    size_t n = st->nres;
    size_t *out = xcalloc(n + 1, sizeof *out);
    unsigned char *done = xcalloc(n + 1, 1);
    size_t k = 0;
    for (int progress = 1; progress && k < n;) {
        progress = 0;
        for (size_t i = 0; i < n; i++) {
            if (done[i])
                continue;
            /* i can go when nothing not yet done depends on it */
            bool blocked = false;
            for (size_t j = 0; j < n && !blocked; j++) {
                if (done[j] || j == i)
                    continue;
                for (size_t d = 0; d < st->res[j].ndeps; d++)
                    if (!strcmp(st->res[j].deps[d], st->res[i].name))
                        blocked = true;
            }
            if (!blocked) {
                done[i] = 1;
                out[k++] = i;
                progress = 1;
            }
        }
    }
    for (size_t i = 0; i < n; i++) /* a cycle in recorded deps: append the rest */
        if (!done[i])
            out[k++] = i;
    free(done);
    if (only) {
        size_t m = 0;
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < nonly; j++)
                if (!strcmp(st->res[out[i]].name, only[j])) {
                    out[m++] = out[i];
                    break;
                }
        k = m;
    }
    out[k] = (size_t)-1;
    return out;
}

/* render node i's properties, check them against the provider's schema and
 * add the provider's content fingerprint */
static int render_node(struct engine *en, const struct eng_desired *d, size_t i, struct val **out,
                       struct err *e)
{
    const struct eng_node *n = &d->nodes[i];
    *out = NULL;
    int rc = d->render(d->ctx, i, out, e);
    if (rc)
        return rc;
    struct prov_call c = {.env = en->st->env,
                          .resource = n->name,
                          .type = n->prov->type,
                          .project_dir = en->project_dir,
                          .work_dir = en->work_dir,
                          .log_dir = en->log_dir,
                          .run_dir = en->run_dir,
                          .props = *out,
                          .host = en->host};
    if ((rc = prov_check_props(n->prov, &c, NULL, e))) {
        err_prefix(e, "resource '%s': ", n->name);
        return rc;
    }
    if (n->prov->fingerprint && !val_has_unknown(*out)) {
        char *fp = NULL;
        if ((rc = n->prov->fingerprint(&c, &fp, e))) {
            err_prefix(e, "resource '%s': ", n->name);
            return rc;
        }
        val_map_set(*out, "fingerprint", NULL, val_str_own(fp, NULL));
    }
    return 0;
}

/* the first dependency of node i (re)created by this plan or run, if any:
 * what was built on a new resource is rebuilt on it (a migration re-runs on
 * a recreated database, a service restarts) */
static const char *recreated_dep(struct engine *en, const struct eng_desired *d, size_t i)
{
    const struct eng_node *n = &d->nodes[i];
    for (size_t k = 0; k < n->ndeps; k++) {
        const char *dep = d->nodes[n->deps[k]].name;
        if (en->mode == M_PLAN) {
            for (size_t s = 0; s < en->cur_plan_n; s++) {
                const struct plan_step *st = &en->cur_plan->steps[s];
                if (!strcmp(st->name, dep) && (st->op == OP_CREATE || st->op == OP_REPLACE))
                    return dep;
            }
        } else if (en->cur_run) {
            for (size_t t = 0; t < en->cur_run->n; t++) {
                const struct task *tk = &en->cur_run->tasks[t];
                if (!strcmp(tk->name, dep) && tk->status == T_OK &&
                    (tk->op == OP_CREATE || tk->op == OP_REPLACE))
                    return dep;
            }
        }
    }
    return NULL;
}

int eng_plan(struct engine *en, const struct eng_desired *d, struct plan *p, struct err *e)
{
    memset(p, 0, sizeof *p);
    p->steps = xcalloc(d->n + en->st->nres + 1, sizeof *p->steps);
    en->mode = M_PLAN;
    en->cur_plan = p;
    int rc = 0;
    for (size_t k = 0; k < d->n && !rc; k++) {
        size_t i = d->order[k];
        const struct eng_node *n = &d->nodes[i];
        struct plan_step *s = &p->steps[p->n];
        s->name = xstrdup(n->name);
        s->prov = n->prov;
        s->node = (int)i;
        en->cur_plan_n = p->n;
        if ((rc = render_node(en, d, i, &s->props, e))) {
            step_release(s);
            break;
        }
        const struct st_res *r = state_res(en->st, n->name);
        if (!r) {
            s->op = OP_CREATE;
        } else if (is_gone(en, n->name)) {
            s->op = OP_CREATE;
            s->old = r->inputs;
            s->why = xstrdup("it no longer exists");
        } else if (strcmp(r->type, n->prov->type) != 0) {
            s->op = OP_REPLACE;
            s->old = r->inputs;
            s->why = xasprintf("its type changed from %s", r->type);
        } else {
            s->old = r->inputs;
            eng_diff(r->inputs, s->props, n->prov, &s->changed, &s->nchanged, &s->why);
            const char *dr = drift_of(en, n->name), *rd = recreated_dep(en, d, i);
            if (s->why)
                s->op = OP_REPLACE;
            else if (s->nchanged)
                s->op = OP_UPDATE;
            else if (dr) {
                s->op = OP_UPDATE;
                s->why = xasprintf("drift: %s", dr);
            } else if (rd) {
                s->op = OP_UPDATE;
                s->why = xasprintf("'%s' is created anew", rd);
            } else
                s->op = OP_SAME;
        }
        if (s->op == OP_REPLACE && is_protected(en, r, n)) {
            rc = protect_error(en, n->name, OP_REPLACE, s->why, e);
            step_release(s);
            break;
        }
        p->counts[s->op]++;
        p->n++;
    }
    if (!rc) {
        /* resources in state that the template no longer has */
        char **names = xcalloc(en->st->nres + 1, sizeof *names);
        size_t nn = 0;
        for (size_t i = 0; i < en->st->nres; i++) {
            bool wanted = false;
            for (size_t k = 0; k < d->n; k++)
                if (!strcmp(d->nodes[k].name, en->st->res[i].name))
                    wanted = true;
            if (!wanted)
                names[nn++] = en->st->res[i].name;
        }
        size_t *ord = reverse_state_order(en->st, names, nn);
        for (size_t k = 0; ord[k] != (size_t)-1 && !rc; k++) {
            const struct st_res *r = &en->st->res[ord[k]];
            if (is_protected(en, r, NULL)) {
                rc = protect_error(en, r->name, OP_DELETE, "it is no longer in the template", e);
                break;
            }
            struct plan_step *s = &p->steps[p->n++];
            s->op = OP_DELETE;
            s->name = xstrdup(r->name);
            s->prov = prov_find(r->type);
            s->node = -1;
            s->old = r->inputs;
            p->counts[OP_DELETE]++;
        }
        free(ord);
        free(names);
    }
    en->mode = M_IDLE;
    en->cur_plan = NULL;
    if (rc)
        plan_release(p);
    return rc;
}

/* ---- the runner ---- */

static void task_release(struct task *t)
{
    free(t->name);
    free(t->waits);
    val_free(t->props);
    val_free(t->call_props);
    val_free(t->old_props);
    val_free(t->old_outputs);
    val_free(t->old_priv);
    free(t->old_id);
    prov_result_release(&t->res);
    err_release(&t->err);
}

static void task_wait(struct task *t, size_t other)
{
    for (size_t i = 0; i < t->nwaits; i++)
        if (t->waits[i] == other)
            return;
    XGROW(t->waits, t->capwaits, t->nwaits + 1);
    t->waits[t->nwaits++] = other;
}

static void snapshot_old(struct engine *en, struct task *t, const struct val *inputs_override)
{
    const struct st_res *r = state_res(en->st, t->name);
    val_free(t->old_props);
    val_free(t->old_outputs);
    val_free(t->old_priv);
    free(t->old_id);
    /* what state holds, with its secrets opened when the key is at hand;
     * without it they are withheld (reading and removing rarely need them) */
    const struct val *in = inputs_override ? inputs_override : r ? r->inputs : NULL;
    struct err oe = {0};
    t->old_props = t->old_outputs = NULL;
    if (in)
        seal_open(&t->old_props, in, 0, &oe);
    if (r)
        seal_open(&t->old_outputs, r->outputs, 0, &oe);
    err_release(&oe);
    t->old_priv = r && r->priv ? val_clone(r->priv) : NULL;
    t->old_id = r && r->id ? xstrdup(r->id) : NULL;
}

static void fill_call(struct engine *en, struct task *t)
{
    t->call = (struct prov_call){
        .env = en->st->env,
        .resource = t->name,
        .type = t->prov ? t->prov->type : "",
        .project_dir = en->project_dir,
        .work_dir = en->work_dir,
        .log_dir = en->log_dir,
        .run_dir = en->run_dir,
        .props = t->call_props ? t->call_props : t->props,
        .old_props = t->old_props,
        .old_outputs = t->old_outputs,
        .priv = t->old_priv,
        .id = t->old_id,
        .rebuild = t->rebuild,
        .host = en->host,
    };
}

static void sleep_cancelable(struct engine *en, long long ms)
{
    long long end = tm_mono_ms() + ms;
    while (tm_mono_ms() < end && !en->host->cancel)
        usleep(20000);
}

static int call_once(struct task *t)
{
    const struct provider *p = t->prov;
    struct prov_call *c = &t->call;
    prov_result_release(&t->res);
    switch (t->op) {
    case OP_CREATE:
        c->old_props = c->old_outputs = c->priv = NULL;
        c->id = NULL;
        return p->create(c, &t->res, &t->err);
    case OP_UPDATE:
        return p->update(c, &t->res, &t->err);
    case OP_REPLACE: {
        struct prov_call rm = *c;
        rm.props = NULL;
        int rc = p->remove(&rm, &t->err);
        if (rc)
            return rc;
        struct prov_call cr = *c;
        cr.old_props = cr.old_outputs = cr.priv = NULL;
        cr.id = NULL;
        return p->create(&cr, &t->res, &t->err);
    }
    case OP_DELETE: {
        struct prov_call rm = *c;
        rm.props = NULL;
        return p->remove(&rm, &t->err);
    }
    case OP_READ: {
        struct prov_call rd = *c;
        rd.props = NULL;
        return p->read(&rd, &t->res, &t->err);
    }
    default:
        return 0;
    }
}

static void work_cb(uv_work_t *w)
{
    struct task *t = w->data;
    struct engine *en = t->rn->en;
    unsigned seed = (unsigned)(tm_mono_ms() ^ (long long)(size_t)t);
    for (;;) {
        t->attempts++;
        err_release(&t->err);
        t->rc = call_once(t);
        if (t->rc == 0 && t->err.code)
            t->rc = t->err.code;
        if (t->rc != PE_TRANSIENT || t->attempts >= MAX_ATTEMPTS || en->host->cancel)
            break;
        long long delay = BACKOFF_BASE_MS << (t->attempts - 1);
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
        /* full jitter between half and all of the delay */
        delay = delay / 2 + (long long)(rand_r(&seed) % (unsigned)(delay / 2 + 1));
        sleep_cancelable(en, delay);
    }
    if (t->rc && !t->err.code)
        err_set(&t->err, t->rc, NULL, "%s", err_code_name(t->rc));
}

static void pump(struct runner *rn);

static void idle_cb(uv_idle_t *h)
{
    struct runner *rn = h->data;
    uv_idle_stop(h);
    pump(rn);
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct task *t = w->data;
    struct runner *rn = t->rn;
    (void)status;
    rn->running--;
    crash_point("provider", t->name);
    rn->finish(rn, t);
    uv_idle_start(&rn->idle, idle_cb);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct runner *rn = h->data;
    (void)signum;
    if (!rn->en->host->cancel) {
        rn->en->host->cancel = 1;
        rn->failed = true;
        rn->keep_going = false;
        err_set(&rn->err, PE_CANCELED, NULL,
                "interrupted: finishing the operations already running, then saving");
    }
}

static struct val *stored_outputs(const struct provider *p, const struct val *fresh,
                                  const struct val *stored, const struct val *opened);

static void save_now(struct runner *rn)
{
    struct err e = {0};
    if (state_save(rn->en->st, rn->en->state_dir, &e)) {
        /* state that cannot be written means nothing more may be done */
        if (!rn->err.code)
            err_move(&rn->err, &e);
        else
            err_release(&e);
        rn->failed = true;
        rn->keep_going = false;
        rn->save_failed = true;
    }
    rn->dirty = false;
}

static void pump(struct runner *rn)
{
    struct engine *en = rn->en;
    for (;;) {
        bool changed = false;
        size_t *batch = xcalloc(rn->n + 1, sizeof *batch), nb = 0;
        for (size_t i = 0; i < rn->n; i++) {
            struct task *t = &rn->tasks[i];
            if (t->status != T_WAIT)
                continue;
            bool ready = true, blocked = false;
            for (size_t w = 0; w < t->nwaits; w++) {
                int st = rn->tasks[t->waits[w]].status;
                if (st == T_FAIL || st == T_SKIP)
                    blocked = true;
                else if (st != T_OK)
                    ready = false;
            }
            if (blocked) {
                t->status = T_SKIP;
                emit(en, EV_SKIP, t, NULL);
                changed = true;
                continue;
            }
            if (!ready || (rn->failed && !rn->keep_going) || en->host->cancel)
                continue;
            if (rn->running + (int)nb >= en->opts.parallel)
                continue;
            struct err pe = {0};
            if (rn->prepare && rn->prepare(rn, t, &pe)) {
                err_move(&t->err, &pe);
                t->status = T_FAIL;
                rn->failed = true;
                if (!rn->err.code) {
                    rn->err.code = t->err.code;
                    rn->err.msg = xstrdup(t->err.msg ? t->err.msg : "");
                    rn->err.pos = t->err.pos;
                    rn->err.line = t->err.line ? xstrdup(t->err.line) : NULL;
                    rn->err.hint = t->err.hint ? xstrdup(t->err.hint) : NULL;
                }
                emit(en, EV_FAIL, t, NULL);
                changed = true;
                continue;
            }
            if (t->op == OP_SAME) {
                t->status = T_OK;
                changed = true;
                continue;
            }
            const char *jop = t->op == OP_UPDATE   ? "update"
                              : t->op == OP_DELETE ? "delete"
                              : t->op == OP_READ   ? NULL
                              : t->op == OP_REPLACE ? "replace"
                                                    : "create";
            if (jop)
                state_pending_add(en->st, t->name, t->prov->type, jop, t->props);
            batch[nb++] = i;
        }
        /* journal before act: the intents of this batch are durable before
         * any provider is called (one append and one fsync for all of them) */
        const char **names = xcalloc(nb + 1, sizeof *names);
        size_t nj = 0;
        for (size_t k = 0; k < nb; k++)
            if (rn->tasks[batch[k]].op != OP_READ)
                names[nj++] = rn->tasks[batch[k]].name;
        if (nj) {
            struct err je = {0};
            if (en->st->jrecords > JOURNAL_CHECKPOINT)
                save_now(rn); /* bound what a reader must replay */
            else if (state_journal_intent(en->st, en->state_dir, names, nj, &je)) {
                if (!rn->err.code)
                    err_move(&rn->err, &je);
                rn->failed = true;
                rn->keep_going = false;
                rn->save_failed = true;
            }
            err_release(&je);
        }
        free(names);
        if (rn->save_failed) {
            for (size_t k = 0; k < nb; k++)
                state_pending_del(en->st, rn->tasks[batch[k]].name);
            nb = 0;
        }
        for (size_t k = 0; k < nb; k++) {
            struct task *t = &rn->tasks[batch[k]];
            crash_point("journal", t->name);
            t->status = T_RUN;
            t->t0 = tm_mono_ms();
            fill_call(en, t);
            t->work.data = t;
            rn->running++;
            if (t->op != OP_READ)
                emit(en, EV_START, t, NULL);
            if (uv_queue_work(&rn->loop, &t->work, work_cb, after_work_cb) != 0) {
                rn->running--;
                t->status = T_FAIL;
                err_set(&t->err, PE_INTERNAL, NULL, "cannot queue work");
            }
        }
        free(batch);
        if (!changed)
            break;
    }
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static int run_tasks(struct runner *rn, struct err *e)
{
    struct engine *en = rn->en;
    uv_loop_init(&rn->loop);
    uv_idle_init(&rn->loop, &rn->idle);
    rn->idle.data = rn;
    uv_signal_init(&rn->loop, &rn->sigint);
    uv_signal_init(&rn->loop, &rn->sigterm);
    rn->sigint.data = rn->sigterm.data = rn;
    uv_signal_start(&rn->sigint, signal_cb, SIGINT);
    uv_signal_start(&rn->sigterm, signal_cb, SIGTERM);
    uv_unref((uv_handle_t *)&rn->sigint);
    uv_unref((uv_handle_t *)&rn->sigterm);
    struct runner *prev = en->cur_run;
    en->cur_run = rn;
    pump(rn);
    uv_run(&rn->loop, UV_RUN_DEFAULT);
    if (rn->dirty)
        save_now(rn);
    if (en->host->cancel && !rn->err.code) {
        /* canceled from outside (the daemon superseding a run): what never
         * started makes the run incomplete */
        size_t left = 0;
        for (size_t i = 0; i < rn->n; i++)
            if (rn->tasks[i].status == T_WAIT)
                left++;
        if (left)
            err_set(&rn->err, PE_CANCELED, NULL, "canceled: %zu operation%s not started", left,
                    left == 1 ? "" : "s");
    }
    en->cur_run = prev;
    uv_close((uv_handle_t *)&rn->idle, close_cb);
    uv_close((uv_handle_t *)&rn->sigint, close_cb);
    uv_close((uv_handle_t *)&rn->sigterm, close_cb);
    uv_run(&rn->loop, UV_RUN_DEFAULT);
    uv_loop_close(&rn->loop);
    if (rn->err.code) {
        int code = rn->err.code;
        err_move(e, &rn->err);
        return code;
    }
    return 0;
}

static void runner_release(struct runner *rn)
{
    for (size_t i = 0; i < rn->n; i++)
        task_release(&rn->tasks[i]);
    free(rn->tasks);
    err_release(&rn->err);
}

/* a settled operation: appended to the journal; the whole state is written
 * when the run ends */
static void record_result(struct runner *rn, const char *name)
{
    struct engine *en = rn->en;
    struct err e = {0};
    if (state_journal_result(en->st, en->state_dir, name, &e)) {
        if (!rn->err.code)
            err_move(&rn->err, &e);
        rn->failed = true;
        rn->keep_going = false;
        rn->save_failed = true;
    }
    err_release(&e);
    rn->dirty = true;
}

static void runner_fail(struct runner *rn, struct task *t)
{
    struct engine *en = rn->en;
    t->status = T_FAIL;
    if (!rn->keep_going)
        rn->failed = true;
    emit(en, EV_FAIL, t, NULL);
    if (!rn->err.code) {
        struct sb b;
        sb_init(&b);
        sb_addf(&b, "resource '%s' (%s): %s failed: %s", t->name, t->prov ? t->prov->type : "?",
                eng_op_name(t->op), t->err.msg ? t->err.msg : err_code_name(t->rc));
        if (t->attempts > 1)
            sb_addf(&b, " (after %d attempts)", t->attempts);
        err_set(&rn->err, t->rc ? t->rc : PE_PROVIDER, &t->err.pos, "%s", b.buf);
        if (t->err.hint)
            err_hint(&rn->err, "%s", t->err.hint);
        sb_release(&b);
    }
}

/* ---- reconcile ---- */

static int rec_prepare(struct runner *rn, struct task *t, struct err *e)
{
    (void)e;
    struct engine *en = rn->en;
    const struct st_pending *p = state_pending(en->st, t->name);
    const struct st_res *r = state_res(en->st, t->name);
    const struct val *ins = p && p->inputs && strcmp(p->op, "delete") != 0 ? p->inputs
                                                                           : r ? r->inputs : NULL;
    snapshot_old(en, t, ins);
    if (p && (!strcmp(p->op, "create") || !strcmp(p->op, "replace"))) {
        /* what a create left is only known through read: outputs unknown */
        val_free(t->old_outputs);
        t->old_outputs = NULL;
    }
    return 0;
}

static void rec_finish(struct runner *rn, struct task *t)
{
    struct engine *en = rn->en;
    struct st_pending *p = state_pending(en->st, t->name);
    if (t->rc) {
        runner_fail(rn, t);
        return;
    }
    t->status = T_OK;
    char *op = p ? xstrdup(p->op) : xstrdup("?");
    struct sb d;
    sb_init(&d);
    struct st_res *r = state_res(en->st, t->name);
    if (!strcmp(op, "create") || !strcmp(op, "replace")) {
        if (t->res.exists) {
            struct st_res nr = {0};
            nr.name = xstrdup(t->name);
            nr.type = xstrdup(t->prov->type);
            nr.id = t->res.id ? xstrdup(t->res.id) : NULL;
            nr.inputs = p && p->inputs ? val_clone(p->inputs) : val_map(NULL);
            nr.inputs_hash = state_hash(nr.inputs);
            nr.outputs = stored_outputs(t->prov, t->res.outputs, r ? r->outputs : NULL,
                                        t->old_outputs);
            nr.priv = t->res.priv ? val_clone(t->res.priv) : NULL;
            if (r) {
                nr.deps = xcalloc(r->ndeps + 1, sizeof *nr.deps);
                for (size_t i = 0; i < r->ndeps; i++)
                    nr.deps[nr.ndeps++] = xstrdup(r->deps[i]);
                nr.protect = r->protect;
                nr.created_ms = r->created_ms;
            } else {
                nr.created_ms = tm_now_ms();
            }
            nr.updated_ms = tm_now_ms();
            state_res_put(en->st, &nr);
            sb_addf(&d, "interrupted %s of '%s' had finished: adopted it", op, t->name);
        } else {
            sb_addf(&d, "interrupted %s of '%s' had not finished: cleaned up, will %s again", op,
                    t->name, op);
        }
    } else if (!strcmp(op, "update")) {
        if (t->res.exists) {
            if (r && t->res.outputs) {
                struct val *o = stored_outputs(t->prov, t->res.outputs, r->outputs,
                                               t->old_outputs);
                val_free(r->outputs);
                r->outputs = o;
            }
            if (r && t->res.priv) {
                val_free(r->priv);
                r->priv = val_clone(t->res.priv);
            }
            sb_addf(&d, "interrupted update of '%s': it exists; the update will be applied again",
                    t->name);
        } else {
            state_res_del(en->st, t->name);
            sb_addf(&d, "interrupted update of '%s': it is gone; it will be created again", t->name);
        }
    } else {
        if (t->res.exists)
            sb_addf(&d, "interrupted delete of '%s': it still exists", t->name);
        else {
            state_res_del(en->st, t->name);
            sb_addf(&d, "interrupted delete of '%s' had finished", t->name);
        }
    }
    state_pending_del(en->st, t->name);
    emit(en, EV_RECONCILE, t, d.buf);
    sb_release(&d);
    free(op);
}

/* a pending create that did not finish may have left pieces: remove them */
static int cleanup_prepare(struct runner *rn, struct task *t, struct err *e)
{
    (void)rn;
    (void)e;
    (void)t;
    return 0;
}

static void cleanup_finish(struct runner *rn, struct task *t)
{
    if (t->rc)
        runner_fail(rn, t);
    else
        t->status = T_OK;
}

int eng_reconcile(struct engine *en, struct err *e)
{
    if (!en->st->npend)
        return 0;
    int rc = eng_prepare_dirs(en, e);
    if (rc)
        return rc;
    struct runner rn = {.en = en, .prepare = rec_prepare, .finish = rec_finish, .keep_going = true};
    rn.tasks = xcalloc(en->st->npend + 1, sizeof *rn.tasks);
    for (size_t i = 0; i < en->st->npend; i++) {
        struct task *t = &rn.tasks[rn.n++];
        t->rn = &rn;
        t->node = -1;
        t->name = xstrdup(en->st->pend[i].resource);
        t->prov = prov_find(en->st->pend[i].type);
        t->op = OP_READ;
        if (!t->prov) {
            rn.n--;
            task_release(t);
            runner_release(&rn);
            return err_set(e, PE_STATE, NULL,
                           "state has a pending operation on '%s' of unknown type '%s'",
                           en->st->pend[i].resource, en->st->pend[i].type);
        }
    }
    /* the pending list changes as tasks finish: remember what needs cleanup */
    char **ops = xcalloc(rn.n + 1, sizeof *ops);
    struct val **ins = xcalloc(rn.n + 1, sizeof *ins);
    for (size_t i = 0; i < rn.n; i++) {
        const struct st_pending *p = state_pending(en->st, rn.tasks[i].name);
        ops[i] = xstrdup(p->op);
        ins[i] = p->inputs ? val_clone(p->inputs) : NULL;
    }
    rc = run_tasks(&rn, e);
    /* creates that had not finished: remove whatever they left */
    struct runner cl = {.en = en, .prepare = cleanup_prepare, .finish = cleanup_finish,
                        .keep_going = true};
    cl.tasks = xcalloc(rn.n + 1, sizeof *cl.tasks);
    for (size_t i = 0; i < rn.n && !rc; i++) {
        struct task *t = &rn.tasks[i];
        if (t->status != T_OK || t->res.exists ||
            (strcmp(ops[i], "create") != 0 && strcmp(ops[i], "replace") != 0))
            continue;
        struct task *c = &cl.tasks[cl.n++];
        c->rn = &cl;
        c->node = -1;
        c->name = xstrdup(t->name);
        c->prov = t->prov;
        c->op = OP_DELETE;
        c->old_props = ins[i] ? val_clone(ins[i]) : NULL;
    }
    if (!rc && cl.n)
        rc = run_tasks(&cl, e);
    runner_release(&cl);
    for (size_t i = 0; i < rn.n; i++) {
        free(ops[i]);
        val_free(ins[i]);
    }
    free(ops);
    free(ins);
    runner_release(&rn);
    if (!rc)
        rc = eng_save(en, e);
    return rc;
}

/* ---- refresh ---- */

struct refresh_ctx {
    bool write;
    int ndrift;
};

static int ref_prepare(struct runner *rn, struct task *t, struct err *e)
{
    (void)e;
    snapshot_old(rn->en, t, NULL);
    return 0;
}

static void ref_finish(struct runner *rn, struct task *t)
{
    struct engine *en = rn->en;
    if (t->rc) {
        runner_fail(rn, t);
        return;
    }
    t->status = T_OK;
    struct st_res *r = state_res(en->st, t->name);
    if (!t->res.exists) {
        XGROW(en->gone, en->capgone, en->ngone + 1);
        en->gone[en->ngone++] = xstrdup(t->name);
        emit(en, EV_DRIFT, t, "no longer exists");
        return;
    }
    if (t->res.drift) {
        XGROW(en->drift_names, en->capdrift, en->ndrift + 1);
        XGROW(en->drift_msgs, en->capdrift2, en->ndrift + 1);
        en->drift_names[en->ndrift] = xstrdup(t->name);
        en->drift_msgs[en->ndrift++] = xstrdup(t->res.drift);
        emit(en, EV_DRIFT, t, t->res.drift);
        /* recorded (when written) so a later `up` repairs it; the outputs
         * that describe the desired state are kept */
        if (r) {
            free(r->drift);
            r->drift = xstrdup(t->res.drift);
        }
        return;
    }
    if (r && r->drift) {
        free(r->drift); /* put back by hand since: no longer drifted */
        r->drift = NULL;
    }
    if (r && t->res.outputs) {
        struct val *o = stored_outputs(t->prov, t->res.outputs, r->outputs, t->old_outputs);
        if (!val_equal(r->outputs, o)) {
            val_free(r->outputs);
            r->outputs = o;
        } else {
            val_free(o);
        }
    }
    if (r && t->res.priv) {
        val_free(r->priv);
        r->priv = val_clone(t->res.priv);
    }
}

int eng_refresh(struct engine *en, bool write, int *ndrift, struct err *e)
{
    clear_marks(en);
    *ndrift = 0;
    if (!en->st->nres)
        return 0;
    int rc = eng_prepare_dirs(en, e);
    if (rc)
        return rc;
    struct runner rn = {.en = en, .prepare = ref_prepare, .finish = ref_finish, .keep_going = true};
    rn.tasks = xcalloc(en->st->nres + 1, sizeof *rn.tasks);
    for (size_t i = 0; i < en->st->nres; i++) {
        struct task *t = &rn.tasks[rn.n];
        t->prov = prov_find(en->st->res[i].type);
        if (!t->prov)
            continue;
        t->rn = &rn;
        t->node = -1;
        t->name = xstrdup(en->st->res[i].name);
        t->op = OP_READ;
        rn.n++;
    }
    rc = run_tasks(&rn, e);
    runner_release(&rn);
    *ndrift = (int)(en->ngone + en->ndrift);
    if (!rc && write) {
        for (size_t i = 0; i < en->ngone; i++)
            state_res_del(en->st, en->gone[i]);
        rc = eng_save(en, e);
    }
    return rc;
}

/* ---- apply ---- */

struct apply_ctx {
    int *done;
};

static int apply_prepare(struct runner *rn, struct task *t, struct err *e)
{
    struct engine *en = rn->en;
    if (t->op == OP_DELETE) {
        snapshot_old(en, t, NULL);
        return 0;
    }
    const struct eng_node *n = &rn->d->nodes[t->node];
    val_free(t->props);
    t->props = NULL;
    int rc = render_node(en, rn->d, (size_t)t->node, &t->props, e);
    if (rc)
        return rc;
    if (val_has_unknown(t->props))
        return err_set(e, PE_INTERNAL, NULL,
                       "resource '%s': properties still unknown after its dependencies ran",
                       t->name);
    const struct st_res *r = state_res(en->st, t->name);
    /* the decision is made again now that dependencies' outputs are final */
    if (!r || is_gone(en, t->name)) {
        t->op = OP_CREATE;
    } else if (strcmp(r->type, n->prov->type) != 0) {
        t->op = OP_REPLACE;
    } else {
        char **ch, *why;
        size_t nch;
        eng_diff(r->inputs, t->props, n->prov, &ch, &nch, &why);
        bool rebuilt = !why && !nch && !drift_of(en, t->name) &&
                       recreated_dep(en, rn->d, (size_t)t->node);
        t->op = why ? OP_REPLACE
                : nch || drift_of(en, t->name) || rebuilt ? OP_UPDATE
                                                          : OP_SAME;
        t->rebuild = rebuilt;
        for (size_t i = 0; i < nch; i++)
            free(ch[i]);
        free(ch);
        if (t->op == OP_REPLACE && is_protected(en, r, n)) {
            rc = protect_error(en, t->name, OP_REPLACE, why, e);
            free(why);
            return rc;
        }
        free(why);
    }
    snapshot_old(en, t, NULL);
    val_free(t->call_props);
    t->call_props = NULL;
    if (t->op != OP_SAME && seal_has_sealed(t->props)) {
        /* the provider needs the plaintext: the one place secrets are opened */
        if ((rc = seal_open(&t->call_props, t->props, SEAL_NEED | SEAL_PROMPT, e))) {
            err_prefix(e, "resource '%s': ", t->name);
            return rc;
        }
    }
    return 0;
}

static void mark_secret_outputs(const struct provider *p, struct val *outs)
{
    for (const struct prov_output *o = p->outputs; o && o->name; o++)
        if (o->flags & OUT_SECRET) {
            struct val *v = val_map_get(outs, o->name);
            if (v)
                v->secret = 1;
        }
}

/* outputs as state keeps them: secret ones marked, unchanged secrets with
 * their old ciphertext, new ones sealed when the project has a key */
static struct val *stored_outputs(const struct provider *p, const struct val *fresh,
                                  const struct val *stored, const struct val *opened)
{
    struct val *o = fresh ? val_clone(fresh) : val_map(NULL);
    if (p)
        mark_secret_outputs(p, o);
    seal_keep(o, stored, opened);
    struct err e = {0};
    seal_close(&o, SEAL_PROMPT, &e); /* without a key they stay plaintext (state tags them) */
    err_release(&e);
    return o;
}

static void apply_finish(struct runner *rn, struct task *t)
{
    struct engine *en = rn->en;
    if (t->rc) {
        /* the journal entry stays: the next run settles what the failure left */
        runner_fail(rn, t);
        return;
    }
    t->status = T_OK;
    if (t->op == OP_DELETE) {
        state_res_del(en->st, t->name);
        state_pending_del(en->st, t->name);
        record_result(rn, t->name);
        crash_point("saved", t->name);
        emit(en, EV_DONE, t, NULL);
        return;
    }
    const struct eng_node *n = &rn->d->nodes[t->node];
    struct st_res *old = state_res(en->st, t->name);
    struct st_res nr = {0};
    nr.name = xstrdup(t->name);
    nr.type = xstrdup(n->prov->type);
    nr.id = t->res.id ? xstrdup(t->res.id) : old && old->id ? xstrdup(old->id) : NULL;
    nr.inputs = val_clone(t->props);
    nr.inputs_hash = state_hash(nr.inputs);
    nr.outputs = t->res.outputs ? stored_outputs(n->prov, t->res.outputs, old ? old->outputs : NULL,
                                                 t->old_outputs)
                 : old          ? val_clone(old->outputs)
                                : val_map(NULL);
    nr.priv = t->res.priv ? val_clone(t->res.priv) : old && old->priv ? val_clone(old->priv) : NULL;
    nr.deps = xcalloc(n->ndeps + 1, sizeof *nr.deps);
    for (size_t i = 0; i < n->ndeps; i++)
        nr.deps[nr.ndeps++] = xstrdup(rn->d->nodes[n->deps[i]].name);
    nr.protect = n->protect;
    nr.created_ms = old && t->op == OP_UPDATE ? old->created_ms : tm_now_ms();
    nr.updated_ms = tm_now_ms();
    state_res_put(en->st, &nr);
    state_pending_del(en->st, t->name);
    record_result(rn, t->name);
    crash_point("saved", t->name);
    emit(en, EV_DONE, t, t->res.note);
}

int eng_apply(struct engine *en, const struct eng_desired *d, struct plan *p, int done[OP_COUNT],
              struct err *e)
{
    memset(done, 0, sizeof(int) * OP_COUNT);
    int rc = eng_prepare_dirs(en, e);
    /* the journal needs a document to replay onto */
    if (!rc)
        rc = eng_save(en, e);
    if (rc)
        return rc;
    struct runner rn = {.en = en, .d = d, .prepare = apply_prepare, .finish = apply_finish};
    rn.tasks = xcalloc(p->n + 1, sizeof *rn.tasks);
    size_t *task_of_node = xcalloc(d->n + 1, sizeof *task_of_node);
    for (size_t i = 0; i < p->n; i++) {
        struct plan_step *s = &p->steps[i];
        struct task *t = &rn.tasks[rn.n++];
        t->rn = &rn;
        t->node = s->node;
        t->name = xstrdup(s->name);
        t->prov = s->prov;
        t->op = s->op;
        if (s->node >= 0)
            task_of_node[s->node] = i;
    }
    for (size_t i = 0; i < rn.n; i++) {
        struct task *t = &rn.tasks[i];
        if (t->node >= 0) {
            const struct eng_node *n = &d->nodes[t->node];
            for (size_t k = 0; k < n->ndeps; k++)
                task_wait(t, task_of_node[n->deps[k]]);
        } else {
            /* deletes run after everything else, dependents first */
            for (size_t k = 0; k < rn.n; k++)
                if (rn.tasks[k].node >= 0)
                    task_wait(t, k);
            for (size_t k = 0; k < i; k++)
                if (rn.tasks[k].node < 0)
                    task_wait(t, k);
        }
    }
    free(task_of_node);
    en->mode = M_APPLY;
    rc = run_tasks(&rn, e);
    en->mode = M_IDLE;
    for (size_t i = 0; i < rn.n; i++)
        if (rn.tasks[i].status == T_OK && rn.tasks[i].op != OP_SAME)
            done[rn.tasks[i].op]++;
    if (rc && en->opts.rollback && !rn.save_failed) {
        /* remove what this run created, dependents first */
        struct runner rb = {.en = en, .d = d, .prepare = apply_prepare, .finish = apply_finish,
                            .keep_going = true};
        rb.tasks = xcalloc(rn.n + 1, sizeof *rb.tasks);
        for (size_t i = rn.n; i-- > 0;) {
            struct task *t = &rn.tasks[i];
            if (t->op != OP_CREATE || (t->status != T_OK && t->status != T_FAIL))
                continue;
            if (!state_res(en->st, t->name) && !state_pending(en->st, t->name))
                continue;
            struct task *x = &rb.tasks[rb.n++];
            x->rn = &rb;
            x->node = -1;
            x->name = xstrdup(t->name);
            x->prov = t->prov;
            x->op = OP_DELETE;
        }
        for (size_t i = 1; i < rb.n; i++)
            task_wait(&rb.tasks[i], i - 1);
        bool saved = en->host->cancel;
        en->host->cancel = 0;
        struct err re = {0};
        /* a failed create's journal entry: settle it before removing */
        if (en->st->npend)
            eng_reconcile(en, &re);
        err_release(&re);
        for (size_t i = 0; i < rb.n; i++)
            if (!state_res(en->st, rb.tasks[i].name))
                rb.tasks[i].status = T_OK;
        if (rb.n)
            run_tasks(&rb, &re);
        if (re.code)
            err_prefix(&re, "rollback: ");
        en->host->cancel = saved;
        for (size_t i = 0; i < rb.n; i++)
            if (rb.tasks[i].status == T_OK)
                done[OP_DELETE]++;
        err_release(&re);
        runner_release(&rb);
    }
    runner_release(&rn);
    return rc;
}

/* ---- destroy ---- */

static int destroy_prepare(struct runner *rn, struct task *t, struct err *e)
{
    (void)e;
    snapshot_old(rn->en, t, NULL);
    return 0;
}

static void destroy_finish(struct runner *rn, struct task *t)
{
    struct engine *en = rn->en;
    if (t->rc) {
        runner_fail(rn, t);
        return;
    }
    t->status = T_OK;
    state_res_del(en->st, t->name);
    state_pending_del(en->st, t->name);
    record_result(rn, t->name);
    crash_point("saved", t->name);
    emit(en, EV_DONE, t, NULL);
}

int eng_destroy_check(struct engine *en, struct err *e)
{
    if (!en->opts.ignore_protect && en->opts.env_protect) {
        err_set(e, PE_PROTECTED, NULL, "environment '%s' is protected; nothing was changed",
                en->st->env);
        err_hint(e, "it is marked protect: true in prenv.yaml; pass --unprotect if you "
                    "really mean to destroy it");
        return PE_PROTECTED;
    }
    if (!en->opts.ignore_protect)
        for (size_t i = 0; i < en->st->nres; i++)
            if (en->st->res[i].protect)
                return protect_error(en, en->st->res[i].name, OP_DELETE, NULL, e);
    return 0;
}

int eng_destroy(struct engine *en, size_t *left, struct err *e)
{
    *left = 0;
    int rc = eng_destroy_check(en, e);
    if (rc)
        return rc;
    rc = eng_prepare_dirs(en, e);
    if (rc)
        return rc;
    size_t *ord = reverse_state_order(en->st, NULL, 0);
    struct runner rn = {.en = en, .prepare = destroy_prepare, .finish = destroy_finish,
                        .keep_going = true};
    rn.tasks = xcalloc(en->st->nres + 1, sizeof *rn.tasks);
    for (size_t k = 0; ord[k] != (size_t)-1; k++) {
        const struct st_res *r = &en->st->res[ord[k]];
        struct task *t = &rn.tasks[rn.n++];
        t->rn = &rn;
        t->node = -1;
        t->name = xstrdup(r->name);
        t->prov = prov_find(r->type);
        t->op = OP_DELETE;
        if (!t->prov) {
            free(ord);
            runner_release(&rn);
            return err_set(e, PE_STATE, NULL, "resource '%s' has unknown type '%s'", r->name,
                           r->type);
        }
    }
    /* a resource waits for every resource that depends on it */
    for (size_t i = 0; i < rn.n; i++) {
        const struct st_res *ri = state_res(en->st, rn.tasks[i].name);
        for (size_t j = 0; j < rn.n; j++) {
            if (i == j)
                continue;
            const struct st_res *rj = state_res(en->st, rn.tasks[j].name);
            for (size_t d = 0; d < rj->ndeps; d++)
                if (!strcmp(rj->deps[d], ri->name))
                    task_wait(&rn.tasks[i], j);
        }
    }
    free(ord);
    rc = run_tasks(&rn, e);
    for (size_t i = 0; i < rn.n; i++)
        if (rn.tasks[i].status != T_OK)
            (*left)++;
    runner_release(&rn);
    return rc;
}

/* ---- logs ---- */

static void tail_file(const char *path, const char *label, int n, struct sb *out)
{
    char *text = NULL;
    size_t len = 0;
    struct err e = {0};
    if (fs_read(path, (size_t)64 << 20, &text, &len, &e) || !len) {
        err_release(&e);
        free(text);
        return;
    }
    size_t end = len;
    while (end && text[end - 1] == '\n')
        end--;
    size_t start = end;
    int lines = 0;
    while (start > 0 && lines < n) {
        start--;
        if (text[start] == '\n' && ++lines == n) {
            start++;
            break;
        }
    }
    sb_addf(out, "  --- %s ---\n", label);
    for (size_t i = start; i < end;) {
        const char *nl = memchr(text + i, '\n', end - i);
        size_t l = nl ? (size_t)(nl - (text + i)) : end - i;
        sb_adds(out, "  | ");
        sb_add(out, text + i, l);
        sb_addc(out, '\n');
        i += l + 1;
    }
    free(text);
}

void eng_log_tail(struct engine *en, const char *resource, int n, struct sb *out)
{
    DIR *d = opendir(en->log_dir);
    if (!d)
        return;
    size_t rl = strlen(resource);
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *f = de->d_name;
        size_t fl = strlen(f);
        if (strncmp(f, resource, rl) != 0 || fl < rl + 4 || strcmp(f + fl - 4, ".log") != 0)
            continue;
        if (f[rl] != '.')
            continue;
        XGROW(names, cap, nn + 1);
        names[nn++] = xstrdup(f);
    }
    closedir(d);
    for (size_t i = 1; i < nn; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *x = names[j];
            names[j] = names[j - 1];
            names[j - 1] = x;
        }
    for (size_t i = 0; i < nn; i++) {
        char *p = xasprintf("%s/%s", en->log_dir, names[i]);
        tail_file(p, names[i], n, out);
        free(p);
        free(names[i]);
    }
    free(names);
}

int eng_render(struct engine *en, const struct eng_desired *d, size_t i, struct val **props,
               struct err *e)
{
    return render_node(en, d, i, props, e);
}

int eng_call(struct engine *en, const struct provider *p, const char *resource, enum eng_op op,
             const struct val *props, struct prov_result *r, struct err *e)
{
    int rc = eng_prepare_dirs(en, e);
    if (rc)
        return rc;
    const struct st_res *sr = state_res(en->st, resource);
    struct val *oprops = NULL, *oold = NULL, *oouts = NULL;
    if (props && (rc = seal_open(&oprops, props, SEAL_NEED | SEAL_PROMPT, e)))
        return rc;
    struct err oe = {0};
    if (sr) {
        seal_open(&oold, sr->inputs, 0, &oe);
        seal_open(&oouts, sr->outputs, 0, &oe);
    }
    err_release(&oe);
    struct prov_call c = {
        .env = en->st->env,
        .resource = resource,
        .type = p->type,
        .project_dir = en->project_dir,
        .work_dir = en->work_dir,
        .log_dir = en->log_dir,
        .run_dir = en->run_dir,
        .props = oprops,
        .old_props = oold,
        .old_outputs = oouts,
        .priv = sr ? sr->priv : NULL,
        .id = sr ? sr->id : NULL,
        .host = en->host,
    };
    memset(r, 0, sizeof *r);
    switch (op) {
    case OP_CREATE:
        rc = p->create(&c, r, e);
        break;
    case OP_UPDATE:
        rc = p->update(&c, r, e);
        break;
    case OP_READ:
        rc = p->read(&c, r, e);
        break;
    case OP_DELETE:
        rc = p->remove(&c, e);
        break;
    default:
        rc = err_set(e, PE_INTERNAL, NULL, "eng_call: unsupported operation");
    }
    val_free(oprops);
    val_free(oold);
    val_free(oouts);
    return rc;
}

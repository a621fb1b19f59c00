/* op: the shared flow behind up, plan, destroy and refresh. */
#include "envs/op.h"
#include "envs/cost.h"

#include "core/routes.h"
#include "envs/artifact.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/seal.h"
#include "core/lib/xalloc.h"
#include "envs/envpolicy.h"
#include "envs/secret.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *op_user(void)
{
    const char *u = getenv("USER");
    if (u && *u)
        return xstrdup(u);
    struct passwd *pw = getpwuid(getuid());
    return xstrdup(pw ? pw->pw_name : "unknown");
}

static const struct val *outputs_cb(void *ctx, const char *resource)
{
    struct op_env *oe = ctx;
    return eng_outputs(oe->en, resource);
}

static int ref_cb(void *ctx, const char *env, const struct val **out, struct err *e)
{
    struct op_env *oe = ctx;
    for (size_t i = 0; i < oe->nrefs; i++)
        if (!strcmp(oe->refs[i]->env, env)) {
            *out = oe->refs[i]->outputs;
            return 0;
        }
    if (!strcmp(env, oe->st->env))
        return err_set(e, PE_CONFIG, NULL, "an environment cannot reference its own outputs "
                                           "through ref.%s",
                       env);
    struct state *s = NULL;
    int rc = state_load(&s, oe->proj->state_dir, env, e);
    if (rc) {
        err_hint(e, "bring '%s' up first: prenv env up %s", env, env);
        return rc;
    }
    XGROW(oe->refs, oe->caprefs, oe->nrefs + 1);
    oe->refs[oe->nrefs++] = s;
    *out = s->outputs;
    return 0;
}

static void tpl_ctx_init(struct op_env *oe, struct tpl_ctx *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->tpl = oe->tpl;
    tc->env = oe->env_meta;
    tc->pr = oe->st->pr;
    tc->artifact = oe->st->artifact;
    tc->project = oe->project_meta;
    tc->config = oe->cfg ? oe->cfg->values : NULL;
    tc->config_from = oe->def.config;
    tc->outputs = outputs_cb;
    tc->octx = oe;
    tc->ref_outputs = ref_cb;
    tc->rctx = oe;
}

static int render_cb(void *ctx, size_t i, struct val **props, struct err *e)
{
    struct op_env *oe = ctx;
    struct tpl_ctx tc;
    tpl_ctx_init(oe, &tc);
    int rc = tpl_render_props(props, &tc, i, e);
    /* the env's log level, flags, retention and redaction reach every
     * service through its properties, so a change shows in the plan and
     * updates the service */
    const struct tpl_res *r = &oe->tpl->res[i];
    if (!rc && r->prov && !strcmp(r->prov->type, "process.service"))
        env_policy_apply(*props, &oe->def, oe->cfg ? oe->cfg->values : NULL);
    return rc;
}

void op_close(struct op_env *oe)
{
    if (!oe)
        return;
    eng_free(oe->en);
    if (oe->locked)
        lock_release(&oe->lock, false);
    for (size_t i = 0; i < oe->nrefs; i++)
        state_free(oe->refs[i]);
    free(oe->refs);
    free(oe->nodes);
    val_free(oe->forgotten);
    val_free(oe->env_meta);
    val_free(oe->project_meta);
    state_free(oe->st);
    tpl_free(oe->tpl);
    envcfg_free(oe->cfg);
    env_def_release(&oe->def);
    project_free(oe->proj);
    free(oe);
}

static void build_meta(struct op_env *oe)
{
    struct state *st = oe->st;
    oe->env_meta = val_map(NULL);
    val_map_set(oe->env_meta, "name", NULL, val_str(st->env, NULL));
    val_map_set(oe->env_meta, "slug", NULL, val_str(st->env, NULL));
    val_map_set(oe->env_meta, "kind", NULL, val_str(env_kind_name(oe->def.kind), NULL));
    val_map_set(oe->env_meta, "owner", NULL, val_str(st->owner ? st->owner : "", NULL));
    val_map_set(oe->env_meta, "work_dir", NULL,
                val_str_own(xasprintf("%s/work/%s", oe->proj->state_dir, st->env), NULL));
    val_map_set(oe->env_meta, "sha", NULL, st->sha ? val_str(st->sha, NULL) : val_null(NULL));
    val_map_set(oe->env_meta, "tags", NULL, val_clone(st->tags));
    val_map_set(oe->env_meta, "protected", NULL, val_bool(oe->def.protect, NULL));
    oe->project_meta = val_map(NULL);
    val_map_set(oe->project_meta, "name", NULL, val_str(oe->proj->name, NULL));
    val_map_set(oe->project_meta, "dir", NULL, val_str(oe->proj->dir, NULL));
    if (oe->def.kind == ENV_PREVIEW) {
        struct val *pr = st->pr ? val_clone(st->pr) : val_map(NULL);
        if (!val_map_get(pr, "number"))
            val_map_set(pr, "number", NULL, val_int(oe->def.number, NULL));
        if (st->sha)
            val_map_set(pr, "sha", NULL, val_str(st->sha, NULL));
        static const char *const fields[] = {"sha", "branch", "author", "title", NULL};
        for (size_t i = 0; fields[i]; i++)
            if (!val_map_get(pr, fields[i]))
                val_map_set(pr, fields[i], NULL, val_null(NULL));
        val_free(st->pr);
        st->pr = pr;
    }
}


/* origin_of: the "file:line" (or "--set") of the config value at key, or of
 * the first leaf under it */
static const char *origin_of(const struct op_env *oe, const char *key)
{
    const struct val *o = oe->cfg->origin;
    const struct val *v = val_map_get(o, key);
    if (v && v->kind == VAL_STR)
        return v->u.str.s;
    size_t n = strlen(key);
    for (size_t i = 0; o && o->kind == VAL_MAP && i < o->u.map.n; i++)
        if (!strncmp(o->u.map.e[i].key, key, n) && o->u.map.e[i].key[n] == '.' &&
            o->u.map.e[i].v->kind == VAL_STR)
            return o->u.map.e[i].v->u.str.s;
    return "an imported layer";
}

/* own_value: was every config leaf at or under key written in the env's own
 * config file or by --set (rather than inherited from an imported layer)? */
static bool own_value(const struct op_env *oe, const char *key)
{
    const struct val *o = oe->cfg->origin;
    const char *own = oe->def.config;
    size_t n = strlen(key), ol = own ? strlen(own) : 0;
    for (size_t i = 0; o && o->kind == VAL_MAP && i < o->u.map.n; i++) {
        const char *k = o->u.map.e[i].key;
        const struct val *v = o->u.map.e[i].v;
        if (strncmp(k, key, n) || (k[n] && k[n] != '.') || v->kind != VAL_STR)
            continue;
        const char *f = v->u.str.s;
        bool mine = !strcmp(f, "--set") || (own && !strncmp(f, own, ol) && (!f[ol] || f[ol] == ':'));
        if (!mine)
            return false;
    }
    return true;
}

static void apply_meta(struct op_env *oe, const struct op_opts *o)
{
    struct state *st = oe->st;
    free(st->kind);
    st->kind = xstrdup(env_kind_name(oe->def.kind));
    free(st->project);
    st->project = xstrdup(oe->proj->name);
    if (o->owner) {
        free(st->owner);
        st->owner = xstrdup(o->owner);
    } else if (!st->owner) {
        st->owner = op_user();
    }
    if (o->ttl_ms > 0) {
        st->ttl_ms = o->ttl_ms;
        st->expires_ms = tm_now_ms() + o->ttl_ms;
    } else if (oe->is_new && oe->def.ttl_ms > 0) {
        st->ttl_ms = oe->def.ttl_ms;
        st->expires_ms = st->created_ms + oe->def.ttl_ms;
    }
    if (o->sha) {
        free(st->sha);
        st->sha = xstrdup(o->sha);
    }
    st->idle_ms = oe->def.idle_ms;
    /* --set values persist with the env; --unset removes them */
    if (o->sets)
        val_merge(&st->sets, o->sets);
    for (size_t i = 0; i < o->nunsets; i++) {
        const char *k = o->unsets[i];
        struct val *m = st->sets;
        const char *dot;
        while (m && (dot = strchr(k, '.'))) {
            char *head = xstrndup(k, (size_t)(dot - k));
            m = val_map_get(m, head);
            free(head);
            k = dot + 1;
        }
        if (m && m->kind == VAL_MAP)
            val_free(val_map_take(m, k));
    }
    if (!oe->cfg)
        return; /* opened without config (show, destroy): keep what was recorded */
    /* the schedule: the env's config `schedule` keys over its kind's or
     * stage's policy; `schedule: null` there runs the env without one. A
     * protected stage takes only what is written for it — in prenv.yaml's
     * stage or its own config file (or --set) — never a schedule it would
     * inherit from a shared layer such as envs/base.yaml */
    const struct val *sc = val_map_get(oe->cfg->values, "schedule");
    if (sc && oe->def.protect && !own_value(oe, "schedule")) {
        fprintf(stderr,
                "prenv: warning: %s is protected: the schedule from %s does not apply to it; "
                "write it in %s or under stages.%s in prenv.yaml to mean it\n",
                oe->st->env, origin_of(oe, "schedule"),
                oe->def.config ? oe->def.config : "its config file", oe->st->env);
        sc = NULL;
    }
    val_free(st->schedule);
    st->schedule = NULL;
    if (!sc || sc->kind == VAL_MAP) {
        const struct val *base = oe->def.schedule;
        struct val *m = base && base->kind == VAL_MAP ? val_clone(base) : NULL;
        if (sc) {
            if (!m)
                m = val_map(NULL);
            for (size_t i = 0; i < sc->u.map.n; i++)
                val_map_set(m, sc->u.map.e[i].key, NULL, val_clone(sc->u.map.e[i].v));
        }
        st->schedule = m;
    }
    /* tags: the project's, then config's `tags`, then prenv's own */
    val_free(st->tags);
    st->tags = val_clone(oe->proj->tags);
    const struct val *ct = oe->cfg ? val_map_get(oe->cfg->values, "tags") : NULL;
    if (ct && ct->kind == VAL_MAP)
        for (size_t i = 0; i < ct->u.map.n; i++) {
            struct sb b;
            sb_init(&b);
            val_text(&b, ct->u.map.e[i].v);
            val_map_set(st->tags, ct->u.map.e[i].key, NULL, val_str_own(sb_steal(&b), NULL));
        }
    /* the taxonomy (docs/files.md, "Tags"): Environment and Owner are
     * prenv's own; Application is the project's name unless a layer sets it;
     * CostCenter and DataClass come from config, where the older spellings
     * cost_center and data_class also count */
    if (!val_map_get(st->tags, "Application"))
        val_map_set(st->tags, "Application", NULL, val_str(oe->proj->name, NULL));
    static const char *const alias[][2] = {{"CostCenter", "cost_center"},
                                           {"DataClass", "data_class"}};
    for (size_t i = 0; i < 2; i++) {
        const char *old = val_map_str(st->tags, alias[i][1], NULL);
        if (!val_map_get(st->tags, alias[i][0]) && old)
            val_map_set(st->tags, alias[i][0], NULL, val_str(old, NULL));
    }
    val_map_set(st->tags, "Environment", NULL, val_str(st->env, NULL));
    val_map_set(st->tags, "Owner", NULL, val_str(st->owner, NULL));
    val_map_set(st->tags, "env", NULL, val_str(st->env, NULL));
    val_map_set(st->tags, "kind", NULL, val_str(st->kind, NULL));
    val_map_set(st->tags, "owner", NULL, val_str(st->owner, NULL));
    val_map_set(st->tags, "project", NULL, val_str(oe->proj->name, NULL));
    val_free(st->layers);
    st->layers = val_list(NULL);
    for (size_t i = 0; oe->cfg && i < oe->cfg->nlayers; i++)
        val_list_push(st->layers, val_str(oe->cfg->layers[i].name, NULL));
}

/* pin the artifact asked for, or verify the one the env has: the template
 * then reads ${artifact.path}, the stored copy whose digest was just checked */
static int settle_artifact(struct op_env *oe, const struct op_opts *o, struct err *e)
{
    struct state *st = oe->st;
    const char *sd = oe->proj->state_dir, *pd = oe->proj->dir;
    struct val *pin = NULL;
    int rc = 0;
    if (o->artifact)
        rc = artifact_pin(&pin, o->artifact, o->artifact_name, o->artifact_version, pd, sd, e);
    else if (o->artifact_pin) {
        pin = val_clone(o->artifact_pin);
        rc = artifact_verify(pin, pd, sd, e);
    } else if (st->artifact && st->artifact->kind == VAL_MAP)
        rc = artifact_verify(st->artifact, pd, sd, e);
    if (rc) {
        val_free(pin);
        err_prefix(e, "environment '%s': ", st->env);
        return rc;
    }
    if (pin) {
        const char *was = st->artifact ? artifact_digest(st->artifact) : NULL;
        oe->artifact_changed = !was || strcmp(was, artifact_digest(pin)) != 0;
        val_free(st->artifact);
        st->artifact = pin;
    }
    return 0;
}

int op_open(struct op_env **out, const char *env, unsigned flags, const struct op_opts *o,
            struct err *e)
{
    *out = NULL;
    struct op_env *oe = xcalloc(1, sizeof *oe);
    char *dir = NULL;
    int rc = project_find(&dir, o->project_dir, e);
    if (!rc)
        rc = project_load(&oe->proj, dir, o->state_dir, e);
    free(dir);
    if (rc)
        goto fail;
    if ((rc = project_env(&oe->def, oe->proj, env, e)))
        goto fail;
    if (o->ttl_ms > 0 && oe->def.kind == ENV_STAGE) {
        rc = err_set(e, PE_USAGE, NULL, "'%s' is a stage, and stages never expire: --ttl is for "
                                        "previews and sandboxes",
                     env);
        goto fail;
    }
    if (flags & OP_LOCK) {
        if ((rc = lock_acquire(&oe->lock, oe->proj->state_dir, env, o->command,
                               o->lock_wait_ms, o->on_lock, o->lock_ctx, e)))
            goto fail;
        oe->locked = true;
    }
    rc = state_load(&oe->st, oe->proj->state_dir, env, e);
    if (rc == PE_NOTFOUND && !(flags & OP_NEED_STATE)) {
        err_release(e);
        rc = 0;
        oe->st = state_new(env, env_kind_name(oe->def.kind), oe->proj->name);
        oe->is_new = true;
    } else if (rc == PE_NOTFOUND) {
        err_hint(e, "`prenv env list` shows the environments that exist; `prenv env up %s` "
                    "creates this one",
                 env);
        goto fail;
    } else if (rc) {
        goto fail;
    }
    if (!(flags & OP_NO_CONFIG)) {
        struct val *sets = val_clone(oe->st->sets);
        if (o->sets)
            val_merge(&sets, o->sets);
        for (size_t i = 0; i < o->nunsets; i++) {
            struct val *m = sets;
            const char *k = o->unsets[i], *dot;
            while (m && (dot = strchr(k, '.'))) {
                char *head = xstrndup(k, (size_t)(dot - k));
                m = val_map_get(m, head);
                free(head);
                k = dot + 1;
            }
            if (m && m->kind == VAL_MAP)
                val_free(val_map_take(m, k));
        }
        rc = envcfg_load(&oe->cfg, oe->proj, oe->def.config, sets, e);
        val_free(sets);
        if (!rc) {
            const struct val *sc = val_map_get(oe->cfg->values, "schedule");
            if (sc && sc->kind != VAL_NULL)
                rc = project_check_schedule(sc, e);
        }
        if (!rc)
            rc = env_policy_check(oe->cfg->values, e);
        if (rc) {
            err_prefix(e, "environment '%s': ", env);
            goto fail;
        }
    }
    apply_meta(oe, o);
    build_meta(oe);
    if ((flags & OP_LOCK) && (flags & OP_LOAD_TEMPLATE) && (rc = settle_artifact(oe, o, e)))
        goto fail;
    if (flags & OP_LOAD_TEMPLATE) {
        char *abs = fs_abspath(oe->proj->dir, oe->proj->template_file);
        if (!fs_exists(abs)) {
            rc = err_set(e, PE_CONFIG, NULL, "template %s does not exist",
                         oe->proj->template_file);
            err_hint(e, "'template:' in %s names it", PROJECT_FILE);
            free(abs);
            goto fail;
        }
        rc = tpl_load(&oe->tpl, abs, oe->proj->template_file, e);
        free(abs);
        if (rc)
            goto fail;
        oe->nodes = xcalloc(oe->tpl->n + 1, sizeof *oe->nodes);
        for (size_t i = 0; i < oe->tpl->n; i++) {
            const struct tpl_res *r = &oe->tpl->res[i];
            oe->nodes[i] = (struct eng_node){r->name, r->prov, r->deps, r->ndeps, r->protect};
        }
        oe->desired = (struct eng_desired){oe->nodes, oe->tpl->n, oe->tpl->order, render_cb, oe};
    }
    oe->host.state_dir = oe->proj->state_dir;
    oe->host.port_lo = oe->proj->port_lo;
    oe->host.router_port = oe->proj->router.port;
    oe->host.port_hi = oe->proj->port_hi;
    oe->host.env_protected = oe->def.protect;
    oe->host.asleep = oe->st->asleep_why != NULL;
    oe->host.force = o->force;
    oe->host.tags = oe->st->tags;
    struct eng_opts eo = {
        .parallel = o->parallel,
        .rollback = o->rollback,
        .ignore_protect = o->ignore_protect,
        .env_protect = oe->def.protect,
        .on_event = o->on_event,
        .ev_ctx = o->ev_ctx,
    };
    oe->en = eng_new(oe->st, oe->proj->state_dir, oe->proj->dir, &oe->host, &eo);
    *out = oe;
    return 0;
fail:
    op_close(oe);
    return rc;
}

/* route_hosts: every router.route host the plan knows; with claim, they are
 * claimed for this env (the router then answers "being created" for them),
 * otherwise only checked against other environments' claims */
static int route_hosts(struct op_env *oe, const struct plan *p, bool claim, struct err *e)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct plan_step *ps = &p->steps[i];
        if (!ps->props || !ps->prov || strcmp(ps->prov->type, "router.route"))
            continue;
        const struct val *h = val_map_get(ps->props, "host");
        if (!h || h->kind != VAL_STR || !route_host_valid(h->u.str.s, NULL))
            continue;
        int rc = 0;
        if (claim) {
            rc = route_claim(oe->proj->state_dir, h->u.str.s, oe->st->env, e);
        } else {
            char *owner = route_owner(oe->proj->state_dir, h->u.str.s);
            if (owner && strcmp(owner, oe->st->env)) {
                rc = err_set(e, PE_EXISTS, NULL, "host %s is already routed to environment '%s'",
                             h->u.str.s, owner);
                err_hint(e, "hosts are unique across environments: give this one another host "
                            "(its template or config), or destroy '%s'",
                         owner);
            }
            free(owner);
        }
        if (rc) {
            if (!e->pos.src)
                e->pos = h->pos;
            err_prefix(e, "resource '%s': ", ps->name);
            return rc;
        }
    }
    return 0;
}

int op_prepare(struct op_env *oe, const struct op_opts *o, struct plan *p, struct err *e)
{
    memset(p, 0, sizeof *p);
    int rc = 0;
    if (!oe->is_new && oe->locked) {
        if ((rc = eng_reconcile(oe->en, e)))
            return rc;
    }
    if (!oe->is_new && !o->no_refresh) {
        int nd = 0;
        if ((rc = eng_refresh(oe->en, false, &nd, e)))
            return rc;
    }
    rc = eng_plan(oe->en, &oe->desired, p, e);
    if (!rc && (rc = route_hosts(oe, p, false, e)))
        plan_release(p); /* callers release a plan only when planning succeeded */
    if (rc)
        err_prefix(e, "environment '%s': ", oe->st->env);
    return rc;
}

static struct val *changes_val(const int done[OP_COUNT])
{
    struct val *c = val_map(NULL);
    val_map_set(c, "create", NULL, val_int(done[OP_CREATE], NULL));
    val_map_set(c, "update", NULL, val_int(done[OP_UPDATE], NULL));
    val_map_set(c, "replace", NULL, val_int(done[OP_REPLACE], NULL));
    val_map_set(c, "delete", NULL, val_int(done[OP_DELETE], NULL));
    return c;
}

static void history(struct op_env *oe, const char *operation, const char *result,
                    const struct val *changes, long long started_ms, const struct val *extra)
{
    struct val *rec = val_map(NULL);
    struct sb t;
    sb_init(&t);
    tm_rfc3339(&t, tm_now_ms());
    val_map_set(rec, "time", NULL, val_str_own(sb_steal(&t), NULL));
    char *user = op_user();
    val_map_set(rec, "user", NULL, val_str_own(user, NULL));
    val_map_set(rec, "operation", NULL, val_str(operation, NULL));
    val_map_set(rec, "sha", NULL, oe->st->sha ? val_str(oe->st->sha, NULL) : val_null(NULL));
    val_map_set(rec, "result", NULL, val_str(result, NULL));
    if (started_ms)
        val_map_set(rec, "duration_ms", NULL, val_int(tm_mono_ms() - started_ms, NULL));
    if (changes)
        val_map_set(rec, "changes", NULL, val_clone(changes));
    if (oe->st->last_error && strcmp(result, "ok") != 0)
        val_map_set(rec, "error", NULL, val_str(oe->st->last_error, NULL));
    const char *digest = oe->st->artifact ? artifact_digest(oe->st->artifact) : NULL;
    if (digest)
        val_map_set(rec, "artifact", NULL, val_str(digest, NULL));
    cost_counts(rec, oe->st); /* what it runs, for `prenv cost` */
    for (size_t i = 0; extra && extra->kind == VAL_MAP && i < extra->u.map.n; i++)
        val_map_set(rec, extra->u.map.e[i].key, NULL, val_clone(extra->u.map.e[i].v));
    struct err e = {0};
    state_history_append(oe->proj->state_dir, oe->st->env, rec, &e);
    err_release(&e);
    val_free(rec);
}

void op_history(struct op_env *oe, const char *operation, const char *result,
                const struct val *changes, long long started_ms)
{
    history(oe, operation, result, changes, started_ms, NULL);
}

/* per-resource change list for history */
static struct val *resource_changes(const struct plan *p)
{
    struct val *l = val_list(NULL);
    for (size_t i = 0; i < p->n; i++) {
        if (p->steps[i].op == OP_SAME)
            continue;
        struct val *m = val_map(NULL);
        val_map_set(m, "resource", NULL, val_str(p->steps[i].name, NULL));
        val_map_set(m, "op", NULL, val_str(eng_op_name(p->steps[i].op), NULL));
        if (p->steps[i].nchanged) {
            struct val *ch = val_list(NULL);
            for (size_t k = 0; k < p->steps[i].nchanged; k++)
                val_list_push(ch, val_str(p->steps[i].changed[k], NULL));
            val_map_set(m, "properties", NULL, ch);
        }
        val_list_push(l, m);
    }
    return l;
}

/* the project's key, before anything changes, when the plan will open a
 * secret or store a secret output: asked for (or refused) now rather than
 * halfway through the run */
static int need_key(struct op_env *oe, const struct plan *p, struct err *e)
{
    if (!oe->proj->salt)
        return 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct plan_step *s = &p->steps[i];
        if (s->op == OP_SAME || s->op == OP_DELETE || !s->prov)
            continue;
        bool secret_out = false;
        for (const struct prov_output *o = s->prov->outputs; o && o->name; o++)
            if (o->flags & OUT_SECRET)
                secret_out = true;
        if (!secret_out && !seal_has_sealed(s->props))
            continue;
        const struct secret_key *k = NULL;
        int rc = secret_project_key(&k, SEAL_PROMPT, e);
        if (rc) {
            const struct val *f = seal_first(s->props);
            char *at = f && f->pos.src ? xasprintf(" (the one at %s:%d)", f->pos.src->name,
                                                   f->pos.line)
                                       : xstrdup("");
            err_prefix(e, "environment '%s': resource '%s' %s%s: ", oe->st->env, s->name,
                       f ? "is given secrets" : "makes secret outputs, which are stored encrypted",
                       at);
            free(at);
            return rc;
        }
        return 0;
    }
    return 0;
}

int op_apply(struct op_env *oe, const struct op_opts *o, struct plan *p, int done[OP_COUNT],
             long long started_ms, struct err *e)
{
    (void)o;
    struct state *st = oe->st;
    if (oe->is_new) {
        free(st->status);
        st->status = xstrdup("creating");
    }
    st->activity_ms = tm_now_ms(); /* a deploy is activity (the idle TTL) */
    int rc = need_key(oe, p, e);
    if (rc)
        return rc;
    rc = route_hosts(oe, p, true, e);
    if (rc)
        err_prefix(e, "environment '%s': ", st->env);
    else
        rc = eng_apply(oe->en, &oe->desired, p, done, e);
    struct val *outs = NULL;
    if (!rc) {
        struct tpl_ctx tc;
        tpl_ctx_init(oe, &tc);
        rc = tpl_render_outputs(&outs, &tc, e);
    }
    free(st->status);
    free(st->last_error);
    st->last_error = NULL;
    if (!rc) {
        st->status = xstrdup(st->asleep_why ? "asleep" : "up");
        val_free(st->outputs);
        st->outputs = outs;
    } else {
        st->status = xstrdup("failed");
        st->last_error = xstrdup(e->msg ? e->msg : err_code_name(rc));
    }
    struct err se = {0};
    int src = eng_save(oe->en, &se);
    if (src && !rc) {
        err_move(e, &se);
        rc = src;
    }
    err_release(&se);
    oe->is_new = false;
    struct val *ch = changes_val(done);
    val_map_set(ch, "resources", NULL, resource_changes(p));
    history(oe, o->operation ? o->operation : "up", rc ? "failed" : "ok", ch, started_ms,
            o->history_extra);
    val_free(ch);
    return rc;
}

int op_touch(struct op_env *oe, const struct op_opts *o, struct err *e)
{
    if (oe->is_new && !oe->artifact_changed && !o->operation)
        return 0;
    oe->st->activity_ms = tm_now_ms();
    /* outputs may depend on refreshed resource outputs */
    struct tpl_ctx tc;
    tpl_ctx_init(oe, &tc);
    struct val *outs = NULL;
    if (oe->tpl && !tpl_render_outputs(&outs, &tc, e)) {
        val_free(oe->st->outputs);
        oe->st->outputs = outs;
    } else if (e->code) {
        return e->code;
    }
    const char *want = oe->st->asleep_why ? "asleep" : "up";
    if (strcmp(oe->st->status, want) != 0 && !oe->st->npend) {
        free(oe->st->status);
        oe->st->status = xstrdup(want);
        free(oe->st->last_error);
        oe->st->last_error = NULL;
    }
    int rc = eng_save(oe->en, e);
    if (!rc && (oe->artifact_changed || o->operation)) {
        int done[OP_COUNT] = {0};
        struct val *ch = changes_val(done);
        history(oe, o->operation ? o->operation : "up", "ok", ch, 0, o->history_extra);
        val_free(ch);
    }
    return rc;
}

static void release_env_ports(const char *state_dir, const char *env)
{
    char *dir = xasprintf("%s/ports", state_dir);
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        return;
    }
    size_t el = strlen(env);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        char buf[256];
        struct err e = {0};
        char *text = NULL;
        size_t len = 0;
        if (!fs_read(p, sizeof buf, &text, &len, &e) && len > el && !strncmp(text, env, el) &&
            text[el] == ' ')
            unlink(p);
        err_release(&e);
        free(text);
        free(p);
    }
    closedir(d);
    free(dir);
}

int op_destroy(struct op_env *oe, const struct op_opts *o, size_t *left, long long started_ms,
               struct err *e)
{
    (void)o;
    struct state *st = oe->st;
    *left = 0;
    /* protection is checked before anything is touched */
    int rc = eng_destroy_check(oe->en, e);
    if (rc)
        return rc;
    if ((rc = eng_reconcile(oe->en, e))) {
        if (!o->forget)
            return rc;
        err_release(e); /* --forget: what cannot even be read is forgotten below */
        rc = 0;
    }
    free(st->status);
    st->status = xstrdup("destroying");
    if ((rc = eng_save(oe->en, e)))
        return rc;
    size_t before = st->nres;
    rc = eng_destroy(oe->en, left, e);
    if ((rc || *left || st->npend) && o->forget && rc != PE_PROTECTED) {
        /* the last resort: the state forgets what could not be removed, and
         * says what may still exist */
        oe->forgotten = val_list(NULL);
        for (size_t i = 0; i < st->nres; i++)
            val_list_push(oe->forgotten, val_str_own(xasprintf("%s (%s, id %s)", st->res[i].name,
                                                               st->res[i].type,
                                                               st->res[i].id ? st->res[i].id : "-"),
                                                     NULL));
        for (size_t i = 0; i < st->npend; i++)
            if (!state_res(st, st->pend[i].resource))
                val_list_push(oe->forgotten,
                              val_str_own(xasprintf("%s (%s, interrupted %s)", st->pend[i].resource,
                                                    st->pend[i].type, st->pend[i].op),
                                          NULL));
        while (st->nres)
            state_res_del(st, st->res[0].name);
        while (st->npend)
            state_pending_del(st, st->pend[0].resource);
        err_release(e);
        rc = 0;
        *left = 0;
    }
    int done[OP_COUNT] = {0};
    done[OP_DELETE] = (int)(before - st->nres);
    struct val *ch = changes_val(done);
    if (rc || *left) {
        free(st->status);
        st->status = xstrdup("destroy-failed");
        free(st->last_error);
        st->last_error = xstrdup(e->msg ? e->msg : "some resources could not be removed");
        struct err se = {0};
        eng_save(oe->en, &se);
        err_release(&se);
        op_history(oe, "destroy", "failed", ch, started_ms);
        val_free(ch);
        return rc ? rc : PE_PROVIDER;
    }
    /* everything is gone: remove the env's files, then its state, last */
    const char *sd = oe->proj->state_dir;
    const char *subs[] = {"work", "logs", "run"};
    for (size_t i = 0; i < 3 && !rc; i++) {
        char *p = xasprintf("%s/%s/%s", sd, subs[i], st->env);
        rc = fs_rm_rf(p, e);
        free(p);
    }
    release_env_ports(sd, st->env);
    if (!rc)
        route_release_env(sd, st->env);
    if (!rc) {
        op_history(oe, "destroy", "ok", ch, started_ms);
        char *h = xasprintf("%s/history/%s.jsonl", sd, st->env);
        /* the history moves into the project's audit log: the env is gone */
        char *text = NULL;
        size_t len = 0;
        struct err re = {0};
        if (!fs_read(h, STATE_MAX_FILE, &text, &len, &re) && len) {
            char *audit = xasprintf("%s/history/destroyed.jsonl", sd);
            struct sb b;
            sb_init(&b);
            sb_adds(&b, "{\"env\": ");
            sb_add_json_str(&b, st->env);
            sb_adds(&b, ", \"tags\": ");
            if (st->tags)
                val_json(&b, st->tags, 0);
            else
                sb_adds(&b, "null");
            sb_adds(&b, ", \"history\": [");
            for (char *p = text, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
                if (p != text)
                    sb_addc(&b, ',');
                sb_add(&b, p, (size_t)(nl - p));
            }
            sb_adds(&b, "]}\n");
            fs_append_durable(audit, b.buf, b.len, 0600, &re);
            sb_release(&b);
            free(audit);
        }
        err_release(&re);
        free(text);
        unlink(h);
        free(h);
        rc = state_delete(sd, st->env, e);
    }
    if (!rc && oe->locked) {
        lock_release(&oe->lock, true);
        oe->locked = false;
    }
    val_free(ch);
    return rc;
}

int op_refresh(struct op_env *oe, const struct op_opts *o, int *ndrift, struct err *e)
{
    (void)o;
    int rc = eng_reconcile(oe->en, e);
    if (!rc)
        rc = eng_refresh(oe->en, true, ndrift, e);
    op_history(oe, "refresh", rc ? "failed" : *ndrift ? "drift" : "ok", NULL, 0);
    return rc;
}

int op_refresh_read(struct op_env *oe, int *ndrift, struct err *e)
{
    return eng_refresh(oe->en, false, ndrift, e);
}

int op_config(struct op_env *oe, struct val **out, struct err *e)
{
    struct tpl_ctx tc;
    tpl_ctx_init(oe, &tc);
    return tpl_render_config(out, &tc, e);
}

int op_render(struct op_env *oe, struct val **out, struct err *e)
{
    struct val *m = val_map(NULL);
    struct val *res = val_map(NULL);
    val_map_set(m, "env", NULL, val_str(oe->st->env, NULL));
    val_map_set(m, "kind", NULL, val_str(oe->st->kind, NULL));
    int rc = 0;
    for (size_t k = 0; k < oe->tpl->n && !rc; k++) {
        size_t i = oe->tpl->order[k];
        struct val *props = NULL;
        if ((rc = render_cb(oe, i, &props, e)))
            break;
        struct val *r = val_map(NULL);
        val_map_set(r, "type", NULL, val_str(oe->tpl->res[i].prov->type, NULL));
        struct val *deps = val_list(NULL);
        for (size_t d = 0; d < oe->tpl->res[i].ndeps; d++)
            val_list_push(deps, val_str(oe->tpl->res[oe->tpl->res[i].deps[d]].name, NULL));
        val_map_set(r, "depends_on", NULL, deps);
        val_map_set(r, "protect", NULL, val_bool(oe->tpl->res[i].protect, NULL));
        val_map_set(r, "properties", NULL, props);
        val_map_set(res, oe->tpl->res[i].name, NULL, r);
    }
    val_map_set(m, "resources", NULL, res);
    if (!rc) {
        struct tpl_ctx tc;
        tpl_ctx_init(oe, &tc);
        struct val *outs = NULL;
        if (!(rc = tpl_render_outputs(&outs, &tc, e)))
            val_map_set(m, "outputs", NULL, outs);
    }
    if (rc) {
        val_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void op_result_release(struct op_result *r)
{
    free(r->error);
    val_free(r->outputs);
    val_free(r->removed);
    val_free(r->left);
    memset(r, 0, sizeof *r);
}

static void result_error(struct op_result *r, struct err *e)
{
    r->rc = e->code ? e->code : PE_INTERNAL;
    r->transient = e->code == PE_TRANSIENT || e->code == PE_LOCKED;
    struct sb b;
    sb_init(&b);
    if (e->pos.src)
        sb_addf(&b, "%s:%d:%d: ", e->pos.src->name, e->pos.line, e->pos.col);
    sb_adds(&b, e->msg ? e->msg : err_code_name(e->code));
    if (e->hint)
        sb_addf(&b, " (%s)", e->hint);
    r->error = sb_steal(&b);
    err_release(e);
}

int op_run_up(const char *env, const struct op_opts *o, const struct val *pr,
              struct op_result *r)
{
    memset(r, 0, sizeof *r);
    long long t0 = tm_mono_ms();
    struct err e = {0};
    struct op_env *oe = NULL;
    if (op_open(&oe, env, OP_LOCK | OP_LOAD_TEMPLATE, o, &e)) {
        result_error(r, &e);
        return r->rc;
    }
    if (pr && pr->kind == VAL_MAP) {
        struct val *m = oe->st->pr ? val_clone(oe->st->pr) : val_map(NULL);
        val_merge(&m, pr);
        val_free(oe->st->pr);
        oe->st->pr = m;
        val_free(oe->env_meta);
        val_free(oe->project_meta);
        oe->env_meta = oe->project_meta = NULL;
        build_meta(oe);
    }
    if (o->on_open)
        o->on_open(o->open_ctx, oe);
    struct plan p = {0};
    int rc = op_prepare(oe, o, &p, &e);
    if (!rc && oe->host.cancel)
        rc = err_set(&e, PE_CANCELED, NULL, "canceled before anything was changed");
    if (!rc) {
        int changes = p.counts[OP_CREATE] + p.counts[OP_UPDATE] + p.counts[OP_REPLACE] +
                      p.counts[OP_DELETE];
        if (changes)
            rc = op_apply(oe, o, &p, r->done, t0, &e);
        else
            rc = op_touch(oe, o, &e);
    }
    plan_release(&p);
    if (rc)
        result_error(r, &e);
    r->outputs = oe->st->outputs ? val_clone(oe->st->outputs) : NULL;
    r->ms = tm_mono_ms() - t0;
    if (o->on_close)
        o->on_close(o->open_ctx, oe);
    op_close(oe);
    return r->rc;
}

int op_run_destroy(const char *env, const struct op_opts *o, struct op_result *r)
{
    memset(r, 0, sizeof *r);
    long long t0 = tm_mono_ms();
    struct err e = {0};
    struct op_env *oe = NULL;
    r->removed = val_list(NULL);
    r->left = val_list(NULL);
    int rc = op_open(&oe, env, OP_LOCK | OP_NEED_STATE | OP_NO_CONFIG, o, &e);
    if (rc == PE_NOTFOUND && !oe && e.msg && strstr(e.msg, "does not exist")) {
        err_release(&e);
        r->ms = tm_mono_ms() - t0;
        return 0; /* nothing to destroy */
    }
    if (rc) {
        result_error(r, &e);
        return r->rc;
    }
    if (o->on_open)
        o->on_open(o->open_ctx, oe);
    /* the receipt: what exists before, and what is left after */
    char **before = xcalloc(oe->st->nres + 1, sizeof *before);
    size_t nb = oe->st->nres;
    for (size_t i = 0; i < nb; i++)
        before[i] = xasprintf("%s (%s)", oe->st->res[i].name, oe->st->res[i].type);
    size_t left = 0;
    rc = op_destroy(oe, o, &left, t0, &e);
    for (size_t i = 0; i < nb; i++) {
        bool still = false;
        for (size_t k = 0; rc && k < oe->st->nres; k++) {
            size_t l = strlen(oe->st->res[k].name);
            if (!strncmp(before[i], oe->st->res[k].name, l) && before[i][l] == ' ')
                still = true;
        }
        val_list_push(still ? r->left : r->removed, val_str(before[i], NULL));
        free(before[i]);
    }
    free(before);
    r->done[OP_DELETE] = (int)r->removed->u.list.n;
    if (rc)
        result_error(r, &e);
    r->ms = tm_mono_ms() - t0;
    if (o->on_close)
        o->on_close(o->open_ctx, oe);
    op_close(oe);
    return r->rc;
}

/* sleep and wake are an up with the env's asleep flag set or cleared: the
 * engine converges every service to 0 replicas or back, and outputs follow */
static int run_asleep(const char *env, const char *why, long long until_ms, const struct op_opts *o,
                      struct op_result *r)
{
    memset(r, 0, sizeof *r);
    long long t0 = tm_mono_ms();
    struct err e = {0};
    struct op_env *oe = NULL;
    if (op_open(&oe, env, OP_LOCK | OP_LOAD_TEMPLATE | OP_NEED_STATE, o, &e)) {
        result_error(r, &e);
        return r->rc;
    }
    struct state *st = oe->st;
    if (o->on_open)
        o->on_open(o->open_ctx, oe);
    free(st->asleep_why);
    st->asleep_why = why ? xstrdup(why) : NULL;
    st->asleep_ms = why ? tm_now_ms() : 0;
    st->wake_until_ms = why ? 0 : until_ms;
    oe->host.asleep = why != NULL;
    struct plan p = {0};
    int rc = op_prepare(oe, o, &p, &e);
    if (!rc) {
        int changes = p.counts[OP_CREATE] + p.counts[OP_UPDATE] + p.counts[OP_REPLACE] +
                      p.counts[OP_DELETE];
        rc = changes ? op_apply(oe, o, &p, r->done, t0, &e) : op_touch(oe, o, &e);
    }
    plan_release(&p);
    if (rc)
        result_error(r, &e);
    else {
        struct val *ch = val_map(NULL);
        if (why)
            val_map_set(ch, "why", NULL, val_str(why, NULL));
        op_history(oe, why ? "sleep" : "wake", "ok", ch, t0);
        val_free(ch);
    }
    r->outputs = st->outputs ? val_clone(st->outputs) : NULL;
    r->ms = tm_mono_ms() - t0;
    if (o->on_close)
        o->on_close(o->open_ctx, oe);
    op_close(oe);
    return r->rc;
}

int op_run_sleep(const char *env, const char *why, const struct op_opts *o, struct op_result *r)
{
    return run_asleep(env, why ? why : "manual", 0, o, r);
}

int op_run_wake(const char *env, long long until_ms, const struct op_opts *o, struct op_result *r)
{
    return run_asleep(env, NULL, until_ms, o, r);
}

int op_extend(struct op_env *oe, long long by_ms, long long until_ms, struct err *e)
{
    struct state *st = oe->st;
    if (oe->def.kind == ENV_STAGE)
        return err_set(e, PE_USAGE, NULL, "'%s' is a stage, and stages never expire", st->env);
    long long now = tm_now_ms();
    long long base = st->expires_ms ? st->expires_ms : now;
    long long to = by_ms > 0 ? base + by_ms : until_ms;
    if (to <= now)
        return err_set(e, PE_USAGE, NULL, "the new expiry is in the past");
    long long cap = oe->def.max_ttl_ms ? st->created_ms + oe->def.max_ttl_ms : 0;
    if (cap && to > cap) {
        struct sb b, d;
        sb_init(&b);
        sb_init(&d);
        tm_rfc3339(&b, cap);
        dur_fmt(&d, oe->def.max_ttl_ms);
        err_set(e, PE_LIMIT, NULL,
                "cannot extend '%s' past %s: %ss live at most %s from creation (max_ttl)",
                st->env, b.buf, env_kind_name(oe->def.kind), d.buf);
        err_hint(e, "raise %s.max_ttl in prenv.yaml, or extend to at most that time",
                 oe->def.kind == ENV_PREVIEW ? "previews" : "sandboxes");
        sb_release(&b);
        sb_release(&d);
        return PE_LIMIT;
    }
    long long was = st->expires_ms;
    st->expires_ms = to;
    st->warned_ms = 0; /* a new warning before the new expiry */
    int rc = eng_save(oe->en, e);
    if (!rc) {
        struct val *ch = val_map(NULL);
        struct sb b;
        sb_init(&b);
        if (was)
            tm_rfc3339(&b, was);
        val_map_set(ch, "from", NULL, was ? val_str(b.buf, NULL) : val_null(NULL));
        sb_reset(&b);
        tm_rfc3339(&b, to);
        val_map_set(ch, "to", NULL, val_str(b.buf, NULL));
        sb_release(&b);
        op_history(oe, "extend", "ok", ch, 0);
        val_free(ch);
    }
    return rc;
}

int op_run_warned(const char *env, const struct op_opts *o, struct op_result *r)
{
    memset(r, 0, sizeof *r);
    struct err e = {0};
    struct op_env *oe = NULL;
    if (op_open(&oe, env, OP_LOCK | OP_NEED_STATE | OP_NO_CONFIG, o, &e)) {
        result_error(r, &e);
        return r->rc;
    }
    oe->st->warned_ms = tm_now_ms();
    if (eng_save(oe->en, &e))
        result_error(r, &e);
    else
        op_history(oe, "warn", "ok", NULL, 0);
    r->outputs = oe->st->outputs ? val_clone(oe->st->outputs) : NULL;
    op_close(oe);
    return r->rc;
}

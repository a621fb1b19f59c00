/* ui: printing plans, progress and summaries. */
#include "cmd/ui.h"

#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "envs/op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *op_color(enum eng_op op)
{
    switch (op) {
    case OP_CREATE: return "\033[32m";
    case OP_UPDATE: return "\033[33m";
    case OP_REPLACE: return "\033[35m";
    case OP_DELETE: return "\033[31m";
    default: return "\033[2m";
    }
}

static const char *op_doing(enum eng_op op)
{
    static const char *const s[] = {"checking", "creating", "updating", "replacing", "deleting",
                                    "reading"};
    return op < OP_COUNT ? s[op] : "?";
}

static const char *op_done(enum eng_op op)
{
    static const char *const s[] = {"unchanged", "created", "updated", "replaced", "deleted",
                                    "read"};
    return op < OP_COUNT ? s[op] : "?";
}

/* hide the password of every scheme://user:password@ in text */
static void redact_urls(struct sb *b)
{
    for (char *p = b->buf; (p = strstr(p, "://"));) {
        char *start = p + 3, *end = start;
        while (*end && *end != '@' && *end != '/' && *end != ' ' && *end != '"')
            end++;
        if (*end == '@') {
            char *colon = memchr(start, ':', (size_t)(end - start));
            if (colon && end - colon > 1) {
                size_t keep = (size_t)(colon + 1 - b->buf), tail = b->len - (size_t)(end - b->buf);
                memmove(colon + 1 + 3, end, tail + 1);
                memcpy(colon + 1, "***", 3);
                b->len = keep + 3 + tail;
                end = colon + 4;
            }
        }
        p = end;
    }
}

void ui_value(struct sb *out, const struct val *v, size_t max)
{
    struct sb b;
    sb_init(&b);
    if (!v)
        sb_adds(&b, "null");
    else if (v->kind == VAL_STR && !v->secret)
        sb_add_json_str(&b, v->u.str.s);
    else if (v->kind == VAL_UNKNOWN)
        sb_addf(&b, "(known after apply: %s)", v->u.str.s);
    else
        val_json(&b, v, VAL_JSON_MASK | VAL_JSON_HUMAN);
    if (b.len > max && max > 3) {
        b.buf[max - 3] = 0;
        b.len = max - 3;
        sb_adds(&b, "...");
    }
    for (char *p = b.buf; *p; p++)
        if (*p == '\n')
            *p = ' ';
    if (b.len)
        redact_urls(&b);
    sb_adds(out, b.buf);
    sb_release(&b);
}

void ui_event(void *ctx, const struct eng_event *ev)
{
    struct ui_progress *u = ctx;
    struct cmd_ctx *c = u->c;
    FILE *f = u->quiet ? stderr : stdout;
    const char *col = c->color && !u->quiet ? op_color(ev->op) : "";
    const char *off = c->color && !u->quiet ? "\033[0m" : "";
    struct sb t;
    sb_init(&t);
    switch (ev->kind) {
    case EV_START:
        fprintf(f, "  %s%-2s%s %s (%s) %s...\n", col, eng_op_symbol(ev->op), off, ev->resource,
                ev->type, op_doing(ev->op));
        break;
    case EV_DONE:
        dur_fmt_secs(&t, ev->elapsed_ms);
        fprintf(f, "  %s%-2s%s %s (%s) %s in %s%s%s\n", col, eng_op_symbol(ev->op), off,
                ev->resource, ev->type, op_done(ev->op), t.buf, ev->detail ? ": " : "",
                ev->detail ? ev->detail : "");
        break;
    case EV_FAIL:
        dur_fmt_secs(&t, ev->elapsed_ms);
        fprintf(f, "  %sx%s  %s (%s) %s failed after %s: %s\n", c->color && !u->quiet ? "\033[1;31m" : "",
                off, ev->resource, ev->type ? ev->type : "?", eng_op_name(ev->op), t.buf,
                ev->err && ev->err->msg ? ev->err->msg : "error");
        if (!u->failed)
            u->failed = xstrdup(ev->resource);
        break;
    case EV_SKIP:
        fprintf(f, "  -  %s skipped: something it depends on failed\n", ev->resource);
        break;
    case EV_RETRY:
        fprintf(f, "  ~  %s: transient error, retrying %s\n", ev->resource,
                ev->detail ? ev->detail : "");
        break;
    case EV_RECONCILE:
        fprintf(stderr, "prenv: recovered: %s\n", ev->detail);
        break;
    case EV_DRIFT:
        fprintf(f, "  !  %s (%s): %s\n", ev->resource, ev->type, ev->detail);
        break;
    }
    fflush(f);
    sb_release(&t);
}

void ui_lock(void *ctx, enum lock_event ev, const struct lock_holder *h)
{
    struct cmd_ctx *c = ctx;
    struct sb b;
    sb_init(&b);
    lock_holder_describe(&b, h);
    switch (ev) {
    case LOCK_WAITING:
        cmd_note(c, "waiting for the lock held by %s", b.buf);
        break;
    case LOCK_STALE_BROKEN:
        cmd_warn(c, "broke a stale lock: its holder %s is no longer running", b.buf);
        break;
    case LOCK_RECOVERED:
        cmd_warn(c, "the previous run, %s, ended without releasing the lock (killed?); "
                    "settling what it left",
                 b.buf);
        break;
    }
    sb_release(&b);
}

void ui_summary(struct sb *out, const int done[OP_COUNT], long long ms)
{
    sb_addf(out, "+%d ~%d -%d", done[OP_CREATE], done[OP_UPDATE], done[OP_DELETE]);
    if (done[OP_REPLACE])
        sb_addf(out, " +-%d", done[OP_REPLACE]);
    sb_adds(out, ", ");
    dur_fmt_secs(out, ms);
}

/* plan_change: "path: old -> new"; two maps are followed key by key, so a
 * changed env var (a secret's included) is named instead of being lost in
 * a cut-off map */
static void plan_change(const char *path, const struct val *ov, const struct val *nv, int depth)
{
    if (ov && nv && ov->kind == VAL_MAP && nv->kind == VAL_MAP && depth < 4) {
        for (int pass = 0; pass < 2; pass++) {
            const struct val *m = pass ? nv : ov;
            for (size_t i = 0; i < m->u.map.n; i++) {
                const char *key = m->u.map.e[i].key;
                const struct val *a = val_map_get(ov, key), *b = val_map_get(nv, key);
                if ((pass && a) || (a && b && val_equal(a, b)))
                    continue;
                char *sub = xasprintf("%s.%s", path, key);
                plan_change(sub, a, b, depth + 1);
                free(sub);
            }
        }
        return;
    }
    struct sb a, n;
    sb_init(&a);
    sb_init(&n);
    if (ov)
        ui_value(&a, ov, 60);
    else
        sb_adds(&a, "(none)");
    if (nv)
        ui_value(&n, nv, 60);
    else
        sb_adds(&n, "(none)");
    printf("       %s: %s -> %s\n", path, a.buf, n.buf);
    sb_release(&a);
    sb_release(&n);
}

void ui_plan(struct cmd_ctx *c, const struct op_env *oe, const struct plan *p)
{
    const char *b = cmd_c(c, "\033[1m"), *off = cmd_c(c, "\033[0m"), *dim = cmd_c(c, "\033[2m");
    printf("%s%s%s (%s", b, oe->st->env, off, oe->st->kind);
    if (oe->is_new)
        printf(", new");
    printf("): %d to create, %d to update, %d to replace, %d to delete, %d unchanged\n",
           p->counts[OP_CREATE], p->counts[OP_UPDATE], p->counts[OP_REPLACE],
           p->counts[OP_DELETE], p->counts[OP_SAME]);
    size_t w = 4;
    for (size_t i = 0; i < p->n; i++)
        if (strlen(p->steps[i].name) > w)
            w = strlen(p->steps[i].name);
    for (size_t i = 0; i < p->n; i++) {
        const struct plan_step *s = &p->steps[i];
        if (s->op == OP_SAME)
            continue;
        printf("  %s%-2s%s %-*s %s%s%s", cmd_c(c, op_color(s->op)), eng_op_symbol(s->op), off,
               (int)w, s->name, dim, s->prov ? s->prov->type : "?", off);
        if (s->why)
            printf("  (%s)", s->why);
        printf("\n");
        if (s->op == OP_CREATE && s->props && s->props->kind == VAL_MAP) {
            for (size_t k = 0; k < s->props->u.map.n; k++) {
                struct sb v;
                sb_init(&v);
                ui_value(&v, s->props->u.map.e[k].v, 90);
                printf("       %s%s:%s %s\n", dim, s->props->u.map.e[k].key, off, v.buf);
                sb_release(&v);
            }
        }
        for (size_t k = 0; k < s->nchanged; k++) {
            const struct val *ov = s->old ? val_map_get(s->old, s->changed[k]) : NULL;
            const struct val *nv = s->props ? val_map_get(s->props, s->changed[k]) : NULL;
            plan_change(s->changed[k], ov, nv, 0);
        }
    }
}

char *ui_plan_json(const struct op_env *oe, const struct plan *p)
{
    struct sb b;
    sb_init(&b);
    sb_adds(&b, "{\n  \"env\": ");
    sb_add_json_str(&b, oe->st->env);
    sb_adds(&b, ",\n  \"kind\": ");
    sb_add_json_str(&b, oe->st->kind);
    sb_addf(&b, ",\n  \"new\": %s", oe->is_new ? "true" : "false");
    sb_addf(&b,
            ",\n  \"changes\": {\"create\": %d, \"update\": %d, \"replace\": %d, \"delete\": %d, "
            "\"same\": %d}",
            p->counts[OP_CREATE], p->counts[OP_UPDATE], p->counts[OP_REPLACE],
            p->counts[OP_DELETE], p->counts[OP_SAME]);
    sb_adds(&b, ",\n  \"steps\": [");
    for (size_t i = 0; i < p->n; i++) {
        const struct plan_step *s = &p->steps[i];
        sb_adds(&b, i ? ",\n    {" : "\n    {");
        sb_adds(&b, "\"resource\": ");
        sb_add_json_str(&b, s->name);
        sb_adds(&b, ", \"type\": ");
        sb_add_json_str(&b, s->prov ? s->prov->type : "");
        sb_adds(&b, ", \"op\": ");
        sb_add_json_str(&b, eng_op_name(s->op));
        sb_adds(&b, ", \"reason\": ");
        if (s->why)
            sb_add_json_str(&b, s->why);
        else
            sb_adds(&b, "null");
        sb_adds(&b, ", \"changed\": [");
        for (size_t k = 0; k < s->nchanged; k++) {
            if (k)
                sb_adds(&b, ", ");
            sb_add_json_str(&b, s->changed[k]);
        }
        sb_adds(&b, "], \"diff\": {");
        for (size_t k = 0; k < s->nchanged; k++) {
            if (k)
                sb_adds(&b, ", ");
            sb_add_json_str(&b, s->changed[k]);
            sb_adds(&b, ": {\"old\": ");
            val_json(&b, s->old ? val_map_get(s->old, s->changed[k]) : NULL, VAL_JSON_MASK);
            sb_adds(&b, ", \"new\": ");
            val_json(&b, s->props ? val_map_get(s->props, s->changed[k]) : NULL, VAL_JSON_MASK);
            sb_adds(&b, "}");
        }
        sb_adds(&b, "}, \"properties\": ");
        val_json(&b, s->props, VAL_JSON_MASK);
        sb_adds(&b, "}");
    }
    sb_adds(&b, p->n ? "\n  ]\n}\n" : "]\n}\n");
    return sb_steal(&b);
}

void ui_outputs(struct cmd_ctx *c, const struct val *outputs)
{
    if (!outputs || outputs->kind != VAL_MAP || !outputs->u.map.n)
        return;
    printf("outputs:\n");
    for (size_t i = 0; i < outputs->u.map.n; i++) {
        struct sb v;
        sb_init(&v);
        const struct val *x = outputs->u.map.e[i].v;
        if (x->kind == VAL_STR && !x->secret)
            sb_adds(&v, x->u.str.s);
        else
            ui_value(&v, x, 200);
        printf("  %s%s%s: %s\n", cmd_c(c, "\033[1m"), outputs->u.map.e[i].key, cmd_c(c, "\033[0m"),
               v.buf);
        sb_release(&v);
    }
}

void ui_fail_logs(struct cmd_ctx *c, struct op_env *oe, const char *resource)
{
    (void)c;
    if (!resource || !oe || !oe->en)
        return;
    struct sb b;
    sb_init(&b);
    eng_log_tail(oe->en, resource, 10, &b);
    if (b.len)
        fprintf(stderr, "last log lines of '%s':\n%s", resource, b.buf);
    sb_release(&b);
}

int ui_parse_sets(struct val **out, char *const *kv, size_t n, struct err *e)
{
    *out = NULL;
    if (!n)
        return 0;
    struct val *m = val_map(NULL);
    const struct src *s = src_add("--set", "", 0);
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '=');
        if (!eq || eq == kv[i]) {
            val_free(m);
            err_set(e, PE_USAGE, NULL, "--set expects KEY=VALUE, not '%s'", kv[i]);
            return PE_USAGE;
        }
        char *k = xstrndup(kv[i], (size_t)(eq - kv[i]));
        struct pos at = {s, 0, 0};
        struct val *v = yt_scalar(eq + 1, &at);
        int rc = envcfg_set_path(m, k, v, e);
        free(k);
        if (rc) {
            val_free(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

int cmd_project(struct cmd_ctx *c, struct project **out, struct err *e)
{
    char *dir = NULL;
    *out = NULL;
    int rc = project_find(&dir, c->project_dir, e);
    if (!rc)
        rc = project_load(out, dir, c->state_dir, e);
    free(dir);
    return rc;
}

/* the env's own layer file (relative) */
int cmd_env_layer(struct cmd_ctx *c, const char *env, struct project **p, char **rel,
                  struct err *e)
{
    *rel = NULL;
    int rc = cmd_project(c, p, e);
    if (rc)
        return rc;
    struct env_def d;
    if ((rc = project_env(&d, *p, env, e)))
        return rc;
    if (!d.config) {
        rc = err_set(e, PE_CONFIG, NULL, "environment '%s' has no config file of its own", env);
        err_hint(e, "give its kind one in %s ('config:' under previews or sandboxes)",
                 PROJECT_FILE);
    } else {
        *rel = xstrdup(d.config);
    }
    env_def_release(&d);
    return rc;
}

struct op_opts cmd_op_opts(struct cmd_ctx *c, struct ui_progress *up)
{
    return (struct op_opts){
        .project_dir = c->project_dir,
        .state_dir = c->state_dir,
        .command = c->command_line,
        .lock_wait_ms = -1,
        .on_event = up ? ui_event : NULL,
        .ev_ctx = up,
        .on_lock = ui_lock,
        .lock_ctx = c,
    };
}

int cmd_env_config(struct cmd_ctx *c, const char *env, struct op_env **oe, struct val **cfg,
                   struct err *e)
{
    struct op_opts oo = cmd_op_opts(c, NULL);
    *cfg = NULL;
    int rc = op_open(oe, env, 0, &oo, e);
    if (!rc)
        rc = op_config(*oe, cfg, e);
    return rc;
}

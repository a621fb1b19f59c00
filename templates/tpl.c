/* tpl: template loading, validation and rendering. */
#include "templates/tpl.h"

#include "core/graph.h"
#include "core/lib/sb.h"
#include "core/lib/schema.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "core/provider.h"
#include "templates/expr.h"

#include <stdlib.h>
#include <string.h>

static const char *const roots[] = {"env", "pr", "config", "artifact", "project", "ref", NULL};

void tpl_free(struct tpl *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->res[i].name);
        free(t->res[i].deps);
    }
    free(t->res);
    free(t->order);
    free(t->file);
    val_free(t->doc);
    free(t);
}

int tpl_find(const struct tpl *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->res[i].name, name))
            return (int)i;
    return -1;
}

static bool is_root(const char *s)
{
    for (size_t i = 0; roots[i]; i++)
        if (!strcmp(roots[i], s))
            return true;
    return false;
}

static void add_dep(struct tpl_res *r, size_t d)
{
    for (size_t i = 0; i < r->ndeps; i++)
        if (r->deps[i] == d)
            return;
    XGROW(r->deps, r->capdeps, r->ndeps + 1);
    r->deps[r->ndeps++] = d;
}

struct visit_ctx {
    struct tpl *t;
    struct tpl_res *r; /* NULL when visiting outputs */
};

static int unknown_root(const struct tpl *t, const struct expr_ref *ref, struct err *e)
{
    const char **names = xcalloc(t->n + 8, sizeof *names);
    size_t n = 0;
    for (size_t i = 0; roots[i]; i++)
        names[n++] = roots[i];
    for (size_t i = 0; i < t->n; i++)
        names[n++] = t->res[i].name;
    const char *root = ref->segs[0].key;
    const char *near = str_closest(root, names, n);
    int rc;
    if (near)
        rc = err_set(e, PE_CONFIG, &ref->pos,
                     "unknown reference '${%s}': no resource or root named '%s' (did you mean "
                     "'%s'?)",
                     ref->text, root, near);
    else {
        rc = err_set(e, PE_CONFIG, &ref->pos,
                     "unknown reference '${%s}': no resource or root named '%s'", ref->text, root);
        err_hint(e, "references start with env, pr, config, artifact, project, ref or a "
                    "resource name; write $${ for a literal ${");
    }
    free(names);
    return rc;
}

static int visit_ref(void *vctx, const struct expr_ref *ref, struct err *e)
{
    struct visit_ctx *vc = vctx;
    const char *root = ref->segs[0].key;
    if (is_root(root)) {
        if (!strcmp(root, "ref") && (ref->nsegs < 3 || !ref->segs[1].key || !ref->segs[2].key))
            return err_set(e, PE_CONFIG, &ref->pos,
                           "'${%s}': another environment's output is written ${ref.<env>.<output>}",
                           ref->text);
        if (ref->nsegs < 2 && strcmp(root, "config") != 0)
            return err_set(e, PE_CONFIG, &ref->pos, "'${%s}' needs a field, e.g. ${%s.name}",
                           ref->text, root);
        return 0;
    }
    int idx = tpl_find(vc->t, root);
    if (idx < 0)
        return unknown_root(vc->t, ref, e);
    const struct tpl_res *target = &vc->t->res[idx];
    if (ref->nsegs < 2 || !ref->segs[1].key)
        return err_set(e, PE_CONFIG, &ref->pos,
                       "'${%s}' names resource '%s' but not which output, e.g. ${%s.%s}",
                       ref->text, root, root,
                       target->prov->outputs && target->prov->outputs[0].name
                           ? target->prov->outputs[0].name
                           : "output");
    const char *out = ref->segs[1].key;
    if (!prov_output_find(target->prov, out)) {
        const char *names[32];
        size_t n = 0;
        for (const struct prov_output *o = target->prov->outputs; o && o->name && n < 32; o++)
            names[n++] = o->name;
        const char *near = str_closest(out, names, n);
        struct sb b;
        sb_init(&b);
        for (size_t i = 0; i < n; i++)
            sb_addf(&b, "%s%s", i ? ", " : "", names[i]);
        int rc;
        if (near)
            rc = err_set(e, PE_CONFIG, &ref->pos,
                         "resource '%s' (%s) has no output '%s' (did you mean '%s'?)", root,
                         target->prov->type, out, near);
        else
            rc = err_set(e, PE_CONFIG, &ref->pos, "resource '%s' (%s) has no output '%s'", root,
                         target->prov->type, out);
        err_hint(e, "%s outputs: %s", target->prov->type, b.buf);
        sb_release(&b);
        return rc;
    }
    if (!vc->r)
        return 0;
    if (vc->r == target)
        return err_set(e, PE_CYCLE, &ref->pos, "resource '%s' refers to its own output in '${%s}'",
                       root, ref->text);
    add_dep(vc->r, (size_t)idx);
    return 0;
}

/* a copy of props where strings holding references become unknown, so the
 * schema check can test literal values and property names now */
static struct val *literalize(const struct val *v)
{
    if (v->kind == VAL_STR && expr_has_refs(v->u.str.s)) {
        struct val *u = val_unknown("reference");
        u->pos = v->pos;
        return u;
    }
    if (v->kind == VAL_LIST) {
        struct val *l = val_list(&v->pos);
        for (size_t i = 0; i < v->u.list.n; i++)
            val_list_push(l, literalize(v->u.list.v[i]));
        return l;
    }
    if (v->kind == VAL_MAP) {
        struct val *m = val_map(&v->pos);
        for (size_t i = 0; i < v->u.map.n; i++)
            val_map_set(m, v->u.map.e[i].key, &v->u.map.e[i].kpos,
                        literalize(v->u.map.e[i].v));
        return m;
    }
    return val_clone(v);
}

static int load_resource(struct tpl *t, struct tpl_res *r, const struct val_entry *ent,
                         struct err *e)
{
    static const char *const rkeys[] = {"type", "properties", "depends_on", "protect",
                                        "description", NULL};
    const struct val *v = ent->v;
    char *what = xasprintf("resource '%s'", ent->key);
    int rc = schema_map(v, what, e);
    if (!rc)
        rc = schema_keys(v, rkeys, what, e);
    free(what);
    if (rc)
        return rc;
    const struct val *type = val_map_get(v, "type");
    if (!type)
        return err_set(e, PE_CONFIG, &ent->kpos, "resource '%s' needs a 'type'", ent->key);
    if ((rc = schema_kind(type, VAL_STR, "type", e)))
        return rc;
    r->prov = prov_find(type->u.str.s);
    if (!r->prov) {
        const struct provider *const *all = prov_all();
        const char *names[32];
        size_t n = 0;
        struct sb b;
        sb_init(&b);
        for (; all[n] && n < 32; n++) {
            names[n] = all[n]->type;
            sb_addf(&b, "%s%s", n ? ", " : "", all[n]->type);
        }
        const char *near = str_closest(type->u.str.s, names, n);
        if (near)
            rc = err_set(e, PE_CONFIG, &type->pos, "unknown resource type '%s' (did you mean '%s'?)",
                         type->u.str.s, near);
        else
            rc = err_set(e, PE_CONFIG, &type->pos, "unknown resource type '%s'", type->u.str.s);
        err_hint(e, "resource types: %s", b.buf);
        sb_release(&b);
        return rc;
    }
    if ((rc = schema_bool(v, "protect", &r->protect, e)))
        return rc;
    const struct val *props = val_map_get(v, "properties");
    if (props && props->kind == VAL_NULL)
        props = NULL;
    r->props = props;
    if (props) {
        struct val *lit = literalize(props);
        struct prov_call c = {.env = "", .resource = r->name, .type = r->prov->type, .props = lit};
        rc = prov_check_props(r->prov, &c, &r->pos, e);
        val_free(lit);
        if (rc) {
            err_prefix(e, "resource '%s': ", r->name);
            return rc;
        }
    } else {
        struct val *empty = val_map(&v->pos);
        struct prov_call c = {.env = "", .resource = r->name, .type = r->prov->type, .props = empty};
        rc = prov_check_props(r->prov, &c, &r->pos, e);
        val_free(empty);
        if (rc) {
            err_prefix(e, "resource '%s': ", r->name);
            return rc;
        }
    }
    (void)t;
    return 0;
}

static int link_resource(struct tpl *t, struct tpl_res *r, const struct val *v, struct err *e)
{
    struct visit_ctx vc = {t, r};
    if (r->props) {
        int rc = expr_visit(r->props, visit_ref, &vc, e);
        if (rc)
            return rc;
    }
    const struct val *dep = val_map_get(v, "depends_on");
    if (!dep || dep->kind == VAL_NULL)
        return 0;
    if (dep->kind != VAL_LIST)
        return err_set(e, PE_CONFIG, &dep->pos, "'depends_on' must be a list of resource names");
    for (size_t i = 0; i < dep->u.list.n; i++) {
        const struct val *d = dep->u.list.v[i];
        if (d->kind != VAL_STR)
            return err_set(e, PE_CONFIG, &d->pos, "'depends_on' items must be resource names");
        int idx = tpl_find(t, d->u.str.s);
        if (idx < 0) {
            const char **names = xcalloc(t->n + 1, sizeof *names);
            for (size_t k = 0; k < t->n; k++)
                names[k] = t->res[k].name;
            const char *near = str_closest(d->u.str.s, names, t->n);
            int rc = near ? err_set(e, PE_CONFIG, &d->pos,
                                    "'depends_on' names unknown resource '%s' (did you mean '%s'?)",
                                    d->u.str.s, near)
                          : err_set(e, PE_CONFIG, &d->pos,
                                    "'depends_on' names unknown resource '%s'", d->u.str.s);
            free(names);
            return rc;
        }
        if (&t->res[idx] == r)
            return err_set(e, PE_CYCLE, &d->pos, "resource '%s' depends on itself", r->name);
        add_dep(r, (size_t)idx);
    }
    return 0;
}

int tpl_load(struct tpl **out, const char *path, const char *display, struct err *e)
{
    static const char *const tkeys[] = {"description", "resources", "outputs", NULL};
    struct tpl *t = xcalloc(1, sizeof *t);
    t->file = xstrdup(display ? display : path);
    *out = NULL;
    int rc = yt_load(&t->doc, path, t->file, e);
    if (rc)
        goto fail;
    char *what = xasprintf("template %s", t->file);
    rc = schema_map(t->doc, what, e);
    if (!rc)
        rc = schema_keys(t->doc, tkeys, what, e);
    free(what);
    if (rc)
        goto fail;
    const struct val *res = val_map_get(t->doc, "resources");
    if (!res || res->kind == VAL_NULL) {
        rc = err_set(e, PE_CONFIG, &t->doc->pos, "template %s has no 'resources:'", t->file);
        goto fail;
    }
    if ((rc = schema_map(res, "'resources'", e)))
        goto fail;
    t->res = xcalloc(res->u.map.n + 1, sizeof *t->res);
    for (size_t i = 0; i < res->u.map.n; i++) {
        const struct val_entry *ent = &res->u.map.e[i];
        struct tpl_res *r = &t->res[t->n++];
        r->name = xstrdup(ent->key);
        r->pos = ent->kpos;
        if (!str_is_ident(ent->key) || strchr(ent->key, '-') != NULL) {
            rc = err_set(e, PE_CONFIG, &ent->kpos,
                         "resource name '%s' must be letters, digits and '_', starting with a "
                         "letter",
                         ent->key);
            goto fail;
        }
        if (is_root(ent->key)) {
            rc = err_set(e, PE_CONFIG, &ent->kpos,
                         "'%s' cannot name a resource: it is a reference root", ent->key);
            goto fail;
        }
        if ((rc = load_resource(t, r, ent, e)))
            goto fail;
    }
    for (size_t i = 0; i < t->n; i++)
        if ((rc = link_resource(t, &t->res[i], res->u.map.e[i].v, e)))
            goto fail;
    const struct val *outs = val_map_get(t->doc, "outputs");
    if (outs && outs->kind != VAL_NULL) {
        if ((rc = schema_map(outs, "'outputs'", e)))
            goto fail;
        struct visit_ctx vc = {t, NULL};
        if ((rc = expr_visit(outs, visit_ref, &vc, e)))
            goto fail;
        t->outputs = outs;
    }
    struct graph g;
    graph_init(&g, t->n);
    for (size_t i = 0; i < t->n; i++)
        for (size_t d = 0; d < t->res[i].ndeps; d++)
            graph_add(&g, i, t->res[i].deps[d]);
    t->order = xcalloc(t->n + 1, sizeof *t->order);
    size_t *cyc = xcalloc(t->n + 1, sizeof *cyc), ncyc = 0;
    if (graph_order(&g, t->order, cyc, &ncyc)) {
        struct sb b;
        sb_init(&b);
        for (size_t i = 0; i < ncyc; i++)
            sb_addf(&b, "%s -> ", t->res[cyc[i]].name);
        if (ncyc)
            sb_adds(&b, t->res[cyc[0]].name);
        rc = err_set(e, PE_CYCLE, ncyc ? &t->res[cyc[0]].pos : NULL,
                     "dependency cycle between resources: %s", b.buf);
        err_hint(e, "each resource in the cycle refers to the next one's outputs or names it "
                    "in depends_on; break one of these links");
        sb_release(&b);
    }
    free(cyc);
    graph_release(&g);
    if (rc)
        goto fail;
    *out = t;
    return 0;
fail:
    tpl_free(t);
    return rc;
}

/* ---- rendering ---- */

static int lookup(void *vctx, const struct expr_ref *ref, struct val **out, struct err *e);

static int config_lookup(struct tpl_ctx *ctx, const struct expr_ref *ref, struct val **out,
                         struct err *e)
{
    if (ref->nsegs == 1)
        return tpl_render_config(out, ctx, e);
    char *path = expr_ref_path(ref, 1);
    for (size_t i = 0; i < ctx->nresolving; i++)
        if (!strcmp(ctx->resolving[i], path)) {
            struct sb b;
            sb_init(&b);
            for (size_t k = i; k < ctx->nresolving; k++)
                sb_addf(&b, "config.%s -> ", ctx->resolving[k]);
            sb_addf(&b, "config.%s", path);
            int rc = err_set(e, PE_CYCLE, &ref->pos, "config values refer to each other in a "
                                                     "cycle: %s", b.buf);
            sb_release(&b);
            free(path);
            return rc;
        }
    if (ctx->nresolving >= sizeof ctx->resolving / sizeof *ctx->resolving) {
        free(path);
        return err_set(e, PE_LIMIT, &ref->pos, "config references nested too deeply");
    }
    struct val *raw = NULL;
    int rc = expr_walk(&raw, ctx->config, ref, 1, "config", e);
    if (rc) {
        free(path);
        if (ctx->config_from)
            err_hint(e, "config comes from %s; add the key under 'values:' there or in a layer "
                        "it imports",
                     ctx->config_from);
        return rc;
    }
    ctx->resolving[ctx->nresolving++] = path;
    rc = expr_eval(out, raw, lookup, ctx, e);
    ctx->nresolving--;
    free(path);
    val_free(raw);
    return rc;
}

static int lookup(void *vctx, const struct expr_ref *ref, struct val **out, struct err *e)
{
    struct tpl_ctx *ctx = vctx;
    const char *root = ref->segs[0].key;
    if (!strcmp(root, "config"))
        return config_lookup(ctx, ref, out, e);
    const struct val *base = NULL;
    if (!strcmp(root, "env"))
        base = ctx->env;
    else if (!strcmp(root, "pr"))
        base = ctx->pr;
    else if (!strcmp(root, "artifact"))
        base = ctx->artifact;
    else if (!strcmp(root, "project"))
        base = ctx->project;
    if (base || !strcmp(root, "env") || !strcmp(root, "pr") || !strcmp(root, "artifact") ||
        !strcmp(root, "project")) {
        if (!base) {
            /* pr.* outside a preview, artifact.* without an artifact: null,
             * or, before a `??`, missing so the default is used */
            if (ref->optional)
                return err_set(e, PE_MISSING, &ref->pos, "'${%s}': %s", ref->text,
                               !strcmp(root, "artifact") ? "no artifact is pinned"
                                                         : "not a pull request preview");
            *out = val_null(&ref->pos);
            return 0;
        }
        struct val *v;
        int rc = expr_walk(&v, base, ref, 1, root, e);
        if (!rc)
            *out = v;
        return rc;
    }
    if (!strcmp(root, "ref")) {
        if (!ctx->ref_outputs)
            return err_set(e, PE_CONFIG, &ref->pos, "'${%s}': references to other environments "
                                                    "are not available here",
                           ref->text);
        const struct val *outs = NULL;
        int rc = ctx->ref_outputs(ctx->rctx, ref->segs[1].key, &outs, e);
        if (rc) {
            err_prefix(e, "in '${%s}': ", ref->text);
            return rc;
        }
        char *what = xasprintf("output of environment '%s'", ref->segs[1].key);
        rc = expr_walk(out, outs, ref, 2, what, e);
        free(what);
        return rc;
    }
    int idx = ctx->tpl ? tpl_find(ctx->tpl, root) : -1;
    if (idx < 0)
        return unknown_root(ctx->tpl, ref, e);
    const struct val *outs = ctx->outputs ? ctx->outputs(ctx->octx, root) : NULL;
    if (!outs) {
        char *p = expr_ref_path(ref, 0);
        *out = val_unknown(p);
        free(p);
        return 0;
    }
    char *what = xasprintf("output of '%s'", root);
    int rc = expr_walk(out, outs, ref, 1, what, e);
    free(what);
    return rc;
}

int tpl_render_props(struct val **out, struct tpl_ctx *ctx, size_t i, struct err *e)
{
    const struct tpl_res *r = &ctx->tpl->res[i];
    if (!r->props) {
        *out = val_map(&r->pos);
        return 0;
    }
    int rc = expr_eval(out, r->props, lookup, ctx, e);
    if (rc)
        err_prefix(e, "resource '%s': ", r->name);
    return rc;
}

int tpl_render_outputs(struct val **out, struct tpl_ctx *ctx, struct err *e)
{
    if (!ctx->tpl->outputs) {
        *out = val_map(NULL);
        return 0;
    }
    return expr_eval(out, ctx->tpl->outputs, lookup, ctx, e);
}

int tpl_render_config(struct val **out, struct tpl_ctx *ctx, struct err *e)
{
    /* references from config to resources make no sense: config is input */
    return expr_eval(out, ctx->config, lookup, ctx, e);
}

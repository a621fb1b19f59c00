/* envcfg: layered configuration files with imports. */
#include "envs/envcfg.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/schema.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "envs/project.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IMPORT_DEPTH 32

struct loader {
    const struct project *p;
    struct envcfg *c;
    char *stack[MAX_IMPORT_DEPTH]; /* files being loaded, for cycle detection */
    size_t depth;
    struct err *e;
};

void envcfg_free(struct envcfg *c)
{
    if (!c)
        return;
    val_free(c->values);
    val_free(c->origin);
    for (size_t i = 0; i < c->nlayers; i++) {
        free(c->layers[i].name);
        free(c->layers[i].description);
    }
    free(c->layers);
    free(c);
}

static void record_origin(struct val *origin, const struct val *v, const char *prefix)
{
    if (v->kind == VAL_MAP && !v->secret && v->u.map.n) {
        for (size_t i = 0; i < v->u.map.n; i++) {
            char *p = prefix ? xasprintf("%s.%s", prefix, v->u.map.e[i].key)
                             : xstrdup(v->u.map.e[i].key);
            record_origin(origin, v->u.map.e[i].v, p);
            free(p);
        }
        return;
    }
    if (!prefix)
        return;
    struct sb b;
    sb_init(&b);
    if (v->pos.src) {
        sb_adds(&b, v->pos.src->name);
        if (v->pos.line)
            sb_addf(&b, ":%d", v->pos.line);
    } else {
        sb_adds(&b, "--set");
    }
    val_map_set(origin, prefix, NULL, val_str_own(sb_steal(&b), NULL));
}

/* display name of a layer file relative to the project */
static char *rel_name(const struct project *p, const char *abs)
{
    size_t n = strlen(p->dir);
    if (!strncmp(abs, p->dir, n) && abs[n] == '/')
        return xstrdup(abs + n + 1);
    return xstrdup(abs);
}

static char *suggest_import(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (str_suffix(de->d_name, ".yaml")) {
            XGROW(names, cap, n + 1);
            names[n++] = xstrndup(de->d_name, strlen(de->d_name) - 5);
        }
    closedir(d);
    const char *best = str_closest(name, (const char *const *)names, n);
    char *r = best ? xstrdup(best) : NULL;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return r;
}

static int load_layer(struct loader *L, const char *abs, const struct pos *from);

static int load_imports(struct loader *L, const struct val *imports, const char *dir)
{
    struct err *e = L->e;
    if (imports->kind == VAL_STR) {
        return err_set(e, PE_CONFIG, &imports->pos,
                       "'imports' must be a list, e.g. imports: [%s]", imports->u.str.s);
    }
    if (imports->kind != VAL_LIST)
        return err_set(e, PE_CONFIG, &imports->pos, "'imports' must be a list of layer names");
    for (size_t i = 0; i < imports->u.list.n; i++) {
        const struct val *im = imports->u.list.v[i];
        if (im->kind != VAL_STR || !*im->u.str.s)
            return err_set(e, PE_CONFIG, &im->pos,
                           "each import must be a layer name such as 'base' or 'shared/db.yaml'");
        const char *name = im->u.str.s;
        char *file = str_suffix(name, ".yaml") || str_suffix(name, ".yml")
                         ? xstrdup(name)
                         : xasprintf("%s.yaml", name);
        char *abs = fs_abspath(dir, file);
        free(file);
        if (!fs_within(L->p->dir, abs)) {
            free(abs);
            return err_set(e, PE_CONFIG, &im->pos, "import '%s' points outside the project",
                           name);
        }
        if (!fs_exists(abs)) {
            char *rel = rel_name(L->p, abs);
            char *near = strchr(name, '/') ? NULL : suggest_import(dir, name);
            if (near)
                err_set(e, PE_CONFIG, &im->pos,
                        "cannot import '%s': %s does not exist (did you mean '%s'?)", name, rel,
                        near);
            else
                err_set(e, PE_CONFIG, &im->pos, "cannot import '%s': %s does not exist", name,
                        rel);
            free(near);
            free(rel);
            free(abs);
            return PE_CONFIG;
        }
        int rc = load_layer(L, abs, &im->pos);
        free(abs);
        if (rc)
            return rc;
    }
    return 0;
}

static int load_layer(struct loader *L, const char *abs, const struct pos *from)
{
    static const char *const keys[] = {"imports", "values", "description", NULL};
    struct err *e = L->e;
    for (size_t i = 0; i < L->depth; i++)
        if (!strcmp(L->stack[i], abs)) {
            struct sb b;
            sb_init(&b);
            for (size_t k = i; k < L->depth; k++) {
                char *r = rel_name(L->p, L->stack[k]);
                sb_addf(&b, "%s -> ", r);
                free(r);
            }
            char *r = rel_name(L->p, abs);
            sb_adds(&b, r);
            free(r);
            int rc = err_set(e, PE_CYCLE, from, "import cycle: %s", b.buf);
            sb_release(&b);
            return rc;
        }
    if (L->depth >= MAX_IMPORT_DEPTH)
        return err_set(e, PE_LIMIT, from, "imports nested deeper than %d", MAX_IMPORT_DEPTH);
    char *display = rel_name(L->p, abs);
    struct val *doc = NULL;
    int rc = yt_load(&doc, abs, display, e);
    if (rc) {
        free(display);
        return rc;
    }
    L->stack[L->depth++] = xstrdup(abs);
    char *what = xasprintf("config layer %s", display);
    if (doc->kind == VAL_NULL)
        goto done; /* an empty layer is allowed */
    if ((rc = schema_map(doc, what, e)))
        goto done;
    for (size_t i = 0; i < doc->u.map.n; i++) {
        const struct val_entry *ent = &doc->u.map.e[i];
        if (!strcmp(ent->key, "imports") || !strcmp(ent->key, "values") ||
            !strcmp(ent->key, "description"))
            continue;
        const char *near = str_closest(ent->key, keys, (size_t)-1);
        if (near)
            rc = err_set(e, PE_CONFIG, &ent->kpos, "unknown key '%s' in %s (did you mean '%s'?)",
                         ent->key, display, near);
        else {
            rc = err_set(e, PE_CONFIG, &ent->kpos, "unknown key '%s' in %s", ent->key, display);
            err_hint(e, "a config layer has 'imports:', 'values:' and 'description:'; put "
                        "config values under 'values:'");
        }
        goto done;
    }
    const struct val *imports = val_map_get(doc, "imports");
    if (imports && imports->kind != VAL_NULL) {
        char *dir = fs_dirname(abs);
        rc = load_imports(L, imports, dir);
        free(dir);
        if (rc)
            goto done;
    }
    const char *desc = NULL;
    if ((rc = schema_str(doc, "description", &desc, e)))
        goto done;
    const struct val *values = val_map_get(doc, "values");
    if (values && values->kind != VAL_NULL) {
        if ((rc = schema_map(values, "'values'", e)))
            goto done;
        val_merge(&L->c->values, values);
        record_origin(L->c->origin, values, NULL);
    }
    XGROW(L->c->layers, L->c->layers_cap, L->c->nlayers + 1);
    L->c->layers[L->c->nlayers].name = xstrdup(display);
    L->c->layers[L->c->nlayers].description = desc ? xstrdup(desc) : NULL;
    L->c->nlayers++;
done:
    free(what);
    free(display);
    val_free(doc);
    free(L->stack[--L->depth]);
    return rc;
}

int envcfg_set_path(struct val *m, const char *key, struct val *v, struct err *e)
{
    const char *p = key;
    struct val *cur = m;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char *k = xstrndup(p, n);
        if (!str_is_ident(k)) {
            int rc = err_set(e, PE_USAGE, NULL,
                             "invalid config key '%s': use names of letters, digits, '_' and "
                             "'-' joined by '.'",
                             key);
            free(k);
            val_free(v);
            return rc;
        }
        if (!dot) {
            val_map_set(cur, k, NULL, v);
            free(k);
            return 0;
        }
        struct val *next = val_map_get(cur, k);
        if (!next || next->kind != VAL_MAP) {
            next = val_map(NULL);
            val_map_set(cur, k, NULL, next);
        }
        free(k);
        cur = next;
        p = dot + 1;
    }
}

int envcfg_load(struct envcfg **out, const struct project *p, const char *file,
                const struct val *sets, struct err *e)
{
    struct envcfg *c = xcalloc(1, sizeof *c);
    c->values = val_map(NULL);
    c->origin = val_map(NULL);
    struct loader L = {.p = p, .c = c, .e = e};
    int rc = 0;
    if (file) {
        char *abs = fs_abspath(p->dir, file);
        if (!fs_exists(abs)) {
            rc = err_set(e, PE_CONFIG, NULL, "config file %s does not exist", file);
            err_hint(e, "create it (a layer with 'imports:' and 'values:'), or point the "
                        "environment's 'config:' in %s at an existing file",
                     PROJECT_FILE);
        } else {
            rc = load_layer(&L, abs, NULL);
        }
        free(abs);
    }
    if (!rc && sets && sets->kind == VAL_MAP && sets->u.map.n) {
        val_merge(&c->values, sets);
        record_origin(c->origin, sets, NULL);
        XGROW(c->layers, c->layers_cap, c->nlayers + 1);
        c->layers[c->nlayers].name = xstrdup("--set");
        c->layers[c->nlayers].description = NULL;
        c->nlayers++;
    }
    if (rc) {
        envcfg_free(c);
        *out = NULL;
        return rc;
    }
    *out = c;
    return 0;
}

static void flatten(const struct val *v, const char *prefix, struct cfg_leaf **out, size_t *n,
                    size_t *cap)
{
    if (v->kind == VAL_MAP && !v->secret && (v->u.map.n || !prefix)) {
        for (size_t i = 0; i < v->u.map.n; i++) {
            char *p = prefix ? xasprintf("%s.%s", prefix, v->u.map.e[i].key)
                             : xstrdup(v->u.map.e[i].key);
            flatten(v->u.map.e[i].v, p, out, n, cap);
            free(p);
        }
        return;
    }
    XGROW(*out, *cap, *n + 1);
    (*out)[*n].path = xstrdup(prefix);
    (*out)[*n].v = v;
    (*n)++;
}

size_t envcfg_flatten(const struct val *m, struct cfg_leaf **out)
{
    size_t n = 0, cap = 0;
    *out = NULL;
    flatten(m, NULL, out, &n, &cap);
    return n;
}

void envcfg_leaves_free(struct cfg_leaf *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i].path);
    free(l);
}

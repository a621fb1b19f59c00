/* export: an environment's record as one JSON document, and back (export.h).
 * The document is
 *   {"format": "prenv-env-export", "version": 1, "exported": RFC 3339,
 *    "project": NAME, "env": NAME, "state": {the state document as stored},
 *    "history": [the history records, oldest first]}
 * The state is written by state_serialize without masking, the very bytes a
 * state_save would write: sealed secrets stay sealed. It leaves resources
 * alone: no provider is called here. */
#include "envs/export.h"

#include "core/lib/fs.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/lock.h"
#include "core/state.h"
#include "envs/op.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the history file's complete lines that parse, as JSON array members */
static int add_history(struct sb *out, const char *dir, const char *env, struct err *e)
{
    char *path = xasprintf("%s/history/%s.jsonl", dir, env);
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read(path, STATE_MAX_FILE, &text, &len, e);
    free(path);
    sb_addc(out, '[');
    if (rc == -ENOENT) {
        err_release(e);
        sb_addc(out, ']');
        return 0;
    }
    if (rc)
        return rc;
    bool first = true;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        if (!nl)
            break; /* a torn last line from a crash is left out, as history reads do */
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        if (j && cJSON_IsObject(j)) {
            sb_adds(out, first ? "\n    " : ",\n    ");
            sb_add(out, p, (size_t)(nl - p));
            first = false;
        }
        cJSON_Delete(j);
        p = nl + 1;
    }
    sb_adds(out, first ? "]" : "\n  ]");
    free(text);
    return 0;
}

int export_env(struct sb *out, const struct project *p, const char *env, const char *command,
               long long lock_wait_ms, struct err *e)
{
    struct lock lk;
    int rc = lock_acquire(&lk, p->state_dir, env, command, lock_wait_ms, NULL, NULL, e);
    if (rc)
        return rc;
    struct state *st = NULL;
    if ((rc = state_load(&st, p->state_dir, env, e))) {
        if (rc == PE_NOTFOUND)
            err_hint(e, "`prenv env list` shows the environments that exist");
        goto out;
    }
    sb_adds(out, "{\n  \"format\": ");
    sb_add_json_str(out, EXPORT_FORMAT);
    sb_addf(out, ",\n  \"version\": %d,\n  \"exported\": ", EXPORT_VERSION);
    struct sb t;
    sb_init(&t);
    tm_rfc3339(&t, tm_now_ms());
    sb_add_json_str(out, t.buf);
    sb_release(&t);
    sb_adds(out, ",\n  \"project\": ");
    sb_add_json_str(out, p->name);
    sb_adds(out, ",\n  \"env\": ");
    sb_add_json_str(out, env);
    sb_adds(out, ",\n  \"state\": ");
    state_serialize(out, st, false);
    while (out->len && out->buf[out->len - 1] == '\n')
        out->buf[--out->len] = 0;
    sb_adds(out, ",\n  \"history\": ");
    if ((rc = add_history(out, p->state_dir, env, e)))
        goto out;
    sb_adds(out, "\n}\n");
out:
    state_free(st);
    lock_release(&lk, false);
    return rc;
}

/* the document's fields; errors name the file */
static int check_doc(const cJSON *j, const char *name, struct err *e)
{
    if (!cJSON_IsObject(j))
        return err_set(e, PE_STATE, NULL, "%s is not a JSON object", name);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, EXPORT_FORMAT) != 0) {
        err_set(e, PE_STATE, NULL, "%s is not a prenv export (no \"format\": \"%s\")", name,
                EXPORT_FORMAT);
        err_hint(e, "`prenv env export ENV -o FILE` writes one");
        return PE_STATE;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble != (double)v->valueint)
        return err_set(e, PE_STATE, NULL, "%s has no valid \"version\"", name);
    if (v->valueint > EXPORT_VERSION) {
        err_set(e, PE_STATE, NULL, "%s has export version %d; this prenv reads up to %d", name,
                v->valueint, EXPORT_VERSION);
        err_hint(e, "upgrade prenv");
        return PE_STATE;
    }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "state")))
        return err_set(e, PE_STATE, NULL, "%s has no \"state\" object", name);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "history");
    if (h && !cJSON_IsArray(h) && !cJSON_IsNull(h))
        return err_set(e, PE_STATE, NULL, "%s: \"history\" is not a list", name);
    const cJSON *x;
    cJSON_ArrayForEach(x, h)
    {
        if (!cJSON_IsObject(x))
            return err_set(e, PE_STATE, NULL, "%s: a \"history\" record is not an object", name);
    }
    return 0;
}

/* With --force, replacing old by st must not orphan anything old holds. */
static int check_replace(const struct state *old, const struct state *st, struct err *e)
{
    if (old->npend)
        return err_set(e, PE_EXISTS, NULL,
                       "'%s' has %zu pending operation%s; replacing its record could orphan what "
                       "they made",
                       old->env, old->npend, old->npend == 1 ? "" : "s");
    for (size_t i = 0; i < old->nres; i++) {
        const struct st_res *r = &old->res[i];
        const struct st_res *n = state_res(st, r->name);
        if (n && n->type && r->type && !strcmp(n->type, r->type) &&
            ((!n->id && !r->id) || (n->id && r->id && !strcmp(n->id, r->id))))
            continue;
        err_set(e, PE_EXISTS, NULL,
                "'%s' holds resource '%s' (%s, id %s), which the imported record %s; "
                "replacing the record would orphan it",
                old->env, r->name, r->type ? r->type : "?", r->id ? r->id : "none",
                n ? "holds with another id" : "does not hold");
        err_hint(e, "`prenv env destroy %s` first, or import under another name with --as",
                 old->env);
        return PE_EXISTS;
    }
    return 0;
}

static char *history_lines(const cJSON *h)
{
    struct sb b;
    sb_init(&b);
    const cJSON *x;
    cJSON_ArrayForEach(x, h)
    {
        char *s = cJSON_PrintUnformatted(x);
        sb_adds(&b, s);
        sb_addc(&b, '\n');
        cJSON_free(s);
    }
    return sb_steal(&b);
}

int import_env(char **env_out, size_t *nres, const struct project *p, const char *text, size_t len,
               const char *name, const struct import_opts *o, struct err *e)
{
    *env_out = NULL;
    *nres = 0;
    struct state *st = NULL, *old = NULL;
    struct env_def def = {0};
    char *hist = NULL, *hpath = NULL, *stext = NULL;
    bool locked = false, wrote_history = false;
    struct lock lk;
    cJSON *j = cJSON_ParseWithLength(text, len);
    int rc;
    if (!j) {
        rc = err_set(e, PE_STATE, NULL, "%s is not valid JSON", name);
        err_hint(e, "`prenv env export ENV -o FILE` writes what `env import` reads");
        goto out;
    }
    if ((rc = check_doc(j, name, e)))
        goto out;
    stext = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "state"));
    if ((rc = state_parse(&st, stext, strlen(stext), name, e)))
        goto out;
    if (!st->env || !st->kind) {
        rc = err_set(e, PE_STATE, NULL, "%s: the state has no env or kind", name);
        goto out;
    }
    if (!st->project || strcmp(st->project, p->name) != 0) {
        rc = err_set(e, PE_CONFIG, NULL,
                     "%s is an environment of project '%s'; this is project '%s'", name,
                     st->project ? st->project : "(none)", p->name);
        err_hint(e, "import it in a checkout of '%s' (-C DIR)",
                 st->project ? st->project : "its project");
        goto out;
    }
    const char *env = o->as ? o->as : st->env;
    if ((rc = project_env(&def, p, env, e))) {
        err_prefix(e, "cannot import as '%s': ", env);
        goto out;
    }
    if (strcmp(st->kind, env_kind_name(def.kind)) != 0) {
        rc = err_set(e, PE_USAGE, NULL, "'%s' was a %s and '%s' is a %s: a record keeps its kind",
                     st->env, st->kind, env, env_kind_name(def.kind));
        err_hint(e, "--as takes a name of the same kind");
        goto out;
    }
    if (strcmp(st->env, env) != 0) {
        free(st->env);
        st->env = xstrdup(env);
        /* a renamed preview takes its number from its new name */
        if (st->pr && st->pr->kind == VAL_MAP)
            val_free(val_map_take(st->pr, "number"));
    }
    if ((rc = lock_acquire(&lk, p->state_dir, env, o->command, o->lock_wait_ms, NULL, NULL, e)))
        goto out;
    locked = true;
    rc = state_load(&old, p->state_dir, env, e);
    if (rc == PE_NOTFOUND) {
        err_release(e);
        rc = 0;
    } else if (rc) {
        err_prefix(e, "the existing record of '%s': ", env);
        goto out;
    } else if (!o->force) {
        rc = err_set(e, PE_EXISTS, NULL, "environment '%s' already exists here", env);
        err_hint(e, "--as NAME imports it under another name; --force replaces the record when "
                    "it holds the same resources");
        goto out;
    } else if ((rc = check_replace(old, st, e))) {
        goto out;
    }
    /* history first, the state last: until the state is written the env does
     * not exist, and a failure removes the history again */
    char *hdir = xasprintf("%s/history", p->state_dir);
    rc = fs_mkdir_p(hdir, 0700, e);
    free(hdir);
    if (rc)
        goto out;
    hist = history_lines(cJSON_GetObjectItemCaseSensitive(j, "history"));
    hpath = xasprintf("%s/history/%s.jsonl", p->state_dir, env);
    if ((rc = fs_write_atomic(hpath, hist, strlen(hist), 0600, e)))
        goto out;
    wrote_history = !old;
    if ((rc = state_save(st, p->state_dir, e)))
        goto out;
    wrote_history = false;
    struct val *rec = val_map(NULL);
    struct sb t;
    sb_init(&t);
    tm_rfc3339(&t, tm_now_ms());
    val_map_set(rec, "time", NULL, val_str_own(sb_steal(&t), NULL));
    val_map_set(rec, "user", NULL, val_str_own(op_user(), NULL));
    val_map_set(rec, "operation", NULL, val_str("import", NULL));
    val_map_set(rec, "sha", NULL, st->sha ? val_str(st->sha, NULL) : val_null(NULL));
    val_map_set(rec, "result", NULL, val_str("ok", NULL));
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(j, "env");
    if (cJSON_IsString(from))
        val_map_set(rec, "from", NULL, val_str(from->valuestring, NULL));
    struct err he = {0};
    state_history_append(p->state_dir, env, rec, &he);
    err_release(&he);
    val_free(rec);
    *env_out = xstrdup(env);
    *nres = st->nres;
out:
    if (wrote_history)
        unlink(hpath);
    if (locked)
        lock_release(&lk, false);
    free(hist);
    free(hpath);
    cJSON_free(stext);
    cJSON_Delete(j);
    state_free(st);
    state_free(old);
    env_def_release(&def);
    return rc;
}

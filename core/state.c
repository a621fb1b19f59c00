/* state: the per-environment JSON document, its atomic writes and history. */
#include "core/state.h"

#include "core/lib/crypto.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/seal.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct state *state_new(const char *env, const char *kind, const char *project)
{
    struct state *s = xcalloc(1, sizeof *s);
    s->schema = STATE_SCHEMA;
    s->jfd = -1;
    s->env = xstrdup(env);
    s->kind = xstrdup(kind);
    s->project = xstrdup(project);
    s->status = xstrdup("creating");
    s->created_ms = s->updated_ms = tm_now_ms();
    s->tags = val_map(NULL);
    s->sets = val_map(NULL);
    s->outputs = val_map(NULL);
    s->layers = val_list(NULL);
    return s;
}

void st_res_release(struct st_res *r)
{
    free(r->name);
    free(r->type);
    free(r->id);
    val_free(r->inputs);
    free(r->inputs_hash);
    free(r->drift);
    val_free(r->outputs);
    val_free(r->priv);
    for (size_t i = 0; i < r->ndeps; i++)
        free(r->deps[i]);
    free(r->deps);
    memset(r, 0, sizeof *r);
}

static void pending_release(struct st_pending *p)
{
    free(p->resource);
    free(p->type);
    free(p->op);
    val_free(p->inputs);
    memset(p, 0, sizeof *p);
}

void state_free(struct state *s)
{
    if (!s)
        return;
    if (s->jfd >= 0)
        close(s->jfd);
    free(s->env);
    free(s->kind);
    free(s->project);
    free(s->owner);
    free(s->status);
    free(s->sha);
    free(s->last_error);
    free(s->asleep_why);
    val_free(s->schedule);
    val_free(s->tags);
    val_free(s->sets);
    val_free(s->artifact);
    val_free(s->pr);
    val_free(s->outputs);
    val_free(s->layers);
    val_free(s->extra);
    for (size_t i = 0; i < s->nres; i++)
        st_res_release(&s->res[i]);
    free(s->res);
    for (size_t i = 0; i < s->npend; i++)
        pending_release(&s->pend[i]);
    free(s->pend);
    free(s);
}

char *state_path(const char *dir, const char *env)
{
    return xasprintf("%s/state/%s.json", dir, env);
}

char *state_hash(const struct val *v)
{
    struct sb b;
    sb_init(&b);
    val_canon(&b, v);
    char hex[65];
    crypto_sha256_hex(b.buf, b.len, hex);
    sb_release(&b);
    return xstrdup(hex);
}

struct st_res *state_res(const struct state *s, const char *name)
{
    for (size_t i = 0; i < s->nres; i++)
        if (!strcmp(s->res[i].name, name))
            return &s->res[i];
    return NULL;
}

struct st_res *state_res_put(struct state *s, struct st_res *r)
{
    struct st_res *old = state_res(s, r->name);
    if (old) {
        st_res_release(old);
        *old = *r;
        memset(r, 0, sizeof *r);
        return old;
    }
    XGROW(s->res, s->capres, s->nres + 1);
    s->res[s->nres] = *r;
    memset(r, 0, sizeof *r);
    return &s->res[s->nres++];
}

void state_res_del(struct state *s, const char *name)
{
    struct st_res *r = state_res(s, name);
    if (!r)
        return;
    size_t i = (size_t)(r - s->res);
    st_res_release(r);
    memmove(r, r + 1, (s->nres - i - 1) * sizeof *r);
    s->nres--;
}

struct st_pending *state_pending(const struct state *s, const char *resource)
{
    for (size_t i = 0; i < s->npend; i++)
        if (!strcmp(s->pend[i].resource, resource))
            return &s->pend[i];
    return NULL;
}

struct st_pending *state_pending_add(struct state *s, const char *resource, const char *type,
                                     const char *op, const struct val *inputs)
{
    state_pending_del(s, resource);
    XGROW(s->pend, s->cappend, s->npend + 1);
    struct st_pending *p = &s->pend[s->npend++];
    p->resource = xstrdup(resource);
    p->type = xstrdup(type);
    p->op = xstrdup(op);
    p->inputs = inputs ? val_clone(inputs) : NULL;
    p->since_ms = tm_now_ms();
    return p;
}

void state_pending_del(struct state *s, const char *resource)
{
    struct st_pending *p = state_pending(s, resource);
    if (!p)
        return;
    size_t i = (size_t)(p - s->pend);
    pending_release(p);
    memmove(p, p + 1, (s->npend - i - 1) * sizeof *p);
    s->npend--;
}

/* ---- serialisation: written directly, parsed with cJSON ---- */

static void add_key(struct sb *b, const char *key, bool *first, int ind)
{
    sb_adds(b, *first ? "\n" : ",\n");
    *first = false;
    sb_addf(b, "%*s", ind, "");
    sb_add_json_str(b, key);
    sb_adds(b, ": ");
}

static void add_str(struct sb *b, const char *key, const char *v, bool *first, int ind)
{
    add_key(b, key, first, ind);
    if (v)
        sb_add_json_str(b, v);
    else
        sb_adds(b, "null");
}

static void add_time(struct sb *b, const char *key, long long ms, bool *first, int ind)
{
    add_key(b, key, first, ind);
    if (!ms) {
        sb_adds(b, "null");
        return;
    }
    struct sb t;
    sb_init(&t);
    tm_rfc3339(&t, ms);
    sb_add_json_str(b, t.buf);
    sb_release(&t);
}

static void add_val(struct sb *b, const char *key, const struct val *v, bool *first, int ind,
                    bool mask)
{
    add_key(b, key, first, ind);
    if (!v) {
        sb_adds(b, "null");
        return;
    }
    /* secrets are stored sealed (encrypted) when the project has a key at
     * hand, else tagged so they read back as secrets */
    if (!mask && seal_has_plain(v)) {
        struct val *c = val_clone(v);
        struct err e = {0};
        seal_close(&c, 0, &e);
        err_release(&e);
        val_json(b, c, VAL_JSON_TAGGED);
        val_free(c);
        return;
    }
    val_json(b, v, mask ? VAL_JSON_MASK : VAL_JSON_TAGGED);
}

static void res_serialize(struct sb *b, const struct st_res *r, bool mask)
{
    bool f = true;
    sb_addc(b, '{');
    add_str(b, "name", r->name, &f, 6);
    add_str(b, "type", r->type, &f, 6);
    add_str(b, "id", r->id, &f, 6);
    add_key(b, "protect", &f, 6);
    sb_adds(b, r->protect ? "true" : "false");
    add_time(b, "created", r->created_ms, &f, 6);
    add_time(b, "updated", r->updated_ms, &f, 6);
    add_key(b, "depends_on", &f, 6);
    sb_addc(b, '[');
    for (size_t d = 0; d < r->ndeps; d++) {
        if (d)
            sb_addc(b, ',');
        sb_add_json_str(b, r->deps[d]);
    }
    sb_addc(b, ']');
    if (r->drift)
        add_str(b, "drift", r->drift, &f, 6);
    add_str(b, "inputs_hash", r->inputs_hash, &f, 6);
    add_val(b, "inputs", r->inputs, &f, 6, mask);
    add_val(b, "outputs", r->outputs, &f, 6, mask);
    if (!mask)
        add_val(b, "private", r->priv, &f, 6, mask);
    sb_adds(b, "\n    }");
}

static void pending_serialize(struct sb *b, const struct st_pending *p, bool mask)
{
    bool f = true;
    sb_addc(b, '{');
    add_str(b, "resource", p->resource, &f, 6);
    add_str(b, "type", p->type, &f, 6);
    add_str(b, "op", p->op, &f, 6);
    add_time(b, "since", p->since_ms, &f, 6);
    add_val(b, "inputs", p->inputs, &f, 6, mask);
    sb_adds(b, "\n    }");
}

void state_serialize(struct sb *b, const struct state *s, bool mask)
{
    bool first = true;
    sb_addc(b, '{');
    add_key(b, "schema", &first, 2);
    sb_addf(b, "%d", STATE_SCHEMA);
    add_str(b, "env", s->env, &first, 2);
    add_str(b, "kind", s->kind, &first, 2);
    add_str(b, "project", s->project, &first, 2);
    add_str(b, "owner", s->owner, &first, 2);
    add_str(b, "status", s->status, &first, 2);
    add_time(b, "created", s->created_ms, &first, 2);
    add_time(b, "updated", s->updated_ms, &first, 2);
    add_time(b, "expires", s->expires_ms, &first, 2);
    add_key(b, "ttl_seconds", &first, 2);
    if (s->ttl_ms)
        sb_addf(b, "%lld", s->ttl_ms / 1000);
    else
        sb_adds(b, "null");
    add_str(b, "sha", s->sha, &first, 2);
    add_str(b, "last_error", s->last_error, &first, 2);
    add_str(b, "asleep", s->asleep_why, &first, 2);
    add_time(b, "asleep_since", s->asleep_ms, &first, 2);
    add_time(b, "wake_until", s->wake_until_ms, &first, 2);
    add_time(b, "last_activity", s->activity_ms, &first, 2);
    add_key(b, "idle_seconds", &first, 2);
    if (s->idle_ms)
        sb_addf(b, "%lld", s->idle_ms / 1000);
    else
        sb_adds(b, "null");
    add_time(b, "warned", s->warned_ms, &first, 2);
    add_val(b, "schedule", s->schedule, &first, 2, mask);
    add_val(b, "tags", s->tags, &first, 2, mask);
    add_val(b, "sets", s->sets, &first, 2, mask);
    add_val(b, "artifact", s->artifact, &first, 2, mask);
    add_val(b, "pr", s->pr, &first, 2, mask);
    add_val(b, "config_layers", s->layers, &first, 2, mask);
    add_val(b, "outputs", s->outputs, &first, 2, mask);
    /* counts first, so readers of the summary can stop before the resources */
    add_key(b, "resource_count", &first, 2);
    sb_addf(b, "%zu", s->nres);
    add_key(b, "pending_count", &first, 2);
    sb_addf(b, "%zu", s->npend);
    add_key(b, "resources", &first, 2);
    sb_addc(b, '[');
    for (size_t i = 0; i < s->nres; i++) {
        if (i)
            sb_adds(b, ", ");
        res_serialize(b, &s->res[i], mask);
    }
    sb_addc(b, ']');
    add_key(b, "pending", &first, 2);
    sb_addc(b, '[');
    for (size_t i = 0; i < s->npend; i++) {
        if (i)
            sb_adds(b, ", ");
        pending_serialize(b, &s->pend[i], mask);
    }
    sb_addc(b, ']');
    if (s->extra)
        for (size_t i = 0; i < s->extra->u.map.n; i++)
            add_val(b, s->extra->u.map.e[i].key, s->extra->u.map.e[i].v, &first, 2, mask);
    sb_adds(b, "\n}\n");
}

static int res_parse(struct st_res *x, const cJSON *r);
static void pending_parse(struct state *s, const cJSON *r);

static char *journal_path(const char *dir, const char *env)
{
    return xasprintf("%s/state/%s.journal", dir, env);
}

static int journal_open(struct state *s, const char *dir, struct err *e)
{
    if (s->jfd >= 0)
        return 0;
    char *path = journal_path(dir, s->env);
    s->jfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int rc = s->jfd < 0 ? err_errno(e, errno, "cannot open %s", path) : 0;
    free(path);
    return rc;
}

static int journal_write(struct state *s, const struct sb *b, struct err *e)
{
    const char *p = b->buf;
    size_t n = b->len;
    while (n) {
        ssize_t w = write(s->jfd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return err_errno(e, errno, "cannot append to the journal of '%s'", s->env);
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int state_journal_intent(struct state *s, const char *dir, const char *const *resources, size_t n,
                         struct err *e)
{
    int rc = journal_open(s, dir, e);
    if (rc)
        return rc;
    struct sb b;
    sb_init(&b);
    for (size_t i = 0; i < n; i++) {
        const struct st_pending *p = state_pending(s, resources[i]);
        if (!p)
            continue;
        sb_adds(&b, "{\"begin\": ");
        pending_serialize(&b, p, false);
        sb_adds(&b, "}\n");
        s->jrecords++;
    }
    rc = journal_write(s, &b, e);
    sb_release(&b);
    if (!rc)
        rc = state_journal_sync(s, e);
    return rc;
}

int state_journal_result(struct state *s, const char *dir, const char *resource, struct err *e)
{
    int rc = journal_open(s, dir, e);
    if (rc)
        return rc;
    struct sb b;
    sb_init(&b);
    const struct st_res *r = state_res(s, resource);
    if (r) {
        sb_adds(&b, "{\"done\": ");
        res_serialize(&b, r, false);
    } else {
        sb_adds(&b, "{\"gone\": ");
        sb_add_json_str(&b, resource);
    }
    /* a failed operation keeps its intent: only a settled one ends it */
    sb_addf(&b, ", \"pending\": %s}\n", state_pending(s, resource) ? "true" : "false");
    s->jrecords++;
    rc = journal_write(s, &b, e);
    sb_release(&b);
    return rc;
}

int state_journal_sync(struct state *s, struct err *e)
{
    if (s->jfd >= 0 && fdatasync(s->jfd) < 0)
        return err_errno(e, errno, "cannot sync the journal of '%s'", s->env);
    return 0;
}

/* replay the journal on top of the document; a torn last line ends it */
static void journal_replay(struct state *s, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        if (!j)
            break;
        const cJSON *x;
        if ((x = cJSON_GetObjectItemCaseSensitive(j, "begin"))) {
            pending_parse(s, x);
        } else if ((x = cJSON_GetObjectItemCaseSensitive(j, "done"))) {
            struct st_res r;
            if (!res_parse(&r, x)) {
                char *name = xstrdup(r.name);
                state_res_put(s, &r);
                if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "pending")))
                    state_pending_del(s, name);
                free(name);
            }
        } else if ((x = cJSON_GetObjectItemCaseSensitive(j, "gone")) && cJSON_IsString(x)) {
            state_res_del(s, x->valuestring);
            if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "pending")))
                state_pending_del(s, x->valuestring);
        }
        cJSON_Delete(j);
        s->jrecords++;
        p = nl + 1;
    }
}

int state_save(struct state *s, const char *dir, struct err *e)
{
    char *sdir = xasprintf("%s/state", dir);
    int rc = fs_mkdir_p(sdir, 0700, e);
    free(sdir);
    if (rc)
        return rc;
    s->updated_ms = tm_now_ms();
    struct sb b;
    sb_init_max(&b, STATE_MAX_FILE);
    state_serialize(&b, s, false);
    if (!sb_ok(&b)) {
        sb_release(&b);
        return err_set(e, PE_LIMIT, NULL, "state of '%s' would exceed %zu bytes", s->env,
                       STATE_MAX_FILE);
    }
    char *path = state_path(dir, s->env);
    rc = fs_write_atomic(path, b.buf, b.len, 0600, e);
    free(path);
    sb_release(&b);
    if (!rc) {
        /* the document now holds everything the journal said */
        if (s->jfd >= 0) {
            close(s->jfd);
            s->jfd = -1;
        }
        char *jp = journal_path(dir, s->env);
        if (unlink(jp) < 0 && errno != ENOENT)
            rc = err_errno(e, errno, "cannot remove %s", jp);
        free(jp);
        s->jrecords = 0;
    }
    return rc;
}

static char *jstr(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(j) ? xstrdup(j->valuestring) : NULL;
}

static long long jtime(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    long long ms = 0;
    if (cJSON_IsString(j) && tm_parse_rfc3339(j->valuestring, &ms))
        return ms;
    return 0;
}

static struct val *jval(const cJSON *o, const char *k, bool map_default)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!j || cJSON_IsNull(j))
        return map_default ? val_map(NULL) : NULL;
    return val_from_cjson(j);
}

static const char *const known_keys[] = {
    "schema", "env",     "kind", "project",      "owner",         "status",  "created",
    "updated", "expires", "ttl_seconds", "sha",  "last_error",    "tags",    "sets",
    "artifact", "pr",    "config_layers", "outputs", "resources", "pending",
    "resource_count", "pending_count", "asleep", "asleep_since", "wake_until",
    "last_activity", "idle_seconds", "warned", "schedule", NULL};

static int res_parse(struct st_res *x, const cJSON *r)
{
    memset(x, 0, sizeof *x);
    x->name = jstr(r, "name");
    x->type = jstr(r, "type");
    if (!x->name || !x->type) {
        st_res_release(x);
        return -1;
    }
    x->id = jstr(r, "id");
    x->protect = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "protect"));
    x->created_ms = jtime(r, "created");
    x->updated_ms = jtime(r, "updated");
    x->inputs_hash = jstr(r, "inputs_hash");
    x->drift = jstr(r, "drift");
    x->inputs = jval(r, "inputs", true);
    x->outputs = jval(r, "outputs", true);
    x->priv = jval(r, "private", false);
    const cJSON *deps = cJSON_GetObjectItemCaseSensitive(r, "depends_on");
    int nd = cJSON_GetArraySize(deps);
    x->deps = xcalloc((size_t)nd + 1, sizeof *x->deps);
    const cJSON *d;
    cJSON_ArrayForEach(d, deps) if (cJSON_IsString(d)) x->deps[x->ndeps++] =
        xstrdup(d->valuestring);
    return 0;
}

static void pending_parse(struct state *s, const cJSON *r)
{
    char *res_name = jstr(r, "resource"), *type = jstr(r, "type"), *op = jstr(r, "op");
    if (res_name && type && op) {
        struct val *in = jval(r, "inputs", false);
        struct st_pending *p = state_pending_add(s, res_name, type, op, in);
        p->since_ms = jtime(r, "since");
        val_free(in);
    }
    free(res_name);
    free(type);
    free(op);
}

int state_parse(struct state **out, const char *text, size_t len, const char *name, struct err *e)
{
    *out = NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        err_set(e, PE_STATE, NULL, "state file %s is not valid JSON", name);
        err_hint(e, "it was not written by prenv or was edited by hand; restore it from a "
                    "backup, or move it away and run `prenv env refresh` to rebuild");
        return PE_STATE;
    }
    const cJSON *sch = cJSON_GetObjectItemCaseSensitive(j, "schema");
    if (!cJSON_IsNumber(sch) || sch->valueint < 1) {
        cJSON_Delete(j);
        return err_set(e, PE_STATE, NULL, "state file %s has no schema version", name);
    }
    if (sch->valueint > STATE_SCHEMA) {
        int v = sch->valueint;
        cJSON_Delete(j);
        err_set(e, PE_STATE, NULL,
                "state file %s has schema version %d; this prenv understands up to %d", name, v,
                STATE_SCHEMA);
        err_hint(e, "upgrade prenv");
        return PE_STATE;
    }
    struct state *s = xcalloc(1, sizeof *s);
    s->jfd = -1;
    s->schema = sch->valueint;
    s->env = jstr(j, "env");
    s->kind = jstr(j, "kind");
    s->project = jstr(j, "project");
    s->owner = jstr(j, "owner");
    s->status = jstr(j, "status");
    s->sha = jstr(j, "sha");
    s->last_error = jstr(j, "last_error");
    s->created_ms = jtime(j, "created");
    s->updated_ms = jtime(j, "updated");
    s->expires_ms = jtime(j, "expires");
    s->asleep_why = jstr(j, "asleep");
    s->asleep_ms = jtime(j, "asleep_since");
    s->wake_until_ms = jtime(j, "wake_until");
    s->activity_ms = jtime(j, "last_activity");
    s->warned_ms = jtime(j, "warned");
    s->schedule = jval(j, "schedule", false);
    const cJSON *idle = cJSON_GetObjectItemCaseSensitive(j, "idle_seconds");
    if (cJSON_IsNumber(idle))
        s->idle_ms = (long long)idle->valuedouble * 1000;
    const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(j, "ttl_seconds");
    if (cJSON_IsNumber(ttl))
        s->ttl_ms = (long long)ttl->valuedouble * 1000;
    s->tags = jval(j, "tags", true);
    s->sets = jval(j, "sets", true);
    s->artifact = jval(j, "artifact", false);
    s->pr = jval(j, "pr", false);
    s->outputs = jval(j, "outputs", true);
    s->layers = jval(j, "config_layers", false);
    if (!s->layers)
        s->layers = val_list(NULL);
    if (!s->env || !s->kind || !s->status) {
        cJSON_Delete(j);
        state_free(s);
        return err_set(e, PE_STATE, NULL, "state file %s lacks env, kind or status", name);
    }
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "resources");
    const cJSON *r;
    cJSON_ArrayForEach(r, res)
    {
        struct st_res x;
        if (res_parse(&x, r)) {
            cJSON_Delete(j);
            state_free(s);
            return err_set(e, PE_STATE, NULL, "state file %s has a resource without name or type",
                           name);
        }
        state_res_put(s, &x);
    }
    const cJSON *pend = cJSON_GetObjectItemCaseSensitive(j, "pending");
    cJSON_ArrayForEach(r, pend) pending_parse(s, r);
    for (const cJSON *c = j->child; c; c = c->next) {
        bool known = false;
        for (size_t k = 0; known_keys[k]; k++)
            if (c->string && !strcmp(c->string, known_keys[k]))
                known = true;
        if (!known && c->string) {
            if (!s->extra)
                s->extra = val_map(NULL);
            val_map_set(s->extra, c->string, NULL, val_from_cjson(c));
        }
    }
    cJSON_Delete(j);
    *out = s;
    return 0;
}

static char *activity_path(const char *dir, const char *env)
{
    return xasprintf("%s/activity/%s", dir, env);
}

long long state_activity_read(const char *dir, const char *env)
{
    char *p = activity_path(dir, env);
    char buf[32];
    long long ms = 0;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = 0;
            ms = strtoll(buf, NULL, 10);
        }
        close(fd);
    }
    free(p);
    return ms > 0 ? ms : 0;
}

int state_activity_touch(const char *dir, const char *env, long long ms, struct err *e)
{
    char *d = xasprintf("%s/activity", dir);
    int rc = fs_mkdir_p(d, 0700, e);
    free(d);
    if (rc)
        return rc;
    /* rename over the old one: readers see a whole number; no fsync, a crash
     * loses at most the last few seconds of activity */
    char *p = activity_path(dir, env);
    char *tmp = xasprintf("%s.%ld.tmp", p, (long)getpid());
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld\n", ms);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, buf, (size_t)n) != n || close(fd) < 0 || rename(tmp, p) < 0) {
        rc = err_errno(e, errno, "cannot record activity in %s", p);
        if (fd >= 0)
            unlink(tmp);
    }
    free(tmp);
    free(p);
    return rc;
}

int state_load(struct state **out, const char *dir, const char *env, struct err *e)
{
    char *path = state_path(dir, env);
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read(path, STATE_MAX_FILE, &text, &len, e);
    if (rc == -ENOENT) {
        free(path);
        *out = NULL;
        return err_set(e, PE_NOTFOUND, NULL, "environment '%s' does not exist", env);
    }
    if (!rc)
        rc = state_parse(out, text, len, path, e);
    free(text);
    free(path);
    if (!rc) {
        char *jp = journal_path(dir, env), *jt = NULL;
        size_t jl = 0;
        struct err je = {0};
        if (!fs_read(jp, STATE_MAX_FILE, &jt, &jl, &je))
            journal_replay(*out, jt, jl);
        err_release(&je);
        free(jt);
        free(jp);
        long long act = state_activity_read(dir, env);
        if (act > (*out)->activity_ms)
            (*out)->activity_ms = act;
    }
    return rc;
}

int state_delete(const char *dir, const char *env, struct err *e)
{
    char *jp = journal_path(dir, env);
    unlink(jp);
    free(jp);
    jp = activity_path(dir, env);
    unlink(jp);
    free(jp);
    char *path = state_path(dir, env);
    int rc = 0;
    if (unlink(path) < 0 && errno != ENOENT)
        rc = err_errno(e, errno, "cannot remove %s", path);
    free(path);
    if (!rc) {
        char *sd = xasprintf("%s/state", dir);
        fs_fsync_dir(sd);
        free(sd);
    }
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int state_list(char ***names, size_t *n, const char *dir, struct err *e)
{
    *names = NULL;
    *n = 0;
    char *sd = xasprintf("%s/state", dir);
    DIR *d = opendir(sd);
    if (!d) {
        int er = errno;
        free(sd);
        if (er == ENOENT)
            return 0;
        return err_errno(e, er, "cannot list %s/state", dir);
    }
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= 5 || strcmp(de->d_name + l - 5, ".json") != 0 || de->d_name[0] == '.')
            continue;
        XGROW(*names, cap, *n + 1);
        (*names)[(*n)++] = xstrndup(de->d_name, l - 5);
    }
    closedir(d);
    free(sd);
    if (*n)
        qsort(*names, *n, sizeof **names, cmp_str);
    return 0;
}

void state_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int state_history_append(const char *dir, const char *env, const struct val *rec, struct err *e)
{
    char *hd = xasprintf("%s/history", dir);
    int rc = fs_mkdir_p(hd, 0700, e);
    free(hd);
    if (rc)
        return rc;
    struct sb b;
    sb_init(&b);
    val_json(&b, rec, VAL_JSON_MASK);
    sb_addc(&b, '\n');
    char *path = xasprintf("%s/history/%s.jsonl", dir, env);
    rc = fs_append_durable(path, b.buf, b.len, 0600, e);
    free(path);
    sb_release(&b);
    return rc;
}

int state_history_read(struct val **out, const char *dir, const char *env, size_t last,
                       struct err *e)
{
    *out = val_list(NULL);
    char *path = xasprintf("%s/history/%s.jsonl", dir, env);
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read(path, STATE_MAX_FILE, &text, &len, e);
    free(path);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return rc;
    size_t nlines = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n')
            nlines++;
    size_t skip = last && nlines > last ? nlines - last : 0, line = 0;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        if (!nl)
            break; /* a torn last line from a crash is ignored */
        if (line++ >= skip) {
            cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
            if (j)
                val_list_push(*out, val_from_cjson(j));
            cJSON_Delete(j);
        }
        p = nl + 1;
    }
    free(text);
    return 0;
}

void st_summary_release(struct st_summary *s)
{
    free(s->env);
    free(s->kind);
    free(s->owner);
    free(s->status);
    free(s->sha);
    free(s->url);
    free(s->pr_repo);
    free(s->asleep_why);
    val_free(s->schedule);
    val_free(s->tags);
    memset(s, 0, sizeof *s);
}

int state_summary(struct st_summary *out, const char *dir, const char *env, struct err *e)
{
    memset(out, 0, sizeof *out);
    char *path = state_path(dir, env);
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read(path, STATE_MAX_FILE, &text, &len, e);
    free(path);
    if (rc == -ENOENT)
        return err_set(e, PE_NOTFOUND, NULL, "environment '%s' does not exist", env);
    if (rc)
        return rc;
    /* the summary is everything before the resources: parse only that */
    cJSON *j = NULL;
    const char *cut = strstr(text, "\n  \"resources\": [");
    if (cut && cut > text && cut[-1] == ',') {
        size_t hl = (size_t)(cut - text);
        text[hl - 1] = '}';
        j = cJSON_ParseWithLength(text, hl);
        text[hl - 1] = ',';
    }
    if (!j)
        j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return err_set(e, PE_STATE, NULL, "state of '%s' is not valid JSON", env);
    }
    out->env = xstrdup(env);
    out->kind = jstr(j, "kind");
    out->owner = jstr(j, "owner");
    out->status = jstr(j, "status");
    out->sha = jstr(j, "sha");
    out->created_ms = jtime(j, "created");
    out->updated_ms = jtime(j, "updated");
    out->expires_ms = jtime(j, "expires");
    out->activity_ms = jtime(j, "last_activity");
    long long act = state_activity_read(dir, env);
    if (act > out->activity_ms)
        out->activity_ms = act;
    out->asleep_ms = jtime(j, "asleep_since");
    out->wake_until_ms = jtime(j, "wake_until");
    out->warned_ms = jtime(j, "warned");
    out->asleep_why = jstr(j, "asleep");
    out->schedule = jval(j, "schedule", false);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "pr");
    out->pr_repo = jstr(pr, "repo");
    const cJSON *prn = cJSON_GetObjectItemCaseSensitive(pr, "number");
    if (cJSON_IsNumber(prn))
        out->pr_number = (long long)prn->valuedouble;
    const cJSON *idle = cJSON_GetObjectItemCaseSensitive(j, "idle_seconds");
    if (cJSON_IsNumber(idle))
        out->idle_ms = (long long)idle->valuedouble * 1000;
    const cJSON *rc_ = cJSON_GetObjectItemCaseSensitive(j, "resource_count"),
                *pc_ = cJSON_GetObjectItemCaseSensitive(j, "pending_count");
    out->resources = cJSON_IsNumber(rc_)
                         ? rc_->valueint
                         : cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "resources"));
    out->pending = cJSON_IsNumber(pc_)
                       ? pc_->valueint
                       : cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "pending"));
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "outputs"), "url");
    out->url = cJSON_IsString(url) ? xstrdup(url->valuestring) : NULL;
    out->tags = jval(j, "tags", true);
    cJSON_Delete(j);
    return 0;
}

static void json_opt(struct sb *b, const char *k, const char *v)
{
    sb_addf(b, ", \"%s\": ", k);
    if (v)
        sb_add_json_str(b, v);
    else
        sb_adds(b, "null");
}

static void json_t(struct sb *b, const char *k, long long ms)
{
    sb_addf(b, ", \"%s\": ", k);
    if (!ms) {
        sb_adds(b, "null");
        return;
    }
    sb_addc(b, '"');
    tm_rfc3339(b, ms);
    sb_addc(b, '"');
}

long long st_summary_expiry(const struct st_summary *s, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = 0;
    if (s->kind && !strcmp(s->kind, "stage"))
        return 0; /* stages never expire */
    long long exp = s->expires_ms;
    struct sb b;
    sb_init(&b);
    if (exp)
        sb_adds(&b, "ttl");
    if (s->idle_ms && s->activity_ms) {
        long long idle_exp = s->activity_ms + s->idle_ms;
        if (!exp || idle_exp < exp) {
            exp = idle_exp;
            sb_reset(&b);
            sb_adds(&b, "idle for ");
            dur_fmt(&b, s->idle_ms);
        }
    }
    if (why && whylen)
        snprintf(why, whylen, "%s", b.len ? b.buf : "");
    sb_release(&b);
    return exp;
}

void st_summary_json(struct sb *b, const struct st_summary *s)
{
    sb_adds(b, "{\"name\": ");
    sb_add_json_str(b, s->env);
    json_opt(b, "kind", s->kind);
    json_opt(b, "owner", s->owner);
    json_opt(b, "status", s->status);
    json_t(b, "created", s->created_ms);
    json_t(b, "updated", s->updated_ms);
    char why[64];
    json_t(b, "expires", st_summary_expiry(s, why, sizeof why));
    json_opt(b, "expires_why", why[0] ? why : NULL);
    json_opt(b, "asleep", s->asleep_why);
    json_t(b, "asleep_since", s->asleep_ms);
    json_t(b, "wake_until", s->wake_until_ms);
    json_t(b, "last_activity", s->activity_ms);
    json_opt(b, "sha", s->sha);
    sb_addf(b, ", \"resources\": %d, \"pending\": %d", s->resources, s->pending);
    json_opt(b, "url", s->url);
    sb_adds(b, ", \"schedule\": ");
    if (s->schedule)
        val_json(b, s->schedule, 0);
    else
        sb_adds(b, "null");
    if (s->pr_repo) {
        sb_adds(b, ", \"pr\": {\"repo\": ");
        sb_add_json_str(b, s->pr_repo);
        sb_addf(b, ", \"number\": %lld}", s->pr_number);
    } else {
        sb_adds(b, ", \"pr\": null");
    }
    sb_adds(b, ", \"tags\": ");
    val_json(b, s->tags, 0);
    sb_addc(b, '}');
}

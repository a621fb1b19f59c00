/* cost: usage and cost of environments from their history records and the
 * rate card; grouping by tag; the JSON report. Printing tables is cmd/cost.c's
 * business, serving the report hooks/serve.c's. */
#include "envs/cost.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_HOUR 3600000.0

void cost_counts(struct val *rec, const struct state *st)
{
    struct val *reps = val_map(NULL);
    long long dbs = 0;
    for (size_t i = 0; i < st->nres; i++) {
        const struct st_res *r = &st->res[i];
        if (!r->type)
            continue;
        if (!strcmp(r->type, "process.service")) {
            const char *size = val_map_str(r->inputs, "size", "default");
            long long n = val_map_int(r->inputs, "replicas", 1);
            val_map_set(reps, size, NULL, val_int(val_map_int(reps, size, 0) + n, NULL));
        } else if (!strcmp(r->type, "postgres.database") || !strcmp(r->type, "sqlite.database")) {
            dbs++;
        }
    }
    val_map_set(rec, "replicas", NULL, reps);
    val_map_set(rec, "databases", NULL, val_int(dbs, NULL));
    val_map_set(rec, "asleep", NULL, val_bool(st->asleep_why != NULL, NULL));
}

static double num(const struct val *v)
{
    if (v && v->kind == VAL_INT)
        return (double)v->u.i;
    if (v && v->kind == VAL_FLOAT)
        return v->u.f;
    return 0;
}

/* per-hour rates of a record's counts: replicas, and databases */
static void rates(const struct val *rec, const struct cost_card *card, double *rep, double *db)
{
    *rep = 0;
    const struct val *m = val_map_get(rec, "replicas");
    for (size_t i = 0; m && m->kind == VAL_MAP && i < m->u.map.n; i++) {
        const struct val *r = val_map_get(card->replica_hour, m->u.map.e[i].key);
        if (!r)
            r = val_map_get(card->replica_hour, "default");
        *rep += num(m->u.map.e[i].v) * num(r);
    }
    *db = num(val_map_get(rec, "databases")) * card->database_hour;
}

static bool has_counts(const struct val *rec)
{
    const struct val *m = val_map_get(rec, "replicas");
    return m && m->kind == VAL_MAP;
}

struct seg {
    bool asleep;
    double rep, db;
};

static void add(struct cost_usage *u, const struct seg *s, long long a, long long b, long long from,
                long long to)
{
    if (a < from)
        a = from;
    if (b > to)
        b = to;
    if (b <= a)
        return;
    double h = (double)(b - a) / MS_PER_HOUR;
    if (s->asleep) {
        u->asleep_h += h;
        u->cost += h * s->db;
        u->saved += h * s->rep;
    } else {
        u->running_h += h;
        u->cost += h * (s->rep + s->db);
    }
}

void cost_env(struct cost_usage *u, const struct val *hist, const struct val *fallback,
              const struct cost_card *card, long long from_ms, long long to_ms)
{
    if (!hist || hist->kind != VAL_LIST)
        return;
    /* counts for records without any: the first successful record that has them */
    const struct val *first = fallback;
    for (size_t i = 0; i < hist->u.list.n; i++)
        if (has_counts(hist->u.list.v[i]) &&
            !strcmp(val_map_str(hist->u.list.v[i], "result", ""), "ok")) {
            first = hist->u.list.v[i];
            break;
        }
    struct seg s = {0};
    if (first)
        rates(first, card, &s.rep, &s.db);
    bool alive = false;
    long long prev = 0;
    for (size_t i = 0; i < hist->u.list.n; i++) {
        const struct val *r = hist->u.list.v[i];
        long long t;
        const char *op = val_map_str(r, "operation", "");
        if (!tm_parse_rfc3339(val_map_str(r, "time", ""), &t) ||
            strcmp(val_map_str(r, "result", ""), "ok") != 0)
            continue;
        if (alive)
            add(u, &s, prev, t, from_ms, to_ms);
        if (has_counts(r))
            rates(r, card, &s.rep, &s.db);
        const struct val *a = val_map_get(r, "asleep");
        if (a && a->kind == VAL_BOOL)
            s.asleep = a->u.b;
        else if (!strcmp(op, "sleep"))
            s.asleep = true;
        else if (!strcmp(op, "wake"))
            s.asleep = false;
        alive = strcmp(op, "destroy") != 0;
        prev = t;
    }
    if (alive)
        add(u, &s, prev, to_ms, from_ms, to_ms);
}

static struct cost_row *row_add(struct cost_row **rows, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *rows = xreallocarray(*rows, *cap, sizeof **rows);
    }
    struct cost_row *r = &(*rows)[(*n)++];
    memset(r, 0, sizeof *r);
    return r;
}

static bool used(const struct cost_usage *u)
{
    return u->running_h > 0 || u->asleep_h > 0;
}

static int destroyed_rows(struct cost_row **rows, size_t *n, size_t *cap, const struct project *p,
                          long long from_ms, long long to_ms, struct err *e)
{
    char *path = xasprintf("%s/history/destroyed.jsonl", p->state_dir);
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read(path, STATE_MAX_FILE, &text, &len, e);
    free(path);
    if (rc == -ENOENT) {
        err_release(e);
        return 0;
    }
    if (rc)
        return rc;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl)
            nl = line + strlen(line) - 1;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)(nl - line) + 1);
        struct val *v = j ? val_from_cjson(j) : NULL;
        cJSON_Delete(j);
        const char *env = v ? val_map_str(v, "env", NULL) : NULL;
        if (env) {
            struct cost_usage u = {0};
            cost_env(&u, val_map_get(v, "history"), NULL, &p->cost, from_ms, to_ms);
            if (used(&u)) {
                struct cost_row *r = row_add(rows, n, cap);
                r->env = xstrdup(env);
                r->destroyed = true;
                const struct val *tags = val_map_get(v, "tags");
                r->tags = tags && tags->kind == VAL_MAP ? val_clone(tags) : val_map(NULL);
                r->u = u;
            }
        }
        val_free(v);
        if (!nl[1])
            break;
    }
    free(text);
    return 0;
}

int cost_collect(struct cost_row **rows, size_t *n, const struct project *p, long long from_ms,
                 long long to_ms, struct err *e)
{
    *rows = NULL;
    *n = 0;
    size_t cap = 0;
    char **names = NULL;
    size_t nn = 0;
    int rc = state_list(&names, &nn, p->state_dir, e);
    for (size_t i = 0; !rc && i < nn; i++) {
        struct state *st = NULL;
        struct val *hist = NULL;
        /* an unreadable state (env list says why) still has its history;
         * an env without history yet has nothing to count */
        struct err ig = {0};
        if (state_load(&st, p->state_dir, names[i], &ig)) {
            state_free(st);
            st = NULL;
        }
        err_release(&ig);
        if (state_history_read(&hist, p->state_dir, names[i], 0, &ig)) {
            val_free(hist);
            hist = NULL;
        }
        err_release(&ig);
        struct val *now = NULL;
        if (st) {
            now = val_map(NULL);
            cost_counts(now, st);
        }
        struct cost_row *r = row_add(rows, n, &cap);
        r->env = xstrdup(names[i]);
        r->tags = st && st->tags && st->tags->kind == VAL_MAP ? val_clone(st->tags) : val_map(NULL);
        cost_env(&r->u, hist, now, &p->cost, from_ms, to_ms);
        val_free(now);
        val_free(hist);
        state_free(st);
    }
    state_names_free(names, nn);
    if (!rc)
        rc = destroyed_rows(rows, n, &cap, p, from_ms, to_ms, e);
    if (rc) {
        cost_rows_free(*rows, *n);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

void cost_rows_free(struct cost_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].env);
        val_free(rows[i].tags);
    }
    free(rows);
}

static void usage_add(struct cost_usage *a, const struct cost_usage *b)
{
    a->running_h += b->running_h;
    a->asleep_h += b->asleep_h;
    a->cost += b->cost;
    a->saved += b->saved;
}

static int group_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cost_group *)a)->key, ((const struct cost_group *)b)->key);
}

void cost_group(struct cost_group **groups, size_t *n, const struct cost_row *rows, size_t nrows,
                const char *by)
{
    struct cost_group *g = NULL;
    size_t ng = 0;
    for (size_t i = 0; i < nrows; i++) {
        const char *key = val_map_str(rows[i].tags, by, "(none)");
        size_t k = 0;
        while (k < ng && strcmp(g[k].key, key) != 0)
            k++;
        if (k == ng) {
            g = xreallocarray(g, ng + 1, sizeof *g);
            g[ng++] = (struct cost_group){.key = xstrdup(key)};
        }
        g[k].envs++;
        usage_add(&g[k].u, &rows[i].u);
    }
    if (ng)
        qsort(g, ng, sizeof *g, group_cmp);
    *groups = g;
    *n = ng;
}

void cost_groups_free(struct cost_group *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(g[i].key);
    free(g);
}

bool cost_tag_known(const struct cost_row *rows, size_t n, const char *key)
{
    static const char *const taxonomy[] = {"Environment", "Application", "Owner", "CostCenter",
                                           "DataClass",   "env",         "kind",  "owner",
                                           "project",     NULL};
    for (size_t i = 0; taxonomy[i]; i++)
        if (!strcmp(taxonomy[i], key))
            return true;
    for (size_t i = 0; i < n; i++)
        if (val_map_get(rows[i].tags, key))
            return true;
    return false;
}

/* a number rounded to 6 decimals, without trailing zeros */
static void add_num(struct sb *out, double d)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.6f", round(d * 1e6) / 1e6);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *end = buf + strlen(buf) - 1;
        while (end > dot && *end == '0')
            *end-- = '\0';
        if (end == dot)
            *end = '\0';
    }
    if (!strcmp(buf, "-0"))
        snprintf(buf, sizeof buf, "0");
    sb_adds(out, buf);
}

static void usage_json(struct sb *out, const struct cost_usage *u)
{
    sb_adds(out, "\"running_hours\": ");
    add_num(out, u->running_h);
    sb_adds(out, ", \"asleep_hours\": ");
    add_num(out, u->asleep_h);
    sb_adds(out, ", \"cost\": ");
    add_num(out, u->cost);
    sb_adds(out, ", \"saved\": ");
    add_num(out, u->saved);
}

void cost_json(struct sb *out, const struct cost_row *rows, size_t n, const char *by,
               const struct cost_card *card, long long from_ms, long long to_ms)
{
    struct sb t;
    sb_init(&t);
    sb_adds(out, "{\n  \"currency\": ");
    sb_add_json_str(out, card->currency);
    sb_addf(out, ",\n  \"rate_card\": %s", card->set ? "true" : "false");
    sb_adds(out, ",\n  \"since\": ");
    if (from_ms > 0) {
        tm_rfc3339(&t, from_ms);
        sb_add_json_str(out, t.buf);
    } else {
        sb_adds(out, "null");
    }
    sb_adds(out, ",\n  \"until\": ");
    sb_reset(&t);
    tm_rfc3339(&t, to_ms);
    sb_add_json_str(out, t.buf);
    sb_release(&t);
    sb_adds(out, ",\n  \"by\": ");
    if (by)
        sb_add_json_str(out, by);
    else
        sb_adds(out, "null");
    sb_adds(out, ",\n  \"rows\": [");
    struct cost_usage total = {0};
    if (by) {
        struct cost_group *g;
        size_t ng;
        cost_group(&g, &ng, rows, n, by);
        for (size_t i = 0; i < ng; i++) {
            sb_adds(out, i ? ",\n    {\"key\": " : "\n    {\"key\": ");
            sb_add_json_str(out, g[i].key);
            sb_addf(out, ", \"envs\": %zu, ", g[i].envs);
            usage_json(out, &g[i].u);
            sb_adds(out, "}");
        }
        cost_groups_free(g, ng);
    } else {
        for (size_t i = 0; i < n; i++) {
            sb_adds(out, i ? ",\n    {\"env\": " : "\n    {\"env\": ");
            sb_add_json_str(out, rows[i].env);
            sb_addf(out, ", \"destroyed\": %s, \"tags\": ", rows[i].destroyed ? "true" : "false");
            val_json(out, rows[i].tags, 0);
            sb_adds(out, ", ");
            usage_json(out, &rows[i].u);
            sb_adds(out, "}");
        }
    }
    for (size_t i = 0; i < n; i++)
        usage_add(&total, &rows[i].u);
    sb_adds(out, n ? "\n  ],\n  \"total\": {" : "],\n  \"total\": {");
    usage_json(out, &total);
    sb_adds(out, "}\n}\n");
}

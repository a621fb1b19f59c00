/* seed.synthetic: fills an environment's database with deterministic
 * synthetic rows from a seed file — PostgreSQL through COPY FROM STDIN
 * (streamed), SQLite through prepared inserts in one transaction. Tables are
 * emptied and filled in foreign-key order inside one transaction, so a
 * failed seed leaves the previous data. A protected environment (prod) is
 * never seeded unless the run was forced.
 *
 * Generation is core/seed's business; this file only connects, checks that
 * the tables and columns exist, and loads. */
#include "core/provider.h"

#include "core/lib/crypto.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"
#include "core/seed/seed.h"

#include <errno.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define COPY_CHUNK (256 * 1024)

static const struct prov_prop schema[] = {
    {"file", PT_STR, PROP_REQUIRED, "seed file, relative to the project (seeds/shop.yaml)"},
    {"database", PT_STR, PROP_REQUIRED,
     "where to load: a sqlite:///path URL or a postgres:// URL (e.g. ${db.url})"},
    {"rows", PT_MAP, 0, "row count per table, overriding the seed file (e.g. ${config.seed_rows})"},
    {"seed", PT_INT, 0, "the seed value (default: a hash of the environment's name)"},
    {"tables", PT_STRLIST, 0, "only these tables (default: all in the seed file)"},
    {"triggers", PT_ANY, 0, "any value; a change seeds again (e.g. ${migrate.stdout})"},
    {NULL, 0, 0, NULL},
};

static const struct prov_output outputs[] = {
    {"rows", 0, "rows loaded per table (a map)"},
    {"total", 0, "rows loaded in all"},
    {"seed", 0, "the seed value used"},
    {"skipped", 0, "why nothing was loaded (a protected environment), or null"},
    {NULL, 0, NULL},
};

static char *seed_path(const struct prov_call *c, const struct val *props)
{
    return fs_abspath(c->project_dir, prov_str(props, "file", ""));
}

static int ss_check(const struct prov_call *c, struct err *e)
{
    const struct val *f = val_map_get(c->props, "file");
    if (f && f->kind == VAL_STR && (!*f->u.str.s))
        return err_set(e, PE_CONFIG, &f->pos, "'file' must name a seed file");
    const struct val *d = val_map_get(c->props, "database");
    if (d && d->kind == VAL_STR && !str_prefix(d->u.str.s, "sqlite://") &&
        !str_prefix(d->u.str.s, "postgres://") && !str_prefix(d->u.str.s, "postgresql://"))
        return err_set(e, PE_CONFIG, &d->pos,
                       "'database' must be a sqlite:///path or postgres:// URL, such as ${db.url}");
    const struct val *rows = val_map_get(c->props, "rows");
    if (rows && rows->kind == VAL_MAP)
        for (size_t i = 0; i < rows->u.map.n; i++) {
            const struct val *v = rows->u.map.e[i].v;
            if (v->kind != VAL_UNKNOWN && (v->kind != VAL_INT || v->u.i < 0))
                return err_set(e, PE_CONFIG, &v->pos,
                               "'rows.%s' must be a whole number of rows, 0 or more",
                               rows->u.map.e[i].key);
        }
    return 0;
}

static int ss_fingerprint(const struct prov_call *c, char **out, struct err *e)
{
    char *path = seed_path(c, c->props);
    char hex[65];
    int rc = crypto_sha256_file(path, hex);
    if (rc) {
        err_errno(e, -rc, "seed file %s", prov_str(c->props, "file", ""));
        free(path);
        return rc;
    }
    free(path);
    *out = xstrdup(hex);
    return 0;
}

/* ---- loading ---- */

struct loader {
    const struct seed_schema *s;
    const struct prov_call *c;
    struct val *counts; /* table -> rows */
    long long total;
    /* sqlite */
    sqlite3 *db;
    sqlite3_stmt *ins;
    size_t t;
    /* postgres */
    PGconn *pg;
    struct sb buf;
    long long rows;
};

static const char *url_path(const char *url)
{
    const char *p = url + strlen("sqlite://");
    return p; /* sqlite:///abs → /abs */
}

/* columns the database table has, or NULL when the table is missing */
static char **sqlite_columns(sqlite3 *db, const char *table, size_t *n)
{
    char *sql = sqlite3_mprintf("PRAGMA table_info(\"%w\")", table);
    sqlite3_stmt *st = NULL;
    char **cols = NULL;
    size_t cap = 0;
    *n = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            XGROW(cols, cap, *n + 1);
            cols[(*n)++] = xstrdup((const char *)sqlite3_column_text(st, 1));
        }
    }
    sqlite3_finalize(st);
    sqlite3_free(sql);
    return cols;
}

static void free_cols(char **cols, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(cols[i]);
    free(cols);
}

/* every seed column must exist in the database table */
static int check_columns(const struct seed_schema *s, size_t t, char **cols, size_t n,
                         struct err *e)
{
    const char *table = seed_table_name(s, t);
    if (!n) {
        err_set(e, PE_PROVIDER, NULL, "table '%s' does not exist in the database", table);
        err_hint(e, "create it first (a migration the seed resource depends on, e.g. "
                    "depends_on: [migrate]) or remove it from the seed file");
        return PE_PROVIDER;
    }
    for (size_t c = 0; c < seed_ncols(s, t); c++) {
        const char *col = seed_col_name(s, t, c);
        bool found = false;
        for (size_t k = 0; k < n && !found; k++)
            found = !strcmp(cols[k], col);
        if (found)
            continue;
        const char *near = str_closest(col, (const char *const *)cols, n);
        struct sb b;
        sb_init(&b);
        for (size_t k = 0; k < n; k++)
            sb_addf(&b, "%s%s", k ? ", " : "", cols[k]);
        if (near)
            err_set(e, PE_PROVIDER, NULL,
                    "seed column '%s.%s' does not exist in the database table (did you mean "
                    "'%s'?)",
                    table, col, near);
        else
            err_set(e, PE_PROVIDER, NULL, "seed column '%s.%s' does not exist in the database table",
                    table, col);
        err_hint(e, "table '%s' has: %s", table, b.buf);
        sb_release(&b);
        return PE_PROVIDER;
    }
    return 0;
}

static int sq_begin(void *ctx, const struct seed_schema *s, size_t t, long long rows,
                    struct err *e)
{
    struct loader *L = ctx;
    (void)rows;
    L->t = t;
    L->rows = 0;
    struct sb sql;
    sb_init(&sql);
    sb_addf(&sql, "INSERT INTO \"%s\" (", seed_table_name(s, t));
    for (size_t c = 0; c < seed_ncols(s, t); c++)
        sb_addf(&sql, "%s\"%s\"", c ? ", " : "", seed_col_name(s, t, c));
    sb_adds(&sql, ") VALUES (");
    for (size_t c = 0; c < seed_ncols(s, t); c++)
        sb_adds(&sql, c ? ", ?" : "?");
    sb_adds(&sql, ")");
    int rc = 0;
    if (sqlite3_prepare_v2(L->db, sql.buf, -1, &L->ins, NULL) != SQLITE_OK)
        rc = err_set(e, PE_PROVIDER, NULL, "cannot prepare inserts into '%s': %s",
                     seed_table_name(s, t), sqlite3_errmsg(L->db));
    sb_release(&sql);
    return rc;
}

static int sq_row(void *ctx, const struct seed_value *v, size_t n, struct err *e)
{
    struct loader *L = ctx;
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (v[i].null) {
            rc = sqlite3_bind_null(L->ins, (int)i + 1);
        } else {
            /* values are text of a given length, not NUL-terminated */
            char num[64];
            enum seed_type ty = seed_col_type(L->s, L->t, i);
            if ((ty == SEED_INT || ty == SEED_FLOAT) && v[i].len < sizeof num) {
                memcpy(num, v[i].text, v[i].len);
                num[v[i].len] = 0;
            } else {
                num[0] = 0;
            }
            switch (ty) {
            case SEED_INT:
                rc = sqlite3_bind_int64(L->ins, (int)i + 1, strtoll(num, NULL, 10));
                break;
            case SEED_BOOL:
                rc = sqlite3_bind_int(L->ins, (int)i + 1, v[i].len && v[i].text[0] == 't');
                break;
            case SEED_FLOAT:
                rc = sqlite3_bind_double(L->ins, (int)i + 1, strtod(num, NULL));
                break;
            default:
                rc = sqlite3_bind_text(L->ins, (int)i + 1, v[i].text, (int)v[i].len,
                                       SQLITE_STATIC);
            }
        }
        if (rc != SQLITE_OK)
            return err_set(e, PE_PROVIDER, NULL, "cannot bind '%s.%s': %s",
                           seed_table_name(L->s, L->t), seed_col_name(L->s, L->t, i),
                           sqlite3_errmsg(L->db));
    }
    if (sqlite3_step(L->ins) != SQLITE_DONE)
        return err_set(e, PE_PROVIDER, NULL, "inserting into '%s' failed: %s",
                       seed_table_name(L->s, L->t), sqlite3_errmsg(L->db));
    sqlite3_reset(L->ins);
    L->rows++;
    return 0;
}

static int sq_end(void *ctx, struct err *e)
{
    struct loader *L = ctx;
    (void)e;
    sqlite3_finalize(L->ins);
    L->ins = NULL;
    val_map_set(L->counts, seed_table_name(L->s, L->t), NULL, val_int(L->rows, NULL));
    L->total += L->rows;
    return 0;
}

static int sq_exec(sqlite3 *db, const char *sql, struct err *e)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int code = sqlite3_errcode(db) == SQLITE_BUSY ? PE_TRANSIENT : PE_PROVIDER;
        err_set(e, code, NULL, "SQLite: %s", msg ? msg : "error");
        sqlite3_free(msg);
        return code;
    }
    return 0;
}

static int load_sqlite(struct loader *L, const struct seed_opts *o, const char *url, struct err *e)
{
    const char *path = url_path(url);
    if (!fs_exists(path))
        return err_set(e, PE_PROVIDER, NULL, "SQLite database %s does not exist", path);
    if (sqlite3_open_v2(path, &L->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        int rc = err_set(e, PE_PROVIDER, NULL, "cannot open %s: %s", path,
                         L->db ? sqlite3_errmsg(L->db) : "out of memory");
        sqlite3_close(L->db);
        return rc;
    }
    sqlite3_busy_timeout(L->db, 10000);
    const struct seed_schema *s = L->s;
    int rc = 0;
    const size_t *ord = seed_order(s);
    size_t nt = seed_ntables(s);
    for (size_t k = 0; k < nt && !rc; k++) {
        size_t n;
        char **cols = sqlite_columns(L->db, seed_table_name(s, ord[k]), &n);
        rc = check_columns(s, ord[k], cols, n, e);
        free_cols(cols, n);
    }
    if (!rc)
        rc = sq_exec(L->db, "BEGIN IMMEDIATE", e);
    /* empty the tables, referring tables first, then fill in order */
    for (size_t k = nt; !rc && k-- > 0;) {
        char *sql = sqlite3_mprintf("DELETE FROM \"%w\"", seed_table_name(s, ord[k]));
        rc = sq_exec(L->db, sql, e);
        sqlite3_free(sql);
    }
    if (!rc) {
        struct seed_sink sink = {sq_begin, sq_row, sq_end, L};
        rc = seed_generate(s, o, &sink, e);
    }
    if (L->ins)
        sqlite3_finalize(L->ins);
    if (!rc)
        rc = sq_exec(L->db, "COMMIT", e);
    else
        sqlite3_exec(L->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(L->db);
    L->db = NULL;
    return rc;
}

static int pg_fail(PGconn *pg, PGresult *res, const char *what, struct err *e)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
    char *m = xstrdup(msg && *msg ? msg : "error");
    size_t l = strlen(m);
    while (l && (m[l - 1] == '\n' || m[l - 1] == ' '))
        m[--l] = 0;
    /* serialization failures, deadlocks and lock timeouts are worth retrying */
    bool transient = state && (!strncmp(state, "40", 2) || !strcmp(state, "55P03") ||
                                !strncmp(state, "08", 2) || !strcmp(state, "57P03"));
    int rc = err_set(e, transient ? PE_TRANSIENT : PE_PROVIDER, NULL, "%s: %s%s%s%s", what, m,
                     state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
    free(m);
    PQclear(res);
    return rc;
}

static int pg_exec(PGconn *pg, const char *sql, const char *what, struct err *e)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        return pg_fail(pg, r, what, e);
    PQclear(r);
    return 0;
}

static char **pg_columns(PGconn *pg, const char *table, size_t *n)
{
    const char *params[1] = {table};
    PGresult *r = PQexecParams(pg,
                               "SELECT column_name FROM information_schema.columns "
                               "WHERE table_schema = current_schema() AND table_name = $1 "
                               "ORDER BY ordinal_position",
                               1, NULL, params, NULL, NULL, 0);
    char **cols = NULL;
    *n = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        int rows = PQntuples(r);
        cols = xcalloc((size_t)rows + 1, sizeof *cols);
        for (int i = 0; i < rows; i++)
            cols[(*n)++] = xstrdup(PQgetvalue(r, i, 0));
    }
    PQclear(r);
    return cols;
}

static int pg_flush(struct loader *L, struct err *e)
{
    if (!L->buf.len)
        return 0;
    if (PQputCopyData(L->pg, L->buf.buf, (int)L->buf.len) != 1)
        return pg_fail(L->pg, NULL, "COPY failed", e);
    sb_reset(&L->buf);
    return 0;
}

static int pg_begin(void *ctx, const struct seed_schema *s, size_t t, long long rows,
                    struct err *e)
{
    struct loader *L = ctx;
    (void)rows;
    L->t = t;
    L->rows = 0;
    struct sb sql;
    sb_init(&sql);
    char *id = PQescapeIdentifier(L->pg, seed_table_name(s, t), strlen(seed_table_name(s, t)));
    sb_addf(&sql, "COPY %s (", id);
    PQfreemem(id);
    for (size_t c = 0; c < seed_ncols(s, t); c++) {
        const char *cn = seed_col_name(s, t, c);
        char *ci = PQescapeIdentifier(L->pg, cn, strlen(cn));
        sb_addf(&sql, "%s%s", c ? ", " : "", ci);
        PQfreemem(ci);
    }
    sb_adds(&sql, ") FROM STDIN");
    PGresult *r = PQexec(L->pg, sql.buf);
    sb_release(&sql);
    if (PQresultStatus(r) != PGRES_COPY_IN)
        return pg_fail(L->pg, r, "cannot start COPY", e);
    PQclear(r);
    return 0;
}

static int pg_row(void *ctx, const struct seed_value *v, size_t n, struct err *e)
{
    struct loader *L = ctx;
    seed_copy_row(&L->buf, v, n);
    L->rows++;
    return L->buf.len >= COPY_CHUNK ? pg_flush(L, e) : 0;
}

static int pg_end(void *ctx, struct err *e)
{
    struct loader *L = ctx;
    int rc = pg_flush(L, e);
    if (PQputCopyEnd(L->pg, rc ? "seed generation failed" : NULL) != 1 && !rc)
        rc = pg_fail(L->pg, NULL, "COPY failed", e);
    PGresult *r;
    while ((r = PQgetResult(L->pg))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !rc) {
            char *what = xasprintf("loading '%s' failed", seed_table_name(L->s, L->t));
            rc = pg_fail(L->pg, r, what, e);
            free(what);
            continue;
        }
        PQclear(r);
    }
    if (!rc) {
        val_map_set(L->counts, seed_table_name(L->s, L->t), NULL, val_int(L->rows, NULL));
        L->total += L->rows;
    }
    return rc;
}

static int load_postgres(struct loader *L, const struct seed_opts *o, const char *url,
                         struct err *e)
{
    /* a URL carries its own password; libpq parses it */
    char *conn = xasprintf("%s%sconnect_timeout=10", url, strchr(url, '?') ? "&" : "?");
    L->pg = PQconnectdb(conn);
    free(conn);
    if (PQstatus(L->pg) != CONNECTION_OK) {
        const char *m = PQerrorMessage(L->pg);
        bool refused = strstr(m, "refused") || strstr(m, "timeout") || strstr(m, "starting up") ||
                       strstr(m, "too many");
        err_set(e, refused ? PE_TRANSIENT : PE_PROVIDER, NULL, "cannot connect to the database: %s",
                refused ? "the server is not accepting connections" : "login or database rejected");
        PQfinish(L->pg);
        L->pg = NULL;
        return e->code;
    }
    const struct seed_schema *s = L->s;
    const size_t *ord = seed_order(s);
    size_t nt = seed_ntables(s);
    int rc = 0;
    for (size_t k = 0; k < nt && !rc; k++) {
        size_t n;
        char **cols = pg_columns(L->pg, seed_table_name(s, ord[k]), &n);
        rc = check_columns(s, ord[k], cols, n, e);
        free_cols(cols, n);
    }
    if (!rc)
        rc = pg_exec(L->pg, "BEGIN", "cannot start a transaction", e);
    if (!rc) {
        /* one TRUNCATE for all seeded tables: references among them are fine */
        struct sb sql;
        sb_init(&sql);
        sb_adds(&sql, "TRUNCATE ");
        for (size_t k = 0; k < nt; k++) {
            const char *tn = seed_table_name(s, ord[k]);
            char *id = PQescapeIdentifier(L->pg, tn, strlen(tn));
            sb_addf(&sql, "%s%s", k ? ", " : "", id);
            PQfreemem(id);
        }
        rc = pg_exec(L->pg, sql.buf, "cannot empty the seeded tables", e);
        if (rc)
            err_hint(e, "a table outside the seed file refers to a seeded table; add it to the "
                        "seed file or drop the reference");
        sb_release(&sql);
    }
    if (!rc) {
        sb_init_max(&L->buf, (size_t)COPY_CHUNK * 4);
        struct seed_sink sink = {pg_begin, pg_row, pg_end, L};
        rc = seed_generate(s, o, &sink, e);
        sb_release(&L->buf);
    }
    if (!rc)
        rc = pg_exec(L->pg, "COMMIT", "cannot commit the seed", e);
    else
        PQclear(PQexec(L->pg, "ROLLBACK"));
    PQfinish(L->pg);
    L->pg = NULL;
    return rc;
}

static int ss_apply(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    uint64_t seed = c->props && val_map_get(c->props, "seed")
                        ? (uint64_t)prov_int(c->props, "seed", 0)
                        : seed_of_name(c->env);
    r->outputs = val_map(NULL);
    r->id = xasprintf("%s/%s", c->env, c->resource);
    if (c->host && c->host->env_protected && !c->host->force) {
        const char *why = "the environment is protected: synthetic data is never loaded into a "
                          "protected stage unless `prenv seed ENV --force`";
        val_map_set(r->outputs, "rows", NULL, val_map(NULL));
        val_map_set(r->outputs, "total", NULL, val_int(0, NULL));
        val_map_set(r->outputs, "seed", NULL, val_int((long long)seed, NULL));
        val_map_set(r->outputs, "skipped", NULL, val_str(why, NULL));
        r->note = xstrdup("not seeded: the environment is protected");
        prov_log(c, "not seeding: %s", why);
        return 0;
    }
    char *path = seed_path(c, c->props);
    struct seed_schema *s = NULL;
    int rc = seed_schema_load(&s, path, prov_str(c->props, "file", path), e);
    free(path);
    if (rc)
        return rc;
    const struct val *tables = val_map_get(c->props, "tables");
    const char **only = NULL;
    if (tables && tables->kind == VAL_LIST) {
        only = xcalloc(tables->u.list.n + 1, sizeof *only);
        for (size_t i = 0; i < tables->u.list.n; i++)
            only[i] = tables->u.list.v[i]->kind == VAL_STR ? tables->u.list.v[i]->u.str.s : "";
    }
    struct seed_opts o = {.seed = seed,
                          .rows = val_map_get(c->props, "rows"),
                          .only = only,
                          .cancel = c->host ? &c->host->cancel : NULL};
    struct loader L = {.s = s, .c = c, .counts = val_map(NULL)};
    const char *url = prov_str(c->props, "database", "");
    prov_log(c, "seeding with seed %llu", (unsigned long long)seed);
    if (str_prefix(url, "sqlite://"))
        rc = load_sqlite(&L, &o, url, e);
    else
        rc = load_postgres(&L, &o, url, e);
    if (!rc) {
        prov_log(c, "loaded %lld rows", L.total);
        val_map_set(r->outputs, "rows", NULL, L.counts);
        L.counts = NULL;
        val_map_set(r->outputs, "total", NULL, val_int(L.total, NULL));
        val_map_set(r->outputs, "seed", NULL, val_int((long long)seed, NULL));
        val_map_set(r->outputs, "skipped", NULL, val_null(NULL));
        r->note = xasprintf("%lld rows", L.total);
    } else {
        prov_log(c, "seeding failed: %s", e->msg ? e->msg : "error");
    }
    val_free(L.counts);
    free(only);
    seed_schema_free(s);
    return rc;
}

static int ss_read(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    (void)e;
    /* what was loaded cannot be told from what users added since; trust the
     * record. A database created anew makes the engine seed again (its
     * dependents are rebuilt). */
    r->exists = c->old_outputs != NULL;
    if (r->exists) {
        r->outputs = val_clone(c->old_outputs);
        r->id = xasprintf("%s/%s", c->env, c->resource);
    }
    return 0;
}

static int ss_remove(const struct prov_call *c, struct err *e)
{
    (void)c;
    (void)e;
    /* the rows go with the database; emptying tables on removal of the seed
     * alone would destroy data users added */
    return 0;
}

const struct provider prov_seed_synthetic = {
    .type = "seed.synthetic",
    .summary = "deterministic synthetic rows from a seed file, loaded with COPY (PostgreSQL) "
               "or prepared inserts (SQLite)",
    .props = schema,
    .outputs = outputs,
    .check = ss_check,
    .create = ss_apply,
    .read = ss_read,
    .update = ss_apply,
    .remove = ss_remove,
    .fingerprint = ss_fingerprint,
};

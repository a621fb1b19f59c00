/* queue: durable jobs, delivery de-duplication and per-PR ordering on SQLite. */
#include "hooks/queue.h"

#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define STMT_CACHE 48       /* prepared statements kept per queue */
#define CHECKPOINT_PAGES 1000 /* SQLite's default wal_autocheckpoint */

struct queue {
    sqlite3 *db;
    unsigned inserts;
    bool relaxed; /* commits do not wait for the disk (queue_relaxed) */
    /* every statement is prepared once and reset after each use; the key is
     * the SQL text's address, checked against the text */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
    size_t ncached;
};

static const char *const state_names[] = {"queued", "running", "done", "failed",
                                          "parked", "superseded", "canceled"};

const char *job_state_name(enum job_state s)
{
    return (unsigned)s < 7 ? state_names[s] : "?";
}

static const char *const kind_names[JOB_KINDS] = {"up",   "destroy", "sleep",  "wake",
                                                  "warn", "extend",  "refresh"};

const char *job_kind_name(enum job_kind k)
{
    return (unsigned)k < JOB_KINDS ? kind_names[k] : "?";
}

static enum job_kind kind_of(const char *s)
{
    for (int i = 0; i < JOB_KINDS; i++)
        if (s && !strcmp(s, kind_names[i]))
            return (enum job_kind)i;
    return JOB_UP;
}

static enum job_state state_of(const char *s)
{
    for (int i = 0; i < 7; i++)
        if (s && !strcmp(s, state_names[i]))
            return (enum job_state)i;
    return JOB_FAILED;
}

static int dberr(struct queue *q, const char *what, struct err *e)
{
    int code = sqlite3_errcode(q->db);
    return err_set(e, code == SQLITE_BUSY || code == SQLITE_LOCKED ? PE_TRANSIENT : PE_STATE, NULL,
                   "job queue: %s: %s", what, sqlite3_errmsg(q->db));
}

/* cached: the prepared statement for sql (one statement), or NULL */
static sqlite3_stmt *cached(struct queue *q, const char *sql)
{
    for (size_t i = 0; i < q->ncached; i++)
        if (q->cache[i].sql == sql && !strcmp(sqlite3_sql(q->cache[i].st), sql))
            return q->cache[i].st;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        return NULL;
    if (q->ncached < STMT_CACHE) {
        q->cache[q->ncached].sql = sql;
        q->cache[q->ncached++].st = st;
    }
    return st;
}

/* done: a statement's use is over: reset a cached one (and drop its
 * bindings, which borrow the caller's strings), finalize any other */
static void done(struct queue *q, sqlite3_stmt *st)
{
    for (size_t i = 0; i < q->ncached; i++)
        if (q->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

static int exec(struct queue *q, const char *sql, struct err *e)
{
    if (strchr(sql, ';')) { /* several statements: the schema, error paths */
        if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK)
            return dberr(q, sql, e);
        return 0;
    }
    sqlite3_stmt *st = cached(q, sql);
    if (!st)
        return dberr(q, sql, e);
    int r = sqlite3_step(st);
    int rc = r == SQLITE_DONE || r == SQLITE_ROW ? 0 : dberr(q, sql, e);
    done(q, st);
    return rc;
}

/* the WAL is checkpointed as SQLite would by itself, except after a relaxed
 * commit: a checkpoint waits for the disk */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct queue *q = arg;
    if (!q->relaxed && pages >= CHECKPOINT_PAGES)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

int queue_relaxed(struct queue *q, bool on, struct err *e)
{
    if (q->relaxed == on)
        return 0;
    int rc = exec(q, on ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", e);
    if (!rc)
        q->relaxed = on;
    return rc;
}

static const char schema_sql[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS deliveries (hook TEXT NOT NULL, id TEXT NOT NULL,"
    "  at INTEGER NOT NULL, PRIMARY KEY (hook, id));"
    "CREATE INDEX IF NOT EXISTS deliveries_at ON deliveries(at);"
    "CREATE TABLE IF NOT EXISTS prs (repo TEXT NOT NULL, number INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL, state TEXT, PRIMARY KEY (repo, number));"
    "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  env TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL, sha TEXT, meta TEXT,"
    "  delivery TEXT, attempts INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL, not_before INTEGER NOT NULL DEFAULT 0, error TEXT,"
    "  cancel INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS jobs_env ON jobs(env, state);"
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);";

int queue_open(struct queue **out, const char *path, struct err *e)
{
    struct queue *q = xcalloc(1, sizeof *q);
    *out = NULL;
    if (sqlite3_open_v2(path, &q->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        int rc = err_set(e, PE_STATE, NULL, "cannot open the job queue %s: %s", path,
                         q->db ? sqlite3_errmsg(q->db) : "out of memory");
        sqlite3_close(q->db);
        free(q);
        return rc;
    }
    sqlite3_busy_timeout(q->db, 10000);
    int rc = exec(q, schema_sql, e);
    if (rc) {
        queue_close(q);
        return rc;
    }
    sqlite3_wal_hook(q->db, wal_hook, q);
    *out = q;
    return 0;
}

void queue_close(struct queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->ncached; i++)
        sqlite3_finalize(q->cache[i].st);
    sqlite3_close(q->db);
    free(q);
}

static sqlite3_stmt *prep(struct queue *q, const char *sql, struct err *e)
{
    sqlite3_stmt *st = cached(q, sql);
    if (!st)
        dberr(q, "prepare", e);
    return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC); /* until done() */
    else
        sqlite3_bind_null(st, i);
}

/* run a statement to completion */
static int step_done(struct queue *q, sqlite3_stmt *st, const char *what, struct err *e)
{
    int r = sqlite3_step(st);
    int rc = r == SQLITE_DONE || r == SQLITE_ROW ? 0 : dberr(q, what, e);
    done(q, st);
    return rc;
}

int queue_seen(struct queue *q, const char *hook_id, const char *delivery_id, long long keep_ms,
               bool *dup, struct err *e)
{
    long long now = tm_now_ms();
    sqlite3_stmt *st = prep(q, "INSERT OR IGNORE INTO deliveries (hook, id, at) VALUES (?, ?, ?)", e);
    if (!st)
        return e->code;
    bind_text(st, 1, hook_id ? hook_id : "");
    bind_text(st, 2, delivery_id);
    sqlite3_bind_int64(st, 3, now);
    int rc = step_done(q, st, "recording a delivery", e);
    if (rc)
        return rc;
    *dup = sqlite3_changes(q->db) == 0;
    if (++q->inserts % 512 == 0) {
        st = prep(q, "DELETE FROM deliveries WHERE at < ?", e);
        if (!st)
            return e->code;
        sqlite3_bind_int64(st, 1, now - keep_ms);
        rc = step_done(q, st, "pruning deliveries", e);
    }
    return rc;
}

int queue_pr_newer(struct queue *q, const char *repo, long long number, long long updated_ms,
                   const char *state, bool *newer, struct err *e)
{
    /* one statement: the row is written when there is none or it is not
     * newer than this event, and whether it was says which */
    sqlite3_stmt *st = prep(q,
                            "INSERT INTO prs (repo, number, updated, state) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT (repo, number) DO UPDATE SET updated = excluded.updated, "
                            "state = excluded.state WHERE excluded.updated >= prs.updated",
                            e);
    if (!st)
        return e->code;
    bind_text(st, 1, repo);
    sqlite3_bind_int64(st, 2, number);
    sqlite3_bind_int64(st, 3, updated_ms);
    bind_text(st, 4, state);
    int rc = step_done(q, st, "recording a pull request", e);
    *newer = !rc && sqlite3_changes(q->db) > 0;
    return rc;
}

int queue_push(struct queue *q, const char *env, enum job_kind kind, const char *sha,
               const char *meta, const char *delivery, long long *id, bool *cancel_running,
               struct err *e)
{
    long long now = tm_now_ms();
    *cancel_running = false;
    int rc = exec(q, "SAVEPOINT q", e);
    if (rc)
        return rc;
    /* up and destroy replace everything waiting; the reaper's sleep, wake
     * and warn replace only their own kind of waiting job; a refresh only a
     * waiting refresh; an extend replaces nothing */
    bool intent = kind == JOB_UP || kind == JOB_DESTROY;
    if (kind != JOB_EXTEND) {
        sqlite3_stmt *st = prep(q,
                                intent ? "UPDATE jobs SET state = 'superseded', updated = ? "
                                         "WHERE env = ? AND state = 'queued'"
                                : kind == JOB_REFRESH
                                    ? "UPDATE jobs SET state = 'superseded', updated = ? "
                                      "WHERE env = ? AND state = 'queued' AND kind = 'refresh'"
                                    : "UPDATE jobs SET state = 'superseded', updated = ? "
                                      "WHERE env = ? AND state = 'queued' "
                                      "AND kind IN ('sleep', 'wake', 'warn')",
                                e);
        if (st) {
            sqlite3_bind_int64(st, 1, now);
            bind_text(st, 2, env);
            rc = step_done(q, st, "superseding jobs", e);
        } else
            rc = e->code;
    }
    sqlite3_stmt *st;
    if (!rc && kind == JOB_DESTROY) {
        st = prep(q,
                  "SELECT 1 FROM jobs WHERE env = ? AND state = 'running' AND kind != 'destroy'",
                  e);
        if (st) {
            bind_text(st, 1, env);
            *cancel_running = sqlite3_step(st) == SQLITE_ROW;
            done(q, st);
        } else
            rc = e->code;
    }
    if (!rc) {
        st = prep(q,
                  "INSERT INTO jobs (env, kind, state, sha, meta, delivery, created, updated) "
                  "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                  e);
        if (st) {
            bind_text(st, 1, env);
            bind_text(st, 2, job_kind_name(kind));
            bind_text(st, 3, sha);
            bind_text(st, 4, meta);
            bind_text(st, 5, delivery);
            sqlite3_bind_int64(st, 6, now);
            sqlite3_bind_int64(st, 7, now);
            rc = step_done(q, st, "queueing a job", e);
            if (!rc && id)
                *id = sqlite3_last_insert_rowid(q->db);
        } else
            rc = e->code;
    }
    if (rc) {
        struct err ig = {0};
        exec(q, "ROLLBACK TO q; RELEASE q", &ig);
        err_release(&ig);
        return rc;
    }
    return exec(q, "RELEASE q", e);
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static void read_job(sqlite3_stmt *st, struct job *j)
{
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(st, 0);
    j->env = col_text(st, 1);
    const char *k = (const char *)sqlite3_column_text(st, 2);
    j->kind = kind_of(k);
    j->state = state_of((const char *)sqlite3_column_text(st, 3));
    j->sha = col_text(st, 4);
    j->meta = col_text(st, 5);
    j->delivery = col_text(st, 6);
    j->attempts = sqlite3_column_int(st, 7);
    j->created_ms = sqlite3_column_int64(st, 8);
    j->updated_ms = sqlite3_column_int64(st, 9);
    j->not_before_ms = sqlite3_column_int64(st, 10);
    j->error = col_text(st, 11);
}

#define JOB_COLS "id, env, kind, state, sha, meta, delivery, attempts, created, updated, not_before, error"

static int claim(struct queue *q, int envs_running, struct job *out, bool *got, struct err *e)
{
    long long now = tm_now_ms();
    *got = false;
    int rc = exec(q, "SAVEPOINT q", e);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    if (envs_running > 0) {
        st = prep(q, "SELECT COUNT(*) FROM jobs WHERE state = 'running'", e);
        if (!st)
            goto fail;
        int running = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
        done(q, st);
        if (running >= envs_running)
            return exec(q, "RELEASE q", e);
    }
    st = prep(q,
              "SELECT " JOB_COLS " FROM jobs j WHERE state = 'queued' AND not_before <= ? "
              "AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.env = j.env AND r.state = 'running') "
              "ORDER BY id LIMIT 1",
              e);
    if (!st)
        goto fail;
    sqlite3_bind_int64(st, 1, now);
    if (sqlite3_step(st) == SQLITE_ROW) {
        read_job(st, out);
        *got = true;
    }
    done(q, st);
    if (*got) {
        st = prep(q, "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated = ? "
                     "WHERE id = ?",
                  e);
        if (!st)
            goto fail;
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int64(st, 2, out->id);
        if (step_done(q, st, "claiming a job", e))
            goto fail;
        out->state = JOB_RUNNING;
        out->attempts++;
    }
    return exec(q, "RELEASE q", e);
fail:
    if (*got)
        job_release(out);
    *got = false;
    {
        struct err ig = {0};
        exec(q, "ROLLBACK TO q; RELEASE q", &ig);
        err_release(&ig);
    }
    return e->code ? e->code : PE_STATE;
}

int queue_claim(struct queue *q, int envs_running, struct job *out, bool *got, struct err *e)
{
    /* outside a batch, the claim does not wait for the disk: lost, it
     * changes nothing (queue_recover requeues running jobs) */
    bool relax = !q->relaxed && sqlite3_get_autocommit(q->db);
    if (relax && queue_relaxed(q, true, e))
        return e->code;
    int rc = claim(q, envs_running, out, got, e);
    if (relax) {
        struct err ig = {0};
        if (queue_relaxed(q, false, rc ? &ig : e) && !rc) {
            if (*got)
                job_release(out);
            *got = false;
            rc = e->code;
        }
        err_release(&ig);
    }
    return rc;
}

int queue_finish(struct queue *q, long long id, bool ok, bool transient, const char *error,
                 int max_attempts, struct err *e)
{
    long long now = tm_now_ms();
    sqlite3_stmt *st = prep(q, "SELECT attempts, cancel FROM jobs WHERE id = ?", e);
    if (!st)
        return e->code;
    sqlite3_bind_int64(st, 1, id);
    int attempts = 0;
    bool canceled = false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        attempts = sqlite3_column_int(st, 0);
        canceled = sqlite3_column_int(st, 1) != 0;
    }
    done(q, st);
    const char *state;
    long long not_before = 0;
    if (canceled)
        state = "canceled";
    else if (ok)
        state = "done";
    else if (transient && attempts < max_attempts) {
        state = "queued";
        long long delay = 5000LL << (attempts > 7 ? 7 : attempts - 1 < 0 ? 0 : attempts - 1);
        if (delay > 600000)
            delay = 600000;
        not_before = now + delay;
    } else if (transient)
        state = "parked";
    else
        state = "failed";
    st = prep(q,
              "UPDATE jobs SET state = ?, updated = ?, not_before = ?, "
              "error = CASE WHEN cancel THEN error ELSE ? END WHERE id = ?",
              e);
    if (!st)
        return e->code;
    bind_text(st, 1, state);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, not_before);
    bind_text(st, 4, ok ? NULL : error);
    sqlite3_bind_int64(st, 5, id);
    return step_done(q, st, "finishing a job", e);
}

int queue_cancel(struct queue *q, long long id, const char *why, struct err *e)
{
    /* it stays running until its worker finishes: nothing else of the env may
     * start before that */
    sqlite3_stmt *st = prep(q, "UPDATE jobs SET cancel = 1, updated = ?, error = ? "
                               "WHERE id = ? AND state = 'running'",
                            e);
    if (!st)
        return e->code;
    sqlite3_bind_int64(st, 1, tm_now_ms());
    bind_text(st, 2, why);
    sqlite3_bind_int64(st, 3, id);
    return step_done(q, st, "canceling a job", e);
}

int queue_recover(struct queue *q, int *n, struct err *e)
{
    int rc = exec(q, "UPDATE jobs SET state = 'queued', not_before = 0 WHERE state = 'running'", e);
    *n = rc ? 0 : sqlite3_changes(q->db);
    return rc;
}

void job_release(struct job *j)
{
    free(j->env);
    free(j->sha);
    free(j->meta);
    free(j->delivery);
    free(j->error);
    memset(j, 0, sizeof *j);
}

static void json_time(struct sb *b, long long ms)
{
    if (!ms) {
        sb_adds(b, "null");
        return;
    }
    sb_addc(b, '"');
    tm_rfc3339(b, ms);
    sb_addc(b, '"');
}

static void json_str_or_null(struct sb *b, const char *s)
{
    if (s)
        sb_add_json_str(b, s);
    else
        sb_adds(b, "null");
}

int queue_list_json(struct queue *q, int limit, char **out, struct err *e)
{
    sqlite3_stmt *st = prep(q, "SELECT " JOB_COLS " FROM jobs ORDER BY id DESC LIMIT ?", e);
    if (!st)
        return e->code;
    sqlite3_bind_int(st, 1, limit > 0 ? limit : 100);
    struct sb b;
    sb_init(&b);
    sb_addc(&b, '[');
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct job j;
        read_job(st, &j);
        sb_adds(&b, n++ ? ",\n  " : "\n  ");
        sb_addf(&b, "{\"id\": %lld, \"env\": ", j.id);
        sb_add_json_str(&b, j.env ? j.env : "");
        sb_addf(&b, ", \"kind\": \"%s\", \"state\": \"%s\", \"sha\": ", job_kind_name(j.kind),
                job_state_name(j.state));
        json_str_or_null(&b, j.sha);
        sb_adds(&b, ", \"delivery\": ");
        json_str_or_null(&b, j.delivery);
        sb_addf(&b, ", \"attempts\": %d, \"created\": ", j.attempts);
        json_time(&b, j.created_ms);
        sb_adds(&b, ", \"updated\": ");
        json_time(&b, j.updated_ms);
        sb_adds(&b, ", \"not_before\": ");
        json_time(&b, j.not_before_ms);
        sb_adds(&b, ", \"error\": ");
        json_str_or_null(&b, j.error);
        sb_adds(&b, ", \"meta\": ");
        sb_adds(&b, j.meta && *j.meta ? j.meta : "null");
        sb_addc(&b, '}');
        job_release(&j);
    }
    done(q, st);
    sb_adds(&b, n ? "\n]" : "]");
    *out = sb_steal(&b);
    return 0;
}

int queue_counts(struct queue *q, long long counts[7], struct err *e)
{
    memset(counts, 0, 7 * sizeof *counts);
    sqlite3_stmt *st = prep(q, "SELECT state, COUNT(*) FROM jobs GROUP BY state", e);
    if (!st)
        return e->code;
    while (sqlite3_step(st) == SQLITE_ROW)
        counts[state_of((const char *)sqlite3_column_text(st, 0))] = sqlite3_column_int64(st, 1);
    done(q, st);
    return 0;
}

int queue_next_due(struct queue *q, long long *ms, struct err *e)
{
    sqlite3_stmt *st = prep(q, "SELECT MIN(not_before) FROM jobs WHERE state = 'queued'", e);
    if (!st)
        return e->code;
    *ms = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    done(q, st);
    return 0;
}

int queue_batch_begin(struct queue *q, struct err *e)
{
    return exec(q, "BEGIN IMMEDIATE", e);
}

int queue_batch_commit(struct queue *q, struct err *e)
{
    return exec(q, "COMMIT", e);
}

void queue_batch_rollback(struct queue *q)
{
    struct err e = {0};
    exec(q, "ROLLBACK", &e);
    err_release(&e);
}

int queue_active(struct queue *q, const char *env, bool *active, struct err *e)
{
    sqlite3_stmt *st =
        prep(q, "SELECT 1 FROM jobs WHERE env = ? AND state IN ('queued', 'running') LIMIT 1", e);
    if (!st)
        return e->code;
    bind_text(st, 1, env);
    *active = sqlite3_step(st) == SQLITE_ROW;
    done(q, st);
    return 0;
}

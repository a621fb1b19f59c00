/* sqlite.database: one SQLite database file per environment, in its work
 * directory. Outputs the path and a sqlite:// URL. Schema and data are left to
 * migrations (exec.command) and seeders. */
#include "core/provider.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct prov_prop schema[] = {
    {"file", PT_STR, PROP_REPLACE, "file name in the env's work directory (default <resource>.db)"},
    {"journal_mode", PT_STR, 0, "wal (default) or delete"},
    {NULL, 0, 0, NULL},
};

static const struct prov_output outputs[] = {
    {"path", OUT_STABLE, "absolute path of the database file"},
    {"url", OUT_STABLE, "sqlite:////absolute/path"},
    {NULL, 0, NULL},
};

static char *db_path(const struct prov_call *c, const struct val *props)
{
    const char *f = props ? prov_str(props, "file", NULL) : NULL;
    char *name = f ? xstrdup(f) : xasprintf("%s.db", c->resource);
    char *p = fs_abspath(c->work_dir, name);
    free(name);
    return p;
}

static int sq_check(const struct prov_call *c, struct err *e)
{
    const struct val *f = val_map_get(c->props, "file");
    if (f && f->kind == VAL_STR) {
        if (!*f->u.str.s || f->u.str.s[0] == '/' || strstr(f->u.str.s, ".."))
            return err_set(e, PE_CONFIG, &f->pos,
                           "'file' must be a relative name inside the work directory");
    }
    const struct val *j = val_map_get(c->props, "journal_mode");
    if (j && j->kind == VAL_STR && strcmp(j->u.str.s, "wal") && strcmp(j->u.str.s, "delete"))
        return err_set(e, PE_CONFIG, &j->pos, "'journal_mode' must be wal or delete, not '%s'",
                       j->u.str.s);
    return 0;
}

static void set_outputs(struct prov_result *r, const char *path)
{
    r->id = xstrdup(path);
    r->outputs = val_map(NULL);
    val_map_set(r->outputs, "path", NULL, val_str(path, NULL));
    val_map_set(r->outputs, "url", NULL, val_str_own(xasprintf("sqlite:///%s", path), NULL));
}

static int sq_open(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    char *path = db_path(c, c->props);
    char *dir = fs_dirname(path);
    int rc = fs_mkdir_p(dir, 0755, e);
    free(dir);
    if (rc) {
        free(path);
        return rc;
    }
    sqlite3 *db = NULL;
    int src = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (src == SQLITE_OK) {
        const char *jm = prov_str(c->props, "journal_mode", "wal");
        char *sql = xasprintf("PRAGMA journal_mode=%s; PRAGMA user_version;",
                              strcmp(jm, "delete") ? "WAL" : "DELETE");
        src = sqlite3_exec(db, sql, NULL, NULL, NULL);
        free(sql);
    }
    if (src != SQLITE_OK) {
        rc = err_set(e, src == SQLITE_BUSY ? PE_TRANSIENT : PE_PROVIDER, NULL,
                     "cannot create SQLite database %s: %s", path,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
    } else {
        set_outputs(r, path);
    }
    sqlite3_close(db);
    free(path);
    return rc;
}

static int sq_read(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    (void)e;
    char *path = db_path(c, c->old_props);
    r->exists = fs_exists(path);
    if (r->exists)
        set_outputs(r, path);
    free(path);
    return 0;
}

static int sq_remove(const struct prov_call *c, struct err *e)
{
    char *path = db_path(c, c->old_props ? c->old_props : c->props);
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    int rc = 0;
    for (size_t i = 0; i < 4 && !rc; i++) {
        char *p = xasprintf("%s%s", path, sfx[i]);
        if (unlink(p) < 0 && errno != ENOENT)
            rc = err_errno(e, errno, "cannot remove %s", p);
        free(p);
    }
    free(path);
    return rc;
}

const struct provider prov_sqlite_database = {
    .type = "sqlite.database",
    .summary = "one SQLite database file per environment",
    .props = schema,
    .outputs = outputs,
    .check = sq_check,
    .create = sq_open,
    .read = sq_read,
    .update = sq_open,
    .remove = sq_remove,
};

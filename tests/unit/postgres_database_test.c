/* Tests for the postgres.database provider (core/providers/postgres_database.c)
 * against a real PostgreSQL server: the admin URL comes from
 * PRENV_TEST_PG_URL, which scripts/run-tests.sh sets after starting a
 * throwaway cluster with scripts/pg-test-server.sh. Without it these tests
 * skip, unless PRENV_TEST_PG_REQUIRED=1, when they fail.
 *
 * Each test runs in its own process and names everything it creates with a
 * token unique to that process ("pgt<pid>z", in the resource or env name and
 * so in every database name or comment); .fini drops every database and
 * role whose name or comment holds the token, even when the test failed. */
#include "core/provider.h"

#include "core/lib/err.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/val.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct {
    char root[64];
    char *work, *logs, *run;
    char tok[32]; /* "pgt<pid>z" */
    struct prov_host host;
} fx;

static const struct provider *pg(void)
{
    const struct provider *p = prov_find("postgres.database");
    cr_assert_not_null(p);
    return p;
}

/* admin_url: the test server's admin URL; skips (or fails when required) without one */
static const char *admin_url(void)
{
    const char *u = getenv("PRENV_TEST_PG_URL");
    if (u && *u)
        return u;
    const char *req = getenv("PRENV_TEST_PG_REQUIRED");
    if (req && !strcmp(req, "1"))
        cr_assert_fail("PRENV_TEST_PG_URL is not set but PRENV_TEST_PG_REQUIRED=1: "
                       "scripts/run-tests.sh starts the server with scripts/pg-test-server.sh");
    cr_skip_test("no PostgreSQL server: run eval \"$(scripts/pg-test-server.sh start)\" then the "
                 "tests, then scripts/pg-test-server.sh stop (scripts/run-tests.sh does it all)");
    return NULL;
}

static PGconn *connect_url(const char *url)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_not_null(c);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "cannot connect: %s", PQerrorMessage(c));
    return c;
}

/* connect_to: url with its database replaced by db */
static PGconn *connect_to(const char *url, const char *db)
{
    const char *kw[] = {"dbname", "dbname", NULL};
    const char *vals[] = {url, db, NULL};
    PGconn *c = PQconnectdbParams(kw, vals, 1);
    cr_assert_not_null(c);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "cannot connect to %s: %s", db, PQerrorMessage(c));
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(r));
    PQclear(r);
}

/* value: the first column of the first row of sql with one parameter (may be
 * NULL); NULL when there is no row or the value is NULL. Caller frees. */
static char *value(PGconn *c, const char *sql, const char *param)
{
    const char *params[] = {param};
    PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, param ? params : NULL, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    char *out = PQntuples(r) && !PQgetisnull(r, 0, 0) ? xstrdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return out;
}

static bool db_exists(const char *name)
{
    PGconn *c = connect_url(admin_url());
    char *v = value(c, "SELECT 1 FROM pg_database WHERE datname = $1", name);
    PQfinish(c);
    free(v);
    return v != NULL;
}

static bool role_exists(const char *name)
{
    PGconn *c = connect_url(admin_url());
    char *v = value(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", name);
    PQfinish(c);
    free(v);
    return v != NULL;
}

static char *db_comment(const char *name)
{
    PGconn *c = connect_url(admin_url());
    char *v = value(c,
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = $1",
                    name);
    PQfinish(c);
    return v;
}

/* quote_ident: name quoted for SQL by libpq; caller frees */
static char *quote_ident(const char *name)
{
    PGconn *c = connect_url(admin_url());
    char *q = PQescapeIdentifier(c, name, strlen(name));
    char *out = xstrdup(q);
    PQfreemem(q);
    PQfinish(c);
    return out;
}

static void admin_sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void admin_sql(const char *fmt, ...)
{
    struct sb b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    PGconn *c = connect_url(admin_url());
    exec_ok(c, b.buf);
    PQfinish(c);
    sb_release(&b);
}

static void setup(void)
{
    /* a skip ends the test without its fini: decide before making anything */
    admin_url();
    snprintf(fx.root, sizeof fx.root, "/tmp/prenv-test-pgdb-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.root));
    fx.work = xasprintf("%s/work", fx.root);
    fx.logs = xasprintf("%s/logs", fx.root);
    fx.run = xasprintf("%s/run", fx.root);
    struct err e = {0};
    cr_assert_eq(fs_mkdir_p(fx.work, 0755, &e), 0);
    cr_assert_eq(fs_mkdir_p(fx.logs, 0755, &e), 0);
    cr_assert_eq(fs_mkdir_p(fx.run, 0755, &e), 0);
    snprintf(fx.tok, sizeof fx.tok, "pgt%ldz", (long)getpid());
    memset(&fx.host, 0, sizeof fx.host);
    fx.host.state_dir = fx.root;
    fx.host.port_lo = 1;
    fx.host.port_hi = 0;
}

/* drop every database and role the test made: their names or comments hold the token */
static void drop_leftovers(void)
{
    const char *url = getenv("PRENV_TEST_PG_URL");
    if (!url || !*url)
        return;
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) == CONNECTION_OK) {
        char *like = xasprintf("%%%s%%", fx.tok);
        static const char *const lists[] = {
            "SELECT quote_ident(datname) FROM pg_database WHERE datname LIKE $1 OR "
            "coalesce(shobj_description(oid, 'pg_database'), '') LIKE $1",
            "SELECT quote_ident(rolname) FROM pg_roles WHERE rolname LIKE $1 OR "
            "coalesce(shobj_description(oid, 'pg_authid'), '') LIKE $1",
        };
        for (int k = 0; k < 2; k++) {
            const char *params[] = {like};
            PGresult *r = PQexecParams(c, lists[k], 1, NULL, params, NULL, NULL, 0);
            for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
                char *sql = k == 0 ? xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)",
                                               PQgetvalue(r, i, 0))
                                   : xasprintf("DROP ROLE IF EXISTS %s", PQgetvalue(r, i, 0));
                PQclear(PQexec(c, sql));
                free(sql);
            }
            PQclear(r);
        }
        free(like);
    }
    PQfinish(c);
}

static void teardown(void)
{
    drop_leftovers();
    if (fx.root[0]) {
        struct err e = {0};
        fs_rm_rf(fx.root, &e);
        err_release(&e);
    }
    free(fx.work);
    free(fx.logs);
    free(fx.run);
    src_free_all();
}

TestSuite(postgres_database, .init = setup, .fini = teardown, .timeout = 180);

/* ---- calls ---- */

static struct prov_call call(const char *env, const char *resource, const struct val *props)
{
    struct prov_call c = {
        .env = env,
        .resource = resource,
        .type = "postgres.database",
        .project_dir = fx.root,
        .work_dir = fx.work,
        .log_dir = fx.logs,
        .run_dir = fx.run,
        .props = props,
        .host = &fx.host,
    };
    return c;
}

/* props: server = the admin URL, then key/value string pairs, NULL-terminated */
static struct val *props(const char *k, ...)
{
    struct val *m = val_map(NULL);
    val_map_set(m, "server", NULL, val_str(admin_url(), NULL));
    va_list ap;
    va_start(ap, k);
    for (; k; k = va_arg(ap, const char *))
        val_map_set(m, k, NULL, val_str(va_arg(ap, const char *), NULL));
    va_end(ap);
    return m;
}

static struct val *yaml(const char *text)
{
    const struct src *s = src_add("envs/pr.yaml", text, strlen(text));
    struct val *v = NULL;
    struct err e = {0};
    cr_assert_eq(yt_parse(&v, s, &e), 0, "%s", e.msg);
    return v;
}

static struct prov_result create(const char *env, const char *res, const struct val *p)
{
    struct prov_call c = call(env, res, p);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(prov_check_props(pg(), &c, NULL, &e), 0, "check: %s", e.msg);
    int rc = pg()->create(&c, &r, &e);
    cr_assert_eq(rc, 0, "create: %s (%s)", e.msg, e.hint ? e.hint : "");
    cr_assert_not_null(r.outputs);
    return r;
}

static int create_err(const char *env, const char *res, const struct val *p, struct err *e)
{
    struct prov_call c = call(env, res, p);
    struct prov_result r = {0};
    int rc = pg()->create(&c, &r, e);
    cr_assert_null(r.outputs);
    prov_result_release(&r);
    return rc;
}

static struct prov_result do_read(const char *env, const char *res, const struct val *old_props,
                                  const struct val *old_outputs)
{
    struct prov_call c = call(env, res, NULL);
    c.old_props = old_props;
    c.old_outputs = old_outputs;
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(pg()->read(&c, &r, &e), 0, "read: %s (%s)", e.msg, e.hint ? e.hint : "");
    return r;
}

static void do_update(const char *env, const char *res, const struct val *p,
                      const struct val *old_props, const struct prov_result *old)
{
    struct prov_call c = call(env, res, p);
    c.old_props = old_props;
    c.old_outputs = old->outputs;
    c.id = old->id;
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(prov_check_props(pg(), &c, NULL, &e), 0, "check: %s", e.msg);
    cr_assert_eq(pg()->update(&c, &r, &e), 0, "update: %s (%s)", e.msg, e.hint ? e.hint : "");
    cr_assert(val_equal(r.outputs, old->outputs), "update changed the outputs");
    prov_result_release(&r);
}

static int do_remove(const char *env, const char *res, const struct val *old_props,
                     const struct val *old_outputs, struct err *e)
{
    struct prov_call c = call(env, res, NULL);
    c.old_props = old_props;
    c.old_outputs = old_outputs;
    return pg()->remove(&c, e);
}

static void remove_ok(const char *env, const char *res, const struct val *old_props,
                      const struct val *old_outputs)
{
    struct err e = {0};
    int rc = do_remove(env, res, old_props, old_outputs, &e);
    cr_assert_eq(rc, 0, "remove: %s (%s)", e.msg, e.hint ? e.hint : "");
}

static const char *out(const struct prov_result *r, const char *key)
{
    const char *s = val_map_str(r->outputs, key, NULL);
    cr_assert_not_null(s, "output '%s' missing", key);
    return s;
}

static bool safe_ident(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

/* as_role: log in with the output URL and return current_user/current_database() */
static char *whoami(const char *url)
{
    PGconn *c = connect_url(url);
    char *v = value(c, "SELECT current_user || '@' || current_database()", NULL);
    PQfinish(c);
    return v;
}

static bool can_login(const char *url)
{
    PGconn *c = PQconnectdb(url);
    bool ok = PQstatus(c) == CONNECTION_OK;
    PQfinish(c);
    return ok;
}

/* url_with: the admin URL's parts with another password (NULL: none) and port (0: same) */
static char *url_with(const char *password, int port)
{
    char *errmsg = NULL;
    PQconninfoOption *o = PQconninfoParse(admin_url(), &errmsg);
    cr_assert_not_null(o, "%s", errmsg);
    const char *user = NULL, *host = NULL, *p = NULL, *db = NULL;
    for (PQconninfoOption *x = o; x->keyword; x++) {
        if (!x->val)
            continue;
        if (!strcmp(x->keyword, "user"))
            user = x->val;
        else if (!strcmp(x->keyword, "host"))
            host = x->val;
        else if (!strcmp(x->keyword, "port"))
            p = x->val;
        else if (!strcmp(x->keyword, "dbname"))
            db = x->val;
    }
    cr_assert(user && host && p && db, "the admin URL must name user, host, port and dbname");
    char *u = port ? xasprintf("postgres://%s%s%s@%s:%d/%s", user, password ? ":" : "",
                               password ? password : "", host, port, db)
                   : xasprintf("postgres://%s%s%s@%s:%s/%s", user, password ? ":" : "",
                               password ? password : "", host, p, db);
    PQconninfoFree(o);
    return u;
}

static char *admin_password(void)
{
    char *errmsg = NULL;
    PQconninfoOption *o = PQconninfoParse(admin_url(), &errmsg);
    cr_assert_not_null(o);
    char *pw = NULL;
    for (PQconninfoOption *x = o; x->keyword; x++)
        if (!strcmp(x->keyword, "password") && x->val)
            pw = xstrdup(x->val);
    PQconninfoFree(o);
    cr_assert_not_null(pw, "the admin URL has no password");
    return pw;
}

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd); /* bound, never listening: connections to it are refused */
    return ntohs(sa.sin_port);
}

static void assert_no_secret(const struct err *e, const char *secret)
{
    cr_assert_null(strstr(e->msg, secret), "the message shows a password: %s", e->msg);
    if (e->hint)
        cr_assert_null(strstr(e->hint, secret), "the hint shows a password: %s", e->hint);
}

static char *log_text(const char *res)
{
    char *path = xasprintf("%s/%s.log", fx.logs, res);
    char *s = NULL;
    size_t n;
    struct err e = {0};
    if (fs_read(path, 1 << 20, &s, &n, &e))
        s = xstrdup("");
    err_release(&e);
    free(path);
    return s;
}

/* ---- create, connect, read, remove ---- */

Test(postgres_database, create_outputs_a_url_whose_password_logs_in_and_runs_a_query)
{
    const char *res = fx.tok;
    struct val *p = props(NULL);
    struct prov_result r = create("dev", res, p);
    char *want = xasprintf("prenv_dev_%s", fx.tok);
    cr_assert_str_eq(out(&r, "name"), want);
    cr_assert_str_eq(out(&r, "user"), want);
    cr_assert_str_eq(out(&r, "host"), "127.0.0.1");
    const struct val *port = val_map_get(r.outputs, "port");
    cr_assert(port && port->kind == VAL_INT && port->u.i > 0);
    const char *pw = out(&r, "password");
    cr_assert_eq(strlen(pw), 43, "32 random bytes are 43 base64url characters: %s", pw);
    cr_assert_eq(strspn(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                 43);
    cr_assert(val_map_get(r.outputs, "password")->secret, "password is not marked secret");
    cr_assert(val_map_get(r.outputs, "url")->secret, "url is not marked secret");
    cr_assert_eq(pg()->outputs[0].flags & OUT_SECRET, OUT_SECRET);
    char *url = xasprintf("postgres://%s:%s@127.0.0.1:%lld/%s", want, pw, port->u.i, want);
    cr_assert_str_eq(out(&r, "url"), url);

    /* the role logs in with the output URL, owns the database, and can work in it */
    char *who = whoami(out(&r, "url"));
    char *expect = xasprintf("%s@%s", want, want);
    cr_assert_str_eq(who, expect);
    PGconn *c = connect_url(out(&r, "url"));
    exec_ok(c, "CREATE TABLE t (id int primary key, v text)");
    exec_ok(c, "INSERT INTO t VALUES (1, 'one'), (2, 'two')");
    char *n = value(c, "SELECT count(*) FROM t", NULL);
    cr_assert_str_eq(n, "2");
    PQfinish(c);

    /* other roles lose CONNECT: only the owner (and superusers) get in */
    PGconn *a = connect_url(admin_url());
    char *pub = value(a, "SELECT has_database_privilege('public', $1, 'CONNECT')::text", want);
    cr_assert_str_eq(pub, "false");
    PQfinish(a);

    /* a second password from the CSPRNG differs */
    struct prov_result r2 = create("dev2", res, p);
    cr_assert_str_neq(out(&r2, "password"), pw);

    char *log = log_text(res);
    cr_assert_null(strstr(log, pw), "the log shows the password");
    char *apw = admin_password();
    cr_assert_null(strstr(log, apw), "the log shows the admin password");
    cr_assert_not_null(strstr(log, "creating database"), "log: %s", log);

    remove_ok("dev", res, p, r.outputs);
    remove_ok("dev2", res, p, r2.outputs);
    free(apw);
    free(log);
    free(pub);
    free(n);
    free(expect);
    free(who);
    free(url);
    free(want);
    prov_result_release(&r);
    prov_result_release(&r2);
    val_free(p);
}

Test(postgres_database, comment_names_the_env_the_resource_and_the_tags)
{
    struct val *p = yaml("tags:\n  team: shop\n  pr: 42\n");
    val_map_set(p, "server", NULL, val_str(admin_url(), NULL));
    /* the env's own tags go in too; the resource's win over them */
    struct val *et = yaml("Environment: pr-42\nCostCenter: cc-7\nteam: platform\n");
    fx.host.tags = et;
    struct prov_result r = create("pr-42", fx.tok, p);
    fx.host.tags = NULL;
    val_free(et);
    char *comment = db_comment(out(&r, "name"));
    cr_assert_not_null(comment);
    cJSON *j = cJSON_Parse(comment);
    cr_assert(cJSON_IsObject(j), "comment is not JSON: %s", comment);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "prenv_env")->valuestring, "pr-42");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "prenv_resource")->valuestring, fx.tok);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "team")->valuestring, "shop");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "pr")->valuestring, "42");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "Environment")->valuestring, "pr-42");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "CostCenter")->valuestring, "cc-7");
    cJSON_Delete(j);
    /* "pr-42" is not [a-z0-9]: the name gets a hash suffix, still readable */
    const char *name = out(&r, "name");
    cr_assert(safe_ident(name), "%s", name);
    char *prefix = xasprintf("prenv_pr_42_%s__", fx.tok);
    cr_assert_eq(strncmp(name, prefix, strlen(prefix)), 0, "%s", name);
    cr_assert_eq(strlen(name), strlen(prefix) + 10, "%s", name);
    remove_ok("pr-42", fx.tok, p, r.outputs);
    free(prefix);
    free(comment);
    prov_result_release(&r);
    val_free(p);
}

Test(postgres_database, read_after_create_reports_no_drift_and_the_recorded_outputs)
{
    struct val *p = props(NULL);
    struct prov_result r = create("dev", fx.tok, p);
    struct prov_result rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert(rd.exists);
    cr_assert_null(rd.drift, "drift: %s", rd.drift);
    cr_assert(val_equal(rd.outputs, r.outputs));
    cr_assert(val_map_get(rd.outputs, "password")->secret);
    prov_result_release(&rd);

    /* a comment changed by hand is drift */
    char *q = quote_ident(out(&r, "name"));
    admin_sql("COMMENT ON DATABASE %s IS 'hand-edited'", q);
    rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert(rd.exists);
    cr_assert_not_null(rd.drift);
    cr_assert_not_null(strstr(rd.drift, "comment"), "%s", rd.drift);
    prov_result_release(&rd);
    /* update puts it back */
    do_update("dev", fx.tok, p, p, &r);
    rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert_null(rd.drift, "drift: %s", rd.drift);
    prov_result_release(&rd);
    remove_ok("dev", fx.tok, p, r.outputs);
    free(q);
    prov_result_release(&r);
    val_free(p);
}

Test(postgres_database, read_after_an_out_of_band_drop_database_reports_it_gone)
{
    struct val *p = props(NULL);
    struct prov_result r = create("dev", fx.tok, p);
    char *name = xstrdup(out(&r, "name"));
    char *q = quote_ident(name);
    admin_sql("DROP DATABASE %s", q);
    struct prov_result rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert_not(rd.exists);
    cr_assert_null(rd.outputs);
    prov_result_release(&rd);
    /* remove cleans up the role that is left */
    cr_assert(role_exists(name));
    remove_ok("dev", fx.tok, p, r.outputs);
    cr_assert_not(role_exists(name));
    free(q);
    free(name);
    prov_result_release(&r);
    val_free(p);
}

Test(postgres_database, role_password_changed_outside_prenv_is_drift_that_update_repairs)
{
    struct val *p = props(NULL);
    struct prov_result r = create("dev", fx.tok, p);
    char *q = quote_ident(out(&r, "user"));
    admin_sql("ALTER ROLE %s PASSWORD 'changed-by-hand'", q);
    cr_assert_not(can_login(out(&r, "url")));
    struct prov_result rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert(rd.exists);
    cr_assert_not_null(rd.drift);
    cr_assert_not_null(strstr(rd.drift, "recorded password"), "%s", rd.drift);
    cr_assert_null(strstr(rd.drift, out(&r, "password")));
    prov_result_release(&rd);

    do_update("dev", fx.tok, p, p, &r);
    cr_assert(can_login(out(&r, "url")), "update did not restore the recorded password");
    rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert_null(rd.drift, "drift: %s", rd.drift);
    prov_result_release(&rd);

    /* a role dropped by hand is drift too, and update creates it again */
    remove_ok("dev", fx.tok, p, r.outputs);
    prov_result_release(&r);
    r = create("dev", fx.tok, p);
    char *db = quote_ident(out(&r, "name"));
    admin_sql("ALTER DATABASE %s OWNER TO CURRENT_USER; DROP ROLE %s", db, q);
    rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert(rd.exists);
    cr_assert_not_null(rd.drift);
    cr_assert_not_null(strstr(rd.drift, "dropped"), "%s", rd.drift);
    prov_result_release(&rd);
    do_update("dev", fx.tok, p, p, &r);
    cr_assert(can_login(out(&r, "url")));
    rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert_null(rd.drift, "drift: %s", rd.drift);
    prov_result_release(&rd);
    remove_ok("dev", fx.tok, p, r.outputs);
    free(db);
    free(q);
    prov_result_release(&r);
    val_free(p);
}

Test(postgres_database, remove_twice_succeeds_and_leaves_no_database_and_no_role)
{
    struct val *p = props(NULL);
    struct prov_result r = create("dev", fx.tok, p);
    char *name = xstrdup(out(&r, "name"));
    /* an open session of the role does not stop the drop */
    PGconn *c = connect_url(out(&r, "url"));
    remove_ok("dev", fx.tok, p, r.outputs);
    PQfinish(c);
    cr_assert_not(db_exists(name));
    cr_assert_not(role_exists(name));
    remove_ok("dev", fx.tok, p, r.outputs);
    /* and with nothing recorded but the properties (a cleanup after a crash) */
    remove_ok("dev", fx.tok, p, NULL);
    cr_assert_not(db_exists(name));
    free(name);
    prov_result_release(&r);
    val_free(p);
}

Test(postgres_database, a_create_interrupted_before_state_was_saved_is_cleaned_up_and_redone)
{
    struct val *p = props(NULL);
    struct prov_result r = create("dev", fx.tok, p);
    char *name = xstrdup(out(&r, "name"));
    /* state lost the outputs: read reports nothing, so the engine cleans up */
    struct prov_result rd = do_read("dev", fx.tok, p, NULL);
    cr_assert_not(rd.exists);
    prov_result_release(&rd);

    /* creating again adopts both, with a new password */
    struct prov_result r2 = create("dev", fx.tok, p);
    cr_assert_str_eq(out(&r2, "name"), name);
    cr_assert_str_neq(out(&r2, "password"), out(&r, "password"));
    cr_assert_not(can_login(out(&r, "url")));
    cr_assert(can_login(out(&r2, "url")));

    /* a crash between CREATE DATABASE and COMMENT: no comment, owned by our role */
    char *q = quote_ident(name);
    admin_sql("COMMENT ON DATABASE %s IS NULL", q);
    prov_result_release(&r);
    r = create("dev", fx.tok, p);
    char *comment = db_comment(name);
    cr_assert_not_null(comment);
    cr_assert_not_null(strstr(comment, fx.tok), "%s", comment);

    /* the engine's cleanup: remove with the properties only */
    remove_ok("dev", fx.tok, p, NULL);
    cr_assert_not(db_exists(name));
    cr_assert_not(role_exists(name));
    free(comment);
    free(q);
    free(name);
    prov_result_release(&r);
    prov_result_release(&r2);
    val_free(p);
}

Test(postgres_database, template_copy_has_the_golden_rows_and_the_role_owns_them)
{
    char *tpl = xasprintf("golden_%s", fx.tok);
    char *qt = quote_ident(tpl);
    admin_sql("CREATE DATABASE %s", qt);
    PGconn *a = connect_to(admin_url(), tpl);
    exec_ok(a, "CREATE SCHEMA shop");
    exec_ok(a, "CREATE TABLE shop.items (id serial primary key, name text not null)");
    exec_ok(a, "INSERT INTO shop.items (name) VALUES ('apple'), ('pear'), ('plum')");
    exec_ok(a, "CREATE TABLE public.notes (id int generated always as identity, n text)");
    exec_ok(a, "INSERT INTO public.notes (n) VALUES ('golden')");
    exec_ok(a, "CREATE VIEW shop.names AS SELECT name FROM shop.items");
    exec_ok(a, "CREATE FUNCTION shop.total() RETURNS bigint LANGUAGE sql AS "
               "'SELECT count(*) FROM shop.items'");
    exec_ok(a, "CREATE TYPE shop.mood AS ENUM ('ok', 'great')");
    PQfinish(a); /* a template must be idle while it is copied */

    struct val *p = props("template", tpl, NULL);
    struct prov_result r = create("dev", fx.tok, p);
    PGconn *c = connect_url(out(&r, "url"));
    char *n = value(c, "SELECT count(*) FROM shop.items", NULL);
    cr_assert_str_eq(n, "3");
    exec_ok(c, "INSERT INTO shop.items (name) VALUES ('fig')");
    exec_ok(c, "INSERT INTO public.notes (n) VALUES ('mine')");
    exec_ok(c, "ALTER TABLE shop.items ADD COLUMN mood shop.mood");
    char *t = value(c, "SELECT shop.total()", NULL);
    cr_assert_str_eq(t, "4");
    char *v = value(c, "SELECT string_agg(name, ',' ORDER BY name) FROM shop.names", NULL);
    cr_assert_str_eq(v, "apple,fig,pear,plum");
    PQfinish(c);
    /* the template is untouched */
    a = connect_to(admin_url(), tpl);
    char *tn = value(a, "SELECT count(*) FROM shop.items", NULL);
    cr_assert_str_eq(tn, "3");
    PQfinish(a);
    remove_ok("dev", fx.tok, p, r.outputs);
    cr_assert(db_exists(tpl));
    admin_sql("DROP DATABASE %s", qt);
    free(tn);
    free(v);
    free(t);
    free(n);
    prov_result_release(&r);
    val_free(p);
    free(qt);
    free(tpl);
}

Test(postgres_database, a_busy_or_missing_template_is_reported)
{
    char *tpl = xasprintf("busy_%s", fx.tok);
    char *qt = quote_ident(tpl);
    admin_sql("CREATE DATABASE %s", qt);
    PGconn *a = connect_to(admin_url(), tpl); /* stays connected */
    struct val *p = props("template", tpl, NULL);
    struct err e = {0};
    int rc = create_err("dev", fx.tok, p, &e);
    cr_assert_eq(rc, PE_TRANSIENT, "%s: %s", err_code_name(rc), e.msg);
    cr_assert_not_null(strstr(e.msg, "being accessed by other users"), "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, "55006"), "%s", e.msg);
    cr_assert_not_null(e.hint);
    err_release(&e);
    PQfinish(a);
    remove_ok("dev", fx.tok, p, NULL);
    val_free(p);

    char *missing = xasprintf("nothere_%s", fx.tok);
    p = props("template", missing, NULL);
    rc = create_err("dev", fx.tok, p, &e);
    cr_assert_eq(rc, PE_PROVIDER, "%s: %s", err_code_name(rc), e.msg);
    cr_assert_not_null(strstr(e.msg, "does not exist"), "%s", e.msg);
    err_release(&e);
    remove_ok("dev", fx.tok, p, NULL);
    admin_sql("DROP DATABASE %s", qt);
    free(missing);
    val_free(p);
    free(qt);
    free(tpl);
}

Test(postgres_database, extensions_connection_limit_and_tags_are_applied_and_updated)
{
    struct val *p = yaml("extensions: [pgcrypto]\nconnection_limit: 5\ntags: {team: shop}\n");
    val_map_set(p, "server", NULL, val_str(admin_url(), NULL));
    struct prov_result r = create("dev", fx.tok, p);
    const char *name = out(&r, "name");
    PGconn *c = connect_url(out(&r, "url"));
    char *h = value(c, "SELECT encode(digest('abc', 'sha256'), 'hex')", NULL);
    cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    PQfinish(c);
    PGconn *a = connect_url(admin_url());
    char *lim = value(a, "SELECT datconnlimit::text FROM pg_database WHERE datname = $1", name);
    cr_assert_str_eq(lim, "5");
    free(lim);
    struct prov_result rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert_null(rd.drift, "drift: %s", rd.drift);
    prov_result_release(&rd);

    struct val *p2 = yaml("extensions: [pgcrypto, citext]\nconnection_limit: 7\n"
                          "tags: {team: web}\n");
    val_map_set(p2, "server", NULL, val_str(admin_url(), NULL));
    do_update("dev", fx.tok, p2, p, &r);
    lim = value(a, "SELECT datconnlimit::text FROM pg_database WHERE datname = $1", name);
    cr_assert_str_eq(lim, "7");
    PQfinish(a);
    char *comment = db_comment(name);
    cr_assert_not_null(strstr(comment, "\"team\":\"web\""), "%s", comment);
    c = connect_url(out(&r, "url"));
    char *ci = value(c, "SELECT ('A'::citext = 'a'::citext)::text", NULL);
    cr_assert_str_eq(ci, "true");
    PQfinish(c);
    rd = do_read("dev", fx.tok, p2, r.outputs);
    cr_assert_null(rd.drift, "drift: %s", rd.drift);
    prov_result_release(&rd);
    /* read against the old properties sees the difference */
    rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert_not_null(rd.drift);
    cr_assert_not_null(strstr(rd.drift, "connection limit"), "%s", rd.drift);
    prov_result_release(&rd);
    remove_ok("dev", fx.tok, p2, r.outputs);
    free(ci);
    free(comment);
    free(lim);
    free(h);
    prov_result_release(&r);
    val_free(p2);
    val_free(p);
}

/* ---- names ---- */

static char *long_env(char last)
{
    char *s = xmalloc(201);
    for (int i = 0; i < 199; i++)
        s[i] = (char)('a' + i % 26);
    s[199] = last;
    s[200] = 0;
    return s;
}

Test(postgres_database, hostile_env_names_make_safe_identifiers_and_create_and_remove_work)
{
    char *longname = long_env('z');
    const char *envs[] = {"a'b\"c",
                          "x; DROP TABLE y",
                          "\xc3\xbc"
                          "n\xc3\xaf-\xc3\xa7\xc3\xb8"
                          "d\xc3\xa9-\xe7\x92\xb0\xe5\xa2\x83",
                          longname,
                          "Robert'); DROP DATABASE postgres; --",
                          "$$; SELECT 1; $$",
                          "\\\"\\'"};
    struct val *p = props(NULL);
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        struct prov_result r = create(envs[i], fx.tok, p);
        const char *name = out(&r, "name");
        cr_assert(safe_ident(name), "env %zu gave %s", i, name);
        cr_assert_str_eq(out(&r, "user"), name);
        char *who = whoami(out(&r, "url"));
        char *expect = xasprintf("%s@%s", name, name);
        cr_assert_str_eq(who, expect);
        /* the comment holds the env name exactly */
        char *comment = db_comment(name);
        cJSON *j = cJSON_Parse(comment);
        cr_assert(cJSON_IsObject(j), "%s", comment);
        cr_assert_str_eq(cJSON_GetObjectItem(j, "prenv_env")->valuestring, envs[i]);
        cJSON_Delete(j);
        struct prov_result rd = do_read(envs[i], fx.tok, p, r.outputs);
        cr_assert(rd.exists);
        cr_assert_null(rd.drift, "env %zu: %s", i, rd.drift);
        prov_result_release(&rd);
        remove_ok(envs[i], fx.tok, p, r.outputs);
        cr_assert_not(db_exists(name));
        cr_assert_not(role_exists(name));
        free(comment);
        free(expect);
        free(who);
        prov_result_release(&r);
    }
    cr_assert(db_exists("postgres"));
    val_free(p);
    free(longname);
}

Test(postgres_database, different_hostile_names_never_share_an_identifier)
{
    char *long1 = long_env('y'), *long2 = long_env('z');
    char *xtok = xasprintf("x_%s", fx.tok), *ytok = xasprintf("%s_y", fx.tok);
    /* (env, resource) pairs whose readable forms are all alike */
    const char *pairs[][2] = {
        {"a'b", fx.tok}, {"a;b", fx.tok}, {"a b", fx.tok}, {"a_b", fx.tok},
        {"A'B", fx.tok}, {"a-b", fx.tok}, {"ab", fx.tok},  {long1, fx.tok},
        {long2, fx.tok}, {"x", ytok},     {xtok, "y"},
    };
    enum { N = sizeof pairs / sizeof pairs[0] };
    struct prov_result r[N];
    struct val *p = props(NULL);
    for (size_t i = 0; i < N; i++) {
        r[i] = create(pairs[i][0], pairs[i][1], p);
        cr_assert(safe_ident(out(&r[i], "name")), "%s", out(&r[i], "name"));
    }
    for (size_t i = 0; i < N; i++)
        for (size_t j = i + 1; j < N; j++)
            cr_assert_str_neq(out(&r[i], "name"), out(&r[j], "name"), "pairs %zu and %zu", i, j);
    /* every one exists side by side, and is its own */
    for (size_t i = 0; i < N; i++) {
        struct prov_result rd = do_read(pairs[i][0], pairs[i][1], p, r[i].outputs);
        cr_assert(rd.exists);
        cr_assert_null(rd.drift, "%zu: %s", i, rd.drift);
        prov_result_release(&rd);
    }
    /* the same input always gives the same name */
    struct prov_result again = create(pairs[0][0], pairs[0][1], p);
    cr_assert_str_eq(out(&again, "name"), out(&r[0], "name"));
    prov_result_release(&again);
    for (size_t i = 0; i < N; i++) {
        remove_ok(pairs[i][0], pairs[i][1], p, NULL);
        cr_assert_not(db_exists(out(&r[i], "name")));
        prov_result_release(&r[i]);
    }
    val_free(p);
    free(xtok);
    free(ytok);
    free(long1);
    free(long2);
}

Test(postgres_database, an_explicit_name_is_used_for_database_and_role)
{
    char *name = xasprintf("shop_%s", fx.tok);
    struct val *p = props("name", name, NULL);
    struct prov_result r = create("dev", "db", p);
    cr_assert_str_eq(out(&r, "name"), name);
    cr_assert_str_eq(out(&r, "user"), name);
    cr_assert(can_login(out(&r, "url")));
    remove_ok("dev", "db", p, r.outputs);
    cr_assert_not(db_exists(name));
    prov_result_release(&r);
    val_free(p);
    free(name);
}

Test(postgres_database, a_conninfo_server_on_the_unix_socket_gives_a_socket_url)
{
    PGconn *a = connect_url(admin_url());
    char *dir = value(a, "SHOW unix_socket_directories", NULL);
    char *port = value(a, "SHOW port", NULL);
    char *user = value(a, "SELECT current_user", NULL);
    PQfinish(a);
    cr_assert_eq(dir[0], '/', "the test server has no socket directory: %s", dir);
    char *ci = xasprintf("host=%s port=%s user=%s dbname=postgres", dir, port, user);
    struct val *p = val_map(NULL);
    val_map_set(p, "server", NULL, val_str(ci, NULL));
    struct prov_result r = create("dev", fx.tok, p);
    cr_assert_str_eq(out(&r, "host"), dir);
    cr_assert_eq(val_map_int(r.outputs, "port", 0), strtoll(port, NULL, 10));
    const char *url = out(&r, "url");
    cr_assert_not_null(strstr(url, "@/"), "%s", url);
    cr_assert_not_null(strstr(url, "?host=%2F"), "%s", url);
    char *who = whoami(url);
    char *expect = xasprintf("%s@%s", out(&r, "name"), out(&r, "name"));
    cr_assert_str_eq(who, expect);
    struct prov_result rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert(rd.exists);
    cr_assert_null(rd.drift, "%s", rd.drift);
    prov_result_release(&rd);
    remove_ok("dev", fx.tok, p, r.outputs);
    cr_assert_not(db_exists(out(&r, "name")));
    free(expect);
    free(who);
    prov_result_release(&r);
    val_free(p);
    free(ci);
    free(user);
    free(port);
    free(dir);
}

Test(postgres_database, an_admin_with_only_createrole_and_createdb_is_enough)
{
    char *adm = xasprintf("adm_%s", fx.tok);
    char *q = quote_ident(adm);
    admin_sql("CREATE ROLE %s LOGIN CREATEROLE CREATEDB PASSWORD 'Adm1n-pw-for-test'", q);
    char *errmsg = NULL;
    PQconninfoOption *o = PQconninfoParse(admin_url(), &errmsg);
    cr_assert_not_null(o);
    const char *host = NULL, *port = NULL;
    for (PQconninfoOption *x = o; x->keyword; x++) {
        if (x->val && !strcmp(x->keyword, "host"))
            host = x->val;
        if (x->val && !strcmp(x->keyword, "port"))
            port = x->val;
    }
    char *url = xasprintf("postgres://%s@%s:%s/postgres", adm, host, port);
    PQconninfoFree(o);
    struct val *p = val_map(NULL);
    val_map_set(p, "server", NULL, val_str(url, NULL));
    val_map_set(p, "admin_password", NULL, val_str("Adm1n-pw-for-test", NULL));
    struct val *exts = val_list(NULL);
    val_list_push(exts, val_str("pgcrypto", NULL));
    val_map_set(p, "extensions", NULL, exts);
    struct prov_result r = create("dev", fx.tok, p);
    cr_assert(can_login(out(&r, "url")));
    struct prov_result rd = do_read("dev", fx.tok, p, r.outputs);
    cr_assert(rd.exists);
    cr_assert_null(rd.drift, "%s", rd.drift);
    prov_result_release(&rd);
    PGconn *c = connect_url(out(&r, "url")); /* a session the drop ends */
    remove_ok("dev", fx.tok, p, r.outputs);
    PQfinish(c);
    cr_assert_not(db_exists(out(&r, "name")));
    cr_assert_not(role_exists(out(&r, "name")));
    admin_sql("DROP ROLE %s", q);
    prov_result_release(&r);
    val_free(p);
    free(url);
    free(q);
    free(adm);
}

/* ---- what is not ours ---- */

Test(postgres_database, a_database_of_the_derived_name_that_is_not_ours_is_refused)
{
    char *name = xasprintf("prenv_own_%s", fx.tok);
    char *q = quote_ident(name);
    admin_sql("CREATE DATABASE %s", q);
    struct val *p = props(NULL);
    struct err e = {0};
    int rc = create_err("own", fx.tok, p, &e);
    cr_assert_eq(rc, PE_EXISTS, "%s: %s", err_code_name(rc), e.msg);
    char *want = xasprintf("database %s exists and is not managed by prenv", name);
    cr_assert_not_null(strstr(e.msg, want), "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, "refusing to touch it"), "%s", e.msg);
    err_release(&e);
    /* nothing was created, and remove leaves the stranger alone */
    cr_assert_not(role_exists(name));
    remove_ok("own", fx.tok, p, NULL);
    cr_assert(db_exists(name));

    /* another env's database, by its comment */
    admin_sql("COMMENT ON DATABASE %s IS '{\"prenv_env\":\"prod\",\"prenv_resource\":\"db\"}'", q);
    rc = create_err("own", fx.tok, p, &e);
    cr_assert_eq(rc, PE_EXISTS);
    cr_assert_not_null(strstr(e.msg, "env 'prod', resource 'db'"), "%s", e.msg);
    err_release(&e);
    remove_ok("own", fx.tok, p, NULL);
    cr_assert(db_exists(name));
    admin_sql("DROP DATABASE %s", q);

    /* a role of that name that is not ours */
    admin_sql("CREATE ROLE %s LOGIN", q);
    rc = create_err("own", fx.tok, p, &e);
    cr_assert_eq(rc, PE_EXISTS);
    char *wantr = xasprintf("role %s exists and is not managed by prenv", name);
    cr_assert_not_null(strstr(e.msg, wantr), "%s", e.msg);
    err_release(&e);
    cr_assert_not(db_exists(name));
    remove_ok("own", fx.tok, p, NULL);
    cr_assert(role_exists(name));
    admin_sql("DROP ROLE %s", q);
    free(wantr);
    free(want);
    val_free(p);
    free(q);
    free(name);
}

/* ---- server trouble ---- */

Test(postgres_database, server_down_is_transient_with_host_and_port_in_the_hint_and_no_password)
{
    int port = closed_port();
    char *url = url_with("Sup3r-Secret-pw", port);
    struct val *p = val_map(NULL);
    val_map_set(p, "server", NULL, val_str(url, NULL));
    struct err e = {0};
    int rc = create_err("dev", fx.tok, p, &e);
    cr_assert_eq(rc, PE_TRANSIENT, "%s: %s", err_code_name(rc), e.msg);
    char *hp = xasprintf("127.0.0.1:%d", port);
    cr_assert_not_null(e.hint);
    cr_assert_not_null(strstr(e.hint, hp), "hint: %s", e.hint);
    assert_no_secret(&e, "Sup3r-Secret-pw");
    err_release(&e);
    /* remove and read cannot reach it either: transient, so the engine retries */
    rc = do_remove("dev", fx.tok, p, NULL, &e);
    cr_assert_eq(rc, PE_TRANSIENT);
    assert_no_secret(&e, "Sup3r-Secret-pw");
    err_release(&e);
    char *log = log_text(fx.tok);
    cr_assert_null(strstr(log, "Sup3r-Secret-pw"));
    free(log);
    free(hp);
    free(url);
    val_free(p);
}

Test(postgres_database, wrong_admin_password_is_a_provider_error_without_the_password)
{
    admin_url();
    char *url = url_with("Wr0ng-Passw0rd-xyz", 0);
    struct val *p = val_map(NULL);
    val_map_set(p, "server", NULL, val_str(url, NULL));
    struct err e = {0};
    int rc = create_err("dev", fx.tok, p, &e);
    cr_assert_eq(rc, PE_PROVIDER, "%s: %s", err_code_name(rc), e.msg);
    cr_assert_not_null(strstr(e.msg, "password authentication failed"), "%s", e.msg);
    cr_assert_not_null(e.hint);
    cr_assert_not_null(strstr(e.hint, "admin credentials"), "%s", e.hint);
    assert_no_secret(&e, "Wr0ng-Passw0rd-xyz");
    err_release(&e);
    val_free(p);
    free(url);

    /* admin_password is used when the URL has none */
    url = url_with(NULL, 0);
    p = val_map(NULL);
    val_map_set(p, "server", NULL, val_str(url, NULL));
    val_map_set(p, "admin_password", NULL, val_str("Wr0ng-Passw0rd-xyz", NULL));
    rc = create_err("dev", fx.tok, p, &e);
    cr_assert_eq(rc, PE_PROVIDER, "%s", e.msg);
    assert_no_secret(&e, "Wr0ng-Passw0rd-xyz");
    err_release(&e);
    val_free(val_map_take(p, "admin_password"));
    char *apw = admin_password();
    struct val *secret = val_str(apw, NULL);
    secret->secret = 1;
    val_map_set(p, "admin_password", NULL, secret);
    struct prov_result r = create("dev", fx.tok, p);
    cr_assert(can_login(out(&r, "url")));
    remove_ok("dev", fx.tok, p, r.outputs);
    cr_assert_not(db_exists(out(&r, "name")));
    prov_result_release(&r);
    free(apw);
    val_free(p);
    free(url);
}

/* ---- check (no server needed) ---- */

static int check_yaml(const char *text, struct err *e)
{
    struct val *p = yaml(text);
    struct prov_call c = call("dev", "db", p);
    int rc = prov_check_props(pg(), &c, NULL, e);
    val_free(p);
    return rc;
}

static void assert_check_error(const char *text, int line, int col, const char *msg_part)
{
    struct err e = {0};
    int rc = check_yaml(text, &e);
    cr_assert_eq(rc, PE_CONFIG, "%s: %s", text, e.msg ? e.msg : "(accepted)");
    cr_assert_not_null(strstr(e.msg, msg_part), "%s", e.msg);
    cr_assert_eq(e.pos.line, line, "%s: line %d", e.msg, e.pos.line);
    cr_assert_eq(e.pos.col, col, "%s: col %d", e.msg, e.pos.col);
    err_release(&e);
}

Test(postgres_database, check_reports_bad_properties_at_their_position)
{
    struct err e = {0};
    cr_assert_eq(check_yaml("server: postgres://u:p@db.example:5432/postgres\n"
                            "name: shop_pr_42\ntemplate: golden\nconnection_limit: -1\n"
                            "extensions: [pgcrypto, uuid-ossp]\ntags: {team: shop}\n",
                            &e),
                 0, "%s", e.msg);
    cr_assert_eq(check_yaml("server: \"host=db port=5432 user=admin dbname=postgres\"\n", &e), 0,
                 "%s", e.msg);
    assert_check_error("server: not a url\n", 1, 9, "not a PostgreSQL connection URL");
    assert_check_error("server: \"postgres://u:hunter2@h/db?bogus=1\"\n", 1, 9,
                       "not a PostgreSQL connection URL");
    assert_check_error("server: postgres://h/db\nname: Shop\n", 2, 7,
                       "must start with a lowercase letter");
    assert_check_error("server: postgres://h/db\nname: \"a;b\"\n", 2, 7, "may hold only");
    assert_check_error("server: postgres://h/db\nname: pg_shop\n", 2, 7, "'pg_'");
    assert_check_error("server: postgres://h/db\nname: postgres\n", 2, 7, "reserved");
    assert_check_error("server: postgres://h/db\n"
                       "name: a123456789012345678901234567890123456789012345678901234567890123\n",
                       2, 7, "longer than 63");
    assert_check_error("server: postgres://h/db\nconnection_limit: -5\n", 2, 19,
                       "'connection_limit'");
    assert_check_error("server: postgres://h/db\nextensions: [pgcrypto, \"x; DROP\"]\n", 2, 24,
                       "extension 'x; DROP'");
    assert_check_error("server: postgres://h/db\ntags:\n  prenv_env: prod\n", 3, 3, "prenv_");
    assert_check_error("server: postgres://h/db\nname: shop\ntemplate: shop\n", 3, 11,
                       "its own template");
    assert_check_error("server: postgres://h/db\nnmae: shop\n", 2, 1, "did you mean 'name'");

    /* a secret tag would be readable by every user of the server */
    struct val *p = yaml("server: postgres://h/db\ntags:\n  token: abc\n");
    val_mark_secret(val_get(p, "tags.token"));
    struct prov_call c = call("dev", "db", p);
    cr_assert_eq(prov_check_props(pg(), &c, NULL, &e), PE_CONFIG);
    cr_assert_not_null(strstr(e.msg, "secret"), "%s", e.msg);
    cr_assert_null(strstr(e.msg, "abc"), "%s", e.msg);
    cr_assert_eq(e.pos.line, 3);
    err_release(&e);
    val_free(p);
}

Test(postgres_database, check_never_quotes_the_password_of_a_bad_server_url)
{
    struct err e = {0};
    cr_assert_eq(check_yaml("server: \"postgres://admin:Hunter2-pw@h:notaport/db?x=1\"\n", &e),
                 PE_CONFIG);
    cr_assert_null(strstr(e.msg, "Hunter2-pw"), "%s", e.msg);
    if (e.hint)
        cr_assert_null(strstr(e.hint, "Hunter2-pw"), "%s", e.hint);
    err_release(&e);
}

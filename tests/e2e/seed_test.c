/* End to end: seeding through the engine into real SQLite and PostgreSQL
 * databases — created, migrated, seeded, not seeded again without a reason,
 * seeded again when the seed file changes, never into a protected stage —
 * and postgres.database leaving no database or role behind. */
#include "tests/testlib.h"

#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct tl_proj P;

static void fini(void)
{
    tl_proj_free(&P);
}

TestSuite(seed_e2e, .fini = fini, .timeout = 120);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)
#define OK(r)                                                                                     \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)

static const char *const SEEDS =
    "tables:\n"
    "  customers:\n"
    "    rows: 20\n"
    "    columns:\n"
    "      id: {gen: sequence}\n"
    "      name: {gen: full_name}\n"
    "      email: {gen: email, unique: true}\n"
    "  orders:\n"
    "    rows: 50\n"
    "    columns:\n"
    "      id: {gen: sequence}\n"
    "      customer_id: {gen: ref, table: customers, column: id}\n"
    "      total: {gen: money, min: 1, max: 100}\n";

static const char *const SQLITE_TPL =
    "resources:\n"
    "  db:\n"
    "    type: sqlite.database\n"
    "  migrate:\n"
    "    type: exec.command\n"
    "    properties:\n"
    "      create: [python3, -c, \"import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
    "c.executescript('create table if not exists customers(id integer primary key, name text, "
    "email text unique); create table if not exists orders(id integer primary key, customer_id "
    "integer references customers(id), total real)'); c.commit(); print('v1')\", \"${db.path}\"]\n"
    "  seed:\n"
    "    type: seed.synthetic\n"
    "    properties:\n"
    "      file: seeds/shop.yaml\n"
    "      database: ${db.url}\n"
    "      rows: ${config.rows}\n"
    "      triggers: ${migrate.stdout}\n"
    "outputs:\n"
    "  db: ${db.path}\n"
    "  seeded: ${seed.total}\n";

static long long sqlite_count(const char *env, const char *sql)
{
    char *path = xasprintf("%s/work/%s/db.db", P.state, env);
    sqlite3 *db = NULL;
    long long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    free(path);
    return n;
}

Test(seed_e2e, sqlite_is_seeded_once_and_again_only_when_its_inputs_change)
{
    tl_proj_new(&P, SQLITE_TPL, "  rows: {orders: 40}\n", NULL);
    tl_write(P.dir, "seeds/shop.yaml", SEEDS);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "seed (seed.synthetic) created in") && strstr(r.out, "60 rows"), "%s",
              r.out);
    tl_res_free(&r);
    cr_assert_eq(sqlite_count("dev", "select count(*) from customers"), 20);
    cr_assert_eq(sqlite_count("dev", "select count(*) from orders"), 40, "config overrides the file");
    cr_assert_eq(sqlite_count("dev", "select count(*) from orders where customer_id not in "
                                     "(select id from customers)"),
                 0, "every foreign key resolves");
    cr_assert_eq(sqlite_count("dev", "select count(distinct email) from customers"), 20);

    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "nothing to do"), "a second up does not seed again: %s", r.out);
    tl_res_free(&r);

    /* a user's row survives an up that changes nothing */
    char *path = xasprintf("%s/work/dev/db.db", P.state);
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "insert into customers(id, name, email) values (999, 'Kept', 'k@x')", NULL,
                 NULL, NULL);
    sqlite3_close(db);
    free(path);

    /* editing the seed file is a change */
    char *five = xstrdup(SEEDS);
    char *twenty = strstr(five, "rows: 20");
    memcpy(twenty, "rows: 05", 8);
    tl_write(P.dir, "seeds/shop.yaml", five);
    free(five);
    r = RUN("env", "plan", "dev");
    cr_assert(strstr(r.out, "fingerprint"), "the seed file's content is an input: %s", r.out);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    cr_assert_eq(sqlite_count("dev", "select count(*) from customers"), 5);

    r = RUN("seed", "dev");
    OK(r);
    cr_assert(strstr(r.out, "up to date"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("seed", "dev", "--rows", "customers=7");
    OK(r);
    cr_assert(strstr(r.out, "7 rows"), "%s", r.out);
    tl_res_free(&r);
    cr_assert_eq(sqlite_count("dev", "select count(*) from customers"), 7);
    r = RUN("env", "up", "dev", "--yes");
    cr_assert(strstr(r.out, "nothing to do"), "up keeps what `seed --rows` loaded: %s", r.out);
    tl_res_free(&r);
    cr_assert_eq(sqlite_count("dev", "select count(*) from customers"), 7);
    r = RUN("seed", "dev", "--reset");
    OK(r);
    tl_res_free(&r);
    cr_assert_eq(sqlite_count("dev", "select count(*) from customers"), 5);
}

Test(seed_e2e, the_same_seed_gives_the_same_data_and_another_seed_other_data)
{
    tl_proj_new(&P, SQLITE_TPL, "  rows: {}\n", NULL);
    tl_write(P.dir, "seeds/shop.yaml", SEEDS);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "up", "staging", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("seed", "staging", "--seed", "12345");
    OK(r);
    tl_res_free(&r);
    const char *q = "select sum(length(name) * id) + sum(length(email)) from customers";
    long long a = sqlite_count("dev", q), b = sqlite_count("staging", q);
    cr_assert_neq(a, b, "another seed gives other data");
    r = RUN("seed", "dev", "--seed", "12345");
    OK(r);
    tl_res_free(&r);
    cr_assert_eq(sqlite_count("dev", q), b, "the same seed gives the same data");
}

Test(seed_e2e, a_protected_stage_is_never_seeded_without_force)
{
    tl_proj_new(&P, SQLITE_TPL, "  rows: {}\n", NULL);
    tl_write(P.dir, "seeds/shop.yaml", SEEDS);
    struct tl_res r = RUN("env", "up", "prod", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "not seeded: the environment is protected"), "%s", r.out);
    tl_res_free(&r);
    cr_assert_eq(sqlite_count("prod", "select count(*) from customers"), 0);
    r = RUN("seed", "prod", "--reset");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "not seeding 'prod': it is protected"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("seed", "prod", "--reset", "--force");
    OK(r);
    tl_res_free(&r);
    cr_assert_eq(sqlite_count("prod", "select count(*) from customers"), 20);
    r = RUN("env", "destroy", "prod", "--yes", "--unprotect");
    OK(r);
    tl_res_free(&r);
}

Test(seed_e2e, a_schema_mismatch_names_the_table_and_column)
{
    tl_proj_new(&P, SQLITE_TPL, "  rows: {}\n", NULL);
    tl_write(P.dir, "seeds/shop.yaml",
             "tables:\n  customers:\n    columns:\n      id: {gen: sequence}\n"
             "      nmae: {gen: full_name}\n");
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "seed column 'customers.nmae' does not exist in the database table "
                            "(did you mean 'name'?)"),
              "%s", r.err);
    tl_res_free(&r);
}

/* ---- PostgreSQL ---- */

static const char *pg_url(void)
{
    const char *u = getenv("PRENV_TEST_PG_URL");
    if (!u || !*u) {
        const char *req = getenv("PRENV_TEST_PG_REQUIRED");
        if (req && !strcmp(req, "1"))
            cr_assert_fail("PRENV_TEST_PG_URL is not set; scripts/run-tests.sh starts a server");
        cr_skip_test("no PostgreSQL test server: run `eval \"$(scripts/pg-test-server.sh start)\"` "
                     "first, or use scripts/run-tests.sh");
    }
    return u;
}

static long long pg_scalar(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    long long n = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    PQfinish(c);
    return n;
}

Test(seed_e2e, postgres_env_is_created_migrated_seeded_and_leaves_nothing_when_destroyed)
{
    const char *url = pg_url();
    char *base = xasprintf("  pg_server: '%s'\n  rows: {orders: 30}\n", url);
    tl_proj_new(&P,
                "resources:\n"
                "  db:\n"
                "    type: postgres.database\n"
                "    properties:\n"
                "      server: ${config.pg_server}\n"
                "      tags: ${env.tags}\n"
                "  migrate:\n"
                "    type: exec.command\n"
                "    properties:\n"
                "      create: [psql, '${db.url}', -q, -v, ON_ERROR_STOP=1, -c, 'create table if "
                "not exists customers(id int primary key, name text, email text unique); create "
                "table if not exists orders(id int primary key, customer_id int references "
                "customers(id), total numeric)', -c, 'select 1']\n"
                "  seed:\n"
                "    type: seed.synthetic\n"
                "    depends_on: [migrate]\n"
                "    properties:\n"
                "      file: seeds/shop.yaml\n"
                "      database: ${db.url}\n"
                "      rows: ${config.rows}\n"
                "outputs:\n"
                "  db: ${db.name}\n",
                base, NULL);
    free(base);
    tl_write(P.dir, "seeds/shop.yaml", SEEDS);
    struct tl_res r = RUN("env", "up", "pr-7", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "50 rows"), "%s", r.out);
    cr_assert_null(strstr(r.out, "password"), "no password in the plan or progress: %s", r.out);
    tl_res_free(&r);
    r = RUN("env", "show", "pr-7", "--json");
    char *name = tl_json_str(r.out, "outputs.db");
    cr_assert_not_null(name);
    cr_assert(strstr(r.out, "\"password\":\"[secret]\""), "%s", r.out);
    tl_res_free(&r);
    /* connect as the admin to the env's database and check the rows */
    char *dburl = xasprintf("%s", url);
    char *slash = strrchr(dburl, '/');
    *slash = 0;
    char *envdb = xasprintf("%s/%s", dburl, name);
    cr_assert_eq(pg_scalar(envdb, "select count(*) from customers"), 20);
    cr_assert_eq(pg_scalar(envdb, "select count(*) from orders"), 30);
    cr_assert_eq(pg_scalar(envdb, "select count(*) from orders o left join customers c on "
                                  "c.id = o.customer_id where c.id is null"),
                 0);
    r = RUN("env", "up", "pr-7", "--yes");
    cr_assert(strstr(r.out, "nothing to do"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "destroy", "pr-7", "--yes");
    OK(r);
    tl_res_free(&r);
    char *q = xasprintf("select count(*) from pg_database where datname = '%s'", name);
    cr_assert_eq(pg_scalar(url, q), 0, "no database left");
    free(q);
    q = xasprintf("select count(*) from pg_roles where rolname = '%s'", name);
    cr_assert_eq(pg_scalar(url, q), 0, "no role left");
    free(q);
    free(envdb);
    free(dburl);
    free(name);
}

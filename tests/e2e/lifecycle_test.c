/* End to end: sleep and wake keep the data and free the processes; an asleep
 * env stays asleep through up; extend respects max_ttl; stages never expire. */
#include "tests/testlib.h"

#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct tl_proj P;

static void fini(void)
{
    tl_proj_free(&P);
}

TestSuite(lifecycle, .fini = fini, .timeout = 120);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)
#define OK(r)                                                                                     \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)

static const char *const TPL =
    "resources:\n"
    "  db:\n"
    "    type: sqlite.database\n"
    "  init:\n"
    "    type: exec.command\n"
    "    properties:\n"
    "      create: [python3, -c, \"import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
    "c.execute('create table if not exists t(x)'); c.execute('insert into t values (42)'); "
    "c.commit()\", \"${db.path}\"]\n"
    "  web:\n"
    "    type: process.service\n"
    "    depends_on: [init]\n"
    "    properties:\n"
    "      command: [python3, \"${project.dir}/app.py\"]\n"
    "      replicas: 2\n"
    "      env: {DATABASE_URL: \"${db.url}\"}\n"
    "      health: {http: /healthz, timeout: 30s}\n"
    "outputs:\n"
    "  url: ${web.url}\n";

static char *status_of(const char *env)
{
    struct tl_res r = RUN("env", "show", env, "--json");
    char *s = tl_json_str(r.out, "status");
    tl_res_free(&r);
    return s;
}

Test(lifecycle, sleep_frees_every_process_and_wake_brings_them_back_with_the_same_data)
{
    tl_proj_new(&P, TPL, NULL, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 2);
    r = RUN("env", "sleep", "dev");
    OK(r);
    tl_res_free(&r);
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 0, "asleep means no process");
    cr_assert_eq(tl_leases(&P), 0, "and no port held");
    char *st = status_of("dev");
    cr_assert_str_eq(st, "asleep");
    free(st);
    r = RUN("env", "show", "dev", "--json");
    cr_assert(strstr(r.out, "\"asleep\": \"manual\""), "%s", r.out);
    tl_res_free(&r);
    /* an up while asleep applies changes but stays asleep */
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 0);
    st = status_of("dev");
    cr_assert_str_eq(st, "asleep");
    free(st);
    r = RUN("env", "wake", "dev");
    OK(r);
    tl_res_free(&r);
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 2);
    r = RUN("env", "show", "dev", "--json");
    long long port = tl_json_int(r.out, "resources.2.outputs.port");
    cr_assert(strstr(r.out, "\"asleep\": null"), "%s", r.out);
    tl_res_free(&r);
    char *body = NULL;
    cr_assert_eq(tl_http_get((int)port, "/healthz", NULL), 200);
    free(body);
    char *db = xasprintf("%s/work/dev/db.db", P.state);
    cr_assert(tl_exists(db), "the database stayed");
    free(db);
    st = status_of("dev");
    cr_assert_str_eq(st, "up");
    free(st);
    r = RUN("env", "show", "dev");
    cr_assert(strstr(r.out, "sleep") && strstr(r.out, "wake"), "history: %s", r.out);
    tl_res_free(&r);
}

Test(lifecycle, extend_moves_the_expiry_within_max_ttl_and_stages_never_expire)
{
    tl_proj_new(&P, "resources:\n  a:\n    type: file.render\n    properties: {path: a, content: x}\n",
                NULL, NULL);
    struct tl_res r = RUN("pr", "open", "5", "--sha", "abc");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "show", "pr-5", "--json");
    char *before = tl_json_str(r.out, "expires");
    tl_res_free(&r);
    cr_assert_not_null(before, "previews expire (ttl 72h)");
    r = RUN("env", "extend", "pr-5", "--by", "24h");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "show", "pr-5", "--json");
    char *after = tl_json_str(r.out, "expires");
    tl_res_free(&r);
    cr_assert(strcmp(after, before) > 0, "%s !> %s", after, before);
    free(before);
    free(after);
    r = RUN("env", "extend", "pr-5", "--by", "60d");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "at most 30d from creation (max_ttl)"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "extend", "pr-5", "--until", "2000-01-01T00:00:00Z");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "in the past"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes", "--ttl", "2h");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "stages never expire"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "extend", "pr-5");
    cr_assert_eq(r.code, 2);
    tl_res_free(&r);
}

/* End to end: drift. `env refresh --expect-no-changes` exits 3 when a stage's
 * database file is deleted and when its service is killed; a protected stage
 * is not destroyed without --unprotect; and `prenv serve` with
 * serve.refresh_interval: 1s finds the same drift by itself and shows it in
 * /metrics, in /api/v1/envs and in its log. */
#include "tests/testlib.h"

#include "core/lib/xalloc.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const TPL = "resources:\n"
                               "  db:\n"
                               "    type: sqlite.database\n"
                               "  web:\n"
                               "    type: process.service\n"
                               "    properties:\n"
                               "      command: [python3, \"${project.dir}/app.py\"]\n"
                               "      env: {DATABASE_URL: \"${db.url}\"}\n"
                               "      health: {http: /healthz, timeout: 30s}\n"
                               "      stop_timeout: 5s\n"
                               "outputs:\n"
                               "  url: ${web.url}\n";

static struct tl_proj P;
static int server_pid;
static char *logfile;

static void fini(void)
{
    tl_stop_pid(&server_pid, SIGTERM);
    tl_proj_free(&P);
    if (logfile)
        unlink(logfile);
    free(logfile);
    logfile = NULL;
}

TestSuite(drift, .fini = fini, .timeout = 180);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)
#define OK(r)                                                                                      \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)

static void ok(struct tl_res r)
{
    OK(r);
    tl_res_free(&r);
}

/* the sqlite file of env's resource db */
static char *db_path(const char *env)
{
    struct tl_res r = RUN("env", "show", env, "--json");
    OK(r);
    cJSON *j = cJSON_Parse(r.out);
    const cJSON *x, *res = cJSON_GetObjectItemCaseSensitive(j, "resources");
    char *path = NULL;
    cJSON_ArrayForEach(x, res)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(x, "name");
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(x, "outputs");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, "db") && cJSON_IsString(p))
            path = xstrdup(p->valuestring);
    }
    cJSON_Delete(j);
    tl_res_free(&r);
    cr_assert(path, "no db path in env show --json");
    return path;
}

/* kill the supervisor and the application of env's web replica 0 */
static void kill_web(const char *env)
{
    char *pf = xasprintf("%s/run/%s/web.0.json", P.state, env);
    char *t = tl_read(pf);
    cr_assert(t, "no pid file %s", pf);
    long long sup = tl_json_int(t, "supervisor_pid"), app = tl_json_int(t, "pid");
    cr_assert(sup > 1 && app > 1, "%s", t);
    kill((pid_t)sup, SIGKILL);
    kill((pid_t)app, SIGKILL);
    tl_wait_pid((int)sup, 100);
    free(t);
    free(pf);
}

static int refresh_code(const char *env)
{
    struct tl_res r = RUN("env", "refresh", env, "--expect-no-changes");
    int code = r.code;
    if (code == 3)
        cr_assert(strstr(r.out, "drifted"), "%s", r.out);
    tl_res_free(&r);
    return code;
}

Test(drift, refresh_exits_3_after_a_deleted_database_and_a_killed_service)
{
    tl_proj_new(&P, TPL, NULL, NULL);
    ok(RUN("env", "up", "dev", "--yes"));
    cr_assert_eq(refresh_code("dev"), 0);
    char *db = db_path("dev");
    cr_assert_eq(unlink(db), 0, "%s", db);
    cr_assert_eq(refresh_code("dev"), 3, "a deleted database is drift");
    /* the refresh recorded it (the database left the state); put it back */
    ok(RUN("env", "up", "dev", "--yes"));
    cr_assert_eq(refresh_code("dev"), 0);
    kill_web("dev");
    cr_assert_eq(refresh_code("dev"), 3, "a killed service is drift");
    ok(RUN("env", "up", "dev", "--yes"));
    cr_assert_eq(refresh_code("dev"), 0);
    free(db);
}

Test(drift, refresh_writes_nothing_unless_asked_and_reports_each_resource)
{
    tl_proj_new(&P, TPL, NULL, NULL);
    ok(RUN("env", "up", "dev", "--yes"));
    char *db = db_path("dev");
    cr_assert_eq(unlink(db), 0, "%s", db);
    char *sf = xasprintf("%s/state/dev.json", P.state);
    char *before = tl_read(sf);
    cr_assert(before, "no state file %s", sf);
    struct tl_res r = RUN("env", "refresh", "dev", "--json");
    OK(r);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j, "%s", r.out);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(j, "drift")->valueint, 1, "%s", r.out);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "written")), "%s", r.out);
    const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "drifted"), 0);
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(d0, "resource")->valuestring, "db");
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(d0, "detail")->valuestring,
                     "no longer exists");
    cJSON_Delete(j);
    tl_res_free(&r);
    r = RUN("env", "refresh", "dev");
    OK(r);
    cr_assert(strstr(r.out, "db (sqlite.database): no longer exists"), "%s", r.out);
    cr_assert(strstr(r.out, "nothing written"), "%s", r.out);
    tl_res_free(&r);
    char *after = tl_read(sf);
    cr_assert_str_eq(after, before, "a refresh without --write changed the state");
    free(after);
    r = RUN("env", "refresh", "dev", "--write", "--json");
    OK(r);
    cr_assert(strstr(r.out, "\"written\":true"), "%s", r.out);
    tl_res_free(&r);
    after = tl_read(sf);
    cr_assert(strcmp(after, before) != 0, "--write records the drift");
    free(after);
    r = RUN("env", "show", "dev", "--json");
    OK(r);
    cr_assert(strstr(r.out, "\"name\": \"web\""), "%s", r.out);
    cr_assert(!strstr(r.out, "\"name\": \"db\""), "the gone database left the state:\n%s",
              r.out);
    tl_res_free(&r);
    free(before);
    free(sf);
    free(db);
}

Test(drift, a_protected_stage_is_destroyed_only_with_unprotect)
{
    tl_proj_new(&P, TPL, NULL, NULL);
    ok(RUN("env", "up", "prod", "--yes"));
    struct tl_res r = RUN("env", "destroy", "prod", "--yes");
    cr_assert_eq(r.code, 1, "exit %d\n%s\n%s", r.code, r.out, r.err);
    cr_assert(strstr(r.err, "--unprotect"), "the refusal names the flag:\n%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "list");
    cr_assert(strstr(r.out, "prod"), "prod is still there:\n%s", r.out);
    tl_res_free(&r);
    ok(RUN("env", "destroy", "prod", "--yes", "--unprotect"));
}

static int port;

static bool metrics_show(void *ctx)
{
    char *body = NULL;
    tl_http_get(port, "/metrics", &body);
    bool hit = body && strstr(body, (const char *)ctx);
    free(body);
    return hit;
}

Test(drift, the_daemon_finds_drift_in_stages_by_itself)
{
    tl_proj_new(&P, TPL, NULL, "serve:\n  refresh_interval: 1s\n");
    ok(RUN("env", "up", "dev", "--yes"));
    port = P.port_hi;
    logfile = xasprintf("%s.serve.log", P.dir);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    server_pid = tl_spawn(&P, (const char *const[]){"serve", "--listen", listen, NULL},
                          (const char *const[]){"PRENV_API_TOKEN=tok", NULL}, logfile);
    cr_assert(tl_wait_http(port, "/healthz", 15000), "the server did not start:\n%s",
              tl_read(logfile));
    cr_assert(tl_until(metrics_show, "prenv_env_drift{env=\"dev\"} 0", 30000),
              "no drift check of dev:\n%s", tl_read(logfile));
    cr_assert(metrics_show("prenv_env_refreshed_timestamp_seconds{env=\"dev\"} "));
    cr_assert(!metrics_show("env=\"staging\""), "staging has no state: not checked");
    char *db = db_path("dev");
    cr_assert_eq(unlink(db), 0);
    kill_web("dev");
    cr_assert(tl_until(metrics_show, "prenv_env_drift{env=\"dev\"} 2", 30000),
              "the drift was not found:\n%s", tl_read(logfile));
    /* the API shows it; the state is left as it was (read-only) */
    char *resp = NULL;
    const char *hs[] = {"Authorization: Bearer tok", NULL};
    cr_assert_eq(tl_http(port, "GET", "/api/v1/envs", hs, "", 0, &resp), 200);
    cr_assert(resp && strstr(resp, "\"drift\": 2") && strstr(resp, "\"refreshed\": \""), "%s",
              resp);
    free(resp);
    struct tl_res r = RUN("env", "show", "dev", "--json");
    cr_assert(strstr(r.out, "\"db\""), "the daemon's check wrote nothing:\n%s", r.out);
    tl_res_free(&r);
    char *log = tl_read(logfile);
    cr_assert(strstr(log, "resource=db") && strstr(log, "resource=web") &&
                  strstr(log, "drift: a resource differs"),
              "a warn line per drifted resource:\n%s", log);
    free(log);
    /* an up puts it back; the next check finds nothing */
    ok(RUN("env", "up", "dev", "--yes"));
    cr_assert(tl_until(metrics_show, "prenv_env_drift{env=\"dev\"} 0", 30000),
              "drift stayed after the up:\n%s", tl_read(logfile));
    /* the refresh timer closes with the rest */
    kill(server_pid, SIGTERM);
    cr_assert_geq(tl_wait_pid(server_pid, 30000), 0);
    server_pid = 0;
    log = tl_read(logfile);
    cr_assert(strstr(log, "prenv serve stopped\" clean=yes"), "%s", log);
    cr_assert_null(strstr(log, "Sanitizer"), "%s", log);
    free(log);
    free(db);
}

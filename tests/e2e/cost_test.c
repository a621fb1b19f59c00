/* End to end: the tag taxonomy (state, replicas' environment, env list) and
 * `prenv cost` over histories written with chosen times, so the arithmetic
 * is exact. */
#include "tests/testlib.h"

#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a service that writes its PRENV_TAG_* variables to tags.txt (atomically)
 * and then waits to be stopped */
static const char *const TAG_TPL =
    "resources:\n"
    "  db:\n"
    "    type: sqlite.database\n"
    "  web:\n"
    "    type: process.service\n"
    "    properties:\n"
    "      command: [python3, -c, \"import os, time; o = os.environ['OUT']; "
    "open(o + '.tmp', 'w').write(''.join(sorted(k + '=' + v + chr(10) for k, v in "
    "os.environ.items() if k.startswith('PRENV_TAG_')))); os.rename(o + '.tmp', o); "
    "time.sleep(3600)\"]\n"
    "      env: {OUT: \"${env.work_dir}/tags.txt\"}\n"
    "      stop_timeout: 2s\n";

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

TestSuite(cost, .fini = fini, .timeout = 120);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)
#define OK(r)                                                                                      \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)

static bool tags_written(void *ctx)
{
    return tl_exists(ctx);
}

Test(cost, taxonomy_tags_reach_state_replicas_and_env_list)
{
    tl_proj_new(&P, TAG_TPL, "  tags: {CostCenter: cc-1, data_class: synthetic}\n", NULL);
    tl_write(P.dir, "envs/staging.yaml", "imports: [base]\nvalues:\n  tags: {CostCenter: cc-2}\n");
    struct tl_res r = RUN("env", "up", "dev", "--yes", "--owner", "alice");
    OK(r);
    cr_assert(!strstr(r.err, "has no CostCenter"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "show", "dev", "--json");
    OK(r);
    static const char *const want[][2] = {
        {"tags.Environment", "dev"}, {"tags.Application", "test"},    {"tags.Owner", "alice"},
        {"tags.CostCenter", "cc-1"}, {"tags.DataClass", "synthetic"}, {"tags.team", "qa"},
        {"tags.env", "dev"},         {"tags.owner", "alice"},         {"tags.project", "test"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char *v = tl_json_str(r.out, want[i][0]);
        cr_assert(v && !strcmp(v, want[i][1]), "%s is %s, not %s\n%s", want[i][0], v ? v : "(none)",
                  want[i][1], r.out);
        free(v);
    }
    tl_res_free(&r);
    /* the replica's environment */
    char *path = xasprintf("%s/work/dev/tags.txt", P.state);
    cr_assert(tl_until(tags_written, path, 20000), "the replica wrote no %s", path);
    char *txt = tl_read(path);
    static const char *const lines[] = {
        "PRENV_TAG_APPLICATION=test\n",
        "PRENV_TAG_COSTCENTER=cc-1\n",
        "PRENV_TAG_DATACLASS=synthetic\n",
        "PRENV_TAG_DATA_CLASS=synthetic\n",
        "PRENV_TAG_ENVIRONMENT=dev\n",
        "PRENV_TAG_OWNER=alice\n",
        "PRENV_TAG_TEAM=qa\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        cr_assert(strstr(txt, lines[i]), "no %s in:\n%s", lines[i], txt);
    free(txt);
    free(path);
    /* a later layer wins, the rest merges */
    r = RUN("env", "up", "staging", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "show", "staging", "--json");
    OK(r);
    char *cc = tl_json_str(r.out, "tags.CostCenter");
    char *dc = tl_json_str(r.out, "tags.DataClass");
    cr_assert(cc && !strcmp(cc, "cc-2"), "%s", r.out);
    cr_assert(dc && !strcmp(dc, "synthetic"), "%s", r.out);
    free(cc);
    free(dc);
    tl_res_free(&r);
    /* env list filters on taxonomy tags; keys are case-sensitive */
    r = RUN("env", "list", "--tag", "CostCenter=cc-1");
    OK(r);
    cr_assert(strstr(r.out, "dev ") && !strstr(r.out, "staging"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "list", "--tag", "costcenter=cc-1");
    OK(r);
    cr_assert(!strstr(r.out, "dev "), "%s", r.out);
    tl_res_free(&r);
    /* history records what runs, so cost has counts for live envs */
    r = RUN("cost", "--by", "CostCenter", "--json");
    OK(r);
    cr_assert(strstr(r.out, "\"key\": \"cc-1\", \"envs\": 1") &&
                  strstr(r.out, "\"key\": \"cc-2\", \"envs\": 1"),
              "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "show", "dev", "--json");
    OK(r);
    cr_assert(strstr(r.out, "\"databases\":1") && strstr(r.out, "\"asleep\":false"), "%s", r.out);
    tl_res_free(&r);
    /* a sleep is recorded as such, with what would run */
    r = RUN("env", "sleep", "dev");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "show", "dev", "--json", "--history", "1");
    OK(r);
    cr_assert(strstr(r.out, "\"operation\":\"sleep\"") &&
                  strstr(r.out, "\"replicas\":{\"default\":1},\"databases\":1,\"asleep\":true"),
              "%s", r.out);
    tl_res_free(&r);
    /* destroying keeps the tags with the history, for later reports */
    r = RUN("env", "destroy", "staging", "--yes");
    OK(r);
    tl_res_free(&r);
    char *audit = xasprintf("%s/history/destroyed.jsonl", P.state);
    txt = tl_read(audit);
    cr_assert(txt && strstr(txt, "\"tags\": {") && strstr(txt, "\"CostCenter\":\"cc-2\""), "%s",
              txt ? txt : "(none)");
    free(txt);
    free(audit);
}

Test(cost, missing_cost_center_is_a_warning_on_up)
{
    tl_proj_new(&P, "resources: {}\n", NULL, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.err, "warning: dev has no CostCenter tag") &&
                  strstr(r.err, "warning: dev has no DataClass tag"),
              "%s", r.err);
    tl_res_free(&r);
}

/* two destroyed envs, written with chosen times:
 * pr-1 (CostCenter a): 2 default replicas and a database; up 00:00, asleep
 *   04:00-10:00, destroyed 12:00: 6 h running at 1.25/h, 6 h asleep at 0.25/h,
 *   cost 7.5 + 1.5 = 9, saved 6 h x 1.00 = 6;
 * pr-2 (CostCenter b): an old record without counts at 00:00 (it takes the
 *   next record's: 1 large replica, 2/h), a failed record (ignored), up again
 *   02:00, destroyed 03:00: 3 h running, cost 6. */
static const char *const DESTROYED =
    "{\"env\": \"pr-1\", \"tags\": {\"CostCenter\": \"a\", \"Owner\": \"bob\"}, \"history\": ["
    "{\"time\": \"2026-01-01T00:00:00Z\", \"operation\": \"up\", \"result\": \"ok\", "
    "\"replicas\": {\"default\": 2}, \"databases\": 1, \"asleep\": false},"
    "{\"time\": \"2026-01-01T04:00:00Z\", \"operation\": \"sleep\", \"result\": \"ok\", "
    "\"replicas\": {\"default\": 2}, \"databases\": 1, \"asleep\": true},"
    "{\"time\": \"2026-01-01T10:00:00Z\", \"operation\": \"wake\", \"result\": \"ok\", "
    "\"replicas\": {\"default\": 2}, \"databases\": 1, \"asleep\": false},"
    "{\"time\": \"2026-01-01T12:00:00Z\", \"operation\": \"destroy\", \"result\": \"ok\"}]}\n"
    "{\"env\": \"pr-2\", \"tags\": {\"CostCenter\": \"b\"}, \"history\": ["
    "{\"time\": \"2026-01-01T00:00:00Z\", \"operation\": \"up\", \"result\": \"ok\"},"
    "{\"time\": \"2026-01-01T01:00:00Z\", \"operation\": \"up\", \"result\": \"failed\", "
    "\"replicas\": {\"default\": 50}, \"databases\": 9},"
    "{\"time\": \"2026-01-01T02:00:00Z\", \"operation\": \"up\", \"result\": \"ok\", "
    "\"replicas\": {\"large\": 1}, \"databases\": 0, \"asleep\": false},"
    "{\"time\": \"2026-01-01T03:00:00Z\", \"operation\": \"destroy\", \"result\": \"ok\"}]}\n";

/* an env with nothing in it leaves no state: a database makes one */
static const char *const DB_TPL = "resources:\n  db:\n    type: sqlite.database\n";

static void cost_proj(void)
{
    tl_proj_new(&P, DB_TPL, NULL,
                "cost: {currency: EUR, replica_hour: {default: 0.5, large: 2}, "
                "database_hour: 0.25}\n");
    tl_write(P.dir, ".prenv/history/destroyed.jsonl", DESTROYED);
}

Test(cost, known_history_gives_exact_cost_and_savings)
{
    cost_proj();
    struct tl_res r = RUN("cost", "--json", "--until", "2026-01-02T00:00:00Z");
    OK(r);
    cr_assert(strstr(r.out, "\"currency\": \"EUR\",\n  \"rate_card\": true"), "%s", r.out);
    cr_assert(strstr(r.out, "\"env\": \"pr-1\", \"destroyed\": true"), "%s", r.out);
    cr_assert(strstr(r.out, "\"running_hours\": 6, \"asleep_hours\": 6, \"cost\": 9, "
                            "\"saved\": 6}"),
              "%s", r.out);
    cr_assert(strstr(r.out, "\"running_hours\": 3, \"asleep_hours\": 0, \"cost\": 6, "
                            "\"saved\": 0}"),
              "%s", r.out);
    cr_assert(strstr(r.out, "\"total\": {\"running_hours\": 9, \"asleep_hours\": 6, "
                            "\"cost\": 15, \"saved\": 6}"),
              "%s", r.out);
    tl_res_free(&r);
    /* the last 6 hours before noon: pr-1 asleep 06:00-10:00, up 10:00-12:00;
     * pr-2 was gone */
    r = RUN("cost", "--json", "--since", "6h", "--until", "2026-01-01T12:00:00Z");
    OK(r);
    cr_assert(strstr(r.out, "\"since\": \"2026-01-01T06:00:00Z\""), "%s", r.out);
    cr_assert(strstr(r.out, "\"running_hours\": 2, \"asleep_hours\": 4, \"cost\": 3.5, "
                            "\"saved\": 4}"),
              "%s", r.out);
    cr_assert(!strstr(r.out, "pr-2"), "%s", r.out);
    tl_res_free(&r);
    /* the table */
    r = RUN("cost", "--until", "2026-01-02T00:00:00Z");
    OK(r);
    cr_assert(strstr(r.out, "pr-1 (destroyed)"), "%s", r.out);
    cr_assert(strstr(r.out, "COST EUR") && strstr(r.out, " 9.00 ") && strstr(r.out, " 15.00 "),
              "%s", r.out);
    tl_res_free(&r);
}

Test(cost, an_unreadable_state_or_missing_history_counts_nothing_and_fails_nothing)
{
    cost_proj();
    tl_write(P.dir, ".prenv/state/broken.json", "not json");
    struct tl_res r = RUN("cost", "--json", "--until", "2026-01-02T00:00:00Z");
    OK(r);
    cr_assert(strstr(r.out, "{\"env\": \"broken\", \"destroyed\": false, \"tags\": {}, "
                            "\"running_hours\": 0, \"asleep_hours\": 0, \"cost\": 0, "
                            "\"saved\": 0}"),
              "%s", r.out);
    cr_assert(strstr(r.out, "\"total\": {\"running_hours\": 9, \"asleep_hours\": 6, "
                            "\"cost\": 15, \"saved\": 6}"),
              "%s", r.out);
    tl_res_free(&r);
}

Test(cost, by_tag_groups_and_bad_options_are_usage_errors)
{
    cost_proj();
    struct tl_res r =
        RUN("cost", "--json", "--by", "CostCenter", "--until", "2026-01-02T00:00:00Z");
    OK(r);
    cr_assert(strstr(r.out, "{\"key\": \"a\", \"envs\": 1, \"running_hours\": 6, "
                            "\"asleep_hours\": 6, \"cost\": 9, \"saved\": 6}"),
              "%s", r.out);
    cr_assert(strstr(r.out, "{\"key\": \"b\", \"envs\": 1, \"running_hours\": 3, "
                            "\"asleep_hours\": 0, \"cost\": 6, \"saved\": 0}"),
              "%s", r.out);
    tl_res_free(&r);
    /* an env without the tag is "(none)" */
    r = RUN("cost", "--by", "Owner", "--until", "2026-01-02T00:00:00Z");
    OK(r);
    cr_assert(strstr(r.out, "bob ") && strstr(r.out, "(none) "), "%s", r.out);
    tl_res_free(&r);
    r = RUN("cost", "--since", "5x");
    cr_assert_eq(r.code, 2, "%s", r.err);
    cr_assert(strstr(r.err, "--since: invalid duration '5x'"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("cost", "--by", "costcenter");
    cr_assert_eq(r.code, 2, "%s", r.err);
    cr_assert(strstr(r.err, "no environment has a tag 'costcenter'"), "%s", r.err);
    cr_assert(strstr(r.err, "usage: prenv cost"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("cost", "--until", "yesterday");
    cr_assert_eq(r.code, 2, "%s", r.err);
    tl_res_free(&r);
}

Test(cost, bad_rate_card_points_at_the_line)
{
    tl_proj_new(&P, "resources: {}\n", NULL, "cost: {replica_hour: {default: cheap}}\n");
    struct tl_res r = RUN("cost");
    cr_assert_eq(r.code, 1, "%s", r.err);
    cr_assert(strstr(r.err, "'cost.replica_hour.default' must be a number"), "%s", r.err);
    tl_res_free(&r);
}

/* a live env's history, written over the one `env up` left: 1 replica and a
 * database, up 00:00, asleep from 02:00; at 06:00 that is 2 h running at
 * 0.75/h and 4 h asleep at 0.25/h: cost 1.5 + 1 = 2.5, saved 4 h x 0.5 = 2 */
static const char *const LIVE =
    "{\"time\": \"2026-01-01T00:00:00Z\", \"operation\": \"up\", \"result\": \"ok\", "
    "\"replicas\": {\"default\": 1}, \"databases\": 1, \"asleep\": false}\n"
    "{\"time\": \"2026-01-01T02:00:00Z\", \"operation\": \"sleep\", \"result\": \"ok\", "
    "\"replicas\": {\"default\": 1}, \"databases\": 1, \"asleep\": true}\n";

static char *cost_api(const char *path, int want)
{
    char *body = NULL;
    int st = tl_http(P.port_hi, "GET", path, NULL, NULL, 0, &body);
    cr_assert_eq(st, want, "GET %s: %d, not %d\n%s", path, st, want, body ? body : "");
    return body;
}

Test(cost, api_answers_the_same_report)
{
    cost_proj();
    /* the dashboard's cost columns: GET /api/v1/cost has a row per live env */
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    tl_write(P.dir, ".prenv/history/dev.jsonl", LIVE);
    logfile = xasprintf("%s/serve.log", P.dir);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", P.port_hi);
    server_pid = tl_spawn(&P, (const char *const[]){"serve", "--listen", listen, NULL},
                          (const char *const[]){"PRENV_GITHUB_WEBHOOK_SECRET=s", NULL}, logfile);
    cr_assert(tl_wait_http(P.port_hi, "/healthz", 15000), "the server did not start:\n%s",
              tl_read(logfile));
    char *body = NULL;
    cr_assert_eq(tl_http(P.port_hi, "GET", "/api/v1/cost?by=CostCenter", NULL, NULL, 0, &body), 200,
                 "%s", body);
    cr_assert(strstr(body, "\"by\": \"CostCenter\"") &&
                  strstr(body, "{\"key\": \"a\", \"envs\": 1, \"running_hours\": 6, "
                               "\"asleep_hours\": 6, \"cost\": 9, \"saved\": 6}"),
              "%s", body);
    free(body);
    body = NULL;
    cr_assert_eq(tl_http(P.port_hi, "GET", "/api/v1/cost?since=soon", NULL, NULL, 0, &body), 400,
                 "%s", body);
    cr_assert(strstr(body, "invalid duration 'soon'"), "%s", body);
    free(body);
    body = NULL;
    cr_assert_eq(tl_http(P.port_hi, "GET", "/api/v1/cost?by=nope", NULL, NULL, 0, &body), 400, "%s",
                 body);
    free(body);
    /* what the page asks for: per env, live and destroyed, with the card */
    body = cost_api("/api/v1/cost?until=2026-01-01T06:00:00Z", 200);
    cr_assert(strstr(body, "\"currency\": \"EUR\",\n  \"rate_card\": true,"), "%s", body);
    cr_assert(strstr(body, "{\"env\": \"dev\", \"destroyed\": false, \"tags\": {") &&
                  strstr(body, "\"running_hours\": 2, \"asleep_hours\": 4, \"cost\": 2.5, "
                               "\"saved\": 2}"),
              "%s", body);
    /* pr-1 at 06:00: 4 h running, 2 h asleep: 5 + 0.5, saved 2; pr-2 as before */
    cr_assert(strstr(body, "{\"env\": \"pr-1\", \"destroyed\": true,") &&
                  strstr(body, "\"total\": {\"running_hours\": 9, \"asleep_hours\": 6, "
                               "\"cost\": 14, \"saved\": 4}"),
              "%s", body);
    free(body);
    /* a browser sends the colons encoded */
    body = cost_api("/api/v1/cost?until=2026-01-01T06%3A00%3A00Z", 200);
    cr_assert(strstr(body, "\"until\": \"2026-01-01T06:00:00Z\""), "%s", body);
    free(body);
    body = cost_api("/api/v1/cost?until=tomorrow", 400);
    cr_assert(strstr(body, "until: expects an RFC 3339 time") && strstr(body, "'tomorrow'"), "%s",
              body);
    free(body);
}

Test(cost, api_without_a_rate_card_says_so)
{
    tl_proj_new(&P, DB_TPL, NULL, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    /* the CLI prints its table, and says why it is all zeros */
    r = RUN("cost");
    OK(r);
    cr_assert(strstr(r.err, "no cost: rate card"), "%s", r.err);
    cr_assert(strstr(r.out, "dev"), "%s", r.out);
    tl_res_free(&r);
    logfile = xasprintf("%s/serve.log", P.dir);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", P.port_hi);
    server_pid = tl_spawn(&P, (const char *const[]){"serve", "--listen", listen, NULL},
                          (const char *const[]){"PRENV_GITHUB_WEBHOOK_SECRET=s", NULL}, logfile);
    cr_assert(tl_wait_http(P.port_hi, "/healthz", 15000), "the server did not start:\n%s",
              tl_read(logfile));
    /* the page shows no cost columns (only a hint) when rate_card is false */
    char *body = cost_api("/api/v1/cost", 200);
    cr_assert(strstr(body, "\"currency\": \"\",\n  \"rate_card\": false,") &&
                  strstr(body, "{\"env\": \"dev\", \"destroyed\": false,"),
              "%s", body);
    free(body);
}

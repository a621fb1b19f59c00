/* End to end: sleep and wake keep the data and free the processes; an asleep
 * env stays asleep through up; extend respects max_ttl; stages never expire. */
#include "tests/testlib.h"

#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- the reaper, as `prenv reap`, with a controllable clock ---- */

static const char *const FILE_TPL =
    "resources:\n  a:\n    type: file.render\n    properties: {path: a, content: x}\n";

/* an instant as TIME for --at */
static char *at_text(long long ms)
{
    struct sb b;
    sb_init(&b);
    tm_rfc3339(&b, ms);
    return sb_steal(&b);
}

static long long created_of(const char *env)
{
    struct tl_res r = RUN("env", "show", env, "--json");
    char *c = tl_json_str(r.out, "created");
    tl_res_free(&r);
    long long ms = 0;
    cr_assert(c && tm_parse_rfc3339(c, &ms), "created: %s", c);
    free(c);
    return ms;
}

/* the decisions `prenv reap --dry-run --at T` prints for env, "" if none */
static char *decided(long long at, const char *env)
{
    char *t = at_text(at);
    struct tl_res r = RUN("reap", "--dry-run", "--at", t, "--json");
    free(t);
    OK(r);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert_not_null(j, "%s", r.out);
    struct sb b;
    sb_init(&b);
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(j, "decisions"))
    {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(d, "env")->valuestring, env))
            continue;
        sb_addf(&b, "%s%s: %s", b.len ? "; " : "",
                cJSON_GetObjectItemCaseSensitive(d, "action")->valuestring,
                cJSON_GetObjectItemCaseSensitive(d, "why")->valuestring);
    }
    cJSON_Delete(j);
    tl_res_free(&r);
    return sb_steal(&b);
}

#define DECIDES(at, env, want)                                                                  \
    do {                                                                                        \
        char *got_ = decided((at), (env));                                                      \
        cr_assert(!strncmp(got_, (want), strlen(want)) && (*(want) || !*got_),                 \
                  "%s at %lld: got '%s', want '%s...'", (env), (long long)(at), got_, (want)); \
        free(got_);                                                                             \
    } while (0)

/* the next Saturday 12:00 UTC and Monday 10:00 UTC after ms */
static long long next_weekday_utc(long long ms, int wday, int hour)
{
    long long day = 86400000LL;
    long long t = (ms / day + 1) * day; /* next midnight UTC */
    while ((int)(((t / day) + 4) % 7) != wday) /* 1970-01-01 was a Thursday */
        t += day;
    return t + hour * 3600000LL;
}

Test(lifecycle, reap_with_a_controllable_clock_warns_expires_sleeps_and_spares_stages)
{
    tl_proj_new(&P, FILE_TPL, NULL,
                "stages:\n"
                "  dev: {config: envs/dev.yaml, schedule: {uptime: 'Mon-Fri 08:00-18:00 UTC'}}\n"
                "  prod: {config: envs/prod.yaml, protect: true}\n"
                "previews: {name: 'pr-{number}', config: envs/preview.yaml, ttl: 2h,"
                " warn_before: 30m}\n"
                "sandboxes: {name: 'sb-{name}', config: envs/sandbox.yaml, idle: 1h,"
                " idle_sleep: 20m}\n");
    struct tl_res r = RUN("pr", "open", "5", "--sha", "abc");
    OK(r);
    tl_res_free(&r);
    r = RUN("sandbox", "up", "alice");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    long long pr = created_of("pr-5"), sb = created_of("sb-alice"), dev = created_of("dev");
    long long m = 60000;
    /* the preview: nothing, then a warning 30m ahead, then expiry */
    DECIDES(pr + 60 * m, "pr-5", "");
    DECIDES(pr + 91 * m, "pr-5", "warn: expires at ");
    DECIDES(pr + 120 * m + 1000, "pr-5", "destroy: expired: ttl");
    /* the sandbox: asleep after 20m without activity, gone after 1h */
    DECIDES(sb + 10 * m, "sb-alice", "");
    DECIDES(sb + 21 * m, "sb-alice", "sleep: idle: no activity for 20m");
    DECIDES(sb + 61 * m, "sb-alice", "destroy: expired: idle for 1h");
    /* the stage: sleeps by its schedule, wakes by it, and never expires */
    DECIDES(next_weekday_utc(dev, 6, 12), "dev", "sleep: schedule: outside uptime Mon-Fri");
    DECIDES(next_weekday_utc(dev, 1, 10), "dev", "");
    DECIDES(next_weekday_utc(dev + 400 * 86400000LL, 1, 10), "dev", "");
    DECIDES(next_weekday_utc(dev + 400 * 86400000LL, 0, 10), "dev", "sleep: schedule:");
    /* the next event is the earliest of them all */
    char *t = at_text(pr + 60 * m);
    r = RUN("reap", "--dry-run", "--at", t, "--json");
    free(t);
    char *next = tl_json_str(r.out, "next");
    long long nx = 0;
    cr_assert(next && tm_parse_rfc3339(next, &nx), "%s", r.out);
    cr_assert(nx <= pr + 90 * m && nx > pr + 60 * m, "next %s: the preview's warning", next);
    free(next);
    tl_res_free(&r);
    /* a dry run changed nothing; the bad flags are refused */
    r = RUN("reap", "--at", "2026-01-01T00:00:00Z");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "--at only goes with --dry-run"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("reap", "--dry-run", "--at", "tomorrow");
    cr_assert_eq(r.code, 2);
    tl_res_free(&r);
    r = RUN("env", "list", "--json");
    cr_assert(strstr(r.out, "\"expires_why\": \"idle for 1h\""), "%s", r.out);
    cr_assert(strstr(r.out, "\"expires_why\": \"ttl\""), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "list");
    cr_assert(strstr(r.out, "(idle)") && strstr(r.out, "(ttl)"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "show", "dev");
    cr_assert(strstr(r.out, "schedule   "), "%s", r.out);
    tl_res_free(&r);
}

Test(lifecycle, a_protected_stage_takes_only_a_schedule_written_for_it)
{
    tl_proj_new(&P, FILE_TPL, "  greeting: hello\n  schedule: {uptime: 'Mon-Fri 08:00-18:00 UTC'}\n",
                NULL);
    struct tl_res r = RUN("env", "up", "staging", "--yes");
    OK(r);
    cr_assert(!strstr(r.err, "does not apply"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "up", "prod", "--yes");
    OK(r);
    cr_assert(strstr(r.err, "prod is protected: the schedule from envs/base.yaml:3 does not apply "
                            "to it; write it in envs/prod.yaml or under stages.prod"),
              "%s", r.err);
    tl_res_free(&r);
    long long dev = created_of("prod");
    /* the shared layer's schedule puts staging to sleep at the weekend, never prod */
    DECIDES(next_weekday_utc(dev, 6, 12), "staging", "sleep: schedule: outside uptime Mon-Fri");
    DECIDES(next_weekday_utc(dev, 6, 12), "prod", "");
    /* written in prod's own file, it is meant */
    tl_write(P.dir, "envs/prod.yaml",
             "imports: [base]\nvalues:\n  schedule: {uptime: 'Mon-Fri 07:00-19:00 UTC'}\n");
    r = RUN("env", "up", "prod", "--yes");
    OK(r);
    cr_assert(!strstr(r.err, "does not apply"), "%s", r.err);
    tl_res_free(&r);
    DECIDES(next_weekday_utc(dev, 6, 12), "prod", "sleep: schedule: outside uptime Mon-Fri");
}

/* a schedule's window in absolute time, from now-1h to now+secs */
static char *window_until(int secs)
{
    long long now = tm_now_ms();
    char *a = at_text((now / 1000 - 3600) * 1000), *b = at_text((now / 1000 + secs) * 1000);
    char *w = xasprintf("%s-%s", a, b);
    free(a);
    free(b);
    return w;
}

Test(lifecycle, reap_sleeps_in_downtime_and_wakes_after_it_and_the_data_stays)
{
    char *w = window_until(4);
    char *extra = xasprintf("sandboxes: {name: 'sb-{name}', config: envs/sandbox.yaml,"
                            " schedule: {downtime: '%s'}}\n",
                            w);
    free(w);
    tl_proj_new(&P, TPL, NULL, extra);
    free(extra);
    struct tl_res r = RUN("sandbox", "up", "bob");
    OK(r);
    tl_res_free(&r);
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 2);
    r = RUN("reap");
    OK(r);
    cr_assert(strstr(r.out, "sleep") && strstr(r.out, "sb-bob") && strstr(r.out, "downtime"),
              "%s", r.out);
    tl_res_free(&r);
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 0, "asleep means no process");
    r = RUN("env", "show", "sb-bob", "--json");
    cr_assert(strstr(r.out, "\"asleep\": \"schedule\""), "%s", r.out);
    tl_res_free(&r);
    /* a second run in the same window has nothing to do */
    r = RUN("reap");
    OK(r);
    cr_assert(strstr(r.out, "nothing to do"), "%s", r.out);
    tl_res_free(&r);
    usleep(4500000); /* the window closes */
    r = RUN("reap");
    OK(r);
    cr_assert(strstr(r.out, "wake") && strstr(r.out, "sb-bob"), "%s", r.out);
    tl_res_free(&r);
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 2);
    char *db = xasprintf("%s/work/sb-bob/db.db", P.state);
    cr_assert(tl_exists(db), "the database stayed");
    char *q = xasprintf("python3 -c \"import sqlite3; "
                        "print(sqlite3.connect('%s').execute('select count(*), sum(x) from t')"
                        ".fetchone())\"",
                        db);
    FILE *f = popen(q, "r");
    char line[128] = "";
    cr_assert(f && fgets(line, sizeof line, f));
    pclose(f);
    free(q);
    free(db);
    cr_assert_str_eq(line, "(1, 42)\n", "the same data, written once");
    r = RUN("env", "show", "sb-bob", "--json");
    cr_assert(strstr(r.out, "\"asleep\": null"), "%s", r.out);
    long long port = tl_json_int(r.out, "resources.2.outputs.port");
    tl_res_free(&r);
    cr_assert_eq(tl_http_get((int)port, "/healthz", NULL), 200);
}

Test(lifecycle, a_bad_schedule_is_refused_where_it_is_written)
{
    tl_proj_new(&P, FILE_TPL, NULL,
                "sandboxes: {name: 'sb-{name}', config: envs/sandbox.yaml,\n"
                "  schedule: {uptime: 'Mon-Thur 08:00-18:00 UTC'}}\n");
    struct tl_res r = RUN("env", "list");
    cr_assert_eq(r.code, 1, "%s", r.err);
    cr_assert(strstr(r.err, "prenv.yaml:") && strstr(r.err, "Thur"), "%s", r.err);
    tl_res_free(&r);
    tl_proj_free(&P);
    /* and in an env's own config */
    tl_proj_new(&P, FILE_TPL, NULL, NULL);
    tl_write(P.dir, "envs/sandbox.yaml",
             "imports: [base]\nvalues:\n  schedule: {downtime: 'Sat-Sun 00:00-25:00 UTC'}\n");
    r = RUN("sandbox", "up", "carol");
    cr_assert_eq(r.code, 1, "%s", r.err);
    cr_assert(strstr(r.err, "envs/sandbox.yaml:3:") && strstr(r.err, "25"), "%s", r.err);
    tl_res_free(&r);
}

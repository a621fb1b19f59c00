/* End to end: the real binary, real processes, SQLite and HTTP on 127.0.0.1,
 * each test in its own project directory and port block. */
#include "tests/testlib.h"

#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const APP_TPL =
    "resources:\n"
    "  db:\n"
    "    type: sqlite.database\n"
    "  init:\n"
    "    type: exec.command\n"
    "    properties:\n"
    "      create: [python3, -c, \"import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
    "c.execute('create table if not exists t(x)'); c.commit(); print('migrated')\", "
    "\"${db.path}\"]\n"
    "  web:\n"
    "    type: process.service\n"
    "    depends_on: [init]\n"
    "    properties:\n"
    "      command: [python3, \"${project.dir}/app.py\"]\n"
    "      replicas: ${config.replicas}\n"
    "      env: {GREETING: \"${config.greeting}\", DATABASE_URL: \"${db.url}\"}\n"
    "      health: {http: /healthz, timeout: 30s}\n"
    "      stop_timeout: 5s\n"
    "outputs:\n"
    "  url: ${web.url}\n"
    "  port: ${web.port}\n"
    "  migrated: ${init.stdout}\n";

static const char *const APP_BASE = "  greeting: hello\n  replicas: 1\n";

static struct tl_proj P;

static void fini(void)
{
    tl_proj_free(&P);
}

TestSuite(env, .fini = fini, .timeout = 180);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)
#define OK(r)                                                                                     \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)

static int supervisors(void)
{
    /* processes of `prenv supervise` running for this project */
    return tl_procs_matching(P.dir, " supervise ");
}

static long long out_port(const char *env)
{
    struct tl_res r = RUN("env", "show", env, "--json");
    OK(r);
    long long port = tl_json_int(r.out, "outputs.port");
    tl_res_free(&r);
    return port;
}

Test(env, up_serves_http_then_nothing_to_do_then_update_then_destroy_leaves_nothing)
{
    tl_proj_new(&P, APP_TPL, APP_BASE, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "dev is up: +3 ~0 -0"), "%s", r.out);
    tl_res_free(&r);
    long long port = out_port("dev");
    cr_assert_geq(port, P.port_lo);
    cr_assert_leq(port, P.port_hi);
    char *body = NULL;
    cr_assert_eq(tl_http_get((int)port, "/info", &body), 200);
    cr_assert(strstr(body, "\"greeting\": \"hello\"") && strstr(body, "\"env\": \"dev\""), "%s",
              body);
    free(body);

    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "nothing to do"), "%s", r.out);
    tl_res_free(&r);

    r = RUN("env", "up", "dev", "--yes", "--set", "replicas=2");
    OK(r);
    cr_assert(strstr(r.out, "replicas: 1 -> 2"), "%s", r.out);
    cr_assert(strstr(r.out, "web (process.service) updated"), "%s", r.out);
    cr_assert_null(strstr(r.out, "replaced"), "%s", r.out);
    cr_assert_null(strstr(r.out, "replacing"), "%s", r.out);
    tl_res_free(&r);
    cr_assert_eq(out_port("dev"), port, "the first replica keeps its port");
    r = RUN("env", "show", "dev", "--json");
    long long p2 = tl_json_int(r.out, "resources.2.outputs.ports.1");
    tl_res_free(&r);
    cr_assert_gt(p2, 0);
    cr_assert_eq(tl_http_get((int)p2, "/healthz", NULL), 200);
    cr_assert_eq(supervisors(), 2);

    r = RUN("env", "list", "--json");
    OK(r);
    char *name = tl_json_str(r.out, "0.name"), *kind = tl_json_str(r.out, "0.kind"),
         *owner = tl_json_str(r.out, "0.owner"), *status = tl_json_str(r.out, "0.status"),
         *created = tl_json_str(r.out, "0.created");
    cr_assert_str_eq(name, "dev");
    cr_assert_str_eq(kind, "stage");
    cr_assert_str_eq(owner, "tester");
    cr_assert_str_eq(status, "up");
    cr_assert_not_null(created);
    cr_assert_eq(tl_json_int(r.out, "0.resources"), 3);
    cr_assert(strstr(r.out, "\"expires\": null"), "%s", r.out);
    free(name);
    free(kind);
    free(owner);
    free(status);
    free(created);
    tl_res_free(&r);

    r = RUN("env", "destroy", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "dev is gone: 3 resources deleted"), "%s", r.out);
    tl_res_free(&r);
    cr_assert_eq(tl_procs_in(P.dir), 0, "no process may survive a destroy");
    cr_assert_eq(tl_leases(&P), 0, "no port lease may survive a destroy");
    cr_assert_eq(tl_http_get((int)port, "/healthz", NULL), 0);
    char *paths[] = {"state/dev.json", "work/dev", "logs/dev", "run/dev", "locks/dev.lock",
                     "history/dev.jsonl"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        char *pth = xasprintf("%s/%s", P.state, paths[i]);
        cr_assert(!tl_exists(pth), "%s was left behind", paths[i]);
        free(pth);
    }
    r = RUN("env", "list", "--json");
    cr_assert_str_eq(r.out, "[]\n");
    tl_res_free(&r);
}

static void crash_then_converge(const char *point, int expect_code)
{
    const char *env[] = {NULL, NULL};
    char *spec = xasprintf("PRENV_CRASH_AT=%s", point);
    env[0] = spec;
    struct tl_res r = tl_prenv(&P, (const char *const[]){"env", "up", "dev", "--yes", NULL}, env);
    cr_assert_eq(r.code, expect_code, "crash at %s: exit %d\n%s\n%s", point, r.code, r.out, r.err);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes");
    cr_assert_eq(r.code, 0, "after crash at %s: exit %d\n%s\n%s", point, r.code, r.out, r.err);
    tl_res_free(&r);
    cr_assert_eq(supervisors(), 1, "after crash at %s: exactly one supervisor", point);
    long long port = out_port("dev");
    cr_assert_eq(tl_http_get((int)port, "/healthz", NULL), 200, "after crash at %s", point);
    r = RUN("env", "up", "dev", "--yes");
    cr_assert(strstr(r.out, "nothing to do"), "after crash at %s, a third run: %s", point, r.out);
    tl_res_free(&r);
    r = RUN("env", "show", "dev", "--json");
    cr_assert(strstr(r.out, "\"pending\": []"), "after crash at %s: %s", point, r.out);
    tl_res_free(&r);
    free(spec);
}

Test(env, kill_9_during_up_at_every_step_converges_without_duplicates_or_orphans)
{
    tl_proj_new(&P, APP_TPL, APP_BASE, NULL);
    /* journal: intent durable, provider not called; provider: provider done,
     * result not recorded; saved: result in the journal, state not rewritten */
    const char *points[] = {"journal:db",  "provider:db",  "saved:db",  "journal:init",
                            "provider:init", "journal:web", "provider:web", "saved:web", NULL};
    for (size_t i = 0; points[i]; i++) {
        crash_then_converge(points[i], 128 + SIGKILL);
        struct tl_res r = RUN("env", "destroy", "dev", "--yes");
        OK(r);
        tl_res_free(&r);
        cr_assert_eq(tl_procs_in(P.dir), 0, "after destroy following crash at %s", points[i]);
        cr_assert_eq(tl_leases(&P), 0, "leases after crash at %s", points[i]);
    }
}

Test(env, kill_9_during_destroy_then_destroy_again_leaves_nothing)
{
    tl_proj_new(&P, APP_TPL, "  greeting: hello\n  replicas: 2\n", NULL);
    const char *points[] = {"journal:web", "provider:web", "saved:web", "provider:db", "saved:db",
                            NULL};
    for (size_t i = 0; points[i]; i++) {
        struct tl_res r = RUN("env", "up", "dev", "--yes");
        OK(r);
        tl_res_free(&r);
        char *spec = xasprintf("PRENV_CRASH_AT=%s", points[i]);
        r = tl_prenv(&P, (const char *const[]){"env", "destroy", "dev", "--yes", NULL},
                     (const char *const[]){spec, NULL});
        cr_assert_eq(r.code, 128 + SIGKILL, "%s: %s %s", points[i], r.out, r.err);
        tl_res_free(&r);
        free(spec);
        r = RUN("env", "destroy", "dev", "--yes");
        OK(r);
        cr_assert(strstr(r.err, "ended without releasing the lock"), "%s", r.err);
        tl_res_free(&r);
        cr_assert_eq(tl_procs_in(P.dir), 0, "orphans after crash at %s", points[i]);
        cr_assert_eq(tl_leases(&P), 0);
    }
}

Test(env, concurrent_up_waits_for_the_lock_and_names_the_holder)
{
    tl_proj_new(&P,
                "resources:\n"
                "  slow:\n"
                "    type: exec.command\n"
                "    properties:\n"
                "      create: [sleep, '2']\n"
                "      triggers: ${config.greeting}\n",
                NULL, NULL);
    pid_t a = fork();
    if (a == 0) {
        struct tl_res r = RUN("env", "up", "dev", "--yes");
        _exit(r.code);
    }
    /* wait until A holds the lock */
    char *lock = xasprintf("%s/locks/dev.lock", P.state);
    for (int i = 0; i < 100; i++) {
        char *t = tl_read(lock);
        bool held = t && strstr(t, "\"pid\"");
        free(t);
        if (held)
            break;
        usleep(50000);
    }
    free(lock);
    struct tl_res r = RUN("env", "up", "dev", "--yes", "--set", "greeting=second");
    int st;
    waitpid(a, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "first up failed");
    OK(r);
    cr_assert(strstr(r.err, "waiting for the lock held by pid"), "%s", r.err);
    cr_assert(strstr(r.err, "env up dev --yes"), "the waiter names the holder's command: %s",
              r.err);
    tl_res_free(&r);
    r = RUN("env", "show", "dev", "--json");
    OK(r);
    cr_assert_eq(tl_json_int(r.out, "schema"), 1);
    cr_assert(strstr(r.out, "\"triggers\":\"second\""), "%s", r.out);
    cr_assert(strstr(r.out, "\"pending\": []"));
    tl_res_free(&r);
}

Test(env, refresh_finds_drift_and_up_repairs_it)
{
    tl_proj_new(&P,
                "resources:\n"
                "  conf:\n"
                "    type: file.render\n"
                "    properties: {path: conf/app.ini, content: \"greeting=${config.greeting}\\n\"}\n",
                NULL, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "refresh", "dev", "--expect-no-changes");
    OK(r);
    tl_res_free(&r);
    char *f = xasprintf("%s/work/dev/conf/app.ini", P.state);
    tl_write("/", f + 1, "tampered\n");
    r = RUN("env", "refresh", "dev", "--expect-no-changes");
    cr_assert_eq(r.code, 3, "%s %s", r.out, r.err);
    cr_assert(strstr(r.out, "changed outside prenv"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "drift"), "%s", r.out);
    tl_res_free(&r);
    char *t = tl_read(f);
    cr_assert_str_eq(t, "greeting=hello\n");
    free(t);
    unlink(f);
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "no longer exists"), "a deleted file is recreated: %s", r.out);
    tl_res_free(&r);
    cr_assert(tl_exists(f));
    free(f);
}

Test(env, a_dead_supervisor_is_drift_and_up_restarts_it)
{
    tl_proj_new(&P, APP_TPL, APP_BASE, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    long long port = out_port("dev");
    tl_kill_in(P.dir); /* a reboot: every process gone */
    cr_assert_eq(tl_http_get((int)port, "/healthz", NULL), 0);
    r = RUN("env", "refresh", "dev", "--expect-no-changes");
    cr_assert_eq(r.code, 3, "%s %s", r.out, r.err);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    cr_assert(tl_wait_http((int)out_port("dev"), "/healthz", 10000));
    cr_assert_eq(supervisors(), 1);
}

Test(env, failure_stops_saves_and_shows_the_log_then_rollback_removes_what_the_run_created)
{
    tl_proj_new(&P,
                "resources:\n"
                "  conf:\n"
                "    type: file.render\n"
                "    properties: {path: a.txt, content: hi}\n"
                "  step:\n"
                "    type: exec.command\n"
                "    properties:\n"
                "      create: [python3, -c, \"import sys; print('about to fail'); "
                "sys.stderr.write('boom: ${config.greeting}\\\\n'); sys.exit(4)\"]\n"
                "    depends_on: [conf]\n"
                "  after:\n"
                "    type: file.render\n"
                "    depends_on: [step]\n"
                "    properties: {path: b.txt, content: never}\n",
                NULL, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "resource 'step' (exec.command): create failed"), "%s", r.err);
    cr_assert(strstr(r.err, "exited with status 4"), "%s", r.err);
    cr_assert(strstr(r.err, "boom: hello"), "the log tail is shown: %s", r.err);
    cr_assert(strstr(r.out, "after skipped"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "show", "dev", "--json");
    char *status = tl_json_str(r.out, "status");
    cr_assert_str_eq(status, "failed");
    free(status);
    tl_res_free(&r);
    char *b = xasprintf("%s/work/dev/b.txt", P.state), *a = xasprintf("%s/work/dev/a.txt", P.state);
    cr_assert(!tl_exists(b));
    cr_assert(tl_exists(a));
    r = RUN("env", "destroy", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes", "--rollback");
    cr_assert_eq(r.code, 1);
    tl_res_free(&r);
    cr_assert(!tl_exists(a), "--rollback removes what this run created");
    r = RUN("env", "show", "dev", "--json");
    cr_assert(strstr(r.out, "\"resources\": []"), "%s", r.out);
    tl_res_free(&r);
    free(a);
    free(b);
}

Test(env, destroy_failure_keeps_going_marks_destroy_failed_and_can_be_retried)
{
    tl_proj_new(&P,
                "resources:\n"
                "  conf:\n"
                "    type: file.render\n"
                "    properties: {path: a.txt, content: hi}\n"
                "  hook:\n"
                "    type: exec.command\n"
                "    properties:\n"
                "      create: [\"true\"]\n"
                "      delete: [python3, -c, \"import os, sys; "
                "sys.exit(0 if os.path.exists(sys.argv[1]) else 7)\", \"${project.dir}/allow\"]\n",
                NULL, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "destroy", "dev", "--yes");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "1 resource left: hook"), "%s", r.err);
    cr_assert(strstr(r.err, "destroy-failed"), "%s", r.err);
    tl_res_free(&r);
    char *a = xasprintf("%s/work/dev/a.txt", P.state);
    cr_assert(!tl_exists(a), "independent resources are still removed");
    free(a);
    r = RUN("env", "list", "--json");
    char *st = tl_json_str(r.out, "0.status");
    cr_assert_str_eq(st, "destroy-failed");
    free(st);
    tl_res_free(&r);
    tl_write(P.dir, "allow", "");
    r = RUN("env", "destroy", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "list", "--json");
    cr_assert_str_eq(r.out, "[]\n");
    tl_res_free(&r);
}

Test(env, protected_prod_refuses_destroy_without_unprotect)
{
    tl_proj_new(&P,
                "resources:\n"
                "  conf:\n"
                "    type: file.render\n"
                "    properties: {path: a.txt, content: \"${env.name}\"}\n",
                NULL, NULL);
    struct tl_res r = RUN("env", "up", "prod", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "destroy", "prod", "--yes");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "protected"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "show", "prod");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "destroy", "prod", "--yes", "--unprotect");
    OK(r);
    tl_res_free(&r);
}

Test(env, sandbox_is_owned_expires_and_respects_the_per_owner_maximum)
{
    tl_proj_new(&P,
                "resources:\n"
                "  conf:\n"
                "    type: file.render\n"
                "    properties: {path: a.txt, content: \"${env.owner}\"}\n",
                NULL, NULL);
    struct tl_res r = RUN("sandbox", "up");
    OK(r);
    cr_assert(strstr(r.out, "sb-tester is up"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "list", "--json", "--kind", "sandbox");
    char *name = tl_json_str(r.out, "0.name"), *exp = tl_json_str(r.out, "0.expires");
    cr_assert_str_eq(name, "sb-tester");
    cr_assert_not_null(exp, "sandboxes expire: %s", r.out);
    free(name);
    free(exp);
    tl_res_free(&r);
    r = RUN("sandbox", "up", "Feature_X", "--ttl", "2h");
    OK(r);
    cr_assert(strstr(r.out, "sb-feature-x is up"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("sandbox", "up", "third");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "tester already has 2 sandboxes"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "list", "--json", "--tag", "owner=tester");
    cr_assert_eq(tl_json_int(r.out, "1.resources"), 1, "%s", r.out);
    tl_res_free(&r);
}

Test(env, a_database_deleted_out_of_band_is_created_again_and_migrated_again)
{
    tl_proj_new(&P, APP_TPL, APP_BASE, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    char *db = xasprintf("%s/work/dev/db.db", P.state);
    cr_assert(tl_exists(db));
    unlink(db);
    r = RUN("env", "plan", "dev");
    OK(r);
    cr_assert(strstr(r.out, "db") && strstr(r.out, "it no longer exists"), "%s", r.out);
    cr_assert(strstr(r.out, "~  init"), "dependents are rebuilt: %s", r.out);
    cr_assert(strstr(r.out, "~  web"), "dependents are rebuilt: %s", r.out);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "init (exec.command) updated"), "the migration ran again: %s", r.out);
    tl_res_free(&r);
    cr_assert(tl_exists(db));
    free(db);
    r = RUN("env", "up", "dev", "--yes");
    cr_assert(strstr(r.out, "nothing to do"), "%s", r.out);
    tl_res_free(&r);
}

Test(env, destroy_forget_is_the_last_resort_and_says_what_may_be_left)
{
    tl_proj_new(&P,
                "resources:\n"
                "  conf:\n"
                "    type: file.render\n"
                "    properties: {path: a.txt, content: hi}\n"
                "  stuck:\n"
                "    type: exec.command\n"
                "    properties:\n"
                "      create: [\"true\"]\n"
                "      delete: [\"false\"]\n",
                NULL, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "destroy", "dev", "--yes");
    cr_assert_eq(r.code, 1);
    tl_res_free(&r);
    r = RUN("env", "destroy", "dev", "--yes", "--forget");
    OK(r);
    cr_assert(strstr(r.err, "forgotten without being removed") && strstr(r.err, "stuck (exec.command"),
              "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "list", "--json");
    cr_assert_str_eq(r.out, "[]\n");
    tl_res_free(&r);
}

Test(env, exec_stdout_is_secret_only_when_it_repeats_a_secret)
{
    tl_proj_new(&P,
                "resources:\n"
                "  a:\n"
                "    type: exec.command\n"
                "    properties:\n"
                "      create: [echo, plain]\n"
                "outputs:\n"
                "  a: ${a.stdout}\n"
                "  big: ${config.big}\n",
                "  big: 9223372036854775000\n", NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "a: plain"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "big: 9223372036854775000"), "64-bit ints survive the state: %s",
              r.out);
    tl_res_free(&r);
}

/* End to end: the read-only and helper commands — logs, show, config get /
 * list / diff, template validate / render, plan --json, unlock, init. */
#include "tests/testlib.h"

#include "core/lib/fs.h"

#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const TPL =
    "resources:\n"
    "  conf:\n"
    "    type: file.render\n"
    "    properties:\n"
    "      path: app.ini\n"
    "      content: \"url=${config.url}\\nsize=${config.db.size}\\n\"\n"
    "  say:\n"
    "    type: exec.command\n"
    "    properties:\n"
    "      create: [python3, -c, \"import sys; print('hello from', sys.argv[1])\", \"${env.name}\"]\n"
    "      env: {CONF: \"${conf.path}\"}\n"
    "outputs:\n"
    "  said: ${say.stdout}\n";

static const char *const BASE = "  host: example.test\n  url: https://${env.name}.${config.host}\n"
                                "  db: {size: small, pool: 5}\n";

static struct tl_proj P;

static void fini(void)
{
    tl_proj_free(&P);
}

TestSuite(commands, .fini = fini, .timeout = 60);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)
#define OK(r)                                                                                     \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)

Test(commands, config_get_list_and_diff_show_values_and_where_they_came_from)
{
    tl_proj_new(&P, TPL, BASE, NULL);
    tl_write(P.dir, "envs/staging.yaml", "imports: [base]\nvalues:\n  db: {size: large}\n");
    struct tl_res r = RUN("config", "get", "url", "--env", "dev");
    OK(r);
    cr_assert_str_eq(r.out, "https://dev.example.test\n", "config interpolates env and config");
    tl_res_free(&r);
    r = RUN("config", "get", "db", "--env", "staging");
    cr_assert_str_eq(r.out, "{\"size\":\"large\",\"pool\":5}\n");
    tl_res_free(&r);
    r = RUN("config", "get", "db.sise", "--env", "dev");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "did you mean 'db.size'?"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("config", "list", "--env", "staging", "--json");
    OK(r);
    char *from = tl_json_str(r.out, "values.2.from"), *key = tl_json_str(r.out, "values.2.key");
    cr_assert_str_eq(key, "db.size");
    cr_assert_str_eq(from, "envs/staging.yaml:3");
    free(from);
    free(key);
    tl_res_free(&r);
    r = RUN("config", "diff", "dev", "staging");
    OK(r);
    cr_assert(strstr(r.out, "db.size") && strstr(r.out, "\"small\"") && strstr(r.out, "\"large\""),
              "%s", r.out);
    cr_assert(strstr(r.out, "url"), "url differs through ${env.name}: %s", r.out);
    tl_res_free(&r);
    r = RUN("config", "get", "url");
    cr_assert_eq(r.code, 2, "--env is required");
    tl_res_free(&r);
}

Test(commands, template_validate_and_render_resolve_everything_without_changing_anything)
{
    tl_proj_new(&P, TPL, BASE, NULL);
    struct tl_res r = RUN("template", "validate");
    OK(r);
    cr_assert(strstr(r.out, "templates/app.yaml: ok (2 resources, 1 output)"), "%s", r.out);
    cr_assert(strstr(r.out, "stage prod"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("template", "render", "staging");
    OK(r);
    char *content = tl_json_str(r.out, "resources.conf.properties.content");
    cr_assert_str_eq(content, "url=https://staging.example.test\nsize=small\n");
    free(content);
    cr_assert(strstr(r.out, "{\"$unknown\":\"conf.path\"}"), "%s", r.out);
    tl_res_free(&r);
    char *sd = xasprintf("%s/state", P.state);
    cr_assert_eq(tl_count_files(sd), 0);
    free(sd);
    tl_write(P.dir, "envs/prod.yaml", "values:\n  host: prod.test\n");
    r = RUN("template", "validate");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "stage 'prod'") && strstr(r.err, "unknown config key 'url'"), "%s",
              r.err);
    tl_res_free(&r);
}

Test(commands, plan_json_lists_every_step_and_expect_no_changes_exits_3)
{
    tl_proj_new(&P, TPL, BASE, NULL);
    struct tl_res r = RUN("env", "plan", "dev", "--json", "--expect-no-changes");
    cr_assert_eq(r.code, 3);
    cr_assert_eq(tl_json_int(r.out, "changes.create"), 2);
    char *op = tl_json_str(r.out, "steps.1.op");
    cr_assert_str_eq(op, "create");
    free(op);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "plan", "dev", "--expect-no-changes");
    OK(r);
    tl_res_free(&r);
    r = RUN("env", "plan", "dev", "--json", "--set", "db.size=huge");
    char *ch = tl_json_str(r.out, "steps.0.changed.0"), *nw = tl_json_str(r.out,
                                                                           "steps.0.diff.content.new");
    cr_assert_str_eq(ch, "content");
    cr_assert(strstr(nw, "size=huge"), "%s", nw);
    free(ch);
    free(nw);
    tl_res_free(&r);
}

Test(commands, show_and_logs_tell_what_happened)
{
    tl_proj_new(&P, TPL, BASE, NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes", "--sha", "0123abc");
    OK(r);
    cr_assert(strstr(r.out, "said: hello from dev"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "show", "dev");
    OK(r);
    cr_assert(strstr(r.out, "dev  stage, up"), "%s", r.out);
    cr_assert(strstr(r.out, "envs/base.yaml <- envs/dev.yaml"), "%s", r.out);
    cr_assert(strstr(r.out, "sha        0123abc"), "%s", r.out);
    cr_assert(strstr(r.out, "expires    never"), "stages never expire: %s", r.out);
    cr_assert(strstr(r.out, "history"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "logs", "dev", "say");
    OK(r);
    cr_assert(strstr(r.out, "hello from dev"), "%s", r.out);
    cr_assert(strstr(r.out, "[prenv] create: python3 -c"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "logs", "dev", "say", "-n", "1");
    OK(r);
    cr_assert_eq(strchr(r.out, '\n') - r.out + 1, (long)strlen(r.out), "exactly one line: %s",
                 r.out);
    tl_res_free(&r);
    r = RUN("env", "logs", "dev", "nope");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "no logs for resource 'nope'"), "%s", r.err);
    tl_res_free(&r);
}

Test(commands, unlock_shows_who_held_the_lock)
{
    tl_proj_new(&P, TPL, BASE, NULL);
    struct tl_res r = RUN("env", "unlock", "dev");
    OK(r);
    cr_assert(strstr(r.out, "dev is not locked"), "%s", r.out);
    tl_res_free(&r);
    /* a live holder: a child that takes the flock and sleeps */
    char *lockdir = xasprintf("%s/locks", P.state), *lock = xasprintf("%s/dev.lock", lockdir);
    tl_write(lockdir, "dev.lock", "");
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(lock, O_RDWR);
        flock(fd, LOCK_EX);
        char buf[256];
        int n = snprintf(buf, sizeof buf,
                         "{\"pid\": %d, \"host\": \"elsewhere\", \"user\": \"bob\", "
                         "\"command\": \"prenv env up dev\", \"since\": \"2026-01-01T00:00:00Z\"}",
                         (int)getpid());
        ssize_t w = pwrite(fd, buf, (size_t)n, 0);
        (void)w;
        w = write(ready[1], "x", 1);
        pause();
        _exit(0);
    }
    char x;
    cr_assert_eq(read(ready[0], &x, 1), 1);
    struct tl_res r2 = RUN("env", "unlock", "dev");
    r = r2;
    cr_assert_eq(r.code, 1, "%s", r.out);
    cr_assert(strstr(r.err, "bob@elsewhere"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "unlock", "dev", "--force");
    OK(r);
    cr_assert(strstr(r.out, "unlocked dev; it was held by pid"), "%s", r.out);
    tl_res_free(&r);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    free(lock);
    free(lockdir);
}

Test(commands, init_scaffolds_a_project_that_validates_and_refuses_to_overwrite)
{
    char *d = tl_tmpdir("init");
    struct tl_res r = tl_prenv(NULL, (const char *const[]){"-C", d, "init", NULL}, NULL);
    cr_assert_eq(r.code, 0, "%s", r.err);
    tl_res_free(&r);
    r = tl_prenv(NULL, (const char *const[]){"-C", d, "template", "validate", NULL}, NULL);
    cr_assert_eq(r.code, 0, "%s %s", r.out, r.err);
    tl_res_free(&r);
    r = tl_prenv(NULL, (const char *const[]){"-C", d, "init", NULL}, NULL);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "prenv.yaml already exists"), "%s", r.err);
    tl_res_free(&r);
    char *gi = xasprintf("%s/.gitignore", d);
    char *t = tl_read(gi);
    cr_assert(t && strstr(t, ".prenv/"));
    free(t);
    free(gi);
    struct err e = {0};
    cr_assert_eq(fs_rm_rf(d, &e), 0, "%s", e.msg);
    free(d);
}

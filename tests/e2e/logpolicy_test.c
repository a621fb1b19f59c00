/* End to end: an env's logging policy and feature flags as its services see
 * them — PRENV_LOG_LEVEL, FLAG_* variables, logs.retain, pii: redact — with
 * the real binary and real processes. */
#include "tests/testlib.h"

#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* prints what it was given, a line with an email and IPs, then serves */
static const char app_py[] =
    "import os, socket, sys\n"
    "print('level=%s checkout=%s dark=%s' % (os.environ.get('PRENV_LOG_LEVEL'),\n"
    "      os.environ.get('FLAG_NEW_CHECKOUT'), os.environ.get('FLAG_DARK_MODE')), flush=True)\n"
    "sys.stdout.write('order by alice@example.com fr'); sys.stdout.flush()\n"
    "sys.stdout.write('om 203.0.113.7 via 2001:db8::42 on 1.2.3\\n'); sys.stdout.flush()\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen(8)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    c, _ = s.accept(); c.close()\n";

static const char *const TPL = "resources:\n"
                               "  web:\n"
                               "    type: process.service\n"
                               "    properties:\n"
                               "      command: [python3, -u, \"${project.dir}/pii.py\"]\n"
                               "      health: {tcp: true, timeout: 30s}\n"
                               "      stop_timeout: 2s\n";

static const char *const STAGES = "stages:\n"
                                  "  dev: {config: envs/dev.yaml}\n"
                                  "  staging: {config: envs/staging.yaml, pii: redact, "
                                  "logs: {retain: 1}}\n"
                                  "  prod: {config: envs/prod.yaml, protect: true, pii: redact}\n"
                                  "previews: {name: 'pr-{number}', config: envs/preview.yaml, "
                                  "logs: {retain: 0}}\n";

static struct tl_proj P;

static void fini(void)
{
    tl_proj_free(&P);
}

TestSuite(logpolicy, .fini = fini, .timeout = 180);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)
#define OK(r)                                                                                      \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)

static void project(const char *base)
{
    tl_proj_new(&P, TPL, base, STAGES);
    tl_write(P.dir, "pii.py", app_py);
}

static char *log_file(const char *env)
{
    char *p = xasprintf("%s/logs/%s/web.0.log", P.state, env);
    char *text = tl_read(p);
    free(p);
    return text ? text : xstrdup("");
}

static void up(const char *env)
{
    struct tl_res r = RUN("env", "up", env, "--yes");
    OK(r);
    tl_res_free(&r);
}

/* the service has printed its lines once it accepts connections: wait for
 * "ready" in the log, which comes after them */
static char *logs_when_ready(const char *env)
{
    for (int i = 0; i < 200; i++) {
        struct tl_res r = RUN("env", "logs", env, "web");
        if (r.code == 0 && strstr(r.out, "ready")) {
            char *out = xstrdup(r.out);
            tl_res_free(&r);
            return out;
        }
        tl_res_free(&r);
        usleep(50000);
    }
    cr_assert_fail("'%s' never logged ready", env);
    return NULL;
}

Test(logpolicy,
     a_pii_redact_stage_masks_emails_and_ips_in_env_logs_and_on_disk_while_dev_keeps_them)
{
    project(NULL);
    up("staging");
    up("dev");
    char *st = logs_when_ready("staging");
    cr_expect(strstr(st, "order by [email] from [ip] via [ip] on 1.2.3"), "%s", st);
    cr_expect_null(strstr(st, "alice"), "%s", st);
    cr_expect_null(strstr(st, "203.0.113.7"), "%s", st);
    char *disk = log_file("staging");
    cr_expect(strstr(disk, "order by [email] from [ip] via [ip] on 1.2.3\n"), "%s", disk);
    cr_expect_null(strstr(disk, "alice@"), "%s", disk);
    cr_expect_null(strstr(disk, "2001:db8::42"), "%s", disk);
    free(disk);
    free(st);

    char *dv = logs_when_ready("dev");
    cr_expect(strstr(dv, "order by alice@example.com from 203.0.113.7 via 2001:db8::42 on 1.2.3"),
              "%s", dv);
    free(dv);
    disk = log_file("dev");
    cr_expect(strstr(disk, "alice@example.com"), "%s", disk);
    free(disk);

    /* logs go with the env */
    struct tl_res r = RUN("env", "destroy", "staging", "--yes");
    OK(r);
    tl_res_free(&r);
    char *ldir = xasprintf("%s/logs/staging", P.state);
    cr_assert(!tl_exists(ldir), "logs/staging was left behind");
    free(ldir);
}

Test(logpolicy, log_level_defaults_by_kind_config_overrides_and_retain_reaches_the_service)
{
    project("  greeting: hello\n");
    tl_write(P.dir, "envs/dev.yaml", "imports: [base]\nvalues:\n  log_level: debug\n");
    up("dev");
    up("staging");
    up("pr-7");
    char *dv = logs_when_ready("dev"), *st = logs_when_ready("staging"),
         *pr = logs_when_ready("pr-7");
    cr_expect(strstr(dv, "level=debug "), "%s", dv);
    cr_expect(strstr(st, "level=info "), "stages default to info: %s", st);
    cr_expect(strstr(pr, "level=debug "), "previews default to debug: %s", pr);
    free(dv);
    free(st);
    free(pr);

    struct tl_res r = RUN("env", "show", "staging", "--json");
    OK(r);
    char *lv = tl_json_str(r.out, "log_level");
    cr_expect_str_eq(lv, "info");
    free(lv);
    cr_expect_eq(tl_json_int(r.out, "resources.0.inputs.log_keep"), 1, "%s", r.out);
    cr_expect(strstr(r.out, "\"log_redact\":true"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "show", "pr-7", "--json");
    cr_expect_eq(tl_json_int(r.out, "resources.0.inputs.log_keep"), 0, "%s", r.out);
    tl_res_free(&r);

    r = RUN("env", "up", "dev", "--yes", "--set", "log_level=loud");
    cr_expect_eq(r.code, 1);
    cr_expect(strstr(r.err, "log_level must be one of debug, info, warn, warning, error"), "%s",
              r.err);
    tl_res_free(&r);
}

Test(logpolicy, flags_become_flag_variables_and_a_change_updates_the_service)
{
    project("  greeting: hello\n  flags: {new-checkout: true, dark_mode: blue}\n");
    tl_write(P.dir, "envs/staging.yaml",
             "imports: [base]\nvalues:\n  flags: {new-checkout: false}\n");
    up("dev");
    up("staging");
    char *dv = logs_when_ready("dev"), *st = logs_when_ready("staging");
    cr_expect(strstr(dv, "checkout=1 dark=blue"), "%s", dv);
    cr_expect(strstr(st, "checkout=0 dark=blue"), "layers merge flags: %s", st);
    free(dv);
    free(st);

    struct tl_res r = RUN("env", "up", "dev", "--yes", "--set", "flags.new-checkout=false");
    OK(r);
    cr_expect(strstr(r.out, "web (process.service) updated"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "show", "dev", "--json");
    OK(r);
    char *f = tl_json_str(r.out, "flags.dark_mode");
    cr_expect_str_eq(f, "blue");
    free(f);
    cr_expect(strstr(r.out, "\"new-checkout\":false"), "%s", r.out);
    tl_res_free(&r);

    r = RUN("env", "show", "dev");
    OK(r);
    cr_expect(strstr(r.out, "  log_level  info\n  flags      new-checkout=false dark_mode=blue\n"),
              "%s", r.out);
    tl_res_free(&r);

    r = RUN("flags", "list", "--json");
    OK(r);
    cr_expect(strstr(r.out, "\"envs\": [\"dev\", \"staging\", \"prod\"]"), "%s", r.out);
    cr_expect(strstr(r.out, "{\"name\": \"new-checkout\", \"values\": {\"dev\": false, "
                            "\"staging\": false, \"prod\": true}}"),
              "the kept --set counts, prod is read from its layers: %s", r.out);
    cr_expect(strstr(r.out, "{\"name\": \"dark_mode\", \"values\": {\"dev\": \"blue\""), "%s",
              r.out);
    tl_res_free(&r);
    r = RUN("flags", "list");
    OK(r);
    cr_expect(strstr(r.out, "FLAG          dev    staging  prod\n"
                            "new-checkout  false  false    true\n"
                            "dark_mode     blue   blue     blue\n"),
              "%s", r.out);
    tl_res_free(&r);

    /* a config that cannot be read leaves its column out, not the table */
    tl_write(P.dir, "envs/prod.yaml", "imports: [missing]\n");
    r = RUN("flags", "list");
    cr_expect_eq(r.code, 1);
    cr_expect(strstr(r.out, "FLAG          dev    staging\n"), "%s", r.out);
    cr_expect(strstr(r.err, "environment 'prod': ") && strstr(r.err, "(left out)"), "%s", r.err);
    tl_res_free(&r);
}

/* End to end: secrets. `config set --secret`, an `env up` that hands a secret
 * to a real process as an environment variable, and then: the canary is in
 * no file under the project and the state dir and in no command's output;
 * list, show, plan and destroy work without the passphrase; a wrong
 * passphrase says what, where and what to do; a Pulumi stack file comes in;
 * rotating the passphrase changes no plan. Keys are derived with 1000
 * PBKDF2 iterations here (PRENV_TEST_KDF_ITERATIONS). */
#include "tests/testlib.h"

#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CANARY "CANARY-7f3e9a-secret"

static const char *const TPL =
    "resources:\n"
    "  web:\n"
    "    type: process.service\n"
    "    properties:\n"
    "      command: [python3, \"${project.dir}/app.py\"]\n"
    "      env: {GREETING: \"${config.token}\", DATABASE_URL: \"pg://app:${config.token}@db/x\"}\n"
    "      health: {http: /healthz, timeout: 30s}\n"
    "      stop_timeout: 5s\n"
    "outputs:\n"
    "  url: ${web.url}\n"
    "  port: ${web.port}\n"
    "  dsn: \"pg://app:${config.token}@db/x\"\n";

static struct tl_proj P;

static void fini(void)
{
    tl_proj_free(&P);
}

TestSuite(secret, .fini = fini, .timeout = 180);

#define WITH(...) ((const char *const[]){"PRENV_TEST_KDF_ITERATIONS=1000", __VA_ARGS__, NULL})
#define PASS WITH("PRENV_PASSPHRASE=pw-one")
#define NOPASS WITH("PRENV_NO_PASSPHRASE=1")
#define RUN(env, ...) tl_prenv(&P, (const char *const[]){__VA_ARGS__, NULL}, (env))
#define OK(r)                                                                                     \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)

/* the command ran fine and printed no canary */
static void clean(struct tl_res r)
{
    OK(r);
    cr_assert_null(strstr(r.out, CANARY), "stdout shows the secret:\n%s", r.out);
    cr_assert_null(strstr(r.err, CANARY), "stderr shows the secret:\n%s", r.err);
    tl_res_free(&r);
}

static void set_secret(void)
{
    tl_proj_new(&P, TPL, "  token: not-a-secret-yet\n", NULL);
    clean(RUN(PASS, "config", "set", "token", CANARY, "--env", "dev", "--secret"));
}

Test(secret, a_secret_reaches_the_process_and_no_file_log_or_output)
{
    set_secret();
    char *cfg = xasprintf("%s/envs/dev.yaml", P.dir);
    char *text = tl_read(cfg);
    cr_assert(strstr(text, "token:\n    secure: v1:"), "%s", text);
    cr_assert_null(strstr(text, CANARY));
    free(text);
    free(cfg);
    /* no passphrase: up refuses before changing anything, and says why */
    struct tl_res r = RUN(NOPASS, "env", "up", "dev", "--yes");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "PRENV_PASSPHRASE") && strstr(r.err, "envs/dev.yaml"), "%s", r.err);
    tl_res_free(&r);
    clean(RUN(PASS, "env", "up", "dev", "--yes"));
    r = RUN(NOPASS, "env", "show", "dev", "--json");
    OK(r);
    long long port = tl_json_int(r.out, "outputs.port");
    cr_assert(strstr(r.out, "\"dsn\": \"[secret]\"") || strstr(r.out, "\"dsn\":\"[secret]\""),
              "%s", r.out);
    tl_res_free(&r);
    char *body = NULL;
    cr_assert_eq(tl_http_get((int)port, "/info", &body), 200);
    cr_assert(strstr(body, "\"greeting\": \"" CANARY "\""), "the process got it: %s", body);
    cr_assert(strstr(body, "pg://app:" CANARY "@db/x"), "%s", body);
    free(body);
    /* what needs no value works without the passphrase */
    clean(RUN(NOPASS, "env", "list"));
    clean(RUN(NOPASS, "env", "list", "--json"));
    clean(RUN(NOPASS, "env", "show", "dev"));
    r = RUN(NOPASS, "env", "plan", "dev");
    cr_assert(strstr(r.out, "0 to update") && strstr(r.out, "1 unchanged"), "%s", r.out);
    clean(r);
    clean(RUN(NOPASS, "env", "plan", "dev", "--json"));
    clean(RUN(NOPASS, "env", "up", "dev", "--yes")); /* nothing to do */
    clean(RUN(NOPASS, "config", "list", "--env", "dev"));
    clean(RUN(NOPASS, "config", "list", "--env", "dev", "--json"));
    clean(RUN(NOPASS, "config", "get", "token", "--env", "dev"));
    clean(RUN(NOPASS, "env", "logs", "dev"));
    /* nothing on disk holds it: config, state, journal, history, logs */
    char found[4096] = "";
    cr_assert_eq(tl_files_with(P.dir, CANARY, found, sizeof found), 0, "plaintext in: %s", found);
    /* only --show-secrets prints it, and only with the passphrase */
    r = RUN(PASS, "config", "list", "--env", "dev", "--show-secrets");
    OK(r);
    cr_assert(strstr(r.out, CANARY), "%s", r.out);
    tl_res_free(&r);
    clean(RUN(NOPASS, "env", "destroy", "dev", "--yes"));
    found[0] = 0;
    cr_assert_eq(tl_files_with(P.dir, CANARY, found, sizeof found), 0, "plaintext in: %s", found);
}

Test(secret, config_diff_compares_secrets_without_printing_them)
{
    set_secret();
    clean(RUN(PASS, "config", "set", "token", CANARY, "--env", "staging", "--secret"));
    clean(RUN(PASS, "config", "set", "token", CANARY "-prod", "--env", "prod", "--secret"));
    /* the same plaintext under two nonces: the same value */
    struct tl_res r = RUN(PASS, "config", "diff", "dev", "staging");
    cr_assert(strstr(r.out, "dev and staging have the same config"), "%s", r.out);
    clean(r);
    r = RUN(PASS, "config", "diff", "staging", "prod");
    cr_assert(strstr(r.out, "token") && strstr(r.out, "[secret]") &&
                  strstr(r.out, "secrets differ") && strstr(r.out, "envs/staging.yaml:") &&
                  strstr(r.out, "envs/prod.yaml:"),
              "%s", r.out);
    clean(r);
    r = RUN(PASS, "config", "diff", "staging", "prod", "--expect-no-changes");
    cr_assert_eq(r.code, 3, "%s", r.err);
    tl_res_free(&r);
    /* without the passphrase: told what could not be compared, exit 0 */
    r = RUN(NOPASS, "config", "diff", "staging", "prod");
    cr_assert(strstr(r.out, "not compared") && strstr(r.out, "PRENV_PASSPHRASE"), "%s", r.out);
    clean(r);
    r = RUN(PASS, "config", "diff", "staging", "prod", "--json");
    cr_assert(strstr(r.out, "\"secret\": true, \"compared\": true"), "%s", r.out);
    cr_assert(strstr(r.out, "\"a_from\": \"envs/staging.yaml:"), "%s", r.out);
    clean(r);
}

Test(secret, a_changed_secret_is_an_update_and_the_process_gets_the_new_value)
{
    set_secret();
    clean(RUN(PASS, "env", "up", "dev", "--yes"));
    clean(RUN(PASS, "config", "set", "token", "-", "--env", "dev", "--secret"));
    struct tl_res r = RUN(NOPASS, "env", "plan", "dev");
    cr_assert(strstr(r.out, "1 to update"), "%s", r.out);
    cr_assert(strstr(r.out, "env.GREETING: \"[secret]\" -> \"[secret]\"\n"),
              "the plan names the changed variable: %s", r.out);
    tl_res_free(&r);
    clean(RUN(PASS, "env", "up", "dev", "--yes"));
    r = RUN(NOPASS, "env", "show", "dev", "--json");
    long long port = tl_json_int(r.out, "outputs.port");
    tl_res_free(&r);
    char *body = NULL;
    cr_assert_eq(tl_http_get((int)port, "/info", &body), 200);
    cr_assert(strstr(body, "\"greeting\": \"\""), "stdin was empty, so is the value: %s", body);
    free(body);
}

Test(secret, a_wrong_passphrase_says_what_where_and_what_to_do)
{
    set_secret();
    struct tl_res r = RUN(WITH("PRENV_PASSPHRASE=pw-two"), "env", "up", "dev", "--yes");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "wrong passphrase"), "%s", r.err);
    cr_assert(strstr(r.err, "prenv.yaml:"), "names the salt's place: %s", r.err);
    cr_assert(strstr(r.err, "hint:") && strstr(r.err, "PRENV_PASSPHRASE"), "%s", r.err);
    tl_res_free(&r);
    r = RUN(WITH("PRENV_PASSPHRASE=pw-two"), "config", "list", "--env", "dev", "--show-secrets");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "envs/dev.yaml:"), "names the secret's place: %s", r.err);
    tl_res_free(&r);
    char *pf = xasprintf("%s/pass.txt", P.dir);
    tl_write(P.dir, "pass.txt", "pw-one\n");
    char *pfe = xasprintf("PRENV_PASSPHRASE_FILE=%s", pf);
    r = RUN(WITH(pfe), "config", "list", "--env", "dev", "--show-secrets");
    OK(r);
    cr_assert(strstr(r.out, CANARY), "the file's passphrase, trimmed: %s", r.out);
    tl_res_free(&r);
    free(pfe);
    free(pf);
}

/* a Pulumi stack at 1000 iterations, passphrase "test-pass" (made with
 * tests/fixtures/pulumi_secret.py) */
static const char *const STACK =
    "secretsprovider: passphrase\n"
    "encryptionsalt: v1:c2FsdHNhbHQ=:v1:CwoJCAcGBQQDAgEA:Z2HW4OQvvV6xhFynlxMV0g+VqyaBxQ==\n"
    "config:\n"
    "  aws:region: us-west-2\n"
    "  shop:replicas: 2\n"
    "  shop:db:\n"
    "    size: small\n"
    "    password:\n"
    "      secure: v1:ERERERERERERERER:czn0bC8HnPF1qq8xFwxtef4dp3T6RKnnHcF8ex0=\n"
    "  shop:zones: [a, b]\n";

Test(secret, a_pulumi_stack_file_is_imported_and_its_secrets_encrypted_again)
{
    tl_proj_new(&P, TPL, "  token: x\n", NULL);
    tl_write(P.dir, "Pulumi.dev.yaml", STACK);
    char *f = xasprintf("%s/Pulumi.dev.yaml", P.dir);
    struct tl_res r = RUN(WITH("PRENV_PASSPHRASE=pw-one", "PULUMI_CONFIG_PASSPHRASE=wrong"),
                          "config", "import-pulumi", f, "--env", "staging");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "wrong passphrase") && strstr(r.err, "Pulumi.dev.yaml:2"), "%s", r.err);
    tl_res_free(&r);
    r = RUN(WITH("PRENV_PASSPHRASE=pw-one", "PULUMI_CONFIG_PASSPHRASE=test-pass"), "config",
            "import-pulumi", f, "--env", "staging");
    OK(r);
    cr_assert(strstr(r.out, "imported 5 values (1 secret)"), "%s", r.out);
    tl_res_free(&r);
    char *cfg = xasprintf("%s/envs/staging.yaml", P.dir);
    char *text = tl_read(cfg);
    cr_assert(strstr(text, "imports: [base]"), "%s", text);
    cr_assert(strstr(text, "  aws:\n    region: us-west-2\n"), "%s", text);
    cr_assert(strstr(text, "    password:\n      secure: v1:"), "%s", text);
    cr_assert_null(strstr(text, "ERERERERERERERER"), "encrypted again under prenv's key");
    free(text);
    r = RUN(PASS, "config", "list", "--env", "staging", "--show-secrets");
    OK(r);
    cr_assert(strstr(r.out, "CANARY-sekrit"), "%s", r.out);
    cr_assert(strstr(r.out, "zones") && strstr(r.out, "replicas"), "%s", r.out);
    tl_res_free(&r);
    free(cfg);
    free(f);
}

Test(secret, rotating_the_passphrase_changes_no_plan_and_retires_the_old_one)
{
    set_secret();
    clean(RUN(PASS, "env", "up", "dev", "--yes"));
    char *py = xasprintf("%s/prenv.yaml", P.dir);
    char *before = tl_read(py);
    struct tl_res r = RUN(WITH("PRENV_PASSPHRASE=pw-one", "PRENV_NEW_PASSPHRASE=pw-new"),
                          "config", "rotate-passphrase");
    OK(r);
    cr_assert(strstr(r.out, "1 environment state"), "%s", r.out);
    tl_res_free(&r);
    char *after = tl_read(py);
    cr_assert(strcmp(before, after) != 0, "the salt changed");
    r = RUN(NOPASS, "env", "plan", "dev");
    cr_assert(strstr(r.out, "0 to update") && strstr(r.out, "1 unchanged"), "%s", r.out);
    clean(r);
    r = RUN(PASS, "config", "list", "--env", "dev", "--show-secrets");
    cr_assert_eq(r.code, 1, "the old passphrase is retired");
    tl_res_free(&r);
    r = RUN(WITH("PRENV_PASSPHRASE=pw-new"), "config", "list", "--env", "dev", "--show-secrets");
    OK(r);
    cr_assert(strstr(r.out, CANARY), "%s", r.out);
    tl_res_free(&r);
    clean(RUN(WITH("PRENV_PASSPHRASE=pw-new"), "env", "up", "dev", "--yes"));
    char found[4096] = "";
    cr_assert_eq(tl_files_with(P.dir, CANARY, found, sizeof found), 0, "plaintext in: %s", found);
    free(before);
    free(after);
    free(py);
}

/* End to end: the shop example (examples/shop) walked through as its README
 * tells a new user to, on a copy of it in a temporary project: a secret for
 * staging and one for prod, a reproducible build from build-artifact.sh
 * pinned to staging, the app reading its key and version, a promotion to prod
 * that its requester cannot approve and someone else can, config diff and
 * cost --by Environment. Two canary secrets must appear in no command's
 * output and no file. dev, with nothing pinned, still runs the source tree.
 * The copy gets the test's own port block and router address instead of the
 * example's 21000-21999 and :8080. Keys are derived with 1000 PBKDF2
 * iterations (PRENV_TEST_KDF_ITERATIONS). */
#include "tests/testlib.h"

#include "core/lib/crypto.h"
#include "core/lib/fs.h"
#include "core/lib/proc.h"
#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CANARY "CANARY-shop-staging-5d1f0c"
#define CANARY_PROD "CANARY-shop-prod-a83e21"
#define BASE_KEY "test-key-not-secret" /* envs/base.yaml's payment_key */

static struct tl_proj P;

static void fini(void)
{
    tl_proj_free(&P); /* destroys every env, prod with --unprotect */
}

TestSuite(example, .fini = fini, .timeout = 300);

#define ENV_AS(user)                                                                              \
    ((const char *const[]){"PRENV_TEST_KDF_ITERATIONS=1000", "PRENV_PASSPHRASE=shop-pass",       \
                           "PRENV_USER=" user, NULL})
#define AS(user, ...) tl_prenv(&P, (const char *const[]){__VA_ARGS__, NULL}, ENV_AS(user))
#define RUN(...) AS("alice", __VA_ARGS__)
#define OK(r)                                                                                     \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)

/* neither canary in what a command printed */
static void no_canary(const struct tl_res *r)
{
    const char *c[] = {CANARY, CANARY_PROD};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_null(strstr(r->out, c[i]), "stdout shows a secret:\n%s", r->out);
        cr_assert_null(strstr(r->err, c[i]), "stderr shows a secret:\n%s", r->err);
    }
}

/* the command ran fine and printed no secret; returns it for more checks */
static struct tl_res clean(struct tl_res r)
{
    OK(r);
    no_canary(&r);
    return r;
}

static void clean_free(struct tl_res r)
{
    r = clean(r);
    tl_res_free(&r);
}

/* copy the example's files (not its state, caches or builds) into dst */
static void copy_tree(const char *src, const char *dst, const char *rel)
{
    char *from = xasprintf("%s%s%s", src, *rel ? "/" : "", rel);
    DIR *d = opendir(from);
    cr_assert_not_null(d, "cannot open %s", from);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, ".prenv") ||
            !strcmp(n, "__pycache__") || !strcmp(n, "dist"))
            continue;
        char *sub = xasprintf("%s%s%s", rel, *rel ? "/" : "", n);
        char *path = xasprintf("%s/%s", src, sub);
        struct stat sb;
        cr_assert_eq(stat(path, &sb), 0, "%s", path);
        if (S_ISDIR(sb.st_mode)) {
            copy_tree(src, dst, sub);
        } else if (S_ISREG(sb.st_mode)) {
            char *text = tl_read(path);
            cr_assert_not_null(text, "%s", path);
            tl_write(dst, sub, text);
            free(text);
        }
        free(path);
        free(sub);
    }
    closedir(d);
    free(from);
}

/* text with the one occurrence of `from` replaced by `to` (the test fails
 * when the example no longer has it, rather than testing the wrong thing) */
static char *replace_once(char *text, const char *from, const char *to)
{
    char *at = strstr(text, from);
    cr_assert_not_null(at, "examples/shop/prenv.yaml no longer has '%s'", from);
    cr_assert_null(strstr(at + 1, from), "'%s' twice", from);
    struct sb b;
    sb_init(&b);
    sb_add(&b, text, (size_t)(at - text));
    sb_adds(&b, to);
    sb_adds(&b, at + strlen(from));
    free(text);
    return sb_steal(&b);
}

/* a temporary project holding a copy of examples/shop on this test's ports */
static void example_new(void)
{
    tl_proj_new(&P, "resources: {}\n", NULL, NULL); /* the dir, the port block, cleanup */
    const char *mine[] = {"prenv.yaml", "templates", "envs", "app.py"};
    for (size_t i = 0; i < sizeof mine / sizeof *mine; i++) {
        char *p = xasprintf("%s/%s", P.dir, mine[i]);
        struct err e = {0};
        cr_assert_eq(fs_rm_rf(p, &e), 0, "%s", e.msg);
        free(p);
    }
    copy_tree(PRENV_SRC "/examples/shop", P.dir, "");
    char *path = xasprintf("%s/prenv.yaml", P.dir);
    char *y = tl_read(path);
    char ports[64], listen[64];
    snprintf(ports, sizeof ports, "ports: %d-%d ", P.port_lo, P.port_hi - 2);
    snprintf(listen, sizeof listen, "listen: 127.0.0.1:%d\n", P.port_hi - 1);
    y = replace_once(y, "ports: 21000-21999 ", ports);
    y = replace_once(y, "listen: 127.0.0.1:8080\n", listen);
    tl_write(P.dir, "prenv.yaml", y);
    free(y);
    free(path);
}

/* bash build-artifact.sh OUT VERSION: its one line of output, "PATH@sha256:HEX" */
static char *build_artifact(const char *version)
{
    char *script = xasprintf("%s/build-artifact.sh", P.dir);
    char *out = xasprintf("%s/dist", P.dir);
    const char *argv[] = {"bash", script, out, version, NULL};
    struct proc_spec spec = {.argv = argv, .timeout_ms = 60000, .log_fd = -1, .out_cap = 4096};
    struct proc_result r;
    struct err e = {0};
    cr_assert_eq(proc_run(&spec, &r, &e), 0, "%s", e.msg);
    cr_assert(!r.signo && r.exit_code == 0, "build-artifact.sh failed: %s", r.err_tail);
    char *line = xstrdup(r.out);
    line[strcspn(line, "\n")] = 0;
    proc_result_release(&r);
    free(script);
    free(out);
    return line;
}

/* GET /api/info of env's first replica (outputs.direct) */
static char *info_of(const char *env)
{
    struct tl_res r = clean(RUN("env", "show", env, "--json"));
    char *direct = tl_json_str(r.out, "outputs.direct");
    tl_res_free(&r);
    cr_assert_not_null(direct);
    const char *colon = strrchr(direct, ':');
    cr_assert_not_null(colon, "%s", direct);
    int port = (int)strtol(colon + 1, NULL, 10);
    free(direct);
    char *body = NULL;
    cr_assert_eq(tl_http_get(port, "/api/info", &body), 200, "%s /api/info: %s", env,
                 body ? body : "(no answer)");
    cr_assert_null(strstr(body, CANARY), "the app serves its key: %s", body);
    cr_assert_null(strstr(body, CANARY_PROD), "the app serves its key: %s", body);
    return body;
}

/* the app has this key (by its fingerprint) and runs this version */
static void assert_app(const char *env, const char *key, const char *version)
{
    char *body = info_of(env);
    char hex[65];
    crypto_sha256_hex(key, strlen(key), hex);
    hex[8] = 0;
    char *fp = tl_json_str(body, "payment_key.sha256_8"), *v = tl_json_str(body, "version");
    cr_assert_not_null(fp, "%s", body);
    cr_assert_str_eq(fp, hex, "%s reads another key: %s", env, body);
    cr_assert_str_eq(v, version, "%s", body);
    cr_assert(strstr(body, "\"set\": true"), "%s", body);
    free(fp);
    free(v);
    free(body);
}

static char *digest_of(const char *env)
{
    struct tl_res r = clean(RUN("env", "show", env, "--json"));
    char *d = tl_json_str(r.out, "artifact.digest");
    tl_res_free(&r);
    return d;
}

Test(example, the_readme_walkthrough_secret_artifact_promotion_diff_and_cost)
{
    example_new();
    clean_free(RUN("template", "validate"));

    /* a secret for staging and one for prod; the files hold ciphertext */
    clean_free(RUN("config", "set", "payment_key", CANARY, "--env", "staging", "--secret"));
    clean_free(RUN("config", "set", "payment_key", CANARY_PROD, "--env", "prod", "--secret"));
    char *path = xasprintf("%s/envs/staging.yaml", P.dir);
    char *text = tl_read(path);
    cr_assert(strstr(text, "payment_key:\n    secure: v1:"), "%s", text);
    free(text);
    free(path);
    struct tl_res r = clean(RUN("config", "list", "--env", "staging"));
    cr_assert(strstr(r.out, "payment_key") && strstr(r.out, "[secret]"), "%s", r.out);
    tl_res_free(&r);

    /* a reproducible build: the same app/ gives the same digest */
    char *spec = build_artifact("1.4.0");
    char *again = build_artifact("1.4.0");
    cr_assert_str_eq(spec, again, "build-artifact.sh is not reproducible");
    free(again);
    const char *at = strstr(spec, "/dist/shop-1.4.0.tar.gz@sha256:");
    cr_assert_not_null(at, "%s", spec);
    char hex[65];
    snprintf(hex, sizeof hex, "%s", strstr(at, "@sha256:") + 8);
    cr_assert_eq(strlen(hex), 64, "%s", spec);

    /* plan: the service gets the key, masked */
    r = clean(RUN("env", "plan", "staging", "--json"));
    cr_assert(strstr(r.out, "PAYMENT_API_KEY"), "%s", r.out);
    cr_assert(strstr(r.out, "[secret]"), "%s", r.out);
    tl_res_free(&r);

    /* staging runs the build: unpacked under its work dir, its version */
    r = clean(RUN("env", "up", "staging", "--yes", "--artifact", spec));
    cr_assert(strstr(r.out, "version: 1.4.0"), "%s", r.out);
    tl_res_free(&r);
    assert_app("staging", CANARY, "1.4.0");
    r = clean(RUN("env", "show", "staging", "--json"));
    char *built = xasprintf("/work/staging/builds/%s", hex);
    cr_assert(strstr(r.out, built), "code does not run from the unpacked build:\n%s", r.out);
    free(built);
    tl_res_free(&r);
    clean_free(RUN("env", "show", "staging"));
    r = clean(RUN("env", "logs", "staging", "web"));
    cr_assert(strstr(r.out, "version 1.4.0") && strstr(r.out, "payment key set"), "%s", r.out);
    tl_res_free(&r);
    r = clean(RUN("env", "plan", "staging"));
    cr_assert(strstr(r.out, "0 to create, 0 to update"), "a second plan changes nothing: %s",
              r.out);
    tl_res_free(&r);
    char *staging_digest = digest_of("staging");
    cr_assert_not_null(staging_digest);
    cr_assert_str_eq(staging_digest + 7, hex);

    /* dev pins nothing: the source tree, version "dev", base's test key */
    clean_free(RUN("env", "up", "dev", "--yes"));
    assert_app("dev", BASE_KEY, "dev");
    clean_free(RUN("env", "destroy", "dev", "--yes"));

    /* promote staging -> prod as alice: a pending request with the diff */
    r = clean(AS("alice", "promote", "staging", "prod"));
    cr_assert(strstr(r.out, "needs approval"), "%s", r.out);
    cr_assert(strstr(r.out, "payment_key"), "the diff names the key: %s", r.out);
    tl_res_free(&r);
    r = clean(RUN("promotions", "--pending", "--json"));
    char *id = tl_json_str(r.out, "0.id");
    cr_assert_not_null(id, "%s", r.out);
    tl_res_free(&r);
    char *prod_state = xasprintf("%s/state/prod.json", P.state);
    cr_assert(!tl_exists(prod_state), "a pending promotion changes nothing yet");

    /* alice cannot approve her own request; bob can */
    r = AS("alice", "approve", id, "--yes");
    no_canary(&r);
    cr_assert_eq(r.code, 1, "exit %d\n%s%s", r.code, r.out, r.err);
    cr_assert(strstr(r.err, "needs approval by someone else"), "%s", r.err);
    tl_res_free(&r);
    cr_assert(!tl_exists(prod_state));
    r = clean(AS("bob", "approve", id, "--yes"));
    cr_assert(strstr(r.out, "applied: prod runs sha256:"), "%s", r.out);
    tl_res_free(&r);
    char *prod_digest = digest_of("prod");
    cr_assert_not_null(prod_digest);
    cr_assert_str_eq(prod_digest, staging_digest, "prod runs another build");
    assert_app("prod", CANARY_PROD, "1.4.0");
    clean_free(RUN("env", "logs", "prod", "web"));

    /* config diff: the keys differ, the values are not shown */
    r = clean(RUN("config", "diff", "staging", "prod"));
    cr_assert(strstr(r.out, "payment_key") && strstr(r.out, "[secret]"), "%s", r.out);
    cr_assert(strstr(r.out, "replicas"), "%s", r.out);
    tl_res_free(&r);

    /* cost by the Environment tag: a table with a row per env and a total */
    r = clean(RUN("cost", "--by", "Environment"));
    cr_assert(strstr(r.out, "Environment") && strstr(r.out, "staging") &&
                  strstr(r.out, "prod") && strstr(r.out, "total"),
              "%s", r.out);
    tl_res_free(&r);

    /* no file under the project or its state holds either secret */
    char found[4096] = "";
    cr_assert_eq(tl_files_with(P.dir, CANARY, found, sizeof found), 0, "plaintext in: %s", found);
    cr_assert_eq(tl_files_with(P.dir, CANARY_PROD, found, sizeof found), 0, "plaintext in: %s",
                 found);

    /* tear down: prod needs --unprotect; then nothing is left */
    clean_free(RUN("env", "destroy", "staging", "--yes"));
    r = RUN("env", "destroy", "prod", "--yes");
    cr_assert_neq(r.code, 0, "prod is protected");
    tl_res_free(&r);
    clean_free(RUN("env", "destroy", "prod", "--yes", "--unprotect"));
    r = clean(RUN("env", "list", "--json"));
    cr_assert(strstr(r.out, "[]"), "%s", r.out);
    tl_res_free(&r);
    cr_assert_eq(tl_procs_in(P.dir), 0, "processes left in %s", P.dir);
    cr_assert_eq(tl_files_with(P.dir, CANARY, found, sizeof found), 0, "plaintext in: %s", found);

    free(prod_state);
    free(prod_digest);
    free(id);
    free(staging_digest);
    free(spec);
}

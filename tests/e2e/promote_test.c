/* End to end: build once, promote the same artifact. The real binary pins a
 * file by digest, promotes it between stages (with and without approval by
 * someone else) and the template's command hashes the file it was given
 * through ${artifact.path}, so the tests see the bytes the env really ran. */
#include "tests/testlib.h"

#include "core/lib/crypto.h"
#include "core/lib/xalloc.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* `run` hashes the file the env was given; its output is what ran */
static const char *const TPL =
    "resources:\n"
    "  run:\n"
    "    type: exec.command\n"
    "    properties:\n"
    "      create: [python3, -c, \"import hashlib, sys; "
    "print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())\", \"${artifact.path}\"]\n"
    "      triggers: ${artifact.digest}\n"
    "outputs:\n"
    "  ran: ${run.stdout}\n"
    "  name: ${artifact.name}\n"
    "  version: ${artifact.version}\n"
    "  digest: ${artifact.digest}\n";

static const char *const STAGES = "stages:\n"
                                   "  dev: {config: envs/dev.yaml}\n"
                                   "  staging: {config: envs/staging.yaml}\n"
                                   "  prod: {config: envs/prod.yaml, protect: true, approval: "
                                   "required}\n";

static struct tl_proj P;

static void fini(void)
{
    tl_proj_free(&P);
}

TestSuite(promote, .fini = fini, .timeout = 120);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)
#define AS(user, ...)                                                                             \
    tl_prenv(&P, (const char *const[]){__VA_ARGS__, NULL},                                       \
             (const char *const[]){"PRENV_USER=" user, NULL})
#define OK(r)                                                                                     \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)
#define CODE(r, c)                                                                                \
    cr_assert_eq((r).code, (c), "exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", (r).code, (c),     \
                 (r).out, (r).err)

/* write text as the project's build artifact; *spec is "rel@sha256:hex" */
static void build(const char *rel, const char *text, char **spec, char hex[65])
{
    tl_write(P.dir, rel, text);
    crypto_sha256_hex(text, strlen(text), hex);
    *spec = xasprintf("%s@sha256:%s", rel, hex);
}

static char *out_of(const char *env, const char *field)
{
    struct tl_res r = RUN("env", "show", env, "--json");
    OK(r);
    char *path = xasprintf("outputs.%s", field);
    char *v = tl_json_str(r.out, path);
    free(path);
    tl_res_free(&r);
    return v;
}

/* the env's command hashed exactly these bytes */
static void assert_ran(const char *env, const char *hex)
{
    char *ran = out_of(env, "ran");
    cr_assert_not_null(ran, "%s has no 'ran' output", env);
    cr_assert(!strncmp(ran, hex, 64), "%s ran %s, not the pinned %s", env, ran, hex);
    free(ran);
}

static char *pending_id(const char *json)
{
    char *id = tl_json_str(json, "promotion.id");
    cr_assert_not_null(id, "no promotion id in %s", json);
    cr_assert_eq(strlen(id), 6);
    return id;
}

Test(promote, a_digest_mismatch_is_refused_and_nothing_is_pinned_or_stored)
{
    tl_proj_new(&P, TPL, NULL, STAGES);
    char *spec, hex[65];
    build("dist/shop-1.4.0.tar.gz", "the build\n", &spec, hex);
    char *wrong = xasprintf("dist/shop-1.4.0.tar.gz@sha256:%064d", 0);
    struct tl_res r = RUN("env", "up", "dev", "--yes", "--artifact", wrong);
    CODE(r, 1);
    cr_assert(strstr(r.err, "digest mismatch"), "%s", r.err);
    char *want = xasprintf("expected sha256:%064d, got sha256:%s", 0, hex);
    cr_assert(strstr(r.err, want), "the error names both digests: %s", r.err);
    cr_assert(strstr(r.err, "hint:") && strstr(r.err, spec), "and what to pin instead: %s", r.err);
    tl_res_free(&r);
    char *st = xasprintf("%s/state/dev.json", P.state);
    cr_assert(!tl_exists(st), "a refused pin must not create the env");
    char *store = xasprintf("%s/artifacts/sha256", P.state);
    cr_assert_eq(tl_count_files(store), 0, "the store must not keep refused bytes");

    r = RUN("env", "up", "dev", "--yes", "--artifact", "dist/shop-1.4.0.tar.gz");
    CODE(r, 2);
    cr_assert(strstr(r.err, "has no digest: write it URI@sha256:HEX"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes", "--artifact", "dist/shop-1.4.0.tar.gz@sha256:abc");
    CODE(r, 2);
    cr_assert(strstr(r.err, "is not a SHA-256 digest (64 hex digits)"), "%s", r.err);
    tl_res_free(&r);
    char *missing = xasprintf("dist/nope.tar.gz@sha256:%s", hex);
    r = RUN("env", "up", "dev", "--yes", "--artifact", missing);
    CODE(r, 1);
    cr_assert(strstr(r.err, "cannot read") && strstr(r.err, "dist/nope.tar.gz"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes", "--artifact-name", "x");
    CODE(r, 2);
    cr_assert(strstr(r.err, "go with --artifact"), "%s", r.err);
    tl_res_free(&r);
    free(missing);
    free(store);
    free(st);
    free(want);
    free(wrong);
    free(spec);
}

Test(promote, a_pinned_env_runs_the_stored_bytes_even_after_the_source_changes)
{
    tl_proj_new(&P, TPL, NULL, STAGES);
    char *spec, hex[65];
    build("dist/shop-1.4.0.tar.gz", "version one\n", &spec, hex);
    struct tl_res r = RUN("env", "up", "dev", "--yes", "--artifact", spec);
    OK(r);
    tl_res_free(&r);
    assert_ran("dev", hex);
    char *name = out_of("dev", "name"), *version = out_of("dev", "version");
    cr_assert_str_eq(name, "shop");
    cr_assert_str_eq(version, "1.4.0");
    free(name);
    free(version);

    /* the source is rebuilt in place: the env keeps running its stored copy */
    tl_write(P.dir, "dist/shop-1.4.0.tar.gz", "someone rebuilt it\n");
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "nothing to do"), "%s", r.out);
    tl_res_free(&r);
    assert_ran("dev", hex);

    /* a damaged stored copy is caught, and cannot be restored from a source
     * that no longer has those bytes */
    char *stored = xasprintf("%s/artifacts/sha256/%s", P.state, hex);
    chmod(stored, 0644);
    FILE *f = fopen(stored, "w");
    cr_assert_not_null(f);
    fputs("tampered\n", f);
    fclose(f);
    r = RUN("env", "up", "dev", "--yes");
    CODE(r, 1);
    cr_assert(strstr(r.err, "stored copy of artifact 'shop' is damaged"), "%s", r.err);
    cr_assert(strstr(r.err, "digest mismatch"), "%s", r.err);
    tl_res_free(&r);
    /* with the original bytes back at the source, the next up restores it */
    tl_write(P.dir, "dist/shop-1.4.0.tar.gz", "version one\n");
    r = RUN("env", "up", "dev", "--yes");
    OK(r);
    tl_res_free(&r);
    char *text = tl_read(stored);
    cr_assert_str_eq(text, "version one\n");
    free(text);
    free(stored);

    /* names from options; file:// URIs */
    char *abs = xasprintf("file://%s/dist/shop-1.4.0.tar.gz@sha256:%s", P.dir, hex);
    r = RUN("env", "up", "staging", "--yes", "--artifact", abs, "--artifact-name", "web",
            "--artifact-version", "2026.1");
    OK(r);
    tl_res_free(&r);
    name = out_of("staging", "name");
    version = out_of("staging", "version");
    cr_assert_str_eq(name, "web");
    cr_assert_str_eq(version, "2026.1");
    assert_ran("staging", hex);
    free(name);
    free(version);
    free(abs);
    free(spec);
}

Test(promote, approval_needs_someone_else_and_the_target_runs_the_same_bytes)
{
    tl_proj_new(&P, TPL, NULL, STAGES);
    char *spec, hex[65];
    build("dist/shop-2.0.0.tar.gz", "two point oh\n", &spec, hex);
    struct tl_res r = AS("alice", "env", "up", "staging", "--yes", "--artifact", spec);
    OK(r);
    tl_res_free(&r);

    r = AS("alice", "promote", "staging", "prod", "--json");
    OK(r);
    char *id = pending_id(r.out);
    char *state = tl_json_str(r.out, "promotion.state"),
         *by = tl_json_str(r.out, "promotion.requested_by");
    cr_assert_str_eq(state, "pending");
    cr_assert_str_eq(by, "alice");
    free(state);
    free(by);
    tl_res_free(&r);
    char *prod_state = xasprintf("%s/state/prod.json", P.state);
    cr_assert(!tl_exists(prod_state), "a pending promotion changes nothing yet");

    /* the requester cannot approve it, in any spelling */
    r = AS("Alice", "approve", id, "--yes");
    CODE(r, 1);
    char *msg = xasprintf("you (Alice) requested promotion %s: it needs approval by someone else",
                          id);
    cr_assert(strstr(r.err, msg), "%s", r.err);
    tl_res_free(&r);
    cr_assert(!tl_exists(prod_state));

    r = AS("bob", "approve", id, "--yes");
    OK(r);
    cr_assert(strstr(r.out, "config differences"), "the diff is shown: %s", r.out);
    cr_assert(strstr(r.out, "applied: prod runs sha256:"), "%s", r.out);
    tl_res_free(&r);
    assert_ran("prod", hex);
    assert_ran("staging", hex);

    /* the source changing afterwards changes nothing in prod */
    tl_write(P.dir, "dist/shop-2.0.0.tar.gz", "rebuilt, different\n");
    r = RUN("env", "up", "prod", "--yes");
    OK(r);
    tl_res_free(&r);
    assert_ran("prod", hex);

    /* env show names the build, its whole digest and where it came from */
    r = RUN("env", "show", "prod");
    OK(r);
    char *line = xasprintf("artifact   shop 2.0.0 sha256:%s\n", hex);
    cr_assert(strstr(r.out, line), "%s", r.out);
    cr_assert(strstr(r.out, ", promoted from staging\n"), "%s", r.out);
    free(line);
    tl_res_free(&r);

    /* the history of prod says who asked, who approved, and what */
    r = RUN("env", "show", "prod", "--json", "--history", "20");
    OK(r);
    cr_assert(strstr(r.out, "\"operation\": \"promote\"") ||
                  strstr(r.out, "\"operation\":\"promote\""),
              "%s", r.out);
    tl_res_free(&r);
    char *hpath = xasprintf("%s/history/prod.jsonl", P.state);
    char *hist = tl_read(hpath);
    cr_assert_not_null(hist);
    char *applied = NULL;
    for (char *l = hist; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = 0;
        if (strstr(l, "\"operation\":\"promote\"") && strstr(l, "\"result\":\"ok\""))
            applied = l;
        l = nl ? nl + 1 : NULL;
    }
    cr_assert_not_null(applied, "no applied promotion in prod's history:\n%s", hist);
    char *digest = xasprintf("\"artifact\":\"sha256:%s\"", hex);
    char *pid = xasprintf("\"promotion\":\"%s\"", id);
    cr_assert(strstr(applied, "\"requested_by\":\"alice\""), "%s", applied);
    cr_assert(strstr(applied, "\"approved_by\":\"bob\""), "%s", applied);
    cr_assert(strstr(applied, "\"user\":\"bob\""), "%s", applied);
    cr_assert(strstr(applied, digest), "%s", applied);
    cr_assert(strstr(applied, pid), "%s", applied);
    cr_assert(strstr(applied, "\"from\":\"staging\""), "%s", applied);

    /* and the record says it was applied; approving again is refused */
    r = RUN("promotions", "--json");
    OK(r);
    char *st = tl_json_str(r.out, "0.state"), *ab = tl_json_str(r.out, "0.approved_by");
    cr_assert_str_eq(st, "applied");
    cr_assert_str_eq(ab, "bob");
    free(st);
    free(ab);
    tl_res_free(&r);
    r = AS("carol", "approve", id, "--yes");
    CODE(r, 1);
    cr_assert(strstr(r.err, "is applied by bob, not pending"), "%s", r.err);
    tl_res_free(&r);
    free(pid);
    free(digest);
    free(hist);
    free(hpath);
    free(msg);
    free(prod_state);
    free(id);
    free(spec);
}

Test(promote, a_pending_promotion_is_a_file_that_outlives_the_process)
{
    tl_proj_new(&P, TPL, NULL, STAGES);
    char *spec, hex[65];
    build("dist/app.py", "print('hi')\n", &spec, hex);
    struct tl_res r = AS("alice", "env", "up", "staging", "--yes", "--artifact", spec);
    OK(r);
    tl_res_free(&r);
    r = AS("alice", "promote", "staging", "prod");
    OK(r);
    cr_assert(strstr(r.out, "is pending"), "%s", r.out);
    tl_res_free(&r);
    /* a second request for the same pair supersedes the first */
    r = AS("alice", "promote", "staging", "prod", "--json");
    OK(r);
    char *id = pending_id(r.out);
    tl_res_free(&r);
    char *file = xasprintf("%s/promotions/%s.json", P.state, id);
    cr_assert(tl_exists(file), "the pending promotion is stored in %s", file);
    char *text = tl_read(file);
    cr_assert(strstr(text, "\"pending\"") && strstr(text, hex), "%s", text);
    free(text);

    /* a new process (a restart) lists it, with its derived name and version */
    r = RUN("promotions", "--json", "--pending");
    OK(r);
    char *lid = tl_json_str(r.out, "0.id"), *name = tl_json_str(r.out, "0.artifact.name"),
         *ver = tl_json_str(r.out, "0.artifact.version"), *dg = tl_json_str(r.out, "0.digest");
    cr_assert_str_eq(lid, id);
    cr_assert_str_eq(name, "app");
    cr_assert_eq(strlen(ver), 12, "no version in the file name: the digest's first 12: %s", ver);
    cr_assert(!strncmp(ver, hex, 12));
    cr_assert(!strncmp(dg, "sha256:", 7) && !strcmp(dg + 7, hex));
    cr_assert_null(tl_json_str(r.out, "1.id"), "only one is pending: %s", r.out);
    free(lid);
    free(name);
    free(ver);
    free(dg);
    tl_res_free(&r);
    r = RUN("promotions");
    OK(r);
    cr_assert(strstr(r.out, "superseded") && strstr(r.out, "pending"), "%s", r.out);
    tl_res_free(&r);

    r = AS("bob", "approve", id, "--yes");
    OK(r);
    tl_res_free(&r);
    assert_ran("prod", hex);
    free(file);
    free(id);
    free(spec);
}

Test(promote, a_source_re_pinned_since_the_request_is_refused_at_approval)
{
    tl_proj_new(&P, TPL, NULL, STAGES);
    char *spec1, *spec2, hex1[65], hex2[65];
    build("dist/shop-1.0.0.tgz", "one\n", &spec1, hex1);
    build("dist/shop-1.1.0.tgz", "one point one\n", &spec2, hex2);
    struct tl_res r = AS("alice", "env", "up", "staging", "--yes", "--artifact", spec1);
    OK(r);
    tl_res_free(&r);
    r = AS("alice", "promote", "staging", "prod", "--json");
    OK(r);
    char *id = pending_id(r.out);
    tl_res_free(&r);
    r = AS("alice", "env", "up", "staging", "--yes", "--artifact", spec2);
    OK(r);
    tl_res_free(&r);
    r = AS("bob", "approve", id, "--yes");
    CODE(r, 1);
    cr_assert(strstr(r.err, "'staging' was re-pinned since it was requested"), "%s", r.err);
    cr_assert(strstr(r.err, hex1) && strstr(r.err, hex2), "both digests: %s", r.err);
    cr_assert(strstr(r.err, "prenv promote staging prod"), "%s", r.err);
    tl_res_free(&r);
    char *prod_state = xasprintf("%s/state/prod.json", P.state);
    cr_assert(!tl_exists(prod_state));

    /* a rejection is recorded too */
    r = AS("bob", "reject", id, "--reason", "stale");
    OK(r);
    cr_assert(strstr(r.out, "rejected by bob"), "%s", r.out);
    tl_res_free(&r);
    r = AS("carol", "approve", id, "--yes");
    CODE(r, 1);
    cr_assert(strstr(r.err, "is rejected by bob, not pending"), "%s", r.err);
    tl_res_free(&r);
    char *hpath = xasprintf("%s/history/prod.jsonl", P.state);
    char *hist = tl_read(hpath);
    cr_assert(hist && strstr(hist, "\"result\":\"rejected\"") &&
                  strstr(hist, "\"rejected_by\":\"bob\""),
              "%s", hist ? hist : "(none)");
    free(hist);
    free(hpath);
    free(prod_state);
    free(id);
    free(spec1);
    free(spec2);
}

Test(promote, without_approval_promote_applies_at_once_and_records_it)
{
    tl_proj_new(&P, TPL, NULL, STAGES);
    char *spec, hex[65];
    build("dist/shop-3.0.0.tar.gz", "three\n", &spec, hex);
    struct tl_res r = AS("alice", "env", "up", "dev", "--yes", "--artifact", spec);
    OK(r);
    tl_res_free(&r);
    r = AS("alice", "promote", "dev", "staging");
    CODE(r, 2);
    cr_assert(strstr(r.err, "without confirmation") && strstr(r.err, "--yes"), "%s", r.err);
    tl_res_free(&r);
    r = AS("alice", "promote", "dev", "staging", "--yes", "--json");
    OK(r);
    char *res = tl_json_str(r.out, "result"), *from = tl_json_str(r.out, "promotion.from"),
         *dg = tl_json_str(r.out, "artifact.digest");
    cr_assert_str_eq(res, "ok");
    cr_assert_str_eq(from, "dev");
    cr_assert(dg && !strcmp(dg + 7, hex), "%s", r.out);
    free(res);
    free(from);
    free(dg);
    tl_res_free(&r);
    assert_ran("staging", hex);
    r = RUN("promotions", "--json");
    OK(r);
    char *st = tl_json_str(r.out, "0.state"), *by = tl_json_str(r.out, "0.requested_by");
    cr_assert_str_eq(st, "applied");
    cr_assert_str_eq(by, "alice");
    free(st);
    free(by);
    tl_res_free(&r);
    /* promoting what is already there is an up with nothing to do, still recorded */
    r = AS("alice", "promote", "dev", "staging", "--yes");
    OK(r);
    cr_assert(strstr(r.out, "nothing to do"), "%s", r.out);
    tl_res_free(&r);
    char *hpath = xasprintf("%s/history/staging.jsonl", P.state);
    char *hist = tl_read(hpath);
    size_t n = 0;
    for (const char *p = hist; (p = strstr(p, "\"operation\":\"promote\"")); p++)
        n++;
    cr_assert_eq(n, 2, "%s", hist);
    free(hist);
    free(hpath);
    free(spec);
}

Test(promote, bad_ids_unknown_envs_and_nothing_to_promote_are_clear_errors)
{
    /* a template that needs no artifact, so an env can exist without one */
    tl_proj_new(&P,
                "resources:\n  run:\n    type: exec.command\n    properties:\n"
                "      create: [python3, -c, pass]\n",
                NULL, STAGES);
    struct tl_res r = RUN("approve", "nothex", "--yes");
    CODE(r, 2);
    cr_assert(strstr(r.err, "'nothex' is not a promotion id: ids are 6 hex digits"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("reject", "../../etc");
    CODE(r, 2);
    tl_res_free(&r);
    r = RUN("approve", "abc123", "--yes");
    CODE(r, 1);
    cr_assert(strstr(r.err, "no promotion 'abc123'") && strstr(r.err, "prenv promotions"), "%s",
              r.err);
    tl_res_free(&r);
    r = RUN("approve");
    CODE(r, 2);
    tl_res_free(&r);

    r = RUN("promote", "staging", "prdo", "--yes");
    cr_assert_neq(r.code, 0);
    cr_assert(strstr(r.err, "staging"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "up", "staging", "--yes");
    OK(r);
    tl_res_free(&r);
    r = RUN("promote", "staging", "prdo", "--yes");
    CODE(r, 1); /* as `env up prdo`: an unknown env is a failure, not a usage error */
    cr_assert(strstr(r.err, "prdo") && strstr(r.err, "did you mean 'prod'"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("promote", "staging", "prod");
    CODE(r, 1);
    cr_assert(strstr(r.err, "'staging' has no pinned artifact: there is nothing to promote"),
              "%s", r.err);
    tl_res_free(&r);
    r = RUN("promote", "staging", "staging", "--yes");
    CODE(r, 2);
    cr_assert(strstr(r.err, "into itself"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("promotions");
    OK(r);
    cr_assert(strstr(r.out, "no promotions"), "%s", r.out);
    tl_res_free(&r);
}

Test(promote, approval_values_other_than_required_or_none_point_at_the_file)
{
    tl_proj_new(&P, TPL, NULL,
                "stages:\n  dev: {config: envs/dev.yaml}\n  prod: {config: envs/prod.yaml, "
                "approval: yes}\n");
    struct tl_res r = RUN("promotions");
    CODE(r, 1);
    cr_assert(strstr(r.err, "prenv.yaml:") && strstr(r.err, "approval 'yes' is not one of: "
                                                             "required, none"),
              "%s", r.err);
    tl_res_free(&r);
}

/* a loopback HTTP server in a child process: GET /NAME answers body, anything
 * else 404. The child works in the project dir, so the suite's cleanup kills
 * it even when an assertion stops the test first. */
static pid_t serve_one_file(const char *name, const char *body, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)P.port_hi)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0, "bind %d", P.port_hi);
    cr_assert_eq(listen(fd, 8), 0);
    *port = P.port_hi;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid) {
        close(fd);
        return pid;
    }
    if (chdir(P.dir) != 0)
        _exit(1);
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            continue;
        char req[2048];
        size_t n = 0;
        while (n < sizeof req - 1 && !memmem(req, n, "\r\n\r\n", 4)) {
            ssize_t k = read(c, req + n, sizeof req - 1 - n);
            if (k <= 0)
                break;
            n += (size_t)k;
        }
        req[n] = 0;
        char want[256];
        snprintf(want, sizeof want, "GET /%s ", name);
        char head[256];
        bool hit = !strncmp(req, want, strlen(want));
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                          hit ? "200 OK" : "404 Not Found", hit ? strlen(body) : 0);
        if (write(c, head, (size_t)hl) < 0 || (hit && write(c, body, strlen(body)) < 0))
            _exit(1);
        close(c);
    }
}

Test(promote, an_http_artifact_is_downloaded_verified_and_promoted)
{
    tl_proj_new(&P, TPL, NULL, STAGES);
    const char *body = "served over http\n";
    char hex[65];
    crypto_sha256_hex(body, strlen(body), hex);
    int port = 0;
    pid_t srv = serve_one_file("shop-5.0.1.tar.gz", body, &port);
    char *spec = xasprintf("http://127.0.0.1:%d/shop-5.0.1.tar.gz@sha256:%s", port, hex);
    char *missing = xasprintf("http://127.0.0.1:%d/gone.tgz@sha256:%s", port, hex);
    struct tl_res r = RUN("env", "up", "dev", "--yes", "--artifact", missing);
    CODE(r, 1);
    cr_assert(strstr(r.err, "the server answered HTTP 404"), "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "up", "dev", "--yes", "--artifact", spec);
    OK(r);
    tl_res_free(&r);
    kill(srv, SIGKILL);
    waitpid(srv, NULL, 0);
    assert_ran("dev", hex);
    char *v = out_of("dev", "version");
    cr_assert_str_eq(v, "5.0.1");
    free(v);
    /* the server is gone: the stored copy is what staging gets */
    r = RUN("promote", "dev", "staging", "--yes");
    OK(r);
    tl_res_free(&r);
    assert_ran("staging", hex);
    free(missing);
    free(spec);
}

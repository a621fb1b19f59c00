/* Tests for hooks/report (and core/net/client under it): every test starts
 * its own loopback GitHub API (tests/fixtures/github_api.py) as a child
 * process, drives a reporter on a real libuv loop, then reads back what the
 * server received (GET /_requests) and asserts the exact request sequence
 * and bodies. The child dies with the test (PR_SET_PDEATHSIG) and is killed
 * in .fini even when an assertion failed. Nothing asserts on timings; loops
 * run under a generous watchdog so a bug fails instead of hanging. Every
 * test that gets to its end closes all handles, asserts uv_loop_close() == 0
 * and, under ASan, that nothing leaked. */
#include "hooks/report.h"

#include "core/lib/err.h"
#include "core/lib/fs.h"
#include "core/lib/proc.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/net/client.h"
#include "tests/testlib.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define TOKEN "ghp_prenvTESTtoken0123456789abcdefSECRET"
#define MAL_TOKEN "ghp_malloryTOKEN0123456789"
#define REPO "octo/app"
#define SHA1 "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA2 "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA3 "3333333ccccccccccccccccccccccccccccccccc"
#define URL "https://pr-42.preview.example.com/"
#define WATCHDOG_MS 90000

static struct {
    char *dir;
    pid_t srv;
    int port;
    char *api;
    uv_loop_t loop;
    bool loop_ok;
    struct reporter *r;
    struct net_client cli;
    bool cli_ok;
} fx;

static void setup(void)
{
    memset(&fx, 0, sizeof fx);
    fx.srv = -1;
    fx.dir = tl_tmpdir("report");
    cr_assert_eq(uv_loop_init(&fx.loop), 0);
    fx.loop_ok = true;
    unsetenv("PRENV_GITHUB_TOKEN");
    unsetenv("PRENV_CA_FILE");
}

static void on_flag_closed(void *arg)
{
    *(int *)arg = 1;
}

static int cli_closed;
static void on_cli_closed(struct net_client *c)
{
    (void)c;
    cli_closed = 1;
}

static void srv_stop(void)
{
    if (fx.srv > 0) {
        kill(fx.srv, SIGKILL);
        while (waitpid(fx.srv, NULL, 0) < 0 && errno == EINTR)
            ;
        fx.srv = -1;
    }
}

/* close whatever the test left open; no assertions (a test may have failed) */
static void teardown(void)
{
    if (fx.r) {
        int closed = 0;
        report_close(fx.r, on_flag_closed, &closed);
        fx.r = NULL;
        for (int i = 0; i < 10000 && !closed; i++)
            uv_run(&fx.loop, UV_RUN_ONCE);
    }
    if (fx.cli_ok) {
        net_client_close(&fx.cli, on_cli_closed);
        fx.cli_ok = false;
    }
    if (fx.loop_ok) {
        uv_run(&fx.loop, UV_RUN_DEFAULT);
        uv_loop_close(&fx.loop);
        fx.loop_ok = false;
    }
    srv_stop();
    if (fx.dir) {
        struct err e = {0};
        fs_rm_rf(fx.dir, &e);
        err_release(&e);
        free(fx.dir);
    }
    free(fx.api);
    memset(&fx, 0, sizeof fx);
}

TestSuite(report, .init = setup, .fini = teardown, .timeout = 180);

/* ---- the fixture server ------------------------------------------------- */

/* srv_start: github_api.py with our two tokens and extra options
 * (NULL-terminated); sets fx.port and fx.api */
static void srv_start(const char *const *extra)
{
    const char *argv[48];
    size_t n = 0;
    char *script = xasprintf("%s/tests/fixtures/github_api.py", PRENV_SRC);
    argv[n++] = "python3";
    argv[n++] = script;
    argv[n++] = "--dir";
    argv[n++] = fx.dir;
    argv[n++] = "--token";
    argv[n++] = TOKEN ":prenv-bot";
    argv[n++] = "--token";
    argv[n++] = MAL_TOKEN ":mallory";
    for (size_t i = 0; extra && extra[i] && n < 46; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int pfd[2];
    cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, whatever happens */
        dup2(pfd[1], 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    free(script);
    fx.srv = pid;
    char buf[64] = {0};
    size_t got = 0;
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    while (got < sizeof buf - 1 && !memchr(buf, '\n', got)) {
        int rc = poll(&p, 1, 20000);
        if (rc <= 0)
            break;
        ssize_t k = read(pfd[0], buf + got, sizeof buf - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(pfd[0]);
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = 0;
    long long port = 0;
    cr_assert(str_parse_int(buf, 1, 65535, &port),
              "github_api.py did not print its port (got '%s')", buf);
    fx.port = (int)port;
    fx.api = xasprintf("http://127.0.0.1:%d", fx.port);
}
#define SRV(...) srv_start((const char *const[]){__VA_ARGS__, NULL})

static void run_until(const int *flag)
{
    long long end = tm_mono_ms() + WATCHDOG_MS;
    while (!*flag) {
        cr_assert(tm_mono_ms() < end, "the loop did not get there in %d ms", WATCHDOG_MS);
        uv_run(&fx.loop, UV_RUN_ONCE);
    }
}

static char *srv_get(const char *path)
{
    char *body = NULL;
    int st = tl_http_get(fx.port, path, &body);
    cr_assert_eq(st, 200, "GET %s: %d", path, st);
    return body;
}

static cJSON *requests(void)
{
    char *body = srv_get("/_requests");
    cJSON *j = cJSON_Parse(body);
    free(body);
    cr_assert(cJSON_IsArray(j));
    return j;
}

/* the requests as "METHOD path status" lines, from index from on */
static char *seq(const cJSON *reqs, int from)
{
    struct sb b;
    sb_init(&b);
    for (int i = from; i < cJSON_GetArraySize(reqs); i++) {
        const cJSON *x = cJSON_GetArrayItem(reqs, i);
        sb_addf(&b, "%s %s %d\n", cJSON_GetObjectItem(x, "method")->valuestring,
                cJSON_GetObjectItem(x, "path")->valuestring,
                (int)cJSON_GetObjectItem(x, "status")->valuedouble);
    }
    return sb_steal(&b);
}

static void assert_seq(const cJSON *reqs, int from, const char *want)
{
    char *got = seq(reqs, from);
    cr_assert_str_eq(got, want, "request sequence:\n%s\nwanted:\n%s", got, want);
    free(got);
}

static const cJSON *req_body(const cJSON *reqs, int i)
{
    const cJSON *x = cJSON_GetArrayItem(reqs, i);
    cr_assert(x, "no request %d", i);
    return cJSON_GetObjectItem(x, "body");
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* ---- the client, for seeding and its own tests ------------------------- */

struct cres {
    int done;
    int status, code;
    char *msg, *body, *ctype;
};

static void on_cli(struct net_resp *resp, struct err *e, void *ctx)
{
    struct cres *c = ctx;
    c->done++;
    c->status = resp->status;
    c->code = e->code;
    c->msg = e->msg ? xstrdup(e->msg) : NULL;
    c->body = resp->body; /* taken */
    resp->body = NULL;
    const char *ct = net_resp_header(resp, "content-type");
    c->ctype = ct ? xstrdup(ct) : NULL;
}

static void cres_free(struct cres *c)
{
    free(c->msg);
    free(c->body);
    free(c->ctype);
    memset(c, 0, sizeof *c);
}

static void cli_start(void)
{
    if (!fx.cli_ok) {
        struct err e = {0};
        cr_assert_eq(net_client_start(&fx.cli, &fx.loop, &e), 0);
        fx.cli_ok = true;
    }
}

/* cli_call: one request to the fixture with token; returns its status */
static int cli_call(const char *method, const char *path, const char *token, const char *body)
{
    cli_start();
    char *url = xasprintf("%s%s", fx.api, path);
    char *auth = token ? xasprintf("Authorization: Bearer %s", token) : NULL;
    const char *hdrs[] = {"Content-Type: application/json", auth, NULL};
    struct net_req req = {.method = method,
                          .url = url,
                          .headers = hdrs,
                          .body = body,
                          .body_len = body ? strlen(body) : 0};
    struct cres c = {0};
    struct err e = {0};
    cr_assert_eq(net_request(&fx.cli, &req, on_cli, &c, NULL, &e), 0, "%s", e.msg);
    free(url);
    free(auth);
    run_until(&c.done);
    cr_assert_eq(c.code, 0, "%s", c.msg);
    int st = c.status;
    cres_free(&c);
    return st;
}

/* ---- the reporter ------------------------------------------------------- */

struct res {
    int done;
    int code;
    char *msg;
};

static void on_op(struct err *e, void *ctx)
{
    struct res *r = ctx;
    r->done++;
    r->code = e->code;
    free(r->msg);
    r->msg = e->msg ? xstrdup(e->msg) : NULL;
}

static struct report_config cfg_base(void)
{
    struct report_config c = {0};
    c.api_url = fx.api;
    c.token = TOKEN;
    c.mutate_gap_ms = 20; /* the 1 s default would only make the suite slow */
    return c;
}

static void rep_start(const struct report_config *c)
{
    struct err e = {0};
    cr_assert_eq(report_start(&fx.r, &fx.loop, c, &e), 0, "%s", e.msg);
}

static void rep_close(void)
{
    int closed = 0;
    report_close(fx.r, on_flag_closed, &closed);
    fx.r = NULL;
    run_until(&closed);
}

/* finish: close everything; the loop must close clean and nothing leak */
static void finish(void)
{
    if (fx.r)
        rep_close();
    if (fx.cli_ok) {
        net_client_close(&fx.cli, on_cli_closed);
        fx.cli_ok = false;
    }
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&fx.loop), 0, "handles left open on the loop");
    fx.loop_ok = false;
#if defined(__SANITIZE_ADDRESS__)
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (report on stderr)");
#endif
}

static struct report_pr pr42(const char *sha)
{
    return (struct report_pr){.repo = REPO, .number = 42, .sha = sha, .env = "pr-42"};
}

static void wait_ok(struct res *r)
{
    run_until(&r->done);
    cr_assert_eq(r->done, 1);
    cr_assert_eq(r->code, 0, "operation failed: %s", r->msg);
    free(r->msg);
    r->msg = NULL;
}

static void start_ok(const char *sha)
{
    struct res r = {0};
    struct report_pr pr = pr42(sha);
    struct err e = {0};
    cr_assert_eq(report_deploy_start(fx.r, &pr, NULL, on_op, &r, &e), 0, "%s", e.msg);
    wait_ok(&r);
}

static void done_ok(const char *sha, bool ok, long long expires)
{
    struct res r = {0};
    struct report_pr pr = pr42(sha);
    struct report_result res = {
        .ok = ok, .url = URL, .log_url = "https://ci.example.com/log/1", .expires_ms = expires};
    struct err e = {0};
    cr_assert_eq(report_deploy_done(fx.r, &pr, &res, on_op, &r, &e), 0, "%s", e.msg);
    wait_ok(&r);
}

static int count_path(const cJSON *reqs, const char *method, const char *needle)
{
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, reqs)
    {
        if (!strcmp(jstr(x, "method"), method) && strstr(jstr(x, "path"), needle))
            n++;
    }
    return n;
}

static void assert_no_token_in(const char *text)
{
    cr_assert_null(strstr(text, TOKEN), "the token leaked: %s", text);
    cr_assert_null(strstr(text, "prenvTESTtoken"), "part of the token leaked: %s", text);
}

/* ---- tests ---------------------------------------------------------------- */

Test(report, a_deploy_then_a_new_sha_edits_the_same_comment_and_retires_the_old_deployment)
{
    srv_start(NULL);
    struct report_config c = cfg_base();
    rep_start(&c);
    cr_assert(report_enabled(fx.r));
    cr_assert_str_eq(report_auth_desc(fx.r), "token");
    long long expires = 1795000000000LL;
    start_ok(SHA1);
    done_ok(SHA1, true, expires);
    start_ok(SHA2);
    done_ok(SHA2, true, expires);

    cJSON *q = requests();
    assert_seq(q, 0,
               "POST /repos/octo/app/deployments 201\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA1 " 201\n"
               "GET /repos/octo/app/deployments?environment=pr-42&per_page=100 200\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA1 " 201\n"
               "GET /user 200\n"
               "GET /repos/octo/app/issues/42/comments?per_page=100 200\n"
               "POST /repos/octo/app/issues/42/comments 201\n"
               "POST /repos/octo/app/deployments 201\n"
               "POST /repos/octo/app/deployments/2/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA2 " 201\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/deployments/2/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA2 " 201\n"
               "PATCH /repos/octo/app/issues/comments/1000 200\n");

    /* the deployment as GitHub's reference asks */
    const cJSON *b = req_body(q, 0);
    cr_assert_str_eq(jstr(b, "ref"), SHA1);
    cr_assert_str_eq(jstr(b, "environment"), "pr-42");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(b, "transient_environment")));
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(b, "production_environment")));
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(b, "auto_merge")));
    const cJSON *rc = cJSON_GetObjectItem(b, "required_contexts");
    cr_assert(cJSON_IsArray(rc) && cJSON_GetArraySize(rc) == 0);
    cr_assert_str_eq(jstr(req_body(q, 1), "state"), "in_progress");
    b = req_body(q, 2);
    cr_assert_str_eq(jstr(b, "state"), "pending");
    cr_assert_str_eq(jstr(b, "context"), "prenv/preview");
    /* done: success with the URL, never auto-inactivated by GitHub */
    b = req_body(q, 4);
    cr_assert_str_eq(jstr(b, "state"), "success");
    cr_assert_str_eq(jstr(b, "environment_url"), URL);
    cr_assert_str_eq(jstr(b, "log_url"), "https://ci.example.com/log/1");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(b, "auto_inactive")));
    b = req_body(q, 5);
    cr_assert_str_eq(jstr(b, "state"), "success");
    cr_assert_str_eq(jstr(b, "target_url"), URL);
    cr_assert_str_eq(jstr(b, "context"), "prenv/preview");
    /* the comment: marker, status, URL, short sha, expiry */
    const char *text = jstr(req_body(q, 8), "body");
    cr_assert(strstr(text, "<!-- prenv:pr-42 -->"), "%s", text);
    cr_assert(strstr(text, "ready"), "%s", text);
    cr_assert(strstr(text, "(" URL ")"), "%s", text);
    cr_assert(strstr(text, "`1111111`"), "%s", text);
    cr_assert(strstr(text, "2026-11-18T"), "%s", text); /* 1795000000 s */
    /* the second deploy supersedes the first, and edits the same comment */
    b = req_body(q, 12);
    cr_assert_str_eq(jstr(b, "state"), "inactive");
    text = jstr(req_body(q, 15), "body");
    cr_assert(strstr(text, "<!-- prenv:pr-42 -->") && strstr(text, "`2222222`"), "%s", text);
    cr_assert_null(strstr(text, "1111111"), "%s", text);
    /* every body is JSON, every request authenticated, the token nowhere */
    const cJSON *x;
    cJSON_ArrayForEach(x, q)
    {
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(x, "json_ok")));
        cr_assert_str_eq(jstr(x, "auth"), "token:prenv-bot");
        const cJSON *h = cJSON_GetObjectItem(x, "headers");
        cr_assert_str_eq(jstr(h, "accept"), "application/vnd.github+json");
        cr_assert_str_eq(jstr(h, "x-github-api-version"), "2022-11-28");
        cr_assert(!strncmp(jstr(h, "user-agent"), "prenv/", 6));
    }
    char *dump = cJSON_PrintUnformatted(q);
    assert_no_token_in(dump);
    free(dump);
    cJSON_Delete(q);
    char *st = srv_get("/_state");
    cJSON *sj = cJSON_Parse(st);
    free(st);
    cr_assert_eq(
        cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(sj, "comments"), "octo/app#42")),
        1, "one sticky comment");
    cJSON_Delete(sj);
    finish();
}

Test(report, teardown_marks_every_deployment_inactive_and_the_comment_shows_the_receipt)
{
    SRV("--max-per-page", "2"); /* deployments come in pages of two */
    struct report_config c = cfg_base();
    rep_start(&c);
    start_ok(SHA1);
    start_ok(SHA2);
    start_ok(SHA3);
    done_ok(SHA3, true, 0);
    cJSON *q = requests();
    int from = cJSON_GetArraySize(q);
    cJSON_Delete(q);

    struct report_item items[] = {
        {.name = "db", .type = "sqlite.database", .removed = true},
        {.name = "web", .type = "process.service", .removed = true},
        {.name = "cache",
         .type = "exec.command",
         .removed = false,
         .why = "volume busy <script>alert(1)</script>"},
    };
    struct report_receipt rc = {.items = items, .n = 3};
    struct res r = {0};
    struct report_pr pr = pr42(NULL);
    struct err e = {0};
    cr_assert_eq(report_teardown(fx.r, &pr, &rc, on_op, &r, &e), 0, "%s", e.msg);
    wait_ok(&r);

    q = requests();
    assert_seq(q, from,
               "GET /repos/octo/app/deployments?environment=pr-42&per_page=100 200\n"
               "GET /repos/octo/app/deployments?environment=pr-42&per_page=2&page=2 200\n"
               "POST /repos/octo/app/deployments/3/statuses 201\n"
               "POST /repos/octo/app/deployments/2/statuses 201\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "PATCH /repos/octo/app/issues/comments/1000 200\n");
    for (int i = from + 2; i < from + 5; i++)
        cr_assert_str_eq(jstr(req_body(q, i), "state"), "inactive");
    const char *text = jstr(req_body(q, from + 5), "body");
    cr_assert(strstr(text, "<!-- prenv:pr-42 -->"), "%s", text);
    cr_assert(strstr(text, "torn down"), "%s", text);
    cr_assert(strstr(text, "Teardown receipt"), "%s", text);
    cr_assert(strstr(text, "| db | sqlite\\.database | removed |"), "%s", text);
    cr_assert(strstr(text, "| web | process\\.service | removed |"), "%s", text);
    cr_assert(strstr(text, "| cache | exec\\.command | **left**: volume busy &lt;script&gt;"), "%s",
              text);
    cr_assert_null(strstr(text, "<script>"), "%s", text);
    cJSON_Delete(q);

    /* the server agrees: the newest status of every deployment is inactive */
    char *st = srv_get("/_state");
    cJSON *sj = cJSON_Parse(st);
    free(st);
    const cJSON *deps = cJSON_GetObjectItem(cJSON_GetObjectItem(sj, "deployments"), REPO), *d;
    cr_assert_eq(cJSON_GetArraySize(deps), 3);
    cJSON_ArrayForEach(d, deps)
    {
        const cJSON *ss = cJSON_GetObjectItem(d, "statuses");
        const cJSON *last = cJSON_GetArrayItem(ss, cJSON_GetArraySize(ss) - 1);
        cr_assert_str_eq(jstr(last, "state"), "inactive");
    }
    cJSON_Delete(sj);
    finish();
}

Test(report, a_marked_comment_written_by_someone_else_is_not_reused)
{
    srv_start(NULL);
    cr_assert_eq(cli_call("POST", "/repos/octo/app/issues/42/comments", MAL_TOKEN,
                          "{\"body\":\"<!-- prenv:pr-42 -->\\nclick [here](https://evil)\"}"),
                 201);
    struct report_config c = cfg_base();
    rep_start(&c);
    start_ok(SHA1);
    done_ok(SHA1, true, 0);
    start_ok(SHA2);
    done_ok(SHA2, false, 0);
    cJSON *q = requests();
    /* after mallory's comment (1000): ours is created (1001), then edited */
    cr_assert_eq(count_path(q, "POST", "/issues/42/comments"), 2); /* hers, ours */
    cr_assert_eq(count_path(q, "PATCH", "/issues/comments/1001"), 1);
    cr_assert_eq(count_path(q, "PATCH", "/issues/comments/1000"), 0);
    /* the failed deploy: failure statuses, the log as the commit's target */
    const cJSON *x, *last_commit = NULL;
    cJSON_ArrayForEach(x, q)
    {
        if (strstr(jstr(x, "path"), "/statuses/" SHA2))
            last_commit = cJSON_GetObjectItem(x, "body");
    }
    cr_assert_str_eq(jstr(last_commit, "state"), "failure");
    cr_assert_str_eq(jstr(last_commit, "target_url"), "https://ci.example.com/log/1");
    cJSON_Delete(q);
    char *st = srv_get("/_state");
    cJSON *sj = cJSON_Parse(st);
    free(st);
    const cJSON *cs = cJSON_GetObjectItem(cJSON_GetObjectItem(sj, "comments"), "octo/app#42");
    cr_assert_eq(cJSON_GetArraySize(cs), 2);
    const cJSON *hers = cJSON_GetArrayItem(cs, 0), *ours = cJSON_GetArrayItem(cs, 1);
    cr_assert(strstr(jstr(hers, "body"), "https://evil"), "hers is untouched");
    cr_assert_str_eq(jstr(cJSON_GetObjectItem(ours, "user"), "login"), "prenv-bot");
    cr_assert(strstr(jstr(ours, "body"), "deployment failed"), "%s", jstr(ours, "body"));
    cJSON_Delete(sj);
    finish();
}

Test(report, the_marker_is_found_on_the_second_page_of_comments_after_a_restart)
{
    SRV("--max-per-page", "2");
    cr_assert_eq(
        cli_call("POST", "/repos/octo/app/issues/42/comments", MAL_TOKEN, "{\"body\":\"first!\"}"),
        201);
    cr_assert_eq(cli_call("POST", "/repos/octo/app/issues/42/comments", MAL_TOKEN,
                          "{\"body\":\"<!-- prenv:pr-42 --> fake\"}"),
                 201);
    struct report_config c = cfg_base();
    rep_start(&c);
    start_ok(SHA1);
    done_ok(SHA1, true, 0); /* creates ours: comment 1002, on page 2 */
    rep_close();
    cJSON *q = requests();
    int from = cJSON_GetArraySize(q);
    cJSON_Delete(q);

    rep_start(&c); /* a new process knows nothing: it finds both again */
    done_ok(SHA1, true, 0);
    q = requests();
    assert_seq(q, from,
               "GET /repos/octo/app/deployments?environment=pr-42&sha=" SHA1 "&per_page=1 200\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA1 " 201\n"
               "GET /user 200\n"
               "GET /repos/octo/app/issues/42/comments?per_page=100 200\n"
               "GET /repos/octo/app/issues/42/comments?per_page=2&page=2 200\n"
               "PATCH /repos/octo/app/issues/comments/1002 200\n");
    cJSON_Delete(q);
    finish();
}

Test(report, a_deleted_sticky_comment_is_written_again)
{
    srv_start(NULL);
    struct report_config c = cfg_base();
    rep_start(&c);
    start_ok(SHA1);
    done_ok(SHA1, true, 0);
    cr_assert_eq(cli_call("DELETE", "/repos/octo/app/issues/comments/1000", TOKEN, NULL), 204);
    cJSON *q = requests();
    int from = cJSON_GetArraySize(q);
    cJSON_Delete(q);
    done_ok(SHA1, true, 0);
    q = requests();
    assert_seq(q, from,
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA1 " 201\n"
               "PATCH /repos/octo/app/issues/comments/1000 404\n"
               "GET /repos/octo/app/issues/42/comments?per_page=100 200\n"
               "POST /repos/octo/app/issues/42/comments 201\n");
    cJSON_Delete(q);
    finish();
}

Test(report, a_rate_limit_is_waited_out_until_its_reset_and_retried)
{
    SRV("--rate-limit", "^POST /repos/octo/app/deployments$:1:1");
    struct report_config c = cfg_base();
    rep_start(&c);
    start_ok(SHA1);
    cJSON *q = requests();
    assert_seq(q, 0,
               "POST /repos/octo/app/deployments 403\n"
               "POST /repos/octo/app/deployments 201\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA1 " 201\n"
               "GET /repos/octo/app/deployments?environment=pr-42&per_page=100 200\n");
    /* the retry came after the reset second the server named */
    const cJSON *a = cJSON_GetArrayItem(q, 0), *b = cJSON_GetArrayItem(q, 1);
    double t0 = cJSON_GetObjectItem(a, "t")->valuedouble;
    double t1 = cJSON_GetObjectItem(b, "t")->valuedouble;
    cr_assert((long long)t1 >= (long long)t0 + 1, "retried within the limited second");
    cJSON_Delete(q);
    finish();
}

Test(report, a_secondary_limit_with_retry_after_is_waited_out_and_retried)
{
    SRV("--retry-after", "^POST /repos/octo/app/statuses/:1:1");
    struct report_config c = cfg_base();
    rep_start(&c);
    start_ok(SHA1);
    cJSON *q = requests();
    assert_seq(q, 0,
               "POST /repos/octo/app/deployments 201\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA1 " 429\n"
               "POST /repos/octo/app/statuses/" SHA1 " 201\n"
               "GET /repos/octo/app/deployments?environment=pr-42&per_page=100 200\n");
    cJSON_Delete(q);
    finish();
}

Test(report, server_errors_are_retried_with_backoff_then_succeed)
{
    SRV("--fail", "^POST /repos/octo/app/deployments/1/statuses$:500:2");
    struct report_config c = cfg_base();
    rep_start(&c);
    start_ok(SHA1);
    cJSON *q = requests();
    assert_seq(q, 0,
               "POST /repos/octo/app/deployments 201\n"
               "POST /repos/octo/app/deployments/1/statuses 500\n"
               "POST /repos/octo/app/deployments/1/statuses 500\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA1 " 201\n"
               "GET /repos/octo/app/deployments?environment=pr-42&per_page=100 200\n");
    cJSON_Delete(q);
    finish();
}

Test(report, server_errors_past_the_attempt_limit_fail_as_transient)
{
    SRV("--fail", "^POST /repos/octo/app/deployments$:503:10");
    struct report_config c = cfg_base();
    c.max_attempts = 2;
    rep_start(&c);
    struct res r = {0};
    struct report_pr pr = pr42(SHA1);
    struct err e = {0};
    cr_assert_eq(report_deploy_start(fx.r, &pr, NULL, on_op, &r, &e), 0);
    run_until(&r.done);
    cr_assert_eq(r.code, PE_TRANSIENT);
    cr_assert_str_eq(r.msg, "report pr-42: gave up after 2 attempts: POST "
                            "/repos/octo/app/deployments: 503: injected failure 503");
    free(r.msg);
    cJSON *q = requests();
    assert_seq(q, 0,
               "POST /repos/octo/app/deployments 503\n"
               "POST /repos/octo/app/deployments 503\n");
    cJSON_Delete(q);
    finish();
}

Test(report, a_422_is_a_permanent_error_and_the_next_operation_still_runs)
{
    SRV("--fail", "^POST /repos/octo/app/statuses/:422:1");
    struct report_config c = cfg_base();
    rep_start(&c);
    struct res r1 = {0}, r2 = {0};
    struct report_pr pr = pr42(SHA1);
    struct report_result res = {.ok = true, .url = URL};
    struct err e = {0};
    /* both queued at once: the FIFO keeps them in order */
    cr_assert_eq(report_deploy_start(fx.r, &pr, NULL, on_op, &r1, &e), 0);
    cr_assert_eq(report_deploy_done(fx.r, &pr, &res, on_op, &r2, &e), 0);
    cr_assert_eq(report_pending(fx.r), 2);
    run_until(&r2.done);
    cr_assert_eq(r1.done, 1);
    cr_assert_eq(r1.code, PE_USAGE);
    cr_assert_str_eq(r1.msg, "report pr-42: POST /repos/octo/app/statuses/" SHA1
                             ": 422: Validation Failed; injected failure");
    assert_no_token_in(r1.msg);
    cr_assert_eq(r2.code, 0, "%s", r2.msg);
    free(r1.msg);
    free(r2.msg);
    cJSON *q = requests();
    assert_seq(q, 0,
               "POST /repos/octo/app/deployments 201\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA1 " 422\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA1 " 201\n"
               "GET /user 200\n"
               "GET /repos/octo/app/issues/42/comments?per_page=100 200\n"
               "POST /repos/octo/app/issues/42/comments 201\n");
    cJSON_Delete(q);
    finish();
}

Test(report, a_403_that_is_not_a_rate_limit_is_permanent_with_githubs_message)
{
    SRV("--fail", "^POST /repos/octo/app/deployments$:403:1");
    struct report_config c = cfg_base();
    rep_start(&c);
    struct res r = {0};
    struct report_pr pr = pr42(SHA1);
    struct err e = {0};
    cr_assert_eq(report_deploy_start(fx.r, &pr, NULL, on_op, &r, &e), 0);
    run_until(&r.done);
    cr_assert_eq(r.code, PE_CONFIG);
    cr_assert_str_eq(r.msg, "report pr-42: POST /repos/octo/app/deployments: 403: Resource not "
                            "accessible by integration");
    free(r.msg);
    cJSON *q = requests();
    assert_seq(q, 0, "POST /repos/octo/app/deployments 403\n");
    cJSON_Delete(q);
    finish();
}

Test(report, a_bad_token_is_refused_without_showing_it)
{
    srv_start(NULL);
    struct report_config c = cfg_base();
    c.token = "ghp_WRONGtoken";
    rep_start(&c);
    struct res r = {0};
    struct report_pr pr = pr42(SHA1);
    struct err e = {0};
    cr_assert_eq(report_deploy_start(fx.r, &pr, NULL, on_op, &r, &e), 0);
    run_until(&r.done);
    cr_assert_eq(r.code, PE_CONFIG);
    cr_assert_str_eq(r.msg, "report pr-42: POST /repos/octo/app/deployments: 401: Bad credentials");
    cr_assert_null(strstr(r.msg, "WRONG"));
    free(r.msg);
    finish();
}

/* ---- GitHub App -------------------------------------------------------- */

static void openssl(const char *const *argv)
{
    struct proc_spec spec = {.argv = argv, .timeout_ms = 60000, .log_fd = -1};
    struct proc_result pr;
    struct err e = {0};
    cr_assert_eq(proc_run(&spec, &pr, &e), 0, "%s", e.msg);
    cr_assert_eq(pr.exit_code, 0, "%s failed: %s", argv[1], pr.err_tail);
    proc_result_release(&pr);
}

static char *make_key(const char *name)
{
    char *key = xasprintf("%s/%s.pem", fx.dir, name);
    char *pub = xasprintf("%s/%s.pub", fx.dir, name);
    openssl((const char *const[]){"openssl", "genrsa", "-out", key, "2048", NULL});
    openssl((const char *const[]){"openssl", "rsa", "-in", key, "-pubout", "-out", pub, NULL});
    free(pub);
    return key;
}

Test(report, app_auth_exchanges_one_token_and_reuses_it_across_envs_and_calls)
{
    char *key = make_key("app");
    char *pub = xasprintf("%s/app.pub", fx.dir);
    SRV("--app-id", "4242", "--installation", "77", "--app-slug", "prenv-test", "--public-key",
        pub);
    struct report_config c = cfg_base();
    c.token = NULL;
    c.app_id = "4242";
    c.app_key_path = key;
    c.installation_id = 77;
    rep_start(&c);
    cr_assert(report_enabled(fx.r));
    cr_assert_str_eq(report_auth_desc(fx.r), "GitHub App 4242 (installation 77)");
    /* two envs at once: still one exchange */
    struct res a = {0}, b = {0};
    struct report_pr p42 = pr42(SHA1);
    struct report_pr p43 = {.repo = REPO, .number = 43, .sha = SHA2, .env = "pr-43"};
    struct err e = {0};
    cr_assert_eq(report_deploy_start(fx.r, &p42, NULL, on_op, &a, &e), 0);
    cr_assert_eq(report_deploy_start(fx.r, &p43, NULL, on_op, &b, &e), 0);
    wait_ok(&a);
    wait_ok(&b);
    done_ok(SHA1, true, 0);
    start_ok(SHA3);
    done_ok(SHA3, true, 0);

    cJSON *q = requests();
    cr_assert_eq(count_path(q, "POST", "/app/installations/77/access_tokens"), 1);
    const cJSON *x;
    int app_gets = 0;
    cJSON_ArrayForEach(x, q)
    {
        const char *path = jstr(x, "path"), *auth = jstr(x, "auth");
        cr_assert(!cJSON_GetObjectItem(x, "jwt_error"), "%s", jstr(x, "jwt_error"));
        if (!strncmp(path, "/app", 4)) {
            cr_assert_str_eq(auth, "jwt", "%s", path);
            app_gets += !strcmp(path, "/app");
        } else {
            cr_assert_str_eq(auth, "installation:77", "%s", path);
        }
        cr_assert_eq((int)cJSON_GetObjectItem(x, "status")->valuedouble / 100, 2, "%s", path);
    }
    cr_assert_eq(app_gets, 1, "the slug is asked once");
    cr_assert_str_eq(jstr(cJSON_GetArrayItem(q, 0), "path"), "/app/installations/77/access_tokens");
    cr_assert_eq(count_path(q, "POST", "/issues/42/comments"), 1);
    cr_assert_eq(count_path(q, "PATCH", "/issues/comments/1000"), 1);
    cJSON_Delete(q);
    char *st = srv_get("/_state");
    cJSON *sj = cJSON_Parse(st);
    free(st);
    const cJSON *cs = cJSON_GetObjectItem(cJSON_GetObjectItem(sj, "comments"), "octo/app#42");
    cr_assert_str_eq(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(cs, 0), "user"), "login"),
                     "prenv-test[bot]");
    cJSON_Delete(sj);
    free(key);
    free(pub);
    finish();
}

Test(report, a_jwt_signed_with_another_key_is_refused)
{
    char *key = make_key("mine");
    char *other = make_key("theirs");
    char *pub = xasprintf("%s/theirs.pub", fx.dir);
    SRV("--app-id", "4242", "--public-key", pub);
    struct report_config c = cfg_base();
    c.token = NULL;
    c.app_id = "4242";
    c.app_key_path = key;
    c.installation_id = 77;
    c.max_attempts = 1;
    rep_start(&c);
    struct res r = {0};
    struct report_pr pr = pr42(SHA1);
    struct err e = {0};
    cr_assert_eq(report_deploy_start(fx.r, &pr, NULL, on_op, &r, &e), 0);
    run_until(&r.done);
    cr_assert_eq(r.code, PE_CONFIG);
    cr_assert_str_eq(r.msg, "report pr-42: GitHub App installation token: POST "
                            "/app/installations/77/access_tokens: 401: A JSON web token could "
                            "not be decoded");
    cr_assert_null(strstr(r.msg, "eyJ"), "no JWT in the message");
    free(r.msg);
    cJSON *q = requests();
    assert_seq(q, 0, "POST /app/installations/77/access_tokens 401\n");
    cr_assert_str_eq(jstr(cJSON_GetArrayItem(q, 0), "jwt_error"), "signature does not verify");
    cJSON_Delete(q);
    free(key);
    free(other);
    free(pub);
    finish();
}

Test(report, a_bad_app_configuration_is_refused_at_start)
{
    struct report_config c = {0};
    struct err e = {0};
    struct reporter *r = NULL;
    c.app_id = "1";
    cr_assert_eq(report_start(&r, &fx.loop, &c, &e), PE_CONFIG);
    cr_assert_str_eq(e.msg, "GitHub App needs an app id (or client id), a private key file and "
                            "an installation id");
    err_release(&e);
    char *junk = xasprintf("%s/junk.pem", fx.dir);
    tl_write(fx.dir, "junk.pem",
             "-----BEGIN RSA PRIVATE KEY-----\nnope\n"
             "-----END RSA PRIVATE KEY-----\n");
    c.app_key_path = junk;
    c.installation_id = 5;
    cr_assert_eq(report_start(&r, &fx.loop, &c, &e), PE_CONFIG);
    cr_assert(strstr(e.msg, "GitHub App private key '"), "%s", e.msg);
    cr_assert_null(strstr(e.msg, "nope"));
    err_release(&e);
    c.token = TOKEN;
    cr_assert_eq(report_start(&r, &fx.loop, &c, &e), PE_CONFIG);
    cr_assert_str_eq(e.msg, "GitHub: configure either a token or a GitHub App, not both");
    err_release(&e);
    free(junk);
    finish();
}

/* ---- hostile input -------------------------------------------------------- */

Test(report, hostile_titles_and_branches_make_valid_json_and_inert_markdown)
{
    srv_start(NULL);
    struct report_config c = cfg_base();
    rep_start(&c);
    struct sb longdesc;
    sb_init(&longdesc);
    for (int i = 0; i < 200; i++)
        sb_adds(&longdesc, "\xF0\x9F\x92\xA5"); /* 💥, 4 bytes each */
    sb_adds(&longdesc, "tail");
    const char *hostile = "zzz\";echo${IFS}\"hello\";#\\ \"}],\"x\":1 \x01\x1f\n\r\t "
                          "<!-- prenv:pr-43 --> @everyone \xff\xfe bad \xC0\xAF utf8 `code` "
                          "| table | [link](javascript:alert(1))";
    struct res r = {0};
    struct report_pr pr = pr42(SHA1);
    struct err e = {0};
    cr_assert_eq(report_deploy_start(fx.r, &pr, longdesc.buf, on_op, &r, &e), 0);
    wait_ok(&r);
    struct report_result res = {.ok = true,
                                .url = "https://x.example.com/\"><img>",
                                .log_url = "javascript:alert(1)",
                                .description = hostile};
    r.done = 0;
    cr_assert_eq(report_deploy_done(fx.r, &pr, &res, on_op, &r, &e), 0);
    wait_ok(&r);
    sb_release(&longdesc);

    cJSON *q = requests();
    const cJSON *x;
    int descs = 0;
    cJSON_ArrayForEach(x, q)
    {
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(x, "json_ok")), "%s: %s", jstr(x, "path"),
                  jstr(x, "raw"));
        const cJSON *b = cJSON_GetObjectItem(x, "body");
        const char *d = jstr(b, "description");
        if (d) {
            descs++;
            cr_assert_leq(utf8_chars(d), REPORT_DESC_MAX, "%zu chars: %s", utf8_chars(d), d);
            cr_assert_null(strstr(d, "\xff"));
        }
    }
    cr_assert_geq(descs, 5);
    /* the long one was cut on a character boundary, with an ellipsis */
    const char *d0 = jstr(req_body(q, 0), "description");
    cr_assert_eq(utf8_chars(d0), 140);
    cr_assert(strstr(d0, "\xE2\x80\xA6"), "%s", d0);
    /* the hostile one arrives as text, quotes and all */
    const char *d3 = jstr(req_body(q, 4), "description");
    const char *want = "zzz\";echo${IFS}\"hello\";#\\ \"}],\"x\":1";
    cr_assert(!strncmp(d3, want, strlen(want)), "%s", d3);
    /* and in the comment it is inert */
    const char *text = NULL;
    cJSON_ArrayForEach(x, q)
    {
        if (strstr(jstr(x, "path"), "/issues/42/comments") && !strcmp(jstr(x, "method"), "POST"))
            text = jstr(cJSON_GetObjectItem(x, "body"), "body");
    }
    cr_assert(text);
    cr_assert_null(strstr(text, "<!-- prenv:pr-43"), "%s", text);
    cr_assert_null(strstr(text, "@everyone"), "%s", text);
    cr_assert_null(strstr(text, "](javascript"), "%s", text);
    cr_assert_null(strstr(text, "<img>"), "%s", text);
    cr_assert(strstr(text, "<!-- prenv:pr-42 -->"), "%s", text);
    char *dump = cJSON_PrintUnformatted(q);
    assert_no_token_in(dump);
    free(dump);
    cJSON_Delete(q);
    finish();
}

Test(report, clipping_keeps_whole_characters_and_replaces_invalid_bytes)
{
    char *s = report_clip("h\xC3\xA9llo", 140);
    cr_assert_str_eq(s, "h\xC3\xA9llo");
    free(s);
    s = report_clip("abcdef", 4);
    cr_assert_str_eq(s, "abc\xE2\x80\xA6");
    free(s);
    s = report_clip("ab\xF0\x9F\x92\xA5\xF0\x9F\x92\xA5", 3); /* never half an emoji */
    cr_assert_str_eq(s, "ab\xE2\x80\xA6");
    free(s);
    s = report_clip("a\xff"
                    "b\xE2\x82"
                    "c\nd",
                    140);
    cr_assert_str_eq(s, "a\xEF\xBF\xBD"
                        "b\xEF\xBF\xBD"
                        "c d");
    free(s);
    s = report_clip("\xED\xA0\x80x", 140); /* a UTF-16 surrogate is not UTF-8 */
    cr_assert_str_eq(s, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx");
    free(s);
    s = report_clip("\xC0\xAF\xF4\x90\x80\x80!", 140); /* overlong; above U+10FFFF */
    cr_assert_str_eq(s,
                     "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD!");
    free(s);
    finish();
}

/* ---- off, validation, closing ------------------------------------------- */

Test(report, without_credentials_reporting_is_off_and_operations_do_nothing)
{
    struct report_config c = {0};
    c.api_url = "http://127.0.0.1:9"; /* nothing may be sent there */
    rep_start(&c);
    cr_assert_not(report_enabled(fx.r));
    cr_assert_str_eq(report_auth_desc(fx.r),
                     "off: no PRENV_GITHUB_TOKEN and no GitHub App configured");
    struct res r = {0};
    struct report_pr pr = pr42(SHA1);
    struct err e = {0};
    cr_assert_eq(report_deploy_start(fx.r, &pr, NULL, on_op, &r, &e), 0);
    cr_assert_eq(r.done, 0, "never called back from inside the call");
    wait_ok(&r);
    rep_close();

    setenv("PRENV_GITHUB_TOKEN", TOKEN, 1);
    rep_start(&c);
    cr_assert(report_enabled(fx.r));
    cr_assert_str_eq(report_auth_desc(fx.r), "token");
    unsetenv("PRENV_GITHUB_TOKEN");
    finish();
}

Test(report, malformed_arguments_are_refused_without_a_callback)
{
    struct report_config c = {0};
    c.token = TOKEN;
    c.api_url = "http://127.0.0.1:9";
    rep_start(&c);
    struct res r = {0};
    struct err e = {0};
    struct report_pr bad[] = {
        {.repo = "octo/app/../x", .number = 1, .sha = SHA1, .env = "pr-1"},
        {.repo = "octo", .number = 1, .sha = SHA1, .env = "pr-1"},
        {.repo = REPO, .number = 0, .sha = SHA1, .env = "pr-1"},
        {.repo = REPO, .number = 1, .sha = "not-a-sha", .env = "pr-1"},
        {.repo = REPO, .number = 1, .sha = SHA1, .env = "PR 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(report_deploy_start(fx.r, &bad[i], NULL, on_op, &r, &e), PE_USAGE, "%zu", i);
        cr_assert(!strncmp(e.msg, "report: ", 8), "%s", e.msg);
        err_release(&e);
    }
    uv_run(&fx.loop, UV_RUN_NOWAIT);
    cr_assert_eq(r.done, 0);
    finish();
}

static struct res close_res[4];

Test(report, closing_cancels_every_operation_exactly_once)
{
    /* both envs' first request is limited: neither can get anywhere */
    SRV("--rate-limit", "^POST /repos/octo/app/deployments$:2:3600");
    struct report_config c = cfg_base();
    rep_start(&c);
    struct report_pr p42 = pr42(SHA1);
    struct report_pr p43 = {.repo = REPO, .number = 43, .sha = SHA2, .env = "pr-43"};
    struct report_result ok = {.ok = true, .url = URL};
    struct err e = {0};
    cr_assert_eq(report_deploy_start(fx.r, &p42, NULL, on_op, &close_res[0], &e), 0);
    cr_assert_eq(report_deploy_done(fx.r, &p42, &ok, on_op, &close_res[1], &e), 0);
    cr_assert_eq(report_deploy_start(fx.r, &p43, NULL, on_op, &close_res[2], &e), 0);
    cr_assert_eq(report_deploy_done(fx.r, &p43, &ok, on_op, &close_res[3], &e), 0);
    /* run until the server has answered 403: from then on everything waits
     * out an hour-long rate limit (or is still in flight) */
    long long end = tm_mono_ms() + WATCHDOG_MS;
    for (bool limited = false; !limited;) {
        cr_assert(tm_mono_ms() < end, "no rate limit answer");
        uv_run(&fx.loop, UV_RUN_NOWAIT);
        usleep(5000);
        cJSON *q = requests();
        const cJSON *x;
        cJSON_ArrayForEach(x, q)
        {
            limited |= (int)cJSON_GetObjectItem(x, "status")->valuedouble == 403;
        }
        cJSON_Delete(q);
    }
    for (int i = 0; i < 10; i++)
        uv_run(&fx.loop, UV_RUN_NOWAIT);
    int closed = 0;
    report_close(fx.r, on_flag_closed, &closed);
    fx.r = NULL;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(close_res[i].done, 1, "op %d: called %d times", i, close_res[i].done);
        cr_assert_eq(close_res[i].code, PE_CANCELED, "op %d: %s", i, close_res[i].msg);
        cr_assert(strstr(close_res[i].msg, "canceled"), "%s", close_res[i].msg);
        free(close_res[i].msg);
    }
    run_until(&closed);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(close_res[i].done, 1);
    finish();
}

/* ---- the client alone ----------------------------------------------------- */

Test(report, the_client_hands_back_status_headers_and_body)
{
    srv_start(NULL);
    cli_start();
    char *url = xasprintf("%s/user", fx.api);
    const char *hdrs[] = {"Authorization: Bearer " TOKEN, NULL};
    struct net_req req = {.url = url, .headers = hdrs};
    struct cres c = {0};
    struct err e = {0};
    cr_assert_eq(net_request(&fx.cli, &req, on_cli, &c, NULL, &e), 0);
    run_until(&c.done);
    cr_assert_eq(c.code, 0, "%s", c.msg);
    cr_assert_eq(c.status, 200);
    cr_assert_str_eq(c.ctype, "application/json; charset=utf-8"); /* asked in lower case */
    cr_assert(strstr(c.body, "\"login\": \"prenv-bot\""), "%s", c.body);
    cres_free(&c);
    /* over the cap is an error, not a truncated body */
    req.max_response = 10;
    cr_assert_eq(net_request(&fx.cli, &req, on_cli, &c, NULL, &e), 0);
    run_until(&c.done);
    cr_assert_eq(c.code, PE_LIMIT);
    cr_assert(strstr(c.msg, "/user: response body is larger than 10 bytes"), "%s", c.msg);
    cres_free(&c);
    free(url);
    /* refused before anything starts: no callback */
    req.url = "ftp://127.0.0.1/";
    cr_assert_eq(net_request(&fx.cli, &req, on_cli, &c, NULL, &e), PE_USAGE);
    err_release(&e);
    cr_assert_eq(c.done, 0);
    finish();
}

/* a listener that accepts (through the kernel's backlog) and never answers */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 16), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

static struct cres silent_res[3];

Test(report, closing_the_client_cancels_requests_in_flight_once_and_a_timeout_is_reported)
{
    int port;
    int lfd = silent_listener(&port);
    cli_start();
    char *url = xasprintf("http://user:pw@127.0.0.1:%d/secret/path?token=abc", port);
    struct net_req req = {
        .method = "POST", .url = url, .body = "{}", .body_len = 2, .timeout_ms = 300};
    struct err e = {0};
    cr_assert_eq(net_request(&fx.cli, &req, on_cli, &silent_res[0], NULL, &e), 0);
    run_until(&silent_res[0].done);
    cr_assert_eq(silent_res[0].code, PE_TIMEOUT);
    cr_assert(strstr(silent_res[0].msg, "/secret/path: timed out after 300 ms"), "%s",
              silent_res[0].msg);
    cr_assert_null(strstr(silent_res[0].msg, "pw"), "no user info in errors");
    cr_assert_null(strstr(silent_res[0].msg, "token=abc"), "no query in errors");
    req.timeout_ms = 60000;
    uint64_t id1, id2;
    cr_assert_eq(net_request(&fx.cli, &req, on_cli, &silent_res[1], &id1, &e), 0);
    cr_assert_eq(net_request(&fx.cli, &req, on_cli, &silent_res[2], &id2, &e), 0);
    for (int i = 0; i < 20; i++)
        uv_run(&fx.loop, UV_RUN_NOWAIT);
    cr_assert_eq(net_inflight(&fx.cli), 2);
    cr_assert(net_cancel(&fx.cli, id1));
    cr_assert_eq(silent_res[1].done, 1);
    cr_assert_eq(silent_res[1].code, PE_CANCELED);
    cr_assert_not(net_cancel(&fx.cli, id1), "already gone");
    net_client_close(&fx.cli, on_cli_closed);
    fx.cli_ok = false;
    cr_assert_eq(silent_res[2].done, 1);
    cr_assert_eq(silent_res[2].code, PE_CANCELED);
    cr_assert_eq(net_request(&fx.cli, &req, on_cli, &silent_res[0], NULL, &e), PE_CANCELED);
    err_release(&e);
    for (int i = 0; i < 3; i++)
        cres_free(&silent_res[i]);
    free(url);
    close(lfd);
    finish();
}

static void cli_close(void)
{
    cli_closed = 0;
    net_client_close(&fx.cli, on_cli_closed);
    fx.cli_ok = false;
    run_until(&cli_closed);
}

Test(report, https_peers_are_verified_against_PRENV_CA_FILE)
{
    char *cert = xasprintf("%s/tls.crt", fx.dir), *key = xasprintf("%s/tls.key", fx.dir);
    openssl((const char *const[]){"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                  "-keyout", key, "-out", cert, "-days", "2", "-subj",
                                  "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", NULL});
    SRV("--tls-cert", cert, "--tls-key", key);
    char *url = xasprintf("https://127.0.0.1:%d/user", fx.port);
    const char *hdrs[] = {"Authorization: Bearer " TOKEN, NULL};
    struct net_req req = {.url = url, .headers = hdrs};
    struct cres c = {0};
    struct err e = {0};
    /* the system's CAs do not know this certificate */
    cli_start();
    cr_assert_eq(net_request(&fx.cli, &req, on_cli, &c, NULL, &e), 0);
    run_until(&c.done);
    cr_assert_eq(c.code, PE_TRANSIENT, "%s", c.msg);
    cr_assert(strstr(c.msg, "certificate"), "%s", c.msg);
    cres_free(&c);
    cli_close();
    /* PRENV_CA_FILE does */
    setenv("PRENV_CA_FILE", cert, 1);
    cli_start();
    cr_assert_eq(net_request(&fx.cli, &req, on_cli, &c, NULL, &e), 0);
    run_until(&c.done);
    cr_assert_eq(c.code, 0, "%s", c.msg);
    cr_assert_eq(c.status, 200);
    cr_assert(strstr(c.body, "prenv-bot"), "%s", c.body);
    cres_free(&c);
    free(url);
    free(cert);
    free(key);
    finish();
}

Test(report, a_secondary_rate_limit_without_advice_waits_its_minimum_and_retries)
{
    SRV("--secondary-limit", "^POST /repos/octo/app/deployments$:1");
    struct report_config c = cfg_base();
    c.secondary_wait_ms = 200; /* GitHub's minute, shortened for the test */
    rep_start(&c);
    start_ok(SHA1);
    cJSON *q = requests();
    assert_seq(q, 0,
               "POST /repos/octo/app/deployments 403\n"
               "POST /repos/octo/app/deployments 201\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA1 " 201\n"
               "GET /repos/octo/app/deployments?environment=pr-42&per_page=100 200\n");
    cJSON_Delete(q);
    finish();
}

Test(report, a_revoked_installation_token_is_replaced_once)
{
    char *key = make_key("app");
    SRV("--app-id", "Iv1.client0123", "--installation", "77");
    struct report_config c = cfg_base();
    c.token = NULL;
    c.app_id = "Iv1.client0123"; /* a client id as the JWT's iss */
    c.app_key_path = key;
    c.installation_id = 77;
    rep_start(&c);
    start_ok(SHA1);
    cr_assert_eq(cli_call("POST", "/_revoke", NULL, "{}"), 200);
    cJSON *q = requests();
    int from = cJSON_GetArraySize(q);
    cJSON_Delete(q);
    start_ok(SHA2);
    q = requests();
    assert_seq(q, from,
               "POST /repos/octo/app/deployments 401\n"
               "POST /app/installations/77/access_tokens 201\n"
               "POST /repos/octo/app/deployments 201\n"
               "POST /repos/octo/app/deployments/2/statuses 201\n"
               "POST /repos/octo/app/statuses/" SHA2 " 201\n"
               "POST /repos/octo/app/deployments/1/statuses 201\n");
    cr_assert_eq(count_path(q, "POST", "/access_tokens"), 2);
    cJSON_Delete(q);
    free(key);
    finish();
}

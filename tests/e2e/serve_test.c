/* End to end: `prenv serve` with GitHub's published pull_request payloads,
 * signed, over real HTTP: environments follow the PR, races end right, a
 * kill -9 loses no job, bad input is refused while others are served. */
#include "tests/testlib.h"

#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <mbedtls/md.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SECRET "It's a Secret to Everybody"

static struct tl_proj P;
static int server_pid;
static int port;
static char *logfile;
static cJSON *examples;

static void stop_server(int sig)
{
    tl_stop_pid(&server_pid, sig);
}

static void fini(void)
{
    stop_server(SIGTERM);
    tl_proj_free(&P);
    cJSON_Delete(examples);
    examples = NULL;
    if (logfile)
        unlink(logfile);
    free(logfile);
    logfile = NULL;
}

TestSuite(serve, .fini = fini, .timeout = 180);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)

static void start_server(void)
{
    const char *env[] = {"PRENV_GITHUB_WEBHOOK_SECRET=" SECRET, "PRENV_API_TOKEN=tok", NULL};
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    server_pid = tl_spawn(&P, (const char *const[]){"serve", "--listen", listen, NULL}, env, logfile);
    cr_assert(tl_wait_http(port, "/healthz", 15000), "the server did not start:\n%s",
              tl_read(logfile));
}

static void load_examples(void)
{
    FILE *f = popen(PRENV_SRC "/scripts/test-deps.sh", "r");
    char path[4096] = "";
    cr_assert(fgets(path, sizeof path, f));
    pclose(f);
    path[strcspn(path, "\n")] = 0;
    char *t = tl_read(path);
    examples = cJSON_Parse(t);
    free(t);
    cr_assert_not_null(examples);
}

static const cJSON *pr_examples(void)
{
    const cJSON *ev;
    cJSON_ArrayForEach(ev, examples)
    {
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(ev, "name")->valuestring, "pull_request"))
            return cJSON_GetObjectItemCaseSensitive(ev, "examples");
    }
    return NULL;
}

static cJSON *example(const char *action)
{
    const cJSON *ex;
    cJSON_ArrayForEach(ex, pr_examples())
    {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(ex, "action");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(ex, "pull_request"), "draft");
        if (!strcmp(a->valuestring, action) && !cJSON_IsTrue(d))
            return cJSON_Duplicate(ex, 1);
    }
    cr_assert_fail("no %s example", action);
    return NULL;
}

/* set the PR's number, head sha and updated_at in a copy */
static cJSON *pr_payload(const char *action, int number, const char *sha, const char *updated)
{
    cJSON *p = example(action);
    cJSON_ReplaceItemInObject(p, "number", cJSON_CreateNumber(number));
    cJSON *pr = cJSON_GetObjectItemCaseSensitive(p, "pull_request");
    cJSON_ReplaceItemInObject(pr, "number", cJSON_CreateNumber(number));
    if (sha)
        cJSON_ReplaceItemInObject(cJSON_GetObjectItemCaseSensitive(pr, "head"), "sha",
                                  cJSON_CreateString(sha));
    if (updated)
        cJSON_ReplaceItemInObject(pr, "updated_at", cJSON_CreateString(updated));
    return p;
}

static void sign(const char *body, size_t len, char out[72])
{
    unsigned char mac[32];
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const unsigned char *)SECRET,
                    strlen(SECRET), (const unsigned char *)body, len, mac);
    memcpy(out, "sha256=", 7);
    for (int i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
}

static int post(const char *event, const char *delivery, const char *body, char **resp)
{
    char sig[72], h1[128], h2[128], h3[128];
    sign(body, strlen(body), sig);
    snprintf(h1, sizeof h1, "X-GitHub-Event: %s", event);
    snprintf(h2, sizeof h2, "X-GitHub-Delivery: %s", delivery);
    snprintf(h3, sizeof h3, "X-Hub-Signature-256: %s", sig);
    const char *hs[] = {"Content-Type: application/json", h1, h2, h3, "X-GitHub-Hook-ID: 1",
                        NULL};
    return tl_http(port, "POST", "/hooks/github", hs, body, strlen(body), resp);
}

static int post_json(const char *delivery, cJSON *payload)
{
    char *body = cJSON_PrintUnformatted(payload);
    char *resp = NULL;
    int st = post("pull_request", delivery, body, &resp);
    free(body);
    free(resp);
    cJSON_Delete(payload);
    return st;
}

static const char *const TPL = "resources:\n"
                               "  conf:\n"
                               "    type: file.render\n"
                               "    properties:\n"
                               "      path: sha.txt\n"
                               "      content: \"${pr.sha} ${pr.branch}\"\n"
                               "  web:\n"
                               "    type: process.service\n"
                               "    depends_on: [conf]\n"
                               "    properties:\n"
                               "      command: [python3, \"${project.dir}/app.py\"]\n"
                               "      health: {http: /healthz, timeout: 30s}\n"
                               "      stop_timeout: 5s\n"
                               "outputs:\n"
                               "  url: ${web.url}\n";

static void setup_project(const char *tpl, const char *extra)
{
    tl_proj_new(&P, tpl, NULL, extra);
    port = P.port_hi; /* services take ports from the low end */
    logfile = xasprintf("%s.serve.log", P.dir);
    load_examples();
}

struct envq {
    const char *env;
    bool exists;
    const char *sha;
};

static bool env_state(void *ctx)
{
    struct envq *q = ctx;
    char *resp = NULL;
    char path[128];
    snprintf(path, sizeof path, "/api/v1/envs/%s", q->env);
    int st = tl_http(port, "GET", path, NULL, "", 0, &resp);
    bool ok;
    if (!q->exists)
        ok = st == 404;
    else {
        char *status = resp ? tl_json_str(resp, "status") : NULL, *sha = resp ? tl_json_str(resp, "sha") : NULL;
        ok = st == 200 && status && !strcmp(status, "up") && (!q->sha || (sha && !strcmp(sha, q->sha)));
        free(status);
        free(sha);
    }
    free(resp);
    return ok;
}

static bool jobs_idle(void *ctx)
{
    (void)ctx;
    char *resp = NULL;
    tl_http(port, "GET", "/api/v1/jobs", NULL, "", 0, &resp);
    bool idle = resp && !strstr(resp, "\"state\": \"queued\"") && !strstr(resp, "\"state\": \"running\"");
    free(resp);
    return idle;
}

Test(serve, opened_brings_the_preview_up_and_closed_removes_it)
{
    setup_project(TPL, NULL);
    start_server();
    cr_assert_eq(post_json("d-open", pr_payload("opened", 42, NULL, NULL)), 202);
    struct envq q = {"pr-42", true, NULL};
    cr_assert(tl_until(env_state, &q, 60000), "pr-42 never came up:\n%s", tl_read(logfile));
    struct tl_res r = RUN("env", "show", "pr-42", "--json");
    long long p = tl_json_int(r.out, "resources.1.outputs.port");
    char *owner = tl_json_str(r.out, "owner");
    cr_assert_str_eq(owner, "Codertocat", "the PR's author owns its preview");
    free(owner);
    tl_res_free(&r);
    cr_assert_eq(tl_http_get((int)p, "/healthz", NULL), 200);
    cr_assert_eq(post_json("d-close", pr_payload("closed", 42, NULL, NULL)), 202);
    q.exists = false;
    cr_assert(tl_until(env_state, &q, 60000), "pr-42 was not removed:\n%s", tl_read(logfile));
    cr_assert(tl_until(jobs_idle, NULL, 30000));
    stop_server(SIGTERM);
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 0);
    char *log = tl_read(logfile);
    cr_assert(strstr(log, "delivery=d-open") && strstr(log, "env=pr-42"),
              "log lines carry the delivery and the env:\n%s", log);
    cr_assert(strstr(log, "prenv serve stopped\" clean=yes"), "%s", log);
    free(log);
}

Test(serve, every_published_pull_request_example_is_answered)
{
    setup_project("resources:\n  conf:\n    type: file.render\n"
                  "    properties: {path: a.txt, content: \"${pr.sha}\"}\n",
                  NULL);
    start_server();
    const cJSON *ex;
    int i = 0;
    cJSON_ArrayForEach(ex, pr_examples())
    {
        char d[32];
        snprintf(d, sizeof d, "ex-%d", i++);
        int st = post_json(d, cJSON_Duplicate(ex, 1));
        cr_assert(st == 202, "example %d (%s) got %d", i,
                  cJSON_GetObjectItemCaseSensitive(ex, "action")->valuestring, st);
    }
    cr_assert(tl_until(jobs_idle, NULL, 60000), "%s", tl_read(logfile));
    char *resp = NULL;
    cr_assert_eq(tl_http(port, "GET", "/metrics", NULL, "", 0, &resp), 200);
    cr_assert(strstr(resp, "prenv_webhooks_total{result=\"ignored\"}"), "%s", resp);
    free(resp);
}

Test(serve, open_sync_sync_sync_close_in_milliseconds_ends_with_nothing)
{
    setup_project(TPL, NULL);
    start_server();
    const char *shas[] = {"1111111111111111111111111111111111111111",
                          "2222222222222222222222222222222222222222",
                          "3333333333333333333333333333333333333333"};
    cr_assert_eq(post_json("r-1", pr_payload("opened", 7, NULL, "2026-01-01T00:00:00Z")), 202);
    for (int i = 0; i < 3; i++) {
        char d[16];
        snprintf(d, sizeof d, "r-s%d", i);
        cr_assert_eq(post_json(d, pr_payload("synchronize", 7, shas[i], "2026-01-01T00:00:01Z")),
                     202);
    }
    cr_assert_eq(post_json("r-c", pr_payload("closed", 7, NULL, "2026-01-01T00:00:02Z")), 202);
    cr_assert(tl_until(jobs_idle, NULL, 90000), "%s", tl_read(logfile));
    struct envq q = {"pr-7", false, NULL};
    cr_assert(env_state(&q), "pr-7 must not exist after its close:\n%s", tl_read(logfile));
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 0, "no orphan process");
    /* a synchronize delivered late (older updated_at) must not recreate it */
    cr_assert_eq(post_json("r-late", pr_payload("synchronize", 7, shas[0], "2026-01-01T00:00:01Z")),
                 202);
    cr_assert(tl_until(jobs_idle, NULL, 30000));
    cr_assert(env_state(&q), "a late delivery recreated pr-7:\n%s", tl_read(logfile));
}

Test(serve, close_then_reopen_ends_with_one_env_at_the_newest_sha)
{
    setup_project(TPL, NULL);
    start_server();
    const char *sha = "4444444444444444444444444444444444444444";
    cr_assert_eq(post_json("c-1", pr_payload("opened", 8, NULL, "2026-01-01T00:00:00Z")), 202);
    cr_assert_eq(post_json("c-2", pr_payload("closed", 8, NULL, "2026-01-01T00:00:01Z")), 202);
    cr_assert_eq(post_json("c-3", pr_payload("reopened", 8, sha, "2026-01-01T00:00:02Z")), 202);
    struct envq q = {"pr-8", true, sha};
    cr_assert(tl_until(env_state, &q, 60000), "%s", tl_read(logfile));
    cr_assert(tl_until(jobs_idle, NULL, 60000));
    cr_assert(env_state(&q));
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 1, "exactly one replica");
}

Test(serve, a_kill_9_loses_no_job_and_leaves_no_duplicate)
{
    setup_project("resources:\n"
                  "  slow:\n"
                  "    type: exec.command\n"
                  "    properties:\n"
                  "      create: [sleep, '2']\n"
                  "      triggers: ${pr.sha}\n"
                  "  web:\n"
                  "    type: process.service\n"
                  "    depends_on: [slow]\n"
                  "    properties:\n"
                  "      command: [python3, \"${project.dir}/app.py\"]\n"
                  "      health: {http: /healthz, timeout: 30s}\n",
                  "serve: {concurrency: 1}\n");
    start_server();
    cr_assert_eq(post_json("k-1", pr_payload("opened", 5, NULL, NULL)), 202);
    cr_assert_eq(post_json("k-2", pr_payload("opened", 6, NULL, NULL)), 202);
    usleep(500000); /* pr-5 is in its slow step, pr-6 waits in the queue */
    stop_server(SIGKILL);
    start_server();
    struct envq q5 = {"pr-5", true, NULL}, q6 = {"pr-6", true, NULL};
    cr_assert(tl_until(env_state, &q5, 90000), "pr-5 was lost:\n%s", tl_read(logfile));
    cr_assert(tl_until(env_state, &q6, 90000), "pr-6 was lost:\n%s", tl_read(logfile));
    cr_assert(tl_until(jobs_idle, NULL, 30000));
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 2, "one replica per env, no duplicate");
    char *log = tl_read(logfile);
    cr_assert(strstr(log, "resumed_jobs=1"), "%s", log);
    free(log);
}

static int raw_send(const char *req, size_t len, char **resp)
{
    signal(SIGPIPE, SIG_IGN); /* the server may answer 413 and close before we finish */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return 0;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, req + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    struct sb b;
    sb_init(&b);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        sb_add(&b, buf, (size_t)n);
    close(fd);
    int st = tl_http_status(b.buf, b.len);
    if (resp)
        *resp = sb_steal(&b);
    else
        sb_release(&b);
    return st;
}

Test(serve, bad_input_gets_the_right_status_and_others_are_still_served)
{
    setup_project("resources:\n  conf:\n    type: file.render\n"
                  "    properties: {path: a.txt, content: x}\n",
                  NULL);
    start_server();
    char *resp = NULL;
    /* signed invalid JSON */
    cr_assert_eq(post("pull_request", "b-1", "{not json", &resp), 400);
    free(resp);
    /* unsigned, wrong, truncated */
    const char *hs[] = {"Content-Type: application/json", "X-GitHub-Event: pull_request",
                        "X-GitHub-Delivery: b-2", NULL};
    cr_assert_eq(tl_http(port, "POST", "/hooks/github", hs, "{}", 2, &resp), 401);
    cr_assert(strstr(resp, "missing X-Hub-Signature-256"), "%s", resp);
    free(resp);
    const char *hw[] = {"Content-Type: application/json", "X-GitHub-Event: pull_request",
                        "X-GitHub-Delivery: b-3", "X-Hub-Signature-256: sha256=abcd", NULL};
    cr_assert_eq(tl_http(port, "POST", "/hooks/github", hw, "{}", 2, &resp), 401);
    free(resp);
    /* form encoding */
    const char *hf[] = {"Content-Type: application/x-www-form-urlencoded",
                        "X-GitHub-Event: pull_request", "X-GitHub-Delivery: b-4", NULL};
    cr_assert_eq(tl_http(port, "POST", "/hooks/github", hf, "payload=%7B%7D", 14, &resp), 415);
    cr_assert(strstr(resp, "application/json"), "%s", resp);
    free(resp);
    /* missing event header on a signed body */
    char sig[72], h3[128];
    sign("{}", 2, sig);
    snprintf(h3, sizeof h3, "X-Hub-Signature-256: %s", sig);
    const char *hm[] = {"Content-Type: application/json", "X-GitHub-Delivery: b-5", h3, NULL};
    cr_assert_eq(tl_http(port, "POST", "/hooks/github", hm, "{}", 2, &resp), 400);
    free(resp);
    /* a 30 MB body */
    size_t big = 30u << 20;
    char *body = xmalloc(big);
    memset(body, 'a', big);
    struct sb req;
    sb_init_max(&req, big + 4096);
    sb_addf(&req, "POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\n\r\n",
            big);
    sb_add(&req, body, big);
    int st = raw_send(req.buf, req.len, NULL);
    cr_assert(st == 413 || st == 0, "a 30 MB body: %d", st);
    sb_release(&req);
    free(body);
    /* a slow-loris client holds a connection open while others are served */
    int slow = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(slow, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(write(slow, "POST /hooks/github HTTP/1.1\r\nX-Gi", 34), 34);
    cr_assert_eq(tl_http(port, "GET", "/healthz", NULL, "", 0, NULL), 200);
    cr_assert_eq(tl_http(port, "GET", "/nope", NULL, "", 0, NULL), 404);
    cr_assert_eq(tl_http(port, "GET", "/hooks/github", NULL, "", 0, NULL), 405);
    close(slow);
    /* the API: reads are open, changes need the token */
    cr_assert_eq(tl_http(port, "GET", "/api/v1/envs", NULL, "", 0, &resp), 200);
    cr_assert_str_eq(resp, "[]\n");
    free(resp);
    cr_assert_eq(tl_http(port, "POST", "/api/v1/envs/dev/up", NULL, "", 0, NULL), 401);
    const char *auth[] = {"Authorization: Bearer tok", NULL};
    cr_assert_eq(tl_http(port, "POST", "/api/v1/envs/dev/up", auth, "", 0, &resp), 202, "%s", resp);
    free(resp);
    struct envq q = {"dev", true, NULL};
    cr_assert(tl_until(env_state, &q, 30000), "%s", tl_read(logfile));
    cr_assert_eq(tl_http(port, "DELETE", "/api/v1/envs/dev", auth, "", 0, NULL), 202);
    q.exists = false;
    cr_assert(tl_until(env_state, &q, 30000));
    cr_assert_eq(tl_http(port, "POST", "/api/v1/envs/nope-nope/up", auth, "", 0, NULL), 404);
    char *log = tl_read(logfile);
    cr_assert(strstr(log, "delivery rejected: bad signature") && strstr(log, "delivery=b-2"), "%s",
              log);
    free(log);
}

/* ---- reporting to a loopback GitHub API ---- */

static int gh_pid, gh_port;

static char *gh_portfile;

static void start_github(void)
{
    /* the fixture prints its port on stdout: a file, so it can keep writing */
    gh_portfile = xasprintf("/tmp/prenv-test-gh-%d.port", (int)getpid());
    unlink(gh_portfile);
    gh_pid = fork();
    if (gh_pid == 0) {
        int out = open(gh_portfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int errfd = open("/dev/null", O_WRONLY);
        dup2(out, 1);
        dup2(errfd, 2);
        execlp("python3", "python3", PRENV_SRC "/tests/fixtures/github_api.py", "--token",
               "tok-123:prenv-bot", (char *)NULL);
        _exit(127);
    }
    gh_port = tl_read_port(gh_portfile, 10000);
    cr_assert_gt(gh_port, 0, "the GitHub API fixture did not start");
}

static void stop_github(void)
{
    if (gh_portfile) {
        unlink(gh_portfile);
        free(gh_portfile);
        gh_portfile = NULL;
    }
    if (gh_pid > 0) {
        kill(gh_pid, SIGTERM);
        if (tl_wait_pid(gh_pid, 5000) < 0) {
            kill(gh_pid, SIGKILL);
            tl_wait_pid(gh_pid, 5000);
        }
        gh_pid = 0;
    }
}

static void fini_gh(void)
{
    stop_github();
    fini();
}

static cJSON *gh_state(void)
{
    char *resp = NULL;
    tl_http(gh_port, "GET", "/_state", NULL, "", 0, &resp);
    cJSON *j = resp ? cJSON_Parse(resp) : NULL;
    free(resp);
    return j;
}

/* the deployment statuses of env, in order, joined by commas */
static char *statuses_of(const char *env)
{
    cJSON *st = gh_state();
    struct sb b;
    sb_init(&b);
    const cJSON *repo, *d;
    cJSON_ArrayForEach(repo, cJSON_GetObjectItemCaseSensitive(st, "deployments"))
    {
        cJSON_ArrayForEach(d, repo)
        {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(d, "environment");
            if (!cJSON_IsString(e) || strcmp(e->valuestring, env))
                continue;
            const cJSON *s;
            sb_addc(&b, '[');
            cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(d, "statuses"))
            sb_addf(&b, "%s,", cJSON_GetObjectItemCaseSensitive(s, "state")->valuestring);
            sb_addc(&b, ']');
        }
    }
    cJSON_Delete(st);
    return sb_steal(&b);
}

static bool statuses_are(void *ctx)
{
    char *s = statuses_of("pr-42");
    bool ok = !strcmp(s, ctx);
    free(s);
    return ok;
}

static char *only_comment(int *n);

static bool one_comment_with(void *ctx)
{
    int n = 0;
    char *c = only_comment(&n);
    bool ok = n == 1 && c && strstr(c, ctx);
    free(c);
    return ok;
}

static char *only_comment(int *n)
{
    cJSON *st = gh_state();
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(st, "comments"), "Codertocat/Hello-World#42");
    *n = cJSON_GetArraySize(cs);
    const cJSON *c = cJSON_GetArrayItem(cs, 0);
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(c, "body");
    char *r = cJSON_IsString(body) ? xstrdup(body->valuestring) : NULL;
    cJSON_Delete(st);
    return r;
}

Test(serve, the_pull_request_sees_its_deployment_statuses_and_one_comment_with_a_receipt,
     .fini = fini_gh)
{
    start_github();
    char *extra = xasprintf("github: {api_url: 'http://127.0.0.1:%d'}\n", gh_port);
    setup_project(TPL, extra);
    free(extra);
    const char *env[] = {"PRENV_GITHUB_WEBHOOK_SECRET=" SECRET, "PRENV_GITHUB_TOKEN=tok-123",
                         NULL};
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    server_pid = tl_spawn(&P, (const char *const[]){"serve", "--listen", listen, NULL}, env, logfile);
    cr_assert(tl_wait_http(port, "/healthz", 15000));
    cr_assert_eq(post_json("g-open", pr_payload("opened", 42, NULL, NULL)), 202);
    cr_assert(tl_until(statuses_are, "[in_progress,success,]", 60000), "statuses %s\n%s",
              statuses_of("pr-42"), tl_read(logfile));
    cr_assert(tl_until(one_comment_with, "http://127.0.0.1:", 30000), "%s", tl_read(logfile));
    int n = 0;
    char *c = only_comment(&n);
    cr_assert(c && strstr(c, "<!-- prenv:pr-42 -->"), "the comment carries the marker: %s", c);
    free(c);
    /* a push: a new deployment; the old one goes inactive; the same comment is edited */
    cJSON *sync = pr_payload("synchronize", 42, "5555555555555555555555555555555555555555", NULL);
    cr_assert_eq(post_json("g-sync", sync), 202);
    cr_assert(tl_until(statuses_are, "[in_progress,success,inactive,][in_progress,success,]",
                       60000),
              "statuses %s\n%s", statuses_of("pr-42"), tl_read(logfile));
    cr_assert_eq(post_json("g-close", pr_payload("closed", 42, NULL, NULL)), 202);
    cr_assert(tl_until(statuses_are,
                       "[in_progress,success,inactive,][in_progress,success,inactive,]", 60000),
              "statuses %s\n%s", statuses_of("pr-42"), tl_read(logfile));
    cr_assert(tl_until(one_comment_with, "web", 30000), "%s", tl_read(logfile));
    c = only_comment(&n);
    cr_assert_eq(n, 1, "one comment, edited in place");
    cr_assert(c && strstr(c, "conf"), "the receipt lists every resource: %s", c);
    free(c);
    stop_server(SIGTERM);
    char *log = tl_read(logfile);
    cr_assert(strstr(log, "reporting to GitHub"), "%s", log);
    cr_assert_null(strstr(log, "reporting to GitHub failed"), "%s", log);
    free(log);
}

Test(serve, previews_over_the_cap_wait_in_the_queue_and_come_up_when_one_closes)
{
    setup_project("resources:\n  conf:\n    type: file.render\n"
                  "    properties: {path: a.txt, content: \"${pr.sha}\"}\n",
                  "previews: {config: envs/preview.yaml, max: 1}\n");
    start_server();
    cr_assert_eq(post_json("m-1", pr_payload("opened", 11, NULL, NULL)), 202);
    struct envq q11 = {"pr-11", true, NULL}, q12 = {"pr-12", true, NULL};
    cr_assert(tl_until(env_state, &q11, 30000), "%s", tl_read(logfile));
    cr_assert_eq(post_json("m-2", pr_payload("opened", 12, NULL, NULL)), 202);
    usleep(1500000);
    cr_assert(!env_state(&q12), "pr-12 must wait while pr-11 holds the only slot");
    char *resp = NULL;
    tl_http(port, "GET", "/api/v1/jobs", NULL, "", 0, &resp);
    cr_assert(strstr(resp, "waiting: previews.max reached"), "the wait is visible: %s", resp);
    free(resp);
    cr_assert_eq(post_json("m-3", pr_payload("closed", 11, NULL, NULL)), 202);
    cr_assert(tl_until(env_state, &q12, 60000), "pr-12 never came up:\n%s", tl_read(logfile));
}

/* ---- the reaper, the sweeper and PR comment commands ---- */

static void start_server_gh(void)
{
    const char *env[] = {"PRENV_GITHUB_WEBHOOK_SECRET=" SECRET, "PRENV_GITHUB_TOKEN=tok-123",
                         "PRENV_API_TOKEN=tok", NULL};
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    server_pid = tl_spawn(&P, (const char *const[]){"serve", "--listen", listen, NULL}, env, logfile);
    cr_assert(tl_wait_http(port, "/healthz", 15000), "%s", tl_read(logfile));
}

static void gh_control(const char *path, const char *json)
{
    char *resp = NULL;
    cr_assert_eq(tl_http(gh_port, "POST", path, (const char *const[]){"Content-Type: application/json", NULL},
                         json, strlen(json), &resp),
                 200);
    free(resp);
}

static bool log_has(void *ctx)
{
    char *log = tl_read(logfile);
    bool ok = log && strstr(log, ctx);
    free(log);
    return ok;
}

Test(serve, an_expired_preview_is_destroyed_and_its_pull_request_says_why, .fini = fini_gh)
{
    start_github();
    char *extra = xasprintf("github: {api_url: 'http://127.0.0.1:%d'}\n"
                            "previews: {config: envs/preview.yaml, ttl: 6s, warn_before: 1h}\n",
                            gh_port);
    setup_project(TPL, extra);
    free(extra);
    start_server_gh();
    cr_assert_eq(post_json("x-open", pr_payload("opened", 42, NULL, NULL)), 202);
    struct envq q = {"pr-42", true, NULL};
    cr_assert(tl_until(env_state, &q, 60000), "%s", tl_read(logfile));
    /* half the lifetime in: the warning, on the PR's comment */
    cr_assert(tl_until(log_has, "msg=\"expires soon\"", 30000), "%s", tl_read(logfile));
    cr_assert(tl_until(one_comment_with, "Expires soon", 30000), "%s", tl_read(logfile));
    q.exists = false;
    cr_assert(tl_until(env_state, &q, 30000), "pr-42 did not expire:\n%s", tl_read(logfile));
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 0);
    cr_assert(tl_until(one_comment_with, "expired\\: ttl", 30000), "the receipt says why: %s\n%s",
              only_comment(&(int){0}), tl_read(logfile));
    cr_assert(log_has("msg=\"expired: destroying\" env=pr-42"), "%s", tl_read(logfile));
}

Test(serve, at_start_the_daemon_catches_up_with_a_window_that_closed_and_wakes_at_the_next)
{
    /* downtime from an hour ago to a few seconds from now */
    long long now = tm_now_ms();
    struct sb a, b;
    sb_init(&a);
    sb_init(&b);
    tm_rfc3339(&a, (now / 1000 - 3600) * 1000);
    tm_rfc3339(&b, (now / 1000 + 8) * 1000);
    char *extra = xasprintf("sandboxes: {name: 'sb-{name}', config: envs/sandbox.yaml,"
                            " schedule: {downtime: '%s-%s'}}\n",
                            a.buf, b.buf);
    sb_release(&a);
    sb_release(&b);
    setup_project(TPL, extra);
    free(extra);
    struct tl_res r = RUN("sandbox", "up", "dana");
    cr_assert_eq(r.code, 0, "%s", r.err);
    tl_res_free(&r);
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 1);
    start_server(); /* the window closed while no daemon ran */
    cr_assert(tl_until(log_has, "msg=\"going to sleep\" env=sb-dana", 10000), "%s",
              tl_read(logfile));
    cr_assert(tl_until(jobs_idle, NULL, 30000));
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 0, "asleep: no process");
    /* the window ends: awake again, by the daemon's own timer */
    struct envq q = {"sb-dana", true, NULL};
    cr_assert(tl_until(log_has, "msg=\"waking up\" env=sb-dana", 20000), "%s", tl_read(logfile));
    cr_assert(tl_until(env_state, &q, 30000), "%s", tl_read(logfile));
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 1);
    r = RUN("env", "show", "sb-dana", "--json");
    cr_assert(strstr(r.out, "\"asleep\": null"), "%s", r.out);
    tl_res_free(&r);
}

static bool env_gone(void *ctx)
{
    struct envq q = {ctx, false, NULL};
    return env_state(&q);
}

Test(serve, the_sweeper_destroys_a_closed_pull_requests_preview_and_nothing_on_doubt,
     .fini = fini_gh)
{
    start_github();
    char *extra = xasprintf("github: {api_url: 'http://127.0.0.1:%d'}\n"
                            "serve: {sweep_interval: 1s}\n",
                            gh_port);
    setup_project("resources:\n  conf:\n    type: file.render\n"
                  "    properties: {path: a.txt, content: \"${pr.sha}\"}\n",
                  extra);
    free(extra);
    /* 1 closed (its close webhook was lost), 2 open, 3 unknown (404), 4 an erroring API */
    gh_control("/_pull", "{\"repo\": \"Codertocat/Hello-World\", \"number\": 1, \"state\": \"closed\"}");
    gh_control("/_pull", "{\"repo\": \"Codertocat/Hello-World\", \"number\": 2, \"state\": \"open\"}");
    gh_control("/_pull", "{\"repo\": \"Codertocat/Hello-World\", \"number\": 4, \"state\": \"closed\"}");
    gh_control("/_fail", "{\"match\": \"GET /repos/.*/pulls/4$\", \"status\": 502, \"count\": 100000}");
    start_server_gh();
    char d[16];
    for (int n = 1; n <= 4; n++) {
        snprintf(d, sizeof d, "s-%d", n);
        cr_assert_eq(post_json(d, pr_payload("opened", n, NULL, NULL)), 202);
    }
    cr_assert(tl_until(env_gone, "pr-1", 30000), "pr-1 was not swept:\n%s", tl_read(logfile));
    cr_assert(tl_until(log_has, "sweeper: GitHub did not answer; nothing is destroyed", 30000) ||
                  tl_until(log_has, "sweeper: unexpected answer; nothing is destroyed", 1000),
              "%s", tl_read(logfile));
    cr_assert(tl_until(log_has, "sweeper: GitHub does not know this pull request", 10000), "%s",
              tl_read(logfile));
    usleep(2500000); /* two more sweeps */
    const char *kept[] = {"pr-2", "pr-3", "pr-4"};
    for (int i = 0; i < 3; i++) {
        struct envq q = {kept[i], true, NULL};
        cr_assert(env_state(&q), "%s must stay: an open PR or a doubtful answer\n%s", kept[i],
                  tl_read(logfile));
    }
    cr_assert(log_has("the pull request is closed; destroying its preview\" env=pr-1"), "%s",
              tl_read(logfile));
}

/* an issue_comment delivery for a comment that exists on the loopback GitHub */
static int comment_cmd(const char *login, const char *text, const char *delivery)
{
    /* the comment is made on the fixture first, by the commenter */
    char *resp = NULL;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "body", text);
    char *body = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    char auth[64];
    snprintf(auth, sizeof auth, "Authorization: token tok-%s", login);
    int st = tl_http(gh_port, "POST", "/repos/Codertocat/Hello-World/issues/42/comments",
                     (const char *const[]){"Content-Type: application/json", auth, NULL}, body,
                     strlen(body), &resp);
    free(body);
    cr_assert_eq(st, 201, "%s", resp);
    long long id = tl_json_int(resp, "id");
    free(resp);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "action", "created");
    cJSON *issue = cJSON_AddObjectToObject(ev, "issue");
    cJSON_AddNumberToObject(issue, "number", 42);
    cJSON_AddObjectToObject(issue, "pull_request");
    cJSON *cm = cJSON_AddObjectToObject(ev, "comment");
    cJSON_AddNumberToObject(cm, "id", (double)id);
    cJSON_AddStringToObject(cm, "body", text);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(cm, "user"), "login", login);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(ev, "repository"), "full_name",
                            "Codertocat/Hello-World");
    char *payload = cJSON_PrintUnformatted(ev);
    cJSON_Delete(ev);
    st = post("issue_comment", delivery, payload, NULL);
    free(payload);
    return st;
}

static bool gh_has(void *ctx)
{
    cJSON *st = gh_state();
    char *all = cJSON_PrintUnformatted(st);
    cJSON_Delete(st);
    bool ok = all && strstr(all, ctx);
    free(all);
    return ok;
}

static bool reaction_count(void *ctx)
{
    cJSON *st = gh_state();
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "reactions"));
    cJSON_Delete(st);
    return n >= *(int *)ctx;
}

static char *reactions(void)
{
    cJSON *st = gh_state();
    struct sb b;
    sb_init(&b);
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(st, "reactions"))
    sb_addf(&b, "%s,", cJSON_GetObjectItemCaseSensitive(r, "content")->valuestring);
    cJSON_Delete(st);
    return sb_steal(&b);
}

static bool env_asleep(void *ctx)
{
    struct tl_res r = RUN("env", "show", ctx, "--json");
    bool ok = strstr(r.out, "\"asleep\": \"manual\"") && strstr(r.out, "\"status\": \"asleep\"");
    tl_res_free(&r);
    return ok;
}

Test(serve, pull_request_comment_commands_need_write_access_and_are_answered, .fini = fini_gh)
{
    gh_pid = 0;
    /* the fixture knows three people: the bot, alice (write) and mallory (read) */
    gh_portfile = xasprintf("/tmp/prenv-test-gh-%d.port", (int)getpid());
    unlink(gh_portfile);
    gh_pid = fork();
    if (gh_pid == 0) {
        int out = open(gh_portfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int errfd = open("/dev/null", O_WRONLY);
        dup2(out, 1);
        dup2(errfd, 2);
        execlp("python3", "python3", PRENV_SRC "/tests/fixtures/github_api.py", "--token",
               "tok-123:prenv-bot", "--token", "tok-alice:alice", "--token", "tok-mallory:mallory",
               (char *)NULL);
        _exit(127);
    }
    gh_port = tl_read_port(gh_portfile, 10000);
    cr_assert_gt(gh_port, 0);
    gh_control("/_permission", "{\"login\": \"alice\", \"permission\": \"write\"}");
    gh_control("/_permission", "{\"login\": \"mallory\", \"permission\": \"read\"}");
    char *extra = xasprintf("github: {api_url: 'http://127.0.0.1:%d'}\n"
                            "serve: {sweep_interval: 0}\n",
                            gh_port);
    setup_project(TPL, extra);
    free(extra);
    start_server_gh();
    cr_assert_eq(post_json("c-open", pr_payload("opened", 42, NULL, NULL)), 202);
    struct envq q = {"pr-42", true, NULL};
    cr_assert(tl_until(env_state, &q, 60000), "%s", tl_read(logfile));
    struct tl_res r = RUN("env", "show", "pr-42", "--json");
    char *before = tl_json_str(r.out, "expires");
    tl_res_free(&r);
    /* alice extends: +1, and the expiry moves */
    cr_assert_eq(comment_cmd("alice", "/prenv extend 24h", "c-1"), 202);
    int want = 1;
    cr_assert(tl_until(reaction_count, &want, 15000), "%s", tl_read(logfile));
    cr_assert(tl_until(jobs_idle, NULL, 15000));
    r = RUN("env", "show", "pr-42", "--json");
    char *after = tl_json_str(r.out, "expires");
    tl_res_free(&r);
    cr_assert(before && after && strcmp(after, before) > 0, "%s !> %s\n%s", after, before,
              tl_read(logfile));
    free(before);
    free(after);
    /* mallory may not: -1, a reply, and the preview stays */
    cr_assert_eq(comment_cmd("mallory", "/prenv destroy", "c-2"), 202);
    want = 2;
    cr_assert(tl_until(reaction_count, &want, 15000), "%s", tl_read(logfile));
    char *rx = reactions();
    cr_assert_str_eq(rx, "+1,-1,");
    free(rx);
    cr_assert(tl_until(log_has, "PR command refused", 5000));
    cr_assert(tl_until(gh_has, "needs write access", 10000), "a reply says why");
    usleep(500000);
    cr_assert(env_state(&q), "mallory's destroy did nothing");
    /* not commands: acknowledged and ignored */
    char *resp = NULL;
    cr_assert_eq(comment_cmd("alice", "/prenv dance", "c-3"), 202);
    cr_assert_eq(comment_cmd("alice", "/prenv extend forever", "c-4"), 202);
    cr_assert_eq(comment_cmd("alice", "looks good to me", "c-5"), 202);
    free(resp);
    /* alice: sleep, then destroy; the receipt says who */
    cr_assert_eq(comment_cmd("alice", "/prenv sleep", "c-6"), 202);
    cr_assert(tl_until(env_asleep, "pr-42", 30000), "%s", tl_read(logfile));
    cr_assert_eq(tl_procs_matching(P.dir, " supervise "), 0);
    cr_assert_eq(comment_cmd("alice", "/prenv destroy", "c-7"), 202);
    q.exists = false;
    cr_assert(tl_until(env_state, &q, 30000), "%s", tl_read(logfile));
    cr_assert(tl_until(log_has, "/prenv destroy by alice", 5000), "%s", tl_read(logfile));
    want = 4;
    cr_assert(tl_until(reaction_count, &want, 10000));
    rx = reactions();
    cr_assert_str_eq(rx, "+1,-1,+1,+1,", "only real commands get a reaction");
    free(rx);
}

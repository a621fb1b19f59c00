/* End to end: router.route and `prenv serve`'s router and dashboard — a host
 * reaches the env's app, a clash is refused, a sleeping env wakes on its
 * first requests (one wake for all of them), access settings are enforced,
 * requests count as activity, and the dashboard and its API answer. */
#include "tests/testlib.h"

#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct tl_proj P;
static int server_pid;
static int api_port, router_port;
static char *logfile;

static void stop_server(void)
{
    tl_stop_pid(&server_pid, SIGTERM);
}

static void fini(void)
{
    stop_server();
    tl_proj_free(&P);
    if (logfile)
        unlink(logfile);
    free(logfile);
    logfile = NULL;
}

TestSuite(router, .fini = fini, .timeout = 180);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)

static const char *const TPL = "resources:\n"
                               "  web:\n"
                               "    type: process.service\n"
                               "    properties:\n"
                               "      command: [python3, \"${project.dir}/app.py\"]\n"
                               "      replicas: ${config.replicas}\n"
                               "      health: {http: /healthz, timeout: 30s}\n"
                               "      stop_timeout: 5s\n"
                               "  route:\n"
                               "    type: router.route\n"
                               "    properties:\n"
                               "      host: ${config.host}\n"
                               "      upstream: ${web.addresses}\n"
                               "outputs:\n"
                               "  url: ${route.url}\n";

static void setup(const char *extra)
{
    tl_proj_new(&P, TPL, "  replicas: 2\n", extra);
    tl_write(P.dir, "envs/dev.yaml", "imports: [base]\nvalues: {host: dev.shop.test}\n");
    tl_write(P.dir, "envs/staging.yaml", "imports: [base]\nvalues: {host: staging.shop.test}\n");
    api_port = P.port_hi;
    router_port = P.port_hi - 1;
    logfile = xasprintf("%s.serve.log", P.dir);
}

static void start_server(void)
{
    const char *env[] = {"PRENV_API_TOKEN=tok", NULL};
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", api_port);
    server_pid = tl_spawn(&P, (const char *const[]){"serve", "--listen", listen, NULL}, env, logfile);
    cr_assert(tl_wait_http(api_port, "/healthz", 15000), "the server did not start:\n%s",
              tl_read(logfile));
}

/* a GET through the router with a Host header */
static int via_router(const char *host, const char *path, const char *auth, char **body)
{
    char h[256], a[256];
    snprintf(h, sizeof h, "Host: %s", host);
    snprintf(a, sizeof a, "Authorization: %s", auth ? auth : "");
    const char *hs[] = {h, auth ? a : NULL, NULL};
    return tl_http(router_port, "GET", path, hs, "", 0, body);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(router, a_host_reaches_its_env_and_a_clash_names_the_other_env)
{
    setup(NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    char url[128];
    snprintf(url, sizeof url, "url: http://dev.shop.test:%d/", router_port);
    cr_assert(strstr(r.out, url), "the route's URL carries the router's port:\n%s", r.out);
    tl_res_free(&r);
    /* the same host for staging: refused at plan time, naming dev */
    tl_write(P.dir, "envs/staging.yaml", "imports: [base]\nvalues: {host: dev.shop.test}\n");
    r = RUN("env", "plan", "staging");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "host dev.shop.test is already routed to environment 'dev'"), "%s",
              r.err);
    cr_assert(strstr(r.err, "envs/staging.yaml:2"), "the error points at the value:\n%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "up", "staging", "--yes");
    cr_assert_eq(r.code, 1, "%s%s", r.out, r.err);
    tl_res_free(&r);

    start_server();
    char *body = NULL;
    cr_assert_eq(via_router("dev.shop.test", "/info", NULL, &body), 200, "%s", tl_read(logfile));
    cr_assert(strstr(body, "\"env\": \"dev\""), "the app answered: %s", body);
    free(body);
    /* both replicas serve, in turn */
    char *b2 = NULL;
    cr_assert_eq(via_router("dev.shop.test", "/info", NULL, &b2), 200);
    long long p1 = tl_json_int(b2, "port");
    free(b2);
    cr_assert_eq(via_router("dev.shop.test", "/info", NULL, &b2), 200);
    cr_assert_neq(tl_json_int(b2, "port"), p1, "round-robin over the replicas");
    free(b2);
    cr_assert_eq(via_router("nope.shop.test", "/", NULL, &body), 404);
    cr_assert(strstr(body, "nope.shop.test") && !strstr(body, "dev.shop.test"),
              "a 404 names the host asked for and nothing else: %s", body);
    free(body);
    body = NULL;

    /* destroyed: the host is free again and unknown to the router */
    r = RUN("env", "destroy", "dev", "--yes");
    cr_assert_eq(r.code, 0, "%s", r.err);
    tl_res_free(&r);
    char *claim = xasprintf("%s/hosts/dev.shop.test", P.state);
    cr_assert(!tl_exists(claim), "the claim is released with the env");
    free(claim);
    r = RUN("env", "up", "staging", "--yes");
    cr_assert_eq(r.code, 0, "%s", r.err);
    tl_res_free(&r);
    /* at once: a host the router does not know yet makes it look again */
    cr_assert_eq(via_router("dev.shop.test", "/info", NULL, &body), 200, "%s", tl_read(logfile));
    cr_assert(strstr(body, "\"env\": \"staging\""), "%s", body);
    free(body);
}

struct req_thread {
    pthread_t t;
    int status;
    char *body;
};

static void *one_request(void *arg)
{
    struct req_thread *rq = arg;
    rq->status = via_router("dev.shop.test", "/info", NULL, &rq->body);
    return NULL;
}

static bool asleep_dev(void *ctx)
{
    (void)ctx;
    struct tl_res r = RUN("env", "list", "--json");
    bool ok = strstr(r.out, "\"asleep\": \"manual\"") != NULL;
    tl_res_free(&r);
    return ok;
}

static bool three_held(void *ctx)
{
    (void)ctx;
    char *log = tl_read(logfile);
    bool ok = log && count(log, "held_ms=") >= 3;
    free(log);
    return ok;
}

Test(router, a_sleeping_env_wakes_once_for_three_concurrent_requests)
{
    setup(NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    cr_assert_eq(r.code, 0, "%s", r.err);
    tl_res_free(&r);
    r = RUN("env", "sleep", "dev");
    cr_assert_eq(r.code, 0, "%s", r.err);
    tl_res_free(&r);
    cr_assert(tl_until(asleep_dev, NULL, 10000));
    cr_assert_eq(tl_procs_matching(P.dir, "app.py"), 0, "nothing runs while asleep");
    start_server();
    struct req_thread rq[3] = {0};
    for (int i = 0; i < 3; i++)
        pthread_create(&rq[i].t, NULL, one_request, &rq[i]);
    for (int i = 0; i < 3; i++) {
        pthread_join(rq[i].t, NULL);
        cr_assert_eq(rq[i].status, 200, "request %d: %d %s\n%s", i, rq[i].status,
                     rq[i].body ? rq[i].body : "", tl_read(logfile));
        cr_assert(strstr(rq[i].body, "\"env\": \"dev\""), "%s", rq[i].body);
        free(rq[i].body);
    }
    /* a request's access-log line is written once its response has gone
     * out, so the client can have its answer a moment before the line */
    tl_until(three_held, NULL, 5000);
    char *log = tl_read(logfile);
    cr_assert_eq(count(log, "router: waking on request"), 1, "one wake for all three:\n%s", log);
    cr_assert_eq(count(log, "msg=\"environment awake\""), 1, "one wake job ran:\n%s", log);
    cr_assert_eq(count(log, "held_ms="), 3, "all three were held for it:\n%s", log);
    free(log);
    r = RUN("env", "show", "dev", "--json");
    cr_assert(strstr(r.out, "\"asleep\": null") || !strstr(r.out, "\"asleep\": \""),
              "awake now:\n%s", r.out);
    tl_res_free(&r);
    r = RUN("env", "list", "--json");
    cr_assert(strstr(r.out, "\"wake_until\": \"20"),
              "a request's wake holds over the schedule (router.wake_for):\n%s", r.out);
    tl_res_free(&r);
    /* requests are activity: recorded within a few seconds */
    char *act = xasprintf("%s/activity/dev", P.state);
    for (int i = 0; i < 100 && !tl_exists(act); i++)
        usleep(100000);
    cr_assert(tl_exists(act), "the router records activity");
    free(act);
}

Test(router, a_kind_with_a_token_lets_only_its_holders_through)
{
    setup("router:\n"
          "  access:\n"
          "    stages: {token: s3cret}\n"
          "    previews: {basic: 'rev:pw'}\n");
    /* the router block replaces the test project's: --router sets the port */
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    cr_assert_eq(r.code, 0, "%s", r.err);
    tl_res_free(&r);
    const char *env[] = {"PRENV_API_TOKEN=tok", NULL};
    char listen[64], rlisten[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", api_port);
    snprintf(rlisten, sizeof rlisten, "127.0.0.1:%d", router_port);
    server_pid = tl_spawn(&P, (const char *const[]){"serve", "--listen", listen, "--router",
                                                    rlisten, NULL},
                          env, logfile);
    cr_assert(tl_wait_http(api_port, "/healthz", 15000), "%s", tl_read(logfile));
    char *body = NULL;
    int st = via_router("dev.shop.test", "/info", NULL, &body);
    cr_assert_eq(st, 401, "got %d: %s\n%s", st, body ? body : "", tl_read(logfile));
    free(body);
    body = NULL;
    cr_assert_eq(via_router("dev.shop.test", "/info", "Bearer wrong", &body), 401);
    free(body);
    body = NULL;
    cr_assert_eq(via_router("dev.shop.test", "/info", "Bearer s3cret", &body), 200);
    cr_assert(strstr(body, "\"authorization\": null"), "the app never sees the router's token: %s",
              body);
    free(body);
    body = NULL;
    /* basic credentials are for previews, not stages */
    cr_assert_eq(via_router("dev.shop.test", "/info", "Basic cmV2OnB3", &body), 401);
    free(body);
}

static bool dev_asleep_api(void *ctx)
{
    (void)ctx;
    char *resp = NULL;
    tl_http(api_port, "GET", "/api/v1/envs", NULL, "", 0, &resp);
    bool ok = resp && strstr(resp, "\"asleep\": \"manual\"");
    free(resp);
    return ok;
}

Test(router, the_dashboard_and_its_api_answer)
{
    setup(NULL);
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    cr_assert_eq(r.code, 0, "%s", r.err);
    tl_res_free(&r);
    start_server();
    char *body = NULL;
    cr_assert_eq(tl_http(api_port, "GET", "/", NULL, "", 0, &body), 200);
    cr_assert(strstr(body, "<title>prenv</title>") && strstr(body, "/api/v1/envs"), "%.200s",
              body);
    cr_assert(!strstr(body, "http://") || !strstr(body, "src=\"http"),
              "the page loads nothing from elsewhere");
    free(body);
    body = NULL;
    cr_assert_eq(tl_http(api_port, "GET", "/api/v1/info", NULL, "", 0, &body), 200);
    cr_assert(strstr(body, "\"project\": \"test\""), "%s", body);
    free(body);
    body = NULL;
    cr_assert_eq(tl_http(api_port, "GET", "/api/v1/envs/dev/history?last=5", NULL, "", 0, &body),
                 200);
    cr_assert(strstr(body, "\"operation\":\"up\""), "%s", body);
    free(body);
    body = NULL;
    cr_assert_eq(tl_http(api_port, "GET", "/api/v1/envs/dev/logs?lines=5", NULL, "", 0, &body),
                 200);
    cr_assert(strstr(body, "\"lines\": [\"") && strstr(body, "web"), "%s", body);
    free(body);
    body = NULL;
    /* actions need the token */
    cr_assert_eq(tl_http(api_port, "POST", "/api/v1/envs/dev/sleep", NULL, "", 0, &body), 401);
    free(body);
    body = NULL;
    const char *auth[] = {"Authorization: Bearer tok", NULL};
    cr_assert_eq(tl_http(api_port, "POST", "/api/v1/envs/dev/extend", auth, "{\"by\": \"soon\"}",
                         15, &body),
                 400);
    free(body);
    body = NULL;
    cr_assert_eq(tl_http(api_port, "POST", "/api/v1/envs/dev/sleep", auth, "", 0, &body), 202,
                 "%s", body);
    free(body);
    cr_assert(tl_until(dev_asleep_api, NULL, 20000), "%s", tl_read(logfile));
    body = NULL;
    cr_assert_eq(tl_http(api_port, "POST", "/api/v1/envs/nope/wake", auth, "", 0, &body), 404);
    free(body);
}

Test(router, the_dashboard_in_a_real_browser_lists_envs_with_cost_and_extends_one)
{
    /* dear enough that seconds of two replicas show on the page */
    setup("cost: {currency: EUR, replica_hour: 3600}\n");
    tl_write(P.dir, "envs/preview.yaml", "imports: [base]\nvalues: {host: pr-7.shop.test}\n");
    struct tl_res r = RUN("env", "up", "pr-7", "--yes");
    cr_assert_eq(r.code, 0, "%s", r.err);
    tl_res_free(&r);
    start_server();
    FILE *f = popen(PRENV_SRC "/scripts/browser-deps.sh", "r");
    char mods[4096] = "";
    cr_assert(f && fgets(mods, sizeof mods, f), "scripts/browser-deps.sh failed");
    pclose(f);
    mods[strcspn(mods, "\n")] = 0;
    /* the screenshots are the test's artifacts: kept in the build tree */
    char *dir = xasprintf("%s/test-artifacts", PRENV_BUILD_DIR);
    char *cmd = xasprintf("mkdir -p '%s' && PRENV_NODE_MODULES='%s' node '%s/tests/browser/"
                          "dashboard.mjs' http://127.0.0.1:%d tok pr-7 '%s/dashboard.png' EUR 2>&1",
                          dir, mods, PRENV_SRC, api_port, dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[16384];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    cr_assert_eq(st, 0, "the browser test failed:\n%s\nserver log:\n%s", out, tl_read(logfile));
    cr_assert(strstr(out, "dashboard test: ok"), "%s", out);
    free(cmd);
    free(dir);
}

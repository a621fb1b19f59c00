/* serve: run the daemon — GitHub webhooks, the REST API, /metrics — for the
 * project in the current directory (or -C). */
#include "cmd/cmd.h"
#include "hooks/serve.h"

#include <stddef.h>
#include <stdio.h>

struct serve_cmd_opts {
    const char *listen;
    const char *router;
    long long parallel;
};

#define O(f) offsetof(struct serve_cmd_opts, f)
static const struct cmd_opt opts[] = {
    {"listen", 'l', OPT_STR, O(listen), "ADDR",
     "listen on ADDR, e.g. 127.0.0.1:8787 or :8787 (default: serve.listen in prenv.yaml)"},
    {"router", 'r', OPT_STR, O(router), "ADDR",
     "the preview router's address (default: router.listen, 127.0.0.1:8080; \"off\": none)"},
    {"parallel", 'p', OPT_INT, O(parallel), "N", "operations at once within one environment"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_serve(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct serve_cmd_opts *o = vo;
    struct serve_opts so = {
        .project_dir = c->project_dir,
        .state_dir = c->state_dir,
        .listen = o->listen,
        .router = o->router,
        .parallel = (int)o->parallel,
    };
    struct err e = {0};
    if (serve_run(&so, &e))
        return cmd_error(c, &e);
    return EXIT_OK;
}

const struct cmd_entry cmd_serve_entry = {
    .name = "serve",
    .args = NULL,
    .min_args = 0,
    .max_args = 0,
    .summary = "run the daemon: GitHub webhooks, a durable job queue, the router, the dashboard",
    .help = "Accepts signed GitHub pull_request webhooks on POST /hooks/github (secret in\n"
            "PRENV_GITHUB_WEBHOOK_SECRET), queues each intent durably before answering, and\n"
            "runs jobs one per environment at a time. GET /api/v1/envs, /api/v1/envs/NAME,\n"
            "/api/v1/jobs; POST /api/v1/envs/NAME/up|sleep|wake|extend and DELETE\n"
            "/api/v1/envs/NAME with Authorization: Bearer $PRENV_API_TOKEN; GET /healthz,\n"
            "/metrics, and the dashboard at /. The router (--router) sends each\n"
            "environment's router.route hosts to its services and wakes a sleeping one on\n"
            "its first request. Logs one key=value line per event on stderr. SIGTERM or\n"
            "SIGINT stop it gracefully.",
    .opts = opts,
    .opts_size = sizeof(struct serve_cmd_opts),
    .exec = exec_serve,
};

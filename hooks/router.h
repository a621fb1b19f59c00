/* router: the preview router inside `prenv serve`. It keeps the table of
 * router.route records (core/routes.h) and the state of the environments
 * they belong to, and decides for every request the proxy engine
 * (core/net/proxy.h) receives: which replicas it goes to, or a 404 for an
 * unknown host, a 401 where the kind's access settings ask for a token, a
 * 503 while an environment is being created, or — for an environment that
 * sleeps — a wake job, with the request held until the environment is up.
 * Requests count as activity (the idle TTL), written every few seconds, not
 * per request.
 *
 * What it leaves to others: forwarding, streaming and limits (proxy.c), the
 * jobs themselves (serve.c queues and runs them), logging format (a hook). */
#ifndef PRENV_ROUTER_H
#define PRENV_ROUTER_H

#include "core/lib/err.h"
#include "core/lib/sb.h"

#include <stdbool.h>
#include <uv.h>

struct project;
struct router;

struct router_hooks {
    /* wake: queue a wake job for env; its id, or -1 when it cannot be queued */
    long long (*wake)(void *ctx, const char *env);
    /* log: one structured line; kv holds key, value pairs and ends with NULL
     * (a NULL value is left out) */
    void (*log)(void *ctx, const char *level, const char *msg, const char *const *kv);
    void *ctx;
};

/* router_start: listen on addr and route with the project's settings (kept
 * by reference: proj must outlive the router). */
int router_start(struct router **out, uv_loop_t *loop, const char *addr,
                 const struct project *proj, const struct router_hooks *h, struct err *e);
/* router_port: the port it listens on. */
int router_port(const struct router *rt);
/* router_reload: read the route table and the environments' states again
 * (after a job, or when the state directory changed). */
void router_reload(struct router *rt);
/* router_job_ended: job (its queue id) of env ended, ok or with error; held
 * requests of env are answered now: forwarded when it is up, told why not
 * when the wake they wait for failed, held on when it is still asleep. */
void router_job_ended(struct router *rt, const char *env, long long job, bool ok,
                      const char *error);
/* router_metrics: Prometheus text for /metrics. */
void router_metrics(const struct router *rt, struct sb *b);
/* router_close: stop accepting, answer held requests, let requests in
 * progress end up to deadline_ms, write the activity not yet written; cb
 * when everything is closed (rt is freed after it). */
void router_close(struct router *rt, unsigned deadline_ms, void (*cb)(void *arg), void *arg);

#endif

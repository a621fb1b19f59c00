/* serve: the daemon behind `prenv serve`. One libuv loop serves GitHub
 * webhooks (POST /hooks/github), the REST API (/api/v1/...), /healthz and
 * /metrics. An accepted delivery is written to the durable queue before it is
 * answered (deliveries arriving together share one transaction and one
 * fsync); jobs run one per environment at a time on worker threads, through
 * the same functions as the CLI (envs/op.c), within a global concurrency
 * limit; a newer intent supersedes waiting ones and a close cancels a running
 * up at its next resource boundary. SIGTERM/SIGINT stop accepting, finish
 * in-flight requests and, up to a deadline, running jobs; what is left is
 * resumed on the next start. */
#ifndef PRENV_SERVE_H
#define PRENV_SERVE_H

#include "core/lib/err.h"

#include <stdio.h>

struct serve_opts {
    const char *project_dir; /* NULL: search upwards from the cwd */
    const char *state_dir;   /* NULL: from prenv.yaml */
    const char *listen;      /* NULL: serve.listen */
    const char *router;      /* NULL: router.listen; "off": no router */
    FILE *log;               /* structured log lines (key=value); NULL = stderr */
    int parallel;            /* operations at once within one job (0 = engine default) */
};

/* serve_run: run until SIGTERM or SIGINT; 0 after a clean shutdown. */
int serve_run(const struct serve_opts *o, struct err *e);

#endif

/* dashboard: the page at GET / and the read-only API calls it needs beyond
 * serve.c's (an env's history, the last lines of its logs). */
#ifndef PRENV_DASHBOARD_H
#define PRENV_DASHBOARD_H

#include "core/net/http.h"

/* dash_page: answer req with the dashboard page. */
void dash_page(struct http_req *req);
/* dash_history: GET /api/v1/envs/ENV/history?last=N (default 20, at most 1000). */
void dash_history(struct http_req *req, const char *state_dir, const char *env);
/* dash_logs: GET /api/v1/envs/ENV/logs?lines=N: the last N lines (default 60,
 * at most 500) of each of the env's log files, each prefixed "<file> | ". */
void dash_logs(struct http_req *req, const char *state_dir, const char *env);
/* dash_query_int: key=N from a raw query string, clamped to [lo, hi]; def if absent. */
long long dash_query_int(const char *query, const char *key, long long def, long long lo,
                         long long hi);

#endif

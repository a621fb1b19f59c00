/* routes: the records the router reads, kept in the state directory so the
 * engine (which creates routes) and `prenv serve` (which serves them) share
 * nothing but files.
 *
 *   <state>/hosts/<host>                    the claim: "<env>\n". Whoever
 *                                           holds it owns the host; made with
 *                                           O_EXCL, so two environments can
 *                                           never both win it.
 *   <state>/routes/<resource>@<env>.json    one route: host, path prefix,
 *                                           upstream addresses, env, resource.
 *
 * A host is claimed when the `up` that creates its route starts (so the
 * router can answer "being created" instead of "unknown host") and released
 * when the route is removed or its environment destroyed. What it leaves to
 * others: serving (hooks/router.c), the provider's checks
 * (core/providers/router_route.c). */
#ifndef PRENV_ROUTES_H
#define PRENV_ROUTES_H

#include "core/lib/err.h"
#include "core/lib/val.h"

#include <stdbool.h>
#include <stddef.h>

#define ROUTE_HOST_MAX 253

/* route_host_valid: a lowercase DNS name (labels of [a-z0-9-], not starting
 * or ending with '-', 1-63 bytes each, 253 in all); why says what is wrong. */
bool route_host_valid(const char *host, const char **why);

/* route_claim: make env the owner of host. Succeeds when env already owns it;
 * PE_EXISTS naming the owner when another environment does. */
int route_claim(const char *state_dir, const char *host, const char *env, struct err *e);
/* route_owner: the env owning host, or NULL (caller frees). */
char *route_owner(const char *state_dir, const char *host);
/* route_unclaim: drop env's claim on host (another owner's claim stays). */
void route_unclaim(const char *state_dir, const char *host, const char *env);
/* route_release_env: drop every claim and route record of env. */
void route_release_env(const char *state_dir, const char *env);

struct route {
    char *env, *resource, *host, *path;
    char **upstreams; /* "127.0.0.1:21000" */
    size_t nup;
};

/* route_write: record r (atomically). */
int route_write(const char *state_dir, const struct route *r, struct err *e);
/* route_recorded: whether (env, resource) has a record. */
bool route_recorded(const char *state_dir, const char *env, const char *resource);
/* route_remove: drop the record of (env, resource); missing is fine. */
void route_remove(const char *state_dir, const char *env, const char *resource);
/* route_load_all: every route record, and every claimed host as a route with
 * no resource (resource NULL, no upstreams) when it has no record yet. A
 * record that cannot be read is skipped and counted in *bad. */
int route_load_all(const char *state_dir, struct route **out, size_t *n, size_t *bad,
                   struct err *e);
void route_release(struct route *r);
void routes_free(struct route *r, size_t n);

#endif

/* router.route: a host (and optional path prefix) of `prenv serve`'s router
 * sending requests to an environment's service replicas. The resource is a
 * record in the state directory (core/routes.h) and a claim on its host, so
 * two environments never share one; the router reads the records. Serving,
 * waking and protection are the router's business (hooks/router.c). */
#include "core/provider.h"
#include "core/routes.h"

#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <stdlib.h>
#include <string.h>

static const struct prov_prop schema[] = {
    {"host", PT_STR, PROP_REQUIRED,
     "host name it answers to, unique across environments (\"${env.slug}.${config.domain}\")"},
    {"path", PT_STR, 0, "path prefix it answers under (default \"/\": every path)"},
    {"upstream", PT_ANY, PROP_REQUIRED,
     "where requests go: \"127.0.0.1:PORT\" or a list of them (a process.service's "
     "${web.addresses}); requests go round-robin over those that answer"},
    {NULL, 0, 0, NULL},
};

static const struct prov_output outputs[] = {
    {"url", OUT_STABLE, "http://<host>[:<router port>]<path>: the environment's address"},
    {"host", OUT_STABLE, "the host name"},
    {"path", OUT_STABLE, "the path prefix"},
    {"upstreams", 0, "the addresses requests go to now (empty while asleep)"},
    {NULL, 0, NULL},
};

static int check_addr(const struct val *v, struct err *e)
{
    if (v->kind == VAL_UNKNOWN)
        return 0;
    if (v->kind != VAL_STR)
        return err_set(e, PE_CONFIG, &v->pos, "'upstream' entries must be \"HOST:PORT\" strings");
    const char *s = v->u.str.s, *colon = strrchr(s, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == s || !*(colon + 1) || *end || port < 1 || port > 65535)
        return err_set(e, PE_CONFIG, &v->pos,
                       "'upstream' entry '%s' is not \"HOST:PORT\" (like 127.0.0.1:21000)", s);
    return 0;
}

static int rr_check(const struct prov_call *c, struct err *e)
{
    const struct val *h = val_map_get(c->props, "host");
    const char *why;
    if (h && h->kind == VAL_STR && !route_host_valid(h->u.str.s, &why))
        return err_set(e, PE_CONFIG, &h->pos, "'host' '%s' is not a host name: %s", h->u.str.s,
                       why);
    const struct val *p = val_map_get(c->props, "path");
    if (p && p->kind == VAL_STR && (p->u.str.s[0] != '/' || strpbrk(p->u.str.s, " ?#\t\r\n")))
        return err_set(e, PE_CONFIG, &p->pos,
                       "'path' must start with '/' and hold no spaces, '?' or '#', not '%s'",
                       p->u.str.s);
    const struct val *u = val_map_get(c->props, "upstream");
    if (!u || u->kind == VAL_UNKNOWN || u->kind == VAL_NULL)
        return 0;
    if (u->kind == VAL_LIST) {
        for (size_t i = 0; i < u->u.list.n; i++)
            if (check_addr(u->u.list.v[i], e))
                return e->code;
        return 0;
    }
    return check_addr(u, e);
}

/* the route the properties describe; path without a trailing '/' except "/" */
static void route_of(const struct prov_call *c, struct route *r)
{
    memset(r, 0, sizeof *r);
    r->env = xstrdup(c->env);
    r->resource = xstrdup(c->resource);
    r->host = xstrdup(prov_str(c->props, "host", ""));
    const char *p = prov_str(c->props, "path", "/");
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        n--;
    r->path = xstrndup(p, n);
    const struct val *u = val_map_get(c->props, "upstream");
    size_t cnt = u && u->kind == VAL_LIST ? u->u.list.n : u && u->kind == VAL_STR ? 1 : 0;
    r->upstreams = xcalloc(cnt + 1, sizeof *r->upstreams);
    if (u && u->kind == VAL_STR)
        r->upstreams[r->nup++] = xstrdup(u->u.str.s);
    for (size_t i = 0; u && u->kind == VAL_LIST && i < u->u.list.n; i++)
        if (u->u.list.v[i]->kind == VAL_STR)
            r->upstreams[r->nup++] = xstrdup(u->u.list.v[i]->u.str.s);
}

static void set_outputs(const struct prov_call *c, const struct route *r, struct prov_result *res)
{
    int port = c->host ? c->host->router_port : 0;
    res->id = xasprintf("%s%s", r->host, strcmp(r->path, "/") ? r->path : "");
    res->outputs = val_map(NULL);
    char *url = port && port != 80 ? xasprintf("http://%s:%d%s", r->host, port, r->path)
                                   : xasprintf("http://%s%s", r->host, r->path);
    if (strcmp(r->path, "/")) { /* a prefix: the URL ends with '/' like the root's */
        char *u = xasprintf("%s/", url);
        free(url);
        url = u;
    }
    val_map_set(res->outputs, "url", NULL, val_str_own(url, NULL));
    val_map_set(res->outputs, "host", NULL, val_str(r->host, NULL));
    val_map_set(res->outputs, "path", NULL, val_str(r->path, NULL));
    struct val *ups = val_list(NULL);
    for (size_t i = 0; i < r->nup; i++)
        val_list_push(ups, val_str(r->upstreams[i], NULL));
    val_map_set(res->outputs, "upstreams", NULL, ups);
}

static int put(const struct prov_call *c, struct prov_result *res, struct err *e)
{
    const char *sd = c->host->state_dir;
    struct route r;
    route_of(c, &r);
    int rc = route_claim(sd, r.host, c->env, e);
    if (!rc)
        rc = route_write(sd, &r, e);
    if (!rc) {
        /* a host given up by an update is free again */
        const char *old = c->old_props ? prov_str(c->old_props, "host", NULL) : NULL;
        if (old && strcmp(old, r.host))
            route_unclaim(sd, old, c->env);
        set_outputs(c, &r, res);
        prov_log(c, "route %s%s -> %zu upstream(s)", r.host, r.path, r.nup);
    }
    route_release(&r);
    return rc;
}

static int rr_create(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    return put(c, r, e);
}

static int rr_update(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    return put(c, r, e);
}

static int rr_read(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    (void)e;
    const struct val *props = c->old_props;
    const char *host = props ? prov_str(props, "host", NULL) : NULL;
    if (!host) {
        r->exists = false;
        return 0;
    }
    char *owner = route_owner(c->host->state_dir, host);
    r->exists = owner && !strcmp(owner, c->env);
    if (owner && !r->exists)
        r->drift = xasprintf("host %s is now routed to environment '%s'", host, owner);
    else if (r->exists && !route_recorded(c->host->state_dir, c->env, c->resource))
        r->drift = xstrdup("the router's record of this route is missing");
    free(owner);
    if (r->exists) {
        struct prov_call cc = *c;
        cc.props = props;
        struct route rt;
        route_of(&cc, &rt);
        set_outputs(&cc, &rt, r);
        route_release(&rt);
    }
    return 0;
}

static int rr_remove(const struct prov_call *c, struct err *e)
{
    (void)e;
    const char *sd = c->host->state_dir;
    route_remove(sd, c->env, c->resource);
    const char *host = c->old_props ? prov_str(c->old_props, "host", NULL) : NULL;
    if (host)
        route_unclaim(sd, host, c->env);
    return 0;
}

const struct provider prov_router_route = {
    .type = "router.route",
    .summary = "a host name on prenv serve's router, sent to the environment's service replicas",
    .props = schema,
    .outputs = outputs,
    .check = rr_check,
    .create = rr_create,
    .read = rr_read,
    .update = rr_update,
    .remove = rr_remove,
};

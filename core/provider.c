/* provider: the registry of resource types, the generic property schema
 * check, and the services providers use (logs, child environments, port
 * leases). */
#include "core/provider.h"

#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/proc.h"
#include "core/lib/xalloc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

extern const struct provider prov_file_render;
extern const struct provider prov_exec_command;
extern const struct provider prov_sqlite_database;
extern const struct provider prov_git_checkout;
extern const struct provider prov_process_service;
extern const struct provider prov_postgres_database;
extern const struct provider prov_seed_synthetic;
extern const struct provider prov_router_route;

static const struct provider *const providers[] = {
    &prov_exec_command, &prov_file_render,     &prov_git_checkout,
    &prov_process_service, &prov_postgres_database, &prov_router_route, &prov_seed_synthetic, &prov_sqlite_database,
    NULL,
};

const struct provider *const *prov_all(void)
{
    return providers;
}

const struct provider *prov_find(const char *type)
{
    for (size_t i = 0; providers[i]; i++)
        if (!strcmp(providers[i]->type, type))
            return providers[i];
    return NULL;
}

const struct prov_prop *prov_prop_find(const struct provider *p, const char *name)
{
    for (const struct prov_prop *pp = p->props; pp && pp->name; pp++)
        if (!strcmp(pp->name, name))
            return pp;
    return NULL;
}

const struct prov_output *prov_output_find(const struct provider *p, const char *name)
{
    for (const struct prov_output *o = p->outputs; o && o->name; o++)
        if (!strcmp(o->name, name))
            return o;
    return NULL;
}

static bool is_scalar(const struct val *v)
{
    return v->kind == VAL_STR || v->kind == VAL_INT || v->kind == VAL_FLOAT ||
           v->kind == VAL_BOOL || v->kind == VAL_UNKNOWN || v->encrypted;
}

static const char *type_desc(enum prop_type t)
{
    switch (t) {
    case PT_ANY: return "any value";
    case PT_STR: return "a string";
    case PT_INT: return "an integer";
    case PT_BOOL: return "true or false";
    case PT_ARGV: return "a command as a list of arguments, e.g. [python3, app.py]";
    case PT_STRLIST: return "a list of strings";
    case PT_STRMAP: return "a map of names to strings";
    case PT_MAP: return "a map";
    case PT_DURATION: return "a duration such as 30s, 5m or 1h30m";
    }
    return "?";
}

static int check_type(const struct prov_prop *pp, const struct val *v, struct err *e)
{
    if (v->kind == VAL_UNKNOWN || v->encrypted)
        return 0; /* a sealed secret is checked by the provider once opened */
    bool ok = true;
    switch (pp->type) {
    case PT_ANY:
        break;
    case PT_STR:
        ok = v->kind == VAL_STR || v->kind == VAL_INT || v->kind == VAL_FLOAT;
        break;
    case PT_INT:
        ok = v->kind == VAL_INT;
        break;
    case PT_BOOL:
        ok = v->kind == VAL_BOOL;
        break;
    case PT_ARGV:
    case PT_STRLIST:
        ok = v->kind == VAL_LIST;
        if (ok && pp->type == PT_ARGV && v->u.list.n == 0)
            return err_set(e, PE_CONFIG, &v->pos, "'%s' is an empty command", pp->name);
        for (size_t i = 0; ok && i < v->u.list.n; i++)
            if (!is_scalar(v->u.list.v[i]))
                return err_set(e, PE_CONFIG, &v->u.list.v[i]->pos,
                               "'%s' item %zu is a %s; expected a string", pp->name, i,
                               val_kind_name(v->u.list.v[i]->kind));
        if (ok && pp->type == PT_ARGV && v->u.list.n == 1 && v->u.list.v[0]->kind == VAL_STR &&
            strchr(v->u.list.v[0]->u.str.s, ' ')) {
            err_set(e, PE_CONFIG, &v->u.list.v[0]->pos,
                    "'%s' has one element containing spaces: commands are never run "
                    "through a shell",
                    pp->name);
            err_hint(e, "split the command into a list: [python3, app.py, --flag]");
            return PE_CONFIG;
        }
        break;
    case PT_STRMAP:
        ok = v->kind == VAL_MAP;
        for (size_t i = 0; ok && i < v->u.map.n; i++) {
            const struct val *x = v->u.map.e[i].v;
            if (!is_scalar(x) && x->kind != VAL_NULL)
                return err_set(e, PE_CONFIG, &x->pos, "'%s.%s' is a %s; expected a string",
                               pp->name, v->u.map.e[i].key, val_kind_name(x->kind));
        }
        break;
    case PT_MAP:
        ok = v->kind == VAL_MAP;
        break;
    case PT_DURATION:
        if (v->kind == VAL_INT) {
            ok = v->u.i >= 0;
        } else if (v->kind == VAL_STR) {
            long long ms;
            const char *why;
            if (!dur_parse(v->u.str.s, &ms, &why))
                return err_set(e, PE_CONFIG, &v->pos, "'%s': invalid duration '%s': %s",
                               pp->name, v->u.str.s, why);
        } else {
            ok = false;
        }
        break;
    }
    if (!ok) {
        if (v->kind == VAL_STR && pp->type == PT_ARGV) {
            err_set(e, PE_CONFIG, &v->pos,
                    "'%s' must be a list of arguments, not a string: commands are never run "
                    "through a shell",
                    pp->name);
            err_hint(e, "write it as a list: [python3, app.py]");
            return PE_CONFIG;
        }
        return err_set(e, PE_CONFIG, &v->pos, "'%s' is %s%s; expected %s", pp->name,
                       v->kind == VAL_INT ? "an " : "a ", val_kind_name(v->kind),
                       type_desc(pp->type));
    }
    return 0;
}

int prov_check_props(const struct provider *p, const struct prov_call *c, const struct pos *at,
                     struct err *e)
{
    const struct val *props = c->props;
    if (props && props->kind != VAL_MAP && props->kind != VAL_NULL)
        return err_set(e, PE_CONFIG, &props->pos, "'properties' must be a map, not a %s",
                       val_kind_name(props->kind));
    size_t n = 0;
    for (const struct prov_prop *pp = p->props; pp && pp->name; pp++)
        n++;
    const char **names = xcalloc(n + 1, sizeof *names);
    for (size_t i = 0; i < n; i++)
        names[i] = p->props[i].name;
    int rc = 0;
    if (props && props->kind == VAL_MAP)
        for (size_t i = 0; i < props->u.map.n && !rc; i++) {
            const struct val_entry *ent = &props->u.map.e[i];
            const struct prov_prop *pp = prov_prop_find(p, ent->key);
            if (!pp) {
                const char *s = str_closest(ent->key, names, n);
                if (s)
                    rc = err_set(e, PE_CONFIG, &ent->kpos,
                                 "unknown property '%s' for %s (did you mean '%s'?)", ent->key,
                                 p->type, s);
                else {
                    rc = err_set(e, PE_CONFIG, &ent->kpos, "unknown property '%s' for %s",
                                 ent->key, p->type);
                    struct sb b;
                    sb_init(&b);
                    for (size_t k = 0; k < n; k++)
                        sb_addf(&b, "%s%s", k ? ", " : "", names[k]);
                    err_hint(e, "%s takes: %s", p->type, b.buf);
                    sb_release(&b);
                }
                break;
            }
            if (ent->v->kind == VAL_NULL && !(pp->flags & PROP_REQUIRED))
                continue;
            rc = check_type(pp, ent->v, e);
        }
    for (const struct prov_prop *pp = p->props; !rc && pp && pp->name; pp++) {
        if (!(pp->flags & PROP_REQUIRED))
            continue;
        const struct val *v = props && props->kind == VAL_MAP ? val_map_get(props, pp->name) : NULL;
        if (!v || v->kind == VAL_NULL)
            rc = err_set(e, PE_CONFIG, props && props->kind == VAL_MAP ? &props->pos : at,
                         "%s needs property '%s' (%s)", p->type, pp->name, type_desc(pp->type));
    }
    free(names);
    if (!rc && p->check)
        rc = p->check(c, e);
    return rc;
}

void prov_result_release(struct prov_result *r)
{
    free(r->id);
    val_free(r->outputs);
    val_free(r->priv);
    free(r->drift);
    free(r->note);
    memset(r, 0, sizeof *r);
}

const char *prov_str(const struct val *props, const char *name, const char *def)
{
    const struct val *v = val_map_get(props, name);
    if (!v || v->kind == VAL_NULL)
        return def;
    return v->kind == VAL_STR ? v->u.str.s : def;
}

long long prov_int(const struct val *props, const char *name, long long def)
{
    return val_map_int(props, name, def);
}

bool prov_bool(const struct val *props, const char *name, bool def)
{
    return val_map_bool(props, name, def);
}

long long prov_duration_ms(const struct val *props, const char *name, long long def)
{
    const struct val *v = val_map_get(props, name);
    if (!v)
        return def;
    if (v->kind == VAL_INT)
        return v->u.i * 1000;
    long long ms;
    const char *why;
    if (v->kind == VAL_STR && dur_parse(v->u.str.s, &ms, &why))
        return ms;
    return def;
}

char **prov_argv(const struct val *props, const char *name)
{
    const struct val *v = val_map_get(props, name);
    size_t n = v && v->kind == VAL_LIST ? v->u.list.n : 0;
    char **argv = xcalloc(n + 1, sizeof *argv);
    for (size_t i = 0; i < n; i++) {
        struct sb b;
        sb_init(&b);
        val_text(&b, v->u.list.v[i]);
        argv[i] = sb_steal(&b);
    }
    return argv;
}

void prov_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

char *prov_log_path(const struct prov_call *c, const char *suffix)
{
    return xasprintf("%s/%s%s.log", c->log_dir, c->resource, suffix ? suffix : "");
}

int prov_log_open(const struct prov_call *c, const char *suffix)
{
    char *p = prov_log_path(c, suffix);
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    free(p);
    return fd;
}

void prov_log(const struct prov_call *c, const char *fmt, ...)
{
    int fd = prov_log_open(c, NULL);
    if (fd < 0)
        return;
    struct sb b;
    sb_init(&b);
    tm_rfc3339(&b, tm_now_ms());
    sb_adds(&b, " [prenv] ");
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    sb_addc(&b, '\n');
    ssize_t w = write(fd, b.buf, b.len);
    (void)w;
    close(fd);
    sb_release(&b);
}

char **prov_env(const struct prov_call *c, const struct val *extra)
{
    struct val *m = val_map(NULL);
    val_map_set(m, "PRENV_ENV", NULL, val_str(c->env, NULL));
    val_map_set(m, "PRENV_RESOURCE", NULL, val_str(c->resource, NULL));
    const struct val *tags = c->host ? c->host->tags : NULL;
    for (size_t i = 0; tags && tags->kind == VAL_MAP && i < tags->u.map.n; i++) {
        const struct val_entry *t = &tags->u.map.e[i];
        if (t->v->kind != VAL_STR)
            continue;
        struct sb name;
        sb_init(&name);
        sb_adds(&name, "PRENV_TAG_");
        for (const char *k = t->key; *k; k++) {
            unsigned char ch = (unsigned char)*k;
            sb_addc(&name, isalnum(ch) ? (char)toupper(ch) : '_');
        }
        val_map_set(m, name.buf, NULL, val_str(t->v->u.str.s, NULL));
        sb_release(&name);
    }
    if (extra && extra->kind == VAL_MAP)
        for (size_t i = 0; i < extra->u.map.n; i++) {
            if (extra->u.map.e[i].v->kind == VAL_NULL)
                continue;
            val_map_set(m, extra->u.map.e[i].key, NULL, val_clone(extra->u.map.e[i].v));
        }
    char **envp = proc_env_build(m);
    val_free(m);
    return envp;
}

static char *lease_path(const struct prov_call *c, int port)
{
    return xasprintf("%s/ports/%d", c->host->state_dir, port);
}

static char *lease_owner(const struct prov_call *c)
{
    return xasprintf("%s %s\n", c->env, c->resource);
}

static bool port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

int prov_ports_alloc(const struct prov_call *c, int n, int *ports, struct err *e)
{
    char *dir = xasprintf("%s/ports", c->host->state_dir);
    mkdir(dir, 0700);
    free(dir);
    char *owner = lease_owner(c);
    int got = 0;
    for (int p = c->host->port_lo; p <= c->host->port_hi && got < n; p++) {
        char *path = lease_path(c, p);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            free(path);
            continue;
        }
        ssize_t w = write(fd, owner, strlen(owner));
        close(fd);
        if (w != (ssize_t)strlen(owner) || !port_bindable(p)) {
            unlink(path);
            free(path);
            continue;
        }
        free(path);
        ports[got++] = p;
    }
    free(owner);
    if (got < n) {
        prov_ports_release(c, ports, got);
        return err_set(e, PE_LIMIT, NULL,
                       "no free port in the project's range %d-%d (needed %d, found %d)",
                       c->host->port_lo, c->host->port_hi, n, got);
    }
    return 0;
}

static bool lease_is_ours(const struct prov_call *c, const char *path)
{
    char buf[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r <= 0)
        return false;
    buf[r] = 0;
    char *owner = lease_owner(c);
    bool ours = !strcmp(buf, owner);
    free(owner);
    return ours;
}

void prov_ports_release(const struct prov_call *c, const int *ports, int n)
{
    for (int i = 0; i < n; i++) {
        char *path = lease_path(c, ports[i]);
        if (lease_is_ours(c, path))
            unlink(path);
        free(path);
    }
}

int prov_ports_owned(const struct prov_call *c, int **ports)
{
    *ports = NULL;
    char *dir = xasprintf("%s/ports", c->host->state_dir);
    DIR *d = opendir(dir);
    free(dir);
    if (!d)
        return 0;
    int n = 0;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long long p;
        if (!str_parse_int(de->d_name, 1, 65535, &p))
            continue;
        char *path = lease_path(c, (int)p);
        if (lease_is_ours(c, path)) {
            XGROW(*ports, cap, (size_t)n + 1);
            (*ports)[n++] = (int)p;
        }
        free(path);
    }
    closedir(d);
    /* ascending, so replica i keeps port i */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && (*ports)[j - 1] > (*ports)[j]; j--) {
            int t = (*ports)[j];
            (*ports)[j] = (*ports)[j - 1];
            (*ports)[j - 1] = t;
        }
    return n;
}

/* routes: host claims and route records in the state directory (routes.h). */
#include "core/routes.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECORD_MAX ((size_t)1 << 20)

bool route_host_valid(const char *host, const char **why)
{
    size_t n = strlen(host), label = 0;
    const char *w = NULL;
    if (!n)
        w = "it is empty";
    else if (n > ROUTE_HOST_MAX)
        w = "it is longer than 253 characters";
    for (size_t i = 0; !w && i <= n; i++) {
        char c = host[i];
        if (c == '.' || !c) {
            if (!label)
                w = "it has an empty label (two dots, or a dot at an end)";
            else if (host[i - 1] == '-')
                w = "a label ends with '-'";
            label = 0;
            continue;
        }
        if (c >= 'A' && c <= 'Z')
            w = "it has upper-case letters (write it in lower case)";
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            w = "only a-z, 0-9, '-' and '.' may appear in it";
        else if (c == '-' && !label)
            w = "a label starts with '-'";
        else if (++label > 63)
            w = "a label is longer than 63 characters";
    }
    if (why)
        *why = w;
    return !w;
}

static char *claim_path(const char *state_dir, const char *host)
{
    return xasprintf("%s/hosts/%s", state_dir, host);
}

static char *read_owner(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    struct err e = {0};
    if (fs_read(path, 256, &text, &len, &e)) {
        err_release(&e);
        return NULL;
    }
    text[strcspn(text, "\n")] = 0;
    return text;
}

char *route_owner(const char *state_dir, const char *host)
{
    const char *why;
    if (!route_host_valid(host, &why))
        return NULL;
    char *p = claim_path(state_dir, host);
    char *o = read_owner(p);
    free(p);
    return o;
}

int route_claim(const char *state_dir, const char *host, const char *env, struct err *e)
{
    const char *why;
    if (!route_host_valid(host, &why))
        return err_set(e, PE_CONFIG, NULL, "'%s' is not a valid host name: %s", host, why);
    char *dir = xasprintf("%s/hosts", state_dir);
    int rc = fs_mkdir_p(dir, 0700, e);
    char *p = claim_path(state_dir, host);
    for (int tries = 0; !rc; tries++) {
        /* written whole under a temporary name, then linked: a reader never
         * sees a claim without its owner, and link fails if one exists */
        char *tmp = xasprintf("%s/.claim.XXXXXX", dir);
        int fd = mkostemp(tmp, O_CLOEXEC);
        size_t el = strlen(env);
        char *line = xasprintf("%s\n", env);
        bool wrote = fd >= 0 && write(fd, line, el + 1) == (ssize_t)(el + 1) && fsync(fd) == 0;
        free(line);
        if (fd >= 0)
            close(fd);
        if (!wrote) {
            rc = err_errno(e, errno, "cannot claim host %s in %s", host, dir);
            if (fd >= 0)
                unlink(tmp);
            free(tmp);
            break;
        }
        int lr = link(tmp, p);
        int lerr = errno;
        unlink(tmp);
        free(tmp);
        if (lr == 0) {
            fs_fsync_dir(dir);
            break;
        }
        if (lerr != EEXIST) {
            rc = err_errno(e, lerr, "cannot claim host %s in %s", host, dir);
            break;
        }
        char *owner = read_owner(p);
        if (owner && !strcmp(owner, env)) {
            free(owner);
            break;
        }
        if (owner) {
            rc = err_set(e, PE_EXISTS, NULL, "host %s is already routed to environment '%s'",
                         host, owner);
            err_hint(e, "give this environment another host (hosts are unique across "
                        "environments), or destroy '%s'",
                     owner);
            free(owner);
            break;
        }
        /* gone between link and read: its owner released it; try again */
        if (tries > 8) {
            rc = err_set(e, PE_TRANSIENT, NULL, "cannot claim host %s: it keeps changing", host);
            break;
        }
    }
    free(p);
    free(dir);
    return rc;
}

void route_unclaim(const char *state_dir, const char *host, const char *env)
{
    char *p = claim_path(state_dir, host);
    char *owner = read_owner(p);
    if (owner && !strcmp(owner, env))
        unlink(p);
    free(owner);
    free(p);
}

static char *record_path(const char *state_dir, const char *env, const char *resource)
{
    return xasprintf("%s/routes/%s@%s.json", state_dir, resource, env);
}

void route_release_env(const char *state_dir, const char *env)
{
    char *dir = xasprintf("%s/hosts", state_dir);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        route_unclaim(state_dir, de->d_name, env);
    }
    if (d)
        closedir(d);
    free(dir);
    dir = xasprintf("%s/routes", state_dir);
    d = opendir(dir);
    size_t el = strlen(env);
    while (d && (de = readdir(d))) {
        const char *at = strrchr(de->d_name, '@');
        if (at && !strncmp(at + 1, env, el) && !strcmp(at + 1 + el, ".json"))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    if (d)
        closedir(d);
    free(dir);
}

int route_write(const char *state_dir, const struct route *r, struct err *e)
{
    char *dir = xasprintf("%s/routes", state_dir);
    int rc = fs_mkdir_p(dir, 0700, e);
    free(dir);
    if (rc)
        return rc;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "env", r->env);
    cJSON_AddStringToObject(o, "resource", r->resource);
    cJSON_AddStringToObject(o, "host", r->host);
    cJSON_AddStringToObject(o, "path", r->path);
    cJSON *ups = cJSON_AddArrayToObject(o, "upstreams");
    for (size_t i = 0; i < r->nup; i++)
        cJSON_AddItemToArray(ups, cJSON_CreateString(r->upstreams[i]));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *p = record_path(state_dir, r->env, r->resource);
    rc = fs_write_atomic(p, text, strlen(text), 0600, e);
    free(p);
    free(text);
    return rc;
}

bool route_recorded(const char *state_dir, const char *env, const char *resource)
{
    char *p = record_path(state_dir, env, resource);
    bool ok = fs_exists(p);
    free(p);
    return ok;
}

void route_remove(const char *state_dir, const char *env, const char *resource)
{
    char *p = record_path(state_dir, env, resource);
    unlink(p);
    free(p);
}

void route_release(struct route *r)
{
    if (!r)
        return;
    free(r->env);
    free(r->resource);
    free(r->host);
    free(r->path);
    for (size_t i = 0; i < r->nup; i++)
        free(r->upstreams[i]);
    free(r->upstreams);
    memset(r, 0, sizeof *r);
}

void routes_free(struct route *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        route_release(&r[i]);
    free(r);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool parse_record(struct route *r, const char *text, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(text, len);
    const char *env = jstr(o, "env"), *res = jstr(o, "resource"), *host = jstr(o, "host"),
               *path = jstr(o, "path");
    const cJSON *ups = cJSON_GetObjectItemCaseSensitive(o, "upstreams");
    bool ok = env && res && host && path && cJSON_IsArray(ups) && route_host_valid(host, NULL);
    if (ok) {
        r->env = xstrdup(env);
        r->resource = xstrdup(res);
        r->host = xstrdup(host);
        r->path = xstrdup(path);
        int n = cJSON_GetArraySize(ups);
        r->upstreams = xcalloc((size_t)n + 1, sizeof *r->upstreams);
        const cJSON *u;
        cJSON_ArrayForEach(u, ups)
        {
            if (cJSON_IsString(u))
                r->upstreams[r->nup++] = xstrdup(u->valuestring);
        }
    }
    cJSON_Delete(o);
    return ok;
}

static void push(struct route **out, size_t *n, size_t *cap, struct route *r)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *out = xrealloc(*out, *cap * sizeof **out);
    }
    (*out)[(*n)++] = *r;
}

int route_load_all(const char *state_dir, struct route **out, size_t *n, size_t *bad,
                   struct err *e)
{
    (void)e;
    *out = NULL;
    *n = 0;
    *bad = 0;
    size_t cap = 0;
    char *dir = xasprintf("%s/routes", state_dir);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json"))
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        char *text = NULL;
        size_t len = 0;
        struct err re = {0};
        struct route r = {0};
        if (!fs_read(p, RECORD_MAX, &text, &len, &re) && parse_record(&r, text, len))
            push(out, n, &cap, &r);
        else if (re.code != -ENOENT) /* removed while listed: not bad */
            (*bad)++;
        err_release(&re);
        free(text);
        free(p);
    }
    if (d)
        closedir(d);
    free(dir);
    /* claims without a record: a route being created */
    size_t nrec = *n;
    dir = xasprintf("%s/hosts", state_dir);
    d = opendir(dir);
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || !route_host_valid(de->d_name, NULL))
            continue;
        bool have = false;
        for (size_t i = 0; i < nrec && !have; i++)
            have = !strcmp((*out)[i].host, de->d_name);
        if (have)
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        char *owner = read_owner(p);
        free(p);
        if (!owner)
            continue;
        struct route r = {.env = owner, .host = xstrdup(de->d_name), .path = xstrdup("/")};
        r.upstreams = xcalloc(1, sizeof *r.upstreams);
        push(out, n, &cap, &r);
    }
    if (d)
        closedir(d);
    free(dir);
    return 0;
}

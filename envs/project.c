/* project: loading and validating prenv.yaml; environment naming. */
#include "envs/project.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/schema.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "envs/secret.h"
#include "ttl/sched.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int project_check_schedule(const struct val *sc, struct err *e)
{
    int rc = schema_map(sc, "'schedule'", e);
    if (rc)
        return rc;
    struct sched_policy *pol = NULL;
    if ((rc = sched_policy_parse(&pol, sc, e)))
        return rc;
    sched_policy_free(pol);
    return 0;
}

#define DEFAULT_PORT_LO 20000
#define DEFAULT_PORT_HI 29999

static const char *const top_keys[] = {"project", "description", "template", "state_dir",
                                       "ports",   "tags",        "stages",   "previews",
                                       "sandboxes", "serve",     "router",   "github",
                                       "encryptionsalt", "cost", NULL};

int project_find(char **dir, const char *start, struct err *e)
{
    char *d = fs_abspath(NULL, start ? start : ".");
    for (;;) {
        char *f = xasprintf("%s/%s", d, PROJECT_FILE);
        bool ok = fs_exists(f);
        free(f);
        if (ok) {
            *dir = d;
            return 0;
        }
        if (!strcmp(d, "/"))
            break;
        char *up = fs_dirname(d);
        free(d);
        d = up;
    }
    free(d);
    err_set(e, PE_NOTFOUND, NULL, "no %s in %s or any parent directory", PROJECT_FILE,
            start ? start : "the current directory");
    err_hint(e, "run `prenv init` to create one, or pass -C DIR");
    return PE_NOTFOUND;
}

const char *env_kind_name(enum env_kind k)
{
    return k == ENV_STAGE ? "stage" : k == ENV_PREVIEW ? "preview" : "sandbox";
}

bool env_kind_parse(const char *s, enum env_kind *k)
{
    if (!strcmp(s, "stage"))
        *k = ENV_STAGE;
    else if (!strcmp(s, "preview"))
        *k = ENV_PREVIEW;
    else if (!strcmp(s, "sandbox"))
        *k = ENV_SANDBOX;
    else
        return false;
    return true;
}

void project_free(struct project *p)
{
    if (!p)
        return;
    free(p->dir);
    free(p->file);
    free(p->name);
    free(p->template_file);
    free(p->state_dir);
    val_free(p->tags);
    free(p->cost.currency);
    val_free(p->cost.replica_hour);
    for (size_t i = 0; i < p->nstages; i++) {
        free(p->stages[i].name);
        free(p->stages[i].config);
    }
    free(p->stages);
    struct kind_policy *ks[] = {&p->previews, &p->sandboxes};
    for (int i = 0; i < 2; i++) {
        free(ks[i]->pattern);
        free(ks[i]->prefix);
        free(ks[i]->suffix);
        free(ks[i]->config);
    }
    free(p->pp.label);
    for (char **t = p->pp.trusted; t && *t; t++)
        free(*t);
    free(p->pp.trusted);
    free(p->serve.listen);
    free(p->serve.api_token);
    free(p->serve.public_url);
    free(p->router.listen);
    for (int i = 0; i < 3; i++) {
        free(p->router.access[i].token);
        free(p->router.access[i].basic);
    }
    free(p->gh.webhook_secret);
    free(p->gh.api_url);
    free(p->gh.token);
    free(p->gh.app_id);
    free(p->gh.app_key_file);
    free(p->salt);
    val_free(p->doc);
    free(p);
}

const struct stage *project_stage(const struct project *p, const char *name)
{
    for (size_t i = 0; i < p->nstages; i++)
        if (!strcmp(p->stages[i].name, name))
            return &p->stages[i];
    return NULL;
}

/* a path inside the project: relative, and not escaping it */
static int check_rel_path(const struct project *p, const struct val *v, const char *key,
                          struct err *e)
{
    if (v->kind != VAL_STR || !*v->u.str.s)
        return err_set(e, PE_CONFIG, &v->pos, "'%s' must be a non-empty path", key);
    if (v->u.str.s[0] == '/')
        return 0;
    char *abs = fs_abspath(p->dir, v->u.str.s);
    bool in = fs_within(p->dir, abs);
    free(abs);
    if (!in)
        return err_set(e, PE_CONFIG, &v->pos, "'%s' (%s) points outside the project", key,
                       v->u.str.s);
    return 0;
}

static int parse_pattern(struct kind_policy *k, const struct val *v, const char *placeholder,
                         struct err *e)
{
    const char *s = v->u.str.s;
    const char *ph = strstr(s, placeholder);
    if (!ph || strstr(ph + 1, placeholder))
        return err_set(e, PE_CONFIG, &v->pos, "name pattern '%s' must contain %s exactly once", s,
                       placeholder);
    k->prefix = xstrndup(s, (size_t)(ph - s));
    k->suffix = xstrdup(ph + strlen(placeholder));
    char *probe = xasprintf("%s1%s", k->prefix, k->suffix);
    bool ok = str_is_slug(probe, ENV_NAME_MAX) && (*k->prefix || *k->suffix);
    free(probe);
    if (!ok)
        return err_set(e, PE_CONFIG, &v->pos,
                       "name pattern '%s' must give lowercase names of letters, digits and '-' "
                       "with a fixed prefix or suffix, e.g. pr-%s",
                       s, placeholder);
    k->pattern = xstrdup(s);
    return 0;
}

/* parse_logs: `logs: {retain: N}` of a kind or stage (what names it) */
static int parse_logs(const struct val *parent, const char *what, bool *set, int *retain,
                      struct err *e)
{
    static const char *const lkeys[] = {"retain", NULL};
    const struct val *v = val_map_get(parent, "logs");
    if (!v || v->kind == VAL_NULL)
        return 0;
    char *w = xasprintf("'%s.logs'", what);
    int rc = schema_map(v, w, e);
    if (!rc)
        rc = schema_keys(v, lkeys, w, e);
    free(w);
    long long n = -1;
    if (!rc)
        rc = schema_int(v, "retain", 0, 100, &n, e);
    if (!rc && n >= 0) {
        *set = true;
        *retain = (int)n;
    }
    return rc;
}

static int load_policy(struct project *p, struct kind_policy *k, const char *key,
                       const char *def_pattern, const char *placeholder, struct err *e)
{
    static const char *const pkeys[] = {
        "name",     "config",      "ttl",    "max_per_owner", "enabled", "drafts", "label",
        "forks",    "on_draft",    "max",    "idle",          "idle_sleep", "warn_before",
        "max_ttl",  "schedule",    "logs",          NULL};
    const struct val *v = val_map_get(p->doc, key);
    k->enabled = true;
    k->numeric = !strcmp(placeholder, "{number}");
    k->warn_ms = 2 * 3600000LL;
    k->max_ttl_ms = 30 * 86400000LL;
    struct val *defv = val_str(def_pattern, NULL);
    int rc = 0;
    if (v && v->kind != VAL_NULL) {
        char *what = xasprintf("'%s'", key);
        rc = schema_map(v, what, e);
        if (!rc)
            rc = schema_keys(v, pkeys, what, e);
        free(what);
        if (rc)
            goto out;
        if ((rc = schema_bool(v, "enabled", &k->enabled, e)))
            goto out;
        const struct val *n = val_map_get(v, "name");
        if (n && (rc = schema_kind(n, VAL_STR, "name", e)))
            goto out;
        if ((rc = parse_pattern(k, n ? n : defv, placeholder, e)))
            goto out;
        const struct val *c = val_map_get(v, "config");
        if (c && c->kind != VAL_NULL) {
            if ((rc = check_rel_path(p, c, "config", e)))
                goto out;
            k->config = xstrdup(c->u.str.s);
        }
        if ((rc = schema_duration(v, "ttl", &k->ttl_ms, e)) ||
            (rc = schema_duration(v, "idle", &k->idle_ms, e)) ||
            (rc = schema_duration(v, "idle_sleep", &k->idle_sleep_ms, e)) ||
            (rc = schema_duration(v, "warn_before", &k->warn_ms, e)) ||
            (rc = schema_duration(v, "max_ttl", &k->max_ttl_ms, e)))
            goto out;
        const struct val *sc = val_map_get(v, "schedule");
        if (sc && sc->kind != VAL_NULL) {
            if ((rc = project_check_schedule(sc, e)))
                goto out;
            k->schedule = sc;
        }
        long long mx = 0;
        if ((rc = schema_int(v, "max_per_owner", 0, 1000, &mx, e)))
            goto out;
        if ((rc = parse_logs(v, key, &k->retain_set, &k->retain, e)))
            goto out;
        k->max_per_owner = (int)mx;
    } else {
        rc = parse_pattern(k, defv, placeholder, e);
    }
out:
    val_free(defv);
    return rc;
}

static int parse_ports(struct project *p, const struct val *v, struct err *e)
{
    p->port_lo = DEFAULT_PORT_LO;
    p->port_hi = DEFAULT_PORT_HI;
    if (!v || v->kind == VAL_NULL)
        return 0;
    if (v->kind != VAL_STR)
        return err_set(e, PE_CONFIG, &v->pos, "'ports' must be a range such as 20000-20999");
    long long lo, hi;
    const char *dash = strchr(v->u.str.s, '-');
    char *a = dash ? xstrndup(v->u.str.s, (size_t)(dash - v->u.str.s)) : xstrdup(v->u.str.s);
    bool ok = dash && str_parse_int(a, 1024, 65535, &lo) && str_parse_int(dash + 1, 1024, 65535, &hi) &&
              lo <= hi;
    free(a);
    if (!ok)
        return err_set(e, PE_CONFIG, &v->pos,
                       "'ports' must be a range LO-HI within 1024-65535, such as 20000-20999");
    p->port_lo = (int)lo;
    p->port_hi = (int)hi;
    return 0;
}

static int load_tags(struct project *p, const struct val *v, struct err *e)
{
    p->tags = val_map(NULL);
    if (!v || v->kind == VAL_NULL)
        return 0;
    int rc = schema_map(v, "'tags'", e);
    if (rc)
        return rc;
    for (size_t i = 0; i < v->u.map.n; i++) {
        const struct val *t = v->u.map.e[i].v;
        if (t->kind == VAL_MAP || t->kind == VAL_LIST || t->kind == VAL_NULL)
            return err_set(e, PE_CONFIG, &t->pos, "tag '%s' must be a string",
                           v->u.map.e[i].key);
        struct sb b;
        sb_init(&b);
        val_text(&b, t);
        val_map_set(p->tags, v->u.map.e[i].key, &v->u.map.e[i].kpos, val_str_own(sb_steal(&b), &t->pos));
    }
    return 0;
}

static int load_stages(struct project *p, const struct val *v, struct err *e)
{
    static const char *const skeys[] = {"config",   "protect",  "description", "schedule",
                                        "approval", "logs",     "pii",         NULL};
    if (!v || v->kind == VAL_NULL)
        return 0;
    int rc = schema_map(v, "'stages'", e);
    if (rc)
        return rc;
    p->stages = xcalloc(v->u.map.n + 1, sizeof *p->stages);
    for (size_t i = 0; i < v->u.map.n; i++) {
        const struct val_entry *ent = &v->u.map.e[i];
        struct stage *s = &p->stages[p->nstages];
        if (!str_is_slug(ent->key, ENV_NAME_MAX))
            return err_set(e, PE_CONFIG, &ent->kpos,
                           "stage name '%s' must be lowercase letters, digits and '-' (at most "
                           "%d characters)",
                           ent->key, ENV_NAME_MAX);
        s->name = xstrdup(ent->key);
        s->pos = ent->kpos;
        p->nstages++;
        const struct val *sv = ent->v;
        char *def = xasprintf("envs/%s.yaml", ent->key);
        if (sv->kind == VAL_NULL) {
            s->config = def;
            continue;
        }
        char *what = xasprintf("stage '%s'", ent->key);
        rc = schema_map(sv, what, e);
        if (!rc)
            rc = schema_keys(sv, skeys, what, e);
        free(what);
        if (!rc)
            rc = schema_bool(sv, "protect", &s->protect, e);
        const char *appr = NULL;
        if (!rc)
            rc = schema_str(sv, "approval", &appr, e);
        if (!rc && appr) {
            if (!strcmp(appr, "required")) {
                s->approval = true;
            } else if (strcmp(appr, "none") != 0) {
                rc = err_set(e, PE_CONFIG, &val_map_get(sv, "approval")->pos,
                             "approval '%s' is not one of: required, none", appr);
                err_hint(e, "`approval: required` makes `prenv promote` into this stage wait for "
                            "`prenv approve` by someone else");
            }
        }
        if (!rc) {
            char *where = xasprintf("stages.%s", ent->key);
            rc = parse_logs(sv, where, &s->retain_set, &s->retain, e);
            free(where);
        }
        const char *pii = NULL;
        if (!rc)
            rc = schema_str(sv, "pii", &pii, e);
        if (!rc && pii) {
            if (!strcmp(pii, "redact")) {
                s->pii_redact = true;
            } else if (strcmp(pii, "keep") != 0) {
                rc = err_set(e, PE_CONFIG, &val_map_get(sv, "pii")->pos,
                             "pii '%s' is not one of: redact, keep", pii);
                err_hint(e, "`pii: redact` masks email and IP addresses in the stage's service "
                            "logs");
            }
        }
        const struct val *sc = val_map_get(sv, "schedule");
        if (!rc && sc && sc->kind != VAL_NULL) {
            rc = project_check_schedule(sc, e);
            s->schedule = sc;
        }
        const struct val *c = val_map_get(sv, "config");
        if (!rc && c && c->kind != VAL_NULL)
            rc = check_rel_path(p, c, "config", e);
        if (rc) {
            free(def);
            return rc;
        }
        if (c && c->kind == VAL_STR) {
            s->config = xstrdup(c->u.str.s);
            free(def);
        } else {
            s->config = def;
        }
    }
    return 0;
}

static char *env_or(const char *var, const char *conf)
{
    const char *v = getenv(var);
    if (v && *v)
        return xstrdup(v);
    return conf ? xstrdup(conf) : NULL;
}

static int load_preview_policy(struct project *p, struct err *e)
{
    const struct val *v = val_map_get(p->doc, "previews");
    struct preview_policy *pp = &p->pp;
    if (!v || v->kind != VAL_MAP)
        return 0;
    int rc = schema_bool(v, "drafts", &pp->drafts, e);
    const char *label = NULL, *on_draft = NULL;
    if (!rc)
        rc = schema_str(v, "label", &label, e);
    if (!rc && label)
        pp->label = xstrdup(label);
    if (!rc)
        rc = schema_str(v, "on_draft", &on_draft, e);
    if (!rc && on_draft) {
        if (!strcmp(on_draft, "destroy"))
            pp->destroy_on_draft = true;
        else if (strcmp(on_draft, "keep") != 0)
            rc = err_set(e, PE_CONFIG, &val_map_get(v, "on_draft")->pos,
                         "'on_draft' must be keep or destroy, not '%s'", on_draft);
    }
    long long mx = 0;
    if (!rc)
        rc = schema_int(v, "max", 0, 100000, &mx, e);
    pp->max = (int)mx;
    const struct val *f = val_map_get(v, "forks");
    if (!rc && f && f->kind != VAL_NULL) {
        if (f->kind == VAL_STR && !strcmp(f->u.str.s, "deny"))
            pp->forks = 0;
        else if (f->kind == VAL_STR && !strcmp(f->u.str.s, "allow"))
            pp->forks = 1;
        else if (f->kind == VAL_MAP) {
            static const char *const fk[] = {"trusted", NULL};
            rc = schema_keys(f, fk, "'previews.forks'", e);
            const struct val *t = val_map_get(f, "trusted");
            if (!rc && (!t || t->kind != VAL_LIST))
                rc = err_set(e, PE_CONFIG, &f->pos,
                             "'previews.forks' as a map needs 'trusted:' with a list of logins");
            if (!rc) {
                pp->forks = 2;
                pp->trusted = xcalloc(t->u.list.n + 1, sizeof *pp->trusted);
                for (size_t i = 0; i < t->u.list.n; i++) {
                    if (t->u.list.v[i]->kind != VAL_STR)
                        return err_set(e, PE_CONFIG, &t->u.list.v[i]->pos,
                                       "trusted logins must be strings");
                    pp->trusted[i] = xstrdup(t->u.list.v[i]->u.str.s);
                }
            }
        } else
            rc = err_set(e, PE_CONFIG, &f->pos,
                         "'previews.forks' must be deny, allow, or {trusted: [login, ...]}");
    }
    return rc;
}

static int load_serve(struct project *p, struct err *e)
{
    static const char *const sk[] = {"listen",     "concurrency",      "max_attempts",
                                     "api_token",  "public_url",       "shutdown_timeout",
                                     "sweep_interval", "refresh_interval", NULL};
    const struct val *v = val_map_get(p->doc, "serve");
    struct serve_conf *s = &p->serve;
    s->concurrency = 2;
    s->max_attempts = 5;
    s->shutdown_ms = 30000;
    s->sweep_ms = 600000;
    s->refresh_ms = 1800000;
    const char *listen = NULL, *tok = NULL, *url = NULL;
    int rc = 0;
    if (v && v->kind != VAL_NULL) {
        if ((rc = schema_map(v, "'serve'", e)) || (rc = schema_keys(v, sk, "'serve'", e)))
            return rc;
        long long n;
        n = s->concurrency;
        if ((rc = schema_int(v, "concurrency", 1, 64, &n, e)))
            return rc;
        s->concurrency = (int)n;
        n = s->max_attempts;
        if ((rc = schema_int(v, "max_attempts", 1, 100, &n, e)))
            return rc;
        s->max_attempts = (int)n;
        const struct val *sw = val_map_get(v, "sweep_interval");
        if (sw && sw->kind == VAL_INT && sw->u.i == 0)
            s->sweep_ms = 0;
        else if ((rc = schema_duration(v, "sweep_interval", &s->sweep_ms, e)))
            return rc;
        const struct val *rf = val_map_get(v, "refresh_interval");
        if (rf && rf->kind == VAL_INT && rf->u.i == 0)
            s->refresh_ms = 0;
        else if ((rc = schema_duration(v, "refresh_interval", &s->refresh_ms, e)))
            return rc;
        if ((rc = schema_duration(v, "shutdown_timeout", &s->shutdown_ms, e)) ||
            (rc = schema_str(v, "listen", &listen, e)) ||
            (rc = schema_str(v, "api_token", &tok, e)) ||
            (rc = schema_str(v, "public_url", &url, e)))
            return rc;
    }
    s->listen = xstrdup(listen ? listen : "127.0.0.1:8787");
    s->api_token = env_or("PRENV_API_TOKEN", tok);
    s->public_url = url ? xstrdup(url) : NULL;
    return 0;
}

int project_listen_port(const char *listen)
{
    const char *c = listen ? strrchr(listen, ':') : NULL;
    char *end = NULL;
    long port = c ? strtol(c + 1, &end, 10) : 0;
    return c && *(c + 1) && !*end && port > 0 && port < 65536 ? (int)port : 0;
}

/* a secret of the router's: inline, or the first line of a file */
static int access_secret(const struct project *p, const struct val *m, const char *key,
                         char **out, struct err *e)
{
    const char *inl = NULL, *file = NULL;
    char *fkey = xasprintf("%s_file", key);
    int rc = schema_str(m, key, &inl, e);
    if (!rc)
        rc = schema_str(m, fkey, &file, e);
    if (!rc && inl && file)
        rc = err_set(e, PE_CONFIG, &val_map_get(m, fkey)->pos, "give '%s' or '%s', not both",
                     key, fkey);
    if (!rc && file) {
        char *path = fs_abspath(p->dir, file);
        char *text = NULL;
        size_t len = 0;
        if (fs_read(path, 4096, &text, &len, e)) {
            err_prefix(e, "%s: ", fkey);
            rc = e->code;
        } else {
            text[strcspn(text, "\r\n")] = 0;
            if (!*text)
                rc = err_set(e, PE_CONFIG, &val_map_get(m, fkey)->pos, "%s is empty", path);
            else
                *out = xstrdup(text);
        }
        free(text);
        free(path);
    } else if (!rc && inl) {
        if (!*inl)
            rc = err_set(e, PE_CONFIG, &val_map_get(m, key)->pos, "'%s' is empty", key);
        else
            *out = xstrdup(inl);
    }
    free(fkey);
    return rc;
}

static int cost_rate(double *out, const struct val *v, const char *what, struct err *e)
{
    if (v->kind == VAL_INT)
        *out = (double)v->u.i;
    else if (v->kind == VAL_FLOAT)
        *out = v->u.f;
    else
        return err_set(e, PE_CONFIG, &v->pos, "%s must be a number (money per hour)", what);
    if (!(*out >= 0 && *out < 1e9))
        return err_set(e, PE_CONFIG, &v->pos, "%s must be between 0 and 1e9", what);
    return 0;
}

/* cost: {currency, replica_hour: N | {size: N...}, database_hour: N} */
static int load_cost(struct project *p, struct err *e)
{
    static const char *const keys[] = {"currency", "replica_hour", "database_hour", NULL};
    p->cost.replica_hour = val_map(NULL);
    const struct val *v = val_map_get(p->doc, "cost");
    if (!v || v->kind == VAL_NULL) {
        p->cost.currency = xstrdup("");
        return 0;
    }
    p->cost.set = true;
    int rc = schema_map(v, "'cost'", e);
    if (!rc)
        rc = schema_keys(v, keys, "'cost'", e);
    const char *cur = NULL;
    if (!rc)
        rc = schema_str(v, "currency", &cur, e);
    if (rc)
        return rc;
    p->cost.currency = xstrdup(cur ? cur : "");
    double d = 0;
    const struct val *r = val_map_get(v, "replica_hour");
    if (r && r->kind == VAL_MAP) {
        for (size_t i = 0; i < r->u.map.n; i++) {
            char *what = xasprintf("'cost.replica_hour.%s'", r->u.map.e[i].key);
            rc = cost_rate(&d, r->u.map.e[i].v, what, e);
            free(what);
            if (rc)
                return rc;
            val_map_set(p->cost.replica_hour, r->u.map.e[i].key, NULL, val_float(d, NULL));
        }
    } else if (r && r->kind != VAL_NULL) {
        if ((rc = cost_rate(&d, r, "'cost.replica_hour'", e)))
            return rc;
        val_map_set(p->cost.replica_hour, "default", NULL, val_float(d, NULL));
    }
    const struct val *db = val_map_get(v, "database_hour");
    if (db && db->kind != VAL_NULL &&
        (rc = cost_rate(&p->cost.database_hour, db, "'cost.database_hour'", e)))
        return rc;
    return 0;
}

static int load_router(struct project *p, struct err *e)
{
    static const char *const rk[] = {"listen", "hold", "wake_for", "access", NULL};
    static const char *const kinds[] = {"stages", "previews", "sandboxes", NULL};
    static const char *const ak[] = {"token", "token_file", "basic", "basic_file", NULL};
    const struct val *v = val_map_get(p->doc, "router");
    struct router_conf *r = &p->router;
    r->hold_ms = 60000;
    r->wake_ms = 3600 * 1000LL;
    const char *listen = NULL;
    int rc = 0;
    if (v && v->kind != VAL_NULL) {
        if ((rc = schema_map(v, "'router'", e)) || (rc = schema_keys(v, rk, "'router'", e)) ||
            (rc = schema_str(v, "listen", &listen, e)) ||
            (rc = schema_duration(v, "hold", &r->hold_ms, e)) ||
            (rc = schema_duration(v, "wake_for", &r->wake_ms, e)))
            return rc;
        if (listen && !project_listen_port(listen))
            return err_set(e, PE_CONFIG, &val_map_get(v, "listen")->pos,
                           "router.listen must be HOST:PORT (like 127.0.0.1:8080), not '%s'",
                           listen);
        const struct val *a = val_map_get(v, "access");
        if (a && a->kind != VAL_NULL) {
            if ((rc = schema_map(a, "'router.access'", e)) ||
                (rc = schema_keys(a, kinds, "'router.access'", e)))
                return rc;
            for (int k = 0; kinds[k]; k++) {
                const struct val *m = val_map_get(a, kinds[k]);
                if (!m || m->kind == VAL_NULL)
                    continue;
                char what[64];
                snprintf(what, sizeof what, "'router.access.%s'", kinds[k]);
                /* env_kind order: stage, preview, sandbox */
                struct router_access *ra = &r->access[k];
                if ((rc = schema_map(m, what, e)) || (rc = schema_keys(m, ak, what, e)) ||
                    (rc = access_secret(p, m, "token", &ra->token, e)) ||
                    (rc = access_secret(p, m, "basic", &ra->basic, e)))
                    return rc;
                if (ra->basic && !strchr(ra->basic, ':'))
                    return err_set(e, PE_CONFIG, &m->pos,
                                   "%s basic credentials must be \"user:password\"", what);
            }
        }
    }
    r->listen = xstrdup(listen ? listen : "127.0.0.1:8080");
    r->port = project_listen_port(r->listen);
    return 0;
}

static int load_github(struct project *p, struct err *e)
{
    static const char *const gk[] = {"webhook_secret", "api_url", "token", "app", NULL};
    static const char *const ak[] = {"id", "private_key_file", "installation", NULL};
    const struct val *v = val_map_get(p->doc, "github");
    struct github_conf *g = &p->gh;
    const char *secret = NULL, *api = NULL, *tok = NULL;
    int rc = 0;
    if (v && v->kind != VAL_NULL) {
        if ((rc = schema_map(v, "'github'", e)) || (rc = schema_keys(v, gk, "'github'", e)) ||
            (rc = schema_str(v, "webhook_secret", &secret, e)) ||
            (rc = schema_str(v, "api_url", &api, e)) || (rc = schema_str(v, "token", &tok, e)))
            return rc;
        const struct val *a = val_map_get(v, "app");
        if (a && a->kind != VAL_NULL) {
            if ((rc = schema_map(a, "'github.app'", e)) ||
                (rc = schema_keys(a, ak, "'github.app'", e)))
                return rc;
            const struct val *id = val_map_get(a, "id");
            const char *key = NULL;
            if (!id || (id->kind != VAL_INT && id->kind != VAL_STR))
                return err_set(e, PE_CONFIG, &a->pos, "'github.app' needs 'id' (the App's id)");
            struct sb b;
            sb_init(&b);
            val_text(&b, id);
            g->app_id = sb_steal(&b);
            if ((rc = schema_str(a, "private_key_file", &key, e)))
                return rc;
            if (!key)
                return err_set(e, PE_CONFIG, &a->pos,
                               "'github.app' needs 'private_key_file' (the App's PEM key)");
            g->app_key_file = fs_abspath(p->dir, key);
            if ((rc = schema_int(a, "installation", 1, (long long)1 << 62, &g->app_installation,
                                 e)))
                return rc;
        }
    }
    g->webhook_secret = env_or("PRENV_GITHUB_WEBHOOK_SECRET", secret);
    g->api_url = env_or("PRENV_GITHUB_API_URL", api ? api : "https://api.github.com");
    g->token = env_or("PRENV_GITHUB_TOKEN", tok);
    return 0;
}

int project_load(struct project **out, const char *dir, const char *state_dir, struct err *e)
{
    struct project *p = xcalloc(1, sizeof *p);
    p->dir = fs_abspath(NULL, dir);
    p->file = xasprintf("%s/%s", p->dir, PROJECT_FILE);
    int rc = yt_load(&p->doc, p->file, PROJECT_FILE, e);
    if (rc)
        goto fail;
    if (p->doc->kind == VAL_NULL) {
        rc = err_set(e, PE_CONFIG, &p->doc->pos, "%s is empty", PROJECT_FILE);
        err_hint(e, "it needs at least 'project:' and 'template:'; `prenv init` writes an example");
        goto fail;
    }
    if ((rc = schema_map(p->doc, PROJECT_FILE, e)) || (rc = schema_keys(p->doc, top_keys, PROJECT_FILE, e)))
        goto fail;
    const struct val *name = val_map_get(p->doc, "project");
    if (!name) {
        rc = err_set(e, PE_CONFIG, &p->doc->pos, "%s needs 'project:' (the project's name)",
                     PROJECT_FILE);
        goto fail;
    }
    if ((rc = schema_kind(name, VAL_STR, "project", e)))
        goto fail;
    if (!str_is_slug(name->u.str.s, 63)) {
        rc = err_set(e, PE_CONFIG, &name->pos,
                     "project name '%s' must be lowercase letters, digits and '-'", name->u.str.s);
        goto fail;
    }
    p->name = xstrdup(name->u.str.s);
    const struct val *tpl = val_map_get(p->doc, "template");
    if (!tpl) {
        rc = err_set(e, PE_CONFIG, &p->doc->pos,
                     "%s needs 'template:' (the path of the stack template)", PROJECT_FILE);
        goto fail;
    }
    if ((rc = check_rel_path(p, tpl, "template", e)))
        goto fail;
    p->template_file = xstrdup(tpl->u.str.s);
    const struct val *sd = val_map_get(p->doc, "state_dir");
    const char *sdir = state_dir ? state_dir : getenv("PRENV_STATE_DIR");
    if (sd && sd->kind != VAL_NULL && (rc = schema_kind(sd, VAL_STR, "state_dir", e)))
        goto fail;
    if (!sdir || !*sdir)
        sdir = sd && sd->kind == VAL_STR ? sd->u.str.s : ".prenv";
    p->state_dir = fs_abspath(p->dir, sdir);
    if ((rc = parse_ports(p, val_map_get(p->doc, "ports"), e)))
        goto fail;
    if ((rc = load_tags(p, val_map_get(p->doc, "tags"), e)))
        goto fail;
    if ((rc = load_stages(p, val_map_get(p->doc, "stages"), e)))
        goto fail;
    if ((rc = load_policy(p, &p->previews, "previews", "pr-{number}", "{number}", e)))
        goto fail;
    if ((rc = load_policy(p, &p->sandboxes, "sandboxes", "sb-{name}", "{name}", e)))
        goto fail;
    if ((rc = load_preview_policy(p, e)) || (rc = load_serve(p, e)) || (rc = load_router(p, e)) ||
        (rc = load_github(p, e)) || (rc = load_cost(p, e)))
        goto fail;
    const char *salt = NULL;
    if ((rc = schema_str(p->doc, "encryptionsalt", &salt, e)))
        goto fail;
    if (salt) {
        const struct val *sv = val_map_get(p->doc, "encryptionsalt");
        if (strncmp(salt, "v1:", 3) != 0 || !strchr(salt + 3, ':')) {
            rc = err_set(e, PE_CONFIG, &sv->pos,
                         "'encryptionsalt' must be v1:<salt>:<check value> as prenv or Pulumi "
                         "wrote it");
            err_hint(e, "restore it from version control; without it no secret of the project "
                        "opens");
            goto fail;
        }
        p->salt = xstrdup(salt);
        p->salt_line = sv->pos.line;
    }
    {
        char *where = p->salt ? xasprintf("%s:%d", PROJECT_FILE, p->salt_line)
                              : xstrdup(PROJECT_FILE);
        secret_project_set(p->salt, where);
        free(where);
    }
    /* stage names must not be claimed by the patterns */
    for (size_t i = 0; i < p->nstages; i++) {
        const struct stage *s = &p->stages[i];
        size_t pl = strlen(p->previews.prefix), sl = strlen(p->sandboxes.prefix);
        if ((pl && !strncmp(s->name, p->previews.prefix, pl)) ||
            (sl && !strncmp(s->name, p->sandboxes.prefix, sl))) {
            rc = err_set(e, PE_CONFIG, &s->pos,
                         "stage name '%s' collides with the preview or sandbox name pattern",
                         s->name);
            goto fail;
        }
    }
    *out = p;
    return 0;
fail:
    project_free(p);
    *out = NULL;
    return rc;
}

void env_def_release(struct env_def *d)
{
    free(d->name);
    free(d->config);
    memset(d, 0, sizeof *d);
}

static bool match_policy(const struct kind_policy *k, const char *name, long long *num)
{
    size_t pl = strlen(k->prefix), sl = strlen(k->suffix), nl = strlen(name);
    if (!k->enabled || nl <= pl + sl || strncmp(name, k->prefix, pl) ||
        strcmp(name + nl - sl, k->suffix))
        return false;
    char *mid = xstrndup(name + pl, nl - pl - sl);
    bool ok;
    if (k->numeric) {
        ok = mid[0] != '0' && str_parse_int(mid, 1, 1000000000, num);
    } else {
        ok = str_is_slug(mid, ENV_NAME_MAX);
    }
    free(mid);
    return ok;
}

int project_env(struct env_def *out, const struct project *p, const char *name, struct err *e)
{
    memset(out, 0, sizeof *out);
    if (!str_is_slug(name, ENV_NAME_MAX)) {
        err_set(e, PE_USAGE, NULL,
                "'%s' is not a valid environment name: use lowercase letters, digits and '-' "
                "(at most %d characters)",
                name, ENV_NAME_MAX);
        return PE_USAGE;
    }
    const struct stage *s = project_stage(p, name);
    long long num = 0;
    if (s) {
        out->kind = ENV_STAGE;
        out->config = xstrdup(s->config);
        out->protect = s->protect;
        out->approval = s->approval;
        out->schedule = s->schedule; /* stages never expire */
        out->retain_set = s->retain_set;
        out->retain = s->retain;
        out->pii_redact = s->pii_redact;
    } else if (match_policy(&p->previews, name, &num)) {
        out->kind = ENV_PREVIEW;
        out->number = num;
        out->config = p->previews.config ? xstrdup(p->previews.config) : NULL;
        out->ttl_ms = p->previews.ttl_ms;
        out->idle_ms = p->previews.idle_ms;
        out->idle_sleep_ms = p->previews.idle_sleep_ms;
        out->warn_ms = p->previews.warn_ms;
        out->max_ttl_ms = p->previews.max_ttl_ms;
        out->schedule = p->previews.schedule;
        out->retain_set = p->previews.retain_set;
        out->retain = p->previews.retain;
    } else if (match_policy(&p->sandboxes, name, &num)) {
        out->kind = ENV_SANDBOX;
        out->config = p->sandboxes.config ? xstrdup(p->sandboxes.config) : NULL;
        out->ttl_ms = p->sandboxes.ttl_ms;
        out->idle_ms = p->sandboxes.idle_ms;
        out->idle_sleep_ms = p->sandboxes.idle_sleep_ms;
        out->warn_ms = p->sandboxes.warn_ms;
        out->max_ttl_ms = p->sandboxes.max_ttl_ms;
        out->schedule = p->sandboxes.schedule;
        out->retain_set = p->sandboxes.retain_set;
        out->retain = p->sandboxes.retain;
    } else {
        const char **names = xcalloc(p->nstages + 1, sizeof *names);
        struct sb b;
        sb_init(&b);
        for (size_t i = 0; i < p->nstages; i++) {
            names[i] = p->stages[i].name;
            sb_addf(&b, "%s%s", i ? ", " : "", p->stages[i].name);
        }
        const char *near = str_closest(name, names, p->nstages);
        if (near)
            err_set(e, PE_NOTFOUND, NULL,
                    "'%s' is not an environment of project '%s' (did you mean '%s'?)", name,
                    p->name, near);
        else
            err_set(e, PE_NOTFOUND, NULL, "'%s' is not an environment of project '%s'", name,
                    p->name);
        err_hint(e, "environments are the stages (%s), previews named %s and sandboxes named %s",
                 b.len ? b.buf : "none defined", p->previews.pattern, p->sandboxes.pattern);
        sb_release(&b);
        free(names);
        return PE_NOTFOUND;
    }
    out->name = xstrdup(name);
    return 0;
}

char *project_preview_name(const struct project *p, long long number)
{
    return xasprintf("%s%lld%s", p->previews.prefix, number, p->previews.suffix);
}

char *project_sandbox_name(const struct project *p, const char *who)
{
    /* turn a login into a slug: lowercase, other characters become '-' */
    struct sb b;
    sb_init(&b);
    for (const char *c = who; *c && b.len < 24; c++) {
        char ch = (char)tolower((unsigned char)*c);
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
            sb_addc(&b, ch);
        else if (b.len && b.buf[b.len - 1] != '-')
            sb_addc(&b, '-');
    }
    while (b.len && b.buf[b.len - 1] == '-')
        b.buf[--b.len] = 0;
    char *n = xasprintf("%s%s%s", p->sandboxes.prefix, b.len ? b.buf : "user", p->sandboxes.suffix);
    sb_release(&b);
    return n;
}

/* postgres.database: a login role and a database per environment on a real
 * PostgreSQL server, reached through libpq as the admin role that `server`
 * names (a postgres:// URL or a conninfo string).
 *
 * Names. The database and its role share one name, derived from (env,
 * resource) unless `name` is set: "prenv_<env>_<resource>" when env is
 * [a-z0-9]+, resource is [a-z0-9_]+ without a leading '_' or a "__", and the
 * whole fits in 63 bytes; otherwise a readable prefix (every byte outside
 * [a-z0-9_] becomes '_', upper case is folded, runs of '_' collapse, at most
 * 51 bytes) then "__" and 10 hex digits of SHA-256(env NUL resource). Plain
 * names never hold "__" and hashed names always do, so the two kinds never
 * meet; two inputs share a hashed name only through a 40-bit hash collision.
 * Every identifier still goes through PQescapeIdentifier and every literal
 * through PQescapeLiteral or a query parameter: no name reaches SQL raw.
 *
 * Ownership. The role carries COMMENT ON ROLE {"prenv_env", "prenv_resource"}
 * (set in the same transaction as CREATE ROLE), the database COMMENT ON
 * DATABASE with the same keys and the `tags`. A database is ours when its
 * comment names this (env, resource), or when it has no prenv comment and is
 * owned by our role (a create that stopped between CREATE DATABASE and
 * COMMENT). create refuses a role or database of that name that is not ours;
 * remove leaves such ones alone, so it never drops another env's database.
 *
 * Password. 32 bytes from the CSPRNG as URL-safe base64 without padding. The
 * server only ever gets a verifier that libpq hashed (PQencryptPasswordConn),
 * so the password is in no SQL text and no server log; it is in no message
 * or log line of ours either (they are scrubbed of every password we hold).
 *
 * A copy of a `template` database has its schemas, tables, views, sequences,
 * functions and types (except extension members) handed to the role, so the
 * application can use the golden data. Each call opens its own connections:
 * nothing is shared between threads.
 *
 * Errors: an unreachable, starting or overloaded server, a busy template and
 * lock timeouts are PE_TRANSIENT (the engine retries); rejected admin
 * credentials and everything else are PE_PROVIDER with the server's message
 * and SQLSTATE. Not done here: schemas or migrations inside the database
 * (exec.command does those), backups, servers older than PostgreSQL 11. */
#include "core/provider.h"

#include "core/lib/crypto.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_NAME_MAX 63 /* NAMEDATALEN - 1 */
#define HASH_HEX 10
#define PREFIX_MAX (PG_NAME_MAX - 2 - HASH_HEX)
#define PW_BYTES 32
#define COMMENT_MAX 8192 /* bytes of the database comment (tags included) */
#define SHOWN_MAX 200    /* characters of an outside value quoted in a message */
#define MESSAGE_MAX 600  /* characters of a server or libpq message quoted in ours */
#define CONNECT_TIMEOUT "10"
#define MIN_SERVER 110000 /* PostgreSQL 11 */
#define FORCE_DROP 130000 /* DROP DATABASE ... WITH (FORCE) */
#define CONN_LIMIT_MAX 1000000

static const struct prov_prop schema[] = {
    {"server", PT_STR, PROP_REQUIRED | PROP_REPLACE,
     "admin connection: postgres://USER[:PASSWORD]@HOST:PORT/DBNAME?... or a libpq conninfo "
     "string; the role needs CREATEROLE and CREATEDB (or superuser). A change replaces the "
     "database, so keep a password that rotates in 'admin_password'"},
    {"admin_password", PT_STR, 0,
     "the admin's password when 'server' has none, e.g. ${config.pg_admin_password}"},
    {"name", PT_STR, PROP_REPLACE,
     "database (and role) name, [a-z_][a-z0-9_]*, at most 63 bytes (default: derived from the "
     "environment and the resource)"},
    {"template", PT_STR, PROP_REPLACE,
     "create the database as a copy of this one (a pre-seeded golden database); nobody may be "
     "connected to it meanwhile"},
    {"tags", PT_STRMAP, 0,
     "recorded in the database's comment (JSON) over the environment's own tags "
     "(Environment, Owner, CostCenter...), with prenv_env and prenv_resource"},
    {"connection_limit", PT_INT, 0, "most connections to the database at once (-1 = no limit)"},
    {"extensions", PT_STRLIST, 0, "extensions to create in the database, e.g. [pgcrypto]"},
    {NULL, 0, 0, NULL},
};

static const struct prov_output outputs[] = {
    {"url", OUT_SECRET | OUT_STABLE, "postgres://user:password@host:port/name"},
    {"host", OUT_STABLE, "server host (or socket directory)"},
    {"port", OUT_STABLE, "server port"},
    {"name", OUT_STABLE, "database name"},
    {"user", OUT_STABLE, "role that owns the database"},
    {"password", OUT_SECRET | OUT_STABLE, "the role's password"},
    {NULL, 0, NULL},
};

/* What one call works on, from a property map. */
struct spec {
    const struct prov_call *c;
    const char *server;   /* borrowed */
    const char *admin_pw; /* borrowed: admin_password, or NULL */
    char *server_pw;      /* the password inside server, or NULL */
    char *admin_user;     /* the user server names, or NULL */
    char *host, *port;    /* as server names them, or NULL */
    char *sslmode;        /* from server, or NULL */
    char *shown;          /* server for messages: no password */
    char *db, *role;
    const char *tmpl;       /* borrowed; NULL for the server's default */
    char *comment;          /* the database's comment (JSON) */
    char *role_comment;     /* the role's comment (JSON) */
    long long connlimit;    /* -1 = none */
    const struct val *exts; /* borrowed list, or NULL */
    const char *role_pw;    /* borrowed: the role's password once known */
};

/* What the server says about a database or a role. */
struct pg_obj {
    bool exists;
    bool canlogin;   /* roles */
    char *owner;     /* databases */
    char *comment;   /* NULL when none */
    long long limit; /* databases: datconnlimit */
};

/* SQL-quoted forms of the names a call uses; freed with quoted_release. */
struct quoted {
    char *db, *role, *tmpl, *comment, *role_comment;
};

enum own { OWN_NONE, OWN_US, OWN_OTHER };

/* ---- text ---- */

/* shown_max: s for a message, control characters escaped, cut after max
 * characters; caller frees */
static char *shown_max(const char *s, size_t max)
{
    struct sb b;
    sb_init(&b);
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        if (n == max) {
            sb_adds(&b, "...");
            break;
        }
        if (*p < 0x20 || *p == 0x7f)
            sb_addf(&b, "\\x%02x", *p);
        else
            sb_addc(&b, (char)*p);
    }
    return sb_steal(&b);
}

static char *shown(const char *s)
{
    return shown_max(s, SHOWN_MAX);
}

/* utf8_len: length of the valid UTF-8 sequence at p, 0 if invalid */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    size_t n;
    unsigned cp;
    if ((p[0] & 0xe0) == 0xc0)
        n = 2, cp = p[0] & 0x1fu;
    else if ((p[0] & 0xf0) == 0xe0)
        n = 3, cp = p[0] & 0x0fu;
    else if ((p[0] & 0xf8) == 0xf0)
        n = 4, cp = p[0] & 0x07u;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* utf8_clean: s with every invalid UTF-8 byte replaced by U+FFFD (the server
 * refuses invalid text); caller frees */
static char *utf8_clean(const char *s)
{
    struct sb b;
    sb_init(&b);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (n) {
            sb_add(&b, p, n);
            p += n;
        } else {
            sb_adds(&b, "\xef\xbf\xbd");
            p++;
        }
    }
    return sb_steal(&b);
}

static void add_json_clean(struct sb *b, const char *s)
{
    char *u = utf8_clean(s);
    sb_add_json_str(b, u);
    free(u);
}

/* scrub: msg with every password this call holds replaced by "***"; caller frees */
static char *scrub(const struct spec *s, const char *msg)
{
    const char *secrets[] = {s->server_pw, s->admin_pw, s->role_pw};
    char *out = xstrdup(msg);
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        const char *pw = secrets[i];
        if (!pw || !*pw)
            continue;
        struct sb b;
        sb_init(&b);
        const char *p = out, *hit;
        while ((hit = strstr(p, pw))) {
            sb_add(&b, p, (size_t)(hit - p));
            sb_adds(&b, "***");
            p = hit + strlen(pw);
        }
        sb_adds(&b, p);
        free(out);
        out = sb_steal(&b);
    }
    return out;
}

/* first_line: the first line of a libpq message, scrubbed; caller frees */
static char *first_line(const struct spec *s, const char *msg)
{
    if (!msg || !*msg)
        return xstrdup("no message from libpq");
    size_t n = strcspn(msg, "\n");
    while (n && (msg[n - 1] == ' ' || msg[n - 1] == '\r'))
        n--;
    char *line = xstrndup(msg, n);
    char *clean = scrub(s, line);
    free(line);
    char *out = shown_max(clean, MESSAGE_MAX);
    free(clean);
    return out;
}

/* ---- names ---- */

static bool is_lower_digit(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* plain_ok: "prenv_<env>_<resource>" is used as it is (see the top comment) */
static bool plain_ok(const char *env, const char *res)
{
    if (!*env || !*res || res[0] == '_' || strstr(res, "__"))
        return false;
    for (const char *p = env; *p; p++)
        if (!is_lower_digit(*p))
            return false;
    for (const char *p = res; *p; p++)
        if (!is_lower_digit(*p) && *p != '_')
            return false;
    return strlen("prenv_") + strlen(env) + 1 + strlen(res) <= PG_NAME_MAX;
}

/* derive_name: the database and role name for (env, resource); caller frees */
static char *derive_name(const char *env, const char *res)
{
    if (plain_ok(env, res))
        return xasprintf("prenv_%s_%s", env, res);
    struct sb raw;
    sb_init(&raw);
    sb_addf(&raw, "prenv_%s_%s", env, res);
    char prefix[PREFIX_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; i < raw.len && n < PREFIX_MAX; i++) {
        char ch = raw.buf[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        else if (!is_lower_digit(ch))
            ch = '_';
        if (ch == '_' && n && prefix[n - 1] == '_')
            continue;
        prefix[n++] = ch;
    }
    while (n && prefix[n - 1] == '_')
        n--;
    prefix[n] = 0;
    sb_reset(&raw);
    sb_add(&raw, env, strlen(env) + 1); /* the NUL separates env from resource */
    sb_adds(&raw, res);
    char hex[65];
    crypto_sha256_hex(raw.buf, raw.len, hex);
    sb_release(&raw);
    return xasprintf("%s__%.*s", prefix, HASH_HEX, hex);
}

/* name_problem: why a `name` cannot be used, or NULL */
static const char *name_problem(const char *s)
{
    static const char *const reserved[] = {"postgres",     "template0",    "template1",
                                           "public",       "none",         "current_user",
                                           "session_user", "current_role", NULL};
    size_t n = strlen(s);
    if (!n)
        return "is empty";
    if (n > PG_NAME_MAX)
        return "is longer than 63 bytes";
    if (!(s[0] >= 'a' && s[0] <= 'z') && s[0] != '_')
        return "must start with a lowercase letter or '_'";
    for (const char *p = s; *p; p++)
        if (!is_lower_digit(*p) && *p != '_')
            return "may hold only a-z, 0-9 and '_'";
    if (str_prefix(s, "pg_"))
        return "must not start with 'pg_' (PostgreSQL reserves it)";
    for (size_t i = 0; reserved[i]; i++)
        if (!strcmp(s, reserved[i]))
            return "is reserved";
    return NULL;
}

static const char *ext_problem(const char *s)
{
    size_t n = strlen(s);
    if (!n)
        return "is empty";
    if (n > PG_NAME_MAX)
        return "is longer than 63 bytes";
    if (!(s[0] >= 'a' && s[0] <= 'z'))
        return "must start with a lowercase letter";
    for (const char *p = s; *p; p++)
        if (!is_lower_digit(*p) && *p != '_' && *p != '-')
            return "may hold only a-z, 0-9, '_' and '-'";
    return NULL;
}

/* ---- comments ---- */

static void add_owner_keys(struct sb *b, const char *env, const char *res)
{
    sb_adds(b, "{\"prenv_env\":");
    add_json_clean(b, env);
    sb_adds(b, ",\"prenv_resource\":");
    add_json_clean(b, res);
}

/* build_comment: the database's comment: the env's tags (Environment, Owner,
 * CostCenter...; see docs/cost.md), then the resource's `tags` over them;
 * either may be NULL; caller frees */
static char *build_comment(const char *env, const char *res, const struct val *env_tags,
                           const struct val *tags)
{
    struct sb b;
    sb_init(&b);
    add_owner_keys(&b, env, res);
    struct val *all = val_map(NULL);
    for (size_t i = 0; env_tags && env_tags->kind == VAL_MAP && i < env_tags->u.map.n; i++)
        val_map_set(all, env_tags->u.map.e[i].key, NULL, val_clone(env_tags->u.map.e[i].v));
    for (size_t i = 0; tags && tags->kind == VAL_MAP && i < tags->u.map.n; i++)
        val_map_set(all, tags->u.map.e[i].key, NULL, val_clone(tags->u.map.e[i].v));
    for (size_t i = 0; i < all->u.map.n; i++) {
        const struct val_entry *t = &all->u.map.e[i];
        if (t->v->kind == VAL_NULL)
            continue;
        struct sb v;
        sb_init(&v);
        val_text(&v, t->v);
        sb_addc(&b, ',');
        add_json_clean(&b, t->key);
        sb_addc(&b, ':');
        add_json_clean(&b, v.buf);
        sb_release(&v);
    }
    val_free(all);
    sb_addc(&b, '}');
    return sb_steal(&b);
}

static const struct val *env_tags(const struct prov_call *c)
{
    return c->host ? c->host->tags : NULL;
}

static char *build_role_comment(const char *env, const char *res)
{
    struct sb b;
    sb_init(&b);
    add_owner_keys(&b, env, res);
    sb_addc(&b, '}');
    return sb_steal(&b);
}

/* owner_of: whose a comment says an object is; *who (when not NULL and the
 * answer is OWN_OTHER) gets "env 'x', resource 'y'", caller frees */
static enum own owner_of(const char *comment, const struct prov_call *c, char **who)
{
    if (who)
        *who = NULL;
    if (!comment)
        return OWN_NONE;
    cJSON *j = cJSON_Parse(comment);
    const cJSON *je = cJSON_GetObjectItemCaseSensitive(j, "prenv_env");
    const cJSON *jr = cJSON_GetObjectItemCaseSensitive(j, "prenv_resource");
    enum own o = OWN_NONE;
    if (cJSON_IsObject(j) && cJSON_IsString(je) && cJSON_IsString(jr)) {
        char *env = utf8_clean(c->env), *res = utf8_clean(c->resource);
        o = !strcmp(je->valuestring, env) && !strcmp(jr->valuestring, res) ? OWN_US : OWN_OTHER;
        if (o == OWN_OTHER && who) {
            char *qe = shown(je->valuestring), *qr = shown(jr->valuestring);
            *who = xasprintf("env '%s', resource '%s'", qe, qr);
            free(qe);
            free(qr);
        }
        free(env);
        free(res);
    }
    cJSON_Delete(j);
    return o;
}

/* ---- check ---- */

static bool is_text(const struct val *v)
{
    return v->kind == VAL_STR;
}

static int check_server(const struct val *v, struct err *e)
{
    const char *u = v->u.str.s;
    if (!*u)
        return err_set(e, PE_CONFIG, &v->pos, "'server' is empty");
    bool uri = str_prefix(u, "postgres://") || str_prefix(u, "postgresql://");
    char *errmsg = NULL;
    PQconninfoOption *o = uri || strchr(u, '=') ? PQconninfoParse(u, &errmsg) : NULL;
    PQfreemem(errmsg); /* it may quote the value, password included */
    PQconninfoFree(o);
    if (!o) {
        err_set(e, PE_CONFIG, &v->pos,
                "'server' is not a PostgreSQL connection URL or conninfo string");
        err_hint(e, "write it as postgres://USER:PASSWORD@HOST:PORT/postgres, or "
                    "\"host=HOST port=PORT user=USER dbname=postgres\"");
        return PE_CONFIG;
    }
    return 0;
}

static int check_tags(const struct prov_call *c, const struct val *tags, struct err *e)
{
    bool unknown = false;
    for (size_t i = 0; i < tags->u.map.n; i++) {
        const struct val_entry *t = &tags->u.map.e[i];
        if (!*t->key)
            return err_set(e, PE_CONFIG, &t->kpos, "'tags' has an empty key");
        if (str_prefix(t->key, "prenv_")) {
            char *k = shown(t->key);
            err_set(e, PE_CONFIG, &t->kpos, "tag '%s': keys starting with 'prenv_' are prenv's own",
                    k);
            free(k);
            return PE_CONFIG;
        }
        if (val_has_secret(t->v)) {
            char *k = shown(t->key);
            err_set(e, PE_CONFIG, &t->v->pos,
                    "tag '%s' holds a secret: tags are stored in the database's comment, which "
                    "every user of the server can read",
                    k);
            free(k);
            return PE_CONFIG;
        }
        unknown = unknown || t->v->kind == VAL_UNKNOWN;
    }
    if (unknown)
        return 0;
    char *comment =
        build_comment(c->env ? c->env : "", c->resource ? c->resource : "", env_tags(c), tags);
    size_t n = strlen(comment);
    free(comment);
    if (n > COMMENT_MAX)
        return err_set(e, PE_CONFIG, &tags->pos,
                       "'tags' are too large: the comment would take %zu bytes (at most %d)", n,
                       COMMENT_MAX);
    return 0;
}

static int pd_check(const struct prov_call *c, struct err *e)
{
    const struct val *props = c->props;
    if (!props || props->kind != VAL_MAP)
        return 0;
    const struct val *v;
    static const char *const texts[] = {"server", "admin_password", "name", "template"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        v = val_map_get(props, texts[i]);
        if (v && v->kind != VAL_STR && v->kind != VAL_UNKNOWN && v->kind != VAL_NULL)
            return err_set(e, PE_CONFIG, &v->pos, "'%s' must be a string, not a %s", texts[i],
                           val_kind_name(v->kind));
    }
    if ((v = val_map_get(props, "server")) && is_text(v) && check_server(v, e))
        return e->code;
    const struct val *name = val_map_get(props, "name");
    if (name && is_text(name)) {
        const char *why = name_problem(name->u.str.s);
        if (why) {
            char *q = shown(name->u.str.s);
            err_set(e, PE_CONFIG, &name->pos, "'name' %s %s", q, why);
            err_hint(e, "use lowercase letters, digits and '_', such as shop_pr_42; or leave "
                        "'name' out for a name derived from the environment");
            free(q);
            return PE_CONFIG;
        }
    }
    if ((v = val_map_get(props, "template")) && is_text(v)) {
        if (!*v->u.str.s)
            return err_set(e, PE_CONFIG, &v->pos, "'template' is empty");
        if (strlen(v->u.str.s) > PG_NAME_MAX)
            return err_set(e, PE_CONFIG, &v->pos, "'template' is longer than 63 bytes");
        if (name && is_text(name) && !strcmp(name->u.str.s, v->u.str.s))
            return err_set(e, PE_CONFIG, &v->pos,
                           "'template' names the database itself; a database cannot be its "
                           "own template");
    }
    if ((v = val_map_get(props, "connection_limit")) && v->kind == VAL_INT &&
        (v->u.i < -1 || v->u.i > CONN_LIMIT_MAX))
        return err_set(e, PE_CONFIG, &v->pos,
                       "'connection_limit' must be -1 (no limit) or between 0 and %d, not %lld",
                       CONN_LIMIT_MAX, v->u.i);
    if ((v = val_map_get(props, "extensions")) && v->kind == VAL_LIST)
        for (size_t i = 0; i < v->u.list.n; i++) {
            const struct val *x = v->u.list.v[i];
            if (x->kind == VAL_UNKNOWN)
                continue;
            if (x->kind != VAL_STR)
                return err_set(e, PE_CONFIG, &x->pos, "'extensions' item %zu is a %s, not a name",
                               i, val_kind_name(x->kind));
            const char *why = ext_problem(x->u.str.s);
            if (why) {
                char *q = shown(x->u.str.s);
                err_set(e, PE_CONFIG, &x->pos, "extension '%s' %s", q, why);
                free(q);
                return PE_CONFIG;
            }
        }
    if ((v = val_map_get(props, "tags")) && v->kind == VAL_MAP && check_tags(c, v, e))
        return e->code;
    return 0;
}

/* ---- spec ---- */

static void spec_release(struct spec *s)
{
    free(s->server_pw);
    free(s->admin_user);
    free(s->host);
    free(s->port);
    free(s->sslmode);
    free(s->shown);
    free(s->db);
    free(s->role);
    free(s->comment);
    free(s->role_comment);
    memset(s, 0, sizeof *s);
}

/* spec_init: what props ask for (props is c->props, or old_props for read and
 * remove). s is always initialised; release it with spec_release. */
static int spec_init(struct spec *s, const struct prov_call *c, const struct val *props,
                     struct err *e)
{
    memset(s, 0, sizeof *s);
    s->c = c;
    s->connlimit = -1;
    if (!props || props->kind != VAL_MAP)
        return err_set(e, PE_STATE, NULL, "postgres.database '%s' has no recorded properties",
                       c->resource);
    s->server = prov_str(props, "server", NULL);
    if (!s->server || !*s->server)
        return err_set(e, PE_CONFIG, NULL, "postgres.database needs property 'server'");
    s->admin_pw = prov_str(props, "admin_password", NULL);
    if (s->admin_pw && !*s->admin_pw)
        s->admin_pw = NULL;
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(s->server, &errmsg);
    PQfreemem(errmsg);
    if (!opts)
        return err_set(e, PE_CONFIG, NULL,
                       "'server' is not a PostgreSQL connection URL or conninfo string");
    const char *dbname = NULL, *hostaddr = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (!strcmp(o->keyword, "password"))
            s->server_pw = xstrdup(o->val);
        else if (!strcmp(o->keyword, "user"))
            s->admin_user = xstrdup(o->val);
        else if (!strcmp(o->keyword, "host"))
            s->host = xstrdup(o->val);
        else if (!strcmp(o->keyword, "hostaddr"))
            hostaddr = o->val;
        else if (!strcmp(o->keyword, "port"))
            s->port = xstrdup(o->val);
        else if (!strcmp(o->keyword, "sslmode"))
            s->sslmode = xstrdup(o->val);
        else if (!strcmp(o->keyword, "dbname"))
            dbname = o->val;
    }
    if (!s->host && hostaddr)
        s->host = xstrdup(hostaddr);
    char *raw = xasprintf("postgres://%s%s%s%s%s/%s", s->admin_user ? s->admin_user : "",
                          s->admin_user ? "@" : "", s->host ? s->host : "", s->port ? ":" : "",
                          s->port ? s->port : "", dbname ? dbname : "");
    s->shown = shown(raw);
    free(raw);
    PQconninfoFree(opts);
    const char *name = prov_str(props, "name", NULL);
    s->db = name && *name ? xstrdup(name) : derive_name(c->env, c->resource);
    s->role = xstrdup(s->db);
    s->tmpl = prov_str(props, "template", NULL);
    if (s->tmpl && !*s->tmpl)
        s->tmpl = NULL;
    const struct val *lim = val_map_get(props, "connection_limit");
    if (lim && lim->kind == VAL_INT)
        s->connlimit = lim->u.i;
    const struct val *x = val_map_get(props, "extensions");
    s->exts = x && x->kind == VAL_LIST ? x : NULL;
    s->comment = build_comment(c->env, c->resource, env_tags(c), val_map_get(props, "tags"));
    s->role_comment = build_role_comment(c->env, c->resource);
    return 0;
}

/* ---- errors ---- */

static bool has_any(const char *msg, const char *const *pats)
{
    for (size_t i = 0; pats[i]; i++)
        if (strstr(msg, pats[i]))
            return true;
    return false;
}

static bool auth_failure(const char *msg)
{
    static const char *const pats[] = {"password authentication failed",
                                       "authentication failed",
                                       "no password supplied",
                                       "pg_hba.conf",
                                       "SCRAM",
                                       "password is required",
                                       NULL};
    return has_any(msg, pats);
}

static bool too_many(const char *msg)
{
    static const char *const pats[] = {"too many clients", "too many connections",
                                       "remaining connection slots", NULL};
    return has_any(msg, pats);
}

static bool conn_transient(const char *msg)
{
    static const char *const pats[] = {"Connection refused",
                                       "could not connect",
                                       "timeout expired",
                                       "No route to host",
                                       "Network is unreachable",
                                       "Connection reset",
                                       "server closed the connection",
                                       "could not translate host name",
                                       "Temporary failure in name resolution",
                                       "the database system is starting up",
                                       "the database system is shutting down",
                                       "the database system is in recovery mode",
                                       "not yet accepting connections",
                                       "No such file or directory",
                                       "could not receive data",
                                       "could not send data",
                                       NULL};
    return too_many(msg) || has_any(msg, pats);
}

/* where: "host:port" of a connection for hints; caller frees */
static char *where(const struct spec *s, PGconn *conn)
{
    const char *h = conn ? PQhost(conn) : NULL, *p = conn ? PQport(conn) : NULL;
    if (!h || !*h)
        h = s->host ? s->host : "localhost";
    if (!p || !*p)
        p = s->port ? s->port : "5432";
    char *raw = xasprintf("%s:%s", h, p);
    char *out = shown(raw);
    free(raw);
    return out;
}

/* conn_err: a failed connection as user (NULL = the admin) to an error */
static int conn_err(struct err *e, const struct spec *s, PGconn *conn, const char *user)
{
    char *msg = first_line(s, conn ? PQerrorMessage(conn) : NULL);
    char *hp = where(s, conn);
    char *who = user ? shown(user) : xstrdup(s->admin_user ? s->admin_user : "the default user");
    int code;
    if (auth_failure(msg)) {
        code = err_set(e, PE_PROVIDER, NULL, "PostgreSQL at %s refused the login of %s: %s",
                       s->shown, who, msg);
        if (!user)
            err_hint(e, "check the admin credentials: the user and password in 'server', or "
                        "'admin_password' when 'server' has no password");
    } else if (conn_transient(msg)) {
        code =
            err_set(e, PE_TRANSIENT, NULL, "cannot connect to PostgreSQL at %s: %s", s->shown, msg);
        err_hint(e, "is the server at %s running and accepting connections? prenv retries", hp);
    } else {
        code = err_set(e, PE_PROVIDER, NULL, "cannot connect to PostgreSQL at %s as %s: %s",
                       s->shown, who, msg);
        if (strstr(msg, "does not exist"))
            err_hint(e, "check the user and database named in 'server'");
    }
    free(who);
    free(hp);
    free(msg);
    return code;
}

static bool state_transient(const char *st)
{
    static const char *const codes[] = {
        "53300", /* too_many_connections */
        "53400", /* configuration_limit_exceeded */
        "55006", /* object_in_use: a template or database someone is connected to */
        "55P03", /* lock_not_available */
        "57P01", "57P02", "57P03", /* shutdown, crash, cannot connect now */
        "57014",                   /* query_canceled: statement timeout */
        "40001", "40P01",          /* serialization failure, deadlock */
        "42710", "42P04",          /* duplicate role or database: a concurrent create; recheck */
        NULL};
    if (!strncmp(st, "08", 2))
        return true;
    for (size_t i = 0; codes[i]; i++)
        if (!strcmp(st, codes[i]))
            return true;
    return false;
}

/* res_err: a failed statement to an error "<what>: <server message> (SQLSTATE x)" */
static int res_err(struct err *e, const struct spec *s, PGconn *conn, const PGresult *res,
                   const char *what)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char *msg = first_line(s, m ? m : PQerrorMessage(conn));
    bool lost = PQstatus(conn) == CONNECTION_BAD;
    int code = lost || (st && state_transient(st)) ? PE_TRANSIENT : PE_PROVIDER;
    err_set(e, code, NULL, "%s: %s%s%s%s", what, msg, st ? " (SQLSTATE " : "", st ? st : "",
            st ? ")" : "");
    char *hp = where(s, conn);
    if (st && !strcmp(st, "55006"))
        err_hint(e,
                 "another session is connected to that database on %s (a template must be "
                 "idle while it is copied); prenv retries",
                 hp);
    else if (st && (!strcmp(st, "42501") || !strncmp(st, "28", 2)))
        err_hint(e, "the admin role in 'server' needs CREATEROLE and CREATEDB, or superuser");
    else if (code == PE_TRANSIENT)
        err_hint(e, "the server at %s is busy, restarting or unreachable; prenv retries", hp);
    free(hp);
    free(msg);
    return code;
}

/* ---- connections and statements ---- */

static void on_notice(void *arg, const char *message)
{
    const struct prov_call *c = arg;
    size_t n = strlen(message);
    while (n && (message[n - 1] == '\n' || message[n - 1] == ' '))
        n--;
    prov_log(c, "server: %.*s", (int)n, message);
}

/* pg_connect: a connection to dbname (NULL: the one server names) as user
 * with password (both NULL: the admin) */
static int pg_connect(PGconn **out, const struct spec *s, const char *dbname, const char *user,
                      const char *password, struct err *e)
{
    *out = NULL;
    const char *kw[10], *vals[10];
    int n = 0;
    /* before server: a connect_timeout in it wins; after it: ours win */
    kw[n] = "connect_timeout", vals[n++] = CONNECT_TIMEOUT;
    kw[n] = "dbname", vals[n++] = s->server;
    if (dbname)
        kw[n] = "dbname", vals[n++] = dbname;
    if (user)
        kw[n] = "user", vals[n++] = user;
    if (password)
        kw[n] = "password", vals[n++] = password;
    else if (!user && !s->server_pw && s->admin_pw)
        kw[n] = "password", vals[n++] = s->admin_pw;
    kw[n] = "client_encoding", vals[n++] = "UTF8";
    kw[n] = "application_name", vals[n++] = "prenv";
    kw[n] = NULL, vals[n] = NULL;
    PGconn *conn = PQconnectdbParams(kw, vals, 1);
    if (!conn)
        return err_set(e, PE_INTERNAL, NULL, "libpq cannot allocate a connection");
    if (PQstatus(conn) != CONNECTION_OK) {
        int rc = conn_err(e, s, conn, user);
        PQfinish(conn);
        return rc;
    }
    PQsetNoticeProcessor(conn, on_notice, (void *)s->c);
    *out = conn;
    return 0;
}

/* admin_connect: the admin connection, with timeouts, on a supported server */
static int admin_connect(PGconn **out, const struct spec *s, struct err *e)
{
    PGconn *conn;
    int rc = pg_connect(&conn, s, NULL, NULL, NULL, e);
    if (rc)
        return rc;
    int v = PQserverVersion(conn);
    if (v < MIN_SERVER) {
        rc = err_set(e, PE_PROVIDER, NULL,
                     "PostgreSQL at %s is version %d.%d; postgres.database needs 11 or later",
                     s->shown, v / 10000, v / 100 % 100);
    } else {
        PGresult *res = PQexec(conn, "SET statement_timeout = '5min'; SET lock_timeout = '1min'");
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = res_err(e, s, conn, res, "cannot set timeouts");
        PQclear(res);
    }
    if (rc)
        PQfinish(conn);
    else
        *out = conn;
    return rc;
}

/* run: one or more statements without parameters; what names the step */
static int run(PGconn *conn, const struct spec *s, const char *sql, const char *what, struct err *e)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = res_err(e, s, conn, res, what);
    PQclear(res);
    return rc;
}

static int runf(PGconn *conn, const struct spec *s, struct err *e, const char *what,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int runf(PGconn *conn, const struct spec *s, struct err *e, const char *what,
                const char *fmt, ...)
{
    struct sb b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    int rc = run(conn, s, b.buf, what, e);
    sb_release(&b);
    return rc;
}

/* query: a statement with text parameters that returns rows; *out on success */
static int query(PGresult **out, PGconn *conn, const struct spec *s, const char *sql, int n,
                 const char *const *params, const char *what, struct err *e)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = res_err(e, s, conn, res, what);
        PQclear(res);
        *out = NULL;
        return rc;
    }
    *out = res;
    return 0;
}

static char *dup_field(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : xstrdup(PQgetvalue(res, row, col));
}

static void obj_release(struct pg_obj *o)
{
    free(o->owner);
    free(o->comment);
    memset(o, 0, sizeof *o);
}

static int look_db(struct pg_obj *o, PGconn *conn, const struct spec *s, struct err *e)
{
    static const char sql[] = "SELECT pg_catalog.pg_get_userbyid(d.datdba), "
                              "pg_catalog.shobj_description(d.oid, 'pg_database'), d.datconnlimit "
                              "FROM pg_catalog.pg_database d WHERE d.datname = $1";
    const char *params[] = {s->db};
    PGresult *res;
    obj_release(o);
    int rc = query(&res, conn, s, sql, 1, params, "cannot look up the database", e);
    if (rc)
        return rc;
    if (PQntuples(res) == 1) {
        o->exists = true;
        o->owner = dup_field(res, 0, 0);
        o->comment = dup_field(res, 0, 1);
        str_parse_int(PQgetvalue(res, 0, 2), -1, 1LL << 31, &o->limit);
    }
    PQclear(res);
    return 0;
}

static int look_role(struct pg_obj *o, PGconn *conn, const struct spec *s, struct err *e)
{
    static const char sql[] = "SELECT r.rolcanlogin, pg_catalog.shobj_description(r.oid, "
                              "'pg_authid') FROM pg_catalog.pg_roles r WHERE r.rolname = $1";
    const char *params[] = {s->role};
    PGresult *res;
    obj_release(o);
    int rc = query(&res, conn, s, sql, 1, params, "cannot look up the role", e);
    if (rc)
        return rc;
    if (PQntuples(res) == 1) {
        o->exists = true;
        o->canlogin = !strcmp(PQgetvalue(res, 0, 0), "t");
        o->comment = dup_field(res, 0, 1);
    }
    PQclear(res);
    return 0;
}

static bool role_ours(const struct spec *s, const struct pg_obj *role)
{
    return role->exists && owner_of(role->comment, s->c, NULL) == OWN_US;
}

static bool db_ours(const struct spec *s, const struct pg_obj *db, const struct pg_obj *role)
{
    enum own o = owner_of(db->comment, s->c, NULL);
    return o == OWN_US ||
           (o == OWN_NONE && role_ours(s, role) && db->owner && !strcmp(db->owner, s->role));
}

/* refuse: kind ("database", "role") name exists and is not ours */
static int refuse(struct err *e, const struct spec *s, const char *kind, const char *name,
                  const char *comment)
{
    char *who = NULL;
    owner_of(comment, s->c, &who);
    char *env = shown(s->c->env), *res = shown(s->c->resource);
    err_set(e, PE_EXISTS, NULL,
            "%s %s exists and is not managed by prenv env '%s', resource '%s'%s%s%s; refusing "
            "to touch it",
            kind, name, env, res, who ? " (its comment says it belongs to " : "", who ? who : "",
            who ? ")" : "");
    err_hint(e, "drop or rename it on %s, or set 'name' to another name", s->shown);
    free(env);
    free(res);
    free(who);
    return PE_EXISTS;
}

static char *quote_with(PGconn *conn, const char *s, bool ident)
{
    char *q = ident ? PQescapeIdentifier(conn, s, strlen(s)) : PQescapeLiteral(conn, s, strlen(s));
    if (!q)
        return NULL;
    char *out = xstrdup(q);
    PQfreemem(q);
    return out;
}

static void quoted_release(struct quoted *q)
{
    free(q->db);
    free(q->role);
    free(q->tmpl);
    free(q->comment);
    free(q->role_comment);
    memset(q, 0, sizeof *q);
}

static int quote_all(struct quoted *q, PGconn *conn, const struct spec *s, struct err *e)
{
    q->db = quote_with(conn, s->db, true);
    q->role = quote_with(conn, s->role, true);
    q->tmpl = s->tmpl ? quote_with(conn, s->tmpl, true) : NULL;
    q->comment = quote_with(conn, s->comment, false);
    q->role_comment = quote_with(conn, s->role_comment, false);
    if (!q->db || !q->role || (s->tmpl && !q->tmpl) || !q->comment || !q->role_comment) {
        char *m = first_line(s, PQerrorMessage(conn));
        err_set(e, PE_CONFIG, NULL, "cannot quote the names for SQL: %s", m);
        free(m);
        return PE_CONFIG;
    }
    return 0;
}

static int canceled(const struct spec *s, struct err *e)
{
    if (!prov_canceled(s->c))
        return 0;
    return err_set(e, PE_CANCELED, NULL, "postgres.database %s canceled", s->db);
}

/* ---- create and update ---- */

static int new_password(char **out, struct err *e)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[PW_BYTES];
    int rc = crypto_random(raw, sizeof raw);
    if (rc)
        return err_errno(e, -rc, "cannot read random bytes for a password");
    struct sb b;
    sb_init(&b);
    for (size_t i = 0; i < sizeof raw; i += 3) {
        unsigned v = (unsigned)raw[i] << 16;
        size_t left = sizeof raw - i;
        if (left > 1)
            v |= (unsigned)raw[i + 1] << 8;
        if (left > 2)
            v |= raw[i + 2];
        sb_addc(&b, b64[v >> 18 & 63]);
        sb_addc(&b, b64[v >> 12 & 63]);
        if (left > 1)
            sb_addc(&b, b64[v >> 6 & 63]);
        if (left > 2)
            sb_addc(&b, b64[v & 63]);
    }
    explicit_bzero(raw, sizeof raw);
    *out = sb_steal(&b);
    return 0;
}

/* set_role: create the role (with its comment, in one transaction) or set
 * its password; the password travels only as libpq's verifier */
static int set_role(PGconn *conn, const struct spec *s, const struct quoted *q, bool exists,
                    const char *pw, struct err *e)
{
    char *verifier = PQencryptPasswordConn(conn, pw, s->role, NULL);
    if (!verifier) {
        char *m = first_line(s, PQerrorMessage(conn));
        int rc =
            err_set(e, PE_PROVIDER, NULL, "cannot hash the password of role %s: %s", s->role, m);
        free(m);
        return rc;
    }
    char *qv = quote_with(conn, verifier, false);
    PQfreemem(verifier);
    if (!qv)
        return err_set(e, PE_INTERNAL, NULL, "cannot quote the password verifier");
    int rc;
    char *what = xasprintf("cannot %s role %s", exists ? "update" : "create", s->role);
    if (exists)
        rc =
            runf(conn, s, e, what, "ALTER ROLE %s WITH LOGIN PASSWORD %s; COMMENT ON ROLE %s IS %s",
                 q->role, qv, q->role, q->role_comment);
    else
        rc = runf(conn, s, e, what,
                  "CREATE ROLE %s WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                  "PASSWORD %s; COMMENT ON ROLE %s IS %s",
                  q->role, qv, q->role, q->role_comment);
    free(what);
    free(qv);
    return rc;
}

/* hand_over: the objects a template copy brought, given to the role */
static int hand_over(PGconn *dbc, const struct spec *s, const struct quoted *q, struct err *e)
{
    /* objects outside pg_catalog, information_schema, pg_toast... and outside
     * extensions, not owned by the role yet; a sequence that belongs to a
     * column moves with its table */
    static const char sql[] =
        "SELECT 'SCHEMA', pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_namespace n "
        "WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
        "AND pg_catalog.pg_get_userbyid(n.nspowner) NOT IN ($1, 'pg_database_owner') "
        "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = "
        "'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.objid = n.oid AND d.deptype = 'e') "
        "UNION ALL "
        "SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' "
        "WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, "
        "c.oid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
        "AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
        "AND pg_catalog.pg_get_userbyid(c.relowner) <> $1 "
        "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = "
        "'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND (d.deptype = 'e' "
        "OR (c.relkind = 'S' AND d.deptype IN ('a', 'i')))) "
        "UNION ALL "
        "SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, "
        "p.oid::pg_catalog.regprocedure::pg_catalog.text FROM pg_catalog.pg_proc p "
        "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
        "WHERE p.prokind IN ('f', 'p') "
        "AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
        "AND pg_catalog.pg_get_userbyid(p.proowner) <> $1 "
        "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = "
        "'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e') "
        "UNION ALL "
        "SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, "
        "t.oid::pg_catalog.regtype::pg_catalog.text FROM pg_catalog.pg_type t "
        "JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
        "WHERE (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM "
        "pg_catalog.pg_class r WHERE r.oid = t.typrelid AND r.relkind = 'c'))) "
        "AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
        "AND pg_catalog.pg_get_userbyid(t.typowner) <> $1 "
        "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = "
        "'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = t.oid AND d.deptype = 'e')";
    static const char *const kinds[] = {
        "SCHEMA",    "TABLE", "SEQUENCE", "VIEW", "FOREIGN TABLE", "MATERIALIZED VIEW", "FUNCTION",
        "PROCEDURE", "TYPE",  "DOMAIN",   NULL};
    char *what = xasprintf("cannot hand the objects of %s over to role %s", s->db, s->role);
    /* with only pg_catalog on the path, regclass and friends print qualified names */
    int rc = run(dbc, s, "BEGIN; SET LOCAL search_path = pg_catalog", what, e);
    PGresult *res = NULL;
    const char *params[] = {s->role};
    if (!rc)
        rc = query(&res, dbc, s, sql, 1, params, what, e);
    int n = res ? PQntuples(res) : 0;
    for (int i = 0; i < n && !rc; i++) {
        const char *kind = PQgetvalue(res, i, 0), *obj = PQgetvalue(res, i, 1);
        bool known = false;
        for (size_t k = 0; kinds[k] && !known; k++)
            known = !strcmp(kind, kinds[k]);
        if (!known)
            continue;
        /* obj is the server's own quoted, qualified name */
        rc = runf(dbc, s, e, what, "ALTER %s %s OWNER TO %s", kind, obj, q->role);
    }
    PQclear(res);
    if (!rc)
        rc = run(dbc, s, "COMMIT", what, e);
    if (!rc && n)
        prov_log(s->c, "handed %d objects copied from template %s over to role %s", n, s->tmpl,
                 s->role);
    free(what);
    return rc;
}

static int add_extensions(PGconn *dbc, const struct spec *s, struct err *e)
{
    int rc = 0;
    for (size_t i = 0; s->exts && i < s->exts->u.list.n && !rc; i++) {
        const struct val *x = s->exts->u.list.v[i];
        if (x->kind != VAL_STR)
            continue;
        char *qx = quote_with(dbc, x->u.str.s, true);
        if (!qx)
            return err_set(e, PE_CONFIG, &x->pos, "cannot quote extension name");
        char *xs = shown(x->u.str.s);
        char *what = xasprintf("cannot create extension %s in %s", xs, s->db);
        rc = runf(dbc, s, e, what, "CREATE EXTENSION IF NOT EXISTS %s", qx);
        if (rc && !e->hint)
            err_hint(e, "is the extension installed on the server (pg_available_extensions)?");
        free(what);
        free(xs);
        free(qx);
    }
    return rc;
}

static void add_url(struct sb *b, const char *host, long long port, const struct spec *s,
                    const char *pw)
{
    sb_addf(b, "postgres://%s:%s@", s->role, pw);
    bool socket = host[0] == '/';
    if (socket)
        sb_addf(b, "/%s?host=", s->db);
    else if (strchr(host, ':'))
        sb_addf(b, "[%s]:%lld/%s", host, port, s->db);
    else
        sb_addf(b, "%s:%lld/%s", host, port, s->db);
    if (socket) {
        for (const unsigned char *p = (const unsigned char *)host; *p; p++)
            if (is_lower_digit((char)*p) || (*p >= 'A' && *p <= 'Z') || strchr("-._~", *p))
                sb_addc(b, (char)*p);
            else
                sb_addf(b, "%%%02X", *p);
        sb_addf(b, "&port=%lld", port);
    }
    if (s->sslmode)
        sb_addf(b, "%csslmode=%s", socket ? '&' : '?', s->sslmode);
}

static void set_outputs(struct prov_result *r, PGconn *conn, const struct spec *s, const char *pw)
{
    const char *host = PQhost(conn);
    if (!host || !*host)
        host = s->host ? s->host : "localhost";
    long long port = 5432;
    const char *ps = PQport(conn);
    if (!ps || !str_parse_int(ps, 1, 65535, &port))
        port = 5432;
    struct sb url;
    sb_init(&url);
    add_url(&url, host, port, s, pw);
    free(r->id);
    val_free(r->outputs);
    r->id = xasprintf("%s:%lld/%s", host, port, s->db);
    r->outputs = val_map(NULL);
    struct val *u = val_str_own(sb_steal(&url), NULL);
    u->secret = 1;
    val_map_set(r->outputs, "url", NULL, u);
    val_map_set(r->outputs, "host", NULL, val_str(host, NULL));
    val_map_set(r->outputs, "port", NULL, val_int(port, NULL));
    val_map_set(r->outputs, "name", NULL, val_str(s->db, NULL));
    val_map_set(r->outputs, "user", NULL, val_str(s->role, NULL));
    struct val *p = val_str(pw, NULL);
    p->secret = 1;
    val_map_set(r->outputs, "password", NULL, p);
}

/* apply: bring role and database to what c->props ask for. creating: a new
 * password; otherwise the recorded one is set again (repairing a password
 * changed outside prenv) and a database dropped outside prenv is recreated. */
static int apply(const struct prov_call *c, struct prov_result *r, bool creating, struct err *e)
{
    struct spec s = {0};
    struct pg_obj role = {0}, db = {0};
    struct quoted q = {0};
    PGconn *conn = NULL, *dbc = NULL;
    char *pw = NULL;
    int rc = pd_check(c, e);
    if (!rc)
        rc = spec_init(&s, c, c->props, e);
    if (rc)
        goto out;
    if (creating) {
        rc = new_password(&pw, e);
    } else {
        const char *was = c->old_outputs ? val_map_str(c->old_outputs, "password", NULL) : NULL;
        if (was)
            pw = xstrdup(was);
        else
            rc = err_set(e, PE_STATE, NULL,
                         "state has no recorded password for postgres.database %s", s.db);
    }
    if (rc)
        goto out;
    s.role_pw = pw;
    if ((rc = admin_connect(&conn, &s, e)) || (rc = look_role(&role, conn, &s, e)) ||
        (rc = look_db(&db, conn, &s, e)))
        goto out;
    if (role.exists && !role_ours(&s, &role)) {
        rc = refuse(e, &s, "role", s.role, role.comment);
        goto out;
    }
    if (db.exists && !db_ours(&s, &db, &role)) {
        rc = refuse(e, &s, "database", s.db, db.comment);
        goto out;
    }
    if ((rc = quote_all(&q, conn, &s, e)))
        goto out;
    prov_log(c, "%s role %s on %s", role.exists ? "updating" : "creating", s.role, s.shown);
    if ((rc = set_role(conn, &s, &q, role.exists, pw, e)))
        goto out;
    const char *su = PQparameterStatus(conn, "is_superuser");
    if (!su || strcmp(su, "on")) {
        /* CREATE DATABASE ... OWNER needs the admin to be a member of the owner */
        char *what = xasprintf("cannot grant role %s to the admin", s.role);
        rc = runf(conn, &s, e, what, "GRANT %s TO CURRENT_USER", q.role);
        free(what);
        if (rc)
            goto out;
    }
    if ((rc = canceled(&s, e)))
        goto out;
    char *what = xasprintf("cannot create database %s", s.db);
    if (!db.exists) {
        if (s.tmpl)
            prov_log(c, "creating database %s from template %s", s.db, s.tmpl);
        else
            prov_log(c, "creating database %s", s.db);
        rc = runf(conn, &s, e, what, "CREATE DATABASE %s WITH OWNER = %s%s%s", q.db, q.role,
                  q.tmpl ? " TEMPLATE = " : "", q.tmpl ? q.tmpl : "");
    } else {
        prov_log(c, "database %s exists and is ours: adopting it", s.db);
        if (!db.owner || strcmp(db.owner, s.role))
            rc = runf(conn, &s, e, what, "ALTER DATABASE %s OWNER TO %s", q.db, q.role);
    }
    free(what);
    if (rc)
        goto out;
    what = xasprintf("cannot configure database %s", s.db);
    rc = runf(conn, &s, e, what,
              "COMMENT ON DATABASE %s IS %s; "
              "REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC; "
              "GRANT CONNECT, TEMPORARY ON DATABASE %s TO %s; "
              "ALTER DATABASE %s WITH CONNECTION LIMIT = %lld",
              q.db, q.comment, q.db, q.db, q.role, q.db, s.connlimit);
    free(what);
    if (rc)
        goto out;
    if (s.tmpl || (s.exts && s.exts->u.list.n)) {
        if ((rc = canceled(&s, e)) || (rc = pg_connect(&dbc, &s, s.db, NULL, NULL, e)))
            goto out;
        if (s.tmpl && (rc = hand_over(dbc, &s, &q, e)))
            goto out;
        if ((rc = add_extensions(dbc, &s, e)))
            goto out;
    }
    set_outputs(r, conn, &s, pw);
    prov_log(c, "database %s ready for role %s", s.db, s.role);
out:
    if (dbc)
        PQfinish(dbc);
    if (conn)
        PQfinish(conn);
    quoted_release(&q);
    obj_release(&role);
    obj_release(&db);
    if (pw) {
        explicit_bzero(pw, strlen(pw));
        free(pw);
    }
    spec_release(&s);
    return rc;
}

static int pd_create(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    return apply(c, r, true, e);
}

static int pd_update(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    return apply(c, r, false, e);
}

/* ---- read ---- */

/* try_login: 1 when user logs in to db with pw, 0 when refused (*why set,
 * caller frees), -1 when it cannot tell (the database is full); < -1 on error */
static int try_login(const struct spec *s, const char *db, const char *user, const char *pw,
                     char **why, struct err *e)
{
    *why = NULL;
    struct err le = {0};
    PGconn *conn;
    int rc = pg_connect(&conn, s, db, user, pw, &le);
    if (!rc) {
        PQfinish(conn);
        return 1;
    }
    int out;
    if (too_many(le.msg)) {
        out = -1;
    } else if (le.code == PE_TRANSIENT) {
        err_move(e, &le);
        return PE_TRANSIENT;
    } else {
        *why = xstrdup(le.msg);
        out = 0;
    }
    err_release(&le);
    return out;
}

static int pd_read(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    r->exists = false;
    if (!c->old_outputs) {
        /* an interrupted create: the password is unknown, so report nothing and
         * let the engine remove what is there and create it again */
        prov_log(c, "no recorded outputs (an interrupted create): reporting the database "
                    "absent so it is cleaned up");
        return 0;
    }
    struct spec s;
    struct pg_obj role = {0}, db = {0};
    PGconn *conn = NULL;
    struct sb drift;
    sb_init(&drift);
    int rc = spec_init(&s, c, c->old_props ? c->old_props : c->props, e);
    const char *pw = val_map_str(c->old_outputs, "password", NULL);
    if (rc || !pw)
        goto out;
    s.role_pw = pw;
    if ((rc = admin_connect(&conn, &s, e)) || (rc = look_role(&role, conn, &s, e)) ||
        (rc = look_db(&db, conn, &s, e)))
        goto out;
    if (!db.exists) {
        prov_log(c, "database %s is gone", s.db);
        goto out;
    }
    if (!db_ours(&s, &db, &role)) {
        prov_log(c, "database %s is no longer prenv's (its comment names another owner)", s.db);
        goto out;
    }
    r->exists = true;
    r->outputs = val_clone(c->old_outputs);
    for (const struct prov_output *o = outputs; o->name; o++) {
        struct val *v = val_map_get(r->outputs, o->name);
        if (v && (o->flags & OUT_SECRET))
            v->secret = 1;
    }
    r->id = c->id ? xstrdup(c->id) : xstrdup(s.db);
    if (!role.exists) {
        sb_addf(&drift, "role %s was dropped outside prenv", s.role);
    } else if (!role_ours(&s, &role)) {
        sb_addf(&drift, "role %s no longer carries prenv's comment", s.role);
    } else if (!role.canlogin) {
        sb_addf(&drift, "role %s can no longer log in", s.role);
    } else {
        char *why = NULL;
        int ok = try_login(&s, s.db, s.role, pw, &why, e);
        if (ok < -1) {
            rc = ok;
            r->exists = false;
            goto out;
        }
        if (ok == 0)
            sb_addf(&drift,
                    "role %s cannot log in with the recorded password (changed "
                    "outside prenv?): %s",
                    s.role, why);
        else if (ok < 0)
            prov_log(c, "database %s is full: the password of %s was not checked", s.db, s.role);
        free(why);
    }
    if (!db.comment || strcmp(db.comment, s.comment))
        sb_addf(&drift, "%sthe comment on database %s changed outside prenv", drift.len ? "; " : "",
                s.db);
    if (db.limit != s.connlimit)
        sb_addf(&drift, "%sthe connection limit of database %s is %lld, not %lld",
                drift.len ? "; " : "", s.db, db.limit, s.connlimit);
    if (db.owner && strcmp(db.owner, s.role)) {
        char *o = shown(db.owner);
        sb_addf(&drift, "%sdatabase %s is owned by %s, not %s", drift.len ? "; " : "", s.db, o,
                s.role);
        free(o);
    }
    if (drift.len) {
        char *d = scrub(&s, drift.buf);
        r->drift = d;
    }
out:
    if (rc) {
        prov_result_release(r);
        r->exists = false;
    }
    if (conn)
        PQfinish(conn);
    obj_release(&role);
    obj_release(&db);
    sb_release(&drift);
    spec_release(&s);
    return rc;
}

/* ---- remove ---- */

static int drop_db(PGconn *conn, const struct spec *s, const struct quoted *q, struct err *e)
{
    char *what = xasprintf("cannot drop database %s", s->db);
    int rc;
    if (PQserverVersion(conn) >= FORCE_DROP) {
        rc = runf(conn, s, e, what, "DROP DATABASE IF EXISTS %s WITH (FORCE)", q->db);
    } else {
        static const char kill[] =
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()";
        const char *params[] = {s->db};
        PGresult *res = NULL;
        rc = runf(conn, s, e, what, "ALTER DATABASE %s WITH ALLOW_CONNECTIONS = false", q->db);
        if (!rc)
            rc = query(&res, conn, s, kill, 1, params, what, e);
        PQclear(res);
        if (!rc)
            rc = runf(conn, s, e, what, "DROP DATABASE IF EXISTS %s", q->db);
    }
    free(what);
    return rc;
}

static int drop_role(PGconn *conn, const struct spec *s, const struct quoted *q, struct err *e)
{
    static const char kill[] =
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
        "WHERE usename = $1 AND pid <> pg_catalog.pg_backend_pid()";
    const char *params[] = {s->role};
    char *what = xasprintf("cannot drop role %s", s->role);
    PGresult *res = NULL;
    int rc = query(&res, conn, s, kill, 1, params, what, e);
    PQclear(res);
    if (!rc) {
        rc = runf(conn, s, e, what, "DROP ROLE IF EXISTS %s", q->role);
        if (rc && !e->hint)
            err_hint(e,
                     "the role still owns objects or holds privileges in another database: "
                     "run DROP OWNED BY %s there",
                     s->role);
    }
    free(what);
    return rc;
}

static int pd_remove(const struct prov_call *c, struct err *e)
{
    struct spec s;
    struct pg_obj role = {0}, db = {0};
    struct quoted q = {0};
    PGconn *conn = NULL;
    int rc = spec_init(&s, c, c->old_props ? c->old_props : c->props, e);
    if (rc)
        goto out;
    const char *pw = c->old_outputs ? val_map_str(c->old_outputs, "password", NULL) : NULL;
    s.role_pw = pw;
    if ((rc = admin_connect(&conn, &s, e)) || (rc = look_role(&role, conn, &s, e)) ||
        (rc = look_db(&db, conn, &s, e)) || (rc = quote_all(&q, conn, &s, e)))
        goto out;
    if (db.exists && !db_ours(&s, &db, &role)) {
        prov_log(c, "leaving database %s alone: it is not managed by this resource", s.db);
    } else if (db.exists) {
        prov_log(c, "dropping database %s (ending its sessions)", s.db);
        if ((rc = drop_db(conn, &s, &q, e)))
            goto out;
    }
    if (role.exists && !role_ours(&s, &role)) {
        prov_log(c, "leaving role %s alone: it is not managed by this resource", s.role);
    } else if (role.exists) {
        prov_log(c, "dropping role %s", s.role);
        rc = drop_role(conn, &s, &q, e);
    }
out:
    if (conn)
        PQfinish(conn);
    quoted_release(&q);
    obj_release(&role);
    obj_release(&db);
    spec_release(&s);
    return rc;
}

const struct provider prov_postgres_database = {
    .type = "postgres.database",
    .summary = "a role and a database per environment on a PostgreSQL server",
    .props = schema,
    .outputs = outputs,
    .check = pd_check,
    .create = pd_create,
    .read = pd_read,
    .update = pd_update,
    .remove = pd_remove,
};

/* val: the typed value tree, its merge rule and its text and JSON forms. */
#include "core/lib/val.h"

#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct val *val_new(enum val_kind k, const struct pos *pos)
{
    struct val *v = xcalloc(1, sizeof *v);
    v->kind = k;
    if (pos)
        v->pos = *pos;
    return v;
}

struct val *val_null(const struct pos *pos)
{
    return val_new(VAL_NULL, pos);
}

struct val *val_bool(bool b, const struct pos *pos)
{
    struct val *v = val_new(VAL_BOOL, pos);
    v->u.b = b;
    return v;
}

struct val *val_int(long long i, const struct pos *pos)
{
    struct val *v = val_new(VAL_INT, pos);
    v->u.i = i;
    return v;
}

struct val *val_float(double f, const struct pos *pos)
{
    struct val *v = val_new(VAL_FLOAT, pos);
    v->u.f = f;
    return v;
}

struct val *val_strn(const char *s, size_t n, const struct pos *pos)
{
    struct val *v = val_new(VAL_STR, pos);
    v->u.str.s = xstrndup(s, n);
    v->u.str.len = n;
    return v;
}

struct val *val_str(const char *s, const struct pos *pos)
{
    return val_strn(s, strlen(s), pos);
}

struct val *val_str_own(char *s, const struct pos *pos)
{
    struct val *v = val_new(VAL_STR, pos);
    v->u.str.s = s;
    v->u.str.len = strlen(s);
    return v;
}

struct val *val_list(const struct pos *pos)
{
    return val_new(VAL_LIST, pos);
}

struct val *val_map(const struct pos *pos)
{
    return val_new(VAL_MAP, pos);
}

struct val *val_unknown(const char *what)
{
    struct val *v = val_new(VAL_UNKNOWN, NULL);
    v->u.str.s = xstrdup(what);
    v->u.str.len = strlen(what);
    return v;
}

void val_free(struct val *v)
{
    if (!v)
        return;
    switch (v->kind) {
    case VAL_STR:
    case VAL_UNKNOWN:
        free(v->u.str.s);
        break;
    case VAL_LIST:
        for (size_t i = 0; i < v->u.list.n; i++)
            val_free(v->u.list.v[i]);
        free(v->u.list.v);
        break;
    case VAL_MAP:
        for (size_t i = 0; i < v->u.map.n; i++) {
            free(v->u.map.e[i].key);
            val_free(v->u.map.e[i].v);
        }
        free(v->u.map.e);
        break;
    default:
        break;
    }
    free(v);
}

struct val *val_clone(const struct val *v)
{
    if (!v)
        return NULL;
    struct val *c = val_new(v->kind, &v->pos);
    c->secret = v->secret;
    c->quoted = v->quoted;
    c->encrypted = v->encrypted;
    c->sealed_json = v->sealed_json;
    switch (v->kind) {
    case VAL_STR:
    case VAL_UNKNOWN:
        c->u.str.s = xstrndup(v->u.str.s, v->u.str.len);
        c->u.str.len = v->u.str.len;
        break;
    case VAL_LIST:
        for (size_t i = 0; i < v->u.list.n; i++)
            val_list_push(c, val_clone(v->u.list.v[i]));
        break;
    case VAL_MAP:
        for (size_t i = 0; i < v->u.map.n; i++)
            val_map_set(c, v->u.map.e[i].key, &v->u.map.e[i].kpos, val_clone(v->u.map.e[i].v));
        break;
    default:
        c->u = v->u;
        break;
    }
    return c;
}

void val_list_push(struct val *l, struct val *item)
{
    XGROW(l->u.list.v, l->u.list.cap, l->u.list.n + 1);
    l->u.list.v[l->u.list.n++] = item;
}

static struct val_entry *map_find(const struct val *m, const char *key)
{
    if (!m || m->kind != VAL_MAP)
        return NULL;
    for (size_t i = 0; i < m->u.map.n; i++)
        if (strcmp(m->u.map.e[i].key, key) == 0)
            return &m->u.map.e[i];
    return NULL;
}

void val_map_set(struct val *m, const char *key, const struct pos *kpos, struct val *item)
{
    struct val_entry *e = map_find(m, key);
    if (e) {
        val_free(e->v);
        e->v = item;
        if (kpos)
            e->kpos = *kpos;
        return;
    }
    XGROW(m->u.map.e, m->u.map.cap, m->u.map.n + 1);
    e = &m->u.map.e[m->u.map.n++];
    e->key = xstrdup(key);
    e->kpos = kpos ? *kpos : (struct pos){0};
    e->v = item;
}

struct val *val_map_get(const struct val *m, const char *key)
{
    struct val_entry *e = map_find(m, key);
    return e ? e->v : NULL;
}

const struct val_entry *val_map_entry(const struct val *m, const char *key)
{
    return map_find(m, key);
}

struct val *val_map_take(struct val *m, const char *key)
{
    struct val_entry *e = map_find(m, key);
    if (!e)
        return NULL;
    struct val *v = e->v;
    free(e->key);
    size_t i = (size_t)(e - m->u.map.e);
    memmove(e, e + 1, (m->u.map.n - i - 1) * sizeof *e);
    m->u.map.n--;
    return v;
}

struct val *val_get(const struct val *v, const char *path)
{
    const char *p = path;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char *k = xstrndup(p, n);
        v = val_map_get(v, k);
        free(k);
        p += n;
        if (*p == '.')
            p++;
    }
    return (struct val *)v;
}

const char *val_map_str(const struct val *m, const char *key, const char *def)
{
    struct val *v = val_map_get(m, key);
    return v && v->kind == VAL_STR ? v->u.str.s : def;
}

long long val_map_int(const struct val *m, const char *key, long long def)
{
    struct val *v = val_map_get(m, key);
    return v && v->kind == VAL_INT ? v->u.i : def;
}

bool val_map_bool(const struct val *m, const char *key, bool def)
{
    struct val *v = val_map_get(m, key);
    return v && v->kind == VAL_BOOL ? v->u.b : def;
}

const char *val_kind_name(enum val_kind k)
{
    static const char *const names[] = {"null", "bool", "int", "float", "string", "list", "map",
                                        "unknown"};
    return (unsigned)k < sizeof names / sizeof *names ? names[k] : "?";
}

bool val_equal(const struct val *a, const struct val *b)
{
    if (!a || !b)
        return a == b;
    if (a->encrypted != b->encrypted || a->sealed_json != b->sealed_json)
        return false; /* a sealed value equals only the same sealed form */
    if (a->kind != b->kind) {
        if ((a->kind == VAL_INT && b->kind == VAL_FLOAT) ||
            (a->kind == VAL_FLOAT && b->kind == VAL_INT)) {
            double x = a->kind == VAL_INT ? (double)a->u.i : a->u.f;
            double y = b->kind == VAL_INT ? (double)b->u.i : b->u.f;
            return x == y;
        }
        return false;
    }
    switch (a->kind) {
    case VAL_NULL:
        return true;
    case VAL_BOOL:
        return a->u.b == b->u.b;
    case VAL_INT:
        return a->u.i == b->u.i;
    case VAL_FLOAT:
        return a->u.f == b->u.f || (isnan(a->u.f) && isnan(b->u.f));
    case VAL_STR:
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
    case VAL_UNKNOWN:
        return false; /* an unknown never equals anything: it may change */
    case VAL_LIST:
        if (a->u.list.n != b->u.list.n)
            return false;
        for (size_t i = 0; i < a->u.list.n; i++)
            if (!val_equal(a->u.list.v[i], b->u.list.v[i]))
                return false;
        return true;
    case VAL_MAP:
        if (a->u.map.n != b->u.map.n)
            return false;
        for (size_t i = 0; i < a->u.map.n; i++) {
            struct val *o = val_map_get(b, a->u.map.e[i].key);
            if (!o || !val_equal(a->u.map.e[i].v, o))
                return false;
        }
        return true;
    }
    return false;
}

bool val_has_unknown(const struct val *v)
{
    if (!v)
        return false;
    if (v->kind == VAL_UNKNOWN)
        return true;
    if (v->kind == VAL_LIST)
        for (size_t i = 0; i < v->u.list.n; i++)
            if (val_has_unknown(v->u.list.v[i]))
                return true;
    if (v->kind == VAL_MAP)
        for (size_t i = 0; i < v->u.map.n; i++)
            if (val_has_unknown(v->u.map.e[i].v))
                return true;
    return false;
}

bool val_has_secret(const struct val *v)
{
    if (!v)
        return false;
    if (v->secret)
        return true;
    if (v->kind == VAL_LIST)
        for (size_t i = 0; i < v->u.list.n; i++)
            if (val_has_secret(v->u.list.v[i]))
                return true;
    if (v->kind == VAL_MAP)
        for (size_t i = 0; i < v->u.map.n; i++)
            if (val_has_secret(v->u.map.e[i].v))
                return true;
    return false;
}

void val_mark_secret(struct val *v)
{
    if (v)
        v->secret = 1;
}

void val_merge(struct val **dst, const struct val *src)
{
    if (!src)
        return;
    if (*dst && (*dst)->kind == VAL_MAP && src->kind == VAL_MAP && !src->secret &&
        !(*dst)->secret) {
        for (size_t i = 0; i < src->u.map.n; i++) {
            const struct val_entry *se = &src->u.map.e[i];
            struct val_entry *de = map_find(*dst, se->key);
            if (de) {
                val_merge(&de->v, se->v);
                de->kpos = se->kpos;
            } else {
                val_map_set(*dst, se->key, &se->kpos, val_clone(se->v));
            }
        }
        (*dst)->pos = src->pos;
        return;
    }
    val_free(*dst);
    *dst = val_clone(src);
}

static void num_text(struct sb *out, const struct val *v)
{
    if (v->kind == VAL_INT) {
        sb_addf(out, "%lld", v->u.i);
        return;
    }
    double f = v->u.f;
    if (isnan(f))
        sb_adds(out, "NaN");
    else if (isinf(f))
        sb_adds(out, f > 0 ? "Infinity" : "-Infinity");
    else {
        char buf[64];
        /* shortest representation that reads back identically */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, f);
            if (strtod(buf, NULL) == f)
                break;
        }
        sb_adds(out, buf);
        if (!strpbrk(buf, ".eE"))
            sb_adds(out, ".0");
    }
}

void val_text(struct sb *out, const struct val *v)
{
    if (!v)
        return;
    switch (v->kind) {
    case VAL_NULL:
        break;
    case VAL_BOOL:
        sb_adds(out, v->u.b ? "true" : "false");
        break;
    case VAL_INT:
    case VAL_FLOAT:
        num_text(out, v);
        break;
    case VAL_STR:
        sb_add(out, v->u.str.s, v->u.str.len);
        break;
    case VAL_UNKNOWN:
        sb_addf(out, "(known after apply: %s)", v->u.str.s);
        break;
    default:
        val_json(out, v, 0);
        break;
    }
}

static void json_rec(struct sb *out, const struct val *v, int flags, int depth, bool canon)
{
    if (!v) {
        sb_adds(out, "null");
        return;
    }
    if (v->secret && (flags & VAL_JSON_MASK)) {
        sb_adds(out, "\"[secret]\"");
        return;
    }
    bool pretty = flags & VAL_JSON_PRETTY;
    if (v->encrypted && v->kind == VAL_STR) {
        sb_adds(out, v->sealed_json ? "{\"$sealed\":" : "{\"$secure\":");
        sb_add_json_str(out, v->u.str.s);
        sb_addc(out, '}');
        return;
    }
    if (v->encrypted && v->kind == VAL_LIST) {
        sb_adds(out, "{\"$concat\":[");
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i)
                sb_addc(out, ',');
            json_rec(out, v->u.list.v[i], flags, depth + 1, canon);
        }
        sb_adds(out, "]}");
        return;
    }
    bool tag = v->secret && (canon || (flags & VAL_JSON_TAGGED));
    if (tag)
        sb_adds(out, "{\"$secret\":");
    switch (v->kind) {
    case VAL_NULL:
        sb_adds(out, "null");
        break;
    case VAL_BOOL:
        sb_adds(out, v->u.b ? "true" : "false");
        break;
    case VAL_INT:
        /* JSON readers (cJSON among them) hold numbers as doubles: an int they
         * cannot hold exactly is stored tagged, as text */
        if ((flags & VAL_JSON_TAGGED) && (v->u.i > 9007199254740992LL || v->u.i < -9007199254740992LL))
            sb_addf(out, "{\"$int\":\"%lld\"}", v->u.i);
        else
            num_text(out, v);
        break;
    case VAL_FLOAT:
        if (isnan(v->u.f) || isinf(v->u.f))
            sb_adds(out, "null");
        else
            num_text(out, v);
        break;
    case VAL_STR:
        sb_add_json_str(out, v->u.str.s);
        break;
    case VAL_UNKNOWN:
        if (flags & VAL_JSON_HUMAN) {
            sb_adds(out, "(known after apply: ");
            sb_adds(out, v->u.str.s);
            sb_addc(out, ')');
            break;
        }
        sb_adds(out, "{\"$unknown\":");
        sb_add_json_str(out, v->u.str.s);
        sb_addc(out, '}');
        break;
    case VAL_LIST:
        sb_addc(out, '[');
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i)
                sb_addc(out, ',');
            if (pretty)
                sb_addf(out, "\n%*s", (depth + 1) * 2, "");
            json_rec(out, v->u.list.v[i], flags, depth + 1, canon);
        }
        if (pretty && v->u.list.n)
            sb_addf(out, "\n%*s", depth * 2, "");
        sb_addc(out, ']');
        break;
    case VAL_MAP: {
        size_t n = v->u.map.n;
        size_t *order = xcalloc(n ? n : 1, sizeof *order);
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        if (canon) /* insertion sort by key: maps are small */
            for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && strcmp(v->u.map.e[order[j - 1]].key,
                                                   v->u.map.e[order[j]].key) > 0;
                     j--) {
                    size_t t = order[j];
                    order[j] = order[j - 1];
                    order[j - 1] = t;
                }
        sb_addc(out, '{');
        for (size_t i = 0; i < n; i++) {
            const struct val_entry *e = &v->u.map.e[order[i]];
            if (i)
                sb_addc(out, ',');
            if (pretty)
                sb_addf(out, "\n%*s", (depth + 1) * 2, "");
            sb_add_json_str(out, e->key);
            sb_adds(out, pretty ? ": " : ":");
            json_rec(out, e->v, flags, depth + 1, canon);
        }
        if (pretty && n)
            sb_addf(out, "\n%*s", depth * 2, "");
        sb_addc(out, '}');
        free(order);
        break;
    }
    }
    if (tag)
        sb_addc(out, '}');
}

void val_json(struct sb *out, const struct val *v, int flags)
{
    json_rec(out, v, flags, 0, false);
}

void val_canon(struct sb *out, const struct val *v)
{
    json_rec(out, v, 0, 0, true);
}

struct cJSON *val_to_cjson(const struct val *v, int flags)
{
    if (!v)
        return cJSON_CreateNull();
    if (v->secret && (flags & VAL_JSON_MASK))
        return cJSON_CreateString("[secret]");
    cJSON *j = NULL;
    if (v->encrypted && (v->kind == VAL_STR || v->kind == VAL_LIST)) {
        j = cJSON_CreateObject();
        if (v->kind == VAL_STR) {
            cJSON_AddStringToObject(j, v->sealed_json ? "$sealed" : "$secure", v->u.str.s);
        } else {
            cJSON *parts = cJSON_CreateArray();
            for (size_t i = 0; i < v->u.list.n; i++)
                cJSON_AddItemToArray(parts, val_to_cjson(v->u.list.v[i], flags));
            cJSON_AddItemToObject(j, "$concat", parts);
        }
        return j;
    }
    switch (v->kind) {
    case VAL_NULL:
        j = cJSON_CreateNull();
        break;
    case VAL_BOOL:
        j = cJSON_CreateBool(v->u.b);
        break;
    case VAL_INT:
        j = cJSON_CreateNumber((double)v->u.i);
        break;
    case VAL_FLOAT:
        j = isnan(v->u.f) || isinf(v->u.f) ? cJSON_CreateNull() : cJSON_CreateNumber(v->u.f);
        break;
    case VAL_STR:
        j = cJSON_CreateString(v->u.str.s);
        break;
    case VAL_UNKNOWN:
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "$unknown", v->u.str.s);
        return j;
    case VAL_LIST:
        j = cJSON_CreateArray();
        for (size_t i = 0; i < v->u.list.n; i++)
            cJSON_AddItemToArray(j, val_to_cjson(v->u.list.v[i], flags));
        break;
    case VAL_MAP:
        j = cJSON_CreateObject();
        for (size_t i = 0; i < v->u.map.n; i++)
            cJSON_AddItemToObject(j, v->u.map.e[i].key, val_to_cjson(v->u.map.e[i].v, flags));
        break;
    }
    if (!j) {
        fprintf(stderr, "prenv: out of memory building JSON\n");
        abort();
    }
    if (v->secret) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddItemToObject(w, "$secret", j);
        return w;
    }
    return j;
}

struct val *val_from_cjson(const cJSON *j)
{
    if (!j)
        return val_null(NULL);
    if (cJSON_IsObject(j) && j->child && !j->child->next && j->child->string) {
        if (strcmp(j->child->string, "$secret") == 0) {
            struct val *v = val_from_cjson(j->child);
            v->secret = 1;
            return v;
        }
        bool secure = strcmp(j->child->string, "$secure") == 0,
             sealed = strcmp(j->child->string, "$sealed") == 0;
        if ((secure || sealed) && cJSON_IsString(j->child)) {
            struct val *v = val_str(j->child->valuestring, NULL);
            v->secret = v->encrypted = 1;
            v->sealed_json = sealed;
            return v;
        }
        if (strcmp(j->child->string, "$concat") == 0 && cJSON_IsArray(j->child)) {
            struct val *l = val_list(NULL);
            l->secret = l->encrypted = 1;
            for (const cJSON *c = j->child->child; c; c = c->next)
                val_list_push(l, val_from_cjson(c));
            return l;
        }
        if (strcmp(j->child->string, "$unknown") == 0 && cJSON_IsString(j->child))
            return val_unknown(j->child->valuestring);
        if (strcmp(j->child->string, "$int") == 0 && cJSON_IsString(j->child)) {
            char *end;
            errno = 0;
            long long i = strtoll(j->child->valuestring, &end, 10);
            if (!errno && !*end)
                return val_int(i, NULL);
        }
    }
    if (cJSON_IsNull(j))
        return val_null(NULL);
    if (cJSON_IsBool(j))
        return val_bool(cJSON_IsTrue(j), NULL);
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            return val_int((long long)d, NULL);
        return val_float(d, NULL);
    }
    if (cJSON_IsString(j))
        return val_str(j->valuestring, NULL);
    if (cJSON_IsArray(j)) {
        struct val *l = val_list(NULL);
        for (const cJSON *c = j->child; c; c = c->next)
            val_list_push(l, val_from_cjson(c));
        return l;
    }
    struct val *m = val_map(NULL);
    for (const cJSON *c = j->child; c; c = c->next)
        val_map_set(m, c->string ? c->string : "", NULL, val_from_cjson(c));
    return m;
}

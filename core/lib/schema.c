/* schema: validation helpers for user-written maps. */
#include "core/lib/schema.h"

#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"

#include <stdlib.h>
#include <string.h>

int schema_map(const struct val *v, const char *what, struct err *e)
{
    if (v->kind != VAL_MAP)
        return err_set(e, PE_CONFIG, &v->pos, "%s must be a map, not a %s", what,
                       val_kind_name(v->kind));
    return 0;
}

int schema_keys(const struct val *map, const char *const *allowed, const char *what,
                struct err *e)
{
    for (size_t i = 0; i < map->u.map.n; i++) {
        const struct val_entry *ent = &map->u.map.e[i];
        bool ok = false;
        for (size_t k = 0; allowed[k]; k++)
            if (!strcmp(allowed[k], ent->key))
                ok = true;
        if (ok)
            continue;
        const char *s = str_closest(ent->key, allowed, (size_t)-1);
        if (s)
            return err_set(e, PE_CONFIG, &ent->kpos, "unknown key '%s' in %s (did you mean '%s'?)",
                           ent->key, what, s);
        err_set(e, PE_CONFIG, &ent->kpos, "unknown key '%s' in %s", ent->key, what);
        struct sb b;
        sb_init(&b);
        for (size_t k = 0; allowed[k]; k++)
            sb_addf(&b, "%s%s", k ? ", " : "", allowed[k]);
        err_hint(e, "%s accepts: %s", what, b.buf);
        sb_release(&b);
        return PE_CONFIG;
    }
    return 0;
}

static const char *article(enum val_kind k)
{
    return k == VAL_INT ? "an" : "a";
}

int schema_kind(const struct val *v, enum val_kind k, const char *key, struct err *e)
{
    if (v->kind == k || (k == VAL_FLOAT && v->kind == VAL_INT))
        return 0;
    int rc = err_set(e, PE_CONFIG, &v->pos, "'%s' is %s %s; expected %s %s", key,
                     article(v->kind), val_kind_name(v->kind), article(k), val_kind_name(k));
    if (k == VAL_BOOL && v->kind == VAL_STR)
        err_hint(e, "write true or false");
    if (k == VAL_STR && v->kind != VAL_STR)
        err_hint(e, "quote the value to make it a string");
    return rc;
}

int schema_str(const struct val *map, const char *key, const char **out, struct err *e)
{
    const struct val *v = val_map_get(map, key);
    if (!v || v->kind == VAL_NULL)
        return 0;
    int rc = schema_kind(v, VAL_STR, key, e);
    if (!rc)
        *out = v->u.str.s;
    return rc;
}

int schema_bool(const struct val *map, const char *key, bool *out, struct err *e)
{
    const struct val *v = val_map_get(map, key);
    if (!v || v->kind == VAL_NULL)
        return 0;
    int rc = schema_kind(v, VAL_BOOL, key, e);
    if (!rc)
        *out = v->u.b;
    return rc;
}

int schema_int(const struct val *map, const char *key, long long lo, long long hi,
               long long *out, struct err *e)
{
    const struct val *v = val_map_get(map, key);
    if (!v || v->kind == VAL_NULL)
        return 0;
    int rc = schema_kind(v, VAL_INT, key, e);
    if (rc)
        return rc;
    if (v->u.i < lo || v->u.i > hi)
        return err_set(e, PE_CONFIG, &v->pos, "'%s' is %lld; it must be between %lld and %lld",
                       key, v->u.i, lo, hi);
    *out = v->u.i;
    return 0;
}

int schema_duration(const struct val *map, const char *key, long long *ms, struct err *e)
{
    const struct val *v = val_map_get(map, key);
    if (!v || v->kind == VAL_NULL)
        return 0;
    if (v->kind != VAL_STR)
        return err_set(e, PE_CONFIG, &v->pos,
                       "'%s' must be a duration such as 8h, 3d or 1h30m, not %s %s", key,
                       article(v->kind), val_kind_name(v->kind));
    const char *why;
    if (!dur_parse(v->u.str.s, ms, &why))
        return err_set(e, PE_CONFIG, &v->pos, "'%s': invalid duration '%s': %s", key,
                       v->u.str.s, why);
    return 0;
}

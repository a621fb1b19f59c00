/* seal: opening and sealing secrets through the hooks envs/secret.c installs. */
#include "core/lib/seal.h"

#include "core/lib/sb.h"

#include <stdlib.h>
#include <string.h>

#define WITHHELD "(secret: no passphrase)"

static const struct seal_hooks *hooks;

void seal_set_hooks(const struct seal_hooks *h)
{
    __atomic_store_n(&hooks, h, __ATOMIC_RELEASE);
}

static const struct seal_hooks *get_hooks(void)
{
    return __atomic_load_n(&hooks, __ATOMIC_ACQUIRE);
}

bool seal_is_withheld(const struct val *v)
{
    return v && v->kind == VAL_UNKNOWN && !strcmp(v->u.str.s, WITHHELD);
}

static int open_leaf(struct val **out, const struct val *v, unsigned flags, struct err *e)
{
    const struct seal_hooks *h = get_hooks();
    struct err le = {0};
    int rc = h && h->open ? h->open(v, flags, out, &le)
                          : err_set(&le, PE_SECRET, &v->pos, "secrets cannot be opened here");
    if (!rc) {
        err_release(&le);
        (*out)->pos = v->pos;
        return 0;
    }
    if (flags & SEAL_NEED) {
        err_move(e, &le);
        return rc;
    }
    err_release(&le);
    *out = val_unknown(WITHHELD);
    (*out)->secret = 1;
    return 0;
}

int seal_open(struct val **out, const struct val *v, unsigned flags, struct err *e)
{
    *out = NULL;
    if (!v)
        return 0;
    if (v->encrypted && v->kind == VAL_STR)
        return open_leaf(out, v, flags, e);
    if (v->encrypted && v->kind == VAL_LIST) {
        /* interpolation: text and sealed parts joined */
        struct sb b;
        sb_init(&b);
        for (size_t i = 0; i < v->u.list.n; i++) {
            struct val *p = NULL;
            int rc = seal_open(&p, v->u.list.v[i], flags, e);
            if (rc) {
                sb_release(&b);
                return rc;
            }
            if (seal_is_withheld(p)) {
                sb_release(&b);
                *out = p;
                return 0;
            }
            if (p->kind != VAL_NULL)
                val_text(&b, p);
            val_free(p);
        }
        *out = val_str_own(sb_steal(&b), &v->pos);
        (*out)->secret = 1;
        return 0;
    }
    if (v->kind == VAL_LIST || v->kind == VAL_MAP) {
        struct val *c = v->kind == VAL_LIST ? val_list(&v->pos) : val_map(&v->pos);
        c->secret = v->secret;
        size_t n = v->kind == VAL_LIST ? v->u.list.n : v->u.map.n;
        for (size_t i = 0; i < n; i++) {
            const struct val *x = v->kind == VAL_LIST ? v->u.list.v[i] : v->u.map.e[i].v;
            struct val *o = NULL;
            int rc = seal_open(&o, x, flags, e);
            if (rc) {
                val_free(c);
                return rc;
            }
            if (v->kind == VAL_LIST)
                val_list_push(c, o);
            else
                val_map_set(c, v->u.map.e[i].key, &v->u.map.e[i].kpos, o);
        }
        *out = c;
        return 0;
    }
    *out = val_clone(v);
    return 0;
}

int seal_close(struct val **v, unsigned flags, struct err *e)
{
    struct val *x = *v;
    if (!x || x->encrypted)
        return 0;
    if (x->secret && x->kind != VAL_UNKNOWN) {
        const struct seal_hooks *h = get_hooks();
        if (!h || !h->seal)
            return 0;
        struct val *s = NULL;
        int rc = h->seal(x, flags, &s, e);
        if (rc == SEAL_OFF)
            return 0;
        if (rc)
            return rc;
        s->pos = x->pos;
        val_free(x);
        *v = s;
        return 0;
    }
    if (x->kind == VAL_LIST)
        for (size_t i = 0; i < x->u.list.n; i++) {
            int rc = seal_close(&x->u.list.v[i], flags, e);
            if (rc)
                return rc;
        }
    if (x->kind == VAL_MAP)
        for (size_t i = 0; i < x->u.map.n; i++) {
            int rc = seal_close(&x->u.map.e[i].v, flags, e);
            if (rc)
                return rc;
        }
    return 0;
}

static bool has(const struct val *v, bool sealed)
{
    if (!v)
        return false;
    if (v->encrypted)
        return sealed;
    if (v->secret && v->kind != VAL_UNKNOWN && !sealed)
        return true;
    if (v->kind == VAL_LIST)
        for (size_t i = 0; i < v->u.list.n; i++)
            if (has(v->u.list.v[i], sealed))
                return true;
    if (v->kind == VAL_MAP)
        for (size_t i = 0; i < v->u.map.n; i++)
            if (has(v->u.map.e[i].v, sealed))
                return true;
    return false;
}

static const struct val *first(const struct val *v, bool want_pos)
{
    if (!v)
        return NULL;
    if (v->encrypted && v->kind == VAL_STR)
        return !want_pos || v->pos.src ? v : NULL;
    size_t n = v->kind == VAL_LIST ? v->u.list.n : v->kind == VAL_MAP ? v->u.map.n : 0;
    for (size_t i = 0; i < n; i++) {
        const struct val *f = first(v->kind == VAL_LIST ? v->u.list.v[i] : v->u.map.e[i].v,
                                    want_pos);
        if (f)
            return f;
    }
    return NULL;
}

const struct val *seal_first(const struct val *v)
{
    const struct val *f = first(v, true);
    return f ? f : first(v, false);
}

bool seal_has_sealed(const struct val *v)
{
    return has(v, true);
}

bool seal_has_plain(const struct val *v)
{
    return has(v, false);
}

/* equal for seal_keep: a withheld secret equals the withheld copy given */
static bool same(const struct val *a, const struct val *b)
{
    if (seal_is_withheld(a) || seal_is_withheld(b))
        return seal_is_withheld(a) && seal_is_withheld(b);
    if (a && b && a->kind == VAL_MAP && b->kind == VAL_MAP) {
        if (a->u.map.n != b->u.map.n)
            return false;
        for (size_t i = 0; i < a->u.map.n; i++)
            if (!same(a->u.map.e[i].v, val_map_get(b, a->u.map.e[i].key)))
                return false;
        return true;
    }
    if (a && b && a->kind == VAL_LIST && b->kind == VAL_LIST && !a->encrypted && !b->encrypted) {
        if (a->u.list.n != b->u.list.n)
            return false;
        for (size_t i = 0; i < a->u.list.n; i++)
            if (!same(a->u.list.v[i], b->u.list.v[i]))
                return false;
        return true;
    }
    return val_equal(a, b);
}

void seal_keep(struct val *fresh, const struct val *stored, const struct val *opened)
{
    if (!fresh || !stored || !opened || fresh->kind != VAL_MAP || stored->kind != VAL_MAP)
        return;
    for (size_t i = 0; i < fresh->u.map.n; i++) {
        struct val_entry *ent = &fresh->u.map.e[i];
        const struct val *st = val_map_get(stored, ent->key);
        const struct val *op = val_map_get(opened, ent->key);
        if (!st || !op || !seal_has_sealed(st))
            continue;
        if (same(ent->v, op)) {
            val_free(ent->v);
            ent->v = val_clone(st);
        }
    }
}

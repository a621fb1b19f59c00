/* expr: parsing and evaluating `${...}` references in strings. */
#include "templates/expr.h"

#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EXPR_MAX_SEGS 32

/* one operand of `A ?? B ?? "c"`: a reference, or a quoted string */
struct operand {
    char *str; /* the quoted string's text (unescaped), or NULL for a reference */
    struct expr_ref ref;
};

struct part {
    char *lit;           /* literal text, or NULL for a `${...}` */
    struct operand *ops; /* the operands of a `${...}`, at least one */
    size_t nops;
};

struct parsed {
    struct part *parts;
    size_t n, cap;
};

static void ref_release(struct expr_ref *r)
{
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i].key);
    free(r->segs);
    free(r->text);
}

static void parsed_release(struct parsed *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->parts[i].lit);
        for (size_t k = 0; k < p->parts[i].nops; k++) {
            free(p->parts[i].ops[k].str);
            ref_release(&p->parts[i].ops[k].ref);
        }
        free(p->parts[i].ops);
    }
    free(p->parts);
}

/* position of byte offset off inside the scalar s */
static struct pos pos_at(const struct val *s, size_t off)
{
    struct pos p = s->pos;
    if (!p.src)
        return p;
    int lines = 0;
    size_t last_nl = 0;
    bool nl = false;
    for (size_t i = 0; i < off && i < s->u.str.len; i++)
        if (s->u.str.s[i] == '\n') {
            lines++;
            last_nl = i + 1;
            nl = true;
        }
    if (nl) {
        p.line += lines + 1; /* block scalars start on the line after the indicator */
        p.col = (int)(off - last_nl) + 1;
        /* find the block's indentation from the source line */
        size_t len;
        const char *l = src_line(p.src, p.line, &len);
        if (l) {
            size_t ind = 0;
            while (ind < len && l[ind] == ' ')
                ind++;
            p.col += (int)ind;
        }
    } else {
        p.col += (int)off + (s->quoted ? 1 : 0);
    }
    return p;
}

static int parse_path(struct expr_ref *r, const char *t, size_t n, const struct pos *at,
                      struct err *e)
{
    size_t i = 0;
    size_t cap = 0;
    while (i < n) {
        if (r->nsegs >= EXPR_MAX_SEGS)
            return err_set(e, PE_CONFIG, at, "reference '${%s}' is too deep", r->text);
        struct expr_seg seg = {NULL, 0};
        if (t[i] == '[') {
            i++;
            if (i < n && (t[i] == '"' || t[i] == '\'')) {
                char q = t[i++];
                size_t st = i;
                while (i < n && t[i] != q)
                    i++;
                if (i >= n || i + 1 >= n || t[i + 1] != ']')
                    return err_set(e, PE_CONFIG, at,
                                   "unterminated [\"key\"] in reference '${%s}'", r->text);
                seg.key = xstrndup(t + st, i - st);
                i += 2;
            } else {
                size_t st = i;
                while (i < n && isdigit((unsigned char)t[i]))
                    i++;
                if (i == st || i >= n || t[i] != ']')
                    return err_set(e, PE_CONFIG, at,
                                   "expected a list index like [0] in reference '${%s}'",
                                   r->text);
                char *num = xstrndup(t + st, i - st);
                long long v;
                bool ok = str_parse_int(num, 0, 1000000, &v);
                free(num);
                if (!ok)
                    return err_set(e, PE_CONFIG, at, "list index too large in '${%s}'", r->text);
                seg.index = v;
                i++;
            }
        } else {
            if (r->nsegs > 0) {
                if (t[i] != '.')
                    return err_set(e, PE_CONFIG, at,
                                   "unexpected '%c' in reference '${%s}' (names may contain "
                                   "letters, digits, '_' and '-')",
                                   t[i], r->text);
                i++;
            }
            size_t st = i;
            if (i < n && (isalpha((unsigned char)t[i]) || t[i] == '_'))
                while (i < n && (isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '-'))
                    i++;
            if (i == st)
                return err_set(e, PE_CONFIG, at, "expected a name in reference '${%s}'",
                               r->text);
            seg.key = xstrndup(t + st, i - st);
        }
        XGROW(r->segs, cap, r->nsegs + 1);
        r->segs[r->nsegs++] = seg;
    }
    if (!r->nsegs)
        return err_set(e, PE_CONFIG, at, "empty reference '${}'");
    if (!r->segs[0].key)
        return err_set(e, PE_CONFIG, at, "reference '${%s}' must start with a name", r->text);
    return 0;
}

static void add_lit(struct parsed *p, const char *s, size_t n)
{
    if (!n)
        return;
    if (p->n && p->parts[p->n - 1].lit) {
        struct part *last = &p->parts[p->n - 1];
        size_t l = strlen(last->lit);
        last->lit = xrealloc(last->lit, l + n + 1);
        memcpy(last->lit + l, s, n);
        last->lit[l + n] = 0;
        return;
    }
    XGROW(p->parts, p->cap, p->n + 1);
    memset(&p->parts[p->n], 0, sizeof p->parts[p->n]);
    p->parts[p->n++].lit = xstrndup(s, n);
}

/* the end of a quoted string starting at t[i] (the quote): the index of the
 * closing quote, or n when there is none; a backslash escapes what follows */
static size_t quote_end(const char *t, size_t n, size_t i)
{
    char q = t[i++];
    while (i < n && t[i] != q)
        i += t[i] == '\\' && i + 1 < n ? 2 : 1;
    return i;
}

/* where the `${` body starting at t[i] ends: the index of its `}` outside
 * quotes, or n */
static size_t body_end(const char *t, size_t n, size_t i)
{
    while (i < n && t[i] != '}') {
        if (t[i] == '"' || t[i] == '\'') {
            i = quote_end(t, n, i);
            if (i >= n)
                return n;
        }
        i++;
    }
    return i;
}

/* does t[0..n) hold a '?' outside quotes (a `??` mistyped)? */
static bool bare_question(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '"' || t[i] == '\'')
            i = quote_end(t, n, i);
        else if (t[i] == '?')
            return true;
    }
    return false;
}

/* the quoted string t[0..n) (quotes included) into *out, escapes undone */
static int parse_string(char **out, const char *t, size_t n, const char *whole,
                        const struct pos *at, struct err *e)
{
    size_t end = quote_end(t, n, 0);
    if (end >= n)
        return err_set(e, PE_CONFIG, at, "unterminated string in '${%s}'", whole);
    if (end + 1 != n)
        return err_set(e, PE_CONFIG, at,
                       "unexpected text after the string in '${%s}' (operands are joined "
                       "with '?\?')",
                       whole);
    struct sb b;
    sb_init(&b);
    for (size_t i = 1; i < end; i++) {
        if (t[i] == '\\') {
            i++;
            if (t[i] != '\\' && t[i] != '"' && t[i] != '\'') {
                sb_release(&b);
                return err_set(e, PE_CONFIG, at,
                               "unknown escape '\\%c' in '${%s}' (strings know \\\\, \\\" "
                               "and \\')",
                               t[i], whole);
            }
        }
        sb_addc(&b, t[i]);
    }
    *out = sb_steal(&b);
    return 0;
}

/* the body of one `${...}`, t[a..b) trimmed, at byte offset a of s: split at
 * `??` outside quotes into operands */
static int parse_body(struct part *pt, const struct val *s, size_t a, size_t b,
                      const struct pos *dollar, struct err *e)
{
    const char *t = s->u.str.s;
    char *whole = xstrndup(t + a, b - a);
    size_t cap = 0;
    int rc = 0;
    for (size_t i = a; !rc;) {
        size_t j = i;
        while (j < b && !(t[j] == '?' && j + 1 < b && t[j + 1] == '?')) {
            if (t[j] == '"' || t[j] == '\'')
                j = quote_end(t, b, j);
            j += j < b;
        }
        size_t oa = i, ob = j;
        while (oa < ob && isspace((unsigned char)t[oa]))
            oa++;
        while (ob > oa && isspace((unsigned char)t[ob - 1]))
            ob--;
        bool last = j >= b;
        struct pos at = pt->nops ? pos_at(s, oa) : *dollar;
        XGROW(pt->ops, cap, pt->nops + 1);
        struct operand *op = &pt->ops[pt->nops++];
        memset(op, 0, sizeof *op);
        op->ref.text = xstrndup(t + oa, ob - oa);
        op->ref.pos = at;
        op->ref.optional = !last;
        if (oa == ob && (pt->nops > 1 || !last))
            rc = err_set(e, PE_CONFIG, &at,
                         pt->nops > 1 ? "expected a reference or a quoted string after '?\?' "
                                        "in '${%s}'"
                                      : "expected a reference before '?\?' in '${%s}'",
                         whole);
        else if (t[oa] == '"' || t[oa] == '\'') {
            if (pt->nops == 1)
                rc = err_set(e, PE_CONFIG, &at,
                             "'${%s}' must start with a reference; a quoted string is only a "
                             "default after '?\?'",
                             whole);
            else if (!last)
                rc = err_set(e, PE_CONFIG, &at,
                             "'?\?' after a string in '${%s}': a string always exists, so what "
                             "follows is never used",
                             whole);
            else
                rc = parse_string(&op->str, t + oa, ob - oa, whole, &at, e);
        } else if (bare_question(t + oa, ob - oa))
            rc = err_set(e, PE_CONFIG, &at,
                         "unexpected '?' in '${%s}' (a default is written A ?\? B)", whole);
        else
            rc = parse_path(&op->ref, t + oa, ob - oa, &at, e);
        if (last)
            break;
        i = j + 2;
    }
    free(whole);
    return rc;
}

static int parse_str(struct parsed *p, const struct val *s, struct err *e)
{
    const char *t = s->u.str.s;
    size_t n = s->u.str.len, i = 0, lit = 0;
    memset(p, 0, sizeof *p);
    while (i < n) {
        if (t[i] == '$' && i + 2 < n && t[i + 1] == '$' && t[i + 2] == '{') {
            add_lit(p, t + lit, i - lit);
            add_lit(p, "${", 2);
            i += 3;
            lit = i;
            continue;
        }
        if (t[i] == '$' && i + 1 < n && t[i + 1] == '{') {
            struct pos at = pos_at(s, i);
            size_t j = body_end(t, n, i + 2);
            if (j >= n) {
                parsed_release(p);
                return err_set(e, PE_CONFIG, &at, "unterminated '${' (missing '}')");
            }
            add_lit(p, t + lit, i - lit);
            size_t a = i + 2, b = j;
            while (a < b && isspace((unsigned char)t[a]))
                a++;
            while (b > a && isspace((unsigned char)t[b - 1]))
                b--;
            XGROW(p->parts, p->cap, p->n + 1);
            struct part *pt = &p->parts[p->n++];
            memset(pt, 0, sizeof *pt);
            int rc = parse_body(pt, s, a, b, &at, e);
            if (rc) {
                parsed_release(p);
                return rc;
            }
            i = j + 1;
            lit = i;
            continue;
        }
        i++;
    }
    add_lit(p, t + lit, n - lit);
    return 0;
}

bool expr_has_refs(const char *s)
{
    for (const char *p = s; (p = strchr(p, '$')); p++) {
        if (p[1] == '{')
            return true;
        if (p[1] == '$')
            p++;
    }
    return false;
}

char *expr_ref_path(const struct expr_ref *ref, size_t from)
{
    struct sb b;
    sb_init(&b);
    for (size_t i = from; i < ref->nsegs; i++) {
        if (ref->segs[i].key) {
            if (i > from)
                sb_addc(&b, '.');
            sb_adds(&b, ref->segs[i].key);
        } else {
            sb_addf(&b, "[%lld]", ref->segs[i].index);
        }
    }
    return sb_steal(&b);
}

int expr_walk(struct val **out, const struct val *root, const struct expr_ref *ref, size_t from,
              const char *what, struct err *e)
{
    const struct val *v = root;
    for (size_t i = from; i < ref->nsegs; i++) {
        const struct expr_seg *sg = &ref->segs[i];
        if (v->kind == VAL_UNKNOWN)
            break;
        if (v->encrypted)
            return err_set(e, PE_CONFIG, &ref->pos,
                           "in '${%s}': cannot look inside an encrypted secret; refer to the "
                           "whole value",
                           ref->text);
        if (sg->key) {
            if (v->kind != VAL_MAP) {
                char *sofar = expr_ref_path(ref, 0);
                int rc = err_set(e, PE_CONFIG, &ref->pos,
                                 "in '${%s}': cannot take '.%s' of a %s", ref->text, sg->key,
                                 val_kind_name(v->kind));
                free(sofar);
                return rc;
            }
            const struct val *nx = val_map_get(v, sg->key);
            if (!nx) {
                const char **keys = xcalloc(v->u.map.n + 1, sizeof *keys);
                for (size_t k = 0; k < v->u.map.n; k++)
                    keys[k] = v->u.map.e[k].key;
                const char *s = str_closest(sg->key, keys, v->u.map.n);
                int rc;
                if (s)
                    rc = err_set(e, PE_MISSING, &ref->pos,
                                 "unknown %s key '%s' in '${%s}' (did you mean '%s'?)", what,
                                 sg->key, ref->text, s);
                else
                    rc = err_set(e, PE_MISSING, &ref->pos, "unknown %s key '%s' in '${%s}'",
                                 what, sg->key, ref->text);
                free(keys);
                return rc;
            }
            v = nx;
        } else {
            if (v->kind != VAL_LIST)
                return err_set(e, PE_CONFIG, &ref->pos, "in '${%s}': cannot index a %s",
                               ref->text, val_kind_name(v->kind));
            if ((size_t)sg->index >= v->u.list.n)
                return err_set(e, PE_MISSING, &ref->pos,
                               "in '${%s}': index %lld is out of range (the list has %zu items)",
                               ref->text, sg->index, v->u.list.n);
            v = v->u.list.v[sg->index];
        }
    }
    *out = val_clone(v);
    if (root->secret)
        (*out)->secret = 1;
    return 0;
}

/* the value of one `${...}`: its first operand that exists. A PE_MISSING
 * that no `??` catches becomes PE_CONFIG, so a missing value inside a config
 * value that A refers to is an error, not a reason to use B. */
static int eval_part(struct val **out, const char **which, const struct part *pt,
                     expr_lookup_fn lookup, void *ctx, struct err *e)
{
    for (size_t k = 0; k < pt->nops; k++) {
        const struct operand *op = &pt->ops[k];
        *which = op->ref.text;
        if (op->str) {
            *out = val_str(op->str, NULL);
            return 0;
        }
        *out = NULL;
        int rc = lookup(ctx, &op->ref, out, e);
        if (!rc)
            return 0;
        val_free(*out);
        *out = NULL;
        if (rc == PE_MISSING && e->code == PE_MISSING && op->ref.optional) {
            err_release(e);
            continue;
        }
        if (e->code == PE_MISSING)
            e->code = PE_CONFIG;
        return rc == PE_MISSING ? PE_CONFIG : rc;
    }
    return err_set(e, PE_INTERNAL, NULL, "empty reference chain"); /* not reached */
}

static int eval_str(struct val **out, const struct val *s, expr_lookup_fn lookup, void *ctx,
                    struct err *e)
{
    if (!expr_has_refs(s->u.str.s) && !strstr(s->u.str.s, "$${")) {
        *out = val_clone(s);
        return 0;
    }
    struct parsed p;
    int rc = parse_str(&p, s, e);
    if (rc)
        return rc;
    if (p.n == 1 && !p.parts[0].lit) {
        struct val *v = NULL;
        const char *which;
        rc = eval_part(&v, &which, &p.parts[0], lookup, ctx, e);
        if (!rc) {
            if (s->secret)
                v->secret = 1;
            /* a value from a file keeps its own position (a type error then
             * points at the config line); anything else points here */
            if (!v->pos.src)
                v->pos = s->pos;
            *out = v;
        }
        parsed_release(&p);
        return rc;
    }
    struct sb b;
    sb_init(&b);
    bool secret = s->secret, unknown = false;
    struct val *cat = NULL; /* set once a part is sealed */
    struct sb waits;
    sb_init(&waits);
    for (size_t i = 0; i < p.n && !rc; i++) {
        if (p.parts[i].lit) {
            sb_adds(&b, p.parts[i].lit);
            continue;
        }
        struct val *v = NULL;
        const char *which = NULL;
        rc = eval_part(&v, &which, &p.parts[i], lookup, ctx, e);
        if (rc)
            break;
        if (v->secret)
            secret = true;
        if (val_has_unknown(v)) {
            unknown = true;
            sb_addf(&waits, "%s%s", waits.len ? ", " : "", which);
        } else if (v->encrypted) {
            /* a sealed secret is not opened here: the result is the sealed
             * concatenation of the text so far, it and what follows */
            if (!cat) {
                cat = val_list(&s->pos);
                cat->secret = cat->encrypted = 1;
            }
            if (b.len)
                val_list_push(cat, val_strn(b.buf, b.len, &s->pos));
            sb_reset(&b);
            if (v->kind == VAL_LIST)
                for (size_t k = 0; k < v->u.list.n; k++)
                    val_list_push(cat, val_clone(v->u.list.v[k]));
            else
                val_list_push(cat, val_clone(v));
        } else if (v->kind == VAL_NULL) {
            /* null interpolates as empty text */
        } else {
            val_text(&b, v);
        }
        val_free(v);
    }
    parsed_release(&p);
    if (!rc && cat && !unknown) {
        if (b.len)
            val_list_push(cat, val_strn(b.buf, b.len, &s->pos));
        *out = cat;
        cat = NULL;
    } else if (!rc) {
        struct val *r = unknown ? val_unknown(waits.buf) : val_strn(b.buf, b.len, &s->pos);
        r->pos = s->pos;
        r->secret = secret;
        *out = r;
    }
    val_free(cat);
    sb_release(&b);
    sb_release(&waits);
    return rc;
}

int expr_eval(struct val **out, const struct val *v, expr_lookup_fn lookup, void *ctx,
              struct err *e)
{
    *out = NULL;
    if (v->kind == VAL_STR && !v->encrypted)
        return eval_str(out, v, lookup, ctx, e);
    if (v->kind == VAL_LIST) {
        struct val *l = val_list(&v->pos);
        l->secret = v->secret;
        for (size_t i = 0; i < v->u.list.n; i++) {
            struct val *x;
            int rc = expr_eval(&x, v->u.list.v[i], lookup, ctx, e);
            if (rc) {
                val_free(l);
                return rc;
            }
            val_list_push(l, x);
        }
        *out = l;
        return 0;
    }
    if (v->kind == VAL_MAP) {
        struct val *m = val_map(&v->pos);
        m->secret = v->secret;
        for (size_t i = 0; i < v->u.map.n; i++) {
            struct val *x;
            int rc = expr_eval(&x, v->u.map.e[i].v, lookup, ctx, e);
            if (rc) {
                val_free(m);
                return rc;
            }
            val_map_set(m, v->u.map.e[i].key, &v->u.map.e[i].kpos, x);
        }
        *out = m;
        return 0;
    }
    *out = val_clone(v);
    return 0;
}

int expr_visit(const struct val *v, expr_visit_fn visit, void *ctx, struct err *e)
{
    if (v->kind == VAL_STR && !v->encrypted) {
        if (!expr_has_refs(v->u.str.s))
            return 0;
        struct parsed p;
        int rc = parse_str(&p, v, e);
        if (rc)
            return rc;
        for (size_t i = 0; !rc && i < p.n; i++)
            for (size_t k = 0; !rc && k < p.parts[i].nops; k++)
                if (!p.parts[i].ops[k].str)
                    rc = visit(ctx, &p.parts[i].ops[k].ref, e);
        parsed_release(&p);
        return rc;
    }
    if (v->kind == VAL_LIST)
        for (size_t i = 0; i < v->u.list.n; i++) {
            int rc = expr_visit(v->u.list.v[i], visit, ctx, e);
            if (rc)
                return rc;
        }
    if (v->kind == VAL_MAP)
        for (size_t i = 0; i < v->u.map.n; i++) {
            int rc = expr_visit(v->u.map.e[i].v, visit, ctx, e);
            if (rc)
                return rc;
        }
    return 0;
}

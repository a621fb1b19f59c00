/* yt: libyaml event stream to a val tree with positions. */
#include "core/lib/yt.h"

#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YT_MAX_DEPTH 64
#define YT_MAX_NODES 1000000

struct anchor {
    char *name;
    struct val *v;
};

struct ytp {
    yaml_parser_t p;
    const struct src *src;
    struct err *e;
    struct anchor *anchors;
    size_t nanchors, canchors;
    size_t nodes;
};

static struct pos mark_pos(const struct ytp *y, yaml_mark_t m)
{
    return (struct pos){y->src, (int)m.line + 1, (int)m.column + 1};
}

static bool is_digits(const char *s, const char *set)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

struct val *yt_scalar(const char *t, const struct pos *pos)
{
    if (!*t || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") || !strcmp(t, "NULL"))
        return val_null(pos);
    if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE"))
        return val_bool(true, pos);
    if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE"))
        return val_bool(false, pos);
    const char *d = t;
    if (*d == '-' || *d == '+')
        d++;
    int base = 0;
    const char *digits = d;
    if (is_digits(d, "0123456789"))
        base = 10;
    else if (d == t && !strncmp(d, "0x", 2) && is_digits(d + 2, "0123456789abcdefABCDEF"))
        base = 16, digits = d + 2;
    else if (d == t && !strncmp(d, "0o", 2) && is_digits(d + 2, "01234567"))
        base = 8, digits = d + 2;
    if (base) {
        errno = 0;
        long long i = strtoll(base == 10 ? t : digits, NULL, base);
        if (errno == 0)
            return val_int(i, pos);
        /* out of range integers stay strings rather than silently wrapping */
        return val_str(t, pos);
    }
    if (!strcmp(t, ".inf") || !strcmp(t, ".Inf") || !strcmp(t, ".INF") || !strcmp(t, "+.inf"))
        return val_float(INFINITY, pos);
    if (!strcmp(t, "-.inf") || !strcmp(t, "-.Inf") || !strcmp(t, "-.INF"))
        return val_float(-INFINITY, pos);
    if (!strcmp(t, ".nan") || !strcmp(t, ".NaN") || !strcmp(t, ".NAN"))
        return val_float(NAN, pos);
    /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
    const char *p = d;
    size_t ip = strspn(p, "0123456789");
    p += ip;
    size_t fp = 0;
    if (*p == '.') {
        p++;
        fp = strspn(p, "0123456789");
        p += fp;
    }
    if ((ip || fp) && (p > d)) {
        if (*p == 'e' || *p == 'E') {
            const char *q = p + 1;
            if (*q == '+' || *q == '-')
                q++;
            size_t ep = strspn(q, "0123456789");
            p = ep ? q + ep : p;
        }
        if (!*p && (ip || fp) && (strchr(d, '.') || strpbrk(d, "eE")))
            return val_float(strtod(t, NULL), pos);
    }
    return val_str(t, pos);
}

static int parse_node(struct ytp *y, yaml_event_t *ev, struct val **out, int depth);

static bool blank_line(const struct src *s, int line)
{
    size_t n;
    const char *l = src_line(s, line, &n);
    if (!l)
        return true;
    for (size_t i = 0; i < n; i++)
        if (l[i] != ' ' && l[i] != '\t')
            return false;
    return true;
}

static int next_event(struct ytp *y, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&y->p, ev)) {
        struct pos at = {y->src, (int)y->p.problem_mark.line + 1,
                         (int)y->p.problem_mark.column + 1};
        /* at the end of the input the construct's start says more */
        if (y->p.context && blank_line(y->src, at.line))
            at = (struct pos){y->src, (int)y->p.context_mark.line + 1,
                              (int)y->p.context_mark.column + 1};
        const char *ctx = y->p.context ? y->p.context : NULL;
        if (ctx)
            return err_set(y->e, PE_CONFIG, &at, "invalid YAML: %s %s", y->p.problem, ctx);
        return err_set(y->e, PE_CONFIG, &at, "invalid YAML: %s",
                       y->p.problem ? y->p.problem : "syntax error");
    }
    return 0;
}

static void add_anchor(struct ytp *y, const char *name, const struct val *v)
{
    XGROW(y->anchors, y->canchors, y->nanchors + 1);
    y->anchors[y->nanchors].name = xstrdup(name);
    y->anchors[y->nanchors].v = val_clone(v);
    y->nanchors++;
}

static size_t count_nodes(const struct val *v)
{
    size_t n = 1;
    if (v->kind == VAL_LIST)
        for (size_t i = 0; i < v->u.list.n; i++)
            n += count_nodes(v->u.list.v[i]);
    if (v->kind == VAL_MAP)
        for (size_t i = 0; i < v->u.map.n; i++)
            n += count_nodes(v->u.map.e[i].v);
    return n;
}

static int parse_mapping(struct ytp *y, yaml_event_t *start, struct val **out, int depth)
{
    struct pos at = mark_pos(y, start->start_mark);
    struct val *m = val_map(&at);
    char *anchor = start->data.mapping_start.anchor
                       ? xstrdup((char *)start->data.mapping_start.anchor)
                       : NULL;
    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if ((rc = next_event(y, &ev)))
            break;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        struct pos kpos = mark_pos(y, ev.start_mark);
        if (ev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&ev);
            rc = err_set(y->e, PE_CONFIG, &kpos, "map keys must be plain strings");
            break;
        }
        char *key = xstrndup((char *)ev.data.scalar.value, ev.data.scalar.length);
        if (strlen(key) != ev.data.scalar.length) {
            yaml_event_delete(&ev);
            free(key);
            rc = err_set(y->e, PE_CONFIG, &kpos, "map key contains a NUL character");
            break;
        }
        yaml_event_delete(&ev);
        if (!strcmp(key, "<<")) {
            free(key);
            rc = err_set(y->e, PE_CONFIG, &kpos,
                         "YAML merge keys ('<<') are not supported");
            err_hint(y->e, "use config layering with 'imports:' instead");
            break;
        }
        if (val_map_get(m, key)) {
            const struct val_entry *prev = val_map_entry(m, key);
            rc = err_set(y->e, PE_CONFIG, &kpos, "duplicate key '%s' (first defined on line %d)",
                         key, prev->kpos.line);
            free(key);
            break;
        }
        yaml_event_t vev;
        if ((rc = next_event(y, &vev))) {
            free(key);
            break;
        }
        struct val *v = NULL;
        rc = parse_node(y, &vev, &v, depth + 1);
        yaml_event_delete(&vev);
        if (rc) {
            free(key);
            break;
        }
        val_map_set(m, key, &kpos, v);
        free(key);
    }
    if (rc) {
        val_free(m);
        free(anchor);
        return rc;
    }
    /* {secure: "v1:..."} is an encrypted secret leaf */
    if (m->u.map.n == 1 && !strcmp(m->u.map.e[0].key, "secure")) {
        struct val *s = m->u.map.e[0].v;
        if (s->kind != VAL_STR) {
            rc = err_set(y->e, PE_CONFIG, &s->pos, "'secure' must hold an encrypted string");
            val_free(m);
            free(anchor);
            return rc;
        }
        struct val *sv = val_map_take(m, "secure");
        sv->secret = 1;
        sv->encrypted = 1;
        sv->pos = m->pos;
        val_free(m);
        m = sv;
    }
    if (anchor)
        add_anchor(y, anchor, m);
    free(anchor);
    *out = m;
    return 0;
}

static int parse_sequence(struct ytp *y, yaml_event_t *start, struct val **out, int depth)
{
    struct pos at = mark_pos(y, start->start_mark);
    struct val *l = val_list(&at);
    char *anchor = start->data.sequence_start.anchor
                       ? xstrdup((char *)start->data.sequence_start.anchor)
                       : NULL;
    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if ((rc = next_event(y, &ev)))
            break;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        struct val *v = NULL;
        rc = parse_node(y, &ev, &v, depth + 1);
        yaml_event_delete(&ev);
        if (rc)
            break;
        val_list_push(l, v);
    }
    if (rc) {
        val_free(l);
        free(anchor);
        return rc;
    }
    if (anchor)
        add_anchor(y, anchor, l);
    free(anchor);
    *out = l;
    return 0;
}

static int parse_node(struct ytp *y, yaml_event_t *ev, struct val **out, int depth)
{
    struct pos at = mark_pos(y, ev->start_mark);
    if (depth > YT_MAX_DEPTH)
        return err_set(y->e, PE_LIMIT, &at, "YAML nested deeper than %d levels", YT_MAX_DEPTH);
    if (++y->nodes > YT_MAX_NODES)
        return err_set(y->e, PE_LIMIT, &at, "YAML document has more than %d nodes", YT_MAX_NODES);
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        const char *text = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        if (strlen(text) != len)
            return err_set(y->e, PE_CONFIG, &at, "scalar contains a NUL character");
        const char *tag = (const char *)ev->data.scalar.tag;
        struct val *v;
        bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (tag && !strcmp(tag, YAML_STR_TAG))
            v = val_strn(text, len, &at);
        else if (tag && strcmp(tag, "!") != 0 && plain) {
            if (!strcmp(tag, YAML_INT_TAG) || !strcmp(tag, YAML_FLOAT_TAG) ||
                !strcmp(tag, YAML_BOOL_TAG) || !strcmp(tag, YAML_NULL_TAG)) {
                v = yt_scalar(text, &at);
            } else {
                return err_set(y->e, PE_CONFIG, &at, "unsupported YAML tag '%s'", tag);
            }
        } else if (plain)
            v = yt_scalar(text, &at);
        else
            v = val_strn(text, len, &at);
        if (!plain && (ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                       ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE))
            v->quoted = 1;
        if (ev->data.scalar.anchor)
            add_anchor(y, (const char *)ev->data.scalar.anchor, v);
        *out = v;
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT:
        return parse_sequence(y, ev, out, depth);
    case YAML_MAPPING_START_EVENT:
        return parse_mapping(y, ev, out, depth);
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        for (size_t i = y->nanchors; i-- > 0;)
            if (!strcmp(y->anchors[i].name, name)) {
                size_t n = count_nodes(y->anchors[i].v);
                if (n > YT_MAX_NODES - y->nodes)
                    return err_set(y->e, PE_LIMIT, &at,
                                   "alias '*%s' expands beyond %d nodes", name, YT_MAX_NODES);
                y->nodes += n;
                *out = val_clone(y->anchors[i].v);
                return 0;
            }
        return err_set(y->e, PE_CONFIG, &at, "unknown alias '*%s'", name);
    }
    default:
        return err_set(y->e, PE_CONFIG, &at, "unexpected YAML event");
    }
}

int yt_parse(struct val **out, const struct src *src, struct err *e)
{
    struct ytp y = {.src = src, .e = e};
    *out = NULL;
    if (!yaml_parser_initialize(&y.p))
        return err_set(e, PE_INTERNAL, NULL, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&y.p, (const unsigned char *)src->text, src->len);
    int rc = 0;
    struct val *doc = NULL;
    int ndocs = 0;
    for (;;) {
        yaml_event_t ev;
        if ((rc = next_event(&y, &ev)))
            break;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT) {
            struct pos at = mark_pos(&y, ev.start_mark);
            yaml_event_delete(&ev);
            if (++ndocs > 1) {
                rc = err_set(e, PE_CONFIG, &at, "more than one YAML document in this file");
                break;
            }
            yaml_event_t nev;
            if ((rc = next_event(&y, &nev)))
                break;
            if (nev.type == YAML_DOCUMENT_END_EVENT) {
                yaml_event_delete(&nev);
                continue;
            }
            rc = parse_node(&y, &nev, &doc, 0);
            yaml_event_delete(&nev);
            if (rc)
                break;
            continue;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&y.p);
    for (size_t i = 0; i < y.nanchors; i++) {
        free(y.anchors[i].name);
        val_free(y.anchors[i].v);
    }
    free(y.anchors);
    if (rc) {
        val_free(doc);
        return rc;
    }
    if (!doc) {
        struct pos at = {src, 1, 1};
        doc = val_null(&at);
    }
    *out = doc;
    return 0;
}

int yt_load(struct val **out, const char *path, const char *display, struct err *e)
{
    const struct src *s;
    int rc = src_load(&s, path, display, YT_MAX_FILE, e);
    if (rc)
        return rc;
    return yt_parse(out, s, e);
}

/* cfgedit: line-level edits of config layer files. */
#include "envs/cfgedit.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/val.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"

#include <ctype.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16

/* the text split into lines (each without its newline) */
struct lines {
    char **v;
    size_t n, cap;
};

static void lines_split(struct lines *L, const char *text)
{
    memset(L, 0, sizeof *L);
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        XGROW(L->v, L->cap, L->n + 1);
        L->v[L->n++] = xstrndup(p, n);
        p += n + (nl ? 1 : 0);
    }
}

static void lines_release(struct lines *L)
{
    for (size_t i = 0; i < L->n; i++)
        free(L->v[i]);
    free(L->v);
}

static char *lines_join(const struct lines *L)
{
    struct sb b;
    sb_init(&b);
    for (size_t i = 0; i < L->n; i++) {
        sb_adds(&b, L->v[i]);
        sb_addc(&b, '\n');
    }
    return sb_steal(&b);
}

/* insert text (one or more lines, newline-terminated) before line index at */
static void lines_insert(struct lines *L, size_t at, const char *text)
{
    struct lines add;
    lines_split(&add, text);
    XGROW(L->v, L->cap, L->n + add.n);
    memmove(L->v + at + add.n, L->v + at, (L->n - at) * sizeof *L->v);
    for (size_t i = 0; i < add.n; i++)
        L->v[at + i] = add.v[i];
    L->n += add.n;
    free(add.v);
}

static void lines_delete(struct lines *L, size_t from, size_t to /* exclusive */)
{
    for (size_t i = from; i < to; i++)
        free(L->v[i]);
    memmove(L->v + from, L->v + to, (L->n - to) * sizeof *L->v);
    L->n -= to - from;
}

static int indent_of(const char *s)
{
    int i = 0;
    while (s[i] == ' ')
        i++;
    return i;
}

static bool blank_or_comment(const char *s)
{
    s += indent_of(s);
    return !*s || *s == '#';
}

/* the line after the last line of the block entry whose key is on line
 * index k at indentation ind: more-indented lines (and blank or comment
 * lines among them) belong to it */
static size_t entry_end(const struct lines *L, size_t k, int ind)
{
    size_t last = k;
    for (size_t i = k + 1; i < L->n; i++) {
        if (blank_or_comment(L->v[i]))
            continue;
        if (indent_of(L->v[i]) <= ind)
            break;
        last = i;
    }
    return last + 1;
}

char *cfgedit_scalar(const char *s)
{
    bool plain = *s && strlen(s) < 200 && (isalnum((unsigned char)s[0]) || s[0] == '_');
    for (const char *p = s; plain && *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("./-_+=", *p))
            plain = false;
    if (plain) {
        struct val *v = yt_scalar(s, NULL);
        plain = v->kind == VAL_STR && !strcmp(v->u.str.s, s);
        val_free(v);
    }
    if (plain)
        return xstrdup(s);
    struct sb b;
    sb_init(&b);
    sb_add_json_str(&b, s); /* JSON strings are YAML double-quoted scalars */
    return sb_steal(&b);
}

static void entry_text(struct sb *b, int ind, const char *key, const struct cfgedit_value *v)
{
    if (v->secure)
        sb_addf(b, "%*s%s:\n%*ssecure: %s\n", ind, "", key, ind + 2, "", v->secure);
    else
        sb_addf(b, "%*s%s: %s\n", ind, "", key, v->yaml);
}

static int split_key(char ***segs, size_t *n, const char *key, struct err *e)
{
    *segs = NULL;
    *n = 0;
    size_t cap = 0;
    const char *p = key;
    for (;;) {
        const char *dot = strchr(p, '.');
        char *s = dot ? xstrndup(p, (size_t)(dot - p)) : xstrdup(p);
        XGROW(*segs, cap, *n + 1);
        (*segs)[(*n)++] = s;
        if (!str_is_ident(s) || *n > MAX_DEPTH) {
            for (size_t i = 0; i < *n; i++)
                free((*segs)[i]);
            free(*segs);
            err_set(e, PE_USAGE, NULL, "invalid config key '%s': use names of letters, digits, "
                                       "'_' and '-' joined by '.'",
                    key);
            return PE_USAGE;
        }
        if (!dot)
            return 0;
        p = dot + 1;
    }
}

static void segs_free(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

/* a key written in block style: only spaces before it on its line */
static int check_block(const struct lines *L, const struct pos *kp, const char *name,
                       const char *key, struct err *e)
{
    size_t li = (size_t)kp->line - 1;
    if (li >= L->n || indent_of(L->v[li]) != kp->col - 1)
        return err_set(e, PE_CONFIG, kp,
                       "cannot edit '%s' in %s: it is inside a flow-style map ({...}); write "
                       "that map in block style (one key per line) first",
                       key, name);
    return 0;
}

static int reparse(const char *text, const char *name, struct err *e)
{
    struct val *doc = NULL;
    struct err pe = {0};
    int rc = yt_parse(&doc, src_add(name, text, strlen(text)), &pe);
    val_free(doc);
    if (rc) {
        err_set(e, PE_INTERNAL, NULL, "editing %s would make it unreadable (%s); nothing was "
                                      "written",
                name, pe.msg ? pe.msg : "?");
        err_release(&pe);
    }
    return rc;
}

static int load(struct val **doc, struct lines *L, const char *text, const char *name,
                struct err *e)
{
    *doc = NULL;
    int rc = yt_parse(doc, src_add(name, text, strlen(text)), e);
    if (rc)
        return rc;
    if ((*doc)->kind != VAL_NULL && (*doc)->kind != VAL_MAP) {
        rc = err_set(e, PE_CONFIG, &(*doc)->pos, "%s is not a map with 'values:'", name);
        val_free(*doc);
        *doc = NULL;
        return rc;
    }
    lines_split(L, text);
    return 0;
}

int cfgedit_set(char **out, const char *text, const char *name, const char *key,
                const struct cfgedit_value *v, struct err *e)
{
    *out = NULL;
    char **segs;
    size_t ns;
    int rc = split_key(&segs, &ns, key, e);
    if (rc)
        return rc;
    struct val *doc = NULL;
    struct lines L;
    if ((rc = load(&doc, &L, text, name, e))) {
        segs_free(segs, ns);
        return rc;
    }
    struct sb add;
    sb_init(&add);
    const struct val_entry *ve = doc->kind == VAL_MAP ? val_map_entry(doc, "values") : NULL;
    size_t at;
    if (!ve) {
        /* no values: yet: append the whole path */
        at = L.n;
        sb_adds(&add, "values:\n");
        for (size_t i = 0; i + 1 < ns; i++)
            sb_addf(&add, "%*s%s:\n", (int)(2 * (i + 1)), "", segs[i]);
        entry_text(&add, (int)(2 * ns), segs[ns - 1], v);
        goto insert;
    }
    if ((rc = check_block(&L, &ve->kpos, name, "values", e)))
        goto out;
    /* walk down as far as the maps exist */
    const struct val_entry *parent = ve;
    int pind = ve->kpos.col - 1;
    size_t depth = 0;
    for (; depth < ns; depth++) {
        const struct val *m = parent->v;
        if (m->kind == VAL_MAP && m->u.map.n && m->pos.line == parent->kpos.line) {
            rc = err_set(e, PE_CONFIG, &m->pos,
                         "cannot edit '%s' in %s: '%s' is a flow-style map ({...}); write it "
                         "in block style (one key per line) first",
                         key, name, parent->key);
            goto out;
        }
        const struct val_entry *c = m->kind == VAL_MAP && !m->encrypted
                                        ? val_map_entry(m, segs[depth])
                                        : NULL;
        if (!c)
            break;
        if ((rc = check_block(&L, &c->kpos, name, segs[depth], e)))
            goto out;
        if (depth + 1 == ns || c->v->kind != VAL_MAP || c->v->encrypted) {
            /* replace this entry (a leaf, or a non-map where a map is wanted) */
            size_t k = (size_t)c->kpos.line - 1;
            int ind = c->kpos.col - 1;
            size_t end = entry_end(&L, k, ind);
            lines_delete(&L, k, end);
            at = k;
            for (size_t i = depth; i + 1 < ns; i++)
                sb_addf(&add, "%*s%s:\n", ind + 2 * (int)(i - depth), "", segs[i]);
            entry_text(&add, ind + 2 * (int)(ns - 1 - depth), segs[ns - 1], v);
            goto insert;
        }
        parent = c;
        pind = c->kpos.col - 1;
    }
    {
        /* parent exists (a map, maybe empty or null): add under it */
        const struct val *m = parent->v;
        int ind = m->kind == VAL_MAP && m->u.map.n ? m->u.map.e[0].kpos.col - 1 : pind + 2;
        size_t k = (size_t)parent->kpos.line - 1;
        if (m->kind != VAL_MAP && m->kind != VAL_NULL) {
            rc = err_set(e, PE_CONFIG, &parent->kpos, "'%s' in %s is not a map", parent->key,
                         name);
            goto out;
        }
        if (m->kind == VAL_MAP && !m->u.map.n && strchr(L.v[k], '{')) {
            /* "values: {}": make it a block */
            char *brace = strchr(L.v[k], '{');
            *brace = 0;
            while (brace > L.v[k] && brace[-1] == ' ')
                *--brace = 0;
        }
        at = entry_end(&L, k, pind);
        for (size_t i = depth; i + 1 < ns; i++)
            sb_addf(&add, "%*s%s:\n", ind + 2 * (int)(i - depth), "", segs[i]);
        entry_text(&add, ind + 2 * (int)(ns - 1 - depth), segs[ns - 1], v);
    }
insert:
    lines_insert(&L, at, add.buf);
    *out = lines_join(&L);
    if ((rc = reparse(*out, name, e))) {
        free(*out);
        *out = NULL;
    }
out:
    sb_release(&add);
    lines_release(&L);
    val_free(doc);
    segs_free(segs, ns);
    return rc;
}

int cfgedit_rm(char **out, const char *text, const char *name, const char *key, struct err *e)
{
    *out = NULL;
    char **segs;
    size_t ns;
    int rc = split_key(&segs, &ns, key, e);
    if (rc)
        return rc;
    struct val *doc = NULL;
    struct lines L;
    if ((rc = load(&doc, &L, text, name, e))) {
        segs_free(segs, ns);
        return rc;
    }
    const struct val_entry *path[MAX_DEPTH + 1];
    const struct val_entry *cur = doc->kind == VAL_MAP ? val_map_entry(doc, "values") : NULL;
    size_t depth = 0;
    for (; cur && depth < ns; depth++) {
        path[depth] = cur;
        const struct val *m = cur->v;
        cur = m->kind == VAL_MAP && !m->encrypted ? val_map_entry(m, segs[depth]) : NULL;
    }
    if (!cur) {
        rc = err_set(e, PE_NOTFOUND, NULL, "%s does not set '%s'", name, key);
        goto out;
    }
    /* drop the entry, and the maps it leaves empty (an empty map would
     * replace what layers below it set) */
    const struct val_entry *victim = cur;
    for (size_t i = ns - 1; i >= 1; i--) {
        if (path[i]->v->u.map.n == 1)
            victim = path[i];
        else
            break;
    }
    if ((rc = check_block(&L, &victim->kpos, name, victim->key, e)))
        goto out;
    size_t k = (size_t)victim->kpos.line - 1;
    lines_delete(&L, k, entry_end(&L, k, victim->kpos.col - 1));
    *out = lines_join(&L);
    if ((rc = reparse(*out, name, e))) {
        free(*out);
        *out = NULL;
    }
out:
    lines_release(&L);
    val_free(doc);
    segs_free(segs, ns);
    return rc;
}

int cfgedit_write(const char *path, const char *text, struct err *e)
{
    struct stat st;
    mode_t mode = stat(path, &st) == 0 ? (st.st_mode & 07777) : 0644;
    return fs_write_atomic(path, text, strlen(text), mode, e);
}

int cfgedit_file(const char *path, const char *display, const char *key,
                 const struct cfgedit_value *v, struct err *e)
{
    char *text = NULL, *out = NULL;
    size_t len = 0;
    int rc = fs_read(path, YT_MAX_FILE, &text, &len, e);
    if (rc == -ENOENT && v) {
        err_release(e);
        text = xstrdup("");
        rc = 0;
        char *dir = fs_dirname(path);
        rc = fs_mkdir_p(dir, 0755, e);
        free(dir);
    } else if (rc == -ENOENT) {
        err_release(e);
        return err_set(e, PE_NOTFOUND, NULL, "%s does not exist", display);
    }
    if (!rc)
        rc = v ? cfgedit_set(&out, text, display, key, v, e)
               : cfgedit_rm(&out, text, display, key, e);
    if (!rc)
        rc = cfgedit_write(path, out, e);
    free(text);
    free(out);
    return rc;
}

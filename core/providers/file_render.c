/* file.render: writes interpolated content to a file inside the env's work
 * directory. Outputs the absolute path and the content's sha256. It does not
 * template anything itself: interpolation happened before it is called. */
#include "core/provider.h"

#include "core/lib/crypto.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct prov_prop schema[] = {
    {"path", PT_STR, PROP_REQUIRED | PROP_REPLACE,
     "file path relative to the env's work directory"},
    {"content", PT_ANY, PROP_REQUIRED, "what to write (scalars as text, lists and maps as JSON)"},
    {"mode", PT_STR, 0, "permissions as a quoted octal string, default \"0644\" (\"0600\" for secrets)"},
    {NULL, 0, 0, NULL},
};

static const struct prov_output outputs[] = {
    {"path", OUT_STABLE, "absolute path of the file"},
    {"sha256", 0, "hex SHA-256 of the content"},
    {NULL, 0, NULL},
};

static int parse_mode(const char *s, mode_t *out)
{
    if (!s || !*s || strlen(s) > 4)
        return -1;
    unsigned m = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '7')
            return -1;
        m = m * 8 + (unsigned)(*p - '0');
    }
    *out = (mode_t)m;
    return 0;
}

static int fr_check(const struct prov_call *c, struct err *e)
{
    const struct val *p = val_map_get(c->props, "path");
    if (p && p->kind == VAL_STR) {
        const char *s = p->u.str.s;
        if (!*s || s[0] == '/')
            return err_set(e, PE_CONFIG, &p->pos,
                           "'path' must be relative to the environment's work directory");
        char *abs = fs_abspath("/w", s);
        bool inside = fs_within("/w", abs) && strcmp(abs, "/w") != 0;
        free(abs);
        if (!inside)
            return err_set(e, PE_CONFIG, &p->pos,
                           "'path' %s leaves the environment's work directory", s);
    }
    const struct val *m = val_map_get(c->props, "mode");
    mode_t mode;
    if (m && m->kind == VAL_INT)
        return err_set(e, PE_CONFIG, &m->pos,
                       "'mode' must be a quoted octal string such as \"0644\" (YAML reads "
                       "0644 as the decimal number %lld)",
                       m->u.i);
    if (m && m->kind == VAL_STR && parse_mode(m->u.str.s, &mode))
        return err_set(e, PE_CONFIG, &m->pos, "'mode' %s is not an octal permission like \"0644\"",
                       m->u.str.s);
    return 0;
}

static char *full_path(const struct prov_call *c, const struct val *props)
{
    return fs_abspath(c->work_dir, prov_str(props, "path", c->resource));
}

static int fr_write(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    const struct val *content = val_map_get(c->props, "content");
    struct sb b;
    sb_init(&b);
    val_text(&b, content);
    mode_t mode = val_has_secret(content) ? 0600 : 0644;
    const char *ms = prov_str(c->props, "mode", NULL);
    if (ms)
        parse_mode(ms, &mode);
    char *path = full_path(c, c->props);
    char *dir = fs_dirname(path);
    int rc = fs_mkdir_p(dir, 0755, e);
    if (!rc)
        rc = fs_write_atomic(path, b.buf, b.len, mode, e);
    if (!rc && chmod(path, mode) < 0)
        rc = err_errno(e, errno, "cannot set the mode of %s", path);
    if (!rc) {
        char hex[65];
        crypto_sha256_hex(b.buf, b.len, hex);
        r->id = xstrdup(path);
        r->outputs = val_map(NULL);
        val_map_set(r->outputs, "path", NULL, val_str(path, NULL));
        val_map_set(r->outputs, "sha256", NULL, val_str(hex, NULL));
    }
    free(dir);
    free(path);
    sb_release(&b);
    return rc;
}

static int fr_read(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    (void)e;
    char *path = full_path(c, c->old_props);
    char hex[65];
    int rc = crypto_sha256_file(path, hex);
    if (rc == -ENOENT) {
        r->exists = false;
        free(path);
        return 0;
    }
    if (rc) {
        err_errno(e, -rc, "cannot read %s", path);
        free(path);
        return rc;
    }
    r->exists = true;
    r->id = xstrdup(path);
    r->outputs = val_map(NULL);
    val_map_set(r->outputs, "path", NULL, val_str(path, NULL));
    val_map_set(r->outputs, "sha256", NULL, val_str(hex, NULL));
    const char *was = c->old_outputs ? val_map_str(c->old_outputs, "sha256", NULL) : NULL;
    if (was && strcmp(was, hex) != 0)
        r->drift = xasprintf("content of %s changed outside prenv", path);
    free(path);
    return 0;
}

static int fr_remove(const struct prov_call *c, struct err *e)
{
    char *path = full_path(c, c->old_props ? c->old_props : c->props);
    int rc = 0;
    if (unlink(path) < 0 && errno != ENOENT)
        rc = err_errno(e, errno, "cannot remove %s", path);
    free(path);
    return rc;
}

const struct provider prov_file_render = {
    .type = "file.render",
    .summary = "a file with interpolated content in the environment's work directory",
    .props = schema,
    .outputs = outputs,
    .check = fr_check,
    .create = fr_write,
    .read = fr_read,
    .update = fr_write,
    .remove = fr_remove,
};

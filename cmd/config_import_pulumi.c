/* config import-pulumi: a Pulumi stack config file (Pulumi.<stack>.yaml)
 * into an environment's config layer: `ns:key` names become prenv keys
 * (the project's namespace is dropped, others become a prefix: aws:region
 * is aws.region), nested maps become dotted keys, and `secure:` values are
 * decrypted with the stack's encryptionsalt and $PULUMI_CONFIG_PASSPHRASE
 * and encrypted again under the prenv project's key. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/val.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "envs/cfgedit.h"
#include "envs/project.h"
#include "envs/secret.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct imp_opts {
    const char *env;
    const char *ns;
};

#define O(f) offsetof(struct imp_opts, f)
static const struct cmd_opt opts[] = {
    {"env", 'e', OPT_STR, O(env), "ENV", "the environment whose config file receives the values "
                                         "(required)"},
    {"namespace", 0, OPT_STR, O(ns), "NS", "the Pulumi project's namespace, whose keys lose their "
                                           "prefix (default: name: in Pulumi.yaml beside FILE, "
                                           "else the most used one)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

struct imp {
    const struct secret_key *from, *to;
    char *text;      /* the layer file being edited */
    const char *rel; /* its name */
    int nvalues, nsecrets;
    struct err *e;
};

/* a secret from the stack, sealed again under prenv's key */
static int reseal(struct imp *im, const struct val *v, char **ct)
{
    char *plain = NULL;
    size_t n = 0;
    int rc = secret_decrypt(&plain, &n, im->from, v->u.str.s, im->e);
    if (rc) {
        im->e->pos = v->pos;
        err_hint(im->e, "the value was not encrypted with this file's encryptionsalt and "
                        "$PULUMI_CONFIG_PASSPHRASE");
        return rc;
    }
    rc = secret_encrypt(ct, im->to, plain, n, im->e);
    secret_wipe_free(plain);
    im->nsecrets++;
    return rc;
}

/* v as inline YAML (JSON flow style; secrets as {"secure": ...}) */
static int inline_yaml(struct imp *im, struct sb *b, const struct val *v)
{
    if (v->encrypted) {
        char *ct = NULL;
        int rc = reseal(im, v, &ct);
        if (rc)
            return rc;
        sb_adds(b, "{\"secure\": ");
        sb_add_json_str(b, ct);
        sb_adds(b, "}");
        free(ct);
        return 0;
    }
    if (v->kind == VAL_LIST || v->kind == VAL_MAP) {
        bool l = v->kind == VAL_LIST;
        sb_addc(b, l ? '[' : '{');
        size_t n = l ? v->u.list.n : v->u.map.n;
        for (size_t i = 0; i < n; i++) {
            if (i)
                sb_adds(b, ", ");
            if (!l) {
                sb_add_json_str(b, v->u.map.e[i].key);
                sb_adds(b, ": ");
            }
            int rc = inline_yaml(im, b, l ? v->u.list.v[i] : v->u.map.e[i].v);
            if (rc)
                return rc;
        }
        sb_addc(b, l ? ']' : '}');
        return 0;
    }
    if (v->kind == VAL_STR) {
        char *s = cfgedit_scalar(v->u.str.s);
        sb_adds(b, s);
        free(s);
        return 0;
    }
    if (v->kind == VAL_NULL) {
        sb_adds(b, "null");
        return 0;
    }
    val_text(b, v);
    return 0;
}

static int set_one(struct imp *im, const char *key, const struct cfgedit_value *cv)
{
    char *out = NULL;
    int rc = cfgedit_set(&out, im->text, im->rel, key, cv, im->e);
    if (rc)
        return rc;
    free(im->text);
    im->text = out;
    im->nvalues++;
    return 0;
}

static bool idents(const struct val *m)
{
    for (size_t i = 0; i < m->u.map.n; i++)
        if (!str_is_ident(m->u.map.e[i].key))
            return false;
    return m->u.map.n > 0;
}

static int import_val(struct imp *im, const char *key, const struct val *v)
{
    if (v->kind == VAL_MAP && !v->encrypted && idents(v)) {
        for (size_t i = 0; i < v->u.map.n; i++) {
            char *k = xasprintf("%s.%s", key, v->u.map.e[i].key);
            int rc = import_val(im, k, v->u.map.e[i].v);
            free(k);
            if (rc)
                return rc;
        }
        return 0;
    }
    struct cfgedit_value cv = {0};
    int rc;
    if (v->encrypted) {
        char *ct = NULL;
        if ((rc = reseal(im, v, &ct)))
            return rc;
        cv.secure = ct;
        rc = set_one(im, key, &cv);
        free(ct);
        return rc;
    }
    struct sb b;
    sb_init(&b);
    rc = inline_yaml(im, &b, v);
    cv.yaml = b.buf;
    if (!rc)
        rc = set_one(im, key, &cv);
    sb_release(&b);
    return rc;
}

/* the Pulumi project's name from Pulumi.yaml beside the stack file */
static char *pulumi_project(const char *stack_file)
{
    char *dir = fs_dirname(stack_file);
    char *py = xasprintf("%s/Pulumi.yaml", dir);
    free(dir);
    struct val *doc = NULL;
    struct err e = {0};
    char *name = NULL;
    if (fs_exists(py) && !yt_load(&doc, py, "Pulumi.yaml", &e)) {
        const char *n = val_map_str(doc, "name", NULL);
        if (n)
            name = xstrdup(n);
    }
    val_free(doc);
    err_release(&e);
    free(py);
    return name;
}

static bool has_secure(const struct val *v)
{
    return val_has_secret(v);
}

static int exec_import(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct imp_opts *o = vo;
    if (!o->env)
        return cmd_usage_error(c, "--env ENV is required");
    struct err e = {0};
    struct project *p = NULL;
    char *rel = NULL, *abs = NULL, *ns = NULL;
    struct val *doc = NULL;
    struct secret_key *from = NULL;
    struct imp im = {.e = &e};
    int code = EXIT_OK;
    const char *file = argv[0];
    if (cmd_env_layer(c, o->env, &p, &rel, &e) || yt_load(&doc, file, file, &e))
        goto fail;
    if (doc->kind != VAL_MAP) {
        err_set(&e, PE_CONFIG, &doc->pos, "%s is not a Pulumi stack config file (a map with "
                                          "'config:')",
                file);
        goto fail;
    }
    const struct val *cfg = val_map_get(doc, "config");
    if (!cfg || cfg->kind == VAL_NULL) {
        err_set(&e, PE_CONFIG, &doc->pos, "%s has no 'config:'; there is nothing to import", file);
        goto fail;
    }
    if (cfg->kind != VAL_MAP) {
        err_set(&e, PE_CONFIG, &cfg->pos, "'config' in %s must be a map of ns:key to values",
                file);
        goto fail;
    }
    if (has_secure(cfg)) {
        const char *prov = val_map_str(doc, "secretsprovider", NULL);
        if (prov && strcmp(prov, "passphrase") != 0) {
            err_set(&e, PE_CONFIG, &val_map_get(doc, "secretsprovider")->pos,
                    "%s encrypts its secrets with '%s'; only the passphrase provider can be "
                    "imported",
                    file, prov);
            err_hint(&e, "in Pulumi: `pulumi stack change-secrets-provider passphrase`, then "
                         "import again");
            goto fail;
        }
        const struct val *salt = val_map_get(doc, "encryptionsalt");
        if (!salt || salt->kind != VAL_STR) {
            err_set(&e, PE_CONFIG, &doc->pos, "%s has secure: values but no 'encryptionsalt:'",
                    file);
            err_hint(&e, "the salt of a passphrase stack is written by Pulumi into its stack "
                         "file; take the file as Pulumi left it");
            goto fail;
        }
        char *pass = NULL;
        if (secret_passphrase(&pass, "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE",
                              "passphrase of the Pulumi stack", &e))
            goto fail;
        char *where = xasprintf("%s:%d", file, salt->pos.line);
        int rc = secret_key_open(&from, salt->u.str.s, pass, strlen(pass), where, &e);
        free(where);
        secret_wipe_free(pass);
        if (rc) {
            if (rc == PE_SECRET)
                err_hint(&e, "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) "
                             "to the stack's passphrase");
            goto fail;
        }
        if (secret_project_init(&im.to, p->file, &e))
            goto fail;
        im.from = from;
    }
    if (o->ns)
        ns = xstrdup(o->ns);
    else if (!(ns = pulumi_project(file))) {
        /* the most used namespace */
        size_t best = 0;
        for (size_t i = 0; i < cfg->u.map.n; i++) {
            const char *k = cfg->u.map.e[i].key, *colon = strchr(k, ':');
            if (!colon)
                continue;
            size_t cnt = 0;
            for (size_t j = 0; j < cfg->u.map.n; j++)
                if (!strncmp(cfg->u.map.e[j].key, k, (size_t)(colon - k) + 1))
                    cnt++;
            if (cnt > best) {
                best = cnt;
                free(ns);
                ns = xstrndup(k, (size_t)(colon - k));
            }
        }
    }
    abs = fs_abspath(p->dir, rel);
    size_t tl = 0;
    int rrc = fs_read(abs, YT_MAX_FILE, &im.text, &tl, &e);
    if (rrc == -ENOENT) {
        err_release(&e);
        im.text = xstrdup("");
    } else if (rrc) {
        goto fail;
    }
    im.rel = rel;
    for (size_t i = 0; i < cfg->u.map.n; i++) {
        const struct val_entry *ent = &cfg->u.map.e[i];
        const char *colon = strchr(ent->key, ':');
        char *key;
        if (!colon || (ns && (size_t)(colon - ent->key) == strlen(ns) &&
                       !strncmp(ent->key, ns, strlen(ns))))
            key = xstrdup(colon ? colon + 1 : ent->key);
        else
            key = xasprintf("%.*s.%s", (int)(colon - ent->key), ent->key, colon + 1);
        bool ok = true;
        {
            /* every dotted part must be a prenv name */
            const char *q = key;
            while (ok && *q) {
                const char *dot = strchr(q, '.');
                char *part = dot ? xstrndup(q, (size_t)(dot - q)) : xstrdup(q);
                ok = str_is_ident(part);
                free(part);
                q = dot ? dot + 1 : q + strlen(q);
            }
        }
        if (!ok) {
            err_set(&e, PE_CONFIG, &ent->kpos,
                    "cannot import '%s': prenv config keys are names of letters, digits, '_' "
                    "and '-'",
                    ent->key);
            err_hint(&e, "rename the key in Pulumi (or in a copy of %s) and import again", file);
            free(key);
            goto fail;
        }
        int rc = import_val(&im, key, ent->v);
        free(key);
        if (rc)
            goto fail;
    }
    if (cfgedit_write(abs, im.text, &e))
        goto fail;
    if (val_map_get(doc, "environment"))
        cmd_warn(c, "%s imports ESC environments ('environment:'); their values were not "
                    "imported",
                 file);
    printf("%s: imported %d value%s (%d secret%s) from %s\n", rel, im.nvalues,
           im.nvalues == 1 ? "" : "s", im.nsecrets, im.nsecrets == 1 ? "" : "s", file);
    goto out;
fail:
    code = cmd_error(c, &e);
out:
    free(im.text);
    secret_key_free(from);
    val_free(doc);
    free(ns);
    free(abs);
    free(rel);
    project_free(p);
    err_release(&e);
    return code;
}

const struct cmd_entry cmd_config_import_pulumi_entry = {
    .name = "config import-pulumi",
    .args = "FILE",
    .min_args = 1,
    .max_args = 1,
    .summary = "import a Pulumi stack config file (Pulumi.<stack>.yaml) into an env's config",
    .help = "Keys of the Pulumi project's namespace lose their prefix (shop:replicas becomes "
            "replicas); other namespaces become one (aws:region becomes aws.region). Maps "
            "become dotted keys, lists stay lists. Secure values are decrypted with the "
            "stack's encryptionsalt and $PULUMI_CONFIG_PASSPHRASE (or "
            "$PULUMI_CONFIG_PASSPHRASE_FILE, or a prompt) and encrypted again under this "
            "project's key ($PRENV_PASSPHRASE). Keys already in the env's file are replaced; "
            "the rest of the file is kept.",
    .opts = opts,
    .opts_size = sizeof(struct imp_opts),
    .exec = exec_import,
};

/* config rotate-passphrase: a new salt and passphrase for the project's
 * secrets. Every secure value of every config file and every secret sealed
 * in the environments' states is decrypted with the old key and encrypted
 * with the new one; an old ciphertext maps to one new ciphertext everywhere,
 * so a state that recorded a config secret still matches the file and no
 * plan shows a change. Everything is decrypted before anything is written;
 * each file is replaced atomically, prenv.yaml's encryptionsalt last. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/seal.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "core/lock.h"
#include "core/state.h"
#include "envs/cfgedit.h"
#include "envs/envcfg.h"
#include "envs/project.h"
#include "envs/secret.h"

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rot {
    const struct secret_key *old;
    struct secret_key *nw;
    char **from, **to; /* ciphertext map */
    size_t n, cap;
    struct err *e;
};

static int map_ct(struct rot *r, const char *ct, const char **out)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->from[i], ct)) {
            *out = r->to[i];
            return 0;
        }
    char *plain = NULL, *fresh = NULL;
    size_t len = 0;
    int rc = secret_decrypt(&plain, &len, r->old, ct, r->e);
    if (!rc)
        rc = secret_encrypt(&fresh, r->nw, plain, len, r->e);
    if (plain)
        secret_wipe_free(plain);
    if (rc)
        return rc;
    XGROW(r->from, r->cap, r->n + 1);
    r->to = xrealloc(r->to, r->cap * sizeof *r->to);
    r->from[r->n] = xstrdup(ct);
    r->to[r->n] = fresh;
    *out = r->to[r->n++];
    return 0;
}

/* every sealed string in v, re-encrypted in place */
static int rot_val(struct rot *r, struct val *v)
{
    if (!v)
        return 0;
    if (v->encrypted && v->kind == VAL_STR) {
        const char *n = NULL;
        int rc = map_ct(r, v->u.str.s, &n);
        if (rc) {
            if (v->pos.src)
                r->e->pos = v->pos;
            return rc;
        }
        free(v->u.str.s);
        v->u.str.s = xstrdup(n);
        v->u.str.len = strlen(n);
        return 0;
    }
    if (v->kind == VAL_LIST)
        for (size_t i = 0; i < v->u.list.n; i++) {
            int rc = rot_val(r, v->u.list.v[i]);
            if (rc)
                return rc;
        }
    if (v->kind == VAL_MAP)
        for (size_t i = 0; i < v->u.map.n; i++) {
            int rc = rot_val(r, v->u.map.e[i].v);
            if (rc)
                return rc;
        }
    return 0;
}

/* a config file with its ciphertexts replaced in the text */
struct cfile {
    char *path, *rel, *text;
    bool changed;
};

static char *replace_all(const char *text, const char *from, const char *to, bool *changed)
{
    struct sb b;
    sb_init(&b);
    size_t fl = strlen(from);
    for (const char *p = text;;) {
        const char *hit = strstr(p, from);
        if (!hit) {
            sb_adds(&b, p);
            break;
        }
        sb_add(&b, p, (size_t)(hit - p));
        sb_adds(&b, to);
        *changed = true;
        p = hit + fl;
    }
    return sb_steal(&b);
}

static int rot_file(struct rot *r, struct cfile *f)
{
    struct val *doc = NULL;
    int rc = yt_load(&doc, f->path, f->rel, r->e);
    if (rc)
        return rc;
    size_t before = r->n;
    struct val *copy = val_clone(doc);
    rc = rot_val(r, copy);
    val_free(copy);
    if (rc) {
        err_prefix(r->e, "%s: ", f->rel);
        val_free(doc);
        return rc;
    }
    /* every ciphertext the file holds (new ones are at [before, n), known
     * ones anywhere): replace by text */
    size_t len = 0;
    char *text = NULL;
    if ((rc = fs_read(f->path, YT_MAX_FILE, &text, &len, r->e))) {
        val_free(doc);
        return rc;
    }
    (void)before;
    for (size_t i = 0; i < r->n; i++) {
        if (!strstr(text, r->from[i]))
            continue;
        char *t = replace_all(text, r->from[i], r->to[i], &f->changed);
        free(text);
        text = t;
    }
    f->text = text;
    val_free(doc);
    return 0;
}

static void add_file(struct cfile **fs, size_t *n, size_t *cap, const char *dir, const char *rel)
{
    char *abs = fs_abspath(dir, rel);
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*fs)[i].path, abs)) {
            free(abs);
            return;
        }
    XGROW(*fs, *cap, *n + 1);
    (*fs)[(*n)++] = (struct cfile){.path = abs, .rel = xstrdup(rel)};
}

/* the layer files the envs use, and every other .yaml beside them */
static int collect(struct cfile **fs, size_t *n, const struct project *p, struct err *e)
{
    size_t cap = 0;
    const char *cfgs[64];
    size_t nc = 0;
    for (size_t i = 0; i < p->nstages && nc < 62; i++)
        cfgs[nc++] = p->stages[i].config;
    if (p->previews.config)
        cfgs[nc++] = p->previews.config;
    if (p->sandboxes.config)
        cfgs[nc++] = p->sandboxes.config;
    for (size_t i = 0; i < nc; i++) {
        char *abs = fs_abspath(p->dir, cfgs[i]);
        bool there = fs_exists(abs);
        free(abs);
        if (!there)
            continue;
        struct envcfg *ec = NULL;
        int rc = envcfg_load(&ec, p, cfgs[i], NULL, e);
        if (rc)
            return rc;
        for (size_t k = 0; k < ec->nlayers; k++)
            add_file(fs, n, &cap, p->dir, ec->layers[k].name);
        envcfg_free(ec);
    }
    size_t known = *n;
    for (size_t i = 0; i < known; i++) {
        char *dir = fs_dirname((*fs)[i].path);
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d)))
            if (de->d_name[0] != '.' && (str_suffix(de->d_name, ".yaml") || str_suffix(de->d_name, ".yml"))) {
                char *abs = xasprintf("%s/%s", dir, de->d_name);
                size_t dl = strlen(p->dir);
                add_file(fs, n, &cap, p->dir, abs + (strncmp(abs, p->dir, dl) ? 0 : dl + 1));
                free(abs);
            }
        if (d)
            closedir(d);
        free(dir);
    }
    return 0;
}

static int rot_state(struct rot *r, struct state *s)
{
    int rc = rot_val(r, s->outputs);
    if (!rc)
        rc = rot_val(r, s->sets);
    if (!rc)
        rc = rot_val(r, s->extra);
    for (size_t i = 0; !rc && i < s->nres; i++) {
        rc = rot_val(r, s->res[i].inputs);
        if (!rc)
            rc = rot_val(r, s->res[i].outputs);
        if (!rc)
            rc = rot_val(r, s->res[i].priv);
    }
    for (size_t i = 0; !rc && i < s->npend; i++)
        rc = rot_val(r, s->pend[i].inputs);
    if (rc)
        err_prefix(r->e, "the state of environment '%s': ", s->env);
    return rc;
}

static int exec_rotate(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)vo;
    (void)argc;
    (void)argv;
    struct err e = {0};
    struct project *p = NULL;
    struct rot r = {.e = &e};
    struct cfile *files = NULL;
    size_t nf = 0, nenv = 0, nlocked = 0;
    char **envs = NULL, *pass = NULL, *ptext = NULL;
    struct state **states = NULL;
    struct lock *locks = NULL;
    int code = EXIT_OK;
    if (cmd_project(c, &p, &e))
        goto fail;
    if (!p->salt) {
        err_set(&e, PE_CONFIG, NULL, "%s has no encryptionsalt: this project has no secrets to "
                                     "re-encrypt",
                PROJECT_FILE);
        err_hint(&e, "`prenv config set KEY VALUE --env ENV --secret` sets the first secret and "
                     "its passphrase");
        goto fail;
    }
    if (secret_project_key(&r.old, SEAL_PROMPT, &e))
        goto fail;
    if (secret_passphrase(&pass, "PRENV_NEW_PASSPHRASE", NULL, "new passphrase", &e))
        goto fail;
    if (!getenv("PRENV_NEW_PASSPHRASE")) {
        char *again = NULL;
        if (secret_passphrase(&again, "PRENV_NEW_PASSPHRASE", NULL, "the new passphrase again",
                              &e))
            goto fail;
        bool same = !strcmp(again, pass);
        secret_wipe_free(again);
        if (!same) {
            err_set(&e, PE_USAGE, NULL, "the two new passphrases differ; nothing was changed");
            goto fail;
        }
    }
    if (secret_key_new(&r.nw, pass, strlen(pass), &e))
        goto fail;
    /* read and re-encrypt everything in memory first */
    if (collect(&files, &nf, p, &e))
        goto fail;
    for (size_t i = 0; i < nf; i++)
        if (rot_file(&r, &files[i]))
            goto fail;
    if (state_list(&envs, &nenv, p->state_dir, &e))
        goto fail;
    states = xcalloc(nenv + 1, sizeof *states);
    locks = xcalloc(nenv + 1, sizeof *locks);
    for (size_t i = 0; i < nenv; i++) {
        if (lock_acquire(&locks[i], p->state_dir, envs[i], c->command_line, 0, NULL, NULL, &e)) {
            err_hint(&e, "another prenv works on '%s'; run this again when it is done", envs[i]);
            goto fail;
        }
        nlocked++;
        if (state_load(&states[i], p->state_dir, envs[i], &e) || rot_state(&r, states[i]))
            goto fail;
    }
    size_t plen = 0;
    if (fs_read(p->file, (size_t)16 << 20, &ptext, &plen, &e))
        goto fail;
    bool changed = false;
    char *newp = replace_all(ptext, p->salt, secret_key_salt(r.nw), &changed);
    free(ptext);
    ptext = newp;
    if (!changed) {
        err_set(&e, PE_CONFIG, NULL, "cannot find the encryptionsalt's text in %s",
                PROJECT_FILE);
        goto fail;
    }
    /* the new key is the project's from here on (plaintext secrets still in
     * a state are sealed with it when the state is written) */
    char *where = xasprintf("%s:%d", PROJECT_FILE, p->salt_line);
    struct secret_key *nk = r.nw;
    r.nw = NULL;
    secret_project_adopt(nk, where);
    free(where);
    int nfiles = 0;
    for (size_t i = 0; i < nf; i++)
        if (files[i].changed) {
            if (cfgedit_write(files[i].path, files[i].text, &e))
                goto fail;
            nfiles++;
        }
    for (size_t i = 0; i < nenv; i++)
        if (state_save(states[i], p->state_dir, &e))
            goto fail;
    if (cfgedit_write(p->file, ptext, &e))
        goto fail;
    printf("re-encrypted %zu secret%s in %d config file%s and %zu environment state%s; the new "
           "encryptionsalt is in %s\n",
           r.n, r.n == 1 ? "" : "s", nfiles, nfiles == 1 ? "" : "s", nenv, nenv == 1 ? "" : "s",
           PROJECT_FILE);
    goto out;
fail:
    code = cmd_error(c, &e);
out:
    for (size_t i = 0; i < nlocked; i++)
        lock_release(&locks[i], false);
    for (size_t i = 0; i < nenv; i++)
        state_free(states ? states[i] : NULL);
    free(states);
    free(locks);
    state_names_free(envs, nenv);
    for (size_t i = 0; i < nf; i++) {
        free(files[i].path);
        free(files[i].rel);
        free(files[i].text);
    }
    free(files);
    for (size_t i = 0; i < r.n; i++) {
        free(r.from[i]);
        free(r.to[i]);
    }
    free(r.from);
    free(r.to);
    secret_key_free(r.nw);
    if (pass)
        secret_wipe_free(pass);
    free(ptext);
    project_free(p);
    err_release(&e);
    return code;
}

const struct cmd_entry cmd_config_rotate_passphrase_entry = {
    .name = "config rotate-passphrase",
    .args = NULL,
    .min_args = 0,
    .max_args = 0,
    .summary = "re-encrypt every secret of the project under a new passphrase",
    .help = "The old passphrase comes from $PRENV_PASSPHRASE (or $PRENV_PASSPHRASE_FILE, or a "
            "prompt), the new one from $PRENV_NEW_PASSPHRASE or a prompt that asks twice. "
            "Every secure: value of the config files the environments use (and of the other "
            ".yaml files beside them) and every secret in the environments' states is "
            "decrypted and encrypted again under a new salt; nothing is written until all of "
            "them decrypted. Each environment's lock is taken for the rewrite; files are "
            "replaced one by one, atomically, prenv.yaml's encryptionsalt last.",
    .opts = NULL,
    .opts_size = 0,
    .exec = exec_rotate,
};

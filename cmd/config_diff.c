/* config diff: how two environments' configs differ, key by key, with the
 * layer each value came from. Secrets are compared without being printed:
 * opened with the project's key when the passphrase is at hand
 * ($PRENV_PASSPHRASE or $PRENV_PASSPHRASE_FILE; never a prompt), else equal
 * only when their stored forms are, and said to be not compared otherwise. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/seal.h"
#include "core/lib/xalloc.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct diff_opts {
    bool json, expect_no_changes;
};

#define O(f) offsetof(struct diff_opts, f)
static const struct cmd_opt opts[] = {
    {"json", 0, OPT_BOOL, O(json), NULL, "print JSON"},
    {"expect-no-changes", 0, OPT_BOOL, O(expect_no_changes), NULL,
     "exit with status 3 if the configs differ"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static const struct val *find(const struct cfg_leaf *l, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(l[i].path, k))
            return l[i].v;
    return NULL;
}

enum secret_cmp { S_NONE, S_DIFFER, S_UNCOMPARED };

struct row {
    const char *key;
    const struct val *a, *b;
    char *va, *vb; /* as shown */
    const char *fa, *fb;
    enum secret_cmp sc;
};

/* same: are a and b equal? Secrets are opened to be compared (*sc says how
 * a difference was judged); *unopened is set once no key could be had, so
 * nothing asks again */
static bool same(const struct val *a, const struct val *b, enum secret_cmp *sc, bool *unopened)
{
    *sc = S_NONE;
    bool secret = (a && val_has_secret(a)) || (b && val_has_secret(b));
    if (!a || !b)
        return false;
    if (!secret)
        return val_equal(a, b);
    if (!seal_has_sealed(a) && !seal_has_sealed(b)) {
        *sc = S_DIFFER;
        return val_equal(a, b);
    }
    if (val_equal(a, b))
        return true; /* the same stored form: the same value */
    if (!*unopened) {
        struct val *oa = NULL, *ob = NULL;
        struct err e = {0};
        if (!seal_open(&oa, a, SEAL_NEED, &e) && !seal_open(&ob, b, SEAL_NEED, &e)) {
            bool eq = val_equal(oa, ob);
            val_free(oa);
            val_free(ob);
            *sc = S_DIFFER;
            return eq;
        }
        val_free(oa);
        err_release(&e);
        *unopened = true;
    }
    *sc = S_UNCOMPARED;
    return false;
}

static void json_from(struct sb *out, const char *f)
{
    if (f)
        sb_add_json_str(out, f);
    else
        sb_adds(out, "null");
}

static int exec_diff(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct diff_opts *o = vo;
    struct err e = {0};
    struct op_env *a = NULL, *b = NULL;
    struct val *ca = NULL, *cb = NULL;
    int code = EXIT_OK;
    if (cmd_env_config(c, argv[0], &a, &ca, &e) || cmd_env_config(c, argv[1], &b, &cb, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    struct cfg_leaf *la = NULL, *lb = NULL;
    size_t na = envcfg_flatten(ca, &la), nb = envcfg_flatten(cb, &lb);
    struct row *rows = xcalloc(na + nb + 1, sizeof *rows);
    size_t nr = 0, nunc = 0;
    bool unopened = false;
    for (int pass = 0; pass < 2; pass++) {
        const struct cfg_leaf *l = pass ? lb : la;
        size_t n = pass ? nb : na;
        for (size_t i = 0; i < n; i++) {
            const struct val *va = find(la, na, l[i].path), *vb = find(lb, nb, l[i].path);
            if (pass && va)
                continue; /* compared in the first pass */
            struct row *r = &rows[nr];
            if (same(va, vb, &r->sc, &unopened))
                continue;
            r->key = l[i].path;
            r->a = va;
            r->b = vb;
            struct sb s;
            sb_init(&s);
            if (va)
                ui_value(&s, va, 40);
            else
                sb_adds(&s, "(unset)");
            r->va = sb_steal(&s);
            sb_init(&s);
            if (vb)
                ui_value(&s, vb, 40);
            else
                sb_adds(&s, "(unset)");
            r->vb = sb_steal(&s);
            r->fa = va ? val_map_str(a->cfg->origin, l[i].path, NULL) : NULL;
            r->fb = vb ? val_map_str(b->cfg->origin, l[i].path, NULL) : NULL;
            nunc += r->sc == S_UNCOMPARED;
            nr++;
        }
    }
    struct sb out;
    sb_init(&out);
    if (o->json) {
        sb_adds(&out, "{\"a\": ");
        sb_add_json_str(&out, argv[0]);
        sb_adds(&out, ", \"b\": ");
        sb_add_json_str(&out, argv[1]);
        sb_adds(&out, ", \"differences\": [");
        for (size_t i = 0; i < nr; i++) {
            const struct row *r = &rows[i];
            sb_adds(&out, i ? ",\n  {\"key\": " : "\n  {\"key\": ");
            sb_add_json_str(&out, r->key);
            sb_adds(&out, ", \"a\": ");
            val_json(&out, r->a, VAL_JSON_MASK);
            sb_adds(&out, ", \"a_from\": ");
            json_from(&out, r->fa);
            sb_adds(&out, ", \"b\": ");
            val_json(&out, r->b, VAL_JSON_MASK);
            sb_adds(&out, ", \"b_from\": ");
            json_from(&out, r->fb);
            sb_addf(&out, ", \"secret\": %s, \"compared\": %s}",
                    r->sc != S_NONE ? "true" : "false", r->sc == S_UNCOMPARED ? "false" : "true");
        }
        sb_adds(&out, nr ? "\n]}\n" : "]}\n");
    } else if (!nr) {
        sb_addf(&out, "%s and %s have the same config\n", argv[0], argv[1]);
    } else {
        /* KEY | A (from) | B (from): widths from what is shown */
        size_t wk = 3, wa = strlen(argv[0]), wb = strlen(argv[1]), wfa = 0;
        for (size_t i = 0; i < nr; i++) {
            const struct row *r = &rows[i];
            wk = strlen(r->key) > wk ? strlen(r->key) : wk;
            wa = strlen(r->va) > wa ? strlen(r->va) : wa;
            wb = strlen(r->vb) > wb ? strlen(r->vb) : wb;
            size_t f = r->fa ? strlen(r->fa) : 0;
            wfa = f > wfa ? f : wfa;
        }
        const char *dim = cmd_c(c, "\033[2m"), *off = cmd_c(c, "\033[0m");
        sb_addf(&out, "  %-*s  %-*s  %-*s  %s\n", (int)wk, "KEY", (int)wa, argv[0], (int)wfa,
                "", argv[1]);
        for (size_t i = 0; i < nr; i++) {
            const struct row *r = &rows[i];
            sb_addf(&out, "  %-*s  %-*s  %s%-*s%s  %-*s  %s%s%s", (int)wk, r->key, (int)wa, r->va,
                    dim, (int)wfa, r->fa ? r->fa : "", off, (int)wb, r->vb, dim,
                    r->fb ? r->fb : "", off);
            if (r->sc == S_DIFFER)
                sb_addf(&out, "  (secrets differ; not shown)");
            else if (r->sc == S_UNCOMPARED)
                sb_addf(&out, "  (secret; not compared)");
            sb_addc(&out, '\n');
        }
        sb_addf(&out, "%zu key%s differ%s", nr, nr == 1 ? "" : "s", nr == 1 ? "s" : "");
        if (nunc)
            sb_addf(&out, "; %zu secret%s could not be compared without the passphrase (set "
                          "PRENV_PASSPHRASE or PRENV_PASSPHRASE_FILE)",
                    nunc, nunc == 1 ? "" : "s");
        sb_addc(&out, '\n');
    }
    fputs(out.buf, stdout);
    sb_release(&out);
    if (nr && o->expect_no_changes)
        code = EXIT_CHANGES;
    for (size_t i = 0; i < nr; i++) {
        free(rows[i].va);
        free(rows[i].vb);
    }
    free(rows);
    envcfg_leaves_free(la, na);
    envcfg_leaves_free(lb, nb);
out:
    val_free(ca);
    val_free(cb);
    err_release(&e);
    op_close(a);
    op_close(b);
    return code;
}

const struct cmd_entry cmd_config_diff_entry = {
    .name = "config diff",
    .args = "ENV_A ENV_B",
    .min_args = 2,
    .max_args = 2,
    .summary = "show how two envs' configs differ, key by key, and where each value comes from",
    .opts = opts,
    .opts_size = sizeof(struct diff_opts),
    .exec = exec_diff,
};

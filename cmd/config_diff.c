/* config diff: how two environments' configs differ, key by key. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct diff_opts {
    bool json;
};

static const struct cmd_opt opts[] = {
    {"json", 0, OPT_BOOL, offsetof(struct diff_opts, json), NULL, "print JSON"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const struct val *find(const struct cfg_leaf *l, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(l[i].path, k))
            return l[i].v;
    return NULL;
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
    struct sb out;
    sb_init(&out);
    int ndiff = 0;
    if (o->json)
        sb_addf(&out, "{\"a\": \"%s\", \"b\": \"%s\", \"differences\": [", argv[0], argv[1]);
    for (int pass = 0; pass < 2; pass++) {
        const struct cfg_leaf *l = pass ? lb : la;
        size_t n = pass ? nb : na;
        for (size_t i = 0; i < n; i++) {
            const struct val *va = find(la, na, l[i].path), *vb = find(lb, nb, l[i].path);
            if (pass && va)
                continue; /* compared in the first pass */
            bool secret = (va && va->secret) || (vb && vb->secret);
            if (va && vb && val_equal(va, vb) && !(secret && (va->encrypted || vb->encrypted)))
                continue;
            struct sb sa, sbv;
            sb_init(&sa);
            sb_init(&sbv);
            if (va)
                ui_value(&sa, va, 50);
            else
                sb_adds(&sa, o->json ? "null" : "(unset)");
            if (vb)
                ui_value(&sbv, vb, 50);
            else
                sb_adds(&sbv, o->json ? "null" : "(unset)");
            if (o->json) {
                sb_adds(&out, ndiff ? ",\n  {\"key\": " : "\n  {\"key\": ");
                sb_add_json_str(&out, l[i].path);
                sb_adds(&out, ", \"a\": ");
                val_json(&out, va, VAL_JSON_MASK);
                sb_adds(&out, ", \"b\": ");
                val_json(&out, vb, VAL_JSON_MASK);
                sb_adds(&out, "}");
            } else {
                sb_addf(&out, "  %-30s %-30s %s%s\n", l[i].path, sa.buf, sbv.buf,
                        secret ? "  (secret: values not shown)" : "");
            }
            ndiff++;
            sb_release(&sa);
            sb_release(&sbv);
        }
    }
    if (o->json)
        sb_adds(&out, ndiff ? "\n]}\n" : "]}\n");
    else if (ndiff)
        printf("  %-30s %-30s %s\n", "KEY", argv[0], argv[1]);
    else
        printf("%s and %s have the same config\n", argv[0], argv[1]);
    fputs(out.buf, stdout);
    sb_release(&out);
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
    .summary = "show how two envs' configs differ, key by key",
    .opts = opts,
    .opts_size = sizeof(struct diff_opts),
    .exec = exec_diff,
};

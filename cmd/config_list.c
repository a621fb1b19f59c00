/* config list: every config value of an environment with the layer that set
 * it. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/seal.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct list_opts {
    const char *env;
    bool json;
    bool show_secrets;
};

#define O(f) offsetof(struct list_opts, f)
static const struct cmd_opt opts[] = {
    {"env", 'e', OPT_STR, O(env), "ENV", "the environment (required)"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print JSON (see docs/json.md)"},
    {"show-secrets", 0, OPT_BOOL, O(show_secrets), NULL,
     "print secrets in plaintext (needs the passphrase)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_clist(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct list_opts *o = vo;
    if (!o->env)
        return cmd_usage_error(c, "--env ENV is required");
    struct err e = {0};
    struct op_env *oe = NULL;
    struct val *cfg = NULL;
    int rc = cmd_env_config(c, o->env, &oe, &cfg, &e);
    if (rc) {
        int code = cmd_error(c, &e);
        err_release(&e);
        op_close(oe);
        return code;
    }
    if (o->show_secrets && seal_has_sealed(cfg)) {
        /* the one command that prints a secret's plaintext, when asked */
        struct val *open = NULL;
        if ((rc = seal_open(&open, cfg, SEAL_NEED | SEAL_PROMPT, &e))) {
            int code = cmd_error(c, &e);
            val_free(cfg);
            op_close(oe);
            return code;
        }
        val_free(cfg);
        cfg = open;
    }
    struct cfg_leaf *l = NULL;
    size_t n = envcfg_flatten(cfg, &l);
    struct sb b;
    sb_init(&b);
    if (o->json) {
        sb_adds(&b, "{\"env\": ");
        sb_add_json_str(&b, o->env);
        sb_adds(&b, ", \"layers\": [");
        for (size_t i = 0; i < oe->cfg->nlayers; i++) {
            if (i)
                sb_adds(&b, ", ");
            sb_add_json_str(&b, oe->cfg->layers[i].name);
        }
        sb_adds(&b, "], \"values\": [");
        for (size_t i = 0; i < n; i++) {
            sb_adds(&b, i ? ",\n  {\"key\": " : "\n  {\"key\": ");
            sb_add_json_str(&b, l[i].path);
            sb_adds(&b, ", \"value\": ");
            val_json(&b, l[i].v, o->show_secrets ? 0 : VAL_JSON_MASK);
            sb_addf(&b, ", \"secret\": %s, \"from\": ",
                    val_has_secret(l[i].v) ? "true" : "false");
            const char *from = val_map_str(oe->cfg->origin, l[i].path, NULL);
            if (from)
                sb_add_json_str(&b, from);
            else
                sb_adds(&b, "null");
            sb_adds(&b, "}");
        }
        sb_adds(&b, n ? "\n]}\n" : "]}\n");
    } else {
        size_t w = 3;
        for (size_t i = 0; i < n; i++)
            if (strlen(l[i].path) > w)
                w = strlen(l[i].path);
        printf("%s: layers", o->env);
        for (size_t i = 0; i < oe->cfg->nlayers; i++)
            printf("%s%s", i ? " <- " : " ", oe->cfg->layers[i].name);
        printf("\n");
        for (size_t i = 0; i < n; i++) {
            struct sb v;
            sb_init(&v);
            if (o->show_secrets && val_has_secret(l[i].v))
                val_text(&v, l[i].v);
            else
                ui_value(&v, l[i].v, 70);
            const char *from = val_map_str(oe->cfg->origin, l[i].path, "");
            sb_addf(&b, "  %-*s %-40s %s%s%s\n", (int)w, l[i].path, v.buf, cmd_c(c, "\033[2m"),
                    from, cmd_c(c, "\033[0m"));
            sb_release(&v);
        }
    }
    fputs(b.buf, stdout);
    sb_release(&b);
    envcfg_leaves_free(l, n);
    val_free(cfg);
    err_release(&e);
    op_close(oe);
    return EXIT_OK;
}

const struct cmd_entry cmd_config_list_entry = {
    .name = "config list",
    .args = NULL,
    .min_args = 0,
    .max_args = 0,
    .summary = "every config value of an env, and the layer that set it",
    .opts = opts,
    .opts_size = sizeof(struct list_opts),
    .exec = exec_clist,
};

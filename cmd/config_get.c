/* config get: one config value of an environment, interpolated. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct get_opts {
    const char *env;
    bool json;
};

#define O(f) offsetof(struct get_opts, f)
static const struct cmd_opt opts[] = {
    {"env", 'e', OPT_STR, O(env), "ENV", "the environment (required)"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the value as JSON"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_get(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct get_opts *o = vo;
    if (!o->env)
        return cmd_usage_error(c, "--env ENV is required");
    struct err e = {0};
    struct op_env *oe = NULL;
    struct val *cfg = NULL;
    int rc = cmd_env_config(c, o->env, &oe, &cfg, &e);
    int code = EXIT_OK;
    if (rc) {
        code = cmd_error(c, &e);
        goto out;
    }
    const struct val *v = val_get(cfg, argv[0]);
    if (!v) {
        struct cfg_leaf *l = NULL;
        size_t n = envcfg_flatten(cfg, &l);
        const char **names = xcalloc(n + 1, sizeof *names);
        for (size_t i = 0; i < n; i++)
            names[i] = l[i].path;
        const char *near = str_closest(argv[0], names, n);
        if (near)
            err_set(&e, PE_NOTFOUND, NULL, "'%s' has no config key '%s' (did you mean '%s'?)",
                    o->env, argv[0], near);
        else
            err_set(&e, PE_NOTFOUND, NULL, "'%s' has no config key '%s'", o->env, argv[0]);
        err_hint(&e, "`prenv config list --env %s` shows every key", o->env);
        free(names);
        envcfg_leaves_free(l, n);
        code = cmd_error(c, &e);
        goto out;
    }
    struct sb b;
    sb_init(&b);
    if (o->json || v->kind == VAL_MAP || v->kind == VAL_LIST)
        val_json(&b, v, VAL_JSON_MASK);
    else if (v->secret)
        sb_adds(&b, "[secret]");
    else
        val_text(&b, v);
    puts(b.buf);
    sb_release(&b);
out:
    val_free(cfg);
    err_release(&e);
    op_close(oe);
    return code;
}

const struct cmd_entry cmd_config_get_entry = {
    .name = "config get",
    .args = "KEY",
    .min_args = 1,
    .max_args = 1,
    .summary = "print one config value of an env (dotted KEY, interpolated)",
    .opts = opts,
    .opts_size = sizeof(struct get_opts),
    .exec = exec_get,
};

/* config rm: remove one value from an environment's own config layer file. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/fs.h"
#include "core/lib/xalloc.h"
#include "envs/cfgedit.h"
#include "envs/project.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct rm_opts {
    const char *env;
};

static const struct cmd_opt opts[] = {
    {"env", 'e', OPT_STR, offsetof(struct rm_opts, env), "ENV",
     "the environment whose config file is written (required)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static int exec_rm(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct rm_opts *o = vo;
    if (!o->env)
        return cmd_usage_error(c, "--env ENV is required");
    struct err e = {0};
    struct project *p = NULL;
    char *rel = NULL, *abs = NULL;
    int code = EXIT_OK;
    if (!cmd_env_layer(c, o->env, &p, &rel, &e)) {
        abs = fs_abspath(p->dir, rel);
        if (!cfgedit_file(abs, rel, argv[0], NULL, &e))
            printf("%s: removed %s\n", rel, argv[0]);
    }
    if (e.code) {
        if (e.code == PE_NOTFOUND)
            err_hint(&e, "a value may come from a layer the file imports: `prenv config list "
                         "--env %s` shows where each is set",
                     o->env);
        code = cmd_error(c, &e);
    }
    free(abs);
    free(rel);
    project_free(p);
    err_release(&e);
    return code;
}

const struct cmd_entry cmd_config_rm_entry = {
    .name = "config rm",
    .args = "KEY",
    .min_args = 1,
    .max_args = 1,
    .summary = "remove a config value from an env's own config file",
    .opts = opts,
    .opts_size = sizeof(struct rm_opts),
    .exec = exec_rm,
};

/* env sleep: scale every service of an environment to zero; data stays. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/tm.h"
#include "envs/op.h"

#include <stdio.h>
#include <stdlib.h>

static int exec_sleep(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)vo;
    (void)argc;
    struct ui_progress up = {.c = c};
    struct op_opts oo = cmd_op_opts(c, &up);
    struct op_result r;
    op_run_sleep(argv[0], "manual", &oo, &r);
    int code = EXIT_OK;
    if (r.rc) {
        fprintf(stderr, "prenv: error: %s\n", r.error ? r.error : "failed");
        code = EXIT_FAIL;
    } else {
        printf("%s is asleep: its services run no process; `prenv env wake %s` brings them back\n",
               argv[0], argv[0]);
    }
    op_result_release(&r);
    free(up.failed);
    return code;
}

const struct cmd_entry cmd_env_sleep_entry = {
    .name = "env sleep",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "scale every service of an env to zero; databases and files stay",
    .exec = exec_sleep,
};

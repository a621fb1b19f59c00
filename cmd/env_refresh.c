/* env refresh: compare state with reality; report and record drift. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct refresh_opts {
    bool expect_no_changes, json;
};

#define O(f) offsetof(struct refresh_opts, f)
static const struct cmd_opt opts[] = {
    {"expect-no-changes", 0, OPT_BOOL, O(expect_no_changes), NULL,
     "exit with status 3 if anything drifted"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the result as JSON"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_refresh(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct refresh_opts *o = vo;
    struct err e = {0};
    struct ui_progress up = {.c = c, .quiet = o->json};
    struct op_opts oo = cmd_op_opts(c, &up);
    struct op_env *oe = NULL;
    if (op_open(&oe, argv[0], OP_LOCK | OP_NEED_STATE | OP_NO_CONFIG, &oo, &e))
        return cmd_error(c, &e);
    int nd = 0;
    int rc = op_refresh(oe, &oo, &nd, &e);
    int code = EXIT_OK;
    if (rc) {
        code = cmd_error(c, &e);
    } else {
        if (o->json)
            printf("{\"env\": \"%s\", \"drift\": %d, \"resources\": %zu}\n", argv[0], nd,
                   oe->st->nres);
        else if (nd)
            printf("%s: %d resource%s drifted from the state (recorded; `prenv env up %s` puts "
                   "them back)\n",
                   argv[0], nd, nd == 1 ? "" : "s", argv[0]);
        else
            printf("%s: no drift; %zu resource%s match the state\n", argv[0], oe->st->nres,
                   oe->st->nres == 1 ? "" : "s");
        if (nd && o->expect_no_changes)
            code = EXIT_CHANGES;
    }
    err_release(&e);
    free(up.failed);
    op_close(oe);
    return code;
}

const struct cmd_entry cmd_env_refresh_entry = {
    .name = "env refresh",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "detect drift between state and reality, and record it",
    .opts = opts,
    .opts_size = sizeof(struct refresh_opts),
    .exec = exec_refresh,
};

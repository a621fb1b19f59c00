/* env plan: what `env up` would do, with property diffs; secrets masked.
 * Takes no lock and changes nothing. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct plan_opts {
    struct opt_list set;
    bool json, no_refresh, expect_no_changes;
};

#define O(f) offsetof(struct plan_opts, f)
static const struct cmd_opt opts[] = {
    {"set", 0, OPT_LIST, O(set), "K=V", "plan as if this config value were set"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the plan as JSON (see docs/json.md)"},
    {"no-refresh", 0, OPT_BOOL, O(no_refresh), NULL, "trust the state; don't read resources"},
    {"expect-no-changes", 0, OPT_BOOL, O(expect_no_changes), NULL,
     "exit with status 3 if the plan has changes"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_plan(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct plan_opts *o = vo;
    struct err e = {0};
    struct val *sets = NULL;
    if (ui_parse_sets(&sets, o->set.v, o->set.n, &e))
        return cmd_error(c, &e);
    struct ui_progress up = {.c = c, .quiet = true};
    struct op_opts oo = cmd_op_opts(c, &up);
    oo.sets = sets;
    oo.no_refresh = o->no_refresh;
    struct op_env *oe = NULL;
    int rc = op_open(&oe, argv[0], OP_LOAD_TEMPLATE, &oo, &e);
    struct plan p = {0};
    if (!rc)
        rc = op_prepare(oe, &oo, &p, &e);
    int code = EXIT_OK;
    if (rc) {
        code = cmd_error(c, &e);
    } else {
        if (o->json) {
            char *j = ui_plan_json(oe, &p);
            fputs(j, stdout);
            free(j);
        } else {
            ui_plan(c, oe, &p);
        }
        int changes = p.counts[OP_CREATE] + p.counts[OP_UPDATE] + p.counts[OP_REPLACE] +
                      p.counts[OP_DELETE];
        if (o->expect_no_changes && changes)
            code = EXIT_CHANGES;
    }
    plan_release(&p);
    err_release(&e);
    free(up.failed);
    op_close(oe);
    val_free(sets);
    return code;
}

const struct cmd_entry cmd_env_plan_entry = {
    .name = "env plan",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "show what `env up` would do, with property diffs (secrets masked)",
    .opts = opts,
    .opts_size = sizeof(struct plan_opts),
    .exec = exec_plan,
};

/* template render: the fully resolved desired state of an environment as
 * JSON; outputs of resources not yet created show as {"$unknown": ...};
 * secrets are masked. Changes nothing. */
#include "cmd/cmd.h"
#include "core/lib/sb.h"
#include "envs/op.h"

#include <stdio.h>

static int exec_render(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)vo;
    (void)argc;
    struct err e = {0};
    struct op_opts oo = {.project_dir = c->project_dir, .state_dir = c->state_dir};
    struct op_env *oe = NULL;
    struct val *r = NULL;
    int rc = op_open(&oe, argv[0], OP_LOAD_TEMPLATE, &oo, &e);
    if (!rc)
        rc = op_render(oe, &r, &e);
    int code = EXIT_OK;
    if (rc) {
        code = cmd_error(c, &e);
    } else {
        struct sb b;
        sb_init(&b);
        val_json(&b, r, VAL_JSON_MASK | VAL_JSON_PRETTY);
        puts(b.buf);
        sb_release(&b);
    }
    val_free(r);
    err_release(&e);
    op_close(oe);
    return code;
}

const struct cmd_entry cmd_template_render_entry = {
    .name = "template render",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "print the fully resolved desired state of an env as JSON",
    .exec = exec_render,
};

/* template validate: check a template (default: the project's) without
 * touching any environment; with the project's template, also check that
 * every stage's config provides what the template references. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/fs.h"
#include "core/lib/xalloc.h"
#include "envs/op.h"
#include "templates/tpl.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int exec_validate(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)vo;
    struct err e = {0};
    struct tpl *t = NULL;
    int rc;
    if (argc > 0) {
        rc = tpl_load(&t, argv[0], argv[0], &e);
        if (rc)
            return cmd_error(c, &e);
        printf("%s: ok (%zu resource%s, %zu output%s)\n", argv[0], t->n, t->n == 1 ? "" : "s",
               t->outputs ? t->outputs->u.map.n : 0,
               t->outputs && t->outputs->u.map.n == 1 ? "" : "s");
        tpl_free(t);
        return EXIT_OK;
    }
    struct project *p = NULL;
    rc = cmd_project(c, &p, &e);
    if (rc)
        return cmd_error(c, &e);
    char *abs = fs_abspath(p->dir, p->template_file);
    rc = tpl_load(&t, abs, p->template_file, &e);
    free(abs);
    if (rc) {
        project_free(p);
        return cmd_error(c, &e);
    }
    printf("%s: ok (%zu resource%s, %zu output%s)\n", p->template_file, t->n,
           t->n == 1 ? "" : "s", t->outputs ? t->outputs->u.map.n : 0,
           t->outputs && t->outputs->u.map.n == 1 ? "" : "s");
    tpl_free(t);
    int code = EXIT_OK;
    /* render for each stage: catches config keys the template needs but a stage lacks */
    for (size_t i = 0; i < p->nstages; i++) {
        struct op_opts oo = {.project_dir = p->dir, .state_dir = p->state_dir};
        struct op_env *oe = NULL;
        struct val *r = NULL;
        rc = op_open(&oe, p->stages[i].name, OP_LOAD_TEMPLATE, &oo, &e);
        if (!rc)
            rc = op_render(oe, &r, &e);
        if (rc) {
            err_prefix(&e, "stage '%s': ", p->stages[i].name);
            code = cmd_error(c, &e);
            err_release(&e);
        } else {
            printf("  stage %-12s config ok (%s)\n", p->stages[i].name, p->stages[i].config);
        }
        val_free(r);
        op_close(oe);
    }
    project_free(p);
    return code;
}

const struct cmd_entry cmd_template_validate_entry = {
    .name = "template validate",
    .args = "[FILE]",
    .min_args = 0,
    .max_args = 1,
    .summary = "check a template (and, for the project's, every stage's config against it)",
    .opts = NULL,
    .opts_size = 0,
    .exec = exec_validate,
};

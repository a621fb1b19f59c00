/* pr close: what a pull request's closed webhook does, without GitHub: tear
 * the preview down and print the receipt. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct pr_close_opts {
    bool json;
};

static const struct cmd_opt opts[] = {
    {"json", 0, OPT_BOOL, offsetof(struct pr_close_opts, json), NULL, "print the receipt as JSON"},
    {NULL, 0, 0, 0, NULL, NULL},
};

int cmd_pr_number(struct cmd_ctx *c, const char *arg, long long *n);

static int exec_pr_close(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct pr_close_opts *o = vo;
    long long n;
    int code = cmd_pr_number(c, argv[0], &n);
    if (code)
        return code;
    struct err e = {0};
    struct project *p = NULL;
    if (cmd_project(c, &p, &e))
        return cmd_error(c, &e);
    char *env = project_preview_name(p, n);
    project_free(p);
    struct ui_progress up = {.c = c, .quiet = o->json};
    struct op_opts oo = cmd_op_opts(c, &up);
    struct op_result r;
    op_run_destroy(env, &oo, &r);
    if (o->json) {
        struct sb b;
        sb_init(&b);
        sb_adds(&b, "{\"env\": ");
        sb_add_json_str(&b, env);
        sb_addf(&b, ", \"result\": \"%s\", \"removed\": ", r.rc ? "failed" : "ok");
        val_json(&b, r.removed, 0);
        sb_adds(&b, ", \"left\": ");
        val_json(&b, r.left, 0);
        sb_adds(&b, ", \"error\": ");
        if (r.error)
            sb_add_json_str(&b, r.error);
        else
            sb_adds(&b, "null");
        sb_addf(&b, ", \"duration_ms\": %lld}\n", r.ms);
        fputs(b.buf, stdout);
        sb_release(&b);
    } else {
        size_t nr = r.removed ? r.removed->u.list.n : 0, nl = r.left ? r.left->u.list.n : 0;
        if (!r.rc && !nr)
            printf("%s does not exist: nothing to tear down\n", env);
        else
            printf("teardown receipt for %s: %zu removed%s\n", env, nr, nl ? "" : ", nothing left");
        for (size_t i = 0; i < nr; i++)
            printf("  - %s\n", r.removed->u.list.v[i]->u.str.s);
        for (size_t i = 0; i < nl; i++)
            printf("  ! left: %s\n", r.left->u.list.v[i]->u.str.s);
    }
    if (r.rc) {
        fprintf(stderr, "prenv: error: %s\n", r.error ? r.error : "failed");
        code = EXIT_FAIL;
    }
    op_result_release(&r);
    free(up.failed);
    free(env);
    return code;
}

const struct cmd_entry cmd_pr_close_entry = {
    .name = "pr close",
    .args = "NUMBER",
    .min_args = 1,
    .max_args = 1,
    .summary = "tear pull request NUMBER's preview down, as its closed webhook would",
    .opts = opts,
    .opts_size = sizeof(struct pr_close_opts),
    .exec = exec_pr_close,
};

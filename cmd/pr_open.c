/* pr open: what a pull request's opened/synchronize webhook does, without
 * GitHub: bring up the PR's preview at a commit, with the PR's facts. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pr_open_opts {
    const char *sha, *branch, *author, *title;
    bool json;
};

#define O(f) offsetof(struct pr_open_opts, f)
static const struct cmd_opt opts[] = {
    {"sha", 0, OPT_STR, O(sha), "SHA", "the commit to deploy (required)"},
    {"branch", 0, OPT_STR, O(branch), "B", "the PR's branch (${pr.branch})"},
    {"author", 0, OPT_STR, O(author), "U", "the PR's author (${pr.author}; also the owner)"},
    {"title", 0, OPT_STR, O(title), "T", "the PR's title (${pr.title})"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the result as JSON"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

int cmd_pr_number(struct cmd_ctx *c, const char *arg, long long *n);
int cmd_pr_number(struct cmd_ctx *c, const char *arg, long long *n)
{
    const char *p = arg[0] == '#' ? arg + 1 : arg;
    if (!str_parse_int(p, 1, 1000000000, n))
        return cmd_usage_error(c, "'%s' is not a pull request number", arg);
    return 0;
}

static int exec_pr_open(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct pr_open_opts *o = vo;
    long long n;
    int code = cmd_pr_number(c, argv[0], &n);
    if (code)
        return code;
    if (!o->sha)
        return cmd_usage_error(c, "--sha SHA is required: the commit the preview runs");
    struct err e = {0};
    struct project *p = NULL;
    if (cmd_project(c, &p, &e))
        return cmd_error(c, &e);
    char *env = project_preview_name(p, n);
    project_free(p);
    struct val *pr = val_map(NULL);
    val_map_set(pr, "number", NULL, val_int(n, NULL));
    val_map_set(pr, "sha", NULL, val_str(o->sha, NULL));
    val_map_set(pr, "branch", NULL, o->branch ? val_str(o->branch, NULL) : val_null(NULL));
    val_map_set(pr, "author", NULL, o->author ? val_str(o->author, NULL) : val_null(NULL));
    val_map_set(pr, "title", NULL, o->title ? val_str(o->title, NULL) : val_null(NULL));
    struct ui_progress up = {.c = c, .quiet = o->json};
    struct op_opts oo = cmd_op_opts(c, &up);
    oo.sha = o->sha;
    oo.owner = o->author;
    if (!o->json)
        printf("pull request #%lld at %.12s: bringing up %s\n", n, o->sha, env);
    struct op_result r;
    op_run_up(env, &oo, pr, &r);
    if (o->json) {
        struct sb b;
        sb_init(&b);
        sb_adds(&b, "{\"env\": ");
        sb_add_json_str(&b, env);
        sb_addf(&b, ", \"result\": \"%s\", \"error\": ", r.rc ? "failed" : "ok");
        if (r.error)
            sb_add_json_str(&b, r.error);
        else
            sb_adds(&b, "null");
        sb_adds(&b, ", \"outputs\": ");
        val_json(&b, r.outputs, VAL_JSON_MASK);
        sb_addf(&b, ", \"duration_ms\": %lld}\n", r.ms);
        fputs(b.buf, stdout);
        sb_release(&b);
    } else if (!r.rc) {
        struct sb s;
        sb_init(&s);
        ui_summary(&s, r.done, r.ms);
        printf("%s%s is up%s: %s\n", cmd_c(c, "\033[1;32m"), env, cmd_c(c, "\033[0m"), s.buf);
        sb_release(&s);
        ui_outputs(c, r.outputs);
    }
    if (r.rc) {
        fprintf(stderr, "prenv: error: %s\n", r.error ? r.error : "failed");
        code = EXIT_FAIL;
    }
    op_result_release(&r);
    val_free(pr);
    free(up.failed);
    free(env);
    return code;
}

const struct cmd_entry cmd_pr_open_entry = {
    .name = "pr open",
    .args = "NUMBER",
    .min_args = 1,
    .max_args = 1,
    .summary = "bring up pull request NUMBER's preview at --sha, as its webhook would",
    .opts = opts,
    .opts_size = sizeof(struct pr_open_opts),
    .exec = exec_pr_open,
};

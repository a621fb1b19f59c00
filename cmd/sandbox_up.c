/* sandbox up: a personal environment sb-<name or $USER>, owned by the caller,
 * with the sandbox TTL, within the per-owner maximum. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "cmd/env_up.h"
#include "core/lib/xalloc.h"
#include "core/state.h"
#include "envs/op.h"
#include "envs/project.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sb_opts {
    long long ttl;
    struct opt_list set;
    long long parallel;
};

#define O(f) offsetof(struct sb_opts, f)
static const struct cmd_opt opts[] = {
    {"ttl", 0, OPT_DURATION, O(ttl), "DUR", "expire DUR from now (default: sandboxes.ttl)"},
    {"set", 0, OPT_LIST, O(set), "K=V", "set a config value for this sandbox"},
    {"parallel", 'p', OPT_INT, O(parallel), "N", "run at most N operations at once"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_sandbox(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    struct sb_opts *o = vo;
    struct err e = {0};
    struct project *p = NULL;
    int rc = cmd_project(c, &p, &e);
    if (rc)
        return cmd_error(c, &e);
    char *user = op_user();
    char *name = project_sandbox_name(p, argc > 0 ? argv[0] : user);
    int code = EXIT_OK;
    if (!p->sandboxes.enabled) {
        err_set(&e, PE_CONFIG, NULL, "sandboxes are disabled in this project (sandboxes.enabled)");
        code = cmd_error(c, &e);
        goto out;
    }
    if (p->sandboxes.max_per_owner > 0) {
        char **names = NULL;
        size_t n = 0;
        if (state_list(&names, &n, p->state_dir, &e)) {
            code = cmd_error(c, &e);
            goto out;
        }
        int mine = 0;
        for (size_t i = 0; i < n; i++) {
            struct state *s = NULL;
            struct err le = {0};
            if (!strcmp(names[i], name) || state_load(&s, p->state_dir, names[i], &le)) {
                err_release(&le);
                continue;
            }
            if (!strcmp(s->kind, "sandbox") && s->owner && !strcmp(s->owner, user))
                mine++;
            state_free(s);
        }
        state_names_free(names, n);
        if (mine >= p->sandboxes.max_per_owner) {
            err_set(&e, PE_LIMIT, NULL, "%s already has %d sandbox%s, the most this project allows",
                    user, mine, mine == 1 ? "" : "es");
            err_hint(&e, "destroy one first (`prenv env list --kind sandbox`), or raise "
                         "sandboxes.max_per_owner in prenv.yaml");
            code = cmd_error(c, &e);
            goto out;
        }
    }
    struct up_opts uo = {.set = o->set, .owner = user, .ttl = o->ttl, .parallel = o->parallel,
                         .yes = true};
    code = cmd_up_run(c, name, &uo);
out:
    err_release(&e);
    free(name);
    free(user);
    project_free(p);
    return code;
}

const struct cmd_entry cmd_sandbox_up_entry = {
    .name = "sandbox up",
    .args = "[NAME]",
    .min_args = 0,
    .max_args = 1,
    .summary = "create or update your personal sandbox sb-<NAME or $USER>",
    .opts = opts,
    .opts_size = sizeof(struct sb_opts),
    .exec = exec_sandbox,
};

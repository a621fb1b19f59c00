/* reap: the reaper's decisions as a one-shot command, for cron when no
 * daemon runs: destroy what expired, warn what soon will, put to sleep and
 * wake by schedule and inactivity. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "envs/op.h"
#include "envs/project.h"
#include "ttl/reap.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct reap_opts {
    bool dry_run, json;
    const char *at;
};

#define O(f) offsetof(struct reap_opts, f)
static const struct cmd_opt opts[] = {
    {"dry-run", 'n', OPT_BOOL, O(dry_run), NULL, "say what would be done, do nothing"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the decisions as JSON"},
    {"at", 0, OPT_STR, O(at), "TIME", "decide as if it were TIME (with --dry-run)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_reap(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct reap_opts *o = vo;
    long long now = tm_now_ms();
    if (o->at) {
        if (!o->dry_run)
            return cmd_usage_error(c, "--at only goes with --dry-run");
        if (!tm_parse_rfc3339(o->at, &now))
            return cmd_usage_error(c, "--at wants a time like 2026-11-22T18:00:00Z, not '%s'",
                                   o->at);
    }
    struct err e = {0};
    struct project *p = NULL;
    if (cmd_project(c, &p, &e))
        return cmd_error(c, &e);
    struct reap_plan plan;
    if (reap_plan(&plan, p, now, &e)) {
        project_free(p);
        return cmd_error(c, &e);
    }
    int code = EXIT_OK;
    struct sb js;
    sb_init(&js);
    sb_addf(&js, "{\"envs\": %d, \"decisions\": [", plan.envs);
    for (size_t i = 0; i < plan.n; i++) {
        const struct reap_item *it = &plan.items[i];
        const char *result = "planned";
        if (!o->dry_run) {
            struct ui_progress up = {.c = c, .quiet = o->json};
            struct op_opts oo = cmd_op_opts(c, &up);
            struct op_result r;
            switch (it->action) {
            case REAP_DESTROY:
                op_run_destroy(it->env, &oo, &r);
                break;
            case REAP_WARN:
                op_run_warned(it->env, &oo, &r);
                break;
            case REAP_SLEEP:
                op_run_sleep(it->env, it->sleep_why, &oo, &r);
                break;
            case REAP_WAKE:
                op_run_wake(it->env, 0, &oo, &r);
                break;
            }
            result = r.rc ? "failed" : "done";
            if (r.rc) {
                fprintf(stderr, "prenv: error: %s %s: %s\n", reap_action_name(it->action), it->env,
                        r.error ? r.error : "failed");
                code = EXIT_FAIL;
            }
            op_result_release(&r);
            free(up.failed);
        }
        if (o->json) {
            sb_adds(&js, i ? ",\n  {\"env\": " : "\n  {\"env\": ");
            sb_add_json_str(&js, it->env);
            sb_addf(&js, ", \"action\": \"%s\", \"why\": ", reap_action_name(it->action));
            sb_add_json_str(&js, it->why);
            sb_addf(&js, ", \"result\": \"%s\"}", result);
        } else {
            printf("%-8s %-24s %s%s\n", reap_action_name(it->action), it->env, it->why,
                   o->dry_run ? "  (dry run)" : "");
        }
    }
    struct sb nx;
    sb_init(&nx);
    if (plan.next_ms != LLONG_MAX)
        tm_rfc3339(&nx, plan.next_ms);
    if (o->json) {
        sb_adds(&js, plan.n ? "\n], \"next\": " : "], \"next\": ");
        if (nx.len)
            sb_add_json_str(&js, nx.buf);
        else
            sb_adds(&js, "null");
        sb_adds(&js, "}\n");
        fputs(js.buf, stdout);
    } else {
        if (!plan.n)
            printf("nothing to do for %d environment%s\n", plan.envs, plan.envs == 1 ? "" : "s");
        if (nx.len)
            printf("next event at %s\n", nx.buf);
    }
    sb_release(&nx);
    sb_release(&js);
    reap_plan_release(&plan);
    project_free(p);
    return code;
}

const struct cmd_entry cmd_reap_entry = {
    .name = "reap",
    .args = NULL,
    .min_args = 0,
    .max_args = 0,
    .summary = "destroy expired envs, warn, sleep and wake by schedule — once, for cron",
    .opts = opts,
    .opts_size = sizeof(struct reap_opts),
    .exec = exec_reap,
};

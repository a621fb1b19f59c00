/* env list: every environment with a state, as a table or JSON. Reads only
 * the summary fields of each state file; takes no locks. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/state.h"
#include "envs/project.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct list_opts {
    bool json;
    const char *kind;
    struct opt_list tag;
};

#define O(f) offsetof(struct list_opts, f)
static const struct cmd_opt opts[] = {
    {"json", 0, OPT_BOOL, O(json), NULL, "print JSON (see docs/json.md)"},
    {"kind", 'k', OPT_STR, O(kind), "KIND", "only envs of this kind: stage, preview or sandbox"},
    {"tag", 't', OPT_LIST, O(tag), "K=V", "only envs with this tag (all given tags must match)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O


static void rel_time(struct sb *b, long long ms)
{
    long long now = tm_now_ms();
    if (ms > now) {
        sb_adds(b, "in ");
        dur_fmt(b, ((ms - now) / 1000) * 1000);
    } else {
        dur_fmt(b, ((now - ms) / 1000) * 1000);
        sb_adds(b, " ago");
    }
}

static int exec_list(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct list_opts *o = vo;
    struct err e = {0};
    if (o->kind) {
        enum env_kind k;
        if (!env_kind_parse(o->kind, &k))
            return cmd_usage_error(c, "--kind must be stage, preview or sandbox, not '%s'",
                                   o->kind);
    }
    for (size_t i = 0; i < o->tag.n; i++)
        if (!strchr(o->tag.v[i], '=') || o->tag.v[i][0] == '=')
            return cmd_usage_error(c, "--tag expects K=V, not '%s'", o->tag.v[i]);
    struct project *p = NULL;
    int rc = cmd_project(c, &p, &e);
    if (rc)
        return cmd_error(c, &e);
    char **names = NULL;
    size_t n = 0;
    if ((rc = state_list(&names, &n, p->state_dir, &e))) {
        project_free(p);
        return cmd_error(c, &e);
    }
    struct sb out;
    sb_init(&out);
    if (o->json)
        sb_adds(&out, "[");
    size_t shown = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct st_summary sm;
        struct err re = {0};
        if (state_summary(&sm, p->state_dir, names[i], &re)) {
            err_release(&re);
            bad++;
            cmd_warn(c, "state of '%s' cannot be read; `prenv env show %s` says why", names[i],
                     names[i]);
            continue;
        }
        bool keep = !o->kind || (sm.kind && !strcmp(sm.kind, o->kind));
        for (size_t t = 0; keep && t < o->tag.n; t++) {
            const char *eq = strchr(o->tag.v[t], '=');
            char *k = xstrndup(o->tag.v[t], (size_t)(eq - o->tag.v[t]));
            const char *tv = val_map_str(sm.tags, k, NULL);
            keep = tv && !strcmp(tv, eq + 1);
            free(k);
        }
        if (!keep) {
            st_summary_release(&sm);
            continue;
        }
        if (o->json) {
            sb_adds(&out, shown ? ",\n  " : "\n  ");
            st_summary_json(&out, &sm);
        } else {
            struct sb age, exp;
            sb_init(&age);
            sb_init(&exp);
            if (sm.created_ms && tm_now_ms() - sm.created_ms >= 60000)
                dur_fmt(&age, ((tm_now_ms() - sm.created_ms) / 60000) * 60000);
            else
                sb_adds(&age, "<1m");
            char why[64];
            long long at = st_summary_expiry(&sm, why, sizeof why);
            if (at) {
                rel_time(&exp, at);
                sb_addf(&exp, " (%s)", strncmp(why, "idle", 4) ? why : "idle");
            } else {
                sb_adds(&exp, "never");
            }
            const char *status = sm.status;
            const char *col = !status                  ? ""
                              : !strcmp(status, "up")  ? cmd_c(c, "\033[32m")
                              : strstr(status, "fail") ? cmd_c(c, "\033[31m")
                                                       : cmd_c(c, "\033[33m");
            sb_addf(&out, "%-24s %-8s %-12s %s%-15s%s %5d  %-10s %-18s %s\n", names[i],
                    sm.kind ? sm.kind : "?", sm.owner ? sm.owner : "-", col, status ? status : "?",
                    cmd_c(c, "\033[0m"), sm.resources, age.buf, exp.buf, sm.url ? sm.url : "");
            sb_release(&age);
            sb_release(&exp);
        }
        shown++;
        st_summary_release(&sm);
    }
    if (o->json)
        sb_adds(&out, shown ? "\n]\n" : "]\n");
    if (!o->json && shown)
        printf("%s%-24s %-8s %-12s %-15s %5s  %-10s %-18s %s%s\n", cmd_c(c, "\033[1m"), "NAME",
               "KIND", "OWNER", "STATUS", "RES", "AGE", "EXPIRES", "URL", cmd_c(c, "\033[0m"));
    fputs(out.buf, stdout);
    if (!o->json && !shown)
        fprintf(stderr, "no environments%s; `prenv env up ENV` creates one\n",
                o->kind || o->tag.n ? " match" : "");
    sb_release(&out);
    state_names_free(names, n);
    project_free(p);
    return bad ? EXIT_FAIL : EXIT_OK;
}

const struct cmd_entry cmd_env_list_entry = {
    .name = "env list",
    .args = NULL,
    .min_args = 0,
    .max_args = 0,
    .summary = "list environments: kind, owner, status, resources, age, expiry, URL",
    .opts = opts,
    .opts_size = sizeof(struct list_opts),
    .exec = exec_list,
};

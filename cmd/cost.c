/* cost: what environments cost over a period — running and asleep hours,
 * cost and what sleeping saved — per env or per tag value, from history and
 * prenv.yaml's rate card (docs/cost.md). Takes no locks. */
#include "envs/cost.h"
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "envs/project.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cost_opts {
    bool json;
    const char *by;
    long long since;   /* ms, 0 = the whole history */
    const char *until; /* RFC 3339, NULL = now */
};

#define O(f) offsetof(struct cost_opts, f)
static const struct cmd_opt opts[] = {
    {"by", 'b', OPT_STR, O(by), "TAG", "one row per value of this tag (case-sensitive)"},
    {"since", 's', OPT_DURATION, O(since), "DUR", "only the last DUR (default: all history)"},
    {"until", 0, OPT_STR, O(until), "TIME", "end of the period, RFC 3339 (default: now)"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print JSON (see docs/json.md)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static void row(struct sb *out, const char *name, size_t w, const struct cost_usage *u)
{
    sb_addf(out, "%-*s %9.1f %9.1f %12.2f %12.2f\n", (int)w, name, u->running_h, u->asleep_h,
            u->cost, u->saved);
}

static int exec_cost(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct cost_opts *o = vo;
    struct err e = {0};
    long long to = tm_now_ms();
    if (o->until && !tm_parse_rfc3339(o->until, &to))
        return cmd_usage_error(c,
                               "--until expects an RFC 3339 time such as "
                               "2026-11-01T00:00:00Z, not '%s'",
                               o->until);
    if (o->by && !*o->by)
        return cmd_usage_error(c, "--by expects a tag name");
    long long from = o->since > 0 ? to - o->since : 0;
    struct project *p = NULL;
    if (cmd_project(c, &p, &e))
        return cmd_error(c, &e);
    struct cost_row *rows = NULL;
    size_t n = 0;
    if (cost_collect(&rows, &n, p, from, to, &e)) {
        project_free(p);
        return cmd_error(c, &e);
    }
    int code = EXIT_OK;
    if (o->by && !cost_tag_known(rows, n, o->by)) {
        code = cmd_usage_error(c,
                               "--by: no environment has a tag '%s' (tags are case-sensitive: "
                               "Environment, Application, Owner, CostCenter, DataClass...)",
                               o->by);
        goto out;
    }
    if (!p->cost.set && !o->json)
        cmd_warn(c, "prenv.yaml has no cost: rate card, so every figure is 0; add one "
                    "(docs/cost.md) to price the hours below");
    struct sb out;
    sb_init(&out);
    if (o->json) {
        cost_json(&out, rows, n, o->by, &p->cost, from, to);
    } else if (n) {
        const char *cur = p->cost.currency;
        struct cost_usage total = {0};
        size_t w = 8;
        struct cost_group *g = NULL;
        size_t ng = 0;
        if (o->by)
            cost_group(&g, &ng, rows, n, o->by);
        for (size_t i = 0; i < (o->by ? ng : n); i++) {
            size_t l =
                o->by ? strlen(g[i].key) : strlen(rows[i].env) + (rows[i].destroyed ? 12 : 0);
            if (l > w)
                w = l;
        }
        char *hc = *cur ? xasprintf("COST %s", cur) : xstrdup("COST");
        char *hs = *cur ? xasprintf("SAVED %s", cur) : xstrdup("SAVED");
        sb_addf(&out, "%s%-*s %9s %9s %12s %12s%s\n", cmd_c(c, "\033[1m"), (int)w,
                o->by ? o->by : "ENV", "RUNNING_H", "ASLEEP_H", hc, hs, cmd_c(c, "\033[0m"));
        free(hc);
        free(hs);
        for (size_t i = 0; i < (o->by ? ng : n); i++) {
            if (o->by) {
                row(&out, g[i].key, w, &g[i].u);
                continue;
            }
            char *name =
                rows[i].destroyed ? xasprintf("%s (destroyed)", rows[i].env) : xstrdup(rows[i].env);
            row(&out, name, w, &rows[i].u);
            free(name);
        }
        for (size_t i = 0; i < n; i++) {
            total.running_h += rows[i].u.running_h;
            total.asleep_h += rows[i].u.asleep_h;
            total.cost += rows[i].u.cost;
            total.saved += rows[i].u.saved;
        }
        row(&out, "total", w, &total);
        cost_groups_free(g, ng);
    }
    fputs(out.buf, stdout);
    if (!o->json && !n)
        fprintf(stderr, "no environments in this period\n");
    sb_release(&out);
out:
    cost_rows_free(rows, n);
    project_free(p);
    return code;
}

const struct cmd_entry cmd_cost_entry = {
    .name = "cost",
    .args = NULL,
    .min_args = 0,
    .max_args = 0,
    .summary = "running and asleep hours, cost and what sleeping saved, per env or per tag",
    .help = "Adds up each environment's history: while it runs it costs its replicas and\n"
            "databases at the rates of prenv.yaml's `cost:` card, while it sleeps only its\n"
            "databases; SAVED is what the replicas would have cost over the asleep hours.\n"
            "Destroyed environments count for the part of the period they lived.\n"
            "--by groups by a tag's value (CostCenter, DataClass, Owner...); envs without\n"
            "it form the row \"(none)\". See docs/cost.md.",
    .opts = opts,
    .opts_size = sizeof(struct cost_opts),
    .exec = exec_cost,
};

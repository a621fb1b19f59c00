/* env show: everything prenv knows about one environment — metadata,
 * resources with ids and outputs, config layers, TTL, artifact, lock, history.
 * Secrets are masked. Needs no lock, no template and no passphrase. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lock.h"
#include "core/state.h"
#include "envs/envpolicy.h"
#include "envs/op.h"
#include "ttl/sched.h"

#include <limits.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct show_opts {
    bool json;
    long long history;
};

#define O(f) offsetof(struct show_opts, f)
static const struct cmd_opt opts[] = {
    {"json", 0, OPT_BOOL, O(json), NULL, "print JSON (see docs/json.md)"},
    {"history", 0, OPT_INT, O(history), "N", "show the last N history records (default 10)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static void time_line(struct cmd_ctx *c, const char *label, long long ms)
{
    (void)c;
    struct sb b;
    sb_init(&b);
    if (ms) {
        tm_rfc3339(&b, ms);
        long long now = tm_now_ms();
        sb_adds(&b, ms > now ? " (in " : " (");
        dur_fmt(&b, ((ms > now ? ms - now : now - ms) / 1000) * 1000);
        sb_adds(&b, ms > now ? ")" : " ago)");
    } else {
        sb_adds(&b, "never");
    }
    printf("  %-10s %s\n", label, b.buf);
    sb_release(&b);
}

/* expiry and its reason, idle and sleep state, and the schedule's answer now */
static void lifecycle_lines(struct cmd_ctx *c, const struct op_env *oe)
{
    const struct state *st = oe->st;
    struct st_summary sm = {
        .kind = st->kind,
        .expires_ms = st->expires_ms,
        .activity_ms = st->activity_ms,
        .idle_ms = st->idle_ms,
    };
    char why[64];
    long long exp = st_summary_expiry(&sm, why, sizeof why);
    time_line(c, "expires", exp);
    if (exp)
        printf("  %-10s %s\n", "because", why);
    struct sb t;
    sb_init(&t);
    if (st->ttl_ms) {
        dur_fmt(&t, st->ttl_ms);
        printf("  %-10s %s\n", "ttl", t.buf);
    }
    if (st->idle_ms) {
        sb_reset(&t);
        dur_fmt(&t, st->idle_ms);
        printf("  %-10s %s without activity\n", "idle", t.buf);
    }
    if (st->activity_ms)
        time_line(c, "activity", st->activity_ms);
    if (st->asleep_why) {
        sb_reset(&t);
        tm_rfc3339(&t, st->asleep_ms);
        printf("  %-10s %s, since %s\n", "asleep", st->asleep_why, t.buf);
    } else if (st->wake_until_ms > tm_now_ms()) {
        sb_reset(&t);
        tm_rfc3339(&t, st->wake_until_ms);
        printf("  %-10s awake by hand until %s, then the schedule applies\n", "wake", t.buf);
    }
    if (st->schedule) {
        struct sched_policy *pol = NULL;
        struct err e = {0};
        if (!sched_policy_parse(&pol, st->schedule, &e)) {
            long long now = tm_now_ms(), nx = sched_policy_next(pol, now);
            bool up = sched_policy_up(pol, now);
            printf("  %-10s %s now: %s", "schedule", up ? "up" : "down",
                   sched_policy_why(pol, now));
            if (nx != LLONG_MAX) {
                sb_reset(&t);
                tm_rfc3339(&t, nx);
                printf("; %s from %s", up ? "down" : "up", t.buf);
            }
            printf("\n");
            sched_policy_free(pol);
        } else {
            printf("  %-10s unreadable: %s\n", "schedule", e.msg);
            err_release(&e);
        }
    }
    sb_release(&t);
}

static int exec_show(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct show_opts *o = vo;
    struct err e = {0};
    struct op_opts oo = {.project_dir = c->project_dir, .state_dir = c->state_dir};
    struct op_env *oe = NULL;
    if (op_open(&oe, argv[0], OP_NEED_STATE | OP_NO_CONFIG, &oo, &e))
        return cmd_error(c, &e);
    struct state *st = oe->st;
    size_t nh = o->history > 0 ? (size_t)o->history : 10;
    struct val *hist = NULL;
    state_history_read(&hist, oe->proj->state_dir, st->env, nh, &e);
    err_release(&e);
    bool held = false;
    struct lock_holder h = {0};
    lock_inspect(oe->proj->state_dir, st->env, &held, &h, &e);
    err_release(&e);
    /* log level and flags as the env's config gives them now (no secret is
     * decrypted for this); unreadable config shows the defaults */
    struct envcfg *cfg = NULL;
    if (envcfg_load(&cfg, oe->proj, oe->def.config, st->sets, &e))
        cfg = NULL;
    err_release(&e);
    const struct val *cv = cfg ? cfg->values : NULL;
    const char *level = env_log_level(oe->def.kind, cv);
    const struct val *flags = cv ? val_map_get(cv, "flags") : NULL;
    if (flags && flags->kind != VAL_MAP)
        flags = NULL;
    if (o->json) {
        struct sb b;
        sb_init(&b);
        state_serialize(&b, st, true);
        /* splice history and lock into the masked state document */
        while (b.len && (b.buf[b.len - 1] == '\n' || b.buf[b.len - 1] == '}'))
            b.buf[--b.len] = 0;
        sb_adds(&b, ",\n  \"log_level\": ");
        sb_add_json_str(&b, level);
        sb_adds(&b, ",\n  \"flags\": ");
        if (flags)
            val_json(&b, flags, VAL_JSON_MASK);
        else
            sb_adds(&b, "{}");
        sb_adds(&b, ",\n  \"history\": ");
        val_json(&b, hist, VAL_JSON_MASK);
        sb_adds(&b, ",\n  \"lock\": ");
        if (held) {
            sb_addf(&b, "{\"pid\": %ld, \"host\": ", h.pid);
            sb_add_json_str(&b, h.host ? h.host : "");
            sb_adds(&b, ", \"user\": ");
            sb_add_json_str(&b, h.user ? h.user : "");
            sb_adds(&b, ", \"command\": ");
            sb_add_json_str(&b, h.command ? h.command : "");
            sb_adds(&b, "}");
        } else {
            sb_adds(&b, "null");
        }
        sb_adds(&b, "\n}\n");
        fputs(b.buf, stdout);
        sb_release(&b);
    } else {
        const char *bo = cmd_c(c, "\033[1m"), *off = cmd_c(c, "\033[0m");
        printf("%s%s%s  %s, %s\n", bo, st->env, off, st->kind, st->status);
        printf("  %-10s %s\n", "project", st->project ? st->project : "?");
        printf("  %-10s %s\n", "owner", st->owner ? st->owner : "-");
        time_line(c, "created", st->created_ms);
        time_line(c, "updated", st->updated_ms);
        lifecycle_lines(c, oe);
        if (st->sha)
            printf("  %-10s %s\n", "sha", st->sha);
        if (st->artifact && st->artifact->kind == VAL_MAP) {
            /* name version, the digest whole (it is what people compare),
             * where it came from and, after a promotion, from which env */
            const struct val *a = st->artifact;
            printf("  %-10s %s %s %s\n", "artifact", val_map_str(a, "name", "?"),
                   val_map_str(a, "version", "?"), val_map_str(a, "digest", "?"));
            printf("  %-10s from %s", "", val_map_str(a, "uri", "?"));
            const char *pf = val_map_str(a, "promoted_from", NULL);
            if (pf)
                printf(", promoted from %s", pf);
            printf("\n");
        } else if (st->artifact) {
            struct sb a;
            sb_init(&a);
            ui_value(&a, st->artifact, 200);
            printf("  %-10s %s\n", "artifact", a.buf);
            sb_release(&a);
        }
        if (st->last_error)
            printf("  %-10s %s\n", "error", st->last_error);
        if (held) {
            struct sb hb;
            sb_init(&hb);
            lock_holder_describe(&hb, &h);
            printf("  %-10s held by %s\n", "lock", hb.buf);
            sb_release(&hb);
        }
        printf("  %-10s", "layers");
        for (size_t i = 0; st->layers && i < st->layers->u.list.n; i++)
            printf("%s%s", i ? " <- " : " ", st->layers->u.list.v[i]->u.str.s);
        printf("\n  %-10s", "tags");
        for (size_t i = 0; st->tags && i < st->tags->u.map.n; i++)
            printf(" %s=%s", st->tags->u.map.e[i].key,
                   st->tags->u.map.e[i].v->kind == VAL_STR ? st->tags->u.map.e[i].v->u.str.s : "?");
        printf("\n  %-10s %s\n", "log_level", level);
        printf("  %-10s", "flags");
        for (size_t i = 0; flags && i < flags->u.map.n; i++) {
            struct sb v;
            sb_init(&v);
            const struct val *fv = flags->u.map.e[i].v;
            if (fv->kind == VAL_STR && !fv->encrypted && !fv->secret)
                sb_adds(&v, fv->u.str.s);
            else
                ui_value(&v, fv, 100);
            printf(" %s=%s", flags->u.map.e[i].key, v.buf);
            sb_release(&v);
        }
        printf("\n%sresources%s (%zu)\n", bo, off, st->nres);
        for (size_t i = 0; i < st->nres; i++) {
            const struct st_res *r = &st->res[i];
            printf("  %-16s %-16s %s%s\n", r->name, r->type, r->id ? r->id : "",
                   r->protect ? "  [protected]" : "");
            for (size_t k = 0; r->outputs && k < r->outputs->u.map.n; k++) {
                struct sb v;
                sb_init(&v);
                ui_value(&v, r->outputs->u.map.e[k].v, 100);
                printf("      %s = %s\n", r->outputs->u.map.e[k].key, v.buf);
                sb_release(&v);
            }
        }
        for (size_t i = 0; i < st->npend; i++)
            printf("  %s! pending %s of '%s'%s (an interrupted run; the next up or destroy "
                   "settles it)\n",
                   cmd_c(c, "\033[33m"), st->pend[i].op, st->pend[i].resource, off);
        ui_outputs(c, st->outputs);
        if (hist && hist->u.list.n) {
            printf("%shistory%s\n", bo, off);
            for (size_t i = 0; i < hist->u.list.n; i++) {
                const struct val *r = hist->u.list.v[i];
                printf("  %s  %-8s %-8s %-10s %s\n", val_map_str(r, "time", "?"),
                       val_map_str(r, "operation", "?"), val_map_str(r, "result", "?"),
                       val_map_str(r, "user", "?"), val_map_str(r, "sha", ""));
            }
        }
    }
    val_free(hist);
    envcfg_free(cfg);
    lock_holder_release(&h);
    op_close(oe);
    return EXIT_OK;
}

const struct cmd_entry cmd_env_show_entry = {
    .name = "env show",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "resources, ids, outputs, config layers, owner, tags, TTL, artifact, history",
    .opts = opts,
    .opts_size = sizeof(struct show_opts),
    .exec = exec_show,
};

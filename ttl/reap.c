/* reap: lifecycle decisions for every environment at an instant. */
#include "ttl/reap.h"

#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "envs/project.h"
#include "ttl/sched.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *reap_action_name(enum reap_action a)
{
    static const char *const n[] = {"destroy", "warn", "sleep", "wake"};
    return (unsigned)a < 4 ? n[a] : "?";
}

long long reap_expiry(const struct st_summary *s, bool stage, char *why, size_t whylen)
{
    if (stage) {
        if (why && whylen)
            why[0] = 0;
        return 0; /* stages never expire */
    }
    return st_summary_expiry(s, why, whylen);
}

static void add(struct reap_plan *p, enum reap_action a, const struct st_summary *s, char *why,
                const char *sleep_why, long long expiry)
{
    XGROW(p->items, p->cap, p->n + 1);
    struct reap_item *it = &p->items[p->n++];
    memset(it, 0, sizeof *it);
    it->action = a;
    it->env = xstrdup(s->env);
    it->why = why;
    it->sleep_why = sleep_why ? xstrdup(sleep_why) : NULL;
    it->expiry = expiry;
    if (s->pr_repo && s->pr_number > 0) {
        it->repo = xstrdup(s->pr_repo);
        it->number = s->pr_number;
    }
}

static void soonest(struct reap_plan *p, long long now, long long at)
{
    if (at > now && at < p->next_ms)
        p->next_ms = at;
}

void reap_plan_release(struct reap_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].env);
        free(p->items[i].why);
        free(p->items[i].sleep_why);
        free(p->items[i].repo);
    }
    free(p->items);
    memset(p, 0, sizeof *p);
}

static void decide(struct reap_plan *p, const struct project *proj, const struct st_summary *s,
                   long long now)
{
    struct env_def d;
    struct err e = {0};
    if (project_env(&d, proj, s->env, &e)) {
        err_release(&e); /* an env the project no longer defines: left for a person */
        return;
    }
    bool stage = d.kind == ENV_STAGE;
    long long idle_sleep = d.idle_sleep_ms, warn_ms = d.warn_ms;
    env_def_release(&d);
    const char *status = s->status ? s->status : "";
    if (!strcmp(status, "destroying") || !strcmp(status, "creating"))
        return; /* something is at work on it */
    /* expiry, and its warning */
    char why[128];
    long long exp = reap_expiry(s, stage, why, sizeof why);
    if (exp && now >= exp) {
        struct sb b;
        sb_init(&b);
        sb_addf(&b, "expired: %s", why);
        if (!strcmp(status, "destroy-failed"))
            sb_adds(&b, " (retrying what is left)");
        add(p, REAP_DESTROY, s, sb_steal(&b), NULL, exp);
        return;
    }
    if (!strcmp(status, "destroy-failed"))
        return; /* a person destroyed it and it failed: theirs to retry */
    if (exp) {
        /* warn warn_before ahead, but not before half the lifetime has gone:
         * a 2-minute preview is not "expiring soon" the moment it is born */
        long long anchor = strncmp(why, "idle", 4) ? s->created_ms : s->activity_ms;
        long long lead = warn_ms;
        if (anchor && anchor < exp && lead > (exp - anchor) / 2)
            lead = (exp - anchor) / 2;
        long long warn_at = exp - lead;
        if (warn_ms > 0 && s->warned_ms < warn_at) {
            if (now >= warn_at) {
                struct sb b;
                sb_init(&b);
                sb_adds(&b, "expires at ");
                tm_rfc3339(&b, exp);
                sb_addf(&b, " (%s)", why);
                add(p, REAP_WARN, s, sb_steal(&b), NULL, exp);
            } else {
                soonest(p, now, warn_at);
            }
        }
        soonest(p, now, exp);
    }
    bool asleep = s->asleep_why != NULL;
    /* sleep after inactivity (a request wakes it again) */
    if (idle_sleep > 0 && !asleep && s->activity_ms) {
        long long at = s->activity_ms + idle_sleep;
        if (now >= at) {
            struct sb b;
            sb_init(&b);
            sb_adds(&b, "idle: no activity for ");
            dur_fmt(&b, idle_sleep);
            add(p, REAP_SLEEP, s, sb_steal(&b), "idle", 0);
            return;
        }
        soonest(p, now, at);
    }
    /* the schedule */
    if (!s->schedule)
        return;
    struct sched_policy *pol = NULL;
    if (sched_policy_parse(&pol, s->schedule, &e)) {
        err_release(&e); /* validated when the env was brought up; nothing to do now */
        return;
    }
    bool up = sched_policy_up(pol, now);
    long long nx = sched_policy_next(pol, now);
    bool held = s->wake_until_ms > now; /* a manual wake holds over the schedule */
    if (held)
        soonest(p, now, s->wake_until_ms);
    if (!up && !asleep && !held) {
        struct sb b;
        sb_init(&b);
        const char *w = sched_policy_why(pol, now);
        sb_addf(&b, "schedule: %s", w ? w : "outside its uptime");
        add(p, REAP_SLEEP, s, sb_steal(&b), "schedule", 0);
    } else if (up && asleep && !strcmp(s->asleep_why, "schedule")) {
        add(p, REAP_WAKE, s, xstrdup("schedule: inside its uptime again"), NULL, 0);
    }
    if (nx != LLONG_MAX)
        soonest(p, now, nx);
    sched_policy_free(pol);
}

int reap_plan(struct reap_plan *out, const struct project *p, long long now, struct err *e)
{
    memset(out, 0, sizeof *out);
    out->next_ms = LLONG_MAX;
    char **names = NULL;
    size_t n = 0;
    int rc = state_list(&names, &n, p->state_dir, e);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct st_summary s;
        struct err se = {0};
        if (state_summary(&s, p->state_dir, names[i], &se)) {
            err_release(&se);
            continue;
        }
        out->envs++;
        decide(out, p, &s, now);
        st_summary_release(&s);
    }
    state_names_free(names, n);
    return 0;
}

/* reap: what should happen to every environment now, and when the next
 * thing will: expiry (a hard TTL from creation, or idle since the last
 * activity), a warning before it, sleep after inactivity, and the schedule's
 * sleep and wake. A pure decision over the states' summaries and a clock;
 * carrying the decisions out is the daemon's or `prenv reap`'s business.
 * Stages never expire; a manual sleep is never undone by the schedule; a
 * manual wake's --until holds over the schedule. */
#ifndef PRENV_REAP_H
#define PRENV_REAP_H

#include "core/lib/err.h"
#include "core/state.h"

#include <stdbool.h>
#include <stddef.h>

struct project;

enum reap_action { REAP_DESTROY, REAP_WARN, REAP_SLEEP, REAP_WAKE };

struct reap_item {
    enum reap_action action;
    char *env;
    char *why;        /* "expired: ttl 2m", "idle for 2h", "schedule: outside Mon-Fri 08:00-19:00 ..." */
    char *sleep_why;  /* REAP_SLEEP: "schedule" or "idle" */
    long long expiry; /* REAP_WARN: when it expires */
    char *repo;       /* the PR's repository, when the env is a PR's preview */
    long long number; /* the PR's number */
};

struct reap_plan {
    struct reap_item *items;
    size_t n, cap;
    long long next_ms; /* the earliest future event; LLONG_MAX when none */
    int envs;          /* how many environments were looked at */
};

const char *reap_action_name(enum reap_action a);
/* reap_expiry: when the env expires and why ("ttl 72h", "idle 2h"); 0 = never. */
long long reap_expiry(const struct st_summary *s, bool stage, char *why, size_t whylen);
/* reap_plan: decide for every env of the project at now. */
int reap_plan(struct reap_plan *out, const struct project *p, long long now, struct err *e);
void reap_plan_release(struct reap_plan *p);

#endif

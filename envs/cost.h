/* cost: what environments cost, from their history and the project's rate
 * card (docs/cost.md). An env costs its replicas and databases per hour while
 * it runs, and only its databases while it sleeps; what sleeping saved is what
 * the replicas would have cost over the asleep hours. History records carry
 * the counts (cost_counts); older ones without them take the nearest later
 * record's, or the env's current resources. This module reads state and
 * history but prints nothing. */
#ifndef PRENV_COST_H
#define PRENV_COST_H

#include "core/lib/err.h"
#include "core/lib/val.h"
#include "core/state.h"
#include "envs/project.h"

#include <stdbool.h>
#include <stddef.h>

struct cost_usage {
    double running_h, asleep_h; /* hours */
    double cost, saved;         /* in the card's currency */
};

/* cost_counts: set rec's "replicas" ({size: count}), "databases" and "asleep"
 * from what st runs. */
void cost_counts(struct val *rec, const struct state *st);

/* cost_env: add one env's usage over [from_ms, to_ms] to *u. hist is its
 * history (a list of records, oldest first); fallback is a record whose
 * counts stand for records without any (NULL = none). */
void cost_env(struct cost_usage *u, const struct val *hist, const struct val *fallback,
              const struct cost_card *card, long long from_ms, long long to_ms);

struct cost_row {
    char *env;
    bool destroyed;
    struct val *tags; /* map; empty when unknown (destroyed before tags were recorded) */
    struct cost_usage u;
};

/* cost_collect: one row per live env and per destroyed env whose history
 * touches [from_ms, to_ms] (history/destroyed.jsonl). Caller frees with
 * cost_rows_free. */
int cost_collect(struct cost_row **rows, size_t *n, const struct project *p, long long from_ms,
                 long long to_ms, struct err *e);
void cost_rows_free(struct cost_row *rows, size_t n);

struct cost_group {
    char *key; /* the tag's value, or "(none)" */
    size_t envs;
    struct cost_usage u;
};
/* cost_group: rows summed by the value of tag `by`, sorted by key. Caller
 * frees with cost_groups_free. */
void cost_group(struct cost_group **groups, size_t *n, const struct cost_row *rows, size_t nrows,
                const char *by);
void cost_groups_free(struct cost_group *g, size_t n);

/* cost_json: the document `prenv cost --json` prints and GET /api/v1/cost
 * answers: per env, or per value of tag `by` (NULL = per env). */
void cost_json(struct sb *out, const struct cost_row *rows, size_t n, const char *by,
               const struct cost_card *card, long long from_ms, long long to_ms);
/* cost_tag_known: some row carries tag key, or key is one of the taxonomy's */
bool cost_tag_known(const struct cost_row *rows, size_t n, const char *key);

#endif

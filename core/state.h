/* state: what prenv believes exists for one environment — resources with ids,
 * inputs and outputs, pending operations (the journal), metadata (kind, owner,
 * tags, TTL, sha, artifact) — stored as one JSON document per environment in
 * <state dir>/state/<env>.json, written atomically (temp, fsync, rename, fsync
 * dir) with mode 0600 and a schema version. History is a JSON-lines file per
 * environment, appended durably. Locking is lock.h's business. */
#ifndef PRENV_STATE_H
#define PRENV_STATE_H

#include "core/lib/err.h"
#include "core/lib/val.h"

#include <stdbool.h>
#include <stddef.h>

#define STATE_SCHEMA 1
#define STATE_MAX_FILE ((size_t)64 << 20)

struct st_res {
    char *name;
    char *type;
    char *id;
    struct val *inputs;  /* properties as last applied */
    char *inputs_hash;   /* sha256 of their canonical JSON */
    struct val *outputs; /* map */
    struct val *priv;    /* provider-private map, may be NULL */
    char **deps;         /* names of resources it depended on */
    size_t ndeps;
    bool protect;
    char *drift; /* what refresh found different from reality; NULL = none */
    long long created_ms, updated_ms;
};

/* A journal entry: an operation started but not known to have finished. */
struct st_pending {
    char *resource;
    char *type;
    char *op;           /* "create", "update", "delete" */
    struct val *inputs; /* create/update: the inputs being applied */
    long long since_ms;
};

struct state {
    int schema;
    int jfd;         /* the open journal, -1 when none */
    int jrecords;    /* records appended since the last full save */
    char *env, *kind, *project;
    char *owner;
    char *status; /* creating, up, failed, destroying, destroy-failed */
    long long created_ms, updated_ms;
    long long expires_ms; /* 0 = never */
    long long ttl_ms;     /* the TTL it was created with, 0 = none */
    char *sha;
    char *last_error;
    /* lifecycle (ttl/): sleeping, idle expiry, warnings */
    char *asleep_why;       /* NULL when awake: "schedule", "idle", "manual" */
    long long asleep_ms;    /* since when */
    long long wake_until_ms; /* a manual wake holds until then, over the schedule; 0 = none */
    long long activity_ms;  /* last push, deploy or request (the idle TTL's anchor) */
    long long idle_ms;      /* idle TTL, 0 = none */
    long long warned_ms;    /* when the expiry warning went out; 0 = not yet */
    struct val *schedule;   /* the env's schedule policy {uptime, downtime, holidays}, or NULL */
    struct val *tags;     /* map */
    struct val *sets;     /* map: --set values kept for later runs */
    struct val *artifact; /* map or NULL */
    struct val *pr;       /* map or NULL */
    struct val *outputs;  /* the template's outputs, map */
    struct val *layers;   /* list of config layer names */
    struct val *extra;    /* top-level fields this version does not know, kept as they were */
    struct st_res *res;
    size_t nres, capres;
    struct st_pending *pend;
    size_t npend, cappend;
};

struct state *state_new(const char *env, const char *kind, const char *project);
void state_free(struct state *s);
/* state_path: <dir>/state/<env>.json; caller frees. */
char *state_path(const char *state_dir, const char *env);
/* state_load: PE_NOTFOUND when the env has no state. */
int state_load(struct state **out, const char *state_dir, const char *env, struct err *e);
/* state_parse: from JSON text (name is shown in errors). */
int state_parse(struct state **out, const char *text, size_t len, const char *name, struct err *e);
int state_save(struct state *s, const char *state_dir, struct err *e);
/* state_serialize: the JSON document; with mask, secrets are "[secret]". */
void state_serialize(struct sb *out, const struct state *s, bool mask);
int state_delete(const char *state_dir, const char *env, struct err *e);
/* state_list: names of every env with a state file, sorted; caller frees. */
int state_list(char ***names, size_t *n, const char *state_dir, struct err *e);
void state_names_free(char **names, size_t n);

struct st_res *state_res(const struct state *s, const char *name);
/* state_res_put: add or replace by name (takes ownership of r's members). */
struct st_res *state_res_put(struct state *s, struct st_res *r);
void state_res_del(struct state *s, const char *name);
void st_res_release(struct st_res *r);
struct st_pending *state_pending_add(struct state *s, const char *resource, const char *type,
                                     const char *op, const struct val *inputs);
void state_pending_del(struct state *s, const char *resource);
struct st_pending *state_pending(const struct state *s, const char *resource);

/* Journal: between full saves, changes are appended to <dir>/state/<env>.journal
 * as JSON lines, so one operation costs one small append rather than a
 * rewrite of the whole document. state_load replays it; state_save writes
 * the whole document and then removes it. Replaying is idempotent.
 * state_journal_intent: the pending entries of these resources, then fsync:
 * after it returns they are durable. */
int state_journal_intent(struct state *s, const char *state_dir, const char *const *resources,
                         size_t n, struct err *e);
/* state_journal_result: the resource's current record (or its removal) and the
 * end of its pending entry; not synced (a crash loses at most results, which
 * the next run settles from the still-pending intent). */
int state_journal_result(struct state *s, const char *state_dir, const char *resource,
                         struct err *e);
/* state_journal_sync: fsync what was appended. */
int state_journal_sync(struct state *s, struct err *e);

/* Activity: requests the router passed to an env are activity (the idle
 * TTL's anchor) without a state write each: the daemon records the latest in
 * <dir>/activity/<env> every few seconds, and state_load and state_summary
 * take the later of it and the state's own. */
int state_activity_touch(const char *dir, const char *env, long long ms, struct err *e);
long long state_activity_read(const char *dir, const char *env);

/* History: one JSON object per line in <dir>/history/<env>.jsonl. */
int state_history_append(const char *state_dir, const char *env, const struct val *rec,
                         struct err *e);
/* state_history_read: the last `last` records (0 = all) as a list. */
int state_history_read(struct val **out, const char *state_dir, const char *env, size_t last,
                       struct err *e);

/* The summary of an environment's state, read without its resources (fast:
 * `env list` over a thousand environments). Times are 0 when unset. */
struct st_summary {
    char *env, *kind, *owner, *status, *sha, *url; /* url: the template's `url` output */
    long long created_ms, updated_ms, expires_ms;
    long long activity_ms, idle_ms, asleep_ms, wake_until_ms, warned_ms;
    char *asleep_why;
    struct val *schedule; /* NULL = none */
    char *pr_repo;        /* a preview's pull request: its repository and number */
    long long pr_number;
    int resources, pending;
    struct val *tags; /* map */
};
int state_summary(struct st_summary *out, const char *state_dir, const char *env, struct err *e);
void st_summary_release(struct st_summary *s);
/* st_summary_expiry: when the env expires — the earlier of its hard TTL and
 * its last activity plus its idle limit — and why ("ttl", "idle for 2h");
 * 0 = never (stages never do). */
long long st_summary_expiry(const struct st_summary *s, char *why, size_t whylen);
/* st_summary_json: the object `env list --json` prints for it. */
void st_summary_json(struct sb *out, const struct st_summary *s);

/* hash of a value's canonical JSON, hex; caller frees */
char *state_hash(const struct val *v);

#endif

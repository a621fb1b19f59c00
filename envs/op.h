/* op: one intent on one environment — up, plan, destroy, refresh — carried
 * out the same way for every entry point (CLI today, the daemon later):
 * resolve the env from the project (kind, config layers, owner, TTL), load the
 * template, take the env's lock, settle what an interrupted run left, refresh,
 * plan, apply, save, and append a history record.
 *
 * It sits above envs/ (project, layered config) and templates/ and below
 * cmd/; it prints nothing: progress goes through callbacks. */
#ifndef PRENV_OP_H
#define PRENV_OP_H

#include "core/engine.h"
#include "core/lock.h"
#include "envs/envcfg.h"
#include "envs/project.h"
#include "templates/tpl.h"

struct op_env {
    struct project *proj;
    struct env_def def;
    struct envcfg *cfg;
    struct tpl *tpl;
    struct state *st;
    bool is_new;  /* no state existed */
    bool locked;
    struct lock lock;
    struct prov_host host;
    struct engine *en;
    struct eng_node *nodes;
    struct eng_desired desired;
    struct val *env_meta, *project_meta;
    struct val *forgotten;   /* destroy --forget: what was dropped from state unremoved */
    bool artifact_changed;   /* this run pinned a different artifact */
    /* other envs' outputs loaded for ${ref.*} */
    struct state **refs;
    size_t nrefs, caprefs;
};

struct op_opts {
    const char *project_dir;  /* NULL = search upwards from the cwd */
    const char *state_dir;    /* NULL = from prenv.yaml */
    const char *command;      /* shown to lock waiters */
    const struct val *sets;   /* --set values (map), borrowed */
    char *const *unsets;      /* --unset keys */
    size_t nunsets;
    const char *owner;
    long long ttl_ms;         /* > 0 sets expiry = now + ttl */
    const char *sha;
    int parallel;
    bool rollback, ignore_protect, no_refresh;
    bool force;               /* act on a protected env where a provider would refuse (seeding) */
    bool forget;              /* destroy: drop from state what cannot be removed (last resort) */
    long long lock_wait_ms;   /* < 0 forever */
    /* The artifact (envs/artifact.h), settled when the env is opened locked
     * with its template: `artifact` ("URI@sha256:HEX", with optional name and
     * version) pins a build; `artifact_pin` (a pin map, borrowed) takes
     * another env's pin, as promote does; with neither, the env keeps its pin
     * and the stored bytes are verified again. */
    const char *artifact, *artifact_name, *artifact_version;
    const struct val *artifact_pin;
    /* The history record an up writes: its operation (NULL = "up") and extra
     * fields merged into it (promote: who asked, who approved), borrowed. An
     * up that changes nothing records only when one of these is set or the
     * artifact changed. */
    const char *operation;
    const struct val *history_extra;
    /* op_run_*: called on the running thread right after the env is opened
     * and before it is closed, so another thread can cancel the run at the
     * next resource boundary by setting oe->host.cancel = 1 meanwhile */
    void (*on_open)(void *ctx, struct op_env *oe);
    void (*on_close)(void *ctx, struct op_env *oe);
    void *open_ctx;
    eng_event_fn on_event;
    void *ev_ctx;
    lock_notify_fn on_lock;
    void *lock_ctx;
};

enum { OP_LOAD_TEMPLATE = 1, OP_LOCK = 2, OP_NEED_STATE = 4, OP_NO_CONFIG = 8 };

/* op_open: resolve env; with OP_LOCK take its lock; with OP_NEED_STATE a
 * missing state is an error. */
int op_open(struct op_env **out, const char *env, unsigned flags, const struct op_opts *o,
            struct err *e);
void op_close(struct op_env *oe);

/* op_prepare: reconcile and (unless no_refresh) refresh, then plan. */
int op_prepare(struct op_env *oe, const struct op_opts *o, struct plan *p, struct err *e);
/* op_apply: apply p, render outputs, save, history. done[] counts ops. */
int op_apply(struct op_env *oe, const struct op_opts *o, struct plan *p, int done[OP_COUNT],
             long long started_ms, struct err *e);
/* op_touch: save metadata changes (owner, TTL, sets) when the plan is empty. */
int op_touch(struct op_env *oe, const struct op_opts *o, struct err *e);
/* op_destroy: reconcile, destroy, remove the env's files; left counts leftovers. */
int op_destroy(struct op_env *oe, const struct op_opts *o, size_t *left, long long started_ms,
               struct err *e);
/* op_refresh: read everything, write the refreshed state; ndrift counts drift. */
int op_refresh(struct op_env *oe, const struct op_opts *o, int *ndrift, struct err *e);
/* op_refresh_read: read every resource and count what is gone or drifted,
 * writing neither the state nor the history (the daemon's drift check: what
 * it finds stays in reality until someone acts); each drifted resource is an
 * EV_DRIFT event through o->on_event. */
int op_refresh_read(struct op_env *oe, int *ndrift, struct err *e);
/* op_render: the fully resolved desired state as a map (resources, outputs, config). */
int op_render(struct op_env *oe, struct val **out, struct err *e);
/* op_config: the env's config, interpolated. */
int op_config(struct op_env *oe, struct val **out, struct err *e);
/* op_history: append a record {time, user, operation, sha, result, changes}. */
void op_history(struct op_env *oe, const char *operation, const char *result,
                const struct val *changes, long long started_ms);
/* What an intent carried out without a terminal did: for the daemon's jobs,
 * `prenv pr open|close` and PR reports. */
struct op_result {
    int rc;            /* 0 ok */
    char *error;       /* message when rc != 0 */
    bool transient;    /* the failure may go away by itself (retry later) */
    int done[OP_COUNT];
    struct val *outputs; /* the env's outputs after the run (map), may be NULL */
    struct val *removed; /* destroy: "name (type)" of every resource removed (list) */
    struct val *left;    /* destroy: what could not be removed (list) */
    long long ms;
};
void op_result_release(struct op_result *r);
/* op_run_up: open (locked), settle, refresh, plan and apply env; pr is the
 * pull request's facts (map: number, sha, branch, author, title) or NULL. */
int op_run_up(const char *env, const struct op_opts *o, const struct val *pr,
              struct op_result *r);
/* op_run_sleep: put env to sleep (why: "schedule", "idle", "manual"): every
 * service scales to 0, data stays; an asleep env stays asleep through `up`. */
int op_run_sleep(const char *env, const char *why, const struct op_opts *o, struct op_result *r);
/* op_run_wake: wake env; until_ms > 0 holds it awake over its schedule until then. */
int op_run_wake(const char *env, long long until_ms, const struct op_opts *o, struct op_result *r);
/* op_run_warned: record that env's expiry warning went out. */
int op_run_warned(const char *env, const struct op_opts *o, struct op_result *r);
/* op_extend: move env's expiry (by > 0: from its current expiry; else until);
 * refuses stages and anything past created + the kind's max_ttl. */
int op_extend(struct op_env *oe, long long by_ms, long long until_ms, struct err *e);
/* op_run_destroy: destroy env (absent is success, with nothing removed). */
int op_run_destroy(const char *env, const struct op_opts *o, struct op_result *r);
/* op_user: $USER or the login name; caller frees. */
char *op_user(void);

#endif

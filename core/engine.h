/* engine: plans and applies one environment's resources against its state.
 *
 * - reconcile: pending operations a crash left in the journal are settled by
 *   asking the provider what exists (adopt it, or clean up and drop it).
 * - refresh: read every resource; gone or drifted ones are noted (and, when
 *   asked, written to state).
 * - plan: render each resource's properties and diff them against state:
 *   create / update / replace / delete / same, with the changed properties.
 * - apply: walk the graph with bounded parallelism on libuv's thread pool;
 *   every operation is journalled in state before the provider is called and
 *   resolved after (journal before act); a failure stops new work, lets
 *   running work finish, and saves. Transient errors are retried with
 *   exponential backoff and jitter. Properties are rendered again just before
 *   each operation, with the outputs its dependencies produced in this run.
 * - destroy: reverse dependency order; independent branches keep going when
 *   one fails; leftovers are reported.
 *
 * The engine knows nothing of templates, config or environments' kinds: it is
 * given nodes (name, provider, dependencies) and a render callback. */
#ifndef PRENV_ENGINE_H
#define PRENV_ENGINE_H

#include "core/lib/err.h"
#include "core/lib/val.h"
#include "core/provider.h"
#include "core/state.h"

#include <stdbool.h>
#include <stddef.h>

enum eng_op { OP_SAME, OP_CREATE, OP_UPDATE, OP_REPLACE, OP_DELETE, OP_READ, OP_COUNT };

const char *eng_op_name(enum eng_op op);   /* "create" */
const char *eng_op_symbol(enum eng_op op); /* "+", "~", "+-", "-", "=" */

struct eng_node {
    const char *name;
    const struct provider *prov;
    const size_t *deps;
    size_t ndeps;
    bool protect;
};

struct engine;

/* render: properties of node i; outputs of other resources come from
 * eng_outputs(). *props is new, owned by the engine afterwards. */
typedef int (*eng_render_fn)(void *ctx, size_t i, struct val **props, struct err *e);

struct eng_desired {
    const struct eng_node *nodes;
    size_t n;
    const size_t *order; /* topological */
    eng_render_fn render;
    void *ctx;
};

enum eng_event_kind {
    EV_START,     /* an operation starts */
    EV_DONE,      /* it finished */
    EV_FAIL,      /* it failed (err set) */
    EV_RETRY,     /* a transient failure; retrying (err set, detail = "in 0.4s") */
    EV_SKIP,      /* not attempted because something it needs failed */
    EV_RECONCILE, /* a pending operation from an interrupted run was settled (detail) */
    EV_DRIFT,     /* refresh found a difference (detail) */
};

struct eng_event {
    enum eng_event_kind kind;
    const char *resource, *type;
    enum eng_op op;
    long long elapsed_ms;
    const struct err *err;
    const char *detail;
};

typedef void (*eng_event_fn)(void *ctx, const struct eng_event *ev);

struct eng_opts {
    int parallel;        /* default 4 */
    bool rollback;       /* on failure, remove what this run created */
    bool ignore_protect; /* allow replace/delete of protected resources */
    bool env_protect;    /* the whole environment is protected */
    eng_event_fn on_event;
    void *ev_ctx;
};

struct plan_step {
    enum eng_op op;
    char *name;
    const struct provider *prov;
    int node; /* index in desired, -1 for a delete */
    struct val *props; /* rendered (may hold unknowns); NULL for delete */
    const struct val *old; /* inputs in state (borrowed); NULL for create */
    char **changed;   /* changed property names */
    size_t nchanged;
    char *why;        /* replace: the property forcing it; update: "drift: ..."; create: "gone" */
    struct val *outs_view; /* update: its outputs as a plan may use them (unstable ones unknown) */
};

struct plan {
    struct plan_step *steps; /* same/create/update/replace in topological order, then deletes */
    size_t n;
    int counts[OP_COUNT];
};

struct engine *eng_new(struct state *st, const char *state_dir, const char *project_dir,
                       struct prov_host *host, const struct eng_opts *opts);
void eng_free(struct engine *en);
/* Directories of the environment (created by eng_new's caller via eng_prepare_dirs). */
int eng_prepare_dirs(struct engine *en, struct err *e);
const char *eng_work_dir(const struct engine *en);
const char *eng_log_dir(const struct engine *en);
/* eng_outputs: outputs of a resource as far as this run knows them, or NULL
 * (not created yet, or being replaced). For render callbacks. */
const struct val *eng_outputs(struct engine *en, const char *resource);

int eng_reconcile(struct engine *en, struct err *e);
/* eng_refresh: read every resource. With write, state is updated (gone
 * resources dropped, outputs refreshed) and saved. *ndrift counts gone or
 * drifted resources. */
int eng_refresh(struct engine *en, bool write, int *ndrift, struct err *e);
int eng_plan(struct engine *en, const struct eng_desired *d, struct plan *p, struct err *e);
void plan_release(struct plan *p);
/* eng_apply: execute p (from eng_plan with the same desired). Counts of what
 * was done are in done[OP_COUNT]. */
int eng_apply(struct engine *en, const struct eng_desired *d, struct plan *p, int done[OP_COUNT],
              struct err *e);
/* eng_render: node i's properties as an apply would pass them: rendered,
 * checked against the provider's schema, with the content fingerprint. */
int eng_render(struct engine *en, const struct eng_desired *d, size_t i, struct val **props,
               struct err *e);
/* eng_call: run one provider operation now on this thread, outside any plan
 * (for commands that act on one resource, like `prenv seed`). The call gets
 * the env's directories, the host and what state records for the resource. */
int eng_call(struct engine *en, const struct provider *p, const char *resource, enum eng_op op,
             const struct val *props, struct prov_result *r, struct err *e);
/* eng_destroy_check: refuse (PE_PROTECTED) when protection forbids a destroy. */
int eng_destroy_check(struct engine *en, struct err *e);
/* eng_destroy: remove every resource. *left counts what could not be removed. */
int eng_destroy(struct engine *en, size_t *left, struct err *e);
/* eng_save: write the state now. */
int eng_save(struct engine *en, struct err *e);
/* eng_log_tail: the last n lines of a resource's logs (appended to out). */
void eng_log_tail(struct engine *en, const char *resource, int n, struct sb *out);

/* diff helpers, exported for tests */
void eng_diff(const struct val *old, const struct val *new_, const struct provider *p,
              char ***changed, size_t *nchanged, char **replace_why);

#endif

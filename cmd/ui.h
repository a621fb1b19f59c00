/* ui: what the commands print: plans, progress lines while the engine works,
 * lock waits, summaries. Human output on stdout, diagnostics on stderr;
 * colour only on a TTY and never with NO_COLOR. */
#ifndef PRENV_UI_H
#define PRENV_UI_H

#include "cmd/cmd.h"
#include "core/engine.h"
#include "core/lock.h"
#include "envs/op.h"

struct op_env;

struct ui_progress {
    struct cmd_ctx *c;
    const char *verb; /* "up", "destroy" */
    char *failed;     /* first resource that failed */
    bool quiet;       /* --json: nothing on stdout */
};

void ui_event(void *ctx, const struct eng_event *ev);
void ui_lock(void *ctx, enum lock_event ev, const struct lock_holder *h);
/* ui_plan: human plan; header names the env. */
void ui_plan(struct cmd_ctx *c, const struct op_env *oe, const struct plan *p);
/* ui_plan_json: the documented JSON plan. Caller frees. */
char *ui_plan_json(const struct op_env *oe, const struct plan *p);
/* ui_value: a short, masked, single-line rendering of v. */
void ui_value(struct sb *out, const struct val *v, size_t max);
/* ui_summary: "+3 ~1 -0, 2.41s" */
void ui_summary(struct sb *out, const int done[OP_COUNT], long long ms);
/* ui_outputs: "  url: http://..." lines, masked. */
void ui_outputs(struct cmd_ctx *c, const struct val *outputs);
/* ui_fail_logs: print the last lines of the failed resource's logs. */
void ui_fail_logs(struct cmd_ctx *c, struct op_env *oe, const char *resource);
/* cmd_project: find and load the project (-C, --state-dir). */
struct project;
int cmd_project(struct cmd_ctx *c, struct project **out, struct err *e);
/* cmd_env_layer: the project and env's own config layer file, relative to
 * the project (caller frees both; an env without one is an error). */
int cmd_env_layer(struct cmd_ctx *c, const char *env, struct project **p, char **rel,
                  struct err *e);
/* cmd_op_opts: the options every env operation shares — directories, the
 * command line for lock holders, waiting forever for the lock, progress and
 * lock messages through up (may be NULL). */
struct op_opts cmd_op_opts(struct cmd_ctx *c, struct ui_progress *up);
/* cmd_env_config: open env without its template and interpolate its config. */
int cmd_env_config(struct cmd_ctx *c, const char *env, struct op_env **oe, struct val **cfg,
                   struct err *e);
/* ui_parse_sets: K=V strings into a map of typed values. */
int ui_parse_sets(struct val **out, char *const *kv, size_t n, struct err *e);

#endif

/* envpolicy: what an environment's config and kind decide for every
 * process.service replica, whatever the template says — the log level
 * (`log_level`, passed as PRENV_LOG_LEVEL), feature flags (`flags:`, passed
 * as FLAG_<NAME>), log retention (`logs: {retain: N}` of the kind or stage in
 * prenv.yaml) and masking of personal data (`pii: redact` on a stage).
 *
 * It reads config values and the env's definition and patches rendered
 * process.service properties; it does not load anything or start anything. */
#ifndef PRENV_ENVPOLICY_H
#define PRENV_ENVPOLICY_H

#include "core/lib/err.h"
#include "core/lib/val.h"
#include "envs/project.h"

struct sb;

/* env_log_level_default: "info" for stages, "debug" for previews and
 * sandboxes (loud where people debug, quiet where users are). */
const char *env_log_level_default(enum env_kind k);
/* env_log_level: config `log_level` when set, else the kind's default.
 * Borrowed from cfg or static. */
const char *env_log_level(enum env_kind k, const struct val *cfg);
/* env_policy_check: `log_level` is one of debug, info, warn (or warning), error and
 * `flags` a map of names to booleans, numbers or strings; errors point at
 * the value. cfg may be NULL. */
int env_policy_check(const struct val *cfg, struct err *e);
/* env_flag_var: FLAG_<NAME>: the name uppercased, every other character than
 * a letter or digit turned into '_'. Caller frees. */
char *env_flag_var(const char *name);
/* env_flag_text: a flag's value as its variable holds it: true "1",
 * false "0", numbers and strings as written. */
void env_flag_text(struct sb *out, const struct val *v);
/* env_policy_apply: patch the rendered properties of a process.service
 * (props, a map) with the env's policy: env.PRENV_LOG_LEVEL, env.FLAG_*
 * (these win over the template's own), log_keep from logs.retain and
 * log_redact when redact. */
void env_policy_apply(struct val *props, const struct env_def *d, const struct val *cfg);

#endif

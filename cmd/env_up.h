/* env_up: the `up` flow shared by `env up` and `sandbox up`. */
#ifndef PRENV_ENV_UP_H
#define PRENV_ENV_UP_H

#include "cmd/cmd.h"

struct up_opts {
    struct opt_list set, unset;
    const char *owner;
    long long ttl;
    const char *sha;
    long long parallel;
    bool rollback, yes, json, no_refresh, ignore_protect;
    const char *artifact, *artifact_name, *artifact_version;
    /* set by callers, not by options (promote, approve): */
    const struct val *artifact_pin;   /* another env's pin to take, borrowed */
    const char *operation;            /* the history record's operation (NULL = "up") */
    const struct val *history_extra;  /* merged into the history record */
    const struct val *json_extra;     /* a map: its fields are added to the --json result */
    const char *result;               /* out: ok, unchanged, failed, declined, error */
};

/* cmd_up_run: plan, confirm and apply env; returns the exit code and sets
 * o->result. */
int cmd_up_run(struct cmd_ctx *c, const char *env, struct up_opts *o);

#endif

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
};

int cmd_up_run(struct cmd_ctx *c, const char *env, struct up_opts *o);

#endif

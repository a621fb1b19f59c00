/* version: prenv's version and commit. */
#include "cmd/cmd.h"

#include <stdio.h>

static int exec_version(struct cmd_ctx *c, void *o, int argc, char **argv)
{
    (void)c;
    (void)o;
    (void)argc;
    (void)argv;
    printf("prenv %s (commit %s)\n", PRENV_VERSION, PRENV_COMMIT);
    return EXIT_OK;
}

const struct cmd_entry cmd_version_entry = {
    .name = "version",
    .min_args = 0,
    .max_args = 0,
    .summary = "print prenv's version",
    .exec = exec_version,
};

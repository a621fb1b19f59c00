/* supervise: the hidden mode process.service starts to keep a replica running. */
#include "cmd/cmd.h"
#include "core/providers/supervise.h"

static int exec_supervise(struct cmd_ctx *c, void *o, int argc, char **argv)
{
    (void)c;
    (void)o;
    char *args[3] = {"supervise", argv[0], NULL};
    (void)argc;
    return supervise_main(2, args);
}

const struct cmd_entry cmd_supervise_entry = {
    .name = "supervise",
    .args = "SPEC",
    .min_args = 1,
    .max_args = 1,
    .summary = "keep one replica of a process.service running (internal)",
    .exec = exec_supervise,
    .flags = CMD_HIDDEN,
};

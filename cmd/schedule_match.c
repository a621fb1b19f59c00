/* placeholder until the command lands */
#include "cmd/cmd.h"

static int exec_ph(struct cmd_ctx *c, void *o, int argc, char **argv)
{
    (void)o;
    (void)argc;
    (void)argv;
    return cmd_usage_error(c, "not implemented yet");
}

const struct cmd_entry cmd_schedule_match_entry = {
    .name = "schedule match",
    .args = "SPEC",
    .min_args = 0,
    .max_args = -1,
    .summary = "(coming)",
    .exec = exec_ph,
    .flags = CMD_HIDDEN,
};

/* env wake: bring a sleeping environment's services back; --until holds it
 * awake over its schedule until then. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/tm.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct wake_opts {
    const char *until;
};

static const struct cmd_opt opts[] = {
    {"until", 0, OPT_STR, offsetof(struct wake_opts, until), "TIME",
     "stay awake until TIME (ISO-8601 with an offset or Z), whatever the schedule says"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static int exec_wake(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct wake_opts *o = vo;
    long long until = 0;
    if (o->until && (!tm_parse_rfc3339(o->until, &until) || until <= tm_now_ms()))
        return cmd_usage_error(c, "--until wants a future time like 2026-11-22T18:00:00+01:00, "
                                  "not '%s'",
                               o->until);
    struct ui_progress up = {.c = c};
    struct op_opts oo = cmd_op_opts(c, &up);
    struct op_result r;
    op_run_wake(argv[0], until, &oo, &r);
    int code = EXIT_OK;
    if (r.rc) {
        fprintf(stderr, "prenv: error: %s\n", r.error ? r.error : "failed");
        code = EXIT_FAIL;
    } else {
        printf("%s is awake%s%s\n", argv[0], o->until ? " until " : "", o->until ? o->until : "");
        ui_outputs(c, r.outputs);
    }
    op_result_release(&r);
    free(up.failed);
    return code;
}

const struct cmd_entry cmd_env_wake_entry = {
    .name = "env wake",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "bring a sleeping env's services back (--until: over its schedule)",
    .opts = opts,
    .opts_size = sizeof(struct wake_opts),
    .exec = exec_wake,
};

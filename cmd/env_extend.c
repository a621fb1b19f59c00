/* env extend: move an environment's expiry. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>

struct extend_opts {
    long long by;
    const char *until;
};

#define O(f) offsetof(struct extend_opts, f)
static const struct cmd_opt opts[] = {
    {"by", 0, OPT_DURATION, O(by), "DUR", "add DUR to the current expiry (e.g. 24h)"},
    {"until", 0, OPT_STR, O(until), "TIME", "expire at TIME (ISO-8601 with an offset or Z)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_extend(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct extend_opts *o = vo;
    if (!o->by == !o->until)
        return cmd_usage_error(c, "give exactly one of --by DUR or --until TIME");
    long long until = 0;
    if (o->until && !tm_parse_rfc3339(o->until, &until))
        return cmd_usage_error(c, "--until wants a time like 2026-11-24T18:00:00Z, not '%s'",
                               o->until);
    struct err e = {0};
    struct op_opts oo = cmd_op_opts(c, NULL);
    struct op_env *oe = NULL;
    if (op_open(&oe, argv[0], OP_LOCK | OP_NEED_STATE | OP_NO_CONFIG, &oo, &e))
        return cmd_error(c, &e);
    int code = EXIT_OK;
    if (op_extend(oe, o->by, until, &e)) {
        code = cmd_error(c, &e);
    } else {
        struct sb b;
        sb_init(&b);
        tm_rfc3339(&b, oe->st->expires_ms);
        sb_adds(&b, " (in ");
        dur_fmt(&b, ((oe->st->expires_ms - tm_now_ms()) / 60000) * 60000);
        sb_adds(&b, ")");
        printf("%s now expires at %s\n", argv[0], b.buf);
        sb_release(&b);
    }
    op_close(oe);
    return code;
}

const struct cmd_entry cmd_env_extend_entry = {
    .name = "env extend",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "move an env's expiry: --by DUR or --until TIME (up to its kind's max_ttl)",
    .opts = opts,
    .opts_size = sizeof(struct extend_opts),
    .exec = exec_extend,
};

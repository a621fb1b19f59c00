/* env unlock: break a stale lock, showing who held it. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lock.h"
#include "envs/project.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct unlock_opts {
    bool force;
};

static const struct cmd_opt opts[] = {
    {"force", 0, OPT_BOOL, offsetof(struct unlock_opts, force), NULL,
     "break the lock even though its holder is still running"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static int exec_unlock(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct unlock_opts *o = vo;
    struct err e = {0};
    struct project *p = NULL;
    int rc = cmd_project(c, &p, &e);
    struct env_def def = {0};
    if (!rc)
        rc = project_env(&def, p, argv[0], &e);
    env_def_release(&def);
    if (rc) {
        project_free(p);
        return cmd_error(c, &e);
    }
    bool held = false;
    struct lock_holder h = {0};
    rc = lock_inspect(p->state_dir, argv[0], &held, &h, &e);
    int code = EXIT_OK;
    if (!rc && !held) {
        printf("%s is not locked", argv[0]);
        if (h.pid) {
            struct sb b;
            sb_init(&b);
            lock_holder_describe(&b, &h);
            printf(" (last held by %s, which ended without releasing it; the next run settles "
                   "what it left)",
                   b.buf);
            sb_release(&b);
        }
        printf("\n");
    } else if (!rc) {
        lock_holder_release(&h);
        rc = lock_break(p->state_dir, argv[0], o->force, &h, &e);
        if (!rc) {
            struct sb b;
            sb_init(&b);
            lock_holder_describe(&b, &h);
            printf("unlocked %s; it was held by %s\n", argv[0], b.buf);
            sb_release(&b);
        }
    }
    if (rc)
        code = cmd_error(c, &e);
    lock_holder_release(&h);
    err_release(&e);
    project_free(p);
    return code;
}

const struct cmd_entry cmd_env_unlock_entry = {
    .name = "env unlock",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "break a stale lock, showing who held it",
    .opts = opts,
    .opts_size = sizeof(struct unlock_opts),
    .exec = exec_unlock,
};

/* reject: turn down (or withdraw) a pending promotion. */
#include "cmd/promote.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "envs/project.h"
#include "envs/promo.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reject_opts {
    const char *reason;
};

static const struct cmd_opt opts[] = {
    {"reason", 0, OPT_STR, offsetof(struct reject_opts, reason), "TEXT",
     "why (kept with the promotion and in the target's history)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static int exec_reject(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct reject_opts *o = vo;
    const char *id = argv[0];
    struct err e = {0};
    struct project *proj = NULL;
    struct val *rec = NULL;
    struct lock lk = {.fd = -1};
    bool locked = false;
    char *me = NULL;
    int code = EXIT_OK;
    if (cmd_promo_open_pending(c, id, "reject", &proj, &lk, &locked, &rec, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    const char *sd = proj->state_dir;
    me = promo_identity(proj->dir);
    val_map_set(rec, "state", NULL, val_str("rejected", NULL));
    val_map_set(rec, "rejected_by", NULL, val_str(me, NULL));
    promo_set_now(rec, "rejected_at");
    val_map_set(rec, "reason", NULL, o->reason ? val_str(o->reason, NULL) : val_null(NULL));
    promo_set_now(rec, "finished_at");
    if (promo_save(rec, sd, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    lock_release(&lk, false);
    locked = false;
    if (promo_history(sd, rec, "rejected", me, &e)) {
        cmd_warn(c, "promotion %s: could not record it in the history: %s", id, e.msg);
        err_release(&e);
    }
    struct sb d;
    sb_init(&d);
    cmd_promo_describe(&d, rec);
    printf("promotion %s rejected by %s: %s\n", id, me, d.buf);
    sb_release(&d);
out:
    if (locked)
        lock_release(&lk, false);
    err_release(&e);
    val_free(rec);
    free(me);
    project_free(proj);
    return code;
}

const struct cmd_entry cmd_reject_entry = {
    .name = "reject",
    .args = "ID",
    .min_args = 1,
    .max_args = 1,
    .summary = "reject a pending promotion (the requester may withdraw their own)",
    .opts = opts,
    .opts_size = sizeof(struct reject_opts),
    .exec = exec_reject,
};

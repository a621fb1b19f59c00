/* approve: run a pending promotion, as someone other than who asked for it. */
#include "cmd/promote.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/state.h"
#include "envs/artifact.h"
#include "envs/project.h"
#include "envs/promo.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct approve_opts {
    bool yes, json;
};

#define O(f) offsetof(struct approve_opts, f)
static const struct cmd_opt opts[] = {
    {"yes", 'y', OPT_BOOL, O(yes), NULL, "apply without asking"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the result as JSON (progress goes to stderr)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

/* is rec still what its source runs? */
static int check_source(const struct val *rec, const char *state_dir, struct err *e)
{
    const char *from = val_map_str(rec, "from", ""), *id = val_map_str(rec, "id", "");
    const char *want = val_map_str(rec, "digest", "");
    struct state *s = NULL;
    int rc = state_load(&s, state_dir, from, e);
    if (rc == PE_NOTFOUND) {
        err_release(e);
        err_set(e, PE_NOTFOUND, NULL, "promotion %s: '%s' no longer exists, so what it ran "
                                      "cannot be checked",
                id, from);
        err_hint(e, "reject it with `prenv reject %s`", id);
        return PE_NOTFOUND;
    }
    if (rc)
        return rc;
    const char *now = s->artifact ? artifact_digest(s->artifact) : NULL;
    if (!now || strcmp(now, want) != 0) {
        rc = err_set(e, PE_CONFIG, NULL,
                     "promotion %s: '%s' was re-pinned since it was requested: the request is "
                     "for %s, '%s' now runs %s",
                     id, from, want, from, now ? now : "no artifact");
        err_hint(e, "request it again to promote what '%s' runs now: prenv promote %s %s", from,
                 from, val_map_str(rec, "to", "TO"));
    }
    state_free(s);
    return rc;
}

static int exec_approve(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct approve_opts *o = vo;
    const char *id = argv[0];
    struct err e = {0};
    struct project *proj = NULL;
    struct val *rec = NULL;
    struct lock lk = {.fd = -1};
    bool locked = false;
    char *me = NULL;
    int code = EXIT_OK;
    if (!o->yes && !c->tty_in) {
        err_set(&e, PE_USAGE, NULL, "refusing to approve promotion %s without confirmation", id);
        err_hint(&e, "pass --yes to apply it without asking (stdin is not a terminal)");
        code = cmd_error(c, &e);
        goto out;
    }
    if (cmd_promo_open_pending(c, id, "approve", &proj, &lk, &locked, &rec, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    const char *sd = proj->state_dir;
    me = promo_identity(proj->dir);
    const char *asker = val_map_str(rec, "requested_by", "");
    if (promo_same_person(me, asker)) {
        err_set(&e, PE_CONFIG, NULL, "you (%s) requested promotion %s: it needs approval by "
                                     "someone else",
                me, id);
        err_hint(&e, "ask another person to run `prenv approve %s`, or withdraw it with "
                     "`prenv reject %s`",
                 id, id);
        code = cmd_error(c, &e);
        goto out;
    }
    if (check_source(rec, sd, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    val_map_set(rec, "state", NULL, val_str("approved", NULL));
    val_map_set(rec, "approved_by", NULL, val_str(me, NULL));
    promo_set_now(rec, "approved_at");
    if (promo_save(rec, sd, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    lock_release(&lk, false);
    locked = false;
    code = cmd_promo_apply(c, rec, sd, o->yes, o->json, true);
out:
    if (locked)
        lock_release(&lk, false);
    err_release(&e);
    val_free(rec);
    free(me);
    project_free(proj);
    return code;
}

const struct cmd_entry cmd_approve_entry = {
    .name = "approve",
    .args = "ID",
    .min_args = 1,
    .max_args = 1,
    .summary = "approve a pending promotion and run it (not by who requested it)",
    .help = "Refuses when you requested the promotion yourself (who you are: $PRENV_USER, else\n"
            "the project repository's git user.email or user.name, else the OS user), and\n"
            "when the source env was pinned to another artifact since the request. Then\n"
            "runs the promotion as `prenv promote` would.",
    .opts = opts,
    .opts_size = sizeof(struct approve_opts),
    .exec = exec_approve,
};

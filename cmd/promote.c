/* promote: move one env's pinned artifact, unchanged, into another env —
 * never a rebuild — showing how their configs differ, then running the
 * target's up; into a stage with `approval: required` it records a pending
 * promotion for `prenv approve` instead. */
#include "cmd/promote.h"

#include "cmd/env_up.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/xalloc.h"
#include "envs/artifact.h"
#include "envs/op.h"
#include "envs/promo.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct cmd_entry cmd_config_diff_entry;

struct promote_opts {
    bool yes, json;
};

#define O(f) offsetof(struct promote_opts, f)
static const struct cmd_opt opts[] = {
    {"yes", 'y', OPT_BOOL, O(yes), NULL,
     "apply without asking (a stage needing approval still waits)"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the result as JSON (progress goes to stderr)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

void cmd_promo_describe(struct sb *out, const struct val *rec)
{
    const struct val *a = val_map_get(rec, "artifact");
    sb_addf(out, "%s -> %s: %s %s (%s)", val_map_str(rec, "from", "?"), val_map_str(rec, "to", "?"),
            val_map_str(a, "name", "?"), val_map_str(a, "version", "?"),
            val_map_str(rec, "digest", "?"));
}

/* `prenv config diff FROM TO`, run as that command runs it */
static void show_config_diff(struct cmd_ctx *c, const char *from, const char *to)
{
    struct cmd_ctx dc = *c;
    dc.entry = &cmd_config_diff_entry;
    void *o = xcalloc(1, cmd_config_diff_entry.opts_size ? cmd_config_diff_entry.opts_size : 1);
    char *argv[] = {(char *)from, (char *)to, NULL};
    printf("config differences (prenv config diff %s %s):\n", from, to);
    fflush(stdout);
    cmd_config_diff_entry.exec(&dc, o, 2, argv);
    fflush(stdout);
    free(o);
}

int cmd_promo_open_pending(struct cmd_ctx *c, const char *id, const char *verb,
                           struct project **proj, struct lock *lk, bool *locked,
                           struct val **rec, struct err *e)
{
    int rc = promo_check_id(id, e);
    if (!rc)
        rc = cmd_project(c, proj, e);
    if (!rc)
        rc = promo_lock(lk, (*proj)->state_dir, c->command_line, e);
    if (rc)
        return rc;
    *locked = true;
    if ((rc = promo_load(rec, (*proj)->state_dir, id, e)))
        return rc;
    const char *st = val_map_str(*rec, "state", "?");
    if (!strcmp(st, "pending"))
        return 0;
    const char *by =
        val_map_str(*rec, !strcmp(st, "rejected") ? "rejected_by" : "approved_by", NULL);
    err_set(e, PE_CONFIG, NULL, "promotion %s is %s%s%s, not pending: there is nothing to %s", id,
            st, by ? " by " : "", by ? by : "", verb);
    err_hint(e, "`prenv promotions` shows every promotion; `prenv promote %s %s` asks again",
             val_map_str(*rec, "from", "FROM"), val_map_str(*rec, "to", "TO"));
    return PE_CONFIG; /* a refusal, not a usage mistake: exit 1 */
}

int cmd_promo_apply(struct cmd_ctx *c, struct val *rec, const char *state_dir, bool yes,
                    bool json, bool approving)
{
    const char *from = val_map_str(rec, "from", ""), *to = val_map_str(rec, "to", "");
    if (!json) {
        struct sb d;
        sb_init(&d);
        cmd_promo_describe(&d, rec);
        printf("promotion %s: %s\n", val_map_str(rec, "id", "?"), d.buf);
        sb_release(&d);
        show_config_diff(c, from, to);
    }
    /* the target takes the source's pin as it is; the stored bytes are
     * verified again before anything runs */
    struct val *pin = val_clone(val_map_get(rec, "artifact"));
    val_free(val_map_take(pin, "path"));
    val_map_set(pin, "promoted_from", NULL, val_str(from, NULL));
    promo_set_now(pin, "pinned_at");
    struct val *hist = val_map(NULL);
    static const char *const keys[] = {"id", "from", "requested_by", "approved_by"};
    for (size_t i = 0; i < 4; i++) {
        const struct val *v = val_map_get(rec, keys[i]);
        val_map_set(hist, i ? keys[i] : "promotion", NULL, v ? val_clone(v) : val_null(NULL));
    }
    struct val *jx = val_map(NULL);
    val_map_set(jx, "promotion", NULL, val_clone(hist));
    /* the history's user is who acted: the approver, or the requester when
     * the target needs no approval */
    const char *actor = val_map_str(rec, "approved_by", NULL);
    val_map_set(hist, "user", NULL,
                val_str(actor ? actor : val_map_str(rec, "requested_by", "?"), NULL));
    val_map_set(val_map_get(jx, "promotion"), "digest", NULL,
                val_str(val_map_str(rec, "digest", ""), NULL));
    struct up_opts uo = {.yes = yes,
                         .json = json,
                         .artifact_pin = pin,
                         .operation = "promote",
                         .history_extra = hist,
                         .json_extra = jx};
    int code = cmd_up_run(c, to, &uo);
    const char *result = uo.result ? uo.result : "error";
    if (!strcmp(result, "declined")) {
        if (approving) {
            val_map_set(rec, "state", NULL, val_str("pending", NULL));
            val_map_set(rec, "approved_by", NULL, val_null(NULL));
            val_map_set(rec, "approved_at", NULL, val_null(NULL));
        } else {
            val_map_set(rec, "state", NULL, val_str("canceled", NULL));
        }
    } else if (!strcmp(result, "ok") || !strcmp(result, "unchanged")) {
        val_map_set(rec, "state", NULL, val_str("applied", NULL));
    } else {
        val_map_set(rec, "state", NULL, val_str("failed", NULL));
        val_map_set(rec, "error", NULL,
                    val_str_own(xasprintf("the up of '%s' failed: `prenv env show %s` has the "
                                          "error",
                                          to, to),
                                NULL));
    }
    if (strcmp(result, "declined") != 0 || !approving)
        promo_set_now(rec, "finished_at");
    struct err e = {0};
    if (promo_save(rec, state_dir, &e)) {
        int x = cmd_error(c, &e);
        if (!code)
            code = x;
    }
    if (!json && !strcmp(val_map_str(rec, "state", ""), "applied"))
        printf("promotion %s applied: %s runs %s\n", val_map_str(rec, "id", "?"), to,
               val_map_str(rec, "digest", "?"));
    val_free(pin);
    val_free(hist);
    val_free(jx);
    return code;
}

/* older pending requests for the same pair give way to this one */
static void supersede(const char *state_dir, const char *from, const char *to, struct cmd_ctx *c)
{
    struct val *all = NULL, *bad = NULL;
    struct err e = {0};
    if (!promo_list(&all, &bad, state_dir, &e)) {
        for (size_t i = 0; i < all->u.list.n; i++) {
            struct val *r = all->u.list.v[i];
            if (strcmp(val_map_str(r, "state", ""), "pending") != 0 ||
                strcmp(val_map_str(r, "from", ""), from) != 0 ||
                strcmp(val_map_str(r, "to", ""), to) != 0)
                continue;
            val_map_set(r, "state", NULL, val_str("superseded", NULL));
            promo_set_now(r, "finished_at");
            if (promo_save(r, state_dir, &e))
                break;
            cmd_note(c, "promotion %s (%s) is superseded by this request",
                     val_map_str(r, "id", "?"), val_map_str(r, "digest", "?"));
        }
    }
    if (e.code)
        cmd_warn(c, "%s", e.msg);
    err_release(&e);
    val_free(all);
    val_free(bad);
}

static int exec_promote(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct promote_opts *o = vo;
    const char *from = argv[0], *to = argv[1];
    if (!strcmp(from, to))
        return cmd_usage_error(c, "cannot promote '%s' into itself: name two environments", from);
    struct err e = {0};
    struct op_opts oo = cmd_op_opts(c, NULL);
    struct op_env *src = NULL;
    struct env_def td = {0};
    struct val *rec = NULL;
    char *me = NULL;
    struct lock lk = {.fd = -1};
    bool locked = false;
    int code = EXIT_OK;
    if (op_open(&src, from, OP_NEED_STATE | OP_NO_CONFIG, &oo, &e) ||
        project_env(&td, src->proj, to, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    const struct val *pin = src->st->artifact;
    const char *digest = pin ? artifact_digest(pin) : NULL;
    if (!digest) {
        err_set(&e, PE_NOTFOUND, NULL, "'%s' has no pinned artifact: there is nothing to promote",
                from);
        err_hint(&e, "pin the build it runs first: prenv env up %s --artifact URI@sha256:HEX",
                 from);
        code = cmd_error(c, &e);
        goto out;
    }
    if (!td.approval && !o->yes && !c->tty_in) {
        err_set(&e, PE_USAGE, NULL, "refusing to promote into '%s' without confirmation", to);
        err_hint(&e, "pass --yes to apply without asking (stdin is not a terminal)");
        code = cmd_error(c, &e);
        goto out;
    }
    const char *sd = src->proj->state_dir;
    me = promo_identity(src->proj->dir);
    rec = val_map(NULL);
    val_map_set(rec, "schema", NULL, val_int(PROMO_SCHEMA, NULL));
    val_map_set(rec, "id", NULL, val_null(NULL));
    val_map_set(rec, "from", NULL, val_str(from, NULL));
    val_map_set(rec, "to", NULL, val_str(to, NULL));
    val_map_set(rec, "digest", NULL, val_str(digest, NULL));
    struct val *a = val_clone(pin);
    val_free(val_map_take(a, "path"));
    val_map_set(rec, "artifact", NULL, a);
    val_map_set(rec, "state", NULL, val_str(td.approval ? "pending" : "approved", NULL));
    val_map_set(rec, "approval", NULL, val_str(td.approval ? "required" : "none", NULL));
    val_map_set(rec, "requested_by", NULL, val_str(me, NULL));
    promo_set_now(rec, "requested_at");
    val_map_set(rec, "approved_by", NULL, val_null(NULL));
    val_map_set(rec, "approved_at", NULL, val_null(NULL));
    const char *id = NULL;
    if (promo_lock(&lk, sd, c->command_line, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    locked = true;
    if (td.approval)
        supersede(sd, from, to, c);
    if (promo_create(rec, sd, &id, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    lock_release(&lk, false);
    locked = false;
    if (!td.approval) {
        code = cmd_promo_apply(c, rec, sd, o->yes, o->json, false);
        goto out;
    }
    if (promo_history(sd, rec, "pending", me, &e)) {
        cmd_warn(c, "promotion %s: could not record it in %s's history: %s", id, to, e.msg);
        err_release(&e);
    }
    if (o->json) {
        struct sb b;
        sb_init(&b);
        sb_adds(&b, "{\"env\": ");
        sb_add_json_str(&b, to);
        sb_adds(&b, ", \"result\": \"pending\", \"promotion\": ");
        val_json(&b, rec, VAL_JSON_MASK);
        sb_adds(&b, "}\n");
        fputs(b.buf, stdout);
        sb_release(&b);
    } else {
        struct sb d;
        sb_init(&d);
        cmd_promo_describe(&d, rec);
        printf("promotion %s: %s\n", id, d.buf);
        sb_release(&d);
        show_config_diff(c, from, to);
        printf("'%s' needs approval: promotion %s is pending.\n"
               "Someone other than %s approves it with `prenv approve %s`, or rejects it with "
               "`prenv reject %s`.\n",
               to, id, me, id, id);
    }
out:
    if (locked)
        lock_release(&lk, false);
    err_release(&e);
    val_free(rec);
    free(me);
    env_def_release(&td);
    op_close(src);
    return code;
}

const struct cmd_entry cmd_promote_entry = {
    .name = "promote",
    .args = "FROM TO",
    .min_args = 2,
    .max_args = 2,
    .summary = "give TO the exact artifact FROM runs (no rebuild), then update TO",
    .help = "Copies FROM's artifact pin (name, version, URI, sha256 digest) to TO, shows how\n"
            "the two envs' configs differ, and runs TO's up, which verifies the stored bytes\n"
            "again before anything runs. Into a stage with `approval: required` it records a\n"
            "pending promotion instead (see `prenv promotions`), which someone other than the\n"
            "requester runs with `prenv approve ID`. A new request for the same pair\n"
            "supersedes an older pending one. The target's history records the promotion:\n"
            "who asked, who approved and the digest.",
    .opts = opts,
    .opts_size = sizeof(struct promote_opts),
    .exec = exec_promote,
};

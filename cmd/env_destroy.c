/* env destroy: remove every resource of an environment, then its state.
 * Works without the template or config (a broken template never blocks
 * cleanup). Independent resources keep going when one fails; what is left is
 * listed and the env is marked destroy-failed so it can be retried. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct destroy_opts {
    bool yes, json, ignore_protect, forget;
};

#define O(f) offsetof(struct destroy_opts, f)
static const struct cmd_opt opts[] = {
    {"yes", 'y', OPT_BOOL, O(yes), NULL, "destroy without asking"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the result as JSON"},
    {"unprotect", 0, OPT_BOOL, O(ignore_protect), NULL, "destroy even a protected env, this once"},
    {"ignore-protect", 0, OPT_BOOL, O(ignore_protect), NULL, "the old name of --unprotect"},
    {"forget", 0, OPT_BOOL, O(forget), NULL,
     "last resort: drop from the state what cannot be removed (listed as possibly left)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_destroy(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct destroy_opts *o = vo;
    long long t0 = tm_mono_ms();
    const char *env = argv[0];
    struct err e = {0};
    struct ui_progress up = {.c = c, .verb = "destroy", .quiet = o->json};
    struct op_opts oo = cmd_op_opts(c, &up);
    oo.ignore_protect = o->ignore_protect;
    oo.forget = o->forget;
    struct op_env *oe = NULL;
    int rc = op_open(&oe, env, OP_LOCK | OP_NEED_STATE | OP_NO_CONFIG, &oo, &e);
    if (rc == PE_NOTFOUND && oe == NULL && e.msg && strstr(e.msg, "does not exist")) {
        /* nothing to destroy is success: cleanup scripts can run twice */
        if (o->json)
            printf("{\"env\": \"%s\", \"result\": \"absent\", \"deleted\": 0, \"left\": []}\n", env);
        else
            printf("%s does not exist: nothing to destroy\n", env);
        err_release(&e);
        return EXIT_OK;
    }
    if (rc)
        return cmd_error(c, &e);
    size_t n = oe->st->nres;
    int code = EXIT_OK;
    if (!o->yes) {
        if (!c->tty_in) {
            err_set(&e, PE_USAGE, NULL, "refusing to destroy '%s' without confirmation", env);
            err_hint(&e, "pass --yes to destroy without asking (stdin is not a terminal)");
            code = cmd_error(c, &e);
            goto out;
        }
        char q[256];
        snprintf(q, sizeof q, "Destroy %s and its %zu resource%s?", env, n, n == 1 ? "" : "s");
        if (!cmd_ask(c, q)) {
            printf("nothing changed\n");
            goto out;
        }
    }
    if (eng_destroy_check(oe->en, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    if (!o->json)
        printf("destroying %s (%zu resource%s)...\n", env, n, n == 1 ? "" : "s");
    size_t left = 0;
    rc = op_destroy(oe, &oo, &left, t0, &e);
    if (o->json) {
        struct sb b;
        sb_init(&b);
        sb_adds(&b, "{\"env\": ");
        sb_add_json_str(&b, env);
        sb_addf(&b, ", \"result\": \"%s\", \"deleted\": %zu, \"left\": [", rc ? "failed" : "ok",
                n - oe->st->nres);
        for (size_t i = 0; rc && i < oe->st->nres; i++) {
            if (i)
                sb_adds(&b, ", ");
            sb_add_json_str(&b, oe->st->res[i].name);
        }
        sb_adds(&b, "], \"error\": ");
        if (rc)
            sb_add_json_str(&b, e.msg ? e.msg : "error");
        else
            sb_adds(&b, "null");
        sb_addf(&b, ", \"duration_ms\": %lld}\n", tm_mono_ms() - t0);
        fputs(b.buf, stdout);
        sb_release(&b);
    }
    if (rc) {
        code = cmd_error(c, &e);
        ui_fail_logs(c, oe, up.failed);
        fprintf(stderr, "%zu resource%s left:", oe->st->nres, oe->st->nres == 1 ? "" : "s");
        for (size_t i = 0; i < oe->st->nres; i++)
            fprintf(stderr, " %s", oe->st->res[i].name);
        fprintf(stderr, "\n%s is marked destroy-failed; run `prenv env destroy %s` again once "
                        "the cause is fixed\n",
                env, env);
    } else if (!o->json) {
        if (oe->forgotten && oe->forgotten->u.list.n) {
            fprintf(stderr, "prenv: warning: forgotten without being removed (they may still "
                            "exist; remove them by hand):\n");
            for (size_t i = 0; i < oe->forgotten->u.list.n; i++)
                fprintf(stderr, "  ! %s\n", oe->forgotten->u.list.v[i]->u.str.s);
        }
        struct sb s;
        sb_init(&s);
        dur_fmt_secs(&s, tm_mono_ms() - t0);
        printf("%s%s is gone%s: %zu resource%s deleted, %s\n", cmd_c(c, "\033[1m"), env,
               cmd_c(c, "\033[0m"), n, n == 1 ? "" : "s", s.buf);
        sb_release(&s);
    }
out:
    err_release(&e);
    free(up.failed);
    op_close(oe);
    return code;
}

const struct cmd_entry cmd_env_destroy_entry = {
    .name = "env destroy",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "remove every resource of an environment and its state",
    .opts = opts,
    .opts_size = sizeof(struct destroy_opts),
    .exec = exec_destroy,
};

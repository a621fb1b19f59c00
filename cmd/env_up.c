/* env up: bring an environment to the template's desired state. */
#include "cmd/env_up.h"

#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define O(f) offsetof(struct up_opts, f)
static const struct cmd_opt opts[] = {
    {"set", 0, OPT_LIST, O(set), "K=V", "set a config value for this env (kept for later runs)"},
    {"unset", 0, OPT_LIST, O(unset), "K", "drop a value set earlier with --set"},
    {"owner", 0, OPT_STR, O(owner), "USER", "record who owns the env (default: $USER)"},
    {"ttl", 0, OPT_DURATION, O(ttl), "DUR", "expire the env DUR from now (e.g. 8h, 3d)"},
    {"sha", 0, OPT_STR, O(sha), "SHA", "the commit the env runs (exposed as ${env.sha}, ${pr.sha})"},
    {"parallel", 'p', OPT_INT, O(parallel), "N", "run at most N operations at once (default 4)"},
    {"rollback", 0, OPT_BOOL, O(rollback), NULL, "on failure, remove what this run created"},
    {"yes", 'y', OPT_BOOL, O(yes), NULL, "apply without asking"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the result as JSON (progress goes to stderr)"},
    {"no-refresh", 0, OPT_BOOL, O(no_refresh), NULL, "trust the state; don't read resources first"},
    {"unprotect", 0, OPT_BOOL, O(ignore_protect), NULL,
     "allow replacing or deleting protected resources, this once"},
    {"ignore-protect", 0, OPT_BOOL, O(ignore_protect), NULL, "the old name of --unprotect"},
    {"artifact", 0, OPT_STR, O(artifact), "URI@sha256:HEX",
     "pin the build the env runs (a path, file://, http(s)://) after checking its digest"},
    {"artifact-name", 0, OPT_STR, O(artifact_name), "NAME",
     "the artifact's name (default: from its file name)"},
    {"artifact-version", 0, OPT_STR, O(artifact_version), "VERSION",
     "the artifact's version (default: from its file name, else the digest)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static void print_json_result(struct op_env *oe, const struct up_opts *o,
                              const int done[OP_COUNT], long long ms, const char *result,
                              const struct err *e)
{
    struct sb b;
    sb_init(&b);
    sb_adds(&b, "{\"env\": ");
    sb_add_json_str(&b, oe->st->env);
    sb_adds(&b, ", \"result\": ");
    sb_add_json_str(&b, result);
    sb_addf(&b,
            ", \"changes\": {\"create\": %d, \"update\": %d, \"replace\": %d, \"delete\": %d}, "
            "\"duration_ms\": %lld, \"status\": ",
            done[OP_CREATE], done[OP_UPDATE], done[OP_REPLACE], done[OP_DELETE], ms);
    sb_add_json_str(&b, oe->st->status);
    sb_adds(&b, ", \"error\": ");
    if (e && e->code)
        sb_add_json_str(&b, e->msg ? e->msg : "error");
    else
        sb_adds(&b, "null");
    sb_adds(&b, ", \"outputs\": ");
    val_json(&b, oe->st->outputs, VAL_JSON_MASK);
    sb_adds(&b, ", \"artifact\": ");
    val_json(&b, oe->st->artifact, VAL_JSON_MASK);
    for (size_t i = 0; o->json_extra && o->json_extra->kind == VAL_MAP &&
                       i < o->json_extra->u.map.n; i++) {
        sb_adds(&b, ", ");
        sb_add_json_str(&b, o->json_extra->u.map.e[i].key);
        sb_adds(&b, ": ");
        val_json(&b, o->json_extra->u.map.e[i].v, VAL_JSON_MASK);
    }
    sb_adds(&b, "}\n");
    fputs(b.buf, stdout);
    sb_release(&b);
}

int cmd_up_run(struct cmd_ctx *c, const char *env, struct up_opts *o)
{
    long long t0 = tm_mono_ms();
    struct err e = {0};
    struct val *sets = NULL;
    o->result = "error";
    if ((o->artifact_name || o->artifact_version) && !o->artifact)
        return cmd_usage_error(c, "--artifact-name and --artifact-version go with --artifact");
    if (ui_parse_sets(&sets, o->set.v, o->set.n, &e))
        return cmd_error(c, &e);
    struct ui_progress up = {.c = c, .verb = "up", .quiet = o->json};
    if (o->parallel < 0 || o->parallel > 256) {
        val_free(sets);
        return cmd_usage_error(c, "--parallel must be between 1 and 256");
    }
    struct op_opts oo = cmd_op_opts(c, &up);
    oo.sets = sets;
    oo.unsets = o->unset.v;
    oo.nunsets = o->unset.n;
    oo.owner = o->owner;
    oo.ttl_ms = o->ttl;
    oo.sha = o->sha;
    oo.parallel = (int)o->parallel;
    oo.rollback = o->rollback;
    oo.ignore_protect = o->ignore_protect;
    oo.no_refresh = o->no_refresh;
    oo.artifact = o->artifact;
    oo.artifact_name = o->artifact_name;
    oo.artifact_version = o->artifact_version;
    oo.artifact_pin = o->artifact_pin;
    oo.operation = o->operation;
    oo.history_extra = o->history_extra;
    struct op_env *oe = NULL;
    int rc = op_open(&oe, env, OP_LOCK | OP_LOAD_TEMPLATE, &oo, &e);
    if (rc) {
        val_free(sets);
        return cmd_error(c, &e);
    }
    struct plan p;
    rc = op_prepare(oe, &oo, &p, &e);
    if (rc) {
        int x = cmd_error(c, &e);
        err_release(&e);
        op_close(oe);
        val_free(sets);
        return x;
    }
    /* cost reports group by these; an env without them lands in "(none)" */
    static const char *const wanted[] = {"CostCenter", "DataClass"};
    for (size_t i = 0; i < 2; i++)
        if (!val_map_get(oe->st->tags, wanted[i]))
            cmd_warn(c, "%s has no %s tag; set `tags: {%s: ...}` in its config (docs/files.md)",
                     env, wanted[i], wanted[i]);
    int changes = p.counts[OP_CREATE] + p.counts[OP_UPDATE] + p.counts[OP_REPLACE] +
                  p.counts[OP_DELETE];
    int done[OP_COUNT] = {0};
    int exit_code = EXIT_OK;
    if (!changes) {
        rc = op_touch(oe, &oo, &e);
        o->result = rc ? "failed" : "unchanged";
        if (rc)
            exit_code = cmd_error(c, &e);
        else if (o->json)
            print_json_result(oe, o, done, tm_mono_ms() - t0, "unchanged", NULL);
        else {
            if (oe->artifact_changed)
                printf("%s now pins artifact %s %s (%s)\n", env,
                       val_map_str(oe->st->artifact, "name", "?"),
                       val_map_str(oe->st->artifact, "version", "?"),
                       val_map_str(oe->st->artifact, "digest", "?"));
            printf("%s is up to date: nothing to do (%zu resource%s unchanged)\n", env,
                   oe->st->nres, oe->st->nres == 1 ? "" : "s");
            ui_outputs(c, oe->st->outputs);
        }
        goto out;
    }
    if (!o->json)
        ui_plan(c, oe, &p);
    if (!o->yes) {
        if (!c->tty_in) {
            err_set(&e, PE_USAGE, NULL, "refusing to change '%s' without confirmation", env);
            err_hint(&e, "pass --yes to apply without asking (stdin is not a terminal)");
            exit_code = cmd_error(c, &e);
            o->result = "declined";
            goto out;
        }
        if (!cmd_ask(c, "Apply these changes?")) {
            printf("nothing changed\n");
            o->result = "declined";
            goto out;
        }
    }
    if (!o->json)
        printf("applying...\n");
    rc = op_apply(oe, &oo, &p, done, t0, &e);
    o->result = rc ? "failed" : "ok";
    if (o->json)
        print_json_result(oe, o, done, tm_mono_ms() - t0, rc ? "failed" : "ok", &e);
    if (rc) {
        exit_code = cmd_error(c, &e);
        ui_fail_logs(c, oe, up.failed);
        if (!o->rollback)
            fprintf(stderr, "state saved; fix the problem and run `prenv env up %s` again, or "
                            "`prenv env destroy %s` to remove it\n",
                    env, env);
    } else if (!o->json) {
        struct sb s;
        sb_init(&s);
        ui_summary(&s, done, tm_mono_ms() - t0);
        printf("%s%s is up%s: %s\n", cmd_c(c, "\033[1;32m"), env, cmd_c(c, "\033[0m"), s.buf);
        sb_release(&s);
        ui_outputs(c, oe->st->outputs);
    }
out:
    plan_release(&p);
    err_release(&e);
    free(up.failed);
    op_close(oe);
    val_free(sets);
    return exit_code;
}

static int exec_up(struct cmd_ctx *c, void *o, int argc, char **argv)
{
    (void)argc;
    return cmd_up_run(c, argv[0], o);
}

const struct cmd_entry cmd_env_up_entry = {
    .name = "env up",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "create or update an environment from the template",
    .help = "Reads the env's config layers and the template, settles anything an interrupted\n"
            "run left, reads every resource to see what really exists, shows the plan and\n"
            "applies it. A second run with nothing changed does nothing.\n\n"
            "--artifact pins a build by digest: its bytes are copied into the state dir's\n"
            "store, hashed, and refused unless the digest matches; the template reads\n"
            "${artifact.path} (the verified copy), name, version, uri and digest. Later\n"
            "runs keep the pin and verify the stored bytes again.",
    .opts = opts,
    .opts_size = sizeof(struct up_opts),
    .exec = exec_up,
};

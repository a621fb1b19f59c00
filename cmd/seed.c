/* seed: load an environment's synthetic data now — again when its inputs
 * changed, always with --reset — optionally with another seed value or row
 * counts for this run. The template's values stay what `up` compares with,
 * so a later `up` keeps what this loaded. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "envs/op.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seed_cmd_opts {
    bool reset, force, json;
    long long seed;
    bool seed_set;
    struct opt_list rows;
};

#define O(f) offsetof(struct seed_cmd_opts, f)
static const struct cmd_opt opts[] = {
    {"reset", 0, OPT_BOOL, O(reset), NULL, "empty and load the tables even if nothing changed"},
    {"seed", 0, OPT_INT, O(seed), "N", "use seed value N for this run (default: the template's)"},
    {"rows", 0, OPT_LIST, O(rows), "TABLE=N", "load N rows into TABLE for this run"},
    {"force", 0, OPT_BOOL, O(force), NULL, "seed even a protected environment"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the result as JSON"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int parse_rows(struct cmd_ctx *c, const struct opt_list *l, struct val **out)
{
    *out = NULL;
    if (!l->n)
        return 0;
    struct val *m = val_map(NULL);
    for (size_t i = 0; i < l->n; i++) {
        const char *eq = strchr(l->v[i], '=');
        long long n;
        if (!eq || eq == l->v[i] || !str_parse_int(eq + 1, 0, 1000000000, &n)) {
            val_free(m);
            return cmd_usage_error(c, "--rows expects TABLE=N with N a whole number, not '%s'",
                                   l->v[i]);
        }
        char *t = xstrndup(l->v[i], (size_t)(eq - l->v[i]));
        val_map_set(m, t, NULL, val_int(n, NULL));
        free(t);
    }
    *out = m;
    return 0;
}

static int exec_seed(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct seed_cmd_opts *o = vo;
    const char *env = argv[0];
    long long t0 = tm_mono_ms();
    struct val *rows = NULL;
    int code = parse_rows(c, &o->rows, &rows);
    if (code)
        return code;
    struct err e = {0};
    struct ui_progress up = {.c = c, .quiet = o->json};
    struct op_opts oo = cmd_op_opts(c, &up);
    oo.force = o->force;
    struct op_env *oe = NULL;
    if (op_open(&oe, env, OP_LOCK | OP_LOAD_TEMPLATE | OP_NEED_STATE, &oo, &e)) {
        val_free(rows);
        return cmd_error(c, &e);
    }
    int rc = 0;
    if (oe->def.protect && !o->force) {
        rc = err_set(&e, PE_PROTECTED, NULL,
                     "not seeding '%s': it is protected, and synthetic data never goes into a "
                     "protected stage by accident",
                     env);
        err_hint(&e, "pass --force if this is really what you want");
    }
    if (!rc)
        rc = eng_reconcile(oe->en, &e);
    size_t nseeds = 0;
    struct sb js;
    sb_init(&js);
    sb_adds(&js, "{\"env\": ");
    sb_add_json_str(&js, env);
    sb_adds(&js, ", \"resources\": [");
    for (size_t k = 0; !rc && k < oe->tpl->n; k++) {
        size_t i = oe->tpl->order[k];
        const struct tpl_res *tr = &oe->tpl->res[i];
        if (strcmp(tr->prov->type, "seed.synthetic") != 0)
            continue;
        nseeds++;
        struct st_res *sr = state_res(oe->st, tr->name);
        if (!sr) {
            rc = err_set(&e, PE_NOTFOUND, NULL, "resource '%s' of '%s' has not been created yet",
                         tr->name, env);
            err_hint(&e, "run `prenv env up %s` first", env);
            break;
        }
        struct val *props = NULL;
        if ((rc = eng_render(oe->en, &oe->desired, i, &props, &e)))
            break;
        char **ch = NULL, *why = NULL;
        size_t nch = 0;
        eng_diff(sr->inputs, props, tr->prov, &ch, &nch, &why);
        for (size_t x = 0; x < nch; x++)
            free(ch[x]);
        free(ch);
        free(why);
        bool override = o->seed || rows;
        if (!nch && !o->reset && !override) {
            if (!o->json)
                printf("  =  %s (seed.synthetic): up to date (use --reset to load again)\n",
                       tr->name);
            sb_addf(&js, "%s{\"resource\": \"%s\", \"result\": \"unchanged\"}",
                    nseeds > 1 ? ", " : "", tr->name);
            val_free(props);
            continue;
        }
        struct val *eff = val_clone(props);
        if (o->seed)
            val_map_set(eff, "seed", NULL, val_int(o->seed, NULL));
        if (rows) {
            struct val *r = val_map_get(eff, "rows");
            struct val *merged = r && r->kind == VAL_MAP ? val_clone(r) : val_map(NULL);
            val_merge(&merged, rows);
            val_map_set(eff, "rows", NULL, merged);
        }
        if (!o->json)
            printf("  ~  %s (seed.synthetic) seeding...\n", tr->name);
        fflush(stdout);
        struct prov_result res;
        long long t1 = tm_mono_ms();
        rc = eng_call(oe->en, tr->prov, tr->name, OP_UPDATE, eff, &res, &e);
        if (!rc) {
            /* the template's inputs are what `up` compares with */
            val_free(sr->inputs);
            sr->inputs = props;
            props = NULL;
            free(sr->inputs_hash);
            sr->inputs_hash = state_hash(sr->inputs);
            val_free(sr->outputs);
            sr->outputs = res.outputs;
            res.outputs = NULL;
            free(sr->drift);
            sr->drift = NULL;
            sr->updated_ms = tm_now_ms();
            struct sb d;
            sb_init(&d);
            dur_fmt_secs(&d, tm_mono_ms() - t1);
            if (!o->json)
                printf("  ~  %s (seed.synthetic) seeded in %s: %s\n", tr->name, d.buf,
                       res.note ? res.note : "done");
            sb_release(&d);
            sb_addf(&js, "%s{\"resource\": \"%s\", \"result\": \"seeded\", \"outputs\": ",
                    nseeds > 1 ? ", " : "", tr->name);
            val_json(&js, sr->outputs, VAL_JSON_MASK);
            sb_adds(&js, "}");
        } else {
            err_prefix(&e, "resource '%s' (seed.synthetic): ", tr->name);
        }
        prov_result_release(&res);
        val_free(props);
        val_free(eff);
    }
    sb_adds(&js, "]}\n");
    if (!rc && !nseeds) {
        rc = err_set(&e, PE_NOTFOUND, NULL, "the template has no seed.synthetic resource");
        err_hint(&e, "add one that loads seeds/<name>.yaml into the env's database; see "
                     "docs/seeds.md");
    }
    struct err se = {0};
    if (!rc && !eng_save(oe->en, &se))
        op_history(oe, "seed", "ok", NULL, t0);
    else if (!rc)
        rc = err_set(&e, se.code, NULL, "%s", se.msg);
    err_release(&se);
    if (rc) {
        code = cmd_error(c, &e);
        ui_fail_logs(c, oe, NULL);
    } else if (o->json) {
        fputs(js.buf, stdout);
    }
    sb_release(&js);
    val_free(rows);
    free(up.failed);
    op_close(oe);
    return code;
}

const struct cmd_entry cmd_seed_entry = {
    .name = "seed",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "load an env's synthetic data now (again if its inputs changed; --reset: always)",
    .help = "Runs the template's seed.synthetic resources of an existing environment. The\n"
            "tables are emptied and loaded in one transaction. --seed and --rows apply to this\n"
            "run only: a later `env up` keeps what they loaded. A protected environment is\n"
            "never seeded without --force.",
    .opts = opts,
    .opts_size = sizeof(struct seed_cmd_opts),
    .exec = exec_seed,
};

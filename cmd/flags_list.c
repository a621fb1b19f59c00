/* flags list: the matrix of feature flags across environments — one row per
 * flag, one column per env (the stages of prenv.yaml, then every other env
 * that exists) — each cell the value the env's config layers give it now,
 * with the env's kept --set values. Reads config only: no lock, no state is
 * changed, no passphrase is needed. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/xalloc.h"
#include "core/state.h"
#include "envs/envcfg.h"
#include "envs/project.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct flags_opts {
    bool json;
};

#define O(f) offsetof(struct flags_opts, f)
static const struct cmd_opt opts[] = {
    {"json", 0, OPT_BOOL, O(json), NULL, "print JSON (see docs/json.md)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

struct col {
    char *env;
    struct envcfg *cfg;
    const struct val *flags; /* borrowed from cfg; NULL = none */
};

static int col_load(struct col *c, const struct project *p, const char *env, struct err *e)
{
    memset(c, 0, sizeof *c);
    c->env = xstrdup(env);
    struct env_def d;
    int rc = project_env(&d, p, env, e);
    if (rc)
        return rc;
    struct state *st = NULL;
    struct err ign = {0};
    if (state_load(&st, p->state_dir, env, &ign))
        st = NULL;
    err_release(&ign);
    rc = envcfg_load(&c->cfg, p, d.config, st ? st->sets : NULL, e);
    state_free(st);
    env_def_release(&d);
    if (rc) {
        err_prefix(e, "environment '%s': ", env);
        return rc;
    }
    const struct val *f = val_map_get(c->cfg->values, "flags");
    c->flags = f && f->kind == VAL_MAP ? f : NULL;
    return 0;
}

static bool has_col(const struct col *cols, size_t n, const char *env)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cols[i].env, env))
            return true;
    return false;
}

static int exec_flags(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct flags_opts *o = vo;
    struct err e = {0};
    struct project *p = NULL;
    int rc = cmd_project(c, &p, &e);
    if (rc)
        return cmd_error(c, &e);
    char **names = NULL;
    size_t nn = 0;
    if ((rc = state_list(&names, &nn, p->state_dir, &e))) {
        project_free(p);
        return cmd_error(c, &e);
    }
    /* an env whose config cannot be read (or whose name no longer fits
     * prenv.yaml) is left out with a warning: the others still show, and the
     * exit code says something was missing */
    struct col *cols = xcalloc(p->nstages + nn + 1, sizeof *cols);
    size_t n = 0, bad = 0;
    for (size_t i = 0; i < p->nstages + nn; i++) {
        const char *env = i < p->nstages ? p->stages[i].name : names[i - p->nstages];
        if (has_col(cols, n, env))
            continue;
        if (col_load(&cols[n], p, env, &e)) {
            cmd_warn(c, "%s (left out)", e.msg);
            err_release(&e);
            free(cols[n].env);
            envcfg_free(cols[n].cfg);
            bad++;
            continue;
        }
        n++;
    }
    /* rows: every flag any env names, in the order first seen */
    const char **rows = NULL;
    size_t nrows = 0, caprows = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; cols[i].flags && k < cols[i].flags->u.map.n; k++) {
            const char *name = cols[i].flags->u.map.e[k].key;
            bool seen = false;
            for (size_t r = 0; !seen && r < nrows; r++)
                seen = !strcmp(rows[r], name);
            if (!seen) {
                XGROW(rows, caprows, nrows + 1);
                rows[nrows++] = name;
            }
        }
    struct sb b;
    sb_init(&b);
    if (o->json) {
        sb_adds(&b, "{\n  \"envs\": [");
        for (size_t i = 0; i < n; i++) {
            sb_adds(&b, i ? ", " : "");
            sb_add_json_str(&b, cols[i].env);
        }
        sb_adds(&b, "],\n  \"flags\": [");
        for (size_t r = 0; r < nrows; r++) {
            sb_adds(&b, r ? ",\n    {\"name\": " : "\n    {\"name\": ");
            sb_add_json_str(&b, rows[r]);
            sb_adds(&b, ", \"values\": {");
            for (size_t i = 0; i < n; i++) {
                sb_adds(&b, i ? ", " : "");
                sb_add_json_str(&b, cols[i].env);
                sb_adds(&b, ": ");
                const struct val *v = cols[i].flags ? val_map_get(cols[i].flags, rows[r]) : NULL;
                if (v)
                    val_json(&b, v, VAL_JSON_MASK);
                else
                    sb_adds(&b, "null");
            }
            sb_adds(&b, "}}");
        }
        sb_adds(&b, nrows ? "\n  ]\n}\n" : "]\n}\n");
    } else if (!nrows) {
        sb_adds(&b, "no flags: add a `flags:` map to an env's config\n");
    } else {
        /* cells as text, then widths */
        size_t w0 = strlen("FLAG");
        for (size_t r = 0; r < nrows; r++)
            w0 = strlen(rows[r]) > w0 ? strlen(rows[r]) : w0;
        struct sb *cell = xcalloc(nrows * n + 1, sizeof *cell);
        size_t *w = xcalloc(n + 1, sizeof *w);
        for (size_t i = 0; i < n; i++) {
            w[i] = strlen(cols[i].env);
            for (size_t r = 0; r < nrows; r++) {
                struct sb *s = &cell[r * n + i];
                sb_init(s);
                const struct val *v = cols[i].flags ? val_map_get(cols[i].flags, rows[r]) : NULL;
                if (v && v->kind == VAL_STR && !v->encrypted && !v->secret)
                    sb_adds(s, v->u.str.s); /* unquoted: a table cell */
                else if (v)
                    ui_value(s, v, 40);
                else
                    sb_adds(s, "-");
                w[i] = s->len > w[i] ? s->len : w[i];
            }
        }
        sb_addf(&b, "%-*s", (int)w0, "FLAG");
        for (size_t i = 0; i < n; i++)
            sb_addf(&b, "  %-*s", (int)w[i], cols[i].env);
        sb_trim_right(&b);
        sb_addc(&b, '\n');
        for (size_t r = 0; r < nrows; r++) {
            sb_addf(&b, "%-*s", (int)w0, rows[r]);
            for (size_t i = 0; i < n; i++)
                sb_addf(&b, "  %-*s", (int)w[i], cell[r * n + i].buf);
            sb_trim_right(&b);
            sb_addc(&b, '\n');
        }
        for (size_t k = 0; k < nrows * n; k++)
            sb_release(&cell[k]);
        free(cell);
        free(w);
    }
    fputs(b.buf, stdout);
    sb_release(&b);
    for (size_t i = 0; i < n; i++) {
        free(cols[i].env);
        envcfg_free(cols[i].cfg);
    }
    free(cols);
    free(rows);
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    project_free(p);
    return bad ? EXIT_FAIL : EXIT_OK;
}

const struct cmd_entry cmd_flags_list_entry = {
    .name = "flags list",
    .args = NULL,
    .min_args = 0,
    .max_args = 0,
    .summary = "feature flags across envs: one row per flag, one column per env",
    .help = "Columns are the stages of prenv.yaml, then every other environment that exists; "
            "each cell is the flag's value in that env's config layers (with its kept --set "
            "values), or - when the env does not set it; an env whose config cannot be read is "
            "left out with a warning and the exit code is 1. Services see a flag as FLAG_<NAME> "
            "(true is 1, false is 0); a change reaches them on the next `prenv env up`.",
    .opts = opts,
    .opts_size = sizeof(struct flags_opts),
    .exec = exec_flags,
};

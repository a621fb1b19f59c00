/* env import: write an exported environment record (env export) into this
 * project's state directory. Creates no resource: the record keeps their ids,
 * so `env refresh`, `env plan` and `env up` then reconcile with what exists. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/fs.h"
#include "envs/export.h"
#include "envs/project.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct import_cmd_opts {
    const char *as;
    bool force;
};

#define O(f) offsetof(struct import_cmd_opts, f)
static const struct cmd_opt opts[] = {
    {"as", 0, OPT_STR, O(as), "NAME", "import under NAME (an env name of the same kind)"},
    {"force", 0, OPT_BOOL, O(force), NULL,
     "replace an existing record that holds the same resources (same types and ids)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_import(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct import_cmd_opts *o = vo;
    struct err e = {0};
    struct project *p = NULL;
    char *text = NULL, *env = NULL;
    size_t len = 0, nres = 0;
    int rc = fs_read(argv[0], EXPORT_MAX_FILE, &text, &len, &e);
    if (rc == -ENOENT)
        rc = err_set(&e, PE_NOTFOUND, NULL, "%s does not exist", argv[0]);
    if (!rc)
        rc = cmd_project(c, &p, &e);
    if (!rc) {
        struct import_opts io = {
            .as = o->as,
            .force = o->force,
            .command = c->command_line,
            .lock_wait_ms = -1,
        };
        rc = import_env(&env, &nres, p, text, len, argv[0], &io, &e);
    }
    int code = EXIT_OK;
    if (rc)
        code = cmd_error(c, &e);
    else
        printf("%s: imported with %zu resource%s; `prenv env plan %s` compares it with what "
               "exists\n",
               env, nres, nres == 1 ? "" : "s", env);
    free(env);
    free(text);
    project_free(p);
    return code;
}

const struct cmd_entry cmd_env_import_entry = {
    .name = "env import",
    .args = "FILE",
    .min_args = 1,
    .max_args = 1,
    .summary = "restore an environment's record from `prenv env export`",
    .help = "Writes the state and history atomically under the environment's lock and touches "
            "no resource. Refuses when the environment exists; --force replaces its record only "
            "when that record holds nothing the imported one does not (same names, types and "
            "ids) and no operation is pending, so no live resource is orphaned.",
    .opts = opts,
    .opts_size = sizeof(struct import_cmd_opts),
    .exec = exec_import,
};

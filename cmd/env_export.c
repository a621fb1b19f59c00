/* env export: an environment's record (state and history) as one JSON
 * document, secrets still sealed: a backup, or a move to another machine. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "envs/export.h"
#include "envs/project.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct export_opts {
    const char *output;
};

#define O(f) offsetof(struct export_opts, f)
static const struct cmd_opt opts[] = {
    {"output", 'o', OPT_STR, O(output), "FILE",
     "write to FILE (mode 0600, atomically) instead of stdout"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_export(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct export_opts *o = vo;
    struct err e = {0};
    struct project *p = NULL;
    struct sb b;
    sb_init_max(&b, EXPORT_MAX_FILE);
    int rc = cmd_project(c, &p, &e);
    if (!rc)
        rc = export_env(&b, p, argv[0], c->command_line, -1, &e);
    if (!rc && !sb_ok(&b))
        rc = err_set(&e, PE_LIMIT, NULL, "the export of '%s' would exceed %zu bytes", argv[0],
                     EXPORT_MAX_FILE);
    if (!rc && o->output)
        rc = fs_write_atomic(o->output, b.buf, b.len, 0600, &e);
    else if (!rc && fwrite(b.buf, 1, b.len, stdout) != b.len)
        rc = err_set(&e, PE_INTERNAL, NULL, "cannot write the export to stdout");
    int code = EXIT_OK;
    if (rc)
        code = cmd_error(c, &e);
    else if (o->output)
        cmd_note(c, "%s: exported to %s (secrets stay encrypted)", argv[0], o->output);
    sb_release(&b);
    project_free(p);
    return code;
}

const struct cmd_entry cmd_env_export_entry = {
    .name = "env export",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "write an environment's state and history as one JSON document",
    .help = "The state goes out as stored: secrets stay encrypted, and no passphrase is "
            "needed. Resources are not touched. `prenv env import` reads the document back "
            "(docs/json.md, \"env export\").",
    .opts = opts,
    .opts_size = sizeof(struct export_opts),
    .exec = exec_export,
};

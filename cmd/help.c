/* help: the overview, or one command's generated help. */
#include "cmd/cmd.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"

#include <stdio.h>
#include <string.h>

static int exec_help(struct cmd_ctx *c, void *o, int argc, char **argv)
{
    (void)o;
    if (argc == 0) {
        char *args[] = {"--help"};
        (void)args;
        const struct cmd_entry *const *t = cmd_table();
        printf("prenv — environments for every pull request, sandbox and stage\n\ncommands:\n");
        for (size_t i = 0; t[i]; i++)
            if (!(t[i]->flags & CMD_HIDDEN))
                printf("  %-22s %-12s %s\n", t[i]->name, t[i]->args ? t[i]->args : "",
                       t[i]->summary);
        printf("\nRun `prenv help COMMAND` for a command's options.\n");
        return EXIT_OK;
    }
    struct sb name;
    sb_init(&name);
    for (int i = 0; i < argc; i++)
        sb_addf(&name, "%s%s", i ? " " : "", argv[i]);
    const struct cmd_entry *const *t = cmd_table();
    const struct cmd_entry *hit = NULL;
    int n = 0;
    for (size_t i = 0; t[i]; i++)
        if (!strcmp(t[i]->name, name.buf)) {
            hit = t[i];
            n = 1;
            break;
        } else if (str_prefix(t[i]->name, name.buf)) {
            hit = t[i];
            n++;
        }
    int rc = EXIT_OK;
    if (n == 1)
        cmd_help(stdout, hit);
    else if (n > 1) {
        printf("commands starting with '%s':\n", name.buf);
        for (size_t i = 0; t[i]; i++)
            if (str_prefix(t[i]->name, name.buf) && !(t[i]->flags & CMD_HIDDEN))
                printf("  prenv %-20s %s\n", t[i]->name, t[i]->summary);
    } else
        rc = cmd_usage_error(c, "no command '%s'; `prenv help` lists them", name.buf);
    sb_release(&name);
    return rc;
}

const struct cmd_entry cmd_help_entry = {
    .name = "help",
    .args = "[COMMAND]",
    .min_args = 0,
    .max_args = 2,
    .summary = "show the commands, or one command's options",
    .exec = exec_help,
};

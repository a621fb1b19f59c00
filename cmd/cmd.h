/* cmd: the command table, the option parser and the dispatcher. A command is
 * one file exporting one `const struct cmd_entry`; its options are data (name,
 * short flag, type, offset into the command's options struct, help), so usage
 * errors, `--help`, `prenv help` and the docs come from the same table.
 * Names match by unique prefix, word by word ("prenv e u dev" is "env up").
 * Exit codes: 0 ok, 1 failure, 2 usage, 3 changes found (--expect-no-changes). */
#ifndef PRENV_CMD_H
#define PRENV_CMD_H

#include "core/lib/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CHANGES = 3 };

enum opt_type {
    OPT_BOOL,     /* bool */
    OPT_STR,      /* const char * */
    OPT_INT,      /* long long */
    OPT_DURATION, /* long long milliseconds */
    OPT_LIST,     /* struct opt_list: repeatable */
};

struct opt_list {
    char **v;
    size_t n, cap;
};

struct cmd_opt {
    const char *name; /* long name without "--" */
    char short_name;  /* 0 = none */
    enum opt_type type;
    size_t offset;    /* into the command's options struct */
    const char *arg;  /* metavariable, "N", "K=V" */
    const char *help;
};

struct cmd_ctx;

enum { CMD_HIDDEN = 1 };

struct cmd_entry {
    const char *name;    /* "env up" */
    const char *args;    /* positional usage, "ENV" */
    int min_args, max_args;
    const char *summary; /* one line */
    const char *help;    /* paragraphs shown by --help, may be NULL */
    const struct cmd_opt *opts; /* ends with {NULL} */
    size_t opts_size;
    int (*exec)(struct cmd_ctx *c, void *opts, int argc, char **argv);
    unsigned flags;
};

struct cmd_ctx {
    const struct cmd_entry *entry;
    const char *project_dir; /* -C */
    const char *state_dir;   /* --state-dir */
    bool color;              /* stdout is a TTY and NO_COLOR unset */
    bool color_err;
    bool tty_in;
    char *command_line;      /* "prenv env up dev", for lock holders */
};

int cmd_main(int argc, char **argv);
const struct cmd_entry *const *cmd_table(void);

/* Output helpers. */
/* cmd_error: print e compiler-style on stderr, release it, and return the
 * exit code for it. */
int cmd_error(struct cmd_ctx *c, struct err *e);
int cmd_usage_error(struct cmd_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmd_warn(struct cmd_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmd_note(struct cmd_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ANSI colour codes, or "" when colour is off */
const char *cmd_c(const struct cmd_ctx *c, const char *code);
/* cmd_help: print the full help of an entry. */
void cmd_help(FILE *f, const struct cmd_entry *e);
/* cmd_ask: y/N question on the terminal; false when stdin is not a TTY. */
bool cmd_ask(struct cmd_ctx *c, const char *question);

#endif

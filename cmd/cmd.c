/* cmd: command table, option parsing, dispatch, help and error printing. */
#include "cmd/cmd.h"

#include "core/lib/proc.h"
#include "core/lib/vcs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define E(x) extern const struct cmd_entry cmd_##x##_entry;
#define CMD_LIST(X)                                                                               \
    X(init) X(env_up) X(env_plan) X(env_list) X(env_show) X(env_destroy) X(env_logs)              \
        X(env_refresh) X(env_export) X(env_import) X(env_unlock) X(env_sleep) X(env_wake) X(env_extend) X(sandbox_up) X(template_validate) X(template_render)       \
            X(config_get) X(config_list) X(config_diff) X(config_set) X(config_rm) X(config_import_pulumi) X(config_rotate_passphrase) X(version) X(help) X(supervise)       \
                X(seed) X(seed_preview) X(pr_open) X(pr_close) X(serve) X(schedule_match) X(schedule_next) X(reap) X(cost) \
                    X(promote) X(promotions) X(approve) X(reject) X(completion) X(gendocs) X(flags_list)
CMD_LIST(E)
#undef E

#define P(x) &cmd_##x##_entry,
static const struct cmd_entry *const table[] = {CMD_LIST(P) NULL};
#undef P

const struct cmd_entry *const *cmd_table(void)
{
    return table;
}

const char *cmd_c(const struct cmd_ctx *c, const char *code)
{
    return c && c->color ? code : "";
}

static const char *ce(const struct cmd_ctx *c, const char *code)
{
    return c && c->color_err ? code : "";
}

int cmd_error(struct cmd_ctx *c, struct err *e)
{
    struct sb b;
    sb_init(&b);
    if (!e->pos.src)
        sb_addf(&b, "%sprenv:%s ", ce(c, "\033[1m"), ce(c, "\033[0m"));
    err_format(&b, e, c ? c->color_err : 0);
    fputs(b.buf, stderr);
    sb_release(&b);
    int code = e->code == PE_USAGE ? EXIT_USAGE : EXIT_FAIL;
    err_release(e);
    return code;
}

int cmd_usage_error(struct cmd_ctx *c, const char *fmt, ...)
{
    struct sb b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%sprenv:%s %serror:%s %s\n", ce(c, "\033[1m"), ce(c, "\033[0m"),
            ce(c, "\033[1;31m"), ce(c, "\033[0m"), b.buf);
    if (c && c->entry)
        fprintf(stderr, "usage: prenv %s%s%s%s\n       (see `prenv %s --help`)\n", c->entry->name,
                c->entry->opts && c->entry->opts[0].name ? " [options]" : "",
                c->entry->args ? " " : "", c->entry->args ? c->entry->args : "", c->entry->name);
    sb_release(&b);
    return EXIT_USAGE;
}

void cmd_warn(struct cmd_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%sprenv: warning:%s ", ce(c, "\033[1;33m"), ce(c, "\033[0m"));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cmd_note(struct cmd_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%sprenv:%s ", ce(c, "\033[2m"), ce(c, "\033[0m"));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool cmd_ask(struct cmd_ctx *c, const char *question)
{
    if (!c->tty_in)
        return false;
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    char buf[64];
    if (!fgets(buf, sizeof buf, stdin))
        return false;
    return buf[0] == 'y' || buf[0] == 'Y';
}

static const char *type_arg(const struct cmd_opt *o)
{
    if (o->arg)
        return o->arg;
    switch (o->type) {
    case OPT_INT: return "N";
    case OPT_DURATION: return "DUR";
    case OPT_LIST:
    case OPT_STR: return "VALUE";
    default: return "";
    }
}

void cmd_help(FILE *f, const struct cmd_entry *e)
{
    fprintf(f, "usage: prenv %s%s%s%s\n\n%s\n", e->name,
            e->opts && e->opts[0].name ? " [options]" : "", e->args ? " " : "",
            e->args ? e->args : "", e->summary);
    if (e->help)
        fprintf(f, "\n%s\n", e->help);
    if (e->opts && e->opts[0].name) {
        fprintf(f, "\noptions:\n");
        for (const struct cmd_opt *o = e->opts; o->name; o++) {
            struct sb b;
            sb_init(&b);
            if (o->short_name)
                sb_addf(&b, "-%c, ", o->short_name);
            else
                sb_adds(&b, "    ");
            sb_addf(&b, "--%s", o->name);
            if (o->type != OPT_BOOL)
                sb_addf(&b, " %s", type_arg(o));
            fprintf(f, "  %-26s %s%s\n", b.buf, o->help,
                    o->type == OPT_LIST ? " (repeatable)" : "");
            sb_release(&b);
        }
    }
    fprintf(f, "\nglobal options: -C DIR (project directory), --state-dir DIR, --no-color\n");
}

static void print_overview(FILE *f)
{
    fprintf(f, "prenv — environments for every pull request, sandbox and stage\n\n"
               "usage: prenv [-C DIR] [--state-dir DIR] [--no-color] COMMAND [options] [args]\n\n"
               "commands:\n");
    for (size_t i = 0; table[i]; i++) {
        if (table[i]->flags & CMD_HIDDEN)
            continue;
        struct sb b;
        sb_init(&b);
        sb_adds(&b, table[i]->name);
        if (table[i]->args)
            sb_addf(&b, " %s", table[i]->args);
        fprintf(f, "  %-32s %s\n", b.buf, table[i]->summary);
        sb_release(&b);
    }
    fprintf(f, "\nNames may be shortened to any unique prefix (prenv e u dev).\n"
               "Run `prenv help COMMAND` or `prenv COMMAND --help` for a command's options.\n"
               "Exit codes: 0 ok, 1 failure, 2 usage error, 3 changes found with "
               "--expect-no-changes.\n");
}

/* word i of a command name into buf */
static bool name_word(const char *name, int i, char *buf, size_t n)
{
    const char *p = name;
    for (int k = 0; k < i; k++) {
        p = strchr(p, ' ');
        if (!p)
            return false;
        p++;
    }
    size_t l = strcspn(p, " ");
    if (l >= n)
        return false;
    memcpy(buf, p, l);
    buf[l] = 0;
    return true;
}

static int word_count(const char *name)
{
    int n = 1;
    for (const char *p = name; *p; p++)
        if (*p == ' ')
            n++;
    return n;
}

/* match word against the distinct words at position w of the candidates:
 * an exact match wins, else a unique prefix. Returns the matched word. */
static const char *match_word(struct cmd_ctx *c, const struct cmd_entry **cands, size_t nc, int w,
                              const char *word, const char *prefix, int *rc)
{
    static char words[64][32];
    size_t nw = 0;
    for (size_t i = 0; i < nc; i++) {
        char wb[32];
        if (!name_word(cands[i]->name, w, wb, sizeof wb) || (cands[i]->flags & CMD_HIDDEN &&
                                                             strcmp(wb, word) != 0))
            continue;
        bool dup = false;
        for (size_t k = 0; k < nw; k++)
            if (!strcmp(words[k], wb))
                dup = true;
        if (!dup && nw < 64)
            snprintf(words[nw++], sizeof words[0], "%s", wb);
    }
    const char *hit = NULL;
    size_t nhit = 0;
    for (size_t k = 0; k < nw; k++) {
        if (!strcmp(words[k], word))
            return words[k];
        if (str_prefix(words[k], word)) {
            hit = words[k];
            nhit++;
        }
    }
    if (nhit == 1)
        return hit;
    struct sb b;
    sb_init(&b);
    const char *names[64];
    for (size_t k = 0; k < nw; k++) {
        names[k] = words[k];
        if (nhit == 0 || str_prefix(words[k], word))
            sb_addf(&b, "%s%s%s", b.len ? ", " : "", prefix, words[k]);
    }
    if (nhit > 1) {
        cmd_usage_error(c, "'%s%s' is ambiguous: %s", prefix, word, b.buf);
    } else {
        const char *near = str_closest(word, names, nw);
        if (near)
            cmd_usage_error(c, "unknown command '%s%s' (did you mean '%s%s'?)", prefix, word,
                            prefix, near);
        else
            cmd_usage_error(c, "unknown command '%s%s'; commands: %s", prefix, word, b.buf);
    }
    sb_release(&b);
    *rc = EXIT_USAGE;
    return NULL;
}

/* find the entry named by argv's leading words; *used = words consumed */
static const struct cmd_entry *lookup(struct cmd_ctx *c, int argc, char **argv, int *used,
                                      int *rc)
{
    const struct cmd_entry *all[64], *group[64];
    size_t na = 0, ng = 0;
    for (size_t i = 0; table[i]; i++)
        all[na++] = table[i];
    const char *w0 = match_word(c, all, na, 0, argv[0], "", rc);
    if (!w0)
        return NULL;
    char first[32];
    snprintf(first, sizeof first, "%s", w0);
    for (size_t i = 0; i < na; i++) {
        char wb[32];
        if (name_word(all[i]->name, 0, wb, sizeof wb) && !strcmp(wb, first))
            group[ng++] = all[i];
    }
    if (ng == 1 && word_count(group[0]->name) == 1) {
        *used = 1;
        return group[0];
    }
    /* a command that is also a group ("seed ENV" and "seed preview FILE"):
     * only an exact subcommand name selects the subcommand */
    const struct cmd_entry *single = NULL;
    for (size_t i = 0; i < ng; i++)
        if (word_count(group[i]->name) == 1)
            single = group[i];
    if (single) {
        for (size_t i = 0; argc >= 2 && i < ng; i++) {
            char wb[32];
            if (name_word(group[i]->name, 1, wb, sizeof wb) && !strcmp(wb, argv[1])) {
                *used = 2;
                return group[i];
            }
        }
        *used = 1;
        return single;
    }
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
            *rc = EXIT_OK;
        else
            *rc = EXIT_USAGE;
        FILE *f = *rc ? stderr : stdout;
        fprintf(f, "prenv %s needs a subcommand:\n", first);
        for (size_t i = 0; i < ng; i++)
            if (!(group[i]->flags & CMD_HIDDEN))
                fprintf(f, "  prenv %s%s%-*s %s\n", group[i]->name, group[i]->args ? " " : "",
                        (int)(30 - strlen(group[i]->name)),
                        group[i]->args ? group[i]->args : "", group[i]->summary);
        return NULL;
    }
    char prefix[40];
    snprintf(prefix, sizeof prefix, "%s ", first);
    const char *w1 = match_word(c, group, ng, 1, argv[1], prefix, rc);
    if (!w1)
        return NULL;
    for (size_t i = 0; i < ng; i++) {
        char wb[32];
        if (name_word(group[i]->name, 1, wb, sizeof wb) && !strcmp(wb, w1)) {
            *used = 2;
            return group[i];
        }
    }
    *rc = EXIT_USAGE;
    return NULL;
}

static const struct cmd_opt *find_opt(struct cmd_ctx *c, const struct cmd_entry *e,
                                      const char *name, size_t len, int *rc)
{
    const struct cmd_opt *found = NULL;
    int matches = 0;
    for (const struct cmd_opt *o = e->opts; o && o->name; o++) {
        if (strlen(o->name) == len && !strncmp(o->name, name, len))
            return o;
        if (!strncmp(o->name, name, len)) {
            found = o;
            matches++;
        }
    }
    char *n = xstrndup(name, len);
    if (matches == 1) {
        free(n);
        return found;
    }
    if (matches > 1) {
        struct sb b;
        sb_init(&b);
        for (const struct cmd_opt *o = e->opts; o && o->name; o++)
            if (!strncmp(o->name, name, len))
                sb_addf(&b, "%s--%s", b.len ? ", " : "", o->name);
        cmd_usage_error(c, "option '--%s' is ambiguous: %s", n, b.buf);
        sb_release(&b);
    } else {
        const char *names[64];
        size_t k = 0;
        for (const struct cmd_opt *o = e->opts; o && o->name && k < 64; o++)
            names[k++] = o->name;
        const char *near = str_closest(n, names, k);
        if (near)
            cmd_usage_error(c, "unknown option '--%s' (did you mean '--%s'?)", n, near);
        else
            cmd_usage_error(c, "unknown option '--%s' for `prenv %s`", n, e->name);
    }
    free(n);
    *rc = EXIT_USAGE;
    return NULL;
}

static int set_opt(struct cmd_ctx *c, const struct cmd_opt *o, void *opts, const char *val)
{
    char *field = (char *)opts + o->offset;
    switch (o->type) {
    case OPT_BOOL:
        *(bool *)field = true;
        return 0;
    case OPT_STR:
        *(const char **)field = val;
        return 0;
    case OPT_INT: {
        long long v;
        if (!str_parse_int(val, -1000000000LL, 1000000000LL, &v))
            return cmd_usage_error(c, "--%s expects a whole number, not '%s'", o->name, val);
        *(long long *)field = v;
        return 0;
    }
    case OPT_DURATION: {
        long long ms;
        const char *why;
        if (!dur_parse(val, &ms, &why))
            return cmd_usage_error(c, "--%s: invalid duration '%s': %s", o->name, val, why);
        *(long long *)field = ms;
        return 0;
    }
    case OPT_LIST: {
        struct opt_list *l = (struct opt_list *)field;
        XGROW(l->v, l->cap, l->n + 1);
        l->v[l->n++] = (char *)val;
        return 0;
    }
    }
    return 0;
}

/* parse options anywhere among the arguments; positionals are collected */
static int parse_args(struct cmd_ctx *c, const struct cmd_entry *e, void *opts, int argc,
                      char **argv, char ***pos, int *npos, bool *help)
{
    *pos = xcalloc((size_t)argc + 1, sizeof **pos);
    *npos = 0;
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1]) {
            (*pos)[(*npos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return 0;
        }
        const struct cmd_opt *o = NULL;
        const char *val = NULL;
        int rc = 0;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            o = find_opt(c, e, name, len, &rc);
            if (!o)
                return rc;
            if (eq) {
                if (o->type == OPT_BOOL)
                    return cmd_usage_error(c, "--%s takes no value", o->name);
                val = eq + 1;
            }
        } else {
            for (const struct cmd_opt *x = e->opts; x && x->name; x++)
                if (x->short_name == a[1])
                    o = x;
            if (!o)
                return cmd_usage_error(c, "unknown option '-%c' for `prenv %s`", a[1], e->name);
            if (a[2]) {
                if (o->type == OPT_BOOL)
                    return cmd_usage_error(c, "-%c takes no value", a[1]);
                val = a + 2;
            }
        }
        if (o->type != OPT_BOOL && !val) {
            if (i + 1 >= argc)
                return cmd_usage_error(c, "--%s needs a value (%s)", o->name, type_arg(o));
            val = argv[++i];
        }
        if ((rc = set_opt(c, o, opts, val)))
            return rc;
    }
    return 0;
}

static void free_lists(const struct cmd_entry *e, void *opts)
{
    for (const struct cmd_opt *o = e->opts; o && o->name; o++)
        if (o->type == OPT_LIST) {
            struct opt_list *l = (struct opt_list *)((char *)opts + o->offset);
            free(l->v);
        }
}

int cmd_main(int argc, char **argv)
{
    proc_set_self_exe(argv[0]);
    signal(SIGPIPE, SIG_IGN);
    struct cmd_ctx c = {0};
    const char *nc = getenv("NO_COLOR");
    bool no_color = nc && *nc;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-C") && i + 1 < argc)
            c.project_dir = argv[++i];
        else if (!strncmp(a, "-C", 2) && a[2])
            c.project_dir = a + 2;
        else if (!strcmp(a, "--state-dir") && i + 1 < argc)
            c.state_dir = argv[++i];
        else if (!strncmp(a, "--state-dir=", 12))
            c.state_dir = a + 12;
        else if (!strcmp(a, "--no-color"))
            no_color = true;
        else if (!strcmp(a, "--version")) {
            argv[i] = "version";
            break;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_overview(stdout);
            return EXIT_OK;
        } else if (!strcmp(a, "-C") || !strcmp(a, "--state-dir")) {
            return cmd_usage_error(&c, "%s needs a directory", a);
        } else if (a[0] == '-') {
            return cmd_usage_error(&c, "unknown global option '%s'", a);
        } else
            break;
    }
    c.color = !no_color && isatty(1);
    c.color_err = !no_color && isatty(2);
    c.tty_in = isatty(0);
    if (i >= argc) {
        print_overview(stderr);
        return EXIT_USAGE;
    }
    int rc = 0, used = 0;
    const struct cmd_entry *e = lookup(&c, argc - i, argv + i, &used, &rc);
    if (!e)
        return rc;
    c.entry = e;
    struct sb cl;
    sb_init(&cl);
    sb_adds(&cl, "prenv");
    for (int k = i; k < argc && cl.len < 200; k++)
        sb_addf(&cl, " %s", argv[k]);
    c.command_line = sb_steal(&cl);
    void *opts = xcalloc(1, e->opts_size ? e->opts_size : 1);
    char **pos = NULL;
    int npos = 0;
    bool help = false;
    rc = parse_args(&c, e, opts, argc - i - used, argv + i + used, &pos, &npos, &help);
    if (!rc && help) {
        cmd_help(stdout, e);
    } else if (!rc) {
        if (npos < e->min_args)
            rc = cmd_usage_error(&c, "`prenv %s` needs %s", e->name, e->args ? e->args : "arguments");
        else if (e->max_args >= 0 && npos > e->max_args)
            rc = cmd_usage_error(&c, "unexpected argument '%s'", pos[e->max_args]);
        else
            rc = e->exec(&c, opts, npos, pos);
    }
    free_lists(e, opts);
    free(opts);
    free(pos);
    free(c.command_line);
    src_free_all();
    vcs_shutdown();
    return rc;
}

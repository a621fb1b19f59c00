/* seed preview: generate rows from a seed file and print them, without a
 * project, an environment or a database: for writing seed files and for
 * piping synthetic data elsewhere.
 *
 * What it leaves to others: loading data into databases (`prenv seed`). */
#include "cmd/cmd.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"
#include "core/seed/seed.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct preview_opts {
    const char *rows;
    const char *format;
    const char *seed;
    struct opt_list table;
};

#define O(f) offsetof(struct preview_opts, f)
static const struct cmd_opt opts[] = {
    {"rows", 'n', OPT_STR, O(rows), "N", "rows per table (default 10)"},
    {"format", 'f', OPT_STR, O(format), "FORMAT",
     "csv (default), json (one object per line) or copy"},
    {"seed", 's', OPT_STR, O(seed), "SEED",
     "a number, or an environment name for the seed that env gets (default 1)"},
    {"table", 't', OPT_LIST, O(table), "TABLE", "only this table"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

static int exec_preview(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct preview_opts *o = vo;
    long long rows = 10;
    if (o->rows && !str_parse_int(o->rows, 0, 1000000000LL, &rows))
        return cmd_usage_error(c, "--rows expects a whole number from 0 to 1000000000, not '%s'",
                               o->rows);
    enum seed_format fmt = SEED_CSV;
    if (o->format) {
        if (!strcmp(o->format, "csv"))
            fmt = SEED_CSV;
        else if (!strcmp(o->format, "json"))
            fmt = SEED_JSON;
        else if (!strcmp(o->format, "copy"))
            fmt = SEED_COPY;
        else
            return cmd_usage_error(c, "--format must be csv, json or copy, not '%s'", o->format);
    }
    uint64_t seed = 1;
    if (o->seed && !parse_u64(o->seed, &seed))
        seed = seed_of_name(o->seed);

    struct err e = {0};
    struct seed_schema *s = NULL;
    if (seed_schema_load(&s, argv[0], argv[0], &e))
        return cmd_error(c, &e);
    const char **only = NULL;
    if (o->table.n) {
        only = xcalloc(o->table.n + 1, sizeof *only);
        for (size_t i = 0; i < o->table.n; i++)
            only[i] = o->table.v[i];
    }
    struct seed_opts so = {.seed = seed, .rows_all = rows, .only = only};
    struct seed_sink sink;
    struct seed_fd_sink *k = seed_fd_sink_new(STDOUT_FILENO, fmt, &sink);
    int rc = 0;
    if (rows == 0) {
        /* rows_all 0 means "the file's counts"; a preview of 0 rows is headers only */
        struct val *zero = val_map(NULL);
        for (size_t t = 0; t < seed_ntables(s); t++)
            val_map_set(zero, seed_table_name(s, t), NULL, val_int(0, NULL));
        so.rows = zero;
        rc = seed_generate(s, &so, &sink, &e);
        val_free(zero);
    } else {
        rc = seed_generate(s, &so, &sink, &e);
    }
    int wrc = seed_fd_sink_free(k);
    free(only);
    seed_schema_free(s);
    if (rc == -EPIPE || (!rc && wrc == -EPIPE)) {
        /* the reader went away (`| head`): nothing to report */
        err_release(&e);
        return EXIT_FAIL;
    }
    if (rc)
        return cmd_error(c, &e);
    if (wrc) {
        err_errno(&e, -wrc, "writing generated rows");
        return cmd_error(c, &e);
    }
    return EXIT_OK;
}

const struct cmd_entry cmd_seed_preview_entry = {
    .name = "seed preview",
    .args = "FILE",
    .min_args = 1,
    .max_args = 1,
    .summary = "print rows generated from a seed file, without a database",
    .help = "Generates every table of FILE (a seed file, see docs/seeds.md), referenced tables "
            "first, and\nprints the rows: CSV with a header per table and a `# table NAME` line "
            "between tables,\nJSON lines with a \"_table\" key, or PostgreSQL COPY text. Needs no "
            "project. The same\nFILE, --seed and --rows print the same bytes on any machine.",
    .opts = opts,
    .opts_size = sizeof(struct preview_opts),
    .exec = exec_preview,
};

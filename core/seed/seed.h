/* seed: deterministic synthetic data. A seed file (seeds/NAME.yaml) declares
 * tables, default row counts and a generator per column; this module parses
 * it (errors at file:line:col), orders tables by their foreign keys, and
 * generates rows into a sink — CSV, JSON lines, PostgreSQL COPY text, or a
 * loader's own — one row at a time, never holding a table in memory (only
 * the columns other tables reference are kept, as rendered values).
 *
 * Determinism: the same schema, seed value and row counts give byte-identical
 * output on any machine (no locale, no floating-point formatting differences,
 * no time of day). Dictionaries (names, cities, streets, companies, products,
 * countries, lorem words) are compiled in.
 *
 * What it leaves to others: databases (the seed.synthetic provider loads what
 * the sink receives) and the command line. */
#ifndef PRENV_SEED_H
#define PRENV_SEED_H

#include "core/lib/err.h"
#include "core/lib/val.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct seed_schema;

/* seed_schema_load: read and validate a seed file; display is the name shown
 * in errors. */
int seed_schema_load(struct seed_schema **out, const char *path, const char *display,
                     struct err *e);
/* seed_schema_parse: from an already parsed YAML document (borrowed; positions
 * are taken from it). */
int seed_schema_parse(struct seed_schema **out, const struct val *doc, struct err *e);
void seed_schema_free(struct seed_schema *s);

size_t seed_ntables(const struct seed_schema *s);
/* seed_order: table indices with every referenced table before the tables
 * referring to it. */
const size_t *seed_order(const struct seed_schema *s);
const char *seed_table_name(const struct seed_schema *s, size_t t);
long long seed_table_rows(const struct seed_schema *s, size_t t); /* the file's default */
size_t seed_ncols(const struct seed_schema *s, size_t t);
const char *seed_col_name(const struct seed_schema *s, size_t t, size_t c);
/* seed_table_find: index of a table by name, or -1 */
int seed_table_find(const struct seed_schema *s, const char *name);

/* The type of a generated value, for loaders that bind typed parameters. */
enum seed_type { SEED_TEXT, SEED_INT, SEED_FLOAT, SEED_BOOL, SEED_DATE, SEED_TIMESTAMP, SEED_UUID };
enum seed_type seed_col_type(const struct seed_schema *s, size_t t, size_t c);

/* One generated value: text is its canonical text form (ints in decimal,
 * floats with a fixed number of decimals, bools "true"/"false", dates
 * YYYY-MM-DD, timestamps YYYY-MM-DDTHH:MM:SSZ, uuids lowercase 8-4-4-4-12),
 * valid until the next row; null when the column produced NULL. */
struct seed_value {
    const char *text;
    size_t len;
    bool null;
};

/* A sink receives the tables in seed_order, each as begin, rows, end. Any
 * callback may fail; generation stops and the error is returned. */
struct seed_sink {
    int (*begin)(void *ctx, const struct seed_schema *s, size_t t, long long rows, struct err *e);
    int (*row)(void *ctx, const struct seed_value *vals, size_t n, struct err *e);
    int (*end)(void *ctx, struct err *e);
    void *ctx;
};

struct seed_opts {
    uint64_t seed;           /* the seed value */
    const struct val *rows;  /* map table -> int: row counts overriding the file; may be NULL */
    const char *const *only; /* NULL-terminated table names to generate; NULL = all */
    long long rows_all;      /* > 0: every table gets this many rows (preview --rows N) */
    const volatile int *cancel; /* checked every few thousand rows; may be NULL */
};

/* seed_generate: generate every table (or opts->only) into sink. Row counts
 * that are not non-negative ints, and `only` names that are not tables, are
 * errors naming them. */
int seed_generate(const struct seed_schema *s, const struct seed_opts *o,
                  const struct seed_sink *sink, struct err *e);
/* seed_rows_for: the row count table t will get under o. */
long long seed_rows_for(const struct seed_schema *s, size_t t, const struct seed_opts *o);

/* Ready-made sinks writing to a file descriptor (buffered, 64 KiB writes). */
enum seed_format { SEED_CSV, SEED_JSON, SEED_COPY };
struct seed_fd_sink;
/* seed_fd_sink_new: CSV (RFC 4180, a header line per table, tables separated
 * by a "# table NAME" line), JSON (one object per line with a "_table" key),
 * or COPY (PostgreSQL text format: tab-separated, \N for NULL, escaped). */
struct seed_fd_sink *seed_fd_sink_new(int fd, enum seed_format f, struct seed_sink *out);
/* seed_fd_sink_free: flush and free; returns 0 or a negative errno. */
int seed_fd_sink_free(struct seed_fd_sink *k);

/* seed_copy_text: append one row in COPY text format (with the newline) to
 * buf; used by loaders that stream COPY themselves. */
struct sb;
void seed_copy_row(struct sb *buf, const struct seed_value *vals, size_t n);

/* seed_of_name: the default seed value of an environment (a stable 64-bit
 * hash of its name: FNV-1a). */
uint64_t seed_of_name(const char *name);

#endif

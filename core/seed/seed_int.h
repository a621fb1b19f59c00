/* seed_int: what the seed module's files share and nobody else sees: the
 * compiled-in dictionaries (dict.c), the parsed schema (schema.c) that the
 * generator (gen.c) runs, and the fast text helpers the sinks (sink.c) use.
 * Not part of the API: include core/seed/seed.h from outside. */
#ifndef PRENV_SEED_INT_H
#define PRENV_SEED_INT_H

#include "core/seed/seed.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- dictionaries (dict.c) ---- */

struct dword {
    unsigned char len;
    const char *s;
};

struct dcity {
    struct dword city, country;
};

struct dlist {
    const struct dword *w;
    size_t n;
};

extern const struct dlist dict_first_names, dict_last_names, dict_countries, dict_streets,
    dict_street_suffixes, dict_company_words, dict_company_sectors, dict_company_suffixes,
    dict_product_adjectives, dict_product_materials, dict_product_nouns, dict_lorem;
extern const struct dcity dict_cities[];
extern const size_t dict_ncities;

/* ---- the parsed schema (schema.c) ---- */

#define SEED_MAX_ROWS 1000000000LL /* per table */
#define SEED_MAX_TABLES 1000
#define SEED_MAX_COLS 1000
#define SEED_DOM_INF UINT64_MAX /* "more distinct values than can be counted" */

#define GEN_LIST(X)                                                                                \
    X(SEQUENCE, "sequence")                                                                        \
    X(UUID, "uuid") X(INT, "int") X(FLOAT, "float") X(MONEY, "money") X(BOOL, "bool")              \
        X(ENUM, "enum") X(DATE, "date") X(TIMESTAMP, "timestamp") X(FIRST_NAME, "first_name")      \
            X(LAST_NAME, "last_name") X(FULL_NAME, "full_name") X(EMAIL, "email")                  \
                X(PHONE, "phone") X(STREET, "street_address") X(CITY, "city")                      \
                    X(COUNTRY, "country") X(COMPANY, "company") X(PRODUCT, "product_name")         \
                        X(WORDS, "words") X(SENTENCE, "sentence") X(PARAGRAPH, "paragraph")        \
                            X(CONSTANT, "constant") X(REF, "ref")

enum gen {
#define GEN_ENUM(id, name) G_##id,
    GEN_LIST(GEN_ENUM)
#undef GEN_ENUM
        G__COUNT
};

enum dist { DIST_UNIFORM, DIST_NORMAL, DIST_EXP };

struct seed_col {
    char *name;
    struct pos pos;  /* the column's key */
    struct pos upos; /* the 'unique' key (or the column's) */
    enum gen gen;
    enum seed_type type;
    bool unique;
    bool derived;      /* value is a function of sibling columns ('from') */
    uint64_t null_thr; /* P(NULL) in units of 2^-53 */

    /* int, float, money, date (days), timestamp (seconds): in quanta */
    long long lo, hi;
    int decimals;
    enum dist dist;
    long long mean_q;      /* normal / exponential mean, quanta */
    long long sd_q16;      /* normal standard deviation, quanta * 2^16 */
    long long start, step; /* sequence */
    uint64_t ratio_thr;    /* bool: P(true) in units of 2^-53 */

    /* enum: values with cumulative weights (cum[i] = sum of weights 0..i) */
    char **vals;
    size_t *vlens;
    uint64_t *cum;
    size_t nvals;

    size_t *from; /* sibling column indices */
    size_t nfrom;

    char *text; /* email domain, phone format, constant value */
    size_t tlen;
    bool cnull; /* constant: always NULL */
    int count;  /* words: words; sentence: words (0 = 4..12); paragraph: sentences */

    size_t rtable, rcol; /* ref */

    uint64_t dom;     /* distinct values (SEED_DOM_INF: unbounded); ref: set at run time */
    bool indexed;     /* values are drawn as an index into [0, dom) */
    bool safe_suffix; /* email: no local part can end in a digit */
    bool plain;       /* text never holds quotes, commas, backslashes or control bytes */
};

struct seed_table {
    char *name;
    struct pos pos;
    long long rows;
    struct seed_col *cols;
    size_t ncols;
    size_t *corder; /* render order: every 'from' sibling before its user */
    char **colnames;
};

struct seed_schema {
    struct seed_table *t;
    size_t n;
    size_t *order;
    char **names;
};

extern const char *const seed_gen_names[];

/* ---- text helpers (gen.c) ---- */

/* seed_fmt_u64 / seed_fmt_i64: decimal digits into out (at least 20 / 21
 * bytes); return the length. */
size_t seed_fmt_u64(char *out, uint64_t v);
size_t seed_fmt_i64(char *out, long long v);
/* seed_ascii: the ASCII letters and digits of UTF-8 s, lowercase, with
 * Latin letters' accents dropped (é -> e, ß -> ss, ł -> l); out holds 2n. */
size_t seed_ascii(char *out, const char *s, size_t n);
/* seed_hash: a fixed 64-bit hash of bytes, the same on every machine */
uint64_t seed_hash(const void *p, size_t n);

#endif

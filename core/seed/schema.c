/* seed schema: reads a seed file (tables, default row counts, one generator
 * per column), checks every key, value and cross reference with errors at
 * file:line:col and a did-you-mean, orders tables so referenced tables come
 * first, and works out up front what each generator can produce (its type
 * and how many distinct values it has, for `unique`).
 *
 * What it leaves to others: drawing values (gen.c) and writing them
 * (sink.c). */
#include "core/seed/seed_int.h"

#include "core/graph.h"
#include "core/lib/sb.h"
#include "core/lib/schema.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const seed_gen_names[] = {
#define GEN_NAME(id, name) name,
    GEN_LIST(GEN_NAME)
#undef GEN_NAME
        NULL};

#define COMMON "gen", "nulls", "unique"
#define RANGE "min", "max", "dist", "mean", "stddev"
static const char *const k_none[] = {COMMON, NULL};
static const char *const k_sequence[] = {COMMON, "start", "step", NULL};
static const char *const k_int[] = {COMMON, RANGE, NULL};
static const char *const k_float[] = {COMMON, RANGE, "decimals", NULL};
static const char *const k_bool[] = {COMMON, "ratio", NULL};
static const char *const k_enum[] = {COMMON, "values", NULL};
static const char *const k_minmax[] = {COMMON, "min", "max", NULL};
static const char *const k_from[] = {COMMON, "from", NULL};
static const char *const k_email[] = {COMMON, "from", "domain", NULL};
static const char *const k_phone[] = {COMMON, "format", NULL};
static const char *const k_words[] = {COMMON, "count", NULL};
static const char *const k_sentence[] = {COMMON, "words", NULL};
static const char *const k_paragraph[] = {COMMON, "sentences", NULL};
static const char *const k_constant[] = {COMMON, "value", NULL};
static const char *const k_ref[] = {COMMON, "table", "column", NULL};

static const char *const *const gen_keys[G__COUNT] = {
    [G_SEQUENCE] = k_sequence,   [G_UUID] = k_none,         [G_INT] = k_int,
    [G_FLOAT] = k_float,         [G_MONEY] = k_int,         [G_BOOL] = k_bool,
    [G_ENUM] = k_enum,           [G_DATE] = k_minmax,       [G_TIMESTAMP] = k_minmax,
    [G_FIRST_NAME] = k_none,     [G_LAST_NAME] = k_none,    [G_FULL_NAME] = k_from,
    [G_EMAIL] = k_email,         [G_PHONE] = k_phone,       [G_STREET] = k_none,
    [G_CITY] = k_none,           [G_COUNTRY] = k_from,      [G_COMPANY] = k_none,
    [G_PRODUCT] = k_none,        [G_WORDS] = k_words,       [G_SENTENCE] = k_sentence,
    [G_PARAGRAPH] = k_paragraph, [G_CONSTANT] = k_constant, [G_REF] = k_ref,
};

static const long long p10[] = {1LL,      10LL,      100LL,      1000LL,      10000LL,
                                100000LL, 1000000LL, 10000000LL, 100000000LL, 1000000000LL};

#define MAX_ENUM 10000
#define MAX_WORDS 1000
#define MAX_SENTENCES 100
#define MAX_PHONE 64
#define MAX_CONST 4096
#define MAX_DOMAIN 253
#define DEF_ROWS 100
#define DEF_DATE_LO 10957      /* 2000-01-01 */
#define DEF_DATE_HI 20453      /* 2025-12-31 */
#define DEF_TS_LO 1577836800LL /* 2020-01-01T00:00:00Z */
#define DEF_TS_HI 1767225599LL /* 2025-12-31T23:59:59Z */

/* ---- small helpers ---- */

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) || r == SEED_DOM_INF ? SEED_DOM_INF : r;
}

/* a comma-separated list of names for hints */
static char *join(const char *const *names, size_t n)
{
    struct sb b;
    sb_init(&b);
    for (size_t i = 0; i < n; i++)
        sb_addf(&b, "%s%s", i ? ", " : "", names[i]);
    return sb_steal(&b);
}

/* the probability p (0..1) in units of 2^-53 */
static uint64_t prob53(double p)
{
    if (p <= 0)
        return 0;
    if (p >= 1)
        return (uint64_t)1 << 53;
    double x = p * 9007199254740992.0; /* exact: scaling by a power of two */
    return (uint64_t)x;
}

/* days since 1970-01-01 of a proleptic Gregorian date */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static bool leap(long long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "YYYY-MM-DD" with a real day of a year 0001..9999 */
static bool parse_date(const char *s, long long *days)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    long long y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    unsigned m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
    unsigned d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return false;
    if (d > mdays[m - 1] + (m == 2 && leap(y)))
        return false;
    *days = days_from_civil(y, m, d);
    return true;
}

#define MIN_SECS (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define MAX_SECS 253402300799LL   /* 9999-12-31T23:59:59Z */

/* a date (midnight UTC) or an RFC 3339 timestamp, in whole seconds */
static bool parse_ts(const char *s, long long *secs)
{
    long long d, ms;
    if (parse_date(s, &d)) {
        *secs = d * 86400;
        return true;
    }
    if (strlen(s) < 20 || !tm_parse_rfc3339(s, &ms))
        return false;
    *secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    return *secs >= MIN_SECS && *secs <= MAX_SECS;
}

/* ---- schema object ---- */

static void col_release(struct seed_col *c)
{
    free(c->name);
    for (size_t i = 0; i < c->nvals; i++)
        free(c->vals[i]);
    free(c->vals);
    free(c->vlens);
    free(c->cum);
    free(c->from);
    free(c->text);
}

void seed_schema_free(struct seed_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        struct seed_table *t = &s->t[i];
        for (size_t c = 0; c < t->ncols; c++)
            col_release(&t->cols[c]);
        free(t->cols);
        free(t->corder);
        free(t->colnames);
        free(t->name);
    }
    free(s->t);
    free(s->order);
    free(s->names);
    free(s);
}

size_t seed_ntables(const struct seed_schema *s)
{
    return s->n;
}

const size_t *seed_order(const struct seed_schema *s)
{
    return s->order;
}

const char *seed_table_name(const struct seed_schema *s, size_t t)
{
    return s->t[t].name;
}

long long seed_table_rows(const struct seed_schema *s, size_t t)
{
    return s->t[t].rows;
}

size_t seed_ncols(const struct seed_schema *s, size_t t)
{
    return s->t[t].ncols;
}

const char *seed_col_name(const struct seed_schema *s, size_t t, size_t c)
{
    return s->t[t].cols[c].name;
}

enum seed_type seed_col_type(const struct seed_schema *s, size_t t, size_t c)
{
    return s->t[t].cols[c].type;
}

int seed_table_find(const struct seed_schema *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name))
            return (int)i;
    return -1;
}

static int col_find(const struct seed_table *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i].name, name))
            return (int)i;
    return -1;
}

/* ---- parsing ---- */

struct parser {
    struct seed_schema *s;
    struct err *e;
    /* the column being parsed, for messages */
    const struct seed_table *t;
    struct seed_col *c;
    const struct val *m; /* its map */
};

static int cerr(struct parser *p, const struct pos *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* an error about the current column, "column 'customers.age': ..." */
static int cerr(struct parser *p, const struct pos *at, const char *fmt, ...)
{
    struct sb b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    int rc = err_set(p->e, PE_CONFIG, at, "column '%s.%s': %s", p->t->name, p->c->name, b.buf);
    sb_release(&b);
    return rc;
}

static const struct val *opt(struct parser *p, const char *key)
{
    const struct val *v = val_map_get(p->m, key);
    return v && v->kind != VAL_NULL ? v : NULL;
}

/* where to point for key: its value, or the column when it is absent */
static const struct pos *opos(struct parser *p, const char *key)
{
    const struct val *v = opt(p, key);
    return v ? &v->pos : &p->c->pos;
}

static int opt_num(struct parser *p, const char *key, double *out, bool *given)
{
    const struct val *v = opt(p, key);
    if (given)
        *given = v != NULL;
    if (!v)
        return 0;
    if (v->kind == VAL_INT) {
        *out = (double)v->u.i;
        return 0;
    }
    if (v->kind == VAL_FLOAT && isfinite(v->u.f)) {
        *out = v->u.f;
        return 0;
    }
    return cerr(p, &v->pos, "'%s' must be a number, not %s", key,
                v->kind == VAL_FLOAT ? "infinity or NaN" : val_kind_name(v->kind));
}

static int opt_int(struct parser *p, const char *key, long long lo, long long hi, long long *out)
{
    const struct val *v = opt(p, key);
    if (!v)
        return 0;
    if (v->kind != VAL_INT)
        return cerr(p, &v->pos, "'%s' must be a whole number, not %s", key, val_kind_name(v->kind));
    if (v->u.i < lo || v->u.i > hi)
        return cerr(p, &v->pos, "'%s' is %lld; it must be between %lld and %lld", key, v->u.i, lo,
                    hi);
    *out = v->u.i;
    return 0;
}

static int opt_ratio(struct parser *p, const char *key, uint64_t *thr)
{
    double r = 0;
    bool given;
    int rc = opt_num(p, key, &r, &given);
    if (rc || !given)
        return rc;
    if (r < 0 || r > 1) {
        const struct val *v = opt(p, key);
        struct sb b;
        sb_init(&b);
        val_text(&b, v);
        rc = cerr(p, &v->pos, "'%s' must be between 0 and 1, not %s", key, b.buf);
        sb_release(&b);
        if (r > 1 && r <= 100)
            err_hint(p->e, "write a ratio: 0.2 for 20%%");
        return rc;
    }
    *thr = prob53(r);
    return 0;
}

/* quanta of a number: round(x * 10^dec), which must stay well inside 64 bits */
static int to_quanta(struct parser *p, const char *key, double x, int dec, long long *q)
{
    double t = x * (double)p10[dec];
    if (!(t > -4.0e18 && t < 4.0e18)) {
        const struct val *v = opt(p, key);
        return cerr(p, v ? &v->pos : &p->c->pos, "'%s' is too large", key);
    }
    t += t < 0 ? -0.5 : 0.5;
    *q = (long long)t;
    return 0;
}

static int min_gt_max(struct parser *p)
{
    const struct val *lo = opt(p, "min"), *hi = opt(p, "max");
    struct sb a, b;
    sb_init(&a);
    sb_init(&b);
    val_text(&a, lo);
    val_text(&b, hi);
    int rc = cerr(p, &lo->pos, "'min' (%s) is greater than 'max' (%s)", a.buf, b.buf);
    sb_release(&a);
    sb_release(&b);
    return rc;
}

/* int, float, money: min, max, decimals and a distribution */
static int parse_range(struct parser *p, int dec, long long dlo, long long dhi)
{
    struct seed_col *c = p->c;
    int rc;
    c->decimals = dec;
    if (c->gen == G_FLOAT) {
        long long d = 2;
        if ((rc = opt_int(p, "decimals", 0, 9, &d)))
            return rc;
        c->decimals = dec = (int)d;
    }
    c->lo = dlo * p10[dec];
    c->hi = dhi * p10[dec];
    if (c->gen == G_INT) {
        if ((rc = opt_int(p, "min", LLONG_MIN, LLONG_MAX, &c->lo)) ||
            (rc = opt_int(p, "max", LLONG_MIN, LLONG_MAX, &c->hi)))
            return rc;
    } else {
        double x;
        bool given;
        if ((rc = opt_num(p, "min", &x, &given)))
            return rc;
        if (given && (rc = to_quanta(p, "min", x, dec, &c->lo)))
            return rc;
        if ((rc = opt_num(p, "max", &x, &given)))
            return rc;
        if (given && (rc = to_quanta(p, "max", x, dec, &c->hi)))
            return rc;
    }
    if (c->lo > c->hi) {
        if (opt(p, "min") && opt(p, "max"))
            return min_gt_max(p);
        const struct val *v = opt(p, "min") ? opt(p, "min") : opt(p, "max");
        return cerr(p, &v->pos, "'min' is greater than 'max' (%s defaults to %lld..%lld)",
                    seed_gen_names[c->gen], dlo, dhi);
    }
    uint64_t span = (uint64_t)c->hi - (uint64_t)c->lo;
    if (span >= ((uint64_t)1 << 62))
        return cerr(p, opt(p, "min") ? opos(p, "min") : opos(p, "max"),
                    "the range from 'min' to 'max' is too wide");
    c->dom = span + 1;
    c->indexed = true;

    const struct val *dv = opt(p, "dist");
    c->dist = DIST_UNIFORM;
    if (dv) {
        static const char *const dists[] = {"uniform", "normal", "exponential", NULL};
        if (dv->kind != VAL_STR)
            return cerr(p, &dv->pos, "'dist' must be uniform, normal or exponential");
        if (!strcmp(dv->u.str.s, "normal"))
            c->dist = DIST_NORMAL;
        else if (!strcmp(dv->u.str.s, "exponential"))
            c->dist = DIST_EXP;
        else if (strcmp(dv->u.str.s, "uniform")) {
            const char *near = str_closest(dv->u.str.s, dists, (size_t)-1);
            if (near)
                return cerr(p, &dv->pos, "unknown distribution '%s' (did you mean '%s'?)",
                            dv->u.str.s, near);
            rc = cerr(p, &dv->pos, "unknown distribution '%s'", dv->u.str.s);
            err_hint(p->e, "dist is uniform (the default), normal or exponential");
            return rc;
        }
    }
    double mean = 0, sd = 0;
    bool has_mean, has_sd;
    if ((rc = opt_num(p, "mean", &mean, &has_mean)) || (rc = opt_num(p, "stddev", &sd, &has_sd)))
        return rc;
    if (c->dist == DIST_UNIFORM && (has_mean || has_sd)) {
        const struct val *v = has_mean ? opt(p, "mean") : opt(p, "stddev");
        rc = cerr(p, &v->pos, "'%s' needs 'dist: normal' or 'dist: exponential'",
                  has_mean ? "mean" : "stddev");
        return rc;
    }
    if (c->dist == DIST_EXP && has_sd)
        return cerr(p, &opt(p, "stddev")->pos,
                    "'stddev' applies to 'dist: normal'; an exponential distribution has only "
                    "a 'mean'");
    if (c->dist == DIST_UNIFORM)
        return 0;
    long long lo = c->lo, hi = c->hi;
    if (has_mean) {
        if ((rc = to_quanta(p, "mean", mean, dec, &c->mean_q)))
            return rc;
    } else if (c->dist == DIST_NORMAL) {
        c->mean_q = lo + (long long)(span / 2);
    } else {
        c->mean_q = lo + (long long)(span / 4);
    }
    if (c->mean_q < lo || c->mean_q > hi)
        return cerr(p, opos(p, "mean"), "'mean' must be between 'min' and 'max'");
    if (c->dist == DIST_EXP && c->mean_q == lo)
        return cerr(p, opos(p, "mean"),
                    "an exponential distribution needs 'mean' greater than 'min'");
    if (c->dist == DIST_NORMAL) {
        double sdq;
        if (has_sd) {
            if (!(sd > 0))
                return cerr(p, &opt(p, "stddev")->pos, "'stddev' must be greater than 0");
            sdq = sd * (double)p10[dec];
        } else {
            sdq = (double)span / 6.0;
            if (sdq <= 0)
                sdq = 1.0 / 65536.0;
        }
        if (sdq >= 70368744177664.0) /* 2^46 quanta */
            return cerr(p, opos(p, "stddev"), "'stddev' is too large");
        double s16 = sdq * 65536.0;
        c->sd_q16 = (long long)(s16 + 0.5);
        if (c->sd_q16 < 1)
            c->sd_q16 = 1;
    }
    return 0;
}

static int parse_dates(struct parser *p, bool ts)
{
    struct seed_col *c = p->c;
    c->lo = ts ? DEF_TS_LO : DEF_DATE_LO;
    c->hi = ts ? DEF_TS_HI : DEF_DATE_HI;
    const char *keys[] = {"min", "max"};
    long long *dst[] = {&c->lo, &c->hi};
    for (int i = 0; i < 2; i++) {
        const struct val *v = opt(p, keys[i]);
        if (!v)
            continue;
        bool ok = v->kind == VAL_STR &&
                  (ts ? parse_ts(v->u.str.s, dst[i]) : parse_date(v->u.str.s, dst[i]));
        if (!ok) {
            struct sb b;
            sb_init(&b);
            val_text(&b, v);
            int rc = ts ? cerr(p, &v->pos,
                               "'%s' must be a timestamp such as \"2024-01-31T12:00:00Z\" or a "
                               "date, not '%s'",
                               keys[i], b.buf)
                        : cerr(p, &v->pos, "'%s' must be a date such as 2024-01-31, not '%s'",
                               keys[i], b.buf);
            sb_release(&b);
            return rc;
        }
    }
    if (c->lo > c->hi) {
        if (opt(p, "min") && opt(p, "max"))
            return min_gt_max(p);
        const struct val *v = opt(p, "min") ? opt(p, "min") : opt(p, "max");
        return cerr(p, &v->pos, "'min' is after 'max' (the default range is %s)",
                    ts ? "2020-01-01T00:00:00Z to 2025-12-31T23:59:59Z"
                       : "2000-01-01 to 2025-12-31");
    }
    c->dom = (uint64_t)(c->hi - c->lo) + 1;
    c->indexed = true;
    return 0;
}

/* a scalar enum value as text; floats are refused (their text is not kept) */
static int enum_text(struct parser *p, const struct val *v, char **out)
{
    switch (v->kind) {
    case VAL_STR:
        *out = xstrdup(v->u.str.s);
        return 0;
    case VAL_INT:
        *out = xasprintf("%lld", v->u.i);
        return 0;
    case VAL_BOOL:
        *out = xstrdup(v->u.b ? "true" : "false");
        return 0;
    default:
        break;
    }
    int rc = cerr(p, &v->pos, "enum values must be strings, whole numbers or booleans, not %s",
                  val_kind_name(v->kind));
    if (v->kind == VAL_FLOAT)
        err_hint(p->e, "quote the value to keep its exact text");
    return rc;
}

static int parse_enum(struct parser *p)
{
    struct seed_col *c = p->c;
    const struct val *v = opt(p, "values");
    if (!v)
        return cerr(p, &c->pos, "an enum needs 'values': a list, or a map of value: weight");
    size_t n = v->kind == VAL_LIST ? v->u.list.n : v->kind == VAL_MAP ? v->u.map.n : 0;
    if (v->kind != VAL_LIST && v->kind != VAL_MAP)
        return cerr(p, &v->pos, "'values' must be a list, or a map of value: weight");
    if (n == 0)
        return cerr(p, &v->pos, "'values' is empty");
    if (n > MAX_ENUM)
        return cerr(p, &v->pos, "'values' has %zu entries; at most %d are allowed", n, MAX_ENUM);
    c->vals = xcalloc(n, sizeof *c->vals);
    c->vlens = xcalloc(n, sizeof *c->vlens);
    c->cum = xcalloc(n, sizeof *c->cum);
    int rc;
    bool all_int = v->kind == VAL_LIST, all_bool = v->kind == VAL_LIST;
    if (v->kind == VAL_LIST) {
        for (size_t i = 0; i < n; i++) {
            const struct val *x = v->u.list.v[i];
            all_int = all_int && x->kind == VAL_INT;
            all_bool = all_bool && x->kind == VAL_BOOL;
            if ((rc = enum_text(p, x, &c->vals[c->nvals])))
                return rc;
            for (size_t k = 0; k < c->nvals; k++)
                if (!strcmp(c->vals[k], c->vals[c->nvals]))
                    return cerr(p, &x->pos, "enum value '%s' is listed twice", c->vals[k]);
            c->vlens[c->nvals] = strlen(c->vals[c->nvals]);
            c->nvals++;
            c->cum[c->nvals - 1] = c->nvals;
        }
    } else {
        /* weights: whole numbers are used as they are; any fraction scales all by 2^24 */
        bool frac = false;
        for (size_t i = 0; i < n; i++) {
            const struct val *w = v->u.map.e[i].v;
            if (w->kind == VAL_FLOAT)
                frac = true;
            if ((w->kind != VAL_INT && w->kind != VAL_FLOAT) ||
                (w->kind == VAL_INT && (w->u.i < 0 || w->u.i > (1LL << 36))) ||
                (w->kind == VAL_FLOAT && !(w->u.f >= 0 && w->u.f <= (double)(1LL << 36))))
                return cerr(p, &w->pos,
                            "the weight of enum value '%s' must be a number from 0 to %lld",
                            v->u.map.e[i].key, 1LL << 36);
        }
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            const struct val *w = v->u.map.e[i].v;
            double wf = w->kind == VAL_INT ? (double)w->u.i : w->u.f;
            uint64_t wi = frac ? (uint64_t)(wf * 16777216.0 + 0.5) : (uint64_t)w->u.i;
            if (wi == 0)
                continue; /* never drawn */
            total += wi;
            c->vals[c->nvals] = xstrdup(v->u.map.e[i].key);
            c->vlens[c->nvals] = strlen(c->vals[c->nvals]);
            c->cum[c->nvals++] = total;
        }
        if (total == 0)
            return cerr(p, &v->pos, "every enum weight is 0");
    }
    c->type = all_int ? SEED_INT : all_bool ? SEED_BOOL : SEED_TEXT;
    c->dom = c->nvals;
    c->indexed = true;
    return 0;
}

static int parse_from(struct parser *p, size_t maxn)
{
    struct seed_col *c = p->c;
    const struct val *v = opt(p, "from");
    if (!v)
        return 0;
    const struct val *const *items = NULL;
    size_t n = 0;
    const struct val *one = v;
    if (v->kind == VAL_LIST) {
        items = (const struct val *const *)v->u.list.v;
        n = v->u.list.n;
    } else {
        items = &one;
        n = 1;
    }
    if (n == 0 || n > maxn)
        return cerr(p, &v->pos, "'from' must name %s sibling column%s",
                    maxn == 1 ? "one" : "1 to 8", maxn == 1 ? "" : "s");
    c->from = xcalloc(n, sizeof *c->from);
    for (size_t i = 0; i < n; i++) {
        const struct val *x = items[i];
        if (x->kind != VAL_STR)
            return cerr(p, &x->pos, "'from' must name columns of table '%s'", p->t->name);
        int k = col_find(p->t, x->u.str.s);
        if (k < 0) {
            const char *near =
                str_closest(x->u.str.s, (const char *const *)p->t->colnames, p->t->ncols);
            if (near)
                return cerr(p, &x->pos, "'from' names unknown column '%s' (did you mean '%s'?)",
                            x->u.str.s, near);
            int rc = cerr(p, &x->pos, "'from' names unknown column '%s'", x->u.str.s);
            char *all = join((const char *const *)p->t->colnames, p->t->ncols);
            err_hint(p->e, "table '%s' has columns: %s", p->t->name, all);
            free(all);
            return rc;
        }
        if (&p->t->cols[k] == c)
            return cerr(p, &x->pos, "'from' names the column itself");
        c->from[c->nfrom++] = (size_t)k;
    }
    c->derived = true;
    c->indexed = false;
    c->dom = SEED_DOM_INF;
    return 0;
}

static int parse_text_opt(struct parser *p, const char *key, size_t max, char **out)
{
    const struct val *v = opt(p, key);
    if (!v)
        return 0;
    if (v->kind != VAL_STR)
        return cerr(p, &v->pos, "'%s' must be a string, not %s", key, val_kind_name(v->kind));
    if (v->u.str.len > max)
        return cerr(p, &v->pos, "'%s' is longer than %zu characters", key, max);
    free(*out);
    *out = xstrdup(v->u.str.s);
    return 0;
}

static int parse_options(struct parser *p)
{
    struct seed_col *c = p->c;
    int rc = 0;
    c->type = SEED_TEXT;
    c->dom = SEED_DOM_INF;
    c->indexed = false;
    switch (c->gen) {
    case G_SEQUENCE:
        c->start = 1;
        c->step = 1;
        if ((rc = opt_int(p, "start", LLONG_MIN, LLONG_MAX, &c->start)) ||
            (rc = opt_int(p, "step", LLONG_MIN, LLONG_MAX, &c->step)))
            return rc;
        if (c->step == 0)
            return cerr(p, &opt(p, "step")->pos, "'step' must not be 0");
        c->type = SEED_INT;
        break;
    case G_UUID:
        c->type = SEED_UUID;
        break;
    case G_INT:
        c->type = SEED_INT;
        return parse_range(p, 0, 0, 1000);
    case G_FLOAT:
        c->type = SEED_FLOAT;
        return parse_range(p, 2, 0, 1);
    case G_MONEY:
        c->type = SEED_FLOAT;
        return parse_range(p, 2, 0, 1000);
    case G_BOOL:
        c->type = SEED_BOOL;
        c->ratio_thr = (uint64_t)1 << 52;
        if ((rc = opt_ratio(p, "ratio", &c->ratio_thr)))
            return rc;
        c->dom = 2;
        c->indexed = true;
        break;
    case G_ENUM:
        return parse_enum(p);
    case G_DATE:
        c->type = SEED_DATE;
        return parse_dates(p, false);
    case G_TIMESTAMP:
        c->type = SEED_TIMESTAMP;
        return parse_dates(p, true);
    case G_FIRST_NAME:
        c->dom = dict_first_names.n;
        c->indexed = true;
        break;
    case G_LAST_NAME:
        c->dom = dict_last_names.n;
        c->indexed = true;
        break;
    case G_FULL_NAME:
        c->dom = (uint64_t)dict_first_names.n * dict_last_names.n;
        c->indexed = true;
        return parse_from(p, 8);
    case G_EMAIL:
        c->text = xstrdup("example.com");
        if ((rc = parse_text_opt(p, "domain", MAX_DOMAIN, &c->text)))
            return rc;
        for (const char *s = c->text; *s; s++)
            if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '-'))
                return cerr(p, &opt(p, "domain")->pos,
                            "'domain' must be lowercase letters, digits, '.' and '-'");
        if (!c->text[0])
            return cerr(p, &opt(p, "domain")->pos, "'domain' is empty");
        c->tlen = strlen(c->text);
        if ((rc = parse_from(p, 8)))
            return rc;
        c->derived = false; /* a unique email is kept unique by a number suffix */
        break;
    case G_PHONE: {
        c->text = xstrdup("+1-###-###-####");
        if ((rc = parse_text_opt(p, "format", MAX_PHONE, &c->text)))
            return rc;
        c->tlen = strlen(c->text);
        int digits = 0;
        for (const char *s = c->text; *s; s++)
            digits += *s == '#';
        if (digits == 0 || digits > 18)
            return cerr(p, &opt(p, "format")->pos,
                        "'format' must hold 1 to 18 '#' (each becomes a digit)");
        c->dom = 1;
        for (int i = 0; i < digits; i++)
            c->dom *= 10;
        c->indexed = true;
        break;
    }
    case G_STREET:
        c->dom = mul_sat(9999, mul_sat(dict_streets.n, dict_street_suffixes.n));
        c->indexed = true;
        break;
    case G_CITY:
        c->dom = dict_ncities;
        c->indexed = true;
        break;
    case G_COUNTRY:
        c->dom = dict_countries.n;
        c->indexed = true;
        if ((rc = parse_from(p, 1)))
            return rc;
        if (c->nfrom && p->t->cols[c->from[0]].gen != G_CITY)
            return cerr(p, &opt(p, "from")->pos,
                        "'from' of a country names a city column; '%s' is %s",
                        p->t->cols[c->from[0]].name, seed_gen_names[p->t->cols[c->from[0]].gen]);
        /* with a NULL city it draws a country of its own */
        c->dom = dict_countries.n;
        c->indexed = true;
        break;
    case G_COMPANY: {
        uint64_t w = dict_company_words.n, sec = dict_company_sectors.n,
                 suf = dict_company_suffixes.n;
        c->dom = w * sec * suf + w * suf;
        c->indexed = true;
        break;
    }
    case G_PRODUCT:
        c->dom =
            (uint64_t)dict_product_adjectives.n * dict_product_materials.n * dict_product_nouns.n;
        c->indexed = true;
        break;
    case G_WORDS: {
        long long n = 3;
        if ((rc = opt_int(p, "count", 1, MAX_WORDS, &n)))
            return rc;
        c->count = (int)n;
        uint64_t d = 1;
        for (long long i = 0; i < n && d != SEED_DOM_INF; i++)
            d = mul_sat(d, dict_lorem.n);
        c->dom = d;
        c->indexed = d < ((uint64_t)1 << 62);
        break;
    }
    case G_SENTENCE: {
        long long n = 0;
        if ((rc = opt_int(p, "words", 1, MAX_WORDS, &n)))
            return rc;
        c->count = (int)n;
        break;
    }
    case G_PARAGRAPH: {
        long long n = 3;
        if ((rc = opt_int(p, "sentences", 1, MAX_SENTENCES, &n)))
            return rc;
        c->count = (int)n;
        break;
    }
    case G_CONSTANT: {
        const struct val *v = val_map_get(p->m, "value");
        if (!v)
            return cerr(p, &c->pos, "a constant needs 'value'");
        switch (v->kind) {
        case VAL_NULL:
            c->cnull = true;
            break;
        case VAL_STR:
            if (v->u.str.len > MAX_CONST)
                return cerr(p, &v->pos, "'value' is longer than %d characters", MAX_CONST);
            c->text = xstrdup(v->u.str.s);
            break;
        case VAL_INT:
            c->text = xasprintf("%lld", v->u.i);
            c->type = SEED_INT;
            break;
        case VAL_BOOL:
            c->text = xstrdup(v->u.b ? "true" : "false");
            c->type = SEED_BOOL;
            break;
        default:
            rc = cerr(p, &v->pos, "'value' must be a string, whole number, boolean or null");
            if (v->kind == VAL_FLOAT)
                err_hint(p->e, "quote the value to keep its exact text");
            return rc;
        }
        c->tlen = c->text ? strlen(c->text) : 0;
        c->dom = 1;
        c->indexed = true;
        break;
    }
    case G_REF: {
        /* resolved once every table is known */
        const struct val *tv = opt(p, "table"), *cv = opt(p, "column");
        if (!tv)
            return cerr(p, &c->pos, "a ref needs 'table' and 'column'");
        if (tv->kind != VAL_STR)
            return cerr(p, &tv->pos, "'table' must be a table name");
        if (!cv)
            return cerr(p, &c->pos, "a ref needs 'column': the column of '%s' it takes values from",
                        tv->u.str.s);
        if (cv->kind != VAL_STR)
            return cerr(p, &cv->pos, "'column' must be a column name");
        c->indexed = true;
        break;
    }
    case G__COUNT:
        break;
    }
    return rc;
}

static int parse_gen(struct parser *p, const struct val *gv)
{
    if (gv->kind != VAL_STR)
        return cerr(p, &gv->pos, "'gen' must be a generator name, not %s", val_kind_name(gv->kind));
    for (int g = 0; g < G__COUNT; g++)
        if (!strcmp(seed_gen_names[g], gv->u.str.s)) {
            p->c->gen = (enum gen)g;
            return 0;
        }
    const char *near = str_closest(gv->u.str.s, seed_gen_names, (size_t)-1);
    int rc;
    if (near)
        rc = cerr(p, &gv->pos, "unknown generator '%s' (did you mean '%s'?)", gv->u.str.s, near);
    else
        rc = cerr(p, &gv->pos, "unknown generator '%s'", gv->u.str.s);
    char *all = join(seed_gen_names, G__COUNT);
    err_hint(p->e, "generators: %s (see docs/seeds.md)", all);
    free(all);
    return rc;
}

/* pass 1 of a column: its generator and keys; pass 2 (parse_options) needs
 * every sibling's name. */
static int parse_column_head(struct parser *p, const struct val_entry *ent)
{
    struct seed_col *c = p->c;
    const struct val *v = ent->v;
    c->upos = c->pos;
    if (v->kind == VAL_STR)
        return parse_gen(p, v);
    if (v->kind != VAL_MAP)
        return cerr(p, &v->pos, "a column is a generator name or a map with 'gen', not %s",
                    val_kind_name(v->kind));
    const struct val *gv = val_map_get(v, "gen");
    if (!gv) {
        const struct val_entry *e0 = v->u.map.n ? &v->u.map.e[0] : NULL;
        int rc = cerr(p, e0 ? &e0->kpos : &v->pos, "no 'gen': which generator makes the values?");
        err_hint(p->e, "e.g. {gen: int, min: 1, max: 10}; generators are listed in docs/seeds.md");
        return rc;
    }
    int rc = parse_gen(p, gv);
    if (rc)
        return rc;
    char *what = xasprintf("column '%s.%s' (gen %s)", p->t->name, c->name, seed_gen_names[c->gen]);
    rc = schema_keys(v, gen_keys[c->gen], what, p->e);
    free(what);
    return rc;
}

static int parse_column(struct parser *p, const struct val_entry *ent)
{
    static const struct val empty = {.kind = VAL_MAP};
    struct seed_col *c = p->c;
    p->m = ent->v->kind == VAL_MAP ? ent->v : &empty;
    int rc = parse_options(p);
    if (rc)
        return rc;
    if ((rc = opt_ratio(p, "nulls", &c->null_thr)))
        return rc;
    const struct val *u = opt(p, "unique");
    if (u) {
        if ((rc = schema_kind(u, VAL_BOOL, "unique", p->e)))
            return rc;
        c->unique = u->u.b;
        const struct val_entry *ue = val_map_entry(p->m, "unique");
        c->upos = ue->kpos;
    }
    if (c->unique && c->derived)
        return err_set(p->e, PE_CONFIG, &c->upos,
                       "column '%s.%s' cannot be unique: its value is made from its 'from' "
                       "columns, so it cannot be drawn again",
                       p->t->name, c->name);
    return 0;
}

/* the columns a column's value is made from, as graph edges */
static int order_columns(struct parser *p, struct seed_table *t)
{
    struct graph g;
    graph_init(&g, t->ncols);
    for (size_t i = 0; i < t->ncols; i++)
        for (size_t k = 0; k < t->cols[i].nfrom; k++)
            graph_add(&g, i, t->cols[i].from[k]);
    t->corder = xcalloc(t->ncols + 1, sizeof *t->corder);
    size_t *cyc = xcalloc(t->ncols + 1, sizeof *cyc), ncyc = 0;
    int rc = 0;
    if (graph_order(&g, t->corder, cyc, &ncyc)) {
        struct sb b;
        sb_init(&b);
        for (size_t i = 0; i < ncyc; i++)
            sb_addf(&b, "%s -> ", t->cols[cyc[i]].name);
        if (ncyc)
            sb_adds(&b, t->cols[cyc[0]].name);
        rc = err_set(p->e, PE_CYCLE, ncyc ? &t->cols[cyc[0]].pos : &t->pos,
                     "columns of table '%s' are made from each other in a cycle: %s", t->name,
                     b.buf);
        err_hint(p->e, "each column in the cycle names the next one in 'from'");
        sb_release(&b);
    }
    free(cyc);
    graph_release(&g);
    return rc;
}

/* does the text end in a letter once made ASCII (or vanish)? */
static bool ascii_ends_in_letter(const char *text)
{
    size_t n = strlen(text);
    char *o = xmalloc(2 * n + 1);
    size_t k = seed_ascii(o, text, n);
    bool ok = k == 0 || (o[k - 1] >= 'a' && o[k - 1] <= 'z');
    free(o);
    return ok;
}

/* can the ASCII form of c's values end in a digit? (e-mail local parts) */
static bool letter_ending(const struct seed_table *t, const struct seed_col *c)
{
    switch (c->gen) {
    case G_FIRST_NAME:
    case G_LAST_NAME:
    case G_CITY:
    case G_COUNTRY:
    case G_COMPANY:
    case G_PRODUCT:
    case G_STREET:
    case G_WORDS:
    case G_SENTENCE:
    case G_PARAGRAPH:
    case G_BOOL:
        return true; /* dictionary words: the unit tests check they end in letters */
    case G_FULL_NAME:
        for (size_t i = 0; i < c->nfrom; i++)
            if (!letter_ending(t, &t->cols[c->from[i]]))
                return false;
        return true;
    case G_EMAIL:
        return ascii_ends_in_letter(c->text);
    case G_ENUM:
        for (size_t i = 0; i < c->nvals; i++)
            if (!ascii_ends_in_letter(c->vals[i]))
                return false;
        return true;
    case G_CONSTANT:
        return c->cnull || ascii_ends_in_letter(c->text);
    default:
        return false;
    }
}

static int parse_table(struct parser *p, struct seed_table *t, const struct val_entry *ent)
{
    static const char *const tkeys[] = {"rows", "columns", "description", NULL};
    const struct val *v = ent->v;
    char *what = xasprintf("table '%s'", ent->key);
    int rc = schema_map(v, what, p->e);
    if (!rc)
        rc = schema_keys(v, tkeys, what, p->e);
    free(what);
    if (rc)
        return rc;
    t->rows = DEF_ROWS;
    if ((rc = schema_int(v, "rows", 0, SEED_MAX_ROWS, &t->rows, p->e)))
        return rc;
    const struct val *cols = val_map_get(v, "columns");
    if (!cols || cols->kind == VAL_NULL)
        return err_set(p->e, PE_CONFIG, &ent->kpos, "table '%s' has no 'columns:'", t->name);
    if ((rc = schema_map(cols, "'columns'", p->e)))
        return rc;
    if (cols->u.map.n == 0)
        return err_set(p->e, PE_CONFIG, &cols->pos, "table '%s' has no columns", t->name);
    if (cols->u.map.n > SEED_MAX_COLS)
        return err_set(p->e, PE_LIMIT, &cols->pos, "table '%s' has %zu columns; at most %d",
                       t->name, cols->u.map.n, SEED_MAX_COLS);
    t->cols = xcalloc(cols->u.map.n, sizeof *t->cols);
    t->colnames = xcalloc(cols->u.map.n + 1, sizeof *t->colnames);
    p->t = t;
    for (size_t i = 0; i < cols->u.map.n; i++) {
        const struct val_entry *ce = &cols->u.map.e[i];
        struct seed_col *c = &t->cols[t->ncols++];
        c->name = xstrdup(ce->key);
        c->pos = ce->kpos;
        t->colnames[i] = c->name;
        if (!str_is_ident(ce->key) || strchr(ce->key, '-'))
            return err_set(p->e, PE_CONFIG, &ce->kpos,
                           "column name '%s' must be letters, digits and '_', starting with a "
                           "letter or '_'",
                           ce->key);
        if (!strcmp(ce->key, "_table"))
            return err_set(p->e, PE_CONFIG, &ce->kpos,
                           "column name '_table' is reserved: JSON output uses it for the table");
        p->c = c;
        if ((rc = parse_column_head(p, ce)))
            return rc;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        p->c = &t->cols[i];
        if ((rc = parse_column(p, &cols->u.map.e[i])))
            return rc;
    }
    if ((rc = order_columns(p, t)))
        return rc;
    for (size_t i = 0; i < t->ncols; i++) {
        struct seed_col *c = &t->cols[i];
        if (c->gen != G_EMAIL)
            continue;
        c->safe_suffix = true;
        for (size_t k = 0; k < c->nfrom; k++)
            c->safe_suffix = c->safe_suffix && letter_ending(t, &t->cols[c->from[k]]);
    }
    return 0;
}

/* resolve refs: the table and column exist; returns the column map's table and
 * column values for positions */
static int resolve_ref(struct parser *p, struct seed_table *t, struct seed_col *c,
                       const struct val *m)
{
    struct seed_schema *s = p->s;
    const struct val *tv = val_map_get(m, "table"), *cv = val_map_get(m, "column");
    p->t = t;
    p->c = c;
    int ti = seed_table_find(s, tv->u.str.s);
    if (ti < 0) {
        const char *near = str_closest(tv->u.str.s, (const char *const *)s->names, s->n);
        if (near)
            return cerr(p, &tv->pos, "ref to unknown table '%s' (did you mean '%s'?)", tv->u.str.s,
                        near);
        int rc = cerr(p, &tv->pos, "ref to unknown table '%s'", tv->u.str.s);
        char *all = join((const char *const *)s->names, s->n);
        err_hint(p->e, "tables: %s", all);
        free(all);
        return rc;
    }
    const struct seed_table *rt = &s->t[ti];
    int ci = col_find(rt, cv->u.str.s);
    if (ci < 0) {
        const char *near = str_closest(cv->u.str.s, (const char *const *)rt->colnames, rt->ncols);
        if (near)
            return cerr(p, &cv->pos, "table '%s' has no column '%s' (did you mean '%s'?)", rt->name,
                        cv->u.str.s, near);
        int rc = cerr(p, &cv->pos, "table '%s' has no column '%s'", rt->name, cv->u.str.s);
        char *all = join((const char *const *)rt->colnames, rt->ncols);
        err_hint(p->e, "table '%s' has columns: %s", rt->name, all);
        free(all);
        return rc;
    }
    c->rtable = (size_t)ti;
    c->rcol = (size_t)ci;
    return 0;
}

static bool plain_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '"' || *s == ',' || *s == '\\' || *s == 0x7f)
            return false;
    return true;
}

/* can c's values be written without quoting or escaping in any format?
 * (dictionary words: the unit tests check them) */
static bool plain(const struct seed_schema *s, const struct seed_table *t, const struct seed_col *c)
{
    if (c->type != SEED_TEXT)
        return true;
    switch (c->gen) {
    case G_FULL_NAME:
        for (size_t i = 0; i < c->nfrom; i++)
            if (!t->cols[c->from[i]].plain)
                return false;
        return true;
    case G_ENUM:
        for (size_t i = 0; i < c->nvals; i++)
            if (!plain_text(c->vals[i]))
                return false;
        return true;
    case G_PHONE:
    case G_CONSTANT:
        return c->cnull || plain_text(c->text);
    case G_REF:
        return s->t[c->rtable].cols[c->rcol].plain;
    default:
        return true;
    }
}

/* does column c never repeat a value? */
static bool distinct(const struct seed_col *c)
{
    return c->unique || c->gen == G_SEQUENCE || c->gen == G_UUID;
}

int seed_schema_parse(struct seed_schema **out, const struct val *doc, struct err *e)
{
    static const char *const top[] = {"tables", "description", NULL};
    *out = NULL;
    int rc = schema_map(doc, "a seed file", e);
    if (!rc)
        rc = schema_keys(doc, top, "a seed file", e);
    if (rc)
        return rc;
    const struct val *tabs = val_map_get(doc, "tables");
    if (!tabs || tabs->kind == VAL_NULL)
        return err_set(e, PE_CONFIG, &doc->pos, "the seed file has no 'tables:'");
    if ((rc = schema_map(tabs, "'tables'", e)))
        return rc;
    if (tabs->u.map.n == 0)
        return err_set(e, PE_CONFIG, &tabs->pos, "'tables' is empty");
    if (tabs->u.map.n > SEED_MAX_TABLES)
        return err_set(e, PE_LIMIT, &tabs->pos, "%zu tables; at most %d", tabs->u.map.n,
                       SEED_MAX_TABLES);
    struct seed_schema *s = xcalloc(1, sizeof *s);
    struct parser p = {.s = s, .e = e};
    size_t n = tabs->u.map.n;
    s->t = xcalloc(n, sizeof *s->t);
    s->names = xcalloc(n + 1, sizeof *s->names);
    for (size_t i = 0; i < n; i++) {
        const struct val_entry *ent = &tabs->u.map.e[i];
        s->t[i].name = xstrdup(ent->key);
        s->t[i].pos = ent->kpos;
        s->names[i] = s->t[i].name;
        if (!str_is_ident(ent->key) || strchr(ent->key, '-')) {
            rc = err_set(e, PE_CONFIG, &ent->kpos,
                         "table name '%s' must be letters, digits and '_', starting with a "
                         "letter or '_'",
                         ent->key);
            s->n = i + 1;
            goto fail;
        }
    }
    s->n = n;
    for (size_t i = 0; i < n; i++)
        if ((rc = parse_table(&p, &s->t[i], &tabs->u.map.e[i])))
            goto fail;

    /* refs, and the order they impose on tables */
    struct graph g;
    graph_init(&g, n);
    for (size_t i = 0; i < n && !rc; i++) {
        const struct val *cols = val_map_get(tabs->u.map.e[i].v, "columns");
        for (size_t k = 0; k < s->t[i].ncols && !rc; k++) {
            struct seed_col *c = &s->t[i].cols[k];
            if (c->gen != G_REF)
                continue;
            if (!(rc = resolve_ref(&p, &s->t[i], c, cols->u.map.e[k].v)))
                graph_add(&g, i, c->rtable);
        }
    }
    if (!rc) {
        s->order = xcalloc(n + 1, sizeof *s->order);
        size_t *cyc = xcalloc(n + 1, sizeof *cyc), ncyc = 0;
        if (graph_order(&g, s->order, cyc, &ncyc)) {
            struct sb b;
            sb_init(&b);
            for (size_t i = 0; i < ncyc; i++)
                sb_addf(&b, "%s -> ", s->t[cyc[i]].name);
            sb_adds(&b, s->t[cyc[0]].name);
            /* point at the ref of the first member that names the next one */
            const struct pos *at = &s->t[cyc[0]].pos;
            size_t next = cyc[ncyc > 1 ? 1 : 0];
            for (size_t k = 0; k < s->t[cyc[0]].ncols; k++)
                if (s->t[cyc[0]].cols[k].gen == G_REF && s->t[cyc[0]].cols[k].rtable == next) {
                    at = &s->t[cyc[0]].cols[k].pos;
                    break;
                }
            rc = err_set(e, PE_CYCLE, at, "tables refer to each other in a cycle: %s", b.buf);
            err_hint(e, "a ref takes values from rows generated earlier, so refs cannot form a "
                        "cycle; break one of them (e.g. fill that column with a sequence or an "
                        "int range instead)");
            sb_release(&b);
        }
        free(cyc);
    }
    graph_release(&g);
    if (rc)
        goto fail;

    /* in table order: a ref takes its target's type; check uniqueness that
     * cannot work with the file's row counts */
    for (size_t oi = 0; oi < n; oi++) {
        struct seed_table *t = &s->t[s->order[oi]];
        for (size_t i = 0; i < t->ncols; i++) {
            struct seed_col *c = &t->cols[t->corder[i]];
            if (c->gen == G_REF)
                c->type = s->t[c->rtable].cols[c->rcol].type;
            c->plain = plain(s, t, c);
        }
        for (size_t k = 0; k < t->ncols; k++) {
            struct seed_col *c = &t->cols[k];
            p.t = t;
            p.c = c;
            if (c->gen == G_REF) {
                const struct seed_col *tc = &s->t[c->rtable].cols[c->rcol];
                c->dom = (uint64_t)s->t[c->rtable].rows;
                if (c->unique && !distinct(tc)) {
                    rc = cerr(&p, &c->upos,
                              "a unique ref takes each row of '%s' at most once, so '%s.%s' must "
                              "not repeat values",
                              s->t[c->rtable].name, s->t[c->rtable].name, tc->name);
                    err_hint(e, "mark '%s.%s' unique: true, or make it a sequence or uuid",
                             s->t[c->rtable].name, tc->name);
                    goto fail;
                }
                if (c->unique && tc->null_thr == 0 && c->null_thr == 0 &&
                    (uint64_t)t->rows > c->dom) {
                    rc = err_set(e, PE_CONFIG, &c->upos,
                                 "column '%s.%s' is unique, but '%s' has only %llu rows to refer "
                                 "to and %lld rows were asked",
                                 t->name, c->name, s->t[c->rtable].name, (unsigned long long)c->dom,
                                 t->rows);
                    goto fail;
                }
                continue;
            }
            if (c->unique && c->indexed && c->null_thr == 0 && (uint64_t)t->rows > c->dom) {
                rc = err_set(e, PE_CONFIG, &c->upos,
                             "column '%s.%s' is unique, but %s can produce only %llu distinct "
                             "values and %lld rows were asked",
                             t->name, c->name, seed_gen_names[c->gen], (unsigned long long)c->dom,
                             t->rows);
                if (!val_map_get(tabs->u.map.e[s->order[oi]].v, "rows"))
                    err_hint(e, "table '%s' has no 'rows:', so it gets %d", t->name, DEF_ROWS);
                goto fail;
            }
        }
    }
    *out = s;
    return 0;
fail:
    seed_schema_free(s);
    return rc;
}

int seed_schema_load(struct seed_schema **out, const char *path, const char *display, struct err *e)
{
    struct val *doc = NULL;
    *out = NULL;
    int rc = yt_load(&doc, path, display ? display : path, e);
    if (!rc)
        rc = seed_schema_parse(out, doc, e);
    val_free(doc);
    return rc;
}

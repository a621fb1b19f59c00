/* Unit tests for core/seed: the seed file schema and its errors, the
 * generators (ranges, distributions, weights, NULL ratios, uniqueness,
 * references), determinism, the CSV / JSON / COPY encoders, row-count
 * overrides and `only`, and `prenv seed preview` through the real binary. */
#include "core/lib/crypto.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "core/seed/seed.h"
#include "core/seed/seed_int.h"
#include "tests/testlib.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* output of seed 1 for the schema in output_is_pinned_...: see that test */
#define PINNED_OUTPUT                                                                              \
    "table t\n"                                                                                    \
    "1\taf030289-f405-4b31-b7ba-1eadecffece6\t\xc3\x89tienne Adams\t51\t144\t-0.3923\t2002-07-"    \
    "05\t2022-11-28T13:31:12Z\tisabella.turner@example.com\n"                                      \
    "2\t2926e2c6-1ccf-48de-9c62-f9cfd61c2ec5\tMika Bianchi\t51\t704\t-0.5795\t2009-04-"            \
    "27\t2024-09-11T21:13:56Z\tbeatriz.saleh@example.com\n"
#define PINNED_SHOP_SHA256 "74f30fdf412dcf10a36138f0f82a858700b604ea9cf9fb16386c018019b04240"

static char *dir;

static void setup(void)
{
    dir = tl_tmpdir("seed");
}

static void teardown(void)
{
    struct err e = {0};
    fs_rm_rf(dir, &e);
    err_release(&e);
    free(dir);
    src_free_all();
}

TestSuite(seed, .init = setup, .fini = teardown);

/* ---- helpers ---- */

static struct seed_schema *load(const char *yaml, struct err *e)
{
    const struct src *s = src_add("seed.yaml", yaml, strlen(yaml));
    struct val *doc = NULL;
    struct seed_schema *out = NULL;
    if (!yt_parse(&doc, s, e))
        seed_schema_parse(&out, doc, e);
    val_free(doc);
    return out;
}

static struct seed_schema *load_ok(const char *yaml)
{
    struct err e = {0};
    struct seed_schema *s = load(yaml, &e);
    cr_assert_not_null(s, "schema failed: %s", e.msg ? e.msg : "?");
    return s;
}

/* a sink that keeps every value: tab[t].v[row * ncols + col], NULL for NULL */
struct ctab {
    size_t ncols;
    size_t rows;
    char **v;
    size_t cap;
};

struct cap {
    const struct seed_schema *s;
    struct ctab *tab;
    size_t cur;
    int tables_begun;
    struct sb copy; /* everything, as COPY text, for hashing */
};

static int cap_begin(void *ctx, const struct seed_schema *s, size_t t, long long rows,
                     struct err *e)
{
    (void)rows;
    (void)e;
    struct cap *c = ctx;
    c->cur = t;
    c->tab[t].ncols = seed_ncols(s, t);
    c->tables_begun++;
    sb_addf(&c->copy, "table %s\n", seed_table_name(s, t));
    return 0;
}

static int cap_row(void *ctx, const struct seed_value *vals, size_t n, struct err *e)
{
    (void)e;
    struct cap *c = ctx;
    struct ctab *t = &c->tab[c->cur];
    XGROW(t->v, t->cap, (t->rows + 1) * n);
    for (size_t i = 0; i < n; i++)
        t->v[t->rows * n + i] = vals[i].null ? NULL : xstrndup(vals[i].text, vals[i].len);
    t->rows++;
    seed_copy_row(&c->copy, vals, n);
    return 0;
}

static int cap_end(void *ctx, struct err *e)
{
    (void)ctx;
    (void)e;
    return 0;
}

static struct cap *cap_run(const struct seed_schema *s, const struct seed_opts *o, struct err *e)
{
    struct cap *c = xcalloc(1, sizeof *c);
    c->s = s;
    c->tab = xcalloc(seed_ntables(s), sizeof *c->tab);
    sb_init(&c->copy);
    struct seed_sink sink = {cap_begin, cap_row, cap_end, c};
    struct seed_opts none = {.seed = 1};
    c->tables_begun = 0;
    if (seed_generate(s, o ? o : &none, &sink, e) && !e->code)
        cr_assert_fail("seed_generate failed without an error");
    return c;
}

static struct cap *gen_ok(const struct seed_schema *s, const struct seed_opts *o)
{
    struct err e = {0};
    struct cap *c = cap_run(s, o, &e);
    cr_assert_eq(e.code, 0, "generate failed: %s", e.msg);
    return c;
}

static void cap_free(struct cap *c)
{
    if (!c)
        return;
    for (size_t t = 0; t < seed_ntables(c->s); t++) {
        for (size_t i = 0; i < c->tab[t].rows * c->tab[t].ncols; i++)
            free(c->tab[t].v[i]);
        free(c->tab[t].v);
    }
    free(c->tab);
    sb_release(&c->copy);
    free(c);
}

/* the values of table.col, row by row (borrowed) */
static char **col(const struct cap *c, const char *table, const char *name, size_t *n)
{
    int t = seed_table_find(c->s, table);
    cr_assert_geq(t, 0, "no table %s", table);
    size_t k = 0;
    for (; k < seed_ncols(c->s, (size_t)t); k++)
        if (!strcmp(seed_col_name(c->s, (size_t)t, k), name))
            break;
    cr_assert_lt(k, seed_ncols(c->s, (size_t)t), "no column %s", name);
    const struct ctab *ct = &c->tab[t];
    char **out = xcalloc(ct->rows + 1, sizeof *out);
    for (size_t r = 0; r < ct->rows; r++)
        out[r] = ct->v[r * ct->ncols + k];
    *n = ct->rows;
    return out;
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* number of repeated non-NULL values */
static size_t dups(char **v, size_t n)
{
    char **s = xcalloc(n + 1, sizeof *s);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i])
            s[m++] = v[i];
    qsort(s, m, sizeof *s, cmpstr);
    size_t d = 0;
    for (size_t i = 1; i < m; i++)
        d += !strcmp(s[i], s[i - 1]);
    free(s);
    return d;
}

static void hash_of(const struct seed_schema *s, uint64_t seed, char out[65])
{
    struct seed_opts o = {.seed = seed};
    struct cap *c = gen_ok(s, &o);
    crypto_sha256_hex(c->copy.buf, c->copy.len, out);
    cap_free(c);
}

/* a schema error at line:col whose message holds want */
static void expect_err(const char *yaml, int line, int colno, const char *want)
{
    struct err e = {0};
    struct seed_schema *s = load(yaml, &e);
    cr_assert_null(s, "expected an error containing \"%s\"", want);
    cr_assert(e.msg && strstr(e.msg, want), "message \"%s\" lacks \"%s\"", e.msg, want);
    cr_assert_eq(e.pos.line, line, "line %d, expected %d (%s)", e.pos.line, line, e.msg);
    cr_assert_eq(e.pos.col, colno, "col %d, expected %d (%s)", e.pos.col, colno, e.msg);
    cr_assert_str_eq(e.pos.src->name, "seed.yaml");
    err_release(&e);
}

static const char *shop =
    "tables:\n"
    "  customers:\n"
    "    rows: 300\n"
    "    columns:\n"
    "      id:         {gen: sequence, start: 100, step: 3}\n"
    "      uid:        {gen: uuid}\n"
    "      first_name: {gen: first_name}\n"
    "      last_name:  {gen: last_name}\n"
    "      name:       {gen: full_name, from: [first_name, last_name]}\n"
    "      email:      {gen: email, from: [first_name, last_name], unique: true}\n"
    "      phone:      {gen: phone, nulls: 0.2}\n"
    "      street:     {gen: street_address}\n"
    "      city:       {gen: city}\n"
    "      country:    {gen: country, from: city}\n"
    "      company:    company\n"
    "      vip:        {gen: bool, ratio: 0.1}\n"
    "      tier:       {gen: enum, values: {free: 70, pro: 25, enterprise: 5}}\n"
    "      age:        {gen: int, min: 18, max: 90, dist: normal, mean: 40, stddev: 12}\n"
    "      score:      {gen: float, min: 0, max: 1, decimals: 3}\n"
    "      born:       {gen: date, min: 1950-01-01, max: 2005-12-31}\n"
    "      created_at: {gen: timestamp, min: \"2024-01-01T00:00:00Z\", max: "
    "\"2026-11-01T00:00:00Z\"}\n"
    "      bio:        {gen: paragraph, sentences: 2}\n"
    "  products:\n"
    "    rows: 50\n"
    "    columns:\n"
    "      id:    {gen: sequence}\n"
    "      name:  {gen: product_name, unique: true}\n"
    "      price: {gen: money, min: 1, max: 500}\n"
    "  orders:\n"
    "    rows: 2000\n"
    "    columns:\n"
    "      id:          {gen: uuid}\n"
    "      customer_id: {gen: ref, table: customers, column: id}\n"
    "      product_id:  {gen: ref, table: products, column: id}\n"
    "      phone:       {gen: ref, table: customers, column: phone}\n"
    "      quantity:    {gen: int, min: 1, max: 5}\n";

/* ---- determinism ---- */

Test(seed, the_same_seed_gives_the_same_bytes_and_another_seed_does_not)
{
    struct seed_schema *s = load_ok(shop);
    char a[65], b[65], c[65];
    hash_of(s, 42, a);
    hash_of(s, 42, b);
    hash_of(s, 43, c);
    cr_assert_str_eq(a, b);
    cr_assert_str_neq(a, c);
    seed_schema_free(s);
}

Test(seed, fd_sinks_write_identical_files_for_identical_runs)
{
    struct seed_schema *s = load_ok(shop);
    char *paths[2];
    for (int i = 0; i < 2; i++) {
        paths[i] = xasprintf("%s/out%d.json", dir, i);
        int fd = open(paths[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        struct seed_sink sink;
        struct seed_fd_sink *k = seed_fd_sink_new(fd, SEED_JSON, &sink);
        struct seed_opts o = {.seed = seed_of_name("pr-42")};
        struct err e = {0};
        cr_assert_eq(seed_generate(s, &o, &sink, &e), 0, "%s", e.msg);
        cr_assert_eq(seed_fd_sink_free(k), 0);
        close(fd);
    }
    char *x = tl_read(paths[0]), *y = tl_read(paths[1]);
    cr_assert_gt(strlen(x), 100000, "a run of 2350 rows is large");
    cr_assert_str_eq(x, y);
    free(x);
    free(y);
    free(paths[0]);
    free(paths[1]);
    seed_schema_free(s);
}

Test(seed, output_is_pinned_so_other_machines_produce_the_same_values)
{
    /* changing these values changes every environment's data: only on purpose */
    struct seed_schema *s = load_ok("tables:\n"
                                    "  t:\n"
                                    "    rows: 2\n"
                                    "    columns:\n"
                                    "      id: sequence\n"
                                    "      u: uuid\n"
                                    "      n: full_name\n"
                                    "      a: {gen: int, min: 18, max: 90, dist: normal}\n"
                                    "      w: {gen: int, min: 0, max: 1000, dist: exponential}\n"
                                    "      f: {gen: float, min: -1, max: 1, decimals: 4}\n"
                                    "      d: date\n"
                                    "      ts: timestamp\n"
                                    "      e: {gen: email, unique: true}\n");
    struct seed_opts o = {.seed = 1};
    struct cap *c = gen_ok(s, &o);
    cr_assert_str_eq(c->copy.buf, PINNED_OUTPUT, "got:\n%s", c->copy.buf);
    cap_free(c);
    seed_schema_free(s);
    /* and every generator, dictionary and distribution of the shop schema */
    s = load_ok(shop);
    char h[65];
    hash_of(s, 42, h);
    cr_assert_str_eq(h, PINNED_SHOP_SHA256);
    seed_schema_free(s);
}

Test(seed, fewer_rows_give_a_prefix_of_more_rows)
{
    struct seed_schema *s = load_ok(shop);
    struct seed_opts few = {.seed = 7, .rows_all = 20}, many = {.seed = 7, .rows_all = 40};
    struct cap *a = gen_ok(s, &few), *b = gen_ok(s, &many);
    size_t na, nb;
    char **x = col(a, "customers", "email", &na), **y = col(b, "customers", "email", &nb);
    cr_assert_eq(na, 20);
    cr_assert_eq(nb, 40);
    for (size_t i = 0; i < na; i++)
        cr_assert_str_eq(x[i], y[i]);
    free(x);
    free(y);
    cap_free(a);
    cap_free(b);
    seed_schema_free(s);
}

Test(seed, seed_of_name_is_fnv1a_64)
{
    cr_assert_eq(seed_of_name(""), 0xcbf29ce484222325ULL);
    cr_assert_eq(seed_of_name("a"), 0xaf63dc4c8601ec8cULL);
    cr_assert_neq(seed_of_name("pr-1"), seed_of_name("pr-2"));
}

/* ---- references, uniqueness, NULLs, weights, ranges ---- */

Test(seed, every_ref_value_exists_in_the_referenced_column)
{
    struct seed_schema *s = load_ok(shop);
    struct cap *c = gen_ok(s, NULL);
    size_t nc, no, np, nph, nref;
    char **cid = col(c, "customers", "id", &nc), **oid = col(c, "orders", "customer_id", &no);
    char **pid = col(c, "products", "id", &np), **opid = col(c, "orders", "product_id", &no);
    char **phones = col(c, "customers", "phone", &nph), **ophone = col(c, "orders", "phone", &nref);
    cr_assert_eq(no, 2000);
    qsort(cid, nc, sizeof *cid, cmpstr);
    qsort(pid, np, sizeof *pid, cmpstr);
    size_t nn = 0;
    for (size_t i = 0; i < nph; i++)
        if (phones[i])
            phones[nn++] = phones[i];
    qsort(phones, nn, sizeof *phones, cmpstr);
    for (size_t i = 0; i < no; i++) {
        cr_assert_not_null(oid[i]);
        cr_assert_not_null(bsearch(&oid[i], cid, nc, sizeof *cid, cmpstr), "%s", oid[i]);
        cr_assert_not_null(bsearch(&opid[i], pid, np, sizeof *pid, cmpstr), "%s", opid[i]);
        /* a ref to a column with NULLs never yields NULL itself */
        cr_assert_not_null(ophone[i], "row %zu took a NULL phone", i);
        cr_assert_not_null(bsearch(&ophone[i], phones, nn, sizeof *phones, cmpstr));
    }
    /* the referenced table's values are those of the sequence 100, 103, ... */
    cr_assert_not_null(bsearch(&(const char *){"100"}, cid, nc, sizeof *cid, cmpstr));
    cr_assert_not_null(bsearch(&(const char *){"997"}, cid, nc, sizeof *cid, cmpstr));
    free(cid);
    free(oid);
    free(pid);
    free(opid);
    free(phones);
    free(ophone);
    cap_free(c);
    seed_schema_free(s);
}

Test(seed, unique_columns_never_repeat_even_when_the_domain_is_nearly_full)
{
    struct seed_schema *s =
        load_ok("tables:\n"
                "  t:\n"
                "    rows: 5000\n"
                "    columns:\n"
                "      first: {gen: enum, values: [Zoë, Ana]}\n"
                "      last: {gen: enum, values: [Smith, O'Brien]}\n"
                "      email: {gen: email, from: [first, last], domain: corp.test, unique: true}\n"
                "      code: {gen: int, min: 1, max: 5000, unique: true}\n"
                "      skew: {gen: int, min: 0, max: 9999, dist: normal, stddev: 5, unique: true}\n"
                "      city: {gen: city, unique: true, nulls: 0.97}\n"
                "      name: {gen: full_name, unique: true}\n"
                "      u: uuid\n"
                "      text: {gen: sentence, words: 3, unique: true}\n");
    struct cap *c = gen_ok(s, NULL);
    const char *names[] = {"email", "code", "skew", "city", "name", "u", "text"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        size_t n;
        char **v = col(c, "t", names[i], &n);
        cr_assert_eq(n, 5000);
        cr_assert_eq(dups(v, n), 0, "column %s repeats values", names[i]);
        free(v);
    }
    size_t n;
    char **e = col(c, "t", "email", &n);
    bool suffixed = false;
    for (size_t i = 0; i < n; i++) {
        cr_assert(!strncmp(e[i], "zoe.", 4) || !strncmp(e[i], "ana.", 4), "%s", e[i]);
        cr_assert(strstr(e[i], "smith") || strstr(e[i], "obrien"), "%s", e[i]);
        cr_assert(str_suffix(e[i], "@corp.test"), "%s", e[i]);
        suffixed = suffixed || strchr(e[i], '2');
    }
    cr_assert(suffixed);
    free(e);
    /* every value of 1..5000 used exactly once */
    char **code = col(c, "t", "code", &n);
    long long sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += atoll(code[i]);
    cr_assert_eq(sum, 5000LL * 5001 / 2);
    free(code);
    cap_free(c);
    seed_schema_free(s);
}

Test(seed, null_ratios_hold_within_tolerance_over_10k_rows)
{
    struct seed_schema *s = load_ok("tables:\n"
                                    "  t:\n"
                                    "    rows: 10000\n"
                                    "    columns:\n"
                                    "      a: {gen: int, nulls: 0.2}\n"
                                    "      b: {gen: first_name, nulls: 0.5}\n"
                                    "      c: {gen: uuid, nulls: 0}\n"
                                    "      d: {gen: bool, nulls: 1}\n");
    struct cap *c = gen_ok(s, NULL);
    const char *names[] = {"a", "b", "c", "d"};
    double want[] = {0.2, 0.5, 0, 1};
    for (size_t i = 0; i < 4; i++) {
        size_t n, nulls = 0;
        char **v = col(c, "t", names[i], &n);
        for (size_t r = 0; r < n; r++)
            nulls += v[r] == NULL;
        double got = (double)nulls / (double)n;
        cr_assert(got > want[i] - 0.02 && got < want[i] + 0.02, "%s: %f NULLs, wanted %f", names[i],
                  got, want[i]);
        free(v);
    }
    cap_free(c);
    seed_schema_free(s);
}

Test(seed, enum_weights_and_bool_ratio_hold_within_tolerance)
{
    struct seed_schema *s =
        load_ok("tables:\n"
                "  t:\n"
                "    rows: 20000\n"
                "    columns:\n"
                "      tier: {gen: enum, values: {free: 70, pro: 25, enterprise: 5, never: 0}}\n"
                "      frac: {gen: enum, values: {a: 0.5, b: 0.25, c: 0.25}}\n"
                "      plain: {gen: enum, values: [x, y, z, w]}\n"
                "      vip: {gen: bool, ratio: 0.1}\n");
    struct cap *c = gen_ok(s, NULL);
    size_t n;
    char **v = col(c, "t", "tier", &n);
    size_t f = 0, p = 0, en = 0;
    for (size_t i = 0; i < n; i++) {
        f += !strcmp(v[i], "free");
        p += !strcmp(v[i], "pro");
        en += !strcmp(v[i], "enterprise");
    }
    cr_assert_eq(f + p + en, n, "a weight of 0 is never drawn");
    cr_assert(f > 13600 && f < 14400, "free %zu", f);
    cr_assert(p > 4600 && p < 5400, "pro %zu", p);
    cr_assert(en > 800 && en < 1200, "enterprise %zu", en);
    free(v);
    v = col(c, "t", "frac", &n);
    size_t a = 0;
    for (size_t i = 0; i < n; i++)
        a += !strcmp(v[i], "a");
    cr_assert(a > 9600 && a < 10400, "a %zu", a);
    free(v);
    v = col(c, "t", "plain", &n);
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += !strcmp(v[i], "w");
    cr_assert(w > 4600 && w < 5400, "w %zu", w);
    free(v);
    v = col(c, "t", "vip", &n);
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += !strcmp(v[i], "true");
    cr_assert(t > 1800 && t < 2200, "true %zu", t);
    free(v);
    cap_free(c);
    seed_schema_free(s);
}

Test(seed, numbers_stay_in_range_and_distributions_have_their_mean)
{
    struct seed_schema *s =
        load_ok("tables:\n"
                "  t:\n"
                "    rows: 10000\n"
                "    columns:\n"
                "      u: {gen: int, min: -5, max: 5}\n"
                "      n: {gen: int, min: 18, max: 90, dist: normal, mean: 40, stddev: 12}\n"
                "      x: {gen: int, min: 0, max: 10000, dist: exponential, mean: 100}\n"
                "      f: {gen: float, min: 0.5, max: 1.5, decimals: 3}\n"
                "      m: {gen: money, min: 1, max: 500}\n");
    struct cap *c = gen_ok(s, NULL);
    size_t n;
    char **u = col(c, "t", "u", &n), **nn = col(c, "t", "n", &n), **x = col(c, "t", "x", &n);
    char **f = col(c, "t", "f", &n), **m = col(c, "t", "m", &n);
    double sn = 0, sx = 0;
    bool lo = false, hi = false;
    for (size_t i = 0; i < n; i++) {
        long long a = atoll(u[i]);
        cr_assert(a >= -5 && a <= 5, "%s", u[i]);
        lo = lo || a == -5;
        hi = hi || a == 5;
        long long b = atoll(nn[i]);
        cr_assert(b >= 18 && b <= 90, "%s", nn[i]);
        sn += (double)b;
        long long d = atoll(x[i]);
        cr_assert(d >= 0 && d <= 10000, "%s", x[i]);
        sx += (double)d;
        cr_assert_eq(strlen(f[i]), 5, "three decimals: %s", f[i]);
        double fv = strtod(f[i], NULL);
        cr_assert(fv >= 0.5 && fv <= 1.5, "%s", f[i]);
        const char *dot = strchr(m[i], '.');
        cr_assert(dot && strlen(dot) == 3, "money has two decimals: %s", m[i]);
        double mv = strtod(m[i], NULL);
        cr_assert(mv >= 1 && mv <= 500, "%s", m[i]);
    }
    cr_assert(lo && hi, "both ends of a uniform range are drawn");
    cr_assert(sn / (double)n > 39 && sn / (double)n < 41, "normal mean %f", sn / (double)n);
    cr_assert(sx / (double)n > 93 && sx / (double)n < 107, "exponential mean %f", sx / (double)n);
    free(u);
    free(nn);
    free(x);
    free(f);
    free(m);
    cap_free(c);
    seed_schema_free(s);
}

Test(seed, dates_and_timestamps_stay_in_range)
{
    struct seed_schema *s = load_ok("tables:\n"
                                    "  t:\n"
                                    "    rows: 10000\n"
                                    "    columns:\n"
                                    "      d: {gen: date, min: 1999-12-30, max: 2000-03-01}\n"
                                    "      ts: {gen: timestamp, min: \"2024-02-28T23:00:00Z\", "
                                    "max: \"2024-03-01T01:00:00+01:00\"}\n"
                                    "      old: {gen: date, min: 0001-01-01, max: 0001-01-02}\n");
    struct cap *c = gen_ok(s, NULL);
    size_t n;
    char **d = col(c, "t", "d", &n), **ts = col(c, "t", "ts", &n), **old = col(c, "t", "old", &n);
    bool leap = false;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(strlen(d[i]), 10, "%s", d[i]);
        cr_assert(strcmp(d[i], "1999-12-30") >= 0 && strcmp(d[i], "2000-03-01") <= 0, "%s", d[i]);
        leap = leap || !strcmp(d[i], "2000-02-29");
        cr_assert_eq(strlen(ts[i]), 20, "%s", ts[i]);
        cr_assert(strcmp(ts[i], "2024-02-28T23:00:00Z") >= 0 &&
                      strcmp(ts[i], "2024-03-01T00:00:00Z") <= 0,
                  "%s", ts[i]);
        cr_assert(!strcmp(old[i], "0001-01-01") || !strcmp(old[i], "0001-01-02"), "%s", old[i]);
    }
    cr_assert(leap, "2000-02-29 exists");
    free(d);
    free(ts);
    free(old);
    cap_free(c);
    seed_schema_free(s);
}

Test(seed, text_generators_look_like_their_kind)
{
    struct seed_schema *s = load_ok(shop);
    struct cap *c = gen_ok(s, NULL);
    size_t n;
    char **uid = col(c, "customers", "uid", &n), **email = col(c, "customers", "email", &n);
    char **name = col(c, "customers", "name", &n), **first = col(c, "customers", "first_name", &n);
    char **city = col(c, "customers", "city", &n), **country = col(c, "customers", "country", &n);
    char **phone = col(c, "customers", "phone", &n), **bio = col(c, "customers", "bio", &n);
    char **id = col(c, "customers", "id", &n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(strlen(uid[i]), 36);
        cr_assert_eq(uid[i][14], '4', "uuid v4: %s", uid[i]);
        cr_assert(strchr("89ab", uid[i][19]), "uuid variant: %s", uid[i]);
        for (const char *p = email[i]; *p; p++)
            cr_assert((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                          *p == '@',
                      "ascii email: %s", email[i]);
        cr_assert(strstr(email[i], "@example.com"), "%s", email[i]);
        cr_assert(!strncmp(name[i], first[i], strlen(first[i])), "%s / %s", name[i], first[i]);
        bool found = false;
        for (size_t k = 0; k < dict_ncities && !found; k++)
            found = !strcmp(dict_cities[k].city.s, city[i]) &&
                    !strcmp(dict_cities[k].country.s, country[i]);
        cr_assert(found, "%s is not in %s", city[i], country[i]);
        if (phone[i])
            cr_assert(strlen(phone[i]) == 15 && !strncmp(phone[i], "+1-", 3), "%s", phone[i]);
        cr_assert(bio[i][0] >= 'A' && bio[i][0] <= 'Z' && bio[i][strlen(bio[i]) - 1] == '.', "%s",
                  bio[i]);
        cr_assert_eq(atoll(id[i]), 100 + 3 * (long long)i);
    }
    free(uid);
    free(email);
    free(name);
    free(first);
    free(city);
    free(country);
    free(phone);
    free(bio);
    free(id);
    cap_free(c);
    seed_schema_free(s);
}

Test(seed, dictionaries_are_large_distinct_and_consistent)
{
    const struct dlist *l[] = {
        &dict_first_names,       &dict_last_names,    &dict_countries,
        &dict_streets,           &dict_company_words, &dict_product_adjectives,
        &dict_product_materials, &dict_product_nouns, &dict_lorem};
    size_t min[] = {150, 150, 60, 60, 60, 40, 40, 40, 150};
    for (size_t i = 0; i < sizeof l / sizeof *l; i++) {
        cr_assert_geq(l[i]->n, min[i], "list %zu has %zu words", i, l[i]->n);
        for (size_t a = 0; a < l[i]->n; a++) {
            cr_assert_eq(strlen(l[i]->w[a].s), l[i]->w[a].len);
            for (size_t b = a + 1; b < l[i]->n; b++)
                cr_assert_str_neq(l[i]->w[a].s, l[i]->w[b].s, "list %zu repeats", i);
        }
    }
    cr_assert_geq(dict_ncities, 100);
    for (size_t k = 0; k < dict_ncities; k++) {
        bool found = false;
        for (size_t c = 0; c < dict_countries.n && !found; c++)
            found = !strcmp(dict_countries.w[c].s, dict_cities[k].country.s);
        cr_assert(found, "%s's country %s is not in the country list", dict_cities[k].city.s,
                  dict_cities[k].country.s);
    }
    for (size_t k = 0; k < dict_lorem.n; k++)
        for (const char *p = dict_lorem.w[k].s; *p; p++)
            cr_assert(*p >= 'a' && *p <= 'z', "lorem words are lowercase ASCII");
    cr_assert_geq(dict_street_suffixes.n, 8);
    cr_assert_geq(dict_company_suffixes.n, 8);
}

/* ---- schema errors ---- */

Test(seed, unknown_generator_points_at_it_with_a_suggestion)
{
    expect_err("tables:\n"
               "  users:\n"
               "    columns:\n"
               "      id: {gen: sequence}\n"
               "      name: {gen: frist_name}\n",
               5, 19,
               "column 'users.name': unknown generator 'frist_name' (did you mean 'first_name'?)");
    expect_err("tables:\n"
               "  users:\n"
               "    columns:\n"
               "      name: fullname\n",
               4, 13, "unknown generator 'fullname' (did you mean 'full_name'?)");
}

Test(seed, unknown_keys_point_at_the_key_with_a_suggestion)
{
    expect_err("tables:\n"
               "  users:\n"
               "    columns:\n"
               "      id: {gen: sequence}\n"
               "      email: {gen: email, domian: x.com}\n",
               5, 27,
               "unknown key 'domian' in column 'users.email' (gen email) (did you mean 'domain'?)");
    expect_err("tables:\n"
               "  users:\n"
               "    row: 10\n"
               "    columns:\n"
               "      id: sequence\n",
               3, 5, "unknown key 'row' in table 'users' (did you mean 'rows'?)");
    expect_err("tabels:\n  users: {}\n", 1, 1, "unknown key 'tabels'");
}

Test(seed, refs_to_unknown_tables_and_columns_are_errors_with_suggestions)
{
    expect_err(
        "tables:\n"
        "  customers:\n"
        "    columns:\n"
        "      id: sequence\n"
        "  orders:\n"
        "    columns:\n"
        "      customer_id: {gen: ref, table: customer, column: id}\n",
        7, 38,
        "column 'orders.customer_id': ref to unknown table 'customer' (did you mean 'customers'?)");
    expect_err("tables:\n"
               "  customers:\n"
               "    columns:\n"
               "      id: sequence\n"
               "  orders:\n"
               "    columns:\n"
               "      customer_id: {gen: ref, table: customers, column: idd}\n",
               7, 57, "table 'customers' has no column 'idd' (did you mean 'id'?)");
    expect_err("tables:\n"
               "  t:\n"
               "    columns:\n"
               "      first: first_name\n"
               "      email: {gen: email, from: [frist, last]}\n",
               5, 34, "'from' names unknown column 'frist' (did you mean 'first'?)");
}

Test(seed, ref_cycles_name_every_member)
{
    expect_err("tables:\n"
               "  a:\n"
               "    columns:\n"
               "      b_id: {gen: ref, table: b, column: id}\n"
               "      id: sequence\n"
               "  b:\n"
               "    columns:\n"
               "      id: sequence\n"
               "      c_id: {gen: ref, table: c, column: id}\n"
               "  c:\n"
               "    columns:\n"
               "      id: sequence\n"
               "      a_id: {gen: ref, table: a, column: id}\n",
               4, 7, "tables refer to each other in a cycle: a -> b -> c -> a");
    expect_err("tables:\n"
               "  emp:\n"
               "    columns:\n"
               "      id: sequence\n"
               "      boss: {gen: ref, table: emp, column: id}\n",
               5, 7, "cycle: emp -> emp");
    expect_err("tables:\n"
               "  t:\n"
               "    columns:\n"
               "      a: {gen: full_name, from: b}\n"
               "      b: {gen: full_name, from: a}\n",
               4, 7, "in a cycle: a -> b -> a");
}

Test(seed, bad_ranges_and_ratios_point_at_the_value)
{
    expect_err("tables:\n"
               "  t:\n"
               "    columns:\n"
               "      age: {gen: int, min: 90, max: 18}\n",
               4, 28, "column 't.age': 'min' (90) is greater than 'max' (18)");
    expect_err("tables:\n"
               "  t:\n"
               "    columns:\n"
               "      d: {gen: date, min: 2020-01-01, max: 2019-12-31}\n",
               4, 27, "'min' (2020-01-01) is greater than 'max' (2019-12-31)");
    expect_err("tables:\n"
               "  t:\n"
               "    columns:\n"
               "      vip: {gen: bool, ratio: 1.5}\n",
               4, 31, "'ratio' must be between 0 and 1, not 1.5");
    expect_err("tables:\n"
               "  t:\n"
               "    columns:\n"
               "      x: {gen: int, nulls: -0.1}\n",
               4, 28, "'nulls' must be between 0 and 1");
    expect_err("tables:\n"
               "  t:\n"
               "    columns:\n"
               "      d: {gen: date, min: 2019-02-29}\n",
               4, 27, "'min' must be a date such as 2024-01-31, not '2019-02-29'");
    expect_err("tables:\n"
               "  t:\n"
               "    columns:\n"
               "      x: {gen: int, dist: normall}\n",
               4, 27, "unknown distribution 'normall' (did you mean 'normal'?)");
}

Test(seed, impossible_uniqueness_is_reported_up_front)
{
    expect_err("tables:\n"
               "  t:\n"
               "    rows: 1000\n"
               "    columns:\n"
               "      tier: {gen: enum, values: [a, b, c], unique: true}\n",
               5, 44,
               "column 't.tier' is unique, but enum can produce only 3 distinct values and 1000 "
               "rows were asked");
    expect_err("tables:\n"
               "  t:\n"
               "    rows: 102\n"
               "    columns:\n"
               "      n: {gen: int, min: 0, max: 100, unique: true}\n",
               5, 39, "only 101 distinct values");
    expect_err("tables:\n"
               "  t:\n"
               "    rows: 3\n"
               "    columns:\n"
               "      b: {gen: bool, unique: true}\n",
               5, 22, "only 2 distinct values");
    expect_err("tables:\n"
               "  a:\n"
               "    rows: 5\n"
               "    columns:\n"
               "      id: sequence\n"
               "  b:\n"
               "    rows: 6\n"
               "    columns:\n"
               "      a_id: {gen: ref, table: a, column: id, unique: true}\n",
               9, 46, "'a' has only 5 rows to refer to and 6 rows were asked");
    expect_err("tables:\n"
               "  t:\n"
               "    columns:\n"
               "      f: first_name\n"
               "      n: {gen: full_name, from: f, unique: true}\n",
               5, 36, "cannot be unique");
}

Test(seed, uniqueness_that_runs_out_at_run_time_names_the_column)
{
    /* with NULLs the count of values is not known up front */
    struct seed_schema *s = load_ok("tables:\n"
                                    "  t:\n"
                                    "    rows: 10\n"
                                    "    columns:\n"
                                    "      b: {gen: bool, unique: true, nulls: 0.01}\n");
    struct err e = {0};
    struct cap *c = cap_run(s, NULL, &e);
    cr_assert_eq(e.code, PE_CONFIG);
    cr_assert(strstr(e.msg, "column 't.b' is unique, but bool can produce only 2 distinct values"),
              "%s", e.msg);
    cr_assert_eq(e.pos.line, 5);
    err_release(&e);
    cap_free(c);
    /* row counts from an environment are checked against the domain too */
    struct val *rows = val_map(NULL);
    val_map_set(rows, "t", NULL, val_int(3, NULL));
    struct seed_schema *s2 = load_ok("tables:\n"
                                     "  t:\n"
                                     "    rows: 2\n"
                                     "    columns:\n"
                                     "      b: {gen: bool, unique: true}\n");
    struct seed_opts o = {.seed = 1, .rows = rows};
    c = cap_run(s2, &o, &e);
    cr_assert(e.msg && strstr(e.msg, "3 rows were asked"), "%s", e.msg);
    err_release(&e);
    cap_free(c);
    val_free(rows);
    seed_schema_free(s);
    seed_schema_free(s2);
}

/* ---- encoders ---- */

static char *run_fd(const char *yaml, enum seed_format f, const struct seed_opts *o)
{
    struct seed_schema *s = load_ok(yaml);
    char *path = xasprintf("%s/out", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    struct seed_sink sink;
    struct seed_fd_sink *k = seed_fd_sink_new(fd, f, &sink);
    struct seed_opts one = {.seed = 1};
    struct err e = {0};
    cr_assert_eq(seed_generate(s, o ? o : &one, &sink, &e), 0, "%s", e.msg);
    cr_assert_eq(seed_fd_sink_free(k), 0);
    close(fd);
    char *out = tl_read(path);
    free(path);
    seed_schema_free(s);
    return out;
}

static const char *tricky = "tables:\n"
                            "  t:\n"
                            "    rows: 1\n"
                            "    columns:\n"
                            "      n: {gen: constant, value: 7}\n"
                            "      s: {gen: constant, value: \"a,\\\"b\\\"\\tc\\nd\\\\e\\r\"}\n"
                            "      z: {gen: constant, value: null}\n"
                            "      e: {gen: constant, value: \"\"}\n"
                            "      b: {gen: constant, value: true}\n"
                            "  u:\n"
                            "    rows: 1\n"
                            "    columns:\n"
                            "      x: {gen: constant, value: plain}\n";

Test(seed, csv_quotes_by_rfc4180_and_separates_tables)
{
    char *out = run_fd(tricky, SEED_CSV, NULL);
    cr_assert_str_eq(out, "n,s,z,e,b\n"
                          "7,\"a,\"\"b\"\"\tc\nd\\e\r\",,\"\",true\n"
                          "# table u\n"
                          "x\n"
                          "plain\n");
    free(out);
}

Test(seed, json_lines_type_numbers_and_escape_strings)
{
    char *out = run_fd(tricky, SEED_JSON, NULL);
    cr_assert_str_eq(out, "{\"_table\":\"t\",\"n\":7,\"s\":\"a,\\\"b\\\"\\tc\\nd\\\\e\\r\","
                          "\"z\":null,\"e\":\"\",\"b\":true}\n"
                          "{\"_table\":\"u\",\"x\":\"plain\"}\n");
    free(out);
}

Test(seed, copy_text_escapes_backslash_tab_newline_and_return)
{
    char *out = run_fd(tricky, SEED_COPY, NULL);
    cr_assert_str_eq(out, "COPY \"t\" (\"n\", \"s\", \"z\", \"e\", \"b\") FROM stdin;\n"
                          "7\ta,\"b\"\\tc\\nd\\\\e\\r\t\\N\t\ttrue\n"
                          "\\.\n"
                          "COPY \"u\" (\"x\") FROM stdin;\n"
                          "plain\n"
                          "\\.\n");
    free(out);
    struct sb b;
    sb_init(&b);
    struct seed_value v[] = {{"a\\b\tc", 5, false}, {"", 0, true}, {"x\ny\r", 4, false}};
    seed_copy_row(&b, v, 3);
    cr_assert_str_eq(b.buf, "a\\\\b\\tc\t\\N\tx\\ny\\r\n");
    sb_release(&b);
}

Test(seed, large_outputs_are_written_whole)
{
    struct seed_opts o = {.seed = 3, .rows_all = 20000};
    char *out = run_fd("tables:\n  t:\n    columns:\n      id: sequence\n      p: paragraph\n",
                       SEED_CSV, &o);
    size_t lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 20001);
    cr_assert(strstr(out, "\n20000,"));
    free(out);
}

/* ---- row counts and only ---- */

Test(seed, row_counts_come_from_the_file_the_env_or_rows_all)
{
    struct seed_schema *s = load_ok(shop);
    int c = seed_table_find(s, "customers"), p = seed_table_find(s, "products");
    cr_assert_eq(seed_table_rows(s, (size_t)c), 300);
    struct val *rows = val_map(NULL);
    val_map_set(rows, "customers", NULL, val_int(7, NULL));
    struct seed_opts o = {.seed = 1, .rows = rows};
    cr_assert_eq(seed_rows_for(s, (size_t)c, &o), 7);
    cr_assert_eq(seed_rows_for(s, (size_t)p, &o), 50);
    struct cap *cp = gen_ok(s, &o);
    cr_assert_eq(cp->tab[c].rows, 7);
    cr_assert_eq(cp->tab[p].rows, 50);
    cap_free(cp);
    o.rows_all = 3;
    cr_assert_eq(seed_rows_for(s, (size_t)c, &o), 3);
    cr_assert_eq(seed_rows_for(s, (size_t)p, &o), 3);
    val_free(rows);

    /* bad overrides name the table */
    struct err e = {0};
    const struct src *src = src_add("env.yaml", "seed_rows:\n  custmers: 5\n  products: -1\n", 37);
    struct val *doc = NULL;
    cr_assert_eq(yt_parse(&doc, src, &e), 0);
    o = (struct seed_opts){.seed = 1, .rows = val_map_get(doc, "seed_rows")};
    cap_free(cap_run(s, &o, &e));
    cr_assert(e.msg && strstr(e.msg, "unknown table 'custmers' (did you mean 'customers'?)"), "%s",
              e.msg);
    cr_assert_eq(e.pos.line, 2);
    cr_assert_eq(e.pos.col, 3);
    err_release(&e);
    val_free(val_map_take(doc, "seed_rows"));
    val_free(doc);
    seed_schema_free(s);
}

Test(seed, only_generates_the_named_tables_with_the_same_references)
{
    struct seed_schema *s = load_ok(shop);
    const char *only[] = {"orders", NULL};
    struct seed_opts all = {.seed = 9}, some = {.seed = 9, .only = only};
    struct cap *a = gen_ok(s, &all), *b = gen_ok(s, &some);
    cr_assert_eq(b->tables_begun, 1, "only orders reaches the sink");
    cr_assert_eq(b->tab[seed_table_find(s, "customers")].rows, 0);
    size_t na, nb;
    char **x = col(a, "orders", "customer_id", &na), **y = col(b, "orders", "customer_id", &nb);
    cr_assert_eq(na, nb);
    for (size_t i = 0; i < na; i++)
        cr_assert_str_eq(x[i], y[i], "row %zu differs", i);
    free(x);
    free(y);
    x = col(a, "orders", "phone", &na);
    y = col(b, "orders", "phone", &nb);
    for (size_t i = 0; i < na; i++)
        cr_assert_str_eq(x[i], y[i], "row %zu differs", i);
    free(x);
    free(y);
    cap_free(a);
    cap_free(b);

    const char *bad[] = {"order", NULL};
    struct seed_opts o = {.seed = 1, .only = bad};
    struct err e = {0};
    cap_free(cap_run(s, &o, &e));
    cr_assert(e.msg && strstr(e.msg, "unknown table 'order' (did you mean 'orders'?)"), "%s",
              e.msg);
    err_release(&e);
    const size_t *ord = seed_order(s);
    cr_assert_str_eq(seed_table_name(s, ord[2]), "orders");
    seed_schema_free(s);
}

Test(seed, a_ref_to_an_empty_table_is_an_error)
{
    struct seed_schema *s = load_ok("tables:\n"
                                    "  a:\n"
                                    "    rows: 0\n"
                                    "    columns:\n"
                                    "      id: sequence\n"
                                    "  b:\n"
                                    "    rows: 2\n"
                                    "    columns:\n"
                                    "      a_id: {gen: ref, table: a, column: id}\n");
    struct err e = {0};
    cap_free(cap_run(s, NULL, &e));
    cr_assert(e.msg && strstr(e.msg, "refers to 'a.id', which has no rows"), "%s", e.msg);
    cr_assert_eq(e.pos.line, 9);
    err_release(&e);
    seed_schema_free(s);
}

Test(seed, types_follow_generators_and_refs)
{
    struct seed_schema *s = load_ok(shop);
    int o = seed_table_find(s, "orders"), c = seed_table_find(s, "customers");
    cr_assert_eq(seed_col_type(s, (size_t)o, 0), SEED_UUID);
    cr_assert_eq(seed_col_type(s, (size_t)o, 1), SEED_INT);
    cr_assert_eq(seed_col_type(s, (size_t)o, 3), SEED_TEXT);
    cr_assert_eq(seed_col_type(s, (size_t)c, 11), SEED_BOOL);
    cr_assert_eq(seed_col_type(s, (size_t)c, 14), SEED_FLOAT);
    cr_assert_eq(seed_col_type(s, (size_t)c, 15), SEED_DATE);
    cr_assert_eq(seed_col_type(s, (size_t)c, 16), SEED_TIMESTAMP);
    seed_schema_free(s);
}

Test(seed, cancel_stops_generation)
{
    struct seed_schema *s =
        load_ok("tables:\n  t:\n    rows: 100000\n    columns:\n      id: sequence\n");
    volatile int stop = 1;
    struct seed_opts o = {.seed = 1, .cancel = &stop};
    struct err e = {0};
    struct cap *c = cap_run(s, &o, &e);
    cr_assert_eq(e.code, PE_CANCELED);
    cr_assert_lt(c->tab[0].rows, 100000);
    err_release(&e);
    cap_free(c);
    seed_schema_free(s);
}

/* ---- the preview command ---- */

Test(seed, preview_prints_rows_without_a_project)
{
    tl_write(dir, "s.yaml", shop);
    char *path = xasprintf("%s/s.yaml", dir);
    struct tl_res r = TL_PRENV(NULL, "seed", "preview", path, "--rows", "3", "--table", "products");
    cr_assert_eq(r.code, 0, "%s", r.err);
    size_t lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 4, "%s", r.out);
    cr_assert(!strncmp(r.out, "id,name,price\n1,", 16), "%s", r.out);
    struct tl_res again =
        TL_PRENV(NULL, "seed", "preview", path, "--rows", "3", "--table", "products");
    cr_assert_str_eq(r.out, again.out);
    tl_res_free(&again);
    tl_res_free(&r);

    r = TL_PRENV(NULL, "seed", "preview", path, "-f", "json", "--seed", "pr-7");
    cr_assert_eq(r.code, 0, "%s", r.err);
    lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 30, "ten rows of each of three tables");
    cr_assert(strstr(r.out, "{\"_table\":\"orders\",\"id\":\""));
    tl_res_free(&r);

    r = TL_PRENV(NULL, "seed", "preview", path, "--format", "xml");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "--format must be csv, json or copy"), "%s", r.err);
    tl_res_free(&r);
    r = TL_PRENV(NULL, "seed", "preview", path, "--table", "nope");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "unknown table 'nope'"), "%s", r.err);
    tl_res_free(&r);
    free(path);

    tl_write(dir, "bad.yaml", "tables:\n  t:\n    columns:\n      a: {gen: itn}\n");
    path = xasprintf("%s/bad.yaml", dir);
    r = TL_PRENV(NULL, "seed", "preview", path);
    cr_assert_eq(r.code, 1);
    char *want = xasprintf("%s:4:16: error: column 't.a': unknown generator 'itn' (did you mean "
                           "'int'?)",
                           path);
    cr_assert(strstr(r.err, want), "%s", r.err);
    cr_assert(strstr(r.err, "      a: {gen: itn}\n"
                            "                   ^~~"),
              "%s", r.err);
    free(want);
    tl_res_free(&r);
    free(path);
}

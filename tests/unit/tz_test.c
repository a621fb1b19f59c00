/* Unit tests for ttl/tz: TZif v1/v2/v3 files, POSIX TZ footers (including
 * Julian forms and RFC 8536's extended times), the zoneinfo root's boundary,
 * suggestions, the shared cache, and agreement with glibc's own reader for
 * every zone the system has. */
#include "core/lib/err.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "tests/testlib.h"
#include "ttl/tz.h"
#include "ttl/tz_embedded.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void fini(void)
{
    tz_free_all();
    src_free_all();
}

TestSuite(tz, .fini = fini, .timeout = 120);

static long long at(const char *iso)
{
    long long ms;
    cr_assert(tm_parse_rfc3339(iso, &ms), "bad time in test: %s", iso);
    return ms / 1000;
}

static const struct tz *zone(const char *name)
{
    const struct tz *z = NULL;
    struct err e = {0};
    int rc = tz_get(&z, name, &e);
    cr_assert_eq(rc, 0, "%s: %s", name, e.msg);
    return z;
}

/* offset at an instant, and at the second before it */
static void assert_switch(const struct tz *z, const char *iso, long before, long after)
{
    long long t = at(iso);
    cr_assert_eq(tz_offset(z, t - 1), before, "%s just before %s: %ld, expected %ld", tz_name(z),
                 iso, tz_offset(z, t - 1), before);
    cr_assert_eq(tz_offset(z, t), after, "%s at %s: %ld, expected %ld", tz_name(z), iso,
                 tz_offset(z, t), after);
}

Test(tz, utc_is_always_available_with_offset_zero)
{
    const struct tz *z = zone("UTC");
    cr_assert_str_eq(tz_name(z), "UTC");
    cr_assert_eq(tz_offset(z, 0), 0);
    cr_assert_eq(tz_offset(z, at("2026-07-01T12:00:00Z")), 0);
    cr_assert_str_eq(tz_abbr(z, 0), "UTC");
    cr_assert_eq(tz_next_transition(z, 0), LLONG_MAX);
}

Test(tz, berlin_switches_at_one_utc_on_the_last_sundays_of_march_and_october_2026)
{
    const struct tz *z = zone("Europe/Berlin");
    assert_switch(z, "2026-03-29T01:00:00Z", 3600, 7200);
    assert_switch(z, "2026-10-25T01:00:00Z", 7200, 3600);
    cr_assert_str_eq(tz_abbr(z, at("2026-07-01T00:00:00Z")), "CEST");
    cr_assert_str_eq(tz_abbr(z, at("2026-01-01T00:00:00Z")), "CET");
    cr_assert_eq(tz_next_transition(z, at("2026-03-01T00:00:00Z")), at("2026-03-29T01:00:00Z"));
    cr_assert_eq(tz_next_transition(z, at("2026-03-29T01:00:00Z")), at("2026-10-25T01:00:00Z"));
}

Test(tz, new_york_switches_on_2026_03_08_and_2026_11_01)
{
    const struct tz *z = zone("America/New_York");
    assert_switch(z, "2026-03-08T07:00:00Z", -18000, -14400);
    assert_switch(z, "2026-11-01T06:00:00Z", -14400, -18000);
}

Test(tz, etc_gmt_plus_5_is_five_hours_behind_utc)
{
    cr_assert_eq(tz_offset(zone("Etc/GMT+5"), at("2026-03-30T12:00:00Z")), -18000);
    cr_assert_eq(tz_offset(zone("Etc/GMT-14"), at("2026-03-30T12:00:00Z")), 14 * 3600);
    cr_assert_eq(tz_offset(zone("CET"), at("2026-07-01T00:00:00Z")), 7200);
}

Test(tz, kolkata_is_plus_0530_and_auckland_has_southern_summer_time)
{
    const struct tz *k = zone("Asia/Kolkata");
    cr_assert_eq(tz_offset(k, at("2026-01-15T00:00:00Z")), 19800);
    cr_assert_eq(tz_offset(k, at("2026-07-15T00:00:00Z")), 19800);
    const struct tz *a = zone("Pacific/Auckland");
    /* NZDT ends 2026-04-05 03:00 local, starts 2026-09-27 02:00 local */
    assert_switch(a, "2026-04-04T14:00:00Z", 46800, 43200);
    assert_switch(a, "2026-09-26T14:00:00Z", 43200, 46800);
    cr_assert_str_eq(tz_abbr(a, at("2026-01-01T00:00:00Z")), "NZDT");
}

Test(tz, instants_past_the_table_follow_the_footer_rule)
{
    const struct tz *b = zone("Europe/Berlin");
    /* 2300: last Sundays are March 25 and October 28; 3000: March 30, October 26 */
    assert_switch(b, "2300-03-25T01:00:00Z", 3600, 7200);
    assert_switch(b, "2300-10-28T01:00:00Z", 7200, 3600);
    assert_switch(b, "3000-03-30T01:00:00Z", 3600, 7200);
    assert_switch(b, "3000-10-26T01:00:00Z", 7200, 3600);
    cr_assert_eq(tz_next_transition(b, at("3000-01-01T00:00:00Z")), at("3000-03-30T01:00:00Z"));
    const struct tz *a = zone("Pacific/Auckland");
    cr_assert_eq(tz_offset(a, at("2999-12-31T12:00:00Z")), 46800);
    cr_assert_eq(tz_offset(a, at("3000-06-30T12:00:00Z")), 43200);
    cr_assert_str_eq(tz_abbr(b, at("3000-07-01T00:00:00Z")), "CEST");
    /* absurd instants neither crash nor overflow */
    (void)tz_offset(b, LLONG_MAX);
    (void)tz_offset(b, LLONG_MIN);
    cr_assert_eq(tz_next_transition(b, LLONG_MAX), LLONG_MAX);
}

static struct tz *posix(const char *s)
{
    struct tz *z = NULL;
    struct err e = {0};
    cr_assert_eq(tz_parse_posix(&z, s, &e), 0, "%s: %s", s, e.msg);
    return z;
}

Test(tz, posix_rules_with_month_week_day_dates)
{
    struct tz *z = posix("CET-1CEST,M3.5.0,M10.5.0/3");
    assert_switch(z, "2026-03-29T01:00:00Z", 3600, 7200);
    assert_switch(z, "2026-10-25T01:00:00Z", 7200, 3600);
    assert_switch(z, "1950-03-26T01:00:00Z", 3600, 7200); /* before the tabulated years too */
    cr_assert_str_eq(tz_abbr(z, at("2026-07-01T00:00:00Z")), "CEST");
    tz_free(z);
    z = posix("EST5EDT,M3.2.0,M11.1.0");
    assert_switch(z, "2026-03-08T07:00:00Z", -18000, -14400);
    assert_switch(z, "2026-11-01T06:00:00Z", -14400, -18000);
    tz_free(z);
    z = posix("EST5EDT"); /* no rule given: the US rule */
    assert_switch(z, "2026-03-08T07:00:00Z", -18000, -14400);
    tz_free(z);
    z = posix("NZST-12NZDT,M9.5.0,M4.1.0/3");
    assert_switch(z, "2026-04-04T14:00:00Z", 46800, 43200);
    assert_switch(z, "2026-09-26T14:00:00Z", 43200, 46800);
    tz_free(z);
}

Test(tz, posix_rules_with_quoted_names_and_fractional_offsets)
{
    struct tz *z = posix("<+0530>-5:30");
    cr_assert_eq(tz_offset(z, at("2026-07-01T00:00:00Z")), 19800);
    cr_assert_str_eq(tz_abbr(z, 0), "+0530");
    cr_assert_eq(tz_next_transition(z, 0), LLONG_MAX);
    tz_free(z);
    z = posix("<+0545>-5:45");
    cr_assert_eq(tz_offset(z, 0), 5 * 3600 + 45 * 60);
    tz_free(z);
    z = posix("<-0330>3:30<-0230>,M3.2.0,M11.1.0");
    cr_assert_eq(tz_offset(z, at("2026-01-01T00:00:00Z")), -12600);
    cr_assert_eq(tz_offset(z, at("2026-07-01T00:00:00Z")), -9000);
    tz_free(z);
}

Test(tz, julian_day_forms_differ_on_february_29)
{
    /* J60 is March 1 in every year; 59 (zero-based) is Feb 29 in a leap year */
    struct tz *j = posix("XXX3YYY,J60/0,J300/0");
    struct tz *n = posix("XXX3YYY,59/0,299/0");
    /* 2028 is a leap year: J60 = March 1, 59 = February 29 */
    assert_switch(j, "2028-03-01T03:00:00Z", -10800, -7200);
    assert_switch(n, "2028-02-29T03:00:00Z", -10800, -7200);
    /* 2026 is not: both are March 1 */
    assert_switch(j, "2026-03-01T03:00:00Z", -10800, -7200);
    assert_switch(n, "2026-03-01T03:00:00Z", -10800, -7200);
    /* J300 is October 27 in any year; 299 is October 26 in a leap year */
    assert_switch(j, "2028-10-27T02:00:00Z", -7200, -10800);
    assert_switch(n, "2028-10-26T02:00:00Z", -7200, -10800);
    tz_free(j);
    tz_free(n);
}

Test(tz, rfc8536_extended_rule_times)
{
    /* Greenland since 2023: times before midnight and negative */
    struct tz *z = posix("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
    assert_switch(z, "2026-03-29T01:00:00Z", -7200, -3600);
    assert_switch(z, "2026-10-25T01:00:00Z", -3600, -7200);
    tz_free(z);
    /* daylight saving all year */
    z = posix("EST5EDT,0/0,J365/25");
    cr_assert_eq(tz_offset(z, at("2026-01-01T05:00:00Z")), -14400);
    cr_assert_eq(tz_offset(z, at("2026-07-01T00:00:00Z")), -14400);
    cr_assert_eq(tz_offset(z, at("2026-12-31T23:59:59Z")), -14400);
    cr_assert_eq(tz_offset(z, at("2300-12-31T23:59:59Z")), -14400);
    cr_assert_eq(tz_next_transition(z, at("2300-01-01T00:00:00Z")), LLONG_MAX);
    tz_free(z);
    /* hours up to 167 */
    z = posix("AAA3BBB,M3.1.0/167,M10.1.0/-167");
    tz_free(z);
}

Test(tz, invalid_posix_strings_are_errors)
{
    static const char *const bad[] = {"",
                                      "C",
                                      "CET",
                                      "CET-1CEST,",
                                      "CET-1CEST,M3.5",
                                      "CET-1CEST,M13.1.0,M10.5.0",
                                      "CET-1CEST,M3.6.0,M10.5.0",
                                      "CET-1CEST,M3.5.7,M10.5.0",
                                      "CET-1CEST,J0,J100",
                                      "CET-1CEST,J366,J100",
                                      "CET-25",
                                      "<+05",
                                      "<>5",
                                      "CET-1CEST,M3.5.0/168,M10.5.0",
                                      "CET-1CEST,M3.5.0,M10.5.0 junk",
                                      NULL};
    for (size_t i = 0; bad[i]; i++) {
        struct tz *z = NULL;
        struct err e = {0};
        cr_assert_neq(tz_parse_posix(&z, bad[i], &e), 0, "accepted '%s'", bad[i]);
        cr_assert_null(z);
        cr_assert(strstr(e.msg, "invalid POSIX TZ string"), "%s", e.msg);
        err_release(&e);
    }
}

/* ---- hand-built TZif files -------------------------------------------------- */

struct tb {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct tb *b, const void *d, size_t n)
{
    XGROW(b->p, b->cap, b->n + n);
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void p8(struct tb *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}

static void p32(struct tb *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    put(b, c, 4);
}

static void p64(struct tb *b, uint64_t v)
{
    p32(b, (uint32_t)(v >> 32));
    p32(b, (uint32_t)v);
}

struct ty {
    int32_t off;
    uint8_t dst, abbr;
};

struct blk {
    size_t nt;
    const long long *t;
    const uint8_t *idx;
    size_t ntypes;
    const struct ty *types;
    const char *chars;
    size_t nchars;
};

static void header(struct tb *b, char ver, const struct blk *k)
{
    put(b, "TZif", 4);
    p8(b, (unsigned char)ver);
    for (int i = 0; i < 15; i++)
        p8(b, 0);
    p32(b, 0); /* isut */
    p32(b, 0); /* isstd */
    p32(b, 0); /* leap */
    p32(b, (uint32_t)k->nt);
    p32(b, (uint32_t)k->ntypes);
    p32(b, (uint32_t)k->nchars);
}

static void block(struct tb *b, int tsize, const struct blk *k)
{
    for (size_t i = 0; i < k->nt; i++) {
        if (tsize == 8)
            p64(b, (uint64_t)k->t[i]);
        else
            p32(b, (uint32_t)(int32_t)k->t[i]);
    }
    for (size_t i = 0; i < k->nt; i++)
        p8(b, k->idx[i]);
    for (size_t i = 0; i < k->ntypes; i++) {
        p32(b, (uint32_t)k->types[i].off);
        p8(b, k->types[i].dst);
        p8(b, k->types[i].abbr);
    }
    put(b, k->chars, k->nchars);
}

/* a version 2+ file whose 32-bit block is deliberately different (a reader
 * that used it would get offset 12345) */
static struct tb v2file(char ver, const struct blk *k, const char *footer)
{
    struct tb b = {0};
    static const struct ty bogus = {12345, 0, 0};
    struct blk v1 = {0, NULL, NULL, 1, &bogus, "BOG", 4};
    header(&b, ver, &v1);
    block(&b, 4, &v1);
    header(&b, ver, k);
    block(&b, 8, k);
    p8(&b, '\n');
    put(&b, footer, strlen(footer));
    p8(&b, '\n');
    return b;
}

static struct tz *parse_file(const struct tb *b)
{
    struct tz *z = NULL;
    struct err e = {0};
    cr_assert_eq(tz_parse_tzif(&z, "Test/Zone", b->p, b->n, &e), 0, "%s", e.msg);
    return z;
}

Test(tz, version_1_files_use_the_32_bit_data)
{
    static const long long t[] = {0, 100000000};
    static const uint8_t idx[] = {1, 0};
    static const struct ty types[] = {{3600, 0, 0}, {7200, 1, 4}};
    struct blk k = {2, t, idx, 2, types, "AAA\0BBB", 8};
    struct tb b = {0};
    header(&b, 0, &k);
    block(&b, 4, &k);
    struct tz *z = parse_file(&b);
    cr_assert_eq(tz_offset(z, -1), 3600);
    cr_assert_eq(tz_offset(z, 0), 7200);
    cr_assert_str_eq(tz_abbr(z, 0), "BBB");
    cr_assert_eq(tz_offset(z, 99999999), 7200);
    cr_assert_eq(tz_offset(z, 100000000), 3600);
    cr_assert_eq(tz_offset(z, at("2300-01-01T00:00:00Z")), 3600);
    cr_assert_eq(tz_next_transition(z, -5), 0);
    cr_assert_eq(tz_next_transition(z, 100000000), LLONG_MAX);
    tz_free(z);
    free(b.p);
}

Test(tz, version_2_files_use_the_64_bit_data_and_the_footer)
{
    /* the first transition is before 1901, which only 64-bit data can hold */
    static const long long t[] = {-5000000000LL, 0};
    static const uint8_t idx[] = {1, 0};
    static const struct ty types[] = {{-18000, 0, 0}, {-14400, 1, 4}};
    struct blk k = {2, t, idx, 2, types, "EST\0EDT", 8};
    struct tb b = v2file('2', &k, "EST5EDT,M3.2.0,M11.1.0");
    struct tz *z = parse_file(&b);
    cr_assert_eq(tz_offset(z, -5000000001LL), -18000);
    cr_assert_eq(tz_offset(z, -5000000000LL), -14400);
    cr_assert_eq(tz_offset(z, 0), -18000);
    assert_switch(z, "2026-03-08T07:00:00Z", -18000, -14400);
    assert_switch(z, "2026-11-01T06:00:00Z", -14400, -18000);
    assert_switch(z, "2500-03-14T07:00:00Z", -18000, -14400);
    cr_assert_str_eq(tz_abbr(z, at("2026-07-01T00:00:00Z")), "EDT");
    tz_free(z);
    free(b.p);
}

Test(tz, version_3_files_with_extended_footer_times)
{
    static const long long t[] = {0};
    static const uint8_t idx[] = {0};
    static const struct ty types[] = {{-7200, 0, 0}};
    struct blk k = {1, t, idx, 1, types, "-02\0", 4};
    struct tb b = v2file('3', &k, "<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
    struct tz *z = parse_file(&b);
    assert_switch(z, "2026-03-29T01:00:00Z", -7200, -3600);
    assert_switch(z, "2026-10-25T01:00:00Z", -3600, -7200);
    cr_assert_str_eq(tz_abbr(z, at("2026-07-01T00:00:00Z")), "-01");
    tz_free(z);
    free(b.p);
    /* a file with no transitions at all: the footer governs everything */
    struct blk k0 = {0, NULL, NULL, 1, types, "-02\0", 4};
    b = v2file('3', &k0, "EST5EDT,0/0,J365/25");
    z = parse_file(&b);
    cr_assert_eq(tz_offset(z, at("1800-01-01T12:00:00Z")), -14400);
    cr_assert_eq(tz_offset(z, at("2026-01-01T12:00:00Z")), -14400);
    tz_free(z);
    free(b.p);
}

Test(tz, truncated_or_corrupted_files_are_errors_not_crashes)
{
    char *path =
        xasprintf("%s/Europe/Berlin", getenv("TZDIR") ? getenv("TZDIR") : "/usr/share/zoneinfo");
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    unsigned char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    free(path);
    struct tz *z = NULL;
    struct err e = {0};
    cr_assert_eq(tz_parse_tzif(&z, "Europe/Berlin", buf, n, &e), 0, "%s", e.msg);
    tz_free(z);
    /* every prefix: either an error or a zone, never a crash (ASan watches) */
    for (size_t len = 0; len < n; len++) {
        z = NULL;
        if (tz_parse_tzif(&z, "Europe/Berlin", buf, len, &e) == 0) {
            (void)tz_offset(z, at("2026-07-01T00:00:00Z"));
            tz_free(z);
        } else {
            cr_assert(e.msg && strstr(e.msg, "time zone 'Europe/Berlin'"), "%s", e.msg);
        }
        err_release(&e);
    }
    /* random byte flips */
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    unsigned char c[65536];
    for (int round = 0; round < 3000; round++) {
        memcpy(c, buf, n);
        for (int k = 0; k < 4; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            c[x % n] = (unsigned char)(x >> 32);
        }
        z = NULL;
        if (tz_parse_tzif(&z, "Europe/Berlin", c, n, &e) == 0) {
            (void)tz_offset(z, (long long)(x % 4000000000ULL));
            (void)tz_next_transition(z, 0);
            tz_free(z);
        }
        err_release(&e);
    }
    const char junk[] = "TZif2 but not really";
    cr_assert_neq(tz_parse_tzif(&z, "X", junk, sizeof junk, &e), 0);
    cr_assert(strstr(e.msg, "'X'"), "%s", e.msg);
    err_release(&e);
}

/* ---- names, files and the root ----------------------------------------------- */

static void assert_refused(const char *name, const char *why)
{
    const struct tz *z = NULL;
    struct err e = {0};
    cr_assert_neq(tz_get(&z, name, &e), 0, "'%s' was accepted", name);
    cr_assert_null(z);
    cr_assert_eq(e.code, PE_CONFIG);
    cr_assert(strstr(e.msg, why), "'%s': %s", name, e.msg);
    err_release(&e);
}

Test(tz, names_that_leave_the_zoneinfo_root_are_refused)
{
    assert_refused("../../etc/passwd", "invalid time zone name");
    assert_refused("/etc/passwd", "invalid time zone name");
    assert_refused("Europe/../../../etc/passwd", "invalid time zone name");
    assert_refused("./UTC", "invalid time zone name");
    assert_refused("Europe//Berlin", "invalid time zone name");
    assert_refused("Europe/Berlin/", "invalid time zone name");
    assert_refused("Europe/Ber lin", "invalid time zone name");
    assert_refused("", "invalid time zone name");
}

Test(tz, a_symlink_out_of_tzdir_is_refused_and_one_inside_is_followed)
{
    char *dir = tl_tmpdir("tz");
    char *root = xasprintf("%s/root", dir), *outside = xasprintf("%s/outside", dir);
    cr_assert_eq(mkdir(root, 0755), 0);
    cr_assert_eq(mkdir(outside, 0755), 0);
    /* root/Real and outside/Berlin are copies of the real file */
    FILE *in = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
    char *real = xasprintf("%s/Real", root), *out = xasprintf("%s/Berlin", outside);
    unsigned char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    FILE *w1 = fopen(real, "wb"), *w2 = fopen(out, "wb");
    fwrite(buf, 1, n, w1);
    fwrite(buf, 1, n, w2);
    fclose(w1);
    fclose(w2);
    char *evil = xasprintf("%s/Evil", root), *alias = xasprintf("%s/Alias", root);
    cr_assert_eq(symlink(out, evil), 0);
    cr_assert_eq(symlink("Real", alias), 0);
    setenv("TZDIR", root, 1);
    assert_refused("Evil", "leads outside");
    const struct tz *z = zone("Alias");
    cr_assert_eq(tz_offset(z, at("2026-07-01T00:00:00Z")), 7200);
    cr_assert_str_eq(tz_name(z), "Alias");
    /* UTC works even where the directory has no such file */
    cr_assert_eq(tz_offset(zone("UTC"), 0), 0);
    unsetenv("TZDIR");
    tz_free_all();
    unlink(evil);
    unlink(alias);
    unlink(real);
    unlink(out);
    rmdir(root);
    rmdir(outside);
    rmdir(dir);
    free(evil);
    free(alias);
    free(real);
    free(out);
    free(root);
    free(outside);
    free(dir);
}

Test(tz, without_tzdata_zones_come_from_the_built_in_table)
{
    setenv("TZDIR", "/nonexistent/zoneinfo", 1);
    cr_assert_eq(tz_offset(zone("UTC"), 12345), 0);
    const struct tz *z = zone("Europe/Berlin");
    cr_assert_str_eq(tz_name(z), "Europe/Berlin");
    cr_assert_eq(tz_offset(z, at("2026-01-15T12:00:00Z")), 3600);
    cr_assert_eq(tz_offset(z, at("2026-07-01T00:00:00Z")), 7200);
    cr_assert_str_eq(tz_abbr(z, at("2026-07-01T00:00:00Z")), "CEST");
    assert_switch(z, "2026-03-29T01:00:00Z", 3600, 7200);
    cr_assert_eq(tz_next_transition(z, at("2026-04-01T00:00:00Z")), at("2026-10-25T01:00:00Z"));
    /* far beyond the table the footer's rule still holds */
    assert_switch(z, "2300-03-25T01:00:00Z", 3600, 7200);
    /* a link is there too */
    cr_assert_eq(tz_offset(zone("Asia/Calcutta"), at("2026-01-01T00:00:00Z")), 19800);

    const struct tz *none = NULL;
    struct err e = {0};
    cr_assert_neq(tz_get(&none, "Europe/Berln", &e), 0);
    cr_assert_str_eq(e.msg, "unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)");
    cr_assert(e.hint && strstr(e.hint, "/nonexistent/zoneinfo has none") &&
                  strstr(e.hint, "built-in table"),
              "%s", e.hint);
    err_release(&e);
    unsetenv("TZDIR");
}

Test(tz, the_built_in_table_agrees_with_the_system_from_1970_on)
{
    cr_assert_gt(tz_embedded_count, 300, "only %zu zones built in", tz_embedded_count);
    long long from = at("1970-01-01T00:00:00Z"), to = at("2100-01-01T00:00:00Z");
    for (size_t i = 0; i < tz_embedded_count; i++) {
        const struct tz_embedded *te = &tz_embedded_zones[i];
        if (i)
            cr_assert_lt(strcmp(tz_embedded_zones[i - 1].name, te->name), 0, "not sorted at %s",
                         te->name);
        struct tz *mine = NULL, *sys = NULL;
        struct err e = {0};
        cr_assert_eq(tz_parse_tzif(&mine, te->name, tz_embedded_data + te->off, te->len, &e), 0,
                     "%s: %s", te->name, e.msg);
        char *path = xasprintf("/usr/share/zoneinfo/%s", te->name);
        FILE *f = fopen(path, "rb");
        cr_assert(f, "%s", path);
        static unsigned char buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        cr_assert_eq(tz_parse_tzif(&sys, te->name, buf, n, &e), 0, "%s: %s", te->name, e.msg);
        /* every transition of either, and a sample every 5 days */
        for (long long t = from; t < to;) {
            cr_assert_eq(tz_offset(mine, t), tz_offset(sys, t), "%s at %lld", te->name, t);
            cr_assert_str_eq(tz_abbr(mine, t), tz_abbr(sys, t), "%s at %lld", te->name, t);
            long long next = t + 5 * 86400, a = tz_next_transition(mine, t),
                      b = tz_next_transition(sys, t);
            cr_assert_eq(a, b, "%s: next transition after %lld", te->name, t);
            t = a < next ? a : next;
        }
        tz_free(mine);
        tz_free(sys);
        free(path);
    }
}

Test(tz, unknown_zones_suggest_the_nearest_name)
{
    const struct tz *z = NULL;
    struct err e = {0};
    cr_assert_neq(tz_get(&z, "Europe/Berln", &e), 0);
    cr_assert_str_eq(e.msg, "unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)");
    err_release(&e);
    cr_assert_neq(tz_get(&z, "europe/berlin", &e), 0);
    cr_assert_str_eq(e.msg, "unknown time zone 'europe/berlin' (did you mean 'Europe/Berlin'?)");
    err_release(&e);
    cr_assert_neq(tz_get(&z, "Nowhere/Zone", &e), 0);
    cr_assert_str_eq(e.msg, "unknown time zone 'Nowhere/Zone'");
    err_release(&e);
    cr_assert_neq(tz_get(&z, "Europe", &e), 0); /* a directory */
    cr_assert(strstr(e.msg, "unknown time zone 'Europe'"), "%s", e.msg);
    err_release(&e);
    cr_assert_neq(tz_get(&z, "zone.tab", &e), 0); /* a file that is not TZif */
    cr_assert(strstr(e.msg, "not a TZif file"), "%s", e.msg);
    err_release(&e);
}

Test(tz, leap_second_zones_are_refused)
{
    assert_refused("right/UTC", "leap seconds");
}

struct th {
    const struct tz *got[4];
};

static void *grab(void *arg)
{
    struct th *t = arg;
    static const char *const names[] = {"Europe/Berlin", "Asia/Kolkata", "America/New_York",
                                        "Pacific/Auckland"};
    for (int r = 0; r < 50; r++)
        for (int i = 0; i < 4; i++) {
            const struct tz *z = NULL;
            if (tz_get(&z, names[i], NULL))
                return NULL;
            if (t->got[i] && t->got[i] != z)
                return NULL;
            t->got[i] = z;
            (void)tz_offset(z, 1700000000LL + r * 3600);
        }
    return t;
}

Test(tz, the_cache_is_shared_by_threads)
{
    pthread_t th[8];
    struct th res[8];
    memset(res, 0, sizeof res);
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, grab, &res[i]);
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(th[i], &r);
        cr_assert_not_null(r, "thread %d saw two different zones or a failure", i);
    }
    for (int i = 1; i < 8; i++)
        cr_assert(!memcmp(res[0].got, res[i].got, sizeof res[0].got));
}

Test(tz, civil_dates_round_trip)
{
    for (long long d = -800000; d < 800000; d += 13) {
        long long y;
        int m, dd;
        tz_civil_from_days(d, &y, &m, &dd);
        cr_assert(tz_valid_date(y, m, dd));
        cr_assert_eq(tz_days_from_civil(y, m, dd), d);
    }
    cr_assert(tz_valid_date(2028, 2, 29));
    cr_assert(!tz_valid_date(2026, 2, 29));
    cr_assert(!tz_valid_date(2100, 2, 29));
    cr_assert(tz_valid_date(2000, 2, 29));
    struct tz_civil c;
    tz_civil(zone("Europe/Berlin"), at("2026-03-29T01:00:00Z"), &c);
    cr_assert_eq(c.year, 2026);
    cr_assert_eq(c.hour, 3);
    cr_assert_eq(c.wday, 6); /* Sunday */
    struct sb b;
    sb_init(&b);
    tz_format(&b, zone("Asia/Kolkata"), at("2026-03-30T03:30:00Z"));
    cr_assert_str_eq(b.buf, "2026-03-30T09:00:00+05:30");
    sb_reset(&b);
    tz_format(&b, zone("America/New_York"), at("2026-11-01T06:30:00Z"));
    cr_assert_str_eq(b.buf, "2026-11-01T01:30:00-05:00");
    sb_release(&b);
}

Test(tz, next_transition_visits_every_change_and_nothing_changes_between)
{
    static const char *const names[] = {"Europe/Berlin",
                                        "Pacific/Auckland",
                                        "Australia/Lord_Howe",
                                        "Africa/Casablanca",
                                        "America/Santiago",
                                        "America/Nuuk",
                                        NULL};
    for (size_t i = 0; names[i]; i++) {
        const struct tz *z = zone(names[i]);
        long long t = at("1990-01-01T00:00:00Z"), end = at("2260-01-01T00:00:00Z");
        int steps = 0;
        while (t < end && steps < 5000) {
            long long nx = tz_next_transition(z, t);
            if (nx == LLONG_MAX)
                break;
            cr_assert_gt(nx, t);
            /* constant on [t+1, nx): sample a few points */
            long off = tz_offset(z, t + 1 < nx ? t + 1 : t);
            for (int k = 1; k <= 4; k++) {
                long long s = t + 1 + (nx - t - 1) * k / 5;
                if (s > t && s < nx)
                    cr_assert_eq(tz_offset(z, s), off, "%s changes before its next transition",
                                 names[i]);
            }
            t = nx;
            steps++;
        }
        cr_assert_gt(steps, 0);
    }
}

/* glibc reads the same files with its own code: for every zone the system
 * lists, both must agree, instant by instant (the test may set TZ; prenv
 * never does) */
Test(tz, offsets_agree_with_glibc_for_every_zone)
{
    char *text = tl_read("/usr/share/zoneinfo/tzdata.zi");
    cr_assert_not_null(text);
    int zones = 0;
    uint64_t x = 88172645463325252ULL;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *name = NULL;
        if (line[0] == 'Z' && line[1] == ' ')
            name = line + 2;
        else if (line[0] == 'L' && line[1] == ' ' && strchr(line + 2, ' '))
            name = strchr(line + 2, ' ') + 1;
        if (!name)
            continue;
        name[strcspn(name, " ")] = 0;
        const struct tz *z = zone(name);
        char *tzv = xasprintf(":%s", name);
        setenv("TZ", tzv, 1);
        tzset();
        free(tzv);
        for (int k = 0; k < 400; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* 1970 .. 2150, and points near this zone's transitions */
            long long t = (long long)(x % 5680000000ULL);
            if (k % 2) {
                long long nx = tz_next_transition(z, t);
                if (nx != LLONG_MAX && nx < 5680000000LL)
                    t = nx - (k % 4 == 1 ? 1 : 0);
            }
            time_t tt = (time_t)t;
            struct tm tm;
            localtime_r(&tt, &tm);
            cr_assert_eq(tz_offset(z, t), tm.tm_gmtoff, "%s at %lld: prenv %ld, glibc %ld", name, t,
                         tz_offset(z, t), (long)tm.tm_gmtoff);
        }
        zones++;
    }
    free(text);
    cr_assert_gt(zones, 400);
}

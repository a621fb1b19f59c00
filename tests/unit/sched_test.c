/* Unit tests for ttl/sched: the case table (bench/schedule.sh reads the rows
 * of `cases` too), exact error positions, next transitions, DST days in both
 * directions, policies with holidays, a property test against a brute-force
 * evaluator that computes wall-clock time itself from tz_offset alone, and the
 * `prenv schedule` commands through the built binary. */
#include "core/lib/err.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/val.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "tests/testlib.h"
#include "ttl/sched.h"
#include "ttl/tz.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fini(void)
{
    tz_free_all();
    src_free_all();
}

TestSuite(sched, .fini = fini, .timeout = 300);

static long long ms_at(const char *iso)
{
    long long ms;
    cr_assert(tm_parse_rfc3339(iso, &ms), "bad time in test: %s", iso);
    return ms;
}

static struct sched *parse_ok(const char *spec)
{
    struct sched *s = NULL;
    struct err e = {0};
    int rc = sched_parse(&s, spec, NULL, &e);
    cr_assert_eq(rc, 0, "'%s': %s (column %d)", spec, e.msg, e.pos.col);
    return s;
}

static char *iso(long long ms)
{
    if (ms == LLONG_MAX)
        return xstrdup("never");
    struct sb b;
    sb_init(&b);
    tm_rfc3339(&b, ms);
    return sb_steal(&b);
}

/* ---- the case table ----------------------------------------------------------
 * One row per line, {"SPEC", "TIME", IN|OUT}: bench/schedule.sh reads them. */
/* clang-format off */

enum { OUT = 0, IN = 1 };

static const struct {
    const char *spec, *at;
    int in;
} cases[] = {
    /* the done-when pair */
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-30T07:30:00Z", IN},
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-29T07:30:00Z", OUT},
    /* [start, end) in wall-clock time, in winter and in summer */
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-30T05:59:59Z", OUT},
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-30T06:00:00Z", IN},
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-30T15:59:59Z", IN},
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-30T16:00:00Z", OUT},
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-27T06:59:59Z", OUT},
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-27T07:00:00Z", IN},
    {"Mon-Fri 15:30-16:00 UTC", "2026-03-30T15:59:59Z", IN},
    {"Mon-Fri 15:30-16:00 UTC", "2026-03-30T16:00:00Z", OUT},
    /* weekday ranges that wrap, and single days */
    {"Sat-Mon 10:00-12:00 UTC", "2026-03-27T11:00:00Z", OUT},
    {"Sat-Mon 10:00-12:00 UTC", "2026-03-28T11:00:00Z", IN},
    {"Sat-Mon 10:00-12:00 UTC", "2026-03-29T11:00:00Z", IN},
    {"Sat-Mon 10:00-12:00 UTC", "2026-03-30T11:00:00Z", IN},
    {"Sat-Mon 10:00-12:00 UTC", "2026-03-31T11:00:00Z", OUT},
    {"Fri-Tue 00:00-24:00 UTC", "2026-04-01T12:00:00Z", OUT},
    {"Fri-Tue 00:00-24:00 UTC", "2026-03-31T23:59:59Z", IN},
    {"Mon-Mon 09:00-10:00 UTC", "2026-03-30T09:30:00Z", IN},
    {"Mon-Mon 09:00-10:00 UTC", "2026-03-31T09:30:00Z", OUT},
    {"Wed 09:00-10:00 UTC", "2026-04-01T09:00:00Z", IN},
    /* the weekday is the zone's, not UTC's */
    {"Mon 00:00-01:00 Pacific/Auckland", "2026-03-29T11:30:00Z", IN},
    {"Sun 00:00-24:00 UTC", "2026-03-29T11:30:00Z", IN},
    /* 24:00 ends a day */
    {"Mon-Fri 18:00-24:00 UTC", "2026-03-30T23:59:59Z", IN},
    {"Mon-Fri 18:00-24:00 UTC", "2026-03-31T00:00:00Z", OUT},
    {"Fri 18:00-24:00 UTC", "2026-03-28T00:00:00Z", OUT},
    {"Mon-Sun 00:00-24:00 UTC", "2026-03-29T03:04:05Z", IN},
    /* empty ranges never match */
    {"Mon-Mon 00:00-00:00 UTC", "2026-03-30T00:00:00Z", OUT},
    {"Mon-Fri 08:00-08:00 UTC", "2026-03-30T08:00:00Z", OUT},
    {"2026-03-30T08:00:00Z-2026-03-30T08:00:00Z", "2026-03-30T08:00:00Z", OUT},
    /* lists mean any of */
    {"Sat 10:00-11:00 UTC, Mon-Fri 08:00-09:00 Europe/Berlin", "2026-03-28T10:30:00Z", IN},
    {"Sat 10:00-11:00 UTC, Mon-Fri 08:00-09:00 Europe/Berlin", "2026-03-30T06:30:00Z", IN},
    {"Sat 10:00-11:00 UTC, Mon-Fri 08:00-09:00 Europe/Berlin", "2026-03-30T07:30:00Z", OUT},
    {"  Mon-Fri   08:00-18:00   UTC , Sat 10:00-11:00 UTC ", "2026-03-30T08:00:00Z", IN},
    {"Mon-Fri 08:00-18:00 UTC, 2026-12-24T00:00:00+01:00-2026-12-27T00:00:00+01:00", "2026-12-26T10:00:00Z", IN},
    /* absolute ranges with offsets, [start, end) */
    {"2026-12-24T00:00:00+01:00-2026-12-27T00:00:00+01:00", "2026-12-23T22:59:59Z", OUT},
    {"2026-12-24T00:00:00+01:00-2026-12-27T00:00:00+01:00", "2026-12-23T23:00:00Z", IN},
    {"2026-12-24T00:00:00+01:00-2026-12-27T00:00:00+01:00", "2026-12-26T22:59:59Z", IN},
    {"2026-12-24T00:00:00+01:00-2026-12-27T00:00:00+01:00", "2026-12-26T23:00:00Z", OUT},
    {"2026-07-01T09:00:00-05:00-2026-07-01T17:00:00-0500", "2026-07-01T13:59:59Z", OUT},
    {"2026-07-01T09:00:00-05:00-2026-07-01T17:00:00-0500", "2026-07-01T14:00:00Z", IN},
    {"2026-07-01T09:00:00-05:00-2026-07-01T17:00:00-0500", "2026-07-01T22:00:00Z", OUT},
    {"2026-01-01T00:00:00Z-2026-01-02T00:00:00Z", "2026-01-01T12:00:00Z", IN},
    {"2026-01-01T05:30:00+05:30-2026-01-01T06:00:00+05:30", "2026-01-01T00:00:00Z", IN},
    /* zones far from UTC */
    {"Mon-Fri 09:00-17:30 Asia/Kolkata", "2026-03-30T03:29:59Z", OUT},
    {"Mon-Fri 09:00-17:30 Asia/Kolkata", "2026-03-30T03:30:00Z", IN},
    {"Mon-Fri 09:00-17:30 Asia/Kolkata", "2026-03-30T11:59:59Z", IN},
    {"Mon-Fri 09:00-17:30 Asia/Kolkata", "2026-03-30T12:00:00Z", OUT},
    {"Mon-Fri 08:00-17:00 Pacific/Auckland", "2026-03-29T19:00:00Z", IN},
    {"Mon-Fri 08:00-17:00 Pacific/Auckland", "2026-04-05T19:30:00Z", OUT},
    {"Mon-Fri 08:00-17:00 Pacific/Auckland", "2026-04-05T20:00:00Z", IN},
    {"Mon-Fri 08:00-17:00 Etc/GMT+5", "2026-03-30T12:59:59Z", OUT},
    {"Mon-Fri 08:00-17:00 Etc/GMT+5", "2026-03-30T13:00:00Z", IN},
    {"Mon 00:00-01:00 Etc/GMT-14", "2026-03-29T10:30:00Z", IN},
    {"Mon-Fri 08:00-17:00 America/Port-au-Prince", "2026-03-30T14:00:00Z", IN},
    {"Mon-Fri 08:00-17:00 CET", "2026-03-30T06:00:00Z", IN},
    /* Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST */
    {"Sun 02:00-03:00 Europe/Berlin", "2026-03-29T00:59:59Z", OUT},
    {"Sun 02:00-03:00 Europe/Berlin", "2026-03-29T01:00:00Z", OUT},
    {"Sun 01:00-03:00 Europe/Berlin", "2026-03-29T00:30:00Z", IN},
    {"Sun 01:00-03:00 Europe/Berlin", "2026-03-29T01:00:00Z", OUT},
    {"Sun 02:30-04:00 Europe/Berlin", "2026-03-29T01:00:00Z", IN},
    /* Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET */
    {"Sun 02:00-03:00 Europe/Berlin", "2026-10-24T23:59:59Z", OUT},
    {"Sun 02:00-03:00 Europe/Berlin", "2026-10-25T00:30:00Z", IN},
    {"Sun 02:00-03:00 Europe/Berlin", "2026-10-25T01:30:00Z", IN},
    {"Sun 02:00-03:00 Europe/Berlin", "2026-10-25T02:00:00Z", OUT},
    /* America/New_York, 2026-03-08 and 2026-11-01 */
    {"Sun 02:00-03:00 America/New_York", "2026-03-08T06:59:59Z", OUT},
    {"Sun 02:00-03:00 America/New_York", "2026-03-08T07:00:00Z", OUT},
    {"Sun 01:00-02:00 America/New_York", "2026-11-01T04:59:59Z", OUT},
    {"Sun 01:00-02:00 America/New_York", "2026-11-01T05:00:00Z", IN},
    {"Sun 01:00-02:00 America/New_York", "2026-11-01T06:30:00Z", IN},
    {"Sun 01:00-02:00 America/New_York", "2026-11-01T07:00:00Z", OUT},
    /* overnight windows: from each listed evening to the next morning */
    {"Mon-Fri 22:00-06:00 UTC", "2026-03-30T03:00:00Z", OUT},
    {"Mon-Fri 22:00-06:00 UTC", "2026-03-30T23:00:00Z", IN},
    {"Mon-Fri 22:00-06:00 UTC", "2026-03-31T05:59:59Z", IN},
    {"Mon-Fri 22:00-06:00 UTC", "2026-03-31T06:00:00Z", OUT},
    {"Mon-Fri 22:00-06:00 UTC", "2026-03-28T03:00:00Z", IN},
    {"Mon-Fri 22:00-06:00 UTC", "2026-03-28T22:30:00Z", OUT},
    {"Mon-Fri 22:00-06:00 UTC", "2026-03-29T23:00:00Z", OUT},
    {"Sun 22:00-06:00 UTC", "2026-03-30T05:00:00Z", IN},
    {"Sat-Sun 20:00-08:00 Europe/Berlin", "2026-03-30T05:30:00Z", IN},
    {"Sat-Sun 20:00-08:00 Europe/Berlin", "2026-03-30T06:00:00Z", OUT},
    {"Sat 22:00-06:00 Europe/Berlin", "2026-03-28T20:59:59Z", OUT},
    {"Sat 22:00-06:00 Europe/Berlin", "2026-03-28T21:00:00Z", IN},
    {"Sat 22:00-06:00 Europe/Berlin", "2026-03-29T03:59:59Z", IN},
    {"Sat 22:00-06:00 Europe/Berlin", "2026-03-29T04:00:00Z", OUT},
    {"Mon-Fri 11:36-00:00 UTC", "2026-03-30T23:00:00Z", IN},
    /* always, never */
    {"always", "2026-03-29T07:30:00Z", IN},
    {"never", "2026-03-29T07:30:00Z", OUT},
    {"Always", "1970-01-01T00:00:00Z", IN},
    /* far future: the zone's footer rule */
    {"Sun 02:00-03:00 Europe/Berlin", "2300-10-28T00:30:00Z", IN},
    {"Sun 02:00-03:00 Europe/Berlin", "2300-10-28T01:30:00Z", IN},
    {"Sun 02:00-03:00 Europe/Berlin", "2300-03-25T01:00:00Z", OUT},
};
/* clang-format on */

Test(sched, the_case_table)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sched *s = parse_ok(cases[i].spec);
        bool got = sched_match(s, ms_at(cases[i].at));
        cr_expect_eq(got, (bool)cases[i].in, "'%s' at %s: got %s", cases[i].spec, cases[i].at,
                     got ? "inside" : "outside");
        sched_free(s);
    }
}

/* ---- invalid specs: the exact column of the offending character ---------------- */

static const struct {
    const char *spec;
    int col;
    const char *msg;
} bad[] = {
    {"Mon-Thur 08:00-19:00 Europe/Berlin", 5, "unknown day 'Thur' (did you mean 'Thu'?)"},
    {"Mo-Fr 08:00-19:00 UTC", 1, "unknown day 'Mo' (did you mean 'Mon'?)"},
    {"mon-fri 08:00-19:00 UTC", 1, "unknown day 'mon' (did you mean 'Mon'?)"},
    {"Mon-Fri 25:00-26:00 UTC", 9, "hour 25 is out of range (00-23, or 24:00 to end a day)"},
    {"Mon-Fri 08:00-25:00 UTC", 15, "hour 25 is out of range"},
    {"Mon-Fri 08:60-09:00 UTC", 12, "minute 60 is out of range (00-59)"},
    {"Mon-Fri 24:00-06:00 UTC", 9, "24:00 can only end a range"},
    {"Mon-Fri 08:00-24:30 UTC", 15, "24:30 is not a time"},
    {"Mon-Fri 8:00-19:00 UTC", 9, "expected a time HH:MM"},
    {"Mon-Fri 08:00 19:00 UTC", 14, "expected '-' between the start and end times"},
    {"Mon-Fri08:00-19:00 UTC", 8, "unexpected '0' after the days"},
    {"Mon-Fri", 8, "expected a time range after the days"},
    {"Mon-Fri 08:00-19:00 Nowhere/Zone", 21, "unknown time zone 'Nowhere/Zone'"},
    {"Mon-Fri 08:00-19:00 Europe/Berln", 21, "(did you mean 'Europe/Berlin'?)"},
    {"Mon-Fri 08:00-19:00 ../../etc/passwd", 21, "invalid time zone name"},
    {"Mon-Fri 08:00-19:00", 20, "expected a time zone after the time range"},
    {"Mon-Fri 08:00-19:00 UTC extra", 25, "unexpected 'extra' after the time zone"},
    {"08:00-19:00 UTC", 1, "a time range needs days before it"},
    {"2026-13-01T00:00:00Z-2026-12-27T00:00:00Z", 6, "month 13 is out of range (01-12)"},
    {"2026-12-24T00:00:00+01:00-2026-02-30T00:00:00+01:00", 35,
     "day 30 is out of range for 2026-02"},
    {"2026-12-24T25:00:00+01:00-2026-12-27T00:00:00+01:00", 12, "hour 25 is out of range (00-23)"},
    {"2026-12-24T00:00:00-2026-12-27T00:00:00Z", 20, "expected an offset"},
    {"2026-12-24T00:00:00+25:00-2026-12-27T00:00:00Z", 21, "offset hour 25"},
    {"2026-12-24T00:00:00+01:00 2026-12-27T00:00:00+01:00", 26,
     "expected '-' between the start and the end"},
    {"2026-12-24-2026-12-27", 11, "expected a date and time"},
    {"2026-12-27T00:00:00Z-2026-12-24T00:00:00Z", 22, "the range ends before it starts"},
    /* later list items are validated up front */
    {"Mon-Fri 08:00-19:00 UTC, Sat 10:00-11:00 Europe/Berln", 42, "did you mean 'Europe/Berlin'"},
    {"Mon-Fri 08:00-19:00 UTC, Sun-Thur 10:00-11:00 UTC", 30, "unknown day 'Thur'"},
    {"Mon-Fri 08:00-19:00 UTC, 2026-13-01T00:00:00Z-2026-12-27T00:00:00Z", 31, "month 13"},
    {"Mon-Fri 08:00-19:00 UTC,,Sat 10:00-11:00 UTC", 25, "empty item in the list"},
    {"Mon-Fri 08:00-19:00 UTC,", 24, "empty item in the list"},
    {"", 1, "empty schedule"},
    {"   ", 4, "empty schedule"},
    {"always, Mon-Fri 08:00-19:00 UTC", 1, "'always' cannot be combined with other items"},
    {"Mon-Fri 08:00-19:00 UTC, never", 26, "'never' cannot be combined"},
    {"-Mon 08:00-19:00 UTC", 1, "unexpected '-'"},
};

Test(sched, invalid_specs_point_at_the_offending_character)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sched *s = NULL;
        struct err e = {0};
        int rc = sched_parse(&s, bad[i].spec, NULL, &e);
        cr_expect_eq(rc, PE_CONFIG, "'%s' was accepted", bad[i].spec);
        cr_expect_null(s);
        if (!rc)
            continue;
        cr_expect_eq(e.pos.line, 1);
        cr_expect_eq(e.pos.col, bad[i].col, "'%s': column %d, expected %d (%s)", bad[i].spec,
                     e.pos.col, bad[i].col, e.msg);
        cr_expect(strstr(e.msg, bad[i].msg), "'%s': '%s' lacks '%s'", bad[i].spec, e.msg,
                  bad[i].msg);
        err_release(&e);
    }
}

Test(sched, errors_are_placed_relative_to_the_spec_in_its_file)
{
    const char *text = "stages:\n  dev:\n    uptime: Mon-Fri 08:00-25:00 UTC\n";
    const struct src *src = src_add("prenv.yaml", text, strlen(text));
    struct pos at = {src, 3, 13};
    struct sched *s = NULL;
    struct err e = {0};
    cr_assert_eq(sched_parse(&s, "Mon-Fri 08:00-25:00 UTC", &at, &e), PE_CONFIG);
    cr_assert_eq(e.pos.src, src);
    cr_assert_eq(e.pos.line, 3);
    cr_assert_eq(e.pos.col, 27);
    struct sb b;
    sb_init(&b);
    err_format(&b, &e, 0);
    cr_assert_str_eq(b.buf, "prenv.yaml:3:27: error: hour 25 is out of range (00-23, or 24:00 "
                            "to end a day)\n"
                            "        uptime: Mon-Fri 08:00-25:00 UTC\n"
                            "                              ^~~~~\n");
    sb_release(&b);
    err_release(&e);
}

Test(sched, too_many_zones_or_items_are_refused)
{
    static const char *const zones[] = {"UTC",
                                        "Europe/Berlin",
                                        "Europe/Paris",
                                        "Europe/London",
                                        "Asia/Tokyo",
                                        "Asia/Kolkata",
                                        "America/New_York",
                                        "America/Chicago",
                                        "America/Denver",
                                        "America/Los_Angeles",
                                        "Pacific/Auckland",
                                        "Australia/Sydney",
                                        "Africa/Cairo",
                                        "Europe/Moscow",
                                        "Asia/Dubai",
                                        "America/Sao_Paulo",
                                        "Asia/Singapore"};
    struct sb b;
    sb_init(&b);
    for (size_t i = 0; i < 17; i++)
        sb_addf(&b, "%sMon 08:00-09:00 %s", i ? ", " : "", zones[i]);
    struct sched *s = NULL;
    struct err e = {0};
    cr_assert_eq(sched_parse(&s, b.buf, NULL, &e), PE_CONFIG);
    cr_assert(strstr(e.msg, "more than 16 different time zones"), "%s", e.msg);
    cr_assert_eq(e.pos.col, (int)(b.len - strlen("Asia/Singapore") + 1));
    err_release(&e);
    sb_reset(&b);
    for (int i = 0; i < 300; i++)
        sb_addf(&b, "%sMon 08:00-09:00 UTC", i ? "," : "");
    cr_assert_neq(sched_parse(&s, b.buf, NULL, &e), 0);
    cr_assert(strstr(e.msg, "more than 256 items") || strstr(e.msg, "longer than"), "%s", e.msg);
    err_release(&e);
    sb_release(&b);
}

/* ---- next transitions ---------------------------------------------------------- */

static const struct {
    const char *spec, *from, *next;
} nexts[] = {
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-29T07:30:00Z", "2026-03-30T06:00:00Z"},
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-30T06:00:00Z", "2026-03-30T16:00:00Z"},
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-27T17:00:00Z", "2026-03-30T06:00:00Z"},
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-30T05:59:59.999Z", "2026-03-30T06:00:00Z"},
    {"Mon-Fri 08:00-18:00 Europe/Berlin", "2026-03-30T06:00:00.001Z", "2026-03-30T16:00:00Z"},
    /* the skipped hour: the next Sunday is the next occurrence */
    {"Sun 02:00-03:00 Europe/Berlin", "2026-03-28T12:00:00Z", "2026-04-05T00:00:00Z"},
    {"Sun 02:00-03:00 America/New_York", "2026-03-07T00:00:00Z", "2026-03-15T06:00:00Z"},
    /* a window cut short by the jump, and one entered by it */
    {"Sun 01:00-03:00 Europe/Berlin", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"},
    {"Sun 02:30-04:00 Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"Sun 02:30-04:00 Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"},
    /* the repeated hour: two real hours */
    {"Sun 02:00-03:00 Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:00:00Z"},
    {"Sun 02:00-03:00 Europe/Berlin", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"},
    {"Sun 01:00-02:00 America/New_York", "2026-11-01T00:00:00Z", "2026-11-01T05:00:00Z"},
    {"Sun 01:00-02:00 America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"},
    /* overnight across a DST change and across the week's end */
    {"Sat 22:00-06:00 Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-28T21:00:00Z"},
    {"Sat 22:00-06:00 Europe/Berlin", "2026-03-28T21:00:00Z", "2026-03-29T04:00:00Z"},
    {"Sun 22:00-06:00 UTC", "2026-03-29T12:00:00Z", "2026-03-29T22:00:00Z"},
    {"Sun 22:00-06:00 UTC", "2026-03-29T22:00:00Z", "2026-03-30T06:00:00Z"},
    {"Fri-Sun 22:00-06:00 UTC", "2026-03-27T22:00:00Z", "2026-03-28T06:00:00Z"},
    /* lists: the union's changes, not each item's */
    {"Mon-Fri 08:00-12:00 UTC, Mon-Fri 12:00-18:00 UTC", "2026-03-30T09:00:00Z",
     "2026-03-30T18:00:00Z"},
    {"Mon-Fri 08:00-12:00 UTC, Mon-Fri 13:00-18:00 Europe/London", "2026-03-30T09:00:00Z",
     "2026-03-30T17:00:00Z"},
    /* absolute ranges, with seconds */
    {"2026-01-01T00:00:00Z-2026-01-02T00:00:00Z", "2025-12-31T12:00:00Z", "2026-01-01T00:00:00Z"},
    {"2026-01-01T00:00:00Z-2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},
    {"2026-01-01T00:00:30Z-2026-01-01T00:01:00Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:30Z"},
    {"2026-01-01T00:00:00Z-2026-01-02T00:00:00Z", "2026-06-01T00:00:00Z", "never"},
    /* never changes */
    {"always", "2026-03-29T07:30:00Z", "never"},
    {"never", "2026-03-29T07:30:00Z", "never"},
    {"Mon-Sun 00:00-24:00 UTC", "2026-03-29T07:30:00Z", "never"},
    {"Mon-Mon 00:00-00:00 UTC", "2026-03-29T07:30:00Z", "never"},
    {"Mon-Sun 00:00-24:00 UTC, 2026-01-01T00:00:00Z-2026-01-02T00:00:00Z", "2025-12-31T07:30:00Z",
     "never"},
    {"Mon-Sun 00:00-12:00 UTC, Mon-Sun 12:00-24:00 Etc/GMT", "2026-03-29T07:30:00Z", "never"},
    /* zones far from UTC, and far in the future */
    {"Mon-Fri 09:00-17:30 Asia/Kolkata", "2026-03-30T00:00:00Z", "2026-03-30T03:30:00Z"},
    {"Mon-Fri 08:00-17:00 Pacific/Auckland", "2026-04-03T12:00:00Z", "2026-04-05T20:00:00Z"},
    {"Sun 02:00-03:00 Europe/Berlin", "2300-10-27T00:00:00Z", "2300-10-28T00:00:00Z"},
    {"Sun 02:00-03:00 Europe/Berlin", "2300-10-28T00:00:00Z", "2300-10-28T02:00:00Z"},
};

Test(sched, next_is_the_first_instant_the_answer_changes)
{
    for (size_t i = 0; i < sizeof nexts / sizeof nexts[0]; i++) {
        struct sched *s = parse_ok(nexts[i].spec);
        char *got = iso(sched_next(s, ms_at(nexts[i].from)));
        cr_expect_str_eq(got, nexts[i].next, "'%s' from %s: %s, expected %s", nexts[i].spec,
                         nexts[i].from, got, nexts[i].next);
        free(got);
        sched_free(s);
    }
}

/* real seconds spent inside during [from, to), by stepping through next() */
static long long inside_seconds(const struct sched *s, long long from, long long to)
{
    long long t = from, total = 0;
    while (t < to) {
        long long nx = sched_next(s, t);
        long long end = nx < to ? nx : to;
        if (sched_match(s, t))
            total += (end - t) / 1000;
        t = end;
    }
    return total;
}

Test(sched, a_window_in_the_skipped_hour_does_not_occur)
{
    struct sched *s = parse_ok("Sun 02:00-03:00 Europe/Berlin");
    cr_assert_eq(inside_seconds(s, ms_at("2026-03-28T12:00:00Z"), ms_at("2026-03-29T12:00:00Z")),
                 0);
    cr_assert_eq(inside_seconds(s, ms_at("2026-03-21T12:00:00Z"), ms_at("2026-03-22T12:00:00Z")),
                 3600);
    sched_free(s);
    s = parse_ok("Sun 02:00-03:00 America/New_York");
    cr_assert_eq(inside_seconds(s, ms_at("2026-03-07T12:00:00Z"), ms_at("2026-03-08T12:00:00Z")),
                 0);
    sched_free(s);
    /* a window straddling the jump loses the skipped hour */
    s = parse_ok("Sun 01:00-04:00 Europe/Berlin");
    cr_assert_eq(inside_seconds(s, ms_at("2026-03-28T12:00:00Z"), ms_at("2026-03-29T12:00:00Z")),
                 7200);
    sched_free(s);
}

Test(sched, a_window_in_the_repeated_hour_lasts_two_real_hours)
{
    struct sched *s = parse_ok("Sun 02:00-03:00 Europe/Berlin");
    cr_assert_eq(inside_seconds(s, ms_at("2026-10-24T12:00:00Z"), ms_at("2026-10-25T12:00:00Z")),
                 7200);
    sched_free(s);
    s = parse_ok("Sun 01:00-02:00 America/New_York");
    cr_assert_eq(inside_seconds(s, ms_at("2026-10-31T12:00:00Z"), ms_at("2026-11-01T12:00:00Z")),
                 7200);
    sched_free(s);
    /* an overnight window over the autumn change is an hour longer */
    s = parse_ok("Sat 22:00-06:00 Europe/Berlin");
    cr_assert_eq(inside_seconds(s, ms_at("2026-10-24T12:00:00Z"), ms_at("2026-10-25T12:00:00Z")),
                 9 * 3600);
    cr_assert_eq(inside_seconds(s, ms_at("2026-03-28T12:00:00Z"), ms_at("2026-03-29T12:00:00Z")),
                 7 * 3600);
    sched_free(s);
}

Test(sched, extreme_instants_neither_crash_nor_overflow)
{
    static const char *const specs[] = {
        "Mon-Fri 08:00-18:00 Europe/Berlin", "Sun 02:00-03:00 America/New_York",
        "2026-01-01T00:00:00Z-2026-01-02T00:00:00Z", "always",
        "Mon-Fri 22:00-06:00 Pacific/Auckland, 2026-01-01T00:00:00Z-2026-01-02T00:00:00Z"};
    static const long long at[] = {LLONG_MIN, LLONG_MIN + 1, -1, 0, LLONG_MAX - 1, LLONG_MAX};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        struct sched *s = parse_ok(specs[i]);
        for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
            (void)sched_match(s, at[k]);
            long long nx = sched_next(s, at[k]);
            cr_assert(nx > at[k] || nx == LLONG_MAX, "'%s' from %lld: %lld", specs[i], at[k], nx);
        }
        sched_free(s);
    }
}

Test(sched, text_and_zone_are_kept)
{
    struct sched *s =
        parse_ok("  2026-01-01T00:00:00Z-2026-01-02T00:00:00Z, Mon 08:00-09:00 Asia/Kolkata  ");
    cr_assert_str_eq(sched_text(s),
                     "2026-01-01T00:00:00Z-2026-01-02T00:00:00Z, Mon 08:00-09:00 Asia/Kolkata");
    cr_assert_str_eq(tz_name(sched_zone(s)), "Asia/Kolkata");
    sched_free(s);
    s = parse_ok("always");
    cr_assert_null(sched_zone(s));
    sched_free(s);
}

/* ---- policies ------------------------------------------------------------------ */

static struct val *yaml(const char *text)
{
    const struct src *s = src_add("prenv.yaml", text, strlen(text));
    struct val *v = NULL;
    struct err e = {0};
    cr_assert_eq(yt_parse(&v, s, &e), 0, "%s", e.msg);
    return v;
}

static struct sched_policy *policy(const char *text, struct val **keep)
{
    *keep = yaml(text);
    struct sched_policy *p = NULL;
    struct err e = {0};
    int rc = sched_policy_parse(&p, val_map_get(*keep, "schedule"), &e);
    cr_assert_eq(rc, 0, "%s at %d:%d", e.msg, e.pos.line, e.pos.col);
    return p;
}

static void policy_fails(const char *text, int line, int col, const char *msg)
{
    struct val *v = yaml(text);
    struct sched_policy *p = NULL;
    struct err e = {0};
    cr_assert_neq(sched_policy_parse(&p, val_map_get(v, "schedule"), &e), 0, "accepted:\n%s", text);
    cr_assert_null(p);
    cr_expect_not_null(e.pos.src);
    cr_expect_eq(e.pos.line, line, "%s: line %d, expected %d", e.msg, e.pos.line, line);
    cr_expect_eq(e.pos.col, col, "%s: column %d, expected %d", e.msg, e.pos.col, col);
    cr_expect(strstr(e.msg, msg), "'%s' lacks '%s'", e.msg, msg);
    err_release(&e);
    val_free(v);
}

Test(sched, downtime_wins_over_uptime)
{
    struct val *v;
    struct sched_policy *p = policy("schedule:\n"
                                    "  uptime: Mon-Fri 08:00-19:00 Europe/Berlin\n"
                                    "  downtime: Mon-Fri 12:00-13:00 Europe/Berlin\n",
                                    &v);
    cr_assert(sched_policy_up(p, ms_at("2026-03-30T09:00:00Z")));
    cr_assert(!sched_policy_up(p, ms_at("2026-03-30T10:30:00Z")));
    cr_assert_str_eq(sched_policy_why(p, ms_at("2026-03-30T10:30:00Z")),
                     "downtime Mon-Fri 12:00-13:00 Europe/Berlin");
    cr_assert_str_eq(sched_policy_why(p, ms_at("2026-03-30T09:00:00Z")),
                     "inside uptime Mon-Fri 08:00-19:00 Europe/Berlin");
    cr_assert_str_eq(sched_policy_why(p, ms_at("2026-03-29T09:00:00Z")),
                     "outside uptime Mon-Fri 08:00-19:00 Europe/Berlin");
    char *n = iso(sched_policy_next(p, ms_at("2026-03-30T09:00:00Z")));
    cr_assert_str_eq(n, "2026-03-30T10:00:00Z");
    free(n);
    n = iso(sched_policy_next(p, ms_at("2026-03-30T10:00:00Z")));
    cr_assert_str_eq(n, "2026-03-30T11:00:00Z");
    free(n);
    sched_policy_free(p);
    val_free(v);
}

Test(sched, holidays_are_down_all_day_in_the_policy_zone)
{
    struct val *v;
    struct sched_policy *p = policy("schedule:\n"
                                    "  uptime: Mon-Sun 00:00-24:00 Europe/Berlin\n"
                                    "  holidays: [2026-12-25, '2026-12-26', 2026-12-31]\n",
                                    &v);
    cr_assert_str_eq(tz_name(sched_policy_zone(p)), "Europe/Berlin");
    cr_assert(sched_policy_up(p, ms_at("2026-12-24T22:59:59Z")));
    cr_assert(!sched_policy_up(p, ms_at("2026-12-24T23:00:00Z")));
    cr_assert(!sched_policy_up(p, ms_at("2026-12-26T22:59:59Z")));
    cr_assert(sched_policy_up(p, ms_at("2026-12-26T23:00:00Z")));
    cr_assert_str_eq(sched_policy_why(p, ms_at("2026-12-24T23:00:00Z")), "holiday 2026-12-25");
    cr_assert_str_eq(sched_policy_why(p, ms_at("2026-12-26T12:00:00Z")), "holiday 2026-12-26");
    /* consecutive holidays are one stretch */
    char *n = iso(sched_policy_next(p, ms_at("2026-12-24T12:00:00Z")));
    cr_assert_str_eq(n, "2026-12-24T23:00:00Z");
    free(n);
    n = iso(sched_policy_next(p, ms_at("2026-12-24T23:00:00Z")));
    cr_assert_str_eq(n, "2026-12-26T23:00:00Z");
    free(n);
    n = iso(sched_policy_next(p, ms_at("2026-12-26T23:00:00Z")));
    cr_assert_str_eq(n, "2026-12-30T23:00:00Z");
    free(n);
    n = iso(sched_policy_next(p, ms_at("2026-12-31T23:00:00Z")));
    cr_assert_str_eq(n, "never");
    free(n);
    sched_policy_free(p);
    val_free(v);
}

Test(sched, the_holiday_zone_is_timezone_then_uptime_then_downtime_then_utc)
{
    struct val *v;
    struct sched_policy *p = policy("schedule:\n"
                                    "  uptime: Mon-Fri 08:00-19:00 Europe/Berlin\n"
                                    "  timezone: Asia/Kolkata\n"
                                    "  holidays: [2026-12-25]\n",
                                    &v);
    cr_assert_str_eq(tz_name(sched_policy_zone(p)), "Asia/Kolkata");
    cr_assert_str_eq(sched_policy_why(p, ms_at("2026-12-24T18:30:00Z")), "holiday 2026-12-25");
    cr_assert_str_neq(sched_policy_why(p, ms_at("2026-12-24T18:29:59Z")), "holiday 2026-12-25");
    sched_policy_free(p);
    val_free(v);
    p = policy("schedule:\n  downtime: Sat-Sun 00:00-24:00 America/New_York\n"
               "  holidays: [2026-07-03]\n",
               &v);
    cr_assert_str_eq(tz_name(sched_policy_zone(p)), "America/New_York");
    cr_assert(sched_policy_up(p, ms_at("2026-07-03T03:59:59Z")));
    cr_assert(!sched_policy_up(p, ms_at("2026-07-03T04:00:00Z")));
    cr_assert_str_eq(sched_policy_why(p, ms_at("2026-07-02T12:00:00Z")),
                     "outside downtime Sat-Sun 00:00-24:00 America/New_York");
    sched_policy_free(p);
    val_free(v);
    p = policy("schedule:\n  holidays: [2026-07-03]\n", &v);
    cr_assert_str_eq(tz_name(sched_policy_zone(p)), "UTC");
    cr_assert(!sched_policy_up(p, ms_at("2026-07-03T00:00:00Z")));
    cr_assert_str_eq(sched_policy_why(p, ms_at("2026-07-04T00:00:00Z")), "not a holiday");
    sched_policy_free(p);
    val_free(v);
}

Test(sched, an_empty_policy_is_always_up)
{
    struct val *v;
    struct sched_policy *p = policy("schedule: {uptime: null}\n", &v);
    cr_assert(sched_policy_up(p, ms_at("2026-03-29T07:30:00Z")));
    cr_assert_eq(sched_policy_next(p, ms_at("2026-03-29T07:30:00Z")), LLONG_MAX);
    cr_assert_str_eq(sched_policy_why(p, 0), "no schedule");
    sched_policy_free(p);
    val_free(v);
    p = policy(
        "schedule:\n  uptime: Mon-Fri 08:00-19:00 UTC\n  downtime: Mon-Fri 07:00-20:00 UTC\n", &v);
    cr_assert(!sched_policy_up(p, ms_at("2026-03-30T12:00:00Z")));
    cr_assert_eq(sched_policy_next(p, ms_at("2026-03-30T12:00:00Z")), LLONG_MAX);
    sched_policy_free(p);
    val_free(v);
}

Test(sched, policy_errors_point_into_the_file)
{
    policy_fails("schedule:\n  uptime: Mon-Thur 08:00-19:00 UTC\n", 2, 15, "unknown day 'Thur'");
    policy_fails("schedule:\n  uptime: 'Mon-Thur 08:00-19:00 UTC'\n", 2, 16, "unknown day 'Thur'");
    policy_fails(
        "schedule:\n  uptime: Mon-Fri 08:00-19:00 UTC\n  downtime: \"Sat 25:00-26:00 UTC\"\n", 3,
        18, "hour 25");
    policy_fails("schedule: {uptime: Mon-Fri 08:00-19:00 Nowhere/Zone}\n", 1, 40,
                 "unknown time zone 'Nowhere/Zone'");
    policy_fails("schedule:\n  uptme: Mon-Fri 08:00-19:00 UTC\n", 2, 3,
                 "unknown key 'uptme' in schedule (did you mean 'uptime'?)");
    policy_fails("schedule:\n  uptime: 5\n", 2, 11, "uptime must be a string");
    policy_fails("schedule:\n  timezone: Europe/Berln\n", 2, 13, "did you mean 'Europe/Berlin'");
    policy_fails("schedule:\n  holidays: [2026-12-25, 2026-02-30]\n", 2, 34,
                 "day 30 is out of range for 2026-02");
    policy_fails("schedule:\n  holidays:\n    - 2026-12-25\n    - 2026-13-01\n", 4, 12,
                 "month 13 is out of range");
    policy_fails("schedule:\n  holidays: [2026-12-25T00:00:00Z]\n", 2, 24,
                 "expected a holiday date YYYY-MM-DD");
    policy_fails("schedule:\n  holidays: 2026-12-25\n", 2, 13, "holidays must be a list");
    policy_fails("schedule: Mon-Fri 08:00-19:00 UTC\n", 1, 11, "schedule must be a map");
}

/* ---- the property test ---------------------------------------------------------
 * Random specs and instants; a brute-force evaluator computes wall-clock time
 * from tz_offset alone, and the next change by scanning minute by minute. */

static uint64_t rng = 0x2545F4914F6CDD1DULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static long long rnd_in(long long lo, long long hi) /* [lo, hi] */
{
    return lo + (long long)(rnd() % (uint64_t)(hi - lo + 1));
}

static const char *const pzones[] = {"Europe/Berlin",
                                     "America/New_York",
                                     "Pacific/Auckland",
                                     "Asia/Kolkata",
                                     "UTC",
                                     "Etc/GMT+5",
                                     "Australia/Lord_Howe",
                                     "America/St_Johns",
                                     "Asia/Kathmandu",
                                     "Pacific/Chatham",
                                     "Europe/Dublin",
                                     "America/Santiago",
                                     "Africa/Casablanca",
                                     "Asia/Tehran",
                                     "America/Havana"};
#define NPZ (sizeof pzones / sizeof pzones[0])

struct bitem {
    bool abs;
    int d1, d2, start, end;
    const struct tz *z;
    long long a, b; /* seconds */
};

struct bspec {
    struct bitem it[4];
    int n;
    int kind; /* 0 list, 1 always, 2 never */
    char text[1024];
};

static long long fdiv(long long a, long long b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool day_in(const struct bitem *it, int wd)
{
    for (int d = it->d1;; d = (d + 1) % 7) {
        if (d == wd)
            return true;
        if (d == it->d2)
            return false;
    }
}

static bool brute(const struct bspec *s, long long t)
{
    if (s->kind)
        return s->kind == 1;
    for (int i = 0; i < s->n; i++) {
        const struct bitem *it = &s->it[i];
        if (it->abs) {
            if (t >= it->a && t < it->b)
                return true;
            continue;
        }
        long long w = t + tz_offset(it->z, t);
        long long day = fdiv(w, 86400), sod = w - day * 86400;
        int wd = (int)((day % 7 + 7 + 3) % 7);
        long long st = it->start * 60LL, en = it->end * 60LL;
        if (st < en && day_in(it, wd) && sod >= st && sod < en)
            return true;
        if (st > en && ((day_in(it, wd) && sod >= st) || (day_in(it, (wd + 6) % 7) && sod < en)))
            return true;
    }
    return false;
}

static const char *const dnames[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

static void fmt_iso(char *buf, size_t n, long long t, int off_min, int style)
{
    long long w = t + off_min * 60LL;
    long long day = fdiv(w, 86400), sod = w - day * 86400, y;
    int m, d;
    tz_civil_from_days(day, &y, &m, &d);
    int a = (off_min < 0 ? -off_min : off_min) % 1440;
    if (style == 0 && off_min == 0)
        snprintf(buf, n, "%04lld-%02d-%02dT%02lld:%02lld:%02lldZ", y, m, d, sod / 3600,
                 sod / 60 % 60, sod % 60);
    else
        snprintf(buf, n, "%04lld-%02d-%02dT%02lld:%02lld:%02lld%c%02d%s%02d", y, m, d, sod / 3600,
                 sod / 60 % 60, sod % 60, off_min < 0 ? '-' : '+', a / 60, style == 2 ? "" : ":",
                 a % 60);
}

static const long long WIN_LO = 1767225600LL; /* 2026-01-01 */
static const long long WIN_HI = 1830297600LL; /* 2028-01-01 */

/* an instant near some zone's transition, or anywhere in the window */
static long long rnd_instant(void)
{
    long long t = rnd_in(WIN_LO, WIN_HI);
    if (rnd() % 2) {
        const struct tz *z = NULL;
        tz_get(&z, pzones[rnd() % NPZ], NULL);
        long long nx = tz_next_transition(z, t);
        if (nx != LLONG_MAX)
            t = nx + rnd_in(-2 * 86400, 2 * 86400);
    }
    return t;
}

static void rnd_spec(struct bspec *s)
{
    memset(s, 0, sizeof *s);
    struct sb b;
    sb_init(&b);
    int r = (int)(rnd() % 50);
    if (r == 0) {
        s->kind = 1;
        sb_adds(&b, "always");
    } else if (r == 1) {
        s->kind = 2;
        sb_adds(&b, "never");
    } else {
        s->n = 1 + (int)(rnd() % 3);
        for (int i = 0; i < s->n; i++) {
            struct bitem *it = &s->it[i];
            if (i)
                sb_adds(&b, ", ");
            if (rnd() % 5 == 0) {
                static const int offs[] = {0, 60, -300, 330, 765, -210};
                it->abs = true;
                it->a = rnd_instant() / 60 * 60;
                it->b = it->a + rnd_in(0, 3 * 24 * 60) * 60;
                char x[96], y[96];
                fmt_iso(x, sizeof x, it->a, offs[rnd() % 6], (int)(rnd() % 3));
                fmt_iso(y, sizeof y, it->b, offs[rnd() % 6], (int)(rnd() % 3));
                sb_addf(&b, "%s-%s", x, y);
                continue;
            }
            it->d1 = (int)(rnd() % 7);
            it->d2 = rnd() % 3 ? (int)(rnd() % 7) : it->d1;
            /* times near the hours where zones change, or anywhere */
            it->start =
                rnd() % 2 ? (int)(rnd_in(0, 4) * 60 + (rnd() % 4) * 15) : (int)rnd_in(0, 1439);
            it->end = rnd() % 6 == 0 ? 1440
                      : rnd() % 2    ? (int)(rnd_in(0, 4) * 60 + (rnd() % 4) * 15)
                                     : (int)rnd_in(0, 1439);
            const char *zn = pzones[rnd() % NPZ];
            tz_get(&it->z, zn, NULL);
            if (it->d1 == it->d2)
                sb_addf(&b, "%s", dnames[it->d1]);
            else
                sb_addf(&b, "%s-%s", dnames[it->d1], dnames[it->d2]);
            sb_addf(&b, " %02d:%02d-%02d:%02d %s", it->start / 60, it->start % 60, it->end / 60,
                    it->end % 60, zn);
        }
    }
    snprintf(s->text, sizeof s->text, "%s", b.buf);
    sb_release(&b);
}

#define SCAN_MIN (16 * 24 * 60) /* scan at most 16 days ahead */

/* the first whole minute after t at which brute changes, or LLONG_MAX */
static long long brute_next(bool (*f)(const void *, long long), const void *ctx, long long t_ms)
{
    long long t = fdiv(t_ms, 1000);
    bool cur = f(ctx, t);
    long long m0 = fdiv(t, 60) + 1;
    for (long long m = m0; m < m0 + SCAN_MIN; m++)
        if (f(ctx, m * 60) != cur)
            return m * 60 * 1000;
    return LLONG_MAX;
}

static bool brute_spec(const void *ctx, long long t)
{
    return brute(ctx, t);
}

Test(sched, match_and_next_agree_with_brute_force_on_random_specs)
{
    int n = 0, changes = 0;
    for (int k = 0; k < 3000; k++) {
        struct bspec bs;
        rnd_spec(&bs);
        struct sched *s = parse_ok(bs.text);
        long long t = rnd_instant() * 1000 + rnd_in(0, 999) * (rnd() % 2);
        bool want = brute(&bs, fdiv(t, 1000));
        cr_assert_eq(sched_match(s, t), want, "'%s' at %lld ms: match %d, brute force %d", bs.text,
                     t, !want, want);
        long long got = sched_next(s, t), exp = brute_next(brute_spec, &bs, t);
        if (exp == LLONG_MAX) {
            cr_assert(got == LLONG_MAX || got > (fdiv(fdiv(t, 1000), 60) + 1 + SCAN_MIN) * 60000,
                      "'%s' from %lld: next %lld, but brute force sees no change for 16 days",
                      bs.text, t, got);
        } else {
            char *a = iso(got), *b = iso(exp), *f = iso(t);
            cr_assert_eq(got, exp, "'%s' from %s: next %s, brute force %s", bs.text, f, a, b);
            free(a);
            free(b);
            free(f);
            changes++;
        }
        sched_free(s);
        n++;
    }
    cr_assert_eq(n, 3000);
    cr_assert_gt(changes, 2000);
}

struct bpolicy {
    struct bspec up, down;
    bool has_up, has_down;
    long long hol[4];
    int nh;
    const struct tz *hz;
};

static bool brute_policy(const void *ctx, long long t)
{
    const struct bpolicy *p = ctx;
    if (p->has_up && !brute(&p->up, t))
        return false;
    if (p->has_down && brute(&p->down, t))
        return false;
    long long day = fdiv(t + tz_offset(p->hz, t), 86400);
    for (int i = 0; i < p->nh; i++)
        if (p->hol[i] == day)
            return false;
    return true;
}

Test(sched, policies_agree_with_brute_force_on_random_cases)
{
    for (int k = 0; k < 1000; k++) {
        struct bpolicy bp;
        memset(&bp, 0, sizeof bp);
        struct sb y;
        sb_init(&y);
        sb_adds(&y, "schedule:\n");
        bp.has_up = rnd() % 4 != 0;
        bp.has_down = rnd() % 2 == 0;
        if (bp.has_up) {
            rnd_spec(&bp.up);
            sb_addf(&y, "  uptime: '%s'\n", bp.up.text);
        }
        if (bp.has_down) {
            rnd_spec(&bp.down);
            sb_addf(&y, "  downtime: '%s'\n", bp.down.text);
        }
        long long t = rnd_instant();
        const char *hzname = NULL;
        if (rnd() % 2) {
            hzname = pzones[rnd() % NPZ];
            sb_addf(&y, "  timezone: %s\n", hzname);
        }
        bp.nh = (int)(rnd() % 5);
        if (bp.nh) {
            sb_adds(&y, "  holidays: [");
            long long d0 = fdiv(t, 86400) + rnd_in(-2, 3);
            for (int i = 0; i < bp.nh; i++) {
                bp.hol[i] = d0 + rnd_in(0, 4);
                long long yy;
                int m, d;
                tz_civil_from_days(bp.hol[i], &yy, &m, &d);
                sb_addf(&y, "%s%04lld-%02d-%02d", i ? ", " : "", yy, m, d);
            }
            sb_adds(&y, "]\n");
        }
        if (!bp.has_up && !bp.has_down && !hzname && !bp.nh)
            sb_adds(&y, "  uptime: null\n");
        struct val *v;
        struct sched_policy *p = policy(y.buf, &v);
        bp.hz = sched_policy_zone(p);
        if (hzname)
            cr_assert_str_eq(tz_name(bp.hz), hzname);
        long long tms = t * 1000 + rnd_in(0, 999);
        cr_assert_eq(sched_policy_up(p, tms), brute_policy(&bp, t), "%s at %lld", y.buf, t);
        long long got = sched_policy_next(p, tms), exp = brute_next(brute_policy, &bp, tms);
        if (exp == LLONG_MAX)
            cr_assert(got == LLONG_MAX || got > (fdiv(t, 60) + 1 + SCAN_MIN) * 60000,
                      "%s from %lld: next %lld, brute force none", y.buf, t, got);
        else
            cr_assert_eq(got, exp, "%s from %lld: next %lld, brute force %lld", y.buf, t, got, exp);
        sched_policy_free(p);
        val_free(v);
        sb_release(&y);
    }
}

/* ---- the commands, through the built binary -------------------------------------- */

Test(sched, schedule_match_exits_0_inside_1_outside_2_invalid)
{
    struct tl_res r = TL_PRENV(NULL, "schedule", "match", "Mon-Fri 08:00-18:00 Europe/Berlin",
                               "--at", "2026-03-30T07:30:00Z");
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "inside: 2026-03-30T07:30:00Z (Mon 2026-03-30T09:30:00+02:00 CEST "
                            "Europe/Berlin)"),
              "%s", r.out);
    cr_assert(strstr(r.out, "leaves at 2026-03-30T16:00:00Z"), "%s", r.out);
    tl_res_free(&r);
    r = TL_PRENV(NULL, "schedule", "match", "Mon-Fri 08:00-18:00 Europe/Berlin", "--at",
                 "2026-03-29T07:30:00Z");
    cr_assert_eq(r.code, 1, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "outside"), "%s", r.out);
    tl_res_free(&r);
    r = TL_PRENV(NULL, "schedule", "match", "-q", "Mon-Fri 08:00-18:00 Europe/Berlin", "--at",
                 "2026-03-30T09:30:00+02:00");
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert_str_eq(r.out, "");
    tl_res_free(&r);
    r = TL_PRENV(NULL, "schedule", "match", "Mon-Thur 08:00-18:00 Europe/Berlin", "--at",
                 "2026-03-30T07:30:00Z");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "spec:1:5: error: unknown day 'Thur' (did you mean 'Thu'?)\n"
                            "    Mon-Thur 08:00-18:00 Europe/Berlin\n"
                            "        ^~~~\n"),
              "%s", r.err);
    tl_res_free(&r);
    r = TL_PRENV(NULL, "schedule", "match", "Mon-Fri 08:00-18:00 UTC", "--at", "tomorrow");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "--at expects an ISO 8601 time"), "%s", r.err);
    tl_res_free(&r);
}

Test(sched, schedule_next_prints_transitions_in_utc_and_local_time)
{
    struct tl_res r = TL_PRENV(NULL, "schedule", "next", "Sun 02:00-03:00 Europe/Berlin", "--from",
                               "2026-10-20T00:00:00Z", "-n", "3");
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert_str_eq(r.out,
                     "Sun 02:00-03:00 Europe/Berlin, local time in Europe/Berlin\n"
                     "from 2026-10-20T00:00:00Z  2026-10-20T02:00:00+02:00 Tue CEST   outside\n"
                     "2026-10-25T00:00:00Z  2026-10-25T02:00:00+02:00 Sun CEST   inside\n"
                     "2026-10-25T02:00:00Z  2026-10-25T03:00:00+01:00 Sun CET    outside\n"
                     "2026-11-01T01:00:00Z  2026-11-01T02:00:00+01:00 Sun CET    inside\n");
    tl_res_free(&r);
    r = TL_PRENV(NULL, "schedule", "next", "always", "--from", "2026-10-20T00:00:00Z");
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "no further transitions: inside from here on"), "%s", r.out);
    tl_res_free(&r);
    r = TL_PRENV(NULL, "schedule", "next", "Mon-Fri 09:00-17:30 Asia/Kolkata", "--from",
                 "2026-03-30T00:00:00Z", "-n", "1", "--json");
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert_str_eq(r.out,
                     "{\"spec\":\"Mon-Fri 09:00-17:30 Asia/Kolkata\",\"zone\":\"Asia/Kolkata\","
                     "\"from\":{\"at\":\"2026-03-30T00:00:00Z\",\"local\":"
                     "\"2026-03-30T05:30:00+05:30\",\"inside\":false},\"transitions\":["
                     "{\"at\":\"2026-03-30T03:30:00Z\",\"local\":\"2026-03-30T09:00:00+05:30\","
                     "\"inside\":true}]}\n");
    tl_res_free(&r);
    r = TL_PRENV(NULL, "schedule", "next", "Mon-Fri 09:00-17:30 UTC", "--tz", "America/New_York",
                 "--from", "2026-03-30T00:00:00Z", "-n", "1");
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "2026-03-30T09:00:00Z  2026-03-30T05:00:00-04:00 Mon EDT    inside"),
              "%s", r.out);
    tl_res_free(&r);
    r = TL_PRENV(NULL, "schedule", "next", "Mon-Fri 08:00-19:00 UTC, Sat 10:00-11:00 Europe/Berln");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "spec:1:42: error: unknown time zone 'Europe/Berln' (did you mean "
                            "'Europe/Berlin'?)"),
              "%s", r.err);
    tl_res_free(&r);
    r = TL_PRENV(NULL, "schedule", "next", "always", "-n", "0");
    cr_assert_eq(r.code, 2);
    tl_res_free(&r);
}

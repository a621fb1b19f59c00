/* tz: time zones read by prenv itself from the system's TZif files
 * (TZDIR, else /usr/share/zoneinfo), so any number of zones can be evaluated
 * in one process and thread: no setenv("TZ"), no tzset, no localtime_r.
 * Where the system has no such file (or no zoneinfo at all: an empty
 * container) the zone comes from the table compiled in (ttl/tz_embedded.h).
 *
 * A loaded zone is immutable and shared. Its transitions (the file's 64-bit
 * data, and the POSIX TZ footer's rule expanded to the year 2200) are kept in
 * one sorted table, so an offset is one binary search; past the table the rule
 * is evaluated directly. Leap-second ("right/") zones are refused.
 *
 * What it leaves to others: what a schedule means (ttl/sched.h), clocks
 * (core/lib/tm.h). */
#ifndef PRENV_TZ_H
#define PRENV_TZ_H

#include "core/lib/err.h"

#include <stdbool.h>
#include <stddef.h>

struct sb;
struct tz;

/* tz_get: the zone called name, loaded once and cached for the life of the
 * process (borrowed until tz_free_all). Thread-safe. "UTC" always works, with
 * or without tzdata. A name that is not a plain relative path inside the
 * zoneinfo root ("../x", "/etc/x", a symlink leading outside) is refused. An
 * unknown zone is PE_CONFIG with a did-you-mean when one is close. */
int tz_get(const struct tz **out, const char *name, struct err *e);
/* tz_offset: seconds east of UTC in force at utc_s (seconds since the epoch).
 * No allocation, no lock. z NULL means UTC. */
long tz_offset(const struct tz *z, long long utc_s);
/* tz_abbr: the abbreviation in force at utc_s ("CEST", "+0530"); borrowed. */
const char *tz_abbr(const struct tz *z, long long utc_s);
const char *tz_name(const struct tz *z);
/* tz_next_transition: the first instant > utc_s at which the zone's offset
 * or abbreviation may change; LLONG_MAX when it never does again. */
long long tz_next_transition(const struct tz *z, long long utc_s);
/* tz_free_all: drop the cache (tests, exit). Zones from tz_get are invalid
 * afterwards. */
void tz_free_all(void);

/* Lower level, for tests, fuzzing and benchmarks. The zones they return are
 * owned by the caller (tz_free). */
/* tz_parse_tzif: a zone from the bytes of a TZif file (v1, v2, v3 or v4). */
int tz_parse_tzif(struct tz **out, const char *name, const void *data, size_t len, struct err *e);
/* tz_parse_posix: a zone from a POSIX TZ string alone ("CET-1CEST,M3.5.0,M10.5.0/3",
 * "<+0530>-5:30", "EST5EDT,0/0,J365/25"), with RFC 8536's extensions
 * (hours up to 167 and negative in rule times). */
int tz_parse_posix(struct tz **out, const char *spec, struct err *e);
void tz_free(struct tz *z);

/* Civil time. Days are counted from 1970-01-01 in the proleptic Gregorian
 * calendar; weekdays run 0 = Monday .. 6 = Sunday. */
struct tz_civil {
    long long year;
    int mon, day; /* 1-12, 1-31 */
    int hour, min, sec;
    int wday;         /* 0 = Monday */
    long off;         /* seconds east of UTC */
    const char *abbr; /* borrowed from the zone */
};
void tz_civil(const struct tz *z, long long utc_s, struct tz_civil *out);
/* tz_format: local time with its offset, "2026-03-30T08:00:00+02:00" (an
 * offset with seconds, from before 1900, prints as +00:53:28). */
void tz_format(struct sb *out, const struct tz *z, long long utc_s);
long long tz_days_from_civil(long long y, int m, int d);
void tz_civil_from_days(long long days, long long *y, int *m, int *d);
bool tz_valid_date(long long y, int m, int d);
/* floor division and modulo for possibly negative seconds */
static inline long long tz_fdiv(long long a, long long b)
{
    long long q = a / b;
    return q - ((a % b != 0) && ((a < 0) != (b < 0)));
}
static inline long long tz_fmod(long long a, long long b)
{
    return a - tz_fdiv(a, b) * b;
}

#endif

/* sched: schedules ("Mon-Fri 08:00-19:00 Europe/Berlin") and schedule
 * policies (uptime + downtime + holidays): parsing with positions, whether an
 * instant is inside, and the next instant at which that answer changes, so the
 * daemon can sleep until then instead of polling.
 *
 * Grammar (kube-downscaler's, plus overnight ranges and strict validation):
 *
 *   spec  := "always" | "never" | item ("," item)*       any of the items
 *   item  := DAYS " " HH:MM "-" HH:MM " " ZONE            recurring, wall clock
 *          | ISO "-" ISO                                   absolute, [start, end)
 *   DAYS  := DAY | DAY "-" DAY                             wraps: Sat-Mon
 *   DAY   := Mon | Tue | Wed | Thu | Fri | Sat | Sun
 *   ISO   := YYYY-MM-DDTHH:MM:SS (Z | ±HH:MM | ±HHMM)
 *
 * A recurring item holds when the wall-clock time in ZONE is inside
 * [start, end) on one of DAYS; 24:00 ends a day; start = end is empty; an end
 * before the start is an overnight window that ends on the next day. See
 * docs/schedules.md for DST and holidays.
 *
 * What it leaves to others: reading prenv.yaml and layering the config
 * (envs/), acting on the answers (the daemon). */
#ifndef PRENV_SCHED_H
#define PRENV_SCHED_H

#include "core/lib/err.h"

#include <stdbool.h>
#include <stddef.h>

struct tz;
struct val;

#define SCHED_SPEC_MAX 4096 /* characters in one spec */
#define SCHED_ITEMS_MAX 256 /* items in one spec */
#define SCHED_ZONES_MAX 16  /* distinct time zones in one spec */
#define SCHED_HOLIDAYS_MAX 2000

struct sched;

/* sched_parse: parse spec into *out (caller frees with sched_free). at is the
 * position of the spec's first character in a user file, or NULL; an error
 * points at the offending character: line at->line, column at->col + offset
 * (with at NULL: line 1, column offset + 1, no file). Every item is validated,
 * and every zone loaded, before anything is returned. */
int sched_parse(struct sched **out, const char *spec, const struct pos *at, struct err *e);
void sched_free(struct sched *s);
/* sched_match: is utc_ms inside? No allocation, no lock. */
bool sched_match(const struct sched *s, long long utc_ms);
/* sched_next: the first instant > utc_ms at which sched_match changes (whole
 * seconds; whole minutes unless an absolute range or a zone's offset has
 * seconds); LLONG_MAX if it never does. No allocation. */
long long sched_next(const struct sched *s, long long utc_ms);
/* sched_text: the spec as written; sched_zone: the zone of its first recurring
 * item, or NULL (borrowed until sched_free / tz_free_all). */
const char *sched_text(const struct sched *s);
const struct tz *sched_zone(const struct sched *s);

struct sched_policy;

/* sched_policy_parse: a policy from the YAML map {uptime, downtime, holidays,
 * timezone} (each optional; null means absent). Errors carry the file, line
 * and column of the offending value. Holidays are dates "YYYY-MM-DD" in the
 * policy's zone: `timezone`, else the zone of the first recurring item of
 * uptime, else of downtime, else UTC. Caller frees. */
int sched_policy_parse(struct sched_policy **out, const struct val *schedule, struct err *e);
void sched_policy_free(struct sched_policy *p);
/* sched_policy_up: should the env run: (no uptime || in uptime) && !in downtime
 * && !holiday. */
bool sched_policy_up(const struct sched_policy *p, long long utc_ms);
/* sched_policy_next: next instant > utc_ms at which sched_policy_up changes;
 * LLONG_MAX never. */
long long sched_policy_next(const struct sched_policy *p, long long utc_ms);
/* sched_policy_why: why sched_policy_up answers as it does at utc_ms:
 * "outside uptime Mon-Fri 08:00-19:00 Europe/Berlin", "holiday 2026-12-25",
 * "downtime Sat-Sun 00:00-24:00 UTC", "inside uptime ...", "no schedule".
 * Borrowed until sched_policy_free. */
const char *sched_policy_why(const struct sched_policy *p, long long utc_ms);
/* sched_policy_zone: the zone holidays are taken in (borrowed). */
const struct tz *sched_policy_zone(const struct sched_policy *p);

#endif

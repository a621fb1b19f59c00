/* tm: wall-clock and monotonic time, RFC 3339 timestamps (UTC) and durations
 * ("90s", "15m", "8h", "3d", "1w", "1h30m", "250ms"). Time zones and schedules
 * live in ttl/. */
#ifndef PRENV_TM_H
#define PRENV_TM_H

#include <stdbool.h>

struct sb;

/* milliseconds since the Unix epoch */
long long tm_now_ms(void);
/* milliseconds on a monotonic clock */
long long tm_mono_ms(void);
/* tm_rfc3339: "2026-11-22T01:30:00Z" (with .mmm when ms is not whole) */
void tm_rfc3339(struct sb *out, long long epoch_ms);
/* tm_parse_rfc3339: accepts Z or ±HH:MM offsets and optional fraction. */
bool tm_parse_rfc3339(const char *s, long long *epoch_ms);
/* dur_parse: a positive duration; returns false with *why set on error. */
bool dur_parse(const char *s, long long *ms, const char **why);
/* dur_fmt: "3d4h", "2h30m", "45s", "250ms"; 0 prints "0s". */
void dur_fmt(struct sb *out, long long ms);
/* dur_fmt_secs: "2.41s" style elapsed time. */
void dur_fmt_secs(struct sb *out, long long ms);

#endif

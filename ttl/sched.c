/* sched: schedule specs and policies: parsing with positions, matching, and
 * the next instant at which the answer changes.
 *
 * A parsed spec is compiled into components, each a predicate whose changes
 * can be found exactly:
 *   - one weekly bitmap per time zone (10,080 minutes of the wall-clock week;
 *     all recurring items in that zone OR'ed into it), with the sorted list of
 *     minutes where it flips;
 *   - one sorted, merged list of absolute [start, end) ranges;
 *   - (policies) one sorted list of holiday runs, in local days of a zone.
 * A weekly or holiday component is a function of wall-clock time, which is
 * continuous between the zone's transitions: its next change is the next flip
 * of the wall-clock predicate, unless a transition comes first, in which case
 * the answer just after the jump decides. A spec or policy combines its
 * components; its next change is found by stepping through the components'
 * changes until the combined answer differs.
 *
 * What it leaves to others: time zone data (ttl/tz.c), config layering (envs/),
 * acting on the answers (the daemon). */
#include "ttl/sched.h"

#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/val.h"
#include "core/lib/xalloc.h"
#include "ttl/tz.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WEEK_MIN 10080 /* minutes in a week */
#define WEEK_WORDS ((WEEK_MIN + 63) / 64)
#define MON_SHIFT (3 * 1440) /* 1970-01-01 was a Thursday */
#define COMPS_MAX (2 * (SCHED_ZONES_MAX + 1) + 1)
/* a combination of components that has not changed for this long after its
 * last absolute date is taken never to change (see docs/schedules.md) */
#define HORIZON_S (400LL * 86400)
#define DAY_S 86400LL

enum comp_kind { COMP_WEEK, COMP_SPANS, COMP_DAYS };

struct comp {
    enum comp_kind kind;
    const struct tz *z; /* WEEK, DAYS */
    uint64_t *bits;     /* WEEK: WEEK_WORDS words, bit i = minute i from Monday 00:00 */
    uint16_t *bounds;   /* WEEK: minutes where bit i != bit i-1 (cyclically) */
    size_t nb;
    long long *spans; /* SPANS: [a, b) UTC seconds; DAYS: [d0, d1) local day numbers */
    size_t ns;        /* pairs */
};

enum sched_kind { SC_ALWAYS, SC_NEVER, SC_LIST };

struct sched {
    char *text;
    enum sched_kind kind;
    struct comp *comps;
    size_t nc;
    const struct tz *first_zone;
    long long last; /* the last absolute boundary (seconds), LLONG_MIN if none */
};

/* ---- components -------------------------------------------------------------- */

static bool week_bit(const struct comp *c, long long mow)
{
    return c->bits[mow >> 6] >> (mow & 63) & 1;
}

/* first pair index whose end is > x (pairs sorted and disjoint) */
static size_t span_after(const long long *sp, size_t n, long long x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sp[2 * mid + 1] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool wall_at(const struct comp *c, long long w)
{
    if (c->kind == COMP_WEEK)
        return week_bit(c, tz_fmod(tz_fdiv(w, 60) + MON_SHIFT, WEEK_MIN));
    long long day = tz_fdiv(w, DAY_S);
    size_t k = span_after(c->spans, c->ns, day);
    return k < c->ns && c->spans[2 * k] <= day;
}

static bool comp_at(const struct comp *c, long long t)
{
    if (c->kind == COMP_SPANS) {
        size_t k = span_after(c->spans, c->ns, t);
        return k < c->ns && c->spans[2 * k] <= t;
    }
    return wall_at(c, t + tz_offset(c->z, t));
}

/* the first wall-clock second > w at which the wall predicate flips */
static long long wall_flip(const struct comp *c, long long w)
{
    if (c->kind == COMP_WEEK) {
        long long mw = tz_fdiv(w, 60);
        long long i = tz_fmod(mw + MON_SHIFT, WEEK_MIN);
        size_t lo = 0, hi = c->nb;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (c->bounds[mid] <= i)
                lo = mid + 1;
            else
                hi = mid;
        }
        long long d = lo < c->nb ? c->bounds[lo] - i : c->bounds[0] + WEEK_MIN - i;
        return (mw + d) * 60;
    }
    long long day = tz_fdiv(w, DAY_S);
    size_t k = span_after(c->spans, c->ns, day);
    if (k == c->ns)
        return LLONG_MAX;
    return (c->spans[2 * k] <= day ? c->spans[2 * k + 1] : c->spans[2 * k]) * DAY_S;
}

/* the first instant > t at which comp_at changes; LLONG_MAX if never */
static long long comp_next(const struct comp *c, long long t)
{
    if (c->kind == COMP_SPANS) {
        size_t k = span_after(c->spans, c->ns, t);
        if (k == c->ns)
            return LLONG_MAX;
        return c->spans[2 * k] > t ? c->spans[2 * k] : c->spans[2 * k + 1];
    }
    if (c->kind == COMP_WEEK && c->nb == 0)
        return LLONG_MAX;
    bool cur = comp_at(c, t);
    long long s = t;
    for (int guard = 0; guard < 100000; guard++) {
        long off = tz_offset(c->z, s);
        long long next_tr = tz_next_transition(c->z, s);
        long long w = s + off, flip = wall_flip(c, w);
        if (flip != LLONG_MAX) {
            if (flip - off < next_tr)
                return flip - off;
        } else if (w > (c->spans[2 * c->ns - 1] + 2) * DAY_S) {
            return LLONG_MAX; /* past the last holiday, and no jump can bring it back */
        }
        if (next_tr == LLONG_MAX)
            return LLONG_MAX;
        /* the wall clock jumps at next_tr: the answer just after decides */
        if (comp_at(c, next_tr) != cur)
            return next_tr;
        s = next_tr;
    }
    return LLONG_MAX;
}

static void comp_release(struct comp *c)
{
    free(c->bits);
    free(c->bounds);
    free(c->spans);
}

/* ---- combining --------------------------------------------------------------- */

typedef bool (*eval_fn)(const void *ctx, long long t);

/* the first instant > t at which at(ctx, .) changes, given every component it
 * depends on; last is the last finite boundary of any of them */
static long long next_change(eval_fn at, const void *ctx, const struct comp *const *cs, size_t n,
                             long long last, long long t)
{
    bool cur = at(ctx, t);
    long long nx[COMPS_MAX];
    for (size_t i = 0; i < n; i++)
        nx[i] = comp_next(cs[i], t);
    long long base = t > last ? t : last;
    long long horizon = base > LLONG_MAX - HORIZON_S ? LLONG_MAX : base + HORIZON_S;
    for (;;) {
        long long m = LLONG_MAX;
        for (size_t i = 0; i < n; i++)
            if (nx[i] < m)
                m = nx[i];
        if (m == LLONG_MAX || m > horizon)
            return LLONG_MAX;
        if (at(ctx, m) != cur)
            return m;
        for (size_t i = 0; i < n; i++)
            if (nx[i] == m)
                nx[i] = comp_next(cs[i], m);
    }
}

static long long to_s(long long ms)
{
    return tz_fdiv(ms, 1000);
}

static long long to_ms(long long s)
{
    return s >= LLONG_MAX / 1000 ? LLONG_MAX : s * 1000;
}

static bool sched_at(const struct sched *s, long long t)
{
    if (s->kind != SC_LIST)
        return s->kind == SC_ALWAYS;
    for (size_t i = 0; i < s->nc; i++)
        if (comp_at(&s->comps[i], t))
            return true;
    return false;
}

static bool sched_eval(const void *ctx, long long t)
{
    return sched_at(ctx, t);
}

bool sched_match(const struct sched *s, long long utc_ms)
{
    return sched_at(s, to_s(utc_ms));
}

long long sched_next(const struct sched *s, long long utc_ms)
{
    if (s->kind != SC_LIST)
        return LLONG_MAX;
    const struct comp *cs[COMPS_MAX];
    for (size_t i = 0; i < s->nc; i++)
        cs[i] = &s->comps[i];
    return to_ms(next_change(sched_eval, s, cs, s->nc, s->last, to_s(utc_ms)));
}

const char *sched_text(const struct sched *s)
{
    return s->text;
}

const struct tz *sched_zone(const struct sched *s)
{
    return s->first_zone;
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nc; i++)
        comp_release(&s->comps[i]);
    free(s->comps);
    free(s->text);
    free(s);
}

/* ---- parsing ----------------------------------------------------------------- */

static const char *const day_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", NULL};

struct ps {
    const char *s;
    const struct pos *at;
    struct err *e;
};

struct item {
    bool abs;
    unsigned days;  /* bit 0 = Monday */
    int start, end; /* minutes of the day; end may be 1440 */
    const struct tz *z;
    long long a, b; /* abs: [a, b) seconds */
};

static struct pos pos_at(const struct pos *at, size_t off)
{
    struct pos p = {NULL, 1, (int)off + 1};
    if (at) {
        p = *at;
        p.col = at->col + (int)off;
    }
    return p;
}

static int perr(struct ps *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int perr(struct ps *p, size_t off, const char *fmt, ...)
{
    struct pos pos = pos_at(p->at, off);
    va_list ap;
    va_start(ap, fmt);
    err_vset(p->e, PE_CONFIG, &pos, fmt, ap);
    va_end(ap);
    return PE_CONFIG;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static bool word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && !strncasecmp(s, w, n);
}

static int parse_day(struct ps *p, size_t *i, size_t end, int *day)
{
    const char *s = p->s;
    size_t j = *i;
    while (j < end && isalpha((unsigned char)s[j]))
        j++;
    if (j == *i)
        return perr(p, *i, "expected a day (Mon, Tue, Wed, Thu, Fri, Sat or Sun)");
    for (int d = 0; d < 7; d++)
        if (j - *i == 3 && !strncmp(s + *i, day_names[d], 3)) {
            *day = d;
            *i = j;
            return 0;
        }
    char word[32];
    snprintf(word, sizeof word, "%.*s", (int)(j - *i), s + *i);
    const char *near = NULL;
    for (int d = 0; d < 7 && !near; d++)
        if (!strncasecmp(word, day_names[d], 3))
            near = day_names[d]; /* "Thur", "monday", "FRI" */
    if (!near)
        near = str_closest(word, day_names, 7);
    if (near)
        return perr(p, *i, "unknown day '%s' (did you mean '%s'?)", word, near);
    return perr(p, *i, "unknown day '%s' (days are Mon, Tue, Wed, Thu, Fri, Sat and Sun)", word);
}

static int two(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

static bool digits_at(const char *s, size_t i, size_t end, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (i + k >= end || !isdigit((unsigned char)s[i + k]))
            return false;
    return true;
}

/* HH:MM into minutes; 24:00 only as an end */
static int parse_hhmm(struct ps *p, size_t *i, size_t end, bool is_end, int *out)
{
    const char *s = p->s;
    size_t k = *i;
    if (!digits_at(s, k, end, 2) || k + 2 >= end || s[k + 2] != ':' ||
        !digits_at(s, k + 3, end, 2) || (k + 5 < end && isdigit((unsigned char)s[k + 5])))
        return perr(p, k, "expected a time HH:MM with two-digit hours and minutes (e.g. %s)",
                    is_end ? "19:00" : "08:00");
    int h = two(s + k), m = two(s + k + 3);
    if (h > 24)
        return perr(p, k, "hour %02d is out of range (00-23, or 24:00 to end a day)", h);
    if (m > 59)
        return perr(p, k + 3, "minute %02d is out of range (00-59)", m);
    if (h == 24 && m)
        return perr(p, k, "24:%02d is not a time; only 24:00, the end of a day, is", m);
    if (h == 24 && !is_end)
        return perr(p, k, "24:00 can only end a range (start at 00:00)");
    *out = h * 60 + m;
    *i = k + 5;
    return 0;
}

static int parse_zone(struct ps *p, size_t *i, size_t end, const struct tz **z)
{
    const char *s = p->s;
    size_t k = *i, j = k;
    while (j < end && !is_ws(s[j]))
        j++;
    if (j - k > 255)
        return perr(p, k, "time zone name is too long");
    char name[256];
    memcpy(name, s + k, j - k);
    name[j - k] = 0;
    struct err le = {0};
    if (tz_get(z, name, &le)) {
        struct pos pos = pos_at(p->at, k);
        err_set(p->e, le.code, &pos, "%s", le.msg ? le.msg : "unknown time zone");
        if (le.hint)
            err_hint(p->e, "%s", le.hint);
        err_release(&le);
        return PE_CONFIG;
    }
    *i = j;
    return 0;
}

static int parse_recurring(struct ps *p, size_t i, size_t end, struct item *it)
{
    const char *s = p->s;
    int d1, d2, rc;
    if ((rc = parse_day(p, &i, end, &d1)))
        return rc;
    d2 = d1;
    if (i < end && s[i] == '-') {
        i++;
        if ((rc = parse_day(p, &i, end, &d2)))
            return rc;
    }
    for (int d = d1;; d = (d + 1) % 7) {
        it->days |= 1u << d;
        if (d == d2)
            break;
    }
    if (i >= end)
        return perr(p, i, "expected a time range after the days (e.g. 08:00-19:00)");
    if (!is_ws(s[i]))
        return perr(p, i, "unexpected '%c' after the days (write a range as Mon-Fri)", s[i]);
    while (i < end && is_ws(s[i]))
        i++;
    if ((rc = parse_hhmm(p, &i, end, false, &it->start)))
        return rc;
    if (i >= end || s[i] != '-')
        return perr(p, i, "expected '-' between the start and end times");
    i++;
    if ((rc = parse_hhmm(p, &i, end, true, &it->end)))
        return rc;
    if (i >= end)
        return perr(p, i, "expected a time zone after the time range (e.g. Europe/Berlin or UTC)");
    if (!is_ws(s[i]))
        return perr(p, i, "unexpected '%c' after the time range", s[i]);
    while (i < end && is_ws(s[i]))
        i++;
    if ((rc = parse_zone(p, &i, end, &it->z)))
        return rc;
    while (i < end && is_ws(s[i]))
        i++;
    if (i < end)
        return perr(p, i, "unexpected '%.*s' after the time zone", (int)(end - i), s + i);
    return 0;
}

/* YYYY-MM-DDTHH:MM:SS(Z|±HH:MM|±HHMM) into seconds */
static int parse_iso(struct ps *p, size_t *i, size_t end, long long *out)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    const char *s = p->s;
    size_t k = *i;
    for (size_t x = 0; pat[x]; x++) {
        char c = k + x < end ? s[k + x] : 0;
        bool ok = pat[x] == 'd'   ? isdigit((unsigned char)c) != 0
                  : pat[x] == 'T' ? c == 'T' || c == 't'
                                  : c == pat[x];
        if (!ok)
            return perr(p, k + x,
                        "expected a date and time YYYY-MM-DDTHH:MM:SS with an offset "
                        "(e.g. 2026-12-24T00:00:00+01:00)");
    }
    long long y = two(s + k) * 100 + two(s + k + 2);
    int mo = two(s + k + 5), d = two(s + k + 8), h = two(s + k + 11), mi = two(s + k + 14),
        se = two(s + k + 17);
    if (mo < 1 || mo > 12)
        return perr(p, k + 5, "month %02d is out of range (01-12)", mo);
    if (!tz_valid_date(y, mo, d))
        return perr(p, k + 8, "day %02d is out of range for %04lld-%02d", d, y, mo);
    if (h > 23)
        return perr(p, k + 11, "hour %02d is out of range (00-23)", h);
    if (mi > 59)
        return perr(p, k + 14, "minute %02d is out of range (00-59)", mi);
    if (se > 59)
        return perr(p, k + 17, "second %02d is out of range (00-59)", se);
    size_t o = k + 19;
    long off = 0;
    char c = o < end ? s[o] : 0;
    if (c == 'Z' || c == 'z') {
        o++;
    } else if (c == '+' || c == '-') {
        size_t mpos;
        if (digits_at(s, o + 1, end, 2) && o + 3 < end && s[o + 3] == ':' &&
            digits_at(s, o + 4, end, 2))
            mpos = o + 4;
        else if (digits_at(s, o + 1, end, 4) && !(o + 8 < end && s[o + 5] == '-' &&
                                                  digits_at(s, o + 6, end, 2) && s[o + 8] == '-'))
            mpos = o + 3; /* ±HHMM, unless it is the year of the range's end */
        else
            return perr(p, o, "expected an offset such as +01:00, -05:00 or Z after the time");
        int oh = two(s + o + 1), om = two(s + mpos);
        if (oh > 23)
            return perr(p, o + 1, "offset hour %02d is out of range (00-23)", oh);
        if (om > 59)
            return perr(p, mpos, "offset minute %02d is out of range (00-59)", om);
        off = (c == '-' ? -1 : 1) * (oh * 3600L + om * 60L);
        o = mpos + 2;
    } else {
        return perr(p, o, "expected an offset such as +01:00, -05:00 or Z after the time");
    }
    *out = tz_days_from_civil(y, mo, d) * DAY_S + h * 3600 + mi * 60 + se - off;
    *i = o;
    return 0;
}

static int parse_absolute(struct ps *p, size_t i, size_t end, struct item *it)
{
    const char *s = p->s;
    int rc;
    it->abs = true;
    if ((rc = parse_iso(p, &i, end, &it->a)))
        return rc;
    if (i >= end || s[i] != '-')
        return perr(p, i, "expected '-' between the start and the end of the range");
    size_t second = ++i;
    if ((rc = parse_iso(p, &i, end, &it->b)))
        return rc;
    while (i < end && is_ws(s[i]))
        i++;
    if (i < end)
        return perr(p, i, "unexpected '%.*s' after the range", (int)(end - i), s + i);
    if (it->b < it->a)
        return perr(p, second, "the range ends before it starts");
    return 0;
}

static int parse_item(struct ps *p, size_t i, size_t end, struct item *it)
{
    const char *s = p->s;
    unsigned char c = (unsigned char)s[i];
    if (word_is(s + i, end - i, "always") || word_is(s + i, end - i, "never"))
        return perr(p, i, "'%.*s' cannot be combined with other items", (int)(end - i), s + i);
    if (isdigit(c)) {
        if (digits_at(s, i, end, 2) && i + 2 < end && s[i + 2] == ':')
            return perr(p, i, "a time range needs days before it (e.g. Mon-Sun %.*s)",
                        (int)(end - i), s + i);
        return parse_absolute(p, i, end, it);
    }
    if (isalpha(c))
        return parse_recurring(p, i, end, it);
    return perr(p, i,
                "unexpected '%c': expected days such as Mon-Fri, or a date such as "
                "2026-12-24T00:00:00+01:00",
                c);
}

/* set minutes [from, to) of the week, 0 <= from < to <= WEEK_MIN */
static void set_range(uint64_t *bits, long long from, long long to)
{
    while (from < to) {
        long long w = from >> 6, lo = from & 63, hi = to - (w << 6) < 64 ? to - (w << 6) : 64;
        uint64_t mask = (hi == 64 ? ~(uint64_t)0 : ((uint64_t)1 << hi) - 1) & (~(uint64_t)0 << lo);
        bits[w] |= mask;
        from = (w << 6) + hi;
    }
}

/* set minutes [from, to) of the week, wrapping past Sunday 24:00 */
static void set_minutes(uint64_t *bits, long long from, long long to)
{
    if (to <= WEEK_MIN) {
        set_range(bits, from, to);
    } else {
        set_range(bits, from, WEEK_MIN);
        set_range(bits, 0, to - WEEK_MIN);
    }
}

/* the minutes where bit m differs from bit m-1 (cyclically), ascending */
static void find_bounds(struct comp *c)
{
    c->bounds = xreallocarray(NULL, WEEK_MIN, sizeof *c->bounds);
    uint64_t carry = week_bit(c, WEEK_MIN - 1);
    for (long long w = 0; w < WEEK_WORDS; w++) {
        uint64_t x = c->bits[w], d = x ^ (x << 1 | carry);
        if (w == WEEK_WORDS - 1 && WEEK_MIN % 64)
            d &= ((uint64_t)1 << (WEEK_MIN % 64)) - 1;
        carry = x >> 63;
        while (d) {
            int b = __builtin_ctzll(d);
            c->bounds[c->nb++] = (uint16_t)(w * 64 + b);
            d &= d - 1;
        }
    }
}

static int cmp_ll2(const void *a, const void *b)
{
    const long long *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : (x[1] > y[1]) - (x[1] < y[1]);
}

/* sort pairs and merge overlapping or touching ones; empty pairs dropped */
static size_t merge_spans(long long *sp, size_t n)
{
    qsort(sp, n, 2 * sizeof *sp, cmp_ll2);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (sp[2 * i] >= sp[2 * i + 1])
            continue;
        if (k && sp[2 * i] <= sp[2 * k - 1]) {
            if (sp[2 * i + 1] > sp[2 * k - 1])
                sp[2 * k - 1] = sp[2 * i + 1];
            continue;
        }
        sp[2 * k] = sp[2 * i];
        sp[2 * k + 1] = sp[2 * i + 1];
        k++;
    }
    return k;
}

static void compile(struct sched *s, const struct item *it, size_t n)
{
    s->last = LLONG_MIN;
    s->comps = xcalloc(SCHED_ZONES_MAX + 1, sizeof *s->comps);
    long long *abs = NULL;
    size_t nabs = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (it[i].abs) {
            XGROW(abs, cap, 2 * (nabs + 1));
            abs[2 * nabs] = it[i].a;
            abs[2 * nabs + 1] = it[i].b;
            nabs++;
            continue;
        }
        if (!s->first_zone)
            s->first_zone = it[i].z;
        struct comp *c = NULL;
        for (size_t k = 0; k < s->nc && !c; k++)
            if (s->comps[k].z == it[i].z)
                c = &s->comps[k];
        if (!c) {
            c = &s->comps[s->nc++];
            c->kind = COMP_WEEK;
            c->z = it[i].z;
            c->bits = xcalloc(WEEK_WORDS, sizeof *c->bits);
        }
        if (it[i].start == it[i].end)
            continue; /* an empty window */
        for (int d = 0; d < 7; d++) {
            if (!(it[i].days >> d & 1))
                continue;
            long long from = d * 1440LL + it[i].start;
            long long to = (it[i].end > it[i].start ? d : d + 1) * 1440LL + it[i].end;
            set_minutes(c->bits, from, to);
        }
    }
    for (size_t k = 0; k < s->nc; k++)
        find_bounds(&s->comps[k]);
    if (nabs) {
        nabs = merge_spans(abs, nabs);
        if (nabs) {
            struct comp *c = &s->comps[s->nc++];
            c->kind = COMP_SPANS;
            c->spans = abs;
            c->ns = nabs;
            s->last = abs[2 * nabs - 1];
            abs = NULL;
        }
    }
    free(abs);
}

int sched_parse(struct sched **out, const char *spec, const struct pos *at, struct err *e)
{
    *out = NULL;
    struct ps p = {spec, at, e};
    size_t len = strlen(spec);
    if (len > SCHED_SPEC_MAX)
        return perr(&p, 0, "schedule is longer than %d characters", SCHED_SPEC_MAX);
    size_t i = 0, j = len;
    while (i < j && (is_ws(spec[i]) || spec[i] == '\n'))
        i++;
    while (j > i && (is_ws(spec[j - 1]) || spec[j - 1] == '\n'))
        j--;
    if (i == j)
        return perr(&p, i,
                    "empty schedule (write always, never, or items such as "
                    "'Mon-Fri 08:00-19:00 Europe/Berlin')");
    struct sched *s = xcalloc(1, sizeof *s);
    s->text = xstrndup(spec + i, j - i);
    s->last = LLONG_MIN;
    if (word_is(spec + i, j - i, "always") || word_is(spec + i, j - i, "never")) {
        s->kind = tolower((unsigned char)spec[i]) == 'a' ? SC_ALWAYS : SC_NEVER;
        *out = s;
        return 0;
    }
    s->kind = SC_LIST;
    struct item *items = NULL;
    size_t n = 0, cap = 0;
    const struct tz *zones[SCHED_ZONES_MAX];
    size_t nz = 0;
    int rc = 0;
    for (size_t k = i; k <= j;) {
        size_t end = k;
        while (end < j && spec[end] != ',')
            end++;
        size_t a = k, b = end;
        while (a < b && is_ws(spec[a]))
            a++;
        while (b > a && is_ws(spec[b - 1]))
            b--;
        if (a == b) {
            rc = perr(&p, end < j ? end : (k ? k - 1 : 0), "empty item in the list");
            goto out;
        }
        if (n == SCHED_ITEMS_MAX) {
            rc = perr(&p, a, "more than %d items in one schedule", SCHED_ITEMS_MAX);
            goto out;
        }
        XGROW(items, cap, n + 1);
        memset(&items[n], 0, sizeof items[n]);
        if ((rc = parse_item(&p, a, b, &items[n])))
            goto out;
        if (!items[n].abs) {
            size_t z = 0;
            while (z < nz && zones[z] != items[n].z)
                z++;
            if (z == nz) {
                if (nz == SCHED_ZONES_MAX) {
                    rc = perr(&p, b - strlen(tz_name(items[n].z)),
                              "more than %d different time zones in one schedule", SCHED_ZONES_MAX);
                    goto out;
                }
                zones[nz++] = items[n].z;
            }
        }
        n++;
        k = end + 1;
    }
    compile(s, items, n);
out:
    free(items);
    if (rc) {
        sched_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- policies ---------------------------------------------------------------- */

struct sched_policy {
    struct sched *up, *down;
    const struct tz *zone;
    struct comp hol;  /* COMP_DAYS; ns == 0 when there are no holidays */
    long long *hdays; /* sorted unique local day numbers */
    char **hwhy;      /* "holiday YYYY-MM-DD", one per hdays */
    size_t nh;
    char *why_in, *why_out, *why_down, *why_notdown;
    const struct comp *cs[COMPS_MAX];
    size_t ncs;
    long long last;
};

static struct pos value_pos(const struct val *v)
{
    struct pos p = v->pos;
    if (v->quoted && p.col > 0)
        p.col++;
    return p;
}

static int parse_date(const struct val *v, long long *day, struct err *e)
{
    struct pos at = value_pos(v);
    struct ps p = {v->u.str.s, &at, e};
    const char *s = v->u.str.s;
    size_t len = strlen(s);
    static const char pat[] = "dddd-dd-dd";
    for (size_t x = 0; x <= 10; x++) {
        bool ok = x == 10 ? x == len
                          : x < len && (pat[x] == 'd' ? isdigit((unsigned char)s[x]) != 0
                                                      : s[x] == pat[x]);
        if (!ok)
            return perr(&p, x < len ? x : len,
                        "expected a holiday date YYYY-MM-DD (e.g. 2026-12-25)");
    }
    long long y = two(s) * 100 + two(s + 2);
    int m = two(s + 5), d = two(s + 8);
    if (m < 1 || m > 12)
        return perr(&p, 5, "month %02d is out of range (01-12)", m);
    if (!tz_valid_date(y, m, d))
        return perr(&p, 8, "day %02d is out of range for %04lld-%02d", d, y, m);
    *day = tz_days_from_civil(y, m, d);
    return 0;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static int parse_spec_value(struct sched **out, const struct val *v, const char *key, struct err *e)
{
    if (v->kind == VAL_NULL)
        return 0;
    if (v->kind != VAL_STR)
        return err_set(e, PE_CONFIG, &v->pos,
                       "%s must be a string such as 'Mon-Fri 08:00-19:00 Europe/Berlin', not %s",
                       key, val_kind_name(v->kind));
    struct pos at = value_pos(v);
    return sched_parse(out, v->u.str.s, &at, e);
}

int sched_policy_parse(struct sched_policy **out, const struct val *v, struct err *e)
{
    static const char *const keys[] = {"uptime", "downtime", "holidays", "timezone", NULL};
    *out = NULL;
    if (!v || v->kind != VAL_MAP)
        return err_set(e, PE_CONFIG, v ? &v->pos : NULL,
                       "schedule must be a map of uptime, downtime, holidays and timezone");
    for (size_t i = 0; i < v->u.map.n; i++) {
        const char *k = v->u.map.e[i].key;
        bool known = false;
        for (size_t j = 0; keys[j]; j++)
            known |= !strcmp(keys[j], k);
        if (known)
            continue;
        const char *near = str_closest(k, keys, (size_t)-1);
        if (near)
            return err_set(e, PE_CONFIG, &v->u.map.e[i].kpos,
                           "unknown key '%s' in schedule (did you mean '%s'?)", k, near);
        return err_set(e, PE_CONFIG, &v->u.map.e[i].kpos,
                       "unknown key '%s' in schedule (expected uptime, downtime, holidays or "
                       "timezone)",
                       k);
    }
    struct sched_policy *p = xcalloc(1, sizeof *p);
    int rc = 0;
    const struct val *tzv = val_map_get(v, "timezone"), *hv = val_map_get(v, "holidays");
    const struct val *uv = val_map_get(v, "uptime"), *dv = val_map_get(v, "downtime");
    if (uv && (rc = parse_spec_value(&p->up, uv, "uptime", e)))
        goto out;
    if (dv && (rc = parse_spec_value(&p->down, dv, "downtime", e)))
        goto out;
    if (tzv && tzv->kind != VAL_NULL) {
        if (tzv->kind != VAL_STR) {
            rc = err_set(e, PE_CONFIG, &tzv->pos,
                         "timezone must be a zone name such as Europe/Berlin, not %s",
                         val_kind_name(tzv->kind));
            goto out;
        }
        struct err le = {0};
        if (tz_get(&p->zone, tzv->u.str.s, &le)) {
            struct pos at = value_pos(tzv);
            rc = err_set(e, le.code, &at, "%s", le.msg ? le.msg : "unknown time zone");
            if (le.hint)
                err_hint(e, "%s", le.hint);
            err_release(&le);
            goto out;
        }
    }
    if (!p->zone && p->up)
        p->zone = sched_zone(p->up);
    if (!p->zone && p->down)
        p->zone = sched_zone(p->down);
    if (!p->zone && (rc = tz_get(&p->zone, "UTC", e)))
        goto out;
    if (hv && hv->kind != VAL_NULL) {
        if (hv->kind != VAL_LIST) {
            rc = err_set(e, PE_CONFIG, &hv->pos,
                         "holidays must be a list of dates such as [2026-12-25, 2026-12-26], "
                         "not %s",
                         val_kind_name(hv->kind));
            goto out;
        }
        if (hv->u.list.n > SCHED_HOLIDAYS_MAX) {
            rc = err_set(e, PE_LIMIT, &hv->pos, "more than %d holidays", SCHED_HOLIDAYS_MAX);
            goto out;
        }
        p->hdays = xcalloc(hv->u.list.n + 1, sizeof *p->hdays);
        for (size_t i = 0; i < hv->u.list.n; i++) {
            const struct val *d = hv->u.list.v[i];
            if (d->kind != VAL_STR) {
                rc = err_set(e, PE_CONFIG, &d->pos,
                             "expected a holiday date YYYY-MM-DD (e.g. 2026-12-25), not %s",
                             val_kind_name(d->kind));
                goto out;
            }
            if ((rc = parse_date(d, &p->hdays[p->nh], e)))
                goto out;
            p->nh++;
        }
        qsort(p->hdays, p->nh, sizeof *p->hdays, cmp_ll);
        size_t u = 0;
        for (size_t i = 0; i < p->nh; i++)
            if (!u || p->hdays[u - 1] != p->hdays[i])
                p->hdays[u++] = p->hdays[i];
        p->nh = u;
    }
    if (p->nh) {
        p->hwhy = xcalloc(p->nh, sizeof *p->hwhy);
        long long *sp = xreallocarray(NULL, p->nh, 2 * sizeof *sp);
        for (size_t i = 0; i < p->nh; i++) {
            long long y;
            int m, d;
            tz_civil_from_days(p->hdays[i], &y, &m, &d);
            p->hwhy[i] = xasprintf("holiday %04lld-%02d-%02d", y, m, d);
            sp[2 * i] = p->hdays[i];
            sp[2 * i + 1] = p->hdays[i] + 1;
        }
        p->hol.kind = COMP_DAYS;
        p->hol.z = p->zone;
        p->hol.spans = sp;
        p->hol.ns = merge_spans(sp, p->nh);
    }
    p->last = LLONG_MIN;
    struct sched *parts[2] = {p->up, p->down};
    for (int k = 0; k < 2; k++) {
        if (!parts[k] || parts[k]->kind != SC_LIST)
            continue;
        for (size_t i = 0; i < parts[k]->nc; i++)
            p->cs[p->ncs++] = &parts[k]->comps[i];
        if (parts[k]->last > p->last)
            p->last = parts[k]->last;
    }
    if (p->hol.ns) {
        p->cs[p->ncs++] = &p->hol;
        long long hl = (p->hol.spans[2 * p->hol.ns - 1] + 2) * DAY_S;
        if (hl > p->last)
            p->last = hl;
    }
    if (p->up) {
        p->why_in = xasprintf("inside uptime %s", p->up->text);
        p->why_out = xasprintf("outside uptime %s", p->up->text);
    }
    if (p->down) {
        p->why_down = xasprintf("downtime %s", p->down->text);
        p->why_notdown = xasprintf("outside downtime %s", p->down->text);
    }
out:
    if (rc) {
        sched_policy_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void sched_policy_free(struct sched_policy *p)
{
    if (!p)
        return;
    sched_free(p->up);
    sched_free(p->down);
    comp_release(&p->hol);
    for (size_t i = 0; p->hwhy && i < p->nh; i++)
        free(p->hwhy[i]);
    free(p->hwhy);
    free(p->hdays);
    free(p->why_in);
    free(p->why_out);
    free(p->why_down);
    free(p->why_notdown);
    free(p);
}

static bool holiday_at(const struct sched_policy *p, long long t)
{
    return p->hol.ns && comp_at(&p->hol, t);
}

static bool policy_at(const void *ctx, long long t)
{
    const struct sched_policy *p = ctx;
    return (!p->up || sched_at(p->up, t)) && !(p->down && sched_at(p->down, t)) &&
           !holiday_at(p, t);
}

bool sched_policy_up(const struct sched_policy *p, long long utc_ms)
{
    return policy_at(p, to_s(utc_ms));
}

long long sched_policy_next(const struct sched_policy *p, long long utc_ms)
{
    return to_ms(next_change(policy_at, p, p->cs, p->ncs, p->last, to_s(utc_ms)));
}

const char *sched_policy_why(const struct sched_policy *p, long long utc_ms)
{
    long long t = to_s(utc_ms);
    if (holiday_at(p, t)) {
        long long day = tz_fdiv(t + tz_offset(p->zone, t), DAY_S);
        size_t lo = 0, hi = p->nh;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (p->hdays[mid] < day)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo < p->nh ? p->hwhy[lo] : "holiday";
    }
    if (p->down && sched_at(p->down, t))
        return p->why_down;
    if (p->up)
        return sched_at(p->up, t) ? p->why_in : p->why_out;
    if (p->down)
        return p->why_notdown;
    return p->nh ? "not a holiday" : "no schedule";
}

const struct tz *sched_policy_zone(const struct sched_policy *p)
{
    return p->zone;
}

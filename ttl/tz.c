/* tz: TZif reader (RFC 8536: v1, v2, v3, v4; the 64-bit data when present),
 * POSIX TZ rule strings (the TZif footer), the zone cache, civil time.
 *
 * A zone is one sorted table of transitions. The footer's rule is expanded
 * into the table up to 2201-01-01 at load time, so for any instant of
 * practical interest an offset is a binary search over a few hundred entries;
 * beyond the table (or before it, for a zone that is only a rule) the rule is
 * evaluated directly. Nothing here touches the process's TZ, and nothing
 * allocates after a zone is loaded.
 *
 * Zones come from the system's zoneinfo directory; a zone it lacks (or every
 * zone, where there is no such directory) comes from the table compiled in
 * (ttl/tz_embedded.h), so a binary in an empty root file system still knows
 * Europe/Berlin.
 *
 * What it leaves to others: what a schedule means (ttl/sched.c). */
#include "ttl/tz.h"
#include "ttl/tz_embedded.h"

#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_FILE_MAX ((size_t)1 << 20)  /* a TZif file; real ones are under 4 KiB */
#define TZ_INDEX_MAX ((size_t)4 << 20) /* tzdata.zi, read only to suggest a name */
#define TZ_TIMES_MAX 50000u            /* transitions in one file */
#define TZ_ABBR_MAX 16                 /* characters of an abbreviation, with the NUL */
#define TZ_NAME_MAX 255
#define TZ_RULE_FIRST_YEAR 1900 /* a rule-only zone is tabulated from here */
#define TZ_RULE_LAST_YEAR 2200  /* and up to the end of this year */
/* instants further than this from the epoch (about 317,000 years) are
 * evaluated as if they were this far: keeps every product in range */
#define TZ_T_LIMIT 10000000000000LL

struct tz_rdate {
    char kind; /* 'J': day 1..365, Feb 29 never counted; 'D': day 0..365; 'M': month.week.day */
    int m, w, d;
    long time; /* seconds after local midnight (may be negative or > 24 h) */
};

struct tz_rule {
    long std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    struct tz_rdate start, end;
    uint16_t std_abbr, dst_abbr; /* into the zone's chars */
};

struct tz {
    char *name;
    size_t n;
    long long *at;  /* transition instants, strictly ascending */
    int32_t *off;   /* offset in force from at[i] */
    uint16_t *abbr; /* abbreviation in force from at[i] (index into chars) */
    int32_t off0;   /* before at[0] */
    uint16_t abbr0;
    char *chars;
    size_t nchars;
    bool has_rule;
    struct tz_rule rule;
    long long rule_lo, rule_hi; /* the table is authoritative on [rule_lo, rule_hi) */
};

/* ---- civil time ---------------------------------------------------------- */

long long tz_days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(long long z, long long *y, int *m, int *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool leap_year(long long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(long long y, int m)
{
    static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : md[m - 1];
}

bool tz_valid_date(long long y, int m, int d)
{
    return m >= 1 && m <= 12 && d >= 1 && d <= month_days(y, m);
}

static long long clamp_t(long long t)
{
    return t > TZ_T_LIMIT ? TZ_T_LIMIT : t < -TZ_T_LIMIT ? -TZ_T_LIMIT : t;
}

/* ---- POSIX TZ rules ------------------------------------------------------ */

/* the UTC instant of the rule's start (or end) transition in year y */
static long long rule_when(const struct tz_rule *r, long long y, bool start)
{
    const struct tz_rdate *d = start ? &r->start : &r->end;
    long long day;
    if (d->kind == 'J') {
        day = tz_days_from_civil(y, 1, 1) + d->d - 1 + (leap_year(y) && d->d >= 60);
    } else if (d->kind == 'D') {
        day = tz_days_from_civil(y, 1, 1) + d->d;
    } else {
        long long first = tz_days_from_civil(y, d->m, 1);
        long long wd = tz_fmod(first + 4, 7); /* 0 = Sunday; 1970-01-01 was a Thursday */
        day = first + tz_fmod(d->d - wd, 7) + (long long)(d->w - 1) * 7;
        if (day >= first + month_days(y, d->m))
            day -= 7; /* week 5 means the last such day of the month */
    }
    return day * 86400 + d->time - (start ? r->std_off : r->dst_off);
}

static bool rule_dst(const struct tz_rule *r, long long t)
{
    if (!r->has_dst)
        return false;
    long long y;
    int m, d;
    tz_civil_from_days(tz_fdiv(t + r->std_off, 86400), &y, &m, &d);
    long long s = rule_when(r, y, true), e = rule_when(r, y, false);
    if (s <= e)
        return t >= s && t < e;
    return t < e || t >= s; /* a southern-hemisphere rule: DST spans the new year */
}

static long rule_off(const struct tz_rule *r, long long t)
{
    return rule_dst(r, t) ? r->dst_off : r->std_off;
}

/* the first instant > t at which the rule's answer changes; LLONG_MAX if never */
static long long rule_next(const struct tz_rule *r, long long t)
{
    if (!r->has_dst || r->std_off == r->dst_off)
        return LLONG_MAX;
    long long y;
    int m, d;
    tz_civil_from_days(tz_fdiv(t + r->std_off, 86400), &y, &m, &d);
    long long best = LLONG_MAX;
    for (long long yy = y - 1; yy <= y + 2; yy++)
        for (int k = 0; k < 2; k++) {
            long long c = rule_when(r, yy, k == 0);
            if (c > t && c < best && rule_dst(r, c) != rule_dst(r, c - 1))
                best = c;
        }
    return best;
}

struct pp {
    const char *s;
    size_t i;
};

static bool pp_name(struct pp *p, char *out)
{
    const char *s = p->s;
    size_t j = p->i, len;
    if (s[j] == '<') {
        j++;
        while (s[j] && s[j] != '>') {
            if (!isalnum((unsigned char)s[j]) && s[j] != '+' && s[j] != '-')
                return false;
            j++;
        }
        if (s[j] != '>')
            return false;
        len = j - p->i - 1;
        if (len < 1 || len >= TZ_ABBR_MAX)
            return false;
        memcpy(out, s + p->i + 1, len);
        j++;
    } else {
        while (isalpha((unsigned char)s[j]))
            j++;
        len = j - p->i;
        if (len < 3 || len >= TZ_ABBR_MAX)
            return false;
        memcpy(out, s + p->i, len);
    }
    out[len] = 0;
    p->i = j;
    return true;
}

static bool pp_num(struct pp *p, int maxdigits, long lo, long hi, long *out)
{
    long v = 0;
    int n = 0;
    while (isdigit((unsigned char)p->s[p->i]) && n < maxdigits) {
        v = v * 10 + (p->s[p->i++] - '0');
        n++;
    }
    if (!n || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* [+-]hh[:mm[:ss]], hours at most maxh; seconds */
static bool pp_hms(struct pp *p, long maxh, long *out)
{
    long sign = 1, h, m = 0, s = 0;
    if (p->s[p->i] == '+' || p->s[p->i] == '-')
        sign = p->s[p->i++] == '-' ? -1 : 1;
    if (!pp_num(p, 3, 0, maxh, &h))
        return false;
    if (p->s[p->i] == ':') {
        p->i++;
        if (!pp_num(p, 2, 0, 59, &m))
            return false;
        if (p->s[p->i] == ':') {
            p->i++;
            if (!pp_num(p, 2, 0, 59, &s))
                return false;
        }
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return true;
}

static bool pp_date(struct pp *p, struct tz_rdate *d)
{
    long a, b, c;
    if (p->s[p->i] == 'J') {
        p->i++;
        if (!pp_num(p, 3, 1, 365, &a))
            return false;
        d->kind = 'J';
        d->d = (int)a;
    } else if (p->s[p->i] == 'M') {
        p->i++;
        if (!pp_num(p, 2, 1, 12, &a) || p->s[p->i++] != '.' || !pp_num(p, 1, 1, 5, &b) ||
            p->s[p->i++] != '.' || !pp_num(p, 1, 0, 6, &c))
            return false;
        d->kind = 'M';
        d->m = (int)a;
        d->w = (int)b;
        d->d = (int)c;
    } else {
        if (!pp_num(p, 3, 0, 365, &a))
            return false;
        d->kind = 'D';
        d->d = (int)a;
    }
    d->time = 7200;
    if (p->s[p->i] == '/') {
        p->i++;
        if (!pp_hms(p, 167, &d->time))
            return false;
    }
    return true;
}

/* parse a POSIX TZ string into r; abbreviations into std/dst */
static bool parse_rule(const char *s, struct tz_rule *r, char *std, char *dst)
{
    struct pp p = {s, 0};
    memset(r, 0, sizeof *r);
    dst[0] = 0;
    long off;
    if (!pp_name(&p, std) || !pp_hms(&p, 24, &off))
        return false;
    r->std_off = -off;
    if (!s[p.i])
        return true;
    if (!pp_name(&p, dst))
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (s[p.i] && s[p.i] != ',') {
        if (!pp_hms(&p, 24, &off))
            return false;
        r->dst_off = -off;
    }
    if (!s[p.i]) {
        /* no rule given: the US rule, as glibc's posixrules default */
        r->start = (struct tz_rdate){'M', 3, 2, 0, 7200};
        r->end = (struct tz_rdate){'M', 11, 1, 0, 7200};
        return true;
    }
    if (s[p.i++] != ',' || !pp_date(&p, &r->start) || s[p.i++] != ',' || !pp_date(&p, &r->end))
        return false;
    return s[p.i] == 0;
}

/* ---- building a zone ----------------------------------------------------- */

static uint16_t add_chars(struct tz *z, const char *s)
{
    size_t n = strlen(s) + 1;
    for (size_t i = 0; i + n <= z->nchars; i++)
        if (!memcmp(z->chars + i, s, n))
            return (uint16_t)i;
    z->chars = xrealloc(z->chars, z->nchars + n);
    memcpy(z->chars + z->nchars, s, n);
    uint16_t at = (uint16_t)z->nchars;
    z->nchars += n;
    return at;
}

struct ev {
    long long at;
    bool dst;
};

static int ev_cmp(const void *a, const void *b)
{
    const struct ev *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* tabulate the rule's transitions in (after, rule_hi) onto the table */
static void expand_rule(struct tz *z, size_t *cap, long long after)
{
    struct tz_rule *r = &z->rule;
    z->rule_hi = tz_days_from_civil(TZ_RULE_LAST_YEAR + 1, 1, 1) * 86400;
    if (!r->has_dst)
        return;
    long long y0;
    int m, d;
    tz_civil_from_days(tz_fdiv(after, 86400), &y0, &m, &d);
    if (y0 > TZ_RULE_LAST_YEAR)
        return;
    size_t nev = (size_t)(TZ_RULE_LAST_YEAR + 2 - (y0 - 1)) * 2, k = 0;
    struct ev *ev = xreallocarray(NULL, nev, sizeof *ev);
    for (long long y = y0 - 1; y <= TZ_RULE_LAST_YEAR + 1; y++) {
        ev[k++] = (struct ev){rule_when(r, y, true), true};
        ev[k++] = (struct ev){rule_when(r, y, false), false};
    }
    qsort(ev, k, sizeof *ev, ev_cmp);
    int32_t cur_off = z->n ? z->off[z->n - 1] : z->off0;
    uint16_t cur_abbr = z->n ? z->abbr[z->n - 1] : z->abbr0;
    for (size_t i = 0; i < k; i++) {
        if (ev[i].at <= after || ev[i].at >= z->rule_hi)
            continue;
        /* the state in force just after this instant, from the rule itself */
        bool dst = rule_dst(r, ev[i].at);
        int32_t o = (int32_t)(dst ? r->dst_off : r->std_off);
        uint16_t a = dst ? r->dst_abbr : r->std_abbr;
        if (o == cur_off && a == cur_abbr)
            continue;
        if (z->n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            z->at = xreallocarray(z->at, *cap, sizeof *z->at);
            z->off = xreallocarray(z->off, *cap, sizeof *z->off);
            z->abbr = xreallocarray(z->abbr, *cap, sizeof *z->abbr);
        }
        z->at[z->n] = ev[i].at;
        z->off[z->n] = o;
        z->abbr[z->n] = a;
        z->n++;
        cur_off = o;
        cur_abbr = a;
    }
    free(ev);
}

void tz_free(struct tz *z)
{
    if (!z)
        return;
    free(z->name);
    free(z->at);
    free(z->off);
    free(z->abbr);
    free(z->chars);
    free(z);
}

/* attach a parsed footer: the rule governs from the last transition on */
static void attach_rule(struct tz *z, size_t *cap, const struct tz_rule *r, const char *std,
                        const char *dst)
{
    z->has_rule = true;
    z->rule = *r;
    z->rule.std_abbr = add_chars(z, std);
    z->rule.dst_abbr = add_chars(z, dst[0] ? dst : std);
    long long after;
    if (z->n) {
        z->rule_lo = LLONG_MIN;
        after = z->at[z->n - 1];
    } else {
        /* a zone that is only a rule: tabulate it from 1900 on */
        z->rule_lo = tz_days_from_civil(TZ_RULE_FIRST_YEAR, 1, 1) * 86400;
        after = z->rule_lo - 1;
        bool d0 = rule_dst(&z->rule, z->rule_lo);
        z->off0 = (int32_t)(d0 ? z->rule.dst_off : z->rule.std_off);
        z->abbr0 = d0 ? z->rule.dst_abbr : z->rule.std_abbr;
    }
    expand_rule(z, cap, after);
}

int tz_parse_posix(struct tz **out, const char *spec, struct err *e)
{
    *out = NULL;
    struct tz_rule r;
    char std[TZ_ABBR_MAX], dst[TZ_ABBR_MAX];
    if (strlen(spec) > 200 || !parse_rule(spec, &r, std, dst))
        return err_set(e, PE_CONFIG, NULL, "invalid POSIX TZ string '%.200s'", spec);
    struct tz *z = xcalloc(1, sizeof *z);
    z->name = xstrdup(spec);
    size_t cap = 0;
    z->abbr0 = add_chars(z, std);
    z->off0 = (int32_t)r.std_off;
    attach_rule(z, &cap, &r, std, dst);
    *out = z;
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct hdr {
    int version; /* 1, 2, 3, 4 */
    uint32_t isut, isstd, leap, time, type, chr;
};

static bool read_hdr(const unsigned char *p, size_t len, size_t at, struct hdr *h)
{
    if (len < 44 || at > len - 44 || memcmp(p + at, "TZif", 4))
        return false;
    unsigned char v = p[at + 4];
    if (v == 0)
        h->version = 1;
    else if (v >= '2' && v <= '9')
        h->version = v - '0';
    else
        return false;
    const unsigned char *c = p + at + 20;
    h->isut = be32(c);
    h->isstd = be32(c + 4);
    h->leap = be32(c + 8);
    h->time = be32(c + 12);
    h->type = be32(c + 16);
    h->chr = be32(c + 20);
    return true;
}

/* size of a data block; SIZE_MAX when the counts are out of bounds */
static size_t block_size(const struct hdr *h, size_t tsize)
{
    if (h->time > TZ_TIMES_MAX || h->type > 256 || h->chr > 4096 || h->leap > 10000 ||
        h->isut > 256 || h->isstd > 256)
        return SIZE_MAX;
    return (size_t)h->time * tsize + h->time + (size_t)h->type * 6 + h->chr +
           (size_t)h->leap * (tsize + 4) + h->isstd + h->isut;
}

static int bad(struct err *e, const char *name, const char *why)
{
    return err_set(e, PE_CONFIG, NULL, "time zone '%s': %s", name, why);
}

int tz_parse_tzif(struct tz **out, const char *name, const void *data, size_t len, struct err *e)
{
    *out = NULL;
    const unsigned char *p = data;
    struct hdr h;
    if (!read_hdr(p, len, 0, &h))
        return bad(e, name, "not a TZif file");
    size_t tsize = 4, at = 44, bs = block_size(&h, 4);
    if (bs == SIZE_MAX)
        return bad(e, name, "TZif counts out of range");
    if (h.version >= 2) {
        /* skip the 32-bit block; use the second header and 64-bit data */
        if (bs > len - at || !read_hdr(p, len, at + bs, &h))
            return bad(e, name, "truncated TZif file");
        at += bs + 44;
        tsize = 8;
        bs = block_size(&h, 8);
        if (bs == SIZE_MAX)
            return bad(e, name, "TZif counts out of range");
    }
    if (h.type == 0 || h.chr == 0)
        return bad(e, name, "TZif file has no local time types");
    if (h.leap)
        return bad(e, name, "zones with leap seconds (right/...) are not supported");
    if ((h.isstd && h.isstd != h.type) || (h.isut && h.isut != h.type))
        return bad(e, name, "TZif counts are inconsistent");
    if (bs > len - at)
        return bad(e, name, "truncated TZif file");
    const unsigned char *tp = p + at, *ip = tp + (size_t)h.time * tsize, *yp = ip + h.time,
                        *cp = yp + (size_t)h.type * 6;
    for (uint32_t i = 0; i < h.type; i++) {
        int32_t o = (int32_t)be32(yp + i * 6);
        if (o <= -93600 || o >= 93600)
            return bad(e, name, "UT offset out of range");
        if (yp[i * 6 + 5] >= h.chr || !memchr(cp + yp[i * 6 + 5], 0, h.chr - yp[i * 6 + 5]))
            return bad(e, name, "bad time zone abbreviation");
    }
    struct tz *z = xcalloc(1, sizeof *z);
    z->name = xstrdup(name);
    z->chars = xmalloc(h.chr);
    memcpy(z->chars, cp, h.chr);
    z->nchars = h.chr;
    size_t cap = (size_t)h.time + 16;
    z->at = xreallocarray(NULL, cap, sizeof *z->at);
    z->off = xreallocarray(NULL, cap, sizeof *z->off);
    z->abbr = xreallocarray(NULL, cap, sizeof *z->abbr);
    z->off0 = (int32_t)be32(yp);
    z->abbr0 = yp[5];
    int rc = 0;
    for (uint32_t i = 0; i < h.time; i++) {
        long long t = tsize == 8 ? be64(tp + (size_t)i * 8) : (int32_t)be32(tp + (size_t)i * 4);
        if (z->n && t <= z->at[z->n - 1]) {
            rc = bad(e, name, "TZif transitions are not in order");
            goto out;
        }
        if (ip[i] >= h.type) {
            rc = bad(e, name, "TZif transition has a bad type index");
            goto out;
        }
        z->at[z->n] = t;
        z->off[z->n] = (int32_t)be32(yp + ip[i] * 6);
        z->abbr[z->n] = yp[ip[i] * 6 + 5];
        z->n++;
    }
    z->rule_lo = LLONG_MIN;
    z->rule_hi = LLONG_MAX;
    if (h.version >= 2) {
        size_t f = at + bs;
        if (f < len && p[f] == '\n') {
            const unsigned char *nl = memchr(p + f + 1, '\n', len - f - 1);
            if (!nl) {
                rc = bad(e, name, "TZif footer is not terminated");
                goto out;
            }
            size_t fl = (size_t)(nl - (p + f + 1));
            if (fl) {
                char foot[256];
                struct tz_rule r;
                char std[TZ_ABBR_MAX], dst[TZ_ABBR_MAX];
                if (fl >= sizeof foot) {
                    rc = bad(e, name, "TZif footer is too long");
                    goto out;
                }
                memcpy(foot, p + f + 1, fl);
                foot[fl] = 0;
                if (memchr(foot, 0, fl) || !parse_rule(foot, &r, std, dst)) {
                    rc = err_set(e, PE_CONFIG, NULL, "time zone '%s': unsupported TZ rule '%s'",
                                 name, foot);
                    goto out;
                }
                attach_rule(z, &cap, &r, std, dst);
            }
        }
    }
out:
    if (rc) {
        tz_free(z);
        return rc;
    }
    *out = z;
    return 0;
}

/* ---- lookups --------------------------------------------------------------- */

/* how many transitions are at or before t */
static size_t upto(const struct tz *z, long long t)
{
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->at[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool by_rule(const struct tz *z, long long t)
{
    return z->has_rule && (t >= z->rule_hi || t < z->rule_lo);
}

long tz_offset(const struct tz *z, long long t)
{
    if (!z)
        return 0;
    t = clamp_t(t);
    if (by_rule(z, t))
        return rule_off(&z->rule, t);
    size_t i = upto(z, t);
    return i ? z->off[i - 1] : z->off0;
}

const char *tz_abbr(const struct tz *z, long long t)
{
    if (!z)
        return "UTC";
    t = clamp_t(t);
    if (by_rule(z, t))
        return z->chars + (rule_dst(&z->rule, t) ? z->rule.dst_abbr : z->rule.std_abbr);
    size_t i = upto(z, t);
    return z->chars + (i ? z->abbr[i - 1] : z->abbr0);
}

const char *tz_name(const struct tz *z)
{
    return z ? z->name : "UTC";
}

long long tz_next_transition(const struct tz *z, long long t)
{
    if (!z || t >= TZ_T_LIMIT)
        return LLONG_MAX;
    if (t < -TZ_T_LIMIT)
        t = -TZ_T_LIMIT;
    if (z->has_rule && t < z->rule_lo) {
        long long c = rule_next(&z->rule, t);
        return c < z->rule_lo ? c : z->rule_lo;
    }
    if (z->has_rule && t >= z->rule_hi)
        return rule_next(&z->rule, t);
    size_t i = upto(z, t);
    if (i < z->n)
        return z->at[i];
    return z->has_rule ? rule_next(&z->rule, t) : LLONG_MAX;
}

void tz_civil(const struct tz *z, long long t, struct tz_civil *c)
{
    long off = tz_offset(z, t);
    long long local = clamp_t(t) + off;
    long long days = tz_fdiv(local, 86400), sod = local - days * 86400;
    tz_civil_from_days(days, &c->year, &c->mon, &c->day);
    c->hour = (int)(sod / 3600);
    c->min = (int)(sod / 60 % 60);
    c->sec = (int)(sod % 60);
    c->wday = (int)tz_fmod(days + 3, 7);
    c->off = off;
    c->abbr = tz_abbr(z, t);
}

void tz_format(struct sb *out, const struct tz *z, long long t)
{
    struct tz_civil c;
    tz_civil(z, t, &c);
    long a = c.off < 0 ? -c.off : c.off;
    sb_addf(out, "%04lld-%02d-%02dT%02d:%02d:%02d%c%02ld:%02ld", c.year, c.mon, c.day, c.hour,
            c.min, c.sec, c.off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
    if (a % 60)
        sb_addf(out, ":%02ld", a % 60);
}

/* ---- files and the cache --------------------------------------------------- */

struct cached {
    struct tz *z;
    struct cached *next;
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cached *cache;

static const char *zone_root(void)
{
    const char *r = getenv("TZDIR");
    return r && *r ? r : "/usr/share/zoneinfo";
}

/* a relative path of components [A-Za-z0-9._+-], none empty or starting '.' */
static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (!n || n > TZ_NAME_MAX || name[0] == '/')
        return false;
    bool start = true;
    for (const char *p = name; *p; p++) {
        if (*p == '/') {
            if (start)
                return false;
            start = true;
            continue;
        }
        if (start && *p == '.')
            return false;
        start = false;
        if (!isalnum((unsigned char)*p) && !strchr("._+-", *p))
            return false;
    }
    return !start;
}

static int read_file(const char *path, size_t max, char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int er = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        close(fd);
        return -er;
    }
    struct sb b;
    sb_init_max(&b, max);
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int er = errno;
            close(fd);
            sb_release(&b);
            return -er;
        }
        if (!n)
            break;
        sb_add(&b, chunk, (size_t)n);
        if (!sb_ok(&b)) {
            close(fd);
            sb_release(&b);
            return -EFBIG;
        }
    }
    close(fd);
    *len = b.len;
    *buf = sb_steal(&b);
    return 0;
}

/* the embedded zone called name, or NULL */
static const struct tz_embedded *embedded_find(const char *name)
{
    size_t lo = 0, hi = tz_embedded_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(tz_embedded_zones[mid].name, name);
        if (!c)
            return &tz_embedded_zones[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* the zone name nearest to name, from tzdata.zi ("Z name ..." and "L target
 * alias"), else from the embedded table */
static char *suggest(const char *root, const char *name)
{
    const char **names = NULL;
    size_t n = 0, cap = 0;
    char path[PATH_MAX];
    char *text = NULL;
    size_t len;
    if ((size_t)snprintf(path, sizeof path, "%s/tzdata.zi", root) >= sizeof path ||
        read_file(path, TZ_INDEX_MAX, &text, &len)) {
        text = NULL;
        for (size_t i = 0; i < tz_embedded_count; i++) {
            XGROW(names, cap, n + 1);
            names[n++] = tz_embedded_zones[i].name;
        }
    }
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *w = NULL;
        if (line[0] == 'Z' && line[1] == ' ') {
            w = line + 2;
        } else if (line[0] == 'L' && line[1] == ' ') {
            w = strchr(line + 2, ' ');
            w = w ? w + 1 : NULL;
        }
        if (!w)
            continue;
        w[strcspn(w, " \t")] = 0;
        XGROW(names, cap, n + 1);
        names[n++] = w;
    }
    const char *hit = NULL;
    for (size_t i = 0; i < n && !hit; i++)
        if (!strcasecmp(names[i], name))
            hit = names[i];
    if (!hit)
        hit = str_closest(name, names, n);
    char *r = hit ? xstrdup(hit) : NULL;
    free(names);
    free(text);
    return r;
}

static int unknown(struct err *e, const char *root, bool have_root, const char *name)
{
    char *near = suggest(root, name);
    if (near)
        err_set(e, PE_CONFIG, NULL, "unknown time zone '%s' (did you mean '%s'?)", name, near);
    else
        err_set(e, PE_CONFIG, NULL, "unknown time zone '%s'", name);
    if (have_root)
        err_hint(e,
                 "zone names are IANA names such as Europe/Berlin, America/New_York, UTC or "
                 "Etc/GMT+5, as found under %s",
                 root);
    else
        err_hint(e,
                 "zone names are IANA names such as Europe/Berlin, America/New_York, UTC or "
                 "Etc/GMT+5; %s has none, and prenv's built-in table (tzdata %s) has no '%s'",
                 root, tz_embedded_version, name);
    free(near);
    return PE_CONFIG;
}

/* a zone from the table compiled in; 1 when it has no such zone */
static int load_embedded(struct tz **out, const char *name, struct err *e)
{
    const struct tz_embedded *z = embedded_find(name);
    if (!z)
        return 1;
    return tz_parse_tzif(out, name, tz_embedded_data + z->off, z->len, e);
}

static int load(struct tz **out, const char *name, struct err *e)
{
    const char *root = zone_root();
    if (!valid_name(name)) {
        err_set(e, PE_CONFIG, NULL, "invalid time zone name '%.*s'", TZ_NAME_MAX, name);
        err_hint(e, "zone names are IANA names such as Europe/Berlin, UTC or Etc/GMT+5");
        return PE_CONFIG;
    }
    char *rroot = realpath(root, NULL);
    if (!rroot) {
        int rc = load_embedded(out, name, e);
        if (rc <= 0)
            return rc;
        if (tz_embedded_count)
            return unknown(e, root, false, name);
        err_set(e, PE_CONFIG, NULL, "unknown time zone '%s': no time zone data in %s", name, root);
        err_hint(e, "install tzdata (scripts/deps.sh does) or point TZDIR at a zoneinfo directory");
        return PE_CONFIG;
    }
    char path[PATH_MAX];
    int rc = 0;
    char *rp = NULL, *buf = NULL;
    size_t len = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", rroot, name) >= sizeof path) {
        rc = unknown(e, root, true, name);
        goto out;
    }
    rp = realpath(path, NULL);
    if (!rp) {
        rc = load_embedded(out, name, e);
        if (rc > 0)
            rc = unknown(e, root, true, name);
        goto out;
    }
    size_t rl = strlen(rroot);
    if (strncmp(rp, rroot, rl) != 0 || (rp[rl] != '/' && strcmp(rroot, "/") != 0)) {
        rc = err_set(e, PE_CONFIG, NULL, "time zone '%s' leads outside %s", name, root);
        goto out;
    }
    int r = read_file(rp, TZ_FILE_MAX, &buf, &len);
    if (r == -EISDIR) {
        rc = unknown(e, root, true, name);
        goto out;
    }
    if (r) {
        rc = err_set(e, PE_CONFIG, NULL, "time zone '%s': %s", name,
                     r == -EFBIG ? "file is too large" : strerror(-r));
        goto out;
    }
    rc = tz_parse_tzif(out, name, buf, len, e);
out:
    free(buf);
    free(rp);
    free(rroot);
    return rc;
}

static struct tz *fixed_utc(void)
{
    struct tz *z = xcalloc(1, sizeof *z);
    z->name = xstrdup("UTC");
    z->abbr0 = add_chars(z, "UTC");
    z->rule_lo = LLONG_MIN;
    z->rule_hi = LLONG_MAX;
    return z;
}

int tz_get(const struct tz **out, const char *name, struct err *e)
{
    *out = NULL;
    pthread_mutex_lock(&cache_mu);
    for (struct cached *c = cache; c; c = c->next)
        if (!strcmp(c->z->name, name)) {
            *out = c->z;
            pthread_mutex_unlock(&cache_mu);
            return 0;
        }
    struct tz *z = NULL;
    struct err le = {0};
    int rc = load(&z, name, &le);
    if (rc && !strcmp(name, "UTC")) {
        err_release(&le);
        z = fixed_utc();
        rc = 0;
    }
    if (!rc) {
        struct cached *c = xcalloc(1, sizeof *c);
        c->z = z;
        c->next = cache;
        cache = c;
        *out = z;
    }
    pthread_mutex_unlock(&cache_mu);
    if (rc && e)
        err_move(e, &le);
    err_release(&le);
    return rc;
}

void tz_free_all(void)
{
    pthread_mutex_lock(&cache_mu);
    struct cached *c = cache;
    cache = NULL;
    pthread_mutex_unlock(&cache_mu);
    while (c) {
        struct cached *next = c->next;
        tz_free(c->z);
        free(c);
        c = next;
    }
}

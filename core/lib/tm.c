/* tm: clocks, RFC 3339 and durations. */
#include "core/lib/tm.h"

#include "core/lib/sb.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

long long tm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long tm_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
 * algorithm), so no time-zone state is touched */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long yy = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

void tm_rfc3339(struct sb *out, long long ms)
{
    long long secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    long long rem = ms - secs * 1000;
    long long days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    long long sod = secs - days * 86400;
    long long y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        sb_addf(out, "%04lld-%02u-%02uT%02lld:%02lld:%02lld", y, m, d, sod / 3600, sod / 60 % 60,
                sod % 60);
    } else {
        char b[20];
        unsigned yy = (unsigned)y, h = (unsigned)(sod / 3600), mi = (unsigned)(sod / 60 % 60),
                 se = (unsigned)(sod % 60);
        b[0] = (char)('0' + yy / 1000);
        b[1] = (char)('0' + yy / 100 % 10);
        b[2] = (char)('0' + yy / 10 % 10);
        b[3] = (char)('0' + yy % 10);
        b[4] = '-';
        b[5] = (char)('0' + m / 10);
        b[6] = (char)('0' + m % 10);
        b[7] = '-';
        b[8] = (char)('0' + d / 10);
        b[9] = (char)('0' + d % 10);
        b[10] = 'T';
        b[11] = (char)('0' + h / 10);
        b[12] = (char)('0' + h % 10);
        b[13] = ':';
        b[14] = (char)('0' + mi / 10);
        b[15] = (char)('0' + mi % 10);
        b[16] = ':';
        b[17] = (char)('0' + se / 10);
        b[18] = (char)('0' + se % 10);
        sb_add(out, b, 19);
    }
    if (rem) {
        char f[4] = {'.', (char)('0' + rem / 100), (char)('0' + rem / 10 % 10),
                     (char)('0' + rem % 10)};
        sb_add(out, f, 4);
    }
    sb_addc(out, 'Z');
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool tm_parse_rfc3339(const char *s, long long *out)
{
    int y, mo, d, h, mi, se;
    if (strlen(s) < 19 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se))
        return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return false;
    const char *p = s + 19;
    long long frac = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (isdigit((unsigned char)*p)) {
            if (nd < 3)
                frac = frac * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (!nd)
            return false;
        for (; nd < 3; nd++)
            frac *= 10;
    }
    long long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return false;
        off = (oh * 60 + om) * 60LL * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return false;
    }
    if (*p)
        return false;
    long long days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    long long secs = days * 86400 + h * 3600 + mi * 60 + (se == 60 ? 59 : se) - off;
    *out = secs * 1000 + frac;
    return true;
}

bool dur_parse(const char *s, long long *ms, const char **why)
{
    static const struct {
        const char *unit;
        long long ms;
    } units[] = {{"ms", 1},           {"s", 1000},           {"m", 60000},
                 {"h", 3600000},      {"d", 86400000},       {"w", 604800000}};
    const char *p = s;
    long long total = 0;
    int parts = 0;
    if (!*p) {
        *why = "empty duration";
        return false;
    }
    while (*p) {
        if (!isdigit((unsigned char)*p)) {
            *why = "expected a number (durations look like 90s, 15m, 8h, 3d, 1w or 1h30m)";
            return false;
        }
        long long n = 0;
        while (isdigit((unsigned char)*p)) {
            n = n * 10 + (*p - '0');
            if (n > 1000000000LL) {
                *why = "duration is too large";
                return false;
            }
            p++;
        }
        int match = -1;
        size_t ml = 0;
        for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
            size_t l = strlen(units[i].unit);
            if (!strncmp(p, units[i].unit, l) && l > ml && !isalpha((unsigned char)p[l])) {
                match = (int)i;
                ml = l;
            }
        }
        if (match < 0) {
            *why = *p ? "unknown unit (use ms, s, m, h, d or w)"
                      : "missing unit (use ms, s, m, h, d or w, e.g. 30s)";
            return false;
        }
        total += n * units[match].ms;
        if (total > 100LL * 365 * 86400000LL) {
            *why = "duration is longer than 100 years";
            return false;
        }
        p += ml;
        parts++;
    }
    *ms = total;
    return true;
}

void dur_fmt(struct sb *out, long long ms)
{
    if (ms < 0) {
        sb_addc(out, '-');
        ms = -ms;
    }
    if (ms == 0) {
        sb_adds(out, "0s");
        return;
    }
    if (ms < 1000) {
        sb_addf(out, "%lldms", ms);
        return;
    }
    long long s = ms / 1000;
    long long d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
    int shown = 0;
    if (d) {
        sb_addf(out, "%lldd", d);
        shown++;
    }
    if (h && shown < 2) {
        sb_addf(out, "%lldh", h);
        shown++;
    } else if (shown)
        shown = 2;
    if (m && shown < 2) {
        sb_addf(out, "%lldm", m);
        shown++;
    } else if (shown)
        shown = 2;
    if (sec && shown < 2)
        sb_addf(out, "%llds", sec);
}

void dur_fmt_secs(struct sb *out, long long ms)
{
    if (ms < 60000)
        sb_addf(out, "%lld.%02llds", ms / 1000, ms % 1000 / 10);
    else
        dur_fmt(out, ms);
}

/* schedule_bench: the measuring half of bench/schedule.sh, linked against the
 * built libprenvcore.a.
 *
 *   schedule_bench cases.tsv next.tsv
 *
 * cases.tsv: SPEC \t TIME_MS \t 0|1 per line (the test table's rows).
 * Prints, as KEY VALUE lines for the script to format:
 *   - the cost of sched_match and sched_next per call over the table, with the
 *     zones loaded (median of 7 timed rounds), and the slowest row's match;
 *   - the cost of loading a zone from its TZif file, and of sched_parse;
 *   - the daemon's wake-ups over a simulated week for 1,000 envs with random
 *     realistic policies, driven only by sched_policy_next from the earliest
 *     pending instant, against the real transitions found by a minute-by-minute
 *     brute-force scan of sched_policy_up.
 * Writes next.tsv: each row's sched_next (ms, or -1 for never) for the peer to
 * compare with its own scan. A report, not a test: it exits non-zero only when
 * it cannot run. */
#include "core/lib/err.h"
#include "core/lib/sb.h"
#include "core/lib/val.h"
#include "core/lib/xalloc.h"
#include "ttl/sched.h"
#include "ttl/tz.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct row {
    char *spec;
    long long at;
    int want;
    struct sched *s;
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static volatile long long sink;

/* ns per call over all rows, median of 7 rounds of about round_ns each */
static double time_rows(struct row *r, size_t n, int which, double round_ns)
{
    long reps = 1;
    for (;;) {
        double t0 = now_ns();
        long long acc = 0;
        for (long k = 0; k < reps; k++)
            for (size_t i = 0; i < n; i++)
                acc += which ? sched_next(r[i].s, r[i].at + k) : sched_match(r[i].s, r[i].at + k);
        sink = acc;
        if (now_ns() - t0 > round_ns || reps > (1L << 30))
            break;
        reps *= 2;
    }
    double v[7];
    for (int round = 0; round < 7; round++) {
        double t0 = now_ns();
        long long acc = 0;
        for (long k = 0; k < reps; k++)
            for (size_t i = 0; i < n; i++)
                acc += which ? sched_next(r[i].s, r[i].at + k) : sched_match(r[i].s, r[i].at + k);
        sink = acc;
        v[round] = (now_ns() - t0) / ((double)reps * (double)n);
    }
    return median(v, 7);
}

static double time_one(struct row *r)
{
    return time_rows(r, 1, 0, 5e6);
}

/* ---- the simulated week ---------------------------------------------------------- */

static uint64_t rng = 0x853c49e6748fea9bULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *const zones[] = {"Europe/Berlin",       "Europe/London",    "America/New_York",
                                    "America/Los_Angeles", "Asia/Kolkata",     "Asia/Tokyo",
                                    "Pacific/Auckland",    "Australia/Sydney", "UTC",
                                    "America/Sao_Paulo"};

/* a random realistic policy as the YAML map {uptime, downtime, holidays} */
static struct val *rnd_policy(void)
{
    char buf[256];
    const char *z = zones[rnd() % (sizeof zones / sizeof zones[0])];
    struct val *m = val_map(NULL);
    int kind = (int)(rnd() % 10);
    if (kind == 0) {
        /* a night batch environment */
        snprintf(buf, sizeof buf, "Mon-Fri 22:00-06:00 %s", z);
    } else if (kind == 1) {
        /* two teams in two zones */
        const char *z2 = zones[rnd() % (sizeof zones / sizeof zones[0])];
        snprintf(buf, sizeof buf, "Mon-Fri 08:00-18:00 %s, Mon-Fri 09:00-17:00 %s", z, z2);
    } else {
        int start = 6 + (int)(rnd() % 4), end = 17 + (int)(rnd() % 5);
        snprintf(buf, sizeof buf, "Mon-Fri %02d:%s-%02d:00 %s", start, rnd() % 3 ? "00" : "30", end,
                 z);
    }
    val_map_set(m, "uptime", NULL, val_str(buf, NULL));
    int d = (int)(rnd() % 10);
    if (d == 0) {
        snprintf(buf, sizeof buf, "Mon-Fri 12:00-13:00 %s", z);
        val_map_set(m, "downtime", NULL, val_str(buf, NULL));
    } else if (d == 1) {
        snprintf(buf, sizeof buf, "Sun 02:00-04:00 %s", z);
        val_map_set(m, "downtime", NULL, val_str(buf, NULL));
    } else if (d == 2) {
        val_map_set(m, "downtime", NULL,
                    val_str("2026-04-01T00:00:00+02:00-2026-04-02T00:00:00+02:00", NULL));
    }
    if (rnd() % 4 == 0) {
        struct val *h = val_list(NULL);
        val_list_push(h, val_str("2026-04-03", NULL)); /* Good Friday */
        if (rnd() % 2)
            val_list_push(h, val_str("2026-04-06", NULL));
        val_map_set(m, "holidays", NULL, h);
    }
    return m;
}

#define NENV 1000

static void week(void)
{
    const long long t0 = 1774742400000LL;     /* 2026-03-29T00:00:00Z: EU DST that night */
    const long long t1 = t0 + 7 * 86400000LL; /* AU and NZ DST end on 2026-04-05 (local) */
    struct sched_policy **p = xcalloc(NENV, sizeof *p);
    bool *up = xcalloc(NENV, sizeof *up);
    long long *nx = xcalloc(NENV, sizeof *nx);
    for (int i = 0; i < NENV; i++) {
        struct val *v = rnd_policy();
        struct err e = {0};
        if (sched_policy_parse(&p[i], v, &e)) {
            fprintf(stderr, "schedule_bench: policy: %s\n", e.msg);
            exit(1);
        }
        val_free(v);
    }
    /* the daemon: sleep until the earliest pending instant, re-evaluate the
     * envs due then, ask each for its next instant */
    double c0 = now_ns();
    long calls = 0;
    for (int i = 0; i < NENV; i++) {
        up[i] = sched_policy_up(p[i], t0);
        nx[i] = sched_policy_next(p[i], t0);
        calls++;
    }
    long wakeups = 0, useful = 0, env_changes = 0;
    for (;;) {
        long long w = LLONG_MAX;
        for (int i = 0; i < NENV; i++)
            if (nx[i] < w)
                w = nx[i];
        if (w >= t1)
            break;
        wakeups++;
        bool any = false;
        for (int i = 0; i < NENV; i++) {
            if (nx[i] != w)
                continue;
            bool u = sched_policy_up(p[i], w);
            if (u != up[i]) {
                env_changes++;
                any = true;
            }
            up[i] = u;
            nx[i] = sched_policy_next(p[i], w);
            calls++;
        }
        useful += any;
    }
    double sim_ns = now_ns() - c0;
    /* brute force: every minute of the week, every env */
    long real = 0, brute_changes = 0;
    for (int i = 0; i < NENV; i++)
        up[i] = sched_policy_up(p[i], t0);
    for (long long t = t0 + 60000; t < t1; t += 60000) {
        bool any = false;
        for (int i = 0; i < NENV; i++) {
            bool u = sched_policy_up(p[i], t);
            if (u != up[i]) {
                brute_changes++;
                any = true;
            }
            up[i] = u;
        }
        real += any;
    }
    printf("week_hours 168\n");
    printf("week_wakeups %ld\n", wakeups);
    printf("week_useful_wakeups %ld\n", useful);
    printf("week_real_instants %ld\n", real);
    printf("week_env_changes %ld\n", env_changes);
    printf("week_brute_env_changes %ld\n", brute_changes);
    printf("week_next_calls %ld\n", calls);
    printf("week_sim_ms %.1f\n", sim_ns / 1e6);
    for (int i = 0; i < NENV; i++)
        sched_policy_free(p[i]);
    free(p);
    free(up);
    free(nx);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: schedule_bench cases.tsv next.tsv\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    struct row *r = NULL;
    size_t n = 0, cap = 0;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2)
            continue;
        *t1 = *t2 = 0;
        XGROW(r, cap, n + 1);
        r[n].spec = xstrdup(line);
        r[n].at = strtoll(t1 + 1, NULL, 10);
        r[n].want = t2[1] == '1';
        n++;
    }
    fclose(f);
    if (!n) {
        fprintf(stderr, "schedule_bench: no cases in %s\n", argv[1]);
        return 1;
    }
    /* cold costs: loading a zone, parsing a spec */
    double v[7];
    for (int round = 0; round < 7; round++) {
        tz_free_all();
        double t0 = now_ns();
        for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
            const struct tz *zz;
            if (tz_get(&zz, zones[z], NULL))
                return 1;
        }
        v[round] = (now_ns() - t0) / (double)(sizeof zones / sizeof zones[0]);
    }
    printf("zone_load_ns %.0f\n", median(v, 7));
    for (int round = 0; round < 7; round++) {
        double t0 = now_ns();
        for (size_t i = 0; i < n; i++) {
            struct sched *s = NULL;
            struct err e = {0};
            if (sched_parse(&s, r[i].spec, NULL, &e)) {
                fprintf(stderr, "schedule_bench: '%s': %s\n", r[i].spec, e.msg);
                return 1;
            }
            sched_free(s);
        }
        v[round] = (now_ns() - t0) / (double)n;
    }
    printf("parse_ns %.0f\n", median(v, 7));
    size_t agree = 0;
    FILE *out = fopen(argv[2], "w");
    if (!out) {
        perror(argv[2]);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        struct err e = {0};
        if (sched_parse(&r[i].s, r[i].spec, NULL, &e)) {
            fprintf(stderr, "schedule_bench: '%s': %s\n", r[i].spec, e.msg);
            return 1;
        }
        agree += sched_match(r[i].s, r[i].at) == (r[i].want != 0);
        long long nx = sched_next(r[i].s, r[i].at);
        fprintf(out, "%lld\n", nx == LLONG_MAX ? -1 : nx);
    }
    fclose(out);
    printf("rows %zu\n", n);
    printf("agree %zu\n", agree);
    printf("match_ns %.1f\n", time_rows(r, n, 0, 1e8));
    printf("next_ns %.1f\n", time_rows(r, n, 1, 1e8));
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double t = time_one(&r[i]);
        if (t > worst) {
            worst = t;
            wi = i;
        }
    }
    printf("match_worst_ns %.1f\n", worst);
    printf("match_worst_spec %s\n", r[wi].spec);
    week();
    for (size_t i = 0; i < n; i++) {
        sched_free(r[i].s);
        free(r[i].spec);
    }
    free(r);
    tz_free_all();
    return 0;
}

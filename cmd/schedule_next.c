/* schedule next: the next instants at which a schedule's answer changes, in
 * UTC and in local time. What a spec means is ttl/sched.c's business. */
#include "cmd/cmd.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "ttl/sched.h"
#include "ttl/tz.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define NEXT_MAX 1000

struct next_opts {
    const char *from;
    const char *count;
    const char *zone;
    bool json;
};

#define O(f) offsetof(struct next_opts, f)
static const struct cmd_opt opts[] = {
    {"from", 0, OPT_STR, O(from), "TIME",
     "start after this instant: ISO 8601 with Z or an offset (default now)"},
    {"count", 'n', OPT_STR, O(count), "N", "how many transitions to print (1-1000, default 5)"},
    {"tz", 0, OPT_STR, O(zone), "ZONE",
     "show local time in ZONE (default: the zone of the spec's first recurring item, or UTC)"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print JSON (see docs/schedules.md)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static const char *const wd[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

static long long secs(long long ms)
{
    return ms / 1000 - (ms % 1000 < 0);
}

static void line(struct sb *b, const struct tz *z, long long ms, bool in)
{
    struct tz_civil cv;
    tz_civil(z, secs(ms), &cv);
    tm_rfc3339(b, ms);
    sb_adds(b, "  ");
    tz_format(b, z, secs(ms));
    sb_addf(b, " %s %-6s %s\n", wd[cv.wday], cv.abbr, in ? "inside" : "outside");
}

static void json_item(struct sb *b, const struct tz *z, long long ms, bool in)
{
    struct sb t;
    sb_init(&t);
    tm_rfc3339(&t, ms);
    sb_adds(b, "{\"at\":");
    sb_add_json_str(b, t.buf);
    sb_reset(&t);
    tz_format(&t, z, secs(ms));
    sb_adds(b, ",\"local\":");
    sb_add_json_str(b, t.buf);
    sb_addf(b, ",\"inside\":%s}", in ? "true" : "false");
    sb_release(&t);
}

static int exec_next(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct next_opts *o = vo;
    long long from = tm_now_ms(), n = 5;
    if (o->from && strcmp(o->from, "now") != 0 && !tm_parse_rfc3339(o->from, &from))
        return cmd_usage_error(c,
                               "--from expects an ISO 8601 time with Z or an offset, such as "
                               "2026-03-30T07:30:00Z, not '%s'",
                               o->from);
    if (o->count && !str_parse_int(o->count, 1, NEXT_MAX, &n))
        return cmd_usage_error(c, "--count expects a whole number from 1 to %d, not '%s'", NEXT_MAX,
                               o->count);
    struct err e = {0};
    struct sched *s = NULL;
    const struct tz *z = NULL;
    int code = EXIT_OK;
    const struct src *src = src_add("spec", argv[0], strlen(argv[0]));
    struct pos pos = {src, 1, 1};
    if (sched_parse(&s, argv[0], &pos, &e)) {
        cmd_error(c, &e);
        code = EXIT_USAGE;
        goto out;
    }
    if (o->zone && tz_get(&z, o->zone, &e)) {
        err_prefix(&e, "--tz: ");
        cmd_error(c, &e);
        code = EXIT_USAGE;
        goto out;
    }
    if (!z)
        z = sched_zone(s);
    if (!z)
        tz_get(&z, "UTC", NULL);
    struct sb b;
    sb_init(&b);
    bool in = sched_match(s, from);
    if (o->json) {
        struct sb t;
        sb_init(&t);
        tm_rfc3339(&t, from);
        sb_adds(&b, "{\"spec\":");
        sb_add_json_str(&b, sched_text(s));
        sb_adds(&b, ",\"zone\":");
        sb_add_json_str(&b, tz_name(z));
        sb_adds(&b, ",\"from\":");
        json_item(&b, z, from, in);
        sb_adds(&b, ",\"transitions\":[");
        sb_release(&t);
    } else {
        sb_addf(&b, "%s, local time in %s\nfrom ", sched_text(s), tz_name(z));
        line(&b, z, from, in);
    }
    long long t = from;
    for (long long i = 0; i < n; i++) {
        long long nx = sched_next(s, t);
        if (nx == LLONG_MAX) {
            if (!o->json)
                sb_addf(&b, "no further transitions: %s from here on\n", in ? "inside" : "outside");
            break;
        }
        in = sched_match(s, nx);
        if (o->json) {
            if (i)
                sb_addc(&b, ',');
            json_item(&b, z, nx, in);
        } else {
            line(&b, z, nx, in);
        }
        t = nx;
    }
    if (o->json)
        sb_adds(&b, "]}\n");
    fputs(b.buf, stdout);
    sb_release(&b);
out:
    sched_free(s);
    tz_free_all();
    return code;
}

const struct cmd_entry cmd_schedule_next_entry = {
    .name = "schedule next",
    .args = "SPEC",
    .min_args = 1,
    .max_args = 1,
    .summary =
        "print the next instants at which a schedule's answer changes, in UTC and local time",
    .help = "Each line is an instant in UTC, the same instant in local time with its offset,\n"
            "weekday and abbreviation, and the answer from that instant on. SPEC is as for\n"
            "`prenv schedule match`; see docs/schedules.md.",
    .opts = opts,
    .opts_size = sizeof(struct next_opts),
    .exec = exec_next,
};

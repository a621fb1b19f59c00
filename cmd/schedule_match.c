/* schedule match: is an instant inside a schedule? Exit 0 inside, 1 outside,
 * 2 for an invalid spec (the message points at the offending character) or an
 * invalid time. What a spec means is ttl/sched.c's business. */
#include "cmd/cmd.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "ttl/sched.h"
#include "ttl/tz.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct match_opts {
    const char *at;
    bool quiet;
};

#define O(f) offsetof(struct match_opts, f)
static const struct cmd_opt opts[] = {
    {"at", 0, OPT_STR, O(at), "TIME",
     "the instant to test: ISO 8601 with Z or an offset, e.g. 2026-03-30T07:30:00Z (default now)"},
    {"quiet", 'q', OPT_BOOL, O(quiet), NULL, "print nothing; the exit code is the answer"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static void describe(struct sb *b, const struct tz *z, long long ms)
{
    static const char *const wd[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    struct tz_civil cv;
    long long s = ms / 1000 - (ms % 1000 < 0);
    tz_civil(z, s, &cv);
    tm_rfc3339(b, ms);
    sb_addf(b, " (%s ", wd[cv.wday]);
    tz_format(b, z, s);
    sb_addf(b, " %s %s)", cv.abbr, tz_name(z));
}

static int exec_match(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct match_opts *o = vo;
    long long at = tm_now_ms();
    if (o->at && strcmp(o->at, "now") != 0 && !tm_parse_rfc3339(o->at, &at))
        return cmd_usage_error(c,
                               "--at expects an ISO 8601 time with Z or an offset, such as "
                               "2026-03-30T07:30:00Z, not '%s'",
                               o->at);
    struct err e = {0};
    struct sched *s = NULL;
    const struct src *src = src_add("spec", argv[0], strlen(argv[0]));
    struct pos pos = {src, 1, 1};
    if (sched_parse(&s, argv[0], &pos, &e)) {
        cmd_error(c, &e);
        tz_free_all();
        return EXIT_USAGE;
    }
    bool in = sched_match(s, at);
    if (!o->quiet) {
        const struct tz *z = sched_zone(s);
        if (!z)
            tz_get(&z, "UTC", NULL);
        struct sb b;
        sb_init(&b);
        sb_addf(&b, "%s: ", in ? "inside" : "outside");
        describe(&b, z, at);
        long long nx = sched_next(s, at);
        if (nx == LLONG_MAX) {
            sb_addf(&b, "\n%s from here on\n", in ? "inside" : "outside");
        } else {
            sb_addf(&b, "\n%s at ", in ? "leaves" : "enters");
            describe(&b, z, nx);
            sb_addc(&b, '\n');
        }
        fputs(b.buf, stdout);
        sb_release(&b);
    }
    sched_free(s);
    tz_free_all();
    return in ? EXIT_OK : EXIT_FAIL;
}

const struct cmd_entry cmd_schedule_match_entry = {
    .name = "schedule match",
    .args = "SPEC",
    .min_args = 1,
    .max_args = 1,
    .summary = "test whether an instant is inside a schedule (exit 0 inside, 1 outside, 2 invalid)",
    .help = "SPEC is a schedule as written in prenv.yaml: 'Mon-Fri 08:00-19:00 Europe/Berlin',\n"
            "a comma-separated list of such items (any of them), absolute ranges such as\n"
            "'2026-12-24T00:00:00+01:00-2026-12-27T00:00:00+01:00', always or never.\n"
            "See docs/schedules.md.",
    .opts = opts,
    .opts_size = sizeof(struct match_opts),
    .exec = exec_match,
};

/* routes: host names, claims (one owner, even when several processes race
 * for the same host), route records and what the router loads from them. */
#include "core/lib/fs.h"
#include "core/lib/xalloc.h"
#include "core/routes.h"
#include "tests/testlib.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *dir;

static void setup(void)
{
    dir = tl_tmpdir("routes");
}

static void teardown(void)
{
    struct err e = {0};
    fs_rm_rf(dir, &e);
    err_release(&e);
    free(dir);
}

TestSuite(routes, .init = setup, .fini = teardown);

Test(routes, host_names_are_lowercase_dns_names)
{
    const char *why = NULL;
    cr_assert(route_host_valid("pr-7.shop.localhost", &why));
    cr_assert(route_host_valid("a", &why));
    static const char *const bad[] = {"",          "Pr-7.shop",  "-a.b",       "a-.b",
                                      "a..b",      ".a",         "a.",         "a_b.c",
                                      "a b",       "a/b",        "../x",       "a:80",
                                      NULL};
    for (int i = 0; bad[i]; i++) {
        why = NULL;
        cr_assert(!route_host_valid(bad[i], &why), "'%s' passed", bad[i]);
        cr_assert_not_null(why);
    }
    char label[70];
    memset(label, 'a', 64);
    label[64] = 0;
    cr_assert(!route_host_valid(label, &why));
    cr_assert(strstr(why, "63"), "%s", why);
}

Test(routes, a_claim_has_one_owner_and_is_released_by_it_only)
{
    struct err e = {0};
    cr_assert_eq(route_claim(dir, "dev.x.test", "dev", &e), 0, "%s", e.msg);
    cr_assert_eq(route_claim(dir, "dev.x.test", "dev", &e), 0, "claiming again is fine");
    cr_assert_eq(route_claim(dir, "dev.x.test", "qa", &e), PE_EXISTS);
    cr_assert(strstr(e.msg, "already routed to environment 'dev'"), "%s", e.msg);
    err_release(&e);
    route_unclaim(dir, "dev.x.test", "qa"); /* not qa's: stays */
    char *o = route_owner(dir, "dev.x.test");
    cr_assert_str_eq(o, "dev");
    free(o);
    route_unclaim(dir, "dev.x.test", "dev");
    cr_assert_null(route_owner(dir, "dev.x.test"));
    cr_assert_eq(route_claim(dir, "dev.x.test", "qa", &e), 0, "free again: %s", e.msg);
    cr_assert_eq(route_claim(dir, "Bad_Host", "qa", &e), PE_CONFIG);
    err_release(&e);
}

Test(routes, processes_racing_for_a_host_leave_exactly_one_owner)
{
    enum { N = 8 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            char env[16];
            snprintf(env, sizeof env, "env%d", i);
            struct err e = {0};
            int rc = route_claim(dir, "race.x.test", env, &e);
            _exit(rc == 0 ? 0 : rc == PE_EXISTS ? 1 : 2);
        }
    }
    int won = 0, lost = 0;
    for (int i = 0; i < N; i++) {
        int st = 0;
        waitpid(pids[i], &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) < 2, "a claim failed oddly");
        if (WEXITSTATUS(st) == 0)
            won++;
        else
            lost++;
    }
    cr_assert_eq(won, 1, "exactly one winner, not %d", won);
    cr_assert_eq(lost, N - 1);
}

Test(routes, records_load_with_claims_of_routes_not_yet_recorded)
{
    struct err e = {0};
    char *ups[] = {"127.0.0.1:21000", "127.0.0.1:21001", NULL};
    struct route r = {.env = "dev", .resource = "route", .host = "dev.x.test", .path = "/",
                      .upstreams = ups, .nup = 2};
    cr_assert_eq(route_claim(dir, "dev.x.test", "dev", &e), 0);
    cr_assert_eq(route_write(dir, &r, &e), 0, "%s", e.msg);
    cr_assert(route_recorded(dir, "dev", "route"));
    cr_assert_eq(route_claim(dir, "new.x.test", "pr-9", &e), 0); /* an up in progress */
    tl_write(dir, "routes/junk@dev.json", "{not json");
    struct route *all = NULL;
    size_t n = 0, bad = 0;
    cr_assert_eq(route_load_all(dir, &all, &n, &bad, &e), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(bad, 1, "the unreadable record is counted, not loaded");
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(all[i].host, "dev.x.test")) {
            cr_assert_str_eq(all[i].resource, "route");
            cr_assert_eq(all[i].nup, 2);
            cr_assert_str_eq(all[i].upstreams[1], "127.0.0.1:21001");
            seen |= 1;
        } else {
            cr_assert_str_eq(all[i].host, "new.x.test");
            cr_assert_null(all[i].resource, "a claim alone: being created");
            cr_assert_str_eq(all[i].env, "pr-9");
            seen |= 2;
        }
    }
    cr_assert_eq(seen, 3);
    routes_free(all, n);
    route_release_env(dir, "dev");
    cr_assert(!route_recorded(dir, "dev", "route"));
    cr_assert_null(route_owner(dir, "dev.x.test"));
    char *o = route_owner(dir, "new.x.test");
    cr_assert_str_eq(o, "pr-9", "another env's claim stays");
    free(o);
}

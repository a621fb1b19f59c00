/* Unit tests for hooks/queue: durability, supersede rules, per-env
 * serialisation, retries and parking, delivery de-duplication and PR
 * ordering. */
#include "core/lib/fs.h"
#include "core/lib/xalloc.h"
#include "hooks/queue.h"
#include "tests/testlib.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static char *dir, *path;
static struct queue *q;

static void setup(void)
{
    dir = tl_tmpdir("queue");
    path = xasprintf("%s/queue.db", dir);
    struct err e = {0};
    cr_assert_eq(queue_open(&q, path, &e), 0, "%s", e.msg);
}

static void teardown(void)
{
    queue_close(q);
    struct err e = {0};
    fs_rm_rf(dir, &e);
    free(dir);
    free(path);
}

TestSuite(queue, .init = setup, .fini = teardown);

static long long push(const char *env, enum job_kind k, const char *sha, bool *cancel)
{
    struct err e = {0};
    long long id = 0;
    bool c = false;
    cr_assert_eq(queue_push(q, env, k, sha, "{}", NULL, &id, &c, &e), 0, "%s", e.msg);
    if (cancel)
        *cancel = c;
    return id;
}

static bool claim(struct job *j)
{
    struct err e = {0};
    bool got = false;
    cr_assert_eq(queue_claim(q, 0, j, &got, &e), 0, "%s", e.msg);
    return got;
}

Test(queue, the_newest_sha_wins_over_waiting_ones)
{
    push("pr-1", JOB_UP, "aaa", NULL);
    push("pr-1", JOB_UP, "bbb", NULL);
    push("pr-1", JOB_UP, "ccc", NULL);
    struct job j;
    cr_assert(claim(&j));
    cr_assert_str_eq(j.sha, "ccc");
    job_release(&j);
    cr_assert(!claim(&j), "the older ones were superseded, and pr-1 is running");
    long long counts[7];
    struct err e = {0};
    queue_counts(q, counts, &e);
    cr_assert_eq(counts[JOB_SUPERSEDED], 2);
    cr_assert_eq(counts[JOB_RUNNING], 1);
}

Test(queue, one_job_per_env_runs_at_a_time_and_others_proceed)
{
    push("pr-1", JOB_UP, "a", NULL);
    push("pr-2", JOB_UP, "b", NULL);
    struct job j1, j2, j3;
    cr_assert(claim(&j1));
    push("pr-1", JOB_UP, "a2", NULL); /* waits for the running one */
    cr_assert(claim(&j2));
    cr_assert_str_eq(j2.env, "pr-2");
    cr_assert(!claim(&j3));
    struct err e = {0};
    cr_assert_eq(queue_finish(q, j1.id, true, false, NULL, 3, &e), 0);
    cr_assert(claim(&j3));
    cr_assert_str_eq(j3.sha, "a2");
    job_release(&j1);
    job_release(&j2);
    job_release(&j3);
}

Test(queue, a_close_cancels_a_running_up_and_runs_after_it)
{
    push("pr-1", JOB_UP, "a", NULL);
    struct job j, d;
    cr_assert(claim(&j));
    bool cancel = false;
    push("pr-1", JOB_DESTROY, NULL, &cancel);
    cr_assert(cancel, "the running up must be told to stop");
    struct err e = {0};
    cr_assert_eq(queue_cancel(q, j.id, "closed", &e), 0);
    cr_assert(!claim(&d), "the destroy waits until the canceled job has finished");
    cr_assert_eq(queue_finish(q, j.id, false, false, "canceled", 3, &e), 0);
    cr_assert(claim(&d));
    cr_assert_eq(d.kind, JOB_DESTROY);
    job_release(&j);
    job_release(&d);
    char *json = NULL;
    cr_assert_eq(queue_list_json(q, 10, &json, &e), 0);
    cr_assert(strstr(json, "\"state\": \"canceled\""), "%s", json);
    free(json);
}

Test(queue, a_reopen_after_a_close_queues_a_fresh_up)
{
    push("pr-1", JOB_DESTROY, NULL, NULL);
    push("pr-1", JOB_UP, "new", NULL);
    struct job j;
    cr_assert(claim(&j));
    cr_assert_eq(j.kind, JOB_UP);
    cr_assert_str_eq(j.sha, "new");
    job_release(&j);
}

Test(queue, transient_failures_retry_then_park_and_others_fail_at_once)
{
    push("pr-1", JOB_UP, "a", NULL);
    struct job j;
    struct err e = {0};
    cr_assert(claim(&j));
    cr_assert_eq(queue_finish(q, j.id, false, true, "server down", 2, &e), 0);
    long long due = 0;
    queue_next_due(q, &due, &e);
    cr_assert_gt(due, 0, "a retry waits for its backoff");
    struct job k;
    cr_assert(!claim(&k), "not before its backoff");
    job_release(&j);
    /* force the retry due now */
    struct queue *q2 = q;
    (void)q2;
    push("pr-2", JOB_UP, "b", NULL);
    cr_assert(claim(&k));
    cr_assert_eq(queue_finish(q, k.id, false, false, "bad template", 3, &e), 0);
    long long counts[7];
    queue_counts(q, counts, &e);
    cr_assert_eq(counts[JOB_FAILED], 1);
    cr_assert_eq(counts[JOB_QUEUED], 1);
    job_release(&k);
}

Test(queue, jobs_survive_a_restart_and_running_ones_are_resumed)
{
    push("pr-1", JOB_UP, "a", NULL);
    push("pr-2", JOB_UP, "b", NULL);
    struct job j;
    cr_assert(claim(&j));
    job_release(&j);
    queue_close(q); /* as if killed */
    struct err e = {0};
    cr_assert_eq(queue_open(&q, path, &e), 0);
    int n = 0;
    cr_assert_eq(queue_recover(q, &n, &e), 0);
    cr_assert_eq(n, 1);
    cr_assert(claim(&j));
    cr_assert_str_eq(j.env, "pr-1");
    job_release(&j);
    cr_assert(claim(&j));
    cr_assert_str_eq(j.env, "pr-2");
    job_release(&j);
}

Test(queue, deliveries_are_deduplicated_per_hook)
{
    struct err e = {0};
    bool dup = true;
    cr_assert_eq(queue_seen(q, "1", "guid-a", 7 * 86400000LL, &dup, &e), 0);
    cr_assert(!dup);
    queue_seen(q, "1", "guid-a", 7 * 86400000LL, &dup, &e);
    cr_assert(dup);
    queue_seen(q, "2", "guid-a", 7 * 86400000LL, &dup, &e);
    cr_assert(!dup, "the same delivery to another hook is another delivery");
}

Test(queue, an_older_pull_request_event_never_undoes_a_newer_one)
{
    struct err e = {0};
    bool newer;
    queue_pr_newer(q, "o/r", 42, 2000, "closed", &newer, &e);
    cr_assert(newer);
    queue_pr_newer(q, "o/r", 42, 1000, "open", &newer, &e);
    cr_assert(!newer, "a synchronize from before the close arrives late");
    queue_pr_newer(q, "o/r", 42, 2000, "closed", &newer, &e);
    cr_assert(newer, "the same moment counts as current");
    queue_pr_newer(q, "o/r", 43, 1000, "open", &newer, &e);
    cr_assert(newer);
}

Test(queue, the_envs_running_cap_holds)
{
    push("pr-1", JOB_UP, "a", NULL);
    push("pr-2", JOB_UP, "b", NULL);
    struct job j;
    struct err e = {0};
    bool got;
    cr_assert_eq(queue_claim(q, 1, &j, &got, &e), 0);
    cr_assert(got);
    job_release(&j);
    cr_assert_eq(queue_claim(q, 1, &j, &got, &e), 0);
    cr_assert(!got);
}

Test(queue, the_reaper_never_supersedes_a_waiting_deploy)
{
    struct job j;
    push("pr-1", JOB_UP, "a", NULL);
    cr_assert(claim(&j));
    push("pr-1", JOB_UP, "b", NULL); /* waits behind the running one */
    push("pr-1", JOB_SLEEP, NULL, NULL);
    push("pr-1", JOB_WAKE, NULL, NULL); /* replaces the sleep, not the up */
    struct err e = {0};
    queue_finish(q, j.id, true, false, NULL, 3, &e);
    job_release(&j);
    struct job k, l;
    cr_assert(claim(&k));
    cr_assert_eq(k.kind, JOB_UP);
    cr_assert_str_eq(k.sha, "b");
    queue_finish(q, k.id, true, false, NULL, 3, &e);
    cr_assert(claim(&l));
    cr_assert_eq(l.kind, JOB_WAKE);
    job_release(&k);
    job_release(&l);
    long long counts[7];
    queue_counts(q, counts, &e);
    cr_assert_eq(counts[JOB_SUPERSEDED], 1, "only the sleep was replaced");
}

Test(queue, a_refresh_replaces_only_a_waiting_refresh_and_reads_back_as_one)
{
    struct job j;
    push("prod", JOB_UP, "a", NULL);
    cr_assert(claim(&j));
    push("prod", JOB_REFRESH, NULL, NULL);
    push("prod", JOB_SLEEP, NULL, NULL);   /* replaces no refresh */
    push("prod", JOB_REFRESH, NULL, NULL); /* replaces the first refresh, not the sleep */
    struct err e = {0};
    long long counts[7];
    queue_counts(q, counts, &e);
    cr_assert_eq(counts[JOB_SUPERSEDED], 1);
    cr_assert_eq(counts[JOB_QUEUED], 2);
    queue_finish(q, j.id, true, false, NULL, 3, &e);
    job_release(&j);
    struct job k;
    cr_assert(claim(&k));
    cr_assert_eq(k.kind, JOB_SLEEP);
    queue_finish(q, k.id, true, false, NULL, 3, &e);
    job_release(&k);
    cr_assert(claim(&k));
    cr_assert_eq(k.kind, JOB_REFRESH, "the kind survives the database: %s", job_kind_name(k.kind));
    cr_assert_str_eq(job_kind_name(k.kind), "refresh");
    queue_finish(q, k.id, true, false, NULL, 3, &e);
    job_release(&k);
    /* an up replaces a waiting refresh */
    push("prod", JOB_REFRESH, NULL, NULL);
    push("prod", JOB_UP, "b", NULL);
    cr_assert(claim(&k));
    cr_assert_eq(k.kind, JOB_UP);
    job_release(&k);
}

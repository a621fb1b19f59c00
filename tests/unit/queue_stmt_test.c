/* Unit tests for hooks/queue's prepared statements and relaxed commits:
 * statements prepared once serve every later call (inside and outside
 * batches, after errors), bound strings are not kept past a call, a relaxed
 * claim is there after a clean close, and batches stay durable around it. */
#include "core/lib/fs.h"
#include "core/lib/xalloc.h"
#include "hooks/queue.h"
#include "tests/testlib.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir, *path;
static struct queue *q;

static void setup(void)
{
    dir = tl_tmpdir("queue-stmt");
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

TestSuite(queue_stmt, .init = setup, .fini = teardown);

static void reopen(void)
{
    queue_close(q);
    struct err e = {0};
    cr_assert_eq(queue_open(&q, path, &e), 0, "%s", e.msg);
}

Test(queue_stmt, thousands_of_calls_reuse_their_statements_and_read_back_right)
{
    struct err e = {0};
    for (int i = 0; i < 3000; i++) {
        /* strings on the heap, freed right after the call: nothing may keep them */
        char *env = xasprintf("pr-%d", i % 50);
        char *sha = xasprintf("%040d", i);
        char *meta = xasprintf("{\"n\": %d}", i);
        char *delivery = xasprintf("d-%d", i);
        bool batch = i % 3 == 0;
        if (batch)
            cr_assert_eq(queue_batch_begin(q, &e), 0, "%s", e.msg);
        bool dup = true, newer = false, cancel = true;
        cr_assert_eq(queue_seen(q, "7", delivery, 86400000, &dup, &e), 0, "%s", e.msg);
        cr_assert(!dup);
        cr_assert_eq(queue_pr_newer(q, "o/r", i % 50, 1000 + i, "open", &newer, &e), 0, "%s",
                     e.msg);
        cr_assert(newer);
        long long id = 0;
        cr_assert_eq(queue_push(q, env, JOB_UP, sha, meta, delivery, &id, &cancel, &e), 0, "%s",
                     e.msg);
        cr_assert_gt(id, 0);
        if (batch)
            cr_assert_eq(queue_batch_commit(q, &e), 0, "%s", e.msg);
        free(env);
        free(sha);
        free(meta);
        free(delivery);
    }
    bool dup = false;
    cr_assert_eq(queue_seen(q, "7", "d-42", 86400000, &dup, &e), 0);
    cr_assert(dup, "a delivery seen before is a duplicate");
    long long counts[7];
    cr_assert_eq(queue_counts(q, counts, &e), 0, "%s", e.msg);
    cr_assert_eq(counts[JOB_QUEUED], 50, "one waiting job per env");
    cr_assert_eq(counts[JOB_SUPERSEDED], 2950);
    char *json = NULL;
    cr_assert_eq(queue_list_json(q, 1, &json, &e), 0, "%s", e.msg);
    cr_assert(strstr(json, "\"meta\": {\"n\": 2999}"), "%s", json);
    cr_assert(strstr(json, "\"delivery\": \"d-2999\""), "%s", json);
    char sha[41];
    snprintf(sha, sizeof sha, "%040d", 2999);
    cr_assert(strstr(json, sha), "%s", json);
    free(json);
}

Test(queue_stmt, a_failed_batch_leaves_the_statements_usable)
{
    struct err e = {0};
    cr_assert_eq(queue_batch_begin(q, &e), 0, "%s", e.msg);
    long long id = 0;
    bool cancel = false;
    cr_assert_eq(queue_push(q, "pr-1", JOB_UP, "a", "{}", NULL, &id, &cancel, &e), 0, "%s", e.msg);
    /* a second BEGIN inside the batch fails; the batch is rolled back */
    cr_assert_neq(queue_batch_begin(q, &e), 0);
    cr_assert(strstr(e.msg, "BEGIN"), "%s", e.msg);
    err_release(&e);
    queue_batch_rollback(q);
    long long counts[7];
    cr_assert_eq(queue_counts(q, counts, &e), 0, "%s", e.msg);
    cr_assert_eq(counts[JOB_QUEUED], 0, "rolled back");
    cr_assert_eq(queue_push(q, "pr-1", JOB_UP, "b", "{}", NULL, &id, &cancel, &e), 0, "%s", e.msg);
    cr_assert_eq(queue_counts(q, counts, &e), 0, "%s", e.msg);
    cr_assert_eq(counts[JOB_QUEUED], 1);
}

Test(queue_stmt, a_relaxed_claim_is_there_after_a_clean_close_and_recovers)
{
    struct err e = {0};
    long long id = 0;
    bool cancel = false, got = false;
    cr_assert_eq(queue_push(q, "pr-1", JOB_UP, "a", "{}", NULL, &id, &cancel, &e), 0, "%s", e.msg);
    struct job j;
    cr_assert_eq(queue_claim(q, 0, &j, &got, &e), 0, "%s", e.msg);
    cr_assert(got);
    cr_assert_eq(j.state, JOB_RUNNING);
    job_release(&j);
    /* given back as previews.max does it, relaxed as well */
    cr_assert_eq(queue_relaxed(q, true, &e), 0, "%s", e.msg);
    cr_assert_eq(queue_finish(q, id, false, true, "waiting", 1000000, &e), 0, "%s", e.msg);
    cr_assert_eq(queue_relaxed(q, false, &e), 0, "%s", e.msg);
    cr_assert_eq(queue_claim(q, 0, &j, &got, &e), 0, "%s", e.msg);
    cr_assert(!got, "it waits for its backoff");
    /* a durable batch after the relaxed commits */
    cr_assert_eq(queue_batch_begin(q, &e), 0, "%s", e.msg);
    cr_assert_eq(queue_push(q, "pr-2", JOB_UP, "b", "{}", NULL, &id, &cancel, &e), 0, "%s", e.msg);
    cr_assert_eq(queue_batch_commit(q, &e), 0, "%s", e.msg);
    cr_assert_eq(queue_claim(q, 0, &j, &got, &e), 0, "%s", e.msg);
    cr_assert(got);
    cr_assert_str_eq(j.env, "pr-2");
    job_release(&j);
    reopen();
    int n = 0;
    cr_assert_eq(queue_recover(q, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 1, "the claimed job was written and is requeued");
    long long counts[7];
    cr_assert_eq(queue_counts(q, counts, &e), 0, "%s", e.msg);
    cr_assert_eq(counts[JOB_QUEUED], 2);
}

Test(queue_stmt, a_claim_inside_a_batch_commits_with_it)
{
    struct err e = {0};
    long long id = 0;
    bool cancel = false, got = false;
    cr_assert_eq(queue_push(q, "pr-1", JOB_UP, "a", "{}", NULL, &id, &cancel, &e), 0, "%s", e.msg);
    cr_assert_eq(queue_batch_begin(q, &e), 0, "%s", e.msg);
    struct job j;
    cr_assert_eq(queue_claim(q, 0, &j, &got, &e), 0, "%s", e.msg);
    cr_assert(got);
    job_release(&j);
    queue_batch_rollback(q);
    cr_assert_eq(queue_claim(q, 0, &j, &got, &e), 0, "%s", e.msg);
    cr_assert(got, "the rolled-back claim left the job waiting");
    job_release(&j);
}

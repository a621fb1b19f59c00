/* Unit tests for hooks/github: GitHub's published signature vector, bad
 * signatures, and every pull_request example payload GitHub publishes (npm
 * @octokit/webhooks-examples), plus the cases it lacks (merged close, forks,
 * drafts) built by editing copies. */
#include "core/lib/xalloc.h"
#include "hooks/github.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(github);

Test(github, the_published_signature_vector_verifies)
{
    struct err e = {0};
    const char *body = "Hello, World!";
    cr_assert_eq(gh_verify("It's a Secret to Everybody",
                           "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                           body, strlen(body), &e),
                 0, "%s", e.msg);
    /* upper-case hex is the same digest */
    cr_assert_eq(gh_verify("It's a Secret to Everybody",
                           "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17",
                           body, strlen(body), &e),
                 0);
}

Test(github, bad_signatures_are_refused_with_a_reason)
{
    const char *body = "Hello, World!";
    const char *good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    struct {
        const char *sig, *secret, *why;
    } cases[] = {
        {NULL, "It's a Secret to Everybody", "missing"},
        {"", "It's a Secret to Everybody", "missing"},
        {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
         "It's a Secret to Everybody", "64 hex"},
        {"sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
         "It's a Secret to Everybody", "sha256="},
        {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18",
         "It's a Secret to Everybody", "does not match"},
        {good, "another secret", "does not match"},
        {"sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
         "It's a Secret to Everybody", "not hex"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct err e = {0};
        cr_assert_eq(gh_verify(cases[i].secret, cases[i].sig, body, strlen(body), &e), PE_USAGE,
                     "case %zu", i);
        cr_assert(strstr(e.msg, cases[i].why), "case %zu: %s", i, e.msg);
        err_release(&e);
    }
    struct err e = {0};
    cr_assert_eq(gh_verify("It's a Secret to Everybody", good, "Hello, World?", 13, &e), PE_USAGE);
    err_release(&e);
}

static cJSON *examples(void)
{
    FILE *f = popen(PRENV_SRC "/scripts/test-deps.sh", "r");
    cr_assert_not_null(f);
    char path[4096] = "";
    cr_assert_not_null(fgets(path, sizeof path, f), "scripts/test-deps.sh printed nothing");
    cr_assert_eq(pclose(f), 0, "scripts/test-deps.sh failed");
    path[strcspn(path, "\n")] = 0;
    FILE *in = fopen(path, "rb");
    cr_assert_not_null(in, "%s", path);
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = xmalloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, in), (size_t)n);
    buf[n] = 0;
    fclose(in);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    cr_assert_not_null(j);
    return j;
}

static const cJSON *pr_examples(const cJSON *all)
{
    const cJSON *ev;
    cJSON_ArrayForEach(ev, all)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(ev, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, "pull_request"))
            return cJSON_GetObjectItemCaseSensitive(ev, "examples");
    }
    return NULL;
}

static enum gh_verdict decide_json(const cJSON *payload, const struct gh_policy *p, const char **why,
                                   struct gh_event *out)
{
    char *body = cJSON_PrintUnformatted(payload);
    struct err e = {0};
    int rc = gh_parse(out, "pull_request", "guid-1", "7", body, strlen(body), &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    free(body);
    return gh_decide(out, p, why);
}

Test(github, every_published_pull_request_example_parses_and_gets_the_right_verdict)
{
    cJSON *all = examples();
    const cJSON *prs = pr_examples(all);
    cr_assert_not_null(prs);
    cr_assert_geq(cJSON_GetArraySize(prs), 29);
    struct gh_policy p = {0};
    const cJSON *ex;
    int up = 0, destroy = 0, ignored = 0;
    cJSON_ArrayForEach(ex, prs)
    {
        struct gh_event ev;
        const char *why;
        enum gh_verdict v = decide_json(ex, &p, &why, &ev);
        const char *a = ev.action;
        cr_assert_str_eq(ev.repo, "Codertocat/Hello-World");
        cr_assert_gt(ev.number, 0);
        cr_assert_eq(strlen(ev.sha), 40);
        if (!strcmp(a, "closed")) {
            cr_assert_eq(v, GH_DESTROY, "%s", a);
            destroy++;
        } else if (ev.draft || strcmp(ev.state, "open") != 0) {
            cr_assert_eq(v, GH_IGNORE, "%s (draft %d): %s", a, ev.draft, why);
            ignored++;
        } else if (!strcmp(a, "opened") || !strcmp(a, "reopened") || !strcmp(a, "synchronize") ||
                   !strcmp(a, "ready_for_review")) {
            cr_assert_eq(v, GH_UP, "%s: %s", a, why);
            up++;
        } else {
            cr_assert_eq(v, GH_IGNORE, "%s: %s", a, why);
            ignored++;
        }
        gh_event_release(&ev);
    }
    cr_assert_gt(up, 0);
    cr_assert_gt(destroy, 0);
    cr_assert_gt(ignored, 0);
    cJSON_Delete(all);
}

static cJSON *example(cJSON *all, const char *action)
{
    const cJSON *ex;
    cJSON_ArrayForEach(ex, pr_examples(all))
    {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(ex, "action");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(ex, "pull_request"), "draft");
        if (cJSON_IsString(a) && !strcmp(a->valuestring, action) && !cJSON_IsTrue(d))
            return cJSON_Duplicate(ex, 1);
    }
    cr_assert_fail("no %s example", action);
    return NULL;
}

static cJSON *pr(cJSON *payload)
{
    return cJSON_GetObjectItemCaseSensitive(payload, "pull_request");
}

Test(github, merged_closes_forks_drafts_and_labels_follow_the_policy)
{
    cJSON *all = examples();
    struct gh_policy deny = {0};
    struct gh_event ev;
    const char *why;

    cJSON *merged = example(all, "closed");
    cJSON_ReplaceItemInObject(pr(merged), "merged", cJSON_CreateTrue());
    cr_assert_eq(decide_json(merged, &deny, &why, &ev), GH_DESTROY);
    cr_assert_str_eq(why, "merged");
    gh_event_release(&ev);
    cJSON_Delete(merged);

    cJSON *fork = example(all, "opened");
    cJSON *head_repo = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(pr(fork), "head"), "repo");
    cJSON_ReplaceItemInObject(head_repo, "full_name", cJSON_CreateString("mallory/Hello-World"));
    cr_assert_eq(decide_json(fork, &deny, &why, &ev), GH_IGNORE);
    cr_assert(ev.fork);
    cr_assert(strstr(why, "forks"), "%s", why);
    gh_event_release(&ev);
    struct gh_policy allow = {.forks = GH_FORKS_ALLOW};
    cr_assert_eq(decide_json(fork, &allow, &why, &ev), GH_UP);
    gh_event_release(&ev);
    const char *trusted_list[] = {"codertocat", NULL};
    struct gh_policy trusted = {.forks = GH_FORKS_TRUSTED, .trusted = trusted_list};
    cr_assert_eq(decide_json(fork, &trusted, &why, &ev), GH_UP, "logins compare without case");
    gh_event_release(&ev);
    const char *others[] = {"someone-else", NULL};
    trusted.trusted = others;
    cr_assert_eq(decide_json(fork, &trusted, &why, &ev), GH_IGNORE);
    gh_event_release(&ev);
    /* a deleted fork: head.repo is null */
    cJSON_ReplaceItemInObject(cJSON_GetObjectItemCaseSensitive(pr(fork), "head"), "repo",
                              cJSON_CreateNull());
    cr_assert_eq(decide_json(fork, &deny, &why, &ev), GH_IGNORE);
    cr_assert(ev.fork);
    gh_event_release(&ev);
    cJSON_Delete(fork);

    cJSON *draft = example(all, "opened");
    cJSON_ReplaceItemInObject(pr(draft), "draft", cJSON_CreateTrue());
    cr_assert_eq(decide_json(draft, &deny, &why, &ev), GH_IGNORE);
    gh_event_release(&ev);
    struct gh_policy drafts = {.drafts = true};
    cr_assert_eq(decide_json(draft, &drafts, &why, &ev), GH_UP);
    gh_event_release(&ev);
    cJSON_Delete(draft);

    struct gh_policy label = {.label = "preview"};
    cJSON *opened = example(all, "opened");
    cr_assert_eq(decide_json(opened, &label, &why, &ev), GH_IGNORE, "no label yet");
    gh_event_release(&ev);
    cJSON *l = cJSON_CreateObject();
    cJSON_AddStringToObject(l, "name", "preview");
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(pr(opened), "labels"), l);
    cr_assert_eq(decide_json(opened, &label, &why, &ev), GH_UP);
    gh_event_release(&ev);
    cJSON_Delete(opened);
    cJSON_Delete(all);
}

Test(github, hostile_strings_are_kept_as_data)
{
    cJSON *all = examples();
    cJSON *ex = example(all, "opened");
    cJSON *head = cJSON_GetObjectItemCaseSensitive(pr(ex), "head");
    const char *evil = "zzz\";echo${IFS}\"hello\";#";
    cJSON_ReplaceItemInObject(head, "ref", cJSON_CreateString(evil));
    cJSON_ReplaceItemInObject(pr(ex), "title", cJSON_CreateString("$(rm -rf /) `id` \n\t'"));
    struct gh_policy p = {0};
    struct gh_event ev;
    const char *why;
    cr_assert_eq(decide_json(ex, &p, &why, &ev), GH_UP);
    cr_assert_str_eq(ev.branch, evil);
    char *meta = gh_meta_json(&ev, false);
    cJSON *m = cJSON_Parse(meta);
    cr_assert_not_null(m, "the job's metadata stays valid JSON: %s", meta);
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(m, "branch")->valuestring, evil);
    cJSON_Delete(m);
    free(meta);
    gh_event_release(&ev);
    cJSON_Delete(ex);
    cJSON_Delete(all);
}

Test(github, malformed_deliveries_are_refused)
{
    struct gh_event ev;
    struct err e = {0};
    cr_assert_eq(gh_parse(&ev, "pull_request", "d", NULL, "{not json", 9, &e), PE_USAGE);
    gh_event_release(&ev);
    err_release(&e);
    cr_assert_eq(gh_parse(&ev, "pull_request", "d", NULL, "{\"action\":\"opened\"}", 19, &e),
                 PE_USAGE);
    cr_assert(strstr(e.msg, "needs action, number and pull_request"), "%s", e.msg);
    gh_event_release(&ev);
    err_release(&e);
    cr_assert_eq(gh_parse(&ev, NULL, "d", NULL, "{}", 2, &e), PE_USAGE);
    gh_event_release(&ev);
    err_release(&e);
    cr_assert_eq(gh_parse(&ev, "ping", "d", "1", "{\"zen\":\"x\",\"hook_id\":1}", 23, &e), 0);
    const char *why;
    struct gh_policy p = {0};
    cr_assert_eq(gh_decide(&ev, &p, &why), GH_PING);
    gh_event_release(&ev);
}

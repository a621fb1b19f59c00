/* Unit tests for gh_parse's own JSON pass (hooks/github.c): it must take and
 * refuse exactly the bodies cJSON takes and refuses, and read exactly the
 * values cJSON reads. The reference below is gh_parse as it was on a full
 * cJSON tree; both run on GitHub's published pull_request examples (compact
 * and indented), on every truncation of one of them, on byte flips,
 * insertions and deletions in all of them, on hand-written edge cases
 * (numbers, escapes, surrogates, duplicate keys, depth) and on random
 * documents built around the fields gh_parse reads. */
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "hooks/github.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

TestSuite(github_json);

/* ---- the reference: gh_parse on a cJSON tree ---- */

static const cJSON *ref_at(const cJSON *j, const char *path)
{
    char *p = xstrdup(path), *save = NULL;
    for (char *t = strtok_r(p, ".", &save); t && j; t = strtok_r(NULL, ".", &save))
        j = cJSON_GetObjectItemCaseSensitive(j, t);
    free(p);
    return j;
}

static char *ref_str_at(const cJSON *j, const char *path)
{
    j = ref_at(j, path);
    return cJSON_IsString(j) ? xstrdup(j->valuestring) : NULL;
}

/* what x86 makes of (long long)d, without the undefined behaviour */
static long long ref_ll(double d)
{
    return d >= -9223372036854775808.0 && d < 9223372036854775808.0 ? (long long)d : LLONG_MIN;
}

static int ref_parse(struct gh_event *ev, const char *event, const char *delivery,
                     const char *hook_id, const char *body, size_t len, struct err *e)
{
    memset(ev, 0, sizeof *ev);
    if (!event || !*event)
        return err_set(e, PE_USAGE, NULL, "missing X-GitHub-Event");
    if (!delivery || !*delivery)
        return err_set(e, PE_USAGE, NULL, "missing X-GitHub-Delivery");
    ev->event = xstrdup(event);
    ev->delivery = xstrdup(delivery);
    ev->hook_id = hook_id ? xstrdup(hook_id) : NULL;
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return err_set(e, PE_USAGE, NULL, "the body is not a JSON object");
    }
    ev->action = ref_str_at(j, "action");
    const cJSON *inst = ref_at(j, "installation.id");
    if (cJSON_IsNumber(inst))
        ev->installation = ref_ll(inst->valuedouble);
    if (!strcmp(event, "pull_request")) {
        const cJSON *pr = ref_at(j, "pull_request");
        const cJSON *num = ref_at(j, "number");
        if (!cJSON_IsObject(pr) || !cJSON_IsNumber(num) || !ev->action) {
            cJSON_Delete(j);
            return err_set(e, PE_USAGE, NULL,
                           "a pull_request delivery needs action, number and pull_request");
        }
        ev->number = ref_ll(num->valuedouble);
        ev->repo = ref_str_at(j, "repository.full_name");
        if (!ev->repo)
            ev->repo = ref_str_at(pr, "base.repo.full_name");
        ev->sha = ref_str_at(pr, "head.sha");
        ev->branch = ref_str_at(pr, "head.ref");
        ev->author = ref_str_at(pr, "user.login");
        ev->title = ref_str_at(pr, "title");
        ev->state = ref_str_at(pr, "state");
        ev->head_repo = ref_str_at(pr, "head.repo.full_name");
        char *base_repo = ref_str_at(pr, "base.repo.full_name");
        ev->fork = !ev->head_repo || !base_repo || strcasecmp(ev->head_repo, base_repo) != 0;
        free(base_repo);
        ev->draft = cJSON_IsTrue(ref_at(pr, "draft"));
        ev->merged = cJSON_IsTrue(ref_at(pr, "merged"));
        char *upd = ref_str_at(pr, "updated_at");
        if (upd)
            tm_parse_rfc3339(upd, &ev->updated_ms);
        free(upd);
        ev->label = ref_str_at(j, "label.name");
        const cJSON *labels = ref_at(pr, "labels"), *l;
        ev->labels = xcalloc((size_t)cJSON_GetArraySize(labels) + 1, sizeof *ev->labels);
        cJSON_ArrayForEach(l, labels)
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(l, "name");
            if (cJSON_IsString(n))
                ev->labels[ev->nlabels++] = xstrdup(n->valuestring);
        }
        if (!ev->sha || ev->number <= 0 || !ev->repo) {
            cJSON_Delete(j);
            return err_set(e, PE_USAGE, NULL,
                           "a pull_request delivery lacks head.sha or repository");
        }
    }
    cJSON_Delete(j);
    return 0;
}

/* ---- comparing ---- */

static unsigned long compared, accepted;

static void same_str(const char *got, const char *want, const char *what, const char *ctx)
{
    if (!want)
        cr_assert_null(got, "%s: %s is \"%s\", cJSON reads none", ctx, what, got);
    else {
        cr_assert_not_null(got, "%s: %s missing, cJSON reads \"%s\"", ctx, what, want);
        cr_assert_str_eq(got, want, "%s: %s", ctx, what);
    }
}

/* agree: gh_parse and the reference give the same answer for body */
static void agree_as(const char *event, const char *body, size_t len, const char *ctx)
{
    struct gh_event a, b;
    struct err ea = {0}, eb = {0};
    /* a copy of exactly len bytes: nothing may be read past them */
    char *copy = xmalloc(len ? len : 1);
    memcpy(copy, body, len);
    int ra = gh_parse(&a, event, "guid", "7", copy, len, &ea);
    int rb = ref_parse(&b, event, "guid", "7", body, len, &eb);
    free(copy);
    compared++;
    cr_assert_eq(ra, rb, "%s (%s, %zu bytes): gh_parse %d (%s), cJSON %d (%s)", ctx, event, len, ra,
                 ea.msg ? ea.msg : "-", rb, eb.msg ? eb.msg : "-");
    if (ra)
        cr_assert_str_eq(ea.msg, eb.msg, "%s", ctx);
    else
        accepted++;
    same_str(a.action, b.action, "action", ctx);
    same_str(a.repo, b.repo, "repo", ctx);
    same_str(a.sha, b.sha, "sha", ctx);
    same_str(a.branch, b.branch, "branch", ctx);
    same_str(a.author, b.author, "author", ctx);
    same_str(a.title, b.title, "title", ctx);
    same_str(a.state, b.state, "state", ctx);
    same_str(a.label, b.label, "label", ctx);
    same_str(a.head_repo, b.head_repo, "head_repo", ctx);
    cr_assert_eq(a.number, b.number, "%s: number", ctx);
    cr_assert_eq(a.installation, b.installation, "%s: installation", ctx);
    cr_assert_eq(a.updated_ms, b.updated_ms, "%s: updated_at", ctx);
    cr_assert_eq(a.draft, b.draft, "%s: draft", ctx);
    cr_assert_eq(a.merged, b.merged, "%s: merged", ctx);
    cr_assert_eq(a.fork, b.fork, "%s: fork", ctx);
    cr_assert_eq(a.nlabels, b.nlabels, "%s: labels", ctx);
    for (size_t i = 0; i < a.nlabels; i++)
        same_str(a.labels[i], b.labels[i], "a label", ctx);
    gh_event_release(&a);
    gh_event_release(&b);
    err_release(&ea);
    err_release(&eb);
}

static void agree(const char *body, size_t len, const char *ctx)
{
    agree_as("pull_request", body, len, ctx);
    agree_as("ping", body, len, ctx);
}

static void agree_s(const char *body)
{
    agree(body, strlen(body), body);
}

/* ---- inputs ---- */

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
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

/* the pull_request examples, compact as GitHub sends them; caller frees */
static char **pr_bodies(size_t *n)
{
    cJSON *all = examples();
    const cJSON *ev, *prs = NULL, *ex;
    cJSON_ArrayForEach(ev, all)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(ev, "name");
        if (cJSON_IsString(name) && !strcmp(name->valuestring, "pull_request"))
            prs = cJSON_GetObjectItemCaseSensitive(ev, "examples");
    }
    cr_assert_not_null(prs);
    char **out = xcalloc((size_t)cJSON_GetArraySize(prs) * 2 + 1, sizeof *out);
    *n = 0;
    cJSON_ArrayForEach(ex, prs)
    {
        out[(*n)++] = cJSON_PrintUnformatted(ex);
        out[(*n)++] = cJSON_Print(ex); /* indented, with tabs and newlines */
    }
    cJSON_Delete(all);
    cr_assert_geq(*n, 58, "GitHub publishes 29 pull_request examples");
    return out;
}

static void free_bodies(char **b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(b[i]);
    free(b);
}

Test(github_json, every_published_example_reads_as_cjson_reads_it)
{
    size_t n;
    char **b = pr_bodies(&n);
    for (size_t i = 0; i < n; i++) {
        char ctx[64];
        snprintf(ctx, sizeof ctx, "example %zu", i);
        agree(b[i], strlen(b[i]), ctx);
    }
    cr_assert_eq(accepted, 2 * n, "every example is a valid delivery");
    free_bodies(b, n);
}

Test(github_json, every_truncation_is_refused_as_cjson_refuses_it)
{
    size_t n;
    char **b = pr_bodies(&n);
    /* every length of the first example; then 64 random ones of the others */
    size_t len0 = strlen(b[0]);
    for (size_t l = 0; l < len0; l++) {
        char ctx[64];
        snprintf(ctx, sizeof ctx, "example 0 cut at %zu", l);
        agree_as("pull_request", b[0], l, ctx);
    }
    for (size_t i = 1; i < n; i++)
        for (int k = 0; k < 64; k++) {
            size_t l = below(strlen(b[i]));
            char ctx[64];
            snprintf(ctx, sizeof ctx, "example %zu cut at %zu", i, l);
            agree(b[i], l, ctx);
        }
    free_bodies(b, n);
}

/* bytes that matter to a JSON parser, and some that do not */
static const char interesting[] =
    "\"\\{}[],:0123456789-+.eEtrufalsn \t\n\r\x01\x1f\x7f/ubfnrtxX\xef\xbb\xbf\x80\xff";

static unsigned char pick(void)
{
    if (below(4) == 0)
        return (unsigned char)below(256);
    return (unsigned char)interesting[below(sizeof interesting - 1)];
}

Test(github_json, byte_flips_insertions_and_deletions_read_as_cjson_reads_them)
{
    size_t n;
    char **b = pr_bodies(&n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(b[i]);
        char *m = xmalloc(len + 64);
        for (int k = 0; k < 120; k++) {
            memcpy(m, b[i], len);
            size_t ml = len;
            int edits = 1 + (int)below(3);
            for (int x = 0; x < edits; x++) {
                size_t at = below(ml);
                switch (below(3)) {
                case 0: /* flip */
                    m[at] = (char)pick();
                    break;
                case 1: /* insert */
                    memmove(m + at + 1, m + at, ml - at);
                    m[at] = (char)pick();
                    ml++;
                    break;
                default: /* delete */
                    memmove(m + at, m + at + 1, ml - at - 1);
                    ml--;
                    break;
                }
            }
            char ctx[64];
            snprintf(ctx, sizeof ctx, "example %zu, mutation %d", i, k);
            agree(m, ml, ctx);
        }
        free(m);
    }
    cr_assert_gt(accepted, 0, "some mutations still parse");
    cr_assert_lt(accepted, compared, "some mutations do not");
    free_bodies(b, n);
}

/* a minimal delivery around a value put in one field */
static void agree_in(const char *fmt, const char *value)
{
    char *body = xasprintf(fmt, value);
    agree_s(body);
    free(body);
}

#define PR_FMT                                                                                     \
    "{\"action\":\"opened\",\"number\":%s,\"pull_request\":{\"head\":{\"sha\":\"abc\",\"ref\":"    \
    "\"b\",\"repo\":{\"full_name\":\"o/r\"}},\"base\":{\"repo\":{\"full_name\":\"o/r\"}},"         \
    "\"labels\":[{\"name\":\"x\"}]},\"repository\":{\"full_name\":\"o/r\"}}"
#define STR_FMT                                                                                    \
    "{\"action\":\"opened\",\"number\":2,\"pull_request\":{\"head\":{\"sha\":\"abc\",\"ref\":%s,"  \
    "\"repo\":{\"full_name\":\"o/r\"}},\"base\":{\"repo\":{\"full_name\":\"o/r\"}},"               \
    "\"title\":%s},\"repository\":{\"full_name\":\"o/r\"}}"

Test(github_json, numbers_read_as_cjson_reads_them)
{
    static const char *const nums[] = {
        "2",
        "02",
        "-2",
        "2.",
        "2.9",
        "-.5",
        ".5",
        "+2",
        "2e0",
        "2E+0",
        "2e",
        "2e+",
        "2e-",
        "2.e1",
        "2.5.1",
        "2..",
        "-",
        "--2",
        "-e2",
        "1e400",
        "-1e400",
        "1e-400",
        "0x10",
        "2x",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "2,",
        "2]",
        "2}",
        "123456789012345678901234567890123456789012345678901234567890123",  /* 63 digits */
        "1234567890123456789012345678901234567890123456789012345678901234", /* 64 */
        "2.00000000000000000000000000000000000000000000000000000000000000",
        "2.000000000000000000000000000000000000000000000000000000000000001",
        "2 ",
        "2\x01",
        "\"2\"",
        "true",
        "null",
        "[2]",
        "{}",
        "2e+1.5",
        "1E2E3",
        "NaN",
        "Infinity",
        "-Infinity",
        "nul",
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        agree_in(PR_FMT, nums[i]);
        agree_in("{\"installation\":{\"id\":%s}}", nums[i]);
        agree_in("%s", nums[i]);
    }
}

Test(github_json, strings_and_escapes_read_as_cjson_reads_them)
{
    static const char *const strs[] = {
        "\"plain\"",
        "\"\"",
        "\"a\\\"b\"",
        "\"a\\\\\"",
        "\"\\/\\b\\f\\n\\r\\t\"",
        "\"\\x\"",
        "\"\\u00e9\\u00C9\"",
        "\"\\u20ac\"",
        "\"\\ud83d\\ude00\"",
        "\"\\uD83D\\uDE00x\"",
        "\"\\ud83d\"",
        "\"\\ud83dx\"",
        "\"\\ud83d\\u0041\"",
        "\"\\ude00\"",
        "\"\\udbff\\udfff\"",
        "\"\\ud800\\udc00\"",
        "\"a\\u0000b\"",
        "\"\\u0000\"",
        "\"\\uzzzz\"",
        "\"\\u00zz\"",
        "\"\\u12\"",
        "\"\\u\"",
        "\"\\u12\\\"x\"",
        "\"\\u000\\\\\"",
        "\"\\ud83d\\ude0\"",
        "\"\\ud83d\\\"\"",
        "\"raw\x01\x1f\tcontrol\"",
        "\"\xc3\xa9 utf-8 \xe2\x82\xac\"",
        "\"bad \xff\xfe utf-8\"",
        "\"unterminated",
        "\"a\\",
        "\"\\",
        "'single'",
        "\"a\"\"b\"",
        "\"x\\ud83d\\ude00\\u00e9\\n\\\"\"",
        "\"\\ud800\\ud800\"",
        "\"\\uDFFF\"",
        "\"\\uFFFF\"",
        "\"trailing backslash escape \\\\\"",
        "\"\\u0041\\u0042\\u0043\"",
    };
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        for (size_t k = 0; k < sizeof strs / sizeof *strs; k += 7) {
            char *body = xasprintf(STR_FMT, strs[i], strs[k]);
            agree_s(body);
            free(body);
        }
    /* and as keys: a key is a C string, so "action\u0000x" is "action" */
    static const char *const keys[] = {
        "\"action\"",
        "\"\\u0061ction\"",
        "\"action\\u0000x\"",
        "\"act\\u0000ion\"",
        "\"action\\u0000\\ud83d\\ude00\"",
        "\"\\u0061\\u0063\\u0074\\u0069\\u006f\\u006e\"",
        "\"ACTION\"",
        "\"action \"",
        "\"actio\"",
        "\"actionx\"",
        "\"\\uzzzzaction\"",
        "\"action\\uzzzz\"",
        "\"action\\u0000xxxxxxxxxxxxxxxxxxxxxxxxxx\"",
        "\"a\\u0000\"",
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        agree_in("{%s:\"opened\",\"number\":2,\"pull_request\":{\"head\":{\"sha\":\"s\"}},"
                 "\"repository\":{\"full_name\":\"o/r\"}}",
                 keys[i]);
        char *body = xasprintf("{\"pull_request\":{\"head\":{\"sha\":\"s\"}},\"action\":\"opened\","
                               "\"number\":2,\"repository\":{%s:\"o/r\",\"full_name\":\"p/q\"}}",
                               keys[i]);
        agree_s(body);
        free(body);
    }
    /* a key with a NUL byte in it, as raw bytes */
    static const char raw[] = "{\"action\0x\":\"opened\",\"number\":2,\"pull_request\":{\"head\":"
                              "{\"sha\":\"s\"}},\"repository\":{\"full_name\":\"o/r\"}}";
    agree(raw, sizeof raw - 1, "a raw NUL in a key");
    static const char rawv[] = "{\"action\":\"op\0ened\",\"number\":2,\"pull_request\":{\"head\":"
                               "{\"sha\":\"s\"}},\"repository\":{\"full_name\":\"o/r\"}}";
    agree(rawv, sizeof rawv - 1, "a raw NUL in a value");
}

Test(github_json, structure_quirks_read_as_cjson_reads_them)
{
    static const char *const docs[] = {
        "",
        " ",
        "{",
        "}",
        "{}",
        "[]",
        "null",
        "\"s\"",
        "1",
        "{} trailing",
        "{}}",
        "{}\x01garbage",
        "\xef\xbb\xbf{}",
        "\xef\xbb\xbf{ }",
        "\xef\xbb\xbf{",
        "\xef\xbb\xbf",
        " \xef\xbb\xbf{}",
        "\x01\x02{\x03}\x04",
        "{\"a\":1,}",
        "{,}",
        "{\"a\" 1}",
        "{\"a\":}",
        "{\"a\"}",
        "{1:2}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":[1,]}",
        "{\"a\":[,1]}",
        "{\"a\":[1 2]}",
        "{\"a\":[]}",
        "{\"a\":[ ]}",
        "{\"a\":{}}",
        "{\"a\":tru}",
        "{\"a\":truex}",
        "{\"a\":nulll}",
        "{\"a\":falsefalse}",
        "{\"a\":True}",
        "{\"a\":\"b\"  ,  \"c\" : [ null , false ] }",
        "{\"action\":\"a\",\"action\":\"b\"}",
        "{\"action\":1,\"action\":\"b\"}",
        "{\"installation\":{\"id\":7},\"installation\":{\"id\":8}}",
        "{\"installation\":[{\"id\":7}]}",
        "{\"installation\":{\"id\":\"7\"}}",
        "{\"installation\":{\"x\":{\"id\":1},\"id\":2.9}}",
        "{\"action\":\"a\"}x",
        "{\"action\":\"a\"}{",
        "{\"action\":\"a\"\n",
        "{\"action\":\"a\",",
        "{\"action\":\"a\",\"",
        "{\"label\":{\"name\":\"bug\",\"name\":\"x\"},\"action\":\"labeled\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++)
        agree_s(docs[i]);
    /* the BOM counts only in a body of 5 bytes or more */
    agree("\xef\xbb\xbf{}", 5, "bom+{}");
    agree("\xef\xbb\xbf{}", 4, "bom+{");
    /* pull_request variants: duplicates count the first time, labels may be
     * an object, elements that are not objects are skipped */
    static const char *const prs[] = {
        "{\"labels\":[{\"name\":\"a\"},{\"name\":1},{\"x\":\"y\"},[{\"name\":\"n\"}],\"s\","
        "{\"name\":\"b\",\"name\":\"c\"},{\"name\":{\"name\":\"d\"}},null]}",
        "{\"labels\":{\"k\":{\"name\":\"a\"},\"name\":{\"name\":\"b\"},\"z\":\"name\"}}",
        "{\"labels\":[{\"name\":\"a\"}],\"labels\":[{\"name\":\"b\"}]}",
        "{\"labels\":\"none\"}",
        "{\"labels\":[]}",
        "{\"labels\":{}}",
        "{\"head\":{\"sha\":\"1\"},\"head\":{\"sha\":\"2\"}}",
        "{\"head\":{\"sha\":1,\"sha\":\"2\"}}",
        "{\"head\":[{\"sha\":\"1\"}]}",
        "{\"draft\":true,\"merged\":\"true\"}",
        "{\"draft\":1,\"merged\":true,\"merged\":false}",
        "{\"head\":{\"repo\":null}}",
        "{\"head\":{\"repo\":{\"full_name\":\"O/R\"}}}",
        "{\"state\":\"closed\",\"state\":\"open\",\"title\":\"t\\u00e9\"}",
        "{\"updated_at\":\"2024-01-02T03:04:05Z\"}",
        "{\"updated_at\":\"not a time\"}",
        "{\"user\":{\"login\":\"me\"},\"user\":{\"login\":\"you\"}}",
        "{\"base\":{\"repo\":{\"full_name\":\"x/y\"}},\"head\":{\"repo\":{\"full_name\":\"x/y\"}}}",
    };
    for (size_t i = 0; i < sizeof prs / sizeof *prs; i++) {
        char *body = xasprintf("{\"action\":\"opened\",\"number\":3,\"pull_request\":%s,"
                               "\"repository\":{\"full_name\":\"o/r\"},\"label\":{\"name\":\"l\"}}",
                               prs[i]);
        agree_s(body);
        free(body);
        body = xasprintf("{\"action\":\"opened\",\"number\":3,\"pull_request\":{\"head\":{\"sha\":"
                         "\"s\"},\"base\":{\"repo\":{\"full_name\":\"b/r\"}},\"x\":%s}}",
                         prs[i]);
        agree_s(body);
        free(body);
    }
}

Test(github_json, nesting_stops_where_cjson_stops)
{
    for (int depth = 996; depth <= 1003; depth++) {
        for (int arr = 0; arr < 2; arr++) {
            size_t cap = (size_t)depth * 8 + 64;
            char *b = xmalloc(cap);
            size_t n = 0;
            n += (size_t)snprintf(b + n, cap - n, "{\"x\":");
            for (int d = 1; d < depth; d++)
                n += (size_t)snprintf(b + n, cap - n, arr ? "[" : "{\"k\":");
            n += (size_t)snprintf(b + n, cap - n, "1");
            for (int d = 1; d < depth; d++)
                b[n++] = arr ? ']' : '}';
            b[n++] = '}';
            char ctx[64];
            snprintf(ctx, sizeof ctx, "depth %d, %s", depth, arr ? "arrays" : "objects");
            agree(b, n, ctx);
            free(b);
        }
    }
}

/* ---- random documents around the fields gh_parse reads ---- */

struct gen {
    char *b;
    size_t n, cap;
};

static void put(struct gen *g, const char *s, size_t n)
{
    XGROW(g->b, g->cap, g->n + n + 1);
    memcpy(g->b + g->n, s, n);
    g->n += n;
}

static void puts_(struct gen *g, const char *s)
{
    put(g, s, strlen(s));
}

static void ws(struct gen *g)
{
    static const char *const w[] = {"", "", "", " ", "\n", "\t", " \r\n ", "\x01", "\x1f"};
    puts_(g, w[below(sizeof w / sizeof *w)]);
}

static void gen_string(struct gen *g)
{
    static const char *const parts[] = {
        "a",       "Hello",    "o/r",     "full_name",
        "\\\"",    "\\\\",     "\\/",     "\\n",
        "\\t",     "\\u00e9",  "\\u0000", "\\ud83d\\ude00",
        "\\uzzzz", "\xc3\xa9", "\x01",    " ",
        "name",    "sha",      "\\u0041", "2024-01-02T03:04:05Z",
        "\\ud83d", "\\x",      "\\ude00",
    };
    put(g, "\"", 1);
    for (size_t k = below(5); k > 0; k--)
        puts_(g, parts[below(sizeof parts / sizeof *parts - (below(20) ? 3 : 0))]);
    put(g, "\"", 1);
}

static void gen_key(struct gen *g)
{
    static const char *const keys[] = {
        "action",      "number", "installation", "id",     "repository", "full_name",
        "label",       "name",   "pull_request", "head",   "base",       "repo",
        "sha",         "ref",    "user",         "login",  "title",      "state",
        "draft",       "merged", "updated_at",   "labels", "x",          "\\u0061ction",
        "name\\u0000", "nam",    "sha ",
    };
    put(g, "\"", 1);
    puts_(g, keys[below(sizeof keys / sizeof *keys)]);
    put(g, "\"", 1);
}

static void gen_value(struct gen *g, int depth)
{
    static const char *const scalars[] = {"null", "true", "false", "0",  "2",  "-1",
                                          "2.5",  "1e3",  "01",    "1.", "-0", "12345678901"};
    size_t what = depth > 6 ? below(3) : below(6);
    switch (what) {
    case 0:
        puts_(g, scalars[below(sizeof scalars / sizeof *scalars)]);
        break;
    case 1:
    case 2:
        gen_string(g);
        break;
    case 3: {
        put(g, "[", 1);
        ws(g);
        for (size_t k = below(4); k > 0; k--) {
            gen_value(g, depth + 1);
            ws(g);
            if (k > 1)
                put(g, ",", 1);
            ws(g);
        }
        put(g, "]", 1);
        break;
    }
    default: {
        put(g, "{", 1);
        ws(g);
        for (size_t k = below(6); k > 0; k--) {
            gen_key(g);
            ws(g);
            put(g, ":", 1);
            ws(g);
            gen_value(g, depth + 1);
            ws(g);
            if (k > 1)
                put(g, ",", 1);
            ws(g);
        }
        put(g, "}", 1);
        break;
    }
    }
}

Test(github_json, random_documents_read_as_cjson_reads_them)
{
    struct gen g = {0};
    for (int i = 0; i < 20000; i++) {
        g.n = 0;
        puts_(&g, "{\"action\":");
        gen_value(&g, 1);
        puts_(&g, ",\"number\":");
        gen_value(&g, 5);
        puts_(&g, ",\"pull_request\":{\"head\":{\"sha\":");
        gen_value(&g, 5);
        puts_(&g, ",\"repo\":");
        gen_value(&g, 2);
        puts_(&g, "},\"labels\":");
        gen_value(&g, 2);
        puts_(&g, ",");
        gen_key(&g);
        puts_(&g, ":");
        gen_value(&g, 1);
        puts_(&g, "},");
        gen_key(&g);
        puts_(&g, ":");
        gen_value(&g, 0);
        puts_(&g, "}");
        /* and now and then a little damage */
        if (below(4) == 0)
            g.b[below(g.n)] = (char)pick();
        char ctx[64];
        snprintf(ctx, sizeof ctx, "random document %d", i);
        agree(g.b, g.n, ctx);
    }
    free(g.b);
    cr_assert_gt(accepted, 1000);
}

/* Unit tests for the git.checkout provider (core/providers/git_checkout.c)
 * and its libgit2 glue (core/lib/vcs.c), against real repositories built in
 * a temporary directory with the git CLI (run as an argv, never a shell). */
#include "core/lib/err.h"
#include "core/lib/fs.h"
#include "core/lib/proc.h"
#include "core/lib/sb.h"
#include "core/lib/val.h"
#include "core/lib/vcs.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "core/provider.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <git2.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOSTILE "zzz\";echo${IFS}\"hello\";#"
#define PWN "$(touch${IFS}pwned)"

static char root[PATH_MAX];                 /* the test's temp dir */
static char *up, *work, *logs, *run, *proj; /* inside it */
static struct prov_host host;

static const struct provider *gc(void)
{
    const struct provider *p = prov_find("git.checkout");
    cr_assert_not_null(p);
    return p;
}

/* git: run git in dir with the given arguments (NULL-terminated); asserts
 * that it succeeded and returns its stdout without trailing newlines. */
static char *git(const char *dir, ...)
{
    static const char *const config[] = {"user.name=prenv test", "user.email=test@prenv.invalid",
                                         "commit.gpgsign=false", "tag.gpgsign=false",
                                         "init.defaultBranch=main"};
    const char *argv[32] = {"git", "-C", dir};
    size_t n = 3;
    for (size_t i = 0; i < sizeof config / sizeof config[0]; i++) {
        argv[n++] = "-c";
        argv[n++] = config[i];
    }
    size_t first = n;
    va_list ap;
    va_start(ap, dir);
    for (const char *a; (a = va_arg(ap, const char *));) {
        cr_assert_lt(n, 31);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    struct val *extra = val_map(NULL);
    val_map_set(extra, "GIT_CONFIG_NOSYSTEM", NULL, val_str("1", NULL));
    val_map_set(extra, "GIT_CONFIG_GLOBAL", NULL, val_str("/dev/null", NULL));
    val_map_set(extra, "HOME", NULL, val_str(root, NULL));
    char **envp = proc_env_build(extra);
    val_free(extra);
    struct proc_spec spec = {.argv = argv, .envp = envp, .log_fd = -1, .out_cap = 1 << 16};
    struct proc_result r;
    struct err e = {0};
    int rc = proc_run(&spec, &r, &e);
    proc_env_free(envp);
    cr_assert_eq(rc, 0, "cannot run git: %s", e.msg);
    cr_assert_eq(r.exit_code, 0, "git %s failed: %s", argv[first], r.err_tail);
    char *out = r.out;
    r.out = NULL;
    size_t len = strlen(out);
    while (len && out[len - 1] == '\n')
        out[--len] = 0;
    proc_result_release(&r);
    return out;
}

static void put(const char *path, const char *text)
{
    struct err e = {0};
    cr_assert_eq(fs_write_atomic(path, text, strlen(text), 0644, &e), 0, "%s", e.msg);
}

static char *slurp(const char *path)
{
    char *s = NULL;
    size_t n;
    struct err e = {0};
    cr_assert_eq(fs_read(path, 1 << 20, &s, &n, &e), 0, "%s", e.msg);
    return s;
}

static void assert_file(const char *dir, const char *name, const char *want)
{
    char *p = xasprintf("%s/%s", dir, name);
    char *s = slurp(p);
    cr_assert_str_eq(s, want, "%s", p);
    free(s);
    free(p);
}

static void commit_file(const char *name, const char *text, const char *msg)
{
    char *p = xasprintf("%s/%s", up, name);
    put(p, text);
    free(p);
    free(git(up, "add", name, NULL));
    free(git(up, "commit", "-q", "-m", msg, NULL));
}

/* rev: `git rev-parse` of what in the upstream repository; caller frees */
static char *rev(const char *what)
{
    return git(up, "rev-parse", what, NULL);
}

/* Upstream: main has two commits; v1 is an annotated tag on the first;
 * feature/x branches from the first with a commit of its own. */
static void setup(void)
{
    snprintf(root, sizeof root, "/tmp/prenv-gitco-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    up = xasprintf("%s/up", root);
    work = xasprintf("%s/work", root);
    logs = xasprintf("%s/logs", root);
    run = xasprintf("%s/run", root);
    proj = xasprintf("%s/project", root);
    const char *dirs[] = {up, work, logs, run, proj};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(mkdir(dirs[i], 0755), 0);
    free(git(up, "init", "-q", NULL));
    commit_file("a.txt", "one\n", "first");
    free(git(up, "tag", "-a", "v1", "-m", "version 1", NULL));
    commit_file("a.txt", "two\n", "second");
    free(git(up, "checkout", "-q", "-b", "feature/x", "v1", NULL));
    commit_file("f.txt", "feature\n", "feature");
    free(git(up, "checkout", "-q", "main", NULL));
    memset(&host, 0, sizeof host);
    host.state_dir = root;
    /* keep the user's own git configuration away from libgit2 */
    struct err e = {0};
    cr_assert_eq(vcs_init(&e), 0, "%s", e.msg);
    for (int lvl = GIT_CONFIG_LEVEL_SYSTEM; lvl <= GIT_CONFIG_LEVEL_GLOBAL; lvl++)
        git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, lvl, root);
}

static void teardown(void)
{
    vcs_shutdown();
    if (root[0]) {
        struct err e = {0};
        fs_rm_rf(root, &e);
        err_release(&e);
    }
    free(up);
    free(work);
    free(logs);
    free(run);
    free(proj);
    src_free_all();
}

TestSuite(git_checkout, .init = setup, .fini = teardown, .timeout = 120);

static struct prov_call call(const char *resource, const struct val *props)
{
    struct prov_call c = {
        .env = "pr-42",
        .resource = resource,
        .type = "git.checkout",
        .project_dir = proj,
        .work_dir = work,
        .log_dir = logs,
        .run_dir = run,
        .props = props,
        .host = &host,
    };
    return c;
}

/* props: a map from key/value pairs, NULL-terminated */
static struct val *props(const char *k, ...)
{
    struct val *m = val_map(NULL);
    va_list ap;
    va_start(ap, k);
    for (; k; k = va_arg(ap, const char *))
        val_map_set(m, k, NULL, val_str(va_arg(ap, const char *), NULL));
    va_end(ap);
    return m;
}

/* yaml: props parsed from text, so errors carry positions */
static struct val *yaml(const char *text)
{
    const struct src *s = src_add("envs/pr.yaml", text, strlen(text));
    struct val *v = NULL;
    struct err e = {0};
    cr_assert_eq(yt_parse(&v, s, &e), 0, "%s", e.msg);
    return v;
}

static int check(const struct val *p, struct err *e)
{
    struct prov_call c = call("src", p);
    return prov_check_props(gc(), &c, NULL, e);
}

/* create: check + create; asserts success and returns the result */
static struct prov_result create(const char *resource, const struct val *p)
{
    struct prov_call c = call(resource, p);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(prov_check_props(gc(), &c, NULL, &e), 0, "%s", e.msg);
    int rc = gc()->create(&c, &r, &e);
    cr_assert_eq(rc, 0, "create: %s (%s)", e.msg, e.hint ? e.hint : "");
    return r;
}

static int create_err(const struct val *p, struct err *e)
{
    struct prov_call c = call("src", p);
    struct prov_result r = {0};
    int rc = gc()->create(&c, &r, e);
    cr_assert_null(r.outputs);
    prov_result_release(&r);
    return rc;
}

static const char *out(const struct prov_result *r, const char *key)
{
    const char *s = val_map_str(r->outputs, key, NULL);
    cr_assert_not_null(s, "output '%s' missing", key);
    return s;
}

static struct prov_result do_read(const char *resource, const struct val *old_props,
                                  const struct val *old_outputs)
{
    struct prov_call c = call(resource, NULL);
    c.old_props = old_props;
    c.old_outputs = old_outputs;
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(gc()->read(&c, &r, &e), 0, "read: %s", e.msg);
    return r;
}

static void assert_detached_at(const char *dir, const char *sha)
{
    char *head = git(dir, "rev-parse", "HEAD", NULL);
    char *name = git(dir, "rev-parse", "--abbrev-ref", "HEAD", NULL);
    cr_assert_str_eq(head, sha);
    cr_assert_str_eq(name, "HEAD", "HEAD is not detached: %s", name);
    free(head);
    free(name);
}

static char *in_work(const char *name)
{
    return xasprintf("%s/%s", work, name);
}

Test(git_checkout, clone_at_the_remote_head_outputs_its_path_and_the_default_branch_sha)
{
    struct val *p = props("url", up, NULL);
    struct prov_result r = create("src", p);
    char *dir = in_work("src"), *main = rev("main");
    cr_assert_str_eq(out(&r, "path"), dir);
    cr_assert_str_eq(r.id, dir);
    cr_assert_str_eq(out(&r, "sha"), main);
    cr_assert_str_eq(out(&r, "ref"), "main");
    assert_detached_at(dir, main);
    assert_file(dir, "a.txt", "two\n");
    char *origin = git(dir, "remote", "get-url", "origin", NULL);
    cr_assert_str_eq(origin, up);
    char *tmp = in_work(".src.prenv-clone");
    cr_assert_not(fs_exists(tmp), "the temporary clone was left behind");
    free(tmp);
    free(origin);
    free(main);
    free(dir);
    prov_result_release(&r);
    val_free(p);
}

Test(git_checkout, clone_at_a_branch_checks_out_its_tip)
{
    struct val *p = props("url", up, "ref", "feature/x", NULL);
    struct prov_result r = create("src", p);
    char *want = rev("feature/x");
    cr_assert_str_eq(out(&r, "sha"), want);
    cr_assert_str_eq(out(&r, "ref"), "feature/x");
    assert_detached_at(out(&r, "path"), want);
    assert_file(out(&r, "path"), "f.txt", "feature\n");
    assert_file(out(&r, "path"), "a.txt", "one\n");
    free(want);
    prov_result_release(&r);
    val_free(p);
}

Test(git_checkout, clone_at_an_annotated_tag_checks_out_the_tagged_commit)
{
    struct val *p = props("url", up, "ref", "v1", NULL);
    struct prov_result r = create("src", p);
    char *want = rev("v1^{commit}");
    cr_assert_str_eq(out(&r, "sha"), want);
    cr_assert_str_eq(out(&r, "ref"), "v1");
    assert_file(out(&r, "path"), "a.txt", "one\n");
    char *f = xasprintf("%s/f.txt", out(&r, "path"));
    cr_assert_not(fs_exists(f));
    free(f);
    free(want);
    prov_result_release(&r);
    val_free(p);
}

Test(git_checkout, clone_at_an_exact_sha_is_detached_there_and_wins_over_ref)
{
    char *first = rev("main~1");
    struct val *p = props("url", up, "sha", first, NULL);
    struct prov_result r = create("src", p);
    cr_assert_str_eq(out(&r, "sha"), first);
    cr_assert_str_eq(out(&r, "ref"), first);
    assert_detached_at(out(&r, "path"), first);
    assert_file(out(&r, "path"), "a.txt", "one\n");
    prov_result_release(&r);
    val_free(p);

    /* sha and ref together: the sha is checked out, the ref is reported */
    p = props("url", up, "ref", "feature/x", "sha", first, "path", "both", NULL);
    r = create("both", p);
    cr_assert_str_eq(out(&r, "sha"), first);
    cr_assert_str_eq(out(&r, "ref"), "feature/x");
    assert_detached_at(out(&r, "path"), first);
    prov_result_release(&r);
    val_free(p);
    free(first);
}

Test(git_checkout, uppercase_sha_is_accepted_and_reported_lowercase)
{
    char *sha = rev("main");
    char *upper = xstrdup(sha);
    for (char *q = upper; *q; q++)
        if (*q >= 'a' && *q <= 'f')
            *q = (char)(*q - 'a' + 'A');
    struct val *p = props("url", up, "sha", upper, NULL);
    struct prov_result r = create("src", p);
    cr_assert_str_eq(out(&r, "sha"), sha);
    prov_result_release(&r);
    val_free(p);
    free(upper);
    free(sha);
}

Test(git_checkout, a_named_ref_outside_branches_and_tags_is_fetched)
{
    char *feature = rev("feature/x");
    free(git(up, "update-ref", "refs/pull/42/head", feature, NULL));
    free(git(up, "branch", "-q", "-D", "feature/x", NULL));
    struct val *p = props("url", up, "ref", "refs/pull/42/head", NULL);
    struct prov_result r = create("src", p);
    cr_assert_str_eq(out(&r, "sha"), feature);
    cr_assert_str_eq(out(&r, "ref"), "refs/pull/42/head");
    assert_file(out(&r, "path"), "f.txt", "feature\n");
    prov_result_release(&r);
    val_free(p);
    free(feature);
}

Test(git_checkout, update_after_an_upstream_commit_checks_out_the_new_sha)
{
    struct val *p = props("url", up, NULL);
    struct prov_result r = create("src", p);
    char *dir = xstrdup(out(&r, "path"));
    /* a local edit to a tracked file is overwritten: the checkout is prenv's */
    char *a = xasprintf("%s/a.txt", dir);
    put(a, "local edit\n");
    commit_file("a.txt", "three\n", "third");
    commit_file("c.txt", "new\n", "fourth");
    char *main = rev("main");
    cr_assert_str_neq(out(&r, "sha"), main);

    struct prov_call c = call("src", p);
    c.old_props = p;
    c.old_outputs = r.outputs;
    c.id = r.id;
    struct prov_result r2 = {0};
    struct err e = {0};
    cr_assert_eq(gc()->update(&c, &r2, &e), 0, "%s", e.msg);
    cr_assert_str_eq(out(&r2, "sha"), main);
    cr_assert_str_eq(out(&r2, "path"), dir);
    assert_detached_at(dir, main);
    assert_file(dir, "a.txt", "three\n");
    assert_file(dir, "c.txt", "new\n");

    /* and back to a tag: files the tag lacks go away */
    struct val *p2 = props("url", up, "ref", "v1", NULL);
    c.props = p2;
    c.old_outputs = r2.outputs;
    struct prov_result r3 = {0};
    cr_assert_eq(gc()->update(&c, &r3, &e), 0, "%s", e.msg);
    char *v1 = rev("v1^{commit}");
    cr_assert_str_eq(out(&r3, "sha"), v1);
    char *cfile = xasprintf("%s/c.txt", dir);
    cr_assert_not(fs_exists(cfile));
    free(cfile);

    /* an untracked file in the way is overwritten; other untracked files stay */
    char *f = xasprintf("%s/f.txt", dir), *keep = xasprintf("%s/build.out", dir);
    put(f, "untracked\n");
    put(keep, "artefact\n");
    struct val *p3 = props("url", up, "ref", "feature/x", NULL);
    c.props = p3;
    c.old_outputs = r3.outputs;
    struct prov_result r4 = {0};
    cr_assert_eq(gc()->update(&c, &r4, &e), 0, "%s", e.msg);
    assert_file(dir, "f.txt", "feature\n");
    assert_file(dir, "build.out", "artefact\n");
    prov_result_release(&r4);
    val_free(p3);
    free(keep);
    free(f);
    free(v1);
    prov_result_release(&r3);
    val_free(p2);
    prov_result_release(&r2);
    prov_result_release(&r);
    free(main);
    free(a);
    free(dir);
    val_free(p);
}

Test(git_checkout, read_reports_drift_after_a_tracked_file_changes_and_absence_after_deletion)
{
    struct val *p = props("url", up, NULL);
    struct prov_result r = create("src", p);
    char *dir = xstrdup(out(&r, "path"));

    struct prov_result rr = do_read("src", p, r.outputs);
    cr_assert(rr.exists);
    cr_assert_null(rr.drift, "unexpected drift: %s", rr.drift);
    cr_assert(val_equal(rr.outputs, r.outputs));
    prov_result_release(&rr);

    /* untracked files (build output) are not drift */
    char *junk = xasprintf("%s/build.out", dir);
    put(junk, "artefact\n");
    rr = do_read("src", p, r.outputs);
    cr_assert_null(rr.drift, "unexpected drift: %s", rr.drift);
    prov_result_release(&rr);

    char *a = xasprintf("%s/a.txt", dir);
    put(a, "edited\n");
    rr = do_read("src", p, r.outputs);
    cr_assert(rr.exists);
    cr_assert_not_null(rr.drift);
    cr_assert(strstr(rr.drift, "local changes: modified a.txt"), "%s", rr.drift);
    prov_result_release(&rr);

    struct err e = {0};
    cr_assert_eq(fs_rm_rf(dir, &e), 0);
    rr = do_read("src", p, r.outputs);
    cr_assert_not(rr.exists);
    cr_assert_null(rr.outputs);
    prov_result_release(&rr);
    free(a);
    free(junk);
    free(dir);
    prov_result_release(&r);
    val_free(p);
}

Test(git_checkout, read_reports_drift_when_head_was_moved)
{
    struct val *p = props("url", up, NULL);
    struct prov_result r = create("src", p);
    free(git(out(&r, "path"), "checkout", "-q", "HEAD~1", NULL));
    struct prov_result rr = do_read("src", p, r.outputs);
    cr_assert(rr.exists);
    cr_assert_not_null(rr.drift);
    cr_assert(strstr(rr.drift, "HEAD of "), "%s", rr.drift);
    cr_assert(strstr(rr.drift, "not the checked-out"), "%s", rr.drift);
    char *first = rev("main~1");
    cr_assert_str_eq(out(&rr, "sha"), first);
    free(first);
    prov_result_release(&rr);
    prov_result_release(&r);
    val_free(p);
}

Test(git_checkout, read_without_recorded_outputs_finds_the_checkout_by_its_path)
{
    struct val *p = props("url", up, "ref", "feature/x", NULL);
    struct prov_result r = create("src", p);

    struct prov_result rr = do_read("src", p, NULL);
    cr_assert(rr.exists);
    cr_assert_null(rr.drift, "unexpected drift: %s", rr.drift);
    cr_assert(val_equal(rr.outputs, r.outputs));
    cr_assert_str_eq(rr.id, r.id);
    prov_result_release(&rr);

    /* with nothing recorded at all, the resource name is the path */
    rr = do_read("src", NULL, NULL);
    cr_assert(rr.exists);
    cr_assert_str_eq(out(&rr, "ref"), "feature/x");
    cr_assert_str_eq(out(&rr, "sha"), out(&r, "sha"));
    prov_result_release(&rr);

    /* a checkout of another url is not this resource */
    struct val *other = props("url", proj, NULL);
    rr = do_read("src", other, NULL);
    cr_assert_not(rr.exists);
    prov_result_release(&rr);
    val_free(other);
    prov_result_release(&r);
    val_free(p);
}

Test(git_checkout, remove_twice_succeeds_and_clears_a_leftover_temporary_clone)
{
    struct val *p = props("url", up, NULL);
    struct prov_result r = create("src", p);
    char *tmp = in_work(".src.prenv-clone");
    cr_assert_eq(mkdir(tmp, 0755), 0);
    struct prov_call c = call("src", NULL);
    c.old_props = p;
    c.old_outputs = r.outputs;
    struct err e = {0};
    cr_assert_eq(gc()->remove(&c, &e), 0, "%s", e.msg);
    cr_assert_not(fs_exists(out(&r, "path")));
    cr_assert_not(fs_exists(tmp));
    cr_assert_eq(gc()->remove(&c, &e), 0, "%s", e.msg);
    cr_assert(fs_is_dir(work), "remove must not touch the work directory");
    free(tmp);
    prov_result_release(&r);
    val_free(p);
}

Test(git_checkout, unknown_ref_error_names_the_ref_and_lists_the_branches)
{
    struct val *p = yaml("url: placeholder\nref: feature/y\n");
    val_map_set(p, "url", NULL, val_str(up, NULL));
    struct err e = {0};
    cr_assert_eq(check(p, &e), 0, "%s", e.msg);
    int rc = create_err(p, &e);
    cr_assert_eq(rc, PE_PROVIDER);
    char *want = xasprintf("ref 'feature/y' not found in %s; branches: feature/x, main", up);
    cr_assert_str_eq(e.msg, want);
    cr_assert_eq(e.pos.line, 2);
    cr_assert_eq(e.pos.col, 6);
    cr_assert(e.hint && strstr(e.hint, "tags: v1"), "%s", e.hint);
    char *dir = in_work("src"), *tmp = in_work(".src.prenv-clone");
    cr_assert_not(fs_exists(dir));
    cr_assert_not(fs_exists(tmp));
    free(tmp);
    free(dir);
    free(want);
    err_release(&e);
    val_free(p);
}

Test(git_checkout, hostile_branch_names_reach_only_libgit2_never_a_shell)
{
    free(git(up, "branch", HOSTILE, "feature/x", NULL));
    free(git(up, "branch", PWN, "v1", NULL));
    char *hostile_sha = rev("refs/heads/" HOSTILE);
    struct val *p = props("url", up, "ref", HOSTILE, NULL);
    struct prov_result r = create("src", p);
    cr_assert_str_eq(out(&r, "sha"), hostile_sha);
    cr_assert_str_eq(out(&r, "ref"), HOSTILE);
    assert_file(out(&r, "path"), "f.txt", "feature\n");
    /* the name survives a round trip through the checkout's config */
    struct prov_result rr = do_read("src", NULL, NULL);
    cr_assert_str_eq(out(&rr, "ref"), HOSTILE);
    prov_result_release(&rr);
    prov_result_release(&r);
    val_free(p);

    p = props("url", up, "ref", PWN, "path", "pwn", NULL);
    r = create("pwn", p);
    char *v1 = rev("v1^{commit}");
    cr_assert_str_eq(out(&r, "sha"), v1);
    const char *where[] = {root, work, out(&r, "path"), "."};
    for (size_t i = 0; i < 4; i++) {
        char *f = xasprintf("%s/pwned", where[i]);
        cr_assert_not(fs_exists(f), "a shell ran: %s exists", f);
        free(f);
    }
    free(v1);
    prov_result_release(&r);
    val_free(p);
    free(hostile_sha);
}

Test(git_checkout, ref_names_invalid_by_git_rules_are_check_errors_with_a_position)
{
    static const char *const bad[] = {
        "ref: 'two..dots'\n", "ref: 'has space'\n",    "ref: 'x.lock'\n",
        "ref: 'a~1'\n",       "ref: \"new\\nline\"\n", "ref: 'at@{1}'\n",
        "ref: '*'\n",         "ref: 'trailing/'\n",    "ref: ''\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text = xasprintf("url: /r\n%s", bad[i]);
        struct val *p = yaml(text);
        struct err e = {0};
        cr_assert_eq(check(p, &e), PE_CONFIG, "accepted: %s", bad[i]);
        cr_assert_eq(e.pos.line, 2, "%s", bad[i]);
        cr_assert_eq(e.pos.col, 6, "%s", bad[i]);
        cr_assert(strstr(e.msg, "not a valid git branch or tag name") || strstr(e.msg, "empty"),
                  "%s", e.msg);
        cr_assert_null(strchr(e.msg, '\n'), "a control character reached the message");
        err_release(&e);
        val_free(p);
        free(text);
    }
    struct val *p = yaml("url: /r\nref: \"new\\nline\"\n");
    struct err e = {0};
    check(p, &e);
    cr_assert(strstr(e.msg, "new\\x0aline"), "%s", e.msg);
    err_release(&e);
    val_free(p);
}

Test(git_checkout, short_sha_is_a_check_error_with_its_position)
{
    struct val *p = yaml("url: /r\nsha: abc1234\n");
    struct err e = {0};
    cr_assert_eq(check(p, &e), PE_CONFIG);
    cr_assert_eq(e.pos.line, 2);
    cr_assert_eq(e.pos.col, 6);
    cr_assert(strstr(e.msg, "'sha' abc1234 is a short commit id"), "%s", e.msg);
    cr_assert(strstr(e.msg, "40 hex digits"), "%s", e.msg);
    err_release(&e);
    val_free(p);

    /* unquoted digits are a YAML integer: still a short sha */
    p = yaml("url: /r\nsha: 1234567\n");
    cr_assert_eq(check(p, &e), PE_CONFIG);
    cr_assert(strstr(e.msg, "short commit id"), "%s", e.msg);
    err_release(&e);
    val_free(p);

    p = yaml("url: /r\nsha: not-a-sha\n");
    cr_assert_eq(check(p, &e), PE_CONFIG);
    cr_assert(strstr(e.msg, "is not a commit id"), "%s", e.msg);
    err_release(&e);
    val_free(p);
}

Test(git_checkout, a_path_leaving_the_work_directory_is_a_check_error)
{
    static const char *const bad[] = {"path: ../outside\n", "path: /etc/src\n", "path: a/../../b\n",
                                      "path: .\n", "path: a/..\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text = xasprintf("url: /r\n%s", bad[i]);
        struct val *p = yaml(text);
        struct err e = {0};
        cr_assert_eq(check(p, &e), PE_CONFIG, "accepted: %s", bad[i]);
        cr_assert_eq(e.pos.line, 2, "%s", bad[i]);
        cr_assert_eq(e.pos.col, 7, "%s", bad[i]);
        cr_assert(strstr(e.msg, "'path'"), "%s", e.msg);
        err_release(&e);
        val_free(p);
        free(text);
    }
    struct val *p = yaml("url: /r\npath: sub/dir/../src\n");
    struct err e = {0};
    cr_assert_eq(check(p, &e), 0, "%s", e.msg);
    val_free(p);
}

Test(git_checkout, a_url_with_an_unsupported_scheme_is_a_check_error)
{
    struct val *p = yaml("url: ftp://user:hunter2@example.com/r.git\n");
    struct err e = {0};
    cr_assert_eq(check(p, &e), PE_CONFIG);
    cr_assert_eq(e.pos.line, 1);
    cr_assert_eq(e.pos.col, 6);
    cr_assert(strstr(e.msg, "scheme"), "%s", e.msg);
    cr_assert_null(strstr(e.msg, "hunter2"), "password leaked: %s", e.msg);
    err_release(&e);
    val_free(p);
}

Test(git_checkout, a_url_that_is_not_a_repository_gives_a_clear_error)
{
    char *plain = xasprintf("%s/plain", proj);
    cr_assert_eq(mkdir(plain, 0755), 0);
    struct val *p = yaml("url: placeholder\n");
    val_map_set(p, "url", NULL, val_str("plain", NULL)); /* relative to the project */
    struct err e = {0};
    cr_assert_eq(create_err(p, &e), PE_PROVIDER);
    char *want = xasprintf("%s is not a git repository", plain);
    cr_assert_str_eq(e.msg, want);
    cr_assert(e.hint && strstr(e.hint, "point 'url' at a repository"), "%s", e.hint);
    err_release(&e);
    val_free(p);
    free(want);

    char *url = xasprintf("file://%s", plain);
    p = props("url", url, NULL);
    cr_assert_eq(create_err(p, &e), PE_PROVIDER);
    cr_assert(strstr(e.msg, "is not a git repository"), "%s", e.msg);
    err_release(&e);
    val_free(p);
    free(url);

    p = props("url", "missing/repo", NULL);
    cr_assert_eq(create_err(p, &e), PE_PROVIDER);
    cr_assert(strstr(e.msg, "does not exist"), "%s", e.msg);
    cr_assert(strstr(e.msg, proj), "%s", e.msg);
    err_release(&e);
    val_free(p);
    char *dir = in_work("src");
    cr_assert_not(fs_exists(dir));
    free(dir);
    free(plain);
}

Test(git_checkout, a_relative_local_url_and_a_file_url_are_read_from_the_project)
{
    struct val *p = props("url", "../up", NULL);
    struct prov_result r = create("src", p);
    char *main = rev("main");
    cr_assert_str_eq(out(&r, "sha"), main);
    prov_result_release(&r);
    val_free(p);

    char *url = xasprintf("file://%s", up);
    p = props("url", url, "path", "viafile", NULL);
    r = create("viafile", p);
    cr_assert_str_eq(out(&r, "sha"), main);
    prov_result_release(&r);
    val_free(p);
    free(url);
    free(main);
}

Test(git_checkout, a_sha_the_remote_does_not_have_is_a_clear_error)
{
    struct val *p = props("url", up, "sha", "0123456789abcdef0123456789abcdef01234567", NULL);
    struct err e = {0};
    cr_assert_eq(create_err(p, &e), PE_PROVIDER);
    char *want = xasprintf("commit 0123456789abcdef0123456789abcdef01234567 not found in %s "
                           "after fetching its branches and tags",
                           up);
    cr_assert_str_eq(e.msg, want);
    cr_assert_not_null(e.hint);
    free(want);
    err_release(&e);
    val_free(p);
}

Test(git_checkout, a_leftover_temporary_clone_does_not_break_the_next_create)
{
    char *tmp = in_work(".src.prenv-clone");
    cr_assert_eq(mkdir(tmp, 0755), 0);
    char *junk = xasprintf("%s/.git", tmp);
    put(junk, "gitdir: /nowhere\n");
    struct val *p = props("url", up, NULL);
    struct prov_result r = create("src", p);
    char *main = rev("main");
    cr_assert_str_eq(out(&r, "sha"), main);
    cr_assert_not(fs_exists(tmp));
    free(main);
    prov_result_release(&r);
    val_free(p);
    free(junk);
    free(tmp);
}

Test(git_checkout, create_reuses_a_checkout_of_the_same_url_left_by_a_crash)
{
    struct val *p = props("url", up, NULL);
    struct prov_result r = create("src", p);
    char *marker = xasprintf("%s/untracked.txt", out(&r, "path"));
    put(marker, "kept\n");
    commit_file("a.txt", "three\n", "third");
    /* state was never saved: the engine creates again */
    struct prov_result r2 = create("src", p);
    char *main = rev("main");
    cr_assert_str_eq(out(&r2, "sha"), main);
    cr_assert(fs_exists(marker), "the checkout was cloned again instead of reused");
    assert_file(out(&r2, "path"), "a.txt", "three\n");
    free(main);
    free(marker);
    prov_result_release(&r2);
    prov_result_release(&r);
    val_free(p);
}

Test(git_checkout, create_refuses_a_path_that_holds_something_else)
{
    char *dir = in_work("src");
    cr_assert_eq(mkdir(dir, 0755), 0);
    char *f = xasprintf("%s/mine.txt", dir);
    put(f, "do not delete\n");
    struct val *p = props("url", up, NULL);
    struct err e = {0};
    cr_assert_eq(create_err(p, &e), PE_EXISTS);
    char *want = xasprintf("%s already exists and is not a checkout of %s", dir, up);
    cr_assert_str_eq(e.msg, want);
    cr_assert(e.hint && strstr(e.hint, "'path'"), "%s", e.hint);
    cr_assert(fs_exists(f));
    err_release(&e);
    free(want);
    val_free(p);

    /* an empty directory is taken over */
    cr_assert_eq(unlink(f), 0);
    p = props("url", up, NULL);
    struct prov_result r = create("src", p);
    cr_assert_str_eq(out(&r, "path"), dir);
    prov_result_release(&r);
    val_free(p);
    free(f);
    free(dir);
}

/* a port on 127.0.0.1 that nothing listens on (bound, then closed) */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

Test(git_checkout, an_unreachable_server_is_transient_and_its_password_is_not_shown)
{
    char *url = xasprintf("http://deploy:hunter2@127.0.0.1:%d/r.git", closed_port());
    struct val *p = props("url", url, NULL);
    struct err e = {0};
    cr_assert_eq(check(p, &e), 0, "%s", e.msg);
    cr_assert_eq(create_err(p, &e), PE_TRANSIENT, "%s", e.msg);
    cr_assert(strstr(e.msg, "cannot reach http://deploy:***@127.0.0.1:"), "%s", e.msg);
    cr_assert_null(strstr(e.msg, "hunter2"), "password leaked: %s", e.msg);
    cr_assert_not_null(e.hint);
    char *dir = in_work("src"), *tmp = in_work(".src.prenv-clone");
    cr_assert_not(fs_exists(dir));
    cr_assert_not(fs_exists(tmp));
    free(tmp);
    free(dir);
    err_release(&e);
    val_free(p);
    free(url);
}

/* a one-response HTTP server on 127.0.0.1, for libgit2's smart HTTP probe */
struct httpd {
    int fd, port;
    const char *response;
    pthread_t th;
};

static void *httpd_loop(void *arg)
{
    struct httpd *h = arg;
    for (;;) {
        int c = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            return NULL; /* httpd_stop shut the socket down */
        char buf[4096];
        size_t got = 0;
        while (got < sizeof buf - 1) {
            ssize_t n = read(c, buf + got, sizeof buf - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = 0;
            if (strstr(buf, "\r\n\r\n"))
                break;
        }
        ssize_t w = write(c, h->response, strlen(h->response));
        (void)w;
        close(c);
    }
}

static void httpd_start(struct httpd *h, const char *response)
{
    h->response = response;
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(h->fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(h->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(h->fd, 8), 0);
    cr_assert_eq(getsockname(h->fd, (struct sockaddr *)&sa, &len), 0);
    h->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&h->th, NULL, httpd_loop, h), 0);
}

static void httpd_stop(struct httpd *h)
{
    shutdown(h->fd, SHUT_RDWR);
    pthread_join(h->th, NULL);
    close(h->fd);
}

Test(git_checkout, http_statuses_become_provider_transient_and_credential_errors)
{
    static const struct {
        const char *response;
        int code;
        const char *hint;
    } cases[] = {
        {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", PE_PROVIDER,
         "check the URL"},
        {"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
         PE_TRANSIENT, "prenv retries"},
        {"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n"
         "Content-Length: 0\r\nConnection: close\r\n\r\n",
         PE_PROVIDER, "credentials"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct httpd h;
        httpd_start(&h, cases[i].response);
        char *url = xasprintf("http://127.0.0.1:%d/org/r.git", h.port);
        struct val *p = props("url", url, NULL);
        struct err e = {0};
        int rc = create_err(p, &e);
        httpd_stop(&h);
        cr_assert_eq(rc, cases[i].code, "case %zu: %s", i, e.msg);
        cr_assert(strstr(e.msg, url), "case %zu: %s", i, e.msg);
        cr_assert(e.hint && strstr(e.hint, cases[i].hint), "case %zu: %s / %s", i, e.msg, e.hint);
        err_release(&e);
        val_free(p);
        free(url);
    }
}

Test(git_checkout, an_empty_remote_says_there_is_nothing_to_check_out)
{
    char *empty = xasprintf("%s/empty", root);
    cr_assert_eq(mkdir(empty, 0755), 0);
    free(git(empty, "init", "-q", NULL));
    struct val *p = props("url", empty, NULL);
    struct err e = {0};
    cr_assert_eq(create_err(p, &e), PE_PROVIDER);
    cr_assert(strstr(e.msg, "is an empty repository"), "%s", e.msg);
    err_release(&e);
    val_free(p);
    free(empty);
}

Test(git_checkout, a_canceled_run_stops_and_leaves_no_checkout)
{
    host.cancel = 1;
    struct val *p = props("url", up, NULL);
    struct err e = {0};
    cr_assert_eq(create_err(p, &e), PE_CANCELED, "%s", e.msg);
    char *dir = in_work("src"), *tmp = in_work(".src.prenv-clone");
    cr_assert_not(fs_exists(dir));
    cr_assert_not(fs_exists(tmp));
    free(tmp);
    free(dir);
    err_release(&e);
    val_free(p);
}

struct job {
    const char *resource;
    const char *ref;
    int rc;
    char *msg;
    struct prov_result r;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    struct val *p = props("url", up, "ref", j->ref, NULL);
    struct prov_call c = call(j->resource, p);
    struct err e = {0};
    j->rc = gc()->create(&c, &j->r, &e);
    j->msg = e.msg ? xstrdup(e.msg) : NULL;
    err_release(&e);
    val_free(p);
    return NULL;
}

Test(git_checkout, checkouts_of_different_resources_run_concurrently)
{
    struct job jobs[4] = {
        {.resource = "a", .ref = "main"},
        {.resource = "b", .ref = "feature/x"},
        {.resource = "c", .ref = "v1"},
        {.resource = "d", .ref = "main"},
    };
    pthread_t th[4];
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    for (size_t i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(jobs[i].rc, 0, "%s: %s", jobs[i].resource, jobs[i].msg);
        char *want = rev(!strcmp(jobs[i].ref, "v1") ? "v1^{commit}" : jobs[i].ref);
        cr_assert_str_eq(out(&jobs[i].r, "sha"), want);
        free(want);
        prov_result_release(&jobs[i].r);
        free(jobs[i].msg);
    }
}

Test(git_checkout, url_credentials_are_redacted_for_messages)
{
    char *s = vcs_url_redact("https://user:s3cret@example.com/org/r.git");
    cr_assert_str_eq(s, "https://user:***@example.com/org/r.git");
    free(s);
    s = vcs_url_redact("https://ghp_token@example.com/org/r.git");
    cr_assert_str_eq(s, "https://***@example.com/org/r.git");
    free(s);
    s = vcs_url_redact("ssh://git@example.com/org/r.git");
    cr_assert_str_eq(s, "ssh://git@example.com/org/r.git");
    free(s);
    s = vcs_url_redact("https://example.com/org/r.git?x=a@b");
    cr_assert_str_eq(s, "https://example.com/org/r.git?x=a@b");
    free(s);
    s = vcs_url_redact("/srv/git/r.git");
    cr_assert_str_eq(s, "/srv/git/r.git");
    free(s);
}

Test(git_checkout, libgit2_is_refused_after_shutdown_and_shutdown_is_idempotent)
{
    vcs_shutdown();
    vcs_shutdown();
    struct err e = {0};
    cr_assert_eq(vcs_init(&e), PE_INTERNAL);
    cr_assert(strstr(e.msg, "after vcs_shutdown"), "%s", e.msg);
    err_release(&e);
}

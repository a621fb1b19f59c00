/* End to end: env export and env import. A stage with a secret goes out as
 * one JSON document with the secret still sealed (no passphrase asked), comes
 * back after its state file is lost with the same resource ids (plan: no
 * changes), goes into a second state directory, and every bad file, name or
 * collision is refused with a message and an exit code (1 failure, 2 usage). */
#include "tests/testlib.h"

#include "core/lib/fs.h"

#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CANARY "CANARY-5d21c0-export"

static const char *const TPL = "resources:\n"
                               "  web:\n"
                               "    type: process.service\n"
                               "    properties:\n"
                               "      command: [python3, \"${project.dir}/app.py\"]\n"
                               "      env: {GREETING: \"${config.token}\"}\n"
                               "      health: {http: /healthz, timeout: 30s}\n"
                               "      stop_timeout: 5s\n"
                               "outputs:\n"
                               "  url: ${web.url}\n";

static struct tl_proj P;
static char *X; /* a second state directory */

static void fini(void)
{
    tl_proj_free(&P);
    if (X) {
        struct err e = {0};
        fs_rm_rf(X, &e);
        err_release(&e);
        free(X);
        X = NULL;
    }
}

TestSuite(export, .fini = fini, .timeout = 180);

#define WITH(...) ((const char *const[]){"PRENV_TEST_KDF_ITERATIONS=1000", __VA_ARGS__, NULL})
#define PASS WITH("PRENV_PASSPHRASE=pw-one")
#define NOPASS WITH("PRENV_NO_PASSPHRASE=1")
#define RUN(env, ...) tl_prenv(&P, (const char *const[]){__VA_ARGS__, NULL}, (env))
#define OK(r)                                                                                      \
    cr_assert_eq((r).code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", (r).code, (r).out, (r).err)

static void ok(struct tl_res r)
{
    OK(r);
    cr_assert_null(strstr(r.out, CANARY), "stdout shows the secret:\n%s", r.out);
    cr_assert_null(strstr(r.err, CANARY), "stderr shows the secret:\n%s", r.err);
    tl_res_free(&r);
}

/* the command failed with code and said what in stderr */
static void refused(struct tl_res r, int code, const char *what)
{
    cr_assert_eq(r.code, code, "exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", r.code, code, r.out,
                 r.err);
    cr_assert(strstr(r.err, what), "stderr lacks '%s':\n%s", what, r.err);
    tl_res_free(&r);
}

static char *up_dev_and_export(void)
{
    tl_proj_new(&P, TPL, "  token: not-a-secret-yet\n", NULL);
    ok(RUN(PASS, "config", "set", "token", CANARY, "--env", "dev", "--secret"));
    ok(RUN(PASS, "env", "up", "dev", "--yes"));
    char *file = xasprintf("%s/dev-export.json", P.dir);
    ok(RUN(NOPASS, "env", "export", "dev", "-o", file));
    return file;
}

static char *web_id(const char *state_dir)
{
    char *sf = xasprintf("%s/state/dev.json", state_dir);
    char *t = tl_read(sf);
    free(sf);
    cr_assert(t);
    char *id = tl_json_str(t, "resources.0.id");
    free(t);
    return id;
}

Test(export, a_record_goes_out_sealed_and_comes_back_with_no_changes)
{
    char *file = up_dev_and_export();
    char *text = tl_read(file);
    cr_assert(text);
    cr_assert_null(strstr(text, CANARY), "the export holds the plaintext:\n%s", text);
    cr_assert(strstr(text, "\"format\": \"prenv-env-export\""), "%s", text);
    cr_assert(strstr(text, "\"version\": 1"), "%s", text);
    cr_assert(strstr(text, "v1:"), "the secret is there, sealed:\n%s", text);
    cr_assert(strstr(text, "\"operation\""), "history is there:\n%s", text);
    struct stat sb;
    cr_assert_eq(stat(file, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    /* stdout gives the same document */
    struct tl_res r = RUN(NOPASS, "env", "export", "dev");
    OK(r);
    cr_assert(strstr(r.out, "\"env\": \"dev\"") && !strstr(r.out, CANARY), "%s", r.out);
    tl_res_free(&r);
    char *id = web_id(P.state);
    cr_assert(id && *id);

    /* it exists: refused; --force with the same resources replaces the record */
    refused(RUN(NOPASS, "env", "import", file), 1, "already exists");
    ok(RUN(NOPASS, "env", "import", file, "--force"));

    /* the state file is lost; the record comes back with the same ids */
    char *sf = xasprintf("%s/state/dev.json", P.state);
    cr_assert_eq(remove(sf), 0);
    r = RUN(NOPASS, "env", "import", file);
    OK(r);
    cr_assert(strstr(r.out, "dev: imported with 1 resource"), "%s", r.out);
    tl_res_free(&r);
    char *id2 = web_id(P.state);
    cr_assert_str_eq(id2, id);
    r = RUN(NOPASS, "env", "plan", "dev");
    OK(r);
    cr_assert(strstr(r.out, "0 to create") && strstr(r.out, "0 to update") &&
                  strstr(r.out, "1 unchanged"),
              "%s", r.out);
    tl_res_free(&r);
    r = RUN(NOPASS, "env", "refresh", "dev", "--expect-no-changes");
    OK(r);
    tl_res_free(&r);
    r = RUN(NOPASS, "env", "show", "dev", "--json");
    OK(r);
    cr_assert(strstr(r.out, "\"import\""), "history records the import:\n%s", r.out);
    tl_res_free(&r);

    /* into a second state directory: the same record and ids */
    X = tl_tmpdir("export-x");
    ok(RUN(NOPASS, "--state-dir", X, "env", "import", file));
    char *id3 = web_id(X);
    cr_assert_str_eq(id3, id);
    r = RUN(NOPASS, "--state-dir", X, "env", "list");
    OK(r);
    cr_assert(strstr(r.out, "dev"), "%s", r.out);
    tl_res_free(&r);
    r = RUN(NOPASS, "--state-dir", X, "env", "plan", "dev");
    OK(r);
    cr_assert(strstr(r.out, "0 to create") && strstr(r.out, "1 unchanged"), "%s", r.out);
    tl_res_free(&r);
    /* no file anywhere holds the plaintext */
    char found[4096] = "";
    cr_assert_eq(tl_files_with(P.dir, CANARY, found, sizeof found) +
                     tl_files_with(X, CANARY, found, sizeof found),
                 0, "a file holds the plaintext secret: %s", found);
    free(id);
    free(id2);
    free(id3);
    free(sf);
    free(text);
    free(file);
}

/* text with every occurrence of from replaced by to; caller frees */
static char *replace(const char *text, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = text; (p = strstr(p, from)); p += fl)
        n++;
    char *out = xmalloc(strlen(text) + n * tl + 1), *o = out;
    for (const char *p = text, *q; *p;) {
        if (!(q = strstr(p, from))) {
            memcpy(o, p, strlen(p));
            o += strlen(p);
            break;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    *o = 0;
    return out;
}

/* an import file in the project; its absolute path (imports read FILE from the cwd) */
static const char *write_variant(const char *name, const char *text)
{
    static char path[4096];
    tl_write(P.dir, name, text);
    snprintf(path, sizeof path, "%s/%s", P.dir, name);
    return path;
}

Test(export, bad_files_names_and_collisions_are_refused_with_what_to_do)
{
    char *file = up_dev_and_export();
    char *text = tl_read(file);
    /* usage */
    refused(RUN(NOPASS, "env", "import"), 2, "usage");
    refused(RUN(NOPASS, "env", "export"), 2, "usage");
    /* missing, not JSON, not an export, a newer version, no state */
    refused(RUN(NOPASS, "env", "import", "no-such-file.json"), 1, "no-such-file.json");
    const char *garbage = write_variant("garbage.json", "{not json");
    refused(RUN(NOPASS, "env", "import", garbage), 1, "is not valid JSON");
    const char *other =
        write_variant("other.json", "{\"format\": \"something-else\", \"version\": 1}");
    refused(RUN(NOPASS, "env", "import", other), 1, "is not a prenv export");
    char *v = replace(text, "\"version\": 1,", "\"version\": 99,");
    const char *newer = write_variant("newer.json", v);
    refused(RUN(NOPASS, "env", "import", newer), 1, "export version 99");
    free(v);
    const char *nostate =
        write_variant("nostate.json", "{\"format\": \"prenv-env-export\", \"version\": 1}");
    refused(RUN(NOPASS, "env", "import", nostate), 1, "no \"state\" object");
    /* another project's record */
    char *proj = tl_json_str(text, "project");
    char *from = xasprintf("\"project\": \"%s\"", proj);
    v = replace(text, from, "\"project\": \"elsewhere\"");
    const char *elsewhere = write_variant("elsewhere.json", v);
    refused(RUN(NOPASS, "env", "import", elsewhere, "--as", "staging"), 1, "project 'elsewhere'");
    free(v);
    free(from);
    free(proj);
    /* names: not an env of this project, another kind */
    struct tl_res r = RUN(NOPASS, "env", "import", file, "--as", "Not_A_Name");
    cr_assert_neq(r.code, 0);
    cr_assert(strstr(r.err, "cannot import as 'Not_A_Name'"), "%s", r.err);
    tl_res_free(&r);
    refused(RUN(NOPASS, "env", "import", file, "--as", "pr-7"), 2, "keeps its kind");
    /* --force never orphans: staging holds its own process */
    ok(RUN(PASS, "env", "up", "staging", "--yes"));
    refused(RUN(NOPASS, "env", "import", file, "--as", "staging", "--force"), 1, "orphan");
    /* a name of the same kind that is free */
    ok(RUN(NOPASS, "env", "destroy", "staging", "--yes"));
    ok(RUN(NOPASS, "env", "import", file, "--as", "staging"));
    r = RUN(NOPASS, "env", "list");
    cr_assert(strstr(r.out, "staging"), "%s", r.out);
    tl_res_free(&r);
    /* two records now name one process: drop the copy without destroying it */
    char *sf = xasprintf("%s/state/staging.json", P.state);
    remove(sf);
    free(sf);
    free(text);
    free(file);
}

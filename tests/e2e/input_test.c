/* End to end: bad input of every kind gives a clear error with a position and
 * changes nothing; the command line's own contract (help, prefixes, exit
 * codes). */
#include "tests/testlib.h"

#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const TPL =
    "resources:\n"
    "  conf:\n"
    "    type: file.render\n"
    "    properties:\n"
    "      path: app.ini\n"
    "      content: \"greeting=${config.greeting}\"\n"
    "  copies:\n"
    "    type: exec.command\n"
    "    properties:\n"
    "      create: [\"true\"]\n"
    "      stdout_max: ${config.size}\n"
    "outputs:\n"
    "  file: ${conf.path}\n";

static struct tl_proj P;

static void fini(void)
{
    tl_proj_free(&P);
}

TestSuite(input, .fini = fini, .timeout = 60);

#define RUN(...) TL_PRENV(&P, __VA_ARGS__)

/* run, expect code, expect every needle in stderr, and no state created */
static void expect_error(int code, const char *const *args, const char *const *needles)
{
    struct tl_res r = tl_prenv(&P, args, NULL);
    cr_assert_eq(r.code, code, "exit %d, wanted %d\nstdout:%s\nstderr:%s", r.code, code, r.out,
                 r.err);
    for (size_t i = 0; needles[i]; i++)
        cr_assert(strstr(r.err, needles[i]), "stderr lacks '%s':\n%s", needles[i], r.err);
    tl_res_free(&r);
    char *sd = xasprintf("%s/state", P.state);
    cr_assert_eq(tl_count_files(sd), 0, "a failed command left state behind");
    free(sd);
    cr_assert_eq(tl_procs_in(P.dir), 0);
}

#define A(...) (const char *const[]){__VA_ARGS__, NULL}

static void proj(void)
{
    tl_proj_new(&P, TPL, "  greeting: hello\n  size: 100\n", NULL);
}

Test(input, malformed_yaml_points_at_line_and_column)
{
    proj();
    tl_write(P.dir, "envs/dev.yaml", "imports: [base]\nvalues:\n  greeting: [unclosed\n");
    expect_error(1, A("env", "up", "dev", "--yes"),
                 A("envs/dev.yaml:3:13: error:", "invalid YAML", "greeting: [unclosed", "^"));
}

Test(input, wrong_type_in_config_points_at_the_config_value)
{
    proj();
    tl_write(P.dir, "envs/dev.yaml", "imports: [base]\nvalues:\n  size: lots\n");
    expect_error(1, A("env", "up", "dev", "--yes"),
                 A("envs/dev.yaml:3:9: error:", "resource 'copies'",
                   "'stdout_max' is a string; expected an integer"));
}

Test(input, unknown_keys_get_a_did_you_mean)
{
    proj();
    tl_write(P.dir, "templates/app.yaml",
             "resources:\n  conf:\n    type: file.render\n    properties:\n"
             "      path: a\n      contnet: x\n");
    expect_error(1, A("env", "up", "dev", "--yes"),
                 A("templates/app.yaml:6:7: error:", "unknown property 'contnet'",
                   "did you mean 'content'?"));
    tl_write(P.dir, "templates/app.yaml", TPL);
    tl_write(P.dir, "envs/dev.yaml", "imports: [base]\nvalus:\n  size: 3\n");
    expect_error(1, A("env", "plan", "dev"),
                 A("envs/dev.yaml:2:1: error:", "unknown key 'valus'", "did you mean 'values'?"));
    tl_write(P.dir, "envs/dev.yaml", "imports: [base]\n");
    tl_write(P.dir, "prenv.yaml", "project: test\ntemplate: templates/app.yaml\nstges: {}\n");
    expect_error(1, A("env", "plan", "dev"),
                 A("prenv.yaml:3:1: error:", "unknown key 'stges'", "did you mean 'stages'?"));
}

Test(input, unknown_config_reference_names_the_key_and_suggests)
{
    proj();
    tl_write(P.dir, "envs/base.yaml", "values:\n  greting: hello\n  size: 1\n");
    expect_error(1, A("env", "up", "dev", "--yes"),
                 A("templates/app.yaml:6:26: error:", "unknown config key 'greeting'",
                   "did you mean 'greting'?", "hint: config comes from envs/dev.yaml"));
}

Test(input, missing_import_suggests_the_nearest_layer)
{
    proj();
    tl_write(P.dir, "envs/dev.yaml", "imports: [bsae]\n");
    expect_error(1, A("env", "up", "dev", "--yes"),
                 A("envs/dev.yaml:1:11: error:", "cannot import 'bsae'",
                   "envs/bsae.yaml does not exist (did you mean 'base'?)"));
}

Test(input, import_cycles_name_every_file)
{
    proj();
    tl_write(P.dir, "envs/dev.yaml", "imports: [a]\n");
    tl_write(P.dir, "envs/a.yaml", "imports: [b]\n");
    tl_write(P.dir, "envs/b.yaml", "imports: [a]\n");
    expect_error(1, A("env", "plan", "dev"),
                 A("envs/b.yaml:1:11: error:",
                   "import cycle: envs/a.yaml -> envs/b.yaml -> envs/a.yaml"));
}

Test(input, resource_cycles_name_every_member)
{
    proj();
    tl_write(P.dir, "templates/app.yaml",
             "resources:\n"
             "  a:\n    type: file.render\n    properties: {path: a, content: \"${c.path}\"}\n"
             "  b:\n    type: file.render\n    properties: {path: b, content: \"${a.path}\"}\n"
             "  c:\n    type: file.render\n    properties: {path: c, content: \"${b.sha256}\"}\n");
    expect_error(1, A("env", "up", "dev", "--yes"),
                 A("templates/app.yaml:2:3: error:",
                   "dependency cycle between resources: a -> c -> b -> a"));
    expect_error(1, A("template", "validate"), A("dependency cycle"));
}

Test(input, unknown_output_and_unknown_type_are_caught_before_anything_runs)
{
    proj();
    tl_write(P.dir, "templates/app.yaml",
             "resources:\n  conf:\n    type: file.render\n    properties: {path: a, content: x}\n"
             "outputs:\n  p: ${conf.pth}\n");
    expect_error(1, A("template", "validate"),
                 A("templates/app.yaml:6:6: error:", "has no output 'pth'", "did you mean 'path'?",
                   "file.render outputs: path, sha256"));
    tl_write(P.dir, "templates/app.yaml", "resources:\n  db:\n    type: sqlite.db\n");
    expect_error(1, A("env", "plan", "dev"),
                 A("unknown resource type 'sqlite.db'", "did you mean 'sqlite.database'?"));
}

Test(input, commands_are_argv_lists_never_shell_strings)
{
    proj();
    tl_write(P.dir, "templates/app.yaml",
             "resources:\n  m:\n    type: exec.command\n    properties:\n"
             "      create: \"python3 migrate.py\"\n");
    expect_error(1, A("env", "up", "dev", "--yes"),
                 A("templates/app.yaml:5:15: error:", "must be a list of arguments",
                   "never run through a shell"));
}

Test(input, a_name_that_is_not_an_environment_is_refused)
{
    proj();
    expect_error(1, A("env", "up", "dve", "--yes"),
                 A("'dve' is not an environment of project 'test' (did you mean 'dev'?)",
                   "previews named pr-{number}"));
    expect_error(2, A("env", "up", "Bad_Name", "--yes"), A("not a valid environment name"));
    expect_error(1, A("env", "show", "staging"), A("environment 'staging' does not exist"));
    expect_error(1, A("env", "up", "pr-007", "--yes"), A("not an environment"));
}

Test(input, unknown_commands_and_options_are_usage_errors_with_suggestions)
{
    proj();
    expect_error(2, A("frobnicate"), A("unknown command 'frobnicate'"));
    expect_error(2, A("env", "upp", "dev"), A("unknown command 'env upp' (did you mean 'env up'?)"));
    expect_error(2, A("env", "l"), A("'env l' is ambiguous: env list, env logs"));
    expect_error(2, A("env", "up", "dev", "--paralel", "3"),
                 A("unknown option '--paralel' (did you mean '--parallel'?)"));
    expect_error(2, A("env", "up"), A("needs ENV", "usage: prenv env up"));
    expect_error(2, A("env", "up", "dev", "--ttl", "5"), A("missing unit"));
    expect_error(2, A("env", "up", "dev", "extra", "--yes"), A("unexpected argument 'extra'"));
    expect_error(2, A("env"), A("needs a subcommand"));
}

Test(input, up_without_yes_on_a_pipe_refuses_and_changes_nothing)
{
    proj();
    expect_error(2, A("env", "up", "dev"), A("refusing to change 'dev' without confirmation",
                                             "pass --yes"));
}

Test(input, a_missing_project_says_how_to_make_one)
{
    char *d = tl_tmpdir("empty");
    struct tl_res r = tl_prenv(NULL, A("-C", d, "env", "list"), NULL);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "no prenv.yaml"), "%s", r.err);
    cr_assert(strstr(r.err, "prenv init"), "%s", r.err);
    tl_res_free(&r);
    rmdir(d);
    free(d);
}

Test(input, corrupt_state_is_reported_not_overwritten)
{
    proj();
    tl_write(P.state, "state/dev.json", "{not json");
    struct tl_res r = RUN("env", "up", "dev", "--yes");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "is not valid JSON"), "%s", r.err);
    tl_res_free(&r);
    char *p = xasprintf("%s/state/dev.json", P.state);
    char *t = tl_read(p);
    cr_assert_str_eq(t, "{not json");
    free(t);
    free(p);
    r = RUN("env", "list");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "state of 'dev' cannot be read"), "%s", r.err);
    tl_res_free(&r);
}

Test(input, every_command_has_help_generated_from_its_table)
{
    proj();
    const char *cmds[][2] = {{"init", NULL},          {"env", "up"},       {"env", "plan"},
                             {"env", "list"},         {"env", "show"},     {"env", "destroy"},
                             {"env", "logs"},         {"env", "refresh"},  {"env", "unlock"},
                             {"sandbox", "up"},       {"template", "validate"},
                             {"template", "render"},  {"config", "get"},   {"config", "list"},
                             {"config", "diff"},      {"version", NULL}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        struct tl_res r = cmds[i][1] ? RUN(cmds[i][0], cmds[i][1], "--help")
                                     : RUN(cmds[i][0], "--help");
        cr_assert_eq(r.code, 0, "%s %s --help: %s", cmds[i][0], cmds[i][1] ? cmds[i][1] : "",
                     r.err);
        cr_assert(strstr(r.out, "usage: prenv "), "%s", r.out);
        tl_res_free(&r);
    }
    struct tl_res r = RUN("help", "env", "up");
    cr_assert(strstr(r.out, "--parallel N"), "%s", r.out);
    tl_res_free(&r);
    r = RUN("version");
    cr_assert(!strncmp(r.out, "prenv ", 6), "%s", r.out);
    tl_res_free(&r);
}

Test(input, unique_prefixes_work_for_commands_and_options)
{
    proj();
    struct tl_res r = RUN("e", "pl", "dev", "--js");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_eq(tl_json_int(r.out, "changes.create"), 2, "%s", r.out);
    tl_res_free(&r);
}

static void same_as_generated(const char *what, const char *file)
{
    struct tl_res r = tl_prenv(NULL, A("gendocs", what), NULL);
    cr_assert_eq(r.code, 0, "%s", r.err);
    char *path = xasprintf("%s/docs/%s", PRENV_SRC, file);
    char *doc = tl_read(path);
    cr_assert_not_null(doc, "%s is missing", path);
    cr_assert_str_eq(doc, r.out,
                     "docs/%s is out of date: run `build/prenv gendocs %s > docs/%s`", file, what,
                     file);
    free(doc);
    free(path);
    tl_res_free(&r);
}

Test(input, the_command_and_provider_docs_match_the_tables)
{
    same_as_generated("commands", "commands.md");
    same_as_generated("providers", "providers.md");
}

/* contrib/FILE is what `prenv ARGV...` prints now */
static void contrib_is(const char *const *argv, const char *file)
{
    struct tl_res r = tl_prenv(NULL, argv, NULL);
    cr_assert_eq(r.code, 0, "%s", r.err);
    char *path = xasprintf("%s/contrib/%s", PRENV_SRC, file);
    char *doc = tl_read(path);
    cr_assert_not_null(doc, "%s is missing", path);
    cr_assert_str_eq(doc, r.out, "contrib/%s is out of date: run `build/prenv %s %s > contrib/%s`",
                     file, argv[0], argv[1], file);
    free(doc);
    free(path);
    tl_res_free(&r);
}

Test(input, the_completion_scripts_and_the_man_page_match_the_table)
{
    contrib_is(A("completion", "bash"), "completion/prenv.bash");
    contrib_is(A("completion", "zsh"), "completion/_prenv");
    contrib_is(A("help", "--man"), "man/prenv.1");
    /* and they know a command and its options */
    struct tl_res r = tl_prenv(NULL, A("completion", "bash"), NULL);
    cr_assert(strstr(r.out, "'env up') words='--help --set"), "%s", r.out);
    cr_assert(strstr(r.out, "complete -F _prenv prenv"), "%s", r.out);
    tl_res_free(&r);
    r = tl_prenv(NULL, A("completion", "fish"), NULL);
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "bash and zsh, not 'fish'"), "%s", r.err);
    tl_res_free(&r);
    r = tl_prenv(NULL, A("help", "--man"), NULL);
    cr_assert(strstr(r.out, ".SS \"env up ENV\""), "%s", r.out);
    tl_res_free(&r);
}

/* Unit tests for envs/envpolicy and the prenv.yaml keys behind it: log
 * levels by kind, flag variables, what a service's properties get, and
 * errors in logs:, pii:, log_level and flags. */
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/yt.h"
#include "envs/envpolicy.h"
#include "envs/project.h"
#include "tests/testlib.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static struct project *proj;

static void setup(void)
{
    dir = tl_tmpdir("pol");
    proj = NULL;
}

static void teardown(void)
{
    project_free(proj);
    struct err e = {0};
    fs_rm_rf(dir, &e);
    free(dir);
    src_free_all();
}

TestSuite(envpolicy, .init = setup, .fini = teardown);

static int load(const char *yaml, struct err *e)
{
    project_free(proj);
    proj = NULL;
    tl_write(dir, "prenv.yaml", yaml);
    return project_load(&proj, dir, NULL, e);
}

static struct val *parse(const char *text)
{
    const struct src *s = src_add("c.yaml", text, strlen(text));
    struct val *v = NULL;
    struct err e = {0};
    cr_assert_eq(yt_parse(&v, s, &e), 0, "%s", e.msg);
    return v;
}

Test(envpolicy, log_level_is_info_for_stages_and_debug_elsewhere_unless_config_says)
{
    cr_expect_str_eq(env_log_level(ENV_STAGE, NULL), "info");
    cr_expect_str_eq(env_log_level(ENV_PREVIEW, NULL), "debug");
    cr_expect_str_eq(env_log_level(ENV_SANDBOX, NULL), "debug");
    struct val *c = parse("log_level: warn\n");
    cr_expect_str_eq(env_log_level(ENV_PREVIEW, c), "warn");
    val_free(c);
}

Test(envpolicy, flag_names_become_uppercase_variables_and_bools_become_1_and_0)
{
    char *v = env_flag_var("new-checkout.v2");
    cr_expect_str_eq(v, "FLAG_NEW_CHECKOUT_V2");
    free(v);
    struct val *c = parse("a: true\nb: false\nc: 3\nd: blue\n");
    const char *want[] = {"1", "0", "3", "blue"};
    for (size_t i = 0; i < 4; i++) {
        struct sb b;
        sb_init(&b);
        env_flag_text(&b, c->u.map.e[i].v);
        cr_expect_str_eq(b.buf, want[i]);
        sb_release(&b);
    }
    val_free(c);
}

Test(envpolicy, apply_sets_variables_over_the_template_and_retain_and_redact)
{
    struct val *props = parse("command: [app]\nenv: {A: x, FLAG_ON: template}\nlog_keep: 5\n");
    struct val *cfg = parse("flags: {'on': true, 'off': false}\n");
    struct env_def d = {.kind = ENV_STAGE, .retain_set = true, .retain = 2, .pii_redact = true};
    env_policy_apply(props, &d, cfg);
    const struct val *env = val_map_get(props, "env");
    cr_expect_str_eq(val_map_str(env, "A", "?"), "x");
    cr_expect_str_eq(val_map_str(env, "PRENV_LOG_LEVEL", "?"), "info");
    cr_expect_str_eq(val_map_str(env, "FLAG_ON", "?"), "1", "prenv's value wins");
    cr_expect_str_eq(val_map_str(env, "FLAG_OFF", "?"), "0");
    cr_expect_eq(val_map_int(props, "log_keep", -1), 2);
    cr_expect(val_map_bool(props, "log_redact", false));
    val_free(props);

    /* no env map, no policy: only the level */
    props = parse("command: [app]\n");
    struct env_def p = {.kind = ENV_PREVIEW};
    env_policy_apply(props, &p, NULL);
    cr_expect_str_eq(val_map_str(val_map_get(props, "env"), "PRENV_LOG_LEVEL", "?"), "debug");
    cr_expect_null(val_map_get(props, "log_keep"));
    cr_expect_null(val_map_get(props, "log_redact"));
    val_free(props);
    val_free(cfg);
}

Test(envpolicy, bad_log_level_and_flags_are_errors_at_the_value)
{
    struct err e = {0};
    struct val *c = parse("x: 1\nlog_level: loud\n");
    cr_expect_neq(env_policy_check(c, &e), 0);
    cr_expect(strstr(e.msg, "log_level must be one of"), "%s", e.msg);
    cr_expect_eq(e.pos.line, 2);
    err_release(&e);
    val_free(c);
    c = parse("flags:\n  ok: true\n  bad: [1, 2]\n");
    cr_expect_neq(env_policy_check(c, &e), 0);
    cr_expect(strstr(e.msg, "flag 'bad' must be true, false, a number or a string"), "%s", e.msg);
    cr_expect_eq(e.pos.line, 3);
    err_release(&e);
    val_free(c);
    c = parse("flags: on\n");
    cr_expect_neq(env_policy_check(c, &e), 0);
    cr_expect(strstr(e.msg, "flags must be a map"), "%s", e.msg);
    err_release(&e);
    val_free(c);
    c = parse("log_level: warning\nflags: {a: 1.5, b: x}\n");
    cr_expect_eq(env_policy_check(c, &e), 0, "%s", e.msg);
    val_free(c);
}

Test(envpolicy, prenv_yaml_logs_retain_and_pii_reach_the_env_definition)
{
    struct err e = {0};
    cr_assert_eq(load("project: shop\ntemplate: t.yaml\n"
                      "stages:\n  dev: {}\n  prod: {pii: redact, logs: {retain: 7}}\n"
                      "previews: {logs: {retain: 0}}\n",
                      &e),
                 0, "%s", e.msg);
    struct env_def d;
    cr_assert_eq(project_env(&d, proj, "prod", &e), 0, "%s", e.msg);
    cr_expect(d.pii_redact && d.retain_set && d.retain == 7);
    env_def_release(&d);
    cr_assert_eq(project_env(&d, proj, "dev", &e), 0, "%s", e.msg);
    cr_expect(!d.pii_redact && !d.retain_set);
    env_def_release(&d);
    cr_assert_eq(project_env(&d, proj, "pr-4", &e), 0, "%s", e.msg);
    cr_expect(!d.pii_redact && d.retain_set && d.retain == 0);
    env_def_release(&d);
    cr_assert_eq(project_env(&d, proj, "sb-al", &e), 0, "%s", e.msg);
    cr_expect(!d.retain_set);
    env_def_release(&d);
}

Test(envpolicy, prenv_yaml_errors_in_logs_and_pii_point_at_the_value)
{
    struct err e = {0};
    cr_expect_neq(load("project: shop\ntemplate: t.yaml\nstages:\n  prod: {pii: mask}\n", &e), 0);
    cr_expect(strstr(e.msg, "pii 'mask' is not one of: redact, keep"), "%s", e.msg);
    cr_expect_eq(e.pos.line, 4);
    err_release(&e);
    cr_expect_neq(
        load("project: shop\ntemplate: t.yaml\nstages:\n  prod: {logs: {retian: 3}}\n", &e), 0);
    cr_expect(strstr(e.msg, "retian"), "%s", e.msg);
    err_release(&e);
    cr_expect_neq(load("project: shop\ntemplate: t.yaml\npreviews: {logs: {retain: 500}}\n", &e),
                  0);
    cr_expect(strstr(e.msg, "retain"), "%s", e.msg);
    cr_expect_eq(e.pos.line, 3);
    err_release(&e);
}

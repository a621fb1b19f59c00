/* Unit tests for envs/: prenv.yaml validation, environment naming, layered
 * config and its merge order. */
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "envs/envcfg.h"
#include "envs/project.h"
#include "tests/testlib.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static struct project *proj;

static void setup(void)
{
    dir = tl_tmpdir("cfg");
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

TestSuite(config, .init = setup, .fini = teardown);

static int load(const char *yaml, struct err *e)
{
    tl_write(dir, "prenv.yaml", yaml);
    return project_load(&proj, dir, NULL, e);
}

Test(config, a_minimal_project_gets_defaults)
{
    struct err e = {0};
    cr_assert_eq(load("project: shop\ntemplate: t.yaml\n", &e), 0, "%s", e.msg);
    cr_assert_eq(proj->port_lo, 20000);
    cr_assert_str_eq(proj->previews.pattern, "pr-{number}");
    cr_assert_str_eq(proj->sandboxes.pattern, "sb-{name}");
    cr_assert(strstr(proj->state_dir, "/.prenv"));
}

Test(config, project_errors_point_at_the_value)
{
    struct err e = {0};
    cr_assert_neq(load("project: shop\ntemplate: t.yaml\nports: 9000-80\n", &e), 0);
    cr_assert_eq(e.pos.line, 3);
    cr_assert(strstr(e.msg, "'ports' must be a range"), "%s", e.msg);
    err_release(&e);
    cr_assert_neq(load("project: shop\ntemplate: ../outside.yaml\n", &e), 0);
    cr_assert(strstr(e.msg, "points outside the project"), "%s", e.msg);
    err_release(&e);
    cr_assert_neq(load("project: Shop\ntemplate: t.yaml\n", &e), 0);
    cr_assert_eq(e.pos.line, 1);
    err_release(&e);
    cr_assert_neq(load("project: shop\ntemplate: t.yaml\nstages:\n  prod: {protect: yes}\n", &e),
                  0);
    cr_assert(strstr(e.msg, "'protect' is a string; expected a bool"), "%s", e.msg);
    cr_assert(e.hint && strstr(e.hint, "true or false"));
    err_release(&e);
    cr_assert_neq(load("project: shop\ntemplate: t.yaml\npreviews: {name: 'pr-{id}'}\n", &e), 0);
    cr_assert(strstr(e.msg, "{number} exactly once"), "%s", e.msg);
    err_release(&e);
    cr_assert_neq(load("project: shop\ntemplate: t.yaml\nsandboxes: {ttl: 8}\n", &e), 0);
    cr_assert(strstr(e.msg, "must be a duration"), "%s", e.msg);
    err_release(&e);
}

Test(config, env_names_classify_by_stage_and_pattern)
{
    struct err e = {0};
    cr_assert_eq(load("project: shop\ntemplate: t.yaml\nstages: {dev: ~, prod: {protect: true}}\n"
                      "previews: {ttl: 3d}\n",
                      &e),
                 0, "%s", e.msg);
    struct env_def d;
    cr_assert_eq(project_env(&d, proj, "prod", &e), 0);
    cr_assert_eq(d.kind, ENV_STAGE);
    cr_assert(d.protect);
    cr_assert_str_eq(d.config, "envs/prod.yaml");
    env_def_release(&d);
    cr_assert_eq(project_env(&d, proj, "pr-42", &e), 0);
    cr_assert_eq(d.kind, ENV_PREVIEW);
    cr_assert_eq(d.number, 42);
    cr_assert_eq(d.ttl_ms, 3 * 86400000LL);
    env_def_release(&d);
    cr_assert_eq(project_env(&d, proj, "sb-alice", &e), 0);
    cr_assert_eq(d.kind, ENV_SANDBOX);
    env_def_release(&d);
    cr_assert_eq(project_env(&d, proj, "pr-0", &e), PE_NOTFOUND);
    err_release(&e);
    cr_assert_eq(project_env(&d, proj, "staging", &e), PE_NOTFOUND);
    err_release(&e);
    cr_assert_eq(project_env(&d, proj, "x;rm -rf /", &e), PE_USAGE);
    err_release(&e);
    char *n = project_sandbox_name(proj, "Alice.Smith@Corp");
    cr_assert_str_eq(n, "sb-alice-smith-corp");
    free(n);
}

Test(config, layers_merge_imports_first_in_order_maps_deeply_lists_replace)
{
    struct err e = {0};
    cr_assert_eq(load("project: shop\ntemplate: t.yaml\n", &e), 0);
    tl_write(dir, "envs/base.yaml",
             "values:\n  db: {size: small, pool: 5}\n  list: [1, 2]\n  name: base\n");
    tl_write(dir, "envs/big.yaml", "values:\n  db: {size: big}\n  name: big\n");
    tl_write(dir, "envs/dev.yaml",
             "imports: [base, big]\nvalues:\n  db: {pool: 9}\n  list: [3]\n");
    struct val *sets = val_map(NULL);
    val_map_set(sets, "name", NULL, val_str("cli", NULL));
    struct envcfg *c = NULL;
    cr_assert_eq(envcfg_load(&c, proj, "envs/dev.yaml", sets, &e), 0, "%s", e.msg);
    struct sb b;
    sb_init(&b);
    val_canon(&b, c->values);
    cr_assert_str_eq(b.buf, "{\"db\":{\"pool\":9,\"size\":\"big\"},\"list\":[3],\"name\":\"cli\"}");
    sb_release(&b);
    cr_assert_eq(c->nlayers, 4);
    cr_assert_str_eq(c->layers[0].name, "envs/base.yaml");
    cr_assert_str_eq(c->layers[1].name, "envs/big.yaml");
    cr_assert_str_eq(c->layers[2].name, "envs/dev.yaml");
    cr_assert_str_eq(c->layers[3].name, "--set");
    cr_assert_str_eq(val_map_str(c->origin, "db.size", ""), "envs/big.yaml:2");
    cr_assert_str_eq(val_map_str(c->origin, "db.pool", ""), "envs/dev.yaml:3");
    cr_assert_str_eq(val_map_str(c->origin, "name", ""), "--set");
    envcfg_free(c);
    val_free(sets);
}

Test(config, layer_errors_say_where_and_what_to_do)
{
    struct err e = {0};
    cr_assert_eq(load("project: shop\ntemplate: t.yaml\n", &e), 0);
    struct envcfg *c = NULL;
    tl_write(dir, "envs/dev.yaml", "imports: base\n");
    cr_assert_neq(envcfg_load(&c, proj, "envs/dev.yaml", NULL, &e), 0);
    cr_assert(strstr(e.msg, "'imports' must be a list, e.g. imports: [base]"), "%s", e.msg);
    err_release(&e);
    tl_write(dir, "envs/dev.yaml", "replicas: 3\n");
    cr_assert_neq(envcfg_load(&c, proj, "envs/dev.yaml", NULL, &e), 0);
    cr_assert(e.hint && strstr(e.hint, "under 'values:'"), "%s", e.hint);
    err_release(&e);
    cr_assert_neq(envcfg_load(&c, proj, "envs/none.yaml", NULL, &e), 0);
    cr_assert(strstr(e.msg, "config file envs/none.yaml does not exist"), "%s", e.msg);
    err_release(&e);
    struct val *m = val_map(NULL);
    cr_assert_neq(envcfg_set_path(m, "a..b", val_int(1, NULL), &e), 0);
    err_release(&e);
    cr_assert_eq(envcfg_set_path(m, "a.b.c", val_int(1, NULL), &e), 0);
    cr_assert_eq(val_get(m, "a.b.c")->u.i, 1);
    val_free(m);
}

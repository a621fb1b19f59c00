/* Unit tests for templates/expr: interpolation, types, escapes, positions. */
#include "core/lib/sb.h"
#include "core/lib/val.h"
#include "core/lib/yt.h"
#include "templates/expr.h"

#include <criterion/criterion.h>
#include <string.h>

static struct val *root;

static int lookup(void *ctx, const struct expr_ref *ref, struct val **out, struct err *e)
{
    (void)ctx;
    return expr_walk(out, root, ref, 0, "test", e);
}

static struct val *yaml(const char *text)
{
    struct err e = {0};
    struct val *v = NULL;
    cr_assert_eq(yt_parse(&v, src_add("t.yaml", text, strlen(text)), &e), 0, "%s", e.msg);
    return v;
}

static void setup(void)
{
    root = yaml("config:\n  replicas: 3\n  name: shop\n  tags: {a: b}\n  list: [x, y]\n"
                "  pw: {secure: 'v1:x:y'}\n  plain_pw: s3cret\n"
                "db:\n  url: sqlite:///tmp/x\n");
    /* a decrypted secret for propagation tests */
    val_map_get(val_map_get(root, "config"), "plain_pw")->secret = 1;
}

static void teardown(void)
{
    val_free(root);
    src_free_all();
}

TestSuite(expr, .init = setup, .fini = teardown);

static struct val *eval(const char *text, struct err *e)
{
    struct val *in = yaml(text), *out = NULL;
    expr_eval(&out, in, lookup, NULL, e);
    val_free(in);
    return out;
}

Test(expr, a_whole_string_reference_keeps_the_type)
{
    struct err e = {0};
    struct val *v = eval("a: ${config.replicas}\nb: ${config.tags}\nc: '${config.list[1]}'\n", &e);
    cr_assert_eq(e.code, 0, "%s", e.msg);
    cr_assert_eq(val_map_get(v, "a")->kind, VAL_INT);
    cr_assert_eq(val_map_get(v, "a")->u.i, 3);
    cr_assert_eq(val_map_get(v, "b")->kind, VAL_MAP);
    cr_assert_str_eq(val_map_get(v, "c")->u.str.s, "y");
    val_free(v);
}

Test(expr, references_inside_text_become_text)
{
    struct err e = {0};
    struct val *v = eval("a: \"${config.name}-${config.replicas}.example\"\n"
                         "b: \"x ${ config.tags } y\"\n",
                         &e);
    cr_assert_str_eq(val_map_get(v, "a")->u.str.s, "shop-3.example");
    cr_assert_str_eq(val_map_get(v, "b")->u.str.s, "x {\"a\":\"b\"} y");
    val_free(v);
}

Test(expr, double_dollar_is_a_literal)
{
    struct err e = {0};
    struct val *v = eval("a: \"$${config.name} costs $5 and ${config.name}\"\n", &e);
    cr_assert_str_eq(val_map_get(v, "a")->u.str.s, "${config.name} costs $5 and shop");
    val_free(v);
}

Test(expr, bracket_keys_reach_keys_with_dots)
{
    struct err e = {0};
    struct val *v = eval("a: '${config[\"tags\"].a}'\n", &e);
    cr_assert_eq(e.code, 0, "%s", e.msg);
    cr_assert_str_eq(val_map_get(v, "a")->u.str.s, "b");
    val_free(v);
}

Test(expr, secrets_propagate_into_what_is_built_from_them)
{
    struct err e = {0};
    struct val *v = eval("a: \"postgres://u:${config.plain_pw}@h/db\"\nb: ${config.plain_pw}\n"
                         "c: ${config.name}\n",
                         &e);
    cr_assert(val_map_get(v, "a")->secret);
    cr_assert(val_map_get(v, "b")->secret);
    cr_assert(!val_map_get(v, "c")->secret);
    struct sb b;
    sb_init(&b);
    val_json(&b, v, VAL_JSON_MASK);
    cr_assert_null(strstr(b.buf, "s3cret"), "%s", b.buf);
    sb_release(&b);
    val_free(v);
}

Test(expr, an_unknown_key_is_an_error_with_position_and_suggestion)
{
    struct err e = {0};
    struct val *v = eval("x: 1\nprops:\n  a: \"pre ${config.replcas}\"\n", &e);
    cr_assert_null(v);
    cr_assert_eq(e.pos.line, 3);
    cr_assert_eq(e.pos.col, 11, "column of '${' inside the quoted scalar, got %d", e.pos.col);
    cr_assert(strstr(e.msg, "unknown test key 'replcas'"), "%s", e.msg);
    cr_assert(strstr(e.msg, "did you mean 'replicas'?"), "%s", e.msg);
    err_release(&e);
}

Test(expr, syntax_errors_are_reported_not_guessed)
{
    const char *bad[] = {"a: \"${config.name\"\n", "a: \"${}\"\n", "a: \"${config..x}\"\n",
                         "a: \"${config.list[x]}\"\n", "a: \"${9lives}\"\n"};
    const char *want[] = {"unterminated", "empty reference", "expected a name",
                          "list index", "expected a name"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct err e = {0};
        struct val *v = eval(bad[i], &e);
        cr_assert_null(v, "%s", bad[i]);
        cr_assert(e.msg && strstr(e.msg, want[i]), "%s: %s", bad[i], e.msg);
        cr_assert_eq(e.pos.line, 1);
        err_release(&e);
    }
}

Test(expr, out_of_range_index_and_walking_into_scalars_fail_clearly)
{
    struct err e = {0};
    cr_assert_null(eval("a: ${config.list[5]}\n", &e));
    cr_assert(strstr(e.msg, "index 5 is out of range (the list has 2 items)"), "%s", e.msg);
    err_release(&e);
    cr_assert_null(eval("a: ${config.name.first}\n", &e));
    cr_assert(strstr(e.msg, "cannot take '.first' of a string"), "%s", e.msg);
    err_release(&e);
}

static int count_refs(void *ctx, const struct expr_ref *ref, struct err *e)
{
    (void)ref;
    (void)e;
    (*(int *)ctx)++;
    return 0;
}

Test(expr, visit_finds_every_reference_but_not_escaped_ones)
{
    struct val *v = yaml("a: [\"${x.y}\", {b: \"${p.q} $${not.me}\"}]\nc: plain\n");
    int n = 0;
    struct err e = {0};
    cr_assert_eq(expr_visit(v, count_refs, &n, &e), 0);
    cr_assert_eq(n, 2);
    val_free(v);
}

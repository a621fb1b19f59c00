/* Unit tests for templates/expr: interpolation, types, escapes, positions,
 * defaults (`${A ?? B}`), and how templates/tpl answers a root with no value. */
#include "core/lib/sb.h"
#include "core/lib/val.h"
#include "core/lib/yt.h"
#include "templates/expr.h"
#include "templates/tpl.h"

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
    struct val *v = eval("a: '${config[\"tags\"].a}'\nb: '${config.nope ?? config[\"x?}\"]}'\n"
                         "x?}: y\n", &e);
    cr_assert_neq(e.code, 0, "config has no 'x?}'");
    cr_assert(strstr(e.msg, "unknown test key 'x?}'"), "%s", e.msg);
    err_release(&e);
    v = eval("a: '${config[\"tags\"].a}'\n", &e);
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

/* ---- defaults: ${A ?? B} ---- */

static const char *str_of(const struct val *v, const char *key)
{
    const struct val *x = val_map_get(v, key);
    cr_assert_not_null(x, "no %s", key);
    cr_assert_eq(x->kind, VAL_STR, "%s is a %s", key, val_kind_name(x->kind));
    return x->u.str.s;
}

Test(expr, a_default_is_used_only_when_the_reference_does_not_exist)
{
    struct err e = {0};
    struct val *v = eval("a: ${config.nope ?? config.name}\n"
                         "b: ${config.name ?? config.nope}\n"
                         "c: ${config.nope ?? config.replicas}\n"
                         "d: \"v-${config.nope ?? 'dev'}-${config.replicas ?? '1'}\"\n"
                         "e: '${config.nope ?? \"dev\"}'\n"
                         "f: ${config.list[5] ?? config.list[0]}\n"
                         "g: ${config.a ?? config.b ?? config.tags.a ?? 'z'}\n"
                         "h: ${config.a ?? config.b ?? 'z'}\n"
                         "i: ${ config.nope??config.name }\n",
                         &e);
    cr_assert_eq(e.code, 0, "%s", e.msg);
    cr_assert_str_eq(str_of(v, "a"), "shop");
    cr_assert_str_eq(str_of(v, "b"), "shop");
    cr_assert_eq(val_map_get(v, "c")->kind, VAL_INT, "the chosen value keeps its type");
    cr_assert_eq(val_map_get(v, "c")->u.i, 3);
    cr_assert_str_eq(str_of(v, "d"), "v-dev-3");
    cr_assert_str_eq(str_of(v, "e"), "dev");
    cr_assert_str_eq(str_of(v, "f"), "x");
    cr_assert_str_eq(str_of(v, "g"), "b");
    cr_assert_str_eq(str_of(v, "h"), "z");
    cr_assert_str_eq(str_of(v, "i"), "shop");
    val_free(v);
}

Test(expr, strings_in_a_default_may_hold_braces_quotes_and_question_marks)
{
    struct err e = {0};
    struct val *v = eval("a: \"<${config.nope ?? 'a}b ?\? c'}>\"\n"
                         "b: \"${config.nope ?? 'it\\\\'s'}\"\n"
                         "c: '${config.nope ?? \"back\\\\slash \\\"q\\\"\"}'\n"
                         "d: ${config.nope ?? ''}\n",
                         &e);
    cr_assert_eq(e.code, 0, "%s", e.msg);
    cr_assert_str_eq(str_of(v, "a"), "<a}b ?? c>");
    cr_assert_str_eq(str_of(v, "b"), "it's");
    cr_assert_str_eq(str_of(v, "c"), "back\\slash \"q\"");
    cr_assert_str_eq(str_of(v, "d"), "");
    val_free(v);
}

Test(expr, a_default_does_not_hide_other_errors)
{
    /* walking into a scalar, into a sealed secret: errors, not "missing" */
    const char *bad[] = {"a: ${config.name.first ?? 'x'}\n", "a: ${config.pw.x ?? 'x'}\n",
                         "a: ${config.list.x ?? 'x'}\n"};
    const char *want[] = {"cannot take '.first' of a string", "encrypted secret",
                          "cannot take '.x' of a list"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct err e = {0};
        struct val *v = eval(bad[i], &e);
        cr_assert_null(v, "%s", bad[i]);
        cr_assert_eq(e.code, PE_CONFIG, "%s: %d", bad[i], e.code);
        cr_assert(e.msg && strstr(e.msg, want[i]), "%s: %s", bad[i], e.msg);
        err_release(&e);
    }
}

Test(expr, when_every_operand_is_missing_the_last_one_is_reported_where_it_is)
{
    struct err e = {0};
    struct val *v = eval("x: 1\nprops:\n  a: \"pre ${config.nope ?? config.replcas}\"\n", &e);
    cr_assert_null(v);
    cr_assert_eq(e.code, PE_CONFIG, "a missing value is an ordinary config error: %d", e.code);
    cr_assert(strstr(e.msg, "unknown test key 'replcas'"), "%s", e.msg);
    cr_assert(strstr(e.msg, "did you mean 'replicas'?"), "%s", e.msg);
    cr_assert_eq(e.pos.line, 3);
    cr_assert_eq(e.pos.col, 28, "column of 'config.replcas', got %d", e.pos.col);
    cr_assert_null(e.hint);
    err_release(&e);
    /* a single reference keeps the position of its ${ */
    v = eval("a: \"pre ${config.nope}\"\n", &e);
    cr_assert_null(v);
    cr_assert_eq(e.code, PE_CONFIG);
    cr_assert_eq(e.pos.col, 9, "got %d", e.pos.col);
    err_release(&e);
}

Test(expr, malformed_defaults_are_syntax_errors_with_positions)
{
    const char *bad[] = {
        "a: \"${'x'}\"\n",
        "a: \"${config.a ?? }\"\n",
        "a: \"${?? config.a}\"\n",
        "a: \"${config.a ?? 'x' ?? config.b}\"\n",
        "a: \"${config.a ?? 'x}\"\n",
        "a: \"${config.a ?? 'x' y}\"\n",
        "a: '${config.a ?? \"\\n\"}'\n",
        "a: \"${config.a ? 'x'}\"\n",
    };
    const char *want[] = {
        "must start with a reference",
        "expected a reference or a quoted string after '?\?'",
        "expected a reference before '?\?'",
        "what follows is never used",
        "unterminated",
        "unexpected text after the string",
        "unknown escape '\\n'",
        "a default is written A ?\? B",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct err e = {0};
        struct val *v = eval(bad[i], &e);
        cr_assert_null(v, "%s", bad[i]);
        cr_assert_eq(e.code, PE_CONFIG, "%s", bad[i]);
        cr_assert(e.msg && strstr(e.msg, want[i]), "%s: %s", bad[i], e.msg);
        cr_assert_eq(e.pos.line, 1, "%s", bad[i]);
        cr_assert(e.pos.col >= 5, "%s: col %d", bad[i], e.pos.col);
        err_release(&e);
    }
}

Test(expr, visit_sees_every_reference_of_a_chain_but_not_its_strings)
{
    struct val *v = yaml("a: \"${x.y ?? p.q ?? 'r.s'}\"\nb: ${t.u ?? \"v\"}\n");
    int n = 0;
    struct err e = {0};
    cr_assert_eq(expr_visit(v, count_refs, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 3);
    val_free(v);
}

/* a lookup whose `nested` root is itself an expression with a missing key:
 * that is an error of A, so B must not be used */
static int nested_lookup(void *ctx, const struct expr_ref *ref, struct val **out, struct err *e)
{
    if (strcmp(ref->segs[0].key, "nested"))
        return lookup(ctx, ref, out, e);
    struct val *in = yaml("${config.nope}\n");
    int rc = expr_eval(out, in, lookup, ctx, e);
    val_free(in);
    return rc;
}

Test(expr, a_missing_value_inside_what_a_refers_to_is_an_error_not_a_default)
{
    struct val *in = yaml("a: ${nested ?? 'default'}\n"), *out = NULL;
    struct err e = {0};
    cr_assert_neq(expr_eval(&out, in, nested_lookup, NULL, &e), 0);
    cr_assert_null(out);
    cr_assert_eq(e.code, PE_CONFIG);
    cr_assert(strstr(e.msg, "unknown test key 'nope'"), "%s", e.msg);
    err_release(&e);
    val_free(in);
}

Test(expr, a_root_without_a_value_is_null_alone_and_missing_before_a_default)
{
    struct val *config = yaml("a: ${artifact.path ?? project.dir}\n"
                              "b: ${artifact.path}\n"
                              "c: \"${artifact.version ?? 'dev'}\"\n"
                              "d: ${pr.number ?? artifact.digest ?? 'none'}\n"
                              "e: ${env.name ?? 'x'}\n");
    struct val *project = yaml("name: shop\ndir: /src/shop\n");
    struct val *env = yaml("name: dev\n");
    struct tpl_ctx ctx = {.env = env, .project = project, .config = config};
    struct val *out = NULL;
    struct err e = {0};
    cr_assert_eq(tpl_render_config(&out, &ctx, &e), 0, "%s", e.msg);
    cr_assert_str_eq(str_of(out, "a"), "/src/shop");
    cr_assert_eq(val_map_get(out, "b")->kind, VAL_NULL, "unchanged without ??");
    cr_assert_str_eq(str_of(out, "c"), "dev");
    cr_assert_str_eq(str_of(out, "d"), "none");
    cr_assert_str_eq(str_of(out, "e"), "dev");
    val_free(out);
    /* with an artifact pinned, its fields win; a field it lacks is missing */
    struct val *art = yaml("path: /state/a/1\nversion: 1.4.0\n");
    ctx.artifact = art;
    cr_assert_eq(tpl_render_config(&out, &ctx, &e), 0, "%s", e.msg);
    cr_assert_str_eq(str_of(out, "a"), "/state/a/1");
    cr_assert_str_eq(str_of(out, "c"), "1.4.0");
    cr_assert_str_eq(str_of(out, "d"), "none");
    val_free(out);
    val_free(art);
    val_free(env);
    val_free(project);
    val_free(config);
}

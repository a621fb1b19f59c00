/* Unit tests for core/lib: values, YAML, durations, times, strings. */
#include "core/lib/err.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/val.h"
#include "core/lib/yt.h"

#include <criterion/criterion.h>
#include <string.h>

static struct val *parse(const char *text, struct err *e)
{
    const struct src *s = src_add("t.yaml", text, strlen(text));
    struct val *v = NULL;
    yt_parse(&v, s, e);
    return v;
}

static void fini(void)
{
    src_free_all();
}

TestSuite(lib, .fini = fini);

Test(lib, yaml_scalars_resolve_by_core_schema)
{
    struct err e = {0};
    struct val *v = parse("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\nf: 0x10\ng: yes\nh: -3\n", &e);
    cr_assert_eq(e.code, 0, "%s", e.msg);
    cr_assert_eq(val_map_get(v, "a")->kind, VAL_INT);
    cr_assert_eq(val_map_get(v, "b")->kind, VAL_FLOAT);
    cr_assert_eq(val_map_get(v, "c")->kind, VAL_BOOL);
    cr_assert_eq(val_map_get(v, "d")->kind, VAL_NULL);
    cr_assert_eq(val_map_get(v, "e")->kind, VAL_STR);
    cr_assert_eq(val_map_get(v, "f")->u.i, 16);
    cr_assert_eq(val_map_get(v, "g")->kind, VAL_STR);
    cr_assert_eq(val_map_get(v, "h")->u.i, -3);
    val_free(v);
}

Test(lib, yaml_duplicate_key_points_at_second_occurrence)
{
    struct err e = {0};
    struct val *v = parse("a: 1\nb: 2\na: 3\n", &e);
    cr_assert_null(v);
    cr_assert_eq(e.code, PE_CONFIG);
    cr_assert_eq(e.pos.line, 3);
    cr_assert_eq(e.pos.col, 1);
    cr_assert(strstr(e.msg, "duplicate key 'a' (first defined on line 1)"), "%s", e.msg);
    err_release(&e);
}

Test(lib, yaml_syntax_error_has_position)
{
    struct err e = {0};
    struct val *v = parse("a: [1, 2\nb: 3\n", &e);
    cr_assert_null(v);
    cr_assert_eq(e.code, PE_CONFIG);
    cr_assert_gt(e.pos.line, 0);
    cr_assert(strstr(e.msg, "invalid YAML"), "%s", e.msg);
    err_release(&e);
}

Test(lib, yaml_secure_map_becomes_encrypted_secret)
{
    struct err e = {0};
    struct val *v = parse("pw:\n  secure: v1:abc:def\n", &e);
    struct val *pw = val_map_get(v, "pw");
    cr_assert_eq(pw->kind, VAL_STR);
    cr_assert(pw->secret && pw->encrypted);
    cr_assert_str_eq(pw->u.str.s, "v1:abc:def");
    val_free(v);
}

Test(lib, yaml_alias_bomb_is_refused)
{
    struct err e = {0};
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    struct val *v = parse(bomb, &e);
    cr_assert_null(v);
    cr_assert_eq(e.code, PE_LIMIT);
    err_release(&e);
}

Test(lib, merge_maps_deeply_and_replaces_lists)
{
    struct err e = {0};
    struct val *a = parse("x: {a: 1, b: {c: 2, d: 3}}\nl: [1, 2]\n", &e);
    struct val *b = parse("x: {b: {c: 9}, e: 5}\nl: [3]\n", &e);
    val_merge(&a, b);
    struct sb s;
    sb_init(&s);
    val_canon(&s, a);
    cr_assert_str_eq(s.buf, "{\"l\":[3],\"x\":{\"a\":1,\"b\":{\"c\":9,\"d\":3},\"e\":5}}");
    sb_release(&s);
    val_free(a);
    val_free(b);
}

Test(lib, durations_parse_and_format)
{
    long long ms;
    const char *why;
    cr_assert(dur_parse("1h30m", &ms, &why));
    cr_assert_eq(ms, 5400000);
    cr_assert(dur_parse("250ms", &ms, &why));
    cr_assert_eq(ms, 250);
    cr_assert(!dur_parse("5", &ms, &why));
    cr_assert(strstr(why, "missing unit"));
    cr_assert(!dur_parse("5x", &ms, &why));
    struct sb b;
    sb_init(&b);
    dur_fmt(&b, 3 * 86400000LL + 4 * 3600000LL);
    cr_assert_str_eq(b.buf, "3d4h");
    sb_release(&b);
}

Test(lib, rfc3339_round_trips)
{
    long long ms;
    cr_assert(tm_parse_rfc3339("2026-03-29T01:30:00+01:00", &ms));
    struct sb b;
    sb_init(&b);
    tm_rfc3339(&b, ms);
    cr_assert_str_eq(b.buf, "2026-03-29T00:30:00Z");
    sb_release(&b);
    cr_assert(!tm_parse_rfc3339("2026-02-30T00:00:00Z", &ms));
}

Test(lib, closest_suggests_plausible_typos_only)
{
    const char *c[] = {"replicas", "command", "env", NULL};
    cr_assert_str_eq(str_closest("replcas", c, (size_t)-1), "replicas");
    cr_assert_str_eq(str_closest("comand", c, (size_t)-1), "command");
    cr_assert_null(str_closest("zzzzzz", c, (size_t)-1));
}

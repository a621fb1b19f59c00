/* Unit tests for core: graph ordering and cycles, plan diffing, state files
 * and locks. */
#include "core/engine.h"
#include "core/graph.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "core/lock.h"
#include "core/provider.h"
#include "core/state.h"
#include "tests/testlib.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *dir;

static void setup(void)
{
    dir = tl_tmpdir("unit");
}

static void teardown(void)
{
    struct err e = {0};
    fs_rm_rf(dir, &e);
    free(dir);
    src_free_all();
}

TestSuite(core, .init = setup, .fini = teardown);

Test(core, graph_orders_dependencies_first_and_keeps_index_order_for_ties)
{
    struct graph g;
    graph_init(&g, 4);
    graph_add(&g, 0, 2);
    graph_add(&g, 3, 0);
    graph_add(&g, 3, 0); /* duplicates are ignored */
    size_t order[4];
    cr_assert_eq(graph_order(&g, order, NULL, NULL), 0);
    size_t want[] = {1, 2, 0, 3};
    cr_assert_arr_eq(order, want, sizeof want);
    graph_release(&g);
}

Test(core, graph_cycle_names_every_member)
{
    struct graph g;
    graph_init(&g, 5);
    graph_add(&g, 1, 2);
    graph_add(&g, 2, 3);
    graph_add(&g, 3, 1);
    graph_add(&g, 4, 1);
    size_t order[5], cyc[5], n = 0;
    cr_assert_eq(graph_order(&g, order, cyc, &n), -1);
    cr_assert_eq(n, 3);
    size_t seen = 0;
    for (size_t i = 0; i < n; i++)
        seen |= (size_t)1 << cyc[i];
    cr_assert_eq(seen, (1u << 1) | (1u << 2) | (1u << 3));
    graph_release(&g);
}

static struct val *yaml(const char *text)
{
    struct err e = {0};
    struct val *v = NULL;
    cr_assert_eq(yt_parse(&v, src_add("t.yaml", text, strlen(text)), &e), 0, "%s", e.msg);
    return v;
}

Test(core, diff_tells_update_from_replace)
{
    const struct provider *p = prov_find("file.render");
    struct val *a = yaml("path: a.txt\ncontent: x\n"), *b = yaml("path: a.txt\ncontent: y\n"),
               *c = yaml("path: b.txt\ncontent: x\nmode: '0600'\n");
    char **ch, *why;
    size_t n;
    eng_diff(a, b, p, &ch, &n, &why);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ch[0], "content");
    cr_assert_null(why, "content changes update in place");
    free(ch[0]);
    free(ch);
    eng_diff(a, c, p, &ch, &n, &why);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(why, "'path' changed");
    for (size_t i = 0; i < n; i++)
        free(ch[i]);
    free(ch);
    free(why);
    eng_diff(a, a, p, &ch, &n, &why);
    cr_assert_eq(n, 0);
    free(ch);
    val_free(a);
    val_free(b);
    val_free(c);
}

Test(core, diff_treats_absent_and_null_alike_and_ints_equal_to_floats)
{
    struct val *a = yaml("x: 1\ny: null\n"), *b = yaml("x: 1.0\n");
    char **ch, *why;
    size_t n;
    eng_diff(a, b, NULL, &ch, &n, &why);
    cr_assert_eq(n, 0);
    free(ch);
    val_free(a);
    val_free(b);
}

Test(core, state_round_trips_and_is_written_atomically_with_mode_0600)
{
    struct state *s = state_new("pr-42", "preview", "shop");
    s->owner = xstrdup("alice");
    s->expires_ms = 1795000000000LL;
    struct st_res r = {0};
    r.name = xstrdup("db");
    r.type = xstrdup("sqlite.database");
    r.id = xstrdup("/x/db.db");
    r.inputs = yaml("file: db.db\n");
    r.outputs = yaml("path: /x/db.db\npw: s3cret\n");
    val_map_get(r.outputs, "pw")->secret = 1;
    r.deps = xcalloc(2, sizeof *r.deps);
    r.deps[r.ndeps++] = xstrdup("other");
    state_res_put(s, &r);
    state_pending_add(s, "web", "process.service", "create", NULL);
    struct err e = {0};
    cr_assert_eq(state_save(s, dir, &e), 0, "%s", e.msg);
    char *path = state_path(dir, "pr-42");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    char *sd = xasprintf("%s/state", dir);
    cr_assert_eq(tl_count_files(sd), 1, "no temporary file is left next to the state");
    free(sd);
    struct state *t = NULL;
    cr_assert_eq(state_load(&t, dir, "pr-42", &e), 0, "%s", e.msg);
    cr_assert_str_eq(t->owner, "alice");
    cr_assert_eq(t->expires_ms, 1795000000000LL);
    cr_assert_eq(t->nres, 1);
    cr_assert_str_eq(t->res[0].deps[0], "other");
    cr_assert(val_map_get(t->res[0].outputs, "pw")->secret, "secrets read back as secrets");
    cr_assert_eq(t->npend, 1);
    cr_assert_str_eq(t->pend[0].op, "create");
    struct sb b;
    sb_init(&b);
    state_serialize(&b, t, true);
    cr_assert_null(strstr(b.buf, "s3cret"), "masked serialisation hides secrets");
    sb_release(&b);
    state_free(s);
    state_free(t);
    free(path);
}

Test(core, a_state_from_a_newer_prenv_or_broken_json_is_refused)
{
    struct err e = {0};
    struct state *s = NULL;
    cr_assert_eq(state_parse(&s, "{\"schema\": 99, \"env\": \"x\"}", 27, "x.json", &e), PE_STATE);
    cr_assert(strstr(e.msg, "schema version 99"), "%s", e.msg);
    err_release(&e);
    cr_assert_eq(state_parse(&s, "{oops", 5, "x.json", &e), PE_STATE);
    cr_assert(strstr(e.msg, "not valid JSON"), "%s", e.msg);
    err_release(&e);
    cr_assert_eq(state_load(&s, dir, "nope", &e), PE_NOTFOUND);
    err_release(&e);
}

Test(core, state_keeps_fields_it_does_not_know)
{
    const char *j = "{\"schema\": 1, \"env\": \"dev\", \"kind\": \"stage\", \"status\": \"up\","
                    " \"future_field\": {\"a\": 1}}";
    struct err e = {0};
    struct state *s = NULL;
    cr_assert_eq(state_parse(&s, j, strlen(j), "x", &e), 0, "%s", e.msg);
    struct sb b;
    sb_init(&b);
    state_serialize(&b, s, false);
    cr_assert(strstr(b.buf, "\"future_field\""), "%s", b.buf);
    sb_release(&b);
    state_free(s);
}

Test(core, history_appends_and_reads_the_last_records)
{
    struct err e = {0};
    for (int i = 0; i < 5; i++) {
        struct val *r = val_map(NULL);
        val_map_set(r, "n", NULL, val_int(i, NULL));
        cr_assert_eq(state_history_append(dir, "dev", r, &e), 0);
        val_free(r);
    }
    struct val *h = NULL;
    cr_assert_eq(state_history_read(&h, dir, "dev", 2, &e), 0);
    cr_assert_eq(h->u.list.n, 2);
    cr_assert_eq(val_map_int(h->u.list.v[1], "n", -1), 4);
    val_free(h);
}

static int events;
static void count_events(void *ctx, enum lock_event ev, const struct lock_holder *h)
{
    (void)ctx;
    (void)h;
    if (ev == LOCK_RECOVERED)
        events++;
}

Test(core, a_held_lock_names_its_holder_and_a_dead_holder_is_reported)
{
    struct lock a;
    struct err e = {0};
    cr_assert_eq(lock_acquire(&a, dir, "dev", "prenv env up dev", -1, NULL, NULL, &e), 0);
    /* a second holder in another process fails at once and names us */
    pid_t pid = fork();
    if (pid == 0) {
        struct lock b;
        struct err be = {0};
        int rc = lock_acquire(&b, dir, "dev", "other", 0, NULL, NULL, &be);
        bool ok = rc == PE_LOCKED && strstr(be.msg, "prenv env up dev") &&
                  strstr(be.msg, "is locked by pid");
        _exit(ok ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the waiter saw who holds the lock");
    lock_release(&a, false);
    /* a holder killed while holding: the next one is told */
    pid = fork();
    if (pid == 0) {
        struct lock b;
        struct err be = {0};
        lock_acquire(&b, dir, "dev", "doomed", -1, NULL, NULL, &be);
        _exit(0); /* exits without releasing */
    }
    waitpid(pid, &st, 0);
    events = 0;
    cr_assert_eq(lock_acquire(&a, dir, "dev", "next", 0, count_events, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(events, 1);
    bool held;
    struct lock_holder h;
    cr_assert_eq(lock_inspect(dir, "dev", &held, &h, &e), 0);
    cr_assert(held);
    cr_assert_str_eq(h.command, "next");
    lock_holder_release(&h);
    /* unlock refuses a live holder without force */
    cr_assert_eq(lock_break(dir, "dev", false, &h, &e), PE_LOCKED);
    err_release(&e);
    lock_holder_release(&h);
    lock_release(&a, true);
}

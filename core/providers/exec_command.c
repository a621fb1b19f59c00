/* exec.command: runs argv arrays on create, update and delete. Values from
 * outside reach the command only as argv elements or environment variables;
 * nothing is ever passed to a shell. Captured stdout (capped) is an output.
 * It cannot observe what a command did, so read reports what was recorded. */
#include "core/provider.h"

#include "core/lib/fs.h"
#include "core/lib/proc.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS (10LL * 60 * 1000)
#define DEFAULT_STDOUT_MAX 65536

static const struct prov_prop schema[] = {
    {"create", PT_ARGV, PROP_REQUIRED, "command run when the resource is created"},
    {"update", PT_ARGV, 0, "command run when properties change (default: create again)"},
    {"delete", PT_ARGV, 0, "command run when the resource is removed"},
    {"env", PT_STRMAP, 0, "environment variables for the commands"},
    {"dir", PT_STR, 0, "working directory, relative to the env's work directory"},
    {"timeout", PT_DURATION, 0, "kill the command after this long (default 10m)"},
    {"stdout_max", PT_INT, 0, "keep at most this many bytes of stdout (default 65536)"},
    {"triggers", PT_ANY, 0, "any value; a change re-runs the update command"},
    {NULL, 0, 0, NULL},
};

static const struct prov_output outputs[] = {
    {"stdout", 0, "standard output of the last command, trailing newlines removed"},
    {"exit_code", 0, "exit status of the last command"},
    {NULL, 0, NULL},
};

static int ec_check(const struct prov_call *c, struct err *e)
{
    const struct val *m = val_map_get(c->props, "stdout_max");
    if (m && m->kind == VAL_INT && (m->u.i < 0 || m->u.i > (16 << 20)))
        return err_set(e, PE_CONFIG, &m->pos, "'stdout_max' must be between 0 and 16777216");
    return 0;
}

/* the command line for the log, with secret arguments masked */
static void describe(struct sb *b, const struct val *argv)
{
    for (size_t i = 0; argv && i < argv->u.list.n; i++) {
        const struct val *a = argv->u.list.v[i];
        if (i)
            sb_addc(b, ' ');
        if (a->secret)
            sb_adds(b, "[secret]");
        else
            val_text(b, a);
    }
}

/* does text contain the text of any secret value in v (or of a part of it
 * such as a URL's password)? Short secrets are matched too: a false positive
 * only masks an output. */
static bool carries_secret(const struct val *v, const char *text)
{
    if (!v || !*text)
        return false;
    if (v->secret && v->kind == VAL_STR && v->u.str.len) {
        if (strstr(text, v->u.str.s))
            return true;
        /* a URL's password alone */
        const char *at = strchr(v->u.str.s, '@'), *sch = strstr(v->u.str.s, "://");
        if (at && sch && at > sch) {
            const char *colon = memchr(sch + 3, ':', (size_t)(at - sch - 3));
            if (colon && at - colon > 1) {
                char *pw = xstrndup(colon + 1, (size_t)(at - colon - 1));
                bool hit = strstr(text, pw) != NULL;
                free(pw);
                if (hit)
                    return true;
            }
        }
    }
    if (v->kind == VAL_LIST)
        for (size_t i = 0; i < v->u.list.n; i++)
            if (carries_secret(v->u.list.v[i], text))
                return true;
    if (v->kind == VAL_MAP)
        for (size_t i = 0; i < v->u.map.n; i++)
            if (carries_secret(v->u.map.e[i].v, text))
                return true;
    if (v->secret && v->kind != VAL_STR && v->kind != VAL_LIST && v->kind != VAL_MAP) {
        struct sb b;
        sb_init(&b);
        val_text(&b, v);
        bool hit = b.len && strstr(text, b.buf);
        sb_release(&b);
        return hit;
    }
    return false;
}

static int run(const struct prov_call *c, const struct val *props, const char *which,
               struct prov_result *r, struct err *e)
{
    const struct val *argvv = val_map_get(props, which);
    char **argv = prov_argv(props, which);
    char **envp = prov_env(c, val_map_get(props, "env"));
    const char *d = prov_str(props, "dir", NULL);
    char *dir = d ? fs_abspath(c->work_dir, d) : xstrdup(c->work_dir);
    long long timeout = prov_duration_ms(props, "timeout", DEFAULT_TIMEOUT_MS);
    int logfd = prov_log_open(c, NULL);
    struct sb line;
    sb_init(&line);
    tm_rfc3339(&line, tm_now_ms());
    sb_addf(&line, " [prenv] %s: ", which);
    describe(&line, argvv);
    sb_addc(&line, '\n');
    if (logfd >= 0) {
        ssize_t w = write(logfd, line.buf, line.len);
        (void)w;
    }
    struct proc_spec spec = {
        .argv = (const char *const *)argv,
        .envp = envp,
        .dir = dir,
        .timeout_ms = timeout,
        .log_fd = logfd,
        .out_cap = (size_t)prov_int(props, "stdout_max", DEFAULT_STDOUT_MAX),
        .cancel = c->host ? &c->host->cancel : NULL,
    };
    struct proc_result pr;
    int rc = 0;
    if (!fs_is_dir(dir)) {
        rc = err_set(e, PE_PROVIDER, NULL, "working directory %s does not exist", dir);
        goto out;
    }
    rc = proc_run(&spec, &pr, e);
    if (rc)
        goto out;
    struct sb how;
    sb_init(&how);
    proc_describe_exit(&how, &pr, timeout);
    if (logfd >= 0) {
        struct sb end;
        sb_init(&end);
        tm_rfc3339(&end, tm_now_ms());
        sb_addf(&end, " [prenv] %s %s\n", which, how.buf);
        ssize_t w = write(logfd, end.buf, end.len);
        (void)w;
        sb_release(&end);
    }
    if (pr.canceled) {
        rc = err_set(e, PE_CANCELED, NULL, "%s command canceled", which);
    } else if (pr.timed_out || pr.signo || pr.exit_code != 0) {
        rc = err_set(e, PE_PROVIDER, NULL, "%s command `%s` %s", which, argv[0], how.buf);
    } else if (r) {
        size_t n = pr.out_len;
        while (n && (pr.out[n - 1] == '\n' || pr.out[n - 1] == '\r'))
            n--;
        r->outputs = val_map(NULL);
        struct val *so = val_strn(pr.out, n, NULL);
        if (carries_secret(props, so->u.str.s))
            so->secret = 1; /* output that repeats a secret input stays secret */
        val_map_set(r->outputs, "stdout", NULL, so);
        val_map_set(r->outputs, "exit_code", NULL, val_int(pr.exit_code, NULL));
        r->id = xasprintf("%s/%s", c->env, c->resource);
    }
    sb_release(&how);
    proc_result_release(&pr);
out:
    if (logfd >= 0)
        close(logfd);
    sb_release(&line);
    free(dir);
    proc_env_free(envp);
    prov_argv_free(argv);
    return rc;
}

static int ec_create(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    return run(c, c->props, "create", r, e);
}

static int ec_update(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    return run(c, c->props, val_map_get(c->props, "update") ? "update" : "create", r, e);
}

static int ec_read(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    (void)e;
    /* a command leaves nothing prenv can observe: trust the record; a create
     * that never recorded its result is treated as not run, so it runs again */
    r->exists = c->old_outputs != NULL;
    if (r->exists) {
        r->outputs = val_clone(c->old_outputs);
        r->id = c->id ? xstrdup(c->id) : xasprintf("%s/%s", c->env, c->resource);
    }
    return 0;
}

static int ec_remove(const struct prov_call *c, struct err *e)
{
    const struct val *props = c->old_props ? c->old_props : c->props;
    if (!props || !val_map_get(props, "delete"))
        return 0;
    return run(c, props, "delete", NULL, e);
}

const struct provider prov_exec_command = {
    .type = "exec.command",
    .summary = "commands (argv arrays, never a shell) run on create, update and delete",
    .props = schema,
    .outputs = outputs,
    .check = ec_check,
    .create = ec_create,
    .read = ec_read,
    .update = ec_update,
    .remove = ec_remove,
};

/* env logs: print (and with -f follow) an environment's resource logs from
 * <state dir>/logs/<env>/, across rotations. Needs no lock. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "core/lib/xalloc.h"
#include "envs/project.h"
#include "core/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct logs_opts {
    bool follow;
    long long lines;
};

#define O(f) offsetof(struct logs_opts, f)
static const struct cmd_opt opts[] = {
    {"follow", 'f', OPT_BOOL, O(follow), NULL, "keep printing new lines until interrupted"},
    {"lines", 'n', OPT_INT, O(lines), "N", "start with the last N lines of each log (default 50)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

struct logf {
    char *name; /* file name, e.g. web.0.log */
    char *path;
    char *label;
    int fd;
    ino_t ino;
    off_t off;
    struct sb partial;
};

static volatile sig_atomic_t stop;

static void on_sig(int s)
{
    (void)s;
    stop = 1;
}

static bool wanted(const char *f, const char *resource)
{
    size_t l = strlen(f);
    if (l < 5 || strcmp(f + l - 4, ".log") != 0)
        return false;
    if (!resource)
        return true;
    size_t rl = strlen(resource);
    return !strncmp(f, resource, rl) && f[rl] == '.';
}

static int cmp_logf(const void *a, const void *b)
{
    return strcmp(((const struct logf *)a)->name, ((const struct logf *)b)->name);
}

static void emit(struct logf *l, const char *p, size_t n, bool prefix)
{
    sb_add(&l->partial, p, n);
    char *s = l->partial.buf;
    char *nl;
    while ((nl = memchr(s, '\n', l->partial.len - (size_t)(s - l->partial.buf)))) {
        if (prefix)
            printf("%s | ", l->label);
        fwrite(s, 1, (size_t)(nl - s) + 1, stdout);
        s = nl + 1;
    }
    size_t rest = l->partial.len - (size_t)(s - l->partial.buf);
    memmove(l->partial.buf, s, rest);
    l->partial.len = rest;
    l->partial.buf[rest] = 0;
}

static void start_tail(struct logf *l, long long lines, bool prefix)
{
    struct stat st;
    if (fstat(l->fd, &st) < 0)
        return;
    l->ino = st.st_ino;
    /* scan back for the start of the last `lines` lines */
    off_t size = st.st_size, pos = size;
    long long seen = 0;
    char buf[8192];
    while (pos > 0 && seen <= lines) {
        off_t chunk = pos > (off_t)sizeof buf ? (off_t)sizeof buf : pos;
        pos -= chunk;
        ssize_t n = pread(l->fd, buf, (size_t)chunk, pos);
        if (n <= 0)
            break;
        /* the newline ending the file does not start a line; the
         * `lines`-th newline before it marks where the tail begins */
        for (ssize_t i = n; i-- > 0;)
            if (buf[i] == '\n' && (pos + i != size - 1) && ++seen >= lines) {
                pos += i + 1;
                goto found;
            }
    }
    pos = 0;
found:
    l->off = pos;
    for (;;) {
        ssize_t n = pread(l->fd, buf, sizeof buf, l->off);
        if (n <= 0)
            break;
        l->off += n;
        emit(l, buf, (size_t)n, prefix);
    }
}

static void poll_file(struct logf *l, bool prefix)
{
    struct stat st;
    if (stat(l->path, &st) == 0 && st.st_ino != l->ino) {
        /* rotated: finish the old file, then read the new one from its start */
        char buf[8192];
        ssize_t n;
        while ((n = pread(l->fd, buf, sizeof buf, l->off)) > 0) {
            l->off += n;
            emit(l, buf, (size_t)n, prefix);
        }
        int fd = open(l->path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            close(l->fd);
            l->fd = fd;
            l->ino = st.st_ino;
            l->off = 0;
        }
    }
    char buf[8192];
    ssize_t n;
    while ((n = pread(l->fd, buf, sizeof buf, l->off)) > 0) {
        l->off += n;
        emit(l, buf, (size_t)n, prefix);
    }
}

static int exec_logs(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    struct logs_opts *o = vo;
    const char *env = argv[0], *resource = argc > 1 ? argv[1] : NULL;
    long long lines = o->lines > 0 ? o->lines : 50;
    struct err e = {0};
    struct project *p = NULL;
    int rc = cmd_project(c, &p, &e);
    struct env_def def = {0};
    if (!rc)
        rc = project_env(&def, p, env, &e);
    if (rc) {
        project_free(p);
        return cmd_error(c, &e);
    }
    env_def_release(&def);
    char *ldir = xasprintf("%s/logs/%s", p->state_dir, env);
    char *sp = state_path(p->state_dir, env);
    bool exists = access(sp, F_OK) == 0;
    free(sp);
    DIR *d = opendir(ldir);
    struct logf *files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!wanted(de->d_name, resource))
            continue;
        XGROW(files, cap, n + 1);
        struct logf *l = &files[n];
        memset(l, 0, sizeof *l);
        l->name = xstrdup(de->d_name);
        l->path = xasprintf("%s/%s", ldir, de->d_name);
        l->label = xstrndup(de->d_name, strlen(de->d_name) - 4);
        sb_init(&l->partial);
        l->fd = open(l->path, O_RDONLY | O_CLOEXEC);
        if (l->fd < 0) {
            free(l->name);
            free(l->path);
            free(l->label);
            continue;
        }
        n++;
    }
    if (d)
        closedir(d);
    int code = EXIT_OK;
    if (!n) {
        if (!exists)
            err_set(&e, PE_NOTFOUND, NULL, "environment '%s' does not exist", env);
        else if (resource)
            err_set(&e, PE_NOTFOUND, NULL, "no logs for resource '%s' in '%s'", resource, env);
        else
            err_set(&e, PE_NOTFOUND, NULL, "'%s' has no logs yet", env);
        err_hint(&e, "`prenv env show %s` lists its resources", env);
        code = cmd_error(c, &e);
        goto out;
    }
    qsort(files, n, sizeof *files, cmp_logf);
    bool prefix = n > 1;
    for (size_t i = 0; i < n; i++)
        start_tail(&files[i], lines, prefix);
    fflush(stdout);
    if (o->follow) {
        signal(SIGINT, on_sig);
        signal(SIGTERM, on_sig);
        while (!stop) {
            for (size_t i = 0; i < n; i++)
                poll_file(&files[i], prefix);
            fflush(stdout);
            usleep(200000);
        }
    }
out:
    for (size_t i = 0; i < n; i++) {
        close(files[i].fd);
        free(files[i].name);
        free(files[i].path);
        free(files[i].label);
        sb_release(&files[i].partial);
    }
    free(files);
    free(ldir);
    err_release(&e);
    project_free(p);
    return code;
}

const struct cmd_entry cmd_env_logs_entry = {
    .name = "env logs",
    .args = "ENV [RESOURCE]",
    .min_args = 1,
    .max_args = 2,
    .summary = "print an environment's logs, all resources or one; -f follows",
    .opts = opts,
    .opts_size = sizeof(struct logs_opts),
    .exec = exec_logs,
};

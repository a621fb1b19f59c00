/* lock: per-environment flock with a recorded holder. */
#include "core/lock.h"

#include "core/lib/fs.h"
#include "core/lib/proc.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static char *lock_path(const char *dir, const char *env)
{
    return xasprintf("%s/locks/%s.lock", dir, env);
}

static char *hostname_now(void)
{
    char h[256];
    if (gethostname(h, sizeof h) < 0)
        return xstrdup("unknown");
    h[sizeof h - 1] = 0;
    return xstrdup(h);
}

static char *username_now(void)
{
    const char *u = getenv("USER");
    if (u && *u)
        return xstrdup(u);
    struct passwd *pw = getpwuid(getuid());
    return xstrdup(pw ? pw->pw_name : "unknown");
}

void lock_holder_release(struct lock_holder *h)
{
    free(h->host);
    free(h->user);
    free(h->command);
    memset(h, 0, sizeof *h);
}

static bool parse_holder(const char *text, size_t len, struct lock_holder *h)
{
    memset(h, 0, sizeof *h);
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j)
        return false;
    const cJSON *x;
    if (cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(j, "pid")))
        h->pid = (long)x->valuedouble;
    if (cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(j, "start")))
        h->start = (unsigned long long)x->valuedouble;
    if (cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(j, "host")))
        h->host = xstrdup(x->valuestring);
    if (cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(j, "user")))
        h->user = xstrdup(x->valuestring);
    if (cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(j, "command")))
        h->command = xstrdup(x->valuestring);
    if (cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(j, "since")))
        tm_parse_rfc3339(x->valuestring, &h->since_ms);
    cJSON_Delete(j);
    return h->pid > 0;
}

static bool read_holder_fd(int fd, struct lock_holder *h)
{
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return false;
    buf[n] = 0;
    return parse_holder(buf, (size_t)n, h);
}

bool lock_holder_dead(const struct lock_holder *h)
{
    char *me = hostname_now();
    bool here = h->host && !strcmp(h->host, me);
    free(me);
    if (!here || h->pid <= 0)
        return false;
    return !proc_alive((pid_t)h->pid, h->start);
}

void lock_holder_describe(struct sb *out, const struct lock_holder *h)
{
    sb_addf(out, "pid %ld (%s@%s", h->pid, h->user ? h->user : "?", h->host ? h->host : "?");
    if (h->command)
        sb_addf(out, ", `%s`", h->command);
    sb_adds(out, ")");
    if (h->since_ms) {
        sb_adds(out, " since ");
        tm_rfc3339(out, h->since_ms);
        sb_adds(out, " (");
        dur_fmt(out, tm_now_ms() - h->since_ms);
        sb_adds(out, " ago)");
    }
}

static int write_holder(int fd, const char *command)
{
    struct sb b;
    sb_init(&b);
    char *host = hostname_now(), *user = username_now();
    sb_addf(&b, "{\"pid\": %ld, \"start\": %llu, \"host\": ", (long)getpid(),
            proc_start_time(getpid()));
    sb_add_json_str(&b, host);
    sb_adds(&b, ", \"user\": ");
    sb_add_json_str(&b, user);
    sb_adds(&b, ", \"command\": ");
    sb_add_json_str(&b, command ? command : "prenv");
    sb_adds(&b, ", \"since\": \"");
    tm_rfc3339(&b, tm_now_ms());
    sb_adds(&b, "\"}\n");
    free(host);
    free(user);
    int rc = 0;
    if (ftruncate(fd, 0) < 0 || pwrite(fd, b.buf, b.len, 0) != (ssize_t)b.len)
        rc = -errno;
    sb_release(&b);
    return rc;
}

/* the fd still refers to the file at path (not one unlinked by a breaker) */
static bool same_file(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
           a.st_dev == b.st_dev;
}

int lock_acquire(struct lock *l, const char *dir, const char *env, const char *command,
                 long long wait_ms, lock_notify_fn notify, void *ctx, struct err *e)
{
    l->fd = -1;
    l->path = lock_path(dir, env);
    char *ld = xasprintf("%s/locks", dir);
    int rc = fs_mkdir_p(ld, 0700, e);
    free(ld);
    if (rc)
        goto fail;
    long long deadline = wait_ms > 0 ? tm_mono_ms() + wait_ms : 0;
    bool told = false;
    for (;;) {
        int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = err_errno(e, errno, "cannot open lock %s", l->path);
            goto fail;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            if (!same_file(fd, l->path)) {
                close(fd); /* broken and replaced while we waited: try the new file */
                continue;
            }
            struct lock_holder prev;
            if (read_holder_fd(fd, &prev)) {
                /* content left behind means the last holder never released */
                if (notify && prev.pid != (long)getpid())
                    notify(ctx, LOCK_RECOVERED, &prev);
                lock_holder_release(&prev);
            }
            if ((rc = write_holder(fd, command)) < 0) {
                close(fd);
                rc = err_errno(e, -rc, "cannot write lock %s", l->path);
                goto fail;
            }
            l->fd = fd;
            return 0;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            rc = err_errno(e, errno, "cannot lock %s", l->path);
            close(fd);
            goto fail;
        }
        struct lock_holder h;
        bool have = read_holder_fd(fd, &h);
        if (have && lock_holder_dead(&h)) {
            /* the recorded holder is gone but the lock is still held: some
             * other process inherited it; break it */
            if (notify)
                notify(ctx, LOCK_STALE_BROKEN, &h);
            unlink(l->path);
            lock_holder_release(&h);
            close(fd);
            continue;
        }
        if (!wait_ms || (deadline && tm_mono_ms() >= deadline)) {
            struct sb b;
            sb_init(&b);
            if (have)
                lock_holder_describe(&b, &h);
            else
                sb_adds(&b, "another process");
            err_set(e, PE_LOCKED, NULL, "environment '%s' is locked by %s", env, b.buf);
            err_hint(e, "wait for it to finish; if that process is gone for good, run `prenv "
                        "env unlock %s`",
                     env);
            sb_release(&b);
            if (have)
                lock_holder_release(&h);
            close(fd);
            rc = PE_LOCKED;
            goto fail;
        }
        if (!told && notify && have) {
            notify(ctx, LOCK_WAITING, &h);
            told = true;
        }
        if (have)
            lock_holder_release(&h);
        close(fd);
        usleep(50000);
    }
fail:
    free(l->path);
    l->path = NULL;
    l->fd = -1;
    return rc;
}

void lock_release(struct lock *l, bool remove)
{
    if (l->fd >= 0) {
        if (remove)
            unlink(l->path);
        else if (ftruncate(l->fd, 0) < 0) {
            /* the holder record stays; the next holder reports a recovery */
        }
        close(l->fd);
    }
    free(l->path);
    l->path = NULL;
    l->fd = -1;
}

int lock_inspect(const char *dir, const char *env, bool *held, struct lock_holder *h,
                 struct err *e)
{
    *held = false;
    memset(h, 0, sizeof *h);
    char *path = lock_path(dir, env);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int er = errno;
        free(path);
        if (er == ENOENT)
            return 0;
        return err_errno(e, er, "cannot open lock of '%s'", env);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        flock(fd, LOCK_UN);
    else
        *held = true;
    read_holder_fd(fd, h);
    close(fd);
    free(path);
    return 0;
}

int lock_break(const char *dir, const char *env, bool force, struct lock_holder *h,
               struct err *e)
{
    bool held;
    int rc = lock_inspect(dir, env, &held, h, e);
    if (rc)
        return rc;
    if (held && h->pid && !lock_holder_dead(h) && !force) {
        struct sb b;
        sb_init(&b);
        lock_holder_describe(&b, h);
        err_set(e, PE_LOCKED, NULL, "environment '%s' is locked by %s, which is still running",
                env, b.buf);
        err_hint(e, "let it finish, stop it, or pass --force if you are sure it is stuck");
        sb_release(&b);
        return PE_LOCKED;
    }
    char *path = lock_path(dir, env);
    if (unlink(path) < 0 && errno != ENOENT)
        rc = err_errno(e, errno, "cannot remove %s", path);
    free(path);
    return rc;
}

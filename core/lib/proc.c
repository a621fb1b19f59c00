/* proc: spawning commands without a shell, and identifying processes. */
#include "core/lib/proc.h"

#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/val.h"
#include "core/lib/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define ERR_TAIL 2048

static char self_exe[PATH_MAX];

void proc_set_self_exe(const char *argv0)
{
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n > 0) {
        self_exe[n] = 0;
        return;
    }
    if (argv0 && strchr(argv0, '/') && realpath(argv0, self_exe))
        return;
    snprintf(self_exe, sizeof self_exe, "%s", argv0 ? argv0 : "prenv");
}

const char *proc_self_exe(void)
{
    if (!self_exe[0])
        proc_set_self_exe(NULL);
    return self_exe;
}

unsigned long long proc_start_time(pid_t pid)
{
    if (pid <= 0)
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    /* the command name may contain spaces and parentheses: skip to the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    /* fields after the name start at field 3 (state); start time is field 22 */
    int field = 2;
    char *save = NULL;
    for (char *t = strtok_r(p, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 3 && t[0] == 'Z')
            return 0; /* a zombie has exited */
        if (field == 22)
            return strtoull(t, NULL, 10);
    }
    return 0;
}

bool proc_alive(pid_t pid, unsigned long long start)
{
    unsigned long long st = proc_start_time(pid);
    if (!st)
        return false;
    return start == 0 || st == start;
}

static bool secret_env(const char *kv)
{
    static const char *const drop[] = {"PRENV_PASSPHRASE=", "PRENV_PASSPHRASE_FILE=",
                                       "PRENV_GITHUB_", "PRENV_API_TOKEN=",
                                       "PULUMI_CONFIG_PASSPHRASE", "PRENV_TEST_", NULL};
    for (int i = 0; drop[i]; i++)
        if (!strncmp(kv, drop[i], strlen(drop[i])))
            return true;
    return false;
}

char **proc_env_build(const struct val *extra)
{
    size_t n = 0, cap = 0;
    char **envp = NULL;
    for (char **e = environ; e && *e; e++) {
        if (secret_env(*e))
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        if (extra && extra->kind == VAL_MAP) {
            char *k = xstrndup(*e, (size_t)(eq - *e));
            bool over = val_map_get(extra, k) != NULL;
            free(k);
            if (over)
                continue;
        }
        XGROW(envp, cap, n + 2);
        envp[n++] = xstrdup(*e);
    }
    if (extra && extra->kind == VAL_MAP)
        for (size_t i = 0; i < extra->u.map.n; i++) {
            struct sb b;
            sb_init(&b);
            sb_addf(&b, "%s=", extra->u.map.e[i].key);
            val_text(&b, extra->u.map.e[i].v);
            XGROW(envp, cap, n + 2);
            envp[n++] = sb_steal(&b);
        }
    XGROW(envp, cap, n + 1);
    envp[n] = NULL;
    return envp;
}

void proc_env_free(char **envp)
{
    if (!envp)
        return;
    for (char **e = envp; *e; e++)
        free(*e);
    free(envp);
}

void proc_result_release(struct proc_result *r)
{
    free(r->out);
    free(r->err_tail);
    memset(r, 0, sizeof *r);
}

void proc_describe_exit(struct sb *out, const struct proc_result *r, long long timeout_ms)
{
    if (r->canceled)
        sb_adds(out, "canceled");
    else if (r->timed_out) {
        sb_adds(out, "timed out after ");
        dur_fmt(out, timeout_ms);
    } else if (r->signo)
        sb_addf(out, "killed by signal %d (%s)", r->signo, strsignal(r->signo));
    else
        sb_addf(out, "exited with status %d", r->exit_code);
}

static void tail_add(struct sb *t, const char *p, size_t n)
{
    sb_add(t, p, n);
    if (t->len > ERR_TAIL * 2) {
        size_t drop = t->len - ERR_TAIL;
        memmove(t->buf, t->buf + drop, t->len - drop);
        t->len -= drop;
        t->buf[t->len] = 0;
    }
}

static void write_log(int fd, const char *p, size_t n)
{
    while (fd >= 0 && n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

int proc_run(const struct proc_spec *spec, struct proc_result *r, struct err *e)
{
    memset(r, 0, sizeof *r);
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        int er = errno;
        for (int i = 0; i < 2; i++) {
            if (outp[i] >= 0)
                close(outp[i]);
            if (errp[i] >= 0)
                close(errp[i]);
        }
        return err_errno(e, er, "cannot create pipes");
    }
    /* stdin: /dev/null, or where there is none (an empty root file system)
     * a pipe already closed at the other end: both read as end of file */
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        int inp[2];
        if (pipe2(inp, O_CLOEXEC) < 0) {
            int er = errno;
            for (int i = 0; i < 2; i++) {
                close(outp[i]);
                close(errp[i]);
            }
            return err_errno(e, er, "cannot create pipes");
        }
        close(inp[1]);
        in = inp[0];
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, in, 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    if (spec->dir)
        posix_spawn_file_actions_addchdir_np(&fa, spec->dir);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int src = posix_spawnp(&pid, spec->argv[0], &fa, &at, (char *const *)spec->argv,
                           spec->envp ? spec->envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in);
    close(outp[1]);
    close(errp[1]);
    if (src != 0) {
        close(outp[0]);
        close(errp[0]);
        if (src == ENOENT)
            return err_set(e, -ENOENT, NULL, "cannot run '%s': command not found%s",
                           spec->argv[0],
                           spec->dir ? " (or the working directory does not exist)" : "");
        return err_errno(e, src, "cannot run '%s'", spec->argv[0]);
    }
    struct sb out, tail;
    sb_init_max(&out, spec->out_cap ? spec->out_cap : 1);
    sb_init(&tail);
    long long start = tm_mono_ms();
    long long kill_at = 0;
    bool open_out = true, open_err = true;
    char buf[16384];
    while (open_out || open_err) {
        struct pollfd pf[2];
        int np = 0, io = -1, ie = -1;
        if (open_out) {
            pf[np] = (struct pollfd){outp[0], POLLIN, 0};
            io = np++;
        }
        if (open_err) {
            pf[np] = (struct pollfd){errp[0], POLLIN, 0};
            ie = np++;
        }
        int wait_ms = 200;
        int pr = poll(pf, (nfds_t)np, wait_ms);
        if (pr < 0 && errno != EINTR)
            break;
        long long now = tm_mono_ms();
        bool stop = (spec->timeout_ms > 0 && now - start > spec->timeout_ms) ||
                    (spec->cancel && *spec->cancel);
        if (stop && !kill_at) {
            if (spec->cancel && *spec->cancel)
                r->canceled = true;
            else
                r->timed_out = true;
            kill(-pid, SIGTERM);
            kill_at = now + 3000;
        }
        if (kill_at && now > kill_at) {
            kill(-pid, SIGKILL);
            kill_at = now + 1000000;
        }
        for (int i = 0; i < np && pr > 0; i++) {
            if (!pf[i].revents)
                continue;
            ssize_t n = read(pf[i].fd, buf, sizeof buf);
            if (n <= 0) {
                if (n < 0 && errno == EINTR)
                    continue;
                if (i == io)
                    open_out = false;
                if (i == ie)
                    open_err = false;
                continue;
            }
            write_log(spec->log_fd, buf, (size_t)n);
            if (i == io) {
                if (spec->out_cap && sb_ok(&out)) {
                    size_t room = spec->out_cap - out.len;
                    sb_add(&out, buf, (size_t)n < room ? (size_t)n : room);
                    if ((size_t)n > room)
                        r->out_truncated = true;
                }
            } else {
                tail_add(&tail, buf, (size_t)n);
            }
        }
    }
    close(outp[0]);
    close(errp[0]);
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, kill_at ? WNOHANG : 0);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            break;
        if (w == 0) {
            /* pipes closed but the child lingers after a kill: make sure */
            if (tm_mono_ms() > kill_at)
                kill(-pid, SIGKILL);
            usleep(20000);
        }
    }
    /* descendants that kept running in the group are not ours to leave behind */
    if (r->timed_out || r->canceled)
        kill(-pid, SIGKILL);
    if (WIFSIGNALED(status))
        r->signo = WTERMSIG(status);
    else
        r->exit_code = WEXITSTATUS(status);
    if (tail.len > ERR_TAIL) {
        memmove(tail.buf, tail.buf + tail.len - ERR_TAIL, ERR_TAIL);
        tail.len = ERR_TAIL;
        tail.buf[tail.len] = 0;
    }
    r->out_len = out.len;
    r->out = sb_steal(&out);
    r->err_tail = sb_steal(&tail);
    return 0;
}
